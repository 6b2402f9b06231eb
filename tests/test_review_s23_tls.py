"""Session 23, a fresh-eyes review of TLS termination (``_tls.py``, ``_tls_hosts.py`` and the
HTTPS listener), with trustme certificates and the standard ``ssl`` module as the client, against
ingress-nginx (``controller.go`` ``createServers``, ``backend_ssl.go`` ``getPemCertificate``,
``certificate.lua`` ``get_pem_cert_uid``) and nginx (``ngx_http_ssl_module.c``).

Two defects (sections 1 and 2; those tests failed on the code before this session):

1. ALPN: nginx's server list is ``http/1.1``, ``http/1.0``, ``http/0.9`` (``NGX_HTTP_ALPN_PROTOS``,
   after ``h2`` when enabled), chosen in the server's order (``ngx_http_ssl_alpn_select``): a
   client offering only ``http/1.0`` gets ``http/1.0``. ingresslib advertised ``http/1.1``
   alone and answered such a client no protocol.
2. A ``kubernetes.io/tls`` Secret whose ``ca.crt`` is not a readable PEM certificate: ingress-nginx
   refuses the whole Secret (``getPemCertificate``: "parsing CA certificate"), so its hosts get
   the default certificate; likewise, after a ``ca.crt``, a ``ca.crl`` whose first PEM block
   is not a readable ``X509 CRL`` ("error configuring CRL certificate"). ingresslib ignored
   both and served the certificate, so ``check`` said nothing of a Secret that ingress-nginx
   would not serve.

Every other test is a guard (marked so) pinning a case of the review.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as _dt
import socket
import ssl
import struct
import warnings
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from ingresslib import Router, parse_manifests
from ingresslib._resources import Resources
from ingresslib._tls import (
    DEFAULT_CERT_NAME,
    CertificateStore,
    certificate_for_name,
    certificate_problems,
)
from ingresslib.proxy._server import ProxyServer


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


# --- manifests ------------------------------------------------------------------------------------


def _secret(name: str, crt: bytes, key: bytes, *, ns: str = "default",
            ca_crt: bytes | None = None, ca_crl: bytes | None = None) -> str:
    data = {"tls.crt": crt, "tls.key": key}
    if ca_crt is not None:
        data["ca.crt"] = ca_crt
    if ca_crl is not None:
        data["ca.crl"] = ca_crl
    body = ", ".join(f"{k}: '{base64.b64encode(v).decode()}'" for k, v in data.items())
    return (f"---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {ns}}}\n"
            f"type: kubernetes.io/tls\ndata: {{{body}}}\n")


def _leaf(name: str, leaf: trustme.LeafCert, **kw: object) -> str:
    return _secret(name, leaf.cert_chain_pems[0].bytes(), leaf.private_key_pem.bytes(),
                   **kw)  # type: ignore[arg-type]


def _ingress(name: str, hosts: list[str], tls: str | None = None, *,
             created: str | None = None) -> str:
    meta = f"  name: {name}\n  namespace: default\n"
    if created:
        meta += f"  creationTimestamp: '{created}'\n"
    spec = f"  tls: {tls}\n" if tls is not None else ""
    spec += "  rules:\n" + "".join(
        f"  - host: '{h}'\n    http:\n      paths:\n      - {{path: /, pathType: Prefix, "
        "backend: {service: {name: web, port: {number: 80}}}}\n" for h in hosts)
    return f"---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n{meta}spec:\n{spec}"


def _service(port: int) -> str:
    return ("---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: default}\n"
            f"spec: {{ports: [{{port: 80, targetPort: {port}}}]}}\n"
            "---\napiVersion: v1\nkind: Endpoints\nmetadata: {name: web, namespace: default}\n"
            f"subsets: [{{addresses: [{{ip: 127.0.0.1}}], ports: [{{port: {port}}}]}}]\n")


def _served(store: CertificateStore, res: Resources, name: str) -> str:
    """``"namespace/secret"`` of what a ClientHello naming ``name`` is served, or "default"."""
    if store.context_for(name) is store.default_context:
        return "default"
    got = certificate_for_name(res, None, name)
    assert got is not None
    return got[0]


# --- in-memory handshakes -------------------------------------------------------------------------


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext, sni: str | None
               ) -> tuple[ssl.SSLObject, ssl.SSLObject]:
    """A complete handshake through memory BIOs (ssl.SSLError when it fails)."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    cl = client.wrap_bio(c_in, c_out, server_hostname=sni)
    sv = server.wrap_bio(s_in, s_out, server_side=True)
    done_c = done_s = False
    for _ in range(20):
        if not done_c:
            try:
                cl.do_handshake()
                done_c = True
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        if not done_s:
            try:
                sv.do_handshake()
                done_s = True
            except ssl.SSLWantReadError:
                pass
            finally:
                c_in.write(s_out.read())
        if done_c and done_s:
            return cl, sv
    raise AssertionError("the handshake did not end")


