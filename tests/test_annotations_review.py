"""Per-route proxy options checked against ingress-nginx's own source (review of
proxy/_annotations.py, proxy/_actions.py, proxy/_settings.py).

Every expected value below is written from the ingress-nginx source quoted next to the test,
not from ingresslib's output.
"""

from __future__ import annotations

import dataclasses

import pytest

import ingresslib
from ingresslib.proxy import ProxySettings
from ingresslib.proxy._actions import https_redirect, redirect_for
from ingresslib.proxy._annotations import PREFIX, parse_route_options

from _proxy_harness import ProxyPair, Route, location, status_of

H = b"Host: example.test\r\n"
TLS = {"example.test"}


def get(target: bytes, annotations: dict[str, str] | None = None,
        settings: ProxySettings | None = None, tls: bool = True) -> bytes:
    ann = {PREFIX + k: v for k, v in (annotations or {}).items()}
    pair = ProxyPair([Route("/", annotations=ann)], tls_hosts=TLS if tls else set(),
                     settings=settings or ProxySettings())
    return pair.send(b"GET " + target + b" HTTP/1.1\r\n" + H + b"\r\n")


# --- 1. ssl-redirect drops a final "/" unless preserve-trailing-slash --------------------------
#
# kubernetes/ingress-nginx rootfs/etc/nginx/lua/lua_ingress.lua, _M.rewrite:
#   if redirect_to_https(location_config) then
#     local request_uri = ngx.var.request_uri
#     -- do not append a trailing slash on redirects unless enabled by annotations
#     if location_config.preserve_trailing_slash == false then
#       if string.byte(request_uri, -1, -1) == string.byte('/') then
#         request_uri = string.sub(request_uri, 1, -2)
#       end
#     end
#     local uri = string_format("https://%s%s", redirect_host(), request_uri)
# ($request_uri is path and query: the test is on the last byte of the whole target.)
@pytest.mark.parametrize(("target", "expected"), [
    (b"/a/", b"https://example.test/a"),
    (b"/", b"https://example.test"),
    (b"/a/b/", b"https://example.test/a/b"),
    (b"/a/?x=1", b"https://example.test/a/?x=1"),   # the last byte is "1"
    (b"/a?x=/", b"https://example.test/a?x="),      # the last byte is "/", in the query
    (b"/a", b"https://example.test/a"),
])
def test_ssl_redirect_drops_one_final_slash_of_the_request_target(target: bytes,
                                                                   expected: bytes) -> None:
    out = get(target)
    assert status_of(out) == 308 and location(out) == expected


def test_force_ssl_redirect_drops_the_final_slash_too() -> None:
    # Same code path in lua_ingress.lua: redirect_to_https() is true for force_ssl_redirect.
    out = get(b"/a/", {"force-ssl-redirect": "true"}, tls=False)
    assert status_of(out) == 308 and location(out) == b"https://example.test/a"


# kubernetes/ingress-nginx internal/ingress/annotations/rewrite/main.go (v1.9+):
#   preserveTrailingSlashAnnotation = "preserve-trailing-slash"  (Validator: parser.ValidateBool)
#   config.PreserveTrailingSlash, err = parser.GetBoolAnnotation(preserveTrailingSlashAnnotation,
#       ing, ...); if err != nil { ...; config.PreserveTrailingSlash =
#       a.r.GetDefaultBackend().PreserveTrailingSlash }
# internal/ingress/controller/template/template.go locationConfigForLua:
#   "preserve_trailing_slash = %t," ... location.Rewrite.PreserveTrailingSlash
def test_preserve_trailing_slash_annotation_keeps_the_slash() -> None:
    assert location(get(b"/a/", {"preserve-trailing-slash": "false"})) == \
        b"https://example.test/a"
    out = get(b"/a/", {"preserve-trailing-slash": "true"})
    assert status_of(out) == 308 and location(out) == b"https://example.test/a/"
    out = get(b"/", {"preserve-trailing-slash": "true"})
    assert location(out) == b"https://example.test/"


def test_preserve_trailing_slash_default_comes_from_the_settings() -> None:
    # "a.r.GetDefaultBackend().PreserveTrailingSlash" when the annotation is unset or invalid.
    on = ProxySettings(preserve_trailing_slash=True)
    assert location(get(b"/a/", settings=on)) == b"https://example.test/a/"
    # The annotation wins over the default either way.
    assert location(get(b"/a/", {"preserve-trailing-slash": "false"}, settings=on)) == \
        b"https://example.test/a"
    # Invalid (Go's strconv.ParseBool refuses "yes"): a warning, the default applies.
    o = parse_route_options({PREFIX + "preserve-trailing-slash": "yes"}, "/", on)
    assert o.preserve_trailing_slash is True and len(o.warnings) == 1
    assert "preserve-trailing-slash" in o.warnings[0]
    assert parse_route_options({}, "/", ProxySettings()).preserve_trailing_slash is False


