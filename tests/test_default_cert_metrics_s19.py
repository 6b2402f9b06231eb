"""The default certificate in the certificate-expiry metric and warnings (K19), as ingress-nginx:
its default server (``_``) has the default certificate (``--default-ssl-certificate``'s Secret,
else the generated one) as its ``SSLCert``, and ``SetSSLExpireTime`` exports every server's, so
``nginx_ingress_controller_ssl_expire_time_seconds{host="_"}``. The default Secret's certificate
gets the date warnings the Ingresses' certificates get (expired, not yet valid, within 10 days),
logged once while they last.

The store on its own, then one real ``serve`` process on 127.0.0.1 (free ports)."""

from __future__ import annotations

import datetime
import logging
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import trustme

from ingresslib._metrics import Metrics
from ingresslib._resources import Resources
from ingresslib._tls import CertificateStore, generate_certificate

from _default_cert_helpers import default_secret as _secret
from _default_cert_helpers import secret_yaml
from _process_helpers import kill_after, stderr_until_exit

REF = "ingresslib/default-cert"
UTC = datetime.timezone.utc
P = "nginx_ingress_controller"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _leaf(ca: trustme.CA, days: float, name: str = "default.example") -> trustme.LeafCert:
    """A leaf valid from an hour ago until ``days`` from now (negative: expired)."""
    now = datetime.datetime.now(UTC)
    return ca.issue_cert(name, not_before=now - datetime.timedelta(days=max(0, -days) + 1),
                         not_after=now + datetime.timedelta(days=days))


def _not_after(leaf: trustme.LeafCert) -> datetime.datetime:
    from cryptography import x509

    return x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes()).not_valid_after_utc


