"""Session 26 (DG): ``auth-type: digest`` (ingress-nginx's ``auth_digest``, the
atomx/nginx-http-auth-digest module), through the proxy core and IngressASGI.

References (search corpus "code"):
- ngx_http_auth_digest_module.c (atomx): ``ngx_http_auth_digest_send_challenge`` ('Digest
  algorithm="MD5", qop="auth", realm="...", nonce="..."', ', stale="true"'),
  ``ngx_http_auth_digest_check_credentials`` (required fields; anything else: a challenge),
  ``ngx_http_auth_digest_verify_user`` (htdigest ``user:realm:HA1``),
  ``ngx_http_auth_digest_verify_hash`` (uri == the request target, or its path before '?';
  MD5(HA1:nonce:nc:cnonce:qop:MD5(method:uri)); nc below auth_digest_replays (20), each once;
  auth_digest_timeout 60 s, auth_digest_expires 10 s after the first use).
- ingress-nginx nginx.tmpl: ``auth_digest {{ $location.BasicDigestAuth.Realm | quote }};
  auth_digest_user_file ...; proxy_set_header Authorization "";``.

Before this change every ``auth-type: digest`` route answered 503 (unenforceable access
annotation): each test below that expects a 401 challenge or a 200 failed on the old tree.
The responses are computed here from RFC 2617's formulas, independently of ingresslib.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import re
import sys
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from ingresslib._asgi import IngressASGI
from ingresslib._load import parse_manifests
from ingresslib._router import Router
from ingresslib.proxy import OpenUpstream, Proxy, SendDownstream, SendUpstream

sys.path.insert(0, str(Path(__file__).parent))
from _budget import examples  # noqa: E402
from _proxy_harness import ingress_yaml  # noqa: E402
from test_access_control_s13 import SERVICE, _secret  # noqa: E402

P = "nginx.ingress.kubernetes.io/"
REALM = "Admin area"


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def ha1(user: str, password: str, realm: str = REALM) -> str:
    return md5(f"{user}:{realm}:{password}")


HTDIGEST = (f"# htdigest\nalice:{REALM}:{ha1('alice', 'pw')}\n"
            f"bob:Other:{ha1('bob', 'pw', 'Other')}\n")
DIGEST = {P + "auth-type": "digest", P + "auth-secret": "users", P + "auth-realm": REALM}


def manifests(annotations: dict[str, str] = DIGEST, users: str | None = HTDIGEST,
              secret_data: dict[str, str] | None = None) -> str:
    secret = "" if users is None and secret_data is None else _secret(
        "users", secret_data if secret_data is not None else {"auth": users or ""})
    return ingress_yaml("admin", "a.test", annotations) + SERVICE + secret


def challenge_fields(value: bytes) -> dict[str, str]:
    assert value.startswith(b"Digest "), value
    return {k: v for k, v in re.findall(r'(\w+)="([^"]*)"', value.decode())}


def authorization(nonce: str, *, user: str = "alice", password: str = "pw",
                  realm: str = REALM, method: str = "GET", uri: str = "/",
                  nc: str = "00000001", cnonce: str = "0a4f113b", qop: str = "auth",
                  hashed_uri: str | None = None) -> str:
    """RFC 2617 3.2.2.1 with qop=auth: response = KD(H(A1), nonce:nc:cnonce:qop:H(A2))."""
    ha2 = md5(f"{method}:{hashed_uri if hashed_uri is not None else uri}")
    response = md5(f"{ha1(user, password, realm)}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return (f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
            f'qop={qop}, nc={nc}, cnonce="{cnonce}", response="{response}"')


class Core:
    """One Proxy (its replay table and nonces live as long as the process) and requests
    sent through ``Proxy.connection`` at a chosen driver time."""

    def __init__(self, m: str | None = None) -> None:
        self.proxy = Proxy(Router(parse_manifests(m or manifests()), seed=1), clock=None,
                           request_id=lambda: "0" * 32)

    def ask(self, auth: str | None = None, target: str = "/", now: float = 1000.0,
            method: str = "GET") -> tuple[int, dict[bytes, bytes], bytes | None]:
        """(status (200: passed to the upstream), response headers, upstream head)."""
        head = f"{method} {target} HTTP/1.1\r\nHost: a.test\r\n"
        if auth is not None:
            head += f"Authorization: {auth}\r\n"
        conn = self.proxy.connection(("127.0.0.1", 40000), tls=False, local_port=80, now=now)
        conn.start(now)
        acts = conn.receive_data((head + "Connection: close\r\n\r\n").encode(), now)
        for a in acts:
            if isinstance(a, SendDownstream):
                lines = a.data.partition(b"\r\n\r\n")[0].split(b"\r\n")
                headers = {n.lower(): v.strip() for n, _, v in
                           (ln.partition(b":") for ln in lines[1:])}
                return int(lines[0].split(b" ")[1]), headers, None
        for a in acts:
            if isinstance(a, OpenUpstream):
                sent = conn.upstream_connected(a.conn_id, now)
                return 200, {}, b"".join(x.data for x in sent if isinstance(x, SendUpstream))
        raise AssertionError(acts)

    def nonce(self, now: float = 1000.0) -> str:
        status, headers, _ = self.ask(now=now)
        assert status == 401
        return challenge_fields(headers[b"www-authenticate"])["nonce"]


class Asgi:
    """One IngressASGI app, its ``limit_clock`` the fake clock."""

    def __init__(self, m: str | None = None) -> None:
        self.seen: list[dict[str, Any]] = []
        self.time = 1000.0

        async def app(scope: Any, receive: Any, send: Any) -> None:
            self.seen.append(scope)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

        self.app = IngressASGI(Router(parse_manifests(m or manifests()), seed=1),
                               backends={"default/web": app}, request_id=lambda: "0" * 32)
        self.app.limit_clock = lambda: self.time

    def ask(self, auth: str | None = None, target: str = "/",
            method: str = "GET") -> tuple[int, dict[bytes, bytes]]:
        path, _, query = target.partition("?")
        headers = [(b"host", b"a.test")]
        if auth is not None:
            headers.append((b"authorization", auth.encode()))
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
                 "query_string": query.encode(), "root_path": "", "headers": headers,
                 "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 80)}
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(m: Any) -> None:
            sent.append(dict(m))

        asyncio.run(self.app(scope, receive, send))
        start = sent[0]
        return int(start["status"]), {bytes(n).lower(): bytes(v)
                                      for n, v in start.get("headers", [])}


# -- the round trip -------------------------------------------------------------------------------

def test_challenge_then_response_passes_through_the_core() -> None:
    core = Core()
    status, headers, _ = core.ask()
    assert status == 401
    value = headers[b"www-authenticate"]
    assert value.startswith(b'Digest algorithm="MD5", qop="auth", realm="Admin area", nonce="')
    assert b"stale" not in value
    nonce = challenge_fields(value)["nonce"]
    status, _, upstream = core.ask(authorization(nonce))
    assert status == 200 and upstream is not None
    # nginx.tmpl: proxy_set_header Authorization "";
    assert b"authorization" not in upstream.lower()
    # The next request on the same nonce with the next nc, and a query the uri carries.
    assert core.ask(authorization(nonce, nc="00000002", uri="/x?a=1"), target="/x?a=1")[0] == 200


def test_challenge_then_response_passes_through_ingress_asgi() -> None:
    a = Asgi()
    status, headers = a.ask()
    assert status == 401 and not a.seen
    nonce = challenge_fields(headers[b"www-authenticate"])["nonce"]
    assert a.ask(authorization(nonce, method="POST"), method="POST")[0] == 200
    assert len(a.seen) == 1
    assert all(n != b"authorization" for n, _ in a.seen[0]["headers"])
    assert a.ask(authorization(nonce, nc="00000002", uri="/q?x=1"), target="/q?x=1")[0] == 200


# -- refusals: a new challenge (401), never an error ----------------------------------------------

def test_wrong_password_wrong_realm_unknown_user_are_401() -> None:
    core = Core()
    nonce = core.nonce()
    for auth in (authorization(nonce, password="nope"),
                 authorization(nonce, realm="Other"),  # the location's realm is "Admin area"
                 authorization(nonce, user="bob", realm="Other"),  # bob's line is of "Other"
                 authorization(nonce, user="bob"),
                 authorization(nonce, user="mallory")):
        status, headers, _ = core.ask(auth)
        assert status == 401, auth
        assert b"stale" not in headers[b"www-authenticate"]
    # The nonce is still good for the right password (failures did not use it).
    assert core.ask(authorization(nonce))[0] == 200


def test_malformed_authorization_is_401_not_500() -> None:
    core = Core()
    nonce = core.nonce()
    good = authorization(nonce)
    for auth in ("Digest", "Digest ", "Digest username", 'Digest username="alice', "Basic YTpi",
                 good.replace('response="', 'response_x="'),  # a required field missing
                 good.replace("Digest ", "Dig "), good.replace("qop=auth", "qop=auth-int"),
                 good.replace("nc=00000001", "nc=zz"), good + ', "x"', "Digest a=(",
                 'Digest username="\\', good.replace(nonce, "0" * 64), good.replace(nonce, "x")):
        status, headers, _ = core.ask(auth)
        assert status == 401, auth
        assert headers[b"www-authenticate"].startswith(b"Digest ")
    a = Asgi()
    assert a.ask("Digest nonsense")[0] == 401 and a.ask("Digest x=\"\\\"")[0] == 401


def test_quoted_pairs_and_token_values_are_read() -> None:
    core = Core(manifests(users=f'a"b:{REALM}:{ha1("a" + chr(34) + "b", "pw")}\n'))
    nonce = core.nonce()
    auth = authorization(nonce, user='a"b').replace('username="a"b"', 'username="a\\"b"')
    assert core.ask(auth)[0] == 200


def test_uri_must_be_the_request_target() -> None:
    core = Core()
    nonce = core.nonce()
    # The response is right for the uri the client names, but that is not what it asked for.
    assert core.ask(authorization(nonce, uri="/other"), target="/")[0] == 401
    # Right for the real target, but naming another uri: refused as well.
    assert core.ask(authorization(nonce, uri="/other", hashed_uri="/"), target="/")[0] == 401
    # The module's .NET exception: the target's path without its query.
    assert core.ask(authorization(nonce, uri="/p"), target="/p?q=1")[0] == 200
    assert core.ask(authorization(nonce, uri="/p?", nc="00000002"), target="/p?q=1")[0] == 401
    a = Asgi()
    nonce = challenge_fields(a.ask()[1][b"www-authenticate"])["nonce"]
    assert a.ask(authorization(nonce, uri="/elsewhere"), target="/here")[0] == 401
    assert a.ask(authorization(nonce, uri="/here"), target="/here")[0] == 200


# -- nonces: replay, lifetime, stale --------------------------------------------------------------

def test_replayed_nc_is_refused() -> None:
    core = Core()
    nonce = core.nonce()
    auth = authorization(nonce)
    assert core.ask(auth)[0] == 200
    status, headers, _ = core.ask(auth)
    assert status == 401 and b"stale" not in headers[b"www-authenticate"]
    # Another Proxy of the process shares the table (as nginx's one shm zone): still refused.
    assert Core().ask(auth)[0] == 401
    assert core.ask(authorization(nonce, nc="00000003"))[0] == 200
    # nc at auth_digest_replays (20) or over: stale, the client takes the new nonce.
    status, headers, _ = core.ask(authorization(nonce, nc="00000014"))
    assert status == 401 and headers[b"www-authenticate"].endswith(b', stale="true"')
    a = Asgi()
    nonce = challenge_fields(a.ask()[1][b"www-authenticate"])["nonce"]
    assert a.ask(authorization(nonce))[0] == 200 and a.ask(authorization(nonce))[0] == 401


def test_expired_nonce_is_stale_and_the_new_one_works() -> None:
    core = Core()
    nonce = core.nonce(now=1000.0)
    # Unused: auth_digest_timeout (60 s) from the challenge.
    status, headers, _ = core.ask(authorization(nonce), now=1060.5)
    assert status == 401
    value = headers[b"www-authenticate"]
    assert value.endswith(b', stale="true"')
    fresh = challenge_fields(value)["nonce"]
    assert fresh != nonce
    assert core.ask(authorization(fresh), now=1061.0)[0] == 200
    # Used: auth_digest_expires (10 s) after its first use.
    assert core.ask(authorization(fresh, nc="00000002"), now=1070.0)[0] == 200
    status, headers, _ = core.ask(authorization(fresh, nc="00000003"), now=1071.0)
    assert status == 401 and headers[b"www-authenticate"].endswith(b', stale="true"')
    # A nonce "from the future" (another clock) is not this one's: refused, not stale.
    late = core.nonce(now=5000.0)
    status, headers, _ = core.ask(authorization(late), now=1100.0)
    assert status == 401 and b"stale" not in headers[b"www-authenticate"]
    a = Asgi()
    nonce = challenge_fields(a.ask()[1][b"www-authenticate"])["nonce"]
    a.time = 1061.0
    status, headers = a.ask(authorization(nonce))
    assert status == 401 and headers[b"www-authenticate"].endswith(b', stale="true"')


def test_nonce_is_bound_to_this_process_key() -> None:
    core = Core()
    nonce = core.nonce()
    forged = nonce[:32] + ("0" if nonce[32] != "0" else "1") + nonce[33:]
    status, headers, _ = core.ask(authorization(forged))
    assert status == 401 and b"stale" not in headers[b"www-authenticate"]


# -- the Secret, the realm, canaries --------------------------------------------------------------

def test_missing_secret_is_503_as_basic() -> None:
    assert Core(manifests(users=None)).ask()[0] == 503
    assert Core(manifests(secret_data={"other": "x"})).ask()[0] == 503
    assert Asgi(manifests(users=None)).ask()[0] == 503


def test_auth_map_gives_htdigest_lines() -> None:
    # auth/main.go dumpSecretAuthMap: "user:value" per key; a value "realm:HA1".
    m = manifests({**DIGEST, P + "auth-secret-type": "auth-map"},
                  secret_data={"alice": f"{REALM}:{ha1('alice', 'pw')}"})
    core = Core(m)
    assert core.ask(authorization(core.nonce()))[0] == 200


def test_empty_realm_denies_the_location() -> None:
    # ingress-nginx writes 'auth_digest "";': the module is then off (no authentication).
    m = manifests({P + "auth-type": "digest", P + "auth-secret": "users"})
    assert Core(m).ask()[0] == 503
    assert Asgi(m).ask()[0] == 503


def test_canary_digest_annotations_are_ignored() -> None:
    canary = ingress_yaml("admin-canary", "a.test", {
        P + "canary": "true", P + "canary-by-header": "x-canary", **DIGEST})
    m = ingress_yaml("admin", "a.test", {}) + canary + SERVICE + _secret("users", {
        "auth": HTDIGEST})
    core = Core(m)
    assert core.ask()[0] == 200  # the main Ingress has no auth; the canary's is not read
    head_canary = "GET / HTTP/1.1\r\nHost: a.test\r\nx-canary: always\r\n"
    conn = core.proxy.connection(("127.0.0.1", 40000), tls=False, local_port=80, now=0.0)
    conn.start(0.0)
    acts = conn.receive_data((head_canary + "Connection: close\r\n\r\n").encode(), 0.0)
    assert any(isinstance(x, OpenUpstream) for x in acts)


def test_basic_secret_still_basic() -> None:
    # auth-type: basic is unchanged (its challenge is the static Basic one).
    m = manifests({**DIGEST, P + "auth-type": "basic"},
                  users="alice:{PLAIN}pw\n")
    status, headers, _ = Core(m).ask()
    assert status == 401 and headers[b"www-authenticate"] == b'Basic realm="Admin area"'


def test_a_path_no_rule_covers_gets_the_owners_digest_auth() -> None:
    # The host's server ``location /`` carries its Ingress's annotations (``_unrouted_status``):
    # the digest challenge first, then the default backend's 404.
    m = ingress_yaml("admin", "a.test", DIGEST, path="/admin") + SERVICE + _secret(
        "users", {"auth": HTDIGEST})
    core = Core(m)
    status, headers, _ = core.ask(target="/x")
    assert status == 401
    nonce = challenge_fields(headers[b"www-authenticate"])["nonce"]
    assert core.ask(authorization(nonce, uri="/x"), target="/x")[0] == 404
    assert core.ask(authorization(nonce, uri="/x", nc="00000002", password="no"),
                    target="/x")[0] == 401
    a = Asgi(m)
    status, headers = a.ask(target="/x")
    assert status == 401
    nonce = challenge_fields(headers[b"www-authenticate"])["nonce"]
    assert a.ask(authorization(nonce, uri="/x"), target="/x")[0] == 404


def test_the_replay_table_is_bounded_and_refuses_when_full(monkeypatch: Any) -> None:
    from ingresslib.proxy import _digest

    table = _digest._Replays()
    monkeypatch.setattr(_digest, "_TABLE_MAX", 3)
    nonces = [_digest.new_nonce(100.0) for _ in range(4)]
    for n in nonces[:3]:
        assert table.use(n, 100, 1, 100.0) == 0
    assert table.use(nonces[3], 100, 1, 100.0) == 2  # full, none can go yet: stale
    assert table.use(nonces[0], 100, 1, 101.0) == 1  # still remembered: a replay
    # Once their nonces can no longer be accepted (issued + 60 s) they leave.
    assert table.use(nonces[3], 100, 1, 159.0) == 2  # still full at 159
    fresh = _digest.new_nonce(165.0)
    assert table.use(fresh, 165, 1, 165.0) == 0 and len(table) == 1


def test_the_replay_table_forgets_nonces_that_can_no_longer_pass() -> None:
    from ingresslib.proxy import _digest

    table = _digest._Replays()
    for _ in range(50):
        assert table.use(_digest.new_nonce(100.0), 100, 1, 100.0) == 0
    assert len(table) == 50
    # At 200 none of them can be accepted any more (issued + 60 s, first use + 10 s): gone.
    assert table.use(_digest.new_nonce(200.0), 200, 1, 200.0) == 0 and len(table) == 1


def test_check_no_longer_calls_digest_not_implemented() -> None:
    import ingresslib

    assert [str(d) for d in ingresslib.check(parse_manifests(manifests()))] == []
    (w,) = ingresslib.check(parse_manifests(manifests({P + "auth-type": "digest",
                                                        P + "auth-secret": "users"})))
    assert w.field == f"metadata.annotations[{P}auth-type]"
    assert "digest without " + P + "auth-realm" in w.message and "503" in w.message


def test_round_trip_through_proxy_server() -> None:
    """The production driver (ProxyServer: ``offload=True``, its loop's time as ``now``), on
    127.0.0.1 only."""
    from ingresslib.proxy import ProxyServer

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        head = await r.readuntil(b"\r\n\r\n")
        body = b"auth" if b"authorization" in head.lower() else b"ok"
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                % (len(body), body))
        await w.drain()
        w.close()

    async def ask(port: int, auth: str | None) -> bytes:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        extra = f"Authorization: {auth}\r\n" if auth else ""
        w.write(f"GET /s?x=1 HTTP/1.1\r\nHost: a.test\r\n{extra}Connection: close\r\n\r\n"
                .encode())
        data = await asyncio.wait_for(r.read(), 5)
        w.close()
        return data

    async def run() -> list[bytes]:
        up = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = up.sockets[0].getsockname()[1]
        svc = (SERVICE.replace("10.0.0.1", "127.0.0.1").replace("targetPort: 8080",
                                                                f"targetPort: {port}")
               .replace("port: 8080", f"port: {port}"))
        m = ingress_yaml("admin", "a.test", DIGEST) + svc + _secret("users", {"auth": HTDIGEST})
        server = ProxyServer(Router(parse_manifests(m), seed=0))
        await server.start(("127.0.0.1", 0))
        listen = server.addresses[0][2]
        try:
            first = await ask(listen, None)
            value = next(ln.split(b":", 1)[1].strip() for ln in first.split(b"\r\n")
                         if ln.lower().startswith(b"www-authenticate:"))
            nonce = challenge_fields(value)["nonce"]
            good = await ask(listen, authorization(nonce, uri="/s?x=1"))
            again = await ask(listen, authorization(nonce, uri="/s?x=1"))
            return [first.split(b" ", 2)[1], good.split(b" ", 2)[1], good.rsplit(b"\n", 1)[1],
                    again.split(b" ", 2)[1]]
        finally:
            await server.shutdown(1)
            up.close()

    assert asyncio.run(run()) == [b"401", b"200", b"ok", b"401"]


_PIECES = st.sampled_from([b"Digest ", b"digest  ", b"username=", b'"alice"', b"realm=",
                           b'"Admin area"', b"nonce=", b"nc=", b"00000001", b"uri=", b'"/"',
                           b"qop=auth", b"cnonce=x", b"response=", b", ", b",", b'"', b"\\",
                           b"=", b" ", b"\t", b"\xff", b"a"])


@settings(max_examples=examples(0.5), deadline=None)
@given(st.lists(st.one_of(_PIECES, st.binary(max_size=4)), max_size=24))
def test_any_authorization_value_is_a_verdict_never_an_error(pieces: list[bytes]) -> None:
    from ingresslib.proxy import _digest

    value = b"".join(pieces)
    fields = _digest.parse_digest(value)
    assert fields is None or all(fields.get(k) for k in _digest._REQUIRED)
    status, challenge = _digest_auth().verify(value, b"GET", b"/", 1000.0)
    assert status == 401 and challenge is not None and challenge.startswith(b"Digest ")


@functools.lru_cache(maxsize=1)
def _digest_auth() -> Any:
    from ingresslib.proxy import _digest

    secrets = parse_manifests(_secret("users", {"auth": HTDIGEST})).secrets
    auth = _digest.DigestAuth(REALM, "default", "users", False, lambda: secrets, None, "")
    auth.load()
    return auth
