"""IngressASGI: an ASGI 3 app that routes by the Ingress rules to mounted ASGI apps.

The Kubernetes objects say which backend (``namespace/service:port``) a request reaches; the
``backends`` mapping says which in-process ASGI app plays that backend. The same manifests that
configure the cluster's ingress then route inside one Python process (docs/asgi.md).

Scope rules (ASGI HTTP/WebSocket connection scope, asgiref ``specs/www.rst``):

- The routing path is the canonical form (SEMANTICS §5) of ``raw_path`` when the server gives
  it (uvicorn, hypercorn, daphne do), else of ``path`` re-quoted. A path that has no canonical
  form is answered ``400`` (``BadRequestError.status_hint``) and never reaches an app.
- ``path`` includes ``root_path`` (asgiref: "root_path ... does not change the path being
  routed"; Starlette ≥ 0.35 and uvicorn ≥ 0.26 follow it): routing uses the part after the
  incoming ``root_path``.
- The mounted app sees ``path = root_path + canonical path`` (percent-decoded, as ``path``
  always is), ``raw_path`` = the canonical path (encoded), so app and ingress agree on one path
  ("the path the router matched is the path the backend receives").
- For a ``Prefix`` rule, ``root_path`` is extended by the rule's path without its trailing
  ``/``, like Starlette's ``Mount``: rule ``/api``, request ``/api/users`` → ``root_path`` +=
  ``"/api"``, ``path`` stays ``/api/users``; the app routes on ``/users``. ``Exact``,
  ``ImplementationSpecific`` and default backends leave ``root_path`` as it was. Pass
  ``mount_prefix=False`` to never extend it.
- ``scope["ingresslib.decision"]`` holds the :class:`~ingresslib._router.Decision` (None when
  only the ``fallback`` app serves a request no rule matched). Nothing is written into
  ``scope["state"]``: that dict belongs to the app's lifespan.

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
equals Host, else ``400``. With ``require_endpoints=True`` a
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
``wss`` scope (not on a 101) and the affinity cookie on every answer, and
the app's ``Server``/``X-Pad``/``X-Accel-*`` response headers dropped; and
the app sees the request headers the proxy sends its backend (hop-by-hop and odd names out, the
forwarded family and ``X-Request-ID`` written by this hop), the scope's ``client`` playing the
TCP peer. The decisions are the proxy's own code (proxy/_actions.py, proxy/_headers.py), not
copies of it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, MutableMapping
from typing import Any, NamedTuple, cast
from urllib.parse import quote, unquote

from ._errors import BadRequestError
from ._normalize import canonical_path, normalize_host
from ._resources import Resources
from ._router import Decision, Router
from .proxy._actions import (
    HookFailures,
    RouteOptionsSource,
    _no_tls,
    access_answer,
    body_too_large,
    denied_first,
    redirect_for,
    tls_host_predicate,
)
from .proxy._annotations import RouteOptions
from .proxy._errors import RemoteProxyError
from .proxy._headers import (
    FORWARDED_DROP,
    HEADER_NAME_CHARS,
    METHOD_CHARS,
    NGINX_METHODS,
    OPTIONS_ALLOW,
    REQUEST_DROP,
    UNIQUE_REQUEST,
    _NGINX_HIDDEN,
    HeaderKind,
    RequestIds,
    TrustPolicy,
    check_host,
    check_host_header,
    client_address,
    content_length,
    duplicate_header,
    first_forwarded_host,
    forwarded_for_value,
    forwarded_redirect_host,
    hsts_value,
    local_body,
    note_read_once,
    request_header_kind,
    special_request_names,
    split_absolute_form,
    transfer_coding_error,
    valid_request_id,
)
from .proxy._settings import ProxySettings

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

# RFC 3986 pchar minus "%" (and "/"): what ``quote`` must leave alone when re-quoting ``path``.
_PATH_SAFE = "/-._~!$&'()*+,;=:@"

# Shared with the proxy core, so the two cannot drift apart: the reason phrases and local
# answer bodies, the request-id generator and the header-name rules (proxy/_headers.py), the
# route options and the redirect decision (proxy/_actions.py ``RouteOptionsSource``,
# ``redirect_for``), the client address (``client_address``). What stays written here is the
# ASGI side of the same rules: the proxy builds its backend head as bytes in one pass over
# h11's parsed headers, an ASGI app takes a list of (name, value) pairs (``_scan_headers``
# for the common request, in the pass that reads Host; ``_backend_headers`` for any other).
# Per request, only what the request changes is computed: what a header name is (per
# settings), what a route implies (per Match) and a raw path's canonical form are remembered.

# HeaderKind members as globals: compared by identity once per special request header.
_PASS, _HOST, _LENGTH, _CHUNKED, _UPGRADE = (HeaderKind.PASS, HeaderKind.HOST, HeaderKind.LENGTH,
                                             HeaderKind.CHUNKED, HeaderKind.UPGRADE)
_FORWARDED_FOR, _FORWARDED, _REQUEST_ID = (HeaderKind.FORWARDED_FOR, HeaderKind.FORWARDED,
                                           HeaderKind.REQUEST_ID)
#: ``_scan_headers``'s code for ``Connection`` (a DROP header whose tokens are read): not a
#: HeaderKind value.
_CONNECTION = -1
#: ``_scan_headers``'s codes for a ``UNIQUE_REQUEST`` name that passes (Authorization,
#: If-None-Match...) and for one that is dropped (Expect): a second line is refused, as the
#: proxy refuses it (nginx's "client sent duplicate header line", 400). Content-Length and
#: Transfer-Encoding keep their kinds; their branches refuse a second line.
_UNIQUE = -2
_UNIQUE_DROP = -3


class IngressASGI(RouteOptionsSource):
    """Route each HTTP and WebSocket request by the Ingress rules to a mounted ASGI app.

    ``router_or_resources`` is a :class:`Router` (share it with a cluster watcher:
    ``watcher`` calls ``app.update``) or a ``Resources`` (a Router is built with
    ``ingress_class``/``controller``). ``backends`` maps ``"namespace/service:port"`` (the port
    as written in the Ingress backend, number or name) or ``"namespace/service"`` (any port) to
    an ASGI app.

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

    def __init__(
        self,
        router_or_resources: Router | Resources,
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
        if isinstance(router_or_resources, Router):
            self.router = router_or_resources
        else:
            self.router = Router(router_or_resources, ingress_class=ingress_class,
                                 controller=controller)
        for key in backends:
            ns, slash, rest = key.partition("/")
            service, colon, port = rest.partition(":")
            # A second '/' or ':' can never equal a decision's key: refused here, not a silent
            # 503 for every request meant for it.
            if (not ns or not service or "/" in rest or (colon and (not port or ":" in port))):
                raise ValueError(f"backend key {key!r} is not 'namespace/service[:port]'")
        self.backends: dict[str, ASGIApp] = dict(backends)
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
        table = self.router.table
        self.router.update(res)
        if self.router.table is table and self._twin_hosts_table is table:
            # The same table (only Services/endpoints changed): a resolved target port, which
            # a ``backends`` key may name, can have changed.
            self._report_mounts()

    def _table_seen(self) -> None:
        self._report_mounts()

    def _report_mounts(self) -> None:
        """Warn (on ``ingresslib.asgi``) when ``backends`` does not fit the served rules:
        keys that name no backend of them (``backend_for`` never looks them up: a request
        meant for one answers 503), and, without a ``fallback``, the Service backends no key
        mounts (each of their requests answers 503). Silent when every key names a backend
        and every backend has an app; a report is not repeated until it changes. Once per
        table (``_table_seen``) and after an update that kept the table. Cost: one pass over
        the table's routes."""
        unused, unmounted = self._mount_report()
        if not unused and not unmounted:
            self._mount_warning = None
            return
        parts = []
        if unused:
            parts.append(f"backends key(s) {_listed(unused)} name no backend of the served "
                         "rules (keys: 'namespace/service', 'namespace/service:port' with "
                         "the port as the Ingress writes it or the resolved target port; "
                         "compare with `ingresslib explain`)")
        if unmounted:
            parts.append(f"backend(s) {_listed(unmounted)} have no app and there is no "
                         "fallback: their requests answer 503")
        message = "IngressASGI: " + "; ".join(parts)
        if message != self._mount_warning:
            self._mount_warning = message
            _log.warning("%s", message)

    def _mount_report(self) -> tuple[list[str], list[str]]:
        """(the ``backends`` keys no served backend looks up, the Service backends
        ``backend_for`` finds no app for), each in order. A backend's candidate keys are
        ``backend_for``'s: ``ns/svc:port-as-written``, ``ns/svc:resolved-target-port`` (from
        the router's built routes), ``ns/svc``. Resource backends are left out (never
        mounted: they take the ``fallback``)."""
        routes = getattr(getattr(self.router, "table", None), "routes", None)
        if routes is None:
            return [], []
        built = getattr(getattr(self.router, "_state", None), "routes", None)
        names: set[str] = set()
        #: ``ns/svc`` of the backends whose resolved port is not known (any port key of
        #: theirs may be in use).
        unresolved: set[str] = set()
        unmounted: dict[str, None] = {}
        for m in routes:
            rid = getattr(m, "route_id", None)
            route = built[rid] if built is not None and type(rid) is int \
                and 0 <= rid < len(built) else None
            for side, backend in ((m, getattr(route, "main", None)),
                                  (getattr(m, "canary", None), getattr(route, "canary", None))):
                if side is None or getattr(side, "service", None) is None:
                    continue
                base = f"{side.namespace}/{side.service}"
                label = f"{base}:{side.port}"
                eps = getattr(backend, "eps", None)
                port = eps.port if eps is not None else None
                names.update((label, base))
                if port is not None:
                    names.add(f"{base}:{port}")
                elif eps is None:
                    unresolved.add(base)
                # ``backend_for`` itself, so that the report cannot disagree with it: it
                # reads these four fields of a Decision.
                looked = cast(Decision, _Looked(side.service, side.namespace, port, label))
                if self.fallback is None and self.backend_for(looked) is None:
                    unmounted[label] = None
        unused = [key for key in self.backends if key not in names
                  and key.partition(":")[0] not in unresolved]
        return unused, list(unmounted)

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
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            if kind == "lifespan":
                await self._lifespan(scope, receive, send)
                return
            raise RuntimeError(f"IngressASGI cannot handle scope type {kind!r}")
        settings = self._settings
        root = scope.get("root_path", "") or ""
        secure = scope.get("scheme") in ("https", "wss")
        # HSTS on every answer over TLS, a wss handshake's refusal too (nginx.tmpl: "if
        # ($scheme = https) { more_set_headers "Strict-Transport-Security: ..." }", and the
        # proxy's ``_add_response_headers``); ``_Reply.send`` leaves a 101 alone.
        reply = _Reply(scope, send, self._hsts if secure else None, secure)
        method = scope.get("method", "GET")
        #: The scan's backend headers so far (None: the general path builds them).
        out: list[tuple[bytes, bytes]] | None = None
        has_host = False
        ff_items: list[tuple[bytes, bytes]] = _NONE
        fwd_items: list[tuple[bytes, bytes]] = _NONE
        request_id: bytes | None = None
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
                    target, host = _absolute_form(target, host, _has_host(scope))
                    rel = canonical_path(target)
                    rel_b = rel.encode("ascii")
            client = scope.get("client")
            peer: str | None = client[0] if client else None
            # The proxy's own function (proxy/_headers.py ``client_address``): the scan kept
            # the forwarded-for headers, the general path has them all.
            client_ip = client_address(peer, settings, self._trust,
                                       ff_items if items is None else items, self._ff_name)
            query = (scope.get("query_string") or b"").decode("latin-1") or None
            # The server's headers as they came: the router reads a ``bytearray`` or
            # ``memoryview`` value as its bytes (and a ``str`` one as text, as its API takes).
            # A www twin's own server answers it (RouteOptionsSource._www_twin_hosts): not
            # routed.
            twins = self._www_twin_hosts()
            if twins and host and (normalize_host(host) or "") in twins:
                decision = None
            else:
                decision = self.router.route(method, host, rel, scope.get("headers") or (),
                                             client_ip, query=query)
        except BadRequestError as err:
            await reply.local(err.status_hint)
            return
        scheme = "https" if secure else "http"
        app: ASGIApp | None = None
        mount = ""
        prefix: bytes | None = None
        checked_basic = False
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
                answer = self._unrouted_answer(server_host, scheme, rel, query,
                                               self.https_port, host_raw=host,
                                               location_host=location_host,
                                               target=request_uri, length=length)
            else:
                answer = self._unrouted_answer("", scheme, rel, query, 0, length=length)
            if answer is not None:
                location = answer[2]
                await reply.local(answer[1], None if location is None
                                  else [(b"location", location)])
                return
            # The proxy's access control of the host's server location (or block-cidrs),
            # before the 404 or the ``fallback`` (RouteOptionsSource._unrouted_status).
            status, challenge = self._unrouted_status(server_host, client_ip,
                                                      lambda: _authorization(scope))
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
                # every request: a WebSocket handshake that declares a body too).
                await reply.local(413)
                return
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
                redirect = redirect_for(opts, scheme, host, host_n, rel, query, has_tls,
                                        self.https_port, settings.http_redirect_code,
                                        rule_host=m.host, location_host=location_host,
                                        target=request_uri)
                if redirect is not None:
                    await reply.local(redirect[0], [(b"location", redirect[1])])
                    return
            if access is not None:
                # Allow/deny, then basic auth, after the redirects (nginx's access phase), as
                # the proxy does (proxy/_actions.py ``access_answer``).
                status, challenge = access_answer(access, client_ip,
                                                  lambda: _authorization(scope))
                if status:
                    await reply.local(status, None if challenge is None
                                      else [(b"www-authenticate", challenge)])
                    return
            app = self.backend_for(decision)
            if app is not None and self.require_endpoints and decision.endpoint is None:
                app = None
            if self.mount_prefix:
                mount = plan[2]
            prefix = plan[3]
        if app is None:
            if self.fallback is None:
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
        if decision is not None and app is not self.fallback:
            # The session cookie goes with the backend's answer only, as the proxy sets it
            # when it opens the upstream (ingress-nginx: sticky.lua's balance(), the balancer
            # phase): never with a redirect, a 403/401/503 or a 413 answered here.
            reply.set_cookie = decision.set_cookie
        child = dict(scope)
        child[DECISION_KEY] = decision
        child["path"] = root + (unquote(rel) if "%" in rel else rel)
        child["raw_path"] = rel_b
        child["root_path"] = root + mount
        if self.rewrite_headers:
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
                    scope, items, named, host, peer, client_ip, scheme, prefix)
            else:
                fwd: dict[bytes, bytes] = _NO_FWD
                if fwd_items and settings.use_forwarded_headers and self._trust.trusted(peer):
                    fwd = {}
                    for name, value in fwd_items:
                        fwd[name] = fwd[name] + b", " + value if name in fwd else value
                child["headers"] = self._add_forwarded(
                    scope, out, has_host, host, [v for _, v in ff_items] if ff_items else _NONE,
                    fwd, request_id, peer, client_ip, scheme, prefix,
                    [v for n, v in fwd_items if n == b"x-forwarded-for"] if fwd_items else _NONE)
        if checked_basic or (decision is not None and opts.access is not None
                             and opts.access.basic is not None):
            # As the proxy (nginx.tmpl 'proxy_set_header Authorization "";'): the credentials
            # checked here are not handed to the app.
            child["headers"] = [(k, v) for k, v in child.get("headers") or ()
                                if bytes(k).lower() != b"authorization"]
        if limit:
            await app(child, reply.counting(receive, limit), reply.send)
            if reply.late:
                raise BodyTooLarge(f"request body over {limit} bytes after the response "
                                   "began (413): the connection must be closed")
        else:
            # Always through ``reply.send``: the response head loses what the proxy hides
            # from an upstream's (``_Reply.send``).
            await app(child, receive, reply.send)

    def _location_host(self, scope: Scope, peer: str | None) -> str | None:
        """``location_host`` of an ssl-redirect's Location (proxy/_actions.py
        ``https_redirect``; its ``target`` is nginx's ``$request_uri``, ``_request_uri``), as
        the proxy core's ``_location_host`` gives it: the first X-Forwarded-Host when the
        forwarded family is trusted here (use-forwarded-headers and the scope's ``client``
        inside proxy-real-ip-cidr, as for the headers the app sees) and it is a valid host
        (``forwarded_redirect_host``), else None (the Host). Only called when an ssl-redirect
        may be answered: never for a proxied request that could not be redirected."""
        location_host = None
        s = self._settings
        if s.use_forwarded_headers and self._trust.trusted(peer):
            # nginx's $http_x_forwarded_host joins repeated lines: the first one's first
            # element is the one named.
            for name, value in scope.get("headers") or ():
                if bytes(name).lower() == b"x-forwarded-host":
                    location_host = forwarded_redirect_host(bytes(value))
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
        # which the adapter does not apply but the backend behind the proxy would see.
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
                         client_ip: str | None, scheme: str,
                         prefix: bytes | None) -> list[tuple[bytes, bytes]]:
        """The request headers the mounted app sees: those the proxy sends its backend
        (proxy/_connection.py ``_build_upstream_headers``, SEMANTICS §9) -- hop-by-hop and
        Connection-named headers out, invalid and ``_`` names dropped, the forwarded family
        and ``X-Request-ID`` written by this hop -- except the body framing
        (``content-length``, ``transfer-encoding``), kept as the server gave it.

        ``items`` are the scope's headers with lower-cased names (www.rst: names "should be
        lowercased", which is all a server does), ``named`` the tokens of their Connection
        headers.

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
                request_id = self.request_id().encode("ascii")
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
        if joined_ff or full:
            out += [(b"x-forwarded-for",
                     forwarded_for_value(s, full, (peer or "").encode("ascii"), client_b)),
                    (b"x-real-ip", client_b)]
            if joined_ff:
                out.append((b"x-original-forwarded-for", joined_ff))
            out.append((b"x-forwarded-host", fwd_host or host_b))
        else:
            out += [(b"x-forwarded-for", client_b), (b"x-real-ip", client_b),
                    (b"x-forwarded-host", fwd_host or host_b)]
        if s.proxy_add_original_uri_header:
            raw = scope.get("raw_path") or quote(scope.get("path") or "/", safe=_PATH_SAFE)
            uri = raw if isinstance(raw, bytes) else str(raw).encode("latin-1")
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
            proto = fwd.get(b"x-forwarded-proto") or scheme.encode("ascii")
            out += [(b"x-forwarded-port", fwd.get(b"x-forwarded-port") or port),
                    (b"x-forwarded-proto", proto), (b"x-forwarded-scheme", proto),
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
        subs = [_SubLifespan(a, scope) for a in apps]
        while True:
            message = await receive()
            phase = message["type"].rpartition(".")[2]  # "startup" / "shutdown"
            errors = [e for e in await asyncio.gather(*(s.send(message) for s in subs)) if e]
            if errors:
                await send({"type": f"lifespan.{phase}.failed", "message": "; ".join(errors)})
            else:
                await send({"type": f"lifespan.{phase}.complete"})
            if phase == "shutdown":
                for s in subs:
                    await s.finish()
                return


class _SubLifespan:
    """One mounted app's lifespan, driven by the messages IngressASGI receives."""

    def __init__(self, app: ASGIApp, scope: Scope) -> None:
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.outbox: asyncio.Queue[Message | None] = asyncio.Queue()
        self.supported = True
        self.answered = False  # sent at least one lifespan message: it takes part
        self.failed = False  # sent a ".failed" message itself
        self.error: str | None = None  # raised after taking part: reported once
        self.task = asyncio.ensure_future(self._run(app, scope))

    async def _run(self, app: ASGIApp, scope: Scope) -> None:
        try:
            await app(scope, self.inbox.get, self._send)
        except Exception as exc:  # noqa: BLE001 - the app's error is reported, never raised here
            if self.answered:
                # It answered (startup.complete) and then raised: its cleanup did not
                # complete. Hiding that behind "complete" would lose the error; uvicorn
                # (lifespan="on") reads an exception there as a failure too.
                if not self.failed:
                    self.error = f"{type(exc).__name__}: {exc}"
            else:
                # lifespan.rst: "If an exception is raised when calling the application
                # callable with a lifespan.startup message or a scope with type lifespan, the
                # server must continue but not send any lifespan events."
                _log.debug("lifespan unsupported by %r: %s", app, exc)
                self.supported = False
        finally:
            self.outbox.put_nowait(None)

    async def _send(self, message: Message) -> None:
        self.answered = True
        if str(message.get("type", "")).endswith(".failed"):
            self.failed = True
        await self.outbox.put(message)

    def _take_error(self) -> str | None:
        error, self.error = self.error, None
        return error

    async def send(self, message: Message) -> str | None:
        """Forward one server message; return an error text if the app reported failure."""
        if not self.supported:
            return None
        if self.task.done():
            return self._take_error()  # it raised while running: reported at shutdown
        await self.inbox.put(message)
        reply = await self.outbox.get()
        if reply is None:
            # Returned or raised without answering: no lifespan support, unless it raised
            # after taking part.
            return self._take_error()
        if reply["type"].endswith(".failed"):
            return str(reply.get("message", "")) or "failed"
        return None

    async def finish(self) -> None:
        if not self.task.done():
            try:
                await asyncio.wait_for(asyncio.shield(self.task), 5)
            except asyncio.TimeoutError:
                self.task.cancel()


