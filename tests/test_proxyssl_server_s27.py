"""Session 27, helper P1: ``proxy-ssl-*`` per server (host), as ingress-nginx writes it.

ingress-nginx controller.go ``createServers`` gives each server (host) the ``proxy-ssl-*`` of
its first Ingress, oldest first, whose Secret has a ``ca.crt`` ("if server.ProxySSL.CAFileName
== "" { server.ProxySSL = anns.ProxySSL }"; before one, each Ingress replaces the last), and
nginx.tmpl writes it in the server block ("{{ if not (empty $server.ProxySSL.CAFileName) }}
proxy_ssl_trusted_certificate ...; proxy_ssl_ciphers ...; proxy_ssl_protocols ...;
proxy_ssl_verify ...; proxy_ssl_verify_depth ...; {{ if not (empty
$server.ProxySSL.ProxySSLName) }} proxy_ssl_name ...; proxy_ssl_server_name ...; {{ end }}{{ end
}}", "{{ if not (empty $server.ProxySSL.PemFileName) }} proxy_ssl_certificate ..."). nginx
inherits each directive into the locations that do not write it: another Ingress's location on
the host, with ``backend-protocol: HTTPS`` and no ``proxy-ssl-secret``, is verified with the
first one's CA and name (ingresslib did not verify it: fail open).

Also: a TLS route with no ``proxy_ssl_*`` anywhere sends no SNI (nginx's ``proxy_ssl_server_name
off``; ingresslib sent a name endpoint's host name), and an IPv6 ``proxy-ssl-name`` never
verifies (nginx cuts the name at its first ``:``).
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
import types
from typing import Any

import pytest
import trustme

from ingresslib import parse_manifests
from ingresslib._models import ObjectMeta, Secret
from ingresslib._router import Router
from ingresslib.proxy import OpenUpstream, Proxy
from ingresslib.proxy import _server
from ingresslib.proxy._annotations import parse_route_options
from ingresslib.proxy import _proxy_ssl
from ingresslib.proxy._proxy_ssl import UpstreamTLS, name_matches
from ingresslib.proxy._server import ProxyServer
from ingresslib.proxy._settings import ProxySettings
from tests._server_helpers import Client, StubRouter

from _proxy_harness import ingress_yaml

P = "nginx.ingress.kubernetes.io/"
CA = trustme.CA()
OTHER_CA = trustme.CA()
LEAF = CA.issue_cert("backend.test")
CLIENT_CA = trustme.CA()
CLIENT = CLIENT_CA.issue_cert("proxy.test")
HTTPS = {P + "backend-protocol": "HTTPS"}
#: nginx's own proxy_ssl_* defaults (proxy/_proxy_ssl.py NGINX_DEFAULT).
NGINX_DEFAULT = UpstreamTLS()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _secret_yaml(name: str, *, ca: trustme.CA | None = CA, client: bool = False) -> str:
    data = {}
    if ca is not None:
        data["ca.crt"] = _b64(ca.cert_pem.bytes())
    if client:
        data["tls.crt"] = _b64(CLIENT.cert_chain_pems[0].bytes())
        data["tls.key"] = _b64(CLIENT.private_key_pem.bytes())
    body = ", ".join(f"{k}: {v}" for k, v in data.items())
    return f"""
