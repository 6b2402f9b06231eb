"""IngressASGI's reading of the request: the routing target and nginx's ``$request_uri`` from
the scope (``_routing_target``, ``_request_uri``), and the request headers, read once and
checked where the proxy checks them (``_scan_headers``; ``_scan_routing`` with
``rewrite_headers=False``; ``_read_headers``, the general path): a Host the proxy refuses or
two different ones, a second line of a header nginx reads once, a Content-Length or
Transfer-Encoding the proxy refuses, an absolute-form target whose authority names another host
or port than Host --
each a ``BadRequestError`` with its 400, raised before any routing.

Scope rules (ASGI HTTP/WebSocket connection scope, asgiref ``specs/www.rst``):

- The routing path is the canonical form (SEMANTICS §5) of ``raw_path`` when the server gives
  it (uvicorn, hypercorn, daphne do), else of ``path`` re-quoted. A path that has no canonical
  form is answered ``400`` (``BadRequestError.status_hint``) and never reaches an app.
- ``path`` includes ``root_path`` (asgiref: "root_path ... does not change the path being
  routed"; Starlette ≥ 0.35 and uvicorn ≥ 0.26 follow it): routing uses the part after the
  incoming ``root_path``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from ._errors import BadRequestError
from .proxy._errors import RemoteProxyError
from .proxy._headers import (
    FORWARDED_DROP,
    UNIQUE_REQUEST,
    HeaderKind,
    absolute_form,
    check_host_header,
    content_length,
    duplicate_header,
    note_read_once,
    request_header_kind,
    split_absolute_form,
    transfer_coding_error,
    valid_request_id,
)
from .proxy._settings import ProxySettings

if TYPE_CHECKING:
    from ._asgi import Scope

__all__ = [
    "_PATH_SAFE",
    "_PASS",
    "_HOST",
    "_LENGTH",
    "_CHUNKED",
    "_UPGRADE",
    "_FORWARDED_FOR",
    "_FORWARDED",
    "_REQUEST_ID",
    "_CONNECTION",
    "_UNIQUE",
    "_UNIQUE_DROP",
    "_NONE",
    "_NotScanned",
    "_absolute_form",
    "_authorization",
    "_has_host",
    "_read_headers",
    "_read_names_for",
    "_request_uri",
    "_routing_target",
    "_scan_headers",
    "_scan_routing",
]

# RFC 3986 pchar minus "%" (and "/"): what ``quote`` must leave alone when re-quoting ``path``.
_PATH_SAFE = "/-._~!$&'()*+,;=:@"

# HeaderKind members as globals: compared by identity once per special request header.
_PASS, _HOST, _LENGTH, _CHUNKED, _UPGRADE = (HeaderKind.PASS, HeaderKind.HOST, HeaderKind.LENGTH,
                                             HeaderKind.CHUNKED, HeaderKind.UPGRADE)
_FORWARDED_FOR, _FORWARDED, _REQUEST_ID = (HeaderKind.FORWARDED_FOR, HeaderKind.FORWARDED,
                                           HeaderKind.REQUEST_ID)
#: ``_scan_headers``'s code for ``Connection`` (a DROP header whose tokens are read): not a
#: HeaderKind value.
_CONNECTION = -1
#: ``_scan_headers``'s codes for a ``UNIQUE_REQUEST`` name that passes (Authorization,
#: If-None-Match...) and for one that is dropped (Expect): a second line is refused, as the
#: proxy refuses it (nginx's "client sent duplicate header line", 400). Content-Length and
#: Transfer-Encoding keep their kinds; their branches refuse a second line.
_UNIQUE = -2
_UNIQUE_DROP = -3


def _authorization(scope: Scope) -> bytes | None:
    """The request's ``Authorization`` value (the first one), for ``auth-type: basic``."""
    for name, value in scope.get("headers") or ():
        if bytes(name).lower() == b"authorization":
            return bytes(value)
    return None


