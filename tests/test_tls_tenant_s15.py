"""The ``tls.hosts`` extension stays within a tenant (session 15).

``CertificateStore.update`` rule 3 (an ingresslib extension; ingress-nginx ignores it) serves a
``spec.tls[].hosts`` name that no rule of its own Ingress names. Before: any namespace could list
another namespace's plain-HTTP host, e.g. an Ingress in ``evil`` with only a ``defaultBackend``
and ``tls: [{hosts: [shop.example.test], secretName: s}]``; ``shop.example.test``, routed by
namespace ``shop`` without ``tls``, was then redirected to HTTPS and served ``evil``'s
certificate, and nothing was reported.

Now such a listing applies only when no served Ingress routes the host, or when the one that
does (the oldest non-canary Ingress with a rule for it, else a ``*.`` rule covering it) is in the
listing's namespace; otherwise it is ignored (no certificate, no TLS host) and reported as a
warning naming the listing, its field and the namespace that routes the host. A listed ``*.``
name does not stand for the hosts other namespaces route. ``tls_hosts`` (what ``explain --tls``
uses) agrees with the store (what the proxy's ssl-redirect uses).
"""

from __future__ import annotations

import asyncio
import json
import ssl
from pathlib import Path
from typing import Any

import pytest
import trustme
from cryptography import x509
from cryptography.x509.oid import NameOID

from ingresslib._cli import main
from ingresslib._load import parse_manifests
from ingresslib._resources import Resources
from ingresslib._tls import DEFAULT_CERT_NAME, CertificateStore, TLSProblem, tls_hosts

HOST = "shop.example.test"


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _secret(ns: str, name: str, ca: trustme.CA, *names: str) -> str:
    leaf = ca.issue_cert(*names)
    crt = leaf.cert_chain_pems[0].bytes().decode()
    key = leaf.private_key_pem.bytes().decode()
    ind = "\n    "
    return f"""
---
apiVersion: v1
kind: Secret
metadata: {{name: {name}, namespace: {ns}}}
type: kubernetes.io/tls
stringData:
  tls.crt: |{ind}{ind.join(crt.splitlines())}
  tls.key: |{ind}{ind.join(key.splitlines())}
"""


def _backend(ns: str, port: int) -> str:
    return f"""
---
apiVersion: v1
kind: Service
metadata: {{name: svc, namespace: {ns}}}
spec: {{ports: [{{port: 80, targetPort: {port}}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: svc-1, namespace: {ns}, labels: {{kubernetes.io/service-name: svc}}}}
addressType: IPv4
endpoints: [{{addresses: ["127.0.0.1"]}}]
ports: [{{port: {port}}}]
"""


def _routing(ns: str, name: str, host: str, created: str = "2024-01-01T00:00:00Z",
             path: str = "/", annotations: str = "{}", tls: str = "") -> str:
    """An Ingress routing ``host`` to ``svc`` of ``ns``, without ``tls`` unless given."""
    return f"""
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: {name}, namespace: {ns}, creationTimestamp: '{created}',
           annotations: {annotations}}}
spec:{tls}
  rules:
  - host: '{host}'
    http:
      paths:
      - {{path: {path}, pathType: Prefix, backend: {{service: {{name: svc, port: {{number: 80}}}}}}}}
"""


def _tls_only(ns: str, name: str, hosts: list[str], secret: str,
              created: str = "2020-01-01T00:00:00Z") -> str:
    """An Ingress with only a ``defaultBackend`` and ``tls``: no rule names its hosts. Older
    than the routing Ingresses, so that age alone cannot be what refuses it."""
    listed = ", ".join(f"'{h}'" for h in hosts)
    return f"""
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: {name}, namespace: {ns}, creationTimestamp: '{created}'}}
spec:
  tls:
  - hosts: [{listed}]
    secretName: {secret}
  defaultBackend: {{service: {{name: svc, port: {{number: 80}}}}}}
"""


def _squat(ca: trustme.CA, port: int = 9) -> str:
    # The reviewer's case: namespace evil lists shop's plain-HTTP host.
    return (_routing("shop", "shop", HOST) + _backend("shop", port)
            + _tls_only("evil", "squat", [HOST], "s") + _backend("evil", port)
            + _secret("evil", "s", ca, HOST))


def _split(ca: trustme.CA, port: int = 9) -> str:
    # One tenant: a tls-only Ingress plus a routing Ingress, both in namespace shop.
    return (_routing("shop", "shop", HOST) + _backend("shop", port)
            + _tls_only("shop", "certs", [HOST], "s") + _secret("shop", "s", ca, HOST))


