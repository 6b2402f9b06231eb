"""The stateful side as an embedding user meets it: a ResourceStore fed events, the RouteTable
rebuilt from its snapshots, and the same table built from scratch from the same objects.

The central property (``StoreVersusScratch``): after any sequence of adds, updates (valid or
not), deletes (of known keys or not) and re-lists, the table built from ``store.snapshot()``
equals the table built from the surviving objects given in any order, and equals the one built
from every version applied since the last delete (later definitions win). "Equals" means the
same Match (ingress, rule, backend, route id, canary) for every probe request, the same
diagnostics in the same order, and the same served Ingresses.
"""

from __future__ import annotations

import copy
import dataclasses
import random
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from ingresslib._errors import ValidationError
from ingresslib._resources import Resources
from ingresslib._store import ResourceStore
from ingresslib._table import Diagnostic, Match, RouteTable

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
DEFAULT_CLASS = "ingressclass.kubernetes.io/is-default-class"
LEGACY_CLASS = "kubernetes.io/ingress.class"
CANARY = "nginx.ingress.kubernetes.io/canary"


def ingress(name: str, ns: str = "default", *, host: str | None = "a.example", path: str = "/x",
            path_type: str = "Prefix", service: str | None = None, cls: str | None = None,
            legacy: str | None = None, default: str | None = None, canary: bool = False,
            created: datetime | None = None, valid: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    ann = {}
    if legacy is not None:
        ann[LEGACY_CLASS] = legacy
    if canary:
        ann[CANARY] = "true"
    if ann:
        meta["annotations"] = ann
    if created is not None:
        meta["creationTimestamp"] = created.strftime("%Y-%m-%dT%H:%M:%SZ")
    rule: dict[str, Any] = {"http": {"paths": [
        {"path": path if valid else "relative", "pathType": path_type,
         "backend": {"service": {"name": service or f"{name}-svc", "port": {"number": 80}}}}]}}
    if host is not None:
        rule["host"] = host
    spec: dict[str, Any] = {"rules": [rule]}
    if cls is not None:
        spec["ingressClassName"] = cls
    if default is not None:
        spec["defaultBackend"] = {"service": {"name": default, "port": {"number": 80}}}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": spec}


def ingress_class(name: str, controller: str = "example.com/a", *, default: bool = False,
                  valid: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if default:
        meta["annotations"] = {DEFAULT_CLASS: "true"}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": meta,
            "spec": {"controller": controller} if valid else {}}


def service(name: str, ns: str = "default", port: int = 80) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"ports": [{"port": port, "targetPort": 8080}]}}


def slice_(service_name: str, ns: str = "default", ip: str = "10.0.0.1") -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{service_name}-1", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": "IPv4", "endpoints": [{"addresses": [ip], "conditions": {"ready": True}}],
            "ports": [{"port": 8080}]}


PROBE_HOSTS = ["a.example", "A.Example:8080", "b.example", "c.example"]
PROBE_PATHS = ["/", "/x", "/x/", "/x/y", "/x/yz", "/xy", "/z"]
FILTERS = [(None, None), ("nginx", None), (None, "example.com/a"), ("other", "example.com/b")]


def _proj(m: Match | None) -> tuple[Any, ...] | None:
    if m is None:
        return None
    return (m.ingress, m.host, m.path, m.path_type, m.service, m.port, m.is_default_backend,
            m.route_id, None if m.canary is None else (m.canary.ingress, m.canary.service))


def table_view(t: RouteTable) -> tuple[Any, ...]:
    """Everything a user can observe of a table, as comparable values."""
    return (
        tuple(_proj(t.match(h, p)) for h in PROBE_HOSTS for p in PROBE_PATHS),
        t.diagnostics,
        tuple(i.metadata.ref for i in t.served),
        tuple(_proj(r) for r in t.routes),
    )


def view(res: Resources, ingress_class: str | None, controller: str | None) -> tuple[Any, ...]:
    return table_view(RouteTable.build(res, ingress_class, controller))


# --- defects found in review (each test failed before its fix) ---------------------------------


