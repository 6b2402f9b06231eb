"""Session 26 (RC): a review of the connection-level features, ``ssl-passthrough`` and the PROXY
protocol (``use-proxy-protocol``), against nginx's src/core/ngx_proxy_protocol.c and
ingress-nginx's TLS proxy (internal/ingress/controller/nginx.go ``setupSSLProxy``, tcpproxy
``TCPProxy.Handle``/``pipe``), through ``ProxyServer`` on 127.0.0.1.

Tests named ``..._guard`` pass on the code before the review too (they pin what the review
found right); every other one failed there.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import Any

import pytest
import trustme

from ingresslib._resources import Resources
from ingresslib._router import Router
from ingresslib._tls import CertificateStore
from ingresslib.proxy._proxy_protocol import ProxyHeader, ProxyProtocolError, ProxyProtocolReader
from ingresslib.proxy._server import ProxyServer
from tests._server_helpers import StubRouter
from tests.test_passthrough_s26 import _client_ctx, _ingress, _res, _service
from tests.test_tls import _ingress as _tls_ingress
from tests.test_tls import _pems, _secret

_PASS = {"nginx.ingress.kubernetes.io/ssl-passthrough": "true"}
_HEADER = b"PROXY TCP4 203.0.113.7 198.51.100.1 40000 443\r\n"


def _read(data: bytes) -> tuple[ProxyHeader | None, bytes]:
    r = ProxyProtocolReader()
    h = r.feed(data)
    return h, r.rest


def _hello(sni: str) -> bytes:
    """A TLS client's first flight (its ClientHello) naming ``sni``."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = _client_ctx(None).wrap_bio(inc, out, server_hostname=sni)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return out.read()


async def _first_bytes(reader: asyncio.StreamReader, timeout: float = 2.0) -> bytes:
    try:
        return await asyncio.wait_for(reader.read(65536), timeout)
    except TimeoutError:
        return b"(nothing within the timeout)"


# --- the reader: what nginx's ngx_proxy_protocol_read takes --------------------------------------


@pytest.mark.parametrize("line, ports", [
    # ngx_proxy_protocol_read_port: ngx_atoi of the digits up to the separator, any number of
    # them ("n < 0 || n > 65535" is the only bound): leading zeros are read as decimal.
    (b"PROXY TCP4 192.0.2.1 198.51.100.2 000080 0443\r\n", (80, 443)),
    (b"PROXY TCP4 192.0.2.1 198.51.100.2 0000000000000000056324 00000000000443\r\n",
     (56324, 443)),
    (b"PROXY TCP6 2001:db8::1 2001:db8::2 00 065535\r\n", (0, 65535)),
])
def test_v1_ports_with_leading_zeros_are_read_as_nginx_reads_them(
        line: bytes, ports: tuple[int, int]) -> None:
    h, rest = _read(line + b"GET")
    assert h is not None and (h.source_port, h.destination_port) == ports
    assert h.source is not None and h.source[1] == ports[0] and rest == b"GET"


@pytest.mark.parametrize("line", [
    b"PROXY TCP4 192.0.2.1 198.51.100.2 000065536 443\r\n",   # still 0..65535 only
    b"PROXY TCP4 192.0.2.1 198.51.100.2 99999999999999999999 443\r\n",
    b"PROXY TCP4 192.0.2.1 198.51.100.2 80 +443\r\n",
])
def test_v1_ports_out_of_range_still_broken_guard(line: bytes) -> None:
    with pytest.raises(ProxyProtocolError):
        _read(line)


# --- PROXY protocol and the TLS listener ---------------------------------------------------------


