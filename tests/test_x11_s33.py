"""Session 33 (x11): a second review of ``ssl-passthrough`` against ingress-nginx.

Spec: pkg/tcpproxy/tcp.go (``TCPProxy.Handle``/``Get``/``pipe``), internal/ingress/controller/
nginx.go (``setupSSLProxy``; the ``PassthroughBackends`` loop that fills ``Proxy.ServerList``),
controller.go (``createUpstreams``, ``getBackendServers``, ``getConfiguration``).

Found wrong (each test below not marked "guard" failed before this session's fix):

- The ``/`` rule's Service does not exist: ingress-nginx's upstream has no Service
  (``createUpstreams``: "Error obtaining Service" ``continue`` before ``upstreams[name].Service =
  s``), so the root location's neither; nginx.go skips that passthrough backend ("Missing
  Service for SSL Passthrough backend %q") and ``TCPProxy.Get`` gives the host's connections the
  default, nginx's own TLS listener: terminated, not closed. ingresslib closed them.
- A headless Service (``clusterIP: None``): the Go proxy dials ``net.JoinHostPort("None",
  port)``, a name that does not resolve, and closes the client's connection. ingresslib piped
  to a pod.
- An ExternalName Service: its ClusterIP is empty and the proxy dials ``":port"``, the
  controller's own addresses, never the external name. ingresslib dialed the external name.

Checked and found right (guards here or in earlier sessions' modules, no change):

- ClientHelloReader against hostile bytes: random corruption and truncation of a real hello in
  random fragments (no exception), a hello in 1-byte records (read whole, linear), an oversized
  record or a hello over ``CLIENT_HELLO_MAX_LENGTH`` (reading ends without a name: terminated,
  never passed through), buffering bounded at 256 KiB, the read bounded by the head deadline
  from accept (Go's proxy has no bound: a client that never sends holds a goroutine for ever).
- The name: not ASCII, with a NUL, a trailing dot, an IP literal: no passthrough host equals
  it, TLS is terminated here (as ``Get``'s ``s.Hostname == host`` finds none); upper case
  matches without case (documented divergence; clients send lower case).
- A first byte that is no TLS one: answered as plain HTTP on the HTTPS port, never piped.
- Which backend: the host's first Ingress decides, the Prefix/ImplementationSpecific ``/``
  rule's primary backend (never a canary), wildcard hosts never, flag off never.
- The pipe: the first end (EOF either side) closes both as ``pipe``; no PROXY protocol header
  towards a passthrough backend (``ProxyProtocol: false``); bytes read to find the name sent
  first, whole; flow control both ways; connect/idle/flush bounds; counted in
  ``max_connections``; nothing in the access log or metrics (the Go proxy logs at klog V(4)).
- ``server-alias`` names are never passthrough names (``PassthroughBackends`` carry
  ``server.Hostname`` only), as here.

Noticed and left alone: ``Get`` compares as written, so a ClientHello whose name is literally
``*.example.com`` reaches a wildcard host's backend there (clients never send one; here a
wildcard host is never a passthrough one, with a warning). Go's proxy reads one record of at
most 16 KiB; a hello split over records is read whole here (documented).
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl

import pytest

from ingresslib import parse_manifests
from ingresslib._router import Router
from ingresslib._tls import CertificateStore
from ingresslib.proxy._client_hello import ClientHelloReader
from ingresslib.proxy._passthrough import CLOSE, PassthroughRoutes
from ingresslib.proxy._server import ProxyServer

_PT = "nginx.ingress.kubernetes.io/ssl-passthrough"


def _ingress(host: str, service: str) -> str:
    return f"""apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: pt-{service}
  namespace: default
  annotations: {{{_PT}: "true"}}
spec:
  rules:
  - host: {host}
    http:
      paths:
      - path: /
        pathType: Prefix
        backend: {{service: {{name: {service}, port: {{number: 443}}}}}}
