"""``CertificateStore(default_secret=...)`` as a library user meets it (N19): its problems and
errors speak of the argument, not of ``serve``'s ``--default-ssl-certificate`` flag, which only
``serve`` names (``default_source``; its own wording is pinned in ``test_default_cert_s19.py``)."""

from __future__ import annotations

import base64
import logging
from typing import Any

import pytest
import trustme

from ingresslib._models import ObjectMeta, Secret, freeze_map
from ingresslib._resources import Resources
from ingresslib.proxy import CertificateStore

REF = "default/dflt"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _secret(crt: bytes, key: bytes) -> Secret:
    return Secret(metadata=ObjectMeta(name="dflt", namespace="default"),
                  type="kubernetes.io/tls",
                  data=freeze_map({"tls.crt": base64.b64encode(crt).decode(),
                                   "tls.key": base64.b64encode(key).decode()}))


def _good(ca: trustme.CA) -> Secret:
    leaf = ca.issue_cert("dflt.example")
    return _secret(leaf.cert_chain_pems[0].bytes(), leaf.private_key_pem.bytes())


_BROKEN = _secret(b"not a certificate", b"not a key")


def test_a_missing_default_secret_is_reported_without_the_cli_flag(
        caplog: pytest.LogCaptureFixture) -> None:
    store = CertificateStore(default_secret=REF)
    with caplog.at_level(logging.WARNING, logger="ingresslib.tls"):
        problems = store.update(Resources())
    assert [str(p) for p in problems] == [
        "default certificate: Secret default/dflt: Secret not found; serving the generated "
        "default certificate"]
    assert [r.getMessage() for r in caplog.records] == [str(problems[0])]


@pytest.mark.parametrize("first", [False, True], ids=["never-loaded", "after-a-good-one"])
def test_an_unusable_default_secret_is_reported_without_the_cli_flag(
        ca: trustme.CA, first: bool) -> None:
    store = CertificateStore(default_secret=REF)
    if first:
        assert store.update(Resources(secrets=(_good(ca),))) == []
    problems = store.update(Resources(secrets=(_BROKEN,)))
    assert problems and all(p.field == "Secret default/dflt" for p in problems), problems
    assert not any("--default-ssl-certificate" in str(p) for p in problems), problems
    assert ("still serving its last good certificate" if first
            else "serving the generated default certificate") in problems[0].message


def test_default_source_names_where_the_reference_came_from() -> None:
    """What ``serve`` passes: its problems keep naming its flag, as before."""
    store = CertificateStore(default_secret=REF, default_source="--default-ssl-certificate")
    assert [str(p) for p in store.update(Resources())] == [
        "default certificate: --default-ssl-certificate default/dflt: Secret not found; "
        "serving the generated default certificate"]


@pytest.mark.parametrize("value, says", [
    ("bad", "default_secret='bad': expected NAMESPACE/NAME"),
    ("a/b/c", "default_secret='a/b/c': expected NAMESPACE/NAME"),
    ("NS/name", "default_secret='NS/name': the namespace 'NS'"),
    ("ns/Bad_Name", "default_secret='ns/Bad_Name': the Secret name 'Bad_Name'"),
])
def test_a_malformed_default_secret_names_the_argument(value: str, says: str) -> None:
    with pytest.raises(ValueError) as e:
        CertificateStore(default_secret=value)
    assert str(e.value).startswith(says), str(e.value)


@pytest.mark.parametrize("value", [5, b"default/dflt", ("default", "dflt")])
def test_a_non_string_default_secret_is_a_type_error_naming_the_argument(value: Any) -> None:
    with pytest.raises(TypeError) as e:
        CertificateStore(default_secret=value)
    assert str(e.value).startswith("default_secret: expected a str"), str(e.value)
    assert type(value).__name__ in str(e.value)



def test_a_missing_default_secret_names_the_default_cert_given_as_what_serves() -> None:
    """With ``default_cert=`` it is not "the generated default certificate" that serves."""
    from ingresslib._tls import generate_certificate

    crt, key = generate_certificate(["given.test"])
    store = CertificateStore((crt, key), default_secret="default/dflt")
    (problem,) = store.update(Resources())
    assert problem.message == "Secret not found; serving the default_cert given"
    assert store.default_context is store._fallback[0]  # type: ignore[index]
