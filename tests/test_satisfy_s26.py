"""``satisfy: any`` (and ``all``), session 26 round 4: how a location's access checks combine.

Before: ingresslib failed closed on ``satisfy`` (an access annotation it could not apply: the
Ingress's routes answered 503). Now the proxy core (``Proxy.connection``) and IngressASGI apply
nginx's access phase as ingress-nginx writes it (proxy/_satisfy.py):

- nginx ngx_http_core_module.c ``ngx_http_core_access_phase``: under ``satisfy any`` a
  handler's NGX_OK lets the request through at once; 403/401 are remembered (a 401 is never
  replaced by a 403), NGX_DECLINED goes on; ``ngx_http_core_post_access_phase`` answers the
  remembered code with every WWW-Authenticate added;
- the handlers' order (auto/modules + ``ngx_http_init_phase_handlers``, last pushed first):
  allow/deny, auth_basic, auth_request;
- ngx_http_access_module: no rule matching the address is NGX_DECLINED (a denylist alone never
  lets anyone in by itself);
- satisfy/main.go ``Parse``: "any" or "all", anything else the default (all).

Each case runs through the sans-IO core and through IngressASGI (a real auth service on
127.0.0.1, port 0) and both must give the same answer (``agree``).
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import h11
import pytest

from ingresslib import IngressASGI, Router, parse_manifests
from ingresslib.proxy import ProxySettings
from ingresslib.proxy._annotations import IMPLEMENTED, parse_route_options

from _proxy_harness import (FakeUpstream, ProxyPair, Reply, ingress_yaml, ok, status_of,
                            web_service_yaml)

P = "nginx.ingress.kubernetes.io/"
IN, OUT = "10.1.2.3", "192.0.2.9"
ALLOW = {P + "allowlist-source-range": "10.1.0.0/16"}
BASIC = {P + "auth-type": "basic", P + "auth-secret": "users", P + "auth-realm": "R"}
CHALLENGE = b'Basic realm="R"'
GOOD = [(b"authorization", b"Basic " + base64.b64encode(b"alice:pw"))]
BAD = [(b"authorization", b"Basic " + base64.b64encode(b"alice:nope"))]
ANY = {P + "satisfy": "any"}
ALL = {P + "satisfy": "all"}
A200 = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
A401 = b"HTTP/1.1 401 No\r\nWWW-Authenticate: Bearer x\r\nContent-Length: 0\r\n\r\n"
A403 = b"HTTP/1.1 403 No\r\nContent-Length: 0\r\n\r\n"
A500 = b"HTTP/1.1 500 No\r\nContent-Length: 0\r\n\r\n"
WEB = ("10.0.0.1", 80)

SECRET = f"""
---
apiVersion: v1
kind: Secret
metadata: {{name: users, namespace: default}}
type: Opaque
data: {{auth: {base64.b64encode(b"alice:{PLAIN}pw").decode()}}}
"""


def _text(annotations: dict[str, str], port: int = 4180, url: bool = False,
          extra: str = "") -> str:
    ann = dict(annotations)
    if url:
        ann[P + "auth-url"] = f"http://127.0.0.1:{port}/auth"
    return ingress_yaml("site", "app.test", ann) + extra + web_service_yaml() + SECRET


class Answer:
    """What a client got: the status, its WWW-Authenticate values, its Location, whether the
    auth service was asked and whether the backend was reached."""

    def __init__(self, status: int, challenges: list[bytes], location: bytes | None,
                 asked: bool, proxied: bool) -> None:
        self.status, self.challenges, self.location = status, challenges, location
        self.asked, self.proxied = asked, proxied

    def key(self) -> tuple[Any, ...]:
        return self.status, self.challenges, self.location, self.asked, self.proxied

    def __repr__(self) -> str:
        return f"Answer{self.key()!r}"


def _core(text: str, client: str, head: list[tuple[bytes, bytes]], reply: bytes | None,
          port: int = 4180, settings: ProxySettings | None = None) -> Answer:
    auth = ("127.0.0.1", port)

    def app(request: h11.Request, data: bytes, up: FakeUpstream) -> Reply | None:
        if up.endpoint == auth:
            assert reply is not None, "the auth service was not to be asked"
            return Reply(reply)
        return ok(b"ok")
    p = ProxyPair(router=Router(parse_manifests(text)), app=app, peer=(client, 40000),
                  settings=settings)
    lines = b"".join(n + b": " + v + b"\r\n" for n, v in head)
    out = p.send(b"GET /a HTTP/1.1\r\nHost: app.test\r\n" + lines + b"\r\n")
    status = status_of(out)
    headers = [line.split(b":", 1) for line in out.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]]
    got = {}
    challenges = [v.strip() for n, v in headers if n.lower() == b"www-authenticate"]
    location = next((v.strip() for n, v in headers if n.lower() == b"location"), None)
    got["asked"] = any(u.endpoint == auth for u in p.upstreams)
    got["proxied"] = any(u.endpoint == WEB for u in p.upstreams)
    return Answer(status, challenges, location, got["asked"], got["proxied"])


class _AuthService:
    def __init__(self, reply: bytes | None) -> None:
        self.reply = reply
        self.heads = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        async def client(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                await r.readuntil(b"\r\n\r\n")
                self.heads += 1
                w.write(self.reply or A500)
                await w.drain()
            finally:
                w.close()
        self.server = await asyncio.start_server(client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]


async def _asgi_call(text: str, client: str, head: list[tuple[bytes, bytes]],
                     service: _AuthService | None) -> Answer:
    sent: list[dict[str, Any]] = []
    reached: list[bool] = []

    async def backend(scope: Any, receive: Any, send: Any) -> None:
        reached.append(True)
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(m: Any) -> None:
        sent.append(dict(m))

    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "scheme": "http",
        "method": "GET", "path": "/a", "raw_path": b"/a", "query_string": b"",
        "root_path": "", "headers": [(b"host", b"app.test"), *head],
        "client": (client, 40000), "server": ("127.0.0.1", 80), "extensions": {}}
    app = IngressASGI(Router(parse_manifests(text)), {"default/web": backend},
                      request_id=lambda: "0" * 32)
    await app(scope, receive, send)
    hs = [(bytes(n).lower(), bytes(v)) for n, v in sent[0].get("headers") or ()]
    return Answer(int(sent[0]["status"]), [v for n, v in hs if n == b"www-authenticate"],
                  next((v for n, v in hs if n == b"location"), None),
                  bool(service is not None and service.heads), bool(reached))


def agree(annotations: dict[str, str], client: str, head: list[tuple[bytes, bytes]],
          reply: bytes | None = None, url: bool = False) -> Answer:
    """The core's answer, checked equal to IngressASGI's (auth-url ``url``: the service
    answers ``reply``)."""
    async def go() -> tuple[Answer, Answer]:
        service = None
        port = 4180
        if url:
            service = _AuthService(reply)
            await service.start()
            port = service.port
        try:
            text = _text(annotations, port, url)
            core = _core(text, client, head, reply, port)
            asgi = await _asgi_call(text, client, head, service)
        finally:
            if service is not None and service.server is not None:
                service.server.close()
        return core, asgi
    core, asgi = asyncio.run(go())
    assert core.key() == asgi.key(), (core, asgi)
    return core


# ------------------------------------------------------------------------- annotation
def test_satisfy_is_implemented_and_parsed() -> None:
    assert "satisfy" in IMPLEMENTED
    for value, want in (("any", True), (" any ", True), ("all", False)):
        opts = parse_route_options({**ALLOW, P + "satisfy": value}, "/", ProxySettings(),
                                   where="Ingress default/site")
        assert opts.warnings == () and opts.access is not None
        assert opts.access.denied is None
        assert (opts.access.any is not None) is want, value


@pytest.mark.parametrize("value", ["Any", "ANY", "some", "", "any,all", "any\n"])
def test_invalid_value_warns_and_keeps_all(value: str) -> None:
    # satisfy/main.go: "if err != nil || (satisfy != "any" && satisfy != "all") { satisfy =
    # "" }": no satisfy line, nginx's default satisfy all; the location is not denied.
    opts = parse_route_options({**ALLOW, P + "satisfy": value}, "/", ProxySettings(),
                               where="Ingress default/site")
    assert opts.access is not None and opts.access.denied is None and opts.access.any is None
    [warning] = opts.warnings
    assert f"annotation {P}satisfy: invalid value" in warning and "default all" in warning


def test_invalid_value_serves_as_all() -> None:
    got = agree({**ALLOW, **BASIC, P + "satisfy": "Any"}, IN, [])
    assert got.status == 401 and got.challenges == [CHALLENGE]
    assert agree({**ALLOW, **BASIC, P + "satisfy": "Any"}, IN, GOOD).status == 200


def test_canary_satisfy_is_ignored() -> None:
    opts = parse_route_options({P + "canary": "true", P + "canary-weight": "100", **ANY},
                               "/", ProxySettings(), where="Ingress default/c",
                               main_annotations={})
    [warning] = opts.warnings
    assert "ignored on a canary Ingress" in warning and "not implemented" not in warning
    assert opts.access is None
    # Canary traffic gets the main Ingress's access control (satisfy all there).
    canary = ingress_yaml("canary", "app.test", {P + "canary": "true",
                                                  P + "canary-weight": "100", **ANY})
    text = _text({**ALLOW, **BASIC}, extra=canary)
    got = _core(text, IN, [], None)
    assert got.status == 401 and not got.proxied
    assert _core(text, OUT, GOOD, None).status == 403


# ------------------------------------------------------------------------- allowlist + basic
@pytest.mark.parametrize("client, head, want", [
    (IN, [], 200),              # the allowlist lets it in: no password asked
    (IN, BAD, 200),
    (OUT, GOOD, 200),           # valid credentials let in an address the allowlist refuses
    (OUT, [], 401),
    (OUT, BAD, 401),
])
def test_allowlist_and_basic_any(client: str, head: list[tuple[bytes, bytes]],
                                 want: int) -> None:
    got = agree({**ALLOW, **BASIC, **ANY}, client, head)
    assert got.status == want and got.proxied is (want == 200)
    # A 401 carries basic authentication's challenge (the remembered 403 became 401).
    assert got.challenges == ([CHALLENGE] if want == 401 else [])


@pytest.mark.parametrize("extra", [{}, ALL])
def test_allowlist_and_basic_all(extra: dict[str, str]) -> None:
    got = agree({**ALLOW, **BASIC, **extra}, IN, [])
    assert got.status == 401 and got.challenges == [CHALLENGE]
    assert agree({**ALLOW, **BASIC, **extra}, OUT, GOOD).status == 403
    assert agree({**ALLOW, **BASIC, **extra}, IN, GOOD).status == 200


def test_denylist_alone_allows_nobody_under_any() -> None:
    # ngx_http_access_module: an address no rule matches is NGX_DECLINED, not NGX_OK: the
    # password is still asked; a denied address with valid credentials gets in.
    deny = {P + "denylist-source-range": "192.0.2.0/24", **BASIC, **ANY}
    got = agree(deny, IN, [])
    assert got.status == 401 and got.challenges == [CHALLENGE]
    assert agree(deny, IN, GOOD).status == 200
    assert agree(deny, OUT, GOOD).status == 200
    got = agree(deny, OUT, [])
    assert got.status == 401 and got.challenges == [CHALLENGE]


def test_block_cidrs_stay_absolute() -> None:
    # ingresslib's choice (README): block-cidrs refuses whatever satisfy says.
    text = _text({**ALLOW, **BASIC, **ANY})
    settings = ProxySettings(block_cidrs=("192.0.2.0/24",))
    assert _core(text, OUT, GOOD, None, settings=settings).status == 403
    assert _core(text, "198.51.100.1", GOOD, None, settings=settings).status == 200
    assert _core(text, IN, [], None, settings=settings).status == 200


# ------------------------------------------------------------------------- allowlist + auth-url
@pytest.mark.parametrize("client, reply, want, asked", [
    (IN, A403, 200, False),     # allowed by the allowlist: the auth service is not asked
    (OUT, A200, 200, True),     # the auth service's 2xx lets in a refused address
    (OUT, A403, 403, True),
    (OUT, A500, 500, True),
])
def test_allowlist_and_auth_url_any(client: str, reply: bytes, want: int,
                                    asked: bool) -> None:
    got = agree({**ALLOW, **ANY}, client, [], reply, url=True)
    assert (got.status, got.asked, got.proxied) == (want, asked, want == 200)
    assert got.challenges == []


def test_allowlist_and_auth_url_any_401_has_the_services_challenge() -> None:
    got = agree({**ALLOW, **ANY}, OUT, [], A401, url=True)
    assert got.status == 401 and got.challenges == [b"Bearer x"] and got.asked


def test_allowlist_and_auth_url_all() -> None:
    got = agree({**ALLOW}, OUT, [], A200, url=True)
    assert got.status == 403 and not got.asked
    got = agree({**ALLOW, **ALL}, IN, [], A403, url=True)
    assert got.status == 403 and got.asked


# ------------------------------------------------------------------------- basic + auth-url
def test_basic_and_auth_url_any() -> None:
    got = agree({**BASIC, **ANY}, OUT, GOOD, A403, url=True)
    assert got.status == 200 and not got.asked  # auth_basic's OK ends the phase
    got = agree({**BASIC, **ANY}, OUT, [], A200, url=True)
    assert got.status == 200 and got.asked
    # basic's 401 is remembered; the service's 403 does not replace it.
    got = agree({**BASIC, **ANY}, OUT, [], A403, url=True)
    assert got.status == 401 and got.challenges == [CHALLENGE]
    # Both 401: both challenges, basic authentication's first (its handler ran first).
    got = agree({**BASIC, **ANY}, OUT, BAD, A401, url=True)
    assert got.status == 401 and got.challenges == [CHALLENGE, b"Bearer x"]
    # Any other status of the auth service is its 500, answered at once.
    got = agree({**BASIC, **ANY}, OUT, [], A500, url=True)
    assert got.status == 500 and got.challenges == []


def test_basic_and_auth_url_all() -> None:
    got = agree({**BASIC}, OUT, [], A200, url=True)
    assert got.status == 401 and not got.asked
    got = agree({**BASIC}, OUT, GOOD, A403, url=True)
    assert got.status == 403 and got.asked


def test_signin_takes_the_final_401() -> None:
    # nginx.tmpl's "error_page 401 = @<signin location>": the phase's 401 becomes its 302,
    # whichever handler answered 401.
    ann = {**BASIC, **ANY, P + "auth-signin": "https://login.test/start"}
    got = agree(ann, OUT, [], A403, url=True)
    assert got.status == 302 and got.location is not None
    assert got.location.startswith(b"https://login.test/start?rd=")


# ------------------------------------------------------------------------- all three
@pytest.mark.parametrize("client, head, reply, want, asked", [
    (IN, [], A403, 200, False),
    (OUT, GOOD, A403, 200, False),
    (OUT, [], A200, 200, True),
    (OUT, [], A403, 401, True),
    (OUT, BAD, A401, 401, True),
])
def test_all_three_any(client: str, head: list[tuple[bytes, bytes]], reply: bytes, want: int,
                       asked: bool) -> None:
    got = agree({**ALLOW, **BASIC, **ANY}, client, head, reply, url=True)
    assert (got.status, got.asked, got.proxied) == (want, asked, want == 200)


def test_all_three_all() -> None:
    assert agree({**ALLOW, **BASIC}, OUT, GOOD, A200, url=True).status == 403
    got = agree({**ALLOW, **BASIC}, IN, [], A200, url=True)
    assert got.status == 401 and not got.asked
    got = agree({**ALLOW, **BASIC}, IN, GOOD, A200, url=True)
    assert got.status == 200 and got.asked


def test_password_hashed_off_the_loop_only_when_basic_decides(monkeypatch: Any) -> None:
    # A driver that opted in (ProxyServer: ``offload=True``) gets the password hashing as an
    # ``Offload`` (``access_job``): under satisfy any, for an address the allowlist refuses;
    # never for one it admits (auth_basic does not run).
    from ingresslib.proxy import Offload, OpenUpstream, Proxy, SendDownstream
    from ingresslib.proxy import _basicauth, _htpasswd

    monkeypatch.setattr(_basicauth, "_GOOD", _basicauth._Verdicts(_basicauth._CACHE_MAX))
    monkeypatch.setattr(_basicauth, "_BAD", _basicauth._Verdicts(_basicauth._CACHE_MAX))
    stored = _htpasswd.sha_crypt(b"pw", "$6$saltsalt$") or ""
    secret = SECRET.replace(base64.b64encode(b"alice:{PLAIN}pw").decode(),
                            base64.b64encode(f"alice:{stored}".encode()).decode())
    text = ingress_yaml("site", "app.test", {**ALLOW, **BASIC, **ANY}) + web_service_yaml() \
        + secret
    proxy = Proxy(Router(parse_manifests(text)))
    get = b"GET /a HTTP/1.1\r\nHost: app.test\r\nAuthorization: %s\r\n\r\n" % GOOD[0][1]
    conn = proxy.connection((IN, 5000), now=0.0, offload=True)
    conn.start(0.0)
    out = conn.receive_data(get, 0.0)
    assert not any(isinstance(a, Offload) for a in out)
    assert any(isinstance(a, OpenUpstream) for a in out)
    conn = proxy.connection((OUT, 5000), now=0.0, offload=True)
    conn.start(0.0)
    out = conn.receive_data(get, 0.0)
    assert [type(a) for a in out] == [Offload]
    out[0].job()
    out = conn.offload_done(0.1)
    assert any(isinstance(a, OpenUpstream) for a in out)
    assert not any(isinstance(a, SendDownstream) for a in out)


def test_any_without_other_checks_changes_nothing() -> None:
    assert agree(ANY, OUT, []).status == 200
    got = agree(ANY, OUT, [], A403, url=True)
    assert got.status == 403 and got.asked
