"""The lightkube watch adapter against a fake API server on 127.0.0.1 (tests/_fake_kube.py).

No cluster is reachable here, so the fake speaks the list/watch wire protocol: chunked JSON
events, bookmarks, ``ERROR`` 410, dropped connections, garbage lines, HTTP errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from lightkube import KubeConfig

import ingresslib._kube
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

    async def start_watching(self, plural: str, **options: Any) -> ClusterWatcher:
        """``start(**options)``, then waits for the first table and for a watch of ``plural``."""
        w = self.start(**options)
        await self.synced()
        await self.watching(plural)
        return w

    @property
    def last(self) -> Resources:
        return self.snapshots[-1]

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, 5)


@contextlib.asynccontextmanager
async def running_harness(kube: FakeKube) -> AsyncIterator[Harness]:
    """A Harness on ``kube``, started; its watcher (if one was started) and ``kube`` are
    stopped after. The ``h`` fixtures of the cluster test files are this on their fake."""
    harness = Harness(kube, await kube.start())
    try:
        yield harness
    finally:
        await harness.stop()
        await kube.stop()


@pytest_asyncio.fixture
async def h() -> AsyncIterator[Harness]:
    async with running_harness(FakeKube()) as harness:
        yield harness


def record_backoff_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The watcher's backoff sleeps, noted instead of slept (each sleeps 1 ms)."""
    delays: list[float] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(t: float) -> None:
        delays.append(t)
        await real_sleep(0.001)

    monkeypatch.setattr(ingresslib._kube, "_backoff_sleep", fake_sleep)
    return delays


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
    w = await h.start_watching("services")
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


async def _watch_then_miss_changes(h: Harness) -> ClusterWatcher:
    """Services "keep" and "lost" listed and watched; then "lost" deleted and "new" added
    where the watch never sees it, and the history compacted away: only a re-list can tell."""
    h.kube.put(svc("keep"))
    h.kube.put(svc("lost"))
    w = await h.start_watching("services")
    h.kube.objects["services"].pop(("default", "lost"))
    h.kube.put(svc("new"))
    h.kube.compact()
    return w


@pytest.mark.asyncio
async def test_410_gone_relists_and_catches_up_missed_deletes(h: Harness) -> None:
    w = await _watch_then_miss_changes(h)
    # The stream ends with ERROR 410: the watcher must re-list.
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
    w = await h.start_watching("ingresses")
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

    w = await h.start_watching("services", backoff=Recording())
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
    w = await h.start_watching("ingresses")
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
    w = await h.start_watching("services")
    h.kube.raw_event("services", "ADDED", {"kind": "Service", "metadata": {}})  # no name
    h.kube.raw_event("services", "ADDED", 42)                                  # not an object
    await eventually(lambda: w.stats.garbage == 2)
    await h.watching("services")
    h.kube.put(svc("fine"))
    await eventually(lambda: names(h.last.services) == ["fine"])


@pytest.mark.asyncio
async def test_invalid_object_keeps_last_good_snapshot(h: Harness) -> None:
    h.kube.put(svc("web", 80))
    w = await h.start_watching("services")
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
    w = await h.start_watching("services", debounce=0.2)
    before = len(h.snapshots)
    for i in range(50):
        h.kube.put(svc(f"s{i:02d}"))
    await eventually(lambda: w.stats.events == 50)
    await eventually(lambda: len(h.snapshots) > before, timeout=30)  # the swap: waited for
    await asyncio.sleep(0.4)  # two debounce periods more: room for a second swap to show
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
    from ingresslib._kube import CONFIG_MAPS, WATCHED_KINDS, _raw_resource

    (role,) = [d for d in _deploy_docs() if d["kind"] == "ClusterRole"]
    granted = {(g, r): set(rule["verbs"]) for rule in role["rules"]
               for g in rule["apiGroups"] for r in rule["resources"]}
    needed = {(_raw_resource(k)._api_info.resource.group, _raw_resource(k)._api_info.plural)
              for k in (*WATCHED_KINDS, CONFIG_MAPS)}  # ConfigMaps: gated (session 25)
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


# -- list/watch contract review (https://kubernetes.io/docs/reference/using-api/api-concepts/) --


def _watches(kube: FakeKube, plural: str) -> list[Any]:
    return [r for r in kube.requests if r.plural == plural and r.watch]


@pytest.mark.asyncio
async def test_list_asks_for_the_latest_state_and_watch_for_bookmarks(h: Harness) -> None:
    # The list carries no resourceVersion (a consistent read; "0" could be served stale from a
    # cache and go back in time), and the watch starts at the list's version and asks for
    # bookmarks: the server sends BOOKMARK events only to watches with allowWatchBookmarks=true.
    h.kube.put(svc("web"))
    await h.start_watching("secrets")
    for r in h.kube.requests:
        if not r.watch:
            assert "resourceVersion" not in r.query
    for plural in ("services", "secrets", "endpointslices"):
        (watch,) = _watches(h.kube, plural)
        assert watch.query["resourceVersion"] == "101"
        assert watch.query.get("allowWatchBookmarks") == "true"
    (sec,) = _watches(h.kube, "secrets")
    assert sec.query["fieldSelector"] == "type=kubernetes.io/tls"
    (eps,) = _watches(h.kube, "endpointslices")
    assert eps.query["labelSelector"] == "kubernetes.io/service-name"


