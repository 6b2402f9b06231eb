"""Which balancer a backend gets, as the annotations ask for it (§8): ``BalancerSpec`` and
the ``affinity``/``session-cookie-*`` part, ``AffinityConfig``. Plain values; the annotations
are read into them by ``_balance.parse_balancer_spec``."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AffinityConfig",
    "BalancerSpec",
]


@dataclass(frozen=True, slots=True)
class AffinityConfig:
    """``affinity: cookie`` and the ``session-cookie-*`` annotations."""

    name: str = "INGRESSCOOKIE"
    path: str = "/"
    max_age: int | None = None
    expires: int | None = None
    samesite: str | None = None
    secure: bool = False
    mode: str = "balanced"
    domain: str | None = None
    #: ``session-cookie-change-on-failure``: a retry that moves a session to another endpoint
    #: also moves its cookie there.
    change_on_failure: bool = False
    #: ``session-cookie-conditional-samesite-none``: leave ``SameSite=None`` out for user agents
    #: that mishandle it (:func:`samesite_none_compatible`).
    conditional_samesite_none: bool = False
    #: ``session-cookie-partitioned``: the ``Partitioned`` attribute (CHIPS).
    partitioned: bool = False


@dataclass(frozen=True, slots=True)
class BalancerSpec:
    """Which balancer a backend gets; hashable, so equal specs share one instance."""

    #: ``"sticky"``, ``"chash"`` or a ``load-balance`` name.
    kind: str
    hash_by: str | None = None
    subset: bool = False
    subset_size: int = 3
    affinity: AffinityConfig | None = None
