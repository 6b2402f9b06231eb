"""IngressASGI's report of a ``backends`` mapping that does not fit the served rules: keys that
name no backend of them (a request meant for one answers 503) and, without a ``fallback``, the
Service backends no key mounts; logged on ``ingresslib.asgi`` once per table and after an update
that kept the table, not repeated until it changes (``_MountReport``, a base of IngressASGI).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, NamedTuple, cast

from ._router import Decision

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._asgi import ASGIApp

__all__ = ["_MountReport"]

_log = logging.getLogger("ingresslib.asgi")


class _MountReport:
    """The mount report of ``IngressASGI`` (a base of it): ``_report_mounts``, which
    ``IngressASGI._table_seen`` and ``update`` call."""

    if TYPE_CHECKING:
        # Declared, not set: what the report reads of the app, which IngressASGI sets (its
        # ``__init__``) or defines (``backend_for``). For type checkers only: as class
        # annotations they named ``ASGIApp``, which this module cannot import at run time
        # (``_asgi`` imports it), and ``typing.get_type_hints(IngressASGI)`` raised NameError.
        router: Any
        backends: dict[str, ASGIApp]
        fallback: ASGIApp | None
        _mount_warning: str | None
        backend_for: Callable[[Decision], ASGIApp | None]

    def _report_mounts(self) -> None:
        """Warn (on ``ingresslib.asgi``) when ``backends`` does not fit the served rules:
        keys that name no backend of them (``backend_for`` never looks them up: a request
        meant for one answers 503), and, without a ``fallback``, the Service backends no key
        mounts (each of their requests answers 503). Silent when every key names a backend
        and every backend has an app; a report is not repeated until it changes. Once per
        table (``_table_seen``) and after an update that kept the table. Cost: one pass over
        the table's routes."""
        unused, unmounted = self._mount_report()
        if not unused and not unmounted:
            self._mount_warning = None
            return
        parts = []
        if unused:
            parts.append(f"backends key(s) {_listed(unused)} name no backend of the served "
                         "rules (keys: 'namespace/service', 'namespace/service:port' with "
                         "the port as the Ingress writes it or the resolved target port; "
                         "compare with `ingresslib explain`)")
        if unmounted:
            parts.append(f"backend(s) {_listed(unmounted)} have no app and there is no "
                         "fallback: their requests answer 503")
        message = "IngressASGI: " + "; ".join(parts)
        if message != self._mount_warning:
            self._mount_warning = message
            _log.warning("%s", message)

    def _mount_report(self) -> tuple[list[str], list[str]]:
        """(the ``backends`` keys no served backend looks up, the Service backends
        ``backend_for`` finds no app for), each in order. A backend's candidate keys are
        ``backend_for``'s: ``ns/svc:port-as-written``, ``ns/svc:resolved-target-port`` (from
        the router's built routes), ``ns/svc``. Resource backends are left out (never
        mounted: they take the ``fallback``)."""
        routes = getattr(getattr(self.router, "table", None), "routes", None)
        if routes is None:
            return [], []
        built = getattr(getattr(self.router, "_state", None), "routes", None)
        names: set[str] = set()
        #: ``ns/svc`` of the backends whose resolved port is not known (any port key of
        #: theirs may be in use).
        unresolved: set[str] = set()
        unmounted: dict[str, None] = {}
        for m in routes:
            rid = getattr(m, "route_id", None)
            route = built[rid] if built is not None and type(rid) is int \
                and 0 <= rid < len(built) else None
            for side, backend in ((m, getattr(route, "main", None)),
                                  (getattr(m, "canary", None), getattr(route, "canary", None))):
                if side is None or getattr(side, "service", None) is None:
                    continue
                base = f"{side.namespace}/{side.service}"
                label = f"{base}:{side.port}"
                eps = getattr(backend, "eps", None)
                errs = getattr(backend, "errors", None)
                if errs is not None and errs.eps is not None:
                    # custom-http-errors' error pages: the default-backend Service's app.
                    ebase = f"{errs.eps.namespace}/{errs.eps.service}"
                    names.update((ebase, errs.label or ebase, f"{ebase}:{errs.eps.port}"))
                if eps is not None and getattr(backend, "dflt", None) is not None:
                    # Served by its Ingress's default-backend Service (Decision.default_backend):
                    # that Service's keys are looked up; the rule's own resolve to no port here.
                    dbase = f"{eps.namespace}/{eps.service}"
                    names.update((dbase, getattr(backend, "label", label), f"{dbase}:{eps.port}"))
                    names.update((label, base))
                    unresolved.add(base)
                    continue
                port = eps.port if eps is not None else None
                names.update((label, base))
                if port is not None:
                    names.add(f"{base}:{port}")
                elif eps is None:
                    unresolved.add(base)
                # ``backend_for`` itself, so that the report cannot disagree with it: it
                # reads these four fields of a Decision.
                looked = cast(Decision, _Looked(side.service, side.namespace, port, label))
                if self.fallback is None and self.backend_for(looked) is None:
                    unmounted[label] = None
        unused = [key for key in self.backends if key not in names
                  and key.partition(":")[0] not in unresolved]
        return unused, list(unmounted)


class _Looked(NamedTuple):
    """What ``IngressASGI.backend_for`` reads of a Decision (``_mount_report``)."""

    service: str
    namespace: str
    port: int | None
    backend: str


def _listed(items: list[str], most: int = 10) -> str:
    """``items`` quoted and comma-separated, at most ``most`` of them named."""
    shown = ", ".join(repr(i) for i in items[:most])
    return shown + (f" and {len(items) - most} more" if len(items) > most else "")
