"""Header policy: what the proxy refuses in a request head, what it strips, what it adds.

This module decides the wire rules of SEMANTICS §9 that h11 does not enforce; it knows nothing of
routing or sockets. Every function is pure. The proxy core (``_connection.py``) and the ASGI
adapter (``ingresslib/_asgi.py``) both take their header rules, reason phrases and request ids
from here, so that the two front ends cannot drift apart.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import os
import re
from collections.abc import Callable, Iterable
from typing import Any

# (First: importing ``_chunked`` checks h11's internals, the one below included, and refuses
# an h11 whose internals differ with an error naming its version. ``_headers`` is the
# package's first module to import one: ``__init__`` -> ``_actions`` -> here.) Its CTL rule
# for header values is this module's ``has_control`` (``_chunked`` imports nothing of the
# package, so the rule lives there).
from ._chunked import has_control

from h11._headers import CONTENT_LENGTH_MAX_DIGITS

from .._iptext import ipv6_text as _ipv6_text
from .._normalize import host_problem, normalize_host
from ._access import _rule_network
from ._basicauth import decode_credentials
from ._errors import RemoteProxyError
from ._settings import ProxySettings

__all__ = [
    "basic_auth_user",
    "check_raw_head",
    "check_host",
    "check_host_header",
    "UNIQUE_REQUEST",
    "MAX_CONTENT_LENGTH",
    "content_length",
    "transfer_coding_error",
    "duplicate_header",
    "note_read_once",
    "absolute_form",
    "same_authority",
    "split_absolute_form",
    "OPTIONS_ALLOW",
    "has_control",
    "valid_request_id",
    "client_request_id",
    "REQUEST_DROP",
    "RESPONSE_DROP",
    "RESPONSE_DROP_PASS_SERVER",
    "add_server",
    "passes_backend_server",
    "server_token",
    "FORWARDED_DROP",
    "IDEMPOTENT",
    "TrustPolicy",
    "client_address",
    "client_ip_from_chain",
    "client_ip_from_lines",
    "first_forwarded_host",
    "forwarded_redirect_host",
    "redirect_scheme",
    "HEADER_NAME_CHARS",
    "METHOD_CHARS",
    "NGINX_METHODS",
    "REASONS",
    "ACME_CHALLENGE",
    "UNDERSCORE_SHADOWED",
    "RequestIds",
    "local_body",
    "odd_name_dropped",
    "forwarded_for_value",
    "hsts_value",
    "HeaderKind",
    "special_request_names",
    "request_header_kind",
]

# RFC 9110 §7.6.1: "Connection, Proxy-Connection, Keep-Alive, TE, Transfer-Encoding, and
# Upgrade" are connection-specific; Trailer and Proxy-Authorization complete the set SEMANTICS
# §9 names (Go's httputil.ReverseProxy ``hopHeaders`` too). nginx's proxy module clears fewer
# on the request side (``ngx_http_proxy_headers[]``: Connection, Keep-Alive, TE, Expect,
# Upgrade; ingress-nginx sets Connection and Upgrade itself) and passes Trailer,
# Proxy-Connection and Proxy-Authorization. The body framing (Transfer-Encoding /
# Content-Length) is re-derived by h11 on each side, never copied: "never forward framing
# bytes as-is".
_HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"te", b"trailer", b"transfer-encoding", b"upgrade",
    b"proxy-connection", b"proxy-authorization",
})
#: Request headers never forwarded as received. ``Proxy`` is httpoxy (CVE-2016-5385);
#: ``Expect`` is answered by the proxy itself; the forwarded family is rewritten by the proxy.
REQUEST_DROP = _HOP_BY_HOP | {b"proxy", b"expect", b"content-length"}
#: Forwarded headers the proxy (re)writes; incoming copies are dropped.
FORWARDED_DROP = frozenset({
    b"x-forwarded-for", b"x-real-ip", b"x-forwarded-host", b"x-forwarded-port",
    b"x-forwarded-proto", b"x-forwarded-scheme", b"x-scheme", b"x-original-forwarded-for",
    b"x-forwarded-prefix",
    # ingress-nginx sets X-Original-URI itself; a client-sent one would reach the backend as if
    # the proxy had vouched for it.
    b"x-original-uri",
})
#: nginx ngx_http_proxy_module.c ``ngx_http_proxy_hide_headers[]`` (proxy_hide_header's
#: default): "Date", "Server", "X-Pad", "X-Accel-Expires", "X-Accel-Redirect",
#: "X-Accel-Limit-Rate", "X-Accel-Buffering", "X-Accel-Charset". The X-Accel-* family are
#: instructions to nginx (an internal redirect target, rate limits) that often name internal
#: paths; nginx never shows them to the client. Server: ingress-nginx passes the backend's only
#: with ``allow-backend-server-header`` (``proxy_pass_header Server``) and, with the default
#: ``server-tokens: false``, clears every Server header (``more_clear_headers Server``): no
#: Server header at all (``RESPONSE_DROP_PASS_SERVER`` and ``add_server`` below for the keys).
#: Date is not in this set: the core replaces it with its own when it has a
#: clock (as nginx, whose header filter writes one when none is left), and lets it pass when
#: it has none (RFC 9110 §6.6.1 wants a forwarded response to carry one).
_NGINX_HIDDEN = frozenset({
    b"server", b"x-pad", b"x-accel-expires", b"x-accel-redirect", b"x-accel-limit-rate",
    b"x-accel-buffering", b"x-accel-charset",
})
#: Response headers never forwarded to the client (framing is re-done by h11 downstream).
RESPONSE_DROP = _HOP_BY_HOP | {b"proxy-authenticate"} | _NGINX_HIDDEN
#: ``RESPONSE_DROP`` but the upstream's ``Server``: ``server-tokens`` and
#: ``allow-backend-server-header`` both on (:func:`passes_backend_server`).
RESPONSE_DROP_PASS_SERVER = RESPONSE_DROP - {b"server"}

# The ConfigMap keys ``server-tokens`` and ``allow-backend-server-header`` (ingress-nginx
# internal/ingress/controller/config/config.go: ``ShowServerTokens bool `json:"server-tokens"```,
# default false; ``AllowBackendServerHeader bool `json:"allow-backend-server-header"```, default
# false). rootfs/etc/nginx/template/nginx.tmpl writes, in the http block:
#
#     server_tokens {{ if $cfg.ShowServerTokens }}on{{ else }}off{{ end }};
#     {{ if not $cfg.ShowServerTokens }}
#     more_clear_headers Server;
#     {{ end }}
#     ...
#     {{ if $cfg.AllowBackendServerHeader }}
#     proxy_pass_header Server;
#     {{ end }}
#
# ``more_clear_headers Server`` (headers-more, every answer) clears any Server header, the one
# ``proxy_pass_header`` passed too: allow-backend-server-header alone changes nothing
# (kubernetes/ingress-nginx#6733, "allow-backend-server-header broken by #6190": "It is now
# necessary to also set server-tokens to true"). With server-tokens on, nginx's header filter
# (ngx_http_header_filter_module.c: "if (r->headers_out.server == NULL) { ... server_tokens ==
# NGX_HTTP_SERVER_TOKENS_ON ? ngx_http_server_full_string ...") writes its own
# ``Server: nginx/<version>`` on every answer, its own and proxied ones, unless one is already
# there: the upstream's that proxy_pass_header passed. ingresslib writes
# ``Server: ingresslib/<version>`` in its place (README's divergences); its own answers' bodies
# name no product ("404 Not Found"), so nothing else changes.


def passes_backend_server(settings: ProxySettings) -> bool:
    """Whether an upstream's ``Server`` header reaches the client: ``server_tokens`` and
    ``allow_backend_server_header`` both on (see above)."""
    return settings.server_tokens and settings.allow_backend_server_header


_SERVER = frozenset({b"server"})


def hidden_of(settings: ProxySettings) -> frozenset[bytes]:
    """The ``hide-headers`` names of ``settings`` (proxy_hide_header, lower-case bytes), but
    ``server`` when the upstream's Server passes (:func:`passes_backend_server`): nginx's
    ngx_http_upstream_hide_headers_hash takes each ``proxy_pass_header`` name out of the
    hidden ones, its own and ``proxy_hide_header``'s alike, so ``proxy_pass_header Server``
    wins over ``proxy_hide_header Server``."""
    from ._header_sets import hidden_names

    hidden = hidden_names(settings.hide_headers)
    if b"server" in hidden and passes_backend_server(settings):
        return hidden - _SERVER
    return hidden


@functools.lru_cache(maxsize=1)
def server_token() -> bytes:
    """The ``Server`` value this hop writes with ``server_tokens`` on (nginx's
    ``ngx_http_server_full_string``, "nginx/" NGINX_VERSION): ``ingresslib/<version>``."""
    from .. import __version__  # (the package imports this module: read when first needed)

    return b"ingresslib/" + __version__.encode("ascii")


def add_server(headers: list[tuple[bytes, bytes, bytes]]) -> None:
    """The proxy core, ``server_tokens`` on: ``Server: ingresslib/<version>`` first in an
    answer's (raw name, name, value) ``headers`` (where nginx's header filter writes it), unless
    the upstream's is there (``allow_backend_server_header``: nginx writes that one instead)."""
    for h in headers:
        if h[1] == b"server":
            return
    headers.insert(0, (b"Server", b"server", server_token()))
