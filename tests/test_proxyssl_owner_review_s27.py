"""Session 27, review R5: the server-level ``proxy-ssl-*`` (helper P1's) attacked.

* ingress-nginx's external-auth location (``location = /_external-auth-...``, also the global
  one's) and a mirror's (``buildMirrorLocations``: ``location = /_mirror-...``) sit inside the
  host's server block, after its ``proxy_ssl_*`` (nginx.tmpl: "{{ if not (empty
  $server.ProxySSL.CAFileName) }} proxy_ssl_trusted_certificate ...; proxy_ssl_verify ...;
  ..."): nginx inherits them, so a host that verifies its backends verifies its auth service
  and its mirror with the same CA (the auth location adds "proxy_ssl_server_name on"; the name
  is the server's ``proxy-ssl-name`` when it writes one, else the URL's host, ``$proxy_host``).
  ingresslib connected to both unverified (fail open).
* the ConfigMap's ``proxy-ssl-location-only`` (controller.go ``createServers``: "if
  !n.store.GetBackendConfiguration().ProxySSLLocationOnly { ... server.ProxySSL =
  anns.ProxySSL }") was known and not read: the server level stayed.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from typing import Any

import trustme

from ingresslib import parse_manifests
from ingresslib._config import parse_config_data
from ingresslib._router import Router
from ingresslib.proxy import OpenUpstream, Proxy
from ingresslib.proxy._mirror import Mirror
from ingresslib.proxy._proxy_ssl import UpstreamTLS
from ingresslib.proxy._server import ProxyServer
from ingresslib.proxy._settings import ProxySettings
from tests._server_helpers import Client

from _proxy_harness import ingress_yaml

P = "nginx.ingress.kubernetes.io/"
CA = trustme.CA()
OTHER_CA = trustme.CA()
LEAF = CA.issue_cert("backend.test")
HTTPS = {P + "backend-protocol": "HTTPS"}
NGINX_DEFAULT = UpstreamTLS()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _secret_yaml(name: str = "up-tls", ca: trustme.CA = CA) -> str:
    return f"""
---
apiVersion: v1
kind: Secret
metadata: {{name: {name}, namespace: default}}
type: Opaque
data: {{ca.crt: {_b64(ca.cert_pem.bytes())}}}
"""


def _pssl(**kw: str) -> dict[str, str]:
    out = {**HTTPS, P + "proxy-ssl-secret": "default/up-tls"}
    for k, v in kw.items():
        out[P + "proxy-ssl-" + k.replace("_", "-")] = v
    return out


def _manifests(port: int, *ingresses: tuple[str, str, dict[str, str], str]) -> str:
    """Ingresses ``(name, host, annotations, path)``, the first the oldest, to Service ``web``
    on 127.0.0.1:``port``, and the Secret ``up-tls`` (``ca.crt``: CA)."""
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
""" + _secret_yaml()


def _actions(m: str, host: str, path: str, settings: ProxySettings | None = None) -> list[Any]:
    proxy = Proxy(Router(parse_manifests(m), seed=1), settings, request_id=lambda: "rid",
                  clock=None)
    conn = proxy.connection(("192.0.2.7", 5000), now=0.0)
    acts: list[Any] = conn.start(0.0)
    acts += conn.receive_data(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode(), 0.0)
    return acts


def _open(m: str, host: str, path: str, settings: ProxySettings | None = None) -> OpenUpstream:
    opens = [a for a in _actions(m, host, path, settings) if isinstance(a, OpenUpstream)]
    assert len(opens) == 1, opens
    return opens[0]


# -- proxy-ssl-location-only -------------------------------------------------------------------

def test_proxy_ssl_location_only_is_read_from_the_configmap() -> None:
    cfg = parse_config_data({"proxy-ssl-location-only": "true"})
    assert cfg.settings.proxy_ssl_location_only is True
    assert not any("proxy-ssl-location-only" in w for w in cfg.warnings), cfg.warnings
    assert parse_config_data({}).settings.proxy_ssl_location_only is False


def test_proxy_ssl_location_only_leaves_the_other_locations_with_nginxs_defaults() -> None:
    m = _manifests(8443, ("a", "a.test", _pssl(verify="on", name="backend.test"), "/a"),
                   ("b", "a.test", HTTPS, "/b"))
    only = parse_config_data({"proxy-ssl-location-only": "true"}).settings
    # The location writing its own proxy_ssl_* keeps them.
    own = _open(m, "a.test", "/a", only).tls_config
    assert own is not None and (own.verify, own.server_name) == (True, "backend.test")
    # b writes none, and the server block writes none either: nginx's defaults.
    assert _open(m, "a.test", "/b", only).tls_config == NGINX_DEFAULT
    # Without the key b inherits the server's (P1's behaviour, unchanged).
    tls = _open(m, "a.test", "/b").tls_config
    assert tls is not None and tls.verify and tls.ca == CA.cert_pem.bytes()