def _authorization(scope: Scope) -> bytes | None:
    """The request's ``Authorization`` value (the first one), for ``auth-type: basic``."""
    for name, value in scope.get("headers") or ():
        if bytes(name).lower() == b"authorization":
            return bytes(value)
    return None


def _routing_target(scope: Scope, root: str) -> str:
    raw = scope.get("raw_path")
    if raw:
        target = raw.decode("latin-1") if isinstance(raw, (bytes, bytearray)) else str(raw)
        target = target.partition("?")[0]
        if not root:
            return target
        # The mount as the server matched it: on the decoded path, whatever its spelling.
        mounted = _mount_unescaped(target, root) if "%" in target else target
        if mounted == root or mounted.startswith(root + "/"):
            # Servers differ on whether raw_path holds root_path (uvicorn 0.54 and
            # Starlette's Mount: yes; earlier uvicorn releases: no), while ``path`` holds it
            # (see the module docstring). raw_path is "unmodified from the bytes that were
            # received": when ``path`` is root_path + raw_path decoded, raw_path is the part
            # under the mount, and a request for "/mnt/x" there must not lose its "/mnt".
            decoded = scope.get("path")
            if not (isinstance(decoded, str) and decoded == root + unquote(target)):
                target = mounted[len(root):] or "/"
        return target
    path: str = scope.get("path") or "/"
    if root and (path == root or path.startswith(root + "/")):
        path = path[len(root):] or "/"
    return quote(path, safe=_PATH_SAFE)