def test_preserve_trailing_slash_configmap_key() -> None:
    # ingress-nginx internal/ingress/defaults/main.go (Backend): "PreserveTrailingSlash bool
    # `json:\"preserve-trailing-slash\"`": a ConfigMap key, read as a Go bool.
    from ingresslib import _config
    cfg = _config.parse_config_data({"preserve-trailing-slash": "true"})
    assert cfg.settings.preserve_trailing_slash is True
    assert location(get(b"/a/", settings=cfg.settings)) == b"https://example.test/a/"
    with pytest.raises(ingresslib.ValidationError, match="preserve-trailing-slash"):
        _config.parse_config_data({"preserve-trailing-slash": "yes"})


def test_https_redirect_function_follows_the_same_rule() -> None:
    # The function the ASGI adapter shares (proxy/_actions.py https_redirect).
    o = parse_route_options({}, "/", ProxySettings())
    assert https_redirect(o, "http", "example.test", "/x/", None, True, 443, 308) == \
        (308, b"https://example.test/x")
    keep = dataclasses.replace(o, preserve_trailing_slash=True)
    assert https_redirect(keep, "http", "example.test", "/x/", None, True, 443, 308) == \
        (308, b"https://example.test/x/")


# --- 2. app-root is answered before ssl-redirect ------------------------------------------------
#
# kubernetes/ingress-nginx rootfs/etc/nginx/template/nginx.tmpl, inside the server block and
# outside "location {{ $path }} { ... }":
#   {{ if not (empty $location.Rewrite.AppRoot) }}
#   if ($uri = /) {
#       return 302 $scheme://$http_host{{ $location.Rewrite.AppRoot }};
#   }
#   {{ end }}
# while the ssl-redirect is in the location: "rewrite_by_lua_block {
# lua_ingress.rewrite({{ locationConfigForLua $location $all }}) ...". nginx
# ngx_http_rewrite_module (https://nginx.org/r/if): "the directives of this module specified on
# the server level are executed sequentially; repeatedly: a location is searched based on a
# request URI; ...". So on a TLS host, plain http "/" gets 302 to http://host/app ($scheme is
# "http"), not the 308 to https://host/.
def test_app_root_is_answered_before_the_ssl_redirect() -> None:
    out = get(b"/", {"app-root": "/app"})
    assert status_of(out) == 302 and location(out) == b"http://example.test/app"
    out = get(b"/?q=1", {"app-root": "/app", "force-ssl-redirect": "true"}, tls=False)
    assert status_of(out) == 302 and location(out) == b"http://example.test/app"
    # Any other path: the ssl-redirect as before.
    out = get(b"/x", {"app-root": "/app"})
    assert status_of(out) == 308 and location(out) == b"https://example.test/x"


def test_redirect_for_orders_app_root_first() -> None:
    o = parse_route_options({PREFIX + "app-root": "/app"}, "/", ProxySettings())
    assert redirect_for(o, "http", "example.test", "example.test", "/", None, True, 443,
                        308) == (302, b"http://example.test/app")


# --- 3. app-root belongs to the host's server, not to one rule ---------------------------------
#
# kubernetes/ingress-nginx rootfs/etc/nginx/template/nginx.tmpl (quoted above): the app-root
# "if ($uri = /) { return 302 ... }" of every location is written at the server level, so the
# first one answers "/" for the host whichever location "/" belongs to. The order is
# internal/ingress/controller/controller.go getBackendServers:
#   sort.SliceStable(value.Locations, func(i, j int) bool {
#       return value.Locations[i].Path > value.Locations[j].Path })
#   sort.SliceStable(value.Locations, func(i, j int) bool {
#       return len(value.Locations[i].Path) > len(value.Locations[j].Path) })
# Canary Ingresses have no location (createServers: "Ingress %v is marked as Canary, ignoring").
def _router(*ingresses: dict[str, object]) -> ingresslib.Router:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
           "spec": {"ports": [{"port": 80, "targetPort": 8080}]}}
    return ingresslib.Router(ingresslib.Resources.from_dicts([*ingresses, svc]), seed=1)


