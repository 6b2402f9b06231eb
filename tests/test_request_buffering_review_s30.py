"""Session 30, R11: a review of ``proxy-request-buffering: "on"``'s pick after the body
(``Router.repick``, proxy/_request_buffer.py ``pick`` / ``whole`` / ``HeldBody``).

Defects fixed (each test named ``test_fix_*`` failed before):

* a router's ``repick`` answering another rule's decision (or a decision-like object of
  another rule) had the body sent to that rule's backend, one the request was not routed to;
  an answer that is no decision at all (a string, an endpoint tuple) raised out of the core;
* ``Router.repick`` moved a request routed to its rule's own Service over to the Ingress's
  ``default-backend`` Service when the rule lost its last endpoint during the upload, without
  the headers that Service is sent (X-Code, X-Namespace, ...: built with the upstream head,
  on the head's decision); the head's decision stands there, as nginx's old worker keeps the
  location's upstream (the switch is a configuration change, a reload);
* a request the ``default-backend`` Service served on the head kept that Service's endpoint
  of the head, removed or not (``repick`` answered the head's decision for any of them);
* a ``Content-Length`` body switched to streaming (``HeldBody``) kept its reservation past
  its connection's close (``abort``, the client's EOF) for as long as the core object lived:
  ``Buffered`` bodies are given back at the close, these only when collected.

The rest checks the pick against every balancer, the canary's sides, retries, pipelining,
``Expect: 100-continue``, the records, and the budget's reservations on every exit path.
"""

from __future__ import annotations

from typing import Any

import h11
from hypothesis import given, settings as hsettings, strategies as st

from ingresslib import Router, parse_manifests
from ingresslib.proxy import ProxySettings
from ingresslib.proxy._annotations import PREFIX
from ingresslib.proxy._request_buffer import Buffered, BufferBudget, HeldBody
from tests._budget import examples
from tests._proxy_harness import (FakeUpstream, ProxyPair, Reply, ingress_yaml, ok,
                                  status_of)

P = PREFIX
ON = {P + "proxy-request-buffering": "on"}
CHUNKED = b"POST /up HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n"
END = b"0\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def chunked_head(extra: bytes = b"", path: bytes = b"/up") -> bytes:
    return (b"POST %s HTTP/1.1\r\nHost: a.test\r\n%sTransfer-Encoding: chunked\r\n\r\n"
            % (path, extra))


def cl_head(n: int, extra: bytes = b"") -> bytes:
    return b"POST /up HTTP/1.1\r\nHost: a.test\r\nContent-Length: %d\r\n%s\r\n" % (n, extra)


def service(name: str, ips: list[int], net: int = 0) -> str:
    """Service ``name`` (port 80) with ready endpoints 10.<net>.0.<ip>:80."""
    ready = ", ".join(f"{{addresses: [10.{net}.0.{i}], conditions: {{ready: true}}}}"
                      for i in ips)
    doc = f"""
---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec: {{ports: [{{port: 80}}], clusterIP: 10.96.{net}.{len(name)}}}
"""
    if ips:
        doc += f"""
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-1, namespace: default, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: [{{port: 80}}]
endpoints: [{ready}]
"""
    return doc


def ep(i: int, net: int = 0) -> tuple[str, int]:
    return ("10.%d.0.%d" % (net, i), 80)


def echo_app(request: h11.Request, body: bytes, up: FakeUpstream) -> Reply:
    """Answers with the endpoint that got the request, the body's length and its X-Code."""
    code = b"-"
    for n, v in request.headers:
        if n.lower() == b"x-code":
            code = v
    return ok(b"%s:%d %d %s" % (up.endpoint[0].encode(), up.endpoint[1], len(body), code))


def pair(docs: str, settings: ProxySettings | None = None, seed: int | None = 7,
         **kw: Any) -> tuple[ProxyPair, Router]:
    router = Router(parse_manifests(docs), seed=seed)
    return ProxyPair(router=router, settings=settings, app=echo_app, **kw), router


def head_endpoint(p: ProxyPair) -> tuple[str, int]:
    req = p.conn._req
    assert req is not None and req.decision is not None and req.decision.endpoint is not None
    return req.decision.endpoint  # type: ignore[no-any-return]


def budget(p: ProxyPair) -> int:
    b = getattr(p.proxy, "_request_buffer_budget", None)
    return b.held if isinstance(b, BufferBudget) else 0


