"""Session 13 review of backend -> endpoint resolution (SEMANTICS §6) and SNI certificate choice
(SEMANTICS §10) against ingress-nginx. Each test here failed on the code before its fix, except
the guards that the fixes refuse nothing more (`..._that_are_fine_still_resolve`,
`test_a_canary_repeating_the_main_secret_is_not_reported`)."""

from __future__ import annotations

import datetime as _dt
import socket

import pytest
import trustme

from ingresslib._endpoints import EndpointIndex, external_name_problem
from ingresslib._models import (
    Ingress,
    IngressRule,
    IngressSpec,
    IngressTLS,
    ObjectMeta,
    Secret,
    ServicePort,
    freeze_map,
)
from ingresslib._resources import Resources
from ingresslib._router import Router
from ingresslib._tls import CertificateStore

from _router_helpers import ingress, resources, service
from tests.test_tls import _pems, _secret, _served_sans


def _ext(name: str) -> EndpointIndex:
    return EndpointIndex(resources(service("ext", [ServicePort(443)], type="ExternalName",
                                           cluster_ip=None, external_name=name)))


# --- ExternalName: what the connect will reach -----------------------------------------------

# Valid RFC 1123 subdomains, so the API server accepts each as `externalName`, and no IP to Go's
# strict net.ParseIP, so ingress-nginx hands them to nginx's DNS resolver (endpointslices.go:
# "if net.ParseIP(s.Spec.ExternalName) == nil { ... validation.IsDNS1123Subdomain ..."). The
# proxy connects through getaddrinfo, whose inet_aton reads each as 127.0.0.1.
_LOOPBACK_NUMBERS = ["127.1", "0x7f.0.0.1", "0177.0.0.1", "2130706433", "127.000.000.001",
                     "017700000001"]


@pytest.mark.parametrize("name", _LOOPBACK_NUMBERS)
def test_external_name_the_c_resolver_reads_as_loopback_is_refused(name: str) -> None:
    # The premise: this is the address a connect to the name reaches, with no DNS involved.
    got = {i[4][0] for i in socket.getaddrinfo(name, 80, type=socket.SOCK_STREAM,
                                               flags=socket.AI_NUMERICHOST)}
    assert got == {"127.0.0.1"}
    # ingress-nginx refuses the loopback ("Invalid attempt to use localhost name"); so must we,
    # however the loopback is spelt.
    es = _ext(name).resolve("default", "ext", 443)
    assert es.endpoints == () and "loopback" in (es.reason or ""), es
    assert "127.0.0.1" in (external_name_problem(name) or "")


@pytest.mark.parametrize("name", ["::ffff:127.0.0.1", "::ffff:7f00:1"])
def test_external_name_ipv4_mapped_loopback_is_refused_as_go_does(name: str) -> None:
    # Go's net.IP.IsLoopback: "if ip4 := ip.To4(); ip4 != nil { return ip4[0] == 127 }" -
    # an IPv4-mapped 127/8 address is loopback (Python 3.11's is_loopback says no).
    es = _ext(name).resolve("default", "ext", 443)
    assert es.endpoints == () and "loopback" in (es.reason or ""), es


@pytest.mark.parametrize("name", ["0.0.0.0", "0", "::", "foo.localhost", "a.b.localhost."])
def test_external_name_that_reaches_this_host_otherwise_is_refused(name: str) -> None:
    # A connect to 0.0.0.0 or :: reaches this host on Linux; RFC 6761 *.localhost names may
    # resolve to the loopback (nss-myhostname). The loopback test is there to stop exactly that.
    es = _ext(name).resolve("default", "ext", 443)
    assert es.endpoints == () and es.reason, es


def test_external_name_read_as_another_address_is_refused() -> None:
    # "010.0.0.1" is a DNS name to Kubernetes and ingress-nginx (never resolvable), 8.0.0.1 to
    # the C resolver: a host nobody meant.
    es = _ext("010.0.0.1").resolve("default", "ext", 443)
    assert es.endpoints == () and "8.0.0.1" in (es.reason or "")


