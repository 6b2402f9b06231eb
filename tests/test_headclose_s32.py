"""A client that closes in the middle of its request head is logged, as nginx logs it; an
invalid upstream head is invalid before its status counts (part 2, at the end).

nginx's ngx_http_read_request_header, on recv() == 0 while a head is partly read: "client
prematurely closed connection"; ``c->error = 1; ngx_http_finalize_request(r,
NGX_HTTP_BAD_REQUEST)``; with c->error the request is terminated (ngx_http_terminate_request:
status 400, nothing was sent) and its log phase runs: an access line with status 400, the
request line as far as it was read, $request_completion empty. A connection closed before any
byte of a request (ngx_http_wait_request_handler, the keep-alive handler) has no request: no
line. Before, the core emitted no record for the first case.
"""

from __future__ import annotations

import asyncio
import datetime
import socket
from collections.abc import Callable

import h11
import pytest

from ingresslib import Router, parse_manifests
from ingresslib._accesslog import access_fields
from ingresslib._logformat import compile_format
from ingresslib._metrics import Metrics
from ingresslib.proxy import ProxySettings, RequestRecord

from _proxy_harness import (FakeUpstream, ProxyPair, Reply, Route, ingress_yaml, ok, silent_app,
                            status_of, web_service_yaml)
from _upstream_helpers import start_proxy, until
from tests._server_helpers import StubRouter

FULL = b"GET /a HTTP/1.1\r\nHost: h.test\r\n\r\n"


def _assert_mid_head_record(rec: RequestRecord, request_line: str, bytes_in: int) -> None:
    assert rec.status == 400
    assert rec.phase == "head"
    assert rec.request_line == request_line
    assert rec.bytes_out == 0 and rec.body_bytes_out == 0
    assert rec.bytes_in == bytes_in
    assert rec.request_complete is False
    assert rec.upstreams == () and rec.service is None


def test_partial_head_then_eof_is_one_400_record_nothing_sent() -> None:
    p = ProxyPair()
    assert p.send(b"GET /x?q=1 HTTP/1.1\r\nHost: h.te") == b""
    assert p.eof() == b""
    assert p.closed and p.opens == []
    assert len(p.records) == 1
    _assert_mid_head_record(p.records[0], "GET /x?q=1 HTTP/1.1", 31)


def test_partial_request_line_then_eof_logs_the_bytes_read() -> None:
    p = ProxyPair()
    p.send(b"GET /pa")
    p.eof()
    assert [r.request_line for r in p.records] == ["GET /pa"]
    _assert_mid_head_record(p.records[0], "GET /pa", 7)


def test_mid_head_request_time_runs_from_its_first_byte() -> None:
    # nginx creates the request at the first byte read (ngx_http_create_request, from the
    # wait / keep-alive handler): $request_time runs from there to the close.
    p = ProxyPair()
    p.now = 1.0
    assert status_of(p.send(FULL)) == 200
    p.now = 5.0
    p.send(b"GET /t")
    p.now = 7.5
    p.send(b" HTTP/1.1\r\n")
    p.now = 9.0
    p.eof()
    rec = p.records[1]
    assert (rec.start, rec.end) == (5.0, 9.0)
    _assert_mid_head_record(rec, "GET /t HTTP/1.1", 17)


def test_no_byte_then_eof_is_no_record() -> None:
    p = ProxyPair()
    assert p.eof() == b""
    assert p.closed and p.records == [] and p.opens == []


def test_keep_alive_second_request_cut_mid_head_is_recorded() -> None:
    p = ProxyPair()
    assert status_of(p.send(FULL)) == 200
    p.send(b"GET /b HTTP/1.1\r\nHo")
    assert p.eof() == b""
    assert p.closed
    assert [r.status for r in p.records] == [200, 400]
    _assert_mid_head_record(p.records[1], "GET /b HTTP/1.1", 19)
    assert len(p.opens) == 1  # the first request's only


def test_keep_alive_idle_then_eof_is_no_second_record() -> None:
    p = ProxyPair()
    assert status_of(p.send(FULL)) == 200
    p.eof()
    assert p.closed and [r.status for r in p.records] == [200]


