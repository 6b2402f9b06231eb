"""SNI certificate selection: in memory (MemoryBIO handshakes) and over a real 127.0.0.1 socket."""

from __future__ import annotations

import asyncio
import base64
import datetime as _dt
import logging
import os
import ssl
import subprocess
import sys
import time
import warnings

import pytest
import trustme
from cryptography import x509

from ingresslib._models import (
    Ingress,
    IngressRule,
    IngressSpec,
    IngressTLS,
    ObjectMeta,
    Secret,
    freeze_map,
)
from ingresslib._resources import Resources
from ingresslib._tls import DEFAULT_CERT_NAME, CertificateStore, TLSProblem, generate_certificate


def _secret(name: str, crt: bytes, key: bytes, ns: str = "default") -> Secret:
    return Secret(
        metadata=ObjectMeta(name=name, namespace=ns),
        type="kubernetes.io/tls",
        data=freeze_map({"tls.crt": base64.b64encode(crt).decode(),
                         "tls.key": base64.b64encode(key).decode()}),
    )


def _ingress(name: str, tls: list[tuple[tuple[str, ...], str]], ns: str = "default",
             rule_hosts: tuple[str, ...] = ()) -> Ingress:
    return Ingress(
        metadata=ObjectMeta(name=name, namespace=ns),
        spec=IngressSpec(
            rules=tuple(IngressRule(host=h) for h in rule_hosts),
            tls=tuple(IngressTLS(hosts=hosts, secret_name=s) for hosts, s in tls),
        ),
    )


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def store_and_names(ca: trustme.CA) -> tuple[CertificateStore, trustme.CA]:
    a = ca.issue_cert("a.example.test")
    w = ca.issue_cert("*.b.example.test")
    res = Resources(
        ingresses=(_ingress("web", [(("a.example.test",), "a-tls"), (("*.b.example.test",), "b-tls")]),),
        secrets=(
            _secret("a-tls", a.cert_chain_pems[0].bytes(), a.private_key_pem.bytes()),
            _secret("b-tls", w.cert_chain_pems[0].bytes(), w.private_key_pem.bytes()),
        ),
    )
    store = CertificateStore()
    assert store.update(res) == []
    return store, ca


