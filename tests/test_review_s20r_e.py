"""Review of two watch-path landings (session 20, R20e): guards.

1. ``ResourceStore.snapshot()`` patches the last key order per changed key (e8a0126). Every
   path that changes what the store holds must go through ``_set``/``_unset``, or the patched
   order drifts from the objects held. The random histories below mix what the landed state
   machine leaves out: two watches of one kind (``where``: TLS and Opaque Secrets, a twin kept
   behind and shown again when the other is deleted), ``replace_all`` in one namespace, an
   object of a kind the store only keeps aside (``ignored``), deletes of keys never held,
   status-only updates, invalid objects, snapshots taken at random points (none between many
   events, two in a row). The oracle sorts the keys itself and reads only ``_entries``.
2. ``Router.update`` compares Ingresses and IngressClasses without ``resourceVersion``
   (53aeb04). Everything else in the metadata is still routing input: a delete and re-create
   under the same name (a new ``creationTimestamp``) changes which Ingress is older, so which
   one a conflicting rule routes to; a default-class annotation changes which Ingresses are
   served. Both arrive with a new resourceVersion too, and must rebuild.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from ingresslib import Resources
from ingresslib._router import Router
from ingresslib._store import ResourceStore

# --- 1. the store's patched order --------------------------------------------------------------

_FIELDS = ("ingresses", "ingress_classes", "services", "endpoint_slices", "endpoints", "secrets",
           "ignored", "config_maps")
NAMES = [f"{c}{i}" for c in "abcdefgh" for i in range(4)]  # enough keys for the patch path
SPACES = ["x", "y", "default"]
TLS_TYPE = "kubernetes.io/tls"


def service(name: str, ns: str, variant: int, rv: int, valid: bool = True) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns, "resourceVersion": str(rv),
                         "labels": {"v": str(variant)}},
            "spec": {"ports": [{"port": 80 if valid else -1}]}}


def secret(name: str, ns: str, typ: str, variant: int, rv: int) -> dict[str, Any]:
    data = ({"tls.crt": "", "tls.key": ""} if typ == TLS_TYPE
            else {"auth": "eA=="} if variant else {})
    return {"apiVersion": "v1", "kind": "Secret", "type": typ, "data": data,
            "metadata": {"name": name, "namespace": ns, "resourceVersion": str(rv)}}


def config_map(name: str, ns: str, variant: int, rv: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "data": {"v": str(variant)},
            "metadata": {"name": name, "namespace": ns, "resourceVersion": str(rv)}}


def is_tls(obj: Any) -> bool:
    typ = obj.get("type") if isinstance(obj, dict) else getattr(obj, "type", None)
    return bool(typ == TLS_TYPE)


def is_opaque(obj: Any) -> bool:
    return not is_tls(obj)


def owner(typ: str) -> Any:
    return is_tls if typ == TLS_TYPE else is_opaque


def from_scratch(store: ResourceStore) -> Resources:
    """Every object held, by kind, in key order: sorted here, from ``_entries`` alone."""
    buckets: dict[str, list[Any]] = {f: [] for f in _FIELDS}
    for key in sorted(store._entries):
        entry = store._entries[key]
        buckets[entry.field].append(entry.model)
        for f, model in entry.also:  # a ConfigMap also fills config_maps (session 25)
            buckets[f].append(model)
    return Resources(**{f: tuple(v) for f, v in buckets.items()})


def random_event(r: random.Random, store: ResourceStore, rv: int) -> None:
    name, ns = r.choice(NAMES), r.choice(SPACES)
    op = r.random()
    if op < 0.3:
        store.apply(r.choice(["ADDED", "MODIFIED", "DELETED"]),
                    service(name, ns, r.randrange(3), rv, valid=r.random() > 0.15))
    elif op < 0.5:
        typ = r.choice([TLS_TYPE, "Opaque"])
        store.apply(r.choice(["ADDED", "MODIFIED", "DELETED"]),
                    secret(name, ns, typ, r.randrange(2), rv), where=owner(typ))
    elif op < 0.6:
        store.apply(r.choice(["ADDED", "MODIFIED", "DELETED"]),
                    config_map(name, ns, r.randrange(2), rv))
    elif op < 0.7:
        items = [service(n, r.choice(SPACES), r.randrange(3), rv)
                 for n in r.sample(NAMES, r.randrange(6))]
        store.replace_all("Service", items, namespace=r.choice([None, "x", "y"]))
    elif op < 0.8:
        typ = r.choice([TLS_TYPE, "Opaque"])
        items = [secret(n, r.choice(SPACES), typ, r.randrange(2), rv)
                 for n in r.sample(NAMES, r.randrange(6))]
        store.replace_all("Secret", items, namespace=r.choice([None, "x"]), where=owner(typ))
    else:
        # A status-only write: the same object again with only its resourceVersion moved
        # (the store keeps the newer object without moving ``generation``).
        store.apply("MODIFIED", service(name, ns, 0, rv))
        store.apply("MODIFIED", service(name, ns, 0, rv + 100_000))


@pytest.mark.parametrize("seed", range(40))
def test_snapshots_equal_a_sort_from_scratch_after_any_history(seed: int) -> None:
    r = random.Random(seed)
    store = ResourceStore()
    last = store.snapshot()
    for rv in range(1, 250):
        random_event(r, store, rv)
        if r.random() < 0.5:
            continue  # no snapshot between these changes
        snap = store.snapshot()
        assert snap == from_scratch(store), (seed, rv)
        if r.random() < 0.3:
            assert store.snapshot() is snap  # two in a row: the cached one
        for f in _FIELDS:
            # A kind is either the last snapshot's tuple or a new one with other contents.
            if getattr(snap, f) == getattr(last, f):
                continue
            assert getattr(snap, f) is not getattr(last, f)
        last = snap


def test_a_twin_shown_again_when_the_other_watch_deletes_is_in_the_next_snapshot() -> None:
    # The promotion in ``_remove`` (``_hidden``): the Opaque Secret kept behind the TLS one
    # under the same name comes back in the snapshot, in its place in key order.
    store = ResourceStore()
    for n in NAMES:  # enough held Secrets that one change is patched, not sorted anew
        store.apply("ADDED", secret(n, "x", TLS_TYPE, 0, 1), where=is_tls)
    store.apply("ADDED", secret("b2", "y", "Opaque", 1, 2), where=is_opaque)
    store.apply("ADDED", secret("b2", "y", TLS_TYPE, 0, 3), where=is_tls)
    before = store.snapshot()
    assert [s.type for s in before.secrets if s.metadata.ref == "y/b2"] == [TLS_TYPE]
    store.apply("DELETED", secret("b2", "y", TLS_TYPE, 0, 4), where=is_tls)
    after = store.snapshot()
    assert after == from_scratch(store)
    assert [s.type for s in after.secrets if s.metadata.ref == "y/b2"] == ["Opaque"]
    assert after.services is before.services  # untouched kinds keep their tuple


def test_a_status_only_update_between_two_snapshots_is_in_the_second() -> None:
    store = ResourceStore()
    for n in NAMES:
        store.apply("ADDED", service(n, "x", 0, 1))
    first = store.snapshot()
    gen = store.generation
    store.apply("MODIFIED", service("c1", "x", 0, 99))
    assert store.generation == gen
    second = store.snapshot()
    assert second is not first
    assert second == from_scratch(store)
    assert [s.metadata.resource_version for s in second.services
            if s.metadata.name == "c1"] == ["99"]
    assert store.snapshot() is second


# --- 2. the Router's comparison without resourceVersion ----------------------------------------

def ingress(name: str, ns: str, created: str, uid: str, rv: int, service_name: str,
            cls: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"rules": [{"host": "shop.test", "http": {"paths": [
        {"path": "/", "pathType": "Prefix",
         "backend": {"service": {"name": service_name, "port": {"number": 80}}}}]}}]}
    if cls is not None:
        spec["ingressClassName"] = cls
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": created,
                         "uid": uid, "resourceVersion": str(rv)},
            "spec": spec}


def winner(router: Router) -> str | None:
    m = router.table.match("shop.test", "/")
    return None if m is None else m.ingress


def test_a_delete_and_re_create_under_the_same_name_changes_which_rule_wins() -> None:
    # Two namespaces route the same host and path: the older Ingress's rule is used
    # (SEMANTICS §4.3, oldest first). "one/web" is deleted and created again with the same
    # spec: only its creationTimestamp, uid and resourceVersion moved, and it is now the
    # newer one.
    old = Resources.from_dicts([
        ingress("web", "one", "2024-01-01T00:00:00Z", "u1", 10, "svc-one"),
        ingress("web", "two", "2024-06-01T00:00:00Z", "u2", 11, "svc-two")])
    new = Resources.from_dicts([
        ingress("web", "one", "2025-01-01T00:00:00Z", "u3", 12, "svc-one"),
        ingress("web", "two", "2024-06-01T00:00:00Z", "u2", 11, "svc-two")])
    router = Router(old)
    assert winner(router) == "one/web"
    router.update(new)
    assert winner(router) == winner(Router(new)) == "two/web"


def test_a_default_class_annotation_with_a_new_version_rebuilds() -> None:
    def cls(default: bool, rv: int) -> dict[str, Any]:
        ann = {"ingressclass.kubernetes.io/is-default-class": "true"} if default else {}
        return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                "metadata": {"name": "nginx", "resourceVersion": str(rv), "annotations": ann},
                "spec": {"controller": "k8s.io/ingress-nginx"}}

    web = ingress("web", "one", "2024-01-01T00:00:00Z", "u1", 10, "svc-one")  # no class
    router = Router(Resources.from_dicts([cls(False, 1), web]), ingress_class="nginx")
    assert winner(router) is None  # a class-less Ingress: not ours without a default class
    router.update(Resources.from_dicts([cls(True, 2), web]))
    assert winner(router) == "one/web"
    router.update(Resources.from_dicts([cls(False, 3), web]))
    assert winner(router) is None


def test_a_kept_table_serves_objects_equal_to_the_resources_but_the_versions() -> None:
    # The kept table holds the older Ingress objects: what pairs ``table.served`` with
    # ``resources.ingresses`` must do it by value, and the two agree on everything else.
    first = Resources.from_dicts([ingress("web", "one", "2024-01-01T00:00:00Z", "u1", 10,
                                          "svc-one")])
    bumped = Resources.from_dicts([ingress("web", "one", "2024-01-01T00:00:00Z", "u1", 11,
                                           "svc-one")])
    router = Router(first)
    table = router.table
    router.update(bumped)
    assert router.table is table
    assert router.resources is bumped
    served, held = router.table.served[0], router.resources.ingresses[0]
    assert served is not held
    assert served.metadata.resource_version == "10" and held.metadata.resource_version == "11"
    assert served.spec == held.spec and served.metadata.annotations == held.metadata.annotations


def test_each_snapshot_starts_a_new_set_of_changed_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    # The keys changed since the last snapshot are forgotten when a snapshot is made: one
    # event then one snapshot, many times over, patches one key each time and never sorts
    # (keys piling up across snapshots would pass 1/8 of those held and sort every time).
    import ingresslib._store as _store

    store = ResourceStore()
    for n in NAMES:
        for ns in SPACES:
            store.apply("ADDED", service(n, ns, 0, 1))
    snap = store.snapshot()
    sorts: list[int] = []

    def counting_sorted(items: Any, **kw: Any) -> list[Any]:
        out = sorted(items, **kw)
        sorts.append(len(out))
        return out

    monkeypatch.setattr(_store, "sorted", counting_sorted, raising=False)
    for rv, n in enumerate(NAMES * 2, start=2):
        store.apply("MODIFIED", service(n, "x", rv % 3 + 1, rv))
        snap = store.snapshot()
        store.snapshot()  # two in a row: nothing more to do
    assert sorts == []
    monkeypatch.undo()
    assert snap == from_scratch(store)


# --- 2b. what the comparison costs when the Ingresses did change -------------------------------

def many(n: int, changed: int | None = None, rv: int = 1) -> Resources:
    """``n`` Ingresses decoded anew (a reload from files: equal objects, never identical);
    ``changed``: that one routes to another Service."""
    return Resources.from_dicts([
        ingress(f"web{i:03}", "one", "2024-01-01T00:00:00Z", f"u{i}", rv,
                "other" if i == changed else "svc-one") for i in range(n)])


@pytest.fixture
def ingress_eq(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One item per ``Ingress.__eq__`` call (a deep, field by field comparison)."""
    from ingresslib._models import Ingress

    calls: list[int] = []
    real = Ingress.__eq__

    def counting(self: Any, other: Any) -> Any:
        calls.append(1)
        return real(self, other)

    monkeypatch.setattr(Ingress, "__eq__", counting)
    return calls


