"""ProxySettings: every knob of the sans-IO proxy, with its default and its precedent.

Field names are ingress-nginx ConfigMap keys in snake_case (``proxy-read-timeout`` ->
``proxy_read_timeout``) so a ConfigMap parser maps key -> field mechanically. Durations are float
seconds, sizes int bytes. Limits are constructor arguments (STYLE.md habit 6), each with the
precedent cited beside it.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import threading
from dataclasses import dataclass

from ._access import parse_source_ranges
from ._header_sets import parse_add_headers, valid_header_name
from ._gzip import BROTLI_TYPES as _BROTLI_TYPES
from ._gzip import DEFAULT_TYPES as _GZIP_TYPES
from ._gzip import check_settings as _check_gzip
from .._tls_settings import INGRESS_NGINX_CIPHERS as _TLS_CIPHERS
from .._tls_settings import check_settings as _check_tls

__all__ = ["ProxySettings", "NEXT_UPSTREAM_CONDITIONS", "REDIRECT_CODES", "parse_header_buffers",
           "parse_size"]

#: Values understood in ``proxy-next-upstream`` (nginx ``proxy_next_upstream``).
NEXT_UPSTREAM_CONDITIONS = frozenset({
    "error", "timeout", "invalid_header", "http_500", "http_502", "http_503", "http_504",
    "http_403", "http_404", "http_429", "non_idempotent", "off",
})


_SIZE = re.compile(r"^(\d+)([kKmMgG])?$", re.ASCII)  # nginx reads ASCII digits only
_NUMBER = re.compile(r"[0-9]+", re.ASCII)
_SIZE_UNIT = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
#: NGX_MAX_OFF_T_VALUE / NGX_MAX_SIZE_T_VALUE on 64-bit platforms.
_MAX_SIZE = (1 << 63) - 1


def parse_size(value: str) -> int:
    """nginx size syntax: ``1m`` -> 1048576, ``8k``, ``512``; raises ValueError. Used by the
    ConfigMap, the annotations and ``large_client_header_buffers`` alike.

    ngx_parse_offset / ngx_parse_size: "max = NGX_MAX_OFF_T_VALUE / scale; ... if (offset ==
    NGX_ERROR || offset > max) { return NGX_ERROR; }": nginx refuses a value past 2^63-1.
    """
    # Only nginx's separators around the value (ngx_conf_read_token: space, tab, CR, LF): a
    # Unicode space (" 8m" with U+00A0, what a copy from a web page holds) is part of the
    # token there, which nginx refuses; str.strip() took it away and read 8m.
    m = _SIZE.match(value.strip(" \t\r\n"))
    if m is None:
        raise ValueError(f"invalid size {value!r}")
    digits = m.group(1).lstrip("0") or "0"
    if len(digits) > 19:
        # Past 2^63-1 whatever the unit (and int() refuses 4,301 digits with its own message).
        shown = repr(value) if len(value) <= 40 else f"{value[:40]!r}..."
        raise ValueError(f"invalid size {shown}: above 2^63-1 bytes")
    n, scale = int(digits), _SIZE_UNIT[(m.group(2) or "").lower()]
    if n > _MAX_SIZE // scale:
        raise ValueError(f"invalid size {value!r}: above 2^63-1 bytes")
    return n * scale
#: ingress-nginx ``http-redirect-code``: "Supported codes are 301, 302, 307 and 308".
REDIRECT_CODES = frozenset({301, 302, 307, 308})
_DEFAULT_BUFFERS = "4 8k"
#: Sizes and counts a negative value makes no sense for (the ConfigMap refuses them; a keyword
#: argument must not either: proxy_body_size=-1 answered every request body 413; nginx refuses a
#: negative keep_alive_requests, "invalid number", where it silently meant one request per
#: connection).
_COUNTS = ("max_request_line", "max_header_line", "max_headers_size", "max_headers",
           "proxy_next_upstream_tries", "proxy_body_size", "upstream_keepalive_connections",
           "upstream_keepalive_requests", "max_response_header_size", "hsts_max_age",
           "keep_alive_requests", "limit_rate", "limit_rate_after", "request_buffering_limit",
           "request_buffering_budget", "proxy_stream_next_upstream_tries",
           "proxy_max_temp_file_size", "response_buffering_limit",
           "response_buffering_budget")

#: Durations in seconds that must be 0 or more (0 keeps its documented meaning: off, or no
#: limit). The ConfigMap (``_config._seconds``) and the annotations already refuse negatives;
#: a keyword argument must not turn a typo into "no limit" either (every timer treats a value
#: <= 0 as "not armed"). NaN is refused too: it compares false with everything.
_DURATIONS = (
    "client_header_timeout", "client_body_timeout", "keep_alive", "proxy_connect_timeout",
    "proxy_read_timeout", "proxy_send_timeout", "proxy_next_upstream_timeout",
    "upstream_keepalive_timeout", "upstream_keepalive_time", "proxy_protocol_header_timeout",
    "proxy_stream_timeout", "proxy_stream_next_upstream_timeout",
)
_DEFAULT_LIMITS = (8192, 8192, 32768)
#: The largest int a duration may be: a timer adds it to a float clock.
_MAX_SECONDS = int(sys.float_info.max)
#: RFC 9110 token: what ``forwarded_for_header`` must be (``_config._header_name`` reads the
#: ConfigMap's with it).
HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", re.ASCII)


def _shown(value: object) -> str:
    """``repr(value)``, but a few words for a huge int (whose repr, past 4,300 digits, is a
    ValueError of its own)."""
    if type(value) is int and value.bit_length() > 256:
        return f"an int of {value.bit_length()} bits"
    return repr(value)


#: The head limits derived from each ``large_client_header_buffers`` value met, and which value
#: each limit object comes from (by ``id``; the entry holds the object, so the id stays its
#: own). This is what tells a derived limit from one given once the settings exist:
#: ``dataclasses.replace`` passes every field back to ``__init__``, so ``replace(s,
#: large_client_header_buffers="4 32k")`` handed the limits ``s`` had derived from its own
#: value over as if given, and they stayed the old ones (and were served) while the settings
#: said "4 32k". The limits stay plain ints (a mark carried by an ``int`` subclass would change
#: their exact type); a limit the caller writes is another object, even when equal. Limits are
#: at least 512 (``parse_header_buffers``), never one of CPython's shared small ints. A few
#: values a process; past ``_DERIVED_MAX`` the oldest are forgotten (their limits then read as
#: given, as every limit did before).
_DERIVED: dict[str, tuple[int, int, int]] = {}
_SOURCE: dict[int, tuple[int, str]] = {}
_DERIVED_MAX = 256
_DERIVED_LOCK = threading.Lock()


def _derive(buffers: str) -> tuple[int, int, int]:
    """``parse_header_buffers(buffers)``, the limits recorded as derived from ``buffers``."""
    limits = _DERIVED.get(buffers)
    if limits is None:
        limits = parse_header_buffers(buffers)
        with _DERIVED_LOCK:
            if len(_DERIVED) >= _DERIVED_MAX:
                for limit in _DERIVED.pop(next(iter(_DERIVED))):
                    _SOURCE.pop(id(limit), None)
            limits = _DERIVED.setdefault(buffers, limits)
            for limit in limits:
                _SOURCE[id(limit)] = (limit, buffers)
    return limits


def _derived_from(value: int, default: int) -> str | None:
    """The ``large_client_header_buffers`` value a head limit comes from: the one it was
    derived from, ``"4 8k"`` for the field's default, None for a limit given."""
    entry = _SOURCE.get(id(value))
    if entry is not None and entry[0] is value:
        return entry[1]
    return _DEFAULT_BUFFERS if value == default else None


