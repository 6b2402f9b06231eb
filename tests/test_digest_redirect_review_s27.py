"""Session 27 (R2): attacker review of ``auth-type: digest``'s evasion and Authentication-Info
and of the ssl-redirect Location's host as sent (tests/test_digest_redirect_s27.py's change).

References (search corpus "code"):

- rickysarraf-notmine/libnginx-mod-http-auth-digest ``ngx_http_auth_digest_module.c``:
  ``ngx_http_auth_digest_check_credentials`` (``sw_param_quoted_value``: "ch == '\\\\' &&
  *p <= 0x7f" takes the next byte, a CTL included, as a quoted pair);
  ``ngx_http_auth_digest_verify_hash`` writes ``cnonce="%*s"`` bare into the
  Authentication-Info value; ``ngx_http_auth_digest_evasion_tracking`` /
  ``ngx_http_auth_digest_evading`` key on ``r->connection->sockaddr`` (after realip).
- RFC 9110 §5.5 (a field value never holds CR, LF, NUL; other CTLs are invalid too) and
  §5.6.4 (``quoted-pair = "\\" ( HTAB / SP / VCHAR / obs-text )``).
- nginx ``ngx_cidr_match`` / ``ngx_http_access_module``: an IPv4-mapped IPv6 address is
  checked as its IPv4 one.
- kubernetes/ingress-nginx lua_ingress.lua ``parse_x_forwarded_host`` / ``redirect_host``.

Expected values are computed here from those sources (RFC 2617's formulas).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ingresslib.proxy import OpenUpstream, ProxySettings, SendDownstream
from ingresslib.proxy import _digest

sys.path.insert(0, str(Path(__file__).parent))
from _proxy_harness import ProxyPair, Route, ingress_yaml, location  # noqa: E402
from test_access_control_s13 import SERVICE, _secret  # noqa: E402
from test_default_backend_owner_s14 import catch_all  # noqa: E402
from test_digest_auth_s26 import (  # noqa: E402
    DIGEST, HTDIGEST, REALM, authorization, challenge_fields, ha1, md5)
from test_digest_redirect_s27 import (  # noqa: E402
    ME, OTHER, UPSTREAM_OK, Asgi, Core, _head)

DRIVERS = [Core, Asgi]
IDS = ["core", "asgi"]


@pytest.fixture(autouse=True)
def _own_evasion_table(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A fresh per-process evasion table for each test (fake clocks)."""
    monkeypatch.setattr(_digest, "_EVASION", _digest._Evasion())
    yield


def _locked(answer: tuple[int, dict[bytes, bytes]]) -> bool:
    return answer[0] == 401 and b"www-authenticate" not in answer[1]


def _challenged(answer: tuple[int, dict[bytes, bytes]]) -> bool:
    return answer[0] == 401 and answer[1].get(b"www-authenticate", b"").startswith(b"Digest ")


def _with_cnonce(nonce: str, wire_cnonce: str, cnonce: str) -> str:
    """An Authorization value whose quoted cnonce is ``wire_cnonce`` as written (quoted pairs
    included) and ``cnonce`` once unquoted; its response is right for ``cnonce``."""
    response = md5(f"{ha1('alice', 'pw')}:{nonce}:00000001:{cnonce}:auth:{md5('GET:/')}")
    return (f'Digest username="alice", realm="{REALM}", nonce="{nonce}", uri="/", qop=auth, '
            f'nc=00000001, cnonce="{wire_cnonce}", response="{response}"')


# -- Authentication-Info: the client's cnonce in our response head ---------------------------------

@pytest.mark.parametrize(("wire_cnonce", "cnonce"), [
    ("a\\\r\\\nSet-Cookie: owned=1", "a\r\nSet-Cookie: owned=1"),   # CR LF as quoted pairs
    ("a\\\x01b", "a\x01b"),
    ("a\\\x7fb", "a\x7fb"),
], ids=["crlf", "soh", "del"])
def test_asgi_cnonce_with_a_control_character_never_reaches_a_response_header(
        wire_cnonce: str, cnonce: str) -> None:
    # The header parser admits ``\`` + CTL as a quoted pair (the module's does too); an ASGI
    # server may hand such a header over. The credentials are right: the request passes, but
    # no header value may carry the CTL (before: ``cnonce="a\r\nSet-Cookie: owned=1"``).
    d = Asgi()
    nonce = d.nonce()
    status, headers = d.ask(_with_cnonce(nonce, wire_cnonce, cnonce))
    assert status == 200
    assert b"authentication-info" not in headers
    assert not any(ch in v for v in headers.values() for ch in (b"\r", b"\n", b"\x01", b"\x7f"))


