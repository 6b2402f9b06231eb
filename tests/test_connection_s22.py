"""Session 22 (X1): the sans-IO core's record of a refused request head (its request_length),
and the client_body_timeout kept while an upstream answers early during the upload."""

from __future__ import annotations

import pytest

from ingresslib.proxy import ProxySettings, SetTimer, TimerKind

from _proxy_harness import ProxyPair, Route, status_of

H = b"Host: example.com\r\n"


# ------------------------------------------------------------- request_length of refused heads
# nginx's $request_length is the bytes of the request read so far; a head refused by the raw
# checks (before h11 parses it) was recorded with 0, while one h11 refuses got its byte count.
@pytest.mark.parametrize("head, status", [
    (b"GET / HTTP/1.1\r\n" + H + b"Referer: a\x7fb\r\n\r\n", 400),  # control character
    (b"GET /a\x7fb HTTP/1.1\r\n" + H + b"\r\n", 400),  # in the request line
    (b"GET / HTTP/1.1\r\n" + H + b"X: 1\r\n  folded\r\n\r\n", 400),  # obs-fold
    (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1\r\nContent-Length: 1\r\n\r\nx", 400),
    (b"GET / HTTP/1.1\r\n" + H + b"X: " + b"a" * 100 + b"\r\n\r\n", 431),  # a line too long
])
def test_a_head_refused_by_the_raw_checks_records_its_bytes(head: bytes, status: int) -> None:
    pair = ProxyPair(settings=ProxySettings(max_header_line=64))
    out = pair.send(head)
    assert status_of(out) == status and pair.closed
    (rec,) = pair.records
    assert rec.status == status
    # The head to its blank line: a body byte after it was never read as part of the request.
    assert rec.bytes_in == head.index(b"\r\n\r\n") + 4


def test_the_record_of_a_refused_head_is_like_h11s_refusal() -> None:
    # The same head length, one refused by check_raw_head, one by h11 (a line with no colon):
    # both count the head received.
    raw = ProxyPair()
    raw.send(b"GET / HTTP/1.1\r\n" + H + b"A: \x01b\r\n\r\n")
    parsed = ProxyPair()
    parsed.send(b"GET / HTTP/1.1\r\n" + H + b"Abcde\r\n\r\n")
    assert [r.status for r in raw.records + parsed.records] == [400, 400]
    assert raw.records[0].bytes_in == parsed.records[0].bytes_in == 16 + len(H) + 7 + 2


def test_a_refused_pipelined_head_counts_its_own_bytes_only() -> None:
    pair = ProxyPair()
    first = b"GET /a HTTP/1.1\r\n" + H + b"\r\n"
    bad = b"GET /b HTTP/1.1\r\n" + H + b"Referer: \x7f\r\n\r\n"
    pair.send(first + b"\r\n" + bad + b"GET /c HTTP/1.1\r\n")
    assert [r.status for r in pair.records] == [200, 400]
    assert pair.records[0].bytes_in == len(first)
    # Neither the empty line before it nor the next request's bytes after it.
    assert pair.records[1].bytes_in == len(bad)


def test_a_partial_head_refused_at_a_limit_records_the_bytes_read() -> None:
    pair = ProxyPair(settings=ProxySettings(max_request_line=32))
    data = b"GET /" + b"a" * 40
    assert status_of(pair.send(data)) == 414
    assert pair.records[0].bytes_in == len(data)


def test_an_invalid_method_records_the_bytes_read() -> None:
    pair = ProxyPair()
    data = b"\x16\x03\x01\x02\x00\x01"  # a TLS ClientHello's start on the plain port
    assert status_of(pair.send(data)) == 400
    assert pair.records[0].bytes_in == len(data)


def test_a_head_timeout_records_the_bytes_of_the_head_received() -> None:
    pair = ProxyPair(settings=ProxySettings(client_header_timeout=5.0))
    data = b"GET / HTTP/1.1\r\n" + H + b"User-Agent: x"
    assert pair.send(data) == b""
    out = pair.fire(TimerKind.HEAD)
    assert status_of(out) == 408
    assert pair.records[0].status == 408 and pair.records[0].bytes_in == len(data)


# ------------------------------------------------- client_body_timeout while the upstream answers
BODY_HEAD = b"PUT /a HTTP/1.1\r\n" + H + b"Content-Length: 10\r\n\r\n"


@pytest.mark.parametrize("method", [b"PUT", b"POST"])
def test_a_client_stalling_its_body_after_an_early_partial_head_gets_408(method: bytes) -> None:
    # The upstream starts its answer (a partial head) while the body is still coming, then the
    # client stops sending. The client owes the bytes: client_body_timeout, 408, and the
    # upstream not blamed. Before, the upstream's bytes replaced the BODY timer by
    # UPSTREAM_READ: the idempotent PUT was retried on the next endpoint (to wait for the
    # same stalled client), the POST answered 504, the endpoint marked failed either way.
    eps = [("10.0.0.1", 80), ("10.0.0.2", 80)]
    pair = ProxyPair([Route("/", endpoints=eps)],
                     ProxySettings(client_body_timeout=5.0, proxy_read_timeout=7.0),
                     app=lambda r, b, u: None)
    pair.send(method + BODY_HEAD[3:] + b"abc")
    assert pair.timer == (TimerKind.BODY, 5.0)
    assert pair.upstream_send(pair.upstreams[0], b"HTTP/1.1 200 OK\r\n") == b""
    assert pair.timer == (TimerKind.BODY, 5.0)
    out = pair.fire()
    assert status_of(out) == 408 and pair.closed
    assert [o.endpoint for o in pair.opens] == eps[:1]  # no retry
    assert pair.router.observed == []
    (rec,) = pair.records
    assert rec.status == 408 and rec.upstream_statuses == (None,)
    assert [(c.conn_id, c.reuse) for c in pair.closes] == [(1, False)]


def test_upstream_bytes_do_not_extend_the_clients_body_deadline() -> None:
    # client_body_timeout is the time between two reads from the CLIENT: the upstream's bytes
    # do not re-arm it (when the client's deadline comes first, as here; once the upstream's
    # response head is in, its proxy_read_timeout shares the timer when earlier: session 24,
    # tests/test_timeouts_s24.py).
    pair = ProxyPair(settings=ProxySettings(client_body_timeout=5.0, proxy_read_timeout=7.0),
                     app=lambda r, b, u: None)
    pair.send(BODY_HEAD + b"abc")
    for part in (b"HTTP/1.1 200 OK\r\n", b"Content-Length: 99\r\n\r\n", b"xy"):
        pair.now += 1.0
        actions = pair.conn.upstream_data(1, part, pair.now)
        assert not [a for a in actions if isinstance(a, SetTimer)]
        pair._run(actions)
    assert pair.timer == (TimerKind.BODY, 5.0)
    assert pair.received.startswith(b"HTTP/1.1 200 OK") and pair.received.endswith(b"xy")
    out = pair.fire(TimerKind.BODY)
    assert out == b"" and pair.closed  # the response has begun: a close, no status
    assert pair.router.observed == []


def test_once_the_body_is_in_upstream_bytes_rearm_the_upstream_read_timer() -> None:
    pair = ProxyPair(settings=ProxySettings(client_body_timeout=5.0, proxy_read_timeout=7.0),
                     app=lambda r, b, u: None)
    pair.send(BODY_HEAD + b"abc")
    pair.upstream_send(pair.upstreams[0], b"HTTP/1.1 200 OK\r\n")
    assert pair.timer == (TimerKind.BODY, 5.0)
    pair.send(b"defghij")  # the body is complete: the upstream owes the rest of its answer
    assert pair.timer == (TimerKind.UPSTREAM_READ, 7.0)
    pair.upstream_send(pair.upstreams[0], b"Content-Length: 2\r\n")
    assert pair.timer == (TimerKind.UPSTREAM_READ, 7.0)
    out = pair.fire(TimerKind.UPSTREAM_READ)
    assert status_of(out) == 504
    assert pair.router.observed == [(pair.upstreams[0].endpoint, False)]
