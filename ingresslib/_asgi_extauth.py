"""External authentication (``auth-url``) in ``IngressASGI``: nginx's ``auth_request`` as the
proxy core does it (proxy/_extauth.py has the references and every choice), with the same
pure pieces: the subrequest's head (``subrequest_head``), the reading of the answer
(``verdict``), the answer to a refused request (``denial``: 401 with its WWW-Authenticate,
403, the ``auth-signin`` 302, 500) and the statuses that get the auth answer's Set-Cookie
(``adds_cookies``).

Before the mounted app is called (after the redirects, rate limits and allow/deny/basic auth,
as nginx's access phase), the auth service is asked over HTTP/1.1: ``asyncio.open_connection``
(TLS for an ``https`` auth-url, with ``ssl.create_default_context()``: the certificate and host
name verified), the head sent within the route's proxy-send-timeout, the answer's head read by
h11's parser (``_H11Reader``, the core's, bounded by ``max_response_header_size``, 1xx heads
counted, as the core's ``_pump``) within its proxy-read-timeout (the connect within
proxy-connect-timeout), its body never read, the connection closed (with ``auth-keepalive``:
the body read, the connection kept in a pool, _asgi_authkeepalive.py). Any failure (refused, timed
out, TLS, an invalid or over-long head, a 101) is the core's 500. The subrequest's head is the
core's ``subrequest_head`` with the same settings (the header name policy) and trust (the
client's forwarded headers pass only from a trusted hop: use-forwarded-headers and the scope's
``client`` inside proxy-real-ip-cidr, as for the app's scope). The request body is not read
from the client before the verdict: the app's ``receive`` is first called after it (an
``Expect: 100-continue`` client gets its 100 only then). A 2xx calls the app with the
``auth-response-headers`` in its scope's headers (the client's of those names dropped in any
spelling, an empty one not sent, a framing or hop-by-hop name never set). The subrequest's
``X-Request-ID`` is the one the app gets (``request_id_of``, chosen once per request, as the
core's proxy/_extauth.py ``_request_id``); the auth answer's
Set-Cookie values go on the answer's head (``http.response.start`` or a WebSocket refusal's
``websocket.http.response.start``) when its status is one of ``add_header``'s (or always,
with ``auth-always-set-cookie`` and on the signin 302); a 101 (``websocket.accept``) gets
none, as the core's. A WebSocket handshake is authenticated like a GET; a refusal goes
through ``websocket.http.response`` when the server offers it, else closes (403 from the
server), as IngressASGI's other refusals.
"""

from __future__ import annotations

import asyncio
import logging
import math
import ssl
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

import h11

from .proxy._annotations import RouteOptions
from .proxy._chunked import has_control
from .proxy._extauth import (
    _NOT_FROM_AUTH,
    FAILED,
    ExtAuth,
    Verdict,
    _alias,
    adds_cookies,
    denial,
    signin_variables,
    subrequest_head,
    verdict,
)
from .proxy._authcache import cache_of, lifetime, request_key
from ._asgi_authkeepalive import ask_pooled, read_answer
from .proxy._h11_reader import _H11Reader
from .proxy._satisfy import combine
from .proxy._header_sets import config_maps_of, set_headers_for
from .proxy._headers import (HEADER_NAME_CHARS, client_request_id, forwarded_for_value,
                             redirect_scheme)

__all__ = ["authenticate", "ask_auth_service", "with_auth_headers", "request_id_of"]

_log = logging.getLogger("ingresslib.asgi")

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]

#: The client verifying the auth service's certificate (made at the first https auth-url).
_SSL: ssl.SSLContext | None = None
#: The header-name characters passed to the auth service (``HEADER_NAME_CHARS`` and ``_``,
#: upper case too: the subrequest carries the client's headers as received).
_NAME_CHARS = HEADER_NAME_CHARS + HEADER_NAME_CHARS.upper() + b"_!#$%&'*+.^`|~"
#: The answers that carry a response head the Set-Cookie values go on.
_HEADS = frozenset({"http.response.start", "websocket.http.response.start"})


def _context() -> ssl.SSLContext:
    global _SSL
    if _SSL is None:
        _SSL = ssl.create_default_context()
    return _SSL


def _why(e: BaseException) -> str:
    return str(e) or type(e).__name__


async def _within(aw: Awaitable[Any], seconds: float) -> Any:
    """``aw`` within ``seconds`` (a route's timeout: an infinite one waits)."""
    if math.isinf(seconds):
        return await aw
    return await asyncio.wait_for(aw, max(seconds, 0.0))


async def _connect(auth: Any, opts: Any
                   ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
    """A new connection to ``auth``'s endpoint (TLS for https) within proxy-connect-timeout,
    or None when there is none (logged; the caller answers ``FAILED``, 500): for a subrequest
    of its own, or for the auth-keepalive pool (_asgi_authkeepalive.py ``ask_pooled``)."""
    host, port = auth.endpoint
    try:
        conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] = await _within(
            asyncio.open_connection(host, port, ssl=_context() if auth.tls else None,
                                    server_hostname=host if auth.tls else None),
            opts.connect_timeout)
    except (OSError, asyncio.TimeoutError, ValueError, UnicodeError) as e:
        _log.info("auth-url %s: cannot connect (%s): 500", auth.url, _why(e))
        return None
    return conn