BROKEN = _secret(None, crt=b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")


# -- the store's list ---------------------------------------------------------------------------


def test_the_default_secret_is_listed_as_host_underscore(ca: trustme.CA) -> None:
    """Failed before: ``certificates()`` had no default row (no ``default`` keyword)."""
    leaf = _leaf(ca, 200)
    store = CertificateStore(default_secret=REF)
    assert store.update(Resources(secrets=(_secret(leaf),))) == []
    assert store.certificates(default=True) == [("_", REF, _not_after(leaf))]
    # Without the keyword, the Ingresses' hosts only (the list ``certificates_of`` gives).
    assert store.certificates() == []


def test_the_generated_default_is_listed_without_a_secret() -> None:
    """As ingress-nginx's fake certificate (the default server's ``SSLCert`` without the flag,
    or while its Secret is missing): ``host="_"``, no Secret labels."""
    store = CertificateStore()
    store.update(Resources())
    [(host, secret, not_after)] = store.certificates(default=True)
    assert (host, secret) == ("_", "")
    days = (not_after - datetime.datetime.now(UTC)) / datetime.timedelta(days=1)
    assert 364 < days <= 365
    # The constructor's own default certificate: its date.
    crt, key = generate_certificate(["mine.test"], days=30)
    mine = CertificateStore(default_cert=(crt, key), default_secret=REF)
    mine.update(Resources())  # the Secret is missing: the constructor's default serves
    [(host, secret, not_after)] = mine.certificates(default=True)
    days = (not_after - datetime.datetime.now(UTC)) / datetime.timedelta(days=1)
    assert (host, secret) == ("_", "") and 29 < days <= 30


def test_the_row_follows_the_certificate_served(ca: trustme.CA) -> None:
    """Replaced on each update: a new certificate's date; a broken update keeps the last good
    one (still served, so still expiring); deleted, the generated one's."""
    one, two = _leaf(ca, 100), _leaf(ca, 300)
    store = CertificateStore(default_secret=REF)
    store.update(Resources(secrets=(_secret(one),)))
    assert store.certificates(default=True) == [("_", REF, _not_after(one))]
    store.update(Resources(secrets=(_secret(two),)))
    assert store.certificates(default=True) == [("_", REF, _not_after(two))]
    store.update(Resources(secrets=(BROKEN,)))
    assert store.certificates(default=True) == [("_", REF, _not_after(two))]
    store.update(Resources())
    [(host, secret, _when)] = store.certificates(default=True)
    assert (host, secret) == ("_", "")


def test_the_gauge_replaces_the_default_series_as_a_whole(ca: trustme.CA) -> None:
    leaf = _leaf(ca, 100)
    store = CertificateStore(default_secret=REF)
    metrics = Metrics()
    store.update(Resources(secrets=(_secret(leaf),)))
    metrics.set_certificates(store.certificates(default=True))
    text = metrics.render().decode()
    assert f'{P}_ssl_expire_time_seconds{{host="_",namespace="ingresslib",' \
           f'secret_name="default-cert"}}' in text
    store.update(Resources())
    metrics.set_certificates(store.certificates(default=True))
    series = re.findall(rf"^{P}_ssl_expire_time_seconds\{{(.*)\}}", metrics.render().decode(),
                        re.M)
    assert series == ['host="_",namespace="",secret_name=""']


# -- the warnings -------------------------------------------------------------------------------


@pytest.mark.parametrize("days, says", [
    (5, "in less than 10 days"),
    (-3, "expired on"),
])
def test_the_default_secret_s_dates_are_warned_at_every_update_and_logged_once(
        ca: trustme.CA, days: float, says: str, caplog: pytest.LogCaptureFixture) -> None:
    """Failed before: no warning at all (an Ingress's certificate got one)."""
    res = Resources(secrets=(_secret(_leaf(ca, days)),))
    store = CertificateStore(default_secret=REF)
    with caplog.at_level(logging.WARNING, logger="ingresslib.tls"):
        for _ in range(3):
            problems = store.update(res)
            assert [(p.object, p.warning) for p in problems] == [("default certificate", True)]
            assert says in str(problems[0]) and REF in str(problems[0])
    logged = [r.getMessage() for r in caplog.records if says in r.getMessage()]
    assert logged == [str(problems[0])]


def test_a_broken_update_still_warns_about_the_last_good_certificate_s_date(
        ca: trustme.CA) -> None:
    store = CertificateStore(default_secret=REF)
    store.update(Resources(secrets=(_secret(_leaf(ca, 5)),)))
    problems = store.update(Resources(secrets=(BROKEN,)))
    assert [p.warning for p in problems] == [True, True]
    assert "last good" in str(problems[0]) and "in less than 10 days" in str(problems[1])


def test_a_valid_default_secret_and_the_generated_one_give_no_warning(ca: trustme.CA) -> None:
    store = CertificateStore(default_secret=REF)
    assert store.update(Resources(secrets=(_secret(_leaf(ca, 200)),))) == []
    assert CertificateStore().update(Resources()) == []


# -- serve ---------------------------------------------------------------------------------------


_INGRESS = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  namespace: default
spec:
  rules:
  - host: app.test
    http:
      paths:
      - path: /
        pathType: Prefix
        backend: {service: {name: web, port: {number: 80}}}
"""


def _expiry_series(port: int) -> list[str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return re.findall(rf"^{P}_ssl_expire_time_seconds\{{(.*)\}} (\S+)$", text, re.M)


def test_serve_exports_the_default_certificate_and_warns_once(
        ca: trustme.CA, tmp_path: Path) -> None:
    """Failed before: no ``host="_"`` series, no expiry warning for the default Secret."""
    leaf = _leaf(ca, 5)
    (tmp_path / "ing.yaml").write_text(_INGRESS)
    secret = tmp_path / "default.yaml"
    secret.write_text(secret_yaml("default-cert", leaf))
    p = subprocess.Popen(
        [sys.executable, "-m", "ingresslib", "serve", "-f", str(tmp_path),
         "--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0",
         "--metrics-listen", "127.0.0.1:0", "--access-log", "off", "--reload-interval", "0.1",
         "--default-ssl-certificate", REF],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    assert p.stderr is not None
    mport = 0
    with kill_after(p, 60):
        while not mport:
            line = p.stderr.readline()
            if not line:
                p.wait()
                raise AssertionError("serve did not start:\n" + "".join(lines))
            lines.append(line)
            if line.startswith("metrics on http://"):
                mport = int(line.rsplit(":", 1)[1].split("/", 1)[0])
        try:
            named = 'host="_",namespace="ingresslib",secret_name="default-cert"'
            got = _expiry_series(mport)
            assert [g[0] for g in got] == [named]
            assert float(got[0][1]) == _not_after(leaf).timestamp()
            # Deleted: the generated default's series replaces it (one series, no Secret).
            secret.unlink()
            for _ in range(100):
                got = _expiry_series(mport)
                if got and got[0][0] != named:
                    break
                time.sleep(0.1)
            assert [g[0] for g in got] == ['host="_",namespace="",secret_name=""']
        finally:
            p.terminate()
            err = "".join(lines) + stderr_until_exit(p, 20)
    assert "Traceback" not in err, err
    soon = [ln for ln in err.splitlines() if "in less than 10 days" in ln]
    assert len(soon) == 1 and REF in soon[0] and "WARNING" in soon[0], err
