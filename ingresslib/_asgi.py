"""IngressASGI: an ASGI 3 app that routes by the Ingress rules to mounted ASGI apps.

The Kubernetes objects say which backend (``namespace/service:port``) a request reaches; the
``backends`` mapping says which in-process ASGI app plays that backend. The same manifests that
configure the cluster's ingress then route inside one Python process (docs/asgi.md).

Scope rules (ASGI HTTP/WebSocket connection scope, asgiref ``specs/www.rst``):

- The routing path is the canonical form (SEMANTICS §5) of the request's path under the
  incoming ``root_path`` (``_asgi_scan``: how ``raw_path``, ``path`` and ``root_path`` are
  read). A path that has no canonical form is answered ``400`` and never reaches an app.
- The mounted app sees ``path = root_path + canonical path`` (percent-decoded, as ``path``
  always is), ``raw_path`` = the incoming ``root_path`` (encoded) + the canonical path
  (encoded), as uvicorn (0.54 and later) and Starlette's ``Mount`` give them, so app and
  ingress agree on one path ("the path the router matched is the path the backend receives").
- For a ``Prefix`` rule, ``root_path`` is extended by the rule's path without its trailing
  ``/``, like Starlette's ``Mount``: rule ``/api``, request ``/api/users`` → ``root_path`` +=
  ``"/api"``, ``path`` stays ``/api/users``; the app routes on ``/users``. ``Exact``,
  ``ImplementationSpecific`` and default backends leave ``root_path`` as it was. Pass
  ``mount_prefix=False`` to never extend it.
- ``scope["ingresslib.decision"]`` holds the :class:`~ingresslib._router.Decision` (None when
  only the ``fallback`` app serves a request no rule matched). Nothing is written into
  ``scope["state"]``: that dict belongs to the app's lifespan.
- ``scope["extensions"]`` is the server's less the response extensions whose messages would
  pass what the proxy does to an answer (``_offered``): never ``http.response.early_hint`` or
  ``http.response.push``; with use-gzip / enable-brotli not ``http.response.zerocopysend``,
  with limit-rate not ``zerocopysend`` nor ``pathsend``. The app then sends
  ``http.response.body``, as to a server offering none (asgiref ``extensions.rst``).

Status answers: no rule → ``404``; a rule whose backend has no mounted app (and no ``fallback``)
→ ``503``, as the proxy answers a backend with no endpoint. Where the proxy answers a request
itself, so does this app, before any routing: a Host the proxy refuses
(``check_host_header``: an empty one too), two different Host values, or a second line of a
header nginx reads once (``UNIQUE_REQUEST``: Authorization, If-None-Match...) → ``400``;
a Content-Length or Transfer-Encoding the proxy refuses (``content_length``: ``+5``, ``1_0``,
over 2**63 - 1; ``transfer_coding_error``: with a Content-Length, on HTTP/1.0, not
``chunked``) → ``400``, whatever ``proxy-body-size`` says; a method with a character other than ``A-Z``, ``_``, ``-`` (``get``) → ``400``;
``CONNECT`` and ``TRACE`` → ``405`` (after the head's 400s); ``OPTIONS *`` → ``200`` with
``allow``;
an absolute-form target (uvicorn passes it through) is routed on its path when its authority
names the same host and port as Host (``same_authority``: ``http://A.test:80/x`` with ``Host:
a.test``), else ``400``. With ``require_endpoints=True`` a
backend whose Service has no ready endpoint in the resources also gets ``503``; by default the
mounted app is the endpoint. WebSocket requests are routed the same way; a refusal uses the
``websocket.http.response`` extension when the server offers it, else closes (the server then
answers 403). Lifespan events go to every mounted app (and the fallback).

Parity with the proxy core (proxy/_connection.py), wherever ASGI lets it (docs/asgi.md "Where
it differs from the proxy" lists the rest): the same redirects (ssl-redirect for ``tls_hosts``,
force-ssl-redirect, app-root, temporal-/permanent-redirect, a rewrite-target URL,
from-to-www-redirect; for a request without Host; for a known host's path no rule covers,
before the 404 or the ``fallback``) before the 503; ``413`` for a body over
``proxy-body-size`` (a WebSocket handshake's declared one too); HSTS on an ``https`` or
``wss`` scope (not on a 101) on every answer, the affinity cookie on the app's (none on a
local answer), and the app's ``Server``/``X-Pad``/``X-Accel-*`` response headers dropped; and
the app sees the request headers the proxy sends its backend (hop-by-hop and odd names out, the
forwarded family and ``X-Request-ID`` written by this hop), the scope's ``client`` playing the
TCP peer. The decisions are the proxy's own code (proxy/_actions.py, proxy/_headers.py), not
copies of it. The app is the request's upstream, its call the connect: a routed request
answered without calling the app its decision chose (a local answer, the ``fallback``) gives
the turn its pick took back to the router (``Router.give_back``), as the proxy does for a
request that never connects (nginx picks the peer at the connect, ingress-nginx
``balancer.lua`` ``balance()``).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, MutableMapping
from typing import Any, Protocol
from urllib.parse import quote, unquote

from ._asgi_lifespan import _SubLifespan, close_idle_auth
from ._asgi_mounts import _MountReport
from ._asgi_reply import BodyTooLarge as BodyTooLarge
from ._asgi_reply import _answer_options, _Reply, reply_type
from ._asgi_error_pages import ErrorPages
from ._asgi_mirror import mirror_receive, mounted_mirror
from ._asgi_extauth import authenticate, request_id_of, with_auth_headers
from ._asgi_scan import (
    _CHUNKED,
    _CONNECTION,
    _FORWARDED,
    _FORWARDED_FOR,
    _HOST,
    _LENGTH,
    _NONE,
    _PASS,
    _PATH_SAFE,
    _REQUEST_ID,
    _UNIQUE,
    _UNIQUE_DROP,
    _UPGRADE,
    _absolute_form,
    _authorization,
    _has_host,
    _NotScanned,
    _read_headers,
    _read_names_for,
    _request_uri,
    _scan_headers,
    _scan_routing,
)
from ._asgi_scan import _routing_target as _routing_target
from ._errors import BadRequestError, short_repr
from ._normalize import canonical_path, normalize_host
from ._resources import Resources
from ._router import Decision, Router
from ._router import takes_query as _takes_query
from .proxy._actions import (
    HookFailures,
    RouteOptionsSource,
    _no_tls,
    access_answer,
    access_job,
    body_too_large,
    denied_first,
    location_host_of,
    redirect_for,
    tls_host_predicate,
    unrouted_global_limit,
    unrouted_headers,
    unrouted_limit,
)
from .proxy._annotations import RouteOptions
from .proxy._block import blocked_scope
from .proxy._headers import (
    FORWARDED_DROP,
    HEADER_NAME_CHARS,
    METHOD_CHARS,
    NGINX_METHODS,
    REQUEST_DROP,
    UNIQUE_REQUEST,
    HeaderKind,
    RequestIds,
    TrustPolicy,
    client_address,
    first_forwarded_host,
    forwarded_for_value,
    forwarded_redirect_host,
    hidden_of,
    hsts_value,
    request_header_kind,
    special_request_names,
    split_absolute_form,
    valid_request_id,
)
from .proxy._cors import PREFLIGHT_STATUS, asgi_origin
from .proxy._header_sets import (
    combine,
    config_maps_of,
    global_headers,
    hiding_send,
    set_header_pairs,
    upstream_set_headers,
)
from .proxy._error_pages import SET_NAMES as DEFAULT_BACKEND_SET_NAMES, default_backend_fields
from .proxy._globalauth import effective_auth
from .proxy._satisfy import any_access
from .proxy._auth_unasked import unasked_pairs
from ._asgi_fallback_auth import fallback_auth
from ._asgi_unverified import without_client_cert_headers
from .proxy._digest import asgi_request
from .proxy._ratelimit import Held, RateLimiter
from .proxy._globalratelimit import GlobalRateLimiter
from .proxy._bandwidth import throttled_send
from .proxy._clientcert import HostAuths
from .proxy._settings import ProxySettings
from .proxy._response_head import rewriting_send
from .proxy._gzip import gzip_send

__all__ = ["IngressASGI", "BodyTooLarge", "Scope", "Message", "Receive", "Send", "ASGIApp",
           "DECISION_KEY"]

_log = logging.getLogger("ingresslib.asgi")

# Starlette's aliases, defined here so ingresslib does not depend on Starlette.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The scope key holding the routing Decision.
DECISION_KEY = "ingresslib.decision"


class RouterLike(Protocol):
    """A router as ``IngressASGI`` (and the proxy) take one: a ``Router``, or your own object
    around one (docs/router.md "Your own code around ``route``"). ``route`` is called for every
    request, with ``query=`` when its signature takes it (a ``query`` parameter or
    ``**kwargs``); ``update`` by ``IngressASGI.update``; ``table``, ``resources`` and the
    Router's internals are read when present (app-root, www redirects, basic auth's Secrets,
    the mount report), as the proxy reads them."""

    def route(self, method: str, host: str, path: str, headers: Any, client_ip: str | None,
              /) -> Decision | None: ...


async def _hash_off_loop(access: Any, client_ip: str | None, scope: Scope) -> None:
    """The basic-auth password hashing ``access_answer`` would do on the event loop, done in
    a worker thread first (``access_job``; at most one per location's basic auth): its
    verdict is remembered, so ``access_answer`` then hashes nothing."""
    for _ in range(2):
        job = access_job(access, client_ip, lambda: _authorization(scope))
        if job is None:
            return
        await asyncio.to_thread(job)


@functools.lru_cache(maxsize=64)
def _quoted_root(root: str) -> bytes:
    """A server's ``root_path`` percent-encoded, for the front of the app's ``raw_path``
    (a server has one or a few: remembered)."""
    return quote(root, safe=_PATH_SAFE).encode("ascii")


def _rewrites(opts: RouteOptions, path: str) -> bool:
    """Whether the route's rewrite-target rewrites the canonical ``path`` (the proxy sends
    X-Forwarded-Prefix then only: template.go ``buildProxyPass`` writes it with the
    ``rewrite``, not in the exact twin ``= /foo`` of a Prefix ``/foo`` rewritten to ``/foo``).
    A regex past ``REWRITE_TIMEOUT`` counts as rewriting: the adapter applies no rewrite, so
    the header is all it would have decided."""
    try:
        return opts.rewrite_applies(path)
    except TimeoutError:
        return True


# Shared with the proxy core, so the two cannot drift apart: the reason phrases and local
# answer bodies, the request-id generator and the header-name rules (proxy/_headers.py), the
# route options and the redirect decision (proxy/_actions.py ``RouteOptionsSource``,
# ``redirect_for``), the client address (``client_address``). What stays written here is the
# ASGI side of the same rules: the proxy builds its backend head as bytes in one pass over
# h11's parsed headers, an ASGI app takes a list of (name, value) pairs (``_scan_headers``
# for the common request, in the pass that reads Host; ``_backend_headers`` for any other).
# Per request, only what the request changes is computed: what a header name is (per
# settings), what a route implies (per Match) and a raw path's canonical form are remembered.


def _check_backends(backends: object) -> dict[str, ASGIApp]:
    """``backends`` as a dict, refusing one that is no mapping of ``"namespace/service[:port]"``
    strings, naming the argument: a list of pairs failed as "'tuple' object has no attribute
    'partition'", a single app as "'function' object is not iterable", a string was read one
    character a key. Construction only."""
    # An object with ``keys()`` and ``[]`` is read as ``dict()`` reads one: copied first, as
    # iterating it directly asked it for item 0 (KeyError: 0) or found it not iterable.
    if not isinstance(backends, Mapping) and not callable(getattr(backends, "keys", None)):
        if callable(backends):
            hint = ("; one app for every backend: IngressASGI(res, {}, fallback=app), or "
                    "{'namespace/service': app}")
        elif isinstance(backends, (list, tuple)):
            hint = "; for (key, app) pairs: dict(pairs)"
        else:
            hint = ""
        raise TypeError("IngressASGI's backends is a mapping of 'namespace/service[:port]' to "
                        f"an ASGI app, not {type(backends).__name__} {short_repr(backends)}{hint}")
    table: dict[Any, ASGIApp] = dict(backends)  # type: ignore[call-overload]
    for key in table:
        if not isinstance(key, str):
            raise TypeError(f"backend key {key!r} is not a str 'namespace/service[:port]'")
    return table


class IngressASGI(RouteOptionsSource, _MountReport):
    """Route each HTTP and WebSocket request by the Ingress rules to a mounted ASGI app.

    ``router_or_resources`` is a :class:`Router` (share it with a cluster watcher:
    ``watcher`` calls ``app.update``), your own object around one (a Router subclass or a
    wrapper with its ``route`` and ``update``, as the proxy takes it: docs/router.md "Your
    own code around ``route``") or a ``Resources`` (a Router is built with
    ``ingress_class``/``controller``). ``backends`` maps ``"namespace/service:port"`` (the
    port as written in the Ingress backend, number or name) or ``"namespace/service"`` (any
    port) to an ASGI app.

    >>> import ingresslib
    >>> res = ingresslib.parse_manifests('''
    ... apiVersion: networking.k8s.io/v1
    ... kind: Ingress
    ... metadata: {name: shop}
    ... spec:
    ...   rules:
    ...   - http:
    ...       paths:
    ...       - {path: /api, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}
    ... ''')
    >>> async def api(scope, receive, send): ...
    >>> app = IngressASGI(res, backends={"default/api:80": api})
    >>> app.backend_for(app.router.route("GET", "example.test", "/api/users")) is api
    True
    """

    #: auth-url is done here (_asgi_extauth.py, the core's decisions); auth-tls-* is not
    #: (no client certificate in ASGI): an access annotation that denies (503).
    _ext_auth = True
    _client_certs = False

    def __init__(
        self,
        router_or_resources: Router | Resources | RouterLike,
        backends: Mapping[str, ASGIApp],
        *,
        ingress_class: str | None = None,
        controller: str | None = None,
        fallback: ASGIApp | None = None,
        mount_prefix: bool = True,
        require_endpoints: bool = False,
        settings: ProxySettings | None = None,
        tls_hosts: Callable[[str], bool] | Collection[str] = (),
        https_port: int = 443,
        rewrite_headers: bool = True,
        request_id: Callable[[], str] | None = None,
    ) -> None:
        given: object = router_or_resources  # (typed; an untyped caller may pass anything)
        #: A router whose ``route`` takes no ``query=`` (None: every router's does).
        self._no_query: Any = None
        if isinstance(given, Router):
            self.router = given
            if type(given).route is not Router.route and not _takes_query(given.route):
                # A subclass's own route written as the proxy calls it (CONTRACT.md's
                # signature, no ``query=``): called as the proxy calls it, not a TypeError.
                self._no_query = given
        elif isinstance(given, Resources):
            self.router = Router(given, ingress_class=ingress_class, controller=controller)
        elif not isinstance(given, type) and callable(route := getattr(given, "route", None)):
            # Your own object around a Router (RouterLike), as the proxy takes it.
            self.router = given
            if not _takes_query(route):
                self._no_query = given
        else:
            # Router's own refusal named Router(...), a call the caller never wrote.
            hint = (f"; for files: IngressASGI(ingresslib.load_manifests({short_repr(given)}), "
                    "backends)" if isinstance(given, (str, os.PathLike)) else "")
            missing = ("" if isinstance(given, (str, os.PathLike, Mapping, list, tuple, type))
                       else "; it has no 'route' method" if getattr(given, "route", None) is None
                       else "; its 'route' is not callable")
            raise TypeError(
                "IngressASGI takes a Router or a Resources (from "
                "ingresslib.load_manifests(path), ingresslib.parse_manifests(text) or "
                "ingresslib.Resources.from_dicts(objects)), or an object with a Router's "
                "route method (docs/router.md), not "
                f"{type(given).__name__} {short_repr(given)}{missing}{hint}")
        table = _check_backends(backends)
        for key in table:
            ns, slash, rest = key.partition("/")
            service, colon, port = rest.partition(":")
            # A second '/' or ':' can never equal a decision's key: refused here, not a silent
            # 503 for every request meant for it.
            if (not ns or not service or "/" in rest or (colon and (not port or ":" in port))):
                raise ValueError(f"backend key {key!r} is not 'namespace/service[:port]'")
        self.backends: dict[str, ASGIApp] = table
        self.fallback = fallback
        self.mount_prefix = mount_prefix
        self.require_endpoints = require_endpoints
        self.settings = settings if settings is not None else ProxySettings()
        self.rewrite_headers = rewrite_headers
        #: Makes an ``X-Request-ID`` when the client sent no usable one (32 lower-case hex,
        #: ingress-nginx ``$req_id``): the proxy's generator.
        self.request_id: Callable[[], str] = request_id or RequestIds()
        #: ``_request_id_failed``: the failures logged (rate-limited) and the generator it
        #: falls back on (made at its first use).
        self._hook_failures = HookFailures()
        self._own_ids: RequestIds | None = None
        #: ``_report_mounts``: the last warning logged (None: none, or all mounted since).
        self._mount_warning: str | None = None
        # The proxy's reading of ``tls_hosts``; ``_no_tls`` when no host is served over HTTPS
        # (an empty collection): the ssl-redirect test then needs no Host normalisation.
        self.tls_host: Callable[[str], bool] = tls_host_predicate(tls_hosts) or _no_tls
        self.https_port = https_port
        #: The rate limit zones (``limit-rps``, ``limit-rpm``, ``limit-connections``:
        #: proxy/_ratelimit.py), as the proxy's ``Proxy.rate_limits``, and their clock
        #: (seconds, monotonic; replaceable, e.g. by a test).
        self.rate_limits = RateLimiter()
        #: ``global-rate-limit``'s counters (proxy/_globalratelimit.py), as the proxy's
        #: ``Proxy.global_rate_limits``, timed by ``limit_clock``.
        self.global_rate_limits = GlobalRateLimiter()
        self.limit_clock: Callable[[], float] = time.monotonic
        #: The hosts whose server verifies client certificates (per router table).
        self._cert_hosts = HostAuths()

    def _request_id_failed(self) -> str:
        """A generated id when the ``request_id`` callable raised, logged with its traceback
        on ``ingresslib.asgi`` at most once a minute (``HookFailures``): the request keeps
        its answer instead of becoming the ASGI server's 500. Call it from an ``except``."""
        self._hook_failures.failed(_log, "request_id")
        ids = self._own_ids
        if ids is None:
            ids = self._own_ids = RequestIds()
        return ids()

    @property
    def settings(self) -> ProxySettings:
        """The proxy's settings that apply in-process (docs/asgi.md "Options"): redirects,
        HSTS, ``proxy_body_size``, the forwarded headers and header-name policy."""
        return self._settings

    @settings.setter
    def settings(self, value: ProxySettings) -> None:
        # Route options (``options_for``, ``_unrouted_options``): ``RouteOptionsSource``, the
        # proxy's own code.
        self._set_route_settings(value)
        self._trust = TrustPolicy(value.proxy_real_ip_cidr)
        # Per-settings values, computed here once instead of per request.
        self._ff_name = value.forwarded_for_header.lower().encode("latin-1")
        #: Names _backend_headers asks ``request_header_kind`` about (any other valid one
        #: passes as is).
        self._special = special_request_names(self._ff_name)
        #: The value of the HSTS header added to an https answer (None: ``hsts`` off).
        #: proxy ``_add_response_headers``: "if self.tls and s.hsts and not has_hsts".
        self._hsts = hsts_value(value.hsts_max_age, value.hsts_include_subdomains,
                                value.hsts_preload) if value.hsts else None
        #: server-tokens / allow-backend-server-header: the ``_Reply`` class that writes
        #: (or passes) the Server header, ``_Reply`` itself without them.
        self._reply_type = reply_type(value)
        #: The X-Forwarded-Port/-Proto/-Scheme/X-Scheme headers per (scheme, server port),
        #: when no trusted hop sent its own.
        self._fwd_blocks: dict[tuple[str, Any], list[tuple[bytes, bytes]]] = {}
        #: ``_scan_headers``'s cache: a header name as the server gives it -> (the name
        #: lower-cased, what ``request_header_kind`` says of it with no Connection tokens, or
        #: ``_CONNECTION``, ``_UNIQUE``, ``_UNIQUE_DROP``). None: these settings take the
        #: general path (a forwarded-for header named like a hop-by-hop one, Host or a
        #: ``UNIQUE_REQUEST`` header is read as the chain *and* as what that name is, which
        #: the one-pass scan, one kind per name, does not do).
        self._names: dict[bytes, tuple[bytes, int]] | None = \
            None if self._ff_name in REQUEST_DROP or self._ff_name == b"host" or \
            self._ff_name in UNIQUE_REQUEST else {}
        #: The names of ``_names`` that pass and are lower-case as given.
        self._plain: set[bytes] = set()
        #: Connection tokens that cannot change what becomes of any header (see
        #: ``_scan_headers``): a request whose tokens are all in here keeps the scan's
        #: classification.
        self._inert_tokens = REQUEST_DROP | FORWARDED_DROP | {self._ff_name}
        #: Per ``Match``: (the Match, its options, its Prefix mount, its X-Forwarded-Prefix
        #: value): what ``__call__`` derives from a route, once per table build.
        self._plans: dict[int, tuple[Any, RouteOptions, str, bytes | None]] = {}

    @property
    def _options_logger(self) -> logging.Logger:
        return _log

    def update(self, res: Resources) -> None:
        """Swap to new resources (``ClusterWatcher(app.update)`` keeps the app in step with a
        cluster); requests in flight finish on the old table."""
        router = self.router
        update = getattr(router, "update", None)
        if not callable(update):
            raise TypeError(f"IngressASGI.update: its router ({type(router).__name__}) has no "
                            "'update' method; update the router itself")
        table = getattr(router, "table", None)
        update(res)
        if getattr(router, "table", None) is table and self._twin_hosts_table is table:
            # The same table (only Services/endpoints changed): a resolved target port, which
            # a ``backends`` key may name, can have changed.
            self._report_mounts()

    def _table_seen(self) -> None:
        self._report_mounts()

    def backend_for(self, decision: Decision) -> ASGIApp | None:
        """The mounted app for a Decision: ``ns/svc:port-as-written``, then
        ``ns/svc:resolved-target-port``, then ``ns/svc``."""
        if decision.service is None:
            return None  # a resource backend: nothing to mount
        backend = decision.backend
        if backend is not None:
            app = self.backends.get(backend)
            if app is not None or backend in self.backends:
                return app
        base = f"{decision.namespace}/{decision.service}"
        if decision.port is not None:
            app = self.backends.get(f"{base}:{decision.port}")
            if app is not None:
                return app
        return self.backends.get(base)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        #: The limit-connections count the request holds, released however it ends (the
        #: answer, an exception, a cancellation: ngx_http_limit_conn_cleanup). One coroutine
        #: with the try/finally in it (free in 3.11): a request holding no count pays a test.
        held: Held | None = None
        #: The routing Decision, and whether the app it chose was called: a request routed
        #: and answered here (or by the ``fallback``) gives its turn back (``_give_back``,
        #: with the request as routed: ``host``, ``rel``, ``client_ip``, ``query``).
        decision: Decision | None = None
        reached = False
        host = rel = ""
        client_ip: str | None = None
        query: str | None = None
        try:
            kind = scope["type"]
            if kind != "http" and kind != "websocket":
                if kind == "lifespan":
                    await self._lifespan(scope, receive, send)
                    return
                raise RuntimeError(f"IngressASGI cannot handle scope type {kind!r}")
            headers = scope.get("headers")
            if type(headers) is not list and type(headers) is not tuple and headers is not None:
                # www.rst: the scope's "headers (Iterable[[byte string, byte string]])": a
                # one-pass iterable is read once, as a list, in a copy of the scope (as ``_Reply``
                # reads a response's). The scan, the router (canary header and cookie), basic
                # auth and the app each read the headers: the scan used it up, the router routed
                # a canary header's request to the main backend and the app got none.
                scope = dict(scope)
                scope["headers"] = list(headers)
            settings = self._settings
            root = scope.get("root_path", "") or ""
            secure = scope.get("scheme") in ("https", "wss")
            # HSTS on every answer over TLS, a wss handshake's refusal too (nginx.tmpl: "if
            # ($scheme = https) { more_set_headers "Strict-Transport-Security: ..." }", and the
            # proxy's ``_add_response_headers``); ``_Reply.send`` leaves a 101 alone.
            # (server-tokens: a _Reply that writes the Server header, _asgi_reply.reply_type.)
            # (Read, then called: ``self._reply_type(...)`` would be a LOAD_METHOD of an
            # instance attribute, which CPython 3.11 never specialises.)
            reply_cls = self._reply_type
            reply = reply_cls(scope, send, self._hsts if secure else None, secure)

            #: ConfigMap add-headers (proxy/_header_sets.py): on every answer, as the proxy's,
            #: before the location's CORS and custom-headers.
            added = list(global_headers(settings.add_headers, self.router,
                                        server_tokens=settings.server_tokens)) or None \
                if settings.add_headers else None
            reply.cors = added
            method = scope.get("method", "GET")
            #: The scan's backend headers so far (None: the general path builds them).
            out: list[tuple[bytes, bytes]] | None = None
            has_host = False
            #: The Host the app is given when the request had none (None: ``host``).
            sent_host: str | None = None
            ff_items: list[tuple[bytes, bytes]] = _NONE
            fwd_items: list[tuple[bytes, bytes]] = _NONE
            request_id: bytes | None = None
            #: The id the auth subrequest got (``request_id_of``), the app's too; None: not
            #: chosen yet (the header pass chooses it).
            chosen_id: bytes | None = None
            try:
                if method not in _NGINX_METHODS and kind == "http" and method.strip(_METHOD_CHARS):
                    # The proxy's 400 (``METHOD_CHARS``): nginx's request line takes A-Z, '_', '-'
                    # only, and servers pass the method as sent (``get`` is not GET).
                    raise BadRequestError("invalid method", 400)
                names = self._names
                items: list[tuple[bytes, bytes]] | None = None
                head = None
                if names is not None:
                    try:
                        if self.rewrite_headers:
                            head = _scan_headers(scope, self._plain, names, self._learn,
                                                 kind == "websocket")
                        else:
                            # The app gets the server's headers as they came: only what routing
                            # reads is taken, no list of backend headers is built to be dropped.
                            head = _scan_routing(scope, self._plain, names, self._learn)
                    except _NotScanned:
                        pass  # a server's odd header list: the general path decides
                if head is None:
                    items, host, length, named = _read_headers(
                        scope, _read_names_for(settings, self.rewrite_headers))
                else:
                    host, length, named, out, has_host, ff_items, fwd_items, request_id = head
                if kind == "http" and (method == "CONNECT" or method == "TRACE"):
                    # SEMANTICS §5 "CONNECT → 405", as the proxy answers it; TRACE too, as nginx
                    # (and the proxy) refuse it before routing: no app echoes the request back.
                    # After the head's 400s, as nginx (ngx_http_process_request_header's end).
                    raise BadRequestError(f"{method} is not allowed", 405)
                raw = scope.get("raw_path")
                cached = _TARGETS.get(raw) if not root and type(raw) is bytes else None
                if cached is not None:
                    rel, rel_b = cached  # the canonical form of this raw_path, found before
                else:
                    target = _routing_target(scope, root)
                    if target == "*" and kind == "http" and method == "OPTIONS":
                        # SEMANTICS §5 "`*` only for OPTIONS"; the proxy answers the server-wide
                        # OPTIONS itself (200 + allow): it asks about the server, not about an app.
                        await _answer_options(reply.send)
                        return
                    if target.startswith("/"):
                        rel = canonical_path(target)
                        rel_b = rel.encode("ascii")
                        if not root and type(raw) is bytes and 0 < len(raw) <= 256:
                            # The target is a function of raw_path alone here (_routing_target):
                            # remember its canonical form (a pure function of it). Short paths
                            # only: 1024 of them take little memory whoever chose them.
                            if len(_TARGETS) >= 1024:
                                _TARGETS.clear()
                            _TARGETS[raw] = (rel, rel_b)
                    else:
                        # uvicorn (h11) passes an absolute-form target through as raw_path and
                        # path. SEMANTICS §5: "absolute-form is accepted when its authority equals
                        # Host, then forwarded as origin-form" -- the proxy's rule; anything else
                        # is a 400 from canonical_path below.
                        had_host = _has_host(scope)
                        target, host = _absolute_form(target, host, had_host)
                        if not had_host:
                            # No Host header: the proxy's backend gets nginx's $host, the
                            # authority lower-cased without its port (``normalize_host``), as
                            # Host and X-Forwarded-Host only. Routing and the redirects keep the
                            # authority as the proxy does (its ``host_raw``: app-root's
                            # ``Location: http://Other.test.:81/app``).
                            sent_host = normalize_host(host) or host
                        rel = canonical_path(target)
                        rel_b = rel.encode("ascii")
                client = scope.get("client")
                peer: str | None = client[0] if client else None
                # The proxy's own function (proxy/_headers.py ``client_address``): the scan kept
                # the forwarded-for headers, the general path has them all.
                client_ip = client_address(peer, settings, self._trust,
                                           ff_items if items is None else items, self._ff_name)
                query = (scope.get("query_string") or b"").decode("latin-1") or None
                if (settings.block_user_agents or settings.block_referers) \
                        and blocked_scope(settings, scope.get("headers") or ()):
                    # block-user-agents / block-referers: the server block's "if ($block_ua)
                    # { return 403; }", before any location (proxy/_block.py), as the proxy.
                    await reply.local(403)
                    return
                # A www twin's own server answers it (RouteOptionsSource._www_twin_hosts): not
                # routed.
                twins = self._www_twin_hosts()
                if twins and host and (normalize_host(host) or "") in twins:
                    decision = None
                else:
                    # The server's headers as they came: the router reads a ``bytearray``
                    # or ``memoryview`` value as its bytes (and a ``str`` one as text, as its
                    # API takes).
                    router = self.router
                    if router is not self._no_query:
                        decision = router.route(method, host, rel, scope.get("headers") or (),
                                                client_ip, query=query)
                    else:
                        decision = router.route(method, host, rel, scope.get("headers") or (),
                                                client_ip)
            except BadRequestError as err:
                await reply.local(err.status_hint)
                return
            cert_hosts = self._cert_hosts
            #: A host with auth-tls-* served unverified: the client's ssl-client-* never reach
            #: the app (_asgi_unverified.py).
            unverified = False
            if (cert_hosts.auths
                    or cert_hosts.table is not getattr(self.router, "table", None)) \
                    and cert_hosts.auth_for(self.router, host) is not None:
                if settings.deny_unenforced_access_annotations:
                    # auth-tls-* holds for the whole server (every Ingress's routes of the
                    # host, a server-alias, paths no rule covers): no client certificate is
                    # verified here, so every request of such a host fails closed
                    # (proxy/_clientcert.py HostAuths) unless unenforced access annotations
                    # are served (as the Ingress's routes).
                    await reply.local(503)
                    return
                unverified = True
            scheme = "https" if secure else "http"
            app: ASGIApp | None = None
            mount = ""
            prefix: bytes | None = None
            checked_basic = False
            #: The auth-url service's auth-response-headers for the app (_asgi_extauth.py).
            auth_pairs: tuple[tuple[bytes, bytes], ...] = ()
            #: The host's server ``location /`` options of an unrouted request (None: none).
            server_opts: RouteOptions | None = None
            if decision is None:
                opts = self._default_options
                if opts.x_forwarded_prefix is not None:
                    prefix = opts.x_forwarded_prefix.encode("utf-8")
                server_host = (normalize_host(host) or "") if host else ""
                # The proxy's answers before the 404 or the ``fallback`` app, which plays the
                # default backend (RouteOptionsSource._unrouted_answer): the server-wide redirects
                # (the www twin, the host's app-root -- hence the Host as received -- the server
                # location's redirects, ssl-redirect) and the 413 of a Content-Length over the
                # ``location /``'s proxy-body-size (the default server's without a named host).
                if host:
                    # The raw target for the www twin's Location (any scheme) and the
                    # ssl-redirect's; the forwarded host only for an ssl-redirect (plain http),
                    # whose Location is a routed one's (``_location_host``).
                    request_uri = _request_uri(scope, rel, query)
                    location_host = None if secure else self._location_host(scope, peer)
                    origin = asgi_origin(scope.get("headers"))
                    answer = self._unrouted_answer(server_host, scheme, rel, query,
                                                   self.https_port, host_raw=host,
                                                   location_host=location_host,
                                                   target=request_uri, length=length,
                                                   method=method if kind == "http" else "",
                                                   origin=origin)
                    # The server ``location /``'s CORS, custom-headers and rate limits, as the
                    # proxy's (``_server_location``, ``_limit_unrouted``).
                    loc_opts = self._unrouted_options(server_host) if server_host else None
                    located = unrouted_headers(loc_opts, origin, config_maps_of(self.router))
                else:
                    answer = self._unrouted_answer("", scheme, rel, query, 0, length=length)
                    loc_opts, located = None, ()
                if answer is not None:
                    location = answer[2]
                    if located and answer[0] == "location":  # not app-root, 413, www twin
                        reply.cors = combine(reply.cors, located)
                    if answer[1] == PREFLIGHT_STATUS:
                        await reply.local(PREFLIGHT_STATUS)
                        return
                    await reply.local(answer[1], None if location is None
                                      else [(b"location", location)])
                    return
                if located:
                    reply.cors = combine(reply.cors, located)
                loc_glimit = unrouted_global_limit(loc_opts)
                if loc_glimit is not None and self.global_rate_limits.refuses(
                        loc_glimit, self.limit_clock(), method, host, rel, query,
                        scope.get("headers") or (), client_ip):
                    # Its global-rate-limit too (``unrouted_global_limit``), as the proxy's
                    # (``_limit_unrouted``): before limit_req / limit_conn.
                    await reply.local(settings.global_rate_limit_status_code)
                    return
                loc_limit = unrouted_limit(loc_opts)
                if loc_limit is not None:
                    status, limit_held = self.rate_limits.enter(
                        loc_limit, client_ip, self.limit_clock(), settings.limit_req_status_code,
                        settings.limit_conn_status_code)
                    if status:
                        await reply.local(status)
                        return
                    if limit_held is not None:
                        held = limit_held
                # The proxy's access control of the host's server location (or block-cidrs),
                # before the 404 or the ``fallback`` (RouteOptionsSource._unrouted_status).
                await _hash_off_loop(self._unrouted_access(server_host), client_ip, scope)
                status, challenge = self._unrouted_status(
                    server_host, client_ip, lambda: _authorization(scope),
                    asgi_request(scope, rel, query, self.limit_clock))
                if not status:
                    reply.info = challenge  # digest's Authentication-Info (proxy/_digest.py)
                if status:
                    await reply.local(status, None if challenge is None
                                      else [(b"www-authenticate", challenge)])
                    return
                # The server location's basic auth passed: its 'proxy_set_header Authorization
                # "";' holds for the ``fallback`` (the default backend) too.
                server_access = self._unrouted_access(server_host)
                checked_basic = server_access is not None and server_access.basic is not None
                # The ``fallback``'s body is the server ``location /``'s (its client_max_body_size:
                # the host's owner's proxy-body-size), as the declared length's 413 above.
                server_opts = self._unrouted_options(server_host) if server_host else None
                body_size = (server_opts or opts).body_size
                if self.fallback is not None and server_opts is not None \
                        and server_opts.ext_auth is not None:
                    # That location's auth-url before the ``fallback`` (_asgi_fallback_auth.py).
                    chosen_id = request_id = request_id_of(self, scope)
                    got = await fallback_auth(self, server_opts, scope, reply, peer, client_ip,
                                              host, server_host, rel, query, chosen_id)
                    if got is None:
                        return
                    auth_pairs = got
            else:
                m = decision.match
                plan = self._plans.get(id(m))
                if plan is None or plan[0] is not m:
                    plan = self._plan(m)
                opts = plan[1]
                body_size = opts.body_size
                access = opts.access
                if access is not None and denied_first(opts, rel):
                    await reply.local(503)
                    return
                if opts.body_size and length > opts.body_size \
                        and body_too_large(opts, rel, length):
                    # A declared length over proxy-body-size, before the redirects and access
                    # control, as the proxy (``body_too_large``: nginx's find_config phase, for
                    # every request: a WebSocket handshake that declares a body too). The
                    # location's custom-headers hold for it (its configuration is the
                    # request's by then), its CORS not (the proxy's _custom_headers).
                    if opts.custom_headers is not None and (access is None or (
                            access.denied is None and not access.secret_denied())):
                        reply.cors = combine(reply.cors, opts.custom_headers.headers(
                            config_maps_of(self.router)))
                    await reply.local(413)
                    return
                custom: tuple[tuple[bytes, bytes], ...] = ()
                if opts.custom_headers is not None and (access is None or (
                        access.denied is None and not access.secret_denied())):
                    # custom-headers (proxy/_header_sets.py), as the proxy's _custom_headers.
                    custom = opts.custom_headers.headers(config_maps_of(self.router))
                if opts.cors is not None and (access is None or (
                        access.denied is None and not access.secret_denied())):
                    # The location's CORS (proxy/_cors.py), as the proxy's _cors_headers: on
                    # every answer from here on; an OPTIONS with an allowed Origin is answered
                    # 204 at once (the location's rewrite phase), unless app-root redirects it.
                    cors = opts.cors.headers(asgi_origin(scope.get("headers")))
                    if cors is not None:
                        reply.cors = combine(reply.cors, tuple(cors))
                    if cors is not None and kind == "http" \
                            and scope.get("method") == "OPTIONS" \
                            and not (rel == "/" and opts.app_root is not None):
                        reply.cors = combine(reply.cors, custom)
                        await reply.local(PREFLIGHT_STATUS)
                        return
                if custom:  # (a plain request pays one test: combine returns its first otherwise)
                    reply.cors = combine(reply.cors, custom)
                # The proxy's redirects, decided before the endpoint (proxy/_actions.py
                # ``redirect_for``). The scheme is the scope's: an ASGI server that trusts a hop's
                # X-Forwarded-Proto (uvicorn --forwarded-allow-ips) has already set it. The Host
                # is normalised only when a redirect to https may follow.
                host_n = ""
                has_tls = False
                if not secure and host and (opts.force_ssl_redirect or (
                        opts.ssl_redirect and self.tls_host is not _no_tls)):
                    host_n = normalize_host(host) or ""
                    has_tls = bool(host_n) and opts.ssl_redirect and self.tls_host(host_n)
                if has_tls or opts.force_ssl_redirect or opts.redirects:
                    location_host = request_uri = None
                    if not secure and (has_tls or opts.force_ssl_redirect):
                        location_host = self._location_host(scope, peer)
                        request_uri = _request_uri(scope, rel, query)
                    elif opts.rewrite_is_redirect:
                        # a rewrite-target URL's captures are escaped by the raw path, as
                        # the proxy core's (location_redirect)
                        request_uri = _request_uri(scope, rel, query)
                    redirect = redirect_for(opts, scheme, host, host_n, rel, query, has_tls,
                                            self.https_port, settings.http_redirect_code,
                                            rule_host=m.host, location_host=location_host,
                                            target=request_uri)
                    if redirect is not None:
                        if rel == "/" and opts.app_root is not None:
                            reply.cors = added  # the server-level app-root: not the location's
                        await reply.local(redirect[0], [(b"location", redirect[1])])
                        return
                glimit = opts.global_rate_limit
                if glimit is not None and self.global_rate_limits.refuses(
                        glimit, self.limit_clock(), method, host, rel, query,
                        scope.get("headers") or (), client_ip):
                    # global-rate-limit (proxy/_globalratelimit.py), as the proxy's: after the
                    # redirects, before limit_req / limit_conn.
                    await reply.local(settings.global_rate_limit_status_code)
                    return
                if opts.rate_limit is not None:
                    # nginx's preaccess phase (limit_req, limit_conn), as the proxy's: after the
                    # redirects, before allow/deny and basic auth (proxy/_ratelimit.py).
                    status, limit_held = self.rate_limits.enter(
                        opts.rate_limit, client_ip, self.limit_clock(),
                        settings.limit_req_status_code, settings.limit_conn_status_code)
                    if status:
                        await reply.local(status)
                        return
                    if limit_held is not None:
                        held = limit_held
                ask = opts.ext_auth is not None \
                    and effective_auth(opts.ext_auth, decision.match) is not None
                prior: tuple[int, bytes | None] | None = None
                if access is not None:
                    # Allow/deny, then basic auth, after the redirects (nginx's access phase), as
                    # the proxy does (proxy/_actions.py ``access_answer``). A password to hash is
                    # hashed in a worker thread first (``access_job``), not on the event loop.
                    await _hash_off_loop(access, client_ip, scope)
                    if access.any is None:
                        status, challenge = access_answer(
                            access, client_ip, lambda: _authorization(scope),
                            asgi_request(scope, rel, query, self.limit_clock))
                    else:
                        # satisfy: any, as the proxy's (proxy/_satisfy.py ``any_access``).
                        status, challenge, ask = any_access(
                            access, client_ip, lambda: _authorization(scope), ask,
                            asgi_request(scope, rel, query, self.limit_clock))
                    if not status:
                        reply.info = challenge  # digest's Authentication-Info (proxy/_digest.py)
                    if status and not (ask and access.any is not None):
                        await reply.local(status, None if challenge is None
                                          else [(b"www-authenticate", challenge)])
                        return
                    if status:
                        prior = (status, challenge)
                if ask:
                    # auth-url: the auth service answers first, the body unread meanwhile
                    # (not on a no-auth-locations rule path: proxy/_globalauth.py).
                    path_q = _request_uri(scope, rel, query)
                    # One id for the subrequest and the app (nginx: one $req_id, shared).
                    chosen_id = request_id = request_id_of(self, scope)
                    got = await authenticate(
                        self, opts, scope, reply, peer, client_ip, host,
                        (normalize_host(host) or "") if host else "",
                        path_q[0] + ("?" + path_q[1] if path_q[1] else ""), prior,
                        match=decision.match, request_id=chosen_id)
                    if got is None:
                        return
                    auth_pairs = got
                app = self.backend_for(decision)
                if app is not None and self.require_endpoints and decision.endpoint is None:
                    app = None
                if self.mount_prefix:
                    mount = plan[2]
                prefix = plan[3]
                if prefix is not None and not _rewrites(opts, rel):
                    prefix = None  # the exact twin of a Prefix rewritten to itself (x56 s36)
            # Whether the ``fallback`` plays (an unrouted request, a backend no app plays): not
            # ``app is self.fallback``, as one app may be mounted for a backend and be the
            # ``fallback`` too, and then a routed request is its backend's (turn, cookie,
            # default-backend fields, mirror, custom error pages).
            by_fallback = app is None
            if app is None:
                if self.fallback is None:
                    if decision is None and body_size and length < 0 and kind == "http" \
                            and _streamed(scope) and await _over_limit(reply, receive, body_size):
                        return  # the 413 is out, or the client is gone
                    await reply.local(404 if decision is None else 503)
                    return
                app, mount = self.fallback, ""
            if body_size and length > body_size:
                # The proxy refuses a declared length over proxy-body-size before any upstream
                # (a routed request's is refused above already, before its redirects; an unrouted
                # one's too, before its 404 or fallback), a WebSocket handshake's too.
                await reply.local(413)
                return
            # A streamed body is counted on an http scope (a WebSocket one has messages).
            limit = body_size if kind == "http" else 0
            if decision is not None and not by_fallback:
                # The session cookie goes with the backend's answer only, as the proxy sets it
                # when it opens the upstream (ingress-nginx: sticky.lua's balance(), the balancer
                # phase): never with a redirect, a 403/401/503 or a 413 answered here.
                reply.set_cookie = decision.set_cookie
            child = dict(scope)
            child[DECISION_KEY] = decision
            child["path"] = root + (unquote(rel) if "%" in rel else rel)
            # path = unquote(raw_path), as the server gives them (uvicorn >= 0.54, Starlette's
            # Mount): an app under the mount -- another IngressASGI too -- finds its root_path at
            # the front of raw_path, as it finds it in path.
            child["raw_path"] = _quoted_root(root) + rel_b if root else rel_b
            child["root_path"] = root + mount
            if self.rewrite_headers:
                # (``host`` stays the routed one: ``_give_back`` asks the router with it.)
                app_host = host if sent_host is None else sent_host
                try:
                    odd_tokens = named and not self._inert_tokens.issuperset(named)
                except TypeError:
                    # The tokens of a ``bytearray`` Connection value (unhashable): read as their
                    # bytes, on the general path.
                    named = [bytes(t) for t in named]
                    odd_tokens = True
                if out is None or odd_tokens:
                    # The general path: no scan, or Connection names a header whose fate the
                    # scan decided without that token.
                    if items is None:
                        items = [(k.lower(), v) for k, v in scope.get("headers") or ()]
                    child["headers"] = self._backend_headers(
                        scope, items, named, app_host, peer, client_ip, scheme, prefix,
                        chosen_id)
                else:
                    fwd: dict[bytes, bytes] = _NO_FWD
                    if fwd_items and settings.use_forwarded_headers and self._trust.trusted(peer):
                        fwd = {}
                        for name, value in fwd_items:
                            fwd[name] = fwd[name] + b", " + value if name in fwd else value
                    child["headers"] = self._add_forwarded(
                        scope, out, has_host, app_host,
                        [v for _, v in ff_items] if ff_items else _NONE,
                        fwd, request_id, peer, client_ip, scheme, prefix,
                        [v for n, v in fwd_items if n == b"x-forwarded-for"]
                        if fwd_items else _NONE)
                if settings.proxy_set_headers:
                    # ConfigMap proxy-set-headers, as the proxy's (proxy/_header_sets.py).
                    pairs = upstream_set_headers(settings.proxy_set_headers, self.router)
                    if pairs:
                        child["headers"] = set_header_pairs(child["headers"], pairs)
            if checked_basic or (decision is not None and opts.access is not None
                                 and opts.access.basic is not None):
                # As the proxy (nginx.tmpl 'proxy_set_header Authorization "";'): the credentials
                # checked here are not handed to the app.
                child["headers"] = [(k, v) for k, v in child.get("headers") or ()
                                    if bytes(k).lower() != b"authorization"]
            if decision is None and auth_pairs:
                # The server location's auth-response-headers for the ``fallback``.
                child["headers"] = with_auth_headers(child.get("headers") or (), auth_pairs)
            if unverified:
                child["headers"] = without_client_cert_headers(child.get("headers") or ())
            if (self.rewrite_headers and not by_fallback
                    and getattr(decision, "default_backend", None) is not None):
                # A default-backend annotation's Service answers: X-Code etc., as the proxy sends
                # them (proxy/_error_pages.py).
                child["headers"] = [(k, v) for k, v in child.get("headers") or ()
                                    if bytes(k).lower() not in DEFAULT_BACKEND_SET_NAMES] + (
                    default_backend_fields(decision, scope.get("headers") or ()))
            app_send: Send = reply.send
            if decision is None:
                # The ``fallback`` plays the default backend of the server's ``location /``,
                # which has proxy_redirect / proxy_cookie_* as every location (nginx.tmpl): the
                # host owner's annotations' (controller.go createServers:
                # locationApplyAnnotations), else the ConfigMap's (the default server's root
                # location: "Proxy: ngxProxy", "CookieDomain: bdef.ProxyCookieDomain").
                rewrite = (server_opts or opts).response_rewrite
                if rewrite is not None:
                    app_send = rewriting_send(reply.send, rewrite)
                    reply.rewrite = rewrite  # a websocket.accept's (_asgi_reply)
            if decision is not None:
                if opts.upstream_vhost is not None and self.rewrite_headers:
                    # upstream-vhost: the app's Host, as the proxy's backend gets it
                    # (proxy/_response_head.py); ``server`` stays the listener's.
                    child["headers"] = [(b"host", opts.upstream_vhost)] + [
                        (k, v) for k, v in child.get("headers") or ()
                        if bytes(k).lower() != b"host"]
                if opts.response_rewrite is not None:
                    app_send = rewriting_send(reply.send, opts.response_rewrite)
                    reply.rewrite = opts.response_rewrite  # a websocket.accept's (_asgi_reply)
                if auth_pairs:
                    child["headers"] = with_auth_headers(child.get("headers") or (), auth_pairs)
                elif opts.ext_auth is not None:
                    # Let in without the auth subrequest (satisfy any): the client's
                    # auth-response-headers dropped all the same (proxy/_auth_unasked.py).
                    unasked = unasked_pairs(opts.ext_auth, decision.match)
                    if unasked:
                        child["headers"] = with_auth_headers(child.get("headers") or (), unasked)
            compress = settings.use_gzip or settings.enable_brotli
            if settings.hide_headers and not compress:
                # ConfigMap hide-headers (proxy_hide_header): dropped from the app's answer
                # (with use-gzip by gzip_send, before the gzip filter adds its headers).
                app_send = hiding_send(app_send, hidden_of(settings))
            throttled = decision is not None and opts.limit_rate > 0 and kind == "http"
            if throttled:
                # limit-rate / limit-rate-after: the app's body at the rate, as the proxy's
                # (proxy/_bandwidth.py), timed by ``limit_clock``.
                app_send = throttled_send(app_send, opts.limit_rate, opts.limit_rate_after,
                                          self.limit_clock, lambda s: asyncio.sleep(s))
            if compress:
                # use-gzip / enable-brotli: nginx's brotli and gzip filters on the app's answer
                # (proxy/_gzip.py, proxy/_brotli.py), before
                # limit-rate counts its bytes (nginx's write filter sees compressed ones),
                # deciding on the headers add-headers/CORS/custom-headers set (``reply``); on
                # a WebSocket scope, a refusal's websocket.http.response (the core compresses
                # an upstream's answer to a refused upgrade as any other).
                app_send = gzip_send(app_send, scope, settings, reply)
            extensions = scope.get("extensions")
            if extensions:
                # The server's extensions as this hop passes them on (``_offered``).
                child["extensions"] = _offered(extensions, compress, throttled)
            if decision is not None and opts.mirror is not None and kind == "http" \
                    and not by_fallback:
                # mirror-target: a mounted Service's app gets a copy (_asgi_mirror.py).
                mirror_app = mounted_mirror(self.backends, opts.mirror)
                if mirror_app is not None:
                    receive = mirror_receive(mirror_app, child, scope, opts.mirror, receive,
                                             opts.read_timeout, limit)
            pages: ErrorPages | None = None
            if (decision is not None and opts.custom_http_errors and opts.intercept_errors
                    and kind == "http" and not by_fallback):
                # custom-http-errors: a listed status is answered by the default-backend
                # annotation's app instead (_asgi_error_pages.py), hide-headers holding for
                # its answer too.
                # (use-gzip: the page compressed as the proxy's; gzip_send hides first.)
                pages = ErrorPages(self, decision, receive, app_send, opts.custom_http_errors,
                                   gzip_send(reply.send, scope, settings, reply)
                                   if compress
                                   else hiding_send(reply.send, hidden_of(settings))
                                   if settings.hide_headers else None, added)
                receive, app_send = pages.receive, pages.send
                # The app, then the error page's app when its answer was intercepted (under the
                # same body limit; also when the app raised after its listed status).
                app = pages.wrap(app, scope, root, _quoted_root(root) if root else b"", reply,
                                 limit)
            # The routed request reaches its upstream: the app its decision chose is called
            # (nginx's connect, where the balancer picks). The ``fallback`` plays the default
            # backend, not the rule's endpoint.
            reached = not by_fallback
            if limit:
                await app(child, reply.counting(receive, limit), app_send)
                if reply.late:
                    raise BodyTooLarge(f"request body over {limit} bytes after the response "
                                       "began (413): the connection must be closed")
            else:
                # Always through ``reply.send``: the response head loses what the proxy hides
                # from an upstream's (``_Reply.send``).
                await app(child, receive, app_send)
        finally:
            if held is not None:
                RateLimiter.release(held)
            if decision is not None and not reached:
                self._give_back(decision, method, host, rel, scope.get("headers") or (),
                                client_ip, query)

    def _give_back(self, decision: Decision, method: str, host: str, path: str,
                   headers: Any, client_ip: str | None, query: str | None) -> None:
        """A request routed to ``decision`` ended without its app being called (a local
        answer: a redirect, 401/403, 413, a rate limit, the ``fallback`` or 503 for a backend
        no app plays; or an exception, a cancellation before it): the turns its pick took go
        back to the router (``Router.give_back``: a round-robin turn, a new persistent
        session's, the canary split's), as the proxy gives back a request's that never
        connected. nginx picks the peer in the balancer phase, at the connect (ingress-nginx
        ``balancer.lua`` ``balance()``), so a request answered before never takes a turn
        there. Asked as ``route`` was; nothing with a router without ``give_back``; a
        failure is logged (``HookFailures``) and the answer stands."""
        hook = getattr(self.router, "give_back", None)
        if hook is None:
            return
        try:
            hook(decision, method, host, path, headers, client_ip, query=query)
        except Exception:
            self._hook_failures.failed(_log, "router.give_back")

    def _location_host(self, scope: Scope, peer: str | None) -> str | None:
        """``location_host`` of an ssl-redirect's Location (proxy/_actions.py
        ``https_redirect``; its ``target`` is nginx's ``$request_uri``, ``_request_uri``), as
        the proxy core's ``_location_host`` gives it: the first X-Forwarded-Host when the
        forwarded family is trusted here (use-forwarded-headers and the scope's ``client``
        inside proxy-real-ip-cidr, as for the headers the app sees) and it is a valid host
        (``forwarded_redirect_host``), else the Host header's host; as written, its case
        kept (``location_host_of``); None without either (the normalised host). Only called
        when an ssl-redirect may be answered: never for a proxied request that could not be
        redirected."""
        location_host = None
        s = self._settings
        if s.use_forwarded_headers and self._trust.trusted(peer):
            # nginx's $http_x_forwarded_host joins repeated lines: the first one's first
            # element is the one named.
            for name, value in scope.get("headers") or ():
                if bytes(name).lower() == b"x-forwarded-host":
                    if forwarded_redirect_host(bytes(value)) is not None:
                        location_host = location_host_of(first_forwarded_host(bytes(value)))
                    break
        if location_host is None:
            # best_http_host = $http_host: the Host header as sent (lua_ingress.lua).
            for name, value in scope.get("headers") or ():
                if bytes(name).lower() == b"host":
                    location_host = location_host_of(bytes(value))
                    break
        return location_host

    def _plan(self, m: Any) -> tuple[Any, RouteOptions, str, bytes | None]:
        """What a request routed to ``m`` takes from its route, derived once per ``Match``
        (a table build makes new ones): the options (``options_for``), the ``root_path``
        extension of a ``Prefix`` rule (docs/asgi.md) and the X-Forwarded-Prefix value."""
        opts = self.options_for(m)
        mount = ""
        if m.path_type == "Prefix" and m.match_path:
            mount = m.match_path.rstrip("/")
            if "%" in mount:
                mount = unquote(mount)
        # As the proxy sends it (ingress-nginx's buildProxyPass): only with a rewrite-target,
        # which the adapter does not apply but the backend behind the proxy would see, and
        # only for a path it rewrites (``_rewrites``, per request).
        prefix = opts.x_forwarded_prefix if opts.rewrite_target is not None else None
        plan = (m, opts, mount, None if prefix is None else prefix.encode("utf-8"))
        if len(self._plans) > 8192:
            self._plans.clear()
        # Holding the Match keeps id() unique while the entry lives.
        self._plans[id(m)] = plan
        return plan

    def _learn(self, raw: bytes) -> tuple[bytes, int]:
        """``_scan_headers``'s entry for a header name not seen before (the cache is per
        settings: the kind depends on the forwarded-for name and the name policy)."""
        name = raw.lower()
        if type(name) is not bytes:
            raise _NotScanned  # a str or bytearray name: the general path's to refuse
        kind = request_header_kind(name, None, self._ff_name, self._settings)
        code: int = kind
        if name == b"connection":
            code = _CONNECTION
        elif name in UNIQUE_REQUEST and (kind is _PASS or kind is HeaderKind.DROP):
            code = _UNIQUE if kind is _PASS else _UNIQUE_DROP
        entry = (name, code)
        if len(raw) > 64:
            return entry  # a long made-up name: not worth the memory
        names = self._names
        assert names is not None
        if len(names) >= 512:
            names.clear()  # a client making up names: keep the caches small
            self._plain.clear()
        names[raw] = entry
        if code is _PASS and name == raw and type(raw) is bytes:
            self._plain.add(raw)  # (not a UNIQUE_REQUEST name: those are counted)
        return entry

    def _backend_headers(self, scope: Scope, items: list[tuple[bytes, bytes]],
                         named: list[bytes], host: str, peer: str | None,
                         client_ip: str | None, scheme: str, prefix: bytes | None,
                         chosen_id: bytes | None = None) -> list[tuple[bytes, bytes]]:
        """The request headers the mounted app sees: those the proxy sends its backend
        (proxy/_connection.py ``_build_upstream_headers``, SEMANTICS §9) -- hop-by-hop and
        Connection-named headers out, invalid and ``_`` names dropped, the forwarded family
        and ``X-Request-ID`` written by this hop -- except the body framing
        (``content-length``, ``transfer-encoding``), kept as the server gave it.

        ``items`` are the scope's headers with lower-cased names (www.rst: names "should be
        lowercased", which is all a server does), ``named`` the tokens of their Connection
        headers; ``chosen_id``: the id the auth subrequest got (``request_id_of``), which the
        app gets too (None: chosen here).

        What becomes of each header is the proxy's ``request_header_kind`` (asked for the
        names in ``special_request_names``, a name with odd characters or one Connection
        lists; any other passes as is), and the values written are the proxy's
        (``valid_request_id``, ``forwarded_for_value``, ``first_forwarded_host``). What is
        written twice is the dispatch on the kind: the proxy writes bytes of its upstream
        head from h11's ``(raw, name, value)`` triples, in one pass on its hot path
        (``_build_upstream_headers``); this writes an ASGI header list.

        This is the general path; ``_scan_headers`` gives the same list in the pass that
        reads Host for the common request (a Connection header naming only hop-by-hop or
        forwarded headers, or none)."""
        s = self._settings
        upgrade = scope["type"] == "websocket"
        trusted_fwd = s.use_forwarded_headers and self._trust.trusted(peer)
        ff_name = self._ff_name
        special = self._special
        out: list[tuple[bytes, bytes]] = []
        incoming_ff: list[bytes] = []
        xff: list[bytes] = []  # X-Forwarded-For lines when another header is the ff header
        fwd: dict[bytes, bytes] = {}
        request_id: bytes | None = None
        first_request_id = True
        has_host = False
        for item in items:
            name = item[0]
            if name not in special and not name.translate(None, HEADER_NAME_CHARS) and (
                    not named or name not in named):
                out.append(item)  # the common case: an ordinary header
                continue
            kind = request_header_kind(name, named, ff_name, s)
            if kind is _HOST:
                has_host = True
                out.append(item)
            elif kind is _PASS:
                out.append(item)
            elif kind is _LENGTH or kind is _CHUNKED:
                out.append(item)  # the body framing: the server's, kept as it gave it
            elif kind is _UPGRADE:
                if upgrade:
                    out.append(item)
            elif kind is _FORWARDED_FOR:
                incoming_ff.append(item[1])
            elif kind is _FORWARDED:
                value = item[1]
                if name == b"x-forwarded-for":
                    xff.append(value)  # whatever the trust, as the proxy
                if trusted_fwd:
                    fwd[name] = fwd[name] + b", " + value if name in fwd else value
            elif kind is _REQUEST_ID:
                if first_request_id:
                    first_request_id = False
                    if valid_request_id(item[1]):
                        request_id = item[1]
        if chosen_id is not None:
            request_id = chosen_id
        return self._add_forwarded(scope, out, has_host, host, incoming_ff, fwd, request_id,
                                   peer, client_ip, scheme, prefix, xff)

    def _add_forwarded(self, scope: Scope, out: list[tuple[bytes, bytes]], has_host: bool,
                       host: str, incoming_ff: list[bytes], fwd: Mapping[bytes, bytes],
                       request_id: bytes | None, peer: str | None, client_ip: str | None,
                       scheme: str, prefix: bytes | None, xff: list[bytes]
                       ) -> list[tuple[bytes, bytes]]:
        """``out`` (the request's headers that pass) with what this hop writes: Host when the
        request had none, the forwarded family, X-Request-ID (``incoming_ff``: the
        forwarded-for values received; ``fwd``: a trusted hop's other forwarded headers,
        joined per name; ``request_id``: the client's, when it may pass; ``xff``: the
        X-Forwarded-For lines received, whatever the trust, when another header is the
        forwarded-for header)."""
        s = self._settings
        host_b = host.encode("ascii")
        if not has_host and host_b:
            # An absolute-form target's authority, or the Host a "Connection: host" took out:
            # the proxy, too, sends its backend a Host.
            out.insert(0, (b"host", host_b))
        if scope["type"] == "websocket":
            out.append((b"connection", b"upgrade"))
        if request_id is None and s.generate_request_id:
            try:
                ids = self.request_id  # (then called: 3.11 never specialises self.request_id())
                request_id = ids().encode("ascii")
            except Exception:
                # As the proxy core (``Proxy._request_id_failed``): nginx's $request_id cannot
                # fail, so a raising callable costs the request nothing but its own id.
                request_id = self._request_id_failed().encode("ascii")
        if request_id is not None:
            out.append((b"x-request-id", request_id))
        client_b = (client_ip or "").encode("ascii")
        joined_ff = b", ".join(incoming_ff) if incoming_ff else b""
        fwd_host = fwd.get(b"x-forwarded-host") if fwd else None
        if fwd_host is not None:
            fwd_host = first_forwarded_host(fwd_host)
        # As the proxy (``_build_upstream_headers``): nginx's $full_x_forwarded_for is built
        # from $http_x_forwarded_for whatever forwarded-for-header names.
        full = joined_ff if self._ff_name == b"x-forwarded-for" else (
            b", ".join(xff) if xff else b"")
        # As the proxy, a header whose value would be empty is not sent (nginx's
        # proxy_set_header): no X-Forwarded-For/X-Real-IP for a scope without client, no
        # X-Forwarded-Host for a request without Host.
        if joined_ff or full:
            ff_value = forwarded_for_value(s, full, (peer or "").encode("ascii"), client_b)
            if ff_value:
                out.append((b"x-forwarded-for", ff_value))
            if client_b:
                out.append((b"x-real-ip", client_b))
            if joined_ff:
                out.append((b"x-original-forwarded-for", joined_ff))
        elif client_b:
            out += [(b"x-forwarded-for", client_b), (b"x-real-ip", client_b)]
        fwd_host = fwd_host or host_b
        if fwd_host:
            out.append((b"x-forwarded-host", fwd_host))
        if s.proxy_add_original_uri_header:
            raw = scope.get("raw_path") or quote(scope.get("path") or "/", safe=_PATH_SAFE)
            # A ``bytearray`` raw_path as its bytes, as routing reads it (``_routing_target``):
            # its ``str()`` ("bytearray(b'/x')") was no target, and split_absolute_form's
            # refusal escaped as the server's 500. Its path only, as routing and
            # ``_request_uri`` read it: www.rst's raw_path excludes the query string, but
            # httpx's ASGITransport (encode/httpx#2810) put it there, and the query came twice
            # ("/x?a=1?a=1").
            uri = (bytes(raw) if isinstance(raw, (bytes, bytearray))
                   else str(raw).encode("latin-1")).partition(b"?")[0]
            if uri[:1] != b"/" and uri != b"*":
                # nginx's $request_uri of an absolute-form target is its path (the parser
                # takes scheme and authority apart), as the proxy sends it; routing accepted
                # this target already, so it splits.
                uri = split_absolute_form(uri.decode("latin-1"))[0].encode("latin-1")
            qs = scope.get("query_string") or b""
            out.append((b"x-original-uri", uri + (b"?" + qs if qs else b"")))
        server = scope.get("server")
        server_port = server[1] if server else None
        if fwd:
            port = (b"443" if scheme == "https" else b"80") if server_port is None \
                else str(server_port).encode("ascii")
            # As the proxy: a trusted hop's empty X-Forwarded-Proto/-Port is set (""), and
            # no header whose value is empty is sent.
            proto = fwd.get(b"x-forwarded-proto", scheme.encode("ascii"))
            fport = fwd.get(b"x-forwarded-port", port)
            if fport:
                out.append((b"x-forwarded-port", fport))
            if proto:
                out += [(b"x-forwarded-proto", proto), (b"x-forwarded-scheme", proto),
                        (b"x-scheme", proto)]
        else:
            block = self._fwd_blocks.get((scheme, server_port))
            out += block if block is not None else self._fwd_block(scheme, server_port)
        if prefix is not None:
            out.append((b"x-forwarded-prefix", prefix))
        return out

    def _fwd_block(self, scheme: str, server_port: Any) -> list[tuple[bytes, bytes]]:
        """X-Forwarded-Port/-Proto/-Scheme and X-Scheme from this hop (the proxy's
        ``_fwd_block``: constant per listener), made once per (scheme, server port)."""
        key = (scheme, server_port)
        block = self._fwd_blocks.get(key)
        if block is None:
            port = (b"443" if scheme == "https" else b"80") if server_port is None \
                else str(server_port).encode("ascii")
            proto = scheme.encode("ascii")
            block = [(b"x-forwarded-port", port), (b"x-forwarded-proto", proto),
                     (b"x-forwarded-scheme", proto), (b"x-scheme", proto)]
            if len(self._fwd_blocks) > 64:
                self._fwd_blocks.clear()
            self._fwd_blocks[key] = block
        return block

    # -- lifespan ----------------------------------------------------------------------------

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        apps: list[ASGIApp] = []
        for a in [*self.backends.values(), *([self.fallback] if self.fallback else [])]:
            if not any(a is b for b in apps):
                apps.append(a)
        # Each app its own scope, as its own server would give it (an app may write to it:
        # Starlette's ``scope["app"] = self``); the server's ``state`` dict in each, shared,
        # as the server copies that one dict into every request's scope (lifespan.rst).
        subs = [_SubLifespan(a, dict(scope)) for a in apps]
        while True:
            message = await receive()
            phase = message["type"].rpartition(".")[2]  # "startup" / "shutdown"
            results = await asyncio.gather(*(s.send(message) for s in subs))
            errors = [e for e in results if e]
            if errors and phase == "startup":
                # The server sends no shutdown after a failed startup (uvicorn and hypercorn
                # exit): the apps that did start are shut down now, as an AsyncExitStack
                # unwinds, or their cleanup (a pool's close) would never run.
                started = [s for s, e in zip(subs, results) if e is None and s.running]
                down = {"type": "lifespan.shutdown"}
                errors += [e for e in await asyncio.gather(*(s.send(down) for s in started))
                           if e]
                for s in started:
                    await s.finish()
            if phase == "shutdown":
                close_idle_auth()  # the idle auth-keepalive connections (_asgi_lifespan.py)
            if errors:
                await send({"type": f"lifespan.{phase}.failed", "message": "; ".join(errors)})
            else:
                await send({"type": f"lifespan.{phase}.complete"})
            if phase == "shutdown":
                for s in subs:
                    await s.finish()
                return


