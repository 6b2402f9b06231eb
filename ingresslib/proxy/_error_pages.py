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

import dataclasses
import functools
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._annotations import RouteOptions

__all__ = ["SET_NAMES", "CUSTOM_HTTP_ERRORS", "ERROR_PAGE_NEXT_UPSTREAM", "default_backend_fields",
           "default_backend_lines", "error_page_head", "error_page_options",
           "global_custom_http_errors", "parse_custom_http_errors",
           "parse_global_custom_http_errors", "without_set_names"]

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


def default_backend_fields(decision: Any, headers: Iterable[tuple[Any, ...]], code: int = 503
                           ) -> list[tuple[bytes, bytes]]:
    """The extra ``(name, value)`` request headers (lower-case names) for ``decision``: none
    unless a ``default-backend`` annotation's Service serves it. ``code``: X-Code (503 for a
    rule without endpoints, the intercepted status for ``custom-http-errors``)."""
    if getattr(decision, "default_backend", None) is None:
        return []
    m = decision.match
    ing = getattr(m, "ingress_object", None)
    ingress = (ing.metadata.name if ing is not None
               else (m.ingress or "").rpartition("/")[2])
    out = [(b"x-code", b"%d" % code)]
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


# --------------------------------------------------------------------------- custom-http-errors
#: The annotation (without the prefix): ingress-nginx annotations/customhttperrors/main.go.
CUSTOM_HTTP_ERRORS = "custom-http-errors"

#: The headers the error page's named location sets (nginx.tmpl ``CUSTOM_ERRORS``: X-Code,
#: X-Format, X-Original-URI, X-Namespace, X-Ingress-Name, X-Service-Name, X-Service-Port), and
#: X-Forwarded-Prefix, which only a rewritten location sends: the lines of these names in the
#: original upstream head are replaced.
_ERROR_PAGE_NAMES = SET_NAMES | {b"x-original-uri", b"x-forwarded-prefix"}


def parse_custom_http_errors(raw: str) -> tuple[frozenset[int], str | None]:
    r"""``custom-http-errors``: ``(codes, None)`` or ``(frozenset(), why it is ignored)``.

    As customhttperrors/main.go: the value must match ``^(?:(?:[45]\d\d)(?:,\s*)?)+$`` (its
    validator; a failure ignores the whole annotation with a warning), then it is split on
    ``,`` and each item read with ``strconv.Atoi`` (which takes no blank: ``"404, 500"``
    fails there). Codes 400-599 only."""
    value = raw.strip()
    if not value:
        return frozenset(), "empty; ignored"
    codes: set[int] = set()
    for item in value.split(","):
        if not (len(item) == 3 and item.isascii() and item.isdigit() and item[0] in "45"):
            return frozenset(), (f"invalid status code {item!r} in {raw!r} (a comma-separated "
                                 "list of codes 400-599, no blanks); ignored")
        codes.add(int(item))
    return frozenset(codes), None


#: Go's ``strconv.Atoi`` syntax: an optional sign, decimal digits.
_ATOI = re.compile(r"[+-]?[0-9]+")


def parse_global_custom_http_errors(raw: str) -> tuple[str, list[str]]:
    """The controller ConfigMap's ``custom-http-errors``: ``(codes, warnings)``, ``codes`` the
    canonical value (``"404,503"``: sorted, each once; "" for none).

    As ingress-nginx's template/configmap.go ``ReadConfig``: the value is split on ``,``
    (``splitAndTrimSpace``: empty fields dropped, each item trimmed) and each item read with
    ``strconv.Atoi``; an item it refuses is skipped with a warning ("%v is not a valid http
    code"). The codes are written as ``error_page <code> = @custom_upstream-default-backend_
    <code>;`` in the http block, and nginx refuses a code outside 300-599 there ("value must
    be between 300 and 599": the configuration is not loaded): ``ValueError``."""
    codes: set[int] = set()
    warnings: list[str] = []
    for item in raw.split(","):
        if not item:
            continue  # strings.FieldsFunc drops empty fields
        item = item.strip()
        if _ATOI.fullmatch(item) is None or len(item.lstrip("+-").lstrip("0")) > 18:
            warnings.append(f"{item!r} is not a valid http code; skipped")
            continue
        code = int(item)
        if not 300 <= code <= 599:
            raise ValueError(f"status {code} must be from 300 to 599 (nginx's error_page)")
        codes.add(code)
    return ",".join(str(c) for c in sorted(codes)), warnings


