"""Session 14 review of ``serve --kubernetes`` (tests/_fake_kube_s14.py on 127.0.0.1): the
Secrets of ``auth-type: basic`` read from the cluster (only those named, only once named), watch
timeouts asked of the server as client-go's reflector asks, events of the wrong kind or with no
object skipped, the first 410 backed off, readiness dropped first when stopping.

Every test here failed on the code before its fix; each says what it guards.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import subprocess
import sys
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

import ingresslib._kube
from ingresslib._kube import AUTH_SECRETS, WATCHED_KINDS, Backoff, ClusterWatcher

from _fake_kube import kubeconfig_dict
from _fake_kube_s14 import FakeKubeS14
from _serve_helpers import cluster_change_during_reload
from test_kube import Harness, eventually, ingress, names, running_harness, svc

pytestmark = pytest.mark.network

ROOT = Path(__file__).resolve().parent.parent
KINDS_WITH_AUTH = (*WATCHED_KINDS, AUTH_SECRETS)
P = "nginx.ingress.kubernetes.io/"


@pytest_asyncio.fixture
async def h() -> AsyncIterator[Harness]:
    async with running_harness(FakeKubeS14()) as harness:
        yield harness


def sha(password: str) -> str:
    return "{SHA}" + base64.b64encode(hashlib.sha1(password.encode()).digest()).decode()


def auth_secret(name: str, users: dict[str, str], ns: str = "default",
                type_: str = "Opaque") -> dict[str, Any]:
    text = "".join(f"{u}:{sha(p)}\n" for u, p in users.items())
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns},
            "type": type_, "data": {"auth": base64.b64encode(text.encode()).decode()}}


def basic_ingress(name: str, secret: str, ns: str = "default", host: str = "a.example",
                  service: str = "web") -> dict[str, Any]:
    ing = ingress(name, ns=ns)
    ing["metadata"]["annotations"] = {P + "auth-type": "basic", P + "auth-secret": secret,
                                      P + "auth-realm": "staff"}
    rule = ing["spec"]["rules"][0]
    rule["host"] = host
    rule["http"]["paths"][0]["backend"]["service"]["name"] = service
    return ing


async def start_with_auth(h: Harness, *objects: dict[str, Any], secret_watches: int = 0,
                          **options: Any) -> ClusterWatcher:
    """Puts ``objects`` in the fake API server, in order, then starts the watcher with the auth
    Secret watch (and ``options``) and waits for its first table (and, with
    ``secret_watches``, until that many Secret watches are open)."""
    for obj in objects:
        h.kube.put(obj)
    w = h.start(kinds=KINDS_WITH_AUTH, **options)
    await h.synced()
    if secret_watches:
        await h.watching("secrets", secret_watches)
    return w


def secret_names(res: Any) -> list[str]:
    return sorted(f"{s.metadata.namespace}/{s.metadata.name}" for s in res.secrets)


def opaque_requests(kube: FakeKubeS14) -> list[Any]:
    return [r for r in kube.requests if r.plural == "secrets"
            and r.query.get("fieldSelector") == "type=Opaque"]


# -- basic-auth Secrets from the cluster ----------------------------------------------------------


@pytest.mark.asyncio
async def test_no_opaque_secret_is_read_while_no_ingress_uses_basic_auth(h: Harness) -> None:
    # Least data: the auth Secret watch starts only once an Ingress names a Secret.
    w = await start_with_auth(h, svc("web"), ingress("plain"),
                              auth_secret("passwords", {"alice": "pw"}))
    await asyncio.sleep(0.2)
    assert opaque_requests(h.kube) == [] and h.kube.gets == []
    assert secret_names(h.last) == []
    # An Ingress that names one: now the Secret is read (the list, filtered on arrival).
    h.kube.put(basic_ingress("staff", "passwords"))
    await eventually(lambda: secret_names(h.last) == ["default/passwords"])
    assert w.synced.is_set()


@pytest.mark.asyncio
async def test_only_named_secrets_are_kept_and_followed(h: Harness) -> None:
    w = await start_with_auth(h, svc("web"), basic_ingress("staff", "passwords"),
                              auth_secret("passwords", {"alice": "pw"}),
                              auth_secret("unrelated", {"bob": "pw"}),
                              auth_secret("elsewhere", {"eve": "pw"}, ns="other"))
    # The first table already has the Secret: it waited for the auth Secrets' first list.
    assert secret_names(h.snapshots[0]) == ["default/passwords"]
    assert len(w.store) == 3  # Service, Ingress, one Secret: the other two were dropped
    await h.watching("secrets")
    # Events for Secrets no Ingress names are dropped on receipt, never cached.
    h.kube.put(auth_secret("unrelated", {"bob": "new"}))
    h.kube.put(auth_secret("passwords", {"alice": "new"}))
    await eventually(lambda: h.last.secrets[0].data != h.snapshots[0].secrets[0].data)
    assert secret_names(h.last) == ["default/passwords"]
    assert ("v1/Secret", "default", "unrelated") not in w.store
    # Deleted: gone from the table (its routes then answer 503, as from files).
    h.kube.delete("Secret", "default", "passwords")
    await eventually(lambda: secret_names(h.last) == [])


@pytest.mark.asyncio
async def test_newly_named_secret_is_fetched_and_unnamed_one_dropped(h: Harness) -> None:
    w = await start_with_auth(h, svc("web"), basic_ingress("staff", "first"),
                              auth_secret("first", {"alice": "pw"}),
                              auth_secret("second", {"bob": "pw"}), secret_watches=1)
    lists = len(h.kube.list_requests("secrets"))
    # The Ingress now names another Secret: fetched by name (no re-list of every Secret), and
    # the one no longer named leaves the store.
    h.kube.put(basic_ingress("staff", "second"))
    await eventually(lambda: secret_names(h.last) == ["default/second"])
    assert h.kube.gets == [("secrets", "default", "second")]
    assert len(h.kube.list_requests("secrets")) == lists
    assert ("v1/Secret", "default", "first") not in w.store
    # A Secret named before it exists: 404, nothing; created later: the watch brings it.
    h.kube.put(basic_ingress("later", "not-yet"))
    await eventually(lambda: ("secrets", "default", "not-yet") in h.kube.gets)
    h.kube.put(auth_secret("not-yet", {"carol": "pw"}))
    await eventually(lambda: secret_names(h.last) == ["default/not-yet", "default/second"])


@pytest.mark.asyncio
async def test_a_failed_get_is_retried_after_the_backoff(h: Harness) -> None:
    w = await start_with_auth(h, svc("web"), basic_ingress("staff", "first"),
                              auth_secret("first", {"alice": "pw"}),
                              auth_secret("second", {"bob": "pw"}), secret_watches=1)
    assert isinstance(h.kube, FakeKubeS14)
    h.kube.fail_next("secrets", 500, times=2)  # the next two requests: the get, and its retry
    h.kube.put(basic_ingress("staff", "second"))
    await eventually(lambda: secret_names(h.last) == ["default/second"])
    assert h.kube.gets == [("secrets", "default", "second")] * 3
    assert w.stats.stream_errors >= 2 and "get" in w.stats.last_error


@pytest.mark.asyncio
async def test_cross_namespace_and_canary_references_read_nothing(h: Harness) -> None:
    # What the proxy refuses to read (another namespace; a canary's auth annotations) is not
    # fetched either.
    h.kube.put(svc("web"))
    h.kube.put(auth_secret("passwords", {"alice": "pw"}, ns="other"))
    h.kube.put(basic_ingress("cross", "other/passwords"))
    canary = basic_ingress("canary", "passwords")
    canary["metadata"]["annotations"][P + "canary"] = "true"
    await start_with_auth(h, canary)
    await asyncio.sleep(0.2)
    assert opaque_requests(h.kube) == [] and secret_names(h.last) == []


@pytest.mark.asyncio
async def test_denied_auth_secrets_do_not_hold_back_the_first_table(h: Harness) -> None:
    # A Role without secrets: the auth Secret list is refused. The first table still comes
    # (the routes answer 503 until the Secret can be read), unlike a kind the table needs.
    assert isinstance(h.kube, FakeKubeS14)
    h.kube.rbac = lambda verb, plural, ns: plural != "secrets"
    h.kube.put(svc("web"))
    h.kube.put(basic_ingress("staff", "passwords"))
    h.kube.put(auth_secret("passwords", {"alice": "pw"}))
    w = h.start(kinds=(*[k for k in WATCHED_KINDS if k.kind != "Secret"], AUTH_SECRETS))
    await h.synced()
    assert names(h.last.ingresses) == ["staff"] and secret_names(h.last) == []
    assert "auth Secret list" in w.stats.last_error or "403" in w.stats.last_error
    # The grant is fixed: the retried list brings the Secret, without a restart.
    h.kube.rbac = None
    await eventually(lambda: secret_names(h.last) == ["default/passwords"], timeout=5)


@pytest.mark.asyncio
async def test_tls_and_auth_secret_watches_do_not_drop_each_other(h: Harness) -> None:
    # Two watches of one kind: a re-list of either is complete for its own type only.
    h.kube.put(svc("web"))
    h.kube.put(basic_ingress("staff", "passwords"))
    h.kube.put(auth_secret("passwords", {"alice": "pw"}))
    h.kube.put({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "cert"},
                "type": "kubernetes.io/tls", "data": {"tls.crt": "eA==", "tls.key": "eA=="}})
    w = h.start(kinds=KINDS_WITH_AUTH)
    await h.synced()
    assert secret_names(h.last) == ["default/cert", "default/passwords"]
    await h.watching("secrets", 2)
    relists = w.stats.relists
    h.kube.gone("secrets")  # both Secret watches get 410 and re-list
    await eventually(lambda: w.stats.relists >= relists + 2)
    await h.watching("secrets", 2)
    await asyncio.sleep(0.15)
    assert secret_names(h.last) == ["default/cert", "default/passwords"]
    # A server or proxy that ignores field selectors shows the TLS watch the Opaque Secret: it
    # is "not selected" there (as a DELETED), which must not remove the auth watch's Secret.
    from _fake_kube import _event

    (tls_watch,) = [x for x in h.kube.watches if x.plural == "secrets" and x.accept(
        {"type": "kubernetes.io/tls", "metadata": {"namespace": "default"}})]
    changed = dict(auth_secret("passwords", {"alice": "again"}))
    changed["metadata"] = dict(changed["metadata"], resourceVersion=str(h.kube.rv + 1))
    events = w.stats.events
    tls_watch.queue.put_nowait(("line", _event("MODIFIED", changed)))
    await eventually(lambda: w.stats.events == events + 1)
    await asyncio.sleep(0.15)  # past the debounce
    assert secret_names(h.last) == ["default/cert", "default/passwords"]
    assert ("v1/Secret", "default", "passwords") in w.store


# -- serve --kubernetes end to end ---------------------------------------------------------------


async def _http(port: int, host: str, path: str = "/", auth: str | None = None
                ) -> tuple[int, bytes]:
    from tests._server_helpers import Client

    c = await Client.open(port)
    try:
        headers = [("Authorization", auth)] if auth else []
        r = await c.get(host, path, headers=headers)
        return r.status, r.body
    finally:
        await c.close()


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.asyncio
async def test_serve_kubernetes_basic_auth_from_the_cluster(tmp_path: Path) -> None:
    # Regression: only kubernetes.io/tls Secrets were watched, so an Ingress with auth-type:
    # basic answered 503 in a cluster while the same manifests worked from files.
    from ingresslib._demo import start_echo
    from tests.test_serve_cli import _start_serve, _stop
    from tests.test_serve_kube import _backend, _fake_cluster

    web = await start_echo("web", "web-0")
    kube, cfg = await _fake_cluster(tmp_path, basic_ingress("staff", "passwords", host="app.test"),
                                    auth_secret("passwords", {"alice": "s3cret"}),
                                    auth_secret("unrelated", {"bob": "x"}),
                                    *_backend("web", web.port), kube=FakeKubeS14())
    p, ports = await asyncio.to_thread(_start_serve, "--kubernetes", "--kubeconfig", str(cfg),
                                       "--listen", "127.0.0.1:0", "--metrics-listen",
                                       "127.0.0.1:0", "--access-log", "off")
    try:
        async def status(auth: str | None = None) -> int:
            return (await _http(ports["http"], "app.test", "/x", auth))[0]

        async def until(want: int, auth: str | None = None) -> None:
            deadline = time.monotonic() + 10
            while (got := await status(auth)) != want:
                assert time.monotonic() < deadline, f"{got} != {want}"
                await asyncio.sleep(0.1)

        async def healthy() -> bool:
            return (await _http(ports["metrics"], "localhost", "/healthz"))[0] == 200

        deadline = time.monotonic() + 10
        while not await healthy():
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        assert await status() == 401
        assert await status(_basic("alice", "wrong")) == 401
        assert await status(_basic("alice", "s3cret")) == 200
        assert await status(_basic("bob", "x")) == 401  # another Secret's user
        # A password change takes effect without a restart.
        kube.put(auth_secret("passwords", {"alice": "changed"}))
        await until(200, _basic("alice", "changed"))
        assert await status(_basic("alice", "s3cret")) == 401
        # The Secret deleted: 503, as from files ("no such Secret").
        kube.delete("Secret", "default", "passwords")
        await until(503, _basic("alice", "changed"))
    finally:
        await asyncio.to_thread(_stop, p)
        await kube.stop()
        await web.stop()


@pytest.mark.asyncio
async def test_no_auth_secrets_leaves_opaque_secrets_unread(monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    # The opt-out for operators who do not want Opaque Secrets read (args.no_auth_secrets;
    # the lead adds the flag --no-auth-secrets to the serve parser in _cli.py).
    from ingresslib import _serve

    seen: list[tuple[Any, ...]] = []

    class Recorder:
        def __init__(self, *a: Any, kinds: tuple[Any, ...], **kw: Any) -> None:
            seen.append(kinds)

        async def run(self, stop: asyncio.Event | None = None) -> None:
            return None

    monkeypatch.setattr(ingresslib._kube, "ClusterWatcher", Recorder)
    for flag in (False, True):
        args = argparse.Namespace(no_auth_secrets=flag, namespace=None, kubeconfig=None,
                                  ingress_class=None, controller=None)
        await _serve._watch(args, None, None, None, asyncio.Event(), asyncio.Event(),
                            on_reload=lambda *a, **k: None, kube_client=object())
    assert [AUTH_SECRETS in k for k in seen] == [True, False]


# -- watch requests as client-go's reflector makes them ------------------------------------------


@pytest.mark.asyncio
async def test_watches_ask_for_a_random_5_to_10_minute_timeout(h: Harness) -> None:
    # client-go: timeoutSeconds = minWatchTimeout * (rand + 1), minWatchTimeout 5 minutes, so a
    # watch on a connection that died silently ends on the server's side too.
    assert isinstance(h.kube, FakeKubeS14)
    h.start()
    await h.synced()
    for plural in ("ingresses", "services"):
        await h.watching(plural)
    asked = [int(r.query["timeoutSeconds"]) for r in h.kube.requests if r.watch]
    assert len(asked) >= 5 and all(300 <= t < 600 for t in asked), asked
    assert len(set(asked)) > 1  # random, so replicas do not reconnect in step


# -- events of the wrong kind, or with no object -------------------------------------------------


@pytest.mark.asyncio
async def test_event_of_another_kind_is_skipped_not_cached(h: Harness) -> None:
    w = await h.start_watching("ingresses")
    assert isinstance(h.kube, FakeKubeS14)
    watches = len(h.kube.watch_requests("ingresses"))
    intruder = svc("intruder")
    intruder["metadata"]["resourceVersion"] = "999"
    h.kube.raw_event("ingresses", "ADDED", intruder)
    h.kube.raw_event("ingresses", "ADDED", dict(ingress("v1beta"), apiVersion="extensions/v1beta1"))
    h.kube.put(ingress("after"))
    await eventually(lambda: names(h.last.ingresses) == ["after"])
    assert names(h.last.services) == []  # it did not enter the Service cache
    assert w.stats.garbage == 2 and "extensions/v1beta1 Ingress" in w.stats.last_error
    assert w.stats.resource_versions["Ingress"] != "999"  # nor moved the resume point
    assert len(h.kube.watch_requests("ingresses")) == watches  # the watch went on


@pytest.mark.asyncio
@pytest.mark.parametrize("bad", [[1, 2], "text", None, 7])
async def test_event_whose_object_is_not_an_object_is_skipped(h: Harness, bad: Any) -> None:
    # Before: lightkube's dict(value) raised, the stream failed and reconnected from before
    # the event, which a real server would replay on every reconnect.
    w = await h.start_watching("services")
    assert isinstance(h.kube, FakeKubeS14)
    watches = len(h.kube.watch_requests("services"))
    h.kube.raw_event("services", "MODIFIED", bad)
    h.kube.put(svc("after"))
    await eventually(lambda: names(h.last.services) == ["after"])
    assert w.stats.garbage == 1 and w.stats.reconnects == 0 and w.stats.stream_errors == 0
    assert len(h.kube.watch_requests("services")) == watches


# -- 410 Gone: backed off before the re-list, as client-go ---------------------------------------


@pytest.mark.asyncio
async def test_first_410_waits_for_the_backoff_before_relisting(
        h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[tuple[float, int]] = []
    real_sleep = asyncio.sleep

    async def fake_sleep(t: float) -> None:
        assert isinstance(h.kube, FakeKubeS14)
        slept.append((t, len(h.kube.list_requests("services"))))
        await real_sleep(0)

    monkeypatch.setattr(ingresslib._kube, "_backoff_sleep", fake_sleep)
    w = await h.start_watching("services", backoff=Backoff(initial=0.8, maximum=30, jitter=0))
    h.kube.gone("services")
    await eventually(lambda: w.stats.relists == 1 and w.stats.lists == 6)
    # One sleep, of client-go's first backoff step (800 ms), before the second list.
    assert slept == [(0.8, 1)]
    h.kube.put(svc("after"))  # an event resets the streak
    await eventually(lambda: names(h.last.services) == ["after"])
    h.kube.gone("services")
    await eventually(lambda: w.stats.relists == 2)
    assert [t for t, _ in slept] == [0.8, 0.8]


# -- stopping: unready first ---------------------------------------------------------------------


_SLOW_STOP = """
import asyncio, sys
import ingresslib._kube as k

