"""Session 26, round 4: client certificates (``auth-tls-*``) are per server, in IngressASGI too.

nginx writes ``ssl_verify_client`` in the server block of a host (ingress-nginx controller.go
``createServers``: the first Ingress, oldest first, that sets ``auth-tls-secret`` configures the
server), so every location of the host needs the certificate, whichever Ingress routes it, and a
``server-alias`` name of it too (nginx.tmpl "server_name {{ buildServerName $server.Hostname }}
{{ buildServerName $server.Aliases }}"). IngressASGI verifies no certificate: every request of
such a host answers 503 there (it served another Ingress's routes of the host, unverified).

Also: the core's status line of a 421 (and of 303, 429...) carries nginx's reason phrase
(ngx_http_header_filter_module.c ``ngx_http_status_lines``: "421 Misdirected Request"), and
``server_auths`` lowers host names as requests are lowered (ASCII only, ``normalize_host``).
"""

from __future__ import annotations

import asyncio
import base64
import ssl
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_asyncio
import trustme

from ingresslib import parse_manifests
from ingresslib._asgi import IngressASGI
from ingresslib._normalize import normalize_host
from ingresslib._router import Router
from ingresslib._tls import CertificateStore
from ingresslib.proxy import OpenUpstream, Proxy, ProxySettings, SendDownstream
from ingresslib.proxy._clientcert import ClientCert, auth_for_host, server_auths
from ingresslib.proxy._server import ProxyServer

from _proxy_harness import ingress_yaml
from test_asgi_conformance import SERVICE, asgi_call

P = "nginx.ingress.kubernetes.io/"
_CA = trustme.CA()


def _ca_secret() -> str:
    return f"""
---
apiVersion: v1
kind: Secret
metadata: {{name: client-ca, namespace: default}}
type: Opaque
data: {{ca.crt: {base64.b64encode(_CA.cert_pem.bytes()).decode()}}}
"""


def _auth(**more: str) -> dict[str, str]:
    return {P + "auth-tls-secret": "default/client-ca", **more}


def _manifests(*, a_first: bool = True, a_extra: dict[str, str] | None = None,
               b_annotations: dict[str, str] | None = None, a_auth: bool = True) -> str:
    """Ingress ``a`` (``auth-tls-secret``, ``/a``) and Ingress ``b`` (no annotation, ``/b``),
    both on host a.test; ``a_first``: ``a`` is the older one (it owns the server)."""
    a_ann = {**(_auth() if a_auth else {}), **(a_extra or {})}
    a = ingress_yaml("a", "a.test", a_ann, path="/a",
                     created="2024-01-01T00:00:00Z" if a_first else "2024-03-01T00:00:00Z")
    b = ingress_yaml("b", "a.test", b_annotations, path="/b", created="2024-02-01T00:00:00Z")
    other = ingress_yaml("c", "other.test", path="/", created="2024-02-02T00:00:00Z")
    return a + b + other + SERVICE.replace("SVC", "web") + _ca_secret()


# --- IngressASGI: the whole host fails closed ----------------------------------------------------

@pytest.mark.asyncio
@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_asgi_another_ingress_on_an_auth_tls_host_is_503(scheme: str) -> None:
    # Reproduced by the review: a's routes answered 503, b's were served without a certificate.
    m = _manifests()
    for path in ("/a", "/b"):
        got = await asgi_call(f"GET {path} HTTP/1.1\r\nHost: a.test", manifests=m, scheme=scheme)
        assert got.status == 503 and not got.app_ran, (path, got.status)
    # Host as a client may write it: any case, a port, a trailing dot.
    got = await asgi_call("GET /b HTTP/1.1\r\nHost: A.Test.:80", manifests=m, scheme=scheme)
    assert got.status == 503 and not got.app_ran


@pytest.mark.asyncio
async def test_asgi_auth_tls_of_a_newer_ingress_still_holds_for_the_host() -> None:
    # b is older (it owns the server's location /), a is the first Ingress that *sets*
    # auth-tls-secret for the host: nginx's server verifies for every path, b's too.
    m = _manifests(a_first=False)
    got = await asgi_call("GET /b HTTP/1.1\r\nHost: a.test", manifests=m)
    assert got.status == 503 and not got.app_ran


@pytest.mark.asyncio
async def test_asgi_server_alias_of_an_auth_tls_host_is_503() -> None:
    m = _manifests(a_extra={P + "server-alias": "alias.test"})
    for path in ("/a", "/b", "/nothing"):
        got = await asgi_call(f"GET {path} HTTP/1.1\r\nHost: alias.test", manifests=m)
        assert got.status == 503 and not got.app_ran, (path, got.status)


