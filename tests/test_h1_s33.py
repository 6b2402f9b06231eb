"""Session 33, h1: empty lines (CRLF) before a request head are a request to nginx.

nginx creates a request at the first byte it reads on a connection, whatever it is
(ngx_http_wait_request_handler; ngx_http_keepalive_handler, which also deletes the keep-alive
timer; ngx_http_set_keepalive's pipelined branch for bytes behind a finished request), and
ngx_http_parse_request_line skips CR and LF in ``sw_start``. A connection whose only bytes are
empty lines therefore has a request whose line is not parsed yet:
- the client closes: ngx_http_read_request_header, recv() == 0, "client prematurely closed
  connection", ``ngx_http_finalize_request(r, NGX_HTTP_BAD_REQUEST)``: logged 400, ``$request``
  ``-`` (no request_start), ``$request_length`` 0, nothing sent;
- client_header_timeout runs out: ngx_http_process_request_line, ``rev->timedout``,
  ``ngx_http_close_request(r, NGX_HTTP_REQUEST_TIME_OUT)``: logged 408.
Before, the core dropped the empty lines: no request, a plain close (or the keep-alive timer's
close), nothing logged.
"""

from __future__ import annotations

import asyncio
import datetime
import socket

import pytest

from ingresslib._accesslog import access_fields
from ingresslib._metrics import Metrics
from ingresslib.proxy import ProxySettings, RequestRecord, TimerKind

from _proxy_harness import ProxyPair, silent_app, status_of
from _upstream_helpers import start_proxy, until
from tests._server_helpers import StubRouter

FULL = b"GET /a HTTP/1.1\r\nHost: h.test\r\n\r\n"


def _assert_empty_head_record(rec: RequestRecord, status: int, start: float,
                              end: float) -> None:
    # The same record as a partial head's (``_head_cut_short`` / the head timeout's 408): phase
    # "head", no request line ($request "-"), $request_length 0 (nginx's request_start is
    # after the empty lines, and no request line was parsed), not complete, from its first
    # byte to the end.
    assert rec.status == status
    assert rec.phase == "head"
    assert rec.request_line is None
    assert rec.bytes_in == 0
    assert rec.request_complete is False
    assert rec.upstreams == () and rec.service is None
    assert (rec.start, rec.end) == (start, end)


@pytest.mark.parametrize("parts", [[b"\r\n"], [b"\r\n\r\n\r\n"], [b"\r", b"\n", b"\r\n"]])
def test_fresh_connection_only_empty_lines_then_eof_is_a_400_record(parts: list[bytes]) -> None:
    p = ProxyPair()
    p.now = 2.0
    for part in parts:
        assert p.send(part) == b""
        p.now += 1.0
    assert not p.closed and p.records == []
    assert p.eof() == b""  # nothing sent
    assert p.closed and p.opens == []
    (rec,) = p.records
    _assert_empty_head_record(rec, 400, 2.0, p.now)


def test_fresh_connection_only_empty_lines_then_head_timeout_is_a_408_record() -> None:
    p = ProxyPair(settings=ProxySettings(client_header_timeout=60.0))
    assert p.timer == (TimerKind.HEAD, 60.0)  # from accept (nginx's post-accept timer)
    p.now = 10.0
    p.send(b"\r\n")
    p.now = 20.0
    p.send(b"\r\n")
    assert p.timer == (TimerKind.HEAD, 60.0)  # not re-armed by a read: still accept's
    p.now = 0.0  # (``fire`` adds the armed 60 s to ``now``: the deadline is accept's, 60.0)
    out = p.fire(TimerKind.HEAD)
    # Logged 408 but not answered, as nginx (a partial head's 408 is answered: README); the
    # client thinks the connection idle and could read a 408 as its next request's answer.
    assert out == b""
    assert p.closed
    (rec,) = p.records
    _assert_empty_head_record(rec, 408, 10.0, 60.0)


def test_keep_alive_empty_lines_arm_the_head_timer_then_eof_is_a_400_record() -> None:
    # ngx_http_keepalive_handler: "ngx_del_timer(rev);" and ngx_http_read_request_header arms
    # client_header_timeout: the keep-alive timer no longer runs once a byte came.
    p = ProxyPair(settings=ProxySettings(client_header_timeout=7.0, keep_alive=75.0))
    p.now = 1.0
    assert status_of(p.send(FULL)) == 200
    assert p.timer == (TimerKind.IDLE, 75.0)
    p.now = 5.0
    assert p.send(b"\r\n") == b""
    assert p.timer == (TimerKind.HEAD, 7.0)
    assert not p.conn.idle  # a request is under way (nginx: c->idle = 0)
    p.now = 6.0
    p.send(b"\r\n\r\n")
    p.now = 9.0
    assert p.eof() == b""
    assert p.closed and [r.status for r in p.records] == [200, 400]
    _assert_empty_head_record(p.records[1], 400, 5.0, 9.0)


def test_keep_alive_empty_lines_then_head_timeout_is_a_408_record() -> None:
    p = ProxyPair(settings=ProxySettings(client_header_timeout=7.0, keep_alive=75.0))
    assert status_of(p.send(FULL)) == 200
    p.now = 5.0
    p.send(b"\r\n")
    out = p.fire(TimerKind.HEAD)
    assert out == b"" and p.closed  # logged, not answered (a stray CRLF after a request)
    assert [r.status for r in p.records] == [200, 408]
    _assert_empty_head_record(p.records[1], 408, 5.0, 12.0)


