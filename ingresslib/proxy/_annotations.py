"""Per-route proxy options read from ingress-nginx annotations on the matched Ingress.

An invalid value is reported (a warning on the injected logger, once per route and table) and
the setting's default applies, as ingress-nginx does ("annotations with invalid values are
ignored"), never silently.

``rewrite-target`` and regex captures: matching uses Prefix semantics on the canonical path
(SEMANTICS §4, ImplementationSpecific included), so a rule path such as ``/api(/|$)(.*)`` is not
a regex for the matcher. For the rewrite only, ingress-nginx's generated
``rewrite "(?i)<rule path>" <target> break;`` is reproduced: the rule path is compiled as a
case-insensitive regex anchored at the start of the canonical path; when it matches, the whole
path becomes ``rewrite-target`` with ``$1``..``$9`` replaced by the groups (missing groups are
empty); when it does not, the path is forwarded unchanged. Without ``use-regex`` the rule path
is escaped first (no groups), in its canonical form (``/café`` as ``/caf%C3%A9``, the form the
table matched), which gives ingress-nginx's well-known "everything becomes the target"
behaviour of ``rewrite-target: /`` on a plain path. (ingress-nginx implies use-regex when
rewrite-target is set; with Prefix routing a request reaches the rule only when its path
starts with the rule path literally, which the escaped pattern always matches and the raw one
may not, so the literal reading is kept.) The regex runs where nginx's runs, on the decoded
``$uri`` (``RouteOptions._captures``): the canonical path with each ``%XX`` one byte, the
pattern's UTF-8 bytes, one byte per ``.``, ASCII-only ``\\w`` and case folding (PCRE without
UTF mode); each group maps back to whole escapes of the canonical path, the spelling sent
upstream. A rule path holding regex syntax under
``use-regex`` or a rewrite-target is reported (``_regex_path_warning``): ingress-nginx routes
by that regex, ingresslib by the literal path; so are, for ``check``, the Exact and Prefix paths
(and regex paths) of every Ingress on a host that ingress-nginx makes regex that way
(``regex_host_warnings``). A rewrite-target equal to the rule path rewrites
nothing (template.go ``buildProxyPass``: "if the path in the ingress rule is equals to the
target: no special rewrite"), but for a Prefix ``PATH`` without use-regex, whose location
ingress-nginx makes ``PATH/`` (``_rewrite_location``): ``PATH/...`` goes up as ``PATH``.
The query follows nginx's ``rewrite`` rules
(:meth:`RouteOptions.rewrite_uri`); a capture put into the target's arguments (after its
``?``) has its ``&``, ``+`` and ``;`` percent-encoded when the request's path holds a ``%`` or
a ``+`` (``_escapes_captures``), as nginx's ``NGX_ESCAPE_ARGS`` does
(``RouteOptions._rewritten``). In the target, ``$`` must start a capture ``$1``..``$9``
(nginx reads ``$0`` or ``$name`` as a variable), and a ``%XX`` of its path is sent as
``%25XX``, as nginx re-escapes the rewritten ``$uri`` (``_escaped_path_percent``);
``rewrite-target``, ``app-root`` and
``x-forwarded-prefix`` refuse the ASCII characters ingress-nginx's annotation validators refuse
(``;``, ``{``, ``\\``, quotes, controls...; see ``_URI_CHARS``), with a warning.

A ``rewrite-target`` that starts with ``http://`` or ``https://`` is no rewrite: nginx's
``rewrite`` answers 302 to it (``RouteOptions.rewrite_redirect``, answered by
proxy/_actions.py ``redirect_for``), its Location unescaped as nginx's
``NGX_UNESCAPE_REDIRECT`` does up to its first ``?`` (a capture's ``%3F`` becomes that
``?``, its ``%26`` an ``&``; ``%25``, ``%20`` stay). ``temporal-redirect`` /
``permanent-redirect`` and their codes are read as redirect/redirect.go reads them
(``_redirect_url``, ``_redirect_code``); ``from-to-www-redirect`` is only checked here (its
warning) and acted on per table (``RouteOptionsSource._www_twins``).

On a canary Ingress none of these (``LOCATION_OPTIONS``) is read: canary traffic takes the main
rule's options, as in ingress-nginx; each one set is reported as ignored, unless it has the main
rule's value (``main_annotations``: a canary copied from its main Ingress loses nothing).
"""

from __future__ import annotations

import logging
import re
from bisect import bisect_left
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from string import hexdigits

from typing import Any, TypeVar
from urllib.parse import quote

import regex as _regex

from .._errors import BadRequestError
from .._goparse import parse_bool, parse_int
from .._normalize import canonical_rule_path
from .._spelling import close_name
from .._table import _is_canary_value
from ._access import (SOURCE_RANGE_ANNOTATIONS, Access, canary_ignored, combine_access,
                      route_access, unenforced_access)
from ._bandwidth import BANDWIDTH_ANNOTATIONS, KB, parse_bandwidth
from ._cors import CORS_ANNOTATIONS, Cors, parse_cors
from ._ratelimit import RATE_LIMIT_ANNOTATIONS, RateLimit, parse_rate_limit
from ._globalratelimit import (GLOBAL_RATE_LIMIT_ANNOTATIONS, GlobalRateLimit,
                               parse_global_rate_limit)
from ._settings import NEXT_UPSTREAM_CONDITIONS, ProxySettings, parse_size
from ._error_pages import CUSTOM_HTTP_ERRORS, global_custom_http_errors, parse_custom_http_errors
from ._header_sets import CUSTOM_HEADERS, CustomHeaders, parse_custom_headers
from ._extauth import EXTAUTH_ANNOTATIONS, EXTAUTH_IGNORED, ExtAuth, parse_ext_auth
from ._globalauth import fold as fold_global_auth
from ._globalauth import in_locations
from ._mirror import MIRROR_ANNOTATIONS, MirrorTarget, parse_mirror
from ._proxy_ssl import PROXY_SSL_ANNOTATIONS, ProxySSL, parse_proxy_ssl
from ._location_extras import (LOCATION_EXTRAS, parse_access_log, parse_connection_header,
                               parse_http_version, parse_port_in_redirects, parse_rewrite_log)
from ._request_buffer import REQUEST_BUFFERING, given_mode, parse_request_buffering
from ._response_buffer import (BUFFER_ANNOTATIONS, parse_buffer_size, parse_buffering,
                               parse_buffers_number, parse_max_temp_file_size, response_buffer)
from ._response_head import (ResponseRewrite, parse_cookie_pair, parse_redirect,
                             parse_redirect_word, parse_upstream_vhost)

_T = TypeVar("_T")

__all__ = ["RouteOptions", "parse_route_options", "parse_size", "PREFIX"]

PREFIX = "nginx.ingress.kubernetes.io/"

#: Every ``nginx.ingress.kubernetes.io/`` annotation ingresslib implements (without the
#: prefix): read here (the proxy's per-route options), in proxy/_access.py (source ranges),
#: in _canary.py (``canary*``), _balance.py (``affinity``, ``session-cookie-*``,
#: ``upstream-hash-by*``, ``load-balance``), _router.py (``affinity-canary-behavior``) and
#: _endpoints.py (``service-upstream``). Any other one gets a warning naming the Ingress
#: (``parse_route_options``): ingress-nginx would act on it, ingresslib does not.
#: Those read here: options of the location (the matched main rule), none of the upstream.
LOCATION_OPTIONS = frozenset({
    "ssl-redirect", "force-ssl-redirect", "preserve-trailing-slash", "app-root",
    "rewrite-target", "use-regex", "x-forwarded-prefix", "temporal-redirect",
    "temporal-redirect-code", "permanent-redirect", "permanent-redirect-code",
    "from-to-www-redirect", "proxy-connect-timeout", "proxy-read-timeout",
    "proxy-send-timeout", "proxy-next-upstream", "proxy-next-upstream-tries",
    "proxy-next-upstream-timeout", "proxy-body-size", "backend-protocol",
    # proxy/_cors.py
    *CORS_ANNOTATIONS,
    # proxy/_ratelimit.py
    *RATE_LIMIT_ANNOTATIONS,
    # proxy/_globalratelimit.py
    *GLOBAL_RATE_LIMIT_ANNOTATIONS,
    # proxy/_bandwidth.py (limit-rate, limit-rate-after)
    *BANDWIDTH_ANNOTATIONS,
    # proxy/_response_head.py
    "upstream-vhost", "proxy-redirect-from", "proxy-redirect-to", "proxy-cookie-domain",
    "proxy-cookie-path",
    # proxy/_error_pages.py (the error page backend: _router.py Router.error_page)
    "custom-http-errors", "disable-proxy-intercept-errors",
    # proxy/_header_sets.py (a ConfigMap's headers on every answer of the location)
    CUSTOM_HEADERS,
    # proxy/_mirror.py (mirror-target, mirror-request-body, mirror-host)
    *MIRROR_ANNOTATIONS,
    # proxy/_extauth.py (auth-url: nginx's auth_request, the proxy core and IngressASGI)
    *EXTAUTH_ANNOTATIONS,
    # proxy/_globalauth.py (the ConfigMap's global-auth-url on this location or not)
    "enable-global-auth",
    # proxy/_proxy_ssl.py (TLS to the endpoints: verification, client certificate, SNI)
    *PROXY_SSL_ANNOTATIONS,
    # proxy/_location_extras.py (enable-access-log, enable-rewrite-log,
    # connection-proxy-header, proxy-http-version, use-port-in-redirects)
    *LOCATION_EXTRAS,
    # proxy/_request_buffer.py (the body read whole before the upstream is opened)
    REQUEST_BUFFERING,
    # proxy/_response_buffer.py (proxy-buffer-size: the response head's limit;
    # proxy-buffering, proxy-buffers-number, proxy-max-temp-file-size: read-ahead)
    *BUFFER_ANNOTATIONS,
})
IMPLEMENTED = LOCATION_OPTIONS | frozenset({
    # _canary.py
    "canary", "canary-by-header", "canary-by-header-value", "canary-by-header-pattern",
    "canary-by-cookie", "canary-weight", "canary-weight-total",
    # _table.py (RouteTable.build: another host key to the server's rules; _tls.py)
    "server-alias",
    # _balance.py, _router.py, _endpoints.py
    "affinity", "affinity-mode", "affinity-canary-behavior", "session-cookie-name",
    "session-cookie-path", "session-cookie-domain", "session-cookie-samesite",
    "session-cookie-max-age", "session-cookie-expires", "session-cookie-secure",
    "session-cookie-change-on-failure", "session-cookie-conditional-samesite-none",
    "session-cookie-partitioned", "upstream-hash-by", "upstream-hash-by-subset",
    "upstream-hash-by-subset-size", "load-balance", "service-upstream",
    # proxy/_clientcert.py (per host, by the proxy core and the TLS listener: _tls.py)
    "auth-tls-secret", "auth-tls-verify-client", "auth-tls-verify-depth",
    "auth-tls-error-page", "auth-tls-pass-certificate-to-upstream", "auth-tls-match-cn",
    # _balance_hash.py (the ring keyed by the endpoints' EndpointSlice hostname)
    "upstream-hash-by-use-hostname",
    # _router.py / _endpoints.py (custom_default_backend), proxy/_error_pages.py
    "default-backend",
    # proxy/_passthrough.py (the TLS listener's, with ProxyServer(ssl_passthrough=True))
    "ssl-passthrough",
    # proxy/_satisfy.py (how the access checks combine: any or all)
    "satisfy",
    # _tls_settings.py server_ciphers (the host's context at the TLS listener: _tls.py)
    "ssl-ciphers", "ssl-prefer-server-ciphers",
}) | SOURCE_RANGE_ANNOTATIONS

