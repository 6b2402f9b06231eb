"""Session 31, helper ``ext``: an ExternalName Service behind a TCP services entry reads the
Service's own ports (ingress-nginx getStreamServices), while HTTP backends keep
externalNamePorts' made-up port; and ``explain`` says when ``ssl-reject-handshake`` refuses a
handshake."""

from __future__ import annotations

import io
import json
import ssl
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
import trustme

from ingresslib import parse_manifests
from ingresslib._cli import main
from ingresslib._endpoints import EndpointIndex
from ingresslib._tcp_services import TCPServiceEntry, resolve_tcp_services
from ingresslib._tls import CertificateStore

sys.path.insert(0, str(Path(__file__).parent))
from test_tls_tenant_s15 import HOST, _backend, _routing, _secret  # noqa: E402

# --- ExternalName Services behind TCP services ------------------------------------------

_EXTERNAL = """\
apiVersion: v1
kind: Service
metadata: {name: bare, namespace: default}
spec: {type: ExternalName, externalName: db.example.com}
---
apiVersion: v1
kind: Service
metadata: {name: udp-only, namespace: default}
spec:
  type: ExternalName
  externalName: dns.example.com
  ports:
  - {name: dns, port: 53, protocol: UDP}
---
apiVersion: v1
kind: Service
metadata: {name: listed, namespace: default}
spec:
  type: ExternalName
  externalName: db.example.com
  ports:
  - {name: pg, port: 5432, targetPort: 6432}
"""


def test_tcp_services_entry_to_external_name_without_the_port_is_refused() -> None:
    # getStreamServices looks the port up in "svc.Spec.Ports" only ("if sp.Port ==
    # int32(targetPort) { if sp.Protocol == proto {"): no port, no endpoint, and "Service %q
    # does not have any active Endpoint for %v port %v" - the entry is skipped. No made-up
    # port as for HTTP (externalNamePorts).
    res = parse_manifests(_EXTERNAL)
    entries = [TCPServiceEntry(9000, "default", "bare", 5432),
               TCPServiceEntry(9001, "default", "udp-only", 53),
               TCPServiceEntry(9002, "default", "udp-only", "dns"),
               TCPServiceEntry(9003, "default", "listed", 5432),
               TCPServiceEntry(9004, "default", "listed", "pg")]
    targets, warnings = resolve_tcp_services(entries, res)
    assert [(t.port, t.endpoints) for t in targets] == [
        (9003, (("db.example.com", 6432),)), (9004, (("db.example.com", 6432),))]
    assert len(warnings) == 3, warnings
    bare, udp_number, udp_name = warnings
    assert bare.startswith("TCP services: port 9000: Service default/bare has no port 5432")
    assert bare.endswith(": not listened on")
    # The Service's own port of another protocol is no TCP port (sp.Protocol == proto).
    assert "port 9001: Service default/udp-only port 53 is UDP, not TCP" in udp_number
    assert "port 9002: Service default/udp-only port 'dns' is UDP, not TCP" in udp_name


def test_http_backend_to_external_name_keeps_the_made_up_port() -> None:
    ix = EndpointIndex(parse_manifests(_EXTERNAL))
    # externalNamePorts: "// ExternalName without port / return &apiv1.ServicePort{Protocol:
    # "TCP", Port: int32(port), TargetPort: intstr.FromInt(port)}".
    assert ix.resolve("default", "bare", 5432).endpoints == (("db.example.com", 5432),)
    # ... and a listed port is TCP whatever the Service says ("Protocol: "TCP"").
    assert ix.resolve("default", "udp-only", 53).endpoints == (("dns.example.com", 53),)
    # The stream answer is memoised apart from the HTTP one, either order.
    assert ix.resolve("default", "bare", 5432, stream=True).endpoints == ()
    assert ix.resolve("default", "bare", 5432).endpoints == (("db.example.com", 5432),)
    # UDP services as before: the Service's own UDP port, none made up.
    assert ix.resolve("default", "udp-only", 53, protocol="UDP", stream=True).endpoints == (
        ("dns.example.com", 53),)
    assert ix.resolve("default", "bare", 53, protocol="UDP", stream=True).endpoints == ()


# --- explain under ssl-reject-handshake -------------------------------------------------

_REJECT_CONFIG = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: ingress-nginx}
data:
  ssl-reject-handshake: "true"