class _CallbackOnlyStore:
    """A certificate store of another kind (``ProxyServer`` takes any store with
    ``server_context()``): the listener puts TLS on at once, before any byte is read."""

    def __init__(self, store: CertificateStore) -> None:
        self.server_context = store.server_context
        self.has_tls = store.has_tls


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.mark.network
@pytest.mark.asyncio
async def test_header_and_client_hello_in_one_segment_with_a_callback_store(
        ca: trustme.CA) -> None:
    # The header's reader handed the socket to the listener's protocol, which had already
    # given it to the TLS layer: the ClientHello read with the header was fed to the protocol
    # that no longer owned the socket, and dropped. The handshake then waited for bytes the
    # client had sent, until the client gave up.
    store = CertificateStore()
    store.update(Resources(ingresses=(_tls_ingress("w", [(("pp.test",), "s")]),),
                           secrets=(_secret("s", *_pems(ca.issue_cert("pp.test"))),)))
    server = ProxyServer(StubRouter([]), cert_store=_CallbackOnlyStore(store),
                         use_proxy_protocol=True, proxy_real_ip_cidr=("127.0.0.0/8",))
    await server.start(None, ("127.0.0.1", 0))
    try:
        r, w = await asyncio.open_connection("127.0.0.1", server.addresses[0][2])
        w.write(_HEADER + _hello("pp.test"))
        answer = await _first_bytes(r)
        assert answer[:1] == b"\x16", answer[:40]   # the server's handshake answer
        w.close()
    finally:
        await server.shutdown(1)


# --- ssl-passthrough: where a connection goes -----------------------------------------------------


def test_passthrough_never_pipes_to_the_default_backend_annotations_service() -> None:
    # The '/' rule's Service has no ready endpoint; the Ingress's default-backend annotation
    # names one that has. HTTP requests go there (controller.go: location.Backend becomes
    # "custom-default-backend-..."), but ingress-nginx's TLS proxy dials the location's own
    # Service (getConfiguration: SSLPassthroughBackend{Service: loc.Service}; nginx.go:
    # TCPServer{IP: svc.Spec.ClusterIP}), which has none: the connection fails. The TLS bytes
    # of pass.test went to the other Service instead.
    from ingresslib.proxy._passthrough import CLOSE, PassthroughRoutes

    ann = {**_PASS, "nginx.ingress.kubernetes.io/default-backend": "other"}
    router = Router(_res(_ingress("pass", "pass.test", "pass", annotations=ann),
                         _service("pass", None), _service("other", 3333)))
    decision = router.route("GET", "pass.test", "/", (), "192.0.2.1")
    assert decision is not None and decision.endpoint == ("127.0.0.1", 3333)   # HTTP: there
    assert PassthroughRoutes(True).decide(router, b"pass.test", "192.0.2.1") == CLOSE
    # guard: with an endpoint of its own, the rule's Service is piped to as before
    router = Router(_res(_ingress("pass", "pass.test", "pass", annotations=ann),
                         _service("pass", 4444), _service("other", 3333)))
    assert PassthroughRoutes(True).decide(router, b"pass.test", None) == ("127.0.0.1", 4444)


# --- PROXY protocol: what the header's client decides (guards) ------------------------------------


async def _echo_backend() -> asyncio.Server:
    async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while True:
                await r.readuntil(b"\r\n\r\n")
                w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await w.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            w.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0)


async def _status(port: int, data: bytes) -> int:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        w.write(data)
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 2)
        return int(head.split(b" ", 2)[1])
    finally:
        w.close()


@pytest.mark.network
@pytest.mark.asyncio
@pytest.mark.parametrize("cidr, allowed_client", [
    (("127.0.0.0/8",), "203.0.113.7"),     # trusted peer: the header's client is judged
    (("10.0.0.0/8",), "127.0.0.1"),        # untrusted: the TCP peer, the header changes nothing
])
async def test_whitelist_and_record_judge_the_headers_client_exactly_when_trusted_guard(
        cidr: tuple[str, ...], allowed_client: str) -> None:
    backend = await _echo_backend()
    port = backend.sockets[0].getsockname()[1]
    ann = {"nginx.ingress.kubernetes.io/whitelist-source-range": f"{allowed_client}/32"}
    router = Router(_res(_ingress("w", "pp.test", "web", annotations=ann), _service("web", port)))
    server = ProxyServer(router, use_proxy_protocol=True, proxy_real_ip_cidr=cidr)
    records: list[Any] = []
    server.on_record = records.append
    await server.start(("127.0.0.1", 0))
    try:
        lport = server.addresses[0][2]
        get = b"GET / HTTP/1.1\r\nHost: pp.test\r\nX-Forwarded-For: 198.51.100.9\r\n\r\n"
        assert await _status(lport, _HEADER + get) == 200
        other = b"PROXY TCP4 198.51.100.9 198.51.100.1 40000 443\r\n"
        expected = 403 if allowed_client != "127.0.0.1" else 200
        assert await _status(lport, other + get) == expected
        await asyncio.sleep(0.05)
        clients = [r.client_ip for r in records]
        if allowed_client == "127.0.0.1":
            assert clients == ["127.0.0.1", "127.0.0.1"]
        else:
            assert clients == ["203.0.113.7", "198.51.100.9"]
    finally:
        await server.shutdown(1)
        backend.close()


