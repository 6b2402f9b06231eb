"""Header values that are not ``bytes``: one rule in IngressASGI (session 15).

asgiref www.rst (HTTP connection scope): ``headers (Iterable[[byte string, byte string]])``.
A broken server or middleware may still hand over ``str``, ``bytearray`` or ``memoryview``
values. The rule: ``bytes`` is the contract; a ``bytearray`` or ``memoryview`` value is read as
its bytes; a ``str`` value (or any other type) of a header the adapter reads -- Host, the
framing, Connection, the names nginx reads once (Authorization...), the forwarded family and
X-Request-ID (with ``rewrite_headers``) -- is a 400, as a non-bytes header name is: never a
500. The router (canary header, Cookie) is given a ``bytearray``/``memoryview`` value as its
bytes; a ``str`` one it reads as text, as its API takes (left: the scans do not look at the
values of headers only the router reads). Headers the adapter does not read go to the app as
they came.

Before: a ``str`` Host raised TypeError on every path; a ``str`` or ``memoryview`` Connection
TypeError or AttributeError; a ``str`` X-Forwarded-For or X-Request-ID TypeError; a
``memoryview`` or ``bytearray`` canary header or Cookie TypeError inside the router; a
``memoryview`` name AttributeError (the server's 500).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ingresslib._asgi import IngressASGI
from ingresslib._load import parse_manifests
from ingresslib.proxy import ProxySettings

from test_asgi import M_CANARY

#: test_asgi's canary manifests, with an endpoint for the canary Service (a canary without
#: one serves nothing: the main backend answers).
MANIFESTS = M_CANARY + """
---
apiVersion: v1
kind: Service
metadata: {name: canary, namespace: default}
spec: {ports: [{port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: canary-1, namespace: default, labels: {kubernetes.io/service-name: canary}}
addressType: IPv4
ports: [{port: 80}]
endpoints: [{addresses: [10.0.0.2]}]
"""

PATHS = [(True, False), (True, True), (False, False), (False, True)]  # (rewrite, general)


def _app(rewrite: bool, general: bool, settings: ProxySettings | None = None
         ) -> tuple[IngressASGI, list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []

    def backend(name: str) -> Any:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            seen.append({"backend": name, "headers": scope["headers"]})
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})
        return app

    apps = {f"default/{n}": backend(n) for n in ("api", "canary", "web", "static", "admin")}
    app = IngressASGI(parse_manifests(MANIFESTS), apps, settings=settings or ProxySettings(),
                      rewrite_headers=rewrite)
    if general:
        app._names = None  # every request on the general path (``_read_headers``)
    return app, seen


def _status(app: IngressASGI, headers: list[tuple[Any, Any]], path: str = "/api/x") -> int:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "client": ("127.0.0.1", 40000),
             "server": ("127.0.0.1", 80), "headers": headers}
    asyncio.run(app(scope, receive, send))
    return int(sent[0]["status"])


HOST = (b"host", b"shop.test")


@pytest.mark.parametrize("rewrite,general", PATHS)
def test_str_host_is_400(rewrite: bool, general: bool) -> None:
    app, seen = _app(rewrite, general)
    assert _status(app, [(b"host", "shop.test")]) == 400
    assert seen == []


@pytest.mark.parametrize("rewrite,general", PATHS)
@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_bytes_like_host_is_read_as_its_bytes(rewrite: bool, general: bool, kind: Any) -> None:
    app, seen = _app(rewrite, general)
    assert _status(app, [(b"host", kind(b"shop.test"))]) == 200
    assert seen[0]["backend"] == "api"
    assert _status(app, [(b"host", kind(b"bad host"))]) == 400  # check_host, as for bytes


@pytest.mark.parametrize("general", [False, True])
def test_str_connection_is_400_with_rewrite_headers(general: bool) -> None:
    app, seen = _app(True, general)
    assert _status(app, [HOST, (b"connection", "close")]) == 400
    assert seen == []


@pytest.mark.parametrize("general", [False, True])
def test_connection_is_the_apps_business_without_rewrite_headers(general: bool) -> None:
    # The adapter does not read Connection then: the app gets it as it came.
    app, seen = _app(False, general)
    assert _status(app, [HOST, (b"connection", "close")]) == 200
    assert (b"connection", "close") in seen[0]["headers"]


@pytest.mark.parametrize("general", [False, True])
@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_bytes_like_connection_tokens_are_read(general: bool, kind: Any) -> None:
    # "Connection: x-secret" takes X-Secret out of what the app gets, as from bytes.
    app, seen = _app(True, general)
    headers = [HOST, (b"connection", kind(b"keep-alive, X-Secret")), (b"x-secret", b"1"),
               (b"x-other", b"2")]
    assert _status(app, headers) == 200
    names = [n for n, _ in seen[0]["headers"]]
    assert b"x-secret" not in names and b"x-other" in names and b"connection" not in names
    app, seen = _app(True, general)
    assert _status(app, [HOST, (b"connection", kind(b"keep-alive"))]) == 200


@pytest.mark.parametrize("rewrite,general", PATHS)
def test_str_forwarded_for_is_400(rewrite: bool, general: bool) -> None:
    app, seen = _app(rewrite, general)
    assert _status(app, [HOST, (b"x-forwarded-for", "10.0.0.9")]) == 400
    assert seen == []


@pytest.mark.parametrize("general", [False, True])
@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_bytes_like_forwarded_for_is_read_as_its_bytes(general: bool, kind: Any) -> None:
    app, seen = _app(True, general)
    assert _status(app, [HOST, (b"x-forwarded-for", kind(b"10.0.0.9"))]) == 200
    assert dict(seen[0]["headers"])[b"x-original-forwarded-for"] == b"10.0.0.9"


@pytest.mark.parametrize("general", [False, True])
def test_str_request_id_is_400_with_rewrite_headers(general: bool) -> None:
    app, seen = _app(True, general)
    assert _status(app, [HOST, (b"x-request-id", "abc")]) == 400
    # Without rewrite_headers the adapter does not read it: the app gets it as it came.
    app, seen = _app(False, general)
    assert _status(app, [HOST, (b"x-request-id", "abc")]) == 200
    assert (b"x-request-id", "abc") in seen[0]["headers"]


@pytest.mark.parametrize("general", [False, True])
def test_str_forwarded_host_is_400_with_rewrite_headers(general: bool) -> None:
    settings = ProxySettings(use_forwarded_headers=True, proxy_real_ip_cidr=("127.0.0.1/32",))
    app, seen = _app(True, general, settings)
    assert _status(app, [HOST, (b"x-forwarded-host", "a.test")]) == 400
    app, seen = _app(True, general, settings)
    assert _status(app, [HOST, (b"x-forwarded-host", memoryview(b"a.test"))]) == 200
    assert dict(seen[0]["headers"])[b"x-forwarded-host"] == b"a.test"


@pytest.mark.parametrize("rewrite,general", PATHS)
def test_str_authorization_is_400(rewrite: bool, general: bool) -> None:
    # A header nginx reads once (counted; its value read by basic auth).
    app, seen = _app(rewrite, general)
    assert _status(app, [HOST, (b"authorization", "Basic dTpw")]) == 400
    assert _status(app, [HOST, (b"authorization", bytearray(b"Basic dTpw"))]) == 200


@pytest.mark.parametrize("rewrite,general", PATHS)
@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_canary_header_and_cookie_read_as_their_bytes(rewrite: bool, general: bool,
                                                      kind: Any) -> None:
    # The router decodes bytes only: it joined these into a TypeError (or misread them).
    app, seen = _app(rewrite, general)
    assert _status(app, [HOST, (b"x-canary", kind(b"always"))]) == 200
    assert _status(app, [HOST, (b"cookie", kind(b"beta=always"))]) == 200
    assert _status(app, [HOST, (b"x-canary", kind(b"never")),
                         (b"cookie", b"beta=always")]) == 200
    assert [s["backend"] for s in seen] == ["canary", "canary", "api"]


@pytest.mark.parametrize("rewrite,general", PATHS)
def test_header_nobody_reads_goes_to_the_app_as_it_came(rewrite: bool, general: bool) -> None:
    # A route that reads no request header: a str User-Agent is the app's business.
    app, seen = _app(rewrite, general)
    assert _status(app, [HOST, (b"user-agent", "curl"), (b"x-a", memoryview(b"1"))],
                   path="/static/x") == 200
    got = seen[0]["headers"]
    assert (b"user-agent", "curl") in got
    assert [v for n, v in got if n == b"x-a"] == [memoryview(b"1")]


@pytest.mark.parametrize("rewrite,general", PATHS)
@pytest.mark.parametrize("name", [memoryview(b"x-a"), "x-a", bytearray(b"x-a")])
def test_name_not_bytes_is_400(rewrite: bool, general: bool, name: Any) -> None:
    app, seen = _app(rewrite, general)
    assert _status(app, [HOST, (name, b"1")]) == 400
    assert seen == []
