"""Session 18 review of the cluster watch as a whole (``_kube``, ``_kube_auth``, ``_store``).

Every test here failed on the code before its fix; each says what it guards. The fake API
server (tests/_fake_kube_s14.py) listens on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

import pytest

import ingresslib._kube
from ingresslib._kube import WATCHED_KINDS, Backoff, ClusterWatcher

from _fake_kube_s14 import FakeKubeS14
from test_kube import eventually, running_harness, svc
from test_kube_s14 import KINDS_WITH_AUTH, auth_secret, basic_ingress, secret_names


# -- a kind that keeps failing for hours ----------------------------------------------------------

def test_backoff_after_a_thousand_failures_stays_at_the_cap() -> None:
    # Before: ``initial * factor ** (attempt - 1)`` raised OverflowError from attempt 1025 on
    # (2.0 ** 1024 is no float).
    b = Backoff()
    for attempt in (1024, 1025, 5000, 10**9):
        assert b.maximum * (1 - b.jitter) <= b.delay(attempt) <= b.maximum * (1 + b.jitter)
    assert Backoff(jitter=0).delay(10**6) == 30.0


class _RefusingClient:
    """A lightkube client stand-in whose every list is refused at once (an API server that is
    down, or a proxy in front of it refusing): the watcher's retry loop, without the network."""

    def __init__(self) -> None:
        self.lists = 0

    def list(self, *args: Any, **kwargs: Any) -> Any:
        self.lists += 1
        raise ConnectionRefusedError("refused")

    async def close(self) -> None:
        pass


@pytest.mark.asyncio
async def test_a_kind_failing_for_hours_is_still_retried(monkeypatch: pytest.MonkeyPatch,
                                                         caplog: pytest.LogCaptureFixture
                                                         ) -> None:
    # Before: the 1025th failure in a row (about 8.5 hours at 30 s each: a grant missing for
    # one kind, an API group the cluster does not serve, a long outage) raised OverflowError
    # from the backoff, inside the handler of that failure: the watcher ended, and ``serve``
    # with it (status 1), where docs/cluster.md promises the failures are retried.
    caplog.set_level(logging.CRITICAL, "ingresslib.kube")
    delays: list[float] = []

    async def no_sleep(t: float) -> None:
        delays.append(t)
        await asyncio.sleep(0)

    monkeypatch.setattr(ingresslib._kube, "_backoff_sleep", no_sleep)
    client = _RefusingClient()
    watcher = ClusterWatcher(lambda res: None, client=client, kinds=WATCHED_KINDS[2:3], seed=1)
    stop = asyncio.Event()
    task = asyncio.create_task(watcher.run(stop))
    try:
        await eventually(lambda: len(delays) >= 1100 or task.done(), timeout=60)
        assert not task.done(), task.exception()
        assert max(delays) <= 30.0 * 1.2
        assert watcher.stats.stream_errors >= 1100 and client.lists >= 1100
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


# -- memory ----------------------------------------------------------------------------------------

def _live_classes(name: str) -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, type) and o.__name__ == name)


@pytest.mark.asyncio
@pytest.mark.network
async def test_restarting_the_auth_secret_watch_keeps_nothing_per_restart() -> None:
    # Before: each start of the auth Secret watch made a new resource class for its list, and
    # lightkube keeps a decoder model per listed class for good (``decoders._list_models``):
    # one class and one model more in memory each time the last basic-auth Ingress went and
    # another was named, for the life of the process.
    async with running_harness(FakeKubeS14()) as h:
        h.kube.put(svc("web"))
        h.kube.put(auth_secret("passwords", {"alice": "pw"}))
        h.start(kinds=KINDS_WITH_AUTH)
        await h.synced()

        async def cycle() -> None:
            lists = len(h.kube.list_requests("secrets"))
            h.kube.put(basic_ingress("staff", "passwords"))
            await eventually(lambda: secret_names(h.last) == ["default/passwords"])
            assert len(h.kube.list_requests("secrets")) == lists + 1  # the watch started again
            h.kube.delete("Ingress", "default", "staff")
            await eventually(lambda: secret_names(h.last) == [])

        await cycle()  # the first start may make what every later one reuses
        before = _live_classes("RawSecret")
        for _ in range(8):
            await cycle()
        assert _live_classes("RawSecret") == before
