"""Session 23 (A1): the proxy's retries on an ``upstream-hash-by`` backend are keyed.

``Router.next_endpoint`` takes the request as it was routed (``request=``, keyword-only,
default None); consistent hashing then walks the ring clockwise from the key's point to the
first untried endpoint, so the same key always retries to the same endpoint. The proxy core
passes it when the router's ``next_endpoint`` takes it (a router written to CONTRACT.md's
``next_endpoint(decision, tried)`` is called as before).
"""

from __future__ import annotations

import asyncio
import inspect
import socket
from collections import Counter
from typing import Any

import h11
import pytest

from ingresslib import Router, parse_manifests
from ingresslib._balance import RequestContext
from ingresslib._hashing import hash_key
from ingresslib._router import takes_request
from tests._proxy_harness import (FakeRouter, ProxyPair, Reply, Route, ingress_yaml, ok,
                                  web_service_yaml)
from tests._server_helpers import Client
from tests._upstream_helpers import TrackedUpstream, start_proxy

from _router_helpers import P, ingress, resources, simple_backend

Address = tuple[str, int]
_IPS = [f"10.0.0.{i}" for i in range(1, 7)]


def _router(annotations: dict[str, str], ips: list[str] = _IPS, seed: int | None = None
            ) -> Router:
    ing = ingress("web", [("a.test", "/", "Prefix", "web", 80)], annotations)
    return Router(resources(ing, *simple_backend("web", ips)), seed=seed)


def _clockwise(d: Any, key: str, tried: tuple[Address, ...]) -> Address:
    """The first endpoint clockwise from ``key``'s point on the decision's ring that is not
    in ``tried`` (the reference of a keyed retry)."""
    eps = d.handle.eps
    ring = d.handle.balancer.ring(eps)
    skip = {eps.endpoints.index(ep) for ep in tried}
    return eps.endpoints[ring.lookup_skipping(hash_key(key), skip)]  # type: ignore[no-any-return]


# --- Router.next_endpoint(..., request=) ----------------------------------------------------------


def test_next_endpoint_takes_an_optional_keyword_only_request() -> None:
    # Every existing caller (two positional arguments) keeps working.
    p = inspect.signature(Router.next_endpoint).parameters["request"]
    assert p.kind is p.KEYWORD_ONLY and p.default is None
    router = _router({P + "upstream-hash-by": "$request_uri"})
    d = router.route("GET", "a.test", "/x")
    assert d is not None and d.endpoint is not None
    assert router.next_endpoint(d, (d.endpoint,)) not in (None, d.endpoint)


def test_router_retry_with_the_request_walks_clockwise_from_the_key() -> None:
    # DEFECT: next_endpoint had no way to know the key (its context was the rule's host and
    # path, retry True): a failed endpoint's retries were spread over the survivors in ring
    # shares, each retry of one key possibly elsewhere. Now the key's clockwise walk.
    router = _router({P + "upstream-hash-by": "$request_uri"})
    targets: dict[Address, Counter[Address]] = {}
    for k in range(300):
        path = f"/k{k}"
        d = router.route("GET", "a.test", path)
        assert d is not None and d.endpoint is not None
        req = RequestContext("GET", "a.test", path)
        want = _clockwise(d, path, (d.endpoint,))
        for _ in range(3):
            assert router.next_endpoint(d, (d.endpoint,), request=req) == want
        # The second retry goes on clockwise past both tried endpoints.
        want2 = _clockwise(d, path, (d.endpoint, want))
        assert router.next_endpoint(d, [d.endpoint, want], request=req) == want2
        targets.setdefault(d.endpoint, Counter())[want] += 1
    # A failed endpoint's keys spread over the survivors (not all to one).
    for failed, got in targets.items():
        assert failed not in got
        if sum(got.values()) >= 30:
            assert len(got) >= 3, (failed, got)


def test_router_keyed_retry_reads_the_key_as_route_does() -> None:
    # Header, cookie, client address and query keys: the request given to next_endpoint is
    # the one route was given, so the walk starts where the first pick was.
    cases: list[tuple[str, Any]] = [
        ("$http_x_user", lambda k: dict(headers=[(b"x-user", f"u{k}".encode())])),
        ("$cookie_sid", lambda k: dict(headers={"Cookie": f"a=1; sid=s{k}"})),
        ("$remote_addr", lambda k: dict(client_ip=f"192.0.2.{k % 250}")),
        ("$arg_user", lambda k: dict(query=f"x=1&user=q{k}")),
        ("$host$request_uri", lambda k: dict(query=f"k={k}")),
    ]
    for hash_by, make in cases:
        router = _router({P + "upstream-hash-by": hash_by})
        for k in range(40):
            kw = make(k)
            d = router.route("GET", "A.test:80", "/p", **kw)
            assert d is not None and d.endpoint is not None
            req = RequestContext("GET", "A.test:80", "/p", kw.get("headers", ()),
                                 kw.get("client_ip"), kw.get("query"))
            key = d.handle.balancer.key(req)
            # The first pick is the key's owner: the walk from the key's point past it.
            assert _clockwise(d, key, ()) == d.endpoint
            assert router.next_endpoint(d, (d.endpoint,), request=req) == \
                _clockwise(d, key, (d.endpoint,)), (hash_by, k)


