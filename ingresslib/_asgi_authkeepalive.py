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
import math
import time
import weakref
from collections.abc import Callable
from typing import Any

import h11

from .proxy._authkeepalive import KEEPALIVE_TIME, AuthKeepalive, reusable
from .proxy._server import socket_has_input
from .proxy._response_buffer import BODY_LINE_LIMIT
from .proxy._server_authpool import PRUNE_AT

__all__ = ["AsgiAuthPool", "asgi_pool", "ask_pooled", "close_loop_pools"]


def _unread(transport: Any) -> bool:
    """Whether the socket of ``transport`` holds input the loop has not read yet (bytes, an
    EOF, an error): a poll with no wait, nothing consumed; the core's pool asks the same
    (proxy/_server.py ``_unread_input``, nginx's ``ngx_http_upstream_free_keepalive_peer``:
    ``recv(c->fd, buf, 1, MSG_PEEK)``). Bytes an auth service wrote after its answer (a body
    longer than its Content-Length, a HEAD answer's body written apart) are there before the
    loop's next poll moves them to the stream: a connection taken in between would have the
    next subrequest -- another client's -- read them as its answer. A socket that cannot be
    asked (no descriptor, no ``poll``) counts as clean."""
    return socket_has_input(transport.get_extra_info("socket"))


def _delay(seconds: float) -> float | None:
    """``asyncio.timeout``'s delay for a route's timeout (an infinite one: none)."""
    return None if math.isinf(seconds) else max(seconds, 0.0)


def _after(seconds: float) -> float | None:
    """The loop time ``seconds`` from now (an infinite timeout: None, no deadline)."""
    return None if math.isinf(seconds) else asyncio.get_running_loop().time() + max(seconds, 0.0)


class _Idle:
    """One keep-alive connection to an auth service (IngressASGI's asyncio streams)."""

    __slots__ = ("reader", "writer", "requests", "idle_since", "born")

    def __init__(self, reader: Any, writer: Any) -> None:
        self.reader = reader
        self.writer = writer
        #: Subrequests carried (``auth-keepalive-requests``).
        self.requests = 0
        self.idle_since = 0.0
        #: The pool clock's time of the connect (None: not known, not checked):
        #: ``KEEPALIVE_TIME`` counts from here.
        self.born: float | None = None

    def usable(self) -> bool:
        """Open, and nothing (bytes, an EOF) arrived while idle (nginx's close handler):
        neither in the stream's buffer nor in the socket, not read by the loop yet
        (``_unread``)."""
        t = self.writer.transport
        r = self.reader
        return not (t is None or t.is_closing() or r.at_eof() or r.exception() is not None
                    or len(r._buffer) or _unread(t))

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
        # (nginx's ngx_http_upstream_free_keepalive_peer: "c->requests >=
        # kp->conf->requests", "ngx_current_msec - c->start_time > kp->conf->time": the
        # auth upstream block sets no keepalive_time, its default 1 h applies, as in the
        # core's auth pools, proxy/_server_authpool.py)
        if c.requests >= self.ka.requests or not c.usable() or (
                c.born is not None and self.clock() - c.born > KEEPALIVE_TIME):
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


class _Pools(dict[tuple[Any, ...], AsgiAuthPool]):
    """One loop's auth pools; ``prune_at``: the count at which the empty ones are dropped
    when another is made (twice the count left by the last pruning, at least ``PRUNE_AT``)."""

    prune_at = PRUNE_AT


#: The running event loop -> its auth pools (an asyncio connection belongs to one loop).
_ASGI_POOLS: weakref.WeakKeyDictionary[Any, _Pools] = weakref.WeakKeyDictionary()


def asgi_pool(auth: Any, clock: Callable[[], float] | None = None) -> AsgiAuthPool:
    """The running loop's pool for ``auth`` (an ``ExtAuth`` with ``keepalive``)."""
    ka: AuthKeepalive = auth.keepalive
    loop = asyncio.get_running_loop()
    pools = _ASGI_POOLS.get(loop)
    if pools is None:
        pools = _ASGI_POOLS[loop] = _Pools()
    key = (auth.endpoint, auth.tls, ka.connections, ka.requests, ka.timeout)
    pool = pools.get(key)
    if pool is None:
        if len(pools) >= pools.prune_at:
            # The pools holding no idle connection are dropped (made again when needed), as
            # the core's (proxy/_server_authpool.py ``_prune``): the pools follow the routes
            # as they are, not every configuration ever loaded.
            for k in [k for k, p in pools.items() if not p.idle and p._sweeper is None]:
                del pools[k]
            pools.prune_at = max(PRUNE_AT, 2 * len(pools))
        pool = pools[key] = AsgiAuthPool(ka, clock or time.monotonic)
    return pool


