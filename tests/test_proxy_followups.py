"""Proxy-core follow-ups of the annotations review (tests/test_annotations_review.py): what the
review found in the core (proxy/_connection.py) and could not fix there.

Every expected value below is written from the ingress-nginx source quoted next to the test,
not from ingresslib's output.
"""

from __future__ import annotations

import pytest

import ingresslib
from ingresslib.proxy import ProxySettings
from ingresslib.proxy._annotations import PREFIX, parse_route_options

from _proxy_harness import PEER, ProxyPair, Route, location, status_of

H = b"Host: example.test\r\n"
TLS = {"example.test"}
#: use-forwarded-headers, and the harness's peer inside proxy-real-ip-cidr: a trusted hop.
TRUSTING = ProxySettings(use_forwarded_headers=True, proxy_real_ip_cidr=(PEER[0] + "/32",))
#: use-forwarded-headers, but the peer is outside proxy-real-ip-cidr: not trusted.
NOT_TRUSTED = ProxySettings(use_forwarded_headers=True, proxy_real_ip_cidr=("192.0.2.0/24",))


def upstream_headers(pair: ProxyPair, name: bytes) -> list[bytes]:
    head = bytes(pair.upstreams[0].raw).split(b"\r\n\r\n")[0]
    out = []
    for line in head.split(b"\r\n")[1:]:
        n, _, v = line.partition(b":")
        if n.strip().lower() == name:
            out.append(v.strip())
    return out


def send(route: Route, request: bytes, **kw: object) -> tuple[ProxyPair, bytes]:
    pair = ProxyPair([route], **kw)  # type: ignore[arg-type]
    return pair, pair.send(request)


# --- 1. X-Forwarded-Prefix only with a rewrite ------------------------------------------------
#
# kubernetes/ingress-nginx internal/ingress/controller/template/template.go, buildProxyPass:
#   // if the path in the ingress rule is equals to the target: no special rewrite
#   if path == location.Rewrite.Target {
#       return defProxyPass
#   }
#   if len(location.Rewrite.Target) > 0 {
#       var xForwardedPrefix string
#       if len(location.XForwardedPrefix) > 0 {
#           xForwardedPrefix = fmt.Sprintf("proxy_set_header X-Forwarded-Prefix \"%s\";\n",
#               location.XForwardedPrefix)
#       }
#       return fmt.Sprintf(`
#   rewrite "(?i)%s" %s break;
#   %v%v %s%s;`, path, location.Rewrite.Target, xForwardedPrefix, proxyPass, proto, upstreamName)
#   }
#   // default proxy_pass
#   return defProxyPass
# (kubernetes/ingress-nginx#7880: the annotation does nothing without rewrite-target.)
def _prefix_sent(annotations: dict[str, str], path: str = "/") -> list[bytes]:
    ann = {PREFIX + k: v for k, v in annotations.items()}
    pair, out = send(Route(path, annotations=ann),
                     b"GET " + path.encode() + b"x HTTP/1.1\r\n" + H
                     + b"X-Forwarded-Prefix: /client\r\n\r\n")
    assert status_of(out) == 200
    return upstream_headers(pair, b"x-forwarded-prefix")


def test_x_forwarded_prefix_alone_sends_no_header() -> None:
    # No rewrite-target: defProxyPass, no proxy_set_header X-Forwarded-Prefix. The client's
    # own header is dropped all the same (ingresslib's choice, kept).
    assert _prefix_sent({"x-forwarded-prefix": "/svc"}) == []


def test_x_forwarded_prefix_with_a_rewrite_target_is_sent() -> None:
    assert _prefix_sent({"x-forwarded-prefix": "/svc", "rewrite-target": "/new"}) == [b"/svc"]


def test_x_forwarded_prefix_with_a_rewrite_target_equal_to_the_path_sends_none() -> None:
    # "if path == location.Rewrite.Target { return defProxyPass }": no rewrite, no prefix.
    assert _prefix_sent({"x-forwarded-prefix": "/svc", "rewrite-target": "/api/"},
                        path="/api/") == []


def test_a_client_x_forwarded_prefix_is_dropped_without_the_annotation() -> None:
    assert _prefix_sent({}) == []
    assert _prefix_sent({"rewrite-target": "/new"}) == []