"""


def _service(name: str, port: int, spec: str = "") -> str:
    return f"""apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec: {{ports: [{{port: 443, targetPort: {port}}}]{spec}}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-1, namespace: default, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: [{{port: {port}}}]
endpoints: [{{addresses: [127.0.0.1]}}]
"""


def _router(*docs: str) -> Router:
    return Router(parse_manifests("---\n".join(docs)))


# --- which Service the Go proxy can dial ----------------------------------------------------------

def test_missing_service_is_terminated_here_with_a_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    router = _router(_ingress("x.test", "nosvc"))
    routes = PassthroughRoutes(True)
    with caplog.at_level(logging.WARNING, "ingresslib.server"):
        assert routes.decide(router, b"x.test", None) is None
        assert routes.decide(router, b"x.test", None) is None
    said = [r.getMessage() for r in caplog.records if "default/nosvc" in r.getMessage()]
    assert len(said) == 1 and "terminated here" in said[0]   # once, not per connection


def test_missing_service_then_created_passes_through() -> None:
    # Services change without a table rebuild (Router.update keeps the table): decided anew.
    router = _router(_ingress("x.test", "svc"))
    routes = PassthroughRoutes(True)
    assert routes.decide(router, b"x.test", None) is None
    router.update(parse_manifests("---\n".join([_ingress("x.test", "svc"),
                                                _service("svc", 9443)])))
    assert routes.decide(router, b"x.test", None) == ("127.0.0.1", 9443)


@pytest.mark.parametrize("spec", [", clusterIP: None",
                                  ", type: ExternalName, externalName: backend.example"])
def test_headless_or_external_name_service_closes(spec: str,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    router = _router(_ingress("x.test", "svc"), _service("svc", 9443, spec))
    with caplog.at_level(logging.WARNING, "ingresslib.server"):
        assert PassthroughRoutes(True).decide(router, b"x.test", None) == CLOSE
    assert any("default/svc" in r.getMessage() for r in caplog.records)


def test_guard_cluster_ip_service_passes_through() -> None:
    for spec in ("", ", clusterIP: 10.96.0.7"):
        router = _router(_ingress("x.test", "svc"), _service("svc", 9443, spec))
        assert PassthroughRoutes(True).decide(router, b"x.test", None) == ("127.0.0.1", 9443)


def test_explain_says_a_missing_service_is_terminated() -> None:
    from ingresslib._explain import _passthrough

    res = parse_manifests(_ingress("x.test", "nosvc"))
    pt = _passthrough(res, "x.test", None)
    assert pt is not None and pt["endpoint"] is None
    assert "terminated here" in pt["reason"]


def test_check_reports_what_serve_logs_of_the_services() -> None:
    import ingresslib

    res = parse_manifests("---\n".join([
        _ingress("x.test", "nosvc"), _ingress("y.test", "hl"),
        _service("hl", 9443, ", clusterIP: None")]))
    said = {(d.object, d.field, d.message.split(":")[0])
            for d in ingresslib.check(res, ssl_passthrough=True) if d.field == "spec.rules"
            and "ssl-passthrough" in d.message}
    assert said == {("Ingress default/pt-nosvc", "spec.rules", "ssl-passthrough host x.test"),
                    ("Ingress default/pt-hl", "spec.rules", "ssl-passthrough host y.test")}
    # Without the flag, nothing passes through: no such note.
    assert not any("its '/' rule's Service" in d.message
                   for d in ingresslib.check(res, ssl_passthrough=False))


@pytest.mark.asyncio
async def test_missing_service_tls_is_terminated_by_the_listener() -> None:
    # Through the TLS listener: the handshake completes with ingresslib's certificate and the
    # request gets the missing backend's 503 (nginx: the host's server on its TLS port).
    res = parse_manifests(_ingress("x.test", "nosvc"))
    store = CertificateStore()
    store.update(res)
    proxy = ProxyServer(Router(res), cert_store=store, ssl_passthrough=True,
                        client_header_timeout=3)
    await proxy.start(("127.0.0.1", 0), ("127.0.0.1", 0))
    try:
        port = [a for a in proxy.addresses if a[0] == "https"][0][2]
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        r, w = await asyncio.wait_for(asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, server_hostname="x.test"), 3)
        w.write(b"GET / HTTP/1.1\r\nHost: x.test\r\nConnection: close\r\n\r\n")
        answer = await asyncio.wait_for(r.read(), 3)
        w.close()
        assert answer.startswith(b"HTTP/1.1 503")
    finally:
        await proxy.shutdown(0.5)


# --- guards: the ClientHello reader against hostile bytes -----------------------------------------

def _hello(sni: str) -> bytes:
    ctx = ssl.create_default_context()
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=sni)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return out.read()


def test_guard_reader_survives_corrupted_and_truncated_hellos() -> None:
    base = _hello("x.test")
    rng = random.Random(33)
    for _ in range(3000):
        data = bytearray(base)
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        data = data[:rng.randrange(1, len(data) + 1)]
        r, pos = ClientHelloReader(), 0
        while pos < len(data):
            step = rng.randint(1, 64)
            r.feed(bytes(data[pos:pos + step]))
            pos += step
        assert r.server_name is None or isinstance(r.server_name, bytes)


def test_guard_hello_in_one_byte_records_and_oversized_ones() -> None:
    base = _hello("x.test")
    body = base[5:]
    r = ClientHelloReader()
    assert r.feed(b"".join(b"\x16\x03\x01\x00\x01" + bytes([c]) for c in body))
    assert r.server_name == b"x.test"
    # A ClientHello claiming more than OpenSSL's CLIENT_HELLO_MAX_LENGTH: no name.
    r = ClientHelloReader()
    assert r.feed(b"\x16\x03\x01\x00\x04\x01\x10\x00\x00")
    assert r.server_name is None
    # Records that never complete a hello: reading stops past 256 KiB, without a name.
    r = ClientHelloReader()
    done = False
    record = b"\x16\x03\x01\x40\x00" + b"\x01\xff\xff\xff" + b"\x00" * (0x4000 - 4)
    for _ in range(20):
        done = r.feed(record if not r.data else b"\x16\x03\x01\x40\x00" + b"\x00" * 0x4000)
        if done:
            break
    assert done and r.server_name is None and len(r.data) <= 256 * 1024 + 0x4005


@pytest.mark.parametrize("sni", [b"x.test.", b"x.test\x00", b"x.t\xc3\xa9st", b"127.0.0.1",
                                 b"X.TEST.", b""])
def test_guard_odd_names_are_not_passed_through(sni: bytes) -> None:
    router = _router(_ingress("x.test", "svc"), _service("svc", 9443))
    assert PassthroughRoutes(True).decide(router, sni, None) is None


@pytest.mark.asyncio
async def test_guard_unfinished_hello_is_cut_at_the_head_deadline() -> None:
    # A ClientHello that never completes holds its socket only until client_header_timeout
    # from accept (ingress-nginx's Go proxy: io.ReadFull without a deadline, for ever).
    res = parse_manifests("---\n".join([_ingress("x.test", "svc"), _service("svc", 9443)]))
    store = CertificateStore()
    store.update(res)
    proxy = ProxyServer(Router(res), cert_store=store, ssl_passthrough=True,
                        client_header_timeout=0.5)
    await proxy.start(("127.0.0.1", 0), ("127.0.0.1", 0))
    try:
        port = [a for a in proxy.addresses if a[0] == "https"][0][2]
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(_hello("x.test")[:40])
        loop = asyncio.get_running_loop()
        start = loop.time()
        assert await asyncio.wait_for(r.read(), 3) == b""
        assert loop.time() - start < 2
        w.close()
    finally:
        await proxy.shutdown(0.5)