#: Every annotation ingress-nginx reads (without the prefix), implemented here or not: the
#: table of ingress-nginx's docs/user-guide/nginx-configuration/annotations.md, with the rate
#: limiting, custom headers and newer names its sections describe. Only used to tell a
#: misspelt name (``rewrite-targt``: "did you mean ...rewrite-target?") from a real one
#: ingresslib does not implement (``proxy-buffer-size`` must not be offered
#: ``proxy-body-size``).
INGRESS_NGINX_ANNOTATIONS = IMPLEMENTED | frozenset({
    "app-root", "auth-realm", "auth-secret", "auth-secret-type", "auth-type", "auth-tls-secret",
    "auth-tls-verify-depth", "auth-tls-verify-client", "auth-tls-error-page",
    "auth-tls-pass-certificate-to-upstream", "auth-tls-match-cn", "auth-url", "auth-method",
    "auth-signin", "auth-signin-redirect-param", "auth-response-headers",
    "auth-request-redirect", "auth-always-set-cookie", "auth-cache-key",
    "auth-cache-duration", "auth-keepalive", "auth-keepalive-share-vars",
    "auth-keepalive-requests", "auth-keepalive-timeout", "auth-proxy-set-headers",
    "auth-snippet", "enable-global-auth", "client-body-buffer-size", "configuration-snippet",
    "custom-http-errors", "disable-proxy-intercept-errors", "custom-headers",
    "default-backend", "enable-cors", "cors-allow-origin", "cors-allow-methods",
    "cors-allow-headers", "cors-expose-headers", "cors-allow-credentials", "cors-max-age",
    "http2-push-preload", "limit-connections", "limit-rps", "limit-rpm",
    "limit-burst-multiplier", "limit-rate", "limit-rate-after", "limit-whitelist",
    "limit-allowlist", "global-rate-limit", "global-rate-limit-window",
    "global-rate-limit-key", "global-rate-limit-ignored-cidrs", "proxy-cookie-domain",
    "proxy-cookie-path", "proxy-request-buffering", "proxy-redirect-from",
    "proxy-redirect-to", "proxy-http-version", "proxy-ssl-secret", "proxy-ssl-ciphers",
    "proxy-ssl-name", "proxy-ssl-protocols", "proxy-ssl-verify", "proxy-ssl-verify-depth",
    "proxy-ssl-server-name", "enable-rewrite-log", "satisfy", "server-alias",
    "server-snippet", "ssl-passthrough", "stream-snippet", "upstream-vhost",
    "proxy-buffering", "proxy-buffers-number", "proxy-buffer-size",
    "proxy-max-temp-file-size", "ssl-ciphers", "ssl-prefer-server-ciphers",
    # annotations/proxy/main.go's proxyBusyBuffersSizeAnnotation (not in annotations.md's
    # table): without it here the name was taken for a misspelling of proxy-buffer-size.
    "proxy-busy-buffers-size",
    "connection-proxy-header", "enable-access-log", "enable-opentracing",
    "opentracing-trust-incoming-span", "enable-opentelemetry",
    "opentelemetry-trust-incoming-span", "opentelemetry-operation-name", "enable-influxdb",
    "influxdb-measurement", "influxdb-port", "influxdb-host", "influxdb-server-name",
    "enable-modsecurity", "enable-owasp-core-rules", "modsecurity-transaction-id",
    "modsecurity-snippet", "mirror-request-body", "mirror-target", "mirror-host",
    "use-port-in-redirects", "fastcgi-index", "fastcgi-params-configmap",
    # upstreamhashby/main.go (networking/v1 releases): "parser.GetBoolAnnotation(
    # "upstream-hash-by-use-hostname", ing)"; balancer/chash.lua keys the ring by
    # ``endpoint.hostname`` instead of "address:port". Not in annotations.md's table; without it
    # here the name was taken for a misspelling of upstream-hash-by-subset.
    "upstream-hash-by-use-hostname",
    # names of older releases, still met in manifests (``session-cookie-hash`` must not be
    # offered ``session-cookie-path``)
    "session-cookie-hash", "secure-backends", "secure-verify-ca-secret", "grpc-backend",
    "add-base-url", "base-url-scheme", "upstream-max-fails", "upstream-fail-timeout",
    "mirror-uri", "lua-resty-waf",
})
_SORTED_ANNOTATIONS = sorted(INGRESS_NGINX_ANNOTATIONS)


def did_you_mean(name: str) -> str | None:
    """The ingress-nginx annotation (full key) ``name`` (without the prefix) is likely a
    misspelling of, or None when ``name`` is one or nothing is close (``close_name``: any
    case of a name, ``Rewrite-Target``, offers it; never a guess of opposite meaning)."""
    if name in INGRESS_NGINX_ANNOTATIONS:
        return None
    close = close_name(name, INGRESS_NGINX_ANNOTATIONS, _SORTED_ANNOTATIONS)
    return PREFIX + close if close is not None else None


_TARGET_GROUP_RE = re.compile(r"\$([1-9])")  # nginx: "$1".."$9" (see _NOT_A_CAPTURE)
#: The characters of a canonical path that nginx's NGX_ESCAPE_ARGS escapes in a capture put
#: into the arguments (``RouteOptions._rewritten``): ngx_string.c ``ngx_escape_uri``'s
#: ``args`` table ('" ", "#", "%", "&", "+", ";", "?"', controls, bytes over 0x7E), less
#: those a canonical path never holds as they are.
_ARG_ESCAPES = str.maketrans({"&": "%26", "+": "%2B", ";": "%3B"})
#: The whole ``args`` table, for a capture decoded as nginx's ``$uri`` holds it
#: (``_redirect_capture``).
_ESCAPE_ARGS_RE = re.compile(r"[\x00-\x20#%&+;?\x7f-\xff]")
#: The bytes of a capture copied unescaped into a redirect that stay ``%XX`` here
#: (``_redirect_capture``): what a Location header cannot hold, and "%".
_UNSENDABLE_RE = re.compile(r"[\x00-\x20%\x7f-\xff]")
#: The two hex digits of an escape (either case) -> the byte, as a latin-1 character: one
#: byte of nginx's decoded ``$uri`` (``_decoded_path``).
_ESCAPED_BYTE = {hi + lo: chr(int(hi + lo, 16)) for hi in hexdigits for lo in hexdigits}
#: What NGX_UNESCAPE_REDIRECT acts on: an escape, or the "?" where it stops
#: (``_unescape_redirect``).
_REDIRECT_UNESCAPE_RE = re.compile(r"%([0-9A-Fa-f]{2})|\?")
#: The longest a rule path's regex may run on one request path (``rewrite-target`` with
#: ``use-regex``). The regex is the Ingress author's and the path the client's; a backtracking
#: engine without a bound lets one request hold the event loop for as long as the pattern
#: allows (``/x(a|.)*(a|.)*(a|.)*y$`` against ``/x`` + 16 ``a``: 59 s with ``re``). nginx's
#: PCRE stops at its match limit and fails the request ("ngx_regex_exec() failed", 500); the
#: ``regex`` module's ``timeout`` does the same here (``RouteOptions.rewrite_uri`` raises
#: ``TimeoutError``, the proxy answers 500).
REWRITE_TIMEOUT = 0.05