def test_router_keyed_retry_on_a_weighted_canary_side() -> None:
    # The decision's own backend (here the canary's) hashes the key.
    main = ingress("web", [("a.test", "/", "Prefix", "web", 80)])
    can = ingress("web-canary", [("a.test", "/", "Prefix", "canary", 80)],
                  {P + "canary": "true", P + "canary-weight": "100",
                   P + "upstream-hash-by": "$request_uri"})
    router = Router(resources(main, can, *simple_backend("web", ["10.0.1.1"]),
                              *simple_backend("canary", _IPS)))
    for k in range(50):
        d = router.route("GET", "a.test", f"/c{k}")
        assert d is not None and d.canary and d.endpoint is not None
        req = RequestContext("GET", "a.test", f"/c{k}")
        assert router.next_endpoint(d, (d.endpoint,), request=req) == \
            _clockwise(d, f"/c{k}", (d.endpoint,))


def test_router_keyed_retry_in_a_subset_stays_in_the_keys_subset() -> None:
    # upstream-hash-by-subset, 8 endpoints in subsets of 3: [e0 e1 e2] [e3 e4 e5] [e6 e7 e0]
    # (chashsubset.lua's build_subset_map pads the last from the first). A retry without the
    # request only knows the tried endpoint e0, which is in two subsets; given the request it
    # stays in the key's own subset, as chashsubset.lua's balance() does ("local subset_id =
    # self.instance:find(key)") - without drawing the tried endpoint again (§8).
    ips = [f"10.0.0.{i}" for i in range(1, 9)]
    router = _router({P + "upstream-hash-by": "$request_uri",
                      P + "upstream-hash-by-subset": "true"}, ips, seed=7)
    checked = 0
    for k in range(200):
        path = f"/s{k}"
        seen = set()
        for _ in range(40):
            d = router.route("GET", "a.test", path)
            assert d is not None and d.endpoint is not None
            seen.add(d.endpoint)
        eps = d.handle.eps.endpoints
        e0 = eps[0]
        if e0 not in seen:
            continue
        assert len(seen) == 3, seen  # the key's subset: its three places, drawn at random
        req = RequestContext("GET", "a.test", path)
        for _ in range(10):
            nxt = router.next_endpoint(d, (e0,), request=req)
            assert nxt in seen and nxt != e0, (path, nxt, seen)
        others = sorted(seen - {e0})
        last = router.next_endpoint(d, (e0, others[0]), request=req)
        assert last == others[1]
        # The whole subset tried: any untried endpoint rather than failing the request.
        rest = router.next_endpoint(d, tuple(seen), request=req)
        assert rest is not None and rest not in seen
        checked += 1
    assert checked >= 20


def test_request_is_ignored_by_other_balancers() -> None:
    # Round-robin, EWMA and cookie affinity retry as before: the request changes nothing.
    for ann in ({}, {P + "load-balance": "ewma"}, {P + "affinity": "cookie"}):
        a = _router(ann, seed=3)
        b = _router(ann, seed=3)
        for k in range(30):
            da = a.route("GET", "a.test", f"/r{k}")
            db = b.route("GET", "a.test", f"/r{k}")
            assert da is not None and db is not None and da.endpoint == db.endpoint
            tried = (da.endpoint,)
            assert a.next_endpoint(da, tried, request=RequestContext("GET", "a.test", "/r")) \
                == b.next_endpoint(db, tried), ann


def test_takes_request() -> None:
    class Old:
        def next_endpoint(self, decision: Any, tried: Any) -> None:
            return None

    class Kw:
        def next_endpoint(self, decision: Any, tried: Any, **kw: Any) -> None:
            return None

    assert takes_request(Router.next_endpoint)
    assert not takes_request(Old().next_endpoint)
    assert takes_request(Kw().next_endpoint)
    # No readable signature: not given it (a keyless retry beats a TypeError on each retry).
    assert not takes_request(None)
    assert not takes_request(len)


# --- the proxy core passes the request ----------------------------------------------------------


