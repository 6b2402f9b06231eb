"""``serve --default-ssl-certificate NAMESPACE/NAME`` (ingress-nginx's flag): the Secret's
certificate for no SNI, unknown names and hosts without a usable Secret; missing or unusable,
the generated default with a warning; followed when the file changes; bad values exit 2.

A real ``serve`` process on 127.0.0.1 (free ports), real TLS clients."""

from __future__ import annotations

import base64
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.x509.oid import NameOID

from ingresslib._cli import main
from ingresslib._resources import Resources
from ingresslib._tls import DEFAULT_CERT_NAME, CertificateStore

from _default_cert_helpers import default_secret as _secret
from _default_cert_helpers import secret_yaml as _secret_yaml
from _process_helpers import kill_after, stderr_until_exit

REF = "ingresslib/default-cert"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


_INGRESS = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  namespace: default
spec:
  tls:
  - hosts: [app.test]
    secretName: app-tls
  - hosts: [broken.test]
    secretName: no-such-secret
  rules:
  - host: app.test
    http:
      paths:
      - path: /
        pathType: Prefix
        backend: {service: {name: web, port: {number: 80}}}
  - host: broken.test
    http:
      paths:
      - path: /
        pathType: Prefix
        backend: {service: {name: web, port: {number: 80}}}
"""


def _names(port: int, sni: str | None) -> set[str]:
    """The DNS names (else the CN) of the certificate 127.0.0.1:``port`` presents to a client
    sending ``sni`` (None: no SNI extension)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=sni) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = set(san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = set()
    cns = {str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)}
    return names | {f"CN={cn}" for cn in cns}


