"""Review of TCP services (``serve --tcp-services-configmap``, session 29): the edges of the
listeners (``ingresslib._tcp_proxy``) found by attacking them. Every connection goes to
127.0.0.1 servers these tests start."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from _serve_helpers import free_port
from ingresslib import ProxySettings
from ingresslib._tcp_proxy import TCPServices, proxy_v1_header
from ingresslib._tcp_services import TCPServiceEntry, TCPServiceTarget


class _Backend:
    """A TCP server on 127.0.0.1: answers each chunk with ``R:<chunk>`` (unless ``quiet``) and
    keeps what each connection sent."""

    def __init__(self, *, quiet: bool = False) -> None:
        self.quiet = quiet
        self.seen: list[bytes] = []
        self.port = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> _Backend:
        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            self.seen.append(b"")
            i = len(self.seen) - 1
            try:
                while data := await r.read(65536):
                    self.seen[i] += data
                    if not self.quiet:
                        w.write(b"R:" + data)
                        await w.drain()
            except ConnectionError:
                pass
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


async def _read(r: asyncio.StreamReader, want: int, wait: float = 1.5) -> bytes:
    """What comes until ``want`` bytes or the end; ``<no end>`` is appended when neither came
    within ``wait`` seconds."""
    got = b""
    try:
        async with asyncio.timeout(wait):
            while len(got) < want:
                chunk = await r.read(65536)
                if not chunk:
                    break
                got += chunk
    except TimeoutError:
        got += b"<no end>"
    except ConnectionResetError:
        pass
    return got


def _run(body: Callable[[TCPServices], Awaitable[None]], **settings: Any) -> None:
    async def go() -> None:
        tcp = TCPServices(ProxySettings(**settings), host="127.0.0.1")
        try:
            await body(tcp)
        finally:
            await tcp.close()

    asyncio.run(go())


class _Failed(logging.Handler):
    """Counts the failed connects ``_tcp_proxy`` logs (debug level)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "connect to" in record.getMessage() and "failed" in record.getMessage():
            self.count += 1


def _count_failed_connects() -> tuple[_Failed, Callable[[], None]]:
    log = logging.getLogger("ingresslib.server")
    handler, level = _Failed(), log.level
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)

    def undo() -> None:
        log.removeHandler(handler)
        log.setLevel(level)

    return handler, undo


# --- retries: "proxy-stream-next-upstream-tries: 0" ------------------------------------------


def test_tries_zero_tries_each_endpoint_once_then_closes() -> None:
    # Before: tries 0 with timeout 0 looped on refused connects for ever (~10,000 a second),
    # and the connection was held (a --max-connections place) after its client had gone.
    failed, undo = _count_failed_connects()

    async def body(tcp: TCPServices) -> None:
        port = free_port()
        await tcp.update([_target(port, free_port(), free_port())])
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"x")
        assert await _read(r, 1) == b""   # closed: no endpoint answered
        w.close()
        for _ in range(100):
            if not tcp.active():
                break
            await asyncio.sleep(0.01)
        assert tcp.active() == 0
        assert failed.count == 2   # each endpoint once

    try:
        _run(body, proxy_stream_next_upstream_tries=0, proxy_stream_next_upstream_timeout=0.0)
    finally:
        undo()


def test_tries_zero_still_reaches_the_endpoint_that_answers() -> None:
    async def body(tcp: TCPServices) -> None:
        good = await _Backend().start()
        port = free_port()
        await tcp.update([_target(port, free_port(), free_port(), good.port)])
        for _ in range(3):   # whichever endpoint the round-robin starts at
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"hi")
            assert await _read(r, 4) == b"R:hi"
            w.close()
        good.close()

    _run(body, proxy_stream_next_upstream_tries=0, proxy_stream_next_upstream_timeout=0.0)


# --- the PROXY protocol header sent to the backend ---------------------------------------


def test_v1_header_writes_ipv6_addresses_without_their_zone() -> None:
    # Before: b"PROXY TCP6 fe80::1%eth0 fe80::2%eth0 ..." (a link-local peer's name as
    # Python gives it), which no PROXY protocol reader takes; nginx's ngx_sock_ntop writes no
    # zone.
    assert proxy_v1_header(("fe80::1%eth0", 40000), ("fe80::2%eth0", 5432)) == \
        b"PROXY TCP6 fe80::1 fe80::2 40000 5432\r\n"
    assert proxy_v1_header(("2001:db8::7", 1), ("2001:db8::1", 2)) == \
        b"PROXY TCP6 2001:db8::7 2001:db8::1 1 2\r\n"
    assert proxy_v1_header(("203.0.113.9", 1), ("10.0.0.1", 2)) == \
        b"PROXY TCP4 203.0.113.9 10.0.0.1 1 2\r\n"


