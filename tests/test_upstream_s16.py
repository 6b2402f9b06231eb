"""Upstream-side review (session 16): the upstream's response read as strictly as nginx reads
it, where reading it more loosely could end a response at another byte than a client, cache or
the upstream itself does (response splitting, a poisoned pooled connection) or mislead.

nginx sources quoted (mainline): src/http/ngx_http_parse.c (ngx_http_parse_chunked),
src/http/ngx_http_upstream.c (ngx_http_upstream_process_content_length, 1.23+),
src/http/ngx_http_header_filter_module.c (ngx_http_header_filter).

Each test says whether it found a defect ("DEFECT": failed before the fix in the same change)
or guards behaviour that was already right ("guard").
"""

from __future__ import annotations

import asyncio

import pytest

from _proxy_harness import (
    CLOCK, DATE, ProxyPair, Reply, dechunk, status_of, upstream_sends_bytewise,
)
from _upstream_helpers import TrackedUpstream, exchange, proxy_to, until

GET = b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"
HEAD = b"HEAD / HTTP/1.1\r\nHost: a.test\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
UPGRADE = (b"GET /ws HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\n"
           b"Upgrade: websocket\r\n\r\n")


def _next_request_gets_a_fresh_connection(p: ProxyPair) -> None:
    """The client connection (when still open) carries on: the next request is answered on a
    new upstream connection, with its own response."""
    p.app = lambda r, b, u: Reply(OK)
    n = len(p.upstreams)
    assert p.send(GET).endswith(b"\r\n\r\nok")
    assert len(p.upstreams) == n + 1


# --- 1. a Content-Length repeated or listed ------------------------------------------------

#: h11 merges these into one "Content-Length: 5"; nginx 1.23+ refuses each
#: (ngx_http_upstream_process_content_length: a second line is "upstream sent duplicate header
#: line", a list fails ngx_atoof: "upstream sent invalid "Content-Length" header"; both
#: NGX_HTTP_UPSTREAM_INVALID_HEADER, 502).
REPEATED_LENGTHS = [
    b"Content-Length: 5, 5\r\n",
    b"Content-Length: 5,5\r\n",
    b"Content-Length: 5\r\nContent-Length: 5\r\n",
    b"Content-Length: 5\r\ncontent-length: 5, 5\r\n",
    b"Content-Length: 5\r\n ,5\r\n",  # obs-fold: h11 unfolds it to "5 ,5", read as 5
]


@pytest.mark.parametrize("request_,status", [(GET, b"200 OK"), (HEAD, b"200 OK"),
                                             (GET, b"304 Not Modified"),
                                             (GET, b"204 No Content")])
@pytest.mark.parametrize("lengths", REPEATED_LENGTHS)
def test_defect_repeated_or_listed_upstream_content_length_is_502(
        request_: bytes, status: bytes, lengths: bytes) -> None:
    # DEFECT: forwarded as "Content-Length: 5" (the body by it) and the upstream connection
    # pooled. A client or cache that refuses a repeated length, or reads another one, frames
    # the response otherwise than we did; nginx answers 502 and closes the connection.
    p = ProxyPair(app=lambda r, b, u: Reply(b"HTTP/1.1 %s\r\n%s\r\nhello" % (status, lengths)))
    out = p.send(request_)
    assert status_of(out) == 502 and b"hello" not in out
    assert [r.upstream_status for r in p.records] == [502]
    assert [c.reuse for c in p.closes] == [False] and not p.closed
    _next_request_gets_a_fresh_connection(p)


def test_guard_differing_upstream_content_lengths_were_refused_already() -> None:
    # guard: h11 refuses differing values itself ("conflicting Content-Length headers").
    for lengths in (b"Content-Length: 5, 6\r\n", b"Content-Length: 5\r\nContent-Length: 6\r\n"):
        p = ProxyPair(app=lambda r, b, u: Reply(b"HTTP/1.1 200 OK\r\n%s\r\nhello" % lengths))
        assert status_of(p.send(GET)) == 502


@pytest.mark.parametrize("line,forwarded", [(b"Content-Length: 5", b"Content-Length: 5"),
                                            (b"content-length:5 ", b"content-length: 5"),
                                            (b"Content-Length: 005", b"Content-Length: 5")])
