"""Session 36, x46: balancer state across route-table rebuilds, and the keep-alive race retry's
pick.

ingress-nginx (rootfs/etc/nginx/lua/balancer.lua ``sync_backend``; balancer/resty.lua ``sync``;
lua-resty-balancer lib/resty/roundrobin.lua ``new`` / ``reinit`` / ``find``): a backend's
balancer is kept by upstream name while its implementation stays; ``sync`` returns early when
the nodes are unchanged (the round-robin cursor ``last_id`` goes on), calls ``reinit`` when
they changed (``last_id = get_random_node_id(nodes)``: a new cycle at a random node), and a
backend without endpoints loses its balancer (``balancers[backend.name] = nil``). A reload
starts new workers whose ``init_worker`` builds new instances (``new``: a random node too).

Defects fixed (each ``test_fix_*`` failed before the fix):

* a route-table rebuild (any Ingress change) gave every round-robin rule a new cycle starting
  where the backend balancer's shared counter said, whatever the rule's old cycle had reached:
  with 2 endpoints an unrelated Ingress edit could send two requests in a row to one endpoint.
  A rule whose backend kept its balancer and an equal endpoint set now goes on from its old
  cycle's next turn (as ``sync`` with unchanged nodes); a changed endpoint set still starts a
  new cycle where the counter says (ingress-nginx: ``reinit``, a random node; R10).
* the keep-alive race retry (a pooled connection the upstream closed as it was reused) went to
  the same endpoint without telling the balancer. nginx frees the cached peer as failed
  (ngx_http_upstream_next: ``u->peer.free(&u->peer, u->peer.data, NGX_PEER_FAILED)`` before
  ``u->peer.tries++``) and connects through the balancer again (the keepalive module's get
  "ask balancer": ``kp->original_get_peer``; ngx_http_lua_balancer_get_peer runs
  ingress-nginx's ``balance()`` on every get): the retry now takes the router's next
  endpoint (the race not observed as a failure: x51 s36), the same one only when every endpoint was tried.

Checked and pinned (right before): the weighted round-robin, EWMA statistics and canary
``WeightSplit`` counters survive a rebuild that keeps their key (balancer by backend key,
split by rule key and weights).
"""

from __future__ import annotations

from typing import Any

from ingresslib._router import Router

from _proxy_harness import ProxyPair, Route, status_of
from _router_helpers import P, canary, ingress, resources, simple_backend

IPS = ["10.0.0.1", "10.0.0.2"]
EP1, EP2 = ("10.0.0.1", 8080), ("10.0.0.2", 8080)
WEB_RULE = ("a.test", "/", "Prefix", "web", 80)


def _objects(other_path: str = "/x", ips: list[str] = IPS, web_ann: dict[str, str] | None = None,
             extra: tuple[Any, ...] = ()) -> tuple[Any, ...]:
    """Ingress ``web`` on Service web (endpoints ``ips``) and an unrelated Ingress ``other``
    whose path is ``other_path`` (editing it rebuilds the route table)."""
    return (ingress("web", [WEB_RULE], web_ann), ingress("other", [("b.test", other_path,
                                                                    "Prefix", "api", 80)]),
            *simple_backend("web", ips), *simple_backend("api", ["10.0.1.1"]), *extra)


def _endpoints(router: Router, n: int, host: str = "a.test") -> list[tuple[str, int] | None]:
    out = []
    for _ in range(n):
        d = router.route("GET", host, "/")
        assert d is not None
        out.append(d.endpoint)
    return out


def _alternates(seq: list[Any]) -> bool:
    return all(a != b for a, b in zip(seq, seq[1:]))


# --- item 1: the round-robin cycle across a table rebuild ---------------------------------------


