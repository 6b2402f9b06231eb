"""The ``send`` side of an IngressASGI request (``_Reply``): this hop's own answers, as the
proxy's ``_local_response`` writes them (``_answer_options``: the server-wide ``OPTIONS *``);
the app's response head as the proxy passes an upstream's on (``Date``, ``Server``, ``X-Pad``
and ``X-Accel-*`` dropped; HSTS on an ``https`` or ``wss`` scope, not on a 101; the affinity
cookie; add-headers, CORS and custom-headers, a 101's too, with its proxy-redirect /
proxy-cookie rewrite); and a streamed request body counted against ``proxy-body-size`` (413 before the
response began, ``BodyTooLarge`` after).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ClassVar

from .proxy._cors import asgi_merge
from .proxy._response_head import ResponseRewrite, rewrite_response_headers
from .proxy._gzip import _b as _value
from .proxy._header_sets import _asgi_name, server_send
from .proxy._headers import (OPTIONS_ALLOW, _NGINX_HIDDEN, local_body, passes_backend_server,
                             server_token)
from .proxy._settings import ProxySettings

if TYPE_CHECKING:
    from ._asgi import Message, Receive, Scope, Send

__all__ = ["BodyTooLarge", "_Reply", "_answer_options", "reply_type"]


async def _answer_options(send: Send) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"allow", OPTIONS_ALLOW), (b"content-length", b"0"),
                            (b"content-type", b"text/plain; charset=utf-8")]})
    await send({"type": "http.response.body", "body": b""})


class BodyTooLarge(RuntimeError):
    """A streamed request body went over ``proxy-body-size`` after the app had begun its
    response: the proxy closes the client connection then, and an ASGI app can only make its
    server do that by raising."""


#: The app's response headers dropped: the proxy's (``_NGINX_HIDDEN``) and ``Date``. nginx hides
#: an upstream's Date too (ngx_http_proxy_hide_headers: "Date", "Server", ...) and writes its own,
#: as the proxy core replaces its upstream's; here the ASGI server writes its own (uvicorn puts
#: its ``date`` before the app's headers: two Date lines, where RFC 9110 §6.6.1 wants one).
_APP_HIDDEN = _NGINX_HIDDEN | {b"date"}
#: ``_APP_HIDDEN`` as written by the spec (lower case) and the usual other spellings
#: ("Server", "X-Accel-Redirect", "SERVER"): tested as given, without lower-casing each name.
#: Each also as a ``str``: www.rst wants byte strings, but uvicorn's h11 writes a ``str`` name
#: an app sends, so such an app works behind uvicorn and must not break (or pass ``Server``)
#: behind IngressASGI.
_HIDDEN_SPELLINGS: frozenset[bytes | str] = frozenset(
    form for name in _APP_HIDDEN
    for spelling in (name, name.title(), name.upper(), name.capitalize())
    for form in (spelling, spelling.decode("latin-1")))


def _name(name: bytes | bytearray | memoryview | str) -> bytes:
    """A response header name as bytes (a ``str`` one as uvicorn's h11 writes it); another
    type, or a ``str`` that is not latin-1: TypeError naming it (``_asgi_name``, as
    ``hiding_send`` refuses one)."""
    return _asgi_name(name)


def _without(headers: Iterable[Any], drop: frozenset[bytes]) -> list[Any]:
    """``headers`` but those whose name, lower-cased, is in ``drop``."""
    return [h for h in headers if _name(h[0]).lower() not in drop]


#: The messages that carry a response head (headers the proxy filters or adds to).
_STARTS = frozenset({"http.response.start", "websocket.http.response.start",
                     "websocket.accept"})


class _Reply:
    """The ``send`` side of one request: local answers, and the headers the proxy adds to
    every answer (HSTS on HTTPS, the affinity cookie); also the body-size count."""

    __slots__ = ("scope", "server_send", "hsts", "secure", "set_cookie", "started", "cut",
                 "late", "_receive", "_limit", "_seen", "cors", "rewrite", "info")
    #: The names dropped from the app's head (``_BackendServerReply``: Server passes).
    _drop: ClassVar[frozenset[bytes]] = _APP_HIDDEN

    def __init__(self, scope: Scope, send: Send, hsts: bytes | None, secure: bool) -> None:
        self.scope = scope
        self.server_send = send
        #: The HSTS value to add (an https or wss scope with ``hsts`` on), else None.
        self.hsts = hsts
        self.secure = secure
        self.set_cookie: str | None = None
        #: A verified digest response's Authentication-Info value (proxy/_digest.py), added
        #: to every answer to the request as the proxy's ``_add_response_headers``; None: none.
        self.info: bytes | None = None
        #: The location's CORS headers for this request (proxy/_cors.py), set on every answer
        #: (a 101 too), replacing the app's of those names (more_set_headers); None: none.
        self.cors: list[tuple[bytes, bytes]] | None = None
        #: The location's proxy-redirect / proxy-cookie rewrite for a ``websocket.accept``
        #: (``rewriting_send`` does the other heads): nginx's ngx_http_proxy_process_header
        #: rewrites a 101's head too.
        self.rewrite: ResponseRewrite | None = None
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
            # drops them; and the app's Date (``_APP_HIDDEN``): the ASGI server writes its own
            # Date and Server.
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
                # (A helper: a comprehension here naming a local of ``send`` makes that local
                # a closure cell, created on every call of ``send``, hidden header or not.)
                headers = _without(headers, self._drop)
                rebuilt = True
            accept = kind == "websocket.accept"
            if accept and self.rewrite is not None and headers:
                headers = [(raw, v) for raw, _, v in rewrite_response_headers(
                    [(_name(n), _name(n).lower(), _value(v)) for n, v in headers],
                    self.rewrite)]
                rebuilt = True
            if self.set_cookie or self.hsts is not None or self.info is not None:
                # Headers to add, a 101 (``websocket.accept``) too: HSTS is a header filter
                # in nginx (``more_set_headers`` without ``-s``: every status), and
                # ngx_http_upstream_send_response sends the 101 through the filters, as the
                # proxy's _on_switch adds it.
                headers = self._headers(list(headers))
                rebuilt = True
            if self.cors is not None:
                headers = asgi_merge(headers, self.cors)
                rebuilt = True
            if rebuilt:
                message = dict(message)
                message["headers"] = headers
        await self.server_send(message)

    def _headers(self, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        if self.hsts is not None and not any(
                _name(n).lower() == b"strict-transport-security" for n, _ in headers):
            headers.append((b"strict-transport-security", self.hsts))
        cookie = self.set_cookie
        if cookie and "\r" not in cookie and "\n" not in cookie:
            if self.secure and not any(a.strip().lower() == "secure"
                                       for a in cookie.split(";")[1:]):
                # ingress-nginx sticky.lua: "if cookie_secure == nil then cookie_secure =
                # ngx.var.https == "on"" (the proxy's _add_response_headers does the same).
                cookie += "; Secure"
            headers.append((b"set-cookie", cookie.encode("utf-8", "replace")))
        if self.info is not None:
            headers.append((b"authentication-info", self.info))
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
        if status == 204:
            # As the proxy's _local_response: nginx's header filter drops Content-Type and
            # Content-Length from a 204 (a CORS preflight's answer, proxy/_cors.py).
            headers, body = list(extra or ()), b""
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


class _ServerReply(_Reply):
    """``server_tokens`` on (proxy/_headers.py): ``Server: ingresslib/<version>`` on every
    answer to the server, unless the app's passed (``_BackendServerReply``); the app's
    dropped otherwise, as an upstream's by the proxy."""

    __slots__ = ()

    def __init__(self, scope: Scope, send: Send, hsts: bytes | None, secure: bool) -> None:
        super().__init__(scope, send, hsts, secure)
        self.server_send = server_send(self.server_send, server_token())


class _BackendServerReply(_ServerReply):
    """``server_tokens`` and ``allow_backend_server_header`` on: the app's Server passes
    (proxy_pass_header Server), ``ingresslib/<version>`` when it sent none."""

    __slots__ = ()
    _drop = _APP_HIDDEN - {b"server"}


def reply_type(settings: ProxySettings) -> type[_Reply]:
    """The ``_Reply`` class of IngressASGI's ``settings`` (chosen once per settings: a plain
    request's reply is a ``_Reply``, as before these keys)."""
    if not settings.server_tokens:
        return _Reply
    return _BackendServerReply if passes_backend_server(settings) else _ServerReply
