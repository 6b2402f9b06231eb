"""IngressASGI behind a real ASGI server (uvicorn on 127.0.0.1) with real clients."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn

from ingresslib._asgi import DECISION_KEY, IngressASGI
from ingresslib._load import parse_manifests
from ingresslib._router import Router

pytestmark = pytest.mark.network

MANIFESTS = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: shop, namespace: default}
spec:
  rules:
  - host: shop.test
    http:
      paths:
      - {path: /api, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}
      - {path: /exact, pathType: Exact, backend: {service: {name: api, port: {number: 80}}}}
      - {path: /static/, pathType: Prefix, backend: {service: {name: static, port: {name: http}}}}
      - {path: /ghost, pathType: Prefix, backend: {service: {name: ghost, port: {number: 80}}}}
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: default}
spec: {ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: api-1, namespace: default, labels: {kubernetes.io/service-name: api}}
addressType: IPv4
ports: [{port: 8080}]
endpoints: [{addresses: [10.0.0.1]}]
"""


def echo(name: str) -> Any:
    """An ASGI app answering with what it saw."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                kind = msg["type"].rpartition(".")[2]
                LIFESPAN.append((name, kind))
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        d = scope[DECISION_KEY]
        seen = {"app": name, "path": scope["path"], "root_path": scope["root_path"],
                "raw_path": scope["raw_path"].decode(), "query": scope["query_string"].decode(),
                "backend": d.backend if d else None, "rule": d.match.path if d else None}
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "text": json.dumps(seen)})
            await send({"type": "websocket.close", "code": 1000})
            return
        body = json.dumps(seen).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return app


LIFESPAN: list[tuple[str, str]] = []


class Served:
    def __init__(self, app: Any, *, root_path: str = "") -> None:
        self.config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on",
                                     log_level="warning", ws="wsproto", root_path=root_path)
        self.server = uvicorn.Server(self.config)
        self.task: asyncio.Task[None] | None = None
        self.port = 0

    async def __aenter__(self) -> Served:
        self.task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            assert not self.task.done(), "uvicorn did not start"
            await asyncio.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.should_exit = True
        assert self.task is not None
        await asyncio.wait_for(self.task, 10)

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}",
                                 headers={"host": "shop.test"})

    async def raw(self, request: bytes) -> tuple[int, bytes]:
        """Send bytes as they are (httpx would normalise the path first)."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            writer.write(request)
            await writer.drain()
            # Connection: close, so the response ends at EOF.
            data = await asyncio.wait_for(reader.read(), 5)
            status = int(data.split(b" ", 2)[1])
            return status, data.partition(b"\r\n\r\n")[2]
        finally:
            writer.close()
            await writer.wait_closed()

    async def get_raw(self, target: str, host: str = "shop.test") -> tuple[int, bytes]:
        return await self.raw(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n"
                              "Connection: close\r\n\r\n".encode())


APPS = {"default/api:80": echo("api"), "default/static:http": echo("static"),
        "default/web": echo("web")}


@pytest_asyncio.fixture
async def served() -> AsyncIterator[Served]:
    LIFESPAN.clear()
    app = IngressASGI(parse_manifests(MANIFESTS), backends=APPS)
    async with Served(app) as s:
        yield s


# -- routing and the scope ------------------------------------------------------------------


@pytest.mark.asyncio
async def test_prefix_rule_extends_root_path(served: Served) -> None:
    async with served.client() as c:
        r = await c.get("/api/users", params={"x": "1"})
    assert r.status_code == 200
    assert r.json() == {"app": "api", "path": "/api/users", "root_path": "/api",
                        "raw_path": "/api/users", "query": "x=1",
                        "backend": "default/api:80", "rule": "/api"}


@pytest.mark.asyncio
async def test_exact_rule_leaves_root_path(served: Served) -> None:
    async with served.client() as c:
        r = await c.get("/exact")
    assert r.json()["root_path"] == "" and r.json()["path"] == "/exact"


@pytest.mark.asyncio
async def test_prefix_with_trailing_slash_and_named_port(served: Served) -> None:
    async with served.client() as c:
        r = await c.get("/static/css/a.css")
    assert r.json()["app"] == "static"
    assert r.json()["root_path"] == "/static"
    assert r.json()["backend"] == "default/static:http"


@pytest.mark.asyncio
async def test_catch_all_prefix_and_service_key_without_port(served: Served) -> None:
    async with served.client() as c:
        r = await c.get("/anything")
    assert r.json()["app"] == "web" and r.json()["root_path"] == ""


