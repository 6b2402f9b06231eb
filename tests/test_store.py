"""ResourceStore: events from any client converge; invalid objects never reach the snapshot."""

from __future__ import annotations

import base64
import random
import threading
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ingresslib._resources import Resources
from ingresslib._store import ResourceStore

KINDS = ("Ingress", "IngressClass", "Service", "EndpointSlice", "Secret")
_B64 = base64.b64encode(b"x").decode()


def make(kind: str, ns: str, name: str, variant: int = 0, *, valid: bool = True) -> dict[str, Any]:
    """A valid object of ``kind`` whose content depends on ``variant``; or an invalid one."""
    meta = {"name": name, "namespace": ns, "resourceVersion": str(variant)}
    port = 80 + variant if valid else 0
    if kind == "Ingress":
        path = f"/v{variant}" if valid else "relative"
        return {"apiVersion": "networking.k8s.io/v1", "kind": kind, "metadata": meta, "spec": {
            "rules": [{"host": "a.example", "http": {"paths": [
                {"path": path, "pathType": "Prefix",
                 "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}
    if kind == "IngressClass":
        del meta["namespace"]
        spec = {"controller": f"example.com/c{variant}"} if valid else {}
        return {"apiVersion": "networking.k8s.io/v1", "kind": kind, "metadata": meta, "spec": spec}
    if kind == "Service":
        return {"apiVersion": "v1", "kind": kind, "metadata": meta,
                "spec": {"ports": [{"port": port}]}}
    if kind == "EndpointSlice":
        meta["labels"] = {"kubernetes.io/service-name": "web"}
        addrs = [f"10.0.0.{variant + 1}"] if valid else []
        return {"apiVersion": "discovery.k8s.io/v1", "kind": kind, "metadata": meta,
                "addressType": "IPv4", "endpoints": [{"addresses": addrs}],
                "ports": [{"port": 8080}]}
    assert kind == "Secret"
    data = {"tls.crt": _B64, "tls.key": _B64} if valid else {}
    meta["annotations"] = {"v": str(variant)}
    return {"apiVersion": "v1", "kind": kind, "metadata": meta, "type": "kubernetes.io/tls",
            "data": data}


def svc(name: str, port: int = 80, ns: str = "default", **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns, **meta}, "spec": {"ports": [{"port": port}]}}


# -- basics ---------------------------------------------------------------------------------------


def test_added_modified_deleted() -> None:
    store = ResourceStore()
    store.apply("ADDED", svc("web", 80))
    store.apply("MODIFIED", svc("web", 81))
    assert [s.spec.ports[0].port for s in store.snapshot().services] == [81]
    store.apply("DELETED", svc("web", 81))
    assert store.snapshot().services == ()
    # Deleting an unknown key is harmless (a DELETED can race a re-list).
    gen = store.generation
    store.apply("DELETED", svc("ghost"))
    assert store.generation == gen


def test_bookmark_changes_nothing() -> None:
    store = ResourceStore()
    store.apply("ADDED", svc("web"))
    gen, snap = store.generation, store.snapshot()
    store.apply("BOOKMARK", {"kind": "Service", "apiVersion": "v1",
                             "metadata": {"resourceVersion": "999"}})
    assert store.generation == gen
    assert store.snapshot() is snap


def test_identical_modified_is_not_a_change() -> None:
    store = ResourceStore()
    store.apply("ADDED", svc("web"))
    gen = store.generation
    store.apply("MODIFIED", svc("web"))
    assert store.generation == gen


def test_resource_version_is_not_compared() -> None:
    # "Clients must not assume resource versions are numeric or collatable": last applied wins.
    store = ResourceStore()
    store.apply("ADDED", svc("web", 80, resourceVersion="9"))
    store.apply("MODIFIED", svc("web", 81, resourceVersion="10"))
    store.apply("MODIFIED", svc("web", 82, resourceVersion="2"))
    assert store.snapshot().services[0].spec.ports[0].port == 82


def test_keys_and_default_namespace() -> None:
    store = ResourceStore()
    store.apply("ADDED", {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                          "spec": {"ports": [{"port": 80}]}})
    # The same object with its namespace spelled out is the same key.
    store.apply("MODIFIED", svc("web", 81))
    store.apply("ADDED", make("IngressClass", "", "nginx"))
    assert store.keys() == [("networking.k8s.io/v1/IngressClass", "", "nginx"),
                            ("v1/Service", "default", "web")]


def test_same_name_in_other_namespace_or_kind_is_another_key() -> None:
    store = ResourceStore()
    store.apply("ADDED", svc("web", ns="a"))
    store.apply("ADDED", svc("web", ns="b"))
    store.apply("ADDED", make("Secret", "a", "web"))
    assert len(store) == 3


def test_snapshot_is_sorted_and_cached() -> None:
    store = ResourceStore()
    for name in ("c", "a", "b"):
        store.apply("ADDED", svc(name))
    snap = store.snapshot()
    assert [s.metadata.name for s in snap.services] == ["a", "b", "c"]
    assert store.snapshot() is snap
    store.apply("DELETED", svc("b"))
    assert [s.metadata.name for s in store.snapshot().services] == ["a", "c"]


def test_other_kinds_are_kept_aside() -> None:
    store = ResourceStore()
    store.apply("ADDED", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                          "data": {"a": "b"}})
    snap = store.snapshot()
    assert len(snap.ignored) == 1 and snap.services == ()


# -- the official client's to_dict() ---------------------------------------------------------


def test_snake_case_to_dict_without_kind() -> None:
    # V1Ingress.to_dict() of a list item: snake_case, None for unset fields, no kind/api_version,
    # datetimes as datetime objects; annotation keys must survive untouched.
    obj = {
        "api_version": None, "kind": None,
        "metadata": {"name": "web", "namespace": "shop", "resource_version": "7",
                     "creation_timestamp": datetime(2026, 1, 1, tzinfo=timezone.utc),
                     "annotations": {"nginx.ingress.kubernetes.io/canary_weight": "1"},
                     "labels": None},
        "spec": {"ingress_class_name": "nginx", "default_backend": None, "tls": None,
                 "rules": [{"host": "a.example", "http": {"paths": [
                     {"path": "/api", "path_type": "Prefix",
                      "backend": {"resource": None, "service": {
                          "name": "api", "port": {"name": None, "number": 8080}}}}]}}]},
        "status": None,
    }
    store = ResourceStore()
    store.apply("ADDED", obj, kind="networking.k8s.io/v1/Ingress")
    (ing,) = store.snapshot().ingresses
    assert ing.metadata.ref == "shop/web"
    assert ing.spec.ingress_class_name == "nginx"
    assert ing.spec.rules[0].paths is not None
    assert ing.spec.rules[0].paths[0].path_type == "Prefix"
    assert dict(ing.metadata.annotations) == {"nginx.ingress.kubernetes.io/canary_weight": "1"}
    # The camelCase wire form of the same object is the same key.
    store.apply("DELETED", {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                            "metadata": {"name": "web", "namespace": "shop"}})
    assert len(store) == 0


def test_short_kind_names_and_kind_argument() -> None:
    store = ResourceStore()
    item = {"metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}
    store.apply("ADDED", item, kind="Service")
    assert store.keys() == [("v1/Service", "default", "web")]
    # A kind the store does not know needs its apiVersion.
    with pytest.raises(ValueError, match="apiVersion"):
        store.apply("ADDED", {"kind": "Widget", "metadata": {"name": "w"}})


# -- broken feeds ---------------------------------------------------------------------------------


@pytest.mark.parametrize("event_type, obj", [
    ("ERROR", svc("web")),
    ("SYNC", svc("web")),
    ("ADDED", ["not", "a", "mapping"]),
    ("ADDED", {"apiVersion": "v1", "kind": "Service", "metadata": {}}),
    ("ADDED", {"apiVersion": "v1", "kind": "Service", "metadata": "web"}),
    ("ADDED", {"apiVersion": "v1", "metadata": {"name": "web"}}),
])
def test_unkeyable_events_raise_value_error(event_type: str, obj: Any) -> None:
    store = ResourceStore()
    store.apply("ADDED", svc("web"))
    snap = store.snapshot()
    with pytest.raises(ValueError):
        store.apply(event_type, obj)
    assert store.snapshot() is snap


def test_invalid_object_keeps_last_valid_version() -> None:
    store = ResourceStore()
    store.apply("ADDED", svc("web", 80))
    store.apply("MODIFIED", svc("web", 0))
    assert store.snapshot().services[0].spec.ports[0].port == 80
    assert store.invalid_total == 1
    err = store.errors[("v1/Service", "default", "web")]
    assert "spec.ports[0].port" in str(err)
    # A later valid version clears the error.
    store.apply("MODIFIED", svc("web", 82))
    assert store.errors == {}
    assert store.snapshot().services[0].spec.ports[0].port == 82


def test_invalid_new_object_is_left_out_and_delete_clears_error() -> None:
    store = ResourceStore()
    store.apply("ADDED", svc("ok"))
    store.apply("ADDED", svc("bad", 0))
    assert [s.metadata.name for s in store.snapshot().services] == ["ok"]
    assert list(store.errors) == [("v1/Service", "default", "bad")]
    store.apply("DELETED", svc("bad", 0))
    assert store.errors == {}


def test_invalid_object_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    store = ResourceStore()
    with caplog.at_level("WARNING", logger="ingresslib.store"):
        store.apply("ADDED", svc("bad", 0))
    assert "Service default/bad" in caplog.text and "must be between 1 and 65535" in caplog.text


# -- replace_all ----------------------------------------------------------------------------------


def test_replace_all_drops_missing_keys_of_that_kind_only() -> None:
    store = ResourceStore()
    store.apply("ADDED", svc("a"))
    store.apply("ADDED", svc("b"))
    store.apply("ADDED", make("Secret", "default", "tls"))
    # List items come without kind/apiVersion.
    store.replace_all("Service", [{"metadata": {"name": "b"}, "spec": {"ports": [{"port": 81}]}}])
    snap = store.snapshot()
    assert [(s.metadata.name, s.spec.ports[0].port) for s in snap.services] == [("b", 81)]
    assert len(snap.secrets) == 1


def test_replace_all_in_one_namespace() -> None:
    store = ResourceStore()
    store.apply("ADDED", svc("a", ns="x"))
    store.apply("ADDED", svc("a", ns="y"))
    store.replace_all("v1/Service", [], namespace="x")
    assert store.keys() == [("v1/Service", "y", "a")]


def test_replace_all_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown kind"):
        ResourceStore().replace_all("Widget", [])


def test_replace_all_with_invalid_item_keeps_last_valid() -> None:
    store = ResourceStore()
    store.apply("ADDED", svc("a", 80))
    store.replace_all("Service", [svc("a", 0)])
    assert store.snapshot().services[0].spec.ports[0].port == 80
    assert store.invalid_total == 1


def test_replace_all_unkeyable_items_raise_or_are_reported() -> None:
    nameless = {"metadata": {"namespace": "default"}, "spec": {"ports": [{"port": 80}]}}
    store = ResourceStore()
    store.apply("ADDED", svc("gone"))
    with pytest.raises(ValueError, match="metadata.name"):
        store.replace_all("Service", [svc("a"), nameless])
    assert [s.metadata.name for s in store.snapshot().services] == ["gone"]  # untouched
    why: list[str] = []
    store.replace_all("Service", [svc("a"), nameless], unkeyable=why)
    assert [s.metadata.name for s in store.snapshot().services] == ["a"]
    assert len(why) == 1 and "metadata.name" in why[0]


def test_concurrent_writers_and_readers() -> None:
    # The official client's SharedInformer calls handlers from its own thread.
    store = ResourceStore()

    def writer(prefix: str) -> None:
        for i in range(200):
            store.apply("ADDED", svc(f"{prefix}{i}"))
            store.snapshot()

    threads = [threading.Thread(target=writer, args=(p,)) for p in "abc"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.snapshot().services) == 600


# -- convergence (hypothesis) ---------------------------------------------------------------------

# IngressClass is cluster-scoped: its namespace is not part of the key, so it gets only one.
_keys = st.tuples(st.sampled_from(KINDS), st.sampled_from(["a", "b"]),
                  st.sampled_from(["x", "y", "z"])).map(
    lambda k: (k[0], "a", k[2]) if k[0] == "IngressClass" else k)
#: ("put", variant) | ("bad", 0) | ("del", 0) | ("bookmark", 0)
_ops = st.tuples(st.sampled_from(["put", "put", "bad", "del", "bookmark"]),
                 st.integers(0, 3))


def _event(key: tuple[str, str, str], op: tuple[str, int]) -> tuple[str, dict[str, Any]]:
    kind, ns, name = key
    what, variant = op
    if what == "put":
        return ("ADDED" if variant % 2 else "MODIFIED"), make(kind, ns, name, variant)
    if what == "bad":
        return "MODIFIED", make(kind, ns, name, variant, valid=False)
    if what == "del":
        return "DELETED", make(kind, ns, name, variant)
    return "BOOKMARK", {"kind": kind, "metadata": {"resourceVersion": "1"}}


@st.composite
def _histories(draw: st.DrawFn) -> tuple[dict[Any, list[Any]], list[Any]]:
    """Per-key event sequences and one interleaving that keeps each key's own order."""
    keys = draw(st.lists(_keys, min_size=1, max_size=6, unique=True))
    per_key = {k: draw(st.lists(_ops, min_size=1, max_size=5)) for k in keys}
    slots = [k for k in keys for _ in per_key[k]]
    order = draw(st.permutations(slots))
    return per_key, order


def _apply_interleaved(per_key: dict[Any, list[Any]], order: list[Any]) -> ResourceStore:
    store = ResourceStore()
    cursor = {k: 0 for k in per_key}
    for k in order:
        store.apply(*_event(k, per_key[k][cursor[k]]))
        cursor[k] += 1
    return store


@given(_histories(), st.randoms())
@example(hist=({("IngressClass", "a", "y"): [("put", 0), ("bad", 0)],
                ("Service", "a", "y"): [("put", 1)]},
               [("IngressClass", "a", "y"), ("Service", "a", "y"), ("IngressClass", "a", "y")]),
         rnd=random.Random(0))
def test_any_interleaving_converges(hist: Any, rnd: Any) -> None:
    per_key, order = hist
    store = _apply_interleaved(per_key, order)
    # Key by key, in sequence: the reference order.
    sequential = _apply_interleaved(per_key, [k for k in per_key for _ in per_key[k]])
    assert store.snapshot() == sequential.snapshot()
    assert dict(store.errors).keys() == dict(sequential.errors).keys()
    # Oracle: each key ends at its last valid version after its last delete.
    final: list[dict[str, Any]] = []
    for k, ops in per_key.items():
        state = None
        for what, variant in ops:
            if what == "put":
                state = make(*k, variant)
            elif what == "del":
                state = None
        if state is not None:
            final.append(state)
    rnd.shuffle(final)
    fresh = ResourceStore()
    for obj in final:
        fresh.apply("ADDED", obj)
    assert store.snapshot() == fresh.snapshot()
    assert _refs(store.snapshot()) == _refs(Resources.from_dicts(final))


def _refs(res: Resources) -> set[tuple[str, str]]:
    return {(o.kind, o.metadata.ref) for f in ("ingresses", "ingress_classes", "services",
                                                "endpoint_slices", "secrets")
            for o in getattr(res, f)}


@given(_histories(), st.dictionaries(st.sampled_from(KINDS),
                                     st.lists(st.tuples(_keys, st.integers(0, 3)), max_size=4)))
def test_replace_all_after_any_events_equals_fresh_store(hist: Any, lists: Any) -> None:
    per_key, order = hist
    store = _apply_interleaved(per_key, order)
    fresh = ResourceStore()
    # A re-list of every kind (the 410 Gone path) is the whole truth about that kind.
    for kind in KINDS:
        items = {(ns, name): make(kind, ns, name, v)
                 for (_, ns, name), v in lists.get(kind, [])}
        store.replace_all(kind, list(items.values()))
        fresh.replace_all(kind, list(items.values()))
    assert store.snapshot() == fresh.snapshot()
    assert store.errors == {} and fresh.errors == {}
