"""Server review (G18): the asyncio server against hostile or slow peers and faulty hooks.

Every server here listens on 127.0.0.1 and is stopped at the end; every wait is bounded (a
read with a timeout), and no test asserts on how long something took.

Defect fixed: an exception out of the core raised in one of the loop's own callbacks (a timer,
an upstream connect's task, an upstream's callbacks), for instance from a duck-typed router's
``observe`` (CONTRACT: ``observe(decision, endpoint, seconds, ok)``), reached only the loop's
exception handler: the client connection stayed open with no timer armed, never answered,
held until shutdown and counted against ``max_connections``. Now that connection alone is
reset, the error logged, and the server serves on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from ingresslib.proxy._server import ProxyServer

from _upstream_helpers import start_proxy, until
from tests._server_helpers import StubRouter

pytestmark = pytest.mark.network

_REQ = b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"


class _ObserveRaises(StubRouter):
    """A router whose ``next_endpoint`` hook has a bug: called on a failed try, from the
    connect's task, a loop timer or the upstream's callback. (``observe`` is feedback only:
    the core logs its exception and goes on.)"""

    def next_endpoint(self, decision: Any, tried: Any) -> tuple[str, int] | None:
        raise RuntimeError("next_endpoint bug")


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bytes | None:
    """What the peer sent before it closed (EOF or reset) within ``seconds``; None if it did
    not close by then."""
    got = b""
    try:
        while True:
            data = await asyncio.wait_for(reader.read(65536), seconds)
            if not data:
                return got
            got += data
    except TimeoutError:
        return None
    except ConnectionError:
        return got


async def _upstream(handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                                      Awaitable[None]]) -> tuple[asyncio.Server, int, list[Any]]:
    writers: list[asyncio.StreamWriter] = []

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        writers.append(w)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError,
                                 asyncio.CancelledError):
            await handler(r, w)
        w.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    return srv, srv.sockets[0].getsockname()[1], writers


async def _stop(srv: asyncio.Server, writers: list[Any]) -> None:
    srv.close()
    for w in writers:
        w.transport.abort()
    await srv.wait_closed()


def _unsent(down: Any) -> int:
    """Bytes the proxy wrote to a client connection that are still in the process: its
    transport's buffer, and under a TLS one the socket transport's (asyncio internals)."""
    t = down.transport
    raw = getattr(getattr(t, "_ssl_protocol", None), "_transport", None)
    return int(t.get_write_buffer_size()) + (int(raw.get_write_buffer_size()) if raw else 0)


def _closed_port() -> int:
    """A port on 127.0.0.1 nobody listens on (a connect to it is refused)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


