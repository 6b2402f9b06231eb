"""Session 30, F3: ``proxy-request-buffering: "on"``'s leftovers (proxy/_request_buffer.py).

Defects fixed (each test named ``test_fix_*`` failed before):

* the endpoint was chosen with the route, on the head, and used once the body was in: an
  endpoint removed (``Router.update``) while a client uploaded still got the request, EWMA's
  pick read the scores of the head's time, a session cookie named an endpoint the request
  never reached. nginx picks the peer in ingress-nginx's balancer phase (``balancer.balance()``,
  at the connect), the canary's side in ``balancer.rewrite()`` (the head): now the router's
  ``repick`` chooses again from the side the head chose (``Router.repick``);
* a chunked body read whole while the access phase waited (an auth subrequest) was sent
  without the cap's 413 or a charge to the budget (``start``'s early ``frame``);
* a ``Content-Length`` body that switched to streaming (its next read did not fit the budget)
  gave its reservation back at the switch while its bytes stayed held until the connect:
  another upload could reserve them again, the memory held past the budget.
"""

from __future__ import annotations

from typing import Any

import h11

from ingresslib import Router, parse_manifests
from ingresslib.proxy import ProxySettings
from ingresslib.proxy._annotations import PREFIX
from ingresslib.proxy._request_buffer import Buffered, BufferBudget
from tests._proxy_harness import (FakeUpstream, ProxyPair, Reply, Route, ingress_yaml, ok,
                                  service_yaml, status_of)

P = PREFIX
ON = {P + "proxy-request-buffering": "on"}
AUTH = ("10.5.0.1", 4180)
AUTH_URL = "http://10.5.0.1:4180/auth"
CHUNKED = b"POST /up HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def cl_head(n: int, extra: bytes = b"") -> bytes:
    return b"POST /up HTTP/1.1\r\nHost: a.test\r\nContent-Length: %d\r\n%s\r\n" % (n, extra)


def service(name: str, ips: list[int]) -> str:
    """Service ``name`` (port 80) with ready endpoints 10.0.0.<ip>:80."""
    return service_yaml(name, (f"10.0.0.{i}" for i in ips))


def ep(i: int) -> tuple[str, int]:
    return ("10.0.0.%d" % i, 80)


def length_app(request: h11.Request, body: bytes, up: FakeUpstream) -> Reply:
    if up.endpoint == AUTH:
        return Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    names = {n.lower() for n, _ in request.headers}
    return ok((b"te" if b"transfer-encoding" in names else b"cl") + b" %d" % len(body))


def routed(ann: dict[str, str], ips: list[int], settings: ProxySettings | None = None,
           extra: str = "", **kw: Any) -> tuple[ProxyPair, Router, str]:
    ing = ingress_yaml("up", "a.test", ann)
    router = Router(parse_manifests(ing + extra + service("web", ips)))
    return ProxyPair(router=router, settings=settings, app=length_app, **kw), router, ing


def head_endpoint(p: ProxyPair) -> tuple[str, int]:
    req = p.conn._req
    assert req is not None and req.decision is not None and req.decision.endpoint is not None
    return req.decision.endpoint  # type: ignore[no-any-return]


def budget(p: ProxyPair) -> int:
    b = getattr(p.proxy, "_request_buffer_budget", None)
    return b.held if isinstance(b, BufferBudget) else 0


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


# ------------------------------------------------------------- 1: the endpoint after the body
def test_fix_endpoint_removed_while_the_body_uploads_is_not_used() -> None:
    p, router, ing = routed(ON, [1, 2])
    p.send(CHUNKED + chunk(b"abc"))
    gone = head_endpoint(p)
    assert not p.opens  # nothing opened before the body is in
    keep = 2 if gone == ep(1) else 1
    router.update(parse_manifests(ing + service("web", [keep])))
    out = p.send(chunk(b"de") + b"0\r\n\r\n")
    assert [o.endpoint for o in p.opens] == [ep(keep)]
    assert status_of(out) == 200 and out.endswith(b"cl 5")
    assert p.records[-1].upstreams == (ep(keep),)


def test_fix_content_length_body_removed_endpoint_not_used() -> None:
    p, router, ing = routed(ON, [1, 2])
    p.send(cl_head(6) + b"abc")
    gone = head_endpoint(p)
    keep = 2 if gone == ep(1) else 1
    router.update(parse_manifests(ing + service("web", [keep])))
    out = p.send(b"def")
    assert [o.endpoint for o in p.opens] == [ep(keep)] and out.endswith(b"cl 6")


def test_fix_every_endpoint_removed_while_the_body_uploads_is_503() -> None:
    p, router, ing = routed(ON, [1])
    p.send(CHUNKED + chunk(b"abc"))
    router.update(parse_manifests(ing + service("web", [])))
    out = p.send(b"0\r\n\r\n")
    assert status_of(out) == 503 and not p.opens and budget(p) == 0


