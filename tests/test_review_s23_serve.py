"""``ingresslib serve`` reviewed as a user runs it (S23, Y6).

A stderr that cannot be written (a pipe whose reader left: ``serve ... 2>&1 | grep -m1
'listening on'``, a log shipper that died; a full disk) ended ``serve``: the
``BrokenPipeError`` of its ``listening on`` line escaped, the listeners it had just opened
closed with the process (exit 1), and an error line's (invalid manifests: exit 2) turned the
documented exit code into 1 with a traceback. The log's own lines were already dropped quietly
(``logging``); ``serve``'s own lines now are too, and it serves on.

``_close_side_servers``: one helper closes the metrics listener and the cluster client on
every way ``_serve`` ends (it was written out three times).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ingresslib import _serve
from ingresslib._cli import main

from _serve_helpers import free_port, signal_serve_after

pytestmark = pytest.mark.network


@pytest.fixture(autouse=True)
def _no_handler_left_on_a_broken_stream() -> Any:
    """``serve``'s log handler holds the stderr of its run: taken off after each test."""
    yield
    for lg, hd in _serve._HANDLERS:
        lg.removeHandler(hd)
    _serve._HANDLERS.clear()

_INGRESS = ("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: a}\n"
            "spec:\n  rules:\n  - host: a.test\n    http:\n      paths:\n"
            "      - {path: /, pathType: Prefix, backend: {service: {name: s, port: "
            "{number: 80}}}}\n")


