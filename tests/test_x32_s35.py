"""Session 35, x32: a second engineer's review of the balancers (round-robin, EWMA, consistent
hashing and its subsets, the compiled counters) against ingress-nginx's Lua:
``rootfs/etc/nginx/lua/balancer.lua`` (``get_implementation``, ``sync_backend``,
``get_balancer``), ``balancer/round_robin.lua`` + ``balancer/resty.lua`` (resty.roundrobin,
``reinit`` only when the nodes changed), ``balancer/ewma.lua`` (``DECAY_TIME = 10``,
``PICK_SET_SIZE = 2``, ``calculate_slow_start_ewma``, ``after_balance``, the
``balancer_ewma`` shared dict), ``balancer/chash.lua`` and ``chashsubset.lua``
(``build_subset_map``, ``endpoints[math.random(#endpoints)]``). Expected values come from
that code or from arithmetic on the inputs, never from ingresslib's own answers.

Defect fixed (each ``test_fix_*`` failed before the fix):

* ``upstream-hash-by-subset`` ignored the endpoint weights (``ingresslib.io/endpoint-weights``)
  that the plain ring honours (160 points per unit): an endpoint of weight 3 beside one of
  weight 1 in a subset got half of the subset's requests, and a subset of heavy endpoints no
  more keys than one of light ones. Now the draw inside a subset is by weight (an endpoint
  holding two places draws with both, as before) and each subset holds ring points in
  proportion to the weight of its places, so with weights every endpoint's share of the keys
  is its unweighted share scaled by its weight; retries among a subset's untried endpoints
  are drawn by weight too. Without weights nothing changed (the same draws from the same
  seeded source: test_balance_review2's chashsubset mirror runs unchanged).

Checked and found right (the guards below pin the ones earlier reviews did not):

* round-robin: over 10,000 requests through the Router with one of 4 endpoints refusing,
  each survivor serves a third and no retry returns to the failed endpoint (ingress-nginx's
  retry takes the next turn of its one cursor); weighted: nginx's smooth weighted order
  (test_balance.py) restarted only when the endpoints or weights change (resty.lua ``sync``
  calls ``reinit`` only then), an equal set continuing it; two Ingresses on one backend
  share one balancer and one endpoint set, so a turn one gives back is undone whatever the
  other picked meanwhile (3:1 weights stay 3:1); a rule rebuilt by an unrelated Ingress
  change restarts its unweighted cycle where the shared counter says (R10; ingress-nginx
  reloads its workers for such a change, and their new instances start at a random node);
* EWMA: the score decays towards 0 with ``DECAY_TIME`` 10 s (``decay_ewma`` with rtt 0);
  power of two distinct choices, the first drawn winning a tie (``pick_and_score``'s
  strict ``<``); slow start as ``calculate_slow_start_ewma``: the average of the stored
  (undecayed) values of the current endpoints that have one - an endpoint never measured
  does not pull the average down - stamped with the time of the sync, and nothing stored
  when no endpoint has a value (the newcomers score 0); removed endpoints' values deleted;
  the first sample of an endpoint is its value (``decay_ewma`` from ``last_touched_at`` 0);
  a retry never draws a tried endpoint, None when all were tried (ewma.lua then draws among
  all again; the Router's protocol says None); the stats live per balancer, one process (the
  shared dict exists for nginx's several workers);
* consistent hashing: the key template as ``util.parse_complex_value`` /
  ``generate_var_value`` read it (earlier reviews); the ring is ingresslib's (README: not
  resty.chash's CRC32 points, so no claim that a key lands where ingress-nginx's would);
  10,000 keys of three kinds (client addresses of one network, paths, user ids) spread
  within 15 % of the fair share over 2-10 endpoints; removing an endpoint moves only its
  own keys; the subsets are ``build_subset_map``'s and a changed
  ``upstream-hash-by`` / ``-subset-size`` takes effect with the update (a new instance;
  ingress-nginx's ``chash.lua`` ``sync`` re-reads only the endpoints);
* ``sync_backend``: a balancer is kept across updates while its kind and settings stay
  (``BalancerSpec`` in the Router's key), replaced when they change, dropped with its
  backend;
* the compiled counters and the pure twin: the same sequences for any mix of ``next`` and
  ``give_back`` on ``Rotation`` and ``Interleave`` (hypothesis differential below; the
  ``HashPick``/``CanaryPick``/``http_header`` differentials are test_review_s23_balance's).

Noticed and left alone (no ingress-nginx behaviour to follow, or not these files): EWMA
ignores endpoint weights (ingress-nginx has none; docs/router.md names round-robin, persistent
sessions and the hash rings as their users); a ``HashPick`` built by hand with a float
``shift`` is taken by the compiled twin and fails at the first pick in the pure one (the
Router always passes ints).
"""

