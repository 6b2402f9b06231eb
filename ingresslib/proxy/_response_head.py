"""The response head to the client: ``_response_head`` serialises it (h11's
``Connection.send(Response)`` written out once) and chooses its body framing (``_FRAME_*``).
No socket, asyncio, ssl or logging handler here.

The upstream response head's rewriting and the upstream Host (``ResponseRewrite``,
``rewrite_response_headers``, ``parse_upstream_vhost``...):
``upstream-vhost``, ``proxy-redirect-from``/``proxy-redirect-to`` and
``proxy-cookie-domain``/``proxy-cookie-path``: what ingress-nginx writes for them and what
nginx then does, read here (``parse_*``, called by proxy/_annotations.py
``parse_route_options``) and applied to the upstream request's Host and the upstream
response's ``Location``/``Refresh``/``Set-Cookie`` (``rewrite_response_headers``).

- ``upstream-vhost``: nginx.tmpl ``{{ if not (empty $location.UpstreamVhost) }}
  proxy_set_header Host "{{ $location.UpstreamVhost }}"; {{ else }} proxy_set_header Host
  $best_http_host;``. ingress-nginx's validator (upstreamvhost/main.go
  ``parser.ValidateServerName``: ``IsValidRegex``, ``^[/\\-._~a-zA-Z0-9/:^$[](){}*+?|&=\\]*$``
  after trimming) lets nginx variables through (``$host``, ``$http_host``...). ingresslib
  expands none: a value with ``$`` is refused with a warning (the Host stays the client's), so
  is anything that is not a valid Host header (``check_host_header``): never a CR/LF.
- ``proxy-redirect-from``/``-to`` (annotations/proxy/main.go, default ``off`` for both; the
  validator ``URLIsValidRegex``: no ``$``, no space once spaces are removed). nginx.tmpl: ``{{ if
  (or (eq ProxyRedirectFrom "default") (eq ProxyRedirectFrom "off")) }} proxy_redirect {{
  from }}; {{ else if not (eq ProxyRedirectTo "off") }} proxy_redirect {{ from }} {{ to }};``.
  ``off`` (or ``to`` left ``off``): no rewrite. ``default``: nginx replaces the proxy_pass URL
  (``http://upstream_balancer``, no URI part, so ``http://upstream_balancer/``) by ``/``: the
  same here. Otherwise ngx_http_proxy_module.c ``ngx_http_proxy_rewrite_complex_handler``:
  the Location (and a Refresh's text after ``url=``, ngx_http_upstream.c
  ``ngx_http_upstream_rewrite_refresh``, found case-insensitively) starting with ``from``
  (case-sensitive, ``ngx_rstrncmp``) gets that prefix replaced by ``to``. A ``from`` starting
  with ``~`` is a regex there: refused here (warning).
- ``proxy-cookie-domain``/``proxy-cookie-path`` (default ``off``; nginx.tmpl
  ``proxy_cookie_domain {{ CookieDomain }};`` / ``proxy_cookie_path {{ CookiePath }};``): the
  value is ``off`` or ``<from> <to>`` (one word other than ``off``, or three, fails nginx's
  configuration test: refused with a warning here). ngx_http_proxy_module.c
  ``ngx_http_proxy_rewrite_cookie``: every ``domain=``/``path=`` attribute of a Set-Cookie (its
  name case-insensitive, the cookie's own ``name=value`` excepted) is rewritten:
  ``ngx_http_proxy_rewrite_domain_handler`` compares the whole domain case-insensitively, a
  leading ``.`` of the cookie's domain and of ``from`` ignored (the dot kept); the path is a
  case-sensitive prefix, replaced (``ngx_http_proxy_rewrite_complex_handler``); a rewritten
  Set-Cookie is written back with its attributes joined by ``"; "`` (``_rewrite_cookie``).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ._headers import check_host_header

__all__ = ["_FRAME_LENGTH", "_FRAME_CHUNKED", "_FRAME_CLOSE", "_FRAME_NONE", "_response_head",
           "ResponseRewrite", "parse_upstream_vhost", "parse_redirect", "parse_redirect_word",
           "parse_cookie_pair", "rewrite_response_headers", "rewriting_send"]

#: Downstream body framing of the response being written (what h11's writers would do).
_FRAME_LENGTH, _FRAME_CHUNKED, _FRAME_CLOSE, _FRAME_NONE = range(4)


def _response_head(status: int, reason: bytes, headers: list[tuple[bytes, bytes, bytes]],
                   method: bytes, client_11: bool, client_keep_alive: bool
                   ) -> tuple[bytes, int, bool]:
    """Serialise a response head to the client: ``(bytes, framing, close_after)``.

    This is h11's ``Connection.send(Response)`` written out once (its framing and Connection
    rules, RFC 9112 §6.3 / §9.3, same header order and case) without its per-event state
    machine and header re-validation: every header here came out of h11's parser or is ours.
    - No Content-Length (and not 204/304/HEAD): chunked to an HTTP/1.1 client, else the body
      is delimited by closing the connection ("Connection: close" added).
    - A HEAD response without Content-Length gets no framing header at all, as nginx sends it
      (ngx_http_chunked_header_filter returns early for "(r->method & NGX_HTTP_HEAD)", keeping
      the connection; the upstream's Transfer-Encoding is never passed on): h11 would add
      ``Transfer-Encoding: chunked`` (GET's framing, RFC 9110 §9.3.2 allows either).
    - The client asked for close (or is HTTP/1.0): ``Connection: close`` replaces any
      Connection header ("keep-alive" removed), title case, last -- as h11 writes it.
    """
    framing = _FRAME_LENGTH
    need_close = False
    has_length = False
    close_token = False
    for h in headers:
        n = h[1]
        if n == b"content-length":
            has_length = True
        elif n == b"connection" and b"close" in [t.strip().lower() for t in h[2].split(b",")]:
            close_token = True
    if status in (204, 304) or method == b"HEAD":
        framing = _FRAME_NONE
    if not has_length and status not in (204, 304):
        headers = [h for h in headers if h[1] != b"transfer-encoding"]
        if method != b"HEAD":  # (HEAD: no framing header, _FRAME_NONE)
            if client_11:
                headers.append((b"Transfer-Encoding", b"transfer-encoding", b"chunked"))
                framing = _FRAME_CHUNKED
            else:
                need_close = True
                framing = _FRAME_CLOSE
    if not client_keep_alive or need_close:
        tokens = {t.strip().lower() for _, n, v in headers if n == b"connection"
                  for t in v.split(b",")}
        tokens.discard(b"")
        tokens.discard(b"keep-alive")
        tokens.add(b"close")
        headers = [h for h in headers if h[1] != b"connection"]
        headers.append((b"Connection", b"connection", b", ".join(sorted(tokens))))
        close_token = True
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, reason)]
    lines += [b"%s: %s\r\n" % (raw, v) for raw, _, v in headers]
    lines.append(b"\r\n")
    return b"".join(lines), framing, close_token or need_close


#: parser/validators.go: ``alphaNumericChars = `\\-\\.\\_\\~a-zA-Z0-9\\/:```, ``urlEnabledChars
#: = regexp.QuoteMeta(`,:?&=`)``; URLIsValidRegex (redirect, cookie-path) and
#: BasicCharsRegex (cookie-domain: ``/`` + alphaNumericChars), checked with spaces removed.
_BASIC = re.compile(r"[\-._~a-zA-Z0-9/:]*")
_URL = re.compile(r"[\-._~a-zA-Z0-9/:,?&=]*")
_REFRESH_URL = re.compile(rb"url=", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ResponseRewrite:
    """What nginx changes in the upstream response's head for one location."""

    #: ``proxy_redirect from to`` (None: off).
    redirect: tuple[bytes, bytes] | None = None
    #: ``proxy_cookie_domain from to`` (``from`` lower-case, without a leading ``.``).
    cookie_domain: tuple[bytes, bytes] | None = None
    #: ``proxy_cookie_path from to``.
    cookie_path: tuple[bytes, bytes] | None = None

    def __bool__(self) -> bool:
        return (self.redirect is not None or self.cookie_domain is not None
                or self.cookie_path is not None)


def parse_upstream_vhost(value: str) -> bytes:
    """The Host sent upstream for an ``upstream-vhost`` value; ValueError when refused."""
    v = value.strip()
    if not v:
        raise ValueError("empty upstream-vhost")
    if "$" in v:
        raise ValueError(f"invalid upstream-vhost {value!r}: nginx variables (\"$...\") are "
                         "not supported by ingresslib")
    if not re.fullmatch(r"[/\-._~a-zA-Z0-9:^\[\](){}*+?|&=\\]*", v):
        raise ValueError(f"invalid upstream-vhost {value!r}: ingress-nginx's validator "
                         "refuses it")
    raw = v.encode("ascii")
    try:
        check_host_header(raw)
    except Exception as e:  # RemoteProxyError: not a Host a backend could be sent
        raise ValueError(f"invalid upstream-vhost {value!r}: not a valid Host") from e
    return raw


def _words(value: str, chars: re.Pattern[str], what: str) -> list[str]:
    if not chars.fullmatch(value.replace(" ", "")) or any(
            c.isspace() and c != " " for c in value):
        raise ValueError(f"invalid {what} {value!r}: ingress-nginx's validator refuses it")
    return value.split()


def parse_redirect_word(value: str, what: str) -> str:
    """One ``proxy-redirect-from``/``-to`` value (ValueError when refused)."""
    w = _words(value, _URL, what)
    if len(w) != 1:
        raise ValueError(f"invalid {what} {value!r}: one word (nginx's proxy_redirect takes "
                         "from and to)")
    return w[0]


def parse_redirect(frm: str, to: str | None) -> tuple[bytes, bytes] | None:
    """``proxy_redirect`` as nginx.tmpl writes it from ``proxy-redirect-from`` and the
    (valid) ``proxy-redirect-to`` (None: unset or invalid, ``off``): None when nothing is
    rewritten; ValueError for a ``from`` refused (the caller warns, nothing is rewritten)."""
    f = [parse_redirect_word(frm, "proxy-redirect-from")]
    t = [to if to is not None else "off"]
    if f[0] == "off":
        return None
    if f[0] == "default":
        # proxy_pass http://upstream_balancer; (no URI): "default" is that URL + "/" -> "/".
        return (b"http://upstream_balancer/", b"/")
    if t[0] == "off":
        return None  # nginx.tmpl writes no proxy_redirect
    if f[0].startswith("~"):
        raise ValueError(f"proxy-redirect-from {frm!r}: regular expressions (\"~\") are not "
                         "supported by ingresslib")
    return (f[0].encode("ascii"), t[0].encode("ascii"))


def parse_cookie_pair(value: str, what: str) -> tuple[bytes, bytes] | None:
    """``proxy-cookie-domain`` / ``proxy-cookie-path``: ``off`` (None) or ``from to``."""
    chars = _BASIC if what == "proxy-cookie-domain" else _URL
    w = _words(value, chars, what)
    if w == ["off"]:
        return None
    if len(w) != 2:
        raise ValueError(f"invalid {what} {value!r}: \"off\" or \"<from> <to>\" (nginx's "
                         "configuration test refuses anything else)")
    if w[0].startswith("~"):
        raise ValueError(f"{what} {value!r}: regular expressions (\"~\") are not supported "
                         "by ingresslib")
    frm, to = w[0].encode("ascii"), w[1].encode("ascii")
    if what == "proxy-cookie-domain":
        # ngx_http_proxy_cookie_domain: "if (value[1].data[0] == '.') { value[1].len--; ...".
        frm = frm[1:] if frm.startswith(b".") else frm
        frm = frm.lower()
    return (frm, to)


def _rewrite_cookie(value: bytes, rw: ResponseRewrite) -> bytes:
    """nginx >= 1.19.3 ``ngx_http_proxy_rewrite_cookie``: ``ngx_http_proxy_parse_cookie``
    splits the value on ``;`` into ``key[=value]`` attributes, spaces (only) trimmed around
    each key and value; a cookie whose first part has no ``=`` is left alone ("if
    (attr[0].value.data == NULL) return NGX_DECLINED"); every later ``domain``/``path``
    attribute (key case-insensitive, with a value) is rewritten; when one was, the header is
    rebuilt from the attributes joined with ``"; "`` (nginx writes it back that way)."""
    attrs: list[tuple[bytes, bytes | None]] = []
    for part in value.split(b";"):
        key, eq, v = part.partition(b"=")
        attrs.append((key.strip(b" "), v.strip(b" ") if eq else None))
    if attrs[0][1] is None:
        return value
    changed = False
    for i in range(1, len(attrs)):
        key, val = attrs[i]
        if val is None:
            continue
        k = key.lower()
        new = None
        if k == b"domain" and rw.cookie_domain is not None:
            # ngx_http_proxy_rewrite_domain_handler: "if (p[0] == '.') { p++; prefix++;
            # len--; }", then the whole rest compared with ngx_rstrncasecmp.
            dot = val.startswith(b".")
            if (val[1:] if dot else val).lower() == rw.cookie_domain[0]:
                new = (b"." if dot else b"") + rw.cookie_domain[1]
        elif k == b"path" and rw.cookie_path is not None:
            # ngx_http_proxy_rewrite_complex_handler: a case-sensitive prefix (ngx_rstrncmp)
            if val.startswith(rw.cookie_path[0]):
                new = rw.cookie_path[1] + val[len(rw.cookie_path[0]):]
        if new is not None:
            attrs[i] = (key, new)
            changed = True
    if not changed:
        return value
    return b"; ".join(k if v is None else k + b"=" + v for k, v in attrs)


def _rewrite_redirect(value: bytes, pair: tuple[bytes, bytes], offset: int) -> bytes:
    frm, to = pair
    if value.startswith(frm, offset):
        return value[:offset] + to + value[offset + len(frm):]
    return value


def rewrite_response_headers(headers: list[tuple[bytes, bytes, bytes]],
                             rw: ResponseRewrite) -> list[tuple[bytes, bytes, bytes]]:
    """``headers`` (``(raw name, lower-case name, value)``) with ``rw`` applied."""
    out = []
    for raw, name, value in headers:
        if name == b"location" and rw.redirect is not None:
            value = _rewrite_redirect(value, rw.redirect, 0)
        elif name == b"refresh" and rw.redirect is not None:
            m = _REFRESH_URL.search(value)
            if m is not None:
                value = _rewrite_redirect(value, rw.redirect, m.end())
        elif name == b"set-cookie" and (rw.cookie_domain is not None
                                        or rw.cookie_path is not None):
            value = _rewrite_cookie(value, rw)
        out.append((raw, name, value))
    return out


_ASGI_STARTS = frozenset({"http.response.start", "websocket.http.response.start"})


def rewriting_send(send: Callable[[Any], Awaitable[None]], rw: ResponseRewrite
                   ) -> Callable[[Any], Awaitable[None]]:
    """IngressASGI: the mounted app's ``send`` with ``rw`` applied to its response start's
    headers, as the proxy applies it to an upstream's head (before this hop adds its own
    headers: the affinity cookie is never rewritten, as nginx writes its own after
    ``proxy_cookie_*``). Names and values read as IngressASGI's other filters read them
    (a ``str`` as latin-1, a bytes-like as bytes, anything else a TypeError naming it)."""
    from ._gzip import _b
    from ._header_sets import _asgi_name

    async def rewritten(message: Any) -> None:
        if message.get("type") in _ASGI_STARTS:
            headers = message.get("headers")
            if headers:
                triples = [(raw, raw.lower(), _b(v))
                           for raw, v in ((_asgi_name(n), v) for n, v in headers)]
                message = dict(message)
                message["headers"] = [(raw, v) for raw, _, v in
                                      rewrite_response_headers(triples, rw)]
        await send(message)

    return rewritten