def _handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, sni: str | None) -> dict:  # type: ignore[type-arg]
    """Pump a TLS handshake between two in-memory peers; returns the client's view of the cert."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=sni)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    c_done = s_done = False
    for _ in range(20):
        if not c_done:
            try:
                client.do_handshake()
                c_done = True
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        if not s_done:
            try:
                server.do_handshake()
                s_done = True
            except ssl.SSLWantReadError:
                pass
        c_in.write(s_out.read())
        if c_done and s_done:
            break
    assert c_done and s_done
    cert = client.getpeercert()
    assert cert is not None
    return cert


def _sans(cert: dict) -> set[str]:  # type: ignore[type-arg]
    return {v for k, v in cert.get("subjectAltName", ()) if k == "DNS"}


def test_exact_sni_picks_its_certificate(store_and_names: tuple[CertificateStore, trustme.CA]) -> None:
    store, ca = store_and_names
    client = ssl.create_default_context()
    ca.configure_trust(client)
    cert = _handshake(store.server_context(), client, "a.example.test")
    assert _sans(cert) == {"a.example.test"}


def test_sni_is_case_insensitive(store_and_names: tuple[CertificateStore, trustme.CA]) -> None:
    store, _ = store_and_names
    assert store.context_for("A.Example.TEST") is store.context_for("a.example.test")
    assert store.context_for("a.example.test") is not store.default_context


def test_wildcard_covers_one_label(store_and_names: tuple[CertificateStore, trustme.CA]) -> None:
    store, ca = store_and_names
    client = ssl.create_default_context()
    ca.configure_trust(client)
    cert = _handshake(store.server_context(), client, "x.b.example.test")
    assert _sans(cert) == {"*.b.example.test"}
    # Two labels deep, and the bare suffix, are not covered: they get the default certificate.
    assert store.context_for("y.x.b.example.test") is store.default_context
    assert store.context_for("b.example.test") is store.default_context


def test_unknown_sni_gets_generated_default(store_and_names: tuple[CertificateStore, trustme.CA]) -> None:
    store, _ = store_and_names
    subject = _served_cert(store, "nobody.test").subject.rfc4514_string()
    assert DEFAULT_CERT_NAME in subject


def test_verifying_client_rejects_wrong_name_on_default(
    store_and_names: tuple[CertificateStore, trustme.CA],
) -> None:
    store, ca = store_and_names
    client = ssl.create_default_context()
    ca.configure_trust(client)
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(store.server_context(), client, "y.x.b.example.test")


def test_problems_fall_back_to_default() -> None:
    store = CertificateStore()
    res = Resources(
        ingresses=(_ingress("web", [(("a.test",), "missing"), (("b.test",), "bad")]),),
        secrets=(Secret(metadata=ObjectMeta(name="bad"), type="kubernetes.io/tls"),),
    )
    problems = store.update(res)
    assert [p.field for p in problems] == ["spec.tls[0].secretName", "spec.tls[1].secretName"]
    assert "not found" in problems[0].message
    assert store.context_for("a.test") is store.default_context


def test_secret_from_other_namespace_is_not_used(ca: trustme.CA) -> None:
    leaf = ca.issue_cert("a.test")
    res = Resources(
        ingresses=(_ingress("web", [(("a.test",), "tls")], ns="one"),),
        secrets=(_secret("tls", leaf.cert_chain_pems[0].bytes(), leaf.private_key_pem.bytes(), ns="two"),),
    )
    store = CertificateStore()
    assert len(store.update(res)) == 1
    assert store.context_for("a.test") is store.default_context


def test_tls_without_hosts_covers_rule_hosts() -> None:
    crt, key = generate_certificate(["r.test"])
    res = Resources(ingresses=(_ingress("web", [((), "tls")], rule_hosts=("r.test",)),),
                    secrets=(_secret("tls", crt, key),))
    store = CertificateStore()
    assert store.update(res) == []
    assert store.hosts == {"r.test"}


def test_swap_without_restart_and_reuse(ca: trustme.CA) -> None:
    one, two = ca.issue_cert("s.test"), ca.issue_cert("s.test", "t.test")
    store = CertificateStore()
    server = store.server_context()
    mk = lambda leaf: Resources(  # noqa: E731
        ingresses=(_ingress("web", [(("s.test",), "tls")]),),
        secrets=(_secret("tls", leaf.cert_chain_pems[0].bytes(), leaf.private_key_pem.bytes()),))
    store.update(mk(one))
    first = store.context_for("s.test")
    store.update(mk(one))
    assert store.context_for("s.test") is first  # unchanged Secret: context reused
    client = ssl.create_default_context()
    ca.configure_trust(client)
    assert _sans(_handshake(server, client, "s.test")) == {"s.test"}
    store.update(mk(two))
    assert store.server_context() is server
    assert _sans(_handshake(server, client, "s.test")) == {"s.test", "t.test"}


@pytest.mark.network
@pytest.mark.asyncio
async def test_real_socket_sni(store_and_names: tuple[CertificateStore, trustme.CA]) -> None:
    store, ca = store_and_names

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=store.server_context())
    port = server.sockets[0].getsockname()[1]
    client = ssl.create_default_context()
    ca.configure_trust(client)
    try:
        for name, want in (("a.example.test", {"a.example.test"}), ("z.b.example.test", {"*.b.example.test"})):
            _, w = await asyncio.open_connection("127.0.0.1", port, ssl=client, server_hostname=name)
            cert = w.get_extra_info("peercert")
            assert _sans(cert) == want
            w.close()
            try:
                await w.wait_closed()
            except (ConnectionError, ssl.SSLError):
                pass
    finally:
        server.close()
        await server.wait_closed()


# --- review against ingress-nginx: selection rules, Secret problems, updates, hardening --------


def _pems(leaf: trustme.LeafCert) -> tuple[bytes, bytes]:
    return b"".join(p.bytes() for p in leaf.cert_chain_pems), leaf.private_key_pem.bytes()


def _aged(name: str, year: int, **kw: object) -> Ingress:
    ing = _ingress(name, **kw)  # type: ignore[arg-type]
    meta = ObjectMeta(name=ing.metadata.name, namespace=ing.metadata.namespace,
                      creation_timestamp=_dt.datetime(year, 1, 1, tzinfo=_dt.timezone.utc))
    return Ingress(metadata=meta, spec=ing.spec)


def _connected(server: ssl.SSLContext, client: ssl.SSLContext, sni: str | None) -> tuple[
        ssl.SSLObject, ssl.SSLObject, tuple[ssl.MemoryBIO, ssl.MemoryBIO, ssl.MemoryBIO, ssl.MemoryBIO]]:
    """A client and a server after an in-memory handshake (an ``SSLError`` if it fails):
    ``(client, server, (client in, client out, server in, server out))``."""
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    cl = client.wrap_bio(c_in, c_out, server_hostname=sni)
    sv = server.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for side, out, inp in ((cl, c_out, s_in), (sv, s_out, c_in)):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
            inp.write(out.read())
    return cl, sv, (c_in, c_out, s_in, s_out)


def _served_cert(store: CertificateStore, sni: str) -> x509.Certificate:
    """The certificate the store's listening context presents to a client sending ``sni``
    (an in-memory handshake; the client verifies nothing)."""
    client = ssl.create_default_context()
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    cl, _sv, _bios = _connected(store.server_context(), client, sni)
    der = cl.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def _served_sans(store: CertificateStore, ca: trustme.CA, sni: str) -> set[str]:
    cert = _served_cert(store, sni)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return set(san.get_values_for_type(x509.DNSName))


def test_same_host_in_two_ingresses_oldest_wins(ca: trustme.CA) -> None:
    # SEMANTICS §4.3 ("the oldest Ingress (creationTimestamp), then namespace/name") and
    # ingress-nginx (servers built from Ingresses sorted by age; "only add a certificate if the
    # server does not have one previously configured"). Listing order must not matter.
    old, new = ca.issue_cert("h.test", "old.test"), ca.issue_cert("h.test", "new.test")
    res = Resources(
        ingresses=(_aged("new", 2024, tls=[(("h.test",), "new")], rule_hosts=("h.test",)),
                   _aged("old", 2020, tls=[(("h.test",), "old")], rule_hosts=("h.test",))),
        secrets=(_secret("new", *_pems(new)), _secret("old", *_pems(old))),
    )
    store = CertificateStore()
    assert store.update(res) == []
    assert _served_sans(store, ca, "h.test") == {"h.test", "old.test"}


def test_listed_host_the_certificate_does_not_cover_gets_default(ca: trustme.CA) -> None:
    # ingress-nginx: VerifyHostname fails -> "SSL certificate ... does not contain a Common Name
    # or Subject Alternative Name for server ...", "Using default certificate".
    other = ca.issue_cert("other.test")
    res = Resources(ingresses=(_ingress("web", [(("x.test",), "t")], rule_hosts=("x.test",)),),
                    secrets=(_secret("t", *_pems(other)),))
    store = CertificateStore()
    problems = store.update(res)
    assert [(p.field, "x.test" in p.message) for p in problems] == [("spec.tls[0].hosts[0]", True)]
    assert store.context_for("x.test") is store.default_context


def test_non_covering_entry_does_not_shadow_another_tenants_certificate(ca: trustme.CA) -> None:
    # Tenant a's older Ingress names bank.test with a certificate for a.test: it must neither be
    # served for bank.test nor hide tenant b's valid certificate.
    a, bank = ca.issue_cert("a.test"), ca.issue_cert("bank.test")
    res = Resources(
        ingresses=(_aged("a", 2020, tls=[(("bank.test",), "a")], ns="ta", rule_hosts=("bank.test",)),
                   _aged("b", 2024, tls=[(("bank.test",), "b")], ns="tb", rule_hosts=("bank.test",))),
        secrets=(_secret("a", *_pems(a), ns="ta"), _secret("b", *_pems(bank), ns="tb")),
    )
    store = CertificateStore()
    assert len(store.update(res)) == 1
    assert _served_sans(store, ca, "bank.test") == {"bank.test"}


def test_ingress_with_the_rule_beats_a_tls_only_listing(ca: trustme.CA) -> None:
    # ingress-nginx applies an Ingress's tls section to that Ingress's rule hosts only. ingresslib
    # also serves a tls.hosts entry that has no rule (e.g. an Ingress with only tls); such a
    # listing must not win over the Ingress that routes the host.
    wild, own = ca.issue_cert("*.example.test"), ca.issue_cert("shop.example.test")
    res = Resources(
        ingresses=(_aged("squat", 2020, tls=[(("shop.example.test",), "w")], ns="x"),
                   _aged("shop", 2024, tls=[(("shop.example.test",), "s")], ns="y",
                         rule_hosts=("shop.example.test",))),
        secrets=(_secret("w", *_pems(wild), ns="x"), _secret("s", *_pems(own), ns="y")),
    )
    store = CertificateStore()
    assert store.update(res) == []
    assert _served_sans(store, ca, "shop.example.test") == {"shop.example.test"}


def test_tls_without_hosts_covers_only_rule_hosts_its_certificate_names() -> None:
    # ingress-nginx: no listed host -> "try each TLS host for matching SAN or CN".
    crt, key = generate_certificate(["r.test"])
    res = Resources(ingresses=(_ingress("web", [((), "tls")], rule_hosts=("r.test", "s.test")),),
                    secrets=(_secret("tls", crt, key),))
    store = CertificateStore()
    # Session 22: the rule host no certificate covers is reported (ingress-nginx: at -v 3 only).
    assert [p.field for p in store.update(res)] == ["spec.rules[1].host"]
    assert store.hosts == {"r.test"}
    assert store.context_for("s.test") is store.default_context


def test_listed_entry_beats_an_entry_without_hosts_in_the_same_ingress(ca: trustme.CA) -> None:
    # extractTLSSecretName: "naively return Secret name from TLS spec if host name matches" first.
    wild, own = ca.issue_cert("*.example.test"), ca.issue_cert("a.example.test")
    res = Resources(
        ingresses=(_ingress("web", [((), "w"), (("a.example.test",), "a")],
                            rule_hosts=("a.example.test", "b.example.test")),),
        secrets=(_secret("w", *_pems(wild)), _secret("a", *_pems(own))),
    )
    store = CertificateStore()
    assert store.update(res) == []
    assert _served_sans(store, ca, "a.example.test") == {"a.example.test"}
    assert _served_sans(store, ca, "b.example.test") == {"*.example.test"}


def test_sni_trailing_dot_and_case(store_and_names: tuple[CertificateStore, trustme.CA]) -> None:
    store, _ = store_and_names
    a = store.context_for("a.example.test")
    assert store.context_for("A.EXAMPLE.TEST.") is a
    assert store.context_for("Q.B.Example.Test.") is store.context_for("q.b.example.test")
    assert store.context_for("a.example.test..") is store.default_context


def test_unknown_names_never_get_a_tenant_certificate(
    store_and_names: tuple[CertificateStore, trustme.CA],
) -> None:
    store, _ = store_and_names
    for name in ("b.example.test", "x.y.b.example.test", "example.test", "evil.test",
                 ".b.example.test", "*.b.example.test.evil", "a.example.test.evil", "", "127.0.0.1"):
        assert store.context_for(name) is store.default_context, name
    assert store.context_for(None) is store.default_context


def test_no_sni_gets_the_default_certificate(
    store_and_names: tuple[CertificateStore, trustme.CA],
) -> None:
    store, ca = store_and_names
    # An IP-literal client sends no server_name at all.
    assert _served_sans(store, ca, None) == {"ingress.local"}  # type: ignore[arg-type]


def _child_intermediate_chain(ca: trustme.CA) -> tuple[bytes, bytes]:
    leaf = ca.create_child_ca().issue_cert("chain.test")
    crt, key = _pems(leaf)
    assert len(leaf.cert_chain_pems) == 2
    return leaf.cert_chain_pems[1].bytes() + leaf.cert_chain_pems[0].bytes(), key


def _validity_cert(host: str, before: _dt.datetime, after: _dt.datetime) -> tuple[bytes, bytes]:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(before).not_valid_after(after)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


def test_each_secret_problem_is_reported_and_spares_the_other_hosts(
    ca: trustme.CA, caplog: pytest.LogCaptureFixture,
) -> None:
    good, other = ca.issue_cert("good.test"), ca.issue_cert("mismatch.test")
    gcrt, gkey = _pems(good)
    ocrt, okey = _pems(other)
    chain_crt, chain_key = _child_intermediate_chain(ca)
    cases = {
        "missing": None,
        "mismatch": (gcrt, okey),                     # certificate and key do not match
        "chain": (chain_crt, chain_key),              # intermediate first: leaf/key mismatch
        "notpem": (b"not a certificate", b"not a key"),
        "der": (b"\x30\x82\x01\x00" + b"\x00" * 40, okey),
    }
    secrets = [_secret("good", gcrt, gkey)]
    for name, pair in cases.items():
        if pair is not None:
            secrets.append(_secret(name, *pair))
    secrets.append(Secret(metadata=ObjectMeta(name="nokeys"), type="Opaque",
                          data=freeze_map({"x": "eA=="})))
    secrets.append(Secret(metadata=ObjectMeta(name="badb64"), type="kubernetes.io/tls",
                          data=freeze_map({"tls.crt": "!!!", "tls.key": "!!!"})))
    names = [*cases, "nokeys", "badb64"]
    tls = [(("good.test",), "good")] + [((f"{n}.test",), n) for n in names]
    res = Resources(ingresses=(_ingress("web", tls),), secrets=tuple(secrets))
    store = CertificateStore()
    with caplog.at_level(logging.DEBUG, logger="ingresslib"):
        problems = store.update(res)
    assert sorted(p.field for p in problems) == sorted(
        f"spec.tls[{i}].secretName" for i in range(1, len(names) + 1))
    assert all(not p.warning for p in problems)
    by_field = {p.field: p.message for p in problems}
    assert "not found" in by_field["spec.tls[1].secretName"]
    assert "mismatch" in by_field["spec.tls[2].secretName"]
    assert "start with the leaf" in by_field["spec.tls[3].secretName"]
    assert store.hosts == {"good.test"}
    assert _served_sans(store, ca, "good.test") == {"good.test"}
    for n in names:
        assert store.context_for(f"{n}.test") is store.default_context
    # No private key material in the problems or the log.
    text = "\n".join([*(str(p) + repr(p) for p in problems), caplog.text])
    for key in (gkey, okey, chain_key):
        body = b"".join(key.splitlines()[1:-1]).decode()
        for i in range(0, len(body) - 16, 16):
            assert body[i:i + 16] not in text


def test_opaque_secret_with_tls_keys_is_used(ca: trustme.CA) -> None:
    # ingress-nginx reads tls.crt/tls.key whatever the Secret's type.
    leaf = ca.issue_cert("o.test")
    crt, key = _pems(leaf)
    s = _secret("o", crt, key)
    s = Secret(metadata=s.metadata, type="Opaque", data=s.data)
    store = CertificateStore()
    assert store.update(Resources(ingresses=(_ingress("w", [(("o.test",), "o")]),), secrets=(s,))) == []
    assert _served_sans(store, ca, "o.test") == {"o.test"}


def test_expired_and_future_certificates_are_reported_but_served() -> None:
    # ingress-nginx serves them and warns ("SSL certificate for server %q expired").
    now = _dt.datetime.now(_dt.timezone.utc)
    old = _validity_cert("old.test", now - _dt.timedelta(days=30), now - _dt.timedelta(days=1))
    fut = _validity_cert("fut.test", now + _dt.timedelta(days=1), now + _dt.timedelta(days=30))
    res = Resources(ingresses=(_ingress("w", [(("old.test",), "old"), (("fut.test",), "fut")]),),
                    secrets=(_secret("old", *old), _secret("fut", *fut)))
    store = CertificateStore()
    problems = store.update(res)
    assert [(p.field, p.warning) for p in problems] == [
        ("spec.tls[0].secretName", True), ("spec.tls[1].secretName", True)]
    assert "expired" in problems[0].message and "not valid before" in problems[1].message
    assert store.hosts == {"old.test", "fut.test"}


_ENCRYPTED_CHILD = r"""
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)   # session leader opening a tty: it becomes the controlling tty
from tests.test_tls import _ingress, _secret
from ingresslib._resources import Resources
from ingresslib._tls import CertificateStore
crt, key = open(sys.argv[2], "rb").read(), open(sys.argv[3], "rb").read()
s = CertificateStore()
problems = s.update(Resources(ingresses=(_ingress("w", [(("enc.test",), "t")]),),
                              secrets=(_secret("t", crt, key),)))
