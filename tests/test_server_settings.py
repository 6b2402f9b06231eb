"""The ConfigMap settings as keyword arguments of the Python server API (CONTRACT: "The same
settings are keyword arguments of the Python server API")."""

from __future__ import annotations

import pytest

from ingresslib import Resources, Router
from ingresslib.proxy import ProxyServer


@pytest.mark.asyncio
async def test_load_balance_keyword_rebuilds_the_router() -> None:
    router = Router(Resources(), seed=3)
    server = ProxyServer(router, load_balance="ewma", proxy_read_timeout=5)
    assert server.proxy.router is not router
    assert server.proxy.router.load_balance == "ewma" and server.proxy.router.seed == 3
    assert server.proxy.settings.proxy_read_timeout == 5
    # Unchanged value: the router is kept as given.
    assert ProxyServer(router, load_balance="round_robin").proxy.router is router


@pytest.mark.asyncio
async def test_bad_server_keywords_are_refused() -> None:
    with pytest.raises(ValueError, match="load_balance"):
        ProxyServer(Router(Resources()), load_balance="least_conn")
    with pytest.raises(TypeError, match="unknown setting"):
        ProxyServer(Router(Resources()), proxy_reed_timeout=5)
