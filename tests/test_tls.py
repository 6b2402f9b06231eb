"""SNI certificate selection: in memory (MemoryBIO handshakes) and over a real 127.0.0.1 socket."""

from __future__ import annotations

import asyncio
import base64
import ssl

import pytest
import trustme

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
from ingresslib._tls import DEFAULT_CERT_NAME, CertificateStore, generate_certificate


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
    client = ssl.create_default_context()
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    cl = client.wrap_bio(c_in, c_out, server_hostname="nobody.test")
    sv = store.server_context().wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for side, out, inp in ((cl, c_out, s_in), (sv, s_out, c_in)):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
            inp.write(out.read())
    der = cl.getpeercert(binary_form=True)
    assert der is not None
    from cryptography import x509

    subject = x509.load_der_x509_certificate(der).subject.rfc4514_string()
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
