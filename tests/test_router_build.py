"""Router construction: what one build works out once and shares (per Ingress, per backend)
must give every rule what a rule-by-rule build gives it, and never outlive the build.

``Router._build_state`` caches balancer specs by annotation content (and rule path for cookie
affinity), per-Ingress annotation readings by Ingress, and (endpoints, balancer, label,
profile) by backend key. Each test here names the wrong cache it would catch.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ingresslib._balance import (
    BalancerSpec,
    ConsistentHash,
    CookieAffinity,
    Ewma,
    RoundRobin,
    parse_balancer_spec,
    registered_balancers,
)
from ingresslib._endpoints import SERVICE_UPSTREAM_ANNOTATION, EndpointIndex
from ingresslib._goparse import parse_bool
from ingresslib._models import ServicePort
from ingresslib._resources import Resources
from ingresslib._router import Router, _Backend
from ingresslib._table import Match

from _router_helpers import P, canary, ingress, resources, service, simple_backend, slice_

KNOWN = frozenset(registered_balancers())


def sides(router: Router) -> list[tuple[Match, bool, _Backend]]:
    """Every (main Match, canary side?, backend) of the router's current state."""
    out = []
    for m in router.table.routes:
        r = router._state.routes[m.route_id]
        out.append((m, False, r.main))
        if r.canary is not None:
            out.append((m, True, r.canary))
    return out


def backend_for(router: Router, path: str, canary_side: bool = False) -> _Backend:
    for m, c, b in sides(router):
        if m.path == path and c == canary_side:
            return b
    raise AssertionError(f"no route for {path}")


def two_rule_router(ann: dict[str, str] | None = None, **kw: Any) -> Router:
    return Router(resources(
        ingress("web", [("a.test", "/a", "Prefix", "main", 80),
                        ("a.test", "/b", "Prefix", "main", 80)], ann),
        *simple_backend("main", ["10.0.0.1", "10.0.0.2", "10.0.0.3"])), seed=1, **kw)


def test_rules_to_one_backend_share_its_balancer_and_endpoints_but_keep_their_own_match() -> None:
    # Wrong cache caught: one _Backend (or its Decisions) shared by every rule of a backend.
    r = two_rule_router({P + "load-balance": "ewma"})
    a, b = backend_for(r, "/a"), backend_for(r, "/b")
    assert a is not b
    assert a.balancer is b.balancer and type(a.balancer) is Ewma  # docs/router.md R16
    assert a.eps is b.eps
    for path in ("/a", "/b"):
        d = r.route("GET", "a.test", path + "/x")
        assert d is not None and d.match.path == path and d.served is d.match
        assert d.backend == "default/main:80" and d.endpoint is not None


def test_cookie_affinity_path_is_each_rules_own_also_on_the_canary_side() -> None:
    # Wrong cache caught: a cookie-affinity spec parsed once per Ingress (or per annotation
    # content) and reused for a rule with another path; the canary side taking another rule's.
    ann = {P + "affinity": "cookie"}
    res = resources(
        ingress("web", [("a.test", "/a", "Prefix", "main", 80),
                        ("a.test", "/b", "Prefix", "main", 80)], ann),
        canary("web-c", "a.test", "/a", "beta", 80, {P + "canary-weight": "0"}),
        canary("web-c2", "a.test", "/b", "beta", 80, {P + "canary-weight": "0"}),
        *simple_backend("main", ["10.0.0.1", "10.0.0.2"]),
        *simple_backend("beta", ["10.1.0.1"]))
    r = Router(res, seed=1)
    for path in ("/a", "/b"):
        for side in (False, True):
            bal = backend_for(r, path, side).balancer
            assert isinstance(bal, CookieAffinity) and bal.config.path == path
        d = r.route("GET", "a.test", path)
        assert d is not None and d.set_cookie is not None and f"Path={path}" in d.set_cookie
    assert backend_for(r, "/a").balancer is not backend_for(r, "/b").balancer


def test_equal_annotations_on_two_ingresses_are_each_warned_about() -> None:
    # Wrong cache caught: warnings said only when a spec is parsed (the second Ingress, whose
    # annotations are the same, would get none) or naming the first Ingress.
    bad = {P + "load-balance": "bogus", P + "service-upstream": "maybe"}
    res = resources(ingress("one", [("a.test", "/", "Prefix", "main", 80)], bad),
                    ingress("two", [("b.test", "/", "Prefix", "main", 80)], bad),
                    *simple_backend("main", ["10.0.0.1"]))
    r = Router(res)
    got = [(w.object, w.field) for w in r.warnings]
    lb, up = f"metadata.annotations[{P}load-balance]", \
        f"metadata.annotations[{SERVICE_UPSTREAM_ANNOTATION}]"
    # Per Ingress, in rule order, the spec's warnings before service-upstream's (as per rule).
    assert got == [("Ingress default/one", lb), ("Ingress default/one", up),
                   ("Ingress default/two", lb), ("Ingress default/two", up)]