def opened(p: ProxyPair) -> list[tuple[str, int]]:
    return [o.endpoint for o in p.opens]


# ------------------------------------------------- a router's repick answering something odd
TWO_RULES = (ingress_yaml("up", "a.test", ON, path="/up") + service("web", [1])
             + ingress_yaml("other", "a.test", {}, service="other", path="/other")
             + service("other", [5], net=5))


def test_fix_repick_answering_another_rules_decision_keeps_the_heads() -> None:
    p, router = pair(TWO_RULES)
    other = router.route("POST", "a.test", "/other")
    assert other is not None and other.endpoint == ep(5, 5)
    router.repick = lambda *a, **k: other  # type: ignore[method-assign]
    out = p.send(CHUNKED + chunk(b"abc") + END)
    # The body goes where the request was routed (rule /up), never to /other's backend.
    assert opened(p) == [ep(1)] and out.endswith(b"10.0.0.1:80 3 -")
    assert p.records[-1].service == "web"


def test_fix_repick_answering_no_decision_keeps_the_heads() -> None:
    for odd in ("10.5.0.5:80", ("10.5.0.5", 80), 42, object()):
        p, router = pair(TWO_RULES)
        router.repick = lambda *a, _odd=odd, **k: _odd  # type: ignore[method-assign]
        out = p.send(CHUNKED + chunk(b"abc") + END)
        assert status_of(out) == 200 and opened(p) == [ep(1)], odd
        assert budget(p) == 0


def test_repick_answering_none_keeps_the_heads() -> None:
    p, router = pair(TWO_RULES)
    router.repick = lambda *a, **k: None  # type: ignore[method-assign]
    out = p.send(CHUNKED + chunk(b"abc") + END)
    assert status_of(out) == 200 and opened(p) == [ep(1)]


def test_repick_answering_the_same_rule_is_followed() -> None:
    """A router's own pick for the rule the head chose (a decision of that rule, another
    endpoint) is what the body goes to."""
    p, router = pair(ingress_yaml("up", "a.test", ON, path="/up") + service("web", [1, 2]))
    real = router.repick

    def later(d: Any, *a: Any, **k: Any) -> Any:
        new = real(d, *a, **k)
        return router.route("POST", "a.test", "/up") if new is d else new

    router.repick = later  # type: ignore[method-assign]
    p.send(CHUNKED + chunk(b"abc"))
    first = head_endpoint(p)
    out = p.send(END)
    assert status_of(out) == 200 and opened(p) != [first]


# ------------------------------------------------------------------- the default-backend
DB = {**ON, P + "default-backend": "errors"}


def test_fix_rule_losing_its_endpoints_keeps_the_heads_not_the_default_backend() -> None:
    docs = ingress_yaml("up", "a.test", DB, path="/up")
    p, router = pair(docs + service("web", [1]) + service("errors", [9], net=9))
    p.send(CHUNKED + chunk(b"abc"))
    assert head_endpoint(p) == ep(1)
    router.update(parse_manifests(docs + service("web", []) + service("errors", [9], net=9)))
    fresh = router.route("POST", "a.test", "/up")
    assert fresh is not None and fresh.default_backend is not None  # a new request: errors
    out = p.send(END)
    # Not the default backend without its X-Code/X-Namespace/... headers (the upstream head
    # was built for the rule's Service): the head's decision, as nginx's old worker.
    assert opened(p) == [ep(1)] and out.endswith(b"10.0.0.1:80 3 -")
    assert p.records[-1].service == "web"


def test_fix_default_backend_endpoint_removed_while_the_body_uploads_is_not_used() -> None:
    docs = ingress_yaml("up", "a.test", DB, path="/up") + service("web", [])
    p, router = pair(docs + service("errors", [9], net=9))
    p.send(CHUNKED + chunk(b"abc"))
    assert head_endpoint(p) == ep(9, 9)
    router.update(parse_manifests(docs + service("errors", [8], net=9)))
    out = p.send(END)
    # The default backend's endpoint of then, with its headers (X-Code 503).
    assert opened(p) == [ep(8, 9)] and out.endswith(b"10.9.0.8:80 3 503")
    rec = p.records[-1]
    assert rec.upstreams == (ep(8, 9),) and rec.service == "errors"