def _routing_target(scope: Scope, root: str) -> str:
    raw = scope.get("raw_path")
    if raw:
        target = raw.decode("latin-1") if isinstance(raw, (bytes, bytearray)) else str(raw)
        target = target.partition("?")[0]
        if not root:
            return target
        # The mount as the server matched it: on the decoded path, whatever its spelling.
        mounted = _mount_unescaped(target, root) if "%" in target else target
        if mounted == root or mounted.startswith(root + "/"):
            # Servers differ on whether raw_path holds root_path (uvicorn 0.54 and
            # Starlette's Mount: yes; earlier uvicorn releases: no), while ``path`` holds it
            # (see the module docstring). raw_path is "unmodified from the bytes that were
            # received": when ``path`` is root_path + raw_path decoded, raw_path is the part
            # under the mount, and a request for "/mnt/x" there must not lose its "/mnt".
            decoded = scope.get("path")
            if not (isinstance(decoded, str) and decoded == root + unquote(target)):
                target = mounted[len(root):] or "/"
        return target
    path: str = scope.get("path") or "/"
    if root and (path == root or path.startswith(root + "/")):
        path = path[len(root):] or "/"
    return quote(path, safe=_PATH_SAFE)


def _mount_unescaped(target: str, root: str) -> str:
    """``target`` with its first segments spelled as ``root`` when they are ``root`` with
    escapes (``/%6Dnt/x`` under ``/mnt``): the server mounted the app on the decoded path
    (Starlette's Mount matches ``path``), so those segments are the mount whatever their
    spelling; left as sent, the request would be routed with the mount in its path, on
    another rule than the same request spelled plainly. Anything else is returned as is."""
    n = root.count("/") + 1
    prefix = "/".join(target.split("/", n)[:n])
    if prefix != root and unquote(prefix) == root:
        return root + target[len(prefix):]
    return target


def _request_uri(scope: Scope, rel: str, query: str | None) -> tuple[str, str | None]:
    """nginx's ``$request_uri`` ("full original request URI (with arguments)") of an ASGI
    request, as ``(path, query)``: ``raw_path`` ("The original HTTP path component,
    unmodified from the bytes that were received by the web server", asgiref www.rst) --
    ``root_path`` included when the server has it there, since the client sent it -- and
    ``query`` (``query_string``). Without ``raw_path``, ``path`` re-quoted, as for
    X-Original-URI. An absolute-form one gives its path (nginx parses scheme and host apart).
    Its routed part passed ``canonical_path`` already; a raw path that is not ASCII (no
    client sends one) gives ``rel``, the canonical path routed on."""
    raw = scope.get("raw_path")
    if not raw:
        # An absolute-form ``path`` (routing accepted it) gives its path below, as from
        # ``raw_path``: the Location was "https://hosthttp://host/x".
        target = quote(scope.get("path") or "/", safe=_PATH_SAFE)
    else:
        target = raw.decode("latin-1") if isinstance(raw, (bytes, bytearray)) else str(raw)
        target = target.partition("?")[0]
        if not target.isascii():
            return rel, query
    if target[:1] != "/":
        try:
            target = split_absolute_form(target)[0]
        except RemoteProxyError:
            return rel, query
    return target, query