print("RESULT", [p.field for p in problems], s.context_for("enc.test") is s.default_context,
      "encrypted" in problems[0].message, flush=True)
"""


def test_encrypted_key_is_reported_without_prompting(ca: trustme.CA, tmp_path: "os.PathLike[str]") -> None:
    # OpenSSL asks for a passphrase on the controlling terminal when none is given: a reload must
    # never block on that (nor crash when there is no terminal). ingress-nginx does not support
    # encrypted keys either.
    import pty

    from cryptography.hazmat.primitives import serialization

    leaf = ca.issue_cert("enc.test")
    k = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), None)
    enc = k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.BestAvailableEncryption(b"secret"))
    crt_path, key_path = os.path.join(tmp_path, "c.pem"), os.path.join(tmp_path, "k.pem")
    with open(crt_path, "wb") as f:
        f.write(leaf.cert_chain_pems[0].bytes())
    with open(key_path, "wb") as f:
        f.write(enc)
    master, slave = pty.openpty()
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.Popen([sys.executable, "-c", _ENCRYPTED_CHILD, os.ttyname(slave), crt_path, key_path],
                            stdin=slave, stdout=slave, stderr=slave, start_new_session=True, env=env)
    os.close(slave)
    out = b""
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        import select

        while select.select([master], [], [], 0.1)[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        os.close(master)
    assert b"pass phrase" not in out, out
    assert b"RESULT ['spec.tls[0].secretName'] True True" in out, out


def test_rotation_keeps_established_connections_and_removal_drops_the_certificate(
    ca: trustme.CA,
) -> None:
    one, two = ca.issue_cert("r.test"), ca.issue_cert("r.test", "two.test")
    store = CertificateStore()
    mk = lambda leaf: Resources(  # noqa: E731
        ingresses=(_ingress("web", [(("r.test",), "tls")]),), secrets=(_secret("tls", *_pems(leaf)),))
    store.update(mk(one))
    client = ssl.create_default_context()
    ca.configure_trust(client)
    cl, sv, (c_in, c_out, s_in, s_out) = _connected(store.server_context(), client, "r.test")
    store.update(mk(two))   # rotate while the first connection is open
    assert _served_sans(store, ca, "r.test") == {"r.test", "two.test"}
    cl.write(b"ping")
    s_in.write(c_out.read())
    assert sv.read(4) == b"ping"
    sv.write(b"pong")
    c_in.write(s_out.read())
    assert cl.read(4) == b"pong"
    assert {v for k, v in cl.getpeercert()["subjectAltName"]} == {"r.test"}  # type: ignore[index]
    store.update(Resources())   # the Ingress is gone
    assert store.hosts == frozenset()
    assert store.context_for("r.test") is store.default_context


def _client_12(cipher: str | None = None, version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_2) -> ssl.SSLContext:
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.check_hostname = False
    c.verify_mode = ssl.CERT_NONE
    if version < ssl.TLSVersion.TLSv1_2:
        c.set_ciphers("ALL:@SECLEVEL=0")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "ssl.TLSVersion.TLSv1_1 is deprecated"
        c.minimum_version = c.maximum_version = version
    if cipher:
        c.set_ciphers(cipher)
    return c


def _try(server: ssl.SSLContext, client: ssl.SSLContext, sni: str | None) -> str | None:
    """The cipher agreed, or None when the handshake fails."""
    try:
        cl, _sv, _bios = _connected(server, client, sni)
    except ssl.SSLError:
        return None
    c = cl.cipher()
    return c[0] if c else None


@pytest.mark.parametrize("sni", [None, "a.example.test", "z.b.example.test"])
def test_protocols_and_ciphers_follow_ingress_nginx_defaults(
    store_and_names: tuple[CertificateStore, trustme.CA], sni: str | None,
) -> None:
    # ingress-nginx: ssl-protocols "TLSv1.2 TLSv1.3"; ssl-ciphers (TLS 1.2) ECDHE/DHE with
    # AES-GCM or CHACHA20-POLY1305 only: no CBC suite.
    server = store_and_names[0].server_context()
    assert _try(server, _client_12(version=ssl.TLSVersion.TLSv1_1), sni) is None
    assert _try(server, _client_12("ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256"), sni) is None
    assert _try(server, _client_12("ECDHE-ECDSA-AES256-SHA384:ECDHE-RSA-AES256-SHA384"), sni) is None
    assert _try(server, _client_12(), sni) in {
        "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305"}
    c13 = ssl.create_default_context()
    c13.check_hostname = False
    c13.verify_mode = ssl.CERT_NONE
    assert _try(server, c13, sni) is not None


def test_no_compression_no_renegotiation(store_and_names: tuple[CertificateStore, trustme.CA]) -> None:
    # nginx refuses client-initiated renegotiation. OpenSSL 3 servers refuse it by default too
    # (checked with `openssl s_client -tls1_2` + `R`); the option makes it explicit for Python
    # builds on OpenSSL 1.1.1, which allow it.
    store = store_and_names[0]
    for ctx in (store.server_context(), store.context_for("a.example.test"),
                store.context_for("z.b.example.test")):
        assert ctx.options & ssl.OP_NO_COMPRESSION
        assert ctx.options & ssl.OP_NO_RENEGOTIATION


def test_problem_str() -> None:
    assert str(TLSProblem("Ingress default/w", "spec.tls[0].secretName", "x")) == (
        "Ingress default/w: spec.tls[0].secretName: x")


def test_private_key_is_not_written_to_a_file_system(monkeypatch: pytest.MonkeyPatch) -> None:
    # Linux: the PEM goes to an anonymous memfd; a temporary file is only the fallback.
    import tempfile

    if not (hasattr(os, "memfd_create") and os.path.exists("/proc/self/fd")):
        pytest.skip("no memfd_create: the 0600 temporary-file fallback is used")

    def no_file(*a: object, **k: object) -> None:
        raise AssertionError("private key written to a temporary file")

    monkeypatch.setattr(tempfile, "mkstemp", no_file)
    crt, key = generate_certificate(["m.test"])
    store = CertificateStore((crt, key))
    assert store.update(Resources(ingresses=(_ingress("w", [(("m.test",), "t")]),),
                                  secrets=(_secret("t", crt, key),))) == []
    assert store.context_for("m.test") is not store.default_context


def test_has_tls_follows_the_configuration_not_the_certificate(ca: trustme.CA) -> None:
    # ingress-nginx gives every rule host of an Ingress with a `tls` section a certificate (its
    # own, else the default one) and redirects it to HTTPS: a broken or non-covering Secret
    # changes the certificate, not whether the host is a TLS host.
    other = ca.issue_cert("other.test")
    good = ca.issue_cert("*.w.test")
    res = Resources(
        ingresses=(
            _ingress("broken", [(("x.test",), "t")], rule_hosts=("x.test", "y.test")),
            _ingress("missing", [(("m.test",), "nope")]),
            _ingress("wild", [(("*.w.test",), "g")], rule_hosts=("*.w.test",)),
            _ingress("plain", [], rule_hosts=("plain.test",)),
        ),
        secrets=(_secret("t", *_pems(other)), _secret("g", *_pems(good))),
    )
    store = CertificateStore()
    store.update(res)
    assert store.context_for("x.test") is store.default_context
    assert store.has_tls("x.test") and store.has_tls("Y.test.")  # a rule host of that Ingress
    assert store.has_tls("m.test") and store.context_for("m.test") is store.default_context
    assert store.has_tls("a.w.test") and not store.has_tls("a.b.w.test")
    assert not store.has_tls("plain.test") and not store.has_tls("other.test")