def _insecure() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)   # (no system CA store to load)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


# --- 1. the defect: ALPN http/1.0 -----------------------------------------------------------------


@pytest.fixture(scope="module")
def a_store(ca: trustme.CA) -> CertificateStore:
    res = parse_manifests(_ingress("a", ["a.test"], "[{hosts: [a.test], secretName: a}]")
                          + _leaf("a", ca.issue_cert("a.test")))
    store = CertificateStore()
    assert store.update(res) == []
    return store


@pytest.mark.parametrize("offered, chosen", [
    (["http/1.0"], "http/1.0"),                       # the defect: was None
    (["http/1.0", "http/1.1"], "http/1.1"),           # the server's order, as nginx
    (["h2", "http/1.0", "http/1.1"], "http/1.1"),     # h2 is not spoken
    (["h2", "http/1.1"], "http/1.1"),
    (["http/0.9"], None),                             # not spoken either (a README row)
])
def test_alpn_follows_nginx_list_without_h2(a_store: CertificateStore, offered: list[str],
                                            chosen: str | None) -> None:
    store = a_store
    for server in (store.context_for("a.test"), store.default_context, store.server_context()):
        client = _insecure()
        client.set_alpn_protocols(offered)
        cl, _sv = _handshake(server, client, "a.test")
        assert cl.selected_alpn_protocol() == chosen


# --- 2. the defect: a ca.crt ingress-nginx cannot read -------------------------------------------


def _with_ca(leaf: trustme.LeafCert, ca_crt: bytes | None) -> Resources:
    return parse_manifests(_ingress("a", ["a.test"], "[{hosts: [a.test], secretName: a}]")
                           + _leaf("a", leaf, ca_crt=ca_crt))


def _bad_ca_crts(ca: trustme.CA) -> list[bytes]:
    pem = ca.cert_pem.bytes()
    return [
        b"not a certificate\n",                                   # no PEM block
        ssl.PEM_cert_to_DER_cert(pem.decode()),                   # DER, not PEM
        pem + ca.issue_cert("k.test").private_key_pem.bytes(),    # a key block after it
        pem[:120] + b"\n-----END CERTIFICATE-----\n",             # cut short
    ]


@pytest.mark.parametrize("which", range(4))
def test_a_secret_whose_ca_crt_is_unreadable_is_refused_as_ingress_nginx_does(
        ca: trustme.CA, which: int) -> None:
    # backend_ssl.go getPemCertificate: "if len(ca) > 0 { caCert, err := ssl.CheckCACert(ca)
    # if err != nil { return nil, fmt.Errorf("parsing CA certificate: %v", err) }": the
    # Secret is not loaded, and createServers gives the host the default certificate.
    # Before: served, no problem.
    res = _with_ca(ca.issue_cert("a.test"), _bad_ca_crts(ca)[which])
    store = CertificateStore()
    problems = store.update(res)
    assert [(p.field, p.warning) for p in problems] == [("spec.tls[0].secretName", False)]
    assert "ca.crt" in problems[0].message and "parsing CA certificate" in problems[0].message
    assert _served(store, res, "a.test") == "default"
    assert [str(p) for p in certificate_problems(res)] == [str(p) for p in problems]
    # Still a TLS host (ssl-redirect), as for any Secret that fails.
    assert store.has_tls("a.test")


