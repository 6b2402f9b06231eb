"""Session 23 fresh-eyes review of IngressASGI against the proxy (brief Z4).

Each test is a defect found by running the same requests through a ProxyServer and through
IngressASGI (under uvicorn and by direct call), fixed in ingresslib/_asgi*.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ingresslib import IngressASGI, Router, parse_manifests

P = "nginx.ingress.kubernetes.io/"


def _service(name: str, ip: str) -> str:
    return f"""
---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec: {{ports: [{{name: http, port: 80, targetPort: 8080}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-1, namespace: default, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: [{{name: http, port: 8080}}]
endpoints: [{{addresses: [{ip}]}}]
"""


#: ``a.test/api`` to Service ``api``, with a canary Ingress by header ``X-Canary`` to ``can``.
CANARY = f"""
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: main, namespace: default}}
spec:
  rules:
  - host: a.test
    http:
      paths:
      - {{path: /api, pathType: Prefix, backend: {{service: {{name: api, port: {{number: 80}}}}}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: can
  namespace: default
  annotations: {{{P}canary: "true", {P}canary-by-header: X-Canary}}
spec:
  rules:
  - host: a.test
    http:
      paths:
      - {{path: /api, pathType: Prefix, backend: {{service: {{name: can, port: {{number: 80}}}}}}}}
""" + _service("api", "10.0.0.1") + _service("can", "10.0.0.2")


def _call(asgi: Any, **scope_over: Any) -> list[dict[str, Any]]:
    """One HTTP request through ``asgi`` (GET a.test/api/x from 10.1.1.1, overridden by
    ``scope_over``): every message sent."""
    sent: list[dict[str, Any]] = []

    async def send(m: Any) -> None:
        sent.append(dict(m))

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": "/api/x", "raw_path": b"/api/x",
             "root_path": "", "query_string": b"", "client": ("10.1.1.1", 5000),
             "server": ("127.0.0.1", 80), "headers": [(b"host", b"a.test")]}
    scope.update(scope_over)
    asyncio.run(asgi(scope, receive, send))
    return sent


def _canary_app(rewrite: bool) -> tuple[IngressASGI, list[tuple[str, list[Any]]]]:
    seen: list[tuple[str, list[Any]]] = []

    def backend(name: str) -> Any:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            seen.append((name, [(bytes(k), bytes(v)) for k, v in scope["headers"]]))
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})
        return app

    asgi = IngressASGI(Router(parse_manifests(CANARY), seed=1),
                       {"default/api": backend("api"), "default/can": backend("can")},
                       rewrite_headers=rewrite)
    return asgi, seen


# -- scope headers given as a one-pass iterable ----------------------------------------------


@pytest.mark.parametrize("rewrite", [True, False])
@pytest.mark.parametrize("connection", [None, b"close"])
def test_one_pass_scope_headers_reach_the_router_and_the_app(rewrite: bool,
                                                              connection: bytes | None) -> None:
    """www.rst: the scope's ``headers`` is an ``Iterable[[byte string, byte string]]``. A
    generator was used up by the header scan: the router saw no ``X-Canary`` (routed to the
    main backend), and the app got an exhausted iterator (``rewrite_headers=False``) or, on
    the general path (``Connection: close``), no headers at all. Now it is read once as a
    list: canary routing and the app's headers are those of the same list given as a list."""
    listed = [(b"host", b"a.test"), (b"x-canary", b"always"), (b"accept", b"*/*")]
    if connection is not None:
        listed.append((b"connection", connection))
    asgi, seen = _canary_app(rewrite)
    assert _call(asgi, headers=list(listed))[0]["status"] == 200
    asgi2, seen2 = _canary_app(rewrite)
    assert _call(asgi2, headers=(h for h in listed))[0]["status"] == 200
    assert seen[0][0] == "can"
    assert seen2[0][0] == "can"

    def comparable(headers: list[Any]) -> list[Any]:
        return [(k, v) for k, v in headers if k != b"x-request-id"]

    assert comparable(seen2[0][1]) == comparable(seen[0][1])
    assert (b"accept", b"*/*") in seen2[0][1]


# -- X-Original-URI of a bytearray raw_path --------------------------------------------------


def test_bytearray_raw_path_gives_its_bytes_as_x_original_uri() -> None:
    """Routing reads a ``bytearray`` raw_path as its bytes (``_routing_target``), but with
    ``proxy_add_original_uri_header`` the X-Original-URI was built from its ``str()``
    (``bytearray(b'/api/x')``), which ``split_absolute_form`` refused: a RemoteProxyError
    escaped, the server's 500. Now X-Original-URI is the bytes, as for a ``bytes`` one."""
    from ingresslib.proxy import ProxySettings

    seen: list[dict[bytes, bytes]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append({bytes(k): bytes(v) for k, v in scope["headers"]})
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    asgi = IngressASGI(Router(parse_manifests(CANARY), seed=1), {"default/api": app},
                       settings=ProxySettings(proxy_add_original_uri_header=True))
    sent = _call(asgi, raw_path=bytearray(b"/api/x"), query_string=b"a=1")
    assert sent[0]["status"] == 200
    assert seen[0][b"x-original-uri"] == b"/api/x?a=1"


def test_x_original_uri_of_a_raw_path_holding_the_query_has_it_once() -> None:
    """www.rst: raw_path excludes the query string, but httpx's ASGITransport put it there
    (encode/httpx#2810). Routing and the ssl-redirect's target take the path before ``?``;
    X-Original-URI appended ``query_string`` to the whole raw_path: ``/api/x?a=1?a=1``. Now
    it is nginx's ``$request_uri``, ``/api/x?a=1``, as the proxy sends it."""
    from ingresslib.proxy import ProxySettings

    seen: list[dict[bytes, bytes]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append({bytes(k): bytes(v) for k, v in scope["headers"]})
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    asgi = IngressASGI(Router(parse_manifests(CANARY), seed=1), {"default/api": app},
                       settings=ProxySettings(proxy_add_original_uri_header=True))
    assert _call(asgi, raw_path=b"/api/x?a=1", query_string=b"a=1")[0]["status"] == 200
    assert _call(asgi, raw_path=b"http://a.test/api/x?a=1",
                 query_string=b"a=1")[0]["status"] == 200
    assert [s[b"x-original-uri"] for s in seen] == [b"/api/x?a=1", b"/api/x?a=1"]


# -- WebSocket handshakes: the proxy and the adapter agree ------------------------------------
# tests/test_proxy_asgi_agree_s13.py generates no WebSocket scopes. The same handshakes go to
# the proxy core (tests/_agree_s13.py ``via_proxy``) and, as uvicorn's websocket scope with the
# ``websocket.http.response`` extension, to IngressASGI: the same local status, Location and
# backend. (Checked by hand under uvicorn and a ProxyServer on 127.0.0.1 too: the same.)


def _ws_cases() -> list[tuple[str, str, tuple[tuple[str, str], ...], bool]]:
    """(host, target, extra headers, https)."""
    return [
        ("a.test", "/api/x", (), False),            # routed
        ("a.test", "/nope", (), False),             # 404
        ("a.test", "/api/%2F", (), False),          # 400: no canonical form
        ("a.test", "/api/../../x", (), False),      # 400
        ("w.test", "/z", (), False),                # 308 to the www twin
        ("r.test", "/", (), False),                 # 302 app-root
        ("r.test", "/y", (), False),                # 301 permanent-redirect
        ("t.test", "/y", (), False),                # 308 ssl-redirect (tls host)
        ("t.test", "/y", (), True),                 # routed over wss
        ("b.test", "/y", (), False),                # 401 basic auth
        ("b.test", "/y", (("Authorization", "Basic YWxpY2U6cHc="),), False),  # routed
        ("d.test", "/y", (), False),                # 403 denylist
        ("a.test", "/api/x", (("Content-Length", "50"),), False),  # 413 declared body
    ]


def _ws_manifests() -> tuple[str, frozenset[str]]:
    from _agree_s13 import IngressSpec, PathSpec, manifests_text

    ings = (
        IngressSpec("a", "a.test", (PathSpec("/api", "Prefix", "s0"),),
                    ((P + "proxy-body-size", "10"),)),
        IngressSpec("w", "www.w.test", (PathSpec("/", "Prefix", "s1"),),
                    ((P + "from-to-www-redirect", "true"),)),
        IngressSpec("r", "r.test", (PathSpec("/", "Prefix", "s1"),),
                    ((P + "app-root", "/app"), (P + "permanent-redirect", "https://p.test/x"))),
        IngressSpec("t", "t.test", (PathSpec("/", "Prefix", "s2"),), (), True),
        IngressSpec("b", "b.test", (PathSpec("/", "Prefix", "s3"),),
                    ((P + "auth-type", "basic"), (P + "auth-secret", "users"))),
        IngressSpec("d", "d.test", (PathSpec("/", "Prefix", "s3"),),
                    ((P + "denylist-source-range", "10.1.0.0/16"),)),
    )
    return manifests_text(ings), frozenset({"t.test"})


def _ws_via_asgi(manifests: str, tls: frozenset[str], host: str, target: str,
                 extra: tuple[tuple[str, str], ...], https: bool
                 ) -> tuple[int, bytes | None, str | None]:
    from _agree_s13 import SERVICES, RequestSpec

    seen: list[str] = []
    sent: list[dict[str, Any]] = []

    def mounted(name: str) -> Any:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            seen.append(name)
            assert (await receive())["type"] == "websocket.connect"
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close"})
        return app

    req = RequestSpec("GET", target, host, (*_WS_HEADERS, *extra), b"", https, "10.1.1.1")
    scope = req.scope()
    scope.update(type="websocket", scheme="wss" if https else "ws",
                 extensions={"websocket.http.response": {}})
    del scope["method"]
    messages = [{"type": "websocket.connect"}]

    async def receive() -> Any:
        return messages.pop() if messages else {"type": "websocket.disconnect", "code": 1000}

    async def send(m: Any) -> None:
        sent.append(dict(m))

    asgi = IngressASGI(Router(parse_manifests(manifests), seed=1),
                       {f"default/{s}": mounted(s) for s in SERVICES}, tls_hosts=tls)
    asyncio.run(asgi(scope, receive, send))
    if sent[0]["type"] == "websocket.accept":
        return 101, None, seen[0]
    assert sent[0]["type"] == "websocket.http.response.start"
    assert sent[-1]["type"] == "websocket.http.response.body"
    headers = {bytes(k): bytes(v) for k, v in sent[0]["headers"]}
    return sent[0]["status"], headers.get(b"location"), None


_WS_HEADERS = (("Upgrade", "websocket"), ("Connection", "Upgrade"),
               ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
               ("Sec-WebSocket-Version", "13"))


@pytest.mark.parametrize("case", _ws_cases(), ids=lambda c: f"{c[0]}{c[1]}-{len(c[2])}-{c[3]}")
def test_websocket_handshake_answers_agree_with_the_proxy(
        case: tuple[str, str, tuple[tuple[str, str], ...], bool]) -> None:
    from _agree_s13 import RequestSpec, via_proxy

    from ingresslib.proxy import ProxySettings

    host, target, extra, https = case
    manifests, tls = _ws_manifests()
    req = RequestSpec("GET", target, host, (*_WS_HEADERS, *extra), b"", https, "10.1.1.1")
    proxy = via_proxy(manifests, req, ProxySettings(), tls)
    status, location, backend = _ws_via_asgi(manifests, tls, host, target, extra, https)
    if proxy.backend is not None:
        assert (status, backend) == (101, proxy.backend)
    else:
        assert (status, location, backend) == (proxy.status, proxy.location, None)
