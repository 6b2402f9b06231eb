"""Session 22 review (W5): retries, timeouts and upstream failures against ingress-nginx/nginx,
over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

import pytest

from ingresslib.proxy._server import ProxyServer
from tests._server_helpers import StubRouter
from tests._upstream_helpers import start_proxy, until

pytestmark = pytest.mark.network


async def _recv_head(loop: asyncio.AbstractEventLoop, conn: socket.socket) -> bytes:
    """The request head, and whatever body bytes came with it (returned after the head)."""
    data = b""
    while b"\r\n\r\n" not in data:
        d = await loop.sock_recv(conn, 65536)
        if not d:
            raise ConnectionError("closed before the head")
        data += d
    return data.split(b"\r\n\r\n", 1)[1]


def _upstream_stalled(server: ProxyServer) -> bool:
    return any(getattr(c, "upstream_full", False) for c in server.connections)


@pytest.mark.asyncio
async def test_proxy_send_timeout_restarts_while_the_upstream_takes_bytes() -> None:
    # nginx proxy_send_timeout: "The timeout is set only between two successive write
    # operations, not for the transmission of the whole request. If the proxied server does not
    # receive anything within this time, the connection is closed." An upstream that reads an
    # upload slowly but steadily (some bytes in every 0.5 s period) must not see its try fail
    # as timed out (504) because the proxy's write buffer to it stayed above the low-water mark
    # for longer than proxy_send_timeout. (The client side's send_timeout already worked so.)
    loop = asyncio.get_running_loop()
    size = 1 << 20
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen()
    lsock.setblocking(False)
    uport = lsock.getsockname()[1]
    records: list[Any] = []
    server, port = await start_proxy(StubRouter([("127.0.0.1", uport)]), proxy_send_timeout=0.5,
                                     proxy_read_timeout=30, client_body_timeout=30,
                                     proxy_body_size=0, on_record=records.append)
    got = 0
    stalled = False
    ready = asyncio.Event()

    async def upstream() -> None:
        nonlocal got, stalled
        conn, _ = await loop.sock_accept(lsock)
        with conn:
            conn.setblocking(False)
            got = len(await _recv_head(loop, conn))
            # Small kernel buffers on the proxy's side too (before the body comes), so that
            # the bytes this upstream takes show as the proxy's buffer draining (Linux would
            # grow its send buffer to megabytes on loopback).
            for c in server.connections:
                for u in c.upstreams.values():
                    u.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
            ready.set()
            stalled = await until(lambda: _upstream_stalled(server), 5.0)
            # 1.2 s of slow reading, 8 KiB every 100 ms (less in the first period than the
            # proxy's buffer holds above its low-water mark); then the rest as fast as it comes.
            for _ in range(12):
                got += len(await loop.sock_recv(conn, 8192))
                await asyncio.sleep(0.1)
            while got < size:
                d = await loop.sock_recv(conn, 1 << 20)
                if not d:
                    return
                got += len(d)
            await loop.sock_sendall(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            with contextlib.suppress(ConnectionError):
                await loop.sock_recv(conn, 1)

    up_task = asyncio.create_task(upstream())
    r, w = await asyncio.open_connection("127.0.0.1", port)

    async def upload() -> None:
        w.write(b"POST /up HTTP/1.1\r\nHost: a.test\r\nContent-Length: %d\r\n\r\n" % size)
        await ready.wait()
        chunk = b"x" * (1 << 16)
        with contextlib.suppress(ConnectionError):
            for _ in range(size >> 16):
                w.write(chunk)
                await w.drain()

    sending = asyncio.create_task(upload())
    try:
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 10)
        assert stalled  # the upstream's buffer did fill: proxy_send_timeout was running
        assert head.startswith(b"HTTP/1.1 200 "), head
        assert await until(lambda: bool(records), 2.0)
        assert [rec.status for rec in records] == [200]
        assert got == size
    finally:
        sending.cancel()
        w.transport.abort()
        await server.shutdown(1)
        up_task.cancel()
        with contextlib.suppress(BaseException):
            await up_task
        lsock.close()
