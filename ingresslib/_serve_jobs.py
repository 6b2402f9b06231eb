"""``serve``'s worker threads: the loop's default executor, whose stop does not wait for long.

``serve`` runs its slow work off the event loop with ``run_in_executor(None, ...)``: a reload's
build (``Reloader._build``: the manifests read, the router rebuilt, the digest), a cluster
snapshot's, the first digest, the metrics exposition, basic-auth hashing. asyncio's default
executor is a ``ThreadPoolExecutor``, and ``asyncio.run`` ends with
``loop.shutdown_default_executor()``, which on Python 3.11 waits for every job running there
without a bound (3.12: up to 300 s), and ``concurrent.futures`` joins its threads once more at
interpreter exit. A SIGTERM that came while a long reload was being built (100,000 rules, a slow
disk) drained the requests within ``--shutdown-timeout`` and then hung the process until the
build ended: a container's grace period ran out and the SIGKILL came, or a terminal's Ctrl-C
seemed to do nothing.

:class:`BoundedExecutor` is that executor with two differences: its threads are daemon threads
that the interpreter's exit does not wait for, and its ``shutdown`` waits for the jobs still
running for at most :data:`JOB_GRACE` seconds in all; what is still running then is left
behind (said in one warning line). A reload being built at the stop is abandoned: nothing it
would swap in would serve anything once the listeners are closed and the requests drained.
"""

from __future__ import annotations

import concurrent.futures
import concurrent.futures.thread as _cf_thread
import logging
import sys
import threading
import time
import weakref
from typing import Any

_log = logging.getLogger("ingresslib.serve")

#: The Pythons whose ``concurrent.futures.thread._worker(executor_ref, work_queue, initializer,
#: initargs)`` ``_adjust_thread_count`` below copies.
_KNOWN_INTERNALS = frozenset({(3, 11), (3, 12), (3, 13)})

#: The longest ``BoundedExecutor.shutdown`` waits for the jobs still running, in all (seconds).
JOB_GRACE = 1.0


class BoundedExecutor(concurrent.futures.ThreadPoolExecutor):
    """A ``ThreadPoolExecutor`` whose threads do not hold the process at exit and whose
    ``shutdown(wait=True)`` waits at most :data:`JOB_GRACE` seconds (see the module)."""

    def _adjust_thread_count(self) -> None:
        worker = getattr(_cf_thread, "_worker", None)
        if worker is None or sys.version_info[:2] not in _KNOWN_INTERNALS:  # pragma: no cover
            # Another Python's internals (3.14's ``_worker`` takes a worker context instead of
            # the initializer): its own threads, joined at exit as before.
            super()._adjust_thread_count()
            return
        # ThreadPoolExecutor._adjust_thread_count (3.11-3.13), but a daemon thread, and not
        # entered in ``_threads_queues`` (the table concurrent.futures joins at exit).
        if self._idle_semaphore.acquire(timeout=0):
            return

        def weakref_cb(_: Any, q: Any = self._work_queue) -> None:
            q.put(None)

        threads = self._threads
        if len(threads) < self._max_workers:
            t = threading.Thread(
                name=f"{self._thread_name_prefix or self}_{len(threads)}",
                target=worker, daemon=True,
                args=(weakref.ref(self, weakref_cb), self._work_queue,
                      self._initializer, self._initargs))
            t.start()
            threads.add(t)  # type: ignore[attr-defined]  # (a set at run time)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        # Jobs not started yet never will (the loop is going away): cancelled.
        super().shutdown(wait=False, cancel_futures=True)
        if not wait:
            return
        deadline = time.monotonic() + JOB_GRACE
        threads = self._threads
        for t in list(threads):
            t.join(max(deadline - time.monotonic(), 0.0))
        left = sum(t.is_alive() for t in threads)
        if left:
            _log.warning("stopping: not waiting for %d background job(s) still running "
                         "(a reload being built is abandoned)", left)
