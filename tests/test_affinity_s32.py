"""Session 32, ``affinity``: the turns given back to a round-robin live in ``RoundRobin``.

A request answered without a connect gives its pick back (``Router.give_back``): nginx picks
the peer in the balancer phase, at the connect (ingress-nginx ``balancer.lua`` ``balance()``),
so a request answered before takes no turn. ``CookieAffinity`` (persistent mode) kept its own
queue of the new sessions' turns given back beside its ``RoundRobin``, while only a weighted
pick was undone by ``RoundRobin.give_back``. Now ``RoundRobin.give_back`` takes an unweighted
turn back too (a FIFO served first to the next pick with nothing tried on an equal endpoint
list; turns of another list dropped) and ``CookieAffinity`` only forwards to it.

Each ``test_fix_*`` failed before (``RoundRobin.give_back`` did nothing without weights).
"""

from __future__ import annotations

import random
import threading

from ingresslib import EndpointSet
from ingresslib._balance import (
    BalancerOptions,
    CookieAffinity,
    RequestContext,
    RoundRobin,
    parse_balancer_spec,
)

P = "nginx.ingress.kubernetes.io/"
NEW = RequestContext("GET", "a.test", "/")


def _eps(*ips: int, weights: tuple[int, ...] | None = None) -> EndpointSet:
    return EndpointSet("default", "web", 80, tuple((f"10.0.0.{i}", 80) for i in ips),
                       weights or (1,) * len(ips), weighted=weights is not None)


def _picks(rr: RoundRobin, eps: EndpointSet, count: int) -> list[int | None]:
    return [rr.pick(NEW, eps, ()) for _ in range(count)]


def test_fix_round_robin_serves_an_unweighted_turn_given_back_next() -> None:
    rr, eps = RoundRobin(), _eps(1, 2, 3)
    assert _picks(rr, eps, 2) == [0, 1]
    rr.give_back(eps, 1)
    # The turn given back is served first, and the cycle goes on where it was.
    assert _picks(rr, eps, 3) == [1, 2, 0]


def test_fix_round_robin_turns_given_back_are_served_first_in_first_out() -> None:
    rr, eps = RoundRobin(), _eps(1, 2, 3)
    assert _picks(rr, eps, 3) == [0, 1, 2]
    rr.give_back(eps, 2)
    rr.give_back(eps, 0)
    assert _picks(rr, eps, 3) == [2, 0, 0]


def test_fix_round_robin_a_retry_leaves_the_turns_given_back_alone() -> None:
    rr, eps = RoundRobin(), _eps(1, 2, 3)
    assert _picks(rr, eps, 1) == [0]
    rr.give_back(eps, 0)
    # A retry picks among the untried endpoints as before; the turn waits for a first try.
    assert rr.pick(NEW, eps, (eps.endpoints[0],)) in (1, 2)
    assert _picks(rr, eps, 1) == [0]


def test_fix_round_robin_an_equal_endpoint_list_is_the_same_rotation() -> None:
    rr, eps = RoundRobin(), _eps(1, 2)
    assert _picks(rr, eps, 1) == [0]
    rr.give_back(eps, 0)
    assert _picks(rr, _eps(1, 2), 2) == [0, 1]  # a rebuilt, equal set after an update


def test_round_robin_turns_of_a_replaced_endpoint_list_are_dropped() -> None:
    rr, eps, other = RoundRobin(), _eps(1, 2, 3), _eps(1, 2)
    assert _picks(rr, eps, 1) == [0]
    rr.give_back(eps, 2)
    rr.give_back(eps, 1)
    # Endpoints since changed: their rotation is gone, the turns are not served on the new list
    # (nor later, were the old list to come back).
    assert _picks(rr, other, 2) == [1, 0]
    assert not rr._back
    assert _picks(rr, eps, 1) == [0]


def test_round_robin_ignores_a_turn_outside_the_list() -> None:
    rr, eps = RoundRobin(), _eps(1, 2)
    rr.give_back(eps, 2)
    rr.give_back(eps, -1)
    assert not rr._back
    assert _picks(rr, eps, 2) == [0, 1]


def test_fix_round_robin_each_turn_given_back_is_served_once_under_threads() -> None:
    rr, eps = RoundRobin(), _eps(1, 2, 3, 4, 5)
    taken = _picks(rr, eps, 40)
    given = [i for i in taken if i is not None and i < 2]  # 8 turns each of endpoints 0 and 1
    for i in given:
        rr.give_back(eps, i)
    served: list[int | None] = []
    lock = threading.Lock()
    start = threading.Barrier(4)

    def pick_four() -> None:
        start.wait(timeout=5)
        mine = _picks(rr, eps, 4)
        with lock:
            served.extend(mine)

    threads = [threading.Thread(target=pick_four) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=5)
    assert sorted(served, key=lambda i: -1 if i is None else i) == sorted(given)
    assert not rr._back
    # Every pick was served a turn given back: the cycle never moved.
    assert _picks(rr, eps, 1) == [40 % 5]


def test_round_robin_weighted_pick_given_back_is_still_undone() -> None:
    eps = _eps(1, 2, weights=(3, 1))
    expected = _picks(RoundRobin(), eps, 4)
    assert sorted(expected, key=lambda i: -1 if i is None else i) == [0, 0, 0, 1]
    rr = RoundRobin()
    for want in expected:
        i = rr.pick(NEW, eps, ())
        assert i is not None
        rr.give_back(eps, i)  # undone: the counters as before it
        assert rr.pick(NEW, eps, ()) == want
    assert not rr._back  # undone, not queued


def _persistent() -> CookieAffinity:
    spec, warn = parse_balancer_spec({P + "affinity": "cookie", P + "affinity-mode": "persistent"},
                                     "round_robin", {"round_robin", "ewma"}, "/")
    assert not warn
    return CookieAffinity(BalancerOptions(spec=spec, rng=random.Random(1)), "", "default-web-80")


def test_persistent_affinity_gives_new_sessions_turns_back_to_its_round_robin() -> None:
    sticky, eps = _persistent(), _eps(1, 2, 3)
    assert [sticky.pick_with_cookie(NEW, eps, ())[0] for _ in range(2)] == [0, 1]
    sticky.give_back(eps, 0)
    assert sticky._rr._back  # one queue of turns given back: the round-robin's
    idx, cookie = sticky.pick_with_cookie(NEW, eps, ())
    assert idx == 0 and cookie is not None
    assert cookie.startswith(f"INGRESSCOOKIE={sticky.persistent_value(eps, 0)};")
    assert [sticky.pick_with_cookie(NEW, eps, ())[0] for _ in range(2)] == [2, 0]


def test_persistent_affinity_turn_given_back_on_plain_endpoints_serves_a_weighted_equal_list(
) -> None:
    # As before the move: the turn is served to the next new session on the same endpoints
    # whether or not they have since been given weights (the list, not its weights, decides).
    sticky = _persistent()
    plain, weighted = _eps(1, 2), _eps(1, 2, weights=(1, 3))
    assert sticky.pick_with_cookie(NEW, plain, ())[0] == 0
    sticky.give_back(plain, 0)
    assert sticky.pick_with_cookie(NEW, weighted, ())[0] == 0
    assert not sticky._rr._back
