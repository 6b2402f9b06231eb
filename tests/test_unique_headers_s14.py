"""Request-header rules nginx enforces before any location: a header it reads once, sent twice,
and an empty Host, both answered 400 on both request paths (the proxy core and IngressASGI).

nginx src/http/ngx_http_request.c (the same before and after nginx 1.23 reworked the table;
freenginx today the same), the
``ngx_http_headers_in[]`` entries whose handler is ``ngx_http_process_unique_header_line``:
If-Modified-Since, If-Unmodified-Since, If-Match, If-None-Match, Content-Length, Content-Range,
If-Range, Transfer-Encoding, Expect, Authorization. That handler: "if (*ph == NULL) { *ph = h;
... return NGX_OK; } ngx_log_error(NGX_LOG_INFO, r->connection->log, 0, "client sent duplicate
header line: ..."); ngx_http_finalize_request(r, NGX_HTTP_BAD_REQUEST);". Host has its own
handler with the same rule ("client sent duplicate host header"), then
``ngx_http_validate_host``, whose "if (dot_pos == host_len - 1) { host_len--; } if (host_len ==
0) { return NGX_DECLINED; }" makes ``Host:``, ``Host: .`` and ``Host: :80`` "client sent
invalid host header" (400); for an absolute-form target the request line's host goes through
the same function ("client sent invalid host in request line").

Before: two ``Authorization`` lines were read joined by the proxy (basic auth: 401) and the
first one by the adapter (200, the app called); every other repeated header here reached the
backend, and an empty or one-dot Host was routed to the rules without host.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest

from ingresslib._asgi import IngressASGI
from ingresslib._load import parse_manifests
from ingresslib._router import Router
from ingresslib.proxy import (
    CloseDownstream,
    OpenUpstream,
    Proxy,
    ProxySettings,
    SendDownstream,
)
from ingresslib.proxy import _headers
from ingresslib.proxy._errors import RemoteProxyError

from _agree_s13 import service_yaml as _svc

P = "nginx.ingress.kubernetes.io/"


#: a.test -> web; any other host, no host included -> catchall (the rules without host);
#: auth.test -> locked, behind basic auth (alice / pw).
MANIFESTS = f"""
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: web, namespace: default}}
spec:
  rules:
  - host: a.test
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
  - http:
      paths:
      - path: /
        pathType: Prefix
        backend: {{service: {{name: catchall, port: {{number: 80}}}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: locked
  namespace: default
  annotations: {{'{P}auth-type': basic, '{P}auth-secret': users}}
spec:
  rules:
  - host: auth.test
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: locked, port: {{number: 80}}}}}}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: users, namespace: default}}
type: Opaque
data: {{auth: {base64.b64encode(b"alice:{PLAIN}pw").decode()}}}
""" + _svc("web", 0) + _svc("catchall", 1) + _svc("locked", 2)
SERVICES = ("web", "catchall", "locked")

GOOD = "Basic " + base64.b64encode(b"alice:pw").decode()
BAD = "Basic " + base64.b64encode(b"alice:nope").decode()


# -- the two paths ----------------------------------------------------------------------------


def via_proxy(head: str, body: bytes = b"") -> tuple[int | None, str | None, bool]:
    """``(status of the proxy's own answer or None, the Service it opened a connection to,
    whether it closed the client connection)`` for the request ``head`` (request line and
    header lines) followed by a second, ordinary request on the same connection."""
    proxy = Proxy(Router(parse_manifests(MANIFESTS), seed=1), ProxySettings(), clock=None,
                  request_id=lambda: "0" * 32)
    conn = proxy.connection(("203.0.113.7", 40000), tls=False, local_port=80, now=0.0)
    conn.start(0.0)
    raw = (head + "\r\n\r\n").encode("latin-1") + body
    actions = conn.receive_data(raw + b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n", 0.0)
    answers = [a.data for a in actions if isinstance(a, SendDownstream)]
    opened = [a for a in actions if isinstance(a, OpenUpstream)]
    status = int(answers[0].split(b" ")[1]) if answers else None
    service = SERVICES[int(opened[0].endpoint[0].split(".")[2])] if opened else None
    if status == 400:
        # Refused: one answer, nothing opened, the pipelined request never read.
        assert len(answers) == 1 and not opened
    return status, service, any(isinstance(a, CloseDownstream) for a in actions)


#: How the adapter reads a scope's headers: the one-pass scan, the scan of
#: ``rewrite_headers=False`` and the general path (``_read_headers`` + ``_backend_headers``).
ADAPTER_PATHS = ("scan", "routing-scan", "general")


def via_asgi(head: str, path: str = "scan", body: bytes = b"") -> tuple[int, str | None]:
    """``(status, the Service whose app was called)`` for ``head`` given to IngressASGI as
    the scope uvicorn builds (names lower-cased, values as sent)."""
    lines = head.split("\r\n")
    method, target, version = lines[0].split(" ")
    headers = [(n.strip().lower().encode("latin-1"), v.strip().encode("latin-1"))
               for n, _, v in (ln.partition(":") for ln in lines[1:])]
    raw_path, _, query = target.partition("?")
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": version[5:],
             "method": method, "scheme": "http", "path": raw_path,
             "raw_path": raw_path.encode(), "query_string": query.encode(), "root_path": "",
             "headers": headers, "client": ("203.0.113.7", 40000),
             "server": ("127.0.0.1", 80), "extensions": {}}
    called: list[str] = []
    sent: list[dict[str, Any]] = []

    def mounted(name: str) -> Any:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            called.append(name)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})
        return app

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    app = IngressASGI(Router(parse_manifests(MANIFESTS), seed=1),
                      {f"default/{s}": mounted(s) for s in SERVICES},
                      rewrite_headers=path != "routing-scan")
    if path == "general":
        app._names = None  # every request on the general path
    asyncio.run(app(scope, receive, send))
    return int(sent[0]["status"]), called[0] if called else None


def assert_refused(head: str, body: bytes = b"") -> None:
    """400 on both paths, nothing reaching a backend; the proxy closes the connection."""
    assert via_proxy(head, body) == (400, None, True)
    for path in ADAPTER_PATHS:
        assert via_asgi(head, path, body) == (400, None), path


def assert_served(head: str, service: str, body: bytes = b"") -> None:
    status, got, _closed = via_proxy(head, body)
    assert (status, got) == (None, service)
    for path in ADAPTER_PATHS:
        assert via_asgi(head, path, body) == (200, service), path


# -- 1. a header nginx reads once, sent twice -------------------------------------------------

#: nginx's list (module docstring), each with a value a client could send, written as in the
#: table; the second line is spelled in lower case (one header whatever its case).
NGINX_UNIQUE = [
    ("If-Modified-Since", "Sat, 29 Oct 1994 19:43:31 GMT"),
    ("If-Unmodified-Since", "Sat, 29 Oct 1994 19:43:31 GMT"),
    ("If-Match", '"v1"'),
    ("If-None-Match", '"v1"'),
    ("Content-Length", "0"),
    ("Content-Range", "bytes 0-1/2"),
    ("If-Range", '"v1"'),
    ("Transfer-Encoding", "chunked"),
    ("Expect", "100-continue"),
    ("Authorization", GOOD),
]


@pytest.mark.parametrize(("name", "value"), NGINX_UNIQUE, ids=[n for n, _ in NGINX_UNIQUE])
def test_a_header_nginx_reads_once_twice_is_400(name: str, value: str) -> None:
    body = b"0\r\n\r\n" if name == "Transfer-Encoding" else b""
    head = f"POST / HTTP/1.1\r\nHost: a.test\r\n{name}: {value}\r\n{name.lower()}: {value}"
    assert_refused(head, body)
    # Not adjacent, and with another value: the same.
    head = (f"POST / HTTP/1.1\r\n{name}: {value}\r\nHost: a.test\r\nAccept: */*\r\n"
            f"{name.upper()}: x{value}")
    assert_refused(head, body)


def test_each_of_them_once_is_served() -> None:
    once = "\r\n".join(f"{n}: {v}" for n, v in NGINX_UNIQUE
                       if n not in ("Transfer-Encoding", "Expect"))
    assert_served(f"POST / HTTP/1.1\r\nHost: a.test\r\n{once}", "web")


def test_two_authorization_lines_on_a_basic_auth_route() -> None:
    # Before: the proxy read "good, bad" joined (401), the adapter the first line (200).
    for first, second in ((GOOD, BAD), (GOOD, GOOD), (BAD, GOOD)):
        assert_refused(f"GET / HTTP/1.1\r\nHost: auth.test\r\nAuthorization: {first}\r\n"
                       f"Authorization: {second}")
    assert_served(f"GET / HTTP/1.1\r\nHost: auth.test\r\nAuthorization: {GOOD}", "locked")
    assert via_proxy(f"GET / HTTP/1.1\r\nHost: auth.test\r\nAuthorization: {BAD}")[0] == 401
    for path in ADAPTER_PATHS:
        assert via_asgi(f"GET / HTTP/1.1\r\nHost: auth.test\r\nAuthorization: {BAD}",
                        path) == (401, None)


@pytest.mark.parametrize("name", ["Accept", "Cookie", "Range", "User-Agent", "Referer",
                                  "X-Forwarded-For", "Via", "X-Custom", "Accept-Encoding"])
def test_headers_nginx_reads_as_lists_may_repeat(name: str) -> None:
    # ngx_http_process_header_line / ngx_http_process_user_agent: repeated lines are kept.
    assert_served(f"GET / HTTP/1.1\r\nHost: a.test\r\n{name}: a\r\n{name}: b", "web")


# -- 2. an empty Host --------------------------------------------------------------------------


@pytest.mark.parametrize("head", [
    "GET / HTTP/1.1\r\nHost: ",
    "GET / HTTP/1.0\r\nHost: ",
    "GET http://a.test/ HTTP/1.1\r\nHost: ",
    "GET / HTTP/1.1\r\nHost: .",
    "GET / HTTP/1.1\r\nHost: .:80",
    "GET / HTTP/1.1\r\nHost: :80",
    "GET / HTTP/1.0\r\nHost: .",
    "GET http://./ HTTP/1.0",
    "GET http://.:8080/x HTTP/1.0",
], ids=["empty", "empty-http10", "empty-absolute-form", "dot", "dot-port", "port-only",
        "dot-http10", "absolute-form-dot", "absolute-form-dot-port"])
def test_a_host_that_is_empty_is_400(head: str) -> None:
    assert_refused(head)


@pytest.mark.parametrize(("head", "service"), [
    ("GET / HTTP/1.0", "catchall"),                         # no Host at all: as before
    ("GET / HTTP/1.0\r\nAccept: */*", "catchall"),
    ("GET / HTTP/1.1\r\nHost: a.test.", "web"),             # one trailing dot stays valid
    ("GET / HTTP/1.1\r\nHost: A.test.:80", "web"),
    ("GET http://a.test/ HTTP/1.0", "web"),                 # the authority is the host
    ("GET / HTTP/1.1\r\nHost: b.test", "catchall"),
])
def test_hosts_still_served(head: str, service: str) -> None:
    assert_served(head, service)


def test_check_host_and_the_header_check() -> None:
    check_host, check_host_header = _headers.check_host, _headers.check_host_header
    check_host(b"")  # no host (HTTP/1.0 without Host, explain's "/path"): still allowed
    for value in (b"", b".", b".:80", b":80"):
        with pytest.raises(RemoteProxyError) as e:
            check_host_header(value)
        assert e.value.status_hint == 400
    for value in (b".", b".:80"):
        with pytest.raises(RemoteProxyError):
            check_host(value)
    for value in (b"a.test", b"a.test.", b"a.test.:80", b".a.test", b"[::1]:80"):
        check_host_header(value)