def test_unserved_notes_do_not_depend_on_input_order() -> None:
    # A store snapshot lists objects in key order, manifests in file order: the table (and its
    # diagnostics) must be the same. The "not served" notes followed the input order.
    objs = [ingress("c", cls="zz"), ingress("b", cls="nginx"), ingress("a", cls="y"),
            ingress_class("nginx")]
    forward = RouteTable.build(Resources.from_dicts(objs), "nginx")
    backward = RouteTable.build(Resources.from_dicts(objs[::-1]), "nginx")
    assert forward.diagnostics == backward.diagnostics
    assert [d.object for d in forward.diagnostics] == ["Ingress default/a", "Ingress default/c"]


def test_an_ingress_given_twice_counts_once_the_later_definition_winning() -> None:
    # Two files defining default/web (e.g. `-f deploy/ -f deploy/web.yaml` with an edit in one):
    # both versions used to be served, merged into one host group, and an identical rule was
    # reported "shadowed by" itself.
    old, new = ingress("web", path="/old"), ingress("web", path="/new")
    t = RouteTable.build(Resources.from_dicts([old, new]))
    assert t.match("a.example", "/old") is None
    m = t.match("a.example", "/new")
    assert m is not None and m.ingress == "default/web"
    assert [str(d) for d in t.diagnostics] == [
        "warning: Ingress default/web: defined 2 times; the last definition is used"]
    # The store, fed both as events, holds the same.
    store = ResourceStore()
    store.apply("ADDED", old)
    store.apply("MODIFIED", new)
    assert view(store.snapshot(), None, None)[0] == table_view(t)[0]
    same = RouteTable.build(Resources.from_dicts([new, copy.deepcopy(new)]))
    assert not any("shadowed" in d.message for d in same.diagnostics)


def test_an_ingress_class_given_twice_counts_once_the_later_definition_winning() -> None:
    # The later definition of class "nginx" belongs to another controller: the earlier one,
    # which matched the filter, must not keep serving the Ingresses naming it.
    objs = [ingress("web", cls="nginx"), ingress_class("nginx", "example.com/a"),
            ingress_class("nginx", "example.com/b")]
    t = RouteTable.build(Resources.from_dicts(objs), controller="example.com/a")
    assert t.match("a.example", "/x") is None
    assert "warning: IngressClass nginx: defined 2 times; the last definition is used" in map(str, t.diagnostics)
    t = RouteTable.build(Resources.from_dicts(objs), controller="example.com/b")
    assert t.match("a.example", "/x") is not None


def test_naive_and_aware_timestamps_do_not_break_the_build() -> None:
    # The decoder reads a naive timestamp as UTC; a model built by hand may carry one, and
    # sorting it with aware ones raised TypeError out of RouteTable.build.
    res = Resources.from_dicts([ingress("a", created=T0), ingress("b")])
    a, b = res.ingresses
    b = dataclasses.replace(b, metadata=dataclasses.replace(
        b.metadata, creation_timestamp=datetime(2023, 1, 1)))  # naive, older than a
    t = RouteTable.build(Resources(ingresses=(a, b)))
    m = t.match("a.example", "/x")
    assert m is not None and m.ingress == "default/b"  # oldest wins, naive read as UTC


def test_resources_built_from_lists_are_read_only_copies() -> None:
    # CONTRACT: `.ingresses` etc. are read-only sequences. A Resources built by hand from a list
    # kept that very list: appending to it afterwards changed the Resources.
    ings = list(Resources.from_dicts([ingress("a")]).ingresses)
    res = Resources(ingresses=ings)  # type: ignore[arg-type]
    ings.append(Resources.from_dicts([ingress("b", path="/z")]).ingresses[0])
    assert isinstance(res.ingresses, tuple) and len(res.ingresses) == 1
    assert res == Resources(ingresses=tuple(ings[:1]))
    assert RouteTable.build(res).match("a.example", "/z") is None


