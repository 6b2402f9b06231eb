"""Session 25, TLS review: how a Secret's ``tls.crt`` and ``tls.key`` pair up.

ingress-nginx (internal/net/ssl/ssl.go ``CreateSSLCert``) refuses a Secret whose ``tls.crt``
does not start with a ``CERTIFICATE`` PEM block ("no certificate PEM data found, make sure
certificate content starts with 'BEGIN CERTIFICATE'") and pairs the certificate with the key
of ``tls.key`` only (``tls.X509KeyPair(cert, key)``). ingresslib wrote both into one PEM file
for OpenSSL, which took the first private key of that file: a key bundled in ``tls.crt`` was
served whatever ``tls.key`` held (another certificate's key, no key at all), and a ``tls.crt``
starting with a key (``cat key.pem cert.pem``) was served too. Both failed before this session's
change (marked); the guards pin the bundles ingress-nginx does accept."""

from __future__ import annotations

import asyncio
import base64
import ssl

import pytest
import trustme
from cryptography import x509

from ingresslib import Router
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
from ingresslib._tls import CertificateStore, certificate_problems
from ingresslib.proxy._server import ProxyServer


def _secret(crt: bytes, key: bytes) -> Secret:
    return Secret(
        metadata=ObjectMeta(name="s", namespace="default"),
        type="kubernetes.io/tls",
        data=freeze_map({"tls.crt": base64.b64encode(crt).decode(),
                         "tls.key": base64.b64encode(key).decode()}),
    )


def _res(crt: bytes, key: bytes) -> Resources:
    ing = Ingress(
        metadata=ObjectMeta(name="web", namespace="default"),
        spec=IngressSpec(rules=(IngressRule(host="a.test"),),
                         tls=(IngressTLS(hosts=("a.test",), secret_name="s"),)),
    )
    return Resources(ingresses=(ing,), secrets=(_secret(crt, key),))


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def pems(ca: trustme.CA) -> tuple[bytes, bytes, bytes]:
    """(a.test's certificate, its key, another certificate's key)."""
    leaf = ca.issue_cert("a.test")
    other = ca.issue_cert("b.test")
    return (leaf.cert_chain_pems[0].bytes(), leaf.private_key_pem.bytes(),
            other.private_key_pem.bytes())


def _refused(crt: bytes, key: bytes) -> str:
    """The one problem ``check`` reports for the Secret; the store serves the default
    certificate for a.test."""
    res = _res(crt, key)
    problems = certificate_problems(res)
    store = CertificateStore()
    assert [str(p) for p in store.update(res)] == [str(p) for p in problems]
    assert store.context_for("a.test") is store.default_context
    assert len(problems) == 1 and not problems[0].warning, problems
    return problems[0].message


def _served(crt: bytes, key: bytes) -> None:
    res = _res(crt, key)
    assert certificate_problems(res) == []
    store = CertificateStore()
    assert store.update(res) == []
    assert store.context_for("a.test") is not store.default_context


# --- 1. the key comes from tls.key, never from a bundle in tls.crt (failed before) ------------


def test_a_key_bundled_in_tls_crt_does_not_stand_for_a_mismatched_tls_key(
        pems: tuple[bytes, bytes, bytes]) -> None:
    crt, key, other_key = pems
    why = _refused(crt + key, other_key)
    assert "tls.key does not match the certificate in tls.crt" in why, why


def test_a_key_bundled_in_tls_crt_does_not_stand_for_a_tls_key_without_a_key(
        pems: tuple[bytes, bytes, bytes]) -> None:
    crt, key, _other = pems
    why = _refused(crt + key, b"placeholder\n")
    assert "tls.key holds no PEM private key" in why, why


# --- 2. tls.crt must start with the certificate (failed before) -------------------------------


@pytest.mark.parametrize("first", ["key", "ec-parameters"])
def test_tls_crt_starting_with_another_block_is_refused(
        pems: tuple[bytes, bytes, bytes], first: str) -> None:
    crt, key, _other = pems
    lead = key if first == "key" else (b"-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n"
                                       b"-----END EC PARAMETERS-----\n")
    why = _refused(lead + crt, key)
    assert "tls.crt starts with a PEM block of type" in why, why
    assert "BEGIN CERTIFICATE" in why, why
    # Never the PEM itself in a message.
    assert "MII" not in why and "BggqhkjOPQMBBw" not in why


def test_tls_crt_with_an_x509_certificate_block_is_refused(
        pems: tuple[bytes, bytes, bytes]) -> None:
    # Go's pem.Decode type must be "CERTIFICATE" exactly; OpenSSL also reads
    # "X509 CERTIFICATE".
    crt, key, _other = pems
    renamed = crt.replace(b"BEGIN CERTIFICATE", b"BEGIN X509 CERTIFICATE").replace(
        b"END CERTIFICATE", b"END X509 CERTIFICATE")
    why = _refused(renamed, key)
    assert "'X509 CERTIFICATE'" in why, why


# --- guards (passed before too): the bundles ingress-nginx accepts -----------------------------


def test_guard_certificate_then_its_key_in_tls_crt_is_served(
        pems: tuple[bytes, bytes, bytes]) -> None:
    # X509KeyPair skips the key block in the certificate input; the key of tls.key matches.
    crt, key, _other = pems
    _served(crt + key, key)


def test_guard_text_before_the_certificate_and_a_full_chain_in_tls_key_are_served(
        ca: trustme.CA, pems: tuple[bytes, bytes, bytes]) -> None:
    crt, key, _other = pems
    # "openssl x509 -text" / pkcs12 "Bag Attributes" before the block: pem.Decode skips it.
    _served(b"Bag Attributes\n    friendlyName: a\nsubject=/O=x\n" + crt, key)
    # A "key + fullchain" file given as tls.key: its key is the one, its certificates join.
    _served(crt, key + crt + ca.cert_pem.bytes())


# --- 3. over a real handshake: the default certificate, not the bundled key's ------------------


@pytest.mark.network
@pytest.mark.asyncio
async def test_listener_serves_the_default_certificate_for_a_mismatched_tls_key(
        pems: tuple[bytes, bytes, bytes]) -> None:
    crt, key, other_key = pems
    res = _res(crt + key, other_key)
    store = CertificateStore()
    store.update(res)
    server = ProxyServer(Router(res), cert_store=store)
    await server.start(None, ("127.0.0.1", 0))
    (_, _, port), = server.addresses
    try:
        client = ssl.create_default_context()
        client.check_hostname = False
        client.verify_mode = ssl.CERT_NONE
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            "127.0.0.1", port, ssl=client, server_hostname="a.test"), 2)
        try:
            der = writer.get_extra_info("ssl_object").getpeercert(True)
        finally:
            writer.close()
        served = x509.load_der_x509_certificate(der)
        assert served != x509.load_pem_x509_certificate(crt)
        assert "Fake Certificate" in served.subject.rfc4514_string()
    finally:
        await server.shutdown(1)


def test_the_refusal_names_the_block_type_without_control_characters(
        pems: tuple[bytes, bytes, bytes]) -> None:
    # The type is the Secret writer's text: shown escaped (it reaches logs and terminals).
    crt, key, _other = pems
    lead = b"-----BEGIN A\x1b[31m B-----\nQUFB\n-----END A\x1b[31m B-----\n"
    why = _refused(lead + crt, key)
    assert "\x1b" not in why and "'A\\x1b[31m B'" in why, why
