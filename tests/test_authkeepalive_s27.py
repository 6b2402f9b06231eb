"""``auth-keepalive*`` (session 27): keep-alive connections to the ``auth-url`` service
(ingress-nginx authreq/main.go, nginx.tmpl's auth upstream block, nginx's
ngx_http_upstream_keepalive_module.c), through the sans-IO core (``Proxy.connection``) and end
to end through ``ProxyServer``."""

from __future__ import annotations

import asyncio
from typing import Any

import h11

from ingresslib import Router, parse_manifests
from ingresslib.proxy import ProxySettings
from ingresslib.proxy._annotations import IMPLEMENTED, parse_route_options

from _proxy_harness import FakeUpstream, ProxyPair, Reply, Route, ok, status_of

P = "nginx.ingress.kubernetes.io/"
AUTH = ("10.5.0.1", 4180)
WEB = ("10.0.0.1", 8080)
URL = "http://10.5.0.1:4180/oauth2/auth"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
KA = {P + "auth-keepalive": "4"}


def _pair(annotations: dict[str, str], auth_reply: bytes | None = OK) -> ProxyPair:
    def app(request: h11.Request, data: bytes, up: FakeUpstream) -> Reply | None:
        if up.endpoint == AUTH:
            return None if auth_reply is None else Reply(auth_reply)
        return ok(b"backend " + request.target)
    return ProxyPair([Route(annotations={P + "auth-url": URL, **annotations},
                            endpoints=[WEB])], app=app)


def _auth_ids(p: ProxyPair) -> set[int]:
    return {o.conn_id for o in p.opens if o.endpoint == AUTH}


def _opts(annotations: dict[str, str]) -> Any:
    return parse_route_options({P + "auth-url": URL, **annotations}, "/", ProxySettings(),
                               where="Ingress default/site")


TWO = (b"GET /1 HTTP/1.1\r\nHost: app.test\r\n\r\n"
       b"GET /2 HTTP/1.1\r\nHost: app.test\r\n\r\n")


# ------------------------------------------------------------------ annotations
def test_keepalive_annotations_are_implemented_and_parsed() -> None:
    from ingresslib.proxy._authkeepalive import AuthKeepalive

    for name in ("auth-keepalive", "auth-keepalive-share-vars", "auth-keepalive-requests",
                 "auth-keepalive-timeout"):
        assert name in IMPLEMENTED
    opts = _opts({P + "auth-keepalive": "10", P + "auth-keepalive-requests": "5",
                  P + "auth-keepalive-timeout": "30", P + "auth-keepalive-share-vars": "true"})
    assert opts.warnings == ()
    assert opts.ext_auth.keepalive == AuthKeepalive(10, 5, 30, True)
    # The defaults (authreq/main.go): 1000 requests, 60 s; auth-keepalive 0: off.
    assert _opts(KA).ext_auth.keepalive == AuthKeepalive(4, 1000, 60, False)
    assert _opts({}).ext_auth.keepalive is None
    assert _opts({P + "auth-keepalive": "0"}).ext_auth.keepalive is None


def test_keepalive_invalid_values_turn_it_off_with_a_warning() -> None:
    from ingresslib.proxy._authkeepalive import AuthKeepalive, parse_auth_keepalive

    def parse(ann: dict[str, str]) -> tuple[Any, list[str]]:
        warned: list[str] = []
        ka = parse_auth_keepalive(ann.get, P, lambda k, m: warned.append(k))
        return ka, warned
    # negative auth-keepalive: 0; requests or timeout <= 0: keep-alive off.
    assert parse({"auth-keepalive": "-1"}) == (None, [P + "auth-keepalive"])
    assert parse({"auth-keepalive": "3", "auth-keepalive-requests": "0"}) == \
        (None, [P + "auth-keepalive-requests"])
    assert parse({"auth-keepalive": "3", "auth-keepalive-timeout": "-5"}) == \
        (None, [P + "auth-keepalive-timeout"])
    # Not an integer: the default (GetIntAnnotation's error), warned.
    ka, warned = parse({"auth-keepalive": "3", "auth-keepalive-requests": "many"})
    assert ka == AuthKeepalive(3, 1000, 60, False) and warned == [P + "auth-keepalive-requests"]
    ka, warned = parse({"auth-keepalive": "x"})
    assert ka is None and warned == [P + "auth-keepalive"]


