"""What the core asks its driver to do, the record it emits per request, and the answers
the proxy core and the ASGI adapter decide alike.

Actions are frozen, slotted dataclasses; the driver performs them in order. They carry data
only, never behaviour, so a driver can be asyncio, selectors or a test harness.

The two front ends of one Ingress rule set -- the proxy core (``_connection.py``) and the
ASGI adapter (``ingresslib/_asgi.py``) -- take from here what they must decide the same way:
a route's options (``RouteOptionsSource``: per rule, and for a known host's path no rule
covers) and the redirect those options ask for (``redirect_for``).
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import re
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from .._table import _is_canary
from .._www import www_twins
from ._access import Access, build_access, combine_access
from ._authkeepalive import AuthKeepalive
from ._satisfy import any_job, any_step
from ._annotations import PREFIX, RouteOptions, parse_route_options, valid_app_root
from ._cors import PREFLIGHT_STATUS
from ._digest import DigestAuth
from ._mirror import Mirror
from ._proxy_ssl import HostProxySSL, ProxySSL, UpstreamTLS, with_server
from ._settings import ProxySettings

__all__ = [
    "HookFailures",
    "HOOK_LOG_INTERVAL",
    "RouteOptionsSource",
    "tls_host_predicate",
    "redirect_for",
    "access_answer",
    "denied_first",
    "access_denied",
    "proxy_ssl_denied",
    "parse_each_route",
    "location_redirect",
    "https_redirect",
    "location_host_of",
    "TimerKind",
    "Action",
    "OpenUpstream",
    "SendUpstream",
    "CloseUpstream",
    "SendDownstream",
    "CloseDownstream",
    "SetTimer",
    "RequestDone",
    "TunnelEstablished",
    "Offload",
    "Mirror",
    "access_job",
    "RequestRecord",
]


class TimerKind(enum.Enum):
    """Which timer a :class:`SetTimer` arms (at most one per connection): ``HEAD``
    (client_header_timeout), ``IDLE`` (keep_alive), ``UPSTREAM_READ`` (proxy_read_timeout),
    ``BODY`` (client_body_timeout; 5 s between reads while a local answer's body is discarded),
    ``RATE`` (limit-rate: the next bytes of a throttled response).
    On expiry the driver calls ``conn.timer_expired(kind, now)``."""

    #: Absolute deadline for a whole request head (nginx ``client_header_timeout``).
    HEAD = "head"
    #: Idle keep-alive time between two requests (ingress-nginx ``keep-alive``).
    IDLE = "idle"
    #: Time between two reads from the upstream (``proxy-read-timeout``).
    UPSTREAM_READ = "upstream_read"
    #: Time between two reads of the request body from the client (``client-body-timeout``):
    #: armed while the body is still coming, instead of ``UPSTREAM_READ``, for the earlier of
    #: that and, once the upstream's response head is in, its ``proxy-read-timeout``.
    BODY = "body"
    #: ``limit-rate``: the response's next bytes are due (nginx's ``c->write->delayed``
    #: timer). Armed instead of ``UPSTREAM_READ`` / ``BODY`` while the core holds back
    #: response bytes, so neither runs out because of the core's own throttling; they are
    #: armed again when it ends. Only on a connection made with ``throttle=True``.
    RATE = "rate"


@dataclass(frozen=True, slots=True)
class OpenUpstream:
    """Connect to ``endpoint`` (or take an idle pooled connection to it), then call
    ``upstream_connected(conn_id, now, reused=...)`` or ``upstream_failed(conn_id, now, ...)``."""

    conn_id: int
    endpoint: tuple[str, int]
    tls: bool
    connect_timeout: float
    send_timeout: float
    #: False: open a new connection, do not take one from the idle pool (a retry after a
    #: pooled connection turned out to be closed by the upstream).
    pooled: bool = True
    #: With ``tls``: the route's ``proxy-ssl-*`` (proxy/_proxy_ssl.py: verification, CA,
    #: client certificate, name and SNI, protocols, ciphers, depth); None: nginx's defaults
    #: (no verification). A pooled connection may carry the attempt only if it was made with
    #: an equal value; a failed check is a failed connect (``upstream_failed``).
    tls_config: UpstreamTLS | None = None
    #: An ``auth-url`` subrequest's ``auth-keepalive*`` (proxy/_authkeepalive.py: at most
    #: ``connections`` idle, ``requests`` per connection, ``timeout`` idle seconds): the
    #: connection belongs to a pool of its own for this endpoint and these numbers, not the
    #: endpoint's idle pool; take it from there (``pooled``) and put it back there on
    #: ``CloseUpstream(reuse=True)``. None: the endpoint's pool (every other connection).
    keepalive: AuthKeepalive | None = None


@dataclass(frozen=True, slots=True)
class SendUpstream:
    conn_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class CloseUpstream:
    """``reuse=True``: both sides finished cleanly, return the connection to the endpoint's
    idle pool; ``reuse=False``: close it."""

    conn_id: int
    reuse: bool


@dataclass(frozen=True, slots=True)
class SendDownstream:
    data: bytes


@dataclass(frozen=True, slots=True)
class CloseDownstream:
    """Close the client connection once everything sent before has been written.

    ``linger=True``: the client may still be sending request bytes the core will not read (a
    body cut short by a 413, 408 or 504). Closing a socket with unread input makes the kernel
    send a reset, which can destroy the response before the client reads it; so first end our
    side only (FIN after the response) and read and drop the client's bytes for a while, as
    nginx's ``lingering_close`` does.
    """

    linger: bool = False


@dataclass(frozen=True, slots=True)
class SetTimer:
    """Arm the connection's single timer (replacing any armed one); ``seconds=None`` cancels."""

    kind: TimerKind
    seconds: float | None


@dataclass(frozen=True, slots=True)
class TunnelEstablished:
    """The upstream answered 101: from now on bytes are relayed both ways untouched."""

    conn_id: int


@dataclass(frozen=True, slots=True)
class Offload:
    """Run ``job()`` off the event loop (a worker thread), then call the connection's
    ``offload_done(now)`` and perform the actions it returns. Only returned by a connection
    made with ``offload=True`` (``Proxy.connection``); its request waits meanwhile (pipelined
    requests behind it too, in order). The job is a basic-auth password hashing
    (``BasicAuth.unsettled``): it touches no connection state, and its result is ignored."""

    job: Callable[[], object]


class UpstreamTry(NamedTuple):
    """One upstream try of a request (``RequestRecord.upstream_tries``), as nginx keeps it in
    the try's upstream state (ngx_http_upstream_state_t)."""

    #: Seconds from the try's ``OpenUpstream`` to ``upstream_connected`` (0.0 for a pooled
    #: connection): ``$upstream_connect_time``; None: it never connected.
    connect_time: float | None
    #: Seconds from the try's ``OpenUpstream`` to its parsed response head (a head retried for
    #: its status, or dropped for custom-http-errors' page, included): ``$upstream_header_time``;
    #: None: no head.
    header_time: float | None
    #: Bytes written to its connection (the request head and body as sent, a tunnel's bytes
    #: too): ``$upstream_bytes_sent``.
    bytes_sent: int
    #: Bytes read from its connection (response head and body as received, a tunnel's bytes
    #: too): ``$upstream_bytes_received``.
    bytes_received: int


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One finished (or failed) request: what access logs and metrics consume."""

    method: str
    #: Host as received, lower-case, port stripped.
    host: str
    #: The canonical path that was routed (and forwarded, before any rewrite-target), no query.
    path: str
    query: str | None
    #: The matched rule's path as written (metrics label ``path``), None for a default backend.
    rule_path: str | None
    ingress: str | None
    service: str | None
    namespace: str | None
    canary: bool
    #: Status sent to the client; 499 when the client went away before a response (nginx's
    #: "client closed request", never sent), 400 when it went away still owing request body
    #: bytes ("client prematurely closed connection"); 0 when none was sent (``abort``).
    status: int
    #: Request bytes read from the client (head and body).
    bytes_in: int
    #: Response bytes sent to the client (head and body).
    bytes_out: int
    #: Endpoints tried, in order.
    upstreams: tuple[tuple[str, int], ...]
    upstream_status: int | None
    upstream_statuses: tuple[int | None, ...]
    start: float
    upstream_connect: float | None
    upstream_first_byte: float | None
    end: float
    request_id: str | None
    client_ip: str | None
    http_version: str
    user_agent: str | None
    referer: str | None
    #: The last try's response bytes read from the upstream after its head, as received:
    #: chunk framing included (nginx's ``$upstream_response_length``, which adds each read
    #: before the chunked filter decodes it); 0 when the try got no usable head.
    upstream_response_length: int
    #: The served backend's port as written in the Ingress (number or port name).
    service_port: int | str | None = None
    #: When the canary served: the main rule's backend (else None).
    primary_service: str | None = None
    primary_port: int | str | None = None
    #: The Basic-authentication user name the client sent (nginx ``$remote_user``), else None.
    remote_user: str | None = None
    #: The request line as received, latin-1 (nginx ``$request``: "full original request
    #: line"), before any canonicalisation. A head refused before it was parsed: the bytes
    #: received up to the first CR or LF, as nginx logs a line it could not parse; None when
    #: there are none.
    request_line: str | None = None
    #: Response body bytes sent to the client (``bytes_out`` minus the head; nginx
    #: ``$body_bytes_sent``). The core always sets it; None means "not provided".
    body_bytes_out: int | None = None
    #: Seconds spent establishing the last upstream connection made (the last try's, or the
    #: latest try that connected): from its ``OpenUpstream`` to ``upstream_connected``; 0.0 for
    #: a pooled connection (nginx's ``$upstream_connect_time``, which lists one per try:
    #: ``upstream_tries``). The core always sets it when a connection was made; None
    #: means "none made", or "not provided".
    upstream_connect_time: float | None = None
    #: Seconds from the start of the last upstream attempt (its ``OpenUpstream``; a pooled
    #: connection's connect costs ~0) to the arrival of that attempt's response head (the
    #: read that completed a valid head, a 101 included), as nginx's ``$upstream_header_time``
    #: counts from the attempt's connect to the parsed header. None when the last attempt got
    #: no usable head (it failed, or its head was invalid), when no upstream was tried, or
    #: "not provided" (then ``upstream_response_time`` is None as well).
    upstream_header_time: float | None = None
    #: Seconds from the start of the last upstream attempt (its ``OpenUpstream``) to its end
    #: (nginx's ``$upstream_response_time``): the last response byte; where a response was cut
    #: short, the cut; for a WebSocket tunnel, the tunnel's close (nginx finalizes an upgraded
    #: request when the tunnel closes); for an attempt that got no response, the moment it
    #: failed (or the request ended: a client gone before the answer), as nginx also keeps a
    #: time for a failed try. The core always sets it when an upstream was tried; None means
    #: "no upstream tried" (a local answer), or "not provided".
    upstream_response_time: float | None = None
    #: How far nginx's request processing went before the answer, which decides what
    #: ingress-nginx's ``$proxy_upstream_name`` holds (the access log's upstream name):
    #: ``"head"``: refused while the head was read, before any phase (bad request line or
    #: headers, limits, the head timeout, TRACE/CONNECT's 405, plain HTTP on the TLS port),
    #: or answered by a server that never sets it (from-to-www-redirect's twin host): the
    #: variable was never set; ``"server"``: answered by the server block's rewrite phase
    #: (app-root's 302, routed or not) or the find_config phase (a 413 for the
    #: Content-Length), after the server's ``set $proxy_upstream_name "-";`` and before the
    #: location's; ``"location"``: the location's rewrite phase ran (its ``set
    #: $proxy_upstream_name``: the rule's upstream, or the default backend's when no rule
    #: matched). The core always sets it; None means "not provided" (the access log then
    #: infers it from the status and rule).
    phase: str | None = None
    #: Every try's ``upstream_response_time``, one per entry of ``upstreams`` (nginx's
    #: ``$upstream_response_time`` lists them all, ``", "``-separated); the last equals
    #: ``upstream_response_time``; None for a try without a time. The core always sets it;
    #: ``()`` means "not provided" (the access log then writes the last try's time only).
    upstream_response_times: tuple[float | None, ...] = ()
    #: False when the route's ``enable-access-log`` is ``"false"`` (nginx ``access_log off;``
    #: in the location), under the ConfigMap's ``disable-access-log``, or for a target listed
    #: in ``skip-access-log-urls``: ``AccessLog`` writes no line; metrics count the request
    #: all the same.
    access_log: bool = True
    #: The request's header lines as h11 gave them, ``(raw name, lower-case name, value)``: the
    #: parser's own list, not a copy (the access log's ``$http_<name>``,
    #: ``$proxy_add_x_forwarded_for``; ``_logformat.py``). None: no head was parsed (a request
    #: refused before), or not provided. Left out of ``==``, ``hash`` and ``repr``.
    request_headers: Sequence[tuple[bytes, bytes, bytes]] | None = dataclasses.field(
        default=None, compare=False, repr=False)
    #: nginx ``$scheme``: ``"https"`` for a connection over TLS, else ``"http"``; None: not
    #: provided.
    scheme: str | None = None
    #: nginx ``$server_port``: the port the connection was accepted on (with a trusted PROXY
    #: protocol header, its destination port); None: not provided.
    server_port: int | None = None
    #: custom-http-errors: the index in ``upstreams`` of the error page request's first try
    #: (nginx's internal redirect to the named location ``@custom_...``, whose tries get upstream
    #: states of their own after an empty one: ``$upstream_addr``, ``$upstream_status``,
    #: ``$upstream_response_length`` and ``$upstream_response_time`` separate them from the tries
    #: before by ``" : "``, not ``", "``); None: no error page.
    upstream_redirect: int | None = None
    #: ``(ConnectionFacts, n, head)`` for log-format-upstream's connection variables
    #: (``_logformat.py``, read when the line is written): what the line reads of the
    #: connection that served the request, copied from it (``_logformat.ConnectionFacts``: a
    #: record kept keeps no connection alive; ``$remote_port``, ``$connection``,
    #: ``$server_name``, ``$ssl_protocol``...), the
    #: request's number on it (``$connection_requests``) and the response head sent to the
    #: client, as bytes (``$sent_http_<name>``; None: none was sent). The core sets it only
    #: when the settings have a ``log_format_upstream`` (None otherwise). Left out of ``==``,
    #: ``hash`` and ``repr``.
    connection: tuple[Any, int, bytes | None] | None = dataclasses.field(
        default=None, compare=False, repr=False)
    #: Every try's facts nginx's per-try upstream variables list (``$upstream_connect_time``,
    #: ``$upstream_header_time``, ``$upstream_bytes_sent``, ``$upstream_bytes_received``,
    #: ``", "``-separated like ``$upstream_addr``): one :class:`UpstreamTry` per entry of
    #: ``upstreams``. The core sets it only when ``log_format_upstream`` is configured (its one
    #: reader, as ``connection``: one field, not four, and none of it built otherwise, since
    #: every field of a record costs every request); ``()``: no upstream tried, no format, or
    #: not provided (the access log then writes the last try's scalar times, the bytes unset).
    upstream_tries: tuple[UpstreamTry, ...] = ()
    #: nginx's ``r->request_complete`` (``$request_completion``: "OK", else empty): False when
    #: the request was ended by its client (it closed the connection, before or during the
    #: response; its head or body timed out: 408), by an abort (``ClientConnection.abort``,
    #: more pipelined bytes than held) or sent no response; True otherwise, a response the
    #: upstream cut short included (ngx_http_upstream_finalize_request flushes what was sent
    #: and finalizes with NGX_OK), and a local answer whose request body was still being
    #: discarded when the client closed or an abort came (nginx finalized it before the
    #: discard). The record is made once the response is handed to the driver, not once
    #: written. None: not provided (the access log writes it unset).
    request_complete: bool | None = None
    #: What the rate limits left in nginx's log variables (log-format-upstream, _logformat.py):
    #: ``($limit_req_status, $limit_conn_status, $global_rate_limit_exceeding)``, each None
    #: when unset (proxy/_ratelimit.py ``Admission``, proxy/_globalratelimit.py ``verdict``).
    #: None: no limit decided anything (every request of a location without limits; the
    #: access log then writes the first two unset and the third nginx.tmpl's "n" for a
    #: request that reached a location, ``phase``), or not provided.
    rate_limit_log: tuple[str | None, str | None, str | None] | None = None

    @property
    def duration(self) -> float:
        """Seconds from the request's first byte to its end (``end - start``, the driver's
        ``now`` clock; nginx's ``$request_time``)."""
        return self.end - self.start

    @property
    def upstream_latency(self) -> float | None:
        """Seconds from the request's start to the first upstream response byte
        (``upstream_first_byte - start``), or None when no upstream answered."""
        if self.upstream_first_byte is None:
            return None
        return self.upstream_first_byte - self.start


def _slot_setting_init(cls: type) -> None:
    """Give the frozen slotted dataclass ``cls`` an ``__init__`` that stores each field through
    its slot's own setter: the generated one calls ``object.__setattr__(self, name, value)`` per
    field, and a :class:`RequestRecord` (40 fields, one per request with records on) took
    ~4.7 us that way against ~2.8 us (benchmarks/load/README.md, "Session 29"). The same
    signature (names, order, defaults, annotations), no ``__post_init__`` to call; instances
    stay frozen (``__setattr__`` is the dataclass's)."""
    generated = cls.__dict__["__init__"]
    if hasattr(cls, "__post_init__"):  # pragma: no cover - a guard for a later edit
        raise TypeError(f"{cls.__name__} has a __post_init__ this __init__ would not call")
    ns: dict[str, Any] = {}
    params, body = [], []
    for f in dataclasses.fields(cls):
        if f.default_factory is not dataclasses.MISSING:  # pragma: no cover - (none)
            raise TypeError(f"{cls.__name__}.{f.name}: a default_factory")
        if f.default is dataclasses.MISSING:
            params.append(f.name)
        else:
            ns[f"_d_{f.name}"] = f.default
            params.append(f"{f.name}=_d_{f.name}")
        ns[f"_s_{f.name}"] = cls.__dict__[f.name].__set__
        body.append(f"    _s_{f.name}(self, {f.name})")
    exec("def __init__(self, " + ", ".join(params) + "):\n" + "\n".join(body) + "\n", ns)
    init = ns["__init__"]
    init.__qualname__ = generated.__qualname__
    init.__annotations__ = generated.__annotations__
    init.__doc__ = generated.__doc__
    init.__module__ = generated.__module__
    setattr(cls, "__init__", init)


_slot_setting_init(RequestRecord)

#: Stores ``RequestRecord.connection`` on a record the core just built (its slot's own setter:
#: no keyword for the records of a plain request, which leave it None).
set_record_connection: Callable[[RequestRecord, Any], None] = \
    RequestRecord.__dict__["connection"].__set__


@dataclass(frozen=True, slots=True)
class RequestDone:
    record: RequestRecord


Action = (OpenUpstream | SendUpstream | CloseUpstream | SendDownstream | CloseDownstream
          | SetTimer | RequestDone | TunnelEstablished | Offload | Mirror)


# -- redirects ---------------------------------------------------------------------------------


def tls_host_predicate(tls_hosts: Callable[[str], bool] | Collection[str]
                       ) -> Callable[[str], bool] | None:
    """``host -> served over HTTPS`` for the ``tls_hosts`` argument of ``Proxy`` and
    ``IngressASGI``: a function as given, or membership in a collection of names where
    ``*.example.com`` covers exactly one first label (SEMANTICS §4 and §10). None for an empty
    collection (no host has TLS: the ssl-redirect test needs no lookup)."""
    if callable(tls_hosts):
        return tls_hosts
    hosts = frozenset(h.lower() for h in tls_hosts)
    if not hosts:
        return None

    def has_tls(host: str) -> bool:
        return host in hosts or ("*." + host.partition(".")[2]) in hosts

    return has_tls


def _no_tls(host: str) -> bool:
    return False


# A character a Location's request-derived part may not carry as it is: outside printable
# ASCII (controls, space, DEL, and every non-ASCII one).
_NOT_URI_CHAR = re.compile(r"[^\x21-\x7e]")


def _escape_uri_char(m: re.Match[str]) -> str:
    c = m.group()
    # A request's target and query reach here as text decoded from their bytes with latin-1
    # (the ASGI adapter's ``query_string``; the proxy core's are ASCII): each character up to
    # U+00FF is one byte the client sent. Beyond that (no front end makes one) its UTF-8.
    raw = c.encode("latin-1") if c <= "\xff" else c.encode("utf-8", "surrogatepass")
    return "".join(f"%{b:02X}" for b in raw)


def _uri_bytes(uri: str) -> bytes:
    """The request-derived part of a redirect's Location (a request target, a path, a query,
    or a Location built from them), as header bytes: percent-encoded (RFC 3986 §2.1) where it
    is not printable ASCII, byte for byte as the client sent it.

    An ASGI server may pass a query with bytes over 0x7F (httptools does, a UTF-8 ``q=é``
    as its two bytes); the adapter decodes ``query_string`` with latin-1, so encoding that
    text with UTF-8 wrote each such byte as two (a client following the Location sent
    ``q=%C3%83%C2%A9``), and ``encode("ascii")`` raised (a rewrite-target URL: a 500).
    nginx writes ``$request_uri``'s bytes as received; a browser sends them percent-encoded,
    as here. The proxy core's targets are printable ASCII (h11's request-target grammar):
    unchanged."""
    if _NOT_URI_CHAR.search(uri) is None:
        return uri.encode("ascii")
    return _NOT_URI_CHAR.sub(_escape_uri_char, uri).encode("ascii")


def https_redirect(opts: RouteOptions, scheme: str, host: str, path: str, query: str | None,
                   has_tls: bool, https_port: int, code: int,
                   rule_host: str | None = None, *, location_host: str | None = None,
                   target: tuple[str, str | None] | None = None) -> tuple[int, bytes] | None:
    """ssl-redirect / force-ssl-redirect: ``(code, Location)``, or None (no redirect).

    lua_ingress.lua ``redirect_to_https``: "if location_config.force_ssl_redirect and
    ngx.var.pass_access_scheme == "http" then return true end" ... "return
    location_config.ssl_redirect and certificate_configured_for_current_request()"; a
    location of ``no-tls-redirect-locations`` has neither flag (parse_route_options; for a rule
    without annotations, ``RouteOptionsSource.options_for``).
    ``scheme`` is ``$pass_access_scheme`` (the caller applies a trusted hop's X-Forwarded-Proto), ``host`` the normalised Host (empty:
    none), ``has_tls`` whether HTTPS is served for it, ``path`` the canonical path: the
    decision is taken on these (certificate.lua looks the certificate up by ``ngx.var.host``).

    The Location is ``string_format("https://%s%s", redirect_host(), request_uri)``, which
    the caller may give as it has them; they change the Location only. ``location_host`` is
    ``redirect_host()`` when it is not the Host: with use-forwarded-headers ingress-nginx
    sets "ngx.var.best_http_host = parse_x_forwarded_host()" (the caller checks the peer and
    the value, ``forwarded_redirect_host``). ``target`` is ``request_uri``, ``(path, query)``
    as the client sent them (nginx's ``$request_uri``, not canonicalised); default ``(path,
    query)``. Without them the Location names the Host and the canonical target.

    Otherwise ``ngx.var.best_http_host = ngx.var.http_host or ngx.var.host``; a request
    without Host (HTTP/1.0 may omit it) gets nginx's $host, the matched server's name, ``_``
    for ingress-nginx's catch-all server: ``https://_/path``, a Location no client can
    follow. Here: the matched rule's host (``rule_host``) when it names one host, else no
    redirect at all (the request is served as it came: a request without Host can only reach
    a rule without host, a catch-all, whose owner asked for https with no name to send the
    client to). ``https_port`` other than 443 is written into the Location, and 443 too with
    ``use-port-in-redirects`` (``opts.port_in_redirects``).

    Without ``preserve-trailing-slash`` one final ``/`` of the request target is dropped, the
    query included in the test: "-- do not append a trailing slash on redirects unless enabled
    by annotations / if location_config.preserve_trailing_slash == false then if
    string.byte(request_uri, -1, -1) == string.byte('/') then request_uri =
    string.sub(request_uri, 1, -2)" (``/a/`` -> ``https://host/a``, ``/`` -> ``https://host``,
    ``/a/?x=1`` unchanged).
    """
    if scheme != "http" or not (opts.force_ssl_redirect or (opts.ssl_redirect and has_tls)):
        # (no-tls-redirect-locations cleared both flags of an exempt location's options.)
        return None
    if not host:
        if not rule_host or rule_host[:1] == "*":
            return None
        host = rule_host
    if location_host:
        host = location_host
    # use-port-in-redirects (proxy/_location_extras.py): "https://%s:%s%s" with
    # config.listen_ports.https, 443 included.
    authority = host if https_port == 443 and not opts.port_in_redirects \
        else f"{host}:{https_port}"
    if target is not None:
        path, query = target
    uri = path if query is None else f"{path}?{query}"
    if uri[-1:] == "/" and not opts.preserve_trailing_slash:
        uri = uri[:-1]
    return code, f"https://{authority}".encode() + _uri_bytes(uri)


def location_host_of(value: bytes) -> str | None:
    """The host part of ``best_http_host`` as lua_ingress.lua's ``redirect_host()`` takes
    it: "ngx_re_split(ngx.var.best_http_host, ":") ... return host_port[1]", the value up to
    its first ``:``, its case and a final dot kept (``$http_host`` is the Host header as
    received; nginx lower-cases ``$host`` only, which ``best_http_host`` is only without a Host
    header). ``value``: the Host header, or a trusted hop's first X-Forwarded-Host element
    (the caller checked it is a valid host). An IPv6 literal keeps its brackets (nginx's split
    would leave ``[``). None when nothing is left or the value is not ASCII: the caller then
    names the normalised host."""
    try:
        host = value.decode("ascii")
    except UnicodeDecodeError:
        return None
    if host[:1] == "[":
        end = host.find("]")
        host = host if end < 0 else host[:end + 1]
    else:
        host = host.partition(":")[0]
    return host or None


def redirect_for(opts: RouteOptions, scheme: str, host_raw: str, host: str, path: str,
                 query: str | None, has_tls: bool, https_port: int, code: int, *,
                 rule_host: str | None = None,
                 server_scheme: str | None = None, location_host: str | None = None,
                 target: tuple[str, str | None] | None = None) -> tuple[int, bytes] | None:
    """The redirect a routed request gets before any endpoint is chosen (ingress-nginx does
    them in the server block, before proxying): ``(status, Location)``, or None.

    First app-root, then ssl-redirect / force-ssl-redirect (``https_redirect``). nginx.tmpl
    writes app-root at the server level, outside the ``location`` blocks: "{{ if not (empty
    $location.Rewrite.AppRoot) }} if ($uri = /) { return 302 $scheme://$http_host{{
    $location.Rewrite.AppRoot }}; }", and nginx runs "the directives of this module specified
    on the server level" before "a location is searched" (ngx_http_rewrite_module), so before
    the location's ``rewrite_by_lua_block`` whose ``lua_ingress.rewrite`` does the
    ssl-redirect: ``http://host/`` on a TLS host gets 302 ``http://host/app`` first (then 308
    to https on the next request), not 308 ``https://host/``.
    ``server_scheme`` is nginx's ``$scheme`` (this hop's own; default ``scheme``).
    ``host_raw`` is the Host as received ($http_host), ``host`` the normalised one. Without
    Host ($http_host empty, nginx would send ``http:///app``) the app-root Location is the
    relative reference ``/app`` instead, which RFC 9110 §10.2.2 allows ("the field value
    consists of a single URI-reference ... resolved relative to the target URI"): the client
    stays on the server it asked. A value starting with ``//`` would then read as a
    network-path reference (another host, RFC 3986 §4.2): it is sent as ``/.//...``, the same
    path once dot segments are removed.

    Between the two, the location's own redirects (``location_redirect``):
    temporal-/permanent-redirect, then a rewrite-target that is a URL. Both are
    ngx_http_rewrite_module directives of the location, so they run after the server-level
    app-root and before the ssl-redirect of ``rewrite_by_lua_block`` (lua-nginx-module:
    "this handler always runs *after* the standard ngx_http_rewrite_module"). Of
    ``target``, a rewrite-target URL takes the path: whether its captures are escaped
    follows the request as received (``location_redirect``); the caller passes ``target``
    for such a route (``opts.rewrite_is_redirect``) too.

    Last the ssl-redirect, whose Location alone takes ``location_host`` and ``target``
    (``https_redirect``: the host and the raw target ingress-nginx writes there; app-root
    keeps ``$http_host`` and the redirects of the location their URL).

    The caller may skip the call when ``has_tls``, ``opts.force_ssl_redirect`` and
    ``opts.redirects`` are all false: then there is nothing to redirect.
    """
    app_root = opts.app_root
    if app_root is not None and path == "/":
        if host_raw:
            location = f"{server_scheme or scheme}://{host_raw}{app_root}"
        else:
            location = "/." + app_root if app_root[:2] == "//" else app_root
        return 302, location.encode()
    if opts.redirects:
        answer = location_redirect(opts, path, query, None if target is None else target[0])
        if answer is not None:
            return answer
    return https_redirect(opts, scheme, host, path, query, has_tls, https_port, code,
                          rule_host, location_host=location_host, target=target)


def location_redirect(opts: RouteOptions, path: str, query: str | None,
                      raw_path: str | None = None) -> tuple[int, bytes] | None:
    """The redirects written in the route's nginx ``location``, in their order there:
    ``(status, Location)``, or None.

    1. temporal-/permanent-redirect. nginx.tmpl, in the location: "{{ if not (empty
       $location.Redirect.URL) }} return {{ $location.Redirect.Code }} {{
       $location.Redirect.URL }}; {{ end }}", before "{{ buildProxyPass ... }}": the URL as
       written, the request's path and query not appended (``return`` appends nothing).
    2. rewrite-target starting with ``http://`` or ``https://``: buildProxyPass writes
       ``rewrite "(?i)<path>" <target> break;``, and nginx's ``rewrite`` then answers 302 to
       the target, captures replaced and the arguments appended by its rules
       (``RouteOptions.rewrite_redirect``), when the rule regex matches the path.
       ``raw_path``, the path of the request target as received (nginx's ``$request_uri``
       up to "?"), decides whether the captures are escaped (``_escapes_captures``: a
       ``%61`` the canonical path decoded still counts); None: ``path`` stands in.

    A rewrite regex that runs past REWRITE_TIMEOUT gives no redirect here: the proxy core
    then fails the request with 500 when it rewrites the target (as nginx's PCRE match limit
    does).
    """
    url = opts.redirect_url
    if url is not None:
        return opts.redirect_code, url.encode("ascii")
    if opts.rewrite_is_redirect:
        try:
            location = opts.rewrite_redirect(path, query, raw_path)
        except TimeoutError:
            return None
        if location is not None:
            # The rewrite-target and the path's captures are ASCII already; the query is
            # the request's, as it came.
            return 302, _uri_bytes(location)
    return None


@dataclass(frozen=True, slots=True)
class _ServerLocation:
    """A host server's own ``location /`` as ``parse_each_route``'s ``parse`` reads a route:
    the annotations of the Ingress owning the server (``server_owners``), no rule path."""

    annotations: Mapping[str, str]
    #: ``namespace/name`` of the Ingress, as a route names it.
    ingress: str
    namespace: str
    path: None = None


def server_owners(served: Any) -> dict[str, Any]:
    """Per rule host (as written) of the served Ingresses ``served`` (oldest first), the
    Ingress whose server ingress-nginx generates for it: the oldest non-canary one with a rule
    for the host, with paths or not (controller.go ``createServers``: the first Ingress makes
    the server, "// server already configured" for the next; "Ingress %v is marked as Canary,
    ignoring"). Its annotations configure the server's ``location /``
    (``RouteOptionsSource._unrouted_options``)."""
    owners: dict[str, Any] = {}
    for ing in served:
        if _is_canary(ing):
            continue
        for rule in ing.spec.rules:
            if rule.host and rule.host not in owners:
                owners[rule.host] = ing
    return owners


#: ``parse_key``'s key: (annotations' id, rule path, path type, main annotations' id).
ParseKey = tuple[int, str | None, str | None, int]


def parse_key(route: Any, main: Mapping[str, str] | None) -> ParseKey:
    """What :func:`parse_each_route` parses a route once by: its annotations (the object,
    one per Ingress), its rule path and path type, and for a canary parsed with its main
    rule's annotations (``main``) those; routes with the same key get the same warnings
    (``ingresslib check`` names each rule path of such a group). The path type counts: a
    Prefix ``/a+b`` rewritten to ``/a+b`` rewrites (its ``/a+b/`` location,
    ``_rewrite_location``) and is reported a regex, an Exact ``/a+b`` in the same Ingress
    does not; keyed without it, the one parsed first spoke for both (x56 s36)."""
    return id(route.annotations), route.path, getattr(route, "path_type", None), id(main)


def parse_each_route(routes: Any, parse: Callable[[Any], RouteOptions], *,
                     parse_canary: Callable[[Any, Mapping[str, str]], RouteOptions] | None
                     = None, served: Any = None) -> None:
    """``parse`` each annotated route of a table (canaries included) once per annotations and
    rule path, and read each basic-auth Secret once per main route, so that ``parse`` and the
    Secret's reader report every warning a request could meet (the server's log at start,
    ``ingresslib check``). ``parse_canary`` parses a canary with its main rule's annotations
    (only an option the canary sets otherwise is reported ignored); without it ``parse``
    parses canaries too.

    ``served`` (the table's served Ingresses): also each host owner (``server_owners``) that
    has no route of its own -- an Ingress whose rules for its hosts are host-only --, once,
    as a ``_ServerLocation``: its annotations apply to every path of the host no rule covers
    (an invalid allowlist there answers 503), and are read nowhere else. An owner with routes
    was parsed with them (the same annotations, the same warnings)."""
    done: set[ParseKey] = set()
    for m in routes:
        canary = getattr(m, "canary", None)
        for route in (m,) if canary is None else (m, canary):
            ann = route.annotations
            main = None if route is m or parse_canary is None else m.annotations
            key = parse_key(route, main)
            if not ann or key in done:
                continue
            done.add(key)
            opts = parse(route) if main is None or parse_canary is None \
                else parse_canary(route, main)
            basic = opts.access.basic if opts.access is not None else None
            if basic is not None and route is m:
                basic.load()  # an auth Secret's problems (missing, no key "auth"...)
    if served is None:
        return
    routed = {id(getattr(m, "ingress_object", None)) for m in routes}
    # Each owner once (an Ingress owns every host it names first), in the table's order.
    for ing in {id(ing): ing for ing in server_owners(served).values()}.values():
        meta = ing.metadata
        if not meta.annotations or id(ing) in routed:
            continue
        opts = parse(_ServerLocation(meta.annotations, f"{meta.namespace}/{meta.name}",
                                     meta.namespace))
        basic = opts.access.basic if opts.access is not None else None
        if basic is not None:
            basic.load()


def denied_first(opts: RouteOptions, path: str) -> bool:
    """Whether a routed request gets the denied location's 503 before any redirect: nginx.tmpl
    writes that "return 503" as the location's first rewrite directive, so only the
    server-level app-root (``redirect_for``, for ``/``) runs before it."""
    return access_denied(opts) and not (path == "/" and opts.app_root is not None)


def access_denied(opts: RouteOptions) -> bool:
    """Whether an access annotation denies the location of ``opts`` (``ing_errors.
    LocationDenied``: a refused value, or a Secret it cannot use): its "return 503", and no
    CORS or custom-headers on it (nginx.tmpl's ``isLocationAllowed``)."""
    access = opts.access
    return access is not None and (access.denied is not None or access.secret_denied())


def proxy_ssl_denied(opts: RouteOptions) -> bool:
    """Whether the location of ``opts`` is denied for its ``proxy-ssl-secret`` (one it cannot
    use: proxy/_proxy_ssl.py; proxyssl/main.go "error obtaining certificate" ->
    ``LocationDeniedError``, which annotations.go ``Extract`` makes the Ingress's ``Denied``):
    it answers 503, without CORS or custom-headers (nginx.tmpl's ``isLocationAllowed``). Only
    the proxy core asks: IngressASGI makes no TLS connection to an endpoint."""
    ssl = opts.proxy_ssl
    return ssl is not None and ssl.config()[1] is not None


class _OwnerDeniable(ProxySSL):
    """The ``proxy-ssl-*`` of a default backend served as its host's server ``location /``
    whose owner is another Ingress (``RouteOptionsSource._with_server_location``): the
    backend's Ingress's own (``own``; None: nginx's defaults), denied while the owner's is
    (``owner``, read at each request as a route's own: a Secret created or fixed later is
    seen without a rebuild). controller.go ``createServers`` gives that location the owner's
    "loc.Denied = anns.Denied" whichever backend it proxies to, and an unusable
    proxy-ssl-secret is a denial (proxyssl/main.go "error obtaining certificate" ->
    ``LocationDeniedError``): "return 503", no CORS or custom-headers (``isLocationAllowed``).
    The owner's TLS settings are never used to speak to the backend's Service."""

    __slots__ = ("owner",)

    def __init__(self, own: ProxySSL | None, owner: ProxySSL,
                 secrets: Callable[[], Any]) -> None:
        if own is None:
            super().__init__(None, None, secrets, None, "")
        else:
            super().__init__(own.values, own.denied_reason, own._secrets, own._warn,
                             own._where, own.server)
        self.owner = owner

    def config(self) -> tuple[UpstreamTLS | None, str | None]:
        reason = self.owner.config()[1]
        return (None, reason) if reason is not None else super().config()


def body_too_large(opts: RouteOptions, path: str, length: int | None) -> bool:
    """Whether a routed request's declared length (``length``: its Content-Length, None or
    negative without one) is refused 413 before its location's redirects and access control.

    nginx checks client_max_body_size against Content-Length in
    ``ngx_http_core_find_config_phase``, once the location is found: "if
    (r->headers_in.content_length_n != -1 && !r->discard_body && clcf->client_max_body_size
    && clcf->client_max_body_size < r->headers_in.content_length_n) { ... "client intended to
    send too large body: %O bytes" ... ngx_http_finalize_request(r,
    NGX_HTTP_REQUEST_ENTITY_TOO_LARGE);". That phase comes after the server's rewrite phase
    (nginx.tmpl's server-level app-root ``return 302``, ``redirect_for``) and before the
    location's rewrite phase (its ``return`` redirects, lua_ingress's ssl-redirect in
    ``rewrite_by_lua_block``) and its access phase (allow/deny 403, auth_basic 401); the
    balancer's 503 (no endpoint) comes later still. ingress-nginx writes
    ``client_max_body_size {{ $location.Proxy.BodySize }};`` in each location. The denied
    location's 503 stays first (``denied_first``): nginx.tmpl writes no
    ``client_max_body_size`` of the annotation in a denied location."""
    limit = opts.body_size
    return bool(limit) and length is not None and length > limit \
        and not (path == "/" and opts.app_root is not None)


def access_answer(access: Access | None, client_ip: str | None,
                  authorization: Callable[[], bytes | None],
                  request: Callable[[], tuple[bytes, bytes, float]] | None = None
                  ) -> tuple[int, bytes | None]:
    """nginx's access phase for a route: ``(0, None)`` to proceed (``(0, value)`` after a
    verified ``auth-type: digest`` response: the ``Authentication-Info`` value every answer
    to the request carries), else the status to answer
    and, for a 401, the ``WWW-Authenticate`` value. The source ranges first (403; 503 for a
    denied location), then ``auth-type: basic`` (401; 503 when its Secret cannot be used), as
    nginx runs ngx_http_access_module before ngx_http_auth_basic_module. ``authorization``
    reads the request's ``Authorization`` value, only when basic auth applies; ``request``
    its method, target as received and the driver's time, only for ``auth-type: digest``
    (proxy/_digest.py; without it digest never admits). With
    ``satisfy: any`` (``access.any``), nginx's ``satisfy any`` (proxy/_satisfy.py
    ``any_step``; a caller with an auth subrequest uses ``any_access``)."""
    if access is None:
        return 0, None
    if access.any is not None:
        status, challenge, _ = any_step(access, client_ip, authorization, request)
        return status, challenge
    status = access.status(client_ip)
    if status or (access.basic is None and access.also is None):
        return status, None
    # ``also``: a second location's control (``combine_access``), its basic auth after ours.
    info = None
    admitted = False
    for part in (access, access.also):
        basic = part.basic if part is not None else None
        if isinstance(basic, DigestAuth):
            # (The client address for the module's evasion: only with a ``request``.)
            # ``admitted``: the first location's digest let this request in, its ``nc``
            # used; the second checks its own users without using that ``nc`` again.
            status, challenge = basic.verify(authorization(), *(
                request() if request is not None else (b"", b"", 0.0)),
                client_ip if request is not None else None, admitted=admitted)
            if status:
                return status, challenge
            admitted = True
            info = info or challenge
        elif basic is not None:
            status, _ = basic.check(authorization())
            if status:
                return status, basic.challenge if status == 401 else None
    return 0, info


def access_job(access: Access | None, client_ip: str | None,
               authorization: Callable[[], bytes | None]) -> Callable[[], object] | None:
    """The password hashing ``access_answer`` would do now, as a function to run off the
    event loop (``BasicAuth.unsettled``), else None (``access_answer`` then hashes nothing:
    no basic auth, a refused address, a verdict remembered or one that needs no hashing). With
    two locations' basic auth (``also``), the first one's; the second's is asked again after
    it."""
    if access is not None and access.any is not None:
        return any_job(access, client_ip, authorization)  # satisfy any (proxy/_satisfy.py)
    if access is None or (access.basic is None and access.also is None) \
            or access.status(client_ip):
        return None
    for part in (access, access.also):
        basic = part.basic if part is not None else None
        if basic is not None:
            value = authorization()
            job = basic.unsettled(value)
            if job is not None:
                return job
            if basic.check(value)[0] and not isinstance(basic, DigestAuth):
                return None
    return None


# -- route options -----------------------------------------------------------------------------

_log = logging.getLogger("ingresslib.proxy")


def _catch_all_location(opts: RouteOptions) -> RouteOptions:
    """A default backend's options where it answers the catch-all server (a host no rule
    names, or a request without Host: the host-less group of SEMANTICS §4): without its
    Ingress's redirect and rewrite annotations.

    ingress-nginx serves those requests from the ``location /`` of its catch-all server
    ``_``, configured from an Ingress with a backend and no rules (kubernetes/ingress-nginx
    internal/ingress/controller/controller.go ``createServers``): "// TODO: Redirect and
    rewrite can affect the catch all behavior, skip for now / originalRedirect :=
    defLoc.Redirect / originalRewrite := defLoc.Rewrite / locationApplyAnnotations(defLoc,
    anns) / defLoc.Redirect = originalRedirect / defLoc.Rewrite = originalRewrite". The
    original location is built without either ("Path: rootLocation, ..., IsDefBackend: true,
    Backend: du.Name, Proxy: ngxProxy, ..."), so they stay the zero ``redirect.Config`` (URL,
    Code, FromToWWW) and ``rewrite.Config`` (Target, SSLRedirect, ForceSSLRedirect,
    PreserveTrailingSlash, AppRoot, UseRegex): no temporal-/permanent-redirect, no
    rewrite-target -- a URL (a redirect) or a path (no rewrite, hence no X-Forwarded-Prefix,
    which buildProxyPass writes only with a rewrite) --, no app-root, and ssl-redirect and
    force-ssl-redirect off whatever the ConfigMap says (lua_ingress.lua's ``location_config``
    is the location's: template.go ``locationConfigForLua`` writes "force_ssl_redirect = %t,
    ssl_redirect = %t, ..." from "location.Rewrite.ForceSSLRedirect,
    location.Rewrite.SSLRedirect"), as for a host no Ingress names without a default
    backend (``_unrouted_options``: None). An Ingress with host-less rules never configures
    that location either (its rules find the ``_`` server "already configured"); its rules'
    own locations keep their annotations. Everything else (access control, timeouts, body
    size, backend-protocol...) stays the default backend Ingress's, as
    ``locationApplyAnnotations`` applies it. The ``Match`` alone tells the case (a default
    backend without host), so a custom router's is treated alike."""
    if (opts.rewrite_target is None and opts.redirect_url is None and opts.app_root is None
            and not opts.ssl_redirect and not opts.force_ssl_redirect
            and not opts.preserve_trailing_slash):
        return opts
    return dataclasses.replace(
        opts, ssl_redirect=False, force_ssl_redirect=False, preserve_trailing_slash=False,
        app_root=None, rewrite_target=None, rewrite_regex=None, redirect_url=None,
        redirect_code=301)


# -- failing hooks ------------------------------------------------------------------------------

#: Seconds between two reports of a failing hook.
HOOK_LOG_INTERVAL = 60.0


class HookFailures:
    """Rate-limited reports of a failing caller-supplied hook (a router's ``observe``, a
    ``request_id`` callable) whose failure the request path gets over, shared by the proxy
    core (``Proxy._hook_failed``) and IngressASGI so that both log alike. Per hook name: when
    it was last logged and the failures not logged since."""

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: dict[str, tuple[float, int]] = {}

    def failed(self, logger: logging.Logger, hook: str) -> None:
        """Log the exception being handled, raised by ``hook``, with its traceback: at most
        once per ``HOOK_LOG_INTERVAL`` (monotonic clock) per hook, so that a hook failing on
        every request cannot flood the log, with the number of failures not logged since.
        Call it from an ``except`` block."""
        now = time.monotonic()
        last = self._seen.get(hook)
        if last is not None and now - last[0] < HOOK_LOG_INTERVAL:
            self._seen[hook] = (last[0], last[1] + 1)
            return
        self._seen[hook] = (now, 0)
        more = f" ({last[1]} more times since the last report)" if last and last[1] else ""
        logger.error("%s failed%s; going on without it", hook, more, exc_info=True)


class RouteOptionsSource:
    """A route's effective options (its Ingress's annotations over the settings), parsed once
    per ``Match``, and the options of a known host's path no rule covers. Shared by
    ``Proxy`` and ``IngressASGI``, which set ``router`` and call ``_set_route_settings``."""

    router: Any
    tls_host: Callable[[str], bool]
    _settings: ProxySettings
    _options: dict[int, tuple[Any, RouteOptions]]
    _default_options: RouteOptions
    _server_access: Access | None
    _warned_table: Any
    _warned: set[str]
    _owners_table: Any
    _owners: dict[str, Any]
    _unrouted_opts: dict[str, RouteOptions | None]
    _app_roots: dict[str, str | None] | None
    _twins: dict[str, str] | None
    _twin_hosts_table: Any
    _twin_hosts: frozenset[str]
    #: ``auth-url`` is done by this front end (the proxy core: proxy/_extauth.py; IngressASGI:
    #: _asgi_extauth.py); False: an access annotation it cannot enforce (503).
    _ext_auth = False
    #: ``auth-tls-*`` is enforced by this front end (``parse_route_options``'s
    #: ``client_certs``; None: as ``_ext_auth``). IngressASGI: False (it does auth-url, not
    #: client certificates).
    _client_certs: bool | None = None
    #: The hosts' server-level ``proxy_ssl_*`` (``options_for``; None: not yet needed).
    _proxy_ssl_hosts: HostProxySSL | None = None

    @property
    def _options_logger(self) -> logging.Logger:
        """Where invalid annotation values are reported."""
        return _log

    def _set_route_settings(self, value: ProxySettings) -> None:
        self._settings = value
        self._options = {}
        self._default_options = parse_route_options({}, None, value)
        #: ingress-nginx's default server (a host no Ingress names): ``block-cidrs`` only.
        self._server_access = build_access(None, value.block_cidrs, (), ())
        #: The annotation warnings logged for ``_warned_table`` (``_warn_once``).
        self._warned_table = None
        self._warned = set()
        #: Per table (``_server_owners``): the table, the oldest non-canary Ingress per rule
        #: host, and what is derived from them on demand (None: not yet): the options of
        #: ``_unrouted_options`` per host, ``_server_app_root``'s app-roots, ``_www_twins``.
        self._owners_table = None
        self._owners = {}
        self._unrouted_opts = {}
        self._app_roots = None
        self._twins = None
        #: ``_www_twin_hosts``: the table its set was built for (a fresh object: none yet).
        self._twin_hosts_table = object()
        self._twin_hosts = frozenset()

    def options_for(self, match: Any) -> RouteOptions:
        """The route's effective options, parsed once per ``Match`` object (a table build makes
        new ones, so a reload re-parses and re-warns). ``app_root`` is the server's
        (``_server_app_root``), not only the rule's own. A default backend answering a named
        host is that host's server ``location /`` (``_with_server_location``); one answering
        the catch-all server (a host no rule names, or no Host) takes no redirect or rewrite
        (``_catch_all_location``)."""
        if match is None:
            return self._default_options
        hit = self._options.get(id(match))
        if hit is not None and hit[0] is match:
            return hit[1]
        opts = self._parse(match) if match.annotations else self._default_options
        if not match.annotations and (opts.ssl_redirect or opts.force_ssl_redirect) \
                and self._settings.no_tls_redirect_locations:
            # no-tls-redirect-locations holds for a rule without annotations too (its shared
            # ``_default_options`` know no rule path): template.go "force_no_ssl_redirect =
            # isLocationInLocationList(l, ...)" is per location (a cert-manager solver's
            # un-annotated /.well-known/acme-challenge/<token> rule is never redirected).
            from ._globalauth import in_locations
            if in_locations(getattr(match, "path", None),
                            self._settings.no_tls_redirect_locations):
                opts = dataclasses.replace(opts, ssl_redirect=False, force_ssl_redirect=False)
        host = getattr(match, "host", None)
        owner_ssl: ProxySSL | None = None
        if host:
            default = getattr(match, "is_default_backend", False)
            # A default backend is no location of its Ingress on this host: the host's app-root
            # is its server's alone (the default backend's Ingress may have no rule here).
            own = None if default and self._server_owners() is not None else opts.app_root
            root = self._server_app_root(host, own)
            if root != opts.app_root:
                opts = dataclasses.replace(opts, app_root=root)
            if default:
                opts = self._with_server_location(match, host, opts)
                owner_ssl = self._owner_proxy_ssl(match, host)
        elif getattr(match, "is_default_backend", False):
            opts = _catch_all_location(opts)
        if (self._ext_auth if self._client_certs is None else self._client_certs) \
                and not self._settings.proxy_ssl_location_only:
            # The server block's proxy_ssl_* (proxy/_proxy_ssl.py ``ServerProxySSL``): its
            # locations inherit what they do not write themselves (none with the ConfigMap's
            # proxy-ssl-location-only).
            if self._proxy_ssl_hosts is None:
                self._proxy_ssl_hosts = HostProxySSL()
            pssl = self._proxy_ssl_hosts.for_host(self.router, host)
            if pssl is not None:
                opts = dataclasses.replace(
                    opts, proxy_ssl=with_server(opts.proxy_ssl, pssl, self._router_secrets))
        if owner_ssl is not None:
            opts = dataclasses.replace(
                opts, proxy_ssl=_OwnerDeniable(opts.proxy_ssl, owner_ssl, self._router_secrets))
        if len(self._options) > 8192:
            self._options.clear()
        # Holding the Match keeps id() unique while the entry lives.
        self._options[id(match)] = (match, opts)
        return opts

    def _with_server_location(self, match: Any, host: str, opts: RouteOptions) -> RouteOptions:
        """A host's default backend, served as the host's server ``location /``: under its
        access control and with its redirects.

        ingress-nginx serves a host's paths no rule covers from the server's own ``location
        /``, which carries the annotations of the oldest non-canary Ingress with a rule for the
        host, whichever backend it proxies to (controller.go ``createServers``: "loc :=
        &ingress.Location{Path: rootLocation, ..., IsDefBackend: true, Backend: un, Ingress:
        ing}; locationApplyAnnotations(loc, anns)", and ``locationApplyAnnotations`` sets
        "loc.Whitelist = anns.Whitelist", "loc.Denied = anns.Denied", "loc.BasicDigestAuth =
        anns.BasicDigestAuth", "loc.Redirect = anns.Redirect", "loc.Rewrite = anns.Rewrite").
        ingresslib may take the default backend from another Ingress (SEMANTICS §4.5).

        Access: that Ingress's annotations alone would let a client past the allowlist or
        password the host's Ingress puts on ``/`` -- to any path of the host no rule covers.
        The request passes both (``combine_access``): the server's and the backend's own
        Ingress's (fail closed).

        Redirects: the server's only, as ``location /`` has them and as a request no rule and
        no default backend serves gets them (``_unrouted_redirect``): ``ssl-redirect``,
        ``force-ssl-redirect``, ``preserve-trailing-slash`` (``anns.Rewrite``),
        ``permanent-/temporal-redirect`` (``anns.Redirect``) and a rewrite-target that is a
        URL; the backend's Ingress's own are not the host's (they are its rules' locations').
        app-root is the server's already (``options_for``), from-to-www-redirect answers
        the twin host before any route (``_www_redirect``).

        The rest of the location's client side is the owner's alone (CORS, custom-headers,
        mirror, limit-rate, proxy-body-size, enable-access-log, use-port-in-redirects), its
        limits first (limit-*, global-rate-limit). How the backend's Service is spoken to stays
        its Ingress's (backend-protocol, proxy-ssl-*, upstream-vhost, timeouts and retries,
        proxy-http-version, connection-proxy-header, proxy-redirect/-cookie, x-forwarded-prefix,
        a rewrite-target that is a path, custom-http-errors with its ``default-backend``
        Service, which the router keeps with the backend): ingress-nginx's ``location /``
        proxies to the owner's or the global default backend, for which the owner's values are
        written, never to this Service; but the owner's denial for its proxy-ssl-secret is the
        location's: ``options_for`` wraps the backend's in ``_OwnerDeniable``
        (``_owner_proxy_ssl``). The owner is the one ``_unrouted_options`` reads."""
        owners = self._server_owners()
        if not owners:
            return opts
        owner = owners.get(host)
        if owner is None or owner is getattr(match, "ingress_object", None):
            return opts  # the host's own Ingress: its annotations are the server's already
        server = self._unrouted_options(host)
        if server is None:
            return opts
        access = combine_access(server.access, opts.access)
        if server.rewrite_is_redirect:
            target, regex = server.rewrite_target, server.rewrite_regex
        elif opts.rewrite_is_redirect:
            target, regex = None, None  # the backend's Ingress's redirect: not this host's
        else:
            target, regex = opts.rewrite_target, opts.rewrite_regex
        # The server's external authentication (its ``location /``: "loc.ExternalAuth =
        # anns.ExternalAuth", the global one unless that Ingress turns it off) is asked before
        # the backend's Ingress's own; taking the latter alone let a request for a path no
        # rule covers past the host's auth-url. The same for auth-tls-* (fail closed).
        ext_auth = server.ext_auth if server.ext_auth is not None else opts.ext_auth
        # Its limit-* too ("loc.RateLimit = anns.RateLimit"), as for a path no default backend
        # serves (``unrouted_limit``): the same zones as the host's rules.
        limit = server.rate_limit if server.rate_limit is not None else opts.rate_limit
        # global-rate-limit alike ("loc.GlobalRateLimit = anns.GlobalRateLimit"): the owner's
        # counters, else the backend's Ingress's (fail closed, as limit-*).
        glimit = server.global_rate_limit if server.global_rate_limit is not None \
            else opts.global_rate_limit
        # What the location does on the client's side is the owner's alone, as nginx's
        # location / has it ("loc.CorsConfig", "loc.CustomHeaders", "loc.Mirror",
        # "loc.RateLimit" (limit-rate, limit-rate-after), "loc.Proxy" (client_max_body_size),
        # "loc.Logs" (access_log), "loc.UsePortInRedirects"): its CORS, custom-headers, mirror,
        # response bandwidth, body size, access log and redirect port, whether or not it has
        # them (a path of the host no rule covers answers with them without a default backend
        # too: ``_unrouted_answer``, ``unrouted_headers``).
        return dataclasses.replace(
            opts, access=access, ext_auth=ext_auth, auth_tls=server.auth_tls or opts.auth_tls,
            rate_limit=limit, global_rate_limit=glimit,
            cors=server.cors, custom_headers=server.custom_headers, mirror=server.mirror,
            limit_rate=server.limit_rate, limit_rate_after=server.limit_rate_after,
            body_size=server.body_size, access_log=server.access_log,
            port_in_redirects=server.port_in_redirects,
            ssl_redirect=server.ssl_redirect,
            force_ssl_redirect=server.force_ssl_redirect,
            preserve_trailing_slash=server.preserve_trailing_slash,
            redirect_url=server.redirect_url, redirect_code=server.redirect_code,
            rewrite_target=target, rewrite_regex=regex)

    def _owner_proxy_ssl(self, match: Any, host: str) -> ProxySSL | None:
        """The ``proxy-ssl-*`` of ``host``'s server ``location /`` when ``match`` (a default
        backend for ``host``) is another Ingress's than that location's owner (None: the
        owner's own, or the owner writes none): its denial is the location's
        (``_OwnerDeniable``), its TLS settings are not the backend's."""
        owners = self._server_owners()
        owner = owners.get(host) if owners else None
        if owner is None or owner is getattr(match, "ingress_object", None):
            return None
        server = self._unrouted_options(host)
        return None if server is None else server.proxy_ssl

    def log_annotation_warnings(self) -> None:
        """Log now, once per table, the warnings of every annotated route of the router's
        table (canaries included), and of each host owner without a route of its own (its
        annotations configure the server's ``location /``: ``parse_each_route``'s ``served``):
        what ``ingresslib check`` prints, so that a server's log names an ignored or denying
        annotation at start, not at the route's first request. Nothing for a router without a
        table (a custom router: its routes warn on their first request). Cost: one parse per
        Ingress and rule path."""
        table = getattr(self.router, "table", None)
        routes = getattr(table, "routes", None)
        if routes is not None:
            parse_each_route(routes, self._parse, parse_canary=self._parse,
                             served=getattr(table, "served", None))

    def _parse(self, route: Any, main: Mapping[str, str] | None = None) -> RouteOptions:
        """``parse_route_options`` of an annotated route, its warnings logged (once per table);
        ``main``: a canary's main rule's annotations."""
        opts = parse_route_options(route.annotations, route.path, self._settings,
                                   where=f"Ingress {route.ingress}",
                                   namespace=getattr(route, "namespace", None),
                                   secrets=self._router_secrets, auth_warn=self._warn_one,
                                   main_annotations=main, ext_auth=self._ext_auth,
                                   client_certs=self._client_certs,
                                   path_type=getattr(route, "path_type", None))
        if opts.warnings:
            self._warn_once(opts.warnings)
        return opts

    def _warn_one(self, warning: str) -> None:
        self._warn_once((warning,))

    def _warn_once(self, warnings: tuple[str, ...]) -> None:
        """Log each annotation warning once per table: every rule of an Ingress carries the
        same annotations (and the same warnings naming the Ingress); a new table (a reload)
        warns again, as ``check`` would."""
        table = getattr(self.router, "table", None)
        if table is not self._warned_table or len(self._warned) > 8192:
            self._warned_table = table
            self._warned = set()
        for w in warnings:
            if w not in self._warned:
                self._warned.add(w)
                self._options_logger.warning("%s", w)

    def _unrouted_redirect(self, host: str, scheme: str, path: str, query: str | None,
                           https_port: int, *, host_raw: str = "",
                           server_scheme: str | None = None, location_host: str | None = None,
                           target: tuple[str, str | None] | None = None
                           ) -> tuple[int, bytes] | None:
        """``_unrouted_answer``'s redirect (no length: no 413), without its phase."""
        answer = self._unrouted_answer(host, scheme, path, query, https_port, host_raw=host_raw,
                                       server_scheme=server_scheme,
                                       location_host=location_host, target=target)
        if answer is None or answer[2] is None:
            return None
        return answer[1], answer[2]

    def _unrouted_answer(self, host: str, scheme: str, path: str, query: str | None,
                         https_port: int, *, host_raw: str = "",
                         server_scheme: str | None = None, location_host: str | None = None,
                         target: tuple[str, str | None] | None = None,
                         length: int | None = None, method: str = "",
                         origin: str | None = None, upstream_tls: bool = False
                         ) -> tuple[str, int, bytes | None] | None:
        """The ssl-redirect of a request for ``host`` (normalised; empty: none) whose path no
        rule covers: ingress-nginx serves it from the server's own ``location /``
        (``_unrouted_options``), where the server's ssl-redirect applies before the default
        backend's 404. ``(phase, status, Location)``, or None: ``phase`` is
        :attr:`RequestRecord.phase`, where nginx answers it, which names the upstream in the
        access log (the www twin's server sets no ``$proxy_upstream_name``: ``"head"``, logged
        empty; app-root and the 413 below: the server block's ``"-"``, ``"server"``; the
        rest: ``"location"``, the server's ``location /``, logged as the default backend).

        ``length`` (the request's Content-Length, None without one): over the ``location
        /``'s ``client_max_body_size`` it is ``(phase, 413, None)``, nginx's find_config
        phase, after the server's app-root and before the location's redirects (as
        ``body_too_large`` for a routed request). That location's limit is the server
        owner's proxy-body-size (``createServers``' ``locationApplyAnnotations``: "loc.Proxy
        = anns.Proxy"), for a host no Ingress names (or no Host) the default server's, the
        settings' ``proxy_body_size``: a 404 of the default backend is never reached with
        a body over it.

        With ``host_raw`` (the Host as received, nginx's ``$http_host``) a request for ``/``
        first gets the host's server-level app-root (``_server_app_root``; nginx.tmpl's "if
        ($uri = /) { return 302 $scheme://$http_host...; }" runs for every request to the
        server, whichever location follows), as ``redirect_for`` gives it to routed requests.
        ``server_scheme`` is nginx's ``$scheme`` (default ``scheme``). Without ``host_raw``
        the app-root is not looked at (a caller that has no Host to write).

        The www / non-www twin of a host with ``from-to-www-redirect`` is answered first
        (``_www_redirect``: ingress-nginx gives it a server of its own). Then, after the
        app-root, the server's ``location /`` answers its own redirects
        (``location_redirect``: it carries the oldest Ingress's redirect and rewrite-target
        annotations like any location). Last its ssl-redirect, the same code as a routed
        request's (lua_ingress.lua runs in that ``location /`` too): ``location_host`` and
        ``target`` write its Location only (``https_redirect``); the decisions stay on
        ``host`` and the canonical ``path``. ``target`` (the request target as received,
        nginx's ``$request_uri``) is also the www twin's Location target, whatever the
        scheme; without it the canonical ``path`` and ``query`` stand in.

        ``method`` and ``origin`` (the request's Origin value, None without one): a CORS
        preflight the server's ``location /`` answers (its ``enable-cors``:
        ``locationApplyAnnotations`` sets "loc.CorsConfig = anns.CorsConfig" on that location
        too) is ``("location", 204, b"")``, after the app-root and the 413 and before the
        location's redirects, as a routed request's (nginx.tmpl's CORS ``if``s come first in
        the location's rewrite phase); the caller answers it with the CORS headers
        (``unrouted_location``)."""
        if not host:
            return self._unrouted_too_large(self._default_options, length)
        # A trusted hop's empty X-Forwarded-Proto (``scheme`` ""): ingress-nginx's redirect
        # server writes "://www.host/..." (redirectScheme ""), which no client can follow;
        # this hop's own scheme then (README row).
        twin = self._www_redirect(host, scheme or server_scheme or "http",
                                  path if target is None else target[0],
                                  query if target is None else target[1], https_port)
        if twin is not None:
            # nginx.tmpl's server of the twin: "server_name {{ $redirect.From }}; ... return {{
            # $all.Cfg.HTTPRedirectCode }} $redirect_to;", no ``set $proxy_upstream_name``.
            return "head", *twin
        opts = self._unrouted_options(host)
        if opts is None:
            return self._unrouted_too_large(self._default_options, length)
        if path == "/" and host_raw:
            server = self._server_key(host)
            root = None if server is None else self._server_app_root(server, None)
            if root is not None:
                # The server block's "if ($uri = /) { return 302 ...", after its ``set
                # $proxy_upstream_name "-";`` and before any location's.
                return "server", 302, f"{server_scheme or scheme}://{host_raw}{root}".encode()
        if access_denied(opts) or (upstream_tls and proxy_ssl_denied(opts)):
            # The denied location's "return 503" comes before its redirects (and its 413, as
            # a routed request's: ``denied_first``). ``upstream_tls`` (the proxy core): its
            # proxy-ssl-secret's denial too (``proxy_ssl_denied``; ``createServers`` gives the
            # server's ``location /`` the oldest Ingress's "loc.Denied = anns.Denied").
            return None
        too_large = self._unrouted_too_large(opts, length)
        if too_large is not None:
            return too_large
        if opts.cors is not None and method == "OPTIONS" \
                and opts.cors.headers(origin) is not None:
            return "location", PREFLIGHT_STATUS, b""
        if opts.redirects:
            answer = location_redirect(opts, path, query,
                                       None if target is None else target[0])
            if answer is not None:
                return "location", *answer
        has_tls = opts.ssl_redirect and self.tls_host(host)
        redirect = https_redirect(opts, scheme, host, path, query, has_tls, https_port,
                                  self._settings.http_redirect_code,
                                  location_host=location_host, target=target)
        return None if redirect is None else ("location", *redirect)

    @staticmethod
    def _unrouted_too_large(opts: RouteOptions, length: int | None
                            ) -> tuple[str, int, bytes | None] | None:
        """``_unrouted_answer``'s 413 when ``length`` is over ``opts.body_size``, else None."""
        limit = opts.body_size
        if limit and length is not None and length > limit:
            return "server", 413, None
        return None

    def _router_secrets(self) -> Any:
        """The router's current Secrets (``auth-type: basic`` reads its Secret there; a new
        tuple after every change): ``router.resources.secrets``; None when the router exposes
        none (a wrapper that does not hand ``resources`` on: its basic-auth routes answer
        503, and the log says why rather than "no such Secret")."""
        return getattr(getattr(self.router, "resources", None), "secrets", None)

    def _unrouted_status(self, host: str, client_ip: str | None,
                         authorization: Callable[[], bytes | None] = lambda: None,
                         request: Callable[[], tuple[bytes, bytes, float]] | None = None,
                         upstream_tls: bool = False) -> tuple[int, bytes | None]:
        """After ``_unrouted_redirect`` gave nothing, the status of a request for ``host``
        (normalised; empty: none) whose path no rule covers: 0 (the 404 of the default
        backend, or the ``fallback`` app), or the access control of the server's ``location
        /`` (it carries the oldest Ingress's annotations, allow/deny lists and denial
        included: ``_unrouted_options``): 403 or 503. A host no Ingress names is served by
        ingress-nginx's default server, where only the ConfigMap's ``block-cidrs`` applies.
        ``(status, WWW-Authenticate value or None)`` (``access_answer``). With
        ``upstream_tls`` (the proxy core) a ``location /`` denied for its proxy-ssl-secret
        answers 503 (``proxy_ssl_denied``). Cold path."""
        if upstream_tls and host:
            opts = self._unrouted_options(host)
            if opts is not None and proxy_ssl_denied(opts):
                return 503, None
        return access_answer(self._unrouted_access(host), client_ip, authorization, request)

    def _unrouted_access(self, host: str) -> Access | None:
        """The access control of a request for ``host`` (normalised; empty: none) whose path
        no rule covers (``_unrouted_status``): that of the server's ``location /``
        (``_unrouted_options``), or for a host no Ingress names the default server's
        ``block-cidrs``. Also what ``explain`` shows for such a request."""
        if host:
            opts = self._unrouted_options(host)
            if opts is not None:
                return opts.access
        return self._server_access

    def _www_redirect(self, host: str, scheme: str, path: str, query: str | None,
                      https_port: int) -> tuple[int, bytes] | None:
        """``from-to-www-redirect``: the answer for ``host`` (normalised) when it is the www /
        non-www twin of a rule host whose Ingress sets the annotation, else None.

        internal/ingress/controller/nginx.go ``buildRedirects``: for each server with
        ``RedirectFromToWWW`` (one of its locations has the annotation), "to :=
        srv.Hostname ... if strings.HasPrefix(to, "www.") { from = strings.TrimPrefix(to,
        "www.") } else { from = fmt.Sprintf("www.%v", to) }", skipped when "esrv.Hostname ==
        from" for any server ("Already exists an Ingress with %q hostname. Skipping creation
        of redirection"). nginx.tmpl then writes a server ``server_name {{ $redirect.From
        }}`` (an exact name: it wins over a wildcard server) whose every request gets
        "return {{ $all.Cfg.HTTPRedirectCode }} $redirect_to;" with "local request_uri =
        ngx.var.request_uri; if string.sub(request_uri, -1) == "/" then request_uri =
        string.sub(request_uri, 1, -2) end" and "string.format("%s://%s%s", redirectScheme,
        "{{ $redirect.To }}", request_uri)" (``redirectScheme``: ``$scheme``, or with
        use-forwarded-headers the X-Forwarded-Proto: the caller's ``scheme``). With an HTTPS
        port other than 443 nginx.tmpl writes ":<https port>" whatever the scheme; here only
        after ``https://`` (an http Location naming the TLS port cannot be followed)."""
        twins = self._www_twins()
        to = twins.get(host) if twins else None
        if to is None:
            return None
        target = path if query is None else f"{path}?{query}"
        if target[-1:] == "/":
            target = target[:-1]
        port = f":{https_port}" if scheme == "https" and https_port != 443 else ""
        return (self._settings.http_redirect_code,
                f"{scheme}://{to}{port}".encode() + _uri_bytes(target))

    def _www_twin_hosts(self) -> frozenset[str]:
        """The ``from-to-www-redirect`` twin hosts of the router's current table (empty: none,
        or a router without a table): each is a server of its own in ingress-nginx (nginx.tmpl
        ``server_name {{ $redirect.From }}``, an exact name), which nginx picks before a
        ``*.`` server and before the default server ``_`` (the host-less rules, the catch-all
        default backend). Such a request is answered by ``_www_redirect`` and never routed:
        the router would hand it to a ``*.`` rule, a host-less rule or the catch-all (and
        count it in a canary's weight window, advance a balancer).

        Read before routing every request: one table read and one identity test, the set
        built once per table (``_www_twins``); callers look a host up only when it is not
        empty, so a table without the annotation pays no hashing."""
        table = getattr(self.router, "table", None)
        if table is not self._twin_hosts_table:
            self._twin_hosts = frozenset(self._www_twins())
            self._twin_hosts_table = table
            self._table_seen()
        return self._twin_hosts

    def _table_seen(self) -> None:
        """Called once per router table (and after a settings change), by the first request
        that meets it (``_www_twin_hosts``): a subclass checks what depends on the table there
        at no cost per request (IngressASGI: ``backends`` keys no rule uses)."""

    def _www_twins(self) -> dict[str, str]:
        """twin host -> rule host, for ``_www_redirect``; computed once per table
        (``_www.www_twins``: only non-canary Ingresses make servers, ``createServers``:
        "Ingress %v is marked as Canary, ignoring"; a wildcard rule host has no www twin)."""
        if self._server_owners() is None:
            return {}
        if self._twins is not None:
            return self._twins
        # The rules are ``www_twins``', shared with the certificate store (which serves a twin
        # its host's certificate), so the two cannot drift apart.
        twins = {twin: to for twin, (to, _ing) in www_twins(self.router.table.served).items()}
        self._twins = twins
        return twins

    def _server_owners(self) -> dict[str, Any] | None:
        """Per rule host (as written) of the router's table, the Ingress whose server
        ingress-nginx generates for it: the oldest non-canary served Ingress with a rule for
        the host (controller.go ``createServers``: the first Ingress, oldest first, makes the
        server; "Ingress %v is marked as Canary, ignoring"). None: a router without a table
        (a custom router). Computed once per table; a new table also empties what
        ``_unrouted_options``, ``_server_app_root`` and ``_www_twins`` derived from the old
        one."""
        table = getattr(self.router, "table", None)
        served = getattr(table, "served", None)
        if served is None:
            return None
        if self._owners_table is not table:
            self._owners_table = table
            self._owners = server_owners(served)
            self._unrouted_opts = {}
            self._app_roots = None
            self._twins = None
        return self._owners

    def _unrouted_options(self, host: str) -> RouteOptions | None:
        """The options of the server-wide ``location /`` ingress-nginx generates for ``host``
        (normalised): what applies to a request for that host whose path no rule covers (and
        no default backend serves). None: no Ingress has a rule for ``host``, so ingress-nginx
        serves such a request from its default server, whose ``location /`` has no annotations
        (no redirect).

        internal/ingress/controller/controller.go ``createServers``: the first Ingress (oldest
        first) with a rule for a host creates its server with ``loc := &ingress.Location{Path:
        rootLocation, ..., IsDefBackend: true, ...}`` and ``locationApplyAnnotations(loc,
        anns)`` (that Ingress's annotations: ``loc.Rewrite = anns.Rewrite``, which holds
        ``ssl-redirect`` and ``force-ssl-redirect``); canary Ingresses are skipped ("Ingress %v
        is marked as Canary, ignoring").

        The router's ``table.served`` (oldest first) names the Ingresses; a router without one
        (a custom router) gets the settings' defaults for every host. Computed once per table
        and host (cold path: only requests no rule routes come here).
        """
        owners = self._server_owners()
        if owners is None:
            return self._default_options
        cache = self._unrouted_opts
        if host in cache:
            return cache[host]
        server = self._server_key(host)
        owner = None if server is None else owners[server]
        opts: RouteOptions | None = None
        if owner is not None:
            meta = owner.metadata
            ann = meta.annotations
            opts = parse_route_options(ann, None, self._settings,
                                       where=f"Ingress {meta.namespace}/{meta.name}",
                                       namespace=meta.namespace,
                                       secrets=self._router_secrets,
                                       auth_warn=self._warn_one,
                                       ext_auth=self._ext_auth,
                                       client_certs=self._client_certs) if ann \
                else self._default_options
            if opts.warnings:
                # Logged once per table (``_warn_once``): the same text as its rules' when it
                # has any; an owner without a route of its own (host-only rules) is only ever
                # parsed here, and its invalid values (a denying allowlist: every path no rule
                # covers answers 503) must not apply silently.
                self._warn_once(opts.warnings)
        if len(cache) > 8192:
            cache.clear()
        cache[host] = opts
        return opts

    def _server_key(self, host: str) -> str | None:
        """The rule host (as written, a key of ``_server_owners``) whose server ingress-nginx
        picks for ``host`` (normalised; a ``server-alias`` names its rule host's server): nginx
        picks an exact ``server_name`` before a wildcard one, and a wildcard rule host covers
        one label (SEMANTICS §4, as the router matches it). None: no Ingress has a rule for it
        (ingress-nginx's default server answers), or a router without a table."""
        owners = self._server_owners()
        if not owners:
            return None
        named = self._alias_server(host)
        if named in owners:
            return named
        wildcard = "*." + named.partition(".")[2] if "." in named else ""
        return wildcard if wildcard in owners else None

    def _alias_server(self, host: str) -> str:
        """The rule host (as written) whose server ``host`` (normalised) names through a
        ``server-alias`` of the router's table, else ``host``. ingress-nginx writes an alias
        into its server's ``server_name`` (nginx.tmpl "server_name {{ buildServerName
        $server.Hostname }} {{ buildServerName $server.Aliases }}"), so a request for it whose
        path no rule covers is answered by that server's ``location /`` and app-root, as one
        for the host."""
        table = getattr(self.router, "table", None)
        if table is None or not getattr(table, "aliases", None):
            return host
        via = table.alias_of(host)
        server = None if via is None else via["host"]
        return host if server is None else str(server)

    def _server_app_root(self, host: str, own: str | None) -> str | None:
        """The app-root ingress-nginx's server for the rule host ``host`` (as written) answers
        ``/`` with, whichever rule of that host the request reached; ``own``, the rule's own
        app-root, when the router has no table to tell (a custom router).

        nginx.tmpl writes every location's app-root at the server level, not in its location:
        "{{ range $location := $server.Locations }} ... {{ if not (empty
        $location.Rewrite.AppRoot) }} if ($uri = /) { return 302
        $scheme://$http_host{{ $location.Rewrite.AppRoot }}; } {{ end }}". Every ``if`` runs
        before a location is chosen, and the first true one returns: the app-root of the
        first location in ``$server.Locations`` order that has one answers ``/`` for the whole
        host, also when ``/`` is another Ingress's rule. That order is
        internal/ingress/controller/controller.go ``getBackendServers``: "sort.SliceStable(
        value.Locations, func(i, j int) bool { return value.Locations[i].Path >
        value.Locations[j].Path })" then "... return len(value.Locations[i].Path) >
        len(value.Locations[j].Path)": longest path first, then the greater string. The
        server's own ``location /`` (``createServers``: "loc := &ingress.Location{Path:
        rootLocation, ..., IsDefBackend: true, ...}; locationApplyAnnotations(loc, anns)")
        carries the annotations of the oldest non-canary Ingress with a rule for the host,
        unless a ``/`` rule replaced it ("the root location may be replaced by the ingress
        path"). Canary Ingresses have no location of their own.

        One pass over the served Ingresses per table finds the hosts where some Ingress sets
        app-root (usually none: nothing more to do); those hosts' locations are then read from
        ``table.routes``. Cold path: once per ``Match`` (``options_for`` caches).
        """
        owners = self._server_owners()
        routes = getattr(getattr(self.router, "table", None), "routes", None)
        if owners is None or routes is None:
            return own
        if self._app_roots is None:
            self._app_roots = _server_app_roots(self.router.table.served, routes, owners)
        # A host no Ingress with an app-root names: none (``own`` is None there too).
        return self._app_roots.get(host, own)


def _server_app_roots(served: Any, routes: Any, owners: dict[str, Any]
                      ) -> dict[str, str | None]:
    """``_server_app_root`` for every rule host where a served non-canary Ingress sets a valid
    app-root (other hosts: None); ``owners`` is ``_server_owners``."""
    roots: dict[int, str | None] = {}  # id(Ingress) -> its valid app-root, when it has one
    hosts: set[str] = set()
    mains = [ing for ing in served if not _is_canary(ing)]
    for ing in mains:
        raw = ing.metadata.annotations.get(PREFIX + "app-root")
        root = None if raw is None else valid_app_root(raw)
        if root is not None:
            roots[id(ing)] = root
            hosts.update(rule.host for rule in ing.spec.rules if rule.host)
    if not hosts:
        return {}  # the usual case: no Ingress sets app-root
    # (path, app-root) per location of each such host, the server's root location first: a
    # stable sort keeps it before an Exact "/" of the same path.
    locations: dict[str, list[tuple[str, str | None]]] = {h: [] for h in hosts}
    replaced: set[str] = set()
    for m in routes:
        host = m.host
        if host not in locations or m.is_default_backend or m.ingress_object is None:
            continue
        path = m.path or "/"
        if path == "/" and m.path_type != "Exact":
            replaced.add(host)
        locations[host].append((path, roots.get(id(m.ingress_object))))
    out: dict[str, str | None] = {}
    for host, locs in locations.items():
        if host not in replaced:
            locs.insert(0, ("/", roots.get(id(owners[host]))))
        locs.sort(key=lambda loc: (len(loc[0]), loc[0]), reverse=True)
        out[host] = next((root for _, root in locs if root is not None), None)
    return out


# -- the server's ``location /`` of an unrouted request ----------------------------------------

def _undenied(server: RouteOptions, limit: Any) -> Any:
    """``limit``, a limit of ``server`` (``_unrouted_options``), unless its ``location /`` is
    denied: its ``return 503`` (the rewrite module's handler) comes before rewrite_by_lua's
    global throttle and the preaccess phase's limits (``denied_first``)."""
    return None if limit is None or access_denied(server) else limit


def unrouted_limit(server: RouteOptions | None) -> Any:
    """The rate limit (``proxy/_ratelimit.py`` ``RateLimit``) a request no rule covers meets in
    its server's ``location /`` (``server``: ``_unrouted_options``), or None: ingress-nginx's
    ``createServers`` applies the host's oldest Ingress's annotations to that location
    (``locationApplyAnnotations``: "loc.RateLimit = anns.RateLimit", as "loc.CorsConfig =
    anns.CorsConfig" and "loc.CustomHeaders = anns.CustomHeaders"), and nginx.tmpl writes its
    ``limit_req`` / ``limit_conn`` lines (``buildRateLimit``) in every location, that one too.
    None for a denied location: its ``return 503`` comes first (``denied_first``)."""
    return None if server is None else _undenied(server, server.rate_limit)


def unrouted_global_limit(server: RouteOptions | None) -> Any:
    """The global rate limit (``proxy/_globalratelimit.py`` ``GlobalRateLimit``) of that
    ``location /``, or None: "loc.GlobalRateLimit = anns.GlobalRateLimit" in
    ``locationApplyAnnotations`` (every ingress-nginx version with global-rate-limit), and
    nginx.tmpl's ``lua_ingress.rewrite`` runs ``global_throttle`` in every location, with the
    Ingress's counters: a client's 404s count against the limit of its paths. None for a
    denied location, as ``unrouted_limit``."""
    return None if server is None else _undenied(server, server.global_rate_limit)


def unrouted_headers(server: RouteOptions | None, origin: str | None, config_maps: Any
                     ) -> tuple[tuple[bytes, bytes], ...]:
    """The headers IngressASGI sets on the answers of an unrouted request's server ``location
    /`` (``server``: ``_unrouted_options``): its CORS headers for ``origin`` then its
    custom-headers ConfigMap's (``config_maps``: the router's), as the proxy core's
    ``_add_response_headers`` adds them (``locationApplyAnnotations``: "loc.CorsConfig =
    anns.CorsConfig", "loc.CustomHeaders = anns.CustomHeaders"); none on a denied location's
    503."""
    if server is None or (server.cors is None and server.custom_headers is None):
        return ()
    if access_denied(server):
        return ()
    out: list[tuple[bytes, bytes]] = []
    if server.cors is not None:
        out += server.cors.headers(origin) or ()
    if server.custom_headers is not None:
        custom = server.custom_headers.headers(config_maps)
        names = {n.lower() for n, _ in custom}
        out = [h for h in out if h[0].lower() not in names] + list(custom)
    return tuple(out)