---
apiVersion: v1
kind: Secret
metadata: {{name: {name}, namespace: default}}
type: Opaque
data: {{{body}}}
"""


def _pssl(secret: str = "up-tls", **kw: str) -> dict[str, str]:
    out = {**HTTPS, P + "proxy-ssl-secret": f"default/{secret}"}
    for k, v in kw.items():
        out[P + "proxy-ssl-" + k.replace("_", "-")] = v
    return out


def _manifests(port: int, *ingresses: tuple[str, str, dict[str, str], str],
               secrets: str = "") -> str:
    """Ingresses ``(name, host, annotations, path)``, each created a month after the one
    before (the first is the oldest), to Service ``web`` on 127.0.0.1:``port``."""
    docs = "".join(
        ingress_yaml(name, host, ann, path=path, created=f"2024-{i + 1:02d}-01T00:00:00Z")
        for i, (name, host, ann, path) in enumerate(ingresses))
    return docs + f"""
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: default}}
spec: {{ports: [{{port: 80, targetPort: {port}}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: web-1, namespace: default, labels: {{kubernetes.io/service-name: web}}}}
addressType: IPv4
ports: [{{port: {port}}}]
endpoints: [{{addresses: [127.0.0.1]}}]
""" + (secrets or _secret_yaml("up-tls"))


def _open(m: str, host: str, path: str) -> OpenUpstream:
    proxy = Proxy(Router(parse_manifests(m), seed=1), request_id=lambda: "rid", clock=None)
    conn = proxy.connection(("192.0.2.7", 5000), now=0.0)
    acts: list[Any] = conn.start(0.0)
    acts += conn.receive_data(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode(), 0.0)
    opens = [a for a in acts if isinstance(a, OpenUpstream)]
    assert len(opens) == 1, acts
    return opens[0]


# -- the core: OpenUpstream.tls_config of each location of a host -----------------------------


def test_another_ingress_on_the_host_is_verified_by_the_servers_proxy_ssl() -> None:
    m = _manifests(8443, ("a", "a.test", _pssl(verify="on", name="backend.test"), "/a"),
                   ("b", "a.test", HTTPS, "/b"), ("c", "c.test", HTTPS, "/"))
    own = _open(m, "a.test", "/a").tls_config
    assert own is not None and (own.verify, own.server_name, own.sni) == (
        True, "backend.test", False)
    # b writes no proxy_ssl_*: it inherits the server block's (a's, the oldest with a CA).
    tls = _open(m, "a.test", "/b").tls_config
    assert tls is not None
    assert (tls.verify, tls.ca, tls.server_name, tls.sni, tls.depth, tls.protocols) == (
        True, CA.cert_pem.bytes(), "backend.test", False, 1, ("TLSv1.2",))
    # Another host's server has none: nginx's defaults.
    assert _open(m, "c.test", "/").tls_config == NGINX_DEFAULT


def test_the_oldest_ingress_with_a_ca_configures_the_server_whatever_the_others() -> None:
    other = _secret_yaml("other-tls", ca=OTHER_CA)
    m = _manifests(8443, ("c", "a.test", HTTPS, "/c"),
                   ("a", "a.test", _pssl(verify="on", name="backend.test", server_name="on"),
                    "/a"),
                   ("b", "a.test", _pssl("other-tls", protocols="TLSv1.3"), "/b"),
                   secrets=_secret_yaml("up-tls") + other)
    # c is the oldest but sets nothing (no CA): a, the first with a CA, configures the server.
    tls = _open(m, "a.test", "/c").tls_config
    assert tls is not None
    assert (tls.verify, tls.ca, tls.server_name, tls.sni) == (
        True, CA.cert_pem.bytes(), "backend.test", True)
    # b writes its own five (its CA: verify off, TLSv1.3) and proxy_ssl_server_name off, but
    # no proxy_ssl_name: the server's backend.test is the name nginx uses for it.
    tls = _open(m, "a.test", "/b").tls_config
    assert tls is not None
    assert (tls.verify, tls.ca, tls.protocols, tls.server_name, tls.sni) == (
        False, OTHER_CA.cert_pem.bytes(), ("TLSv1.3",), "backend.test", False)


def test_the_servers_sni_is_written_only_with_a_proxy_ssl_name() -> None:
    # nginx.tmpl: "{{ if not (empty $server.ProxySSL.ProxySSLName) }} proxy_ssl_name ...;
    # proxy_ssl_server_name ...; {{ end }}": a's "on" without a name stays a's own.
    m = _manifests(8443, ("a", "a.test", _pssl(verify="on", server_name="on"), "/a"),
                   ("b", "a.test", HTTPS, "/b"))
    a = _open(m, "a.test", "/a").tls_config
    assert a is not None and (a.sni, a.server_name) == (True, "upstream_balancer")
    tls = _open(m, "a.test", "/b").tls_config
    assert tls is not None
    assert (tls.verify, tls.ca, tls.sni, tls.server_name) == (
        True, CA.cert_pem.bytes(), False, "upstream_balancer")


def test_a_location_with_a_client_certificate_only_takes_the_servers_ca() -> None:
    secrets = _secret_yaml("up-tls") + _secret_yaml("client-tls", ca=None, client=True)
    m = _manifests(8443, ("a", "a.test", _pssl(verify="on", name="backend.test"), "/a"),
                   ("b", "a.test", _pssl("client-tls"), "/b"), secrets=secrets)
    tls = _open(m, "a.test", "/b").tls_config
    assert tls is not None
    # b's Secret has no ca.crt: nginx.tmpl writes b's five only with one, so the server's
    # verification holds for b, with b's own client certificate.
    assert (tls.verify, tls.ca, tls.server_name) == (True, CA.cert_pem.bytes(), "backend.test")
    assert tls.cert == CLIENT.cert_chain_pems[0].bytes()


def test_without_any_ca_the_last_ingress_gives_the_servers_client_certificate() -> None:
    secrets = _secret_yaml("client-tls", ca=None, client=True)
    # The newer Ingress has the certificate-only Secret: it is the server's (the last one
    # replaced the older's empty configuration), written in the server block.
    m = _manifests(8443, ("b", "a.test", HTTPS, "/b"), ("a", "a.test", _pssl("client-tls"), "/a"),
                   secrets=secrets)
    tls = _open(m, "a.test", "/b").tls_config
    assert tls is not None and tls.cert == CLIENT.cert_chain_pems[0].bytes()
    assert (tls.verify, tls.sni) == (False, False)
    # The other way round the newer Ingress (no proxy-ssl-secret) leaves an empty one.
    m = _manifests(8443, ("a", "a.test", _pssl("client-tls"), "/a"), ("b", "a.test", HTTPS, "/b"),
                   secrets=secrets)
    assert _open(m, "a.test", "/b").tls_config == NGINX_DEFAULT


def test_an_unusable_secret_configures_no_server_and_denies_only_its_own_location() -> None:
    m = _manifests(8443, ("a", "a.test", _pssl("missing", verify="on"), "/a"),
                   ("b", "a.test", _pssl(verify="on", name="backend.test"), "/b"),
                   ("c", "a.test", HTTPS, "/c"))
    # a's Secret does not exist: proxyssl.go returns an empty Config, so b (the next with a
    # CA) configures the server; c inherits b's.
    tls = _open(m, "a.test", "/c").tls_config
    assert tls is not None and (tls.verify, tls.server_name) == (True, "backend.test")


def test_host_less_rules_share_their_own_server() -> None:
    m = _manifests(8443, ("a", "", _pssl(verify="on", name="backend.test"), "/a"),
                   ("b", "", HTTPS, "/b"), ("c", "c.test", HTTPS, "/c"))
    tls = _open(m, "any.test", "/b").tls_config
    assert tls is not None and (tls.verify, tls.server_name) == (True, "backend.test")
    assert _open(m, "c.test", "/c").tls_config == NGINX_DEFAULT


def test_canaries_and_hosts_without_proxy_ssl_make_no_server_configuration() -> None:
    canary = {**_pssl(verify="on"), P + "canary": "true", P + "canary-weight": "0"}
    m = _manifests(8443, ("a", "a.test", canary, "/b"), ("b", "a.test", HTTPS, "/b"))
    assert _open(m, "a.test", "/b").tls_config == NGINX_DEFAULT
    assert _proxy_ssl.server_proxy_ssl(Router(parse_manifests(m)).table.served, P) == {}


def test_a_tls_route_without_proxy_ssl_gets_nginxs_defaults_no_sni() -> None:
    # nginx.tmpl's http block writes no proxy_ssl_server_name (only the external-auth
    # location says "on"): nginx's default off, no SNI, whatever the endpoint.
    m = _manifests(8443, ("a", "a.test", HTTPS, "/"))
    tls = _open(m, "a.test", "/").tls_config
    assert tls == NGINX_DEFAULT and tls is not None and not tls.sni and not tls.verify


# -- IPv6 proxy-ssl-name ----------------------------------------------------------------------


def test_an_ipv6_proxy_ssl_name_never_matches_and_is_warned_with_verify() -> None:
    # nginx (ngx_http_upstream_ssl_name) cuts the name at its first ':': "fe80::1" is checked
    # as "fe80", "::1" as "": a certificate for the address never matches it.
    assert not name_matches({"subjectAltName": (("DNS", "fe80::1"),)}, "fe80::1")
    assert not name_matches({"subject": ((("commonName", "::1"),),)}, "::1")
    assert name_matches({"subjectAltName": (("DNS", "10.0.0.1"),)}, "10.0.0.1")
    secrets = (Secret(metadata=ObjectMeta(name="up-tls", namespace="default"),
                      string_data={"ca.crt": CA.cert_pem.bytes().decode()}),)
    opts = parse_route_options(_pssl(verify="on", name="fe80::1"), "/", ProxySettings(),
                               where="Ingress default/ing", namespace="default",
                               secrets=lambda: secrets, auth_warn=lambda w: None)
    said = [str(w) for w in opts.warnings]
    assert any("IPv6" in w and "proxy-ssl-name" in w for w in said), said


# -- end to end: ProxyServer, trustme certificates, TLS backends on 127.0.0.1 ------------------


class _Backend:
    """A TLS backend answering 200 "tls"; records each handshake's SNI."""

    def __init__(self, leaf: trustme.LeafCert = LEAF) -> None:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        leaf.configure_cert(ctx)
        self.sni: list[str | None] = []
        ctx.sni_callback = lambda obj, name, c: self.sni.append(name)  # type: ignore[assignment]
        self.ctx = ctx
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            self.writers.append(w)
            try:
                while True:
                    await r.readuntil(b"\r\n\r\n")
                    w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntls")
                    await w.drain()
            except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, OSError):
                w.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=self.ctx)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    async def stop(self) -> None:
        self.server.close()
        for w in self.writers:
            w.close()