def test_default_backend_request_stays_there_when_the_rule_gets_endpoints_back() -> None:
    docs = ingress_yaml("up", "a.test", DB, path="/up")
    errors = service("errors", [9], net=9)
    p, router = pair(docs + service("web", []) + errors)
    p.send(CHUNKED + chunk(b"abc"))
    router.update(parse_manifests(docs + service("web", [1]) + errors))
    out = p.send(END)
    assert opened(p) == [ep(9, 9)] and out.endswith(b"10.9.0.9:80 3 503")


def test_default_backend_request_keeps_its_headers() -> None:
    docs = ingress_yaml("up", "a.test", DB, path="/up")
    p, router = pair(docs + service("web", []) + service("errors", [9], net=9))
    out = p.send(CHUNKED + chunk(b"abc") + END)
    assert opened(p) == [ep(9, 9)] and out.endswith(b"10.9.0.9:80 3 503")


# ------------------------------------------------------------------- every balancer
def buffered_after_update(ann: dict[str, str], before: list[int], after: list[int],
                          extra: bytes = b"") -> tuple[ProxyPair, tuple[str, int], bytes]:
    """A buffered POST whose head is routed with endpoints ``before``, its body completed
    after an update to ``after``: the pair, the head's endpoint, the client's bytes."""
    docs = ingress_yaml("up", "a.test", {**ON, **ann}, path="/up")
    p, router = pair(docs + service("web", before))
    p.send(chunked_head(extra) + chunk(b"abc"))
    head = head_endpoint(p)
    router.update(parse_manifests(docs + service("web", after)))
    return p, head, p.send(END)


BALANCERS: tuple[dict[str, str], ...] = (
    {},
    {P + "load-balance": "ewma"},
    {P + "upstream-hash-by": "$request_uri"},
    {P + "upstream-hash-by": "$request_uri", P + "upstream-hash-by-subset": "true",
     P + "upstream-hash-by-subset-size": "2"},
    {P + "affinity": "cookie"},
    {P + "affinity": "cookie", P + "affinity-mode": "persistent"},
)


def test_every_balancer_leaves_a_removed_endpoint() -> None:
    for ann in BALANCERS:
        p, head, out = buffered_after_update(ann, [1, 2, 3, 4], [1, 2, 3, 4])
        assert status_of(out) == 200 and len(p.opens) == 1, ann
        if ann.get(P + "load-balance") != "ewma":
            # Unchanged: the head's (EWMA picks again, with the scores of the connect).
            assert opened(p) == [head], ann
        gone = int(head[0].rsplit(".", 1)[1])
        keep = [i for i in (1, 2, 3, 4) if i != gone]
        p, head, out = buffered_after_update(ann, [1, 2, 3, 4], keep)
        assert status_of(out) == 200 and len(p.opens) == 1, ann
        assert opened(p)[0] != head and opened(p)[0] in [ep(i) for i in keep], ann
        assert p.records[-1].upstreams == tuple(opened(p)) and budget(p) == 0


def test_unchanged_balancers_keep_the_heads_decision_without_a_second_pick() -> None:
    """The cost of a buffered request: no second pick where it could not differ (round-robin,
    hashing, affinity), the very Decision back."""
    for ann in BALANCERS:
        if ann.get(P + "load-balance") == "ewma":
            continue
        docs = ingress_yaml("up", "a.test", {**ON, **ann}, path="/up") + service("web", [1, 2])
        router = Router(parse_manifests(docs), seed=1)
        for _ in range(3):
            d = router.route("POST", "a.test", "/up", [(b"cookie", b"x=1")], "192.0.2.1")
            assert d is not None
            assert router.repick(d, "POST", "a.test", "/up", [(b"cookie", b"x=1")],
                                 "192.0.2.1") is d, ann


