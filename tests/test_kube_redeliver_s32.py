"""Session 32: ``ClusterWatcher.redeliver`` / ``delivered_generation``, what ``serve
--kubernetes`` retries a failed swap with (``_serve_reload.SnapshotRetry``; before, it set the
watcher's private ``_delivered_generation`` and ``_dirty`` itself)."""

from __future__ import annotations

import asyncio
from typing import Any

from ingresslib._kube import ClusterWatcher

SERVICE = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": "web", "namespace": "default"},
           "spec": {"ports": [{"port": 80}]}}


def test_redeliver_gives_the_latest_snapshot_again_unless_a_newer_one_went_out() -> None:
    async def main() -> None:
        seen: list[Any] = []

        async def on_snapshot(res: Any) -> None:
            seen.append(res)

        w = ClusterWatcher(on_snapshot, client=object())
        w.synced.set()   # (past the first snapshot: an unchanged store delivers nothing)
        assert w.delivered_generation == -1
        await w._deliver()
        first = w.delivered_generation
        assert first == w.store.generation and len(seen) == 1
        await w._deliver()
        assert len(seen) == 1   # nothing changed: nothing delivered

        # The same snapshot again, once, when asked with the generation that failed.
        assert w.redeliver(first) and w._dirty.is_set()
        await w._deliver()
        assert len(seen) == 2 and seen[1].services == seen[0].services
        assert w.delivered_generation == first

        # A newer snapshot delivered after the failure: the old token redelivers nothing.
        w._dirty.clear()
        w.store.apply("ADDED", SERVICE)
        await w._deliver()
        assert len(seen) == 3 and w.delivered_generation == w.store.generation > first
        assert [s.metadata.name for s in seen[2].services] == ["web"]
        assert not w.redeliver(first) and not w._dirty.is_set()
        await w._deliver()
        assert len(seen) == 3

        # Asked with the current generation after the store moved on: the newest goes out.
        latest = w.delivered_generation
        w.store.apply("DELETED", SERVICE)
        assert w.redeliver(latest)
        await w._deliver()
        assert len(seen) == 4 and not seen[3].services
        assert w.delivered_generation == w.store.generation

    asyncio.run(main())
