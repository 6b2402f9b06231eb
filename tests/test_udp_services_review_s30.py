"""Review of UDP services (session 30): one endpoint resolver for HTTP, TCP and UDP
(``EndpointIndex.resolve(..., protocol=)``, as ingress-nginx's getStreamServices passes its
``proto``), and the sessions attacked: 0-byte datagrams (nginx 1.19.1 relays them), a burst
against a full send buffer (dropped, not queued), a reload that drops a session's endpoint,
a timeout that a reload turns on, spoofed source ports against the session bound (file
descriptors counted), a stranger's datagram to an upstream socket, an ICMP unreachable after a
reply, TCP and UDP on one port number, an IPv6 host, ``--namespace`` with a ConfigMap elsewhere.
Every datagram goes to 127.0.0.1 / ::1 sockets these tests open."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from ingresslib import ProxySettings, parse_manifests
from ingresslib import _udp_proxy
from ingresslib._cli import main
from ingresslib._endpoints import EndpointIndex
from ingresslib._tcp_proxy import TCPServices
from ingresslib._tcp_services import TCPServiceEntry, TCPServiceTarget, resolve_tcp_services
from ingresslib._udp_proxy import UDPServices

# --- one resolver -----------------------------------------------------------------------

_DNS = """\
apiVersion: v1
kind: Service
metadata: {name: dns, namespace: default}
spec:
  ports:
  - {name: dns-tcp, port: 53, protocol: TCP, targetPort: 5353}
  - {name: dns, port: 53, protocol: UDP, targetPort: 5354}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: dns-1, namespace: default, labels: {kubernetes.io/service-name: dns}}
addressType: IPv4
ports:
- {name: dns-tcp, port: 5353, protocol: TCP}
- {name: dns, port: 5354, protocol: UDP}
endpoints:
- addresses: [10.0.0.1]
---
apiVersion: v1
kind: Service
metadata: {name: syslog, namespace: default}
spec:
  ports:
  - {port: 514, protocol: UDP, targetPort: 5514}
