"""``auth-keepalive*`` in ``IngressASGI``: the pool of keep-alive connections to an
``auth-url`` service over its asyncio client (ingresslib/_asgi_extauth.py's
``ask_auth_service`` hands a subrequest with ``auth-keepalive`` here). The rules are the proxy
core's (proxy/_authkeepalive.py has the references): the subrequest without ``Connection:
close``, its answer read to its end, the connection kept unless the answer ends it, at most N
idle (the least recently used closed first), ``auth-keepalive-requests`` subrequests each,
closed after ``auth-keepalive-timeout`` idle; a pooled connection that ends before any byte of
the answer carries the subrequest once more on a new one. One pool per event loop, auth
service (host:port, TLS) and keep-alive numbers.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable
from typing import Any

import h11

from .proxy._authkeepalive import AuthKeepalive, reusable

__all__ = ["AsgiAuthPool", "asgi_pool", "ask_pooled"]


class _Idle:
    """One keep-alive connection to an auth service (IngressASGI's asyncio streams)."""

    __slots__ = ("reader", "writer", "requests", "idle_since")

    def __init__(self, reader: Any, writer: Any) -> None:
        self.reader = reader
        self.writer = writer
        #: Subrequests carried (``auth-keepalive-requests``).
        self.requests = 0
        self.idle_since = 0.0

    def usable(self) -> bool:
        """Open, and nothing (bytes, an EOF) arrived while idle (nginx's close handler)."""
        t = self.writer.transport
        r = self.reader
        return not (t is None or t.is_closing() or r.at_eof() or r.exception() is not None
                    or len(r._buffer))

    def close(self) -> None:
        self.writer.close()


class AsgiAuthPool:
    """The idle connections to one auth service with one location's ``auth-keepalive*``:
    the most recently used taken first, at most ``connections`` kept (the least recently
    used closed first), each closed after ``requests`` subrequests or ``timeout`` idle."""

    def __init__(self, ka: AuthKeepalive, clock: Callable[[], float]) -> None:
        self.ka = ka
        self.clock = clock
        self.idle: list[_Idle] = []
        self._sweeper: Any = None

    def take(self) -> _Idle | None:
        limit = self.clock() - self.ka.timeout
        while self.idle:
            c = self.idle.pop()
            if c.idle_since >= limit and c.usable():
                return c
            c.close()
        return None

    def put(self, c: _Idle) -> None:
        if c.requests >= self.ka.requests or not c.usable():
            c.close()
            return
        c.idle_since = self.clock()
        self.idle.append(c)
        while len(self.idle) > self.ka.connections:
            self.idle.pop(0).close()
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().call_later(self.ka.timeout, self.sweep)

    def sweep(self) -> None:
        """Close the connections idle past the timeout (nginx's per-connection timer)."""
        self._sweeper = None
        limit = self.clock() - self.ka.timeout
        keep = []
        for c in self.idle:
            if c.idle_since > limit:
                keep.append(c)
            else:
                c.close()
        self.idle = keep
        if keep:
            due = keep[0].idle_since + self.ka.timeout - self.clock()
            self._sweeper = asyncio.get_running_loop().call_later(max(due, 0.0), self.sweep)

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for c in self.idle:
            c.close()
        self.idle = []


#: The running event loop -> its auth pools (an asyncio connection belongs to one loop).
_ASGI_POOLS: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], AsgiAuthPool]] = \
    weakref.WeakKeyDictionary()


def asgi_pool(auth: Any, clock: Callable[[], float] | None = None) -> AsgiAuthPool:
    """The running loop's pool for ``auth`` (an ``ExtAuth`` with ``keepalive``)."""
    ka: AuthKeepalive = auth.keepalive
    loop = asyncio.get_running_loop()
    pools = _ASGI_POOLS.get(loop)
    if pools is None:
        pools = _ASGI_POOLS[loop] = {}
    key = (auth.endpoint, auth.tls, ka.connections, ka.requests, ka.timeout)
    pool = pools.get(key)
    if pool is None:
        pool = pools[key] = AsgiAuthPool(ka, clock or time.monotonic)
    return pool


async def ask_pooled(auth: Any, head: bytes, opts: Any, max_head: int,
                     keep: Callable[[h11.Response, Any], None] | None = None) -> Any:
    """IngressASGI's ``ask_auth_service`` with ``auth-keepalive``: the subrequest on an idle
    connection of the pool (or a new one), its answer read to its end, the connection put
    back when it can be reused; a pooled connection that ends before any byte of the answer
    carries it once more on a new connection. The verdict, or ``FAILED`` (500)."""
    from ._asgi_extauth import _context, _log, _why, _within  # (it imports this module)
    from .proxy._extauth import FAILED, verdict
    from .proxy._h11_reader import _H11Reader

    pool = asgi_pool(auth)
    host, port = auth.endpoint
    c = pool.take()
    while True:
        reused = c is not None
        if c is None:
            try:
                reader, writer = await _within(asyncio.open_connection(
                    host, port, ssl=_context() if auth.tls else None,
                    server_hostname=host if auth.tls else None), opts.connect_timeout)
            except (OSError, asyncio.TimeoutError, ValueError, UnicodeError) as e:
                _log.info("auth-url %s: cannot connect (%s): 500", auth.url, _why(e))
                return FAILED
            c = _Idle(reader, writer)
        c.requests += 1
        parser = _H11Reader(True, max_head)
        parser.method = auth.method or b"GET"
        got = False

        async def answer(conn: _Idle) -> h11.Response | str:
            """The final answer's head once its body is read, or why there is none."""
            nonlocal got
            spent = 0
            response: h11.Response | None = None
            while True:
                before = len(parser._buf._data)
                event = parser.next_event()
                kind = type(event)
                if kind is h11.Response or kind is h11.InformationalResponse:
                    spent += before - len(parser._buf._data)
                    if spent > max_head:
                        return "a head over max-response-header-size"
                if kind is h11.Response:
                    response = event
                    continue
                if kind is h11.InformationalResponse:
                    if event.status_code == 101:
                        return "a 101 answer"
                    continue
                if kind is h11.EndOfMessage and response is not None:
                    return response
                if kind is h11.ConnectionClosed:
                    return "closed without an answer"
                if kind is h11.Data:
                    continue
                data = await conn.reader.read(65536)
                got = got or bool(data)
                parser.receive_data(data)

        try:
            c.writer.write(head)
            await _within(c.writer.drain(), opts.send_timeout)
            response = await _within(answer(c), opts.read_timeout)
        except (OSError, asyncio.TimeoutError, h11.RemoteProtocolError, ValueError) as e:
            c.close()
            if reused and not got and not isinstance(e, asyncio.TimeoutError):
                # nginx retries a cached connection's error, not its timeout
                # (ngx_http_upstream_next: "u->peer.cached && ft_type == ..._FT_ERROR").
                c = None
                continue
            _log.info("auth-url %s: no valid answer (%s): 500", auth.url, _why(e))
            return FAILED
        if isinstance(response, str):
            c.close()
            if reused and not got:
                c = None  # the auth service had closed it while idle: once more, anew
                continue
            _log.info("auth-url %s: %s: 500", auth.url, response)
            return FAILED
        if reusable(parser):
            pool.put(c)
        else:
            c.close()
        v = verdict(auth, response)
        if keep is not None and v is not FAILED:
            keep(response, v)
        return v
