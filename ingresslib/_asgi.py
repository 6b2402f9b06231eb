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
itself, so does this app, before any routing: a Host the proxy refuses (``check_host``) or two
different Host values → ``400``; ``CONNECT`` → ``405``; ``OPTIONS *`` → ``200`` with ``allow``;
an absolute-form target (uvicorn passes it through) is routed on its path when its authority
equals Host, else ``400``. With ``require_endpoints=True`` a
backend whose Service has no ready endpoint in the resources also gets ``503``; by default the
mounted app is the endpoint. WebSocket requests are routed the same way; a refusal uses the
``websocket.http.response`` extension when the server offers it, else closes (the server then
answers 403). Lifespan events go to every mounted app (and the fallback).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any
from urllib.parse import quote, unquote

from ._errors import BadRequestError
from ._normalize import canonical_path
from ._resources import Resources
from ._router import Decision, Router
from .proxy._errors import RemoteProxyError
from .proxy._headers import OPTIONS_ALLOW, check_host, split_absolute_form

__all__ = ["IngressASGI", "Scope", "Message", "Receive", "Send", "ASGIApp", "DECISION_KEY"]

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

_REASONS = {400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            503: "Service Unavailable"}


class IngressASGI:
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
    ) -> None:
        if isinstance(router_or_resources, Router):
            self.router = router_or_resources
        else:
            self.router = Router(router_or_resources, ingress_class=ingress_class,
                                 controller=controller)
        for key in backends:
            ns, slash, rest = key.partition("/")
            if not slash or not ns or not rest or rest.startswith(":") or rest.endswith(":"):
                raise ValueError(f"backend key {key!r} is not 'namespace/service[:port]'")
        self.backends: dict[str, ASGIApp] = dict(backends)
        self.fallback = fallback
        self.mount_prefix = mount_prefix
        self.require_endpoints = require_endpoints

    def update(self, res: Resources) -> None:
        """Swap to new resources (``ClusterWatcher(app.update)`` keeps the app in step with a
        cluster); requests in flight finish on the old table."""
        self.router.update(res)

    def backend_for(self, decision: Decision) -> ASGIApp | None:
        """The mounted app for a Decision: ``ns/svc:port-as-written``, then
        ``ns/svc:resolved-target-port``, then ``ns/svc``."""
        if decision.service is None:
            return None  # a resource backend: nothing to mount
        base = f"{decision.namespace}/{decision.service}"
        if decision.backend is not None and decision.backend in self.backends:
            return self.backends[decision.backend]
        if decision.port is not None:
            app = self.backends.get(f"{base}:{decision.port}")
            if app is not None:
                return app
        return self.backends.get(base)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if kind not in ("http", "websocket"):
            raise RuntimeError(f"IngressASGI cannot handle scope type {kind!r}")
        root = scope.get("root_path", "") or ""
        try:
            if kind == "http" and scope.get("method") == "CONNECT":
                # SEMANTICS §5 "CONNECT → 405", as the proxy answers it.
                raise BadRequestError("CONNECT is not supported", 405)
            host = _host(scope)
            target = _routing_target(scope, root)
            if target == "*" and kind == "http" and scope.get("method") == "OPTIONS":
                # SEMANTICS §5 "`*` only for OPTIONS"; the proxy answers the server-wide
                # OPTIONS itself (200 + allow): it asks about the server, not about an app.
                await _answer_options(send)
                return
            if not target.startswith("/"):
                # uvicorn (h11) passes an absolute-form target through as raw_path and path.
                # SEMANTICS §5: "absolute-form is accepted when its authority equals Host,
                # then forwarded as origin-form" -- the proxy's rule; anything else is a 400
                # from canonical_path below.
                target, host = _absolute_form(target, host)
            rel = canonical_path(target)
            client = scope.get("client")
            decision = self.router.route(
                scope.get("method", "GET"), host, rel, scope.get("headers") or (),
                client[0] if client else None,
                query=(scope.get("query_string") or b"").decode("latin-1") or None)
        except BadRequestError as err:
            await _refuse(scope, send, err.status_hint)
            return
        app: ASGIApp | None = None
        mount = ""
        if decision is not None:
            app = self.backend_for(decision)
            if app is not None and self.require_endpoints and decision.endpoint is None:
                app = None
            m = decision.match
            if self.mount_prefix and m.path_type == "Prefix" and m.match_path:
                mount = unquote(m.match_path.rstrip("/"))
        if app is None:
            if self.fallback is None:
                await _refuse(scope, send, 404 if decision is None else 503)
                return
            app, mount = self.fallback, ""
        child = dict(scope)
        child[DECISION_KEY] = decision
        child["path"] = root + unquote(rel)
        child["raw_path"] = rel.encode("ascii")
        child["root_path"] = root + mount
        await app(child, receive, send)

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


