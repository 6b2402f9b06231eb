"""UDP services (ingress-nginx ``--udp-services-configmap``): the ConfigMap read as TCP's
without the PROXY fields, the Services' UDP ports resolved (``EndpointIndex`` with
``protocol="UDP"``),
the sessions (``_udp_proxy.UDPServices``: one per client address, round-robin per session,
``proxy-stream-responses``, ``proxy-stream-timeout``, the next endpoint on ICMP unreachable),
and ``serve --udp-services-configmap`` end to end. Every datagram goes to 127.0.0.1 sockets
these tests open."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from _serve_helpers import free_port
from ingresslib import ProxySettings, ValidationError, parse_manifests
from ingresslib._cli import main
from ingresslib._config import ServerConfig, parse_config_data
from ingresslib._endpoints import EndpointIndex
from ingresslib._tcp_services import (TCPServiceEntry, TCPServiceTarget, find_config_map,
                                      parse_tcp_service, read_tcp_services,
                                      resolve_tcp_services)
from ingresslib._udp_proxy import UDPServices

# --- the ConfigMap ----------------------------------------------------------------------


def test_udp_entries_drop_the_proxy_fields() -> None:
    # getStreamServices: "Proxy Protocol is only compatible with TCP Services".
    assert parse_tcp_service("53", "kube-system/dns:53:PROXY:PROXY", "UDP") == \
        TCPServiceEntry(53, "kube-system", "dns", 53)
    assert parse_tcp_service("53", "kube-system/dns:dns", "UDP") == \
        TCPServiceEntry(53, "kube-system", "dns", "dns")


def test_udp_parse_errors_name_the_data_key() -> None:
    entries, err = read_tcp_services(
        {"53": "a/dns:53", "x": "a/b:1", "70000": "a/b:1", "54": "a/b", "053": "a/c:5"},
        "ConfigMap ns/udp", "UDP")
    assert [e.port for e in entries] == [53]
    assert err is not None and isinstance(err, ValidationError)
    text = str(err)
    for key in ("data.x: Invalid value", "data.70000: Invalid value", "data.54: Invalid value",
                "data.053: Duplicate value"):
        assert f"ConfigMap ns/udp: {key}" in text


def test_proxy_stream_responses_is_read_not_warned() -> None:
    cfg = parse_config_data({"proxy-stream-responses": "3"})
    assert cfg.proxy_stream_responses == 3
    assert cfg.warnings == ()   # was "an ingress-nginx key ingresslib does not implement"
    assert ServerConfig().proxy_stream_responses == 1   # config.go's default
    assert parse_config_data({"proxy-stream-responses": "0"}).proxy_stream_responses == 0
    with pytest.raises(ValidationError, match="data.proxy-stream-responses"):
        parse_config_data({"proxy-stream-responses": "-1"})
    with pytest.raises(ValidationError, match="data.proxy-stream-responses"):
        parse_config_data({"proxy-stream-responses": "many"})


def _manifests(backends: dict[str, int], udp: dict[str, str], tcp: dict[str, str] | None = None,
               *, tcp_backend: int = 0) -> str:
    """ConfigMaps ``ingress/udp`` (and ``ingress/tcp``) and, per name in ``backends``, a
    Service with ports ``53/UDP`` (named ``dns``) and ``53/TCP`` (named ``dns-tcp``) whose
    EndpointSlice is 127.0.0.1: UDP at the given port, TCP at ``tcp_backend``."""
    docs = []
    for name, data in (("udp", udp), ("tcp", tcp)):
        if data is not None:
            docs.append(f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, "
                        "namespace: ingress}\ndata:\n"
                        + "".join(f'  "{k}": "{v}"\n' for k, v in data.items()))
    for name, port in backends.items():
        docs.append(
            f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\n"
            "spec:\n  ports:\n  - {name: dns-tcp, port: 53, protocol: TCP}\n"
            "  - {name: dns, port: 53, protocol: UDP}\n")
        docs.append(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"
            f"metadata: {{name: {name}-1, namespace: default, labels: "
            f"{{kubernetes.io/service-name: {name}}}}}\naddressType: IPv4\n"
            f"ports:\n- {{name: dns, port: {port}, protocol: UDP}}\n"
            f"- {{name: dns-tcp, port: {tcp_backend or 1}, protocol: TCP}}\n"
            "endpoints:\n- addresses: [127.0.0.1]\n")
    return "---\n".join(docs)


def test_resolve_takes_the_udp_port_and_skips_with_warnings() -> None:
    res = parse_manifests(_manifests(
        {"dns": 7053}, {"53": "default/dns:53", "54": "default/dns:dns",
                        "55": "default/missing:53", "56": "default/dns:dns-tcp",
                        "57": "default/dns:53"}))
    data = find_config_map(res, "ingress/udp")
    assert data is not None
    entries, err = read_tcp_services(data, protocol="UDP")
    assert err is None
    targets, warnings = resolve_tcp_services(entries, res, reserved=[57], protocol="UDP")
    # The UDP port of number 53, not the TCP one listed first (TCP's would be port 1).
    assert [(t.port, t.endpoints) for t in targets] == [
        (53, (("127.0.0.1", 7053),)), (54, (("127.0.0.1", 7053),))]
    text = "\n".join(warnings)
    assert "UDP services: port 55" in text and "not found" in text
    assert "UDP services: port 56" in text and "is TCP, not UDP" in text
    assert "UDP services: port 57" in text and "serve's own listeners" in text


def test_resolve_reads_v1_endpoints_udp_ports() -> None:
    res = parse_manifests(
        "apiVersion: v1\nkind: Service\nmetadata: {name: syslog, namespace: default}\n"
        "spec:\n  ports:\n  - {port: 514, protocol: UDP, targetPort: 5514}\n---\n"
        "apiVersion: v1\nkind: Endpoints\nmetadata: {name: syslog, namespace: default}\n"
        "subsets:\n- addresses: [{ip: 127.0.0.1}, {ip: 127.0.0.2}]\n"
        "  notReadyAddresses: [{ip: 127.0.0.3}]\n"
        "  ports: [{port: 5514, protocol: UDP}]\n")
    found = EndpointIndex(res).resolve("default", "syslog", 514, protocol="UDP")
    assert found.endpoints == (("127.0.0.1", 5514), ("127.0.0.2", 5514))


# --- the sessions -----------------------------------------------------------------------


class _Backend(asyncio.DatagramProtocol):
    """A UDP server on 127.0.0.1 answering each datagram ``replies`` times with
    ``<name>:<data>`` and keeping the client address of each datagram."""

    def __init__(self, name: str, replies: int = 1) -> None:
        self.name = name
        self.replies = replies
        self.seen: list[tuple[Any, bytes]] = []
        self.transport: Any = None
        self.port = 0

    async def start(self) -> _Backend:
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=("127.0.0.1", 0))
        self.port = self.transport.get_extra_info("sockname")[1]
        return self

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.seen.append((addr, data))
        for i in range(self.replies):
            self.transport.sendto(self.name.encode() + b":" + data + b"#" * i, addr)

    def close(self) -> None:
        self.transport.close()


class _Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.got: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport: Any = None

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.got.put_nowait(data)

    async def open(self, port: int) -> _Client:
        self.transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: self, remote_addr=("127.0.0.1", port))
        return self

    async def ask(self, data: bytes) -> bytes:
        self.transport.sendto(data)
        return await self.next()

    async def next(self, wait: float = 1.5) -> bytes:
        return await asyncio.wait_for(self.got.get(), wait)

    async def nothing(self, wait: float = 0.2) -> bool:
        """Whether no datagram comes within ``wait`` (what a dropped one looks like)."""
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
         max_connections: int | None = None, **settings: Any) -> None:
    async def go() -> None:
        udp = UDPServices(ProxySettings(**settings), host="127.0.0.1",
                          max_connections=max_connections)
        udp.responses = responses
        try:
            await body(udp)
        finally:
            await udp.close()

    asyncio.run(go())


async def _listen(udp: UDPServices, *targets: TCPServiceTarget) -> list[int]:
    """Opens ``targets`` (port 0 each: one target only) and returns the ports bound."""
    assert await udp.update(list(targets)) == []
    return [udp.address(t.port)[1] for t in targets]


def test_one_client_round_trip() -> None:
    async def body(udp: UDPServices) -> None:
        a = await _Backend("a").start()
        [port] = await _listen(udp, _target(0, a.port))
        c = await _Client().open(port)
        assert await c.ask(b"query") == b"a:query"
        big = b"x" * 60000
        assert await c.ask(big) == b"a:" + big
        c.close()
        a.close()

    _run(body)


def test_several_clients_each_get_their_own_replies() -> None:
    async def body(udp: UDPServices) -> None:
        a = await _Backend("a").start()
        [port] = await _listen(udp, _target(0, a.port))
        clients = [await _Client().open(port) for _ in range(4)]
        for i, c in enumerate(clients):
            c.transport.sendto(b"q%d" % i)
        for i, c in enumerate(clients):
            assert await c.next() == b"a:q%d" % i
            assert await c.nothing(0.05)
        # Each client was a session of its own, with its own upstream socket.
        assert len({addr for addr, _ in a.seen}) == 4
        for c in clients:
            c.close()
        a.close()

    _run(body)


def test_round_robin_by_session_and_a_session_keeps_its_endpoint() -> None:
    async def body(udp: UDPServices) -> None:
        a, b = await _Backend("a").start(), await _Backend("b").start()
        [port] = await _listen(udp, _target(0, a.port, b.port))
        c1, c2 = await _Client().open(port), await _Client().open(port)
        # responses 3: a session waits for 3 replies per datagram, so it lasts.
        assert await c1.ask(b"1") == b"a:1"
        assert await c1.ask(b"2") == b"a:2"    # the same session, the same endpoint
        assert await c2.ask(b"3") == b"b:3"    # a new session, the next endpoint
        assert await c2.ask(b"4") == b"b:4"
        assert len(udp.sessions) == 2
        c1.close()
        c2.close()
        a.close()
        b.close()

    _run(body, responses=3)


def test_responses_one_ends_the_session_and_drops_a_second_reply() -> None:
    async def body(udp: UDPServices) -> None:
        a, b = await _Backend("a", replies=2).start(), await _Backend("b", replies=2).start()
        [port] = await _listen(udp, _target(0, a.port, b.port))
        c = await _Client().open(port)
        assert await c.ask(b"1") == b"a:1"
        assert await c.nothing()           # "a:1#" came after the session ended
        assert not udp.sessions
        # The next datagram of the same client is a new session: the next endpoint.
        assert await c.ask(b"2") == b"b:2"
        assert await c.nothing()
        c.close()
        a.close()
        b.close()

    _run(body, responses=1)


def test_responses_two_relays_both_replies() -> None:
    async def body(udp: UDPServices) -> None:
        a = await _Backend("a", replies=2).start()
        [port] = await _listen(udp, _target(0, a.port))
        c = await _Client().open(port)
        assert await c.ask(b"1") == b"a:1"
        assert await c.next() == b"a:1#"
        assert not udp.sessions
        c.close()
        a.close()

    _run(body, responses=2)


def test_responses_zero_sends_and_ends_the_session() -> None:
    async def body(udp: UDPServices) -> None:
        a = await _Backend("a").start()
        [port] = await _listen(udp, _target(0, a.port))
        c = await _Client().open(port)
        c.transport.sendto(b"log line")
        assert await c.nothing()
        assert [d for _, d in a.seen] == [b"log line"]
        assert not udp.sessions
        c.close()
        a.close()

    _run(body, responses=0)


def test_quiet_for_the_stream_timeout_ends_the_session() -> None:
    async def body(udp: UDPServices) -> None:
        a = await _Backend("a").start()
        [port] = await _listen(udp, _target(0, a.port))
        c = await _Client().open(port)
        assert await c.ask(b"1") == b"a:1"
        assert len(udp.sessions) == 1        # waits for 5 replies
        deadline = asyncio.get_running_loop().time() + 2
        while udp.sessions:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.02)
        assert await c.ask(b"2") == b"a:2"    # a new session
        assert len({addr for addr, _ in a.seen}) == 2
        c.close()
        a.close()

    _run(body, responses=5, proxy_stream_timeout=0.1)


def _dead_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_free_both_ways() -> int:
    """A port number nothing uses on 127.0.0.1, TCP and UDP alike (at the moment of asking)."""
    while True:
        with socket.socket() as t, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            t.bind(("127.0.0.1", 0))
            port = int(t.getsockname()[1])
            try:
                u.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def test_an_unreachable_endpoint_sends_the_datagram_to_the_next() -> None:
    async def body(udp: UDPServices) -> None:
        a = await _Backend("a").start()
        [port] = await _listen(udp, _target(0, _dead_udp_port(), a.port))
        c = await _Client().open(port)
        assert await c.ask(b"1") == b"a:1"
        c.close()
        a.close()

    _run(body)


def test_no_endpoint_reachable_ends_the_session() -> None:
    async def body(udp: UDPServices) -> None:
        [port] = await _listen(udp, _target(0, _dead_udp_port(), _dead_udp_port()))
        c = await _Client().open(port)
        c.transport.sendto(b"1")
        deadline = asyncio.get_running_loop().time() + 2
        await asyncio.sleep(0.02)
        while udp.sessions:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.02)
        assert await c.nothing(0.05)
        c.close()

    _run(body)


def test_max_connections_drops_the_datagrams_of_new_clients() -> None:
    async def body(udp: UDPServices) -> None:
        a = await _Backend("a").start()
        [port] = await _listen(udp, _target(0, a.port))
        c1, c2 = await _Client().open(port), await _Client().open(port)
        assert await c1.ask(b"1") == b"a:1"    # a session that lasts (responses 5)
        c2.transport.sendto(b"2")
        assert await c2.nothing()
        assert [d for _, d in a.seen] == [b"1"]
        assert await c1.ask(b"3") == b"a:3"    # the session held goes on
        c1.close()
        c2.close()
        a.close()

    _run(body, responses=5, max_connections=1)


def test_update_adds_retargets_and_removes_ports() -> None:
    async def body(udp: UDPServices) -> None:
        a, b = await _Backend("a").start(), await _Backend("b").start()
        p1, p2 = _dead_udp_port(), _dead_udp_port()
        assert await udp.update([_target(p1, a.port)]) == []
        assert udp.ports == [p1]
        c1 = await _Client().open(p1)
        assert await c1.ask(b"1") == b"a:1"
        assert await udp.update([_target(p1, b.port), _target(p2, a.port)]) == []
        assert udp.ports == sorted([p1, p2])
        assert await c1.ask(b"2") == b"b:2"    # retargeted: new sessions go to b
        c2 = await _Client().open(p2)
        assert await c2.ask(b"3") == b"a:3"
        assert await udp.update([_target(p2, a.port)]) == []
        assert udp.ports == [p2]
        c1.transport.sendto(b"4")
        assert await c1.nothing()
        assert [d for _, d in b.seen] == [b"2"]
        for x in (c1, c2, a, b):
            x.close()

    _run(body)


def test_close_closes_the_sockets_and_sessions() -> None:
    async def body(udp: UDPServices) -> None:
        a = await _Backend("a").start()
        [port] = await _listen(udp, _target(0, a.port))
        c = await _Client().open(port)
        assert await c.ask(b"1") == b"a:1"
        await udp.close()
        assert not udp.sessions and udp.ports == []
        assert await udp.update([_target(0, a.port)]) == []   # closed: opens nothing
        assert udp.ports == []
        c.transport.sendto(b"2")
        assert await c.nothing()
        assert [d for _, d in a.seen] == [b"1"]
        c.close()
        a.close()

    _run(body, responses=5)


# --- serve ------------------------------------------------------------------------------


class _ThreadBackend:
    """A threaded UDP echo (``echo:<data>``) and TCP echo (``tcp:<data>``) on 127.0.0.1."""

    def __init__(self, replies: int = 1) -> None:
        self.replies = replies
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.port = self.udp.getsockname()[1]
        self.tcp = socket.socket()
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen()
        self.tcp_port = self.tcp.getsockname()[1]
        threading.Thread(target=self._udp, daemon=True).start()
        threading.Thread(target=self._tcp, daemon=True).start()

    def _udp(self) -> None:
        while True:
            try:
                data, addr = self.udp.recvfrom(65535)
                for i in range(self.replies):
                    self.udp.sendto(b"echo:" + data + b"#" * i, addr)
            except OSError:
                return

    def _tcp(self) -> None:
        while True:
            try:
                conn, _ = self.tcp.accept()
            except OSError:
                return
            with conn:
                data = conn.recv(4096)
                conn.sendall(b"tcp:" + data)

    def close(self) -> None:
        self.udp.close()
        self.tcp.close()


def _udp_exchange(port: int, data: bytes, deadline: float) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
        c.settimeout(0.1)
        while True:
            c.sendto(data, ("127.0.0.1", port))
            try:
                return c.recv(65535)
            except OSError:   # (not listening yet: no reply, or ICMP refused)
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)


def _tcp_exchange(port: int, data: bytes, deadline: float) -> bytes:
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as c:
                c.sendall(data)
                return c.recv(4096)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def test_serve_udp_and_tcp_on_the_same_port_number(tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    backend = _ThreadBackend()
    http_port, port = free_port(), _port_free_both_ways()
    (tmp_path / "m.yaml").write_text(_manifests(
        {"dns": backend.port},
        {str(port): "default/dns:53", "5999": "default/missing:53", "bad": "x"},
        {str(port): "default/dns:53"}, tcp_backend=backend.tcp_port))
    got: list[bytes] = []

    def client() -> None:
        try:
            deadline = time.monotonic() + 5
            got.append(_udp_exchange(port, b"a.example. IN A", deadline))
            got.append(_tcp_exchange(port, b"axfr", deadline))
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=client, daemon=True).start()
    code = main(["serve", "-f", str(tmp_path), "--listen", f"127.0.0.1:{http_port}",
                 "--tcp-services-configmap", "ingress/tcp",
                 "--udp-services-configmap", "ingress/udp", "--access-log", "off",
                 "--shutdown-timeout", "1"])
    backend.close()
    assert code == 0
    assert got == [b"echo:a.example. IN A", b"tcp:axfr"]
    text = caplog.text
    assert "UDP services: port 5999" in text and "missing not found" in text
    assert "ConfigMap ingress/udp: data.bad: Invalid value" in text


def test_serve_reload_of_the_files_retargets_udp_ports(tmp_path: Path) -> None:
    backend = _ThreadBackend()
    p1, p2 = _dead_udp_port(), _dead_udp_port()
    m = tmp_path / "m.yaml"
    m.write_text(_manifests({"dns": backend.port}, {str(p1): "default/dns:53"}))
    got: list[Any] = []

    def client() -> None:
        try:
            deadline = time.monotonic() + 5
            got.append(_udp_exchange(p1, b"one", deadline))
            m.write_text(_manifests({"dns": backend.port}, {str(p2): "default/dns:dns"}))
            os.kill(os.getpid(), signal.SIGHUP)   # serve reads the files now
            got.append(_udp_exchange(p2, b"two", deadline))
            try:
                got.append(_udp_exchange(p1, b"three", time.monotonic() + 0.3))
            except OSError:
                got.append("p1 closed")
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=client, daemon=True).start()
    code = main(["serve", "-f", str(m), "--listen", "127.0.0.1:0",
                 "--udp-services-configmap", "ingress/udp", "--access-log", "off",
                 "--reload-interval", "0"])
    backend.close()
    assert code == 0
    assert got == [b"echo:one", b"echo:two", "p1 closed"]


def test_serve_refuses_a_malformed_udp_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["serve", "-f", ".", "--udp-services-configmap", "udp"])
    assert e.value.code == 2
    assert "NAMESPACE/NAME" in capsys.readouterr().err


def _udp_backend(service: str, port: int) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": service, "namespace": "default"},
         "spec": {"ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": f"{service}-1", "namespace": "default",
                      "labels": {"kubernetes.io/service-name": service}},
         "addressType": "IPv4", "ports": [{"name": "dns", "port": port, "protocol": "UDP"}],
         "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]},
    ]


@pytest.mark.network
@pytest.mark.asyncio
async def test_serve_kubernetes_follows_the_udp_configmap(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With --kubernetes the ConfigMap is watched: a named UDP Service port serves, an edit
    opens the new port and closes the removed one, and proxy-stream-responses of --config
    applies (2: the backend's second reply is relayed too)."""
    import _fake_kube
    from test_kube_configmaps_s25 import cm
    from test_serve_cli import _start_serve, _stop
    from test_serve_kube import _fake_cluster

    import tests._fake_kube

    for mod in (_fake_kube, tests._fake_kube):  # the fake, under both its import names
        monkeypatch.setitem(mod.KINDS, "configmaps", ("v1", "ConfigMap", True))
        monkeypatch.setitem(mod._PLURAL, "ConfigMap", "configmaps")
    backend = await _Backend("k", replies=2).start()
    p1, p2 = _dead_udp_port(), _dead_udp_port()
    (tmp_path / "config.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
        "data: {proxy-stream-responses: \"2\"}\n")
    kube, cfg = await _fake_cluster(tmp_path, *_udp_backend("dns", backend.port),
                                    cm("udp", {str(p1): "default/dns:dns"}))
    p, _ = await asyncio.to_thread(_start_serve, "--kubernetes", "--kubeconfig", str(cfg),
                                   "--listen", "127.0.0.1:0", "--config",
                                   str(tmp_path / "config.yaml"),
                                   "--udp-services-configmap", "default/udp")

    async def until(port: int, want: list[bytes]) -> None:
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            c = await _Client().open(port)
            c.transport.sendto(b"x")
            got = []
            try:
                got.append(await c.next(0.1))
                got.append(await c.next(0.1))
            except (TimeoutError, OSError):
                pass
            c.close()
            if got == want:
                return
            assert asyncio.get_running_loop().time() < deadline, got
            await asyncio.sleep(0.05)

    try:
        await until(p1, [b"k:x", b"k:x#"])
        kube.put(cm("udp", {str(p2): "default/dns:53"}))
        await until(p2, [b"k:x", b"k:x#"])
        await until(p1, [])
    finally:
        await asyncio.to_thread(_stop, p)
        await kube.stop()
        backend.close()


