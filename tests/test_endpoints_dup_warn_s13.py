"""(For the lead, with /tmp/dup_router_warnings.patch applied to _router.py.) Router.warnings
names an object given twice, as RouteTable.diagnostics does for an Ingress, and endpoint-only
updates keep those warnings as a full build gives them."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ingresslib._router import Router

from _router_helpers import endpoints_v1, service, slice_
from test_endpoints_dup_s13 import (
    A_REQS, OLD, STATES, SERVICES, REQUESTS, Pair, State, World, ingress_sets, one_rule)


def notes(r: Router) -> list[tuple[str, str]]:
    return [(d.object, d.message) for d in r.warnings if "defined" in d.message]


def test_router_warnings_name_each_object_given_twice() -> None:
    res = one_rule(service("web"), service("web"), OLD, slice_("web-1", "web", ["10.0.0.1"]),
                   endpoints_v1("web", []), endpoints_v1("web", []))
    assert notes(Router(res)) == [
        ("Service default/web", "defined 2 times; the last definition is used"),
        ("EndpointSlice default/web-1", "defined 2 times; the last definition is used"),
        ("Endpoints default/web", "defined 2 times; the last definition is used")]


def test_the_warning_comes_and_goes_with_the_twin_on_endpoint_only_updates() -> None:
    base = [service("web"), service("unused")]
    pair = Pair(one_rule(*base, OLD), A_REQS)
    assert notes(pair.a) == []
    pair.update(one_rule(*base, service("unused"), OLD))  # a Service no route uses
    assert notes(pair.a) == [("Service default/unused",
                              "defined 2 times; the last definition is used")]
    pair.update(one_rule(*base, OLD))
    assert notes(pair.a) == []


@settings(max_examples=150, deadline=None)
@given(ingress_sets(), st.fixed_dictionaries({s: STATES for s in SERVICES}),
       st.lists(st.tuples(st.sampled_from(SERVICES), STATES), min_size=1, max_size=6))
def test_warnings_with_twins_equal_full_builds(ingresses: list[object], start: dict[str, State],
                                               steps: list[tuple[str, State]]) -> None:
    world = World(ingresses)
    states = dict(start)
    pair = Pair(world.resources(states), REQUESTS)
    for name, state in steps:
        states[name] = state
        res = world.resources(states)
        pair.update(res)
        assert pair.a.warnings == Router(res, seed=7).warnings
