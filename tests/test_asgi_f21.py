"""IngressASGI (session 21, F21a): ``raw_path`` keeps the server's ``root_path``; a Router
wrapper is taken as the proxy takes it.

- ``raw_path`` in the mounted app's scope is the incoming ``root_path`` (percent-encoded) +
  the canonical path, as uvicorn (0.54) and Starlette's ``Mount`` hand it on, so ``path`` is
  ``raw_path`` percent-decoded. It was the canonical path alone: an IngressASGI nested under
  a ``Prefix`` rule of another one routed right without ``--root-path`` and answered 404 with
  it (``/svc/x`` under ``--root-path /mnt``), and so under a prefix router in front.
- ``IngressASGI(wrapper, backends)`` with the wrapper of docs/router.md ("Your own code
  around ``route``") raised "IngressASGI takes a Router or a Resources", while
  ``Proxy(wrapper)`` takes it. Now any object with a callable ``route`` is taken (``query=``
  passed only when its ``route`` takes it, as the proxy's own call passes none); anything
  else is refused naming the missing ``route``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote, unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _asgi_call import asgi_exchange
from _budget import examples
from ingresslib import parse_manifests
from ingresslib._asgi import DECISION_KEY, IngressASGI
from ingresslib._router import Router
from test_asgi import Served

OUTER = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: outer, namespace: default}
spec:
  rules:
  - http:
      paths:
      - {path: /svc, pathType: Prefix, backend: {service: {name: inner, port: {number: 80}}}}
"""

INNER = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: inner, namespace: default}
spec:
  rules:
  - http:
      paths:
      - {path: /x, pathType: Prefix, backend: {service: {name: leaf, port: {number: 80}}}}
"""


async def leaf(scope: Any, receive: Any, send: Any) -> None:
    """Answers with the scope it saw (and nothing for lifespan: not supported)."""
    if scope["type"] != "http":
        raise RuntimeError("http only")
    seen = {"path": scope["path"], "raw_path": scope["raw_path"].decode(),
            "root_path": scope["root_path"], "rule": scope[DECISION_KEY].match.path}
    body = json.dumps(seen).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def nested() -> IngressASGI:
    inner = IngressASGI(parse_manifests(INNER), {"default/leaf": leaf})
    return IngressASGI(parse_manifests(OUTER), {"default/inner": inner})


def prefix_router(prefix: str, app: Any) -> Any:
    """A hand-written mount, as Starlette's ``Mount`` (0.35 and later) is: ``root_path``
    extended, ``path`` and ``raw_path`` as they came."""

    async def mount(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            root = scope.get("root_path", "")
            if not scope["path"][len(root):].startswith(prefix + "/"):
                await send({"type": "http.response.start", "status": 418, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                return
            scope = dict(scope, root_path=root + prefix)
        await app(scope, receive, send)

    return mount


@pytest.mark.network
@pytest.mark.asyncio
@pytest.mark.parametrize("root_path, mount, target, expect_root", [
    # plain: no root_path anywhere
    ("", "", "/svc/x/y", ""),
    # uvicorn --root-path /mnt (a proxy in front strips /mnt): was a 404
    ("/mnt", "", "/svc/x/y", "/mnt"),
    # under a prefix router (Starlette's Mount): was a 404
    ("", "/outer", "/outer/svc/x/y", "/outer"),
    # both, and the inner rule's segment spelled with an escape (canonical: decoded)
    ("/mnt", "/outer", "/outer/svc/%78/y", "/mnt/outer"),
])
async def test_nested_ingress_asgi_under_a_root_path(root_path: str, mount: str, target: str,
                                                     expect_root: str) -> None:
    app: Any = nested()
    if mount:
        app = prefix_router(mount, app)
    async with Served(app, root_path=root_path) as s:
        status, body = await s.get_raw(target)
    assert status == 200, body
    assert json.loads(body) == {"path": expect_root + "/svc/x/y",
                                "raw_path": expect_root + "/svc/x/y",
                                "root_path": expect_root + "/svc/x", "rule": "/x"}


def _call(app: Any, scope: dict[str, Any]) -> tuple[int, list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []

    async def record(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(dict(scope))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    sent: list[dict[str, Any]] = []

    async def send(m: Any) -> None:
        sent.append(dict(m))

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    app.backends = {k: record for k in app.backends}
    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], seen


@settings(max_examples=examples(0.1))
@given(root=st.lists(st.text(st.sampled_from("mnt%é ?#;~"), min_size=1, max_size=4),
                     min_size=1, max_size=2).map(lambda segs: "/" + "/".join(segs)),
       sub=st.sampled_from(["/svc/x", "/svc/x/", "/svc/x/a%20b", "/svc/%78/./y", "/svc/x/%3B"]))
def test_the_apps_path_is_its_raw_path_decoded(root: str, sub: str) -> None:
    # Whatever the server's root_path holds (an escape, a space, '%', '?', non-ASCII), the
    # app's raw_path starts with it and decodes to the app's path, as a server's does
    # (uvicorn: path = root_path + unquote(raw target)).
    # As a Starlette Mount hands it on: the target as sent, root_path spelled with escapes.
    raw = quote(root, safe="/;~").encode("ascii") + sub.encode()
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": root + unquote(sub), "raw_path": raw,
             "root_path": root, "query_string": b"", "client": ("10.1.1.1", 5000),
             "server": ("127.0.0.1", 80), "headers": [(b"host", b"shop.test")]}
    status, seen = _call(IngressASGI(parse_manifests(OUTER), {"default/inner": leaf}), scope)
    assert status == 200
    (child,) = seen
    assert child["root_path"] == root + "/svc"
    assert unquote(child["raw_path"].decode("ascii")) == child["path"]
    assert child["path"].startswith(root + "/svc/")


# -- a Router wrapper --------------------------------------------------------------------------

WEB = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  defaultBackend: {service: {name: web, port: {number: 80}}}
"""


