"""Resource bounds of the asyncio server against hostile clients and upstreams.

Each test names the resource a peer could otherwise hold without bound (memory, sockets, time,
tasks) and the nginx (ingress-nginx) rule that bounds it. Everything runs on 127.0.0.1 with
small timeouts given through the settings; every server started here is stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator

import pytest

from ingresslib._demo import start_echo
from ingresslib.proxy import _server
from ingresslib.proxy._actions import Action, SendDownstream, SetTimer, TimerKind
from ingresslib.proxy._connection import ClientConnection
from ingresslib.proxy._server import ProxyServer
from ingresslib.proxy._settings import ProxySettings

from _upstream_helpers import read_to_eof, start_proxy, until
from tests._server_helpers import Client, StubRouter

pytestmark = pytest.mark.network

_REQ = b"GET / HTTP/1.1\r\nHost: x.test\r\n\r\n"


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """True if the peer closed (EOF or reset) within ``seconds``; bytes are read and dropped."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    try:
        while True:
            left = end - loop.time()
            if left <= 0:
                return False
            data = await asyncio.wait_for(reader.read(65536), left)
            if not data:
                return True
    except TimeoutError:
        return False
    except (ConnectionError, ssl.SSLError):
        return True


async def _raw_upstream(handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                                          Awaitable[None]]) -> tuple[asyncio.Server, int]:
    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        # IncompleteReadError: the proxy left before a whole head came (a client that went
        # away aborts the retry it had under way).
        with contextlib.suppress(ConnectionError, asyncio.CancelledError,
                                 asyncio.IncompleteReadError):
            await handler(r, w)
        w.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    return srv, srv.sockets[0].getsockname()[1]


async def _read_head(r: asyncio.StreamReader) -> bytes:
    return await r.readuntil(b"\r\n\r\n")


# --- settings ------------------------------------------------------------------------------


def test_negative_next_upstream_timeout_is_refused() -> None:
    # The ConfigMap and the annotation refuse a negative proxy-next-upstream-timeout; the
    # keyword argument must too (a negative budget would silently mean "no limit").
    with pytest.raises(ValueError, match="proxy_next_upstream_timeout"):
        ProxySettings(proxy_next_upstream_timeout=-1)
    assert ProxySettings(proxy_next_upstream_timeout=0).proxy_next_upstream_timeout == 0


@pytest.mark.parametrize("name", [
    "client_header_timeout", "client_body_timeout", "keep_alive", "proxy_connect_timeout",
    "proxy_read_timeout", "proxy_send_timeout", "upstream_keepalive_timeout",
])
def test_negative_or_nan_durations_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        ProxySettings(**{name: -1.0})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=name):
        ProxySettings(**{name: float("nan")})  # type: ignore[arg-type]
    ProxySettings(**{name: 0.0})  # type: ignore[arg-type]  # 0 keeps its meaning (off)


# --- client side ---------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_pipelined_local_answers_to_a_client_that_does_not_read_stay_bounded() -> None:
    # A client pipelines requests answered locally and never reads the answers: here 308
    # (force-ssl-redirect) to a Location as long as the request line, so each ~8 KiB request
    # adds ~8 KiB of answer. nginx handles pipelined requests one at a time and reads the next
    # only once the current response is sent (ngx_http_set_keepalive runs after the output is
    # flushed), so it holds one response. The server must stop reading the client while the
    # client's write buffer is full; it read on, and with the default keep-alive-requests
    # (1000) one connection held ~8 MB of answers.
    server, port = await start_proxy(StubRouter([("127.0.0.1", 9)]), force_ssl_redirect=True)
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    r, w = await asyncio.open_connection(sock=sock)
    try:
        await until(lambda: server.connections, 1.0)
        (conn,) = server.connections
        assert conn.transport is not None
        conn.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        request = b"GET /" + b"a" * 8000 + b" HTTP/1.1\r\nHost: x.test\r\n\r\n"
        peak = 0
        for _ in range(80):  # up to 640 requests, ~5 MB of answers
            w.write(request * 8)
            try:
                await asyncio.wait_for(w.drain(), 0.3)
            except TimeoutError:
                break  # the server stopped reading us: what we want
            peak = max(peak, conn.transport.get_write_buffer_size())
        peak = max(peak, conn.transport.get_write_buffer_size())
        assert peak < 1024 * 1024, peak
    finally:
        w.transport.abort()
        await server.shutdown(1)