@pytest.mark.parametrize("name", ["api.example.com", "api.example.com.", "10.1.2.3", "fd00::7",
                                  "0a.example.com", "127.example.com", "1e100.net"])
def test_external_names_that_are_fine_still_resolve(name: str) -> None:
    assert _ext(name).resolve("default", "ext", 443).endpoints == ((name, 443),)


def test_router_answers_503_and_warns_for_a_numeric_loopback_external_name() -> None:
    res = resources(ingress("web", [("a.test", "/", "Prefix", "lo", 8080)]),
                    service("lo", [ServicePort(8080)], type="ExternalName", cluster_ip=None,
                            external_name="127.1"))
    router = Router(res)
    d = router.route("GET", "a.test", "/")
    assert d is not None and d.service == "lo" and d.endpoint is None
    assert any(w.object == "Service default/lo" and w.field == "spec.externalName"
               and "127.0.0.1" in w.message for w in router.warnings)


# --- TLS: canary Ingresses supply no certificate ----------------------------------------------

@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _ing(name: str, year: int, secret: str | None, canary: str | None = None,
         host: str = "shop.test") -> Ingress:
    ann = {} if canary is None else {"nginx.ingress.kubernetes.io/canary": canary}
    meta = ObjectMeta(name=name, namespace="default", annotations=freeze_map(ann),
                      creation_timestamp=_dt.datetime(year, 1, 1, tzinfo=_dt.timezone.utc))
    tls = () if secret is None else (IngressTLS(hosts=(host,), secret_name=secret),)
    return Ingress(metadata=meta, spec=IngressSpec(rules=(IngressRule(host=host),), tls=tls))


def test_canary_ingress_tls_makes_no_host_tls_and_supplies_no_certificate(
        ca: trustme.CA) -> None:
    # ingress-nginx controller.go createServers, both loops: "if anns.Canary.Enabled {
    # klog.V(2).Infof("Ingress %v is marked as Canary, ignoring", ingKey); continue }". The main
    # Ingress serves shop.test over plain http; a canary copy carrying `tls` must not switch the
    # whole host to HTTPS (has_tls drives ssl-redirect) nor choose its certificate.
    leaf = ca.issue_cert("shop.test")
    store = CertificateStore()
    problems = store.update(Resources(
        ingresses=(_ing("main", 2020, None), _ing("main-canary", 2021, "canary-tls", "true")),
        secrets=(_secret("canary-tls", *_pems(leaf)),)))
    assert not store.has_tls("shop.test")
    assert store.context_for("shop.test") is store.default_context
    # Not silently: the canary's Secret is said to be ignored, as a warning.
    assert [(p.object, p.field, p.warning) for p in problems] == [
        ("Ingress default/main-canary", "spec.tls[0].secretName", True)]
    assert "canary" in problems[0].message


def test_an_older_canary_does_not_take_the_certificate_of_its_main_ingress(
        ca: trustme.CA) -> None:
    # The main Ingress was re-created (so it is the newer one) and names a new Secret; the canary
    # still names the old one. ingress-nginx serves the main's certificate whatever the ages.
    old, new = ca.issue_cert("shop.test"), ca.issue_cert("shop.test", "www.shop.test")
    store = CertificateStore()
    store.update(Resources(
        ingresses=(_ing("main-canary", 2019, "old-tls", "True"), _ing("main", 2024, "new-tls")),
        secrets=(_secret("old-tls", *_pems(old)), _secret("new-tls", *_pems(new)))))
    assert _served_sans(store, ca, "shop.test") == {"shop.test", "www.shop.test"}


def test_a_canary_repeating_the_main_secret_is_not_reported(ca: trustme.CA) -> None:
    leaf = ca.issue_cert("shop.test")
    store = CertificateStore()
    problems = store.update(Resources(
        ingresses=(_ing("main", 2020, "tls"), _ing("main-canary", 2021, "tls", "true"),
                   # not a canary: "yes" is no Go boolean (strconv.ParseBool), as the router reads it
                   _ing("other", 2022, "tls", "yes", host="other.test")),
        secrets=(_secret("tls", *_pems(leaf)),)))
    assert problems == [p for p in problems if p.object == "Ingress default/other"]
    assert _served_sans(store, ca, "shop.test") == {"shop.test"}
    assert store.has_tls("shop.test") and store.has_tls("other.test")