def _read_headers(scope: Scope, read: frozenset[bytes]
                  ) -> tuple[list[tuple[bytes, bytes]], str, int, list[bytes]]:
    """One pass over the request headers: ``(headers with lower-cased names, Host, declared
    Content-Length, Connection tokens)``.

    www.rst: names and values are byte strings. A name that is not ``bytes`` is a 400 (no
    name the proxy could receive). A value of a header the adapter reads (``read``: Host,
    the framing, Connection, Authorization, X-Request-ID, the forwarded family) is read as
    the proxy reads its bytes: a ``bytearray`` or ``memoryview`` as its bytes, anything else
    (a ``str``) 400, never a 500 from a ``bytes`` operation on it. The values of the other
    headers go to the app as they came, and to the router, which reads any header a route
    names (canary header and cookie, affinity cookie, ``upstream-hash-by``, a balancer's
    ``RequestContext``): a ``bytearray`` or ``memoryview`` value as its bytes.

    The Content-Length is its value, -1 for none; one the proxy refuses (``content_length``:
    not digits, ``+5``, ``1_0``, over 2**63 - 1) is its 400 here too, limit or not, as is a
    Transfer-Encoding it refuses (``transfer_coding_error``: HTTP/1.0, not ``chunked``, with
    a Content-Length). A server built on ``int()`` or that lets both framings through hands
    them over. The Host is the one the request is routed on, refused (400) where the proxy
    refuses it.

    www.rst: ":authority ... must be added to the start of the iterable with host as the
    header name or replace any existing host header". A server that adds it and keeps the
    client's Host hands over two; the proxy refuses a duplicate Host (RFC 9112 §3.2: "more
    than one Host header field line" → 400). Two *different* values are refused here: an app
    that joins them (Django) or takes the last would see another host than the one routed
    on. Each value must pass the proxy's ``check_host`` (SEMANTICS §9 "bad Host values
    (spaces, /, @, bad ports)"): ``shop.test:80@admin.test`` would otherwise route as
    shop.test while ``urlsplit`` (Starlette's ``request.url``) reads admin.test.

    Over HTTP/1.x no server adds a Host: two of them came from the client, refused like the
    proxy (h11: "Found multiple Host: headers") whatever their values; and an HTTP/1.1 request
    without one is refused too (RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request)
    status code to any HTTP/1.1 request message that lacks a Host header field"). A server
    that does not check these itself (one built on httptools or twisted) hands them over.
    An HTTP/2 or HTTP/3 request with neither ``:authority`` nor Host is refused as well:
    nginx's ngx_http_process_request_header refuses any version after 1.0 without one ("if
    (r->headers_in.host == NULL && r->http_version > NGX_HTTP_VERSION_10)"); only HTTP/1.0
    is routed without a host. www.rst: ``http_version`` "Optional; if missing defaults to
    "1.1"".
    """
    version = scope.get("http_version") or "1.1"
    raw_headers = scope.get("headers") or ()
    items: list[tuple[bytes, bytes]] = []
    for k, v in raw_headers:
        if type(k) is not bytes:
            # www.rst: header names are byte strings. A str, bytearray or memoryview one (the
            # scans hand it over: ``_NotScanned``) is no name the proxy could receive, and
            # would raise below (a bytearray is unhashable, a str has no bytes ``translate``,
            # a memoryview no ``lower``): 400, as a head the proxy cannot parse.
            raise BadRequestError("header name is not a byte string", 400)
        name = k.lower()
        if type(v) is not bytes and name in read:
            v = _value(v)
        items.append((name, v))
    host: bytes | None = None
    length = -1
    te: Any = None
    named: list[bytes] = []
    unique: list[bytes] | None = None
    for name, v in items:
        if name not in _READ_NAMES:
            continue
        if name in UNIQUE_REQUEST:
            # The proxy's 400 for a second line (nginx's "client sent duplicate header line").
            unique = note_read_once(unique, name, _duplicate)
        if name == b"host":
            value = bytes(v)
            if host is None:
                host = value
            elif version in ("1.0", "1.1") or value.lower() != host.lower():
                raise BadRequestError("conflicting Host headers", 400)
        elif name == b"content-length":
            length = _length(v)
        elif name == b"transfer-encoding":
            te = v
        elif name == b"connection":
            if name in read:  # (not with ``rewrite_headers`` off: the app's business)
                named.extend(t.strip().lower() for t in v.split(b","))
    if te is not None:
        _check_chunked(te, version, length >= 0)
    if host is None:
        if version != "1.0":
            # Every version after 1.0 (nginx: "r->http_version > NGX_HTTP_VERSION_10"), an
            # HTTP/2 or HTTP/3 request without :authority or Host too.
            raise BadRequestError("request without Host", 400)
        return items, "", length, named
    return items, _host_str(host), length, named


@functools.lru_cache(maxsize=16)
def _read_names(settings: ProxySettings, rewrite: bool) -> frozenset[bytes]:
    """The names whose values the adapter reads (``_read_headers``: one that is not a byte
    string is a 400 there), with ``rewrite_headers`` (the scan's; the forwarded family and
    X-Request-ID are read to be rewritten) and without (the routing scan's: Host, the
    framing, the names nginx reads once, the client address, the X-Forwarded-Host of an
    ssl-redirect's Location). Not an attribute: past 30 instance attributes CPython stops
    sharing the instance dict's keys, and every ``self.x`` of the hot path gets slower."""
    ff_name = settings.forwarded_for_header.lower().encode("latin-1")
    if not rewrite:
        return _READ_NAMES - {b"connection"} | {b"transfer-encoding", ff_name,
                                                b"x-forwarded-host"}
    return _READ_NAMES | {b"transfer-encoding", b"x-request-id", ff_name} | {
        name for name in FORWARDED_DROP
        if request_header_kind(name, None, ff_name, settings) in (
            HeaderKind.FORWARDED, HeaderKind.FORWARDED_FOR)}


