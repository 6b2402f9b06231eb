"""Review of session 30's proxy-buffer-size / proxy-buffering (proxy/_response_buffer.py):
the head limit counted as nginx counts it, what it must not bound (a chunked body's lines),
and the read-ahead's memory bounded across connections (``response_buffering_budget``)."""

from __future__ import annotations

import asyncio
import socket

import h11
import pytest

from ingresslib.proxy import ProxySettings
from ingresslib.proxy._annotations import PREFIX
from tests._proxy_harness import FakeUpstream, ProxyPair, Reply, Route, status_of

SIZE_KEY = PREFIX + "proxy-buffer-size"
GET = b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n"
CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


def _padded(start: bytes, size: int) -> bytes:
    """``start`` (a status line and headers) padded with an X-Pad field to a head of exactly
    ``size`` bytes, blank line included."""
    pad = size - len(start) - len(b"X-Pad: \r\n\r\n")
    assert pad >= 0
    return start + b"X-Pad: " + b"p" * pad + b"\r\n\r\n"


def _silent(request: h11.Request, body: bytes, up: FakeUpstream) -> Reply | None:
    return None


# ------------------------------------------------------------ the head, as nginx counts it
def test_head_under_the_limit_with_body_bytes_in_the_same_read_passes() -> None:
    # nginx's buffer (proxy_buffer_size) holds the head and the body's first bytes of one
    # recv: only a head still incomplete in a full buffer is "too big".
    head = _padded(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n", 4090)
    p = ProxyPair([Route()], app=lambda r, b, u: Reply(head + b"b" * 100))
    out = p.send(GET)
    assert status_of(out) == 200 and out.endswith(b"b" * 100)


def test_http10_upstream_head_of_exactly_the_limit_passes_body_to_the_close() -> None:
    head = _padded(b"HTTP/1.0 200 OK\r\n", 4096)
    p = ProxyPair([Route()], app=lambda r, b, u: Reply(head + b"until-close", close=True))
    out = p.send(GET)
    assert status_of(out) == 200 and b"until-close" in out


def test_too_big_head_retried_records_both_tries() -> None:
    # $upstream_addr / $upstream_status of an invalid_header retry: both endpoints, 502 then
    # the second one's status.
    big = _padded(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n", 4097)

    def app(request: h11.Request, body: bytes, up: FakeUpstream) -> Reply:
        if up.endpoint == ("10.0.0.1", 8080):
            return Reply(big)
        return Reply(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")

    route = Route(endpoints=[("10.0.0.1", 8080), ("10.0.0.2", 8080)],
                  annotations={PREFIX + "proxy-next-upstream": "invalid_header"})
    p = ProxyPair([route], app=app)
    assert status_of(p.send(GET)) == 201
    rec = p.records[-1]
    assert rec.upstreams == (("10.0.0.1", 8080), ("10.0.0.2", 8080))
    assert rec.upstream_statuses == (502, 201)


# ------------------------------------------------------------ 1xx heads: each its own buffer
EARLY = _padded(b"HTTP/1.1 103 Early Hints\r\nLink: </app.css>; rel=preload\r\n", 2000)


def test_early_hints_and_final_head_each_within_the_limit_pass() -> None:
    # nginx moves what follows a 103 to its buffer's start (ngx_http_upstream_process_early_
    # hints): each head has the whole proxy_buffer_size. Before: both counted together,
    # 2000 + 3000 > 4096 -> 502 for a response nginx passes.
    final = _padded(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n", 3000)
    p = ProxyPair([Route()], app=lambda r, b, u: Reply(EARLY + final + b"ok"))
    out = p.send(GET)
    assert status_of(out) == 200 and out.endswith(b"ok")
    # Trickled in small reads: the same.
    p = ProxyPair([Route()], app=_silent)
    p.send(GET)
    data, out = EARLY + final + b"ok", b""
    for i in range(0, len(data), 700):
        out += p.upstream_send(p.upstreams[0], data[i:i + 700])
    assert status_of(out) == 200 and out.endswith(b"ok")


def test_final_head_past_the_limit_after_a_1xx_is_502() -> None:
    final = _padded(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n", 4097)
    p = ProxyPair([Route()], app=lambda r, b, u: Reply(EARLY + final))
    assert status_of(p.send(GET)) == 502
    assert p.records[-1].upstream_statuses == (502,)


def test_endless_1xx_heads_are_bounded_together(caplog: pytest.LogCaptureFixture) -> None:
    # Each 103 small, together past max_response_header_size (64 KiB): 502, not a request
    # held for as long as the upstream likes with nothing sent.
    import logging

    p = ProxyPair([Route()], app=lambda r, b, u: Reply(EARLY * 40))
    with caplog.at_level(logging.ERROR):
        assert status_of(p.send(GET)) == 502
    assert any("upstream sent too big header" in r.getMessage()
               and "max_response_header_size" in r.getMessage() for r in caplog.records)
    # Within it (30 x 2000 bytes), the final head still comes through.
    final = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    p = ProxyPair([Route()], app=lambda r, b, u: Reply(EARLY * 30 + final))
    assert status_of(p.send(GET)) == 200


def test_websocket_after_a_buffered_response_is_not_read_ahead() -> None:
    # The 101's tunnel streams (nginx's ngx_http_upgrade_... buffers of proxy_buffer_size):
    # before, the connection kept the previous response's read-ahead (8 MiB) for it.
    upgrade = (b"GET /ws HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\n"
               b"Upgrade: websocket\r\n\r\n")

    def app(request: h11.Request, body: bytes, up: FakeUpstream) -> Reply:
        if request.target == b"/ws":
            return Reply(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                         b"Upgrade: websocket\r\n\r\n")
        return Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    p = ProxyPair([Route(annotations={PREFIX + "proxy-buffering": "on"})], app=app)
    assert status_of(p.send(GET)) == 200
    assert p.conn.response_buffer == 8 * 1024 * 1024
    assert status_of(p.send(upgrade)) == 101
    assert p.conn.response_buffer == 0


# ------------------------------------------------------------ the body is no head
@pytest.mark.parametrize("limit,line", [("1k", 1500), ("2k", 3000), ("4k", 4095)])
def test_long_chunk_line_in_several_reads_is_not_cut_by_proxy_buffer_size(
        limit: str, line: int) -> None:
    # A chunk line (its extension) arriving in several reads: nginx parses it as it comes
    # (ngx_http_parse_chunked, its own state, not the header buffer). Before: the reader's
    # incomplete-event limit, now proxy-buffer-size, applied to the body too: with "1k" the
    # response was cut after its first chunk (the client connection closed).
    p = ProxyPair([Route(annotations={SIZE_KEY: limit})], app=_silent)
    assert p.send(GET) == b""
    up = p.upstreams[0]
    out = p.upstream_send(up, CHUNKED_HEAD + b"5\r\nhello\r\n")
    ext = b"6;" + b"e" * (line - 2)
    for i in range(0, len(ext), 500):
        out += p.upstream_send(up, ext[i:i + 500])
    assert not p.downstream_closes, out
    out += p.upstream_send(up, b"\r\nhello!\r\n0\r\n\r\n")
    assert status_of(out) == 200
    assert out.endswith(b"5\r\nhello\r\n6\r\nhello!\r\n0\r\n\r\n")
    assert p.records[-1].status == 200
    # The head limit is the route's again for the next response on the connection.
    big = _padded(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n", 5000)
    p.app = lambda r, b, u: Reply(big)
    for u in p.upstreams:
        u.app = p.app
    assert status_of(p.send(GET)) == 502


def test_long_trailer_section_in_several_reads_passes_a_small_limit() -> None:
    p = ProxyPair([Route(annotations={SIZE_KEY: "1k"})], app=_silent)
    p.send(GET)
    up = p.upstreams[0]
    out = p.upstream_send(up, CHUNKED_HEAD + b"5\r\nhello\r\n0\r\n")
    for _ in range(30):
        out += p.upstream_send(up, b"X-T: " + b"t" * 93 + b"\r\n")
    out += p.upstream_send(up, b"\r\n")
    assert out.endswith(b"5\r\nhello\r\n0\r\n\r\n") and not p.downstream_closes


# ------------------------------------------------------------ the budget across connections
MIB = 1024 * 1024
SIZE = 6 * MIB


async def _upstream() -> tuple[asyncio.AbstractServer, int, asyncio.Event]:
    body = b"b" * SIZE
    written = asyncio.Event()

    async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while True:
                await r.readuntil(b"\r\n\r\n")
                w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % SIZE)
                w.write(body)
                await w.drain()
                written.set()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            w.close()

    srv = await asyncio.start_server(serve, "127.0.0.1", 0)
    return srv, srv.sockets[0].getsockname()[1], written


def _slow_client(port: int) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /big HTTP/1.1\r\nHost: a.test\r\n\r\n")
    s.setblocking(False)
    return s


async def _until(cond, seconds: float = 1.5) -> bool:  # type: ignore[no-untyped-def]
    for _ in range(int(seconds / 0.01)):
        if cond():
            return True
        await asyncio.sleep(0.01)
    return bool(cond())


async def _drain(loop: asyncio.AbstractEventLoop, s: socket.socket) -> bytes:
    data = bytearray()
    while True:
        end = data.find(b"\r\n\r\n")
        if end >= 0 and len(data) >= end + 4 + SIZE:
            return bytes(data)
        chunk = await asyncio.wait_for(loop.sock_recv(s, 1 << 20), 3.0)
        assert chunk
        data += chunk


def test_budget_setting_defaults_and_validation() -> None:
    assert ProxySettings().response_buffering_budget == 256 * MIB
    assert ProxySettings(response_buffering_budget=0).response_buffering_budget == 0
    with pytest.raises(ValueError):
        ProxySettings(response_buffering_budget=-1)


@pytest.mark.asyncio
async def test_read_ahead_stops_at_the_servers_budget_then_gives_it_back() -> None:
    # Before: each response read ahead up to its own 8 MiB whatever the others held (1,000
    # slow clients: 8 GB); now the connections together stop at response_buffering_budget
    # and stream past it (the upstream read as fast as the client takes the response).
    from tests._server_helpers import StubRouter
    from tests._upstream_helpers import start_proxy

    srv, uport, written = await _upstream()
    settings = ProxySettings(proxy_buffering="on", response_buffering_budget=MIB)
    server, port = await start_proxy(StubRouter([("127.0.0.1", uport)]), settings=settings)
    loop = asyncio.get_running_loop()
    s = _slow_client(port)
    try:
        assert await _until(lambda: bool(server.connections) and all(
            c.client_full for c in server.connections))
        down = next(iter(server.connections))
        # Past the budget: not reading ahead any more, the upstreams paused, the response
        # not read whole (its upstream connection still the request's).
        assert await _until(lambda: not down.ahead)
        await asyncio.sleep(0.05)
        assert all(not up.transport.is_reading() for up in down.upstreams.values())
        assert server.pool.idle_count() == 0
        # What it counts is what its write buffer held when it stopped: one read past the
        # budget at most.
        assert MIB < server.ahead_held <= MIB + 512 * 1024
        assert server.ahead_held == down.held
        out = await _drain(loop, s)
        assert out.startswith(b"HTTP/1.1 200 ") and out.endswith(b"b" * 1000)
        # Drained: the budget given back, the upstream released.
        assert await _until(lambda: server.pool.idle_count() == 1)
        assert server.ahead_held == 0 and down.held == 0
    finally:
        s.close()
        await server.shutdown(1)
        srv.close()
        await srv.wait_closed()


@pytest.mark.asyncio
async def test_budget_given_back_when_the_slow_client_goes_away() -> None:
    from tests._server_helpers import StubRouter
    from tests._upstream_helpers import start_proxy

    srv, uport, written = await _upstream()
    settings = ProxySettings(proxy_buffering="on")
    server, port = await start_proxy(StubRouter([("127.0.0.1", uport)]), settings=settings)
    s = _slow_client(port)
    try:
        # Within the default budget and the response's 8 MiB: read whole, counted.
        assert await _until(lambda: server.pool.idle_count() == 1)
        assert server.ahead_held > MIB
        s.close()
        assert await _until(lambda: not server.connections)
        assert server.ahead_held == 0
    finally:
        s.close()
        await server.shutdown(1)
        srv.close()
        await srv.wait_closed()


@pytest.mark.asyncio
async def test_client_that_never_reads_is_cut_by_the_send_timeout_and_its_budget_freed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The upstream released (read whole ahead), the client reading nothing: nginx's
    # send_timeout still ends the connection; its read-ahead bytes are given back.
    from ingresslib.proxy import _server
    from tests._server_helpers import StubRouter
    from tests._upstream_helpers import start_proxy

    monkeypatch.setattr(_server, "_SEND_TIMEOUT", 0.4)
    srv, uport, written = await _upstream()
    records: list[object] = []
    settings = ProxySettings(proxy_buffering="on")
    server, port = await start_proxy(StubRouter([("127.0.0.1", uport)]), settings=settings,
                                     on_record=records.append)
    s = _slow_client(port)
    try:
        assert await _until(lambda: server.pool.idle_count() == 1)
        assert server.ahead_held > 0
        assert await _until(lambda: not server.connections, 2.0)
        # In the same callback that took it out of ``connections`` (``_send_timed_out``), not
        # only at ``connection_lost`` a loop turn later (tests/test_ahead_s32.py).
        assert server.ahead_held == 0
        assert [r.status for r in records] == [200]  # type: ignore[attr-defined]
        assert SIZE < records[0].bytes_out < SIZE + 200  # type: ignore[attr-defined]
    finally:
        s.close()
        await server.shutdown(1)
        srv.close()
        await srv.wait_closed()


@pytest.mark.asyncio
async def test_pipelined_requests_answered_in_order_after_a_read_ahead() -> None:
    from tests._server_helpers import StubRouter
    from tests._upstream_helpers import start_proxy

    srv, uport, written = await _upstream()
    settings = ProxySettings(proxy_buffering="on")
    server, port = await start_proxy(StubRouter([("127.0.0.1", uport)]), settings=settings)
    loop = asyncio.get_running_loop()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /1 HTTP/1.1\r\nHost: a.test\r\n\r\nGET /2 HTTP/1.1\r\nHost: a.test\r\n\r\n")
    s.setblocking(False)
    try:
        # The first response read whole ahead; the second one (same upstream connection)
        # begins, and stops at its own 8 MiB: the first one's 6 MiB still wait in the
        # write buffer.
        assert await _until(lambda: written.is_set() and bool(server.connections)
                            and not next(iter(server.connections)).ahead)
        assert server.pool.idle_count() == 0
        data = bytearray()
        while len(data) < 2 * SIZE + 80 or not data.endswith(b"b" * 100):
            chunk = await asyncio.wait_for(loop.sock_recv(s, 1 << 20), 3.0)
            assert chunk
            data += chunk
        first = data.index(b"\r\n\r\n") + 4
        assert data[first:first + SIZE] == b"b" * SIZE
        assert data[first + SIZE:].startswith(b"HTTP/1.1 200 ")
        assert data.endswith(b"\r\n\r\n" + b"b" * SIZE)
    finally:
        s.close()
        await server.shutdown(1)
        srv.close()
        await srv.wait_closed()