def _crl(ca: trustme.CA) -> bytes:
    key = load_pem_private_key(ca.private_key_pem.bytes(), None)
    issuer = x509.load_pem_x509_certificate(ca.cert_pem.bytes()).subject
    now = _dt.datetime.now(_dt.timezone.utc)
    builder = (x509.CertificateRevocationListBuilder().issuer_name(issuer).last_update(now)
               .next_update(now + _dt.timedelta(days=1)))
    crl = builder.sign(key, hashes.SHA256())  # type: ignore[arg-type]
    return crl.public_bytes(serialization.Encoding.PEM)


def _with_crl(leaf: trustme.LeafCert, ca_crt: bytes, crl: bytes) -> Resources:
    return parse_manifests(_ingress("a", ["a.test"], "[{hosts: [a.test], secretName: a}]")
                           + _leaf("a", leaf, ca_crt=ca_crt, ca_crl=crl))


def test_a_ca_crl_is_read_after_a_ca_crt_as_ingress_nginx_reads_it(ca: trustme.CA) -> None:
    # getPemCertificate, with a ca.crt: "if len(crl) > 0 { err = ssl.ConfigureCRL(...)":
    # its first PEM block must be an "X509 CRL" that parses, else the Secret is refused.
    # Without a ca.crt the ca.crl is not read. Before: always served.
    leaf = ca.issue_cert("a.test")
    good = ca.cert_pem.bytes()
    for crl, ca_crt, served in ((_crl(ca), good, True), (b"junk", b"", True),
                                (b"junk", good, False), (good, good, False)):
        res = _with_crl(leaf, ca_crt, crl)
        store = CertificateStore()
        problems = store.update(res)
        assert (problems == []) is served, (crl[:20], ca_crt[:20], problems)
        assert _served(store, res, "a.test") == ("default/a" if served else "default")
        if not served:
            assert "ca.crl" in problems[0].message


def test_ca_crt_reading_is_linear_in_hostile_input(ca: trustme.CA) -> None:
    # Part of section 2 (its reader is new): a Secret's bytes are anyone's with write access
    # to one; 40,000 BEGIN lines without an END, each with a type of its own, are read once,
    # not once per line.
    from ingresslib._tls import _ca_problem

    many = b"".join(b"-----BEGIN X%d-----\n" % i for i in range(40000))
    assert _ca_problem(many) is not None
    assert _ca_problem(ca.cert_pem.bytes(), many) is not None
    fine = ca.cert_pem.bytes() * 2000
    assert _ca_problem(fine) is None


def test_a_readable_or_empty_ca_crt_changes_nothing(ca: trustme.CA) -> None:
    # Guard: one CA, a bundle of two, an empty value (``len(ca) > 0`` is false there).
    leaf = ca.issue_cert("a.test")
    for ca_crt in (None, ca.cert_pem.bytes(),
                   ca.cert_pem.bytes() + ca.create_child_ca().cert_pem.bytes(), b""):
        res = _with_ca(leaf, ca_crt)
        store = CertificateStore()
        assert store.update(res) == []
        assert _served(store, res, "a.test") == "default/a"