def test_pipelined_full_then_partial_then_eof() -> None:
    p = ProxyPair()
    out = p.send(FULL + b"GET /c HT")
    assert status_of(out) == 200 and out.count(b"HTTP/1.1 ") == 1
    assert p.eof() == b""
    assert [r.status for r in p.records] == [200, 400]
    assert p.records[0].request_complete is True
    _assert_mid_head_record(p.records[1], "GET /c HT", 9)


def test_eof_kept_for_a_finishing_response_then_partial_head_is_recorded() -> None:
    # proxy_ignore_client_abort: the client's EOF comes once the first response's head (keep-
    # alive) is out, and that response finishes; the partial head behind it can never
    # complete: nginx reads on (ngx_http_set_keepalive: pipelined bytes are a new request),
    # gets the EOF in ngx_http_read_request_header and logs 400 for it. Before, the core
    # closed with no record.
    p = ProxyPair(settings=ProxySettings(proxy_ignore_client_abort=True), app=silent_app)
    p.send(FULL + b"GET /d HTTP/1.1\r\n")
    out = p.upstream_send(p.upstreams[0], b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\no")
    assert status_of(out) == 200 and b"connection: close" not in out.lower()
    p.eof()
    assert p.downstream_closes == [] and p.records == []
    assert p.upstream_send(p.upstreams[0], b"k") == b"k"
    assert len(p.downstream_closes) == 1
    assert [r.status for r in p.records] == [200, 400]
    _assert_mid_head_record(p.records[1], "GET /d HTTP/1.1", 17)


def test_mid_head_record_in_access_log_and_not_in_metrics() -> None:
    # As the other heads refused before routing (a bad request line's 400): no upstream name
    # in the access line, and ingress-nginx's Lua monitor (a location's log phase) never sees
    # it, so it is not counted.
    p = ProxyPair()
    p.send(b"POST /up HTTP/1.1\r\n")
    p.eof()
    (rec,) = p.records
    f = access_fields(rec, 0.0, datetime.timezone.utc)
    assert f["request"] == "POST /up HTTP/1.1"
    assert f["status"] == 400 and f["body_bytes_sent"] == 0
    assert f["proxy_upstream_name"] == ""
    m = Metrics()
    m.observe(rec)
    assert "h.test" not in m.render().decode()
    assert "_requests{" not in m.render().decode()


@pytest.mark.network
@pytest.mark.asyncio
async def test_server_records_a_client_closing_mid_head_and_closes() -> None:
    records: list[RequestRecord] = []
    unused = socket.socket()
    unused.bind(("127.0.0.1", 0))
    ep = unused.getsockname()
    unused.close()
    server, port = await start_proxy(StubRouter([ep]), on_record=records.append)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /e HTTP/1.1\r\nHost: h.te")
        await writer.drain()
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 3) == b""  # nothing sent, closed
        writer.close()
        assert await until(lambda: len(records) == 1 and not server.connections)
        _assert_mid_head_record(records[0], "GET /e HTTP/1.1", 27)
        # A connection closed before a byte: no record.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 3) == b""
        writer.close()
        assert await until(lambda: not server.connections)
        assert len(records) == 1
    finally:
        await server.shutdown(1)


