"""Drive one request through both of ingresslib's request paths and reduce each to an Outcome.

The two paths: the h11 sans-IO proxy core (``ingresslib.proxy.Proxy`` over a ``Router``, its
actions performed here as tests/_proxy_harness.py and tests/test_asgi_conformance.py do) and
the in-process ASGI adapter (``IngressASGI``, called with the scope uvicorn builds from the
same bytes). Each path gets its own ``Router`` built from the same manifests with the same seed,
so a seeded canary draw comes out the same on both.

An ``Outcome`` holds what tests/test_proxy_asgi_agree_s13.py compares: the status, Location,
which backend got the request (a Service name: the proxy's endpoint address maps to it, the
adapter's mounted app is named after it), the target the backend saw, the forwarded headers it
saw, the other request header names it saw, and the HSTS / Set-Cookie response headers.
"""

from __future__ import annotations

import asyncio
import base64
import functools
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from ingresslib._asgi import DECISION_KEY, IngressASGI
from ingresslib._load import parse_manifests
from ingresslib._resources import Resources
from ingresslib._router import Router
from ingresslib.proxy import OpenUpstream, Proxy, ProxySettings, SendDownstream, SendUpstream

P = "nginx.ingress.kubernetes.io/"
#: The Services of every generated manifest set; service ``s<i>`` has the one endpoint
#: ``10.0.<i>.1:8080`` (one endpoint each: which endpoint the proxy chose names the Service).
SERVICES = ("s0", "s1", "s2", "s3")
#: The request headers written by this hop (SEMANTICS §9), compared value for value.
FORWARDED = (b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-port",
             b"x-forwarded-prefix", b"x-forwarded-scheme", b"x-scheme", b"x-real-ip",
             b"x-request-id", b"x-original-uri", b"x-original-forwarded-for")
#: Request headers not compared by name: the body framing the ASGI server keeps as it gave it
#: and the proxy re-frames, and ``connection``, which the proxy writes for its upstream
#: connection (docs/asgi.md: "`Content-Length` and `Transfer-Encoding` stay as the server gave
#: them"; keep-alive "[is] about connections to endpoints"). ``host`` is compared apart.
FRAMING = {b"content-length", b"transfer-encoding", b"connection"}


def service_yaml(name: str, index: int) -> str:
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
endpoints: [{{addresses: [10.0.{index}.1]}}]
"""


@dataclass(frozen=True)
class PathSpec:
    path: str
    path_type: str  # "Exact" | "Prefix"
    service: str


@dataclass(frozen=True)
class IngressSpec:
    name: str
    host: str  # "" : a rule without host
    paths: tuple[PathSpec, ...]
    annotations: tuple[tuple[str, str], ...] = ()
    tls: bool = False
    #: A Service for spec.defaultBackend (None: none).
    default_backend: str | None = None

    def yaml(self, order: int) -> str:
        ann = ", ".join(f"{k!r}: {v!r}" for k, v in self.annotations)
        quoted = f"'{self.host}'" if self.host.startswith("*") else self.host
        tls_block = (f"\n  tls: [{{hosts: [{quoted}], secretName: {self.name}-tls}}]"
                     if self.tls and self.host else "")
        host_line = f"host: {quoted}\n    " if self.host else ""
        paths = "".join(f"""
      - path: {p.path!r}
        pathType: {p.path_type}
        backend: {{service: {{name: {p.service}, port: {{number: 80}}}}}}""" for p in self.paths)
        default = (f"\n  defaultBackend: {{service: {{name: {self.default_backend}, "
                   "port: {number: 80}}}" if self.default_backend else "")
        return f"""
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {self.name}
  namespace: default
  creationTimestamp: '2024-01-01T00:00:{order:02d}Z'
  annotations: {{{ann}}}
spec:{tls_block}{default}
  rules:
  - {host_line}http:
      paths:{paths}