def test_ingresses_on_one_service_with_other_annotations_get_their_own_backends() -> None:
    # Wrong cache caught: the per-backend cache keyed by Service and port only (without the
    # spec or service-upstream), or the spec cache keyed by Service.
    res = resources(
        ingress("rr", [("a.test", "/", "Prefix", "main", 80)]),
        ingress("ew", [("b.test", "/", "Prefix", "main", 80)], {P + "load-balance": "ewma"}),
        ingress("up", [("c.test", "/", "Prefix", "main", 80)],
                {P + "service-upstream": "true"}),
        ingress("hash", [("d.test", "/", "Prefix", "main", 80)],
                {P + "upstream-hash-by": "$remote_addr"}),
        *simple_backend("main", ["10.0.0.1", "10.0.0.2"]))
    r = Router(res, seed=1)
    by_host = {m.host: b for m, _, b in sides(r)}
    assert type(by_host["a.test"].balancer) is RoundRobin
    assert type(by_host["b.test"].balancer) is Ewma
    assert type(by_host["c.test"].balancer) is RoundRobin
    assert type(by_host["d.test"].balancer) is ConsistentHash
    assert by_host["a.test"].balancer is not by_host["c.test"].balancer
    assert by_host["a.test"].eps.endpoints == (("10.0.0.1", 8080), ("10.0.0.2", 8080))
    assert by_host["c.test"].eps.endpoints == (("10.96.0.10", 80),)  # the ClusterIP
    d = r.route("GET", "c.test", "/")
    assert d is not None and d.endpoint == ("10.96.0.10", 80) and d.port == 80


def test_canary_sides_sharing_the_main_affinity_keep_their_own_service_upstream() -> None:
    # Wrong cache caught: the per-backend cache keyed without service-upstream. Both canary
    # sides take the main rules' one cookie-affinity spec (same annotations, same path); only
    # service-upstream tells their backends apart.
    res = resources(
        ingress("web", [("a.test", "/a", "Prefix", "main", 80),
                        ("b.test", "/a", "Prefix", "main", 80)], {P + "affinity": "cookie"}),
        canary("c-up", "a.test", "/a", "beta", 80,
               {P + "canary-weight": "100", P + "service-upstream": "true"}),
        canary("c-pods", "b.test", "/a", "beta", 80, {P + "canary-weight": "100"}),
        *simple_backend("main", ["10.0.0.1"]), *simple_backend("beta", ["10.1.0.1"]))
    r = Router(res, seed=1)
    got = {m.host: b for m, c, b in sides(r) if c}
    # Equal specs, but service-upstream is part of the backend key (docs/router.md R16).
    assert got["a.test"].balancer is not got["b.test"].balancer
    a_spec, b_spec = (got[h].balancer.config for h in ("a.test", "b.test"))  # type: ignore[attr-defined]
    assert a_spec == b_spec and a_spec.path == "/a"
    assert got["a.test"].eps.endpoints == (("10.96.0.10", 80),)
    assert got["b.test"].eps.endpoints == (("10.1.0.1", 8080),)
    d = r.route("GET", "b.test", "/a")
    assert d is not None and d.canary and d.endpoint == ("10.1.0.1", 8080)