#: nginx's default connection_pool_size on 64-bit platforms (64 * sizeof(void *)).
_CONNECTION_POOL_SIZE = 512


def parse_header_buffers(value: str) -> tuple[int, int, int]:
    """nginx ``large_client_header_buffers number size`` -> ``(max_request_line,
    max_header_line, max_headers_size)``: "a request line or one header line must fit one
    buffer (else 414 / 431), all of them together must fit ``number`` buffers". ``size`` is
    nginx size syntax (bytes, or a k/m/g suffix). Raises ``ValueError`` with the
    API-server-style detail.

    >>> parse_header_buffers("4 16k")
    (16384, 16384, 65536)
    """
    parts = value.split()
    m = _SIZE.match(parts[1]) if len(parts) == 2 else None
    if m is None or _NUMBER.fullmatch(parts[0]) is None:  # ngx_atoi: ASCII digits
        raise ValueError('must be "<number> <size>", such as "4 8k"')
    n = int(parts[0])
    size = parse_size(parts[1])
    if n < 1 or size < 1:
        raise ValueError("number and size must be positive")
    if size < _CONNECTION_POOL_SIZE:
        # nginx refuses the configuration (ngx_http_core_merge_srv_conf: "the
        # \"large_client_header_buffers\" size must be equal to or greater than
        # \"connection_pool_size\"", 64 * sizeof(void *) = 512 on 64-bit; no ConfigMap key sets
        # it), so ingress-nginx never runs with it; read here, "4 100" answered almost every
        # request 414 or 431.
        # A 32-bit build has 256 (ingress-nginx's Makefile has listed "PLATFORMS ?= amd64 arm
        # arm64 s390x"): the message says which platforms the floor is from.
        raise ValueError(f"the size must be at least {_CONNECTION_POOL_SIZE} bytes (nginx: "
                         '"must be equal to or greater than connection_pool_size", '
                         f"{_CONNECTION_POOL_SIZE} on 64-bit platforms)")
    if n > _MAX_SIZE // size:
        raise ValueError("number times size must be at most 2^63-1 bytes")
    return size, size, n * size