def _mount_unescaped(target: str, root: str) -> str:
    """``target`` with its first segments spelled as ``root`` when they are ``root`` with
    escapes (``/%6Dnt/x`` under ``/mnt``): the server mounted the app on the decoded path
    (Starlette's Mount matches ``path``), so those segments are the mount whatever their
    spelling; left as sent, the request would be routed with the mount in its path, on
    another rule than the same request spelled plainly. Anything else is returned as is."""
    n = root.count("/") + 1
    prefix = "/".join(target.split("/", n)[:n])
    if prefix != root and unquote(prefix) == root:
        return root + target[len(prefix):]
    return target


def _request_uri(scope: Scope, rel: str, query: str | None) -> tuple[str, str | None]:
    """nginx's ``$request_uri`` ("full original request URI (with arguments)") of an ASGI
    request, as ``(path, query)``: ``raw_path`` ("The original HTTP path component,
    unmodified from the bytes that were received by the web server", asgiref www.rst) --
    ``root_path`` included when the server has it there, since the client sent it -- and
    ``query`` (``query_string``). An absolute-form ``raw_path`` gives its path (nginx parses
    scheme and host apart). Without ``raw_path``, ``path`` re-quoted, as for X-Original-URI.
    Its routed part passed ``canonical_path`` already; a raw path that is not ASCII (no
    client sends one) gives ``rel``, the canonical path routed on."""
    raw = scope.get("raw_path")
    if not raw:
        return quote(scope.get("path") or "/", safe=_PATH_SAFE), query
    target = raw.decode("latin-1") if isinstance(raw, (bytes, bytearray)) else str(raw)
    target = target.partition("?")[0]
    if not target.isascii():
        return rel, query
    if target[:1] != "/":
        try:
            target = split_absolute_form(target)[0]
        except RemoteProxyError:
            return rel, query
    return target, query


