"""ConfigMaps under ``serve --kubernetes`` (session 25, K5): the store holds them
(``Resources.config_maps``, as ``from_dicts``), the watcher lists and watches them while an
Ingress names one (``custom-headers``), and a ConfigMap change reaches the router in a snapshot.
Against the fake API server of tests/_fake_kube.py (taught ConfigMaps per test)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

import _fake_kube
from _fake_kube import FakeKube
from ingresslib._kube import CONFIG_MAPS, WATCHED_KINDS, names_config_maps
from ingresslib._resources import Resources
from ingresslib._router import Router
from ingresslib._serve_digest import config_digest
from ingresslib._store import ResourceStore
from test_kube import Harness, eventually, running_harness

pytestmark = pytest.mark.network

KINDS = (*WATCHED_KINDS, CONFIG_MAPS)


def cm(name: str, data: dict[str, Any], ns: str = "default", rv: str | None = None
       ) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    if rv is not None:
        meta["resourceVersion"] = rv
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def ingress(annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "web", "namespace": "default",
                         "annotations": dict(annotations or {})},
            "spec": {"ingressClassName": "nginx", "rules": [{"host": "a.example", "http": {
                "paths": [{"path": "/", "pathType": "Prefix", "backend": {
                    "service": {"name": "web", "port": {"number": 80}}}}]}}]}}


NAMED = {"nginx.ingress.kubernetes.io/custom-headers": "default/hdrs"}


# -- the store ------------------------------------------------------------------------------


def test_store_holds_a_configmap_as_from_dicts_does() -> None:
    store = ResourceStore()
    store.apply("ADDED", cm("hdrs", {"X-A": "1"}))
    snap = store.snapshot()
    assert [(c.metadata.ref, dict(c.data)) for c in snap.config_maps] == [
        ("default/hdrs", {"X-A": "1"})]
    assert snap.ignored == Resources.from_dicts([cm("hdrs", {"X-A": "1"})]).ignored
    store.apply("DELETED", cm("hdrs", {}))
    assert store.snapshot().config_maps == () and store.snapshot().ignored == ()


def test_store_keeps_the_last_valid_configmap_and_reports_an_invalid_one() -> None:
    store = ResourceStore()
    store.apply("ADDED", cm("hdrs", {"X-A": "1"}))
    gen = store.generation
    store.apply("MODIFIED", cm("hdrs", {"bad key!": "2"}))  # not a valid data key
    assert store.invalid_total == 1
    assert ("v1/ConfigMap", "default", "hdrs") in store.errors
    assert "not used by custom-headers" in str(store.errors[("v1/ConfigMap", "default", "hdrs")])
    assert store.generation == gen
    assert [dict(c.data) for c in store.snapshot().config_maps] == [{"X-A": "1"}]
    # Another object is still served beside it; a valid version clears the error.
    store.apply("ADDED", cm("other", {"X-B": "b"}))
    assert len(store.snapshot().config_maps) == 2
    store.apply("MODIFIED", cm("hdrs", {"X-A": "3"}))
    assert store.errors == {}
    assert [dict(c.data) for c in store.snapshot().config_maps] == [{"X-A": "3"}, {"X-B": "b"}]


def test_store_invalid_new_configmap_is_left_out() -> None:
    store = ResourceStore()
    store.apply("ADDED", cm("hdrs", {"bad key!": "2"}))
    assert store.snapshot().config_maps == () and store.snapshot().ignored == ()
    assert store.invalid_total == 1


def test_store_configmap_status_only_update_keeps_the_generation() -> None:
    store = ResourceStore()
    store.apply("ADDED", cm("hdrs", {"X-A": "1"}, rv="1"))
    gen = store.generation
    store.apply("MODIFIED", cm("hdrs", {"X-A": "1"}, rv="2"))
    assert store.generation == gen
    assert store.snapshot().config_maps[0].metadata.resource_version == "2"
    store.apply("MODIFIED", cm("hdrs", {"X-A": "2"}, rv="3"))
    assert store.generation == gen + 1


def test_store_replace_all_drops_configmaps_missing_from_the_list() -> None:
    store = ResourceStore()
    store.replace_all("ConfigMap", [cm("a", {"k": "1"}), cm("b", {"k": "2"})])
    store.replace_all("ConfigMap", [cm("b", {"k": "2"})])
    assert [c.metadata.name for c in store.snapshot().config_maps] == ["b"]
    assert len(store.snapshot().ignored) == 1


def test_names_config_maps() -> None:
    assert names_config_maps(Resources.from_dicts([ingress(NAMED)]))
    assert not names_config_maps(Resources.from_dicts([ingress()]))


# -- the watcher against the fake API server --------------------------------------------------


@pytest_asyncio.fixture
async def h(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harness]:
    # The fake serves ConfigMaps for this test only.
    monkeypatch.setitem(_fake_kube.KINDS, "configmaps", ("v1", "ConfigMap", True))
    monkeypatch.setitem(_fake_kube._PLURAL, "ConfigMap", "configmaps")
    async with running_harness(FakeKube()) as harness:
        yield harness


@pytest.mark.asyncio
async def test_configmaps_are_not_read_while_no_ingress_names_one(h: Harness) -> None:
    h.kube.put(ingress())
    h.kube.put(cm("hdrs", {"X-A": "1"}))
    await h.start_watching("ingresses", kinds=KINDS)
    await asyncio.sleep(0.1)
    assert h.kube.count("configmaps") == 0
    assert h.last.config_maps == ()


@pytest.mark.asyncio
async def test_named_configmap_is_in_the_first_table_and_follows_changes(h: Harness) -> None:
    h.kube.put(ingress(NAMED))
    h.kube.put(cm("hdrs", {"X-A": "1"}))
    h.kube.put(cm("unrelated", {"k": "v"}, ns="other"))
    router = Router(Resources())
    seen: list[Resources] = []

    def on_snapshot(res: Resources) -> None:
        seen.append(res)
        router.update(res)

    await h.start_watching("configmaps", kinds=KINDS, on_snapshot=on_snapshot)
    # The first table already has them (it waits for the ConfigMaps' first list).
    assert {c.metadata.ref for c in seen[0].config_maps} == {"default/hdrs", "other/unrelated"}
    first = config_digest(seen[-1], seen[-1].ingresses)
    h.kube.put(cm("hdrs", {"X-A": "2"}))
    await eventually(lambda: any(
        dict(c.data) == {"X-A": "2"} for c in router.resources.config_maps))
    # A ConfigMap change is a new snapshot, with a new config_hash.
    assert config_digest(seen[-1], seen[-1].ingresses) != first
    # An invalid edit keeps the last valid version and the watch going.
    h.kube.put(cm("hdrs", {"bad key!": "3"}))
    await eventually(lambda: h.watcher is not None and h.watcher.stats.invalid_objects == 1)
    h.kube.put(cm("hdrs2", {"X-C": "c"}))
    await eventually(lambda: any(c.metadata.name == "hdrs2" for c in router.resources.config_maps))
    assert [dict(c.data) for c in router.resources.config_maps
            if c.metadata.name == "hdrs"] == [{"X-A": "2"}]
    h.kube.delete("ConfigMap", "default", "hdrs2")
    await eventually(lambda: all(c.metadata.name != "hdrs2"
                                 for c in router.resources.config_maps))


@pytest.mark.asyncio
async def test_configmap_watch_starts_and_stops_with_the_reference(h: Harness) -> None:
    h.kube.put(ingress())
    h.kube.put(cm("hdrs", {"X-A": "1"}))
    await h.start_watching("ingresses", kinds=KINDS)
    assert h.kube.count("configmaps") == 0
    h.kube.put(ingress(NAMED))
    await h.watching("configmaps")
    await eventually(lambda: [c.metadata.ref for c in h.last.config_maps] == ["default/hdrs"])
    h.kube.put(ingress())
    # Stopped: its objects dropped (they would go stale), its resourceVersion forgotten.
    await eventually(lambda: h.last.config_maps == () and h.last.ignored == ())
    assert h.watcher is not None and "ConfigMap" not in h.watcher.stats.resource_versions
    lists = sum(1 for r in h.kube.requests if r.plural == "configmaps" and not r.watch)
    # Named again: a fresh list (the changes meanwhile were missed).
    h.kube.put(cm("hdrs", {"X-A": "2"}))
    h.kube.put(ingress(NAMED))
    await eventually(lambda: [dict(c.data) for c in h.last.config_maps] == [{"X-A": "2"}])
    assert sum(1 for r in h.kube.requests if r.plural == "configmaps" and not r.watch) == lists + 1


@pytest.mark.asyncio
async def test_namespace_limits_the_configmap_watch(h: Harness) -> None:
    h.kube.put(ingress(NAMED))
    h.kube.put(cm("hdrs", {"X-A": "1"}))
    h.kube.put(cm("hdrs", {"X-B": "1"}, ns="other"))
    await h.start_watching("configmaps", kinds=KINDS, namespace="default")
    assert [c.metadata.ref for c in h.last.config_maps] == ["default/hdrs"]
    assert all(r.namespace == "default" for r in h.kube.requests if r.plural == "configmaps")


@pytest.mark.asyncio
async def test_a_denied_configmap_list_does_not_hold_back_the_first_table(h: Harness) -> None:
    h.kube.put(ingress(NAMED))
    h.kube.fail_next("configmaps", 403, times=1000)
    w = h.start(kinds=KINDS)
    await asyncio.wait_for(w.synced.wait(), 5)
    assert [i.metadata.name for i in h.last.ingresses] == ["web"]
    assert h.last.config_maps == ()


# -- serve --kubernetes end to end ------------------------------------------------------------


@pytest.mark.asyncio
async def test_serve_kubernetes_reads_and_follows_the_named_configmaps(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from ingresslib._demo import start_echo
    from tests._server_helpers import Client
    from tests.test_serve_cli import _start_serve, _stop
    from tests.test_serve_kube import _backend, _fake_cluster

    import tests._fake_kube

    for mod in (_fake_kube, tests._fake_kube):  # the fake, under both its import names
        monkeypatch.setitem(mod.KINDS, "configmaps", ("v1", "ConfigMap", True))
        monkeypatch.setitem(mod._PLURAL, "ConfigMap", "configmaps")
    echo = await start_echo("web", "web-0")
    ing = ingress()  # names no ConfigMap: the --config ConfigMap's add-headers does
    ing["spec"].pop("ingressClassName")
    kube, cfg = await _fake_cluster(tmp_path, ing, *_backend("web", echo.port),
                                    cm("hdrs", {"X-Custom": "one"}),
                                    cm("global", {"X-Global": "g1"}))
    conf = tmp_path / "configmap.yaml"
    conf.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n"
                    "  global-allowed-response-headers: X-Custom\n"
                    "  add-headers: default/global\n")
    p, ports = await asyncio.to_thread(_start_serve, "--kubernetes", "--kubeconfig", str(cfg),
                                       "--listen", "127.0.0.1:0", "--config", str(conf))

    async def headers() -> dict[str, str]:
        c = await Client.open(ports["http"])
        try:
            r = await c.get("a.example", "/x")
            return {k.lower(): v for k, v in r.headers.items()}
        finally:
            await c.close()

    async def until(want: dict[str, str]) -> None:
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            got = await headers()
            if all(got.get(k) == v for k, v in want.items()):
                return
            assert asyncio.get_running_loop().time() < deadline, got
            await asyncio.sleep(0.05)

    try:
        await until({"x-global": "g1"})
        assert "x-custom" not in await headers()
        ing["metadata"]["annotations"] = dict(NAMED)
        kube.put(ing)
        await until({"x-custom": "one", "x-global": "g1"})
        kube.put(cm("hdrs", {"X-Custom": "two"}))
        kube.put(cm("global", {"X-Global": "g2"}))
        await until({"x-custom": "two", "x-global": "g2"})
    finally:
        await asyncio.to_thread(_stop, p)
        await kube.stop()
        await echo.stop()