@dataclass(frozen=True, slots=True)
class ProxySettings:
    """Every proxy setting. ``ProxySettings()`` is the documented default.

    Each field takes the Python type it is annotated with (seconds as an ``int`` too, a list
    where a tuple is taken); another type raises ``TypeError`` naming the field
    (``hsts="false"``: pass ``False``), a string where a tuple is taken ``ValueError``. A
    ConfigMap's strings go through :func:`ingresslib.proxy.parse_config_data`.

    >>> ProxySettings().proxy_body_size
    1048576
    """

    # --- request head limits: nginx ``large_client_header_buffers 4 8k`` -------------------
    #: A request line longer than one 8k buffer gets 414 (nginx: "Request-URI Too Large").
    max_request_line: int = 8192
    #: One header line longer than one 8k buffer gets 431 (nginx answers 400 "Request Header Or
    #: Cookie Too Large"; RFC 6585 gives 431 for exactly this).
    max_header_line: int = 8192
    #: All header lines together: 4 buffers of 8k -> 431.
    max_headers_size: int = 32768
    #: Header count; 100 is Go's/aiohttp's order of magnitude -> 431.
    max_headers: int = 100
    #: nginx ``large_client_header_buffers``: when none of the three limits above is given,
    #: ``__post_init__`` derives them from it (so the keyword argument alone takes effect,
    #: CONTRACT: "The same settings are keyword arguments of the Python server API"), and
    #: again in every copy ``dataclasses.replace`` makes with another value (the limits a
    #: ConfigMap's ``large-client-header-buffers`` gives are derived, too); limits given
    #: explicitly win (one equal to its default counts as not given). An invalid value:
    #: ValueError.
    large_client_header_buffers: str = _DEFAULT_BUFFERS
    #: nginx ``client_header_timeout 60s``: absolute deadline for a whole request head.
    client_header_timeout: float = 60.0
    #: nginx ``client_body_timeout 60s``: the most time between two reads of a request body;
    #: then 408, and the upstream is not blamed (no retry, no failure observed).
    client_body_timeout: float = 60.0
    #: ingress-nginx ``keep-alive`` (seconds idle between requests); 0 disables keep-alive.
    keep_alive: float = 75.0
    #: ingress-nginx ``keep-alive-requests`` (nginx ``keepalive_requests``): the most requests
    #: served on one client connection; the response to the last says ``Connection: close``.
    #: 0 means what it means to nginx, one request per connection like 1
    #: (ngx_http_update_location_config: "} else if (r->connection->requests >=
    #: clcf->keepalive_requests) { r->keepalive = 0;", requests counting from 1), not "no
    #: limit": nginx has none, and ``keep-alive-requests: 0`` in the ConfigMap already meant
    #: one request. A negative value raises ``ValueError``.
    keep_alive_requests: int = 1000

    # --- forwarded headers (ingress-nginx names and meaning; SEMANTICS §9) ---------------
    use_forwarded_headers: bool = False
    compute_full_forwarded_for: bool = False
    forwarded_for_header: str = "X-Forwarded-For"
    #: ingress-nginx defaults to 0.0.0.0/0; we trust no hop unless told (SEMANTICS §9).
    #: Each element a CIDR or an address as nginx's ``set_real_ip_from`` reads it (the
    #: ConfigMap's lists' rules: a decimal prefix, no netmask, zone or comma): ValueError.
    proxy_real_ip_cidr: tuple[str, ...] = ()
    enable_real_ip: bool = False
    generate_request_id: bool = True
    #: ingress-nginx ``proxy-add-original-uri-header``: send ``X-Original-URI`` (the request
    #: target as the client sent it, nginx's ``$request_uri``) to the backend.
    proxy_add_original_uri_header: bool = False

    # --- TLS related (ingress-nginx) ----------------------------------------------------
    ssl_redirect: bool = True
    #: ingress-nginx ``force-ssl-redirect`` (ConfigMap default of the annotation, false):
    #: redirect plain http to https even for hosts without a TLS certificate.
    force_ssl_redirect: bool = False
    #: ingress-nginx ``http-redirect-code`` (default 308): the status of the ssl-redirect
    #: (lua_ingress.lua: ``return ngx_redirect(uri, config.http_redirect_code)``); one of
    #: 301, 302, 307, 308, else ValueError. (app-root's redirect is always 302.)
    http_redirect_code: int = 308
    #: ingress-nginx ``preserve-trailing-slash`` (the default of the annotation of the same
    #: name; off): off, the ssl-redirect's Location drops one final ``/`` of the request
    #: target, as lua_ingress.lua does: "-- do not append a trailing slash on redirects unless
    #: enabled by annotations / if location_config.preserve_trailing_slash == false then if
    #: string.byte(request_uri, -1, -1) == string.byte('/') then request_uri =
    #: string.sub(request_uri, 1, -2)" (``/a/`` -> ``https://host/a``, ``/`` ->
    #: ``https://host``). On: the target is kept as it is.
    preserve_trailing_slash: bool = False
    hsts: bool = True
    hsts_max_age: int = 31536000
    hsts_include_subdomains: bool = True
    hsts_preload: bool = False

    # --- upstream (ingress-nginx defaults) ----------------------------------------------
    proxy_connect_timeout: float = 5.0
    proxy_read_timeout: float = 60.0
    proxy_send_timeout: float = 60.0
    #: nginx ``proxy_next_upstream error timeout``.
    proxy_next_upstream: tuple[str, ...] = ("error", "timeout")
    #: Tries in total, the first one included (ingress-nginx default 3); 0 = unlimited.
    proxy_next_upstream_tries: int = 3
    #: ingress-nginx ``proxy-next-upstream-timeout`` (config.go ``ProxyNextUpstreamTimeout
    #: int``, default 0 = no limit), nginx ``proxy_next_upstream_timeout``: "Limits the time
    #: during which a request can be passed to the next server", counted from the first try's
    #: start (ngx_http_upstream_next: no retry when "timeout && ngx_current_msec -
    #: u->peer.start_time >= timeout"). Whole seconds in the ConfigMap; the default of the
    #: annotation of the same name.
    proxy_next_upstream_timeout: float = 0.0
    #: TCP services (``serve --tcp-services-configmap``, ingresslib._tcp_proxy): ingress-nginx
    #: ``proxy-stream-timeout`` (config.go default "600s", nginx stream ``proxy_timeout``):
    #: this long with no byte either way closes both sides (0: no bound).
    proxy_stream_timeout: float = 600.0
    #: ``proxy-stream-next-upstream`` (default on): a failed connect tries the next endpoint.
    proxy_stream_next_upstream: bool = True
    #: ``proxy-stream-next-upstream-timeout`` (default "600s"; 0: no bound).
    proxy_stream_next_upstream_timeout: float = 600.0
    #: ``proxy-stream-next-upstream-tries`` (default 3, the first included; 0: each endpoint
    #: once, nginx round-robin's own bound).
    proxy_stream_next_upstream_tries: int = 3
    #: ingress-nginx ``retry-non-idempotent`` (default false): "since 1.9.13 NGINX will not
    #: retry non-idempotent requests (POST, LOCK, PATCH) in case of an error. The previous
    #: behavior can be restored using the value true". On: ``non_idempotent`` is appended to
    #: every route's effective ``proxy-next-upstream`` (the ConfigMap's or the annotation's),
    #: as nginx.tmpl's ``buildNextUpstream $location.Proxy.NextUpstream
    #: $all.Cfg.RetryNonIdempotent`` does.
    retry_non_idempotent: bool = False
    #: nginx ``proxy_ignore_client_abort`` (default off; ingress-nginx sets no value and has no
    #: ConfigMap key for it, so ``--config`` does not read one: a keyword argument only). Off:
    #: a client that closes (or half-closes) its connection while the upstream has not finished
    #: answering aborts the request, as nginx's ngx_http_upstream_check_broken_connection does
    #: ("client prematurely closed connection, so upstream connection is closed too"): the
    #: upstream connection is closed, not pooled, the record says 499 (or the status of a
    #: response already begun), and the client connection is closed. On: the response is let
    #: finish after a half-close that follows a complete request (then the connection closes).
    proxy_ignore_client_abort: bool = False
    #: ingress-nginx ``proxy-body-size: 1m``; 0 = unlimited. Larger bodies get 413.
    proxy_body_size: int = 1048576
    #: ingress-nginx ``enable-underscores-in-headers`` (nginx ``underscores_in_headers``): off,
    #: a request header name with ``_`` is invalid, dropped under ``ignore_invalid_headers``.
    enable_underscores_in_headers: bool = False
    #: ingress-nginx ``ignore-invalid-headers`` (default true; nginx
    #: ``ignore_invalid_headers on``): a request header whose name holds a character other than
    #: a letter, a digit, ``-`` (or ``_`` unless ``enable_underscores_in_headers``) is dropped,
    #: not forwarded. Off, such names pass, ``_`` ones too (nginx: "marked as invalid and
    #: become subject to the ignore_invalid_headers directive"), except a ``_`` spelling of a
    #: header the proxy drops or writes (``X_Forwarded_For``: CGI/WSGI read it as
    #: ``X-Forwarded-For``).
    ignore_invalid_headers: bool = True
    #: ingress-nginx ``upstream-keepalive-connections``: idle pooled connections kept, all
    #: endpoints together (its one ``upstream_balancer`` block has ``keepalive N``), the least
    #: recently used closed first; enforced by the server's pool. 0 = no reuse.
    upstream_keepalive_connections: int = 320
    #: ingress-nginx ``upstream-keepalive-timeout`` (nginx ``keepalive_timeout`` in upstream):
    #: an idle pooled connection is closed once it has been idle this long.
    upstream_keepalive_timeout: float = 60.0
    #: ingress-nginx ``upstream-keepalive-requests`` (nginx ``keepalive_requests`` in
    #: upstream): a connection that has carried this many requests is closed after the last
    #: one (ngx_http_upstream_free_keepalive_peer: "if (c->requests >= kp->conf->requests)
    #: { goto invalid; }"), so 0 (or 1) means no reuse, as in nginx.
    upstream_keepalive_requests: int = 10000
    #: ingress-nginx ``upstream-keepalive-time`` (config.go ``UpstreamKeepaliveTime string``,
    #: default "1h"; nginx ``keepalive_time``): "Limits the maximum time during which requests
    #: can be processed through one keepalive connection. After this time is reached, the
    #: connection is closed following the subsequent request processing." Counted from the
    #: connect (ngx_http_upstream_free_keepalive_peer: "if (ngx_current_msec - c->start_time >
    #: kp->conf->time) { goto invalid; }"); 0: no connection is reused, as in nginx.
    upstream_keepalive_time: float = 3600.0
    #: The ``auth-url`` service's and a mirror's response heads: larger is an invalid
    #: response. A proxied response's head is bounded by ``proxy_buffer_size`` (below).
    max_response_header_size: int = 65536
    #: ingress-nginx ``proxy-buffer-size`` ("4k"), ``proxy-buffering`` ("off"),
    #: ``proxy-buffers-number`` (4) and ``proxy-max-temp-file-size`` ("1024m"): the defaults
    #: of the annotations (proxy/_response_buffer.py). ``proxy_buffer_size`` bounds a proxied
    #: response's head (each head by itself, 1xx and final; all together within
    #: max_response_header_size): past it, 502 ("upstream sent too big header").
    #: ``proxy_buffering`` "on": the driver reads the upstream ahead of a slow client, up to
    #: ``proxy_buffers_number`` x ``proxy_buffer_size`` + ``proxy_max_temp_file_size``, that
    #: last part in memory and capped by ``response_buffering_limit`` (8 MiB per response;
    #: not an ingress-nginx key: nginx spills to a temporary file).
    proxy_buffer_size: int = 4096
    proxy_buffering: str = "off"
    proxy_buffers_number: int = 4
    proxy_max_temp_file_size: int = 1073741824
    response_buffering_limit: int = 8388608
    #: Not an ingress-nginx key: the most bytes every client connection of one
    #: ``ProxyServer`` reading ahead of its client (``proxy_buffering`` "on") holds together,
    #: past the write buffer's high-water mark; a connection that would pass it streams as with
    #: "off" until its client drains (proxy/_response_buffer.py ``ahead_fits``). nginx's
    #: memory is bounded by its buffers per request, the rest going to temporary files.
    response_buffering_budget: int = 268435456

    # --- access control (proxy/_access.py; ingress-nginx ConfigMap keys) --------------------
    #: ingress-nginx ``whitelist-source-range`` (defaults.Backend ``WhitelistSourceRange``):
    #: the allowlist of every Ingress location without an ``allowlist-source-range`` /
    #: ``whitelist-source-range`` annotation (ipallowlist/main.go: "A missing annotation is
    #: not a problem, just use the default"): CIDRs or addresses; others get 403.
    whitelist_source_range: tuple[str, ...] = ()
    #: ingress-nginx ``denylist-source-range`` (defaults.Backend ``DenylistSourceRange``): the
    #: denylist of every location without a ``denylist-source-range`` annotation.
    denylist_source_range: tuple[str, ...] = ()
    #: ingress-nginx ``block-cidrs``: addresses refused (403) on every request, routed or
    #: not (nginx.tmpl's http-level "deny" lines), checked before any source-range annotation.
    block_cidrs: tuple[str, ...] = ()
    #: ingresslib's own switch (ConfigMap key ``deny-unenforced-access-annotations``). On (the
    #: default): the routes of an Ingress carrying an access-control annotation ingresslib
    #: does not implement (``auth-*`` but ``auth-type: basic`` and the implemented ones, ``*-snippet``)
    #: answer 503, as ingress-nginx denies a location whose access annotation it cannot
    #: apply; the warning says which.
    #: Off: those annotations are ignored with a warning and the routes are served without
    #: them -- only for a deployment where something else (the application, another proxy)
    #: enforces them.
    deny_unenforced_access_annotations: bool = True
    #: ingress-nginx ``limit-req-status-code`` / ``limit-conn-status-code`` (default 503):
    #: the status of a request refused by ``limit-rps``/``limit-rpm`` or by
    #: ``limit-connections`` (nginx's ``limit_req_status`` / ``limit_conn_status``: 400 to
    #: 599). proxy/_ratelimit.py.
    limit_req_status_code: int = 503
    limit_conn_status_code: int = 503
    #: ingress-nginx ``global-rate-limit-status-code`` (default 429): the status of a request
    #: refused by ``global-rate-limit`` (global_throttle.lua "ngx_exit(config.status_code)";
    #: 400 to 599 here). proxy/_globalratelimit.py.
    global_rate_limit_status_code: int = 429
    #: ingress-nginx ``limit-rate`` / ``limit-rate-after`` (kilobytes, 1024 bytes; default
    #: 0): every location's response bandwidth per request, and the bytes sent before it
    #: applies (nginx's ``limit_rate`` / ``limit_rate_after``); the annotations' defaults.
    #: ``limit_rate`` 0: no limit. proxy/_bandwidth.py.
    limit_rate: int = 0
    limit_rate_after: int = 0
    #: ingress-nginx ``use-gzip`` (default false), ``gzip-level`` (1 to 9, default 1),
    #: ``gzip-min-length`` (bytes, default 256), ``gzip-types`` (space-separated MIME types,
    #: text/html always; "*" any; default config.go's list) and ``gzip-disable`` (a
    #: case-insensitive regex on the User-Agent, or the word ``msie6``; default none): nginx's
    #: gzip filter on every response (proxy/_gzip.py).
    use_gzip: bool = False
    gzip_level: int = 1
    gzip_min_length: int = 256
    gzip_types: str = _GZIP_TYPES
    gzip_disable: str = ""
    #: ingress-nginx ``enable-brotli`` (default false), ``brotli-level`` (0 to 11, default 4),
    #: ``brotli-min-length`` (bytes, default 20) and ``brotli-types`` (as gzip_types; default
    #: config.go's list): google/ngx_brotli's filter on every response, before the gzip
    #: filter (proxy/_brotli.py). Needs the Brotli package (the ``brotli`` extra); without
    #: it nothing is brotli-compressed (a ConfigMap warning).
    enable_brotli: bool = False
    brotli_level: int = 4
    brotli_min_length: int = 20
    brotli_types: str = _BROTLI_TYPES
    #: ingress-nginx ``proxy-http-version`` (``"1.0"`` or ``"1.1"``, default ``"1.1"``) and
    #: ``use-port-in-redirects`` (default false): the annotations' defaults
    #: (proxy/_location_extras.py).
    proxy_http_version: str = "1.1"
    use_port_in_redirects: bool = False
    #: ingress-nginx ``proxy-request-buffering`` (``"on"`` or ``"off"``), the annotation's
    #: default. ``"off"`` here, unlike ingress-nginx's "on": the body streams to the upstream
    #: (README's divergences). ``"on"``: the body is read whole (up to
    #: ``request_buffering_limit``) before the upstream is opened and sent with a
    #: Content-Length (proxy/_request_buffer.py).
    proxy_request_buffering: str = "off"
    #: With ``proxy_request_buffering`` "off" and no annotation: a body still arriving when the
    #: upstream is sent the request is kept (up to 1 MiB) and sent again by a retry, standing
    #: in for ingress-nginx's default "on" (True, the default). False: nginx's
    #: ``proxy_request_buffering off``, no retry once such a body began to go upstream
    #: (proxy/_request_buffer.py ``unbuffered``); the ConfigMap's ``proxy-request-buffering:
    #: "off"`` sets it. ``proxy_request_buffering="off"`` given alone is that field's default,
    #: so ingresslib's default (a dataclass cannot tell them apart). Not an ingress-nginx key.
    replay_streamed_body: bool = True
    #: The most body bytes held per request with ``proxy_request_buffering`` "on" (64 MiB;
    #: nginx spills to a file instead): a chunked body past it is answered 413, a
    #: Content-Length one larger is streamed. Not an ingress-nginx key.
    request_buffering_limit: int = 67108864
    #: The most body bytes held by all the requests of one ``Proxy`` together with
    #: ``proxy_request_buffering`` "on" (256 MiB): a Content-Length body that does not fit
    #: what is left is streamed, a chunked one that grows past it is answered 503
    #: (proxy/_request_buffer.py). Not an ingress-nginx key.
    request_buffering_budget: int = 268435456
    #: ingress-nginx ``global-allowed-response-headers``: the header names a ``custom-headers``
    #: ConfigMap may set (proxy/_header_sets.py); a name not listed refuses the whole set.
    #: Compared as written (customheaders/main.go: ``slices.Contains``). Default: none.
    global_allowed_response_headers: tuple[str, ...] = ()
    #: ingress-nginx ``add-headers``: the ``namespace/name`` of a ConfigMap whose data are set
    #: on every answer (nginx.tmpl's http-level ``more_set_headers``), the proxy's own too;
    #: a location's CORS and custom-headers win a name they share. Looked up in the router's
    #: ``resources.config_maps`` (proxy/_header_sets.py). Default "": none.
    add_headers: str = ""
    #: ingress-nginx ``hide-headers``: response header names dropped from an upstream's
    #: answer (nginx's ``proxy_hide_header``, case-insensitive); never this hop's own
    #: headers, never Content-Length/Transfer-Encoding. Default: none.
    hide_headers: tuple[str, ...] = ()
    #: ingress-nginx ``proxy-set-headers``: the ``namespace/name`` of a ConfigMap whose data
    #: are request headers sent upstream (nginx's ``proxy_set_header`` in every location, after
    #: this hop's own), replacing the client's of those names; an empty value: neither sent.
    #: A name ingresslib writes itself (Host, X-Forwarded-*...) refuses the set with a warning
    #: (proxy/_header_sets.py). Default "": none.
    proxy_set_headers: str = ""
    #: ingress-nginx ``custom-http-errors`` (the ConfigMap key): the upstream statuses every
    #: location without its own ``custom-http-errors`` annotation intercepts, as ``"404,503"``
    #: (codes 300-599, sorted, each once). ingresslib has no controller default backend: a
    #: location whose Ingress has a ``default-backend`` annotation gets the answer from that
    #: Service; any other passes the upstream's answer (proxy/_error_pages.py). Default "":
    #: none.
    custom_http_errors: str = ""

    # --- PROXY protocol (proxy/_proxy_protocol.py; ingress-nginx ConfigMap keys) ------------
    #: ingress-nginx ``use-proxy-protocol`` (default false; nginx ``listen ... proxy_protocol``
    #: on every listener): each connection to ``ProxyServer`` starts with a PROXY protocol
    #: header (v1 or v2), read before anything else (before the TLS ClientHello); a connection
    #: without a valid one is closed. The header's client address stands for the TCP peer
    #: (``X-Forwarded-For``, ``X-Real-IP``, allowlists, logs), and its destination port is
    #: ``X-Forwarded-Port``, when the TCP peer is inside ``proxy_real_ip_cidr`` (nginx
    #: ``real_ip_header proxy_protocol`` with ``set_real_ip_from``); else they are read and
    #: not used. The sans-IO core never sees the header (``Proxy.connection(peer=...)``).
    use_proxy_protocol: bool = False
    #: ingress-nginx ``proxy-protocol-header-timeout`` (config.go default 5s): the most time,
    #: from accept, for the PROXY protocol header; then the connection is closed. 0: the
    #: ``client_header_timeout`` instead.
    proxy_protocol_header_timeout: float = 5.0
    #: ingress-nginx ``proxy-ssl-location-only`` (config.go default false): on, a host's
    #: server block gets no ``proxy_ssl_*`` (controller.go ``createServers``: "if
    #: !n.store.GetBackendConfiguration().ProxySSLLocationOnly { ... server.ProxySSL =
    #: anns.ProxySSL }"): a location speaks TLS to its endpoints with its own ``proxy-ssl-*``
    #: only, and the auth and mirror subrequests inherit none (proxy/_proxy_ssl.py).
    proxy_ssl_location_only: bool = False

    # --- TLS termination (ingresslib/_tls_settings.py; ProxyServer's HTTPS listener only) ---
    #: ingress-nginx ``ssl-protocols`` (default "TLSv1.2 TLSv1.3"): nginx ``ssl_protocols``
    #: tokens (SSLv2, SSLv3, TLSv1, TLSv1.1, TLSv1.2, TLSv1.3); ones this OpenSSL lacks are
    #: not offered (a ConfigMap warning). ValueError: an unknown token, or none available.
    ssl_protocols: str = "TLSv1.2 TLSv1.3"
    #: ingress-nginx ``ssl-ciphers`` (TLS 1.2 and below, OpenSSL syntax; its default list),
    #: with ``ssl_prefer_server_ciphers on``; "": nginx's ``HIGH:!aNULL:!MD5`` in the client's
    #: order. ValueError: a list OpenSSL refuses.
    ssl_ciphers: str = _TLS_CIPHERS
    #: ingress-nginx ``ssl-ecdh-curve`` ("auto", or curves separated by ":": only the first
    #: is offered, Python's ssl sets one).
    ssl_ecdh_curve: str = "auto"
    #: ingress-nginx ``ssl-session-cache`` / ``ssl-session-cache-size`` (bytes) /
    #: ``ssl-session-timeout`` (seconds): read and checked; OpenSSL's cache and lifetimes are
    #: used (Python's ssl sets none of them: a ConfigMap warning when they differ).
    ssl_session_cache: bool = True
    ssl_session_cache_size: int = 10 * 1024 * 1024
    ssl_session_timeout: float = 600.0
    #: ingress-nginx ``ssl-session-tickets`` (default false: resumption from the session
    #: cache only; true: TLS 1.2 session tickets under OpenSSL's per-process key).
    ssl_session_tickets: bool = False
    #: ingress-nginx ``ssl-reject-handshake``: a ClientHello naming no Ingress host (or none)
    #: is refused (``unrecognized_name`` alert) instead of served the default certificate.
    ssl_reject_handshake: bool = False
    #: ingress-nginx ``ssl-dh-param``: "namespace/name" of a Secret whose ``dhparam.pem``
    #: holds PEM DH parameters (nginx ``ssl_dhparam``: the DHE suites, TLS 1.2), read from the
    #: certificate store's Resources; "": none. ValueError: not "namespace/name".
    ssl_dh_param: str = ""

    # --- global external authentication (proxy/_globalauth.py; ingress-nginx ConfigMap) -----
    #: ingress-nginx ``global-auth-url``: every location without its own ``auth-url`` and
    #: without ``enable-global-auth: "false"`` asks this auth service first, as ``auth-url``
    #: does (proxy/_extauth.py); an ``http://`` or ``https://`` URL with a host, no nginx
    #: variable, else ValueError. "": no global authentication.
    global_auth_url: str = ""
    #: ``global-auth-method``, ``-signin``, ``-signin-redirect-param``, ``-response-headers``,
    #: ``-request-redirect``, ``-always-set-cookie``: as the annotations ``auth-method``...
    #: ("": unset; ``rd`` the redirect parameter's default).
    global_auth_method: str = ""
    global_auth_signin: str = ""
    global_auth_signin_redirect_param: str = "rd"
    global_auth_response_headers: tuple[str, ...] = ()
    global_auth_request_redirect: str = ""
    global_auth_always_set_cookie: bool = False
    #: ``global-auth-cache-key`` / ``global-auth-cache-duration``: the global auth service's
    #: answers cached as ``auth-cache-key`` / ``auth-cache-duration`` cache a location's
    #: (proxy/_authcache.py); "" no cache. Without a duration (config.go NewDefault: none)
    #: only an answer's own X-Accel-Expires / Cache-Control / Expires time caches it. A key
    #: without an nginx variable, with an unsupported one, or an invalid duration: ValueError.
    global_auth_cache_key: str = ""
    global_auth_cache_duration: str = ""
    #: ingress-nginx ``no-auth-locations`` (default ``/.well-known/acme-challenge``): a route
    #: whose rule path starts with one of these gets no external authentication (global or
    #: its own ``auth-url``) and no basic auth (nginx.tmpl ``isLocationInLocationList``).
    no_auth_locations: tuple[str, ...] = ("/.well-known/acme-challenge",)
    #: ingress-nginx ``no-tls-redirect-locations`` (default ``/.well-known/acme-challenge``):
    #: a route whose rule path starts with one of these is never redirected to https, not even
    #: with ``force-ssl-redirect`` (template.go ``isLocationInLocationList``, lua_ingress.lua
    #: ``force_no_ssl_redirect``).
    no_tls_redirect_locations: tuple[str, ...] = ("/.well-known/acme-challenge",)
    #: ingress-nginx ``proxy-redirect-from`` / ``proxy-redirect-to`` / ``proxy-cookie-domain``
    #: / ``proxy-cookie-path`` (defaults.Backend, default ``off``): the values of the
    #: annotations of the same names for a location without them (proxy/_response_head.py);
    #: a value nginx refuses: ValueError.
    proxy_redirect_from: str = "off"
    proxy_redirect_to: str = "off"
    proxy_cookie_domain: str = "off"
    proxy_cookie_path: str = "off"
    #: ingress-nginx ``block-user-agents`` / ``block-referers`` (config.go ``BlockUserAgents``,
    #: ``BlockReferers``): nginx ``map`` keys (an exact string, ignoring ASCII case, or a
    #: ``~``/``~*`` regex) of the User-Agent / Referer refused with 403 in every server block,
    #: before anything else of the request (proxy/_block.py). nginx refuses a bad item:
    #: ValueError.
    block_user_agents: tuple[str, ...] = ()
    block_referers: tuple[str, ...] = ()
    #: ingress-nginx ``skip-access-log-urls`` (config.go ``SkipAccessLogURLs``): ``map
    #: $request_uri $loggable`` keys; a request whose target as sent (query included) is one
    #: is not logged (proxy/_block.py).
    skip_access_log_urls: tuple[str, ...] = ()
    #: ingress-nginx ``disable-access-log`` (config.go ``DisableAccessLog``): nginx.tmpl's
    #: "access_log off;" for the whole http block: no access log line at all.
    disable_access_log: bool = False
    #: ingress-nginx ``server-tokens`` (config.go ``ShowServerTokens``, default false: nginx.tmpl's
    #: ``more_clear_headers Server``, no Server header on any answer). True: every answer, the
    #: proxy's own and an upstream's, carries ``Server: ingresslib/<version>`` (nginx's
    #: ``nginx/<version>``), unless the upstream's passes (proxy/_headers.py ``add_server``).
    server_tokens: bool = False
    #: ingress-nginx ``allow-backend-server-header`` (``proxy_pass_header Server``, default
    #: false): the upstream's Server header reaches the client -- with ``server_tokens`` only,
    #: as in ingress-nginx, whose ``more_clear_headers Server`` clears it otherwise.
    allow_backend_server_header: bool = False
    #: ingress-nginx ``log-format-upstream`` (config.go ``LogFormatUpstream``): the access
    #: log's nginx ``log_format`` ("": ingress-nginx's default line). Read by
    #: :class:`ingresslib.AccessLog` (``_logformat.py``); an unknown variable: ValueError.
    log_format_upstream: str = ""
    #: ingress-nginx ``log-format-escape-json`` / ``log-format-escape-none``: the format's
    #: ``escape=json`` / ``escape=none`` (none wins when both are on).
    log_format_escape_json: bool = False
    log_format_escape_none: bool = False
    #: ingress-nginx ``enable-access-log-for-default-backend``: log the requests the catch-all
    #: server's default location answers (no Ingress names the host, no rule matched);
    #: off: ``AccessLog`` given ``default_server`` skips them (the metrics count them).
    enable_access_log_for_default_backend: bool = False

    def __post_init__(self) -> None:
        # Types first: a ConfigMap spelling passed as a keyword argument ("false", "8m",
        # "10.0.0.0/8") was taken as it was -- "false" is truthy, so use_forwarded_headers=
        # "false" trusted X-Forwarded-For -- or failed later naming no field.
        _check_types(self)
        for name in _DURATIONS:
            value = getattr(self, name)
            if not value >= 0:  # negative, or NaN
                raise ValueError(f"{name}: {_shown(value)} must be 0 or more seconds")
            if type(value) is int and value > _MAX_SECONDS:
                # An int past a float's range: every timer adds it to a float clock, and
                # OverflowError ("int too large to convert to float") came out of each request
                # (proxy_read_timeout=10**400). (A float, math.inf too, is a time already.)
                raise ValueError(f"{name}: {_shown(value)} is more seconds than a float holds")
        if not HEADER_NAME.fullmatch(self.forwarded_for_header):
            # The ConfigMap refuses it (_config._header_name); a keyword argument must not take
            # it either: "" or "X Real IP" never named a request header (the client address
            # was silently the peer's), and a name outside Latin-1 ("X-Client-\u0130P") failed
            # every request with UnicodeEncodeError, naming no setting.
            raise ValueError(f"forwarded_for_header: {self.forwarded_for_header!r} is not an "
                             "HTTP header name (letters, digits and !#$%&'*+-.^_`|~, no spaces)")
        for name in ("whitelist_source_range", "denylist_source_range", "block_cidrs",
                     "proxy_real_ip_cidr"):
            # Each element is one nginx parameter ("deny {{ trimSpace $ip }};",
            # "set_real_ip_from {{ $trusted_ip }};"), read by ngx_ptocidr as the ConfigMap's
            # lists are (proxy/_access.py ``parse_source_ranges``): a netmask, a zone or a
            # comma fails the reload. Checked one by one, so that a comma inside an element
            # is refused here, not when the first table's ``SourceRanges`` reads it.
            for item in getattr(self, name):
                try:
                    if "," in item:
                        raise ValueError(f"{item!r} holds a comma: one CIDR per element")
                    parse_source_ranges(item)
                except ValueError as e:
                    raise ValueError(f"{name}: {e}") from None
        if (self.proxy_redirect_from, self.proxy_redirect_to, self.proxy_cookie_domain,
                self.proxy_cookie_path) != ("off", "off", "off", "off"):
            from ._response_head import parse_cookie_pair, parse_redirect, parse_redirect_word

            try:
                parse_redirect(self.proxy_redirect_from, "/")
                parse_redirect_word(self.proxy_redirect_to, "proxy-redirect-to")
                parse_cookie_pair(self.proxy_cookie_domain, "proxy-cookie-domain")
                parse_cookie_pair(self.proxy_cookie_path, "proxy-cookie-path")
            except ValueError as e:
                raise ValueError(f"proxy_redirect_*/proxy_cookie_*: {e}") from None
        for name in ("block_user_agents", "block_referers", "skip_access_log_urls"):
            if getattr(self, name):
                from ._block import compile_map  # (only when set: a ValueError naming it)
                compile_map(getattr(self, name), name)
        if self.request_buffering_limit < 1:
            # 0 is "no limit" for nginx's sizes, but no cap here would be unbounded memory
            # (nginx spills to a file); and a cap of 0 refused every chunked body.
            raise ValueError(f"request_buffering_limit: {_shown(self.request_buffering_limit)} "
                             "must be 1 or more (the most body bytes held per request with "
                             "proxy-request-buffering on)")
        if self.request_buffering_budget < 1:
            # As the per-request cap: no budget would be unbounded memory.
            raise ValueError(f"request_buffering_budget: "
                             f"{_shown(self.request_buffering_budget)} must be 1 or more (the "
                             "most body bytes held by all requests with "
                             "proxy-request-buffering on)")
        for name in _COUNTS:
            value = getattr(self, name)
            if value < 0:
                raise ValueError(f"{name}: {_shown(value)} must be 0 or more")
            if value > _MAX_SIZE:
                # The ConfigMap's bound (_config._int, parse_size: nginx's and Go's int64); past
                # 4,300 digits an hsts_max_age failed every answer over TLS ("Exceeds the limit
                # (4300 digits) for integer string conversion"), naming no setting.
                raise ValueError(f"{name}: {_shown(value)} must be at most 2^63-1")
        unknown = sorted(set(self.proxy_next_upstream) - NEXT_UPSTREAM_CONDITIONS)
        if unknown:
            raise ValueError(f"proxy_next_upstream: unknown condition(s) {unknown}; supported: "
                             + ", ".join(sorted(NEXT_UPSTREAM_CONDITIONS)))
        if self.proxy_request_buffering not in ("on", "off"):
            raise ValueError(f"proxy_request_buffering: {self.proxy_request_buffering!r} is not "
                             "\"on\" or \"off\"")
        if self.proxy_buffering not in ("on", "off"):
            raise ValueError(f"proxy_buffering: {self.proxy_buffering!r} is not \"on\" or "
                             "\"off\"")
        if self.proxy_buffer_size < 1 or self.proxy_buffers_number < 2:
            # nginx refuses both in its configuration test (a 0 buffer holds no head; "there
            # must be at least 2 "proxy_buffers"").
            raise ValueError(f"proxy_buffer_size / proxy_buffers_number: "
                             f"{_shown(self.proxy_buffer_size)} / "
                             f"{_shown(self.proxy_buffers_number)}: must be 1 byte or more / "
                             "2 or more")
        if self.proxy_http_version not in ("1.0", "1.1"):
            raise ValueError(f"proxy_http_version: {self.proxy_http_version!r} is not \"1.0\" "
                             "or \"1.1\"")
        if self.http_redirect_code not in REDIRECT_CODES:
            raise ValueError(f"http_redirect_code: {self.http_redirect_code!r} is not one of "
                             "301, 302, 307, 308")
        for header in self.global_allowed_response_headers:
            if not valid_header_name(header):
                raise ValueError(f"global_allowed_response_headers: {header!r} is not a valid "
                                 "header name (letters, digits, - and _)")
        for header in self.hide_headers:
            if not valid_header_name(header):
                raise ValueError(f"hide_headers: {header!r} is not a valid header name "
                                 "(letters, digits, - and _)")
        if self.add_headers and parse_add_headers(self.add_headers) != self.add_headers:
            raise ValueError(f"add_headers: {self.add_headers!r} is not \"namespace/name\"")
        if self.proxy_set_headers and \
                parse_add_headers(self.proxy_set_headers) != self.proxy_set_headers:
            raise ValueError(f"proxy_set_headers: {self.proxy_set_headers!r} is not "
                             "\"namespace/name\"")
        for name in ("limit_req_status_code", "limit_conn_status_code",
                     "global_rate_limit_status_code"):
            if not 400 <= getattr(self, name) <= 599:
                # nginx's limit_req_status / limit_conn_status: "value must be between 400
                # and 599" (ngx_conf_check_num_bounds), else nginx -t fails.
                raise ValueError(f"{name}: {getattr(self, name)!r} must be from 400 to 599")
        from ._globalauth import global_ext_auth
        global_ext_auth(self)  # the global_auth_* fields: ValueError naming the field
        _check_gzip(self)  # gzip_* / brotli_* (proxy/_gzip.py): ValueError naming the field
        _check_tls(self)  # the ssl_* fields (_tls_settings.py): ValueError naming the field
        if self.log_format_upstream:
            from .._logformat import compile_format  # (only when set)
            try:
                compile_format(self.log_format_upstream)
            except ValueError as e:
                raise ValueError(f"log_format_upstream: {e}") from None
        if self.custom_http_errors:
            from ._error_pages import parse_global_custom_http_errors
            try:
                canonical, skipped = parse_global_custom_http_errors(self.custom_http_errors)
            except ValueError as e:
                raise ValueError(f"custom_http_errors: {e}") from None
            if skipped or canonical != self.custom_http_errors:
                raise ValueError(f"custom_http_errors: {self.custom_http_errors!r} is not codes "
                                 f"such as \"404,503\" (sorted, each once: {canonical!r})")
        buffers = self.large_client_header_buffers
        if buffers == _DEFAULT_BUFFERS:
            derived = _DEFAULT_LIMITS
        else:
            try:
                derived = _derive(buffers)
            except ValueError as e:
                raise ValueError(f"large_client_header_buffers: {e}") from None
        source = _derived_from(self.max_request_line, _DEFAULT_LIMITS[0])
        if (source is not None and source != buffers
                and _derived_from(self.max_header_line, _DEFAULT_LIMITS[1]) == source
                and _derived_from(self.max_headers_size, _DEFAULT_LIMITS[2]) == source):
            # None of the three was given (the defaults, or the limits of the settings this is
            # a replace() of, all derived from one other value; a limit copied alone from other
            # settings comes from another value: given): derived from this value. Frozen
            # dataclass: set once, here.
            object.__setattr__(self, "max_request_line", derived[0])
            object.__setattr__(self, "max_header_line", derived[1])
            object.__setattr__(self, "max_headers_size", derived[2])

    @classmethod
    def field_names(cls) -> frozenset[str]:
        """The snake_case setting names (for a ConfigMap parser)."""
        return frozenset(f.name for f in dataclasses.fields(cls))


