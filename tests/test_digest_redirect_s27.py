"""Session 27 (H6): ``auth-type: digest``'s evasion (``auth_digest_maxtries``) and its
``Authentication-Info``, and the ssl-redirect Location's host as the client wrote it.

References (search corpus "code", atomx/nginx-http-auth-digest as packaged by Debian,
rickysarraf-notmine/libnginx-mod-http-auth-digest ``ngx_http_auth_digest_module.c``):

- ``ngx_http_auth_digest_merge_loc_conf``: ``maxtries`` 5, ``evasion_time`` 300 s.
- ``ngx_http_auth_digest_handler``: "if (ngx_http_auth_digest_evading(r, alcf)) { return
  NGX_HTTP_UNAUTHORIZED; }" before the header is read (a 401 without any challenge); a header
  the parser refuses, or of another realm, gets ``send_challenge`` without tracking; a header
  no line of the file admits ends with ``evasion_tracking(..., FAILURE)`` (a stale nonce or an
  ``nc`` out of range included), one a line admits with ``evasion_tracking(..., SUCCESS)``.
- ``ngx_http_auth_digest_evasion_tracking``: keyed by ``r->connection->sockaddr``; a failure:
  "if (ngx_time() > node->drop_time) { node->failcount = 1; } else { node->failcount += 1; }
  node->drop_time = ngx_time() + alcf->evasion_time;"; a success: "node->failcount = 0;
  node->drop_time = ngx_time();".
- ``ngx_http_auth_digest_evading``: "node->failcount >= alcf->maxtries && ngx_time() <
  node->drop_time".
- ``ngx_http_auth_digest_verify_hash``, on success: ``Authentication-Info: qop="auth",
  rspauth="%s", cnonce="%s", nc=%s`` with rspauth = MD5(HA1:nonce:nc:cnonce:qop:MD5(":" uri)).
- kubernetes/ingress-nginx rootfs/etc/nginx/lua/lua_ingress.lua: ``ngx.var.best_http_host =
  ngx.var.http_host or ngx.var.host`` and ``redirect_host()``: ``ngx_re_split(
  ngx.var.best_http_host, ":")``, ``return host_port[1]``: ``$http_host`` is the Host header
  as received (nginx lower-cases ``$host`` only).

Every expected value is computed here from those sources (RFC 2617's formulas), not from
ingresslib's output.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ingresslib._asgi import IngressASGI
from ingresslib._load import parse_manifests
from ingresslib._router import Router
from ingresslib.proxy import OpenUpstream, Proxy, ProxySettings, SendDownstream
from ingresslib.proxy import _digest

sys.path.insert(0, str(Path(__file__).parent))
from _proxy_harness import ProxyPair, Route, ingress_yaml, location  # noqa: E402
from test_access_control_s13 import SERVICE, _secret  # noqa: E402
from test_asgi_conformance import asgi_call  # noqa: E402
from test_digest_auth_s26 import (  # noqa: E402
    DIGEST, HTDIGEST, REALM, authorization, challenge_fields, ha1, manifests, md5)

P = "nginx.ingress.kubernetes.io/"
#: The client under test and another one (documentation ranges, RFC 5737).
ME, OTHER = "198.51.100.7", "198.51.100.8"


@pytest.fixture(autouse=True)
def _own_evasion_table(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A fresh per-process evasion table for each test (the tests' fake clocks would otherwise
    meet other tests' entries); nothing on the old tree, which has none."""
    fresh = getattr(_digest, "_Evasion", None)
    if fresh is not None:
        monkeypatch.setattr(_digest, "_EVASION", fresh())
    yield


UPSTREAM_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def _head(data: bytes) -> tuple[int, dict[bytes, bytes]]:
    lines = data.partition(b"\r\n\r\n")[0].split(b"\r\n")
    return int(lines[0].split(b" ")[1]), {n.strip().lower(): v.strip() for n, _, v in
                                          (ln.partition(b":") for ln in lines[1:])}


