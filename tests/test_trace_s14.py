"""TRACE is refused before routing, as nginx refuses it (session 14).

nginx, src/http/ngx_http_request.c ``ngx_http_process_request_header``:
"if (r->method == NGX_HTTP_TRACE) { ngx_log_error(NGX_LOG_INFO, ..., "client sent TRACE
method"); ngx_http_finalize_request(r, NGX_HTTP_NOT_ALLOWED); return NGX_ERROR; }" -- before
any location, so an ingress-nginx backend never sees a TRACE (which would echo the request's
Cookie and Authorization back to the page that sent it: cross-site tracing). The proxy core
answers it as it answers CONNECT (405, then close), IngressASGI as it answers CONNECT (405, no
app called), and ``explain -X TRACE`` says so. In-process only.

Also the same review's IngressASGI request-path fixes (tests/test_adversarial_s14.py has the
reported cases): a mount spelled with escapes, and header names that are not ``bytes``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import given, strategies as st

import ingresslib
from ingresslib._asgi import _routing_target
from ingresslib._cli import main
from ingresslib._normalize import canonical_path

from _proxy_harness import ProxyPair, status_of
from test_asgi_conformance import asgi_call, proxy_answer, wire

#: The Service ``web`` and its one endpoint (other test files add their Ingresses to it).
WEB = """
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{port: 8080}]
endpoints: [{addresses: [10.0.0.1]}]
"""

ROUTES = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: default}
spec:
  rules:
  - host: shop.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
""" + WEB

HOST = b"Host: shop.example.com\r\n"
#: A request for the same backend, pipelined after the refused one: it must reach nobody.
NEXT = b"GET /after HTTP/1.1\r\n" + HOST + b"\r\n"


def pair() -> ProxyPair:
    return ProxyPair(router=ingresslib.Router(ingresslib.parse_manifests(ROUTES)))


def head_lines(out: bytes) -> list[bytes]:
    """The response head's lines without Date (the harness has no clock, but be safe)."""
    head = out.partition(b"\r\n\r\n")[0].split(b"\r\n")
    return [ln for ln in head if not ln.lower().startswith(b"date:")]


@pytest.mark.parametrize("request_", [
    b"TRACE / HTTP/1.1\r\n" + HOST + b"\r\n",
    b"TRACE /api/x?q=1 HTTP/1.1\r\n" + HOST + b"Max-Forwards: 0\r\n\r\n",
    b"TRACE / HTTP/1.1\r\n" + HOST + b"Content-Length: 5\r\n\r\nhello",
    b"TRACE / HTTP/1.0\r\n" + HOST + b"\r\n",
    b"TRACE http://shop.example.com/ HTTP/1.1\r\n" + HOST + b"\r\n",
], ids=["plain", "max-forwards", "with-body", "http10", "absolute-form"])
def test_proxy_answers_trace_405_and_no_backend_sees_it(request_: bytes) -> None:
    p = pair()
    out = p.send(request_ + NEXT)
    assert status_of(out) == 405, out
    assert out.count(b"HTTP/1.1 ") == 1 and p.closed, out  # closed: the next one is not read
    assert p.opens == [] and p.upstream_bytes == b""
    (record,) = p.records
    assert record.status == 405 and record.method == "TRACE"


def test_proxy_answers_trace_as_it_answers_connect() -> None:
    # Same head (status line, headers, Connection: close), same body: one refusal, two methods.
    trace, connect = pair(), pair()
    t = trace.send(b"TRACE / HTTP/1.1\r\n" + HOST + b"\r\n")
    c = connect.send(b"CONNECT shop.example.com:443 HTTP/1.1\r\n" + HOST + b"\r\n")
    assert status_of(c) == 405 and connect.closed
    assert head_lines(t) == head_lines(c)
    assert t.partition(b"\r\n\r\n")[2] == c.partition(b"\r\n\r\n")[2]
    assert b"connection: close" in t.lower()


def test_proxy_other_methods_still_reach_the_backend() -> None:
    # The refusal is TRACE's alone (methods are case-sensitive: RFC 9110 §9.1).
    for method in (b"GET", b"OPTIONS", b"DELETE"):
        r = proxy_answer(wire(f"{method.decode()} / HTTP/1.1\r\nHost: shop.example.com"),
                         manifests=ROUTES)
        assert r.upstream is not None and r.upstream.startswith(method + b" / "), method