def test_session_cookie_naming_a_removed_endpoint_starts_a_new_session() -> None:
    for mode in ("balanced", "persistent"):
        ann = {P + "affinity": "cookie", P + "session-cookie-name": "sid",
               P + "affinity-mode": mode}
        docs = ingress_yaml("up", "a.test", {**ON, **ann}, path="/up")
        router = Router(parse_manifests(docs + service("web", [1, 2])), seed=3)
        first = router.route("GET", "a.test", "/up")
        assert first is not None and first.set_cookie is not None
        cookie = first.set_cookie.split(";", 1)[0].encode()
        p = ProxyPair(router=router, app=echo_app)
        p.send(chunked_head(b"Cookie: " + cookie + b"\r\n") + chunk(b"abc"))
        assert head_endpoint(p) == first.endpoint
        keep = 2 if first.endpoint == ep(1) else 1
        router.update(parse_manifests(docs + service("web", [keep, 3])))
        out = p.send(END)
        used = opened(p)[0]
        assert used != first.endpoint and status_of(out) == 200, mode
        sets = [h for h in out.split(b"\r\n") if h.lower().startswith(b"set-cookie: sid=")]
        if mode == "balanced":
            # The cookie is a key hashed over the endpoints (sticky_balanced.lua): the same
            # key now leads to the endpoint used, no new cookie.
            assert not sets
        else:
            # persistent: the cookie names its endpoint; a new one names the endpoint used.
            assert len(sets) == 1
            cookie = sets[0].split(b": ", 1)[1].split(b";")[0]
        again = router.route("GET", "a.test", "/up", [(b"cookie", cookie)])
        assert again is not None and again.endpoint == used, mode


def test_session_cookie_naming_a_kept_endpoint_stays() -> None:
    ann = {P + "affinity": "cookie", P + "session-cookie-name": "sid"}
    docs = ingress_yaml("up", "a.test", {**ON, **ann}, path="/up")
    router = Router(parse_manifests(docs + service("web", [1, 2])), seed=3)
    first = router.route("GET", "a.test", "/up")
    assert first is not None and first.set_cookie is not None
    cookie = first.set_cookie.split(";", 1)[0].encode()
    p = ProxyPair(router=router, app=echo_app)
    p.send(chunked_head(b"Cookie: " + cookie + b"\r\n") + chunk(b"abc"))
    router.update(parse_manifests(docs + service("web", [1, 2, 3])))
    out = p.send(END)
    assert opened(p) == [first.endpoint] and b"set-cookie" not in out.lower()


def test_service_upstream_has_nothing_to_pick_again() -> None:
    docs = ingress_yaml("up", "a.test", {**ON, P + "service-upstream": "true"}, path="/up")
    p, router = pair(docs + service("web", [1, 2]))
    p.send(CHUNKED + chunk(b"abc"))
    head = head_endpoint(p)
    assert head == ("10.96.0.3", 80)  # the ClusterIP
    router.update(parse_manifests(docs + service("web", [2])))
    out = p.send(END)
    assert opened(p) == [head] and status_of(out) == 200


def test_catch_all_default_backend_picks_after_the_body() -> None:
    def docs(ips: list[int]) -> str:
        return """
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: catch
  namespace: default
  annotations: {'nginx.ingress.kubernetes.io/proxy-request-buffering': 'on'}
spec:
  defaultBackend: {service: {name: web, port: {number: 80}}}
""" + service("web", ips)
    p, router = pair(docs([1, 2]))
    p.send(CHUNKED + chunk(b"abc"))
    head = head_endpoint(p)
    keep = 2 if head == ep(1) else 1
    router.update(parse_manifests(docs([keep])))
    out = p.send(END)
    assert opened(p) == [ep(keep)] and status_of(out) == 200


# ------------------------------------------------------------------------- canaries
def canary_docs(canary_ann: dict[str, str], main: list[int], canary: list[int],
                lb: dict[str, str] | None = None) -> str:
    return (ingress_yaml("up", "a.test", {**ON, **(lb or {})}, path="/up")
            + service("web", main)
            + ingress_yaml("up-canary", "a.test", {P + "canary": "true", **canary_ann,
                                                   **(lb or {})},
                           service="canary", path="/up")
            + service("canary", canary, net=7))


def test_canary_weight_is_drawn_once_per_request() -> None:
    lb = {P + "load-balance": "ewma"}
    weight = {P + "canary-weight": "30"}
    docs = canary_docs(weight, [1, 2], [1, 2], lb)
    # The sides a plain (unbuffered) POST sequence gets, on a router of its own.
    ref = Router(parse_manifests(docs), seed=1)
    expected = []
    for _ in range(10):
        d = ref.route("POST", "a.test", "/up")
        assert d is not None
        expected.append(d.canary)
    p, router = pair(docs, seed=1)
    sides = []
    for _ in range(10):
        out = p.send(CHUNKED + chunk(b"abc") + END)
        assert status_of(out) == 200
        sides.append(opened(p)[-1][0].startswith("10.7."))
    assert sides == expected and 0 < sum(sides) < 10