def _streamed(scope: Scope) -> bool:
    """Whether a request without Content-Length may have a body: on HTTP/1.x only with a
    Transfer-Encoding (else none follows: nothing to read, and no "100 Continue" from the
    server for it, as the proxy sends none); on HTTP/2 and 3 its frames say, so it is read."""
    if str(scope.get("http_version", "1.1")).startswith("1"):
        return any(n.lower() == b"transfer-encoding" for n, _ in scope.get("headers") or ())
    return True


async def _over_limit(reply: _Reply, receive: Receive, limit: int) -> bool:
    """Read a streamed request body (no Content-Length) that no rule routes, as the proxy
    does before its 404 (proxy/_connection.py ``_defer_unrouted``: ingress-nginx proxies it
    to the default backend from the server's ``location /``, and nginx's chunked body filter
    refuses one past that location's client_max_body_size). True when nothing is left to
    answer: it went over ``limit`` (the 413 is answered, ``_Reply.counting``), or the client
    went away before its end (``http.disconnect``: the proxy records 400, nginx's "client
    prematurely closed connection", and sends nothing; a server following www.rst raises
    OSError on a send to a closed connection). False at its end."""
    counted = reply.counting(receive, limit)
    while True:
        message = await counted()
        if reply.cut or message["type"] == "http.disconnect":
            return True
        if message["type"] != "http.request" or not message.get("more_body"):
            return False