class Traced:
    """docs/router.md "Your own code around ``route``", as written there."""

    def __init__(self, router: Any) -> None:
        self.router = router
        self.routed = 0

    def route(self, method: Any, host: Any, path: Any, headers: Any = (), client_ip: Any = None,
              **kw: Any) -> Any:
        self.routed += 1
        return self.router.route(method, host, path, headers, client_ip, **kw)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.router, name)


def test_ingress_asgi_takes_the_docs_router_wrapper() -> None:
    traced = Traced(Router(parse_manifests(WEB)))
    app = IngressASGI(traced, {"default/web": leaf, "default/web2": leaf})
    assert app.router is traced
    status, body = _get(app, "/a")
    assert status == 200 and body["rule"] is None
    assert traced.routed == 1
    # app.update goes through the wrapper to the Router; the wrapper still routes after it.
    app.update(parse_manifests(WEB.replace("name: web}", "name: web2}")))
    status, _ = _get(app, "/b")
    assert status == 200 and traced.routed == 2
    assert traced.route("GET", "example.test", "/").match.ingress == "default/web2"


def test_a_route_without_query_is_called_without_it() -> None:
    # The proxy's own call passes no query=: a router written for it (Proxy's docstring) has
    # no such parameter, and is called as the proxy calls it.
    inner = Router(parse_manifests(WEB))
    calls: list[tuple[Any, ...]] = []

    class Plain:
        def route(self, method: str, host: str, path: str, headers: Any,
                  client_ip: str | None) -> Any:
            calls.append((method, host, path))
            return inner.route(method, host, path, headers, client_ip)

    app = IngressASGI(Plain(), {"default/web": leaf})
    status, body = _get(app, "/a/./b", query=b"k=v")
    assert status == 200 and calls == [("GET", "shop.test", "/a/b")]
    with pytest.raises(TypeError, match="'update' method"):
        app.update(parse_manifests(WEB))


@pytest.mark.parametrize("given, missing", [
    (object(), "it has no 'route' method"),
    (type("R", (), {"route": 5})(), "its 'route' is not callable"),
])
def test_anything_else_is_refused_naming_route(given: Any, missing: str) -> None:
    with pytest.raises(TypeError) as e:
        IngressASGI(given, {"default/web": leaf})
    text = str(e.value)
    assert text.startswith("IngressASGI takes a Router or a Resources"), text
    assert missing in text and "docs/router.md" in text


def test_the_router_class_itself_is_refused() -> None:
    with pytest.raises(TypeError, match="not type"):
        IngressASGI(Router, {"default/web": leaf})  # type: ignore[arg-type]


def _get(app: IngressASGI, path: str, query: bytes = b"") -> tuple[int, Any]:
    sent = asgi_exchange(app, "shop.test", path, query)
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return sent[0]["status"], json.loads(body) if body else None

