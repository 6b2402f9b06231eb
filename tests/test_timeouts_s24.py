"""Timeouts of the asyncio server against nginx's meaning (session 24, L1), end to end over
127.0.0.1 with a scripted slow client and a scripted slow upstream.

proxy_read_timeout is "between two successive read operations" from the upstream
(ngx_http_upstream_process_non_buffered_request re-arms u->conf->read_timeout after each
read). The request body is streamed; while the client still sent it, only client_body_timeout
ran, so an upstream whose response had begun and then stalled was never timed out as long as
the client kept sending. Once the response head is in, both deadlines run; the first to pass
decides.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from _proxy_harness import ProxyPair

from ingresslib.proxy import ProxySettings, TimerKind
from ingresslib.proxy._server import ProxyServer
from tests._server_helpers import StubRouter

pytestmark = pytest.mark.network


async def _upstream(answer: bytes, seen: list[bytes] | None = None,
                    after_body: bytes | None = None) -> tuple[asyncio.Server, int]:
    """An upstream that writes ``answer`` once it has a request head, then (``after_body``
    given) that once the whole ``Content-Length`` body is in, else nothing more."""

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            head = await r.readuntil(b"\r\n\r\n")
            if seen is not None:
                seen.append(head)
            if answer:
                w.write(answer)
            if after_body is not None:
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await r.readexactly(length)
                w.write(after_body)
            await r.read()  # until the proxy closes
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            w.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    return srv, srv.sockets[0].getsockname()[1]


async def _trickle(body_len: int, port: int, head: bytes, every: float,
                   limit: float, expect_close: bool = False) -> tuple[bytes, bool, float]:
    """Send ``head`` then one body byte each ``every`` seconds (while the proxy keeps the
    connection), reading the answer meanwhile, until a whole answer is in. Returns what was
    read, whether the proxy closed the connection, and when (seconds from the head), giving
    up after ``limit`` (``expect_close``: then waits up to 1 s more for the close)."""
    loop = asyncio.get_running_loop()
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(head)
    t0 = loop.time()
    got = bytearray()
    closed_at: list[float] = []

    async def read() -> None:
        while True:
            try:
                data = await r.read(65536)
            except ConnectionError:
                data = b""
            if not data:
                closed_at.append(loop.time() - t0)
                return
            got.extend(data)

    def answered() -> bool:  # a whole response (with a Content-Length) read
        end = got.find(b"\r\n\r\n")
        if end < 0:
            return False
        for line in bytes(got[:end]).split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                return len(got) >= end + 4 + int(line.split(b":")[1])
        return False

    reader = asyncio.create_task(read())
    sent = 0
    while not reader.done() and not answered() and loop.time() - t0 < limit:
        if sent < body_len:
            try:
                w.write(b"x")
                await w.drain()
            except ConnectionError:
                pass
            sent += 1
        await asyncio.wait([reader], timeout=every)
    if expect_close and not reader.done():
        await asyncio.wait([reader], timeout=1.0)  # the answer is in: now the close
    if not reader.done():
        reader.cancel()
    w.transport.abort()
    return bytes(got), bool(closed_at), closed_at[0] if closed_at else limit


async def _proxy(router: Any, records: list[Any], **kw: Any) -> tuple[ProxyServer, int]:
    server = ProxyServer(router, on_record=records.append, **kw)
    await server.start(("127.0.0.1", 0))
    return server, server.addresses[0][2]


@pytest.mark.asyncio
async def test_upstream_stalling_mid_response_while_the_body_still_arrives_is_cut() -> None:
    # The upstream answers a head and 2 of 100 body bytes as soon as it has the request head,
    # then sends nothing. The client goes on sending its body, a byte every 0.1 s (well within
    # client_body_timeout). proxy_read_timeout (0.3 s) runs out: the response has begun, so
    # the client connection is closed (as a stall after the body). Before: the proxy waited
    # as long as the client kept sending.
    srv, uport = await _upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nab")
    records: list[Any] = []
    router = StubRouter([("127.0.0.1", uport)])
    server, port = await _proxy(router, records, proxy_read_timeout=0.3,
                                client_body_timeout=1.0)
    try:
        got, closed, when = await _trickle(
            1000, port, b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1000\r\n\r\n",
            0.1, 2.5)
        assert got.startswith(b"HTTP/1.1 200 OK\r\n") and got.endswith(b"\r\n\r\nab")
        assert closed and when < 2.0
        for _ in range(50):
            if records:
                break
            await asyncio.sleep(0.02)
        (rec,) = records
        assert rec.status == 200 and rec.upstream_statuses == (200,)
    finally:
        await server.shutdown(1)
        srv.close()


@pytest.mark.asyncio
async def test_upstream_stalling_mid_head_is_timed_out_once_the_body_is_in() -> None:
    # The upstream sends part of a response head, then nothing, while the client still sends
    # its body (6 bytes over 0.6 s, longer than proxy_read_timeout): no response has begun, so
    # only the body's timer runs (nginx arms the read timer once the request is sent whole;
    # ngx_http_upstream_process_header arms none for a partial head). Once the body is in,
    # proxy_read_timeout: 504 (a POST sent is not retried).
    srv, uport = await _upstream(b"HTTP/1.1 200 OK\r\n")
    records: list[Any] = []
    router = StubRouter([("127.0.0.1", uport)])
    server, port = await _proxy(router, records, proxy_read_timeout=0.3,
                                client_body_timeout=1.0)
    try:
        got, closed, when = await _trickle(
            6, port, b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 6\r\n\r\n", 0.1, 2.0)
        assert got.startswith(b"HTTP/1.1 504 "), got[:40]
        assert when > 0.6  # not before the body was in (a generous bound)
        (rec,) = records
        assert rec.status == 504 and rec.upstream_statuses == (504,)
        assert router.observed == [(("127.0.0.1", uport), False)]
    finally:
        await server.shutdown(1)
        srv.close()


@pytest.mark.asyncio
async def test_silent_upstream_is_not_blamed_while_the_body_arrives() -> None:
    # An upstream that says nothing until it has the whole body (nginx would not even have
    # sent it the request yet: proxy_request_buffering on) is not timed out while the body
    # takes longer than proxy_read_timeout to arrive; it answers after it, 200.
    srv, uport = await _upstream(b"", after_body=b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    records: list[Any] = []
    server, port = await _proxy(StubRouter([("127.0.0.1", uport)]), records,
                                proxy_read_timeout=0.3, client_body_timeout=1.0)
    try:
        got, closed, when = await _trickle(
            6, port, b"PUT / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 6\r\n\r\n", 0.1, 1.5)
        assert got.startswith(b"HTTP/1.1 200 OK\r\n") and got.endswith(b"\r\n\r\nok")
        assert [r.status for r in records] == [200]
    finally:
        await server.shutdown(1)
        srv.close()


@pytest.mark.asyncio
async def test_upstream_bytes_mid_body_do_not_save_a_stalled_client_from_408() -> None:
    # The upstream keeps its read deadline fresh (it began a head) but the client stops
    # sending its body: client_body_timeout (0.3 s) comes first, 408, the upstream not blamed.
    srv, uport = await _upstream(b"HTTP/1.1 200 OK\r\n")
    records: list[Any] = []
    router = StubRouter([("127.0.0.1", uport)])
    server, port = await _proxy(router, records, proxy_read_timeout=5.0,
                                client_body_timeout=0.3)
    try:
        got, closed, when = await _trickle(
            2, port, b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 10\r\n\r\n", 0.05, 2.0,
            expect_close=True)
        assert got.startswith(b"HTTP/1.1 408 ") and closed and when < 1.5
        assert [r.status for r in records] == [408]
        assert router.observed == []
    finally:
        await server.shutdown(1)
        srv.close()


@pytest.mark.asyncio
async def test_idempotent_request_is_retried_when_the_upstream_stalls_mid_head() -> None:
    # The same stall on a PUT: once the body is in, the try times out before a response
    # began; the body was kept for replay, so the next endpoint gets the whole request
    # (nginx's "timeout" condition of proxy_next_upstream) and answers: 200, $upstream_status
    # "504, 200".
    seen: list[bytes] = []
    srv, uport = await _upstream(b"HTTP/1.1 200 OK\r\n")
    srv2, uport2 = await _upstream(b"", seen, after_body=b"HTTP/1.1 200 OK\r\n"
                                                         b"Content-Length: 2\r\n\r\nok")
    records: list[Any] = []
    router = StubRouter([("127.0.0.1", uport), ("127.0.0.1", uport2)])
    server, port = await _proxy(router, records, proxy_read_timeout=0.3,
                                client_body_timeout=1.0)
    try:
        got, closed, when = await _trickle(
            8, port, b"PUT / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 8\r\n\r\n", 0.1, 2.0)
        assert got.startswith(b"HTTP/1.1 200 OK\r\n") and got.endswith(b"\r\n\r\nok")
        assert len(seen) == 1 and seen[0].startswith(b"PUT / HTTP/1.1\r\n")
        (rec,) = records
        assert rec.status == 200 and rec.upstream_statuses == (504, 200)
        assert router.observed == [(("127.0.0.1", uport), False), (("127.0.0.1", uport2), True)]
    finally:
        await server.shutdown(1)
        srv.close()
        srv2.close()


# ------------------------------------------------------------------ the sans-IO core's timers
def test_core_arms_the_earlier_of_the_body_and_upstream_read_deadlines() -> None:
    pair = ProxyPair(settings=ProxySettings(client_body_timeout=5.0, proxy_read_timeout=2.0),
                     app=lambda r, b, u: None)
    pair.send(b"POST /a HTTP/1.1\r\nHost: example.com\r\nContent-Length: 10\r\n\r\nabc")
    assert pair.timer == (TimerKind.BODY, 5.0)  # nothing from the upstream yet: the body's
    pair.now = 0.5
    pair.upstream_send(pair.upstreams[0], b"HTTP/1.1 200 OK\r\n")
    assert pair.timer == (TimerKind.BODY, 5.0)  # a partial head arms nothing
    pair.now = 1.0
    pair.upstream_send(pair.upstreams[0], b"Content-Length: 9\r\n\r\nxy")
    assert pair.timer == (TimerKind.BODY, 2.0)  # the upstream's read deadline (3.0) is first
    pair.now = 2.0
    pair.send(b"d")  # the client's deadline moves to 7.0; the upstream's stays 3.0
    assert pair.timer == (TimerKind.BODY, 1.0)
    out = pair.fire()
    assert out == b"" and pair.closed  # the response has begun: a close, as UPSTREAM_READ's
    assert pair.received.endswith(b"\r\n\r\nxy")
    (rec,) = pair.records
    assert rec.status == 200 and rec.upstream_statuses == (200,)


def test_core_an_early_hint_does_not_arm_the_upstream_deadline() -> None:
    # 103 Early Hints, then the upstream reads a long upload: not timed out meanwhile.
    pair = ProxyPair(settings=ProxySettings(client_body_timeout=5.0, proxy_read_timeout=2.0),
                     app=lambda r, b, u: None)
    pair.send(b"POST /a HTTP/1.1\r\nHost: example.com\r\nContent-Length: 10\r\n\r\na")
    pair.upstream_send(pair.upstreams[0], b"HTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\n")
    for i in range(9):
        pair.now += 4.0
        pair.send(b"b")
        assert pair.timer == ((TimerKind.BODY, 5.0) if i < 8 else (TimerKind.UPSTREAM_READ, 2.0))
    assert not pair.closed and not pair.records


def test_core_restarts_an_upstream_deadline_that_passed_while_the_client_was_held() -> None:
    # The driver holds BODY while it does not read the client (its response not taken, the
    # upstream not read meanwhile): the upstream's deadline passing then is not its fault.
    pair = ProxyPair(settings=ProxySettings(client_body_timeout=5.0, proxy_read_timeout=2.0),
                     app=lambda r, b, u: None)
    pair.send(b"POST /a HTTP/1.1\r\nHost: example.com\r\nContent-Length: 10\r\n\r\nabc")
    pair.now = 1.0
    pair.upstream_send(pair.upstreams[0], b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n")
    pair.now = 4.0  # past 3.0, the timer held
    pair.send(b"d")
    assert pair.timer == (TimerKind.BODY, 2.0) and not pair.closed


# ------------------------------------ client_body_timeout: a read of chunk framing is a read
def test_core_a_read_of_chunk_framing_alone_restarts_the_body_timer() -> None:
    # nginx re-arms client_body_timeout after every read of the body, its chunked framing
    # included (ngx_http_do_read_client_request_body). A read that carried only framing (the
    # size line, the last chunk, the final CRLF) left the deadline of the last data running.
    pair = ProxyPair(settings=ProxySettings(client_body_timeout=5.0), app=lambda r, b, u: None)
    pair.send(b"POST /a HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"3\r\nabc\r\n")
    for part in (b"0000", b"5\r\n", b"hello", b"\r\n0\r\n"):
        pair.now += 4.0  # within 5 s of the last read, 8 s after the last data
        pair.timer = None
        pair.send(part)
        assert pair.timer == (TimerKind.BODY, 5.0), part
    pair.now += 4.0
    pair.send(b"\r\n")
    assert pair.timer == (TimerKind.UPSTREAM_READ, 60.0)  # the body is in
    assert not pair.closed and not pair.records


@pytest.mark.asyncio
async def test_a_chunked_body_whose_last_chunk_comes_alone_is_not_408() -> None:
    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            await r.readuntil(b"\r\n\r\n")
            await r.readuntil(b"0\r\n\r\n")  # the whole body first
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await r.read()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            w.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    records: list[Any] = []
    server, port = await _proxy(StubRouter([("127.0.0.1", srv.sockets[0].getsockname()[1])]),
                                records, client_body_timeout=0.4)
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"3\r\nabc\r\n")
        for part in (b"0\r\n", b"\r\n"):  # each 0.25 s after the last read: within 0.4 s
            await asyncio.sleep(0.25)
            w.write(part)
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 3)
        assert head.startswith(b"HTTP/1.1 200 "), head
        for _ in range(50):
            if records:
                break
            await asyncio.sleep(0.02)
        assert [x.status for x in records] == [200]
        w.transport.abort()
    finally:
        await server.shutdown(1)
        srv.close()