_run = k.ClusterWatcher.run

async def run(self, stop=None):
    try:
        await _run(self, stop)
    finally:
        # A watcher whose connections take a while to close (a stuck TCP close, a slow proxy):
        # 2 s, whatever cancels it (serve waits up to 5 s for it).
        loop = asyncio.get_running_loop()
        end = loop.time() + 2.0
        while (left := end - loop.time()) > 0:
            try:
                await asyncio.sleep(left)
            except asyncio.CancelledError:
                pass

k.ClusterWatcher.run = run
from ingresslib._cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.asyncio
async def test_healthz_is_unready_as_soon_as_stopping_starts(tmp_path: Path) -> None:
    # Regression: /healthz stayed 200 while the watch tasks were cancelled (up to 5 s) and only
    # turned 503 when the drain began; ingress-nginx fails its health check first.
    from tests.test_serve_kube import _backend, _fake_cluster

    kube, cfg = await _fake_cluster(tmp_path, ingress("web"), *_backend("web", 9),
                                    kube=FakeKubeS14())
    script = tmp_path / "slow_stop.py"
    script.write_text(_SLOW_STOP)
    p = subprocess.Popen([sys.executable, str(script), "serve", "--kubernetes", "--kubeconfig",
                          str(cfg), "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
                          "--access-log", "off"], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True, cwd=str(ROOT),
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert p.stderr is not None
        mport = 0
        deadline = time.monotonic() + 20
        while not mport and time.monotonic() < deadline:
            line = await asyncio.to_thread(p.stderr.readline)
            if line.startswith("metrics on "):
                mport = int(line.split()[2].rsplit(":", 1)[1].split("/")[0])
        assert mport

        async def healthz() -> int:
            return (await _http(mport, "localhost", "/healthz"))[0]

        deadline = time.monotonic() + 10
        while await healthz() != 200:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        p.send_signal(signal.SIGTERM)
        # Stopping; the watcher is still closing (2 s). Polled, not slept for: a loaded machine
        # may handle the signal after a fixed 0.5 s.
        deadline = time.monotonic() + 30
        while p.poll() is None and await healthz() != 503 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert p.poll() is None
        assert await healthz() == 503
    finally:
        p.send_signal(signal.SIGTERM)
        await asyncio.to_thread(p.communicate, None, 15)
        await kube.stop()


# -- config_hash when a ConfigMap reload and a cluster snapshot overlap --------------------------


def _configmap(balance: str) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": "ingresslib", "namespace": "ingresslib"},
                       "data": {"load-balance": balance}})


