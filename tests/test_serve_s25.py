"""``ingresslib serve``'s stop (session 25 review).

1. SIGQUIT, nginx's graceful stop (``nginx -s quit``), met its default action: the process
   was killed with its requests in flight (and dumped core), once serving and while starting.
2. A stop while a reload was being built in a worker thread waited for that build to end,
   however long it took (asyncio.run's default executor shutdown, unbounded on 3.11).
3. A request the shutdown timeout cuts is recorded with status 0 (``000``), as nginx logs one
   that ``worker_shutdown_timeout`` terminates before its response head was sent.
4. An upstream reset (ECONNRESET) in the middle of a body delimited by the close was read as
   that close: the client got the last chunk, a truncated body passed off as complete.
"""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import signal
import socket
import subprocess
import struct
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from ingresslib import _serve_reload
from ingresslib._accesslog import access_fields, format_line
from ingresslib._cli import main
from ingresslib._load import parse_manifests
from ingresslib._router import Router
from ingresslib._serve_reload import Reloader
from ingresslib.proxy._server import ProxyServer

from _serve_helpers import free_port, signal_serve_after

_ROOT = Path(__file__).resolve().parent.parent


def _manifests(port: int | str) -> str:
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


# -- 1. SIGQUIT ------------------------------------------------------------------------------

#: Run in a child process (SIGQUIT's default action would end the test run itself): serve
#: with a request in flight to an upstream that answers once the signal has come ("serving"),
#: or a SIGQUIT while the first table is built ("starting"). Prints serve's exit code and the
#: response's status line.
_CHILD = r"""
import os, signal, socket, sys, threading, time
from ingresslib import _serve
from ingresslib._cli import main

mode, manifest, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
backend = socket.socket()
backend.bind(("127.0.0.1", 0))
backend.listen()
backend.settimeout(5)
open(manifest, "w").write(MANIFESTS(backend.getsockname()[1]))
answers = []

def answer_later(conn):
    time.sleep(0.3)  # the stop has begun: the listener is closed, the request still runs
    conn.recv(65536)
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    conn.close()

if mode == "serving":
    real = _serve.config_digest
    def digest(*a, **k):
        if not answers:
            client = socket.create_connection(("127.0.0.1", port), timeout=5)
            client.sendall(b"GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
            answers.append(client)
            threading.Thread(target=answer_later, args=(backend.accept()[0],)).start()
            os.kill(os.getpid(), signal.SIGQUIT)
            time.sleep(0.1)
        return real(*a, **k)
    _serve.config_digest = digest
else:
    real_build = _serve.build_router
    def build(*a, **k):
        router = real_build(*a, **k)
        os.kill(os.getpid(), signal.SIGQUIT)
        time.sleep(0.1)
        return router
    _serve.build_router = build

rc = main(["serve", "-f", manifest, "--listen", f"127.0.0.1:{port}", "--access-log", "off",
           "--reload-interval", "0", "--shutdown-timeout", "5"])
line = b""
if answers:
    answers[0].settimeout(5)
    line = answers[0].makefile("rb").readline().rstrip()
print(f"rc={rc} status={line.decode()}", flush=True)
"""


def _run_child(tmp_path: Path, mode: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "child.py"
    script.write_text(f"def MANIFESTS(p):\n    return {_manifests('PORT')!r}"
                      ".replace('PORT', str(p))\n" + _CHILD)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))

    def no_core() -> None:  # the old default action dumped core: none written here
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return subprocess.run([sys.executable, str(script), mode, str(tmp_path / "m.yaml"),
                           str(free_port())], capture_output=True, text=True, timeout=60,
                          env=env, cwd=str(tmp_path), preexec_fn=no_core)


def test_sigquit_once_serving_is_a_graceful_stop(tmp_path: Path) -> None:
    """Failed before: the child died of SIGQUIT (return code -3), the request in flight cut."""
    p = _run_child(tmp_path, "serving")
    assert p.returncode == 0, (p.returncode, p.stderr[-2000:])
    assert "rc=0 status=HTTP/1.1 200 OK" in p.stdout, (p.stdout, p.stderr[-2000:])
    assert "stopping: finishing in-flight requests" in p.stderr


