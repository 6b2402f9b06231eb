"""``ingresslib serve``'s stop (session 24 review), and the pieces made one.

1. A second Ctrl-C once stopping started, before the drain itself began (while the first
   digest ran, the listeners opened or the watch tasks ended), was taken for the first one
   again: the drain then went on for the whole ``--shutdown-timeout``.
2. A SIGHUP while a start that a Ctrl-C stopped was still opening its listeners logged
   "SIGHUP: reading the files once started", for a start that was not going to go on.
3. ``Router._set_load_balance``: one "set the default balancer, rebuild, put it back on a
   failure" for ``ProxyServer(load_balance=...)`` and ``serve --config``'s reloads.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from ingresslib import _serve
from ingresslib._cli import main
from ingresslib._iptext import host_port
from ingresslib._load import parse_manifests
from ingresslib._resources import Resources
from ingresslib._router import Router
from ingresslib.proxy._server import ProxyServer
from ingresslib.proxy._server import _url

from _serve_helpers import free_port


def _manifests(port: int) -> str:
    return f"""apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: web}}
spec:
  rules:
  - host: app.test
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec: {{ports: [{{name: http, port: 80, targetPort: http}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: web-0, labels: {{kubernetes.io/service-name: web}}}}
addressType: IPv4
ports: [{{name: http, port: {port}}}]
endpoints: [{{addresses: [127.0.0.1], conditions: {{ready: true}}}}]
"""


def _serve_messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "ingresslib.serve"]


# -- 1. a second Ctrl-C before the drain began -----------------------------------------------


def test_a_second_ctrl_c_while_the_first_digest_runs_cuts_the_drain(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Failed before: the second SIGINT met the handler that sets ``stop`` (already set), the
    drain then waited out --shutdown-timeout (5 s here) for a request its upstream never
    answers, and ended it as "still busy"."""
    backend = socket.socket()
    backend.bind(("127.0.0.1", 0))
    backend.listen()
    backend.settimeout(2)
    m = tmp_path / "m.yaml"
    m.write_text(_manifests(backend.getsockname()[1]))
    port = free_port()
    held: list[socket.socket] = []
    real = _serve.config_digest

    def digest(*a: Any, **k: Any) -> Any:
        # serve listens and the first digest runs (a worker thread): a request goes through
        # to an upstream that never answers, then the operator presses Ctrl-C twice.
        if not held:
            client = socket.create_connection(("127.0.0.1", port), timeout=2)
            held.append(client)
            client.sendall(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
            held.append(backend.accept()[0])  # the request reached the upstream
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)  # the loop's handler runs
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)
        return real(*a, **k)

    monkeypatch.setattr(_serve, "config_digest", digest)
    try:
        with caplog.at_level(logging.INFO, logger="ingresslib.serve"):
            assert main(["serve", "-f", str(m), "--listen", f"127.0.0.1:{port}",
                         "--shutdown-timeout", "5", "--access-log", "off"]) == 0
        assert "interrupted again: aborting the requests in flight" in _serve_messages(caplog)
        client = held[0]
        client.settimeout(2)
        try:
            assert client.recv(100) == b""  # aborted: no response
        except ConnectionResetError:
            pass
    finally:
        for s in (*held, backend):
            s.close()


# -- 2. SIGHUP while a stopped start opens its listeners --------------------------------------


def test_sighup_while_a_stopped_start_opens_its_listeners_reads_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Failed before: "SIGHUP: reading the files once started" (the reloader did not exist
    yet), although the Ctrl-C before it had stopped the start (exit 130)."""
    m = tmp_path / "m.yaml"
    m.write_text(_manifests(free_port()))
    real_start = ProxyServer.start

    async def start(self: ProxyServer, *a: Any, **k: Any) -> Any:
        os.kill(os.getpid(), signal.SIGINT)
        await asyncio.sleep(0.1)  # the loop's handler runs: stop is set
        os.kill(os.getpid(), signal.SIGHUP)
        await asyncio.sleep(0.1)
        return await real_start(self, *a, **k)

    monkeypatch.setattr(ProxyServer, "start", start)
    with caplog.at_level(logging.INFO, logger="ingresslib.serve"):
        assert main(["serve", "-f", str(m), "--listen", "127.0.0.1:0",
                     "--access-log", "off"]) == 130
    messages = _serve_messages(caplog)
    assert "SIGHUP while stopping: nothing is read again" in messages
    assert not [x for x in messages if x.startswith("SIGHUP: reading")]


# -- 3. Router._set_load_balance -----------------------------------------------------------------


def _resources() -> Resources:
    return parse_manifests(_manifests(8080))


def test_set_load_balance_rebuilds_the_routes_in_use() -> None:
    router = Router(_resources())
    before = router.resources
    router._set_load_balance("ewma")
    assert router.load_balance == "ewma" and router.resources is before
    router._set_load_balance("ewma")  # unchanged: nothing to do
    assert router.load_balance == "ewma"


def test_set_load_balance_with_resources_is_an_update() -> None:
    router = Router(_resources())
    res = _resources()
    router._set_load_balance("round_robin", res)
    assert router.resources is res and router.load_balance == "round_robin"


def test_set_load_balance_puts_the_default_back_when_the_build_fails(
        monkeypatch: pytest.MonkeyPatch) -> None:
    router = Router(_resources())
    serving = router.resources
    with pytest.raises(TypeError):
        router._set_load_balance("ewma", {"not": "resources"})  # type: ignore[arg-type]
    assert router.load_balance == "round_robin" and router.resources is serving

    def broken(*a: Any, **k: Any) -> Any:
        raise RuntimeError("build failed")

    monkeypatch.setattr(router, "_build", broken)
    with pytest.raises(RuntimeError):
        router._set_load_balance("ewma")
    assert router.load_balance == "round_robin" and router.resources is serving


def test_proxy_server_load_balance_is_set_on_the_callers_router() -> None:
    async def run() -> None:
        router = Router(_resources())
        ProxyServer(router, load_balance="ewma")
        assert router.load_balance == "ewma"

    asyncio.run(run())


# -- the one HOST:PORT writer ----------------------------------------------------------------


@pytest.mark.parametrize("host, text", [("10.0.0.1", "10.0.0.1:80"), ("::1", "[::1]:80"),
                                        ("app.test", "app.test:80")])
def test_host_port_is_one_function(host: str, text: str) -> None:
    assert host_port(host, 80) == text
    assert _url("http", host, 80) == f"http://{text}"
