"""A new user's walk through the four ways to use ingresslib (session 34, x22).

Written from what a user reads (README "Installing" and "Four ways to use it",
../shared/CONTRACT.md, ingresslib/proxy/API.md, the docstrings, examples/): the three programs
such a user writes, as tests. The README's own ```python blocks already run as written
(tests/test_docs.py ``test_readme_python_blocks_run``).

Defect found and fixed (the test failed before the fix):

* ``ProxyServer.start("127.0.0.1:8080")``, the form of ``serve --listen`` and of the README's
  command lines, took the string's characters as host and port: ``OSError: error while
  attempting to bind on address ('0.0.0.1', 2)``; an int port alone, ``'int' object is not
  subscriptable``. ``start`` now refuses anything but a ``(host, port)`` pair, before binding
  anything, with a ``TypeError`` that shows the form.
* ``ProxyServer(res)`` (a ``Resources``, which ``IngressASGI`` takes) started, then dropped every
  connection without an answer, an ``AttributeError`` in the log at each request. ``Proxy`` (so
  ``ProxyServer``) now refuses a router without ``route()`` with a ``TypeError`` that says to
  pass ``ingresslib.Router(res)`` (None, no router yet, stays allowed).

Documented (README, behaviour kept, tests below hold it): a backend no app is mounted for
(the demo's 10 % canary) answers 503 in ``IngressASGI``. (``RouteTable.match`` and
``Router.route`` routed a malformed Host by what it spells; since session 34's h2 they raise
``BadRequestError`` (400) for it, as the proxy and ``IngressASGI`` answer: test below.)
"""

from __future__ import annotations

import asyncio
import collections
import json
import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

import ingresslib
from ingresslib.proxy import CertificateStore, ProxyServer

from _asgi_call import asgi_get

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "examples" / "demo" / "demo.yaml"


# --- 1. a gateway: which backend for this URL? ----------------------------------------------------


def _backend_of(m: ingresslib.Match | None) -> tuple[Any, ...] | None:
    return None if m is None else (m.ingress, m.service, m.port, m.path)


def test_gateway_answers_which_backend_for_the_demo_manifests() -> None:
    table = ingresslib.RouteTable.build(ingresslib.load_manifests(DEMO), ingress_class="nginx")
    found = {(host, path): _backend_of(table.match(host, path))
             for host, path in [("EXAMPLE.test:80", "/guest/x?q=1"), ("example.test", "/admin"),
                                ("t1.example.test", "/z"), ("a.b.example.test", "/"),
                                ("example.test", "/%67uest")]}
    assert found == {
        ("EXAMPLE.test:80", "/guest/x?q=1"): ("default/fanout", "guest", 80, "/guest"),
        ("example.test", "/admin"): ("default/fanout", "admin", "http", "/admin"),
        ("t1.example.test", "/z"): ("default/wildcard", "tenants", 80, "/"),
        ("a.b.example.test", "/"): None,   # a `*.` host covers one label
        ("example.test", "/%67uest"): ("default/fanout", "guest", 80, "/guest"),
    }


@pytest.mark.parametrize("path, reason", [
    ("/../../etc/passwd", "'..' above the root"), ("/a/%00", "forbidden escape %00"),
    ("/x%2f..%2f..", "forbidden escape %2f"), ("/a b", "invalid character"),
    ("relative", "does not start with '/'"), ("/x#frag", "'#' in request target")])
def test_hostile_paths_raise_bad_request_from_table_and_router(path: str, reason: str) -> None:
    res = ingresslib.load_manifests(DEMO)
    router = ingresslib.Router(res, ingress_class="nginx", seed=1)
    for ask in (lambda: router.table.match("example.test", path),
                lambda: router.route("GET", "example.test", path)):
        with pytest.raises(ingresslib.BadRequestError, match=reason) as err:
            ask()
        assert err.value.status_hint == 400 and isinstance(err.value, ValueError)


