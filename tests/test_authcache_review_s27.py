"""Attacker review of ``auth-cache-key`` / ``auth-cache-duration`` (session 27,
proxy/_authcache.py): a cache must never serve one client's "200 + X-User: alice" to another
client that nginx would have sent to the auth service, and an auth answer must never break
the request it answers.

Defects found (each test failed before the fix):

- An auth answer with a ``Cache-Control: max-age=`` / ``X-Accel-Expires`` number too large
  for a float (a few hundred digits) raised OverflowError out of ``lifetime``: out of the
  sans-IO core's ``upstream_data`` and out of IngressASGI. nginx (ngx_http_upstream.c
  ``ngx_http_upstream_process_accel_expires``: ``ngx_atoi`` refuses a number past
  NGX_MAX_INT_T_VALUE, the header is ignored; ``ngx_http_upstream_process_cache_control``:
  a delta past it is saturated by nginx >= 1.27, wraps in older ones) still answers.
- ``$http_NAME`` in the key did not read a header spelled with ``_`` (``X_Token``), which
  nginx's ``ngx_http_variable_unknown_header`` reads ("-" compared as "_") and which the
  subrequest passes to the auth service with ``enable-underscores-in-headers``: the key was
  coarser than nginx's, and with a key like ``$host$http_x_token`` one client's answer was
  served to every client without the header.
- ``$remote_user`` refused what nginx's ``ngx_http_auth_basic_user`` / ``ngx_decode_base64``
  accept (base64 without its ``=`` padding, anything after the first ``=``): the user read as
  "" made the key coarser than nginx's (``$host$remote_user``: alice's answer served to a
  client without credentials).
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import h11

from ingresslib import IngressASGI, Router, parse_manifests
from ingresslib.proxy import ProxySettings
from ingresslib.proxy._authcache import lifetime, remote_user

from _proxy_harness import PEER, FakeUpstream, ProxyPair, Reply, Route, ingress_yaml, ok, \
    status_of

P = "nginx.ingress.kubernetes.io/"
AUTH = ("10.5.0.1", 4180)
WEB = ("10.0.0.1", 8080)
URL = "http://10.5.0.1:4180/oauth2/auth"
DENY = b"HTTP/1.1 401 No\r\nContent-Length: 0\r\n\r\n"
HUGE = b"9" * 400


def _token(h: dict[bytes, bytes]) -> bytes:
    """The credential the test auth service reads: ``X-Token`` in either spelling, else the
    user of a Basic Authorization decoded leniently (padding added), else a Bearer token."""
    for name in (b"x-token", b"x_token"):
        if name in h:
            return h[name]
    auth = h.get(b"authorization", b"")
    scheme, _, rest = auth.partition(b" ")
    if scheme.lower() == b"basic":
        rest = rest.split(b"=")[0]
        try:
            return base64.b64decode(rest + b"=" * (-len(rest) % 4)).partition(b":")[0]
        except ValueError:
            return b""
    return rest


def _app(extra: bytes = b"") -> Any:
    """An auth service letting in credentials starting with "good" (X-User: the credential),
    401 otherwise; the backend echoes the X-User it got."""
    def app(request: h11.Request, data: bytes, up: FakeUpstream) -> Reply | None:
        h = {n.lower(): v for n, v in request.headers}
        if up.endpoint == AUTH:
            token = _token(h)
            if token.startswith(b"good"):
                return Reply(b"HTTP/1.1 200 OK\r\nX-User: " + token + b"\r\n" + extra
                             + b"Content-Length: 0\r\n\r\n")
            return Reply(DENY)
        return ok(b"user=" + h.get(b"x-user", b"-"))
    return app


def _pair(key: str, extra: bytes = b"", settings: ProxySettings | None = None) -> ProxyPair:
    ann = {P + "auth-url": URL, P + "auth-response-headers": "X-User",
           P + "auth-cache-key": key}
    return ProxyPair([Route(annotations=ann, endpoints=[WEB])], settings, app=_app(extra))


def _asked(p: ProxyPair) -> int:
    return len([u for u in p.upstreams if u.endpoint == AUTH])


def _get(p: ProxyPair, header: bytes = b"", target: bytes = b"/a",
         host: bytes = b"app.test") -> bytes:
    """A request on a new client connection of the same Proxy (its cache is the Proxy's)."""
    p.conn = p.proxy.connection(PEER, now=p.now)
    p.closed = False
    p._run(p.conn.start(p.now))
    return p.send(b"GET %s HTTP/1.1\r\nHost: %s\r\n%sConnection: close\r\n\r\n"
                  % (target, host, header))


# --------------------------------------------------------------- huge cache times
def test_huge_cache_times_in_the_auth_answer_do_not_break_the_request() -> None:
    for extra in (b"Cache-Control: max-age=" + HUGE + b"\r\n",
                  b"Cache-Control: s-maxage=" + HUGE + b", max-age=5\r\n",
                  b"X-Accel-Expires: " + HUGE + b"\r\n",
                  b"X-Accel-Expires: @" + HUGE + b"\r\n"):
        p = _pair("$http_authorization", extra)
        out = _get(p, b"Authorization: Bearer good-alice\r\n")
        assert status_of(out) == 200 and out.endswith(b"user=good-alice"), extra
        out = _get(p, b"Authorization: Bearer mallory\r\n")
        assert status_of(out) == 401, extra


def test_lifetime_reads_out_of_range_numbers_as_nginx() -> None:
    valid = ((200, 60.0),)
    # X-Accel-Expires past NGX_MAX_INT_T_VALUE: ngx_atoi's NGX_ERROR, the header ignored
    # (then Cache-Control, Expires, proxy_cache_valid decide).
    assert lifetime(valid, 200, [(b"", b"x-accel-expires", HUGE)]) == 60.0
    assert lifetime(valid, 200, [(b"", b"x-accel-expires", b"@" + HUGE)]) == 60.0
    assert lifetime(valid, 200, [(b"", b"x-accel-expires", b"9223372036854775808"),
                                 (b"", b"cache-control", b"max-age=7")]) == 7.0
    assert lifetime(valid, 200, [(b"", b"x-accel-expires", b"9223372036854775807")]) \
        == 9223372036854775807.0
    # A Cache-Control delta that does not fit: not cached (never a crash, never "forever").
    assert lifetime(valid, 200, [(b"", b"cache-control", b"max-age=" + HUGE)]) == 0.0
    assert lifetime(valid, 200, [(b"", b"cache-control", b"max-age=" + b"9" * 5000)]) == 0.0
    assert lifetime(valid, 200, [(b"", b"cache-control", b"max-age=86400")]) == 86400.0


# --------------------------------------------------------------- $http_ with "_"
def test_underscore_spelling_is_part_of_the_http_variable() -> None:
    # enable-underscores-in-headers: the subrequest passes X_Token, the auth service lets
    # alice in on it; nginx's $http_x_token reads X_Token too, so a client without the
    # header has another key ("app.test" alone) and is asked, not served alice's answer.
    p = _pair("$host$http_x_token", settings=ProxySettings(enable_underscores_in_headers=True))
    out = _get(p, b"X_Token: good-alice\r\n")
    assert status_of(out) == 200 and out.endswith(b"user=good-alice")
    out = _get(p, b"")
    assert status_of(out) == 401 and _asked(p) == 2
    # The same spelling again is a hit; both spellings are joined as nginx joins them.
    assert _get(p, b"X_Token: good-alice\r\n").endswith(b"user=good-alice")
    assert _asked(p) == 2
    out = _get(p, b"X-Token: good-bob\r\n")
    assert out.endswith(b"user=good-bob") and _asked(p) == 3


def test_http_variable_joins_both_spellings_in_order() -> None:
    from ingresslib.proxy._authcache import AuthCacheConfig

    cfg = AuthCacheConfig("$http_x_token", ((200, 60.0),))
    both = [(b"x-token", b"a"), (b"x_token", b"b"), (b"X_TOKEN", b"c")]
    assert cfg.expand("GET", "h", "/", None, both, None) == "a, b, c"
    assert cfg.expand("GET", "h", "/", None, [(b"x_token", b"b")], None) == "b"
    assert cfg.expand("GET", "h", "/", None, [(b"x-tokens", b"b")], None) is None
    h = h11.Request(method="GET", target="/", headers=[("Host", "h"), ("X_Token", "z")])
    assert cfg.expand("GET", "h", "/", None, h.headers, None) == "z"
    # $http_cookie joins its lines with "; " (nginx's multi-header cookie variable).
    cookie = AuthCacheConfig("$http_cookie", ((200, 60.0),))
    assert cookie.expand("GET", "h", "/", None, [(b"cookie", b"a=1"), (b"cookie", b"b=2")],
                         None) == "a=1; b=2"


# --------------------------------------------------------------- $remote_user
def test_remote_user_decodes_as_nginx() -> None:
    def user(value: bytes) -> str:
        return remote_user([(b"authorization", value)])

    padded = base64.b64encode(b"alice:pw")  # b"YWxpY2U6cHc="
    assert user(b"Basic " + padded) == "alice"
    # ngx_decode_base64: the padding is optional, decoding stops at the first "=".
    assert user(b"Basic " + padded.rstrip(b"=")) == "alice"
    assert user(b"Basic " + padded + b"junk!") == "alice"
    assert user(b"basic    " + padded) == "alice"  # "Basic " case-insensitive, spaces skipped
    # Refused as nginx refuses them: a character outside the alphabet before "=", a length
    # of 4n+1, no ":" or an empty name, another scheme, "Basic" without its space.
    assert user(b"Basic YWxp!2U6cHc=") == ""
    assert user(b"Basic " + padded.rstrip(b"=") + b"A" * 2) == ""
    assert user(b"Basic " + base64.b64encode(b"nocolon")) == ""
    assert user(b"Basic " + base64.b64encode(b":pw")) == ""
    assert user(b"Bearer " + padded) == ""
    assert user(b"Basic") == "" and user(b"Basic ") == ""
    assert user(b"Basic\t" + padded) == ""


def test_unpadded_basic_credentials_are_not_served_to_others() -> None:
    p = _pair("$host$remote_user")
    alice = base64.b64encode(b"good-alice:pw").rstrip(b"=")
    assert alice != base64.b64encode(b"good-alice:pw")  # (really unpadded)
    out = _get(p, b"Authorization: Basic " + alice + b"\r\n")
    assert status_of(out) == 200 and out.endswith(b"user=good-alice")
    # No credentials: nginx's key is "app.test" alone, not alice's "app.testgood-alice".
    assert status_of(_get(p)) == 401
    assert _asked(p) == 2


# --------------------------------------------------------------- IngressASGI
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


async def _asgi_run(key: str, requests: list[list[tuple[bytes, bytes]]], extra: bytes = b"",
                    settings: ProxySettings | None = None,
                    targets: list[tuple[bytes, bytes]] | None = None
                    ) -> tuple[list[tuple[int, bytes]], int]:
    """``requests`` (each its extra headers) through IngressASGI with a real auth service on
    127.0.0.1: the (status, X-User the app got) of each, and the subrequests made."""
    asked = [0]

    async def service(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            head = await r.readuntil(b"\r\n\r\n")
            asked[0] += 1
            h = {}
            for line in head.split(b"\r\n")[1:]:
                if b":" in line:
                    n, _, v = line.partition(b":")
                    h[n.strip().lower()] = v.strip()
            token = _token(h)
            w.write(b"HTTP/1.1 200 OK\r\nX-User: " + token + b"\r\n" + extra
                    + b"Content-Length: 0\r\n\r\n" if token.startswith(b"good") else DENY)
            await w.drain()
        except Exception:
            pass
        finally:
            w.close()

    server = await asyncio.start_server(service, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    ann = {P + "auth-url": f"http://127.0.0.1:{port}/check",
           P + "auth-response-headers": "X-User", P + "auth-cache-key": key}
    results: list[tuple[int, bytes]] = []

    async def backend(scope: Any, receive: Any, send: Any) -> None:
        user = dict((bytes(n), bytes(v)) for n, v in scope["headers"]).get(b"x-user", b"-")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": user})

    kw: dict[str, Any] = {} if settings is None else {"settings": settings}
    app = IngressASGI(Router(parse_manifests(ingress_yaml("site", "app.test", ann) + SERVICE)),
                      {"default/web": backend}, request_id=lambda: "0" * 32, **kw)
    try:
        for i, extra_headers in enumerate(requests):
            sent: list[dict[str, Any]] = []
            path, _, qs = (targets[i][0] if targets else b"/a").partition(b"?")
            host = targets[i][1] if targets else b"app.test"

            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": b"", "more_body": False}

            async def send(m: Any) -> None:
                sent.append(dict(m))
            scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                     "scheme": "http", "method": "GET", "path": path.decode(),
                     "raw_path": path, "query_string": qs, "root_path": "",
                     "headers": [(b"host", host)] + extra_headers,
                     "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 80),
                     "extensions": {}}
            await app(scope, receive, send)
            body = b"".join(m.get("body", b"") for m in sent
                            if m["type"] == "http.response.body")
            results.append((int(sent[0]["status"]), body))
    finally:
        server.close()
    return results, asked[0]


def test_asgi_huge_cache_time_does_not_break_the_request() -> None:
    # The Cache-Control: not cached (asked twice); the X-Accel-Expires: ignored, the
    # default "200 202 401 5m" caches the 200 (asked once).
    for extra, times in ((b"Cache-Control: max-age=" + HUGE + b"\r\n", 2),
                         (b"X-Accel-Expires: " + HUGE + b"\r\n", 1)):
        results, asked = asyncio.run(_asgi_run(
            "$http_authorization", [[(b"authorization", b"Bearer good-alice")]] * 2, extra))
        assert results == [(200, b"good-alice")] * 2, extra
        assert asked == times, extra


def test_asgi_unpadded_basic_credentials_are_not_served_to_others() -> None:
    alice = b"Basic " + base64.b64encode(b"good-alice:pw").rstrip(b"=")
    results, asked = asyncio.run(_asgi_run(
        "$host$remote_user", [[(b"authorization", alice)], [], [(b"authorization", alice)]]))
    assert [s for s, _ in results] == [200, 401, 200]
    assert results[0][1] == results[2][1] == b"good-alice"
    assert asked == 2


def test_core_and_asgi_agree_on_the_underscore_spelling() -> None:
    # The same requests through the core and IngressASGI: the same answers, the same
    # subrequests (the core's cache and IngressASGI's read the key alike).
    s = ProxySettings(enable_underscores_in_headers=True)
    seq: list[list[tuple[bytes, bytes]]] = [
        [(b"x_token", b"good-alice")], [], [(b"x_token", b"good-alice")],
        [(b"x-token", b"good-alice")], []]
    results, asked = asyncio.run(_asgi_run("$host$http_x_token", seq, settings=s))
    p = _pair("$host$http_x_token", settings=s)
    core = []
    for headers in seq:
        out = _get(p, b"".join(n + b": " + v + b"\r\n" for n, v in headers))
        core.append((status_of(out), out.rpartition(b"user=")[2] if status_of(out) == 200
                     else b""))
    assert [s for s, _ in results] == [s for s, _ in core] == [200, 401, 200, 200, 401]
    assert results[0][1] == core[0][1] == b"good-alice"
    # Asked for alice and for the client without the header; both spellings of alice's
    # token are one key ("app.testgood-alice"), the 401 of "app.test" alone is cached.
    assert asked == _asked(p) == 2


def test_core_and_asgi_agree_on_key_variables() -> None:
    # One sequence through the core and IngressASGI, a key of several variables: the same
    # answers and the same subrequests (a hit in one is a hit in the other).
    key = "$host$request_uri|$cookie_s|$remote_user|$arg_x|$http_x_token"
    basic = b"Basic " + base64.b64encode(b"good-u:pw")
    seq: list[tuple[bytes, bytes, list[tuple[bytes, bytes]]]] = [
        (b"/a?x=1", b"app.test", [(b"x-token", b"good-t")]),
        (b"/a?x=1", b"APP.test:80", [(b"x-token", b"good-t")]),   # $host: case, port
        (b"/a?x=2", b"app.test", [(b"x-token", b"good-t")]),      # another $arg_x
        (b"/a?x=1", b"app.test", [(b"x-token", b"good-t"), (b"cookie", b"S=1")]),
        (b"/a?x=1", b"app.test", [(b"x-token", b"good-t"), (b"cookie", b"s=1")]),
        (b"/a?x=1", b"app.test", [(b"authorization", basic)]),
        (b"/a?x=1", b"app.test", [(b"authorization", basic)]),
        (b"/a?x=1", b"app.test", [(b"authorization", basic + b"=")]),  # "=": still "good-u"
        (b"/a?x=1", b"app.test", []),
        (b"/a?x=1", b"app.test", []),
    ]
    results, asked = asyncio.run(_asgi_run(key, [h for _, _, h in seq],
                                           targets=[(t, h) for t, h, _ in seq]))
    p = _pair(key)
    core = []
    for target, host, headers in seq:
        out = _get(p, b"".join(n + b": " + v + b"\r\n" for n, v in headers), target, host)
        core.append(status_of(out))
    assert [s for s, _ in results] == core
    assert core == [200, 200, 200, 200, 200, 200, 200, 200, 401, 401]
    # Asked: the first, the other $arg_x, each Cookie spelling ($cookie_s is
    # case-insensitive: "S=1" and "s=1" are one key), Basic, the anonymous one.
    assert asked == _asked(p) == 5


# --------------------------------------------------------------- what a hit answers
def test_cached_refusal_answers_with_this_requests_signin_url() -> None:
    # A cached 401 with auth-signin: the 302's rd is built from the request at hand (the
    # verdict holds the status only), never the URL of the client whose answer was cached.
    ann = {P + "auth-url": URL, P + "auth-cache-key": "$host$http_x_token",
           P + "auth-signin": "https://login.test/start"}
    p = ProxyPair([Route(annotations=ann, endpoints=[WEB])], app=_app())
    first = _get(p, b"X-Token: bad\r\n", b"/a/alice-secret?x=1")
    second = _get(p, b"X-Token: bad\r\n", b"/a/other")
    assert _asked(p) == 1 and status_of(first) == status_of(second) == 302
    assert b"alice-secret" in first and b"alice-secret" not in second
    assert b"rd=http://app.test%2Fa%2Fother" in second


def test_cached_401_keeps_its_own_challenge_only() -> None:
    # The WWW-Authenticate of a cached 401 is the auth answer's, for the same key only.
    def app(request: h11.Request, data: bytes, up: FakeUpstream) -> Reply | None:
        h = {n.lower(): v for n, v in request.headers}
        if up.endpoint == AUTH:
            return Reply(b"HTTP/1.1 401 No\r\nWWW-Authenticate: Bearer realm=\"" + h[b"x-token"]
                         + b"\"\r\nContent-Length: 0\r\n\r\n")
        return ok(b"-")
    ann = {P + "auth-url": URL, P + "auth-cache-key": "$http_x_token"}
    p = ProxyPair([Route(annotations=ann, endpoints=[WEB])], app=app)
    a1 = _get(p, b"X-Token: alice\r\n")
    b1 = _get(p, b"X-Token: bob\r\n")
    a2 = _get(p, b"X-Token: alice\r\n")
    assert _asked(p) == 2
    assert b'realm="alice"' in a1 and b'realm="alice"' in a2 and b'realm="bob"' in b1
    assert b'realm="alice"' not in b1


# --------------------------------------------------------------- huge durations
HUGE_DURATION = "200 " + "9" * 400 + "s"


def test_huge_duration_denies_its_location_only() -> None:
    # ngx_parse_time refuses a time past NGX_MAX_INT_T_VALUE seconds ("invalid time value":
    # the configuration fails). Before: OverflowError out of the route's parse, raised by
    # every request to it and by Proxy.log_annotation_warnings (a reload of all routes).
    from ingresslib.proxy import OpenUpstream, Proxy, SendDownstream

    ann = {P + "auth-url": URL, P + "auth-cache-key": "$http_authorization",
           P + "auth-cache-duration": HUGE_DURATION}
    text = ingress_yaml("a", "a.test", ann) + ingress_yaml("b", "b.test", {}) + SERVICE
    proxy = Proxy(Router(parse_manifests(text), seed=0))
    proxy.log_annotation_warnings()
    conn = proxy.connection("10.1.1.1", now=0.0)
    acts = list(conn.receive_data(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n", now=0.0))
    sent = b"".join(a.data for a in acts if isinstance(a, SendDownstream))
    assert sent.startswith(b"HTTP/1.1 503 ")
    conn = proxy.connection("10.1.1.1", now=0.0)
    acts = list(conn.receive_data(b"GET / HTTP/1.1\r\nHost: b.test\r\n\r\n", now=0.0))
    assert [a.endpoint for a in acts if isinstance(a, OpenUpstream)] == [WEB]


def test_duration_bounds_are_nginx_largest_time() -> None:
    import pytest

    from ingresslib.proxy._authcache import parse_durations

    assert parse_durations("200 9223372036854775807s")[1] == ((200, 9223372036854775807.0),)
    assert parse_durations("200 0000000000000000000000005m")[1] == ((200, 300.0),)
    for bad in ("200 9223372036854775808s", "200 292471208678y", HUGE_DURATION,
                "200 " + "9" * 5000 + "m"):
        with pytest.raises(ValueError, match="invalid time value"):
            parse_durations(bad)


def test_huge_global_duration_is_a_configmap_error() -> None:
    import pytest

    with pytest.raises(ValueError, match="global_auth_cache_duration"):
        ProxySettings(global_auth_url=URL, global_auth_cache_key="$http_authorization",
                      global_auth_cache_duration=HUGE_DURATION)
