"""Session 24 review of the cluster watch (K1): list+watch against client-go's reflector and
pager, in-cluster configuration, against the fake API server of tests/_fake_kube.py on
127.0.0.1 (port 0)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from lightkube import KubeConfig

from ingresslib._kube import _from_env

from _fake_kube import Request, kubeconfig_dict
from test_kube import Harness, _watches, h, names, svc  # noqa: F401 - h: the fixture

pytestmark = pytest.mark.network


def _lists(h: Harness, plural: str) -> list[Request]:
    return [r for r in h.kube.requests if r.plural == plural and not r.watch]


@pytest.mark.asyncio
async def test_expired_continue_token_falls_back_to_one_unpaged_list(h: Harness) -> None:
    # A cluster whose paged list takes longer than etcd's compaction interval: every continue
    # token has expired by the time it is used (410 Expired). client-go's pager
    # (tools/pager/pager.go) then lists once more without a limit ("fall back to a full
    # list"); restarting the paged list, as before, failed the same way every time and the
    # first table never came.
    for i in range(9):
        h.kube.put(svc(f"s{i}"))

    def always_expire(req: Request) -> None:
        if req.plural == "services" and not req.watch and req.query.get("continue"):
            h.kube.expire_continues()

    h.kube.on_request = always_expire
    w = h.start(list_chunk_size=4)
    await asyncio.wait_for(w.synced.wait(), 2)
    assert names(h.last.services) == [f"s{i}" for i in range(9)]
    lists = _lists(h, "services")
    # page 1, page 2 (410), then one list without limit or continue token
    assert len(lists) == 3
    assert "limit" not in lists[2].query and "continue" not in lists[2].query
    assert w.stats.relists == 1 and w.stats.stream_errors == 0
    # the watch starts from the unpaged list's version
    await h.watching("services")
    assert _watches(h.kube, "services")[0].query["resourceVersion"] == str(h.kube.rv)


@pytest.mark.asyncio
async def test_unpaged_fallback_list_catches_up_deletes(h: Harness) -> None:
    # The fallback list is a complete list: what was deleted meanwhile is dropped.
    for i in range(6):
        h.kube.put(svc(f"s{i}"))
    w = await h.start_watching("services", list_chunk_size=4)
    seen = 0

    def expire_once(req: Request) -> None:
        nonlocal seen
        if req.plural == "services" and not req.watch and req.query.get("continue"):
            seen += 1
            if seen == 1:
                h.kube.expire_continues()
                h.kube.delete("Service", "default", "s5")

    h.kube.on_request = expire_once
    h.kube.gone("services")  # the watch expires: a re-list, paged, whose page 2 expires
    await asyncio.wait_for(_until(lambda: names(h.last.services) == [f"s{i}" for i in range(5)]),
                           2)
    assert "limit" not in _lists(h, "services")[-1].query
    assert w.stats.relists == 2  # the watch's 410, then the continue token's


async def _until(pred: Callable[[], bool]) -> None:
    while not pred():
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("env", [None, ""])
def test_service_account_token_without_service_env_uses_the_kubeconfig(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: str | None) -> None:
    # A service account token mounted into a container that runs outside Kubernetes: no
    # KUBERNETES_SERVICE_HOST/PORT, or empty ones. client-go's rest.InClusterConfig answers
    # ErrNotInCluster and the kubeconfig is used; lightkube read the token, then raised
    # KeyError('KUBERNETES_SERVICE_HOST') out of the configuration, or (empty) made the
    # server "https://:".
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text("t0k3n")
    (sa / "namespace").write_text("default")
    config = tmp_path / "config"
    config.write_text(json.dumps(kubeconfig_dict("http://127.0.0.1:9")))
    for var in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT"):
        if env is None:
            monkeypatch.delenv(var, raising=False)
        else:
            monkeypatch.setenv(var, env)
    monkeypatch.setenv("KUBECONFIG", str(config))

    class Mounted(KubeConfig):
        @classmethod
        def from_service_account(cls, service_account: object = sa) -> KubeConfig:
            return super().from_service_account(service_account)  # type: ignore[arg-type]

    conf = _from_env(Mounted)
    assert conf.get().cluster.server == "http://127.0.0.1:9"


def test_service_account_with_ipv6_service_host(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # In a pod of an IPv6 (or dual-stack, IPv6 first) cluster KUBERNETES_SERVICE_HOST is an
    # IPv6 address: the server URL brackets it, as client-go's net.JoinHostPort does.
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text("t0k3n")
    (sa / "namespace").write_text("shop")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00:10:96::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")

    class InPod(KubeConfig):
        @classmethod
        def from_service_account(cls, service_account: object = sa) -> KubeConfig:
            return super().from_service_account(service_account)  # type: ignore[arg-type]

    conf = _from_env(InPod).get()
    assert conf.cluster.server == "https://[fd00:10:96::1]:443"
    assert conf.namespace == "shop"


@pytest.mark.asyncio
async def test_exec_credential_plugin_of_api_version_v1(tmp_path: Path) -> None:
    # client.authentication.k8s.io/v1 (GA since Kubernetes 1.22) is what recent kubeconfigs
    # name for exec plugins. lightkube refused it on every request ("auth exec api version
    # ... not implemented"), retried for ever: the watcher never got its first table.
    import sys

    from ingresslib._kube import ClusterWatcher, load_kube_config

    from _fake_kube import FakeKube

    ran = tmp_path / "ran"
    plugin = tmp_path / "bin" / "creds"
    plugin.parent.mkdir()
    plugin.write_text(
        f"#!{sys.executable}\n"
        "import json, os\n"
        f"open({str(ran)!r}, 'a').write('x')\n"
        "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1',\n"
        "                  'kind': 'ExecCredential', 'status': {'token': 's3cr3t'}}))\n")
    plugin.chmod(0o755)
    kube = FakeKube()
    url = await kube.start()
    conf = kubeconfig_dict(url)
    conf["users"] = [{"name": "nobody", "user": {"exec": {
        "apiVersion": "client.authentication.k8s.io/v1", "command": "./bin/creds",
        "interactiveMode": "Never"}}}]
    path = tmp_path / "config"
    path.write_text(json.dumps(conf))
    kube.put(svc("web"))
    stop = asyncio.Event()
    snapshots: list[object] = []
    w = ClusterWatcher(snapshots.append, config=load_kube_config(path), debounce=0.01, seed=1)
    task = asyncio.create_task(w.run(stop))
    try:
        await asyncio.wait_for(w.synced.wait(), 2)
        assert ran.read_text().startswith("x")
        assert w.stats.stream_errors == 0
    finally:
        stop.set()
        await asyncio.wait_for(task, 2)
        await kube.stop()


class _TokenServer:
    """A minimal API server for Services alone that accepts one bearer token at a time (the
    kubelet rotating a bound service account token, the API server refusing the old one)."""

    def __init__(self) -> None:
        self.valid = "Bearer old"
        self.seen: list[tuple[str, str]] = []  # (request target, Authorization)
        self._server: asyncio.Server | None = None

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            target = head.split(" ", 2)[1]
            auth = next((line.split(":", 1)[1].strip() for line in head.split("\r\n")[1:]
                         if line.lower().startswith("authorization:")), "")
            self.seen.append((target, auth))
            if auth != self.valid:
                body = json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                   "reason": "Unauthorized", "code": 401}).encode()
                code = b"401 Unauthorized"
            elif "watch=true" in target:
                # A watch the server ends at once, with one bookmark (not "very short").
                body = json.dumps({"type": "BOOKMARK", "object": {
                    "kind": "Service", "apiVersion": "v1",
                    "metadata": {"resourceVersion": "7"}}}).encode() + b"\n"
                code = b"200 OK"
            else:
                body = json.dumps({"kind": "ServiceList", "apiVersion": "v1",
                                   "metadata": {"resourceVersion": "7"}, "items": [
                                       svc("web")]}).encode()
                code = b"200 OK"
            writer.write(b"HTTP/1.1 " + code + b"\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.mark.asyncio
async def test_rotated_token_file_is_read_again_on_401(tmp_path: Path) -> None:
    # Bound service account tokens are rotated by the kubelet (about hourly); the in-cluster
    # configuration names the token file (lightkube's BearerTokenFileAuth), which is read
    # again when the API server answers 401, and the request sent again: no failed request,
    # no error logged, as client-go's cached file token source.
    from lightkube import KubeConfig

    from ingresslib._kube import WATCHED_KINDS, ClusterWatcher

    server = _TokenServer()
    url = await server.start()
    token = tmp_path / "token"
    token.write_text("old\n")
    conf = kubeconfig_dict(url)
    conf["users"] = [{"name": "nobody", "user": {"tokenFile": str(token)}}]
    services = tuple(k for k in WATCHED_KINDS if k.kind == "Service")
    stop = asyncio.Event()
    w = ClusterWatcher(lambda res: None, config=KubeConfig.from_dict(conf), kinds=services,
                       debounce=0.01, seed=1, min_watch_timeout=None)
    task = asyncio.create_task(w.run(stop))
    try:
        await asyncio.wait_for(w.synced.wait(), 2)
        token.write_text("new\n")
        server.valid = "Bearer new"
        await asyncio.wait_for(_until(lambda: any(a == "Bearer new" and "watch=true" in t
                                                  for t, a in server.seen)), 2)
        assert w.stats.stream_errors == 0 and w.stats.lists == 1
        refused = [t for t, a in server.seen if a == "Bearer old" and "watch=true" in t]
        assert refused  # the old token was tried, refused, and the request sent again
    finally:
        stop.set()
        await asyncio.wait_for(task, 2)
        await server.stop()
