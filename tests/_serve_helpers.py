"""Shared pieces of the tests that run ``ingresslib serve`` in this process (``main([...])``):
a free port, and the Reloader hooks that stop serve at a chosen moment."""

from __future__ import annotations

import asyncio
import os
import signal
import socket

import pytest

from ingresslib._serve import Reloader


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (at the moment of asking)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