def test_two_ports_of_one_service_and_a_canary_on_the_main_service_are_other_backends() -> None:
    # Wrong cache caught: the per-backend cache keyed without the port (the second port would
    # get the first's endpoints and label) or without the side (the canary side, on the same
    # Service with the main rule's affinity, would share the main side's balancer; R20 wants
    # its cookies ``.c``-suffixed).
    ports = [ServicePort(port=80, target_port=8080, name="http"),
             ServicePort(port=81, target_port=8081, name="alt")]
    res = resources(
        ingress("web", [("a.test", "/a", "Prefix", "main", 80)], {P + "affinity": "cookie"}),
        ingress("ports", [("a.test", "/b", "Prefix", "main", 81),
                          ("a.test", "/c", "Prefix", "main", 80)]),
        canary("web-c", "a.test", "/a", "main", 80, {P + "canary-weight": "100"}),
        service("main", ports),
        slice_("main-1", "main", ["10.0.0.1"], ports=[("http", 8080), ("alt", 8081)]))
    r = Router(res, seed=1)
    a, b, c = backend_for(r, "/a"), backend_for(r, "/b"), backend_for(r, "/a", True)
    p80 = backend_for(r, "/c")
    assert (a.label, b.label, c.label, p80.label) == (
        "default/main:80", "default/main:81", "default/main:80", "default/main:80")
    assert a.eps.endpoints == (("10.0.0.1", 8080),) and b.eps.endpoints == (("10.0.0.1", 8081),)
    assert p80.eps.endpoints == (("10.0.0.1", 8080),)
    assert a.balancer is not c.balancer and b.balancer is not p80.balancer
    d = r.route("GET", "a.test", "/a")
    assert d is not None and d.canary and d.set_cookie is not None
    assert d.set_cookie.split(";")[0].endswith(".c")
    d = r.route("GET", "a.test", "/b")
    assert d is not None and not d.canary and d.endpoint == ("10.0.0.1", 8081)


def test_a_reload_with_changed_annotations_uses_the_new_ones() -> None:
    # Wrong cache caught: a spec or per-Ingress reading kept across builds (by Ingress name,
    # or by an id() the new Ingress object may reuse).
    def res(ann: dict[str, str]) -> Resources:
        return resources(ingress("web", [("a.test", "/a", "Prefix", "main", 80)], ann),
                         *simple_backend("main", ["10.0.0.1", "10.0.0.2"]))

    r = Router(res({P + "load-balance": "ewma"}), seed=1)
    assert type(backend_for(r, "/a").balancer) is Ewma
    r.update(res({}))
    assert type(backend_for(r, "/a").balancer) is RoundRobin
    r.update(res({P + "affinity": "cookie", P + "session-cookie-name": "ONE"}))
    d = r.route("GET", "a.test", "/a")
    assert d is not None and d.set_cookie is not None and d.set_cookie.startswith("ONE=")
    r.update(res({P + "affinity": "cookie", P + "session-cookie-name": "TWO"}))
    d = r.route("GET", "a.test", "/a")
    assert d is not None and d.set_cookie is not None and d.set_cookie.startswith("TWO=")
    r.update(res({P + "service-upstream": "true"}))
    d = r.route("GET", "a.test", "/a")
    assert d is not None and d.endpoint == ("10.96.0.10", 80)


def test_a_new_default_balancer_or_factory_is_used_by_the_next_build() -> None:
    # Wrong cache caught: parsed specs kept across builds or routers by annotation content
    # alone (the same empty annotations mean another balancer once the default changes, as
    # ``serve`` does on a ConfigMap reload, or in a Router with other factories).
    def res(rev: str) -> Resources:
        return resources(ingress("web", [("a.test", "/a", "Prefix", "main", 80)],
                                 {"example.test/rev": rev}),
                         *simple_backend("main", ["10.0.0.1", "10.0.0.2"]))

    r = Router(res("1"), seed=1)
    assert type(backend_for(r, "/a").balancer) is RoundRobin
    r.load_balance = "ewma"
    r.update(res("1"))  # equal Ingresses: the table is kept, the backends are not
    assert type(backend_for(r, "/a").balancer) is Ewma
    r.load_balance = "round_robin"
    r.update(res("2"))
    assert type(backend_for(r, "/a").balancer) is RoundRobin

    class Mine(RoundRobin):
        pass

    other = Router(res("1"), seed=1, load_balance="mine", balancers={"mine": Mine})
    assert type(backend_for(other, "/a").balancer) is Mine
    assert type(backend_for(Router(res("1"), seed=1), "/a").balancer) is RoundRobin


