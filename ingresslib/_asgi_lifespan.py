"""Lifespan for IngressASGI's mounted apps: the server's lifespan events go to every mounted
app and the ``fallback`` (``_SubLifespan``, one per app). An app that raises before answering
has no lifespan support (lifespan.rst) and is left out; one that fails, or raises after taking
part, makes the event fail with its error; at shutdown each app gets 5 s to return. A failed
startup shuts down the apps that started (``IngressASGI._lifespan``). At shutdown the idle
``auth-keepalive`` connections to auth services are closed too (``close_idle_auth``), not left
to their idle timers.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._asgi import ASGIApp, Message, Scope

__all__ = ["_SubLifespan", "close_idle_auth"]

_log = logging.getLogger("ingresslib.asgi")


def close_idle_auth() -> None:
    """Lifespan shutdown: close the running loop's idle ``auth-keepalive`` connections
    (_asgi_authkeepalive.py), as ProxyServer's shutdown closes its auth pools
    (proxy/_server_authpool.py ``close_auth_pools``)."""
    from ._asgi_authkeepalive import close_loop_pools

    n = close_loop_pools()
    if n:
        _log.debug("lifespan shutdown: %d idle auth-keepalive connection(s) closed", n)


class _SubLifespan:
    """One mounted app's lifespan, driven by the messages IngressASGI receives."""

    def __init__(self, app: ASGIApp, scope: Scope) -> None:
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.outbox: asyncio.Queue[Message | None] = asyncio.Queue()
        self.supported = True
        self.answered = False  # sent at least one lifespan message: it takes part
        self.failed = False  # sent a ".failed" message itself
        self.error: str | None = None  # raised after taking part: reported once
        self.task = asyncio.ensure_future(self._run(app, scope))

    async def _run(self, app: ASGIApp, scope: Scope) -> None:
        try:
            await app(scope, self.inbox.get, self._send)
        except Exception as exc:  # noqa: BLE001 - the app's error is reported, never raised here
            if self.answered:
                # It answered (startup.complete) and then raised: its cleanup did not
                # complete. Hiding that behind "complete" would lose the error; uvicorn
                # (lifespan="on") reads an exception there as a failure too.
                if not self.failed:
                    self.error = f"{type(exc).__name__}: {exc}"
            else:
                # lifespan.rst: "If an exception is raised when calling the application
                # callable with a lifespan.startup message or a scope with type lifespan, the
                # server must continue but not send any lifespan events."
                _log.debug("lifespan unsupported by %r: %s", app, exc)
                self.supported = False
        finally:
            self.outbox.put_nowait(None)

    async def _send(self, message: Message) -> None:
        self.answered = True
        if str(message.get("type", "")).endswith(".failed"):
            self.failed = True
        await self.outbox.put(message)

    @property
    def running(self) -> bool:
        """It takes part in lifespan and has not returned: it waits for the next event."""
        return self.supported and self.answered and not self.task.done()

    def _take_error(self) -> str | None:
        error, self.error = self.error, None
        return error

    async def send(self, message: Message) -> str | None:
        """Forward one server message; return an error text if the app reported failure."""
        if not self.supported:
            return None
        if self.task.done():
            return self._take_error()  # it raised while running: reported at shutdown
        await self.inbox.put(message)
        reply = await self.outbox.get()
        if reply is None:
            # Returned or raised without answering: no lifespan support, unless it raised
            # after taking part.
            return self._take_error()
        if reply["type"].endswith(".failed"):
            return str(reply.get("message", "")) or "failed"
        return None

    async def finish(self) -> None:
        if not self.task.done():
            try:
                await asyncio.wait_for(asyncio.shield(self.task), 5)
            except asyncio.TimeoutError:
                self.task.cancel()