class Core:
    """The proxy core (``Proxy.connection``) at a chosen driver time and peer; a proxied
    request is answered ``UPSTREAM_OK`` by its upstream."""

    def __init__(self, m: str | None = None, settings: ProxySettings | None = None) -> None:
        self.proxy = Proxy(Router(parse_manifests(m or manifests()), seed=1), settings,
                           clock=None, request_id=lambda: "0" * 32)

    def ask(self, auth: str | None = None, *, now: float = 1000.0, peer: str = ME,
            target: str = "/") -> tuple[int, dict[bytes, bytes]]:
        head = f"GET {target} HTTP/1.1\r\nHost: a.test\r\n"
        if auth is not None:
            head += f"Authorization: {auth}\r\n"
        conn = self.proxy.connection((peer, 40000), tls=False, local_port=80, now=now)
        conn.start(now)
        acts = conn.receive_data((head + "Connection: close\r\n\r\n").encode(), now)
        for a in acts:
            if isinstance(a, SendDownstream):
                return _head(a.data)
        opened = [a for a in acts if isinstance(a, OpenUpstream)]
        assert opened, acts
        conn.upstream_connected(opened[0].conn_id, now)
        out = conn.upstream_data(opened[0].conn_id, UPSTREAM_OK, now)
        data = b"".join(a.data for a in out if isinstance(a, SendDownstream))
        return _head(data)

    def nonce(self, now: float = 1000.0) -> str:
        status, headers = self.ask(now=now, peer=OTHER)
        assert status == 401
        return challenge_fields(headers[b"www-authenticate"])["nonce"]


class Asgi:
    """IngressASGI, its ``limit_clock`` the fake clock, the scope's ``client`` the peer."""

    def __init__(self, m: str | None = None) -> None:
        self.time = 1000.0

        async def app(scope: Any, receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        self.app = IngressASGI(Router(parse_manifests(m or manifests()), seed=1),
                               backends={"default/web": app}, request_id=lambda: "0" * 32)
        self.app.limit_clock = lambda: self.time

    def ask(self, auth: str | None = None, *, now: float = 1000.0, peer: str = ME,
            target: str = "/") -> tuple[int, dict[bytes, bytes]]:
        self.time = now
        path, _, query = target.partition("?")
        headers = [(b"host", b"a.test")]
        if auth is not None:
            headers.append((b"authorization", auth.encode()))
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
                 "query_string": query.encode(), "root_path": "", "headers": headers,
                 "client": (peer, 40000), "server": ("127.0.0.1", 80)}
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(m: Any) -> None:
            sent.append(dict(m))

        asyncio.run(self.app(scope, receive, send))
        return int(sent[0]["status"]), {bytes(n).lower(): bytes(v)
                                        for n, v in sent[0].get("headers", [])}

    def nonce(self, now: float = 1000.0) -> str:
        status, headers = self.ask(now=now, peer=OTHER)
        assert status == 401
        return challenge_fields(headers[b"www-authenticate"])["nonce"]


DRIVERS = [Core, Asgi]
IDS = ["core", "asgi"]


def _refused_without_challenge(answer: tuple[int, dict[bytes, bytes]]) -> bool:
    return answer[0] == 401 and b"www-authenticate" not in answer[1]


def _challenged(answer: tuple[int, dict[bytes, bytes]]) -> bool:
    return answer[0] == 401 and answer[1].get(b"www-authenticate", b"").startswith(b"Digest ")


# -- 1. evasion -----------------------------------------------------------------------------------

@pytest.mark.parametrize("driver", DRIVERS, ids=IDS)
def test_five_failures_lock_the_address_out_valid_credentials_included(driver: Any) -> None:
    d = driver()
    nonce = d.nonce()
    for i in range(5):
        assert _challenged(d.ask(authorization(nonce, password="nope"), now=1000.0 + i))
    # The sixth request: the right password, refused, and no challenge to retry with.
    assert _refused_without_challenge(d.ask(authorization(nonce), now=1005.0))
    assert _refused_without_challenge(d.ask(now=1005.0))  # no header: no challenge either
    # Another address is not concerned: the same nonce passes for it.
    assert d.ask(authorization(nonce), now=1005.0, peer=OTHER)[0] == 200
    # Until 300 s after the last failure (1004 + 300), even a fresh nonce does not help.
    fresh = d.nonce(now=1303.0)
    assert _refused_without_challenge(d.ask(authorization(fresh), now=1303.5))
    fresh = d.nonce(now=1305.0)
    assert d.ask(authorization(fresh), now=1305.0)[0] == 200