def test_a_reload_with_changed_endpoints_or_weights_gives_the_new_ones() -> None:
    # Wrong cache caught: endpoint sets or backends kept across builds by Service name.
    ing = ingress("web", [("a.test", "/a", "Prefix", "main", 80),
                          ("a.test", "/b", "Prefix", "main", 80)])
    r = Router(resources(ing, service("main"), slice_("main-1", "main", ["10.0.0.1"])), seed=1)
    table = r.table
    assert {r.route("GET", "a.test", "/a").endpoint for _ in range(4)} == {  # type: ignore[union-attr]
        ("10.0.0.1", 8080)}
    r.update(resources(ing, service("main"), slice_("main-1", "main", ["10.0.0.7", "10.0.0.8"])))
    assert r.table is table  # endpoint-only change: table kept, backends rebuilt
    for path in ("/a", "/b"):
        got = [r.route("GET", "a.test", path).endpoint for _ in range(4)]  # type: ignore[union-attr]
        assert got.count(("10.0.0.7", 8080)) == 2 and got.count(("10.0.0.8", 8080)) == 2
    weights = {"ingresslib.io/endpoint-weights": "10.0.0.7=3"}
    r.update(resources(ing, service("main", annotations=weights),
                       slice_("main-1", "main", ["10.0.0.7", "10.0.0.8"])))
    b = backend_for(r, "/a")
    assert b.eps.weights == (3, 1) and b.eps.weighted
    got = [r.route("GET", "a.test", "/a").endpoint for _ in range(8)]  # type: ignore[union-attr]
    assert got.count(("10.0.0.7", 8080)) == 6
    # Equal weights are no weighting (a strict cycle), as without the annotation.
    r.update(resources(ing, service("main", annotations={"ingresslib.io/endpoint-weights":
                                                         "10.0.0.7=2,10.0.0.8=2"}),
                       slice_("main-1", "main", ["10.0.0.7", "10.0.0.8"])))
    assert backend_for(r, "/a").eps.weights == (2, 2) and not backend_for(r, "/a").eps.weighted


# --- the assumption the spec cache rests on ----------------------------------------------------

_ANN_VALUES = {
    "affinity": st.sampled_from(["cookie", "ip", ""]),
    "session-cookie-path": st.sampled_from(["/x", "bad", "/a;b"]),
    "session-cookie-name": st.sampled_from(["S", "bad name"]),
    "upstream-hash-by": st.sampled_from(["$remote_addr", "$uri", "", "$request_uri$host"]),
    "upstream-hash-by-subset": st.sampled_from(["true", "nope"]),
    "upstream-hash-by-subset-size": st.sampled_from(["2", "0", "x"]),
    "load-balance": st.sampled_from(["ewma", "round_robin", "bogus", " ewma "]),
    "service-upstream": st.sampled_from(["true", "false", "maybe"]),
}
annotations = st.dictionaries(st.sampled_from(sorted(_ANN_VALUES)), st.just(""), max_size=5).flatmap(
    lambda d: st.fixed_dictionaries({P + k: _ANN_VALUES[k] for k in d}))
paths = st.sampled_from(["/", "/a", "/b/c", "/x;y", None])


@given(annotations, paths, paths)
def test_only_a_cookie_affinity_spec_depends_on_the_rule_path(ann: dict[str, str], p1: str | None,
                                                              p2: str | None) -> None:
    """Router._build_state parses a non-"sticky" spec once for every rule path (keyed by the
    annotations only): that holds while parse_balancer_spec reads the rule path only for cookie
    affinity. If it ever reads it elsewhere, this fails (and the cache key must grow)."""
    s1, w1 = parse_balancer_spec(ann, "round_robin", KNOWN, p1)
    s2, w2 = parse_balancer_spec(ann, "round_robin", KNOWN, p2)
    if s1.kind != "sticky" or s2.kind != "sticky":
        assert (s1, w1) == (s2, w2)


# --- every route against a rule-by-rule oracle --------------------------------------------------

SERVICES = ["s0", "s1", "s2"]
PORTS = [80, 81, "alt"]
SERVICE_PORTS = [ServicePort(port=80, target_port=8080, name="http"),
                 ServicePort(port=81, target_port=8081, name="alt")]


@st.composite
def configurations(draw: Any) -> Resources:
    objs: list[object] = []
    pool = draw(st.lists(annotations, min_size=1, max_size=3))  # shared: equal annotations
    hosts = ["a.test", "b.test"]
    n = draw(st.integers(1, 4))
    for i in range(n):
        rules = draw(st.lists(st.tuples(st.sampled_from(hosts), st.sampled_from(["/", "/p", "/q/r"]),
                                        st.sampled_from(SERVICES), st.sampled_from(PORTS)),
                              min_size=1, max_size=4))
        ann = draw(st.sampled_from(pool))
        objs.append(ingress(f"i{i}", [(h, p, "Prefix", s, port) for h, p, s, port in rules], ann,
                            age=i))
    for i in range(draw(st.integers(0, 2))):
        h = draw(st.sampled_from(hosts))
        p = draw(st.sampled_from(["/", "/p", "/q/r"]))
        cann = dict(draw(st.sampled_from(pool)))
        cann[P + "canary-weight"] = "50"
        if draw(st.booleans()):
            cann[P + "affinity-canary-behavior"] = draw(st.sampled_from(["legacy", "sticky", "x"]))
        objs.append(canary(f"c{i}", h, p, draw(st.sampled_from(SERVICES)),
                           draw(st.sampled_from(PORTS)), cann))
    for k, s in enumerate(SERVICES):
        objs.append(service(s, SERVICE_PORTS))
        objs.append(slice_(f"{s}-1", s, [f"10.0.{k}.{j}" for j in range(1, draw(st.integers(1, 3)) + 1)],
                           ports=[("http", 8080), ("alt", 8081)]))
    return resources(*objs)