@pytest.mark.asyncio
async def test_asgi_unrouted_path_of_an_auth_tls_host_never_reaches_the_fallback() -> None:
    # b owns the server's location / (older, no annotation): the path no rule covers went to
    # the fallback app unverified; the core refuses it before any location (400/421 on TLS).
    m = _manifests(a_first=False)
    seen: list[Any] = []

    async def fallback(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"fallback"})

    got = await asgi_call("GET /nothing HTTP/1.1\r\nHost: a.test", manifests=m,
                          fallback=fallback)
    assert got.status == 503 and not seen


@pytest.mark.asyncio
async def test_guard_asgi_hosts_without_auth_tls_are_served() -> None:
    m = _manifests(a_extra={P + "server-alias": "alias.test"})
    got = await asgi_call("GET /x HTTP/1.1\r\nHost: other.test", manifests=m)
    assert got.status == 200 and got.app_ran
    # an auth-tls-secret on a canary configures no server (createServers skips canaries)
    canary = _manifests(a_auth=False) + ingress_yaml(
        "a-canary", "a.test", {P + "canary": "true", P + "canary-weight": "0", **_auth()},
        path="/a", created="2024-04-01T00:00:00Z")
    got = await asgi_call("GET /b HTTP/1.1\r\nHost: a.test", manifests=canary)
    assert got.status == 200 and got.app_ran
    # deny-unenforced-access-annotations "false" serves what ingresslib cannot enforce (with
    # its warning): the auth-tls Ingress's routes, so the host's other routes too
    lax = ProxySettings(deny_unenforced_access_annotations=False)
    for path in ("/a", "/b"):
        got = await asgi_call(f"GET {path} HTTP/1.1\r\nHost: a.test", manifests=_manifests(),
                              settings=lax)
        assert got.status == 200 and got.app_ran, path