@pytest.mark.network
@pytest.mark.asyncio
async def test_second_proxy_header_is_request_data_guard() -> None:
    # The header is the connection's first bytes only: a second one (in the same segment, or
    # on a later keep-alive request) is a malformed request line, never read as a header.
    backend = await _echo_backend()
    router = Router(_res(_ingress("w", "pp.test", "web"),
                         _service("web", backend.sockets[0].getsockname()[1])))
    server = ProxyServer(router, use_proxy_protocol=True, proxy_real_ip_cidr=("127.0.0.0/8",))
    await server.start(("127.0.0.1", 0))
    try:
        get = b"GET / HTTP/1.1\r\nHost: pp.test\r\n\r\n"
        assert await _status(server.addresses[0][2], _HEADER + _HEADER + get) == 400
    finally:
        await server.shutdown(1)
        backend.close()


# --- ssl-passthrough through the listener (guards) ------------------------------------------------


class _Recorder:
    """A plain TCP backend (the pipe never looks at TLS): records what each connection sends
    and echoes it back."""

    def __init__(self) -> None:
        self.received: list[bytearray] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> int:
        async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            got = bytearray()
            self.received.append(got)
            try:
                while data := await r.read(65536):
                    got += data
                    w.write(data)
                    await w.drain()
            except ConnectionError:
                pass
            finally:
                w.close()

        self.server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    def close(self) -> None:
        assert self.server is not None
        self.server.close()


async def _until(check: Callable[[], bool]) -> bool:
    for _ in range(200):
        if check():
            return True
        await asyncio.sleep(0.01)
    return check()


async def _passthrough_server(ca: trustme.CA, port: int, *extra: str,
                              **kw: Any) -> ProxyServer:
    from tests.test_passthrough_s26 import _secret as _k8s_secret

    res = _res(_ingress("pass", "pass.test", "pass", annotations=_PASS, tls_secret="pass-tls"),
               _service("pass", port), _k8s_secret("pass-tls", ca.issue_cert("pass.test")),
               *extra)
    store = CertificateStore()
    store.update(res)
    server = ProxyServer(Router(res), cert_store=store, ssl_passthrough=True, **kw)
    await server.start(None, ("127.0.0.1", 0))
    return server


@pytest.mark.network
@pytest.mark.asyncio
async def test_proxy_header_is_not_passed_on_and_a_certificate_does_not_matter_guard(
        ca: trustme.CA) -> None:
    # ingress-nginx's TLS proxy writes a PROXY header only to nginx's own port
    # (setupSSLProxy: Default TCPServer{ProxyProtocol: true}); its passthrough servers have
    # ProxyProtocol: false. It runs before nginx: a passthrough host's own certificate is
    # never served. The header, with the ClientHello in the same segment, is read here; the
    # backend gets the ClientHello, byte for byte.
    rec = _Recorder()
    server = await _passthrough_server(ca, await rec.start(), use_proxy_protocol=True,
                                       proxy_real_ip_cidr=("127.0.0.0/8",))
    try:
        hello = _hello("pass.test")
        r, w = await asyncio.open_connection("127.0.0.1", server.addresses[0][2])
        w.write(_HEADER + hello + b"more")
        assert await asyncio.wait_for(r.readexactly(len(hello) + 4), 2) == hello + b"more"
        assert bytes(rec.received[0]) == hello + b"more"
        w.close()
    finally:
        await server.shutdown(1)
        rec.close()


