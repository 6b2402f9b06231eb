"""The asyncio server: a thin loop around the sans-IO core.

Each accepted connection gets a :class:`ClientConnection` from the core; bytes and events go in,
actions come out and are performed here in order. Nothing in this module interprets HTTP.

Written with ``asyncio.Protocol`` rather than streams: a proxied request is a handful of
callbacks with no task switch, no ``StreamReader`` buffer copy and no ``drain()`` round trip
(uvicorn's reason for the same choice). Upstream connections are kept in a per-endpoint idle pool
(ingress-nginx ``upstream-keepalive-*``); only new upstream connects create a task.

Back-pressure, both ways: while an upstream's write buffer is full the client is not read
(``proxy_send_timeout`` bounds that stall; the upstream's fault, and its ``proxy_read_timeout``
has not begun: ``_request_untaken``), and while the client's is full
(it does not take our response) the upstreams are not read. That second stall is the client's:
the core's ``UPSTREAM_READ`` timer does not run out meanwhile (we are the ones not reading), and
nginx's ``send_timeout`` (:data:`_SEND_TIMEOUT`) bounds it instead: no progress for that long and
the client connection is cut, with no failure observed on the upstream and no retry. A client
not read for either reason is still watched for its FIN or reset (:class:`_HupWatch`, nginx's
EPOLLRDHUP check), so that leaving aborts the upstream request at once (499, or 400 while
request body bytes were still owed).
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import collections
import ipaddress
import logging
import re
import select
import socket
import ssl
import sys
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from .._iptext import host_port
from .._serve_limits import out_of_fds, pace_accepts
from ._actions import (
    Action,
    CloseDownstream,
    CloseUpstream,
    Mirror,
    Offload,
    OpenUpstream,
    RequestDone,
    RequestRecord,
    SendDownstream,
    SendUpstream,
    SetTimer,
    TimerKind,
    TunnelEstablished,
)
from ._server_authpool import auth_adopt, auth_take, close_auth_pools
from ._client_hello import ClientHelloReader
from ._proxy_protocol import accepting, admitted
from ._passthrough import CLOSE as _PASSTHROUGH_CLOSE
from ._passthrough import PassthroughRoutes
from ._proxy_ssl import NGINX_DEFAULT, UpstreamTLS, peer_problem, server_hostname
from ._response_buffer import ahead_fits, ahead_release
from .._upstream_tls import client_context
from ._settings import ProxySettings

__all__ = ["ProxyServer", "UpstreamPool", "parse_listen"]

_log = logging.getLogger("ingresslib.server")

#: nginx ``lingering_time 30s`` and ``lingering_timeout 5s``: how long a closed client connection
#: may go on reading and dropping a request body, in all and without a byte.
_LINGER_TIME = 30.0
_LINGER_TIMEOUT = 5.0

#: nginx ``send_timeout 60s``: "Sets a timeout for transmitting a response to the client. The
#: timeout is set only between two successive write operations, not for the transmission of the
#: whole response. If the client does not receive anything within this time, the connection is
#: closed." ingress-nginx has no ConfigMap key for it (so no ``ProxySettings`` field): nginx's
#: default, read when a stall starts (tests patch it). 0 disables it.
_SEND_TIMEOUT = 60.0

#: Client bytes are handed to the core in slices this size when a read is larger, and for
#: at most ``_FEED_BUDGET`` seconds of loop time per loop iteration; the rest waits for the
#: next iteration (``_Downstream._feed_pending``) and the client is not read meanwhile. The
#: core's work per byte is not bounded by the byte count: a chunked body of 1-byte chunks is
#: one h11 event (microseconds in h11's Python reader) per 6 bytes, pipelined requests
#: answered locally cost an answer each. One read is up to 256 KiB (asyncio's ``max_size``):
#: handed over whole, one connection held the event loop, and every other connection, for
#: most of a second per read (tests/test_server_limits.py::
#: test_a_body_of_tiny_chunks_does_not_starve_other_connections). Reads of this size or
#: smaller (almost every request head), the bytes of a tunnel, and bytes that are all
#: Content-Length body (``ClientConnection.plain_body``: the core's work is a copy) go in
#: whole, as before.
_FEED_SLICE = 4096
_FEED_BUDGET = 0.002

#: How often ``ProxyServer.shutdown`` looks whether closed connections are done sending.
_FLUSH_POLL = 0.01


#: ``HOST:PORT``, ``[IPV6]:PORT``, ``:PORT``, ``PORT``, ``HOST`` or ``[IPV6]`` (the default port):
#: nginx's ``listen`` forms ("listen 127.0.0.1:8000; listen 8000; listen localhost; listen
#: [::]:8000;", ngx_http_core_module). ASCII digits only: Python's int() would also take a sign,
#: spaces and any Unicode digit.
_LISTEN = re.compile(r"(?:\[(?P<v6>[^\[\]\s]+)\]|(?P<host>[^\[\]\s:]*))(?::(?P<port>[0-9]+))?",
                     re.ASCII)


def parse_listen(value: str, default_port: int = 8080) -> tuple[str, int]:
    """``"127.0.0.1:8080"``, ``"[::1]:0"``, ``":8080"``, ``"8080"`` -> ``(host, port)``;
    ``ValueError`` saying what is wrong.

    Strict on purpose: a typo must be an error, not a listener somewhere unexpected
    (``"[::1]x"`` is not port 8080, ``"[]:80"`` not every interface, ``"127.0.0.1:80:90"``
    not a host name, ``" 80"``/``"+80"`` not port 80).

    >>> parse_listen("[::1]:0"), parse_listen(":80"), parse_listen("localhost")
    (('::1', 0), ('0.0.0.0', 80), ('localhost', 8080))
    """
    if not value:
        raise ValueError(f"empty; expected {_LISTEN_FORMS}")
    if value.isascii() and value.isdigit():
        value = ":" + value
    m = _LISTEN.fullmatch(value)
    if m is None:
        raise ValueError(_listen_problem(value))
    host = m.group("v6")
    if host is not None:
        try:
            ipaddress.IPv6Address(host.partition("%")[0])
        except ValueError:
            raise ValueError(f"{host!r} in brackets is not an IPv6 address") from None
    else:
        host = m.group("host") or "0.0.0.0"
    port_text = m.group("port")
    port = int(port_text) if port_text is not None else default_port
    if port > 65535:
        raise ValueError(f"port {port} out of range (0-65535)")
    return host, port


_LISTEN_FORMS = "HOST:PORT, [IPV6]:PORT, :PORT, PORT or HOST"


def _listen_problem(value: str) -> str:
    """What is wrong with ``value``, which ``_LISTEN`` refused: the message names the part at
    fault (a bare "not HOST:PORT" left the user to find it)."""
    if re.search(r"\s", value, re.ASCII):
        return "contains whitespace"
    if value.startswith("["):
        close = value.find("]")
        if close < 0:
            return "'[' without a closing ']'"
        if close == 1:
            return "no IPv6 address between the brackets (all interfaces: [::]:PORT or :PORT)"
        rest = value[close + 1:]
        if not rest.startswith(":"):
            return f"{rest!r} after ']' (expected :PORT or nothing)"
        if "[" not in value[1:close] and "]" not in rest:
            return _port_problem(rest[1:])
    if "[" in value or "]" in value:
        return "brackets go only around an IPv6 address at the start: [::1]:8080"
    if value.count(":") > 1:
        return "more than one ':' (an IPv6 address needs brackets: [::1]:8080)"
    return _port_problem(value.partition(":")[2])


def _port_problem(text: str) -> str:
    if not text:
        return "no port after ':'"
    if not (text.isascii() and text.isdigit()):
        return f"port {text!r} is not a number (0-65535)"
    return f"expected {_LISTEN_FORMS}"  # not reached: digits are a port _LISTEN takes


# --- upstream side -----------------------------------------------------------------------------


class _Upstream(asyncio.Protocol):
    """One upstream TCP connection; owned by a client connection or idle in the pool."""

    __slots__ = ("transport", "owner", "conn_id", "key", "requests", "idle_since", "closed", "pool",
                 "got_data", "send_timeout", "stall_mark", "born", "sock")

    def __init__(self, pool: UpstreamPool, endpoint: tuple[str, int], tls: bool = False,
                 tls_config: UpstreamTLS | None = None) -> None:
        self.pool = pool
        #: The pool's key: the endpoint, whether the connection speaks TLS, and with which
        #: proxy-ssl-* (``OpenUpstream.tls_config``: a connection verified for one name or
        #: CA is never handed to a route asking for another).
        self.key = (endpoint, tls, tls_config)
        self.transport: asyncio.Transport | None = None
        #: The transport's socket (``get_extra_info("socket")``), asked once, at connect.
        self.sock: Any = None
        self.owner: _Downstream | None = None
        self.conn_id = 0
        self.requests = 0
        self.idle_since = 0.0
        self.closed = False
        #: Any byte received since the current owner took this connection.
        self.got_data = False
        #: The current request's proxy_send_timeout: the longest this connection may refuse
        #: our writes (its buffer full) before the try fails as timed out.
        self.send_timeout = 0.0
        #: Bytes in the write buffer when the owner's proxy_send_timeout was (re)armed, plus
        #: those written since: less than this at its expiry means the upstream took some
        #: (progress: the timeout starts again, as ``_Downstream.send_mark`` does for a client).
        self.stall_mark = 0
        #: Loop time of the connect (nginx ``c->start_time``): ``upstream_keepalive_time``
        #: counts from here.
        self.born = pool._loop.time()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.born = self.pool._loop.time()
        sock = self.sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:  # pragma: no cover - not TCP
                pass

    def data_received(self, data: bytes) -> None:
        owner = self.owner
        if owner is not None:
            self.got_data = True
            owner.upstream_data(self.conn_id, data)
        else:
            # An idle pooled connection must stay silent; bytes here would be answered to the
            # wrong client, so the connection is unusable.
            self.close()

    def eof_received(self) -> bool:
        self._gone()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        # ``exc``: the connection failed (a reset, ECONNRESET), not an orderly FIN (which
        # eof_received saw first): a response delimited by the close is then cut, not ended.
        self._gone(failed=exc is not None)

    def pause_writing(self) -> None:
        # The upstream reads slower than the client sends (a large upload): stop reading the
        # client until the upstream's buffer drains.
        if self.owner is not None:
            self.owner.pause_client(self)

    def resume_writing(self) -> None:
        if self.owner is not None:
            self.owner.resume_client()

    def _gone(self, failed: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        owner = self.owner
        if owner is not None:
            self.owner = None
            owner.upstream_eof(self.conn_id, self.got_data, failed)
        else:
            self.pool.discard(self)
        if self.transport is not None:
            self.transport.close()

    def close(self) -> None:
        self.owner = None
        if not self.closed:
            self.closed = True
            self.pool.discard(self)
            if self.transport is not None:
                self.transport.close()


def _write_buffered(up: _Upstream) -> int:
    """Bytes written to ``up`` that its transport has not handed to the socket yet."""
    t = up.transport
    return t.get_write_buffer_size() if t is not None else 0


def _unread_input(up: _Upstream) -> bool:
    """Whether an idle pooled connection's socket holds input the loop has not read yet (bytes,
    an EOF, or an error): a poll with no wait on its descriptor, nothing consumed. A
    connection whose socket cannot be asked (no descriptor) counts as clean, as before."""
    return socket_has_input(up.sock)  # (the transport's, kept at connect)


def socket_has_input(sock: Any) -> bool:
    """Whether ``sock`` holds input its event loop has not read yet (bytes, an EOF, an error):
    a poll with no wait, nothing consumed (nginx's ``ngx_http_upstream_free_keepalive_peer``:
    ``recv(c->fd, buf, 1, MSG_PEEK)``). No socket, or no ``poll`` (Windows): False; one that
    cannot be asked any more (closed descriptor, an error): True. Also IngressASGI's auth
    keep-alive pool (_asgi_authkeepalive.py)."""
    if sock is None or not hasattr(select, "poll"):  # (no poll(): Windows)
        return False
    try:
        fd = sock.fileno()
        if fd < 0:
            return True
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLPRI)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


class UpstreamPool:
    """Idle keep-alive connections (ingress-nginx ``upstream-keepalive-*``), taken per endpoint.

    LIFO per endpoint: the most recently used connection is the least likely to have been closed
    by the upstream's own idle timeout. ``upstream_keepalive_connections`` bounds the idle
    connections of all endpoints together, as in ingress-nginx: one upstream block serves every
    backend (nginx.tmpl: "upstream upstream_balancer { ... keepalive {{
    $cfg.UpstreamKeepaliveConnections }};"), and nginx's ``keepalive`` is "the maximum number
    of idle keepalive connections to upstream servers that are preserved in the cache of each
    worker process. When this number is exceeded, the least recently used connections are
    closed." (Per endpoint, idle sockets would grow with the number of endpoints.)
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, settings: ProxySettings) -> None:
        self._loop = loop
        self.settings = settings
        self._idle: dict[tuple[tuple[str, int], bool, UpstreamTLS | None],
                         collections.deque[_Upstream]] = {}
        #: Every idle connection, least recently put first (dict order): what goes first when
        #: the pool is full.
        self._lru: dict[_Upstream, None] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self.upstream_ssl: ssl.SSLContext | None = None
        #: One SSLContext per distinct proxy-ssl-* configuration (``tls_context``).
        self.tls_contexts: dict[UpstreamTLS, ssl.SSLContext] = {}
        #: Those OpenSSL refused (each warned about once).
        self.tls_refused: set[UpstreamTLS] = set()
        #: Endpoint names refused because they resolve only to this host (``_connect_name``),
        #: so that each is warned about once.
        self.refused_names: set[str] = set()

    def tls_context(self, tls: UpstreamTLS) -> ssl.SSLContext:
        """The SSLContext of a proxy-ssl-* configuration, made once (proxy/_proxy_ssl.py);
        at most ``_TLS_CONTEXTS_MAX`` kept (a Secret's edits make new ones)."""
        ctx = self.tls_contexts.get(tls)
        if ctx is None:
            if len(self.tls_contexts) >= _TLS_CONTEXTS_MAX:
                self.tls_contexts.clear()
            ctx = self.tls_contexts[tls] = client_context(tls)
        return ctx

    def take(self, endpoint: tuple[str, int], tls: bool = False,
             tls_config: UpstreamTLS | None = None) -> _Upstream | None:
        q = self._idle.get((endpoint, tls, tls_config))
        if not q:
            return None
        now = self._loop.time()
        limit = now - self.settings.upstream_keepalive_timeout
        too_old = now - self.settings.upstream_keepalive_time
        while q:
            up = q.pop()
            self._lru.pop(up, None)
            if up.closed or up.transport is None or up.transport.is_closing():
                continue
            # Idle too long (keepalive_timeout), or past keepalive_time while idle: nginx
            # checks the latter only when a connection is released (``put``), so it would
            # still carry one more request; "Limits the maximum time during which requests
            # can be processed through one keepalive connection" is kept here too.
            if up.idle_since < limit or up.born < too_old:
                up.close()
                continue
            if _unread_input(up):
                # Bytes (or an EOF) the upstream sent after its last response are already in
                # the socket but not read yet: the loop reads them on its next poll, and
                # ``data_received`` would close an idle connection then. Taken before that,
                # in this loop iteration (another client's request handled first), they
                # would be read as the start of the next owner's response: a response, or
                # part of one, delivered to a client other than the one whose request
                # caused it (a HEAD or 204 answered with a body written apart, a
                # response longer than its Content-Length). nginx makes the same check
                # when it caches a connection (ngx_http_upstream_free_keepalive_peer: "if
                # (c->read->ready) { ngx_http_upstream_keepalive_close_handler(c->read); }"),
                # whose close handler keeps it only if nothing is there to read:
                # "n = recv(c->fd, buf, 1, MSG_PEEK); if (n == -1 && ngx_socket_errno ==
                # NGX_EAGAIN) { ... return; }" and otherwise closes it. We ask when taking,
                # which also covers what arrived while it was idle and not read yet.
                up.close()
                continue
            return up
        return None

    def put(self, up: _Upstream) -> None:
        s = self.settings
        up.owner = None
        t = up.transport
        if t is not None and not t.is_closing() and not t.is_reading():
            # Paused for a slow client's sake; the next owner must be able to read it.
            t.resume_reading()
        # ngx_http_upstream_free_keepalive_peer (ngx_http_upstream_keepalive_module.c), the
        # rules that decide whether a released connection is kept:
        # "if (c->requests >= kp->conf->requests) { goto invalid; }" (keepalive_requests;
        # 0 keeps none) and "if (ngx_current_msec - c->start_time > kp->conf->time) { goto
        # invalid; }" (keepalive_time, from the connect: closed after the request that
        # crossed it).
        now = self._loop.time()
        if (up.closed or t is None or t.is_closing()
                or s.upstream_keepalive_connections <= 0
                or up.requests >= s.upstream_keepalive_requests
                or now - up.born > s.upstream_keepalive_time):
            up.close()
            return
        lru = self._lru
        while len(lru) >= s.upstream_keepalive_connections:
            oldest = next(iter(lru))
            del lru[oldest]
            oldest.close()  # -> discard(): out of its endpoint's queue too
            self.discard(oldest)  # (even if it was already marked closed)
        q = self._idle.get(up.key)
        if q is None:
            q = self._idle[up.key] = collections.deque()
        up.idle_since = now
        q.append(up)
        lru[up] = None
        if self._sweeper is None:
            self._sweeper = self._loop.call_at(
                up.idle_since + s.upstream_keepalive_timeout, self._sweep)

    def discard(self, up: _Upstream) -> None:
        self._lru.pop(up, None)
        q = self._idle.get(up.key)
        if q is not None:
            try:
                q.remove(up)
            except ValueError:
                pass
            if not q:
                del self._idle[up.key]

    def _sweep(self) -> None:
        """Close the connections idle for ``upstream_keepalive_timeout``, then sleep until the
        next one is due: nginx's keepalive_timeout is a timer per idle connection, so an idle
        socket is held that long, not up to a sweep period more. ``_lru`` is in ``put``
        order, which is ``idle_since`` order: the first one is always the next due."""
        self._sweeper = None
        timeout = self.settings.upstream_keepalive_timeout
        limit = self._loop.time() - timeout
        lru = self._lru
        while lru:
            up = next(iter(lru))
            if up.idle_since > limit:
                self._sweeper = self._loop.call_at(up.idle_since + timeout, self._sweep)
                return
            del lru[up]
            up.close()
            self.discard(up)

    def idle_count(self, endpoint: tuple[str, int] | None = None, tls: bool = False,
                   tls_config: UpstreamTLS | None = None) -> int:
        if endpoint is not None:
            n = len(self._idle.get((endpoint, tls, tls_config), ()))
            if tls and tls_config is None:
                # A route's TLS without proxy-ssl-* (nginx's defaults, proxy/_proxy_ssl.py
                # NGINX_DEFAULT) counts as TLS without a configuration, as it used to.
                n += len(self._idle.get((endpoint, tls, NGINX_DEFAULT), ()))
            return n
        return len(self._lru)

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for q in list(self._idle.values()):
            for up in list(q):
                up.close()
        self._idle.clear()
        self._lru.clear()


