"""Reading a child process's stderr in tests without losing lines, and with a real time limit.

A ``text=True`` pipe is a buffered file object: ``p.stderr.readline()`` reads what the pipe
holds (up to 8 KiB) and returns one line, keeping the lines after it in the object's buffer.
``p.communicate()`` reads the pipe's descriptor, not that object, so after a ``readline()``
it never returns the buffered lines: a test that waited for "listening on" and then asserted
on a warning logged just after it failed when the test process was scheduled late (all those
lines were in the pipe at its first read). So the rest is read from ``p.stderr`` itself.

``readline()`` and ``read()`` block with no limit of their own; a timer kills the child when the
limit passes, which ends the read (end of file), so a child that hangs fails the test instead
of hanging it. (Unless a process the child started holds the pipe: ``stderr_until_exit``
therefore reads in a thread and waits for it within the limit.)
"""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
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


#: After the child has exited: how long its stderr may take to reach end of file (what is still
#: in the pipe is read at once; only a process the child started that kept the pipe open holds
#: it longer).
_EOF_GRACE = 5.0


def stderr_until_exit(p: subprocess.Popen[str], timeout: float) -> str:
    """The rest of ``p``'s stderr, once ``p`` has exited (``p.returncode`` set), including the
    lines an earlier ``p.stderr.readline()`` buffered; closes ``p.stderr``. When ``p`` has not
    exited within ``timeout`` seconds it is killed and ``subprocess.TimeoutExpired`` raised
    (with what it wrote, encoded), as ``p.communicate(timeout=...)`` and ``p.kill()`` did.

    The pipe is read in a thread of its own, and only waited for up to the limit: the child's
    exit does not end its stderr when a process it started (a ``sh -c "... &"``, a worker)
    inherited the pipe and lives on, and a read in the calling thread (as this was written
    first) blocked until that process ended, with nothing to kill it (the timer only killed ``p``, already gone). That case
    raises ``TimeoutExpired`` too, and leaves ``p.stderr`` open (the reader thread still holds
    it; closing it from here would wait for that read)."""
    stream = p.stderr
    assert stream is not None
    lines: list[str] = []

    def read() -> None:
        for line in iter(stream.readline, ""):  # to end of file
            lines.append(line)

    reader = threading.Thread(target=read, name="stderr_until_exit", daemon=True)
    deadline = time.monotonic() + timeout
    reader.start()
    killed = False
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        killed = True
        p.kill()
        p.wait()
    reader.join(max(deadline - time.monotonic(), _EOF_GRACE))
    err = "".join(lines)
    if reader.is_alive():
        # bytes, as communicate() gives them with its TimeoutExpired even in text mode
        raise subprocess.TimeoutExpired(p.args, timeout, stderr=err.encode())
    stream.close()
    if killed:
        raise subprocess.TimeoutExpired(p.args, timeout, stderr=err.encode())
    return err