"""


#: The basic-auth users of ``auth-secret: users`` (the Secret every manifest set holds):
#: ``alice`` / ``pw``.
USERS_SECRET = f"""
---
apiVersion: v1
kind: Secret
metadata: {{name: users, namespace: default}}
type: Opaque
data: {{auth: {base64.b64encode(b"alice:{PLAIN}pw").decode()}}}
"""


def manifests_text(ingresses: tuple[IngressSpec, ...]) -> str:
    return "".join([*(ing.yaml(i) for i, ing in enumerate(ingresses)),
                    *(service_yaml(s, i) for i, s in enumerate(SERVICES)), USERS_SECRET])


def tls_hosts_of(ingresses: tuple[IngressSpec, ...]) -> frozenset[str]:
    """The hosts served over HTTPS: each Ingress's spec.tls hosts (given to both paths alike,
    as the proxy's and the adapter's ``tls_hosts``)."""
    return frozenset(i.host for i in ingresses if i.tls and i.host)


@dataclass(frozen=True)
class RequestSpec:
    method: str
    target: str  # path and "?query" as sent
    host: str | None  # None: an HTTP/1.0 request without Host
    headers: tuple[tuple[str, str], ...]
    body: bytes
    https: bool
    peer: str
    #: HTTP/1.0 (always so without Host).
    http10: bool = False
    #: The body sent chunked (no Content-Length; HTTP/1.1 only).
    chunked: bool = False

    @property
    def version(self) -> str:
        return "1.0" if self.host is None or self.http10 else "1.1"

    def _framing(self) -> list[tuple[str, str]]:
        if self.chunked and self.version == "1.1":
            return [("Transfer-Encoding", "chunked")]
        if self.body or self.method in ("POST", "PUT"):
            return [("Content-Length", str(len(self.body)))]
        return []

    def wire(self) -> bytes:
        lines = [f"{self.method} {self.target} HTTP/{self.version}"]
        if self.host is not None:
            lines.append(f"Host: {self.host}")
        lines += [f"{n}: {v}" for n, v in (*self.headers, *self._framing())]
        body = self.body
        if self._framing()[:1] == [("Transfer-Encoding", "chunked")]:
            body = (b"%x\r\n%s\r\n" % (len(body), body) if body else b"") + b"0\r\n\r\n"
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body

    def scope(self) -> dict[str, Any]:
        """The scope uvicorn (h11 protocol) builds from ``wire()``: names lower-cased,
        ``raw_path`` the target before ``?``, ``path`` its percent-decoding."""
        raw_path, _, query = self.target.partition("?")
        headers: list[tuple[bytes, bytes]] = []
        if self.host is not None:
            headers.append((b"host", self.host.encode("latin-1")))
        headers += [(n.lower().encode("latin-1"), v.encode("latin-1"))
                    for n, v in (*self.headers, *self._framing())]
        port = 443 if self.https else 80
        return {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"},
                "http_version": self.version,
                "method": self.method, "scheme": "https" if self.https else "http",
                "path": unquote(raw_path), "raw_path": raw_path.encode("latin-1"),
                "query_string": query.encode("latin-1"), "root_path": "", "headers": headers,
                "client": (self.peer, 40000), "server": ("127.0.0.1", port), "extensions": {}}


@dataclass
class Outcome:
    """One path's handling of one request. ``backend`` None: answered without a backend."""

    status: int
    location: bytes | None = None
    backend: str | None = None
    target: bytes | None = None
    forwarded: dict[bytes, list[bytes]] = field(default_factory=dict)
    #: The other request header names the backend saw (hop-by-hop removal), in order.
    names: list[bytes] = field(default_factory=list)
    host: bytes | None = None
    hsts: bytes | None = None
    cookies: list[bytes] = field(default_factory=list)
    #: The matched Ingress's annotations (the adapter's Decision; not compared).
    annotations: dict[str, str] = field(default_factory=dict, compare=False)
    #: The adapter's Decision chose the canary backend (not compared: statistics only).
    canary: bool = field(default=False, compare=False)


