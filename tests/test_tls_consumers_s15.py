"""The certificate store's decision, as its other readers see it (session 15, X15).

``CertificateStore.update`` decides which certificate each host gets and reports what it cannot
serve (a missing or broken Secret, a certificate that does not cover a host, one expiring, a
``tls.hosts`` listing refused because another namespace routes the host, a
``from-to-www-redirect`` twin its host's certificate does not cover...). Two readers did not
take that decision:

- ``ingresslib check -f FILES`` built no store and printed none of those problems; they only
  appeared in ``serve``'s log. Now it prints each as a warning (exit 0: ingress-nginx serves its
  default certificate then; they are no validation errors), from the store's own decision
  (``_tls.certificate_problems``) without generating a default certificate.
- The certificate-expiry metric (``_metrics.certificates_of``) read every ``tls`` entry's hosts
  again: a listing the store refuses (another namespace's) showed up as
  ``host="shop.example.test"`` with the squatter's Secret, and so did certificates that do not
  cover their host. Now it lists what the store serves (``_tls.served_certificates``, the same
  decision as ``CertificateStore.certificates``).

Tests marked "failed before" did on the code before this change.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from ingresslib._cli import main
from ingresslib._load import parse_manifests
from ingresslib._metrics import Metrics, certificates_of
from ingresslib._models import Ingress
from ingresslib._resources import Resources
from ingresslib._table import RouteTable
from ingresslib._tls import CertificateStore, generate_certificate
from tests.test_tls_tenant_s15 import HOST, _backend, _routing, _secret, _squat, _tls_only

_WWW = "{nginx.ingress.kubernetes.io/from-to-www-redirect: 'true'}"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _pem_secret(ns: str, name: str, crt: bytes, key: bytes) -> str:
    ind = "\n    "
    return f"""
---
apiVersion: v1
kind: Secret
metadata: {{name: {name}, namespace: {ns}}}
type: kubernetes.io/tls
stringData:
  tls.crt: |{ind}{ind.join(crt.decode().splitlines())}
  tls.key: |{ind}{ind.join(key.decode().splitlines())}
"""


def _tls(secret: str, *hosts: str) -> str:
    listed = ", ".join(f"'{h}'" for h in hosts)
    return f"\n  tls:\n  - hosts: [{listed}]\n    secretName: {secret}"


def _troubles(ca: trustme.CA) -> str:
    """One manifest with a problem of each kind the store reports, and hosts it does serve."""
    other = ca.issue_cert("other.example.test")
    soon = generate_certificate(["soon.example.test"], days=3)
    return (
        _backend("shop", 9)
        # Served: the Secret covers the host and, from-to-www-redirect, its twin.
        + _routing("shop", "good", "good.example.test", annotations=_WWW,
                   tls=_tls("good", "good.example.test"))
        + _secret("shop", "good", ca, "good.example.test", "www.good.example.test")
        # Its twin not covered (warning=True).
        + _routing("shop", "bare", "bare.example.test", annotations=_WWW,
                   tls=_tls("bare", "bare.example.test"))
        + _secret("shop", "bare", ca, "bare.example.test")
        # A Secret that does not exist.
        + _routing("shop", "gone", "gone.example.test", tls=_tls("gone", "gone.example.test"))
        # A certificate for another name.
        + _routing("shop", "wrong", "wrong.example.test", tls=_tls("wrong", "wrong.example.test"))
        + _pem_secret("shop", "wrong", other.cert_chain_pems[0].bytes(),
                      other.private_key_pem.bytes())
        # A key that is not the certificate's.
        + _routing("shop", "mixed", "mixed.example.test", tls=_tls("mixed", "mixed.example.test"))
        + _pem_secret("shop", "mixed", ca.issue_cert("mixed.example.test").cert_chain_pems[0]
                      .bytes(), other.private_key_pem.bytes())
        # Expiring in 3 days (warning=True, still served).
        + _routing("shop", "soon", "soon.example.test", tls=_tls("soon", "soon.example.test"))
        + _pem_secret("shop", "soon", *soon)
        # Another namespace listing shop's plain-HTTP host (warning=True, refused).
        + _routing("shop", "plain", HOST)
        + _tls_only("evil", "squat", [HOST], "s") + _backend("evil", 9)
        + _secret("evil", "s", ca, HOST)
    )


def _served(res: Resources) -> list[Ingress]:
    return list(RouteTable.build(res).served)


def _store_problems(res: Resources) -> list[str]:
    """What ``serve --tls-listen`` logs: a store updated with the served Ingresses."""
    store = CertificateStore()
    return [str(p) for p in store.update(res, _served(res))]


@pytest.fixture
def no_default_certificate(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``check`` must not generate the default certificate (nor build a store, whose
    constructor does)."""
    def refuse(*_a: object, **_k: object) -> tuple[bytes, bytes]:
        raise AssertionError("check generated a certificate")

    monkeypatch.setattr("ingresslib._tls.generate_certificate", refuse)
    yield


def _check(path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str, str]:
    code = main(["check", "-f", str(path), *extra])
    out, err = capsys.readouterr()
    return code, out, err


# --- ingresslib check ------------------------------------------------------------------------