def _ing(name: str, ts: str, path: str, annotations: dict[str, str] | None = None,
         host: str = "shop.test") -> dict[str, object]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "creationTimestamp": ts,
                         "annotations": {PREFIX + k: v for k, v in (annotations or {}).items()}},
            "spec": {"rules": [{"host": host, "http": {"paths": [
                {"path": path, "pathType": "Prefix",
                 "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}


def _send(router: ingresslib.Router, target: bytes, host: bytes = b"shop.test") -> bytes:
    pair = ProxyPair(router=router)
    return pair.send(b"GET " + target + b" HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")


def _routed(out: bytes) -> bool:
    """Reached its route and not redirected (the Service has no endpoints here: 503)."""
    return status_of(out) == 503 and location(out) is None


def test_app_root_of_another_ingress_on_the_host_answers_slash() -> None:
    r = _router(_ing("site", "2024-01-01T00:00:00Z", "/"),
                _ing("api", "2024-02-01T00:00:00Z", "/api", {"app-root": "/app"}))
    out = _send(r, b"/")
    assert status_of(out) == 302 and location(out) == b"http://shop.test/app"
    # Only "$uri = /": the rest of the host is proxied as before.
    assert _routed(_send(r, b"/x")) and _routed(_send(r, b"/api"))
    # Another host is another server: no app-root there.
    other = _router(_ing("site", "2024-01-01T00:00:00Z", "/", host="other.test"),
                    _ing("api", "2024-02-01T00:00:00Z", "/api", {"app-root": "/app"}))
    assert _routed(_send(other, b"/", b"other.test"))


def test_server_app_root_is_the_first_location_in_nginx_order() -> None:
    # The longer path's location comes first: "/api" before "/".
    r = _router(_ing("site", "2024-01-01T00:00:00Z", "/", {"app-root": "/from-site"}),
                _ing("api", "2024-02-01T00:00:00Z", "/api", {"app-root": "/from-api"}))
    assert location(_send(r, b"/")) == b"http://shop.test/from-api"
    # Same length: the greater string first ("/xyz" > "/abc"), whatever the Ingresses' age.
    r = _router(_ing("site", "2024-01-01T00:00:00Z", "/"),
                _ing("x", "2024-02-01T00:00:00Z", "/xyz", {"app-root": "/from-x"}),
                _ing("a", "2024-03-01T00:00:00Z", "/abc", {"app-root": "/from-a"}))
    assert location(_send(r, b"/")) == b"http://shop.test/from-x"


def test_canary_app_root_is_ignored() -> None:
    # The main "/" rule has no app-root; the canary's is not a location of the server. The
    # main Ingress's own app-root still applies with a canary present.
    r = _router(_ing("site", "2024-01-01T00:00:00Z", "/"),
                _ing("api", "2024-02-01T00:00:00Z", "/api", {"app-root": "/app"}),
                _ing("canary", "2024-03-01T00:00:00Z", "/",
                     {"canary": "true", "canary-weight": "100", "app-root": "/canary"}))
    assert location(_send(r, b"/")) == b"http://shop.test/app"
    r = _router(_ing("site", "2024-01-01T00:00:00Z", "/"),
                _ing("canary", "2024-03-01T00:00:00Z", "/",
                     {"canary": "true", "canary-weight": "100", "app-root": "/canary"}))
    assert _routed(_send(r, b"/"))


def test_server_app_root_follows_a_new_table() -> None:
    site = _ing("site", "2024-01-01T00:00:00Z", "/")
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
           "spec": {"ports": [{"port": 80, "targetPort": 8080}]}}
    r = _router(site, _ing("api", "2024-02-01T00:00:00Z", "/api", {"app-root": "/app"}))
    pair = ProxyPair(router=r)
    get = b"GET / HTTP/1.1\r\nHost: shop.test\r\n\r\n"
    assert location(pair.send(get)) == b"http://shop.test/app"
    r.update(ingresslib.Resources.from_dicts(
        [site, _ing("api", "2024-02-01T00:00:00Z", "/api"), svc]))
    assert _routed(pair.send(get))


# --- 4. both front ends and the unrouted paths decide alike ----------------------------------
def test_unrouted_ssl_redirect_drops_the_final_slash_too() -> None:
    # The server's own "location /" runs the same lua_ingress.rewrite (quoted in section 1).
    pair = ProxyPair([Route("/api", host="example.test")], tls_hosts=TLS)
    out = pair.send(b"GET /other/ HTTP/1.1\r\n" + H + b"\r\n")
    assert status_of(out) == 308 and location(out) == b"https://example.test/other"


def _asgi_get(app: ingresslib.IngressASGI, path: str) -> tuple[int, bytes | None]:
    import asyncio
    sent: list[dict[str, object]] = []
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "headers": [(b"host", b"shop.test")],
             "client": ("192.0.2.1", 1234), "server": ("127.0.0.1", 80)}

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))  # type: ignore[arg-type]
    start = sent[0]
    headers = dict(start["headers"])  # type: ignore[call-overload]
    return start["status"], headers.get(b"location")  # type: ignore[return-value]


def test_asgi_adapter_gives_the_same_redirects() -> None:
    r = _router(_ing("site", "2024-01-01T00:00:00Z", "/"),
                _ing("api", "2024-02-01T00:00:00Z", "/api", {"app-root": "/app"}))
    app = ingresslib.IngressASGI(r, {}, tls_hosts={"shop.test"})
    assert _asgi_get(app, "/") == (302, b"http://shop.test/app")
    assert _asgi_get(app, "/x/") == (308, b"https://shop.test/x")


# --- 5. a rewritten target has "?" only with arguments ------------------------------------------
#
# nginx/nginx src/http/ngx_http_script.c ngx_http_script_regex_start_code:
#   if (code->uri) { r->internal = 1; r->valid_unparsed_uri = 0; ...
# src/http/modules/ngx_http_proxy_module.c ngx_http_proxy_create_request (ingress-nginx's
# "proxy_pass http://upstream_balancer;" has no URI part): without a valid unparsed URI the
# request line is the URI and "if (r->args.len > 0) { *b->last++ = '?'; b->last =
# ngx_copy(b->last, r->args.data, r->args.len); }". ingress-nginx's rewrite is template.go
# buildProxyPass: rewrite "(?i)<path>" <target> break;
def _upstream_target(rule_path: str, target: str, request: bytes) -> bytes:
    route = Route(rule_path, annotations={PREFIX + "rewrite-target": target})
    pair = ProxyPair([route])
    pair.send(b"GET " + request + b" HTTP/1.1\r\n" + H + b"\r\n")
    raw = bytes(pair.upstreams[0].raw)
    return raw.split(b"\r\n", 1)[0]


def test_rewritten_target_drops_an_empty_query() -> None:
    assert _upstream_target("/old", "/new", b"/old?") == b"GET /new HTTP/1.1"
    # Arguments are still carried over, and a target's own arguments still come first.
    assert _upstream_target("/old", "/new", b"/old?a=1") == b"GET /new?a=1 HTTP/1.1"
    assert _upstream_target("/old", "/new?x=1", b"/old?") == b"GET /new?x=1 HTTP/1.1"
    # Not rewritten (the target is the rule path: buildProxyPass "no special rewrite"): the
    # unparsed URI goes up as it came, "?" included.
    assert _upstream_target("/old", "/old", b"/old?") == b"GET /old? HTTP/1.1"


def test_rewrite_uri_empty_query() -> None:
    o = parse_route_options({PREFIX + "rewrite-target": "/new"}, "/old", ProxySettings())
    assert o.rewrite_uri("/old/x", "") == "/new"
    assert o.rewrite_uri("/old/x", None) == "/new"
    assert o.rewrite_uri("/old/x", "q") == "/new?q"


# --- 6. "/" of a host whose rules do not cover it: the server-level app-root too -------------
#
# The nginx.tmpl "if ($uri = /) { return 302 $scheme://$http_host{{ $location.Rewrite.AppRoot
# }}; }" of section 3 is in the server block, so it also answers a "/" no rule covers (nginx
# then has only the server's "location /", the default backend). ingresslib's callers
# (_connection.py, _asgi.py) must pass the Host as received for it (not done yet: see the
# report); the hook is RouteOptionsSource._unrouted_redirect(..., host_raw=...).
def test_unrouted_slash_gets_the_server_app_root_given_the_raw_host() -> None:
    from ingresslib.proxy import Proxy
    r = _router(_ing("api", "2024-02-01T00:00:00Z", "/api", {"app-root": "/app"}))
    proxy = Proxy(r, tls_hosts={"shop.test"})
    assert proxy._unrouted_redirect("shop.test", "http", "/", None, 443,
                                    host_raw="shop.test:8080") == \
        (302, b"http://shop.test:8080/app")
    # Before the ssl-redirect (server level first), and only for "/".
    assert proxy._unrouted_redirect("shop.test", "http", "/x/", None, 443,
                                    host_raw="shop.test") == (308, b"https://shop.test/x")
    # A host without app-root anywhere: the ssl-redirect only.
    r2 = _router(_ing("api", "2024-02-01T00:00:00Z", "/api"))
    assert Proxy(r2, tls_hosts={"shop.test"})._unrouted_redirect(
        "shop.test", "http", "/", None, 443, host_raw="shop.test") == \
        (308, b"https://shop.test")
