"""Session 30, the lead's own fixes: ``serve --kubernetes``'s snapshot swap is all or nothing
(``_serve._watch``'s ``apply``), as a file reload's swap (R16)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from ingresslib import Resources, _serve
from ingresslib._kube import ClusterWatcher
from ingresslib._router import Router
from test_reload_retry_s30 import _ingress_only, load_manifests_text


class _FailingStore:
    """A certificate store whose update fails (a bug, EMFILE building a context...)."""

    def __init__(self) -> None:
        self.updates: list[Resources] = []

    def update(self, res: Resources, served: Any = None) -> None:
        self.updates.append(res)
        raise OSError(24, "Too many open files")


@pytest.mark.asyncio
async def test_a_snapshot_whose_certificates_fail_leaves_the_old_table_serving(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Before: the router had taken the snapshot (b.test served) while the certificates were
    # the old ones; now the router's table is put back with the store's failure.
    old = load_manifests_text(_ingress_only("a.test"))
    new = load_manifests_text(_ingress_only("b.test"))
    stop = asyncio.Event()

    async def run(self: ClusterWatcher, stop_: asyncio.Event) -> None:
        self._dirty = asyncio.Event()
        self._delivered_generation = 1
        with contextlib.suppress(OSError):
            await self.on_snapshot(new)
        stop.set()
        await stop_.wait()
    monkeypatch.setattr(ClusterWatcher, "run", run)
    router = Router(old)
    store = _FailingStore()
    server = type("S", (), {"router": router, "cert_store": store})()
    said: list[bool] = []
    args = type("A", (), {"ingress_class": None, "controller": None, "namespace": None,
                          "kubeconfig": None, "no_auth_secrets": True})()
    task = asyncio.get_running_loop().create_task(_serve._watch(
        args, server, store, None, stop, asyncio.Event(),
        on_reload=lambda ok, *a: said.append(ok)))   # type: ignore[arg-type]
    await asyncio.wait_for(stop.wait(), 2)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert store.updates == [new] and said == [False]
    assert server.router is router
    assert router.route("GET", "a.test", "/") is not None
    assert router.route("GET", "b.test", "/") is None
