"""Session 15 (T15): which certificate is served for which server name, against ingress-nginx.

``from-to-www-redirect``: ingress-nginx gives the www / non-www twin of a host its host's
certificate when that certificate covers the twin (pkg/util/ingress ``BuildRedirects``: "if
srv.SSLCert != nil { if ssl.IsValidHostname(from, srv.SSLCert.CN) { r.SSLCert = srv.SSLCert }
else { klog.Warningf("the server %v has SSL configured but the SSL certificate does not contains
a CN for %v. Redirects will not work for HTTPS to HTTPS", from, to) } }"; nginx.go
``configureCertificates``: "configure(redirect.From, redirect.SSLCert)"). Before this session
ingresslib served the twin the default certificate: ``https://www.example.test/`` failed its
certificate check instead of reaching the redirect. The tests marked "failed before" did.
"""

from __future__ import annotations

import asyncio
import logging
import ssl

import pytest
import trustme

from ingresslib import Router, parse_manifests
from ingresslib._models import (HTTPIngressPath, Ingress, IngressBackend, IngressRule,
                                 IngressServiceBackend, IngressSpec, IngressTLS, ObjectMeta,
                                 ServiceBackendPort, freeze_map)
from ingresslib._resources import Resources
from ingresslib._tls import DEFAULT_CERT_NAME, CertificateStore
from ingresslib.proxy._server import ProxyServer
from tests.test_tls import _pems, _secret, _served_cert, _served_sans

_WWW = "nginx.ingress.kubernetes.io/from-to-www-redirect"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _ing(name: str, hosts: tuple[str, ...], secret: str | None, *, www: str | None = "true",
         ns: str = "default", canary: bool = False, tls_hosts: tuple[str, ...] | None = None
         ) -> Ingress:
    annotations = {} if www is None else {_WWW: www}
    if canary:
        annotations["nginx.ingress.kubernetes.io/canary"] = "true"
    tls = () if secret is None else (
        IngressTLS(hosts=hosts if tls_hosts is None else tls_hosts, secret_name=secret),)
    return Ingress(metadata=ObjectMeta(name=name, namespace=ns,
                                       annotations=freeze_map(annotations)),
                   spec=IngressSpec(rules=tuple(IngressRule(host=h, paths=_PATHS) for h in hosts),
                                    tls=tls))


#: One path per rule: a host-only rule asks for no www twin (controller.go getBackendServers
#: sets RedirectFromToWWW from the rule's locations).
_PATHS = (HTTPIngressPath(
    IngressBackend(IngressServiceBackend("web", ServiceBackendPort(number=80))), "/", "Prefix"),)


def _default(store: CertificateStore, sni: str) -> bool:
    return DEFAULT_CERT_NAME in _served_cert(store, sni).subject.rfc4514_string()


# --- the twin's certificate ------------------------------------------------------------------


def test_www_twin_gets_the_certificate_of_its_host(ca: trustme.CA) -> None:
    # Failed before: the twin got the default certificate.
    leaf = ca.issue_cert("example.test", "www.example.test")
    store = CertificateStore()
    assert store.update(Resources(ingresses=(_ing("web", ("example.test",), "t"),),
                                  secrets=(_secret("t", *_pems(leaf)),))) == []
    assert _served_sans(store, ca, "www.example.test") == {"example.test", "www.example.test"}
    assert _served_sans(store, ca, "WWW.Example.Test.") == {"example.test", "www.example.test"}
    assert "www.example.test" in store.hosts
    # The twin redirects whatever its scheme; it does not become a TLS host of its own.
    assert not store.has_tls("www.example.test")


def test_non_www_twin_of_a_www_host(ca: trustme.CA) -> None:
    # Failed before. "if strings.HasPrefix(to, "www.") { from = strings.TrimPrefix(to, "www.") }"
    leaf = ca.issue_cert("www.shop.test", "shop.test")
    store = CertificateStore()
    assert store.update(Resources(ingresses=(_ing("web", ("www.shop.test",), "t"),),
                                  secrets=(_secret("t", *_pems(leaf)),))) == []
    assert _served_sans(store, ca, "shop.test") == {"www.shop.test", "shop.test"}


def test_wildcard_certificate_covers_the_www_twin(ca: trustme.CA) -> None:
    # Failed before. ssl.IsValidHostname: "labels[0] = "*"" -- www.a.test under *.a.test.
    leaf = ca.issue_cert("a.test", "*.a.test")
    store = CertificateStore()
    assert store.update(Resources(ingresses=(_ing("web", ("a.test",), "t"),),
                                  secrets=(_secret("t", *_pems(leaf)),))) == []
    assert _served_sans(store, ca, "www.a.test") == {"a.test", "*.a.test"}