# --- TLS: a wildcard's TLS reaches an exact host routed without TLS ---------------------------

def test_exact_host_without_tls_under_a_wildcard_is_a_tls_host(ca: trustme.CA) -> None:
    # ingress-nginx: legacy.example.test is a server of its own (Ingress "legacy", no `tls`),
    # sent as emptyUID by configureCertificates (internal/ingress/controller/nginx.go:
    # "uid := emptyUID ... configuration.Servers[hostname] = uid"), which configuration.lua's
    # handle_servers deletes ("if uid == EMPTY_UID then certificate_servers:delete(server)").
    # certificate.lua's get_pem_cert_uid then falls back to "*.example.test" for the handshake
    # and for configured_for_current_request, which lua_ingress.lua's redirect_to_https asks
    # ("return location_config.ssl_redirect and certificate_configured_for_current_request()"):
    # the wildcard certificate is served and plain http is redirected. has_tls() is what the
    # proxy's ssl-redirect follows. (Session 13 briefly made this host plain, from the pre-Lua
    # nginx.tmpl condition; this pins the Lua behaviour.)
    wild = ca.issue_cert("*.example.test")
    apps = _ing("apps", 2020, "wild-tls", host="*.example.test")
    legacy = _ing("legacy", 2021, None, host="legacy.example.test")
    store = CertificateStore()
    assert store.update(Resources(ingresses=(apps, legacy),
                                  secrets=(_secret("wild-tls", *_pems(wild)),))) == []
    assert store.has_tls("legacy.example.test")
    assert store.has_tls("LEGACY.example.test.")
    assert store.has_tls("shop.example.test")
    assert _served_sans(store, ca, "legacy.example.test") == {"*.example.test"}
    # No wildcard TLS: the exact host is plain.
    store.update(Resources(ingresses=(legacy,)))
    assert not store.has_tls("legacy.example.test")


# --- TLS: a bad Secret says what is wrong ------------------------------------------------------

def test_pem_under_data_instead_of_string_data_is_named(ca: trustme.CA) -> None:
    # A common mistake: PEM text under `data` (which wants base64). The Secret has a tls.crt key;
    # saying it has none sends the user looking in the wrong place.
    crt, key = _pems(ca.issue_cert("b64.test"))
    raw = Secret(metadata=ObjectMeta(name="s", namespace="default"), type="kubernetes.io/tls",
                 data=freeze_map({"tls.crt": crt.decode(), "tls.key": key.decode()}))
    store = CertificateStore()
    problems = store.update(Resources(
        ingresses=(_ing("w", 2020, "s", host="b64.test"),), secrets=(raw,)))
    assert len(problems) == 1 and not problems[0].warning
    msg = problems[0].message
    assert "tls.crt is not valid base64" in msg and "tls.key is not valid base64" in msg, msg
    assert "stringData" in msg and "BEGIN" not in msg
    assert store.context_for("b64.test") is store.default_context


def test_certificate_naming_no_dns_name_is_reported_readably() -> None:
    # An IP-only SAN and no Common Name: the message said "(it names )".
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    k = ec.generate_private_key(ec.SECP256R1())
    now = _dt.datetime.now(_dt.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ip only")])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(k.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(hours=1))
            .not_valid_after(now + _dt.timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("10.0.0.1"))]), critical=False)
            .sign(k, hashes.SHA256()))
    crt = cert.public_bytes(serialization.Encoding.PEM)
    key = k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())
    store = CertificateStore()
    problems = store.update(Resources(ingresses=(_ing("w", 2020, "s", host="ip.test"),),
                                      secrets=(_secret("s", crt, key),)))
    assert len(problems) == 1
    assert "names no DNS name" in problems[0].message, problems[0].message
    assert store.context_for("ip.test") is store.default_context

