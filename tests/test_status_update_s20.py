"""A status-only update of an Ingress is no route-table rebuild (session 20, S20).

The API server bumps ``metadata.resourceVersion`` on every write, a status write included
(``status.loadBalancer``, written often by a controller running beside this one). The store
keeps that newest object without moving ``generation`` (nothing to rebuild), so the next real
change (an endpoint update) sends a snapshot whose Ingress tuple holds it. ``Router.update``
compared Ingresses with ``resource_version`` included and rebuilt the whole table (740 ms at
2,000 rules, where the endpoint-only path takes 0.4 ms). These tests count builds by the
table's identity and by a wrapper around ``RouteTable.build``.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ingresslib import Resources
from ingresslib._router import Router
from ingresslib._store import ResourceStore
from ingresslib._table import RouteTable

N = 300  # Ingresses, one host and two rules each: a table worth not rebuilding


def ingress(i: int, rv: int, path: str = "/") -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": f"ing{i}", "namespace": "shop", "resourceVersion": str(rv),
                         "creationTimestamp": f"2024-01-01T00:{i // 60:02d}:{i % 60:02d}Z"},
            "spec": {"ingressClassName": "nginx", "rules": [{"host": f"h{i}.test", "http": {"paths": [
                {"path": path, "pathType": "Prefix",
                 "backend": {"service": {"name": "web", "port": {"number": 80}}}},
                {"path": "/api", "pathType": "Prefix",
                 "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}


def ingress_class(rv: int) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": "nginx", "resourceVersion": str(rv)},
            "spec": {"controller": "k8s.io/ingress-nginx"}}


def service() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "shop", "resourceVersion": "1"},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}


def endpoint_slice(ip: str, rv: int) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "web-x", "namespace": "shop", "resourceVersion": str(rv),
                         "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4", "endpoints": [{"addresses": [ip]}],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}


def with_status(obj: dict[str, Any], rv: int, rv_key: str = "resourceVersion") -> dict[str, Any]:
    """``obj`` after a status write: only its resourceVersion (and status) moved."""
    out = copy.deepcopy(obj)
    del out["metadata"]["resourceVersion"]
    out["metadata"][rv_key] = str(rv)
    out["status"] = {"loadBalancer": {"ingress": [{"ip": "192.0.2.7"}]}}
    return out


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One item per ``RouteTable.build`` call (the Router's full rebuilds)."""
    calls: list[int] = []
    real = RouteTable.build.__func__  # type: ignore[attr-defined]

    def counting(cls: type[RouteTable], *args: Any, **kw: Any) -> RouteTable:
        calls.append(1)
        return real(cls, *args, **kw)  # type: ignore[no-any-return]

    monkeypatch.setattr(RouteTable, "build", classmethod(counting))
    return calls


def fed_store() -> ResourceStore:
    store = ResourceStore()
    store.apply("ADDED", ingress_class(1))
    store.apply("ADDED", service())
    store.apply("ADDED", endpoint_slice("10.0.0.1", 2))
    for i in range(N):
        store.apply("ADDED", ingress(i, 10 + i))
    return store


def endpoint(router: Router, i: int, path: str = "/") -> tuple[str, int] | None:
    d = router.route("GET", f"h{i}.test", path)
    assert d is not None
    return d.endpoint


@pytest.mark.parametrize("rv_key", ["resourceVersion", "resource_version"])
def test_status_update_then_endpoint_change_keeps_the_table(builds: list[int], rv_key: str) -> None:
    # rv_key: kubectl's / lightkube's JSON, or the official client's to_dict() spelling.
    store = fed_store()
    router = Router(store.snapshot(), ingress_class="nginx")
    table = router.table
    assert endpoint(router, 7) == ("10.0.0.1", 8080)
    gen = store.generation
    store.apply("MODIFIED", with_status(ingress(7, 17), 5000, rv_key))
    assert store.generation == gen  # the store's rule: nothing to rebuild...
    held = {ing.metadata.name: ing for ing in store.snapshot().ingresses}
    assert held["ing7"].metadata.resource_version == "5000"  # ...and the newest object kept
    store.apply("MODIFIED", endpoint_slice("10.0.0.2", 5001))  # the next real change
    del builds[:]
    router.update(store.snapshot())
    assert router.table is table
    assert builds == []
    assert router.resources is store.snapshot()
    assert endpoint(router, 7) == ("10.0.0.2", 8080)  # the endpoint change is served
    assert endpoint(router, 200, "/api/x") == ("10.0.0.2", 8080)
    # A later real change of that Ingress still rebuilds (the kept table held its older object).
    store.apply("MODIFIED", ingress(7, 5002, path="/shop"))
    router.update(store.snapshot())
    assert router.table is not table
    assert builds == [1]
    assert router.route("GET", "h7.test", "/") is None  # "/" is gone, "/shop" routes
    assert endpoint(router, 7, "/shop/cart") == ("10.0.0.2", 8080)


def test_status_update_of_an_ingress_class_keeps_the_table(builds: list[int]) -> None:
    store = fed_store()
    router = Router(store.snapshot(), ingress_class="nginx")
    table = router.table
    store.apply("MODIFIED", with_status(ingress_class(1), 6000))
    store.apply("MODIFIED", endpoint_slice("10.0.0.3", 6001))
    del builds[:]
    router.update(store.snapshot())
    assert router.table is table and builds == []
    assert endpoint(router, 0) == ("10.0.0.3", 8080)
    # The class's controller changed: a rebuild (Router(ingress_class=) serves it by name).
    changed = ingress_class(6002)
    changed["spec"]["controller"] = "example.com/other"
    store.apply("MODIFIED", changed)
    router.update(store.snapshot())
    assert router.table is not table and builds == [1]
    assert endpoint(router, 0) == ("10.0.0.3", 8080)


def test_a_real_change_with_a_status_update_in_the_same_burst_rebuilds(builds: list[int]) -> None:
    store = fed_store()
    router = Router(store.snapshot(), ingress_class="nginx")
    table = router.table
    store.apply("MODIFIED", with_status(ingress(3, 13), 7000))
    store.apply("MODIFIED", ingress(4, 7001, path="/four"))
    del builds[:]
    router.update(store.snapshot())
    assert router.table is not table and builds == [1]
    assert endpoint(router, 4, "/four/x") == ("10.0.0.1", 8080)
    assert router.route("GET", "h4.test", "/") is None


def test_resources_decoded_anew_with_only_versions_moved_keep_the_table(builds: list[int]) -> None:
    # A caller that polls and decodes everything each time (no store): every object is new,
    # and every Ingress's resourceVersion moved.
    objs = [ingress_class(1), service(), endpoint_slice("10.0.0.1", 2),
            *(ingress(i, 10 + i) for i in range(N))]
    router = Router(Resources.from_dicts(objs), ingress_class="nginx")
    table = router.table
    polled = [objs[0], objs[1], endpoint_slice("10.0.0.4", 9000),
              *(with_status(o, 9001 + n) for n, o in enumerate(objs[3:]))]
    del builds[:]
    router.update(Resources.from_dicts(polled))
    assert router.table is table and builds == []
    assert endpoint(router, 150) == ("10.0.0.4", 8080)
    # An Ingress fewer is a change (same versions otherwise).
    router.update(Resources.from_dicts(polled[:-1]))
    assert router.table is not table and builds == [1]
    assert router.route("GET", f"h{N - 1}.test", "/") is None