def _read_names_for(settings: ProxySettings, rewrite: bool) -> frozenset[bytes]:
    """``_read_names``, also for settings that cannot be hashed: ProxySettings' own fields
    always hash (a list given for a tuple is kept as a tuple), but a subclass's own field is
    not checked (``@dataclass(frozen=True) class S(ProxySettings): tags: list[str]``)."""
    try:
        return _read_names(settings, rewrite)
    except TypeError:
        return _read_names.__wrapped__(settings, rewrite)


def _value(v: Any) -> bytes:
    """The value of a header the adapter reads, as the proxy would read those bytes: a
    ``bytearray`` or ``memoryview`` as its bytes; anything else (a ``str``: www.rst says
    byte strings, and no bytes are known for it) is the 400 of a head the proxy cannot
    parse."""
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    raise BadRequestError("header value is not a byte string", 400)



#: An empty list no one appends to (``__call__``'s defaults for what the scan did not find).
_NONE: list[Any] = []

#: The header names ``_read_headers`` reads or counts.
_READ_NAMES = UNIQUE_REQUEST | {b"host", b"content-length", b"connection"}
#: Host values that passed ``check_host`` (a pure check), with their ``str``: a handful of
#: hosts come again and again.
_CHECKED_HOSTS: dict[bytes, str] = {}


class _NotScanned(Exception):
    """A header name ``_scan_headers`` does not take (not ``bytes`` once lower-cased, or not
    hashable): ``_read_headers`` and ``_backend_headers`` decide, as they always did."""


def _duplicate(name: bytes) -> BadRequestError:
    """The proxy's 400 for a second line of a ``UNIQUE_REQUEST`` header."""
    err = duplicate_header(name)
    return BadRequestError(str(err), err.status_hint)


#: ``bytes.isdigit`` (ASCII digits only): called on a ``str`` or ``bytearray`` it raises
#: TypeError, which sends a scan to the general path (``_NotScanned``).
_isdigit = bytes.isdigit


def _length(value: Any) -> int:
    """A Content-Length value as the proxy reads it (``content_length``), else its 400.

    nginx: ``ngx_atoof`` failing is "client sent invalid "Content-Length" header", 400, in
    ngx_http_process_request_header before the TRACE 405 and before any location, so whatever
    ``proxy-body-size`` says (``0`` too): a 400, never the 413 ``int()`` made of ``+5`` or
    ``1_000``, and no app for ``-5``, ``5 5`` or a value ``int()`` could not read."""
    try:
        return content_length(value)
    except RemoteProxyError as err:
        raise BadRequestError(str(err), err.status_hint) from None


def _check_chunked(value: Any, version: str, has_length: bool) -> None:
    """The proxy's 400 for a Transfer-Encoding it refuses (``transfer_coding_error``): on
    HTTP/1.0, other than ``chunked``, with a Content-Length. uvicorn's h11 lets the first and
    the last through (it reads the body chunked), httptools ``gzip, chunked``."""
    why = transfer_coding_error(value, version == "1.0", has_length)
    if why is not None:
        raise BadRequestError(why, 400)


def _host_str(host: bytes) -> str:
    """``host`` (a Host header's value) as ``str`` once it passed the proxy's
    ``check_host_header`` (else 400: an empty one too)."""
    host_s = _CHECKED_HOSTS.get(host)
    if host_s is None:
        try:
            check_host_header(host)
        except RemoteProxyError as err:
            raise BadRequestError(str(err), err.status_hint) from None
        host_s = host.decode("ascii")
        if len(_CHECKED_HOSTS) >= 1024:
            _CHECKED_HOSTS.clear()
        _CHECKED_HOSTS[host] = host_s
    return host_s


