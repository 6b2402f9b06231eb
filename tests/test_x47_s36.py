"""``explain --default-ssl-certificate NAMESPACE/NAME`` (session 36, x47): explain names the
certificate ``serve --tls-listen --default-ssl-certificate`` answers a handshake with when no
Secret of an Ingress does (a host whose Secret is missing, a ``tls`` entry without
``secretName``, a host without TLS, an unknown SNI, no SNI; a host-less rule's
``server-alias`` under a ``*.`` certificate the default one covers), as ingress-nginx serves
its ``--default-ssl-certificate`` there instead of its fake certificate; a Secret missing or
unusable: the generated one, as serve.

Each case is checked against a real TLS handshake with the library's HTTPS listener (the
store ``serve`` builds: ``CertificateStore(default_secret=...)`` updated with the served
Ingresses), on 127.0.0.1, a free port, bounded in time."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

import ingresslib
from ingresslib import parse_manifests
from ingresslib._cli import main
from ingresslib._resources import Resources
from ingresslib._router import Router
from ingresslib._table import RouteTable
from ingresslib._tls import DEFAULT_CERT_NAME, CertificateStore
from ingresslib.proxy._server import ProxyServer

REF = "ingresslib/dflt"
P = "nginx.ingress.kubernetes.io/"


def _secret(name: str, leaf: trustme.LeafCert, ns: str = "default") -> str:
    crt = base64.b64encode(leaf.cert_chain_pems[0].bytes()).decode()
    key = base64.b64encode(leaf.private_key_pem.bytes()).decode()
    return (f"apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {ns}}}\n"
            f"type: kubernetes.io/tls\ndata:\n  tls.crt: {crt}\n  tls.key: {key}\n")


def _rule(host: str | None) -> str:
    head = "  - " if host is None else f"  - host: {host}\n    "
    return (f"{head}http:\n      paths:\n      - {{path: /, pathType: Prefix, backend: "
            "{service: {name: web, port: {number: 80}}}}\n")


_WEB = ("apiVersion: networking.k8s.io/v1\nkind: Ingress\n"
        "metadata: {name: web, namespace: default, creationTimestamp: '2024-01-01T00:00:00Z'}\n"
        "spec:\n  tls:\n  - hosts: [app.test]\n    secretName: app-tls\n"
        "  - hosts: [broken.test]\n    secretName: no-such-secret\n"
        "  - hosts: [nosecret.test]\n"
        "  - hosts: ['*.wild.test']\n    secretName: wild-tls\n  rules:\n"
        + "".join(_rule(h) for h in ("app.test", "broken.test", "nosecret.test", "plain.test",
                                     "x.wild.test")))
# A host-less rule's server-alias under the *.wild.test certificate: the default server's
# name, given the default certificate when that covers it, else the wildcard's.
_ALIAS = ("apiVersion: networking.k8s.io/v1\nkind: Ingress\n"
          "metadata: {name: alias, namespace: default, creationTimestamp: "
          f"'2024-01-02T00:00:00Z', annotations: {{{P}server-alias: a.wild.test}}}}\n"
          "spec:\n  rules:\n" + _rule(None))


@pytest.fixture(scope="module")
def manifests() -> str:
    ca = trustme.CA()
    return "---\n".join([
        _WEB, _ALIAS, _secret("app-tls", ca.issue_cert("app.test")),
        _secret("wild-tls", ca.issue_cert("*.wild.test")),
        _secret("dflt", ca.issue_cert("dflt.example", "*.wild.test"), ns="ingresslib"),
        _secret("other", ca.issue_cert("other.example"), ns="ingresslib")])


#: URL -> (what serve's handshake gives with --default-ssl-certificate ingresslib/dflt).
_CASES = {
    "https://app.test/": "default/app-tls",           # its own Secret
    "https://broken.test/": REF,                      # its Secret is missing
    "https://nosecret.test/": REF,                    # a tls entry without secretName
    "https://plain.test/": REF,                       # a rule host without tls
    "https://unknown.test/": REF,                     # a name no Ingress has
    "https://127.0.0.1/": REF,                        # no SNI
    "https://x.wild.test/": "default/wild-tls",       # the wildcard's rule host
    "https://a.wild.test/": REF,                      # the alias the default covers
}


def _der_of(res: Resources, ref: str) -> bytes:
    ns, name = ref.split("/")
    secret = next(s for s in res.secrets
                  if (s.metadata.namespace, s.metadata.name) == (ns, name))
    crt = secret.get_bytes("tls.crt")
    assert crt is not None
    return x509.load_pem_x509_certificate(crt).public_bytes(Encoding.DER)


async def _handshake_certs(res: Resources, default: str | None,
                           snis: list[str | None]) -> list[bytes]:
    """The DER certificate the library's HTTPS listener, with the store serve builds
    (``--default-ssl-certificate default``), presents to a client sending each SNI."""
    store = CertificateStore(default_secret=default,
                             default_source="--default-ssl-certificate")
    store.update(res, RouteTable.build(res).served)
    proxy = ProxyServer(Router(res), cert_store=store, client_header_timeout=3)
    await proxy.start(("127.0.0.1", 0), ("127.0.0.1", 0))
    out: list[bytes] = []
    try:
        port = [a for a in proxy.addresses if a[0] == "https"][0][2]
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
        for sni in snis:
            _r, w = await asyncio.wait_for(asyncio.open_connection(
                "127.0.0.1", port, ssl=ctx, server_hostname=sni), 3)
            der = w.get_extra_info("ssl_object").getpeercert(binary_form=True)
            w.close()
            assert der is not None
            out.append(der)
    finally:
        await proxy.shutdown(0.5)
    return out


def _said(res: Resources, doc: dict[str, Any]) -> str:
    """The certificate explain's ``tls`` says the handshake gets: a Secret's ``ns/name``, or
    ``"generated"``."""
    t = doc["tls"]
    if t["secret"] is not None:
        return str(t["secret"])
    d = t.get("default_certificate")
    return "generated" if d is None or d["secret"] is None else str(d["secret"])


def _is_generated(der: bytes) -> bool:
    cert = x509.load_der_x509_certificate(der)
    return [a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == [
        DEFAULT_CERT_NAME]


@pytest.mark.asyncio
@pytest.mark.parametrize("default", [REF, "ingresslib/missing", None],
                         ids=["default-secret", "missing-secret", "no-flag"])
async def test_explain_names_the_certificate_the_real_handshake_gets(
        manifests: str, default: str | None) -> None:
    res = parse_manifests(manifests)
    urls = list(_CASES)
    docs = [ingresslib.explain(res, u, default_ssl_certificate=default) for u in urls]
    ders = await _handshake_certs(res, default, [d["tls"]["sni"] for d in docs])
    for url, doc, der in zip(urls, docs, ders):
        said = _said(res, doc)
        if default == REF:
            assert said == _CASES[url], (url, doc["tls"])
        if said == "generated":
            assert _is_generated(der), (url, doc["tls"])
        else:
            assert der == _der_of(res, said), (url, doc["tls"])


def test_json_and_text_name_the_default_secret(manifests: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    files = tmp_path / "m.yaml"
    files.write_text(manifests)
    assert main(["explain", "-f", str(files), "--default-ssl-certificate", REF, "-o", "json",
                 "https://broken.test/"]) == 0
    tls = json.loads(capsys.readouterr().out)["tls"]
    assert tls["secret"] is None
    assert tls["default_certificate"] == {
        "secret": REF, "not_after": tls["default_certificate"]["not_after"],
        "validity": "valid", "problem": None}
    assert tls["default_certificate"]["not_after"].startswith("3000-01-01")
    assert main(["explain", "-f", str(files), "--default-ssl-certificate", REF,
                 "https://broken.test/"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("  TLS"))
    assert line.startswith("  TLS (SNI broken.test): no Secret's certificate covers it"), line
    assert line.endswith(f"the default certificate, Secret {REF} of "
                         "--default-ssl-certificate (valid until 3000-01-01T00:00:00+00:00)"), line


def test_a_missing_default_secret_is_the_generated_certificate_as_serve_says(
        manifests: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = tmp_path / "m.yaml"
    files.write_text(manifests)
    assert main(["explain", "-f", str(files), "--default-ssl-certificate", "ingresslib/gone",
                 "-o", "json", "https://127.0.0.1/"]) == 0
    d = json.loads(capsys.readouterr().out)["tls"]["default_certificate"]
    assert d == {"secret": None, "not_after": None, "validity": None,
                 "problem": "--default-ssl-certificate ingresslib/gone: Secret not found"}
    assert main(["explain", "-f", str(files), "--default-ssl-certificate", "ingresslib/gone",
                 "https://127.0.0.1/"]) == 0
    out = capsys.readouterr().out
    assert ("  TLS (no SNI: an IP address): the generated default certificate "
            "(--default-ssl-certificate ingresslib/gone: Secret not found)") in out, out


def test_without_the_flag_the_generated_certificate_is_said(
        manifests: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The JSON keeps its keys as before the flag (no "default_certificate"), and the text its
    # words (x50 s36: byte for byte).
    files = tmp_path / "m.yaml"
    files.write_text(manifests)
    assert main(["explain", "-f", str(files), "-o", "json", "https://unknown.test/"]) == 0
    assert json.loads(capsys.readouterr().out)["tls"] == {
        "sni": "unknown.test", "secret": None, "not_after": None, "validity": None}
    assert main(["explain", "-f", str(files), "https://unknown.test/"]) == 0
    out = capsys.readouterr().out
    assert ("  TLS (SNI unknown.test): no Secret's certificate covers it (check says why when a "
            "tls entry names it): the default certificate (serve's "
            "--default-ssl-certificate, else a generated one)") in out, out  # (x50 s36)


def test_an_own_certificate_has_no_default_key(manifests: str) -> None:
    doc = ingresslib.explain(parse_manifests(manifests), "https://app.test/",
                             default_ssl_certificate=REF)
    assert doc["tls"]["secret"] == "default/app-tls" and "default_certificate" not in doc["tls"]


def test_an_unusable_default_secret_is_said(manifests: str) -> None:
    res = parse_manifests(manifests + "---\napiVersion: v1\nkind: Secret\n"
                            "metadata: {name: bad, namespace: ingresslib}\n"
                            "type: kubernetes.io/tls\ndata: {tls.crt: eA==, tls.key: eA==}\n")
    d = ingresslib.explain(res, "https://unknown.test/",
                           default_ssl_certificate="ingresslib/bad")["tls"]["default_certificate"]
    assert d["secret"] is None
    assert d["problem"].startswith("--default-ssl-certificate ingresslib/bad: unusable "
                                   "certificate"), d


@pytest.mark.parametrize("value", ["bad", "a/b/c", "NS/x"])
def test_a_malformed_value_is_a_usage_error_as_in_serve(
        manifests: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str) -> None:
    files = tmp_path / "m.yaml"
    files.write_text(manifests)
    assert main(["explain", "-f", str(files), "-o", "json", "--default-ssl-certificate", value,
                 "https://app.test/"]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False
    assert doc["errors"][0]["message"].startswith(f"bad --default-ssl-certificate {value!r}")
    with pytest.raises(ValueError):
        ingresslib.explain(parse_manifests(manifests), "https://app.test/",
                           default_ssl_certificate=value)
    with pytest.raises(TypeError):
        ingresslib.explain(parse_manifests(manifests), "https://app.test/",
                           default_ssl_certificate=1)  # type: ignore[arg-type]


def test_under_ssl_reject_handshake_unknown_names_are_still_refused(
        manifests: str, tmp_path: Path) -> None:
    # The flag's certificate is no server name: ssl_reject_handshake refuses what it did.
    cm = tmp_path / "cm.yaml"
    cm.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: x}\n"
                  "data: {ssl-reject-handshake: 'true'}\n")
    from ingresslib.proxy import load_config

    settings = load_config(str(cm)).settings
    res = parse_manifests(manifests)
    refused = ingresslib.explain(res, "https://unknown.test/", settings=settings,
                                 default_ssl_certificate=REF)["tls"]
    assert refused["handshake"] == "refused" and "default_certificate" not in refused
    known = ingresslib.explain(res, "https://plain.test/", settings=settings,
                               default_ssl_certificate=REF)["tls"]
    assert known["default_certificate"]["secret"] == REF


# -- --no-auth-secrets: serve --kubernetes reads no Opaque Secret ------------------------------

def _auth_objects(web_port: int) -> list[dict[str, Any]]:
    from test_kube_s14 import auth_secret, basic_ingress
    from test_serve_kube import _backend

    return [basic_ingress("staff", "passwords", host="app.test"),
            auth_secret("passwords", {"alice": "s3cret"}), *_backend("web", web_port)]


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_no_auth_secrets_answers_503_as_for_a_missing_secret(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    res = Resources.from_dicts(_auth_objects(8080))
    auth = [("Authorization", _basic("alice", "s3cret"))]
    assert ingresslib.explain(res, "http://app.test/x", headers=auth)["verdict"]["proxied"]
    doc = ingresslib.explain(res, "http://app.test/x", headers=auth, no_auth_secrets=True)
    assert doc["verdict"]["status"] == 503, doc["verdict"]
    with pytest.raises(TypeError):
        ingresslib.explain(res, "http://app.test/x", no_auth_secrets=1)  # type: ignore[arg-type]
    files = tmp_path / "m.json"
    files.write_text(json.dumps({"apiVersion": "v1", "kind": "List",
                                 "items": _auth_objects(8080)}))
    assert main(["explain", "-f", str(files), "--no-auth-secrets", "-o", "json",
                 "-H", f"Authorization: {_basic('alice', 's3cret')}", "http://app.test/x"]) == 0
    assert json.loads(capsys.readouterr().out)["verdict"]["status"] == 503


def test_no_auth_secrets_keeps_the_tls_secrets(manifests: str) -> None:
    # serve --kubernetes --no-auth-secrets still watches kubernetes.io/tls Secrets.
    doc = ingresslib.explain(parse_manifests(manifests), "https://app.test/",
                             no_auth_secrets=True)
    assert doc["tls"]["secret"] == "default/app-tls"


@pytest.mark.asyncio
async def test_no_auth_secrets_agrees_with_serve_kubernetes(tmp_path: Path) -> None:
    # The same objects in a (fake) cluster: serve --kubernetes with and without the flag,
    # and explain on them as files.
    from ingresslib._demo import start_echo
    from test_kube_s14 import FakeKubeS14, _http
    from test_serve_cli import _start_serve, _stop
    from test_serve_kube import _fake_cluster

    web = await start_echo("web", "web-0")
    objects = _auth_objects(web.port)
    res = Resources.from_dicts(objects)
    auth = _basic("alice", "s3cret")
    try:
        for flag in (False, True):
            kube, cfg = await _fake_cluster(tmp_path, *objects, kube=FakeKubeS14())
            p, ports = await asyncio.to_thread(
                _start_serve, "--kubernetes", "--kubeconfig", str(cfg), "--listen",
                "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--access-log", "off",
                *(["--no-auth-secrets"] if flag else []))
            try:
                for _ in range(100):   # /healthz: 200 once the first table is loaded
                    if (await _http(ports["metrics"], "localhost", "/healthz"))[0] == 200:
                        break
                    await asyncio.sleep(0.1)
                v = ingresslib.explain(res, "http://app.test/x", no_auth_secrets=flag,
                                       headers=[("Authorization", auth)])["verdict"]
                want = 200 if v["proxied"] else v["status"]   # (the echo pod answers 200)
                assert want == (503 if flag else 200)
                got = (await _http(ports["http"], "app.test", "/x", auth))[0]
                assert got == want, (flag, got, want)
            finally:
                await asyncio.to_thread(_stop, p)
                await kube.stop()
    finally:
        await web.stop()
