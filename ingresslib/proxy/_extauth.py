"""External authentication (``auth-url``): nginx's ``auth_request`` as ingress-nginx writes it,
for the proxy core (``ClientConnection``) and IngressASGI (ingresslib/_asgi_extauth.py, with the
same pure pieces: ``subrequest_head``, ``verdict``, ``denial``, ``adds_cookies``).

References (kubernetes/ingress-nginx):

- ``internal/ingress/annotations/authreq/main.go`` ``Parse``: ``auth-url`` is required
  (``parser.StringToURL``: a scheme and a host; "could not parse auth-url annotation" is a
  ``LocationDenied``); ``auth-method`` one of ``GET HEAD POST PUT PATCH DELETE CONNECT OPTIONS
  TRACE`` (``ValidMethod``, else "invalid HTTP method": denied); ``auth-response-headers`` a
  comma-separated list of ``^[a-zA-Z\\d\\-_]+$`` names (``ValidHeader``, else "invalid headers
  list": denied); ``auth-proxy-set-headers`` a ConfigMap (missing: "unable to find
  configMap", denied); ``auth-signin``, ``auth-signin-redirect-param``,
  ``auth-request-redirect`` optional (an invalid one is left unset); ``auth-always-set-cookie``
  a bool.
- ``rootfs/etc/nginx/template/nginx.tmpl``: the internal ``location = /_external-auth-...``
  (``proxy_pass_request_body off; proxy_set_header Content-Length ""; proxy_set_header
  X-Forwarded-Proto ""; proxy_set_header X-Request-ID $req_id;`` with ``auth-method``:
  ``proxy_method``, ``X-Original-URI $request_uri``, ``X-Scheme $pass_access_scheme``;
  ``Host <the URL's host name>``, ``X-Original-URL $scheme://$http_host$request_uri``,
  ``X-Original-Method $request_method``, ``X-Sent-From "nginx-ingress-controller"``,
  ``X-Real-IP $remote_addr``, ``X-Forwarded-For`` ($remote_addr, or $full_x_forwarded_for with
  use-forwarded-headers and compute-full-forwarded-for), ``X-Auth-Request-Redirect``
  (auth-request-redirect, else $request_uri), the auth-proxy-set-headers,
  ``proxy_pass_request_headers on``) and the main location (``auth_request``;
  ``auth_request_set $auth_cookie $upstream_http_set_cookie; add_header Set-Cookie
  $auth_cookie [always];``; ``buildAuthResponseHeaders``: ``auth_request_set $authHeaderN
  $upstream_http_<name>; proxy_set_header '<Name>' $authHeaderN;``; with auth-signin
  ``error_page 401 = <named location>`` whose ``return 302 {{ buildAuthSignURL }}`` carries
  ``add_header Set-Cookie $auth_cookie``).
- ``internal/ingress/controller/template/template.go`` ``buildAuthSignURL``: without a query
  the URL gets ``?rd=$pass_access_scheme://$http_host$escaped_request_uri`` (``rd``: the
  auth-signin-redirect-param), with one ``&rd=...``, unless it already has that parameter.
- nginx ``ngx_http_auth_request_module.c`` ``ngx_http_auth_request_handler``: a 2xx answer
  lets the request go on, 401 (with the answer's ``WWW-Authenticate``) and 403 are returned,
  any other status (a failed or timed-out subrequest too) is "auth request unexpected status":
  500. The subrequest is a GET (``ngx_http_subrequest``) unless ``proxy_method`` says otherwise;
  its body is never sent; its answer's body is discarded.

ingresslib's choices (README, divergences): an ``auth-url`` holding nginx variables (``$host``)
is refused (the location denied, 503): ingresslib expands none there. ``auth-signin`` may use
``$host``, ``$http_host``, ``$best_http_host``, ``$scheme``, ``$pass_access_scheme``,
``$request_uri`` and ``$escaped_request_uri``; any other variable leaves it unset (warned). Each
``Set-Cookie`` of the auth answer is passed as its own header (nginx joins them into one).
Without ``auth-keepalive`` the subrequest says ``Connection: close`` and its connection is
closed after the answer (nginx's default); with it (proxy/_authkeepalive.py) the subrequest has
no ``Connection`` header, its answer is read to its end and the connection goes back to a pool.
``auth-cache-key`` / ``auth-cache-duration`` cache the answers (proxy/_authcache.py: a hit
sends no subrequest). The subrequest's ``X-Request-ID`` is the request's id (``_request_id``):
the one the backend and the access log get, chosen once (the client's lines replaced, as
``proxy_set_header X-Request-ID $req_id`` replaces them; an ``auth_request`` subrequest shares
the main request's variables, nginx ``ngx_http_subrequest``: "sr->variables = r->variables",
and ``$request_id`` is cacheable). With ``auth-keepalive`` ingress-nginx (``use-http2:
"false"`` only: template.go ``shouldApplyAuthUpstream``) asks through Lua's
``ngx.location.capture``, whose subrequest gets variables of its own unless
``auth-keepalive-share-vars`` (lua-nginx-module ``ngx_http_lua_adjust_subrequest``: "we do not
inherit the parent request's variables"): a generated id of its own there; ingresslib sends
the request's id either way (README). What a client sends
never reaches the auth service as if this hop had written it (``_client_dropped``): not its
``ssl-client-*`` headers (nginx.tmpl's auth location sends the handshake's on a server with
``auth-tls-*``), ``Proxy``, a name nginx's ``ignore_invalid_headers`` drops, an underscore
spelling of a header the subrequest sets or of the forwarded-for header, nor, from a peer not
trusted, the forwarded headers the core writes for a backend or the header a
``forwarded-for-header`` other than X-Forwarded-For names (``CF-Connecting-IP``).
``auth-response-headers`` never sets a framing or hop-by-hop header on the backend request
(``_NOT_FROM_AUTH``: warned and ignored), and the client's header of a listed name goes in
any spelling (``X_User`` for ``X-User``). The answer's head is
bounded by the location's ``proxy-buffer-size`` (nginx.tmpl's auth location: "proxy_buffer_size
{{ $location.Proxy.BufferSize }}"; each head, 1xx ones by themselves, and all of them together
by ``max_response_header_size``) and a 101 is a final status (500), as nginx reads the
subrequest's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import h11

from .._goparse import normalize_string, parse_bool, trim_space
from ._authcache import AuthCacheConfig, cache_of, lifetime, parse_auth_cache, request_key
from ._authkeepalive import KEEPALIVE_ANNOTATIONS, AuthKeepalive, parse_auth_keepalive, reusable
from ._chunked import has_control
from ._clientcert import CLIENT_CERT_HEADERS, upstream_lines
from ._h11_reader import _H11Reader
from ._header_sets import _ref, config_maps_of, set_headers_for
from ._headers import (FORWARDED_DROP, HEADER_NAME_CHARS, REQUEST_DROP, forwarded_for_value,
                       odd_name_dropped)
from ._proxy_ssl import auth_tls
from ._response_buffer import BODY_LINE_LIMIT, log_too_big
from ._satisfy import combine

__all__ = ["ExtAuth", "EXTAUTH_ANNOTATIONS", "EXTAUTH_IGNORED", "parse_ext_auth",
           "subrequest_head", "verdict", "signin_url", "with_auth_headers", "auth_owns",
           "auth_connected", "auth_failed", "auth_data", "auth_eof", "auth_timed_out",
           "auth_drop", "auth_start", "auth_upstream_head", "auth_add_cookies",
           "signin_variables", "denial", "adds_cookies", "remember"]

#: The external-auth annotations ingresslib implements (proxy core and IngressASGI).
EXTAUTH_ANNOTATIONS = frozenset({
    "auth-url", "auth-method", "auth-signin", "auth-signin-redirect-param",
    "auth-response-headers", "auth-request-redirect", "auth-always-set-cookie",
    "auth-proxy-set-headers", "auth-cache-key", "auth-cache-duration"}) | KEEPALIVE_ANNOTATIONS
#: Read by ingress-nginx, not by ingresslib: warned and ignored (none since auth-keepalive*
#: are implemented, proxy/_authkeepalive.py).
EXTAUTH_IGNORED: frozenset[str] = frozenset()

_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "CONNECT", "OPTIONS", "TRACE")
_HEADER_RE = re.compile(r"[a-zA-Z\d\-_]+")
_PARAM_RE = re.compile(r"[A-Za-z0-9_.~-]+")
_VAR_RE = re.compile(r"\$(?:\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")
#: The variables an ``auth-signin`` may hold (``_expand``).
SIGNIN_VARIABLES = frozenset({"host", "http_host", "best_http_host", "scheme",
                              "pass_access_scheme", "request_uri", "escaped_request_uri"})
#: ngx_http_headers_filter_module: add_header without ``always`` applies to these statuses.
_ADD_HEADER_STATUSES = frozenset({200, 201, 204, 206, 301, 302, 303, 304, 307, 308})
#: The client's headers the subrequest does not carry: replaced or emptied by nginx.tmpl's
#: auth location, or by nginx's proxy defaults (Connection, Keep-Alive, TE, Expect, Upgrade,
#: the body's framing); and, as on the way to a backend, ``Proxy`` (httpoxy) and the
#: ``ssl-client-*`` headers (nginx.tmpl's auth location sets them from the handshake on a
#: server with ``auth-tls-*``: a client's own never pass, proxy/_clientcert.py).
_REPLACED = frozenset({
    b"host", b"content-length", b"transfer-encoding", b"connection", b"keep-alive", b"te",
    b"expect", b"upgrade", b"x-forwarded-proto", b"x-original-url", b"x-original-method",
    b"x-sent-from", b"x-real-ip", b"x-forwarded-for", b"x-auth-request-redirect",
    b"x-request-id", b"proxy"}) | CLIENT_CERT_HEADERS
_METHOD_REPLACED = frozenset({b"x-original-uri", b"x-scheme"})
#: Never set on the backend request from the auth answer (``auth-response-headers``): the
#: body's framing and the hop-by-hop headers, which the core writes itself. nginx's
#: ``proxy_set_header 'Content-Length' $authHeaderN`` sends the auth answer's value (its
#: "Content-Length: 0", its "Transfer-Encoding: chunked") with the client's body, which the
#: backend then reads as another request: ingresslib warns and ignores such a name.
_NOT_FROM_AUTH = REQUEST_DROP
#: The client's headers the subrequest carries only from a trusted peer (use-forwarded-headers
#: and proxy-real-ip-cidr): those the core writes for a backend (FORWARDED_DROP), and the
#: forward-auth spellings of the original request (``X-Forwarded-Uri``, ``X-Forwarded-Method``)
#: that auth services (oauth2-proxy behind a reverse proxy) read as the proxy's own.
_UNTRUSTED_DROP = FORWARDED_DROP | {b"x-forwarded-uri", b"x-forwarded-method"}


@dataclass(frozen=True, slots=True)
class ExtAuth:
    """One location's external authentication (``RouteOptions.ext_auth``)."""

    url: str
    #: Where the subrequest goes: (host, port), TLS for ``https``.
    endpoint: tuple[str, int]
    tls: bool
    #: The ``Host`` header (authreq/main.go: ``authURL.Hostname()``, no port).
    host: bytes
    #: The request target (the URL's path and query; ``/`` without a path).
    target: bytes
    #: ``auth-method`` (None: GET, without X-Original-URI / X-Scheme).
    method: bytes | None = None
    signin: str | None = None
    signin_param: str = "rd"
    #: ``auth-response-headers`` as written (copied from the auth answer to the backend).
    response_headers: tuple[str, ...] = ()
    request_redirect: bytes | None = None
    always_set_cookie: bool = False
    #: ``auth-proxy-set-headers``: the ConfigMap ``namespace/name`` (None: none).
    proxy_set_headers: str | None = None
    #: The ConfigMap's ``no-auth-locations``, left to the request (proxy/_globalauth.py
    #: ``effective_auth``) where the options were parsed without the rule path; else ().
    no_auth_locations: tuple[str, ...] = ()
    #: ``auth-cache-key`` / ``auth-cache-duration`` (proxy/_authcache.py); None: no cache.
    cache: AuthCacheConfig | None = None
    #: ``auth-keepalive*`` (proxy/_authkeepalive.py); None: a connection per subrequest.
    keepalive: AuthKeepalive | None = None


