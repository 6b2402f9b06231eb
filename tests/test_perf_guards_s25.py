"""Session 25's features cost a request that uses none of them one attribute test each.

CORS, rate limits, upstream-vhost and the response rewrites, and the default-backend headers
were added to the proxy core and to IngressASGI this session; a request of a location without
those annotations must not call into their modules (benchmarks/load/README.md "Session 25":
the core's instructions per request grew 0.5 %). Also ``Metrics.observe``'s lock, now taken
with acquire/release rather than ``with``: released when counting raises.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import PurePath
from types import FrameType
from typing import Any

import pytest

from ingresslib._asgi import IngressASGI
from ingresslib._load import parse_manifests
from ingresslib._metrics import Metrics
from ingresslib._router import Router
from ingresslib.proxy import RequestRecord
from ingresslib.proxy._actions import OpenUpstream
from ingresslib.proxy._connection import Proxy

MANIFESTS = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: plain, namespace: default, annotations: {nginx.ingress.kubernetes.io/proxy-body-size: 8m}}
spec:
  rules:
  - host: plain.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: up, port: {number: 80}}}}
---
apiVersion: v1
kind: Service
metadata: {name: up, namespace: default}
spec: {ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: up-1, namespace: default, labels: {kubernetes.io/service-name: up}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints: [{addresses: [10.0.0.1], conditions: {ready: true}}]
"""

#: The modules of session 25's per-request features (proxy/_response_head.py also holds the
#: response head's own writer, so only its rewrite functions are listed).
FEATURE_FILES = {"_cors.py", "_ratelimit.py", "_error_pages.py"}
FEATURE_FUNCTIONS = {"rewrite_response_headers", "rewriting_send", "default_backend_lines",
                     "default_backend_fields", "without_set_names"}

REQUEST = b"GET /a HTTP/1.1\r\nHost: plain.test\r\nUser-Agent: t\r\nOrigin: http://x.test\r\n\r\n"
RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n"
            b"Location: http://up/a\r\nSet-Cookie: a=b; Domain=up; Path=/\r\n\r\nok")


@contextmanager
def python_calls() -> Iterator[list[tuple[str, str]]]:
    """(file name, function) of every Python function called meanwhile, in this thread."""
    seen: list[tuple[str, str]] = []

    def prof(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            code = frame.f_code
            seen.append((PurePath(code.co_filename).name, code.co_name))

    sys.setprofile(prof)
    try:
        yield seen
    finally:
        sys.setprofile(None)


def feature_calls(seen: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(f, n) for f, n in seen if f in FEATURE_FILES or n in FEATURE_FUNCTIONS]


def core_request(proxy: Proxy, now: float) -> list[Any]:
    """One proxied GET through the sans-IO core: the client's actions."""
    conn = proxy.connection(("127.0.0.1", 5555), now=now)
    conn.start(now)
    cid = [a.conn_id for a in conn.receive_data(REQUEST, now) if type(a) is OpenUpstream][0]
    conn.upstream_connected(cid, now, reused=True)
    return list(conn.upstream_data(cid, RESPONSE, now))


def test_core_plain_request_calls_no_feature_code() -> None:
    proxy = Proxy(Router(parse_manifests(MANIFESTS)), records=False)
    core_request(proxy, 0.0)  # route options and the Router's lazy state built
    with python_calls() as seen:
        actions = core_request(proxy, 1.0)
    assert seen, "the profile hook saw no call"
    assert feature_calls(seen) == []
    sent = b"".join(getattr(a, "data", b"") for a in actions)
    assert sent.startswith(b"HTTP/1.1 200 ")
    # Untouched by the features: no CORS header, the upstream's Location and cookie as sent.
    assert b"access-control-" not in sent.lower()
    assert b"Location: http://up/a\r\n" in sent and b"Domain=up; Path=/" in sent


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"location", b"http://up/a")]})
    await send({"type": "http.response.body", "body": b"ok"})


def _asgi_call(app: IngressASGI, sent: list[Any], seen_scope: list[Any]) -> None:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 4321), "scheme": "http",
             "method": "GET", "root_path": "", "path": "/a", "raw_path": b"/a",
             "query_string": b"", "state": {},
             "headers": [(b"host", b"plain.test"), (b"origin", b"http://x.test")]}
    coro = app(scope, receive, send)
    with pytest.raises(StopIteration):
        coro.send(None)  # neither receive nor send suspends


def test_asgi_plain_request_calls_no_feature_code() -> None:
    seen_scope: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen_scope.append(scope)
        await _app(scope, receive, send)

    asgi = IngressASGI(parse_manifests(MANIFESTS), {"default/up": app})
    _asgi_call(asgi, [], seen_scope)  # warm
    sent: list[Any] = []
    with python_calls() as seen:
        _asgi_call(asgi, sent, seen_scope)
    assert feature_calls(seen) == []
    assert sent[0]["status"] == 200
    names = [n for n, _ in sent[0]["headers"]]
    assert not any(n.startswith(b"access-control-") for n in names)
    assert (b"location", b"http://up/a") in sent[0]["headers"]
    assert (b"host", b"plain.test") in seen_scope[-1]["headers"]


def _record(i: int) -> RequestRecord:
    return RequestRecord(method="GET", host="plain.test", path="/a", query="", rule_path="/",
                         ingress="default/plain", service="up", namespace="default",
                         canary=False, status=200, bytes_in=10, bytes_out=20,
                         upstreams=(("10.0.0.1", 8080),), upstream_status=200,
                         upstream_statuses=(200,), start=float(i), upstream_connect=i + 0.001,
                         upstream_first_byte=i + 0.002, end=i + 0.003,
                         request_id=f"{i:032x}", client_ip="192.0.2.7", http_version="1.1",
                         user_agent="t", referer=None, upstream_response_length=2)


def _requests_total(m: Metrics) -> float:
    total = 0.0
    for line in m.render().decode().splitlines():
        if line.startswith("nginx_ingress_controller_requests{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_observe_releases_its_lock_when_counting_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    m = Metrics()

    def boom(record: RequestRecord) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(m, "_observe", boom)
    with pytest.raises(RuntimeError):
        m.observe(_record(0))
    assert not m._lock.locked()
    monkeypatch.undo()
    m.observe(_record(1))
    m.set_hosts(["plain.test"])  # takes the lock too: would wait for ever if still held
    assert _requests_total(m) == 1

