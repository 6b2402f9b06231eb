"""Session 26, helper PS: TLS to the backends (``proxy-ssl-secret``, ``proxy-ssl-verify``,
``proxy-ssl-verify-depth``, ``proxy-ssl-name``, ``proxy-ssl-server-name``,
``proxy-ssl-protocols``, ``proxy-ssl-ciphers``; proxy/_proxy_ssl.py).

ingress-nginx's annotations/proxyssl (``Parse``: the Secret first, defaults and validators),
nginx.tmpl's ``proxy_ssl_*`` lines (verify, depth, protocols and ciphers only with a
``ca.crt``), nginx's ``proxy_ssl_name`` default ``$proxy_host`` (``upstream_balancer``,
kubernetes/ingress-nginx#4928). Before this session the seven annotations were "not implemented
by ingresslib; ignored": the proxy never verified a backend nor presented a certificate.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import types
from collections.abc import Callable
from typing import Any

import pytest
import trustme

import ingresslib
from ingresslib._models import ObjectMeta, Secret
from ingresslib.proxy import OpenUpstream, Proxy
from ingresslib.proxy._annotations import IMPLEMENTED, parse_route_options
from ingresslib.proxy._proxy_ssl import UpstreamTLS
from ingresslib.proxy._server import ProxyServer
from ingresslib.proxy._settings import ProxySettings
from tests._server_helpers import Client, StubRouter

P = "nginx.ingress.kubernetes.io/"
CA = trustme.CA()
OTHER_CA = trustme.CA()
LEAF = CA.issue_cert("backend.test")
CLIENT_CA = trustme.CA()
CLIENT = CLIENT_CA.issue_cert("proxy.test")
INTERMEDIATE = CA.create_child_ca()
DEEP_LEAF = INTERMEDIATE.issue_cert("backend.test")
DEEPER_LEAF = INTERMEDIATE.create_child_ca().issue_cert("backend.test")


def _secret(name: str = "up-tls", namespace: str = "default", *, ca: trustme.CA | None = CA,
            client: bool = False) -> Secret:
    data: dict[str, str] = {}
    if ca is not None:
        data["ca.crt"] = ca.cert_pem.bytes().decode()
    if client:
        data["tls.crt"] = CLIENT.cert_chain_pems[0].bytes().decode()
        data["tls.key"] = CLIENT.private_key_pem.bytes().decode()
    return Secret(metadata=ObjectMeta(name=name, namespace=namespace), string_data=data)


def _ann(**kw: str) -> dict[str, str]:
    out = {P + "backend-protocol": "HTTPS", P + "proxy-ssl-secret": "default/up-tls"}
    for k, v in kw.items():
        out[P + "proxy-ssl-" + k.replace("_", "-")] = v
    return out


class _Router(StubRouter):
    """A StubRouter whose ``resources.secrets`` the proxy reads."""

    def __init__(self, endpoints: list[tuple[str, int]], annotations: dict[str, str],
                 secrets: tuple[Secret, ...] = (_secret(),)) -> None:
        super().__init__(endpoints, annotations=annotations)
        self.resources = types.SimpleNamespace(secrets=secrets)


def _parse(ann: dict[str, str], secrets: tuple[Secret, ...] | None = (_secret(),)
           ) -> tuple[Any, list[str]]:
    said: list[str] = []
    opts = parse_route_options(ann, "/", ProxySettings(), where="Ingress default/ing",
                               namespace="default",
                               secrets=(lambda: secrets) if secrets is not None else None,
                               auth_warn=said.append)
    return opts, [str(w) for w in opts.warnings] + said


def _config(ann: dict[str, str], secrets: tuple[Secret, ...] = (_secret(),)) -> Any:
    opts, _ = _parse(ann, secrets)
    assert opts.proxy_ssl is not None
    return opts.proxy_ssl.config()


# -- parsing (annotations/proxyssl) -----------------------------------------------------------


def test_the_seven_annotations_are_implemented_and_no_longer_warned() -> None:
    for name in ("proxy-ssl-secret", "proxy-ssl-verify", "proxy-ssl-verify-depth",
                 "proxy-ssl-name", "proxy-ssl-server-name", "proxy-ssl-protocols",
                 "proxy-ssl-ciphers"):
        assert name in IMPLEMENTED
    _, said = _parse(_ann(verify="on", name="backend.test", verify_depth="2",
                          server_name="on", protocols="TLSv1.3", ciphers="HIGH"))
    assert not [w for w in said if "not implemented" in w], said
    assert said == []


def test_values_and_defaults_as_proxyssl_parse_reads_them() -> None:
    tls, denied = _config(_ann())
    assert denied is None
    # proxyssl.go defaults (written with a ca.crt): verify off, depth 1, TLSv1.2, DEFAULT,
    # no SNI; proxy_ssl_name unset: nginx's $proxy_host, upstream_balancer.
    assert (tls.verify, tls.depth, tls.protocols, tls.ciphers, tls.sni, tls.server_name) == (
        False, 1, ("TLSv1.2",), "DEFAULT", False, "upstream_balancer")
    assert tls.ca == CA.cert_pem.bytes() and tls.cert is None and tls.key is None
    tls, _ = _config(_ann(verify="on", verify_depth="3", name="backend.test",
                          server_name="on", protocols="TLSv1.3  TLSv1.2", ciphers="HIGH:!aNULL"))
    assert (tls.verify, tls.depth, tls.protocols, tls.ciphers, tls.sni, tls.server_name) == (
        True, 3, ("TLSv1.2", "TLSv1.3"), "HIGH:!aNULL", True, "backend.test")
    # "0" is the default depth 1 ("config.VerifyDepth == 0").
    assert _config(_ann(verify_depth="0"))[0].depth == 1


@pytest.mark.parametrize(("key", "value", "field", "default"), [
    ("verify", "yes", "verify", False),
    ("verify", "On", "verify", False),
    ("server-name", "true", "sni", False),
    ("verify-depth", "two", "depth", 1),
    ("verify-depth", "-1", "depth", 1),
    ("protocols", "TLSv1.1 TLSv1.2", "protocols", ("TLSv1.2",)),
    ("protocols", "SSLv3", "protocols", ("TLSv1.2",)),
    ("ciphers", "HIGH;", "ciphers", "DEFAULT"),
    ("name", "back end.test", "server_name", "upstream_balancer"),
    ("name", "$host", "server_name", "upstream_balancer"),
])
def test_an_invalid_value_is_warned_and_the_default_used(key: str, value: str, field: str,
                                                         default: object) -> None:
    ann = _ann()
    ann[P + "proxy-ssl-" + key] = value
    opts, said = _parse(ann)
    assert [w for w in said if f"{P}proxy-ssl-{key}" in w and "default" in w], said
    tls, denied = opts.proxy_ssl.config()
    assert denied is None and getattr(tls, field) == default


def test_verify_without_proxy_ssl_name_is_warned_it_checks_upstream_balancer() -> None:
    _, said = _parse(_ann(verify="on"))
    assert [w for w in said if "upstream_balancer" in w and "proxy-ssl-name" in w], said


def test_without_proxy_ssl_secret_the_others_are_warned_and_ignored() -> None:
    opts, said = _parse({P + "backend-protocol": "HTTPS", P + "proxy-ssl-verify": "on",
                         P + "proxy-ssl-name": "backend.test"})
    assert opts.proxy_ssl is None
    assert sorted(w.split(": annotation ")[1].split(":")[0] for w in said) == [
        P + "proxy-ssl-name", P + "proxy-ssl-verify"]
    assert all("ignored without" in w for w in said)


@pytest.mark.parametrize(("ref", "secrets", "why"), [
    ("up-tls", (_secret(),), "namespace/name"),
    ("other/up-tls", (_secret(namespace="other"),), "another namespace"),
    ("default/missing", (_secret(),), "no such Secret"),
    ("default/up-tls", (_secret(ca=None),), "no tls.crt/tls.key pair nor ca.crt"),
    ("default/up-tls", (Secret(metadata=ObjectMeta(name="up-tls", namespace="default"),
                               string_data={"ca.crt": "not a pem"}),), "ca.crt"),
    ("default/up-tls", (Secret(metadata=ObjectMeta(name="up-tls", namespace="default"),
                               string_data={"tls.crt": CLIENT.cert_chain_pems[0].bytes().decode(),
                                            "tls.key": OTHER_CA.issue_cert("x.test")
                                            .private_key_pem.bytes().decode()}),),
     "does not match"),
])
def test_an_unusable_secret_denies_the_location_503(ref: str, secrets: tuple[Secret, ...],
                                                    why: str) -> None:
    ann = _ann()
    ann[P + "proxy-ssl-secret"] = ref
    opts, said = _parse(ann, secrets)
    tls, denied = opts.proxy_ssl.config()
    assert tls is None and denied is not None and why in denied, denied
    assert [w for w in said if why in w], said
    # Through the core: 503 before any upstream is opened.
    acts = _core(ann, secrets)
    assert not [a for a in acts if isinstance(a, OpenUpstream)]
    assert b" 503 " in b"".join(getattr(a, "data", b"") for a in acts)


def test_a_keypair_without_ca_presents_the_certificate_and_keeps_nginx_defaults() -> None:
    # nginx.tmpl writes verify/depth/protocols/ciphers only with a ca.crt.
    tls, denied = _config(_ann(verify="on", protocols="TLSv1.3", name="backend.test"),
                          (_secret(ca=None, client=True),))
    assert denied is None
    assert tls.cert is not None and tls.key is not None and tls.ca is None
    assert (tls.verify, tls.protocols, tls.server_name) == (
        False, ("TLSv1.2", "TLSv1.3"), "backend.test")
    assert "PRIVATE" not in repr(tls)  # the key never in a log line


def test_a_secret_edit_is_read_again() -> None:
    current: list[tuple[Secret, ...]] = [()]
    opts = parse_route_options(_ann(), "/", ProxySettings(), where="Ingress default/ing",
                               namespace="default", secrets=lambda: current[0])
    assert opts.proxy_ssl.config()[1] is not None  # no such Secret yet
    current[0] = (_secret(),)
    tls, denied = opts.proxy_ssl.config()
    assert denied is None and tls.ca == CA.cert_pem.bytes()
    current[0] = (_secret(ca=OTHER_CA),)
    assert opts.proxy_ssl.config()[0].ca == OTHER_CA.cert_pem.bytes()


# -- the sans-IO core ------------------------------------------------------------------------


def _core(ann: dict[str, str], secrets: tuple[Secret, ...] = (_secret(),),
          scheme_tls: bool = False) -> list[Any]:
    proxy = Proxy(_Router([("127.0.0.1", 8443)], ann, secrets), request_id=lambda: "rid",
                  clock=None)
    conn = proxy.connection(("192.0.2.7", 5000), now=0.0, tls=scheme_tls)
    acts: list[Any] = conn.start(0.0)
    acts += conn.receive_data(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n", 0.0)
    return acts


def _open(acts: list[Any]) -> OpenUpstream:
    opens = [a for a in acts if isinstance(a, OpenUpstream)]
    assert len(opens) == 1, acts
    return opens[0]


def test_open_upstream_carries_the_routes_tls_config() -> None:
    a = _open(_core(_ann(verify="on", name="backend.test")))
    assert a.tls and a.tls_config is not None
    assert (a.tls_config.verify, a.tls_config.server_name) == (True, "backend.test")
    hash(a.tls_config)  # a pool key
    # Without proxy-ssl-secret: nginx's defaults: no verification, no SNI (session 27).
    a = _open(_core({P + "backend-protocol": "HTTPS"}))
    assert a.tls and a.tls_config == UpstreamTLS()
    # Plain HTTP to the backend: nothing to configure.
    ann = _ann()
    del ann[P + "backend-protocol"]
    a = _open(_core(ann))
    assert not a.tls and a.tls_config is None
    # AUTO_HTTP over a TLS client connection speaks TLS with the config.
    ann[P + "backend-protocol"] = "AUTO_HTTP"
    a = _open(_core(ann, scheme_tls=True))
    assert a.tls and a.tls_config is not None


def test_a_canarys_proxy_ssl_is_ignored_and_its_traffic_takes_the_mains() -> None:
    yaml = f"""
