"""TCP services (ingress-nginx ``--tcp-services-configmap``): the ConfigMap read and resolved
(``ingresslib._tcp_services``), the listeners (``ingresslib._tcp_proxy.TCPServices``), the
stream ConfigMap keys, and ``serve --tcp-services-configmap`` end to end. Every connection goes
to 127.0.0.1 servers these tests start."""

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
from ingresslib._config import parse_config_data
from ingresslib._tcp_proxy import TCPServices, proxy_v1_header
from ingresslib._tcp_services import (TCPServiceEntry, TCPServiceTarget, find_config_map,
                                      parse_tcp_service, read_tcp_services,
                                      resolve_tcp_services)

# --- parsing ----------------------------------------------------------------------------


@pytest.mark.parametrize("key,value,want", [
    ("9000", "default/db:5432", TCPServiceEntry(9000, "default", "db", 5432)),
    ("9000", " default/db:pg ", TCPServiceEntry(9000, "default", "db", "pg")),
    ("9000", "default/db:5432:PROXY", TCPServiceEntry(9000, "default", "db", 5432, True)),
    ("9000", "default/db:5432::proxy",
     TCPServiceEntry(9000, "default", "db", 5432, False, True)),
    ("9000", "default/db:5432:Proxy:PROXY",
     TCPServiceEntry(9000, "default", "db", 5432, True, True)),
    ("65535", "a/b:1", TCPServiceEntry(65535, "a", "b", 1)),
])
def test_parse_valid(key: str, value: str, want: TCPServiceEntry) -> None:
    assert parse_tcp_service(key, value) == want


