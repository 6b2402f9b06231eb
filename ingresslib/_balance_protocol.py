"""What a balancer is (§8): the ``Balancer`` protocol, the ``BalancerOptions`` its factory
gets, and the rule every built-in keeps on a retry (``_first_untried``: never an endpoint this
request already tried while another is untried)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ._balance_request import RequestContext
from ._balance_spec import BalancerSpec
from ._endpoints import EndpointSet
from ._models import EMPTY_MAP

__all__ = [
    "Address",
    "Balancer",
    "BalancerOptions",
    "BalancerFactory",
]

Address = tuple[str, int]


@runtime_checkable
class Balancer(Protocol):
    """Chooses among the ready endpoints of one backend.

    ``pick`` returns an index into ``backend.endpoints`` (never one in ``tried`` while another
    is untried), or None when every endpoint was tried or there is none. ``observe`` hears how a
    request to ``endpoint`` went (latency-aware balancers use it; others ignore it).

    One instance serves one backend for as long as the backend exists: endpoint changes arrive
    as a new ``backend`` argument (compare it with ``is`` to refresh derived state). ``pick`` may
    be called from several threads at once. An optional class attribute ``uses_request = False``
    tells the Router that ``request`` is not read (it then passes :data:`EMPTY_REQUEST`).
    """

    def pick(self, request: RequestContext, backend: EndpointSet,
             tried: Collection[Address]) -> int | None:
        """The index into ``backend.endpoints`` of the endpoint for this try, or None when
        every endpoint is in ``tried`` (the ``(ip, port)`` already tried for this request) or
        there is none."""

    def observe(self, endpoint: Address, seconds: float, ok: bool) -> None:
        """How a try to ``endpoint`` (``(ip, port)``) went: ``seconds`` it took, ``ok`` False
        for a failed try. May do nothing."""


@dataclass(frozen=True, slots=True)
class BalancerOptions:
    """What a factory gets: the Ingress annotations (custom balancers may read their own), a
    random source seeded from the Router's ``seed``, and a monotonic clock."""

    annotations: Mapping[str, str] = field(default_factory=lambda: EMPTY_MAP)
    rng: random.Random = field(default_factory=random.Random)
    clock: Callable[[], float] = time.monotonic
    spec: BalancerSpec | None = None


BalancerFactory = Callable[[BalancerOptions], Balancer]


def _first_untried(n: int, start: int, endpoints: tuple[Address, ...],
                   tried: Collection[Address]) -> int | None:
    for step in range(n):
        k = (start + step) % n
        if endpoints[k] not in tried:
            return k
    return None