def _serve(folder: Path, *extra: str) -> tuple[subprocess.Popen[str], int, list[str]]:
    """``serve -f folder --tls-listen 127.0.0.1:0 ...``; its HTTPS port and the stderr lines
    read up to the listening line."""
    p = subprocess.Popen(
        [sys.executable, "-m", "ingresslib", "serve", "-f", str(folder),
         "--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0", "--access-log", "off",
         "--reload-interval", "0.1", *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    assert p.stderr is not None
    with kill_after(p, 30):
        while True:
            line = p.stderr.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("listening on https://"):
                return p, int(line.rsplit(":", 1)[1]), lines
    p.wait()
    raise AssertionError("serve did not listen:\n" + "".join(lines))


def _stop(p: subprocess.Popen[str]) -> str:
    p.terminate()
    return stderr_until_exit(p, 20)


def _until(port: int, want: set[str], sni: str | None = None) -> set[str]:
    """Poll the default certificate until it is ``want`` (the reload runs in the background)."""
    got: set[str] = set()
    for _ in range(100):
        got = _names(port, sni)
        if got == want:
            break
        time.sleep(0.1)
    return got


FAKE = {f"CN={DEFAULT_CERT_NAME}", "ingress.local"}


def test_no_sni_unknown_sni_and_broken_host_get_the_secret(ca: trustme.CA, tmp_path: Path) -> None:
    (tmp_path / "ing.yaml").write_text(_INGRESS)
    (tmp_path / "app.yaml").write_text(_secret_yaml("app-tls", ca.issue_cert("app.test"), "default"))
    (tmp_path / "default.yaml").write_text(_secret_yaml("default-cert", ca.issue_cert("default.example")))
    p, port, _ = _serve(tmp_path, "--default-ssl-certificate", REF)
    try:
        assert _names(port, None) == {"default.example"}
        assert _names(port, "unknown.test") == {"default.example"}
        # A host whose own Secret is missing falls back to the default: the Secret's.
        assert _names(port, "broken.test") == {"default.example"}
        # A host with its own certificate keeps it.
        assert _names(port, "app.test") == {"app.test"}
    finally:
        err = _stop(p)
    assert "Traceback" not in err, err


def test_missing_secret_warns_then_serves_it_once_created(ca: trustme.CA, tmp_path: Path) -> None:
    (tmp_path / "ing.yaml").write_text(_INGRESS)
    p, port, lines = _serve(tmp_path, "--default-ssl-certificate", REF)
    try:
        assert _names(port, None) == FAKE
        assert _names(port, "unknown.test") == FAKE
        (tmp_path / "default.yaml").write_text(_secret_yaml("default-cert", ca.issue_cert("late.example")))
        assert _until(port, {"late.example"}) == {"late.example"}
    finally:
        err = "".join(lines) + _stop(p)
    warning = [ln for ln in err.splitlines() if "--default-ssl-certificate" in ln]
    assert warning and "WARNING" in warning[0] and REF in warning[0] and "not found" in warning[0], err


def test_edited_secret_is_the_new_default_and_deleted_gives_the_generated(
        ca: trustme.CA, tmp_path: Path) -> None:
    (tmp_path / "ing.yaml").write_text(_INGRESS)
    secret = tmp_path / "default.yaml"
    secret.write_text(_secret_yaml("default-cert", ca.issue_cert("one.example")))
    p, port, _ = _serve(tmp_path, "--default-ssl-certificate", REF)
    try:
        assert _names(port, None) == {"one.example"}
        secret.write_text(_secret_yaml("default-cert", ca.issue_cert("two.example")))
        assert _until(port, {"two.example"}) == {"two.example"}
        assert _names(port, "unknown.test") == {"two.example"}
        secret.unlink()
        assert _until(port, FAKE) == FAKE
    finally:
        err = _stop(p)
    assert "Traceback" not in err, err


@pytest.mark.parametrize("value, says", [
    ("default-cert", "expected NAMESPACE/NAME"),
    ("a/b/c", "expected NAMESPACE/NAME"),
    ("/name", "namespace ''"),
    ("ns/", "Secret name ''"),
    ("NS/name", "namespace 'NS'"),
    ("ns/Bad_Name", "Secret name 'Bad_Name'"),
])
def test_malformed_value_exits_2(value: str, says: str, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "ing.yaml").write_text(_INGRESS)
    code = main(["serve", "-f", str(tmp_path), "--tls-listen", "127.0.0.1:0",
                 "--default-ssl-certificate", value])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("ingresslib serve: --default-ssl-certificate ") and says in err, err


def test_without_tls_listen_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "ing.yaml").write_text(_INGRESS)
    code = main(["serve", "-f", str(tmp_path), "--default-ssl-certificate", REF])
    assert code == 2
    assert "--default-ssl-certificate needs --tls-listen" in capsys.readouterr().err


def test_outside_the_watched_namespace_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    # Checked before the cluster configuration is read: no cluster needed.
    code = main(["serve", "--kubernetes", "--namespace", "shop", "--tls-listen", "127.0.0.1:0",
                 "--default-ssl-certificate", REF])
    assert code == 2
    assert "outside --namespace shop" in capsys.readouterr().err


# -- the store on its own ----------------------------------------------------------------------


def _default_names(store: CertificateStore) -> set[str]:
    der = _handshake_der(store)
    cert = x509.load_der_x509_certificate(der)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return set(san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        return set()


def _handshake_der(store: CertificateStore) -> bytes:
    client = ssl.create_default_context()
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    cl = client.wrap_bio(c_in, c_out, server_hostname=None)
    sv = store.context_for_hello(None).wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for side, out, inp in ((cl, c_out, s_in), (sv, s_out, c_in)):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
            inp.write(out.read())
    der = cl.getpeercert(binary_form=True)
    assert der is not None
    return der


def test_store_broken_update_keeps_last_good_then_deletion_falls_back(ca: trustme.CA) -> None:
    store = CertificateStore(default_secret=REF)
    generated = store.default_context
    leaf = ca.issue_cert("good.example")
    problems = store.update(Resources(secrets=(_secret(leaf),)))
    assert problems == [] and _default_names(store) == {"good.example"}
    good = store.default_context
    # The same content again: the same context (its session cache kept).
    assert store.update(Resources(secrets=(_secret(leaf),))) == []
    assert store.default_context is good
    broken = _secret(None, crt=b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    problems = store.update(Resources(secrets=(broken,)))
    assert [p.warning for p in problems] == [True]
    assert REF in str(problems[0]) and "last good" in str(problems[0])
    assert store.default_context is good
    problems = store.update(Resources())
    assert [p.warning for p in problems] == [False] and "not found" in str(problems[0])
    assert store.default_context is generated
    # Broken from the start: the generated default, reported.
    problems = store.update(Resources(secrets=(broken,)))
    assert store.default_context is generated and "unusable" in str(problems[0])


def test_store_without_default_secret_is_unchanged() -> None:
    store = CertificateStore()
    ctx = store.default_context
    assert store.update(Resources()) == [] and store.default_context is ctx
    with pytest.raises(ValueError, match="NAMESPACE/NAME"):
        CertificateStore(default_secret="no-namespace")


# -- from the cluster ---------------------------------------------------------------------------


def _secret_obj(name: str, leaf: trustme.LeafCert, ns: str = "ingresslib") -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": name, "namespace": ns},
            "data": {"tls.crt": base64.b64encode(leaf.cert_chain_pems[0].bytes()).decode(),
                     "tls.key": base64.b64encode(leaf.private_key_pem.bytes()).decode()}}


@pytest.mark.network
@pytest.mark.asyncio
async def test_kubernetes_default_secret_follows_the_cluster(ca: trustme.CA, tmp_path: Path) -> None:
    import asyncio
    import json

    from _fake_kube import FakeKube, kubeconfig_dict
    from test_serve_cli import _start_serve, _stop

    kube = FakeKube()
    url = await kube.start()
    # The Secret in another namespace than the Ingresses (the controller's own, as usual).
    kube.put(_secret_obj("default-cert", ca.issue_cert("one.example")))
    cfg = tmp_path / "kubeconfig"
    cfg.write_text(json.dumps(kubeconfig_dict(url)))
    p, ports = await asyncio.to_thread(
        _start_serve, "--kubernetes", "--kubeconfig", str(cfg), "--listen", "127.0.0.1:0",
        "--tls-listen", "127.0.0.1:0", "--access-log", "off", "--default-ssl-certificate", REF)
    port = ports["https"]
    try:
        assert await asyncio.to_thread(_until, port, {"one.example"}) == {"one.example"}
        assert await asyncio.to_thread(_names, port, "unknown.test") == {"one.example"}
        kube.put(_secret_obj("default-cert", ca.issue_cert("two.example")))
        assert await asyncio.to_thread(_until, port, {"two.example"}) == {"two.example"}
        kube.delete("Secret", "ingresslib", "default-cert")
        assert await asyncio.to_thread(_until, port, FAKE) == FAKE
    finally:
        err = await asyncio.to_thread(_stop, p)
        await kube.stop()
    assert "Traceback" not in err, err
    assert f"--default-ssl-certificate {REF}: Secret not found" in err, err