@pytest.mark.parametrize("ending", ["eof", "timeout"])
def test_empty_lines_pipelined_behind_a_request(ending: str) -> None:
    # x6 (session 32): the empty lines behind a finished request arm the HEAD timer
    # (ngx_http_set_keepalive's pipelined branch: a new request, client_header_timeout); its
    # expiry is nginx's 408, an EOF its 400. Before: a close with no record either way.
    p = ProxyPair(settings=ProxySettings(client_header_timeout=7.0))
    p.now = 3.0
    out = p.send(FULL + b"\r\n\r\n")
    assert status_of(out) == 200 and out.count(b"HTTP/1.1 ") == 1
    assert p.timer == (TimerKind.HEAD, 7.0)
    if ending == "eof":
        assert p.eof() == b""
        status, end = 400, 3.0
    else:
        assert p.fire(TimerKind.HEAD) == b""
        status, end = 408, 10.0
    assert p.closed and [r.status for r in p.records] == [200, status]
    _assert_empty_head_record(p.records[1], status, 3.0, end)


def test_eof_kept_for_a_finishing_response_then_only_empty_lines_is_a_400_record() -> None:
    # proxy_ignore_client_abort: nginx does not read the client while the response goes out
    # (ngx_http_upstream_init_request installs no broken-connection check; the read handler
    # is ngx_http_block_reading), so its EOF is not seen then; ngx_http_set_keepalive takes
    # the empty lines as a pipelined request (or ngx_http_keepalive_handler reads them), and
    # ngx_http_read_request_header then gets recv() == 0: 400 logged, nothing sent.
    p = ProxyPair(settings=ProxySettings(proxy_ignore_client_abort=True), app=silent_app)
    p.send(FULL + b"\r\n")
    out = p.upstream_send(p.upstreams[0], b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\no")
    assert status_of(out) == 200
    p.eof()
    assert p.downstream_closes == [] and p.records == []
    assert p.upstream_send(p.upstreams[0], b"k") == b"k"
    assert len(p.downstream_closes) == 1
    assert [r.status for r in p.records] == [200, 400]
    _assert_empty_head_record(p.records[1], 400, 0.0, 0.0)


def test_empty_lines_then_a_request_is_one_request_from_the_first_empty_line() -> None:
    # The empty lines are still skipped (RFC 9112 §2.2; nginx's sw_start): one request, its
    # $request_length without them, its $request_time from the first byte read (nginx created
    # the request then).
    p = ProxyPair()
    p.now = 1.0
    assert p.send(b"\r\n\r\n") == b""
    p.now = 4.0
    out = p.send(b"\r\n" + FULL)
    assert status_of(out) == 200
    (rec,) = p.records
    assert rec.status == 200 and rec.request_line == "GET /a HTTP/1.1"
    assert rec.bytes_in == len(FULL)
    assert rec.start == 1.0


def test_empty_lines_before_a_refused_head_are_not_in_its_record() -> None:
    p = ProxyPair()
    p.send(b"\r\n")
    p.send(b"\r\nGET /p")
    p.eof()
    (rec,) = p.records
    assert rec.status == 400 and rec.request_line == "GET /p" and rec.bytes_in == 6


def test_a_flood_of_empty_lines_holds_no_memory() -> None:
    # nginx resets a header buffer full of them (ngx_http_alloc_large_header_buffer: "the
    # client fills up the buffer with "\r\n""); the core keeps one.
    p = ProxyPair()
    for _ in range(20):
        p.send(b"\r\n" * 5000)
    assert len(p.conn._inbuf) <= 2
    p.eof()
    assert [r.status for r in p.records] == [400] and p.records[0].bytes_in == 0


def test_no_byte_then_eof_is_still_no_record() -> None:
    # ngx_http_wait_request_handler / ngx_http_keepalive_handler: recv() == 0 before any
    # byte, no request ("client closed keepalive connection").
    p = ProxyPair()
    assert status_of(p.send(FULL)) == 200
    p.eof()
    assert p.closed and [r.status for r in p.records] == [200]


def test_empty_lines_record_in_access_log_and_not_in_metrics() -> None:
    p = ProxyPair()
    p.send(b"\r\n")
    p.eof()
    (rec,) = p.records
    f = access_fields(rec, 0.0, datetime.timezone.utc)
    assert f["request"] is None  # printed "-", as nginx's not-found $request
    assert f["status"] == 400 and f["body_bytes_sent"] == 0 and f["request_length"] == 0
    assert f["proxy_upstream_name"] == ""
    m = Metrics()
    m.observe(rec)
    assert "_requests{" not in m.render().decode()


@pytest.mark.network
@pytest.mark.asyncio
async def test_server_records_a_client_sending_only_empty_lines() -> None:
    records: list[RequestRecord] = []
    unused = socket.socket()
    unused.bind(("127.0.0.1", 0))
    ep = unused.getsockname()
    unused.close()
    server, port = await start_proxy(StubRouter([ep]), on_record=records.append,
                                     client_header_timeout=0.3)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"\r\n\r\n")
        await writer.drain()
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 3) == b""  # nothing sent, closed
        writer.close()
        assert await until(lambda: len(records) == 1 and not server.connections)
        assert records[0].status == 400 and records[0].request_line is None
        # The header timeout: nginx's 408, logged; not answered (a partial head's would be).
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"\r\n")
        answer = await asyncio.wait_for(reader.read(), 3)
        assert answer == b""
        writer.close()
        assert await until(lambda: len(records) == 2 and not server.connections)
        assert records[1].status == 408 and records[1].bytes_in == 0
    finally:
        await server.shutdown(1)