def _read_headers(scope: Scope, read: frozenset[bytes]
                  ) -> tuple[list[tuple[bytes, bytes]], str, int, list[bytes]]:
    """One pass over the request headers: ``(headers with lower-cased names, Host, declared
    Content-Length, Connection tokens)``.

    www.rst: names and values are byte strings. A name that is not ``bytes`` is a 400 (no
    name the proxy could receive). A value of a header the adapter reads (``read``: Host,
    the framing, Connection, Authorization, X-Request-ID, the forwarded family) is read as
    the proxy reads its bytes: a ``bytearray`` or ``memoryview`` as its bytes, anything else
    (a ``str``) 400, never a 500 from a ``bytes`` operation on it. The values of the other
    headers go to the app as they came, and to the router, which reads any header a route
    names (canary header and cookie, affinity cookie, ``upstream-hash-by``, a balancer's
    ``RequestContext``): a ``bytearray`` or ``memoryview`` value as its bytes.

    The Content-Length is its value, -1 for none; one the proxy refuses (``content_length``:
    not digits, ``+5``, ``1_0``, over 2**63 - 1) is its 400 here too, limit or not, as is a
    Transfer-Encoding it refuses (``transfer_coding_error``: HTTP/1.0, not ``chunked``, with
    a Content-Length). A server built on ``int()`` or that lets both framings through hands
    them over. The Host is the one the request is routed on, refused (400) where the proxy
    refuses it.

    www.rst: ":authority ... must be added to the start of the iterable with host as the
    header name or replace any existing host header". A server that adds it and keeps the
    client's Host hands over two; the proxy refuses a duplicate Host (RFC 9112 §3.2: "more
    than one Host header field line" → 400). Two *different* values are refused here: an app
    that joins them (Django) or takes the last would see another host than the one routed
    on. Each value must pass the proxy's ``check_host`` (SEMANTICS §9 "bad Host values
    (spaces, /, @, bad ports)"): ``shop.test:80@admin.test`` would otherwise route as
    shop.test while ``urlsplit`` (Starlette's ``request.url``) reads admin.test.

    Over HTTP/1.x no server adds a Host: two of them came from the client, refused like the
    proxy (h11: "Found multiple Host: headers") whatever their values; and an HTTP/1.1 request
    without one is refused too (RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request)
    status code to any HTTP/1.1 request message that lacks a Host header field"). A server
    that does not check these itself (one built on httptools or twisted) hands them over.
    An HTTP/2 or HTTP/3 request with neither ``:authority`` nor Host is refused as well:
    nginx's ngx_http_process_request_header refuses any version after 1.0 without one ("if
    (r->headers_in.host == NULL && r->http_version > NGX_HTTP_VERSION_10)"); only HTTP/1.0
    is routed without a host. www.rst: ``http_version`` "Optional; if missing defaults to
    "1.1"".
    """
    version = scope.get("http_version") or "1.1"
    raw_headers = scope.get("headers") or ()
    items: list[tuple[bytes, bytes]] = []
    for k, v in raw_headers:
        if type(k) is not bytes:
            # www.rst: header names are byte strings. A str, bytearray or memoryview one (the
            # scans hand it over: ``_NotScanned``) is no name the proxy could receive, and
            # would raise below (a bytearray is unhashable, a str has no bytes ``translate``,
            # a memoryview no ``lower``): 400, as a head the proxy cannot parse.
            raise BadRequestError("header name is not a byte string", 400)
        name = k.lower()
        if type(v) is not bytes and name in read:
            v = _value(v)
        items.append((name, v))
    host: bytes | None = None
    length = -1
    te: Any = None
    named: list[bytes] = []
    unique: list[bytes] | None = None
    for name, v in items:
        if name not in _READ_NAMES:
            continue
        if name in UNIQUE_REQUEST:
            # The proxy's 400 for a second line (nginx's "client sent duplicate header line").
            unique = note_read_once(unique, name, _duplicate)
        if name == b"host":
            value = bytes(v)
            if host is None:
                host = value
            elif version in ("1.0", "1.1") or value.lower() != host.lower():
                raise BadRequestError("conflicting Host headers", 400)
        elif name == b"content-length":
            length = _length(v)
        elif name == b"transfer-encoding":
            te = v
        elif name == b"connection":
            if name in read:  # (not with ``rewrite_headers`` off: the app's business)
                named.extend(t.strip().lower() for t in v.split(b","))
    if te is not None:
        _check_chunked(te, version, length >= 0)
    if host is None:
        if version != "1.0":
            # Every version after 1.0 (nginx: "r->http_version > NGX_HTTP_VERSION_10"), an
            # HTTP/2 or HTTP/3 request without :authority or Host too.
            raise BadRequestError("request without Host", 400)
        return items, "", length, named
    return items, _host_str(host), length, named