def test_core_refuses_a_control_character_in_the_authorization_head() -> None:
    # The proxy core's head checks come first (400), so its answers never carry one either.
    d = Core()
    nonce = d.nonce()
    assert d.ask(_with_cnonce(nonce, "a\\\x01b", "a\x01b"))[0] == 400


@pytest.mark.parametrize("driver", DRIVERS, ids=IDS)
def test_a_tab_and_non_ascii_cnonce_are_still_echoed(driver: Any) -> None:
    # HTAB and obs-text may stand in a quoted-string (RFC 9110 §5.6.4): the header is sent.
    d = driver()
    nonce = d.nonce()
    cnonce = "a\tb\u00e9"
    wire = "a\\\tb\u00e9"
    response = md5(f"{ha1('alice', 'pw')}:{nonce}:00000001:{cnonce}:auth:{md5('GET:/')}")
    auth = (f'Digest username="alice", realm="{REALM}", nonce="{nonce}", uri="/", qop=auth, '
            f'nc=00000001, cnonce="{wire}", response="{response}"')
    # (Sent as UTF-8 by both harnesses: the module hashes the bytes it received.)
    raw = cnonce.encode()
    rsp = md5(f"{ha1('alice', 'pw')}:{nonce}:00000001:{cnonce}:auth:{md5(':/')}")
    status, headers = d.ask(auth)
    assert status == 200
    assert headers[b"authentication-info"] == (
        b'qop="auth", rspauth="' + rsp.encode() + b'", cnonce="' + raw + b'", nc=00000001')


@pytest.mark.parametrize("driver", DRIVERS, ids=IDS)
def test_rspauth_hashes_the_header_uri_not_the_request_target(driver: Any) -> None:
    # .NET sends the path without its query (the module admits it): rspauth is computed
    # over the header's ``uri`` field (``ngx_snprintf(ha2_key.data, ..., ":%s",
    # fields->uri.data)``), not over the request target.
    d = driver()
    nonce = d.nonce()
    status, headers = d.ask(authorization(nonce, uri="/x"), target="/x?a=1")
    want = md5(f"{ha1('alice', 'pw')}:{nonce}:00000001:0a4f113b:auth:{md5(':/x')}")
    assert status == 200
    assert headers[b"authentication-info"] == (
        f'qop="auth", rspauth="{want}", cnonce="0a4f113b", nc=00000001'.encode())


# -- two locations' digest controls on one request (combine_access) ------------------------------

def _two_digest_locations() -> str:
    """a.test's only Ingress (digest) owns the host; the older catch-all Ingress (digest too,
    the same Secret) serves the paths no rule covers: a request for /x passes both controls
    (SEMANTICS §4.5, ``_actions.RouteOptionsSource``: ``combine_access``)."""
    return (catch_all(DIGEST) + ingress_yaml("admin", "a.test", DIGEST, path="/admin")
            + SERVICE + _secret("users", {"auth": HTDIGEST}))


@pytest.mark.parametrize("driver", DRIVERS, ids=IDS)
def test_one_response_passes_both_locations_digest(driver: Any) -> None:
    # Before: the first control took the ``nc`` from the replay table, the second found it
    # used (a replay): 401 with a fresh challenge whatever the credentials, for ever.
    d = driver(_two_digest_locations())
    nonce = d.nonce()
    want = md5(f"{ha1('alice', 'pw')}:{nonce}:00000001:0a4f113b:auth:{md5(':/x')}")
    status, headers = d.ask(authorization(nonce, uri="/x"), target="/x")
    assert status == 200
    assert headers[b"authentication-info"] == (
        f'qop="auth", rspauth="{want}", cnonce="0a4f113b", nc=00000001'.encode())
    # The nc is used once all the same: the same one again is a replay.
    assert _challenged(d.ask(authorization(nonce, uri="/x"), target="/x"))
    assert d.ask(authorization(nonce, uri="/x", nc="00000002"), target="/x")[0] == 200