def _url_text(value: str) -> str:
    """An auth-url / auth-signin value as authreq/main.go reads it: ``GetStringAnnotation``
    (``normalizeString``: each line TrimSpace-d, a line break kept); ValueError for white
    space left or a character outside printable ASCII (url.Parse refuses a control
    character, the annotation validator ``URLWithNginxVariableRegex`` any of them)."""
    v = normalize_string(value)
    if not v or any(c.isspace() or not c.isascii() or ord(c) < 32 for c in v):
        raise ValueError("not a valid URL" + (" (it holds a line break: a YAML block scalar "
                                              "\"|\" ends in one)" if "\n" in v else ""))
    return v


def _url(value: str) -> tuple[str, tuple[str, int], bool, bytes, bytes]:
    v = _url_text(value)
    if "$" in v:
        raise ValueError("nginx variables (\"$...\") are not supported by ingresslib in auth-url")
    parts = urlsplit(v)
    scheme = parts.scheme.lower()
    if not scheme:
        raise ValueError("url scheme is empty")
    if not parts.netloc or not parts.hostname:
        raise ValueError("url host is empty")
    if ".." in parts.netloc:
        raise ValueError("invalid url host")
    if scheme not in ("http", "https"):
        raise ValueError(f"scheme {scheme!r}: only http and https can be proxied")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("invalid port") from None
    tls = scheme == "https"
    host = parts.hostname
    target = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    return v, (host, port or (443 if tls else 80)), tls, host.encode("ascii"), \
        target.encode("ascii")