# ------------------------------------------------------------------ the sans-IO core
def test_core_two_requests_one_auth_connection_without_connection_close() -> None:
    p = _pair(KA)
    out = p.send(TWO)
    assert out.count(b"HTTP/1.1 200 OK") == 2 and not p.closed
    auth = [u for u in p.upstreams if u.endpoint == AUTH]
    assert len(auth) == 1 and len(auth[0].requests) == 2
    for req, _ in auth[0].requests:
        assert req.http_version == b"1.1"
        assert not any(n == b"connection" for n, _ in req.headers)
    assert [o.pooled for o in p.opens if o.endpoint == AUTH] == [True, True]
    assert all(c.reuse for c in p.closes if c.conn_id in _auth_ids(p))


def test_core_without_keepalive_still_closes() -> None:
    p = _pair({})
    p.send(TWO)
    auth = [u for u in p.upstreams if u.endpoint == AUTH]
    assert len(auth) == 2
    assert (b"connection", b"close") in list(auth[0].requests[0][0].headers)
    assert not any(c.reuse for c in p.closes if c.conn_id in _auth_ids(p))


def test_core_auth_answer_with_connection_close_is_not_pooled() -> None:
    p = _pair(KA, b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
    out = p.send(TWO)
    assert out.count(b"HTTP/1.1 200 OK") == 2
    assert len([u for u in p.upstreams if u.endpoint == AUTH]) == 2
    assert not any(c.reuse for c in p.closes if c.conn_id in _auth_ids(p))


def test_core_http10_answer_is_not_pooled() -> None:
    p = _pair(KA, b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
    p.send(TWO)
    assert len([u for u in p.upstreams if u.endpoint == AUTH]) == 2


def test_core_answer_body_is_read_to_its_end_then_reused() -> None:
    chunked = (b"HTTP/1.1 401 No\r\nWWW-Authenticate: Basic\r\nTransfer-Encoding: chunked\r\n"
               b"\r\n5\r\nhello\r\n0\r\n\r\n")
    p = _pair(KA, chunked)
    out = p.send(TWO)
    assert out.count(b"HTTP/1.1 401 ") == 2 and b"www-authenticate: basic" in out.lower()
    assert len([u for u in p.upstreams if u.endpoint == AUTH]) == 1
    p = _pair(KA, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc")
    out = p.send(TWO)
    assert out.count(b"backend /") == 2
    assert len([u for u in p.upstreams if u.endpoint == AUTH]) == 1


def test_core_verdict_waits_for_the_answer_body() -> None:
    p = _pair(KA, None)  # the auth service answers below, in two parts
    out = p.send(b"GET /1 HTTP/1.1\r\nHost: app.test\r\n\r\n")
    [auth] = [u for u in p.upstreams if u.endpoint == AUTH]
    out += p.upstream_send(auth, b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab")
    assert out == b"" and not [u for u in p.upstreams if u.endpoint == WEB]
    out += p.upstream_send(auth, b"cd")
    assert status_of(out) == 200 and out.endswith(b"backend /1")
    assert [c.reuse for c in p.closes if c.conn_id in _auth_ids(p)] == [True]


def test_core_stale_pooled_connection_is_retried_once_on_a_new_one() -> None:
    p = _pair(KA)
    assert status_of(p.send(b"GET /1 HTTP/1.1\r\nHost: app.test\r\n\r\n")) == 200
    [pooled] = p.pool[AUTH]
    pooled.closed = True  # the auth service closed it while idle
    out = p.send(b"GET /2 HTTP/1.1\r\nHost: app.test\r\n\r\n")
    assert status_of(out) == 200 and out.endswith(b"backend /2")
    opens = [o for o in p.opens if o.endpoint == AUTH]
    assert [o.pooled for o in opens] == [True, True, False]
    assert len([u for u in p.upstreams if u.endpoint == AUTH]) == 2


def test_core_fresh_connection_that_fails_is_not_retried() -> None:
    p = _pair(KA)
    p.refuse = {AUTH}
    out = p.send(b"GET /1 HTTP/1.1\r\nHost: app.test\r\n\r\n")
    assert status_of(out) == 500 and len(p.opens) == 1


# ------------------------------------------------------------------ the server's pool
class _Loop:
    def __init__(self) -> None:
        self.now = 100.0

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, cb: Any) -> Any:
        class _H:
            def cancel(self) -> None:
                pass
        return _H()


class _Transport:
    def __init__(self) -> None:
        self.closed = False

    def is_closing(self) -> bool:
        return self.closed

    def is_reading(self) -> bool:
        return True

    def close(self) -> None:
        self.closed = True


def test_server_auth_pool_bounds_with_a_fake_clock() -> None:
    from ingresslib.proxy._actions import OpenUpstream
    from ingresslib.proxy._server_authpool import _pool_of, auth_adopt, auth_take
    from ingresslib.proxy._server import UpstreamPool, _Upstream

    loop = _Loop()
    base = UpstreamPool(loop, ProxySettings())  # type: ignore[arg-type]
    auth = _opts({P + "auth-keepalive": "1", P + "auth-keepalive-requests": "2",
                  P + "auth-keepalive-timeout": "10"}).ext_auth

    # The pool is the action's (OpenUpstream.keepalive), not read from the core's state.
    a = OpenUpstream(7, auth.endpoint, False, 5.0, 5.0, True, keepalive=auth.keepalive)
    pool = _pool_of(base, a)
    assert pool is not None and pool is _pool_of(base, a) and pool is not base

    def fresh() -> Any:
        up = _Upstream(base, auth.endpoint)
        up.transport = _Transport()  # type: ignore[assignment]
        up.requests = 1
        auth_adopt(base, up, a)
        assert up.pool is pool
        return up

    up = fresh()
    pool.put(up)
    assert auth_take(base, a) is up and base.idle_count() == 0
    up.requests = 2  # auth-keepalive-requests 2: not kept after its second subrequest
    pool.put(up)
    assert pool.idle_count() == 0 and up.closed
    # auth-keepalive 1: one idle connection at most (the least recently used closed).
    one, two = fresh(), fresh()
    pool.put(one)
    pool.put(two)
    assert one.closed and pool.idle_count() == 1
    # auth-keepalive-timeout 10 s: past it, not taken again.
    loop.now += 11
    assert auth_take(base, a) is None and two.closed


# ------------------------------------------------------------------ end to end (ProxyServer)
async def _serve_auth(reply: bytes, close_on: int = 0
                      ) -> tuple[asyncio.Server, int, list[int], list[bytes]]:
    """An auth service on 127.0.0.1 answering ``reply`` to each request of a connection;
    ``close_on``: the request (1-based) of each connection it closes without an answer."""
    conns: list[int] = []
    heads: list[bytes] = []

    async def client(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        conns.append(1)
        try:
            n = 0
            while True:
                heads.append(await r.readuntil(b"\r\n\r\n"))
                n += 1
                if n == close_on:
                    break
                w.write(reply)
                await w.drain()
        except (Exception, asyncio.CancelledError):
            pass
        finally:
            w.close()
    srv = await asyncio.start_server(client, "127.0.0.1", 0)
    return srv, srv.sockets[0].getsockname()[1], conns, heads


async def _serve_backend() -> tuple[asyncio.Server, int]:
    async def client(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while True:
                await r.readuntil(b"\r\n\r\n")
                w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nbackend")
                await w.drain()
        except (Exception, asyncio.CancelledError):
            pass
        finally:
            w.close()
    srv = await asyncio.start_server(client, "127.0.0.1", 0)
    return srv, srv.sockets[0].getsockname()[1]


def _manifests(auth_port: int, web_port: int, extra: dict[str, str]) -> str:
    ann = {P + "auth-url": f"http://127.0.0.1:{auth_port}/auth", **extra}
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


async def _three(extra: dict[str, str], reply: bytes = OK, close_on: int = 0
                 ) -> tuple[list[int], list[bytes], list[bytes]]:
    """Three requests, one after the other, on one client connection: (auth connections,
    auth request heads, answers)."""
    from _upstream_helpers import start_proxy

    auth_srv, port, conns, heads = await _serve_auth(reply, close_on)
    web_srv, web_port = await _serve_backend()
    router = Router(parse_manifests(_manifests(port, web_port, extra)))
    server, proxy_port = await start_proxy(router)
    answers: list[bytes] = []
    try:
        r, w = await asyncio.open_connection("127.0.0.1", proxy_port)
        for i in range(3):
            w.write(b"GET /%d HTTP/1.1\r\nHost: app.test\r\n\r\n" % i)
            await w.drain()
            head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 2.0)
            n = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            answers.append(head + await asyncio.wait_for(r.readexactly(n), 2.0))
        w.close()
        return conns, heads, answers
    finally:
        await server.shutdown(1)
        auth_srv.close()
        web_srv.close()


def test_server_keepalive_reuses_one_auth_connection() -> None:
    conns, heads, answers = asyncio.run(_three(KA))
    assert all(status_of(a) == 200 and a.endswith(b"backend") for a in answers)
    assert len(heads) == 3 and len(conns) == 1
    assert not any(b"\r\nconnection:" in h.lower() for h in heads)


def test_server_keepalive_requests_bounds_a_connection() -> None:
    conns, heads, answers = asyncio.run(_three({**KA, P + "auth-keepalive-requests": "2"}))
    assert all(status_of(a) == 200 for a in answers)
    assert len(heads) == 3 and len(conns) == 2


def test_server_auth_answer_with_connection_close_is_not_pooled() -> None:
    conns, heads, answers = asyncio.run(_three(
        KA, b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"))
    assert all(status_of(a) == 200 for a in answers)
    assert len(conns) == 3


def test_server_without_keepalive_a_connection_per_subrequest() -> None:
    conns, heads, answers = asyncio.run(_three({}))
    assert all(status_of(a) == 200 for a in answers)
    assert len(conns) == 3 and all(b"\r\nconnection: close\r\n" in h.lower() for h in heads)


def test_server_stale_pooled_connection_is_retried_on_a_new_one() -> None:
    # The auth service closes each connection on its second request, unanswered: the
    # subrequest goes once more on a new connection, and the client never sees it.
    conns, heads, answers = asyncio.run(_three(KA, close_on=2))
    assert all(status_of(a) == 200 and a.endswith(b"backend") for a in answers)
    assert len(heads) == 5 and len(conns) == 3


# ------------------------------------------------------------------ IngressASGI
async def _asgi_three(extra: dict[str, str], reply: bytes = OK, close_on: int = 0
                      ) -> tuple[list[int], list[bytes], list[int]]:
    """Three requests through one IngressASGI: (auth connections, auth heads, statuses)."""
    from ingresslib import IngressASGI
    from _proxy_harness import ingress_yaml
    from test_asgi_extauth_s26 import SERVICE

    auth_srv, port, conns, heads = await _serve_auth(reply, close_on)

    async def backend(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    text = ingress_yaml("site", "app.test", {P + "auth-url": f"http://127.0.0.1:{port}/auth",
                                             **extra}) + SERVICE
    app = IngressASGI(Router(parse_manifests(text)), {"default/web": backend})
    statuses: list[int] = []
    try:
        for i in range(3):
            sent: list[dict[str, Any]] = []

            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": b"", "more_body": False}

            async def send(m: Any) -> None:
                sent.append(dict(m))
            scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                     "scheme": "http", "method": "GET", "path": f"/{i}",
                     "raw_path": f"/{i}".encode(), "query_string": b"", "root_path": "",
                     "headers": [(b"host", b"app.test")], "client": ("127.0.0.1", 40000),
                     "server": ("127.0.0.1", 80)}
            await asyncio.wait_for(app(scope, receive, send), 2.0)
            statuses.append(int(sent[0]["status"]))
        return conns, heads, statuses
    finally:
        from ingresslib._asgi_authkeepalive import _ASGI_POOLS

        for pool in (_ASGI_POOLS.get(asyncio.get_running_loop()) or {}).values():
            pool.close()
        auth_srv.close()


def test_asgi_keepalive_reuses_one_auth_connection() -> None:
    conns, heads, statuses = asyncio.run(_asgi_three(KA))
    assert statuses == [200, 200, 200] and len(heads) == 3 and len(conns) == 1
    assert not any(b"\r\nconnection:" in h.lower() for h in heads)


def test_asgi_keepalive_requests_and_connection_close() -> None:
    conns, _, statuses = asyncio.run(_asgi_three({**KA, P + "auth-keepalive-requests": "2"}))
    assert statuses == [200, 200, 200] and len(conns) == 2
    conns, _, statuses = asyncio.run(_asgi_three(
        KA, b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"))
    assert statuses == [200, 200, 200] and len(conns) == 3
    conns, heads, statuses = asyncio.run(_asgi_three(
        KA, b"HTTP/1.1 403 No\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"))
    assert statuses == [403, 403, 403] and len(conns) == 1


def test_asgi_stale_pooled_connection_is_retried_on_a_new_one() -> None:
    conns, heads, statuses = asyncio.run(_asgi_three(KA, close_on=2))
    assert statuses == [200, 200, 200] and len(heads) == 5 and len(conns) == 3


def test_asgi_without_keepalive_a_connection_per_subrequest() -> None:
    conns, heads, statuses = asyncio.run(_asgi_three({}))
    assert statuses == [200, 200, 200] and len(conns) == 3
    assert all(b"\r\nconnection: close\r\n" in h.lower() for h in heads)


def test_asgi_pool_bounds_with_a_fake_clock() -> None:
    from ingresslib._asgi_authkeepalive import AsgiAuthPool, _Idle
    from ingresslib.proxy._authkeepalive import AuthKeepalive

    class Conn(_Idle):
        closed = False

        def usable(self) -> bool:
            return not self.closed

        def close(self) -> None:
            self.closed = True

    now = [100.0]

    async def go() -> None:
        pool = AsgiAuthPool(AuthKeepalive(1, 2, 10), lambda: now[0])
        a, b = Conn(None, None), Conn(None, None)
        a.requests = b.requests = 1
        pool.put(a)
        assert pool.take() is a
        pool.put(a)
        pool.put(b)  # auth-keepalive 1: the least recently used closed
        assert a.closed and pool.idle == [b]
        now[0] += 11  # auth-keepalive-timeout 10 s
        assert pool.take() is None and b.closed
        c = Conn(None, None)
        c.requests = 2  # auth-keepalive-requests 2: not kept after its second
        pool.put(c)
        assert c.closed and pool.idle == []
        pool.close()
    asyncio.run(go())


def test_server_plain_request_calls_no_auth_keepalive_code() -> None:
    # Rule: a request without auth-url does not call into proxy/_authkeepalive.py (the
    # server's _open/_adopt test ``conn._auth`` only).
    from test_perf_guards_s25 import python_calls

    async def go() -> list[tuple[str, str]]:
        from _upstream_helpers import start_proxy

        web_srv, web_port = await _serve_backend()
        text = _manifests(1, web_port, {}).replace(f"{P + 'auth-url'!r}: 'http://127.0.0.1:1/auth'",
                                                   "'x': 'y'")
        server, proxy_port = await start_proxy(Router(parse_manifests(text)))
        try:
            r, w = await asyncio.open_connection("127.0.0.1", proxy_port)
            with python_calls() as seen:
                for i in range(2):
                    w.write(b"GET /%d HTTP/1.1\r\nHost: app.test\r\n\r\n" % i)
                    await w.drain()
                    head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 2.0)
                    assert status_of(head) == 200
                    await asyncio.wait_for(r.readexactly(7), 2.0)
            w.close()
            return list(seen)
        finally:
            await server.shutdown(1)
            web_srv.close()
    seen = asyncio.run(go())
    assert seen and not [c for c in seen if c[0] == "_authkeepalive.py"]


def test_explain_shows_the_keepalive(capsys: Any, tmp_path: Any) -> None:
    import ingresslib
    from ingresslib._cli import main as cli_main
    from _proxy_harness import ingress_yaml
    from test_asgi_extauth_s26 import SERVICE

    ann = {P + "auth-url": URL, P + "auth-keepalive": "8", P + "auth-keepalive-timeout": "30"}
    site = ingress_yaml("site", "app.test", ann) + SERVICE
    doc = ingresslib.explain(parse_manifests(site), "http://app.test/x")
    assert doc["ext_auth"]["keepalive"] == {"connections": 8, "requests": 1000, "timeout": 30}
    plain = ingresslib.explain(parse_manifests(ingress_yaml("site", "app.test", {
        P + "auth-url": URL}) + SERVICE), "http://app.test/x")
    assert "keepalive" not in plain["ext_auth"]
    f = tmp_path / "m.yaml"
    f.write_text(site)
    assert cli_main(["explain", "-f", str(f), "http://app.test/x"]) == 0
    assert "auth-keepalive 8: the auth connection is kept for the next subrequests (at most " \
        "1000 each, 30 s idle)" in capsys.readouterr().out


def test_core_pooled_connection_timing_out_is_not_retried() -> None:
    # nginx retries a cached connection's error only (ngx_http_upstream_next: FT_ERROR), not
    # a timeout: 500.
    answers = [OK]

    def app(request: h11.Request, data: bytes, up: FakeUpstream) -> Reply | None:
        if up.endpoint == AUTH:
            return Reply(answers.pop(0)) if answers else None
        return ok(b"backend " + request.target)
    p = ProxyPair([Route(annotations={P + "auth-url": URL, **KA}, endpoints=[WEB])], app=app)
    assert status_of(p.send(b"GET /1 HTTP/1.1\r\nHost: app.test\r\n\r\n")) == 200
    p.send(b"GET /2 HTTP/1.1\r\nHost: app.test\r\n\r\n")
    cid = [o for o in p.opens if o.endpoint == AUTH][-1].conn_id
    start = len(p.received)
    p._run(p.conn.upstream_failed(cid, p.now, timed_out=True))
    assert status_of(bytes(p.received[start:])) == 500
    assert [o.pooled for o in p.opens if o.endpoint == AUTH] == [True, True]