@pytest.mark.parametrize("driver", DRIVERS, ids=IDS)
def test_two_locations_count_one_failure_per_request(driver: Any) -> None:
    d = driver(_two_digest_locations())
    nonce = d.nonce()
    for i in range(4):
        assert _challenged(d.ask(authorization(nonce, uri="/x", password="no"), target="/x",
                                 now=1000.0 + i / 2))
    # Four failures: not locked out yet; the right password passes.
    assert d.ask(authorization(nonce, uri="/x"), target="/x", now=1002.0)[0] == 200
    for i in range(5):
        assert _challenged(d.ask(authorization(nonce, uri="/x", password="no"), target="/x",
                                 now=1002.5 + i / 2))
    assert _locked(d.ask(authorization(nonce, uri="/x", nc="00000002"), target="/x",
                         now=1005.0))


# -- the lockout's key ---------------------------------------------------------------------------

@pytest.mark.parametrize("driver", DRIVERS, ids=IDS)
def test_ipv4_mapped_ipv6_is_the_same_client(driver: Any) -> None:
    # A dual-stack listener's ``::ffff:a.b.c.d`` peer is the IPv4 client (as the access
    # rules read it): five failures through one form lock the other out too (before: five
    # more tries).
    d = driver()
    nonce = d.nonce()
    for i in range(5):
        assert _challenged(d.ask(authorization(nonce, password="no"), now=1000.0 + i / 2,
                                 peer="::ffff:" + ME))
    assert _locked(d.ask(authorization(nonce), now=1003.0, peer=ME))
    assert _locked(d.ask(now=1003.0, peer="::FFFF:" + ME))
    assert d.ask(authorization(nonce), now=1003.0, peer=OTHER)[0] == 200


def test_evasion_table_merges_mapped_addresses() -> None:
    table = _digest._Evasion()
    for i in range(5):
        table.failed("192.0.2.1", 100.0 + i)
    assert table.evading("::ffff:192.0.2.1", 105.0) and table.evading("::ffff:c000:201", 105.0)
    assert not table.evading("2001:db8::c000:201", 105.0)  # not a mapped address
    table.succeeded("::ffff:192.0.2.1")
    assert not table.evading("192.0.2.1", 105.0) and len(table) == 0


def _core_xff(proxy: Any, peer: str, xff: str, auth: str, now: float) -> tuple[int, bool]:
    """(status, a challenge sent) of one request from ``peer`` with X-Forwarded-For."""
    conn = proxy.connection((peer, 40000), tls=False, local_port=80, now=now)
    conn.start(now)
    head = (f"GET / HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-For: {xff}\r\n"
            f"Authorization: {auth}\r\nConnection: close\r\n\r\n")
    for a in conn.receive_data(head.encode(), now):
        if isinstance(a, SendDownstream):
            status, headers = _head(a.data)
            return status, b"www-authenticate" in headers
    return 200, False


def test_core_lockout_is_keyed_on_the_real_client_not_an_untrusted_xff() -> None:
    settings = ProxySettings(use_forwarded_headers=True, proxy_real_ip_cidr=("203.0.113.7/32",))
    d = Core(settings=settings)
    nonce = d.nonce()
    bad = authorization(nonce, password="no")
    # An untrusted peer naming the victim: its own address is counted.
    for i in range(6):
        _core_xff(d.proxy, "192.0.2.50", ME, bad, 1000.0 + i / 4)
    assert _core_xff(d.proxy, "192.0.2.50", ME, bad, 1002.0) == (401, False)
    assert d.ask(authorization(nonce), now=1002.0, peer=ME)[0] == 200
    # Through the trusted hop: the address it names (realip), as the module's sockaddr.
    for i in range(5):
        assert _core_xff(d.proxy, "203.0.113.7", "192.0.2.99", bad, 1003.0 + i / 4) == (401, True)
    assert _core_xff(d.proxy, "203.0.113.7", "192.0.2.99", bad, 1005.0) == (401, False)
    assert _core_xff(d.proxy, "203.0.113.7", "192.0.2.98", bad, 1005.0) == (401, True)