@dataclass(frozen=True, slots=True)
class RouteOptions:
    """The effective options of one route: annotations merged over the settings."""

    #: None: redirect when the host has TLS and ``ssl_redirect`` is on (the default rule).
    ssl_redirect: bool
    force_ssl_redirect: bool
    app_root: str | None
    rewrite_target: str | None
    #: Compiled rule-path regex for rewrite-target (None when no rewrite).
    rewrite_regex: _regex.Pattern[str] | None
    x_forwarded_prefix: str | None
    connect_timeout: float
    read_timeout: float
    send_timeout: float
    next_upstream: frozenset[str]
    next_upstream_tries: int
    body_size: int
    #: ``proxy-next-upstream-timeout``: seconds allowed for all tries from the first one's
    #: start; 0 = no limit (nginx ``proxy_next_upstream_timeout``).
    next_upstream_timeout: float = 0.0
    #: ``backend-protocol: HTTPS``: talk TLS to the endpoints (``backend_protocol == "HTTPS"``).
    #: Derived (``__post_init__``), so that every copy (``dataclasses.replace(opts,
    #: backend_protocol=...)``) agrees with its ``backend_protocol``.
    backend_tls: bool = field(init=False, default=False)
    #: ``backend-protocol``: ``HTTP``, ``HTTPS`` or ``AUTO_HTTP`` (TLS to the endpoints when the
    #: client's connection is TLS: template.go ``case "AUTO_HTTP": proto = "$scheme://"``).
    backend_protocol: str = "HTTP"
    #: ``preserve-trailing-slash`` (default: the settings' ``preserve_trailing_slash``, off):
    #: off, the ssl-redirect's Location drops one final ``/`` of the request target
    #: (lua_ingress.lua, see ``https_redirect``).
    preserve_trailing_slash: bool = False
    #: ``temporal-redirect`` / ``permanent-redirect``: every request of the route is answered
    #: ``redirect_code`` with this ``Location`` (nginx.tmpl's ``return <code> <url>;``).
    redirect_url: str | None = None
    redirect_code: int = 301
    #: Who may reach the route (proxy/_access.py): None when nothing restricts it (the usual
    #: case: the request path tests only this); else ``access.status(client_ip)`` is the
    #: answer (403 refused by a source range, 503 a denied location) or 0.
    access: Access | None = None
    #: Warnings found while parsing (also logged once).
    warnings: tuple[str, ...] = ()
    #: ``enable-cors`` and the ``cors-*`` annotations (proxy/_cors.py); None: CORS is off.
    cors: Cors | None = None
    #: ``limit-rps``/``limit-rpm``/``limit-connections`` of the Ingress (proxy/_ratelimit.py);
    #: None: not limited.
    rate_limit: RateLimit | None = None
    #: ``global-rate-limit*`` of the Ingress (proxy/_globalratelimit.py); None: not limited.
    global_rate_limit: GlobalRateLimit | None = None
    #: True when ``redirect_for`` can answer whatever the scheme and TLS: app-root, a
    #: redirect URL, or a rewrite-target that is a URL. Derived (``__post_init__``), so that a
    #: caller's hot path tests one attribute before asking ``redirect_for``.
    redirects: bool = field(init=False, default=False)
    #: ``upstream-vhost``: the Host sent upstream instead of the client's (None: the client's).
    upstream_vhost: bytes | None = None
    #: ``proxy-redirect-*`` / ``proxy-cookie-*``: the upstream response's Location, Refresh
    #: and Set-Cookie rewriting (proxy/_response_head.py); None: nothing to rewrite.
    response_rewrite: ResponseRewrite | None = None
    #: ``custom-http-errors``: the upstream statuses answered by the ``default-backend``
    #: annotation's Service instead (proxy/_error_pages.py); empty: none.
    custom_http_errors: frozenset[int] = frozenset()
    #: False with ``disable-proxy-intercept-errors: "true"``: ``custom_http_errors`` then
    #: applies to ingresslib's own 502/504 only, never to an upstream's response.
    intercept_errors: bool = True
    #: ``custom-headers``: the ConfigMap whose ``data`` is set on every answer of the route
    #: (proxy/_header_sets.py, looked up in the router's current ConfigMaps); None: none.
    custom_headers: CustomHeaders | None = None
    #: ``auth-url`` and its annotations (proxy/_extauth.py): the proxy core asks the auth
    #: service before the backend; None: no external authentication.
    ext_auth: ExtAuth | None = None
    #: ``mirror-target`` (with ``mirror-host``, ``mirror-request-body``): where a copy of each
    #: request goes (proxy/_mirror.py); None: not mirrored.
    mirror: MirrorTarget | None = None
    #: ``limit-rate`` / ``limit-rate-after`` (proxy/_bandwidth.py), in bytes: the response's
    #: bandwidth per request (0: no limit) and the bytes sent before it applies.
    limit_rate: int = 0
    limit_rate_after: int = 0
    #: The Ingress sets ``auth-tls-secret`` (read for the proxy core: ``client_certs``): its
    #: host's client certificate authentication must have been applied to the request
    #: (proxy/_clientcert.py), else the route answers 503 (a core without ``client_auth``).
    auth_tls: bool = False
    #: ``proxy-ssl-*`` (proxy/_proxy_ssl.py): how the proxy core speaks TLS to the endpoints
    #: (``ProxySSL.config``); None: no ``proxy-ssl-secret``, nginx's defaults (no verification).
    proxy_ssl: ProxySSL | None = None
    #: ``enable-access-log: "false"``: no access-log line (``RequestRecord.access_log``);
    #: metrics still count the request (proxy/_location_extras.py).
    access_log: bool = True
    #: ``connection-proxy-header``: the Connection value sent upstream (``b"close"`` or
    #: ``b"keep-alive"``; None: ``$connection_upgrade``, as before).
    connection_header: bytes | None = None
    #: ``proxy-http-version``: ``"1.0"`` or ``"1.1"`` (the upstream request line).
    http_version: str = "1.1"
    #: ``proxy-request-buffering: "on"``: the body is read whole before the upstream is
    #: opened, then sent with a Content-Length (proxy/_request_buffer.py).
    request_buffering: bool = False
    #: ``proxy-request-buffering: "off"`` given (the annotation, else the ConfigMap key:
    #: ``ProxySettings.replay_streamed_body`` False): nginx's off, no retry once a body still
    #: arriving went upstream (proxy/_request_buffer.py ``unbuffered``), unless the location
    #: mirrors the body (``no_buffering``). False when unset (ingresslib's default "off"
    #: replays such a body up to 1 MiB) or "on".
    request_buffering_off: bool = False
    #: ``use-port-in-redirects``: the ssl-redirect's Location names the https port, 443 too.
    port_in_redirects: bool = False
    #: ``enable-rewrite-log: "true"``: each rewrite-target result is logged (INFO).
    rewrite_log: bool = False
    #: ``proxy-buffer-size``: the most bytes of the upstream's response head (1xx heads
    #: included); past it, 502 "upstream sent too big header" (proxy/_response_buffer.py).
    proxy_buffer_size: int = 4096
    #: ``proxy-buffers-number`` and ``proxy-max-temp-file-size`` (bytes): what
    #: ``X-Accel-Buffering: yes`` turns buffering on with.
    proxy_buffers_number: int = 4
    proxy_max_temp_file_size: int = 1073741824
    #: ``proxy-buffering: "on"``: the bytes of a response the driver may read ahead of the
    #: client (``ClientConnection.response_buffer``); 0: off, the upstream is read as fast as
    #: the client takes the response.
    response_buffer: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "backend_tls", self.backend_protocol == "HTTPS")
        object.__setattr__(self, "redirects", self.app_root is not None
                           or self.redirect_url is not None or self.rewrite_is_redirect)

    @property
    def rewrite_is_redirect(self) -> bool:
        """rewrite-target is a URL: nginx's ``rewrite`` answers a redirect instead of
        rewriting (ngx_http_rewrite_module: "If a replacement string starts with "http://",
        "https://", or "$scheme", the processing stops and the redirect is returned to a
        client"; ngx_http_rewrite compares the bytes, case-sensitively)."""
        t = self.rewrite_target
        return t is not None and _is_url(t)

    def rewrite_redirect(self, path: str, query: str | None,
                         request_uri: str | None = None) -> str | None:
        """The Location of a rewrite-target URL for a canonical ``path``, as nginx's
        ``rewrite`` writes it for a redirect (captures as ``_redirect_capture`` copies them,
        then ``_unescape_redirect``, then the request's arguments), or None: no such target,
        or the rule regex does not match (nginx's ``rewrite`` then does nothing).
        ngx_http_rewrite: "regex->status = NGX_HTTP_MOVED_TEMPORARILY; regex->redirect = 1":
        the answer is 302. ``request_uri``: the request target as received, which decides
        whether the captures are escaped (``_escapes_captures``); None: ``path`` stands in."""
        if not self.rewrite_is_redirect:
            return None
        matched = self._captures(path)
        if matched is None:
            return None
        target, groups = matched
        escape = _escapes_captures(path if request_uri is None else request_uri)

        def group(g: re.Match[str]) -> str:
            return _redirect_capture(_capture_text(groups, g), escape)

        # ngx_http_rewrite cuts a final "?" before compiling ("the last "?" drops the
        # original arguments"); ngx_http_script_regex_end_code then runs NGX_UNESCAPE_REDIRECT
        # over the whole Location (``_unescape_redirect``) and appends the arguments after
        # "&" if the target holds a "?" of its own (``code->args``: ngx_http_script_compile
        # sets sc->args on a literal "?"), else after "?": a "?" decoded from a capture's
        # %3F does not count ("*e->pos++ = (u_char) (code->args ? '&' : '?');").
        location = _unescape_redirect(_TARGET_GROUP_RE.sub(group, target.removesuffix("?")))
        if not query or target.endswith("?"):
            return location
        return location + ("&" if "?" in target else "?") + query

    def rewrite_applies(self, path: str) -> bool:
        """Whether the rewrite-target rewrites a canonical ``path``: the rule regex matches it
        (nginx's ``rewrite`` does nothing otherwise, the path going up unchanged). False
        without a rewrite-target. ``TimeoutError`` past ``REWRITE_TIMEOUT``, as the rewrite."""
        return self._captures(path) is not None

    def rewrite(self, path: str) -> str:
        """Apply rewrite-target to a canonical path (see the module docstring)."""
        new = self._rewritten(path, path)
        return path if new is None else new

    def rewrite_uri(self, path: str, query: str | None, request_uri: str | None = None) -> str:
        """The upstream request target for a canonical ``path`` and the request's ``query``
        (None: no ``?``), with nginx's ``rewrite`` rules for the arguments: "If a replacement
        string includes the new request arguments, the previous request arguments are appended
        after them. If this is undesired, putting a question mark at the end of a replacement
        string avoids having them appended". Without a rewrite (no rewrite-target, or the rule
        regex does not match) the path and query are unchanged.

        A rewritten target carries ``?`` only with arguments: a rewrite clears
        ``r->valid_unparsed_uri`` (ngx_http_script.c ``ngx_http_script_regex_start_code``:
        "if (code->uri) { r->internal = 1; r->valid_unparsed_uri = 0;"), so
        ngx_http_proxy_module.c ``ngx_http_proxy_create_request`` builds the request line from
        the URI and "if (r->args.len > 0) { *b->last++ = '?'; ...": ``/old?`` rewritten to
        ``/new`` goes up as ``/new``, not ``/new?``. ``request_uri``: the request target as
        received (``_escapes_captures``); None: ``path`` stands in for it."""
        return self.rewrite_upstream(path, query, request_uri)[0]

    def rewrite_upstream(self, path: str, query: str | None, request_uri: str | None = None
                         ) -> tuple[str, bool]:
        """:meth:`rewrite_uri` and :meth:`rewrite_applies` from one match of the rule regex:
        the proxy asks both of each request with an ``x-forwarded-prefix``."""
        new = self._rewritten(path, path if request_uri is None else request_uri)
        if new is None:
            return (path if query is None else f"{path}?{query}"), False
        assert self.rewrite_target is not None  # (a rewrite took place)
        return _with_args(new, query, not self.rewrite_target.endswith("?")), True

    def _captures(self, path: str) -> tuple[str, tuple[str | None, ...]] | None:
        """The rewrite-target and the rule regex's groups on a canonical ``path``, each group
        a substring of ``path`` made of whole escapes; None when nothing is rewritten.

        nginx's ``rewrite`` matches the decoded URI (ngx_http_script.c
        ``ngx_http_script_regex_start_code``: "if (code->uri) { e->line = r->uri; ... rc =
        ngx_http_regex_exec(r, code->regex, &e->line)"), where each ``%XX`` is one byte and
        PCRE runs without UTF mode: ``/files/(.)(.*)`` on ``/files/%20bc`` takes the space
        for ``$1``. The regex runs on ``_decoded_path(path)`` (the pattern's bytes likewise:
        ``_compile_rule_path``), each group's bounds mapped back to ``path``.

        A group keeps its canonical spelling (``%20``, ``%C3``), which a path rewrite sends
        upstream as it is: nginx re-escapes the rewritten ``$uri`` with NGX_ESCAPE_URI
        (ngx_http_proxy_module.c ``ngx_http_proxy_create_request``: "if (r->quoted_uri ||
        r->internal) { escape = 2 * ngx_escape_uri(NULL, r->uri.data + loc_len, ...,
        NGX_ESCAPE_URI)", a rewrite setting ``r->internal``), upper-case hex as SEMANTICS §5
        writes it, for the bytes both escape: controls, space, ``"#%<>?\\^`{|}``, DEL and
        over 0x7F. Where they differ nginx sends the byte itself and ingresslib keeps the
        client's ``%XX`` (the path the router matched is the path the backend receives): the
        escapes of ``[``, ``]``, ``:``, ``@`` and the sub-delims ``!$&'()*+,;=`` (``%2B``
        goes up as ``+`` from nginx); ``%2F`` and ``%5C`` never get here (400)."""
        if self.rewrite_target is None or self.rewrite_regex is None:
            return None
        decoded, escapes = _decoded_path(path)
        m = self.rewrite_regex.match(decoded, timeout=REWRITE_TIMEOUT)  # TimeoutError past it
        if m is None:
            return None
        if escapes is None:  # no escape: the decoded path is the path
            return self.rewrite_target, m.groups()
        return self.rewrite_target, tuple(
            None if a < 0 else path[_path_index(escapes, a):_path_index(escapes, b)]
            for a, b in m.regs[1:])

    def _rewritten(self, path: str, request_uri: str) -> str | None:
        """The rewrite-target result for a path rewrite, with ``$n`` replaced; None when
        nothing is rewritten (a URL target: ``rewrite_redirect``). ``request_uri``: the
        request target as received, or ``path`` standing in for it (``_escapes_captures``)."""
        matched = self._captures(path)
        if matched is None:
            return None
        target, groups = matched
        # A capture after the target's first "?" is an argument: nginx escapes it with
        # NGX_ESCAPE_ARGS when the request URI had a "%" or a "+" (ngx_http_script.c
        # ngx_http_script_copy_capture_code: "if ((e->is_args || e->quote) &&
        # (e->request->quoted_uri || e->request->plus_in_uri))"), so that the path's "&",
        # "+" and ";" stay inside that argument; the canonical path's other characters
        # NGX_ESCAPE_ARGS escapes are %XX already. (Not escaped, the raw path had no "%":
        # nginx copies bytes the canonical path spells the same.)
        args_at = target.find("?")
        if args_at >= 0 and not _escapes_captures(request_uri):
            args_at = -1

        def group(g: re.Match[str]) -> str:
            text = _capture_text(groups, g)
            return text.translate(_ARG_ESCAPES) if 0 <= args_at < g.start() else text

        new = _TARGET_GROUP_RE.sub(group, target)
        if not new.startswith("/"):
            new = "/" + new
        return new