from __future__ import annotations

import importlib
import random
from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from _budget import examples
from _router_helpers import P, ingress, resources, simple_backend
from ingresslib import _pick_py
from ingresslib._balance import (
    EMPTY_REQUEST,
    BalancerOptions,
    BalancerSpec,
    ConsistentHash,
    Ewma,
    RequestContext,
)
from ingresslib._endpoints import EndpointSet
from ingresslib._hashing import HashRing, hash_key, member_id
from ingresslib._router import Router

try:
    _pick_c: Any = importlib.import_module("ingresslib._pick")
except ImportError:  # pragma: no cover - the extension is built in CI and here
    _pick_c = None

PICKS = 10_000


def _eps(n: int, weights: tuple[int, ...] | None = None) -> EndpointSet:
    endpoints = tuple((f"10.0.0.{i + 1}", 8080) for i in range(n))
    w = weights or (1,) * n
    return EndpointSet("default", "web", 8080, endpoints, w, None, len(set(w)) > 1)


def _subset_balancer(size: int, seed: int = 7) -> ConsistentHash:
    return ConsistentHash(BalancerOptions(rng=random.Random(seed), spec=BalancerSpec(
        "chash", hash_by="$arg_id", subset=True, subset_size=size)))


def _shares(counts: Counter[Any], total: int) -> dict[Any, float]:
    return {k: v / total for k, v in counts.items()}


# --- the defect: upstream-hash-by-subset and endpoint weights ------------------------------------


def test_fix_subset_draw_follows_the_endpoint_weights() -> None:
    # One subset of two places, [e1, e2], weights 3 and 1: e1 should answer 3 requests in 4
    # of the subset's (before: 1 in 2, the weights ignored).
    b, backend = _subset_balancer(2), _eps(2, (3, 1))
    ctx = RequestContext(query="id=1")
    share = _shares(Counter(b.pick(ctx, backend, ()) for _ in range(PICKS)), PICKS)
    assert 0.73 < share[0] < 0.77, share


def test_fix_subset_draw_weighs_each_place() -> None:
    # 2 endpoints, size 3: chashsubset.lua's places are [e1, e2, e1]. Weights 1 and 4: e1's
    # two places weigh 2, e2's one place 4, so e1 answers 1/3 of the requests (before: 2/3,
    # the places counted alone).
    b, backend = _subset_balancer(3, seed=11), _eps(2, (1, 4))
    ctx = RequestContext(query="id=5")
    share = _shares(Counter(b.pick(ctx, backend, ()) for _ in range(PICKS)), PICKS)
    assert 0.31 < share[0] < 0.355, share


def test_fix_subsets_hold_ring_shares_in_proportion_to_their_weight() -> None:
    # 4 endpoints, size 2: subsets [e1, e2] and [e3, e4]; weights 3, 1, 1, 1. Over 10,000 keys
    # each endpoint's share should be its weight's share, 1/2 and 1/6 each (the first subset
    # holding 2/3 of the ring, e1 3/4 of it). Before: a quarter each (subsets even on the
    # ring, draws even inside). The tolerance is the ring's own unevenness (ketama's points).
    b, backend = _subset_balancer(2, seed=3), _eps(4, (3, 1, 1, 1))
    picks = Counter(b.pick(RequestContext(query=f"id={k}"), backend, ()) for k in range(PICKS))
    share = _shares(picks, PICKS)
    assert abs(share[0] - 1 / 2) < 0.05, share
    for k in (1, 2, 3):
        assert abs(share[k] - 1 / 6) < 0.04, share