def test_a_ca_crt_broken_by_an_update_keeps_the_last_good_certificate(ca: trustme.CA) -> None:
    # The same tls.crt/tls.key with a ca.crt broken by an edit: a broken update, which keeps
    # the last good certificate (syncSecret leaves the local store as it was), said as a
    # warning; fixed again, the warning goes. Before: no warning (the ca.crt was not read).
    leaf = ca.issue_cert("a.test")
    store = CertificateStore()
    assert store.update(_with_ca(leaf, ca.cert_pem.bytes())) == []
    res = _with_ca(leaf, b"junk")
    problems = store.update(res)
    assert [(p.field, p.warning) for p in problems] == [("spec.tls[0].secretName", True)]
    assert "still serving its last good certificate" in problems[0].message
    assert store.context_for("a.test") is not store.default_context
    assert store.update(_with_ca(leaf, ca.cert_pem.bytes())) == []


def test_a_default_secret_whose_ca_crt_is_unreadable_serves_the_generated_one(
        ca: trustme.CA) -> None:
    # --default-ssl-certificate: ingress-nginx reads that Secret with the same
    # getPemCertificate; refused, the fake certificate serves. Before: served.
    d = ca.issue_cert("default.test")
    res = parse_manifests(_leaf("d", d, ns="kube", ca_crt=b"junk"))
    store = CertificateStore(default_secret="kube/d")
    problems = store.update(res)
    assert len(problems) == 1 and "ca.crt" in problems[0].message
    assert "serving the generated default certificate" in problems[0].message
    cl, _sv = _handshake(store.default_context, _insecure(), None)
    leaf = x509.load_der_x509_certificate(cl.getpeercert(True) or b"")
    assert DEFAULT_CERT_NAME in leaf.subject.rfc4514_string()


# --- 3. selection (guards) ------------------------------------------------------------------------


def test_guard_two_ingresses_one_host_the_oldest_ingress_wins(ca: trustme.CA) -> None:
    # controller.go createServers walks the Ingresses oldest first and keeps the first
    # certificate: "if servers[host].SSLCert != nil { continue }". The names are chosen so
    # that name order and age order disagree.
    sa, sb = ca.issue_cert("a.test"), ca.issue_cert("a.test", "b.test")
    for older, secret in (("2024-01-01T00:00:00Z", "default/zz"),
                          ("2024-03-01T00:00:00Z", "default/aa")):
        res = parse_manifests(
            _ingress("first", ["a.test"], "[{hosts: [a.test], secretName: aa}]",
                     created="2024-02-01T00:00:00Z")
            + _ingress("second", ["a.test"], "[{hosts: [a.test], secretName: zz}]",
                       created=older)
            + _leaf("aa", sa) + _leaf("zz", sb))
        store = CertificateStore()
        assert store.update(res) == []
        assert _served(store, res, "a.test") == secret


def test_guard_a_wildcard_certificate_listed_for_its_apex_and_a_deeper_host(
        ca: trustme.CA) -> None:
    # *.a.test covers one label: a.test and x.y.a.test are reported and get the default
    # certificate (Go's VerifyHostname fails for both); q.a.test gets it.
    res = parse_manifests(
        _ingress("w", ["a.test", "x.y.a.test", "q.a.test"],
                 "[{hosts: [a.test, x.y.a.test, q.a.test], secretName: w}]")
        + _leaf("w", ca.issue_cert("*.a.test")))
    store = CertificateStore()
    problems = store.update(res)
    assert [p.field for p in problems] == ["spec.tls[0].hosts[0]", "spec.tls[0].hosts[1]"]
    assert all("does not cover" in p.message and not p.warning for p in problems)
    assert [_served(store, res, h) for h in ("a.test", "x.y.a.test", "q.a.test", "Q.A.TEST.")
            ] == ["default", "default", "default/w", "default/w"]


