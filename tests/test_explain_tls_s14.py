"""``ingresslib explain --tls`` / ``--tls-listen``: the verdict of ``serve --tls-listen`` (session 14).

Before: ``serve --tls-listen`` answers ``http://`` requests for a host with TLS with its
ssl-redirect (308 to ``https://``), but ``explain`` said the backend answers: its proxy had no
TLS hosts. Now ``explain --tls`` (HTTPS on 443) and ``explain --tls-listen HOST:PORT`` (serve's
value) give its proxy the hosts the certificate store makes TLS hosts (``_tls.tls_hosts``, the
store's own decision) and the HTTPS port, as ``serve`` does. Without them the verdict is a
plain-HTTP ``serve``'s, as before.

Also: a host's path no rule covers, served by another Ingress's ``defaultBackend``, must pass
both Ingresses' access control (``combine_access``); ``explain`` showed only the first half.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest

from ingresslib._cli import main
from ingresslib._load import parse_manifests
from ingresslib._router import Router
from ingresslib._table import RouteTable
from ingresslib._tls import CertificateStore, generate_certificate, tls_hosts

P = "nginx.ingress.kubernetes.io/"


def ingress(name: str, hosts: list[str], *, tls: str = "", annotations: str = "",
            created: str = "2024-01-01T00:00:00Z", extra: str = "") -> str:
    rules = "".join(f"""
  - host: {h}
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}"""
                    for h in hosts)
    return f"""
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: {name}, namespace: default, creationTimestamp: '{created}',
           annotations: {{{annotations}}}}}
spec:{tls}{extra}
  rules:{rules}
