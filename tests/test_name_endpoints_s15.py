"""Session 15, N15: an endpoint given by *name* (an ExternalName Service's ``externalName``, an
FQDN EndpointSlice address) must not reach this host through what the name *resolves* to.

``_endpoints`` refuses such names by their text (``localhost``, loopback literals,
``*.localhost``); ``localhost.localdomain``, the machine's own host name or a DNS name whose A
record is (or, rebinding, becomes) 127.0.0.1 passed, and the proxy connected to its own loopback
ports. The server now resolves a name itself (``loop.getaddrinfo``, the lookup
``create_connection`` made), drops every address that reaches this host and connects the
socket to a remaining address (no second lookup). IP-literal endpoints are connected as before,
with no lookup.

No traffic leaves 127.0.0.1: made-up names are answered by a patched ``loop.getaddrinfo``, and
a connect to a documentation address (192.0.2.0/24) is redirected by a patched
``loop.sock_connect`` to a backend on 127.0.0.1 standing in for the remote host.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import trustme

from ingresslib.proxy import _server
from ingresslib.proxy._server import ProxyServer
from tests._server_helpers import Client, StubRouter

pytestmark = pytest.mark.network

HTTPS = {"nginx.ingress.kubernetes.io/backend-protocol": "HTTPS"}
REMOTE = "192.0.2.8"  # TEST-NET-1: never contacted, redirected to a local stand-in


class _Backend:
    """A backend on 127.0.0.1 that counts connections, remembers the SNI it was sent, and
    answers every request 200 with ``Connection: close`` (so each request is a new connect)."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.connections = 0
        self.sni: list[str | None] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self, tls: ssl.SSLContext | None = None) -> _Backend:
        if tls is not None:
            tls.sni_callback = lambda obj, name, ctx: self.sni.append(name)  # type: ignore[assignment,misc,arg-type,func-returns-value]
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=tls)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await r.readuntil(b"\r\n\r\n")
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                    % (len(self.body), self.body))
            await w.drain()
        except (OSError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        finally:
            w.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


def _info(addr: str, port: int) -> tuple[Any, ...]:
    if ":" in addr:
        return (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (addr, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, 6, "", (addr, port))


def _fake_resolver(monkeypatch: pytest.MonkeyPatch, answers: dict[str, Callable[[int], list[Any]]],
                   calls: list[str]) -> None:
    """``loop.getaddrinfo`` answers the names in ``answers`` (by port) and asks the real resolver
    otherwise; every call is recorded in ``calls``."""
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo

    async def getaddrinfo(host: Any, port: Any, *args: Any, **kw: Any) -> list[Any]:
        calls.append(str(host))
        if host in answers:
            return answers[host](int(port))
        return await real(host, port, *args, **kw)

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)


def _redirect_remote(monkeypatch: pytest.MonkeyPatch, stand_in: int, tried: list[str],
                     endpoint_port: int) -> None:
    """``loop.sock_connect`` to REMOTE goes to 127.0.0.1:``stand_in`` instead; every address
    tried at ``endpoint_port`` (the upstream's, not the test client's to the proxy) is recorded
    in ``tried``; a connect anywhere but 127.0.0.1 or REMOTE is refused."""
    loop = asyncio.get_running_loop()
    real = loop.sock_connect

    async def sock_connect(sock: socket.socket, address: Any) -> None:
        if address[1] == endpoint_port:
            tried.append(str(address[0]))
        if address[0] == REMOTE:
            return await real(sock, ("127.0.0.1", stand_in))
        if address[0] != "127.0.0.1":
            raise ConnectionRefusedError(f"test: no traffic to {address[0]}")
        return await real(sock, address)

    monkeypatch.setattr(loop, "sock_connect", sock_connect)


async def _proxy(endpoint: tuple[str, int], **kw: Any) -> tuple[ProxyServer, int]:
    annotations = kw.pop("annotations", None)
    server = ProxyServer(StubRouter([endpoint], annotations=annotations), **kw)
    await server.start(("127.0.0.1", 0))
    return server, server.addresses[0][2]


async def _get(port: int) -> tuple[int, bytes]:
    c = await Client.open(port)
    try:
        r = await c.get("example.test", "/")
        return r.status, r.body
    finally:
        await c.close()


@contextlib.asynccontextmanager
async def _behind_a_name(monkeypatch: pytest.MonkeyPatch, name: str,
                         answer: Callable[[int], list[Any]],
                         tls: tuple[ssl.SSLContext, ssl.SSLContext] | None = None,
                         **proxy_kw: Any) -> AsyncIterator[tuple[_Backend, _Backend, int,
                                                                  list[str]]]:
    """A proxy whose one endpoint is ``name`` at the port of ``local`` (a backend on 127.0.0.1
    answering "loopback-admin": what a loopback address would reach); ``name`` resolves by
    ``answer`` (given the port); REMOTE is stood in for by ``remote`` (answering "remote").
    Yields ``local``, ``remote``, the proxy's port and the addresses tried at the endpoint's
    port (see _redirect_remote); stops all three after."""
    local = await _Backend(b"loopback-admin").start(tls[0] if tls else None)
    remote = await _Backend(b"remote").start(tls[1] if tls else None)
    tried: list[str] = []
    _fake_resolver(monkeypatch, {name: answer}, [])
    _redirect_remote(monkeypatch, remote.port, tried, local.port)
    server, port = await _proxy((name, local.port), **proxy_kw)
    try:
        yield local, remote, port, tried
    finally:
        await server.shutdown()
        await local.stop()
        await remote.stop()


# --- the filter, unit level ---------------------------------------------------------------------


@pytest.mark.parametrize("addr, reaches", [
    ("127.0.0.1", True), ("127.3.4.5", True), ("0.0.0.0", True), ("::1", True), ("::", True),
    ("::ffff:127.0.0.1", True), ("::ffff:0.0.0.0", True), ("::1%lo", True),
    ("10.0.0.1", False), ("192.0.2.8", False), ("2001:db8::1", False), ("fe80::1%eth0", False),
    ("::ffff:10.0.0.1", False),
])
def test_defect_resolved_addresses_that_reach_this_host_are_recognised(addr: str,
                                                                      reaches: bool) -> None:
    assert _server._reaches_this_host(_info(addr, 80)[4]) is reaches


@pytest.mark.parametrize("host, literal", [
    ("10.0.0.1", True), ("127.0.0.1", True), ("::1", True), ("2001:db8::1", True),
    ("127.1", False), ("backend.example.com", False), ("localhost", False), ("vm", False),
])
def test_guard_ip_literals_are_told_from_names(host: str, literal: bool) -> None:
    assert _server._is_ip_literal(host) is literal


# --- end to end ---------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_defect_name_resolving_to_loopback_is_502_and_never_connected(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The A record of a name that passed the text check is 127.0.0.1: before, the request
    reached the loopback service; now 502, and one warning for the name however often."""
    local = await _Backend(b"loopback-admin").start()
    calls: list[str] = []
    _fake_resolver(monkeypatch, {"evil.example.test": lambda p: [_info("127.0.0.1", p)]}, calls)
    server, port = await _proxy(("evil.example.test", local.port))
    try:
        with caplog.at_level(logging.DEBUG, logger="ingresslib.server"):
            assert (await _get(port))[0] == 502
            assert (await _get(port))[0] == 502
        assert local.connections == 0
        assert calls.count("evil.example.test") == 2  # re-vetted at every connect
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1, warnings
        assert "evil.example.test" in warnings[0] and "127.0.0.1" in warnings[0]
    finally:
        await server.shutdown()
        await local.stop()


@pytest.mark.asyncio
async def test_defect_localhost_through_the_real_resolver_is_502() -> None:
    """The real resolver: ``localhost`` (here as the stand-in for ``localhost.localdomain`` or
    the machine's host name, which resolve the same way on many systems) reached a backend on
    127.0.0.1 when given to the server as a name."""
    local = await _Backend(b"loopback-admin").start()
    server, port = await _proxy(("localhost", local.port))
    try:
        assert (await _get(port))[0] == 502
        assert local.connections == 0
    finally:
        await server.shutdown()
        await local.stop()


@pytest.mark.asyncio
async def test_defect_mixed_answer_connects_only_to_the_address_elsewhere(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The name resolves to loopback, unspecified and IPv4-mapped loopback addresses first, and
    to one remote address last: only the remote one is tried (before: 127.0.0.1, first)."""
    async with _behind_a_name(monkeypatch, "mixed.example.test", lambda p: [
            _info("127.0.0.1", p), _info("::ffff:127.0.0.1", p), _info("0.0.0.0", p),
            _info("::1", p), _info(REMOTE, p)]) as (local, remote, port, tried):
        assert await _get(port) == (200, b"remote")
        assert local.connections == 0
        assert tried == [REMOTE]


@pytest.mark.asyncio
async def test_defect_rebinding_to_loopback_is_refused_at_the_next_connect(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS rebinding: the first lookup answers the remote address, the next one 127.0.0.1.
    Each connect is vetted on its own lookup and connects to what was vetted."""
    answers = iter([REMOTE, "127.0.0.1"])
    async with _behind_a_name(monkeypatch, "rebind.example.test",
                              lambda p: [_info(next(answers), p)]) as (local, remote, port, tried):
        assert await _get(port) == (200, b"remote")
        assert (await _get(port))[0] == 502
        assert local.connections == 0
        assert tried == [REMOTE]


@pytest.mark.asyncio
async def test_defect_https_upstream_connects_to_the_vetted_address_with_the_name_as_sni(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """backend-protocol HTTPS to a name resolving to [127.0.0.1, remote]: the TLS connection is
    made to the remote address, and its SNI is still the name (before: to 127.0.0.1)."""
    ca = trustme.CA()
    cert = ca.issue_cert("api.example.test")
    ctxs = []
    for _ in range(2):
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(ctx)
        ctxs.append(ctx)
    async with _behind_a_name(monkeypatch, "api.example.test", lambda p: [
            _info("127.0.0.1", p), _info(REMOTE, p)], tls=(ctxs[0], ctxs[1]),
            annotations=HTTPS) as (local, remote, port, tried):
        assert await _get(port) == (200, b"remote")
        # no SNI: nginx's proxy_ssl_server_name is off without proxy-ssl-* (session 27)
        assert remote.sni == [None]
        assert local.connections == 0 and local.sni == []


@pytest.mark.asyncio
async def test_guard_remaining_addresses_are_tried_in_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    """As ``create_connection`` did: an address that refuses the connect is one failed address,
    the next one is tried (within the one connect timeout)."""
    async with _behind_a_name(monkeypatch, "two.example.test", lambda p: [
            _info("192.0.2.9", p), _info("127.0.0.1", p), _info(REMOTE, p)]) as (
            local, remote, port, tried):
        assert await _get(port) == (200, b"remote")
        assert tried == ["192.0.2.9", REMOTE]
        assert local.connections == 0


@pytest.mark.asyncio
async def test_guard_ip_literal_endpoint_connects_with_no_lookup(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The common case (pod IPs; 127.0.0.1 in a local manifest): no getaddrinfo call, and
    127.0.0.1 as an IP literal stays allowed."""
    local = await _Backend(b"pod").start()
    calls: list[str] = []
    _fake_resolver(monkeypatch, {}, calls)
    server, port = await _proxy(("127.0.0.1", local.port))
    try:
        assert await _get(port) == (200, b"pod")
        assert await _get(port) == (200, b"pod")
        assert local.connections == 2
        assert calls == []
    finally:
        await server.shutdown()
        await local.stop()


@pytest.mark.asyncio
async def test_guard_name_that_does_not_resolve_is_502(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lookup failure stays what it was: a failed connect, 502."""
    calls: list[str] = []

    def fail(port: int) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    _fake_resolver(monkeypatch, {"gone.example.test": fail}, calls)
    server, port = await _proxy(("gone.example.test", 9))
    try:
        assert (await _get(port))[0] == 502
        assert calls == ["gone.example.test"]
    finally:
        await server.shutdown()


# --- through the Router: an ExternalName Service and an FQDN EndpointSlice ------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["ExternalName", "FQDN"])
async def test_defect_router_name_endpoint_resolving_to_loopback_is_502(
        monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    """The whole path: a name that passes ``_endpoints``' text check (so the Router keeps it
    as an endpoint) and resolves to 127.0.0.1 reached the proxy's loopback service."""
    from ingresslib._models import ServicePort
    from ingresslib._router import Router
    from tests._router_helpers import ingress, resources, service, slice_

    local = await _Backend(b"loopback-admin").start()
    name = "svc.attacker.example.test"
    if kind == "ExternalName":
        objs = [service("web", [ServicePort(80, "http", local.port)], type="ExternalName",
                        external_name=name)]
    else:
        objs = [service("web", [ServicePort(80, "http", local.port)]),
                slice_("web-fq", "web", [name], [("http", local.port)], address_type="FQDN")]
    router = Router(resources(ingress("web", [("a.test", "/", "Prefix", "web", "http")]), *objs))
    assert router.route("GET", "a.test", "/").endpoint == (name, local.port)
    calls: list[str] = []
    _fake_resolver(monkeypatch, {name: lambda p: [_info("127.0.0.1", p)]}, calls)
    server = ProxyServer(router)
    await server.start(("127.0.0.1", 0))
    try:
        c = await Client.open(server.addresses[0][2])
        try:
            assert (await c.get("a.test", "/")).status == 502
        finally:
            await c.close()
        assert local.connections == 0 and name in calls
    finally:
        await server.shutdown()
        await local.stop()
