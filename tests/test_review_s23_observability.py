"""Fresh-eyes review of the metrics and the access log (session 23, A4), end to end.

Real requests go through a ``ProxyServer`` on 127.0.0.1 (plain HTTP and TLS listeners) in front
of a real backend on 127.0.0.1, routed by a real ``Router``; every request's
``RequestRecord`` goes to the access log (``access_fields``/``format_line``, the JSON form) and
to ``Metrics``. Each test checks the fields of one kind of request against what ingress-nginx's
default ``log-format-upstream`` (nginx's ``$upstream_addr``, ``$upstream_status``,
``$upstream_response_length``, ``$upstream_response_time`` with one entry per try, ``$status``,
``$body_bytes_sent``, ``$request_length``) and its ``monitor.lua``/``socket.go`` give:

- a retry after a refused connect: ``a, b`` / ``0, 5`` / ``t1, t2`` / ``502, 200``;
- a client that leaves before the answer: ``499``, ``$upstream_status`` ``-``, no header time;
- the 413 of a Content-Length over ``proxy-body-size``: ``[-]`` and empty location labels;
- a WebSocket 101: the tunnel's bytes in ``$body_bytes_sent``/``$bytes_sent``, not in
  ``$request_length`` nor ``$upstream_response_length``;
- TLS, a canary (``[main] [canary]``, ``canary`` label, ``service`` the main's), a 404 no
  rule took (``upstream-default-backend``), HEAD and 304 (``$body_bytes_sent`` 0), a
  request refused while its head was read (``[]``, not counted).

No defect was found in ingresslib/_metrics.py or ingresslib/_accesslog.py by these runs: the
tests pin the behaviour (they pass on the tree before session 23 as well).
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import re
import ssl
from collections.abc import Iterator
from typing import Any

import pytest
import trustme
from prometheus_client.parser import text_string_to_metric_families

import ingresslib
from ingresslib._accesslog import _json_fields, access_fields, format_line
from ingresslib._metrics import Metrics, hosts_of
from ingresslib._tls import CertificateStore
from ingresslib.proxy import ProxyServer
from ingresslib.proxy._actions import RequestRecord

P = "nginx_ingress_controller"
UTC = datetime.timezone.utc
_T = r"[0-9]+\.[0-9]{3}"  # an nginx time, "%T.%03M"


async def _backend(held: asyncio.Event, release: asyncio.Event, r: asyncio.StreamReader,
                   w: asyncio.StreamWriter) -> None:
    """A keep-alive HTTP/1.1 backend: ``/ws`` upgrades and echoes once, ``/304`` answers 304,
    ``/hold`` sets ``held`` and waits for ``release``, HEAD gets a head only, anything else
    ``hello``."""
    try:
        while True:
            head = b""
            while b"\r\n\r\n" not in head:
                d = await r.read(65536)
                if not d:
                    return
                head += d
            method, target, _ = head.split(b"\r\n", 1)[0].split(b" ")
            lower = head.lower()
            if b"content-length:" in lower:
                n = int(lower.split(b"content-length:")[1].split(b"\r\n")[0])
                body = head.split(b"\r\n\r\n", 1)[1]
                while len(body) < n:
                    d = await r.read(65536)
                    if not d:
                        return
                    body += d
            if target.startswith(b"/ws"):
                w.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                        b"Connection: Upgrade\r\n\r\n")
                d = await r.read(100)
                w.write(b"echo:" + d)
                await w.drain()
                return
            if target.startswith(b"/hold"):
                held.set()
                await release.wait()
                return
            if target.startswith(b"/304"):
                w.write(b'HTTP/1.1 304 Not Modified\r\nETag: "x"\r\n\r\n')
            elif method == b"HEAD":
                w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n")
            else:
                w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
            await w.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        w.close()


def _manifests(port: int, leaf: trustme.LeafCert) -> str:
    crt = base64.b64encode(leaf.cert_chain_pems[0].bytes()).decode()
    key = base64.b64encode(leaf.private_key_pem.bytes()).decode()
    svc = "{{name: {0}, port: {{number: 80}}}}"
    return f"""
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  namespace: shop
  annotations:
    nginx.ingress.kubernetes.io/proxy-body-size: "10"
    nginx.ingress.kubernetes.io/ssl-redirect: "false"
