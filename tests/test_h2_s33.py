"""The auth subrequest's X-Request-ID is the request's id (session 33, h2).

ingress-nginx's auth location (nginx.tmpl ``location = /_external-auth-...``) says
``proxy_set_header X-Request-ID $req_id;`` (``map $http_x_request_id $req_id { default
$http_x_request_id; "" $request_id; }`` with generate-request-id). An ``auth_request``
subrequest shares the main request's variables (nginx ngx_http_subrequest: "sr->variables =
r->variables"), and ``$request_id`` is cacheable (ngx_http_variables.c: no
NGX_HTTP_VAR_NOCACHEABLE), so the auth service, the backend and the access log all see one id;
the client's own X-Request-ID lines are replaced by that one line. Before: ingresslib passed the
client's X-Request-ID lines as received (several, an invalid one too) and none when the client
sent none, so an auth service's logs could not be joined to the backend's.

Each request here gets ids from a counter, so an id generated twice would show.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

import h11

from ingresslib import IngressASGI, Router, parse_manifests
from ingresslib.proxy import ProxySettings

from _proxy_harness import FakeUpstream, ProxyPair, Reply, Route, ingress_yaml, ok, status_of

P = "nginx.ingress.kubernetes.io/"
AUTH = ("10.5.0.1", 4180)
WEB = ("10.0.0.1", 8080)
URL = "http://10.5.0.1:4180/oauth2/auth"
ALLOW = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
ID1 = b"%032x" % 1
ID2 = b"%032x" % 2


def _counter() -> Callable[[], str]:
    n = itertools.count(1)
    return lambda: "%032x" % next(n)


def _pair(annotations: dict[str, str] | None = None, auth_reply: bytes = ALLOW,
          settings: ProxySettings | None = None) -> ProxyPair:
    def app(request: h11.Request, data: bytes, up: FakeUpstream) -> Reply | None:
        if up.endpoint == AUTH:
            return Reply(auth_reply)
        return ok(b"backend")
    p = ProxyPair([Route(annotations={P + "auth-url": URL, **(annotations or {})},
                         endpoints=[WEB])], settings, app=app, request_id=_counter())
    p.proxy.records = True
    return p


def _ids(up: FakeUpstream, i: int = 0) -> list[bytes]:
    return [v for n, v in up.requests[i][0].headers if n == b"x-request-id"]


def _auth(p: ProxyPair) -> list[FakeUpstream]:
    return [u for u in p.upstreams if u.endpoint == AUTH and u.requests]


def _web(p: ProxyPair) -> list[FakeUpstream]:
    return [u for u in p.upstreams if u.endpoint == WEB]


def _get(extra: bytes = b"", path: bytes = b"/") -> bytes:
    return b"GET %s HTTP/1.1\r\nHost: app.test\r\n%s\r\n" % (path, extra)


# ------------------------------------------------------------------ the proxy core
def test_core_generated_id_is_the_subrequests_the_backends_and_the_logs() -> None:
    p = _pair()
    assert status_of(p.send(_get())) == 200
    [auth], [web] = _auth(p), _web(p)
    assert _ids(auth) == [ID1] and _ids(web) == [ID1]
    assert [r.request_id for r in p.records] == [ID1.decode()]
    # The next request on the connection gets the next id, in both places.
    assert status_of(p.send(_get())) == 200
    auth2 = _auth(p)[-1]
    assert _ids(auth2, len(auth2.requests) - 1) == [ID2] and _ids(_web(p)[-1], -1) == [ID2]


def test_core_client_id_replaces_the_client_lines() -> None:
    # A valid one passes once (the client's line is replaced by proxy_set_header's).
    p = _pair()
    p.send(_get(b"X-Request-ID: abc-123\r\nX-Request-ID: second\r\n"))
    assert _ids(_auth(p)[0]) == [b"abc-123"] and _ids(_web(p)[0]) == [b"abc-123"]
    # One that may not pass (README: 1-200 of a token's characters) is replaced by a
    # generated id, the same the backend gets -- never the client's raw value.
    p = _pair()
    p.send(_get(b"X-Request-ID: has space\r\n"))
    assert _ids(_auth(p)[0]) == [ID1] and _ids(_web(p)[0]) == [ID1]
    # Named in Connection (hop-by-hop): not the request's id.
    p = _pair()
    p.send(_get(b"Connection: x-request-id\r\nX-Request-ID: abc-123\r\n"))
    assert _ids(_auth(p)[0]) == [ID1] and _ids(_web(p)[0]) == [ID1]


def test_core_without_generate_request_id() -> None:
    # $req_id is empty: proxy_set_header sends no header, and the client's is not passed.
    for extra, want in ((b"", []), (b"X-Request-ID: has space\r\n", []),
                        (b"X-Request-ID: abc-123\r\n", [b"abc-123"])):
        p = _pair(settings=ProxySettings(generate_request_id=False))
        assert status_of(p.send(_get(extra))) == 200
        assert _ids(_auth(p)[0]) == want and _ids(_web(p)[0]) == want, extra
        assert [r.request_id for r in p.records] == [want[0].decode() if want else None]


def test_core_refused_request_logs_the_subrequests_id() -> None:
    p = _pair(auth_reply=b"HTTP/1.1 401 No\r\nContent-Length: 0\r\n\r\n")
    assert status_of(p.send(_get())) == 401
    assert _ids(_auth(p)[0]) == [ID1] and not _web(p)
    assert [r.request_id for r in p.records] == [ID1.decode()]


def test_core_keepalive_retry_and_share_vars_keep_the_id() -> None:
    # auth-keepalive: a pooled connection the service had closed carries the subrequest once
    # more (proxy/_extauth.py _retry): the same id again. auth-keepalive-share-vars (the Lua
    # subrequest sharing the main request's variables) sends the same id as without it.
    for share in ("false", "true"):
        p = _pair({P + "auth-keepalive": "4", P + "auth-keepalive-share-vars": share})
        assert status_of(p.send(_get())) == 200
        [pooled] = p.pool[AUTH]
        pooled.closed = True
        assert status_of(p.send(_get())) == 200
        fresh = _auth(p)[-1]
        assert fresh is not pooled and _ids(fresh) == [ID2]
        assert _ids(_web(p)[-1], -1) == [ID2]
        assert [r.request_id for r in p.records] == [ID1.decode(), ID2.decode()]


def test_core_cache_hit_sends_nothing_and_keeps_one_id() -> None:
    p = _pair({P + "auth-cache-key": "$remote_addr", P + "auth-cache-duration": "200 1m"})
    for _ in range(2):
        assert status_of(p.send(_get())) == 200
    [auth] = _auth(p)
    assert len(auth.requests) == 1 and _ids(auth) == [ID1]
    assert [_ids(w, -1) for w in _web(p)][-1] == [ID2]
    assert [r.request_id for r in p.records] == [ID1.decode(), ID2.decode()]


# ------------------------------------------------------------------ IngressASGI
SERVICE = """
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints: [{addresses: [10.0.0.1], conditions: {ready: true}}]
"""


async def _asgi_call(head: list[tuple[bytes, bytes]], reply: bytes = ALLOW,
                     rule_path: str = "/", **options: Any
                     ) -> tuple[list[bytes], list[bytes] | None, int]:
    """One request (GET /a) through IngressASGI with an auth service on 127.0.0.1: (the
    X-Request-ID lines the auth service got, the app's x-request-id values (None: not
    called), status). With a ``rule_path`` that does not cover /a the app is the
    ``fallback``, behind the host's server location's auth-url."""
    heads: list[bytes] = []

    async def service(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            heads.append(await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5))
            w.write(reply)
            await w.drain()
        finally:
            w.close()

    server = await asyncio.start_server(service, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    seen: list[list[bytes]] = []
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append([bytes(v) for n, v in scope["headers"] if bytes(n).lower() == b"x-request-id"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(m: Any) -> None:
        sent.append(dict(m))

    text = ingress_yaml("site", "app.test", {P + "auth-url": f"http://127.0.0.1:{port}/auth"},
                        path=rule_path)
    fallback = rule_path != "/"
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "scheme": "http", "method": "GET", "path": "/a", "raw_path": b"/a",
             "query_string": b"", "root_path": "", "headers": [(b"host", b"app.test"), *head],
             "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 80)}
    try:
        asgi = IngressASGI(Router(parse_manifests(text + SERVICE)),
                           {} if fallback else {"default/web": app},
                           fallback=app if fallback else None, request_id=_counter(),
                           **options)
        await asyncio.wait_for(asgi(scope, receive, send), 5)
    finally:
        server.close()
    ids: list[bytes] = []
    for h in heads:
        for line in h.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"x-request-id":
                ids.append(value.strip())
    return ids, seen[0] if seen else None, int(sent[0]["status"])


def test_asgi_subrequest_and_app_get_one_id() -> None:
    assert asyncio.run(_asgi_call([])) == ([ID1], [ID1], 200)
    assert asyncio.run(_asgi_call([(b"x-request-id", b"abc-123"),
                                   (b"x-request-id", b"second")])) == \
        ([b"abc-123"], [b"abc-123"], 200)
    assert asyncio.run(_asgi_call([(b"x-request-id", b"has space")])) == ([ID1], [ID1], 200)
    # A Connection header naming X-Request-ID: the general path (``_backend_headers``).
    assert asyncio.run(_asgi_call([(b"connection", b"x-request-id"),
                                   (b"x-request-id", b"abc-123")])) == ([ID1], [ID1], 200)
    # The ``fallback`` app behind the host's auth service (_asgi_fallback_auth.py).
    assert asyncio.run(_asgi_call([], rule_path="/api")) == ([ID1], [ID1], 200)
    assert asyncio.run(_asgi_call([(b"x-request-id", b"has space")], rule_path="/api")) == \
        ([ID1], [ID1], 200)
    # Refused: the auth service still got the request's id.
    ids, app, status = asyncio.run(_asgi_call(
        [], reply=b"HTTP/1.1 403 No\r\nContent-Length: 0\r\n\r\n"))
    assert (ids, app, status) == ([ID1], None, 403)


def test_asgi_without_generate_request_id_or_header_rewriting() -> None:
    off = ProxySettings(generate_request_id=False)
    assert asyncio.run(_asgi_call([], settings=off)) == ([], [], 200)
    assert asyncio.run(_asgi_call([(b"x-request-id", b"has space")], settings=off)) == \
        ([], [], 200)
    # rewrite_headers=False: the app gets the server's headers as they came; the auth service
    # still gets $req_id (nginx.tmpl's auth location sets it whatever the backend gets).
    assert asyncio.run(_asgi_call([], rewrite_headers=False)) == ([ID1], [], 200)
    assert asyncio.run(_asgi_call([(b"x-request-id", b"has space")],
                                  rewrite_headers=False)) == ([ID1], [b"has space"], 200)