@pytest.mark.parametrize("retry_context", [False, True])
def test_fix_subset_retry_draws_the_untried_by_weight(retry_context: bool) -> None:
    # One subset [e1, e2, e3] of weights 1, 2, 4; e1 failed. Its retries go to e2 and e3 as
    # 2 to 4 (before: evenly). Both ways a retry reaches the balancer: with the request (the
    # proxy's ``next_endpoint(..., request=)``) and with a retry context (no key).
    b, backend = _subset_balancer(3, seed=5), _eps(3, (1, 2, 4))
    tried = {backend.endpoints[0]}
    ctx = RequestContext(query="id=2", retry=retry_context)
    share = _shares(Counter(b.pick(ctx, backend, tried) for _ in range(PICKS)), PICKS)
    assert set(share) == {1, 2}
    assert 0.645 < share[2] < 0.69, share
    assert b.pick(ctx, backend, set(backend.endpoints)) is None


def test_fix_router_subset_follows_the_service_weights() -> None:
    # Through the Router (its key path): the Service says 10.0.0.1 weighs 3; subsets of 2
    # over 2 endpoints, so one subset and every request drawn inside it.
    ing = ingress("web", [("a.test", "/", "Prefix", "web", 80)],
                  {P + "upstream-hash-by": "$uri", P + "upstream-hash-by-subset": "true",
                   P + "upstream-hash-by-subset-size": "2"})
    r = Router(resources(ing, *simple_backend(
        "web", ["10.0.0.1", "10.0.0.2"],
        annotations={"ingresslib.io/endpoint-weights": "10.0.0.1=3"})), seed=4)
    got: Counter[str] = Counter()
    for k in range(PICKS):
        d = r.route("GET", "a.test", f"/x/{k}")
        assert d is not None and d.endpoint is not None
        got[d.endpoint[0]] += 1
    assert 0.73 < got["10.0.0.1"] / PICKS < 0.77, got


def test_unweighted_subsets_draw_as_before() -> None:
    # Guard for the fix: without weights the draw is still one ``randrange(size)`` per pick
    # from the seeded source, place t holding endpoint t mod n (chashsubset.lua's padding):
    # 3 endpoints, size 5 -> [e1, e2, e3, e1, e2].
    b, backend = _subset_balancer(5, seed=9), _eps(3)
    mirror = random.Random(9)
    got = [b.pick(RequestContext(query="id=4"), backend, ()) for _ in range(200)]
    assert got == [mirror.randrange(5) % 3 for _ in range(200)]


# --- round-robin ---------------------------------------------------------------------------------


def test_round_robin_retries_of_a_failing_endpoint_spread_over_the_survivors() -> None:
    # 4 endpoints, 10.0.0.1 refuses every request: each request routed there is retried
    # (``next_endpoint``, as the proxy does for proxy-next-upstream). Served: a third each
    # (the requests' own cycle gives each survivor a quarter, the retries the last quarter
    # evenly); a retry never returns to the failed endpoint.
    r = Router(resources(ingress("web", [("a.test", "/", "Prefix", "web", 80)]),
                         *simple_backend("web", [f"10.0.0.{i}" for i in range(1, 5)])), seed=2)
    served: Counter[str] = Counter()
    for _ in range(PICKS):
        d = r.route("GET", "a.test", "/")
        assert d is not None and d.endpoint is not None
        ep = d.endpoint
        if ep[0] == "10.0.0.1":
            nxt = r.next_endpoint(d, {ep})
            assert nxt is not None and nxt != ep
            ep = nxt
        served[ep[0]] += 1
    assert "10.0.0.1" not in served
    for ip in ("10.0.0.2", "10.0.0.3", "10.0.0.4"):
        assert abs(served[ip] / PICKS - 1 / 3) < 0.01, served



def test_weighted_turns_given_back_on_a_shared_balancer_keep_the_weights() -> None:
    # Two Ingresses on one weighted backend (3:1) share its balancer and its endpoint set.
    # Every other request of one is refused before its connect (``give_back``) while the
    # other keeps picking: the served requests of both still split 3:1 (nginx's turns are
    # taken at the connect, ingress-nginx ``balancer.balance()``).
    weights = {"ingresslib.io/endpoint-weights": "10.0.0.1=3"}
    res = resources(ingress("a", [("a.test", "/", "Prefix", "web", 80)]),
                    ingress("b", [("b.test", "/", "Prefix", "web", 80)],
                            {P + "proxy-body-size": "1m"}),
                    *simple_backend("web", ["10.0.0.1", "10.0.0.2"], annotations=weights))
    r = Router(res, seed=1)
    served: Counter[str] = Counter()
    for k in range(2000):
        for host in ("b.test", "a.test"):
            d = r.route("GET", host, "/")
            assert d is not None and d.endpoint is not None
            if host == "a.test" and k % 2 == 0:
                r.give_back(d, "GET", host, "/")
            else:
                served[d.endpoint[0]] += 1
    assert served["10.0.0.1"] == 3 * served["10.0.0.2"], served

