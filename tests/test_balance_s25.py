"""Session 25 review of the balancers (B3): smooth weighted round-robin across endpoint updates."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ingresslib._balance import EMPTY_REQUEST, RoundRobin
from ingresslib._endpoints import EndpointSet
from ingresslib._router import Router

from _budget import examples
from _router_helpers import ingress, resources, service, slice_


def _set(weights: dict[int, int]) -> EndpointSet:
    eps = tuple((f"10.0.0.{k}", 8080) for k in sorted(weights))
    w = tuple(weights[k] for k in sorted(weights))
    return EndpointSet("default", "web", 8080, eps, w, None, len(set(w)) > 1)


def _picks(rr: RoundRobin, s: EndpointSet, n: int, tried: tuple = ()) -> list[int | None]:
    return [rr.pick(EMPTY_REQUEST, s, tried) for _ in range(n)]


def test_removing_a_heavy_endpoint_gives_no_burst_to_a_light_survivor() -> None:
    # 10.0.0.1 weighs 100, .2 weighs 1, .3 weighs 2. After 21 picks .2's and .3's counters had
    # drifted apart by about the old total; once .1 was removed they were carried over and .2
    # (a third of the new share) took 21 picks in a row, .3 (two thirds) none.
    rr = RoundRobin()
    _picks(rr, _set({1: 100, 2: 1, 3: 2}), 21)
    after = _set({2: 1, 3: 2})
    seq = _picks(rr, after, 30)
    for i in range(0, 30, 3):
        assert sorted(seq[i:i + 3]) == [0, 1, 1], seq
    # ... the very order a Router built fresh on the new endpoints picks in.
    assert seq == _picks(RoundRobin(), after, 30)


@settings(max_examples=examples(0.3), deadline=None)
@given(st.dictionaries(st.integers(1, 6), st.integers(1, 9), min_size=2, max_size=6),
       st.integers(0, 60), st.data())
def test_a_changed_weighted_set_restarts_the_cycle(before: dict[int, int], warm: int,
                                                   data: st.DataObject) -> None:
    after = dict(before)
    drop = data.draw(st.sampled_from(sorted(before)))
    del after[drop]
    if data.draw(st.booleans()):
        after[7] = data.draw(st.integers(1, 9))
    if len(set(after.values())) < 2:
        after[8] = max(after.values()) + 1  # keep the new set weighted
    rr = RoundRobin()
    _picks(rr, _set(before), warm)
    new = _set(after)
    total = sum(new.weights)
    seq = _picks(rr, new, 2 * total)
    # Every window of ``total`` picks from the update on gives each endpoint exactly its weight,
    # the same sequence as a balancer that never saw the old set.
    for start in (0, total):
        window = seq[start:start + total]
        assert [window.count(k) for k in range(len(new.endpoints))] == list(new.weights)
    assert seq == _picks(RoundRobin(), new, 2 * total)


def test_an_equal_set_after_an_update_continues_the_cycle() -> None:
    rr, fresh = RoundRobin(), RoundRobin()
    first = _set({1: 3, 2: 1})
    _picks(rr, first, 2)
    _picks(fresh, first, 2)
    again = _set({1: 3, 2: 1})  # an update rebuilt an equal set
    assert _picks(rr, again, 8) == _picks(fresh, first, 8)


def test_a_retry_on_a_replaced_set_leaves_the_current_cycle_alone() -> None:
    old = _set({1: 5, 2: 1, 3: 1})
    new = _set({1: 5, 2: 1, 4: 1})
    rr, ref = RoundRobin(), RoundRobin()
    _picks(rr, old, 3)
    first = _picks(rr, new, 3)
    # A request routed before the update retries on the old set: an untried endpoint of it.
    got = rr.pick(EMPTY_REQUEST, old, (("10.0.0.1", 8080),))
    assert got in (1, 2)
    assert first + _picks(rr, new, 14) == _picks(ref, new, 17)


def test_router_update_removing_a_heavy_endpoint_keeps_the_weighted_split() -> None:
    # The same through the Router: ``ingresslib.io/endpoint-weights`` gives .1 100 and .3 2;
    # an update takes .1 away. Before: .2 answered the 21 requests after the update in a row.
    weights = {"ingresslib.io/endpoint-weights": "10.0.0.1=100,10.0.0.3=2"}
    ing = ingress("web", [("a.test", "/", "Prefix", "w", 80)])

    def res(ips: list[str]) -> object:
        return resources(ing, service("w", annotations=weights), slice_("w-1", "w", ips))

    router = Router(res(["10.0.0.1", "10.0.0.2", "10.0.0.3"]))  # type: ignore[arg-type]
    for _ in range(21):
        router.route("GET", "a.test", "/", ())
    router.update(res(["10.0.0.2", "10.0.0.3"]))  # type: ignore[arg-type]
    got = [router.route("GET", "a.test", "/", ()).endpoint for _ in range(12)]
    for i in range(0, 12, 3):
        assert sorted(got[i:i + 3]) == [("10.0.0.2", 8080)] + [("10.0.0.3", 8080)] * 2, got
    fresh = Router(res(["10.0.0.2", "10.0.0.3"]))  # type: ignore[arg-type]
    assert got == [fresh.route("GET", "a.test", "/", ()).endpoint for _ in range(12)]