def test_a_certificate_not_covering_the_twin_is_said_and_not_served(
        ca: trustme.CA, caplog: pytest.LogCaptureFixture) -> None:
    # Failed before (no warning). ingress-nginx: "the server %v has SSL configured but the SSL
    # certificate does not contains a CN for %v. Redirects will not work for HTTPS to HTTPS".
    leaf = ca.issue_cert("only.test")
    store = CertificateStore()
    caplog.set_level(logging.WARNING, logger="ingresslib.tls")
    problems = store.update(Resources(ingresses=(_ing("web", ("only.test",), "t"),),
                                      secrets=(_secret("t", *_pems(leaf)),)))
    assert [(p.object, p.field, p.warning) for p in problems] == [
        ("Ingress default/web", f"metadata.annotations[{_WWW}]", True)]
    assert "'www.only.test'" in problems[0].message and "only.test" in problems[0].message
    assert any("www.only.test" in r.getMessage() for r in caplog.records)
    assert _default(store, "www.only.test")
    assert _served_sans(store, ca, "only.test") == {"only.test"}


# --- guards: what must not change ------------------------------------------------------------


def test_no_annotation_no_twin(ca: trustme.CA) -> None:
    # A guard, but for its last assertion (failed before): the value is read as Go's
    # strconv.ParseBool reads it, as the proxy's redirect does.
    leaf = ca.issue_cert("example.test", "www.example.test")
    for www in (None, "false", "yes"):   # "yes" is no Go bool: the annotation is ignored
        store = CertificateStore()
        assert store.update(Resources(ingresses=(_ing("web", ("example.test",), "t", www=www),),
                                      secrets=(_secret("t", *_pems(leaf)),))) == []
        assert _default(store, "www.example.test"), www
    store = CertificateStore()
    store.update(Resources(ingresses=(_ing("web", ("example.test",), "t", www="True"),),
                           secrets=(_secret("t", *_pems(leaf)),)))
    assert not _default(store, "www.example.test")   # strconv.ParseBool("True")


def test_twin_that_a_rule_names_keeps_its_own_certificate(ca: trustme.CA) -> None:
    # BuildRedirects: "if esrv.Hostname == from { found = true }" -> "Already exists an Ingress
    # with %q hostname. Skipping creation of redirection".
    both = ca.issue_cert("example.test", "www.example.test")
    own = ca.issue_cert("www.example.test")
    store = CertificateStore()
    assert store.update(Resources(
        ingresses=(_ing("web", ("example.test",), "t"),
                   _ing("www", ("www.example.test",), "w", www=None, ns="other")),
        secrets=(_secret("t", *_pems(both)), _secret("w", *_pems(own), ns="other")))) == []
    assert _served_sans(store, ca, "www.example.test") == {"www.example.test"}
    # A rule host without TLS: no twin either; its name keeps the default certificate.
    store = CertificateStore()
    assert store.update(Resources(
        ingresses=(_ing("web", ("example.test",), "t"),
                   _ing("www", ("www.example.test",), None, www=None, ns="other")),
        secrets=(_secret("t", *_pems(both)),))) == []
    assert _default(store, "www.example.test")


def test_host_without_a_certificate_gives_its_twin_none(ca: trustme.CA) -> None:
    # No tls section (srv.SSLCert nil) or a failing Secret (the default certificate, which
    # IsValidHostname never matches): the twin is left to the ordinary lookup.
    store = CertificateStore()
    assert store.update(Resources(ingresses=(_ing("web", ("example.test",), None),))) == []
    assert _default(store, "www.example.test")
    store = CertificateStore()
    problems = store.update(Resources(ingresses=(_ing("web", ("example.test",), "missing"),)))
    assert [p.field for p in problems] == ["spec.tls[0].secretName"]
    assert _default(store, "www.example.test")


def test_canary_and_wildcard_rule_hosts_make_no_twin(ca: trustme.CA) -> None:
    # createServers: "Ingress %v is marked as Canary, ignoring"; a wildcard host has no twin.
    leaf = ca.issue_cert("example.test", "www.example.test")
    wild = ca.issue_cert("*.w.test")
    store = CertificateStore()
    store.update(Resources(
        ingresses=(_ing("main", ("example.test",), "t", www=None),
                   _ing("canary", ("example.test",), "t", canary=True),
                   _ing("wild", ("*.w.test",), "w")),
        secrets=(_secret("t", *_pems(leaf)), _secret("w", *_pems(wild)))))
    assert _default(store, "www.example.test")
    assert store.hosts == {"example.test", "*.w.test"}