@functools.lru_cache(maxsize=16)
def _read_names(settings: ProxySettings, rewrite: bool) -> frozenset[bytes]:
    """The names whose values the adapter reads (``_read_headers``: one that is not a byte
    string is a 400 there), with ``rewrite_headers`` (the scan's; the forwarded family and
    X-Request-ID are read to be rewritten) and without (the routing scan's: Host, the
    framing, the names nginx reads once, the client address, the X-Forwarded-Host of an
    ssl-redirect's Location). Not an attribute: past 30 instance attributes CPython stops
    sharing the instance dict's keys, and every ``self.x`` of the hot path gets slower."""
    ff_name = settings.forwarded_for_header.lower().encode("latin-1")
    if not rewrite:
        return _READ_NAMES - {b"connection"} | {b"transfer-encoding", ff_name,
                                                b"x-forwarded-host"}
    return _READ_NAMES | {b"transfer-encoding", b"x-request-id", ff_name} | {
        name for name in FORWARDED_DROP
        if request_header_kind(name, None, ff_name, settings) in (
            HeaderKind.FORWARDED, HeaderKind.FORWARDED_FOR)}


def _read_names_for(settings: ProxySettings, rewrite: bool) -> frozenset[bytes]:
    """``_read_names``, also for settings that cannot be hashed (a list in a field)."""
    try:
        return _read_names(settings, rewrite)
    except TypeError:
        return _read_names.__wrapped__(settings, rewrite)


def _value(v: Any) -> bytes:
    """The value of a header the adapter reads, as the proxy would read those bytes: a
    ``bytearray`` or ``memoryview`` as its bytes; anything else (a ``str``: www.rst says
    byte strings, and no bytes are known for it) is the 400 of a head the proxy cannot
    parse."""
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    raise BadRequestError("header value is not a byte string", 400)


#: An empty list no one appends to (``__call__``'s defaults for what the scan did not find).
_NONE: list[Any] = []


class _Looked(NamedTuple):
    """What ``IngressASGI.backend_for`` reads of a Decision (``_mount_report``)."""

    service: str
    namespace: str
    port: int | None
    backend: str


def _listed(items: list[str], most: int = 10) -> str:
    """``items`` quoted and comma-separated, at most ``most`` of them named."""
    shown = ", ".join(repr(i) for i in items[:most])
    return shown + (f" and {len(items) - most} more" if len(items) > most else "")
#: No forwarded headers from a trusted hop.
_NO_FWD: dict[bytes, bytes] = {}

