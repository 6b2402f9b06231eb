"""Review of ``_endpoints`` and ``_router_delta`` (session 18).

The differential property: after any sequence of changes to the Services, EndpointSlices and v1
Endpoints, the Router that followed them with ``Router.update`` (the incremental path of
``_router_delta``) holds exactly the endpoints, backend labels and warnings of a Router built
from scratch from the final ``Resources``. The histories cover what the incremental path has to
get right: a slice moving between Services by a label change (or losing its label), a Service
deleted and added back, objects decoded anew (equal, not identical), FQDN and IPv6 slices next
to IPv4 ones, named and unnamed ports, ``service-upstream``, headless and ExternalName
Services, and - as manifests from files can hold them - the same object given twice, in any
order. Two feeds: a ResourceStore-like one (one object per key, key order) and a files-like one
(twins, objects moved to the end).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from ingresslib._endpoints import EndpointIndex
from ingresslib._models import (
    Endpoint,
    EndpointAddress,
    EndpointConditions,
    EndpointPort,
    Endpoints,
    EndpointSlice,
    EndpointSubset,
    Service,
    ServicePort,
)
from ingresslib._resources import Resources
from ingresslib._router import Router

from _router_helpers import P, canary, endpoints_v1, ingress, meta, resources, service

SERVICES = ("a", "b", "c")
SLICES = ("s0", "s1", "s2", "s3")

# --- object specs (hashable) and the models they build ------------------------------------------

#: Service variants: 0 port "http" 80 -> 8080; 1 "http" -> named targetPort "web"; 2 one
#: unnamed port 80 -> 8080; 3 "http" -> 8080 and "alt" 81 -> "web"; 4 ExternalName; 5 an
#: ExternalName refused (loopback, a warning); 6 headless, "http" -> 8080; 7 weights
#: (one bad entry: a warning); 8 "http" is UDP.
SERVICE_VARIANTS = 9
_SVC_PORTS: dict[int, list[ServicePort]] = {
    0: [ServicePort(80, "http", 8080)],
    1: [ServicePort(80, "http", "web")],
    2: [ServicePort(80, None, 8080)],
    3: [ServicePort(80, "http", 8080), ServicePort(81, "alt", "web")],
    6: [ServicePort(80, "http", 8080)],
    7: [ServicePort(80, "http", 8080)],
    8: [ServicePort(80, "http", 8080, protocol="UDP")],
}

ADDRESSES = {
    "IPv4": ("10.0.0.1", "10.0.0.2", "10.0.0.3", "010.0.0.4"),
    "IPv6": ("fd00::1", "FD00:0::2", "fd00::3", "::ffff:10.0.0.1"),
    "FQDN": ("a.example.test", "B.example.test", "127.1", "x.localhost"),
}
CONDITIONS = (EndpointConditions(ready=True), EndpointConditions(ready=False),
              EndpointConditions(), EndpointConditions(terminating=True),
              EndpointConditions(ready=False, serving=True, terminating=True))
SLICE_PORTS: tuple[tuple[tuple[str | None, int | None, str], ...], ...] = (
    (("http", 8080, "TCP"),), (("web", 8081, "TCP"),), ((None, 8080, "TCP"),), (),
    (("http", 8080, "TCP"), ("web", 8081, "TCP")), (("http", 9090, "TCP"),),
    (("http", 8080, "UDP"),), ((None, None, "TCP"),))

ServiceSpec_ = tuple[str, str, int]  # ("svc", name, variant)
SliceSpec = tuple[str, str, str | None, str, tuple[tuple[int, int], ...], int, str]
EndpointsSpec = tuple[str, str, tuple[int, ...], tuple[int, ...], int]
Spec = Any


def build(spec: Spec) -> object:
    """A fresh model object for ``spec`` (equal to every other one built from it)."""
    kind = spec[0]
    if kind == "svc":
        _, name, variant = spec
        if variant == 4:
            return service(name, [], type="ExternalName", external_name="ext.example.test",
                           cluster_ip=None)
        if variant == 5:
            return service(name, [ServicePort(80, "http", 8080)], type="ExternalName",
                           external_name="127.0.0.1", cluster_ip=None)
        ann = {"ingresslib.io/endpoint-weights": "10.0.0.1=3, nope"} if variant == 7 else None
        return service(name, _SVC_PORTS[variant], annotations=ann,
                       cluster_ip="None" if variant == 6 else f"10.96.0.{ord(name[0])}")
    if kind == "slice":
        _, name, label, atype, eps, ports, ns = spec
        labels = {"kubernetes.io/service-name": label} if label else None
        return EndpointSlice(
            meta(name, ns, labels=labels), atype,
            tuple(Endpoint((ADDRESSES[atype][a],), CONDITIONS[c]) for a, c in eps),
            tuple(EndpointPort(port=p, name=n, protocol=proto)
                  for n, p, proto in SLICE_PORTS[ports]))
    _, name, ready, not_ready, ports = spec
    return Endpoints(meta(name), (EndpointSubset(
        tuple(EndpointAddress(ADDRESSES["IPv4"][i]) for i in ready),
        tuple(EndpointAddress(ADDRESSES["IPv4"][i]) for i in not_ready),
        tuple(EndpointPort(port=p, name=n, protocol=proto)
              for n, p, proto in SLICE_PORTS[ports] if p is not None)),))


def key_of(spec: Spec) -> tuple[str, ...]:
    return (spec[0], spec[-1], spec[1]) if spec[0] == "slice" else (spec[0], spec[1])


service_specs = st.tuples(st.just("svc"), st.sampled_from(SERVICES),
                          st.integers(0, SERVICE_VARIANTS - 1))
slice_specs = st.tuples(
    st.just("slice"), st.sampled_from(SLICES), st.sampled_from(SERVICES + (None,)),
    st.sampled_from(("IPv4", "IPv4", "IPv6", "FQDN")),
    st.lists(st.tuples(st.integers(0, 3),  # ready more often than not
                       st.sampled_from((0, 0, 0, 2, 1, 3, 4))), max_size=4).map(tuple),
    st.integers(0, len(SLICE_PORTS) - 1),
    st.sampled_from(("default", "default", "other")))  # "other": a Service nothing routes to
endpoints_specs = st.tuples(
    st.just("ep"), st.sampled_from(SERVICES),
    st.lists(st.integers(0, 3), max_size=3).map(tuple),
    st.lists(st.integers(0, 3), max_size=2).map(tuple),
    st.integers(0, len(SLICE_PORTS) - 1))
object_specs = st.one_of(service_specs, slice_specs, endpoints_specs)

#: One step of history: ("put", spec) replaces the object of that key (or adds it), ("del", i)
#: deletes the i-th object held (mod their number), ("anew", i) decodes it anew (equal, not
#: identical); ("ing", i) switches to the i-th Ingress set (a full build, which the per-Service
#: groups follow); ("ingput", spec) switches to the other set and puts spec in one update;
#: ("bulk", _) adds or removes 120 slices at once (more than the incremental path
#: follows: it drops the groups and makes them anew on the next update); files only:
#: ("twin", spec) adds a second definition, ("first", spec) replaces the first definition of
#: its key (an edit of the earlier file), ("last", i) moves an object last.
store_steps = st.one_of(
    st.tuples(st.sampled_from(("put", "put", "ingput")), object_specs),
    st.tuples(st.sampled_from(("del", "anew", "ing", "bulk")), st.integers(0, 20)))
file_steps = st.one_of(
    store_steps,
    st.tuples(st.sampled_from(("twin", "first")), object_specs),
    st.tuples(st.sampled_from(("last", "anew", "del")), st.integers(0, 20)))

#: Ingress backends: (service, port) and annotations of the rule's Ingress.
RULE_PORTS = (80, "http", "alt", 81)
LB: tuple[dict[str, str], ...] = ({}, {P + "service-upstream": "true"},
                                  {P + "affinity": "cookie"}, {P + "upstream-hash-by": "$uri"})


@st.composite
def ingress_set(draw: Any) -> tuple[object, ...]:
    out: list[object] = []
    for i in range(draw(st.integers(1, 2))):
        rules = [(f"h{i}.test", f"/p{j}", "Prefix", s, port) for j, (s, port) in enumerate(
            draw(st.lists(st.tuples(st.sampled_from(SERVICES), st.sampled_from(RULE_PORTS)),
                          min_size=1, max_size=3)))]
        out.append(ingress(f"ing{i}", rules, draw(st.sampled_from(LB)), age=i))
    if draw(st.booleans()):
        out.append(canary("can", "h0.test", "/p0", draw(st.sampled_from(SERVICES)),
                          draw(st.sampled_from(RULE_PORTS)), {P + "canary-weight": "30"}))
    return tuple(out)


#: Two Ingress sets: the history starts with the first and ("ing", i) switches between them.
ingress_sets = st.tuples(ingress_set(), ingress_set())
BULK = tuple(("slice", f"zz{i}", "zz", "IPv4", ((i % 4, 0),), 0, "default") for i in range(120))


class Feed:
    """The objects held, as a list of specs with one model object each; an unchanged object
    keeps its identity from snapshot to snapshot (as a ResourceStore's does)."""

    def __init__(self, ingresses: Sequence[tuple[object, ...]], files: bool) -> None:
        self.variants = ingresses
        self.ingresses = ingresses[0]
        self.files = files
        self.held: list[tuple[Spec, object]] = []

    def step(self, op: tuple[str, Any]) -> None:
        what, arg = op
        held = self.held
        if what == "ing":
            self.ingresses = self.variants[arg % len(self.variants)]
            return
        if what == "ingput":
            self.ingresses = self.variants[self.variants.index(self.ingresses) ^ 1]
            what = "put"
        if what == "bulk":
            if any(s[1] == "zz0" for s, _ in held):
                held[:] = [(s, o) for s, o in held if not s[1].startswith("zz")]
            else:
                held += [(spec, build(spec)) for spec in BULK]
            return
        if what in ("put", "twin", "first"):
            pair = (arg, build(arg))
            if what == "twin":
                held.append(pair)
                return
            at = [i for i, (s, _) in enumerate(held) if key_of(s) == key_of(arg)]
            if at:
                held[at[0] if what == "first" else at[-1]] = pair
            else:
                held.append(pair)
            return
        if not held:
            return
        # An index (mod the number held), or the (kind, name) key of the last one of that key.
        i = (arg % len(held) if isinstance(arg, int)
             else max(j for j, (s, _) in enumerate(held) if key_of(s) == arg))
        if what == "del":
            del held[i]
        elif what == "anew":
            held[i] = (held[i][0], build(held[i][0]))
        else:  # "last"
            held.append(held.pop(i))

    def resources(self) -> Resources:
        pairs = self.held if self.files else sorted(self.held, key=lambda p: key_of(p[0]))
        objs = [o for _, o in pairs]
        return Resources(
            ingresses=self.ingresses,  # type: ignore[arg-type]
            services=tuple(o for o in objs if isinstance(o, Service)),
            endpoint_slices=tuple(o for o in objs if isinstance(o, EndpointSlice)),
            endpoints=tuple(o for o in objs if isinstance(o, Endpoints)))


def backends(r: Router) -> list[Any]:
    """Per route: the main and canary sides' endpoint sets and labels."""
    out = []
    for m in r.table.routes:
        route = r._state.routes[m.route_id]
        c = route.canary
        out.append((route.main.eps, route.main.label,
                    None if c is None else (c.eps, c.label)))
    return out


class CountingRouter(Router):
    """A Router that counts its full builds (an update without one took the incremental
    path)."""

    builds = 0

    def _build(self, *args: Any, **kw: Any) -> Any:
        self.builds += 1
        return super()._build(*args, **kw)


#: Where the histories start (then the drawn objects): every Service with ready endpoints, so
#: that most changes change what some route holds.
BASE = tuple(("svc", n, 0) for n in SERVICES) + tuple(
    ("slice", f"s{i}", n, "IPv4", ((i, 0), (i + 1, 2)), 0, "default")
    for i, n in enumerate(SERVICES))


def decisions(r: Router) -> list[Any]:
    """Two requests to every route, as a proxy sees their Decisions."""
    out = []
    for m in r.table.routes:
        for _ in range(2):
            d = r.route("GET", m.host or "h0.test", m.path or "/")
            out.append(None if d is None else (d.service, d.port, d.endpoint, d.canary,
                                               d.set_cookie, d.backend))
    return out


def follow(ingresses: Sequence[tuple[object, ...]], start: Sequence[Spec], steps: Sequence[Any],
           files: bool, base: Sequence[Spec] = BASE) -> int:
    """Apply ``steps`` one update at a time, checking the followed Router against one built
    afresh after each (endpoints, labels, warnings) and against one that rebuilds on every
    update with the state carried over (decisions); return how many updates took the
    incremental path."""
    feed = Feed(ingresses, files)
    for spec in (*base, *start):
        feed.step(("put", spec))
    r = CountingRouter(feed.resources(), seed=3)
    ref = Router(feed.resources(), seed=3)
    ref._incremental = False
    incremental = 0
    for op in steps:
        feed.step(op)
        res = feed.resources()
        table, builds = r.table, r.builds
        same_ingresses = res.ingresses is r.resources.ingresses
        r.update(res)
        ref.update(res)
        assert decisions(r) == decisions(ref), op
        if same_ingresses:
            assert r.table is table  # Services and endpoints only: the table is kept
            incremental += r.builds == builds
        fresh = Router(res, seed=3)
        assert r.warnings == fresh.warnings, op
        assert backends(r) == backends(fresh), op
    return incremental


@given(ingress_sets, st.lists(object_specs, max_size=8),
       st.lists(store_steps, min_size=1, max_size=10))
def test_store_histories_follow_as_a_fresh_build(ingresses: Sequence[tuple[object, ...]],
                                                 start: list[Spec], steps: list[Any]) -> None:
    follow(ingresses, start, steps, files=False)


@given(ingress_sets, st.lists(object_specs, max_size=8),
       st.lists(file_steps, min_size=1, max_size=10))
def test_file_histories_follow_as_a_fresh_build(ingresses: Sequence[tuple[object, ...]],
                                                start: list[Spec], steps: list[Any]) -> None:
    follow(ingresses, start, steps, files=True)


# --- targeted histories (each also checks the incremental path was taken) -----------------------

ING = (ingress("web", [("h.test", "/a", "Prefix", "a", "http"),
                       ("h.test", "/b", "Prefix", "b", "http"),
                       ("h.test", "/c", "Prefix", "c", 80)]),)
SVC_A, SVC_B, SVC_C = (("svc", n, 0) for n in SERVICES)


def sl(name: str, label: str | None, *eps: tuple[int, int], ports: int = 0,
       atype: str = "IPv4") -> SliceSpec:
    return ("slice", name, label, atype, tuple(eps), ports, "default")


def test_a_slice_relabelled_to_another_service_and_back() -> None:
    steps = [("put", sl("s0", "b", (0, 0), (1, 0))),   # a -> b
             ("put", sl("s0", None, (0, 0), (1, 0))),  # label dropped
             ("put", sl("s0", "a", (2, 0))),           # back to a
             ("put", sl("s0", "c", (2, 0), ports=2))]  # to c (unnamed port)
    assert follow([ING], [SVC_A, SVC_B, SVC_C, sl("s0", "a", (0, 0), (1, 0))], steps,
                  files=False, base=()) == len(steps)


def test_a_service_deleted_and_added_back_and_decoded_anew() -> None:
    # Decoded anew is no change (equal objects): the groups keep the first copy, which the
    # next change of that object must still remove (by equality, not identity).
    start = [SVC_A, SVC_B, sl("s0", "a", (0, 0)), sl("s1", "b", (1, 2))]
    s0 = ("slice", "default", "s0")
    steps = [("del", ("svc", "a")), ("put", SVC_A), ("anew", ("svc", "a")), ("anew", s0),
             ("put", sl("s0", "a", (1, 0))), ("anew", ("svc", "b")), ("del", ("svc", "b")),
             ("put", ("svc", "a", 6)), ("put", ("svc", "a", 4)), ("put", SVC_A)]
    assert follow([ING], start, steps, files=False, base=()) == len(steps)


def test_twins_decide_by_resources_order_not_by_group_order() -> None:
    # Service b given twice (files): the later definition counts. Editing the earlier one
    # puts the new copy last in its per-Service group but not in the Resources, so a later
    # change of b's slice must not resolve b from the group (whose last is the wrong twin):
    # ServiceObjects.index declines, the Router rebuilds.
    start = [SVC_A, ("svc", "b", 2), sl("s1", "b", (1, 0))]
    steps = [("twin", ("svc", "b", 0)), ("first", ("svc", "b", 8)),
             ("put", sl("s1", "b", (2, 0))), ("last", 1),
             ("put", sl("s1", "b", (3, 0))), ("del", ("svc", "b")),
             ("put", sl("s1", "b", (0, 0)))]
    follow([ING], start, steps, files=True, base=())


def test_conditions_address_types_and_v1_endpoints_as_updates() -> None:
    start = [SVC_A, SVC_B, ("ep", "a", (0, 1), (2,), 0), sl("s1", "b", (0, 3), (1, 4))]
    steps = [("put", sl("s0", "a", (3, 2), atype="IPv6")),   # slices now win over v1
             ("put", sl("s2", "a", (0, 0), (1, 0), atype="FQDN")),
             ("put", sl("s2", "a", (2, 0), (3, 0), atype="FQDN")),  # refused: warnings
             # Back to v1 Endpoints:
             ("del", ("slice", "default", "s0")), ("del", ("slice", "default", "s2")),
             ("put", ("ep", "a", (3,), (), 2))]
    assert follow([ING], start, steps, files=False, base=()) == len(steps)


# --- EndpointIndex answers the review checked against ingress-nginx / kube-proxy ----------------


def _resolve(*objs: object, port: int | str = "http", upstream: bool = False) -> Any:
    return EndpointIndex(resources(*objs)).resolve("default", "web", port, upstream)


def _slice(name: str, ips: Sequence[str], ports: Sequence[tuple[str | None, int | None]],
           ns: str = "default", atype: str = "IPv4") -> EndpointSlice:
    return EndpointSlice(meta(name, ns, labels={"kubernetes.io/service-name": "web"}), atype,
                         tuple(Endpoint((ip,)) for ip in ips),
                         tuple(EndpointPort(port=p, name=n) for n, p in ports))


def test_a_named_target_port_keeps_each_pods_own_number() -> None:
    # The EndpointSlice controller groups endpoints by port number: pods naming "web"
    # differently sit in different slices; each keeps its number (ingress-nginx appends
    # hostPort per slice's ports), one address at two numbers is two endpoints.
    got = _resolve(service("web", [ServicePort(80, "http", "web")]),
                   _slice("w1", ["10.0.0.1", "10.0.0.2"], [("http", 8080)]),
                   _slice("w2", ["10.0.0.3", "10.0.0.1"], [("http", 9090)]))
    assert got.endpoints == (("10.0.0.1", 8080), ("10.0.0.1", 9090), ("10.0.0.2", 8080),
                             ("10.0.0.3", 9090))
    assert got.port == 8080  # what Decision.port shows: the first endpoint's


def test_slices_of_another_namespace_and_dual_stack() -> None:
    # The label names a Service of the slice's own namespace; IPv4 and IPv6 slices of one
    # Service are both used (ingress-nginx does not look at addressType either).
    got = _resolve(service("web", [ServicePort(80, "http", 8080)]),
                   _slice("w1", ["10.0.0.1"], [("http", 8080)], ns="other"),
                   _slice("w4", ["10.0.0.2"], [("http", 8080)]),
                   _slice("w6", ["FD00::2"], [("http", 8080)], atype="IPv6"))
    assert got.endpoints == (("10.0.0.2", 8080), ("fd00::2", 8080))


def test_slices_without_a_ready_endpoint_still_beat_v1_endpoints() -> None:
    # ingress-nginx reads EndpointSlices only (getEndpointsFromSlices); v1 Endpoints stand in
    # for slices only where none exists (local manifests), never for slices that say "none".
    not_ready = EndpointSlice(meta("w1", labels={"kubernetes.io/service-name": "web"}), "IPv4",
                              (Endpoint(("10.0.0.1",), EndpointConditions(ready=False)),),
                              (EndpointPort(port=8080, name="http"),))
    got = _resolve(service("web", [ServicePort(80, "http", 8080)]), not_ready,
                   endpoints_v1("web", ["10.0.1.1"], ports=[("http", 8080)]))
    assert got.endpoints == () and got.reason == (
        "Service default/web has no ready endpoint: 1 endpoint, not ready")


def test_a_slice_port_without_number_gives_no_endpoint() -> None:
    # EndpointPort.port nil means "all ports" in the API; kube-proxy skips such a port
    # (endpointslicecache.go: "TODO: handle nil ports to mean "all"" ... "ignoring invalid
    # endpoint port"), and so does ingresslib; an empty ports list is another thing (the
    # numeric targetPort, as ingress-nginx).
    svc = service("web", [ServicePort(80, "http", 8080)])
    assert _resolve(svc, _slice("w1", ["10.0.0.1"], [("http", None)])).endpoints == ()
    assert _resolve(svc, _slice("w1", ["10.0.0.1"], [])).endpoints == (("10.0.0.1", 8080),)


def test_service_upstream_on_headless_clusterip_and_externalname() -> None:
    sl = _slice("w1", ["10.0.0.1"], [("http", 8080)])
    ports = [ServicePort(80, "http", 8080)]
    # ingress-nginx getServiceClusterEndpoint: "if svc.Spec.ClusterIP == "" ||
    # svc.Spec.ClusterIP == "None" { return ..., fmt.Errorf("no ClusterIP found ...") }", and
    # the caller then fills the upstream from serviceEndpoints: the pods.
    assert _resolve(service("web", ports, cluster_ip="None"), sl,
                    upstream=True).endpoints == (("10.0.0.1", 8080),)
    assert _resolve(service("web", ports, cluster_ip="10.96.0.7"), sl,
                    upstream=True).endpoints == (("10.96.0.7", 80),)
    ext = service("web", ports, type="ExternalName", external_name="ext.example.test",
                  cluster_ip=None)
    assert _resolve(ext, sl, upstream=True).endpoints == (("ext.example.test", 8080),)