def test_serve_applies_proxy_stream_responses_of_the_config_on_reload(tmp_path: Path) -> None:
    backend = _ThreadBackend(replies=2)
    port = _dead_udp_port()
    m, conf = tmp_path / "m.yaml", tmp_path / "config.yaml"
    m.write_text(_manifests({"dns": backend.port}, {str(port): "default/dns:53"}))

    def config(n: int) -> str:
        return ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
                f'data: {{proxy-stream-responses: "{n}"}}\n')

    conf.write_text(config(1))
    got: list[Any] = []

    def replies(c: socket.socket) -> list[bytes]:
        out = []
        try:
            while True:
                out.append(c.recv(65535))
        except OSError:   # (none within the timeout)
            return out

    def client() -> None:
        try:
            deadline = time.monotonic() + 5
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
                c.settimeout(0.3)
                c.connect(("127.0.0.1", port))
                got.append(_udp_exchange(port, b"warm", deadline))   # listening
                c.send(b"one")
                got.append(replies(c))
                conf.write_text(config(2))
                os.kill(os.getpid(), signal.SIGHUP)   # serve reads the files now
                while True:
                    c.send(b"two")
                    answer = replies(c)
                    if len(answer) == 2 or time.monotonic() > deadline:
                        got.append(answer)
                        break
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=client, daemon=True).start()
    code = main(["serve", "-f", str(m), "--config", str(conf), "--listen", "127.0.0.1:0",
                 "--udp-services-configmap", "ingress/udp", "--access-log", "off",
                 "--reload-interval", "0"])
    backend.close()
    assert code == 0
    assert got == [b"echo:warm", [b"echo:one"], [b"echo:two", b"echo:two#"]]
