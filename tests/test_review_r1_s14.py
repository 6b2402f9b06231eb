"""Session 14 review R1 of the new code: the cluster watch's basic-auth Secrets and the HTTPS
listener's ClientHello phase. The test named as a defect failed on the code before its fix; the
ones marked "Guard" held on review and pin what was checked."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from test_kube import Harness, eventually, ingress, names, svc
from test_kube_s14 import (auth_secret, basic_ingress, h, secret_names,  # noqa: F401
                           start_with_auth)

pytestmark = pytest.mark.network


def tls(name: str, ns: str = "default") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns},
            "type": "kubernetes.io/tls", "data": {"tls.crt": "eA==", "tls.key": "eA=="}}


def types(w: Any) -> dict[str, str]:
    return {s.metadata.name: s.type for s in w.store.snapshot().secrets}


# -- defect: a late first auth Secret list held back every swap ----------------------------------


@pytest.mark.asyncio
async def test_first_basic_auth_ingress_after_the_first_table_holds_back_no_swap(
        h: Harness) -> None:
    # Failed before: the flusher held back every snapshot until the auth Secrets' first list
    # attempt ended, also when that first list came after the first table (the first
    # Ingress with auth-type: basic added to a running cluster): endpoint and Ingress changes
    # waited up to the list's end (here the 10 s read timeout). Only the first table waits
    # for it (docs/cluster.md, "First table"); a Secret fetched later holds back no swap.
    await start_with_auth(h, svc("web"), ingress("plain"),
                          auth_secret("passwords", {"alice": "pw"}))
    # The auth Secret watch starts with the first Ingress that names a Secret; its first list
    # is slow (a large cluster's Opaque Secrets, paged; here one that never answers).
    h.kube.hang_next("secrets")
    h.kube.put(basic_ingress("staff", "passwords", host="b.example"))
    h.kube.put(ingress("other", path="/other"))
    await eventually(lambda: names(h.last.ingresses) == ["other", "plain", "staff"], timeout=3)


# -- the basic-auth Secrets (guards) ---------------------------------------------------------


@pytest.mark.asyncio
async def test_secret_dropped_once_no_ingress_names_it(h: Harness) -> None:
    # Guard: two Ingresses name one Secret ("name" and "namespace/name"); it stays while one
    # does, and leaves the store with the last.
    w = await start_with_auth(h, svc("web"), basic_ingress("staff", "passwords"),
                              basic_ingress("staff2", "default/passwords", host="b.example"),
                              auth_secret("passwords", {"alice": "pw"}))
    assert secret_names(h.last) == ["default/passwords"]
    h.kube.delete("Ingress", "default", "staff")
    await asyncio.sleep(0.3)
    assert secret_names(h.last) == ["default/passwords"]
    h.kube.delete("Ingress", "default", "staff2")
    await eventually(lambda: secret_names(h.last) == [])
    assert ("v1/Secret", "default", "passwords") not in w.store


@pytest.mark.asyncio
async def test_secret_recreated_with_another_type_under_both_watches(h: Harness) -> None:
    # Guard: the type of a Secret cannot change, but it can be deleted and re-created with
    # another; each watch's DELETED (``where=``) removes only its own type.
    w = await start_with_auth(h, svc("web"), basic_ingress("staff", "passwords"),
                              auth_secret("passwords", {"alice": "pw"}), secret_watches=2)
    h.kube.delete("Secret", "default", "passwords")
    h.kube.put(tls("passwords"))
    await eventually(lambda: types(w) == {"passwords": "kubernetes.io/tls"})
    h.kube.delete("Secret", "default", "passwords")
    h.kube.put(auth_secret("passwords", {"alice": "pw2"}))
    await eventually(lambda: types(w) == {"passwords": "Opaque"})
    await asyncio.sleep(0.3)
    assert types(w) == {"passwords": "Opaque"}


@pytest.mark.asyncio
async def test_stop_with_a_get_under_way(h: Harness) -> None:
    # Guard: a get the API server never answers does not hold up stopping, nor stays behind.
    w = await start_with_auth(h, svc("web"), basic_ingress("staff", "first"),
                              auth_secret("first", {"alice": "pw"}), secret_watches=1)
    h.kube.hang_next("secrets")
    h.kube.put(basic_ingress("staff", "second"))
    await eventually(lambda: ("secrets", "default", "second") in h.kube.gets)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await h.stop()
    assert loop.time() - t0 < 2
    assert w._auth is not None and not w._auth._tasks


# -- the HTTPS listener's ClientHello phase (guards: these held on review) ------------------------


@pytest.mark.asyncio
async def test_hello_phase_sockets_are_counted_until_closed_and_shutdown_closes_them() -> None:
    # Guard. Every way out of the hello phase gives the socket back (``handshaking``), and
    # shutdown() closes the sockets still in it, at once.
    import socket
    import struct

    from ingresslib._tls import CertificateStore
    from ingresslib.proxy._server import ProxyServer
    from tests._server_helpers import StubRouter
    from tests.test_tls_s14 import _client_hello

    server = ProxyServer(StubRouter([]), cert_store=CertificateStore(), client_header_timeout=5)
    await server.start(None, ("127.0.0.1", 0))
    port = server.addresses[0][2]
    loop = asyncio.get_running_loop()
    try:
        # Half a hello, then a close; a whole hello, then EOF; a whole hello, then a reset.
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(_client_hello(b"a.test")[:20])
        await eventually(lambda: len(server.handshaking) == 1)
        w.close()
        await eventually(lambda: not server.handshaking)
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(_client_hello(b"a.test"))
        w.write_eof()
        await eventually(lambda: not server.handshaking)
        w.close()
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(_client_hello(b"a.test"))
        await asyncio.sleep(0.05)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
        await eventually(lambda: not server.handshaking)
        # Three clients mid-hello at shutdown: closed by it, not left to the deadline.
        clients = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
        for _, w in clients:
            w.write(b"\x16\x03\x01")
        await eventually(lambda: len(server.handshaking) == 3)
        t0 = loop.time()
        await server.shutdown(2)
        for r, w in clients:
            try:  # closed with its bytes unread: a reset, or an EOF
                assert await asyncio.wait_for(r.read(), 1) == b""
            except ConnectionResetError:
                pass
            w.close()
        assert loop.time() - t0 < 1 and not server.handshaking and server.refused == 0
    finally:
        await server.shutdown(0)
