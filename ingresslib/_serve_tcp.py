"""``serve --tcp-services-configmap NAMESPACE/NAME``: the ConfigMap found in each snapshot
serve swaps in (the ``-f`` manifests, or the cluster with ``--kubernetes``), read
(:mod:`ingresslib._tcp_services`) and applied to the listeners (:class:`TCPServices`).

As ingress-nginx's ``getStreamServices``: a missing ConfigMap serves no TCP service; a bad
key, a port of serve's own listeners, a Service without a ready endpoint is logged (once per
distinct message) and skipped, the other keys serve. A ConfigMap the load found invalid (a
value that is no string: the API server would refuse that edit) keeps the data in use, as
ingress-nginx keeps the ConfigMap it has. Called only when the flag is given.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._resources import Resources
from ._tcp_proxy import TCPServices
from ._tcp_services import find_config_map, read_tcp_services, resolve_tcp_services

__all__ = ["TCPServicesFeed"]

_log = logging.getLogger("ingresslib.server")


class TCPServicesFeed:
    """The TCP services of ``serve``: :meth:`apply` each snapshot (serialised, the last one
    wins), :meth:`close` on stop. ``_serve_udp.UDPServicesFeed`` is this with UDP's
    ``protocol`` and ``services_class``."""

    protocol = "TCP"
    services_class: Any = TCPServices

    def __init__(self, ref: str, host: str, settings: Any, *, reserved: Callable[[], Iterable[int]],
                 max_connections: int | None = None,
                 drain_timeout: float | None = None) -> None:
        self.ref = ref
        self.services = self.services_class(settings, host=host,
                                            max_connections=max_connections,
                                            drain_timeout=drain_timeout)
        self.reserved = reserved
        self._logged: set[str] = set()
        self._lock = asyncio.Lock()
        self._pending: tuple[Resources, Any] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        #: The ConfigMap data in use (kept when a snapshot's ConfigMap is invalid).
        self._data: Mapping[str, str] | None = None

    def _say(self, lines: Iterable[str]) -> None:
        for line in lines:
            if line not in self._logged:
                self._logged.add(line)
                _log.warning("%s", line)

    def apply(self, res: Resources, settings: Any) -> None:
        """Takes ``res`` (a snapshot now serving) and ``settings`` (the server's): the
        listeners follow them, in a task of the running loop."""
        self._pending = (res, settings)
        task = asyncio.get_running_loop().create_task(self._run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self) -> None:
        async with self._lock:
            if self._pending is None:
                return   # a later call's task applied it already
            res, settings = self._pending
            self._pending = None
            await self.update(res, settings)

    async def update(self, res: Resources, settings: Any) -> None:
        data = find_config_map(res, self.ref)
        if data is None and _given_but_invalid(res, self.ref):
            # (A value that is no string, say: the load warned of it.) The API server refuses
            # such an edit, so ingress-nginx goes on with the ConfigMap it has: so does this.
            self._say([f"{self.protocol} services: ConfigMap {self.ref} is not a valid "
                       "ConfigMap (see the warnings of the load): the "
                       f"{self.protocol} services in use are kept"])
            data = self._data if self._data is not None else {}
        if data is None:
            self._say([f"{self.protocol} services: ConfigMap {self.ref} not found: no "
                       f"{self.protocol} service"])
            data = {}
        self._data = data
        entries, err = read_tcp_services(data, f"ConfigMap {self.ref}", self.protocol)
        if err is not None:
            self._say(f"{e} (skipped)" for e in err.errors)
        targets, warnings = resolve_tcp_services(entries, res, self.reserved(),
                                                 protocol=self.protocol)
        self._say(warnings)
        self._say(await self.services.update(targets, settings))

    async def close(self, timeout: float) -> None:
        # A reload still applying sees the services stopping and opens nothing more (a port
        # it opened meanwhile it closes again): it is let end rather than cancelled, since a
        # cancel inside create_server can leave its socket listening with no one to close it.
        self.services.draining = True
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=1)
        for task in list(self._tasks):
            task.cancel()
        await self.services.close(timeout)


def _given_but_invalid(res: Resources, ref: str) -> bool:
    """Whether ConfigMap ``ref`` is among ``res``'s objects kept aside but was not read into
    ``res.config_maps`` (the load found it invalid)."""
    ns, _, name = ref.partition("/")
    for obj in res.ignored:
        meta = obj.get("metadata")
        if (obj.get("kind") == "ConfigMap" and obj.get("apiVersion") == "v1"
                and isinstance(meta, Mapping) and meta.get("name") == name
                and (meta.get("namespace") or "default") == ns):
            return True
    return False
