"""The redirect annotations (permanent-redirect, temporal-redirect and their codes,
from-to-www-redirect, a rewrite-target that is a URL) and the ASGI adapter's parity with the
proxy on redirects and hidden response headers.

Every expected value below is written from the ingress-nginx (or nginx) source quoted next to
the test, not from ingresslib's output. The answers are checked through the proxy core (a real
Router over manifests) and through the ASGI adapter, which decide them with the same code
(proxy/_actions.py ``redirect_for`` / ``RouteOptionsSource``).
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

from ingresslib import IngressASGI, Router, parse_manifests
from ingresslib.proxy import ProxySettings
from ingresslib.proxy._actions import redirect_for
from ingresslib.proxy._annotations import PREFIX, parse_route_options

from _proxy_harness import ProxyPair
from _proxy_harness import ingress_yaml as _ingress

P = PREFIX
SETTINGS = ProxySettings()


def core(manifests: str, target: str, host: str | None = "example.test",
         tls_hosts: tuple[str, ...] = (), settings: ProxySettings = SETTINGS,
         tls: bool = False) -> tuple[int, bytes | None]:
    """(status, Location) the proxy core answers, over a Router built from ``manifests``
    (no EndpointSlice: a request that is not answered locally gets 503)."""
    pair = ProxyPair(router=Router(parse_manifests(manifests)), settings=settings,
                     tls_hosts=tls_hosts, tls=tls)
    head = f"GET {target} HTTP/1.1\r\n" + (f"Host: {host}\r\n" if host else "") + "\r\n"
    out = pair.send(head.encode())
    lines = out.split(b"\r\n\r\n")[0].split(b"\r\n")
    status = int(lines[0].split(b" ")[1])
    loc = next((ln.partition(b":")[2].strip() for ln in lines[1:]
                if ln.lower().startswith(b"location:")), None)
    return status, loc


async def asgi_call(app: IngressASGI, target: str, host: str = "example.test",
                    scheme: str = "http") -> tuple[int, dict[bytes, list[bytes]], bool]:
    """(status, response headers by name, whether the mounted app ran) through the adapter."""
    sent: list[dict[str, Any]] = []

    async def send(m: Any) -> None:
        sent.append(dict(m))

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    path, _, query = target.partition("?")
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": scheme, "path": path, "raw_path": path.encode(),
             "root_path": "", "query_string": query.encode(), "client": ("10.1.1.1", 5000),
             "server": ("127.0.0.1", 80), "headers": [(b"host", host.encode())]}
    await app(scope, receive, send)
    start = sent[0]
    headers: dict[bytes, list[bytes]] = {}
    for n, v in start.get("headers") or ():
        headers.setdefault(bytes(n).lower(), []).append(bytes(v))
    return start["status"], headers, bool(app_calls)


app_calls: list[str] = []


async def backend(scope: Any, receive: Any, send: Any) -> None:
    app_calls.append(scope["path"])
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"app"})


def adapter(manifests: str, **kw: Any) -> IngressASGI:
    app_calls.clear()
    return IngressASGI(parse_manifests(manifests), backends={"default/web": backend}, **kw)


def parse(annotations: dict[str, str], rule_path: str = "/") -> Any:
    return parse_route_options({P + k: v for k, v in annotations.items()}, rule_path, SETTINGS)


# --- 1. parsing: internal/ingress/annotations/redirect/redirect.go ----------------------------
#
# kubernetes/ingress-nginx redirect.go (v1.10+):
#   defaultPermanentRedirectCode = http.StatusMovedPermanently
#   defaultTemporalRedirectCode  = http.StatusFound
#   // If the Ingress contains both annotations the execution order is temporal and then permanent
#   if tr != "" { trc, err := parser.GetIntAnnotation(temporalRedirectAnnotationCode, ...)
#       if trc < http.StatusMultipleChoices || trc > http.StatusTemporaryRedirect {
#           trc = defaultTemporalRedirectCode } ... return &Config{URL: tr, Code: trc, ...} }
#   ... if prc < http.StatusMultipleChoices || prc > http.StatusPermanentRedirect {
#           prc = defaultPermanentRedirectCode }
#   func isValidURL(s string) error { u, err := url.Parse(s) ...
#       if !strings.HasPrefix(u.Scheme, "http") { return errors.Errorf("only http and https
#       are valid protocols (%v)", u.Scheme) }
@pytest.mark.parametrize(("annotations", "url", "code"), [
    ({"permanent-redirect": "https://new.test/x"}, "https://new.test/x", 301),
    ({"permanent-redirect": " https://new.test/x "}, "https://new.test/x", 301),  # trimmed
    ({"permanent-redirect": "https://new.test", "permanent-redirect-code": "308"},
     "https://new.test", 308),
    ({"permanent-redirect": "http://new.test/?a=b&c=d", "permanent-redirect-code": "302"},
     "http://new.test/?a=b&c=d", 302),
    ({"temporal-redirect": "https://tmp.test/"}, "https://tmp.test/", 302),
    ({"temporal-redirect": "https://tmp.test/", "temporal-redirect-code": "307"},
     "https://tmp.test/", 307),
    # both: temporal first
    ({"temporal-redirect": "https://tmp.test/", "permanent-redirect": "https://new.test/"},
     "https://tmp.test/", 302),
    ({"temporal-redirect": "https://tmp.test/", "permanent-redirect": "https://new.test/",
      "permanent-redirect-code": "308"}, "https://tmp.test/", 302),
])
def test_redirect_annotations_parse_as_redirect_go(annotations: dict[str, str], url: str,
                                                   code: int) -> None:
    opts = parse(annotations)
    assert (opts.redirect_url, opts.redirect_code, opts.warnings) == (url, code, ())


@pytest.mark.parametrize(("annotations", "code"), [
    # out of redirect.go's range: its default
    ({"permanent-redirect": "https://n.test/", "permanent-redirect-code": "418"}, 301),
    ({"permanent-redirect": "https://n.test/", "permanent-redirect-code": "200"}, 301),
    ({"temporal-redirect": "https://n.test/", "temporal-redirect-code": "308"}, 302),
    # Atoi fails (ValidateInt): not a code
    ({"permanent-redirect": "https://n.test/", "permanent-redirect-code": "301s"}, 301),
    # in range, but nginx's ``return`` writes no Location for it (ngx_http_send_response
    # sets Location only for 301, 302, 303, 307 and 308): refused, with a warning
    ({"permanent-redirect": "https://n.test/", "permanent-redirect-code": "300"}, 301),
    ({"temporal-redirect": "https://n.test/", "temporal-redirect-code": "304"}, 302),
])
def test_bad_redirect_codes_warn_and_take_the_default(annotations: dict[str, str],
                                                      code: int) -> None:
    opts = parse(annotations)
    assert opts.redirect_url == "https://n.test/"
    assert opts.redirect_code == code
    assert len(opts.warnings) == 1 and "redirect-code" in opts.warnings[0]


@pytest.mark.parametrize("value", [
    "ok.com",                                # url.Parse: no scheme -> "only http and https"
    "/relative/path",
    "ftp://files.test/x",
    "https://new.test$request_uri",          # URLIsValidRegex has no "$" (nginx variable)
    "https://new.test/a b",                  # not in URLIsValidRegex
    "https://new.test/\r\nSet-Cookie: x=1",  # MaliciousRegex
    "",
])
def test_invalid_redirect_urls_warn_and_are_ignored(value: str,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.redirect")
    with caplog.at_level(logging.WARNING, logger="test.redirect"):
        opts = parse_route_options({P + "permanent-redirect": value}, "/", SETTINGS, logger,
                                   where="Ingress default/x")
    assert opts.redirect_url is None and not opts.redirects
    assert len(opts.warnings) == 1 and "permanent-redirect" in opts.warnings[0]
    assert "permanent-redirect" in caplog.text


def test_invalid_temporal_redirect_leaves_permanent_redirect() -> None:
    opts = parse({"temporal-redirect": "ok.com", "permanent-redirect": "https://new.test/"})
    assert (opts.redirect_url, opts.redirect_code) == ("https://new.test/", 301)
    assert len(opts.warnings) == 1


# --- 2. the answer: nginx.tmpl writes ``return <code> <url>;`` in the location ---------------
#
# kubernetes/ingress-nginx rootfs/etc/nginx/template/nginx.tmpl, in ``location {{ $path }}``:
#   {{ if not (empty $location.Redirect.URL) }}
#   return {{ $location.Redirect.Code }} {{ $location.Redirect.URL }};
#   {{ end }}
#   {{ buildProxyPass $server.Hostname $all.Backends $location }}
# ``return`` sends the URL as written: the request's path and query are not appended.
PERM = _ingress("perm", "example.test", {P + "permanent-redirect": "https://new.test/landing"},
                path="/old")


@pytest.mark.parametrize("target", ["/old", "/old/page?x=1", "/old/"])
def test_permanent_redirect_through_the_core_on_a_tls_host(target: str) -> None:
    # A TLS host: the core asks redirect_for; return (ngx_http_rewrite_module, in the location)
    # runs before the ssl-redirect of rewrite_by_lua_block (lua-nginx-module: "this handler
    # always runs *after* the standard ngx_http_rewrite_module"): 301 to the URL, not 308.
    assert core(PERM, target, tls_hosts=("example.test",)) == (301, b"https://new.test/landing")


def test_permanent_redirect_through_the_core_without_tls() -> None:
    assert core(PERM, "/old/page?x=1") == (301, b"https://new.test/landing")


@pytest.mark.asyncio
@pytest.mark.parametrize("target", ["/old", "/old/page?x=1"])
async def test_permanent_redirect_through_the_adapter(target: str) -> None:
    app = adapter(PERM)
    status, headers, ran = await asgi_call(app, target)
    assert (status, headers.get(b"location"), ran) == (301, [b"https://new.test/landing"], False)


@pytest.mark.asyncio
async def test_temporal_redirect_code_through_the_adapter() -> None:
    app = adapter(_ingress("tmp", "example.test", {P + "temporal-redirect": "https://t.test/",
                                                    P + "temporal-redirect-code": "307"}))
    status, headers, ran = await asgi_call(app, "/any")
    assert (status, headers.get(b"location"), ran) == (307, [b"https://t.test/"], False)


def test_redirect_for_order_app_root_then_return_then_ssl_redirect() -> None:
    # nginx.tmpl writes app-root at the server level ("if ($uri = /) { return 302
    # $scheme://$http_host{{ $location.Rewrite.AppRoot }}; }"), before any location: "/" gets
    # the app-root; every other path the location's return, before lua's ssl-redirect.
    opts = parse({"app-root": "/app", "permanent-redirect": "https://new.test/"})
    args = ("http", "example.test", "example.test")
    assert redirect_for(opts, *args, "/", None, True, 443, 308) == (
        302, b"http://example.test/app")
    assert redirect_for(opts, *args, "/x", None, True, 443, 308) == (301, b"https://new.test/")
    assert redirect_for(parse({}), *args, "/x", None, True, 443, 308) == (
        308, b"https://example.test/x")


def test_permanent_redirect_also_on_acme_paths_and_https() -> None:
    # ``return`` has no ACME exemption (that is lua_ingress.lua's ssl-redirect's) and runs
    # whatever the scheme.
    opts = parse({"permanent-redirect": "https://new.test/"})
    for scheme in ("http", "https"):
        assert redirect_for(opts, scheme, "example.test", "example.test",
                            "/.well-known/acme-challenge/t", None, False, 443, 308) == (
            301, b"https://new.test/")


# --- 3. rewrite-target that is a URL: nginx's rewrite answers 302 -----------------------------
#
# nginx ngx_http_rewrite_module, rewrite: "If a replacement string starts with "http://",
# "https://", or "$scheme", the processing stops and the redirect is returned to a client";
# ngx_http_rewrite: "regex->status = NGX_HTTP_MOVED_TEMPORARILY; regex->redirect = 1;".
# buildProxyPass writes ``rewrite "(?i)<path>" <target> break;``: captures are the rule
# regex's, and "If a replacement string includes the new request arguments, the previous
# request arguments are appended after them".
# (Routing is Prefix, so a rule path with groups routes nothing here: the captures are
# checked on ``redirect_for`` below; through the core and the adapter, a plain rule path,
# whose regex ingress-nginx also applies: "everything becomes the target".)
URLREWRITE = _ingress("moved", "example.test", {P + "rewrite-target": "https://new.test/moved"},
                      path="/old")


@pytest.mark.parametrize(("target", "location"), [
    ("/old", b"https://new.test/moved"),
    ("/old/a/b", b"https://new.test/moved"),
    ("/old/a?x=1", b"https://new.test/moved?x=1"),   # the arguments appended
])
def test_rewrite_target_url_is_a_302_through_the_core_on_a_tls_host(target: str,
                                                                     location: bytes) -> None:
    # rewrite (ngx_http_rewrite_module) runs before lua's ssl-redirect: 302, not 308.
    assert core(URLREWRITE, target, tls_hosts=("example.test",)) == (302, location)


def test_rewrite_target_url_is_a_302_through_the_core() -> None:
    assert core(URLREWRITE, "/old/a?x=1") == (302, b"https://new.test/moved?x=1")


@pytest.mark.asyncio
async def test_rewrite_target_url_is_a_302_through_the_adapter() -> None:
    app = adapter(URLREWRITE)
    status, headers, ran = await asgi_call(app, "/old/a/b?x=1")
    assert (status, headers.get(b"location"), ran) == (
        302, [b"https://new.test/moved?x=1"], False)


def test_rewrite_target_url_captures_arguments_and_no_match() -> None:
    args = ("http", "example.test", "example.test")
    caps = parse({"rewrite-target": "https://new.test/$2/$1", "use-regex": "true"},
                 "/old/([a-z]+)/(.*)")
    assert redirect_for(caps, *args, "/OLD/ab/c/d", None, False, 443, 308) == (
        302, b"https://new.test/c/d/ab")   # "(?i)", $1 and $2 put in
    opts = parse({"rewrite-target": "https://new.test/$1?from=old", "use-regex": "true"},
                 "/old/(.*)")
    # the previous arguments appended after the new ones
    assert redirect_for(opts, *args, "/old/a", "x=1", False, 443, 308) == (
        302, b"https://new.test/a?from=old&x=1")
    ends = parse({"rewrite-target": "https://new.test/$1?", "use-regex": "true"}, "/old/(.*)")
    # "putting a question mark at the end of a replacement string avoids having them appended"
    assert redirect_for(ends, *args, "/old/a", "x=1", False, 443, 308) == (
        302, b"https://new.test/a")
    # the regex does not match (Prefix routing lets /old through, "/old/(.*)" needs "/old/"):
    # nginx's rewrite does nothing, the request is proxied
    assert redirect_for(opts, *args, "/old", None, False, 443, 308) is None


def test_plain_rewrite_target_is_still_a_rewrite() -> None:
    opts = parse({"rewrite-target": "/new/$1", "use-regex": "true"}, "/old/(.*)")
    assert not opts.redirects
    assert opts.rewrite_uri("/old/a", "x=1") == "/new/a?x=1"


# --- 4. server-wide: a path no rule covers is served by the server's ``location /`` -----------
#
# controller.go createServers: "loc := &ingress.Location{Path: rootLocation, ...,
# IsDefBackend: true, ...}; locationApplyAnnotations(loc, anns)" (the oldest Ingress of the
# host): that location carries its redirect (``loc.Redirect = anns.Redirect``), and nginx.tmpl
# writes its ``return`` like any location's.
@pytest.mark.asyncio
async def test_unrouted_path_of_a_host_with_permanent_redirect() -> None:
    assert core(PERM, "/elsewhere") == (301, b"https://new.test/landing")
    status, headers, _ = await asgi_call(adapter(PERM), "/elsewhere")
    assert (status, headers.get(b"location")) == (301, [b"https://new.test/landing"])


# --- 5. from-to-www-redirect -------------------------------------------------------------------
#
# internal/ingress/controller/nginx.go buildRedirects:
#   to := srv.Hostname
#   if strings.HasPrefix(to, "www.") { from = strings.TrimPrefix(to, "www.") }
#   else { from = fmt.Sprintf("www.%v", to) }
#   ... if esrv.Hostname == from { found = true } ... if found { klog.Warningf("Already
#   exists an Ingress with %q hostname. Skipping creation of redirection from %q to %q.", ...)
# nginx.tmpl, for each $redirect: "server_name {{ $redirect.From }};" ...
#   local request_uri = ngx.var.request_uri
#   if string.sub(request_uri, -1) == "/" then request_uri = string.sub(request_uri, 1, -2) end
#   local redirectScheme = ngx.var.scheme
#   return string.format("%s://%s%s", redirectScheme, "{{ $redirect.To }}", request_uri)
#   ...
#   return {{ $all.Cfg.HTTPRedirectCode }} $redirect_to;     (http-redirect-code: 308)
WWW = _ingress("www", "example.test", {P + "from-to-www-redirect": "true"})


@pytest.mark.asyncio
@pytest.mark.parametrize(("host", "target", "location"), [
    ("www.example.test", "/a/b?x=1", b"http://example.test/a/b?x=1"),
    ("www.example.test", "/a/", b"http://example.test/a"),       # one final "/" dropped
    ("www.example.test", "/", b"http://example.test"),
    ("WWW.Example.test:80", "/a", b"http://example.test/a"),     # the server name matched
])
async def test_www_twin_redirects_to_the_rule_host(host: str, target: str,
                                                   location: bytes) -> None:
    assert core(WWW, target, host=host) == (308, location)
    status, headers, ran = await asgi_call(adapter(WWW), target, host=host)
    assert (status, headers.get(b"location"), ran) == (308, [location], False)


@pytest.mark.asyncio
@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_www_twin_location_is_the_target_as_received(scheme: str) -> None:
    # "local request_uri = ngx.var.request_uri" (above): the target as the client sent it,
    # not the canonical path, over either scheme.
    want = f"{scheme}://example.test/a/./b/../c".encode()
    assert core(WWW, "/a/./b/../c/", host="www.example.test", tls=scheme == "https") == (
        308, want)
    status, headers, ran = await asgi_call(adapter(WWW), "/a/./b/../c/",
                                           host="www.example.test", scheme=scheme)
    assert (status, headers.get(b"location"), ran) == (308, [want], False)


def test_www_rule_host_redirects_its_bare_twin_with_the_configured_code() -> None:
    ing = _ingress("www", "www.example.test", {P + "from-to-www-redirect": "true"})
    settings = ProxySettings(http_redirect_code=301)
    assert core(ing, "/p", host="example.test", settings=settings) == (
        301, b"http://www.example.test/p")


def test_www_twin_over_https_keeps_the_scheme() -> None:
    assert core(WWW, "/p", host="www.example.test", tls=True) == (
        308, b"https://example.test/p")


def test_www_twin_with_its_own_ingress_is_not_redirected() -> None:
    both = WWW + _ingress("other", "www.example.test", created="2024-02-01T00:00:00Z")
    assert core(both, "/p", host="www.example.test") == (503, None)  # routed (no endpoints)


def test_www_rule_host_itself_and_canaries() -> None:
    assert core(WWW, "/p", host="example.test") == (503, None)   # the rule host: routed
    canary = _ingress("c", "example.test", created="2024-02-01T00:00:00Z",
                      annotations={P + "canary": "true", P + "canary-weight": "10",
                                   P + "from-to-www-redirect": "true"})
    plain = _ingress("main", "example.test")
    # only a canary asks for it: canaries make no server (createServers "Ingress %v is marked
    # as Canary, ignoring"), so no redirect server either
    assert core(plain + canary, "/p", host="www.example.test") == (404, None)


# --- 6. ASGI adapter: the host's server-wide app-root on a path no rule covers ---------------
#
# nginx.tmpl writes every location's app-root at the server level ("if ($uri = /) { return
# 302 $scheme://$http_host{{ $location.Rewrite.AppRoot }}; }"): "/" of the host redirects even
# when no rule covers "/". The proxy core answers it (``_unrouted_redirect`` with
# ``host_raw``); the adapter did not pass ``host_raw`` and answered 404.
APPROOT = _ingress("approot", "example.test", {P + "app-root": "/app"}, path="/app")


@pytest.mark.asyncio
async def test_adapter_answers_the_server_app_root_on_an_unrouted_root() -> None:
    assert core(APPROOT, "/") == (302, b"http://example.test/app")
    status, headers, ran = await asgi_call(adapter(APPROOT), "/", host="example.test:8080")
    assert (status, headers.get(b"location"), ran) == (
        302, [b"http://example.test:8080/app"], False)


# --- 7. ASGI adapter: the app's response head loses what the proxy hides ----------------------
#
# nginx ngx_http_proxy_module.c ngx_http_proxy_hide_headers[]: "Date", "Server", "X-Pad",
# "X-Accel-Expires", "X-Accel-Redirect", "X-Accel-Limit-Rate", "X-Accel-Buffering",
# "X-Accel-Charset" (the proxy: proxy/_headers.py _NGINX_HIDDEN). The mounted app is the
# adapter's upstream; the ASGI server writes its own Date and Server.
HIDDEN = [(b"Server", b"app/1.0"), (b"x-accel-redirect", b"/internal/file"), (b"X-Pad", b"a"),
          (b"x-accel-buffering", b"no"), (b"content-type", b"text/plain"), (b"x-kept", b"1")]


async def hiding_app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept", "headers": HIDDEN[:4] + [(b"x-kept", b"1")]})
        await send({"type": "websocket.close", "code": 1000})
        return
    await send({"type": "http.response.start", "status": 200, "headers": HIDDEN})
    await send({"type": "http.response.body", "body": b"ok"})


def _hiding_adapter(settings: ProxySettings | None = None) -> IngressASGI:
    return IngressASGI(parse_manifests(_ingress("plain", "example.test")),
                       backends={"default/web": hiding_app}, settings=settings)


@pytest.mark.asyncio
@pytest.mark.parametrize("body_size", [1048576, 0])   # with and without the body count
async def test_adapter_drops_the_headers_the_proxy_hides(body_size: int) -> None:
    settings = ProxySettings(proxy_body_size=body_size)
    status, headers, _ = await asgi_call(_hiding_adapter(settings), "/x")
    assert status == 200
    assert sorted(headers) == [b"content-type", b"x-kept"]


@pytest.mark.asyncio
async def test_adapter_drops_hidden_headers_from_a_websocket_accept() -> None:
    sent: list[dict[str, Any]] = []
    events = [{"type": "websocket.connect"}]

    async def receive() -> Any:
        return events.pop(0) if events else {"type": "websocket.disconnect", "code": 1000}

    async def send(m: Any) -> None:
        sent.append(dict(m))

    scope = {"type": "websocket", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "scheme": "ws", "path": "/ws", "raw_path": b"/ws", "root_path": "",
             "query_string": b"", "client": ("10.1.1.1", 5000), "server": ("127.0.0.1", 80),
             "headers": [(b"host", b"example.test")], "subprotocols": []}
    await _hiding_adapter()(scope, receive, send)
    assert sent[0]["type"] == "websocket.accept"
    assert [n for n, _ in sent[0]["headers"]] == [b"x-kept"]
