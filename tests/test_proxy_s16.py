"""HTTP/1.1 framing review (session 16): what session 15 left open, against nginx's
ngx_http_parse_chunked / ngx_http_upstream / ngx_http_header_filter and RFC 9110/9112.

Each test says whether it found a defect ("DEFECT": failed before the fix in the same change)
or guards behaviour that was already right ("guard").
"""

from __future__ import annotations

import asyncio

import h11
import pytest

from ingresslib.proxy import ProxySettings
from ingresslib.proxy._connection import _H11Reader

from _proxy_harness import ProxyPair, Reply, status_of
from _upstream_helpers import TrackedUpstream, exchange, proxy_to, until

GET = b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"
HEAD = b"HEAD / HTTP/1.1\r\nHost: a.test\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
#: NGX_MAX_OFF_T_VALUE
MAX_OFF_T = (1 << 63) - 1
CHUNKED_POST = b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n"


# --- 1. upstream Content-Length beyond 2^63 - 1 -------------------------------------------


@pytest.mark.parametrize("request_,status", [(GET, b"200 OK"), (HEAD, b"200 OK"),
                                             (GET, b"204 No Content"),
                                             (GET, b"304 Not Modified")])
@pytest.mark.parametrize("length", [MAX_OFF_T + 1, 10 ** 19, 10 ** 20 - 1])
def test_defect_upstream_content_length_past_off_t_is_an_invalid_response(
        request_: bytes, status: bytes, length: int) -> None:
    # DEFECT: forwarded as is (and its body after it). nginx's header handler reads it with
    # ngx_atoof, which fails past NGX_MAX_OFF_T_VALUE: "upstream sent invalid
    # "Content-Length" header", an invalid header -> 502, whatever the status or method.
    p = ProxyPair(app=lambda r, b, u: Reply(
        b"HTTP/1.1 %s\r\nContent-Length: %d\r\n\r\nEVIL" % (status, length)))
    out = p.send(request_)
    assert status_of(out) == 502 and b"EVIL" not in out
    assert [r.upstream_status for r in p.records] == [502]
    assert [c.reuse for c in p.closes] == [False] and not p.closed
    # The client connection carries on with a fresh upstream connection.
    p.app = lambda r, b, u: Reply(OK)
    assert p.send(GET).endswith(b"\r\n\r\nok") and len(p.upstreams) == 2