def test_fix_unrelated_ingress_edit_does_not_repeat_an_endpoint() -> None:
    """Two endpoints, k requests, an unrelated Ingress edited (the table is rebuilt), more
    requests: the rule's cycle goes on, never the same endpoint twice in a row (ingress-nginx:
    ``sync`` returns early when the nodes are unchanged)."""
    for before in range(1, 6):
        router = Router(resources(*_objects()))
        seq = _endpoints(router, before)
        table = router.table
        for k, path in enumerate(("/y", "/z", "/x")):
            router.update(resources(*_objects(path)))
            assert router.table is not table  # a rebuild, not an endpoint-only update
            table = router.table
            seq += _endpoints(router, 1 + (before + k) % 3)
        assert _alternates(seq), (before, seq)
        assert set(seq) == {EP1, EP2}


def test_fix_rebuild_keeps_the_position_of_a_three_endpoint_cycle() -> None:
    """Over three endpoints the cycle after the rebuild is the one before, continued: any
    window of 3 requests across the edit reaches every endpoint once."""
    ips = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    for before in range(1, 5):
        router = Router(resources(*_objects(ips=ips)))
        seq = _endpoints(router, before)
        router.update(resources(*_objects("/y", ips=ips)))
        seq += _endpoints(router, 6)
        for i in range(len(seq) - 2):
            assert len(set(seq[i:i + 3])) == 3, (before, seq)


def test_fix_canary_sides_keep_their_cycles_across_a_rebuild() -> None:
    """A canary rule by weight (both sides round-robin, the compiled ``CanaryPick``): each
    side's cycle goes on across an unrelated edit, as the split does."""
    def objs(path: str) -> tuple[Any, ...]:
        return _objects(path, extra=(
            canary("web-canary", "a.test", "/", "web2", 80, {P + "canary-weight": "50"}),
            *simple_backend("web2", ["10.0.2.1", "10.0.2.2"])))

    for before in range(1, 7):
        router = Router(resources(*objs("/x")))
        seq = _endpoints(router, before)
        router.update(resources(*objs("/y")))
        seq += _endpoints(router, 8)
        main = [e for e in seq if e in (EP1, EP2)]
        side = [e for e in seq if e not in (EP1, EP2)]
        assert _alternates(main) and _alternates(side), (before, seq)
        # The 50 % split goes on too (WeightSplit kept by rule key and weights).
        assert _alternates([e in (EP1, EP2) for e in seq]), (before, seq)


def test_rebuild_with_a_changed_endpoint_set_starts_a_new_cycle() -> None:
    """A changed endpoint set (ingress-nginx ``reinit``) is not the old cycle continued: the
    new one starts where the balancer's counter says (R10), covering every endpoint over a
    window of N."""
    router = Router(resources(*_objects()))
    _endpoints(router, 3)
    ips = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    router.update(resources(*_objects("/y", ips=ips)))
    seq = _endpoints(router, 6)
    assert all(len(set(seq[i:i + 3])) == 3 for i in range(4)), seq


def test_endpoint_only_update_keeps_the_cycle() -> None:
    """Pinned (right before): an update that keeps the table and the backend's endpoints (the
    other Service's endpoints changed) keeps the rule's objects, cycle included."""
    for before in range(1, 4):
        router = Router(resources(*_objects()))
        seq = _endpoints(router, before)
        objs = list(_objects())
        objs[-1:] = simple_backend("api", ["10.0.1.2"])[1:]
        router.update(resources(*objs))
        seq += _endpoints(router, 4)
        assert _alternates(seq), seq


def test_fix_given_back_turn_survives_a_rebuild() -> None:
    """A turn given back before the edit (a request answered without a connect) is served
    first after it, as it would have been without the edit."""
    router = Router(resources(*_objects()))
    first = router.route("GET", "a.test", "/")
    assert first is not None and first.endpoint == EP1
    router.give_back(first, "GET", "a.test", "/")
    router.update(resources(*_objects("/y")))
    assert _endpoints(router, 3) == [EP1, EP2, EP1]