def _scan_headers(scope: Scope, plain: set[bytes], names: dict[bytes, tuple[bytes, int]],
                  learn: Callable[[bytes], tuple[bytes, int]], upgrade: bool
                  ) -> tuple[str, int, list[bytes], list[tuple[bytes, bytes]], bool,
                             list[tuple[bytes, bytes]], list[tuple[bytes, bytes]],
                             bytes | None]:
    """``_read_headers`` and the loop of ``_backend_headers`` in one pass, each header name
    classified once per settings (``names``, filled by ``learn``): ``(Host, Content-Length,
    Connection tokens, the headers that pass, whether Host is among them, the forwarded-for
    headers, the other forwarded headers, the client's X-Request-ID if it may pass)``.
    ``plain`` holds the names of ``names`` that pass as they are and are lower-case already
    (all of them, from a server that follows www.rst): one set lookup each.

    The kinds are ``request_header_kind``'s without the Connection tokens. A token changes no
    kind when it names a hop-by-hop or forwarded header (those kinds come first in
    ``request_header_kind``, and ``odd_name_dropped`` drops their ``_`` spellings anyway):
    ``IngressASGI._inert_tokens``. Any other token (``Connection: close``, a named header)
    sends the request to ``_backend_headers``, which asks with the tokens; Host, the length
    and the tokens read here stand, they never depend on them.

    Raises ``BadRequestError`` as ``_read_headers`` does, ``_NotScanned`` for a name that is
    not ``bytes`` (then ``_read_headers`` decides)."""
    version = scope.get("http_version") or "1.1"
    out: list[tuple[bytes, bytes]] = []
    append = out.append
    host: bytes | None = None
    length = -1
    seen_length = False
    named: list[bytes] = []
    has_host = False
    ff_items: list[tuple[bytes, bytes]] = []
    fwd_items: list[tuple[bytes, bytes]] = []
    request_id: bytes | None = None
    seen_request_id = False
    seen_chunked = False
    unique: list[bytes] | None = None
    try:
        for k, v in scope.get("headers") or ():
            if k in plain:
                append((k, v))  # the common case: an ordinary header, named in lower case
                continue
            entry = names.get(k)
            if entry is None:
                entry = learn(k)
            name, code = entry
            if not code:  # _PASS
                append((name, v))
                continue
            if code is _HOST:
                value = bytes(v)
                if host is None:
                    host = value
                elif version in ("1.0", "1.1") or value.lower() != host.lower():
                    raise BadRequestError("conflicting Host headers", 400)
                has_host = True
                append((name, v))
            elif code == _CONNECTION:
                # A ``str`` value raises TypeError here, a ``memoryview`` AttributeError (the
                # general path decides); a ``bytearray`` one gives bytearray tokens, which
                # ``__call__`` reads as their bytes.
                if b"," in v:
                    named.extend([t.strip().lower() for t in v.split(b",")])
                else:
                    named.append(v.strip().lower())  # one token: "keep-alive"
            elif code == _UNIQUE or code == _UNIQUE_DROP:
                # Authorization, If-None-Match, Expect...: a second line is the proxy's 400.
                # (After Host and Connection, which nearly every request has.)
                unique = note_read_once(unique, name, _duplicate)
                if type(v) is not bytes:
                    raise _NotScanned  # Authorization's is read (basic auth): general path
                if code == _UNIQUE:
                    append((name, v))
            elif code is _LENGTH:
                if seen_length:
                    raise _duplicate(name)
                seen_length = True
                # Up to 18 ASCII digits (below 2**63) are read at once; anything else is
                # read, or refused (400), as the proxy reads it (``_length``). A value that
                # is not ``bytes`` raises TypeError here: the general path decides.
                length = int(v) if len(v) < 19 and _isdigit(v) else _length(v)
                if seen_chunked:
                    raise BadRequestError("both Content-Length and Transfer-Encoding", 400)
                append((name, v))  # the body framing: the server's, kept as it gave it
            elif code is _CHUNKED:
                if seen_chunked:
                    raise _duplicate(name)
                seen_chunked = True
                _check_chunked(v, version, seen_length)
                append((name, v))
            elif code is _UPGRADE:
                if upgrade:
                    append((name, v))
            elif code is _FORWARDED_FOR:
                if type(v) is not bytes:
                    raise _NotScanned  # a value read (the client address): general path
                ff_items.append((name, v))
            elif code is _FORWARDED:
                if type(v) is not bytes:
                    raise _NotScanned
                fwd_items.append((name, v))
            elif code is _REQUEST_ID:
                if type(v) is not bytes:
                    raise _NotScanned
                if not seen_request_id:
                    seen_request_id = True
                    if valid_request_id(v):
                        request_id = v
            # else DROP
    except (TypeError, AttributeError):
        # An unhashable name (bytearray), or a value of a header read here that is not
        # ``bytes`` (``str``: no ``bytes`` method takes it; ``memoryview``: no ``strip``):
        # the general path decides (``_read_headers``).
        raise _NotScanned from None
    if host is None:
        if version != "1.0":
            # Every version after 1.0 (nginx: "r->http_version > NGX_HTTP_VERSION_10"), an
            # HTTP/2 or HTTP/3 request without :authority or Host too.
            raise BadRequestError("request without Host", 400)
        return "", length, named, out, has_host, ff_items, fwd_items, request_id
    return _host_str(host), length, named, out, has_host, ff_items, fwd_items, request_id