"""


def _explain_cli(files: Path, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["explain", "-f", str(files), "--tls-listen", "127.0.0.1:8443", *args])
    return code, out.getvalue(), err.getvalue()


def _tls_doc(files: Path, url: str, *config: str) -> dict[str, Any]:
    code, out, err = _explain_cli(files, "-o", "json", *config, url)
    assert code == 0, err
    tls: dict[str, Any] = json.loads(out)["tls"]
    return tls


def _handshake_ok(store: CertificateStore, name: str | None) -> bool:
    """A handshake with SNI ``name`` against the context the store answers the ClientHello
    with (in memory: no socket)."""
    to_server, to_client = ssl.MemoryBIO(), ssl.MemoryBIO()
    server = store.context_for_hello(None if name is None else name.encode()).wrap_bio(
        to_server, to_client, server_side=True)
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE
    c_in, c_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=name)
    done = set()
    for _ in range(10):
        for side in (client, server):
            try:
                side.do_handshake()
                done.add(id(side))
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError:
                return False
            to_server.write(c_out.read())
            c_in.write(to_client.read())
        if len(done) == 2:
            return True
    raise AssertionError("the handshake did not end")


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_files(ca: trustme.CA, tmp_path: Path) -> Path:
    own = f"\n  tls:\n  - hosts: [{HOST}]\n    secretName: s"
    text = (_routing("shop", "shop", HOST, tls=own) + _secret("shop", "s", ca, HOST)
            + _routing("shop", "plain", "plain.example.test")
            + _routing("shop", "wild", "*.w.example.test") + _backend("shop", 8080))
    f = tmp_path / "m.yaml"
    f.write_text(text)
    return f


def test_explain_says_ssl_reject_handshake_refuses_a_name_no_server_has(
        tls_files: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(_REJECT_CONFIG)
    refused = _tls_doc(tls_files, "https://other.example.test/", "--config", str(config))
    # Every documented key still there (null: no certificate), and why.
    assert {k: refused[k] for k in ("sni", "secret", "not_after", "validity", "handshake")} == {
        "sni": "other.example.test", "secret": None, "not_after": None, "validity": None,
        "handshake": "refused"}
    assert "ssl-reject-handshake" in refused["reason"]
    # An IP address sends no SNI: refused too (nginx's default server refuses it).
    no_sni = _tls_doc(tls_files, "https://127.0.0.1:8443/", "--config", str(config))
    assert no_sni["sni"] is None and no_sni["handshake"] == "refused"
    # Known names are answered as before: a TLS host, a host without TLS (the default
    # certificate), a name a "*." rule host covers.
    shop = _tls_doc(tls_files, f"https://{HOST}/", "--config", str(config))
    assert shop["secret"] == "shop/s" and shop["validity"] == "valid" and "handshake" not in shop
    for url in ("https://plain.example.test/", "https://a.w.example.test/"):
        doc = _tls_doc(tls_files, url, "--config", str(config))
        assert doc == {"sni": url[8:-1], "secret": None, "not_after": None, "validity": None}
    # The text says so.
    code, out, err = _explain_cli(tls_files, "--config", str(config),
                                  "https://other.example.test/")
    assert code == 0, err
    line = next(x for x in out.splitlines() if x.startswith("  TLS"))
    assert line.startswith("  TLS (SNI other.example.test): the handshake is refused"), line
    assert "ssl-reject-handshake" in line
    code, out, err = _explain_cli(tls_files, "--config", str(config), f"https://{HOST}/")
    assert f"  TLS (SNI {HOST}): the certificate of Secret shop/s" in out


def test_explain_agrees_with_the_store_on_which_handshakes_are_refused(
        tls_files: Path, tmp_path: Path) -> None:
    from ingresslib.proxy import ProxySettings

    store = CertificateStore()
    store.configure_tls(ProxySettings(ssl_reject_handshake=True))
    store.update(parse_manifests(tls_files.read_text()))
    config = tmp_path / "config.yaml"
    config.write_text(_REJECT_CONFIG)
    for name in (HOST, "plain.example.test", "a.w.example.test", "other.example.test",
                 "a.b.w.example.test", "w.example.test"):
        doc = _tls_doc(tls_files, f"https://{name}/", "--config", str(config))
        assert (doc.get("handshake") != "refused") is _handshake_ok(store, name), name


def test_explain_without_ssl_reject_handshake_is_unchanged(tls_files: Path) -> None:
    assert _tls_doc(tls_files, "https://other.example.test/") == {
        "sni": "other.example.test", "secret": None, "not_after": None, "validity": None}
    assert _tls_doc(tls_files, "https://127.0.0.1:8443/") == {
        "sni": None, "secret": None, "not_after": None, "validity": None}
    code, out, _ = _explain_cli(tls_files, "https://other.example.test/")
    assert "  TLS (SNI other.example.test): no Secret's certificate covers it" in out
    assert "refused" not in out