@functools.lru_cache(maxsize=16)
def global_custom_http_errors(value: str) -> frozenset[int]:
    """The codes of a canonical ``ProxySettings.custom_http_errors`` value."""
    return frozenset(int(c) for c in value.split(",")) if value else frozenset()


def error_page_head(up_head: bytes, code: int, decision: Any,
                    headers: Iterable[tuple[Any, ...]], original_uri: str,
                    query: str | None, host: bytes | None = None) -> bytes:
    """The upstream request head for the error page of ``code`` (``decision``: the
    ``default-backend`` annotation's Service), made from the original request's ``up_head``.

    nginx.tmpl ``CUSTOM_ERRORS`` (``location @custom_<upstream>_<code>``): ``rewrite (.*) /
    break;`` -- the path is ``/``, the query kept (a replacement without ``?`` keeps the
    arguments) -- and ``proxy_set_header`` X-Code ``<code>``, X-Format ``$http_accept``,
    X-Original-URI ``$request_uri``, X-Namespace, X-Ingress-Name, X-Service-Name,
    X-Service-Port (the original location's), X-Request-ID (the same). The method, the other
    headers and the body framing are the original request's. ``host``: the Host to send
    instead of the head's (``Host $best_http_host``, for a location whose ``upstream-vhost``
    set another)."""
    line_end = up_head.index(b"\r\n")
    method = up_head[:up_head.index(b" ")]
    drop = _ERROR_PAGE_NAMES if host is None else _ERROR_PAGE_NAMES | {b"host"}
    lines = [h for h in up_head[line_end + 2:-2].split(b"\r\n")[:-1]
             if h.partition(b":")[0].lower() not in drop]
    if host is not None:
        lines.insert(0, b"host: " + host)
    fields = default_backend_fields(decision, headers, code)
    fields.insert(2 if len(fields) > 1 and fields[1][0] == b"x-format" else 1,
                  (b"x-original-uri", original_uri.encode("ascii", "replace")))
    target = b"/?" + query.encode("ascii", "replace") if query else b"/"
    return b"%s %s HTTP/1.1\r\n%s%s\r\n" % (
        method, target, b"".join(h + b"\r\n" for h in lines),
        b"".join(b"%s: %s\r\n" % f for f in fields))


#: The error fetch's ``proxy_next_upstream``: nginx's default (ngx_http_proxy_module
#: ``NGX_HTTP_UPSTREAM_FT_ERROR|NGX_HTTP_UPSTREAM_FT_TIMEOUT``). nginx.tmpl writes the
#: ``location @custom_<upstream>_<code>`` blocks in the server block (the ``CUSTOM_ERRORS``
#: template) and sets ``proxy_next_upstream`` / ``_tries`` / ``_timeout`` only inside each
#: ``location <path>`` (``$location.Proxy.NextUpstream``...; the ConfigMap's values reach
#: nginx only there), neither in the server nor in the http block: the named location gets
#: nginx's defaults, not the intercepted location's.
ERROR_PAGE_NEXT_UPSTREAM = frozenset({"error", "timeout"})

def error_page_options(opts: RouteOptions) -> RouteOptions:
    """``opts`` (a ``RouteOptions``) for the error page fetch: the location's, but with
    nginx's default retries (``ERROR_PAGE_NEXT_UPSTREAM``; ``proxy_next_upstream_tries 0`` and
    ``proxy_next_upstream_timeout 0``: no limit but the endpoints, no ``non_idempotent``)."""
    if (opts.next_upstream == ERROR_PAGE_NEXT_UPSTREAM and opts.next_upstream_tries == 0
            and opts.next_upstream_timeout == 0):
        return opts
    return dataclasses.replace(opts, next_upstream=ERROR_PAGE_NEXT_UPSTREAM,
                               next_upstream_tries=0, next_upstream_timeout=0.0)