def test_guard_one_content_length_of_one_number_is_forwarded(line: bytes,
                                                             forwarded: bytes) -> None:
    p = ProxyPair(app=lambda r, b, u: Reply(b"HTTP/1.1 200 OK\r\n%s\r\n\r\nhello" % line))
    assert p.send(GET) == b"HTTP/1.1 200 OK\r\n%s\r\n\r\nhello" % forwarded
    assert [c.reuse for c in p.closes] == [True]


# --- 2. chunk lines and trailers: bare CR, bare LF -------------------------------------------


def _chunked_response(body: bytes, split: bool) -> tuple[ProxyPair, bytes]:
    """A GET answered with CHUNKED and then ``body``: with the head in one read, or with
    ``split`` one byte at a time after it. The pair, and what the client got."""
    p = ProxyPair(app=lambda r, b, u: Reply(CHUNKED if split else CHUNKED + body))
    out = p.send(GET)
    if split:
        out += upstream_sends_bytewise(p, body)
    return p, out


def _assert_cut(p: ProxyPair, out: bytes) -> None:
    """nginx's answer to "upstream sent invalid chunked response" once the head is out: the
    response ends where it is (no last chunk), the client connection is closed, the upstream
    connection is not kept."""
    assert not out.endswith(b"0\r\n\r\n"), out
    assert p.closed
    assert [c.reuse for c in p.closes] == [False]
    assert [r.status for r in p.records] == [200]


@pytest.mark.parametrize("body", [
    b"5;\rX\r\nhello\r\n0\r\n\r\n",          # bare CR in an extension
    b"5;a=b\r\r\nhello\r\n0\r\n\r\n",        # CR CR LF
    b"2\r\nhi\r\n5;\r\x00\r\nhello\r\n0\r\n\r\n",  # in a later chunk line
    b"2\r\nhi\r\n0;\rX\r\n\r\n",             # in the last chunk's line
])
@pytest.mark.parametrize("split", [False, True])
def test_defect_bare_cr_in_an_upstream_chunk_line_ends_the_response(body: bytes,
                                                                    split: bool) -> None:
    # DEFECT: h11's chunk extension is ";.*", CR included: the chunk was streamed, the
    # response completed and the upstream connection pooled. nginx: "case
    # sw_chunk_extension_almost_done: if (ch == LF) { ... } goto invalid;".
    p, out = _chunked_response(body, split)  # split: the CR is seen whichever read brings it
    assert out.startswith(CHUNKED)
    payload, ended = dechunk(out[len(CHUNKED):])
    assert payload == (b"hi" if body.startswith(b"2\r\nhi") else b"") and not ended
    _assert_cut(p, out)


@pytest.mark.parametrize("body", [b"5\nhello\n0\n\n", b"5\n", b"2\r\nhi\r\n5;x\nhello"])
def test_defect_chunk_line_ended_by_a_bare_lf_ends_the_response_at_once(body: bytes) -> None:
    # DEFECT: h11 splits chunk lines at CRLF only: it waited for one (the client got the
    # head and nothing more until the upstream's read timeout). nginx: no LF is valid in
    # sw_chunk_size, "case LF: goto invalid;" in sw_chunk_extension -- invalid at once.
    p = ProxyPair(app=lambda r, b, u: Reply(CHUNKED + body))
    out = p.send(GET)
    assert out.startswith(CHUNKED)
    assert dechunk(out[len(CHUNKED):]) == (b"hi" if body.startswith(b"2") else b"", False)
    _assert_cut(p, out)


@pytest.mark.parametrize("body", [
    b"5\r\nhello\r\n0\r\n\n",                    # the blank line a bare LF
    b"5\r\nhello\r\n0\r\nX: y\n\r\n",            # a trailer line ended by a bare LF
    b"5\r\nhello\r\n0\r\nX: y\r\nZ: w\n\n",
])
@pytest.mark.parametrize("split", [False, True])
def test_defect_bare_lf_in_upstream_trailers_ends_the_response(body: bytes,
                                                               split: bool) -> None:
    # DEFECT: h11 ends the trailer section at "\n" or "\n\n": the response was completed and
    # the upstream connection pooled where a CRLF-only reader (the upstream's own framing,
    # nginx's) is still in the trailers. nginx: "case sw_trailer: ... case LF: goto
    # invalid;", "case sw_trailer_header: ... case LF: goto invalid;".
    p, out = _chunked_response(body, split)
    assert out.startswith(CHUNKED)
    assert dechunk(out[len(CHUNKED):]) == (b"hello", False)
    _assert_cut(p, out)