def test_canary_by_cookie_side_kept_its_endpoint_chosen_after() -> None:
    docs = canary_docs({P + "canary-by-cookie": "beta"}, [1], [1])
    p, router = pair(docs)
    p.send(chunked_head(b"Cookie: beta=always\r\n") + chunk(b"abc"))
    assert head_endpoint(p) == ep(1, 7)
    router.update(parse_manifests(canary_docs({P + "canary-by-cookie": "beta"}, [1], [2])))
    out = p.send(END)
    assert opened(p) == [ep(2, 7)] and status_of(out) == 200
    assert p.records[-1].canary


def test_canary_losing_its_endpoints_is_served_by_the_main_side() -> None:
    """As on the head: a side without a ready endpoint leaves the other serving."""
    header = {P + "canary-by-header": "x-beta"}
    p, router = pair(canary_docs(header, [1], [1]))
    p.send(chunked_head(b"x-beta: always\r\n") + chunk(b"abc"))
    assert head_endpoint(p) == ep(1, 7)
    router.update(parse_manifests(canary_docs(header, [1], [])))
    fresh = router.route("POST", "a.test", "/up", [(b"x-beta", b"always")])
    assert fresh is not None and fresh.endpoint == ep(1)
    out = p.send(END)
    assert opened(p) == [ep(1)] and status_of(out) == 200
    # The record (access log, metrics) names the side and Service that served.
    rec = p.records[-1]
    assert not rec.canary and rec.service == "web" and rec.upstreams == (ep(1),)


# ----------------------------------------------------------------- rebuilt tables
def test_table_rebuilt_keeps_the_heads_decision() -> None:
    """A rule rebuilt (another Ingress added: a new table), or its Ingress deleted: the
    request in flight keeps its backend, as nginx's old worker finishes with its old
    configuration after a reload."""
    docs = ingress_yaml("up", "a.test", ON, path="/up")
    for later in (docs + service("web", [2]) + ingress_yaml("b", "b.test", {}),
                  ingress_yaml("b", "b.test", {}) + service("web", [2])):
        p, router = pair(docs + service("web", [1]))
        p.send(CHUNKED + chunk(b"abc"))
        router.update(parse_manifests(later))
        out = p.send(END)
        assert opened(p) == [ep(1)] and status_of(out) == 200


# ----------------------------------------------------------------- retries, records
def test_retry_after_the_repick_never_tries_an_endpoint_twice() -> None:
    docs = ingress_yaml("up", "a.test", {**ON, P + "load-balance": "ewma"}, path="/up")
    for seed in range(6):
        p, router = pair(docs + service("web", [1, 2, 3]), seed=seed, refuse=[ep(2)])
        p.send(CHUNKED + chunk(b"abc"))
        head = head_endpoint(p)
        if head == ep(2):
            continue
        router.update(parse_manifests(docs + service("web", [i for i in (1, 2, 3)
                                                          if ep(i) != head])))
        out = p.send(END)
        tried = opened(p)
        assert status_of(out) == 200 and head not in tried
        assert len(set(tried)) == len(tried) and tried[-1] != ep(2)
        assert p.records[-1].upstreams == tuple(tried)
        assert budget(p) == 0


def test_record_names_the_backend_used() -> None:
    p, head, out = buffered_after_update({P + "load-balance": "ewma"}, [1, 2], [3])
    rec = p.records[-1]
    assert rec.upstreams == (ep(3),) and rec.service == "web" and rec.status == 200


# ------------------------------------------------- Expect: 100-continue, pipelining
def test_expect_continue_then_the_body_then_the_pick() -> None:
    docs = ingress_yaml("up", "a.test", {**ON, P + "load-balance": "ewma"}, path="/up")
    p, router = pair(docs + service("web", [1, 2]))
    out = p.send(cl_head(3, b"Expect: 100-continue\r\n"))
    assert out.startswith(b"HTTP/1.1 100 ") and not p.opens
    head = head_endpoint(p)
    keep = 2 if head == ep(1) else 1
    router.update(parse_manifests(docs + service("web", [keep])))
    out = p.send(b"abc")
    assert opened(p) == [ep(keep)] and out.endswith(b"10.0.0.%d:80 3 -" % keep)