apiVersion: v1
kind: Secret
metadata: {{name: up-tls, namespace: default}}
stringData: {{ca.crt: {json.dumps(CA.cert_pem.bytes().decode())}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  annotations: {{"{P}backend-protocol": "HTTPS", "{P}proxy-ssl-secret": "default/up-tls",
                 "{P}proxy-ssl-verify": "on", "{P}proxy-ssl-name": "backend.test"}}
spec:
  rules:
  - host: a.test
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 443}}}}}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web-canary
  annotations: {{"{P}canary": "true", "{P}canary-weight": "100",
                 "{P}proxy-ssl-secret": "default/up-tls", "{P}proxy-ssl-name": "canary.test"}}
spec:
  rules:
  - host: a.test
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: canary, port: {{number: 443}}}}}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec: {{ports: [{{port: 443, targetPort: 8443}}]}}
---
apiVersion: v1
kind: Endpoints
metadata: {{name: web}}
subsets: [{{addresses: [{{ip: 127.0.0.1}}], ports: [{{port: 8443}}]}}]
---
apiVersion: v1
kind: Service
metadata: {{name: canary}}
spec: {{ports: [{{port: 443, targetPort: 8444}}]}}
---
apiVersion: v1
kind: Endpoints
metadata: {{name: canary}}
subsets: [{{addresses: [{{ip: 127.0.0.2}}], ports: [{{port: 8444}}]}}]
"""
    router = ingresslib.Router(ingresslib.parse_manifests(yaml), seed=0)
    warned: list[str] = []
    proxy = Proxy(router, request_id=lambda: "rid", clock=None)
    proxy._warn_once = lambda ws: warned.extend(ws)  # type: ignore[method-assign]
    conn = proxy.connection(("192.0.2.7", 5000), now=0.0)
    acts: list[Any] = conn.start(0.0)
    acts += conn.receive_data(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n", 0.0)
    a = _open(acts)
    assert a.endpoint == ("127.0.0.2", 8444)  # the canary's endpoint
    assert a.tls and a.tls_config is not None
    assert (a.tls_config.verify, a.tls_config.server_name) == (True, "backend.test")
    proxy.log_annotation_warnings()
    assert [w for w in warned if "web-canary" in w and f"{P}proxy-ssl-name" in w
            and "canary" in w and "ignored" in w], warned


def test_name_matching_as_x509_check_host() -> None:
    from ingresslib.proxy._proxy_ssl import name_matches

    def cert(*dns: str, cn: str | None = None, ips: tuple[str, ...] = ()) -> dict[str, Any]:
        out: dict[str, Any] = {"subjectAltName": tuple(("DNS", d) for d in dns)
                               + tuple(("IP Address", i) for i in ips)}
        if cn is not None:
            out["subject"] = ((("commonName", cn),),)
        return out

    assert name_matches(cert("backend.test"), "backend.test")
    assert name_matches(cert("Backend.TEST"), "backend.test.")
    assert name_matches(cert("*.svc.test"), "web.svc.test")
    assert not name_matches(cert("*.svc.test"), "a.web.svc.test")
    assert not name_matches(cert("*.svc.test"), "svc.test")
    assert not name_matches(cert("*.test"), "backend.test")  # two labels after the wildcard
    assert name_matches(cert("w*.svc.test"), "web.svc.test")  # partial: OpenSSL's default
    assert not name_matches(cert("other.test", cn="backend.test"), "backend.test")
    assert name_matches(cert(cn="backend.test"), "backend.test")  # no DNS SAN: the CN
    # nginx calls X509_check_host for an address too: compared with the DNS names as text.
    assert not name_matches(cert(ips=("10.0.0.1",)), "10.0.0.1")
    assert name_matches(cert("10.0.0.1"), "10.0.0.1")
    assert not name_matches(cert("backend.test"), "")


# -- end to end: ProxyServer and a TLS backend on 127.0.0.1 ------------------------------------


class _Backend:
    """A TLS backend answering 200 "tls" to each request; records each handshake's SNI."""

    def __init__(self, leaf: trustme.LeafCert = LEAF, *, client_ca: trustme.CA | None = None,
                 tls13_only: bool = False) -> None:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        leaf.configure_cert(ctx)
        if client_ca is not None:
            ctx.verify_mode = ssl.CERT_REQUIRED
            client_ca.configure_trust(ctx)
        if tls13_only:
            ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        self.sni: list[str | None] = []
        ctx.sni_callback = lambda obj, name, c: self.sni.append(name)  # type: ignore[assignment]
        self.ctx = ctx
        self.accepted = 0
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            self.accepted += 1
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