def _routing_target(scope: Scope, root: str) -> str:
    raw = scope.get("raw_path")
    if raw:
        target = raw.decode("latin-1") if isinstance(raw, (bytes, bytearray)) else str(raw)
        target = target.partition("?")[0]
        if root and (target == root or target.startswith(root + "/")):
            # Servers differ on whether raw_path holds root_path (uvicorn 0.54 and
            # Starlette's Mount: yes; earlier uvicorn releases: no), while ``path`` holds it
            # (see the module docstring). raw_path is "unmodified from the bytes that were
            # received": when ``path`` is root_path + raw_path decoded, raw_path is the part
            # under the mount, and a request for "/mnt/x" there must not lose its "/mnt".
            decoded = scope.get("path")
            if not (isinstance(decoded, str) and decoded == root + unquote(target)):
                target = target[len(root):] or "/"
        return target
    path: str = scope.get("path") or "/"
    if root and (path == root or path.startswith(root + "/")):
        path = path[len(root):] or "/"
    return quote(path, safe=_PATH_SAFE)


def _host(scope: Scope) -> str:
    """The Host the request is routed on, refused (400) where the proxy refuses it.

    www.rst: ":authority ... must be added to the start of the iterable with host as the
    header name or replace any existing host header". A server that adds it and keeps the
    client's Host hands over two; the proxy refuses a duplicate Host (RFC 9112 §3.2: "more
    than one Host header field line" → 400). Two *different* values are refused here: an app
    that joins them (Django) or takes the last would see another host than the one routed
    on. Each value must pass the proxy's ``check_host`` (SEMANTICS §9 "bad Host values
    (spaces, /, @, bad ports)"): ``shop.test:80@admin.test`` would otherwise route as
    shop.test while ``urlsplit`` (Starlette's ``request.url``) reads admin.test.
    """
    host: bytes | None = None
    for k, v in scope.get("headers") or ():
        if k.lower() == b"host":
            value = bytes(v)
            if host is None:
                host = value
            elif value.lower() != host.lower():
                raise BadRequestError("conflicting Host headers", 400)
    if host is None:
        return ""
    try:
        check_host(host)
    except RemoteProxyError as err:
        raise BadRequestError(str(err), err.status_hint) from None
    return host.decode("ascii")


def _absolute_form(target: str, host: str) -> tuple[str, str]:
    """``(origin-form path, host)`` of an absolute-form target, as the proxy takes it: the
    authority must equal Host, case-insensitively ("two different hosts in one request is a
    routing confusion attempt: refuse"); with no Host, the authority is the host."""
    if not target[:8].lower().startswith(("http://", "https://")):
        return target, host  # not absolute-form: canonical_path refuses it
    try:
        path, authority = split_absolute_form(target)
        if not host:
            check_host(authority.encode("latin-1"))
    except RemoteProxyError as err:
        raise BadRequestError(str(err), err.status_hint) from None
    if host and authority.lower() != host.lower():
        raise BadRequestError("absolute-form target does not match Host", 400)
    return path, host or authority


async def _answer_options(send: Send) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"allow", OPTIONS_ALLOW), (b"content-length", b"0")]})
    await send({"type": "http.response.body", "body": b""})


async def _refuse(scope: Scope, send: Send, status: int) -> None:
    reason = _REASONS.get(status, "Error")
    body = f"{status} {reason}\n".encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"),
               (b"content-length", str(len(body)).encode())]
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    if "websocket.http.response" in (scope.get("extensions") or {}):
        await send({"type": "websocket.http.response.start", "status": status,
                    "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
        return
    # Closing before accepting makes the server answer 403.
    await send({"type": "websocket.close", "code": 1008})
