"""Review of "Why 503?" (W18, session 18): ``Router.no_endpoint``.

One note per backend without a ready endpoint, on the first Ingress using it
(docs/router.md "Warnings"), whatever balancer annotations or ``service-upstream`` the other
Ingresses on that Service port carry (each of those holds a route side of its own), and the
same notes after any history of updates as a fresh build gives.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingresslib._router import Router

from _router_helpers import P, canary, ingress, resources, service, slice_
from test_review_endpoints_s18 import (CountingRouter, Feed, ingress_sets, object_specs,
                                       store_steps)


def _one_per_backend(r: Router) -> None:
    """Each backend (Service, port, main or canary side) without endpoint has exactly one
    note, naming the Ingress of the first route (table order) on it."""
    first: dict[tuple[str | None, str, bool], str] = {}
    for m in r.table.routes:
        route = r._state.routes[m.route_id]
        for b in (route.main, route.canary):
            if b is None or b.eps.endpoints or b.served.service is None:
                continue
            port = b.served.port
            text = f"port {port!r}" if isinstance(port, str) else f"port {port}"
            first.setdefault((b.served.service, text, b.canary), b.served.ingress)
    said: list[tuple[tuple[str | None, str, bool], str]] = []
    for note in r.no_endpoint:
        head = note.message.split(":", 1)[0].split()
        said.append(((head[-3], " ".join(head[-2:]), head[0] == "canary"),
                     note.object.removeprefix("Ingress ")))
    assert sorted(said, key=repr) == sorted(first.items(), key=repr)


def test_a_backend_shared_with_other_balancer_annotations_is_warned_once() -> None:
    # Before: one warning per route side, so "web port 80" was said twice, on a and on b
    # (b's ewma balancer is a side of its own), and again on d (service-upstream).
    a = ingress("a", [("h.test", "/a", "Prefix", "web", 80)])
    b = ingress("b", [("h.test", "/b", "Prefix", "web", 80)], {P + "load-balance": "ewma"})
    c = ingress("c", [("h.test", "/c", "Prefix", "web", 80)])
    d = ingress("d", [("h.test", "/d", "Prefix", "web", 80)], {P + "service-upstream": "true"})
    r = Router(resources(a, b, c, d, service("web", cluster_ip="None")), seed=0)
    assert [n.object for n in r.no_endpoint] == ["Ingress default/a"]
    assert len([w for w in r.warnings if "every request answers 503" in w.message]) == 1
    _one_per_backend(r)


def test_a_canary_on_the_same_service_port_keeps_its_own_note() -> None:
    main = ingress("main", [("h.test", "/", "Prefix", "web", 80)])
    can = canary("can", "h.test", "/", "web", 80, {P + "canary-weight": "30"})
    r = Router(resources(main, can, service("web")), seed=0)
    assert [(n.object, n.message.split(":")[0]) for n in r.no_endpoint] == [
        ("Ingress default/main", "backend web port 80"),
        ("Ingress default/can", "canary backend web port 80")]


def test_an_empty_canary_beside_a_healthy_main_does_not_answer_503() -> None:
    # R2 (docs/router.md): the healthy side serves. Before: "canary backend canary port 80:
    # every request answers 503", while every request reached the main's endpoint.
    main = ingress("main", [("h.test", "/", "Prefix", "web", 80)])
    can = canary("can", "h.test", "/", "canary", 80, {P + "canary-weight": "100"})
    r = Router(resources(main, can, service("web"), service("canary"),
                         slice_("w1", "web", ["10.0.0.1"])), seed=0)
    assert {r.route("GET", "h.test", "/").endpoint for _ in range(4)} == {("10.0.0.1", 8080)}
    (note,) = r.no_endpoint
    assert note.message.startswith(
        "canary backend canary port 80: the main backend serves its requests: Service "
        "default/canary has no ready endpoint")
    assert "503" not in note.message


def test_an_empty_main_says_which_routes_its_canary_serves_and_follows_updates() -> None:
    main = ingress("main", [("h.test", "/", "Prefix", "web", 80),
                            ("h.test", "/x", "Prefix", "web", 80)])
    can = canary("can", "h.test", "/", "canary", 80, {P + "canary-weight": "0"})
    objs = (main, can, service("web"), service("canary"))
    r = CountingRouter(resources(*objs), seed=0)
    assert [n.message.split(": ")[1] for n in r.no_endpoint] == [
        "every request answers 503", "every request answers 503"]
    # The canary gets an endpoint (an endpoint-only update): "/" is served by it, "/x" is not.
    healthy = resources(*objs, slice_("c1", "canary", ["10.0.0.2"]))
    builds = r.builds
    r.update(healthy)
    assert r.builds == builds  # the incremental path (_update_endpoints)
    assert r.route("GET", "h.test", "/").endpoint == ("10.0.0.2", 8080)
    assert r.route("GET", "h.test", "/x").endpoint is None
    (note,) = r.no_endpoint
    assert note.message.split(": ")[:2] == [
        "backend web port 80",
        "every request answers 503 except on the 1 of its 2 routes whose canary backend "
        "serves them"]
    assert r.no_endpoint == Router(healthy, seed=0).no_endpoint
    r.update(resources(*objs))  # and back
    assert r.builds == builds
    assert r.no_endpoint == Router(resources(*objs), seed=0).no_endpoint


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ingress_sets, st.lists(object_specs, max_size=8), st.lists(store_steps, max_size=8))
def test_no_endpoint_follows_updates_as_a_fresh_build(ingresses: Any, start: list[Any],
                                                      steps: list[Any]) -> None:
    # Also with Ingresses alone (no Service held: ``warnings`` then omits the notes, so the
    # differential test of the endpoints review does not compare them).
    feed = Feed(ingresses, files=False)
    for spec in start:
        feed.step(("put", spec))
    r = Router(feed.resources(), seed=1)
    _one_per_backend(r)
    for op in steps:
        feed.step(op)
        res = feed.resources()
        r.update(res)
        assert r.no_endpoint == Router(res, seed=1).no_endpoint, op
        _one_per_backend(r)


# --- every reason is true of the data: fixing the step it names changes the answer --------------

from dataclasses import replace as _replace  # noqa: E402

from ingresslib._endpoints import EndpointIndex  # noqa: E402
from ingresslib._models import (  # noqa: E402
    Endpoint,
    EndpointAddress,
    EndpointConditions,
    EndpointPort,
    Endpoints,
    EndpointSlice,
    EndpointSubset,
)
from ingresslib._resources import Resources  # noqa: E402

from test_review_endpoints_s18 import RULE_PORTS, build, endpoints_specs  # noqa: E402

_READY = EndpointConditions(ready=True)
_GOOD = {"IPv4": "10.0.0.9", "IPv6": "fd00::9", "FQDN": "good.example.test"}

svc_a = st.tuples(st.just("svc"), st.just("a"), st.sampled_from((0, 1, 2, 3, 6, 8)))
slice_a = st.tuples(
    st.just("slice"), st.sampled_from(("s0", "s1", "s2", "s3")), st.sampled_from(("a", None)),
    st.sampled_from(("IPv4", "IPv6", "FQDN")),
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 4)), max_size=3).map(tuple),
    st.integers(0, 7), st.just("default"))
ep_a = endpoints_specs.map(lambda s: (s[0], "a", *s[2:]))


def _resolve(objs: list[Any], port: int | str, upstream: bool) -> Any:
    res = Resources(services=tuple(o for o in objs if o.kind == "Service"),
                    endpoint_slices=tuple(o for o in objs if o.kind == "EndpointSlice"),
                    endpoints=tuple(o for o in objs if o.kind == "Endpoints"))
    return EndpointIndex(res).resolve("default", "a", port, upstream)


def _fix(objs: list[Any], reason: str, port: int | str) -> list[Any] | None:
    """The objects with exactly the step ``reason`` names fixed (None: not a fixable one)."""
    svc = next((o for o in objs if o.kind == "Service"), None)
    if svc is None:
        assert reason == "Service default/a not found"
        return None
    sp = next((p for p in svc.spec.ports
               if (p.name == port if isinstance(port, str) else p.port == port)), None)
    want = sp.name if sp is not None else None
    good_port = (EndpointPort(port=8080, name=want),)
    out = []
    for o in objs:
        ref = f"{o.kind} {o.metadata.ref}"
        if o.kind == "EndpointSlice" and o.service_name == "a":
            if f"{ref} has no TCP port" in reason or f"{ref} lists no port" in reason:
                o = _replace(o, ports=good_port)
            elif f"{ref} list" in reason and "no endpoint" in reason:
                o = _replace(o, endpoints=(Endpoint((_GOOD[o.address_type],), _READY),))
            elif "none ready" in reason or "not ready" in reason:
                o = _replace(o, endpoints=tuple(_replace(e, conditions=_READY)
                                                for e in o.endpoints))
        elif o.kind == "Endpoints":
            if f"{ref} lists no subset" in reason:
                o = _replace(o, subsets=(EndpointSubset((EndpointAddress("10.0.0.9"),), (),
                                                        good_port),))
            elif f"{ref} has no TCP port" in reason:
                o = _replace(o, subsets=tuple(_replace(s, ports=good_port) for s in o.subsets))
            elif f"{ref}" in reason and "notReadyAddresses" in reason:
                o = _replace(o, subsets=tuple(
                    _replace(s, addresses=s.addresses + s.not_ready_addresses,
                             not_ready_addresses=()) for s in o.subsets))
            elif f"{ref} lists no address for this port" in reason:
                o = _replace(o, subsets=tuple(
                    _replace(s, addresses=(EndpointAddress("10.0.0.9"),)) for s in o.subsets))
        out.append(o)
    if "no EndpointSlice labelled kubernetes.io/service-name=a (and no v1 Endpoints)" in reason:
        assert not any(o.kind in ("EndpointSlice", "Endpoints") and
                       (o.kind == "Endpoints" or o.service_name == "a") for o in objs)
        out.append(EndpointSlice(_replace(svc.metadata, name="fix", labels={
            "kubernetes.io/service-name": "a"}), "IPv4",
            (Endpoint(("10.0.0.9",), _READY),), good_port))
    return out


@settings(max_examples=400, deadline=None)
@given(st.one_of(svc_a, st.none()), st.lists(st.one_of(slice_a, slice_a, ep_a), max_size=5),
       st.sampled_from(RULE_PORTS), st.booleans())
def test_each_reason_names_a_step_whose_fix_changes_the_answer(svc: Any, specs: list[Any],
                                                               port: int | str,
                                                               upstream: bool) -> None:
    objs: dict[Any, Any] = {}
    for spec in [svc, *specs] if svc is not None else specs:  # one object per key, as a store holds them
        objs[(spec[0], spec[1])] = build(spec)
    before = _resolve(list(objs.values()), port, upstream)
    if before.endpoints:
        assert before.reason is None
        return
    assert before.reason
    fixed = _fix(list(objs.values()), before.reason, port)
    if fixed is None:
        return
    after = _resolve(fixed, port, upstream)
    if "has no port" in before.reason or "not TCP" in before.reason:
        assert after == before  # nothing among the endpoints can fix the Service itself
        return
    if "none usable" in before.reason and "not ready" not in before.reason:
        return  # FQDN addresses refused, endpoints without an address: nothing to fix here
    # The step named was the one failing: once fixed, endpoints, or another reason.
    assert after.endpoints or after.reason != before.reason, (before.reason, after.reason)