async def ask_auth_service(auth: ExtAuth, head: bytes, opts: RouteOptions,
                           max_head: int,
                           keep: Callable[[h11.Response, Verdict], None] | None = None
                           ) -> Verdict:
    """Send ``head`` (``subrequest_head``) to ``auth``'s endpoint and read its answer's head:
    the ``verdict``, or ``FAILED`` (500) when it cannot be had. ``keep(answer, verdict)``
    is called with an answer read (the auth cache's, proxy/_authcache.py)."""
    if auth.keepalive is not None:  # auth-keepalive*: a pooled connection (_authkeepalive.py)
        return await ask_pooled(auth, head, opts, max_head, keep)  # type: ignore[no-any-return]
    conn = await _connect(auth, opts)
    if conn is None:
        return FAILED
    reader, writer = conn
    try:
        writer.write(head)
        await _within(writer.drain(), opts.send_timeout)
        # (each head within the location's proxy-buffer-size: nginx.tmpl's auth location)
        parser = _H11Reader(True, opts.proxy_buffer_size)
        parser.method = auth.method or b"GET"

        response = await _within(read_answer(parser, reader.read, max_head), opts.read_timeout)
    except (OSError, asyncio.TimeoutError, h11.RemoteProtocolError, ValueError) as e:
        _log.info("auth-url %s: no valid answer (%s): 500", auth.url, _why(e))
        return FAILED
    finally:
        writer.close()
    if isinstance(response, str):
        _log.info("auth-url %s: %s: 500", auth.url, response)
        return FAILED
    v = verdict(auth, response)
    if keep is not None and v is not FAILED:
        keep(response, v)
    return v


def _client_items(headers: Iterable[Any]) -> list[tuple[bytes, bytes, bytes]]:
    """The scope's headers as h11's ``(raw name, name, value)``: the subrequest passes the
    client's on. One a server would never give (a name that is no token, a value with a
    control character) is left out: nothing but a header line goes into the head."""
    items = []
    for name, value in headers:
        raw = name.encode("latin-1") if isinstance(name, str) else bytes(name)
        v = value.encode("latin-1") if isinstance(value, str) else bytes(value)
        if raw and not raw.translate(None, _NAME_CHARS) and not has_control(v):
            items.append((raw, raw.lower(), v.strip(b" \t")))
    return items


def request_id_of(asgi: Any, scope: MutableMapping[str, Any]) -> bytes | None:
    """The request's id (``$req_id``) for its auth subrequest and its app alike, chosen once
    (IngressASGI's ``_add_forwarded`` / ``_backend_headers`` take it as chosen): the client's
    X-Request-ID when it may pass (``client_request_id``, the proxy's rule), else a generated
    one with ``generate_request_id`` (``asgi.request_id``; a raising callable: as
    ``_add_forwarded``, the fallback generator), else None. nginx's auth_request subrequest
    shares the main request's variables, so its ``proxy_set_header X-Request-ID $req_id`` is
    the backend's id (proxy/_extauth.py)."""
    rid = client_request_id(
        (name, value) for _, name, value in _client_items(scope.get("headers") or ()))
    if rid is None and asgi.settings.generate_request_id:
        try:
            rid = asgi.request_id().encode("ascii")
        except Exception:
            rid = asgi._request_id_failed().encode("ascii")
    return rid


def _joined(items: list[tuple[bytes, bytes, bytes]], name: bytes) -> bytes:
    return b", ".join(v for _, n, v in items if n == name)


def _cookie_send(send: Send, cookies: tuple[bytes, ...], always: bool) -> Send:
    """``send`` adding ``cookies`` (``add_header Set-Cookie $auth_cookie [always]``) to each
    answer head whose status takes them."""
    async def with_cookies(message: Message) -> None:
        if message["type"] in _HEADS and adds_cookies(int(message["status"]), always):
            message = dict(message)
            message["headers"] = [*(message.get("headers") or ()),
                                  *((b"set-cookie", c) for c in cookies)]
        await send(message)
    return with_cookies