@pytest.mark.parametrize("driver", DRIVERS, ids=IDS)
def test_a_success_clears_the_count(driver: Any) -> None:
    # (Half-second steps: the nonce stays good 10 s after its first use, at 1002.)
    d = driver()
    nonce = d.nonce()
    for i in range(4):
        assert _challenged(d.ask(authorization(nonce, password="nope"), now=1000.0 + i / 2))
    assert d.ask(authorization(nonce), now=1002.0)[0] == 200  # failcount = 0
    for i in range(4):
        assert _challenged(d.ask(authorization(nonce, password="x"), now=1002.5 + i / 2))
    assert d.ask(authorization(nonce, nc="00000002"), now=1004.5)[0] == 200
    for i in range(5):
        assert _challenged(d.ask(authorization(nonce, password="x"), now=1005.0 + i / 2))
    # Valid and not stale (1007.5 < 1012), refused: the fifth failure since the success.
    assert _refused_without_challenge(d.ask(authorization(nonce, nc="00000003"), now=1007.5))


@pytest.mark.parametrize("driver", DRIVERS, ids=IDS)
def test_a_failure_after_the_window_counts_from_one(driver: Any) -> None:
    d = driver()
    nonce = d.nonce()
    for i in range(4):
        assert _challenged(d.ask(authorization(nonce, password="nope"), now=1000.0 + i))
    # 1003 + 300 = 1303 passed: the count restarts at 1 (four more would be 5 otherwise).
    fresh = d.nonce(now=1304.0)
    for i in range(4):
        assert _challenged(d.ask(authorization(fresh, password="nope"), now=1304.0 + i))
    assert d.ask(authorization(fresh), now=1308.0)[0] == 200


@pytest.mark.parametrize("driver", DRIVERS, ids=IDS)
def test_headers_not_read_are_no_failure(driver: Any) -> None:
    # The module answers these with a challenge before its file is read: never tracked.
    d = driver()
    nonce = d.nonce()
    for i in range(3):
        for auth in (None, "Digest foo", "Basic YTpi", authorization(nonce, realm="Other"),
                     authorization("abc", password="nope")):
            assert _challenged(d.ask(auth, now=1000.0 + i))
    assert d.ask(authorization(nonce), now=1004.0)[0] == 200


@pytest.mark.parametrize("driver", DRIVERS, ids=IDS)
def test_nc_out_of_range_with_the_right_password_counts(driver: Any) -> None:
    # stale="true" comes only after the response verified: unlimited, it would tell a right
    # password from a wrong one. The module counts it as a failure.
    d = driver()
    nonce = d.nonce()
    for i in range(5):
        status, headers = d.ask(authorization(nonce, nc="00000020"), now=1000.0 + i)
        assert status == 401 and b'stale="true"' in headers[b"www-authenticate"]
    assert _refused_without_challenge(d.ask(authorization(nonce), now=1005.0))


def test_the_proxy_and_ingress_asgi_agree_on_a_sequence() -> None:
    def run(d: Any) -> list[tuple[int, bool, bool]]:
        nonce = d.nonce()
        steps = ([("bad", 1000.0 + i) for i in range(3)] + [("good1", 1003.0)]
                 + [("bad", 1004.0 + i) for i in range(5)] + [("good2", 1009.0), ("none", 1010.0)]
                 + [("bad", 1310.0), ("good3", 1311.0)])
        out = []
        for kind, now in steps:
            if kind == "bad":
                auth: str | None = authorization(nonce, password="nope")
            elif kind == "none":
                auth = None
            else:
                if kind == "good3":
                    nonce = d.nonce(now=now)
                auth = authorization(nonce, nc="0000000" + kind[-1])
            status, headers = d.ask(auth, now=now)
            out.append((status, b"www-authenticate" in headers,
                        b"authentication-info" in headers))
        return out

    core = run(Core())
    _digest._EVASION = _digest._Evasion()  # (the fixture restores the table afterwards)
    assert core == run(Asgi())
    assert core == ([(401, True, False)] * 3 + [(200, False, True)] + [(401, True, False)] * 5
                    + [(401, False, False)] * 2 + [(401, True, False), (200, False, True)])