#: No forwarded headers from a trusted hop.
_NO_FWD: dict[bytes, bytes] = {}

#: Response extensions a mounted app is never offered: the proxy passes none of their
#: messages. It drops an upstream's 1xx but 101 (proxy/_connection.py; nginx's
#: ngx_http_upstream_process_early_hints passes a 103 only with ``early_hints``, off by
#: default), and pushes nothing (HTTP/2 server push left nginx in 1.25.1).
_NEVER_OFFERED = frozenset({"http.response.early_hint", "http.response.push"})
#: With use-gzip / enable-brotli also the file send whose bytes ``gzip_send`` never sees
#: (it compresses a ``pathsend`` file itself).
_NOT_OFFERED_COMPRESSED = _NEVER_OFFERED | {"http.response.zerocopysend"}
#: With limit-rate both file sends: ``throttled_send`` counts ``http.response.body`` bytes,
#: and nginx's limit_rate holds for a file it sends with sendfile too.
_NOT_OFFERED_THROTTLED = _NOT_OFFERED_COMPRESSED | {"http.response.pathsend"}


def _offered(extensions: Any, compress: bool, throttled: bool) -> Any:
    """The scope's ``extensions`` as the mounted app is offered them: without those whose
    messages would carry the answer past what this hop does to it (``_NEVER_OFFERED`` and
    the others). extensions.rst: an app uses one only when its scope lists it, else sends
    ``http.response.body``, which the send filters read. The server's object itself when
    nothing is taken out (or it is no mapping); else a new dict, the server's untouched."""
    drop = _NOT_OFFERED_THROTTLED if throttled \
        else _NOT_OFFERED_COMPRESSED if compress else _NEVER_OFFERED
    if not isinstance(extensions, Mapping) or drop.isdisjoint(extensions):
        return extensions
    return {name: value for name, value in extensions.items() if name not in drop}


#: ``METHOD_CHARS`` as text: ``method.strip(_METHOD_CHARS)`` is empty for a method nginx reads.
_METHOD_CHARS = METHOD_CHARS.decode("ascii")
#: ``NGINX_METHODS`` as text (one set lookup for the common method, no scan).
_NGINX_METHODS = frozenset(m.decode("ascii") for m in NGINX_METHODS)

#: ``raw_path`` -> (its canonical path, encoded) for a scope without ``root_path``, where the
#: routing target is a function of ``raw_path`` alone (``_routing_target``) and
#: ``canonical_path`` a pure one: the same few paths come again and again.
_TARGETS: dict[bytes, tuple[str, bytes]] = {}