async def authenticate(asgi: Any, opts: RouteOptions, scope: MutableMapping[str, Any],
                       reply: Any, peer: str | None, client_ip: str | None, host: str,
                       host_n: str, request_uri: str,
                       prior: tuple[int, bytes | None] | None = None, match: Any = None,
                       request_id: bytes | None = None
                       ) -> tuple[tuple[bytes, bytes], ...] | None:
    """Ask ``opts.ext_auth``'s service about the request of ``scope`` (``IngressASGI``'s
    ``asgi``; ``reply`` its ``_Reply``): the auth-response-headers for the app (a 2xx), or
    None once the refusal is answered. ``host`` is the Host as received (or the absolute-form
    authority), ``host_n`` nginx's ``$host``, ``request_uri`` nginx's ``$request_uri``;
    ``prior``: with ``satisfy: any``, the earlier checks' refusal (proxy/_satisfy.py
    ``combine``); ``match``: the rule reached (its server name and location key the auth
    cache, proxy/_authcache.py; None: not cached); ``request_id``: the request's id
    (``request_id_of``), the subrequest's X-Request-ID (None: none)."""
    auth = opts.ext_auth
    assert auth is not None
    settings = asgi.settings
    items = _client_items(scope.get("headers") or ())
    pairs: tuple[tuple[bytes, bytes], ...] = ()
    if auth.proxy_set_headers is not None:
        sh = set_headers_for(auth.proxy_set_headers)
        cms = config_maps_of(asgi.router)
        pairs = sh.headers(cms)
        if not pairs and sh.resolve(cms)[1] is not None:
            # authreq/main.go: "unable to find configMap": the location is denied.
            await reply.local(503)
            return None
    key: bytes | None = None
    keep: Callable[[h11.Response, Verdict], None] | None = None
    hit: Verdict | None = None
    if auth.cache is not None and match is not None:
        # auth-cache-key: a cached answer decides without a subrequest (proxy/_authcache.py).
        path, _, query = request_uri.partition("?")
        key = request_key(auth, match, str(scope.get("method") or "GET"), host, path,
                          query if "?" in request_uri else None, scope.get("headers") or (),
                          client_ip)
        if key is not None:
            cache = cache_of(asgi)
            clock = asgi.limit_clock  # (IngressASGI's injectable clock, as its rate limits)
            hit = cache.get(key, clock())
            cache_cfg = auth.cache

            def remember(response: h11.Response, v: Verdict) -> None:
                """The answer kept for as long as nginx's proxy_cache would."""
                seconds = lifetime(cache_cfg.valid, response.status_code,
                                   response.headers._full_items)
                if seconds > 0 and key is not None:
                    cache.put(key, v, seconds, clock())
            keep = remember
    scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
    pass_scheme = scheme
    # The forwarded headers are believed as for the app's scope (``_backend_headers``) and
    # the core's subrequest: use-forwarded-headers and the peer inside proxy-real-ip-cidr.
    trusted = bool(settings.use_forwarded_headers and asgi._trust.trusted(peer))
    if trusted:
        proto = [v for _, n, v in items if n == b"x-forwarded-proto"]
        pass_scheme = redirect_scheme(scheme, b", ".join(proto) if proto else None)
    http_host = _joined(items, b"host").decode("latin-1")
    if hit is None:
        ff = forwarded_for_value(settings, _joined(items, b"x-forwarded-for"),
                                 (peer or "").encode("ascii"),
                                 (client_ip or "").encode("ascii"))
        method = str(scope.get("method") or "GET").encode("latin-1")
        head = subrequest_head(auth, items, method=method, request_uri=request_uri,
                               scheme=scheme, pass_scheme=pass_scheme, http_host=http_host,
                               client_ip=client_ip, forwarded_for=ff, set_pairs=pairs,
                               settings=settings, trusted=trusted,
                               keepalive=auth.keepalive is not None, request_id=request_id)
        hit = await ask_auth_service(auth, head, opts, settings.max_response_header_size,
                                     keep)
    v = combine(prior, hit)
    if v.status == 0:
        if v.cookies:
            reply.server_send = _cookie_send(reply.server_send, v.cookies,
                                             auth.always_set_cookie)
        return v.headers
    status, extra, always = denial(auth, v, lambda: signin_variables(
        host_n, http_host, scheme, pass_scheme, request_uri))
    if v.cookies:
        reply.server_send = _cookie_send(reply.server_send, v.cookies, always)
    await reply.local(status, extra or None)
    return None


def with_auth_headers(headers: Iterable[Any], pairs: tuple[tuple[bytes, bytes], ...]
                      ) -> list[tuple[Any, Any]]:
    """The app's scope headers with the auth-response-headers set (proxy/_extauth.py
    ``with_auth_headers`` for an ASGI list): a framing or hop-by-hop name never set from the
    auth answer, the client's headers of the others dropped in any spelling (``X_User`` for
    ``X-User``: a WSGI app reads both as HTTP_X_USER), the auth answer's non-empty values
    added, names lower-cased (www.rst)."""
    pairs = tuple(p for p in pairs if _alias(p[0].lower()) not in _NOT_FROM_AUTH)
    if not pairs:
        return list(headers)
    names = {_alias(n.lower()) for n, _ in pairs}
    out = [(k, v) for k, v in headers
           if _alias((k.encode("latin-1") if isinstance(k, str) else bytes(k)).lower())
           not in names]
    out += [(n.lower(), v) for n, v in pairs if v]
    return out