@pytest.mark.network
@pytest.mark.asyncio
async def test_open_pipe_outlives_its_ingress_guard(ca: trustme.CA) -> None:
    # ingress-nginx's TCPProxy.Handle runs a connection to its end whatever the later
    # configuration; a new connection follows the new one (here: terminated, the host's
    # own certificate served).
    import dataclasses

    rec = _Recorder()
    server = await _passthrough_server(ca, await rec.start())
    try:
        r, w = await asyncio.open_connection("127.0.0.1", server.addresses[0][2])
        hello = _hello("pass.test")
        w.write(hello)
        assert await asyncio.wait_for(r.readexactly(len(hello)), 2) == hello
        router = server.router
        res = router.resources
        router.update(dataclasses.replace(res, ingresses=tuple(
            i for i in res.ingresses if i.metadata.name != "pass")))
        w.write(b"still piped")
        assert await asyncio.wait_for(r.readexactly(11), 2) == b"still piped"
        ctx = ssl.create_default_context()
        ca.configure_trust(ctx)
        r2, w2 = await asyncio.wait_for(asyncio.open_connection(
            "127.0.0.1", server.addresses[0][2], ssl=ctx, server_hostname="pass.test"), 2)
        assert w2.get_extra_info("ssl_object").getpeercert() is not None   # ours, verified
        w2.close()
        assert len(rec.received) == 1 and len(server.passthrough) == 1
        w.close()
        assert await _until(lambda: not server.passthrough)
    finally:
        await server.shutdown(1)
        rec.close()


@pytest.mark.network
@pytest.mark.asyncio
async def test_ipv6_endpoint_guard(ca: trustme.CA) -> None:
    got: list[bytes] = []

    async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        got.append(await r.read(65536))
        w.close()

    backend = await asyncio.start_server(serve, "::1", 0)
    port = backend.sockets[0].getsockname()[1]
    v6 = _service("pass", port).replace("addressType: IPv4", "addressType: IPv6").replace(
        "127.0.0.1", "'::1'")
    res = _res(_ingress("pass", "pass.test", "pass", annotations=_PASS), v6)
    server = ProxyServer(Router(res), cert_store=CertificateStore(), ssl_passthrough=True)
    await server.start(None, ("127.0.0.1", 0))
    try:
        hello = _hello("pass.test")
        r, w = await asyncio.open_connection("127.0.0.1", server.addresses[0][2])
        w.write(hello)
        assert await _until(lambda: bool(got)) and got[0] == hello
        w.close()
    finally:
        await server.shutdown(1)
        backend.close()


@pytest.mark.network
@pytest.mark.asyncio
async def test_no_new_pipe_while_shutting_down(ca: trustme.CA) -> None:
    # shutdown's grace period: a TLS connection admitted before it whose ClientHello ends now
    # is refused (``_Downstream.connection_made``: "if srv.draining: abort"), as a new pipe is
    # to be: it was dialed and piped for the grace period, then cut mid-stream by the abort
    # at its end.
    rec = _Recorder()
    server = await _passthrough_server(ca, await rec.start())
    try:
        hello = _hello("pass.test")
        r, w = await asyncio.open_connection("127.0.0.1", server.addresses[0][2])
        w.write(hello[:10])
        assert await _until(lambda: len(server.handshaking) == 1)
        server.draining = True            # what shutdown() sets first
        w.write(hello[10:])
        try:
            rest = await asyncio.wait_for(r.read(), 2)
        except ConnectionError:
            rest = b""
        except TimeoutError:
            rest = b"(still open)"
        assert rest == b""
        assert rec.received == [] and not server.passthrough
        w.close()
    finally:
        await server.shutdown(1)
        rec.close()


@pytest.mark.network
@pytest.mark.asyncio
async def test_rate_limit_is_keyed_by_the_headers_client_guard() -> None:
    backend = await _echo_backend()
    ann = {"nginx.ingress.kubernetes.io/limit-rps": "1"}
    router = Router(_res(_ingress("w", "pp.test", "web", annotations=ann),
                         _service("web", backend.sockets[0].getsockname()[1])))
    server = ProxyServer(router, use_proxy_protocol=True, proxy_real_ip_cidr=("127.0.0.0/8",))
    await server.start(("127.0.0.1", 0))
    try:
        port = server.addresses[0][2]
        get = b"GET / HTTP/1.1\r\nHost: pp.test\r\n\r\n"
        a = b"PROXY TCP4 203.0.113.7 198.51.100.1 40000 443\r\n"
        b = b"PROXY TCP4 203.0.113.8 198.51.100.1 40000 443\r\n"
        statuses = [await _status(port, a + get) for _ in range(12)]
        assert statuses[0] == 200 and statuses[-1] == 503, statuses
        assert await _status(port, b + get) == 200    # another client: its own bucket
        assert await _status(port, a + get) == 503
    finally:
        await server.shutdown(1)
        backend.close()
