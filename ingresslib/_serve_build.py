"""``serve``'s router: the Router it builds from the resources, and the Ingresses it serves
(worked out by the build itself, which the TLS certificates, the metrics and the digest read)."""

from __future__ import annotations

from typing import Any

from ._resources import Resources

__all__ = ["build_router"]


def build_router(
    res: Resources, *, ingress_class: str | None, controller: str | None,
    load_balance: str | None = None, seed: int | None = None, service_upstream: bool = False,
) -> Any:
    """A new Router for ``res`` (``load_balance`` from the ConfigMap, default round-robin;
    ``service_upstream``: the ConfigMap's service-upstream)."""
    from ._router import Router

    return Router(res, ingress_class=ingress_class, controller=controller, seed=seed,
                  load_balance=load_balance or "round_robin", service_upstream=service_upstream)


def _served(res: Resources, ingress_class: str | None, controller: str | None) -> list[Any]:
    from ._table import served_ingresses

    return served_ingresses(res, ingress_class, controller)[0]


def _served_by(router: Any, res: Resources, ingress_class: str | None,
               controller: str | None) -> list[Any]:
    """The Ingresses ``router`` serves right after it was built or updated from ``res``: its
    table's own list (the build worked it out; working it out again is a second pass over
    every Ingress, a sort by age included), else (a router without a table) from ``res``.
    Call it with the swap lock held, or before anyone else can swap."""
    table = getattr(router, "table", None)
    if table is not None:
        return list(table.served)
    return _served(res, ingress_class, controller)