def test_fix_session_cookie_names_the_endpoint_used() -> None:
    sticky = {**ON, P + "affinity": "cookie", P + "session-cookie-name": "sid"}
    p, router, ing = routed(sticky, [1, 2])
    p.send(CHUNKED + chunk(b"abc"))
    gone = head_endpoint(p)
    keep = 2 if gone == ep(1) else 1
    router.update(parse_manifests(ing + service("web", [1, 2, 3])))
    router.update(parse_manifests(ing + service("web", [keep, 3])))
    out = p.send(b"0\r\n\r\n")
    used = p.opens[-1].endpoint
    assert used != gone and status_of(out) == 200
    cookie = [line for line in out.split(b"\r\n") if line.lower().startswith(b"set-cookie:")]
    assert len(cookie) == 1
    value = cookie[0].split(b":", 1)[1].strip().split(b";", 1)[0].decode("latin-1")
    # The session the cookie starts leads to the endpoint that answered.
    again = router.route("GET", "a.test", "/up", [(b"cookie", value.encode("latin-1"))])
    assert again is not None and again.endpoint == used


def test_fix_ewma_picks_with_the_scores_of_the_connect() -> None:
    p, router, ing = routed({**ON, P + "load-balance": "ewma"}, [1, 2])
    p.send(CHUNKED + chunk(b"abc"))
    req = p.conn._req
    assert req is not None
    slow = head_endpoint(p)
    # While the body comes, another request's response from that endpoint was slow and failed.
    router.observe(req.decision, slow, 30.0, False)
    p.send(b"0\r\n\r\n")
    assert [o.endpoint for o in p.opens] != [slow] and len(p.opens) == 1


def test_fix_canary_side_kept_from_the_head_its_endpoint_chosen_after() -> None:
    canary = ingress_yaml("up-canary", "a.test", {
        P + "canary": "true", P + "canary-by-header": "x-canary"}, service="canary")
    p, router, ing = routed(ON, [1], extra=canary + service("canary", [7]))
    p.send(b"POST /up HTTP/1.1\r\nHost: a.test\r\nx-canary: always\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n" + chunk(b"abc"))
    assert head_endpoint(p) == ep(7)
    router.update(parse_manifests(ing + service("web", [1]) + canary + service("canary", [8])))
    p.send(b"0\r\n\r\n")
    # The canary's new endpoint, never the main side's (the split stays the head's).
    assert [o.endpoint for o in p.opens] == [ep(8)]


def test_round_robin_turns_are_not_taken_twice() -> None:
    p, router, _ = routed(ON, [1, 2])
    used = []
    for _ in range(4):
        out = p.send(CHUNKED + chunk(b"abc") + b"0\r\n\r\n")
        assert status_of(out) == 200
        used.append(p.opens[-1].endpoint)
    assert used[0] != used[1] and used[0] == used[2] and used[1] == used[3]


def test_unchanged_endpoints_keep_the_heads_pick() -> None:
    p, router, _ = routed(ON, [1, 2])
    p.send(CHUNKED + chunk(b"abc"))
    first = head_endpoint(p)
    p.send(b"0\r\n\r\n")
    assert [o.endpoint for o in p.opens] == [first]


def test_router_without_repick_keeps_the_heads_endpoint() -> None:
    p = ProxyPair([Route(endpoints=[("10.0.0.1", 8080)], annotations=dict(ON))],
                  app=length_app)
    out = p.send(CHUNKED + chunk(b"abc") + b"0\r\n\r\n")
    assert out.endswith(b"cl 3") and [o.endpoint for o in p.opens] == [("10.0.0.1", 8080)]


def test_repick_failing_keeps_the_heads_endpoint() -> None:
    p, router, _ = routed(ON, [1])

    def boom(*a: Any, **k: Any) -> Any:
        raise RuntimeError("repick")

    router.repick = boom  # type: ignore[method-assign]
    out = p.send(CHUNKED + chunk(b"abc") + b"0\r\n\r\n")
    assert out.endswith(b"cl 3") and [o.endpoint for o in p.opens] == [ep(1)]


def test_router_repick_directly() -> None:
    router = Router(parse_manifests(ingress_yaml("up", "a.test", ON) + service("web", [1, 2])))
    d = router.route("POST", "a.test", "/up")
    assert d is not None and d.endpoint is not None
    assert router.repick(d, "POST", "a.test", "/up") is d  # round-robin, unchanged: kept
    ing = ingress_yaml("up", "a.test", ON)
    survivor = 2 if d.endpoint == ep(1) else 1
    router.update(parse_manifests(ing + service("web", [survivor])))
    d2 = router.repick(d, "POST", "a.test", "/up")
    assert d2.endpoint == ep(survivor) and d2.match is d.match
    # A rebuilt table (the rule itself replaced): the request keeps its backend.
    router.update(parse_manifests(ingress_yaml("up", "a.test", {**ON, P + "x": "y"})
                                  + service("web", [survivor])))
    assert router.repick(d, "POST", "a.test", "/up") is d