def test_pipelined_buffered_requests_each_pick_their_own() -> None:
    docs = ingress_yaml("up", "a.test", {**ON, P + "load-balance": "ewma"}, path="/up")
    p, router = pair(docs + service("web", [1, 2, 3]))
    one = CHUNKED + chunk(b"abc") + END
    two = cl_head(5) + b"hello"
    out = p.send(one + two + one)
    assert out.count(b"HTTP/1.1 200 ") == 3
    assert [r.status for r in p.records] == [200, 200, 200] and budget(p) == 0
    assert len(p.opens) == 3


def test_mirror_copy_of_a_buffered_body_the_main_request_picked_after() -> None:
    from ingresslib.proxy import Mirror, OpenUpstream, Proxy

    ann = {**ON, P + "load-balance": "ewma", P + "mirror-target": "http://10.8.0.1:9999/m"}
    docs = ingress_yaml("up", "a.test", ann, path="/up")
    router = Router(parse_manifests(docs + service("web", [1, 2])), seed=2)
    proxy = Proxy(router, request_id=lambda: "rid")
    conn = proxy.connection(("192.0.2.7", 5000), now=0.0)
    acts: list[Any] = conn.start(0.0)
    acts += conn.receive_data(CHUNKED + chunk(b"abc"), 0.0)
    req = conn._req
    assert req is not None and req.decision is not None
    head = req.decision.endpoint
    keep = 2 if head == ep(1) else 1
    router.update(parse_manifests(docs + service("web", [keep])))
    acts += conn.receive_data(chunk(b"de") + END, 0.0)
    assert [a.endpoint for a in acts if isinstance(a, OpenUpstream)] == [ep(keep)]
    mirrors = [a for a in acts if isinstance(a, Mirror)]
    assert len(mirrors) == 1 and mirrors[0].endpoint == ("10.8.0.1", 9999)
    assert mirrors[0].data.endswith(b"abcde")


# ------------------------------------------------------------------ HeldBody exits
SMALL = dict(request_buffering_budget=1000, request_buffering_limit=800, proxy_body_size=0,
             client_body_timeout=5.0)


def another(p: ProxyPair, n: int) -> ProxyPair:
    """Another client connection of ``p``'s Proxy (its budget)."""
    q = ProxyPair.__new__(ProxyPair)
    q.__dict__.update({k: v for k, v in p.__dict__.items()
                       if k in ("router", "proxy", "app", "now", "defer", "refuse", "hang")})
    q.pending = []
    q.received, q.closed, q.records = bytearray(), False, []
    q.upstreams, q.live, q.pool, q.opens, q.closes = [], {}, {}, [], []
    q.downstream_closes, q.timer, q.tunnels = [], None, []
    q.conn = p.proxy.connection(("198.51.100.%d" % n, 41000 + n), tls=False, local_port=80,
                                now=q.now)
    q._run(q.conn.start(q.now))
    return q


def reserved(conns: list[ProxyPair]) -> int:
    """The bytes the live requests of ``conns`` hold reserved (Buffered / HeldBody)."""
    total = 0
    for c in conns:
        req = c.conn._req
        if req is None:
            continue
        if type(req.replay) is Buffered and req.replay.budget is not None:
            # What it reserved is what it holds (the bytes as they came).
            assert req.replay.kept == req.replay_size == sum(map(len, req.replay))
            total += req.replay.kept
        if type(req.unsent) is HeldBody and req.unsent.budget is not None:
            # Its bytes held at the switch (more may come while the upstream connects:
            # bounded as with "off", ``reading_wanted``).
            assert req.unsent.kept <= sum(map(len, req.unsent))
            total += req.unsent.kept
    return total


def test_switched_body_whose_side_lost_every_endpoint_is_503_and_gives_back() -> None:
    docs = ingress_yaml("up", "a.test", ON, path="/up")
    p, router = pair(docs + service("web", [1]), ProxySettings(**SMALL))  # type: ignore[arg-type]
    p.send(cl_head(800) + b"a" * 700)
    q = another(p, 2)
    q.send(CHUNKED + chunk(b"b" * 250))
    router.update(parse_manifests(docs + service("web", [])))
    out = p.send(b"a" * 60)  # does not fit: switches to streaming, nowhere to go
    assert status_of(out) == 503 and not p.opens and budget(p) == 250
    q.send(END)
    assert budget(p) == 0


