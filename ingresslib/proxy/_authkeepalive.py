"""``auth-keepalive*``: keep-alive connections to an ``auth-url`` service (proxy core and
ProxyServer; IngressASGI's pool over its asyncio client: ingresslib/_asgi_authkeepalive.py).

References (kubernetes/ingress-nginx, nginx):

- ``internal/ingress/annotations/authreq/main.go`` ``Parse``: ``auth-keepalive`` (an int,
  default 0: no keep-alive; negative: 0, warned; not an int: the default), kept only when the
  auth URL's ``host:port`` holds no ``$`` ("upstream block cannot reference a variable in the
  server directive": ingresslib refuses a ``$`` in ``auth-url`` anyway);
  ``auth-keepalive-requests`` (default 1000; <= 0: "should be greater than zero", keep-alive
  off); ``auth-keepalive-timeout`` (seconds, default 60; <= 0: keep-alive off);
  ``auth-keepalive-share-vars`` (a bool, default false).
- ``rootfs/etc/nginx/template/nginx.tmpl``: with ``KeepaliveConnections`` an ``upstream
  <buildAuthUpstreamName>`` block (``server <host:port>; keepalive N; keepalive_requests R;
  keepalive_timeout Ts;``) and in the auth location ``proxy_http_version 1.1; proxy_set_header
  Connection "";``; ``auth-keepalive-share-vars`` only decides whether the subrequest shares
  the main request's nginx variables (``$req_id``: the same X-Request-ID in both). ingresslib's
  subrequest always carries the request's id (proxy/_extauth.py ``_request_id``, as nginx's
  ``auth_request``), so it has no effect here: accepted.
- nginx ``ngx_http_upstream_keepalive_module.c`` ``ngx_http_upstream_free_keepalive_peer``:
  a connection is cached only when its answer was read whole and it is to be kept
  (``u->keepalive``: no ``Connection: close``, HTTP/1.1, a known length), ``c->requests <
  keepalive_requests``; at most N idle per upstream (the least recently used closed first);
  idle past ``keepalive_timeout``: closed. ``ngx_http_upstream_get_keepalive_peer`` hands out
  a cached one; when it fails before an answer, ``next_upstream`` tries a new connection
  (``u->peer.tries``; a cached connection's error is not the server's failure).

ingresslib pools the connections per auth service (``host:port``, TLS) and these three
numbers: two locations whose auth-url and auth-keepalive* agree share one pool (nginx: one
upstream block per location). The whole answer is read before the verdict applies (nginx's
auth_request waits for the subrequest's end too); an answer that cannot be reused (``Connection:
close``, HTTP/1.0, read until close, bytes after it) closes its connection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import h11

from .._goparse import parse_bool

__all__ = ["AuthKeepalive", "KEEPALIVE_ANNOTATIONS", "parse_auth_keepalive", "reusable",
           "KEEPALIVE_TIME"]

KEEPALIVE_ANNOTATIONS = frozenset({"auth-keepalive", "auth-keepalive-share-vars",
                                   "auth-keepalive-requests", "auth-keepalive-timeout"})

#: authreq/main.go's defaults.
DEFAULT_CONNECTIONS = 0
DEFAULT_REQUESTS = 1000
DEFAULT_TIMEOUT = 60
#: nginx's keepalive_time (not set in the auth upstream block): 1 h.
KEEPALIVE_TIME = 3600.0


@dataclass(frozen=True, slots=True)
class AuthKeepalive:
    """One location's ``auth-keepalive*`` (``ExtAuth.keepalive``; None: a connection per
    subrequest)."""

    #: ``auth-keepalive``: idle connections kept (> 0).
    connections: int
    #: ``auth-keepalive-requests``: subrequests per connection.
    requests: int = DEFAULT_REQUESTS
    #: ``auth-keepalive-timeout``: seconds an idle connection is kept.
    timeout: int = DEFAULT_TIMEOUT
    #: ``auth-keepalive-share-vars`` (no effect in ingresslib: module docstring).
    share_vars: bool = False


def _go_int(value: str | None) -> int | None:
    """parser.GetIntAnnotation: ``strconv.Atoi`` (an optional sign, ASCII digits)."""
    if value is None:
        return None
    v = value[1:] if value[:1] in ("+", "-") else value
    if not v or not v.isascii() or not v.isdigit():
        return None
    n = int(value)
    return n if -(1 << 63) <= n < (1 << 63) else None


def parse_auth_keepalive(get: Callable[[str], str | None], prefix: str,
                         warn: Callable[[str, str], None]) -> AuthKeepalive | None:
    """authreq/main.go's keep-alive part: None when keep-alive is off (the default)."""
    for name in ("auth-keepalive", "auth-keepalive-requests", "auth-keepalive-timeout"):
        raw = get(name)
        if raw is not None and _go_int(raw) is None:
            warn(prefix + name, f"{raw!r} is not an integer: the default applies")
    share_raw = get("auth-keepalive-share-vars")
    share = False
    if share_raw is not None:
        b = parse_bool(share_raw)
        if b is None:
            warn(prefix + "auth-keepalive-share-vars", f"{share_raw!r} is not a bool: false")
        share = bool(b)
    connections = _go_int(get("auth-keepalive"))
    if connections is None:
        connections = DEFAULT_CONNECTIONS
    if connections < 0:
        warn(prefix + "auth-keepalive", "contains a negative value: auth-keepalive 0 (a new "
             "connection per subrequest)")
        connections = 0
    requests = _go_int(get("auth-keepalive-requests"))
    if requests is None:
        requests = DEFAULT_REQUESTS
    timeout = _go_int(get("auth-keepalive-timeout"))
    if timeout is None:
        timeout = DEFAULT_TIMEOUT
    if requests <= 0:
        if connections > 0:
            warn(prefix + "auth-keepalive-requests", "should be greater than zero: "
                 "auth-keepalive 0 (a new connection per subrequest)")
        connections = 0
    if timeout <= 0:
        if connections > 0:
            warn(prefix + "auth-keepalive-timeout", "should be greater than zero: "
                 "auth-keepalive 0 (a new connection per subrequest)")
        connections = 0
    if connections == 0:
        return None
    return AuthKeepalive(connections, requests, min(timeout, 2147483), share)


def reusable(reader: Any) -> bool:
    """Whether the auth connection whose answer ``reader`` (an ``_H11Reader``) just read to its
    end may go back to the pool (as the core's ``_response_complete`` decides for a backend's)."""
    return (reader.their_state is h11.DONE and not reader.has_trailing
            and not reader.peer_closed and not reader.spent)
