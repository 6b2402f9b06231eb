"""ingress-nginx's UDP services (``--udp-services-configmap``) served: one datagram socket per
entry (read as TCP's, :mod:`ingresslib._tcp_services`, without the PROXY fields, the Service
and endpoint ports resolved being the UDP ones: ``EndpointIndex.resolve(..., protocol="UDP")``),
each client's datagrams relayed to one of the Service's UDP endpoints.

nginx.tmpl's UDP ``server`` block writes ``listen <port> udp``, ``proxy_responses``
(``proxy-stream-responses``, 1), ``proxy_timeout`` (``proxy-stream-timeout``, 600s) and
``proxy_pass upstream_balancer`` (``tcp_udp_balancer.lua``: round-robin), and no
``proxy_next_upstream*`` (nginx's defaults: on, each endpoint once, no time bound). nginx
stream's UDP "session" (ngx_stream_proxy_module.c): one client address:port, one upstream
socket connected to the endpoint picked when the session began; the client's later
datagrams go there, the endpoint's replies go back from the listening socket; the session
ends once the replies number ``proxy_responses`` times the client's datagrams
(``ngx_stream_proxy_test_finalize``: done when ``u->responses >= pscf->responses *
u->requests``; 0: right after sending), or after ``proxy_timeout`` with no datagram either
way. A datagram from that client afterwards begins a new session (the next round-robin
pick); a reply that comes after the end is dropped with its socket. An error on the
upstream socket before any reply (an ICMP port unreachable: ``ECONNREFUSED``) tries the next
endpoint with the datagrams sent so far (``ngx_stream_proxy_process``: "if (c->type ==
SOCK_DGRAM && u->received == 0) ngx_stream_proxy_next_upstream"), each endpoint once; after
a reply, or with none left, the session ends. A datagram of 0 bytes is one too, relayed and
counted (nginx 1.19.1: "zero length UDP datagrams were not proxied", fixed).

Here the same; sessions past ``max_connections`` (serve's ``--max-connections``, counted apart
from HTTP's and TCP's) are not begun: their datagram is dropped, as nginx drops one it has no
connection for ("worker_connections are not enough"). A port an update removes closes with
its sessions (their replies would have to leave from the closed socket); a port an update
retargets ends the sessions whose endpoint is no longer one of its endpoints (the client's
next datagram begins a session with a current one), the others go on; :meth:`close` closes
everything at once. Replies go only to the client address of the session, datagrams only to
the endpoint its socket is connected to (the kernel drops a datagram from any other address
on a connected socket). A socket whose send buffer is full (the kernel would block) drops
the datagram rather than queue it: a burst is bounded by the transport's high-water mark
(``pause_writing``), never by memory; a dropped client datagram is not counted as one the
session waits a reply for. ``proxy-stream-timeout`` 0: no bound, as for TCP services.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import ipaddress
import logging
import socket
from collections.abc import Sequence
from typing import Any

from ._serve_limits import out_of_fds
from ._tcp_proxy import _Listener
from ._tcp_services import TCPServiceTarget
from .proxy._settings import ProxySettings

__all__ = ["UDPServices"]

_log = logging.getLogger("ingresslib.server")

#: Datagrams a session keeps until the endpoint's first reply, to send again to the next
#: endpoint when this one is unreachable (nginx keeps the client's first datagram), and the
#: bytes they may take (the first is kept whatever its size): a session of an endpoint that
#: never answers holds at most 64 KiB, not 16 datagrams of 64 KiB (times --max-connections).
MAX_PENDING = 16
MAX_PENDING_BYTES = 65536

#: The errors on a connected upstream socket that say its endpoint is not there (ICMP).
_UNREACHABLE = frozenset({errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH,
                          errno.EHOSTDOWN})


def _send(transport: Any, sock: socket.socket, data: bytes, addr: Any = None) -> bool:
    """``data`` sent on ``transport`` (to ``addr``, or its connected peer); False when dropped
    (the send buffer full: ``pause_writing``). asyncio's ``sendto`` skips an empty datagram,
    so that one goes straight to the socket (when nothing waits in the transport's buffer)."""
    if data:
        transport.sendto(data, addr)
        return True
    if transport.get_write_buffer_size():
        return False
    try:
        if addr is None:
            sock.send(b"")
        else:
            sock.sendto(b"", addr)
    except OSError:   # (would block, or an ICMP error reported here: the datagram is lost)
        return False
    return True


class _Port(_Listener):
    """One external UDP port: TCP's listener (target, round-robin) with its socket and the
    sessions by client address."""

    def __init__(self, target: TCPServiceTarget, sock: socket.socket) -> None:
        super().__init__(target)
        self.sock = sock
        self.transport: asyncio.DatagramTransport | None = None
        self.sessions: dict[Any, _Session] = {}
        #: The socket's send buffer is full (replies are dropped until it drains).
        self.paused = False


class _Listen(asyncio.DatagramProtocol):
    def __init__(self, owner: UDPServices, port: _Port) -> None:
        self.owner = owner
        self.port = port

    def connection_made(self, transport: Any) -> None:
        self.port.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.owner.received(self.port, data, addr)

    def error_received(self, exc: Exception) -> None:
        _log.debug("UDP services: port %d: %r", self.port.target.port, exc)

    def pause_writing(self) -> None:
        self.port.paused = True

    def resume_writing(self) -> None:
        self.port.paused = False


class _Upstream(asyncio.DatagramProtocol):
    """One upstream socket of a session (a new one per endpoint tried)."""

    def __init__(self, session: _Session) -> None:
        self.session: _Session | None = session
        self.sock: socket.socket | None = None
        #: The socket's send buffer is full (the client's datagrams are dropped meanwhile).
        self.paused = False

    def connection_made(self, transport: Any) -> None:
        if self.session is None:
            transport.close()
        else:
            self.session.connected(self, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.session is not None:
            self.session.reply(data)

    def error_received(self, exc: Exception) -> None:
        if self.session is not None:
            self.session.failed(exc)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False


async def _connected_socket(loop: asyncio.AbstractEventLoop, host: str, port: int
                            ) -> socket.socket:
    """A non-blocking datagram socket connected to ``host:port`` (an IP, or an ExternalName
    Service's DNS name, looked up: the first address)."""
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
        addr: Any = (host, port)
    except ValueError:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        if not infos:
            raise OSError(errno.EHOSTUNREACH, f"{host}: no address") from None
        family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.connect(addr)
    except BaseException:
        sock.close()
        raise
    return sock


class _Session:
    """One client address on one port, and its upstream socket."""

    def __init__(self, owner: UDPServices, port: _Port, client: Any,
                 endpoints: list[tuple[str, int]]) -> None:
        self.owner = owner
        self.port = port
        self.client = client
        self.candidates = endpoints
        self.tried = 0
        self.endpoint = endpoints[0]
        self.upstream: _Upstream | None = None
        self.transport: asyncio.DatagramTransport | None = None
        self.requests = 0
        self.responses = 0
        #: The client's datagrams until the first reply (sent again to the next endpoint).
        self.pending: list[bytes] | None = []
        self.pending_bytes = 0
        self.last = owner.loop.time()
        self.timer: asyncio.TimerHandle | None = None
        self.closed = False

    def start(self) -> None:
        self.owner.sessions.add(self)
        self.port.sessions[self.client] = self
        self._arm()
        self._open_next()

    def _open_next(self) -> None:
        self.endpoint = self.candidates[self.tried]
        self.tried += 1
        up = self.upstream = _Upstream(self)
        task = self.owner.loop.create_task(self._open(up, self.endpoint))
        self.owner.tasks.add(task)
        task.add_done_callback(self.owner.tasks.discard)

    async def _open(self, up: _Upstream, endpoint: tuple[str, int]) -> None:
        sock: socket.socket | None = None
        try:
            sock = up.sock = await _connected_socket(self.owner.loop, *endpoint)
            await self.owner.loop.create_datagram_endpoint(lambda: up, sock=sock)
        except OSError as e:
            if sock is not None:
                sock.close()
            if up is self.upstream:
                self.failed(e)
        except BaseException:   # (cancelled by close(): the socket goes with it)
            if sock is not None:
                sock.close()
            raise

    def connected(self, up: _Upstream, transport: Any) -> None:
        if self.closed or up is not self.upstream:
            up.session = None
            transport.close()
            return
        self.transport = transport
        for data in self.pending or ():
            self._to_upstream(data)
        self._check()

    def _to_upstream(self, data: bytes) -> bool:
        up, transport = self.upstream, self.transport
        if up is None or transport is None or up.sock is None or up.paused:
            return False
        return _send(transport, up.sock, data)

    def _keep(self, data: bytes) -> bool:
        """Whether ``data`` is kept for the next endpoint (see MAX_PENDING)."""
        pending = self.pending
        if pending is None or len(pending) >= MAX_PENDING or (
                pending and self.pending_bytes + len(data) > MAX_PENDING_BYTES):
            return False
        pending.append(data)
        self.pending_bytes += len(data)
        return True

    def send(self, data: bytes) -> None:
        """A datagram from the client: counted once it is sent, or kept to send once the
        upstream socket is open; dropped (not counted) when neither can be."""
        self.last = self.owner.loop.time()
        if self.transport is None:
            if self._keep(data):
                self.requests += 1
            return   # (else more than MAX_PENDING(_BYTES) before the socket opened: dropped)
        if not self._to_upstream(data):
            return   # (the socket's send buffer is full: dropped)
        self.requests += 1
        self._keep(data)
        self._check()

    def reply(self, data: bytes) -> None:
        """A datagram from the endpoint: to the client, from the listening socket."""
        if self.closed:
            return
        self.responses += 1
        self.pending = None
        self.pending_bytes = 0
        self.last = self.owner.loop.time()
        out = self.port.transport
        if out is not None and not out.is_closing() and not self.port.paused:
            _send(out, self.port.sock, data, self.client)
        self._check()

    def failed(self, exc: Exception) -> None:
        """An error on the upstream socket: the endpoint unreachable tries the next one while
        no reply came."""
        if self.closed:
            return
        if out_of_fds(exc, "UDP services: session socket"):
            self.close()   # (its datagrams dropped; logged once a minute, not per session)
            return
        if not isinstance(exc, OSError) or exc.errno not in _UNREACHABLE:
            _log.debug("UDP services: port %d: %s:%d: %r", self.port.target.port,
                       *self.endpoint, exc)
            if self.transport is not None:
                return
        _log.debug("UDP services: port %d: %s:%d unreachable: %r", self.port.target.port,
                   *self.endpoint, exc)
        if self.pending is None or self.tried >= len(self.candidates):
            if self.pending is not None:
                _log.warning("UDP services: port %d: no endpoint answered (%d tried)",
                             self.port.target.port, self.tried)
            self.close()
            return
        self._drop_upstream()
        self._open_next()

    def _check(self) -> None:
        # ngx_stream_proxy_test_finalize: done once the replies number proxy_responses times
        # the client's datagrams (0: once the datagrams went).
        if self.transport is not None and self.requests \
                and self.responses >= self.owner.responses * self.requests:
            self.close()

    def _arm(self) -> None:
        idle = self.owner.settings.proxy_stream_timeout
        if idle > 0:
            self.timer = self.owner.loop.call_at(self.last + idle, self._idle)

    def _idle(self) -> None:
        self.timer = None
        idle = self.owner.settings.proxy_stream_timeout
        if idle <= 0:
            return   # (a reload made it 0: no bound)
        if self.owner.loop.time() - self.last >= idle:
            _log.debug("UDP services: port %d: session of %s timed out", self.port.target.port,
                       self.client)
            self.close()
        else:
            self._arm()

    def _drop_upstream(self) -> None:
        if self.upstream is not None:
            self.upstream.session = None
            self.upstream = None
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self._drop_upstream()
        self.owner.sessions.discard(self)
        if self.port.sessions.get(self.client) is self:
            del self.port.sessions[self.client]


class UDPServices:
    """The sockets of UDP services on ``host``: :meth:`update` with the resolved entries
    opens and closes them; :meth:`close` closes them and every session. ``responses``:
    ``proxy-stream-responses`` (serve sets it from the ConfigMap). ``drain_timeout`` is
    TCPServices' argument, unused: a session's replies leave from its port's socket."""

    def __init__(self, settings: ProxySettings | None = None, *, host: str = "0.0.0.0",
                 max_connections: int | None = None,
                 drain_timeout: float | None = None) -> None:
        self.settings = settings or ProxySettings()
        self.host = host
        self.max_connections = max_connections
        self.responses = 1
        self.loop = asyncio.get_running_loop()
        self.sessions: set[_Session] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.draining = False
        self._ports: dict[int, _Port] = {}
        self._full = False

    @property
    def ports(self) -> list[int]:
        """The ports listened on, sorted."""
        return sorted(self._ports)

    def stopping(self) -> bool:
        """Whether :meth:`close` was called."""
        return self.draining

    def address(self, port: int) -> Any:
        """The socket address of external ``port`` (for a test given port 0)."""
        transport = self._ports[port].transport
        return None if transport is None else transport.get_extra_info("sockname")

    def received(self, port: _Port, data: bytes, addr: Any) -> None:
        session = port.sessions.get(addr)
        if session is None:
            if self.draining or not port.target.endpoints:
                return
            if self.max_connections is not None and len(self.sessions) >= self.max_connections:
                if not self._full:
                    self._full = True
                    _log.warning("UDP services: %d sessions: datagrams of new clients are "
                                 "dropped (--max-connections)", len(self.sessions))
                return
            self._full = False
            session = _Session(self, port, addr, port.order())
            session.start()
        session.send(data)

    async def _bind(self, number: int) -> socket.socket:
        """A non-blocking datagram socket bound to ``host:number``."""
        infos = await self.loop.getaddrinfo(self.host, number, type=socket.SOCK_DGRAM,
                                            flags=socket.AI_PASSIVE)
        if not infos:
            raise OSError(errno.EADDRNOTAVAIL, f"{self.host}: no address")
        family, _, proto, _, addr = infos[0]
        sock = socket.socket(family, socket.SOCK_DGRAM, proto)
        try:
            sock.setblocking(False)
            sock.bind(addr)
        except BaseException:
            sock.close()
            raise
        return sock

    def _retarget(self, port: _Port, target: TCPServiceTarget) -> None:
        port.target = target
        # A session whose endpoint is no longer resolved ends (a pod gone; its address may
        # be another's soon): the client's next datagram begins one with a current endpoint.
        wanted = set(target.endpoints)
        for session in list(port.sessions.values()):
            if session.endpoint not in wanted:
                session.close()

    async def update(self, targets: Sequence[TCPServiceTarget],
                     settings: ProxySettings | None = None) -> list[str]:
        """Listens on each target's port, no longer on the others (their sessions end); a port
        already open takes the new target for its next sessions (those of an endpoint it no
        longer has end). Returns one message per port that could not be opened."""
        if self.draining:
            return []
        if settings is not None:
            self.settings = settings
            for session in self.sessions:   # (a timeout that was 0 now bounds them too)
                if session.timer is None:
                    session._arm()
        wanted = {t.port: t for t in targets}
        for number in [p for p in self._ports if p not in wanted]:
            self._close_port(self._ports.pop(number))
            _log.info("UDP services: port %d closed", number)
        failed: list[str] = []
        for number, target in sorted(wanted.items()):
            known = self._ports.get(number)
            if known is not None:
                if known.target.endpoints != target.endpoints:
                    self._retarget(known, target)
                else:
                    known.target = target
                continue
            sock: socket.socket | None = None
            try:
                sock = await self._bind(number)
                port = _Port(target, sock)
                await self.loop.create_datagram_endpoint(
                    functools.partial(_Listen, self, port), sock=sock)
            except OSError as e:
                if sock is not None:
                    sock.close()
                failed.append(f"UDP services: port {number}: cannot listen: {e}")
                continue
            except BaseException:
                if sock is not None:
                    sock.close()
                raise
            if self.stopping():   # close() ran while this port opened
                self._close_port(port)
                return failed
            self._ports[number] = port
            ent = target.entry
            _log.info("UDP services: port %d -> %s/%s:%s", number, ent.namespace, ent.service,
                      ent.service_port)
        return failed

    def _close_port(self, port: _Port) -> None:
        for session in list(port.sessions.values()):
            session.close()
        if port.transport is not None:
            port.transport.close()
        else:
            port.sock.close()

    async def close(self, timeout: float = 0.0) -> None:
        """Closes every socket and session (``timeout``: TCPServices', unused)."""
        self.draining = True
        for port in self._ports.values():
            self._close_port(port)
        self._ports.clear()
        for session in list(self.sessions):
            session.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.sleep(0)