# -- the auth subrequest inherits the server block's proxy_ssl_* --------------------------------

def _auth_open(ann: dict[str, str], path: str = "/b",
               settings: ProxySettings | None = None) -> OpenUpstream:
    m = _manifests(8443, ("a", "a.test", ann, "/a"),
                   ("b", "a.test", {P + "auth-url": "https://auth.test:9443/check"}, "/b"))
    opens = [a for a in _actions(m, "a.test", path, settings) if isinstance(a, OpenUpstream)]
    assert opens and opens[0].endpoint == ("auth.test", 9443), opens
    return opens[0]


def test_auth_subrequest_is_verified_with_the_servers_ca_and_name() -> None:
    tls = _auth_open(_pssl(verify="on", name="backend.test")).tls_config
    assert tls is not None
    # The server's CA, verify, name; the auth location's own "proxy_ssl_server_name on".
    assert (tls.verify, tls.ca, tls.server_name, tls.sni, tls.protocols) == (
        True, CA.cert_pem.bytes(), "backend.test", True, ("TLSv1.2",))


def test_auth_subrequest_checks_its_own_host_without_a_server_proxy_ssl_name() -> None:
    tls = _auth_open(_pssl(verify="on")).tls_config
    assert tls is not None
    # No proxy_ssl_name in the server block: $proxy_host, the auth URL's host.
    assert (tls.verify, tls.server_name, tls.sni) == (True, "auth.test", True)


def test_global_auth_subrequest_inherits_the_routes_server_level_too() -> None:
    m = _manifests(8443, ("a", "a.test", _pssl(verify="on", name="backend.test"), "/a"),
                   ("b", "a.test", {}, "/b"), ("c", "c.test", {}, "/c"))
    settings = ProxySettings(global_auth_url="https://gauth.test/check")
    tls = _open(m, "a.test", "/b", settings).tls_config
    assert tls is not None and (tls.verify, tls.server_name, tls.sni) == (
        True, "backend.test", True)
    # Another host's server has no proxy_ssl_*: the auth subrequest keeps its defaults.
    assert _open(m, "c.test", "/c", settings).tls_config is None


def test_auth_subrequest_keeps_its_defaults_without_a_server_level() -> None:
    assert _auth_open(HTTPS).tls_config is None
    only = parse_config_data({"proxy-ssl-location-only": "true"}).settings
    assert _auth_open(_pssl(verify="on", name="backend.test"), settings=only).tls_config is None


# -- the mirror inherits them too ---------------------------------------------------------------

def _mirror(ann: dict[str, str], target: str = "https://mirror.test/m") -> Mirror:
    m = _manifests(8443, ("a", "a.test", ann, "/a"),
                   ("b", "a.test", {P + "mirror-target": target}, "/b"))
    mirrors = [a for a in _actions(m, "a.test", "/b") if isinstance(a, Mirror)]
    assert len(mirrors) == 1, mirrors
    return mirrors[0]


def test_mirror_is_verified_with_the_servers_ca() -> None:
    mir = _mirror(_pssl(verify="on", name="backend.test", server_name="on"))
    assert mir.tls_config is not None
    assert (mir.tls_config.verify, mir.tls_config.ca, mir.tls_config.server_name,
            mir.tls_config.sni) == (True, CA.cert_pem.bytes(), "backend.test", True)
    # No server proxy_ssl_name: the target's host, and no SNI (the mirror location writes
    # no proxy_ssl_server_name; the server writes it only with a name).
    mir = _mirror(_pssl(verify="on"))
    assert mir.tls_config is not None
    assert (mir.tls_config.verify, mir.tls_config.server_name, mir.tls_config.sni) == (
        True, "mirror.test", False)


def test_a_plain_http_mirror_or_a_host_without_server_level_gets_no_tls_config() -> None:
    assert _mirror(_pssl(verify="on"), "http://mirror.test/m").tls_config is None
    assert _mirror(HTTPS).tls_config is None


# -- end to end: ProxyServer against TLS services on 127.0.0.1 ---------------------------------

class _Service:
    """An HTTP/1.1 service answering 200 ``ok`` (over TLS with ``leaf``); counts the requests
    it read."""

    def __init__(self, leaf: trustme.LeafCert | None) -> None:
        self.ctx: ssl.SSLContext | None = None
        if leaf is not None:
            self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            leaf.configure_cert(self.ctx)
        self.requests = 0
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            self.writers.append(w)
            try:
                while True:
                    await r.readuntil(b"\r\n\r\n")
                    self.requests += 1
                    w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
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
        await self.server.wait_closed()


