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
    # uvicorn --root-path /mnt: path includes it, raw_path does not.
    app = IngressASGI(parse_manifests(MANIFESTS), backends=APPS)
    async with Served(app, root_path="/mnt") as s, s.client() as c:
        r = await c.get("/api/users")
    assert r.json()["root_path"] == "/mnt/api"
    assert r.json()["path"] == "/mnt/api/users"
    assert r.json()["raw_path"] == "/api/users"


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
