"""ingress-nginx's TCP services (``--tcp-services-configmap``) served: one listener per entry
(:mod:`ingresslib._tcp_services`), each connection piped to one of the Service's endpoints.

nginx.tmpl's ``stream`` block writes, per entry, ``listen <port> [proxy_protocol]``,
``proxy_timeout`` (``proxy-stream-timeout``, 600s), ``proxy_next_upstream``
(``proxy-stream-next-upstream``, on), ``proxy_next_upstream_timeout`` (600s) and
``proxy_next_upstream_tries`` (3), ``proxy_pass upstream_balancer`` (``tcp_udp_balancer.lua``
picks an endpoint round-robin) and, with the 4th field, ``proxy_protocol on``. Here the same:
an endpoint is picked round-robin; a connect that fails (refused, or past
``proxy-connect-timeout``: the stream block sets no ``proxy_connect_timeout``, so nginx's 60s
applies there, ingresslib's HTTP setting, 5s by default, here) is tried on the next
endpoint while ``proxy-stream-next-upstream`` is on, for at most
``proxy-stream-next-upstream-tries`` connects in all (0: each endpoint once) within
``proxy-stream-next-upstream-timeout`` (0: none); ``proxy-stream-timeout`` of quiet (no byte
either way) closes both sides. The pipe is :class:`PassthroughPipe`'s (flow control both ways,
a bounded flush on close).

PROXY protocol: with the 3rd field the client's first bytes must be a v1 or v2 header
(:class:`ProxyProtocolReader`; a broken one, or none within ``proxy-protocol-header-timeout``
(0: nginx stream's 30s), closes the connection, as nginx does). With the 4th, a v1 header
goes to the backend first, naming the client: the TCP peer, or the header's source when the
peer is trusted (``enable-real-ip`` and inside ``proxy-real-ip-cidr``: nginx.tmpl's stream
block writes ``set_real_ip_from`` only then, and nginx stream's realip module takes the PROXY
protocol address from such a peer).

:meth:`TCPServices.update` applies a new set of entries: new ports open, removed ones close
(their connections go on, for at most ``drain_timeout``: serve's ``--shutdown-timeout``, as
nginx's old workers keep theirs for at most ``worker_shutdown_timeout``), a changed target
applies to new connections.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Sequence
from typing import Any

from ._passthrough_pipe import PassthroughPipe, _Side
from ._serve_limits import out_of_fds, pace_accepts
from ._tcp_services import TCPServiceTarget
from .proxy._headers import TrustPolicy
from .proxy._proxy_protocol import ProxyHeader, ProxyProtocolError, ProxyProtocolReader
from .proxy._settings import ProxySettings

__all__ = ["TCPServices"]

_log = logging.getLogger("ingresslib.server")

#: nginx stream's ``proxy_protocol_timeout`` default (the stream block sets none): the wait for
#: a client's PROXY header when ``proxy-protocol-header-timeout`` is 0.
PROXY_PROTOCOL_TIMEOUT = 30.0


def proxy_v1_header(source: tuple[str, int], destination: tuple[str, int]) -> bytes:
    """A PROXY protocol v1 line naming ``source`` -> ``destination`` (nginx
    ``ngx_proxy_protocol_write``: ``ngx_sock_ntop`` writes an IPv6 address without its zone,
    and the PROXY protocol has no place for one: ``fe80::1%eth0`` is written ``fe80::1``)."""
    source = (source[0].partition("%")[0], source[1])
    destination = (destination[0].partition("%")[0], destination[1])
    family = "TCP6" if ":" in source[0] else "TCP4"
    if (":" in destination[0]) != (family == "TCP6"):
        destination = ("::" if family == "TCP6" else "0.0.0.0", destination[1])
    return (f"PROXY {family} {source[0]} {destination[0]} {source[1]} {destination[1]}\r\n"
            .encode("ascii"))


class _Listener:
    """One external port: its target (replaced on reload) and the round-robin position."""

    def __init__(self, target: TCPServiceTarget) -> None:
        self.target = target
        self.next = 0
        self.server: asyncio.Server | None = None

    def order(self) -> list[tuple[str, int]]:
        """The endpoints in the order this connection tries them (round-robin start)."""
        eps = self.target.endpoints
        start = self.next % len(eps)
        self.next = start + 1
        return list(eps[start:]) + list(eps[:start])


class _StreamPipe(PassthroughPipe):
    """A :class:`PassthroughPipe` whose connect tries the next endpoint on failure."""

    what = "TCP services"

    def __init__(self, owner: TCPServices, client: asyncio.Transport, first: bytes,
                 endpoints: list[tuple[str, int]], header: bytes) -> None:
        super().__init__(owner, client, first, endpoints[0])
        self.candidates = endpoints
        self.idle = owner.settings.proxy_stream_timeout
        self.header = header
        #: The external port (for the log), and its listener (a removed one's pipes are cut
        #: after ``TCPServices.drain_timeout``).
        self.port = 0
        self.listener: _Listener | None = None

    async def _connect(self) -> None:
        s = self.server.settings
        loop = self.loop
        tries = s.proxy_stream_next_upstream_tries if s.proxy_stream_next_upstream else 1
        if not tries:
            # 0 ("no limit"): each endpoint once, as nginx's round-robin peers (peer.tries =
            # the number of servers). Never a loop of refused connects: that ran ~10,000
            # connects a second, for ever with a timeout of 0, and held the connection (and
            # its --max-connections place) after its client had gone.
            tries = len(self.candidates)
        budget = s.proxy_stream_next_upstream_timeout if s.proxy_stream_next_upstream else 0.0
        began = loop.time()
        n = 0
        transport: Any = None
        while transport is None:
            host, port = self.endpoint = self.candidates[n % len(self.candidates)]
            n += 1
            try:
                async with asyncio.timeout(self.connect_timeout or None):
                    transport, _ = await loop.create_connection(
                        lambda: _Side(self, False), host, port)
            except (OSError, TimeoutError) as e:
                _log.debug("TCP services: connect to %s:%d failed: %r", host, port, e)
                if out_of_fds(e, "TCP services: upstream connect"):
                    self.close()   # (the next endpoint would fail alike; logged once a minute)
                    return
                if (tries and n >= tries) or (budget and loop.time() - began >= budget):
                    _log.warning("TCP services: port %d: no endpoint answered (%d tried)",
                                 self.port, n)
                    self.close()
                    return
            except Exception:  # noqa: BLE001 - this connection fails, never the server
                # (as PassthroughPipe: a pipe left unclosed would hold its client paused)
                _log.exception("TCP services: connect to %s:%d failed", host, port)
                self.close()
                return
        assert isinstance(transport, asyncio.Transport)
        self._connected(transport, self.header)


class _Accept(asyncio.Protocol):
    """A new connection: its PROXY protocol header read first when the entry says so, then
    handed to a :class:`_StreamPipe`."""

    def __init__(self, owner: TCPServices, listener: _Listener) -> None:
        self.owner = owner
        self.listener = listener
        self.target = listener.target   # the target when the connection came
        self.reader = ProxyProtocolReader() if self.target.entry.decode_proxy else None
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        owner = self.owner
        if owner.draining or (owner.max_connections is not None
                              and owner.active() >= owner.max_connections):
            transport.abort()
            return
        owner.handshaking.add(self)
        if self.reader is None:
            self._start(None, b"")
            return
        # 0 ("no limit" for HTTP, whose client_header_timeout still bounds the wait): nginx
        # stream's own proxy_protocol_timeout, never a client held for ever.
        wait = owner.settings.proxy_protocol_header_timeout or PROXY_PROTOCOL_TIMEOUT
        self.timer = owner.loop.call_later(wait, self._give_up)

    def data_received(self, data: bytes) -> None:
        assert self.reader is not None and self.transport is not None
        try:
            header = self.reader.feed(data)
        except ProxyProtocolError as e:
            _log.info("TCP services: port %d: %s", self.target.port, e)
            self._give_up()
            return
        if header is not None:
            self._start(header, self.reader.rest)

    def eof_received(self) -> bool:
        self._give_up()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._done()

    def _give_up(self) -> None:
        self._done()
        if self.transport is not None:
            self.transport.abort()

    def _done(self) -> None:
        self.owner.handshaking.discard(self)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _start(self, header: ProxyHeader | None, rest: bytes) -> None:
        self._done()
        transport = self.transport
        assert isinstance(transport, asyncio.Transport)
        target = self.target
        out = b""
        if target.entry.encode_proxy:
            peer = transport.get_extra_info("peername") or ("0.0.0.0", 0)
            local = transport.get_extra_info("sockname") or ("0.0.0.0", 0)
            source = (peer[0], peer[1])
            if header is not None and header.source is not None \
                    and self.owner.trusted(peer[0]):
                source = header.source
            out = proxy_v1_header(source, (local[0], local[1]))
        pipe = _StreamPipe(self.owner, transport, rest, self.listener.order(), out)
        pipe.port = target.port
        pipe.listener = self.listener
        pipe.start()


@functools.lru_cache(maxsize=8)
def _trust_policy(cidrs: tuple[str, ...]) -> TrustPolicy:
    """``cidrs`` (``proxy-real-ip-cidr``) read as nginx reads them: 7 µs for one CIDR, 136 µs
    for twenty, too much to pay per connection; one list per ConfigMap, a few edits kept."""
    return TrustPolicy(cidrs)


class TCPServices:
    """The listeners of TCP services on ``host``: :meth:`update` with the resolved entries
    (:func:`ingresslib._tcp_services.resolve_tcp_services`) opens and closes them;
    :meth:`close` closes them all and cuts the connections left after ``timeout``.

    ``max_connections``: connections (piped, or reading their PROXY header) past it are
    closed at once (serve's ``--max-connections``, counted apart from the HTTP ones).
    ``drain_timeout``: the connections of a port an update removed are cut this long after
    (serve's ``--shutdown-timeout``, as nginx's old workers end theirs within
    ``worker_shutdown_timeout`` after a reload); None: they go on until they end."""

    def __init__(self, settings: ProxySettings | None = None, *, host: str = "0.0.0.0",
                 max_connections: int | None = None,
                 drain_timeout: float | None = None) -> None:
        self.settings = settings or ProxySettings()
        self.host = host
        self.max_connections = max_connections
        self.loop = asyncio.get_running_loop()
        #: PassthroughPipe's names: the pipes held, whether stopping.
        self.passthrough: set[PassthroughPipe] = set()
        self.handshaking: set[_Accept] = set()
        self.draining = False
        self.pool: Any = None
        self._listeners: dict[int, _Listener] = {}
        self.drain_timeout = drain_timeout
        self._cuts: set[asyncio.TimerHandle] = set()

    @property
    def ports(self) -> list[int]:
        """The ports listened on, sorted."""
        return sorted(self._listeners)

    def stopping(self) -> bool:
        """Whether :meth:`close` was called."""
        return self.draining

    def active(self) -> int:
        return len(self.passthrough) + len(self.handshaking)

    def trusted(self, peer: str) -> bool:
        s = self.settings
        if not s.enable_real_ip or not s.proxy_real_ip_cidr:
            return False
        # As the HTTP proxy decides it (``TrustPolicy``): nginx stream's realip module asks
        # ngx_cidr_match(), which compares a dual-stack listener's ::ffff:a.b.c.d peer as
        # a.b.c.d ("if (IN6_IS_ADDR_V4MAPPED(inaddr6)) { family = AF_INET; ..."). The CIDRs
        # are valid (ProxySettings checks them), read once per list (``_trust_policy``), not
        # once per PROXY-protocol connection.
        return _trust_policy(s.proxy_real_ip_cidr).trusted(peer)

    async def update(self, targets: Sequence[TCPServiceTarget],
                     settings: ProxySettings | None = None) -> list[str]:
        """Listens on each target's port, no longer on the others; a listener already open
        takes the new target for its next connections. Returns one message per port that
        could not be opened (that port is left out; the others serve)."""
        if self.draining:
            # Closed (serve stopping): a reload that lands now opens nothing, else its ports
            # would listen past close() with no one left to close them.
            return []
        if settings is not None:
            self.settings = settings
        wanted = {t.port: t for t in targets}
        for port in [p for p in self._listeners if p not in wanted]:
            listener = self._listeners.pop(port)
            if listener.server is not None:
                listener.server.close()
            _log.info("TCP services: port %d closed", port)
            if self.drain_timeout is not None:
                self._cut_later(listener, self.drain_timeout)
        failed: list[str] = []
        for port, target in sorted(wanted.items()):
            known = self._listeners.get(port)
            if known is not None:
                known.target = target
                continue
            listener = _Listener(target)
            try:
                listener.server = await self._listen(listener, port)
            except OSError as e:
                failed.append(f"TCP services: port {port}: cannot listen: {e}")
                continue
            if self.stopping():   # close() ran while this port opened
                listener.server.close()
                return failed
            self._listeners[port] = listener
            ent = target.entry
            _log.info("TCP services: port %d -> %s/%s:%s", port, ent.namespace, ent.service,
                      ent.service_port)
        return failed

    async def _listen(self, listener: _Listener, port: int) -> asyncio.Server:
        """``listener``'s server on ``port``, serving, its accepts paced: out of file
        descriptors, one error and a second's pause, not one error per backlog slot
        (``pace_accepts``, as the HTTP/HTTPS listeners; nginx's ``ngx_event_accept`` disables
        accept events for a while on EMFILE/ENFILE)."""
        server = await self.loop.create_server(
            functools.partial(_Accept, self, listener), self.host, port, start_serving=False)
        try:
            pace_accepts(server)
            await server.start_serving()   # (listen(): may fail as the bind could)
        except BaseException:
            server.close()
            raise
        return server

    def _cut_later(self, listener: _Listener, delay: float) -> None:
        def cut() -> None:
            self._cuts.discard(handle)
            for h in [h for h in self.handshaking if h.listener is listener]:
                h._give_up()
            for pipe in list(self.passthrough):
                if isinstance(pipe, _StreamPipe) and pipe.listener is listener:
                    pipe.abort()

        handle = self.loop.call_later(max(delay, 0.0), cut)
        self._cuts.add(handle)

    async def close(self, timeout: float = 0.0) -> None:
        """Stops listening; the pipes left get ``timeout`` seconds to end, then are cut."""
        self.draining = True
        for handle in self._cuts:
            handle.cancel()
        self._cuts.clear()
        for listener in self._listeners.values():
            if listener.server is not None:
                listener.server.close()
        self._listeners.clear()
        for h in list(self.handshaking):
            h._give_up()
        end = self.loop.time() + max(timeout, 0.0)
        while self.passthrough and self.loop.time() < end:
            await asyncio.sleep(0.05)
        for pipe in list(self.passthrough):
            pipe.abort()
        await asyncio.sleep(0)