@pytest.mark.asyncio
async def test_tls_client_that_never_sends_a_client_hello_is_closed_by_client_header_timeout(
) -> None:
    # nginx arms client_header_timeout at accept (ngx_http_init_connection: "ngx_add_timer(rev,
    # cscf->client_header_timeout)"), and the TLS handshake and the first request head only
    # add it "if (!rev->timer_set)": one deadline from accept for the handshake and the head.
    # asyncio's own handshake timeout (60 s) knew nothing of the setting.
    server, port = await start_proxy(StubRouter([]), tls=True, client_header_timeout=0.3)
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        assert await _closed_within(r, 2.0)
    finally:
        w.transport.abort()
        await server.shutdown(1)


def _record_head_timers(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The seconds of every HEAD timer the server arms, in order (a deadline shown by what the
    server asks for, not by the clock)."""
    armed: list[float] = []
    real_set_timer = _server._Downstream._set_timer

    def set_timer(down: _server._Downstream, a: SetTimer) -> None:
        if a.kind is TimerKind.HEAD and a.seconds is not None:
            armed.append(a.seconds)
        real_set_timer(down, a)

    monkeypatch.setattr(_server._Downstream, "_set_timer", set_timer)
    return armed


@pytest.mark.asyncio
async def test_tls_head_deadline_counts_from_accept_not_from_the_handshake(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # A slow handshake followed by a trickled head: the deadline is client_header_timeout
    # from accept (nginx's one timer), not a fresh one once the handshake is done. Shown by
    # the head timer the server arms, not by the clock: what the handshake took (at least
    # the client's 0.6 s wait) is taken off it; a fresh deadline would arm the whole 1.0 s.
    armed = _record_head_timers(monkeypatch)
    server, port = await start_proxy(StubRouter([]), tls=True, client_header_timeout=1.0)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    r, w = await asyncio.open_connection("127.0.0.1", port)
    got = b""
    try:
        await asyncio.sleep(0.6)
        await w.start_tls(ctx, server_hostname="a.test")
        for b in b"GET / HTTP/1.1\r\nHost: a.test\r\n":
            w.write(bytes([b]))
            with contextlib.suppress(TimeoutError):
                got += await asyncio.wait_for(r.read(65536), 0.05)
            if b"408" in got or r.at_eof():
                break
        with contextlib.suppress(TimeoutError):
            while b"408" not in got and not r.at_eof():
                got += await asyncio.wait_for(r.read(65536), 2.0)
        # 408 then close (a partial head); nginx closes at the same moment.
        assert got.startswith(b"HTTP/1.1 408 "), got
        # One head timer for the connection (trickled bytes do not re-arm it), armed after
        # the handshake with what was left of the 1.0 s from accept.
        assert len(armed) == 1 and armed[0] <= 1.0 - 0.55, armed
    finally:
        w.transport.abort()
        await server.shutdown(1)


@pytest.mark.asyncio
async def test_tls_handshakes_in_progress_count_in_max_connections() -> None:
    # nginx counts a connection in worker_connections from accept, its TLS handshake
    # included. Here a handshaking connection was invisible to max_connections until its
    # handshake ended: connections that never send a ClientHello held sockets beyond the
    # limit (each for the handshake timeout).
    server, port = await start_proxy(StubRouter([]), tls=True, max_connections=2,
                                     client_header_timeout=5.0)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    silent = [await asyncio.open_connection("127.0.0.1", port) for _ in range(4)]
    try:
        closed = [await _closed_within(r, 0.3) for r, _ in silent]
        assert closed == [False, False, True, True]
        assert server.refused == 2
        # Still full: a real client is refused too.
        with pytest.raises((ConnectionError, ssl.SSLError, asyncio.IncompleteReadError)):
            c = await Client.open(port, tls=ctx, sni="a.test")
            try:
                await asyncio.wait_for(c.get("a.test"), 2.0)
            finally:
                await c.close()
        # The silent ones leave before their handshake: their places are free again.
        for _, w in silent[:2]:
            w.transport.abort()
        await until(lambda: server.refused == 3 and len(server.handshaking) == 0, 1.0)
        c = await Client.open(port, tls=ctx, sni="a.test")
        assert (await asyncio.wait_for(c.get("a.test"), 2.0)).status == 503
        await c.close()
    finally:
        for _, w in silent:
            w.transport.abort()
        await server.shutdown(1)


# --- upstream side -------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_upstream_1xx_flood_is_an_invalid_response() -> None:
    # A hostile upstream answers with informational responses forever, each arriving well
    # within proxy_read_timeout (so that timer never runs out) and each small. nginx reads
    # everything before the final header into one buffer (proxy_buffer_size): the 1xx heads
    # count toward our max_response_header_size, and past it the response is invalid (502).
    stop = asyncio.Event()

    async def flood(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_head(r)
        while not stop.is_set():
            w.write(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" * 10)
            await w.drain()
            await asyncio.sleep(0.01)

    srv, uport = await _raw_upstream(flood)
    server, port = await start_proxy(StubRouter([("127.0.0.1", uport)]), proxy_read_timeout=0.5,
                                     max_response_header_size=4096)
    try:
        c = await Client.open(port)
        resp = await asyncio.wait_for(c.get("a.test"), 2.0)
        assert resp.status == 502
        await c.close()
    finally:
        stop.set()
        await server.shutdown(1)
        srv.close()
        await srv.wait_closed()


@pytest.mark.asyncio
@pytest.mark.parametrize("drip", [True, False])
async def test_upstream_endless_or_huge_header_block_is_an_invalid_response(drip: bool) -> None:
    # A response head that never ends (header lines dripped within proxy_read_timeout) or
    # arrives all at once too large: max_response_header_size bounds what is buffered of it
    # (nginx: proxy_buffer_size, "upstream sent too big header"), then 502.
    stop = asyncio.Event()

    async def endless(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_head(r)
        w.write(b"HTTP/1.1 200 OK\r\n")
        if not drip:
            w.write(b"X-Big: " + b"b" * 100_000 + b"\r\n\r\n")
        while not stop.is_set():
            w.write(b"X-More: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n" * 10)
            await w.drain()
            await asyncio.sleep(0.01)

    srv, uport = await _raw_upstream(endless)
    server, port = await start_proxy(StubRouter([("127.0.0.1", uport)]), proxy_read_timeout=0.5,
                                     max_response_header_size=4096)
    try:
        c = await Client.open(port)
        assert (await asyncio.wait_for(c.get("a.test"), 2.0)).status == 502
        await c.close()
    finally:
        stop.set()
        await server.shutdown(1)
        srv.close()
        await srv.wait_closed()


@pytest.mark.asyncio
async def test_upstream_keepalive_connections_bounds_idle_connections_in_all() -> None:
    # ingress-nginx has one upstream block for every backend (nginx.tmpl: "upstream
    # upstream_balancer { ... keepalive {{ $cfg.UpstreamKeepaliveConnections }}; ...}"), and
    # nginx's keepalive is "the maximum number of idle keepalive connections to upstream
    # servers that are preserved in the cache of each worker process. When this number is
    # exceeded, the least recently used connections are closed." The pool kept that many per
    # endpoint: idle sockets grew with the number of endpoints.
    backends = [await start_echo("svc", p) for p in "abc"]
    eps = [("127.0.0.1", b.port) for b in backends]
    server, port = await start_proxy(StubRouter(eps), upstream_keepalive_connections=2)
    try:
        c = await Client.open(port)
        for _ in range(3):  # round robin: one request, one idle connection per endpoint
            assert (await c.get("a.test")).status == 200
        assert server.pool.idle_count() == 2
        # The least recently used one went: the first endpoint's.
        assert [server.pool.idle_count(ep) for ep in eps] == [0, 1, 1]
        for _ in range(3):  # and the pool still serves every endpoint
            assert (await c.get("a.test")).status == 200
        assert server.pool.idle_count() == 2
        await c.close()
    finally:
        await server.shutdown(1)
        for b in backends:
            await b.stop()


@contextlib.contextmanager
def _unanswered_listener() -> Iterator[int]:
    """A port on 127.0.0.1 whose connects hang: a listening socket whose accept queue
    (``listen(0)``) is full, so Linux drops further SYNs. Yields the port."""
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen(0)
    port = ls.getsockname()[1]
    fill = []
    try:
        for _ in range(3):
            s = socket.socket()
            fill.append(s)
            s.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                s.connect(("127.0.0.1", port))
        yield port
    finally:
        for s in fill:
            s.close()
        ls.close()


@pytest.mark.asyncio
async def test_client_abort_cancels_a_pending_upstream_connect() -> None:
    # A client sends a request to an endpoint whose connect hangs, then leaves. nginx closes
    # the upstream socket it is connecting (ngx_http_upstream_check_broken_connection ->
    # finalize, proxy_ignore_client_abort off); the core says so too ("a CloseUpstream for a
    # conn_id whose connect is still pending means: cancel the connect"). The server let the
    # connect run to proxy_connect_timeout: a socket and a task per request that no longer
    # has a client (and counts in no max_connections), at whatever rate a client leaves.
    with _unanswered_listener() as uport:
        server, port = await start_proxy(StubRouter([("127.0.0.1", uport)]),
                                         proxy_connect_timeout=3)
        try:
            for _ in range(5):
                r, w = await asyncio.open_connection("127.0.0.1", port)
                w.write(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
                await w.drain()
                await asyncio.sleep(0.05)
                w.transport.abort()
            for _ in range(50):
                if not server.tasks and not server.connections:
                    break
                await asyncio.sleep(0.01)
            assert not server.connections
            assert not server.tasks
        finally:
            await server.shutdown(1)


@pytest.mark.asyncio
async def test_a_body_of_tiny_chunks_does_not_starve_other_connections(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Parsing a chunked body costs the core microseconds per chunk (h11's reader is Python):
    # one read of 256 KiB of 1-byte chunks ("1\r\na\r\n" x 43000) kept the event loop
    # busy for most of a second, and every other connection waited that long. The server
    # hands a large read to the core in slices (``_FEED_SLICE``), yielding to the loop
    # between them, so one connection's CPU-heavy bytes interleave with everyone else's.
    # Shown by the order of events, not by the clock: every hand-over to the core is
    # recorded, and another connection's answers must go out while a read of the big body
    # is only partly handed over.
    # The loop time one iteration may spend feeding (``_FEED_BUDGET``) is wall-clock: 0
    # makes the server yield after every slice, so the order below does not depend on how
    # fast this machine parses.
    monkeypatch.setattr(_server, "_FEED_BUDGET", 0.0)
    head = b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n"
    body = b"1\r\na\r\n" * 60000  # 360 KB: the server reads it in big gulps
    # ("big", bytes handed over) and ("answer", big bytes handed so far, big bytes read
    # and waiting for the next slice), in the order they happened.
    events: list[tuple[str, int, int]] = []
    big: list[ClientConnection] = []
    sliced = asyncio.Event()  # the big body is being handed over in slices
    fed = asyncio.Event()  # ... and all of it was
    real_receive_data = ClientConnection.receive_data

    def receive_data(conn: ClientConnection, data: bytes, now: float) -> list[Action]:
        if not big and data.startswith(b"POST "):
            big.append(conn)
        actions = real_receive_data(conn, data, now)
        if big and conn is big[0]:
            events.append(("big", len(data), 0))
            handed = sum(n for kind, n, _ in events if kind == "big")
            if handed > len(head):
                sliced.set()
            if handed == len(head) + len(body):
                fed.set()
        elif any(type(a) is SendDownstream for a in actions):
            down = [d for d in server.connections if big and d.conn is big[0]]
            events.append(("answer", sum(n for kind, n, _ in events if kind == "big"),
                           len(down[0].pending) if down else 0))
        return actions

    monkeypatch.setattr(ClientConnection, "receive_data", receive_data)
    connected = asyncio.Event()

    async def sink(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        connected.set()
        await _read_head(r)
        while await r.read(65536):
            pass

    srv, uport = await _raw_upstream(sink)
    server, port = await start_proxy(StubRouter([("127.0.0.1", uport)], known="a.test"),
                                     proxy_body_size=0)
    r, w = await asyncio.open_connection("127.0.0.1", port)
    orr, ow = await asyncio.open_connection("127.0.0.1", port)
    try:
        w.write(head)
        # The upstream takes the body from the start (no hold-back while it connects).
        await asyncio.wait_for(connected.wait(), 5.0)
        w.write(body)
        await asyncio.wait_for(sliced.wait(), 5.0)
        answered = 0
        while not fed.is_set() and answered < 1000:
            ow.write(b"GET / HTTP/1.1\r\nHost: other.test\r\n\r\n")
            resp = await asyncio.wait_for(_read_head(orr), 5.0)
            await asyncio.wait_for(orr.readexactly(14), 5.0)  # "404 Not Found\n"
            assert resp.startswith(b"HTTP/1.1 404 ")
            answered += 1
        await asyncio.wait_for(fed.wait(), 10.0)
        got = list(events)  # (the abort below hands what is left over whole)
    finally:
        w.transport.abort()
        ow.transport.abort()
        await server.shutdown(1)
        srv.close()
        await srv.wait_closed()
    handed = [n for kind, n, _ in got if kind == "big"]
    answers = [(i, fed_so_far, waiting) for i, (kind, fed_so_far, waiting) in enumerate(got)
               if kind == "answer"]
    # (1) No hand-over of the big body is larger than a slice.
    assert max(handed) <= _server._FEED_SLICE, max(handed)
    # (2) Another connection was answered between two slices of one read of the big body:
    # bytes of it were read and still waiting, with big hand-overs before and after.
    mid_read = [i for i, _, waiting in answers if waiting > 0]
    assert mid_read, answers
    assert any(got[j][0] == "big" for j in range(mid_read[0]))
    assert any(got[j][0] == "big" for j in range(mid_read[0] + 1, len(got)))
    # (3) The first answer went out while the big body was not all handed over yet.
    assert answers and answers[0][1] < len(head) + len(body), answers[0]


# --- bounds that hold (regression tests) ---------------------------------------------------


@pytest.mark.asyncio
async def test_trickled_head_gets_408_at_the_absolute_deadline_also_after_keep_alive(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Slowloris: a head trickled one byte at a time. client_header_timeout is absolute from
    # the head's first byte (from accept for the first request), bytes do not extend it; the
    # same holds for the second request of a keep-alive connection. The head timers the
    # server arms are recorded: one per head, the whole timeout, none for the trickled bytes.
    armed = _record_head_timers(monkeypatch)
    server, port = await start_proxy(StubRouter([], known="only.test"), client_header_timeout=0.5)
    try:
        for second in (False, True):
            armed.clear()
            r, w = await asyncio.open_connection("127.0.0.1", port)
            try:
                if second:
                    w.write(_REQ)  # answered 404, the connection stays
                    head = await asyncio.wait_for(_read_head(r), 2.0)
                    assert head.startswith(b"HTTP/1.1 404 ")
                    await asyncio.wait_for(r.readexactly(14), 2.0)  # "404 Not Found\n"
                    await asyncio.sleep(0.3)  # idle: the deadline starts at the next byte
                t0 = time.monotonic()
                got = b""
                for b in b"GET / HTTP/1.1\r\nHost: x.test\r\nX-Slow: " + b"a" * 1000:
                    w.write(bytes([b]))
                    with contextlib.suppress(TimeoutError):
                        got += await asyncio.wait_for(r.read(65536), 0.04)
                    if got:
                        break
                assert got.startswith(b"HTTP/1.1 408 "), got
                # Not before the deadline: from the first byte of the second head, not from
                # the answer before it (a lower bound: a loaded machine only makes it later).
                assert time.monotonic() - t0 > 0.4
                # The connection's first head timer (at accept), and one more for the second
                # head (at its first byte); the trickled bytes re-armed nothing.
                assert armed == ([0.5, 0.5] if second else [0.5]), armed
                assert await _closed_within(r, 1.0)
            finally:
                w.transport.abort()
    finally:
        await server.shutdown(1)


@pytest.mark.asyncio
async def test_keep_alive_requests_closes_after_the_last_one() -> None:
    server, port = await start_proxy(StubRouter([], known="only.test"), keep_alive_requests=3)
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        w.write(_REQ * 5)  # two more than allowed, pipelined
        data = b""
        with contextlib.suppress(TimeoutError):
            while not r.at_eof():
                data += await asyncio.wait_for(r.read(65536), 2.0)
        assert r.at_eof()
        assert data.count(b"HTTP/1.1 404 ") == 3
        assert data.count(b"connection: close") == 1
    finally:
        w.transport.abort()
        await server.shutdown(1)


async def _tunnel_upstream(read_after: bool) -> tuple[asyncio.Server, int, asyncio.Event]:
    done = asyncio.Event()

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_head(r)
        w.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\n\r\n")
        await w.drain()
        if read_after:
            while await r.read(65536):
                pass
        else:
            await done.wait()

    srv, port = await _raw_upstream(handle)
    return srv, port, done


_UPGRADE = (b"GET /ws HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\n\r\n")


@pytest.mark.asyncio
async def test_idle_tunnel_is_closed_by_proxy_read_timeout() -> None:
    # nginx's ngx_http_upstream_process_upgraded re-arms proxy_read_timeout on traffic either
    # way; a tunnel with none is closed.
    srv, uport, done = await _tunnel_upstream(read_after=True)
    server, port = await start_proxy(StubRouter([("127.0.0.1", uport)]), proxy_read_timeout=0.4)
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        w.write(_UPGRADE)
        head = await asyncio.wait_for(_read_head(r), 2.0)
        assert head.startswith(b"HTTP/1.1 101 ")
        t0 = time.monotonic()
        for _ in range(3):  # traffic keeps it open
            await asyncio.sleep(0.25)
            w.write(b"ping")
        assert not r.at_eof()
        assert await _closed_within(r, 2.0)  # closed within 2 s (a hang guard)...
        # ... and not before proxy_read_timeout after the last ping: the traffic re-armed it
        # (a lower bound: a loaded machine only makes the close later).
        assert time.monotonic() - t0 - 0.75 > 0.3
    finally:
        done.set()
        w.transport.abort()
        await server.shutdown(1)
        srv.close()
        await srv.wait_closed()


@pytest.mark.asyncio
async def test_tunnel_to_an_upstream_that_does_not_read_is_cut_by_proxy_send_timeout() -> None:
    srv, uport, done = await _tunnel_upstream(read_after=False)
    server, port = await start_proxy(StubRouter([("127.0.0.1", uport)]), proxy_send_timeout=0.3,
                                     proxy_read_timeout=30)
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        w.write(_UPGRADE)
        head = await asyncio.wait_for(_read_head(r), 2.0)
        assert head.startswith(b"HTTP/1.1 101 ")

        async def push() -> None:
            with contextlib.suppress(ConnectionError):
                while True:
                    w.write(b"x" * 65536)
                    await w.drain()

        pusher = asyncio.ensure_future(push())
        try:
            assert await _closed_within(r, 3.0)
        finally:
            pusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pusher
        assert not server.connections
    finally:
        done.set()
        w.transport.abort()
        await server.shutdown(1)
        srv.close()
        await srv.wait_closed()


@pytest.mark.asyncio
async def test_pool_drops_idle_connections_after_the_timeout_and_ones_the_upstream_closed(
) -> None:
    a = await start_echo("svc", "a")
    server, port = await start_proxy(StubRouter([("127.0.0.1", a.port)]),
                                     upstream_keepalive_timeout=0.2)
    ep = ("127.0.0.1", a.port)
    try:
        c = await Client.open(port)
        assert (await c.get("a.test")).status == 200
        assert server.pool.idle_count(ep) == 1
        # upstream-keepalive-timeout: closed once idle that long (nginx arms a timer per idle
        # connection), not up to 1 s or 1.5 x the timeout later (a sweep every max(1 s, t/2)).
        # Shown by the timer the pool arms, not by the clock: due exactly the timeout after
        # the connection went idle.
        (idle,) = server.pool._lru
        sweeper = server.pool._sweeper
        assert sweeper is not None and sweeper.when() == idle.idle_since + 0.2
        assert await until(lambda: not server.pool.idle_count(ep), 5.0)
        assert idle.closed
        # A pooled connection the upstream closes leaves the pool at once.
        server.pool.settings = ProxySettings(upstream_keepalive_timeout=60)
        assert (await c.get("a.test")).status == 200
        assert server.pool.idle_count(ep) == 1
        for t in list(a.connections):
            t.close()
        await until(lambda: not server.pool.idle_count(ep), 1.0)
        assert server.pool.idle_count(ep) == 0
        assert (await c.get("a.test")).status == 200
        await c.close()
    finally:
        await server.shutdown(1)
        await a.stop()


@pytest.mark.asyncio
async def test_no_task_or_connection_left_after_clients_go() -> None:
    a = await start_echo("svc", "a")
    server, port = await start_proxy(StubRouter([("127.0.0.1", a.port)]))
    me = asyncio.current_task()
    try:
        before = {t for t in asyncio.all_tasks() if t is not me}
        for _ in range(5):
            c = await Client.open(port)
            assert (await c.get("a.test")).status == 200
            await c.close()
        # A client that leaves mid-request (head sent, never read).
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        await w.drain()
        w.transport.abort()
        await until(lambda: not (server.connections or server.lingering or server.tasks), 1.0)
        assert not server.connections and not server.lingering and not server.tasks
        left = {t for t in asyncio.all_tasks() if t is not me} - before
        # The echo backend's own handler tasks are not ours; ProxyServer makes none but
        # connects, and it has none left.
        assert not [t for t in left if "_connect" in repr(t.get_coro())]
    finally:
        await server.shutdown(1)
        await a.stop()


@pytest.mark.asyncio
async def test_accept_out_of_file_descriptors_neither_spins_nor_stops_the_server(
        caplog: pytest.LogCaptureFixture) -> None:
    # EMFILE on accept: asyncio's accept loop reports it, stops watching the listening socket
    # and tries again a second later (base_events ACCEPT_RETRY_DELAY) instead of spinning on a
    # readable socket it cannot accept from; the server serves again once descriptors are free.
    # Counted, not timed: each wake-up tries at most `backlog` accepts (CPython before
    # python/cpython#151615 does not stop at the first EMFILE) and logs each, so a listener
    # that spun would log without bound, one that waits logs at most backlog per second.
    resource = pytest.importorskip("resource")
    backlog = 16
    server = ProxyServer(StubRouter([], known="only.test"))  # type: ignore[arg-type]
    await server.start(("127.0.0.1", 0), backlog=backlog)
    port = server.addresses[0][2]
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        socks: list[socket.socket] = []
        try:
            import os

            used = len(os.listdir("/proc/self/fd"))
            resource.setrlimit(resource.RLIMIT_NOFILE, (used + 8, hard))
            with contextlib.suppress(OSError):
                for _ in range(64):  # every free descriptor becomes a client socket, queued
                    s = socket.socket()
                    socks.append(s)
                    s.setblocking(False)
                    with contextlib.suppress(BlockingIOError):
                        s.connect(("127.0.0.1", port))
            assert len(socks) < 64  # the limit was reached
            await asyncio.sleep(1.5)  # the first wake-up and the retries after ACCEPT_RETRY_DELAY
            errors = sum("out of system resource" in r.getMessage() for r in caplog.records)
            # Each failed accept also re-arms the retry (the same bug), so a few wake-ups follow
            # one another; a spinning loop would log thousands per second.
            assert 1 <= errors <= 16 * backlog, errors  # reported; no busy loop
            assert server.servers[0].is_serving()
        finally:
            for s in socks:
                s.close()
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(_REQ)
        head = await asyncio.wait_for(_read_head(r), 3.0)
        assert head.startswith(b"HTTP/1.1 404 ")
        w.close()
    finally:
        await server.shutdown(1)


@pytest.mark.asyncio
async def test_shutdown_closes_tls_handshakes_in_progress() -> None:
    server, port = await start_proxy(StubRouter([]), tls=True, client_header_timeout=5.0)
    silent = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
    try:
        await until(lambda: len(server.handshaking) == 2, 1.0)
        assert len(server.handshaking) == 2
        await server.shutdown(1)
        assert not server.handshaking
        assert [await _closed_within(r, 1.0) for r, _ in silent] == [True, True]
    finally:
        for _, w in silent:
            w.transport.abort()
        await server.shutdown(1)


@pytest.mark.asyncio
async def test_pipelined_requests_behind_one_in_flight_are_held_to_a_bound() -> None:
    # A request waits on a silent upstream; the client pipelines megabytes behind it. The
    # core holds 64 KiB of them (``reading_wanted``), the server stops reading: the rest stays
    # in the client's socket.
    gate = asyncio.Event()

    async def silent(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await _read_head(r)
        await gate.wait()

    srv, uport = await _raw_upstream(silent)
    server, port = await start_proxy(StubRouter([("127.0.0.1", uport)]), proxy_read_timeout=30)
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        w.write(b"GET /first HTTP/1.1\r\nHost: a.test\r\n\r\n")
        await w.drain()
        await until(lambda: server.connections, 30)  # accepted: waited for, not slept for
        (conn,) = server.connections
        sent = 0
        for _ in range(200):  # up to ~13 MB
            w.write(_REQ * 2000)
            try:
                await asyncio.wait_for(w.drain(), 0.2)
            except TimeoutError:
                break
            sent += len(_REQ) * 2000
        assert sent < 8 * 1024 * 1024
        assert conn.client_paused
        assert len(conn.conn._inbuf) <= 64 * 1024 + 256 * 1024
    finally:
        gate.set()
        w.transport.abort()
        await server.shutdown(1)
        # The gate ends the first try, and its retry's connect may have been accepted by the
        # kernel just before the client's reset aborted it: let the upstream server take that
        # connection (its handler reads the EOF and closes it) before closing the server.
        # asyncio 3.11 creates an accepted connection's transport in a task of its own; after
        # Server.close() that task fails and the socket is left unclosed.
        await asyncio.sleep(0.05)
        srv.close()
        await srv.wait_closed()


@pytest.mark.asyncio
async def test_upstream_keepalive_requests_retires_a_pooled_connection() -> None:
    a = await start_echo("svc", "a")
    server, port = await start_proxy(StubRouter([("127.0.0.1", a.port)]),
                                     upstream_keepalive_requests=2)
    try:
        c = await Client.open(port)
        for _ in range(5):
            assert (await c.get("a.test")).status == 200
        await c.close()
        assert a.requests == 5 and a.accepted == 3  # 2 + 2 + 1
    finally:
        await server.shutdown(1)
        await a.stop()


@pytest.mark.asyncio
async def test_a_half_close_after_sliced_pipelined_requests_comes_after_them() -> None:
    # A large read of pipelined requests is handed to the core a slice per loop iteration;
    # the client's EOF behind them must reach the core after every one of them, as before.
    server, port = await start_proxy(StubRouter([], known="only.test"), keep_alive_requests=5000)
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        w.write(_REQ * 3000)
        w.write_eof()
        data = await read_to_eof(r)
        assert data.count(b"HTTP/1.1 404 ") == 3000
    finally:
        w.transport.abort()
        await server.shutdown(1)
