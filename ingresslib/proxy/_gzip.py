"""ingress-nginx's ``use-gzip`` (and ``gzip-level``, ``gzip-min-length``, ``gzip-types``,
``gzip-disable``): response compression as nginx's gzip filter applies it. Sans-IO: no
socket, no clock, no event loop; the proxy core (proxy/_connection.py) and IngressASGI
(``gzip_send``) call in here only when ``use_gzip`` is on.

The reference:

- ingress-nginx internal/ingress/controller/config/config.go: ``UseGzip bool
  `json:"use-gzip"``` (default false), ``GzipLevel int`` (1), ``GzipMinLength int`` (256),
  ``GzipTypes string`` (``gzipTypes``, :data:`DEFAULT_TYPES`), ``GzipDisable string`` ("").
- nginx.tmpl: "{{ if $cfg.UseGzip }} gzip on; gzip_comp_level {{ $cfg.GzipLevel }};
  {{ if $cfg.GzipDisable }} gzip_disable "{{ $cfg.GzipDisable }}"; {{ end }}
  gzip_http_version 1.1; gzip_min_length {{ $cfg.GzipMinLength }}; gzip_types
  {{ $cfg.GzipTypes }}; gzip_proxied any; gzip_vary on; {{ end }}".
- nginx src/http/modules/ngx_http_gzip_filter_module.c ``ngx_http_gzip_header_filter``:
  nothing for "r->header_only", a status other than 200 / 403 / 404, a non-empty
  Content-Encoding, a Content-Length below gzip_min_length (an unknown length compresses),
  a type ``ngx_http_test_content_type`` does not find in gzip_types (text/html always in it,
  "*" any type); past these "r->gzip_vary = 1" (``gzip_vary on``: ``Vary: Accept-Encoding``,
  the client's Accept-Encoding or not), then ``ngx_http_gzip_ok``; compressing, it adds
  ``Content-Encoding: gzip`` and calls ``ngx_http_clear_content_length``,
  ``ngx_http_clear_accept_ranges`` and ``ngx_http_weak_etag``. (Its "r->header_only" is
  not yet set for HEAD then -- ``ngx_http_header_filter``, the last header filter, sets it --
  so a HEAD answer gets the headers its GET would, without a body: :func:`start_gzip`.)
- src/http/ngx_http_core_module.c ``ngx_http_gzip_ok``: the (first) Accept-Encoding line,
  "gzip," at its start or ``ngx_http_gzip_accept_encoding`` (a "gzip" token, case-insensitive,
  at the start or after "," or " ", then its q-value read by ``ngx_http_gzip_quantity``:
  0 or anything invalid refuses); the ``msie6`` word of gzip_disable
  (``r->headers_in.msie6``, ngx_http_request.c ``ngx_http_process_user_agent``: "MSIE 4." /
  "MSIE 5.", "MSIE 6." without "SV1", never Opera); ``r->http_version <
  gzip_http_version`` (1.1: an HTTP/1.0 request is not compressed); ``gzip_proxied any``;
  the gzip_disable regex (PCRE, caseless) on the User-Agent.
- The body filter: one deflate stream per response, "if (ctx->in_buf->flush) ctx->flush =
  Z_SYNC_FLUSH": ingress-nginx's ``proxy_buffering off`` flushes every upstream read, so
  each is compressed and sync-flushed (a Server-Sent Events stream keeps working), the
  trailer (CRC, length) at the end.
"""

from __future__ import annotations

import functools
import re
import zlib
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

import regex as _regex

from ._clientcert import MATCH_TIMEOUT, pcre_braces
from ._header_sets import _asgi_name

if TYPE_CHECKING:
    from ._settings import ProxySettings

__all__ = ["BROTLI_TYPES", "DEFAULT_TYPES", "Encoder", "GzipEncoder", "accepts_gzip",
           "check_disable", "check_settings", "eligible", "encoded_headers", "gzip_headers",
           "gzip_send", "response_eligible", "start_gzip", "wants_gzip"]