# --- EWMA ----------------------------------------------------------------------------------------


def _ewma(clock: list[float], seed: int = 1) -> Ewma:
    return Ewma(BalancerOptions(rng=random.Random(seed), clock=lambda: clock[0]))


@pytest.mark.parametrize(("idle", "winner"), [(6.9, 1), (7.1, 0)])
def test_ewma_score_decays_with_a_ten_second_decay_time(idle: float, winner: int) -> None:
    # ewma.lua ``score``: ``decay_ewma(ewma, last_touched_at, 0, now)`` = ewma *
    # exp(-(now - last_touched_at) / 10). Endpoint 0 measured 1.0 s at t=0, endpoint 1 0.5 s at
    # t=idle, compared at t=idle: 1.0 * exp(-idle/10) is above 0.5 before ~6.93 s, below after.
    # Two endpoints: the power of two choices compares both on every pick.
    clock = [0.0]
    b = _ewma(clock)
    backend = _eps(2)
    b.pick(EMPTY_REQUEST, backend, ())
    b.observe(backend.endpoints[0], 1.0, True)
    clock[0] = idle
    b.observe(backend.endpoints[1], 0.5, True)
    assert {b.pick(EMPTY_REQUEST, backend, ()) for _ in range(20)} == {winner}


def test_ewma_slow_start_averages_the_endpoints_that_have_a_value() -> None:
    # ewma.lua ``calculate_slow_start_ewma``: "local ewma = ngx.shared.balancer_ewma:get(...);
    # if ewma then endpoints_count = endpoints_count + 1": an endpoint never measured is left
    # out of the average, not counted as 0. e1 measured 0.4 s, e2 never: the newcomer e3
    # starts at 0.4 (with 0.2, the average with e2 counted as 0, it would beat e1).
    clock = [0.0]
    b = _ewma(clock)
    b.pick(EMPTY_REQUEST, _eps(2), ())
    b.observe(("10.0.0.1", 8080), 0.4, True)
    clock[0] = 0.5
    b.observe(("10.0.0.1", 8080), 0.4, True)  # e1's value: 0.4
    three = _eps(3)
    b.pick(EMPTY_REQUEST, three, ())  # the sync: e3 stamped now with the average
    # e1 (0.4, idle 0 s) against e3 (0.4, idle 0 s): a tie, the first drawn wins; e2 (never
    # measured, 0) wins every pair it is in. So e3 wins only some of its pairs with e1.
    picks = Counter(b.pick(EMPTY_REQUEST, three, ()) for _ in range(3000))
    pairs_e2_in = 2 / 3
    assert abs(picks[1] / 3000 - pairs_e2_in) < 0.03, picks
    assert abs(picks[2] / 3000 - 1 / 6) < 0.03, picks  # half of the e1-e3 pairs


def test_ewma_newcomers_score_zero_when_no_endpoint_has_a_value() -> None:
    # ``calculate_slow_start_ewma`` returns nil when no endpoint has a value, and ``sync``
    # stores nothing: the newcomer scores 0, as the others. Nothing measured yet: all tie.
    clock = [0.0]
    b = _ewma(clock, seed=4)
    b.pick(EMPTY_REQUEST, _eps(2), ())
    three = _eps(3)
    picks = Counter(b.pick(EMPTY_REQUEST, three, ()) for _ in range(3000))
    for k in range(3):
        assert abs(picks[k] / 3000 - 1 / 3) < 0.04, picks


# --- consistent hashing --------------------------------------------------------------------------


_KEY_KINDS = {
    "client addresses": [f"10.1.{a}.{b}" for a in range(40) for b in range(1, 251)],
    "paths": [f"/item/{i}" for i in range(PICKS)],
    "user ids": [f"user-{i}" for i in range(PICKS)],
}


