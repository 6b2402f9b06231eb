"""IngressASGI's ``fallback`` app (the default backend of a request no rule routes) behind the
host's external authentication (``auth-url``, or the ConfigMap's ``global-auth-url``).

ingress-nginx answers a path no rule of a host covers from that host's server ``location /``,
which carries the annotations of the oldest Ingress with a rule for the host
(controller.go ``createServers``: ``locationApplyAnnotations(loc, anns)``, "loc.ExternalAuth =
anns.ExternalAuth", "loc.EnableGlobalAuth = anns.EnableGlobalAuth"), and proxies to the default
backend from there: the auth subrequest runs first, its auth-response-headers go to the default
backend. IngressASGI checked that location's source ranges and basic auth
(``RouteOptionsSource._unrouted_status``) and then called the ``fallback`` app unasked: a
client reached it past the host's auth service. The proxy core answers such a request 404
itself (no backend), so nothing there to ask for.
"""

from __future__ import annotations

from typing import Any

from ._asgi_extauth import authenticate
from ._asgi_scan import _request_uri
from .proxy._annotations import RouteOptions
from .proxy._auth_unasked import unasked_pairs
from .proxy._globalauth import effective_auth
from .proxy._satisfy import ALLOW

__all__ = ["NOT_ASKED", "fallback_auth"]

#: ``fallback_auth``'s answer when the server location has no auth service to ask.
NOT_ASKED: tuple[tuple[bytes, bytes], ...] = ()


async def fallback_auth(asgi: Any, server: RouteOptions | None, scope: Any, reply: Any,
                        peer: str | None, client_ip: str | None, host: str, host_n: str,
                        rel: str, query: str | None, request_id: bytes | None = None
                        ) -> tuple[tuple[bytes, bytes], ...] | None:
    """Ask the auth service of the host's server ``location /`` (``server``: its options,
    ``_unrouted_options``) before the ``fallback`` app: its auth-response-headers for that app
    (``NOT_ASKED``: no auth service, or the ``location /`` is in ``no-auth-locations``; with
    ``satisfy: any`` and an address its allowlist admits, the names with no value), or
    None once the refusal is answered (``authenticate``; ``request_id``: the request's id,
    the subrequest's X-Request-ID)."""
    if server is None or server.ext_auth is None \
            or effective_auth(server.ext_auth, None) is None:
        return NOT_ASKED
    access = server.access
    if access is not None and access.any is not None and access.any.verdict(client_ip) == ALLOW:
        # satisfy: any, the allowlist let the request in (``_unrouted_status``): nginx's access
        # phase ends there, the auth service is not asked and its headers are sent empty, the
        # client's of those names dropped (proxy/_auth_unasked.py).
        return unasked_pairs(server.ext_auth, None)
    path, args = _request_uri(scope, rel, query)
    return await authenticate(asgi, server, scope, reply, peer, client_ip, host, host_n,
                              path + ("?" + args if args else ""), request_id=request_id)