"""


def ingress_class(name: str, default: bool = False) -> str:
    ann = "{ingressclass.kubernetes.io/is-default-class: 'true'}" if default else "{}"
    return f"""
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {{name: {name}, annotations: {ann}}}
spec: {{controller: example.com/{name}}}
"""


def backend(port: int) -> str:
    return f"""
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: default}}
spec: {{ports: [{{port: 80, targetPort: {port}}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: web-1, namespace: default, labels: {{kubernetes.io/service-name: web}}}}
addressType: IPv4
endpoints: [{{addresses: ["127.0.0.1"]}}]
ports: [{{port: {port}}}]
"""


def tls_secret(name: str, hosts: list[str]) -> str:
    crt, key = generate_certificate(hosts)
    indent = "\n    "
    return f"""
---
apiVersion: v1
kind: Secret
metadata: {{name: {name}, namespace: default}}
type: kubernetes.io/tls
stringData:
  tls.crt: |{indent}{indent.join(crt.decode().splitlines())}
  tls.key: |{indent}{indent.join(key.decode().splitlines())}
"""


SECURE_TLS = """
  tls:
  - hosts: [secure.test]
    secretName: secure-tls"""


def manifests(port: int) -> str:
    # secure.test has TLS (a valid Secret); plain.test is another Ingress's, without tls.
    return (ingress("secure", ["secure.test"], tls=SECURE_TLS)
            + ingress("plain", ["plain.test"]) + backend(port)
            + tls_secret("secure-tls", ["secure.test"]))


def explain(capsys: pytest.CaptureFixture[str], files: Path, *args: str) -> dict[str, Any]:
    assert main(["explain", "-f", str(files), "-o", "json", *args]) == 0
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    return doc


# -- what serve --tls-listen answers, asked of a real server -------------------------------------

async def _backend() -> asyncio.Server:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0)


async def _ask(port: int, head: bytes, *, tls: bool = False) -> tuple[int, dict[bytes, bytes]]:
    ctx = None
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    reader, writer = await asyncio.wait_for(asyncio.open_connection(
        "127.0.0.1", port, ssl=ctx, server_hostname="secure.test" if tls else None), 5)
    writer.write(head)
    data = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    writer.close()
    lines = data.split(b"\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name:
            headers[name.strip().lower()] = value.strip()
    return int(lines[0].split(b" ")[1]), headers


def _serve_answers(requests: list[tuple[str, bytes]]) -> tuple[int, list[tuple[int, dict[bytes, bytes]]]]:
    """Run a server as ``serve --tls-listen 127.0.0.1:0`` builds it (``_serve._serve``: a
    CertificateStore updated with the served Ingresses, ``ProxyServer(cert_store=...)``,
    ``start(listen, tls_listen)``) over a backend on 127.0.0.1, send each ``(scheme, head)``
    and return its HTTPS port and the answers."""
    from ingresslib._serve import build_router, _served_by
    from ingresslib.proxy._server import ProxyServer

    async def run() -> tuple[int, list[tuple[int, dict[bytes, bytes]]]]:
        up = await _backend()
        try:
            res = parse_manifests(manifests(up.sockets[0].getsockname()[1]))
            router = build_router(res, ingress_class=None, controller=None)
            store = CertificateStore()
            store.update(res, _served_by(router, res, None, None))
            server = ProxyServer(router, None, cert_store=store)
            await server.start(("127.0.0.1", 0), ("127.0.0.1", 0))
            try:
                ports = {scheme: port for scheme, _, port in server.addresses}
                out = [await _ask(ports[scheme], head, tls=scheme == "https")
                       for scheme, head in requests]
            finally:
                await server.shutdown(1.0)
            return ports["https"], out
        finally:
            up.close()
            await up.wait_closed()

    return asyncio.run(run())


def test_tls_host_http_url_gets_serves_ssl_redirect(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    https_port, answers = _serve_answers([
        ("http", b"GET /a/b?x=1 HTTP/1.1\r\nHost: secure.test\r\n\r\n"),
        ("http", b"GET /a/ HTTP/1.1\r\nHost: plain.test\r\n\r\n"),
        ("https", b"GET /a HTTP/1.1\r\nHost: secure.test\r\n\r\n"),
    ])
    (redirect, headers), (plain, _), (secure, secure_headers) = answers
    assert redirect == 308
    assert headers[b"location"] == f"https://secure.test:{https_port}/a/b?x=1".encode()
    assert plain == 200 and secure == 200
    assert b"strict-transport-security" in secure_headers

    files = tmp_path / "m.yaml"
    files.write_text(manifests(8080))
    flag = f"--tls-listen=127.0.0.1:{https_port}"
    doc = explain(capsys, files, flag, "http://secure.test/a/b?x=1")
    assert doc["status"] == 308
    assert doc["verdict"]["status"] == 308 and not doc["verdict"]["proxied"]
    assert doc["verdict"]["location"] == headers[b"location"].decode()
    # The host without TLS, and the TLS host over https: the backend, as serve answers.
    doc = explain(capsys, files, flag, "http://plain.test/a/")
    assert doc["status"] == 200 and doc["verdict"]["proxied"]
    assert "location" not in doc["verdict"]
    doc = explain(capsys, files, flag, "https://secure.test/a")
    assert doc["status"] == 200 and doc["verdict"]["proxied"]
    # Text: the redirect line.
    assert main(["explain", "-f", str(files), flag, "http://secure.test/a/b?x=1"]) == 0
    assert (f"proxy answers: 308 (redirect to https://secure.test:{https_port}/a/b?x=1)"
            in capsys.readouterr().out)


def test_tls_flag_is_https_on_443_and_default_is_plain_http(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = tmp_path / "m.yaml"
    files.write_text(manifests(8080))
    doc = explain(capsys, files, "--tls", "http://secure.test/a/")
    # ssl-redirect drops one final "/" (preserve-trailing-slash off); port 443 is not written.
    assert doc["status"] == 308 and doc["verdict"]["location"] == "https://secure.test/a"
    # Without --tls: serve without --tls-listen, which redirects nothing (unchanged output).
    doc = explain(capsys, files, "http://secure.test/a/")
    assert doc["status"] == 200 and doc["verdict"]["proxied"]
    assert main(["explain", "-f", str(files), "http://secure.test/a/"]) == 0
    assert "proxy answers" not in capsys.readouterr().out


def test_tls_redirect_of_a_path_no_rule_covers_and_a_missing_secret(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # The Secret is missing: ingress-nginx serves the host the default certificate and
    # redirects it all the same (the store's has_tls); the redirect of an unruled path comes
    # from the server's own location / (``_unrouted_redirect``).
    m = (ingress("secure", ["secure.test"], tls=SECURE_TLS).replace(
        "path: /, pathType: Prefix", "path: /app, pathType: Prefix") + backend(8080))
    files = tmp_path / "m.yaml"
    files.write_text(m)
    doc = explain(capsys, files, "--tls", "http://secure.test/other")
    assert doc["status"] == 308 and doc["verdict"]["location"] == "https://secure.test/other"
    doc = explain(capsys, files, "--tls", "http://secure.test/app/x")
    assert doc["status"] == 308 and doc["verdict"]["location"] == "https://secure.test/app/x"
    # ssl-redirect: "false" on the Ingress: no redirect, as serve.
    off = m.replace("annotations: {}", f"annotations: {{{P}ssl-redirect: 'false'}}")
    assert off != m
    files.write_text(off)
    assert explain(capsys, files, "--tls", "http://secure.test/app/x")["verdict"]["proxied"]


@pytest.mark.parametrize("value", ["127.0.0.1:0", "nohost:x", "[::1", ""])
def test_bad_tls_listen_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         value: str) -> None:
    files = tmp_path / "m.yaml"
    files.write_text(manifests(8080))
    assert main(["explain", "-f", str(files), "-o", "json", f"--tls-listen={value}",
                 "http://secure.test/"]) == 2
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is False and "--tls-listen" in doc["errors"][0]["message"]


# -- tls_hosts is the certificate store's decision -------------------------------------------------

def test_tls_hosts_is_what_the_certificate_store_decides() -> None:
    wild_tls = """
  tls:
  - hosts: ['*.wild.test']
    secretName: wild-tls"""
    m = (ingress("secure", ["secure.test", "also.test"], tls=SECURE_TLS)
         # an entry without hosts: the Ingress's rule hosts; its Secret does not cover them
         + ingress("nohosts", ["nh.test"], tls="\n  tls:\n  - secretName: secure-tls",
                   created="2024-01-02T00:00:00Z")
         # a missing Secret, and a tls.hosts name without a rule
         + ingress("missing", ["missing.test"], created="2024-01-03T00:00:00Z",
                   tls="\n  tls:\n  - hosts: [missing.test, norule.test]\n    secretName: gone")
         # no secretName: the default certificate, a TLS host all the same
         + ingress("nosecret", ["ns.test"], tls="\n  tls:\n  - hosts: [ns.test]",
                   created="2024-01-04T00:00:00Z")
         + ingress("wild", ["a.wild.test"], tls=wild_tls, created="2024-01-05T00:00:00Z")
         # a canary with its own tls makes no host a TLS host
         + ingress("canary", ["canary.test"], created="2024-01-06T00:00:00Z",
                   annotations=f"{P}canary: 'true'",
                   tls="\n  tls:\n  - hosts: [canary.test]\n    secretName: secure-tls")
         # not served (another class): no TLS host either
         + ingress("other", ["other.test"], created="2024-01-07T00:00:00Z",
                   tls="\n  tls:\n  - hosts: [other.test]\n    secretName: secure-tls",
                   extra="\n  ingressClassName: other")
         + ingress("mine", ["plain.test", "x.wild.test"], created="2024-01-08T00:00:00Z",
                   extra="\n  ingressClassName: mine")
         + ingress_class("mine", default=True) + tls_secret("secure-tls", ["secure.test"]) + tls_secret("wild-tls", ["*.wild.test"]))
    res = parse_manifests(m)
    candidates = ["secure.test", "SECURE.test.", "also.test", "nh.test", "missing.test",
                  "norule.test", "ns.test", "a.wild.test", "x.wild.test", "b.wild.test",
                  "wild.test", "a.b.wild.test", "canary.test", "other.test", "plain.test",
                  "unknown.test", ".wild.test"]
    for klass in (None, "mine"):
        served = RouteTable.build(res, ingress_class=klass).served
        store = CertificateStore()
        store.update(res, served)
        hosts = tls_hosts(res, served)
        assert {h: hosts(h) for h in candidates} == {h: store.has_tls(h) for h in candidates}
    # Sanity: the cases above do differ. Class "mine" (the default class) serves every
    # Ingress but "other".
    served = RouteTable.build(res, ingress_class="mine").served
    hosts = tls_hosts(res, served)
    assert hosts("secure.test") and hosts("missing.test") and hosts("norule.test")
    assert hosts("ns.test") and hosts("x.wild.test") and hosts("nh.test")
    assert not hosts("canary.test") and not hosts("other.test") and not hosts("plain.test")
    assert not hosts("wild.test") and not hosts("a.b.wild.test")
    # Every Ingress (no class filter): "other" too.
    assert tls_hosts(res)("other.test") and not tls_hosts(res)("canary.test")


def test_explain_tls_follows_the_served_ingresses(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # A TLS host of an Ingress of another class is no TLS host of this controller's serve.
    m = (ingress("secure", ["secure.test"], tls=SECURE_TLS, extra="\n  ingressClassName: b")
         + ingress("plain", ["secure.test"], created="2025-01-01T00:00:00Z",
                   extra="\n  ingressClassName: a") + backend(8080)
         + ingress_class("a") + ingress_class("b"))
    files = tmp_path / "m.yaml"
    files.write_text(m)
    assert explain(capsys, files, "--tls", "--ingress-class", "b",
                   "http://secure.test/x")["status"] == 308
    doc = explain(capsys, files, "--tls", "--ingress-class", "a", "http://secure.test/x")
    assert doc["status"] == 200 and doc["verdict"]["proxied"]


# -- combined access (a host's default backend from another Ingress) -------------------------------

CATCH_ALL = f"""
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: catch-all, namespace: default, creationTimestamp: '2023-01-01T00:00:00Z',
           annotations: {{{P}whitelist-source-range: '10.9.0.0/16', {P}auth-type: basic,
                         {P}auth-secret: catch-users, {P}auth-realm: Catch}}}}