def close_loop_pools() -> int:
    """Close the running loop's idle auth connections (IngressASGI's lifespan shutdown,
    _asgi_lifespan.py; as ProxyServer's shutdown closes its auth pools): the number closed.
    The pools stay (empty, their sweep timers cancelled): a subrequest still under way puts
    its connection back into its pool as before."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return 0
    n = 0
    for pool in (_ASGI_POOLS.get(loop) or {}).values():
        n += len(pool.idle)
        pool.close()
    return n


async def read_answer(parser: Any, read: Callable[[int], Any], max_head: int, *,
                      whole: bool = False, body_read: Callable[[], None] | None = None
                      ) -> h11.Response | str:
    """An auth service's answer read from ``read`` into ``parser`` (an ``_H11Reader``): its
    final head (``whole``: once its body is read to its end, the connection to be reused,
    ``body_read`` called before each read of that body), or why there is none. IngressASGI's
    one reader, with keep-alive (``ask_pooled``) and without (``_asgi_extauth``).

    As the core's ``_pump`` (proxy/_extauth.py): each head within the parser's limit (the
    location's proxy-buffer-size, nginx.tmpl's auth location), every head byte up to the final
    answer's end within max_response_header_size (or that limit, the larger), a head that
    arrived whole too (the reader refuses only an incomplete one); nginx's "upstream sent too big header" fails the subrequest: 500.
    nginx takes a 101 as the subrequest's final status ("auth request unexpected status",
    500; no wait for another answer)."""
    eof = False
    spent = 0  # the head bytes read, 1xx heads included
    response: h11.Response | None = None
    while True:
        before = len(parser._buf._data)
        event = parser.next_event()
        kind = type(event)
        if kind is h11.Response or kind is h11.InformationalResponse:
            # Each head within the parser's limit (the location's proxy-buffer-size), all of
            # them together within max_head (max_response_header_size) or that, the larger.
            n = before - len(parser._buf._data)
            spent += n
            limit = parser._max
            if spent > limit and (n > limit or spent > max_head):
                return "a head over proxy-buffer-size"
            if kind is h11.Response and limit < BODY_LINE_LIMIT:
                parser._max = BODY_LINE_LIMIT  # (the body's chunk lines are no head)
        if kind is h11.Response:
            if not whole:
                return event  # type: ignore[no-any-return]
            response = event
            continue
        if kind is h11.InformationalResponse:
            if event.status_code == 101:
                return "a 101 answer"
            continue
        if kind is h11.EndOfMessage and response is not None:
            return response
        if kind is h11.Data:
            continue
        if kind is h11.ConnectionClosed or eof:
            return "closed without an answer"
        if response is not None and body_read is not None:
            body_read()
        data = await read(65536)
        eof = not data
        parser.receive_data(data)


async def ask_pooled(auth: Any, head: bytes, opts: Any, max_head: int,
                     keep: Callable[[h11.Response, Any], None] | None = None) -> Any:
    """IngressASGI's ``ask_auth_service`` with ``auth-keepalive``: the subrequest on an idle
    connection of the pool (or a new one), its answer read to its end, the connection put
    back when it can be reused; a pooled connection that ends before any byte of the answer
    carries it once more on a new connection. The verdict, or ``FAILED`` (500)."""
    from ._asgi_extauth import _connect, _log, _why, _within  # (it imports this module)
    from .proxy._extauth import FAILED, verdict
    from .proxy._h11_reader import _H11Reader

    pool = asgi_pool(auth)
    c = pool.take()
    while True:
        reused = c is not None
        if c is None:
            conn = await _connect(auth, opts)
            if conn is None:
                return FAILED
            c = _Idle(*conn)
            c.born = pool.clock()
        c.requests += 1
        parser = _H11Reader(True, opts.proxy_buffer_size)  # (read_answer)
        parser.method = auth.method or b"GET"
        got = False

        async def answer(conn: _Idle) -> h11.Response | str:
            """The final answer's head once its body is read, or why there is none: the
            head within proxy-read-timeout of the subrequest sent, then at most that between
            two reads of its body (as the core's auth_data, proxy/_extauth.py)."""
            async def read(n: int) -> bytes:
                nonlocal got
                data: bytes = await conn.reader.read(n)
                got = got or bool(data)
                return data

            async with asyncio.timeout(_delay(opts.read_timeout)) as deadline:
                return await read_answer(
                    parser, read, max_head, whole=True,
                    body_read=lambda: deadline.reschedule(_after(opts.read_timeout)))

        try:
            c.writer.write(head)
            await _within(c.writer.drain(), opts.send_timeout)
            response = await answer(c)
        except (OSError, asyncio.TimeoutError, h11.RemoteProtocolError, ValueError) as e:
            c.close()
            if reused and not got and not isinstance(e, asyncio.TimeoutError):
                # nginx retries a cached connection's error, not its timeout
                # (ngx_http_upstream_next: "u->peer.cached && ft_type == ..._FT_ERROR").
                c = None
                continue
            _log.info("auth-url %s: no valid answer (%s): 500", auth.url, _why(e))
            return FAILED
        except BaseException:
            # Cancelled (the client went away, the server's shutdown) or any other error
            # mid-subrequest: the answer is half read, so the connection is closed, neither
            # left open nor put back (as the core's auth_drop: CloseUpstream, no reuse).
            c.close()
            raise
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
