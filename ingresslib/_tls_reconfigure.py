"""New TLS settings (the ConfigMap's ``ssl-*`` keys) for a running HTTPS listener, built off the
event loop.

``CertificateStore.configure_tls`` loads every certificate again into a new context: about a
millisecond per certificate (1.3 to 2.3 s measured for 1,000 certificates under load). Run on
the event loop, the listener answered nobody meanwhile. :func:`configure_tls_off_loop` builds
them in a worker thread (``CertificateStore.build_tls``), then swaps them in on the loop in one
step (``CertificateStore.commit_tls``): a handshake during the rebuild gets the old contexts,
never a half-built set. Each request is numbered (``CertificateStore.ask_tls``): two reloads
racing end with the newest settings. An ``update`` of the store that comes while the contexts
are built (a cluster snapshot, in another worker thread) makes the build run again on that
decision (reusing the contexts already built), so that neither undoes the other.

What ``serve``'s reload (``_serve_reload.Reloader``) calls before it sets the server's new
settings (whose own ``configure_tls`` then finds them in use already).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

__all__ = ["configure_tls_off_loop"]

_log = logging.getLogger("ingresslib.tls")

#: Builds tried before the last one runs on the loop (updates kept coming in meanwhile).
_TRIES = 5


async def configure_tls_off_loop(store: Any, settings: Any,
                                 quiet: frozenset[str] = frozenset(), *,
                                 log_failure: bool = True) -> None:
    """Give ``store`` (a ``CertificateStore``; None or another kind: as ``ProxyServer`` does,
    ``configure_tls`` if it has one) the TLS settings of ``settings``, built in the loop's
    default executor and swapped in on the running loop. Returns once they are in use, or once
    a newer call superseded this one (that one's settings are then the ones that count). A
    build that raises is logged and raised again, the contexts in use left as they were.
    ``quiet``: problem lines the build does not log (the reload's next update settles them:
    ``_serve_reload``'s ``ssl-dh-param`` Secret arriving with the key). ``log_failure``
    False: a build that raises is not logged (a reload's retry logs a failure once)."""
    ask = getattr(store, "ask_tls", None)
    if ask is None:
        configure = getattr(store, "configure_tls", None)
        if configure is not None:
            configure(settings)
        return
    job = ask(settings)
    if job is None:
        return   # in use already
    job.logged = job.logged | quiet
    loop = asyncio.get_running_loop()
    try:
        for _ in range(_TRIES):
            built = await loop.run_in_executor(None, store.build_tls, job)
            if built is None:
                return   # a newer request: its settings count
            done = store.commit_tls(built)
            if done is None or done:
                return
        # Updates kept landing between a build and its swap: the last one here, under the lock.
        _log.info("TLS settings: certificate updates kept coming during the rebuild; "
                  "rebuilding on the event loop")
        with store._lock:   # (the problems the tries logged are not logged again)
            store._logged = store._logged | job.logged
            store.configure_tls(settings)
    except Exception:
        # (Nothing was swapped in: the build works on a copy.) Raised again: the reload fails.
        if log_failure:
            _log.exception("TLS settings: building the contexts failed; the ones in use stay")
        raise