def test_guard_key_mismatch_wrong_chain_order_and_key_formats(ca: trustme.CA) -> None:
    inter = ca.create_child_ca()
    leaf = inter.issue_cert("a.test")
    chain = [p.bytes() for p in leaf.cert_chain_pems]
    key = leaf.private_key_pem.bytes()
    other = ca.issue_cert("a.test").private_key_pem.bytes()
    sec1 = load_pem_private_key(key, None).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption())
    # openssl ecparam -genkey's output: the curve's parameters, then the SEC1 key.
    params = b"-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
    cases = {
        "mismatch": (chain[0], other, "does not match"),
        "wrong order": (b"".join(reversed(chain)), key, "leaf, intermediate, root"),
        "chain": (b"".join(chain), key, None),
        "sec1 ec key": (chain[0], params + sec1, None),
    }
    for name, (crt, k, why) in cases.items():
        res = parse_manifests(_ingress("a", ["a.test"], "[{hosts: [a.test], secretName: a}]")
                              + _secret("a", crt, k))
        store = CertificateStore()
        problems = store.update(res)
        if why is None:
            assert problems == [], name
            assert _served(store, res, "a.test") == "default/a"
        else:
            assert len(problems) == 1 and why in problems[0].message, (name, problems)
            assert _served(store, res, "a.test") == "default"


def test_guard_the_intermediate_is_sent(ca: trustme.CA) -> None:
    # A client trusting only the root verifies leaf + intermediate: the chain is served.
    inter = ca.create_child_ca()
    leaf = inter.issue_cert("a.test")
    res = parse_manifests(_ingress("a", ["a.test"], "[{hosts: [a.test], secretName: a}]")
                          + _secret("a", b"".join(p.bytes() for p in leaf.cert_chain_pems),
                                    leaf.private_key_pem.bytes()))
    store = CertificateStore()
    assert store.update(res) == []
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(client)
    cl, _sv = _handshake(store.context_for("a.test"), client, "a.test")
    assert cl.version() in {"TLSv1.2", "TLSv1.3"}


def test_guard_tls_1_0_and_1_1_are_refused(ca: trustme.CA) -> None:
    # ingress-nginx's default ssl-protocols "TLSv1.2 TLSv1.3".
    store = CertificateStore()
    for version in ("TLSv1", "TLSv1_1"):
        client = _insecure()
        client.set_ciphers("ALL:@SECLEVEL=0")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            client.minimum_version = client.maximum_version = getattr(ssl.TLSVersion, version)
        with pytest.raises(ssl.SSLError):
            _handshake(store.default_context, client, "a.test")


# --- 4. through the listener (guards) ------------------------------------------------------------


class _Env:
    def __init__(self, server: ProxyServer, store: CertificateStore, https: int,
                 backend: int) -> None:
        self.server, self.store, self.https, self.backend = server, store, https, backend


def _manifests(ca: trustme.CA, port: int) -> str:
    return (_ingress("a", ["a.test"], "[{hosts: [a.test], secretName: a}]")
            + _ingress("b", ["b.test"])
            + _ingress("w", ["*.w.test"], "[{hosts: ['*.w.test'], secretName: w}]")
            + _ingress("i", ["xn--bcher-kva.test"],
                       "[{hosts: [xn--bcher-kva.test], secretName: i}]")
            + _service(port) + _leaf("a", _CERTS["a"]) + _leaf("w", _CERTS["w"])
            + _leaf("i", _CERTS["i"]) + _leaf("d", _CERTS["d"], ns="kube"))


_CERTS: dict[str, trustme.LeafCert] = {}


@pytest_asyncio.fixture
async def env(ca: trustme.CA) -> AsyncIterator[_Env]:
    if not _CERTS:
        _CERTS.update(a=ca.issue_cert("a.test"), w=ca.issue_cert("*.w.test"),
                      i=ca.issue_cert("xn--bcher-kva.test"), d=ca.issue_cert("default.test"),
                      a2=ca.issue_cert("a.test", "v2.test"))

    async def backend(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            head = await r.readuntil(b"\r\n\r\n")
            host = next(ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"host:"))
            body = b"backend saw " + host[5:].strip()
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            await w.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            w.close()

    up = await asyncio.start_server(backend, "127.0.0.1", 0)
    try:
        port = up.sockets[0].getsockname()[1]
        res = parse_manifests(_manifests(ca, port))
        store = CertificateStore(default_secret="kube/d")
        assert store.update(res) == []
        server = ProxyServer(Router(res), cert_store=store, client_header_timeout=1)
        await server.start(None, ("127.0.0.1", 0))
        try:
            yield _Env(server, store, server.addresses[0][2], port)
        finally:
            await server.shutdown(1)
    finally:
        up.close()
        await up.wait_closed()


