"""Session 26, round 2 (RM): a review of ``mirror-*`` (proxy/_mirror.py, the server's
``_mirror``, _asgi_mirror.py) and ``limit-rate`` (proxy/_bandwidth.py) as an attacker.

References (search corpus "code"): nginx ngx_http_mirror_module.c (the precontent handler
reads the whole body first, ``ngx_http_read_client_request_body(r,
ngx_http_mirror_body_handler)``, whose client_max_body_size check ends the request with 413
before any subrequest; the body is kept in a temporary file past client_body_buffer_size, so a
mirror costs no memory per body byte), ngx_http_write_filter_module.c (limit_rate).
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest

import ingresslib
from ingresslib import _asgi_mirror
from ingresslib.proxy import Mirror, OpenUpstream, SendDownstream
from ingresslib.proxy import _mirror as mirror_mod
from ingresslib.proxy import _server as server_mod
from ingresslib.proxy._server import ProxyServer

from test_mirror_s26 import P, TARGET, _mirrors, _proxy, _split, _yaml

BIG = {**TARGET, P + "proxy-body-size": "0"}


def _post(proxy: Any, length: int, first: bytes, port: int = 5000) -> tuple[Any, list[Any]]:
    """A connection of ``proxy`` that sent the head of a POST of ``length`` bytes and
    ``first``, its upstream connected."""
    conn = proxy.connection(("192.0.2.7", port), now=0.0)
    acts = conn.start(0.0) + conn.receive_data(
        b"POST /up HTTP/1.1\r\nHost: a.test\r\nContent-Length: %d\r\n\r\n%s" % (length, first),
        0.0)
    (op,) = [a for a in acts if isinstance(a, OpenUpstream)]
    acts += conn.upstream_connected(op.conn_id, 0.0)
    return conn, acts


# -- the core: the copies of the bodies being read, bounded per server -----------------------


def test_the_mirror_copies_of_concurrent_bodies_are_bounded_per_proxy(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: each connection kept up to 16 MiB (``MIRROR_BODY_LIMIT``) of its body for the
    mirror, whatever the others held: N slow clients posting large bodies to a mirrored route
    with proxy-body-size 0 held N x 16 MiB (the body itself streams to the backend, bounded by
    the 64 KiB hold limit). Now all the copies of a Proxy share ``MIRROR_COPIES_LIMIT``: a
    body that would pass it is proxied but not mirrored; a copy sent, or of a connection that
    closed, gives its bytes back."""
    monkeypatch.setattr(mirror_mod, "MIRROR_COPIES_LIMIT", 1000, raising=False)
    proxy = _proxy(BIG)
    a, _ = _post(proxy, 700, b"a" * 600, 5001)
    b, acts_b = _post(proxy, 700, b"b" * 600, 5002)  # 1200 bytes kept in all: b's dropped
    c, _ = _post(proxy, 700, b"c" * 300, 5003)  # 900: kept
    acts_a = a.receive_data(b"a" * 100, 0.0)
    (m,) = _mirrors(acts_a)
    assert _split(m.data)[2] == b"a" * 700
    acts_b += b.receive_data(b"b" * 100, 0.0)
    assert _mirrors(acts_b) == []  # not mirrored ...
    assert b"b" * 100 in b"".join(getattr(x, "data", b"") for x in acts_b)  # ... but proxied
    # a's copy was sent: its 700 bytes are free again, c's 300 still kept.
    d, _ = _post(proxy, 650, b"d" * 600, 5004)
    # The client of c leaves mid-body: its copy's bytes are freed at once.
    c.receive_eof(0.0)
    e, _ = _post(proxy, 350, b"e" * 300, 5005)  # 600 (d) + 300 (e) <= 1000
    (md,) = _mirrors(d.receive_data(b"d" * 50, 0.0))
    (me,) = _mirrors(e.receive_data(b"e" * 50, 0.0))
    assert (_split(md.data)[2], _split(me.data)[2]) == (b"d" * 650, b"e" * 350)