def test_v1_header_sent_first_names_the_client_exactly() -> None:
    async def body(tcp: TCPServices) -> None:
        backend = await _Backend(quiet=True).start()
        port = free_port()
        await tcp.update([_target(port, backend.port, encode=True)])
        r, w = await asyncio.open_connection("127.0.0.1", port)
        mine = w.get_extra_info("sockname")
        w.write(b"data")
        await w.drain()
        want = f"PROXY TCP4 127.0.0.1 127.0.0.1 {mine[1]} {port}\r\n".encode() + b"data"
        for _ in range(100):
            if backend.seen and backend.seen[0] == want:
                break
            await asyncio.sleep(0.01)
        assert backend.seen == [want]
        w.close()
        backend.close()

    _run(body)


# --- the PROXY protocol read from the client (the 3rd field) ------------------------------


def _v2(src: str, dst: str, sport: int, dport: int) -> bytes:
    body = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
    return (b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(body))
            + body)


def test_decode_takes_a_v2_header_and_refuses_a_truncated_one() -> None:
    async def body(tcp: TCPServices) -> None:
        backend = await _Backend().start()
        port = free_port()
        await tcp.update([_target(port, backend.port, decode=True)])
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(_v2("203.0.113.7", "10.0.0.1", 5555, 9000) + b"hi")
        assert await _read(r, 4) == b"R:hi"
        w.close()
        # A header cut short, then the client's end: closed, nothing reaches the backend.
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(_v2("203.0.113.7", "10.0.0.1", 5555, 9000)[:14])
        w.write_eof()
        assert await _read(r, 1) == b""
        w.close()
        assert backend.seen == [b"hi"]
        backend.close()

    _run(body)


def test_decode_closes_a_client_that_never_sends_the_header() -> None:
    async def body(tcp: TCPServices) -> None:
        backend = await _Backend().start()
        port = free_port()
        await tcp.update([_target(port, backend.port, decode=True)])
        r, w = await asyncio.open_connection("127.0.0.1", port)
        assert await _read(r, 1) == b""   # closed after proxy-protocol-header-timeout
        assert tcp.active() == 0 and backend.seen == []
        w.close()
        backend.close()

    _run(body, proxy_protocol_header_timeout=0.2)


def test_without_decode_a_proxy_line_is_the_clients_data() -> None:
    async def body(tcp: TCPServices) -> None:
        backend = await _Backend().start()
        port = free_port()
        await tcp.update([_target(port, backend.port)])
        line = b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nhi"
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(line)
        assert await _read(r, len(line) + 2) == b"R:" + line
        w.close()
        backend.close()

    _run(body)


# --- reloads and stopping ------------------------------------------------------------------


def test_a_removed_port_stops_listening_and_its_pipe_goes_on() -> None:
    async def body(tcp: TCPServices) -> None:
        backend = await _Backend().start()
        port = free_port()
        await tcp.update([_target(port, backend.port)])
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"1")
        assert await _read(r, 3) == b"R:1"
        await tcp.update([])
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)
        w.write(b"2")
        assert await _read(r, 3) == b"R:2"
        w.close()
        backend.close()

    _run(body)


def test_an_update_after_close_opens_no_port() -> None:
    # Before: a reload landing while serve stopped (TCPServices.close ran) opened its ports
    # again, listening with no one left to close them.
    async def go() -> None:
        backend = await _Backend().start()
        tcp = TCPServices(ProxySettings(), host="127.0.0.1")
        port = free_port()
        await tcp.close()
        assert await tcp.update([_target(port, backend.port)]) == []
        assert tcp.ports == []
        with pytest.raises(OSError):
            await asyncio.open_connection("127.0.0.1", port)
        backend.close()

    asyncio.run(go())


def test_close_cuts_the_pipes_left_after_its_grace() -> None:
    async def go() -> None:
        backend = await _Backend().start()
        tcp = TCPServices(ProxySettings(), host="127.0.0.1")
        port = free_port()
        await tcp.update([_target(port, backend.port)])
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"1")
        assert await _read(r, 3) == b"R:1"
        await tcp.close(0.1)
        assert tcp.active() == 0
        assert await _read(r, 1) == b""
        w.close()
        backend.close()

    asyncio.run(go())