#: nginx's ``lowcase`` table in ngx_http_parse.c: the request header name characters it takes
#: as valid (h11 gives names lower-cased). Any other one, ``_`` unless underscores_in_headers,
#: sets ``r->invalid_header``, and ``ignore_invalid_headers on`` (ingress-nginx
#: ``ignore-invalid-headers: "true"``) drops the line. ``name.translate(None, HEADER_NAME_CHARS)``
#: is what is left: empty for a valid name.
HEADER_NAME_CHARS = b"-0123456789abcdefghijklmnopqrstuvwxyz"
#: With ``enable-underscores-in-headers``, names that CGI/WSGI backends (``HTTP_X_FORWARDED_FOR``)
#: cannot tell from a header the proxy drops or writes itself once ``_`` is read as ``-``.
UNDERSCORE_SHADOWED = REQUEST_DROP | FORWARDED_DROP | {b"x-request-id", b"host"}
#: nginx's request-line parser (``ngx_http_parse_request_line``): a method character that is not
#: ``A-Z``, ``_`` or ``-`` is ``NGX_HTTP_PARSE_INVALID_METHOD``, a 400 before the headers are
#: read. h11 takes any token (``get``, ``G.T``): a backend, or the proxy's own method checks
#: (TRACE, idempotency), could read such a method as another one. ``method.translate(None,
#: METHOD_CHARS)`` (``str.strip`` of its ``latin-1`` text) is empty for a method nginx reads.
METHOD_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ_-"
#: The methods ngx_http_parse_request_line names, all spelled in ``METHOD_CHARS``: one set
#: lookup (the bytes' hash is cached for ``IDEMPOTENT``'s) spares the common request the scan.
NGINX_METHODS = frozenset({b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"OPTIONS", b"PATCH",
                           b"TRACE", b"CONNECT", b"MKCOL", b"COPY", b"MOVE", b"LOCK", b"UNLOCK",
                           b"PROPFIND", b"PROPPATCH"})
#: RFC 9110 §9.2.2 idempotent methods: the only ones retried once the request was sent.
#: (TRACE, idempotent too, never reaches a backend: 405 before routing, as nginx answers it.)
IDEMPOTENT = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE"})