def test_a_real_change_compares_each_ingress_once(ingress_eq: list[int]) -> None:
    # Defect (cost, on every reload from files that changed an Ingress): ``old == new`` went
    # through every equal Ingress up to the changed one, then the per-item pass compared them
    # all again: twice the deep comparisons the comparison with versions made (at 2,000
    # Ingresses ~10 ms instead of ~5 ms, before the rebuild the change needs anyway).
    n = 60
    old, new = many(n), many(n, changed=n - 1)
    del ingress_eq[:]
    assert not Router._same_routing_inputs(old, new)
    assert len(ingress_eq) <= n


def test_ingress_lists_of_other_lengths_are_not_compared_item_by_item(
        ingress_eq: list[int]) -> None:
    # A tuple's == compares the items before it looks at the lengths: an Ingress added at the
    # end of the files cost a deep comparison of every other one, for an answer the lengths
    # give.
    old, new = many(60), many(61)
    del ingress_eq[:]
    assert not Router._same_routing_inputs(old, new)
    assert ingress_eq == []


def test_only_versions_moved_still_keeps_the_table_and_identical_items_are_not_compared(
        ingress_eq: list[int]) -> None:
    old = many(60)
    bumped = many(60, rv=2)
    # Identical objects but one (a store snapshot after one status write).
    store_like = Resources(ingresses=(*old.ingresses[:30], bumped.ingresses[30],
                                      *old.ingresses[31:]))
    del ingress_eq[:]
    assert Router._same_routing_inputs(old, store_like)
    assert len(ingress_eq) <= 2  # the one that differs (and its copy without the version)
    assert Router._same_routing_inputs(old, bumped)
    assert not Router._same_routing_inputs(old, many(60, changed=30, rv=2))