def test_store_ignored_kind_is_isolated_from_the_callers_object() -> None:
    # Other kinds are kept as dicts. The store copied only the top level, so a client updating
    # its object in place and applying it again had already changed the stored copy: the store
    # saw "no change" and `generation` did not move.
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"k": "1"}}
    store = ResourceStore()
    store.apply("ADDED", cm)
    gen = store.generation
    cm["data"]["k"] = "2"
    assert store.snapshot().ignored[0]["data"] == {"k": "1"}
    store.apply("MODIFIED", cm)
    assert store.generation == gen + 1
    assert store.snapshot().ignored[0]["data"] == {"k": "2"}


# --- behaviour checked in review (held before; kept as regression tests) -------------------------


def test_default_class_changes_reach_ingresses_without_a_class() -> None:
    store = ResourceStore()
    store.apply("ADDED", ingress("web"))  # names no class
    store.apply("ADDED", ingress_class("nginx"))

    def served() -> bool:
        return RouteTable.build(store.snapshot(), "nginx").match("a.example", "/x") is not None

    assert not served()
    store.apply("MODIFIED", ingress_class("nginx", default=True))
    assert served()
    # Two defaults (the admission plugin then refuses new class-less Ingresses; existing ones
    # stay): a matching default still serves them.
    store.apply("ADDED", ingress_class("other", "example.com/b", default=True))
    assert served()
    # The default moved to another class: no longer ours.
    store.apply("MODIFIED", ingress_class("nginx"))
    assert not served()
    t = RouteTable.build(store.snapshot(), "nginx")
    assert [str(d) for d in t.diagnostics] == [
        "info: Ingress default/web: spec.ingressClassName: names no class and no matching "
        "IngressClass is the default; not served"]
    # Deleted and re-added as default: served again; the note is not repeated on rebuild.
    store.apply("DELETED", ingress_class("nginx"))
    store.apply("ADDED", ingress_class("nginx", default=True))
    t = RouteTable.build(store.snapshot(), "nginx")
    assert t.match("a.example", "/x") is not None and t.diagnostics == ()


def test_legacy_annotation_names_the_class() -> None:
    res = Resources.from_dicts([ingress("web", legacy="nginx"), ingress_class("nginx")])
    assert RouteTable.build(res, "nginx").match("a.example", "/x") is not None
    assert RouteTable.build(res, "other").match("a.example", "/x") is None
    # The class deleted under it: not served (a named class that does not exist).
    res = Resources.from_dicts([ingress("web", legacy="nginx")])
    assert RouteTable.build(res, "nginx").match("a.example", "/x") is None


def test_invalid_update_keeps_the_store_and_names_the_object() -> None:
    store = ResourceStore()
    store.apply("ADDED", ingress("web", ns="shop"))
    snap, gen = store.snapshot(), store.generation
    store.apply("MODIFIED", ingress("web", ns="shop", valid=False))
    assert store.snapshot() is snap and store.generation == gen
    err = store.errors[("networking.k8s.io/v1/Ingress", "shop", "web")]
    assert isinstance(err, ValidationError)
    assert "Ingress shop/web: spec.rules[0].http.paths[0].path" in str(err)
    # The same name in another namespace is another object, untouched by the error.
    store.apply("ADDED", ingress("web", ns="other", path="/z"))
    assert len(store.errors) == 1 and len(store.snapshot().ingresses) == 2


def test_shadow_diagnostics_name_both_objects_and_are_stable() -> None:
    objs = [ingress("new", created=T0 + timedelta(days=1)), ingress("old", created=T0),
            ingress("other", ns="b", created=T0 + timedelta(days=1))]
    res = Resources.from_dicts(objs)
    first = RouteTable.build(res)
    assert [str(d) for d in first.diagnostics] == [
        "warning: Ingress b/other: spec.rules[0].http.paths[0]: Prefix '/x' on host a.example is "
        "shadowed by Ingress default/old spec.rules[0].http.paths[0] and never matches",
        "warning: Ingress default/new: spec.rules[0].http.paths[0]: Prefix '/x' on host a.example is "
        "shadowed by Ingress default/old spec.rules[0].http.paths[0] and never matches",
    ]
    for order in (objs[::-1], objs[1:] + objs[:1]):
        assert RouteTable.build(Resources.from_dicts(order)).diagnostics == first.diagnostics
    assert RouteTable.build(res).diagnostics == first.diagnostics  # no accumulation