def test_guard_upstream_content_length_of_off_t_max_is_forwarded() -> None:
    # guard: the bound is nginx's, not one less: 2^63 - 1 itself is a length.
    p = ProxyPair(app=lambda r, b, u: Reply(
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\nabc" % MAX_OFF_T))
    assert p.send(GET) == b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\nabc" % MAX_OFF_T
    assert not p.closed


# --- 2. chunk sizes beyond nginx's bound --------------------------------------------------

#: nginx's ngx_http_parse_chunked: a size digit is refused once size > NGX_MAX_OFF_T_VALUE /
#: 16, then "if (ctx->size > NGX_MAX_OFF_T_VALUE - 5) { goto invalid; }".
LARGEST_CHUNK = MAX_OFF_T - 5


@pytest.mark.parametrize("size", [b"fffffffffffffffffff", b"%x" % (LARGEST_CHUNK + 1),
                                  b"10000000000000003", b"ffffffffffffffffffff"])
def test_defect_request_chunk_size_past_nginx_bound_is_400_and_nothing_reaches_upstream(
        size: bytes) -> None:
    # DEFECT: h11 takes up to 20 hex digits; the proxy opened the upstream and streamed the
    # chunk's data to it (re-chunked). nginx: "invalid" -> 400. A 64-bit backend parser would
    # wrap 0x1_0000_0000_0000_0003 into 3.
    p = ProxyPair()
    out = p.send(CHUNKED_POST + size + b"\r\nabc")
    assert status_of(out) == 400 and p.closed
    assert p.upstream_bytes == b""


def test_defect_request_chunk_size_past_bound_after_the_head_was_sent_upstream() -> None:
    # DEFECT (same cause): the head reached the upstream first (streamed request); the huge
    # chunk is then a 400 to the client, the upstream connection is dropped (never pooled)
    # and none of the chunk's bytes reach it.
    p = ProxyPair()
    assert p.send(CHUNKED_POST) == b""
    sent = p.upstream_bytes
    assert sent.startswith(b"POST / HTTP/1.1\r\n")
    out = p.send(b"fffffffffffffffffff\r\nabc")
    assert status_of(out) == 400 and p.closed
    assert p.upstream_bytes == sent
    assert [c.reuse for c in p.closes] == [False]


@pytest.mark.parametrize("size", [b"%x" % LARGEST_CHUNK, b"0000000000000000003"])
def test_guard_request_chunk_sizes_nginx_takes_are_taken(size: bytes) -> None:
    # guard: up to nginx's bound the size is a size (leading zeros within h11's 20 digits).
    # (No body limit: a chunk announcing more than proxy-body-size leaves is nginx's 413 at
    # its line, tests/test_x19_s34.py.)
    p = ProxyPair(settings=ProxySettings(proxy_body_size=0))
    out = p.send(CHUNKED_POST + size + b"\r\nabc")
    assert out == b"" and not p.closed
    assert p.upstream_bytes.endswith(b"\r\n\r\n3\r\nabc\r\n")


@pytest.mark.parametrize("split", [False, True])
def test_defect_upstream_chunk_size_past_nginx_bound_ends_the_response(split: bool) -> None:
    # DEFECT: the chunk's data was streamed to the client for as long as the upstream sent
    # it. nginx: "upstream sent invalid chunked response"; its head is out (header_sent), so
    # the request is finalized with NGX_ERROR: the client connection is closed, no last
    # chunk, and the upstream connection is not kept.
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    body = b"fffffffffffffffffff\r\nEVIL"
    p = ProxyPair(app=lambda r, b, u: Reply(head if split else head + body))
    out = p.send(GET)
    if split:
        assert out == b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        out = p.upstream_send(p.upstreams[0], body)
    else:
        assert out == b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        out = b""
    assert out == b"" and p.closed
    assert b"EVIL" not in bytes(p.received)
    assert [c.reuse for c in p.closes] == [False]


def test_guard_upstream_chunk_size_at_nginx_bound_is_streamed() -> None:
    p = ProxyPair(app=lambda r, b, u: Reply(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\nabc" % LARGEST_CHUNK))
    assert p.send(GET).endswith(b"\r\n\r\n3\r\nabc\r\n") and not p.closed


# --- 3. 101 Switching Protocols: headers named in its Connection --------------------------

UPGRADE = (b"GET /ws HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\n"
           b"Upgrade: websocket\r\n\r\n")


def test_defect_101_drops_headers_named_in_its_connection_header() -> None:
    # DEFECT: X-Secret, named hop-by-hop by the upstream, reached the client with the 101
    # (every other response drops it: RFC 9110 §7.6.1). nginx's header filter writes
    # "Connection: upgrade" for a 101, and the upstream's Upgrade passes.
    p = ProxyPair(app=lambda r, b, u: Reply(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade, X-Secret\r\nConnection: x-more\r\nX-Secret: s\r\n"
        b"X-More: m\r\nKeep-Alive: timeout=5\r\nSec-WebSocket-Accept: abc\r\n\r\n"))
    out = p.send(UPGRADE)
    assert out == (b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: abc\r\n"
                   b"connection: upgrade\r\nUpgrade: websocket\r\n\r\n")
    assert p.tunnels


# --- 4. the reader's peer_closed ---------------------------------------------------------


def test_reader_peer_closed_says_whether_the_peer_eof_came() -> None:
    r = _H11Reader(client=True, max_incomplete_event_size=65536)
    assert r.peer_closed is False
    r.receive_data(b"HTTP/1.1 200 OK\r\n")
    assert r.peer_closed is False
    r.receive_data(b"")
    assert r.peer_closed is True
    r.reset()
    assert r.peer_closed is False
    assert r.their_state is h11.IDLE


def test_defect_every_connection_line_of_a_response_names_hop_by_hop_headers() -> None:
    # DEFECT: only the last Connection line's options were dropped: "Connection: X-Secret"
    # followed by "Connection: keep-alive" let X-Secret through. RFC 9110 §5.3: the lines are
    # one list; §7.6.1: each option names a header to remove.
    p = ProxyPair(app=lambda r, b, u: Reply(
        b"HTTP/1.1 200 OK\r\nConnection: X-Secret\r\nConnection: keep-alive\r\n"
        b"X-Secret: s\r\nContent-Length: 2\r\n\r\nhi"))
    assert p.send(GET) == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"


# --- through the asyncio server, a real upstream on 127.0.0.1 ------------------------------


class _RecordingUpstream(TrackedUpstream):
    """Records every byte each connection sends; answers each request head with ``reply``."""

    def __init__(self, reply: bytes) -> None:
        super().__init__()
        self.reply = reply
        self.received: list[bytearray] = []
        #: Connections the proxy closed (EOF read).
        self.ended = 0

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.writers.append(w)
        got = bytearray()
        self.received.append(got)
        try:
            while True:
                data = await r.read(65536)
                if not data:
                    self.ended += 1
                    return
                got += data
                if b"\r\n\r\n" in got and self.reply:
                    w.write(self.reply)
                    await w.drain()
                    self.reply = b""
        except ConnectionError:
            return
        finally:
            w.close()


@pytest.mark.network
@pytest.mark.asyncio
async def test_defect_server_huge_request_chunk_is_400_and_the_backend_gets_no_byte() -> None:
    # DEFECT: the request was streamed to the backend, head and chunk data.
    up = await _RecordingUpstream(b"").start()
    async with proxy_to(up) as port:
        out = await exchange(port, CHUNKED_POST + b"fffffffffffffffffff\r\n" + b"x" * 1000)
        assert out.startswith(b"HTTP/1.1 400 ")
        await asyncio.sleep(0.05)
        assert all(got == b"" for got in up.received)


@pytest.mark.network
@pytest.mark.asyncio
async def test_defect_server_huge_upstream_chunk_ends_the_response() -> None:
    # DEFECT: the chunk's data kept flowing to the client. Now the head is the last thing it
    # gets; the client connection is closed and the upstream one too (never pooled).
    up = await _RecordingUpstream(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  b"fffffffffffffffffff\r\n" + b"EVIL" * 100).start()
    async with proxy_to(up) as port:
        out = await exchange(port, GET)
        assert out.startswith(b"HTTP/1.1 200 OK\r\n") and out.endswith(b"\r\n\r\n")
        assert b"EVIL" not in out
        assert await until(lambda: up.ended == len(up.received) == 1)


# --- a method nginx refuses at its first byte, before the head is complete ----------------------


@pytest.mark.parametrize("data", [
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(32),  # a TLS ClientHello
    b"SSH-2.0-OpenSSH_9.6",                                     # an SSH banner
    b"get /",                                                   # a lower-case method
    b"G{T",
    b"\r\nPRI",                                                 # fine so far...
])
def test_an_invalid_method_byte_is_400_before_the_head_is_complete(data: bytes) -> None:
    # nginx's ngx_http_parse_request_line: "client sent invalid method" at the first byte
    # that is not A-Z, '_' or '-' before the space. A TLS client on the plain port waited for
    # the head deadline (60 s) here, holding the connection.
    pair = ProxyPair()
    out = pair.send(data)
    if data == b"\r\nPRI":
        assert out == b"" and not pair.closed
        out = pair.send(b"*")  # ...until this byte
    assert status_of(out) == 400 and pair.closed
    assert pair.upstream_bytes == b""


@pytest.mark.parametrize("data", [b"GE", b"GET", b"GET /x HT", b"\r", b"\r\n\r", b"M-SEARCH"])
def test_a_partial_head_nginx_would_read_on_waits(data: bytes) -> None:
    pair = ProxyPair()
    assert pair.send(data) == b"" and not pair.closed