def expected_spec(m: Match, main: Match) -> BalancerSpec:
    """Rule by rule, as the Router documents it (the canary side takes the main rule's cookie
    affinity unless it has its own or says ``affinity-canary-behavior: legacy``)."""
    spec = parse_balancer_spec(m.annotations, "round_robin", KNOWN, m.path)[0]
    if m is not main and spec.kind != "sticky" \
            and m.annotations.get(P + "affinity-canary-behavior") != "legacy":
        main_spec = parse_balancer_spec(main.annotations, "round_robin", KNOWN, main.path)[0]
        if main_spec.kind == "sticky":
            return main_spec
    return spec


@settings(max_examples=150, deadline=None)
@given(configurations())
def test_every_route_gets_what_a_rule_by_rule_build_gives_it(res: Resources) -> None:
    r = Router(res, seed=3)
    index = EndpointIndex(res)
    keys: dict[int, tuple[Any, ...]] = {}
    bals: dict[int, object] = {}
    for i, (m, is_canary, b) in enumerate(sides(r)):
        side = m.canary if is_canary else m
        assert side is not None
        spec = expected_spec(side, m)
        upstream = parse_bool(side.annotations.get(SERVICE_UPSTREAM_ANNOTATION, "")) is True
        eps = index.resolve(side.namespace, side.service, side.port, upstream)
        assert b.eps == eps
        assert b.match is m and b.served is side and b.canary == is_canary
        assert b.label == f"{side.namespace}/{side.service}:{side.port}"
        bal = b.balancer
        if spec.kind == "sticky":
            assert isinstance(bal, CookieAffinity) and bal.config == spec.affinity
        elif spec.kind == "chash":
            assert type(bal) is ConsistentHash
            assert bal.subset == (spec.subset_size if spec.subset else 0)
            assert bal.template.text == spec.hash_by
        else:
            assert type(bal) is registered_balancers()[spec.kind]
        keys[i] = (side.namespace, side.service, side.port, upstream, spec, is_canary)
        bals[i] = bal
        # A Backend built alone for this rule decides as the shared one.
        alone = _Backend(eps, bal, m, side, is_canary)
        for slot in ("mode", "keyarg", "hname", "n", "label", "sticky", "keyfn"):
            assert getattr(alone, slot) == getattr(b, slot), slot
    # One balancer per backend key, and only per backend key (docs/router.md R16).
    for i in keys:
        for j in keys:
            assert (bals[i] is bals[j]) == (keys[i] == keys[j])
    # Every rule routes to its own Match and its backend's endpoints.
    for m, is_canary, b in sides(r):
        if not is_canary and m.host is not None and m.path is not None:
            d = r.route("GET", m.host, m.path)
            assert d is not None
            if d.match is m and not d.canary:
                assert d.endpoint in b.eps.endpoints and d.served is m


@given(st.lists(st.tuples(st.sampled_from(["10.0.0.1", "10.0.0.2", "fd00::1"]),
                          st.integers(1, 65535)), max_size=3),
       st.one_of(st.none(), st.integers(1, 65535)), st.one_of(st.none(), st.just("no endpoint")),
       st.booleans())
def test_the_fast_endpoint_set_is_an_endpoint_set(eps: list[tuple[str, int]], port: int | None,
                                                  reason: str | None, weighted: bool) -> None:
    """``_finish`` builds its EndpointSet without the dataclass ``__init__``: same type, same
    value, same hash, and still frozen."""
    import dataclasses

    import pytest

    from ingresslib._endpoints import EndpointSet, _new_endpoint_set

    args = ("ns", "svc", port, tuple(eps), (1,) * len(eps), reason, weighted)
    fast, slow = _new_endpoint_set(*args), EndpointSet(*args)
    assert type(fast) is EndpointSet and fast == slow and hash(fast) == hash(slow)
    assert repr(fast) == repr(slow)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.port = 1  # type: ignore[misc]
