"""Reading a child process's stderr in tests without losing lines, and with a real time limit.

A ``text=True`` pipe is a buffered file object: ``p.stderr.readline()`` reads what the pipe
holds (up to 8 KiB) and returns one line, keeping the lines after it in the object's buffer.
``p.communicate()`` reads the pipe's descriptor, not that object, so after a ``readline()``
it never returns the buffered lines: a test that waited for "listening on" and then asserted
on a warning logged just after it failed when the test process was scheduled late (all those
lines were in the pipe at its first read). So the rest is read from ``p.stderr`` itself.

``readline()`` and ``read()`` block with no limit of their own; a timer kills the child when the
limit passes, which ends the read (end of file), so a child that hangs fails the test instead
of hanging it.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def kill_after(p: subprocess.Popen[str], seconds: float) -> Iterator[threading.Event]:
    """Kill ``p`` if the block still runs after ``seconds``; yields the event set when it did."""
    killed = threading.Event()

    def kill() -> None:
        if p.poll() is None:
            killed.set()
            p.kill()

    timer = threading.Timer(seconds, kill)
    timer.daemon = True
    timer.start()
    try:
        yield killed
    finally:
        timer.cancel()


def stderr_until_exit(p: subprocess.Popen[str], timeout: float) -> str:
    """The rest of ``p``'s stderr, once ``p`` has exited (``p.returncode`` set), including the
    lines an earlier ``p.stderr.readline()`` buffered; closes ``p.stderr``. When ``p`` has not
    exited within ``timeout`` seconds it is killed and ``subprocess.TimeoutExpired`` raised
    (with what it wrote, encoded), as ``p.communicate(timeout=...)`` and ``p.kill()`` did."""
    assert p.stderr is not None
    try:
        with kill_after(p, timeout) as killed:
            err = p.stderr.read()  # to end of file: the child (and so its stderr) is gone
            p.wait()
    finally:
        p.stderr.close()
    if killed.is_set() and p.returncode == -signal.SIGKILL:
        # bytes, as communicate() gives them with its TimeoutExpired even in text mode
        raise subprocess.TimeoutExpired(p.args, timeout, stderr=err.encode())
    return err
