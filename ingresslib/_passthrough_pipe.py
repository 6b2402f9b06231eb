"""The bytes of an ``ssl-passthrough`` connection, piped between the client and its endpoint.

ingress-nginx's TCP proxy (internal/ingress/controller/tcpproxy ``TCPProxy.Handle``) dials
the backend, writes the bytes it read to find the server name, then ``pipe``s: two
``io.Copy``, and the first to end (an EOF or an error on either side) closes both
connections. No byte is parsed: the TLS session is the client's and the backend's. The same
here, with asyncio protocols (outside ``ingresslib.proxy``, whose modules but ``_server`` do no
I/O): the client's socket (taken over from ``_TLSAccept`` once its
ClientHello is read) and a new connection to the endpoint. Flow control both ways: while one
side's write buffer is over its high-water mark, the other side is not read.

Bounds (the Go proxy has none): the connect is bounded by ``proxy_connect_timeout``; the
pipe by ``proxy_read_timeout`` of quiet (no byte either way; 0: none), nginx's bound on a
proxied WebSocket tunnel; a close flushes what is buffered for at most that long again, and
with ``proxy_read_timeout`` 0 for at most :data:`FLUSH_TIMEOUT` (60 s): the pipe is over, and
a peer that never reads would otherwise hold its socket (and a ``max_connections`` place)
for ever. (The Go proxy's ``io.Copy`` has no deadline: a write to a client that never reads
blocks its goroutine and both sockets until the client goes. nginx bounds a tunnel's write
to the client by ``send_timeout``, 60 s by default: ngx_http_upstream_process_upgraded.)
Nothing reaches the access log or the metrics (ingress-nginx's proxy logs connections only
at klog level 3-4); a failed connect is logged at debug level.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

__all__ = ["FLUSH_TIMEOUT", "PassthroughPipe"]

_log = logging.getLogger("ingresslib.server")

#: The most time a closed pipe flushes what is buffered when ``proxy_read_timeout`` is 0 (no
#: bound while it runs): nginx's ``send_timeout`` default, its bound on a tunnel's write to
#: the client.
FLUSH_TIMEOUT = 60.0


class _Side(asyncio.Protocol):
    """One socket of a pipe (``client`` or ``upstream``): what it reads goes to the other."""

    __slots__ = ("pipe", "client")

    def __init__(self, pipe: PassthroughPipe, client: bool) -> None:
        self.pipe = pipe
        self.client = client

    def data_received(self, data: bytes) -> None:
        self.pipe.forward(self.client, data)

    def eof_received(self) -> bool:
        self.pipe.close()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.pipe.lost(self.client)

    def pause_writing(self) -> None:
        self.pipe.set_reading(not self.client, False)

    def resume_writing(self) -> None:
        self.pipe.set_reading(not self.client, True)


class PassthroughPipe:
    """A passthrough connection: ``client`` (a raw transport whose first bytes, ``first``,
    were read) piped to ``endpoint``. Held in ``server.passthrough`` (counted against
    ``max_connections``, aborted by ``shutdown``) until both its sockets are gone (the
    backend's too, when it outlives the client's flushing what the client sent)."""

    #: What the log calls these pipes.
    what = "ssl-passthrough"

    def __init__(self, server: Any, client: asyncio.Transport, first: bytes,
                 endpoint: tuple[str, int]) -> None:
        self.server = server
        self.loop: asyncio.AbstractEventLoop = server.loop
        self.client = client
        self.upstream: asyncio.Transport | None = None
        self.endpoint = endpoint
        self.first = first
        self.early = bytearray()   # client bytes read before the endpoint answered
        self.closed = False
        #: Which sockets are gone (their ``connection_lost`` came).
        self.client_gone = False
        self.upstream_gone = False
        settings = server.settings
        self.connect_timeout = float(settings.proxy_connect_timeout)
        self.idle = float(settings.proxy_read_timeout)
        self.last = self.loop.time()
        self.timer: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None
        #: Whether each side may be read (False while the other's write buffer is full).
        self.want = {True: True, False: True}

    def start(self) -> None:
        if getattr(self.server, "draining", False):
            # Shutting down: no pipe is begun, as ``_Downstream`` refuses a TLS connection
            # whose handshake ends now; it would only be cut at the end of the grace period.
            self.closed = True
            self.client.abort()
            return
        self.server.passthrough.add(self)
        self.client.set_protocol(_Side(self, True))
        self.client.pause_reading()   # until the endpoint is connected
        self.task = self.loop.create_task(self._connect())

    async def _connect(self) -> None:
        from .proxy._server import _connect_name, _is_ip_literal

        host, port = self.endpoint
        loop = self.loop
        try:
            async with asyncio.timeout(self.connect_timeout or None):
                if _is_ip_literal(host):
                    transport, _ = await loop.create_connection(
                        lambda: _Side(self, False), host, port)
                else:
                    sock = await _connect_name(loop, self.server.pool, host, port)
                    transport, _ = await loop.create_connection(
                        lambda: _Side(self, False), sock=sock)
        except (OSError, TimeoutError) as e:
            _log.debug("ssl-passthrough: connect to %s:%d failed: %r", host, port, e)
            self.close()
            return
        except Exception:  # noqa: BLE001 - this connection fails, never the server
            _log.exception("ssl-passthrough: connect to %s:%d failed", host, port)
            self.close()
            return
        assert isinstance(transport, asyncio.Transport)
        self._connected(transport)

    def _connected(self, transport: asyncio.Transport, prefix: bytes = b"") -> None:
        """The endpoint answered: ``prefix`` (TCP services' PROXY protocol header), the
        client's first bytes and those it sent meanwhile go to it, then both sides are read
        and the quiet bound runs."""
        self.task = None
        if self.closed:
            transport.abort()
            return
        self.upstream = transport
        for chunk in (prefix, self.first, bytes(self.early)):
            if chunk:
                transport.write(chunk)
        self.early.clear()
        self.first = b""
        self.last = self.loop.time()
        if self.idle > 0:
            self.timer = self.loop.call_later(self.idle, self._idle_check)
        self._sync(True)

    def forward(self, from_client: bool, data: bytes) -> None:
        if self.closed:
            return
        self.last = self.loop.time()
        if from_client:
            if self.upstream is None:
                self.early += data
            else:
                self.upstream.write(data)
        else:
            self.client.write(data)

    def set_reading(self, client: bool, wanted: bool) -> None:
        """Read ``client``'s side (the client, else the upstream) or not: False while the
        other side's write buffer is full."""
        self.want[client] = wanted
        self._sync(client)

    def _sync(self, client: bool) -> None:
        if self.closed:
            return
        t = self.client if client else self.upstream
        if t is None or t.is_closing():
            return
        if client and self.upstream is None:
            return   # read only once the endpoint is connected
        if self.want[client]:
            if not t.is_reading():
                t.resume_reading()
        elif t.is_reading():
            t.pause_reading()

    def _idle_check(self) -> None:
        self.timer = None
        if self.closed:
            return
        left = self.last + self.idle - self.loop.time()
        if left > 0:
            self.timer = self.loop.call_later(left, self._idle_check)
            return
        _log.debug("%s: %s:%d idle for %gs, closed", self.what, *self.endpoint, self.idle)
        self.abort()

    def close(self) -> None:
        """Either side ended (or the connect failed): both are closed, what is buffered for
        each flushed first, for at most the idle timeout (0: :data:`FLUSH_TIMEOUT`)."""
        if self.closed:
            return
        self.closed = True
        self._stop()
        for t in (self.client, self.upstream):
            if t is not None and not t.is_closing():
                t.close()
        if not self._both_gone():
            # (What the other side already read is delivered; a side that does not read it
            # is cut after the bound.)
            self.timer = self.loop.call_later(self.idle if self.idle > 0 else FLUSH_TIMEOUT,
                                              self.abort)

    def abort(self) -> None:
        """Both sides cut at once (shutdown, idle timeout, a flush that does not end)."""
        self.closed = True
        self._stop()
        for t in (self.client, self.upstream):
            if t is not None:
                t.abort()

    def _stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.task is not None:
            self.task.cancel()
            self.task = None

    def _both_gone(self) -> bool:
        return self.client_gone and (self.upstream is None or self.upstream_gone)

    def lost(self, client: bool) -> None:
        if client:
            self.client_gone = True
        else:
            self.upstream_gone = True
        self.close()
        if self._both_gone():
            # Held until then, not only until the client goes: a flush to the backend that
            # outlives the client is still a socket of the server's, and ``shutdown`` aborts
            # the pipes it holds.
            self.server.passthrough.discard(self)
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None