---
apiVersion: v1
kind: Endpoints
metadata: {name: syslog, namespace: default}
subsets:
- addresses: [{ip: 10.0.0.2}]
  ports: [{port: 5514, protocol: UDP}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  ports:
  - {name: http, port: 80, protocol: TCP, targetPort: 8080}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports:
- {name: http, port: 8080}
endpoints:
- addresses: [10.0.0.3]
---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: default}
spec:
  type: ExternalName
  externalName: dns.example.com
  ports:
  - {name: dns, port: 53, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata: {name: bare, namespace: default}
spec: {type: ExternalName, externalName: dns.example.com}
"""


def test_one_resolver_reads_each_protocols_ports() -> None:
    ix = EndpointIndex(parse_manifests(_DNS))
    # The same number for TCP and UDP: each protocol gets its own port (getStreamServices:
    # "if sp.Port == int32(targetPort) { if sp.Protocol == proto {"). (One name for both is
    # refused by the load, as by the API server: "Duplicate value".)
    assert ix.resolve("default", "dns", 53).endpoints == (("10.0.0.1", 5353),)
    assert ix.resolve("default", "dns", 53, protocol="UDP").endpoints == (("10.0.0.1", 5354),)
    assert ix.resolve("default", "dns", "dns", protocol="UDP").endpoints == (
        ("10.0.0.1", 5354),)
    assert "is UDP, not TCP" in (ix.resolve("default", "dns", "dns").reason or "")
    assert "is TCP, not UDP" in (ix.resolve("default", "dns", "dns-tcp", protocol="UDP").reason
                                 or "")
    # v1 Endpoints: the UDP port of the subset.
    assert ix.resolve("default", "syslog", 514, protocol="UDP").endpoints == (
        ("10.0.0.2", 5514),)
    assert "is UDP, not TCP" in (ix.resolve("default", "syslog", 514).reason or "")
    # A slice port without a protocol is TCP (the API server's default): not a UDP one.
    web = ix.resolve("default", "web", 80, protocol="UDP")
    assert web.endpoints == () and "is TCP, not UDP" in (web.reason or "")
    # An ExternalName Service relays to its DNS name at a UDP port, as for TCP services
    # (getEndpoints: the ExternalName at the port's target); with no port of its own, UDP
    # gets nothing (only HTTP makes one up: ingress-nginx externalNamePorts).
    assert ix.resolve("default", "ext", 53, protocol="UDP").endpoints == (
        ("dns.example.com", 53),)
    assert ix.resolve("default", "bare", 53).endpoints == (("dns.example.com", 53),)
    assert ix.resolve("default", "bare", 53, protocol="UDP").endpoints == ()
    # The memo keeps the protocols apart.
    assert ix.resolve("default", "dns", 53).endpoints == (("10.0.0.1", 5353),)
    assert not hasattr(_udp_proxy, "UDPEndpointIndex")


def test_resolve_tcp_services_with_udp_says_why_in_udp_terms() -> None:
    res = parse_manifests(_DNS + "---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
                          "metadata: {name: web-2, namespace: default, labels: "
                          "{kubernetes.io/service-name: syslog}}\naddressType: IPv4\n"
                          "ports: [{name: x, port: 1, protocol: UDP}]\nendpoints: []\n")
    entries = [TCPServiceEntry(53, "default", "dns", "dns"),
               TCPServiceEntry(54, "default", "syslog", 514)]
    targets, warnings = resolve_tcp_services(entries, res, protocol="UDP")
    assert [(t.port, t.endpoints) for t in targets] == [(53, (("10.0.0.1", 5354),))]
    assert len(warnings) == 1 and "UDP services: port 54" in warnings[0]
    assert "has no UDP port without a name" in warnings[0], warnings


# --- the sessions -----------------------------------------------------------------------


class _Backend(asyncio.DatagramProtocol):
    """A UDP server on 127.0.0.1: each datagram answered ``replies`` times with ``prefix +
    data`` (``prefix`` b"": an exact echo)."""

    def __init__(self, prefix: bytes = b"", replies: int = 1, size: int = 0) -> None:
        self.prefix = prefix
        self.replies = replies
        self.size = size
        self.seen: list[tuple[Any, bytes]] = []
        self.transport: Any = None
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.port = 0

    async def start(self) -> _Backend:
        self.sock.setblocking(False)
        self.sock.bind(("127.0.0.1", 0))
        self.transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: self, sock=self.sock)
        self.port = self.sock.getsockname()[1]
        return self

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.seen.append((addr, data))
        for _ in range(self.replies):
            try:   # (the socket itself: asyncio's sendto skips b"")
                self.sock.sendto(b"r" * self.size if self.size else self.prefix + data, addr)
            except BlockingIOError:
                pass

    def close(self) -> None:
        self.transport.close()


class _Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.got: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport: Any = None
        self.sock: socket.socket | None = None

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.got.put_nowait(data)

    async def open(self, port: int, host: str = "127.0.0.1") -> _Client:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sock.connect((host, port))
        self.transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: self, sock=self.sock)
        return self

    def send(self, data: bytes) -> None:
        assert self.sock is not None
        self.sock.send(data)   # (asyncio's sendto skips b"")

    async def ask(self, data: bytes) -> bytes:
        self.send(data)
        return await self.next()

    async def next(self, wait: float = 1.5) -> bytes:
        return await asyncio.wait_for(self.got.get(), wait)

    async def nothing(self, wait: float = 0.2) -> bool:
        try:
            await asyncio.wait_for(self.got.get(), wait)
        except TimeoutError:
            return True
        return False

    def close(self) -> None:
        self.transport.close()


def _target(port: int, *backends: int) -> TCPServiceTarget:
    return TCPServiceTarget(TCPServiceEntry(port, "default", "dns", 53),
                            tuple(("127.0.0.1", b) for b in backends))


def _run(body: Callable[[UDPServices], Awaitable[None]], *, responses: int = 1,
         max_connections: int | None = None, host: str = "127.0.0.1", **settings: Any) -> None:
    async def go() -> None:
        udp = UDPServices(ProxySettings(**settings), host=host, max_connections=max_connections)
        udp.responses = responses
        try:
            await body(udp)
        finally:
            await udp.close()

    asyncio.run(go())


async def _listen(udp: UDPServices, target: TCPServiceTarget) -> int:
    assert await udp.update([target]) == []
    return int(udp.address(target.port)[1])


async def _until(check: Callable[[], bool]) -> None:
    """Waits (at most 2 s) for ``check()``."""
    deadline = asyncio.get_running_loop().time() + 2
    while not check():
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.01)


def test_a_datagram_of_zero_bytes_is_relayed_both_ways() -> None:
    # nginx 1.19.1: "Bugfix: zero length UDP datagrams were not proxied". asyncio's sendto
    # skips an empty datagram: the client's was counted, never sent, and the session waited
    # for a reply that could not come.
    async def body(udp: UDPServices) -> None:
        echo, tagged = await _Backend().start(), await _Backend(b"a:").start()
        port = await _listen(udp, _target(0, tagged.port))
        c = await _Client().open(port)
        assert await c.ask(b"") == b"a:"          # the empty datagram reached the endpoint
        assert [d for _, d in tagged.seen] == [b""]
        assert not udp.sessions                    # one datagram, one reply: done
        await udp.update([_target(0, echo.port)])
        port = udp.address(0)[1]
        c2 = await _Client().open(port)
        assert await c2.ask(b"") == b""            # the endpoint's empty reply came back
        assert not udp.sessions
        for x in (c, c2, echo, tagged):
            x.close()

    _run(body)


def test_the_largest_ipv4_datagram_goes_both_ways_whole() -> None:
    async def body(udp: UDPServices) -> None:
        echo = await _Backend().start()
        port = await _listen(udp, _target(0, echo.port))
        c = await _Client().open(port)
        big = bytes(range(256)) * 255 + b"z" * 227   # 65,507 bytes: 65,535 - 20 - 8
        assert len(big) == 65_507
        assert await c.ask(big) == big
        assert [len(d) for _, d in echo.seen] == [65_507]
        c.close()
        echo.close()

    _run(body)


def test_a_burst_against_a_full_send_buffer_is_dropped_not_queued(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The kernel says "would block" on the upstream socket (its send buffer full): asyncio
    # queues each datagram in the transport without bound unless the protocol stops; a burst
    # of 10,000 must stay within the high-water mark, the rest dropped as UDP drops them.
    async def body(udp: UDPServices) -> None:
        a = await _Backend(b"a:").start()
        real_send = socket.socket.send

        def full(self: socket.socket, data: Any, *args: Any) -> int:
            try:
                peer = self.getpeername()
            except OSError:
                peer = None
            if peer == ("127.0.0.1", a.port):
                raise BlockingIOError(11, "would block")
            return real_send(self, data, *args)

        port = await _listen(udp, _target(0, a.port))
        c = await _Client().open(port)
        monkeypatch.setattr(socket.socket, "send", full)
        size = 1000
        for i in range(10_000):
            c.send(b"x" * size)
            if i % 20 == 19:
                await asyncio.sleep(0)   # the proxy reads what came
        await asyncio.sleep(0.05)
        [session] = udp.sessions
        assert session.transport is not None
        buffered = session.transport.get_write_buffer_size()
        assert 0 < buffered <= 64 * 1024 + size
        # Only the datagrams sent (here: queued) await a reply.
        assert session.requests * size == buffered
        monkeypatch.undo()
        c.close()
        a.close()

    _run(body, responses=5)


def test_replies_against_a_full_listening_socket_are_dropped_not_queued(
        monkeypatch: pytest.MonkeyPatch) -> None:
    async def body(udp: UDPServices) -> None:
        a = await _Backend(replies=2000, size=8000).start()
        port = await _listen(udp, _target(0, a.port))
        c = await _Client().open(port)
        assert c.sock is not None
        me = c.sock.getsockname()
        real_sendto = socket.socket.sendto

        def full(self: socket.socket, data: Any, *args: Any) -> int:
            if args and args[-1] == me:
                raise BlockingIOError(11, "would block")
            return real_sendto(self, data, *args)   # type: ignore[arg-type]

        monkeypatch.setattr(socket.socket, "sendto", full)
        c.send(b"q")
        await _until(lambda: len(a.seen) == 1)
        await asyncio.sleep(0.1)   # the replies come in (those the kernel kept)
        [session] = udp.sessions
        out = udp._ports[0].transport
        assert out is not None and session.responses * 8000 > 64 * 1024 + 8000
        assert 0 < out.get_write_buffer_size() <= 64 * 1024 + 8000
        monkeypatch.undo()
        c.close()
        a.close()

    _run(body, responses=5000)


def test_a_silent_endpoints_session_keeps_64_kib_for_a_retry_not_a_mebibyte() -> None:
    # Until the first reply a session keeps the client's datagrams for the next endpoint; an
    # endpoint that never answers held 16 of up to 64 KiB each for proxy-stream-timeout, in
    # each of --max-connections sessions (spoofed source ports make those for free).
    async def body(udp: UDPServices) -> None:
        silent = await _Backend(replies=0).start()
        port = await _listen(udp, _target(0, silent.port))
        c = await _Client().open(port)
        for i in range(20):
            c.send(bytes([i]) * 60_000)
            await _until(lambda: len(silent.seen) == i + 1)   # (one at a time: none lost)
        [session] = udp.sessions
        assert session.pending is not None and session.requests == 20
        assert sum(map(len, session.pending)) <= 65_536
        assert session.pending[0] == bytes([0]) * 60_000   # the first is always kept
        c.close()
        silent.close()

    _run(body, responses=1)


def test_a_reload_that_drops_the_endpoint_of_a_session_ends_it() -> None:
    async def body(udp: UDPServices) -> None:
        a, b = await _Backend(b"a:").start(), await _Backend(b"b:").start()
        port = await _listen(udp, _target(0, a.port, b.port))
        c1, c2 = await _Client().open(port), await _Client().open(port)
        assert await c1.ask(b"1") == b"a:1"
        assert await c2.ask(b"2") == b"b:2"
        [keep] = [s for s in udp.sessions if s.endpoint == ("127.0.0.1", b.port)]
        # a leaves the Service: its session ends, b's goes on with its endpoint.
        assert await udp.update([_target(0, b.port)]) == []
        assert udp.sessions == {keep}
        assert await c1.ask(b"3") == b"b:3"     # a new session, a current endpoint
        assert await c2.ask(b"4") == b"b:4"
        assert keep in udp.sessions
        assert [d for _, d in a.seen] == [b"1"]
        for x in (c1, c2, a, b):
            x.close()

    _run(body, responses=5)


def test_a_timeout_a_reload_sets_bounds_the_sessions_already_there() -> None:
    # proxy-stream-timeout 0 (no bound) when the session began, 0.1s after a reload: the
    # session held ends too (it had no timer at all).
    async def body(udp: UDPServices) -> None:
        a = await _Backend(b"a:").start()
        port = await _listen(udp, _target(0, a.port))
        c = await _Client().open(port)
        assert await c.ask(b"1") == b"a:1"
        assert len(udp.sessions) == 1
        await udp.update([_target(0, a.port)], ProxySettings(proxy_stream_timeout=0.1))
        await _until(lambda: not udp.sessions)
        c.close()
        a.close()

    _run(body, responses=5, proxy_stream_timeout=0)


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_spoofed_source_ports_hold_the_bound_and_every_end_closes_its_socket() -> None:
    async def body(udp: UDPServices) -> None:
        a = await _Backend(b"a:").start()
        port = await _listen(udp, _target(0, a.port))
        clients = [await _Client().open(port) for _ in range(40)]
        base = _fds()
        for i, c in enumerate(clients):
            c.send(b"%d" % i)
        await _until(lambda: len(a.seen) == 10)
        await asyncio.sleep(0.05)
        # 10 sessions (--max-connections), one upstream socket each; the 30 others dropped.
        assert len(udp.sessions) == 10 and len({x for x, _ in a.seen}) == 10
        assert _fds() == base + 10
        # The timeout (0.2s) ends them all: their sockets are closed.
        await _until(lambda: not udp.sessions)
        await asyncio.sleep(0.01)
        assert _fds() == base
        # New sessions, then close() while their upstream sockets are still opening.
        for c in clients[:5]:
            c.send(b"again")
        await asyncio.sleep(0)
        await udp.close()
        for _ in range(3):
            await asyncio.sleep(0.01)
        assert _fds() == base - 1    # (the port's own socket too)
        for c in clients:
            c.close()
        a.close()

    _run(body, responses=5, max_connections=10, proxy_stream_timeout=0.2)


def test_a_stranger_cannot_answer_for_the_endpoint() -> None:
    # The upstream socket is connected: the kernel drops a datagram from another address, and
    # nothing from it reaches the client.
    async def body(udp: UDPServices) -> None:
        a = await _Backend(b"a:").start()
        port = await _listen(udp, _target(0, a.port))
        c = await _Client().open(port)
        assert await c.ask(b"1") == b"a:1"
        [session] = udp.sessions
        assert session.transport is not None
        where = session.transport.get_extra_info("sockname")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger:
            stranger.sendto(b"forged", where)
        assert await c.nothing()
        assert session.responses == 1
        c.close()
        a.close()

    _run(body, responses=5)


def test_unreachable_after_a_reply_ends_the_session_without_a_next_endpoint() -> None:
    # ngx_stream_proxy_process: "if (c->type == SOCK_DGRAM && u->received == 0)" only then the
    # next upstream; after a reply the session ends.
    async def body(udp: UDPServices) -> None:
        a, b = await _Backend(b"a:").start(), await _Backend(b"b:").start()
        port = await _listen(udp, _target(0, a.port, b.port))
        c = await _Client().open(port)
        assert await c.ask(b"1") == b"a:1"
        a.close()                 # now refused (ICMP port unreachable)
        await asyncio.sleep(0.01)
        c.send(b"2")
        await _until(lambda: not udp.sessions)
        assert b.seen == []
        c.close()
        b.close()

    _run(body, responses=5)


def test_tcp_and_udp_on_one_port_number_close_apart() -> None:
    async def body(udp: UDPServices) -> None:
        a = await _Backend(b"a:").start()

        async def echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            w.write(b"tcp:" + await r.read(10))
            await w.drain()
            w.close()

        tcp_backend = await asyncio.start_server(echo, "127.0.0.1", 0)
        tcp_backend_port = tcp_backend.sockets[0].getsockname()[1]
        with socket.socket() as t:
            t.bind(("127.0.0.1", 0))
            number = t.getsockname()[1]
        tcp = TCPServices(ProxySettings(), host="127.0.0.1")
        try:
            assert await tcp.update([_target(number, tcp_backend_port)]) == []
            assert await udp.update([_target(number, a.port)]) == []
            c = await _Client().open(number)
            assert await c.ask(b"u") == b"a:u"
            assert await udp.update([]) == []         # UDP's key removed, TCP's kept
            c.send(b"v")
            assert await c.nothing()
            r, w = await asyncio.open_connection("127.0.0.1", number)
            w.write(b"t")
            assert await asyncio.wait_for(r.read(), 1.5) == b"tcp:t"
            w.close()
            c.close()
        finally:
            await tcp.close()
            tcp_backend.close()
            a.close()

    _run(body)


def test_an_ipv6_host_serves_ipv6_clients() -> None:
    async def body(udp: UDPServices) -> None:
        a = await _Backend(b"a:").start()
        port = await _listen(udp, _target(0, a.port))
        assert udp.address(0)[0] == "::1"
        c = await _Client().open(port, "::1")
        assert await c.ask(b"1") == b"a:1"
        [session] = udp.sessions
        assert session.client[:2] == c.transport.get_extra_info("sockname")[:2]
        c.close()
        a.close()

    _run(body, host="::1", responses=5)


@pytest.mark.parametrize("flag", ["--udp-services-configmap", "--tcp-services-configmap"])
def test_serve_refuses_a_services_configmap_outside_its_namespace(
        flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    # Only --namespace's ConfigMaps are listed: one elsewhere could never be read
    # (kubernetes/ingress-nginx#7159), as for --default-ssl-certificate.
    code = main(["serve", "--kubernetes", "--namespace", "apps", flag, "ingress/udp",
                 "--kubeconfig", "/nonexistent/kubeconfig"])
    assert code == 2
    err = capsys.readouterr().err
    assert f"{flag} ingress/udp: outside --namespace apps" in err
