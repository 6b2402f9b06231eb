"""Review of ``auth-keepalive*`` (session 27, R4): a pooled auth connection must never hand
one subrequest's answer (or leftover bytes) to the next client's subrequest; IngressASGI's
pool closed at lifespan shutdown; IngressASGI's auth cache on ``limit_clock``. Compared with
nginx's ``ngx_http_upstream_keepalive_module.c`` (``ngx_http_upstream_free_keepalive_peer``,
``ngx_http_upstream_keepalive_close_handler``) and ``ngx_http_upstream.c``
(``ngx_http_upstream_next``)."""

from __future__ import annotations

import asyncio
from typing import Any

import h11
import pytest

from ingresslib import IngressASGI, Router, parse_manifests
from ingresslib.proxy import ProxySettings
from ingresslib.proxy._annotations import parse_route_options

from _proxy_harness import FakeUpstream, ProxyPair, Reply, Route, ingress_yaml, ok, status_of

P = "nginx.ingress.kubernetes.io/"
AUTH = ("10.5.0.1", 4180)
WEB = ("10.0.0.1", 8080)
URL = "http://10.5.0.1:4180/oauth2/auth"
KA = {P + "auth-keepalive": "4"}
ALLOW_BOB = b"HTTP/1.1 200 OK\r\nX-User: bob\r\nContent-Length: 0\r\n\r\n"
ALLOW_ALICE = b"HTTP/1.1 200 OK\r\nX-User: alice\r\nContent-Length: 0\r\n\r\n"
DENY = b"HTTP/1.1 401 No\r\nWWW-Authenticate: Bearer\r\nContent-Length: 0\r\n\r\n"
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
GET = b"GET /auth HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def _opts(annotations: dict[str, str]) -> Any:
    return parse_route_options(annotations, "/", ProxySettings(), where="Ingress default/site")


def _pair(annotations: dict[str, str], auth_reply: bytes | None) -> ProxyPair:
    def app(request: h11.Request, data: bytes, up: FakeUpstream) -> Reply | None:
        if up.endpoint == AUTH:
            return None if auth_reply is None else Reply(auth_reply)
        h = {n: v for n, v in request.headers}
        return ok(b"user=" + h.get(b"x-user", b"-"))
    return ProxyPair([Route(annotations={P + "auth-url": URL, **annotations},
                            endpoints=[WEB])], app=app)


def _auth_ups(p: ProxyPair) -> list[FakeUpstream]:
    return [u for u in p.upstreams if u.endpoint == AUTH]


def _auth_closes(p: ProxyPair) -> list[bool]:
    ids = {o.conn_id for o in p.opens if o.endpoint == AUTH}
    return [c.reuse for c in p.closes if c.conn_id in ids]