# RFC 9110 §5.5: "field values containing CR, LF, or NUL characters are invalid and dangerous
# ... a recipient of CR, LF, or NUL within a field value MUST either reject the message or
# replace each of those characters with SP"; the other CTLs are not field-vchar either. h11
# accepts everything but NUL and whitespace (``[^\x00\s]``), so 0x01-0x08, 0x0B, 0x0C,
# 0x0E-0x1F and 0x7F would reach backends and log/terminal consumers. HTAB is allowed (it is
# OWS). nginx (>= 1.21.1) likewise rejects control characters in the request line.
#: Any CTL but HTAB, CR and LF: deleted from a whole raw request head (the line endings are
#: checked separately), so one C-level pass per head instead of one per header. bytes.translate
#: with a delete set is ~5x faster than a regex character-class search (~0.4 us / 400 B head).
_HEAD_CTL = bytes([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
# (Any CTL but HTAB in header values already split by a parser: ``has_control``, imported
# from ``_chunked`` above.)

# ingress-nginx passes the client's X-Request-ID through; we only pass an opaque token of
# bounded length (it is logged and echoed by backends: no spaces, quotes or escapes).
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._~:+/=-]{1,200}")


def valid_request_id(value: bytes) -> bool:
    """True if a client's ``X-Request-ID`` may be passed through: 1-200 characters of
    ``[A-Za-z0-9._~:+/=-]`` (anything else, empty included, is replaced by a generated id)."""
    return _REQUEST_ID.fullmatch(value) is not None


def client_request_id(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """The client's X-Request-ID that is the request's id (``$req_id``), from its headers as
    ``(lower-cased name, value)`` pairs: the first one, when it may pass (``valid_request_id``)
    and no Connection header names it (hop-by-hop: dropped before it is looked at, as on the
    way to the backend, ``request_header_kind``); else None (a generated id, with
    ``generate_request_id``, takes its place). nginx.tmpl: "map $http_x_request_id $req_id
    { default $http_x_request_id; "" $request_id; }"."""
    first: bytes | None = None
    named = False
    for name, value in headers:
        if name == b"x-request-id":
            if first is None:
                first = value
        elif name == b"connection":
            named = named or b"x-request-id" in (
                t.strip().lower() for t in value.split(b","))
    return first if first is not None and not named and valid_request_id(first) else None




def basic_auth_user(authorization: str | bytes | None) -> str | None:
    """nginx ``$remote_user``: "user name supplied with the Basic authentication", read from
    an ``Authorization`` header value whatever the location's auth (None: no user; a ``str`` is
    taken as latin-1 bytes, and so is the result), as :func:`decode_credentials` reads it. The
    core puts it in ``RequestRecord.remote_user``, which the access log writes escaped (the
    client chooses it)."""
    if authorization is None:
        return None
    raw = authorization.encode("latin-1") if isinstance(authorization, str) else authorization
    credentials = decode_credentials(raw)
    return None if credentials is None else credentials[0].decode("latin-1")


def check_host(value: bytes) -> None:
    """Raise 400 unless ``value`` is a plausible host (a Host header value, an absolute-form
    authority); empty is allowed here: no host at all (``check_host_header`` refuses an
    empty Host *header*). The rule is the core's (``_normalize.host_problem``: RFC 9110's
    Host, strictly, and nginx's ``ngx_http_validate_host``), the one ``RouteTable.match``
    applies too, so that the table never routes a Host the proxy refuses."""
    if not value:
        return
    # latin-1: one character per byte, so a byte outside the rule's ASCII is refused as such.
    why = host_problem(value.decode("latin-1"))
    if why is not None:
        raise RemoteProxyError(why, 400)


def check_host_header(value: bytes) -> None:
    """``check_host`` for the value of a Host header line the client sent: an empty one is
    refused too. An HTTP/1.0 request without a Host line has no host (allowed); ``Host:``
    with nothing after it is "client sent invalid host header" in nginx:
    ngx_http_process_host() calls ``ngx_http_validate_host``, which ends "if (host_len ==
    0) { return NGX_DECLINED; }", and answers "if (rc == NGX_DECLINED) { ...
    ngx_http_finalize_request(r, NGX_HTTP_BAD_REQUEST);" (400)."""
    if not value:
        raise RemoteProxyError("empty Host header", 400)
    check_host(value)


#: The request headers nginx reads with ``ngx_http_process_unique_header_line`` (its
#: ``ngx_http_headers_in[]`` table, src/http/ngx_http_request.c: the same ten before and
#: after nginx 1.23 reworked that table, and in freenginx today): a second line of any of
#: them is "client sent duplicate header line" (400, the connection closed), whatever the
#: values. Host has its own handler with the same rule
#: (``ngx_http_process_host``: "client sent duplicate host header"). For a proxy these are
#: the headers a backend reads as one value -- credentials, body framing, the conditions of
#: a conditional or partial request -- where two lines are two readings waiting to happen
#: (our basic auth read one, the backend another). If-Match and If-None-Match are lists in
#: RFC 9110, and nginx refuses their repetition all the same: so do we.
UNIQUE_REQUEST = frozenset({
    b"if-modified-since", b"if-unmodified-since", b"if-match", b"if-none-match",
    b"content-length", b"content-range", b"if-range", b"transfer-encoding", b"expect",
    b"authorization",
})


def duplicate_header(name: bytes) -> RemoteProxyError:
    """The 400 for a second line of a ``UNIQUE_REQUEST`` header (``name`` lower-cased)."""
    return RemoteProxyError("duplicate %s header" % name.decode("latin-1"), 400)


def note_read_once(seen: list[bytes] | None, name: bytes,
                   refuse: Callable[[bytes], Exception] = duplicate_header) -> list[bytes]:
    """``seen`` (the ``UNIQUE_REQUEST`` names met so far in a head, None before the first)
    with ``name`` added; its second line raises ``refuse(name)``, the proxy's 400 (nginx's
    "client sent duplicate header line"). Called only for those names: most heads never."""
    if seen is None:
        return [name]
    if name in seen:
        raise refuse(name)
    seen.append(name)
    return seen


#: nginx's NGX_MAX_OFF_T_VALUE: the largest request Content-Length it takes (``ngx_atoof``
#: fails past it: "client sent invalid "Content-Length" header", 400).
MAX_CONTENT_LENGTH = (1 << 63) - 1


def content_length(value: Any) -> int:
    """One Content-Length line's value as the proxy reads it, else its 400 (RemoteProxyError).

    The proxy's reading is h11's, then its own range check (``_connection._parse_request``):
    SP/HTAB around the value are no part of it (on the wire they are OWS, which h11's field
    regex and nginx's header parser drop); what is left must be ASCII digits only (h11's
    ``[0-9]+``, nginx's ``ngx_atoof``: no sign, ``_``, other whitespace, non-ASCII digit, hex
    or list), at most ``CONTENT_LENGTH_MAX_DIGITS`` (20) of them, leading zeros counted (h11's
    "bad Content-Length"), and at most ``MAX_CONTENT_LENGTH``. Python's ``int()`` takes
    ``+5``, ``1_0``, ``"\\x0b5"`` and (from ``str``) Arabic-Indic digits: a reader built on it
    lets through what the proxy refuses. A value that is no byte string (an ASGI server's
    ``str``) is nothing the proxy could receive: 400 as well."""
    if type(value) is not bytes:
        if not isinstance(value, (bytearray, memoryview)):
            raise RemoteProxyError("Content-Length is not a byte string", 400)
        value = bytes(value)
    digits = value.strip(b" \t")
    if not digits.isdigit() or len(digits) > CONTENT_LENGTH_MAX_DIGITS:
        raise RemoteProxyError("invalid Content-Length", 400)
    n = int(digits)  # bytes.isdigit() is ASCII 0-9 only
    if n > MAX_CONTENT_LENGTH:
        raise RemoteProxyError("Content-Length out of range", 400)
    return n


def transfer_coding_error(value: Any, http10: bool, has_length: bool) -> str | None:
    """Why the proxy answers 400 to a request with this Transfer-Encoding line (None: it
    reads the body chunked): a TE in an HTTP/1.0 request (RFC 9112 §6.1; nginx: "client sent
    HTTP/1.0 request with "Transfer-Encoding" header"), a coding other than ``chunked`` in any
    case (h11 refuses it, 501, which the proxy answers 400 as an ambiguous framing; nginx
    501), or a Content-Length besides it (RFC 9112 §6.1, request smuggling; nginx: "client
    sent "Content-Length" and "Transfer-Encoding" headers at the same time", 400)."""
    if http10:
        return "Transfer-Encoding in an HTTP/1.0 request"
    if type(value) is not bytes:
        if not isinstance(value, (bytearray, memoryview)):
            return "Transfer-Encoding is not a byte string"
        value = bytes(value)
    if value.strip(b" \t").lower() != b"chunked":
        return "Transfer-Encoding other than chunked"
    if has_length:
        return "both Content-Length and Transfer-Encoding"
    return None


#: Reason phrases of the status lines the proxy writes; its own answers' bodies are
#: ``"<status> <reason>\n"`` (``local_body``). Every status nginx writes with a phrase
#: (ngx_http_header_filter_module.c ``ngx_http_status_lines``; RFC 9110's wording) has one:
#: a configurable one too (``limit_req_status_code`` 429, a ``permanent-redirect-code`` 303);
#: a status nginx has none for (418, 422...) is written "HTTP/1.1 418 ", as nginx does.
#: nginx's own 494-497 never reach the wire (``ngx_http_special_response_handler`` sends 400).
REASONS = {
    100: b"Continue", 101: b"Switching Protocols", 200: b"OK", 204: b"No Content",
    301: b"Moved Permanently", 302: b"Found", 303: b"See Other", 307: b"Temporary Redirect",
    308: b"Permanent Redirect", 400: b"Bad Request", 401: b"Unauthorized",
    402: b"Payment Required", 403: b"Forbidden", 404: b"Not Found",
    405: b"Method Not Allowed", 406: b"Not Acceptable", 408: b"Request Timeout",
    409: b"Conflict", 410: b"Gone", 411: b"Length Required", 412: b"Precondition Failed",
    413: b"Payload Too Large", 414: b"URI Too Long", 415: b"Unsupported Media Type",
    416: b"Range Not Satisfiable", 421: b"Misdirected Request", 429: b"Too Many Requests",
    431: b"Request Header Fields Too Large",
    500: b"Internal Server Error", 501: b"Not Implemented", 502: b"Bad Gateway",
    503: b"Service Unavailable", 504: b"Gateway Timeout", 505: b"HTTP Version Not Supported",
    507: b"Insufficient Storage",
}
#: ingress-nginx never redirects ACME HTTP-01 challenges to HTTPS (certificates could not be
#: issued for a host whose HTTPS is not up yet).
ACME_CHALLENGE = "/.well-known/acme-challenge/"


def local_body(status: int) -> bytes:
    """The body of an answer the proxy makes itself: ``b"404 Not Found\n"``."""
    return b"%d %s\n" % (status, REASONS.get(status, b"Error"))


class RequestIds:
    """32 lower-case hex characters of OS randomness per id (nginx ``$request_id``), read from
    the OS 4 KiB at a time: one system call per 256 requests instead of one per request."""

    __slots__ = ("_hex", "_pos")

    def __init__(self) -> None:
        self._hex = ""
        self._pos = 0

    def __call__(self) -> str:
        pos = self._pos
        if pos >= len(self._hex):
            self._hex = os.urandom(4096).hex()
            pos = 0
        self._pos = pos + 32
        return self._hex[pos:pos + 32]


def odd_name_dropped(name: bytes, odd: bytes, named: list[bytes] | None, ff_name: bytes,
                     settings: ProxySettings) -> bool:
    """Whether a request header whose lower-cased ``name`` holds characters outside
    ``HEADER_NAME_CHARS`` (``odd``: those characters, non-empty) is dropped on the way to the
    backend. Only called for such names: an ordinary name never comes here.

    - A name character outside ``[a-z0-9-]``, or ``_`` with ``underscores_in_headers off``
      (``enable-underscores-in-headers: "false"``, the default), makes the name invalid, and
      nginx ``ignore_invalid_headers on`` (ingress-nginx ``ignore-invalid-headers: "true"``,
      the default) drops such a line. nginx's documentation of ``underscores_in_headers``:
      "When the use of underscores is disabled, request header fields whose names contain
      underscores are marked as invalid and become subject to the ignore_invalid_headers
      directive" (ngx_http_parse_header_line: "r->invalid_header = 1", which
      ngx_http_process_request_headers skips only "if (r->invalid_header &&
      cscf->ignore_invalid_headers)"): with ``ignore-invalid-headers: "false"`` a ``_`` name
      passes whatever ``enable-underscores-in-headers`` says.
    - A ``_`` name that passes: ``X_Forwarded_For`` and ``X-Forwarded-For`` are both
      ``HTTP_X_FORWARDED_FOR`` to a CGI/WSGI backend, so a spelling of a header dropped or
      written by the proxy (``UNDERSCORE_SHADOWED``, the forwarded-for header, a name listed
      in Connection) is dropped all the same (nginx passes it).
    """
    if settings.ignore_invalid_headers and (
            odd.replace(b"_", b"") or not settings.enable_underscores_in_headers):
        return True  # (``odd`` is non-empty: it holds ``_`` when nothing else)
    if b"_" in odd:
        alias = name.replace(b"_", b"-")
        return alias in UNDERSCORE_SHADOWED or alias == ff_name or bool(named and alias in named)
    return False


@functools.lru_cache(maxsize=16)
def hsts_value(max_age: int, include_subdomains: bool, preload: bool) -> bytes:
    """The ``Strict-Transport-Security`` value the proxy adds to an answer over TLS
    (ingress-nginx ``hsts-max-age``, ``hsts-include-subdomains``, ``hsts-preload``). nginx.tmpl,
    ``if ($scheme = https)``: ``more_set_headers "Strict-Transport-Security: max-age={{
    $all.Cfg.HSTSMaxAge }}{{ if $all.Cfg.HSTSIncludeSubdomains }}; includeSubDomains{{ end
    }}{{ if $all.Cfg.HSTSPreload }}; preload{{ end }}";``. Cached per setting values."""
    value = b"max-age=%d" % max_age
    if include_subdomains:
        value += b"; includeSubDomains"
    if preload:
        value += b"; preload"
    return value


class HeaderKind(enum.IntEnum):
    """What becomes of a request header on its way to the backend (``request_header_kind``)."""

    #: Passed on as received.
    PASS = 0
    #: Not passed on: hop-by-hop, named in Connection, ``Proxy``, ``Expect``, a name nginx
    #: ignores.
    DROP = 1
    #: ``Content-Length``: the body framing, re-done by whoever frames the body.
    LENGTH = 2
    #: ``Transfer-Encoding``: likewise.
    CHUNKED = 3
    #: ``Upgrade``: passed on for an upgrade request only (with ``Connection: upgrade``).
    UPGRADE = 4
    #: The forwarded-for header (``forwarded-for-header``): read as the incoming chain.
    FORWARDED_FOR = 5
    #: One of the other forwarded headers this hop writes: read only from a trusted hop.
    FORWARDED = 6
    #: ``X-Request-ID``: the first one passes if it is a token, else one is generated.
    REQUEST_ID = 7
    #: ``Host``.
    HOST = 8


@functools.lru_cache(maxsize=16)
def special_request_names(ff_name: bytes) -> frozenset[bytes]:
    """The names ``request_header_kind`` may say anything but PASS of, given the lower-cased
    forwarded-for header name (``ProxySettings.forwarded_for_header``). A name outside this
    set, of ``HEADER_NAME_CHARS`` only and not named in Connection, is PASS: the loops over a
    request's headers test that first and call ``request_header_kind`` for the rest only.
    Cached: one set per forwarded-for name, looked up per request."""
    return REQUEST_DROP | FORWARDED_DROP | {b"x-request-id", b"host", ff_name}


def request_header_kind(name: bytes, named: list[bytes] | None, ff_name: bytes,
                        settings: ProxySettings) -> HeaderKind:
    """What becomes of the request header ``name`` (lower-cased) on its way to the backend
    (SEMANTICS §9), ``named`` being the tokens of the request's Connection headers and
    ``ff_name`` the forwarded-for header name. The proxy core and the ASGI adapter both ask
    this; each then writes the header its own way (bytes of an upstream head, an ASGI list).

    The order is the rule: the hop-by-hop set first (RFC 9110 §7.6.1), then this hop's
    forwarded headers (always rewritten, whatever their spelling elsewhere), then the names
    Connection lists, then nginx's name policy (``odd_name_dropped``).
    """
    if name in REQUEST_DROP:
        if name == b"content-length":
            return HeaderKind.LENGTH
        if name == b"transfer-encoding":
            return HeaderKind.CHUNKED
        if name == b"upgrade":
            return HeaderKind.UPGRADE
        return HeaderKind.DROP
    if name == ff_name:
        return HeaderKind.FORWARDED_FOR
    if name in FORWARDED_DROP:
        return HeaderKind.FORWARDED
    if named and name in named:
        return HeaderKind.DROP
    odd = name.translate(None, HEADER_NAME_CHARS)
    if odd and odd_name_dropped(name, odd, named, ff_name, settings):
        return HeaderKind.DROP  # nginx ignore_invalid_headers / underscores_in_headers
    if name == b"x-request-id":
        return HeaderKind.REQUEST_ID
    if name == b"host":
        return HeaderKind.HOST
    return HeaderKind.PASS


def forwarded_for_value(settings: ProxySettings, incoming: bytes, peer: bytes,
                        client: bytes) -> bytes:
    """The X-Forwarded-For value sent to the backend, given the client's joined forwarded-for
    chain ``incoming`` (empty: none), the TCP peer and the client address found.

    nginx.tmpl: ``{{ if and $all.Cfg.UseForwardedHeaders $all.Cfg.ComputeFullForwardedFor }}
    proxy_set_header X-Forwarded-For $full_x_forwarded_for; {{ else }} proxy_set_header
    X-Forwarded-For $remote_addr;`` ($full_x_forwarded_for: the incoming X-Forwarded-For chain,
    then the peer; the peer alone without one: "map $http_x_forwarded_for $full_x_forwarded_for
    { default "$http_x_forwarded_for, $realip_remote_addr"; '' "$realip_remote_addr"; }" --
    the client found in another ``forwarded-for-header`` is not in it).
    """
    if settings.compute_full_forwarded_for and settings.use_forwarded_headers:
        # (No peer address, a unix socket: the chain alone, never a trailing ", ".)
        return incoming + b", " + peer if incoming and peer else incoming or peer
    return client


#: What the proxy answers to a server-wide ``OPTIONS *`` (it asks about the server itself).
OPTIONS_ALLOW = b"GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH"


def same_authority(authority: str, host: str, default_port: int) -> bool:
    """Whether an absolute-form target's ``authority`` and the ``Host`` header name the same
    host and port (both already passed ``check_host``): the host as routed (``normalize_host``:
    ASCII case, one trailing dot) and the port, the target scheme's default when absent
    (RFC 9110 §4.2.3: "http://a.test:80/" and "http://a.test/" are equivalent)."""
    if authority == host:
        return True

    def key(value: str) -> tuple[str | None, int]:
        colon = value.find(":", value.rfind("]") + 1)
        return normalize_host(value), int(value[colon + 1:]) if colon >= 0 else default_port

    return key(authority) == key(host)


def absolute_form(target: str, host: str | None) -> tuple[str, str]:
    """``(origin-form path, authority)`` of an absolute-form ``target`` as the proxy core and
    IngressASGI take it: the authority validated as a Host (nginx's "client sent invalid host
    in request line", 400) and, with a ``Host`` header (``host``; None: none), naming the same
    host and port (``same_authority``, the target scheme's default port), else 400: RFC 9112
    §3.2.2 has an origin use the authority and ignore Host, and nginx routes on the request
    line's host while forwarding the Host header, the rule of one host at another's backend;
    two different hosts in one request is a routing confusion attempt (SEMANTICS §9)."""
    path, authority = split_absolute_form(target)
    check_host(authority.encode("latin-1"))
    if host is not None and not same_authority(
            authority, host, 443 if target[:6].lower() == "https:" else 80):
        raise RemoteProxyError("absolute-form target does not match Host", 400)
    return path, authority


def split_absolute_form(target: str) -> tuple[str, str]:
    """``(origin-form path, authority)`` of an absolute-form request target (RFC 9112 §3.2.2);
    400 for any other target that is not origin-form, or an empty or userinfo authority."""
    lower = target[:8].lower()
    if lower.startswith("http://"):
        rest = target[7:]
    elif lower.startswith("https://"):
        rest = target[8:]
    else:
        raise RemoteProxyError("request target is neither origin- nor absolute-form", 400)
    cut = len(rest)
    for ch in "/?":
        i = rest.find(ch)
        if 0 <= i < cut:
            cut = i
    authority, path = rest[:cut], rest[cut:]
    if not authority or "@" in authority:
        raise RemoteProxyError("invalid authority in absolute-form target", 400)
    if not path.startswith("/"):
        path = "/" + path
    return path, authority


def _check_host_tab(fields: list[bytes]) -> None:
    """400 for a Host line holding a tab. h11 strips a tab around a value as OWS (RFC 9112
    §5.1); nginx strips spaces only (ngx_http_parse_header_line: ``sw_space_before_value`` /
    ``sw_space_after_value`` take ``' '``), so the tab stays in its Host and
    ``ngx_http_validate_host`` refuses it: "client sent invalid host header", 400 (recorded
    against nginx 1.22: tests/test_x48_s36.py). Without this the proxy routed ``Host:
    a.test<TAB>`` to a.test's rules, a request nginx never routes (a tab inside the value is
    ``host_problem``'s already)."""
    for line in fields:
        if line[:5].lower() == b"host:" and b"\t" in line:
            raise RemoteProxyError("invalid Host header: a tab around the value", 400)


def check_raw_head(head: bytes, settings: ProxySettings) -> None:
    """Check one complete request head (request line to the blank line, inclusive) before h11
    sees it, for what h11 tolerates but a proxy must not (request smuggling and limits).

    Raises ``RemoteProxyError`` with 400/414/431.
    """
    # Bare LF and bare CR: h11 accepts LF line endings (RFC 9112 §2.2 "MAY recognize a single
    # LF"), but a proxy whose framing differs from the backend's is the root of smuggling;
    # nginx and most backends disagree on them, so refuse.
    crlf = head.count(b"\r\n")
    if head.count(b"\n") != crlf or head.count(b"\r") != crlf:
        raise RemoteProxyError("bare CR or LF in request head", 400)
    if len(head.translate(None, _HEAD_CTL)) != len(head):
        raise RemoteProxyError("control character in request head", 400)
    lines = head.split(b"\r\n")
    # head ends with CRLFCRLF: the split leaves two empty strings at the end.
    request_line = lines[0]
    if len(request_line) > settings.max_request_line:
        raise RemoteProxyError("request line too long", 414)
    fields = lines[1:-2]
    if len(fields) > settings.max_headers:
        raise RemoteProxyError("too many header fields", 431)
    if len(head) - len(request_line) - 4 > settings.max_headers_size:
        raise RemoteProxyError("request header fields too large", 431)
    limit = settings.max_header_line
    for line in fields:
        if len(line) > limit:
            raise RemoteProxyError("request header field too large", 431)
        # RFC 9112 §5.2: "A server that receives an obs-fold in a request message ... MUST
        # either reject the message by sending a 400 (Bad Request) ... or replace each received
        # obs-fold with one or more SP". We reject: unfolding is where parsers disagree.
        if line[:1] in (b" ", b"\t"):
            raise RemoteProxyError("obsolete line folding", 400)
    if b"\t" in head:
        _check_host_tab(fields)
    # Duplicate Content-Length: h11 silently merges identical values (RFC 9112 §6.3 allows
    # it); a backend might not, so any repetition or list is refused.
    low = head.lower()
    n = low.count(b"\r\ncontent-length:")
    if n > 1:
        raise RemoteProxyError("duplicate Content-Length", 400)
    if n == 1:
        start = low.index(b"\r\ncontent-length:") + 17
        end = low.index(b"\r\n", start)
        if b"," in low[start:end]:
            raise RemoteProxyError("Content-Length list", 400)


def check_partial_head(buf: bytes | bytearray, settings: ProxySettings) -> None:
    """Limits that can be decided before the head is complete (so a huge line is refused
    without buffering it), and a method nginx refuses at its first byte: a TLS ClientHello or
    an SSH banner sent to the plain port waited for the head deadline (60 s), where nginx's
    ``ngx_http_parse_request_line`` answers at once ("client sent invalid method": a byte
    other than ``A-Z``, ``_`` or ``-`` before the first space, ``METHOD_CHARS``)."""
    sp = buf.find(b" ")
    method = buf[:sp] if sp >= 0 else buf
    # (A lone CR: the start of an empty line before the request line, its LF still to come.)
    if method.translate(None, METHOD_CHARS) and method != b"\r":
        raise RemoteProxyError("invalid method", 400)
    nl = buf.find(b"\n")
    if nl < 0:
        if len(buf) > settings.max_request_line + 1:
            raise RemoteProxyError("request line too long", 414)
        return
    if nl > settings.max_request_line + 1:
        raise RemoteProxyError("request line too long", 414)
    if len(buf) - nl > settings.max_headers_size + 4:
        raise RemoteProxyError("request header fields too large", 431)
    last = buf.rfind(b"\n")
    if len(buf) - last > settings.max_header_line + 2:
        raise RemoteProxyError("request header field too large", 431)


_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TrustPolicy:
    """Which peers are trusted hops (``proxy-real-ip-cidr``), decided once per settings."""

    __slots__ = ("networks",)

    def __init__(self, cidrs: Iterable[str]) -> None:
        # Each a "set_real_ip_from" parameter, read by ngx_ptocidr as the access lists'
        # elements are (010.0.0.1 is 10.0.0.1); ProxySettings refuses what nginx refuses.
        self.networks: tuple[_Network, ...] = tuple(_rule_network(c.strip()) for c in cidrs)

    def trusted(self, ip: str | None) -> bool:
        if not self.networks or not ip:
            return False
        try:
            addr: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        # nginx ngx_cidr_match(): "if (IN6_IS_ADDR_V4MAPPED(inaddr6)) { family = AF_INET;
        # ..." -- a dual-stack listener's ::ffff:a.b.c.d peer is compared as a.b.c.d.
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        return any(addr in n for n in self.networks)


def client_address(peer: str | None, settings: ProxySettings, policy: TrustPolicy,
                   headers: Iterable[tuple[bytes, ...]], ff_name: bytes | None = None, *,
                   peer_trusted: bool | None = None) -> str | None:
    """The client address of a request, for the proxy core and the ASGI adapter alike: the
    TCP peer (the adapter's: the scope's ``client``), or, when that peer is a trusted hop
    (``proxy-real-ip-cidr``) and ``use-forwarded-headers`` or ``enable-real-ip`` is on, the
    rightmost untrusted address of the forwarded-for chain (``client_ip_from_chain``).

    ``headers`` are the request's headers as tuples ending with ``(lower-cased name,
    value)``: h11's ``(raw, name, value)`` triples, or ASGI ``(name, value)`` pairs; the
    lines named ``ff_name`` (default: the settings' ``forwarded-for-header``) are the chain,
    each line read on its own, the last first (``client_ip_from_lines``). ``peer_trusted``:
    the peer's trust when the caller knows it already (the proxy decides it once per
    connection); else ``policy`` is asked, and only when the settings read forwarded headers
    at all.

    ingress-nginx rootfs/etc/nginx/template/nginx.tmpl: ``{{ if or $cfg.UseForwardedHeaders
    $cfg.UseProxyProtocol }}`` ... ``real_ip_header {{ $cfg.ForwardedForHeader }};``
    ``real_ip_recursive on;`` ``{{ range $trusted_ip := $cfg.ProxyRealIPCIDR }}
    set_real_ip_from {{ $trusted_ip }};``. ``enable_real_ip`` turns it on as well, as the
    proxy core has always read it (one function now: the core and the adapter had a copy
    each).
    """
    if not (settings.use_forwarded_headers or settings.enable_real_ip):
        return peer
    if settings.use_proxy_protocol:
        # nginx.tmpl: "{{ if $cfg.UseProxyProtocol }} real_ip_header proxy_protocol; {{ else
        # }} real_ip_header {{ $cfg.ForwardedForHeader }};": with the PROXY protocol the
        # client is the header's source (the driver passes it as ``peer``), never a
        # forwarded-for chain a client inside proxy-real-ip-cidr could write.
        return peer
    if not (policy.trusted(peer) if peer_trusted is None else peer_trusted):
        return peer
    wanted = ff_name if ff_name is not None else \
        settings.forwarded_for_header.lower().encode("latin-1")
    lines = [bytes(h[-1]).decode("latin-1") for h in headers if h[-2] == wanted]
    if not lines or peer is None:
        return peer
    if len(lines) == 1:
        return client_ip_from_chain(lines[0], peer, policy)
    return client_ip_from_lines(lines, peer, policy)


def client_ip_from_lines(lines: list[str], peer: str, policy: TrustPolicy) -> str:
    """``client_ip_from_chain`` of a forwarded-for header sent as several ``lines``.

    nginx (>= 1.23) keeps repeated request headers as a list and walks the X-Forwarded-For
    lines one by one, the last line first, each with the one-line reading (src/http/
    ngx_http_core_module.c ``ngx_http_get_forwarded_addr``: "/* iterate over all headers in
    reverse order */ ... rc = ngx_http_get_forwarded_addr_internal(r, addr, h->value.data,
    h->value.len, proxies, recursive); ... if (rc == NGX_DECLINED && found) { rc = NGX_DONE;
    break; } if (rc != NGX_OK) { break; }"): the walk goes on to the line before only when
    every entry of this one was a trusted hop. Joining the lines with "," is not the same
    reading: the client's empty line before its proxy's ("X-Forwarded-For:" then the
    proxy's own "X-Forwarded-For: <client>", as HAProxy's ``option forwardfor`` adds it)
    joined into ",<client>", whose leading separator spoils its only entry, and the client
    address became the trusted hop's own (allowlists naming the hop's network let it in).

    (For a ``forwarded-for-header`` other than X-Forwarded-For nginx reads the first line
    only, the client's when its proxy adds a line; every line is read here, the same way.)
    """
    client = peer
    for line in reversed(lines):
        client, more = _walk_chain(line, client, policy)
        if not more:
            break
    return client


def client_ip_from_chain(chain: str, peer: str, policy: TrustPolicy) -> str:
    """The rightmost untrusted address of ``chain, peer`` (nginx ``real_ip_recursive on``).

    The peer is trusted (the caller checked). Walking right to left, trusted hops are skipped;
    the first untrusted address is the client. An unparsable entry stops the walk: what is to
    its left was written by someone we cannot vouch for, so the last trusted hop is the client.

    Entries are read as nginx ngx_http_get_forwarded_addr_internal() reads them: separated by
    runs of commas *and spaces* ("for (p = xff + xfflen - 1; p > xff; p--, xfflen--) { if (*p
    != ' ' && *p != ',') break; }" ... "if (*p == ' ' || *p == ',') { p++; break; }"), each
    entry read by ngx_parse_addr_port() (``_chain_address``). Trusted proxies write addresses
    separated by ", ", which read the same either way; the rest of nginx's reading (spaces,
    leading zeros, a leading separator) concerns entries only a client writes, and whatever the
    reading, the walk passes an entry only when it is a trusted hop.
    The first byte is never read as a separator (the scans stop at "p > xff" without testing
    it), so when it is one the leftmost entry starts with it and parses as nothing.
    """
    return _walk_chain(chain, peer, policy)[0]


def _walk_chain(chain: str, client: str, policy: TrustPolicy) -> tuple[str, bool]:
    """``client_ip_from_chain``'s walk of one line from ``client`` (the last trusted hop so
    far), and whether the walk may go on to the line before it: True only when the line held
    an entry and every entry was a trusted hop (nginx ``ngx_http_get_forwarded_addr_internal``
    returns NGX_OK). An empty line has no entry: nginx parses nothing of it, and stops."""
    items = chain.replace(" ", ",").split(",")
    if chain[:1] in (" ", ","):
        items = chain[1:].replace(" ", ",").split(",")
        items[0] = "\0"  # separator + whatever follows it up to the next one: not an address
    more = False
    for item in reversed(items):
        if not item:
            continue
        addr = _chain_address(item)
        if addr is None:
            return client, False
        client = addr
        if not policy.trusted(addr):
            return addr, False
        more = True
    return client, more


_IPV4 = re.compile(r"[0-9.]+", re.ASCII)
_DIGITS = re.compile(r"[0-9]+", re.ASCII)


def _ngx_addr(text: str) -> str | None:
    """nginx ngx_parse_addr(): ngx_inet_addr(), else ngx_inet6_addr(), else not an address.

    ngx_inet_addr() reads four dot-separated decimal octets ("octet = octet * 10 + (c - '0');
    if (octet > 255) return INADDR_NONE;" ... "if (n == 3)"): a leading zero is decimal
    (``010.0.0.1`` is 10.0.0.1, never octal 8.0.0.1), an empty octet is 0, and the result
    INADDR_NONE (255.255.255.255) means "not an address". The address is returned as nginx's
    $remote_addr prints it (ngx_http_realip_set_addr() prints the address it found with
    ngx_sock_ntop()), so that later readers (X-Real-IP, X-Forwarded-For, allowlists, logs) see
    one spelling: IPv4 in dotted decimal, IPv6 as ngx_inet6_ntop() writes it
    (``_ipv6_text``: ``2001:DB8:0:0::7`` is ``2001:db8::7``). A zone (``%eth0``) is no part of
    ngx_inet6_addr()'s grammar.
    """
    if _IPV4.fullmatch(text) is not None:
        parts = text.split(".")
        if len(parts) != 4:
            return None
        octets = [v for v in (_decimal(o, 255) for o in parts) if v is not None]
        if len(octets) != 4 or octets == [255, 255, 255, 255]:
            return None
        return "%d.%d.%d.%d" % (octets[0], octets[1], octets[2], octets[3])
    if ":" not in text or "%" in text:
        return None
    try:
        packed = ipaddress.IPv6Address(text).packed
    except ValueError:
        return None
    return _ipv6_text(packed)


def _chain_address(item: str) -> str | None:
    """The address of one forwarded-chain entry, or None if it is not one.

    nginx ngx_parse_addr_port(): the entry as an address (``_ngx_addr``); else, if it starts
    with ``[``, "p = ngx_strlchr(text, last, ']'); if (p == NULL || p == last - 1 || *++p !=
    ':') return NGX_DECLINED;" (a bracketed address needs a port; one exception below); else
    the part before the first ``:``. The port is ngx_atoi() digits,
    "if (port < 1 || port > 65535) return NGX_DECLINED;", and is dropped ($remote_addr has
    none).
    """
    addr = _ngx_addr(item)
    if addr is not None:
        return addr
    if item.startswith("["):
        end = item.find("]")
        if end == len(item) - 1 and ":" in item:
            # ``[2001:db8::1]`` with no port: nginx refuses it (the walk stops at the hop
            # before); we read the IPv6 address, as we always have (README, divergences): a
            # proxy that writes it means its client, and trust is still checked.
            return _ngx_addr(item[1:end])
        if end < 0 or end == len(item) - 1 or item[end + 1] != ":":
            return None
        host, port = item[1:end], item[end + 2:]
    else:
        host, sep, port = item.partition(":")
        if not sep:
            return None
    if _DIGITS.fullmatch(port) is None or not _decimal(port, 65535):  # None, or port 0
        return None
    return _ngx_addr(host)


def _decimal(digits: str, limit: int) -> int | None:
    """ASCII ``digits`` (possibly empty: 0) as a number, None above ``limit``.

    nginx reads any number of leading zeros and refuses a value past its bound
    (ngx_inet_addr: "if (octet > 255) return INADDR_NONE;"; ngx_atoi's overflow check, then
    "port > 65535"). ``int()`` of the whole text raises ValueError past 4300 digits
    (``sys.int_info.default_max_str_digits``), which one header line holds: the exception
    escaped ``client_address`` out of the proxy core. Leading zeros go first, and a rest
    longer than the bound's is over it without being converted.
    """
    digits = digits.lstrip("0")
    if len(digits) > len(str(limit)):
        return None
    value = int(digits) if digits else 0
    return value if value <= limit else None


def first_forwarded_host(value: bytes) -> bytes:
    """ingress-nginx lua_ingress.lua ``parse_x_forwarded_host()``: ``ngx_re_split(
    ngx.var.http_x_forwarded_host, ",")`` then ``return hosts[1]``: the first element of a
    (joined) X-Forwarded-Host list, here with its spaces trimmed."""
    return value.split(b",", 1)[0].strip()


def forwarded_redirect_host(value: bytes) -> str | None:
    """The host an ssl-redirect's Location names for a trusted hop's X-Forwarded-Host (the
    caller checks the peer and use-forwarded-headers), or None: then the Host is named.

    lua_ingress.lua: ``ngx.var.best_http_host = parse_x_forwarded_host()`` (the first element)
    and ``redirect_host()``: "local host_port, err = ngx_re_split(ngx.var.best_http_host,
    ":") ... return host_port[1]" (no port). Here the first element must pass the Host
    checks (``check_host``); the value returned is normalised like the Host (lower-case, no
    port, no final dot, ``normalize_host``), but the callers use it only as that check: the
    Location names the element with its case as sent (``_actions.location_host_of``, as lua's
    ``best_http_host``). An empty or invalid one gives None (nginx would write it as it is,
    ``https:///path`` for an empty one)."""
    first = first_forwarded_host(value)
    try:
        check_host(first)
    except RemoteProxyError:
        return None
    return normalize_host(first.decode("ascii"))


def redirect_scheme(scheme: str, forwarded_proto: bytes | None) -> str:
    """The scheme the ssl-redirect decision looks at: ingress-nginx's ``$pass_access_scheme``.

    lua_ingress.lua ``rewrite()``: ``ngx.var.pass_access_scheme = ngx.var.scheme``, then with
    use_forwarded_headers "trust http_x_forwarded_proto headers correctly indicate ssl
    offloading": ``if ngx.var.http_x_forwarded_proto then ngx.var.pass_access_scheme =
    ngx.var.http_x_forwarded_proto end``; ``redirect_to_https()`` redirects only when it is
    exactly ``"http"``. ``forwarded_proto`` is the trusted hop's X-Forwarded-Proto (the caller
    passes None unless the peer is trusted and ``use_forwarded_headers`` is on); an empty value
    is ``""``, as there: ``ngx.var.http_x_forwarded_proto`` is ``""`` (true in Lua) for a
    header present with no value, nil only for one absent (``ngx_http_lua_ffi_var_get``:
    NGX_DECLINED on ``vv->not_found`` alone), so no ssl-redirect follows."""
    if forwarded_proto is not None:
        return forwarded_proto.decode("latin-1")
    return scheme
