"""ProxyServer's pools of ``auth-keepalive`` connections to ``auth-url`` services: one
``UpstreamPool`` per (auth service, TLS, N, requests, timeout), beside the server's own pool
(proxy/_authkeepalive.py: the annotations and the core's side; IngressASGI's pool:
ingresslib/_asgi_authkeepalive.py). Not part of the sans-IO core."""

from __future__ import annotations

import dataclasses
import weakref
from typing import Any

from ._authkeepalive import KEEPALIVE_TIME, AuthKeepalive

__all__ = ["auth_take", "auth_adopt", "close_auth_pools"]

#: The server's upstream pool -> its auth pools, one per (endpoint, tls, N, requests, timeout).
_POOLS: weakref.WeakKeyDictionary[Any, _Pools] = weakref.WeakKeyDictionary()
#: Pools kept before the idle ones are dropped (``_prune``).
PRUNE_AT = 64


class _Pools(dict[tuple[Any, ...], Any]):
    """One server's auth pools; ``prune_at``: the count at which the empty ones are dropped
    when another is made (twice the count left by the last pruning, at least ``PRUNE_AT``)."""

    prune_at = PRUNE_AT


def _prune(pools: _Pools) -> None:
    """Drop the pools holding no idle connection (made again when needed): the pools follow
    the auth services and ``auth-keepalive*`` numbers of the routes as they are, not of every
    configuration ever loaded (an Ingress edited over and over, auth services coming and
    going). A connection under way whose pool was dropped still goes back to it and is closed
    by its idle timer."""
    for key in [k for k, p in pools.items() if not p._lru and p._sweeper is None]:
        del pools[key]
    pools.prune_at = max(PRUNE_AT, 2 * len(pools))


def _pool_of(base: Any, a: Any) -> Any:
    """The auth pool of ``OpenUpstream`` ``a`` (its ``keepalive`` set: an auth subrequest with
    keep-alive) beside the server's pool ``base``."""
    ka: AuthKeepalive = a.keepalive
    pools = _POOLS.get(base)
    if pools is None:
        pools = _POOLS[base] = _Pools()
    key = (a.endpoint, a.tls, ka.connections, ka.requests, ka.timeout)
    pool = pools.get(key)
    if pool is None:
        from ._server import UpstreamPool  # (_server imports this module)

        if len(pools) >= pools.prune_at:
            _prune(pools)

        settings = dataclasses.replace(
            base.settings, upstream_keepalive_connections=ka.connections,
            upstream_keepalive_requests=ka.requests,
            upstream_keepalive_timeout=float(ka.timeout), upstream_keepalive_time=KEEPALIVE_TIME)
        pool = pools[key] = UpstreamPool(base._loop, settings)
        pool.upstream_ssl = base.upstream_ssl
    return pool


def auth_take(base: Any, a: Any) -> Any:
    """``OpenUpstream`` ``a`` (pooled, ``keepalive`` set): an idle connection of its auth pool
    beside the server's pool ``base``, or None (connect)."""
    return _pool_of(base, a).take(a.endpoint, a.tls, a.tls_config)


def auth_adopt(base: Any, up: Any, a: Any) -> None:
    """A connection carrying ``a`` (``keepalive`` set) belongs to its auth pool: the server's
    ``CloseUpstream(reuse=True)`` puts it there (``up.pool.put``)."""
    pool = _pool_of(base, a)
    if up.pool is not pool:
        up.pool.discard(up)
        up.pool = pool


def close_auth_pools(base: Any) -> None:
    """ProxyServer's shutdown: close the idle auth connections too."""
    for pool in (_POOLS.pop(base, None) or {}).values():
        pool.close()