def test_a_connection_dropped_without_a_close_gives_its_copy_back(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A driver that forgets a connection (no abort): its copy's reservation does not stay."""
    monkeypatch.setattr(mirror_mod, "MIRROR_COPIES_LIMIT", 1000, raising=False)
    proxy = _proxy(BIG)
    a, _ = _post(proxy, 900, b"a" * 800, 5001)
    del a
    gc.collect()
    b, _ = _post(proxy, 900, b"b" * 800, 5002)
    (m,) = _mirrors(b.receive_data(b"b" * 100, 0.0))
    assert _split(m.data)[2] == b"b" * 900


def test_a_copy_is_one_per_request_and_freed_by_a_413_and_a_keep_alive_cycle(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mirror_mod, "MIRROR_COPIES_LIMIT", 1000, raising=False)
    proxy = _proxy({**TARGET, P + "proxy-body-size": "1k"})
    conn = proxy.connection(("192.0.2.7", 5000), now=0.0)
    conn.start(0.0)
    # A chunked body refused mid-way (413): not mirrored, and its copy's bytes freed.
    acts = conn.receive_data(b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked"
                             b"\r\n\r\n258\r\n" + b"x" * 600 + b"\r\n", 0.0)
    (op,) = [a for a in acts if isinstance(a, OpenUpstream)]
    acts += conn.upstream_connected(op.conn_id, 0.0)
    acts += conn.receive_data(b"258\r\n" + b"x" * 600 + b"\r\n0\r\n\r\n", 0.0)
    assert _mirrors(acts) == []
    assert b" 413 " in b"".join(a.data for a in acts if isinstance(a, SendDownstream))
    assert mirror_mod.budget_of(proxy).held == 0


# -- the server: the Mirror requests under way, bounded in bytes --------------------------------


def test_the_server_bounds_the_bytes_of_the_mirrors_under_way(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: up to 1024 ``Mirror`` tasks, each holding its request (up to 16 MiB) until its
    timeouts ran out against a mirror that accepts and never answers: 16 GiB. Now their bytes
    are bounded too (``_MIRROR_BYTES_MAX``); past it a mirror is dropped, and the bytes are
    given back when a task ends."""
    monkeypatch.setattr(server_mod, "_MIRROR_BYTES_MAX", 250_000, raising=False)

    async def run() -> tuple[int, int, int]:
        held: list[asyncio.StreamWriter] = []

        async def silent(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            held.append(w)  # accepts, never reads nor answers

        sink = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = sink.sockets[0].getsockname()[1]
        router = ingresslib.Router(ingresslib.parse_manifests(_yaml({})), seed=0)
        server = ProxyServer(router)
        await server.start(("127.0.0.1", 0))
        try:
            data = b"POST / HTTP/1.1\r\nhost: m\r\ncontent-length: 100000\r\n\r\n" + \
                b"x" * 100_000
            for _ in range(5):
                server_mod._mirror(server, Mirror(("127.0.0.1", port), False, data,
                                                  1.0, 1.0, 0.05))
            under_way = len(server.mirrors)
            held_bytes = getattr(server, "mirror_bytes", -1)
            for _ in range(150):
                if not server.mirrors:
                    break
                await asyncio.sleep(0.01)
            return under_way, held_bytes, getattr(server, "mirror_bytes", -1)
        finally:
            await server.shutdown(0.2)
            for w in held:
                w.transport.abort()
            sink.close()
            await sink.wait_closed()

    under_way, held_bytes, after = asyncio.run(run())
    assert under_way == 2 and 200_000 < held_bytes <= 250_000
    assert after == 0


# -- IngressASGI -------------------------------------------------------------------------------


def _asgi(ann: dict[str, str], backends: dict[str, Any], bodies: list[bytes],
          chunked: bool = True) -> list[list[dict[str, Any]]]:
    """Each of ``bodies`` POSTed (one message, no Content-Length) to an IngressASGI of
    ``ann``, concurrently; the messages sent back to each."""
    from ingresslib import IngressASGI

    app = IngressASGI(ingresslib.parse_manifests(_yaml(ann)), backends=backends)

    async def one(body: bytes) -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []
        headers = [(b"host", b"a.test"), (b"transfer-encoding", b"chunked")]
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "POST", "scheme": "http", "path": "/x", "raw_path": b"/x",
                 "query_string": b"", "root_path": "", "headers": headers,
                 "client": ("192.0.2.7", 5000), "server": ("127.0.0.1", 80)}
        given = False

        async def receive() -> dict[str, Any]:
            nonlocal given
            if not given:
                given = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(5)
            return {"type": "http.disconnect"}

        async def send(message: Any) -> None:
            sent.append(message)

        await app(scope, receive, send)
        return sent

    async def run() -> list[list[dict[str, Any]]]:
        try:
            return list(await asyncio.gather(*(one(b) for b in bodies)))
        finally:
            for task in list(_asgi_mirror._TASKS):
                task.cancel()
            for _ in range(100):
                if not _asgi_mirror._TASKS:
                    break
                await asyncio.sleep(0.01)
    return asyncio.run(run())


def _reader(got: list[bytes]) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        m = await receive()
        if m["type"] == "http.request":
            got.append(m.get("body", b""))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
    return app


SHADOW = {P + "mirror-target": "http://shadow.default.svc$request_uri"}


def test_asgi_a_body_refused_with_413_is_not_mirrored() -> None:
    """Before: the copying ``receive`` (the mirror's) saw the body before the body limit's
    (``reply.counting``): a body over proxy-body-size in its last message was mirrored, then
    refused with 413. nginx's mirror handler reads the body first; client_max_body_size ends
    the request (413) before any subrequest."""
    web: list[bytes] = []
    shadow: list[bytes] = []
    (sent,) = _asgi({**SHADOW, P + "proxy-body-size": "4"},
                    {"default/web:80": _reader(web), "default/shadow:80": _reader(shadow)},
                    [b"0123456789"])
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [413]
    assert shadow == []
    # Within the limit: mirrored as before.
    web.clear()
    (sent,) = _asgi({**SHADOW, P + "proxy-body-size": "4"},
                    {"default/web:80": _reader(web), "default/shadow:80": _reader(shadow)},
                    [b"0123"])
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [200]
    assert web == [b"0123"] and shadow == [b"0123"]


def test_asgi_mirror_tasks_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: one task per mirrored request without a bound (each lives up to the route's
    proxy-read-timeout against a slow mirror app), holding its body. Now at most
    ``_TASKS_MAX`` (and ``_BYTES_MAX`` bytes) are under way; past it a mirror is dropped."""
    monkeypatch.setattr(_asgi_mirror, "_TASKS_MAX", 2, raising=False)
    started: list[bytes] = []

    async def slow(scope: Any, receive: Any, send: Any) -> None:
        m = await receive()
        started.append(m.get("body", b""))
        await asyncio.sleep(30)  # cancelled by the test's end

    web: list[bytes] = []
    sent = _asgi(SHADOW, {"default/web:80": _reader(web), "default/shadow:80": slow},
                 [b"a", b"b", b"c", b"d"])
    assert all([m["status"] for m in s if m["type"] == "http.response.start"] == [200]
               for s in sent)
    assert sorted(web) == [b"a", b"b", b"c", b"d"]
    assert len(started) == 2


# -- regression guards: what the review found right (they passed before too) ------------------


def _two_endpoints(ann: dict[str, str], extra: str = "") -> Any:
    from ingresslib.proxy import Proxy

    y = _yaml(ann).replace("addresses: [{ip: 127.0.0.1}]",
                           "addresses: [{ip: 127.0.0.1}, {ip: 127.0.0.2}]") + extra
    return Proxy(ingresslib.Router(ingresslib.parse_manifests(y), seed=0), None,
                 request_id=lambda: "rid", clock=None)


OK_ANSWER = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
POST = b"POST /r HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\n\r\nabc"


def test_a_retried_request_is_mirrored_once() -> None:
    conn = _two_endpoints(TARGET).connection(("192.0.2.7", 5000), now=0.0)
    acts = conn.start(0.0) + conn.receive_data(POST, 0.0)
    first = [a for a in acts if isinstance(a, OpenUpstream)][-1]
    acts += conn.upstream_failed(first.conn_id, 0.0)  # proxy-next-upstream "error": a retry
    second = [a for a in acts if isinstance(a, OpenUpstream)][-1]
    assert second.endpoint != first.endpoint
    acts += conn.upstream_connected(second.conn_id, 0.0)
    acts += conn.upstream_data(second.conn_id, OK_ANSWER, 0.0)
    (m,) = _mirrors(acts)
    assert _split(m.data)[2] == b"abc"


ERRORS = """
---
apiVersion: v1
kind: Service
metadata: {name: errors}
spec: {ports: [{port: 80, targetPort: 8082}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: errors}
subsets: [{addresses: [{ip: 127.0.0.9}], ports: [{port: 8082}]}]
"""


def test_a_custom_http_errors_page_fetch_is_not_mirrored_again() -> None:
    """nginx's error_page named location has no ``mirror``: the one mirror is the request's."""
    conn = _two_endpoints({**TARGET, P + "default-backend": "errors",
                           P + "custom-http-errors": "503"}, ERRORS).connection(
        ("192.0.2.7", 5000), now=0.0)
    acts = conn.start(0.0) + conn.receive_data(POST, 0.0)
    op = [a for a in acts if isinstance(a, OpenUpstream)][-1]
    acts += conn.upstream_connected(op.conn_id, 0.0)
    acts += conn.upstream_data(op.conn_id, b"HTTP/1.1 503 No\r\ncontent-length: 0\r\n\r\n", 0.0)
    page = [a for a in acts if isinstance(a, OpenUpstream)][-1]
    assert page.endpoint == ("127.0.0.9", 8082)
    acts += conn.upstream_connected(page.conn_id, 0.0)
    acts += conn.upstream_data(page.conn_id, b"HTTP/1.1 503 No\r\ncontent-length: 4\r\n\r\npage",
                               0.0)
    assert len(_mirrors(acts)) == 1


def test_pipelined_requests_each_get_their_own_body_and_a_websocket_no_tunnel_bytes() -> None:
    from test_mirror_s26 import _proxy as proxy_of

    conn = proxy_of(TARGET).connection(("192.0.2.7", 5000), now=0.0)
    acts = conn.start(0.0) + conn.receive_data(
        POST + b"GET /ws HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\n"
        b"Connection: upgrade\r\n\r\n", 0.0)
    (m1,) = _mirrors(acts)
    assert _split(m1.data)[2] == b"abc"
    op = [a for a in acts if isinstance(a, OpenUpstream)][-1]
    acts = conn.upstream_connected(op.conn_id, 0.0) + conn.upstream_data(op.conn_id, OK_ANSWER,
                                                                           0.0)
    (m2,) = _mirrors(acts)
    line, headers, body = _split(m2.data)
    assert line == b"GET /ws HTTP/1.1" and body == b"" and b"upgrade" not in headers
    assert headers[b"connection"] == b"close"
    op = [a for a in acts if isinstance(a, OpenUpstream)][-1]
    acts = conn.upstream_connected(op.conn_id, 0.0) + conn.upstream_data(
        op.conn_id, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\n\r\n", 0.0)
    acts += conn.receive_data(b"\x81\x05hello", 0.0)
    assert _mirrors(acts) == []


def test_an_auth_url_denial_is_not_mirrored_an_allowed_body_is_whole() -> None:
    """nginx: auth_request runs in the access phase, the mirror in precontent."""
    from test_mirror_s26 import _proxy as proxy_of

    for answer, mirrored in ((b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n", False),
                             (b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", True)):
        proxy = proxy_of({**TARGET, P + "auth-url": "http://127.0.0.3:9000/auth"})
        conn = proxy.connection(("192.0.2.7", 5000), now=0.0)
        acts = conn.start(0.0) + conn.receive_data(
            b"POST /p HTTP/1.1\r\nHost: a.test\r\nContent-Length: 4\r\n\r\nab", 0.0)
        (auth,) = [a for a in acts if isinstance(a, OpenUpstream)]
        assert auth.endpoint == ("127.0.0.3", 9000)
        acts += conn.upstream_connected(auth.conn_id, 0.0) + conn.receive_data(b"cd", 0.0)
        acts += conn.upstream_data(auth.conn_id, answer, 0.0)
        if mirrored:
            (m,) = _mirrors(acts)
            assert _split(m.data)[2] == b"abcd"
        else:
            assert _mirrors(acts) == []
            assert b" 403 " in b"".join(a.data for a in acts if isinstance(a, SendDownstream))


def test_limit_rate_bodyless_answers_are_sent_at_once_and_a_pipelined_request_waits() -> None:
    from test_limitrate_s26 import HEAD, Conn, _body
    from test_limitrate_s26 import _proxy as rate_proxy
    from ingresslib.proxy import TimerKind

    for method, answer in ((b"HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"),
                           (b"GET", b"HTTP/1.1 204 No Content\r\n\r\n"),
                           (b"GET", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n")):
        c = Conn(rate_proxy({P + "limit-rate": "1"}))
        acts = c.take(c.conn.receive_data(method + b" / HTTP/1.1\r\nHost: a.test\r\n\r\n", 0.0))
        cid = next(a.conn_id for a in acts if isinstance(a, OpenUpstream))
        c.take(c.conn.upstream_connected(cid, 0.0))
        c.upstream(cid, answer)
        assert c.sent() == answer and c.done_at() == []
        # The head's bytes cost their delay (nginx's write filter), then the request ends.
        c.run_timers()
        assert c.done_at() == [len(answer) * 1000 // 1024 / 1000]
        assert c.timer is not None and c.timer.kind is TimerKind.IDLE
    # A second request pipelined behind a throttled response waits for its end (1 KB/s: 3 s).
    c = Conn(rate_proxy({P + "limit-rate": "1"}))
    cid = c.request()
    c.upstream(cid, HEAD % 3000 + _body(3000))
    assert [a for a in c.take(c.conn.receive_data(
        b"GET /2 HTTP/1.1\r\nHost: a.test\r\n\r\n", 0.0)) if isinstance(a, OpenUpstream)] == []
    c.run_timers()
    # 1024 bytes at 0 s and at 1 s, the rest (3000 + the head - 2048) at 2 s, whose delay
    # ends the request.
    end = 2 + (3000 + len(HEAD % 3000) - 2048) * 1000 // 1024 / 1000
    assert c.done_at() == [pytest.approx(end)]
    assert [t for t, a in c.log if isinstance(a, OpenUpstream)] == [0.0, pytest.approx(end)]


def test_limit_rate_huge_values_neither_fail_nor_throttle() -> None:
    from test_limitrate_s26 import HEAD, Conn, _body
    from test_limitrate_s26 import _proxy as rate_proxy

    for ann in ({P + "limit-rate": "9223372036854775807"},
                {P + "limit-rate": "1", P + "limit-rate-after": "9223372036854775807"},
                {P + "limit-rate": "99999999999999999999999"}):  # Atoi fails: the default, 0
        c = Conn(rate_proxy(ann))
        cid = c.request()
        c.upstream(cid, HEAD % 5000 + _body(5000))
        assert c.done_at() == [0.0] and c.sent() == HEAD % 5000 + _body(5000)


def test_a_mirror_whose_answer_head_never_ends_is_given_up() -> None:
    """Before: the mirror task read until a blank line, ``read_timeout`` between two reads
    only: a mirror streaming bytes without one held the task (one of the 1024 slots) for as
    long as it went on. Now past ``max_response_header_size`` (nginx: "upstream sent too big
    header") it fails, logged as any mirror failure."""

    async def run() -> bool:
        writers: list[asyncio.StreamWriter] = []

        async def endless(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            writers.append(w)
            try:
                for _ in range(300):  # 16 KiB every 5 ms, for up to 1.5 s
                    w.write(b"x" * 16384)
                    await w.drain()
                    await asyncio.sleep(0.005)
            except (ConnectionError, asyncio.CancelledError):
                pass

        sink = await asyncio.start_server(endless, "127.0.0.1", 0)
        port = sink.sockets[0].getsockname()[1]
        router = ingresslib.Router(ingresslib.parse_manifests(_yaml({})), seed=0)
        server = ProxyServer(router)
        await server.start(("127.0.0.1", 0))
        try:
            server_mod._mirror(server, Mirror(("127.0.0.1", port), False,
                                              b"GET / HTTP/1.1\r\nhost: m\r\n\r\n", 1.0, 1.0, 0.5))
            for _ in range(60):
                await asyncio.sleep(0.01)
                if not server.mirrors:
                    return True
            return False
        finally:
            await server.shutdown(0.2)
            for w in writers:
                w.transport.abort()
            sink.close()
            await sink.wait_closed()

    assert asyncio.run(run())


# -- limit-rate: the request ends after its last delay ---------------------------------------


def test_keep_alive_requests_cannot_outrun_the_rate() -> None:
    """Before: a throttled request ended as soon as its last byte was out, its last send's
    delay dropped: a client fetching responses smaller than one second's allowance back to
    back on one connection (pipelined or keep-alive) got every one at once, unthrottled. nginx
    (ngx_http_write_filter_module.c): each send arms the delay "(nsent - sent) * 1000 /
    r->limit_rate"; the response's last buffer (ngx_http_upstream_finalize_request's
    ``ngx_http_send_special(r, NGX_HTTP_LAST)``) meets "if (c->write->delayed) { c->buffered
    |= NGX_HTTP_WRITE_BUFFERED; return NGX_AGAIN; }", so ngx_http_finalize_request waits
    (``ngx_http_set_write_handler``) and the request ends, is logged and lets the next one in
    only once that delay ran out."""
    from test_limitrate_s26 import Conn
    from test_limitrate_s26 import _proxy as rate_proxy
    from ingresslib.proxy import RequestDone

    c = Conn(rate_proxy({P + "limit-rate": "1"}))
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 900\r\n\r\n" + b"x" * 900  # 940 bytes
    c.take(c.conn.receive_data(b"GET /1 HTTP/1.1\r\nHost: a.test\r\n\r\n" * 3, 0.0))
    for _ in range(3):
        cid = [a for _, a in c.log if isinstance(a, OpenUpstream)][-1].conn_id
        c.take(c.conn.upstream_connected(cid, c.now))
        c.upstream(cid, answer)
        c.run_timers()
    # 940 bytes cost 917 ms at 1024 bytes/s: each request ends (and the next begins) then.
    assert c.done_at() == pytest.approx([0.917, 1.834, 2.751])
    assert [t for t, a in c.log if isinstance(a, OpenUpstream)] == pytest.approx([0.0, 0.917, 1.834])
    assert c.sent() == answer * 3
    rec = [a.record for _, a in c.log if isinstance(a, RequestDone)][0]
    assert rec.end - rec.start == pytest.approx(0.917) and rec.bytes_out == 940


def test_asgi_throttled_body_ends_after_its_last_delay() -> None:
    """IngressASGI alike: the body's end (``more_body`` False, what lets an ASGI server go on
    to a keep-alive client's next request) waits for the last bytes' delay. Before, a body
    within one second's allowance ended at once: back-to-back requests outran the rate."""
    from ingresslib.proxy._bandwidth import throttled_send

    now = [10.0]
    slept: list[float] = []
    out: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        out.append({**message, "at": now[0]})

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    async def run() -> None:
        s = throttled_send(send, 1024, 0, lambda: now[0], sleep)
        await s({"type": "http.response.start", "status": 200, "headers": []})
        await s({"type": "http.response.body", "body": b"a" * 940})

    asyncio.run(run())
    bodies = [m for m in out if m["type"] == "http.response.body"]
    assert [(m["body"], m["more_body"]) for m in bodies] == [(b"a" * 940, True), (b"", False)]
    assert slept == pytest.approx([0.917])
    assert bodies[1]["at"] == pytest.approx(10.917)


def test_the_client_cannot_steer_the_mirror_out_of_its_path() -> None:
    """``$request_uri`` is the target as received (nginx's ``r->unparsed_uri``): an
    absolute-form target gives its path only (never a scheme and host to the mirror), and a
    target climbing above the root is nginx's 400 (ngx_http_parse_complex_uri), never
    mirrored."""
    from test_mirror_s26 import _feed
    from test_mirror_s26 import _proxy as proxy_of

    proxy = proxy_of({P + "mirror-target": "http://127.0.0.1:9999/mirror$request_uri"})
    (m,) = _mirrors(_feed(proxy, b"GET http://a.test/x?y=1 HTTP/1.1\r\nHost: a.test\r\n\r\n"))
    assert _split(m.data)[0] == b"GET /mirror/x?y=1 HTTP/1.1"
    for target in (b"/../admin", b"/a/../../admin", b"/%2e%2e/admin"):
        acts = _feed(proxy, b"GET %s HTTP/1.1\r\nHost: a.test\r\n\r\n" % target)
        assert _mirrors(acts) == []
        assert b" 400 " in b"".join(a.data for a in acts if isinstance(a, SendDownstream))


def test_asgi_the_copies_being_read_share_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bodies being copied count against ``_BYTES_MAX`` as they come (as the proxy's
    ``MIRROR_COPIES_LIMIT``): two requests whose first 6 bytes are read before either ends,
    with a bound of 10: the second is proxied, not mirrored; and the bytes are all given back
    (also those of a request whose body never ended)."""
    from ingresslib import IngressASGI

    monkeypatch.setattr(_asgi_mirror, "_BYTES_MAX", 10, raising=False)
    app = IngressASGI(ingresslib.parse_manifests(_yaml(SHADOW)),
                      backends={"default/web:80": None, "default/shadow:80": None})
    web: list[bytes] = []
    shadow: list[bytes] = []

    async def reader(scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            m = await receive()
            body += m.get("body", b"")
            if m["type"] != "http.request" or not m.get("more_body"):
                break
        (shadow if scope["headers"][0] == (b"host", b"shadow.default.svc") else web).append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    app.backends["default/web:80"] = reader
    app.backends["default/shadow:80"] = reader

    async def run() -> int:
        gate = asyncio.Event()
        firsts = [0]

        async def one(tag: bytes, ends: bool) -> None:
            step = 0
            scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                     "method": "POST", "scheme": "http", "path": "/x", "raw_path": b"/x",
                     "query_string": b"", "root_path": "",
                     "headers": [(b"host", b"a.test"), (b"transfer-encoding", b"chunked")],
                     "client": ("192.0.2.7", 5000), "server": ("127.0.0.1", 80)}

            async def receive() -> dict[str, Any]:
                nonlocal step
                step += 1
                if step == 1:
                    firsts[0] += 1
                    if firsts[0] == 2:
                        gate.set()
                    return {"type": "http.request", "body": tag * 6, "more_body": True}
                await gate.wait()
                if step == 2 and ends:
                    return {"type": "http.request", "body": tag * 2, "more_body": False}
                return {"type": "http.disconnect"}

            async def send(message: Any) -> None:
                return None

            await app(scope, receive, send)

        await asyncio.gather(one(b"a", True), one(b"b", True))
        for _ in range(100):
            if not _asgi_mirror._TASKS:
                break
            await asyncio.sleep(0.01)
        await one(b"c", False)  # never ends its body: its copy's bytes still come back
        gc.collect()
        return _asgi_mirror._bytes

    left = asyncio.run(run())
    assert sorted(web) == [b"aaaaaaaa", b"bbbbbbbb", b"cccccc"]
    assert shadow == [b"aaaaaaaa"]
    assert left == 0
