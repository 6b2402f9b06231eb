"""The auth-response-headers of a request that reached its backend without the auth subrequest
(``satisfy: any``: the allowlist or basic authentication let it in first), for the proxy core
(``ClientConnection._access_phase``) and IngressASGI alike.

ingress-nginx writes, in every location with an ``auth-url`` (or the ConfigMap's
``global-auth-url``), for each ``auth-response-headers`` name (template.go
``buildAuthResponseHeaders``)::

    auth_request_set $authHeader0 $upstream_http_x_user;
    proxy_set_header 'X-User' $authHeader0;

The ``proxy_set_header`` holds whether or not ``auth_request`` ran. Under ``satisfy any`` an
access check that lets the request in ends nginx's access phase before ``auth_request``
(``ngx_http_core_access_phase``): ``$authHeader0`` is then never set, ``proxy_set_header``
sends no header whose value is empty, and a header it sets is never copied from the client's
(``ngx_http_proxy_create_request`` skips the client's headers named in ``headers_set_hash``).
So the backend gets no ``X-User`` at all, never the client's own: a backend trusts that header
as the auth service's word. ingresslib passed the client's ``X-User: admin`` on.

Not on a ``no-auth-locations`` path (``effective_auth`` None): nginx.tmpl writes no auth lines
in such a location (``shouldApplyGlobalAuth`` false), the client's headers pass there."""

from __future__ import annotations

from typing import Any

from ._extauth import ExtAuth, with_auth_headers
from ._globalauth import effective_auth

__all__ = ["unasked_pairs", "unasked_head"]


def unasked_pairs(auth: ExtAuth | None, match: Any) -> tuple[tuple[bytes, bytes], ...]:
    """The auth-response-headers of ``auth`` (a route's ``ext_auth``) with no value: what the
    location's ``proxy_set_header`` lines send when ``auth_request`` did not run (nothing, and
    the client's headers of those names dropped). Empty: nothing to do."""
    if auth is None or not auth.response_headers or effective_auth(auth, match) is None:
        return ()
    return tuple((name.encode("ascii"), b"") for name in auth.response_headers)


def unasked_head(up_head: bytes, auth: ExtAuth | None, match: Any) -> bytes:
    """The proxy core's upstream head without the client's auth-response-headers."""
    pairs = unasked_pairs(auth, match)
    return with_auth_headers(up_head, pairs) if pairs else up_head