@pytest.mark.asyncio
async def test_asgi_update_drops_and_adds_the_refusal_with_the_table() -> None:
    # Derived once per route table: an update that removes (adds) the annotation is seen.
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": "/b", "raw_path": b"/b",
             "query_string": b"", "root_path": "", "headers": [(b"host", b"a.test")],
             "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 80)}

    async def ok(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def status(app: IngressASGI) -> int:
        sent: list[Any] = []

        async def receive() -> Any:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(m: Any) -> None:
            sent.append(m)

        await app(dict(scope), receive, send)
        return int(sent[0]["status"])

    app = IngressASGI(Router(parse_manifests(_manifests())), {"default/web": ok})
    assert await status(app) == 503
    app.update(parse_manifests(_manifests(a_auth=False)))
    assert await status(app) == 200
    app.update(parse_manifests(_manifests()))
    assert await status(app) == 503


# --- the core: a server-alias is verified as its host ----------------------------------------------

def _core(m: str, host: str, path: str, *, tls: bool, cert: Any) -> tuple[bytes, bool]:
    res = parse_manifests(m)
    router = Router(res, seed=1)
    store = CertificateStore()
    store.update(res, router.table.served)
    proxy = Proxy(router, client_auth=store.client_auth, clock=None)
    conn = proxy.connection(("127.0.0.1", 40000), tls=tls, now=0.0, client_cert=cert)
    acts = conn.receive_data(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode(), 0.0)
    out = b"".join(a.data for a in acts if isinstance(a, SendDownstream))
    return out, any(isinstance(a, OpenUpstream) for a in acts)


def test_core_server_alias_needs_the_hosts_client_certificate() -> None:
    m = _manifests(a_extra={P + "server-alias": "alias.test"})
    auths, _ = server_auths(Router(parse_manifests(m)).table.served, None, P)
    key = auths["a.test"]
    assert key is not None and auths.get("alias.test") is key
    res = parse_manifests(m)
    store = CertificateStore()
    store.update(res, Router(res).table.served)
    on = store.client_auth("alias.test")
    assert on is not None and on.key == store.client_auth("a.test").key  # type: ignore[union-attr]
    # b's route by the alias, no certificate sent (a handshake made with the host's
    # configuration): nginx's 400, no longer proxied unverified
    out, reached = _core(m, "alias.test", "/b", tls=True, cert=ClientCert(on.key))
    assert out.startswith(b"HTTP/1.1 400 Bad Request") and not reached, out
    assert b"No required SSL certificate was sent" in out
    # a verified certificate passes by the alias, a's route too (it answered 503 before)
    good = ClientCert(on.key, "SUCCESS", "CN=client", "CN=ca")
    for path in ("/a", "/b"):
        out, reached = _core(m, "alias.test", path, tls=True, cert=good)
        assert out == b"" and reached, (path, out)
    # the alias's handshake asks for the certificate
    assert store.context_for("alias.test").verify_mode == ssl.CERT_OPTIONAL


@pytest.mark.asyncio
async def test_alias_of_a_host_without_auth_tls_is_not_taken_for_a_wildcard_host() -> None:
    # *.x.test verifies; b.x.test is an alias of plain.test, which does not: nginx picks the
    # exact server_name (plain.test's server) before the wildcard one, and verifies nothing.
    # The core took *.x.test's configuration for it (421 / 400 on TLS).
    m = ingress_yaml("w", "*.x.test", _auth(), path="/", created="2024-01-01T00:00:00Z") \
        + ingress_yaml("p", "plain.test", {P + "server-alias": "b.x.test"}, path="/",
                       created="2024-02-01T00:00:00Z") \
        + SERVICE.replace("SVC", "web") + _ca_secret()
    out, reached = _core(m, "b.x.test", "/", tls=True, cert=None)
    assert out == b"" and reached, out[:60]
    out, reached = _core(m, "c.x.test", "/", tls=True, cert=None)   # the wildcard's own
    assert out.startswith(b"HTTP/1.1 421 ") and not reached
    got = await asgi_call("GET / HTTP/1.1\r\nHost: b.x.test", manifests=m)
    assert got.status == 200 and got.app_ran
    got = await asgi_call("GET / HTTP/1.1\r\nHost: c.x.test", manifests=m)
    assert got.status == 503 and not got.app_ran


def test_core_unrouted_path_of_an_auth_tls_host_is_refused_before_any_location() -> None:
    # What IngressASGI's 503 stands for: the core answers the host before routing.
    m = _manifests(a_first=False)
    res = parse_manifests(m)
    store = CertificateStore()
    store.update(res, Router(res).table.served)
    auth = store.client_auth("a.test")
    assert auth is not None
    out, reached = _core(m, "a.test", "/nothing", tls=True, cert=ClientCert(auth.key))
    assert out.startswith(b"HTTP/1.1 400 ") and not reached
    # plain HTTP: nginx verifies nothing there (the 404 of the default backend)
    out, reached = _core(m, "a.test", "/nothing", tls=False, cert=None)
    assert out.startswith(b"HTTP/1.1 404 ")


# --- end to end: an alias's TLS handshake and request --------------------------------------------

@pytest_asyncio.fixture
async def alias_server() -> AsyncIterator[tuple[ProxyServer, trustme.CA, int]]:
    server_ca = trustme.CA()

    async def backend(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            await r.readuntil(b"\r\n\r\n")
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await w.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            w.close()

    srv = await asyncio.start_server(backend, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    leaf = server_ca.issue_cert("a.test", "alias.test")
    tls = f"""
---
apiVersion: v1
kind: Secret
metadata: {{name: a-tls, namespace: default}}
type: kubernetes.io/tls
data:
  tls.crt: {base64.b64encode(b"".join(p.bytes() for p in leaf.cert_chain_pems)).decode()}
  tls.key: {base64.b64encode(leaf.private_key_pem.bytes()).decode()}
"""
    docs = (ingress_yaml("a", "a.test", _auth(**{P + "server-alias": "alias.test"}),
                         tls=True, path="/a", created="2024-01-01T00:00:00Z")
            + ingress_yaml("b", "a.test", path="/b", created="2024-02-01T00:00:00Z")
            + f"""
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
ports: [{{port: {port}}}]
endpoints: [{{addresses: [127.0.0.1]}}]
""" + tls + _ca_secret())
    res = parse_manifests(docs)
    store = CertificateStore()
    store.update(res)
    proxy = ProxyServer(Router(res), cert_store=store, client_header_timeout=3)
    await proxy.start(("127.0.0.1", 0), ("127.0.0.1", 0))
    try:
        yield proxy, server_ca, [a for a in proxy.addresses if a[0] == "https"][0][2]
    finally:
        await proxy.shutdown(0.5)
        srv.close()
        await srv.wait_closed()


async def _https_get(port: int, ctx: ssl.SSLContext, sni: str, path: str) -> bytes:
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection(
            "127.0.0.1", port, ssl=ctx, server_hostname=sni), 3)
        w.write(f"GET {path} HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n".encode())
        data = await asyncio.wait_for(r.read(), 3)
        w.close()
        return data
    except (ssl.SSLError, ConnectionError, OSError):
        return b""


@pytest.mark.asyncio
async def test_server_alias_over_tls_asks_for_the_certificate(
        alias_server: tuple[ProxyServer, trustme.CA, int]) -> None:
    _proxy, server_ca, port = alias_server
    ctx = ssl.create_default_context()
    server_ca.configure_trust(ctx)
    # b's route by the alias without a client certificate: refused (it was proxied)
    got = await _https_get(port, ctx, "alias.test", "/b")
    assert got.startswith(b"HTTP/1.1 400 "), got[:80]
    with_cert = ssl.create_default_context()
    server_ca.configure_trust(with_cert)
    _CA.issue_cert("client.test").configure_cert(with_cert)
    for path in ("/a", "/b"):
        got = await _https_get(port, with_cert, "alias.test", path)
        assert got.startswith(b"HTTP/1.1 200 "), (path, got[:80])


# --- reason phrases ------------------------------------------------------------------------------

def test_core_421_carries_its_reason_phrase() -> None:
    m = _manifests()
    out, _ = _core(m, "a.test", "/a", tls=True, cert=None)   # a handshake that verified nothing
    assert out.startswith(b"HTTP/1.1 421 Misdirected Request\r\n"), out[:60]
    assert out.endswith(b"421 Misdirected Request\n")


def test_core_configurable_statuses_carry_nginx_s_phrases() -> None:
    # permanent-redirect-code 303 and limit-req-status-code 429: statuses nginx writes with a
    # phrase (ngx_http_status_lines); the core wrote "HTTP/1.1 303 " and "HTTP/1.1 429 ".
    m = ingress_yaml("r", "r.test", {P + "permanent-redirect": "https://x.test/",
                                     P + "permanent-redirect-code": "303"}) \
        + ingress_yaml("l", "l.test", {P + "limit-rps": "1", P + "limit-burst-multiplier": "1"}) \
        + SERVICE.replace("SVC", "web")
    router = Router(parse_manifests(m), seed=1)
    proxy = Proxy(router, ProxySettings(limit_req_status_code=429), clock=None)
    conn = proxy.connection(("127.0.0.1", 40000), tls=False, now=0.0)
    acts = conn.receive_data(b"GET / HTTP/1.1\r\nHost: r.test\r\n\r\n", 0.0)
    out = b"".join(a.data for a in acts if isinstance(a, SendDownstream))
    assert out.startswith(b"HTTP/1.1 303 See Other\r\n"), out[:60]
    statuses = []
    for i in range(8):
        conn = proxy.connection(("127.0.0.1", 40001 + i), tls=False, now=0.0)
        acts = conn.receive_data(b"GET / HTTP/1.1\r\nHost: l.test\r\n\r\n", 0.0)
        out = b"".join(a.data for a in acts if isinstance(a, SendDownstream))
        if out:
            statuses.append(out.split(b"\r\n")[0])
    assert b"HTTP/1.1 429 Too Many Requests" in statuses, statuses


def test_every_phrase_nginx_writes_is_known() -> None:
    from ingresslib.proxy._headers import REASONS, local_body

    # ngx_http_status_lines: the statuses nginx writes with a phrase (RFC 9110's wording here)
    nginx = {200, 201, 202, 204, 206, 301, 302, 303, 304, 307, 308, 400, 401, 402, 403, 404,
             405, 406, 408, 409, 410, 411, 412, 413, 414, 415, 416, 421, 429, 500, 501, 502,
             503, 504, 505, 507}
    # of those, the ones ingresslib itself can answer (its own answers and configurable ones)
    answered = {200, 204, 301, 302, 303, 307, 308} | {s for s in nginx if s >= 400}
    missing = sorted(s for s in answered if s not in REASONS)
    assert not missing, missing
    assert local_body(421) == b"421 Misdirected Request\n"
    # nginx's own codes never reach the wire (ngx_http_special_response_handler sends 400)
    assert not {494, 495, 496, 497, 499} & REASONS.keys()


# --- server_auths lowers as requests are lowered ----------------------------------------------

def _ing(name: str, host: str, annotations: dict[str, str]) -> Any:
    return SimpleNamespace(
        metadata=SimpleNamespace(name=name, namespace="default", annotations=annotations),
        spec=SimpleNamespace(rules=[SimpleNamespace(host=host)]))


def test_server_auths_lowers_ascii_only_as_normalize_host() -> None:
    # Unicode lower() made "\u212a.test" (Kelvin sign) the key of k.test: k.test, another
    # server, was refused for it; and "\u00c0.test" the key of "\u00e0.test", so a request
    # for "\u00c0.test" itself (lowered ASCII only) found no configuration: unverified.
    auths, _ = server_auths([_ing("a", "\u212a.test", _auth()),
                             _ing("b", "\u00c0.test", _auth()),
                             _ing("c", "k.test", {})], None, P)
    assert auth_for_host(auths, normalize_host("k.test") or "") is None
    assert auth_for_host(auths, normalize_host("\u00c0.test") or "") is not None
    assert auth_for_host(auths, normalize_host("\u00c0.TEST.") or "") is not None
    assert set(auths) == {"\u212a.test", "\u00c0.test", "k.test"}