def test_evasion_table_keys_and_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    table = _digest._Evasion()
    for i in range(5):
        table.failed("2001:db8::1", 100.0 + i)
    # One address however written (the module compares the sockaddr's bytes); IPv4 apart.
    assert table.evading("2001:DB8:0::1", 105.0) and not table.evading("192.0.2.1", 105.0)
    table.succeeded("2001:db8:0:0::1")
    assert not table.evading("2001:db8::1", 105.0) and len(table) == 0
    # No address (a Unix socket peer), or not one: never tracked.
    for i in range(10):
        table.failed(None, 100.0)
        table.failed("unix:/run/x", 100.0)
    assert len(table) == 0
    # Bounded: full of live entries, a new address is not tracked; expired ones leave first.
    monkeypatch.setattr(_digest, "_EVASION_MAX", 2)
    table.failed("192.0.2.1", 100.0)
    table.failed("192.0.2.2", 150.0)
    table.failed("192.0.2.3", 160.0)
    assert len(table) == 2
    for i in range(5):
        table.failed("192.0.2.3", 401.0 + i)  # 192.0.2.1's entry (drop 400) left
    assert table.evading("192.0.2.3", 406.0) and len(table) == 2


def test_verify_without_an_address_is_never_locked() -> None:
    from test_digest_auth_s26 import _digest_auth

    auth = _digest_auth()
    nonce = _digest.new_nonce(1000.0).decode()
    for _ in range(8):
        status, challenge = auth.verify(authorization(nonce, password="x").encode(), b"GET",
                                        b"/", 1000.0, None)
        assert status == 401 and challenge is not None


# -- 2. Authentication-Info -----------------------------------------------------------------------

def _info(nonce: str, *, nc: str = "00000001", cnonce: str = "0a4f113b", uri: str = "/") -> bytes:
    rspauth = md5(f"{ha1('alice', 'pw')}:{nonce}:{nc}:{cnonce}:auth:{md5(':' + uri)}")
    return f'qop="auth", rspauth="{rspauth}", cnonce="{cnonce}", nc={nc}'.encode()


@pytest.mark.parametrize("driver", DRIVERS, ids=IDS)
def test_authentication_info_on_the_proxied_response(driver: Any) -> None:
    d = driver()
    nonce = d.nonce()
    status, headers = d.ask(authorization(nonce, uri="/x?a=1"), target="/x?a=1")
    assert status == 200
    assert headers[b"authentication-info"] == _info(nonce, uri="/x?a=1")
    # Refusals carry none.
    status, headers = d.ask(authorization(nonce, password="no", nc="00000002"))
    assert status == 401 and b"authentication-info" not in headers


@pytest.mark.parametrize("driver", DRIVERS, ids=IDS)
def test_authentication_info_quotes_the_cnonce(driver: Any) -> None:
    d = driver()
    nonce = d.nonce()
    cnonce = 'a"b\\c'
    ha2 = md5("GET:/")
    response = md5(f"{ha1('alice', 'pw')}:{nonce}:00000001:{cnonce}:auth:{ha2}")
    auth = (f'Digest username="alice", realm="{REALM}", nonce="{nonce}", uri="/", qop=auth, '
            f'nc=00000001, cnonce="a\\"b\\\\c", response="{response}"')
    status, headers = d.ask(auth)
    assert status == 200
    rspauth = md5(f"{ha1('alice', 'pw')}:{nonce}:00000001:{cnonce}:auth:{md5(':/')}")
    assert headers[b"authentication-info"] == (
        f'qop="auth", rspauth="{rspauth}", cnonce="a\\"b\\\\c", nc=00000001'.encode())


