"""An EndpointSlice (or v1 Endpoints, or Service) given twice - same namespace and name, e.g. in
two manifest files, or an old and a new definition - counts once, the later definition winning,
as every other object does (README's divergence table, "the same object given twice").

Merging the two copies' endpoints kept sending traffic to an endpoint the newer copy dropped or
marks not ready; and the endpoint-only ``Router.update`` must give what a full build gives when
such twins come and go (``ServiceObjects`` does not keep the order that decides which is later).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ingresslib._models import EndpointConditions, EndpointSlice, ServicePort
from ingresslib._resources import Resources
from ingresslib._router import Router

from _router_helpers import endpoints_v1, ingress, meta, resources, service, slice_
from test_router_incremental import (
    REQUESTS,
    SERVICES,
    Pair,
    ingress_sets,
    req,
)

A_REQS = [req("a.test", "/"), req("a.test", "/x")]


def one_rule(*objs: object, svc: str = "web") -> Resources:
    return resources(ingress("web", [("a.test", "/", "Prefix", svc, 80)]), *objs)


def chosen(r: Router, n: int = 40) -> set[Any]:
    """Every endpoint ``n`` requests to a.test/ are sent to."""
    out = set()
    for _ in range(n):
        d = r.route("GET", "a.test", "/")
        assert d is not None
        out.add(d.endpoint)
    return out


OLD = slice_("web-1", "web", ["10.0.0.1", "10.0.0.2"])


def test_an_endpoint_the_newer_definition_dropped_is_never_chosen() -> None:
    new = slice_("web-1", "web", ["10.0.0.1"])
    r = Router(one_rule(service("web"), OLD, new))
    assert chosen(r) == {("10.0.0.1", 8080)}
    # "Later" is the order of the objects as given: the other way round the old one wins.
    assert chosen(Router(one_rule(service("web"), new, OLD))) == {("10.0.0.1", 8080),
                                                                 ("10.0.0.2", 8080)}


def test_an_endpoint_not_ready_in_the_newer_definition_is_never_chosen() -> None:
    new = slice_("web-1", "web", ["10.0.0.1", ("10.0.0.2", EndpointConditions(ready=False))])
    assert chosen(Router(one_rule(service("web"), OLD, new))) == {("10.0.0.1", 8080)}
    # Terminating with ready unset is not ready either.
    new = slice_("web-1", "web", ["10.0.0.1",
                                  ("10.0.0.2", EndpointConditions(terminating=True))])
    assert chosen(Router(one_rule(service("web"), OLD, new))) == {("10.0.0.1", 8080)}


def test_a_newer_definition_moved_to_another_service_leaves_none_behind() -> None:
    # The newer web-1 belongs to Service "other": web keeps nothing of the older one (503).
    moved = slice_("web-1", "other", ["10.0.0.3"])
    r = Router(one_rule(service("web"), service("other"), OLD, moved))
    assert chosen(r, 3) == {None}
    unlabelled = EndpointSlice(meta("web-1"), "IPv4", OLD.endpoints, OLD.ports)
    r = Router(one_rule(service("web"), OLD, unlabelled))
    assert chosen(r, 3) == {None}


def test_distinct_slices_of_one_service_still_add_up() -> None:
    # Not a twin: another name (or namespace) is another slice.
    r = Router(one_rule(service("web"), OLD, slice_("web-2", "web", ["10.0.0.3"]),
                        slice_("web-1", "web", ["10.0.0.4"], ns="elsewhere")))
    assert chosen(r) == {("10.0.0.1", 8080), ("10.0.0.2", 8080), ("10.0.0.3", 8080)}


def test_removing_the_later_twin_hands_the_slice_back_to_its_first_service() -> None:
    # web-1 first labelled web, then (later definition) labelled other; the update drops the
    # later one, touching Service "other" only: web must get web-1's endpoints back, as a
    # full build gives them.
    moved = slice_("web-1", "other", ["10.0.0.3"])
    base = [service("web"), service("other")]
    pair = Pair(one_rule(*base, OLD, moved), A_REQS)
    assert chosen(pair.a, 3) == {None}
    pair.update(one_rule(*base, OLD))
    assert chosen(pair.a) == {("10.0.0.1", 8080), ("10.0.0.2", 8080)}
    # And back: the later twin takes web-1 away again.
    pair.update(one_rule(*base, OLD, moved))
    assert chosen(pair.a, 3) == {None}


def test_changing_one_twin_resolves_as_a_full_build() -> None:
    # The earlier twin is replaced in place: the later one still wins.
    later = slice_("web-1", "web", ["10.0.0.1"])
    pair = Pair(one_rule(service("web"), OLD, later), A_REQS)
    pair.update(one_rule(service("web"), slice_("web-1", "web", ["10.0.0.4"]), later))
    assert chosen(pair.a) == {("10.0.0.1", 8080)}
    # Now the later one: it wins.
    pair.update(one_rule(service("web"), OLD, slice_("web-1", "web", ["10.0.0.4"])))
    assert chosen(pair.a) == {("10.0.0.4", 8080)}


def test_a_service_change_with_unchanged_twins_resolves_as_a_full_build() -> None:
    # After the second update the grouped objects hold web-1's twins the other way round (the
    # replaced one is appended); the third changes only the Service, so only the grouping
    # could tell which twin is later - it must not be asked.
    later = slice_("web-1", "web", ["10.0.0.1"])
    earlier = slice_("web-1", "web", ["10.0.0.4"])
    plain = service("web")
    weighted = service("web", annotations={"ingresslib.io/endpoint-weights": "10.0.0.1=2"})
    pair = Pair(one_rule(plain, OLD, later), A_REQS)
    pair.update(one_rule(weighted, OLD, later))  # groups the objects (in order)
    pair.update(one_rule(weighted, earlier, later))
    pair.update(one_rule(plain, earlier, later))
    assert chosen(pair.a) == {("10.0.0.1", 8080)}


def test_v1_endpoints_given_twice_use_the_later_definition() -> None:
    # (Already so before; kept here with the slices' case.)
    res = one_rule(service("web"), endpoints_v1("web", ["10.0.0.1", "10.0.0.2"]),
                   endpoints_v1("web", ["10.0.0.1"], not_ready=["10.0.0.2"]))
    assert chosen(Router(res)) == {("10.0.0.1", 8080)}


def test_a_warning_names_each_object_given_twice() -> None:
    # As RouteTable's "Ingress default/web: defined 2 times; the last definition is used".
    from ingresslib._endpoints import duplicate_notes

    res = one_rule(service("web"), service("web"), OLD, slice_("web-1", "web", ["10.0.0.1"]),
                   slice_("web-2", "web", []), endpoints_v1("web", []),
                   endpoints_v1("web", []), endpoints_v1("web", []))
    got = [(d.object, d.message) for d in duplicate_notes(res)]
    assert got == [("Service default/web", "defined 2 times; the last definition is used"),
                   ("EndpointSlice default/web-1", "defined 2 times; the last definition is used"),
                   ("Endpoints default/web", "defined 3 times; the last definition is used")]
    assert duplicate_notes(one_rule(service("web"), OLD)) == []
    # The same wording as the table's for an Ingress given twice.
    table_note = Router(resources(*[ingress("web", [("a.test", "/", "Prefix", "web", 80)])] * 2)
                        ).table.diagnostics
    assert [d.message for d in table_note] == ["defined 2 times; the last definition is used"]


# --- the property: endpoint-only updates with twins equal full builds --------------------------

IPS = ("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4")
ENDPOINTS = st.lists(st.tuples(st.sampled_from(IPS), st.booleans()), max_size=3).map(tuple)
#: A Service's state: (its slice's endpoints, twins), a twin being (which object: 0 the slice,
#: 1 the slice relabelled for the next Service, 2 v1 Endpoints, 3 the Service with another
#: port; before or after the first; its endpoints).
Twin = tuple[int, bool, tuple[tuple[str, bool], ...]]
State = tuple[tuple[tuple[str, bool], ...], tuple[Twin, ...]]
STATES = st.tuples(ENDPOINTS, st.lists(st.tuples(st.integers(0, 3), st.booleans(), ENDPOINTS),
                                       max_size=2).map(tuple))


def objects_of(name: str, state: State) -> list[object]:
    ips, twins = state
    nxt = SERVICES[(SERVICES.index(name) + 1) % len(SERVICES)]
    ports = [("http", 8080), ("other", 9090)]
    out: list[object] = [service(name, [ServicePort(80, "http", 8080)]),
                         slice_(f"{name}-1", name,
                                [(ip, EndpointConditions(ready=ok)) for ip, ok in ips], ports),
                         endpoints_v1(name, [ip for ip, ok in ips if ok], ports=ports)]
    for kind, before, eps in twins:
        conds = [(ip, EndpointConditions(ready=ok)) for ip, ok in eps]
        twin: object
        if kind == 3:
            twin = service(name, [ServicePort(80, "other", 9090)])
        elif kind == 2:
            twin = endpoints_v1(name, [ip for ip, ok in eps if ok], ports=ports)
        else:
            twin = slice_(f"{name}-1", nxt if kind == 1 else name, conds, ports)
        out.insert(0 if before else len(out), twin)
    return out


def last_definitions(res: Resources) -> Resources:
    """The test's own model of "the later definition wins": one object per kind and key."""
    def last(items: Sequence[Any]) -> tuple[Any, ...]:
        return tuple({(o.metadata.namespace, o.metadata.name): o for o in items}.values())

    return Resources(ingresses=res.ingresses, services=last(res.services),
                     endpoint_slices=last(res.endpoint_slices), endpoints=last(res.endpoints))