# ------------------------------------------------------------------ part 2: invalid upstream head
# nginx's ngx_http_upstream_process_header: "if (rc == NGX_HTTP_UPSTREAM_INVALID_HEADER) {
# ngx_http_upstream_next(r, u, NGX_HTTP_UPSTREAM_FT_INVALID_HEADER); return; }" comes before
# "u->state->header_time = ..." and before ngx_http_upstream_test_next (proxy_next_upstream
# http_502 ...) and ngx_http_upstream_intercept_errors (custom-http-errors); ngx_http_proxy_
# process_header refuses a head with both Content-Length and Transfer-Encoding. Before, the
# core retried (or intercepted) such a head for its status.
P = "nginx.ingress.kubernetes.io/"
WEB = ("10.0.0.1", 8080)
WEB2 = ("10.0.0.2", 8080)
BOTH_502 = (b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 3\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def _first_invalid(head: bytes) -> Callable[[h11.Request, bytes, FakeUpstream], Reply]:
    def app(request: h11.Request, body: bytes, up: FakeUpstream) -> Reply:
        return Reply(head) if up.endpoint == WEB else ok(b"second")
    return app


def test_invalid_head_with_a_retriable_status_is_not_retried_without_invalid_header() -> None:
    p = ProxyPair([Route(endpoints=[WEB, WEB2], annotations={
        P + "proxy-next-upstream": "error timeout http_502"})], app=_first_invalid(BOTH_502))
    out = p.send(GET)
    assert status_of(out) == 502 and b"second" not in out
    assert [o.endpoint for o in p.opens] == [WEB]
    rec = p.records[-1]
    assert rec.upstream_statuses == (502,) and rec.upstream_header_time is None


def test_invalid_head_with_a_retriable_status_is_retried_for_invalid_header() -> None:
    fmt = "$upstream_status|$upstream_header_time"
    p = ProxyPair([Route(endpoints=[WEB, WEB2], annotations={
        P + "proxy-next-upstream": "error timeout http_502 invalid_header"})],
        app=_first_invalid(BOTH_502), settings=ProxySettings(log_format_upstream=fmt))
    out = p.send(GET)
    assert status_of(out) == 200 and out.endswith(b"second")
    rec = p.records[-1]
    line = compile_format(fmt, "default").render(rec, access_fields(rec, 0.0), 0.0)
    # The invalid head's try has no header time ("-"; before, "0.000" as for a valid 502
    # retried for its status), the second try's is its own.
    assert line == "502, 200|-, 0.000"


def test_invalid_head_is_not_intercepted_for_its_status_by_custom_http_errors() -> None:
    # custom-http-errors "503": an invalid head saying 503 is nginx's own 502 (not in the list:
    # no error page); before, the core fetched the 503 page for it.
    both_503 = BOTH_502.replace(b"502 Bad Gateway", b"503 Unavailable")
    seen: list[tuple[str, int]] = []

    def app(request: h11.Request, body: bytes, up: FakeUpstream) -> Reply:
        seen.append(up.endpoint)
        if up.endpoint[0] == "10.0.0.1":
            return Reply(both_503)
        return Reply(b"HTTP/1.1 404 NF\r\nContent-Length: 4\r\n\r\npage")
    w2 = web_service_yaml().replace("web", "web2").replace("10.0.0.1", "10.0.1.1")
    docs = ingress_yaml("a", "a.test", {P + "custom-http-errors": "503",
                                        P + "default-backend": "web2"}) \
        + web_service_yaml(1) + w2
    p = ProxyPair(router=Router(parse_manifests(docs)), app=app)
    out = p.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert status_of(out) == 502 and b"page" not in out
    assert [ep[0] for ep in seen] == ["10.0.0.1"]
    assert p.records[-1].upstream_statuses == (502,)


@pytest.mark.parametrize("head, status", [
    (b"GET /t HTTP/1.1\r\nHost: a", 408),             # client-header-timeout runs out
    (b"GET /" + b"a" * 20000 + b" HTTP/1.1", 414),   # a request line over the limit
])
def test_a_head_refused_before_it_is_parsed_starts_at_its_first_byte(head: bytes,
                                                                    status: int) -> None:
    # (lead, session 32) Every request nginx refuses while reading its head was created at
    # its first byte (ngx_http_create_request, from the wait / keep-alive handler): a head
    # timeout's $request_time is about client_header_timeout, not 0. Before: the record began
    # when the refusal came.
    p = ProxyPair(settings=ProxySettings(client_header_timeout=60.0))
    p.now = 1.0
    assert status_of(p.send(FULL)) == 200
    p.now = 5.0
    p.send(head[:3])
    p.now = 6.0
    out = p.send(head[3:])
    if status == 408:
        out = p.fire()
    assert status_of(out) == status
    rec = p.records[1]
    assert rec.status == status and rec.phase == "head"
    assert rec.start == 5.0 and rec.end == p.now