def _e2e(ann: dict[str, str], secrets: tuple[Secret, ...] = (_secret(),),
         backend: Callable[[], _Backend] = _Backend, paths: tuple[str, ...] = ("/",),
         extra_endpoint: _Backend | None = None) -> tuple[list[int], _Backend, Any]:
    async def run() -> tuple[list[int], _Backend, Any]:
        b = backend()
        port = await b.start()
        endpoints = [("127.0.0.1", port)]
        if extra_endpoint is not None:
            endpoints.insert(0, ("127.0.0.1", await extra_endpoint.start()))
        server = ProxyServer(_Router(endpoints, ann, secrets))
        await server.start(("127.0.0.1", 0))
        try:
            async with asyncio.timeout(5):
                c = await Client.open(server.addresses[0][2])
                statuses = []
                for path in paths:
                    r = await c.get("a.test", path)
                    statuses.append(r.status)
                    if r.status == 200:
                        assert r.body == b"tls"
                await c.close()
            return statuses, b, server.pool
        finally:
            await server.shutdown(0.5)
            await b.stop()
            if extra_endpoint is not None:
                await extra_endpoint.stop()
    return asyncio.run(run())


def test_verify_on_with_the_right_ca_and_name_200() -> None:
    statuses, b, _ = _e2e(_ann(verify="on", name="backend.test"))
    assert statuses == [200]