class _Recording(FakeRouter):
    """A duck-typed router whose ``next_endpoint`` takes ``**kw``: it records them."""

    def __init__(self, *a: Any, **k: Any) -> None:
        super().__init__(*a, **k)
        self.kw: list[dict[str, Any]] = []

    def route(self, method: str, host: str, path: str, headers: Any,  # type: ignore[override]
              client_ip: str | None, *, query: str | None = None) -> Any:
        return super().route(method, host, path, headers, client_ip)

    def next_endpoint(self, decision: Any, tried: Any, **kw: Any) -> Address | None:
        self.kw.append(kw)
        return super().next_endpoint(decision, tried)


def _echo(request: h11.Request, body: bytes, up: Any) -> Reply:
    return ok(f"{up.endpoint[0]}:{up.endpoint[1]}".encode())


A, B = ("10.0.0.1", 8080), ("10.0.0.2", 8080)


def test_core_passes_the_routed_request_to_next_endpoint() -> None:
    # DEFECT: the core called next_endpoint(decision, tried) only: the router had no key.
    router = _Recording([Route(endpoints=[A, B])])
    p = ProxyPair(router=router, refuse={A}, app=_echo)
    out = p.send(b"GET /a/./b?user=7&x HTTP/1.1\r\nHost: Shop.test:80\r\nX-User: u1\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200") and out.endswith(b"10.0.0.2:8080")
    assert len(router.kw) == 1 and set(router.kw[0]) == {"request"}
    req = router.kw[0]["request"]
    assert isinstance(req, RequestContext) and not req.retry
    assert (req.method, req.host, req.path, req.query, req.client_ip) == (
        "GET", "Shop.test:80", "/a/b", "user=7&x", "203.0.113.7")
    assert req.header("x_user") == "u1"
    assert req.arg("user") == "7"


def test_core_calls_a_contract_next_endpoint_without_the_request() -> None:
    # CONTRACT.md's next_endpoint(decision, tried): called as before (no TypeError, no 500).
    router = FakeRouter([Route(endpoints=[A, B])])
    p = ProxyPair(router=router, refuse={A}, app=_echo)
    out = p.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200") and out.endswith(b"10.0.0.2:8080")


def test_core_query_only_when_route_took_it() -> None:
    # A route without ``query=`` hashed no query: neither does the retry's request.
    class NoQuery(_Recording):
        def route(self, method: str, host: str, path: str, headers: Any,  # type: ignore[override]
                  client_ip: str | None) -> Any:
            return FakeRouter.route(self, method, host, path, headers, client_ip)

    router = NoQuery([Route(endpoints=[A, B])])
    p = ProxyPair(router=router, refuse={A}, app=_echo)
    assert p.send(b"GET /q?user=7 HTTP/1.1\r\nHost: a\r\n\r\n").startswith(b"HTTP/1.1 200")
    assert router.kw[0]["request"].query is None


def test_core_follows_a_router_replaced_after_routing() -> None:
    # The router swapped for one without ``request=`` between two requests: each retry asks
    # the router in place how it may be called.
    router = _Recording([Route(endpoints=[A, B])])
    p = ProxyPair(router=router, refuse={A}, app=_echo)
    assert p.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").startswith(b"HTTP/1.1 200")
    p.proxy.router = FakeRouter([Route(endpoints=[A, B])])
    assert p.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").startswith(b"HTTP/1.1 200")
    assert len(router.kw) == 1


@pytest.mark.parametrize("hash_by, request_line, header", [
    ("$http_x_user", "GET /h", "X-User: u{k}"),
    ("$arg_user", "GET /q?x=1&user=u{k}", "X-Other: 1"),
    ("$cookie_sid", "GET /c", "Cookie: a=1; sid=s{k}"),
    ("$request_uri", "GET /path/{k}", "X-Other: 1"),
])
def test_core_retries_each_key_to_its_clockwise_endpoint(hash_by: str, request_line: str,
                                                        header: str) -> None:
    # A real Router behind the sans-IO core, 10.0.0.2 refusing connections: every key it
    # owns retries to the next endpoint clockwise from the key, every time.
    text = ingress_yaml("web", "a.test", {P + "upstream-hash-by": hash_by}) \
        + web_service_yaml(4)
    router = Router(parse_manifests(text))
    dead = ("10.0.0.2", 80)
    p = ProxyPair(router=router, refuse={dead}, app=_echo)
    retried: Counter[str] = Counter()
    for k in range(80):
        line = request_line.format(k=k)
        hdr = header.format(k=k)
        target = line.split(" ", 1)[1]
        path, _, query = target.partition("?")
        headers = [tuple(hdr.encode().split(b": "))]
        d = router.route("GET", "a.test", path, headers, "203.0.113.7",
                         query=query or None)
        assert d is not None and d.endpoint is not None
        if d.endpoint == dead:
            want = _clockwise(d, d.handle.balancer.key(RequestContext(
                "GET", "a.test", path, headers, "203.0.113.7", query or None)), (dead,))
        else:
            want = d.endpoint
        for _ in range(2):
            out = p.send(f"{line} HTTP/1.1\r\nHost: a.test\r\n{hdr}\r\n\r\n".encode())
            assert out.startswith(b"HTTP/1.1 200"), out[:60]
            assert out.endswith(f"{want[0]}:{want[1]}".encode()), (k, want, out[-20:])
        if d.endpoint == dead:
            retried[f"{want[0]}:{want[1]}"] += 1
    assert sum(retried.values()) >= 8
    assert len(retried) >= 2, retried


