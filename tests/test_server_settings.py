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
    # Session 22: applied to the caller's router (a copy never saw its later updates).
    assert server.proxy.router is router
    assert router.load_balance == "ewma" and router.seed == 3
    assert server.proxy.settings.proxy_read_timeout == 5
    # Unchanged value: the router is kept as given.
    assert ProxyServer(router, load_balance="round_robin").proxy.router is router


@pytest.mark.asyncio
async def test_bad_server_keywords_are_refused() -> None:
    with pytest.raises(ValueError, match="load_balance"):
        ProxyServer(Router(Resources()), load_balance="least_conn")
    with pytest.raises(TypeError, match="unknown setting"):
        ProxyServer(Router(Resources()), proxy_reed_timeout=5)


@pytest.mark.asyncio
async def test_redirect_and_header_keywords() -> None:
    # The ConfigMap keys http-redirect-code, force-ssl-redirect and ignore-invalid-headers are
    # keyword arguments too.
    server = ProxyServer(Router(Resources()), http_redirect_code=301, force_ssl_redirect=True,
                         ignore_invalid_headers=False)
    s = server.proxy.settings
    assert (s.http_redirect_code, s.force_ssl_redirect, s.ignore_invalid_headers) == (
        301, True, False)
    with pytest.raises(ValueError, match="http_redirect_code"):
        ProxyServer(Router(Resources()), http_redirect_code=200)


@pytest.mark.asyncio
async def test_retry_and_client_abort_keywords() -> None:
    # ConfigMap proxy-next-upstream-timeout and retry-non-idempotent, and nginx's
    # proxy_ignore_client_abort (no ConfigMap key), as keyword arguments.
    server = ProxyServer(Router(Resources()), proxy_next_upstream_timeout=4,
                         retry_non_idempotent=True, proxy_ignore_client_abort=True)
    s = server.proxy.settings
    assert (s.proxy_next_upstream_timeout, s.retry_non_idempotent,
            s.proxy_ignore_client_abort) == (4, True, True)
    opts = server.proxy.options_for(None)
    assert opts.next_upstream_timeout == 4.0 and "non_idempotent" in opts.next_upstream


@pytest.mark.asyncio
async def test_upstream_keepalive_keywords_reach_the_pool() -> None:
    # ConfigMap upstream-keepalive-time / -timeout / -requests as keyword arguments; the
    # server's pool (which enforces them) sees the same settings.
    server = ProxyServer(Router(Resources()), upstream_keepalive_time=30,
                         upstream_keepalive_timeout=5, upstream_keepalive_requests=7)
    s = server.pool.settings
    assert (s.upstream_keepalive_time, s.upstream_keepalive_timeout,
            s.upstream_keepalive_requests) == (30, 5, 7)
    assert server.proxy.settings is s
    with pytest.raises(ValueError, match="upstream_keepalive_time"):
        ProxyServer(Router(Resources()), upstream_keepalive_time=-1)
