"""Upstream-side review (session 15): what a backend sends back, against nginx's
ngx_http_proxy_module as ingress-nginx configures it (proxy_http_version 1.1, upstream
keep-alive).

The client side was reviewed before (tests/test_desync_review.py, tests/test_proxy_hostile.py);
here the backend misbehaves and the question is whether the next request -- on the same client
connection, on the same pooled upstream connection, or on a fresh one -- still gets exactly
its own response.

Each test says whether it found a defect ("DEFECT": failed before the fix in the same change)
or guards behaviour that was already right ("guard").
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from _proxy_harness import ProxyPair, Reply, status_of
from _upstream_helpers import TrackedUpstream, start_proxy
from tests._server_helpers import StubRouter

GET = b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"
HEAD = b"HEAD / HTTP/1.1\r\nHost: a.test\r\n\r\n"
#: An HTTP/1.1 response without Content-Length or chunked: its body ends when the upstream
#: closes (RFC 9112 §6.3 rule 8).
UNTIL_CLOSE = b"HTTP/1.1 200 OK\r\n\r\nhello"


# --- sans-IO core --------------------------------------------------------------------------


def test_defect_a_response_read_until_close_does_not_poison_the_next_response() -> None:
    # DEFECT: a response whose body ended with the upstream's close was taken as a clean
    # keep-alive end (CloseUpstream(reuse=True)) and its parser kept for the next upstream
    # connection still marked "peer closed": the next response, from a healthy upstream on a
    # fresh connection, was a 502 as soon as its head came in two reads.
    p = ProxyPair(app=lambda r, b, u: Reply(UNTIL_CLOSE, close=True))
    out = p.send(GET)
    assert status_of(out) == 200 and out.endswith(b"5\r\nhello\r\n0\r\n\r\n")
    # nginx keeps no such connection (its keepalive flag is set only once a known length
    # was read): neither do we.
    assert [c.reuse for c in p.closes] == [False]
    assert not p.closed

    p.app = lambda r, b, u: None  # the next upstream answers when the test says
    assert p.send(GET) == b""
    up = p.upstreams[-1]
    assert len(p.upstreams) == 2 and not up.closed
    assert p.upstream_send(up, b"HTTP/1.1 200 OK\r\nContent-") == b""
    out = p.upstream_send(up, b"Length: 2\r\n\r\nhi")
    assert out == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
    assert [r.upstream_status for r in p.records] == [200, 200]
    assert [c.reuse for c in p.closes] == [False, True]


def test_defect_a_body_after_a_read_until_close_response_is_not_cut() -> None:
    # DEFECT (same cause): the next response's body arriving after its head was cut short
    # ("peer closed connection without sending complete message body") and the client closed.
    p = ProxyPair(app=lambda r, b, u: Reply(UNTIL_CLOSE, close=True))
    p.send(GET)
    p.app = lambda r, b, u: Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab")
    out = p.send(GET)
    assert out == b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab"
    out = p.upstream_send(p.upstreams[-1], b"cd")
    assert out == b"cd" and not p.closed
    assert [r.upstream_status for r in p.records] == [200, 200]


@pytest.mark.parametrize("name,response", [
    ("obs-fold is unfolded, never forwarded as a fold",
     b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nhi"),
    ("bare LF line ends", b"HTTP/1.1 200 OK\nX-A: a\nContent-Length: 2\n\nhi"),
])
def test_guard_lenient_heads_are_rewritten_with_crlf(name: str, response: bytes) -> None:
    # guard: RFC 9112 §5.2 lets a proxy replace an obs-fold by SP; the head the client gets
    # is always the proxy's own serialisation (CRLF, one line per field).
    p = ProxyPair(app=lambda r, b, u: Reply(response))
    out = p.send(GET)
    assert out == b"HTTP/1.1 200 OK\r\nX-A: a" + (b" b" if b"\r\n b" in response else b"") + \
        b"\r\nContent-Length: 2\r\n\r\nhi", name


@pytest.mark.parametrize("response", [
    b"HTTP/1.1 200 OK\r\nX: a\x00b\r\nContent-Length: 2\r\n\r\nhi",
    b"HTTP/1.1 200 OK\r\nX: a\rb\r\nContent-Length: 2\r\n\r\nhi",
    b"HTTP/1.1 200 OK\r\nX Y: a\r\nContent-Length: 2\r\n\r\nhi",
    b"HTTP/1.1 99 Odd\r\nContent-Length: 2\r\n\r\nhi",
    b"hello, no status line\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nhi!",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\nRAW",
])
def test_guard_invalid_heads_are_502_and_the_connection_is_dropped(response: bytes) -> None:
    # guard: an invalid head (or a 101 nobody asked for: never tunneled) is a 502; the
    # upstream connection is closed, and the client's next request gets a fresh one.
    p = ProxyPair(app=lambda r, b, u: Reply(response))
    assert status_of(p.send(GET)) == 502
    assert [c.reuse for c in p.closes] == [False] and not p.closed
    p.app = lambda r, b, u: Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    out = p.send(GET)
    assert out == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    assert len(p.upstreams) == 2 and b"RAW" not in bytes(p.received)


@pytest.mark.parametrize("request_,response", [
    (HEAD, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nEVIL!"),
    (GET, b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nEVIL!"),
    (GET, b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\nEVIL!"),
    (GET, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiHTTP/1.1 200 OK\r\n"
          b"Content-Length: 5\r\n\r\nEVIL!"),
])
def test_guard_bytes_after_a_bodyless_or_complete_response_never_reach_the_next_request(
        request_: bytes, response: bytes) -> None:
    # guard: a body the response may not have, or bytes past its end, are not forwarded and
    # the upstream connection is not pooled with them.
    p = ProxyPair(app=lambda r, b, u: Reply(response))
    p.send(request_)
    assert [c.reuse for c in p.closes] == [False]
    p.app = lambda r, b, u: Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert p.send(GET).endswith(b"\r\n\r\nok")
    assert b"EVIL" not in bytes(p.received)


def test_guard_connection_tokens_from_the_upstream_are_dropped_set_cookie_kept() -> None:
    # guard: RFC 9110 §7.6.1 (a field named in Connection is hop-by-hop); Keep-Alive, TE,
    # Trailer, Upgrade and the hidden Server never reach the client; Set-Cookie lines pass as
    # they are; "close" ends the upstream connection, not the client's.
    p = ProxyPair(app=lambda r, b, u: Reply(
        b"HTTP/1.1 200 OK\r\nConnection: close, X-Secret\r\nX-Secret: s\r\n"
        b"Keep-Alive: timeout=5\r\nTE: trailers\r\nTrailer: X\r\nUpgrade: h2c\r\n"
        b"Server: app/1.0\r\nSet-Cookie: a=1; Path=/\r\nSet-Cookie: b=2\r\n"
        b"Content-Length: 2\r\n\r\nhi"))
    out = p.send(GET)
    assert out == (b"HTTP/1.1 200 OK\r\nSet-Cookie: a=1; Path=/\r\nSet-Cookie: b=2\r\n"
                   b"Content-Length: 2\r\n\r\nhi")
    assert [c.reuse for c in p.closes] == [False] and not p.closed


# --- the asyncio server, a real upstream on 127.0.0.1 ------------------------------------

Script = Callable[[int, bytes, asyncio.StreamWriter], Awaitable[bool]]


class _ScriptedUpstream(TrackedUpstream):
    """A raw-socket upstream: for each request head on connection ``n`` it runs
    ``script(n, head, writer)``, which writes what it likes and says whether to close."""

    def __init__(self, script: Script) -> None:
        super().__init__()
        self.script = script
        self.accepted = 0

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        n = self.accepted
        self.accepted += 1
        self.writers.append(w)
        try:
            while True:
                try:
                    head = await r.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                if await self.script(n, head, w):
                    return
        finally:
            w.close()


@contextlib.asynccontextmanager
async def _client_through_proxy(script: Script) -> AsyncIterator[
        tuple[_ScriptedUpstream, asyncio.StreamReader, asyncio.StreamWriter]]:
    """An upstream running ``script``, a proxy to it, and a client connection to the proxy;
    yields the upstream and the client's reader and writer, closes all after."""
    up = await _ScriptedUpstream(script).start()
    server, port = await start_proxy(StubRouter([("127.0.0.1", up.port)]))
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield up, r, w
    finally:
        w.close()
        await server.shutdown(1)
        await up.stop()