def switched(p: ProxyPair) -> ProxyPair:
    """``p``'s Content-Length body switched to streaming (its connect deferred) by another
    connection's 250 bytes: 950 reserved, 700 of them ``p``'s ``HeldBody``; the other one."""
    p.send(cl_head(800) + b"a" * 700)
    q = another(p, 2)
    q.send(CHUNKED + chunk(b"b" * 250))
    p.send(b"a" * 60)
    req = p.conn._req
    assert req is not None and type(req.unsent) is HeldBody and budget(p) == 950
    return q


def test_fix_switched_body_given_back_when_the_connection_closes() -> None:
    """The connection's close gives the reservation back, as it does a ``Buffered`` body's,
    not only the core object's collection (a driver may keep it)."""
    for close in ("abort", "eof", "timeout"):
        docs = ingress_yaml("up", "a.test", ON, path="/up")
        p, router = pair(docs + service("web", [1]),
                         ProxySettings(**SMALL), defer=[ep(1)])  # type: ignore[arg-type]
        q = switched(p)
        if close == "abort":
            p._run(p.conn.abort(p.now))
        elif close == "eof":
            p.eof()
        else:
            out = p.fire()  # client_body_timeout: 408, closed
            assert status_of(out) == 408 and p.closed
        assert budget(p) == 250, close
        q.send(END)
        q.connect()
        assert budget(p) == 0, close


#: The state machine's budget (a factor of the profile's: tests/_budget.py).
HUNT = 1.0
OPS = st.lists(st.tuples(st.sampled_from(["send", "end", "connect", "fail", "abort", "reload",
                                          "timeout", "endpoints", "respond"]),
                         st.integers(0, 2), st.integers(1, 400)), max_size=16)


@hsettings(max_examples=examples(HUNT), deadline=None)
@given(ops=OPS, chunked=st.lists(st.booleans(), min_size=3, max_size=3))
def test_reservations_match_the_live_held_bodies(ops: list[tuple[str, int, int]],
                                                chunked: list[bool]) -> None:
    base = ProxySettings(**SMALL)  # type: ignore[arg-type]
    docs = ingress_yaml("up", "a.test", ON, path="/up") + service("web", [1, 2])
    p, router = pair(docs, base, defer=[ep(1), ep(2)])
    conns = [p, another(p, 2), another(p, 3)]
    started = [False] * 3
    left = [800] * 3  # a Content-Length body's bytes not sent yet
    for op, k, n in ops:
        c = conns[k]
        if c.closed:
            continue
        if op == "send":
            if not started[k]:
                started[k] = True
                c.send(CHUNKED if chunked[k] else cl_head(800))
            if chunked[k]:
                c.send(chunk(b"x" * n))
            elif left[k]:
                take = min(n, left[k])
                left[k] -= take
                c.send(b"x" * take)
        elif op == "end" and started[k] and chunked[k]:
            c.send(END)
        elif op == "connect" and c.pending:
            c.connect()
        elif op == "fail" and c.pending:
            c.fail_connect()
        elif op == "abort":
            c._run(c.conn.receive_eof(c.now))
        elif op == "reload":
            # A reload lowering (or raising) the budget while bodies are held.
            p.proxy.settings = ProxySettings(**{**SMALL,  # type: ignore[arg-type]
                                                "request_buffering_budget": 200 + 100 * n % 1200})
        elif op == "timeout" and c.timer is not None:
            c.fire()
        elif op == "endpoints":
            # An EndpointSlice update while bodies are read (every endpoint gone: 503s).
            router.update(parse_manifests(ingress_yaml("up", "a.test", ON, path="/up")
                                          + service("web", [[1, 2], [2], [1], []][n % 4])))
        elif op == "respond":
            # A response already began: the held body is let go.
            for up in list(c.live.values()):
                if up.endpoint in (ep(1), ep(2)) and not up.closed and c.conn._up is not None:
                    c.upstream_send(up, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n")
                    break
        held = budget(p)
        assert held >= 0
        assert held == reserved(conns)
    for c in conns:
        c._run(c.conn.abort(c.now))  # (the test keeps every core: given back on the close)
        assert budget(p) == reserved(conns) >= 0
    assert budget(p) == 0