async def _still_serves(port: int) -> None:
    """Another client on a new connection is answered (404: a host with no route)."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        w.write(b"GET / HTTP/1.1\r\nHost: other.test\r\n\r\n")
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 404 ")
    finally:
        w.transport.abort()


async def _hook_failure_resets_only_that_connection(server: ProxyServer, port: int,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        w.write(_REQ)
        # Before the fix: never answered nor closed (no timer left), held by the server.
        assert await _closed_within(r, 5) is not None
    finally:
        w.transport.abort()
    assert await until(lambda: server.sockets_held() == 0, 5)
    assert any("the proxy failed on" in rec.getMessage() for rec in caplog.records)
    await _still_serves(port)


# --- Q5: an exception in a hook never holds a connection, nor stops the server ----------------


@pytest.mark.asyncio
async def test_observe_raising_after_a_refused_connect_resets_that_connection(
        caplog: pytest.LogCaptureFixture) -> None:
    # The connect's task tells the core; the core calls observe(..., ok=False), which raises.
    caplog.set_level(logging.ERROR, "ingresslib.server")
    router = _ObserveRaises([("127.0.0.1", _closed_port())], known="a.test")
    server, port = await start_proxy(router)
    try:
        await _hook_failure_resets_only_that_connection(server, port, caplog)
    finally:
        await server.shutdown(1)


@pytest.mark.asyncio
async def test_observe_raising_at_a_read_timeout_resets_that_connection(
        caplog: pytest.LogCaptureFixture) -> None:
    # proxy_read_timeout fires in a loop timer; the core observes the failed try.
    caplog.set_level(logging.ERROR, "ingresslib.server")

    async def silent(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await r.readuntil(b"\r\n\r\n")
        await asyncio.sleep(30)

    up, uport, writers = await _upstream(silent)
    server, port = await start_proxy(_ObserveRaises([("127.0.0.1", uport)], known="a.test"),
                                     proxy_read_timeout=0.2)
    try:
        await _hook_failure_resets_only_that_connection(server, port, caplog)
    finally:
        await server.shutdown(1)
        await _stop(up, writers)


@pytest.mark.asyncio
async def test_observe_raising_when_the_upstream_closes_without_answering_resets_that_connection(
        caplog: pytest.LogCaptureFixture) -> None:
    # The upstream's EOF (its own protocol's callback) reaches the core; observe raises.
    caplog.set_level(logging.ERROR, "ingresslib.server")

    async def hang_up(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await r.readuntil(b"\r\n\r\n")

    up, uport, writers = await _upstream(hang_up)
    server, port = await start_proxy(_ObserveRaises([("127.0.0.1", uport)], known="a.test"))
    try:
        await _hook_failure_resets_only_that_connection(server, port, caplog)
    finally:
        await server.shutdown(1)
        await _stop(up, writers)


@pytest.mark.asyncio
async def test_a_raising_record_sink_neither_drops_the_response_nor_the_connection(
        caplog: pytest.LogCaptureFixture) -> None:
    # The record sink (access log, metrics) is caught and logged: the client gets its answer
    # and its connection stays usable.
    caplog.set_level(logging.ERROR, "ingresslib.server")
    calls: list[int] = []

    def sink(record: Any) -> None:
        calls.append(record.status)
        raise RuntimeError("metrics bug")

    server, port = await start_proxy(StubRouter([], known="only.test"), on_record=sink)
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        for _ in range(2):
            w.write(_REQ)
            head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 404 ")
            await asyncio.wait_for(r.readexactly(14), 5)
        assert calls == [404, 404]
        assert sum("on_record failed" in rec.getMessage() for rec in caplog.records) == 2
        assert len(server.connections) == 1
    finally:
        w.transport.abort()
        await server.shutdown(1)


# --- Q1: a client that never reads a response that never ends ------------------------------


@pytest.mark.asyncio
async def test_a_client_that_never_reads_an_endless_response_holds_a_bounded_buffer() -> None:
    # The upstream writes as fast as it can; the client reads nothing. The proxy stops reading
    # the upstream once the client's write buffer is full (asyncio's high-water mark, plus at
    # most one read of the upstream): counted bytes, sampled after the upstream has stalled.
    sent = [0]
    stalled = asyncio.Event()

    async def endless(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await r.readuntil(b"\r\n\r\n")
        w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"10000\r\n" + b"x" * 65536 + b"\r\n"
        while sent[0] < 256 * 1024 * 1024:  # (a bound for the test itself)
            w.write(chunk)
            sent[0] += len(chunk)
            try:
                await asyncio.wait_for(w.drain(), 0.5)
            except TimeoutError:
                stalled.set()  # the proxy (and the kernel buffers between) took no more
                await w.drain()

    up, uport, writers = await _upstream(endless)
    server, port = await start_proxy(StubRouter([("127.0.0.1", uport)]))
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    r, w = await asyncio.open_connection(sock=sock)
    try:
        w.transport.pause_reading()  # never reads
        w.write(_REQ)
        await asyncio.wait_for(stalled.wait(), 20)
        (down,) = server.connections
        assert down.client_full
        (ups,) = down.upstreams.values()
        assert ups.transport is not None and not ups.transport.is_reading()
        held = down.transport.get_write_buffer_size() if down.transport else 0
        # 64 KiB high-water mark + one upstream read (256 KiB at most) + chunk framing.
        assert held <= 64 * 1024 + 256 * 1024 + 4096, held
        assert sent[0] < 256 * 1024 * 1024
    finally:
        w.transport.abort()
        await server.shutdown(1)
        await _stop(up, writers)


# --- Q2: connections that never send a byte --------------------------------------------------


@pytest.mark.asyncio
async def test_connections_that_never_send_are_closed_at_the_head_deadline_without_an_answer(
) -> None:
    # nginx arms client_header_timeout at accept (ngx_http_init_connection) and closes a
    # connection that sent nothing without a response. A burst of them over the limit is
    # refused at accept, and they leave no socket held.
    server, port = await start_proxy(StubRouter([]), client_header_timeout=0.3,
                                     max_connections=4)
    conns = [await asyncio.open_connection("127.0.0.1", port) for _ in range(6)]
    try:
        results = [await _closed_within(r, 5) for r, _ in conns]
        assert results == [b""] * 6  # closed, none answered (two refused at once)
        assert server.refused == 2
        assert await until(lambda: server.sockets_held() == 0, 5)
    finally:
        for _, w in conns:
            w.transport.abort()
        await server.shutdown(1)


# --- Q4: shutdown -----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_shutdown_closes_idle_and_never_used_connections_at_once(
        caplog: pytest.LogCaptureFixture) -> None:
    # An idle keep-alive connection and one that never sent a byte are not "busy": shutdown
    # closes both at once, and does not wait for its grace period to abort them.
    caplog.set_level(logging.WARNING, "ingresslib.server")
    server, port = await start_proxy(StubRouter([], known="only.test"))
    r1, w1 = await asyncio.open_connection("127.0.0.1", port)
    r2, w2 = await asyncio.open_connection("127.0.0.1", port)
    try:
        w1.write(_REQ)
        await asyncio.wait_for(r1.readuntil(b"404 Not Found\n"), 5)
        assert await until(lambda: len(server.connections) == 2, 5)
        await asyncio.wait_for(server.shutdown(30), 10)
        assert not any("still busy" in rec.getMessage() for rec in caplog.records)
        assert await _closed_within(r1, 5) == b""
        assert await _closed_within(r2, 5) == b""
    finally:
        w1.transport.abort()
        w2.transport.abort()


@pytest.mark.asyncio
@pytest.mark.parametrize("how", ["reset", "fin"])
async def test_a_core_failure_on_the_clients_close_still_releases_the_connection(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, how: str) -> None:
    # Whatever the core does when told the client left (a bug: here receive_eof raises), the
    # socket is gone and the connection must leave ``connections``: it counted against
    # max_connections, and shutdown waited its whole grace period for it.
    from ingresslib.proxy._connection import ClientConnection

    def broken(self: Any, now: float) -> list[Any]:
        raise RuntimeError("core bug")

    caplog.set_level(logging.ERROR, "ingresslib.server")
    server, port = await start_proxy(StubRouter([], known="only.test"))
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        assert await until(lambda: len(server.connections) == 1, 5)
        monkeypatch.setattr(ClientConnection, "receive_eof", broken)
        if how == "reset":
            w.transport.abort()
        else:
            w.write_eof()
        assert await until(lambda: server.sockets_held() == 0, 5)
        w.transport.abort()
        await _still_serves(port)
    finally:
        await server.shutdown(1)


@pytest.mark.asyncio
@pytest.mark.parametrize("tls", [False, True])
async def test_shutdown_lets_a_finished_response_still_in_the_write_buffer_go_out(
        caplog: pytest.LogCaptureFixture, tls: bool) -> None:
    # The core is done with the request (the upstream's whole response went through it) but
    # part of the response still waits in the client's write buffer: a slow client. Shutdown
    # closed such a connection and aborted it at once ("end_closing"), cutting the response's
    # tail; it is given the grace period to flush now.
    caplog.set_level(logging.WARNING, "ingresslib.server")
    size = 48 * 1024  # under asyncio's 64 KiB high-water mark: the upstream is never paused
    body = bytes(range(256)) * (size // 256)

    async def answer(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await r.readuntil(b"\r\n\r\n")
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + body)
        await w.drain()
        await r.read()  # until the proxy closes

    up, uport, writers = await _upstream(answer)
    server, port = await start_proxy(StubRouter([("127.0.0.1", uport)]), tls=tls)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    client_tls = None
    if tls:
        client_tls = ssl.create_default_context()
        client_tls.check_hostname = False
        client_tls.verify_mode = ssl.CERT_NONE
    r, w = await asyncio.open_connection(sock=sock, ssl=client_tls,
                                         server_hostname="a.test" if tls else None)
    # Not reading yet: the socket itself (asyncio's TLS layer would read on into its buffer).
    reading = getattr(getattr(w.transport, "_ssl_protocol", None), "_transport", w.transport)
    try:
        reading.pause_reading()
        assert await until(lambda: len(server.connections) == 1, 5)
        (down,) = server.connections
        assert down.transport is not None
        down.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        w.write(_REQ)
        # The whole response passed the core, and part of it waits in the write buffer.
        assert await until(lambda: down.conn.idle and _unsent(down) > 0, 5)
        stop = asyncio.create_task(server.shutdown(20))
        await asyncio.sleep(0.05)
        reading.resume_reading()
        data = await asyncio.wait_for(r.read(), 10)  # to EOF
        head, _, got = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        assert len(got) == size and got == body
        await asyncio.wait_for(stop, 10)
        assert not any("aborting" in rec.getMessage() for rec in caplog.records)
    finally:
        w.transport.abort()
        await server.shutdown(1)
        await _stop(up, writers)


# --- sound behaviour, kept (regression tests) ------------------------------------------------


async def _path_echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    """Answers each request on the connection with its own target as the body."""
    while True:
        head = await r.readuntil(b"\r\n\r\n")
        target = head.split(b" ", 2)[1]
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(target), target))
        await w.drain()


@pytest.mark.asyncio
async def test_many_pipelined_proxied_requests_in_one_packet_are_answered_in_order() -> None:
    up, uport, writers = await _upstream(_path_echo)
    server, port = await start_proxy(StubRouter([("127.0.0.1", uport)]))
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        n = 200
        w.write(b"".join(b"GET /r%d HTTP/1.1\r\nHost: a.test\r\n\r\n" % i for i in range(n)))
        bodies = []
        for _ in range(n):
            head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 10)
            assert head.startswith(b"HTTP/1.1 200 ")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            bodies.append(await asyncio.wait_for(r.readexactly(length), 10))
        assert bodies == [b"/r%d" % i for i in range(n)]
    finally:
        w.transport.abort()
        await server.shutdown(1)
        await _stop(up, writers)


@pytest.mark.asyncio
async def test_proxy_read_timeout_is_between_reads_and_a_stalled_body_closes_the_client() -> None:
    # nginx proxy_read_timeout: "The timeout is set only between two successive read
    # operations, not for the transmission of the whole response." A response dripped one byte
    # at a time for longer than the timeout in all completes; one that stops mid-body is cut
    # (the response has begun: the client connection is closed, its body short).
    drips = 24

    async def drip(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while True:
            head = await r.readuntil(b"\r\n\r\n")
            stall = b" /stall " in head
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % drips)
            for i in range(drips):
                if stall and i == 2:
                    await asyncio.sleep(30)
                w.write(b"x")
                await w.drain()
                await asyncio.sleep(0.05)

    up, uport, writers = await _upstream(drip)
    # The whole drip (24 x 50 ms) outlasts the read timeout; no gap between two bytes does.
    server, port = await start_proxy(StubRouter([("127.0.0.1", uport)]), proxy_read_timeout=0.8)
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"GET /drip HTTP/1.1\r\nHost: a.test\r\n\r\n")
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200 ")
        assert await asyncio.wait_for(r.readexactly(drips), 10) == b"x" * drips
        w.write(b"GET /stall HTTP/1.1\r\nHost: a.test\r\n\r\n")
        rest = await _closed_within(r, 10)
        assert rest is not None and rest.startswith(b"HTTP/1.1 200 ")
        assert rest.endswith(b"\r\n\r\nxx")  # two bytes, then the close
        w.transport.abort()
    finally:
        await server.shutdown(1)
        await _stop(up, writers)


@pytest.mark.asyncio
async def test_shutdown_lets_a_websocket_tunnel_run_for_the_grace_period_then_ends_it(
        caplog: pytest.LogCaptureFixture) -> None:
    # A tunnel is never idle: shutdown relays it until the grace period is over (nginx keeps
    # it until worker_shutdown_timeout), then aborts it; an idle client beside it is closed
    # at once.
    caplog.set_level(logging.WARNING, "ingresslib.server")

    async def ws(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await r.readuntil(b"\r\n\r\n")
        w.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\n\r\n")
        while data := await r.read(65536):
            w.write(data.upper())
            await w.drain()

    up, uport, writers = await _upstream(ws)
    server, port = await start_proxy(StubRouter([("127.0.0.1", uport)]))
    r, w = await asyncio.open_connection("127.0.0.1", port)
    ri, wi = await asyncio.open_connection("127.0.0.1", port)
    try:
        w.write(b"GET /ws HTTP/1.1\r\nHost: a.test\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\n\r\n")
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 101 ")
        assert await until(lambda: len(server.connections) == 2, 5)
        stop = asyncio.create_task(server.shutdown(1.5))
        assert await _closed_within(ri, 5) == b""  # the idle one: at once
        assert not stop.done()
        w.write(b"still here")  # relayed while draining
        assert await asyncio.wait_for(r.readexactly(10), 5) == b"STILL HERE"
        await asyncio.wait_for(stop, 10)
        assert await _closed_within(r, 5) is not None
        assert any("aborting 1 connection(s) still busy" in rec.getMessage()
                   for rec in caplog.records)
    finally:
        w.transport.abort()
        wi.transport.abort()
        await server.shutdown(1)
        await _stop(up, writers)


@pytest.mark.asyncio
async def test_a_connect_that_completes_as_the_client_leaves_is_closed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The race: the upstream connect completes, and the client leaves (its connect task is
    # cancelled) before the task resumes to take the connection. The connection was then
    # owned by no one and stayed open until the upstream closed it: a socket leaked per race.
    upstream_closed = asyncio.Event()

    async def wait_for_close(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await r.read()
        upstream_closed.set()

    up, uport, writers = await _upstream(wait_for_close)
    server, port = await start_proxy(StubRouter([("127.0.0.1", uport)]))
    loop = asyncio.get_running_loop()
    real = loop.create_connection
    connected = asyncio.Event()

    async def racing(*args: Any, **kw: Any) -> Any:
        result = await real(*args, **kw)
        connected.set()
        await asyncio.sleep(30)  # cancelled here: the task has not resumed yet
        return result

    r, w = await asyncio.open_connection("127.0.0.1", port)
    monkeypatch.setattr(loop, "create_connection", racing)  # (the proxy's connects only)
    try:
        w.write(_REQ)
        await asyncio.wait_for(connected.wait(), 5)
        w.transport.abort()  # the client leaves: the connect task is cancelled
        await asyncio.wait_for(upstream_closed.wait(), 5)
        assert server.pool.idle_count() == 0 and not server.tasks
    finally:
        monkeypatch.undo()
        await server.shutdown(1)
        await _stop(up, writers)