#: config.go ``gzipTypes``: the ``gzip-types`` default (text/html is always compressed).
DEFAULT_TYPES = ("application/atom+xml application/javascript application/x-javascript "
                 "application/json application/rss+xml application/vnd.ms-fontobject "
                 "application/x-font-ttf application/x-web-app-manifest+json "
                 "application/xhtml+xml application/xml font/opentype image/svg+xml "
                 "image/x-icon text/css text/javascript text/plain text/x-component")

#: config.go ``brotliTypes``: the ``brotli-types`` default (gzip's list with
#: "application/xml+rss" first; text/html is always compressed). Here, not in proxy/_brotli.py,
#: so that ProxySettings' default imports no brotli code.
BROTLI_TYPES = "application/xml+rss " + DEFAULT_TYPES

_STATUSES = frozenset({200, 403, 404})
_CHARSET = re.compile(rb";\s*charset=", re.IGNORECASE)
_VARY_VALUE = b"Accept-Encoding"


@functools.lru_cache(maxsize=8)
def _types(value: str) -> frozenset[bytes] | None:
    """gzip_types as nginx's ``ngx_http_types_slot`` reads it (lower-cased, text/html
    added); None for "*" (any type)."""
    words = value.split()
    if "*" in words:
        return None
    return frozenset(w.lower().encode("latin-1") for w in words) | {b"text/html"}


#: Escapes PCRE refuses ("PCRE does not support \\L, \\l, \\N{name}, \\U, or \\u": nginx -t
#: fails) and the ``regex`` module would read as characters.
_NO_PCRE = re.compile(r"\\(?:[uUlL]|N\{)")


@functools.lru_cache(maxsize=8)
def _disable(value: str) -> tuple[bool, Any]:
    """gzip_disable as nginx.tmpl writes it (one quoted argument): ``(msie6, regex)``. The
    regex runs as PCRE runs it (nginx compiles it ``NGX_REGEX_CASELESS``, no UTF): the
    pattern's UTF-8 bytes and the User-Agent's bytes read one character per byte, ASCII
    classes and case, POSIX classes (``[[:digit:]]``) and PCRE's literal braces
    (proxy/_clientcert.py ``pcre_braces``), through the ``regex`` module with a match
    timeout (:func:`_disabled_for`), as proxy/_block.py runs nginx's map regexes."""
    if not value:
        return False, None
    if value == "msie6":
        return True, None
    raw = value.encode("utf-8").decode("latin-1")
    m = _NO_PCRE.search(raw.replace("\\\\", "\0\0"))
    if m is not None:
        raise ValueError(f"is not a regular expression PCRE compiles ({m.group()!r})")
    try:
        return False, _regex.compile(pcre_braces(raw), _regex.ASCII | _regex.IGNORECASE)
    except _regex.error as e:
        raise ValueError(f"is not a regular expression: {e}") from None


def _disabled_for(rx: Any, user_agent: bytes) -> bool:
    """Whether the gzip_disable regex spares this User-Agent. A search past the match
    timeout counts as a match: PCRE stops at its match limit, ``ngx_regex_exec_array``
    returns NGX_ERROR, and ``ngx_http_gzip_ok`` refuses on anything but NGX_DECLINED (a
    User-Agent crafted against a backtracking gzip-disable does not hold the event loop)."""
    try:
        return rx.search(user_agent.decode("latin-1"), timeout=MATCH_TIMEOUT) is not None
    except TimeoutError:
        return True


def check_disable(value: str) -> None:
    """ValueError when a ``gzip-disable`` value is no regular expression (as used)."""
    _disable(value)