def _capture_text(groups: tuple[str | None, ...], g: re.Match[str]) -> str:
    """The group a target's ``$n`` (``g``) names: empty when it took part in no match, or
    when the regex has fewer groups (nginx copies nothing for either)."""
    i = int(g.group(1))
    return (groups[i - 1] or "") if i <= len(groups) else ""


def _decoded_path(path: str) -> tuple[str, list[int] | None]:
    """A canonical ``path`` as nginx's decoded ``$uri`` holds it, each byte one latin-1
    character (``%20`` a space, ``%C3%A9`` two characters), and the index in it of each
    character decoded from an escape, in order (``_path_index`` maps a decoded index back).
    A path without "%" is its own decoded form: None, nothing built (the usual request). A
    "%" without two hex digits after it (no canonical path has one) stays as it is."""
    if "%" not in path:
        return path, None
    parts = path.split("%")  # (twice as fast as a regex's finditer here)
    chars = [parts[0]]
    escapes: list[int] = []
    at = len(parts[0])  # the decoded index of the next character
    for part in parts[1:]:
        byte = _ESCAPED_BYTE.get(part[:2])
        if byte is None:
            chars.append("%" + part)
            at += len(part) + 1
            continue
        escapes.append(at)
        chars.append(byte)
        chars.append(part[2:])
        at += len(part) - 1
    return "".join(chars), escapes


def _path_index(escapes: list[int], i: int) -> int:
    """The index in a canonical path of the character ``i`` of its decoded form (or of its
    end), given ``_decoded_path``'s ``escapes``: each escape before ``i`` is two more."""
    return i + 2 * bisect_left(escapes, i)


def _escapes_captures(request_uri: str) -> bool:
    """Whether nginx escapes the captures it copies into the arguments or a redirect: the
    request target as received (``request_uri``; the canonical path stands in for it where
    a caller has no other) set ``r->quoted_uri`` or ``r->plus_in_uri``, that is, its path
    (before "?" or "#") holds a "%" or a "+".

    ngx_http_parse_request_line sets them in its path states ("case '%': r->quoted_uri = 1;",
    "case '+': r->plus_in_uri = 1;") and leaves those states at "//" or "/." with
    ``r->complex_uri`` set; ngx_http_process_request_uri then runs
    ngx_http_parse_complex_uri over the whole path ("if (r->complex_uri || r->quoted_uri
    ..."), which sets them again at every "+" ("case '+': r->plus_in_uri = 1; /* fall
    through */", each state) and every "%" ("case sw_quoted: r->quoted_uri = 1;"), up to
    "?" ("goto args") or "#" ("goto done"). So ``/api/%61&b`` (canonical ``/api/a&b``),
    ``//api/a+b`` and ``/./api/%61`` escape; a "%" or "+" of the arguments does not."""
    if "%" not in request_uri and "+" not in request_uri:
        return False
    path = request_uri.partition("?")[0].partition("#")[0]
    return "%" in path or "+" in path


def _redirect_capture(text: str, escape: bool) -> str:
    """A capture of the canonical path as nginx's ``rewrite`` copies it into a redirect:
    taken from the decoded ``$uri`` nginx matched (a canonical ``%XX`` is that byte there),
    escaped with NGX_ESCAPE_ARGS when ``escape`` (ngx_http_script.c
    ``ngx_http_script_regex_start_code``: "e->quote = code->redirect"; ``ngx_http_script_
    copy_capture_code``: "if ((e->is_args || e->quote) && (e->request->quoted_uri ||
    e->request->plus_in_uri))"). ``text`` is whole escapes of the canonical path
    (``RouteOptions._captures``). Bytes as latin-1 characters. Without ``escape`` (the raw
    path had no "%" and no "+": ``_escapes_captures``) nginx copies the bytes as they are,
    and so does this; a capture then holds an escape only where the canonical path has one
    the raw target had not (none the proxy core receives): the bytes a Location cannot hold
    (controls, space, over 0x7E) and "%" (which NGX_UNESCAPE_REDIRECT may then read as the
    start of an escape) stay ``%XX``, the rest is decoded."""
    if "%" not in text:
        return text.translate(_ARG_ESCAPES) if escape else text
    decoded = _decoded_path(text)[0]  # each %XX its byte, as one character
    table = _ESCAPE_ARGS_RE if escape else _UNSENDABLE_RE
    return table.sub(lambda m: "%%%02X" % ord(m.group()), decoded)


def _unescape_redirect(location: str) -> str:
    """ngx_string.c ``ngx_unescape_uri(..., NGX_UNESCAPE_REDIRECT)``, which
    ngx_http_script_regex_end_code runs over a rewrite's redirect before the arguments are
    appended: each ``%XX`` whose byte lies after "%" and before DEL decoded ("if (ch > '%' &&
    ch < 0x7f)"), the others kept as written (``%25``, ``%20``, ``%23``, ``%C3``); at the first
    "?", a literal one or a decoded ``%3F``, it stops ("if (ch == '?') { *d++ = ch; goto
    done; }") and the rest is copied as it is. (nginx also drops a "%" without two hex digits
    after it: the target is refused one, ``_rewrite_target``, and a capture has none.)"""
    out: list[str] = []
    pos = 0
    for m in _REDIRECT_UNESCAPE_RE.finditer(location):
        if m.group(1) is None:
            break  # a literal "?"
        byte = int(m.group(1), 16)
        out.append(location[pos:m.start()])
        pos = m.end()
        if byte == 0x3F:
            out.append("?")
            break
        out.append(chr(byte) if 0x25 < byte < 0x7F else m.group())
    out.append(location[pos:])
    return "".join(out)


def _with_args(new: str, query: str | None, add_args: bool) -> str:
    """A rewritten target ``new`` with the request's arguments, by nginx's ``rewrite`` rules
    (``RouteOptions.rewrite_uri``), decided on the target as written, before any capture is
    copied: ``add_args`` False for a target ending in "?" (ngx_http_rewrite: "the last "?"
    drops the original arguments", cut before it compiles), whose part after its first "?"
    is the new arguments (a capture holds no raw "?": the canonical path's is ``%3F``);
    ngx_http_script_regex_end_code appends "&" and the request's arguments to them "if
    (code->add_args && r->args.len)", an empty part too (``/search?$2``, ``$2`` empty, with
    ``q=1``: ``/search?&q=1``), and the request line writes "?" only "if (r->args.len > 0)"
    (``/x??`` goes up as ``/x``)."""
    if not add_args:
        new = new[:-1]
    elif "?" not in new:  # the usual target: no argument part of its own
        return f"{new}?{query}" if query else new
    path, _, args = new.partition("?")
    if add_args and query:
        args = f"{args}&{query}"
    return f"{path}?{args}" if args else path


# Go's strconv.ParseBool and strconv.Atoi, which ingress-nginx's annotation parser uses
# (``parser/main.go``; ``validators.go`` ``ValidateBool``/``ValidateInt``): exactly those
# spellings, nothing trimmed or lower-cased. Anything else ("tRuE", " true", "yes", "30s") makes
# ingress-nginx use the default.
def _bool(value: str) -> bool:
    b = parse_bool(value)
    if b is None:
        raise ValueError(f'invalid boolean {value!r}: must be "true" or "false"')
    return b


def _atoi(value: str) -> int:
    n = parse_int(value)
    if n is None:
        raise ValueError(f"invalid integer {value!r}")
    return n


#: The most seconds nginx takes for a millisecond setting written "<n>s": ngx_parse_time
#: (src/core/ngx_parse.c), unit "s": "max = NGX_MAX_INT32_VALUE; ... if (step != st_msec &&
#: !is_sec) { scale *= 1000; max /= 1000; } if ((ngx_uint_t) value > max) { return NGX_ERROR;
#: }": 2147483 s, about 24.8 days. Past it ``nginx -t`` fails ("invalid value") and
#: ingress-nginx applies nothing of the configuration. The bound of the timeout annotations
#: nginx.tmpl writes that way (``_seconds``); the ConfigMap's keys have the same one
#: (_config.py ``_nginx_seconds``). A bare number is not checked there ("if (valid) { return
#: total + value * scale; }"): proxy-next-upstream-timeout, written bare, has no such bound.
NGINX_MAX_SECONDS = 2147483647 // 1000


def _seconds(value: str) -> float:
    # "All timeout values are unitless and in seconds" (ingress-nginx annotations.md, Custom
    # timeouts); proxy/main.go reads them with GetIntAnnotation, so "30s" or "4.5" are invalid
    # there and the ConfigMap's value applies: the same here, with a warning.
    try:
        n = _atoi(value)
    except ValueError:
        raise ValueError(f"invalid timeout {value!r}: must be a whole number of seconds, "
                         'such as "60"') from None
    if n <= 0:
        # ingress-nginx's Atoi takes "0" and writes "proxy_read_timeout 0s;"; a zero or
        # negative timeout is refused here instead (ingresslib's choice), with a warning.
        raise ValueError(f"invalid timeout {value!r}: must be greater than 0")
    if n > NGINX_MAX_SECONDS:
        # nginx.tmpl: "proxy_read_timeout {{ $location.Proxy.ReadTimeout }}s;" (connect, send
        # alike): "3000000" armed a 35-day timer here, where nginx -t fails.
        raise ValueError(f"invalid timeout {value!r}: must be at most {NGINX_MAX_SECONDS} "
                         'seconds (about 24 days): nginx refuses a longer one ("invalid value")')
    return float(n)


# ingress-nginx validates the raw value with ``validUpstreamAnnotation`` (proxy/main.go): each
# condition followed by at most one whitespace character, so " error" or "error  timeout" are
# invalid there (the ConfigMap's value applies). Go's ``\s`` is ``[\t\n\f\r ]`` (RE2 syntax:
# "whitespace (== [\t\n\f\r ])"), Python's also takes "\v": spelled out.
_NEXT_UPSTREAM_RE = re.compile(r"(?:[a-z_0-9]+[\t\n\f\r ]?)+", re.ASCII)


def _next_upstream(value: str) -> frozenset[str]:
    if _NEXT_UPSTREAM_RE.fullmatch(value) is None:
        raise ValueError(f"invalid proxy-next-upstream {value!r}: conditions separated by "
                         "single spaces")
    parts = frozenset(value.split())
    unknown = parts - NEXT_UPSTREAM_CONDITIONS
    if not parts or unknown:
        raise ValueError(f"invalid proxy-next-upstream {value!r}")
    return parts


def _backend_protocol(value: str) -> str:
    # backendprotocol/main.go: "proto = strings.TrimSpace(strings.ToUpper(proto))", then
    # validProtocols (AUTO_HTTP|HTTP|HTTPS|AJP|GRPC|GRPCS); template.go buildProxyPass also
    # knows FCGI. GRPC(S) (grpc_pass, HTTP/2), AJP and FCGI are other protocols than the HTTP/1.1
    # this proxy speaks: refused with a warning, HTTP used (what ingress-nginx does with a value
    # it does not know: "Using HTTP as protocol").
    v = value.strip().upper()
    if v in ("HTTP", "HTTPS", "AUTO_HTTP"):
        return v
    raise ValueError(f"unsupported backend-protocol {value!r} (HTTP, HTTPS or AUTO_HTTP)")