def test_check_prints_every_problem_the_store_reports(
        ca: trustme.CA, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Failed before: check printed none of them ("ok: ... 0 warning(s)")."""
    text = _troubles(ca)
    expected = _store_problems(parse_manifests(text))
    # Each kind is there: missing, not covering, unusable, expiring, refused, twin uncovered.
    for needle in ("not found", "does not cover 'wrong.example.test'", "unusable certificate",
                   "in less than 10 days", "ignored: 'shop.example.test' is routed by namespace "
                   "shop", "does not cover its twin 'www.bare.example.test'"):
        assert sum(needle in p for p in expected) == 1, (needle, expected)
    path = tmp_path / "all.yaml"
    path.write_text(text)
    code, out, err = _check(path, capsys)
    assert code == 0   # warnings: CONTRACT's "exit 0, or 2 with every error"
    # check's own lines: a logging handler an earlier test left on stderr may add the
    # store's log records to what capsys sees.
    lines = [line for line in err.splitlines() if line.startswith("warning: ")]
    for p in expected:
        assert f"warning: {p}" in lines
    assert out.strip().endswith(f"{len(lines)} warning(s)")
    assert len(lines) == len(expected)   # nothing else is wrong with these manifests


def test_check_json_lists_them_as_warnings(
        ca: trustme.CA, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        no_default_certificate: None) -> None:
    """Failed before: no TLS problem among the warnings. No default certificate is made."""
    path = tmp_path / "squat.yaml"
    path.write_text(_squat(ca))
    code, out, _err = _check(path, capsys, "-o", "json")
    assert code == 0
    doc = json.loads(out)
    assert doc["ok"] is True
    (refused,) = doc["warnings"]
    assert refused.startswith("Ingress evil/squat: spec.tls[0].hosts[0]: ignored: "
                              f"'{HOST}' is routed by namespace shop")


def test_check_reports_only_served_ingresses(
        ca: trustme.CA, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        no_default_certificate: None) -> None:
    """As ``serve`` updates its store with the Ingresses it serves: another class's Ingress
    naming a missing Secret is not reported. Failed before for the served one (nothing was)."""
    path = tmp_path / "classes.yaml"
    served = (_routing("shop", "mine", "a.example.test", tls=_tls("gone", "a.example.test"))
              .replace("spec:", "spec:\n  ingressClassName: mine", 1))
    other = (_routing("shop", "theirs", "b.example.test", tls=_tls("lost", "b.example.test"))
             .replace("spec:", "spec:\n  ingressClassName: other", 1))
    path.write_text(_backend("shop", 9) + served + other + """
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: mine}
spec: {controller: k8s.io/ingress-nginx}
""")
    code, _out, err = _check(path, capsys, "--ingress-class", "mine")
    assert code == 0
    assert "Secret shop/lost" not in err
    assert "warning: Ingress shop/mine: spec.tls[0].secretName: Secret shop/gone not found" \
        in err.splitlines()


def test_check_without_tls_prints_no_tls_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], no_default_certificate: None) -> None:
    path = tmp_path / "plain.yaml"
    path.write_text(_backend("shop", 9) + _routing("shop", "plain", HOST))
    code, out, err = _check(path, capsys)
    assert (code, err) == (0, "")
    assert out.strip().endswith("0 warning(s)")


# --- the certificate-expiry metric -----------------------------------------------------------


def _expiry_hosts(res: Resources) -> dict[str, str]:
    return {host: secret for host, secret, _when in certificates_of(res, _served(res))}


def test_expiry_metric_does_not_list_a_refused_listing(ca: trustme.CA) -> None:
    """Failed before: ``host="shop.example.test"`` with ``evil/s``, a certificate the store
    never serves for it (shop routes the host over plain HTTP)."""
    res = parse_manifests(_squat(ca))
    assert _expiry_hosts(res) == {}
    metrics = Metrics()
    metrics.set_certificates(certificates_of(res, _served(res)))
    assert b"ssl_expire_time_seconds{" not in metrics.render()


def test_expiry_metric_lists_what_the_store_serves(ca: trustme.CA) -> None:
    """Failed before: the Secrets that do not cover their host (``shop/wrong``), whose key is
    not the certificate's (``shop/mixed``) or listed by another namespace (``evil/s``) were
    listed; the from-to-www twin the store serves was not."""
    res = parse_manifests(_troubles(ca))
    assert _expiry_hosts(res) == {
        "good.example.test": "shop/good", "www.good.example.test": "shop/good",
        "bare.example.test": "shop/bare", "soon.example.test": "shop/soon",
    }


def test_expiry_metric_is_the_store_s_own_list(ca: trustme.CA) -> None:
    """``certificates_of`` (no store: ``serve`` without ``--tls-listen``) and a store updated
    with the same Ingresses list the same hosts, Secrets and dates."""
    wildcard = (_routing("shop", "w", "*.example.test", tls=_tls("w", "*.example.test"))
                + _secret("shop", "w", ca, "*.example.test") + _backend("shop", 9))
    lists = []
    for text in (_troubles(ca), _squat(ca), wildcard):
        res = parse_manifests(text)
        store = CertificateStore()
        store.update(res, _served(res))
        assert certificates_of(res, _served(res)) == store.certificates()
        lists.append(store.certificates())
    assert [[row[:2] for row in got] for got in lists[1:]] == [[], [("*.example.test", "shop/w")]]


def test_a_broken_update_keeps_its_series_in_the_store(ca: trustme.CA) -> None:
    """A Secret that loaded and is then broken keeps serving its last good certificate: the
    store's own list (``CertificateStore.certificates``) keeps its series, since that
    certificate can still expire while served."""
    good = _routing("shop", "web", "web.example.test", tls=_tls("s", "web.example.test"))
    res = parse_manifests(good + _secret("shop", "s", ca, "web.example.test")
                          + _backend("shop", 9))
    store = CertificateStore()
    store.update(res, _served(res))
    before = store.certificates()
    broken = parse_manifests(good + _pem_secret("shop", "s", b"junk", b"junk")
                             + _backend("shop", 9))
    problems = store.update(broken, _served(broken))
    assert [p.warning for p in problems] == [True]
    assert store.certificates() == before != []