def test_verify_on_with_another_ca_502() -> None:
    statuses, _, _ = _e2e(_ann(verify="on", name="backend.test"), (_secret(ca=OTHER_CA),))
    assert statuses == [502]
    # verify off (the default): the same backend is reached, as nginx does.
    statuses, _, _ = _e2e(_ann(name="backend.test"), (_secret(ca=OTHER_CA),))
    assert statuses == [200]


def test_verify_on_checks_proxy_ssl_name_and_defaults_to_upstream_balancer() -> None:
    assert _e2e(_ann(verify="on", name="other.test"))[0] == [502]
    assert _e2e(_ann(verify="on"))[0] == [502]  # "upstream_balancer" (ingress-nginx#4928)
    assert _e2e(_ann(verify="on", name="backend.test"))[0] == [200]


def test_sni_is_sent_only_with_proxy_ssl_server_name_on() -> None:
    _, b, _ = _e2e(_ann(verify="on", name="backend.test", server_name="on"))
    assert b.sni == ["backend.test"]
    _, b, _ = _e2e(_ann(verify="on", name="backend.test"))
    assert b.sni == [None]
    _, b, _ = _e2e(_ann(server_name="on"))
    assert b.sni == ["upstream_balancer"]  # nginx's $proxy_host


def test_the_client_certificate_is_presented_to_a_backend_requiring_one() -> None:
    def strict() -> _Backend:
        return _Backend(client_ca=CLIENT_CA)
    assert _e2e(_ann(verify="on", name="backend.test"), (_secret(client=True),),
                backend=strict)[0] == [200]
    assert _e2e(_ann(verify="on", name="backend.test"), (_secret(),),
                backend=strict)[0] == [502]


