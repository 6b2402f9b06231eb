"""Endpoint-only ``Router.update``: rebuilt from what changed (``Router._update_endpoints``),
it must route, retry, set cookies and warn exactly as a full rebuild with the state carried
over (``_incremental = False``) does after the same history of updates and requests.

Each targeted test names the broken incremental path it catches (checked by running it against a
copy of ``_router.py``/``_router_delta.py`` with that mutation).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ingresslib._endpoints import EndpointIndex
from ingresslib._models import EndpointConditions, ServicePort
from ingresslib._resources import Resources
from ingresslib._router import Decision, Router

# Every test runs once per counter implementation (compiled _pick, pure _pick_py).
from _counters import counters  # noqa: F401
from _router_helpers import P, canary, endpoints_v1, ingress, resources, service, slice_

Request = tuple[str, str, tuple[tuple[str, str], ...], str]


def twins(res: Resources, **kw: Any) -> tuple[Router, Router]:
    """The router under test (incremental) and the reference (full rebuild on every update),
    with the same seed and a fixed clock so that their balancers draw alike."""
    a = Router(res, seed=7, clock=lambda: 100.0, **kw)
    b = Router(res, seed=7, clock=lambda: 100.0, **kw)
    b._incremental = False
    return a, b


def view(d: Decision | None) -> tuple[Any, ...] | None:
    if d is None:
        return None
    return (d.service, d.namespace, d.port, d.endpoint, d.canary, d.set_cookie, d.backend,
            d.samesite_none, d.match.route_id, d.served.route_id if d.served else None)


def drive(r: Router, requests: Iterable[Request], jar: dict[tuple[str, str], str]) -> list[Any]:
    """Route every request (sending back the session cookies it was given), retry once,
    report a latency: everything a proxy does with a Router, recorded."""
    out: list[Any] = []
    for i, (host, path, headers, ip) in enumerate(requests):
        sent = headers
        cookie = jar.get((host, path))
        if cookie is not None:
            sent = headers + (("cookie", cookie),)
        d = r.route("GET", host, path, sent, ip)
        row: list[Any] = [view(d)]
        if d is not None and d.endpoint is not None:
            nxt = r.next_endpoint(d, [d.endpoint])
            row += [nxt, r.session_cookie(d, nxt) if nxt is not None else None]
            r.observe(d, d.endpoint, 0.001 * (1 + i % 7), i % 5 != 0)
            if d.set_cookie:
                jar[(host, path)] = d.set_cookie.split(";", 1)[0]
        out.append(row)
    return out


class Pair:
    """Both routers, their cookie jars, and the checks after every step."""

    def __init__(self, res: Resources, requests: Sequence[Request], **kw: Any) -> None:
        self.a, self.b = twins(res, **kw)
        self.requests = requests
        self.jars: tuple[dict[Any, str], dict[Any, str]] = ({}, {})
        self.table = self.a.table
        self.check()

    def update(self, res: Resources) -> None:
        self.a.update(res)
        self.b.update(res)
        assert self.a.table is self.table  # endpoint-only: the table is kept
        self.check()

    def check(self) -> None:
        a, b = self.a, self.b
        assert a.warnings == b.warnings
        assert a.resources is b.resources
        for _ in range(2):
            assert drive(a, self.requests, self.jars[0]) == drive(b, self.requests, self.jars[1])

    def incremental(self) -> bool:
        """True when the last update of ``a`` took the incremental path."""
        objects = self.a._objects
        return objects is not None and objects.resources is self.a.resources


def req(host: str, path: str, *headers: tuple[str, str], ip: str = "192.0.2.1") -> Request:
    return (host, path, tuple(headers), ip)


def decide(r: Router, host: str = "a.test", path: str = "/") -> Decision:
    d = r.route("GET", host, path)
    assert d is not None
    return d


# --- the property ------------------------------------------------------------------------------

SERVICES = ("a", "b", "c")
HOSTS = ("x.test", "y.test")
PATHS = ("/", "/p", "/q")
IPS = ("10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4")
LBS = [{}, {P + "load-balance": "ewma"}, {P + "upstream-hash-by": "$uri"},
       {P + "affinity": "cookie"}, {P + "affinity": "cookie", P + "affinity-mode": "persistent"},
       {P + "upstream-hash-by": "$remote_addr", P + "upstream-hash-by-subset": "true",
        P + "upstream-hash-by-subset-size": "2"},
       {P + "service-upstream": "true"}, {P + "load-balance": "round_robin"}]
CANARIES = [{P + "canary-weight": "30"}, {P + "canary-by-header": "x-canary"},
            {P + "canary-weight": "50", P + "affinity": "cookie"},
            {P + "canary-weight": "1", P + "canary-weight-total": "3"}]
REQUESTS = ([req(h, p) for h in HOSTS for p in ("/", "/p/1", "/q", "/z")]
            + [req(h, p, ("x-canary", "always"), ip="192.0.2.9")
               for h in HOSTS for p in ("/", "/p")])

#: A Service's state: (kind, endpoints with readiness, weights annotation, v1 Endpoints too).
#: Kinds: 0 port "http" -> 8080; 1 port "http" -> named targetPort "web" (8081 in the slice);
#: 2 the port renamed "other" (-> 9090); 3 port "http" -> 9090; 4 ExternalName; 5 an
#: ExternalName refused (warning); 6 no Service at all (its slice stays).
ServiceState = tuple[int, tuple[tuple[str, bool], ...], str | None, bool]
SERVICE_STATES = st.tuples(
    st.integers(0, 6),
    st.lists(st.tuples(st.sampled_from(IPS), st.booleans()), max_size=4).map(tuple),
    st.sampled_from([None, "10.0.0.1=3", "not-a-weight"]),
    st.booleans())

_PORTS = {0: (ServicePort(80, "http", 8080), ("http", 8080)),
          1: (ServicePort(80, "http", "web"), ("http", 8081)),
          2: (ServicePort(80, "other", 9090), ("other", 9090)),
          3: (ServicePort(80, "http", 9090), ("http", 9090))}


def service_objects(name: str, state: ServiceState) -> list[object]:
    kind, ips, weights, v1 = state
    ann = {"ingresslib.io/endpoint-weights": weights} if weights else None
    out: list[object] = []
    if kind in (4, 5):
        out.append(service(name, [], type="ExternalName", annotations=ann,
                           external_name="ext.example.test" if kind == 4 else "Bad_Name"))
        return out
    sp, (pname, pnum) = _PORTS.get(kind, _PORTS[0])
    if kind != 6:
        out.append(service(name, [sp], annotations=ann))
    if ips:
        out.append(slice_(f"{name}-1", name,
                          [(ip, EndpointConditions(ready=ok)) for ip, ok in ips],
                          [(pname, pnum)]))
    if v1:
        out.append(endpoints_v1(name, [ip for ip, ok in ips if ok], ports=[(pname, pnum)]))
    return out


class World:
    """Resources from per-Service states; an unchanged Service keeps its model objects (as a
    ResourceStore snapshot does), so the update sees the change it is meant to."""

    def __init__(self, ingresses: list[object]) -> None:
        self.ingresses = ingresses
        self.cache: dict[tuple[str, ServiceState], list[object]] = {}

    def resources(self, states: dict[str, ServiceState]) -> Resources:
        objs: list[object] = list(self.ingresses)
        for name in SERVICES:
            key = (name, states[name])
            got = self.cache.get(key)
            if got is None:
                got = self.cache[key] = service_objects(*key)
            objs += got
        return resources(*objs)


RULE = st.tuples(st.sampled_from(HOSTS), st.sampled_from(PATHS), st.sampled_from(SERVICES),
                 st.sampled_from([80, "http"]))


@st.composite
def ingress_sets(draw: Any) -> list[object]:
    out: list[object] = []
    for i in range(draw(st.integers(1, 3))):
        rules = [(h, p, "Prefix", s, port) for h, p, s, port in draw(st.lists(RULE, min_size=1,
                                                                            max_size=3))]
        out.append(ingress(f"ing{i}", rules, draw(st.sampled_from(LBS)), age=i))
    if draw(st.booleans()):
        first = out[0].spec.rules[0]  # type: ignore[attr-defined]
        out.append(canary("can", first.host, first.paths[0].path, draw(st.sampled_from(SERVICES)),
                          draw(st.sampled_from([80, "http"])), draw(st.sampled_from(CANARIES))))
    return out


@settings(max_examples=120, deadline=None)
@given(ingress_sets(), st.fixed_dictionaries({s: SERVICE_STATES for s in SERVICES}),
       st.lists(st.tuples(st.sampled_from(SERVICES), SERVICE_STATES), min_size=1, max_size=6))
def test_endpoint_only_updates_equal_full_rebuilds(ingresses: list[object],
                                                   start: dict[str, ServiceState],
                                                   steps: list[tuple[str, ServiceState]]) -> None:
    world = World(ingresses)
    states = dict(start)
    pair = Pair(world.resources(states), REQUESTS)
    for name, state in steps:
        states[name] = state
        res = world.resources(states)
        pair.update(res)
        assert pair.incremental()
        # And what does not depend on history equals a router built from scratch.
        fresh = Router(res, seed=7)
        assert fresh.warnings == pair.a.warnings
        for m, f in zip(pair.a.table.routes, fresh.table.routes):
            ra, rf = pair.a._state.routes[m.route_id], fresh._state.routes[f.route_id]
            assert ra.main.eps == rf.main.eps and ra.main.label == rf.main.label
            assert (ra.canary is None) == (rf.canary is None)
            if ra.canary is not None and rf.canary is not None:
                assert ra.canary.eps == rf.canary.eps


# --- targeted ----------------------------------------------------------------------------------


def one_rule(svc_objs: Sequence[object], port: int | str = "http",
             ann: dict[str, str] | None = None) -> Resources:
    return resources(ingress("web", [("a.test", "/", "Prefix", "web", port)], ann), *svc_objs)


A_REQS = [req("a.test", "/"), req("a.test", "/x")]


def test_a_service_port_renamed_or_retargeted() -> None:
    # Catches: Service changes left out of the touched keys (only slices/Endpoints followed).
    sl = slice_("web-1", "web", ["10.0.0.1", "10.0.0.2"], [("http", 8080)])
    sl9 = slice_("web-1", "web", ["10.0.0.1", "10.0.0.2"], [("http", 9090)])
    v1 = service("web", [ServicePort(80, "http", 8080)])
    renamed = service("web", [ServicePort(80, "web", 8080)])
    retargeted = service("web", [ServicePort(80, "http", 9090)])
    named = service("web", [ServicePort(80, "http", "app")])
    pair = Pair(one_rule([v1, sl]), A_REQS)
    pair.update(one_rule([renamed, sl]))
    d = pair.a.route("GET", "a.test", "/")
    assert d is not None and d.endpoint is None and d.port is None  # no port "http" any more
    pair.update(one_rule([retargeted, sl9]))
    d = pair.a.route("GET", "a.test", "/")
    assert d is not None and d.port == 9090 and d.endpoint is not None
    pair.update(one_rule([retargeted, sl]))  # the slice lags behind: no endpoint for 9090
    pair.update(one_rule([named, sl9]))  # a named targetPort takes the slice's number
    assert decide(pair.a).port == 9090
    assert pair.incremental()


def test_a_service_deleted_and_added_back() -> None:
    # Catches: a diff of tuples of different lengths answering "no change", and objects
    # removed from the resources left in the per-Service groups (ServiceObjects.apply).
    other = [service("zz"), slice_("zz-1", "zz", ["10.9.0.1"])]
    svc, sl = service("web", [ServicePort(80, "http", 8080)]), slice_(
        "web-1", "web", ["10.0.0.1", "10.0.0.2"], [("http", 8080)])
    other2 = [other[0], slice_("zz-1", "zz", ["10.9.0.2"])]
    pair = Pair(one_rule([svc, sl, *other]), A_REQS)
    pair.update(one_rule([svc, sl, *other2]))  # the first one groups the objects afresh
    pair.update(one_rule([sl, *other2]))
    d = pair.a.route("GET", "a.test", "/")
    assert d is not None and d.endpoint is None and d.backend == "default/web:http"
    pair.update(one_rule([svc, sl, *other2]))
    assert decide(pair.a).endpoint is not None
    pair.update(one_rule([svc, *other2]))  # the slice goes: no endpoint
    assert decide(pair.a).endpoint is None
    pair.update(one_rule([svc, sl, *other2]))
    assert pair.incremental()


def test_endpoints_to_zero_and_back_continue_the_balancers() -> None:
    # Catches: the backend's new endpoints not recorded after the update (``_Side.eps`` left
    # stale), so the way back to the first endpoint set looks unchanged and keeps 503.
    svc = service("web", [ServicePort(80, "http", 8080)])
    full = slice_("web-1", "web", ["10.0.0.1", "10.0.0.2", "10.0.0.3"], [("http", 8080)])
    none = slice_("web-1", "web", [("10.0.0.1", EndpointConditions(ready=False))],
                  [("http", 8080)])
    for ann in ({}, {P + "load-balance": "ewma"}, {P + "affinity": "cookie"},
                {P + "upstream-hash-by": "$remote_addr"}):
        pair = Pair(one_rule([svc, full], ann=ann), A_REQS)
        pair.update(one_rule([svc, none], ann=ann))
        assert decide(pair.a).endpoint is None
        pair.update(one_rule([svc, full], ann=ann))
        assert decide(pair.a).endpoint is not None
        assert pair.incremental()


def test_a_canary_backends_endpoints_change() -> None:
    # Catches: a rebuilt canary route given a new split or losing its canary side (the split
    # would restart, or the canary never serve).
    main = [service("main"), slice_("main-1", "main", ["10.0.0.1", "10.0.0.2"])]
    objs = [ingress("web", [("a.test", "/", "Prefix", "main", 80)])]
    can = canary("c", "a.test", "/", "beta", 80, {P + "canary-weight": "1",
                                                  P + "canary-weight-total": "3"})
    beta = [service("beta"), slice_("beta-1", "beta", ["10.1.0.1"])]
    beta2 = [service("beta"), slice_("beta-1", "beta", ["10.1.0.1", "10.1.0.2"])]
    beta0 = [service("beta")]
    one = [req("a.test", "/")]
    pair = Pair(resources(*objs, can, *main, *beta), one)
    decide(pair.a)  # the split is mid-window: a restart would show
    decide(pair.b)
    for b in (beta2, beta0, beta2, beta):
        pair.update(resources(*objs, can, *main, *b))
        seq = [decide(pair.a) for _ in range(6)]
        assert [d.canary for d in seq] == [decide(pair.b).canary for _ in range(6)]
        if b is beta0:  # the healthy side serves
            assert all(not d.canary and d.endpoint for d in seq)
        else:
            assert sum(d.canary for d in seq) == 2
    assert pair.incremental()


def test_a_backend_shared_by_rules_of_several_ingresses() -> None:
    # Catches: only the first route on a changed backend rebuilt (``_Side.users[0]``).
    ings = [ingress("one", [("a.test", "/", "Prefix", "web", 80),
                            ("a.test", "/b", "Prefix", "web", 80)]),
            ingress("two", [("b.test", "/", "Prefix", "web", 80),
                            ("b.test", "/o", "Prefix", "other", 80)], age=1)]
    other = [service("other"), slice_("other-1", "other", ["10.5.0.1"])]
    reqs = [req(h, p) for h in ("a.test", "b.test") for p in ("/", "/b", "/o")]

    def res(ips: list[str]) -> Resources:
        return resources(*ings, service("web"), slice_("web-1", "web", ips), *other)

    pair = Pair(res(["10.0.0.1", "10.0.0.2"]), reqs)
    before = {m.route_id: pair.a._state.routes[m.route_id] for m in pair.a.table.routes}
    pair.update(res(["10.0.0.3"]))
    for host, path in (("a.test", "/"), ("a.test", "/b"), ("b.test", "/")):
        assert decide(pair.a, host, path).endpoint == ("10.0.0.3", 8080)
    # The route on the other Service kept its objects (and Decisions).
    for m in pair.a.table.routes:
        kept = pair.a._state.routes[m.route_id] is before[m.route_id]
        assert kept == (m.service == "other"), m
    assert pair.incremental()


def test_service_warnings_follow_the_services() -> None:
    # Catches: the Services' warnings carried over unchanged (an invalid weight or a refused
    # ExternalName appearing or going away unnoticed), or out of order.
    ann_bad = {"ingresslib.io/endpoint-weights": "nope"}
    ings = [ingress("web", [("a.test", "/", "Prefix", "a", 80), ("a.test", "/b", "Prefix", "b",
                                                                  80)])]

    def res(a_ann: dict[str, str] | None, b_ext: str | None) -> Resources:
        b = (service("b", [], type="ExternalName", external_name=b_ext) if b_ext
             else service("b"))
        return resources(*ings, service("a", annotations=a_ann), b,
                         slice_("a-1", "a", ["10.0.0.1"]))

    pair = Pair(res(None, None), [req("a.test", "/"), req("a.test", "/b")])
    for a_ann, b_ext in ((ann_bad, None), (ann_bad, "Bad_Name"), (None, "Bad_Name"),
                         (ann_bad, "ok.example.test"), (None, None)):
        pair.update(res(a_ann, b_ext))
        assert pair.a.warnings == Router(res(a_ann, b_ext)).warnings
    assert pair.incremental()


def test_two_services_with_one_name_resolve_as_a_full_build() -> None:
    # Catches: a Service key held twice resolved from the first object (the full index keeps
    # the last one in order).
    sl = slice_("web-1", "web", ["10.0.0.1"], [("http", 8080), ("alt", 9090)])
    first = service("web", [ServicePort(80, "http", 8080)])
    second = service("web", [ServicePort(80, "alt", 9090)])
    pair = Pair(one_rule([first, second, sl], port=80), A_REQS)
    sl2 = slice_("web-1", "web", ["10.0.0.2"], [("http", 8080), ("alt", 9090)])
    pair.update(one_rule([first, second, sl2], port=80))
    assert decide(pair.a).endpoint == ("10.0.0.2", 9090)


def test_an_update_resolves_only_the_services_that_changed(monkeypatch: Any) -> None:
    # The cost claim: one Service's endpoints changed among 50, so one backend is resolved
    # again and every other route keeps its objects. (Fails on a full rebuild: it resolves all
    # 50 and makes a new _Route per rule.)
    def res(ips0: list[str]) -> Resources:
        objs: list[object] = [ingress("web", [("a.test", f"/s{i}", "Prefix", f"s{i}", 80)
                                              for i in range(50)])]
        for i in range(50):
            objs += [service(f"s{i}"),
                     slice_(f"s{i}-1", f"s{i}", ips0 if i == 0 else [f"10.1.{i}.1"])]
        return resources(*objs)

    base = res(["10.0.0.1"])
    r = Router(base)
    calls: list[tuple[Any, ...]] = []
    real = EndpointIndex._resolve

    def counting(self: EndpointIndex, *args: Any) -> Any:
        calls.append(args)
        return real(self, *args)

    monkeypatch.setattr(EndpointIndex, "_resolve", counting)
    before = list(r._state.routes)
    changed = list(base.endpoint_slices)
    changed[0] = slice_("s0-1", "s0", ["10.0.0.2"])
    r.update(Resources(ingresses=base.ingresses, services=base.services,
                       endpoint_slices=tuple(changed)))
    assert [c[:2] for c in calls] == [("default", "s0")]
    assert decide(r, path="/s0").endpoint == ("10.0.0.2", 8080)
    kept = [m for m in r.table.routes if r._state.routes[m.route_id] is before[m.route_id]]
    assert len(kept) == 49 and all(m.service != "s0" for m in kept)


def test_concurrent_requests_see_one_state_during_endpoint_updates() -> None:
    # Generations differ in endpoints and target port only; a decision's port and endpoint
    # must come from one generation (its backend's), whatever update ran meanwhile.
    ing = ingress("web", [("a.test", "/", "Prefix", "a", 80), ("a.test", "/b", "Prefix", "b", 80)])
    gens = []
    for port, net in ((8080, "10.0."), (7070, "10.2.")):
        gens.append(resources(ing, service("a", [ServicePort(80, None, port)]),
                              service("b", [ServicePort(80, None, port)]),
                              slice_("a1", "a", [net + "0.1", net + "0.2"], [(None, port)]),
                              slice_("b1", "b", [net + "1.1"], [(None, port)])))
    expected = {8080: "10.0.", 7070: "10.2."}
    r = Router(gens[0])
    stop = time.monotonic() + 0.5
    errors: list[str] = []

    def hammer() -> None:
        while time.monotonic() < stop:
            for path in ("/", "/b"):
                d = r.route("GET", "a.test", path)
                if (d is None or d.endpoint is None or d.port != d.endpoint[1]
                        or not d.endpoint[0].startswith(expected[d.port])):
                    errors.append(repr(d))
                    return

    threads = [threading.Thread(target=hammer) for _ in range(2)]
    for t in threads:
        t.start()
    i = 0
    while time.monotonic() < stop:
        i += 1
        r.update(gens[i % 2])
    for t in threads:
        t.join()
    assert errors == [] and i > 10
    assert r._objects is not None and r._objects.resources is r.resources  # incremental


def test_a_balancer_registered_or_a_default_changed_meanwhile_rebuilds() -> None:
    # Catches: an endpoint-only update that ignores a change of the balancer factories (a
    # ``register_balancer`` since the last build) or of the default ``load_balance``: a full
    # build parses the specs again and makes the new balancers.
    from ingresslib._balance import RoundRobin, register_balancer, unregister_balancer

    class Mine(RoundRobin):
        pass

    svc = service("web", [ServicePort(80, "http", 8080)])

    def res(ips: list[str]) -> Resources:
        return one_rule([svc, slice_("web-1", "web", ips, [("http", 8080)])],
                        ann={P + "load-balance": "inc-test-mine"})

    pair = Pair(res(["10.0.0.1"]), A_REQS)
    assert any("inc-test-mine" in w.message for w in pair.a.warnings)
    pair.update(res(["10.0.0.2"]))
    main = pair.table.routes[0].route_id
    assert type(pair.a._state.routes[main].main.balancer) is RoundRobin
    pair.a.load_balance = pair.b.load_balance = "ewma"  # unknown annotation: the default serves
    pair.update(res(["10.0.0.1", "10.0.0.3"]))
    assert type(pair.a._state.routes[main].main.balancer).__name__ == "Ewma"
    register_balancer("inc-test-mine", Mine)
    try:
        pair.update(res(["10.0.0.3"]))
        assert type(pair.a._state.routes[main].main.balancer) is Mine
        assert not any("inc-test-mine" in w.message for w in pair.a.warnings)
    finally:
        unregister_balancer("inc-test-mine")


def test_a_failing_balancer_factory_warns_as_a_full_rebuild_does() -> None:
    # Catches: endpoint-only updates and full rebuilds disagreeing on the "failed to start"
    # warning (every update keeps it while the fallback serves).
    def boom(options: Any) -> Any:
        raise RuntimeError("no")

    svc = service("web", [ServicePort(80, "http", 8080)])

    def res(ips: list[str]) -> Resources:
        return one_rule([svc, slice_("web-1", "web", ips, [("http", 8080)])],
                        ann={P + "load-balance": "boom"})

    pair = Pair(res(["10.0.0.1"]), A_REQS, balancers={"boom": boom})
    assert any("failed to start" in w.message for w in pair.a.warnings)
    pair.update(res(["10.0.0.2"]))
    pair.update(res(["10.0.0.1", "10.0.0.2"]))
    assert pair.incremental()