def _store(res: Resources) -> tuple[CertificateStore, list[TLSProblem]]:
    """A store as ``serve --tls-listen`` builds it: updated with the served Ingresses."""
    from ingresslib._serve import _served_by, build_router

    router = build_router(res, ingress_class=None, controller=None)
    store = CertificateStore()
    problems = store.update(res, _served_by(router, res, None, None))
    return store, problems


def _agree(res: Resources, store: CertificateStore, *hosts: str) -> dict[str, bool]:
    """``store.has_tls`` per host, checked against ``tls_hosts`` (``explain --tls``)."""
    listed = tls_hosts(res)
    got = {h: store.has_tls(h) for h in hosts}
    assert got == {h: listed(h) for h in hosts}
    return got


def _subject(store: CertificateStore, sni: str) -> str:
    """The Common Name of the certificate the store serves for ``sni``."""
    ctx = store.context_for(sni)
    if ctx is store.default_context:
        return DEFAULT_CERT_NAME
    client = ssl.create_default_context()
    client.check_hostname, client.verify_mode = False, ssl.CERT_NONE
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    cli = client.wrap_bio(c_in, c_out, server_hostname=sni)
    srv = ctx.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for side in (cli, srv):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    der = cli.getpeercert(binary_form=True)
    assert der is not None
    return _cn(der)