def _names(der: bytes) -> str:
    leaf = x509.load_der_x509_certificate(der)
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return ",".join(san.get_values_for_type(x509.DNSName))


async def _https(port: int, sni: str | None, host: str | None = None,
                 client: ssl.SSLContext | None = None) -> tuple[str, bytes, str | None]:
    """(the served certificate's DNS names, the answer to GET / with ``host``, the ALPN)."""
    r, w = await asyncio.open_connection("127.0.0.1", port, ssl=client or _insecure(),
                                         server_hostname=sni)
    try:
        obj = w.get_extra_info("ssl_object")
        names = _names(obj.getpeercert(True))
        answer = b""
        if host is not None:
            w.write(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
            await w.drain()
            answer = await asyncio.wait_for(r.read(), 10)
        return names, answer, obj.selected_alpn_protocol()
    finally:
        w.close()


@pytest.mark.network
@pytest.mark.asyncio
@pytest.mark.parametrize("sni, names", [
    ("a.test", "a.test"),
    ("A.TEST", "a.test"),                    # certificate.lua lowercases [A-Z]
    ("a.test.", "a.test"),                   # and strips one trailing dot
    ("q.w.test", "*.w.test"),                # one label under the wildcard
    ("w.test", "default.test"),              # not the apex
    ("x.q.w.test", "default.test"),          # nor two labels
    ("bücher.test", "xn--bcher-kva.test"),   # the client sends the A-label (IDNA)
    ("XN--BCHER-KVA.TEST", "xn--bcher-kva.test"),
    ("127.0.0.1", "default.test"),           # an IP address: no SNI is sent
    (None, "default.test"),                  # no SNI: --default-ssl-certificate's
    ("unknown.test", "default.test"),
])
async def test_guard_the_certificate_follows_sni(env: _Env, sni: str | None, names: str) -> None:
    assert (await _https(env.https, sni))[0] == names


@pytest.mark.network
@pytest.mark.asyncio
async def test_guard_sni_of_one_host_and_host_header_of_another_is_routed_by_host(
        env: _Env) -> None:
    # nginx chooses the certificate by SNI and the server by Host; 421 only with
    # ssl_verify_client (ngx_http_set_virtual_server). README, "certificate selection".
    names, answer, _alpn = await _https(env.https, "a.test", "b.test")
    assert names == "a.test"
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"backend saw b.test")


@pytest.mark.network
@pytest.mark.asyncio
async def test_alpn_through_the_listener(env: _Env) -> None:
    # Section 1 through the HTTPS listener (its context switch keeps the ALPN list).
    for offered, chosen in ((["h2", "http/1.1"], "http/1.1"), (["http/1.0"], "http/1.0")):
        client = _insecure()
        client.set_alpn_protocols(offered)
        _names_, answer, alpn = await _https(env.https, "a.test", "a.test", client)
        assert alpn == chosen and answer.startswith(b"HTTP/1.1 200 ")