@pytest.mark.parametrize("n", [2, 3, 5, 10])
@pytest.mark.parametrize("kind", sorted(_KEY_KINDS))
def test_consistent_hash_spreads_ten_thousand_keys(n: int, kind: str) -> None:
    ring = HashRing([member_id(f"10.244.1.{i + 2}", 8080) for i in range(n)])
    keys = _KEY_KINDS[kind]
    counts = Counter(ring.lookup(hash_key(k)) for k in keys)
    assert len(counts) == n
    for c in counts.values():
        assert abs(c * n / len(keys) - 1) < 0.15, (kind, n, sorted(counts.values()))


@pytest.mark.parametrize("removed", [0, 3, 6])
def test_removing_an_endpoint_moves_only_its_own_keys(removed: int) -> None:
    # 7 endpoints, one removed: its keys (about 1/7) go elsewhere, every other key stays.
    b = ConsistentHash(BalancerOptions(spec=BalancerSpec("chash", hash_by="$request_uri")))
    before = _eps(7)
    after = EndpointSet("default", "web", 8080,
                        tuple(ep for k, ep in enumerate(before.endpoints) if k != removed),
                        (1,) * 6, None, False)
    moved = 0
    for k in range(PICKS):
        ctx = RequestContext(path=f"/k/{k}")
        i, j = b.pick(ctx, before, ()), b.pick(ctx, after, ())
        assert i is not None and j is not None
        if i == removed:
            moved += 1
        else:
            assert after.endpoints[j] == before.endpoints[i]  # a survivor's key stays
    assert abs(moved / PICKS - 1 / 7) < 0.05


def test_a_changed_hash_key_applies_with_the_update() -> None:
    # ingress-nginx's ``sync_backend`` keeps a chash instance (same implementation) and
    # chash.lua ``sync`` re-reads only the endpoints; here a changed ``upstream-hash-by`` is
    # another balancer spec: a new instance hashing the new key at once. Checked through
    # the key: $http_x_user ignores the path, $request_uri does not.
    def res(key: str) -> Any:
        return resources(ingress("web", [("a.test", "/", "Prefix", "web", 80)],
                                 {P + "upstream-hash-by": key}),
                         *simple_backend("web", [f"10.0.0.{i}" for i in range(1, 6)]))

    r = Router(res("$request_uri"), seed=1)
    paths = [f"/p/{k}" for k in range(40)]

    def spread() -> int:
        got = [r.route("GET", "a.test", p, {"x-user": "ann"}) for p in paths]
        return len({d.endpoint for d in got if d is not None})

    assert spread() > 1
    r.update(res("$http_x_user"))
    assert spread() == 1
    r.update(res("$request_uri"))
    assert spread() > 1


# --- the compiled counters and their pure twin ---------------------------------------------------


_OPS = st.lists(st.one_of(st.just(("next", 0)), st.tuples(st.just("back"), st.integers(0, 5))),
                max_size=40)


@pytest.mark.skipif(_pick_c is None, reason="ingresslib._pick is not built")
@settings(max_examples=examples())
@given(n=st.integers(1, 5), start=st.integers(-7, 7), ops=_OPS)
def test_rotation_twins_agree_on_any_mix_of_next_and_give_back(
        n: int, start: int, ops: list[tuple[str, int]]) -> None:
    items = tuple(object() for _ in range(n))
    stranger = object()
    runs = []
    for mod in (_pick_c, _pick_py):
        rot = mod.Rotation(items, start)
        out: list[object] = []
        for op, arg in ops:
            if op == "next":
                out.append(items.index(next(rot)))
            else:
                out.append(rot.give_back(items[arg] if arg < n else stranger))
        runs.append(out)
    assert runs[0] == runs[1]


@pytest.mark.skipif(_pick_c is None, reason="ingresslib._pick is not built")
@settings(max_examples=examples())
@given(total=st.integers(1, 9), data=st.data(), ops=_OPS)
def test_interleave_twins_agree_on_any_mix_of_next_and_give_back(
        total: int, data: st.DataObject, ops: list[tuple[str, int]]) -> None:
    weight = data.draw(st.integers(0, total))
    runs = []
    for mod in (_pick_c, _pick_py):
        split = mod.Interleave(weight, total)
        out: list[object] = []
        for op, arg in ops:
            if op == "next":
                out.append(next(split))
            else:
                split.give_back(arg % 2 == 0)
        runs.append(out)
    assert runs[0] == runs[1]
