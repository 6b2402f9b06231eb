"""Request framing of the sans-IO proxy core, session 21 (Q21p).

1. A request body being discarded after a local answer (404, 503...) that turns out malformed
   got a second response (400) for the one request: a client reads it as the answer to its
   next request. nginx closes without writing anything
   (ngx_http_discarded_request_body_handler: "if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
   c->error = 1; ngx_http_finalize_request(r, NGX_ERROR);").
2. A request no rule routes with a chunked body past the server's proxy-body-size got the
   default backend's 404 at once, never a 413. ingress-nginx proxies it to the default backend,
   so nginx reads the body first and its chunked body filter answers 413 past
   client_max_body_size (ngx_http_request_body_chunked_filter: "client intended to send too
   large chunked body"); the 404 comes after the whole body.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from ingresslib.proxy import CloseDownstream, ProxySettings, TimerKind
from tests._proxy_harness import ProxyPair, Route, ingress_yaml, routed_pair, status_of

P = "nginx.ingress.kubernetes.io/"
CHUNKED = b"Transfer-Encoding: chunked\r\n"


def _head(host: bytes = b"nowhere.test", extra: bytes = b"") -> bytes:
    return b"POST /x HTTP/1.1\r\nHost: " + host + b"\r\n" + CHUNKED + extra + b"\r\n"


# 1. No second response for a request already answered ----------------------------------------

MALFORMED = {
    "chunk line": b"zz\r\n",
    "control character in a chunk line": b"5;\x01\r\nhello\r\n",
    "bare LF in the trailers": b"5\r\nhello\r\n0\r\nX: y\n\r\n",
}


@pytest.mark.parametrize("bad", list(MALFORMED.values()), ids=list(MALFORMED))
@pytest.mark.parametrize("answer", ["404 (no rule, no limit)", "503 (no endpoint)",
                                    "200 (OPTIONS *)"])
def test_a_malformed_body_being_discarded_gets_no_second_response(answer: str,
                                                                  bad: bytes) -> None:
    if answer.startswith("404"):
        # No body limit: the 404 goes out at once and the body is discarded.
        pair = ProxyPair([Route(host="other.test")], ProxySettings(proxy_body_size=0))
        head = _head()
    elif answer.startswith("503"):
        pair = ProxyPair([Route(endpoints=[])])
        head = _head(b"a.test")
    else:
        pair = ProxyPair([Route()])
        head = _head(b"a.test").replace(b"POST /x ", b"OPTIONS * ")
    first = pair.send(head)
    status = int(answer[:3])
    assert status_of(first) == status and not pair.closed
    out = pair.send(bad)
    assert out == b"", out  # before: "HTTP/1.1 400 Bad Request" after the answer
    assert pair.closed and pair.downstream_closes == [CloseDownstream(linger=False)]
    assert [r.status for r in pair.records] == [status]
    assert pair.opens == []


# 2. The unrouted chunked body is read before its answer ---------------------------------------

def test_unrouted_chunked_body_past_the_limit_is_413() -> None:
    pair = ProxyPair([Route(host="other.test")], ProxySettings(proxy_body_size=10))
    assert pair.send(_head()) == b""  # before: the 404 at once
    assert pair.timer == (TimerKind.BODY, 60.0)  # client_body_timeout while it is read
    assert pair.send(b"5\r\nhello\r\n") == b""
    assert pair.conn.reading_wanted
    out = pair.send(b"6\r\nworld!\r\n")  # 11 bytes: one past the limit
    assert status_of(out) == 413 and out.count(b"HTTP/1.1 ") == 1
    assert pair.closed and pair.downstream_closes == [CloseDownstream(linger=True)]
    assert [(r.status, r.phase) for r in pair.records] == [(413, "location")]
    assert pair.opens == [] and len(pair.router.calls) == 1


def test_unrouted_chunked_body_within_the_limit_gets_404_at_its_end() -> None:
    pair = ProxyPair([Route(host="other.test")], ProxySettings(proxy_body_size=10))
    assert pair.send(_head() + b"a\r\n0123456789\r\n") == b""
    # The end of the body, then a pipelined request for a routed host: served next.
    out = pair.send(b"0\r\n\r\nGET /y HTTP/1.1\r\nHost: other.test\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 404 ") and out.count(b"HTTP/1.1 ") == 2
    assert out.endswith(b"ok /y") and not pair.closed
    assert [r.status for r in pair.records] == [404, 200]


def test_unrouted_chunked_body_is_counted_never_held() -> None:
    # Read for its size only: the driver is never asked to stop reading (no upstream will take
    # the bytes), and a 3 MiB body within an 8 MiB limit ends in the 404.
    pair = ProxyPair([Route(host="other.test")], ProxySettings(proxy_body_size=8 << 20))
    pair.send(_head())
    chunk = b"%x\r\n%s\r\n" % (1 << 16, b"x" * (1 << 16))
    for _ in range(48):
        assert pair.send(chunk) == b""
        assert pair.conn.reading_wanted
    out = pair.send(b"0\r\n\r\n")
    assert status_of(out) == 404 and not pair.closed


def test_unrouted_chunked_body_asks_for_it_with_100_continue_then_times_out_408() -> None:
    # nginx reads the body for the default backend: "100 Continue" first
    # (ngx_http_test_expect), then client_body_timeout between two reads (408).
    pair = ProxyPair([Route(host="other.test")], ProxySettings(proxy_body_size=10))
    out = pair.send(_head(extra=b"Expect: 100-continue\r\n"))
    assert out == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert status_of(pair.fire(TimerKind.BODY)) == 408 and pair.closed
    assert [r.status for r in pair.records] == [408]


def test_unrouted_chunked_body_takes_the_server_owners_limit() -> None:
    # A path no rule of a.test covers: the server's ``location /`` has the oldest Ingress's
    # proxy-body-size (as the 413 of a Content-Length, tests/test_unrouted_413_s17.py).
    ing = ingress_yaml("a", "a.test", {P + "proxy-body-size": "4"}, path="/foo")
    pair = routed_pair(ing)
    out = pair.send(_head(b"a.test") + b"5\r\nhello\r\n")
    assert status_of(out) == 413 and pair.closed and pair.opens == []
    pair = routed_pair(ing)  # within it: the default backend's 404 at the body's end
    out = pair.send(_head(b"a.test") + b"4\r\nhell\r\n0\r\n\r\n")
    assert status_of(out) == 404 and not pair.closed


# 3. Through the asyncio server -----------------------------------------------------------------

@pytest.mark.network
@pytest.mark.asyncio
async def test_server_answers_an_unrouted_chunked_body_past_the_limit_413() -> None:
    from _upstream_helpers import start_proxy

    from tests._server_helpers import StubRouter

    server, port = await start_proxy(StubRouter([], known="only.test"), proxy_body_size=10)
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        w.write(_head() + b"8\r\n01234567\r\n")
        await w.drain()
        with contextlib.suppress(TimeoutError):
            early = await asyncio.wait_for(r.read(65536), 0.2)
            assert early == b"", early  # no answer before the body says how large it is
        w.write(b"8\r\n89abcdef\r\n")
        data = b""
        while not r.at_eof():
            data += await asyncio.wait_for(r.read(65536), 5.0)
        assert data.startswith(b"HTTP/1.1 413 ") and data.count(b"HTTP/1.1 ") == 1
    finally:
        w.transport.abort()
        await server.shutdown(1)