def _cn(der: bytes) -> str:
    """The default certificate's Common Name, else the DNS names the certificate covers."""
    leaf = x509.load_der_x509_certificate(der)
    cns = [a.value for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if cns == [DEFAULT_CERT_NAME]:
        return DEFAULT_CERT_NAME
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return ",".join(san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        return str(leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


# -- the squat, through a real listener ----------------------------------------------------------

async def _http_backend() -> asyncio.Server:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: close\r\n\r\nbackend")
        await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0)


async def _get(port: int, ctx: ssl.SSLContext | None = None) -> str:
    r, w = await asyncio.wait_for(asyncio.open_connection(
        "127.0.0.1", port, ssl=ctx, server_hostname=HOST if ctx else None), 5)
    try:
        w.write(f"GET /p HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
        return (await asyncio.wait_for(r.read(65536), 5)).decode("latin-1")
    finally:
        w.close()


async def _served_cn(port: int) -> str:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    r, w = await asyncio.wait_for(asyncio.open_connection(
        "127.0.0.1", port, ssl=ctx, server_hostname=HOST), 5)
    try:
        der = w.get_extra_info("ssl_object").getpeercert(binary_form=True)
        return _cn(der)
    finally:
        w.close()


async def _through_listener(ca: trustme.CA, manifest: Any) -> tuple[str, str, int, str]:
    """``(plain-HTTP answer, certificate names served for HOST, HTTPS port, HTTPS answer with a
    client trusting ``ca``, or the verification error)``, from a server built as
    ``serve --tls-listen`` builds it, on 127.0.0.1."""
    from ingresslib.proxy._server import ProxyServer

    up = await _http_backend()
    try:
        res = parse_manifests(manifest(ca, up.sockets[0].getsockname()[1]))
        store, _ = _store(res)
        from ingresslib._serve import build_router

        server = ProxyServer(build_router(res, ingress_class=None, controller=None),
                             cert_store=store, client_header_timeout=5)
        await server.start(("127.0.0.1", 0), ("127.0.0.1", 0))
        try:
            http_port, https_port = server.addresses[0][2], server.addresses[1][2]
            plain = await _get(http_port)
            cn = await _served_cn(https_port)
            client = ssl.create_default_context()
            ca.configure_trust(client)
            try:
                secure = await _get(https_port, client)
            except ssl.SSLCertVerificationError as e:
                secure = f"refused: {e.verify_message}"
            return plain, cn, https_port, secure
        finally:
            await server.shutdown(1)
    finally:
        up.close()
        await up.wait_closed()


@pytest.mark.network
@pytest.mark.asyncio
async def test_squat_gets_neither_the_redirect_nor_the_certificate(ca: trustme.CA) -> None:
    # Failed before: "HTTP/1.1 308" to https://shop.example.test, and evil's certificate
    # (naming shop.example.test, issued by the CA the client trusts) served for it.
    plain, cn, _port, secure = await _through_listener(ca, _squat)
    assert plain.startswith("HTTP/1.1 200") and plain.endswith("backend"), plain
    assert cn == DEFAULT_CERT_NAME
    assert secure.startswith("refused: "), secure


@pytest.mark.network
@pytest.mark.asyncio
async def test_same_namespace_split_still_redirects_and_serves(ca: trustme.CA) -> None:
    # The extension's purpose, kept: a tls-only Ingress of the tenant that routes the host.
    plain, cn, port, secure = await _through_listener(ca, _split)
    assert plain.startswith("HTTP/1.1 308"), plain
    assert f"location: https://{HOST}:{port}/p" in plain.lower(), plain
    assert cn == HOST
    assert secure.startswith("HTTP/1.1 200") and secure.endswith("backend"), secure


# -- explain --tls, the warning, and the store ----------------------------------------------------

def _explain(capsys: pytest.CaptureFixture[str], files: Path, url: str) -> dict[str, Any]:
    assert main(["explain", "-f", str(files), "-o", "json", "--tls", url]) == 0
    doc: dict[str, Any] = json.loads(capsys.readouterr().out)
    return doc


def test_explain_tls_does_not_redirect_the_squatted_host(
        ca: trustme.CA, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Failed before: status 308, location https://shop.example.test/p.
    files = tmp_path / "squat.yaml"
    files.write_text(_squat(ca))
    doc = _explain(capsys, files, f"http://{HOST}/p")
    assert doc["status"] == 200 and doc["verdict"]["proxied"], doc
    assert "location" not in doc["verdict"]


def test_explain_tls_redirects_the_same_namespace_split(
        ca: trustme.CA, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = tmp_path / "split.yaml"
    files.write_text(_split(ca))
    doc = _explain(capsys, files, f"http://{HOST}/p")
    assert doc["status"] == 308 and doc["verdict"]["location"] == f"https://{HOST}/p", doc


def test_the_refused_listing_is_a_warning_naming_listing_field_and_namespace(
        ca: trustme.CA) -> None:
    # Failed before: no problem at all.
    store, problems = _store(parse_manifests(_squat(ca)))
    assert [(p.object, p.field, p.warning) for p in problems] == [
        ("Ingress evil/squat", "spec.tls[0].hosts[0]", True)]
    assert str(problems[0]) == (
        "Ingress evil/squat: spec.tls[0].hosts[0]: ignored: 'shop.example.test' is routed by "
        "namespace shop (Ingress shop/shop) and no rule of this Ingress names it; a tls.hosts "
        "name without a rule applies only to a host no other namespace routes: no certificate "
        "from this entry, no ssl-redirect or HSTS for it")
    assert store.hosts == frozenset()


def test_split_has_no_problem(ca: trustme.CA) -> None:
    res = parse_manifests(_split(ca))
    store, problems = _store(res)
    assert problems == []
    assert _agree(res, store, HOST) == {HOST: True}
    assert _subject(store, HOST) == HOST


def test_a_name_no_rule_names_still_works(ca: trustme.CA) -> None:
    # No served Ingress routes free.example.test: any namespace's listing applies, as before.
    res = parse_manifests(_squat(ca) + _tls_only("evil", "free", ["free.example.test"], "f")
                          + _secret("evil", "f", ca, "free.example.test"))
    store, problems = _store(res)
    assert [p.field for p in problems] == ["spec.tls[0].hosts[0]"]   # the squat only
    assert problems[0].object == "Ingress evil/squat"
    assert _agree(res, store, HOST, "free.example.test") == {
        HOST: False, "free.example.test": True}
    assert _subject(store, "free.example.test") == "free.example.test"
    assert _subject(store, HOST) == DEFAULT_CERT_NAME


def test_owner_has_tls_of_its_own_nothing_to_say(ca: trustme.CA) -> None:
    # The listing is ignored (the rule wins, as before) and changes nothing: no warning.
    own = f"\n  tls:\n  - hosts: [{HOST}]\n    secretName: own"
    res = parse_manifests(_routing("shop", "shop", HOST, tls=own)
                          + _tls_only("evil", "squat", [HOST], "s") + _secret("evil", "s", ca, HOST)
                          + _secret("shop", "own", ca, HOST, "own.example.test"))
    store, problems = _store(res)
    assert problems == []
    assert _agree(res, store, HOST) == {HOST: True}
    assert _subject(store, HOST) == f"{HOST},own.example.test"


def test_owner_is_the_oldest_ingress_routing_the_host(ca: trustme.CA) -> None:
    # shop.example.test routed by two namespaces: the oldest Ingress (shop's, 2022) owns it, so
    # evil's listing is refused though evil routes a path of the host too (2023)...
    base = (_routing("shop", "shop", HOST, created="2022-01-01T00:00:00Z")
            + _routing("evil", "side", HOST, created="2023-01-01T00:00:00Z", path="/evil")
            + _tls_only("evil", "squat", [HOST], "s") + _secret("evil", "s", ca, HOST))
    res = parse_manifests(base)
    store, problems = _store(res)
    assert [(p.object, "namespace shop (Ingress shop/shop)" in p.message) for p in problems] == [
        ("Ingress evil/squat", True)]
    assert _agree(res, store, HOST) == {HOST: False}
    # ... and applies when evil's routing Ingress is the older one.
    res = parse_manifests(base.replace("2023-01-01", "2021-01-01"))
    store, problems = _store(res)
    assert problems == []
    assert _agree(res, store, HOST) == {HOST: True}
    assert _subject(store, HOST) == HOST


def test_a_canary_does_not_own_the_host(ca: trustme.CA) -> None:
    # A canary of namespace evil for the host (older than shop's Ingress) is no owner.
    canary = _routing("evil", "canary", HOST, created="2019-01-01T00:00:00Z", annotations=(
        "{nginx.ingress.kubernetes.io/canary: 'true', "
        "nginx.ingress.kubernetes.io/canary-weight: '0'}"))
    res = parse_manifests(_squat(ca) + canary)
    store, problems = _store(res)
    assert [p.object for p in problems] == ["Ingress evil/squat"]
    assert _agree(res, store, HOST) == {HOST: False}


def test_a_wildcard_rule_of_another_namespace_owns_the_hosts_under_it(ca: trustme.CA) -> None:
    # shop routes *.example.test (no tls); evil lists a.example.test, which that rule routes.
    res = parse_manifests(_routing("shop", "shop", "*.example.test")
                          + _tls_only("evil", "squat", ["a.example.test"], "s")
                          + _secret("evil", "s", ca, "a.example.test"))
    store, problems = _store(res)
    assert [(p.object, "routed by namespace shop" in p.message) for p in problems] == [
        ("Ingress evil/squat", True)]
    assert _agree(res, store, "a.example.test") == {"a.example.test": False}
    assert _subject(store, "a.example.test") == DEFAULT_CERT_NAME


def test_a_listed_wildcard_does_not_stand_for_another_namespaces_host(ca: trustme.CA) -> None:
    # evil lists *.example.test: it still serves hosts nobody routes, not shop's host.
    res = parse_manifests(_routing("shop", "shop", HOST)
                          + _tls_only("evil", "squat", ["*.example.test"], "w")
                          + _secret("evil", "w", ca, "*.example.test"))
    store, problems = _store(res)
    assert [(p.object, p.field, p.warning) for p in problems] == [
        ("Ingress evil/squat", "spec.tls[0].hosts[0]", True)]
    assert problems[0].message.startswith(
        "'*.example.test' does not stand for 'shop.example.test': it is routed by namespace "
        "shop (Ingress shop/shop)")
    assert _agree(res, store, HOST, "other.example.test") == {
        HOST: False, "other.example.test": True}
    assert _subject(store, HOST) == DEFAULT_CERT_NAME
    assert _subject(store, "other.example.test") == "*.example.test"
    assert store.hosts == {"*.example.test"}


def test_a_listed_wildcard_of_the_same_namespace_still_covers(ca: trustme.CA) -> None:
    res = parse_manifests(_routing("shop", "shop", HOST)
                          + _tls_only("shop", "certs", ["*.example.test"], "w")
                          + _secret("shop", "w", ca, "*.example.test"))
    store, problems = _store(res)
    assert problems == []
    assert _agree(res, store, HOST) == {HOST: True}
    assert _subject(store, HOST) == "*.example.test"


def test_a_wildcard_rule_host_with_tls_still_covers_other_namespaces(ca: trustme.CA) -> None:
    # As in ingress-nginx (module docstring): a *. rule host's certificate serves an exact host
    # another Ingress routes without tls. Unchanged; only listings without a rule are limited.
    res = parse_manifests(_routing("shop", "shop", HOST) + """
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: wild, namespace: certs, creationTimestamp: '2020-01-01T00:00:00Z'}
spec:
  tls:
  - hosts: ['*.example.test']
    secretName: w
  rules:
  - host: '*.example.test'
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: svc, port: {number: 80}}}}
""" + _secret("certs", "w", ca, "*.example.test"))
    store, problems = _store(res)
    assert problems == []
    assert _agree(res, store, HOST) == {HOST: True}
    assert _subject(store, HOST) == "*.example.test"


def test_a_listed_wildcard_is_no_fallback_for_another_namespaces_broken_secret(
        ca: trustme.CA) -> None:
    # shop's own tls names a Secret that does not exist: shop.example.test gets the default
    # certificate (and shop's problem), not evil's listed wildcard (the lookup's "*." fallback).
    own = f"\n  tls:\n  - hosts: [{HOST}]\n    secretName: missing"
    res = parse_manifests(_routing("shop", "shop", HOST, tls=own)
                          + _tls_only("evil", "squat", ["*.example.test"], "w")
                          + _secret("evil", "w", ca, "*.example.test"))
    store, problems = _store(res)
    assert [(p.object, p.field, p.warning) for p in problems] == [
        ("Ingress shop/shop", "spec.tls[0].secretName", False)]
    assert _agree(res, store, HOST, "other.example.test") == {
        HOST: True, "other.example.test": True}
    assert store.context_for(HOST) is store.default_context
    assert _subject(store, "other.example.test") == "*.example.test"