@pytest.mark.parametrize("key,value,says", [
    ("http", "default/db:5432", "port number"),
    ("0", "default/db:5432", "1 to 65535"),
    ("70000", "default/db:5432", "1 to 65535"),
    ("-1", "default/db:5432", "port number"),
    ("9000", "default/db", "namespace/service:port"),
    ("9000", "db:5432", "namespace/service"),
    ("9000", "/db:5432", "namespace/service"),
    ("9000", "a/b/c:5432", "namespace/service"),
    ("9000", "default/db:", "empty"),
    ("9000", "default/db:0", "1 to 65535"),
    ("9000", "default/db:5432:PROXI", "field 3"),
    ("9000", "default/db:5432::yes", "field 4"),
    ("9000", "default/db:5432:PROXY:PROXY:PROXY", "more than four"),
])
def test_parse_invalid(key: str, value: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        parse_tcp_service(key, value)


def test_read_names_the_bad_keys_and_keeps_the_good_ones() -> None:
    entries, err = read_tcp_services(
        {"9001": "a/b:1", "x": "a/b:1", "9000": "a/c:2:NOPE", "09001": "a/d:3"},
        "ConfigMap ns/tcp")
    assert [e.port for e in entries] == [9001]
    assert err is not None and isinstance(err, ValidationError)
    text = str(err)
    assert "ConfigMap ns/tcp: data.x: Invalid value" in text
    assert "data.9000: Invalid value" in text
    assert "data.09001: Duplicate value" in text


def test_stream_configmap_keys_are_settings_not_warnings() -> None:
    cfg = parse_config_data({"proxy-stream-timeout": "10m",
                             "proxy-stream-next-upstream": "false",
                             "proxy-stream-next-upstream-timeout": "30s",
                             "proxy-stream-next-upstream-tries": "5"})
    s = cfg.settings
    assert (s.proxy_stream_timeout, s.proxy_stream_next_upstream,
            s.proxy_stream_next_upstream_timeout, s.proxy_stream_next_upstream_tries) == (
        600.0, False, 30.0, 5)
    assert cfg.warnings == ()
    d = ProxySettings()
    assert (d.proxy_stream_timeout, d.proxy_stream_next_upstream,
            d.proxy_stream_next_upstream_timeout, d.proxy_stream_next_upstream_tries) == (
        600.0, True, 600.0, 3)
    with pytest.raises(ValidationError, match="data.proxy-stream-timeout"):
        parse_config_data({"proxy-stream-timeout": "soon"})
    with pytest.raises(ValueError):
        ProxySettings(proxy_stream_timeout=-1)


def _manifests(ports: dict[str, int], data: dict[str, str], *, named: bool = False,
               extra: str = "") -> str:
    """A ConfigMap ``ingress/tcp`` with ``data`` and, per name in ``ports``, a Service of port
    ``80`` (named ``db`` with ``named``) whose Endpoints is 127.0.0.1 at that port."""
    docs = ["apiVersion: v1\nkind: ConfigMap\nmetadata: {name: tcp, namespace: ingress}\n"
            "data:\n" + "".join(f'  "{k}": "{v}"\n' for k, v in data.items())]
    for name, port in ports.items():
        pname = "db" if named else "p"
        docs.append(
            f"apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\n"
            f"spec:\n  ports:\n  - {{name: {pname}, port: 80, targetPort: {port}}}\n")
        docs.append(
            f"apiVersion: v1\nkind: Endpoints\nmetadata: {{name: {name}, namespace: default}}\n"
            f"subsets:\n- addresses: [{{ip: 127.0.0.1}}]\n"
            f"  ports: [{{name: {pname}, port: {port}}}]\n")
    return "---\n".join(docs) + extra


def test_resolve_numbers_names_and_skips() -> None:
    res = parse_manifests(_manifests(
        {"db": 7001}, {"9000": "default/db:80", "9001": "default/db:db",
                       "9002": "default/missing:80", "9003": "default/db:81",
                       "9004": "default/db:80"}, named=True))
    data = find_config_map(res, "ingress/tcp")
    assert data is not None and find_config_map(res, "ingress/none") is None
    entries, err = read_tcp_services(data)
    assert err is None
    targets, warnings = resolve_tcp_services(entries, res, reserved=[9004])
    assert [(t.port, t.endpoints) for t in targets] == [
        (9000, (("127.0.0.1", 7001),)), (9001, (("127.0.0.1", 7001),))]
    text = "\n".join(warnings)
    assert "port 9002" in text and "not found" in text
    assert "port 9003" in text and "no port" in text
    assert "port 9004" in text and "serve's own listeners" in text


# --- the listeners ----------------------------------------------------------------------


class _Echo:
    """A TCP server on 127.0.0.1 that answers each chunk with ``<name>:<chunk>`` and keeps
    the bytes each connection sent."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> _Echo:
        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            got = bytearray()
            self.seen.append(b"")
            i = len(self.seen) - 1
            try:
                while data := await r.read(4096):
                    got += data
                    self.seen[i] = bytes(got)
                    w.write(self.name.encode() + b":" + data)
                    await w.drain()
            finally:
                w.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    def close(self) -> None:
        assert self.server is not None
        self.server.close()


def _target(port: int, *backends: int, decode: bool = False,
            encode: bool = False) -> TCPServiceTarget:
    return TCPServiceTarget(TCPServiceEntry(port, "default", "db", 80, decode, encode),
                            tuple(("127.0.0.1", b) for b in backends))


async def _say(port: int, data: bytes, *, want: int | None = None) -> bytes:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        w.write(data)
        await w.drain()
        need = want if want is not None else len(data)
        got = b""
        async with asyncio.timeout(2):
            while len(got) < need:
                try:
                    chunk = await r.read(4096)
                except ConnectionResetError:   # closed with what it sent unread
                    break
                if not chunk:
                    break
                got += chunk
        return got
    finally:
        w.close()


def _run(body: Callable[[TCPServices], Awaitable[None]], **settings: Any) -> None:
    async def go() -> None:
        tcp = TCPServices(ProxySettings(**settings), host="127.0.0.1")
        try:
            await body(tcp)
        finally:
            await tcp.close()

    asyncio.run(go())


def test_echo_round_trip() -> None:
    async def body(tcp: TCPServices) -> None:
        echo = await _Echo("a").start()
        port = free_port()
        assert await tcp.update([_target(port, echo.port)]) == []
        assert tcp.ports == [port]
        assert await _say(port, b"hello", want=7) == b"a:hello"
        echo.close()

    _run(body)


def test_round_robin_across_two_backends() -> None:
    async def body(tcp: TCPServices) -> None:
        a, b = await _Echo("a").start(), await _Echo("b").start()
        port = free_port()
        await tcp.update([_target(port, a.port, b.port)])
        answers = [await _say(port, b"x", want=3) for _ in range(4)]
        assert answers == [b"a:x", b"b:x", b"a:x", b"b:x"]
        a.close()
        b.close()

    _run(body)


def test_a_refused_connect_goes_to_the_next_endpoint() -> None:
    async def body(tcp: TCPServices) -> None:
        good = await _Echo("good").start()
        dead = free_port()   # nothing listens there: refused
        port = free_port()
        await tcp.update([_target(port, dead, good.port)])
        assert await _say(port, b"x", want=6) == b"good:x"
        assert await _say(port, b"y", want=6) == b"good:y"
        good.close()

    _run(body)


def test_no_retry_when_next_upstream_is_off() -> None:
    async def body(tcp: TCPServices) -> None:
        good = await _Echo("good").start()
        port = free_port()
        await tcp.update([_target(port, free_port(), good.port)])
        # The first connection starts at the dead endpoint and is closed, not retried.
        assert await _say(port, b"x", want=6) == b""
        good.close()

    _run(body, proxy_stream_next_upstream=False)


def test_tries_bound_the_retries() -> None:
    async def body(tcp: TCPServices) -> None:
        good = await _Echo("good").start()
        port = free_port()
        await tcp.update([_target(port, free_port(), free_port(), good.port)])
        assert await _say(port, b"x", want=6) == b""   # two dead endpoints, two tries
        good.close()

    _run(body, proxy_stream_next_upstream_tries=2)


def test_quiet_for_the_stream_timeout_closes_the_pipe() -> None:
    async def body(tcp: TCPServices) -> None:
        echo = await _Echo("a").start()
        port = free_port()
        await tcp.update([_target(port, echo.port)])
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"hi")
        assert await asyncio.wait_for(r.readexactly(4), 2) == b"a:hi"
        # Nothing more either way: the pipe is closed after proxy_stream_timeout.
        assert await asyncio.wait_for(r.read(100), 2) == b""
        w.close()
        echo.close()

    _run(body, proxy_stream_timeout=0.2)


def test_proxy_protocol_decoded_from_the_client() -> None:
    async def body(tcp: TCPServices) -> None:
        echo = await _Echo("a").start()
        port = free_port()
        await tcp.update([_target(port, echo.port, decode=True)])
        header = b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 9000\r\n"
        assert await _say(port, header + b"data", want=6) == b"a:data"
        assert echo.seen == [b"data"]   # the header is not passed on
        # Without a header (a decode entry): the connection is closed.
        assert await _say(port, b"GET / HTTP/1.1\r\n\r\n", want=1) == b""
        assert len(echo.seen) == 1
        echo.close()

    _run(body)


def test_proxy_protocol_sent_to_the_backend() -> None:
    async def body(tcp: TCPServices) -> None:
        echo = await _Echo("a").start()
        port = free_port()
        await tcp.update([_target(port, echo.port, encode=True)])
        r, w = await asyncio.open_connection("127.0.0.1", port)
        client = w.get_extra_info("sockname")
        w.write(b"data")
        got = b""
        async with asyncio.timeout(2):
            while not got.endswith(b"data"):
                got += await r.read(4096)
        w.close()
        want = f"PROXY TCP4 127.0.0.1 127.0.0.1 {client[1]} {port}\r\n".encode()
        assert echo.seen[0] == want + b"data"
        echo.close()

    _run(body)


def test_proxy_protocol_both_ways_names_a_trusted_peers_client() -> None:
    async def body(tcp: TCPServices) -> None:
        echo = await _Echo("a").start()
        port = free_port()
        await tcp.update([_target(port, echo.port, decode=True, encode=True)])
        header = b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 9000\r\n"
        await _say(port, header + b"data", want=len(b"a:") + 1)
        async with asyncio.timeout(2):
            while not echo.seen or not echo.seen[0].endswith(b"data"):
                await asyncio.sleep(0.01)
        assert echo.seen[0].startswith(b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 ")
        echo.close()

    _run(body, enable_real_ip=True, proxy_real_ip_cidr=("127.0.0.0/8",))


def test_proxy_protocol_from_an_untrusted_peer_names_the_peer() -> None:
    async def body(tcp: TCPServices) -> None:
        echo = await _Echo("a").start()
        port = free_port()
        await tcp.update([_target(port, echo.port, decode=True, encode=True)])
        header = b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 9000\r\n"
        await _say(port, header + b"data", want=3)
        assert echo.seen[0].startswith(b"PROXY TCP4 127.0.0.1 127.0.0.1 ")
        echo.close()

    _run(body)


def test_v1_header_families() -> None:
    assert proxy_v1_header(("::1", 1), ("::1", 2)) == b"PROXY TCP6 ::1 ::1 1 2\r\n"
    assert proxy_v1_header(("10.0.0.1", 1), ("::1", 2)) == b"PROXY TCP4 10.0.0.1 0.0.0.0 1 2\r\n"


def test_update_adds_removes_and_retargets() -> None:
    async def body(tcp: TCPServices) -> None:
        a, b = await _Echo("a").start(), await _Echo("b").start()
        p1, p2 = free_port(), free_port()
        await tcp.update([_target(p1, a.port)])
        assert await _say(p1, b"x", want=3) == b"a:x"
        await tcp.update([_target(p1, b.port), _target(p2, a.port)])
        assert tcp.ports == sorted([p1, p2])
        assert await _say(p1, b"x", want=3) == b"b:x"   # new target, new connections
        assert await _say(p2, b"y", want=3) == b"a:y"
        await tcp.update([_target(p2, a.port)])
        assert tcp.ports == [p2]
        with pytest.raises(OSError):
            await _say(p1, b"x")
        a.close()
        b.close()

    _run(body)


def test_a_port_in_use_is_reported_and_the_others_listen() -> None:
    async def body(tcp: TCPServices) -> None:
        echo = await _Echo("a").start()
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            busy = taken.getsockname()[1]
            ok = free_port()
            failed = await tcp.update([_target(busy, echo.port), _target(ok, echo.port)])
            assert len(failed) == 1 and f"port {busy}: cannot listen" in failed[0]
            assert tcp.ports == [ok]
        echo.close()

    _run(body)


def test_max_connections_bounds_the_pipes() -> None:
    async def go() -> None:
        echo = await _Echo("a").start()
        tcp = TCPServices(ProxySettings(), host="127.0.0.1", max_connections=1)
        port = free_port()
        await tcp.update([_target(port, echo.port)])
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"1")
        assert await asyncio.wait_for(r.readexactly(3), 2) == b"a:1"
        assert await _say(port, b"2", want=3) == b""   # past the bound: closed
        w.close()
        await tcp.close()
        echo.close()

    asyncio.run(go())


# --- serve ------------------------------------------------------------------------------


class _ThreadEcho:
    """A threaded echo server on 127.0.0.1 (serve runs its own loop in this thread)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(4096):
                conn.sendall(b"echo:" + data)


def _exchange(port: int, data: bytes, deadline: float) -> bytes:
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as c:
                c.sendall(data)
                return c.recv(4096)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def test_serve_end_to_end_with_a_manifests_file(tmp_path: Path,
                                                caplog: pytest.LogCaptureFixture) -> None:
    echo = _ThreadEcho()
    http_port, tcp_port = free_port(), free_port()
    (tmp_path / "m.yaml").write_text(_manifests(
        {"db": echo.port}, {str(tcp_port): "default/db:80", str(http_port): "default/db:80",
                            "bad": "x"}))
    got: list[bytes] = []

    def client() -> None:
        try:
            got.append(_exchange(tcp_port, b"ping", time.monotonic() + 5))
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=client, daemon=True).start()
    code = main(["serve", "-f", str(tmp_path), "--listen", f"127.0.0.1:{http_port}",
                 "--tcp-services-configmap", "ingress/tcp", "--access-log", "off",
                 "--shutdown-timeout", "1"])
    echo.sock.close()
    assert code == 0
    assert got == [b"echo:ping"]
    text = caplog.text
    assert f"port {http_port}" in text and "serve's own listeners" in text
    assert "data.bad: Invalid value" in text