#: Every field of ``ProxySettings`` with the kind of value it takes, from its annotation (one
#: pass over this per construction: a ``ProxySettings`` is built once per proxy or server,
#: never per route).
_KINDS: tuple[tuple[str, str], ...] = tuple(
    (f.name, str(f.type)) for f in dataclasses.fields(ProxySettings))
assert {kind for _, kind in _KINDS} <= {"bool", "int", "float", "str", "tuple[str, ...]"}
#: The exact types a kind takes without a closer look (the common case: one ``is`` test).
_EXACT = {"bool": bool, "int": int, "float": float, "str": str, "tuple[str, ...]": tuple}
_FLOAT_OK = (float, int)
_CONFIGMAP_READER = ("ConfigMap spellings go through the ConfigMap reader, "
                     "ingresslib.proxy.parse_config_data")


def _check_types(s: ProxySettings) -> None:
    """Refuse a value of the wrong type, naming the field, the value and what it takes. An
    ``int`` where a float is taken is fine (``proxy_read_timeout=60``); a ``bool`` where a
    number is taken is not (``proxy_body_size=True`` would be a 1-byte limit). A list where a
    tuple is taken is kept as a tuple (equal to, and hashable as, the tuple spelling)."""
    for name, kind in _KINDS:
        value = getattr(s, name)
        t = type(value)
        if t is _EXACT[kind]:
            if t is tuple:
                _check_items(name, value)
            continue
        if kind == "bool":
            if t is not bool:
                raise TypeError(f"{name}: {_shown(value)} is not a bool; {_pass_bool(value)}")
        elif kind == "int":
            if t is bool or not isinstance(value, int):
                raise TypeError(f"{name}: {value!r} is {_not('an int', t)}; it takes "
                                f"{_unit(name)}{_spelled(name, value)}")
        elif kind == "float":
            if t is not int and (t is bool or not isinstance(value, _FLOAT_OK)):
                raise TypeError(f"{name}: {value!r} is {_not('a number', t)}; it takes "
                                f"seconds (an int or a float){_spelled(name, value)}")
        elif kind == "str":
            if not isinstance(value, str):
                raise TypeError(f"{name}: {_shown(value)} is not a str")
        else:  # a tuple of str
            if isinstance(value, (str, bytes)):
                # (set() of a string is its letters: "error timeout" would be refused as the
                # unknown conditions ' ', 'e', 'i'...; a string of CIDRs failed in Proxy().)
                what = ('conditions such as ("error", "timeout")'
                        if name == "proxy_next_upstream" else
                        "paths" if name in ("no_auth_locations", "no_tls_redirect_locations")
                        else "nginx map keys" if name in ("block_user_agents", "block_referers",
                                                          "skip_access_log_urls") else
                        "header names" if name.endswith("_headers") else "CIDRs")
                # ValueError, as these fields said before for a string (tests pin it).
                raise ValueError(f"{name}: a tuple of {what}, not the string {value!r}; "
                                 + _CONFIGMAP_READER)
            if t is not list:
                raise TypeError(f"{name}: {value!r} is not a tuple of str")
            value = tuple(value)
            _check_items(name, value)
            object.__setattr__(s, name, value)