def test_asgi_answers_trace_405_without_calling_the_app() -> None:
    head = "TRACE /api/x HTTP/1.1\r\nHost: shop.example.com\r\nCookie: s=1"
    seen = asyncio.run(asgi_call(head, manifests=ROUTES))
    assert seen.status == 405 and not seen.app_ran
    assert proxy_answer(wire(head), manifests=ROUTES).status == 405  # as the proxy answers


def test_asgi_answers_trace_as_it_answers_connect() -> None:
    manifests = ROUTES
    trace = asyncio.run(asgi_call("TRACE / HTTP/1.1\r\nHost: shop.example.com",
                                  manifests=manifests))
    connect = asyncio.run(asgi_call("CONNECT / HTTP/1.1\r\nHost: shop.example.com",
                                    manifests=manifests))
    assert trace.status == connect.status == 405
    assert trace.headers == connect.headers and trace.body == connect.body
    assert not trace.app_ran and not connect.app_ran
    get = asyncio.run(asgi_call("GET / HTTP/1.1\r\nHost: shop.example.com",
                                manifests=manifests))
    assert get.app_ran and get.status == 200  # the same manifests do route


def test_explain_says_405_for_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES)
    assert main(["explain", "-f", str(routes), "-o", "json", "-X", "TRACE",
                 "http://shop.example.com/api"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["status"] == 405 and info["match"] is None, info
    assert info["reason"] == "rejected: TRACE is not allowed", info
    assert main(["explain", "-f", str(routes), "-X", "TRACE",
                 "http://shop.example.com/api"]) == 0
    out = capsys.readouterr().out
    assert "-> 405: rejected: TRACE is not allowed" in out and "Ingress default/web" not in out
    # GET on the same URL is routed (the refusal is the method's).
    assert main(["explain", "-f", str(routes), "-o", "json", "http://shop.example.com/api"]) == 0
    assert json.loads(capsys.readouterr().out)["match"] is not None


# -- the same review's IngressASGI request-path fixes, beyond tests/test_adversarial_s14.py ------


@given(root=st.sampled_from(["/mnt", "/a/b", "/x-y.z"]),
       rest=st.sampled_from(["", "/", "/admin", "/admin/x", "/%61dmin", "/mnt/x"]),
       mask=st.lists(st.booleans(), min_size=8, max_size=8),
       raw_holds_root=st.booleans())
def test_asgi_mount_spelled_with_escapes_routes_as_spelled_plainly(
        root: str, rest: str, mask: list[bool], raw_holds_root: bool) -> None:
    # The mount's characters (not its "/") escaped at random: the path routed on (the
    # canonical form of the routing target) is the one of the plain spelling, for a server
    # whose raw_path holds root_path (Starlette's Mount, uvicorn 0.54: path = raw_path
    # decoded) and for one whose raw_path is the part under the mount (earlier uvicorn:
    # path = root_path + raw_path decoded).
    escaped = "".join(f"%{ord(c):02X}" if c != "/" and mask[i % 8] else c
                      for i, c in enumerate(root))

    def target(raw: str) -> str:
        path = unquote(raw) if raw_holds_root else root + unquote(raw)
        return canonical_path(_routing_target({"raw_path": raw.encode(), "path": path}, root))

    assert target(escaped + rest) == target(root + rest)


def test_asgi_a_segment_that_only_starts_like_the_mount_is_not_the_mount() -> None:
    for raw in ("/%6Dntx/admin", "/%6Dn/admin", "/mnt%2Fadmin"):
        assert _routing_target({"raw_path": raw.encode(), "path": unquote(raw)}, "/mnt") == raw


@pytest.mark.parametrize("name", ["host", bytearray(b"x-a"), "x-a"], ids=["str-host",
                                                                       "bytearray", "str"])
def test_asgi_header_name_that_is_not_bytes_is_400_not_a_crash(name: object) -> None:
    # www.rst: header names are byte strings. Before, a bytearray name raised TypeError in
    # _read_headers and a str one in _backend_headers (str.translate): a 500 from the server.
    sent: list[Any] = []
    ran: list[object] = []

    async def app(scope: object, receive: object, send: object) -> None:  # pragma: no cover
        ran.append(scope)

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": "/", "raw_path": b"/",
             "query_string": b"", "root_path": "",
             "headers": [(b"host", b"shop.example.com"), (name, b"1")],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80), "extensions": {}}
    ingress_app = ingresslib.IngressASGI(
        ingresslib.Router(ingresslib.parse_manifests(ROUTES), seed=1),
        backends={"default/web": app})
    asyncio.run(ingress_app(scope, receive, send))
    assert sent[0]["status"] == 400 and not ran