@pytest.mark.asyncio
async def test_canonical_path_from_raw_path(served: Served) -> None:
    status, body = await served.get_raw("/api/./v1//x/%7euser/../me%3f")
    assert status == 200
    seen = json.loads(body)
    # Routed on the canonical path, and the app sees that same path.
    assert seen["raw_path"] == "/api/v1/x/me%3F"
    assert seen["path"] == "/api/v1/x/me?"
    assert seen["app"] == "api"


@pytest.mark.parametrize("target", ["/../etc/passwd", "/api/a%2fb", "/api/%zz", "/a/..;/api"])
@pytest.mark.asyncio
async def test_paths_without_canonical_form_get_400(served: Served, target: str) -> None:
    status, _ = await served.get_raw(target)
    assert status == 400


@pytest.mark.asyncio
async def test_no_rule_is_404_and_no_mounted_app_is_503(served: Served) -> None:
    async with served.client() as c:
        r = await c.get("/", headers={"host": "elsewhere.test"})
        assert r.status_code == 404 and r.text == "404 Not Found\n"
        r = await c.get("/ghost/x")
        assert r.status_code == 503


@pytest.mark.asyncio
async def test_host_header_any_case_with_port(served: Served) -> None:
    async with served.client() as c:
        r = await c.get("/api", headers={"host": "SHOP.test:8080"})
    assert r.json()["app"] == "api"


@pytest.mark.asyncio
async def test_fallback_app_serves_unrouted_requests() -> None:
    app = IngressASGI(parse_manifests(MANIFESTS), backends=APPS, fallback=echo("fallback"))
    async with Served(app) as s, s.client() as c:
        r = await c.get("/x", headers={"host": "elsewhere.test"})
        assert r.json()["app"] == "fallback" and r.json()["backend"] is None
        r = await c.get("/ghost/y")
        # The Decision is there, even though no app plays its backend.
        assert r.json()["app"] == "fallback" and r.json()["backend"] == "default/ghost:80"
        assert r.json()["root_path"] == ""


@pytest.mark.asyncio
async def test_require_endpoints() -> None:
    app = IngressASGI(parse_manifests(MANIFESTS), backends=APPS, require_endpoints=True)
    async with Served(app) as s, s.client() as c:
        assert (await c.get("/api")).status_code == 200   # api has a ready endpoint
        assert (await c.get("/other")).status_code == 503  # web has none


@pytest.mark.asyncio
async def test_server_root_path() -> None:
    # uvicorn --root-path /mnt: path and raw_path include it (uvicorn >= 0.54), and so do the
    # app's, as a Starlette Mount hands them on: path is raw_path percent-decoded.
    app = IngressASGI(parse_manifests(MANIFESTS), backends=APPS)
    async with Served(app, root_path="/mnt") as s, s.client() as c:
        r = await c.get("/api/users")
    assert r.json()["root_path"] == "/mnt/api"
    assert r.json()["path"] == "/mnt/api/users"
    assert r.json()["raw_path"] == "/mnt/api/users"


@pytest.mark.asyncio
async def test_update_swaps_rules(served: Served) -> None:
    app = served.config.app
    assert isinstance(app, IngressASGI)
    async with served.client() as c:
        assert (await c.get("/new/x")).json()["app"] == "web"
        app.update(parse_manifests(MANIFESTS.replace("path: /ghost", "path: /new")
                                   .replace("name: ghost", "name: api")))
        r = await c.get("/new/x")
    assert r.json()["app"] == "api" and r.json()["root_path"] == "/new"


# -- websocket ------------------------------------------------------------------------------


async def _ws(s: Served, target: str, host: str = "shop.test") -> tuple[int, bytes]:
    req = (f"GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\n\r\n").encode()
    return await s.raw(req)


def _first_text_frame(data: bytes) -> str:
    assert data[0] == 0x81  # FIN + text
    n = data[1] & 0x7F
    offset = 2
    if n == 126:
        n, offset = int.from_bytes(data[2:4], "big"), 4
    return data[offset:offset + n].decode()


@pytest.mark.asyncio
async def test_websocket_is_routed(served: Served) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(b"GET /api/ws HTTP/1.1\r\nHost: shop.test\r\nUpgrade: websocket\r\n"
                 b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 b"Sec-WebSocket-Version: 13\r\n\r\n")
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101")
    frame = await asyncio.wait_for(reader.read(65536), 5)
    seen = json.loads(_first_text_frame(frame))
    writer.close()
    await writer.wait_closed()
    assert seen["app"] == "api" and seen["root_path"] == "/api" and seen["path"] == "/api/ws"