def _redirect_ok(value: str) -> bool:
    """An ``auth-request-redirect`` (``global-auth-request-redirect``) value, trimmed, that
    can be sent as the X-Auth-Request-Redirect header: printable ASCII, not empty."""
    return bool(value) and not any(ord(c) < 32 or ord(c) == 127 or not c.isascii()
                                   for c in value)


def _signin(value: str) -> str:
    v = _url_text(value)
    for m in _VAR_RE.finditer(v):
        name = m.group(1) or m.group(2)
        if name not in SIGNIN_VARIABLES:
            raise ValueError(f"nginx variable ${name} is not supported by ingresslib (only "
                             + ", ".join("$" + n for n in sorted(SIGNIN_VARIABLES)) + ")")
    if "$" in _VAR_RE.sub("", v):
        raise ValueError("a \"$\" that starts no variable")
    parts = urlsplit(_VAR_RE.sub("x", v))
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        raise ValueError("an absolute http:// or https:// URL")
    return v


def parse_ext_auth(annotations: Mapping[str, str], prefix: str,
                   warn: Callable[[str, str], None], deny_alone: bool = True
                   ) -> tuple[ExtAuth | None, str | None]:
    """``(config, None)``, ``(None, None)`` without ``auth-url``, or ``(None, reason)`` when
    the location is denied (503): ingress-nginx denies it (an invalid ``auth-url``...), or,
    with ``deny_alone`` (``deny_unenforced_access_annotations``), another external-auth
    annotation is set without ``auth-url`` (no effect in ingress-nginx; ingresslib fails
    closed, as for an ``auth-*`` annotation without what enables it). ``warn(key, message)``
    reports each problem."""
    def get(name: str) -> str | None:
        return annotations.get(prefix + name)

    raw_url = get("auth-url")
    if raw_url is None:
        reason: str | None = None
        for name in sorted(EXTAUTH_ANNOTATIONS | EXTAUTH_IGNORED):
            if prefix + name in annotations:
                if deny_alone:
                    warn(prefix + name, "has no effect without nginx.ingress.kubernetes.io/"
                         "auth-url: the Ingress's routes answer 503 (an auth-* annotation "
                         "without what enables it fails closed); set "
                         "deny-unenforced-access-annotations to \"false\" to serve them")
                    reason = reason or f"annotation {prefix}{name} without {prefix}auth-url"
                else:
                    warn(prefix + name, "has no effect without nginx.ingress.kubernetes.io/"
                         "auth-url; ignored")
        return None, reason
    suffix = ": the Ingress's routes answer 503 (ingress-nginx denies the location)"

    def deny(name: str, message: str) -> tuple[None, str]:
        warn(prefix + name, message + suffix)
        return None, f"annotation {prefix}{name}: {message}"

    try:
        url, endpoint, tls, host, target = _url(raw_url)
    except (ValueError, UnicodeError) as e:
        return deny("auth-url", f"could not parse auth-url annotation: {e}")
    method: bytes | None = None
    raw_method = get("auth-method")
    if raw_method:
        if raw_method not in _METHODS:
            return deny("auth-method", f"invalid HTTP method {raw_method!r}")
        method = raw_method.encode("ascii")
    headers: list[str] = []
    for h in (get("auth-response-headers") or "").split(","):
        h = trim_space(h)  # authreq/main.go: "header = strings.TrimSpace(header)"
        if h:
            if _HEADER_RE.fullmatch(h) is None:
                return deny("auth-response-headers", f"invalid headers list (header {h!r})")
            if _never_from_auth(h):
                warn(prefix + "auth-response-headers", f"header {h!r} frames the request or "
                     "is hop-by-hop: ignored (never set from the auth answer)")
                continue
            headers.append(h)
    set_ref: str | None = None
    raw_set = get("auth-proxy-set-headers")
    if raw_set:
        try:
            ns, name = _ref(raw_set, "auth-proxy-set-headers")
        except ValueError as e:
            return deny("auth-proxy-set-headers", str(e))
        set_ref = f"{ns}/{name}"
    signin: str | None = None
    raw_signin = get("auth-signin")
    if raw_signin is not None:
        try:
            signin = _signin(raw_signin)
        except ValueError as e:
            warn(prefix + "auth-signin", f"invalid value {raw_signin!r} ({e}); not set: a 401 "
                 "of the auth service goes to the client")
    param = "rd"
    raw_param = get("auth-signin-redirect-param")
    if raw_param is not None:
        if _PARAM_RE.fullmatch(normalize_string(raw_param)) is None:
            warn(prefix + "auth-signin-redirect-param", f"invalid value {raw_param!r}; using "
                 "the default rd")
        else:
            param = normalize_string(raw_param)
    redirect: bytes | None = None
    raw_redirect = get("auth-request-redirect")
    if raw_redirect is not None:
        v = normalize_string(raw_redirect)
        if not _redirect_ok(v):
            warn(prefix + "auth-request-redirect", f"invalid value {raw_redirect!r}; using "
                 "the default $request_uri")
        else:
            redirect = v.encode("ascii")
    always = False
    raw_always = get("auth-always-set-cookie")
    if raw_always is not None:
        b = parse_bool(raw_always)
        if b is None:
            warn(prefix + "auth-always-set-cookie", f"invalid boolean {raw_always!r}: must be "
                 "\"true\" or \"false\"; using the default false")
        else:
            always = b
    cache, cache_denied = parse_auth_cache(
        get("auth-cache-key"), get("auth-cache-duration"), prefix + "auth-cache-key",
        prefix + "auth-cache-duration", warn)
    if cache_denied is not None:
        # authreq/main.go ParseStringToCacheDurations: an invalid item is a LocationDenied.
        return deny("auth-cache-duration", cache_denied.partition(": ")[2])
    keepalive = parse_auth_keepalive(get, prefix, warn)  # auth-keepalive* (_authkeepalive.py)
    return ExtAuth(url, endpoint, tls, host, target, method, signin, param, tuple(headers),
                   redirect, always, set_ref, cache=cache, keepalive=keepalive), None