@pytest.mark.parametrize("body", [
    b"5;a\x00b\r\nhello\r\n0\r\n\r\n",    # NUL in an extension
    b"5;\x1b[2J\r\nhello\r\n0\r\n\r\n",   # ESC
    b"5;a=\"b c\"\r\nhello\r\n0\r\n\r\n",
    b"5 \r\nhello\r\n0\r\n\r\n",
    b"5\r\nhello\r\n0\r\nX: y\r\n\r\n",   # a trailer with CRLF, dropped
])
@pytest.mark.parametrize("split", [False, True])
def test_guard_chunk_lines_nginx_takes_are_streamed(body: bytes, split: bool) -> None:
    # guard: nginx's sw_chunk_extension takes any byte but CR and LF (extensions never reach
    # the client: the body is re-chunked); a CR last in a read is the start of a CRLF whose
    # LF is still to come, not a bare CR.
    p, out = _chunked_response(body, split)
    assert out.startswith(CHUNKED)
    assert dechunk(out[len(CHUNKED):]) == (b"hello", True)
    assert not p.closed and [c.reuse for c in p.closes] == [True]


# --- 3. 101: Date as for every other response ---------------------------------------------

WS_101 = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          b"%sSec-WebSocket-Accept: abc\r\n\r\n")


@pytest.mark.parametrize("upstream_date", [b"", b"Date: Mon, 01 Jan 2001 00:00:00 GMT\r\n"])
def test_defect_101_carries_our_date_as_other_responses_do(upstream_date: bytes) -> None:
    # DEFECT: the 101 carried the upstream's Date, or none, where every other response
    # carries ours (nginx's header filter writes its own for any status: "if
    # (r->headers_out.date == NULL) { ... ngx_cached_http_time ... }", the upstream's hidden).
    p = ProxyPair(app=lambda r, b, u: Reply(WS_101 % upstream_date), clock=lambda: CLOCK)
    out = p.send(UPGRADE)
    assert out.startswith(b"HTTP/1.1 101 ") and p.tunnels
    head = out.split(b"\r\n\r\n")[0] + b"\r\n"
    assert head.lower().count(b"\r\ndate: ") == 1 and DATE in head
    assert b"2001" not in head
    # The same as a 200 from the same upstream would get.
    q = ProxyPair(app=lambda r, b, u: Reply(
        b"HTTP/1.1 200 OK\r\n%sContent-Length: 2\r\n\r\nok" % upstream_date),
        clock=lambda: CLOCK)
    assert DATE in q.send(GET) and b"2001" not in bytes(q.received)


def test_defect_101_keeps_the_upstream_header_case() -> None:
    # DEFECT: the 101's headers went out lower-cased ("sec-websocket-accept") where every
    # other response keeps the upstream's case (nginx's header filter copies each name as
    # received: "ngx_copy(b->last, header[i].key.data, header[i].key.len)").
    p = ProxyPair(app=lambda r, b, u: Reply(WS_101 % b"X-Trace-ID: 7\r\n"))
    out = p.send(UPGRADE)
    assert out.startswith(b"HTTP/1.1 101 ") and p.tunnels
    for line in (b"X-Trace-ID: 7", b"Sec-WebSocket-Accept: abc", b"Upgrade: websocket"):
        assert b"\r\n" + line + b"\r\n" in out, line


def test_guard_101_without_a_clock_passes_the_upstream_date() -> None:
    # guard: no clock, no Date of ours: the upstream's passes (as for other responses).
    p = ProxyPair(app=lambda r, b, u: Reply(WS_101 % b"Date: Mon, 01 Jan 2001 00:00:00 GMT\r\n"))
    out = p.send(UPGRADE)
    assert out.startswith(b"HTTP/1.1 101 ") and p.tunnels
    assert out.lower().count(b"\r\ndate: ") == 1
    assert b": Mon, 01 Jan 2001 00:00:00 GMT\r\n" in out


# --- 4. framing an upstream may get wrong: guards ------------------------------------------