spec:
  defaultBackend: {{service: {{name: web, port: {{number: 80}}}}}}
"""
USERS = """
---
apiVersion: v1
kind: Secret
metadata: {name: %s, namespace: default}
stringData:
  auth: "alice:{PLAIN}pw"
"""


def test_explain_shows_both_halves_of_a_combined_access(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    admin = ingress("admin", ["admin.test"], created="2024-01-01T00:00:00Z",
                    annotations=f"{P}whitelist-source-range: '10.0.0.0/8', {P}auth-type: basic, "
                                f"{P}auth-secret: admin-users, {P}auth-realm: Admin"
                    ).replace("path: /, pathType: Prefix", "path: /admin, pathType: Prefix")
    files = tmp_path / "m.yaml"
    files.write_text(CATCH_ALL + admin + backend(8080)
                     + USERS % "admin-users" + USERS % "catch-users")
    doc = explain(capsys, files, "--client-ip", "10.1.2.3", "http://admin.test/x")
    assert doc["match"]["ingress"] == "default/catch-all" and doc["match"]["is_default_backend"]
    access = doc["access"]
    # The host's own Ingress (the server's location /), then the default backend's Ingress.
    assert access["source_ranges"]["ipv4"] == [{"rule": "allow", "cidr": "10.0.0.0/8"},
                                               {"rule": "deny", "cidr": "0.0.0.0/0"}]
    assert access["basic_auth"]["secret"] == "default/admin-users"
    assert access["also"]["source_ranges"]["ipv4"] == [{"rule": "allow", "cidr": "10.9.0.0/16"},
                                                       {"rule": "deny", "cidr": "0.0.0.0/0"}]
    assert access["also"]["basic_auth"]["secret"] == "default/catch-users"
    assert access["also"]["denied"] is None
    # 10.1.2.3 passes the first allowlist, not the second: the proxy's 403.
    assert doc["status"] == 403 and doc["verdict"]["status"] == 403
    assert main(["explain", "-f", str(files), "--client-ip", "10.1.2.3",
                 "http://admin.test/x"]) == 0
    out = capsys.readouterr().out
    assert ("     access: source ranges (first match decides; none matches: allowed): "
            "IPv4: allow 10.0.0.0/8, deny all; IPv6: deny all\n") in out
    assert ("     access, also (both must pass): source ranges (first match decides; none "
            "matches: allowed): IPv4: allow 10.9.0.0/16, deny all; IPv6: deny all\n") in out
    assert ("access, also (both must pass): basic authentication, realm 'Catch', users of "
            "Secret default/catch-users (auth-file)") in out
    # A route of one Ingress: no "also" (the JSON as before).
    doc = explain(capsys, files, "--client-ip", "10.1.2.3", "http://admin.test/admin")
    assert "also" not in doc["access"]


def test_combined_basic_auth_verdict_checks_both_secrets(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import base64

    admin = ingress("admin", ["admin.test"], annotations=f"{P}auth-type: basic, "
                    f"{P}auth-secret: admin-users, {P}auth-realm: Admin"
                    ).replace("path: /, pathType: Prefix", "path: /admin, pathType: Prefix")
    catch_all = CATCH_ALL.replace(f"{P}whitelist-source-range: '10.9.0.0/16', ", "")
    alice = "Authorization: Basic " + base64.b64encode(b"alice:pw").decode()
    files = tmp_path / "m.yaml"
    # alice is in the host's Secret; the catch-all's has bob only: the proxy asks again.
    files.write_text(catch_all + admin + backend(8080) + USERS % "admin-users"
                     + (USERS % "catch-users").replace("alice:{PLAIN}pw", "bob:{PLAIN}pw2"))
    doc = explain(capsys, files, "-H", alice, "http://admin.test/x")
    assert doc["verdict"]["status"] == 401
    assert doc["verdict"]["www_authenticate"] == 'Basic realm="Catch"'
    assert "does not verify" in doc["verdict"]["reason"]
    # The catch-all's Secret is missing: the proxy answers 503, and explain says why (the
    # second basic authentication's verdict, not only the first's).
    files.write_text(catch_all + admin + backend(8080) + USERS % "admin-users")
    doc = explain(capsys, files, "-H", alice, "http://admin.test/x")
    assert doc["status"] == 503 and doc["verdict"]["status"] == 503
    assert doc["verdict"]["reason"] == ("basic authentication: its Secret cannot be used, see "
                                        "the warning")
