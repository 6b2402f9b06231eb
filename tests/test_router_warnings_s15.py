"""``Router.warnings`` after updates: they describe the router as it now is, whichever path an
update takes (the incremental endpoint-only one, or a full rebuild), as a Router built from
scratch on the same Resources would give them: none lost, none stale, none twice.

Each targeted test names the defect it catches (checked against the code before session 15).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingresslib._balance import RoundRobin, register_balancer, unregister_balancer
from ingresslib._models import EndpointConditions, ServicePort
from ingresslib._resources import Resources
from ingresslib._router import Router

# Every test runs once per counter implementation (compiled _pick, pure _pick_py).
from _counters import counters  # noqa: F401
from _router_helpers import P, canary, endpoints_v1, ingress, resources, service, slice_


class Boom(RuntimeError):
    pass


CALLS: list[str] = []


def boom(options: Any) -> Any:
    """A third-party factory that always fails (the same way, as a broken one does)."""
    CALLS.append("boom")
    raise Boom("cannot start")


FACTORIES = {"boom": boom}
LB = P + "load-balance"


def failed(r: Router) -> list[str]:
    return [w.message for w in r.warnings if "failed to start" in w.message]


def web(ips: Sequence[str], ann: dict[str, str] | None = None, *extra: object) -> Resources:
    return resources(ingress("web", [("a.test", "/", "Prefix", "web", "http")], ann),
                     service("web", [ServicePort(80, "http", 8080)]),
                     slice_("web-1", "web", ips, [("http", 8080)]), *extra)


def main_balancer(r: Router) -> Any:
    return r._state.routes[r.table.routes[0].route_id].main.balancer


def test_a_failed_factory_is_warned_about_while_its_fallback_serves() -> None:
    # Catches: "failed to start" said by the build that called the factory only: the next
    # update (endpoint-only, incremental or not, or an Ingress change) carried the fallback
    # round-robin over without calling the factory again and dropped the warning, while the
    # backend still ignored its load-balance annotation.
    CALLS.clear()
    ann = {LB: "boom"}
    inc = Router(web(["10.0.0.1"], ann), balancers=FACTORIES)
    full = Router(web(["10.0.0.1"], ann), balancers=FACTORIES)
    full._incremental = False
    said = failed(inc)
    assert said == ["balancer 'boom' failed to start (cannot start); using round_robin"]
    steps = [web(["10.0.0.2"], ann), web(["10.0.0.1", "10.0.0.2"], ann),
             # an Ingress change (a full rebuild with a new table), the backend unchanged
             web(["10.0.0.1", "10.0.0.2"], {**ann, P + "proxy-body-size": "2m"})]
    for res in steps:
        inc.update(res)
        full.update(res)
        fresh = Router(res, balancers=FACTORIES)
        assert failed(inc) == failed(full) == said
        assert inc.warnings == full.warnings == fresh.warnings
        assert type(main_balancer(inc)) is RoundRobin
    assert inc._objects is not None  # the endpoint-only updates took the incremental path
    # Not retried silently: each Router called the factory once, the carried fallback serves.
    assert CALLS == ["boom"] * (2 + len(steps))
    # The cause gone (the annotation asks for round_robin): no warning left behind.
    inc.update(web(["10.0.0.1"], {LB: "round_robin"}))
    assert failed(inc) == []


def test_the_warning_of_a_canary_sides_failed_factory_stays_too() -> None:
    # Catches: as above, for the canary side's balancer (its own key, tag ".c").
    objs = [ingress("web", [("a.test", "/", "Prefix", "web", 80)]),
            canary("c", "a.test", "/", "beta", 80, {P + "canary-weight": "50", LB: "boom"}),
            service("web"), service("beta")]

    def res(ips: list[str]) -> Resources:
        return resources(*objs, slice_("web-1", "web", ["10.0.0.1"]),
                         slice_("beta-1", "beta", ips))

    r = Router(res(["10.1.0.1"]), balancers=FACTORIES)
    said = failed(r)
    assert len(said) == 1 and r.warnings[0].object == "Ingress default/c"
    r.update(res(["10.1.0.2"]))
    assert failed(r) == said and r.warnings == Router(res(["10.1.0.2"]),
                                                      balancers=FACTORIES).warnings


def test_a_failing_round_robin_factory_falls_back_to_the_built_in() -> None:
    # Catches: the fallback made by the Router's own "round_robin" factory: when that is the
    # user's and fails, Router() (and every update) raised instead of serving with a warning.
    r = Router(web(["10.0.0.1", "10.0.0.2"]), balancers={"round_robin": boom})
    assert failed(r) == ["balancer 'round_robin' failed to start (cannot start); "
                         "using round_robin"]
    assert type(main_balancer(r)) is RoundRobin
    d = r.route("GET", "a.test", "/")
    assert d is not None and d.endpoint == ("10.0.0.1", 8080)
    r.update(web(["10.0.0.2"]))
    assert len(failed(r)) == 1


def test_a_factory_registered_again_in_place_of_one_that_failed_is_tried() -> None:
    # Catches: the fallback carried over for good: registering a working factory under the
    # failed one's name (the fix a user makes) left the backend on round-robin.
    class Mine(RoundRobin):
        pass

    register_balancer("b15-flaky", boom)
    try:
        r = Router(web(["10.0.0.1"], {LB: "b15-flaky"}))
        assert len(failed(r)) == 1
        r.update(web(["10.0.0.2"], {LB: "b15-flaky"}))
        assert len(failed(r)) == 1 and type(main_balancer(r)) is RoundRobin
        register_balancer("b15-flaky", Mine)
        r.update(web(["10.0.0.1"], {LB: "b15-flaky"}))
        assert type(main_balancer(r)) is Mine
        assert failed(r) == []
        kept = main_balancer(r)
        r.update(web(["10.0.0.3"], {LB: "b15-flaky"}))
        assert main_balancer(r) is kept  # a working balancer is carried over as before
    finally:
        unregister_balancer("b15-flaky")


@pytest.mark.parametrize("second", ["same", "fixed", "identical"])
def test_a_service_given_twice_warns_once_about_the_definition_in_use(second: str) -> None:
    # Catches: every definition's warnings, the unused earlier one's included: the same
    # ExternalName or weights complaint twice, or one about a definition the later one
    # replaced (its backends are served, the warning said they answer 503).
    bad = {"ext": service("web", [], type="ExternalName", external_name="Bad_Name"),
           "weights": service("web", [ServicePort(80, "http", 8080)],
                              annotations={"ingresslib.io/endpoint-weights": "nope"})}
    good = service("web", [ServicePort(80, "http", 8080)])
    ing = ingress("web", [("a.test", "/", "Prefix", "web", "http")])
    sl = slice_("web-1", "web", ["10.0.0.1"], [("http", 8080)])
    for kind, first in bad.items():
        # An equal twin decoded anew (a distinct object), as two files give it.
        later = good if second == "fixed" else first if second == "identical" else (
            service("web", [], type="ExternalName", external_name="Bad_Name") if kind == "ext"
            else service("web", [ServicePort(80, "http", 8080)],
                         annotations={"ingresslib.io/endpoint-weights": "nope"}))
        r = Router(resources(ing, first, later, sl))
        msgs = [w.message for w in r.warnings]
        assert msgs[0] == "defined 2 times; the last definition is used"
        assert len(msgs) == len(set(msgs))
        # (A bad ExternalName also leaves its backend without endpoint: one more, W18.)
        assert len(msgs) - len(r.no_endpoint) == (1 if second == "fixed" else 2)
        # The incremental path recomputes the Services' warnings the same way.
        other = service("zz", [], type="ExternalName", external_name="Also_Bad")
        r.update(resources(ing, first, later, sl, other))
        assert r._objects is not None and r._objects.resources is r.resources
        assert r.warnings == Router(resources(ing, first, later, sl, other)).warnings
        assert len({w.message for w in r.warnings}) == len(r.warnings)


# --- random histories ----------------------------------------------------------------------------

SERVICES = ("a", "b")
HOSTS = ("x.test", "y.test")
IPS = ("10.0.0.1", "10.0.0.2", "10.0.0.3")
#: Balancer annotations: valid, invalid (each warns), and a factory that fails.
LBS = [{}, {LB: "boom"}, {LB: "ewma"}, {LB: "nope"}, {P + "affinity": "cookie"},
       {P + "affinity": "cookie", P + "session-cookie-samesite": "sideways"},
       {P + "affinity": "bogus"}, {P + "upstream-hash-by": "$nope"},
       {P + "upstream-hash-by": "$uri", P + "upstream-hash-by-subset-size": "x"},
       {P + "service-upstream": "maybe"}, {P + "canary": "maybe"}]
CANARIES = [{P + "canary-weight": "30"}, {P + "canary-weight": "x"},
            {P + "canary-weight": "30", LB: "boom"},
            {P + "canary-by-header-value": "v"},
            {P + "canary-weight": "50", P + "affinity-canary-behavior": "odd"},
            {P + "canary-by-header": "x-c", P + "canary-by-header-pattern": "(?=x)"}]

#: A Service: (kind, ready endpoints, weights annotation, twins). Kinds: 0 port "http" -> 8080;
#: 1 an ExternalName refused; 2 an ExternalName; 3 no Service (its slice stays). Twins: 0 none;
#: 1 the Service twice; 2 the slice twice, and v1 Endpoints; 3 a refused ExternalName with bad
#: weights before the Service (the later definition is used).
ServiceState = tuple[int, tuple[str, ...], str | None, int]
SERVICE_STATES = st.tuples(st.integers(0, 3), st.lists(st.sampled_from(IPS), max_size=3).map(tuple),
                           st.sampled_from([None, "10.0.0.1=2", "nope"]), st.integers(0, 3))


def service_objects(name: str, state: ServiceState) -> list[object]:
    kind, ips, weights, twice = state
    ann = {"ingresslib.io/endpoint-weights": weights} if weights else None

    def svc() -> list[object]:
        if kind in (1, 2):
            return [service(name, [], type="ExternalName", annotations=ann,
                            external_name="Bad_Name" if kind == 1 else "ext.example.test")]
        return [] if kind == 3 else [service(name, [ServicePort(80, "http", 8080)],
                                             annotations=ann)]

    out = svc()
    if twice == 3:
        out.insert(0, service(name, [], type="ExternalName", external_name="Old_Name",
                              annotations={"ingresslib.io/endpoint-weights": "old"}))
    sl = [slice_(f"{name}-1", name, [(ip, EndpointConditions(ready=True)) for ip in ips],
                 [("http", 8080)])] if ips else []
    out += sl
    if twice == 1:  # the Service again, decoded anew (an equal, distinct object)
        out += svc()
    elif twice == 2 and ips:  # the slice again, with one endpoint fewer, and v1 Endpoints
        out += [slice_(f"{name}-1", name, list(ips[1:]), [("http", 8080)]),
                endpoints_v1(name, ips, ports=[("http", 8080)])]
    return out


RULE = st.tuples(st.sampled_from(HOSTS), st.sampled_from(["/", "/p"]),
                 st.sampled_from(SERVICES))


@st.composite
def ingress_sets(draw: Any) -> tuple[object, ...]:
    out: list[object] = []
    for i in range(draw(st.integers(1, 2))):
        rules = [(h, p, "Prefix", s, "http") for h, p, s in draw(st.lists(RULE, min_size=1,
                                                                          max_size=2))]
        out.append(ingress(f"ing{i}", rules, draw(st.sampled_from(LBS)), age=i))
    if draw(st.booleans()):
        first = out[0].spec.rules[0]  # type: ignore[attr-defined]
        out.append(canary("can", first.host, first.paths[0].path, draw(st.sampled_from(SERVICES)),
                          "http", draw(st.sampled_from(CANARIES))))
    return tuple(out)


class World:
    """Resources from Ingresses and per-Service states; an unchanged part keeps its model
    objects (as a ResourceStore snapshot does), so endpoint-only updates take the
    incremental path."""

    def __init__(self) -> None:
        self.cache: dict[tuple[str, ServiceState], list[object]] = {}

    def resources(self, ingresses: tuple[object, ...], states: dict[str, ServiceState]
                  ) -> Resources:
        objs: list[object] = list(ingresses)
        for name in SERVICES:
            key = (name, states[name])
            got = self.cache.get(key)
            if got is None:
                got = self.cache[key] = service_objects(*key)
            objs += got
        return resources(*objs)


Step = tuple[str, ServiceState] | tuple[object, ...]


@settings(max_examples=150, deadline=None)
@given(ingress_sets(), st.fixed_dictionaries({s: SERVICE_STATES for s in SERVICES}),
       st.lists(st.one_of(st.tuples(st.sampled_from(SERVICES), SERVICE_STATES), ingress_sets()),
                min_size=1, max_size=6))
def test_warnings_after_any_history_are_a_fresh_routers(
        ingresses: tuple[object, ...], start: dict[str, ServiceState], steps: list[Step]) -> None:
    # Incremental (a), full rebuilds carrying the state over (b) and a Router built from
    # scratch on the same Resources: the same warnings, in the same order, none twice, and the
    # same balancer kind on every backend (a fallback where the factory fails).
    world = World()
    states = dict(start)
    res = world.resources(ingresses, states)
    a = Router(res, seed=7, balancers=FACTORIES)
    b = Router(res, seed=7, balancers=FACTORIES)
    b._incremental = False
    for step in [None, *steps]:
        if step is not None:
            if isinstance(step[0], str):
                states[step[0]] = step[1]  # type: ignore[assignment]
            else:
                ingresses = step  # type: ignore[assignment]
            res = world.resources(ingresses, states)
            a.update(res)
            b.update(res)
        fresh = Router(res, seed=7, balancers=FACTORIES)
        assert a.warnings == b.warnings == fresh.warnings
        assert len(set(a.warnings)) == len(a.warnings)
        assert len(a.table.routes) == len(fresh.table.routes)
        for m, f in zip(a.table.routes, fresh.table.routes):
            assert (m.ingress, m.host, m.path) == (f.ingress, f.host, f.path)
            ra, fr = a._state.routes[m.route_id], fresh._state.routes[f.route_id]
            assert type(ra.main.balancer) is type(fr.main.balancer)
            assert (ra.canary is None) == (fr.canary is None)
            if ra.canary is not None and fr.canary is not None:
                assert type(ra.canary.balancer) is type(fr.canary.balancer)