# --- client liveness while not reading it ------------------------------------------------------


class _HupWatch:
    """Tells a paused client connection that its peer closed (FIN) or reset it.

    nginx (``proxy_ignore_client_abort off``, its default) keeps an eye on the client while the
    upstream works: ngx_http_upstream_check_broken_connection runs on the client's read events,
    and with EPOLLRDHUP it needs no read at all: "if (!ev->pending_eof) { return; } ev->eof =
    1; ... "client prematurely closed connection, so upstream connection is closed too";
    ngx_http_upstream_finalize_request(r, u, NGX_HTTP_CLIENT_CLOSED_REQUEST);" (499).

    asyncio has no such event: ``pause_reading`` takes the socket out of the loop's selector,
    so while we do not read a client (back-pressure: an upstream slow to take the body, a
    client that does not take our response, bytes the core holds), its FIN or reset was seen
    only once reading resumed, and the upstream request ran on until proxy_send_timeout or
    send_timeout. Adding the socket back with ``loop.add_reader`` is refused (asyncio: "File
    descriptor ... is used by transport"), and a level-triggered read watch would fire
    without end on the very bytes we are not reading; peeking (MSG_PEEK) cannot see a FIN
    behind unread bytes either. So, as nginx does: a second epoll instance of our own,
    watching only EPOLLRDHUP (EPOLLHUP and EPOLLERR always come) on the sockets of paused
    clients, its own descriptor watched by the loop with ``add_reader`` (public API, any
    selector loop or uvloop). Linux only (``select.epoll``); elsewhere, or on a loop without
    ``add_reader``, nothing is watched and the close is seen when reading resumes, as before.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        if sys.platform != "linux":  # pragma: no cover - EPOLLRDHUP is Linux's
            raise NotImplementedError
        self._loop = loop
        self._ep = select.epoll()
        self._mask = select.EPOLLRDHUP
        self._by_fd: dict[int, _Downstream] = {}
        try:
            loop.add_reader(self._ep.fileno(), self._ready)
        except BaseException:
            self._ep.close()
            raise

    def watch(self, down: _Downstream, fd: int) -> bool:
        if sys.platform != "linux":  # pragma: no cover
            return False
        try:
            self._ep.register(fd, self._mask)
        except FileExistsError:  # this socket is registered already (not expected)
            self._ep.modify(fd, self._mask)
        except (OSError, ValueError):  # closed meanwhile
            return False
        self._by_fd[fd] = down
        return True

    def unwatch(self, down: _Downstream, fd: int) -> None:
        if self._by_fd.get(fd) is down:
            del self._by_fd[fd]
            if sys.platform == "linux":
                try:
                    self._ep.unregister(fd)
                except (OSError, ValueError):  # already gone with its socket
                    pass

    def _ready(self) -> None:
        if sys.platform != "linux":  # pragma: no cover
            return
        for fd, _events in self._ep.poll(0):
            down = self._by_fd.pop(fd, None)
            try:
                self._ep.unregister(fd)  # level-triggered: once is enough
            except (OSError, ValueError):
                pass
            if down is not None:
                down.client_hup()

    def close(self) -> None:
        self._by_fd.clear()
        self._loop.remove_reader(self._ep.fileno())
        self._ep.close()


# --- downstream side ---------------------------------------------------------------------------


class _Downstream(asyncio.Protocol):
    """One client connection: feeds the core and performs its actions."""

    __slots__ = ("server", "tls", "to_https", "transport", "conn", "upstreams", "timer",
                 "timer_kind", "timer_seconds", "deadline", "_queue", "_running", "_loop",
                 "closed", "client_paused", "upstream_full", "stall", "linger_until",
                 "last_read", "client_full", "send_stall", "send_mark", "tunnel", "accepted",
                 "connecting", "pending", "feed_handle", "eof_pending", "fd", "hup_watched",
                 "hup_seen", "proxied", "rate_paused", "retired", "ahead", "sni", "held")

    def __init__(self, server: ProxyServer, tls: bool) -> None:
        self.server = server
        self.tls = tls
        #: A plain-HTTP client on the TLS listener (``tls`` is then False: the socket has no
        #: TLS layer): admitted at accept as a TLS connection is, its requests answered by
        #: ``_TO_HTTPS``.
        self.to_https = False
        self._loop = server.loop
        self.transport: asyncio.Transport | None = None
        self.conn: Any = None
        self.upstreams: dict[int, _Upstream] = {}
        self.timer: asyncio.TimerHandle | None = None
        self.timer_kind = TimerKind.IDLE
        self.timer_seconds = 0.0
        self.deadline: float | None = None
        self._queue: collections.deque[Action] = collections.deque()
        self._running = False
        self.closed = False
        #: Reading from the client is paused by us, for any reason of ``_sync_reading``: an
        #: upstream's write buffer is full (``upstream_full``), the core holds as many of the
        #: client's bytes as it will before an upstream can take them
        #: (``conn.reading_wanted`` False), the client's own write buffer is full
        #: (``client_full``, outside a tunnel), or bytes already read wait (``pending``).
        self.client_paused = False
        #: An upstream's write buffer is full (asyncio ``pause_writing``).
        self.upstream_full = False
        #: While paused so: the upstream's proxy_send_timeout running (nginx: "if the proxied
        #: server does not receive anything within this time, the connection is closed").
        self.stall: asyncio.TimerHandle | None = None
        #: Lingering (after ``CloseDownstream(linger=True)``): closed for the core, our side
        #: ended, the client's bytes read and dropped until this time or a quiet spell.
        self.linger_until: float | None = None
        self.last_read = 0.0
        #: The client's write buffer is full (asyncio ``pause_writing``): it does not take our
        #: response, and the upstreams are not read meanwhile.
        self.client_full = False
        #: proxy-buffering (proxy/_response_buffer.py): the client's write buffer is full, yet
        #: the upstreams are still read, while it holds no more than ``conn.response_buffer``
        #: bytes (the response is read ahead of the client, its upstream connection released
        #: once it is read whole).
        self.ahead = False
        #: proxy-buffering: the bytes this connection counts in the server's read-ahead
        #: budget (``ProxyServer.ahead_held``, proxy/_response_buffer.py ``ahead_fits``).
        self.held = 0
        #: While so: nginx's send_timeout running (:meth:`_send_timed_out`); it outlives
        #: ``_close`` (a close flushes first, and a client that never reads would hold it).
        self.send_stall: asyncio.TimerHandle | None = None
        #: Bytes in the transport's write buffer when the send timer was (re)armed, plus those
        #: written since: less than this at expiry means the client took some (progress).
        self.send_mark = 0
        #: After ``TunnelEstablished``: the two directions are independent from then on.
        self.tunnel = False
        #: Loop time at accept (the protocol is made then; a TLS one's ``connection_made``
        #: only comes after the handshake): the head deadline counts from here.
        self.accepted = self._loop.time()
        #: Upstream connects under way, by conn_id: cancelled when the core closes that
        #: conn_id (or the connection) before they complete.
        self.connecting: dict[int, asyncio.Task[None]] = {}
        #: Bytes read from the client and not yet handed to the core (``_FEED_SLICE``); the
        #: client is not read while there are any.
        self.pending = b""
        self.feed_handle: asyncio.Handle | None = None
        #: The client's EOF came while ``pending`` was not empty: it goes to the core after
        #: them.
        self.eof_pending = False
        #: The client socket's descriptor (-1: unknown), and whether :class:`_HupWatch`
        #: watches it (only while reading is paused).
        self.fd = -1
        self.hup_watched = False
        #: The watch reported the client gone: never watched again (level-triggered).
        self.hup_seen = False
        #: limit-rate: the upstreams are not read while the core holds enough response bytes
        #: (``conn.upstream_reading_wanted`` False; :meth:`_sync_rate_pause`).
        self.rate_paused = False
        #: Closed once idle (:meth:`retire`): the server is shutting down, or its settings
        #: changed (a reload's old worker, which closes its keep-alive connections).
        self.retired = False
        #: ``use-proxy-protocol``: the PROXY protocol header's ``(source, destination)``, which
        #: stand for the peer and the local address (``_proxy_protocol._Accept``); else None.
        self.proxied: tuple[tuple[str, int], tuple[str, int]] | None = None
        #: The ClientHello's server name (``_TLSAccept``; nginx ``$ssl_server_name``), else None.
        self.sni: bytes | None = None

    # asyncio callbacks -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        srv = self.server
        if self.tls or self.to_https:
            # Admitted at accept, before its handshake (``_TLSAccept``), and counted since.
            srv.handshaking.pop(self, None)
            if srv.draining:
                self.closed = True
                transport.abort()
                return
        # Lingering connections hold sockets too (nginx counts them in worker_connections).
        elif srv.draining or srv.sockets_held() >= srv.max_connections:
            # Over the limit (or shutting down): refuse by closing at once, as nginx does when
            # worker_connections is exhausted.
            self.closed = True
            transport.abort()
            srv.refused += 1
            return
        srv.connections.add(self)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            self.fd = sock.fileno()
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:  # pragma: no cover - not TCP
                pass
        peer = transport.get_extra_info("peername")
        local = transport.get_extra_info("sockname")
        balancer = None
        if self.proxied is not None:
            balancer = peer  # (the PROXY header's sender: $realip_remote_addr)
            peer, local = self.proxied
        now = self._loop.time()
        client_cert = tls_info = None
        if self.tls:
            from .._tls import client_cert_of  # (auth-tls-*: what the handshake verified)
            ssl_object = transport.get_extra_info("ssl_object")
            client_cert = client_cert_of(ssl_object)
            if ssl_object is not None:  # ($ssl_protocol, $ssl_cipher: OpenSSL's names)
                cipher = ssl_object.cipher()
                tls_info = (ssl_object.version(), cipher[0] if cipher else None,
                            None if self.sni is None else self.sni.decode("latin-1"))
        self.conn = srv.proxy.connection(
            (peer[0], peer[1]) if peer else None, tls=self.tls,
            local_port=local[1] if local else None, now=now,
            refuse_requests=_TO_HTTPS if self.to_https else None, offload=True, throttle=True,
            client_cert=client_cert,
            proxy_protocol_port=local[1] if self.proxied is not None else None)
        if tls_info is not None:
            self.conn.tls_info = tls_info
        if balancer:
            self.conn.realip_addr = balancer[0]
        actions = self.conn.start(now)
        spent = now - self.accepted
        if (self.tls or self.to_https) and spent > 0:
            # TLS: connection_made comes after the handshake. nginx arms client_header_timeout
            # at accept (ngx_http_init_connection: "ngx_add_timer(rev,
            # cscf->client_header_timeout)") and the handshake and the first request head add
            # it only "if (!rev->timer_set)": one deadline from accept for both. The
            # handshake timeout (``_TLSAccept``) bounds a handshake that never ends; what it
            # took is taken off the head timer here.
            actions = [replace(a, seconds=max(a.seconds - spent, 0.001))
                       if type(a) is SetTimer and a.kind is TimerKind.HEAD and a.seconds
                       else a for a in actions]
        self._run(actions)

    def data_received(self, data: bytes) -> None:
        if not self.closed:
            try:
                if self.pending:  # (not expected: reading is paused meanwhile)
                    self.pending += data
                elif len(data) <= _FEED_SLICE or self.tunnel or self.conn.plain_body(len(data)):
                    self._run(self.conn.receive_data(data, self._loop.time()))
                else:
                    self.pending = data
                    self._feed_pending()
            except Exception:
                self._crashed("reading the client")
        elif self.linger_until is not None:
            self.last_read = self._loop.time()  # dropped: the response is already written

    def eof_received(self) -> bool:
        if self.linger_until is not None:
            self._stop_lingering()
            return False
        if not self.closed:
            if self.pending:
                self.eof_pending = True
                return True
            try:
                self._run(self.conn.receive_eof(self._loop.time()))
            except Exception:
                self._crashed("the client's EOF")
        # Keep the write side open: the core closes once the response is written.
        return not self.closed

    def _feed_pending(self) -> None:
        try:
            self._feed_pending_now()
        except Exception:
            self._crashed("reading the client")

    def _feed_pending_now(self) -> None:
        """Hand ``pending`` to the core in slices of ``_FEED_SLICE`` (all at once when it is
        all plain body bytes, ``plain_body``) until ``_FEED_BUDGET`` of loop time is spent,
        then go on in the next loop iteration, so that other connections run in between (the
        client is not read meanwhile). Not while the client does not read our answers
        (``client_full``, see ``_sync_reading``; then ``resume_writing`` goes on)."""
        self.feed_handle = None
        loop = self._loop
        start = loop.time()
        while self.pending and self._feeding_allowed():
            data = self.pending
            # Not pending while a slice is in: reading is paused only if the rest has to
            # wait for the next loop iteration.
            self.pending = b""
            n = len(data) if self.conn.plain_body(len(data)) else _FEED_SLICE
            self._run(self.conn.receive_data(data[:n] if n < len(data) else data, loop.time()))
            if n >= len(data) or self.closed:
                break
            self.pending = data[n:]
            if self._feeding_allowed() and loop.time() - start >= _FEED_BUDGET:
                self.feed_handle = loop.call_soon(self._feed_pending)
                self._sync_reading()
                return
        if self.closed:
            self.pending = b""
        elif not self.pending:
            self._sync_reading()
            if self.eof_pending:
                self.eof_pending = False
                self._run(self.conn.receive_eof(loop.time()))
        else:
            self._sync_reading()  # held back (client_full): not read meanwhile

    def _feeding_allowed(self) -> bool:
        return not self.closed and (not self.client_full or self.tunnel)

    def connection_lost(self, exc: Exception | None) -> None:
        try:
            if self.pending and not self.closed:
                # Read before the connection went: the core sees them first, as it would have.
                data, self.pending = self.pending, b""
                self._run(self.conn.receive_data(data, self._loop.time()))
            if not self.closed:
                self._run(self.conn.receive_eof(self._loop.time()))
                if not self.closed:
                    self._run(self.conn.abort(self._loop.time()))
        except Exception:
            _log.exception("client connection: the core failed on its close")
        finally:
            # Whatever the core did: the socket is gone, and it must leave ``connections``
            # (max_connections, shutdown's drain) with its upstreams closed.
            self._teardown()

    def pause_writing(self) -> None:
        # The client takes our response slower than the upstream sends it: stop reading the
        # upstreams until it drains (nginx without proxy buffering does the same).
        self.client_full = True
        if self.conn is not None and self.conn.response_buffer and not self.tunnel:
            self.ahead = True  # proxy-buffering: read on, up to conn.response_buffer
            self._check_ahead()
        else:
            self._pause_upstreams()
        # Nor the client itself (see ``_sync_reading``): what it sends next would only add
        # answers to the buffer it does not drain.
        self._sync_reading()
        if self.send_stall is None and _SEND_TIMEOUT > 0 and self.transport is not None:
            self.send_mark = self.transport.get_write_buffer_size()
            self.send_stall = self._loop.call_later(_SEND_TIMEOUT, self._send_timed_out)

    def _pause_upstreams(self) -> None:
        for up in self.upstreams.values():
            if up.transport is not None:
                up.transport.pause_reading()

    def _give_back_ahead(self) -> None:
        """proxy-buffering: this connection's share of the server's read-ahead budget
        (``held``) is given back: its write buffer drained, was dropped, or is gone."""
        if self.held:
            ahead_release(self.server, self)

    def _check_ahead(self) -> None:
        """proxy-buffering: the upstreams stop being read once the client's write buffer
        holds more than the current response may (``conn.response_buffer``; 0 for a response
        that does not buffer, ``X-Accel-Buffering: no``), until it drains."""
        t = self.transport
        if t is not None and not ahead_fits(self.server, self, t.get_write_buffer_size(),
                                            self.conn.response_buffer):
            # (or all the connections reading ahead hold the server's budget:
            # response_buffering_budget)
            self.ahead = False
            self._pause_upstreams()

    def resume_writing(self) -> None:
        self.client_full = False
        self.ahead = False
        self._give_back_ahead()
        if self.send_stall is not None:
            self.send_stall.cancel()
            self.send_stall = None
        for up in self.upstreams.values():
            if up.transport is not None and not up.transport.is_closing() \
                    and not self.rate_paused:
                up.transport.resume_reading()
        if self.pending and self.feed_handle is None and not self.closed:
            self.feed_handle = self._loop.call_soon(self._feed_pending)
        self._sync_reading()

    def _send_timed_out(self) -> None:
        self.send_stall = None
        t = self.transport
        if not self.client_full or t is None:
            return
        size = t.get_write_buffer_size()
        if size < self.send_mark:
            # The client took some bytes: nginx's timer runs "between two successive write
            # operations", so it starts again.
            self.send_mark = size
            self.send_stall = self._loop.call_later(_SEND_TIMEOUT, self._send_timed_out)
            return
        _log.debug("client timed out while sending to it (send_timeout %ss)", _SEND_TIMEOUT)
        if not self.closed:
            # The client's fault, not the upstream's: ``abort`` closes the upstream without an
            # observation or a retry and records the request as it stands (the status already
            # sent, the bytes handed out so far; 0 if no response had begun).
            try:
                self._run(self.conn.abort(self._loop.time()))
            except Exception:
                self._crashed("the send timeout")
            self._close()
        if self.linger_until is not None:
            self._stop_lingering()
        # Not ``close()``: that would wait to flush what the client will not take.
        t.abort()
        # abort() dropped the write buffer now; ``connection_lost`` (and ``_teardown``) only
        # comes on the loop's next turn, and the connection already left ``connections``
        # (``_close``): its read-ahead bytes are gone, so is their share of the budget.
        self._give_back_ahead()

    # from upstream protocols ------------------------------------------------------------------

    def pause_client(self, up: _Upstream) -> None:
        self.upstream_full = True
        self._sync_reading()
        if self.stall is None and up.send_timeout > 0:
            up.stall_mark = _write_buffered(up)
            self.stall = self._loop.call_later(up.send_timeout, self._send_stalled, up.conn_id)

    def _send_stalled(self, conn_id: int) -> None:
        # The upstream took none of our bytes for proxy_send_timeout: its try timed out (504,
        # or a retry elsewhere), as nginx does. Its timer runs "only between two successive
        # write operations, not for the transmission of the whole request" (proxy_send_timeout
        # docs): every write event that finds more to send re-arms it
        # (ngx_http_upstream_send_request: "if (rc == NGX_AGAIN) { if (!c->write->ready ||
        # u->request_body_blocked) { ngx_add_timer(c->write, u->conf->send_timeout); }"). So
        # an upstream that took some bytes in this period (its buffer shrank, though not below
        # the low-water mark that resumes reading the client) gets another period.
        self.stall = None
        up = self.upstreams.get(conn_id)
        if up is not None and self.upstream_full and not self.closed:
            size = _write_buffered(up)
            if size < up.stall_mark:
                up.stall_mark = size
                self.stall = self._loop.call_later(up.send_timeout, self._send_stalled, conn_id)
                return
        if not self.closed and conn_id in self.upstreams:
            try:
                self._run(self.conn.upstream_failed(conn_id, self._loop.time(), timed_out=True))
            except Exception:
                self._crashed("the proxy_send_timeout")

    def resume_client(self) -> None:
        if self.deadline is not None and self._request_untaken():
            # The upstream took the request (its buffer drained to the low-water mark): its
            # proxy_read_timeout starts now, as nginx's once the request is written whole.
            # (Before ``stall`` is let go: ``_request_untaken`` reads it.)
            self.deadline = max(self.deadline, self._loop.time() + self.timer_seconds)
        if self.stall is not None:
            self.stall.cancel()
            self.stall = None
        self.upstream_full = False
        self._sync_reading()

    def _request_untaken(self) -> bool:
        """An upstream's write buffer is full, proxy_send_timeout runs (``stall``), and no
        upstream sent a byte: the request is not written whole, so the read deadline armed
        with it (``UPSTREAM_READ``) has not begun. nginx arms proxy_read_timeout only then
        (ngx_http_upstream_send_request: on NGX_AGAIN "ngx_add_timer(c->write,
        u->conf->send_timeout)"; on NGX_OK "if (!u->request_body_sent) { u->request_body_sent
        = 1; ... ngx_add_timer(c->read, u->conf->read_timeout);"), so an upstream reading a
        large request (proxy-request-buffering "on" hands it over whole) slower than
        proxy_read_timeout, but within proxy_send_timeout between two writes, is not a
        timeout. Not in a tunnel (its idle timer), nor once a response began (read timeouts
        between two reads run then, whatever is still unsent)."""
        return (self.upstream_full and self.stall is not None and not self.tunnel
                and self.timer_kind is TimerKind.UPSTREAM_READ
                and not any(up.got_data for up in self.upstreams.values()))

    def _sync_reading(self) -> None:
        """Read the client only when no reason to pause holds. Not after ``_close``: a
        lingering close reads and drops on its own terms.

        The reasons: an upstream's write buffer is full; the core holds as many client bytes
        as it will (``reading_wanted``); or the client's own write buffer is full (it does not
        read what we answer). The last one is nginx's order of work: pipelined requests are
        read one at a time, the next only once the current response is sent
        (ngx_http_finalize_request waits for ``c->buffered`` to drain before
        ngx_http_set_keepalive looks at the next request), so a client that does not read
        holds one response. Reading on, every locally answered pipelined request (404, a
        redirect as long as its request line) added an answer to a buffer it never drains:
        ~8 MB per connection with the default keep-alive-requests. Not in a tunnel: there the
        two directions are independent (nginx's ngx_http_upstream_process_upgraded), and the
        upstream side is already paused."""
        t = self.transport
        if t is None or self.closed or self.conn is None:
            return
        want = not self.upstream_full and self.conn.reading_wanted and \
            (not self.client_full or self.tunnel) and not self.pending
        if want != (not self.client_paused) and not t.is_closing():
            self.client_paused = not want
            if want:
                t.resume_reading()
            else:
                t.pause_reading()
        if self.client_paused or self.hup_watched:
            self._sync_hup_watch(t)

    def _sync_hup_watch(self, t: asyncio.Transport) -> None:
        """Not read for now: still notice the client going away (``_HupWatch``), only while
        that would abort something: an upstream at work for it, its EOF an abort
        (proxy_ignore_client_abort off: nginx arms ngx_http_upstream_rd_check_broken_connection
        only then, "if (... && !u->conf->ignore_client_abort)"), not in a tunnel (there the
        bytes before the EOF still go to the upstream), and not for the loop iteration that
        ``pending`` waits (that pause is over at once)."""
        watch = (self.fd >= 0 and not self.hup_seen and self._hup_aborts()
                 and (self.upstream_full or self.client_full or not self.conn.reading_wanted)
                 and not t.is_closing())
        if watch != self.hup_watched:
            if watch:
                hw = self.server._hup_watcher()
                self.hup_watched = hw is not None and hw.watch(self, self.fd)
            else:
                self._unwatch_hup()

    def _hup_aborts(self) -> bool:
        """Whether the client leaving now would abort something: paused, not a tunnel, an
        upstream at work for a request (nginx: "if (!u->cacheable && u->peer.connection)"),
        and proxy_ignore_client_abort off."""
        return (self.client_paused and not self.tunnel and self.conn is not None
                and not self.conn.idle and bool(self.upstreams or self.connecting)
                and not self.server.settings.proxy_ignore_client_abort)

    def _unwatch_hup(self) -> None:
        self.hup_watched = False
        watch = self.server._hup_watcher(create=False)
        if watch is not None:
            watch.unwatch(self, self.fd)

    def client_hup(self) -> None:
        """From :class:`_HupWatch`: the client closed (FIN) or reset its connection while we do
        not read it. With a request in flight it is aborted as a client EOF would abort it
        (499, or 400 while request body bytes were still owed; the upstream connection
        closed, not pooled), without reading what the client
        sent before (nginx's pending_eof path reads nothing either). Without an upstream
        connection or connect under way there is nothing to abort: its EOF is seen once
        reading resumes, as before."""
        self.hup_watched = False
        self.hup_seen = True
        # Only while an upstream works for this client: requests answered here (404s,
        # redirects, pipelined behind a full write buffer) are read and answered first, as
        # before, then the EOF.
        if self.closed or not self._hup_aborts():
            return
        _log.debug("client closed the connection while it was not read: request aborted")
        try:
            self._run(self.conn.receive_eof(self._loop.time()))
        except Exception:
            self._crashed("the client's close")

    def upstream_data(self, conn_id: int, data: bytes) -> None:
        if not self.closed:
            try:
                self._run(self.conn.upstream_data(conn_id, data, self._loop.time()))
            except Exception:
                # Not left to asyncio: it would close the upstream only, and this client's
                # request would wait for an answer that never comes.
                self._crashed("reading the upstream")

    def upstream_eof(self, conn_id: int, got_data: bool = True, failed: bool = False) -> None:
        """The upstream connection ``conn_id`` ended: a FIN, or (``failed``) an error such as
        a reset. A reset is the try's failure (``upstream_failed``), not the end of the
        response: fed to h11 as EOF, a body delimited by the close (HTTP/1.0, or 1.1 without a
        length) ended there as if complete, its last chunk sent and the client's connection
        kept alive, a truncated download passed off as a whole one. nginx reads the reset as
        an error (ngx_event_pipe_read_upstream: recv_chain returns NGX_ERROR, "p->upstream_error
        = 1"), and ngx_http_upstream_process_request finalizes with NGX_HTTP_BAD_GATEWAY,
        which, the response header sent, closes the client's connection without the last
        chunk; before a response began it is an "error" try (retried, or 502), as here. A
        tunnel's upstream reset ends the tunnel as its close does."""
        self.upstreams.pop(conn_id, None)
        if self.closed:
            return
        if self.upstream_full:
            self.resume_client()
        try:
            if got_data and not (failed and not self.tunnel):
                self._run(self.conn.upstream_eof(conn_id, self._loop.time()))
            else:
                # Closed before a single byte of response: nginx counts that as "error" (a
                # failure "passing a request to it, or reading the response header"), which is
                # retried on another endpoint; fed to h11 as EOF it would look like an invalid
                # response.
                self._run(self.conn.upstream_failed(conn_id, self._loop.time(), timed_out=False))
        except Exception:
            self._crashed("the upstream's close")

    def _timer_fired(self) -> None:
        self.timer = None
        deadline = self.deadline
        if deadline is None or self.closed:
            return
        now = self._loop.time()
        if now < deadline:
            self.timer = self._loop.call_at(deadline, self._timer_fired)
            return
        if (self.timer_kind is TimerKind.BODY and self.client_paused) or \
                (self.timer_kind is TimerKind.UPSTREAM_READ and (
                    (self.client_full and not self.ahead) or self._request_untaken())):
            # BODY: the client cannot send its body while we do not read it (an upstream's
            # buffer is full, or the core holds its bytes until a connect): its clock starts
            # again when reading does; the upstream has its own (send timeout, connect timeout).
            # UPSTREAM_READ: likewise the upstreams are not read while the client does not take
            # our response; that stall is the client's, bounded by _SEND_TIMEOUT. Nor has it
            # begun while the upstream has not taken the request (``_request_untaken``).
            self.deadline = now + self.timer_seconds
            self.timer = self._loop.call_at(self.deadline, self._timer_fired)
            return
        self.deadline = None
        try:
            self._run(self.conn.timer_expired(self.timer_kind, now))
        except Exception:
            self._crashed("a timeout")

    # the action loop ---------------------------------------------------------------------------

    def _run(self, actions: Iterable[Action]) -> None:
        """Perform ``actions`` in order. Re-entrant calls (a pooled upstream answering
        ``upstream_connected`` synchronously) append to the queue, which keeps the order the core
        emitted them in."""
        q = self._queue
        q.extend(actions)
        if self._running:
            return
        self._running = True
        try:
            while q:
                a = q.popleft()
                t = type(a)
                if t is SendDownstream:
                    if self.transport is not None and not self.closed:
                        self.transport.write(a.data)  # type: ignore[union-attr]
                        if self.client_full:
                            self.send_mark += len(a.data)  # type: ignore[union-attr]
                            if self.ahead:
                                self._check_ahead()
                elif t is SendUpstream:
                    up = self.upstreams.get(a.conn_id)  # type: ignore[union-attr]
                    if up is not None and up.transport is not None:
                        up.transport.write(a.data)  # type: ignore[union-attr]
                        if self.stall is not None:
                            up.stall_mark += len(a.data)  # type: ignore[union-attr]
                elif t is SetTimer:
                    self._set_timer(a)  # type: ignore[arg-type]
                elif t is RequestDone:
                    self.server._record(a.record)  # type: ignore[union-attr]
                elif t is OpenUpstream:
                    self._open(a)  # type: ignore[arg-type]
                elif t is CloseUpstream:
                    up = self.upstreams.pop(a.conn_id, None)  # type: ignore[union-attr]
                    if self.upstream_full:
                        self.resume_client()
                    if up is not None:
                        if a.reuse:  # type: ignore[union-attr]
                            up.pool.put(up)  # (the server's, or an auth-keepalive pool)
                        else:
                            up.close()
                    else:
                        # "A CloseUpstream for a conn_id whose connect is still pending
                        # means: cancel the connect" (the client left, its body timed out...).
                        # nginx closes the socket it is connecting; letting the connect run
                        # to proxy_connect_timeout held a socket and a task per request that
                        # has no client any more, outside max_connections.
                        task = self.connecting.pop(a.conn_id, None)  # type: ignore[union-attr]
                        if task is not None:
                            task.cancel()
                elif t is CloseDownstream:
                    self._close(a.linger)  # type: ignore[union-attr]
                elif t is TunnelEstablished:
                    self.tunnel = True
                elif t is Offload:
                    self._offload(a)  # type: ignore[arg-type]
                elif t is Mirror:
                    _mirror(self.server, a)  # type: ignore[arg-type]
                else:  # pragma: no cover - a new action kind the server does not know
                    raise TypeError(f"unknown action {a!r}")
        finally:
            self._running = False
        # The core may now hold as many client bytes as it will (or take them again): asked
        # after each batch of actions (a property read; the transport is touched on change only).
        self._sync_reading()
        if self.rate_paused == self.conn.upstream_reading_wanted:
            self._sync_rate_pause()
        if self.retired and not self.closed and self.conn.idle:
            self._close()  # (shutting down, or the settings changed: ``retire``)

    def _sync_rate_pause(self) -> None:
        """limit-rate: while the core holds more response bytes than it lets out now
        (``conn.upstream_reading_wanted`` False), the upstreams are not read; they are again
        once its RATE timer let bytes out (unless the client's own buffer is full)."""
        paused = self.rate_paused = not self.conn.upstream_reading_wanted
        for up in self.upstreams.values():
            t = up.transport
            if t is not None and not t.is_closing():
                if paused:
                    t.pause_reading()
                elif not self.client_full or self.ahead:
                    t.resume_reading()

    def _offload(self, a: Offload) -> None:
        """A basic-auth password hashing (``Offload``): in the loop's default executor, so
        that the loop serves the other connections meanwhile; the core goes on at its end."""
        done = self._loop.run_in_executor(None, a.job)

        def finished(fut: asyncio.Future[object]) -> None:
            if not fut.cancelled() and fut.exception() is not None:
                _log.error("basic auth: hashing a password failed: %r", fut.exception())
            if not self.closed:
                try:
                    self._run(self.conn.offload_done(self._loop.time()))
                except Exception:
                    self._crashed("a basic-auth check")

        done.add_done_callback(finished)

    def _set_timer(self, a: SetTimer) -> None:
        # Lazy re-arming: the core re-arms the read timer on every upstream chunk. Instead of a
        # cancel + call_later each time (a heap push, and cancelled handles pile up in the
        # loop's heap), keep one handle and move the deadline; a handle that fires early
        # re-schedules itself for the remaining time.
        if a.seconds is None or self.closed:
            self.deadline = None
            return
        deadline = self._loop.time() + a.seconds
        self.timer_kind = a.kind
        self.timer_seconds = a.seconds
        self.deadline = deadline
        t = self.timer
        if t is not None:
            if t.when() <= deadline:
                return
            t.cancel()
        self.timer = self._loop.call_at(deadline, self._timer_fired)

    def _open(self, a: OpenUpstream) -> None:
        srv = self.server
        # pooled=False: the core retries after a pooled connection turned out dead; it must be
        # a fresh connection this time.
        if not a.pooled:
            up = None
        elif a.keepalive is None:
            up = srv.pool.take(a.endpoint, a.tls, a.tls_config)
        else:  # auth-keepalive: the auth service's own pool (proxy/_server_authpool.py)
            up = auth_take(srv.pool, a)
        if up is not None:
            self._adopt(up, a)
            self._queue.extend(self.conn.upstream_connected(a.conn_id, self._loop.time(), reused=True))
            return
        task = self._loop.create_task(self._connect(a))
        srv.tasks.add(task)
        task.add_done_callback(srv.tasks.discard)
        if not task.done():
            self.connecting[a.conn_id] = task

    def _adopt(self, up: _Upstream, a: OpenUpstream) -> None:
        """``up`` (pooled or just connected) now carries the attempt ``a``; it is not read while
        the client does not take our response."""
        up.owner = self
        up.conn_id = a.conn_id
        up.got_data = False
        up.send_timeout = a.send_timeout
        up.requests += 1
        self.upstreams[a.conn_id] = up
        if a.keepalive is not None:
            auth_adopt(self.server.pool, up, a)  # (auth-keepalive: a pool of its own)
        if ((self.client_full and not self.ahead) or self.rate_paused) \
                and up.transport is not None:
            up.transport.pause_reading()

    async def _connect(self, a: OpenUpstream) -> None:
        loop = self._loop
        pool = self.server.pool
        key = a.endpoint
        ctx = None
        sni: str | None = None  # None: the endpoint's host, as before
        if a.tls_config is not None and a.tls:
            # proxy-ssl-* (proxy/_proxy_ssl.py): "" sends no SNI (proxy_ssl_server_name off).
            try:
                ctx = pool.tls_context(a.tls_config)
            except (OSError, ssl.SSLError, ValueError) as e:
                if a.tls_config not in pool.tls_refused:  # said once per configuration
                    if len(pool.tls_refused) >= _TLS_CONTEXTS_MAX:
                        pool.tls_refused.clear()
                    pool.tls_refused.add(a.tls_config)
                    _log.warning("proxy-ssl-* configuration %r unusable (%s): its connects "
                                 "fail (502)", a.tls_config, e)
                self.connecting.pop(a.conn_id, None)
                if not self.closed:
                    self._connect_done(a.conn_id, None, timed_out=False)
                return
            sni = server_hostname(a.tls_config) or ""
        elif a.tls:
            ctx = pool.upstream_ssl or _insecure_client_context()
            pool.upstream_ssl = ctx
        made: list[_Upstream] = []

        def factory() -> _Upstream:
            made.append(_Upstream(pool, key, a.tls, a.tls_config))
            return made[-1]

        up: _Upstream | None = None
        try:
            try:
                async with asyncio.timeout(a.connect_timeout):
                    host = key[0]
                    if _is_ip_literal(host):
                        # Pod IPs, ClusterIPs, 127.0.0.1 in a local manifest: no lookup, the
                        # connect as it always was (asyncio reads the literal itself).
                        _, up = await loop.create_connection(
                            factory, host, key[1], ssl=ctx,
                            server_hostname=(host if sni is None else sni)
                            if ctx is not None else None)
                    else:
                        sock = await _connect_name(loop, pool, host, key[1])
                        try:
                            # SNI stays the name (with proxy-ssl-*: proxy-ssl-name, or none);
                            # only the socket comes from the vetted address.
                            _, up = await loop.create_connection(
                                factory, sock=sock, ssl=ctx,
                                server_hostname=(host if sni is None else sni)
                                if ctx is not None else None)
                        except BaseException:
                            sock.close()
                            raise
            finally:
                # Done connecting (before anything below may close this conn_id: a cancel
                # must not hit this task once the connect is over).
                self.connecting.pop(a.conn_id, None)
                if up is None:
                    # The connect completed, but the cancel (the client left, shutdown) or
                    # the timeout came before this task resumed: the connection never reached
                    # us, and nobody else would close it (it stayed open, owned by no one,
                    # until the upstream closed it).
                    for orphan in made:
                        orphan.close()
        except TimeoutError:
            if not self.closed:
                self._connect_done(a.conn_id, None, timed_out=True)
            return
        except (OSError, ssl.SSLError, ValueError) as e:
            _log.debug("connect to %s:%s failed: %s", key[0], key[1], e)
            out_of_fds(e, "upstream connect")   # (EMFILE: a warning once a minute)
            if not self.closed:
                self._connect_done(a.conn_id, None, timed_out=False)
            return
        if a.tls_config is not None and up.transport is not None:
            # proxy_ssl_verify's name and depth (Python checks a name only with SNI).
            problem = peer_problem(a.tls_config, up.transport.get_extra_info("ssl_object"))
            if problem is not None:
                _log.debug("connect to %s:%s failed: %s", key[0], key[1], problem)
                up.close()
                if not self.closed:
                    self._connect_done(a.conn_id, None, timed_out=False)
                return
        if self.closed:
            pool.put(up)
            return
        self._connect_done(a.conn_id, up, a)

    def _connect_done(self, conn_id: int, up: _Upstream | None, a: OpenUpstream | None = None,
                      timed_out: bool = False) -> None:
        """Tell the core how a connect ended (``up`` None: it failed). In a task of its own:
        an exception here would only reach the task, and the client would wait without a timer
        for an answer that never comes."""
        now = self._loop.time()
        try:
            if up is None or up.closed:  # (closed: the upstream closed right after accepting)
                self._run(self.conn.upstream_failed(conn_id, now, timed_out=timed_out))
                return
            assert a is not None
            self._adopt(up, a)
            self._run(self.conn.upstream_connected(conn_id, now, reused=False))
        except Exception:
            self._crashed("the upstream connect")

    def _close(self, linger: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        if self.hup_watched:
            self._unwatch_hup()
        self._cancel_timers()
        for up in self.upstreams.values():
            up.close()
        self.upstreams.clear()
        self._cancel_connects()
        t = self.transport
        if t is not None:
            # Closed for the core, but the socket stays open until ``connection_lost``: while
            # we linger (below), while a TLS transport runs its shutdown (what was written,
            # then our close_notify, flushed within ssl_shutdown_timeout, 30 s; the client's
            # close_notify is not waited for, as in nginx: ``_ServerTLS._do_shutdown``), or
            # while a plain one flushes what was written. It still holds a socket, so it
            # still counts against max_connections (nginx counts such connections in
            # worker_connections). One set, ``lingering``, rather than a second one counted
            # the same way: the limit, shutdown and ``_teardown`` treat all of them alike
            # (held until connection_lost), and every accepted connection is then in exactly
            # one of ``connections`` (open) and ``lingering`` (closing) until its socket is
            # gone; ``linger_until`` tells our own read-and-drop apart where that matters.
            self.server.lingering.add(self)
            if linger and not t.is_closing() and (self.tls or t.can_write_eof()):
                # The client's bytes are read and dropped until it stops sending, so that no
                # reset overtakes the response. Plain TCP: our side ends first (FIN). TLS
                # cannot half-close, and closing would not do: after our close_notify,
                # OpenSSL 3 fails the TLS shutdown on the client's next record
                # (APPLICATION_DATA_AFTER_CLOSE_NOTIFY) and asyncio resets the connection,
                # which can destroy the unread response. So a TLS connection reads and drops
                # through TLS on the same timers, and closes (close_notify) once the client
                # is done: its close_notify or EOF, 5 s without a byte, or 30 s in all.
                # (nginx sends its close_notify first and drains the raw socket, which
                # asyncio's TLS transport does not allow.)
                if not self.tls:
                    t.write_eof()
                now = self._loop.time()
                self.linger_until = now + _LINGER_TIME
                self.last_read = now
                self.client_paused = self.upstream_full = False
                t.resume_reading()
                self.timer = self._loop.call_later(_LINGER_TIMEOUT, self._linger_check)
            elif not t.is_closing():
                # Flushes what was written, then closes (TLS: after its shutdown). Not twice: a
                # second close() of an SSL transport drops its protocol, and a later abort()
                # (send_timeout, ProxyServer.shutdown) would then do nothing.
                t.close()
        self.server.connections.discard(self)
        self.server._maybe_drained()

    def _linger_check(self) -> None:
        self.timer = None
        until = self.linger_until
        if until is None:
            return
        now = self._loop.time()
        quiet_until = self.last_read + _LINGER_TIMEOUT
        if now >= until or now >= quiet_until:
            self._stop_lingering()
        else:
            self.timer = self._loop.call_at(min(until, quiet_until), self._linger_check)

    def _stop_lingering(self) -> None:
        # Still in ``server.lingering`` until ``connection_lost``: close() may yet flush.
        self.linger_until = None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def end_closing(self) -> None:
        """Shutdown: end a connection already closed for the core whose socket is still open.

        Our own lingering close ends as it would on its own (close: FIN already sent, the
        response out). Anything else (a TLS close still flushing the response and its
        close_notify, a plain close still flushing) is aborted: the loop is going away, and
        those would otherwise outlive it by up to ssl_shutdown_timeout or send_timeout."""
        if self.linger_until is not None:
            self._stop_lingering()
        elif self.transport is not None:
            self.transport.abort()

    def flushing(self) -> bool:
        """Closed for the core, and bytes we wrote are still in the process, not yet taken by
        the socket (shutdown lets them go out): the transport's write buffer, and for TLS the
        socket transport's under it."""
        t = self.transport
        if not self.closed or t is None:
            return False
        raw = getattr(getattr(t, "_ssl_protocol", None), "_transport", None)
        under = raw.get_write_buffer_size() if isinstance(raw, asyncio.WriteTransport) else 0
        return t.get_write_buffer_size() + under > 0

    def _cancel_connects(self) -> None:
        # Connects for a connection that is gone: nobody will use them (nginx closes them).
        if self.connecting:
            for task in self.connecting.values():
                task.cancel()
            self.connecting.clear()

    def _cancel_timers(self) -> None:
        if self.feed_handle is not None:
            self.feed_handle.cancel()
            self.feed_handle = None
        self.pending = b""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.stall is not None:
            self.stall.cancel()
            self.stall = None

    def _teardown(self) -> None:
        self.closed = True
        if self.hup_watched:
            self._unwatch_hup()
        self._cancel_timers()
        if self.send_stall is not None:
            self.send_stall.cancel()
            self.send_stall = None
        self.linger_until = None
        self.server.lingering.discard(self)
        self._give_back_ahead()
        for up in self.upstreams.values():
            up.close()
        self.upstreams.clear()
        self._cancel_connects()
        self.server.connections.discard(self)
        self.server._maybe_drained()

    def close_if_idle(self) -> None:
        if not self.closed and self.conn is not None and self.conn.idle:
            self._close()

    def retire(self) -> None:
        """The server's settings changed: as a reload's old nginx worker
        (``ngx_close_idle_connections``: the keep-alive connections, ``c->idle`` set by
        ``ngx_http_set_keepalive``; ``ngx_http_finalize_connection`` keeps none alive while
        ``ngx_exiting``), a keep-alive connection waiting for its next request is closed now,
        and one whose request is under way (or whose first request has not come yet) once
        that request is answered: no request is read with the settings it was opened with
        after they changed (server-tokens, hide-headers, add-headers, HSTS...)."""
        self.retired = True
        conn = self.conn
        if not self.closed and conn is not None and conn.idle and conn._requests \
                and not self.pending:  # (bytes read, not yet fed: a request, answered first)
            self._close()

    def abort(self) -> None:
        if not self.closed and self.conn is not None:
            self._run(self.conn.abort(self._loop.time()))
        self._close()

    def _crashed(self, where: str) -> None:
        """An exception out of the core while handling ``where``: a bug, or one in a hook it
        calls (the router's ``route``/``next_endpoint``; ``observe`` and ``request_id`` failures
        the core logs and goes on without). This
        connection alone is reset (its upstreams closed, no record), as asyncio resets one
        whose ``data_received`` raises; the server and every other connection go on. Called
        from every callback that feeds the core, the loop's own ones (timers, connect tasks,
        the upstreams' callbacks) too: there an exception reached only the loop's handler and
        the connection stayed open without a timer, held until shutdown, counted against
        max_connections, its client waiting forever."""
        _log.exception("client connection reset: the proxy failed on %s", where)
        self._queue.clear()  # the rest of a batch the core was producing: not performed
        self._running = False
        t = self.transport
        self._teardown()
        if t is not None:
            t.abort()


class _ServerTLS(asyncio.sslproto.SSLProtocol):
    """asyncio's own TLS protocol (what ``create_server(ssl=...)`` puts on each accepted
    socket), told when the socket goes: a connection whose handshake never completes never
    reaches its app protocol's ``connection_made``/``connection_lost``, so without this its
    socket could not be counted."""

    def __init__(self, server: ProxyServer, down: _Downstream, ctx: ssl.SSLContext | _Serving,
                 handshake_timeout: float | None) -> None:
        # No waiter (asyncio's accept path awaits one; nobody would here, and a failed
        # handshake would leave an exception never retrieved): SSLProtocol takes None
        # (``_wakeup_waiter``: "if self._waiter is None: return"), typeshed does not say so.
        # The timeout is a float at run time (asyncio's own default is 60.0). A ``_Serving``
        # stands for a context: asyncio only calls its ``wrap_bio``.
        super().__init__(server.loop, down, ctx, None,  # type: ignore[arg-type]
                         server_side=True,
                         ssl_handshake_timeout=handshake_timeout)  # type: ignore[arg-type]
        self._srv = server
        self._down: _Downstream | None = down

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._down is not None:
            self._srv.handshaking.pop(self._down, None)
        super().connection_lost(exc)
        # Break the cycle _Downstream.transport -> app transport -> this protocol -> _down, as
        # asyncio's own SSLProtocol.connection_lost clears _app_protocol: without it every
        # closed HTTPS connection (its SSLObject, buffers and 256 KiB read buffer) waited for
        # the cyclic GC (the soak: RSS +139 MB in 90 s, +32 MB with this).
        self._down = None

    def _on_handshake_complete(self, handshake_exc: BaseException | None) -> None:
        # A failed handshake: OpenSSL has written its alert (protocol_version,
        # handshake_failure...) into the outgoing BIO, but asyncio's _fatal_error then aborts
        # the socket without sending it, so the client saw a bare reset. nginx sends the alert;
        # so do we, before asyncio closes.
        transport = self._transport
        if handshake_exc is not None and isinstance(transport, asyncio.WriteTransport):
            try:
                alert = self._outgoing.read()  # type: ignore[attr-defined]
            except (ssl.SSLError, ValueError):  # pragma: no cover - a BIO already gone
                alert = b""
            if alert:
                transport.write(alert)
        super()._on_handshake_complete(handshake_exc)

    def _do_shutdown(self) -> None:
        # Our close: asyncio sends our close_notify, then waits for the client's, up to
        # ssl_shutdown_timeout (30 s), holding the socket (counted against max_connections)
        # for a client that keeps its end open without answering: an idle keep-alive client
        # closed by keepalive_timeout, one gone without a FIN. nginx does not wait for it
        # once the handshake is done (ngx_http_request.c ngx_http_ssl_handshake_handler: "The
        # majority of browsers do not send the "close notify" alert" ... "c->ssl->
        # no_wait_shutdown = 1;"): its close_notify out, the socket closes. So does this one;
        # the raw transport's close still flushes what is buffered (the response, then the
        # close_notify), and the shutdown timeout, still armed, bounds that flush as before.
        # What asyncio still holds above it (writing into it paused: over its high-water
        # mark) is not lost: the closing transport calls resume_writing as it drains and
        # takes the rest (test_server_s19.py, ..._with_writing_paused_still_sends_everything).
        super()._do_shutdown()  # type: ignore[misc]  # (not in typeshed)
        raw = self._transport
        if (getattr(self, "_shutdown_timeout_handle", None) is not None and raw is not None
                and not raw.is_closing()):
            # Still armed: the close_notify is out and super() waits for the client's.
            raw.close()


def _configure_tls(store: Any, settings: ProxySettings) -> None:
    """The ``ssl-*`` settings to the certificate store's contexts (``CertificateStore.
    configure_tls``; a store of another kind without it is left as it is)."""
    configure = getattr(store, "configure_tls", None)
    if configure is not None:
        configure(settings)


class _Serving:
    """What asyncio's TLS protocol takes as its context: ``listening``'s TLS object, switched to
    ``cert``'s certificate before any byte of the ClientHello reaches OpenSSL (what an SNI
    callback does, earlier and without a Python call in the handshake). The session cache stays
    the listening context's: one cache for every certificate, as with the callback (one context
    per certificate would multiply the memory a client can fill with sessions)."""

    __slots__ = ("listening", "cert")

    def __init__(self, listening: ssl.SSLContext, cert: ssl.SSLContext) -> None:
        self.listening = listening
        self.cert = cert

    def wrap_bio(self, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO, server_side: bool = False,
                 server_hostname: str | None = None) -> ssl.SSLObject:
        obj = self.listening.wrap_bio(incoming, outgoing, server_side=server_side,
                                      server_hostname=server_hostname)
        obj.context = self.cert
        return obj


class _TLSAccept(asyncio.Protocol):
    """The TLS listener's protocol at accept: admit the socket or refuse it, before any
    handshake work. nginx counts a connection in worker_connections from accept, its TLS
    handshake included; with asyncio's ``create_server(ssl=...)`` the app protocol hears of a
    connection only once its handshake is done, so sockets that never send a ClientHello were
    held beyond ``max_connections`` (each up to the handshake timeout).

    Admitted, the socket's ClientHello is read here (:class:`ClientHelloReader`) and the
    certificate's context chosen from its server name (``context_for_hello``), then the socket
    gets asyncio's TLS protocol around a ``_Downstream`` (as ``loop.start_tls`` does), with the
    bytes read so far. OpenSSL thus never calls a Python SNI callback: CPython's cannot take a
    name that is not ASCII (see ``_client_hello.py``), which nginx serves the default
    certificate. A certificate store without ``context_for_hello``/``default_context`` gives
    the listening context ``ctx`` instead, with its own SNI callback.

    A client whose first byte is not a TLS one (:attr:`ClientHelloReader.plain`, nginx's test)
    speaks plain HTTP to the HTTPS port: it gets a ``_Downstream`` without TLS whose request is
    answered as nginx answers it (``_TO_HTTPS``). With the ``ctx`` listener above there is
    no reading before the handshake, and such a client's connection is closed by OpenSSL."""

    def __init__(self, server: ProxyServer, ctx: ssl.SSLContext | None) -> None:
        self.server = server
        self.ctx = ctx
        self.transport: asyncio.Transport | None = None
        self.down: _Downstream | None = None
        self.hello: ClientHelloReader | None = None
        self.timer: asyncio.TimerHandle | None = None
        #: The PROXY protocol header's addresses, for the downstream (``_Downstream.proxied``).
        self.proxied: tuple[tuple[str, int], tuple[str, int]] | None = None

    def _timeout(self) -> float:
        # The handshake is part of the head's deadline (nginx: client_header_timeout from
        # accept covers the TLS handshake and the first request head); asyncio's own default
        # (60 s) would add to it, whatever the setting. 0 (no head deadline) keeps asyncio's
        # 60 s: a handshake is never left unbounded.
        return self.server.settings.client_header_timeout or 60.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        srv = self.server
        if not admitted(srv, transport):
            return
        self.transport = transport
        self.down = down = _Downstream(srv, True)
        down.proxied = self.proxied
        srv.handshaking[down] = transport
        if self.ctx is not None:
            self._start_tls(self.ctx, b"")
            return
        self.hello = ClientHelloReader()
        # Bounded while the hello is read too (the same deadline, from accept).
        self.timer = srv.loop.call_later(self._timeout(), transport.abort)

    def data_received(self, data: bytes) -> None:
        hello = self.hello
        if hello is None or not hello.feed(data):
            return
        self.hello = None
        if hello.plain:
            self._plain_http(bytes(hello.data))
            return
        if self._passthrough(hello):
            return
        store = self.server.cert_store
        if self.down is not None:
            self.down.sni = hello.server_name  # ($ssl_server_name)
        cert = store.context_for_hello(hello.server_name)
        # A host verifying client certificates (auth-tls-*) listens with its own context:
        # OpenSSL keeps the listening context's verify mode (SSL_set_SSL_CTX does not copy it);
        # so does one with its own ssl-prefer-server-ciphers, or refusing the handshake
        # (ssl-reject-handshake): ``listens`` (_tls._ListeningContext).
        self._start_tls(cert if cert.verify_mode != ssl.CERT_NONE
                        or getattr(cert, "listens", False) else store.default_context,
                        bytes(hello.data), cert)

    def eof_received(self) -> bool:
        # The client gave up before its ClientHello was complete: nothing to answer.
        return False

    def connection_lost(self, exc: BaseException | None) -> None:
        # Only while the hello is read: afterwards the socket belongs to ``_ServerTLS``.
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.down is not None:
            self.server.handshaking.pop(self.down, None)
            self.down = None

    def _passthrough(self, hello: ClientHelloReader) -> bool:
        """``ssl-passthrough`` (``_passthrough.py``): a ClientHello naming a passthrough host
        gets no TLS layer here; its bytes are piped to the endpoint its ``/`` rule chooses
        (``ingresslib/_passthrough_pipe.py``), or the socket is closed when there is none.
        False: not a passthrough host, TLS is terminated as for any other."""
        transport, down = self.transport, self.down
        assert transport is not None and down is not None
        srv = self.server
        # The client's address as the router's balancing reads it (a PROXY protocol header's
        # source when there was one: ingress-nginx's TCP proxy reads it too).
        proxied = getattr(self, "proxied", None)
        peer = proxied[0] if proxied is not None else transport.get_extra_info("peername")
        client_ip = peer[0] if isinstance(peer, tuple) and peer else None
        target = srv.passthrough_routes.decide(srv.router, hello.server_name, client_ip)
        if target is None:
            return False
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        srv.handshaking.pop(down, None)
        self.down = self.transport = None   # the socket is the pipe's from here (or closed)
        if target == _PASSTHROUGH_CLOSE:
            transport.close()
            return True
        from .._passthrough_pipe import PassthroughPipe

        assert isinstance(target, tuple)
        PassthroughPipe(srv, transport, bytes(hello.data), target).start()
        return True

    def _plain_http(self, data: bytes) -> None:
        """The client's first byte is not a TLS one (:attr:`ClientHelloReader.plain`): nginx
        goes on with it as plain HTTP (``ngx_http_ssl_handshake``: "plain http", then
        ``ngx_http_wait_request_handler``) and refuses its request once the head is read
        (``_TO_HTTPS``). The socket gets a ``_Downstream`` without TLS, fed ``data``; its
        head deadline still counts from accept (nginx's client_header_timeout timer, armed at
        accept, is not re-armed while it runs)."""
        transport, down = self.transport, self.down
        assert transport is not None and down is not None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.down = self.transport = None   # the socket is the downstream's from here
        down.tls = False
        down.to_https = True
        transport.set_protocol(down)
        down.connection_made(transport)
        down.data_received(data)

    def _start_tls(self, ctx: ssl.SSLContext, data: bytes,
                   cert: ssl.SSLContext | None = None) -> None:
        """The TLS layer on the socket, listening with ``ctx`` (its session cache), serving
        ``cert``'s certificate when given, fed ``data`` (what was read to find the name)."""
        transport, down = self.transport, self.down
        assert transport is not None and down is not None
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.down = self.transport = None   # the socket is the TLS protocol's from here
        left = max(self._timeout() - (self.server.loop.time() - down.accepted), 0.001)
        listening = ctx if cert is None or cert is ctx else _Serving(ctx, cert)
        tls = _ServerTLS(self.server, down, listening, left)
        transport.set_protocol(tls)
        tls.connection_made(transport)
        # What was read to find the server name, fed as the transport would have.
        view = memoryview(data)
        while view and not transport.is_closing():
            buf = tls.get_buffer(len(view))
            n = min(len(buf), len(view))
            buf[:n] = view[:n]
            tls.buffer_updated(n)
            view = view[n:]


#: nginx's page for NGX_HTTP_TO_HTTPS (ngx_http_special_response.c ``ngx_http_error_497_page``:
#: title "400 The plain HTTP request was sent to HTTPS port", then "400 Bad Request" and "The
#: plain HTTP request was sent to HTTPS port"), in the text form of the proxy's other local
#: answers (``_headers.local_body``: ``b"400 Bad Request\n"``).
_TO_HTTPS_BODY = b"400 Bad Request\nThe plain HTTP request was sent to HTTPS port\n"
#: ``refuse_requests`` of the core for a plain-HTTP client on the TLS listener: nginx's answer
#: to it. nginx reads such a client's request as on a plain port, so a malformed or oversized
#: head gets its own 400/414/431, and the head's checks (ngx_http_process_request_header:
#: HTTP/1.1 without Host, a bad Content-Length, TRACE's 405...) answer first; a head that
#: passes them reaches ``ngx_http_process_request``, which refuses it before any rewrite or
#: location: "client sent plain HTTP request to HTTPS port", ``NGX_HTTP_TO_HTTPS`` (497),
#: which ``ngx_http_special_response_handler`` sends as status 400 with its own page,
#: keep-alive off, and the access log shows as 400. ingress-nginx's template has no
#: ``error_page 497`` that would catch it (it only ever had one inside a location, for its own
#: ``return 497``, which a refused head never reaches). So the request is answered 400 with
#: that page and ``Connection: close``: never routed, never proxied, its record (access log,
#: metrics) that of any local answer. The server-wide ``OPTIONS *`` (200 elsewhere) is one
#: more plain request here (nginx's request-line parser refuses a '*' target anyway).
_TO_HTTPS = (400, _TO_HTTPS_BODY)


def _is_ip_literal(host: str) -> bool:
    """``host`` is an IP address as asyncio's ``create_connection`` reads one without a lookup
    (``inet_pton``, as ``base_events._ipaddr_info``): endpoints from IPv4/IPv6 slices and v1
    Endpoints are written canonically (``canonical_ip``), so they all are. A name (ExternalName,
    FQDN slice) is anything else, ``127.1`` included (``inet_pton`` is strict; the resolver
    would read it as 127.0.0.1, and ``_connect_name`` then refuses it)."""
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
    except (OSError, ValueError):
        return False
    return True


def _reaches_this_host(sockaddr: tuple[Any, ...]) -> bool:
    """A resolved address a connect to which reaches this host: loopback (``127.0.0.0/8``,
    ``::1``) or unspecified (``0.0.0.0``, ``::``: Linux connects them to this host), IPv4-mapped
    forms included (Python 3.11's ``is_loopback`` says no to ``::ffff:127.0.0.1``)."""
    ip = ipaddress.ip_address(str(sockaddr[0]).partition("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_unspecified


async def _connect_name(loop: asyncio.AbstractEventLoop, pool: UpstreamPool, host: str,
                        port: int) -> socket.socket:
    """A connected socket to ``host:port`` for a host *name* (an ExternalName Service, an FQDN
    EndpointSlice address), never to this host.

    ``_endpoints`` refuses such names by their text (``localhost``, ``*.localhost``, loopback
    literals), but what a name resolves to is only known now: ``localhost.localdomain``, the
    machine's own host name, or a DNS name whose A record is (or, rebinding, becomes)
    127.0.0.1 would let anyone who can write a Service point an Ingress at the proxy's own
    loopback ports. So the name is resolved here, with the lookup ``create_connection`` would
    make (``loop.getaddrinfo``, in the same order), every address that reaches this host is
    dropped, and the socket connects to a remaining address itself: no second lookup, whose
    answer could differ, ever happens. The addresses are tried in turn, as
    ``create_connection`` does. None left: an ``OSError``, the connect failure the core
    retries and answers 502 for, logged as a warning once per name."""
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    usable = [info for info in infos if not _reaches_this_host(info[4])]
    if not usable:
        why = (f"upstream {host}:{port} refused: the name resolves only to this host "
               f"({', '.join(sorted({str(i[4][0]) for i in infos}))})")
        if host not in pool.refused_names:
            if len(pool.refused_names) >= _REFUSED_NAMES_MAX:
                pool.refused_names.clear()
            pool.refused_names.add(host)
            _log.warning("%s", why)
        raise OSError(why)
    errors: list[OSError] = []
    for family, type_, proto, _, sockaddr in usable:
        sock: socket.socket | None = None
        try:
            # Inside the try, as in asyncio's ``_connect_sock``: a family this host cannot
            # open (IPv6 disabled) is one failed address, not the end of the list.
            sock = socket.socket(family, type_, proto)
            sock.setblocking(False)
            await loop.sock_connect(sock, sockaddr)
            return sock
        except OSError as e:
            errors.append(e)
            if sock is not None:
                sock.close()
        except BaseException:
            if sock is not None:
                sock.close()
            raise
    if len(errors) == 1:
        raise errors[0]
    raise OSError(f"Multiple exceptions: {', '.join(str(e) for e in errors)}")


#: How many SSLContexts of proxy-ssl-* configurations ``UpstreamPool.tls_contexts`` keeps.
_TLS_CONTEXTS_MAX = 256
#: How many refused names ``UpstreamPool.refused_names`` remembers (each is warned about once);
#: a bound, since Services come and go while the server runs.
_REFUSED_NAMES_MAX = 1024


def _insecure_client_context() -> ssl.SSLContext:
    # ingress-nginx does not verify upstream certificates unless proxy-ssl-verify is set.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


#: ``Mirror`` requests under way at once per server (``ProxyServer.mirrors``); past it a mirror
#: is dropped (nginx's bound is worker_connections: a slow mirror must not pile up sockets).
_MIRRORS_MAX = 1024
#: The most bytes of the ``Mirror`` requests under way per server (``ProxyServer.mirror_bytes``:
#: each one's data is held until its task ends, up to its three timeouts against a mirror that
#: does not answer); past it a mirror is dropped. Without it 1024 mirrors of 16 MiB bodies
#: (proxy/_mirror.py ``MIRROR_BODY_LIMIT``) held 16 GiB.
_MIRROR_BYTES_MAX = 128 * 1024 * 1024


def _mirror(srv: ProxyServer, a: Mirror) -> None:
    """``mirror-target`` (proxy/_mirror.py): the request's copy on a connection of its own, in
    a task of the server (cancelled at shutdown); nothing of it reaches the client, whose
    request goes on at once."""
    size = len(a.data)
    if len(srv.mirrors) >= _MIRRORS_MAX or srv.mirror_bytes + size > _MIRROR_BYTES_MAX:
        _log.debug("mirror to %s:%s dropped: %d mirror requests (%d bytes) under way",
                   a.endpoint[0], a.endpoint[1], len(srv.mirrors), srv.mirror_bytes)
        return
    srv.mirror_bytes += size

    def done(task: asyncio.Task[None]) -> None:
        srv.mirror_bytes -= size

    task = srv.loop.create_task(_send_mirror(srv, a))
    srv.tasks.add(task)
    srv.mirrors.add(task)
    task.add_done_callback(srv.tasks.discard)
    task.add_done_callback(srv.mirrors.discard)
    task.add_done_callback(done)


async def _send_mirror(srv: ProxyServer, a: Mirror) -> None:
    """Connect (``connect_timeout``; a name resolved as an endpoint's, never to this host:
    ``_connect_name``), write (``send_timeout``), read the answer's head (``read_timeout``
    between two reads) and close: nginx's mirror subrequest is ``header_only``, its upstream
    finalized once the head is in. A failure is logged once per endpoint as a warning, then
    at debug level."""
    host, port = a.endpoint
    ctx: ssl.SSLContext | None = None
    sni = host
    tls_config = a.tls_config if a.tls else None
    writer: asyncio.StreamWriter | None = None
    try:
        if tls_config is not None:
            # The server block's proxy_ssl_* (proxy/_proxy_ssl.py subrequest_tls): a refused
            # configuration, a failed check, fails the mirror only ("" sends no SNI).
            ctx = srv.pool.tls_context(tls_config)
            sni = server_hostname(tls_config) or ""
        elif a.tls:
            ctx = srv.pool.upstream_ssl or _insecure_client_context()
            srv.pool.upstream_ssl = ctx
            # No server level: the mirror location (ingress-nginx's buildMirrorLocations)
            # writes no proxy_ssl_server_name and inherits none, nginx's default off: no SNI.
            sni = ""
        async with asyncio.timeout(a.connect_timeout):
            if _is_ip_literal(host):
                reader, writer = await asyncio.open_connection(
                    host, port, ssl=ctx, server_hostname=sni if ctx is not None else None)
            else:
                sock = await _connect_name(srv.loop, srv.pool, host, port)
                try:
                    reader, writer = await asyncio.open_connection(
                        sock=sock, ssl=ctx, server_hostname=sni if ctx is not None else None)
                except BaseException:
                    sock.close()
                    raise
        if tls_config is not None:
            problem = peer_problem(tls_config, writer.get_extra_info("ssl_object"))
            if problem is not None:
                raise ssl.SSLError(problem)
        writer.write(a.data)
        async with asyncio.timeout(a.send_timeout):
            await writer.drain()
        seen = b""
        got = 0
        limit = srv.proxy.settings.max_response_header_size
        while b"\r\n\r\n" not in seen:
            async with asyncio.timeout(a.read_timeout):
                chunk = await reader.read(65536)
            if not chunk:
                break
            seen = seen[-3:] + chunk
            got += len(chunk)
            if got > limit and b"\r\n\r\n" not in seen:
                # A head without end (each read within read_timeout) held the task, and one
                # of the _MIRRORS_MAX slots, for as long as the mirror kept sending: nginx
                # stops at its header buffer ("upstream sent too big header").
                raise ValueError(f"its answer's head passed {limit} bytes")
    except Exception as e:  # OSError, ssl.SSLError, TimeoutError...: never the client's
        why = f"mirror to {host}:{port} failed: {type(e).__name__}: {e}"
        if a.endpoint in srv.mirror_failures:
            _log.debug("%s", why)
        else:
            if len(srv.mirror_failures) >= _REFUSED_NAMES_MAX:
                srv.mirror_failures.clear()
            srv.mirror_failures.add(a.endpoint)
            _log.warning("%s (later failures of this mirror are logged at debug level)", why)
    finally:
        if writer is not None:
            writer.close()


# --- the server --------------------------------------------------------------------------------


def _check_load_balance(router: Any, load_balance: str) -> None:
    """Refuse ``ProxyServer(router, load_balance=...)`` before anything is changed: an unknown
    value, or a router that is not an ingresslib Router (its balancing is its own)."""
    from .._config import LOAD_BALANCE
    from .._router import Router

    if load_balance not in LOAD_BALANCE:
        raise ValueError(f"load_balance {load_balance!r}: expected one of {', '.join(LOAD_BALANCE)}")
    if not isinstance(router, Router):
        raise TypeError("load_balance needs an ingresslib Router (pass it to your router instead)")


def _running_loop() -> asyncio.AbstractEventLoop:
    """The running event loop, for a ProxyServer made without ``loop=``. Made outside one (at
    module level, in plain ``main()``), asyncio's own error was a bare "no running event
    loop" from deep in the constructor, which does not say what to do."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(
            "ProxyServer(router) needs an event loop and none is running: create it inside a "
            "running event loop (in an async function, e.g. one run by asyncio.run(main())), "
            "or pass loop= the event loop that will run start() and serve "
            "(ProxyServer(router, loop=loop))") from None


class ProxyServer:
    """HTTP (and HTTPS) listeners in front of a router.

    ``router`` is an ``ingresslib.Router(res)`` (or your own object with its ``route``: a
    ``Resources`` is refused, ``TypeError``). ``settings`` is a :class:`ProxySettings`; any of
    its fields may also be passed as a keyword argument (``ProxyServer(router,
    proxy_read_timeout=5)``). ``load_balance`` (the ConfigMap's
    ``load-balance``) is set on the ingresslib ``Router`` given, which is served as it is: its
    later ``update`` is what the server serves.

    ``cert_store`` (an :class:`ingresslib.proxy.CertificateStore`) provides the listening TLS
    context and which hosts have TLS (ssl-redirect, HSTS), and each host's client certificate
    authentication (``auth-tls-*``: its own context asks for a certificate; see
    ingresslib/proxy/API.md, "Client certificates").

    Usage::

        server = ProxyServer(router)
        await server.start(listen=("127.0.0.1", 0))
        print(server.urls)
        await server.serve_until(stop_event)   # graceful shutdown when the event is set

    or ``async with server:`` (after ``start``; or ``async with ProxyServer(router) as
    server:``, which calls ``start()`` with its defaults): ``shutdown()`` on the way out,
    however the block ends.
    """

    def __init__(
        self,
        router: Any,
        settings: ProxySettings | None = None,
        *,
        cert_store: Any = None,
        max_connections: int = 10000,
        on_record: Callable[[RequestRecord], None] | None = None,
        request_id: Callable[[], str] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        ssl_passthrough: bool = False,
        **overrides: Any,
    ) -> None:
        from ._connection import Proxy  # the core; imported here so the module loads alone

        load_balance = overrides.pop("load_balance", None)
        unknown = set(overrides) - ProxySettings.field_names()
        if unknown:
            raise TypeError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        if load_balance is not None:
            _check_load_balance(router, load_balance)
        # (ProxySettings derives the head limits again when large_client_header_buffers
        # changes; limits given explicitly, in settings= or here, win.)
        settings = replace(settings or ProxySettings(), **overrides)
        self.loop = loop or _running_loop()
        if load_balance is not None:
            # The ConfigMap's `load-balance` belongs to the router (the default balancer of
            # every backend): set on the caller's Router itself, not a copy, so that its later
            # ``update(res)`` is what is served and keeps it (a copy went on serving the first
            # table). Last of the checks above: a refused constructor leaves the router as it was.
            router._set_load_balance(load_balance)
        self.cert_store = cert_store
        _configure_tls(cert_store, settings)   # its contexts get the ssl-* settings
        self.max_connections = max_connections
        self._on_record = on_record
        self._tls_listening = False
        # A callable, so certificate reloads are seen at once (ssl-redirect, HSTS). Records
        # are built by the core only when someone consumes them.
        self.proxy = Proxy(router, settings, tls_hosts=self._has_tls, request_id=request_id,
                           records=on_record is not None, client_auth=self._client_auth)
        self.pool = UpstreamPool(self.loop, settings)
        self.connections: set[_Downstream] = set()
        #: Closed client connections whose socket is still open: lingering (reading and
        #: dropping the rest of a request body), in their TLS shutdown, or flushing what was
        #: written. Counted against ``max_connections`` until ``connection_lost``.
        self.lingering: set[_Downstream] = set()
        #: Accepted TLS connections still in their handshake (their raw transports), counted
        #: against ``max_connections`` too: nginx counts a connection from accept.
        self.handshaking: dict[object, asyncio.Transport] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        #: ``Mirror`` requests under way (``_mirror``), and the mirror endpoints that failed
        #: (each warned about once).
        self.mirrors: set[asyncio.Task[None]] = set()
        #: The bytes of those requests (``_MIRROR_BYTES_MAX``).
        self.mirror_bytes = 0
        self.mirror_failures: set[tuple[str, int]] = set()
        #: proxy-buffering: the bytes the client connections reading ahead of their clients
        #: hold together (proxy/_response_buffer.py ``ahead_fits``; at most
        #: ``ProxySettings.response_buffering_budget`` past which they stream).
        self.ahead_held = 0
        self.servers: list[asyncio.Server] = []
        #: ``start`` was called (``start(None)`` binds no listener): ``async with`` binds none.
        self._started = False
        #: ``[("http", host, port), ("https", host, port)]`` once started.
        self.addresses: list[tuple[str, str, int]] = []
        self.draining = False
        self.refused = 0
        self._drained: asyncio.Event | None = None
        #: Made on first use (the first client paused); False where it cannot work.
        self._hup_watch: _HupWatch | None | bool = None
        #: ``ssl-passthrough`` (ingress-nginx ``--enable-ssl-passthrough``): which ClientHellos
        #: the TLS listener pipes to a backend untouched (``_passthrough.py``), and the pipes
        #: open (their client sockets counted against ``max_connections``).
        self.passthrough_routes = PassthroughRoutes(ssl_passthrough)
        self.passthrough: set[Any] = set()

    # -- configuration that may change while serving -----------------------------------------

    @property
    def router(self) -> Any:
        """The router requests are routed with; assign another to switch (requests already
        routed keep theirs). One without ``route()`` (a ``Resources``) is a ``TypeError``, as
        in the constructor."""
        return self.proxy.router

    @router.setter
    def router(self, router: Any) -> None:
        from ._connection import _check_router

        _check_router(router)  # as the constructor: a Resources would drop every connection
        # One attribute store: requests already routed keep their Decision (and the core keeps
        # the router it started them with); new requests see the new router.
        self.proxy.router = router
        self.proxy.log_annotation_warnings()
        self.passthrough_routes.hosts(router)   # its warnings logged now

    @property
    def settings(self) -> ProxySettings:
        """The :class:`ProxySettings` in use; assign a new one to change them (for the core and
        the upstream pool). Connections accepted later use them whole; a connection already
        open is closed once idle, as a reload's old nginx worker closes its keep-alive
        connections: one waiting for its next request at once, one reading or answering a
        request after that request (``_Downstream.retire``). Assigning settings equal to the
        ones in use closes nothing."""
        s: ProxySettings = self.proxy.settings
        return s

    @settings.setter
    def settings(self, settings: ProxySettings) -> None:
        changed = settings != self.proxy.settings
        self.proxy.settings = settings
        self.pool.settings = settings
        _configure_tls(self.cert_store, settings)
        if changed:
            for c in list(self.connections):
                c.retire()

    def _client_auth(self, host: str) -> Any:
        """The client certificate authentication (``auth-tls-*``) of ``host``'s server, from
        the certificate store (``CertificateStore.client_auth``); None: none."""
        client_auth = getattr(self.cert_store, "client_auth", None)
        return None if client_auth is None else client_auth(host)

    def _has_tls(self, host: str) -> bool:
        store = self.cert_store
        if store is None or not self._tls_listening:
            # No HTTPS listener: redirecting to https:// would send clients nowhere.
            return False
        has_tls = getattr(store, "has_tls", None)
        if has_tls is not None:
            # TLS configured for the host, even if its certificate fell back to the default
            # one: ingress-nginx redirects such a host too.
            return bool(has_tls(host))
        return store.context_for(host) is not store.default_context

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(
        self,
        listen: tuple[str, int] | None = ("127.0.0.1", 8080),
        tls_listen: tuple[str, int] | None = None,
        *,
        backlog: int = 1024,
    ) -> None:
        """Bind the listeners; returns once they accept connections.

        ``listen`` and ``tls_listen`` are ``(host, port)`` pairs (``("127.0.0.1", 0)``: a free
        port, see ``urls``), or None for no such listener; anything else is a ``TypeError``."""
        _check_address("listen", listen)
        _check_address("tls_listen", tls_listen)
        if tls_listen is not None and self.cert_store is None \
                and self.settings.ssl_reject_handshake:
            # The store the server would make for itself never learns the Ingress hosts
            # (nothing updates it): every name would be refused, the routed ones too. Said
            # here, before any socket is bound, rather than as handshake failures.
            raise ValueError(
                "ssl_reject_handshake needs a cert_store that knows the served hosts: pass "
                "ProxyServer(cert_store=CertificateStore()) and update it with the Resources "
                "(as `ingresslib serve` does)")
        self._started = True
        # The annotation warnings ``check`` prints (ignored or denying annotations) are in the
        # log from the start, not only at each route's first request.
        self.proxy.log_annotation_warnings()
        self.passthrough_routes.hosts(self.router)   # ssl-passthrough's warnings, likewise
        loop = self.loop
        if listen is not None:
            # Held before it serves (start_serving=False): a cancellation at create_server's
            # own sleep once it served lost the server, its socket open until collected.
            srv = await loop.create_server(
                lambda: accepting(self, _Downstream(self, False)), listen[0], listen[1],
                backlog=backlog, reuse_address=True, start_serving=False)
            pace_accepts(srv)   # (one error a second when out of fds, not 1,024)
            self.servers.append(srv)
            self.addresses.append(("http", *_addr(srv, listen[0])))
            await srv.start_serving()
        if tls_listen is not None:
            if self.cert_store is None:
                from .._tls import CertificateStore

                self.cert_store = CertificateStore()
                _configure_tls(self.cert_store, self.settings)
            # A store that chooses from the ClientHello's raw server name (and listens with its
            # ``default_context``) needs no listening context with an SNI callback (see
            # ``_TLSAccept``).
            ctx: ssl.SSLContext | None = None
            if not all(hasattr(self.cert_store, a)
                       for a in ("context_for_hello", "default_context")):
                ctx = self.cert_store.server_context()
            # Plain sockets, TLS put on by ``_TLSAccept`` once a socket is admitted (counted
            # from accept, as nginx does; the handshake bounded by client_header_timeout).
            srv = await loop.create_server(
                lambda: accepting(self, _TLSAccept(self, ctx)), tls_listen[0], tls_listen[1],
                backlog=backlog, reuse_address=True, start_serving=False)
            pace_accepts(srv)
            self.servers.append(srv)
            self.addresses.append(("https", *_addr(srv, tls_listen[0])))
            self.proxy.https_port = self.addresses[-1][2]
            self._tls_listening = True
            await srv.start_serving()

    @property
    def urls(self) -> list[str]:
        """A URL per socket of each listener, ``listen``'s then ``tls_listen``'s (IPv4 first
        within one: ``localhost:0`` binds 127.0.0.1 and ::1, each on a port of its own), an
        IPv6 zone written ``%25`` (:func:`_url`). ``addresses`` names each listener's first
        socket only; a listener of one socket is its one URL, as before."""
        return [url for (scheme, host, port), srv in zip(self.addresses, self.servers)
                for url in _socket_urls(scheme, srv, (host, port))]

    async def shutdown(self, timeout: float = 10.0) -> None:
        """Graceful stop: stop accepting, close idle keep-alive connections, let in-flight
        requests finish (up to ``timeout`` seconds), then abort what is left.

        A request is finished when its response is out of the process, not when the core is
        done with it: a connection closed with bytes of its response still in its write buffer
        (the tail of a download to a slow client) is given the same grace period to flush
        them. Aborting it at once cut that tail (up to a write buffer and one upstream read),
        and the client saw a truncated response; nginx's graceful stop likewise closes only
        idle connections and lets a response being written finish."""
        loop = self.loop
        deadline = loop.time() + timeout
        self.draining = True
        for srv in self.servers:
            srv.close()
        for c in list(self.connections):
            c.retired = True  # (closed once idle: the check after each batch)
            c.close_if_idle()
        if self.connections:
            if self._drained is None or self._drained.is_set():
                # One event for shutdowns at once (serve_until's and ``async with``'s): a new
                # one here left the earlier call waiting out its whole grace period.
                self._drained = asyncio.Event()
            try:
                async with asyncio.timeout_at(deadline):
                    await self._drained.wait()
            except TimeoutError:
                _log.warning("shutdown: aborting %d connection(s) still busy", len(self.connections))
        # Polled (only here): a TLS transport tells no one when its buffer is empty.
        while any(c.flushing() for c in self.lingering):
            left = deadline - loop.time()
            if left <= 0:
                _log.warning("shutdown: aborting %d connection(s) still sending a response",
                             sum(c.flushing() for c in self.lingering))
                break
            await asyncio.sleep(min(_FLUSH_POLL, left))
        for c in list(self.connections):
            c.abort()
        for c in list(self.lingering):  # the ones just aborted too (a TLS one starts its shutdown)
            c.end_closing()
        for raw in list(self.handshaking.values()):
            raw.abort()
        for pipe in list(self.passthrough):   # ssl-passthrough pipes: not drained either
            pipe.abort()
        for t in list(self.tasks):
            t.cancel()
        self.pool.close()
        close_auth_pools(self.pool)
        watch = self._hup_watcher(create=False)
        self._hup_watch = None
        if watch is not None:
            watch.close()
        for srv in self.servers:
            await srv.wait_closed()
        # Let transports run their close callbacks before the loop goes away: an aborted TLS
        # transport reaches connection_lost in two loop iterations (socket, then SSL layer).
        await asyncio.sleep(0)
        for _ in range(4):
            if not self.lingering:
                break
            await asyncio.sleep(0)

    async def serve_until(self, stop: asyncio.Event, timeout: float = 10.0) -> None:
        """Serve until ``stop`` is set, then ``shutdown(timeout)`` (seconds of grace for the
        requests in flight).

        Cancelled (a ``TaskGroup`` whose other task failed, ``asyncio.timeout``, Ctrl-C under
        ``asyncio.run``), it shuts the server down the same way before the ``CancelledError``
        goes on, as asyncio's ``Server.serve_forever`` closes its server: before, the server
        went on listening and serving. A cancellation during that shutdown cuts its grace
        short (``shutdown(0)``: what is still in flight is aborted)."""
        try:
            await stop.wait()
        except asyncio.CancelledError:
            await self._shutdown_shielded(timeout)
            raise
        await self._shutdown_shielded(timeout)

    async def _shutdown_shielded(self, timeout: float) -> None:
        """``shutdown(timeout)`` carried to its end although the caller may be cancelled (it
        runs as a task of its own, so the caller's cancellation does not interrupt it half
        way: listeners closed, connections left open). Cancelled while it waits, the caller
        cuts the grace short with ``shutdown(0)`` and raises ``CancelledError`` once that is
        done."""
        drain = self.loop.create_task(self.shutdown(timeout))
        try:
            await asyncio.shield(drain)
            return
        except asyncio.CancelledError:
            drain.cancel()
            abort = self.loop.create_task(self.shutdown(0))
            try:
                await asyncio.shield(abort)
            except asyncio.CancelledError:
                pass  # (it ends by itself within a few loop iterations)
            raise

    async def __aenter__(self) -> ProxyServer:
        """``async with server:`` -- ``start()`` with its defaults (``127.0.0.1:8080``) unless
        ``start`` was already called (to listen elsewhere, call it first); a start that fails
        closes what it had bound."""
        if self.draining:
            raise RuntimeError("this ProxyServer was shut down: make a new one to serve again")
        if not self._started:
            try:
                await self.start()
            except BaseException:
                await self._shutdown_shielded(0)
                raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """``shutdown()``, however the block ended (its default grace of 10 s; a cancellation
        during it cuts the grace short, as in ``serve_until``)."""
        await self._shutdown_shielded(10.0)

    # -- internals ----------------------------------------------------------------------------

    @property
    def on_record(self) -> Callable[[RequestRecord], None] | None:
        """Called with each finished request's :class:`RequestRecord` (access log, metrics),
        or None: then the core builds no records. Assignable."""
        return self._on_record

    @on_record.setter
    def on_record(self, value: Callable[[RequestRecord], None] | None) -> None:
        self._on_record = value
        self.proxy.records = value is not None

    def _hup_watcher(self, create: bool = True) -> _HupWatch | None:
        """The :class:`_HupWatch` of this server (made on first use), or None where it cannot
        work (not Linux, a loop without ``add_reader``)."""
        w = self._hup_watch
        if isinstance(w, _HupWatch):
            return w
        if w is False or not create:
            return None
        try:
            w = _HupWatch(self.loop)
        except (NotImplementedError, OSError):
            self._hup_watch = False
            return None
        self._hup_watch = w
        return w

    def sockets_held(self) -> int:
        """Client sockets held: open connections, closing ones, TLS handshakes under way
        (what ``max_connections`` bounds, as nginx's worker_connections)."""
        return (len(self.connections) + len(self.lingering) + len(self.handshaking)
                + len(self.passthrough))

    def _maybe_drained(self) -> None:
        if self._drained is not None and not self.connections:
            self._drained.set()

    def _record(self, record: RequestRecord) -> None:
        on_record = self._on_record
        if on_record is not None:
            try:
                on_record(record)
            except Exception:  # a logging/metrics bug must not break proxying
                _log.exception("on_record failed")


def _check_address(name: str, address: object) -> None:
    """Refuse what ``start`` cannot bind: a ``"host:port"`` string (``serve --listen``'s form)
    was read a character at a time, ``OSError: ... bind on address ('0.0.0.1', 2)``, and a
    port alone failed as ``'int' object is not subscriptable``; say which form it takes."""
    if address is None or (isinstance(address, (tuple, list)) and len(address) == 2):
        return
    raise TypeError(f"ProxyServer.start: {name} takes a (host, port) pair, such as "
                    f"('127.0.0.1', 8080), or None; got {address!r}")


def _addr(srv: asyncio.Server, requested: str) -> tuple[str, int]:
    name = srv.sockets[0].getsockname()
    return str(name[0]), int(name[1])


def _url(scheme: str, host: str, port: int) -> str:
    """``scheme://host:port`` as RFC 3986 writes the host: an IPv6 address in brackets, and
    its zone's ``%`` as ``%25`` (RFC 6874, section 2: "%25" is the "ZoneID" delimiter), so
    ``fe80::1%lo`` is ``http://[fe80::1%25lo]:8080``, a URL curl and browsers accept."""
    if ":" in host:
        host = host.replace("%", "%25", 1)
    return f"{scheme}://{host_port(host, port)}"


def _socket_urls(scheme: str, srv: Any, fallback: tuple[str, int]) -> list[str]:
    """A URL per socket ``srv`` (an ``asyncio.Server``) listens on, IPv4 first, else
    ``fallback``'s (a closed server has no sockets). asyncio binds a host name on each of its
    addresses, and with port 0 each socket gets a free port of its own: ``localhost:0`` is
    ``127.0.0.1:41235`` and ``[::1]:38177`` where localhost names both. Only the first socket
    was shown (in the order of a set: either one), and the other listened unseen."""
    names = []
    for sock in getattr(srv, "sockets", None) or ():
        name = sock.getsockname()
        names.append((sock.family != socket.AF_INET, str(name[0]), int(name[1])))
    urls = [_url(scheme, host, port) for _, host, port in sorted(names)]
    return list(dict.fromkeys(urls)) or [_url(scheme, *fallback)]
