"""A security review of external authentication (``auth-url``, session 26, round 2): what a
client or an auth service can make the core send, through the sans-IO core
(``Proxy.connection``, fake clock) and ``ProxyServer`` on 127.0.0.1.

The rule: no request reaches the backend without a 2xx of the auth service, and nothing a
client sends reaches the auth service or the backend as if this hop had written it."""

from __future__ import annotations

import asyncio
from typing import Any

import h11

from ingresslib import Router, parse_manifests
from ingresslib.proxy import ProxySettings, TimerKind
from ingresslib.proxy._annotations import parse_route_options

from _proxy_harness import (WEB_SERVICE_YAML, FakeUpstream, ProxyPair, Reply, Route,
                            ingress_yaml, ok, status_of)

P = "nginx.ingress.kubernetes.io/"
AUTH = ("10.5.0.1", 4180)
WEB = ("10.0.0.1", 8080)
URL = "http://10.5.0.1:4180/oauth2/auth"
ALLOW = b"HTTP/1.1 200 OK\r\nX-User: alice\r\nContent-Length: 0\r\n\r\n"
DENY = b"HTTP/1.1 403 No\r\nContent-Length: 0\r\n\r\n"


def _pair(replies: list[bytes | None], annotations: dict[str, str] | None = None,
          host: str | None = None, **kw: Any) -> ProxyPair:
    """A core whose auth service gives ``replies`` in turn (None: silent)."""
    it = iter(replies)

    def app(request: h11.Request, data: bytes, up: FakeUpstream) -> Reply | None:
        if up.endpoint == AUTH:
            r = next(it)
            return None if r is None else Reply(r)
        return ok(b"backend " + request.target + b" " + data)
    ann = {P + "auth-url": URL, P + "auth-response-headers": "X-User"}
    ann.update(annotations or {})
    route = Route(annotations=ann, endpoints=[WEB]) if host is None else \
        Route(host=host, annotations=ann, endpoints=[WEB])
    return ProxyPair([route], app=app, **kw)


def _ups(p: ProxyPair, endpoint: tuple[str, int]) -> list[FakeUpstream]:
    return [u for u in p.upstreams if u.endpoint == endpoint]


def _raw(p: ProxyPair, endpoint: tuple[str, int]) -> bytes:
    return b"".join(bytes(u.raw) for u in _ups(p, endpoint))


# ------------------------------------------------------------------ auth-response-headers
def test_framing_headers_of_the_auth_answer_never_reach_the_backend() -> None:
    # auth-response-headers naming Content-Length: the auth answer's "Content-Length: 0" in
    # front of the client's body made the backend read that body as a second request
    # (smuggling; its answer waited in the pooled connection for another client).
    p = _pair([ALLOW], {P + "auth-response-headers": "Content-Length, X-User"})
    out = p.send(b"POST /up HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\n\r\nhello")
    assert status_of(out) == 200 and out.endswith(b"backend /up hello")
    raw = _raw(p, WEB).lower()
    assert b"content-length: 0" not in raw and raw.count(b"content-length: 5") == 1
    assert b"x-user: alice" in raw
    # Transfer-Encoding (the auth answer is chunked) next to the body's Content-Length.
    p = _pair([b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: upgrade\r\n\r\n"
               b"0\r\n\r\n"], {P + "auth-response-headers": "Transfer-Encoding,Connection"})
    out = p.send(b"POST /up HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\n\r\nhello")
    assert status_of(out) == 200 and out.endswith(b"backend /up hello")
    raw = _raw(p, WEB).lower()
    assert b"transfer-encoding" not in raw and b"upgrade" not in raw


def test_framing_header_names_are_warned_and_ignored() -> None:
    opts = parse_route_options(
        {P + "auth-url": URL, P + "auth-response-headers": "X-User, Content-Length, te"},
        "/", ProxySettings(), where="Ingress default/site")
    assert opts.access is None and opts.ext_auth is not None
    assert opts.ext_auth.response_headers == ("X-User",)
    assert any("Content-Length" in w and "ignored" in w for w in opts.warnings)
    assert any("'te'" in w for w in opts.warnings)


def test_with_auth_headers_refuses_framing_names_given_directly() -> None:
    from ingresslib.proxy._extauth import with_auth_headers

    head = b"POST / HTTP/1.1\r\nhost: a\r\ncontent-length: 5\r\n\r\n"
    assert with_auth_headers(head, ((b"Content-Length", b"0"),)) == head