def test_protocols_tls13_only_backend() -> None:
    def tls13() -> _Backend:
        return _Backend(tls13_only=True)
    # proxyssl.go's default with a ca.crt: "TLSv1.2" only.
    assert _e2e(_ann(name="backend.test"), backend=tls13)[0] == [502]
    assert _e2e(_ann(name="backend.test", protocols="TLSv1.3"), backend=tls13)[0] == [200]
    assert _e2e(_ann(name="backend.test", protocols="TLSv1.2 TLSv1.3"), backend=tls13)[0] == [200]


def test_verify_depth_bounds_the_intermediates() -> None:
    def deep() -> _Backend:
        return _Backend(DEEP_LEAF)
    assert _e2e(_ann(verify="on", name="backend.test"), backend=deep)[0] == [200]  # depth 1
    assert _e2e(_ann(verify="on", name="backend.test", verify_depth="1"),
                backend=deep)[0] == [200]
    ann = _ann(verify="on", name="backend.test")
    ann[P + "proxy-ssl-verify-depth"] = "0"  # read as 1 by proxyssl.go ("== 0")
    assert _e2e(ann, backend=deep)[0] == [200]

    # Two intermediates: over depth 1 (OpenSSL "certificate chain too long"), within 2.
    def deeper() -> _Backend:
        return _Backend(DEEPER_LEAF)
    assert _e2e(_ann(verify="on", name="backend.test"), backend=deeper)[0] == [502]
    assert _e2e(_ann(verify="on", name="backend.test", verify_depth="2"),
                backend=deeper)[0] == [200]
    # Without verification the depth checks nothing (nginx: proxy_ssl_verify off).
    assert _e2e(_ann(name="backend.test"), backend=deeper)[0] == [200]


