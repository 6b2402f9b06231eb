"""IngressASGI's external auth (``auth-url``, ingresslib/_asgi_extauth.py) held to the security
review of the core's (tests/test_extauth_review_s26.py, session 26 round 2; its fixes in
proxy/_extauth.py): each review test that applies to ASGI has its twin here, through a real
auth service on 127.0.0.1 (port 0) and the ASGI app driven by hand.

Review tests without an ASGI twin: pipelining, request bodies held back or over the limit,
retries, access-log records and the client leaving mid-auth are the core's connection
handling (IngressASGI reads no body before the verdict and has no retries; its body tests are
in tests/test_asgi_extauth_s26.py); the verified-certificate headers need auth-tls-*, which
IngressASGI denies (503, no client certificate in ASGI); the parse-time refusal of framing
names (``parse_route_options``) is shared.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ingresslib import IngressASGI, Router, parse_manifests
from ingresslib._asgi_extauth import with_auth_headers
from ingresslib.proxy._settings import ProxySettings

from test_asgi_extauth_s26 import _core, lines, manifests

P = "nginx.ingress.kubernetes.io/"
ALLOW = b"HTTP/1.1 200 OK\r\nX-User: alice\r\nContent-Length: 0\r\n\r\n"
DENY = b"HTTP/1.1 403 No\r\nContent-Length: 0\r\n\r\n"
UNDERSCORES = ProxySettings(enable_underscores_in_headers=True)
#: The client (127.0.0.1) is a trusted hop.
TRUSTED = ProxySettings(use_forwarded_headers=True, proxy_real_ip_cidr=("127.0.0.0/8",))


class Service:
    """An auth service on 127.0.0.1 writing ``reply`` whole; with ``hold`` it then keeps the
    connection open until the client closes it (or 3 s pass)."""

    def __init__(self, reply: bytes | None, hold: bool = False) -> None:
        self.reply = reply
        self.hold = hold
        self.heads: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> Service:
        async def client(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                self.heads.append(await r.readuntil(b"\r\n\r\n"))
                if self.reply is not None:
                    w.write(self.reply)
                    await w.drain()
                if self.hold:
                    await asyncio.wait_for(r.read(), 3.0)
            except Exception:
                pass
            finally:
                w.close()
        self.server = await asyncio.start_server(client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self.server is not None
        self.server.close()


class Result:
    def __init__(self) -> None:
        self.scopes: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []
        self.auth_heads: list[bytes] = []

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    def header(self, name: bytes) -> list[bytes]:
        return [bytes(v) for n, v in self.sent[0].get("headers") or () if bytes(n).lower() == name]

    def app_headers(self) -> list[tuple[bytes, bytes]]:
        return [(bytes(n), bytes(v)) for n, v in self.scopes[0]["headers"]]

    def app_header(self, name: bytes) -> list[bytes]:
        return [v for n, v in self.app_headers() if n.lower() == name]

    @property
    def auth_head(self) -> bytes:
        [head] = self.auth_heads
        return head


def ask(reply: bytes | None, head: list[tuple[bytes, bytes]], ann: dict[str, str] | None = None,
        *, hold: bool = False, method: str = "GET", raw_path: bytes = b"/a",
        query: bytes = b"", settings: ProxySettings | None = None,
        within: float = 5.0) -> Result:
    """One request through IngressASGI to an auth service answering ``reply`` (route
    annotations: auth-url, ``auth-response-headers: X-User``, ``ann``), bounded by
    ``within`` seconds."""
    res = Result()

    async def backend(scope: Any, receive: Any, send: Any) -> None:
        res.scopes.append(scope)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(m: Any) -> None:
        res.sent.append(dict(m))

    async def go() -> None:
        async with Service(reply, hold) as auth:
            text = manifests(auth.port, {P + "auth-response-headers": "X-User", **(ann or {})})
            kw: dict[str, Any] = {} if settings is None else {"settings": settings}
            app = IngressASGI(Router(parse_manifests(text)), {"default/web": backend},
                              request_id=lambda: "0" * 32, **kw)
            scope: dict[str, Any] = {
                "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                "scheme": "http", "method": method, "path": raw_path.decode("latin-1"),
                "raw_path": raw_path, "query_string": query, "root_path": "",
                "headers": [(b"host", b"app.test"), *head], "client": ("127.0.0.1", 40000),
                "server": ("127.0.0.1", 80), "extensions": {}}
            await asyncio.wait_for(app(scope, receive, send), within)
            res.auth_heads = auth.heads
    asyncio.run(go())
    return res


# ------------------------------------------------------------------ the subrequest's headers
def test_subrequest_passes_a_trusted_hops_forwarded_headers() -> None:
    # Before: IngressASGI's subrequest_head got trusted=False whatever the settings: a trusted
    # hop's X-Forwarded-Host (which the core passes, as nginx) never reached the auth service.
    fwd = [(b"x-forwarded-host", b"front.test"), (b"x-forwarded-uri", b"/orig"),
           (b"x-forwarded-method", b"PUT")]
    raw = ask(ALLOW, fwd, settings=TRUSTED).auth_head
    assert b"x-forwarded-host: front.test\r\n" in raw and b"x-forwarded-uri: /orig\r\n" in raw
    assert b"x-forwarded-method: PUT\r\n" in raw
    # From a peer outside proxy-real-ip-cidr, or without use-forwarded-headers: dropped.
    for settings in (ProxySettings(use_forwarded_headers=True,
                                   proxy_real_ip_cidr=("10.0.0.0/8",)),
                     ProxySettings(proxy_real_ip_cidr=("127.0.0.0/8",)), None):
        raw = ask(ALLOW, fwd, settings=settings).auth_head.lower()
        assert b"front.test" not in raw and b"/orig" not in raw and b"x-forwarded-method" \
            not in raw


def test_subrequest_drops_untrusted_forwarded_and_original_headers() -> None:
    raw = ask(ALLOW, [(b"x-original-uri", b"/public"), (b"x-forwarded-host", b"evil.test"),
                      (b"x-scheme", b"https"), (b"x-forwarded-uri", b"/public"),
                      (b"x-forwarded-method", b"GET")], raw_path=b"/admin").auth_head.lower()
    assert b"/public" not in raw and b"evil.test" not in raw and b"x-scheme" not in raw
    assert b"x-forwarded-method" not in raw and b"x-original-url: http://app.test/admin\r\n" in raw


def test_subrequest_underscore_names_follow_the_settings() -> None:
    # nginx's defaults (ignore_invalid_headers, no underscores): an odd name never reaches the
    # auth service, nor Proxy.
    head = [(b"X_Original_URL", b"http://app.test/public"), (b"X.Odd", b"1"),
            (b"Proxy", b"http://evil.test"), (b"Cookie", b"c=1")]
    raw = ask(ALLOW, head, raw_path=b"/admin").auth_head
    assert b"public" not in raw and b"X.Odd" not in raw and b"evil" not in raw
    assert b"x-original-url: http://app.test/admin\r\n" in raw and b"Cookie: c=1\r\n" in raw
    # enable-underscores-in-headers: another underscore name passes (before: IngressASGI gave
    # subrequest_head no settings, nginx's defaults, and dropped it); the underscore spelling
    # of a header the subrequest sets is still dropped.
    head = [(b"X_Original_URL", b"http://app.test/public"), (b"X_Real_IP", b"1.2.3.4"),
            (b"X_Tenant", b"blue")]
    raw = ask(ALLOW, head, raw_path=b"/admin", settings=UNDERSCORES).auth_head
    assert b"public" not in raw and b"1.2.3.4" not in raw and b"X_Tenant: blue\r\n" in raw
    # ignore-invalid-headers off: an odd name passes, as nginx passes it.
    raw = ask(ALLOW, [(b"X.Odd", b"1")],
              settings=ProxySettings(ignore_invalid_headers=False)).auth_head
    assert b"X.Odd: 1\r\n" in raw


def test_subrequest_never_carries_client_sent_certificate_headers() -> None:
    raw = ask(ALLOW, [(b"ssl-client-verify", b"SUCCESS"),
                      (b"SSL-Client-Subject-DN", b"CN=admin")]).auth_head.lower()
    assert b"ssl-client" not in raw and b"admin" not in raw


def test_hostile_host_and_target_in_x_original_url() -> None:
    # An absolute-form target is reported by its path; a second Host or a '#' in the target
    # is a 400 before the auth service is asked.
    res = ask(ALLOW, [], raw_path=b"http://app.test/a", query=b"b=1")
    assert res.status == 200
    assert b"x-original-url: http://app.test/a?b=1\r\n" in res.auth_head
    for head, raw_path in (([(b"host", b"evil.test")], b"/"), ([], b"/a#b")):
        res = ask(ALLOW, head, raw_path=raw_path)
        assert res.status == 400 and not res.auth_heads and not res.scopes


def test_head_request_and_signin_redirect_escaping() -> None:
    res = ask(b"HTTP/1.1 401 No\r\nContent-Length: 3\r\n\r\nno!", [],
              {P + "auth-signin": "https://login.test/start"}, method="HEAD",
              raw_path=b"/a%20b/%23x", query=b"q=%0d%0a")
    assert res.status == 302 and not res.scopes
    assert res.header(b"location") == [b"https://login.test/start?rd=http://app.test%2Fa%2520b"
                                       b"%2F%2523x%3Fq%3D%250d%250a"]
    assert res.auth_head.startswith(b"GET /oauth2/auth?x=1 HTTP/1.1\r\n")
    assert b"x-original-method: HEAD\r\n" in res.auth_head


# ------------------------------------------------------------------ auth-response-headers
def test_underscore_spelling_of_an_auth_response_header_is_dropped() -> None:
    # enable-underscores-in-headers: the client's "X_User" is HTTP_X_USER to a WSGI app under
    # the ASGI one, as the auth service's X-User is. Before: the app got both.
    res = ask(ALLOW, [(b"x_user", b"mallory"), (b"x_other", b"1")], settings=UNDERSCORES)
    assert res.status == 200
    assert res.app_header(b"x-user") == [b"alice"] and res.app_header(b"x_user") == []
    assert res.app_header(b"x_other") == [b"1"]
    # The auth answer has no X-User: the client's spelling is still dropped.
    res = ask(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", [(b"x_user", b"mallory")],
              settings=UNDERSCORES)
    assert res.status == 200 and b"mallory" not in repr(res.app_headers()).encode()


def test_with_auth_headers_refuses_framing_names_given_directly() -> None:
    # Before: an ASGI header list got a second content-length (the auth answer's "0") next to
    # the client's; parse_route_options refuses such a name, with_auth_headers did not.
    headers = [(b"host", b"a"), (b"content-length", b"5")]
    assert with_auth_headers(headers, ((b"Content-Length", b"0"),)) == headers
    assert with_auth_headers(headers, ((b"Transfer-Encoding", b"chunked"),
                                       (b"Connection", b"close"), (b"X-User", b"a"))) \
        == [*headers, (b"x-user", b"a")]
    # A str name of the scope (asgiref's are bytes; a server may give str) in any spelling.
    assert with_auth_headers([("X_User", "m"), ("Cookie", "c")], ((b"X-User", b"a"),)) \
        == [("Cookie", "c"), (b"x-user", b"a")]


def test_framing_headers_of_the_auth_answer_never_reach_the_app() -> None:
    res = ask(ALLOW, [(b"content-length", b"5")], {P + "auth-response-headers":
                                                     "Content-Length, X-User"}, method="POST")
    assert res.status == 200 and res.app_header(b"content-length") == [b"5"]
    assert res.app_header(b"x-user") == [b"alice"]
    res = ask(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: upgrade\r\n\r\n"
              b"0\r\n\r\n", [(b"content-length", b"5")],
              {P + "auth-response-headers": "Transfer-Encoding,Connection"}, method="POST")
    assert res.status == 200
    names = [n.lower() for n, _ in res.app_headers()]
    assert b"transfer-encoding" not in names and b"connection" not in names


def test_auth_answer_header_read_as_nginx_upstream_http_variable() -> None:
    res = ask(b"HTTP/1.1 200 OK\r\nX_User: bob\r\nContent-Length: 0\r\n\r\n", [])
    assert res.status == 200 and res.app_header(b"x-user") == [b"bob"]


# ------------------------------------------------------------------ the auth service's answer
def test_auth_answer_with_cr_or_nul_or_huge_head_is_500() -> None:
    for reply in (b"HTTP/1.1 200 OK\r\nX-User: a\x00b\r\nContent-Length: 0\r\n\r\n",
                  b"HTTP/1.1 200 OK\r\nX-User: a\rb\r\nContent-Length: 0\r\n\r\n",
                  # Before: 200. A head over max_response_header_size (64 KiB) read in two
                  # reads (the reader refuses only a buffered incomplete head over it), and
                  # 1xx heads adding up to it.
                  b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n",
                  (b"HTTP/1.1 103 Early Hints\r\nLink: " + b"b" * 900 + b"\r\n\r\n") * 80
                  + ALLOW):
        res = ask(reply, [])
        assert res.status == 500 and not res.scopes, reply[:40]
    # Under the limit, 1xx heads are read past.
    res = ask((b"HTTP/1.1 103 Early Hints\r\nLink: " + b"b" * 900 + b"\r\n\r\n") * 8 + ALLOW, [])
    assert res.status == 200 and res.app_header(b"x-user") == [b"alice"]


def test_101_from_the_auth_service_is_500_at_once() -> None:
    # nginx takes a 101 as the subrequest's final status ("auth request unexpected status"):
    # 500 at once. Before: IngressASGI read on past it until proxy-read-timeout (60 s here),
    # then answered 500; the bound below is far under that.
    res = ask(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n"
              + ALLOW, [], hold=True, within=2.0)
    assert res.status == 500 and not res.scopes


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
        res = ask(reply, [])
        assert res.status == want, reply
        assert bool(res.scopes) == (want == 200) and len(res.sent) == 2


def test_auth_answer_cut_short_or_closed_silently_is_500() -> None:
    for reply in (b"HTTP/1.1 200 O", b"", b"HTTP/1.1 200 OK\r\nX-User: a\r\n"):
        res = ask(reply, [])
        assert res.status == 500 and not res.scopes, reply


# ------------------------------------------------------------------ agreement with the core
def test_proxy_and_asgi_agree_on_hostile_client_headers() -> None:
    # tests/test_asgi_extauth_s26.py's agreement test, with the client headers the review is
    # about, under the settings that change their fate: the same subrequest (header order
    # aside), the same status, the same auth-response-headers for the app as for the backend.
    client = [(b"X-User", b"forged"), (b"X_User", b"mallory"), (b"X_Tenant", b"blue"),
              (b"X_Original_URL", b"http://app.test/public"), (b"X.Odd", b"1"),
              (b"X-Forwarded-Host", b"front.test"), (b"X-Original-URI", b"/public"),
              (b"X-Forwarded-Uri", b"/public"), (b"ssl-client-verify", b"SUCCESS"),
              (b"Proxy", b"http://evil.test"), (b"Cookie", b"c=1")]
    both = ProxySettings(use_forwarded_headers=True, proxy_real_ip_cidr=("127.0.0.0/8",),
                         enable_underscores_in_headers=True)
    replies = [ALLOW, b"HTTP/1.1 200 OK\r\nX_User: bob\r\nContent-Length: 0\r\n\r\n",
               b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n" + ALLOW,
               (b"HTTP/1.1 103 Early Hints\r\nLink: " + b"b" * 900 + b"\r\n\r\n") * 80 + ALLOW]
    for reply in replies:
        for settings in (ProxySettings(), TRUSTED, UNDERSCORES, both):
            res = ask(reply, client, settings=settings, raw_path=b"/p", hold=True)
            wire = (b"GET /p HTTP/1.1\r\nHost: app.test\r\n"
                    + b"".join(n + b": " + v + b"\r\n" for n, v in client) + b"\r\n")
            # (The core is not connected: the auth-url's port is not in the subrequest.)
            sub, answer, backend = _core(
                manifests(1, {P + "auth-response-headers": "X-User"}), wire, reply, settings)
            assert sorted(lines(res.auth_head).items()) == sorted(lines(sub).items()), \
                (settings, res.auth_head, sub)
            assert res.status == int(answer.split(b" ")[1]), (reply[:20], settings)
            assert bool(res.scopes) == bool(backend)
            if backend:
                up = lines(backend.partition(b"\r\n\r\n")[0])
                got: dict[bytes, list[bytes]] = {}
                for n, v in res.app_headers():
                    got.setdefault(n.lower(), []).append(v)
                for name in (b"x-user", b"x_user", b"x_tenant", b"x-forwarded-host"):
                    assert got.get(name, []) == up.get(name, []), (name, settings, got, up)
