"""The lightkube watch adapter against a fake API server on 127.0.0.1 (tests/_fake_kube.py).

No cluster is reachable here, so the fake speaks the list/watch wire protocol: chunked JSON
events, bookmarks, ``ERROR`` 410, dropped connections, garbage lines, HTTP errors.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lightkube import KubeConfig

from ingresslib._kube import Backoff, ClusterWatcher, watch_cluster
from ingresslib._resources import Resources

from _fake_kube import FakeKube, kubeconfig_dict

pytestmark = pytest.mark.network

FAST = Backoff(initial=0.01, maximum=0.05)


def svc(name: str, port: int = 80, ns: str = "default") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
            "spec": {"ports": [{"port": port}]}}


def ingress(name: str, ns: str = "default", path: str = "/") -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"rules": [{"host": "a.example", "http": {"paths": [
                {"path": path, "pathType": "Prefix",
                 "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}


def tls_secret(name: str, type_: str = "kubernetes.io/tls") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "type": type_,
            "data": {"tls.crt": "eA==", "tls.key": "eA=="}}


async def eventually(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


class Harness:
    def __init__(self, kube: FakeKube, url: str) -> None:
        self.kube = kube
        self.url = url
        self.snapshots: list[Resources] = []
        self.watcher: ClusterWatcher | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self, **options: Any) -> ClusterWatcher:
        options.setdefault("backoff", FAST)
        options.setdefault("debounce", 0.05)
        options.setdefault("on_snapshot", self.snapshots.append)
        cb = options.pop("on_snapshot")
        self.watcher = ClusterWatcher(cb, config=KubeConfig.from_dict(kubeconfig_dict(self.url)),
                                      seed=1, **options)
        self._task = asyncio.create_task(self.watcher.run(self._stop))
        return self.watcher

    async def synced(self) -> ClusterWatcher:
        assert self.watcher is not None
        await asyncio.wait_for(self.watcher.synced.wait(), 5)
        return self.watcher

    async def watching(self, plural: str, n: int = 1) -> None:
        await eventually(lambda: self.kube.open_watches(plural) >= n)

    @property
    def last(self) -> Resources:
        return self.snapshots[-1]

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, 5)


@pytest_asyncio.fixture
async def h() -> AsyncIterator[Harness]:
    kube = FakeKube()
    url = await kube.start()
    harness = Harness(kube, url)
    try:
        yield harness
    finally:
        await harness.stop()
        await kube.stop()


def names(objs: Any) -> list[str]:
    return [o.metadata.name for o in objs]


# -- list then watch ----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_list_then_watch_from_the_lists_resource_version(h: Harness) -> None:
    h.kube.put(svc("web"))
    h.kube.put(ingress("shop"))
    h.kube.put(tls_secret("cert"))
    h.kube.put(tls_secret("password", type_="Opaque"))
    w = h.start()
    await h.synced()
    assert len(h.snapshots) == 1
    assert names(h.last.services) == ["web"] and names(h.last.ingresses) == ["shop"]
    # Only TLS Secrets are ever read: the API server filters them by field selector.
    assert names(h.last.secrets) == ["cert"]
    lists = {r.plural: r for r in h.kube.requests if not r.watch}
    assert lists["secrets"].query["fieldSelector"] == "type=kubernetes.io/tls"
    assert lists["endpointslices"].query["labelSelector"] == "kubernetes.io/service-name"
    assert lists["services"].query["limit"] == "500"  # paged lists, as client-go does
    await h.watching("services")
    watch = next(r for r in h.kube.requests if r.watch and r.plural == "services")
    assert watch.query["resourceVersion"] == w.stats.resource_versions["Service"] == "104"
    assert all(r.namespace is None for r in h.kube.requests)  # every namespace

    # Changes stream in.
    h.kube.put(svc("api"))
    h.kube.delete("Ingress", "default", "shop")
    await eventually(lambda: names(h.last.services) == ["api", "web"] and not h.last.ingresses)
    assert w.stats.events == 2 and w.stats.lists == 5


@pytest.mark.asyncio
async def test_namespace_option(h: Harness) -> None:
    h.kube.put(svc("web", ns="shop"))
    h.kube.put(svc("other", ns="elsewhere"))
    h.kube.put({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                "metadata": {"name": "ingresslib"}, "spec": {"controller": "ingresslib.io/c"}})
    h.start(namespace="shop")
    await h.synced()
    assert names(h.last.services) == ["web"]
    assert names(h.last.ingress_classes) == ["ingresslib"]  # cluster-scoped: always all
    ns = {r.plural: r.namespace for r in h.kube.requests}
    assert ns == {"ingresses": "shop", "ingressclasses": None, "services": "shop",
                  "endpointslices": "shop", "secrets": "shop"}


@pytest.mark.asyncio
async def test_first_snapshot_waits_for_every_kind(h: Harness) -> None:
    h.kube.put(svc("web"))
    h.kube.fail_next("secrets", 500, times=2)
    w = h.start()
    await h.synced()
    # One snapshot, complete, after the secrets list finally succeeded.
    assert len(h.snapshots) == 1 and names(h.last.services) == ["web"]
    assert w.stats.stream_errors == 2 and w.stats.reconnects == 2
    assert h.kube.count("secrets", watch=False) == 3


# -- bookmarks, 410, reconnects -----------------------------------------------------------------


@pytest.mark.asyncio
async def test_bookmark_advances_resource_version(h: Harness) -> None:
    w = h.start()
    await h.synced()
    await h.watching("services")
    rv = h.kube.bookmark("services")
    await eventually(lambda: w.stats.bookmarks == 1)
    assert w.stats.resource_versions["Service"] == rv
    before = len(h.snapshots)
    h.kube.drop("services")
    await eventually(lambda: h.kube.count("services", watch=True) == 2)
    again = [r for r in h.kube.requests if r.plural == "services" and r.watch][-1]
    assert again.query["resourceVersion"] == rv
    await asyncio.sleep(0.1)
    assert len(h.snapshots) == before  # a bookmark is not a change


@pytest.mark.asyncio
async def test_410_gone_relists_and_catches_up_missed_deletes(h: Harness) -> None:
    h.kube.put(svc("keep"))
    h.kube.put(svc("lost"))
    w = h.start()
    await h.synced()
    await h.watching("services")
    # A delete the watch never saw (the API server compacted it away) ...
    h.kube.objects["services"].pop(("default", "lost"))
    h.kube.put(svc("new"))
    h.kube.compact()
    # ... then the stream ends with ERROR 410: the watcher must re-list.
    h.kube.gone("services")
    await eventually(lambda: names(h.last.services) == ["keep", "new"])
    assert w.stats.relists == 1
    assert h.kube.count("services", watch=False) == 2
    await h.watching("services")
    last_watch = [r for r in h.kube.requests if r.plural == "services" and r.watch][-1]
    assert last_watch.query["resourceVersion"] == str(h.kube.rv)
    assert w.stats.stream_errors == 0  # 410 is routine, not an error


@pytest.mark.asyncio
async def test_watch_from_compacted_version_gets_410_and_relists(h: Harness) -> None:
    w = h.start()
    await h.synced()
    await h.watching("ingresses")
    h.kube.put(ingress("a"))
    await eventually(lambda: names(h.last.ingresses) == ["a"])
    # Connection drops; meanwhile history is compacted: the resumed watch is answered with 410.
    h.kube.compact()
    h.kube.put(svc("unrelated"))
    h.kube.compact()
    h.kube.drop("ingresses")
    await eventually(lambda: w.stats.relists == 1)
    await h.watching("ingresses")
    assert names(h.last.ingresses) == ["a"]


@pytest.mark.asyncio
async def test_dropped_connection_reconnects_with_backoff(h: Harness) -> None:
    delays: list[int] = []

    class Recording(Backoff):
        def delay(self, attempt: int, rng: random.Random | None = None) -> float:
            delays.append(attempt)
            return 0.001

    w = h.start(backoff=Recording())
    await h.synced()
    await h.watching("services")
    h.kube.fail_next("services", 503, times=3)
    h.kube.drop("services")
    await eventually(lambda: h.kube.count("services", watch=True) == 5)
    await h.watching("services")
    # The drop, then three failed attempts: backoff grows attempt by attempt.
    assert delays == [1, 2, 3, 4]
    assert w.stats.stream_errors == 4 and w.stats.reconnects == 4
    # ... and the watch resumes from where it was: nothing is lost.
    h.kube.put(svc("after"))
    await eventually(lambda: names(h.last.services) == ["after"])


@pytest.mark.asyncio
async def test_silent_watch_is_reconnected(h: Harness) -> None:
    # A half-open connection delivers nothing, ever: after idle_timeout the watch is redone,
    # from the same resourceVersion, without backoff and without counting an error.
    w = h.start(idle_timeout=0.2)
    await h.synced()
    await eventually(lambda: h.kube.count("services", watch=True) >= 3)
    assert w.stats.idle_reconnects >= 2 and w.stats.stream_errors == 0
    rvs = {r.query["resourceVersion"] for r in h.kube.requests if r.watch and r.plural == "services"}
    assert rvs == {w.stats.resource_versions["Service"]}
    h.kube.put(svc("still-works"))
    await eventually(lambda: names(h.last.services) == ["still-works"])


def test_backoff_grows_caps_and_jitters() -> None:
    b = Backoff(initial=1.0, maximum=8.0, factor=2.0, jitter=0.25)
    rng = random.Random(0)
    for attempt, base in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (10, 8.0)]:
        samples = [b.delay(attempt, rng) for _ in range(50)]
        assert all(base * 0.75 <= s <= base * 1.25 for s in samples)
        assert len(set(samples)) > 1  # jittered
    assert Backoff(jitter=0).delay(1) == 0.8


@pytest.mark.asyncio
async def test_unreachable_api_server_is_retried(h: Harness) -> None:
    # Nothing listens on the port: connection refused, forever retried, never raised.
    await h.kube.stop()
    w = h.start()
    await eventually(lambda: w.stats.stream_errors >= 10)
    assert not w.synced.is_set() and h.snapshots == []


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_garbage_line_is_logged_counted_and_watch_continues(
        h: Harness, caplog: pytest.LogCaptureFixture) -> None:
    w = h.start()
    await h.synced()
    await h.watching("ingresses")
    with caplog.at_level(logging.WARNING, logger="ingresslib.kube"):
        h.kube.garbage("ingresses")
        await eventually(lambda: w.stats.garbage == 1)
    assert "Ingress watch failed" in caplog.text
    assert "Ingress" in w.stats.last_error
    await h.watching("ingresses")
    h.kube.put(ingress("after"))
    await eventually(lambda: names(h.last.ingresses) == ["after"])


@pytest.mark.asyncio
async def test_unusable_event_objects_are_counted(h: Harness) -> None:
    w = h.start()
    await h.synced()
    await h.watching("services")
    h.kube.raw_event("services", "ADDED", {"kind": "Service", "metadata": {}})  # no name
    h.kube.raw_event("services", "ADDED", 42)                                  # not an object
    await eventually(lambda: w.stats.garbage == 2)
    await h.watching("services")
    h.kube.put(svc("fine"))
    await eventually(lambda: names(h.last.services) == ["fine"])


@pytest.mark.asyncio
async def test_invalid_object_keeps_last_good_snapshot(h: Harness) -> None:
    h.kube.put(svc("web", 80))
    w = h.start()
    await h.synced()
    await h.watching("services")
    bad = svc("web", 0)
    bad["metadata"]["resourceVersion"] = "500"
    h.kube.raw_event("services", "MODIFIED", bad)
    await eventually(lambda: w.stats.invalid_objects == 1)
    await asyncio.sleep(0.1)
    assert [s.spec.ports[0].port for s in h.last.services] == [80]
    assert ("v1/Service", "default", "web") in w.store.errors
    # The invalid event still moved the resourceVersion on: the stream is not stuck on it.
    assert w.stats.resource_versions["Service"] == "500"
    h.kube.put(svc("web", 81))
    await eventually(lambda: [s.spec.ports[0].port for s in h.last.services] == [81])
    assert w.store.errors == {}


@pytest.mark.asyncio
async def test_failing_callback_is_counted_and_watch_goes_on(h: Harness) -> None:
    seen: list[Resources] = []

    def flaky(res: Resources) -> None:
        seen.append(res)
        if len(seen) == 1:
            raise RuntimeError("boom")

    w = h.start(on_snapshot=flaky)
    await h.synced()
    assert w.stats.callback_errors == 1 and w.stats.snapshots == 0
    await h.watching("services")
    h.kube.put(svc("web"))
    await eventually(lambda: w.stats.snapshots == 1)
    assert names(seen[-1].services) == ["web"]


@pytest.mark.asyncio
async def test_async_callback_is_awaited(h: Harness) -> None:
    got: list[Resources] = []

    async def cb(res: Resources) -> None:
        await asyncio.sleep(0)
        got.append(res)

    h.kube.put(svc("web"))
    h.start(on_snapshot=cb)
    await h.synced()
    assert names(got[0].services) == ["web"]


# -- debounce -----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_burst_of_50_events_is_one_swap(h: Harness) -> None:
    w = h.start(debounce=0.2)
    await h.synced()
    await h.watching("services")
    before = len(h.snapshots)
    for i in range(50):
        h.kube.put(svc(f"s{i:02d}"))
    await eventually(lambda: w.stats.events == 50)
    await asyncio.sleep(0.4)
    assert len(h.snapshots) == before + 1
    assert len(h.last.services) == 50


# -- entry point --------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_watch_cluster_with_kubeconfig_file(h: Harness, tmp_path: Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(kubeconfig_dict(h.url)))  # JSON is YAML
    h.kube.put(svc("web"))
    got: list[Resources] = []
    stop = asyncio.Event()

    def cb(res: Resources) -> None:
        got.append(res)
        stop.set()

    watcher = await asyncio.wait_for(
        watch_cluster(cb, kubeconfig=path, stop=stop, debounce=0.01), 5)
    assert names(got[0].services) == ["web"]
    assert watcher.stats.snapshots == 1


# -- examples/deploy ----------------------------------------------------------------------------

DEPLOY = Path(__file__).resolve().parent.parent / "examples" / "deploy"


def _deploy_docs() -> list[dict[str, Any]]:
    import yaml

    docs: list[dict[str, Any]] = []
    for f in sorted(DEPLOY.glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(f.read_text()) if d)
    return docs


def test_deploy_rbac_is_exactly_what_the_watcher_reads() -> None:
    from ingresslib._kube import WATCHED_KINDS, _raw_resource

    (role,) = [d for d in _deploy_docs() if d["kind"] == "ClusterRole"]
    granted = {(g, r): set(rule["verbs"]) for rule in role["rules"]
               for g in rule["apiGroups"] for r in rule["resources"]}
    needed = {(_raw_resource(k)._api_info.resource.group, _raw_resource(k)._api_info.plural)
              for k in WATCHED_KINDS}
    assert set(granted) == needed
    assert all(v == {"get", "list", "watch"} for v in granted.values())  # read-only


def test_deploy_manifests_are_consistent() -> None:
    from ingresslib._load import parse_manifests

    docs = _deploy_docs()
    by_kind = {d["kind"]: d for d in docs}
    (container,) = by_kind["Deployment"]["spec"]["template"]["spec"]["containers"]
    args = container["args"]
    assert args[0] == "serve" and "--kubernetes" in args
    (klass,) = [d for d in docs if d["kind"] == "IngressClass"]
    assert f"--controller={klass['spec']['controller']}" in args
    assert by_kind["Deployment"]["spec"]["replicas"] > 1
    assert by_kind["Deployment"]["spec"]["template"]["spec"]["serviceAccountName"] == \
        by_kind["ServiceAccount"]["metadata"]["name"]
    services = [d for d in docs if d["kind"] == "Service"]
    assert any(s["spec"]["type"] == "LoadBalancer" for s in services)
    # Everything ingresslib itself reads from these files is valid.
    res = parse_manifests("\n---\n".join(f.read_text() for f in sorted(DEPLOY.glob("*.yaml"))))
    assert [i.metadata.name for i in res.ingresses] == ["hello"]
    assert res.ingresses[0].spec.ingress_class_name == klass["metadata"]["name"]


def test_load_kube_config_falls_back_to_kubeconfig_env(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from ingresslib._kube import load_kube_config

    path = tmp_path / "config"
    path.write_text(json.dumps(kubeconfig_dict("http://127.0.0.1:1")))
    # Not in a pod (no service account token), so $KUBECONFIG is used.
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(path))
    assert load_kube_config().cluster.server == "http://127.0.0.1:1"
    assert load_kube_config(path).namespace == "default"