def test_sigquit_while_serve_starts_stops_the_start(tmp_path: Path) -> None:
    """Failed before: killed by SIGQUIT (-3). Now the start stops with its one line and the
    shell's code for the signal, 128 + 3, as SIGTERM's 143."""
    p = _run_child(tmp_path, "starting")
    assert p.returncode == 0, (p.returncode, p.stderr[-2000:])
    assert "rc=131 " in p.stdout, (p.stdout, p.stderr[-2000:])
    assert "ingresslib serve: terminated before serving" in p.stderr
    assert "listening on" not in p.stderr


# -- 2. a stop while a reload is being built ------------------------------------------------


def test_a_stop_does_not_wait_for_a_reload_being_built(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Failed before: main() did not return while the build ran (asyncio.run's executor
    shutdown waited for it); the watchdog had to end the build after 6 s."""
    m = tmp_path / "m.yaml"
    m.write_text(_manifests(free_port()))
    entered, release = threading.Event(), threading.Event()
    watchdog_fired: list[bool] = []

    def build(self: Reloader) -> Any:
        entered.set()
        release.wait(30)  # a build of a very large configuration
        raise RuntimeError("abandoned build")

    real_run = Reloader.run

    async def run(self: Reloader) -> None:
        loop = asyncio.get_running_loop()

        async def hup_then_term() -> None:
            os.kill(os.getpid(), signal.SIGHUP)  # a reload starts building
            await loop.run_in_executor(None, entered.wait, 10)
            os.kill(os.getpid(), signal.SIGTERM)  # and the pod is deleted meanwhile

        loop.create_task(hup_then_term())
        await real_run(self)

    def watchdog() -> None:
        if not returned.wait(6):
            watchdog_fired.append(True)
            release.set()

    monkeypatch.setattr(_serve_reload.Reloader, "_build", build)
    monkeypatch.setattr(Reloader, "run", run)
    returned = threading.Event()
    threading.Thread(target=watchdog, daemon=True).start()
    try:
        with caplog.at_level(logging.INFO, logger="ingresslib.serve"):
            assert main(["serve", "-f", str(m), "--listen", "127.0.0.1:0",
                         "--access-log", "off", "--reload-interval", "0"]) == 0
        returned.set()
        assert entered.is_set()
        assert not watchdog_fired, "the stop waited for the reload being built"
        assert any("not waiting for 1 background job" in r.getMessage()
                   for r in caplog.records)
    finally:
        returned.set()
        release.set()


def test_the_bounded_executor_runs_jobs_and_its_threads_are_daemons() -> None:
    from ingresslib._serve_jobs import BoundedExecutor

    ex = BoundedExecutor(max_workers=2)
    names: list[bool] = []
    futures = [ex.submit(lambda: names.append(threading.current_thread().daemon) or 7)
               for _ in range(5)]
    assert [f.result(5) for f in futures] == [7] * 5
    assert names == [True] * 5
    ex.shutdown(wait=True)  # nothing running: returns, and its threads end
    for t in list(ex._threads):
        t.join(2)
        assert not t.is_alive()
    with pytest.raises(RuntimeError):
        ex.submit(lambda: None)


# -- 3. what a request cut by the shutdown timeout is logged with --------------------------


def test_a_request_cut_at_the_shutdown_timeout_is_logged_000() -> None:
    """nginx: ``worker_shutdown_timeout`` ends each connection through its read handler with
    ``c->close`` set (ngx_shutdown_timer_handler), ngx_http_request_handler then calls
    ``ngx_http_terminate_request(r, 0)``, which sets no status, and ngx_http_log_status prints
    ``"%03ui"`` of the status still 0: ``000``. The same here (records with status 0)."""

    backend = socket.socket()
    backend.bind(("127.0.0.1", 0))
    backend.listen()
    backend.setblocking(False)
    records: list[Any] = []
    router = Router(parse_manifests(_manifests(backend.getsockname()[1])))

    async def scenario() -> None:
        server = ProxyServer(router, on_record=records.append)
        await server.start(("127.0.0.1", 0))
        port = server.servers[0].sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /slow HTTP/1.1\r\nHost: app.test\r\n\r\n")
        await writer.drain()
        upstream, _ = await asyncio.wait_for(
            asyncio.get_running_loop().sock_accept(backend), 5)
        try:
            await server.shutdown(0)  # the upstream never answered: aborted
            assert await reader.read() == b""
        finally:
            upstream.close()
            writer.close()

    try:
        asyncio.run(scenario())
    finally:
        backend.close()
    assert [r.status for r in records] == [0]
    line = format_line(access_fields(records[0]))
    assert '"GET /slow HTTP/1.1" 000 0 ' in line


# -- 4. an upstream reset in the middle of a body delimited by its close ---------------------


async def _close_delimited(reset: bool) -> tuple[bytes, list[Any], int]:
    """An upstream answers 200 without a length ("hello", the body delimited by the close),
    then closes with a FIN or (``reset``) an RST (SO_LINGER 0). Returns what the client got
    until EOF, the records and the connections still held."""

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\n\r\nhello")
        await writer.drain()
        await asyncio.sleep(0.05)
        if reset:
            writer.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()

    up = await asyncio.start_server(upstream, "127.0.0.1", 0)
    records: list[Any] = []
    server = ProxyServer(Router(parse_manifests(_manifests(up.sockets[0].getsockname()[1]))),
                         on_record=records.append)
    await server.start(("127.0.0.1", 0))
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", server.servers[0].sockets[0].getsockname()[1])
        writer.write(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
        got = b""
        while not got.endswith(b"0\r\n\r\n"):
            chunk = await asyncio.wait_for(reader.read(65536), 5)
            if not chunk:
                break
            got += chunk
        writer.close()
        return got, records, len(server.connections)
    finally:
        await server.shutdown(0)
        up.close()


def test_an_upstream_reset_mid_body_is_not_passed_off_as_the_end_of_the_body() -> None:
    """Failed before: the reset was fed to h11 as an EOF, which ends a close-delimited body:
    the client got the last chunk (``0\\r\\n\\r\\n``), a truncated download as a whole one,
    and the connection stayed open for its next request. nginx: ngx_event_pipe_read_upstream
    sets ``p->upstream_error`` on the recv error and ngx_http_upstream_process_request
    finalizes with 502, which closes the client's connection without the last chunk."""
    got, records, held = asyncio.run(_close_delimited(reset=True))
    assert got.startswith(b"HTTP/1.1 200 OK\r\n")
    assert got.endswith(b"5\r\nhello\r\n"), got  # the bytes that came, then the close
    assert held == 0
    assert [r.status for r in records] == [200]  # the response had begun (nginx: 200 too)


def test_an_upstream_fin_still_ends_a_close_delimited_body() -> None:
    got, records, held = asyncio.run(_close_delimited(reset=False))
    assert got.endswith(b"5\r\nhello\r\n0\r\n\r\n"), got  # complete: the last chunk
    assert held == 1  # kept alive for the next request
    assert [r.status for r in records] == [200]


def test_an_embedders_sigquit_handler_is_put_back_after_serve(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """serve takes SIGQUIT while it runs (the loop's handler) and leaves the one it found."""
    m = tmp_path / "m.yaml"
    m.write_text(_manifests(free_port()))
    seen: list[int] = []

    def mine(signum: int, frame: Any) -> None:
        seen.append(signum)
        os.kill(os.getpid(), signal.SIGTERM)  # (serve did not take it: stopped all the same)

    before = signal.signal(signal.SIGQUIT, mine)
    try:
        signal_serve_after(monkeypatch, 0.05, signal.SIGQUIT)
        assert main(["serve", "-f", str(m), "--listen", "127.0.0.1:0", "--access-log", "off",
                     "--reload-interval", "0"]) == 0
        assert seen == []  # serve's own handler took it: a graceful stop, exit 0
        assert signal.getsignal(signal.SIGQUIT) is mine
    finally:
        signal.signal(signal.SIGQUIT, before)