def _tries(value: str) -> int:
    n = _atoi(value)
    if n < 0:
        raise ValueError(f"invalid tries {value!r}: must be 0 (unlimited) or more")
    return n


def _next_upstream_timeout(value: str) -> float:
    # proxy/main.go: "config.NextUpstreamTimeout, err = parser.GetIntAnnotation(
    # proxyNextUpstreamTimeoutAnnotation, ...)" -- strconv.Atoi, unitless seconds; 0 is
    # nginx's "no limit". A negative value fails nginx's configuration test there.
    n = _atoi(value)
    if n < 0:
        raise ValueError(f"invalid timeout {value!r}: must be 0 (no limit) or more seconds")
    return float(n)


def _show(value: object) -> str:
    """A setting's value as an annotation would spell it, for the warning's "default used"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, frozenset):
        return '"' + " ".join(sorted(value)) + '"'
    if value is None:
        return "(none)"
    return str(value)


# The characters ingress-nginx's annotation validators allow (parser/validators.go, v1.9+):
# "alphaNumericChars = `\-\.\_\~a-zA-Z0-9\/:`"; rewrite-target and app-root use
# "RegexPathWithCapture = regexp.MustCompile(`^/?[` + alphaNumericChars + `\/\$]*$`)",
# x-forwarded-prefix "ValidateRegex(parser.BasicCharsRegex, true)" (BasicCharsRegex =
# "^[/" + alphaNumericChars + "]*$", spaces removed first). Everything else (";", "{", "}",
# "\", quotes, controls...) is refused there because the value is written into nginx.conf,
# where ";" ends a directive and "{" opens a block. Nothing here writes nginx configuration, but
# the same values are refused (a warning, the default used) so that an Ingress ingress-nginx
# refuses is not silently served differently, and so that a Location or upstream header built
# from them never carries a control character.
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_NGINX_BASIC = _ALNUM | frozenset("-._~/:")
# ingresslib keeps two documented leniencies for rewrite-target and app-root: the RFC 3986
# characters a path and query may hold (sub-delims and "@", "?"; ";" excepted, see above), so
# that nginx's rewrite argument rules (a "?" in the target) and queries in app-root keep
# working (Go's url.ParseRequestURI, which app-root was checked with before v1.9, takes them),
# and "%" when it starts a "%XX" escape. Non-ASCII characters are allowed (sent as UTF-8, or
# percent-encoded in a request target); ASCII outside these sets is refused.
_URI_CHARS = _NGINX_BASIC | frozenset("!&'()*+,=@?%")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
# nginx ngx_http_script_compile: after "$", only "if (sc->source->data[i] >= '1' &&
# sc->source->data[i] <= '9')" is a capture; "$0", "$uri", "${x}" or a final "$" are variable
# names (or "invalid variable name"), which nginx would expand or refuse: never literal text.
_NOT_A_CAPTURE = re.compile(r"\$(?![1-9])")


def _refuse_chars(value: str, allowed: frozenset[str], what: str) -> None:
    for c in value:
        if c.isascii() and c not in allowed:
            raise ValueError(f"invalid {what} {value!r}: the character {c!r} is not allowed "
                             "(ingress-nginx's annotation validator refuses it too)")


def _path_value(value: str) -> str:
    # ingress-nginx rewrite/main.go reads app-root with ``url.ParseRequestURI`` and refuses an
    # absolute URL; Go's parser refuses any ASCII control character ("net/url: invalid control
    # character in URL"). Spaces are refused too: the value is written into a Location header.
    # A backslash is refused (RegexPathWithCapture has none): without Host the Location is the
    # relative "/\evil.test", which browsers resolve as "//evil.test", another host.
    v = value.strip()
    if not v.startswith("/"):
        raise ValueError(f"invalid path {value!r}")
    _refuse_chars(v, _URI_CHARS, "app-root")
    if _BAD_PERCENT.search(v):
        raise ValueError(f"invalid app-root {value!r}: \"%\" must start a %XX escape")
    v.encode("utf-8")  # a lone surrogate has no bytes for the header: UnicodeEncodeError
    return v


def valid_app_root(value: str) -> str | None:
    """An ``app-root`` annotation value as ``parse_route_options`` reads it, or None when it
    is invalid there (without the warning: that is given for the Ingress's own rules)."""
    try:
        return _path_value(value)
    except ValueError:
        return None


def _header_value(value: str) -> str:
    v = value.strip()
    if not v or any(ord(c) < 32 or ord(c) == 127 for c in v):
        raise ValueError(f"invalid header value {value!r}")
    # Sent as UTF-8: a lone surrogate has no bytes at all. Only ``Resources.from_dicts`` can
    # give one (a manifest's ``\udce9`` escape reads as U+FFFD, as Go decodes it:
    # ``_json_manifests._go_surrogates``; a raw one in manifest text is refused, ``_load``).
    v.encode("utf-8")  # UnicodeEncodeError is a ValueError: a warning, the default used
    return v


def _forwarded_prefix(value: str) -> str:
    # xforwardedprefix/main.go: "Validator: parser.ValidateRegex(parser.BasicCharsRegex, true)"
    # (spaces removed before the check, so inner spaces pass). Non-ASCII stays allowed (sent as
    # UTF-8, ingresslib's choice).
    v = _header_value(value)
    _refuse_chars(v, _NGINX_BASIC | {" "}, "x-forwarded-prefix")
    return v


def _rewrite_target(value: str) -> str:
    # ingress-nginx writes ``rewrite "(?i)<path>" <target> break;`` with the target unquoted:
    # whitespace splits the directive and nginx's configuration test rejects it. Here the
    # annotation is ignored with a warning; non-ASCII characters are percent-encoded as UTF-8
    # (nginx escapes the rewritten URI it proxies, ngx_escape_uri): a request target is ASCII.
    v = _header_value(value)
    if any(c.isspace() for c in v):
        raise ValueError(f"invalid rewrite-target {value!r}: whitespace")
    _refuse_chars(v, _URI_CHARS | {"$"}, "rewrite-target")
    if _NOT_A_CAPTURE.search(v):
        raise ValueError(f"invalid rewrite-target {value!r}: \"$\" must start a capture $1..$9 "
                         "(nginx reads \"$0\" or \"$name\" as a variable)")
    if _BAD_PERCENT.search(v):
        raise ValueError(f"invalid rewrite-target {value!r}: \"%\" must start a %XX escape")
    if not _is_url(v):
        v = _escaped_path_percent(v)
    return "".join(c if c.isascii() else quote(c, safe="") for c in v)


def _escaped_path_percent(target: str) -> str:
    """A path rewrite-target with each "%" of its path (before its first "?") written
    ``%25``: nginx copies the replacement's bytes into ``$uri`` as they are
    (ngx_http_script_compile reads only "$" and "?" in it), and
    ngx_http_proxy_module.c ``ngx_http_proxy_create_request`` escapes the rewritten
    ``$uri`` with NGX_ESCAPE_URI ("if (r->quoted_uri || r->internal)": a rewrite sets
    ``r->internal``), so ``/x%20y/$1`` goes up as ``/x%2520y/...``. The arguments are
    copied as they are ("b->last = ngx_copy(b->last, r->args.data, r->args.len)"): their
    ``%20`` stays. (Of the characters a target may hold, "%" and the non-ASCII ones, which
    the caller encodes, are all NGX_ESCAPE_URI escapes.) A trap users meet (README): ``/%7Euser``
    goes up as ``/%257Euser``; ingress-nginx's validator refuses any "%" in rewrite-target
    (parser/validators.go ``RegexPathWithCapture``), nginx doubles it only with annotation
    validation off, and the character itself (``/~user``) is what both send as meant."""
    path, sep, args = target.partition("?")
    return path.replace("%", "%25") + sep + args


def _is_url(target: str) -> bool:
    """A rewrite-target nginx's ``rewrite`` answers with a redirect (``rewrite_is_redirect``:
    ngx_http_rewrite compares the bytes "http://" and "https://", case-sensitively)."""
    return target.startswith("http://") or target.startswith("https://")


# redirect/redirect.go (ingress-nginx v1.10+): "if tr != "" { trc, err :=
# parser.GetIntAnnotation(temporalRedirectAnnotationCode, ...); if trc <
# http.StatusMultipleChoices || trc > http.StatusTemporaryRedirect { trc =
# defaultTemporalRedirectCode }" (302), and for permanent-redirect "if prc <
# http.StatusMultipleChoices || prc > http.StatusPermanentRedirect { prc =
# defaultPermanentRedirectCode }" (301). nginx's ``return`` writes a Location only for
# "status == NGX_HTTP_MOVED_PERMANENTLY || ... MOVED_TEMPORARILY || ... SEE_OTHER || ...
# TEMPORARY_REDIRECT || ... PERMANENT_REDIRECT" (ngx_http_core_module.c
# ``ngx_http_send_response``); 300, 304, 305 and 306 would answer with the URL as the body and
# no Location, which no client follows: refused here too, with a warning.
_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})


