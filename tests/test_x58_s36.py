"""Session 36, x58: review of round 4 (x55, x56, x57, lead), the regex-timeout edges of x56.

x56 made X-Forwarded-Prefix depend on whether the rewrite applies to the request, which runs
the rule's rewrite regex once more, before the rewrite itself. These pin what that check does
with a regex that backtracks past ``REWRITE_TIMEOUT``: the proxy core still answers 500 without
opening an upstream connection (nginx's PCRE match limit: "ngx_regex_exec() failed"), within
the timeout, and a path the regex settles still goes up rewritten with the header; IngressASGI,
which applies no rewrite, counts a timeout as rewriting and passes the request on, bounded.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import ingresslib
from ingresslib._asgi import IngressASGI
from ingresslib.proxy._annotations import REWRITE_TIMEOUT

from _proxy_harness import ProxyPair, status_of

P = "nginx.ingress.kubernetes.io/"
H = b"Host: example.test\r\n"
# Backtracks exponentially on "/x" + "a" * n without a "y" (test_proxy_local_answers).
RULE = "/x(a|.)*(a|.)*(a|.)*y$"
CANONICAL = b"/x(a%7C.)*(a%7C.)*(a%7C.)*y$"


def _resources() -> ingresslib.Resources:
    return ingresslib.Resources.from_dicts([
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
         "metadata": {"name": "re", "annotations": {P + "use-regex": "true",
                                                    P + "rewrite-target": "/r/$1",
                                                    P + "x-forwarded-prefix": "/pre"}},
         "spec": {"rules": [{"host": "example.test", "http": {"paths": [
             {"path": RULE, "pathType": "ImplementationSpecific",
              "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
         "spec": {"ports": [{"port": 80, "targetPort": 8080}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "web-1", "labels": {"kubernetes.io/service-name": "web"}},
         "addressType": "IPv4", "ports": [{"port": 8080}],
         "endpoints": [{"addresses": ["10.0.0.1"]}]},
    ])


def test_the_proxy_answers_500_when_the_prefix_check_times_out() -> None:
    pair = ProxyPair(router=ingresslib.Router(_resources()))
    t0 = time.perf_counter()
    out = pair.send(b"GET " + CANONICAL + b"/" + b"a" * 30 + b" HTTP/1.1\r\n" + H + b"\r\n")
    elapsed = time.perf_counter() - t0
    assert status_of(out) == 500 and not pair.opens
    # One timeout, not the check's and the rewrite's one after the other.
    assert elapsed < 2 * REWRITE_TIMEOUT + 1.0
    assert pair.records[0].status == 500
    # A path the regex settles is rewritten, with the header, on the same connection.
    out = pair.send(b"GET " + CANONICAL + b"/ay HTTP/1.1\r\n" + H + b"\r\n")
    assert status_of(out) == 200
    head = bytes(pair.upstreams[-1].raw).split(b"\r\n\r\n", 1)[0].lower()
    assert head.startswith(b"get /r/")
    assert b"\r\nx-forwarded-prefix: /pre\r\n" in head + b"\r\n"


def _asgi_headers(raw: bytes) -> list[tuple[bytes, bytes]]:
    path = raw.decode("ascii").replace("%7C", "|")
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    adapter = IngressASGI(ingresslib.Router(_resources()), {"default/web": app})
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": raw,
             "query_string": b"", "root_path": "", "headers": [(b"host", b"example.test")],
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80)}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        pass

    asyncio.run(adapter(scope, receive, send))
    assert len(seen) == 1
    return [(bytes(n), bytes(v)) for n, v in seen[0]["headers"]]


def test_ingress_asgi_counts_a_timed_out_check_as_rewriting() -> None:
    t0 = time.perf_counter()
    headers = _asgi_headers(CANONICAL + b"/" + b"a" * 30)
    assert time.perf_counter() - t0 < REWRITE_TIMEOUT + 1.0
    assert (b"x-forwarded-prefix", b"/pre") in headers
    # The regex settles and applies: the header as the proxy sends it.
    assert (b"x-forwarded-prefix", b"/pre") in _asgi_headers(CANONICAL + b"/ay")
