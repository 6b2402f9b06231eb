"""The sans-IO reverse-proxy core: one ``ClientConnection`` per downstream connection.

h11 parses both sides (its parser functions, driven by ``_H11Reader``, ``_h11_reader.py``);
this module decides what goes where (SEMANTICS §5, §9) and writes the outgoing heads and body
framing itself, by h11's rules, in one join per head: h11's ``send`` re-validated every header
and ran its state machine for each event, which cost more than the parsing.
Inputs are bytes, EOFs, timer expiries and upstream events, each with the caller's ``now``;
outputs are lists of actions (``_actions.py``). No socket, asyncio, ssl or logging handler here.

Flow of one request:
  client bytes -> raw head checks (``_headers.check_raw_head``) -> h11-parsed ``Request`` ->
  extra checks + canonical target -> router -> redirects / local answers, or
  ``OpenUpstream`` -> upstream head (rebuilt headers, serialised once) -> body events re-framed
  (Content-Length or chunked written here, never the client's framing bytes) -> h11-parsed
  ``Response`` -> rebuilt headers + framing (``_response_head.py``) -> client -> ``RequestDone``
  (if ``Proxy.records``) -> next pipelined request or idle.

A retry goes to another endpoint (``router.next_endpoint``) only before the response began, and,
once any byte of the request was sent, only for idempotent methods with a body we still hold
(or any method when ``proxy-next-upstream`` lists ``non_idempotent``, which
``retry-non-idempotent`` appends), while ``proxy-next-upstream-timeout`` has not run out since
the first try began: nginx's ngx_http_upstream_next / ngx_http_upstream_test_next rules,
quoted at ``_retry_allowed``. Every
try is in the record with the status nginx logs for it ($upstream_status: 502, 504 for a timeout).

Choices made here (SEMANTICS leaves them open; each is tested in ``tests/test_proxy_*.py``):
- Raw head checks run before h11 sees a head: bare CR/LF, obs-fold, duplicate or listed
  Content-Length, line/size/count limits (414/431). h11 then parses; its 501 for an unknown
  Transfer-Encoding becomes 400 (an ambiguous framing attempt, refused like the others).
  Chunked bodies get the same kind of line rules: ``_chunked.py``.
- A second line of a header nginx reads once (``_headers.UNIQUE_REQUEST``: Authorization,
  Expect, If-None-Match...; Host, Content-Length and Transfer-Encoding were refused already)
  and a Host with no host in it (``Host:``, ``Host: .``) are 400 and close, as nginx's
  ngx_http_process_unique_header_line and ngx_http_validate_host answer them.
- An upstream status line whose reason phrase holds a CTL is an invalid response, like a CTL
  in a response header value.
- ``OPTIONS *`` is answered by the proxy (200, ``allow``): it asks about the server itself.
  nginx's request-line parser refuses it (400), so it is recorded as a refused head (phase
  "head": no upstream name in the access log, not in the metrics).
- An absolute-form target is accepted when its authority names the Host's host and port
  (after ``normalize_host``, the scheme's default port filled in); another host is 400.
  ``CONNECT`` and ``TRACE`` are 405 and close before routing (nginx refuses both in
  ngx_http_process_request_header, ``NGX_HTTP_NOT_ALLOWED``), once the head passed its checks
  (a 400 for the head comes first there). A method with a character other than ``A-Z``, ``_``,
  ``-`` (``get``, ``G.T``, which h11 takes as tokens) is 400 and close, as nginx's
  request-line parser answers it (``NGX_HTTP_PARSE_INVALID_METHOD``).
- A head deadline expiring with partial bytes gets 408 then close (nginx logs 408 and closes).
- A client that disconnects before its response is recorded with status 499 (nginx), 400
  while it still owed request body bytes (nginx's body reader: "client prematurely closed
  connection", ``NGX_HTTP_BAD_REQUEST``); one that closes with a request head partly sent, 400
  with the request line as read (phase "head", nothing sent), as nginx's header reader logs
  it, empty lines alone included (nginx's request exists from the first byte read: 400 on a
  close, 408 at the head deadline, no request line); one that closes with no byte of a next
  request read, no record (nginx has no request).
- A client EOF while the upstream is still answering is an abort, as in nginx with
  ``proxy_ignore_client_abort off`` (ngx_http_upstream_check_broken_connection): the upstream
  connection is closed (not pooled), 499 (400 mid-body, or the status of a response already
  begun) is recorded and the client connection closed. ``ProxySettings.proxy_ignore_client_abort``
  restores the lenient rule (a half-close after a complete request lets the response finish).
- Upstream response heads with both Content-Length and Transfer-Encoding are invalid (502),
  even though RFC 9112 lets a recipient follow Transfer-Encoding: an upstream that sends both is
  broken or hostile. An invalid head is refused before its status counts, as nginx's
  ngx_http_upstream_process_header does: retried only for ``invalid_header``, never for
  ``http_502`` ..., nor intercepted by custom-http-errors for its status. 1xx other than 101 are dropped (100 Continue is answered by the proxy).
- The upstream connection of a response to HEAD, or of a 204, whose head announces a body
  (Transfer-Encoding, a Content-Length other than 0) is not pooled, where nginx keeps it: a
  body written late would answer the next request sent on it (``_H11Reader.spent``). A 304's
  is kept, as in nginx (its framing headers are the representation's; conditional GETs are
  common).
- Trailers are not forwarded; the body is re-framed on each side (h11's framing rules). A 204's
  Content-Length is dropped (RFC 9110 §8.6 forbids it; nginx's header filter drops it too).
- ``keep_alive_requests`` 0 means nginx's ``keepalive_requests 0``: one request per connection.
- ``Date``: every response carries ours, from ``Proxy.clock`` (wall clock, injectable),
  formatted once per second: local answers, and upstream responses (a 101 too), whose own Date is
  replaced as nginx does (proxy_hide_header's default list). Without a clock (None) none is
  added and an upstream's Date passes.
- A pooled upstream connection that turns out closed before any response byte is retried once
  on a fresh connection (Go's Transport rule), not counted as a try (nginx gives it back too)
  but logged as one (502), as nginx does, and not observed as a failure (the balancer's EWMA
  samples the last try only, ewma.lua ``after_balance``); to the router's next endpoint, as
  any retry (nginx asks the balancer again), the same one when none is untried. The request
  was written to it, so only one whose body we hold and that may be sent twice: an idempotent
  method, or any when ``proxy-next-upstream`` lists ``non_idempotent`` (nginx's rule for every
  sent POST).
- A request body up to 1 MiB is kept for replay; retries of bigger bodies stop once sent, and
  with an explicit ``proxy-request-buffering: "off"`` those of a body still arriving when the
  request was first sent (nginx's ``request_body_no_buffering``: ``_request_buffer.unbuffered``).
- The record's ``upstream_header_time`` / ``upstream_response_time`` are the last attempt's,
  from its ``OpenUpstream`` (nginx lists one per try: ``upstream_response_times`` holds every
  try's response time, the access log lists them).
- Local answers (404/503/redirects) keep the connection and discard the request body (up to
  1 MiB, 5 s without a byte of it, 30 s in all: nginx's lingering timers), sending no
  ``100 Continue`` (nginx: "r->expect_tested = 1;"); malformed requests and 413 close it. A
  discarded body that turns out malformed closes it with no second response. A request no rule
  routes whose body is chunked is answered (404) at the body's end, or 413 once it passes the
  server's proxy-body-size (``_defer_unrouted``: nginx reads it for the default backend).
- Every record of a request carries ``request_id`` ($req_id), local answers included: the
  client's first X-Request-ID when it is a token, else a generated id (``generate_request_id``);
  a head refused before h11 parsed it gets a generated id, never one read from refused bytes.
- ssl-redirect / force-ssl-redirect for a request without Host (HTTP/1.0): the matched rule's
  host when it names one, else no redirect (ingress-nginx would send ``https://_/path``);
  app-root without Host answers the relative ``Location: /app`` (RFC 9110 §10.2.2).
- A path of a known host that no rule covers (and no default backend serves) gets the
  ssl-redirect of ingress-nginx's server-wide ``location /`` (``Proxy._unrouted_options``: the
  oldest non-canary Ingress with a rule for the host) before the 404.
- Back-pressure on the client: body bytes no upstream can take yet (before the connect, between
  tries) and pipelined bytes behind a request in flight are held up to ``_HOLD_LIMIT`` (64
  KiB); beyond it ``reading_wanted`` turns False (the driver stops reading the client), and the
  BODY timer does not blame a client we hold back. A driver that ignores it works as before.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Collection
from email.utils import formatdate
from typing import Any

import h11
from h11._readers import ContentLengthReader

from .._balance_request import RequestContext
from .._errors import BadRequestError
from .._normalize import canonical_path, normalize_host, split_target
from .._route_state import http_header
from ._actions import (
    Action,
    CloseDownstream,
    CloseUpstream,
    Offload,
    OpenUpstream,
    RequestDone,
    RequestRecord,
    set_record_connection,
    HookFailures,
    RouteOptionsSource,
    SendDownstream,
    SendUpstream,
    SetTimer,
    TimerKind,
    TunnelEstablished,
    UpstreamTry,
    _no_tls,
    access_answer,
    access_job,
    access_denied,
    body_too_large,
    denied_first,
    location_host_of,
    proxy_ssl_denied,
    redirect_for,
    tls_host_predicate,
    unrouted_global_limit,
    unrouted_limit,
)
from ._annotations import RouteOptions
from ._block import blocked_request, skip_logging
from ._clientcert import CLIENT_CERT_NAMES, ClientCert, ClientCertAuth
from ._clientcert import refusal as client_cert_refusal
from ._clientcert import upstream_lines as client_cert_lines
from ._chunked import _RequestChunkedReader
from ._cors import PREFLIGHT_STATUS
from ._cors import merge as cors_merge
from ._header_sets import (
    config_maps_of,
    global_headers,
    set_header_lines,
    upstream_set_headers,
)
from ._errors import LocalProxyError, RemoteProxyError
from ._extauth import (auth_add_cookies, auth_connected, auth_data, auth_drop, auth_eof,
                       auth_failed, auth_owns, auth_start, auth_timed_out, auth_upstream_head)
from ._satisfy import any_access
from ._auth_unasked import unasked_head
from ._error_pages import (default_backend_lines, error_page_head, error_page_options,
                           without_set_names)
from ._headers import (
    HEADER_NAME_CHARS,
    IDEMPOTENT,
    MAX_CONTENT_LENGTH,
    METHOD_CHARS,
    NGINX_METHODS,
    OPTIONS_ALLOW,
    REASONS,
    RESPONSE_DROP,
    RESPONSE_DROP_PASS_SERVER,
    UNIQUE_REQUEST,
    HeaderKind,
    RequestIds,
    TrustPolicy,
    absolute_form,
    add_server,
    basic_auth_user,
    check_host_header,
    check_partial_head,
    check_raw_head,
    hidden_of,
    client_address,
    first_forwarded_host,
    forwarded_for_value,
    forwarded_redirect_host,
    has_control,
    hsts_value,
    local_body,
    note_read_once,
    passes_backend_server,
    redirect_scheme,
    request_header_kind,
    client_request_id,
    special_request_names,
    valid_request_id,
)
from ._h11_reader import _H11Reader as _H11Reader
from ._mirror import MirrorCopy, begin_mirror, budget_of, drop_copy
from ._proxy_ssl import NGINX_DEFAULT, UNUSABLE, mirror_tls
from ._location_extras import log_rewrite, upstream_keeps
from ._request import _Request, _Upstream, _raw_request_line
from ._response_head import (_FRAME_CHUNKED, _FRAME_CLOSE, _FRAME_NONE, _response_head,
                             rewrite_response_headers)
from ._ratelimit import Held, RateLimit, RateLimiter
from ._globalratelimit import NOT_EXCEEDING, GlobalRateLimit, GlobalRateLimiter
from ._bandwidth import Throttle
from ._gzip import Encoder, start_gzip
from ._settings import ProxySettings
from ._request_buffer import Buffered, held as held_buffered, whole as whole_buffered
from ._request_buffer import HeldBody
from ._request_buffer import UNARMED_BODY_TIMEOUT, release as release_buffered
from ._request_buffer import start as start_buffering
from ._request_buffer import give_back as give_back_turn
from ._request_buffer import resendable, unbuffered
from ._response_buffer import BODY_LINE_LIMIT, accel_buffer, log_too_big

__all__ = ["Proxy", "ClientConnection"]

_log = logging.getLogger("ingresslib.proxy")

#: Request bodies up to this size are kept so that a retry can replay them (nginx buffers
#: request bodies by default, ``proxy_request_buffering on``; we stream and keep a copy).
_REPLAY_LIMIT = 1024 * 1024
#: Body bytes handed to h11 at a time out of the client buffer.
_FEED_SLICE = 65536
#: Bytes a client may pipeline while a response is pending before we stop listening to it
#: (the connection is closed; the request in flight gets its record).
_PIPELINE_LIMIT = 1024 * 1024
#: Client bytes the core holds for nobody before it asks its driver to stop reading the client
#: (``ClientConnection.reading_wanted``): request body bytes while no upstream can take them
#: (before the connect, between a failed try and the retry's connect), and pipelined bytes
#: waiting behind a request in flight. nginx reads a body into ``client_body_buffer_size``
#: (16k on x86-64) and spills the rest to a temporary file; we stream instead, so a fixed
#: modest bound, one feed slice: a driver that reads in chunks of N bytes holds at most
#: ``_HOLD_LIMIT + N``. Not a setting: ingress-nginx's ``client-body-buffer-size`` is the
#: in-memory part of a body nginx stores whole (the rest goes to disk), not a reading pause.
#: (Bytes kept for a retry, ``_REPLAY_LIMIT``, are a separate, bounded copy.)
_HOLD_LIMIT = _FEED_SLICE
#: nginx ``lingering_timeout 5s`` and ``lingering_time 30s``, which also bound the discarding of
#: a request body after a local answer (ngx_http_finalize_connection: "if (r->discard_body) {
#: ... ngx_add_timer(r->connection->read, clcf->lingering_timeout); if (r->lingering_time ==
#: 0) { r->lingering_time = ngx_time() + (time_t) (clcf->lingering_time / 1000); } }"): the
#: most time without a byte of it, and in all, before the connection is closed. (The server's
#: ``_LINGER_TIMEOUT``/``_LINGER_TIME`` are the same numbers for its lingering close.)
_DISCARD_TIMEOUT = 5.0
_DISCARD_TIME = 30.0

#: ``proxy-next-upstream`` conditions naming a response status.
_HTTP_CONDITIONS = {code: f"http_{code}" for code in (403, 404, 429, 500, 502, 503, 504)}
_CONNECTION_CLOSE = (b"connection", b"connection", b"close")
#: What an HTTP/1.0 client that asked for keep-alive is told when it is kept (nginx's header
#: filter: "if (r->keepalive) { ... "Connection: keep-alive" CRLF"): without it an HTTP/1.0
#: client takes the response as the connection's last.
_CONNECTION_KEEP_ALIVE = (b"Connection", b"connection", b"keep-alive")
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
#: The request-id generator lives in ``_headers`` (shared with the ASGI adapter); the name
#: stays importable from here.
_RequestIds = RequestIds
# HeaderKind members as globals: compared by identity once per special request header.
_PASS, _HOST, _LENGTH, _CHUNKED, _UPGRADE = (HeaderKind.PASS, HeaderKind.HOST, HeaderKind.LENGTH,
                                             HeaderKind.CHUNKED, HeaderKind.UPGRADE)
_FORWARDED_FOR, _FORWARDED, _REQUEST_ID = (HeaderKind.FORWARDED_FOR, HeaderKind.FORWARDED,
                                           HeaderKind.REQUEST_ID)


#: The ``UNIQUE_REQUEST`` names ``_parse_request`` checks: a second Content-Length is refused
#: before (``check_raw_head``), a second Transfer-Encoding by h11's ``normalize_and_validate``
#: (501, answered 400).
_UNIQUE_CHECKED = UNIQUE_REQUEST - {b"content-length", b"transfer-encoding"}
#: The header names ``_parse_request`` reads or checks; any other is skipped at one lookup.
_READ_NAMES = _UNIQUE_CHECKED | {
    b"host", b"transfer-encoding", b"content-length", b"connection", b"upgrade", b"expect",
    b"user-agent", b"referer", b"authorization"}



_SET_TIMERS: dict[tuple[str, float], SetTimer] = {}
#: ``ord("#")``: ``bytes.__contains__`` tries a bytes needle as an integer first, and the
#: TypeError it raises and clears costs about 2,000 instructions on every request (session 26,
#: benchmarks/load/README.md); an int needle is the plain byte search.
_HASH = ord("#")


def _check_router(router: Any) -> None:
    """Refuse what has no ``route``: ``IngressASGI`` takes Resources, and a ``Proxy`` (a
    ``ProxyServer``) given them started, then dropped every connection unanswered, its
    AttributeError in the log at each request. None stays allowed: no router yet (a server
    that only tests its listeners, or one whose ``router`` is set before it routes). A class
    (``ingresslib.Router`` not called) has a ``route``, the unbound function: each request
    then failed the same way."""
    if router is not None and (isinstance(router, type)
                               or not callable(getattr(router, "route", None))):
        what = f"the class {router.__name__}" if isinstance(router, type) else \
            type(router).__name__
        raise TypeError(f"a router is needed (ingresslib.Router(res), or your own object with "
                        f"its route()), not {what}: pass ingresslib.Router(res)")


def _digest_request(req: _Request, now: float) -> tuple[bytes, bytes, float]:
    """What ``auth-type: digest`` checks a response against (``access_answer``'s ``request``):
    the method, the target as received (nginx's ``r->unparsed_uri``: an absolute-form
    target's path and query) and the driver's time."""
    return req.method, req.original_uri.encode("ascii"), now


class Proxy(RouteOptionsSource):
    """Shared state of a proxy: router, settings, annotation cache. One per server.

    >>> from ingresslib.proxy import SendDownstream
    >>> class NoRoutes:
    ...     def route(self, method, host, path, headers, client_ip): return None
    ...     def next_endpoint(self, decision, tried): return None
    >>> proxy = Proxy(NoRoutes())
    >>> conn = proxy.connection(("192.0.2.1", 5000), now=0.0)
    >>> acts = conn.receive_data(b"GET / HTTP/1.1\\r\\nHost: a\\r\\n\\r\\n", now=0.0)
    >>> [a.data.split(b"\\r\\n")[0] for a in acts if isinstance(a, SendDownstream)]
    [b'HTTP/1.1 404 Not Found']
    """

    #: auth-url: the core asks the auth service (proxy/_extauth.py).
    _ext_auth = True

    def __init__(
        self,
        router: Any,
        settings: ProxySettings | None = None,
        *,
        tls_hosts: Callable[[str], bool] | Collection[str] = (),
        https_port: int = 443,
        request_id: Callable[[], str] | None = None,
        logger: logging.Logger | None = None,
        records: bool = True,
        clock: Callable[[], float] | None = time.time,
        client_auth: Callable[[str], ClientCertAuth | None] | None = None,
    ) -> None:
        _check_router(router)
        self.router = router
        #: ``host -> ClientCertAuth | None``: the client certificate authentication
        #: (``auth-tls-*``) of a request's server (proxy/_clientcert.py); None: none anywhere.
        self.client_auth = client_auth
        #: The router whose ``route`` was last checked for a ``query=`` parameter
        #: (``_note_router``; ``router`` may be replaced at any time) and the answer.
        self._query_router: Any = None
        self._route_query = False
        #: Whether that router's ``next_endpoint`` takes ``request=`` (``_note_router``).
        self._retry_request = False
        #: Wall clock (seconds since the epoch) for the ``Date`` header; None: no Date is
        #: added (the driver writes its own, or none is wanted). Read at most once per
        #: response; the formatted value is cached per second, as nginx's
        #: ``ngx_cached_http_time``. (Timers use the driver's ``now``, never this clock.)
        self.clock = clock
        self._date_second = -1
        self._date = b""
        #: Emit ``RequestDone`` records. A driver nobody consumes them from sets it False
        #: and saves building one per request (read per request: may change at any time).
        self.records = records
        self.settings = settings if settings is not None else ProxySettings()
        self.tls_host: Callable[[str], bool] = tls_host_predicate(tls_hosts) or _no_tls
        self.https_port = https_port
        self.request_id: Callable[[], str] = request_id or RequestIds()
        self.logger = logger or _log
        #: The rate limit zones of every connection (``limit-rps``, ``limit-rpm``,
        #: ``limit-connections``: proxy/_ratelimit.py), timed by the drivers' ``now``.
        self.rate_limits = RateLimiter()
        #: ``global-rate-limit``'s counters of every connection (proxy/_globalratelimit.py):
        #: in the process unless replaced by one over another store (memcached).
        self.global_rate_limits = GlobalRateLimiter()
        #: ``_hook_failed``: per hook, when it was last logged and the failures since.
        self._hook_failures = HookFailures()
        #: The generator ``_request_id_failed`` falls back on (made at its first use).
        self._own_ids: RequestIds | None = None

    def _note_router(self, router: Any) -> None:
        """Check once per router (not per request) whether its ``route`` takes ``query=``
        and its ``next_endpoint`` ``request=``: Router's do; a duck-typed one written to
        CONTRACT.md's signatures may not."""
        from .._router import takes_query, takes_request

        self._route_query = takes_query(getattr(router, "route", None))
        self._retry_request = takes_request(getattr(router, "next_endpoint", None))
        self._query_router = router

    def _hook_failed(self, hook: str) -> None:
        """Log the exception being handled, raised by a caller-supplied hook (``hook``: its
        name) whose failure the core gets over, with its traceback: at most once a minute per
        hook (a hook failing on every request must not flood the log), with the number of
        failures not logged since. Call it from an ``except`` block."""
        self._hook_failures.failed(self.logger, hook)

    def _request_id_failed(self) -> str:
        """A generated id when the ``request_id`` callable raised (logged by
        ``_hook_failed``): the request keeps its answer (a refused head its 400) and its
        record; nginx's ``$request_id`` cannot fail."""
        self._hook_failed("request_id")
        ids = self._own_ids
        if ids is None:
            ids = self._own_ids = RequestIds()
        return ids()

    @property
    def settings(self) -> ProxySettings:
        """The ``ProxySettings`` in use; assign a new one to change it. Connections opened
        later use it whole; on a connection already open, the requests read later get the new
        route options (body size, redirects, ...), while the connection's own reading (head
        limits, client timeouts, keep-alive) keeps the settings it was opened with."""
        return self._settings

    @settings.setter
    def settings(self, value: ProxySettings) -> None:
        # Route options (``options_for``, ``_unrouted_options``) come from
        # ``RouteOptionsSource``, shared with the ASGI adapter.
        self._set_route_settings(value)
        self._trust = TrustPolicy(value.proxy_real_ip_cidr)

    @property
    def _options_logger(self) -> logging.Logger:
        return self.logger

    def _http_date(self) -> bytes | None:
        """The ``Date`` value for a response sent now (RFC 9110 §5.6.7 IMF-fixdate), or None
        without a clock."""
        clock = self.clock
        if clock is None:
            return None
        second = int(clock())
        if second != self._date_second:
            self._date = formatdate(second, usegmt=True).encode("ascii")
            self._date_second = second
        return self._date

    def connection(
        self,
        peer: tuple[str, int] | str | None,
        *,
        tls: bool = False,
        local_port: int | None = None,
        now: float,
        refuse_requests: tuple[int, bytes] | None = None,
        offload: bool = False,
        throttle: bool = False,
        client_cert: ClientCert | None = None,
        proxy_protocol_port: int | None = None,
    ) -> ClientConnection:
        """A new downstream connection from ``peer`` (``(ip, port)`` or ip);
        ``refuse_requests`` and ``offload`` as :class:`ClientConnection`'s; ``throttle``:
        the driver performs ``TimerKind.RATE`` timers and asks ``upstream_reading_wanted``, so
        ``limit-rate`` responses are throttled (False: sent unthrottled, ingresslib/proxy/API.md);
        ``client_cert``: what the TLS handshake verified of the client's certificate (a
        ``ClientCert``: ingresslib/proxy/API.md, "Client certificates"; None: nothing, or no
        TLS); ``proxy_protocol_port``: a trusted PROXY protocol header's destination port
        (``use-proxy-protocol``), the ``X-Forwarded-Port`` in place of ``local_port``, and 443
        makes ``$pass_access_scheme`` https (X-Forwarded-Proto, ssl-redirect)."""
        conn = ClientConnection(self, peer, tls=tls, local_port=local_port, now=now,
                                refuse_requests=refuse_requests, offload=offload)
        conn.client_cert = client_cert
        if proxy_protocol_port is not None:
            # nginx.tmpl: "set $pass_server_port $proxy_protocol_server_port;"; lua_ingress.lua
            # rewrite(): "if config.use_proxy_protocol then if
            # ngx.var.proxy_protocol_server_port == "443" then ngx.var.pass_access_scheme =
            # "https"" (after a trusted X-Forwarded-Proto: ``_forwarded_scheme``).
            conn.proxy_protocol_port = conn.local_port = proxy_protocol_port
            if proxy_protocol_port == 443:
                conn.pass_scheme = "https"
        if throttle:
            # limit-rate (proxy/_bandwidth.py): the driver arms ``TimerKind.RATE`` and asks
            # ``upstream_reading_wanted``; without it responses go out unthrottled.
            conn._throttle = True
        return conn


def _try_facts(req: _Request) -> UpstreamTry:
    """The current try's ``RequestRecord.upstream_tries`` entry (``req.try_up``, set with
    ``t_attempt`` by ``_open``). nginx keeps these in the try's upstream state: connect_time
    and header_time stay -1 (``-``) where the try got no connection / no parsed head
    (ngx_http_upstream_connect), bytes_received adds each read, bytes_sent is the
    connection's ``sent`` (ngx_http_upstream_next, ngx_http_upstream_finalize_request)."""
    up = req.try_up
    assert up is not None and req.t_attempt is not None
    header = None if req.t_header is None else max(req.t_header - req.t_attempt, 0.0)
    return UpstreamTry(up.connect_time, header, up.bytes_sent, up.fed + up.tunnel_in)


def _past_budget(req: _Request, opts: RouteOptions, now: float) -> bool:
    """proxy-next-upstream-timeout (ingress-nginx, default 0 = none) is spent: the time allowed
    for all tries, from the first one's start (``req.t_tries``, nginx's u->peer.start_time)."""
    budget = opts.next_upstream_timeout
    return bool(budget) and req.t_tries is not None and now - req.t_tries >= budget


def _has_secure(set_cookie: str) -> bool:
    """Whether a ``Set-Cookie`` value carries the ``Secure`` attribute."""
    return any(a.strip().lower() == "secure" for a in set_cookie.split(";")[1:])


def _endpoint_host(req: _Request, endpoint: tuple[str, int]) -> None:
    """A request without Host (HTTP/1.0, origin-form target) is sent ``Host: <ip:port>`` of
    the endpoint it goes to (README's divergences: nginx sends ``$best_http_host``, there the
    catch-all server's name ``_``). The head is built once, for the endpoint chosen with it;
    a retry (proxy-next-upstream), an endpoint picked again once a buffered body is whole
    (``Router.repick``) or a custom error page's default backend goes elsewhere: each gets
    its own, not the first one's. upstream-vhost's Host stays (an error page's empty one,
    ``error_page_head``, is this endpoint's too: never an empty Host). An IPv6 endpoint is
    written in brackets (``[fd00::1]:8080``; before: ``fd00::1:8080``, no valid Host)."""
    head = req.up_head
    i = head.find(b"\r\nhost: ")
    if i < 0:
        return
    i += 8
    j = head.find(b"\r\n", i)
    value = head[i:j]
    if value and req.opts is not None and req.opts.upstream_vhost is not None:
        return
    ip, port = endpoint
    # (an IPv6 endpoint in brackets, as a Host's authority has it: "[fd00::1]:8080")
    want = (("[%s]:%d" if ":" in ip else "%s:%d") % (ip, port)).encode("ascii")
    if value != want:
        req.up_head = head[:i] + want + head[j:]


#: nginx's connection counter (``ngx_connection_counter``): ``ClientConnection.number``.
_NUMBERS = itertools.count(1)


class ClientConnection:
    """One downstream connection. Every input method returns the actions to perform, in order.

    Made by ``Proxy.connection``. The driver feeds it the client's and the upstreams' bytes,
    EOFs and timer expiries, each with ``now`` (seconds, a monotonic clock), and performs the
    returned actions (``OpenUpstream``, ``SendDownstream``, ``SetTimer``, ...) in order; ``closed``
    turns True once ``CloseDownstream`` was returned. The driver's whole contract is in the
    installed file ``ingresslib/proxy/API.md`` (``ClientConnection`` and "Actions").
    """

    #: ``(protocol, cipher, server name)`` of the TLS session (``ProxyServer`` sets them after
    #: the handshake: ``$ssl_protocol``, ``$ssl_cipher``, ``$ssl_server_name``, None: no SNI);
    #: None: not over TLS, or not told.
    tls_info: tuple[str | None, str | None, str | None] | None = None
    #: With a trusted PROXY protocol header (``proxy_protocol_port``): the address of the
    #: peer that sent it, the load balancer (``ProxyServer`` sets it; nginx's
    #: ``$realip_remote_addr``, the address before realip took the header's); None: not told.
    realip_addr: str | None = None
    #: With a ``log_format_upstream`` (else these class defaults): the peer as given, ``(ip,
    #: port)`` or ip (``$remote_port``), and the connection's serial number, from 1 among the
    #: connections made while a format is set (nginx's ``$connection``, ``c->number``).
    peer: tuple[str, int] | str | None = None
    number = 0
    #: ``_logformat.ConnectionFacts``: those values, copied at the connection's first record
    #: with a format; its records hold them, not the connection (none kept alive by a record).
    _log_facts: Any = None

    def __init__(
        self,
        proxy: Proxy,
        peer: tuple[str, int] | str | None,
        *,
        tls: bool = False,
        local_port: int | None = None,
        now: float = 0.0,
        refuse_requests: tuple[int, bytes] | None = None,
        offload: bool = False,
    ) -> None:
        self.proxy = proxy
        #: The driver performs ``Offload`` (runs its job off the loop, then calls
        #: ``offload_done``); False: the core runs such jobs itself, inline.
        self._offload = offload
        #: ``(request, continuation)`` while an ``Offload``'s job runs (``offload_done``).
        self._parked: tuple[_Request, Callable[[float], None]] | None = None
        #: ``(status, body)``: every request whose head passes the head checks is answered so,
        #: with ``Connection: close``, never routed (the server-wide ``OPTIONS *`` too). The
        #: server's answer to plain HTTP on its TLS listener (``_server._TO_HTTPS``): nginx
        #: refuses such a request in ngx_http_process_request, before any rewrite or location.
        self._refuse = refuse_requests
        self.settings = proxy.settings
        self.peer_ip: str | None = peer[0] if isinstance(peer, tuple) else peer
        if self.settings.log_format_upstream:
            # Only for log-format-upstream (an instance attribute more costs a new connection
            # ~440 instructions; a settings change retires the connections made before it).
            self.peer = peer
            self.number = next(_NUMBERS)
        self.tls = tls
        #: What the TLS handshake verified of the client's certificate (``auth-tls-*``,
        #: proxy/_clientcert.py); None: nothing (no TLS, or its context asked for none).
        self.client_cert: ClientCert | None = None
        #: ``(request, its server's ClientCertAuth)``: the ``ssl-client-*`` headers to send.
        self._cert_auth: tuple[_Request, ClientCertAuth] | None = None
        # Read on every request, so instance attributes: CPython 3.11 specialises no read of
        # a class-level default through an instance (a generic lookup each: 17 per request
        # before these; tests/test_perf_guards_s27.py).
        self._auth = self._auth_cookie = self._bw = self._bw_req = self._mirror = None
        self._digest_info = self._parse_next = None
        #: The current response's gzip or brotli stream (``use_gzip`` / ``enable_brotli``:
        #: proxy/_gzip.py, proxy/_brotli.py), else None; ``_compress``: either is on.
        self._gz: Encoder | None = None
        self._compress = self.settings.use_gzip or self.settings.enable_brotli
        self._throttle = self._eof = False
        #: proxy-buffering (proxy/_response_buffer.py): the bytes of the current response the
        #: driver may hold for the client while it keeps reading the upstream; 0: none (read
        #: the upstream only as fast as the client takes the response; a local answer's, a
        #: tunnel's).
        self.response_buffer = 0
        self.scheme = "https" if tls else "http"
        #: ``$pass_access_scheme`` before a trusted hop's X-Forwarded-Proto: ``$scheme``, or
        #: https for a PROXY protocol destination port 443 (``proxy_protocol_port``).
        self.pass_scheme = self.scheme
        #: The trusted PROXY protocol header's destination port (``Proxy.connection``); None:
        #: no header, or not a trusted peer's.
        self.proxy_protocol_port: int | None = None
        self.local_port = local_port if local_port is not None else (443 if tls else 80)
        s = self.settings
        # h11 must never be the one to refuse a head for size: our checks run first, with our
        # statuses (414/431); its own limit is a backstop above ours.
        self._max_head = s.max_request_line + s.max_headers_size + 1024
        self._h11 = _H11Reader(False, self._max_head)
        self._inbuf = bytearray()
        #: True while h11 is fed directly (the current request's head passed our checks and
        #: its body is not complete yet).
        self._feeding = False
        self._busy = False  # a request is being handled (between head and response end)
        self._req: _Request | None = None
        self._up: _Upstream | None = None
        self._spare: _H11Reader | None = None
        self._next_id = 0
        self._tunnel: int | None = None
        self._requests = 0
        self._timer: TimerKind | None = None
        self._peer_trusted = proxy._trust.trusted(self.peer_ip)
        self.closed = False
        #: Forwarded-header lines constant for this connection (built on first use).
        self._fwd_block: bytes | None = None
        self._fwd_ip_block: bytes | None = None
        self._out: list[Action] = []
        self._head_started: float | None = now
        #: Tokens of the current request's Connection header (headers they name are dropped).
        self._connection_tokens: list[bytes] = []
        #: The downstream response head produced by ``_on_response`` for ``_pump_upstream``.
        self._pending_head: bytes | None = None
        #: h11 delivered the current request and no response head was written for it yet
        #: (responses are serialised here, not by h11: its state stays at SEND_RESPONSE).
        self._can_respond = False
        #: The response written says "Connection: close" (or is delimited by the close).
        self._close_after = False
        #: ``(request, held)``: the limit-connections count the current request holds,
        #: released when it ends (``_emit_record``: done, refused, aborted, the client gone).
        self._limit_held: tuple[_Request, Held] | None = None
        #: The request whose error page (custom-http-errors) is being fetched: never twice.
        self._error_page_req: _Request | None = None
        #: ``(request, options)``: an unrouted request and its server ``location /``'s options
        #: (``_unrouted_location``): the CORS and custom-headers of its answers.
        self._server_location: tuple[_Request, RouteOptions] | None = None

    # ---------------------------------------------------------------- public inputs
    @property
    def idle(self) -> bool:
        """True between requests (no request under way, no unread bytes, not closed): a
        graceful shutdown may close the connection now."""
        return not self._busy and not self._inbuf and not self.closed

    @property
    def reading_wanted(self) -> bool:
        """False while the core holds more client bytes than it can pass on (request body
        bytes while no upstream connection can take them: before the connect, between a failed
        try and the retry's connect; or pipelined bytes behind a request in flight) beyond a
        fixed bound (64 KiB): the driver should stop reading the client until it is True again
        (it turns True when the upstream connects and the held bytes go out as
        ``SendUpstream``, or when the request is answered or the connection closed). Ask after
        each call. A driver that never asks keeps working as before, without the bound.
        Always True once ``closed`` (a lingering close reads and drops the client's bytes)."""
        if self.closed:
            return True
        req = self._req
        if req is not None and req.unsent_size > _HOLD_LIMIT \
                and type(req.replay) is not Buffered:  # (proxy-request-buffering on: read)
            return False
        return not self._busy or len(self._inbuf) <= _HOLD_LIMIT

    @property
    def upstream_reading_wanted(self) -> bool:
        """False while the core holds more than 64 KiB of response bytes that ``limit-rate``
        does not let out yet (a connection made with ``throttle=True``): the driver should
        stop reading the upstreams until it is True again (after a ``TimerKind.RATE`` expiry
        let bytes out). Ask after each call. A driver that never asks keeps working: the
        response is still sent at the rate, the held bytes unbounded."""
        bw = self._bw
        return bw is None or len(bw.held) <= _HOLD_LIMIT or self.closed

    def plain_body(self, n: int) -> bool:
        """True when the next ``n`` client bytes are all body bytes of a request with a
        Content-Length being read (the core's work on them is a copy), so a driver may hand
        them over in one call however many they are; False when they may hold chunk lines
        or requests, whose cost per byte is the parser's (see ``_server._FEED_SLICE``)."""
        if not self._feeding or self._inbuf:
            return False
        body = self._h11._body
        return type(body) is ContentLengthReader and body._remaining >= n

    def start(self, now: float) -> list[Action]:
        """Call once, right after accepting the connection: arms the head timer
        (``client_header_timeout``)."""
        self._set_timer(TimerKind.HEAD, self.settings.client_header_timeout)
        return self._flush()

    def receive_data(self, data: bytes, now: float) -> list[Action]:
        """Bytes read from the client (any split). Returns the actions they lead to: a
        route's ``OpenUpstream``, a local answer, ``SendUpstream`` of the request..."""
        if self.closed or not data:
            return []
        if self._tunnel is not None:
            # nginx's $request_length (``bytes_in``) is the request's head and body: the bytes
            # a tunnel carries are relayed by ngx_http_upstream_process_upgraded with
            # ``c->recv`` and never added to ``r->request_length``, as the bytes that came
            # with the head (forwarded from ``header_in``) are not either.
            # Traffic either way keeps a tunnel alive (proxy-read-timeout is an idle limit).
            up = self._up
            if up is not None:  # (the tunnel's: $upstream_bytes_sent counts what it carries)
                up.bytes_sent += len(data)
            return [SendUpstream(self._tunnel, data),
                    SetTimer(TimerKind.UPSTREAM_READ, self._read_timeout())]
        req = self._req
        if self._feeding and req is not None:
            if self._inbuf:
                self._inbuf += data
            else:
                req.bytes_in += len(data)
                self._h11.receive_data(data)
            body_by = self._body_by
            self._pump_client(now)
            if self._timer is TimerKind.BODY and self._body_by == body_by and \
                    self._req is req and not req.complete and not req.answered:
                # A read that handed on no body bytes (a chunk-size line, its CRLF, the last
                # chunk or trailers arriving alone; or bytes held for a connect) is a read all
                # the same: client_body_timeout runs "only for a period between two successive
                # read operations" (ngx_http_do_read_client_request_body re-arms it after any
                # recv, framing included). Before, such reads left the deadline of the last
                # data bytes running: a client sending "0\r\n" and then "\r\n", each well
                # within the timeout, got its 408.
                if req.defer_limit:
                    self._set_timer(TimerKind.BODY, self.settings.client_body_timeout)
                else:
                    self._set_request_timer(req, now)
        else:
            if not self._busy and not self._inbuf:
                # The head deadline runs from this first byte; it is armed by ``_try_head``
                # only if the head is not complete in this read (the common case needs no
                # timer change: the upstream read timer replaces the idle one).
                self._head_started = now
            self._inbuf += data
            if self._busy:
                if len(self._inbuf) > _PIPELINE_LIMIT:
                    # The request in flight ends here: its record (status 0, or the status
                    # of a response already begun, as for ``abort``) and its upstream
                    # connection closed, not pooled (its response is unread).
                    self._close_all(now, terminated=True)
            else:
                self._try_head(now)
        return self._flush()

    def receive_eof(self, now: float) -> list[Action]:
        """The client half-closed, closed or reset the connection: the request under way is
        aborted (recorded as 499, 400 when it still owed body bytes, or the status of a
        response already begun), unless
        ``proxy_ignore_client_abort`` lets its response finish; a request head partly read is
        recorded as 400 (``_head_cut_short``)."""
        if self.closed:
            return []
        self._eof = True
        if self._tunnel is not None:
            self._close_all(now)
            return self._flush()
        req = self._req
        if self.settings.proxy_ignore_client_abort and self._busy and req is not None \
                and req.complete and self._up is not None and not req.upgrade:
            # proxy_ignore_client_abort on: a half-close after a complete request lets the
            # response finish (answer what is already buffered, then close).
            return self._flush()
        # nginx's default (proxy_ignore_client_abort off): once the request is read, a client
        # EOF is an abort. ngx_http_upstream_check_broken_connection: "if (!u->cacheable &&
        # u->peer.connection) { ... "client prematurely closed connection, so upstream
        # connection is closed too"); ngx_http_upstream_finalize_request(r, u,
        # NGX_HTTP_CLIENT_CLOSED_REQUEST);" -- the upstream connection is closed (never
        # pooled), the record says 499, or the status of a response already begun
        # (ngx_http_terminate_request: "if (rc > 0 && (mr->headers_out.status == 0 ||
        # mr->connection->sent == 0)) { mr->headers_out.status = rc; }"). The endpoint did
        # nothing wrong: no failure observed, no retry. An EOF mid-body, before a route, or
        # in a tunnel ends everything the same way.
        if req is None and self._inbuf:
            # No request under way, part of the next head read (nothing read at all: nginx's
            # wait / keep-alive handler closes with no request, no record).
            self._head_cut_short(now)
        else:
            self._close_all(now, client_gone=True)
        return self._flush()

    def upstream_connected(self, conn_id: int, now: float, reused: bool = False) -> list[Action]:
        """The connection of ``OpenUpstream(conn_id, ...)`` is ready (``reused``: taken from
        the idle pool). A ``conn_id`` already given up gets ``[CloseUpstream(conn_id, False)]``."""
        if self._auth is not None and auth_owns(self, conn_id):
            return auth_connected(self, now, reused)
        up = self._upstream(conn_id)
        if up is None:
            return [CloseUpstream(conn_id, False)]
        req = self._req
        assert req is not None
        up.connected = True
        up.reused = reused
        if req.t_connect is None:
            req.t_connect = now
        # The connection being made is always the current (last) try's: its connect time
        # (nginx's $upstream_connect_time gives one per try, set once the connection is up:
        # ngx_http_upstream_send_request, "u->state->connect_time = ngx_current_msec -
        # u->start_time"; the record's scalar keeps the last connection made).
        up.connect_time = req.connect_time = 0.0 if reused else max(now - up.started, 0.0)
        # proxy-buffer-size (proxy/_response_buffer.py): the response head's limit, h11's
        # incomplete-head limit too (a head trickled in many reads), checked whole below.
        head_limit = req.opts.proxy_buffer_size if req.opts is not None \
            else self.settings.proxy_buffer_size
        if self._spare is not None:
            up.h11, self._spare = self._spare, None
            up.h11._max = head_limit
        else:
            up.h11 = _H11Reader(True, head_limit)
        self._send_request(req, up)
        self._set_request_timer(req, now)
        return self._flush()

    def upstream_failed(self, conn_id: int, now: float, timed_out: bool = False) -> list[Action]:
        """The connect failed, or (``timed_out``) ran past ``connect_timeout`` or a send
        stalled past ``send_timeout``: the try fails (a retry, or 502/504)."""
        if self._auth is not None and auth_owns(self, conn_id):
            return auth_failed(self, now, timed_out)
        up = self._upstream(conn_id)
        if up is None:
            return []
        self._try_failed(up, "timeout" if timed_out else "error", now)
        return self._flush()

    def upstream_data(self, conn_id: int, data: bytes, now: float) -> list[Action]:
        """Bytes read from the upstream connection ``conn_id``; an earlier try's ids are
        ignored."""
        if self._auth is not None and auth_owns(self, conn_id):
            return auth_data(self, data, now)
        if self._tunnel is not None:
            if conn_id == self._tunnel:
                if self._req is not None:
                    self._req.bytes_out += len(data)
                tunnel = self._up
                if tunnel is not None:
                    # ngx_http_upstream_process_upgraded: "if (from_upstream) {
                    # u->state->bytes_received += n; }" (not $upstream_response_length).
                    tunnel.tunnel_in += len(data)
                self._out.append(SendDownstream(data))
                self._set_timer(TimerKind.UPSTREAM_READ, self._read_timeout())
            return self._flush()
        up = self._upstream(conn_id)
        if up is None or up.h11 is None:
            return []  # an earlier try's connection, already closed: ignore its bytes
        up.received = True
        up.fed += len(data)
        up.h11.receive_data(data)
        self._pump_upstream(up, now)
        if not self.closed and self._up is up and self._tunnel is None:
            req = self._req
            if req is None or req.complete:
                if req is None or req.response_started:
                    self._set_timer(TimerKind.UPSTREAM_READ, self._read_timeout())
                # else the head is still incomplete (1xx heads included): the deadline armed
                # once the request was sent runs on, not re-armed by a read of the head
                # (ngx_http_upstream_process_header: "if (n == NGX_AGAIN) { #if 0
                # ngx_add_timer(rev, u->read_timeout); #endif"): a trickled head is a timeout.
            else:
                # The client still owes body bytes: its deadline (client_body_timeout, between
                # two reads from the client) stays as it is, not moved by the upstream's bytes;
                # a client that stalls mid-body gets its 408 and the upstream is not blamed (no
                # 504, no retry). nginx buffers the body before the upstream sees the request
                # (proxy_request_buffering on); with it off, its client_body_timeout still
                # runs on the client's read event while the upstream answers
                # (ngx_http_read_unbuffered_request_body). But once the upstream's response
                # head is in (the response has begun), it owes its next bytes within
                # proxy_read_timeout, "between two successive read operations", the request
                # body unfinished or not (ngx_http_upstream_process_non_buffered_request and
                # ngx_event_pipe re-arm p->read_timeout after each read): one that stalled
                # mid-response was never timed out while the client kept sending. Both
                # deadlines run then (``_set_request_timer``), the first to pass decides. A
                # partial head or a 1xx arms nothing (nginx's ngx_http_upstream_process_header
                # arms no timer until the request is sent whole: an upstream may send 103
                # Early Hints, then read a long upload). ``_on_request_complete`` hands the
                # wait to UPSTREAM_READ alone once the body is in.
                read_timeout = self._read_timeout()
                if req.response_started and read_timeout > 0:
                    was = up.read_by
                    read_by = up.read_by = now + read_timeout
                    body_by = self._body_by
                    if not (self._timer is TimerKind.BODY and body_by is not None
                            and read_by >= body_by and (was is None or was >= body_by)):
                        self._arm_body(now)  # else the client's deadline, armed, comes first
        return self._flush()

    def upstream_eof(self, conn_id: int, now: float) -> list[Action]:
        """The upstream connection ``conn_id`` closed or failed after its connect."""
        if self._auth is not None and auth_owns(self, conn_id):
            return auth_eof(self, now)
        if self._tunnel is not None:
            if conn_id == self._tunnel:
                self._close_all(now)
            return self._flush()
        up = self._upstream(conn_id)
        if up is None or up.h11 is None:
            if up is not None:
                self._try_failed(up, "error", now)
            return self._flush()
        if not up.received:
            # Closed before a single byte of response (a stale pooled connection, a crashed
            # upstream): nginx's "error" condition, not an invalid response.
            self._try_failed(up, "error", now)
            return self._flush()
        up.h11.receive_data(b"")
        self._pump_upstream(up, now, eof=True)
        return self._flush()

    def timer_expired(self, kind: TimerKind, now: float) -> list[Action]:
        """The timer of the last ``SetTimer(kind, seconds)`` ran out; a ``kind`` no longer
        armed (replaced or cancelled since) is ignored."""
        if self.closed or kind is not self._timer:
            return []
        self._timer = None
        if kind is TimerKind.IDLE:
            if self._busy:
                # A request head arrived complete while the idle timer was armed (see
                # ``receive_data``): the request is under way, not idle.
                return []
            self._close_downstream()
        elif kind is TimerKind.HEAD:
            if self._busy:
                return []
            if self._inbuf.strip(b"\r\n"):
                # "client_header_timeout": nginx closes with 408 logged; we also say it.
                self._error_response(408, None, now)
            elif self._inbuf:
                # Only empty lines: logged 408 as nginx, but not answered. The client thinks
                # the connection idle (a stray CRLF after a body): a 408 now could be read
                # as the answer to the request it is about to send.
                self._head_cut_short(now, 408)
            else:
                self._close_downstream()
        elif kind is TimerKind.UPSTREAM_READ:
            if self._tunnel is not None:
                self._close_all(now)
            elif self._auth is not None:
                auth_timed_out(self, now)  # the auth subrequest timed out: 500
            elif self._up is not None:
                self._try_failed(self._up, "timeout", now)
        elif kind is TimerKind.RATE:
            self._bw_timer(now)
        elif kind is TimerKind.BODY:
            req = self._req
            up = self._up
            if req is not None and not req.complete and not req.answered and up is not None \
                    and up.read_by is not None and (self._body_by is None
                                                    or up.read_by <= self._body_by):
                # The upstream's deadline (its response begun, then nothing from it for
                # proxy_read_timeout) came first: as UPSTREAM_READ's expiry, a close.
                self._try_failed(up, "timeout", now)
            elif req is not None and req.answered and not req.complete:
                # Discarding the body after a local answer: 5 s without a byte of it (or 30 s
                # in all). nginx's ngx_http_discarded_request_body_handler: "if
                # (rev->timedout) { c->timedout = 1; c->error = 1;
                # ngx_http_finalize_request(r, NGX_ERROR);" -- a plain close, the answer is out.
                self._emit_record(req, now)
                self._close_downstream(linger=False)
            elif req is not None and not req.complete and not req.done:
                if not self.reading_wanted:
                    # We are the ones holding the client back (its bytes wait for an upstream
                    # connect): its clock starts again when reading does; the connect has its
                    # own timeout.
                    self._set_request_timer(req, now)
                    return self._flush()
                # "client_body_timeout": the client stopped sending its body. Its fault, not
                # the upstream's: no failure observed, no retry; nginx answers 408.
                if req.response_started:
                    self._close_all(now, terminated=True)
                else:
                    self._close_upstream(False)
                    self._error_response(408, req, now)
        return self._flush()

    def offload_done(self, now: float) -> list[Action]:
        """The job of the last ``Offload`` returned (whatever its result): the request it held
        goes on (its basic-auth verdict is remembered now), unless it ended meanwhile (the
        client left, its body timed out...)."""
        parked = self._parked
        self._parked = None
        if parked is None or self.closed:
            return self._flush()
        req, resume = parked
        if self._req is req and not req.answered and not req.done:
            resume(now)
        return self._flush()

    def _offloaded(self, req: _Request, job: Callable[[], object] | None,
                   resume: Callable[[float], None]) -> bool:
        """True when ``job`` (a password hashing, ``access_job``) went to the driver as an
        ``Offload``, ``resume`` to run at ``offload_done``."""
        if job is None or req.offloads >= 2:
            # At most two per request (one per location's basic auth, ``also``): a verdict
            # that is not remembered (evicted meanwhile) is then hashed here.
            return False
        req.offloads += 1
        self._parked = (req, resume)
        self._out.append(Offload(job))
        return True

    def abort(self, now: float) -> list[Action]:
        """Close everything now (server shutdown, a stalled client): the upstream connections
        and the client's, with the request's record; no endpoint failure is observed."""
        if not self.closed:
            self._close_all(now, terminated=True)
        return self._flush()

    # ---------------------------------------------------------------- helpers
    _eof = False
    #: auth-url (proxy/_extauth.py): the subrequest under way (``AuthCall``); ``(request,
    #: headers)`` of a request the auth service let through; ``(request, Set-Cookie values,
    #: always)`` for the answers to a request.
    _auth: Any = None
    _auth_ok: Any = None
    _auth_cookie: Any = None
    #: ``(request, Authentication-Info value)`` of a verified digest response (proxy/_digest.py).
    _digest_info: tuple[_Request, bytes] | None = None
    #: The forwarded-for header name of ``_ff_settings`` and ``special_request_names`` of it.
    _ff_settings: ProxySettings | None = None
    _ff_name = b""
    _ff_special: frozenset[bytes] = frozenset()
    #: Bytes h11 held past the end of the current request (the next pipelined one's start).
    _tail = b""
    #: Set by ``_next_cycle`` when buffered bytes wait to be parsed as the next request.
    _parse_next: float | None = None
    #: ``(request, copy)``: a mirrored request whose body is still being read
    #: (proxy/_mirror.py, ``_begin_mirror``): its ``Mirror`` goes out at the request's end.
    _mirror: tuple[_Request, MirrorCopy] | None = None
    #: custom-http-errors: ``len(req.tried)`` when ``_error_page_req`` began (its first try).
    _error_page_at = 0

    def _flush(self) -> list[Action]:
        while self._parse_next is not None:
            now = self._parse_next
            self._parse_next = None
            if not self.closed and not self._busy:
                self._try_head(now)
        out = self._out
        self._out = []
        return out

    def _set_timer(self, kind: TimerKind | None, seconds: float | None) -> None:
        bw = self._bw
        if bw is not None and bw.delayed and (kind is TimerKind.UPSTREAM_READ
                                              or kind is TimerKind.BODY):
            # limit-rate holds the response back: RATE stays armed, and the request's timer
            # is armed again when the delay ends (``_bw_timer``).
            return
        if kind is None or seconds is None or seconds <= 0:
            if self._timer is not None:
                self._timer = None
                self._out.append(SetTimer(TimerKind.IDLE, None))
            return
        self._timer = kind
        if type(seconds) is not float:
            self._out.append(SetTimer(kind, seconds))
            return
        # Actions are immutable: one SetTimer per (kind, seconds) is shared (building one per
        # call cost a frozen dataclass's __init__ two or three times per request). Keyed by
        # the kind's value: an Enum's __hash__ is a Python call.
        key = (kind._value_, seconds)
        action = _SET_TIMERS.get(key)
        if action is None:
            if len(_SET_TIMERS) >= 256:  # seconds can be arbitrary (discarding a body)
                _SET_TIMERS.clear()
            action = _SET_TIMERS[key] = SetTimer(kind, seconds)
        self._out.append(action)

    #: While a request body arrives: when client_body_timeout runs out (None: no limit).
    _body_by: float | None = None

    def _set_request_timer(self, req: _Request, now: float) -> None:
        # While the client still owes body bytes, waiting is on the client (BODY); once the
        # request is sent whole, on the upstream (UPSTREAM_READ).
        if req.complete:
            self._set_timer(TimerKind.UPSTREAM_READ, self._read_timeout())
            return
        seconds = self.settings.client_body_timeout
        if not seconds > 0 and type(req.replay) is Buffered:
            # 0 ("no deadline", a keyword argument's: the ConfigMap refuses it) while a body
            # is held (proxy-request-buffering "on"): bounded (proxy/_request_buffer.py).
            seconds = UNARMED_BODY_TIMEOUT
        self._body_by = now + seconds if seconds > 0 else None
        up = self._up
        if up is None or up.read_by is None:
            self._set_timer(TimerKind.BODY, seconds)
            return
        self._arm_body(now)

    def _arm_body(self, now: float) -> None:
        """Arm BODY for the earlier of the client's body deadline (``_body_by``) and, once the
        upstream's response head is in, its read deadline (``_Upstream.read_by``)."""
        up = self._up
        read_by = up.read_by if up is not None else None
        if read_by is None:
            body_by = self._body_by
            self._set_timer(TimerKind.BODY, None if body_by is None else max(body_by - now,
                                                                              0.001))
            return
        # The upstream's response has begun (``upstream_data``): its deadline runs too, and
        # the one timer is armed for the earlier of the two (``timer_expired`` tells which).
        if read_by <= now and up is not None:
            # Passed unnoticed: the driver held the timer while the client was not read (its
            # response not taken, the upstreams not read meanwhile: that stall is the
            # client's, as for UPSTREAM_READ). The upstream's clock starts again.
            read_by = up.read_by = now + self._read_timeout()
        body_by = self._body_by
        due = read_by if body_by is None or read_by <= body_by else body_by
        self._set_timer(TimerKind.BODY, max(due - now, 0.001))

    def _read_timeout(self) -> float:
        req = self._req
        if req is not None and req.opts is not None:
            return req.opts.read_timeout
        return self.settings.proxy_read_timeout

    def _upstream(self, conn_id: int) -> _Upstream | None:
        up = self._up
        if up is not None and up.conn_id == conn_id:
            return up
        if conn_id > self._next_id or conn_id <= 0:
            raise LocalProxyError(f"unknown upstream connection id {conn_id}")
        return None  # a stale connection of an earlier try: ignore it

    def _close_downstream(self, linger: bool | None = None) -> None:
        if not self.closed:
            self.closed = True
            self._timer = None
            drop_copy(self._mirror)  # (proxy/_mirror.py: its bytes are let go)
            self._mirror = None
            req = self._req
            if req is not None and (type(req.replay) is Buffered
                                    or type(req.unsent) is HeldBody):
                release_buffered(req)  # (proxy/_request_buffer.py: its budget given back)
            if linger is None:
                # A request whose body was not read to its end: the client may still be
                # sending. A head answered at once (a local 404/503/redirect) leaves its
                # request incomplete here although nothing is left to read: its body (none,
                # or all of it) is buffered already, and nginx lingers only when input is left
                # (ngx_http_finalize_connection: "r->lingering_close || r->header_in->pos <
                # r->header_in->last || r->connection->read->ready || r->connection->pipeline").
                # Only over TLS, though: there a lingering close holds a client that reads
                # to EOF for up to 5 s (asyncio cannot half-close TLS: the server's _close),
                # while on plain TCP it sends its FIN first and costs the client nothing, and
                # it keeps a reset from overtaking the answer when bytes the core dropped
                # unread are followed by more (plain HTTP on the TLS port, pipelined).
                linger = req is not None and not req.complete and not self._eof \
                    and (not self.tls or self._input_left())
            self._out.append(CloseDownstream(linger))

    def _input_left(self) -> bool:
        """False when the request's Content-Length body is buffered to its last byte and no
        byte follows it (nothing more for a lingering close to wait for), else True."""
        h = self._h11
        body = h._body
        if type(body) is not ContentLengthReader:
            return True  # no head parsed yet, or a chunked body: may still be coming
        return body._remaining != len(h._buf._data) + len(self._inbuf)

    def _close_upstream(self, reuse: bool) -> None:
        if self._auth is not None:
            auth_drop(self)
        up = self._up
        if up is not None:
            self._up = None
            self._out.append(CloseUpstream(up.conn_id, reuse))

    def _close_all(self, now: float, client_gone: bool = False,
                   terminated: bool = False) -> None:
        """Close both sides, with the request's record. ``client_gone`` (the client closed)
        and ``terminated`` (the client timed out, an abort) end it as nginx's
        ngx_http_terminate_request: not complete (``RequestRecord.request_complete``), unless
        a local answer is out whole (its body being discarded); other callers end a response
        cut short, which nginx finalizes as complete."""
        req = self._req
        self._gz = None  # (an aborted response's gzip stream: its zlib state freed now)
        self._close_upstream(False)
        if req is not None and not req.done:
            if (client_gone or terminated) and not req.answered:
                # (A local answer is out whole, its body being discarded: nginx set
                # r->request_complete in ngx_http_finalize_request before
                # ngx_http_finalize_connection went on discarding, and nothing unsets it.)
                req.terminated = True
            if client_gone and not req.status:
                # Logged, never sent. A client that still owed request body bytes is nginx's
                # 400: its body reader (ngx_http_do_read_client_request_body, buffered or not)
                # on recv() == 0: "client prematurely closed connection" ... "c->error = 1;
                # return NGX_HTTP_BAD_REQUEST;", and ngx_http_terminate_request logs that rc
                # when nothing was sent. Once the request is read, nginx's 499 "client closed
                # request" (ngx_http_upstream_check_broken_connection).
                req.status = 400 if not req.complete and self._input_left() else 499
            self._emit_record(req, now)
        self._close_downstream()

    # ---------------------------------------------------------------- client side
    def _try_head(self, now: float) -> None:
        """Parse the next request head out of ``_inbuf`` if it is complete."""
        buf = self._inbuf
        # RFC 9112 §2.2: "a server that is expecting to receive and parse a request-line
        # SHOULD ignore at least one empty line (CRLF) received prior to the request-line";
        # nginx's ngx_http_parse_request_line skips CR and LF in sw_start. But nginx created
        # the request at the first byte read, whatever it was (ngx_http_wait_request_handler,
        # ngx_http_keepalive_handler, ngx_http_set_keepalive's pipelined branch): a client
        # that sent nothing but empty lines has a request, logged 400 when it closes and 408
        # when client_header_timeout runs out. So the last empty line stays in ``_inbuf``
        # while nothing follows it: the head has begun (its timer, ``_head_cut_short``, the
        # HEAD expiry's 408, not ``idle``), and a flood of them holds two bytes (nginx resets
        # a buffer full of them: ngx_http_alloc_large_header_buffer, "the client fills up the
        # buffer with "\r\n"").
        while buf[:2] == b"\r\n":
            if len(buf) == 2:
                self._head_pending(now)
                return
            del buf[:2]
        if not buf:
            return
        end = buf.find(b"\r\n\r\n")
        try:
            if end < 0:
                check_partial_head(buf, self.settings)
                if buf.find(b"\n\n") >= 0 or buf.find(b"\n\r\n") >= 0:
                    raise RemoteProxyError("bare LF in request head", 400)
                self._head_pending(now)
                return
            end += 4
            head = bytes(buf[:end])
            check_raw_head(head, self.settings)
        except RemoteProxyError as e:
            self._error_response(e.status_hint, None, now)
            return
        self._busy = True
        self._feeding = True
        req = self._req = _Request(self._head_started if self._head_started is not None else now)
        req.client_ip = self.peer_ip
        req.bytes_in = end
        req.raw_head = head
        # Only the head goes to h11 now; the body is fed from ``_inbuf`` as h11 asks for it,
        # in bounded slices, so that bytes of later pipelined requests are not copied back and
        # forth once per request (quadratic work for the client's price of one packet).
        self._h11.receive_data(head)
        del buf[:end]
        self._pump_client(now)

    def _head_pending(self, now: float) -> None:
        """A request head begun in ``_inbuf`` (a partial head, or empty lines only) is not
        complete: its deadline, or its end when the client already half-closed."""
        if self._eof:
            # The client half-closed (its EOF came while the response before this head was
            # going out, proxy_ignore_client_abort): this head will never complete.
            self._head_cut_short(now)
        elif self._timer is TimerKind.IDLE:
            # "client_header_timeout": from the first byte of the head, absolute (armed in
            # the same call as that first byte: ``now`` is its time). nginx's keep-alive
            # handler deletes the keep-alive timer at that byte ("ngx_del_timer(rev);") and
            # ngx_http_read_request_header arms client_header_timeout; a fresh connection's
            # HEAD timer runs from the accept (ngx_http_init_connection's).
            self._set_timer(TimerKind.HEAD, self.settings.client_header_timeout)

    def _pump_client(self, now: float) -> None:
        conn = self._h11
        # Consecutive body events are handed on together (one SendUpstream, one timer, one
        # replay append): a chunked body of 1-byte chunks is one h11 event per chunk, and
        # passing each on alone cost an action, a write system call and a timer per 6 bytes
        # of the client's.
        body: list[bytes] = []
        body_len = 0
        while not self.closed:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as e:
                if body and not self._flush_body(body, now):
                    return
                status = e.error_status_hint
                # h11 says 501 for an unsupported Transfer-Encoding ("chunked, identity"): for
                # a proxy that is an ambiguous framing attempt, so 400 like the rest.
                self._error_response(status if status in (400, 413, 414, 431) else 400,
                                     self._req, now)
                return
            t = type(event)
            if t is h11.Data:
                data = event.data
                if data:
                    body.append(data)
                    body_len += len(data)
                    if body_len >= _FEED_SLICE:
                        body_len = 0
                        if not self._flush_body(body, now):
                            return
                continue
            if body:
                body_len = 0
                if not self._flush_body(body, now):
                    return
            req = self._req
            if t is h11.Request:
                assert req is not None
                self._can_respond = True
                # h11's keep-alive rule: HTTP/1.0, or "close" listed in a Connection header,
                # means this response is the last (the reader decided it for this head).
                req.keep_alive = conn.keep_alive
                self._on_request(req, event, now)
                if type(conn._body) is _RequestChunkedReader:  # (tested inline: every request)
                    self._limit_chunked_body(req)
            elif t is h11.EndOfMessage:
                assert req is not None
                # Anything h11 holds past the request belongs to the next (pipelined)
                # request; ``_next_cycle`` moves it back in front of ``_inbuf`` so that it goes
                # through the raw head checks too.
                self._feeding = False
                req.complete = True
                tail = conn.trailing_data[0]
                if tail:
                    req.bytes_in -= len(tail)
                self._tail = tail
                self._on_request_complete(req, now)
                return
            elif t is h11.ConnectionClosed:
                self._feeding = False
                if req is not None and not req.done:
                    self._close_all(now, client_gone=True)
                else:
                    self._close_downstream()
                return
            elif event is h11.NEED_DATA and self._feeding and self._inbuf:
                buf = self._inbuf
                chunk = bytes(buf[:_FEED_SLICE])
                del buf[:_FEED_SLICE]
                if req is not None:
                    req.bytes_in += len(chunk)
                conn.receive_data(chunk)
            else:  # NEED_DATA or PAUSED
                return

    def _client_cert_refused(self, req: _Request, now: float) -> bool:
        """Client certificate authentication (``auth-tls-*``) of the request's server, as
        nginx's ``ngx_http_process_request`` and the server block's match-cn ``if`` refuse,
        before any location (proxy/_clientcert.py ``refusal``). True if answered; else the
        request's ``ssl-client-*`` headers are noted for its upstream head."""
        client_auth = self.proxy.client_auth
        auth = client_auth(req.host) if client_auth is not None and req.host else None
        if auth is None:
            return False
        refused = client_cert_refusal(auth, self.client_cert, self.tls, req.path)
        if refused is None:
            self._cert_auth = (req, auth)
            return False
        status, text, location = refused
        s = self.settings
        if (status == 403 or status == 503) and (s.block_user_agents or s.block_referers) \
                and req.event is not None and blocked_request(s, req.event.headers._full_items):
            # match-cn's "if" and an auth-tls error's "return 403" are in nginx.tmpl's SERVER
            # template, after the server block's "if ($block_ua) { return 403; }": the block
            # answers, not "client certificate unauthorized". (The 400s, 421 and the error
            # page's 302 come before, from ngx_http_process_request.)
            req.phase = "server"
            self._local_response(req, 403, now)
            return True
        req.phase = "server"
        # nginx's 495/496 (and their error_page) end the keep-alive
        # (ngx_http_special_response_handler: "case NGX_HTTPS_CERT_ERROR: case
        # NGX_HTTPS_NO_CERT: ... r->keepalive = 0"); its 421 and match-cn's 403 do not.
        self._local_response(req, status, now,
                             None if location is None else [(b"location", location)],
                             close=status in (400, 302), body=b"%d %s\n" % (status, text))
        return True

    def _limit_chunked_body(self, req: _Request) -> None:
        """Hand a chunked request body's limit to its reader, which refuses (413) a chunk line
        announcing more than the limit leaves, as nginx's chunked body filter does
        (``_chunked._check_body_limit``): the routed location's ``proxy-body-size``, or the
        server's for a request no rule routes whose body is read (``_defer_unrouted``); none
        for a body discarded after a local answer (nginx's discarding reader checks no
        limit). Called when the request was routed and when it is answered locally."""
        body = self._h11._body
        if type(body) is _RequestChunkedReader:
            opts = req.opts
            body.limit = 0 if req.answered else (
                req.defer_limit or (opts.body_size if opts is not None else 0))

    def _flush_body(self, body: list[bytes], now: float) -> bool:
        """Hand the body bytes gathered by ``_pump_client`` on; False once closed."""
        req = self._req
        assert req is not None
        data = b"".join(body) if len(body) > 1 else body[0]
        body.clear()
        self._on_body(req, data, now)
        return not self.closed

    def _reset_server_h11(self) -> None:
        self._h11.reset()

    def _on_request(self, req: _Request, event: h11.Request, now: float) -> None:
        try:
            self._parse_request(req, event)
        except (RemoteProxyError, BadRequestError) as e:
            self._error_response(e.status_hint, req, now)
            return
        if req.status:  # answered locally (OPTIONS *)
            return
        if self._refuse is not None:
            self._refuse_request(req, now)
            return
        if self.proxy.client_auth is not None and self._client_cert_refused(req, now):
            return
        s = self.settings
        if (s.block_user_agents or s.block_referers) \
                and blocked_request(s, event.headers._full_items):
            # block-user-agents / block-referers: the server block's "if ($block_ua) { return
            # 403; }", before any location (proxy/_block.py).
            req.phase = "server"
            self._local_response(req, 403, now)
            return
        try:
            proxy = self.proxy
            router = proxy.router
            # ``_www_twin_hosts`` inlined (every request): the set of the current table.
            twins = proxy._twin_hosts
            if getattr(router, "table", None) is not proxy._twin_hosts_table:
                twins = proxy._www_twin_hosts()
            if twins and req.host in twins:
                # A www twin's own server answers it (``_www_twin_hosts``): not routed.
                decision = None
            else:
                if router is not proxy._query_router:
                    proxy._note_router(router)
                if proxy._route_query:
                    # ``$request_uri``/``$args``/``$arg_*`` of upstream-hash-by read the query.
                    decision = router.route(req.method_s, req.host_raw, req.path,
                                            event.headers, req.client_ip, query=req.query)
                else:  # a router written to CONTRACT.md's route, without ``query=``
                    decision = router.route(req.method_s, req.host_raw, req.path,
                                            event.headers, req.client_ip)
        except BadRequestError as e:
            self._error_response(e.status_hint, req, now)
            return
        # From here a location answers (the rule's, or the server's "location /" of the
        # default backend): its upstream name is logged.
        req.phase = "location"
        if decision is None:
            server = self.proxy._unrouted_options(req.host) if req.host else None
            # The server's ``location /`` answers: its CORS, custom-headers and rate limits
            # (proxy/_actions.py ``unrouted_location``).
            self._server_location = None if server is None else (req, server)
            if not self._redirect_unrouted(req, event, now) \
                    and not self._limit_unrouted(req, event, server, now):
                self._answer_unrouted(req, event, now)
            return
        req.decision = decision
        opts = req.opts = self.proxy.options_for(decision.match)
        # (Tested inline first: a plain request pays no call for it.)
        if (opts.auth_tls or opts.proxy_ssl is not None) and self._tls_denied(req, opts):
            self._local_response(req, 503, now)
            return
        access = opts.access
        if access is not None and denied_first(opts, req.path):
            self._local_response(req, 503, now)
            return
        length = req.length
        if opts.body_size and length is not None and length > opts.body_size \
                and body_too_large(opts, req.path, length):
            # A declared length over proxy-body-size: nginx's find_config phase, before the
            # location's redirects and access control (``body_too_large``).
            req.phase = "server"
            self._error_response(413, req, now)
            return
        # Redirects come before the endpoint (ingress-nginx does them in the rewrite
        # phases, before proxying). The scheme is $pass_access_scheme: a trusted hop's
        # X-Forwarded-Proto with use-forwarded-headers (TLS offloaded in front), else ours
        # (https for a PROXY protocol destination port 443).
        scheme = self.pass_scheme
        port = self.proxy.https_port
        if self._peer_trusted and self.settings.use_forwarded_headers:
            scheme, port = self._forwarded_scheme(event)
        # The decision is ``redirect_for`` (shared with the ASGI adapter). Only the TLS lookup
        # is done here, and the call only made when a redirect is possible at all: this runs
        # for every proxied request, which mostly has neither force-ssl-redirect, app-root nor
        # (over http) a TLS host.
        if opts.cors is not None and req.method_s == "OPTIONS" \
                and not (req.path == "/" and opts.app_root is not None) \
                and self._cors_headers(req) is not None:
            # A CORS preflight: nginx.tmpl's "if ($cors = "trueoptions") { ... return 204; }",
            # the location's rewrite phase, before its redirects and access control
            # (proxy/_cors.py); the headers are added by ``_add_response_headers``.
            self._local_response(req, PREFLIGHT_STATUS, now, body=b"")
            return
        has_tls = scheme == "http" and opts.ssl_redirect and bool(req.host) \
            and self.proxy.tls_host(req.host)
        if has_tls or opts.force_ssl_redirect or opts.redirects:
            redirect = self._routed_redirect(req, event, opts, scheme, port, has_tls,
                                             getattr(decision.match, "host", None))
            if redirect is not None:
                if req.path == "/" and opts.app_root is not None:
                    # app-root: nginx.tmpl's server-level "if ($uri = /) { return 302 ...",
                    # before any location.
                    req.phase = "server"
                self._local_response(req, redirect[0], now, [(b"location", redirect[1])])
                return
        glimit = opts.global_rate_limit
        if glimit is not None and self._global_limit(req, event, glimit, now):
            return
        if opts.rate_limit is not None and self._preaccess_limits(req, opts.rate_limit, now):
            return
        self._access_phase(req, event, now)

    def _global_limit(self, req: _Request, event: h11.Request, limit: GlobalRateLimit,
                      now: float) -> bool:
        """global-rate-limit (global_throttle.lua, from lua_ingress.rewrite: the end of the
        location's rewrite phase): after its redirects, before limit_req / limit_conn. True
        if refused (answered), logged ($global_rate_limit_exceeding "y" or "c")."""
        exceeding = self.proxy.global_rate_limits.verdict(
            limit, now, req.method_s, req.host_raw, req.path, req.query, event.headers,
            req.client_ip)
        if exceeding == NOT_EXCEEDING:
            return False
        req.rate_log = (None, None, exceeding)
        self._local_response(req, self.proxy.settings.global_rate_limit_status_code, now)
        return True

    def _preaccess_limits(self, req: _Request, limit: RateLimit, now: float) -> bool:
        """nginx's preaccess phase (limit_req, then limit_conn) of a request's location:
        after its redirects, before allow/deny and basic auth (proxy/_ratelimit.py). True if
        refused (answered). What it decided is logged ($limit_req_status,
        $limit_conn_status: ``RequestRecord.rate_limit_log``)."""
        settings = self.proxy.settings  # the current ConfigMap's statuses
        status, held, req_state, conn_state = self.proxy.rate_limits.admit(
            limit, req.client_ip, now, settings.limit_req_status_code,
            settings.limit_conn_status_code)
        if req_state is not None or conn_state is not None:
            req.rate_log = (req_state, conn_state, None)
        if status:
            self._local_response(req, status, now)
            return True
        if held is not None:
            self._limit_held = (req, held)
        return False

    @staticmethod
    def _origin(event: h11.Request) -> str | None:
        """The request's ``Origin`` as ``_cors_headers`` reads it."""
        origin = http_header(event.headers._full_items, b"origin")
        return None if origin is None else origin.decode("latin-1")

    def _limit_unrouted(self, req: _Request, event: h11.Request, server: RouteOptions | None,
                        now: float) -> bool:
        """The rate limits of an unrouted request's server ``location /`` (the host's oldest
        Ingress's ``global-rate-limit*`` and ``limit-*``: ``locationApplyAnnotations``
        "loc.GlobalRateLimit = anns.GlobalRateLimit", "loc.RateLimit = anns.RateLimit"), as a
        routed request's: after the location's redirects, before its access control, the same
        counters and zones as that Ingress's rules. True if refused (answered). False for a
        location denied for its proxy-ssl-secret: its "return 503" comes first."""
        if server is not None and proxy_ssl_denied(server):
            return False
        glimit = unrouted_global_limit(server)
        if glimit is not None and self._global_limit(req, event, glimit, now):
            return True
        limit = unrouted_limit(server)
        return limit is not None and self._preaccess_limits(req, limit, now)

    def _answer_unrouted(self, req: _Request, event: h11.Request, now: float) -> None:
        """The default backend's answer to an unrouted request, after its server's access
        control (``Proxy._unrouted_status``)."""
        def authorization() -> bytes | None:
            return http_header(event.headers._full_items, b"authorization")
        if self._offload and self._offloaded(
                req, access_job(self.proxy._unrouted_access(req.host), req.client_ip,
                                authorization),
                lambda later: self._answer_unrouted(req, event, later)):
            return
        status, challenge = self.proxy._unrouted_status(
            req.host, req.client_ip, authorization, lambda: _digest_request(req, now),
            upstream_tls=True)
        if not status and challenge is not None:
            # A verified digest response's Authentication-Info (proxy/_digest.py).
            self._digest_info, challenge = (req, challenge), None
        if not status and self._defer_unrouted(req):
            return
        self._local_response(req, status or 404, now, None if challenge is None
                             else [(b"www-authenticate", challenge)])

    def _access_phase(self, req: _Request, event: h11.Request, now: float) -> None:
        """A routed request from nginx's access phase on: allow/deny and basic auth, then
        the upstream (or the 503 of a route without endpoint)."""
        decision = req.decision
        opts = req.opts
        assert decision is not None and opts is not None
        access = opts.access
        ask = opts.ext_auth is not None
        prior: tuple[int, bytes | None] | None = None
        if access is not None and (self._auth_ok is None or self._auth_ok[0] is not req):
            # (Not again once the auth service let ``req`` in (_extauth.py ``_finish``): nginx
            # runs its access phase once; a digest response's ``nc`` would be a replay.)
            # nginx's access phase (allow/deny, then auth_basic) follows the rewrite phase
            # (every redirect above): a refused client is redirected first, then refused.
            def authorization() -> bytes | None:
                return http_header(event.headers._full_items, b"authorization")
            if self._offload and self._offloaded(
                    req, access_job(access, req.client_ip, authorization),
                    lambda later: self._access_phase(req, event, later)):
                # The password is hashed off the loop (``Offload``): the request waits for
                # ``offload_done``; its body bytes are held meanwhile as before a connect.
                return
            if access.any is None:
                status, challenge = access_answer(access, req.client_ip, authorization,
                                                  lambda: _digest_request(req, now))
            else:
                # satisfy: any (proxy/_satisfy.py): a check that lets the request in skips the
                # auth subrequest; a refusal is answered unless the auth service lets it in.
                status, challenge, ask = any_access(access, req.client_ip, authorization, ask,
                                                    lambda: _digest_request(req, now))
            if not status and challenge is not None:
                # A verified digest response's Authentication-Info (proxy/_digest.py): on
                # every answer to ``req`` (``_add_response_headers``).
                self._digest_info = (req, challenge)
            if status and not (ask and access.any is not None):
                self._local_response(req, status, now, None if challenge is None
                                     else [(b"www-authenticate", challenge)])
                return
            if status:
                prior = (status, challenge)
        if ask and auth_start(self, req, event, now, prior):
            return  # auth_request: the auth service answers first (proxy/_extauth.py)
        if prior is not None and (self._auth_ok is None or self._auth_ok[0] is not req):
            # satisfy any, no auth subrequest on this path (no-auth-locations): the refusal.
            self._local_response(req, prior[0], now, None if prior[1] is None
                                 else [(b"www-authenticate", prior[1])])
            return
        if decision.endpoint is None:
            self._local_response(req, 503, now)
            return
        if req.continue_pending:
            # We answer "100 Continue" ourselves once the request is acceptable (route found,
            # size allowed): the client's body then streams to the chosen upstream.
            req.continue_pending = False
            data = _CONTINUE
            if data:
                req.head_len += len(data)
                req.bytes_out += len(data)
                self._out.append(SendDownstream(data))
        try:
            self._build_upstream_headers(req, event)
            if opts.ext_auth is not None:
                if self._auth_ok is not None and self._auth_ok[0] is req:
                    auth_upstream_head(self, req)  # the auth-response-headers
                else:
                    # Let in without the auth subrequest (satisfy any): the client's
                    # auth-response-headers dropped all the same (proxy/_auth_unasked.py).
                    req.up_head = unasked_head(req.up_head, opts.ext_auth, decision.match)
        except TimeoutError:
            # The rule's rewrite-target regex ran past REWRITE_TIMEOUT on this path: nginx's
            # PCRE stops at its match limit and fails the request ("ngx_regex_exec() failed",
            # 500) rather than holding the worker.
            self.proxy.logger.error("rewrite-target regex of Ingress %s timed out on %r; 500",
                                    getattr(decision.match, "ingress", None), req.path[:200])
            self._local_response(req, 500, now)
            return
        if req.up_chunked and opts.http_version == "1.0" and not req.upgrade \
                and not opts.request_buffering:
            # proxy-http-version "1.0" and a chunked request body: HTTP/1.0 has no chunked
            # coding, and nginx buffers the whole body to send its length ("the request body
            # will be buffered regardless of the directive value unless HTTP/1.1 is enabled
            # for proxying"); ingresslib streams bodies and holds none: 411 Length Required
            # (README's divergences).
            self._local_response(req, 411, now)
            return
        if opts.mirror is not None:
            self._begin_mirror(req, opts)
        # The session cookie goes with the proxied response only: ingress-nginx sets it in
        # sticky.lua's balance(), the balancer phase, which a denied location, a redirect,
        # the source ranges' 403, basic authentication's 401 or a 413 never reach.
        req.set_cookie = getattr(decision, "set_cookie", None)
        if opts.request_buffering and start_buffering(self, req, now):
            # proxy-request-buffering "on" (proxy/_request_buffer.py): the upstream is opened
            # once the body is in (``_on_request_complete``); client_body_timeout meanwhile
            # (or a 503/413: the Proxy's buffering budget, the cap).
            return
        self._open(req, decision.endpoint, now)

    def _begin_mirror(self, req: _Request, opts: RouteOptions) -> None:
        """``mirror-target`` (proxy/_mirror.py): nginx's mirror handler, the precontent phase
        (after the redirects, rate limits and access control), once per request. Its
        ``Mirror`` goes out now, or at the request's end when the body goes too."""
        assert opts.mirror is not None
        m = begin_mirror(opts.mirror, req.up_head, req.original_uri, req.upstream_target,
                         (opts.connect_timeout, opts.send_timeout, opts.read_timeout),
                         opts.body_size, req.length is not None or req.up_chunked,
                         req.unsent, req.complete, budget_of(self.proxy),
                         mirror_tls(opts) if opts.mirror.tls else None)
        if isinstance(m, MirrorCopy):
            self._mirror = (req, m)
        elif m is not None:
            self._out.append(m)

    def _defer_unrouted(self, req: _Request) -> bool:
        """For a request no rule routes that the default backend would answer (404): True
        when its body is chunked and the server has a body limit, so that the body is read
        first and the answer given at its end, a 413 once a chunk line announces more than
        the limit leaves (``_limit_chunked_body``), else the 404 (``_on_request_complete``).

        ingress-nginx proxies such a request to the default backend from the server's
        ``location /``, whose ``client_max_body_size`` is the server owner's proxy-body-size
        (the default server's: the settings', as ``Proxy._unrouted_answer`` takes it for the
        413 of a Content-Length). nginx reads the body before proxying (proxy_request_buffering
        on) and its chunked body filter refuses one past the limit
        (ngx_http_request_body_chunked_filter: "if (clcf->client_max_body_size &&
        clcf->client_max_body_size - r->headers_in.content_length_n < rb->chunked->size) {
        ... "client intended to send too large chunked body" ... return
        NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;"). Answering the 404 at once and discarding the
        body sent no 413 at all. The body is counted, never held; "100 Continue" goes out as
        nginx sends it when it starts reading a body (ngx_http_test_expect); the wait between
        two reads is client_body_timeout (408). A Content-Length body needs none of this: its
        413 is decided on the head (``_redirect_unrouted``), its 404 sent at once."""
        if type(self._h11._body) is not _RequestChunkedReader:
            return False
        proxy = self.proxy
        opts = proxy._unrouted_options(req.host) if req.host else None
        limit = (opts if opts is not None else proxy._default_options).body_size
        if not limit:
            return False
        req.defer_limit = limit
        if req.continue_pending:
            req.continue_pending = False
            req.head_len += len(_CONTINUE)
            req.bytes_out += len(_CONTINUE)
            self._out.append(SendDownstream(_CONTINUE))
        self._set_timer(TimerKind.BODY, self.settings.client_body_timeout)
        return True

    def _refuse_request(self, req: _Request, now: float) -> None:
        """Answer ``req`` with ``refuse_requests`` and close: its body is never read (the
        connection ends after the answer, as nginx's keep-alive off does)."""
        assert self._refuse is not None
        status, body = self._refuse
        self._feeding = False
        self._inbuf.clear()
        self._local_response(req, status, now, close=True, body=body)

    def _forwarded_scheme(self, event: h11.Request) -> tuple[str, int]:
        """$pass_access_scheme and the https port of a redirect, from a trusted hop's
        X-Forwarded-Proto (the caller checks ``_peer_trusted`` and use-forwarded-headers)."""
        if self.proxy_protocol_port == 443:
            # lua_ingress.lua rewrite() reads the PROXY protocol's port after the header:
            # https whatever the hop's X-Forwarded-Proto says.
            return "https", self.proxy.https_port
        # nginx's $http_x_forwarded_proto: repeated lines joined by ", ".
        forwarded = http_header(event.headers._full_items, b"x-forwarded-proto")
        if forwarded is not None:
            # Sent empty, it is still set: $pass_access_scheme is "" (``redirect_scheme``),
            # which no ssl-redirect follows (lua_ingress.lua redirect_to_https() wants "http").
            # The client spoke to the hop in front, whose https port is not ours:
            # lua_ingress.lua writes "https://%s%s" (no port) unless use-port-in-redirects.
            return redirect_scheme(self.scheme, forwarded), 443
        return self.scheme, self.proxy.https_port

    def _routed_redirect(self, req: _Request, event: h11.Request, opts: RouteOptions,
                         scheme: str, port: int, has_tls: bool,
                         rule_host: str | None) -> tuple[int, bytes] | None:
        """The redirect of a routed request: ``redirect_for`` decides (its order: app-root,
        the location's redirects, then ssl-redirect / force-ssl-redirect) on the canonical
        path and the Host; an ssl-redirect's Location is written as ingress-nginx writes it
        (``_location_host``), app-root keeps ``$http_host`` and the canonical path (nginx.tmpl's
        "if ($uri = /) { return 302 $scheme://$http_host...")."""
        location_host = target = None
        if scheme == "http" and (has_tls or opts.force_ssl_redirect):
            location_host = self._location_host(event)
            target = split_target(req.original_uri)
        elif opts.rewrite_is_redirect:
            # a rewrite-target URL's captures are escaped by the raw path (location_redirect)
            target = split_target(req.original_uri)
        if opts.port_in_redirects:
            # use-port-in-redirects: lua_ingress.lua's config.listen_ports.https, ours, also
            # when a trusted hop's X-Forwarded-Proto decided (``_forwarded_scheme``).
            port = self.proxy.https_port
        return redirect_for(opts, scheme, req.host_raw, req.host, req.path, req.query,
                            has_tls, port, self.settings.http_redirect_code,
                            rule_host=rule_host, server_scheme=self.scheme,
                            location_host=location_host, target=target)

    def _location_host(self, event: h11.Request) -> str | None:
        """``location_host`` of ``https_redirect`` (its ``target`` is
        ``split_target(req.original_uri)``): the host of an ssl-redirect's Location, routed or
        not (lua_ingress.lua runs in every location, the server's own ``location /``
        included).

        That Location is lua_ingress.lua's ``string_format("https://%s%s", redirect_host(),
        request_uri)``: ``request_uri`` is ``ngx.var.request_uri``, the target as the client
        sent it (``/a/../b`` stays ``/a/../b``; the host is ours, so even ``//x/y`` is a path
        on it; an absolute-form target's path and query), and ``redirect_host()`` is
        ``best_http_host`` without its port, which with use_forwarded_headers is the first
        X-Forwarded-Host ("if ngx.var.http_x_forwarded_host then ngx.var.best_http_host =
        parse_x_forwarded_host() end"): here only from a trusted peer, and only a valid host
        (else the Host header's host), as sent: its case kept (``location_host_of``); None
        without a Host header (nginx's $host). Whether to redirect stays on the Host
        (certificate.lua ``configured_for_current_request`` looks up ``ngx.var.host``) and
        on the canonical path (the ACME exemption)."""
        location_host = None
        if self._peer_trusted and self.settings.use_forwarded_headers:
            forwarded = http_header(event.headers._full_items, b"x-forwarded-host")
            if forwarded and forwarded_redirect_host(forwarded) is not None:
                location_host = location_host_of(first_forwarded_host(forwarded))
        if location_host is None:
            # best_http_host = $http_host: the Host header as sent, its case kept
            # (``location_host_of``); without one, nginx's $host (the normalised host).
            host = http_header(event.headers._full_items, b"host")
            if host:
                location_host = location_host_of(host)
        return location_host

    def _redirect_unrouted(self, req: _Request, event: h11.Request, now: float) -> bool:
        """A request for a host whose path no rule covers: the server-wide redirects and the
        413 of a Content-Length (``Proxy._unrouted_answer``, as the ASGI adapter asks it),
        the ssl-redirect's Location as a routed request's (``_location_host``), and
        ``req.phase`` where nginx answers. True if answered."""
        length = req.length
        if not req.host:
            # No server to look at: the default server's 413 only.
            answer = self.proxy._unrouted_answer("", self.scheme, req.path, req.query, 0,
                                                 length=length)
        else:
            scheme, port = self.pass_scheme, self.proxy.https_port
            if self._peer_trusted and self.settings.use_forwarded_headers:
                scheme, port = self._forwarded_scheme(event)
            # The raw target for the www twin's Location (any scheme) and the ssl-redirect's;
            # the forwarded host only matters for an ssl-redirect (plain http).
            target = split_target(req.original_uri)
            location_host = self._location_host(event) if scheme == "http" else None
            # host_raw and $scheme: the host's server-level app-root answers "/" here too.
            answer = self.proxy._unrouted_answer(req.host, scheme, req.path, req.query, port,
                                                 host_raw=req.host_raw,
                                                 server_scheme=self.scheme,
                                                 location_host=location_host, target=target,
                                                 length=length, method=req.method_s,
                                                 origin=self._origin(event), upstream_tls=True)
        if answer is None:
            return False
        # Where nginx answers it: the www twin's own server (no upstream name), the server
        # block's app-root or 413 ("-") or the server's ``location /`` (the default backend's).
        req.phase, status, location = answer
        if location is None:  # the 413 of a Content-Length, as a routed request's
            self._error_response(status, req, now)
        elif status == PREFLIGHT_STATUS:  # the server location's CORS preflight
            self._local_response(req, status, now, body=b"")
        else:
            self._local_response(req, status, now, [(b"location", location)])
        return True

    def _parse_request(self, req: _Request, event: h11.Request) -> None:
        """The checks h11 does not make, and the canonical target."""
        version = event.http_version
        req.event = event  # the request line as received, for the record (also if refused)
        if version != b"1.1" and version != b"1.0":
            raise RemoteProxyError("unsupported HTTP version", 400)
        req.http_version = "1.1" if version == b"1.1" else "1.0"
        method = event.method
        req.method = method
        req.method_s = method.decode("ascii")
        req.idempotent = method in IDEMPOTENT
        if method not in NGINX_METHODS and method.translate(None, METHOD_CHARS):
            # nginx's request-line parser: only A-Z, '_' and '-' (``get`` is not GET).
            raise RemoteProxyError("invalid method", 400)
        host_raw: bytes | None = None
        has_te = has_cl = False
        connection_tokens: list[bytes] = []
        upgrade = False
        unique: list[bytes] | None = None
        for _, name, value in event.headers._full_items:
            if name not in _READ_NAMES:
                continue  # most headers: nothing to read or check here (one set lookup)
            if name in _UNIQUE_CHECKED:
                # nginx's ngx_http_process_unique_header_line (``UNIQUE_REQUEST``): a second
                # line is 400, the connection closed; nothing reaches a backend.
                unique = note_read_once(unique, name)
            if name == b"host":
                if host_raw is not None:
                    raise RemoteProxyError("duplicate Host", 400)
                host_raw = value
            elif name == b"transfer-encoding":
                has_te = True
            elif name == b"content-length":
                has_cl = True
                req.length = int(value)
                # nginx refuses a length its off_t cannot hold ("client sent invalid
                # "Content-Length" header", 400), whatever client_max_body_size says: a backend
                # parsing it into 64 bits would read another length than the one forwarded.
                if req.length > MAX_CONTENT_LENGTH:
                    raise RemoteProxyError("Content-Length out of range", 400)
            elif name == b"connection":
                connection_tokens.extend(t.strip().lower() for t in value.split(b","))
            elif name == b"upgrade":
                upgrade = True
            elif name == b"expect":
                if value.lower() == b"100-continue" and version == b"1.1":
                    req.continue_pending = True
            elif name == b"user-agent":
                # nginx >= 1.23 keeps every line of a header (ngx_http_process_header_line
                # links them) and its variable joins them (ngx_http_variable_headers_internal:
                # "*p++ = sep; *p++ = ' ';", sep ','): $http_user_agent and $http_referer log
                # "a, b", not one of the lines.
                ua = value.decode("latin-1")
                req.user_agent = ua if req.user_agent is None else f"{req.user_agent}, {ua}"
            elif name == b"referer":
                ref = value.decode("latin-1")
                req.referer = ref if req.referer is None else f"{req.referer}, {ref}"
            elif name == b"authorization":
                req.authorization = value  # the only one (a second is refused above)
        # RFC 9112 §6.1: "A server MAY reject a request that contains both Content-Length and
        # Transfer-Encoding" -- the CL.TE / TE.CL smuggling pair; a proxy must.
        if has_te and has_cl:
            raise RemoteProxyError("both Content-Length and Transfer-Encoding", 400)
        # RFC 9112 §6.1: a TE in an HTTP/1.0 request means the framing is faulty.
        if has_te and version == b"1.0":
            raise RemoteProxyError("Transfer-Encoding in an HTTP/1.0 request", 400)
        req.upgrade = upgrade and b"upgrade" in connection_tokens and method == b"GET"
        if version == b"1.0" and b"keep-alive" in connection_tokens and \
                b"close" not in connection_tokens:
            # An HTTP/1.0 request asking for keep-alive keeps its connection, as in nginx
            # (ngx_http_handler: "case NGX_HTTP_CONNECTION_KEEP_ALIVE: r->keepalive = 1;",
            # whatever the version; "close" wins: ngx_http_process_connection looks for it
            # first), where h11 (the reader) takes every HTTP/1.0 message for the last. Its
            # responses say "Connection: keep-alive", one of unknown length "close".
            req.keep_alive = True
        self._connection_tokens = connection_tokens
        if host_raw is not None:
            check_host_header(host_raw)  # "Host:" with no value is 400, as in nginx
        # After the head's checks, as nginx (the end of ngx_http_process_request_header): a
        # CONNECT or TRACE with a bad head is its 400, not a 405.
        if method == b"CONNECT":
            raise RemoteProxyError("CONNECT is not supported", 405)
        if method == b"TRACE":
            # nginx refuses it before any location (ngx_http_process_request_header: "client
            # sent TRACE method", NGX_HTTP_NOT_ALLOWED): a TRACE never reaches a backend,
            # which would echo the request's Cookie and Authorization back (XST).
            raise RemoteProxyError("TRACE is not allowed", 405)
        target = event.target
        if _HASH in target:  # (an int needle: a bytes one costs CPython 3.11 ~2,000 more
            raise RemoteProxyError("'#' in request target", 400)  # instructions, Q3)
        try:
            target_s = target.decode("ascii")
        except UnicodeDecodeError:
            raise RemoteProxyError("non-ASCII request target", 400) from None
        if target_s[:1] != "/":
            if target_s == "*":
                if method != b"OPTIONS":
                    raise RemoteProxyError("'*' target is only for OPTIONS", 400)
                # Server-wide OPTIONS: about the proxy itself, answered here.
                req.host_raw = (host_raw or b"").decode("ascii")
                req.host = normalize_host(req.host_raw) or ""
                req.path = "*"
                # nginx's request-line parser refuses a '*' target (ngx_http_parse_request_line,
                # sw_spaces_before_uri: neither '/' nor a scheme letter is
                # NGX_HTTP_PARSE_INVALID_REQUEST, 400): no server or location ran, so it is
                # logged as nginx logs a refused head (no upstream name) and not counted in
                # the metrics (no location's log_by_lua). The answer stays ours (SEMANTICS §5).
                req.phase = "head"
                if self._refuse is None:  # (else ``_on_request`` refuses it as any other)
                    self._local_response(req, 200, req.start, [(b"allow", OPTIONS_ALLOW)],
                                         body=b"")
                return
            target_s, authority = absolute_form(
                target_s, None if host_raw is None else host_raw.decode("ascii"))
            if host_raw is None:
                host_raw = authority.encode("ascii")
                req.host_from_target = True
        host_s = host_raw.decode("ascii") if host_raw is not None else ""
        req.host_raw = host_s
        req.host = normalize_host(host_s) or ""
        req.original_uri = target_s
        path, query = split_target(target_s)
        canon = canonical_path(path)
        req.path = canon
        req.query = query
        # The invariant: the path the router matched is the path the backend receives.
        req.upstream_target = target_s.encode("ascii") if canon == path else (
            canon + ("?" + query if query is not None else "")).encode("ascii")
        req.client_ip = client_address(self.peer_ip, self.settings, self.proxy._trust,
                                       event.headers._full_items,
                                       peer_trusted=self._peer_trusted)

    def _build_upstream_headers(self, req: _Request, event: h11.Request) -> None:
        """Hop-by-hop and Connection-named headers out, forwarded headers in (SEMANTICS §9).

        What becomes of each header is ``request_header_kind``'s answer, which the ASGI
        adapter (``IngressASGI._backend_headers``) asks too; an ordinary header (not in
        ``special_request_names``, a valid name, not named in Connection) passes without the
        call. What each kind then writes is done here, as bytes of the upstream head, in the
        same pass (the adapter writes an ASGI header list)."""
        s = self.settings
        named = self._connection_tokens
        trusted_fwd = self._peer_trusted and s.use_forwarded_headers
        if self._ff_settings is not s:  # once per connection (its settings object)
            self._ff_settings = s
            self._ff_name = s.forwarded_for_header.lower().encode("latin-1")
            # ssl-client-* from the client: never passed (proxy/_clientcert.py).
            self._ff_special = special_request_names(self._ff_name) | CLIENT_CERT_NAMES
        ff_name = self._ff_name
        special = self._ff_special
        # Serialised here in one pass (what h11's writer would produce: Host first, then the
        # rest in order), without h11's per-header re-validation: every header came out of
        # h11's parser or is ours.
        out: list[bytes] = []
        hosts: list[bytes] = []
        incoming_ff: list[bytes] = []
        #: X-Forwarded-For lines when another header is the forwarded-for header.
        xff: list[bytes] | None = None
        fwd: dict[bytes, bytes] = {}
        request_id: bytes | None = None
        first_request_id = True
        length: bytes | None = None
        chunked = False
        for raw, name, value in event.headers._full_items:
            if name not in special and not name.translate(None, HEADER_NAME_CHARS) and not (
                    named and name in named):
                out.append(b"%s: %s\r\n" % (raw, value))  # the common case
                continue
            if name in CLIENT_CERT_NAMES:
                continue   # (the underscore spellings too: the same CGI/WSGI name)
            kind = request_header_kind(name, named, ff_name, s)
            if kind is _HOST:
                hosts.append(b"%s: %s\r\n" % (raw, value))
            elif kind is _PASS:
                out.append(b"%s: %s\r\n" % (raw, value))
            elif kind is _LENGTH:
                length = value
            elif kind is _CHUNKED:
                chunked = True
            elif kind is _UPGRADE:
                if req.upgrade:
                    out.append(b"%s: %s\r\n" % (raw, value))
            elif kind is _FORWARDED_FOR:
                incoming_ff.append(value)
            elif kind is _FORWARDED:
                if name == b"x-forwarded-for":
                    # $full_x_forwarded_for reads it whatever the trust (below).
                    if xff is None:
                        xff = [value]
                    else:
                        xff.append(value)
                if trusted_fwd:
                    # nginx >= 1.23 $http_*: repeated headers joined with ", ".
                    fwd[name] = fwd[name] + b", " + value if name in fwd else value
            elif kind is _REQUEST_ID:
                # nginx's $http_x_request_id is the first such header; ingress-nginx maps an
                # empty one to a generated $request_id. Only an opaque token is passed through.
                if first_request_id:
                    first_request_id = False
                    if valid_request_id(value):
                        request_id = value
        if s.proxy_set_headers:
            # ConfigMap proxy-set-headers: proxy_set_header, the client's of those names
            # replaced (proxy/_header_sets.py); basic auth's Authorization "" still applies.
            pairs = upstream_set_headers(s.proxy_set_headers, self.proxy.router)
            if pairs:
                out = set_header_lines(out, pairs)
        cert_auth = self._cert_auth
        if cert_auth is not None and cert_auth[0] is req:
            # nginx.tmpl: "proxy_set_header ssl-client-verify $ssl_client_verify;" and the
            # others, in every location of a server with auth-tls-*.
            out.extend(client_cert_lines(cert_auth[1], self.client_cert, self.tls))
        opts = req.opts
        if opts is not None and opts.access is not None and opts.access.basic is not None:
            # nginx.tmpl, with auth_basic: 'proxy_set_header Authorization "";' -- the
            # credentials checked here are not sent to the backend.
            out = [h for h in out if h[:14].lower() != b"authorization:"]
        if getattr(req.decision, "default_backend", None) is not None:
            # A default-backend annotation's Service serves (proxy/_error_pages.py).
            out = without_set_names(out)
            out.append(default_backend_lines(req.decision, event.headers._full_items))
        host_raw = req.host_raw.encode("ascii")
        if not hosts:
            if req.host_from_target:
                # No Host header, an absolute-form target (HTTP/1.0): ingress-nginx sends
                # $best_http_host, "ngx.var.http_host or ngx.var.host" (lua_ingress.lua
                # rewrite), and $host is the request line's host as ngx_http_validate_host
                # leaves it: lower-cased, no port, one trailing dot stripped -- as Host and
                # as X-Forwarded-Host (below), never the target's "Other.test:81".
                host_raw = req.host.encode("ascii")
            hosts.append(b"host: %s\r\n" % (host_raw if host_raw
                                               else ("%s:%d" % req.decision.endpoint).encode("ascii")))
        if opts is not None and opts.upstream_vhost is not None:
            # upstream-vhost: nginx.tmpl 'proxy_set_header Host "<vhost>";' replaces
            # $best_http_host (proxy/_response_head.py); X-Forwarded-Host stays the client's.
            hosts = [b"host: %s\r\n" % opts.upstream_vhost]
        if length is not None:
            # The length as we read it, in canonical decimal, never the client's spelling: a
            # "Content-Length: 010" that we read as 10 and a backend as 8 (octal, strtol base
            # 0) would leave 2 body bytes to be parsed as the start of the next request on a
            # pooled connection, another client's. nginx sends its own value too
            # (ngx_http_proxy_headers: "Content-Length" = "$proxy_internal_body_length",
            # ngx_http_proxy_internal_body_length_variable: "v->len = ngx_sprintf(v->data,
            # "%O", ctx->internal_body_length) - v->data;").
            out.append(b"content-length: %d\r\n" % req.length
                       if req.length is not None else b"content-length: %s\r\n" % length)
        elif chunked:
            out.append(b"transfer-encoding: chunked\r\n")
        req.up_chunked = length is None and chunked
        conn_value = req.opts.connection_header if req.opts is not None else None
        if req.upgrade:
            # (also with connection-proxy-header, which ingress-nginx writes in place of
            # $connection_upgrade: ingresslib keeps upgrades working, README's divergences)
            out.append(b"connection: upgrade\r\n")
        elif conn_value is not None:
            # connection-proxy-header (proxy/_location_extras.py): nginx.tmpl "proxy_set_header
            # Connection {{ $location.Connection.Header }};". "close" is not pooled after
            # (``_response_complete``).
            out.append(b"connection: %s\r\n" % conn_value)
        elif s.upstream_keepalive_connections <= 0:
            # nginx.tmpl: "map $http_upgrade $connection_upgrade { default upgrade; {{ if (gt
            # $cfg.UpstreamKeepaliveConnections 0) }} '' ''; {{ else }} '' close; {{ end }} }",
            # sent as "proxy_set_header Connection $connection_upgrade;": no upstream keepalive,
            # the backend is told that the connection closes after its response.
            out.append(b"connection: close\r\n")
        # X-Request-ID: passed through, or generated (32 lower-case hex, ingress-nginx $req_id).
        if request_id is None and s.generate_request_id:
            if req.request_id is None:
                try:
                    request_id = self.proxy.request_id().encode("ascii")
                except Exception:
                    request_id = self.proxy._request_id_failed().encode("ascii")
            else:
                # Generated for the auth subrequest already (proxy/_extauth.py
                # ``_request_id``): nginx's $request_id is one per request, shared with its
                # auth_request subrequest ("sr->variables = r->variables").
                request_id = req.request_id.encode("latin-1")
        if request_id is not None:
            req.request_id = request_id.decode("latin-1")
            out.append(b"x-request-id: %s\r\n" % request_id)
        if not incoming_ff and xff is None and req.client_ip == self.peer_ip:
            # The common case (no forwarded chain, client = peer): one block per connection.
            block = self._fwd_ip_block
            if block is None:
                client = (req.client_ip or "").encode("ascii")
                # No peer address (a unix socket): nothing to send. nginx's proxy_set_header
                # sends no header whose value is empty.
                block = self._fwd_ip_block = (b"x-forwarded-for: %s\r\nx-real-ip: %s\r\n"
                                              % (client, client)) if client else b""
            out.append(block)
        else:
            peer = (self.peer_ip or "").encode("ascii")
            client = (req.client_ip or "").encode("ascii")
            joined_ff = b", ".join(incoming_ff)
            # nginx.tmpl: "map $http_x_forwarded_for $full_x_forwarded_for { default
            # "$http_x_forwarded_for, $realip_remote_addr"; ... }": the X-Forwarded-For lines
            # whatever forwarded-for-header names (that header only finds the client, for
            # real_ip_header, and fills X-Original-Forwarded-For below).
            full = joined_ff if ff_name == b"x-forwarded-for" else (
                b", ".join(xff) if xff is not None else b"")
            ff_value = forwarded_for_value(s, full, peer, client)
            if ff_value:
                out.append(b"x-forwarded-for: %s\r\n" % ff_value)
            if client:
                out.append(b"x-real-ip: %s\r\n" % client)
            if joined_ff:
                out.append(b"x-original-forwarded-for: %s\r\n" % joined_ff)
        fwd_host = fwd.get(b"x-forwarded-host")
        if fwd_host is not None:
            fwd_host = first_forwarded_host(fwd_host)
        fwd_host = fwd_host or host_raw
        if fwd_host:  # none for an HTTP/1.0 request without Host (README, divergences)
            out.append(b"x-forwarded-host: %s\r\n" % fwd_host)
        if s.proxy_add_original_uri_header:
            out.append(b"x-original-uri: %s\r\n" % req.original_uri.encode("ascii"))
        if fwd:
            # lua_ingress.lua rewrite(): "if ngx.var.http_x_forwarded_proto then
            # ngx.var.pass_access_scheme = ngx.var.http_x_forwarded_proto end" (and the same for
            # the port): a header sent empty is set (ngx.var gives "" for a header present
            # with no value, nil only for one absent), and proxy_set_header sends no header
            # whose value is empty -- no X-Forwarded-Proto/-Scheme, X-Scheme or -Port then.
            # (A PROXY protocol destination port 443 is read after them: https.)
            proto = b"https" if self.proxy_protocol_port == 443 else fwd.get(
                b"x-forwarded-proto", self.scheme.encode("ascii"))
            fport = fwd.get(b"x-forwarded-port", str(self.local_port).encode("ascii"))
            if fport:
                out.append(b"x-forwarded-port: %s\r\n" % fport)
            if proto:
                out.append(b"x-forwarded-proto: %s\r\nx-forwarded-scheme: %s\r\n"
                           b"x-scheme: %s\r\n" % (proto, proto, proto))
        else:
            # Constant per connection (listener port and scheme; or the PROXY protocol's).
            block = self._fwd_block
            if block is None:
                proto = self.pass_scheme.encode("ascii")
                block = self._fwd_block = (
                    b"x-forwarded-port: %d\r\nx-forwarded-proto: %s\r\n"
                    b"x-forwarded-scheme: %s\r\nx-scheme: %s\r\n"
                    % (self.local_port, proto, proto, proto))
            out.append(block)
        opts = req.opts
        if opts is not None and opts.rewrite_target is not None:
            # X-Forwarded-Prefix only with a rewrite, as ingress-nginx: template.go
            # buildProxyPass writes "proxy_set_header X-Forwarded-Prefix" inside "if
            # len(location.Rewrite.Target) > 0 {", after "if path == location.Rewrite.Target {
            # return defProxyPass }" (parse_route_options clears such a target); and only for
            # a request the rewrite applies to: Prefix /foo rewritten to /foo sends none for
            # /foo, its exact twin's bare proxy_pass (x56 s36). A client's own
            # X-Forwarded-Prefix is dropped either way (request_header_kind).
            # nginx rewrite's argument rules live in RouteOptions.rewrite_uri.
            target, applied = opts.rewrite_upstream(req.path, req.query, req.original_uri)
            if opts.x_forwarded_prefix is not None and applied:
                # UTF-8, the bytes nginx.conf would hold (latin-1 cannot encode every value).
                prefix = opts.x_forwarded_prefix.encode("utf-8")
                out.append(b"x-forwarded-prefix: %s\r\n" % prefix)
            req.upstream_target = target.encode("ascii")
            if opts.rewrite_log:  # enable-rewrite-log (proxy/_location_extras.py)
                log_rewrite(self.proxy.logger, getattr(req.decision.match, "ingress", None),
                            req.path, req.query, req.upstream_target)
        out.append(b"\r\n")
        # proxy-http-version "1.0" (proxy/_location_extras.py): nginx's proxy_http_version; an
        # upgrade stays HTTP/1.1 (README's divergences: it could not upgrade otherwise).
        version = b"1.0" if (opts is not None and opts.http_version == "1.0"
                             and not req.upgrade) else b"1.1"
        req.up_head = b"%s %s HTTP/%s\r\n%s%s" % (
            req.method, req.upstream_target, version, b"".join(hosts), b"".join(out))

    def _on_body(self, req: _Request, data: bytes, now: float) -> None:
        req.body_len += len(data)
        if req.answered:
            # Answered locally (404, 503, redirect...): the body is read and discarded, up to
            # a bound, so that the connection can serve the next request.
            until = req.discard_until
            if req.body_len > _REPLAY_LIMIT:
                # Too much (our bound; nginx discards any size): the client is still sending,
                # so a lingering close, or a reset could destroy the answer before it is read.
                self._emit_record(req, now)
                self._close_downstream(linger=True)
            elif until is not None and now >= until:
                # Too long (nginx: "if ((ngx_msec_int_t) timer <= 0) { ...
                # ngx_http_finalize_request(r, NGX_ERROR);" once lingering_time is past).
                self._emit_record(req, now)
                self._close_downstream(linger=False)
            elif until is not None:
                self._set_timer(TimerKind.BODY, min(_DISCARD_TIMEOUT, until - now))
            return
        # No size check here: a body never passes its limit. A Content-Length over it is 413
        # on the head, and a chunk line announcing more than it leaves is 413 at that line
        # (``_limit_chunked_body``), before any of that chunk's bytes come here.
        if req.opts is None and req.defer_limit:
            # An unrouted request's chunked body, read before its answer (``_defer_unrouted``):
            # counted, never held.
            self._set_timer(TimerKind.BODY, self.settings.client_body_timeout)
            return
        if self._mirror is not None and self._mirror[0] is req:
            self._mirror[1].add(data)  # mirror-request-body: the mirror's copy
        replay = req.replay
        if replay is not None:
            req.replay_size += len(data)
            if req.replay_size > _REPLAY_LIMIT and type(replay) is not Buffered:
                req.replay = None
            else:
                # (proxy-request-buffering "on": all of it, for the upstream and any retry;
                # the bound is the hold's, below.)
                replay.append(data)
        up = self._up
        if up is not None and up.connected and up.h11 is not None:
            if data:
                up.sent = True
                self._send_upstream(up, b"%x\r\n%s\r\n" % (len(data), data)
                                    if req.up_chunked else data)
            # Still sending: the upstream cannot be blamed for not answering yet (unless it
            # began to and stalled: ``upstream_data``).
            self._set_request_timer(req, now)
        else:
            req.hold(data)  # no upstream can take them yet
            if up is None and type(replay) is Buffered:
                # proxy-request-buffering "on", the body read whole first
                # (proxy/_request_buffer.py): client_body_timeout between two reads; past the
                # bytes we hold (nginx would spill them to a file), 413; past the Proxy's
                # budget, 503; no upstream opened.
                held_buffered(self, req, replay, now)

    def _on_request_complete(self, req: _Request, now: float) -> None:
        if req.answered:
            # Answered locally before the body ended: now the request and the cycle finish.
            self._emit_record(req, now)
            self._next_cycle(now)
            return
        if req.defer_limit:
            # The whole chunked body of an unrouted request, within the limit: the default
            # backend's 404 now (``_defer_unrouted``).
            req.defer_limit = 0
            self._local_response(req, 404, now)
            return
        mirror = self._mirror
        if mirror is not None:
            # The whole body is in: the mirror request goes (proxy/_mirror.py).
            self._mirror = None
            if mirror[0] is req:
                sent = mirror[1].action()
                if sent is not None:
                    self._out.append(sent)
        up = self._up
        if up is not None and up.connected and up.h11 is not None:
            up.request_done = True
            if req.up_chunked:
                up.sent = True
                self._send_upstream(up, b"0\r\n\r\n")
            if self._timer is TimerKind.BODY or self._timer is None:
                # The body is in: now the upstream owes an answer. (None: client_body_timeout
                # 0 armed nothing while the body came; the upstream's deadline starts now.)
                self._set_request_timer(req, now)
        elif up is None and type(req.replay) is Buffered:
            # proxy-request-buffering "on": the whole body is in; now the upstream, chosen
            # now (nginx's balancer phase) and sent the request with its Content-Length
            # (proxy/_request_buffer.py).
            whole_buffered(self, req, now)

    # ---------------------------------------------------------------- upstream side
    def _open(self, req: _Request, endpoint: tuple[str, int], now: float,
              pooled: bool = True) -> None:
        self._next_id += 1
        up = _Upstream(self._next_id, endpoint, req.upgrade)
        up.started = now
        self._up = up
        # A new attempt (a retry, or the fresh connection after the keep-alive race: nginx
        # starts a new upstream state for it too): its times start here.
        if req.t_attempt is not None:
            # The try it replaces ends here, unless it ended before (_try_failed).
            end = now if req.t_attempt_end is None else req.t_attempt_end
            req.times += (max(end - req.t_attempt, 0.0),)
            req.done_tries += (_try_facts(req),)
            req.resp_up = None
        req.try_up = up
        req.t_attempt = now
        req.t_header = None
        req.t_attempt_end = None
        req.tried.append(endpoint)
        if req.t_tries is None:
            req.t_tries = now
        if self._timer is TimerKind.UPSTREAM_READ:
            # A failed try's read timer must not cut the next one's connect: nginx's
            # proxy_read_timeout belongs to a try (armed once the request is sent to that
            # peer), and the connect has its own limit, run by the driver from OpenUpstream.
            self._set_timer(None, None)
        opts = req.opts
        assert opts is not None
        # backend-protocol AUTO_HTTP: template.go buildProxyPass "case "AUTO_HTTP": proto =
        # "$scheme://"", TLS to the endpoint when the client's connection is TLS ($scheme is
        # this hop's own, not a forwarded X-Forwarded-Proto).
        tls = opts.backend_tls or (opts.backend_protocol == "AUTO_HTTP" and self.scheme == "https")
        if self._error_page_req is req:
            tls = False  # the error page's named location: "proxy_pass http://upstream_balancer"
        tls_config = None
        if tls and opts.proxy_ssl is not None:
            # proxy-ssl-* (proxy/_proxy_ssl.py); a Secret unusable since the request was let
            # in: a configuration that cannot connect (never an unverified connection).
            tls_config = opts.proxy_ssl.config()[0] or UNUSABLE
        elif tls:
            tls_config = NGINX_DEFAULT  # nginx's proxy_ssl_* defaults: no SNI, no verification
        self._out.append(OpenUpstream(up.conn_id, endpoint, tls, opts.connect_timeout,
                                      opts.send_timeout, pooled, tls_config))

    def _send_request(self, req: _Request, up: _Upstream) -> None:
        conn = up.h11
        assert conn is not None
        # The request bytes are written here (``up_head``, body re-framed below); the response
        # parser only needs the method (a response to HEAD has no body).
        conn.method = req.method
        if not req.host_raw:
            # No Host (HTTP/1.0): the Host sent is this try's endpoint (_endpoint_host).
            _endpoint_host(req, up.endpoint)
        parts = [req.up_head]
        held = req.take_unsent()
        if req.up_chunked:
            parts += [b"%x\r\n%s\r\n" % (len(c), c) for c in held if c]
        else:
            parts += held
        if req.complete:
            up.request_done = True
            if req.up_chunked:
                parts.append(b"0\r\n\r\n")
        elif req.opts is not None and req.opts.request_buffering_off:
            unbuffered(req)  # an explicit "off": no retry from here (proxy/_request_buffer.py)
        up.sent = True
        data = b"".join(parts) if len(parts) > 1 else parts[0]
        up.bytes_sent += len(data)  # (``_send_upstream``, inlined: every proxied request's send)
        self._out.append(SendUpstream(up.conn_id, data))

    def _send_upstream(self, up: _Upstream, data: bytes) -> None:
        """``data`` to the try ``up``, counted (nginx's ``$upstream_bytes_sent``: the try's
        connection's ``sent``, which ngx_http_upstream_get_keepalive_peer zeroes when it hands
        out a cached connection: this request's bytes only)."""
        up.bytes_sent += len(data)
        self._out.append(SendUpstream(up.conn_id, data))

    def _pump_upstream(self, up: _Upstream, now: float, eof: bool = False) -> None:
        conn = up.h11
        assert conn is not None
        req = self._req
        assert req is not None
        parts: list[bytes] = []
        while True:
            before = len(conn._buf._data)
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as e:
                self._flush_parts(parts, req, now)
                if e.error_status_hint == 431 and not req.response_started:
                    # An incomplete head already past proxy-buffer-size (the reader's limit).
                    self._too_big(req, up, conn._max)
                # A close in the middle of the response head is "upstream prematurely closed
                # connection" (error); anything else is an invalid response.
                self._try_failed(up, "error" if eof else "invalid_header", now)
                return
            t = type(event)
            if t is h11.Response or t is h11.InformationalResponse:
                # proxy-buffer-size bounds each head: h11 (its "max_incomplete_event_size")
                # only refuses a head still incomplete past the limit, so a larger head
                # arriving complete in one read went through (to the client too). nginx reads
                # a head into one buffer (proxy_buffer_size): "upstream sent too big header"
                # -> 502; after a 103 it moves what follows to the buffer's start
                # (ngx_http_upstream_process_early_hints), so each head has the whole buffer.
                # 1xx heads, each small and well within proxy_read_timeout, could follow one
                # another for as long as the upstream liked with nothing sent to the client:
                # all the heads before the body together are bounded too, by
                # max_response_header_size (or proxy-buffer-size, if larger).
                n = before - len(conn._buf._data)
                up.head_bytes += n
                if up.head_bytes > conn._max and (
                        n > conn._max
                        or up.head_bytes > self.settings.max_response_header_size):
                    # (the reader's limit: the route's proxy-buffer-size, upstream_connected)
                    self._flush_parts(parts, req, now)
                    if n > conn._max:
                        self._too_big(req, up, conn._max)
                    else:  # (1xx heads and the final one together)
                        self._too_big(req, up, self.settings.max_response_header_size,
                                      "max_response_header_size, the heads together")
                    self._try_failed(up, "invalid_header", now)
                    return
                if t is h11.Response and conn._max < BODY_LINE_LIMIT:
                    # The head only: a chunk line or trailer of the body is no head (nginx
                    # parses them as they come, ngx_http_parse_chunked): the reader's limit
                    # is its old one again for the body (proxy/_response_buffer.py).
                    conn._max = BODY_LINE_LIMIT
            if t is h11.Data:
                data = event.data
                framing = req.framing
                if framing == _FRAME_CHUNKED:
                    if self._gz is not None and data:
                        # use-gzip (proxy/_gzip.py): compressed and sync-flushed, as nginx's
                        # gzip filter does each flushed upstream read (proxy_buffering off).
                        data = self._gz.feed(data)
                    if data:
                        parts.append(b"%x\r\n%s\r\n" % (len(data), data))
                elif framing != _FRAME_NONE and data:
                    if framing == _FRAME_CLOSE and self._gz is not None:
                        # enable-brotli to an HTTP/1.0 client (ngx_brotli tests no version):
                        # compressed, the body delimited by closing.
                        data = self._gz.feed(data)
                    parts.append(data)
            elif t is h11.Response:
                if req.t_first is None:
                    req.t_first = now
                if not self._on_response(req, up, event, now):
                    return
                if self._tunnel is not None:
                    return
                head = self._pending_head
                if head:
                    parts.append(head)
            elif t is h11.EndOfMessage:
                if req.framing == _FRAME_CHUNKED:
                    if self._gz is not None:
                        tail = self._gz.finish()  # the gzip trailer (CRC, length)
                        self._gz = None
                        if tail:
                            parts.append(b"%x\r\n%s\r\n" % (len(tail), tail))
                    parts.append(b"0\r\n\r\n")  # trailers are not forwarded
                elif req.framing == _FRAME_CLOSE and self._gz is not None:
                    parts.append(self._gz.finish())  # (brotli to HTTP/1.0: its last block)
                    self._gz = None
                self._flush_parts(parts, req, now)
                self._response_complete(req, up, now)
                return
            elif t is h11.InformationalResponse:
                if req.t_first is None:
                    req.t_first = now
                if event.status_code == 101:
                    self._flush_parts(parts, req, now)
                    self._on_switch(req, up, event, now)
                    return
                # 100 Continue was answered by us already; other 1xx are dropped (their
                # heads count toward proxy-buffer-size, above).
            elif t is h11.ConnectionClosed:
                self._flush_parts(parts, req, now)
                self._try_failed(up, "error", now)
                return
            else:  # NEED_DATA / PAUSED
                self._flush_parts(parts, req, now)
                return

    def _too_big(self, req: _Request, up: _Upstream, limit: int,
                 what: str = "proxy-buffer-size") -> None:
        """nginx's error-log line for a response head past ``proxy-buffer-size``."""
        log_too_big(self.proxy.logger, limit, up.endpoint, req.host,
                    f"{req.method_s} {req.original_uri} HTTP/{req.http_version}", what)

    def _flush_parts(self, parts: list[bytes], req: _Request, now: float) -> None:
        if parts:
            data = b"".join(parts) if len(parts) > 1 else parts[0]
            parts.clear()
            if self._throttle:
                opts = req.opts
                # (Not a custom-http-errors page: nginx.tmpl's named location writes no
                # limit_rate.)
                if opts is not None and opts.limit_rate > 0 and self._error_page_req is not req:
                    self._bw_push(req, data, now)
                    return
            req.bytes_out += len(data)
            self._out.append(SendDownstream(data))

    # ---------------------------------------------------------------- limit-rate
    #: The connection was made with ``throttle=True`` (the driver arms RATE timers).
    _throttle = False
    #: The current response's bandwidth limit (proxy/_bandwidth.py) and its request.
    _bw: Throttle | None = None
    _bw_req: _Request | None = None
    #: The request whose upstream response ended while bytes were held or a delay ran: it ends
    #: (record, next request) when the last of them is sent and its delay over (``_bw_timer``).
    _bw_finish: _Request | None = None

    def _bw_push(self, req: _Request, data: bytes, now: float) -> None:
        """Response bytes of ``req`` under ``limit-rate``: held, and let out as the rate
        allows (nginx's write filter, ``Throttle``)."""
        bw = self._bw
        if bw is None or self._bw_req is not req:
            opts = req.opts
            assert opts is not None
            bw = self._bw = Throttle(opts.limit_rate, opts.limit_rate_after, req.start)
            self._bw_req = req
        bw.push(data)
        self._bw_release(req, bw, now)

    def _bw_release(self, req: _Request, bw: Throttle, now: float) -> None:
        data, delay = bw.release(now)
        if data:
            req.bytes_out += len(data)
            self._out.append(SendDownstream(data))
        if delay is not None:
            self._set_timer(TimerKind.RATE, delay)

    def _bw_timer(self, now: float) -> None:
        """RATE ran out: the next bytes go; with none held any more, the request ends (its
        upstream response was complete) or its own timer is armed again."""
        bw = self._bw
        req = self._bw_req
        if bw is None or req is None or req.done:
            return
        bw.timer_fired()
        self._bw_release(req, bw, now)
        if self._bw_finish is req and not bw.held and not bw.delayed:
            # Sent whole and its last delay over: the request ends now (nginx's
            # $request_time; ``_response_complete``).
            self._bw_finish = None
            self._finish_response(req, now)
        elif not bw.delayed and (self._up is not None or not req.complete):
            self._set_request_timer(req, now)

    def _on_response(self, req: _Request, up: _Upstream, event: h11.Response,
                     now: float) -> bool:
        """Decide on the upstream's response head; False means it was not forwarded."""
        status = event.status_code
        if up.upgrade:
            # The upgrade was refused: plain response, but the upstream connection is spent.
            up.upgrade = False
        opts = req.opts
        assert opts is not None
        # One pass over h11's (raw name, name, value) triples: the upstream's header case is
        # kept and nothing is re-validated (h11's parser already did).
        items = event.headers._full_items
        # Control characters in a response header value (h11 lets all but NUL through) would
        # reach the client (terminal escapes, log injection): an invalid response -> 502.
        # The reason phrase too (RFC 9112 §4: reason-phrase = 1*( HTAB / SP / VCHAR /
        # obs-text ); h11 accepts any byte but NUL and whitespace): it is copied to the client.
        if has_control(event.reason) or (
                items and has_control(b"".join([item[2] for item in items]))):
            self._try_failed(up, "invalid_header", now)
            return False
        headers: list[tuple[bytes, bytes, bytes]] = []
        named: list[bytes] | None = None
        framing = 0
        has_hsts = False
        # nginx hides the upstream's Date (ngx_http_proxy_hide_headers: "Date", "Server", ...)
        # and its header filter writes its own ("if (r->headers_out.date == NULL) { ...
        # ngx_cached_http_time ..."): with a clock, ours replaces the upstream's. Without one,
        # the upstream's passes (RFC 9110 §6.6.1 wants a forwarded response to carry one).
        date = self.proxy._http_date()
        buffer_ahead = opts.response_buffer
        for item in items:
            name = item[1]
            if name in RESPONSE_DROP:
                if name == b"connection":
                    # Every Connection line's options (RFC 9110 §5.3: several lines are
                    # one comma-separated list), not only the last line's.
                    tokens = [t.strip().lower() for t in item[2].split(b",")]
                    named = tokens if named is None else named + tokens
                elif name == b"transfer-encoding":
                    framing |= 2
                elif name == b"server":
                    if self.settings.server_tokens and self.settings.allow_backend_server_header:
                        # server-tokens + allow-backend-server-header: proxy_pass_header Server
                        # (proxy/_headers.py passes_backend_server, inlined: an upstream's
                        # Server is common, and a plain request calls nothing of these keys).
                        headers.append(item)
                elif name == b"x-accel-buffering":
                    # proxy-buffering per response (proxy/_response_buffer.py); never passed.
                    # (After Server: the common line is not compared with it too.)
                    buffer_ahead = accel_buffer(opts, item[2], buffer_ahead,
                                                self.settings.response_buffering_limit)
                continue
            if name == b"content-length":
                framing |= 1
                if len(item[2]) > 18 and int(item[2]) > MAX_CONTENT_LENGTH:
                    # nginx reads it with ngx_atoof, which fails past NGX_MAX_OFF_T_VALUE
                    # (nginx 1.23+, ngx_http_upstream_process_content_length: "upstream sent
                    # invalid "Content-Length" header" -> NGX_HTTP_UPSTREAM_INVALID_HEADER,
                    # 502; before 1.23 the length was taken as unknown). A
                    # client reading it into 64 bits would take another length than the
                    # one we forward the body by. (h11 checked the digits; 204 too.)
                    self._try_failed(up, "invalid_header", now)
                    return False
                if status == 204:
                    # RFC 9110 §8.6: "A server MUST NOT send a Content-Length header field in
                    # any response with a status code of 1xx (Informational) or 204 (No
                    # Content)": a client that believed it would take that many bytes of the
                    # next response as this one's body. nginx drops it
                    # (ngx_http_header_filter: "if (status == NGX_HTTP_NO_CONTENT) { ...
                    # r->headers_out.content_length = NULL; r->headers_out.content_length_n
                    # = -1; }"). (A 304's describes the selected representation: kept.)
                    continue
                value = item[2]
                if value[:1] == b"0" and value != b"0":
                    # The length h11 read (decimal; it checked the digits), not a spelling a
                    # client could read otherwise ("010": 8 to a strtol base 0): the framing
                    # the client sees is the one the body was cut by (request side: see
                    # ``_build_upstream_headers``).
                    item = (item[0], name, b"%d" % int(value))
            elif name == b"strict-transport-security":
                has_hsts = True
            elif name == b"date":
                if date is not None:
                    continue
            headers.append(item)
        if named:
            headers = [h for h in headers if h[1] not in named]
            # An HSTS the upstream made hop-by-hop is gone: ours is added below.
            has_hsts = has_hsts and b"strict-transport-security" not in named
        if self.settings.hide_headers:
            # ConfigMap hide-headers: nginx's proxy_hide_header (proxy/_header_sets.py).
            hidden = hidden_of(self.settings)
            headers = [h for h in headers if h[1] not in hidden]
            has_hsts = has_hsts and b"strict-transport-security" not in hidden
        if framing == 3:
            # Both framings: h11 would follow Transfer-Encoding (RFC 9112 §6.3), but an
            # upstream that sends both is broken or hostile -- "invalid framing -> 502".
            self._try_failed(up, "invalid_header", now)
            return False
        # The head is valid: only now does its status count. nginx's
        # ngx_http_upstream_process_header: "if (rc == NGX_HTTP_UPSTREAM_INVALID_HEADER) {
        # ngx_http_upstream_next(r, u, NGX_HTTP_UPSTREAM_FT_INVALID_HEADER); return; }" (a
        # retry only for proxy_next_upstream's invalid_header, else 502, no header_time), then
        # "u->state->header_time = ...", then ngx_http_upstream_test_next (http_502 ...) and
        # ngx_http_upstream_intercept_errors (custom-http-errors) on a status >= 300.
        if status in _HTTP_CONDITIONS and self._retried_for_status(req, up, status, now):
            return False
        if opts.custom_http_errors and status in opts.custom_http_errors and \
                opts.intercept_errors and self._error_page(req, status, now, up):
            return False  # custom-http-errors: the default backend answers instead
        req.statuses.append(status)
        # A valid head, the one the client gets: nginx sets ``header_time`` once the head has
        # parsed. (A head retried above never reaches here; a retry's ``_open`` resets it.)
        req.t_header = now
        req.resp_up = up  # its bytes after this head are $upstream_response_length
        if date is not None:
            # Ours, after the upstream's headers (nginx writes it before them; RFC 9110 §5.3:
            # "The order in which field lines with differing field names are received in a
            # section is not significant"). For a response without one this is also RFC 9110
            # §6.6.1's rule: "A recipient with a clock that receives a response message
            # without a Date header field MUST record the time it was received and append a
            # corresponding Date header field".
            headers.append((b"date", b"date", date))
        if opts.response_rewrite is not None:
            # proxy-redirect-* / proxy-cookie-* (proxy/_response_head.py)
            headers = rewrite_response_headers(headers, opts.response_rewrite)
        self._add_response_headers(req, headers, has_hsts)
        if self._auth_cookie is not None:
            auth_add_cookies(self, req, status, headers)
        if not self._can_respond:
            self._close_all(now)
            return False
        if not req.complete and _CONNECTION_CLOSE not in headers:
            # The upstream answers before the request body has ended: the connection is
            # closed after this response (``_response_complete``), which RFC 9112 §9.6 wants
            # announced ("A server that sends a "close" connection option MUST initiate a
            # close of the connection ... after it sends the response"); ``_response_head``
            # then sets ``_close_after``, so it closes even if the body ends meanwhile.
            headers.append(_CONNECTION_CLOSE)
        if req.http_version == "1.0" and req.keep_alive and _CONNECTION_CLOSE not in headers:
            # (A response of unknown length turns it into "Connection: close":
            # ``_response_head`` ends the body by closing for an HTTP/1.0 client.)
            headers.append(_CONNECTION_KEEP_ALIVE)
        if self._compress:
            # use-gzip / enable-brotli: nginx's brotli and gzip filters (proxy/_gzip.py,
            # proxy/_brotli.py); with Content-Length gone a compressed body is chunked (to an
            # HTTP/1.0 client, which only brotli compresses for, delimited by closing).
            ev = req.event
            headers, self._gz = start_gzip(
                ev.headers if ev is not None else (), req.http_version == "1.1", status,
                req.method == b"HEAD", headers, self.settings)
        head, req.framing, self._close_after = _response_head(
            status, event.reason, headers, req.method, req.http_version == "1.1", req.keep_alive)
        self._can_respond = False
        req.head_len += len(head)
        req.status = status
        req.response_started = True
        self.response_buffer = buffer_ahead
        if type(req.replay) is Buffered:
            # proxy-request-buffering "on": no retry (nor error page) from now on, so the body
            # held for them (up to request_buffering_limit) is not pinned for the response.
            release_buffered(req)
        self._pending_head = head
        return True

    def _retried_for_status(self, req: _Request, up: _Upstream, status: int,
                            now: float) -> bool:
        """proxy-next-upstream's http_<status> conditions (``status`` one of
        ``_HTTP_CONDITIONS``) on a valid response head: True when another endpoint is tried
        instead (nginx's ngx_http_upstream_test_next)."""
        opts = req.opts
        assert opts is not None
        cond = _HTTP_CONDITIONS[status]
        if cond not in opts.next_upstream or not self._retry_allowed(req, up, cond, now):
            return False
        nxt = self._next_endpoint(req)
        if nxt is None:
            return False
        req.statuses.append(status)
        # ngx_http_upstream_next: "if (ft_type == NGX_HTTP_UPSTREAM_FT_HTTP_403 ||
        # ft_type == NGX_HTTP_UPSTREAM_FT_HTTP_404) { state = NGX_PEER_NEXT; } else {
        # state = NGX_PEER_FAILED; }": a 403/404 moves on without blaming the
        # endpoint. (With no endpoint left the response is forwarded and observed
        # once, by _response_complete.)
        self._observe(req, up, now, status in (403, 404))
        self._close_upstream(False)
        # The head parsed: nginx set this try's header_time before
        # ngx_http_upstream_test_next retried it ($upstream_header_time "0.010, ...").
        req.t_header = now
        self._start_retry(req, nxt, now)
        return True

    def _add_response_headers(self, req: _Request, headers: list[tuple[bytes, bytes, bytes]],
                              has_hsts: bool = False, *, switch: bool = False) -> None:
        """The headers this hop adds to an answer. ``switch``: a 101 (``_on_switch``): no
        Connection: close (it writes Connection: upgrade); HSTS as on any answer (nginx.tmpl's
        HSTS is a header filter, headers-more's ``more_set_headers`` or ``lua_ingress.header``,
        and ngx_http_upstream_send_response sends a 101 through the header filters too)."""
        s = self.settings
        if s.server_tokens:
            # server-tokens: Server: ingresslib/<version> unless the upstream's passed
            # (proxy/_headers.py); before add-headers, whose more_set_headers would replace it.
            add_server(headers)
        if self.tls and s.hsts and not has_hsts:
            v = hsts_value(s.hsts_max_age, s.hsts_include_subdomains, s.hsts_preload)
            headers.append((b"strict-transport-security", b"strict-transport-security", v))
        cookie = self._affinity_cookie(req)
        if cookie is not None:
            headers.append((b"set-cookie", b"set-cookie", cookie))
        info = self._digest_info
        if info is not None and info[0] is req:
            headers.append((b"Authentication-Info", b"authentication-info", info[1]))
        if not switch and not self._keep_alive_allowed(req):
            headers.append(_CONNECTION_CLOSE)
        if s.add_headers:
            # ConfigMap add-headers: the http block's more_set_headers, on every answer and
            # before the location's own (CORS, custom-headers) -- proxy/_header_sets.py.
            # (its Server, unless server-tokens: cleared by more_clear_headers Server.)
            added = global_headers(s.add_headers, self.proxy.router,
                                   server_tokens=s.server_tokens)
            if added:
                headers[:] = cors_merge(headers, list(added))
        opts = req.opts
        if opts is None:
            server = self._server_location
            opts = server[1] if server is not None and server[0] is req else None
        if opts is not None and opts.cors is not None:
            cors = self._cors_headers(req, opts)
            if cors is not None:
                # more_set_headers: replaces the upstream's headers of those names.
                headers[:] = cors_merge(headers, cors)
        if opts is not None and opts.custom_headers is not None:
            custom = self._custom_headers(req, opts)
            if custom:
                # more_set_headers too (proxy/_header_sets.py): the ConfigMap's headers.
                headers[:] = cors_merge(headers, list(custom))

    def _custom_headers(self, req: _Request, opts: RouteOptions | None = None
                        ) -> tuple[tuple[bytes, bytes], ...]:
        """The ``custom-headers`` ConfigMap's headers for an answer to ``req``: as
        ``_cors_headers``, only on the location's own answers (not a denied location's 503),
        and also on the 413 of a declared length: nginx refuses it in the find-config phase,
        with the location's configuration (its ``more_set_headers``) already the request's
        -- CORS's stand in an ``if ($cors = "true")`` the location's rewrite phase never
        evaluated, these do not. ``opts``: the location's (default: the route's)."""
        if opts is None:
            opts = req.opts
        if opts is None or opts.custom_headers is None \
                or self._error_page_req is req:  # the named location's answer: not ours
            return ()
        if req.phase != "location" and not (
                req.phase == "server" and body_too_large(opts, req.path, req.length)):
            return ()
        if self._location_denied(req, opts):
            return ()
        return opts.custom_headers.headers(config_maps_of(self.proxy.router))

    def _location_denied(self, req: _Request, opts: RouteOptions) -> bool:
        """Whether ``opts`` is a location ingress-nginx denies (``ing_errors.LocationDenied``):
        nginx.tmpl writes its CORS template and custom-headers only ``{{ if isLocationAllowed
        $location }}``, the denied location gets "# Location denied ... return 503;" alone.
        An access annotation's denial, a proxy-ssl-secret's (the server ``location /`` of an
        unrouted request too: ``proxy_ssl_denied``), or (the route's own location)
        ``_tls_denied``."""
        if access_denied(opts):
            return True
        if opts is not req.opts:
            return proxy_ssl_denied(opts)
        return self._tls_denied(req, opts)

    def _tls_denied(self, req: _Request, opts: RouteOptions) -> bool:
        """The route's location answers 503 for its TLS annotations: a ``proxy-ssl-secret`` it
        cannot use (proxy/_proxy_ssl.py; proxyssl/main.go "error obtaining certificate" ->
        LocationDeniedError), or ``auth-tls-*`` its server did not apply (a Proxy without
        client_auth, a store that does not know the host: a server-alias name), which fails
        closed as authtls/main.go's LocationDeniedError."""
        if opts.auth_tls and (self._cert_auth is None or self._cert_auth[0] is not req):
            return True
        return opts.proxy_ssl is not None and opts.proxy_ssl.config()[1] is not None

    def _cors_headers(self, req: _Request, opts: RouteOptions | None = None
                      ) -> list[tuple[bytes, bytes]] | None:
        """The CORS headers of a response to ``req`` (proxy/_cors.py), or None: no CORS on its
        location, its Origin not allowed, or not answered by the location (the server-level
        app-root redirect and 413, a denied location's 503, custom-http-errors' error page:
        ``error_page`` moves the request to the server's ``location @custom_...``, whose
        configuration has none of the location's ``more_set_headers``). ``opts``: the
        location's (default: the route's; an unrouted request's: its server ``location /``'s)."""
        if opts is None:
            opts = req.opts
        if opts is None or opts.cors is None or req.phase != "location" \
                or self._error_page_req is req or self._location_denied(req, opts):
            return None
        ev = req.event
        origin = http_header(ev.headers._full_items, b"origin") if ev is not None else None
        return opts.cors.headers(None if origin is None else origin.decode("latin-1"))

    def _affinity_cookie(self, req: _Request) -> bytes | None:
        """The ``Set-Cookie`` value of the request's session affinity, or None."""
        cookie = req.set_cookie
        if not cookie or "\r" in cookie or "\n" in cookie or not req.tried:
            # (asgiturn s31) Only with a connect: sticky.lua's balance() sets the cookie in the
            # balancer phase, which a body refused while read whole first (400, 408, 413)
            # never reaches.
            return None
        if self.tls and not _has_secure(cookie):
            # ingress-nginx sticky.lua: "if cookie_secure == nil then cookie_secure =
            # ngx.var.https == "on"": without session-cookie-secure (Go's omitempty
            # drops a false), the cookie is Secure when the request came over TLS.
            cookie += "; Secure"
        # UTF-8: the path part is free text (latin-1 cannot encode every value; a
        # lone surrogate from a JSON manifest is replaced rather than raised here).
        return cookie.encode("utf-8", "replace")

    def _keep_alive_allowed(self, req: _Request) -> bool:
        s = self.settings
        if s.keep_alive <= 0 or (self._eof and not self._has_next_head()):
            return False
        # nginx's rule, 0 included (ngx_http_update_location_config: "} else if
        # (r->connection->requests >= clcf->keepalive_requests) { r->keepalive = 0;", with
        # requests counting from 1): 0, like 1, ends the connection after the first response.
        if self._requests + 1 >= s.keep_alive_requests:
            return False
        return True

    def _on_switch(self, req: _Request, up: _Upstream, event: h11.InformationalResponse,
                   now: float) -> None:
        if not req.upgrade or not req.complete or has_control(event.reason) or \
                has_control(b"".join([v for _, v in event.headers])):
            self._try_failed(up, "invalid_header", now)
            return
        req.status = 101
        req.response_started = True
        req.t_header = now
        # ngx_http_proxy_process_status_line: "u->state->status = ctx->status.code" (101 too).
        req.statuses.append(101)
        # The same hop-by-hop rule as any response (``_on_response``; RFC 9110 §7.6.1: remove
        # "any header or trailer field(s) from the message with the same name as the
        # connection-option"): a header the upstream named in its Connection header was
        # meant for this hop only. Upgrade and Connection are written below, as nginx's
        # header filter does for a 101 ("Connection: upgrade", the upstream's Upgrade).
        # The upstream's header names keep their case, as in any other response (nginx
        # copies them as received: "ngx_copy(b->last, header[i].key.data, ...)").
        items = event.headers._full_items
        named: set[bytes] = set()
        for _, n, v in items:
            if n == b"connection":
                named.update(t.strip().lower() for t in v.split(b","))
        # Our Date replaces the upstream's, as for any response (``_on_response``): nginx's
        # header filter writes its own for a 101 too ("if (r->headers_out.date == NULL)"), the
        # upstream's hidden (proxy_hide_header's default list).
        date = self.proxy._http_date()
        # (server-tokens + allow-backend-server-header: the upstream's Server passes, as on
        # any answer: proxy/_headers.py.)
        drop = RESPONSE_DROP_PASS_SERVER if passes_backend_server(self.settings) \
            else RESPONSE_DROP
        triples = [item for item in items
                   if item[1] not in drop and item[1] not in named
                   and (date is None or item[1] != b"date")]
        if self.settings.hide_headers:
            # hide-headers (proxy_hide_header) on a 101 too, as ASGI's hiding_send.
            hidden = hidden_of(self.settings)
            triples = [h for h in triples if h[1] not in hidden]
        if date is not None:
            triples.append((b"date", b"date", date))
        opts = req.opts
        if opts is not None and opts.response_rewrite is not None:
            # proxy-redirect-* / proxy-cookie-* on a 101 too: ngx_http_proxy_process_header
            # runs the proxy_redirect / proxy_cookie_* rewrites on every upstream head
            # (ngx_http_upstream_rewrite_location / _set_cookie, 101 included).
            triples = rewrite_response_headers(triples, opts.response_rewrite)
        # The affinity cookie of a new session, as on any response: sticky.lua puts it in
        # r->headers_out before the upstream answers, and nginx's header filter writes those
        # on a 101 too (browsers store a WebSocket handshake's cookies, RFC 6455 §4.1). The
        # ConfigMap's add-headers and the location's CORS and custom-headers too: ngx_http_
        # upstream_upgrade sends the 101 through the header filters (ngx_http_send_header),
        # headers-more's more_set_headers among them (no -s: every status).
        # HSTS too over TLS (a wss handshake), unless the upstream's 101 carries its own.
        has_hsts = any(h[1] == b"strict-transport-security" for h in triples)
        self._add_response_headers(req, triples, has_hsts, switch=True)
        headers = [(raw, v) for raw, _, v in triples]
        headers.append((b"connection", b"upgrade"))
        for raw, n, v in items:
            if n == b"upgrade":
                headers.append((raw, v))
        if not self._can_respond:
            self._close_all(now)
            return
        data = b"".join([b"HTTP/1.1 101 %s\r\n" % event.reason]
                        + [b"%s: %s\r\n" % h for h in headers] + [b"\r\n"])
        self._can_respond = False
        req.head_len += len(data)
        req.bytes_out += len(data)
        self._pending_head = data  # (for $sent_http_<name>: _emit_record)
        # A tunnel is not read ahead (nginx's ngx_http_upstream_upgrade: its own buffers of
        # proxy_buffer_size), whatever the response before it on this connection was.
        self.response_buffer = 0
        self._out.append(SendDownstream(data))
        assert up.h11 is not None
        self._tunnel = up.conn_id
        self._out.append(TunnelEstablished(up.conn_id))
        up_tail = up.h11.trailing_data[0]
        if up_tail:
            req.bytes_out += len(up_tail)
            self._out.append(SendDownstream(up_tail))
        client_tail = self._h11.trailing_data[0] + bytes(self._inbuf)
        self._inbuf.clear()
        if client_tail:
            self._send_upstream(up, client_tail)
        self._observe(req, up, now, True)
        self._set_timer(TimerKind.UPSTREAM_READ, self._read_timeout())

    def _response_complete(self, req: _Request, up: _Upstream, now: float) -> None:
        conn = up.h11
        assert conn is not None
        # "a connection is reused only when both sides finished cleanly": our request fully
        # sent, their response fully read, no stray bytes after it, keep-alive on both sides,
        # and the upstream did not close: a response read until the upstream closed (HTTP/1.1
        # without Content-Length or chunked) ends DONE, as keep-alive, at its EOF. Reused, its
        # reader (``_spare``, handed to the next connection, fresh or pooled) would still say
        # "closed": the next response arriving in two reads would be a 502, or its body cut.
        # nginx keeps such a connection neither: u->keepalive is set only once a known
        # length is read (ngx_http_proxy_input_filter_init, ..._copy_filter "if (p->length ==
        # 0) { ... r->upstream->keepalive = !r->upstream->headers_in.connection_close; }").
        # Nor after a HEAD or 204 whose head announced a body (``_H11Reader.spent``): a
        # body written late would answer the next request sent on the connection.
        reuse = (up.request_done and conn.their_state is h11.DONE and not conn.has_trailing
                 and not conn.peer_closed and not conn.spent
                 and self.settings.upstream_keepalive_connections > 0
                 and upstream_keeps(req.opts))
        self._observe(req, up, now, req.status < 500)
        if reuse:
            conn.start_next_cycle()
            self._spare = conn
        self._up = None
        self._out.append(CloseUpstream(up.conn_id, reuse))
        bw = self._bw
        if bw is not None and (bw.held or bw.delayed) and self._bw_req is req:
            if req.complete:
                # limit-rate: the upstream's part is done (its connection released, as nginx
                # frees it once the response is read into its buffers), the client's is not:
                # the request ends when the last held byte is sent and its delay ran out
                # (``_bw_timer``), as nginx's finalize waits for its write filter: the last
                # buffer (send_special NGX_HTTP_LAST) meets "if (c->write->delayed) { ...
                # return NGX_AGAIN; }". (Not waiting let back-to-back keep-alive requests
                # outrun the rate.)
                req.t_attempt_end = now
                self._bw_finish = req
                return
            # The connection closes after this response (the request body did not end):
            # what is held goes at once.
            req.bytes_out += len(bw.held)
            self._out.append(SendDownstream(bytes(bw.held)))
            bw.held.clear()
        # ``_finish_response``, inline (one call less on every proxied response):
        self._emit_record(req, now)
        if not req.complete:
            self._close_downstream()
            return
        self._next_cycle(now)

    def _finish_response(self, req: _Request, now: float) -> None:
        """The end of a proxied request whose response was sent whole: its record, then the
        next request (or the close)."""
        self._emit_record(req, now)
        if not req.complete:
            # The upstream answered before the request body ended: the client connection's
            # framing can no longer be trusted to stay in sync cheaply, close it.
            self._close_downstream()
            return
        self._next_cycle(now)

    def _observe(self, req: _Request, up: _Upstream, now: float, ok: bool) -> None:
        observe = getattr(self.proxy.router, "observe", None)
        if observe is not None:
            try:
                observe(req.decision, up.endpoint, now - up.started, ok)
            except Exception:
                # Feedback only (balancer statistics): the request still gets its answer,
                # retry, 502 or 504.
                self.proxy._hook_failed("router.observe")

    @staticmethod
    def _race_retry_allowed(req: _Request, now: float) -> bool:
        """Whether the keep-alive race may be retried under the route's proxy-next-upstream:
        nginx counts a cached connection's failure as no try ("if (u->peer.cached && ft_type
        == NGX_HTTP_UPSTREAM_FT_ERROR) { u->peer.tries++; }") but still asks the location's
        mask and time budget (ngx_http_upstream_next: "((u->conf->next_upstream & ft_type) !=
        ft_type) || ... (timeout && ngx_current_msec - u->peer.start_time >= timeout)"), so
        ``off`` or a list without ``error`` answers 502. No route options (a router of an
        embedder's own): Go's Transport rule alone."""
        opts = req.opts
        if opts is None:
            return True
        nxt = opts.next_upstream
        return "off" not in nxt and "error" in nxt and not _past_budget(req, opts, now)

    def _retry_allowed(self, req: _Request, up: _Upstream, cond: str, now: float) -> bool:
        """nginx's ngx_http_upstream_next / ngx_http_upstream_test_next decision: no retry when
        "u->peer.tries == 0 || ((u->conf->next_upstream & ft_type) != ft_type) ||
        (u->request_sent && r->request_body_no_buffering) || (timeout && ngx_current_msec -
        u->peer.start_time >= timeout)" (our body copy stands in for request buffering)."""
        # nginx has no exception for an upgrade request: a WebSocket GET whose connect was
        # refused (or that was sent and dropped before the 101) goes to the next endpoint.
        # Once the 101 is forwarded the response has begun and nothing is retried.
        if req.response_started:
            return False
        opts = req.opts
        if opts is None:
            return False
        nxt = opts.next_upstream
        if "off" in nxt or cond not in nxt:
            return False
        if opts.next_upstream_tries and \
                len(req.tried) - req.free_tries >= opts.next_upstream_tries:
            return False
        if _past_budget(req, opts, now):
            return False
        if up.sent:
            # "idempotent methods only once the request was sent"
            if not req.idempotent and "non_idempotent" not in nxt:
                return False
            if not resendable(req):
                # Not kept (over 1 MiB), or "u->request_sent && r->request_body_no_buffering".
                return False
        return True

    def _try_failed(self, up: _Upstream, cond: str, now: float) -> None:
        """One try failed before a usable response head: retry elsewhere or answer 502/504."""
        req = self._req
        if req is None or self._up is not up:
            return
        # The attempt ends here (nginx keeps a response time for a failed try too); a record
        # emitted later (a local 502 waiting for the rest of the body) keeps this time.
        req.t_attempt_end = now
        if req.response_started:
            # "If the response had already begun, the client connection is closed instead."
            self._close_all(now)
            return
        self._close_upstream(False)
        if cond == "error" and up.reused and not up.received and (
                not up.sent or (resendable(req) and (
                    req.idempotent or (req.opts is not None
                                       and "non_idempotent" in req.opts.next_upstream)))) \
                and self._race_retry_allowed(req, now):
            # The keep-alive race: the upstream closed an idle pooled connection just as we
            # reused it. Try once more on a fresh connection; it does not count as a try, but
            # nginx logs it as one (a new upstream state per connect, status 502 for the dead
            # one). A sent non-idempotent request only when proxy-next-upstream lists
            # non_idempotent: nginx's rule for any sent POST ("ft_type |=
            # NGX_HTTP_UPSTREAM_FT_NON_IDEMPOTENT"), the cached connection's failure included.
            req.statuses.append(502)
            req.free_tries += 1
            # Where to, as any retry: nginx frees the cached peer as failed
            # (ngx_http_upstream_next: "u->peer.free(&u->peer, u->peer.data, state)" with
            # NGX_PEER_FAILED, before the "u->peer.tries++" above) and connects through the
            # balancer again: the keepalive module's get "ask[s] balancer" first
            # ("kp->original_get_peer"), and ngx_http_lua_balancer_get_peer runs ingress-nginx's
            # balance() on every get (round-robin's next turn, an untried endpoint for EWMA, a
            # moved session). The same endpoint only when the router has no untried one.
            # Not observed (x51 s36): the endpoint did nothing wrong (it closed an idle
            # connection), and ingress-nginx's EWMA samples only the last upstream, in the log
            # phase (balancer/ewma.lua after_balance: "split.get_last_value(
            # ngx.var.upstream_addr)"); tried it stays (ewma.lua balance's tried_endpoints).
            nxt = self._next_endpoint(req)
            if nxt is not None:
                self._start_retry(req, nxt, now, pooled=False)
                return
            req.rewind()
            self._open(req, up.endpoint, now, pooled=False)
            return
        # The failed try's status is the one nginx would answer for it (ngx_http_upstream_next:
        # "case NGX_HTTP_UPSTREAM_FT_TIMEOUT: ... status = NGX_HTTP_GATEWAY_TIME_OUT; ...
        # default: status = NGX_HTTP_BAD_GATEWAY;" then "u->state->status = status;"), so
        # $upstream_status reads "502, 200", never "-, 200".
        status = 504 if cond == "timeout" else 502
        req.statuses.append(status)
        self._observe(req, up, now, False)
        if self._retry_allowed(req, up, cond, now):
            nxt = self._next_endpoint(req)
            if nxt is not None:
                self._start_retry(req, nxt, now)
                return
        if req.opts is not None and status in req.opts.custom_http_errors and \
                self._error_page(req, status, now):
            return  # custom-http-errors on our own 502/504 (nginx's error_page)
        self._local_response(req, status, now)

    def _next_endpoint(self, req: _Request) -> tuple[str, int] | None:
        """The endpoint of the request's next try (``router.next_endpoint``), None when none
        is left. A router whose ``next_endpoint`` takes ``request=`` (Router's does) is given
        the request as ``route`` was (its method, Host as received, path, headers, client
        address and, when ``route`` took it, query): consistent hashing then retries each key
        to the same endpoint. Built only here, on a retry: the request path pays nothing."""
        proxy = self.proxy
        router = proxy.router
        if router is not proxy._query_router:
            proxy._note_router(router)  # replaced since this request was routed
        if proxy._retry_request:
            event = req.event
            return router.next_endpoint(  # type: ignore[no-any-return]
                req.decision, tuple(req.tried), request=RequestContext(
                    req.method_s, req.host_raw, req.path,
                    event.headers if event is not None else (), req.client_ip,
                    req.query if proxy._route_query else None))
        return router.next_endpoint(req.decision, tuple(req.tried))  # type: ignore[no-any-return]

    def _start_retry(self, req: _Request, endpoint: tuple[str, int], now: float,
                     pooled: bool = True) -> None:
        # The retry's cookie: a new session served elsewhere, or (session-cookie-change-on-
        # failure) an existing one moved, must name the endpoint that answers (ingress-nginx's
        # retry runs balance() again, which sets the cookie; the later Set-Cookie wins). The
        # router answers None when nothing is to be sent, decision.set_cookie when unchanged;
        # a router without session_cookie keeps the decision's.
        session_cookie = getattr(self.proxy.router, "session_cookie", None)
        if session_cookie is not None:
            req.set_cookie = session_cookie(req.decision, endpoint)
        req.rewind()
        self._open(req, endpoint, now, pooled)

    def _error_page(self, req: _Request, status: int, now: float,
                    up: _Upstream | None = None) -> bool:
        """custom-http-errors: fetch the answer to ``status`` from the router's error page
        backend (``router.error_page``) instead; ``up``: the try whose response head is
        dropped. False (nothing done) when there is none, for a second error of the same
        request, an upgrade, or a body too large to send again (proxy/_error_pages.py)."""
        error_page = getattr(self.proxy.router, "error_page", None)
        if (error_page is None or self._error_page_req is req or req.upgrade
                or req.replay is None or req.event is None):
            return False
        event = req.event
        # (errturn s31) The pick takes a round-robin turn of the default backend; its connect
        # (``_open``, which records the try) follows in this same step, nothing between that
        # can fail or wait: the turn is used, as nginx's balancer picks the named location's
        # peer at its connect (ingress-nginx balancer.lua ``balance()``). Nothing to give
        # back (``_emit_record`` gives back only the turn of a request without a try).
        try:
            dec = error_page(req.decision, RequestContext(
                req.method_s, req.host_raw, req.path, event.headers, req.client_ip, req.query))
        except Exception:
            self.proxy._hook_failed("router.error_page")
            return False
        if dec is None or dec.endpoint is None:
            return False
        if up is not None:
            # nginx's proxy_intercept_errors: the upstream's head and body are dropped (the
            # connection closed), its status logged ($upstream_status "404, 200").
            req.statuses.append(status)
            self._observe(req, up, now, status < 500)
            self._close_upstream(False)
            req.t_header = now  # (its head parsed: its header_time, as for a retried head)
        self._error_page_req = req
        self._error_page_at = len(req.tried)  # (RequestRecord.upstream_redirect)
        host = None
        if req.opts is not None and req.opts.upstream_vhost is not None:
            # The named location's "proxy_set_header Host $best_http_host", not the vhost.
            host = req.host_raw.encode("ascii") if req.host_raw and not req.host_from_target \
                else req.host.encode("ascii")
        req.up_head = error_page_head(req.up_head, status, dec, event.headers._full_items,
                                      req.original_uri, req.query, host)
        req.decision = dec
        req.set_cookie = dec.set_cookie
        if req.opts is not None:
            # The named location's retries are nginx's defaults, not the location's
            # proxy-next-upstream (proxy/_error_pages.py ``error_page_options``).
            req.opts = error_page_options(req.opts)
            if req.opts.response_rewrite is not None:
                # Nor has it the location's proxy_redirect / proxy_cookie_* (nginx.tmpl writes
                # them in location blocks only; CUSTOM_ERRORS' "location @custom_..." is the
                # server's): the error page's Location and Set-Cookie pass as sent, as
                # IngressASGI's error page app's (_asgi_error_pages.py: not rewriting_send).
                from dataclasses import replace
                req.opts = replace(req.opts, response_rewrite=None)
        # The named location's tries are its own (proxy-next-upstream-tries/-timeout).
        req.free_tries = len(req.tried)
        req.t_tries = None
        req.rewind()
        self._open(req, dec.endpoint, now)
        return True

    # ---------------------------------------------------------------- answers and cycles
    def _error_response(self, status: int, req: _Request | None, now: float) -> None:
        """A malformed or refused request: answer, then close (SEMANTICS §9)."""
        self._feeding = False
        if req is None:
            req = self._unparsed_request(now)
        if status == 408:
            # client_header_timeout (ngx_http_close_request) and client_body_timeout
            # (ngx_http_finalize_request(r, NGX_HTTP_REQUEST_TIME_OUT): terminate): nginx
            # answers nothing and the request is not complete; the 408 sent here is ours.
            req.terminated = True
        self._inbuf.clear()
        self._close_upstream(False)
        if req.response_started:
            self._close_all(now)
            return
        if req.answered:
            # A local answer (404, a redirect, 403...) is out already and the body being
            # discarded turned out malformed (a bad chunk line, a bare LF in the trailers): a
            # second response for the one request would be read by the client as the answer to
            # its next one. nginx closes, writing nothing (ngx_http_discarded_request_body_
            # handler: "if (rc >= NGX_HTTP_SPECIAL_RESPONSE) { c->error = 1;
            # ngx_http_finalize_request(r, NGX_ERROR);"); the record keeps the status sent.
            self._emit_record(req, now)
            self._close_downstream(linger=False)
            return
        self._local_response(req, status, now, close=True)

    def _unparsed_request(self, now: float) -> _Request:
        """The request of a head in ``_inbuf`` that ends before it was parsed (raw checks,
        limits, the head timeout, the client's EOF), made the current one. It began at the
        head's first byte, as a parsed one (``_try_head``): nginx creates the request at the
        first byte read (ngx_http_create_request, from the wait or keep-alive handler), so a
        head timeout's $request_time is about client_header_timeout."""
        start = self._head_started
        req = self._req = _Request(now if start is None else start)
        req.client_ip = self.peer_ip
        # The empty lines before a request line are not part of it: nginx's request_start is
        # set at the first byte that is not CR or LF (ngx_http_parse_request_line, sw_start).
        # ``_try_head`` dropped them but the last one of a client that sent nothing else (or
        # a lone CR, its LF still to come): its request has no line ($request "-") and a
        # $request_length of 0.
        head = self._inbuf.lstrip(b"\r\n")
        # What nginx's $request shows for it, the bytes up to the first CR or LF.
        req.raw_head = bytes(head[:self.settings.max_request_line + 2])
        # Its $request_length: the bytes of the head received, as for a head h11 refuses
        # (``_try_head`` counts it before h11 sees it): a complete head to its blank line
        # (not the body or pipelined bytes after it), else all of the partial head read
        # (a limit passed, an invalid method, the head timeout, the client's EOF).
        end = head.find(b"\r\n\r\n")
        req.bytes_in = end + 4 if end >= 0 else len(head)
        return req

    def _head_cut_short(self, now: float, status: int = 400) -> None:
        """The client closed with a request head partly read: logged, never answered
        (``status`` 408: a head of empty lines only, at its deadline, ``timer_expired``).

        nginx's ngx_http_read_request_header on recv() == 0: "client prematurely closed
        connection" ... "c->error = 1; ... ngx_http_finalize_request(r, NGX_HTTP_BAD_REQUEST)";
        with c->error that is ngx_http_terminate_request, whose status is the rc when nothing
        was sent (400), and ngx_http_free_request runs the log phase: a 400 line with the
        request line as read, no byte sent, $request_completion empty (terminated). The
        request began at its first byte (ngx_http_create_request, from the wait or keep-alive
        handler's first read), so its $request_time runs from there."""
        req = self._unparsed_request(now)
        req.status = status
        req.terminated = True
        self._inbuf.clear()
        self._emit_record(req, now)
        self._close_downstream()

    def _local_response(self, req: _Request, status: int, now: float,
                        extra: list[tuple[bytes, bytes]] | None = None, *, close: bool = False,
                        body: bytes | None = None) -> None:
        if body is None:
            body = local_body(status)
        headers: list[tuple[bytes, bytes, bytes]] = [
            (b"content-type", b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", b"content-length", b"%d" % len(body))]
        date = self.proxy._http_date()
        if date is not None:
            # nginx's own answers carry its Date (ngx_http_header_filter writes it after
            # Server, before Content-Type; ingress-nginx sends no Server).
            headers.insert(0, (b"date", b"date", date))
        if extra:
            headers.extend((n, n, v) for n, v in extra)
        if status == 204:
            # nginx's header filter: "if (r->headers_out.status == NGX_HTTP_NO_CONTENT) { ...
            # ngx_str_null(&r->headers_out.content_type); ... content_length = NULL" (and RFC
            # 9110 §8.6: no Content-Length on a 204): a CORS preflight's answer.
            headers = [h for h in headers if h[1] not in (b"content-type", b"content-length")]
        if close or not self._keep_alive_allowed(req):
            close = True
        if req.method == b"HEAD":
            body = b""
        self._add_response_headers(req, headers)
        if self._auth_cookie is not None:
            auth_add_cookies(self, req, status, headers)
        if close and _CONNECTION_CLOSE not in headers:
            headers.append(_CONNECTION_CLOSE)
        elif req.http_version == "1.0" and req.keep_alive and _CONNECTION_CLOSE not in headers:
            headers.append(_CONNECTION_KEEP_ALIVE)
        conn = self._h11
        if self._can_respond:
            head, _, close_after = _response_head(
                status, REASONS.get(status, b""), headers, req.method,
                req.http_version == "1.1", req.keep_alive)
            self._can_respond = False
            self._close_after = close_after
            close = close or close_after
        else:
            # No request h11 accepted (raw-head rejections), or a response was already
            # written for it: write this one as it is, then close.
            lines = [b"HTTP/1.1 %d %s" % (status, REASONS.get(status, b""))]
            lines += [n + b": " + v for n, _, v in headers]
            head = b"\r\n".join(lines) + b"\r\n\r\n"
            close = True
        data = head + body
        req.status = status
        req.answered = True
        self._limit_chunked_body(req)  # (none now: the body is discarded)
        # proxy-buffering's read-ahead is an upstream response's (set at its head): a local
        # answer has no upstream to read ahead of its client, whatever the response before it
        # on this connection was. Kept, the driver whose client's buffer fills went on "reading
        # ahead" for it, charging the write buffer to response_buffering_budget
        # (proxy/_server.py ``pause_writing``), as a fresh connection does not.
        self.response_buffer = 0
        # No upstream will take the body now: drop what was held for one (and read again).
        req.take_unsent()
        if type(req.replay) is Buffered:
            release_buffered(req)  # (proxy-request-buffering "on": its budget given back)
        req.head_len += len(head)
        req.bytes_out += len(data)
        self._pending_head = head  # (for $sent_http_<name>: _emit_record)
        self._out.append(SendDownstream(data))
        if close:
            self._emit_record(req, now)
            self._close_downstream()
            return
        if req.complete or conn.their_state is h11.DONE:
            self._emit_record(req, now)
            self._next_cycle(now)
            return
        # Keep reading (and discarding) the request body; _on_request_complete will start the
        # next cycle. No "100 Continue" was or will be sent for it (nginx's special response
        # handler: "r->expect_tested = 1;" before ngx_http_discard_request_body), so a client
        # that waits for one may never send the body: bounded by nginx's lingering timers.
        # The announced framing still decides where the next request starts: bytes inside it
        # are never parsed as a request.
        req.discard_until = now + _DISCARD_TIME
        self._set_timer(TimerKind.BODY, _DISCARD_TIMEOUT)

    def _emit_record(self, req: _Request, now: float) -> None:
        if req.done:
            return
        req.done = True
        self._requests += 1
        if not req.tried and req.decision is not None:
            # Routed and answered without a connect (a local answer, a refused body, the
            # client gone): the turn its pick took goes back (proxy/_request_buffer.py).
            give_back_turn(self, req)
        if self._bw_req is req:
            # limit-rate counts per request: the next response starts its own (a delay still
            # running is dropped, its bytes are sent).
            self._bw = self._bw_req = self._bw_finish = None
            if self._timer is TimerKind.RATE:
                self._set_timer(None, None)
        held = self._limit_held
        if held is not None and held[0] is req:
            self._limit_held = None
            RateLimiter.release(held[1])
        if not self.proxy.records:
            return
        if req.request_id is None and not req.up_head:
            # No upstream head was built, so no id was chosen: a local answer (404, 503,
            # redirects, 400/413/414/431, 408...). ingress-nginx logs $req_id for every request.
            req.request_id = self._local_request_id(req)
        d = req.decision
        m = d.match if d is not None else None
        served = getattr(d, "served", None) if d is not None else None
        canary = bool(d.canary) if d is not None else False
        # nginx's $upstream_header_time / $upstream_response_time (ngx_http_upstream_module):
        # "keeps time spent on receiving the response header from the upstream server" / "keeps
        # time spent on receiving the response from the upstream server"; both count from the
        # attempt's start (ngx_http_upstream_connect), "Times of several responses are
        # separated by commas": one per try. The record's two times are the last try's, the one
        # whose response (or failure) the client got; ``upstream_response_times`` and
        # ``upstream_tries`` list every try's.
        t_attempt = req.t_attempt
        s = self.settings
        ev = req.event
        statuses = req.statuses
        if len(statuses) < len(req.tried):
            # A try that ended with no status of its own (the client left or stalled first, the
            # request body timed out): nginx's state keeps status 0, printed "-"
            # (ngx_http_upstream_status_variable: "if (state[i].status) ... else *p++ = '-'"),
            # one entry per address in $upstream_addr.
            statuses = statuses + [None] * (len(req.tried) - len(statuses))
        resp_up = req.resp_up
        last_time = None if t_attempt is None else max(
            (now if req.t_attempt_end is None else req.t_attempt_end) - t_attempt, 0.0)
        #: disable-access-log ("access_log off;") and skip-access-log-urls ("access_log ...
        #: if=$loggable", proxy/_block.py) hold for every location, the error page's too.
        rec = RequestRecord(
            method=req.method_s, host=req.host, path=req.path, query=req.query,
            rule_path=m.path if m is not None else None,
            ingress=m.ingress if m is not None else None,
            service=d.service if d is not None else None,
            namespace=d.namespace if d is not None else None,
            canary=canary,
            status=req.status, bytes_in=req.bytes_in, bytes_out=req.bytes_out,
            upstreams=tuple(req.tried),
            upstream_status=statuses[-1] if statuses else None,
            upstream_statuses=tuple(statuses), start=req.start,
            upstream_connect=req.t_connect, upstream_first_byte=req.t_first, end=now,
            request_id=req.request_id, client_ip=req.client_ip, http_version=req.http_version,
            user_agent=req.user_agent, referer=req.referer,
            # nginx's $upstream_response_length: every byte read after the head, added before
            # the chunked filter decodes it (ngx_http_upstream_process_non_buffered_request:
            # "u->state->response_length += n; if (u->input_filter(...": framing included).
            upstream_response_length=0 if resp_up is None
            else resp_up.fed - resp_up.head_bytes,
            service_port=getattr(served if served is not None else m, "port", None),
            primary_service=getattr(m, "service", None) if canary else None,
            primary_port=getattr(m, "port", None) if canary else None,
            remote_user=basic_auth_user(req.authorization),
            request_line=_raw_request_line(req.raw_head) if ev is None else (
                ev.method + b" " + ev.target + b" HTTP/" + ev.http_version).decode("latin-1"),
            body_bytes_out=max(req.bytes_out - req.head_len, 0),
            # $http_<name> and $proxy_add_x_forwarded_for (the parser's list, not a copy),
            # $scheme, $server_port: for log-format-upstream (_logformat.py).
            request_headers=None if ev is None else ev.headers._full_items,
            scheme=self.scheme, server_port=self.local_port,
            upstream_redirect=self._error_page_at if self._error_page_req is req else None,
            upstream_connect_time=req.connect_time,
            upstream_header_time=None if t_attempt is None or req.t_header is None
            else max(req.t_header - t_attempt, 0.0),
            phase=req.phase, rate_limit_log=req.rate_log,
            upstream_response_time=last_time,
            upstream_response_times=() if last_time is None
            else (*req.times, last_time) if req.times else (last_time,),
            # enable-access-log "false" (nginx's "access_log off;" in the rule's location; for
            # a path of a known host no rule covers, in its server's ``location /``: the
            # host's first Ingress's, ``_unrouted_options``); custom-http-errors' answer
            # comes from the named location @custom_..., which has no access_log off, and
            # nginx logs by the location the request ends in.
            access_log=((req.opts.access_log if req.opts is not None
                         else (sl := self._server_location) is None or sl[0] is not req
                         or sl[1].access_log)
                        or self._error_page_req is req)
            and not (s.disable_access_log or s.skip_access_log_urls
                     and skip_logging(s, req.original_uri.encode("latin-1"))),
            # (for log-format-upstream only, its one reader, as ``connection`` below)
            upstream_tries=(*req.done_tries, _try_facts(req))
            if s.log_format_upstream and req.try_up is not None else (),
            request_complete=not req.terminated and req.status != 0,
        )
        if s.log_format_upstream:
            # log-format-upstream's connection variables (_logformat.py): this connection's
            # facts (copied once: a record kept keeps no connection alive), the request's
            # number on it, the head it was sent (none: None).
            facts = self._log_facts
            if facts is None:
                from .._logformat import connection_facts
                facts = self._log_facts = connection_facts(self)
            set_record_connection(rec, (facts, self._requests,
                                        self._pending_head if req.head_len else None))
            self._pending_head = None
        self._out.append(RequestDone(rec))

    def _local_request_id(self, req: _Request) -> str | None:
        """$req_id for a request answered here, by the rule ``_build_upstream_headers`` applies
        to a proxied one (nginx.tmpl: "map $http_x_request_id $req_id { default
        $http_x_request_id; {{ if $cfg.GenerateRequestID }} "" $request_id; {{ end }} }"): the
        client's first X-Request-ID when it is an opaque token (``valid_request_id``) and not
        named in Connection (the proxied path drops those before it looks), else a generated
        id when ``generate_request_id`` is on, else None. The auth subrequest's id too
        (proxy/_extauth.py ``_request_id``), chosen before the backend's head is built.

        A request whose head was refused before h11 parsed it (bare LF, 414/431 limits, a head
        deadline: no ``req.event``) gets a generated id, never one read out of bytes that were
        refused as malformed: nginx's $http_x_request_id is empty for a request line it could
        not parse, so its map falls to $request_id too."""
        ev = req.event
        if ev is not None:
            first = client_request_id((name, value) for _, name, value in ev.headers._full_items)
            if first is not None:
                return first.decode("latin-1")
        if self.settings.generate_request_id:
            try:
                return self.proxy.request_id()
            except Exception:
                return self.proxy._request_id_failed()
        return None

    def _next_cycle(self, now: float) -> None:
        """The response is complete and the request fully read: next request or idle."""
        conn = self._h11
        req = self._req
        self._busy = False
        self._feeding = False
        self._req = None
        # custom-http-errors: the finished request (and its kept body, up to _REPLAY_LIMIT)
        # is not held by an idle keep-alive connection.
        self._error_page_req = None
        if self._mirror is not None:
            drop_copy(self._mirror)  # a mirror copy of a request cut short (not mirrored)
            self._mirror = None
        if self.closed:
            return
        tail = self._tail
        self._tail = b""
        if tail:
            self._inbuf[:0] = tail
        # (h11's MUST_CLOSE for an HTTP/1.0 request is overruled by its "keep-alive":
        # ``req.keep_alive``, set by ``_parse_request``.)
        if self._close_after or (conn.their_state is h11.MUST_CLOSE
                                 and not (req is not None and req.keep_alive)) \
                or not self._keep_alive_allowed_after():
            self._close_downstream()
            return
        # The response was written here, not through h11 (its state is still SEND_RESPONSE):
        # a fresh parser per request costs less than driving h11's state machine by ``send``.
        self._reset_server_h11()
        self._can_respond = False
        if self._inbuf:
            self._head_started = now
            self._set_timer(TimerKind.HEAD, self.settings.client_header_timeout)
            # Not parsed here but by ``_flush``'s loop: a burst of pipelined requests answered
            # locally must not recurse once per request (RecursionError = a remote DoS).
            self._parse_next = now
        else:
            self._set_timer(TimerKind.IDLE, self.settings.keep_alive)

    def _has_next_head(self) -> bool:
        # Only asked after a half-close (rare): is a complete next request already buffered?
        return (self._tail + bytes(self._inbuf)).find(b"\r\n\r\n") >= 0

    def _keep_alive_allowed_after(self) -> bool:
        s = self.settings
        if s.keep_alive <= 0 or (self._eof and not self._inbuf):
            return False
        return self._requests < s.keep_alive_requests  # 0: none after the first (nginx)