def test_twin_keeps_the_certificate_of_its_host_over_a_tls_only_listing(ca: trustme.CA) -> None:
    # Failed before. The tls.hosts extension (a name no rule of its Ingress has) ranks last:
    # ingress-nginx serves the twin its host's certificate whatever other Ingresses list.
    both = ca.issue_cert("example.test", "www.example.test")
    other = ca.issue_cert("www.example.test", "other.test")
    store = CertificateStore()
    problems = store.update(Resources(
        ingresses=(_ing("web", ("example.test",), "t"),
                   _ing("listing", ("other.test",), "o", www=None, ns="other",
                        tls_hosts=("other.test", "www.example.test"))),
        secrets=(_secret("t", *_pems(both)), _secret("o", *_pems(other), ns="other"))))
    # Another namespace's listing of the twin is refused (the twin is routed by the Ingress
    # asking for it: test_tls_twin_tenancy_s15), and said: it would have made it a TLS host.
    assert [(p.object, p.field, p.warning) for p in problems] == [
        ("Ingress other/listing", "spec.tls[0].hosts[1]", True)]
    assert not store.has_tls("www.example.test")
    assert _served_sans(store, ca, "www.example.test") == {"example.test", "www.example.test"}


def test_twin_entry_beats_a_wildcard_of_another_ingress(ca: trustme.CA) -> None:
    # Failed before (the wildcard was served). configureCertificates writes the twin's own
    # entry ("configure(redirect.From, redirect.SSLCert)"), which certificate.lua's exact
    # lookup finds before the "*." one.
    both, wild = ca.issue_cert("a.x.test", "www.a.x.test"), ca.issue_cert("*.a.x.test")
    store = CertificateStore()
    assert store.update(Resources(
        ingresses=(_ing("web", ("a.x.test",), "t"),
                   _ing("wild", ("*.a.x.test",), "w", www=None, ns="other")),
        secrets=(_secret("t", *_pems(both)), _secret("w", *_pems(wild), ns="other")))) == []
    assert _served_sans(store, ca, "www.a.x.test") == {"a.x.test", "www.a.x.test"}
    assert _served_sans(store, ca, "b.a.x.test") == {"*.a.x.test"}


def test_no_warning_when_the_twin_is_served_another_certificate(ca: trustme.CA) -> None:
    # The host's certificate does not cover the twin, but another Ingress's wildcard does: the
    # twin is left to the ordinary lookup (ingress-nginx: emptyUID, then certificate.lua's
    # "*." fallback), its redirect works over HTTPS and there is nothing to say.
    own, wild = ca.issue_cert("a.x.test"), ca.issue_cert("*.a.x.test")
    store = CertificateStore()
    assert store.update(Resources(
        ingresses=(_ing("web", ("a.x.test",), "t"),
                   _ing("wild", ("*.a.x.test",), "w", www=None, ns="other")),
        secrets=(_secret("t", *_pems(own)), _secret("w", *_pems(wild), ns="other")))) == []
    assert _served_sans(store, ca, "www.a.x.test") == {"*.a.x.test"}


# --- end to end: the redirect reached over HTTPS ---------------------------------------------

_MANIFEST = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  namespace: default
  annotations: {nginx.ingress.kubernetes.io/from-to-www-redirect: "true"}
spec:
  tls:
  - hosts: [example.test]
    secretName: t
  rules:
  - host: example.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: svc, port: {number: 80}}}}
"""


@pytest.mark.network
@pytest.mark.asyncio
async def test_https_www_twin_reaches_its_redirect(ca: trustme.CA) -> None:
    # Failed before: the verifying client refused the default certificate for www.example.test.
    leaf = ca.issue_cert("example.test", "www.example.test")
    res = parse_manifests(_MANIFEST)
    res = Resources(ingresses=res.ingresses, secrets=(_secret("t", *_pems(leaf)),))
    store = CertificateStore()
    assert store.update(res) == []
    server = ProxyServer(Router(res), cert_store=store, client_header_timeout=5)
    await server.start(None, ("127.0.0.1", 0))
    port = server.addresses[0][2]
    client = ssl.create_default_context()
    ca.configure_trust(client)
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection(
            "127.0.0.1", port, ssl=client, server_hostname="www.example.test"), 5)
        try:
            w.write(b"GET /p HTTP/1.1\r\nHost: www.example.test\r\nConnection: close\r\n\r\n")
            head = (await asyncio.wait_for(r.read(65536), 5)).split(b"\r\n\r\n")[0].decode()
        finally:
            w.close()
        assert head.startswith("HTTP/1.1 308"), head
        assert f"location: https://example.test:{port}/p" in head.lower(), head
    finally:
        await server.shutdown(1)
