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
from tests.test_serve_cli import _start_serve, _stop


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
    kube = FakeKube()
    url = await kube.start()
    for obj in [_ingress("blue"), *_backend("blue", blue.port), *_backend("green", green.port)]:
        kube.put(obj)
    cfg = tmp_path / "kubeconfig"
    cfg.write_text(json.dumps(kubeconfig_dict(url)))
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