@pytest.mark.asyncio
async def test_websocket_without_route_is_refused(served: Served) -> None:
    # uvicorn offers the websocket.http.response extension: the refusal keeps its status.
    status, _ = await _ws(served, "/x", host="elsewhere.test")
    assert status == 404


async def _refused_websocket(path: str, host: bytes, **extra: Any) -> list[dict[str, Any]]:
    """Drive a websocket connect straight into the app; the messages it sends back."""
    app = IngressASGI(parse_manifests(MANIFESTS), backends=APPS)
    sent: list[dict[str, Any]] = []

    async def send(m: Any) -> None:
        sent.append(dict(m))

    async def receive() -> Any:
        return {"type": "websocket.connect"}

    scope = {"type": "websocket", "path": path, "raw_path": path.encode(), "root_path": "",
             "query_string": b"", "headers": [(b"host", host)], **extra}
    await app(scope, receive, send)
    return sent


@pytest.mark.asyncio
async def test_websocket_refusal_without_extension_closes() -> None:
    sent = await _refused_websocket("/", b"elsewhere.test")
    assert sent == [{"type": "websocket.close", "code": 1008}]


@pytest.mark.asyncio
async def test_websocket_refusal_uses_http_response_extension() -> None:
    sent = await _refused_websocket("/ghost", b"shop.test",
                                    extensions={"websocket.http.response": {}})
    assert sent[0]["type"] == "websocket.http.response.start" and sent[0]["status"] == 503
    assert sent[1] == {"type": "websocket.http.response.body", "body": b"503 Service Unavailable\n"}


# -- lifespan -------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_lifespan_reaches_every_mounted_app() -> None:
    LIFESPAN.clear()
    app = IngressASGI(parse_manifests(MANIFESTS), backends=APPS)
    async with Served(app):
        assert sorted(LIFESPAN) == [("api", "startup"), ("static", "startup"), ("web", "startup")]
    assert sorted(n for n, k in LIFESPAN if k == "shutdown") == ["api", "static", "web"]


async def _drive_lifespan(app: IngressASGI) -> list[dict[str, Any]]:
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    sent: list[dict[str, Any]] = []

    async def send(m: Any) -> None:
        sent.append(dict(m))

    for t in ("lifespan.startup", "lifespan.shutdown"):
        inbox.put_nowait({"type": t})
    await asyncio.wait_for(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                               inbox.get, send), 5)
    return sent