def _redirect_code(highest: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        n = _atoi(value)
        if n not in _REDIRECT_CODES or n > highest:
            allowed = ", ".join(str(c) for c in sorted(_REDIRECT_CODES) if c <= highest)
            raise ValueError(f"invalid redirect code {value!r}: one of {allowed}")
        return n
    return parse


def _redirect_url(value: str) -> str:
    # redirect.go ``isValidURL``: "u, err := url.Parse(s) ... if !strings.HasPrefix(u.Scheme,
    # "http") { return errors.Errorf("only http and https are valid protocols (%v)", ...)";
    # parser.GetStringAnnotation trims the value (an empty one is invalid). The validator
    # ``URLIsValidRegex`` ("^[" + alphaNumericChars + urlEnabledChars + "]*$") has no "$": a
    # URL with nginx variables (``https://new.test$request_uri``) is refused there, and here
    # (ingresslib writes the URL as given, it expands no variable). The characters are
    # ``_URI_CHARS`` (``%XX`` escapes and RFC 3986 sub-delims kept, as for app-root); the value
    # is a Location header: ASCII only, no whitespace.
    v = value.strip()
    if not v or any(not c.isascii() or c.isspace() for c in v):
        raise ValueError(f"invalid redirect URL {value!r}")
    if "$" in v:
        raise ValueError(f"invalid redirect URL {value!r}: nginx variables (\"$...\") are not "
                         "supported (ingress-nginx's validator refuses \"$\" too)")
    _refuse_chars(v, _URI_CHARS, "redirect URL")
    if _BAD_PERCENT.search(v):
        raise ValueError(f"invalid redirect URL {value!r}: \"%\" must start a %XX escape")
    scheme, sep, rest = v.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not rest or rest[0] in "/?":
        raise ValueError(f"invalid redirect URL {value!r}: an absolute http:// or https:// "
                         "URL with a host")
    return v


def _compile_rule_path(rule_path: str | None, use_regex: bool) -> _regex.Pattern[str]:
    # ``regex`` (its default V0 behaviour is ``re``'s) for the match timeout, REWRITE_TIMEOUT.
    # The pattern runs on the decoded path, bytes as latin-1 characters (``_decoded_path``),
    # as nginx's PCRE runs on ``$uri``'s bytes without UTF mode: the pattern is nginx.conf's
    # UTF-8 bytes the same way (``é`` two characters), and ASCII makes ``\w``, ``\s`` and
    # the case folding of IGNORECASE (nginx's "(?i)") ASCII only, as PCRE's default tables
    # (Unicode folding took "Ã", the byte 0xC3, for "ã", 0xE3).
    flags = _regex.IGNORECASE | _regex.ASCII
    if rule_path is None:
        rule_path = "/"
    if use_regex:
        return _regex.compile(_latin1_bytes(rule_path), flags)
    # The literal rule path must be in the form the table matched (SEMANTICS §5), decoded:
    # ``/café`` routes ``/caf%C3%A9`` and ``/%7Euser`` routes ``/~user``; escaped as written
    # they never matched, and every request the rule routed went up un-rewritten (nginx's
    # ``rewrite`` compares the decoded ``$uri`` with the path as written, and rewrites them).
    # A path the table skips (it can never match) keeps its written form: no request reaches
    # it anyway.
    try:
        rule_path = _decoded_path(canonical_rule_path(rule_path))[0]
    except BadRequestError:
        rule_path = _latin1_bytes(rule_path)
    return _regex.compile(_regex.escape(rule_path), flags)


def _rewrite_location(rule_path: str | None, path_type: str | None, target: str,
                      use_regex: bool) -> str:
    """The path of the location whose ``rewrite "(?i)PATH"`` ingress-nginx writes for a rule
    (``buildProxyPass`` compares the target with it, and its regex is the rewrite's): the rule
    path (``/`` for none), but ``PATH/`` for a Prefix ``PATH`` (not ``/``, no final ``/``)
    rewritten to itself without use-regex. controller/location.go ``updateServerLocations``
    asks ``needsRewrite`` ("Target != location.Path") on the rule path, so that rule is
    normalised ("location.Path = normalizePrefixPath(location.Path)": ``PATH/``) with an exact
    twin ``PATH`` after it; the ``PATH/`` location then differs from its target and rewrites
    (``/foo/bar`` goes up as ``/foo``), the twin does not (``/foo`` as it came): the regex
    of ``PATH/`` never matches ``PATH``. Not for Exact or ImplementationSpecific ("only Prefix
    locations could require an additional location block") nor with use-regex ("locations
    with rewrite or using regular expressions are not modified")."""
    path = rule_path or "/"
    if (path_type == "Prefix" and not use_regex and target == path and path != "/"
            and not path.endswith("/")):
        return path + "/"
    return path


def _latin1_bytes(text: str) -> str:
    """``text``'s UTF-8 bytes, one latin-1 character each (how nginx's PCRE reads them)."""
    return text.encode("utf-8").decode("latin-1")


#: Regex syntax a rule path can hold. ``.`` is left out: it also matches itself, so the literal
#: reading routes a subset of what the regex does, with the same rule.
_REGEX_SYNTAX = frozenset("()[]{}*+?|^$\\")


class RouteWarning(str):
    """One of the proxy's warnings on an Ingress's annotations or rule paths: the line it logs
    (``Ingress NS/NAME: ...``, this string, unchanged) with its parts, given where it is made,
    so that ``ingresslib check`` reports it without reading the text back: ``object``
    (``"Ingress NS/NAME"``, the ``where`` of ``parse_route_options``), ``field`` (the
    annotation's ``metadata.annotations[KEY]``, or a rule path's
    ``spec.rules[i].http.paths[j].path``; ``""`` when not known) and ``message``. A str: the
    server logs it, sets and dicts dedupe it by its text, as before."""

    object: str
    field: str
    message: str

    def __new__(cls, text: str, object_: str, field: str, message: str) -> RouteWarning:
        self = super().__new__(cls, text)
        self.object = object_
        self.field = field
        self.message = message
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        # A str subclass with its own __new__: copy and pickle call it with these.
        return (type(self), (str(self), self.object, self.field, self.message))

    @classmethod
    def on(cls, where: str, body: str, field: str = "",
           message: str | None = None) -> RouteWarning:
        """``"{where}: {body}"`` on ``where``; ``message`` defaults to ``body``."""
        return cls(f"{where}: {body}", where, field, body if message is None else message)

    @classmethod
    def annotation(cls, where: str, key: str, message: str) -> RouteWarning:
        """``"{where}: annotation {key}: {message}"``, on ``metadata.annotations[key]``."""
        return cls.on(where, f"annotation {key}: {message}", annotation_field(key), message)


def annotation_field(key: str) -> str:
    """The field path of annotation ``key``, as every warning on one names it."""
    return f"metadata.annotations[{key}]"


def _regex_path_warning(rule_path: str | None, use_regex: bool, rewrite: bool,
                        where: str, path_field: str = "") -> RouteWarning | None:
    """The warning for a rule path ingress-nginx reads as a regex and ingresslib as a literal
    prefix (README divergences: ImplementationSpecific is Prefix, ``use-regex`` only shapes the
    rewrite). ingress-nginx's template.go makes every path of the server a regex location when
    one has ``use-regex`` or a rewrite-target (``enforceRegexModifier``: "if
    needsRewrite(location) || location.Rewrite.UseRegex { return true }"; ``buildLocation``:
    ``~* "^%s"``). Here no request spells ``/admin(/|$)(.*)``: the requests that regex matches
    go to another rule or the default backend -- with that rule's access control, not this
    one's. Routing stays as documented; the warning makes it visible (``check``, the server
    log), as every other annotation ingresslib reads differently."""
    if rule_path is None or not (use_regex or rewrite):
        return None
    if not any(c in _REGEX_SYNTAX for c in rule_path):
        return None
    return RouteWarning.on(
        where, f"rule path {rule_path!r} is a regex in ingress-nginx (use-regex or "
        "rewrite-target) but is routed by ingresslib as a literal prefix: the requests that "
        "regex matches go to another rule or the default backend, with that rule's access "
        "control; use a Prefix path", path_field)


def _regex_trigger(route: Any) -> str | None:
    """The annotation that makes ``route``'s server a regex one in ingress-nginx, or None.
    template.go ``enforceRegexModifier``: "if needsRewrite(location) ||
    location.Rewrite.UseRegex"; ``needsRewrite``: "len(Target) > 0 && Target !=
    location.Path" (a ``/`` rule rewritten to ``/`` is no rewrite). The location path is the
    one ``updateServerLocations`` (controller/location.go) leaves: a Prefix path other than
    ``/`` not ending in ``/`` becomes ``PATH/`` (``normalizePrefixPath``; its exact twin keeps
    ``PATH``), so a target equal to ``PATH`` is a rewrite there (a target ``PATH/`` too, but
    for the rare host whose Exact ``PATH`` leaves no twin). A canary lends only its backend to
    the main location: its own annotations never reach the server."""
    annotations = route.annotations
    if _is_canary_value(annotations.get(PREFIX + "canary")):
        return None
    if parse_bool(annotations.get(PREFIX + "use-regex") or "") is True:
        return "use-regex"
    target = (annotations.get(PREFIX + "rewrite-target") or "").strip()
    location = _rewrite_location(route.path, route.path_type, target, False)
    if target and target != location and _valid_rewrite_target(target):
        return "rewrite-target"
    return None


def _valid_rewrite_target(target: str) -> bool:
    """Whether ``parse_route_options`` takes ``target`` (``_rewrite_target``): an invalid one
    is ignored there, and ingress-nginx's rewrite parser defaults it "to empty"
    (annotations/rewrite/main.go ``Parse``: ``config.Target = ""``), so no rewrite."""
    try:
        _rewrite_target(target)
    except (ValueError, re.error):
        return False
    return True


def _regex_host_triggers(routes: Any) -> dict[str | None, str]:
    """host (None: the host-less rules) -> what makes ingress-nginx's server of that host a
    regex one (``_regex_trigger``, the first route's), for the hosts that have one."""
    triggers: dict[str | None, str] = {}
    for route in routes:
        trigger = None if not _has_location(route) else _regex_trigger(route)
        if trigger is not None:
            triggers.setdefault(route.host, f"{trigger} of Ingress {route.ingress}")
    return triggers


def _has_location(route: Any) -> bool:
    """Whether ingress-nginx writes a location for ``route``: a rule (not a default backend)
    with a Service backend (controller.go getBackendServers: "if path.Backend.Service == nil
    { // skip non-service backends ... continue }")."""
    return route.path is not None and route.service is not None


def regex_host_warnings(routes: Any, path_field: Callable[[Any], str]) -> list[RouteWarning]:
    """A warning per Exact or Prefix rule path (``/`` aside: ``^/`` takes every path, as
    Prefix ``/``) on a host where another location makes ingress-nginx enforce regex
    locations: there it is ``~* "^PATH"`` (template.go ``buildLocation``: "if enforceRegex {
    return fmt.Sprintf(`~* \"^%s\"`, path) }"), a case-insensitive prefix match of the
    characters, whatever Ingress it comes from (docs/user-guide/ingress-path-matching.md: "enforced
    on ALL paths for a given host regardless of what Ingress they are defined on"); ingresslib
    keeps the Ingress API's reading (SEMANTICS §4). ``routes``: a table's served routes (canaries are attached to theirs);
    ``path_field(route)``: the rule path's field. A path with regex syntax is
    ``_regex_path_warning``'s (said by ``parse_route_options`` under its own annotation, here
    under another rule's); an ImplementationSpecific one without is a README row."""
    triggers = _regex_host_triggers(routes)
    if not triggers:
        return []
    out = []
    for route in routes:
        warning = _regex_host_warning(route, triggers.get(route.host), path_field)
        if warning is not None:
            out.append(warning)
    return out


def regex_host_warning(routes: Any, route: Any) -> RouteWarning | None:
    """``regex_host_warnings``' warning on ``route`` (one of ``routes``; its ``field``
    empty), or None: what ``explain`` says of the rule a request hits."""
    if not _has_location(route):
        return None
    trigger = _regex_host_triggers(r for r in routes if r.host == route.host).get(route.host)
    return _regex_host_warning(route, trigger, lambda _route: "")


def _regex_host_warning(route: Any, trigger: str | None,
                        path_field: Callable[[Any], str]) -> RouteWarning | None:
    """The warning on ``route`` when ``trigger`` (``_regex_host_triggers``) makes its host
    regex, or None."""
    path = route.path
    if trigger is None or path == "/" or not _has_location(route):
        return None
    where = f"Ingress {route.ingress}"
    if any(c in _REGEX_SYNTAX for c in path):
        regex_warning = _regex_path_warning(path, True, False, where, path_field(route))
        return regex_warning if _regex_trigger(route) is None else None
    if route.path_type not in ("Exact", "Prefix"):
        return None
    taken = _regex_only_paths(path, route.path_type)
    missed = _regex_missed_path(path, route.path_type)
    if not taken and not missed:
        return None
    differs = " and ".join(([f"also takes {taken}"] if taken else []) + (
        [f"does not take {missed!r} (another rule or the default backend answers it)"]
        if missed else []))
    host = f"host {route.host}" if route.host else "the host-less rules"
    return RouteWarning.on(
        where,
        f"{route.path_type} {path!r} on {host} is the case-insensitive regex '^{path}' "
        "in ingress-nginx, which makes every path of a host a regex when one of its "
        f"rules has use-regex or a rewrite-target (here the {trigger}): there it {differs}; "
        f"ingresslib matches it as {route.path_type}", path_field(route))


def _regex_only_paths(path: str, path_type: str) -> str:
    """What ``~* "^PATH"`` takes that ``path_type`` ``path`` does not, said with an example
    (``""``: nothing to say). A Prefix path ending in ``/`` already takes ``PATH`` + ``x``
    (element-wise); an Exact path never does."""
    taken = []
    if not (path_type == "Prefix" and path.endswith("/")):
        taken.append(f"longer paths ('{path}x')")
    if path.upper() != path.lower():
        other_case = path.upper() if path.upper() != path else path.lower()
        taken.append(f"any letter case ('{other_case}')")
    return ", ".join(taken)


def _regex_missed_path(path: str, path_type: str) -> str | None:
    """The path Prefix ``path`` takes that its regex locations do not: ``PATH`` without its
    trailing ``/`` (Prefix ``/docs/`` matches ``/docs`` in the Ingress API; both locations
    updateServerLocations writes for it are ``^/docs/``). None for any other path."""
    if path_type == "Prefix" and path.endswith("/") and path != "/":
        return path.rstrip("/") or None
    return None


def parse_route_options(
    annotations: Mapping[str, str],
    rule_path: str | None,
    settings: ProxySettings,
    logger: logging.Logger | None = None,
    where: str = "",
    *,
    namespace: str | None = None,
    secrets: Callable[[], Any] | None = None,
    auth_warn: Callable[[str], None] | None = None,
    main_annotations: Mapping[str, str] | None = None,
    path_field: str = "",
    ext_auth: bool = True,
    client_certs: bool | None = None,
    path_type: str | None = None,
) -> RouteOptions:
    """Merge one route's annotations over ``settings``; invalid values warn and fall back.

    ``namespace`` is the Ingress's, ``secrets`` returns the router's current Secrets (for
    ``auth-type: basic``; None: not known here, as in ``check``), ``auth_warn`` is where the
    Secret's problems are reported when it is read, and a rule path routed literally that
    ingress-nginx reads as a regex (``_regex_path_warning``), at once. For a canary route,
    ``main_annotations`` are those of the main rule it joins (None: not known, every location
    option set is reported). ``path_field``: the rule path's field
    (``spec.rules[i].http.paths[j].path``), named by a warning on the path (``check``).
    ``path_type``: the rule's pathType (None: not known, read as not Prefix), which decides
    the location a rewrite-target equal to the rule path rewrites in (``_rewrite_location``).
    Every warning, ``route_access``'s and ``auth_warn``'s too, is a :class:`RouteWarning`.
    ``ext_auth`` False (IngressASGI, which has no auth subrequest): ``auth-url`` and its
    annotations are access annotations ingresslib cannot enforce (``route_access``: 503).
    ``client_certs`` (None: as ``ext_auth``, the proxy core's; IngressASGI has neither) False:
    likewise ``auth-tls-*``; True: their values are checked here (proxy/_clientcert.py: a
    refused value denies the routes, 503), their Secret read and enforced per host by the
    TLS listener's ``CertificateStore`` and the proxy core."""
    warnings: list[RouteWarning] = []
    # A canary Ingress lends only its backend to the main rule: the proxy applies the main
    # rule's options to canary traffic (``Decision.match``), as ingress-nginx merges only the
    # canary's upstream into the main location (annotations.md: "when you mark an ingress as
    # canary, then all the other non-canary annotations will be ignored (inherited from the
    # corresponding main ingress) except nginx.ingress.kubernetes.io/load-balance,
    # nginx.ingress.kubernetes.io/upstream-hash-by, and annotations related to session
    # affinity"). Each option set here is said to be ignored, not parsed:
    # an invalid value's "using the default" would name a value canary traffic never gets.
    # A canary is usually a copy of its main Ingress plus the canary annotations: an option
    # with the main's very value changes nothing, and a warning per copied annotation per
    # canary would be noise that teaches to skip warnings. Only one that differs (or that the
    # main does not set) is named: the value the canary's author expects and does not get.
    canary = _is_canary_value(annotations.get(PREFIX + "canary"))
    if canary:
        for key in sorted(annotations):
            if key.startswith(PREFIX) and key[len(PREFIX):] in LOCATION_OPTIONS and (
                    ext_auth or key[len(PREFIX):] not in EXTAUTH_ANNOTATIONS):
                ignored = canary_ignored(annotations, main_annotations, where, key)
                if ignored is not None:
                    warnings.append(ignored)

    def get(name: str, conv: Callable[[str], _T], default: _T) -> _T:
        raw = annotations.get(PREFIX + name)
        if raw is None or canary:
            return default
        try:
            return conv(raw)
        except (ValueError, re.error) as e:
            warnings.append(RouteWarning.annotation(
                where, PREFIX + name, f"{e}; using the default {_show(default)}"))
            return default

    ssl_redirect = get("ssl-redirect", _bool, settings.ssl_redirect)
    # rewrite/main.go: an unset or invalid annotation takes the ConfigMap's value
    # (``a.r.GetDefaultBackend().ForceSSLRedirect``), as ssl-redirect does.
    force = get("force-ssl-redirect", _bool, settings.force_ssl_redirect)
    if settings.no_tls_redirect_locations and in_locations(rule_path,
                                                           settings.no_tls_redirect_locations):
        # no-tls-redirect-locations: template.go locationConfigForLua's "force_no_ssl_redirect
        # = isLocationInLocationList(l, all.Cfg.NoTLSRedirectLocations)" (the rule path starts
        # with an item); lua_ingress.lua redirect_to_https(): "if
        # location_config.force_no_ssl_redirect then return false end", before force too.
        ssl_redirect = force = False
    # rewrite/main.go: "config.PreserveTrailingSlash, err = parser.GetBoolAnnotation(
    # preserveTrailingSlashAnnotation, ...); if err != nil { ... config.PreserveTrailingSlash =
    # a.r.GetDefaultBackend().PreserveTrailingSlash }" (ValidateBool: Go's ParseBool).
    keep_slash = get("preserve-trailing-slash", _bool, settings.preserve_trailing_slash)
    app_root: str | None = get("app-root", _path_value, None)
    rewrite_target: str | None = get("rewrite-target", _rewrite_target, None)
    use_regex = get("use-regex", _bool, False)
    # ingress-nginx sends X-Forwarded-Prefix only together with a rewrite: template.go
    # buildProxyPass writes "proxy_set_header X-Forwarded-Prefix" inside "if
    # len(location.Rewrite.Target) > 0 { ... }", after "if path == location.Rewrite.Target {
    # return defProxyPass }" (kubernetes/ingress-nginx#7880: "this annotation is disabled
    # silently unless you also set rewrite-target"). The value is kept here either way; the
    # proxy core and the ASGI adapter send it only when ``rewrite_target`` is set.
    prefix: str | None = get("x-forwarded-prefix", _forwarded_prefix, None)
    # redirect.go ``Parse``: "If the Ingress contains both annotations the execution order is
    # temporal and then permanent": a valid temporal-redirect wins; an invalid one (the whole
    # redirect group fails there) is ignored here with a warning, and permanent-redirect read.
    redirect_url: str | None = get("temporal-redirect", _redirect_url, None)
    redirect_code = 302
    if redirect_url is not None:
        redirect_code = get("temporal-redirect-code", _redirect_code(307), 302)
    else:
        redirect_url = get("permanent-redirect", _redirect_url, None)
        redirect_code = get("permanent-redirect-code", _redirect_code(308), 301)
    # Read here for its warning only: the twin is another host, answered per table
    # (RouteOptionsSource._www_twins), not by this route.
    get("from-to-www-redirect", _bool, False)
    connect = get("proxy-connect-timeout", _seconds, settings.proxy_connect_timeout)
    read = get("proxy-read-timeout", _seconds, settings.proxy_read_timeout)
    send = get("proxy-send-timeout", _seconds, settings.proxy_send_timeout)
    nxt = get("proxy-next-upstream", _next_upstream, frozenset(settings.proxy_next_upstream))
    if settings.retry_non_idempotent:
        # nginx.tmpl: "proxy_next_upstream {{ buildNextUpstream $location.Proxy.NextUpstream
        # $all.Cfg.RetryNonIdempotent }};" -- buildNextUpstream: "if retryNonIdempotent {
        # nextUpstreamCodes = append(nextUpstreamCodes, nonIdempotent) }", after the
        # annotation (or the ConfigMap's proxy-next-upstream) was read.
        nxt = nxt | {"non_idempotent"}
    tries = get("proxy-next-upstream-tries", _tries, settings.proxy_next_upstream_tries)
    budget = get("proxy-next-upstream-timeout", _next_upstream_timeout,
                 float(settings.proxy_next_upstream_timeout))
    body = get("proxy-body-size", parse_size, settings.proxy_body_size)
    # proxy/_location_extras.py
    access_log = get("enable-access-log", parse_access_log, True)
    connection_header: bytes | None = get("connection-proxy-header", parse_connection_header,
                                          None)
    http_version = get("proxy-http-version", parse_http_version, settings.proxy_http_version)
    # proxy/main.go: an invalid or unset annotation takes the ConfigMap's value.
    body_mode = get(REQUEST_BUFFERING, parse_request_buffering, settings.proxy_request_buffering)
    request_buffering = body_mode == "on"
    # "off" given (a valid annotation's, or the ConfigMap's: ``replay_streamed_body`` False) is
    # nginx's off; left unset, ingresslib's default "off" replays (proxy/_request_buffer.py).
    request_buffering_off = body_mode == "off" and (
        not settings.replay_streamed_body
        or (not canary and given_mode(annotations.get(PREFIX + REQUEST_BUFFERING)) == "off"))
    # proxy/_response_buffer.py; proxy/main.go: an invalid or unset annotation takes the
    # ConfigMap's value (defBackend.ProxyBufferSize, ...).
    buffer_size = get("proxy-buffer-size", parse_buffer_size, settings.proxy_buffer_size)
    buffers_number = get("proxy-buffers-number", parse_buffers_number,
                         settings.proxy_buffers_number)
    temp_size = get("proxy-max-temp-file-size", parse_max_temp_file_size,
                    settings.proxy_max_temp_file_size)
    buffering = get("proxy-buffering", parse_buffering, settings.proxy_buffering) == "on"
    port_in_redirects = get("use-port-in-redirects", parse_port_in_redirects,
                            settings.use_port_in_redirects)
    rewrite_log = get("enable-rewrite-log", parse_rewrite_log, False)
    backend_protocol = get("backend-protocol", _backend_protocol, "HTTP")
    vhost: bytes | None = get("upstream-vhost", parse_upstream_vhost, None)
    # proxy/main.go: an unset (or refused) annotation takes defaults.Backend's value, the
    # ConfigMap's proxy-redirect-from/-to and proxy-cookie-domain/-path ("config.CookieDomain
    # = defBackend.ProxyCookieDomain"; default "off"; _config checked them).
    redirect_to: str | None = get("proxy-redirect-to",
                                  lambda v: parse_redirect_word(v, "proxy-redirect-to"),
                                  settings.proxy_redirect_to)
    rewrite_out = ResponseRewrite(
        redirect=get("proxy-redirect-from", lambda v: parse_redirect(v, redirect_to),
                     parse_redirect(settings.proxy_redirect_from, redirect_to)),
        cookie_domain=get("proxy-cookie-domain",
                          lambda v: parse_cookie_pair(v, "proxy-cookie-domain"),
                          parse_cookie_pair(settings.proxy_cookie_domain, "proxy-cookie-domain")),
        cookie_path=get("proxy-cookie-path",
                        lambda v: parse_cookie_pair(v, "proxy-cookie-path"),
                        parse_cookie_pair(settings.proxy_cookie_path, "proxy-cookie-path")))

    cors: Cors | None = None
    rate_limit: RateLimit | None = None
    global_limit: GlobalRateLimit | None = None
    global_limit_denied: str | None = None
    custom_errors: frozenset[int] = frozenset()
    custom_headers: CustomHeaders | None = None
    limit_rate = settings.limit_rate * KB
    limit_rate_after = settings.limit_rate_after * KB
    if not canary:
        limit_rate, limit_rate_after = parse_bandwidth(
            annotations, PREFIX, settings.limit_rate, settings.limit_rate_after,
            lambda key, message: warnings.append(RouteWarning.annotation(where, key, message)))
        rate_limit = parse_rate_limit(annotations, PREFIX, where, lambda key, message:
                                      warnings.append(RouteWarning.annotation(where, key,
                                                                              message)))
        global_limit, global_limit_denied = parse_global_rate_limit(
            annotations, PREFIX, where, lambda key, message: warnings.append(
                RouteWarning.annotation(where, key, message)))
        cors = parse_cors(annotations, PREFIX, lambda key, message: warnings.append(
            RouteWarning.annotation(where, key, message)))
        custom_errors = _custom_errors(annotations, where, warnings)
        custom_headers = get(CUSTOM_HEADERS, lambda v: parse_custom_headers(
            v, namespace, settings.global_allowed_response_headers, where), None)
    # proxy/_mirror.py; on a canary, ignored (canary traffic is mirrored as the main rule says)
    mirror = None if canary else parse_mirror(
        annotations, PREFIX,
        lambda key, message: warnings.append(RouteWarning.annotation(where, key, message)))
    # proxy/_proxy_ssl.py; on a canary, ignored (the main rule's TLS to the endpoints). The
    # Secret is read for the proxy core only (the front end of ``client_certs``): IngressASGI
    # has no backend TLS, its routes are never denied for it.
    proxy_ssl = None if canary else parse_proxy_ssl(
        annotations, PREFIX, namespace,
        lambda key, message: warnings.append(RouteWarning.annotation(where, key, message)),
        secrets if (ext_auth if client_certs is None else client_certs) else None,
        auth_warn, where)
    # nginx.tmpl: "proxy_intercept_errors on;" only without it: the error_page lines then
    # apply to nginx's own errors alone (ingresslib: its 502/504 after the last try).
    intercept = not get("disable-proxy-intercept-errors", _bool, False)
    if settings.custom_http_errors:
        # The ConfigMap's custom-http-errors: nginx.tmpl's http-level "proxy_intercept_errors
        # on;" and "error_page <code> = @custom_upstream-default-backend_<code>;", which a
        # location inherits unless it writes its own error_page lines (the annotation's) --
        # and "proxy_intercept_errors on" whatever disable-proxy-intercept-errors says (the
        # annotation only leaves out the location's own "on").
        intercept = True
        if not custom_errors:  # none, or ignored (annotations.go: a parse error, no codes)
            custom_errors = global_custom_http_errors(settings.custom_http_errors)

    ext: ExtAuth | None = None
    ext_denied: str | None = None
    access_annotations = annotations
    if ext_auth:
        # auth-url (proxy/_extauth.py) is no access annotation ingresslib cannot enforce any
        # more (auth-cache-*: _authcache.py; auth-keepalive*: _authkeepalive.py).
        access_annotations = {k: v for k, v in annotations.items() if not (
            k.startswith(PREFIX) and k[len(PREFIX):] in EXTAUTH_ANNOTATIONS | EXTAUTH_IGNORED)}
        if not canary:
            ext, ext_denied = parse_ext_auth(annotations, PREFIX, lambda key, message:
                                             warnings.append(RouteWarning.annotation(
                                                 where, key, message)),
                                             settings.deny_unenforced_access_annotations)
    global_denied: str | None = None
    if not canary:
        # The ConfigMap's global-auth-url folded into ext_auth, no-auth-locations
        # (proxy/_globalauth.py).
        ext, global_denied, access_annotations = fold_global_auth(
            annotations, PREFIX, rule_path, settings, ext, ext_denied, access_annotations,
            ext_auth, lambda key, message: warnings.append(RouteWarning.annotation(
                where, key, message)), lambda message: warnings.append(RouteWarning.on(
                    where, message)))
    tls_denied: str | None = None
    auth_tls = False
    if (ext_auth if client_certs is None else client_certs) and not canary and any(
            k.startswith(_AUTH_TLS) for k in annotations):
        # auth-tls-* (proxy/_clientcert.py): the server's client certificate authentication,
        # enforced per host by the proxy core; here only what denies this Ingress's routes.
        access_annotations = {k: v for k, v in access_annotations.items()
                              if not k.startswith(_AUTH_TLS)}
        tls_denied = _auth_tls_denial(annotations, namespace, where, warnings)
        auth_tls = PREFIX + "auth-tls-secret" in annotations
    access, access_warnings = route_access(access_annotations, PREFIX, settings, where,
                                           namespace, secrets, auth_warn,
                                           main_annotations=main_annotations)
    warnings.extend(access_warnings)
    if tls_denied is not None:
        access = combine_access(access, Access(tls_denied, None))
    if ext_denied is not None:
        # authreq/main.go: an auth-url ingress-nginx cannot use denies the location (503).
        access = combine_access(access, Access(ext_denied, None))
    if global_denied is not None:
        access = combine_access(access, Access(global_denied, None))
    if global_limit_denied is not None:
        # globalratelimit/main.go: a window Go cannot parse is a LocationDenied (503).
        access = combine_access(access, Access(global_limit_denied, None))
    # Never silently: an annotation ingress-nginx acts on and ingresslib does not is named
    # (route_access already spoke of those that restrict access).
    for key in sorted(annotations):
        if key.startswith(PREFIX):
            name = key[len(PREFIX):]
            if name not in IMPLEMENTED and not unenforced_access(name):
                # A misspelt name is not "not implemented": saying so hides the typo (the
                # user reads that rewrite-target is unsupported).
                guess = did_you_mean(name)
                if guess is not None:
                    warnings.append(RouteWarning.annotation(
                        where, key, f"unknown annotation, ignored; did you mean {guess}?"))
                else:
                    warnings.append(RouteWarning.annotation(
                        where, key, "not implemented by ingresslib; ignored"))

    regex: _regex.Pattern[str] | None = None
    raw_target = (annotations.get(PREFIX + "rewrite-target") or "").strip()
    location_path = _rewrite_location(rule_path, path_type, raw_target, bool(use_regex))
    if rewrite_target is not None and raw_target == location_path:
        # ingress-nginx template.go buildProxyPass: "if the path in the ingress rule is equals
        # to the target: no special rewrite" (``if path == location.Rewrite.Target { return
        # defProxyPass }``). Without this, ``path: /`` + ``rewrite-target: /`` (a common
        # copy-paste) would send every request to ``/``.
        rewrite_target = None
    regex_warning = _regex_path_warning(rule_path, bool(use_regex), rewrite_target is not None,
                                        where, path_field)
    if regex_warning is not None and auth_warn is not None:
        # Not an invalid value (``warnings`` are those: the option's default was used) but a
        # reading of the rule: reported where the Secret's problems go, the callers' channel
        # for what is not a RouteOptions value (the server's log, ``check``).
        auth_warn(regex_warning)
    if rewrite_target is not None:
        try:
            regex = _compile_rule_path(location_path, bool(use_regex))
        except _regex.error as e:
            warnings.append(RouteWarning.on(
                where, f"rule path {rule_path!r} is not a valid regex for rewrite-target "
                f"({e}); rewrite-target ignored", path_field))
            rewrite_target = None
    if logger is not None:
        for w in warnings:
            logger.warning("%s", w)
    return RouteOptions(
        ssl_redirect=bool(ssl_redirect),
        force_ssl_redirect=bool(force),
        app_root=app_root,
        rewrite_target=rewrite_target,
        rewrite_regex=regex,
        x_forwarded_prefix=prefix,
        connect_timeout=float(connect),
        read_timeout=float(read),
        send_timeout=float(send),
        next_upstream=nxt,
        next_upstream_tries=tries,
        body_size=body,
        next_upstream_timeout=float(budget),
        backend_protocol=backend_protocol,
        preserve_trailing_slash=bool(keep_slash),
        redirect_url=redirect_url,
        redirect_code=redirect_code,
        access=access,
        warnings=tuple(warnings),
        cors=cors,
        rate_limit=rate_limit,
        global_rate_limit=global_limit,
        upstream_vhost=vhost,
        response_rewrite=rewrite_out or None,
        custom_http_errors=custom_errors,
        intercept_errors=intercept,
        custom_headers=custom_headers,
        ext_auth=ext,
        mirror=mirror,
        limit_rate=limit_rate,
        auth_tls=auth_tls,
        limit_rate_after=limit_rate_after,
        proxy_ssl=proxy_ssl,
        access_log=access_log,
        connection_header=connection_header,
        http_version=http_version,
        request_buffering=request_buffering,
        request_buffering_off=request_buffering_off,
        port_in_redirects=port_in_redirects,
        rewrite_log=rewrite_log,
        proxy_buffer_size=buffer_size,
        proxy_buffers_number=buffers_number,
        proxy_max_temp_file_size=temp_size,
        response_buffer=response_buffer(buffering, buffers_number, buffer_size, temp_size,
                                        settings.response_buffering_limit),
    )


_AUTH_TLS = PREFIX + "auth-tls-"


def _auth_tls_denial(annotations: Mapping[str, str], namespace: str | None, where: str,
                     warnings: list[RouteWarning]) -> str | None:
    """Why the values of the ``auth-tls-*`` annotations of an Ingress deny its routes (503,
    as ingress-nginx's LocationDenied), or None; their warnings go to ``warnings``. The
    Secret is not read here (the route table outlives a Secret's changes): the TLS listener's
    ``CertificateStore`` reads it at each update, and a host whose Secret cannot be used
    answers 503 (proxy/_clientcert.py ``server_auths``)."""
    from ._clientcert import parse_auth_tls

    if PREFIX + "auth-tls-secret" not in annotations:
        for key in sorted(k for k in annotations if k.startswith(_AUTH_TLS)):
            # authtls/main.go: without auth-tls-secret the others are read by nothing.
            warnings.append(RouteWarning.annotation(
                where, key, f"ignored without {PREFIX}auth-tls-secret (as in ingress-nginx)"))
        return None
    parsed = parse_auth_tls(annotations, PREFIX, namespace, where.removeprefix("Ingress "),
                            None, resolve=False)
    assert parsed is not None
    warnings.extend(RouteWarning.annotation(where, key, message)
                    for key, message in parsed.warnings)
    if parsed.denied is not None:
        warnings.append(RouteWarning.on(
            where, f"{parsed.denied}: the Ingress's routes answer 503",
            annotation_field(parsed.denied_key)))
    return parsed.denied


def _custom_errors(annotations: Mapping[str, str], where: str,
                   warnings: list[RouteWarning]) -> frozenset[int]:
    """``custom-http-errors`` (proxy/_error_pages.py), said when ignored or without effect."""
    raw = annotations.get(PREFIX + CUSTOM_HTTP_ERRORS)
    if raw is None:
        return frozenset()
    codes, problem = parse_custom_http_errors(raw)
    if problem is not None:
        warnings.append(RouteWarning.annotation(where, PREFIX + CUSTOM_HTTP_ERRORS, problem))
    elif PREFIX + "default-backend" not in annotations:
        # ingress-nginx sends the errors to the controller's default backend; ingresslib has
        # none: the upstream's answer passes untouched.
        warnings.append(RouteWarning.annotation(
            where, PREFIX + CUSTOM_HTTP_ERRORS, "has no effect without a default-backend annotation "
            "(ingresslib has no controller default backend): responses pass untouched"))
    return codes