def _run(leaf: trustme.LeafCert, kind: str) -> tuple[int, int]:
    """A host whose server verifies (CA, backend.test); route /b (plain http backend) with an
    ``https`` auth-url or mirror-target to a TLS service holding ``leaf``. Returns the
    client's status and the requests the service read."""
    async def run() -> tuple[int, int]:
        svc = _Service(leaf)
        sport = await svc.start()
        plain = _Service(None)
        bport = await plain.start()
        key = "auth-url" if kind == "auth" else "mirror-target"
        m = _manifests(bport, ("a", "a.test", _pssl(verify="on", name="backend.test"), "/a"),
                       ("b", "a.test", {P + key: f"https://127.0.0.1:{sport}/x"}, "/b"))
        server = ProxyServer(Router(parse_manifests(m), seed=1))
        await server.start(("127.0.0.1", 0))
        try:
            async with asyncio.timeout(5):
                c = await Client.open(server.addresses[0][2])
                status = (await c.get("a.test", "/b")).status
                await c.close()
                while server.mirrors:
                    await asyncio.sleep(0.01)
            return status, svc.requests
        finally:
            await server.shutdown(0.5)
            await svc.stop()
            await plain.stop()
    return asyncio.run(run())


def test_e2e_auth_service_with_a_certificate_of_another_ca_is_refused() -> None:
    # nginx: the auth subrequest's handshake fails verification -> the request answers 500.
    assert _run(OTHER_CA.issue_cert("backend.test"), "auth") == (500, 0)
    assert _run(LEAF, "auth") == (200, 1)


def test_e2e_mirror_with_a_certificate_of_another_ca_gets_nothing() -> None:
    assert _run(OTHER_CA.issue_cert("backend.test"), "mirror") == (200, 0)
    assert _run(LEAF, "mirror") == (200, 1)


# -- guards: every way to reach a route of a verifying server stays verified ---------------------

def _verified(tls: UpstreamTLS | None) -> bool:
    return tls is not None and tls.verify and tls.ca == CA.cert_pem.bytes()


def test_guard_canary_alias_spelling_and_wildcard_routes_inherit_the_servers_verify() -> None:
    a = ("a", "a.test", {**_pssl(verify="on", name="backend.test"),
                         P + "server-alias": "alias.test"}, "/a")
    b = ("b", "a.test", HTTPS, "/b")
    canary = ingress_yaml("bc", "a.test", {P + "canary": "true", P + "canary-weight": "100",
                                           **HTTPS}, path="/b", created="2024-06-01T00:00:00Z")
    m = _manifests(8443, a, b) + canary
    assert _verified(_open(m, "a.test", "/b").tls_config)  # the canary's backend
    assert _verified(_open(m, "A.Test.", "/b").tls_config)  # the Host as a client spells it
    assert _verified(_open(m, "alias.test", "/b").tls_config)  # the server's alias
    m = _manifests(8443, ("w", "*.w.test", _pssl(verify="on", name="backend.test"), "/a"),
                   ("c", "*.w.test", HTTPS, "/c"), ("x", "x.w.test", HTTPS, "/b"))
    assert _verified(_open(m, "y.w.test", "/c").tls_config)
    # An exact host is a server of its own (nginx: server_name x.w.test): nothing inherited.
    assert _open(m, "x.w.test", "/b").tls_config == NGINX_DEFAULT


def test_guard_the_server_level_follows_the_secrets_and_a_new_router() -> None:
    m = _manifests(8443, ("a", "a.test", _pssl(verify="on", name="backend.test"), "/a"),
                   ("b", "a.test", HTTPS, "/b"))
    router = Router(parse_manifests(m), seed=1)
    proxy = Proxy(router, request_id=lambda: "rid", clock=None)

    def tls(path: str) -> Any:
        conn = proxy.connection(("192.0.2.7", 5000), now=0.0)
        acts = conn.start(0.0) + conn.receive_data(
            f"GET {path} HTTP/1.1\r\nHost: a.test\r\n\r\n".encode(), 0.0)
        opens = [x.tls_config for x in acts if isinstance(x, OpenUpstream)]
        return opens[0] if opens else "local"

    assert _verified(tls("/a")) and _verified(tls("/b"))
    # The Secret deleted: a's locations are denied (503, no upstream); the server then has
    # no proxy_ssl_* (proxyssl.go returns an empty Config with the error), as in nginx.
    router.update(parse_manifests(m.replace(_secret_yaml(), "")))
    assert tls("/a") == "local" and tls("/b") == NGINX_DEFAULT
    router.update(parse_manifests(m))  # repaired
    assert _verified(tls("/a")) and _verified(tls("/b"))
    other = m.replace(_secret_yaml(), _secret_yaml(ca=OTHER_CA))
    proxy.router = Router(parse_manifests(other), seed=1)  # ProxyServer's setter does this
    got = tls("/b")
    assert got.verify and got.ca == OTHER_CA.cert_pem.bytes()