def _split_head(head: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    lines = head.split(b"\r\n")
    return lines[0], [(n.strip().lower(), v.strip())
                      for n, _, v in (ln.partition(b":") for ln in lines[1:] if ln)]


def _fill_request_side(out: Outcome, headers: list[tuple[bytes, bytes]]) -> None:
    for name, value in headers:
        if name in FORWARDED:
            out.forwarded.setdefault(name, []).append(value)
        elif name == b"host":
            out.host = value
        elif name not in FRAMING:
            out.names.append(name)


def _fill_response_side(out: Outcome, headers: list[tuple[bytes, bytes]]) -> None:
    for name, value in headers:
        if name == b"location":
            out.location = value
        elif name == b"strict-transport-security":
            out.hsts = value
        elif name == b"set-cookie":
            out.cookies.append(value)


@functools.lru_cache(maxsize=64)
def _resources(manifests: str) -> Resources:
    # Parsed once for both paths (Resources is frozen; each path builds its own Router):
    # the YAML parse is most of an example's time.
    return parse_manifests(manifests)


def _router(manifests: str) -> Router:
    return Router(_resources(manifests), seed=1)


def via_proxy(manifests: str, req: RequestSpec, settings: ProxySettings,
              tls_hosts: frozenset[str], https_port: int = 443) -> Outcome:
    proxy = Proxy(_router(manifests), settings, tls_hosts=tls_hosts, clock=None,
                  https_port=https_port,
                  request_id=lambda: "0" * 32)
    conn = proxy.connection((req.peer, 40000), tls=req.https,
                            local_port=443 if req.https else 80, now=0.0)
    conn.start(0.0)
    actions = conn.receive_data(req.wire(), 0.0)
    answer = b"".join(a.data for a in actions if isinstance(a, SendDownstream))
    opens = [a for a in actions if isinstance(a, OpenUpstream)]
    if answer or not opens:
        # A local answer (a body over the limit may be found after the OpenUpstream).
        line, headers = _split_head(answer.partition(b"\r\n\r\n")[0])
        out = Outcome(int(line.split(b" ")[1]))
        _fill_response_side(out, headers)
        return out
    up = opens[0]
    sent = conn.upstream_connected(up.conn_id, 0.0)
    data = b"".join(a.data for a in sent if isinstance(a, SendUpstream))
    line, headers = _split_head(data.partition(b"\r\n\r\n")[0])
    ip = up.endpoint[0]
    out = Outcome(200, backend=SERVICES[int(ip.split(".")[2])], target=line.split(b" ")[1])
    _fill_request_side(out, headers)
    reply = conn.upstream_data(up.conn_id, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0.0)
    answer = b"".join(a.data for a in reply if isinstance(a, SendDownstream))
    line, headers = _split_head(answer.partition(b"\r\n\r\n")[0])
    out.status = int(line.split(b" ")[1])
    _fill_response_side(out, headers)
    return out


def via_asgi(manifests: str, req: RequestSpec, settings: ProxySettings,
             tls_hosts: frozenset[str], https_port: int = 443) -> Outcome:
    return asyncio.run(_via_asgi(manifests, req, settings, tls_hosts, https_port))


async def _via_asgi(manifests: str, req: RequestSpec, settings: ProxySettings,
                    tls_hosts: frozenset[str], https_port: int) -> Outcome:
    seen: list[tuple[str, dict[str, Any]]] = []
    sent: list[dict[str, Any]] = []

    def mounted(name: str) -> Any:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            seen.append((name, scope))
            while True:
                m = await receive()
                if m["type"] == "http.disconnect" or not m.get("more_body"):
                    break
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"ok"})
        return app

    chunks = [req.body]

    async def receive() -> dict[str, Any]:
        if chunks:
            return {"type": "http.request", "body": chunks.pop(), "more_body": False}
        await asyncio.sleep(0)
        return {"type": "http.disconnect"}

    async def send(m: Any) -> None:
        sent.append(dict(m))

    app = IngressASGI(_router(manifests), {f"default/{s}": mounted(s) for s in SERVICES},
                      settings=settings, tls_hosts=tls_hosts, https_port=https_port,
                      request_id=lambda: "0" * 32)
    await app(req.scope(), receive, send)
    start = sent[0]
    out = Outcome(int(start["status"]))
    _fill_response_side(out, [(bytes(n).lower(), bytes(v)) for n, v in start.get("headers", [])])
    if seen:
        name, scope = seen[0]
        out.backend = name
        out.annotations = dict(scope[DECISION_KEY].match.annotations)
        out.canary = bool(scope[DECISION_KEY].canary)
        qs = scope["query_string"]
        out.target = scope["raw_path"] + (b"?" + qs if qs else b"")
        _fill_request_side(out, [(bytes(n).lower(), bytes(v)) for n, v in scope["headers"]])
    return out
