"""External authentication (``auth-url``) in IngressASGI (session 26, round 2).

Before: IngressASGI answered 503 to every request of an Ingress with ``auth-url`` (an access
annotation it could not enforce), while the proxy core asks the auth service
(proxy/_extauth.py). Now IngressASGI asks it too (ingresslib/_asgi_extauth.py, the core's
decisions: ``subrequest_head``, ``verdict``, ``denial``, ``adds_cookies``), over a real HTTP
connection: each test starts its auth service on 127.0.0.1 (port 0) and drives the ASGI app
by hand.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any, Callable

from ingresslib import IngressASGI, Router, parse_manifests
from ingresslib.proxy import (CloseUpstream, OpenUpstream, Proxy, SendDownstream,
                              SendUpstream)
from ingresslib.proxy._annotations import parse_route_options
from ingresslib.proxy._settings import ProxySettings

from _proxy_harness import ingress_yaml

P = "nginx.ingress.kubernetes.io/"

SERVICE = """
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

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


class AuthService:
    """An auth service on 127.0.0.1: records each request head, answers ``reply`` (None: never
    answers, holding the connection)."""

    def __init__(self, reply: bytes | None = OK) -> None:
        self.reply = reply
        self.heads: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> AuthService:
        async def client(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                self.heads.append(await r.readuntil(b"\r\n\r\n"))
                if self.reply is None:
                    await asyncio.sleep(30)  # past any wait of a test (asyncio.run cancels it)
                else:
                    w.write(self.reply)
                    await w.drain()
            except Exception:
                pass
            finally:
                w.close()
        self.server = await asyncio.start_server(client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self.server is not None
        self.server.close()


def manifests(port: int, annotations: dict[str, str] | None = None, extra: str = "") -> str:
    ann = {P + "auth-url": f"http://127.0.0.1:{port}/oauth2/auth?x=1", **(annotations or {})}
    return ingress_yaml("site", "app.test", ann) + SERVICE + extra


class Seen:
    def __init__(self) -> None:
        self.scopes: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []
        self.received: list[dict[str, Any]] = []
        #: How many auth requests had arrived when the app first read the body.
        self.auth_seen_at_receive: int | None = None

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    def headers(self, i: int = 0) -> list[tuple[bytes, bytes]]:
        return [(bytes(n).lower(), bytes(v)) for n, v in self.sent[i].get("headers") or ()]

    def header(self, name: bytes) -> list[bytes]:
        return [v for n, v in self.headers() if n == name]

    def app_header(self, name: bytes) -> list[bytes]:
        return [bytes(v) for n, v in self.scopes[0]["headers"] if bytes(n).lower() == name]


async def call(text: str, head: list[tuple[bytes, bytes]], *, method: str = "GET",
               path: str = "/a", query: bytes = b"", body: bytes = b"",
               auth: AuthService | None = None, kind: str = "http",
               extensions: dict[str, Any] | None = None, **options: Any) -> Seen:
    seen = Seen()
    chunks = [body]

    async def backend(scope: Any, receive: Any, send: Any) -> None:
        seen.scopes.append(scope)
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            return
        while True:
            m = await receive()
            if m["type"] != "http.request" or not m.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    async def receive() -> dict[str, Any]:
        if seen.auth_seen_at_receive is None:
            seen.auth_seen_at_receive = len(auth.heads) if auth is not None else 0
        if kind == "websocket":
            m: dict[str, Any] = {"type": "websocket.connect"}
        elif chunks:
            m = {"type": "http.request", "body": chunks.pop(0), "more_body": False}
        else:
            await asyncio.sleep(0)
            m = {"type": "http.disconnect"}
        seen.received.append(m)
        return m

    async def send(m: Any) -> None:
        seen.sent.append(dict(m))

    scope: dict[str, Any] = {
        "type": kind, "asgi": {"version": "3.0"}, "http_version": "1.1", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": query, "root_path": "",
        "headers": [(b"host", b"app.test"), *head], "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 80), "extensions": extensions or {}}
    if kind == "http":
        scope["method"] = method
    else:
        scope["scheme"] = "ws"
    app = IngressASGI(Router(parse_manifests(text)), {"default/web": backend},
                      request_id=lambda: "0" * 32, **options)
    await app(scope, receive, send)
    return seen


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def lines(head: bytes) -> dict[bytes, list[bytes]]:
    out: dict[bytes, list[bytes]] = {}
    for line in head.split(b"\r\n")[1:]:
        if line:
            n, _, v = line.partition(b":")
            out.setdefault(n.strip().lower(), []).append(v.strip())
    return out


# ------------------------------------------------------------------------- allow
def test_allow_calls_the_app_with_the_auth_response_headers() -> None:
    async def go() -> tuple[Seen, AuthService]:
        reply = (b"HTTP/1.1 200 OK\r\nX-User: bob\r\nSet-Cookie: s=1\r\nSet-Cookie: t=2\r\n"
                 b"Content-Length: 4\r\n\r\nbody")
        async with AuthService(reply) as auth:
            seen = await call(manifests(auth.port, {P + "auth-response-headers":
                                                    "X-User, X-Missing"}),
                              [(b"x-user", b"forged"), (b"x-missing", b"forged"),
                               (b"cookie", b"c=1"), (b"x-forwarded-proto", b"https")],
                              query=b"b=1", auth=auth)
            return seen, auth
    seen, auth = run(go())
    assert seen.status == 200 and len(seen.scopes) == 1
    assert seen.app_header(b"x-user") == [b"bob"] and seen.app_header(b"x-missing") == []
    assert seen.header(b"set-cookie") == [b"s=1", b"t=2"]
    [head] = auth.heads
    assert head.startswith(b"GET /oauth2/auth?x=1 HTTP/1.1\r\n")
    h = lines(head)
    assert h[b"host"] == [b"127.0.0.1"] and h[b"cookie"] == [b"c=1"]
    assert h[b"x-original-url"] == [b"http://app.test/a?b=1"]
    assert h[b"x-original-method"] == [b"GET"]
    assert h[b"x-sent-from"] == [b"nginx-ingress-controller"]
    assert h[b"x-real-ip"] == [b"127.0.0.1"] and h[b"x-forwarded-for"] == [b"127.0.0.1"]
    assert h[b"x-auth-request-redirect"] == [b"/a?b=1"] and h[b"connection"] == [b"close"]
    assert b"x-forwarded-proto" not in h and b"x-original-uri" not in h


def test_post_body_is_read_only_after_the_auth_service_allowed() -> None:
    async def go() -> tuple[Seen, AuthService]:
        async with AuthService() as auth:
            seen = await call(manifests(auth.port, {P + "auth-method": "POST"}),
                              [(b"content-length", b"7")], method="POST", body=b"payload",
                              auth=auth)
            return seen, auth
    seen, auth = run(go())
    assert seen.status == 200 and seen.auth_seen_at_receive == 1
    assert seen.received[0]["body"] == b"payload"
    [head] = auth.heads
    h = lines(head)
    assert head.startswith(b"POST /oauth2/auth?x=1 ") and b"content-length" not in h
    assert h[b"x-original-uri"] == [b"/a"] and h[b"x-scheme"] == [b"http"]


def test_denied_request_body_is_never_read() -> None:
    async def go() -> Seen:
        async with AuthService(b"HTTP/1.1 403 No\r\nContent-Length: 0\r\n\r\n") as auth:
            return await call(manifests(auth.port), [(b"content-length", b"4")],
                              method="POST", body=b"body", auth=auth)
    seen = run(go())
    assert seen.status == 403 and not seen.scopes and not seen.received


# ------------------------------------------------------------------------- refusals
def test_401_passes_www_authenticate_without_cookie() -> None:
    async def go() -> Seen:
        async with AuthService(b"HTTP/1.1 401 No\r\nWWW-Authenticate: Basic realm=x\r\n"
                               b"Set-Cookie: s=1\r\nContent-Length: 2\r\n\r\nno") as auth:
            return await call(manifests(auth.port), [])
    seen = run(go())
    assert seen.status == 401 and not seen.scopes
    assert seen.header(b"www-authenticate") == [b"Basic realm=x"]
    assert seen.header(b"set-cookie") == []  # add_header without always: not on a 401


def test_403_and_other_statuses_and_always_set_cookie() -> None:
    async def go(status: int, ann: dict[str, str]) -> Seen:
        async with AuthService(b"HTTP/1.1 %d X\r\nSet-Cookie: s=1\r\nContent-Length: 0\r\n\r\n"
                               % status) as auth:
            return await call(manifests(auth.port, ann), [])
    for status, want in ((403, 403), (404, 500), (302, 500), (500, 500)):
        seen = run(go(status, {}))
        assert seen.status == want and not seen.scopes and seen.header(b"set-cookie") == []
        seen = run(go(status, {P + "auth-always-set-cookie": "true"}))
        assert seen.status == want and seen.header(b"set-cookie") == [b"s=1"]


def test_signin_redirect_with_cookie() -> None:
    async def go() -> Seen:
        async with AuthService(b"HTTP/1.1 401 No\r\nSet-Cookie: t=2\r\n"
                               b"Content-Length: 0\r\n\r\n") as auth:
            return await call(manifests(auth.port, {P + "auth-signin":
                                                    "https://login.test/start"}),
                              [], path="/a/b", query=b"c=d")
    seen = run(go())
    assert seen.status == 302 and not seen.scopes
    assert seen.header(b"location") == [b"https://login.test/start?rd=http://app.test%2Fa%2Fb"
                                        b"%3Fc%3Dd"]
    assert seen.header(b"set-cookie") == [b"t=2"]


def test_auth_service_down_or_silent_is_500() -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = s.getsockname()[1]
    s.close()
    seen = run(call(manifests(dead), []))
    assert seen.status == 500 and not seen.scopes

    async def silent() -> Seen:
        async with AuthService(None) as auth:
            # The route's read timeout (the annotation takes whole seconds only; the
            # settings' default, a float, is the same opts.read_timeout): 0.2 s, not 1 s.
            # Bounded: a wait without the timeout would hold on (the service never closes).
            return await asyncio.wait_for(call(manifests(auth.port), [], settings=ProxySettings(
                proxy_read_timeout=0.2)), 3.0)
    seen = run(silent())
    assert seen.status == 500 and not seen.scopes


def test_invalid_or_oversized_answer_is_500() -> None:
    async def go(reply: bytes, **kw: Any) -> Seen:
        async with AuthService(reply) as auth:
            return await call(manifests(auth.port, {P + "auth-response-headers": "X-User"}),
                              [], **kw)
    assert run(go(b"HTTP/1.1 200 OK\r\nX-User: a\x1bb\r\n\r\n")).status == 500
    assert run(go(b"not http\r\n\r\n")).status == 500
    assert run(go(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
                  settings=ProxySettings(max_response_header_size=1024))).status == 500


def test_missing_auth_proxy_set_headers_configmap_is_503() -> None:
    async def go() -> tuple[Seen, AuthService]:
        async with AuthService() as auth:
            seen = await call(manifests(auth.port, {P + "auth-proxy-set-headers":
                                                    "default/missing"}), [], auth=auth)
            return seen, auth
    seen, auth = run(go())
    assert seen.status == 503 and not seen.scopes and not auth.heads


def test_auth_proxy_set_headers_configmap() -> None:
    cm = """
---
apiVersion: v1
kind: ConfigMap
metadata: {name: auth-headers, namespace: default}
data: {X-Tenant: blue}
"""

    async def go() -> AuthService:
        async with AuthService() as auth:
            seen = await call(manifests(auth.port, {P + "auth-proxy-set-headers":
                                                    "default/auth-headers"}, cm),
                              [(b"x-tenant", b"red")], auth=auth)
            assert seen.status == 200 and seen.app_header(b"x-tenant") == [b"red"]
            return auth
    assert lines(run(go()).heads[0])[b"x-tenant"] == [b"blue"]


# ------------------------------------------------------------------------- WebSocket
WS = [(b"connection", b"Upgrade"), (b"upgrade", b"websocket"),
      (b"sec-websocket-version", b"13"), (b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ==")]


def test_websocket_handshake_is_authenticated() -> None:
    async def go(reply: bytes, ext: dict[str, Any] | None) -> tuple[Seen, AuthService]:
        async with AuthService(reply) as auth:
            seen = await call(manifests(auth.port, {P + "auth-response-headers": "X-User"}),
                              WS, kind="websocket", extensions=ext, auth=auth)
            return seen, auth
    deny = b"HTTP/1.1 403 No\r\nSet-Cookie: s=1\r\nContent-Length: 0\r\n\r\n"
    seen, auth = run(go(deny, {"websocket.http.response": {}}))
    assert not seen.scopes and seen.sent[0]["type"] == "websocket.http.response.start"
    assert seen.status == 403 and seen.header(b"set-cookie") == []
    h = lines(auth.heads[0])
    assert auth.heads[0].startswith(b"GET ") and b"upgrade" not in h
    assert h[b"connection"] == [b"close"] and h[b"x-original-method"] == [b"GET"]
    seen, _ = run(go(deny, None))
    assert not seen.scopes and seen.sent == [{"type": "websocket.close", "code": 1008}]
    seen, _ = run(go(b"HTTP/1.1 200 OK\r\nX-User: ann\r\nSet-Cookie: s=1\r\n"
                     b"Content-Length: 0\r\n\r\n", {"websocket.http.response": {}}))
    assert seen.sent[0]["type"] == "websocket.accept" and seen.app_header(b"x-user") == [b"ann"]
    # No cookie on the 101, as the proxy core's _on_switch.
    assert seen.header(b"set-cookie") == []


# ------------------------------------------------------------------------- parity
def test_ingressasgi_parses_auth_url_but_not_auth_tls() -> None:
    app = IngressASGI(Router(parse_manifests(manifests(1))), {})
    m = app.router.route("GET", "app.test", "/a", [], None).match
    opts = app.options_for(m)
    assert opts.ext_auth is not None and opts.access is None
    text = ingress_yaml("site", "app.test", {P + "auth-tls-secret": "default/ca"}) + SERVICE
    app = IngressASGI(Router(parse_manifests(text)), {})
    opts = app.options_for(app.router.route("GET", "app.test", "/a", [], None).match)
    assert opts.access is not None and opts.access.denied  # still 503 there
    assert parse_route_options({P + "auth-url": "http://a.test/"}, "/", ProxySettings(),
                               ext_auth=True, client_certs=False).ext_auth is not None


def _core(text: str, request: bytes, auth_reply: bytes, settings: ProxySettings
          ) -> tuple[bytes, bytes, bytes]:
    """The proxy core over ``text``: (the auth subrequest it sends, its answer to the client,
    the head its backend gets: b"" when none)."""
    proxy = Proxy(Router(parse_manifests(text)), settings, request_id=lambda: "0" * 32,
                  clock=None)
    conn = proxy.connection(("127.0.0.1", 40000), tls=False, local_port=80, now=0.0)
    conn.start(0.0)
    actions = conn.receive_data(request, 0.0)
    [auth] = [a for a in actions if isinstance(a, OpenUpstream)]
    sub = b"".join(a.data for a in conn.upstream_connected(auth.conn_id, 0.0)
                   if isinstance(a, SendUpstream))
    actions = conn.upstream_data(auth.conn_id, auth_reply, 0.0)
    answer = b"".join(a.data for a in actions if isinstance(a, SendDownstream))
    opens = [a for a in actions if isinstance(a, OpenUpstream)]
    backend = b""
    if opens:
        assert isinstance(actions[0], CloseUpstream)
        backend = b"".join(a.data for a in conn.upstream_connected(opens[0].conn_id, 0.0)
                           if isinstance(a, SendUpstream))
        answer = b"".join(a.data for a in conn.upstream_data(
            opens[0].conn_id, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0.0)
            if isinstance(a, SendDownstream))
    return sub, answer, backend


#: Headers both write alike on an answer (Date, Content-Type... are each side's own).
_COMPARED = (b"location", b"www-authenticate", b"set-cookie")


def test_proxy_and_asgi_agree_on_external_auth() -> None:
    cases: list[tuple[dict[str, str], bytes]] = [
        ({}, b"HTTP/1.1 200 OK\r\nX-User: bob\r\nSet-Cookie: s=1\r\nContent-Length: 0\r\n\r\n"),
        ({P + "auth-always-set-cookie": "true"},
         b"HTTP/1.1 200 OK\r\nSet-Cookie: s=1\r\nContent-Length: 0\r\n\r\n"),
        ({}, b"HTTP/1.1 401 No\r\nWWW-Authenticate: Bearer\r\nSet-Cookie: s=1\r\n"
             b"Content-Length: 0\r\n\r\n"),
        ({P + "auth-always-set-cookie": "true"},
         b"HTTP/1.1 401 No\r\nWWW-Authenticate: Bearer\r\nSet-Cookie: s=1\r\n\r\n"),
        ({}, b"HTTP/1.1 403 No\r\nContent-Length: 0\r\n\r\n"),
        ({}, b"HTTP/1.1 418 No\r\nContent-Length: 0\r\n\r\n"),
        ({}, b"HTTP/1.1 204 OK\r\nX-User: a\r\nX-User: b\r\n\r\n"),
        ({P + "auth-signin": "https://login.test/s?x=1",
          P + "auth-signin-redirect-param": "next"},
         b"HTTP/1.1 401 No\r\nSet-Cookie: t=2\r\nContent-Length: 0\r\n\r\n"),
        ({P + "auth-signin": "https://$host/s?rd=$escaped_request_uri"},
         b"HTTP/1.1 401 No\r\nContent-Length: 0\r\n\r\n"),
        ({P + "auth-method": "POST", P + "auth-request-redirect": "/back"},
         b"HTTP/1.1 202 OK\r\nX-User: carol\r\nContent-Length: 0\r\n\r\n"),
    ]
    client = [(b"x-user", b"forged"), (b"cookie", b"c=1"), (b"x-forwarded-for", b"1.2.3.4"),
              (b"authorization", b"Bearer t"), (b"x-forwarded-proto", b"https")]
    # Behind a trusted hop too: the client address, X-Forwarded-For and $pass_access_scheme
    # (the sign-in URL's rd) from its headers.
    trusted = ProxySettings(use_forwarded_headers=True, compute_full_forwarded_for=True,
                            proxy_real_ip_cidr=("127.0.0.0/8",))
    for (ann, reply), settings in [(c, s) for c in cases for s in (ProxySettings(), trusted)]:
        ann = {P + "auth-response-headers": "X-User", **ann}

        async def go() -> tuple[Seen, AuthService]:
            async with AuthService(reply) as auth:
                seen = await call(manifests(auth.port, ann), client, path="/p/q",
                                  query=b"r=1&s=%2F", auth=auth, settings=settings)
                return seen, auth
        seen, auth = run(go())
        text = manifests(auth.port, ann)
        wire = (b"GET /p/q?r=1&s=%2F HTTP/1.1\r\nHost: app.test\r\n"
                + b"".join(n + b": " + v + b"\r\n" for n, v in client) + b"\r\n")
        sub, answer, backend = _core(text, wire, reply, settings)
        # The same subrequest (header order aside).
        [head] = auth.heads
        assert head.split(b"\r\n")[0] == sub.split(b"\r\n")[0], ann
        assert sorted(lines(head).items()) == sorted(lines(sub).items()), (ann, head, sub)
        # The same answer.
        status = int(answer.split(b" ")[1])
        assert seen.status == status, (ann, reply, answer)
        core_h = lines(answer.partition(b"\r\n\r\n")[0])
        for name in _COMPARED:
            assert seen.header(name) == core_h.get(name, []), (name, ann, answer)
        # The same auth-response-headers for the backend.
        assert bool(seen.scopes) == bool(backend)
        if backend:
            assert seen.app_header(b"x-user") == lines(backend.partition(b"\r\n\r\n")[0]) \
                .get(b"x-user", [])


# ------------------------------------------------------------------------- https
def test_https_auth_url_verifies_the_certificate(monkeypatch: Any) -> None:
    import ssl

    import trustme

    import ingresslib._asgi_extauth as extauth

    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(server_ctx)

    async def go() -> tuple[Seen, list[bytes]]:
        heads: list[bytes] = []

        async def client(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                heads.append(await r.readuntil(b"\r\n\r\n"))
                w.write(b"HTTP/1.1 200 OK\r\nX-User: tls\r\nContent-Length: 0\r\n\r\n")
                await w.drain()
            except Exception:
                pass
            finally:
                w.close()
        srv = await asyncio.start_server(client, "127.0.0.1", 0, ssl=server_ctx)
        port = srv.sockets[0].getsockname()[1]
        try:
            text = ingress_yaml("site", "app.test", {
                P + "auth-url": f"https://127.0.0.1:{port}/check",
                P + "auth-response-headers": "X-User"}) + SERVICE
            return await call(text, []), heads
        finally:
            srv.close()
    # The default context: the test CA is not trusted, the handshake fails: 500.
    monkeypatch.setattr(extauth, "_SSL", None)
    seen, heads = run(go())
    assert seen.status == 500 and not seen.scopes and not heads
    # A context that trusts it (as the system's trusts a real CA's): the request goes on.
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    monkeypatch.setattr(extauth, "_SSL", client_ctx)
    seen, heads = run(go())
    assert seen.status == 200 and seen.app_header(b"x-user") == [b"tls"]
    assert lines(heads[0])[b"host"] == [b"127.0.0.1"]