spec:
  tls: [{{hosts: [foo.test], secretName: tls}}]
  rules:
  - host: foo.test
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {svc.format("web")}}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: retry
  namespace: shop
spec:
  rules:
  - host: retry.test
    http:
      paths:
      - {{path: /r, pathType: Prefix, backend: {{service: {svc.format("two")}}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: can
  namespace: shop
  annotations:
    nginx.ingress.kubernetes.io/canary: "true"
    nginx.ingress.kubernetes.io/canary-by-header: "x-canary"
spec:
  rules:
  - host: foo.test
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: web2, port: {{name: http}}}}}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: shop}}
spec: {{ports: [{{port: 80, targetPort: {port}}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: web2, namespace: shop}}
spec: {{ports: [{{name: http, port: 80, targetPort: {port}}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: two, namespace: shop}}
spec: {{ports: [{{port: 80, targetPort: {port}}}]}}
---
apiVersion: v1
kind: Endpoints
metadata: {{name: web, namespace: shop}}
subsets: [{{addresses: [{{ip: 127.0.0.1}}], ports: [{{port: {port}}}]}}]
---
apiVersion: v1
kind: Endpoints
metadata: {{name: web2, namespace: shop}}
subsets: [{{addresses: [{{ip: 127.0.0.1}}], ports: [{{port: {port}, name: http}}]}}]
---
apiVersion: v1
kind: Endpoints
metadata: {{name: two, namespace: shop}}
subsets: [{{addresses: [{{ip: 127.0.0.1}}], ports: [{{port: {port}}}]}},
          {{addresses: [{{ip: 127.0.0.2}}], ports: [{{port: {port}}}]}}]
---
apiVersion: v1
kind: Secret
metadata: {{name: tls, namespace: shop}}
type: kubernetes.io/tls
data: {{tls.crt: {crt}, tls.key: {key}}}
"""


#: name -> (request bytes, over TLS, abort the connection once the proxy forwarded it).
_CASES: dict[str, tuple[bytes, bool, bool]] = {
    "plain": (b"GET /a?x=1 HTTP/1.1\r\nHost: foo.test\r\nUser-Agent: ua\r\n"
              b"Referer: http://r/\r\nAuthorization: Basic dXNlcjpwYXNz\r\n"
              b"X-Request-ID: rid-1\r\nConnection: close\r\n\r\n", False, False),
    "head": (b"HEAD /a HTTP/1.1\r\nHost: foo.test\r\nConnection: close\r\n\r\n", False, False),
    "304": (b"GET /304 HTTP/1.1\r\nHost: foo.test\r\nConnection: close\r\n\r\n", False, False),
    "canary": (b"GET /c HTTP/1.1\r\nHost: foo.test\r\nx-canary: always\r\n"
               b"Connection: close\r\n\r\n", False, False),
    "413": (b"POST /a HTTP/1.1\r\nHost: foo.test\r\nContent-Length: 100\r\n"
            b"Connection: close\r\n\r\n" + b"x" * 100, False, False),
    "404": (b"GET /a HTTP/1.1\r\nHost: nope.test\r\nConnection: close\r\n\r\n", False, False),
    "499": (b"GET /hold HTTP/1.1\r\nHost: foo.test\r\n\r\n", False, True),
    "ws": (b"GET /ws HTTP/1.1\r\nHost: foo.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
           False, False),
    "tls": (b"PUT /t HTTP/1.1\r\nHost: foo.test\r\nContent-Length: 0\r\n"
            b"Connection: close\r\n\r\n", True, False),
    "400": (b"GET /x HTTP/1.1\r\nHost: foo.test\r\nBad Header\r\n\r\n", False, False),
}
#: Retries: round-robin over the two endpoints, one of which refuses (127.0.0.2): of two
#: requests, one is tried there first.
_RETRIES = 2


class _Run:
    def __init__(self) -> None:
        self.records: dict[str, list[RequestRecord]] = {}
        self.answers: dict[str, bytes] = {}
        self.metrics = Metrics()
        self.port = 0


async def _exchange(port: int, data: bytes, tls: bool, server_name: str | None,
                    then: bytes = b"") -> bytes:
    ctx = None
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx,
                                         server_hostname=server_name if tls else None)
    try:
        w.write(data)
        out = b""
        if then:
            while b"\r\n\r\n" not in out:
                d = await asyncio.wait_for(r.read(65536), 5)
                if not d:
                    break
                out += d
            w.write(then)
        while True:
            d = await asyncio.wait_for(r.read(65536), 5)
            if not d:
                return out
            out += d
            if then and out.endswith(b"echo:" + then):
                return out
    finally:
        w.close()


async def _run_all() -> _Run:
    run = _Run()
    ca = trustme.CA()
    held, release = asyncio.Event(), asyncio.Event()
    up = await asyncio.start_server(lambda r, w: _backend(held, release, r, w), "127.0.0.1", 0)
    port = up.sockets[0].getsockname()[1]
    run.port = port
    res = ingresslib.parse_manifests(_manifests(port, ca.issue_cert("foo.test")))
    router = ingresslib.Router(res, seed=1)
    store = CertificateStore()
    store.update(res)
    run.metrics.set_hosts(hosts_of(res, router.table.served))
    got: list[RequestRecord] = []

    def on_record(record: RequestRecord) -> None:
        got.append(record)
        run.metrics.observe(record)

    server = ProxyServer(router, cert_store=store, on_record=on_record)
    await server.start(("127.0.0.1", 0), ("127.0.0.1", 0))
    (_, _, http), (_, _, https) = server.addresses

    async def settle(n: int) -> None:
        for _ in range(500):
            if len(got) >= n:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"no record after {n - 1}")

    try:
        for name, (data, tls, abort) in _CASES.items():
            n = len(got)
            if abort:
                r, w = await asyncio.open_connection("127.0.0.1", http)
                w.write(data)
                await asyncio.wait_for(held.wait(), 5)  # the backend has the request
                w.transport.abort()
                run.answers[name] = b""
            elif name == "ws":
                run.answers[name] = await _exchange(http, data, False, None, then=b"ping")
            else:
                run.answers[name] = await _exchange(https if tls else http, data, tls,
                                                    "foo.test")
            await settle(n + 1)
            run.records[name] = got[n:]
        retries: list[RequestRecord] = []
        for _ in range(_RETRIES):
            n = len(got)
            await _exchange(http, b"GET /r HTTP/1.1\r\nHost: retry.test\r\n"
                            b"Connection: close\r\n\r\n", False, None)
            await settle(n + 1)
            retries.extend(got[n:])
        run.records["retry"] = retries
    finally:
        release.set()
        await server.shutdown(1)
        up.close()
        await up.wait_closed()
    return run


@pytest.fixture(scope="module")
def run() -> Iterator[_Run]:
    yield asyncio.run(_run_all())


def _line(record: RequestRecord) -> str:
    return format_line(access_fields(record, 0.0, UTC))


def _json(record: RequestRecord) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(_json_fields(access_fields(record, 0.0, UTC))))
    return out


def _one(run: _Run, name: str) -> RequestRecord:
    records = run.records[name]
    assert len(records) == 1, records
    return records[0]


def _samples(run: _Run) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """``{sample name: {sorted labels: value}}`` of the exposition, by a Prometheus parser."""
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for fam in text_string_to_metric_families(run.metrics.render().decode()):
        for s in fam.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def _labels(**kw: str) -> tuple[tuple[str, str], ...]:
    base = dict(canary="", host="foo.test", ingress="web", method="GET", namespace="shop",
                path="/", service="web", status="200")
    base.update(kw)
    return tuple(sorted(base.items()))


def _counted(run: _Run, metric: str, **kw: str) -> float:
    """The ``_count`` of histogram ``metric`` (or the value of ``requests``) for the labels."""
    # (the parser reads the Go client's counter ``…_requests`` as ``…_requests_total``)
    name = f"{P}_{metric}_total" if metric == "requests" else f"{P}_{metric}_count"
    return _samples(run).get(name, {}).get(_labels(**kw), 0.0)


_HEAD = r"127\.0\.0\.1 - (\S+) \[01/Jan/1970:00:00:00 \+0000\] "
_ID = r"[0-9a-f]{32}"


def test_a_proxied_request_logs_every_field(run: _Run) -> None:
    r = _one(run, "plain")
    line = _line(r)
    m = re.fullmatch(
        _HEAD + rf'"GET /a\?x=1 HTTP/1\.1" 200 5 "http://r/" "ua" (\d+) {_T} \[shop-web-80\] '
        rf"\[\] 127\.0\.0\.1:{run.port} 5 {_T} 200 rid-1", line)
    assert m is not None, line
    assert m.group(1) == "user"
    assert int(m.group(2)) == len(_CASES["plain"][0])  # $request_length: the whole request
    j = _json(r)
    assert j["status"] == 200 and j["upstream_status"] == "200"
    assert j["upstream_response_length"] == 5 and isinstance(j["request_time"], float)
    assert j["path"] == "/" and j["ingress"] == "shop/web"
    # monitor.lua: every timing of a single try is observed.
    for metric in ("requests", "request_duration_seconds", "connect_duration_seconds",
                   "header_duration_seconds", "response_duration_seconds", "request_size",
                   "response_size", "bytes_sent"):
        assert _counted(run, metric) == 1, metric


def test_head_and_304_send_no_body(run: _Run) -> None:
    for name, method, status, target in (("head", "HEAD", 200, "/a"), ("304", "GET", 304, "/304")):
        r = _one(run, name)
        line = _line(r)
        assert re.fullmatch(
            _HEAD + rf'"{method} {target} HTTP/1\.1" {status} 0 "-" "-" \d+ {_T} '
            rf"\[shop-web-80\] \[\] 127\.0\.0\.1:{run.port} 0 {_T} {status} {_ID}",
            line), line
        # $bytes_sent: the head only.
        assert r.bytes_out == len(run.answers[name])
        assert _counted(run, "requests", method=method, status=str(status)) == 1


def test_a_canary_request_names_both_upstreams_and_the_main_service(run: _Run) -> None:
    r = _one(run, "canary")
    assert re.fullmatch(
        _HEAD + rf'"GET /c HTTP/1\.1" 200 5 "-" "-" \d+ {_T} \[shop-web-80\] '
        rf"\[shop-web2-http\] 127\.0\.0\.1:{run.port} 5 {_T} 200 {_ID}", _line(r)), _line(r)
    # $service_name is the location's (main) Service; the canary shows in ``canary`` only.
    assert _counted(run, "requests", canary="shop-web2-http") == 1
    lat = _samples(run)[f"{P}_ingress_upstream_latency_seconds_count"]
    assert lat[(("canary", "shop-web2-http"), ("ingress", "web"), ("namespace", "shop"),
                ("service", "web"))] == 1


def test_a_content_length_over_the_body_size_is_a_413_before_the_location(run: _Run) -> None:
    r = _one(run, "413")
    assert re.fullmatch(
        _HEAD + rf'"POST /a HTTP/1\.1" 413 \d+ "-" "-" \d+ {_T} \[-\] \[\] - - - - {_ID}',
        _line(r)), _line(r)
    assert _counted(run, "requests", method="POST", status="413", ingress="", namespace="",
                    path="", service="") == 1
    assert _counted(run, "connect_duration_seconds", method="POST", status="413", ingress="",
                    namespace="", path="", service="") == 0


def test_a_request_no_rule_took_is_the_default_backend_and_not_counted_by_host(
        run: _Run) -> None:
    r = _one(run, "404")
    assert re.fullmatch(
        _HEAD + rf'"GET /a HTTP/1\.1" 404 \d+ "-" "-" \d+ {_T} \[upstream-default-backend\] '
        rf"\[\] - - - - {_ID}", _line(r)), _line(r)
    # socket.go: a Host the configuration does not serve is not counted.
    assert not any(dict(k).get("host") == "nope.test"
                   for k in _samples(run)[f"{P}_requests_total"])


def test_a_client_gone_before_the_answer_is_499_with_no_upstream_status(run: _Run) -> None:
    r = _one(run, "499")
    assert re.fullmatch(
        _HEAD + rf'"GET /hold HTTP/1\.1" 499 0 "-" "-" \d+ {_T} \[shop-web-80\] \[\] '
        rf"127\.0\.0\.1:{run.port} 0 {_T} - {_ID}", _line(r)), _line(r)
    assert _json(r)["upstream_status"] == "-"
    # $upstream_header_time is "-" (no head): not observed; the rest is.
    assert _counted(run, "requests", status="499") == 1
    assert _counted(run, "header_duration_seconds", status="499") == 0
    assert _counted(run, "response_duration_seconds", status="499") == 1
    assert _counted(run, "connect_duration_seconds", status="499") == 1


def test_a_websocket_counts_the_tunnel_in_the_bytes_sent_only(run: _Run) -> None:
    r = _one(run, "ws")
    data = _CASES["ws"][0]
    assert run.answers["ws"].endswith(b"echo:ping")
    # ($request_length: nginx counts the head only, not the bytes the tunnel carries from
    # the client afterwards; the core counted those too, depending on how they were split.)
    assert re.fullmatch(
        _HEAD + rf'"GET /ws HTTP/1\.1" 101 (\d+) "-" "-" \d+ {_T} \[shop-web-80\] '
        rf"\[\] 127\.0\.0\.1:{run.port} 0 {_T} 101 {_ID}", _line(r)), _line(r)
    assert r.bytes_in == len(data)
    assert r.bytes_out == len(run.answers["ws"])
    assert access_fields(r, 0.0, UTC)["body_bytes_sent"] == len(b"echo:ping")
    assert _counted(run, "requests", status="101") == 1


def test_tls_requests_log_like_plain_ones(run: _Run) -> None:
    r = _one(run, "tls")
    assert re.fullmatch(
        _HEAD + rf'"PUT /t HTTP/1\.1" 200 5 "-" "-" {len(_CASES["tls"][0])} {_T} '
        rf"\[shop-web-80\] \[\] 127\.0\.0\.1:{run.port} 5 {_T} 200 {_ID}", _line(r)), _line(r)
    assert _counted(run, "requests", method="PUT") == 1


def test_a_head_refused_is_logged_unnamed_and_not_counted(run: _Run) -> None:
    r = _one(run, "400")
    assert re.fullmatch(_HEAD + rf'"GET /x HTTP/1\.1" 400 \d+ "-" "-" \d+ {_T} \[\] \[\] '
                        rf"- - - - {_ID}", _line(r)), _line(r)
    assert _json(r)["proxy_upstream_name"] == ""
    assert not any(dict(k).get("status") == "400" for k in _samples(run)[f"{P}_requests_total"])


def test_a_retry_lists_every_try(run: _Run) -> None:
    lines = [_line(r) for r in run.records["retry"]]
    retried = [line for line in lines if ", " in line.split("]")[-1]]
    assert len(retried) == 1, lines
    assert re.fullmatch(
        _HEAD + rf'"GET /r HTTP/1\.1" 200 5 "-" "-" \d+ {_T} \[shop-two-80\] \[\] '
        rf"127\.0\.0\.2:{run.port}, 127\.0\.0\.1:{run.port} 0, 5 {_T}, {_T} 502, 200 {_ID}",
        retried[0]), retried[0]
    j = _json(next(r for r in run.records["retry"] if len(r.upstreams) == 2))
    assert j["upstream_addr"] == f"127.0.0.2:{run.port}, 127.0.0.1:{run.port}"
    assert j["upstream_status"] == "502, 200" and j["upstream_response_length"] == 5
    assert _counted(run, "requests", host="retry.test", ingress="retry", path="/r",
                    service="two") == _RETRIES