@pytest.mark.asyncio
async def test_lifespan_failure_and_unsupported_apps() -> None:
    async def no_lifespan(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"  # raises on lifespan: unsupported, as uvicorn reads it

    async def failing(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    app = IngressASGI(parse_manifests(MANIFESTS), backends={"default/web": no_lifespan})
    assert [m["type"] for m in await _drive_lifespan(app)] == [
        "lifespan.startup.complete", "lifespan.shutdown.complete"]

    app = IngressASGI(parse_manifests(MANIFESTS),
                      backends={"default/web": no_lifespan, "default/api": failing})
    sent = await _drive_lifespan(app)
    assert sent[0] == {"type": "lifespan.startup.failed", "message": "no database"}


# -- construction ---------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["web", "default/", "/web", "default/web:", "default/:80"])
def test_bad_backend_keys(key: str) -> None:
    with pytest.raises(ValueError, match="namespace/service"):
        IngressASGI(parse_manifests(MANIFESTS), backends={key: echo("x")})


def test_backend_lookup_order() -> None:
    router = Router(parse_manifests(MANIFESTS))
    by_written, by_target, by_service = echo("1"), echo("2"), echo("3")
    d = router.route("GET", "shop.test", "/api")
    assert d is not None and d.port == 8080
    assert IngressASGI(router, {"default/api:80": by_written, "default/api:8080": by_target,
                                "default/api": by_service}).backend_for(d) is by_written
    assert IngressASGI(router, {"default/api:8080": by_target,
                                "default/api": by_service}).backend_for(d) is by_target
    assert IngressASGI(router, {"default/api": by_service}).backend_for(d) is by_service
    assert IngressASGI(router, {"other/api": by_service}).backend_for(d) is None


# -- the example service --------------------------------------------------------------------


@pytest.mark.asyncio
async def test_example_asgi_app() -> None:
    import runpy
    from pathlib import Path

    example = Path(__file__).resolve().parent.parent / "examples" / "asgi_app.py"
    app = runpy.run_path(str(example))["app"]
    async with Served(app) as s:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{s.port}",
                                     headers={"host": "shop.example.test"}) as c:
            r = await c.get("/api/items")
            assert r.status_code == 200
            assert r.json()["served_by"] == "shop/api:80" and len(r.json()["items"]) == 2
            assert (await c.get("/api/nope")).status_code == 404
            r = await c.get("/about")
            assert r.status_code == 200 and "/about" in r.text
            assert (await c.get("/", headers={"host": "other.test"})).status_code == 404


# -- conformance review: the ASGI HTTP spec and parity with the proxy ------------------------
#
# asgiref specs/www.rst (HTTP & WebSocket ASGI Message Format 2.5) and specs/lifespan.rst 2.0.
# IngressASGI is the application side of ASGI towards the server and the server side towards
# the mounted apps: for the request and response messages it passes receive/send through
# untouched, so the tests below check that the server's guarantees still reach the apps.

M_ADMIN = MANIFESTS + """
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: admin, namespace: default}
spec:
  rules:
  - host: admin.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: admin, port: {number: 80}}}}
"""


def _proxy_answer(request: bytes, manifests: str = M_ADMIN) -> tuple[int | None, str | None]:
    """What the sans-IO proxy core does with the same bytes: (local status or None, backend
    it routed to or None)."""
    from ingresslib.proxy import OpenUpstream, Proxy, SendDownstream

    router = Router(parse_manifests(manifests))
    routed: list[Any] = []

    class Recording:
        def route(self, *a: Any, **kw: Any) -> Any:
            d = router.route(*a, **kw)
            routed.append(d)
            return d

        def __getattr__(self, name: str) -> Any:
            return getattr(router, name)

    conn = Proxy(Recording()).connection(("127.0.0.1", 40000), now=0.0)
    conn.start(0.0)
    actions = conn.receive_data(request, 0.0)
    backend = routed[0].backend if routed and routed[0] is not None else None
    for a in actions:
        if isinstance(a, SendDownstream):
            return int(a.data.split(b" ", 2)[1]), backend
        if isinstance(a, OpenUpstream):
            return None, backend
    raise AssertionError(f"proxy neither answered nor opened an upstream: {actions}")


def _admin_app() -> IngressASGI:
    apps = dict(APPS)
    apps["default/admin"] = echo("admin")
    return IngressASGI(parse_manifests(M_ADMIN), backends=apps)


@pytest.mark.parametrize("host", ["shop.test:80@admin.test", "shop.test:abc", "shop.test:99999",
                                  "shop.test:0", "shop test"])
@pytest.mark.asyncio
async def test_host_values_the_proxy_refuses_get_400(host: str) -> None:
    # "shop.test:80@admin.test" routed as shop.test while an app building its URL from Host
    # (Starlette's request.url, urlsplit) reads the host admin.test: a host confusion.
    request = (f"GET /api/x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").encode()
    assert _proxy_answer(request)[0] == 400
    async with Served(_admin_app()) as s:
        status, body = await s.raw(request)
    assert (status, body) == (400, b"400 Bad Request\n")


async def _call(app: IngressASGI, scope: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
    """Call the app with a scope; the messages sent, and whether a mounted app ran."""
    sent: list[dict[str, Any]] = []

    async def send(m: Any) -> None:
        sent.append(dict(m))

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    base = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "2", "method": "GET",
            "scheme": "http", "root_path": "", "query_string": b"", "client": None,
            "server": None}
    await app({**base, **scope}, receive, send)
    ran = bool(sent) and sent[0].get("status") == 200
    return sent, ran


@pytest.mark.asyncio
async def test_conflicting_host_headers_get_400() -> None:
    # www.rst: ":authority ... must be added to the start of the iterable with host as the
    # header name or replace any existing host header"; a server that adds it and keeps the
    # client's Host hands over two. The proxy refuses a duplicate Host (RFC 9112 §3.2), and an
    # app joining or taking the last one would see another host than the one routed on.
    app = _admin_app()
    sent, ran = await _call(app, {"path": "/api/x", "raw_path": b"/api/x",
                                  "headers": [(b"host", b"shop.test"), (b"host", b"admin.test")]})
    assert not ran and sent[0]["status"] == 400
    # The same host twice (":authority" added, Host kept) is no confusion: served.
    sent, ran = await _call(app, {"path": "/api/x", "raw_path": b"/api/x",
                                  "headers": [(b"host", b"shop.test"), (b"Host", b"SHOP.test")]})
    assert ran


@pytest.mark.asyncio
async def test_connect_is_405_as_from_the_proxy(served: Served) -> None:
    connect = b"CONNECT shop.test:443 HTTP/1.1\r\nHost: shop.test:443\r\nConnection: close\r\n\r\n"
    assert _proxy_answer(connect)[0] == 405
    assert (await served.raw(connect))[0] == 405


@pytest.mark.asyncio
async def test_options_asterisk_answered_as_the_proxy_does(served: Served) -> None:
    options = b"OPTIONS * HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n"
    assert _proxy_answer(options)[0] == 200
    reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(options)
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    await writer.wait_closed()
    head = data.partition(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 200")
    assert b"\r\nallow: get, head, post, put, delete, options, patch" in head


@pytest.mark.asyncio
async def test_absolute_form_target_routed_as_the_proxy_does(served: Served) -> None:
    # uvicorn (h11) hands the absolute-form target over as raw_path/path unchanged.
    same = b"GET http://shop.test/api/x HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n"
    assert _proxy_answer(same) == (None, "default/api:80")
    status, body = await served.raw(same)
    assert status == 200
    seen = json.loads(body)
    assert (seen["app"], seen["path"], seen["raw_path"]) == ("api", "/api/x", "/api/x")
    other = b"GET http://admin.test/api/x HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n"
    assert _proxy_answer(other)[0] == 400
    assert (await served.raw(other))[0] == 400


@pytest.mark.asyncio
async def test_raw_path_without_root_path_is_not_stripped_again() -> None:
    # www.rst: raw_path is "The original HTTP path component ... unmodified from the bytes that
    # were received"; a server behind a prefix-stripping proxy (root_path "/mnt") that received
    # "/mnt/x" gives path "/mnt/mnt/x" and raw_path b"/mnt/x". The request is for "/mnt/x"
    # under the mount, not for "/x".
    m = MANIFESTS.replace("path: /ghost", "path: /mnt")
    app = IngressASGI(parse_manifests(m), backends=APPS)
    sent, _ = await _call(app, {"path": "/mnt/mnt/x", "raw_path": b"/mnt/x", "root_path": "/mnt",
                                "headers": [(b"host", b"shop.test")]})
    assert sent[0]["status"] == 503  # the /mnt rule (ghost: no app), not web's catch-all
    # A server that puts root_path into raw_path too (uvicorn >= 0.3x): stripped once.
    sent, _ = await _call(app, {"path": "/mnt/x", "raw_path": b"/mnt/x", "root_path": "/mnt",
                                "headers": [(b"host", b"shop.test")]})
    assert sent[0]["status"] == 200 and json.loads(sent[1]["body"])["app"] == "web"


# The request/response messages go straight between the server and the mounted app: what the
# server guarantees (www.rst; the main spec's "Error Handling") must still hold behind
# IngressASGI. One app, its behaviour chosen by the path.

SEEN: dict[str, Any] = {}


async def _behaving(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        raise RuntimeError("no lifespan here")  # lifespan.rst: unsupported, serving goes on
    what = scope["path"].rsplit("/", 1)[-1]
    start = {"type": "http.response.start", "status": 200,
             "headers": [(b"content-length", b"5")]}
    if what == "body":
        msgs = []
        while True:
            m = await receive()
            msgs.append(m)
            if not m.get("more_body", False):
                break
        SEEN["body"] = msgs
        await send({**start, "headers": []})
        await send({"type": "http.response.body",
                    "body": b"".join(m.get("body", b"") for m in msgs)})
        SEEN["after"] = await receive()  # www.rst: "http.disconnect" once the response is sent
        try:
            await send({"type": "http.response.body", "body": b"late"})
        except Exception as exc:  # noqa: BLE001 - what the server raises is what is checked
            SEEN["late_send"] = type(exc).__name__
    elif what == "start-then-read":
        await send({**start, "headers": []})
        while (m := await receive()).get("more_body"):
            pass
        SEEN["last"] = m
        await send({"type": "http.response.body", "body": b"done"})
    elif what == "raise-before":
        raise RuntimeError("boom")
    elif what == "raise-after":
        await send(start)
        await send({"type": "http.response.body", "body": b"ab", "more_body": True})
        raise RuntimeError("boom")
    elif what == "no-response":
        return
    elif what == "no-start":
        await send({"type": "http.response.body", "body": b"hello"})
    elif what == "streamed":
        await send(start)
        for part in (b"he", b"ll", b"o"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})


@pytest_asyncio.fixture
async def behaving() -> AsyncIterator[Served]:
    SEEN.clear()
    app = IngressASGI(parse_manifests(MANIFESTS), backends={"default/web": _behaving})
    async with Served(app) as s:  # lifespan="on": an app raising on lifespan must not stop it
        yield s


@pytest.mark.asyncio
async def test_request_body_events_reach_the_app(behaving: Served) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"first,"
        await asyncio.sleep(0.05)
        yield b"second"

    async with behaving.client() as c:
        r = await c.post("/x/body", content=chunks())  # chunked: a streamed body
        assert r.status_code == 200 and r.content == b"first,second"
        streamed = SEEN["body"]
        r = await c.get("/x/body")
        empty = SEEN["body"]
    assert all(m["type"] == "http.request" for m in streamed)
    assert [bool(m.get("more_body")) for m in streamed][-1] is False
    assert len(streamed) >= 2 and all(m.get("more_body") for m in streamed[:-1])
    assert r.content == b""
    assert [(m["type"], m.get("body", b""), bool(m.get("more_body"))) for m in empty] == [
        ("http.request", b"", False)]
    assert SEEN["after"] == {"type": "http.disconnect"}
    # asgi.rst "Error Handling": a message after the response is complete raises to the app.
    assert SEEN["late_send"] == "RuntimeError"


@pytest.mark.asyncio
async def test_app_errors_are_the_servers_to_answer(behaving: Served) -> None:
    assert (await behaving.get_raw("/raise-before"))[0] == 500
    assert (await behaving.get_raw("/no-response"))[0] == 500
    assert (await behaving.get_raw("/no-start"))[0] == 500
    assert await behaving.get_raw("/streamed") == (200, b"hello")
    # Raised after the response started: the connection is cut, no second response.
    reader, writer = await asyncio.open_connection("127.0.0.1", behaving.port)
    writer.write(b"GET /raise-after HTTP/1.1\r\nHost: shop.test\r\n\r\n")
    data = await asyncio.wait_for(reader.read(), 5)  # EOF although keep-alive was asked for
    writer.close()
    await writer.wait_closed()
    assert data.startswith(b"HTTP/1.1 200") and data.count(b"HTTP/1.1") == 1
    assert data.endswith(b"\r\n\r\nab")  # 2 of the 5 announced bytes


@pytest.mark.asyncio
async def test_app_exception_propagates_to_the_server() -> None:
    # IngressASGI must not swallow it: the server turns it into a 500 (or a cut connection).
    app = IngressASGI(parse_manifests(MANIFESTS), backends={"default/web": _behaving})
    with pytest.raises(RuntimeError, match="boom"):
        await _call(app, {"path": "/raise-before", "raw_path": b"/raise-before",
                          "headers": [(b"host", b"shop.test")]})


def _lifespan_app(startup: str, shutdown: str) -> Any:
    """A mounted app whose startup/shutdown answer ("complete", "failed", "raise")."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        for phase, how in (("startup", startup), ("shutdown", shutdown)):
            msg = await receive()
            assert msg["type"] == f"lifespan.{phase}"
            if how == "raise":
                raise RuntimeError(f"{phase} broke")
            if how == "failed":
                await send({"type": f"lifespan.{phase}.failed", "message": f"{phase} no"})
            else:
                await send({"type": f"lifespan.{phase}.complete"})

    return app


@pytest.mark.asyncio
async def test_lifespan_exceptions_and_shutdown_failure() -> None:
    def ingress(app: Any) -> IngressASGI:
        return IngressASGI(parse_manifests(MANIFESTS), backends={"default/web": app,
                                                                 "default/api": echo("api")})

    # lifespan.rst: "If an exception is raised when calling the application callable with a
    # lifespan.startup message ... the server must continue": unsupported, not a failure.
    sent = await _drive_lifespan(ingress(_lifespan_app("raise", "complete")))
    assert [m["type"] for m in sent] == ["lifespan.startup.complete",
                                         "lifespan.shutdown.complete"]
    sent = await _drive_lifespan(ingress(_lifespan_app("complete", "failed")))
    assert sent[1] == {"type": "lifespan.shutdown.failed", "message": "shutdown no"}
    # An app that took part (answered startup) and then raises on shutdown did not "complete
    # its cleanup": reported as lifespan.shutdown.failed (uvicorn, lifespan="on", reads an
    # exception there the same way), never hidden behind a "complete".
    sent = await _drive_lifespan(ingress(_lifespan_app("complete", "raise")))
    assert sent[0] == {"type": "lifespan.startup.complete"}
    assert sent[1]["type"] == "lifespan.shutdown.failed"
    assert "shutdown broke" in sent[1]["message"]


M_CANARY = M_ADMIN + """
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: shop-canary
  namespace: default
  annotations:
    nginx.ingress.kubernetes.io/canary: "true"
    nginx.ingress.kubernetes.io/canary-by-header: X-Canary
    nginx.ingress.kubernetes.io/canary-by-cookie: beta
spec:
  rules:
  - host: shop.test
    http:
      paths:
      - {path: /api, pathType: Prefix, backend: {service: {name: canary, port: {number: 80}}}}
"""


@pytest.mark.parametrize("head", [
    "GET /api/x HTTP/1.1\r\nHost: SHOP.test.:8080",
    "GET /api/x HTTP/1.1\r\nHost: shop.test\r\nX-Canary: always",
    "GET /api/x HTTP/1.1\r\nHost: shop.test\r\nx-canary: never\r\nCookie: beta=always",
    "GET /api/x HTTP/1.1\r\nHost: shop.test\r\nCookie: a=1\r\nCookie: beta=always",
    "GET /api/x HTTP/1.1\r\nHost: shop.test\r\nX_Canary: always",
    "GET /%61pi/x HTTP/1.1\r\nHost: shop.test",
    "GET /static/../api/x HTTP/1.1\r\nHost: shop.test",
    "GET /apix HTTP/1.1\r\nHost: shop.test",
    "GET /x/%2e%2e/api HTTP/1.1\r\nHost: shop.test",
    "GET //api//x HTTP/1.1\r\nHost: shop.test",
    "GET /api/x HTTP/1.1\r\nHost: admin.test",
    "GET /api%2Fx HTTP/1.1\r\nHost: admin.test",
    "GET /%2e%2e/api HTTP/1.1\r\nHost: shop.test",
    "GET /api/x HTTP/1.0",
])
@pytest.mark.asyncio
async def test_routing_matches_the_proxy(head: str) -> None:
    """The same bytes reach the same backend (or the same refusal) as through the proxy."""
    request = (head + "\r\nConnection: close\r\n\r\n").encode()
    status, backend = _proxy_answer(request, M_CANARY)
    apps = {"default/api": echo("api"), "default/canary": echo("canary"),
            "default/web": echo("web"), "default/static": echo("static"),
            "default/admin": echo("admin")}
    app = IngressASGI(parse_manifests(M_CANARY), backends=apps)
    async with Served(app) as s:
        got_status, body = await s.raw(request)
    if status is None or (status == 503 and backend is not None):
        # Routed (a 503 from the proxy: the Service has no ready endpoint; here the mounted
        # app is the endpoint, docs/asgi.md): the same backend.
        assert got_status == 200 and json.loads(body)["backend"] == backend
    else:
        assert got_status == status


@pytest.mark.asyncio
async def test_scope_handed_to_the_app() -> None:
    # www.rst keys pass through unchanged except path/raw_path/root_path; headers keep order,
    # case and duplicates ("Duplicates are possible and must be preserved"); asgi.rst
    # "Middleware": "make a copy of the scope object before mutating it".
    got: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        got.append(scope)
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.body"})

    headers = [(b"host", b"shop.test"), (b"x-a", b"1"), (b"X-B", b"2"), (b"x-a", b"3")]
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"},
             "http_version": "1.1", "method": "POST", "scheme": "https",
             "path": "/api/caf\u00e9 x", "raw_path": b"/api/caf%C3%A9%20x",
             "query_string": b"q=%20a+b", "root_path": "", "headers": headers,
             "client": ("10.1.2.3", 5555), "server": ("127.0.0.1", 8000), "state": {"k": 1},
             "extensions": {"http.response.trailers": {}}}
    before = dict(scope)
    app_ = IngressASGI(parse_manifests(MANIFESTS), backends={"default/api": app})
    sent: list[Any] = []

    async def send(m: Any) -> None:
        sent.append(m)

    async def receive() -> Any:
        return {"type": "http.request"}

    await app_(scope, receive, send)
    assert scope == before  # the server's scope is left alone
    child = got[0]
    assert child is not scope
    for key in ("type", "asgi", "http_version", "method", "scheme", "query_string",
                "client", "server", "state", "extensions"):
        assert child[key] is scope[key], key
    assert child["path"] == "/api/caf\u00e9 x" and child["raw_path"] == b"/api/caf%C3%A9%20x"
    assert child["root_path"] == "/api" and child[DECISION_KEY].backend == "default/api:80"
    # The headers are those the proxy sends its backend (tests/test_asgi_conformance.py):
    # the client's keep their order and duplicates (names lower-case, as www.rst has them),
    # then this hop's forwarded headers.
    names = [n for n, _ in child["headers"]]
    assert child["headers"][:4] == [(b"host", b"shop.test"), (b"x-a", b"1"), (b"x-b", b"2"),
                                    (b"x-a", b"3")]
    assert names[4:] == [b"x-request-id", b"x-forwarded-for", b"x-real-ip",
                         b"x-forwarded-host", b"x-forwarded-port", b"x-forwarded-proto",
                         b"x-forwarded-scheme", b"x-scheme"]
    assert dict(child["headers"])[b"x-forwarded-for"] == b"10.1.2.3"
    assert dict(child["headers"])[b"x-forwarded-proto"] == b"https"
    # rewrite_headers=False: the server's headers, as they are.
    app_ = IngressASGI(parse_manifests(MANIFESTS), backends={"default/api": app},
                       rewrite_headers=False)
    await app_(scope, receive, send)
    assert got[1]["headers"] is scope["headers"]


@pytest.mark.asyncio
async def test_client_going_away_reaches_the_app_as_http_disconnect() -> None:
    # www.rst "Disconnect": sent "after the HTTP connection has been closed".
    done = asyncio.Event()
    msgs: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("unsupported")
        while True:
            msgs.append(await receive())
            if msgs[-1]["type"] == "http.disconnect":
                done.set()
                return

    async with Served(IngressASGI(parse_manifests(MANIFESTS), backends={"default/web": app})) as s:
        reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
        writer.write(b"POST /x HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 10\r\n\r\nabc")
        await writer.drain()
        for _ in range(500):  # the app has the first chunk (5 s at most)
            if msgs:
                break
            await asyncio.sleep(0.01)
        writer.close()
        await writer.wait_closed()
        await asyncio.wait_for(done.wait(), 5)
    assert msgs[0] == {"type": "http.request", "body": b"abc", "more_body": True}
    assert msgs[-1] == {"type": "http.disconnect"}


@pytest.mark.asyncio
async def test_body_size_limit_behind_uvicorn() -> None:
    # proxy-body-size (SEMANTICS §9 "413 body too large"), by Content-Length and while a
    # chunked body streams; tests/test_asgi_conformance.py compares with the proxy core.
    manifests = MANIFESTS.replace("metadata: {name: shop, namespace: default}",
                                  "metadata: {name: shop, namespace: default, annotations: "
                                  "{nginx.ingress.kubernetes.io/proxy-body-size: '8'}}")
    app = IngressASGI(parse_manifests(manifests), backends={"default/web": _behaving})
    async with Served(app) as s:
        SEEN.clear()
        too_large = (413, b"413 Payload Too Large\n")
        assert await s.raw(b"POST /x/body HTTP/1.1\r\nHost: shop.test\r\nContent-Length: 9\r\n"
                           b"Connection: close\r\n\r\n123456789") == too_large
        assert "body" not in SEEN  # refused before the app
        assert await s.raw(b"POST /x/body HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: "
                           b"chunked\r\nConnection: close\r\n\r\n5\r\n12345\r\n5\r\n67890\r\n"
                           b"0\r\n\r\n") == too_large
        assert await s.raw(b"POST /x/body HTTP/1.1\r\nHost: shop.test\r\nTransfer-Encoding: "
                           b"chunked\r\nConnection: close\r\n\r\n4\r\n1234\r\n4\r\n5678\r\n"
                           b"0\r\n\r\n") == (200, b"8\r\n12345678\r\n0\r\n\r\n")  # chunked
        # Over the limit once the response began: the proxy closes the connection, and so
        # does uvicorn when IngressASGI raises BodyTooLarge (no 413, no end of the body).
        reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
        writer.write(b"POST /x/start-then-read HTTP/1.1\r\nHost: shop.test\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n5\r\n12345\r\n5\r\n67890\r\n"
                     b"0\r\n\r\n")
        data = await asyncio.wait_for(reader.read(), 5)  # EOF: keep-alive was not honoured
        writer.close()
        await writer.wait_closed()
        assert data.startswith(b"HTTP/1.1 200") and b"413" not in data
        assert not data.endswith(b"0\r\n\r\n") and b"done" not in data
        assert SEEN["last"] == {"type": "http.disconnect"}
