"""EndpointSlices of ``addressType: FQDN`` may not send traffic to the proxy's own host.

An FQDN slice is the other way (besides an ExternalName Service) a namespace user hands the
proxy a host name, and the API server's FQDN check (IsFullyQualifiedDomainName: an RFC 1123
subdomain of two labels or more) accepts ``127.1``, ``127.0.0.1``, ``0.0.0.0``,
``x.localhost``. Such an address gets no traffic, and ``Router.warnings`` says so, naming the
slice and the field, whichever path an update takes (incremental or full rebuild).

Each targeted test names the defect it catches (checked against the code before session 15).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingresslib._endpoints import EndpointIndex, external_name_problem, fqdn_address_problem
from ingresslib._models import EndpointConditions, ServicePort
from ingresslib._resources import Resources
from ingresslib._router import Router

# Every test runs once per counter implementation (compiled _pick, pure _pick_py).
from _counters import counters  # noqa: F401
from _router_helpers import ingress, resources, service, slice_

#: Addresses the API server accepts in an FQDN slice that reach this host (the C resolver
#: reads ``127.1``, ``0x7f.1`` as 127.0.0.1; a connect to 0.0.0.0 reaches this host;
#: ``*.localhost`` may resolve to the loopback).
THIS_HOST = ["127.1", "127.0.0.1", "0.0.0.0", "0x7f.1", "127.0.0.01", "api.localhost",
             "Api.LocalHost."]
GOOD = "backend.example.test"


def web(addrs: list[str], address_type: str = "FQDN", *extra: object) -> Resources:
    return resources(ingress("web", [("a.test", "/", "Prefix", "web", "http")]),
                     service("web", [ServicePort(80, "http", 8080)]),
                     slice_("web-fq", "web", addrs, [("http", 8080)], address_type=address_type),
                     *extra)


def endpoints(r: Router) -> tuple[tuple[str, int], ...]:
    return r._state.routes[r.table.routes[0].route_id].main.eps.endpoints


def slice_notes(r: Router) -> list[tuple[str, str, str]]:
    return [(w.object, w.field, w.message) for w in r.warnings
            if w.field.startswith("endpoints")]


@pytest.mark.parametrize("bad", THIS_HOST)
def test_an_fqdn_address_reaching_this_host_gets_no_traffic(bad: str) -> None:
    # Catches: FQDN slice addresses went straight to the connect: an Ingress sent its traffic
    # to the proxy's own loopback services (127.1 is 127.0.0.1 to getaddrinfo), with no
    # warning, where the same name as an ExternalName is refused.
    r = Router(web([GOOD, bad]))
    assert endpoints(r) == ((GOOD, 8080),)
    for _ in range(4):
        d = r.route("GET", "a.test", "/")
        assert d is not None and d.endpoint == (GOOD, 8080)
    assert slice_notes(r) == [("EndpointSlice default/web-fq", "endpoints[1].addresses[0]",
                               fqdn_address_problem(bad))]
    why = fqdn_address_problem(bad)
    assert why is not None and why.startswith(f"FQDN address {bad!r} ") and why.endswith(
        "; refused")


def test_the_warning_reads_as_the_externalname_one() -> None:
    # Catches: no warning at all for a refused FQDN address.
    r = Router(web(["127.1", GOOD, "0.0.0.0"]))
    assert slice_notes(r) == [
        ("EndpointSlice default/web-fq", "endpoints[0].addresses[0]",
         "FQDN address '127.1' is read by the C resolver as the loopback address 127.0.0.1; "
         "refused"),
        ("EndpointSlice default/web-fq", "endpoints[2].addresses[0]",
         "FQDN address '0.0.0.0' is the unspecified address 0.0.0.0 (a connect to it reaches "
         "this host); refused")]
    ext = Router(resources(service("x", [], type="ExternalName", external_name="127.1")))
    assert [(w.field, w.message) for w in ext.warnings] == [
        ("spec.externalName", "ExternalName '127.1' is read by the C resolver as the loopback "
         "address 127.0.0.1; refused")]


def test_a_slice_of_refused_addresses_only_answers_503() -> None:
    # Catches: the request went to 127.0.0.1 (or 0.0.0.0) instead of getting a 503.
    r = Router(web(["127.1", "api.localhost"]))
    assert endpoints(r) == ()
    d = r.route("GET", "a.test", "/")
    assert d is not None and d.endpoint is None
    assert len(slice_notes(r)) == 2


def test_not_ready_refused_addresses_are_warned_about_too() -> None:
    # Catches: as above; an endpoint not ready yet is refused the moment it is ready, so the
    # warning comes now (as an ExternalName's does whether an Ingress uses it or not).
    res = resources(service("web", [ServicePort(80, "http", 8080)]),
                    slice_("web-fq", "web", [("127.1", EndpointConditions(ready=False))],
                           [("http", 8080)], address_type="FQDN"))
    assert [w.field for w in Router(res).warnings] == ["endpoints[0].addresses[0]"]
    assert EndpointIndex(res).resolve("default", "web", 80).endpoints == ()


def test_valid_fqdn_and_ipv4_addresses_keep_working() -> None:
    # Not a defect: what must not change. 127.0.0.1 in an IPv4 slice is untouched here (the
    # validator's documented choice; only FQDN slices carry host names).
    r = Router(web([GOOD, "Backend.Example.com", "010.0.0.1"]))
    assert endpoints(r) == (("10.0.0.1", 8080), ("Backend.Example.com", 8080), (GOOD, 8080))
    assert r.warnings == ()
    v4 = Router(web(["127.0.0.1"], "IPv4"))
    assert endpoints(v4) == (("127.0.0.1", 8080),) and v4.warnings == ()


def test_only_the_definition_in_use_is_warned_about() -> None:
    # Catches: a refused address warned about (or used) from an earlier definition of a slice
    # given twice, which the later one replaced.
    old = slice_("web-fq", "web", ["127.1"], [("http", 8080)], address_type="FQDN")
    r = Router(web([GOOD], "FQDN", old))  # web() puts its slice first: `old` is the later one
    assert endpoints(r) == ()
    assert [w.message for w in r.warnings] == ["defined 2 times; the last definition is used",
                                               fqdn_address_problem("127.1"),
                                               # its backend has none left (W18)
                                               "backend web port 'http': every request "
                                               "answers 503: Service default/web has no ready "
                                               "endpoint: 1 endpoint, none usable: 1 refused "
                                               "(an FQDN address the proxy must not connect to)"]
    r2 = Router(resources(ingress("web", [("a.test", "/", "Prefix", "web", "http")]),
                          service("web", [ServicePort(80, "http", 8080)]), old,
                          slice_("web-fq", "web", [GOOD], [("http", 8080)],
                                 address_type="FQDN")))
    assert endpoints(r2) == ((GOOD, 8080),)
    assert [w.message for w in r2.warnings] == ["defined 2 times; the last definition is used"]


def test_endpoint_only_updates_warn_as_a_rebuild_does() -> None:
    # Catches: the incremental endpoint-only update kept the warnings of the previous state:
    # a refused address added by an update, or one removed, left the list stale.
    other = slice_("v4", "web", ["10.0.0.1"], [("http", 8080)])
    steps = [web([GOOD], "FQDN", other), web([GOOD, "127.1"], "FQDN", other),
             # only the IPv4 slice changes: the FQDN warning stays
             web([GOOD, "127.1"], "FQDN", slice_("v4", "web", ["10.0.0.2"], [("http", 8080)])),
             web([GOOD], "FQDN", other), web(["0.0.0.0"], "FQDN", other)]
    inc = Router(steps[0])
    full = Router(steps[0])
    full._incremental = False
    for res in steps[1:]:
        inc.update(res)
        full.update(res)
        fresh = Router(res)
        assert inc.warnings == full.warnings == fresh.warnings
        assert endpoints(inc) == endpoints(full) == endpoints(fresh)
    assert inc._objects is not None  # the updates took the incremental path
    assert slice_notes(inc) == [("EndpointSlice default/web-fq", "endpoints[0].addresses[0]",
                                 fqdn_address_problem("0.0.0.0"))]
    assert endpoints(inc) == (("10.0.0.1", 8080),)
    # The FQDN slice deleted (a change that only removes a slice): its warning goes with it.
    gone = resources(*[o for o in steps[-1].ingresses + steps[-1].services], other)
    inc.update(gone)
    assert inc.warnings == Router(gone).warnings == () and endpoints(inc) == (("10.0.0.1", 8080),)
    assert inc._objects is not None and inc._objects.resources is gone


# --- random histories (B15's property test, with FQDN slices) ------------------------------------

SERVICES = ("a", "b")
ADDRS = (GOOD, "other.example.test", "127.1", "0.0.0.0", "x.localhost", "Bad_Name", "10.0.0.1")

#: A Service's slices: (address type, addresses with readiness, twice, label). Twice: 0 once;
#: 1 given again with the first endpoint dropped (the later definition is used). Label: the
#: slice belongs to the Service, or to none (no kubernetes.io/service-name: still warned of).
SliceState = tuple[str, tuple[tuple[str, bool], ...], int, bool]
SLICE_STATES = st.tuples(st.sampled_from(["FQDN", "FQDN", "IPv4"]),
                         st.lists(st.tuples(st.sampled_from(ADDRS), st.booleans()),
                                  max_size=3).map(tuple),
                         st.integers(0, 1), st.booleans())


def slice_objects(name: str, state: SliceState) -> list[object]:
    kind, addrs, twice, labelled = state
    if kind == "IPv4":
        addrs = tuple((f"10.0.1.{i}", ok) for i, (_, ok) in enumerate(addrs))
    eps = [(a, EndpointConditions(ready=ok)) for a, ok in addrs]
    sl = slice_(f"{name}-1", name if labelled else "", eps, [("http", 8080)], address_type=kind)
    out: list[object] = [sl]
    if twice:
        out.append(slice_(f"{name}-1", name if labelled else "", eps[1:], [("http", 8080)],
                          address_type=kind))
    return out


class World:
    """Resources whose unchanged parts keep their model objects (as a ResourceStore snapshot
    does), so endpoint-only updates take the incremental path."""

    def __init__(self) -> None:
        self.cache: dict[tuple[str, SliceState], list[object]] = {}
        self.fixed = [ingress("ing", [("x.test", f"/{s}", "Prefix", s, "http")
                                      for s in SERVICES]),
                      *(service(s, [ServicePort(80, "http", 8080)]) for s in SERVICES)]

    def resources(self, states: dict[str, SliceState]) -> Resources:
        objs = list(self.fixed)
        for name in SERVICES:
            key = (name, states[name])
            got = self.cache.get(key)
            if got is None:
                got = self.cache[key] = slice_objects(*key)
            objs += got
        return resources(*objs)


def all_endpoints(r: Router) -> list[tuple[tuple[str, int], ...]]:
    return [r._state.routes[m.route_id].main.eps.endpoints for m in r.table.routes]


@settings(max_examples=150, deadline=None)
@given(st.fixed_dictionaries({s: SLICE_STATES for s in SERVICES}),
       st.lists(st.tuples(st.sampled_from(SERVICES), SLICE_STATES), min_size=1, max_size=6))
def test_warnings_and_endpoints_after_any_history_are_a_fresh_routers(
        start: dict[str, SliceState], steps: list[tuple[str, SliceState]]) -> None:
    # Incremental, full rebuilds and a Router built from scratch: the same warnings in the
    # same order, the same endpoints, and never an address that reaches this host.
    world = World()
    states = dict(start)
    res = world.resources(states)
    a = Router(res, seed=3)
    b = Router(res, seed=3)
    b._incremental = False
    for step in [None, *steps]:
        if step is not None:
            states[step[0]] = step[1]
            res = world.resources(states)
            a.update(res)
            b.update(res)
        fresh = Router(res, seed=3)
        assert a.warnings == b.warnings == fresh.warnings
        assert all_endpoints(a) == all_endpoints(b) == all_endpoints(fresh)
        for eps in all_endpoints(a):
            assert all(fqdn_address_problem(host) is None for host, _ in eps)
        # Every refused FQDN address of a slice in use is warned about, once.
        said = {(w.object, w.field) for w in a.warnings if w.field.startswith("endpoints")}
        want = set()
        for name in SERVICES:
            kind, addrs, twice, _ = states[name]
            used = addrs[1:] if twice else addrs
            for i, (addr, _ok) in enumerate(used):
                if kind == "FQDN" and fqdn_address_problem(addr) is not None:
                    want.add((f"EndpointSlice default/{name}-1", f"endpoints[{i}].addresses[0]"))
        assert said == want
    assert a._objects is not None or not steps