# ------------------------------------------------------------------------ pure pieces
def _alias(name: bytes) -> bytes:
    """A lower-cased header name as a CGI/WSGI server and nginx's ``$upstream_http_*``
    variables read it: ``_`` and ``-`` alike."""
    return name.replace(b"_", b"-") if b"_" in name else name


def _never_from_auth(name: str) -> bool:
    """An ``auth-response-headers`` name (valid: ``_HEADER_RE``) that is never set from the
    auth answer (``_NOT_FROM_AUTH``, either spelling: ``Content_Length`` too): the annotation
    warns and ignores it, ``global-auth-response-headers`` refuses it (proxy/_globalauth.py)."""
    return _alias(name.lower().encode("ascii")) in _NOT_FROM_AUTH


def _client_dropped(name: bytes, drop: frozenset[bytes], settings: Any, trusted: bool,
                    ff_name: bytes = b"x-forwarded-for") -> bool:
    """Whether the client's header ``name`` (lower-cased) stays out of the subrequest: one
    the auth location sets (``drop``), a forwarded header of an untrusted peer (as on the way
    to a backend: it would reach the auth service as if this hop had written it), a name
    nginx ignores (``ignore_invalid_headers``: nginx drops it before any location), or, with
    underscores allowed, an underscore spelling of a header the subrequest sets or of the
    forwarded-for header ``ff_name`` (lower-cased ``forwarded-for-header``)."""
    if name in drop or (not trusted and name in _UNTRUSTED_DROP):
        return True
    odd = name.translate(None, HEADER_NAME_CHARS)
    if not odd:
        return False
    if settings is None or odd_name_dropped(name, odd, None, ff_name, settings):
        return True
    return b"_" in odd and _alias(name) in drop


def escape_uri(value: str) -> str:
    """set-misc's ``set_escape_uri`` ($escaped_request_uri): all but ``A-Za-z0-9-._~``."""
    return quote(value, safe="-._~")


def _expand(text: str, variables: Mapping[str, str]) -> str:
    return _VAR_RE.sub(lambda m: variables.get(m.group(1) or m.group(2), ""), text)


def signin_url(auth: ExtAuth, variables: Mapping[str, str]) -> str:
    """The 302's Location: template.go ``buildAuthSignURL``, then nginx's variables."""
    assert auth.signin is not None
    url = auth.signin
    query = urlsplit(url).query
    param = auth.signin_param
    rd = "$pass_access_scheme://$http_host$escaped_request_uri"
    if not query:
        url = f"{url}?{param}={rd}"
    elif not any(p.partition("=")[0] == param and p.partition("=")[2]
                 for p in query.split("&")):
        url = f"{url}&{param}={rd}"
    return _expand(url, variables)


