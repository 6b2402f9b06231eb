"""Session 22 fresh-eyes review of the cluster watch (``_kube``) against the Kubernetes watch
contract and client-go's reflector (``tools/cache/reflector.go``).

Each test says which rule it checks. The fake API server (tests/_fake_kube.py) listens on
127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from ingresslib._kube import WATCHED_KINDS, Backoff

from _fake_kube import FakeKube
from test_kube import Harness, eventually, names, record_backoff_sleeps, running_harness, svc

_SERVICES = WATCHED_KINDS[2:3]


def _stray_ingress(rv: int) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "stray", "namespace": "default", "resourceVersion": str(rv)},
            "spec": {}}


@pytest.mark.asyncio
async def test_a_skipped_event_does_not_make_a_very_short_watch_count_as_healthy(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # client-go's watchHandler skips an event of another kind ("expected gvk ..., but watch
    # event object had gvk ...": ``continue``) before ``eventCount++``, so a watch that brought
    # only such events and closed within a second is still a "very short watch" (an error,
    # backed off). Before: it counted as an event delivered, so a server (or proxy) that
    # replays one stray event and closes every watch at once was re-watched with no pause at
    # all, from the same resourceVersion (the stray event's is not taken): a busy loop.
    caplog.set_level(logging.ERROR, "ingresslib.kube")
    delays = record_backoff_sleeps(monkeypatch)
    async with running_harness(FakeKube()) as h:
        h.kube.put(svc("web"))
        h.kube.end_watches_at_once = True
        # Replayed to every watch from the list's version, and never moving it.
        h.kube.history.append((h.kube.rv + 1, "services", "ADDED", _stray_ingress(h.kube.rv + 1)))
        w = h.start(kinds=_SERVICES, backoff=Backoff(initial=0.01, maximum=0.05, jitter=0))
        await h.synced()
        await eventually(lambda: h.kube.count("services", watch=True) >= 6)
        watches = h.kube.count("services", watch=True)
        # Every watch but the one under way was backed off (client-go: BackoffUntil after
        # the "very short watch" error), growing as errors do.
        assert len(delays) >= watches - 1 >= 5, (delays, watches)
        assert delays[:3] == [0.01, 0.02, 0.04]
        assert w.stats.garbage >= 5 and names(h.last.services) == ["web"]
        assert not h.last.ingresses


@pytest.mark.asyncio
async def test_namespace_all_spelled_empty_catches_up_missed_deletes_on_relist() -> None:
    # ``""`` is every namespace in the Kubernetes API (client-go's ``metav1.NamespaceAll =
    # ""``; a WATCH_NAMESPACE variable left empty), and the watcher lists and watches every
    # namespace for it. Before: the re-list after 410 Gone replaced only the objects of
    # namespace "" (none), so an object deleted while the watch was down stayed served for
    # good, where ``namespace=None`` drops it (API concepts: after 410, clients clear their
    # local cache and list again; client-go's Replace).
    async with running_harness(FakeKube()) as h:
        h.kube.put(svc("keep", ns="shop"))
        h.kube.put(svc("lost", ns="tea"))
        w = await h.start_watching("services", kinds=_SERVICES, namespace="")
        assert names(h.last.services) == ["keep", "lost"]
        h.kube.objects["services"].pop(("tea", "lost"))  # deleted while unseen
        h.kube.put(svc("new", ns="tea"))
        h.kube.compact()
        h.kube.gone("services")
        await eventually(lambda: w.stats.relists == 1 and "new" in names(h.last.services))
        assert names(h.last.services) == ["keep", "new"]
        assert all(r.namespace is None for r in h.kube.requests)  # every namespace


@pytest.mark.asyncio
async def test_a_410_after_only_a_skipped_event_is_still_a_410_in_a_row(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # 410 after 410 with nothing in between re-lists after a growing backoff, so a server
    # answering 410 to every watch is not hammered with lists. An event skipped as another
    # kind's is nothing in between (client-go's watchHandler: ``continue`` before
    # ``eventCount++``). Before: it reset the count, and every re-list waited the first step.
    caplog.set_level(logging.ERROR, "ingresslib.kube")
    delays = record_backoff_sleeps(monkeypatch)
    tasks: list[asyncio.Task[None]] = []
    async with running_harness(FakeKube()) as h:
        h.kube.put(svc("web"))

        async def stray_then_gone() -> None:
            await h.kube.wait_for(lambda: h.kube.open_watches("services") > 0)
            h.kube.raw_event("services", "ADDED", _stray_ingress(1))
            h.kube.gone("services")

        def on_request(req: Any) -> None:
            if req.plural == "services" and req.watch and len(tasks) < 4:
                tasks.append(asyncio.ensure_future(stray_then_gone()))

        h.kube.on_request = on_request
        w = h.start(kinds=_SERVICES, backoff=Backoff(initial=0.01, maximum=1.0, jitter=0))
        await h.synced()
        await eventually(lambda: w.stats.relists >= 4)
        await asyncio.gather(*tasks)
        assert delays[:4] == [0.01, 0.02, 0.04, 0.08], delays
        assert names(h.last.services) == ["web"] and not h.last.ingresses