# --- flow control ----------------------------------------------------------------------------


def test_a_backend_that_does_not_read_stops_reading_the_client() -> None:
    async def body(tcp: TCPServices) -> None:
        held: list[asyncio.StreamWriter] = []

        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            held.append(w)   # reads nothing

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = free_port()
        await tcp.update([_target(port, server.sockets[0].getsockname()[1])])
        r, w = await asyncio.open_connection("127.0.0.1", port)
        chunk = b"x" * 65536
        for _ in range(400):   # at most 25 MiB: the kernel buffers fill long before
            w.write(chunk)
            try:
                await asyncio.wait_for(w.drain(), 0.05)
            except TimeoutError:
                break
        else:
            raise AssertionError("the client was never held back")
        await asyncio.sleep(0.05)
        (pipe,) = tcp.passthrough
        assert pipe.upstream is not None
        assert pipe.upstream.get_write_buffer_size() <= 256 * 1024
        assert not pipe.client.is_reading()
        w.close()
        for h in held:
            h.close()
        server.close()

    _run(body)



# --- serve's feed: a ConfigMap edit the API server would refuse -----------------------------


def _manifests(backend: int, data: str) -> str:
    return (
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: tcp, namespace: ingress}\n"
        f"data:\n{data}"
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: db, namespace: default}\n"
        "spec:\n  ports:\n  - {name: p, port: 80, targetPort: " + str(backend) + "}\n"
        "---\napiVersion: v1\nkind: Endpoints\nmetadata: {name: db, namespace: default}\n"
        "subsets:\n- addresses: [{ip: 127.0.0.1}]\n"
        "  ports: [{name: p, port: " + str(backend) + "}]\n")


def test_an_invalid_configmap_edit_keeps_the_services_in_use(
        caplog: pytest.LogCaptureFixture) -> None:
    # Before: the ConfigMap (left out of Resources.config_maps by the load) read as "not
    # found": every TCP port closed. The API server refuses such an edit (a value that is no
    # string), so ingress-nginx goes on with the ConfigMap it has.
    from ingresslib import parse_manifests
    from ingresslib._serve_tcp import TCPServicesFeed

    async def go() -> None:
        backend = await _Backend().start()
        port, other = free_port(), free_port()
        feed = TCPServicesFeed("ingress/tcp", "127.0.0.1", ProxySettings(), reserved=list)
        try:
            await feed.update(parse_manifests(_manifests(
                backend.port, f'  "{port}": default/db:80\n')), ProxySettings())
            assert feed.services.ports == [port]
            bad = parse_manifests(_manifests(
                backend.port, f'  "{port}": default/db:80\n  "{other}": 5432\n'))
            assert bad.config_maps == ()
            with caplog.at_level(logging.WARNING, "ingresslib.server"):
                await feed.update(bad, ProxySettings())
            assert feed.services.ports == [port]
            assert "ConfigMap ingress/tcp is not a valid ConfigMap" in caplog.text
            assert "not found" not in caplog.text
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"hi")
            assert await _read(r, 4) == b"R:hi"
            w.close()
            # A ConfigMap that is gone: no TCP service.
            await feed.update(parse_manifests(_manifests(backend.port, "  {}\n").replace(
                "kind: ConfigMap", "kind: Secret")), ProxySettings())
            assert feed.services.ports == []
            # Invalid from the first snapshot on: nothing to keep, and not "not found".
            first = TCPServicesFeed("ingress/tcp", "127.0.0.1", ProxySettings(), reserved=list)
            caplog.clear()
            with caplog.at_level(logging.WARNING, "ingresslib.server"):
                await first.update(bad, ProxySettings())
            assert first.services.ports == []
            assert "is not a valid ConfigMap" in caplog.text and "not found" not in caplog.text
            await first.close(0)
        finally:
            await feed.close(0)
            backend.close()

    asyncio.run(go())


# --- a removed port's connections ---------------------------------------------------------