def test_asgi_lockout_ignores_an_untrusted_xff() -> None:
    # (IngressASGI's default settings: no forwarded header is trusted.)
    d = Asgi()
    nonce = d.nonce()
    for i in range(6):
        answer = _asgi_with_xff(d, authorization(nonce, password="no"), ME, 1000.0 + i / 4,
                                "192.0.2.50")
    assert _locked(answer)  # the sender's own address is locked out
    assert d.ask(authorization(nonce), now=1002.0, peer=ME)[0] == 200


def _asgi_with_xff(d: Asgi, auth: str, xff: str, now: float, peer: str
                   ) -> tuple[int, dict[bytes, bytes]]:
    import asyncio

    d.time = now
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": "/", "raw_path": b"/",
             "query_string": b"", "root_path": "",
             "headers": [(b"host", b"a.test"), (b"authorization", auth.encode()),
                         (b"x-forwarded-for", xff.encode())],
             "client": (peer, 40000), "server": ("127.0.0.1", 80)}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(m: Any) -> None:
        sent.append(dict(m))

    asyncio.run(d.app(scope, receive, send))
    return int(sent[0]["status"]), {bytes(n).lower(): bytes(v)
                                    for n, v in sent[0].get("headers", [])}


# -- Authentication-Info stays on its own request's answers --------------------------------------

def test_core_keep_alive_next_request_carries_no_authentication_info() -> None:
    d = Core()
    nonce = d.nonce()
    now = 1000.0
    conn = d.proxy.connection((ME, 40000), tls=False, local_port=80, now=now)
    conn.start(now)
    first = f"GET / HTTP/1.1\r\nHost: a.test\r\nAuthorization: {authorization(nonce)}\r\n\r\n"
    acts = conn.receive_data(first.encode(), now)
    up = [a for a in acts if isinstance(a, OpenUpstream)][0]
    conn.upstream_connected(up.conn_id, now)
    out = conn.upstream_data(up.conn_id, UPSTREAM_OK, now)
    status, headers = _head(b"".join(a.data for a in out if isinstance(a, SendDownstream)))
    assert status == 200 and b"authentication-info" in headers
    # The next request on that connection, no credentials: its 401 carries none.
    acts = conn.receive_data(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n", now)
    status, headers = _head(b"".join(a.data for a in acts if isinstance(a, SendDownstream)))
    assert status == 401 and b"authentication-info" not in headers
    assert challenge_fields(headers[b"www-authenticate"])["nonce"] != nonce


# -- ssl-redirect: what the Location may name ----------------------------------------------------

TLS = {"example.test"}
TRUSTING = ProxySettings(use_forwarded_headers=True, proxy_real_ip_cidr=("203.0.113.7/32",))


@pytest.mark.parametrize("routes", [[Route("/", host="example.test")],
                                    [Route("/api", host="example.test")]],
                         ids=["routed", "unrouted"])
@pytest.mark.parametrize("xfh", [b"evil.test@example.test", b"evil.test/x", b"evil\\x",
                                 b"ex\xc3\xa4mple.test", b"evil.test:99999", b""])
def test_core_odd_forwarded_host_never_names_another_host(routes: list[Route],
                                                          xfh: bytes) -> None:
    out = ProxyPair(routes, TRUSTING, tls_hosts=TLS, peer=("203.0.113.7", 5000)).send(
        b"GET /a HTTP/1.1\r\nHost: Example.test\r\nX-Forwarded-Host: " + xfh + b"\r\n\r\n")
    assert location(out) == b"https://Example.test/a"


def test_core_absolute_form_with_another_host_is_refused() -> None:
    out = ProxyPair([Route("/", host="example.test")], ProxySettings(), tls_hosts=TLS).send(
        b"GET http://example.test/a HTTP/1.1\r\nHost: Evil.test\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400 ") and location(out) is None
