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
_POOLS: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], Any]] = \
    weakref.WeakKeyDictionary()


def _pool_of(ds: Any, conn_id: int) -> Any:
    """The auth pool for ``conn_id`` of the ``_Downstream`` ``ds`` (None: not an auth
    subrequest with keep-alive)."""
    call = ds.conn._auth
    if call is None or call.conn_id != conn_id:
        return None
    ka: AuthKeepalive | None = call.auth.keepalive
    if ka is None:
        return None
    base = ds.server.pool
    pools = _POOLS.get(base)
    if pools is None:
        pools = _POOLS[base] = {}
    key = (call.auth.endpoint, call.auth.tls, ka.connections, ka.requests, ka.timeout)
    pool = pools.get(key)
    if pool is None:
        from ._server import UpstreamPool  # (_server imports this module)

        settings = dataclasses.replace(
            base.settings, upstream_keepalive_connections=ka.connections,
            upstream_keepalive_requests=ka.requests,
            upstream_keepalive_timeout=float(ka.timeout), upstream_keepalive_time=KEEPALIVE_TIME)
        pool = pools[key] = UpstreamPool(base._loop, settings)
        pool.upstream_ssl = base.upstream_ssl
    return pool


def auth_take(ds: Any, a: Any) -> Any:
    """``OpenUpstream`` ``a`` (pooled) while the core has an auth subrequest under way: an idle
    connection of its auth pool, or None (connect). Not an auth one: the server's pool."""
    pool = _pool_of(ds, a.conn_id)
    if pool is None:
        return ds.server.pool.take(a.endpoint, a.tls, a.tls_config)
    return pool.take(a.endpoint, a.tls, a.tls_config)


def auth_adopt(ds: Any, up: Any, a: Any) -> None:
    """A connection carrying an auth subrequest with keep-alive belongs to its auth pool: the
    server's ``CloseUpstream(reuse=True)`` puts it there (``up.pool.put``)."""
    pool = _pool_of(ds, a.conn_id)
    if pool is not None and up.pool is not pool:
        up.pool.discard(up)
        up.pool = pool


def close_auth_pools(base: Any) -> None:
    """ProxyServer's shutdown: close the idle auth connections too."""
    for pool in (_POOLS.pop(base, None) or {}).values():
        pool.close()