@pytest.mark.asyncio
async def test_config_hash_is_the_newest_swaps_when_reload_and_snapshot_overlap(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Regression: the cluster swap put the ConfigMap the reloader had not yet recorded (its
    # ``config`` is set on the loop after the build) into its digest, and the reloader's own
    # report, which came later, put back the digest of the resources before the cluster swap.
    # config_hash then showed a configuration that never served, until the next change.
    from lightkube import KubeConfig

    from ingresslib import _serve
    from ingresslib._cli import build_parser
    from ingresslib._config import ServerConfig, load_config
    from ingresslib._metrics import Metrics
    from ingresslib._resources import Resources

    cm = tmp_path / "configmap.json"
    cm.write_text(_configmap("round_robin"))
    files_state = _serve._snapshot([str(cm)])
    res1 = Resources.from_dicts([svc("web"), ingress("one", path="/one")])
    res2 = Resources.from_dicts([svc("web"), ingress("one", path="/one"),
                                 ingress("two", path="/two")])
    recorded: list[Any] = []
    real_digest = _serve.config_digest
    swapped = cluster_change_during_reload(monkeypatch, cm, res1, res2, _configmap("ewma"))
    monkeypatch.setattr(Metrics, "reload_succeeded",
                        lambda self, now, config_hash=None: recorded.append(config_hash))
    args = build_parser().parse_args([
        "serve", "--kubernetes", "--config", str(cm), "--reload-interval", "0.05",
        "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--access-log", "off"])
    kube_config = KubeConfig.from_dict(kubeconfig_dict("http://127.0.0.1:9")).get()
    rc = await _serve._serve(args, Resources(), ServerConfig(), kube_config, files_state)
    assert rc == 0 and swapped.is_set()
    new_cfg = load_config(cm)
    serving = real_digest(res2, _serve._served(res2, None, None), new_cfg)
    assert recorded[-1] == serving