def subrequest_head(auth: ExtAuth, items: Any, *, method: bytes, request_uri: str,
                    scheme: str, pass_scheme: str, http_host: str, client_ip: str | None,
                    forwarded_for: bytes, set_pairs: tuple[tuple[bytes, bytes], ...] = (),
                    settings: Any = None, trusted: bool = False,
                    cert_lines: list[bytes] | tuple[bytes, ...] = (),
                    keepalive: bool = False, request_id: bytes | None = None) -> bytes:
    """The auth subrequest's head: the client's headers (``items``: h11's (raw, name, value))
    but those nginx.tmpl's auth location replaces and those ``_client_dropped`` keeps out
    (``settings``: the ProxySettings whose header name policy applies, None: nginx's
    defaults; ``trusted``: the peer's forwarded headers are believed), then its own
    (``cert_lines``: the ``ssl-client-*`` lines of a server with ``auth-tls-*``;
    ``keepalive``: ``proxy_set_header Connection ""``, no ``Connection: close``;
    ``request_id``: the request's id, ``$req_id``, None: none, as nginx's proxy_set_header
    sends no empty header; the client's X-Request-ID lines are never passed)."""
    drop = _REPLACED | _METHOD_REPLACED if auth.method is not None else _REPLACED
    if set_pairs:
        drop = drop | {n.lower() for n, _ in set_pairs}
    ff_name = b"x-forwarded-for" if settings is None else \
        settings.forwarded_for_header.lower().encode("latin-1")
    if not trusted and ff_name not in drop:
        # The header a ``forwarded-for-header`` other than X-Forwarded-For names
        # (CF-Connecting-IP) is the client's address as a proxy in front writes it: from a
        # peer outside proxy-real-ip-cidr the client wrote it, and the auth service would
        # read a client-chosen address under the name the operator gave the real one (the
        # backend never gets it: read as the chain, _headers.request_header_kind). nginx's
        # auth location passes it (proxy_pass_request_headers on), as from a trusted hop here.
        drop = drop | {ff_name}
    lines = [b"%s %s HTTP/1.1\r\nhost: %s\r\n" % (auth.method or b"GET", auth.target,
                                                  auth.host)]
    lines += [b"%s: %s\r\n" % (raw, value) for raw, name, value in items
              if not _client_dropped(name, drop, settings, trusted, ff_name)]
    uri = request_uri.encode("latin-1")
    lines.append(b"x-original-url: %s://%s%s\r\n" % (scheme.encode("ascii"),
                                                      http_host.encode("latin-1"), uri))
    lines.append(b"x-original-method: %s\r\nx-sent-from: nginx-ingress-controller\r\n" % method)
    if client_ip:
        lines.append(b"x-real-ip: %s\r\n" % client_ip.encode("ascii"))
    if forwarded_for:
        lines.append(b"x-forwarded-for: %s\r\n" % forwarded_for)
    lines.append(b"x-auth-request-redirect: %s\r\n" % (auth.request_redirect or uri))
    if request_id is not None:
        lines.append(b"x-request-id: %s\r\n" % request_id)
    if auth.method is not None:
        lines.append(b"x-original-uri: %s\r\n" % uri)
        if pass_scheme:
            lines.append(b"x-scheme: %s\r\n" % pass_scheme.encode("latin-1"))
    lines += cert_lines
    lines += [b"%s: %s\r\n" % (n, v) for n, v in set_pairs if v]
    lines.append(b"\r\n" if keepalive else b"connection: close\r\n\r\n")
    return b"".join(lines)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the auth answer decides: ``status`` 0 (go on) or the answer (401, 403, 500)."""

    status: int
    #: The auth-response-headers to set on the upstream request (value b"": not sent).
    headers: tuple[tuple[bytes, bytes], ...] = ()
    cookies: tuple[bytes, ...] = ()
    www_authenticate: tuple[bytes, ...] = ()


FAILED = Verdict(500)


def verdict(auth: ExtAuth, response: h11.Response) -> Verdict:
    """The auth answer's head read as ngx_http_auth_request_handler reads it."""
    status = response.status_code
    items = response.headers._full_items
    if items and has_control(b"".join([item[2] for item in items])):
        # A control character in a header value (h11 lets all but NUL through) would reach
        # the client or the backend: an invalid answer, as the core takes an upstream's
        # (502 there; the subrequest's failure is auth_request's 500).
        return FAILED
    cookies = tuple(v for _, n, v in items if n == b"set-cookie")
    pairs = []
    for name in auth.response_headers:
        key = _alias(name.lower().encode("ascii"))
        # nginx >= 1.23 $upstream_http_*: repeated headers joined with ", "; the variable's
        # name matches a header's with "-" read as "_" (ngx_http_variable_unknown_header).
        values = [v for _, n, v in items if _alias(n) == key]
        pairs.append((name.encode("ascii"), b", ".join(values)))
    if 200 <= status < 300:
        return Verdict(0, tuple(pairs), cookies)
    if status == 401:
        return Verdict(401, (), cookies, tuple(v for _, n, v in items if n == b"www-authenticate"))
    if status == 403:
        return Verdict(403, (), cookies)
    return Verdict(500, (), cookies)


def with_auth_headers(up_head: bytes, pairs: tuple[tuple[bytes, bytes], ...]) -> bytes:
    """``up_head`` (an upstream request head) with the auth-response-headers set: the
    client's headers of those names dropped, the auth answer's values added (none when
    empty: nginx's proxy_set_header sends no empty header)."""
    pairs = tuple(p for p in pairs if _alias(p[0].lower()) not in _NOT_FROM_AUTH)
    if not pairs:
        return up_head
    first, _, rest = up_head[:-2].partition(b"\r\n")
    # A client's underscore spelling too ("X_User", with enable-underscores-in-headers): a
    # CGI/WSGI backend reads it as the auth service's X-User (HTTP_X_USER).
    names = {_alias(n.lower()) for n, _ in pairs}
    lines = [line for line in rest.split(b"\r\n") if line
             and _alias(line.split(b":", 1)[0].strip().lower()) not in names]
    lines += [b"%s: %s" % (n, v) for n, v in pairs if v]
    return first + b"\r\n" + b"".join(line + b"\r\n" for line in lines) + b"\r\n"


def auth_add_cookies(conn: Any, req: Any, status: int,
                headers: list[tuple[bytes, bytes, bytes]]) -> None:
    """``add_header Set-Cookie $auth_cookie [always]`` on an answer to ``req``."""
    held = conn._auth_cookie
    if held is None or held[0] is not req:
        return
    _, cookies, always = held
    if always or status in _ADD_HEADER_STATUSES:
        headers.extend((b"set-cookie", b"set-cookie", c) for c in cookies)