def test_route_and_match_refuse_a_malformed_host() -> None:
    """README: ``match`` and ``route`` refuse a Host the proxy refuses (400, session 34 h2:
    they routed it by what it spells, a ``*.`` rule, the exact host with its port dropped),
    as IngressASGI answers it."""
    table = ingresslib.RouteTable.build(ingresslib.load_manifests(DEMO))
    for h in ["a b.example.test", "example.test:x"]:
        with pytest.raises(ingresslib.BadRequestError):
            table.match(h, "/guest")
    res = ingresslib.parse_manifests(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: all}\nspec:\n"
        "  rules:\n  - http: {paths: [{path: /, pathType: Prefix, "
        "backend: {service: {name: web, port: {number: 80}}}}]}\n")
    router = ingresslib.Router(res)
    for host in ["a b", "x\r\nevil", "user@h", "h:abc"]:
        with pytest.raises(ingresslib.BadRequestError):
            router.table.match(host, "/")
        with pytest.raises(ingresslib.BadRequestError):
            router.route("GET", host, "/")

    async def web(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    app = ingresslib.IngressASGI(res, backends={"default/web:80": web})
    assert [asgi_get(app, h, "/")[0] for h in ["a b", "user@h", "h:abc", "ok.test"]] == \
        [400, 400, 400, 200]


def test_bad_manifest_error_names_file_object_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "web.yaml"
    web = "backend: {service: {name: web, port: {number: %d}}}"
    bad.write_text(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web, namespace: shop}\n"
        "spec:\n  rules:\n  - host: shop.example.com\n    http:\n      paths:\n"
        f"      - {{path: foo, pathType: Prefix, {web % 80}}}\n"
        f"      - {{path: /x, pathType: Wrong, {web % 99999}}}\n"
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n"
        "spec: {ports: [{port: 80}], typo: 1}\n", encoding="utf-8")
    with pytest.raises(ingresslib.ValidationError) as err:
        ingresslib.load_manifests(tmp_path)
    lines = str(err.value).splitlines()
    assert lines == [
        f'{bad}: Ingress shop/web: spec.rules[0].http.paths[0].path: Invalid value: "foo": '
        "must be an absolute path",
        f'{bad}: Ingress shop/web: spec.rules[0].http.paths[1].pathType: Unsupported value: '
        '"Wrong": supported values: "Exact", "ImplementationSpecific", "Prefix"',
        f"{bad}: Ingress shop/web: spec.rules[0].http.paths[1].backend.service.port.number: "
        "Invalid value: 99999: must be between 1 and 65535, inclusive",
    ]
    assert {(e.object, e.field) for e in err.value.errors} == {
        ("Ingress shop/web", "spec.rules[0].http.paths[0].path"),
        ("Ingress shop/web", "spec.rules[0].http.paths[1].pathType"),
        ("Ingress shop/web", "spec.rules[0].http.paths[1].backend.service.port.number")}
    assert [(w.object, w.field) for w in err.value.warnings] == [("Service shop/web", "spec.typo")]


# --- 2. IngressASGI in front of two ASGI apps, in process -----------------------------------------


def _named_app(name: str) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            return
        body = json.dumps({"app": name, "path": scope["path"], "root_path": scope["root_path"],
                           "backend": scope["ingresslib.decision"].backend}).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})
    return app


async def _get_all(app: Any, paths: list[str], host: str = "example.test") -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=f"http://{host}") as client:
        return [await client.get(p) for p in paths]


def test_asgi_routes_two_apps_by_the_demo_rules() -> None:
    router = ingresslib.Router(ingresslib.load_manifests(DEMO), ingress_class="nginx", seed=1)
    app = ingresslib.IngressASGI(router, backends={"default/web:80": _named_app("web"),
                                                   "default/guest": _named_app("guest")})
    got = asyncio.run(_get_all(app, ["/guest/list", "/admin", "/%2e%2e/guest"]))
    assert got[0].json() == {"app": "guest", "path": "/guest/list", "root_path": "/guest",
                             "backend": "default/guest:80"}
    assert [r.status_code for r in got[1:]] == [503, 400]   # admin: no app; '..' above the root
    (nowhere,) = asyncio.run(_get_all(app, ["/"], host="nowhere.test"))
    assert nowhere.status_code == 404


@pytest.mark.parametrize("mount_canary", [False, True])
def test_asgi_canary_share_needs_its_own_app(mount_canary: bool) -> None:
    """The demo sends 10 % of example.test/ to web-v2: unmounted, those answer 503 (README)."""
    backends = {"default/web:80": _named_app("web")}
    if mount_canary:
        backends["default/web-v2:80"] = _named_app("web-v2")
    router = ingresslib.Router(ingresslib.load_manifests(DEMO), ingress_class="nginx", seed=7)
    app = ingresslib.IngressASGI(router, backends=backends)
    answers = collections.Counter(
        r.json()["app"] if r.status_code == 200 else r.status_code
        for r in asyncio.run(_get_all(app, ["/"] * 100)))
    assert answers["web"] > 70
    assert set(answers) == ({"web", "web-v2"} if mount_canary else {"web", 503})


# --- 3. the reverse proxy embedded in an asyncio program, HTTP and HTTPS by SNI ------------------