@pytest.mark.parametrize("te", [b"chunked, identity", b"identity", b"chunked\r\nTransfer-"
                                b"Encoding: chunked"])
def test_guard_upstream_transfer_encoding_other_than_one_chunked_is_502(te: bytes) -> None:
    # guard: nginx 1.23+ (ngx_http_upstream_process_transfer_encoding): "upstream sent unknown
    # "Transfer-Encoding"" / "upstream sent duplicate header line" -> invalid header.
    p = ProxyPair(app=lambda r, b, u: Reply(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: %s\r\n\r\n5\r\nhello\r\n0\r\n\r\n" % te))
    out = p.send(GET)
    assert status_of(out) == 502 and b"hello" not in out
    assert [c.reuse for c in p.closes] == [False]
    _next_request_gets_a_fresh_connection(p)


@pytest.mark.parametrize("status", [b"204 No Content", b"304 Not Modified"])
def test_guard_bodyless_status_with_transfer_encoding_has_no_body(status: bytes) -> None:
    # guard: a 204/304 has no body whatever its framing headers say (nginx's
    # ngx_http_proxy_input_filter_init: "1xx, 204, and 304 and replies to HEAD requests" ->
    # length 0, keepalive kept); Transfer-Encoding is not forwarded, nothing follows the head,
    # and a clean 304 connection is kept. A 204 announcing a body (RFC 9110 §8.6 forbids it)
    # is not pooled since session 23: a body it wrote late would answer another client
    # (tests/test_review_s23_http.py).
    p = ProxyPair(app=lambda r, b, u: Reply(
        b"HTTP/1.1 %s\r\nTransfer-Encoding: chunked\r\n\r\n" % status))
    out = p.send(GET)
    assert out == b"HTTP/1.1 %s\r\n\r\n" % status
    assert [c.reuse for c in p.closes] == [status.startswith(b"304")]


def test_guard_head_answered_with_a_chunked_body_forwards_no_byte_of_it() -> None:
    # guard: the head passes, without a Transfer-Encoding (nginx's chunked filter writes none
    # for HEAD: session 24, tests/test_proxy_core_s24.py); its body is not forwarded and the
    # connection holding it is not pooled.
    p = ProxyPair(app=lambda r, b, u: Reply(CHUNKED + b"6\r\nLEAKED\r\n0\r\n\r\n"))
    out = p.send(HEAD)
    assert out == b"HTTP/1.1 200 OK\r\n\r\n"
    assert [c.reuse for c in p.closes] == [False]
    _next_request_gets_a_fresh_connection(p)
    assert b"LEAKED" not in bytes(p.received)


# --- through the asyncio server, a real upstream on 127.0.0.1 ------------------------------


class _OneReply(TrackedUpstream):
    """Answers every request head on every connection with ``reply``; counts connections."""

    def __init__(self, reply: bytes) -> None:
        super().__init__()
        self.reply = reply
        self.accepted = 0

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.writers.append(w)
        try:
            while True:
                await r.readuntil(b"\r\n\r\n")
                w.write(self.reply)
                await w.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            w.close()


@pytest.mark.network
@pytest.mark.asyncio
async def test_defect_server_repeated_content_length_is_502_and_the_connection_dropped() -> None:
    # DEFECT: through the server the response went to the client with the merged length.
    up = await _OneReply(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"
                         b"hello").start()
    async with proxy_to(up) as port:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(2):
            w.write(GET)
            head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 502 ")
            n = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            assert b"hello" not in await asyncio.wait_for(r.readexactly(n), 5)
        w.close()
        # Each try got a connection of its own: the first was not pooled.
        assert await until(lambda: up.accepted == 2)


@pytest.mark.network
@pytest.mark.asyncio
async def test_defect_server_bare_cr_in_a_chunk_line_cuts_the_response() -> None:
    # DEFECT: the chunk and the rest of the response reached the client, complete.
    up = await _OneReply(CHUNKED + b"5;\rX\r\nhello\r\n0\r\n\r\n").start()
    async with proxy_to(up) as port:
        out = await exchange(port, GET)
        assert out.startswith(b"HTTP/1.1 200 OK\r\n") and out.endswith(b"\r\n\r\n")
        assert b"hello" not in out