def _scan_routing(scope: Scope, plain: set[bytes], names: dict[bytes, tuple[bytes, int]],
                  learn: Callable[[bytes], tuple[bytes, int]]
                  ) -> tuple[str, int, list[bytes], list[tuple[bytes, bytes]], bool,
                             list[tuple[bytes, bytes]], list[tuple[bytes, bytes]],
                             bytes | None]:
    """``_scan_headers`` for ``rewrite_headers=False``: the same Host, Content-Length and
    forwarded-for headers (the client address), refused where it refuses them, and nothing
    else -- no headers that pass, no Connection tokens, no other forwarded headers: nobody
    reads them when the app gets the scope's own list. Same shape as ``_scan_headers``'s
    answer, those parts empty."""
    version = scope.get("http_version") or "1.1"
    host: bytes | None = None
    length = -1
    seen_length = False
    seen_chunked = False
    unique: list[bytes] | None = None
    ff_items: list[tuple[bytes, bytes]] = _NONE
    try:
        for k, v in scope.get("headers") or ():
            if k in plain:
                continue  # the common case: an ordinary header, nothing routing reads
            entry = names.get(k)
            if entry is None:
                entry = learn(k)
            code = entry[1]
            if code is _HOST:
                value = bytes(v)
                if host is None:
                    host = value
                elif version in ("1.0", "1.1") or value.lower() != host.lower():
                    raise BadRequestError("conflicting Host headers", 400)
            elif code == _UNIQUE or code == _UNIQUE_DROP:
                # Refused as by ``_scan_headers``: the app would get both lines.
                name = entry[0]
                unique = note_read_once(unique, name, _duplicate)
                if type(v) is not bytes:
                    raise _NotScanned  # Authorization's is read (basic auth): general path
            elif code is _LENGTH:
                if seen_length:
                    raise _duplicate(entry[0])
                seen_length = True
                length = int(v) if len(v) < 19 and _isdigit(v) else _length(v)
                if seen_chunked:
                    raise BadRequestError("both Content-Length and Transfer-Encoding", 400)
            elif code is _CHUNKED:
                if seen_chunked:
                    raise _duplicate(entry[0])
                seen_chunked = True
                _check_chunked(v, version, seen_length)
            elif code is _FORWARDED_FOR:
                if type(v) is not bytes:
                    raise _NotScanned  # a value read (the client address): general path
                if ff_items is _NONE:
                    ff_items = []
                ff_items.append((entry[0], v))
            elif code is _FORWARDED:
                if type(v) is not bytes and entry[0] == b"x-forwarded-host":
                    raise _NotScanned  # read for an ssl-redirect (``_location_host``)
    except (TypeError, AttributeError):
        # An unhashable name (bytearray), or a value of a header read here that is not
        # ``bytes`` (``str``: no ``bytes`` method takes it; ``memoryview``: no ``strip``):
        # the general path decides (``_read_headers``).
        raise _NotScanned from None
    if host is None:
        if version != "1.0":
            # Every version after 1.0 (nginx: "r->http_version > NGX_HTTP_VERSION_10"), an
            # HTTP/2 or HTTP/3 request without :authority or Host too.
            raise BadRequestError("request without Host", 400)
        return "", length, _NONE, _NONE, False, ff_items, _NONE, None
    return _host_str(host), length, _NONE, _NONE, False, ff_items, _NONE, None


def _has_host(scope: Scope) -> bool:
    """Whether the request has a Host header at all (the scans give "" for a missing and for
    an empty one alike); read on the rare absolute-form path only."""
    return any(name.lower() == b"host" for name, _ in scope.get("headers") or ())


def _absolute_form(target: str, host: str, has_host: bool) -> tuple[str, str]:
    """``(origin-form path, host)`` of an absolute-form target, as the proxy takes it: the
    authority, a valid host (nginx: "client sent invalid host in request line"), must name
    the same host and port as Host (``same_authority``: "two different hosts in one request
    is a routing confusion attempt: refuse"), an empty Host included; with no Host header,
    the authority is the host."""
    if not target[:8].lower().startswith(("http://", "https://")):
        return target, host  # not absolute-form: canonical_path refuses it
    try:
        path, authority = absolute_form(target, host if has_host else None)
    except RemoteProxyError as err:
        raise BadRequestError(str(err), err.status_hint) from None
    return path, host if has_host else authority