def test_service_and_slice_deleted_under_a_live_route() -> None:
    from ingresslib import Router

    store = ResourceStore()
    for obj in (ingress("web", service="api"), service("api"), slice_("api")):
        store.apply("ADDED", obj)
    router = Router(store.snapshot())
    d = router.route("GET", "a.example", "/x")
    assert d is not None and d.endpoint == ("10.0.0.1", 8080)
    store.apply("DELETED", slice_("api"))
    router.update(store.snapshot())
    d = router.route("GET", "a.example", "/x")
    assert d is not None and d.endpoint is None  # 503, the route stays
    store.apply("DELETED", service("api"))
    router.update(store.snapshot())
    d = router.route("GET", "a.example", "/x")
    assert d is not None and d.endpoint is None
    store.apply("ADDED", service("api"))
    store.apply("ADDED", slice_("api", ip="10.0.0.9"))
    router.update(store.snapshot())
    d = router.route("GET", "a.example", "/x")
    assert d is not None and d.endpoint == ("10.0.0.9", 8080)


def test_returned_collections_are_read_only() -> None:
    store = ResourceStore()
    store.apply("ADDED", ingress("web"))
    store.apply("ADDED", ingress("bad", valid=False))
    snap = store.snapshot()
    t = RouteTable.build(snap)
    for seq in (snap.ingresses, t.routes, t.diagnostics, t.served, t.hosts):
        assert isinstance(seq, tuple)
    with pytest.raises(TypeError):
        store.errors[("x", "y", "z")] = ValidationError([])  # type: ignore[index]
    with pytest.raises(TypeError):
        t.served[0].metadata.annotations["x"] = "y"  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.routes[0].service = "other"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.ingresses = ()  # type: ignore[misc]
    keys = store.keys()
    keys.clear()
    assert len(store.keys()) == 1


def test_readers_match_while_a_writer_updates_the_store() -> None:
    # A reader thread calls match on the published table while another thread applies events,
    # rebuilds and publishes: every answer must be one some published table gives.
    store = ResourceStore()
    store.apply("ADDED", ingress("web", path="/x", service="v0"))
    published = [RouteTable.build(store.snapshot())]
    errors: list[BaseException] = []
    stop = threading.Event()

    def reader() -> None:
        try:
            while not stop.is_set():
                m = published[-1].match("a.example", "/x/y")
                assert m is not None and m.service is not None and m.service.startswith("v")
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for th in threads:
        th.start()
    try:
        for i in range(1, 60):
            store.apply("MODIFIED", ingress("web", path="/x", service=f"v{i}"))
            store.apply("ADDED", ingress(f"n{i % 5}", path=f"/n{i}"))
            published.append(RouteTable.build(store.snapshot()))
    finally:
        stop.set()
        for th in threads:
            th.join()
    assert errors == []
    final = published[-1].match("a.example", "/x/y")
    assert final is not None and final.service == "v59"


# --- the store against from-scratch builds (stateful) --------------------------------------------

ING_KEYS = [(ns, n) for ns in ("ns1", "ns2") for n in ("a", "b", "c")]
CLASS_NAMES = ["nginx", "other"]

ingress_variants = st.builds(
    lambda host, path, ptype, cls, default, canary, created, svc: dict(
        host=host, path=path, path_type=ptype, cls=cls, default=default, canary=canary,
        created=created, service=svc),
    st.sampled_from(["a.example", "b.example", None]),
    st.sampled_from(["/", "/x", "/x/", "/x/y"]),
    st.sampled_from(["Prefix", "Exact", "ImplementationSpecific"]),
    st.sampled_from([None, ("spec", "nginx"), ("spec", "other"), ("legacy", "nginx"), ("spec", "gone")]),
    st.sampled_from([None, "d1", "d2"]),
    st.booleans(),
    st.sampled_from([None, T0, T0 + timedelta(days=1)]),
    st.sampled_from(["s1", "s2"]),
)


