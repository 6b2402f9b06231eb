"""Session 31, lead: IngressASGI with one app mounted for a backend *and* passed as the
``fallback`` (one app serving everything). A request routed to that backend is the backend's,
not the fallback's: the app's identity is not what says the fallback plays (x4 found it for the
round-robin turn and the session cookie, tests/test_x4_s31.py); the same held for the
default-backend annotation's fields (``X-Code`` ...), ``mirror-target``'s copy and
``custom-http-errors``' error pages, which such a request did not get (each ``test_fix_*``
failed before)."""

from __future__ import annotations

import asyncio
from typing import Any

from ingresslib import IngressASGI, Router, parse_manifests
from ingresslib.proxy._annotations import PREFIX as P
from tests._proxy_harness import ingress_yaml
from tests.test_request_buffering_s30 import service


class _App:
    """Answers ``status`` with its ``name`` as the body; remembers each request's headers."""

    def __init__(self, name: bytes, status: int = 200) -> None:
        self.name, self.status = name, status
        self.headers: list[dict[bytes, bytes]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.headers.append({bytes(k).lower(): bytes(v) for k, v in scope["headers"]})
        await send({"type": "http.response.start", "status": self.status, "headers": []})
        await send({"type": "http.response.body", "body": self.name})


def _get(asgi: Any) -> tuple[int, bytes]:
    sent: list[Any] = []

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(m: Any) -> None:
        sent.append(m)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": "/up", "raw_path": b"/up",
             "root_path": "", "query_string": b"", "client": ("10.9.0.1", 5000),
             "server": ("127.0.0.1", 80), "headers": [(b"host", b"a.test")]}
    asyncio.run(asgi(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], body


def test_fix_custom_http_errors_for_the_app_that_is_also_the_fallback() -> None:
    router = Router(parse_manifests(
        ingress_yaml("up", "a.test", {P + "custom-http-errors": "404",
                                      P + "default-backend": "errs"})
        + service("web", [1]) + service("errs", [2])))
    web, errs = _App(b"web", 404), _App(b"error page", 404)
    asgi = IngressASGI(router, backends={"default/web:80": web, "default/errs:80": errs},
                       fallback=web)
    # web's 404 is listed: the default-backend Service's app answers it (the proxy's
    # intercepted error page), for the app that also plays the fallback as for any other.
    assert _get(asgi) == (404, b"error page")
    assert errs.headers and errs.headers[0][b"x-code"] == b"404"


def test_fix_default_backend_fields_for_the_app_that_is_also_the_fallback() -> None:
    router = Router(parse_manifests(
        ingress_yaml("up", "a.test", {P + "default-backend": "errs"})
        + service("web", []) + service("errs", [2])))
    errs = _App(b"errs")
    asgi = IngressASGI(router, backends={"default/errs:80": errs}, fallback=errs)
    # web has no endpoint: the default-backend annotation's Service serves the rule, with
    # the fields the proxy sends it (X-Code 503 ...), though its app is the fallback too.
    assert _get(asgi) == (200, b"errs")
    assert errs.headers[0].get(b"x-code") == b"503"
    assert errs.headers[0].get(b"x-service-name") == b"web"


def test_the_fallback_proper_gets_no_default_backend_fields() -> None:
    # An unrouted request is the fallback's: none of the rule's fields (a guard).
    router = Router(parse_manifests(ingress_yaml("up", "b.test") + service("web", [1])))
    app = _App(b"fallback", 404)
    asgi = IngressASGI(router, backends={}, fallback=app)
    assert _get(asgi) == (404, b"fallback")
    assert b"x-code" not in app.headers[0]


def test_fix_mirror_for_the_app_that_is_also_the_fallback() -> None:
    router = Router(parse_manifests(
        ingress_yaml("up", "a.test", {P + "mirror-target": "http://copy.default.svc$request_uri"})
        + service("web", [1]) + service("copy", [2])))
    web, copy = _App(b"web"), _App(b"copy")
    asgi = IngressASGI(router, backends={"default/web:80": web, "default/copy:80": copy},
                       fallback=web)

    async def main() -> tuple[int, bytes]:
        sent: list[Any] = []

        async def receive() -> Any:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(m: Any) -> None:
            sent.append(m)

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "GET", "scheme": "http", "path": "/up", "raw_path": b"/up",
                 "root_path": "", "query_string": b"", "client": ("10.9.0.1", 5000),
                 "server": ("127.0.0.1", 80), "headers": [(b"host", b"a.test")]}
        await asgi(scope, receive, send)
        async with asyncio.timeout(2):   # the mirror runs beside the request
            while not copy.headers:
                await asyncio.sleep(0.01)
        return sent[0]["status"], sent[1]["body"]

    # mirror-target: the mounted Service's app gets a copy of a request routed to web,
    # whose app also plays the fallback.
    assert asyncio.run(main()) == (200, b"web")
    assert len(copy.headers) == 1