def test_underscore_spelling_of_an_auth_response_header_is_dropped() -> None:
    # enable-underscores-in-headers: a client's "X_User" is HTTP_X_USER to a CGI/WSGI backend,
    # as the auth service's X-User is: the client's must not reach it (as for the headers the
    # core writes itself, proxy/_headers.py UNDERSCORE_SHADOWED).
    p = _pair([ALLOW], settings=ProxySettings(enable_underscores_in_headers=True))
    out = p.send(b"GET / HTTP/1.1\r\nHost: app.test\r\nX_User: mallory\r\nX_Other: 1\r\n\r\n")
    assert status_of(out) == 200
    raw = _raw(p, WEB)
    assert b"mallory" not in raw and b"X-User: alice\r\n" in raw and b"X_Other: 1" in raw
    # The auth answer denies the header: the client's spelling is still dropped.
    p = _pair([b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"],
              settings=ProxySettings(enable_underscores_in_headers=True))
    p.send(b"GET / HTTP/1.1\r\nHost: app.test\r\nX_User: mallory\r\n\r\n")
    assert b"mallory" not in _raw(p, WEB) and b"x-user" not in _raw(p, WEB).lower()


def test_auth_answer_header_read_as_nginx_upstream_http_variable() -> None:
    # $upstream_http_x_user matches an answer's "X_User" as well as "X-User"
    # (ngx_http_variable_unknown_header compares '-' as '_').
    p = _pair([b"HTTP/1.1 200 OK\r\nX_User: bob\r\nContent-Length: 0\r\n\r\n"])
    assert status_of(p.send(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")) == 200
    assert b"X-User: bob\r\n" in _raw(p, WEB)


def test_auth_answer_with_cr_or_nul_or_huge_head_is_500() -> None:
    for reply in (b"HTTP/1.1 200 OK\r\nX-User: a\x00b\r\nContent-Length: 0\r\n\r\n",
                  b"HTTP/1.1 200 OK\r\nX-User: a\rb\r\nContent-Length: 0\r\n\r\n",
                  # A head over max_response_header_size (64 KiB) arriving whole, or 1xx
                  # heads adding up to it (nginx: "upstream sent too big header").
                  b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n",
                  (b"HTTP/1.1 103 Early Hints\r\nLink: " + b"b" * 900 + b"\r\n\r\n") * 80
                  + ALLOW):
        p = _pair([reply])
        assert status_of(p.send(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")) == 500
        assert not _ups(p, WEB)


# ------------------------------------------------------------------ the subrequest's headers
def test_subrequest_drops_header_names_nginx_ignores() -> None:
    # nginx's ignore_invalid_headers (underscores_in_headers off) drops "X_Original_URL" from
    # the request before any location: the auth service never sees it. Passed, a CGI/WSGI
    # auth service read it as HTTP_X_ORIGINAL_URL, next to the real one.
    p = _pair([ALLOW])
    p.send(b"GET /admin HTTP/1.1\r\nHost: app.test\r\nX_Original_URL: http://app.test/public"
           b"\r\nX.Odd: 1\r\nProxy: http://evil.test\r\nCookie: c=1\r\n\r\n")
    raw = _raw(p, AUTH)
    assert b"public" not in raw and b"X.Odd" not in raw and b"evil" not in raw
    assert b"x-original-url: http://app.test/admin\r\n" in raw and b"Cookie: c=1\r\n" in raw
    # With underscores allowed, an underscore spelling of a header the subrequest sets is
    # still dropped; another passes.
    p = _pair([ALLOW], settings=ProxySettings(enable_underscores_in_headers=True))
    p.send(b"GET /admin HTTP/1.1\r\nHost: app.test\r\nX_Original_URL: http://app.test/public"
           b"\r\nX_Real_IP: 1.2.3.4\r\nX_Tenant: blue\r\n\r\n")
    raw = _raw(p, AUTH)
    assert b"public" not in raw and b"1.2.3.4" not in raw and b"X_Tenant: blue\r\n" in raw


def test_subrequest_drops_untrusted_forwarded_headers() -> None:
    # Without auth-method nginx.tmpl sets no X-Original-URI: a client's reached the auth
    # service as if this hop had written it (the core never passes it to a backend either).
    p = _pair([ALLOW])
    p.send(b"GET /admin HTTP/1.1\r\nHost: app.test\r\nX-Original-URI: /public\r\n"
           b"X-Forwarded-Host: evil.test\r\nX-Scheme: https\r\nX-Forwarded-Uri: /public\r\n"
           b"X-Forwarded-Method: GET\r\n\r\n")
    raw = _raw(p, AUTH).lower()
    assert b"/public" not in raw and b"evil.test" not in raw and b"x-scheme" not in raw
    assert b"x-forwarded-method" not in raw
    # A trusted hop's (use-forwarded-headers, its address trusted) pass as nginx passes them.
    p = _pair([ALLOW], settings=ProxySettings(use_forwarded_headers=True,
                                                 proxy_real_ip_cidr=("203.0.113.0/24",)))
    p.send(b"GET /admin HTTP/1.1\r\nHost: app.test\r\nX-Forwarded-Host: front.test\r\n\r\n")
    assert b"front.test" in _raw(p, AUTH)


def test_subrequest_never_carries_client_sent_certificate_headers() -> None:
    # nginx.tmpl's auth location passes ssl-client-* from the handshake; a client's own
    # "ssl-client-verify: SUCCESS" must not reach an auth service that trusts it.
    p = _pair([ALLOW])
    p.send(b"GET / HTTP/1.1\r\nHost: app.test\r\nssl-client-verify: SUCCESS\r\n"
           b"SSL-Client-Subject-DN: CN=admin\r\n\r\n")
    raw = _raw(p, AUTH).lower()
    assert b"ssl-client" not in raw and b"admin" not in raw


def test_subrequest_carries_the_verified_certificate_headers() -> None:
    from ingresslib.proxy._clientcert import ClientCert, ClientCertAuth

    auth = ClientCertAuth("default/client-ca", "default/x", b"ca", None)
    cert = ClientCert(auth.key, "SUCCESS", "CN=c,O=x", "CN=ca", "")
    p = _pair([ALLOW], host="a.test", tls=True)
    p.proxy.client_auth = lambda host: auth if host == "a.test" else None
    p.conn.client_cert = cert
    out = p.send(b"GET / HTTP/1.1\r\nHost: a.test\r\nssl-client-verify: FAILED\r\n"
                 b"ssl-client-subject-dn: CN=admin\r\n\r\n")
    assert status_of(out) == 200
    raw = _raw(p, AUTH).lower()
    assert b"ssl-client-verify: success\r\n" in raw and b"failed" not in raw
    assert b"ssl-client-subject-dn: cn=c,o=x\r\n" in raw and b"admin" not in raw


def test_hostile_host_and_target_in_x_original_url() -> None:
    # The subrequest's X-Original-URL is $scheme://$http_host$request_uri; an absolute-form
    # target is routed and reported by its path, a '#' or a non-ASCII byte is a 400 before it.
    p = _pair([ALLOW, ALLOW])
    p.send(b"GET http://app.test/a?b=1 HTTP/1.1\r\nHost: app.test\r\n\r\n")
    assert b"x-original-url: http://app.test/a?b=1\r\n" in _raw(p, AUTH)
    for bad in (b"GET /a#b HTTP/1.1\r\nHost: app.test\r\n\r\n",
                b"GET /\xc3\xa9 HTTP/1.1\r\nHost: app.test\r\n\r\n",
                b"GET / HTTP/1.1\r\nHost: app.test\r\nHost: evil.test\r\n\r\n"):
        p = _pair([ALLOW])
        assert status_of(p.send(bad)) == 400 and not p.opens


# ------------------------------------------------------------------ the auth service's answer
def test_101_from_the_auth_service_is_500_at_once() -> None:
    # nginx reads a 101 as the subrequest's final status: "auth request unexpected status",
    # 500 -- not a wait for another answer until proxy-read-timeout.
    p = _pair([b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n"])
    out = p.send(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
    assert status_of(out) == 500 and not _ups(p, WEB) and not p.closed


def test_interim_chunked_204_and_double_answers() -> None:
    cases = [
        (b"HTTP/1.1 100 Continue\r\n\r\n" + ALLOW, 200),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 200),
        (b"HTTP/1.1 204 No Content\r\n\r\n", 200),
        (b"HTTP/1.1 304 Not Modified\r\n\r\n", 500),
        (ALLOW + DENY, 200),
        (DENY + ALLOW, 403),
    ]
    for reply, want in cases:
        p = _pair([reply])
        out = p.send(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
        assert status_of(out) == want, reply
        assert bool(_ups(p, WEB)) == (want == 200)
        assert out.count(b"HTTP/1.1 ") == 1


def test_auth_answer_before_connect_completes_or_closed_silently() -> None:
    p = _pair([None], defer=[AUTH])
    p.send(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
    p.connect()
    [auth] = _ups(p, AUTH)
    assert status_of(p.upstream_send(auth, b"HTTP/1.1 200 O", close=True)) == 500
    assert not _ups(p, WEB)
    p = _pair([None])
    assert p.send(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n") == b""
    [auth] = _ups(p, AUTH)
    assert status_of(p.upstream_send(auth, b"", close=True)) == 500 and not _ups(p, WEB)


# ------------------------------------------------------------------ request bodies, pipelining
def test_pipelined_allowed_then_denied_body_never_forwarded() -> None:
    p = _pair([ALLOW, DENY, DENY])
    out = p.send(b"POST /1 HTTP/1.1\r\nHost: app.test\r\nContent-Length: 3\r\n\r\nabc"
                 b"POST /2 HTTP/1.1\r\nHost: app.test\r\nContent-Length: 3\r\n\r\nxyz"
                 b"GET /3 HTTP/1.1\r\nHost: app.test\r\n\r\n")
    assert out.count(b"HTTP/1.1 200 OK") == 1 and out.count(b"HTTP/1.1 403") == 2
    web = _raw(p, WEB)
    assert b"abc" in web and b"xyz" not in web and b"/2 " not in web and b"/3 " not in web
    assert len(_ups(p, AUTH)) == 3  # each request asked for itself


def test_pipelined_second_request_waits_for_the_first_answer() -> None:
    p = _pair([ALLOW, DENY], defer=[AUTH])
    p.send(b"GET /1 HTTP/1.1\r\nHost: app.test\r\n\r\n"
           b"POST /2 HTTP/1.1\r\nHost: app.test\r\nContent-Length: 3\r\n\r\nxyz")
    assert len(p.pending) == 1  # the second is not parsed while the first waits
    out = p.connect()
    assert status_of(out) == 200 and len(p.pending) == 1
    out = p.connect()
    assert status_of(out) == 403 and b"xyz" not in _raw(p, WEB)


def test_chunked_body_before_a_denial_is_discarded() -> None:
    p = _pair([DENY, ALLOW], defer=[AUTH])
    p.send(b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"4\r\nGET \r\n")
    assert status_of(p.connect()) == 403
    # The rest of the body (a request line inside it) is read as body, not as a request.
    assert p.send(b"f\r\n/x HTTP/1.1\r\n\r\n\r\n0\r\n\r\n") == b"" and not p.pending
    p.send(b"GET /n HTTP/1.1\r\nHost: app.test\r\n\r\n")
    assert status_of(p.connect()) == 200
    assert b"GET /n " in _raw(p, WEB) and b"/x " not in _raw(p, WEB)


def test_expect_continue_denied_sends_no_100() -> None:
    p = _pair([DENY], defer=[AUTH])
    p.send(b"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 4\r\n"
           b"Expect: 100-continue\r\n\r\n")
    out = p.connect()
    assert status_of(out) == 403 and b"100 Continue" not in out and not _ups(p, WEB)


def test_large_body_is_held_back_during_auth() -> None:
    p = _pair([ALLOW], defer=[AUTH])
    p.send(b"PUT / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 200000\r\n\r\n"
           + b"x" * 100000)
    assert not p.conn.reading_wanted and not _ups(p, WEB)
    p.connect()
    assert p.conn.reading_wanted
    assert status_of(p.send(b"y" * 100000)) == 200
    assert _raw(p, WEB).endswith(b"x" * 100000 + b"y" * 100000)


def test_body_over_the_limit_during_auth_closes_the_subrequest() -> None:
    p = _pair([None], {P + "proxy-body-size": "4"}, defer=[AUTH])
    p.send(b"POST / HTTP/1.1\r\nHost: app.test\r\nTransfer-Encoding: chunked\r\n\r\n")
    auth_id = p.opens[0].conn_id
    out = p.send(b"5\r\nhello\r\n")
    assert status_of(out) == 413 and auth_id in [c.conn_id for c in p.closes]
    assert p.connect() == b"" and not _ups(p, WEB)  # the late connect is closed, unused


def test_client_gone_mid_auth_then_late_allow_does_nothing() -> None:
    p = _pair([None], defer=[AUTH])
    p.send(b"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 10\r\n\r\nabc")
    p.connect()
    [auth] = _ups(p, AUTH)
    p.eof()
    assert p.closed
    assert p.conn.upstream_data(p.opens[0].conn_id, ALLOW, p.now) == []
    assert not _ups(p, WEB)


def test_slow_auth_is_500_and_the_late_answer_is_ignored() -> None:
    p = _pair([None])
    p.send(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
    assert status_of(p.fire(TimerKind.UPSTREAM_READ)) == 500
    assert p.conn.upstream_data(p.opens[0].conn_id, ALLOW, p.now) == []
    assert not _ups(p, WEB) and not p.closed


# ------------------------------------------------------------------ after the verdict
def test_retry_after_allowed_auth_keeps_the_auth_headers_and_asks_once() -> None:
    web2 = ("10.0.0.2", 8080)
    it = iter([ALLOW])

    def app(request: h11.Request, data: bytes, up: FakeUpstream) -> Reply | None:
        if up.endpoint == AUTH:
            return Reply(next(it))
        return ok(b"backend")
    p = ProxyPair([Route(annotations={P + "auth-url": URL, P + "auth-response-headers":
                                      "X-User"}, endpoints=[WEB, web2])],
                  app=app, refuse=[WEB])
    out = p.send(b"GET / HTTP/1.1\r\nHost: app.test\r\nX-User: forged\r\n\r\n")
    assert status_of(out) == 200
    assert [o.endpoint for o in p.opens] == [AUTH, WEB, web2]
    raw = _raw(p, web2)
    assert b"X-User: alice\r\n" in raw and b"forged" not in raw


def test_canary_behind_an_authed_main_rule_is_authenticated() -> None:
    docs = ingress_yaml("main", "app.test", {P + "auth-url": URL}) + ingress_yaml(
        "can", "app.test", {P + "canary": "true", P + "canary-by-header": "X-Canary"},
        service="web2") + WEB_SERVICE_YAML + """
---
apiVersion: v1
kind: Service
metadata: {name: web2, namespace: default}
spec: {ports: [{port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web2-1, namespace: default, labels: {kubernetes.io/service-name: web2}}
addressType: IPv4
ports: [{port: 80}]
endpoints: [{addresses: [10.0.0.9], conditions: {ready: true}}]
"""

    def app(request: h11.Request, data: bytes, up: FakeUpstream) -> Reply | None:
        return Reply(DENY) if up.endpoint == AUTH else ok()
    p = ProxyPair(router=Router(parse_manifests(docs)), app=app)
    out = p.send(b"GET / HTTP/1.1\r\nHost: app.test\r\nX-Canary: always\r\n\r\n")
    assert status_of(out) == 403
    assert [o.endpoint for o in p.opens] == [AUTH]


def test_head_and_signin_redirect_escaping() -> None:
    p = _pair([b"HTTP/1.1 401 No\r\nContent-Length: 3\r\n\r\nno!"],
              {P + "auth-signin": "https://login.test/start"})
    out = p.send(b"HEAD /a%20b/%23x?q=%0d%0a HTTP/1.1\r\nHost: app.test\r\n\r\n")
    assert status_of(out) == 302 and out.endswith(b"\r\n\r\n")  # HEAD: no body
    assert b"location: https://login.test/start?rd=http://app.test%2Fa%2520b%2F%2523x%3Fq%3D" \
        b"%250d%250a\r\n" in out
    assert _raw(p, AUTH).startswith(b"GET /oauth2/auth HTTP/1.1\r\n")
    assert b"x-original-method: HEAD\r\n" in _raw(p, AUTH)


def test_websocket_upgrade_denied_never_opens_a_tunnel() -> None:
    p = _pair([DENY])
    out = p.send(b"GET /ws HTTP/1.1\r\nHost: app.test\r\nConnection: Upgrade\r\n"
                 b"Upgrade: websocket\r\n\r\nraw bytes")
    assert status_of(out) == 403 and not p.tunnels and not _ups(p, WEB)


def test_record_counts_the_backend_try_only() -> None:
    p = _pair([ALLOW, DENY])
    p.proxy.records = True
    p.send(b"GET /1 HTTP/1.1\r\nHost: app.test\r\n\r\nGET /2 HTTP/1.1\r\nHost: app.test\r\n\r\n")
    first, second = p.records
    assert first.upstreams == (WEB,) and first.status == 200
    assert second.upstreams == () and second.status == 403


# ------------------------------------------------------------------ end to end (ProxyServer)
def test_server_forged_headers_do_not_reach_auth_or_backend() -> None:
    from _upstream_helpers import read_to_eof, start_proxy

    async def main() -> tuple[bytes, list[bytes], list[bytes]]:
        auth_seen: list[bytes] = []
        web_seen: list[bytes] = []

        async def auth(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            auth_seen.append(await r.readuntil(b"\r\n\r\n"))
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-User: alice\r\n\r\n")
            await w.drain()
            w.close()

        async def web(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            head = await r.readuntil(b"\r\n\r\n")
            body = await r.readexactly(5)
            web_seen.append(head + body)
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await w.drain()
            w.close()
        a = await asyncio.start_server(auth, "127.0.0.1", 0)
        b = await asyncio.start_server(web, "127.0.0.1", 0)
        ap = a.sockets[0].getsockname()[1]
        bp = b.sockets[0].getsockname()[1]
        ann = {P + "auth-url": f"http://127.0.0.1:{ap}/auth",
               P + "auth-response-headers": "X-User, Content-Length"}
        docs = ingress_yaml("site", "app.test", ann) + f"""
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: default}}
spec: {{ports: [{{port: 80, targetPort: {bp}}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: web-1, namespace: default, labels: {{kubernetes.io/service-name: web}}}}
addressType: IPv4
ports: [{{port: {bp}}}]
endpoints: [{{addresses: [127.0.0.1], conditions: {{ready: true}}}}]
"""
        server, port = await start_proxy(Router(parse_manifests(docs)))
        try:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"POST /up HTTP/1.1\r\nHost: app.test\r\nContent-Length: 5\r\n"
                    b"X_Original_URL: http://app.test/public\r\nssl-client-verify: SUCCESS\r\n"
                    b"Connection: close\r\n\r\nhello")
            await w.drain()
            data = await read_to_eof(r, 3.0)
            w.close()
            return data, auth_seen, web_seen
        finally:
            await server.shutdown(1)
            a.close()
            b.close()
    data, auth_seen, web_seen = asyncio.run(main())
    assert status_of(data) == 200 and data.endswith(b"ok")
    assert b"public" not in auth_seen[0] and b"ssl-client" not in auth_seen[0].lower()
    assert web_seen[0].lower().count(b"content-length: 5\r\n") == 1
    assert b"content-length: 0" not in web_seen[0].lower()
    assert b"X-User: alice\r\n" in web_seen[0]


def test_server_client_gone_mid_auth_closes_the_auth_connection() -> None:
    from _upstream_helpers import start_proxy

    async def main() -> bytes:
        closed = asyncio.get_running_loop().create_future()
        asked = asyncio.Event()

        async def auth(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await r.readuntil(b"\r\n\r\n")
            asked.set()
            try:
                rest = await asyncio.wait_for(r.read(), 2.0)  # the proxy's close: EOF
            except (asyncio.TimeoutError, ConnectionError):
                rest = b"still open"
            if not closed.done():
                closed.set_result(rest)
            w.close()
        a = await asyncio.start_server(auth, "127.0.0.1", 0)
        ap = a.sockets[0].getsockname()[1]
        docs = ingress_yaml("site", "app.test", {P + "auth-url": f"http://127.0.0.1:{ap}/a"}) \
            + WEB_SERVICE_YAML
        server, port = await start_proxy(Router(parse_manifests(docs)))
        try:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"POST / HTTP/1.1\r\nHost: app.test\r\nContent-Length: 9\r\n\r\nabc")
            await w.drain()
            await asyncio.wait_for(asked.wait(), 3.0)  # the auth subrequest is under way
            w.close()
            return await asyncio.wait_for(closed, 3.0)
        finally:
            await server.shutdown(1)
            a.close()
    assert asyncio.run(main()) == b""