@pytest.mark.parametrize("driver", DRIVERS, ids=IDS)
def test_authentication_info_on_a_later_local_answer(driver: Any) -> None:
    # A path no rule covers: the host's server location's digest auth, then the default
    # backend's 404, which carries the header (nginx's headers_out holds it).
    m = ingress_yaml("admin", "a.test", DIGEST, path="/admin") + SERVICE + _secret(
        "users", {"auth": HTDIGEST})
    d = driver(m)
    nonce = d.nonce()
    status, headers = d.ask(authorization(nonce, uri="/x"), target="/x")
    assert status == 404 and headers[b"authentication-info"] == _info(nonce, uri="/x")


@pytest.mark.parametrize("driver", DRIVERS, ids=IDS)
def test_authentication_info_under_satisfy_any(driver: Any) -> None:
    m = manifests(dict(DIGEST, **{P + "satisfy": "any",
                                  P + "allowlist-source-range": "192.0.2.0/24"}))
    d = driver(m)
    nonce = d.nonce()
    status, headers = d.ask(authorization(nonce))
    assert status == 200 and headers[b"authentication-info"] == _info(nonce)
    # Let in by the allowlist: digest did not run, no header.
    status, headers = d.ask(peer="192.0.2.5")
    assert status == 200 and b"authentication-info" not in headers


# -- 3. ssl-redirect: the host as the client wrote it ---------------------------------------------

TLS = {"example.test"}
ROUTED = [Route("/", host="example.test")]
UNROUTED = [Route("/api", host="example.test")]
TRUSTING = ProxySettings(use_forwarded_headers=True, proxy_real_ip_cidr=("203.0.113.7/32",))


@pytest.mark.parametrize("routes", [ROUTED, UNROUTED], ids=["routed", "unrouted"])
@pytest.mark.parametrize(("host", "want"), [
    (b"Example.TEST", b"https://Example.TEST/a/./b"),
    (b"Example.TEST:80", b"https://Example.TEST/a/./b"),
    (b"example.test.", b"https://example.test./a/./b"),   # $http_host keeps the final dot
])
def test_core_ssl_redirect_keeps_the_host_as_sent(routes: list[Route], host: bytes,
                                                 want: bytes) -> None:
    out = ProxyPair(routes, ProxySettings(), tls_hosts=TLS).send(
        b"GET /a/./b HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    assert location(out) == want


@pytest.mark.parametrize("routes", [ROUTED, UNROUTED], ids=["routed", "unrouted"])
def test_core_ssl_redirect_forwarded_host_as_sent_and_host_less_lower_cased(
        routes: list[Route]) -> None:
    out = ProxyPair(routes, TRUSTING, tls_hosts=TLS).send(
        b"GET /a HTTP/1.1\r\nHost: example.test\r\nX-Forwarded-Host: Public.Test:8443, x\r\n\r\n")
    assert location(out) == b"https://Public.Test/a"
    # No Host header: best_http_host is nginx's $host, lower-cased.
    out = ProxyPair(routes, ProxySettings(), tls_hosts=TLS).send(
        b"GET http://Example.TEST/a HTTP/1.0\r\n\r\n")
    assert location(out) == b"https://example.test/a"


ASGI_SERVICE = """
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  ports: [{port: 80, targetPort: 8080}]
"""


@pytest.mark.parametrize("manifests_", [
    ingress_yaml("r", "example.test") + ASGI_SERVICE,
    ingress_yaml("u", "example.test", path="/api") + ASGI_SERVICE], ids=["routed", "unrouted"])
def test_asgi_ssl_redirect_keeps_the_host_as_sent(manifests_: str) -> None:
    got = asyncio.run(asgi_call("GET /a/./b HTTP/1.1\r\nHost: Example.TEST:80",
                                manifests=manifests_, tls_hosts=TLS))
    assert (got.status, got.header(b"location")) == (308, b"https://Example.TEST/a/./b")
    settings = ProxySettings(use_forwarded_headers=True, proxy_real_ip_cidr=("127.0.0.1/32",))
    got = asyncio.run(asgi_call("GET /a HTTP/1.1\r\nHost: example.test\r\n"
                                "X-Forwarded-Host: Public.Test", manifests=manifests_,
                                tls_hosts=TLS, settings=settings))
    assert got.header(b"location") == b"https://Public.Test/a"