def check_settings(s: ProxySettings) -> None:
    """ValueError naming the field for a gzip or brotli setting nginx would refuse."""
    # ngx_http_gzip_comp_level_bounds: "must be between 1 and 9"; google/ngx_brotli's
    # ngx_http_brotli_comp_level_bounds: BROTLI_MIN_QUALITY (0) to BROTLI_MAX_QUALITY (11)
    # (filter/ngx_http_brotli_filter_module.c). Out of them nginx -t fails.
    for coding, low, high in (("gzip", 1, 9), ("brotli", 0, 11)):
        level = getattr(s, f"{coding}_level")
        if not low <= level <= high:
            raise ValueError(f"{coding}_level: {level!r} must be from {low} to {high}")
        length = getattr(s, f"{coding}_min_length")
        if length < 0:
            raise ValueError(f"{coding}_min_length: {length!r} must be 0 or more")
        types = getattr(s, f"{coding}_types")
        try:
            types.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(f"{coding}_types: {types!r} is not MIME types") from None
    try:
        _disable(s.gzip_disable)
    except ValueError as e:
        raise ValueError(f"gzip_disable: {s.gzip_disable!r} {e}") from None


def _quantity(v: bytes) -> int:
    """nginx's ``ngx_http_gzip_quantity`` (its sum of the decimals, not their value: only
    zero or not matters)."""
    if not v or v[0] not in b"01":
        return 0
    q = (v[0] - 48) * 100
    if len(v) == 1:
        return q
    c = v[1]
    if c == 44 or c == 32:  # "," " "
        return q
    if c != 46:  # "."
        return 0
    n = 0
    for c in v[2:]:
        if c == 44 or c == 32:
            break
        if 48 <= c <= 57:
            q += c - 48
            n += 1
            continue
        return 0
    if q > 100 or n > 3:
        return 0
    return q


def _accept_encoding(ae: bytes) -> bool:
    """nginx's ``ngx_http_gzip_accept_encoding``."""
    low = ae.lower()
    start = 0
    while True:
        p = low.find(b"gzip", start)
        if p < 0:
            return False
        if p == start or ae[p - 1] in b", ":  # (nginx's test: "p == start", not 0)
            break
        start = p + 4
    p += 4
    last = len(ae)
    while p < last:
        c = ae[p]
        p += 1
        if c == 44:  # ","
            return True
        if c == 59:  # ";"
            break
        if c != 32:
            return False
    else:
        return True
    while p < last:  # quantity
        c = ae[p]
        p += 1
        if c == 113 or c == 81:  # "q" "Q"
            break
        if c != 32:
            return False
    else:
        return True
    if p + 2 > last or ae[p] != 61:  # "="
        return False
    return _quantity(ae[p + 1:]) != 0


def _msie6(user_agent: bytes) -> bool:
    """ngx_http_process_user_agent's ``msie6`` flag for one User-Agent line."""
    flag = False
    i = user_agent.find(b"MSIE ")
    if i >= 0 and i + 7 < len(user_agent):
        if user_agent[i + 6] == 46:  # "."
            major = user_agent[i + 5]
            if major in b"45":
                flag = True
            elif major == 54 and user_agent.find(b"SV1", i + 8) < 0:  # "6"
                flag = True
    if b"Opera" in user_agent:
        flag = False
    return flag


def accepts_gzip(request_headers: Iterable[tuple[bytes, bytes]], http_11: bool,
                 settings: ProxySettings) -> bool:
    """nginx's ``ngx_http_gzip_ok`` with ingress-nginx's directives: the request's
    Accept-Encoding takes gzip, it is HTTP/1.1 (or later), gzip-disable spares its client."""
    if not http_11:
        return False  # gzip_http_version 1.1
    ae: bytes | None = None
    ua: bytes | None = None
    msie6 = False
    for name, value in request_headers:
        n = name.lower()
        if n == b"accept-encoding":
            if ae is None:
                ae = bytes(value)
        elif n == b"user-agent":
            v = bytes(value)
            if ua is None:
                ua = v
            msie6 = _msie6(v) or (msie6 and b"Opera" not in v)
    if ae is None or len(ae) < 4:
        return False
    if not ae.startswith(b"gzip,") and not _accept_encoding(ae):
        return False
    disable_msie6, regex = _disable(settings.gzip_disable)
    if disable_msie6 and msie6:
        return False
    # gzip_proxied any: a request with Via is compressed as any other.
    if regex is not None and ua is not None and _disabled_for(regex, ua):
        return False
    return True


