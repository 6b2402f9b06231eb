"""Shared pieces of the tests that run ``ingresslib serve`` in this process (``main([...])``):
a free port, and the Reloader hooks that stop serve at a chosen moment."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ingresslib._serve import Reloader


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (at the moment of asking)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def interrupt_the_first_build(monkeypatch: pytest.MonkeyPatch, pause: float = 0.0) -> list[int]:
    """The operator's Ctrl-C in the middle of serve's first table build: a SIGINT to this
    process as ``build_router`` returns the first time (then ``pause`` seconds). Returns the
    list that gets an item once that happened."""
    import time

    from ingresslib import _serve

    real = _serve.build_router
    builds: list[int] = []

    def build_then_interrupt(*a: Any, **k: Any) -> Any:
        router = real(*a, **k)
        if not builds:
            builds.append(1)
            os.kill(os.getpid(), signal.SIGINT)
            if pause:
                time.sleep(pause)
        return router

    monkeypatch.setattr(_serve, "build_router", build_then_interrupt)
    return builds


def signal_serve_after(monkeypatch: pytest.MonkeyPatch, seconds: float,
                       sig: int = signal.SIGTERM) -> None:
    """Once the reloader runs, send this process ``sig`` after ``seconds``: serve's own handler
    stops it (SIGTERM, SIGINT: a graceful stop), so ``main`` returns whatever the test waits
    for meanwhile."""
    real_run = Reloader.run

    async def run(self: Reloader) -> None:
        asyncio.get_running_loop().call_later(seconds, os.kill, os.getpid(), sig)
        await real_run(self)

    monkeypatch.setattr(Reloader, "run", run)


def stop_at_first_reload(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The Service names of the table each reload that read the files (a check that did not
    return None) left serving; the first such reload stops serve gracefully (SIGTERM)."""
    seen: list[list[str]] = []
    real_check = Reloader.check

    async def check(self: Reloader, *, force: bool = False) -> bool | None:
        result = await real_check(self, force=force)
        if result is not None:
            seen.append(sorted(s.metadata.name for s in self.server.router.resources.services))
            os.kill(os.getpid(), signal.SIGTERM)  # serve's own handler: a graceful stop
        return result

    monkeypatch.setattr(Reloader, "check", check)
    return seen


def zone_scoped_ipv6_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """A socket bound to ``::1`` reports the link-local, zone-scoped name ``fe80::1%lo``: what
    a listener on a link-local address reports, without listening on one."""
    real = socket.socket.getsockname

    def getsockname(self: socket.socket) -> Any:
        name = real(self)
        if self.family == socket.AF_INET6 and name[0] == "::1":
            return ("fe80::1%lo", *name[1:])
        return name

    monkeypatch.setattr(socket.socket, "getsockname", getsockname)


def localhost_is_both(monkeypatch: pytest.MonkeyPatch) -> None:
    """``localhost`` resolves to 127.0.0.1 and ::1, as on most hosts (this one's /etc/hosts
    may name 127.0.0.1 only). Lookups that only parse a literal (AI_NUMERICHOST) are left."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0,
                    flags: int = 0) -> Any:
        if host == "localhost" and not flags & socket.AI_NUMERICHOST:
            out = []
            for addr in ("127.0.0.1", "::1"):
                out += real(addr, port, family, type, proto, flags | socket.AI_NUMERICHOST)
            return out
        return real(host, port, family, type, proto, flags)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def _cluster_apply_waiting() -> bool:
    """Whether a thread is inside serve's cluster ``apply`` (waiting for the swap lock)."""
    return any(f.f_code.co_name == "apply" and f.f_code.co_filename.endswith("_serve.py")
               for f in sys._current_frames().values())


def cluster_change_during_reload(monkeypatch: pytest.MonkeyPatch, configmap: Path, first: Any,
                                 second: Any, new_configmap: str) -> threading.Event:
    """For ``serve --kubernetes``: a ClusterWatcher that delivers the Resources ``first``,
    rewrites the mounted ``configmap`` file with ``new_configmap``, and delivers ``second``
    while the reloader that the rewrite starts is computing its digest (the reloader waits
    there, up to 30 s, for that snapshot), so the cluster's swap lands between the reloader's
    swap and its report; serve stops once the reloader has reported (waited for, up to 30 s:
    a fixed 0.5 s could end serve first on a loaded machine). Returns the event set once the
    reloader reached its digest."""
    import ingresslib._kube
    from ingresslib import _serve, _serve_reload

    swapped, resume, reported = threading.Event(), threading.Event(), threading.Event()
    in_reloader = threading.local()
    real_digest, real_build = _serve.config_digest, _serve.Reloader._build
    real_check = _serve.Reloader.check

    def build(self: Any) -> Any:
        in_reloader.yes = True
        try:
            return real_build(self)
        finally:
            in_reloader.yes = False

    def digest(res: Any, served: Any, config: Any = None, **kw: Any) -> str:
        out = real_digest(res, served, config, **kw)
        if getattr(in_reloader, "yes", False):
            swapped.set()  # the reloader has swapped its router in and is computing its digest
            # The reloader computes its digest under serve's swap lock, which the cluster's
            # apply takes too: waiting here for that apply to finish would hold both until the
            # timeout (30 s a test). Held until the apply queues on the lock, it runs right
            # after this swap and before the reloader's report, the overlap this is about.
            deadline = time.monotonic() + 30
            while (not resume.is_set() and not _cluster_apply_waiting()
                   and time.monotonic() < deadline):
                time.sleep(0.005)
        return out

    async def check(self: Any, *, force: bool = False) -> bool | None:
        result = await real_check(self, force=force)
        if result is not None and swapped.is_set():
            reported.set()  # the reload that computed that digest has reported
        return result

    class Watcher:
        def __init__(self, on_snapshot: Any, **kw: Any) -> None:
            self.on_snapshot = on_snapshot

        async def run(self, stop: asyncio.Event | None = None) -> None:
            assert stop is not None
            await self.on_snapshot(first)
            configmap.write_text(new_configmap)  # the mounted ConfigMap changes
            await asyncio.to_thread(swapped.wait, 30)
            await self.on_snapshot(second)  # a cluster change lands meanwhile
            resume.set()
            await asyncio.to_thread(reported.wait, 30)  # the reloader reports
            stop.set()

    monkeypatch.setattr(_serve_reload, "config_digest", digest)
    monkeypatch.setattr(_serve.Reloader, "_build", build)
    monkeypatch.setattr(_serve.Reloader, "check", check)
    monkeypatch.setattr(ingresslib._kube, "ClusterWatcher", Watcher)
    return swapped