def _check_items(name: str, value: tuple[object, ...]) -> None:
    for item in value:
        if not isinstance(item, str):
            raise TypeError(f"{name}: item {item!r} of {value!r} is not a str")


def _pass_bool(value: object) -> str:
    """The way out for a bool field given something else: ``"false"`` -> pass False."""
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return (f"pass {value.strip().capitalize()} (the Python bool); "
                + _CONFIGMAP_READER)
    return "pass True or False"


def _not(what: str, t: type) -> str:
    # A bool is an int to Python, not to a reader of "True is not an int".
    return f"a bool, not {what}" if t is bool else f"not {what}"


def _unit(name: str) -> str:
    if name in ("max_request_line", "max_header_line", "max_headers_size", "proxy_body_size",
                "max_response_header_size", "proxy_buffer_size", "proxy_max_temp_file_size",
                "response_buffering_limit", "response_buffering_budget"):
        return "a size in bytes (0 or more)"
    if name == "hsts_max_age":
        return "seconds (an int)"
    return "an int"


def _spelled(name: str, value: object) -> str:
    """For a string: what it means, when it is nginx size syntax (``"8m"``: pass 8388608),
    and where ConfigMap spellings go."""
    if not isinstance(value, str):
        return ""
    hint = ""
    if _unit(name).startswith("a size"):
        try:
            hint = f" (pass {parse_size(value)} for {value!r})"
        except ValueError:
            pass
    return f"{hint}; {_CONFIGMAP_READER}"