#: The header names ``_read_headers`` reads or counts.
#: ``METHOD_CHARS`` as text: ``method.strip(_METHOD_CHARS)`` is empty for a method nginx reads.
_METHOD_CHARS = METHOD_CHARS.decode("ascii")
#: ``NGINX_METHODS`` as text (one set lookup for the common method, no scan).
_NGINX_METHODS = frozenset(m.decode("ascii") for m in NGINX_METHODS)
_READ_NAMES = UNIQUE_REQUEST | {b"host", b"content-length", b"connection"}
#: Host values that passed ``check_host`` (a pure check), with their ``str``: a handful of
#: hosts come again and again.
_CHECKED_HOSTS: dict[bytes, str] = {}
#: ``raw_path`` -> (its canonical path, encoded) for a scope without ``root_path``, where the
#: routing target is a function of ``raw_path`` alone (``_routing_target``) and
#: ``canonical_path`` a pure one: the same few paths come again and again.
_TARGETS: dict[bytes, tuple[str, bytes]] = {}


class _NotScanned(Exception):
    """A header name ``_scan_headers`` does not take (not ``bytes`` once lower-cased, or not
    hashable): ``_read_headers`` and ``_backend_headers`` decide, as they always did."""


def _duplicate(name: bytes) -> BadRequestError:
    """The proxy's 400 for a second line of a ``UNIQUE_REQUEST`` header."""
    err = duplicate_header(name)
    return BadRequestError(str(err), err.status_hint)


#: ``bytes.isdigit`` (ASCII digits only): called on a ``str`` or ``bytearray`` it raises
#: TypeError, which sends a scan to the general path (``_NotScanned``).
_isdigit = bytes.isdigit


def _length(value: Any) -> int:
    """A Content-Length value as the proxy reads it (``content_length``), else its 400.

    nginx: ``ngx_atoof`` failing is "client sent invalid "Content-Length" header", 400, in
    ngx_http_process_request_header before the TRACE 405 and before any location, so whatever
    ``proxy-body-size`` says (``0`` too): a 400, never the 413 ``int()`` made of ``+5`` or
    ``1_000``, and no app for ``-5``, ``5 5`` or a value ``int()`` could not read."""
    try:
        return content_length(value)
    except RemoteProxyError as err:
        raise BadRequestError(str(err), err.status_hint) from None


def _check_chunked(value: Any, version: str, has_length: bool) -> None:
    """The proxy's 400 for a Transfer-Encoding it refuses (``transfer_coding_error``): on
    HTTP/1.0, other than ``chunked``, with a Content-Length. uvicorn's h11 lets the first and
    the last through (it reads the body chunked), httptools ``gzip, chunked``."""
    why = transfer_coding_error(value, version == "1.0", has_length)
    if why is not None:
        raise BadRequestError(why, 400)


def _host_str(host: bytes) -> str:
    """``host`` (a Host header's value) as ``str`` once it passed the proxy's
    ``check_host_header`` (else 400: an empty one too)."""
    host_s = _CHECKED_HOSTS.get(host)
    if host_s is None:
        try:
            check_host_header(host)
        except RemoteProxyError as err:
            raise BadRequestError(str(err), err.status_hint) from None
        host_s = host.decode("ascii")
        if len(_CHECKED_HOSTS) >= 1024:
            _CHECKED_HOSTS.clear()
        _CHECKED_HOSTS[host] = host_s
    return host_s


def _scan_headers(scope: Scope, plain: set[bytes], names: dict[bytes, tuple[bytes, int]],
                  learn: Callable[[bytes], tuple[bytes, int]], upgrade: bool
                  ) -> tuple[str, int, list[bytes], list[tuple[bytes, bytes]], bool,
                             list[tuple[bytes, bytes]], list[tuple[bytes, bytes]],
                             bytes | None]:
    """``_read_headers`` and the loop of ``_backend_headers`` in one pass, each header name
    classified once per settings (``names``, filled by ``learn``): ``(Host, Content-Length,
    Connection tokens, the headers that pass, whether Host is among them, the forwarded-for
    headers, the other forwarded headers, the client's X-Request-ID if it may pass)``.
    ``plain`` holds the names of ``names`` that pass as they are and are lower-case already
    (all of them, from a server that follows www.rst): one set lookup each.

    The kinds are ``request_header_kind``'s without the Connection tokens. A token changes no
    kind when it names a hop-by-hop or forwarded header (those kinds come first in
    ``request_header_kind``, and ``odd_name_dropped`` drops their ``_`` spellings anyway):
    ``IngressASGI._inert_tokens``. Any other token (``Connection: close``, a named header)
    sends the request to ``_backend_headers``, which asks with the tokens; Host, the length
    and the tokens read here stand, they never depend on them.

    Raises ``BadRequestError`` as ``_read_headers`` does, ``_NotScanned`` for a name that is
    not ``bytes`` (then ``_read_headers`` decides)."""
    version = scope.get("http_version") or "1.1"
    out: list[tuple[bytes, bytes]] = []
    append = out.append
    host: bytes | None = None
    length = -1
    seen_length = False
    named: list[bytes] = []
    has_host = False
    ff_items: list[tuple[bytes, bytes]] = []
    fwd_items: list[tuple[bytes, bytes]] = []
    request_id: bytes | None = None
    seen_request_id = False
    seen_chunked = False
    unique: list[bytes] | None = None
    try:
        for k, v in scope.get("headers") or ():
            if k in plain:
                append((k, v))  # the common case: an ordinary header, named in lower case
                continue
            entry = names.get(k)
            if entry is None:
                entry = learn(k)
            name, code = entry
            if not code:  # _PASS
                append((name, v))
                continue
            if code is _HOST:
                value = bytes(v)
                if host is None:
                    host = value
                elif version in ("1.0", "1.1") or value.lower() != host.lower():
                    raise BadRequestError("conflicting Host headers", 400)
                has_host = True
                append((name, v))
            elif code == _CONNECTION:
                # A ``str`` value raises TypeError here, a ``memoryview`` AttributeError (the
                # general path decides); a ``bytearray`` one gives bytearray tokens, which
                # ``__call__`` reads as their bytes.
                if b"," in v:
                    named.extend([t.strip().lower() for t in v.split(b",")])
                else:
                    named.append(v.strip().lower())  # one token: "keep-alive"
            elif code == _UNIQUE or code == _UNIQUE_DROP:
                # Authorization, If-None-Match, Expect...: a second line is the proxy's 400.
                # (After Host and Connection, which nearly every request has.)
                unique = note_read_once(unique, name, _duplicate)
                if type(v) is not bytes:
                    raise _NotScanned  # Authorization's is read (basic auth): general path
                if code == _UNIQUE:
                    append((name, v))
            elif code is _LENGTH:
                if seen_length:
                    raise _duplicate(name)
                seen_length = True
                # Up to 18 ASCII digits (below 2**63) are read at once; anything else is
                # read, or refused (400), as the proxy reads it (``_length``). A value that
                # is not ``bytes`` raises TypeError here: the general path decides.
                length = int(v) if len(v) < 19 and _isdigit(v) else _length(v)
                if seen_chunked:
                    raise BadRequestError("both Content-Length and Transfer-Encoding", 400)
                append((name, v))  # the body framing: the server's, kept as it gave it
            elif code is _CHUNKED:
                if seen_chunked:
                    raise _duplicate(name)
                seen_chunked = True
                _check_chunked(v, version, seen_length)
                append((name, v))
            elif code is _UPGRADE:
                if upgrade:
                    append((name, v))
            elif code is _FORWARDED_FOR:
                if type(v) is not bytes:
                    raise _NotScanned  # a value read (the client address): general path
                ff_items.append((name, v))
            elif code is _FORWARDED:
                if type(v) is not bytes:
                    raise _NotScanned
                fwd_items.append((name, v))
            elif code is _REQUEST_ID:
                if type(v) is not bytes:
                    raise _NotScanned
                if not seen_request_id:
                    seen_request_id = True
                    if valid_request_id(v):
                        request_id = v
            # else DROP
    except (TypeError, AttributeError):
        # An unhashable name (bytearray), or a value of a header read here that is not
        # ``bytes`` (``str``: no ``bytes`` method takes it; ``memoryview``: no ``strip``):
        # the general path decides (``_read_headers``).
        raise _NotScanned from None
    if host is None:
        if version != "1.0":
            # Every version after 1.0 (nginx: "r->http_version > NGX_HTTP_VERSION_10"), an
            # HTTP/2 or HTTP/3 request without :authority or Host too.
            raise BadRequestError("request without Host", 400)
        return "", length, named, out, has_host, ff_items, fwd_items, request_id
    return _host_str(host), length, named, out, has_host, ff_items, fwd_items, request_id


