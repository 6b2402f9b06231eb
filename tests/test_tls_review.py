"""TLS termination reviewed against SEMANTICS §10 and ingress-nginx (session 10): SNI selection
edge cases, Secret contents, live changes on a running listener, session resumption."""

from __future__ import annotations

import asyncio
import datetime as _dt
import logging
import ssl

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ingresslib._models import Ingress, Secret
from ingresslib._resources import Resources
from ingresslib._tls import DEFAULT_CERT_NAME, CertificateStore, TLSProblem
from tests._server_helpers import Client, StubRouter
from tests.test_tls import (
    _aged,
    _connected,
    _ingress,
    _pems,
    _secret,
    _served_cert,
    _served_sans,
    _validity_cert,
)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _store(ingresses: tuple[Ingress, ...], secrets: tuple[Secret, ...]
           ) -> tuple[CertificateStore, list[TLSProblem]]:
    store = CertificateStore()
    return store, store.update(Resources(ingresses=ingresses, secrets=secrets))


def _verifying(ca: trustme.CA, version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    c = ssl.create_default_context()
    ca.configure_trust(c)
    if version is not None:
        c.minimum_version = c.maximum_version = version
    return c


# --- SNI selection --------------------------------------------------------------------------


def test_exact_beats_wildcard_and_a_wildcard_covers_one_label(ca: trustme.CA) -> None:
    # ingress-nginx certificate.lua get_pem_cert_uid: the exact hostname first, then
    # re_sub(hostname, "^[^\\.]+\\.", "*.") -- one first label replaced by "*".
    exact, wild = ca.issue_cert("a.ex.test"), ca.issue_cert("*.ex.test")
    store, problems = _store(
        (_ingress("w", [(("*.ex.test",), "wild"), (("a.ex.test",), "exact")]),),
        (_secret("wild", *_pems(wild)), _secret("exact", *_pems(exact))))
    assert problems == []
    assert _served_sans(store, ca, "a.ex.test") == {"a.ex.test"}
    assert _served_sans(store, ca, "A.EX.test.") == {"a.ex.test"}   # case, one trailing dot
    assert _served_sans(store, ca, "b.ex.test") == {"*.ex.test"}
    assert _served_sans(store, ca, "B.Ex.Test.") == {"*.ex.test"}
    for sni in ("x.a.ex.test", "ex.test"):
        assert DEFAULT_CERT_NAME in _served_cert(store, sni).subject.rfc4514_string(), sni
    assert store.context_for(".ex.test") is store.default_context   # no first label
    # No SNI (the client connected to an IP address), or an IP address sent as SNI anyway:
    # the default certificate.
    assert store.context_for(None) is store.default_context
    assert store.context_for("") is store.default_context
    assert store.context_for("127.0.0.1") is store.default_context


def test_same_host_different_secrets_oldest_ingress_wins(ca: trustme.CA) -> None:
    # ingress-nginx createServers walks Ingresses oldest first and "only add[s] a certificate if
    # the server does not have one previously configured"; SEMANTICS §4.3 orders them.
    one, two = ca.issue_cert("same.test"), ca.issue_cert("same.test", "two.test")
    ings = (_aged("new", 2024, tls=[(("same.test",), "two")], rule_hosts=("same.test",)),
            _aged("old", 2020, tls=[(("same.test",), "one")], rule_hosts=("same.test",)))
    store, problems = _store(ings, (_secret("one", *_pems(one)), _secret("two", *_pems(two))))
    assert problems == []
    assert _served_sans(store, ca, "same.test") == {"same.test"}


def test_same_host_equal_timestamps_namespace_name_order(ca: trustme.CA) -> None:
    # SEMANTICS §4.3: "the oldest Ingress (creationTimestamp), then namespace/name" -- the same
    # order as RouteTable. (ingress-nginx store.go sortIngressSlice breaks the tie the other way,
    # "return in > jn"; SEMANTICS wins.)
    one, two = ca.issue_cert("tie.test"), ca.issue_cert("tie.test", "b.tie.test")
    ings = (_aged("b-ing", 2020, tls=[(("tie.test",), "two")], rule_hosts=("tie.test",)),
            _aged("a-ing", 2020, tls=[(("tie.test",), "one")], rule_hosts=("tie.test",)))
    store, problems = _store(ings, (_secret("one", *_pems(one)), _secret("two", *_pems(two))))
    assert problems == []
    assert _served_sans(store, ca, "tie.test") == {"tie.test"}


# --- Secret contents --------------------------------------------------------------------------


def test_pem_with_crlf_and_text_around_the_blocks_is_used(ca: trustme.CA) -> None:
    crt, key = _pems(ca.issue_cert("crlf.test"))
    crt = b"Bag Attributes\r\n    friendlyName: crlf\r\n" + crt.replace(b"\n", b"\r\n") + b"junk"
    key = key.replace(b"\n", b"\r\n").rstrip()
    store, problems = _store((_ingress("w", [(("crlf.test",), "t")]),), (_secret("t", crt, key),))
    assert problems == []
    assert _served_sans(store, ca, "crlf.test") == {"crlf.test"}


def test_ec_and_traditional_rsa_keys_are_used() -> None:
    ec = trustme.CA(key_type=trustme.KeyType.ECDSA)
    crt, key = _pems(ec.issue_cert("ec.test", key_type=trustme.KeyType.ECDSA))
    rsa = trustme.CA(key_type=trustme.KeyType.RSA)
    rcrt, rkey = _pems(rsa.issue_cert("rsa.test", key_type=trustme.KeyType.RSA))
    k = serialization.load_pem_private_key(rkey, None)
    pkcs1 = k.private_bytes(serialization.Encoding.PEM,
                            serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    assert pkcs1.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    store, problems = _store((_ingress("w", [(("ec.test",), "ec"), (("rsa.test",), "rsa")]),),
                             (_secret("ec", crt, key), _secret("rsa", rcrt, pkcs1)))
    assert problems == []
    assert _served_sans(store, ec, "ec.test") == {"ec.test"}
    assert _served_sans(store, rsa, "rsa.test") == {"rsa.test"}


def test_intermediates_in_tls_crt_are_sent(ca: trustme.CA) -> None:
    # A client trusting only the root verifies a leaf issued by an intermediate: the server
    # sends tls.crt's chain (leaf, intermediate), as nginx sends its ssl_certificate file.
    leaf = ca.create_child_ca().issue_cert("chain.test")
    assert len(leaf.cert_chain_pems) == 2
    store, problems = _store((_ingress("w", [(("chain.test",), "t")]),),
                             (_secret("t", *_pems(leaf)),))
    assert problems == []
    cl, _sv, _ = _connected(store.server_context(), _verifying(ca), "chain.test")
    cert = cl.getpeercert()
    assert cert is not None
    assert {v for _k, v in cert["subjectAltName"]} == {"chain.test"}  # type: ignore[str-unpack]


def test_tls_key_holding_certificates_before_the_key_is_used(ca: trustme.CA) -> None:
    # A combined "fullchain + key" PEM given as tls.key. ingress-nginx: tls.X509KeyPair(cert,
    # key) skips the CERTIFICATE blocks of key, and its PEM file is cert + "\n" + key (ssl.go
    # CreateSSLCert), so the leaf is tls.crt's first certificate. Loading key-then-cert made the
    # first certificate of tls.key the leaf: "KEY_VALUES_MISMATCH".
    leaf, other = ca.issue_cert("combo.test"), ca.issue_cert("other.test")
    crt, key = _pems(leaf)
    store, problems = _store((_ingress("w", [(("combo.test",), "t")]),),
                             (_secret("t", crt, _pems(other)[0] + key),))
    assert problems == []
    assert _served_sans(store, ca, "combo.test") == {"combo.test"}


@pytest.mark.parametrize(("crt", "key", "says"), [
    (b"not a certificate", None, "tls.crt holds no PEM certificate"),
    (b"  -----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", None,
     "tls.crt holds no PEM certificate"),
    (None, b"not a key", "tls.key holds no PEM private key"),
    (None, b"", "has no tls.crt/tls.key"),
])
def test_unreadable_pem_names_the_field_and_the_secret(
    ca: trustme.CA, crt: bytes | None, key: bytes | None, says: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    good_crt, good_key = _pems(ca.issue_cert("bad.test"))
    with caplog.at_level(logging.WARNING, logger="ingresslib.tls"):
        store, problems = _store(
            (_ingress("w", [(("bad.test",), "s")]),),
            (_secret("s", good_crt if crt is None else crt, good_key if key is None else key),))
    assert len(problems) == 1 and not problems[0].warning
    assert says in problems[0].message and "default/s" in problems[0].message, problems[0].message
    assert "PEM lib" not in problems[0].message
    assert "Traceback" not in caplog.text and "default/s" in caplog.text
    assert store.context_for("bad.test") is store.default_context


def test_swapped_tls_crt_and_tls_key_are_reported_as_such(ca: trustme.CA) -> None:
    crt, key = _pems(ca.issue_cert("swap.test"))
    store, problems = _store((_ingress("w", [(("swap.test",), "s")]),), (_secret("s", key, crt),))
    assert len(problems) == 1
    assert "tls.crt holds no PEM certificate" in problems[0].message, problems[0].message
    assert store.context_for("swap.test") is store.default_context


def test_key_of_another_certificate_is_reported_clearly(ca: trustme.CA) -> None:
    crt, _ = _pems(ca.issue_cert("m.test"))
    _, other_key = _pems(ca.issue_cert("n.test"))
    store, problems = _store((_ingress("w", [(("m.test",), "s")]),),
                             (_secret("s", crt, other_key),))
    assert len(problems) == 1
    assert "tls.key does not match the certificate in tls.crt" in problems[0].message
    assert "default/s" in problems[0].message


def test_encrypted_key_after_certificates_in_tls_key_is_named(ca: trustme.CA) -> None:
    # Encrypted (PKCS#8 or traditional "Proc-Type: 4,ENCRYPTED"), even behind a certificate in
    # a combined PEM: reported as such, never a passphrase prompt (see test_tls).
    leaf = ca.issue_cert("enc2.test")
    crt, key = _pems(leaf)
    k = serialization.load_pem_private_key(key, None)
    for fmt in (serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL):
        enc = k.private_bytes(serialization.Encoding.PEM, fmt,
                              serialization.BestAvailableEncryption(b"pw"))
        store, problems = _store((_ingress("w", [(("enc2.test",), "s")]),),
                                 (_secret("s", crt, crt + enc),))
        assert len(problems) == 1, problems
        assert "tls.key is encrypted" in problems[0].message and "default/s" in problems[0].message
        assert store.context_for("enc2.test") is store.default_context


def test_certificate_about_to_expire_is_a_warning_and_still_served() -> None:
    # ingress-nginx createServers: "else if cert.ExpireTime.Before(now.Add(240 * time.Hour))
    # { klog.Warningf("SSL certificate for server %q is about to expire (%v)" ...".
    now = _dt.datetime.now(_dt.timezone.utc)
    soon = _validity_cert("soon.test", now - _dt.timedelta(days=80), now + _dt.timedelta(days=3))
    later = _validity_cert("later.test", now - _dt.timedelta(days=80), now + _dt.timedelta(days=11))
    store, problems = _store(
        (_ingress("w", [(("soon.test",), "soon"), (("later.test",), "later")]),),
        (_secret("soon", *soon), _secret("later", *later)))
    assert [(p.field, p.warning) for p in problems] == [("spec.tls[0].secretName", True)]
    assert "expires" in problems[0].message and "default/soon" in problems[0].message
    assert store.hosts == {"soon.test", "later.test"}


def test_a_broken_update_keeps_the_last_good_certificate(ca: trustme.CA) -> None:
    # ingress-nginx backend_ssl.go syncSecret: "cert, err := s.getPemCertificate(key); if err !=
    # nil { klog.Warningf("Error obtaining X.509 certificate: %v", err); return }" -- the local
    # store keeps the certificate it had; a deleted Secret is removed from it. SEMANTICS §11:
    # "an invalid update keeps the last good table and reports why". ingresslib dropped the
    # host to the default certificate instead: every client saw a certificate error.
    good, other = ca.issue_cert("keep.test"), ca.issue_cert("other.test")
    crt, key = _pems(good)
    ing = (_ingress("w", [(("keep.test",), "s")], rule_hosts=("keep.test",)),)
    store = CertificateStore()
    assert store.update(Resources(ingresses=ing, secrets=(_secret("s", crt, key),))) == []
    before = store.context_for("keep.test")
    broken = [_secret("s", crt, _pems(other)[1]),                     # key of another cert
              _secret("s", b"garbage", key)]                         # not PEM
    for sec in broken:
        problems = store.update(Resources(ingresses=ing, secrets=(sec,)))
        assert [(p.field, p.warning) for p in problems] == [("spec.tls[0].secretName", True)]
        assert "last good certificate" in problems[0].message, problems[0].message
        assert "default/s" in problems[0].message
        assert store.context_for("keep.test") is before
        assert _served_sans(store, ca, "keep.test") == {"keep.test"}
    # Deleted: the default certificate; broken when it comes back: still the default one.
    problems = store.update(Resources(ingresses=ing))
    assert [p.warning for p in problems] == [False] and "not found" in problems[0].message
    assert store.context_for("keep.test") is store.default_context
    problems = store.update(Resources(ingresses=ing, secrets=(broken[0],)))
    assert [p.warning for p in problems] == [False]
    assert store.context_for("keep.test") is store.default_context
    # A fixed Secret is used at once.
    assert store.update(Resources(ingresses=ing, secrets=(_secret("s", crt, key),))) == []
    assert _served_sans(store, ca, "keep.test") == {"keep.test"}


# --- session resumption -----------------------------------------------------------------------


def _resume(server: ssl.SSLContext, client: ssl.SSLContext, first: str, second: str
            ) -> tuple[ssl.SSLSession, bool, set[str]]:
    """A full handshake for ``first``, then a resumption attempt with its session for
    ``second``: (the first session, whether the second resumed, the names it was shown)."""
    cl, sv, (c_in, _c_out, _s_in, s_out) = _connected(server, client, first)
    sv.write(b"x")              # TLS 1.3 tickets come after the handshake
    c_in.write(s_out.read())
    assert cl.read(1) == b"x"
    session = cl.session
    assert session is not None
    bios = [ssl.MemoryBIO() for _ in range(4)]
    c2 = client.wrap_bio(bios[0], bios[1], server_hostname=second, session=session)
    s2 = server.wrap_bio(bios[2], bios[3], server_side=True)
    for _ in range(10):
        for side, out, inp in ((c2, bios[1], bios[2]), (s2, bios[3], bios[0])):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
            inp.write(out.read())
    cert = c2.getpeercert()
    assert cert is not None
    names: set[str] = {str(v) for _k, v in cert["subjectAltName"]}  # type: ignore[str-unpack]
    return session, c2.session_reused, names


@pytest.fixture(scope="module")
def two_hosts(ca: trustme.CA) -> CertificateStore:
    a, b = ca.issue_cert("a.test"), ca.issue_cert("b.test")
    store, problems = _store((_ingress("w", [(("a.test",), "a"), (("b.test",), "b")]),),
                             (_secret("a", *_pems(a)), _secret("b", *_pems(b))))
    assert problems == []
    return store


def test_no_session_tickets_as_ingress_nginx(two_hosts: CertificateStore, ca: trustme.CA) -> None:
    # ingress-nginx config.go NewDefault: "SSLSessionTickets: false" (ssl_session_tickets off):
    # ticket keys that live as long as the process would undo forward secrecy. Sessions are
    # resumed from the server's session cache instead.
    assert two_hosts.server_context().options & ssl.OP_NO_TICKET
    session, reused, names = _resume(two_hosts.server_context(),
                                     _verifying(ca, ssl.TLSVersion.TLSv1_2), "a.test", "a.test")
    assert not session.has_ticket
    assert reused and names == {"a.test"}


def test_tls13_resumption_for_the_same_host(two_hosts: CertificateStore, ca: trustme.CA) -> None:
    _session, reused, names = _resume(two_hosts.server_context(),
                                      _verifying(ca, ssl.TLSVersion.TLSv1_3), "a.test", "a.test")
    assert reused and names == {"a.test"}


def test_alpn_offers_http11_only(two_hosts: CertificateStore, ca: trustme.CA) -> None:
    for offered, chosen in ((["h2", "http/1.1"], "http/1.1"), (["http/1.1"], "http/1.1"),
                            (None, None)):
        client = _verifying(ca)
        if offered:
            client.set_alpn_protocols(offered)
        for sni in ("a.test", "nobody.test"):
            if sni == "nobody.test":
                client.check_hostname = False
                client.verify_mode = ssl.CERT_NONE
            cl, _sv, _ = _connected(two_hosts.server_context(), client, sni)
            assert cl.selected_alpn_protocol() == chosen


# --- live changes on a running HTTPS listener ----------------------------------------------------


@pytest.mark.network
@pytest.mark.asyncio
async def test_secret_changes_apply_to_a_running_listener(ca: trustme.CA) -> None:
    # SEMANTICS §10: "Certificate changes apply without restart." A connection established
    # before the change keeps its certificate and keeps working.
    from ingresslib.proxy._server import ProxyServer

    one, two = ca.issue_cert("live.test"), ca.issue_cert("live.test", "v2.live.test")
    ing = (_ingress("w", [(("live.test",), "t")], rule_hosts=("live.test",)),)
    store = CertificateStore()
    assert store.update(Resources(ingresses=ing, secrets=(_secret("t", *_pems(one)),))) == []
    server = ProxyServer(StubRouter([], known="live.test"), cert_store=store)
    await server.start(None, ("127.0.0.1", 0))
    port = server.addresses[0][2]
    client = _verifying(ca)
    lax = ssl.create_default_context()
    lax.check_hostname = False
    lax.verify_mode = ssl.CERT_NONE

    def names(c: Client) -> set[str]:
        der = c.writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        cert = x509.load_der_x509_certificate(der)
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            return set(san.get_values_for_type(x509.DNSName))
        except x509.ExtensionNotFound:
            return set()

    clients: list[Client] = []
    try:
        old = await Client.open(port, tls=client, sni="live.test")
        clients.append(old)
        assert names(old) == {"live.test"}
        assert (await old.get("live.test")).status == 503   # routed: no endpoints

        # Rotation (in a worker thread, as the serve loop does it).
        await asyncio.get_running_loop().run_in_executor(None, store.update, Resources(
            ingresses=ing, secrets=(_secret("t", *_pems(two)),)))
        new = await Client.open(port, tls=client, sni="live.test")
        clients.append(new)
        assert names(new) == {"live.test", "v2.live.test"}
        assert (await old.get("live.test")).status == 503   # still open, same certificate
        assert names(old) == {"live.test"}

        # The Secret is deleted: the host falls back to the default certificate.
        store.update(Resources(ingresses=ing))
        gone = await Client.open(port, tls=lax, sni="live.test")
        clients.append(gone)
        der = gone.writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        assert DEFAULT_CERT_NAME in x509.load_der_x509_certificate(der).subject.rfc4514_string()
        assert (await gone.get("live.test")).status == 503
        assert (await new.get("live.test")).status == 503
    finally:
        for c in clients:
            await c.close()
        await server.shutdown(1)