def test_serve_refuses_a_malformed_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["serve", "-f", ".", "--tcp-services-configmap", "tcp"])
    assert e.value.code == 2
    assert "NAMESPACE/NAME" in capsys.readouterr().err


@pytest.mark.network
@pytest.mark.asyncio
async def test_serve_kubernetes_follows_the_configmap(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """With --kubernetes the ConfigMap is watched: a named Service port serves, and an edit
    opens the new port and closes the removed one."""
    import _fake_kube
    from test_kube_configmaps_s25 import cm
    from test_serve_cli import _start_serve, _stop
    from test_serve_kube import _backend, _fake_cluster

    import tests._fake_kube

    for mod in (_fake_kube, tests._fake_kube):  # the fake, under both its import names
        monkeypatch.setitem(mod.KINDS, "configmaps", ("v1", "ConfigMap", True))
        monkeypatch.setitem(mod._PLURAL, "ConfigMap", "configmaps")
    echo = await _Echo("k").start()
    p1, p2 = free_port(), free_port()
    kube, cfg = await _fake_cluster(tmp_path, *_backend("web", echo.port),
                                    cm("tcp", {str(p1): "default/web:http"}))
    p, _ = await asyncio.to_thread(_start_serve, "--kubernetes", "--kubeconfig", str(cfg),
                                   "--listen", "127.0.0.1:0",
                                   "--tcp-services-configmap", "default/tcp")

    async def until(port: int, want: bytes) -> None:
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            try:
                got = await _say(port, b"x", want=len(want))
            except OSError:
                got = b"(refused)"
            if got == want:
                return
            assert asyncio.get_running_loop().time() < deadline, got
            await asyncio.sleep(0.05)

    try:
        await until(p1, b"k:x")
        kube.put(cm("tcp", {str(p2): "default/web:80"}))
        await until(p2, b"k:x")
        await until(p1, b"(refused)")
    finally:
        await asyncio.to_thread(_stop, p)
        await kube.stop()
        echo.close()


def test_serve_reload_of_the_files_opens_and_closes_ports(tmp_path: Path) -> None:
    echo = _ThreadEcho()
    p1, p2 = free_port(), free_port()
    m = tmp_path / "m.yaml"
    m.write_text(_manifests({"db": echo.port}, {str(p1): "default/db:80"}))
    got: list[Any] = []

    def client() -> None:
        try:
            deadline = time.monotonic() + 5
            got.append(_exchange(p1, b"one", deadline))
            m.write_text(_manifests({"db": echo.port}, {str(p2): "default/db:p"}, named=False))
            os.kill(os.getpid(), signal.SIGHUP)   # serve reads the files now
            got.append(_exchange(p2, b"two", deadline))
            try:
                with socket.create_connection(("127.0.0.1", p1), timeout=1):
                    got.append("p1 still open")
            except OSError:
                got.append("p1 closed")
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=client, daemon=True).start()
    code = main(["serve", "-f", str(m), "--listen", "127.0.0.1:0",
                 "--tcp-services-configmap", "ingress/tcp", "--access-log", "off",
                 "--reload-interval", "0"])
    echo.sock.close()
    assert code == 0
    assert got == [b"echo:one", b"echo:two", "p1 closed"]