def _media_type(content_type: bytes) -> bytes:
    """The part of a Content-Type nginx looks types up by (``content_type_len``:
    ngx_http_upstream_copy_content_type cuts the value at the ";" of a "charset="
    parameter only; another parameter stays part of the type, which then matches nothing)."""
    m = _CHARSET.search(content_type)
    if m is not None:
        # (nginx skips spaces only after the ";": "text/html ;charset=x" keeps its space.)
        return content_type[:m.start()].lower()
    return content_type.lower()


def response_eligible(status: int, head: bool, headers: Iterable[tuple[bytes, bytes]],
                      settings: ProxySettings) -> bool:
    """The response-side tests of ``ngx_http_gzip_header_filter``, the ones before
    ``r->gzip_vary = 1``: True means ``Vary: Accept-Encoding`` is added, and the body is
    compressed if the request :func:`accepts_gzip` too. ``headers``: (lower-case name,
    value)."""
    return not head and eligible(status, headers, settings.gzip_min_length,
                                 settings.gzip_types)


def eligible(status: int, headers: Iterable[tuple[bytes, bytes]], min_length: int,
             types_value: str) -> bool:
    """The response-side tests nginx's gzip filter and google/ngx_brotli's
    ``ngx_http_brotli_header_filter`` share, in the same order, before their ``r->gzip_vary =
    1``: a 200 / 403 / 404, no non-empty Content-Encoding, a Content-Length (if any) of at
    least ``min_length``, a type ``ngx_http_test_content_type`` finds in ``types_value``
    (gzip_types / brotli_types: text/html always, "*" any)."""
    if status not in _STATUSES:
        return False
    content_type: bytes | None = None
    for name, value in headers:
        if name == b"content-encoding":
            if value.strip():
                return False
        elif name == b"content-length":
            try:
                if int(value) < min_length:
                    return False
            except ValueError:
                return False
        elif name == b"content-type":
            content_type = bytes(value)
    types = _types(types_value)
    if types is None:
        return True  # "*": ngx_http_test_content_type answers before looking at the type
    if not content_type:
        return False
    return _media_type(content_type) in types


def wants_gzip(request_headers: Iterable[tuple[bytes, bytes]], http_11: bool, status: int,
               head: bool, response_headers: Iterable[tuple[bytes, bytes]],
               settings: ProxySettings) -> bool:
    """Whether nginx's gzip filter compresses this response (``use_gzip`` on)."""
    return (settings.use_gzip
            and response_eligible(status, head, response_headers, settings)
            and accepts_gzip(request_headers, http_11, settings))


def _weak(etag: bytes) -> bytes | None:
    """``ngx_http_weak_etag``: a strong ETag gets "W/"; one that is no quoted string is
    dropped (None); a weak one stays."""
    if len(etag) > 2 and etag[:2] == b"W/":
        return etag
    if not etag or etag[:1] != b'"':
        return None
    return b"W/" + etag


def _has_vary(headers: list[tuple[bytes, bytes, bytes]]) -> bool:
    for h in headers:
        if h[1] == b"vary":
            for token in h[2].split(b","):
                t = token.strip().lower()
                if t == b"accept-encoding" or t == b"*":
                    return True
    return False


def gzip_headers(headers: list[tuple[bytes, bytes, bytes]], compress: bool
                 ) -> list[tuple[bytes, bytes, bytes]]:
    """The core's ``(raw name, name, value)`` response headers after the gzip filter:
    ``Vary: Accept-Encoding`` (once: not when a Vary already names it), and, compressing,
    ``Content-Encoding: gzip`` with Content-Length and Accept-Ranges gone and the ETag
    weak."""
    return encoded_headers(headers, b"gzip" if compress else None)