# --- through a real ProxyServer on 127.0.0.1 ------------------------------------------------------


class _Named(TrackedUpstream):
    """An HTTP/1.1 upstream answering every request with its own port (keep-alive)."""

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.writers.append(w)
        conn = h11.Connection(h11.SERVER)
        body = str(self.port).encode()
        try:
            while True:
                ev = conn.next_event()
                if ev is h11.NEED_DATA:
                    data = await r.read(65536)
                    conn.receive_data(data)
                    if not data:
                        return
                    continue
                if isinstance(ev, h11.EndOfMessage):
                    w.write(conn.send(h11.Response(status_code=200, headers=[
                        ("Content-Length", str(len(body)))])))
                    w.write(conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
                    await w.drain()
                    conn.start_next_cycle()
                elif isinstance(ev, h11.ConnectionClosed):
                    return
        except (ConnectionError, h11.ProtocolError):
            return
        finally:
            w.close()


def _refused_port() -> int:
    """A port on 127.0.0.1 nothing listens on (bound, then closed)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


def _manifests(ports: list[int]) -> str:
    slices = "".join(f"""
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: web-{i}, namespace: default, labels: {{kubernetes.io/service-name: web}}}}
addressType: IPv4
ports: [{{name: http, port: {port}}}]
endpoints: [{{addresses: [127.0.0.1], conditions: {{ready: true}}}}]
""" for i, port in enumerate(ports))
    return f"""
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  namespace: default
  annotations: {{{P}upstream-hash-by: "$request_uri"}}
spec:
  rules:
  - host: a.test
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: default}}
spec: {{ports: [{{name: http, port: 80, targetPort: http}}]}}
{slices}"""


@pytest.mark.asyncio
async def test_server_retries_each_key_to_the_same_endpoint() -> None:
    # DEFECT (the brief's scenario): three endpoints, one refusing connections. Before, the
    # refused endpoint's keys were retried to the survivors in turn (ring shares, not per
    # key): one key reached one survivor, then the other. Now each key's retries land on
    # the same endpoint every time (the first clockwise from its key), and the keys spread
    # over both survivors.
    ups = [await _Named().start(), await _Named().start()]
    dead = _refused_port()
    ports = [ups[0].port, dead, ups[1].port]
    router = Router(parse_manifests(_manifests(ports)))
    # The keys the refused endpoint owns, and where the clockwise walk sends each of them.
    keyed: dict[str, int] = {}
    for k in range(400):
        path = f"/k{k}"
        d = router.route("GET", "a.test", path)
        assert d is not None and d.endpoint is not None
        if d.endpoint == ("127.0.0.1", dead):
            keyed[path] = _clockwise(d, path, (d.endpoint,))[1]
        if len(keyed) == 24:
            break
    assert len(keyed) == 24
    server, port = await start_proxy(router)
    client = await Client.open(port)
    try:
        served: dict[str, set[int]] = {}
        for _ in range(3):
            for path in keyed:
                resp = await client.get("a.test", path)
                assert resp.status == 200, resp
                served.setdefault(path, set()).add(int(resp.body))
        for path, got in served.items():
            assert got == {keyed[path]}, (path, got, keyed[path])
        assert set(keyed.values()) == {ups[0].port, ups[1].port}
        # A key a survivor owns is served by it (no retry).
        for k in range(400, 420):
            d = router.route("GET", "a.test", f"/k{k}")
            assert d is not None and d.endpoint is not None
            if d.endpoint[1] != dead:
                resp = await client.get("a.test", f"/k{k}")
                assert resp.status == 200 and int(resp.body) == d.endpoint[1]
    finally:
        await client.close()
        await server.shutdown(1)
        for up in ups:
            await up.stop()