def test_weighted_round_robin_and_ewma_state_survive_a_rebuild() -> None:
    """Pinned (right before): the smooth weighted cycle and EWMA's statistics live in the
    backend's balancer, kept by its key across the rebuild (nothing restarts)."""
    weights = {"ingresslib.io/endpoint-weights": "10.0.0.1=2"}
    extra_svc = simple_backend("web", IPS, annotations=weights)

    def objs(path: str) -> tuple[Any, ...]:
        base = _objects(path)
        return (*base[:2], *extra_svc, *base[4:])

    whole = Router(resources(*objs("/x")))
    expected = _endpoints(whole, 9)  # nginx's smooth WRR over 2:1: a, b, a, a, b, a, ...
    router = Router(resources(*objs("/x")))
    seq = _endpoints(router, 4)
    router.update(resources(*objs("/y")))
    seq += _endpoints(router, 5)
    assert seq == expected

    clock = [100.0]
    ewma = Router(resources(*_objects(web_ann={P + "load-balance": "ewma"})), seed=1,
                  clock=lambda: clock[0])
    d = ewma.route("GET", "a.test", "/")
    assert d is not None
    ewma.observe(d, EP1, 5.0, True)
    ewma.observe(d, EP2, 0.001, True)
    ewma.update(resources(*_objects("/y", web_ann={P + "load-balance": "ewma"})))
    # EP1's slow sample is still known: the power of two choices always prefers EP2.
    assert set(_endpoints(ewma, 20)) == {EP2}


# --- item 2: the keep-alive race retry asks the balancer ----------------------------------------


GET = b"GET /g HTTP/1.1\r\nHost: example.test\r\n\r\n"
A, B = ("10.0.0.1", 80), ("10.0.0.2", 80)


def test_fix_keepalive_race_retry_takes_the_balancers_next_endpoint() -> None:
    """The pooled connection to A is found closed as the GET is sent on it: the retry (not
    counted as a try) goes where the router's ``next_endpoint`` says, B (nginx:
    ``peer.free(NGX_PEER_FAILED)``, then the balancer's get again); A's race is not observed
    (x51 s36: tests/test_x51_s36.py)."""
    pair = ProxyPair([Route("/", endpoints=[A, B])])
    assert status_of(pair.send(GET)) == 200
    pair.upstreams[0].closed = True  # the upstream closed the idle connection meanwhile
    assert status_of(pair.send(GET)) == 200
    assert pair.opens[-1].endpoint == B and pair.opens[-1].pooled is False
    rec = pair.records[-1]
    assert rec.upstreams == (A, B) and rec.upstream_statuses == (502, 200)
    # (x51 s36: the race itself is not observed: the endpoint did nothing wrong.)
    assert pair.router.observed[-2:] == [(A, True), (B, True)]


def test_fix_keepalive_race_retry_is_still_free_with_one_try_allowed() -> None:
    """``proxy-next-upstream-tries: 1``: the race retry is not counted (``u->peer.tries++``),
    so it still goes (to the next endpoint), where an ordinary failed try would not."""
    pair = ProxyPair([Route("/", endpoints=[A, B], annotations={
        P + "proxy-next-upstream-tries": "1"})])
    assert status_of(pair.send(GET)) == 200
    pair.upstreams[0].closed = True
    assert status_of(pair.send(GET)) == 200
    assert pair.records[-1].upstreams == (A, B)


def test_keepalive_race_retry_with_every_endpoint_tried_reuses_the_endpoint() -> None:
    """One endpoint: the router has no other (every one tried), so the fresh connection goes
    to the same one, as ingress-nginx's round-robin of one node answers it again."""
    pair = ProxyPair([Route("/", endpoints=[A])])
    assert status_of(pair.send(GET)) == 200
    pair.upstreams[0].closed = True
    assert status_of(pair.send(GET)) == 200
    assert pair.records[-1].upstreams == (A, A)
    assert pair.opens[-1].pooled is False