def test_a_removed_ports_connections_are_cut_after_the_drain_timeout() -> None:
    # Before: a removed port's connections went on for as long as they were not quiet (an
    # operator closing a TCP service kept its clients in); nginx's old workers keep theirs for
    # at most worker_shutdown_timeout after the reload (serve: --shutdown-timeout).
    async def go() -> None:
        backend = await _Backend().start()
        tcp = TCPServices(ProxySettings(), host="127.0.0.1", drain_timeout=0.2)
        gone, kept = free_port(), free_port()
        try:
            await tcp.update([_target(gone, backend.port), _target(kept, backend.port)])
            r1, w1 = await asyncio.open_connection("127.0.0.1", gone)
            r2, w2 = await asyncio.open_connection("127.0.0.1", kept)
            for w, r in ((w1, r1), (w2, r2)):
                w.write(b"1")
                assert await _read(r, 3) == b"R:1"
            await tcp.update([_target(kept, backend.port)])
            w1.write(b"2")   # goes on for now
            assert await _read(r1, 3) == b"R:2"
            assert await _read(r1, 1, wait=1.5) == b""   # then cut
            w2.write(b"3")   # the kept port's connection is left alone
            assert await _read(r2, 3) == b"R:3"
            assert tcp.active() == 1
            w1.close()
            w2.close()
        finally:
            await tcp.close()
            backend.close()

    asyncio.run(go())


def test_a_header_timeout_of_0_still_bounds_the_wait_for_the_header(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Before: proxy-protocol-header-timeout 0 armed no timer: a client that never sent its
    # header held its connection (and a --max-connections place) for ever. nginx's stream
    # block has its own proxy_protocol_timeout (30s by default; here 0.2s to be quick).
    import ingresslib._tcp_proxy as tcp_proxy

    monkeypatch.setattr(tcp_proxy, "PROXY_PROTOCOL_TIMEOUT", 0.2, raising=False)

    async def body(tcp: TCPServices) -> None:
        backend = await _Backend().start()
        port = free_port()
        await tcp.update([_target(port, backend.port, decode=True)])
        r, w = await asyncio.open_connection("127.0.0.1", port)
        assert await _read(r, 1) == b""
        for _ in range(100):
            if not tcp.active():
                break
            await asyncio.sleep(0.01)
        assert tcp.active() == 0
        w.close()
        backend.close()

    _run(body, proxy_protocol_header_timeout=0)


def test_stopping_during_a_reload_leaves_no_port_listening() -> None:
    # Before: TCPServicesFeed.close cancelled the reload still applying; asyncio's
    # create_server yields once after it starts listening, and a cancel there left the port
    # listening, closed by no one. (The yield is made longer here, to land in it for sure.)
    from ingresslib import parse_manifests
    from ingresslib._serve_tcp import TCPServicesFeed

    async def go() -> None:
        backend = await _Backend().start()
        port = free_port()
        loop = asyncio.get_running_loop()
        real = loop.create_server
        servers: list[asyncio.Server] = []

        async def slow_create_server(*args: Any, **kwargs: Any) -> asyncio.Server:
            server = await real(*args, **kwargs)
            servers.append(server)
            await asyncio.sleep(0.1)   # as create_server's own "await tasks.sleep(0)"
            return server

        loop.create_server = slow_create_server  # type: ignore[method-assign]
        feed = TCPServicesFeed("ingress/tcp", "127.0.0.1", ProxySettings(), reserved=list)
        try:
            feed.apply(parse_manifests(_manifests(
                backend.port, f'  "{port}": default/db:80\n')), ProxySettings())
            while not servers:
                await asyncio.sleep(0.01)
            await feed.close(0)
            assert feed.services.ports == []
            assert not servers[0].is_serving()
            with pytest.raises(OSError):
                await asyncio.open_connection("127.0.0.1", port)
        finally:
            loop.create_server = real  # type: ignore[method-assign]
            for server in servers:
                server.close()
            backend.close()

    asyncio.run(go())


def test_a_connect_failing_with_no_os_error_closes_the_client(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The lead's fix from R10's note: _StreamPipe._connect caught only OSError/TimeoutError;
    # anything else ended its task with the client paused and its place held. Now as
    # PassthroughPipe: logged, this connection closed, the server goes on.
    async def body(tcp: TCPServices) -> None:
        loop = asyncio.get_running_loop()
        real = loop.create_connection

        backend = free_port()

        async def broken(factory: Any, host: Any = None, port: Any = None,
                         **kwargs: Any) -> Any:
            if port == backend:   # the pipe's connect, not the test client's
                raise RuntimeError("a resolver bug")
            return await real(factory, host, port, **kwargs)

        port = free_port()
        await tcp.update([_target(port, backend)])
        monkeypatch.setattr(loop, "create_connection", broken)
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"x")
        assert await _read(r, 1) == b""   # closed, not held
        w.close()
        for _ in range(100):
            if not tcp.active():
                break
            await asyncio.sleep(0.01)
        assert tcp.active() == 0

    _run(body)