async def _read_response(r: asyncio.StreamReader) -> bytes:
    """One response with a Content-Length or chunked body (the proxy always frames one)."""
    head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
    lower = head.lower()
    if b"content-length:" in lower:
        n = int(lower.split(b"content-length:")[1].split(b"\r\n")[0])
        return head + await asyncio.wait_for(r.readexactly(n), 5)
    body = await asyncio.wait_for(r.readuntil(b"\r\n0\r\n\r\n"), 5)
    return head + body


@pytest.mark.network
@pytest.mark.asyncio
async def test_defect_server_next_response_after_a_read_until_close_one_is_whole() -> None:
    # DEFECT: through the asyncio server, the second request on a keep-alive client
    # connection got 502 from a healthy upstream that wrote its head in two parts, because
    # the first upstream had ended its response by closing.
    async def script(n: int, head: bytes, w: asyncio.StreamWriter) -> bool:
        if n == 0:
            w.write(UNTIL_CLOSE)
            await w.drain()
            return True
        w.write(b"HTTP/1.1 200 OK\r\nContent-")
        await w.drain()
        await asyncio.sleep(0.05)
        w.write(b"Length: 2\r\n\r\nhi")
        await w.drain()
        return False

    async with _client_through_proxy(script) as (up, r, w):
        w.write(GET)
        first = await _read_response(r)
        assert first.startswith(b"HTTP/1.1 200 ") and first.endswith(b"5\r\nhello\r\n0\r\n\r\n")
        w.write(GET)
        second = await _read_response(r)
        assert second.startswith(b"HTTP/1.1 200 ") and second.endswith(b"\r\n\r\nhi")
        assert up.accepted == 2


@pytest.mark.network
@pytest.mark.asyncio
async def test_guard_server_late_bytes_on_a_pooled_connection_reach_no_client() -> None:
    # guard: a HEAD answered with its body written apart, after the connection went back to
    # the pool, and a response followed later by an unasked one: the pooled connection is
    # dropped (nginx: ngx_http_upstream_keepalive_close_handler), the next request is
    # answered on a fresh one with its own response.
    async def script(n: int, head: bytes, w: asyncio.StreamWriter) -> bool:
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
        if not head.startswith(b"HEAD"):
            w.write(b"ok")
        await w.drain()
        await asyncio.sleep(0.05)
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nEVIL!")
        await w.drain()
        return False

    async with _client_through_proxy(script) as (up, r, w):
        w.write(HEAD)
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 200 ")
        await asyncio.sleep(0.2)
        for _ in range(2):
            w.write(GET)
            out = await _read_response(r)
            assert out.endswith(b"\r\n\r\nok"), out
            await asyncio.sleep(0.2)
        assert up.accepted == 3
