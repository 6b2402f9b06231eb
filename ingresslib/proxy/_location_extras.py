"""Small per-location annotations of ingress-nginx, read for the proxy core (and, where they
apply, ``IngressASGI``):

* ``enable-access-log`` (annotations/log/main.go: ``GetBoolAnnotation``, default true; nginx.tmpl
  writes ``access_log off;`` in the location when false): the request's access-log line is not
  written. Its record still goes to the metrics (``RequestRecord.access_log`` is False and
  ``AccessLog`` skips it): ``access_log off`` does not stop ingress-nginx's Prometheus
  metrics, which its Lua ``log_by_lua_block`` (monitor.call) collects.
* ``connection-proxy-header`` (annotations/connection/main.go: ``^(close|keep-alive)$``;
  nginx.tmpl ``proxy_set_header Connection {{ $location.Connection.Header }};`` in place of
  ``$connection_upgrade``): the Connection header sent upstream. ``close`` also ends that
  upstream connection after its response (it is not pooled: the backend was told it closes).
* ``proxy-http-version`` (proxy/main.go: ``ValidateOptions([]string{"1.0", "1.1"}, true,
  true)``; nginx.tmpl ``proxy_http_version``): ``1.0`` sends an ``HTTP/1.0`` request line and
  never keeps the upstream connection (nginx's keepalive needs 1.1: an HTTP/1.0 response is
  ``connection_close``).
* ``use-port-in-redirects`` (annotations/portinredirect/main.go ``GetBoolAnnotation``;
  lua_ingress.lua ``redirect_to_https``: "if location_config.use_port_in_redirects then uri =
  string_format("https://%s:%s%s", redirect_host(), config.listen_ports.https, request_uri)"):
  the ssl-redirect's Location names the https port, 443 included. (nginx's own
  ``port_in_redirect`` changes only redirects nginx builds from a relative URI: ingresslib
  answers none; app-root and the redirect annotations are absolute.)

* ``enable-rewrite-log`` (annotations/log/main.go, default false; nginx.tmpl ``rewrite_log on;``):
  nginx logs its ``rewrite`` processing at the notice level; here the rewrite-target's result
  (or that the rule's regex did not match) is logged at INFO on the proxy's logger
  (``log_rewrite``), one line per request.

An invalid value is warned and the default used, as ingress-nginx ignores it.
"""

from __future__ import annotations

from typing import Any

from .._goparse import parse_bool

__all__ = ["LOCATION_EXTRAS", "parse_access_log", "parse_connection_header",
           "one_of", "parse_http_version", "parse_port_in_redirects", "parse_rewrite_log",
           "log_rewrite", "upstream_keeps"]

#: The annotations read here (without the prefix).
LOCATION_EXTRAS = frozenset({"enable-access-log", "enable-rewrite-log",
                             "connection-proxy-header", "proxy-http-version",
                             "use-port-in-redirects"})


def _bool(value: str, what: str) -> bool:
    b = parse_bool(value)
    if b is None:
        raise ValueError(f'invalid boolean {value!r} for {what}: must be "true" or "false"')
    return b


def parse_access_log(value: str) -> bool:
    """``enable-access-log``: Go's strconv.ParseBool spellings."""
    return _bool(value, "enable-access-log")


def parse_rewrite_log(value: str) -> bool:
    """``enable-rewrite-log``: Go's strconv.ParseBool spellings."""
    return _bool(value, "enable-rewrite-log")


def log_rewrite(logger: Any, ingress: object, path: str, query: str | None,
                target: bytes) -> None:
    """``enable-rewrite-log``: nginx's ``rewrite_log`` notices ("... matches ...", then
    "rewritten data: ..., args: ..."), as one INFO line: the request path as matched and the
    upstream request target (unchanged when the rule's regex did not match)."""
    before = path if query is None else f"{path}?{query}"
    after = target.decode("ascii", "replace")
    if after == before:
        logger.info("rewrite-target of Ingress %s: %r does not match the rule; not rewritten",
                    ingress, path)
    else:
        logger.info("rewrite-target of Ingress %s: %r rewritten to %r", ingress, before, after)


def parse_port_in_redirects(value: str) -> bool:
    """``use-port-in-redirects``: Go's strconv.ParseBool spellings."""
    return _bool(value, "use-port-in-redirects")


def parse_connection_header(value: str) -> bytes:
    """``connection-proxy-header``: ``close`` or ``keep-alive`` exactly (GetStringAnnotation
    trims the value first)."""
    v = value.strip()
    if v not in ("close", "keep-alive"):
        raise ValueError(f'invalid connection-proxy-header {value!r}: must be "close" or '
                         '"keep-alive"')
    return v.encode("ascii")


def one_of(value: str, choices: tuple[str, str], name: str) -> str:
    """``value`` trimmed when it is one of the two ``choices`` (case-sensitive, as ingress-nginx's
    ``parser.ValidateOptions(options, caseSensitive=true, trimSpace=true)``), else ValueError
    naming ``name``."""
    v = value.strip()
    if v not in choices:
        a, b = choices
        raise ValueError(f'invalid {name} {value!r}: must be "{a}" or "{b}"')
    return v


def parse_http_version(value: str) -> str:
    """``proxy-http-version``: ``1.0`` or ``1.1`` (trimmed, as ValidateOptions does)."""
    return one_of(value, ("1.0", "1.1"), "proxy-http-version")


def upstream_keeps(opts: Any) -> bool:
    """Whether a route's options (a ``RouteOptions``, or None: an unrouted request) let its
    upstream connection be pooled after a clean response: not after ``connection-proxy-header:
    close`` (the backend was told it closes), nor with ``proxy-http-version: 1.0``."""
    return opts is None or (opts.http_version == "1.1" and opts.connection_header != b"close")
