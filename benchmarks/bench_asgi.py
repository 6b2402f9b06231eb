"""What ``IngressASGI`` adds to one ASGI call, next to a bare call of the app it mounts.

    .venv/bin/python -m pytest benchmarks/bench_asgi.py -q -p no:cacheprovider

One request per call, driven without an event loop (``coroutine.send(None)``: the server's
``receive`` and ``send`` here never suspend), so the figures are the adapter's own CPU work:
routing (``Router.route`` on a small table), the proxy's decisions (redirects, body limit,
HSTS, affinity), the scope copy and the backend headers the proxy would send
(``rewrite_headers``). The request is what uvicorn hands over for a browser's
``GET /api/users?page=2`` to ``shop.test`` (15 headers, ``Connection: keep-alive``); the POST
case adds a 2 KiB body in one ``http.request`` message, read by the app (so the body-size count
of ``proxy-body-size`` runs).

Cases (``us_per_call``: pytest-benchmark's median round, per call; ``us_per_call_min``: its
fastest round):

* ``floor GET`` / ``floor POST`` - the mounted app called directly: what a server pays anyway;
* ``adapter GET`` - ``IngressASGI`` with the defaults (the proxy's backend headers);
* ``adapter GET rewrite_headers=False`` - the scope's headers passed as they came;
* ``adapter POST`` - the defaults, with a body.

Each call gets a new scope with new header ``bytes`` (built untimed, before the round), as a
server makes one per request: no hash of a header name or path is left from an earlier call.

``us_added_to_floor_cpu`` is measured *paired*, in this thread's CPU time
(``time.thread_time_ns``): each of 41 rounds times the floor and the adapter over the same
number of calls back to back (alternating which goes first) and the median of the differences
is kept, so the time the process waits for a CPU on a shared machine is not counted. The
wall-clock figures (``us_per_call``) include that wait: compare them only between runs made
alternately on the same machine.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import pytest

from ingresslib._asgi import DECISION_KEY, IngressASGI
from ingresslib._load import parse_manifests

#: Calls per timed round.
CALLS = 500

MANIFESTS = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: shop, namespace: default}
spec:
  rules:
  - host: shop.test
    http:
      paths:
      - {path: /api, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}
      - {path: /static/, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
  - host: admin.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: default}
spec: {ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: api-1, namespace: default, labels: {kubernetes.io/service-name: api}}
addressType: IPv4
ports: [{port: 8080}]
endpoints: [{addresses: [10.0.0.1]}]
"""

#: A browser's navigation request, as uvicorn passes it (names lower-cased).
BROWSER_HEADERS: list[tuple[bytes, bytes]] = [
    (b"host", b"shop.test"),
    (b"connection", b"keep-alive"),
    (b"sec-ch-ua", b'"Chromium";v="131", "Not_A Brand";v="24"'),
    (b"sec-ch-ua-mobile", b"?0"),
    (b"sec-ch-ua-platform", b'"Linux"'),
    (b"upgrade-insecure-requests", b"1"),
    (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                    b"Chrome/131.0.0.0 Safari/537.36"),
    (b"accept", b"text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,"
                b"image/webp,image/apng,*/*;q=0.8"),
    (b"sec-fetch-site", b"none"),
    (b"sec-fetch-mode", b"navigate"),
    (b"sec-fetch-user", b"?1"),
    (b"sec-fetch-dest", b"document"),
    (b"accept-encoding", b"gzip, deflate, br, zstd"),
    (b"accept-language", b"en-US,en;q=0.9"),
    (b"cookie", b"session=4f6a1c2e9b; theme=dark"),
]

BODY = b"q=" + b"x" * 2046


def scope_for(method: str) -> dict[str, Any]:
    """A new scope with new header bytes objects, as a server builds one per request (so no
    hash of a header name is cached from an earlier call)."""
    headers = list(BROWSER_HEADERS)
    if method == "POST":
        headers += [(b"content-type", b"application/x-www-form-urlencoded"),
                    (b"content-length", str(len(BODY)).encode())]
    return {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1", "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 54321),
        "scheme": "http", "method": method, "root_path": "", "path": "/api/users",
        "raw_path": bytes(bytearray(b"/api/users")), "query_string": b"page=2",
        "headers": [(bytes(bytearray(n)), bytes(bytearray(v))) for n, v in headers],
        "state": {},
    }


async def downstream(scope: Any, receive: Any, send: Any) -> None:
    """A minimal app: reads the request body, answers 200 with a short body."""
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