def _e2e(make_router: Any, backend: _Backend, gets: tuple[tuple[str, str], ...]) -> list[int]:
    async def run() -> list[int]:
        port = await backend.start()
        server = ProxyServer(make_router(port))
        await server.start(("127.0.0.1", 0))
        try:
            async with asyncio.timeout(5):
                c = await Client.open(server.addresses[0][2])
                statuses = [(await c.get(host, path)).status for host, path in gets]
                await c.close()
            return statuses
        finally:
            await server.shutdown(0.5)
            await backend.stop()
    return asyncio.run(run())


def _two_ingresses(port: int) -> Router:
    return Router(parse_manifests(_manifests(
        port, ("a", "a.test", _pssl(verify="on", name="backend.test"), "/a"),
        ("b", "a.test", HTTPS, "/b"))), seed=1)


def test_e2e_another_ingresss_https_backend_is_verified_with_the_servers_ca() -> None:
    # A backend whose certificate another CA issued: nginx refuses it for /b too (502).
    wrong = _Backend(OTHER_CA.issue_cert("backend.test"))
    assert _e2e(_two_ingresses, wrong, (("a.test", "/a"), ("a.test", "/b"))) == [502, 502]
    assert _e2e(_two_ingresses, _Backend(), (("a.test", "/a"), ("a.test", "/b"))) == [200, 200]


