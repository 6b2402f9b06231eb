"""``auth-cache-key`` / ``auth-cache-duration`` (session 27): the auth service's answers
cached as ingress-nginx's external-auth location does (authreq/main.go
``ParseStringToCacheDurations``, nginx.tmpl's ``proxy_cache auth_cache`` with
``proxy_cache_valid`` per duration item and ``$cache_key`` = sha1(server name + auth location
+ key), nginx's ``proxy_cache_valid`` rules), through the sans-IO core (``Proxy.connection``)
and IngressASGI (a real auth service on 127.0.0.1, port 0).

Before: both annotations were warned "not implemented" and every request asked the auth
service."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import h11
from hypothesis import given, settings
from hypothesis import strategies as st

from ingresslib import IngressASGI, Router, parse_manifests
from ingresslib.proxy import ProxySettings
from ingresslib.proxy._annotations import IMPLEMENTED, parse_route_options

from _budget import examples
from _proxy_harness import PEER, FakeUpstream, ProxyPair, Reply, Route, ingress_yaml, ok, \
    status_of

P = "nginx.ingress.kubernetes.io/"
AUTH = ("10.5.0.1", 4180)
WEB = ("10.0.0.1", 8080)
URL = "http://10.5.0.1:4180/oauth2/auth"
ALLOW = b"HTTP/1.1 200 OK\r\nX-User: %s\r\nContent-Length: 0\r\n\r\n"
DENY = b"HTTP/1.1 401 No\r\nWWW-Authenticate: Bearer\r\nContent-Length: 0\r\n\r\n"


def _app(extra: bytes = b"") -> Any:
    """An auth service letting in ``Authorization: Bearer <user>`` for users starting with
    "good" (X-User: the user), 401 otherwise; the backend echoes its X-User."""
    def app(request: h11.Request, data: bytes, up: FakeUpstream) -> Reply | None:
        h = {n: v for n, v in request.headers}
        if up.endpoint == AUTH:
            token = h.get(b"authorization", b"").partition(b" ")[2]
            if token.startswith(b"good"):
                return Reply((ALLOW % token).replace(b"Content-Length", extra + b"Content-Length"))
            return Reply(DENY)
        return ok(b"user=" + h.get(b"x-user", b"-"))
    return app


def _pair(annotations: dict[str, str] | None = None, extra: bytes = b"",
          routes: list[Route] | None = None) -> ProxyPair:
    ann = {P + "auth-url": URL, P + "auth-response-headers": "X-User",
           P + "auth-cache-key": "$http_authorization"}
    ann.update(annotations or {})
    rs = routes or [Route(annotations=ann, endpoints=[WEB])]
    for r in rs:
        if not r.annotations:
            r.annotations = ann
    return ProxyPair(rs, app=_app(extra))


def _asked(p: ProxyPair) -> int:
    return len([u for u in p.upstreams if u.endpoint == AUTH])


def _get(p: ProxyPair, token: bytes | None, path: bytes = b"/a") -> bytes:
    """A request on a new client connection of the same Proxy (its cache is the Proxy's)."""
    p.conn = p.proxy.connection(PEER, now=p.now)
    p.closed = False
    p._run(p.conn.start(p.now))
    auth = b"Authorization: Bearer %s\r\n" % token if token is not None else b""
    return p.send(b"GET %s HTTP/1.1\r\nHost: app.test\r\n%sConnection: close\r\n\r\n"
                  % (path, auth))


def _opts(annotations: dict[str, str]) -> Any:
    return parse_route_options(annotations, "/", ProxySettings(), where="Ingress default/site")


# ------------------------------------------------------------------ annotations
def test_cache_annotations_are_implemented_and_parsed() -> None:
    assert "auth-cache-key" in IMPLEMENTED and "auth-cache-duration" in IMPLEMENTED
    opts = _opts({P + "auth-url": URL, P + "auth-cache-key": "$cookie_session",
                  P + "auth-cache-duration": "200 202 10m, 401 1m"})
    assert opts.warnings == () and opts.access is None
    cache = opts.ext_auth.cache
    assert cache.key == "$cookie_session"
    assert cache.valid == ((200, 600.0), (202, 600.0), (401, 60.0))
    # No auth-cache-duration: authreq/main.go DefaultCacheDuration "200 202 401 5m".
    default = _opts({P + "auth-url": URL, P + "auth-cache-key": "$remote_user"}).ext_auth
    assert default.cache.valid == ((200, 300.0), (202, 300.0), (401, 300.0))
    # No key: no cache (nginx.tmpl's "if $externalAuth.AuthCacheKey"); the duration warned.
    opts = _opts({P + "auth-url": URL, P + "auth-cache-duration": "200 1m"})
    assert opts.ext_auth.cache is None and opts.access is None
    assert any("without" in w and "auth-cache-key" in w for w in opts.warnings)


def test_durations_as_nginx_proxy_cache_valid_reads_them() -> None:
    from ingresslib.proxy._authcache import parse_durations

    # No code: 200 301 302; "any" in its place; the first line naming the status wins.
    assert parse_durations("5m")[1] == ((200, 300.0), (301, 300.0), (302, 300.0))
    assert parse_durations("401 30s, any 1h")[1] == ((401, 30.0), (0, 3600.0))
    assert parse_durations("200 2d,200 1w")[1] == ((200, 172800.0), (200, 604800.0))
    assert parse_durations("200 1M, 202 1y")[1] == ((200, 2592000.0), (202, 31536000.0))
    assert parse_durations(" , ")[0] == ("200 202 401 5m",)


def test_invalid_duration_denies_the_location() -> None:
    # ValidCacheDuration refuses: no time, a code after the time; nginx refuses the line
    # ingress-nginx writes: "ms" (proxy_cache_valid is in seconds), two times, a non-status.
    for bad in ("200", "5m 200", "200 ten", "200 500ms", "200 1h 30m", "abc 5m",
                "600 5m", "200 5m, 401"):
        opts = _opts({P + "auth-url": URL, P + "auth-cache-key": "$http_authorization",
                      P + "auth-cache-duration": bad})
        assert opts.ext_auth is None, bad
        assert opts.access is not None and opts.access.denied is not None, bad
        assert any("auth-cache-duration" in w and "503" in w for w in opts.warnings), bad


def test_key_without_variable_or_with_an_unknown_one_is_not_cached() -> None:
    for key in ("static", " ", "$ssl_client_s_dn", "$cookie_s$nope"):
        opts = _opts({P + "auth-url": URL, P + "auth-cache-key": key})
        assert opts.access is None and opts.ext_auth is not None, key
        assert opts.ext_auth.cache is None, key
        assert any("auth-cache-key" in w and "not cached" in w for w in opts.warnings), key


# ------------------------------------------------------------------ the sans-IO core
def test_hit_sends_no_subrequest_and_keeps_the_auth_headers() -> None:
    p = _pair()
    out1 = _get(p, b"good-alice")
    out2 = _get(p, b"good-alice")
    assert status_of(out1) == status_of(out2) == 200
    assert out1.endswith(b"user=good-alice") and out2.endswith(b"user=good-alice")
    assert _asked(p) == 1
    # An auth connection only for the miss: the hit opened nothing.
    assert [o.endpoint for o in p.opens].count(AUTH) == 1


def test_another_key_is_never_served_the_cached_answer() -> None:
    p = _pair()
    assert _get(p, b"good-alice").endswith(b"user=good-alice")
    out = _get(p, b"mallory")
    assert status_of(out) == 401 and _asked(p) == 2
    assert _get(p, b"good-bob").endswith(b"user=good-bob") and _asked(p) == 3
    # The 401 is cached too (default durations), alice's 200 still is.
    assert status_of(_get(p, b"mallory")) == 401
    assert _get(p, b"good-alice").endswith(b"user=good-alice")
    assert _asked(p) == 3


def test_key_expanding_to_empty_is_not_cached() -> None:
    # nginx would cache it under server name + location alone (one answer for every client
    # without the header); ingresslib asks each time.
    p = _pair()
    assert status_of(_get(p, None)) == 401
    assert status_of(_get(p, None)) == 401
    assert _asked(p) == 2
    # A literal part does not make a key of empty variables cacheable.
    p = _pair({P + "auth-cache-key": "user:$http_authorization$cookie_s"})
    _get(p, None)
    _get(p, None)
    assert _asked(p) == 2


def test_entries_expire_by_the_duration_of_their_status() -> None:
    p = _pair({P + "auth-cache-duration": "200 10s, 401 1s"})
    _get(p, b"good-alice")
    _get(p, b"nobody")
    p.now += 5
    _get(p, b"good-alice")
    _get(p, b"nobody")
    assert _asked(p) == 3  # the 401 expired after 1 s, the 200 is valid for 10 s
    p.now += 6
    _get(p, b"good-alice")
    assert _asked(p) == 4


def test_statuses_without_a_duration_are_not_cached() -> None:
    p = _pair({P + "auth-cache-duration": "200 1m"})
    _get(p, b"nobody")
    _get(p, b"nobody")
    assert _asked(p) == 2


def test_answers_nginx_does_not_cache() -> None:
    # Set-Cookie (ngx_http_upstream_process_set_cookie), Cache-Control no-store / private /
    # max-age=0, X-Accel-Expires: 0, Vary.
    for extra in (b"Set-Cookie: s=1\r\n", b"Cache-Control: no-store\r\n",
                  b"Cache-Control: Private\r\n", b"Cache-Control: max-age=0\r\n",
                  b"X-Accel-Expires: 0\r\n", b"Vary: Cookie\r\n"):
        p = _pair(extra=extra)
        _get(p, b"good-alice")
        _get(p, b"good-alice")
        assert _asked(p) == 2, extra


def test_answer_headers_set_the_time_before_proxy_cache_valid() -> None:
    p = _pair(extra=b"Cache-Control: max-age=2\r\n")
    _get(p, b"good-alice")
    p.now += 1
    _get(p, b"good-alice")
    assert _asked(p) == 1
    p.now += 2
    _get(p, b"good-alice")
    assert _asked(p) == 2


def test_each_location_has_its_own_entries() -> None:
    # nginx.tmpl: $tmp_cache_key holds the auth location (one per Ingress path).
    p = _pair(routes=[Route(path="/a", endpoints=[WEB]), Route(path="/b", endpoints=[WEB])])
    _get(p, b"good-alice", b"/a")
    _get(p, b"good-alice", b"/b")
    _get(p, b"good-alice", b"/a")
    assert _asked(p) == 2


def test_satisfy_any_refusal_with_a_cached_deny() -> None:
    p = _pair({P + "satisfy": "any", P + "whitelist-source-range": "192.0.2.0/24"})
    assert status_of(_get(p, b"nobody")) in (401, 403)
    assert status_of(_get(p, b"nobody")) in (401, 403)
    assert _asked(p) == 1


def test_remote_user_variable() -> None:
    from ingresslib.proxy._authcache import remote_user

    basic = b"Basic " + base64.b64encode(b"alice:pw")
    assert remote_user([(b"authorization", basic)]) == "alice"
    assert remote_user([(b"authorization", b"Basic " + base64.b64encode(b"nocolon"))]) == ""
    assert remote_user([(b"authorization", b"Basic !!!")]) == ""
    assert remote_user([(b"authorization", b"Bearer x")]) == ""
    assert remote_user([]) == ""


# ------------------------------------------------------------------ pure pieces
def test_lifetime_rules() -> None:
    from ingresslib.proxy._authcache import lifetime

    valid = ((401, 30.0), (0, 60.0))
    assert lifetime(valid, 401, []) == 30.0
    assert lifetime(valid, 500, []) == 60.0  # any
    assert lifetime(((200, 60.0),), 403, []) == 0.0
    assert lifetime(valid, 200, [(b"X-Accel-Expires", b"x-accel-expires", b"5")]) == 5.0
    assert lifetime(valid, 200, [(b"", b"x-accel-expires", b"@100")], wall=40.0) == 60.0
    assert lifetime(valid, 200, [(b"", b"cache-control", b"public, s-maxage=7, max-age=3")]) \
        == 7.0
    assert lifetime(valid, 200, [(b"", b"cache-control", b"max-age=1x")]) == 0.0
    assert lifetime(valid, 200, [(b"", b"expires", b"Thu, 01 Jan 1970 00:01:40 GMT")],
                    wall=90.0) == 10.0
    assert lifetime(valid, 200, [(b"", b"expires", b"garbage")]) == 0.0


def test_cache_bound_and_inactive() -> None:
    from ingresslib.proxy._authcache import MAX_ENTRIES, AuthCache

    c = AuthCache(max_entries=3)
    for i in range(5):
        c.put(b"k%d" % i, i, 100.0, 0.0)
    assert len(c.entries) == 3 and c.get(b"k0", 1.0) is None and c.get(b"k4", 1.0) == 4
    assert c.get(b"k2", 1.0) == 2  # used: the least recently used goes first now
    c.put(b"k5", 5, 100.0, 1.0)
    assert c.get(b"k3", 1.0) is None and c.get(b"k2", 1.0) == 2
    assert c.get(b"k2", 1.0 + 1801.0) is None  # inactive=30m
    assert MAX_ENTRIES == 10_000


@settings(max_examples=examples(0.2), deadline=None)
@given(st.lists(st.sampled_from(["good-a", "good-b", "bad", None]), min_size=1, max_size=6))
def test_every_answer_is_the_one_for_its_own_key(tokens: list[str | None]) -> None:
    p = _pair()
    for t in tokens:
        out = _get(p, None if t is None else t.encode())
        if t is not None and t.startswith("good"):
            assert status_of(out) == 200 and out.endswith(b"user=" + t.encode())
        else:
            assert status_of(out) == 401
    assert _asked(p) == len({t for t in tokens if t is not None}) + tokens.count(None)


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


async def _asgi_run(tokens: list[bytes | None], annotations: dict[str, str] | None = None
                    ) -> tuple[list[tuple[int, bytes]], int]:
    heads: list[bytes] = []

    async def service(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            head = await r.readuntil(b"\r\n\r\n")
            heads.append(head)
            token = b""
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"authorization:"):
                    token = line.split(b" ")[-1]
            w.write(ALLOW % token if token.startswith(b"good") else DENY)
            await w.drain()
        except Exception:
            pass
        finally:
            w.close()

    server = await asyncio.start_server(service, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    ann = {P + "auth-url": f"http://127.0.0.1:{port}/check",
           P + "auth-response-headers": "X-User", P + "auth-cache-key": "$http_authorization",
           **(annotations or {})}
    results: list[tuple[int, bytes]] = []

    async def backend(scope: Any, receive: Any, send: Any) -> None:
        user = dict((bytes(n), bytes(v)) for n, v in scope["headers"]).get(b"x-user", b"-")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": user})

    app = IngressASGI(Router(parse_manifests(ingress_yaml("site", "app.test", ann) + SERVICE)),
                      {"default/web": backend}, request_id=lambda: "0" * 32)
    try:
        for token in tokens:
            sent: list[dict[str, Any]] = []

            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": b"", "more_body": False}

            async def send(m: Any) -> None:
                sent.append(dict(m))
            head = [(b"host", b"app.test")]
            if token is not None:
                head.append((b"authorization", b"Bearer " + token))
            scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                     "scheme": "http", "method": "GET", "path": "/a", "raw_path": b"/a",
                     "query_string": b"", "root_path": "", "headers": head,
                     "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 80),
                     "extensions": {}}
            await app(scope, receive, send)
            body = b"".join(m.get("body", b"") for m in sent
                            if m["type"] == "http.response.body")
            results.append((int(sent[0]["status"]), body))
    finally:
        server.close()
    return results, len(heads)


def test_asgi_hit_sends_no_subrequest() -> None:
    results, asked = asyncio.run(_asgi_run([b"good-alice", b"good-alice", b"good-alice"]))
    assert results == [(200, b"good-alice")] * 3 and asked == 1


def test_asgi_other_key_and_empty_key_are_asked() -> None:
    results, asked = asyncio.run(_asgi_run([b"good-alice", b"mallory", None, None,
                                            b"good-alice", b"mallory"]))
    assert [s for s, _ in results] == [200, 401, 401, 401, 200, 401]
    assert results[4] == (200, b"good-alice")
    assert asked == 4  # alice, mallory, and each request without the header


def test_asgi_status_without_a_duration_is_asked_again() -> None:
    results, asked = asyncio.run(_asgi_run([b"bad", b"bad"],
                                           {P + "auth-cache-duration": "200 1m"}))
    assert [s for s, _ in results] == [401, 401] and asked == 2


# ------------------------------------------------------------------ global-auth-cache-*
def _global_settings(**kw: Any) -> ProxySettings:
    """ProxySettings with the ConfigMap's global-auth-cache-key / -duration fields (a
    subclass while ProxySettings lacks them: proxy/_globalauth.py reads them by name)."""
    import dataclasses

    names = ProxySettings.field_names()
    if "global_auth_cache_key" in names:
        return ProxySettings(**kw)

    @dataclasses.dataclass(frozen=True, slots=True)
    class WithCache(ProxySettings):
        global_auth_cache_key: str = ""
        global_auth_cache_duration: str = ""

    return WithCache(**kw)


def _global_pair(**kw: Any) -> ProxyPair:
    s = _global_settings(global_auth_url=URL, global_auth_response_headers=("X-User",), **kw)
    return ProxyPair([Route(endpoints=[WEB])], s, app=_app())


def test_global_auth_cache() -> None:
    p = _global_pair(global_auth_cache_key="$http_authorization",
                     global_auth_cache_duration="200 1m")
    assert _get(p, b"good-alice").endswith(b"user=good-alice")
    assert _get(p, b"good-alice").endswith(b"user=good-alice")
    assert status_of(_get(p, b"nobody")) == 401
    assert status_of(_get(p, b"nobody")) == 401
    assert _asked(p) == 3  # 401 has no duration here


def test_global_auth_cache_without_duration_caches_by_answer_headers_only() -> None:
    # config.go NewDefault: the global AuthCacheDuration is []string{} (no proxy_cache_valid).
    p = _global_pair(global_auth_cache_key="$http_authorization")
    _get(p, b"good-alice")
    _get(p, b"good-alice")
    assert _asked(p) == 2
    from ingresslib.proxy._globalauth import global_ext_auth

    auth = global_ext_auth(_global_settings(global_auth_url=URL,
                                            global_auth_cache_key="$cookie_s"))
    assert auth is not None and auth.cache is not None and auth.cache.valid == ()


def test_global_auth_cache_invalid_values_are_errors() -> None:
    import pytest

    for kw in ({"global_auth_cache_key": "static"},
               {"global_auth_cache_key": "$cookie_s", "global_auth_cache_duration": "5m 200"}):
        with pytest.raises(ValueError, match="global_auth_cache"):
            _global_settings(global_auth_url=URL, **kw)


# ------------------------------------------------------------------ explain, a real Router
def _site(annotations: dict[str, str]) -> str:
    return ingress_yaml("site", "app.test", annotations) + SERVICE


def test_explain_shows_the_cache(capsys: Any, tmp_path: Any) -> None:
    import ingresslib
    from ingresslib._cli import main as cli_main

    ann = {P + "auth-url": URL, P + "auth-cache-key": "$cookie_session",
           P + "auth-cache-duration": "200 10m"}
    doc = ingresslib.explain(parse_manifests(_site(ann)), "http://app.test/x")
    assert doc["ext_auth"]["cache"] == {"key": "$cookie_session", "durations": ["200 10m"]}
    plain = ingresslib.explain(parse_manifests(_site({P + "auth-url": URL})),
                               "http://app.test/x")
    assert "cache" not in plain["ext_auth"]
    f = tmp_path / "m.yaml"
    f.write_text(_site(ann))
    assert cli_main(["explain", "-f", str(f), "http://app.test/x"]) == 0
    assert "auth-cache-key $cookie_session: answers cached (200 10m)" in capsys.readouterr().out


def test_core_over_a_router_caches_per_cookie() -> None:
    from ingresslib.proxy import OpenUpstream, Proxy, SendDownstream, SendUpstream

    ann = {P + "auth-url": URL, P + "auth-cache-key": "$cookie_session"}
    proxy = Proxy(Router(parse_manifests(_site(ann)), seed=0))
    opened = []

    def get(cookie: bytes) -> list[Any]:
        conn = proxy.connection("10.1.1.1", now=0.0)
        acts = list(conn.receive_data(b"GET /x HTTP/1.1\r\nHost: app.test\r\nCookie: session="
                                      + cookie + b"\r\n\r\n", now=0.0))
        first = next(a for a in acts if isinstance(a, OpenUpstream))
        opened.append(first.endpoint)
        if first.endpoint == AUTH:
            sent = b"".join(a.data for a in conn.upstream_connected(first.conn_id, now=0.0)
                            if isinstance(a, SendUpstream))
            assert b"Cookie: session=" + cookie in sent
            acts = list(conn.upstream_data(first.conn_id, b"HTTP/1.1 200 OK\r\n"
                                           b"Content-Length: 0\r\n\r\n", now=0.0))
        assert not any(isinstance(a, SendDownstream) for a in acts)
        return acts

    get(b"a")
    get(b"a")
    get(b"b")
    assert opened == [AUTH, WEB, AUTH]


# ------------------------------------------------------------------ ProxyServer end to end
def test_proxyserver_hit_opens_no_connection_to_the_auth_service() -> None:
    from _upstream_helpers import read_to_eof, start_proxy

    async def go() -> tuple[list[bytes], int, int]:
        auth_conns = [0]
        web_conns = [0]

        async def auth(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            auth_conns[0] += 1
            try:
                head = await r.readuntil(b"\r\n\r\n")
                token = b""
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"authorization:"):
                        token = line.split(b" ")[-1]
                w.write(ALLOW % token if token.startswith(b"good") else DENY)
                await w.drain()
            except Exception:
                pass
            finally:
                w.close()

        async def web(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            web_conns[0] += 1
            try:
                head = await r.readuntil(b"\r\n\r\n")
                user = b"-"
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"x-user:"):
                        user = line.split(b":", 1)[1].strip()
                w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                        % (len(user), user))
                await w.drain()
            except Exception:
                pass
            finally:
                w.close()

        auth_srv = await asyncio.start_server(auth, "127.0.0.1", 0)
        web_srv = await asyncio.start_server(web, "127.0.0.1", 0)
        aport = auth_srv.sockets[0].getsockname()[1]
        wport = web_srv.sockets[0].getsockname()[1]
        ann = {P + "auth-url": f"http://127.0.0.1:{aport}/auth",
               P + "auth-response-headers": "X-User",
               P + "auth-cache-key": "$http_authorization"}
        text = ingress_yaml("site", "app.test", ann) + SERVICE.replace(
            "targetPort: 8080", f"targetPort: {wport}").replace(
            "port: 8080", f"port: {wport}").replace("10.0.0.1", "127.0.0.1")
        server, port = await start_proxy(Router(parse_manifests(text)))
        outs = []
        try:
            for token in (b"good-alice", b"good-alice", b"mallory", b"good-alice"):
                r, w = await asyncio.open_connection("127.0.0.1", port)
                w.write(b"GET / HTTP/1.1\r\nHost: app.test\r\nAuthorization: Bearer %s\r\n"
                        b"Connection: close\r\n\r\n" % token)
                await w.drain()
                outs.append(await read_to_eof(r, 3.0))
                w.close()
        finally:
            await server.shutdown(1)
            auth_srv.close()
            web_srv.close()
        return outs, auth_conns[0], web_conns[0]

    outs, auth_conns, web_conns = asyncio.run(go())
    assert [status_of(o) for o in outs] == [200, 200, 401, 200]
    assert all(outs[i].endswith(b"good-alice") for i in (0, 1, 3))
    assert auth_conns == 2 and web_conns == 3
