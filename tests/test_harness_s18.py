"""The test harness itself (session 18): ``_start_serve``/``_stop`` (tests/test_serve_cli.py) and
``stderr_until_exit`` return every line the child wrote, including the lines ``readline()``
buffered past "listening on".

Defect: ``_stop`` read the rest with ``communicate()``, which reads the pipe's descriptor and
not the file object ``_start_serve``'s ``readline()`` had buffered into: whatever serve logged
just after "listening on" was lost when the test process read late (under load), and
test_serve_s16's test_serve_logs_what_check_warns_at_start_up failed once that way.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from tests import test_serve_cli
from tests._process_helpers import stderr_until_exit

#: A stand-in for ``serve``: its listening line and the lines after it reach the pipe in one
#: write (what a late reader finds: all of them there at its first read), then one more line
#: once it is told to stop.
FAKE_SERVE = r"""
import os, signal
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # kept until sigwait takes it
lines = ["listening on http://127.0.0.1:1\n"] + [f"after listening {i}\n" for i in range(40)]
os.write(2, "".join(lines).encode())
signal.sigwait({signal.SIGTERM})
os.write(2, b"stopping\n")
"""

AFTER = "".join(f"after listening {i}\n" for i in range(40))


def _fake_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    real = subprocess.Popen

    def popen(argv: list[str], **kw: Any) -> Any:
        assert argv[1:4] == ["-m", "ingresslib", "serve"], argv
        return real([sys.executable, "-c", FAKE_SERVE], **kw)

    monkeypatch.setattr(subprocess, "Popen", popen)  # the module test_serve_cli calls


def test_stop_returns_the_lines_start_serve_read_past(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_serve(monkeypatch)
    p, ports = test_serve_cli._start_serve("--listen", "127.0.0.1:0")
    assert ports == {"http": 1}
    assert test_serve_cli._stop(p) == AFTER + "stopping\n"


def test_stderr_until_exit_after_readline() -> None:
    p = subprocess.Popen([sys.executable, "-c", FAKE_SERVE], stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    assert p.stderr is not None
    assert p.stderr.readline() == "listening on http://127.0.0.1:1\n"
    p.terminate()
    assert stderr_until_exit(p, 30) == AFTER + "stopping\n"
    assert p.returncode == 0 and p.stderr.closed


def test_stderr_until_exit_kills_a_child_that_does_not_exit() -> None:
    # Told to stop, it does not: killed once the limit passes, as communicate(timeout=...)
    # and kill() did; what it wrote comes with the exception.
    p = subprocess.Popen([sys.executable, "-c", "import sys, time\nsys.stderr.write('up\\n')\n"
                          "sys.stderr.flush()\ntime.sleep(600)"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    with pytest.raises(subprocess.TimeoutExpired) as e:
        stderr_until_exit(p, 1)
    assert p.returncode is not None and p.returncode < 0
    assert e.value.stderr == b"up\n"
