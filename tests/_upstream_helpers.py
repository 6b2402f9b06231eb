"""Shared pieces of the asyncio server tests that run a real upstream on 127.0.0.1: the
upstream's listening and stopping, the proxy's start (alone, or in front of one upstream), one
exchange on a new connection, and polling for a condition."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from ingresslib.proxy._server import ProxyServer
from tests._server_helpers import StubRouter

_U = TypeVar("_U", bound="TrackedUpstream")


class TrackedUpstream:
    """An upstream server on 127.0.0.1 that keeps every connection's writer, so that ``stop``
    can abort the connections still open (the proxy may hold pooled ones) before it waits for
    the server to close. Subclasses append to ``writers`` in their ``_handle``."""

    def __init__(self) -> None:
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self: _U) -> _U:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for w in self.writers:
            w.transport.abort()
        await self.server.wait_closed()


async def start_proxy(router: Any, *, tls: bool = False, **kw: Any) -> tuple[ProxyServer, int]:
    """A ProxyServer on 127.0.0.1 (its TLS listener only, with ``tls``) and its port."""
    server = ProxyServer(router, **kw)
    if tls:
        await server.start(None, ("127.0.0.1", 0))
    else:
        await server.start(("127.0.0.1", 0))
    return server, server.addresses[0][2]


@asynccontextmanager
async def proxy_to(up: TrackedUpstream) -> AsyncIterator[int]:
    """The port of a ProxyServer on 127.0.0.1 that sends every request to ``up`` (started);
    on leaving, the proxy shuts down (1 s grace) and ``up`` stops."""
    server, port = await start_proxy(StubRouter([("127.0.0.1", up.port)]))
    try:
        yield port
    finally:
        await server.shutdown(1)
        await up.stop()


async def exchange(port: int, data: bytes) -> bytes:
    """Send ``data`` on a new connection to 127.0.0.1:``port``: all it gets back until the
    server closes (``read_to_eof``)."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        w.write(data)
        return await read_to_eof(r)
    finally:
        w.close()


async def until(cond: Callable[[], object], seconds: float = 2.0) -> bool:
    """Whether ``cond()`` holds within ``seconds``, polled every 10 ms (once more at the end)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while loop.time() < end:
        if cond():
            return True
        await asyncio.sleep(0.01)
    return bool(cond())


async def read_to_eof(r: asyncio.StreamReader, seconds: float = 5.0) -> bytes:
    """Everything the peer sends until it closes; each read waits at most ``seconds``."""
    data = b""
    while True:
        d = await asyncio.wait_for(r.read(1 << 20), seconds)
        if not d:
            break
        data += d
    return data