@pytest.mark.asyncio
async def test_bookmark_is_never_an_object(h: Harness) -> None:
    w = await h.start_watching("ingressclasses")
    before = (len(h.snapshots), w.stats.events, w.store.generation)
    rv = h.kube.bookmark("ingressclasses")
    await eventually(lambda: w.stats.bookmarks == 1)
    await asyncio.sleep(0.1)
    assert w.stats.resource_versions["IngressClass"] == rv
    assert (len(h.snapshots), w.stats.events, w.store.generation) == before
    assert w.stats.garbage == 0 and len(w.store) == 0


@pytest.mark.asyncio
async def test_normal_watch_end_rewatches_from_last_version_without_relist(h: Harness) -> None:
    w = await h.start_watching("services")
    h.kube.put(svc("a"))
    await eventually(lambda: names(h.last.services) == ["a"])
    last = w.stats.resource_versions["Service"]
    h.kube.end("services")  # the server's watch timeout expired
    await eventually(lambda: len(_watches(h.kube, "services")) == 2)
    assert _watches(h.kube, "services")[-1].query["resourceVersion"] == last
    assert h.kube.count("services", watch=False) == 1 and w.stats.relists == 0
    assert w.stats.stream_errors == 0 and w.stats.garbage == 0
    await h.watching("services")
    h.kube.put(svc("b"))
    await eventually(lambda: names(h.last.services) == ["a", "b"])


@pytest.mark.asyncio
async def test_watches_that_end_at_once_are_not_a_busy_loop(h: Harness) -> None:
    # A server (or proxy) that closes every watch straight away, with 200 and no event: the
    # re-watches must back off like errors do, not spin (client-go calls this a "very short
    # watch").
    w = h.start(backoff=Backoff(initial=0.05, maximum=0.05, jitter=0))
    await h.synced()
    h.kube.end_watches_at_once = True
    h.kube.end("services")
    await asyncio.sleep(0.5)
    # The lower bound waited for (a loaded machine may re-watch late); the upper bound counts
    # what half a second more or less allowed (a busy loop makes hundreds).
    await eventually(lambda: len(_watches(h.kube, "services")) >= 2, timeout=30)
    n = len(_watches(h.kube, "services"))
    assert 2 <= n <= 15, n
    assert w.synced.is_set()


@pytest.mark.asyncio
async def test_http_410_on_watch_request_relists(h: Harness) -> None:
    # "410 Gone" can come as the HTTP status of the watch request itself (not only as an ERROR
    # event): the client must re-list, not retry the same expired version forever.
    w = await _watch_then_miss_changes(h)
    h.kube.fail_next("services", 410, message="too old resource version")
    h.kube.drop("services")
    await eventually(lambda: names(h.last.services) == ["keep", "new"], timeout=2)
    assert w.stats.relists == 1 and h.kube.count("services", watch=False) == 2


@pytest.mark.asyncio
async def test_repeated_410_backs_off(h: Harness) -> None:
    # Every 410 is answered by a re-list after the backoff (client-go's BackoffUntil): 410
    # after 410 (a broken server or proxy) must not become a tight list loop.
    w = await h.start_watching("services", backoff=Backoff(initial=0.05, maximum=0.05, jitter=0))
    h.kube.fail_next("services", 410, times=1000, message="too old resource version")
    h.kube.drop("services")
    await asyncio.sleep(0.5)
    await eventually(lambda: w.stats.relists >= 2, timeout=30)  # waited for, not slept for
    n = h.kube.count("services")
    h.kube.clear_failures()
    assert n <= 20, n
    assert w.stats.relists >= 2


@pytest.mark.asyncio
async def test_410_relist_rebuilds_state_across_namespaces_and_kinds(h: Harness) -> None:
    h.kube.put(svc("web", ns="a"))
    h.kube.put(svc("web", ns="b"))
    h.kube.put(ingress("web", ns="a"))
    w = await h.start_watching("services")
    h.kube.objects["services"].pop(("b", "web"))
    h.kube.put(svc("web", 81, ns="a"))
    h.kube.gone("services")
    await eventually(lambda: w.stats.relists == 1 and len(h.last.services) == 1)
    (only,) = h.last.services
    assert (only.metadata.namespace, only.spec.ports[0].port) == ("a", 81)
    assert names(h.last.ingresses) == ["web"]  # the other kind is untouched