def _scan_routing(scope: Scope, plain: set[bytes], names: dict[bytes, tuple[bytes, int]],
                  learn: Callable[[bytes], tuple[bytes, int]]
                  ) -> tuple[str, int, list[bytes], list[tuple[bytes, bytes]], bool,
                             list[tuple[bytes, bytes]], list[tuple[bytes, bytes]],
                             bytes | None]:
    """``_scan_headers`` for ``rewrite_headers=False``: the same Host, Content-Length and
    forwarded-for headers (the client address), refused where it refuses them, and nothing
    else -- no headers that pass, no Connection tokens, no other forwarded headers: nobody
    reads them when the app gets the scope's own list. Same shape as ``_scan_headers``'s
    answer, those parts empty."""
    version = scope.get("http_version") or "1.1"
    host: bytes | None = None
    length = -1
    seen_length = False
    seen_chunked = False
    unique: list[bytes] | None = None
    ff_items: list[tuple[bytes, bytes]] = _NONE
    try:
        for k, v in scope.get("headers") or ():
            if k in plain:
                continue  # the common case: an ordinary header, nothing routing reads
            entry = names.get(k)
            if entry is None:
                entry = learn(k)
            code = entry[1]
            if code is _HOST:
                value = bytes(v)
                if host is None:
                    host = value
                elif version in ("1.0", "1.1") or value.lower() != host.lower():
                    raise BadRequestError("conflicting Host headers", 400)
            elif code == _UNIQUE or code == _UNIQUE_DROP:
                # Refused as by ``_scan_headers``: the app would get both lines.
                name = entry[0]
                unique = note_read_once(unique, name, _duplicate)
                if type(v) is not bytes:
                    raise _NotScanned  # Authorization's is read (basic auth): general path
            elif code is _LENGTH:
                if seen_length:
                    raise _duplicate(entry[0])
                seen_length = True
                length = int(v) if len(v) < 19 and _isdigit(v) else _length(v)
                if seen_chunked:
                    raise BadRequestError("both Content-Length and Transfer-Encoding", 400)
            elif code is _CHUNKED:
                if seen_chunked:
                    raise _duplicate(entry[0])
                seen_chunked = True
                _check_chunked(v, version, seen_length)
            elif code is _FORWARDED_FOR:
                if type(v) is not bytes:
                    raise _NotScanned  # a value read (the client address): general path
                if ff_items is _NONE:
                    ff_items = []
                ff_items.append((entry[0], v))
            elif code is _FORWARDED:
                if type(v) is not bytes and entry[0] == b"x-forwarded-host":
                    raise _NotScanned  # read for an ssl-redirect (``_location_host``)
    except (TypeError, AttributeError):
        # An unhashable name (bytearray), or a value of a header read here that is not
        # ``bytes`` (``str``: no ``bytes`` method takes it; ``memoryview``: no ``strip``):
        # the general path decides (``_read_headers``).
        raise _NotScanned from None
    if host is None:
        if version != "1.0":
            # Every version after 1.0 (nginx: "r->http_version > NGX_HTTP_VERSION_10"), an
            # HTTP/2 or HTTP/3 request without :authority or Host too.
            raise BadRequestError("request without Host", 400)
        return "", length, _NONE, _NONE, False, ff_items, _NONE, None
    return _host_str(host), length, _NONE, _NONE, False, ff_items, _NONE, None


def _has_host(scope: Scope) -> bool:
    """Whether the request has a Host header at all (the scans give "" for a missing and for
    an empty one alike); read on the rare absolute-form path only."""
    return any(name.lower() == b"host" for name, _ in scope.get("headers") or ())


def _absolute_form(target: str, host: str, has_host: bool) -> tuple[str, str]:
    """``(origin-form path, host)`` of an absolute-form target, as the proxy takes it: the
    authority must equal Host, case-insensitively ("two different hosts in one request is a
    routing confusion attempt: refuse"), an empty Host included; with no Host header, the
    authority is the host."""
    if not target[:8].lower().startswith(("http://", "https://")):
        return target, host  # not absolute-form: canonical_path refuses it
    try:
        path, authority = split_absolute_form(target)
        if not has_host:
            check_host(authority.encode("latin-1"))
    except RemoteProxyError as err:
        raise BadRequestError(str(err), err.status_hint) from None
    if has_host and authority.lower() != host.lower():
        raise BadRequestError("absolute-form target does not match Host", 400)
    return path, host if has_host else authority