# ------------------------------------------------ 2: a body whole before the access phase ends
def small(**kw: Any) -> ProxySettings:
    return ProxySettings(**{"request_buffering_budget": 1000, "request_buffering_limit": 800,
                            "proxy_body_size": 0, "client_body_timeout": 5.0, **kw})


def authed(settings: ProxySettings, ann: dict[str, str] | None = None) -> ProxyPair:
    return ProxyPair([Route(endpoints=[("10.0.0.1", 8080)], annotations={
        **(ON if ann is None else ann), P + "auth-url": AUTH_URL})], settings,
        app=length_app, defer=[AUTH])


def test_fix_chunked_body_whole_during_auth_past_the_cap_is_413() -> None:
    p = authed(small())
    p.send(CHUNKED + chunk(b"x" * 900) + b"0\r\n\r\n")
    out = p.connect()
    assert status_of(out) == 413 and len(p.upstreams) == 1  # the auth service's only
    assert budget(p) == 0


def test_fix_chunked_body_whole_during_auth_past_the_budget_left_is_503() -> None:
    p = authed(small())
    q = another(p, 2)
    q.send(CHUNKED + chunk(b"y" * 600))  # holds 600 of 1000 (auth deferred: no auth there)
    p.send(CHUNKED + chunk(b"x" * 500) + b"0\r\n\r\n")
    assert budget(p) == 0  # q waits for its auth service too
    q.connect()
    assert budget(p) == 600
    out = p.connect()
    assert status_of(out) == 503 and budget(p) == 600


def test_fix_chunked_body_whole_during_auth_is_reserved_until_the_response() -> None:
    p = authed(small())
    p.send(CHUNKED + chunk(b"x" * 500) + b"0\r\n\r\n")
    p.defer.add(("10.0.0.1", 8080))
    p.connect()
    req = p.conn._req
    assert req is not None and type(req.replay) is Buffered and budget(p) == 500
    out = p.connect()
    assert out.endswith(b"cl 500") and budget(p) == 0


def test_body_size_refuses_a_chunked_body_whole_during_auth_on_and_off() -> None:
    for value in ("on", "off"):
        p = authed(ProxySettings(), {P + "proxy-request-buffering": value,
                                     P + "proxy-body-size": "1k"})
        out = p.send(CHUNKED + chunk(b"x" * 50000) + b"0\r\n\r\n")
        assert status_of(out) == 413, value
        assert all(u.endpoint == AUTH for u in p.upstreams)


def test_content_length_body_whole_during_auth_past_the_cap_streams() -> None:
    p = authed(small())
    out = p.send(cl_head(900) + b"x" * 900) + p.connect()
    assert out.endswith(b"cl 900") and budget(p) == 0


# ------------------------------------- 3: a Content-Length body switching to streaming
def test_fix_switch_to_streaming_keeps_its_bytes_reserved_until_the_connect() -> None:
    p = ProxyPair([Route(endpoints=[("10.0.0.1", 8080)], annotations=dict(ON))], small(),
                  app=length_app, defer=[("10.0.0.1", 8080)])
    p.send(cl_head(800) + b"a" * 700)  # 700 held
    q = another(p, 2)
    q.send(CHUNKED + chunk(b"b" * 250))  # 950 held
    p.send(b"a" * 100)  # does not fit: p streams from here, its upstream connecting
    assert budget(p) == 950  # p's 700 still held in memory: still counted
    r = another(p, 3)
    out = r.send(CHUNKED + chunk(b"c" * 100))
    assert status_of(out) == 503  # not 1,050 bytes held under a budget of 1,000
    out = p.connect()
    assert out.endswith(b"cl 800") and budget(p) == 250


def test_fix_switch_to_streaming_then_answered_locally_gives_back_once() -> None:
    p = ProxyPair([Route(endpoints=[("10.0.0.1", 8080)], annotations=dict(ON))], small(),
                  app=length_app, defer=[("10.0.0.1", 8080)])
    p.send(cl_head(800) + b"a" * 700)
    q = another(p, 2)
    q.send(CHUNKED + chunk(b"b" * 250))
    p.send(b"a" * 100)
    assert budget(p) == 950
    out = p.fail_connect()
    assert status_of(out) == 502 and budget(p) == 250
    q.send(b"0\r\n\r\n")
    q.connect()
    assert budget(p) == 0


def test_fix_switch_to_streaming_picks_at_the_switch() -> None:
    p, router, ing = routed(ON, [1, 2], small())
    p.send(cl_head(800) + b"a" * 700)
    gone = head_endpoint(p)
    keep = 2 if gone == ep(1) else 1
    router.update(parse_manifests(ing + service("web", [keep])))
    q = another(p, 2)
    q.send(CHUNKED + chunk(b"b" * 250))
    out = p.send(b"a" * 100)
    assert [o.endpoint for o in p.opens] == [ep(keep)] and out.endswith(b"cl 800")
    assert budget(p) == 250