def caller(app: Any, body: bytes, sent: list[Any] | None = None
           ) -> Callable[[list[dict[str, Any]]], None]:
    """ASGI calls of ``app``, one per scope given, each driven to its end without an event
    loop."""
    message = {"type": "http.request", "body": body, "more_body": False}

    async def receive() -> dict[str, Any]:
        return message

    async def send(msg: Any) -> None:
        if sent is not None:
            sent.append(msg)

    def calls(scopes: list[dict[str, Any]]) -> None:
        for scope in scopes:
            coro = app(scope, receive, send)
            try:
                coro.send(None)
            except StopIteration:
                continue
            coro.close()
            raise RuntimeError("the call suspended: receive/send must not")

    return calls


def adapter(**options: Any) -> IngressASGI:
    res = parse_manifests(MANIFESTS)
    return IngressASGI(res, {"default/api:80": downstream, "default/web": downstream},
                       **options)


def paired(floor: Callable[[list[dict[str, Any]]], None],
           calls: Callable[[list[dict[str, Any]]], None], method: str,
           rounds: int = 41) -> float:
    """Median over rounds of (adapter - floor) CPU time per call (this thread's:
    ``time.thread_time_ns``, so the time the process spends descheduled on a shared machine
    is not counted), back to back on fresh scopes, alternating which goes first."""
    diffs = []
    for i in range(rounds):
        a, b = fresh_scopes(method), fresh_scopes(method)
        t0 = time.thread_time_ns()
        (floor if i % 2 == 0 else calls)(a)
        t1 = time.thread_time_ns()
        (calls if i % 2 == 0 else floor)(b)
        t2 = time.thread_time_ns()
        t_floor, t_call = (t1 - t0, t2 - t1) if i % 2 == 0 else (t2 - t1, t1 - t0)
        diffs.append((t_call - t_floor) / CALLS)
    return statistics.median(diffs) / 1000


def fresh_scopes(method: str) -> list[dict[str, Any]]:
    return [scope_for(method) for _ in range(CALLS)]


#: name -> (method, adapter options or None for the floor)
CASES: dict[str, tuple[str, dict[str, Any] | None]] = {
    "floor GET": ("GET", None),
    "adapter GET": ("GET", {}),
    "adapter GET rewrite_headers=False": ("GET", {"rewrite_headers": False}),
    "floor POST": ("POST", None),
    "adapter POST": ("POST", {}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_asgi_call(benchmark: Any, record: Any, case: str) -> None:
    method, options = CASES[case]
    body = BODY if method == "POST" else b""
    floor = caller(downstream, body)
    app: Any = downstream if options is None else adapter(**options)

    # Sanity (untimed): the adapter routed to the app, which answered 200 with its body.
    sent: list[Any] = []
    seen: list[Any] = []

    async def spy(s: Any, receive: Any, send: Any) -> None:
        seen.append(s)
        await downstream(s, receive, send)

    scope = scope_for(method)
    if options is not None:
        probe = IngressASGI(parse_manifests(MANIFESTS), {"default/api:80": spy}, **options)
        caller(probe, body, sent)([scope])
        child = seen[0]
        assert child[DECISION_KEY].backend == "default/api:80"
        assert child["root_path"] == "/api" and child["path"] == "/api/users"
        names = [n for n, _ in child["headers"]]
        if options.get("rewrite_headers", True):
            assert b"x-forwarded-for" in names and b"connection" not in names
        else:
            assert names == [n for n, _ in scope["headers"]]
    else:
        caller(downstream, body, sent)([scope])
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 200 and sent[1]["body"] == b"ok"

    calls = caller(app, body)
    calls(fresh_scopes(method))  # warm: route options, the Router's lazy state, caches
    added = None if options is None else paired(floor, calls, method)

    benchmark.group = "ASGI call"
    benchmark.extra_info.update(case=case, calls_per_round=CALLS)
    benchmark.pedantic(calls, setup=lambda: ((fresh_scopes(method),), {}), rounds=30,
                       warmup_rounds=2)
    if benchmark.stats is None:
        return  # --benchmark-disable: a smoke run, nothing timed
    us = benchmark.stats.stats.median * 1e6 / CALLS
    us_min = benchmark.stats.stats.min * 1e6 / CALLS
    benchmark.extra_info.update(us_per_call=round(us, 3), us_per_call_min=round(us_min, 3),
                                us_added=None if added is None else round(added, 3))
    record(what=f"ASGI {case}", us_per_call=round(us, 2), us_per_call_min=round(us_min, 2),
           us_added_to_floor_cpu=None if added is None else round(added, 2))