def test_e2e_a_name_endpoint_gets_no_sni_without_proxy_ssl(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # "localhost" stands for an ExternalName's DNS name; the loopback guard is lifted for the
    # test (the backend is ours, on 127.0.0.1).
    monkeypatch.setattr(_server, "_reaches_this_host", lambda addr: False)
    real = socket.getaddrinfo

    def v4(host: Any, port: Any, *a: Any, **kw: Any) -> Any:
        return [i for i in real(host, port, *a, **kw) if i[0] == socket.AF_INET]
    monkeypatch.setattr(socket, "getaddrinfo", v4)

    def router(port: int) -> StubRouter:
        r = StubRouter([("localhost", port)], annotations=HTTPS)
        r.resources = types.SimpleNamespace(secrets=())  # type: ignore[attr-defined]
        return r
    b = _Backend()
    assert _e2e(router, b, (("a.test", "/"),)) == [200]
    assert b.sni == [None]  # nginx's proxy_ssl_server_name off (before: "localhost")


def test_explain_shows_what_a_location_inherits_from_its_host() -> None:
    import ingresslib
    from ingresslib._explain import render_text

    m = _manifests(8443, ("a", "a.test", _pssl(verify="on", name="backend.test"), "/a"),
                   ("b", "a.test", HTTPS, "/b"))
    doc = ingresslib.explain(parse_manifests(m), "http://a.test/b")
    p = doc["proxy_ssl"]
    assert (p["secret"], p["server_secret"], p["verify"], p["name"], p["sent"]) == (
        None, "default/up-tls", True, "backend.test", True)
    assert "proxy-ssl (the host's Secret default/up-tls): verify on" in render_text(doc)