def test_a_verification_failure_is_an_error_the_next_endpoint_is_tried() -> None:
    # proxy-next-upstream's default "error timeout": the first endpoint's certificate is
    # from another CA, the second one answers.
    statuses, b, _ = _e2e(_ann(verify="on", name="backend.test"),
                          extra_endpoint=_Backend(OTHER_CA.issue_cert("backend.test")))
    assert statuses == [200] and b.accepted == 1


def test_the_pool_keeps_two_configurations_apart() -> None:
    async def run() -> tuple[list[int], int, int, int]:
        b = _Backend()
        port = await b.start()
        ep = ("127.0.0.1", port)
        router = _Router([ep], _ann(verify="on", name="backend.test"))
        plain = _Router([ep], _ann(name="backend.test", server_name="on"))
        server = ProxyServer(router)
        await server.start(("127.0.0.1", 0))
        try:
            async with asyncio.timeout(5):
                c = await Client.open(server.addresses[0][2])
                statuses = [(await c.get("a.test")).status]
                first = b.accepted
                # Another route's configuration (a router swap: the same endpoint, another
                # proxy-ssl-*): the idle verified connection must not carry it.
                server.router = plain
                statuses.append((await c.get("a.test")).status)
                statuses.append((await c.get("a.test")).status)  # pooled for its own config
                await c.close()
                return statuses, first, b.accepted, server.pool.idle_count()
        finally:
            await server.shutdown(0.5)
            await b.stop()
    statuses, first, accepted, idle = asyncio.run(run())
    assert statuses == [200, 200, 200]
    assert (first, accepted) == (1, 2)
    assert idle == 2  # one idle connection per configuration


def test_a_cipher_list_openssl_refuses_fails_the_connects_with_a_warning(
        caplog: pytest.LogCaptureFixture) -> None:
    # It passes proxyssl.go's validator; nginx would fail its configuration test
    # ("SSL_CTX_set_cipher_list failed"). Here the connects fail: 502, said once.
    with caplog.at_level("WARNING", logger="ingresslib.server"):
        statuses, b, _ = _e2e(_ann(name="backend.test", ciphers="NO-SUCH-CIPHER"),
                              paths=("/", "/"))
    assert statuses == [502, 502] and b.accepted == 0
    said = [r.getMessage() for r in caplog.records if "unusable" in r.getMessage()]
    assert len(said) == 1 and "NO-SUCH-CIPHER" in said[0], said
    assert "PRIVATE KEY" not in said[0]


def test_a_secret_gone_between_two_tries_never_connects_unverified() -> None:
    from ingresslib._upstream_tls import client_context
    from ingresslib.proxy._proxy_ssl import UNUSABLE

    router = _Router([("127.0.0.1", 8443), ("127.0.0.1", 8444)],
                     _ann(verify="on", name="backend.test"))
    proxy = Proxy(router, request_id=lambda: "rid", clock=None)
    conn = proxy.connection(("192.0.2.7", 5000), now=0.0)
    acts: list[Any] = conn.start(0.0)
    acts += conn.receive_data(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n", 0.0)
    first = _open(acts)
    assert first.tls_config is not None and first.tls_config.verify
    router.resources = types.SimpleNamespace(secrets=())  # the Secret deleted meanwhile
    retry = _open(conn.upstream_failed(first.conn_id, 0.0))
    assert retry.endpoint == ("127.0.0.1", 8444) and retry.tls
    assert retry.tls_config is UNUSABLE
    with pytest.raises(ValueError):
        client_context(UNUSABLE)


def test_ingress_asgi_has_no_backend_tls_the_annotations_change_nothing() -> None:
    from ingresslib import IngressASGI

    yaml = f"""
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  annotations: {{"{P}backend-protocol": "HTTPS", "{P}proxy-ssl-secret": "default/missing",
                 "{P}proxy-ssl-verify": "on", "{P}proxy-ssl-name": "backend.test"}}
spec:
  rules:
  - host: a.test
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
"""

    async def backend(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"app"})

    app = IngressASGI(ingresslib.parse_manifests(yaml), backends={"default/web": backend})
    sent: list[dict[str, Any]] = []
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": "/", "raw_path": b"/",
             "query_string": b"", "root_path": "", "headers": [(b"host", b"a.test")],
             "client": ("192.0.2.7", 5000), "server": ("127.0.0.1", 80)}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 200  # the Secret is not read, the route not denied
