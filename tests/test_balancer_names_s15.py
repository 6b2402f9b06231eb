"""Balancer names that the annotations reserve for built-in balancers are refused.

``BalancerSpec.kind`` is ``"sticky"`` for ``affinity: cookie`` and ``"chash"`` for
``upstream-hash-by``; ``make_balancer`` builds those itself. Before, a factory registered (or
given to ``Router``) under one of these names was accepted and never called: a backend with
``load-balance: sticky`` was silently served by the built-in cookie affinity.
"""

from __future__ import annotations

from typing import Any

import pytest

import ingresslib
from ingresslib import Router, register_balancer
from ingresslib._balance import RoundRobin, registered_balancers, unregister_balancer


def _factory(options: Any) -> Any:
    return RoundRobin(options)


@pytest.mark.parametrize("name", ["sticky", "chash"])
def test_register_balancer_refuses_a_reserved_name(name: str) -> None:
    with pytest.raises(ValueError, match="reserved"):
        register_balancer(name, _factory)
    assert name not in registered_balancers()


@pytest.mark.parametrize("name", ["sticky", "chash"])
def test_router_refuses_a_reserved_name(name: str) -> None:
    res = ingresslib.parse_manifests("")
    with pytest.raises(ValueError, match="reserved"):
        Router(res, balancers={name: _factory})


def test_other_names_still_register() -> None:
    register_balancer("sticky-ish", _factory)
    try:
        assert registered_balancers()["sticky-ish"] is _factory
        Router(ingresslib.parse_manifests(""), balancers={"chash2": _factory})
    finally:
        unregister_balancer("sticky-ish")
