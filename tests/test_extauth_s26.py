"""External authentication (``auth-url``, session 26): nginx's ``auth_request`` as
ingress-nginx writes it (authreq/main.go, nginx.tmpl's ``/_external-auth-*`` location,
template.go ``buildAuthSignURL``, ngx_http_auth_request_module), through the sans-IO core
(``Proxy.connection``) and end to end through ``ProxyServer``."""

from __future__ import annotations

import asyncio
from typing import Any

import h11

from ingresslib import Router, parse_manifests
from ingresslib.proxy import ProxySettings, TimerKind
from ingresslib.proxy._annotations import IMPLEMENTED, parse_route_options

from _proxy_harness import FakeUpstream, ProxyPair, Reply, Route, ok, status_of

P = "nginx.ingress.kubernetes.io/"
AUTH = ("10.5.0.1", 4180)
WEB = ("10.0.0.1", 8080)
URL = "http://10.5.0.1:4180/oauth2/auth?x=1"


def _app(auth_reply: bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n") -> Any:
    def app(request: h11.Request, data: bytes, up: FakeUpstream) -> Reply | None:
        if up.endpoint == AUTH:
            return Reply(auth_reply)
        return ok(b"backend " + request.target + b" " + data)
    return app


def _pair(annotations: dict[str, str] | None = None, auth_reply: bytes | None = None,
          **kw: Any) -> ProxyPair:
    ann = {P + "auth-url": URL}
    ann.update(annotations or {})
    app = _app() if auth_reply is None else _app(auth_reply)
    return ProxyPair([Route(annotations=ann, endpoints=[WEB])], app=app, **kw)


def _ups(p: ProxyPair, endpoint: tuple[str, int]) -> list[FakeUpstream]:
    return [u for u in p.upstreams if u.endpoint == endpoint]


def _headers(up: FakeUpstream, i: int = 0) -> dict[bytes, list[bytes]]:
    out: dict[bytes, list[bytes]] = {}
    for n, v in up.requests[i][0].headers:
        out.setdefault(n, []).append(v)
    return out


def _opts(annotations: dict[str, str], **kw: Any) -> Any:
    return parse_route_options(annotations, "/", ProxySettings(), where="Ingress default/site",
                               **kw)


# ------------------------------------------------------------------ annotations
def test_auth_annotations_are_implemented_and_parsed() -> None:
    for name in ("auth-url", "auth-method", "auth-signin", "auth-signin-redirect-param",
                 "auth-response-headers", "auth-request-redirect", "auth-always-set-cookie",
                 "auth-proxy-set-headers"):
        assert name in IMPLEMENTED
    opts = _opts({P + "auth-url": "https://auth.test/check", P + "auth-method": "POST",
                  P + "auth-response-headers": "X-User, X-Email",
                  P + "auth-always-set-cookie": "true"})
    assert opts.access is None and opts.warnings == ()
    ext = opts.ext_auth
    assert ext.endpoint == ("auth.test", 443) and ext.tls and ext.host == b"auth.test"
    assert ext.target == b"/check" and ext.method == b"POST" and ext.always_set_cookie
    assert ext.response_headers == ("X-User", "X-Email")


def test_invalid_auth_url_denies_the_location() -> None:
    # authreq/main.go: "could not parse auth-url annotation" is a LocationDenied (503).
    for bad in ("not a url", "/relative", "http://", "ftp://auth.test/x",
                "http://$host/oauth2/auth"):
        opts = _opts({P + "auth-url": bad})
        assert opts.ext_auth is None
        assert opts.access is not None and opts.access.denied is not None, bad
        assert any("503" in w for w in opts.warnings)


def test_invalid_method_and_headers_deny_other_values_are_ignored() -> None:
    assert _opts({P + "auth-url": URL, P + "auth-method": "get"}).access.denied is not None
    assert _opts({P + "auth-url": URL,
                  P + "auth-response-headers": "X-User, X User"}).access.denied is not None
    opts = _opts({P + "auth-url": URL, P + "auth-always-set-cookie": "yes",
                  P + "auth-signin": "https://login.test/?rd=$nope",
                  P + "auth-signin-redirect-param": "a b", P + "auth-cache-key": "$x"})
    assert opts.access is None and opts.ext_auth is not None
    ext = opts.ext_auth
    assert not ext.always_set_cookie and ext.signin is None and ext.signin_param == "rd"
    assert len(opts.warnings) == 4


def test_auth_annotations_without_auth_url_fail_closed() -> None:
    # No effect in ingress-nginx (authreq Parse stops at the missing auth-url); ingresslib
    # denies, as for any auth-* annotation without what enables it, unless opted out.
    opts = _opts({P + "auth-signin": "https://login.test/"})
    assert opts.ext_auth is None and opts.access is not None and opts.access.denied
    assert any("without" in w and "503" in w for w in opts.warnings)
    opts = parse_route_options({P + "auth-signin": "https://login.test/"}, "/",
                               ProxySettings(deny_unenforced_access_annotations=False),
                               where="Ingress default/site")
    assert opts.access is None and opts.ext_auth is None
    assert any("ignored" in w for w in opts.warnings)


def test_ingressasgi_mode_still_denies() -> None:
    opts = _opts({P + "auth-url": URL}, ext_auth=False)
    assert opts.ext_auth is None and opts.access is not None and opts.access.denied


def test_canary_auth_is_ignored() -> None:
    opts = _opts({P + "canary": "true", P + "canary-weight": "10", P + "auth-url": URL})
    assert opts.ext_auth is None and opts.access is None
    assert any("canary" in w for w in opts.warnings)


def test_signin_url_is_build_auth_sign_url() -> None:
    from ingresslib.proxy._extauth import ExtAuth, signin_url

    ext = ExtAuth(URL, AUTH, False, b"a", b"/", signin="https://login.test/start")
    v = {"pass_access_scheme": "https", "http_host": "app.test",
         "escaped_request_uri": "%2Fa%3Fb%3D1"}
    assert signin_url(ext, v) == "https://login.test/start?rd=https://app.test%2Fa%3Fb%3D1"
    ext = ExtAuth(URL, AUTH, False, b"a", b"/", signin="https://login.test/s?x=1",
                  signin_param="next")
    assert signin_url(ext, v) == "https://login.test/s?x=1&next=https://app.test%2Fa%3Fb%3D1"
    ext = ExtAuth(URL, AUTH, False, b"a", b"/",
                  signin="https://$http_host/s?rd=$escaped_request_uri")
    assert signin_url(ext, v) == "https://app.test/s?rd=%2Fa%3Fb%3D1"


def test_with_auth_headers_replaces_client_headers() -> None:
    from ingresslib.proxy._extauth import with_auth_headers

    head = b"GET / HTTP/1.1\r\nhost: a\r\nX-User: forged\r\nx-other: 1\r\n\r\n"
    out = with_auth_headers(head, ((b"X-User", b"alice"), (b"X-Email", b"")))
    assert out == b"GET / HTTP/1.1\r\nhost: a\r\nx-other: 1\r\nX-User: alice\r\n\r\n"


def test_parse_ext_auth_reports_through_warn() -> None:
    from ingresslib.proxy._extauth import parse_ext_auth

    seen: list[tuple[str, str]] = []
    ext, denied = parse_ext_auth({P + "auth-url": "x"}, P, lambda k, m: seen.append((k, m)))
    assert ext is None and denied is not None and seen[0][0] == P + "auth-url"


# ------------------------------------------------------------------ the sans-IO core
def test_allow_passes_headers_and_subrequest_shape() -> None:
    reply = (b"HTTP/1.1 200 OK\r\nX-User: alice\r\nSet-Cookie: s=1\r\n"
             b"Content-Length: 0\r\n\r\n")
    p = _pair({P + "auth-response-headers": "X-User, X-Missing"}, auth_reply=reply)
    p.proxy.records = True
    out = p.send(b"GET /a?b=1 HTTP/1.1\r\nHost: app.test\r\nCookie: c=1\r\n"
                 b"X-User: forged\r\nX-Missing: forged\r\nX-Forwarded-Proto: https\r\n\r\n")
    assert status_of(out) == 200 and out.endswith(b"backend /a?b=1 ")
    assert b"\r\nset-cookie: s=1\r\n" in out.lower()
    [auth] = _ups(p, AUTH)
    req, body = auth.requests[0]
    assert req.method == b"GET" and req.target == b"/oauth2/auth?x=1" and body == b""
    h = _headers(auth)
    assert h[b"host"] == [b"10.5.0.1"]
    assert h[b"x-original-url"] == [b"http://app.test/a?b=1"]
    assert h[b"x-original-method"] == [b"GET"]
    assert h[b"x-sent-from"] == [b"nginx-ingress-controller"]
    assert h[b"x-real-ip"] == [b"203.0.113.7"] and h[b"x-forwarded-for"] == [b"203.0.113.7"]
    assert h[b"x-auth-request-redirect"] == [b"/a?b=1"]
    assert h[b"cookie"] == [b"c=1"] and b"x-forwarded-proto" not in h
    assert b"x-original-uri" not in h
    [web] = _ups(p, WEB)
    wh = _headers(web)
    assert wh[b"x-user"] == [b"alice"] and b"x-missing" not in wh
    # The auth try is not one of the request's upstream tries.
    assert [o.endpoint for o in p.opens] == [AUTH, WEB]
    [rec] = p.records
    assert rec.upstreams == (WEB,) and rec.upstream_statuses == (200,) and rec.status == 200


def test_deny_401_passes_www_authenticate() -> None:
    p = _pair(auth_reply=b"HTTP/1.1 401 No\r\nWWW-Authenticate: Basic realm=x\r\n"
              b"Set-Cookie: s=1\r\nContent-Length: 2\r\n\r\nno")
    out = p.send(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
    assert status_of(out) == 401 and b"www-authenticate: Basic realm=x" in out.lower() \
        .replace(b"basic realm", b"Basic realm")
    assert b"set-cookie" not in out.lower()  # add_header without always: not on a 401
    assert not _ups(p, WEB)


def test_always_set_cookie_on_403_and_500() -> None:
    for status, want in ((403, 403), (404, 500), (302, 500)):
        p = _pair({P + "auth-always-set-cookie": "true"},
                  auth_reply=b"HTTP/1.1 %d X\r\nSet-Cookie: s=1\r\nContent-Length: 0\r\n\r\n"
                  % status)
        out = p.send(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
        assert status_of(out) == want and b"set-cookie: s=1" in out.lower()
        assert not _ups(p, WEB)


def test_signin_redirect() -> None:
    p = _pair({P + "auth-signin": "https://login.test/start"},
              auth_reply=b"HTTP/1.1 401 No\r\nContent-Length: 0\r\n\r\n")
    out = p.send(b"GET /a/b?c=d HTTP/1.1\r\nHost: app.test\r\n\r\n")
    assert status_of(out) == 302
    assert b"location: https://login.test/start?rd=http://app.test%2Fa%2Fb%3Fc%3Dd\r\n" in out


def test_auth_down_or_timeout_is_500() -> None:
    p = _pair(refuse=[AUTH])
    assert status_of(p.send(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")) == 500
    assert not _ups(p, WEB)
    p = ProxyPair([Route(annotations={P + "auth-url": URL}, endpoints=[WEB])],
                  app=lambda r, d, u: None if u.endpoint == AUTH else ok())
    assert p.send(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n") == b""
    assert status_of(p.fire(TimerKind.UPSTREAM_READ)) == 500
    # The connection serves the next request.
    assert not p.closed


def test_post_body_reaches_backend_not_auth() -> None:
    p = _pair({P + "auth-method": "POST"})
    out = p.send(b"POST /up HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\n\r\nhello")
    assert status_of(out) == 200 and out.endswith(b"backend /up hello")
    [auth] = _ups(p, AUTH)
    assert auth.requests[0][1] == b"" and b"hello" not in bytes(auth.raw)
    h = _headers(auth)
    assert auth.requests[0][0].method == b"POST" and b"content-length" not in h
    assert h[b"x-original-uri"] == [b"/up"] and h[b"x-scheme"] == [b"http"]


def test_body_sent_after_head_is_held_during_auth() -> None:
    p = _pair(defer=[AUTH])
    assert p.send(b"PUT /up HTTP/1.1\r\nHost: app.test\r\nContent-Length: 6\r\n\r\nabc") == b""
    p.send(b"def")
    out = p.connect()
    assert status_of(out) == 200 and out.endswith(b"backend /up abcdef")
    # (After the subrequest's head: its X-Request-ID may hold "abc".)
    assert b"abc" not in bytes(_ups(p, AUTH)[0].raw).partition(b"\r\n\r\n")[2]


def test_client_gone_during_auth_closes_auth_connection() -> None:
    p = _pair(defer=[AUTH])
    p.send(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
    p.eof()
    assert p.closed and [c.conn_id for c in p.closes] == [p.opens[0].conn_id]


def test_websocket_upgrade_is_authenticated() -> None:
    p = _pair(auth_reply=b"HTTP/1.1 403 No\r\nContent-Length: 0\r\n\r\n")
    out = p.send(b"GET /ws HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\n"
                 b"Upgrade: websocket\r\n\r\n")
    assert status_of(out) == 403
    h = _headers(_ups(p, AUTH)[0])
    assert b"upgrade" not in h and h[b"connection"] == [b"close"]


def test_unrouted_request_gets_no_auth() -> None:
    p = ProxyPair([Route(host="app.test", annotations={P + "auth-url": URL})])
    assert status_of(p.send(b"GET / HTTP/1.1\r\nHost: other.test\r\n\r\n")) == 404
    assert not p.opens


def test_expect_continue_waits_for_auth() -> None:
    p = _pair(defer=[AUTH])
    out = p.send(b"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 2\r\n"
                 b"Expect: 100-continue\r\n\r\n")
    assert out == b""
    out = p.connect()
    assert out.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert b"expect" not in _headers(_ups(p, AUTH)[0])


# ------------------------------------------------------------------ end to end (ProxyServer)
async def _serve_auth(handler: Any) -> tuple[asyncio.Server, int, list[bytes]]:
    seen: list[bytes] = []

    async def client(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            data = await r.readuntil(b"\r\n\r\n")
            seen.append(data)
            reply = handler(data)
            if reply is not None:
                w.write(reply)
                await w.drain()
            else:
                await asyncio.sleep(30)  # past the client's 3 s wait (asyncio.run cancels it)
        except Exception:
            pass
        finally:
            w.close()
    srv = await asyncio.start_server(client, "127.0.0.1", 0)
    return srv, srv.sockets[0].getsockname()[1], seen


async def _serve_backend() -> tuple[asyncio.Server, int, list[bytes]]:
    seen: list[bytes] = []

    async def client(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            head = await r.readuntil(b"\r\n\r\n")
            n = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    n = int(line.split(b":")[1])
            body = await r.readexactly(n) if n else b""
            seen.append(head + body)
            out = b"backend got " + body
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                    % (len(out), out))
            await w.drain()
        except Exception:
            pass
        finally:
            w.close()
    srv = await asyncio.start_server(client, "127.0.0.1", 0)
    return srv, srv.sockets[0].getsockname()[1], seen


def _manifests(auth_port: int, web_port: int, extra: dict[str, str],
               read_timeout_annotation: bool = True) -> str:
    ann = {P + "auth-url": f"http://127.0.0.1:{auth_port}/auth",
           **({P + "proxy-read-timeout": "1"} if read_timeout_annotation else {}), **extra}
    a = ", ".join(f"{k!r}: {v!r}" for k, v in ann.items())
    return f"""
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: site, namespace: default, annotations: {{{a}}}}}
spec:
  rules:
  - host: app.test
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: default}}
spec: {{ports: [{{name: http, port: 80, targetPort: {web_port}}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: web-1, namespace: default, labels: {{kubernetes.io/service-name: web}}}}
addressType: IPv4
ports: [{{name: http, port: {web_port}}}]
endpoints: [{{addresses: [127.0.0.1], conditions: {{ready: true}}}}]
"""


async def _through(handler: Any, request: bytes, extra: dict[str, str] | None = None,
                   auth_port: int | None = None, read_timeout: float | None = None
                   ) -> tuple[bytes, list[bytes], list[bytes]]:
    """``read_timeout``: the route's proxy-read-timeout from the server's settings (a float)
    instead of the annotation's whole second."""
    from _upstream_helpers import read_to_eof, start_proxy

    auth_srv, port, auth_seen = await _serve_auth(handler)
    if auth_port is not None:
        port = auth_port
    web_srv, web_port, web_seen = await _serve_backend()
    router = Router(parse_manifests(_manifests(port, web_port, extra or {},
                                               read_timeout_annotation=read_timeout is None)))
    if read_timeout is None:
        server, proxy_port = await start_proxy(router)
    else:
        server, proxy_port = await start_proxy(
            router, settings=ProxySettings(proxy_read_timeout=read_timeout))
    try:
        r, w = await asyncio.open_connection("127.0.0.1", proxy_port)
        w.write(request)
        await w.drain()
        data = await read_to_eof(r, 3.0)
        w.close()
        return data, auth_seen, web_seen
    finally:
        await server.shutdown(1)
        auth_srv.close()
        web_srv.close()


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


GET = b"GET /x?y=1 HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n"


def test_server_allow_with_response_headers() -> None:
    data, auth, web = _run(_through(
        lambda h: b"HTTP/1.1 200 OK\r\nX-User: bob\r\nContent-Length: 0\r\n\r\n", GET,
        {P + "auth-response-headers": "X-User"}))
    assert status_of(data) == 200 and data.endswith(b"backend got ")
    assert b"x-original-url: http://app.test/x?y=1" in auth[0].lower()
    assert b"X-User: bob\r\n" in web[0]


def test_server_deny_401_403_and_500() -> None:
    data, _, web = _run(_through(
        lambda h: b"HTTP/1.1 401 No\r\nWWW-Authenticate: Bearer\r\nContent-Length: 0\r\n\r\n",
        GET))
    assert status_of(data) == 401 and b"www-authenticate: Bearer" in data.lower().replace(
        b"bearer", b"Bearer") and not web
    data, _, web = _run(_through(lambda h: b"HTTP/1.1 403 No\r\nContent-Length: 0\r\n\r\n",
                                 GET))
    assert status_of(data) == 403 and not web
    data, _, web = _run(_through(lambda h: b"HTTP/1.1 500 No\r\nContent-Length: 0\r\n\r\n",
                                 GET))
    assert status_of(data) == 500 and not web


def test_server_signin_and_set_cookie() -> None:
    data, _, _ = _run(_through(
        lambda h: b"HTTP/1.1 401 No\r\nSet-Cookie: t=2\r\nContent-Length: 0\r\n\r\n", GET,
        {P + "auth-signin": "https://login.test/start"}))
    assert status_of(data) == 302
    assert b"location: https://login.test/start?rd=http://app.test%2Fx%3Fy%3D1\r\n" in data
    assert b"set-cookie: t=2" in data.lower()


def test_server_auth_down_and_timeout() -> None:
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = s.getsockname()[1]
    s.close()
    data, _, web = _run(_through(lambda h: None, GET, auth_port=dead))
    assert status_of(data) == 500 and not web
    # Never answers: the route's proxy-read-timeout (0.2 s) runs out.
    data, auth, web = _run(_through(lambda h: None, GET, read_timeout=0.2))
    assert status_of(data) == 500 and not web and len(auth) == 1


def test_server_post_body_after_auth() -> None:
    req = (b"POST /up HTTP/1.1\r\nHost: app.test\r\nContent-Length: 7\r\n"
           b"Connection: close\r\n\r\npayload")
    data, auth, web = _run(_through(
        lambda h: b"HTTP/1.1 204 OK\r\n\r\n", req, {P + "auth-method": "HEAD"}))
    assert status_of(data) == 200 and data.endswith(b"backend got payload")
    assert auth[0].startswith(b"HEAD /auth HTTP/1.1\r\n") and b"payload" not in b"".join(auth)


def _router_docs(annotations: dict[str, str]) -> str:
    from _proxy_harness import ingress_yaml

    return ingress_yaml("site", "app.test", {P + "auth-url": URL, **annotations}) + """
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints: [{addresses: [10.0.0.1], conditions: {ready: true}}]
"""


def _router_pair(annotations: dict[str, str], config_map: str = "",
                 auth_reply: bytes | None = None) -> ProxyPair:
    docs = _router_docs(annotations) + config_map
    app = _app() if auth_reply is None else _app(auth_reply)
    return ProxyPair(router=Router(parse_manifests(docs)), app=app)


def test_auth_proxy_set_headers_configmap() -> None:
    cm = """
---
apiVersion: v1
kind: ConfigMap
metadata: {name: auth-headers, namespace: default}
data: {X-Tenant: blue, Cookie: ""}
"""
    p = _router_pair({P + "auth-proxy-set-headers": "default/auth-headers"}, cm)
    out = p.send(b"GET / HTTP/1.1\r\nHost: app.test\r\nCookie: c=1\r\n\r\n")
    assert status_of(out) == 200
    h = _headers(_ups(p, AUTH)[0])
    assert h[b"x-tenant"] == [b"blue"] and b"cookie" not in h
    assert _headers(_ups(p, WEB)[0])[b"cookie"] == [b"c=1"]
    # authreq/main.go: "unable to find configMap": the location is denied.
    p = _router_pair({P + "auth-proxy-set-headers": "default/missing"})
    assert status_of(p.send(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")) == 503
    assert not _ups(p, WEB)


def test_each_request_is_authenticated_and_connection_kept() -> None:
    p = _pair()
    out = p.send(b"GET /1 HTTP/1.1\r\nHost: app.test\r\n\r\n"
                 b"GET /2 HTTP/1.1\r\nHost: app.test\r\n\r\n")
    assert out.count(b"HTTP/1.1 200 OK") == 2 and not p.closed
    assert len(_ups(p, AUTH)) == 2
    assert all(c.reuse is False for c in p.closes if c.conn_id in
               {o.conn_id for o in p.opens if o.endpoint == AUTH})


def test_denied_request_body_is_discarded_and_next_request_served() -> None:
    p = _pair(auth_reply=b"HTTP/1.1 403 No\r\nContent-Length: 0\r\n\r\n")
    out = p.send(b"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 4\r\n\r\nbody")
    assert status_of(out) == 403 and not p.closed and not _ups(p, WEB)
    out = p.send(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
    assert status_of(out) == 403 and len(_ups(p, AUTH)) == 2


def test_tls_client_original_url_and_trusted_scheme() -> None:
    p = _pair({P + "auth-signin": "https://login.test/?rd=$scheme://$host$request_uri"},
              auth_reply=b"HTTP/1.1 401 No\r\nContent-Length: 0\r\n\r\n", tls=True)
    out = p.send(b"GET /p HTTP/1.1\r\nHost: app.test\r\n\r\n")
    assert status_of(out) == 302 and b"location: https://login.test/?rd=https://app.test/p\r\n" \
        in out
    assert _headers(_ups(p, AUTH)[0])[b"x-original-url"] == [b"https://app.test/p"]


def test_core_asks_the_auth_service() -> None:
    # The core opens the auth service's connection (IngressASGI asks it too, over a real
    # connection: tests/test_asgi_extauth_s26.py).
    from ingresslib.proxy import OpenUpstream
    from test_asgi_conformance import proxy_answer, wire

    head = "GET /x HTTP/1.1\r\nHost: app.test"
    manifests = _router_docs({P + "auth-url": URL})
    assert proxy_answer(wire(head), manifests=manifests).status is None
    p = ProxyPair(router=Router(parse_manifests(manifests)), app=_app())
    p.send(b"GET /x HTTP/1.1\r\nHost: app.test\r\n\r\n")
    assert isinstance(p.opens[0], OpenUpstream) and p.opens[0].endpoint == AUTH


def test_control_characters_in_the_auth_answer_are_500() -> None:
    p = _pair({P + "auth-response-headers": "X-User"},
              auth_reply=b"HTTP/1.1 200 OK\r\nX-User: a\x1bb\r\nContent-Length: 0\r\n\r\n")
    assert status_of(p.send(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")) == 500
    assert not _ups(p, WEB)