@pytest.mark.network
@pytest.mark.asyncio
async def test_guard_secrets_updated_and_deleted_while_serving(env: _Env, ca: trustme.CA
                                                               ) -> None:
    # A connection established before the update keeps its certificate and goes on; the next
    # handshake gets the new one; a deleted Secret gives the default certificate, a deleted
    # default Secret the generated one.
    r, w = await asyncio.open_connection("127.0.0.1", env.https, ssl=_insecure(),
                                         server_hostname="a.test")
    try:
        base = _manifests(ca, env.backend)
        updated = base.replace(_leaf("a", _CERTS["a"]), _leaf("a", _CERTS["a2"]))
        assert env.store.update(parse_manifests(updated)) == []
        assert (await _https(env.https, "a.test"))[0] == "a.test,v2.test"
        w.write(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        await w.drain()
        assert (await asyncio.wait_for(r.read(), 10)).endswith(b"backend saw a.test")
    finally:
        w.close()
    gone = parse_manifests(base.replace(_leaf("a", _CERTS["a"]), "")
                           .replace(_leaf("d", _CERTS["d"], ns="kube"), ""))
    problems = env.store.update(gone)
    assert {p.object for p in problems} == {"Ingress default/a", "default certificate"}
    for sni in ("a.test", None):
        names = await _https_raw_subject(env.https, sni)
        assert DEFAULT_CERT_NAME in names


async def _https_raw_subject(port: int, sni: str | None) -> str:
    r, w = await asyncio.open_connection("127.0.0.1", port, ssl=_insecure(),
                                         server_hostname=sni)
    try:
        der = w.get_extra_info("ssl_object").getpeercert(True)
        return str(x509.load_der_x509_certificate(der).subject.rfc4514_string())
    finally:
        w.close()


async def _read_all(r: asyncio.StreamReader) -> bytes:
    out = b""
    while True:
        got = await asyncio.wait_for(r.read(65536), 10)
        if not got:
            return out
        out += got


@pytest.mark.network
@pytest.mark.asyncio
@pytest.mark.parametrize("garbage, first", [
    (b"\x16\x03\x01\x00\x05hello", b"\x15"),   # a record that is no ClientHello: an alert
    (b"\xff" * 64, b""),                       # SSLv2's bit, then nonsense: closed
    (b"\x16\x03\x03\x00\x04\x02\x00\x00\x00", b"\x15"),  # a ServerHello sent to a server
])
async def test_guard_garbage_instead_of_a_client_hello(env: _Env, garbage: bytes,
                                                       first: bytes) -> None:
    r, w = await asyncio.open_connection("127.0.0.1", env.https)
    try:
        w.write(garbage)
        await w.drain()
        assert (await _read_all(r))[:1] == first
    finally:
        w.close()
    assert (await _https(env.https, "a.test"))[0] == "a.test"   # the listener goes on


@pytest.mark.network
@pytest.mark.asyncio
async def test_guard_a_handshake_that_never_completes_is_bounded(env: _Env) -> None:
    # client_header_timeout (1 s here; nginx arms it at accept, for the handshake too):
    # the socket is closed, whatever was sent; no socket is held afterwards.
    await asyncio.gather(*(_stall(env, sent)
                           for sent in ("nothing", "half a hello", "a whole hello")))
    for _ in range(100):
        if not env.server.handshaking:
            break
        await asyncio.sleep(0.01)
    assert not env.server.handshaking


async def _stall(env: _Env, sent: str) -> None:
    r, w = await asyncio.open_connection("127.0.0.1", env.https)
    try:
        sock = w.transport.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if sent != "nothing":
            c_in, c_out = ssl.MemoryBIO(), ssl.MemoryBIO()
            obj = _insecure().wrap_bio(c_in, c_out, server_hostname="a.test")
            with pytest.raises(ssl.SSLWantReadError):
                obj.do_handshake()
            hello = c_out.read()
            assert hello[0] == 22 and len(hello) == 5 + struct.unpack("!H", hello[3:5])[0]
            w.write(hello if sent == "a whole hello" else hello[:40])
            await w.drain()
        answer = await _read_all(r)
        # A whole hello is answered (ServerHello...) and then left unfinished by the client.
        assert (answer[:1] == b"\x16") == (sent == "a whole hello"), sent
    finally:
        w.close()