async def _service(answers: list[bytes], hold: bool = False, close: bool = False
                   ) -> tuple[asyncio.Server, int, list[asyncio.StreamWriter], asyncio.Event]:
    """An auth service on 127.0.0.1: the n-th subrequest (over all connections) gets
    ``answers[n]`` (the last one after that; b"": closes instead); ``hold``: never answers;
    ``close``: closes
    the connection after each answer. Its writers, and an event set at each subrequest
    read."""
    writers: list[asyncio.StreamWriter] = []
    asked = asyncio.Event()
    n = [0]

    async def client(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        writers.append(w)
        try:
            while True:
                await r.readuntil(b"\r\n\r\n")
                asked.set()
                if hold:
                    await asyncio.sleep(3600)
                answer = answers[min(n[0], len(answers) - 1)]
                n[0] += 1
                if not answer:
                    break  # b"": closes without an answer
                w.write(answer)
                await w.drain()
                if close:
                    break
        except (Exception, asyncio.CancelledError):
            pass
        finally:
            w.close()
    srv = await asyncio.start_server(client, "127.0.0.1", 0)
    return srv, srv.sockets[0].getsockname()[1], writers, asked


def _close_pools() -> None:
    from ingresslib._asgi_authkeepalive import _ASGI_POOLS

    for pool in (_ASGI_POOLS.get(asyncio.get_running_loop()) or {}).values():
        pool.close()


# ------------------------------------------------------------------ IngressASGI's pool
def test_asgi_bytes_after_the_answer_not_read_yet_are_not_the_next_answer() -> None:
    # The auth service answers bob's subrequest, then writes another answer ("200 X-User:
    # alice": a body longer than its Content-Length, a HEAD answer's body written apart)
    # while the connection is idle. The bytes are in the socket, not yet in the stream (the
    # loop has not polled since). The next subrequest, another client's, must not be sent on
    # that connection: it would read them as its own answer (alice let in, where the
    # service says 401). nginx: ngx_http_upstream_free_keepalive_peer's MSG_PEEK close
    # handler; the core's pool: proxy/_server.py _unread_input.
    from ingresslib._asgi_authkeepalive import ask_pooled

    async def go() -> tuple[Any, Any, int]:
        srv, port, writers, _ = await _service([ALLOW_BOB, DENY])
        opts = _opts({P + "auth-url": f"http://127.0.0.1:{port}/auth",
                      P + "auth-response-headers": "X-User", **KA})
        try:
            first = await ask_pooled(opts.ext_auth, GET, opts, 4096)
            writers[0].transport.write(ALLOW_ALICE)  # (sent now: nothing was buffered)
            second = await ask_pooled(opts.ext_auth, GET, opts, 4096)
            return first, second, len(writers)
        finally:
            _close_pools()
            srv.close()
    first, second, conns = asyncio.run(go())
    assert first.status == 0 and dict(first.headers)[b"X-User"] == b"bob"
    assert second.status == 401 and conns == 2


def test_asgi_cancelled_subrequest_closes_its_connection(monkeypatch: Any) -> None:
    # The client goes away (the request's task cancelled) while the auth service has not
    # answered: the connection is closed, not left open, nor pooled half-read.
    import ingresslib._asgi_authkeepalive as mod

    made: list[Any] = []

    class Recorded(mod._Idle):
        def __init__(self, reader: Any, writer: Any) -> None:
            super().__init__(reader, writer)
            made.append(self)
    monkeypatch.setattr(mod, "_Idle", Recorded)

    async def go() -> tuple[bool, int]:
        srv, port, _, asked = await _service([ALLOW_BOB], hold=True)
        opts = _opts({P + "auth-url": f"http://127.0.0.1:{port}/auth", **KA})
        try:
            task = asyncio.ensure_future(mod.ask_pooled(opts.ext_auth, GET, opts, 4096))
            await asyncio.wait_for(asked.wait(), 2.0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return made[0].writer.transport.is_closing(), len(mod.asgi_pool(opts.ext_auth).idle)
        finally:
            _close_pools()
            srv.close()
    closing, idle = asyncio.run(go())
    assert closing and idle == 0


def test_asgi_idle_connection_with_an_eof_or_bytes_is_not_taken() -> None:
    # What arrived while idle and was read by the loop (bytes, an EOF) closes it too.
    from ingresslib._asgi_authkeepalive import ask_pooled, asgi_pool

    async def go() -> list[int]:
        srv, port, writers, _ = await _service([ALLOW_BOB])
        opts = _opts({P + "auth-url": f"http://127.0.0.1:{port}/auth", **KA})
        try:
            await ask_pooled(opts.ext_auth, GET, opts, 4096)
            pool = asgi_pool(opts.ext_auth)
            counts = [len(pool.idle)]
            writers[0].transport.write(b"HTTP/1.1 200 OK\r\n")
            for _ in range(20):
                await asyncio.sleep(0)
            counts.append(0 if pool.take() is None else 1)
            return counts
        finally:
            _close_pools()
            srv.close()
    assert asyncio.run(go()) == [1, 0]


# ------------------------------------------------------------------ lifespan (item 2)
def test_asgi_lifespan_shutdown_closes_idle_auth_connections() -> None:
    from ingresslib._asgi_authkeepalive import asgi_pool

    async def go() -> tuple[int, int, bool, list[str]]:
        srv, port, _, _ = await _service([ALLOW_BOB])

        async def backend(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                raise RuntimeError("no lifespan")
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        ann = {P + "auth-url": f"http://127.0.0.1:{port}/auth", **KA}
        app = IngressASGI(Router(parse_manifests(ingress_yaml("site", "app.test", ann)
                                                 + SERVICE)), {"default/web": backend})
        try:
            sent: list[dict[str, Any]] = []

            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": b"", "more_body": False}

            async def send(m: Any) -> None:
                sent.append(dict(m))
            scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                     "scheme": "http", "method": "GET", "path": "/", "raw_path": b"/",
                     "query_string": b"", "root_path": "", "headers": [(b"host", b"app.test")],
                     "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 80)}
            await asyncio.wait_for(app(scope, receive, send), 2.0)
            pool = asgi_pool(_opts(ann).ext_auth)
            before = len(pool.idle)
            idle = pool.idle[0]
            events = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
            said: list[str] = []

            async def lreceive() -> dict[str, Any]:
                return next(events)

            async def lsend(m: Any) -> None:
                said.append(m["type"])
            await asyncio.wait_for(app({"type": "lifespan", "asgi": {"version": "3.0"}},
                                       lreceive, lsend), 2.0)
            return before, len(pool.idle), idle.writer.transport.is_closing(), said
        finally:
            _close_pools()
            srv.close()
    before, after, closing, said = asyncio.run(go())
    assert said == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert before == 1 and after == 0 and closing


def test_close_idle_auth_without_a_running_loop_does_nothing() -> None:
    from ingresslib._asgi_authkeepalive import close_loop_pools

    assert close_loop_pools() == 0


# ------------------------------------------------------------------ auth cache clock (item 3)
def test_asgi_auth_cache_runs_on_limit_clock() -> None:
    async def go() -> tuple[list[int], int]:
        srv, port, writers, _ = await _service([ALLOW_BOB])

        async def backend(scope: Any, receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        ann = {P + "auth-url": f"http://127.0.0.1:{port}/auth",
               P + "auth-cache-key": "$http_authorization",
               P + "auth-cache-duration": "200 10s"}
        app = IngressASGI(Router(parse_manifests(ingress_yaml("site", "app.test", ann)
                                                 + SERVICE)), {"default/web": backend})
        now = [1000.0]
        app.limit_clock = lambda: now[0]
        statuses: list[int] = []
        try:
            for step in (0.0, 5.0, 6.0):  # at 0 s asked, at 5 s cached, at 11 s expired
                now[0] += step
                sent: list[dict[str, Any]] = []

                async def receive() -> dict[str, Any]:
                    return {"type": "http.request", "body": b"", "more_body": False}

                async def send(m: Any) -> None:
                    sent.append(dict(m))
                scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                         "scheme": "http", "method": "GET", "path": "/", "raw_path": b"/",
                         "query_string": b"", "root_path": "",
                         "headers": [(b"host", b"app.test"), (b"authorization", b"Bearer x")],
                         "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 80)}
                await asyncio.wait_for(app(scope, receive, send), 2.0)
                statuses.append(int(sent[0]["status"]))
            return statuses, len(writers)  # (a connection per subrequest)
        finally:
            srv.close()
    statuses, asked = asyncio.run(go())
    assert statuses == [200, 200, 200]
    assert asked == 2  # a subrequest at 0 s and at 11 s, none at 5 s


# ------------------------------------------------------------------ auth cache and keep-alive
CACHED = {**KA, P + "auth-response-headers": "X-User", P + "auth-cache-key": "$http_authorization",
          P + "auth-cache-duration": "200 60s"}
CUT = b"HTTP/1.1 200 OK\r\nX-User: bob\r\nContent-Length: 10\r\n\r\nabc"
ASK = b"GET /1 HTTP/1.1\r\nHost: app.test\r\nAuthorization: Bearer x\r\n\r\n"


def test_core_keepalive_answer_cut_mid_body_is_not_cached() -> None:
    # A 2xx head, then the connection closes before the body's end: the subrequest failed
    # (500), and its answer is not kept in the auth cache either (nginx's proxy_cache drops
    # the temp file of an answer that did not complete; IngressASGI keeps it only after the
    # body too): the next request asks the auth service again, not let in by a cached 200.
    p = _pair(CACHED, None)
    out = p.send(ASK)
    [auth] = _auth_ups(p)
    out += p.upstream_send(auth, CUT, close=True)
    assert status_of(out) == 500 and _auth_closes(p) == [False]
    out = p.send(ASK)
    assert out == b""  # asked again: waiting for the auth service (old: a cached 200, bob)
    assert len([o for o in p.opens if o.endpoint == AUTH]) == 2


def test_core_keepalive_whole_answer_is_cached() -> None:
    p = _pair(CACHED, None)
    out = p.send(ASK)
    [auth] = _auth_ups(p)
    out += p.upstream_send(auth, b"HTTP/1.1 200 OK\r\nX-User: bob\r\nContent-Length: 3\r\n\r\nab")
    assert out == b""
    out += p.upstream_send(auth, b"c")
    assert status_of(out) == 200 and out.endswith(b"user=bob")
    out = p.send(ASK)  # a hit: no subrequest
    assert status_of(out) == 200 and out.endswith(b"user=bob")
    assert len([o for o in p.opens if o.endpoint == AUTH]) == 1


def test_asgi_keepalive_answer_cut_mid_body_is_not_cached() -> None:
    # The core's rule above, through IngressASGI (agreement).
    async def go() -> tuple[list[int], int]:
        srv, port, writers, _ = await _service([CUT], close=True)

        async def backend(scope: Any, receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        ann = {P + "auth-url": f"http://127.0.0.1:{port}/auth", **{
            k: v for k, v in CACHED.items() if k != P + "auth-url"}}
        app = IngressASGI(Router(parse_manifests(ingress_yaml("site", "app.test", ann)
                                                 + SERVICE)), {"default/web": backend})
        statuses: list[int] = []
        try:
            for _ in range(2):
                sent: list[dict[str, Any]] = []

                async def receive() -> dict[str, Any]:
                    return {"type": "http.request", "body": b"", "more_body": False}

                async def send(m: Any) -> None:
                    sent.append(dict(m))
                scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                         "scheme": "http", "method": "GET", "path": "/", "raw_path": b"/",
                         "query_string": b"", "root_path": "",
                         "headers": [(b"host", b"app.test"), (b"authorization", b"Bearer x")],
                         "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 80)}
                await asyncio.wait_for(app(scope, receive, send), 2.0)
                statuses.append(int(sent[0]["status"]))
            return statuses, len(writers)
        finally:
            _close_pools()
            srv.close()
    statuses, conns = asyncio.run(go())
    assert statuses == [500, 500] and conns == 2


# ------------------------------------------------------------------ the core: attacks that hold
TWO = (b"GET /1 HTTP/1.1\r\nHost: app.test\r\n\r\n"
       b"GET /2 HTTP/1.1\r\nHost: app.test\r\n\r\n")


@pytest.mark.parametrize("answer", [
    # a body longer than its Content-Length; a second answer right behind the first
    b"HTTP/1.1 200 OK\r\nX-User: bob\r\nContent-Length: 0\r\n\r\nxx",
    ALLOW_BOB + ALLOW_ALICE,
    # a 204 / a 2xx to HEAD announcing a body (written or not): h11 reads none
    b"HTTP/1.1 204 No Content\r\nX-User: bob\r\nContent-Length: 5\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-User: bob\r\nContent-Length: 5\r\n\r\n",
    # HTTP/1.0, Connection: close, read until close
    b"HTTP/1.0 200 OK\r\nX-User: bob\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nX-User: bob\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
])
def test_core_answer_that_cannot_be_reused_closes_its_connection(answer: bytes) -> None:
    method = {P + "auth-method": "HEAD"} if b"Content-Length: 5\r\n\r\n" in answer \
        and b" 204 " not in answer else {}
    p = _pair({**KA, **method, P + "auth-response-headers": "X-User"}, None)
    out = p.send(b"GET /1 HTTP/1.1\r\nHost: app.test\r\n\r\n")
    [auth] = _auth_ups(p)
    out += p.upstream_send(auth, answer)
    assert status_of(out) == 200 and out.endswith(b"user=bob")
    assert _auth_closes(p) == [False] and not p.pool.get(AUTH)
    out = p.send(b"GET /2 HTTP/1.1\r\nHost: app.test\r\n\r\n")
    assert out == b"" and len(_auth_ups(p)) == 2  # a new connection, its own answer
    out = p.upstream_send(_auth_ups(p)[1], DENY)
    assert status_of(out) == 401


def test_core_chunked_answer_with_extensions_trailers_and_a_1xx_is_reused() -> None:
    answer = (b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
              b"HTTP/1.1 200 OK\r\nX-User: bob\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"3;ext=1\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n")
    p = _pair({**KA, P + "auth-response-headers": "X-User"}, answer)
    out = p.send(TWO)
    assert out.count(b"user=bob") == 2 and len(_auth_ups(p)) == 1
    assert _auth_closes(p) == [True, True]


def test_core_client_leaving_mid_answer_closes_the_auth_connection() -> None:
    p = _pair(KA, None)
    p.send(b"GET /1 HTTP/1.1\r\nHost: app.test\r\n\r\n")
    [auth] = _auth_ups(p)
    p.upstream_send(auth, b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc")
    p.eof()
    assert _auth_closes(p) == [False] and not p.pool.get(AUTH)


def test_core_timeout_mid_body_fails_and_closes() -> None:
    from ingresslib.proxy._actions import TimerKind

    p = _pair(KA, None)
    p.send(b"GET /1 HTTP/1.1\r\nHost: app.test\r\n\r\n")
    [auth] = _auth_ups(p)
    p.upstream_send(auth, b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc")
    out = p.fire(TimerKind.UPSTREAM_READ)
    assert status_of(out) == 500 and _auth_closes(p) == [False] and not p.pool.get(AUTH)


def test_core_head_over_the_limit_fails_and_closes() -> None:
    big = b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70000 + b"\r\nContent-Length: 0\r\n\r\n"
    p = _pair(KA, big)
    out = p.send(b"GET /1 HTTP/1.1\r\nHost: app.test\r\n\r\n")
    assert status_of(out) == 500 and _auth_closes(p) == [False] and not p.pool.get(AUTH)


def test_core_stale_connection_is_retried_once_never_twice() -> None:
    # nginx's ngx_http_upstream_next: a cached connection's error costs no try
    # (u->peer.tries++), once: the new connection failing too is the subrequest's failure.
    p = _pair(KA, ALLOW_BOB)
    assert status_of(p.send(b"GET /1 HTTP/1.1\r\nHost: app.test\r\n\r\n")) == 200
    [pooled] = p.pool[AUTH]
    pooled.closed = True
    p.app = lambda request, data, up: None if up.endpoint == AUTH else ok()  # silent
    p.send(b"GET /2 HTTP/1.1\r\nHost: app.test\r\n\r\n")
    fresh = _auth_ups(p)[-1]
    out = p.upstream_send(fresh, b"", close=True)  # closes before any byte too
    assert status_of(out) == 500
    assert [o.pooled for o in p.opens if o.endpoint == AUTH] == [True, True, False]


# ------------------------------------------------------------------ ProxyServer
async def _server_two(after: bytes) -> tuple[list[bytes], int, bool]:
    """Two requests on one client connection through a ProxyServer whose auth service
    (keep-alive) answers the first "200 X-User: bob" then writes ``after`` on that connection
    while it is idle, and 401 to any later subrequest: (answers, auth connections, whether
    the shutdown closed the idle auth connection)."""
    from _upstream_helpers import start_proxy
    from test_authkeepalive_s27 import _manifests, _serve_backend

    srv, port, writers, _ = await _service([ALLOW_BOB, DENY])
    web_srv, web_port = await _serve_backend()
    ann = {**KA, P + "auth-response-headers": "X-User"}
    server, proxy_port = await start_proxy(Router(parse_manifests(
        _manifests(port, web_port, ann))))
    answers: list[bytes] = []
    try:
        r, w = await asyncio.open_connection("127.0.0.1", proxy_port)
        for i in range(2):
            w.write(b"GET /%d HTTP/1.1\r\nHost: app.test\r\n\r\n" % i)
            await w.drain()
            head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 2.0)
            n = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            answers.append(head + await asyncio.wait_for(r.readexactly(n), 2.0))
            if i == 0 and after:
                writers[0].write(after)
        w.close()
        last = writers[-1]
        await server.shutdown(1)
        # The auth service's side of the last auth connection: it reads the proxy's close
        # (its handler ends and closes its side).
        for _ in range(200):
            if last.transport.is_closing():
                break
            await asyncio.sleep(0.01)
        return answers, len(writers), last.transport.is_closing()
    finally:
        srv.close()
        web_srv.close()


def test_server_bytes_written_while_idle_are_never_the_next_answer() -> None:
    answers, conns, _ = asyncio.run(_server_two(ALLOW_ALICE))
    assert b" 200 " in answers[0] and answers[1].startswith(b"HTTP/1.1 401 ")
    assert conns == 2


def test_server_shutdown_closes_the_idle_auth_connection() -> None:
    answers, conns, closed = asyncio.run(_server_two(b""))
    assert [a.split(b" ")[1] for a in answers] == [b"200", b"401"] and conns == 1
    assert closed


def test_asgi_pool_closes_a_connection_past_keepalive_time() -> None:
    # nginx's keepalive_time (1 h by default; the auth upstream block sets none), counted
    # from the connect, checked when a connection is put back: as the core's auth pools.
    from ingresslib._asgi_authkeepalive import AsgiAuthPool, _Idle
    from ingresslib.proxy._authkeepalive import KEEPALIVE_TIME, AuthKeepalive

    class Conn(_Idle):
        closed = False

        def usable(self) -> bool:
            return not self.closed

        def close(self) -> None:
            self.closed = True

    now = [100.0]

    async def go() -> tuple[bool, bool]:
        pool = AsgiAuthPool(AuthKeepalive(4, 10 ** 6, 10), lambda: now[0])
        young, old = Conn(None, None), Conn(None, None)
        young.born, old.born = now[0], now[0]
        pool.put(young)
        assert pool.take() is young
        now[0] += KEEPALIVE_TIME + 1
        young.born = now[0] - 5
        pool.put(old)
        pool.put(young)
        result = old.closed, young.closed
        pool.close()
        return result
    assert asyncio.run(go()) == (True, False)


# ------------------------------------------------------------------ pools per configuration
def test_server_auth_pools_without_idle_connections_are_dropped() -> None:
    # One pool per (auth host:port, TLS, auth-keepalive*): a configuration edited over and
    # over (or auth services coming and going) must not leave a pool per value ever seen.
    import dataclasses

    from ingresslib.proxy._actions import OpenUpstream
    from ingresslib.proxy._authkeepalive import AuthKeepalive
    from ingresslib.proxy._server import UpstreamPool, _Upstream
    from ingresslib.proxy._server_authpool import _POOLS, PRUNE_AT, _pool_of, auth_adopt
    from test_authkeepalive_s27 import _Loop, _Transport

    loop = _Loop()
    base = UpstreamPool(loop, ProxySettings())  # type: ignore[arg-type]
    auth = _opts({P + "auth-url": URL, **KA}).ext_auth

    def open_(n: int, keepalive: AuthKeepalive) -> OpenUpstream:
        return OpenUpstream(n, auth.endpoint, False, 5.0, 5.0, True, keepalive=keepalive)

    a = open_(1, auth.keepalive)
    kept = _pool_of(base, a)
    up = _Upstream(base, auth.endpoint)
    up.transport = _Transport()  # type: ignore[assignment]
    up.requests = 1
    auth_adopt(base, up, a)
    kept.put(up)  # an idle connection: this pool stays
    for n in range(2, 3 * PRUNE_AT):
        assert _pool_of(base, open_(n, dataclasses.replace(auth.keepalive, connections=n))) \
            is not None
    pools = _POOLS[base]
    assert len(pools) <= PRUNE_AT and kept in pools.values() and kept.idle_count() == 1
    assert _pool_of(base, open_(99, auth.keepalive)) is kept


def test_asgi_auth_pools_without_idle_connections_are_dropped() -> None:
    import dataclasses

    from ingresslib._asgi_authkeepalive import _ASGI_POOLS, _Idle, asgi_pool
    from ingresslib.proxy._authkeepalive import AuthKeepalive
    from ingresslib.proxy._server_authpool import PRUNE_AT

    class Conn(_Idle):
        def usable(self) -> bool:
            return True

        def close(self) -> None:
            pass

    auth = _opts({P + "auth-url": URL, **KA}).ext_auth

    async def go() -> None:
        kept = asgi_pool(auth)
        c = Conn(None, None)
        c.requests = 1
        kept.put(c)
        for n in range(2, 3 * PRUNE_AT):
            asgi_pool(dataclasses.replace(auth, keepalive=AuthKeepalive(n)))
        pools = _ASGI_POOLS[asyncio.get_running_loop()]
        assert len(pools) <= PRUNE_AT and kept in pools.values() and kept.idle == [c]
        assert asgi_pool(auth) is kept
        _close_pools()
    asyncio.run(go())


def test_asgi_stale_connection_is_retried_once_never_twice() -> None:
    # A pooled connection closed before any byte of the answer: the subrequest once more on
    # a new connection (nginx's ngx_http_upstream_next); that one closing too fails it (500),
    # a non-idempotent auth service gets it twice at most.
    from ingresslib._asgi_authkeepalive import ask_pooled

    async def go() -> tuple[int, int, int]:
        srv, port, writers, _ = await _service([ALLOW_BOB, b"", b"", ALLOW_BOB])
        opts = _opts({P + "auth-url": f"http://127.0.0.1:{port}/auth", **KA})
        try:
            first = await ask_pooled(opts.ext_auth, GET, opts, 4096)
            second = await ask_pooled(opts.ext_auth, GET, opts, 4096)
            return first.status, second.status, len(writers)
        finally:
            _close_pools()
            srv.close()
    assert asyncio.run(go()) == (0, 500, 2)


def test_server_auth_pool_never_hands_a_connection_to_another_tls_config() -> None:
    # An https auth URL's connections are kept per TLS configuration (OpenUpstream.tls_config,
    # the server's proxy_ssl_*): one verified for a name or CA never carries the subrequest of
    # a location asking for another, though both share the auth pool of their auth-keepalive.
    from ingresslib.proxy._actions import OpenUpstream
    from ingresslib.proxy._server import UpstreamPool, _Upstream
    from ingresslib.proxy._server_authpool import _pool_of, auth_adopt, auth_take
    from test_authkeepalive_s27 import _Loop, _Transport

    loop = _Loop()
    base = UpstreamPool(loop, ProxySettings())  # type: ignore[arg-type]
    auth = _opts({P + "auth-url": "https://10.5.0.1/auth", **KA}).ext_auth
    one, two = ("config", 1), ("config", 2)  # (two distinct tls_config keys)
    ka = auth.keepalive

    a1 = OpenUpstream(1, auth.endpoint, True, 5.0, 5.0, True, one, ka)  # type: ignore[arg-type]
    up = _Upstream(base, auth.endpoint, True, one)  # type: ignore[arg-type]
    up.transport = _Transport()  # type: ignore[assignment]
    up.requests = 1
    auth_adopt(base, up, a1)
    _pool_of(base, a1).put(up)
    a2 = OpenUpstream(2, auth.endpoint, True, 5.0, 5.0, True, two, ka)  # type: ignore[arg-type]
    assert auth_take(base, a2) is None and not up.closed
    a3 = OpenUpstream(3, auth.endpoint, True, 5.0, 5.0, True, one, ka)  # type: ignore[arg-type]
    assert auth_take(base, a3) is up