async def _answer_options(send: Send) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"allow", OPTIONS_ALLOW), (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})


class BodyTooLarge(RuntimeError):
    """A streamed request body went over ``proxy-body-size`` after the app had begun its
    response: the proxy closes the client connection then, and an ASGI app can only make its
    server do that by raising."""


#: ``_NGINX_HIDDEN`` as written by the spec (lower case) and the usual other spellings
#: ("Server", "X-Accel-Redirect", "SERVER"): tested as given, without lower-casing each name.
_HIDDEN_SPELLINGS = frozenset(
    spelling for name in _NGINX_HIDDEN
    for spelling in (name, name.title(), name.upper(), name.capitalize()))
#: The messages that carry a response head (headers the proxy filters or adds to).
_STARTS = frozenset({"http.response.start", "websocket.http.response.start",
                     "websocket.accept"})


class _Reply:
    """The ``send`` side of one request: local answers, and the headers the proxy adds to
    every answer (HSTS on HTTPS, the affinity cookie); also the body-size count."""

    __slots__ = ("scope", "server_send", "hsts", "secure", "set_cookie", "started", "cut",
                 "late", "_receive", "_limit", "_seen")

    def __init__(self, scope: Scope, send: Send, hsts: bytes | None, secure: bool) -> None:
        self.scope = scope
        self.server_send = send
        #: The HSTS value to add (an https or wss scope with ``hsts`` on), else None.
        self.hsts = hsts
        self.secure = secure
        self.set_cookie: str | None = None
        self.started = False  # a response start went to the server
        self.cut = False  # the body went over the limit: the app's sends are dropped
        #: The body went over the limit after the response began (``counting``): the caller
        #: raises ``BodyTooLarge`` once the app returns.
        self.late = False

    async def send(self, message: Message, own: bool = False) -> None:
        """The app's ``send`` (``own``: this hop's answer, ``local``)."""
        if self.cut and not own:
            return  # answered 413 (or the connection is to be dropped): the app is done
        kind = message["type"]
        if kind in _STARTS:
            if kind != "websocket.accept":
                self.started = True
            headers = message.get("headers") or ()
            # www.rst: "headers (Iterable[[byte string, byte string]])": a generator or other
            # one-pass iterable is read once here and handed on as a list, not consumed by
            # the checks below and passed on empty.
            rebuilt = type(headers) is not list and type(headers) is not tuple
            if rebuilt:
                headers = list(headers)
            # The app is this hop's upstream: the headers the proxy hides from its upstream's
            # answer (proxy/_headers.py ``_NGINX_HIDDEN``: nginx's ngx_http_proxy_hide_headers,
            # "Server", "X-Pad", "X-Accel-..."; X-Accel-Redirect often names internal paths)
            # are dropped here too, on a 101 (``websocket.accept``) as the proxy's _on_switch
            # drops them. The ASGI server writes its own Date and Server.
            hidden = False
            try:
                for name, _ in headers:
                    # www.rst: "Header names must be lowercased"; the usual other spellings
                    # are in the set too, so that no name is lower-cased on this path.
                    if name in _HIDDEN_SPELLINGS:
                        hidden = True
                        break
            except TypeError:  # an unhashable name (a bytearray): the slow test
                hidden = True
            if hidden:
                headers = [h for h in headers if bytes(h[0]).lower() not in _NGINX_HIDDEN]
                rebuilt = True
            if (self.hsts is not None or self.set_cookie) and kind != "websocket.accept":
                headers = self._headers(list(headers))  # headers to add (not to a 101)
                rebuilt = True
            if rebuilt:
                message = dict(message)
                message["headers"] = headers
        await self.server_send(message)

    def _headers(self, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        if self.hsts is not None and not any(
                bytes(n).lower() == b"strict-transport-security" for n, _ in headers):
            headers.append((b"strict-transport-security", self.hsts))
        cookie = self.set_cookie
        if cookie and "\r" not in cookie and "\n" not in cookie:
            if self.secure and not any(a.strip().lower() == "secure"
                                       for a in cookie.split(";")[1:]):
                # ingress-nginx sticky.lua: "if cookie_secure == nil then cookie_secure =
                # ngx.var.https == "on"" (the proxy's _add_response_headers does the same).
                cookie += "; Secure"
            headers.append((b"set-cookie", cookie.encode("utf-8", "replace")))
        return headers

    async def local(self, status: int, extra: list[tuple[bytes, bytes]] | None = None) -> None:
        """Answer ``status`` as the proxy does (its ``_local_response``): a text body, no body
        for HEAD, the same headers."""
        scope = self.scope
        body = local_body(status)
        headers = [(b"content-type", b"text/plain; charset=utf-8"),
                   (b"content-length", str(len(body)).encode()), *(extra or ())]
        if scope.get("method") == "HEAD":
            body = b""
        # ``own``: sent even once ``cut`` drops the app's messages (the streamed 413).
        send = self.send
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": status, "headers": headers},
                       True)
            await send({"type": "http.response.body", "body": body}, True)
            return
        if "websocket.http.response" in (scope.get("extensions") or {}):
            await send({"type": "websocket.http.response.start", "status": status,
                        "headers": headers}, True)
            await send({"type": "websocket.http.response.body", "body": body}, True)
            return
        # Closing before accepting makes the server answer 403.
        await send({"type": "websocket.close", "code": 1008}, True)

    def counting(self, receive: Receive, limit: int) -> Receive:
        """``receive`` counting the request body against ``limit`` (> 0): over it, the app
        learns the request is over for it (``http.disconnect``), the client gets 413 if no
        response began, else ``late`` is set (the caller raises ``BodyTooLarge``)."""
        self._receive = receive
        self._limit = limit
        self._seen = 0
        return self._counted

    async def _counted(self) -> Message:
        if self.cut:
            return {"type": "http.disconnect"}
        message = await self._receive()
        if message["type"] == "http.request":
            self._seen += len(message.get("body") or b"")
            if self._seen > self._limit:
                # The proxy's _on_body: "if opts.body_size and req.body_len >
                # opts.body_size: if req.response_started: self._close_all(now) else:
                # ... self._error_response(413, req, now)". The app learns the request
                # is over for it as from a client gone away.
                # Cut first: an app that sends from another task while the 413 is being
                # written (its send waits on the server's) must not start a second response
                # (the server's "response already completed" RuntimeError).
                self.cut = True
                if self.started:
                    self.late = True
                else:
                    await self.local(413)
                return {"type": "http.disconnect"}
        return message