class _BrokenStream:
    """A stderr whose reader has gone: every write raises ``BrokenPipeError``."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    def isatty(self) -> bool:
        return False


def _status(port: int) -> bytes | None:
    """The status line a request for a.test gets on 127.0.0.1:``port``, None when nothing
    answers there."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.settimeout(5)
            s.sendall(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
            with s.makefile("rb") as f:
                return f.readline().rstrip(b"\r\n")
    except OSError:
        return None


def test_serve_goes_on_serving_when_its_stderr_reader_left(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(_INGRESS)
    port = free_port()
    r, w = os.pipe()
    os.close(r)  # the reader left before serve wrote a line: every write fails with EPIPE
    try:
        p = subprocess.Popen([sys.executable, "-m", "ingresslib", "serve", "-f", str(tmp_path),
                              "--listen", f"127.0.0.1:{port}", "--access-log", "off",
                              "--reload-interval", "0"],
                             stdout=subprocess.DEVNULL, stderr=w)
    finally:
        os.close(w)
    try:
        status = None
        deadline = time.monotonic() + 60  # a loaded 2-core machine starts Python slowly
        while status is None and p.poll() is None and time.monotonic() < deadline:
            status = _status(port)
            if status is None:
                time.sleep(0.1)
        # Before: the "listening on" line's BrokenPipeError ended serve (exit 1).
        assert p.poll() is None, f"serve exited {p.returncode} before answering"
        # Served (the Service has no endpoints: 503, from the proxy itself).
        assert status is not None and status.startswith(b"HTTP/1.1 503"), status
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=30) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_invalid_manifests_exit_2_when_stderr_cannot_be_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: [unclosed\n")
    monkeypatch.setattr(sys, "stderr", _BrokenStream())
    # Before: BrokenPipeError out of serve_main (exit 1 and a traceback), not the exit 2 of
    # invalid manifests.
    assert main(["serve", "-f", str(bad), "--listen", "127.0.0.1:0"]) == 2


def test_a_port_in_use_exits_1_when_stderr_cannot_be_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.yaml").write_text(_INGRESS)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        monkeypatch.setattr(sys, "stderr", _BrokenStream())
        assert main(["serve", "-f", str(tmp_path), "--listen", f"127.0.0.1:{port}",
                     "--access-log", "off"]) == 1


def test_serve_in_process_with_a_broken_stderr_stops_gracefully(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.yaml").write_text(_INGRESS)
    signal_serve_after(monkeypatch, 0.2)
    monkeypatch.setattr(sys, "stderr", _BrokenStream())
    # Before: the "listening on" line raised BrokenPipeError out of main.
    assert main(["serve", "-f", str(tmp_path), "--listen", "127.0.0.1:0",
                 "--metrics-listen", "127.0.0.1:0", "--access-log", "off"]) == 0


class _Closing:
    def __init__(self, log: list[str], name: str, fails: bool = False) -> None:
        self.log, self.name, self.fails = log, name, fails

    async def close(self) -> None:
        self.log.append(self.name)
        if self.fails:
            raise OSError(f"{self.name} failed to close")


def test_close_side_servers_closes_the_client_when_the_metrics_close_fails() -> None:
    log: list[str] = []

    async def go() -> None:
        await _serve._close_side_servers(_Closing(log, "metrics", fails=True),
                                         _Closing(log, "client"))

    with pytest.raises(OSError, match="metrics failed"):
        asyncio.run(go())
    assert log == ["metrics", "client"]


def test_close_side_servers_drops_the_client_close_error_and_takes_none() -> None:
    log: list[str] = []
    asyncio.run(_serve._close_side_servers(None, _Closing(log, "client", fails=True)))
    asyncio.run(_serve._close_side_servers(_Closing(log, "metrics"), None))
    asyncio.run(_serve._close_side_servers(None, None))
    assert log == ["client", "metrics"]


def test_every_way_serve_ends_closes_through_the_one_helper(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stop once serving closes the metrics listener through ``_close_side_servers``."""
    (tmp_path / "a.yaml").write_text(_INGRESS)
    calls: list[Any] = []
    real = _serve._close_side_servers

    async def spy(metrics_server: Any, kube_client: Any) -> None:
        calls.append((type(metrics_server).__name__, kube_client))
        await real(metrics_server, kube_client)

    monkeypatch.setattr(_serve, "_close_side_servers", spy)
    signal_serve_after(monkeypatch, 0.2)
    assert main(["serve", "-f", str(tmp_path), "--listen", "127.0.0.1:0",
                 "--metrics-listen", "127.0.0.1:0", "--access-log", "off"]) == 0
    assert calls == [("MetricsServer", None)]


def test_no_stderr_at_all_writes_nothing_to_stdout(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Started with file descriptor 2 closed (``2>&-``), Python's ``sys.stderr`` is None, and
    ``print(..., file=None)`` writes to stdout: the ``listening on`` line (and any error line)
    went among the access log's lines, which a log collector reads as requests."""
    (tmp_path / "a.yaml").write_text(_INGRESS)
    signal_serve_after(monkeypatch, 0.2)
    monkeypatch.setattr(sys, "stderr", None)
    assert main(["serve", "-f", str(tmp_path), "--listen", "127.0.0.1:0",
                 "--access-log", "json"]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: v1\nkind: [unclosed\n")
    assert main(["serve", "-f", str(bad), "--listen", "127.0.0.1:0"]) == 2
    out = capsys.readouterr().out
    assert "listening on" not in out and "bad.yaml" not in out, out


def test_no_stdout_at_all_means_no_access_log_not_one_on_stderr(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Started with file descriptor 1 closed (``>&-``), ``sys.stdout`` is None; the access log
    handler given None wrote to stderr, its lines among the error log's."""
    (tmp_path / "a.yaml").write_text(_INGRESS)
    port = free_port()
    statuses: list[bytes | None] = []
    real_run = _serve.Reloader.run

    async def run(self: Any) -> None:
        # One request once serving, then a graceful stop (SIGTERM: serve's own handler).
        statuses.append(await asyncio.to_thread(_status, port))
        os.kill(os.getpid(), signal.SIGTERM)
        await real_run(self)

    monkeypatch.setattr(_serve.Reloader, "run", run)
    monkeypatch.setattr(sys, "stdout", None)
    assert main(["serve", "-f", str(tmp_path), "--listen", f"127.0.0.1:{port}",
                 "--reload-interval", "0"]) == 0
    assert statuses and statuses[0] is not None and statuses[0].startswith(b"HTTP/1.1 503")
    err = capsys.readouterr().err
    assert "listening on" in err
    assert '"GET / HTTP/1.1" 503' not in err, err