# ------------------------------------------------------------------------ the core's side
class AuthCall:
    """The subrequest under way for a ``ClientConnection``'s current request."""

    __slots__ = ("conn_id", "req", "event", "reader", "auth", "head_bytes", "prior",
                 "cache_key", "reused", "got", "pending", "answer")

    def __init__(self, conn_id: int, req: Any, event: Any, auth: ExtAuth,
                 prior: tuple[int, bytes | None] | None = None) -> None:
        self.conn_id = conn_id
        self.req = req
        self.event = event
        self.auth = auth
        #: ``satisfy: any``: the earlier checks' refusal (status, challenge), answered unless
        #: the auth service lets the request in (proxy/_satisfy.py ``combine``); else None.
        self.prior = prior
        self.reader: _H11Reader | None = None
        #: The answer's head bytes read so far (1xx heads included).
        self.head_bytes = 0
        #: Where the answer goes in the auth cache (proxy/_authcache.py); None: not cached.
        self.cache_key: bytes | None = None
        #: auth-keepalive (proxy/_authkeepalive.py): the connection came from the pool; any
        #: byte of the answer received; the verdict of a head whose body is still being read.
        self.reused = False
        self.got = False
        self.pending: Verdict | None = None
        #: auth-keepalive: that head, put in the auth cache once its body is read whole
        #: (as IngressASGI's; nginx's proxy_cache keeps no answer cut mid-body).
        self.answer: h11.Response | None = None


def _variables(conn: Any, req: Any, event: Any) -> dict[str, str]:
    items = event.headers._full_items
    http_host = b", ".join(v for _, n, v in items if n == b"host").decode("latin-1")
    scheme = conn.scheme
    if conn._peer_trusted and conn.settings.use_forwarded_headers:
        pass_scheme = conn._forwarded_scheme(event)[0]
    else:
        pass_scheme = conn.pass_scheme  # https for a trusted PROXY protocol port 443
    return signin_variables(req.host, http_host, scheme, pass_scheme, req.original_uri)


def signin_variables(host: str, http_host: str, scheme: str, pass_scheme: str,
                     request_uri: str) -> dict[str, str]:
    """The nginx variables an ``auth-signin`` may hold (``SIGNIN_VARIABLES``), for the proxy
    core and IngressASGI (_asgi_extauth.py) alike."""
    return {"host": host, "http_host": http_host, "best_http_host": http_host or host,
            "scheme": scheme, "pass_access_scheme": pass_scheme, "request_uri": request_uri,
            "escaped_request_uri": escape_uri(request_uri)}


def auth_start(conn: Any, req: Any, event: Any, now: float,
               prior: tuple[int, bytes | None] | None = None) -> bool:
    """Send ``req`` (routed, past its access checks) to its auth service first: True when
    the subrequest went out (the request waits for its verdict), False when it passed
    already. ``prior``: with ``satisfy: any``, the earlier checks' refusal (``AuthCall``)."""
    opts = req.opts
    auth: ExtAuth | None = opts.ext_auth
    if auth is None:
        return False
    if auth.no_auth_locations:
        from ._globalauth import effective_auth  # (no-auth-locations: the rule path's test)

        if effective_auth(auth, req.decision.match) is None:
            return False
    ok = conn._auth_ok
    if ok is not None and ok[0] is req:
        return False
    key: bytes | None = None
    if auth.cache is not None:
        key = request_key(auth, req.decision.match, req.method_s, req.host_raw, req.path,
                          req.query, event.headers, req.client_ip)
        if key is not None and (auth.proxy_set_headers is None or set_headers_for(
                auth.proxy_set_headers).resolve(config_maps_of(conn.proxy.router))[1] is None):
            # (a missing auth-proxy-set-headers ConfigMap: the subrequest path's 503)
            hit = cache_of(conn.proxy).get(key, now)
            if hit is not None:
                return _cached(conn, req, event, auth, prior, hit, now)
    from ._actions import OpenUpstream  # (_actions imports _annotations, which imports this)

    conn._next_id += 1
    call = conn._auth = AuthCall(conn._next_id, req, event, auth, prior)
    call.cache_key = key
    # (an https auth URL: the server block's proxy_ssl_*, proxy/_proxy_ssl.py auth_tls)
    conn._out.append(OpenUpstream(call.conn_id, auth.endpoint, auth.tls, opts.connect_timeout,
                                  opts.send_timeout, auth.keepalive is not None,
                                  auth_tls(opts, auth) if auth.tls else None, auth.keepalive))
    return True


def auth_owns(conn: Any, conn_id: int) -> bool:
    call = conn._auth
    return call is not None and call.conn_id == conn_id