async def _backend(name: str) -> tuple[asyncio.Server, int]:
    """A tiny HTTP/1.1 backend on 127.0.0.1 answering JSON about what it got."""
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        fields = {k.lower(): v for k, v in (ln.split(": ", 1) for ln in head[1:] if ln)}
        body = json.dumps({"backend": name, "line": head[0], "host": fields.get("host"),
                           "proto": fields.get("x-forwarded-proto")}).encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def _two_hosts(ports: list[int], ca: trustme.CA) -> ingresslib.Resources:
    """a.test and b.test, each its Ingress (with TLS), Service, Endpoints and TLS Secret."""
    objs: list[dict[str, Any]] = []
    for name, port in zip("ab", ports):
        host, cert = f"{name}.test", ca.issue_cert(f"{name}.test")
        objs += [
            {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name},
             "spec": {"tls": [{"hosts": [host], "secretName": f"{name}-tls"}],
                      "rules": [{"host": host, "http": {"paths": [{
                          "path": "/", "pathType": "Prefix",
                          "backend": {"service": {"name": name, "port": {"number": 80}}}}]}}]}},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
             "spec": {"ports": [{"port": 80, "targetPort": port}]}},
            {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name},
             "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": [{"port": port}]}]},
            {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"{name}-tls"},
             "type": "kubernetes.io/tls",
             "stringData": {"tls.crt": cert.cert_chain_pems[0].bytes().decode(),
                            "tls.key": cert.private_key_pem.bytes().decode()}},
        ]
    return ingresslib.Resources.from_dicts(objs)


async def _https_get(port: int, ctx: ssl.SSLContext, host: str) -> tuple[bytes, Any]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                                   server_hostname=host)
    writer.write(f"GET /y HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    answer = await reader.read()
    peer = writer.get_extra_info("peercert")
    writer.close()
    return answer, peer


async def _walk_the_embedded_proxy() -> dict[str, Any]:
    (srv_a, port_a), (srv_b, port_b) = await _backend("A"), await _backend("B")
    ca = trustme.CA()
    res = _two_hosts([port_a, port_b], ca)
    router = ingresslib.Router(res)
    store = CertificateStore()
    out: dict[str, Any] = {"problems": store.update(res, router.table.served)}
    server = ProxyServer(router, cert_store=store)
    await server.start(("127.0.0.1", 0), tls_listen=("127.0.0.1", 0))
    http_url, https_url = server.urls
    tls_port = int(https_url.rsplit(":", 1)[1])
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    async with server:
        async with httpx.AsyncClient() as client:
            out["http"] = [(r.status_code, r.headers.get("location")) for r in [
                await client.get(f"{http_url}/x", headers={"Host": h})
                for h in ["a.test", "c.test"]]]
        for host in ["a.test", "b.test"]:
            answer, peer = await _https_get(tls_port, ctx, host)
            out[host] = (answer.split(b"\r\n", 1)[0], json.loads(answer.rsplit(b"\r\n", 1)[1]),
                         peer["subjectAltName"])
    out["draining"] = server.draining
    srv_a.close()
    srv_b.close()
    return out


def test_embedded_proxy_serves_http_and_https_by_sni() -> None:
    out = asyncio.run(asyncio.wait_for(_walk_the_embedded_proxy(), 20))
    assert out["problems"] == []
    tls_port = out["http"][0][1].rsplit(":", 1)[1].split("/")[0]
    # A TLS host on plain HTTP: ssl-redirect's 308 to the HTTPS listener; no rule: 404.
    assert out["http"] == [(308, f"https://a.test:{tls_port}/x"), (404, None)]
    for host, name in [("a.test", "A"), ("b.test", "B")]:
        status, body, san = out[host]
        assert status == b"HTTP/1.1 200 OK" and san == (("DNS", host),)
        assert body == {"backend": name, "line": "GET /y HTTP/1.1", "host": host,
                        "proto": "https"}
    assert out["draining"] is True


# --- the defect: start() given "host:port" ----------------------------------------------------


@pytest.mark.parametrize("where", ["listen", "tls_listen"])
@pytest.mark.parametrize("address", ["127.0.0.1:0", 8080, ("127.0.0.1",), ("127.0.0.1", 0, 0)])
def test_start_refuses_what_is_no_host_port_pair(where: str, address: Any) -> None:
    async def start() -> ProxyServer:
        server = ProxyServer(ingresslib.Router(ingresslib.Resources()))
        kwargs = {"listen": None, where: address}
        try:
            with pytest.raises(TypeError, match=r"\(host, port\) pair.*\('127\.0\.0\.1', 8080\)"):
                await server.start(**kwargs)
        finally:
            await server.shutdown(0)
        return server

    server = asyncio.run(start())
    assert server.urls == [] and not server.servers   # nothing was bound


# --- the defect: a Resources where the router goes ------------------------------------------


def test_proxy_and_server_refuse_resources_in_place_of_a_router() -> None:
    """``IngressASGI(res, ...)`` takes Resources; ``ProxyServer(res)`` took them too, started,
    and then dropped every connection without an answer (``AttributeError: 'Resources'
    object has no attribute 'route'`` in the log at each request). Refused at construction."""
    res = ingresslib.load_manifests(DEMO)

    async def build() -> None:
        ProxyServer(res)

    for build_it in (lambda: asyncio.run(build()), lambda: ingresslib.Proxy(res)):
        with pytest.raises(TypeError, match=r"ingresslib\.Router\(res\)"):
            build_it()
    assert ingresslib.Proxy(ingresslib.Router(res)).router is not None