class World:
    """Resources from per-Service states, an unchanged Service keeping its model objects (as a
    ResourceStore snapshot does)."""

    def __init__(self, ingresses: list[object]) -> None:
        self.ingresses = ingresses
        self.cache: dict[tuple[str, State], list[object]] = {}

    def resources(self, states: dict[str, State]) -> Resources:
        objs: list[object] = list(self.ingresses)
        for name in SERVICES:
            key = (name, states[name])
            got = self.cache.get(key)
            if got is None:
                got = self.cache[key] = objects_of(*key)
            objs += got
        return resources(*objs)


def check_against_last_definitions(r: Router, res: Resources) -> None:
    ref = Router(last_definitions(res), seed=7)
    for m, f in zip(r.table.routes, ref.table.routes):
        ra, rf = r._state.routes[m.route_id], ref._state.routes[f.route_id]
        assert ra.main.eps == rf.main.eps
        assert (ra.canary is None) == (rf.canary is None)
        if ra.canary is not None and rf.canary is not None:
            assert ra.canary.eps == rf.canary.eps


@settings(max_examples=150, deadline=None)
@given(ingress_sets(), st.fixed_dictionaries({s: STATES for s in SERVICES}),
       st.lists(st.tuples(st.sampled_from(SERVICES), STATES), min_size=1, max_size=6))
def test_endpoint_only_updates_with_twins_equal_full_builds(
        ingresses: list[object], start: dict[str, State],
        steps: list[tuple[str, State]]) -> None:
    world = World(ingresses)
    states = dict(start)
    res = world.resources(states)
    pair = Pair(res, REQUESTS)  # checks incremental == full build after every step
    check_against_last_definitions(pair.a, res)
    for name, state in steps:
        states[name] = state
        res = world.resources(states)
        pair.update(res)
        check_against_last_definitions(pair.a, res)