def auth_connected(conn: Any, now: float, reused: bool = False) -> list[Any]:
    call: AuthCall = conn._auth
    call.reused = reused
    req, event, auth = call.req, call.event, call.auth
    s = conn.settings
    variables = _variables(conn, req, event)
    items = event.headers._full_items
    pairs: tuple[tuple[bytes, bytes], ...] = ()
    if auth.proxy_set_headers is not None:
        sh = set_headers_for(auth.proxy_set_headers)
        cms = config_maps_of(conn.proxy.router)
        pairs = sh.headers(cms)
        if not pairs and sh.resolve(cms)[1] is not None:
            # authreq/main.go: "unable to find configMap": the location is denied.
            _finish(conn, Verdict(503), now)
            return conn._flush()  # type: ignore[no-any-return]
    peer = (conn.peer_ip or "").encode("ascii")
    client = (req.client_ip or "").encode("ascii")
    incoming = b", ".join(v for _, n, v in items if n == b"x-forwarded-for")
    ff = forwarded_for_value(s, incoming, peer, client)
    cert_auth = conn._cert_auth
    cert_lines = upstream_lines(cert_auth[1], conn.client_cert, conn.tls) \
        if cert_auth is not None and cert_auth[0] is req else []
    head = subrequest_head(
        auth, items, method=req.method, request_uri=req.original_uri, scheme=conn.scheme,
        pass_scheme=variables["pass_access_scheme"], http_host=variables["http_host"],
        client_ip=req.client_ip, forwarded_for=ff, set_pairs=pairs, settings=s,
        trusted=conn._peer_trusted and s.use_forwarded_headers, cert_lines=cert_lines,
        keepalive=auth.keepalive is not None, request_id=_request_id(conn, req))
    from ._actions import SendUpstream, TimerKind

    # nginx.tmpl's auth location: "proxy_buffer_size {{ $location.Proxy.BufferSize }}": the
    # auth service's answer head is bounded by the location's proxy-buffer-size, as a
    # backend's (_connection.upstream_connected); the heads together as in _pump.
    opts = req.opts
    reader = call.reader = _H11Reader(
        True, opts.proxy_buffer_size if opts is not None else s.proxy_buffer_size)
    reader.method = auth.method or b"GET"
    conn._out.append(SendUpstream(call.conn_id, head))
    conn._set_timer(TimerKind.UPSTREAM_READ, req.opts.read_timeout)
    return conn._flush()  # type: ignore[no-any-return]


def _request_id(conn: Any, req: Any) -> bytes | None:
    """``$req_id`` of ``req`` for its auth subrequest (nginx.tmpl's auth location:
    "proxy_set_header X-Request-ID $req_id"): chosen once per request
    (``ClientConnection._local_request_id``, the backend's rule) and kept as
    ``req.request_id``, which the backend's head (``_build_upstream_headers``) and the access
    log then reuse: a retried subrequest (``_retry``) and the backend get the same id."""
    rid: str | None = req.request_id
    if rid is None:
        rid = req.request_id = conn._local_request_id(req)
    return None if rid is None else rid.encode("latin-1")


def auth_data(conn: Any, chunk: bytes, now: float) -> list[Any]:
    call: AuthCall = conn._auth
    reader = call.reader
    if reader is None:
        return []
    call.got = True
    reader.receive_data(chunk)
    _pump(conn, call, now)
    if conn._auth is call and call.pending is not None:
        # auth-keepalive reads the answer's body: proxy_read_timeout runs again from each
        # read, as for a backend's body (ngx_event_pipe_read_upstream re-arms
        # p->read_timeout per read). The head keeps the one deadline armed once the
        # subrequest was sent (ngx_http_upstream_process_header: "#if 0 ngx_add_timer").
        from ._actions import TimerKind

        if conn._timer is TimerKind.UPSTREAM_READ:
            conn._set_timer(TimerKind.UPSTREAM_READ, call.req.opts.read_timeout)
    return conn._flush()  # type: ignore[no-any-return]


def _pump(conn: Any, call: AuthCall, now: float) -> None:
    reader = call.reader
    assert reader is not None
    while True:
        before = len(reader._buf._data)
        try:
            event = reader.next_event()
        except h11.RemoteProtocolError:
            _finish(conn, FAILED, now)
            return
        t = type(event)
        if t is h11.Response or t is h11.InformationalResponse:
            # As the core reads a backend's (``_pump_upstream``): each head by itself is
            # bounded by the location's proxy-buffer-size (the reader's limit, auth_connected),
            # a head that arrived whole in one read too (h11 refuses only an incomplete one),
            # and all the heads up to the final one together by max_response_header_size (or
            # proxy-buffer-size, if larger); nginx's "upstream sent too big header" fails the
            # subrequest (502), which auth_request answers with 500.
            n = before - len(reader._buf._data)
            call.head_bytes += n
            limit = reader._max
            if call.head_bytes > limit and (
                    n > limit or call.head_bytes > conn.settings.max_response_header_size):
                req = call.req
                log_too_big(conn.proxy.logger, limit if n > limit else
                            conn.settings.max_response_header_size, call.auth.endpoint,
                            req.host, f"{req.method_s} {req.original_uri} HTTP/"
                            f"{req.http_version}", "proxy-buffer-size" if n > limit else
                            "max_response_header_size, the heads together")
                _finish(conn, FAILED, now)
                return
            if t is h11.Response and limit < BODY_LINE_LIMIT:
                # (auth-keepalive reads the answer's body: its chunk lines are no head)
                reader._max = BODY_LINE_LIMIT
        if t is h11.Response:
            v = verdict(call.auth, event)
            if call.auth.keepalive is None or v is FAILED:
                if call.cache_key is not None and v is not FAILED:
                    remember(conn.proxy, call.cache_key, call.auth, event, v, now)
                _finish(conn, v, now)
                return
            call.pending = v  # auth-keepalive: the answer is read to its end first
            call.answer = event
            continue
        if t is h11.Data:
            continue
        if t is h11.EndOfMessage and call.pending is not None:
            if call.cache_key is not None and call.answer is not None:
                remember(conn.proxy, call.cache_key, call.auth, call.answer, call.pending, now)
            _finish(conn, call.pending, now, reusable(reader))
            return
        if t is h11.InformationalResponse:
            if event.status_code == 101:
                # nginx takes a 101 as the subrequest's final status: "auth request
                # unexpected status", 500 (not a wait for another answer).
                _finish(conn, FAILED, now)
                return
            continue
        if t is h11.ConnectionClosed:
            _finish(conn, FAILED, now)
            return
        return  # NEED_DATA / PAUSED


def auth_eof(conn: Any, now: float) -> list[Any]:
    call: AuthCall = conn._auth
    if call.reused and not call.got:
        return _retry(conn, call)
    if call.reader is not None:
        call.reader.receive_data(b"")
        _pump(conn, call, now)
        if conn._auth is call:
            _finish(conn, FAILED, now)
    else:
        _finish(conn, FAILED, now)
    return conn._flush()  # type: ignore[no-any-return]