# --- 2. The server-level app-root for "/" of a host whose rules do not cover "/" ---------------
#
# nginx.tmpl (server block): "{{ if not (empty $location.Rewrite.AppRoot) }} if ($uri = /) {
# return 302 $scheme://$http_host{{ $location.Rewrite.AppRoot }}; }" -- at the server level, so
# it answers every "/" of the server, also one no rule covers (tests/test_annotations_review.py
# section 6 checks Proxy._unrouted_redirect; this is the core's call of it, end to end).
def _router(*paths_and_annotations: tuple[str, dict[str, str]]) -> ingresslib.Router:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
           "spec": {"ports": [{"port": 80, "targetPort": 8080}]}}
    ings: list[dict[str, object]] = []
    for i, (path, ann) in enumerate(paths_and_annotations):
        ings.append({
            "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": f"i{i}", "creationTimestamp": f"2024-0{i + 1}-01T00:00:00Z",
                         "annotations": {PREFIX + k: v for k, v in ann.items()}},
            "spec": {"rules": [{"host": "shop.test", "http": {"paths": [
                {"path": path, "pathType": "Prefix",
                 "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}})
    return ingresslib.Router(ingresslib.Resources.from_dicts([*ings, svc]), seed=1)


def test_unrouted_slash_gets_the_server_app_root_end_to_end() -> None:
    pair = ProxyPair(router=_router(("/api", {"app-root": "/app"})))
    out = pair.send(b"GET / HTTP/1.1\r\nHost: shop.test:8080\r\n\r\n")
    # $scheme://$http_host: the Host as received, port included.
    assert status_of(out) == 302 and location(out) == b"http://shop.test:8080/app"


def test_unrouted_slash_app_root_names_this_hops_scheme() -> None:
    # $scheme is the connection's own, even when a trusted hop says X-Forwarded-Proto: https.
    pair = ProxyPair(router=_router(("/api", {"app-root": "/app"})), settings=TRUSTING)
    out = pair.send(b"GET / HTTP/1.1\r\nHost: shop.test\r\nX-Forwarded-Proto: https\r\n\r\n")
    assert status_of(out) == 302 and location(out) == b"http://shop.test/app"


def test_unrouted_other_paths_are_not_answered_with_the_app_root() -> None:
    pair = ProxyPair(router=_router(("/api", {"app-root": "/app"})))
    out = pair.send(b"GET /other HTTP/1.1\r\nHost: shop.test\r\n\r\n")
    assert status_of(out) == 404 and location(out) is None


# --- 3. ssl-redirect Location host under use-forwarded-headers --------------------------------
#
# kubernetes/ingress-nginx rootfs/etc/nginx/lua/lua_ingress.lua, _M.rewrite:
#   ngx.var.best_http_host = ngx.var.http_host or ngx.var.host
#   if config.use_forwarded_headers then
#     ...
#     -- Obtain best http host
#     if ngx.var.http_x_forwarded_host then
#       ngx.var.best_http_host = parse_x_forwarded_host()
#     end
#   end
#   ...
#   local uri = string_format("https://%s%s", redirect_host(), request_uri)
# parse_x_forwarded_host: "local hosts, err = ngx_re_split(ngx.var.http_x_forwarded_host, ",")
# ... return hosts[1]"; redirect_host: "local host_port, err =
# ngx_re_split(ngx.var.best_http_host, ":") ... return host_port[1];" (no port).
# Whether to redirect stays on the Host: redirect_to_https ends "return
# location_config.ssl_redirect and certificate_configured_for_current_request()", and
# rootfs/etc/nginx/lua/certificate.lua: "ngx.ctx.cert_configured_for_current_request =
# get_pem_cert_uid(ngx.var.host) ~= nil" ($host: from the Host, never X-Forwarded-Host).
def _redirect(request: bytes, settings: ProxySettings, annotations: dict[str, str] | None = None,
              tls_hosts: set[str] = TLS) -> bytes:
    ann = {PREFIX + k: v for k, v in (annotations or {}).items()}
    _, out = send(Route("/", annotations=ann), request, settings=settings, tls_hosts=tls_hosts)
    return out


def test_ssl_redirect_names_the_trusted_first_x_forwarded_host() -> None:
    out = _redirect(b"GET /o HTTP/1.1\r\n" + H + b"X-Forwarded-Host: public.test\r\n\r\n",
                    TRUSTING)
    assert status_of(out) == 308 and location(out) == b"https://public.test/o"


def test_ssl_redirect_forwarded_host_first_element_without_port() -> None:
    out = _redirect(b"GET /o HTTP/1.1\r\n" + H
                    + b"X-Forwarded-Host: public.test:8443, inner.test\r\n\r\n", TRUSTING)
    assert location(out) == b"https://public.test/o"
    # Repeated lines are one list ($http_x_forwarded_host joins them): the first line's wins.
    out = _redirect(b"GET /o HTTP/1.1\r\n" + H + b"X-Forwarded-Host: public.test\r\n"
                    b"X-Forwarded-Host: inner.test\r\n\r\n", TRUSTING)
    assert location(out) == b"https://public.test/o"


def test_ssl_redirect_ignores_x_forwarded_host_from_an_untrusted_peer() -> None:
    request = b"GET /o HTTP/1.1\r\n" + H + b"X-Forwarded-Host: evil.test\r\n\r\n"
    for settings in (NOT_TRUSTED, ProxySettings()):
        out = _redirect(request, settings)
        assert status_of(out) == 308 and location(out) == b"https://example.test/o"


def test_ssl_redirect_tls_decision_stays_on_the_host() -> None:
    # public.test has TLS, example.test (the Host) has none: no redirect, the request is
    # proxied; the other way round it is redirected, to the forwarded host.
    request = b"GET /o HTTP/1.1\r\n" + H + b"X-Forwarded-Host: public.test\r\n\r\n"
    assert status_of(_redirect(request, TRUSTING, tls_hosts={"public.test"})) == 200
    request = b"GET /o HTTP/1.1\r\nHost: public.test\r\nX-Forwarded-Host: example.test\r\n\r\n"
    assert status_of(_redirect(request, TRUSTING, tls_hosts={"public.test"})) == 308


def test_force_ssl_redirect_names_the_trusted_forwarded_host_too() -> None:
    out = _redirect(b"GET /o HTTP/1.1\r\n" + H + b"X-Forwarded-Host: public.test\r\n\r\n",
                    TRUSTING, {"force-ssl-redirect": "true"}, tls_hosts=set())
    assert status_of(out) == 308 and location(out) == b"https://public.test/o"


@pytest.mark.parametrize("value", [b"", b"a/b", b"user@public.test", b"a..b", b" , x"])
def test_an_invalid_forwarded_host_is_not_written_into_the_location(value: bytes) -> None:
    # ingresslib's choice: nginx writes whatever best_http_host holds ("https:///o" for an
    # empty one); here the Host is named instead.
    out = _redirect(b"GET /o HTTP/1.1\r\n" + H + b"X-Forwarded-Host: " + value + b"\r\n\r\n",
                    TRUSTING)
    assert status_of(out) == 308 and location(out) == b"https://example.test/o"


def test_app_root_keeps_the_host_as_received() -> None:
    # nginx.tmpl: "return 302 $scheme://$http_host{{ $location.Rewrite.AppRoot }}" --
    # $http_host, not best_http_host.
    out = _redirect(b"GET / HTTP/1.1\r\n" + H + b"X-Forwarded-Host: public.test\r\n\r\n",
                    TRUSTING, {"app-root": "/app"})
    assert status_of(out) == 302 and location(out) == b"http://example.test/app"


# --- 4. ssl-redirect Location target as received ---------------------------------------------
#
# lua_ingress.lua, _M.rewrite:
#   if redirect_to_https(location_config) then
#     local request_uri = ngx.var.request_uri
#     -- do not append a trailing slash on redirects unless enabled by annotations
#     if location_config.preserve_trailing_slash == false then
#       if string.byte(request_uri, -1, -1) == string.byte('/') then
#         request_uri = string.sub(request_uri, 1, -2)
# nginx $request_uri: "full original request URI (with arguments)", not normalised.
@pytest.mark.parametrize(("target", "expected"), [
    (b"/a/../b/./c%41", b"https://example.test/a/../b/./c%41"),
    (b"//x//y", b"https://example.test//x//y"),
    (b"/a/./b/?x=1", b"https://example.test/a/./b/?x=1"),
    (b"/a/./", b"https://example.test/a/."),       # one final "/" dropped, nothing else
    (b"/%7Euser", b"https://example.test/%7Euser"),
])
def test_ssl_redirect_location_is_the_target_as_received(target: bytes, expected: bytes) -> None:
    out = _redirect(b"GET " + target + b" HTTP/1.1\r\n" + H + b"\r\n", ProxySettings())
    assert status_of(out) == 308 and location(out) == expected


def test_ssl_redirect_raw_target_stays_on_our_host() -> None:
    # A target that reads like a network-path reference is a path after our authority:
    # "https://example.test//evil.test/x" is example.test's path "//evil.test/x".
    out = _redirect(b"GET //evil.test/x HTTP/1.1\r\n" + H + b"\r\n", ProxySettings())
    assert status_of(out) == 308 and location(out) == b"https://example.test//evil.test/x"


def test_ssl_redirect_raw_target_of_an_absolute_form_request() -> None:
    # $request_uri of "GET http://host/p HTTP/1.1" is the path and query (nginx parses the
    # scheme and host apart).
    out = _redirect(b"GET http://example.test/a/./b?q HTTP/1.1\r\n" + H + b"\r\n",
                    ProxySettings())
    assert status_of(out) == 308 and location(out) == b"https://example.test/a/./b?q"


def test_ssl_redirect_raw_target_keeps_preserve_trailing_slash() -> None:
    out = _redirect(b"GET /a/./ HTTP/1.1\r\n" + H + b"\r\n", ProxySettings(),
                    {"preserve-trailing-slash": "true"})
    assert location(out) == b"https://example.test/a/./"


def test_acme_challenge_is_decided_on_the_rule_path() -> None:
    # no-tls-redirect-locations exempts locations by their rule path (template.go
    # isLocationInLocationList): a request for an ACME path routed by `/` is redirected, spelt
    # plainly or with dot segments.
    out = _redirect(b"GET /.well-known/./acme-challenge/tok HTTP/1.1\r\n" + H + b"\r\n",
                    ProxySettings())
    assert status_of(out) == 308
    out = _redirect(b"GET /.well-known/acme-challenge/tok HTTP/1.1\r\n" + H + b"\r\n",
                    ProxySettings())
    assert status_of(out) == 308
    out = _redirect(b"GET /.well-known/acme-challenge/../../x HTTP/1.1\r\n" + H + b"\r\n",
                    ProxySettings())
    assert status_of(out) == 308 and location(out) is not None


# --- 5. backend-protocol: AUTO_HTTP ----------------------------------------------------------
#
# kubernetes/ingress-nginx internal/ingress/annotations/backendprotocol/main.go:
#   validProtocols = regexp.MustCompile(`^(AUTO_HTTP|HTTP|HTTPS|AJP|GRPC|GRPCS)$`)
#   proto = strings.TrimSpace(strings.ToUpper(proto))
#   if !validProtocols.MatchString(proto) { klog.Warningf("... Using HTTP as protocol", ...)
# template.go buildProxyPass:
#   switch location.BackendProtocol {
#   case "AUTO_HTTP":
#       proto = "$scheme://"
#   case "HTTPS":
#       proto = "https://"
#   case "GRPC": proto = "grpc://"; proxyPass = "grpc_pass"
#   case "GRPCS": proto = "grpcs://"; proxyPass = "grpc_pass"
#   case "AJP": proto = ""; proxyPass = "ajp_pass"
#   case "FCGI": proto = ""; proxyPass = "fastcgi_pass"
# $scheme is this connection's ("http" or "https").
def _upstream_tls(protocol: str, client_tls: bool, settings: ProxySettings | None = None,
                  extra: bytes = b"") -> bool:
    route = Route("/", annotations={PREFIX + "backend-protocol": protocol})
    pair, out = send(route, b"GET /x HTTP/1.1\r\n" + H + extra + b"\r\n", tls=client_tls,
                     settings=settings or ProxySettings())
    assert status_of(out) == 200 and len(pair.opens) == 1
    return pair.opens[0].tls


@pytest.mark.parametrize(("protocol", "client_tls", "expected"), [
    ("AUTO_HTTP", True, True),
    ("AUTO_HTTP", False, False),
    ("auto_http", True, True),      # ToUpper, TrimSpace
    (" AUTO_HTTP ", True, True),
    ("HTTPS", False, True),
    ("HTTPS", True, True),
    ("HTTP", True, False),
])
def test_backend_protocol_tls(protocol: str, client_tls: bool, expected: bool) -> None:
    assert _upstream_tls(protocol, client_tls) is expected


def test_auto_http_follows_this_hops_scheme_not_x_forwarded_proto() -> None:
    assert _upstream_tls("AUTO_HTTP", False, TRUSTING, b"X-Forwarded-Proto: https\r\n") is False


def test_backend_protocol_field() -> None:
    def o(value: str) -> tuple[str, bool, int]:
        r = parse_route_options({PREFIX + "backend-protocol": value}, "/", ProxySettings())
        return r.backend_protocol, r.backend_tls, len(r.warnings)
    assert o("AUTO_HTTP") == ("AUTO_HTTP", False, 0)
    assert o("https") == ("HTTPS", True, 0)
    assert o("HTTP") == ("HTTP", False, 0)
    assert parse_route_options({}, "/", ProxySettings()).backend_protocol == "HTTP"


@pytest.mark.parametrize("value", ["GRPC", "GRPCS", "AJP", "FCGI", "h2c", ""])
def test_protocols_this_proxy_cannot_speak_warn_and_use_http(value: str) -> None:
    r = parse_route_options({PREFIX + "backend-protocol": value}, "/", ProxySettings())
    assert (r.backend_protocol, r.backend_tls) == ("HTTP", False)
    assert len(r.warnings) == 1 and "backend-protocol" in r.warnings[0]
