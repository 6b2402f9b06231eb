"""The request headers a ``default-backend`` annotation's Service gets (pure: no I/O).

A rule whose backend has no ready endpoint is served by the Service its Ingress's
``nginx.ingress.kubernetes.io/default-backend`` annotation names, when that one has an
endpoint (the Router's ``Decision.default_backend``). ingress-nginx then proxies to it with
these headers on top of the usual ones (internal/ingress/controller/template/template.go
``buildProxyPass`` / nginx.tmpl: ``if strings.HasPrefix(location.Backend,
"custom-default-backend-")``)::

    proxy_set_header X-Code 503;
    proxy_set_header X-Format $http_accept;
    proxy_set_header X-Namespace $namespace;
    proxy_set_header X-Ingress-Name $ingress_name;
    proxy_set_header X-Service-Name $service_name;
    proxy_set_header X-Service-Port $service_port;
    proxy_set_header X-Request-ID $req_id;

``$namespace``, ``$ingress_name``, ``$service_name`` and ``$service_port`` are the location's:
the rule's Ingress and the Service (and port, as written in the Ingress) that has no endpoint.
``proxy_set_header`` sends no header whose value is empty (no ``X-Format`` without Accept).
X-Request-ID is the one every proxied request carries already (sent once). The response is the
default backend's own, status included (``proxy_pass``, not ``error_page``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["SET_NAMES", "default_backend_fields", "default_backend_lines", "without_set_names"]

#: The names ingress-nginx's ``proxy_set_header`` sets for a default backend: the client's own
#: headers of these names are not passed (nginx passes no client header that a
#: ``proxy_set_header`` of the location names, ngx_http_proxy_init_headers), also when the
#: value set is empty.
SET_NAMES = frozenset({b"x-code", b"x-format", b"x-namespace", b"x-ingress-name",
                       b"x-service-name", b"x-service-port"})


def _accept(headers: Iterable[tuple[Any, ...]]) -> bytes:
    """``$http_accept``: the request's Accept headers, repeats joined by ``", "``. ``headers``
    holds ``(name, value)`` or h11's ``(raw name, lower-case name, value)`` items."""
    found: list[bytes] = []
    for item in headers:
        name, value = item[-2], item[-1]
        if len(name) == 6 and bytes(name).lower() == b"accept":
            found.append(bytes(value))
    return b", ".join(found)


def default_backend_fields(decision: Any, headers: Iterable[tuple[Any, ...]]
                           ) -> list[tuple[bytes, bytes]]:
    """The extra ``(name, value)`` request headers (lower-case names) for ``decision``: none
    unless a ``default-backend`` annotation's Service serves it."""
    if getattr(decision, "default_backend", None) is None:
        return []
    m = decision.match
    ing = getattr(m, "ingress_object", None)
    ingress = (ing.metadata.name if ing is not None
               else (m.ingress or "").rpartition("/")[2])
    out = [(b"x-code", b"503")]
    accept = _accept(headers)
    if accept:
        out.append((b"x-format", accept))
    for name, value in ((b"x-namespace", m.namespace), (b"x-ingress-name", ingress),
                        (b"x-service-name", m.service), (b"x-service-port", m.port)):
        if value is not None and value != "":
            out.append((name, str(value).encode("utf-8")))
    return out


def default_backend_lines(decision: Any, headers: Iterable[tuple[Any, ...]]) -> bytes:
    """``default_backend_fields`` as upstream head lines (``b"name: value\\r\\n"`` each)."""
    return b"".join(b"%s: %s\r\n" % f for f in default_backend_fields(decision, headers))


def without_set_names(lines: list[bytes]) -> list[bytes]:
    """Upstream head ``lines`` (``b"Name: value\r\n"`` each) without the client's headers of
    ``SET_NAMES``."""
    return [h for h in lines if h.partition(b":")[0].lower() not in SET_NAMES]