def auth_failed(conn: Any, now: float, timed_out: bool = False) -> list[Any]:
    """The connect failed or timed out: nginx's subrequest answers 502/504, which
    auth_request turns into 500."""
    call: AuthCall = conn._auth
    if call.reused and not call.got and not timed_out:
        return _retry(conn, call)
    _finish(conn, FAILED, now)
    return conn._flush()  # type: ignore[no-any-return]


def _retry(conn: Any, call: AuthCall) -> list[Any]:
    """auth-keepalive: a pooled connection that failed or closed before any byte of the
    answer (the auth service had closed it) carries the subrequest once more on a new
    connection (nginx's ngx_http_upstream_next: "if (u->peer.cached && ft_type ==
    NGX_HTTP_UPSTREAM_FT_ERROR) { u->peer.tries++; }": an error, not a timeout)."""
    from ._actions import CloseUpstream, OpenUpstream, TimerKind

    opts = call.req.opts
    conn._out.append(CloseUpstream(call.conn_id, False))
    if conn._timer is TimerKind.UPSTREAM_READ:
        conn._set_timer(None, None)
    conn._next_id += 1
    call.conn_id, call.reused, call.reader, call.head_bytes = conn._next_id, False, None, 0
    conn._out.append(OpenUpstream(call.conn_id, call.auth.endpoint, call.auth.tls,
                                  opts.connect_timeout, opts.send_timeout, False,
                                  auth_tls(opts, call.auth) if call.auth.tls else None,
                                  call.auth.keepalive))
    return conn._flush()  # type: ignore[no-any-return]


def auth_timed_out(conn: Any, now: float) -> None:
    """proxy-read-timeout ran out waiting for the auth answer (the subrequest's 504): 500.
    The caller flushes."""
    _finish(conn, FAILED, now)


def auth_drop(conn: Any) -> None:
    """The request ends otherwise (the client left, a 413...): close the subrequest."""
    from ._actions import CloseUpstream

    call = conn._auth
    if call is not None:
        conn._auth = None
        conn._out.append(CloseUpstream(call.conn_id, False))


def remember(owner: Any, key: bytes, auth: ExtAuth, response: h11.Response, v: Verdict,
             now: float) -> None:
    """Keep the auth answer ``response`` (read as ``v``) in ``owner``'s cache for as long as
    nginx's proxy_cache would (proxy/_authcache.py ``lifetime``)."""
    assert auth.cache is not None
    seconds = lifetime(auth.cache.valid, response.status_code, response.headers._full_items)
    if seconds > 0:
        cache_of(owner).put(key, v, seconds, now)


def _cached(conn: Any, req: Any, event: Any, auth: ExtAuth,
            prior: tuple[int, bytes | None] | None, v: Verdict, now: float) -> bool:
    """A cached auth answer decides ``req`` without a subrequest: False (let in, the access
    phase goes on with its auth-response-headers) or True (answered), as ``_finish``."""
    conn._auth_cookie = (req, v.cookies, auth.always_set_cookie) if v.cookies else None
    if v.status == 0:
        conn._auth_ok = (req, v.headers)
        return False
    v = combine(prior, v)  # satisfy any (proxy/_satisfy.py)
    status, extra, always = denial(auth, v, lambda: _variables(conn, req, event))
    if always and v.cookies:
        conn._auth_cookie = (req, v.cookies, True)
    conn._local_response(req, status, now, extra or None)
    return True


def _finish(conn: Any, v: Verdict, now: float, reuse: bool = False) -> None:
    from ._actions import CloseUpstream, TimerKind

    call: AuthCall = conn._auth
    conn._auth = None
    conn._out.append(CloseUpstream(call.conn_id, reuse))
    req, event, auth = call.req, call.event, call.auth
    if conn._timer is TimerKind.UPSTREAM_READ:
        conn._set_timer(None, None)
    if conn._req is not req or req.answered or req.done or conn.closed:
        return
    conn._auth_cookie = (req, v.cookies, auth.always_set_cookie) if v.cookies else None
    if v.status == 0:
        conn._auth_ok = (req, v.headers)
        conn._access_phase(req, event, now)
        return
    v = combine(call.prior, v)  # satisfy any (proxy/_satisfy.py)
    status, extra, always = denial(auth, v, lambda: _variables(conn, req, event))
    if always and v.cookies:
        conn._auth_cookie = (req, v.cookies, True)
    conn._local_response(req, status, now, extra or None)


def denial(auth: ExtAuth, v: Verdict, variables: Callable[[], Mapping[str, str]]
           ) -> tuple[int, list[tuple[bytes, bytes]], bool]:
    """The answer to a refused request (``v.status`` not 0), for the proxy core and
    IngressASGI alike: ``(status, headers, Set-Cookie on it whatever the status)``."""
    extra: list[tuple[bytes, bytes]] = []
    status = v.status
    if status == 401 and auth.signin is not None:
        # error_page 401 = <named location>: "return 302 <buildAuthSignURL>", whose add_header
        # Set-Cookie applies to the 302.
        location = signin_url(auth, variables())
        return 302, [(b"location", location.encode("latin-1"))], True
    if status == 401:
        extra += [(b"www-authenticate", w) for w in v.www_authenticate]
    return status, extra, auth.always_set_cookie


def adds_cookies(status: int, always: bool) -> bool:
    """``add_header Set-Cookie $auth_cookie [always]``: whether an answer of ``status`` gets
    the auth answer's Set-Cookie."""
    return always or status in _ADD_HEADER_STATUSES


def auth_upstream_head(conn: Any, req: Any) -> None:
    """The backend request of an authenticated ``req`` gets the auth-response-headers."""
    ok = conn._auth_ok
    if ok is not None and ok[0] is req and ok[1]:
        req.up_head = with_auth_headers(req.up_head, ok[1])
