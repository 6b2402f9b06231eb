"""``ingresslib serve --kubernetes`` against a fake API server on 127.0.0.1: the first table comes
from the lists, /healthz turns ready once synced, watch events re-route live traffic, and an
invalid object keeps the last good version serving."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from ingresslib._demo import parse_echo, start_echo
from tests._fake_kube import FakeKube, kubeconfig_dict
from tests._server_helpers import Client
from tests.test_serve_cli import _post_status, _start_serve, _stop


def _ingress(service: str, path: str = "/") -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"rules": [{"host": "app.test", "http": {"paths": [
            {"path": path, "pathType": "Prefix",
             "backend": {"service": {"name": service, "port": {"number": 80}}}}]}}]},
    }


def _backend(service: str, port: int) -> list[dict[str, Any]]:
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": service, "namespace": "default"},
         "spec": {"ports": [{"name": "http", "port": 80, "targetPort": "http"}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": f"{service}-1", "namespace": "default",
                      "labels": {"kubernetes.io/service-name": service}},
         "addressType": "IPv4", "ports": [{"name": "http", "port": port}],
         "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": True}}]},
    ]


async def _fake_cluster(tmp_path: Path, *objects: dict[str, Any],
                        kube: FakeKube | None = None) -> tuple[FakeKube, Path]:
    """``kube`` (a new FakeKube by default) started on 127.0.0.1 holding ``objects``, and a
    kubeconfig file in ``tmp_path`` that points at it. The caller stops ``kube``."""
    kube = FakeKube() if kube is None else kube
    url = await kube.start()
    for obj in objects:
        kube.put(obj)
    cfg = tmp_path / "kubeconfig"
    cfg.write_text(json.dumps(kubeconfig_dict(url)))
    return kube, cfg


async def _get(port: int, host: str, path: str = "/") -> tuple[int, bytes]:
    c = await Client.open(port)
    try:
        r = await c.get(host, path)
        return r.status, r.body
    finally:
        await c.close()


async def _until(pred: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await pred():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.1)


async def _reload_metrics(port: int) -> tuple[float, float]:
    text = (await _get(port, "localhost", "/metrics"))[1].decode()
    found = dict(re.findall(r"^nginx_ingress_controller_(success|config_hash) (\S+)$",
                            text, re.M))
    return float(found["success"]), float(found["config_hash"])


async def _watch_events(port: int, kind: str) -> float:
    text = (await _get(port, "localhost", "/metrics"))[1].decode()
    return sum(float(v) for v in re.findall(
        r'^ingresslib_watch_events_total\{[^}]*kind="' + kind + r'"[^}]*\} (\S+)$', text, re.M))


@pytest.mark.network
@pytest.mark.asyncio
async def test_serve_kubernetes_follows_the_cluster(tmp_path: Path) -> None:
    blue = await start_echo("blue", "blue-0")
    green = await start_echo("green", "green-0")
    kube, cfg = await _fake_cluster(tmp_path, _ingress("blue"), *_backend("blue", blue.port),
                                    *_backend("green", green.port))
    p, ports = await asyncio.to_thread(_start_serve, "--kubernetes", "--kubeconfig", str(cfg),
                                       "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0")
    try:
        async def healthy() -> bool:
            return (await _get(ports["metrics"], "localhost", "/healthz"))[0] == 200

        await _until(healthy)
        status, body = await _get(ports["http"], "app.test", "/x")
        assert status == 200 and parse_echo(body)["service"] == "blue"

        # A watch event switches the backend without a restart.
        kube.put(_ingress("green"))

        async def green_serves() -> bool:
            s, b = await _get(ports["http"], "app.test", "/x")
            return s == 200 and parse_echo(b)["service"] == "green"

        await _until(green_serves)

        # An endpoint change is not a reload (ingress-nginx's hash leaves endpoints out, and it
        # does not reload nginx for them): neither the reload counter nor config_hash moves.
        before = await _reload_metrics(ports["metrics"])
        assert before[0] >= 2 and before[1] != 0.0  # the first snapshot, then the green edit
        moved = _backend("green", green.port)[1]
        moved["endpoints"].append({"addresses": ["127.0.0.2"], "conditions": {"ready": False}})
        events = await _watch_events(ports["metrics"], "EndpointSlice")
        kube.put(moved)

        async def slice_seen() -> bool:
            return await _watch_events(ports["metrics"], "EndpointSlice") > events

        await _until(slice_seen)
        await asyncio.sleep(0.3)  # past the watcher's debounce
        assert await _reload_metrics(ports["metrics"]) == before

        # An invalid edit is reported and the last valid version keeps serving.
        bad = _ingress("blue", path="no-slash")
        kube.put(bad)
        await asyncio.sleep(0.5)
        status, body = await _get(ports["http"], "app.test", "/x")
        assert status == 200 and parse_echo(body)["service"] == "green"

        metrics = (await _get(ports["metrics"], "localhost", "/metrics"))[1].decode()
        assert 'ingresslib_watch_events_total{' in metrics and 'kind="Ingress"' in metrics

        # The API server goes away (refused connections, retried with backoff): the process
        # neither exits nor drops its table; the last good configuration keeps serving.
        await kube.stop()
        await asyncio.sleep(0.1)
        assert p.poll() is None
        status, body = await _get(ports["http"], "app.test", "/x")
        assert status == 200 and parse_echo(body)["service"] == "green"
    finally:
        await asyncio.to_thread(_stop, p)
        await kube.stop()
        await blue.stop()
        await green.stop()


def _kubeconfig(tmp_path: Path, *, context: str = "fake", ca: str | None = None) -> str:
    conf = kubeconfig_dict("http://127.0.0.1:9")
    conf["current-context"] = context
    if ca is not None:
        conf["clusters"][0]["cluster"]["certificate-authority"] = ca
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps(conf))
    return str(path)


@pytest.mark.parametrize("case", ["missing-file", "unknown-context", "missing-ca-file"])
def test_serve_kubernetes_unusable_configuration_exits_2(
        case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Regression: the kubeconfig was first read by the watch task, after "listening on"; its
    # failure stopped the server with exit status 0, as if all had gone well.
    from ingresslib._cli import main

    if case == "missing-file":
        path = str(tmp_path / "nope")
    elif case == "unknown-context":
        path = _kubeconfig(tmp_path, context="nope")
    else:
        path = _kubeconfig(tmp_path, ca=str(tmp_path / "no-ca.crt"))
    assert main(["serve", "--kubernetes", "--kubeconfig", path, "--listen", "127.0.0.1:0"]) == 2
    err = capsys.readouterr().err
    assert "cluster configuration" in err and "listening on" not in err


def test_serve_kubernetes_watch_failure_exits_1(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    # A watcher that cannot go on (a bug, an unexpected error) ends serve with 1, the runtime
    # failure code of _cli.py, not 0.
    import ingresslib._kube
    from ingresslib._cli import main

    async def broken(self: Any, stop: Any = None) -> None:
        raise RuntimeError("watcher exploded")

    monkeypatch.setattr(ingresslib._kube.ClusterWatcher, "run", broken)
    path = _kubeconfig(tmp_path)
    assert main(["serve", "--kubernetes", "--kubeconfig", path, "--listen", "127.0.0.1:0",
                 "--access-log", "off"]) == 1
    err = capsys.readouterr().err
    assert "watcher exploded" in err


@pytest.mark.network
@pytest.mark.asyncio
async def test_serve_kubernetes_with_classes_bad_objects_and_a_live_configmap(
        tmp_path: Path) -> None:
    import os
    import ssl

    web = await start_echo("web", "web-0")

    def ing(name: str, host: str, klass: str, path: str = "/",
            tls: str | None = None) -> dict[str, Any]:
        obj = _ingress("web", path)
        obj["metadata"]["name"] = name
        obj["spec"]["ingressClassName"] = klass
        obj["spec"]["rules"][0]["host"] = host
        if tls:
            obj["spec"]["tls"] = [{"hosts": [host], "secretName": tls}]
        return obj

    kube, cfg = await _fake_cluster(
        tmp_path,
        {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
         "metadata": {"name": "ingresslib"}, "spec": {"controller": "ingresslib.io/c"}},
        ing("web", "app.test", "ingresslib"),
        ing("theirs", "other.test", "nginx"),            # another class: not served
        ing("broken", "broken.test", "ingresslib", path="no-slash"),  # invalid
        ing("secure", "secure.test", "ingresslib", tls="bad-cert"),
        *_backend("web", web.port),
        {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
         "metadata": {"name": "bad-cert", "namespace": "default"},
         "data": {"tls.crt": "bm90IGEgY2VydA==", "tls.key": "bm90IGEga2V5"}})
    cm = tmp_path / "cm.yaml"
    cm.write_text('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n'
                  'data: {proxy-body-size: "5"}\n')
    p, ports = await asyncio.to_thread(
        _start_serve, "--kubernetes", "--kubeconfig", str(cfg), "--ingress-class", "ingresslib",
        "--config", str(cm), "--reload-interval", "0.05", "--listen", "127.0.0.1:0",
        "--tls-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--access-log", "off")
    try:
        async def healthy() -> bool:
            return (await _get(ports["metrics"], "localhost", "/healthz"))[0] == 200

        await _until(healthy)
        assert (await _get(ports["http"], "app.test"))[0] == 200
        assert (await _get(ports["http"], "other.test"))[0] == 404
        assert (await _get(ports["http"], "broken.test"))[0] == 404
        # A TLS Secret holding no certificate: HTTPS still answers (the default certificate).
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        c = await Client.open(ports["https"], tls=ctx, sni="secure.test")
        r = await c.get("secure.test")
        await c.close()
        assert r.status == 200 and parse_echo(r.body)["service"] == "web"
        # The ConfigMap file is followed with --kubernetes too.
        assert await _post_status(ports["http"], 10, host="app.test") == 413
        cm.write_text('apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n'
                      'data: {proxy-body-size: "1m"}\n')
        st = cm.stat()
        os.utime(cm, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))

        async def big_ok() -> bool:
            return await _post_status(ports["http"], 10, host="app.test") == 200

        await _until(big_ok)
        # ... and the cluster still drives the routes afterwards.
        kube.put(ing("theirs", "other.test", "ingresslib"))

        async def adopted() -> bool:
            return (await _get(ports["http"], "other.test"))[0] == 200

        await _until(adopted)
        assert (await _get(ports["http"], "app.test"))[0] == 200
    finally:
        err = await asyncio.to_thread(_stop, p)
        await kube.stop()
        await web.stop()
    assert "Ingress default/broken" in err and "bad-cert" in err


@pytest.mark.network
@pytest.mark.asyncio
async def test_serve_kubernetes_without_tls_listen_never_reads_secrets(tmp_path: Path) -> None:
    # Regression: Secrets were always watched, and a Role without "secrets" (TLS terminated in
    # front of ingresslib) held back the first table forever: every request 404, /healthz never
    # ready. Without --tls-listen no certificate is used, so no Secret is read at all.
    web = await start_echo("web", "web-0")
    kube, cfg = await _fake_cluster(tmp_path, _ingress("web"), *_backend("web", web.port))
    kube.fail_next("secrets", 403, times=10_000, message='secrets is forbidden: User '
                   '"system:serviceaccount:ingresslib:ingresslib" cannot list resource "secrets"')
    p, ports = await asyncio.to_thread(_start_serve, "--kubernetes", "--kubeconfig", str(cfg),
                                       "--listen", "127.0.0.1:0", "--metrics-listen",
                                       "127.0.0.1:0", "--access-log", "off")
    try:
        async def healthy() -> bool:
            return (await _get(ports["metrics"], "localhost", "/healthz"))[0] == 200

        await _until(healthy)
        assert (await _get(ports["http"], "app.test"))[0] == 200
        assert kube.count("secrets") == 0
    finally:
        await asyncio.to_thread(_stop, p)
        await kube.stop()
        await web.stop()


@pytest.mark.parametrize("argv, message", [
    (["--kubernetes", "--namespace", "Shop Floor"], "RFC 1123"),
    (["--kubernetes", "--namespace=-shop"], "RFC 1123"),
    (["--kubernetes", "--namespace", "a" * 64], "RFC 1123"),
    (["-f", "m.yaml", "--namespace", "shop"], "--namespace needs --kubernetes"),
    (["-f", "m.yaml", "--kubeconfig", "kc"], "--kubeconfig needs --kubernetes"),
])
def test_serve_kubernetes_option_misuse_exits_2(argv: list[str], message: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    # Regression: a namespace the API server can never have was watched anyway (404 forever,
    # nothing served); --namespace or --kubeconfig without --kubernetes were silently ignored.
    from ingresslib._cli import main

    (tmp_path / "m.yaml").write_text(json.dumps(_ingress("web")))
    argv = [str(tmp_path / a) if a in ("m.yaml", "kc") else a for a in argv]
    if "--kubernetes" in argv:
        argv += ["--kubeconfig", _kubeconfig(tmp_path)]
    assert main(["serve", *argv, "--listen", "127.0.0.1:0", "--reload-interval", "0"]) == 2
    err = capsys.readouterr().err
    assert message in err and "listening on" not in err


def test_serve_kubernetes_that_cannot_listen_closes_its_cluster_client(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The cluster client is made before listening (an unusable configuration is exit 2); a
    # port in use then ended serve with exit 1 and the client's connection pool left open
    # (serve_main called in-process by an embedding).
    import socket

    import lightkube

    from ingresslib._cli import main

    made: list[Any] = []
    real = lightkube.AsyncClient

    class Recording(real):  # type: ignore[misc, valid-type]
        def __init__(self, *a: Any, **kw: Any) -> None:
            super().__init__(*a, **kw)
            self.closed = False
            made.append(self)

        async def close(self) -> None:
            self.closed = True
            await super().close()

    monkeypatch.setattr(lightkube, "AsyncClient", Recording)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--kubernetes", "--kubeconfig", _kubeconfig(tmp_path),
                     "--listen", f"127.0.0.1:{port}"]) == 1
    assert "cannot listen" in capsys.readouterr().err
    assert len(made) == 1 and made[0].closed