@pytest.mark.asyncio
async def test_event_ordering_and_idempotence(h: Harness) -> None:
    w = await h.start_watching("services")
    # MODIFIED for an object never seen adds it.
    h.kube.raw_event("services", "MODIFIED", dict(svc("ghost"), metadata={
        "name": "ghost", "namespace": "default", "resourceVersion": "900"}))
    await eventually(lambda: names(h.last.services) == ["ghost"])
    # DELETED for an object never seen is ignored (no change, no error).
    gen = w.store.generation
    h.kube.raw_event("services", "DELETED", dict(svc("nobody"), metadata={
        "name": "nobody", "namespace": "default", "resourceVersion": "901"}))
    await eventually(lambda: w.stats.events == 2)
    assert w.store.generation == gen and w.stats.garbage == 0
    # Same name, other namespace and other kind: distinct keys.
    h.kube.put(svc("ghost", ns="other"))
    h.kube.put(ingress("ghost"))
    await eventually(lambda: len(h.last.services) == 2 and len(h.last.ingresses) == 1)
    # A DELETED carries the object's last state (here with a changed spec): it removes the key.
    gone = svc("ghost", 99)
    gone["metadata"]["resourceVersion"] = "950"
    h.kube.raw_event("services", "DELETED", gone)
    await eventually(lambda: [s.metadata.namespace for s in h.last.services] == ["other"])
    assert names(h.last.ingresses) == ["ghost"]
    assert w.stats.resource_versions["Service"] == "950"


@pytest.mark.asyncio
async def test_429_retry_after_is_honoured(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    delays = record_backoff_sleeps(monkeypatch)
    w = await h.start_watching("services", backoff=Backoff(initial=0.001, maximum=0.001, jitter=0))
    h.kube.fail_next("services", 429, headers={"Retry-After": "3"})
    h.kube.drop("services")
    await eventually(lambda: len(delays) == 2)
    await eventually(lambda: len(_watches(h.kube, "services")) == 3)
    await h.watching("services")
    # The drop (backoff 0.001 s), then the 429: the server's 3 s, not the 0.001 s backoff.
    assert delays == [0.001, 3.0]
    assert w.stats.stream_errors == 2


@pytest.mark.asyncio
async def test_5xx_then_recovery_keeps_last_state(h: Harness) -> None:
    h.kube.put(svc("web"))
    w = await h.start_watching("services")
    h.kube.fail_next("services", 503, times=3)
    h.kube.drop("services")
    await eventually(lambda: w.stats.stream_errors == 4)
    assert names(h.last.services) == ["web"] and len(h.snapshots) == 1  # still serving
    await h.watching("services")
    assert h.kube.count("services", watch=False) == 1  # resumed, no relist
    h.kube.put(svc("more"))
    await eventually(lambda: names(h.last.services) == ["more", "web"])


@pytest.mark.asyncio
async def test_truncated_json_line_reconnects_from_last_version(h: Harness) -> None:
    h.kube.put(svc("web"))
    w = await h.start_watching("services")
    rv = w.stats.resource_versions["Service"]
    h.kube.truncate("services", b'{"type": "ADDED", "object": {"kind": "Serv')
    await eventually(lambda: len(_watches(h.kube, "services")) == 2)
    assert _watches(h.kube, "services")[-1].query["resourceVersion"] == rv
    assert names(h.last.services) == ["web"]
    assert w.stats.stream_errors + w.stats.garbage == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [401, 403])
async def test_auth_errors_are_reported_clearly(h: Harness, status: int,
                                                caplog: pytest.LogCaptureFixture) -> None:
    msg = 'secrets is forbidden: User "system:serviceaccount:x:y" cannot list resource "secrets"'
    h.kube.fail_next("secrets", status, times=2, message=msg)
    with caplog.at_level(logging.WARNING, logger="ingresslib.kube"):
        w = h.start()
        await h.synced()
    text = caplog.text
    assert str(status) in text and msg in text
    assert str(status) in w.stats.last_error and "Secret" in w.stats.last_error
    assert w.stats.stream_errors == 2


@pytest.mark.asyncio
async def test_invalid_object_in_a_list_is_left_out_and_the_rest_serves(h: Harness) -> None:
    # Documented policy (docs/cluster.md, SEMANTICS §11): an invalid object is left out (its
    # last valid version stays), the error is recorded and counted; the rest is served.
    h.kube.put(svc("good"))
    h.kube.put(svc("bad", 0))  # port 0 is invalid
    w = h.start()
    await h.synced()
    assert names(h.last.services) == ["good"]
    assert w.stats.invalid_objects == 1
    assert set(w.store.errors) == {("v1/Service", "default", "bad")}
    # Fixed later: it appears, and the error is cleared.
    await h.watching("services")
    h.kube.put(svc("bad", 80))
    await eventually(lambda: names(h.last.services) == ["bad", "good"])
    assert w.store.errors == {}


@pytest.mark.asyncio
async def test_namespace_option_filters_watch_events_too(h: Harness) -> None:
    await h.start_watching("services", namespace="shop")
    assert {r.namespace for r in _watches(h.kube, "services")} == {"shop"}
    h.kube.put(svc("elsewhere", ns="other"))
    h.kube.put(svc("here", ns="shop"))
    await eventually(lambda: names(h.last.services) == ["here"])
