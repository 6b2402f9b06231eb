"""Session 24 (R1): the router's retries against ingress-nginx's balancers.

Round-robin: ingress-nginx's retry calls ``balance()`` again (``balancer.lua``), taking the
next turn of the shared cursor, so a failed endpoint's retries do not all land on one
survivor. ingresslib walked the list from the failed endpoint: every retry went to its
successor, which served twice the others' share. Now the retries take the untried endpoints
in turn (the requests' own cycle is left alone)."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingresslib._balance import RequestContext, RoundRobin
from ingresslib._endpoints import EndpointSet
from ingresslib._router import Router

from _budget import examples
from _router_helpers import P, ingress, resources, simple_backend

Address = tuple[str, int]
IPS = [f"10.0.0.{i}" for i in range(1, 5)]
A = ("10.0.0.1", 8080)


def _router(annotations: dict[str, str] | None = None, ips: list[str] = IPS) -> Router:
    ing = ingress("web", [("a.test", "/", "Prefix", "web", 80)], annotations)
    return Router(resources(ing, *simple_backend("web", ips)))


def _eps(n: int) -> EndpointSet:
    return EndpointSet("ns", "s", 80, tuple((f"10.0.0.{i}", 80) for i in range(1, n + 1)),
                       (1,) * n)


def test_round_robin_retries_of_a_failed_endpoint_spread_over_the_survivors() -> None:
    # DEFECT. One of four endpoints fails every request: its retries all went to the next
    # endpoint in the list (10.0.0.2 served 600 of 1,200 requests, the two others 300 each).
    r = _router()
    served: Counter[Address] = Counter()
    retried: Counter[Address] = Counter()
    for _ in range(1200):
        d = r.route("GET", "a.test", "/")
        assert d is not None and d.endpoint is not None
        if d.endpoint == A:
            nxt = r.next_endpoint(d, (A,))
            assert nxt is not None and nxt != A
            retried[nxt] += 1
            served[nxt] += 1
        else:
            served[d.endpoint] += 1
    assert A not in served
    assert sorted(retried.values()) == [100, 100, 100]
    assert sorted(served.values()) == [400, 400, 400]


def test_round_robin_retries_leave_the_request_cycle_alone() -> None:
    # The requests keep their strict cycle whatever the retries do in between.
    r = _router()
    firsts = []
    for k in range(40):
        d = r.route("GET", "a.test", "/")
        assert d is not None and d.endpoint is not None
        firsts.append(d.endpoint)
        tried = {d.endpoint}
        for _ in range(k % 4):
            nxt = r.next_endpoint(d, tried)
            assert nxt is not None and nxt not in tried
            tried.add(nxt)
        if len(tried) == len(IPS):
            assert r.next_endpoint(d, tried) is None
    start = firsts[0]
    order = sorted(set(firsts))
    i = order.index(start)
    assert firsts == [order[(i + k) % 4] for k in range(40)]


def test_round_robin_second_retry_spreads_too() -> None:
    # Two endpoints failing: the retries of a request that tried both go to the two others
    # in turn, not always to the one after the first failed endpoint.
    r = _router()
    got: Counter[Address] = Counter()
    d = r.route("GET", "a.test", "/")
    assert d is not None
    tried = {A, ("10.0.0.2", 8080)}
    for _ in range(200):
        nxt = r.next_endpoint(d, tried)
        assert nxt is not None and nxt not in tried
        got[nxt] += 1
    assert sorted(got.values()) == [100, 100]


def test_persistent_affinity_retries_of_a_pinned_session_spread() -> None:
    # DEFECT. Sessions pinned (persistent cookie) to a failing endpoint retry with the
    # round-robin of new sessions; a tick falling on the failed endpoint went to its
    # successor, which took half of the retries (the others a quarter each).
    r = _router({P + "affinity": "cookie", P + "affinity-mode": "persistent",
                 P + "session-cookie-name": "sid"})
    cookie = None
    for _ in range(8):
        d = r.route("GET", "a.test", "/")
        assert d is not None
        if d.endpoint == A and d.set_cookie is not None:
            cookie = d.set_cookie.split(";")[0]
            break
    assert cookie is not None
    got: Counter[Address] = Counter()
    for _ in range(300):
        d = r.route("GET", "a.test", "/", {"Cookie": cookie})
        assert d is not None and d.endpoint == A and d.set_cookie is None
        nxt = r.next_endpoint(d, (A,))
        assert nxt is not None and nxt != A
        got[nxt] += 1
    assert len(got) == 3
    assert max(got.values()) - min(got.values()) <= 3, got


def test_round_robin_balancer_retry_takes_untried_in_turn() -> None:
    # DEFECT (the balancer alone): a tick on a tried endpoint went to the next untried one.
    rr = RoundRobin()
    e = _eps(4)
    failed = {e.endpoints[0]}
    got = Counter(rr.pick(RequestContext(retry=True), e, failed) for _ in range(1200))
    assert None not in got and 0 not in got
    assert sorted(got.values()) == [400, 400, 400]


def test_round_robin_without_retries_is_still_a_strict_cycle() -> None:
    rr = RoundRobin()
    e = _eps(3)
    assert [rr.pick(RequestContext(), e, ()) for _ in range(7)] == [0, 1, 2, 0, 1, 2, 0]


@settings(max_examples=examples(0.3), deadline=None)
@given(n=st.integers(1, 6), tried=st.sets(st.integers(0, 5)), calls=st.integers(1, 6))
def test_round_robin_retry_never_returns_a_tried_endpoint(n: int, tried: set[int],
                                                          calls: int) -> None:
    # §8: "A retry never goes back to an endpoint this request already tried while another
    # is untried"; None once all were tried (balancer and Router alike).
    e = _eps(n)
    t = {e.endpoints[k] for k in tried if k < n}
    rr = RoundRobin()
    for _ in range(calls):
        i = rr.pick(RequestContext(retry=True), e, t)
        if len(t) == n:
            assert i is None
        else:
            assert i is not None and e.endpoints[i] not in t
    r = _router(ips=[f"10.0.0.{i}" for i in range(1, n + 1)])
    d = r.route("GET", "a.test", "/")
    assert d is not None
    rt = {(f"10.0.0.{k + 1}", 8080) for k in tried if k < n}
    for _ in range(calls):
        nxt = r.next_endpoint(d, rt)
        if len(rt) == n:
            assert nxt is None
        else:
            assert nxt is not None and nxt not in rt


def test_named_target_port_numbered_differently_keeps_each_endpoints_port() -> None:
    # Decision (kept): pods numbering a named targetPort differently are each reached on
    # their own port (ingress-nginx getEndpointsFromSlices: one upstream server per slice
    # port); Decision.port stays one number per backend (IngressASGI's mount key), the first
    # endpoint's in sorted order.
    from ingresslib._models import ServicePort
    from _router_helpers import service, slice_
    ing = ingress("web", [("a.test", "/", "Prefix", "web", "web")])
    svc = service("web", [ServicePort(port=80, target_port="http", name="web")])
    r = Router(resources(ing, svc,
                         slice_("b", "web", ["10.0.0.2"], ports=(("web", 9090),)),
                         slice_("a", "web", ["10.0.0.1"], ports=(("web", 8080),))))
    seen = {}
    for _ in range(4):
        d = r.route("GET", "a.test", "/")
        assert d is not None and d.endpoint is not None
        seen[d.endpoint] = d.port
    assert seen == {("10.0.0.1", 8080): 8080, ("10.0.0.2", 9090): 8080}


# affinity-canary-behavior is read as GetStringAnnotation returns it (trimmed: " legacy " is
# legacy in ingress-nginx, ValidateOptions(..., true, true)); it was taken for an unsupported
# value and meant sticky (session 24, C1).
@pytest.mark.parametrize("value, legacy, warned", [
    ("legacy", True, False), (" legacy ", True, False), ("\tlegacy", True, False),
    ("Legacy", False, True), ("legacy\n", False, True), ("sticky ", False, False)])
def test_affinity_canary_behavior_is_trimmed(value: str, legacy: bool, warned: bool) -> None:
    from _router_helpers import canary

    objs = [ingress("web", [("a.test", "/", "Prefix", "web", 80)], {P + "affinity": "cookie"}),
            canary("web-c", "a.test", "/", "web-canary", 80,
                   {P + "canary-weight": "100", P + "affinity-canary-behavior": value})]
    objs += simple_backend("web", ["10.0.0.1"]) + simple_backend("web-canary", ["10.1.0.1"])
    r = Router(resources(*objs), seed=1)
    d = r.route("GET", "a.test", "/", ())
    assert d is not None and d.canary
    assert (d.set_cookie is None) is legacy
    assert any("affinity-canary-behavior" in w.field for w in r.warnings) is warned