def _ingress_from(ns: str, name: str, v: dict[str, Any], valid: bool = True) -> dict[str, Any]:
    cls = v["cls"]
    kw: dict[str, Any] = {}
    if cls is not None:
        kw["cls" if cls[0] == "spec" else "legacy"] = cls[1]
    return ingress(name, ns, host=v["host"], path=v["path"], path_type=v["path_type"],
                   default=v["default"], canary=v["canary"], created=v["created"], service=v["service"],
                   valid=valid, **kw)


class StoreVersusScratch(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.store = ResourceStore()
        #: key -> the object the store should hold now (its last valid version).
        self.model: dict[tuple[str, str, str], dict[str, Any]] = {}
        #: key -> every valid version applied since the key's last delete, in order.
        self.history: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        self.invalid: set[tuple[str, str, str]] = set()
        self.rnd = random.Random(0)

    def _put(self, key: tuple[str, str, str], obj: dict[str, Any], event: str) -> None:
        self.store.apply(event, obj)
        self.model[key] = obj
        self.history.setdefault(key, []).append(obj)
        self.invalid.discard(key)

    @rule(key=st.sampled_from(ING_KEYS), v=ingress_variants, added=st.booleans())
    def put_ingress(self, key: tuple[str, str], v: dict[str, Any], added: bool) -> None:
        self._put(("Ingress",) + key, _ingress_from(*key, v), "ADDED" if added else "MODIFIED")

    @rule(name=st.sampled_from(CLASS_NAMES), controller=st.sampled_from(["example.com/a", "example.com/b"]),
          default=st.booleans())
    def put_class(self, name: str, controller: str, default: bool) -> None:
        self._put(("IngressClass", "", name), ingress_class(name, controller, default=default), "MODIFIED")

    @rule(key=st.sampled_from(ING_KEYS), v=ingress_variants)
    def put_invalid_ingress(self, key: tuple[str, str], v: dict[str, Any]) -> None:
        snap, gen = self.store.snapshot(), self.store.generation
        self.store.apply("MODIFIED", _ingress_from(*key, v, valid=False))
        # "an invalid update keeps the last good table and reports why"
        assert self.store.snapshot() is snap and self.store.generation == gen
        err = self.store.errors[("networking.k8s.io/v1/Ingress", *key)]
        assert f"Ingress {key[0]}/{key[1]}: " in str(err)
        self.invalid.add(("Ingress",) + key)

    @rule(name=st.sampled_from(CLASS_NAMES))
    def put_invalid_class(self, name: str) -> None:
        snap = self.store.snapshot()
        self.store.apply("MODIFIED", ingress_class(name, valid=False))
        assert self.store.snapshot() is snap
        assert f"IngressClass {name}: spec.controller" in str(
            self.store.errors[("networking.k8s.io/v1/IngressClass", "", name)])
        self.invalid.add(("IngressClass", "", name))

    @rule(key=st.sampled_from(ING_KEYS))
    def delete_ingress(self, key: tuple[str, str]) -> None:
        # Also for keys never added (a DELETED racing a re-list): harmless.
        self.store.apply("DELETED", ingress(key[1], key[0]))
        for d in (self.model, self.history):
            d.pop(("Ingress",) + key, None)
        self.invalid.discard(("Ingress",) + key)

    @rule(name=st.sampled_from(CLASS_NAMES))
    def delete_class(self, name: str) -> None:
        self.store.apply("DELETED", ingress_class(name))
        for d in (self.model, self.history):
            d.pop(("IngressClass", "", name), None)
        self.invalid.discard(("IngressClass", "", name))

    @rule(keep=st.lists(st.sampled_from(ING_KEYS), unique=True), v=ingress_variants,
          fresh=st.lists(st.sampled_from(ING_KEYS), unique=True, max_size=2))
    def relist_ingresses(self, keep: list[tuple[str, str]], v: dict[str, Any],
                         fresh: list[tuple[str, str]]) -> None:
        """A re-list after 410 Gone: the listed Ingresses are the whole truth about the kind."""
        items: dict[tuple[str, str, str], dict[str, Any]] = {}
        for key in keep:
            k = ("Ingress",) + key
            if k in self.model:
                items[k] = self.model[k]
        for key in fresh:
            items[("Ingress",) + key] = _ingress_from(*key, v)
        # List items come without kind/apiVersion.
        bare = [{k: val for k, val in o.items() if k not in ("kind", "apiVersion")} for o in items.values()]
        self.store.replace_all("Ingress", bare)
        for k in [k for k in self.model if k[0] == "Ingress" and k not in items]:
            del self.model[k]
            self.history.pop(k, None)
        for k, o in items.items():
            if self.model.get(k) is not o:
                self.model[k] = o
                self.history.setdefault(k, []).append(o)
        self.invalid = {k for k in self.invalid if k[0] != "Ingress"}

    @invariant()
    def store_equals_scratch(self) -> None:
        snap = self.store.snapshot()
        assert {(k[0].rpartition("/")[2], k[1], k[2]) for k in self.store.errors} == self.invalid
        objs = list(self.model.values())
        self.rnd.shuffle(objs)
        scratch = Resources.from_dicts(objs)
        # Every version applied since the last delete, in order: later definitions win.
        replay = Resources.from_dicts([o for k in sorted(self.history) for o in self.history[k]])
        for ingress_class_, controller in FILTERS:
            want = view(snap, ingress_class_, controller)
            assert view(scratch, ingress_class_, controller) == want
            got = view(replay, ingress_class_, controller)
            # The replay's duplicates add their own "defined N times" warnings; all else equal.
            assert got[0] == want[0] and got[2:] == want[2:]
            assert tuple(d for d in got[1] if "defined" not in d.message) == want[1]


StoreVersusScratch.TestCase.settings = settings(stateful_step_count=15)
TestStoreVersusScratch = StoreVersusScratch.TestCase


@given(st.lists(st.tuples(st.sampled_from(ING_KEYS), ingress_variants), max_size=8),
       st.lists(st.tuples(st.sampled_from(CLASS_NAMES), st.booleans()), max_size=3), st.randoms())
def test_table_does_not_depend_on_object_order(ings: list[Any], classes: list[Any], rnd: random.Random) -> None:
    objs = [_ingress_from(ns, name, v) for (ns, name), v in ings]
    objs += [ingress_class(name, default=d) for name, d in classes]
    # Keep the last definition of each object, as the table does, then permute.
    unique = list({(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objs}.values())
    shuffled = unique[:]
    rnd.shuffle(shuffled)
    for f in FILTERS:
        assert view(Resources.from_dicts(shuffled), *f) == view(Resources.from_dicts(unique), *f)


def test_diagnostic_type_is_frozen() -> None:
    d = Diagnostic("Ingress a/b", "", "m")
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.message = "x"  # type: ignore[misc]


def test_an_unused_default_backend_names_the_ingress_that_shadows_it() -> None:
    # Like a shadowed rule, a default backend that never serves names what serves instead; the
    # message said only "an older Ingress's default backend".
    objs = [ingress("old", host="b.example", default="d-old", created=T0),
            ingress("mid", host="a.example", default="d-mid", created=T0 + timedelta(days=1)),
            ingress("new", host="a.example", path="/y", default="d-new", created=T0 + timedelta(days=2)),
            ingress("bare", default="d-bare", created=T0 + timedelta(days=3))]
    del objs[-1]["spec"]["rules"]  # a default backend and nothing else
    t = RouteTable.build(Resources.from_dicts(objs))
    unused = [(d.object, d.message) for d in t.diagnostics if d.field == "spec.defaultBackend"]
    assert unused == [
        ("Ingress default/new", "never used: the default backends of the older Ingresses default/mid, "
                                "default/old serve every host it could"),
        ("Ingress default/bare", "never used: the default backend of the older Ingress default/old "
                                 "serves every host it could"),
    ]
    m = t.match("a.example", "/nothing")
    assert m is not None and m.service == "d-mid"
    m = t.match("c.example", "/nothing")
    assert m is not None and m.service == "d-old"
