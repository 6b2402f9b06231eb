"""``custom-http-errors`` in IngressASGI: the mounted app's answer with a listed status is
replaced by the answer of the Ingress's ``default-backend`` Service's app, as the proxy core
replaces an upstream's (proxy/_error_pages.py, ``Router.error_page``).

``ErrorPageSend`` wraps the app's ``send``: a ``http.response.start`` whose status is listed,
when the router has an error page backend with a mounted app, is held back with the rest of
that answer (nginx's ``proxy_intercept_errors``: the upstream's head and body are dropped);
``ErrorPageReceive`` keeps the request body the app read (up to a bound) so that the error
page's app gets it again, as nginx's named location sends the buffered body again. Then
``error_page_scope`` is the scope the error page's app is called with: path ``/``, the query
kept (``rewrite (.*) / break``), and X-Code, X-Format, X-Original-URI, X-Namespace,
X-Ingress-Name, X-Service-Name, X-Service-Port (nginx.tmpl ``CUSTOM_ERRORS``).

The error page's app is its request's upstream, its call the connect: ``Router.error_page``
picks when the answer is intercepted (a round-robin turn of the default backend), and an error
page whose app is never called (the client got a 413 first, the request cancelled or failed
before it, a default backend no app plays) gives that turn back (``Router.give_back``), as
nginx picks the named location's peer only at its connect (ingress-nginx ``balancer.lua``
``balance()``, run from ngx_http_upstream_connect).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ._balance_request import RequestContext
from .proxy._error_pages import _ERROR_PAGE_NAMES, default_backend_fields

__all__ = ["ErrorPageReceive", "ErrorPageSend", "ErrorPages", "error_page_scope"]

Message = MutableMapping[str, Any]

#: The request body kept for the error page's app; a longer one is not sent again, and its
#: answer is passed untouched (the proxy core's replay bound is the same idea).
BODY_LIMIT = 1 << 20


class ErrorPageReceive:
    """The app's ``receive``, keeping the ``http.request`` bodies it read (``chunks``; None
    once over ``BODY_LIMIT``), and, once ``replaying``, giving them again."""

    __slots__ = ("receive", "chunks", "size", "replaying", "done")

    def __init__(self, receive: Callable[[], Awaitable[Message]]) -> None:
        self.receive = receive
        self.chunks: list[bytes] | None = []
        self.size = 0
        self.replaying = False
        #: The app read the whole body.
        self.done = False

    async def __call__(self) -> Message:
        if self.replaying:
            # The kept body in one message, then the client's own next messages (the rest of
            # a body the app did not read, a disconnect).
            if self.chunks is not None:
                body, self.chunks = b"".join(self.chunks), None
                return {"type": "http.request", "body": body, "more_body": not self.done}
            return await self.receive()
        message = await self.receive()
        if message.get("type") == "http.request" and self.chunks is not None:
            body = bytes(message.get("body") or b"")
            self.size += len(body)
            self.done = not message.get("more_body", False)
            if self.size > BODY_LIMIT:
                self.chunks = None
            else:
                self.chunks.append(body)
        return message


class ErrorPageSend:
    """The app's ``send``: an answer whose status is in ``codes`` is dropped when ``resolve``
    (asked once, with the status) finds an error page app; ``intercepted`` is then the
    status."""

    __slots__ = ("send", "codes", "resolve", "started", "intercepted", "receive")

    def __init__(self, send: Callable[[Message], Awaitable[None]], codes: frozenset[int],
                 resolve: Callable[[int], bool], receive: ErrorPageReceive) -> None:
        self.send = send
        self.codes = codes
        self.resolve = resolve
        self.receive = receive
        self.started = False
        self.intercepted: int | None = None

    async def __call__(self, message: Message) -> None:
        if self.intercepted is not None:
            return  # the intercepted answer's body: dropped
        if not self.started and message.get("type") == "http.response.start":
            self.started = True
            status = message.get("status")
            if (type(status) is int and status in self.codes
                    and self.receive.chunks is not None and self.resolve(status)):
                self.intercepted = status
                return
        await self.send(message)


def error_page_scope(child: Message, scope: Message, decision: Any, code: int, root: str,
                     raw_root: bytes, rewrite_headers: bool) -> Message:
    """The scope of the error page's app: ``child`` (the scope the app got) with path ``/``
    under ``root`` (the query kept), ``decision`` (``Router.error_page``'s) and, when the
    adapter writes the backend headers, the named location's ones for ``code``."""
    out = dict(child)
    out["path"] = root + "/"
    out["raw_path"] = raw_root + b"/"
    out["root_path"] = root
    if rewrite_headers:
        raw = scope.get("raw_path") or scope.get("path", "/").encode("utf-8")
        qs = scope.get("query_string") or b""
        uri = bytes(raw) + (b"?" + bytes(qs) if qs else b"")
        fields = default_backend_fields(decision, scope.get("headers") or (), code)
        fields.insert(2 if len(fields) > 1 and fields[1][0] == b"x-format" else 1,
                      (b"x-original-uri", uri))
        out["headers"] = [(k, v) for k, v in child.get("headers") or ()
                          if bytes(k).lower() not in _ERROR_PAGE_NAMES] + fields
    return out


class ErrorPages:
    """One request's ``custom-http-errors`` state: ``receive`` and ``send`` for its app, and
    ``serve`` calling the error page's app when the answer was intercepted. ``adapter`` is
    the IngressASGI (``router.error_page``, ``backend_for``)."""

    __slots__ = ("adapter", "decision", "receive", "send", "error", "app", "page_send",
                 "page_headers", "reached")

    def __init__(self, adapter: Any, decision: Any, receive: Callable[[], Awaitable[Message]],
                 send: Callable[[Message], Awaitable[None]], codes: frozenset[int],
                 page_send: Callable[[Message], Awaitable[None]] | None = None,
                 page_headers: Any = None) -> None:
        self.adapter = adapter
        #: The headers set on the error page's answer (``reply.cors`` then): the ConfigMap's
        #: add-headers only. nginx's ``error_page`` moves the request to the server block's
        #: ``location @custom_...``, whose configuration has none of the location's
        #: ``more_set_headers`` (CORS, custom-headers); the http block's are inherited.
        self.page_headers = page_headers
        #: The error page's app's ``send`` (None: ``reply.send``): the ConfigMap hide-headers
        #: hold for it too (proxy_hide_header is http-level: the named location inherits it).
        self.page_send = page_send
        self.decision = decision
        self.receive = ErrorPageReceive(receive)
        self.send = ErrorPageSend(send, codes, self._resolve, self.receive)
        #: The error page's Decision (``router.error_page``'s pick), and its app (None: no
        #: app plays it, the answer passes untouched).
        self.error: Any = None
        self.app: Any = None
        #: The error page's app was called (its turn used: none to give back).
        self.reached = False

    def _resolve(self, status: int) -> bool:
        error_page = getattr(self.adapter.router, "error_page", None)
        if error_page is None:
            return False
        err = error_page(self.decision)
        if err is None:
            return False
        self.error = err
        self.app = self.adapter.backend_for(err)
        return self.app is not None

    def _give_back(self) -> None:
        """The error page's pick took a turn and its app was never called: the turn goes back
        to the router (``IngressASGI._give_back``: ``Router.give_back``, getattr-guarded, a
        failure logged), told of the request as ``error_page`` was asked (none:
        ``RequestContext``'s defaults). The original request's turn stays taken: its app was
        called."""
        if self.error is None or self.reached:
            return
        asked = RequestContext()
        self.adapter._give_back(self.error, asked.method, asked.host, asked.path, (),
                                asked.client_ip, asked.query)

    async def serve(self, child: Message, scope: Message, root: str, raw_root: bytes,
                    reply: Any, limit: int = 0) -> bool:
        """Call the error page's app (True) when the app's answer was intercepted.
        ``limit``: the location's ``proxy-body-size`` (0: none), counted again over the
        whole body the error page's app reads (the kept part given again, then the rest):
        nginx's body limit holds for the request whichever location reads it."""
        code = self.send.intercepted
        if code is None or reply.cut or reply.started:
            # Nothing intercepted, or the client already has an answer (the 413 of a body
            # over the limit): the error page's app is not called.
            return False
        self.receive.replaying = True
        reply.set_cookie = self.error.set_cookie
        reply.cors = self.page_headers
        page = error_page_scope(child, scope, self.error, code, root, raw_root,
                                self.adapter.rewrite_headers)
        page["ingresslib.decision"] = self.error
        receive = reply.counting(self.receive, limit) if limit else self.receive
        self.reached = True
        await self.app(page, receive, self.page_send or reply.send)
        return True

    def wrap(self, app: Any, scope: Message, root: str, raw_root: bytes, reply: Any,
             limit: int = 0) -> Callable[[Message, Any, Any], Awaitable[None]]:
        """``app`` followed by ``serve``. An app that raises after its listed status was
        intercepted still gets the error page answered (nginx decides on the upstream's
        response head: ``ngx_http_upstream_intercept_errors`` finalizes the upstream and
        the named location answers, whatever the upstream does after), then the exception
        goes on to the ASGI server (which logs it; the answer is complete). However it ends,
        an error page picked and never served gives its turn back (``_give_back``)."""

        async def run(child: Message, receive: Any, send: Any) -> None:
            try:
                await app(child, receive, send)
            except Exception:
                if self.send.intercepted is None:
                    raise
                await self.serve(child, scope, root, raw_root, reply, limit)
                raise
            else:
                await self.serve(child, scope, root, raw_root, reply, limit)
            finally:
                # (A cancellation too: the client gone while the app still ran.)
                self._give_back()

        return run