def encoded_headers(headers: list[tuple[bytes, bytes, bytes]], encoding: bytes | None
                    ) -> list[tuple[bytes, bytes, bytes]]:
    """:func:`gzip_headers` for any coding (``b"gzip"``, ``b"br"``; None: not compressed):
    both filters call ``ngx_http_clear_content_length``, ``ngx_http_clear_accept_ranges`` and
    ``ngx_http_weak_etag`` and add their Content-Encoding."""
    out = headers
    if encoding is not None:
        out = []
        for h in headers:
            name = h[1]
            if name == b"content-length" or name == b"accept-ranges" or \
                    name == b"content-encoding":
                continue  # (a Content-Encoding here is empty: response_eligible)
            if name == b"etag":
                weak = _weak(h[2])
                if weak is None:
                    continue
                h = (h[0], name, weak)
            out.append(h)
        out.append((b"Content-Encoding", b"content-encoding", encoding))
    if not _has_vary(out):
        if out is headers:
            out = list(headers)
        out.append((b"Vary", b"vary", _VARY_VALUE))
    return out


class Encoder(Protocol):
    """One response's body coder (:class:`GzipEncoder`, proxy/_brotli.py ``BrotliEncoder``):
    ``feed`` codes and flushes a piece, ``finish`` ends the stream (then both return b"")."""

    def feed(self, data: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


class GzipEncoder:
    """One response's gzip stream: :meth:`feed` compresses and sync-flushes (what was fed so
    far decompresses at once), :meth:`finish` ends the stream (the CRC and length trailer).
    The zlib state (~256 KiB at level 1-9, window 15) is freed by :meth:`finish` or when the
    encoder is dropped."""

    __slots__ = ("_z",)

    def __init__(self, level: int, length: int | None = None) -> None:
        # ngx_http_gzip_filter_memory: a response of known length smaller than the window
        # gets a smaller window and hash ("the actual zlib window size is smaller by 262
        # bytes"), so a small response does not take ~256 KiB of zlib state.
        wbits, memlevel = 15, 8
        if length is not None and length > 0:
            while length < (1 << (wbits - 1)) - 262:
                wbits -= 1
                memlevel -= 1
        self._z: zlib._Compress | None = zlib.compressobj(
            level, zlib.DEFLATED, 16 + wbits, memlevel)

    def feed(self, data: bytes) -> bytes:
        z = self._z
        if z is None:
            return b""
        return z.compress(data) + z.flush(zlib.Z_SYNC_FLUSH)

    def finish(self) -> bytes:
        z = self._z
        if z is None:
            return b""
        self._z = None
        return z.flush(zlib.Z_FINISH)


def start_gzip(request_headers: Iterable[tuple[bytes, bytes]], http_11: bool, status: int,
               head: bool, headers: list[tuple[bytes, bytes, bytes]], settings: ProxySettings
               ) -> tuple[list[tuple[bytes, bytes, bytes]], Encoder | None]:
    """The core's call for a response head (``use_gzip`` or ``enable_brotli`` on): its
    headers after the brotli and gzip filters, and the encoder of its body (None: sent as it
    is). A response to HEAD gets the headers its GET would (``Content-Encoding: gzip``, no
    Content-Length, ``Vary``): nginx sets ``r->header_only`` for HEAD only in
    ``ngx_http_header_filter``, the last header filter, after these filters have run (RFC 9110
    §9.3.2: "the same header fields ... as it would have sent if the request method had been
    GET").

    The brotli filter runs first (google/ngx_brotli filter/config puts
    ngx_http_brotli_filter_module after ngx_http_gzip_filter_module in HTTP_FILTER_MODULES:
    initialised later, it sits above gzip in the header filter chain): a response it
    compresses has ``Content-Encoding: br``, which the gzip filter then leaves alone; one it
    does not (the client takes no br, or brotli-types / brotli-min-length leave it out) is
    the gzip filter's to decide on its own settings (proxy/_brotli.py)."""
    pairs = [(h[1], h[2]) for h in headers]
    vary = False
    if settings.enable_brotli:
        from ._brotli import start_brotli

        started = start_brotli(request_headers, status, head, headers, pairs, settings)
        if type(started) is tuple:
            return started  # Content-Encoding: br
        vary = started is True  # eligible, the client takes no br: Vary all the same
    if settings.use_gzip and eligible(status, pairs, settings.gzip_min_length,
                                      settings.gzip_types):
        if accepts_gzip(request_headers, http_11, settings):
            return encoded_headers(headers, b"gzip"), (
                None if head else GzipEncoder(settings.gzip_level, length_of(headers)))
        vary = True
    return (encoded_headers(headers, None) if vary else headers), None


def length_of(headers: list[tuple[bytes, bytes, bytes]]) -> int | None:
    """The response's Content-Length (:func:`eligible` has read it as a number), else None:
    what both filters tune their window to."""
    return next((int(h[2]) for h in headers if h[1] == b"content-length"), None)


_Send = Callable[[Any], Awaitable[None]]


def _b(v: Any) -> bytes:
    """An ASGI header value as bytes (a ``str`` as uvicorn's h11 writes it, read as latin-1);
    anything else, a ``str`` that is not latin-1 included, is refused with a TypeError naming
    it, as ``_header_sets._asgi_name`` refuses a name (``bytes(7)`` is seven NUL bytes)."""
    return _asgi_name(v, "value")


def _declared(headers: list[tuple[bytes, bytes, bytes]]) -> int | None:
    """The app's Content-Length (None: none, or not a plain number)."""
    for h in headers:
        if h[1] == b"content-length":
            v = h[2].strip()
            return int(v) if v.isdigit() else None
    return None


async def _send_file(send: _Send, enc: Encoder, path: str) -> None:
    # (Read in 64 KiB pieces between the awaited sends: the core imports no asyncio, so no
    # executor; a local file's read is the cost of compressing it.)
    with open(path, "rb") as f:
        while True:
            chunk = f.read(1 << 16)
            if not chunk:
                break
            await send({"type": "http.response.body", "body": enc.feed(chunk),
                        "more_body": True})
    await send({"type": "http.response.body", "body": enc.finish(), "more_body": False})


def _set_headers(items: list[tuple[bytes, bytes, bytes]], cors: list[tuple[bytes, bytes]]
                 ) -> list[tuple[bytes, bytes, bytes]]:
    """``items`` with ``cors`` set as ``more_set_headers`` sets them (proxy/_cors.py
    ``merge``: the same names replaced)."""
    names = {bytes(n).lower() for n, _ in cors}
    return [h for h in items if h[1] not in names] + [
        (bytes(n), bytes(n).lower(), bytes(v)) for n, v in cors]


async def _merged_start(send: _Send, message: Any, headers: list[tuple[bytes, bytes, bytes]],
                        reply: Any, cors: list[tuple[bytes, bytes]]) -> None:
    """Send a response start whose gzip decision was taken on the app's headers with
    ``reply.cors`` set (``_set_headers``). ``reply.send`` sets ``reply.cors`` again after this
    filter (replacing every header of those names): for this start it is given those names'
    headers as the filter left them -- a ``Vary: Origin`` of add-headers followed by the
    filter's ``Vary: Accept-Encoding``, as nginx sends both -- and the app's other headers
    as before (``rewriting_send`` on the way sees only the app's, as in the core)."""
    names = {bytes(n).lower() for n, _ in cors}
    message = dict(message)
    message["headers"] = [(h[1], h[2]) for h in headers if h[1] not in names]
    reply.cors = [(h[1], h[2]) for h in headers if h[1] in names]
    try:
        await send(message)
    finally:
        reply.cors = cors


def gzip_send(send: _Send, scope: Any, settings: ProxySettings, reply: Any = None) -> _Send:
    """IngressASGI: the mounted app's ``send`` through the brotli and gzip filters
    (``use_gzip`` or ``enable_brotli`` on, an ``http`` scope; :func:`start_gzip`): its response
    start decided as the core's, its body compressed, each
    ``http.response.body`` message sync-flushed (as each upstream read is), the trailer with
    the last. An app whose body then breaks the Content-Length it declared gets the error
    its server's HTTP/1.1 writer would raise (h11: "Too much data for declared
    Content-Length" / "Too little data ..."), before the trailer: the client sees a
    truncated message, as the proxy's client does when its upstream breaks its length,
    never a complete one. With ``hide-headers`` the app's headers are hidden first (the
    returned ``send`` does it). ``reply``: the request's ``_Reply`` (_asgi_reply.py), whose
    ``cors`` headers (add-headers, CORS, custom-headers: headers-more's ``more_set_headers``,
    a header filter nginx runs before its gzip filter, as the core's
    ``_add_response_headers`` runs before ``start_gzip``) the filter decides on:
    ``_merged_start``."""
    # [encoder, the app's declared Content-Length, body bytes so far]
    state: list[Any] = [None, None, 0]

    async def gzipping(message: Any) -> None:
        kind = message.get("type")
        if kind == "http.response.start" or kind == "websocket.http.response.start":
            # (the second: a WebSocket handshake the app refuses with a response of its own,
            # the websocket.http.response extension: an upstream's refusal, compressed as the
            # core compresses a refused upgrade's answer)
            raw = message.get("headers") or ()
            items = [(_asgi_name(n), _asgi_name(n).lower(), _b(v)) for n, v in raw]
            version = str(scope.get("http_version") or "1.1")
            cors = reply.cors if reply is not None else None
            headers, enc = start_gzip(
                scope.get("headers") or (), version not in ("1.0", "0.9"),
                int(message.get("status", 200)), scope.get("method") == "HEAD",
                items if not cors else _set_headers(items, cors), settings)
            state[0] = enc
            state[1] = _declared(items) if enc is not None else None
            state[2] = 0
            if cors:
                await _merged_start(send, message, headers, reply, cors)
                return
            if headers is not items or (type(raw) is not list and type(raw) is not tuple):
                # (www.rst: "headers (Iterable[[byte string, byte string]])": a generator the
                # app gave was read up above; handed on as the list, not passed on empty.)
                message = dict(message)
                message["headers"] = [(h[1], h[2]) for h in headers]
        elif kind == "http.response.body" or kind == "websocket.http.response.body":
            enc = state[0]
            if enc is not None:
                body = bytes(message.get("body") or b"")
                more = bool(message.get("more_body", False))
                declared = state[1]
                if declared is not None:
                    state[2] += len(body)
                    if state[2] > declared or (not more and state[2] < declared):
                        state[0] = None
                        # (the filter that dropped the length: gzip or brotli)
                        key = "use-gzip" if type(enc) is GzipEncoder else "enable-brotli"
                        raise RuntimeError(
                            f"Too {'much' if state[2] > declared else 'little'} data for "
                            f"declared Content-Length ({declared}; {key})")
                out = enc.feed(body) if body else b""
                if not more:
                    out += enc.finish()
                    state[0] = None
                message = dict(message)
                message["body"] = out
        elif kind == "http.response.pathsend" and state[0] is not None:
            # The ASGI pathsend extension (a server offering it, an app such as Starlette's
            # FileResponse using it): the server would send the file as it is, under this
            # filter's Content-Encoding: gzip. Its content compressed here instead, as
            # http.response.body messages.
            enc = state[0]
            state[0] = None
            await _send_file(send, enc, str(message["path"]))
            return
        await send(message)

    if settings.hide_headers:
        # hide-headers (proxy_hide_header) drops the app's headers before the gzip filter
        # sees them, never the Content-Encoding / Vary the filter adds: IngressASGI hides
        # here, not after (its own hiding_send is skipped when use-gzip wraps an http app).
        from ._header_sets import hiding_send
        from ._headers import hidden_of

        return hiding_send(gzipping, hidden_of(settings))
    return gzipping
