"""Access-control annotations are never silently ignored (session 13).

Before: an Ingress with ``whitelist-source-range``, ``auth-type``/``auth-secret``, ``auth-url``
or ``configuration-snippet: "deny all;"`` passed ``ingresslib check`` without a warning and the
proxy and IngressASGI forwarded every client to its backend.

What ingress-nginx does, and so what is expected here (sources quoted in
ingresslib/proxy/_access.py):

- ``allowlist-source-range`` (alias ``whitelist-source-range``) and ``denylist-source-range``
  become nginx ``deny``/``allow`` lines (denylist first, then the allowlist and ``deny all;``),
  checked in nginx's access phase against $remote_addr after the realip module: 403.
- an invalid list: ``ing_errors.LocationDenied`` ("the annotation does not contain a valid IP
  address or network"): the location answers 503 ("# Location denied. Reason: ... return 503;").
- the access phase follows the rewrite phase: app-root, the location's redirects and the
  ssl-redirect answer a refused client first.
- an access annotation ingresslib cannot enforce (auth-*, satisfy, *-snippet): the location is
  denied (503), as ingress-nginx denies a location whose auth it cannot apply; opt-out:
  ``deny-unenforced-access-annotations: "false"``.
- every other annotation ingresslib does not implement: a warning naming Ingress and annotation.
"""

from __future__ import annotations

import ipaddress
import logging
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from ingresslib._cli import main
from ingresslib._config import parse_config_data
from ingresslib._errors import ValidationError
from ingresslib._load import parse_manifests
from ingresslib._router import Router
from ingresslib.proxy import Proxy, ProxySettings

sys.path.insert(0, str(Path(__file__).parent))
from _proxy_harness import PEER, ProxyPair, Route, ingress_yaml, location, status_of  # noqa: E402
from test_asgi_conformance import asgi_call, proxy_answer, wire  # noqa: E402

P = "nginx.ingress.kubernetes.io/"
ALLOW = P + "whitelist-source-range"
#: The harness's client (PEER, 203.0.113.7) is outside 10.0.0.0/8 and inside 203.0.113.0/24.
OUTSIDE = {ALLOW: "10.0.0.0/8"}
INSIDE = {ALLOW: "10.0.0.0/8, 203.0.113.0/24"}


def get(host: str = "a.test", path: str = "/", extra: bytes = b"") -> bytes:
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: " + host.encode() + b"\r\n" + extra \
        + b"\r\n"


def answer(annotations: dict[str, str], request: bytes | None = None,
           settings: ProxySettings | None = None, **kw: Any) -> tuple[int, ProxyPair]:
    pair = ProxyPair([Route(host="a.test", annotations=annotations)], settings, **kw)
    out = pair.send(request if request is not None else get())
    return status_of(out), pair


# -- 1. never silently open ---------------------------------------------------------------------

ADMIN = ingress_yaml("admin", "admin.test", {
    ALLOW: "10.0.0.0/8",
    P + "auth-type": "basic",
    P + "auth-secret": "basic-auth",
    P + "proxy-busy-buffers-size": "8k",   # (proxy-buffer-size and proxy-buffering until
    P + "enable-opentelemetry": "true",   # session 30, implemented now)
    P + "configuration-snippet": "deny all;",
})


def test_check_names_every_annotation_it_does_not_implement(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "admin.yaml"
    f.write_text(ADMIN)
    assert main(["check", "-f", str(f)]) == 0
    out, err = capsys.readouterr()
    text = out + err
    for name in ("proxy-busy-buffers-size", "enable-opentelemetry"):
        assert (f"Ingress default/admin: annotation {P}{name}: not implemented by ingresslib; "
                "ignored") in text
    line = next(ln for ln in text.splitlines() if f"{P}configuration-snippet " in ln)
    assert "Ingress default/admin" in line and "answer 503" in line
    assert "deny-unenforced-access-annotations" in line
    # Implemented (the Secret is read by the proxy: `check` cannot tell): no warning.
    assert "whitelist-source-range" not in text and "auth-type" not in text
    assert "3 warning(s)" in text


@pytest.mark.parametrize("annotations", [
    {P + "auth-type": "basic", P + "auth-secret": "basic-auth"},
    # auth-url (proxy/_extauth.py) and auth-type: digest (proxy/_digest.py) are implemented
    # since session 26; a snippet is not.
    pytest.param({P + "configuration-snippet": "auth_basic off;"},
                 id="configuration-snippet-auth"),
    {P + "auth-signin": "https://login.test/"},
    {P + "auth-tls-secret": "default/ca"},
    # satisfy is implemented since session 26 (proxy/_satisfy.py); an auth-type ingress-nginx
    # does not know is denied there and not implemented here.
    pytest.param({P + "auth-type": "ntlm"}, id="auth-type-unknown"),
    {P + "configuration-snippet": "deny all;"},
    {P + "server-snippet": "location /x { deny all; }"},
    {P + "auth-snippet": "return 403;"},
], ids=lambda a: next(iter(a))[len(P):])
def test_unenforceable_access_annotation_denies_the_routes(annotations: dict[str, str]) -> None:
    status, pair = answer(annotations)
    assert status == 503
    assert pair.opens == []  # nothing reached a backend


@pytest.mark.asyncio
async def test_unenforceable_access_annotation_denied_in_the_adapter() -> None:
    head = "GET /x HTTP/1.1\r\nHost: a.test"
    manifests = ingress_yaml("admin", "a.test", {P + "configuration-snippet": "deny all;"}) \
        + SERVICE
    got = await asgi_call(head, manifests=manifests)
    assert got.status == 503 and not got.app_ran
    assert proxy_answer(wire(head), manifests=manifests).status == 503


def test_opt_out_serves_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "ingresslib.proxy")
    status, pair = answer({P + "configuration-snippet": "deny all;"},
                          settings=ProxySettings(deny_unenforced_access_annotations=False))
    assert status == 200 and len(pair.opens) == 1
    assert any("configuration-snippet: not implemented by ingresslib; ignored" in r.getMessage()
               for r in caplog.records)


def test_configmap_keys() -> None:
    cfg = parse_config_data({"deny-unenforced-access-annotations": "false",
                             "whitelist-source-range": "10.0.0.1/8, 192.0.2.7",
                             "denylist-source-range": "10.9.0.0/16",
                             "block-cidrs": "198.51.100.0/24"})
    s = cfg.settings
    assert s.deny_unenforced_access_annotations is False
    assert s.whitelist_source_range == ("10.0.0.0/8", "192.0.2.7/32")
    assert s.denylist_source_range == ("10.9.0.0/16",)
    assert s.block_cidrs == ("198.51.100.0/24",)
    assert cfg.warnings == ()
    with pytest.raises(ValidationError, match="block-cidrs"):
        parse_config_data({"block-cidrs": "10.0.0.0/33"})
    with pytest.raises(ValueError, match="whitelist_source_range"):
        ProxySettings(whitelist_source_range=("nope",))


def test_server_log_warns_once_per_table(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "ingresslib.proxy")
    # Two rules of the same Ingress (the harness names the Ingress after the service).
    routes = [Route("/a", host="a.test", annotations={P + "proxy-busy-buffers-size": "8k"}),
              Route("/b", host="a.test", annotations={P + "proxy-busy-buffers-size": "8k"})]
    pair = ProxyPair(routes)
    assert status_of(pair.send(get(path="/a"))) == 200
    pair.send(get(path="/b"))
    msgs = [r.getMessage() for r in caplog.records
            if "proxy-busy-buffers-size" in r.getMessage()]
    assert msgs == [f"Ingress default/web: annotation {P}proxy-busy-buffers-size: not implemented by "
                    "ingresslib; ignored"]


CANARY = (ingress_yaml("main", "a.test", created="2024-01-01T00:00:00Z")
          + ingress_yaml("can", "a.test", {P + "canary": "true", P + "canary-weight": "0",
                                           P + "auth-url": "http://auth.test/",
                                           ALLOW: "10.0.0.0/8"},
                         service="web", created="2024-01-02T00:00:00Z"))


def test_canary_access_annotations_are_ignored_with_a_warning(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # annotations.md: "when you mark an ingress as canary, then all the other non-canary
    # annotations will be ignored (inherited from the corresponding main ingress)".
    f = tmp_path / "c.yaml"
    f.write_text(CANARY + SERVICE)
    main(["check", "-f", str(f)])
    text = "".join(capsys.readouterr())
    assert f"Ingress default/can: annotation {P}auth-url: ignored on a canary Ingress" in text
    assert f"Ingress default/can: annotation {ALLOW}: ignored on a canary Ingress" in text
    # The main Ingress's (open) location serves, canary traffic included.
    assert proxy_answer(wire("GET / HTTP/1.1\r\nHost: a.test"),
                        manifests=CANARY + SERVICE).upstream is not None


def test_denied_location_answers_503_after_the_server_app_root_only() -> None:
    ann = {P + "configuration-snippet": "deny all;", P + "app-root": "/app",
           P + "permanent-redirect": "https://elsewhere.test/"}
    # "/" : the server-level app-root runs before the location's "return 503".
    status, pair = answer(ann)
    assert status == 302
    # Other paths: 503, not the location's redirect (absent from a denied location) and not
    # the ssl-redirect (rewrite_by_lua runs after the rewrite module's return).
    status, _ = answer(ann, get(path="/x"), tls_hosts={"a.test"})
    assert status == 503


# -- 2. source ranges ---------------------------------------------------------------------------

def test_allowlist() -> None:
    assert answer(OUTSIDE)[0] == 403
    status, pair = answer(INSIDE)
    assert status == 200 and len(pair.opens) == 1
    assert answer({P + "allowlist-source-range": "203.0.113.7"})[0] == 200
    assert answer({P + "allowlist-source-range": "10.0.0.0/8"})[0] == 403
    # allowlist-source-range wins; the whitelist alias is read only when it is unset or empty.
    both = {P + "allowlist-source-range": "10.0.0.0/8", ALLOW: "203.0.113.0/24"}
    assert answer(both)[0] == 403
    assert answer({P + "allowlist-source-range": "", ALLOW: "203.0.113.0/24"})[0] == 200


def test_denylist_is_checked_before_the_allowlist() -> None:
    assert answer({P + "denylist-source-range": "203.0.113.7"})[0] == 403
    assert answer({P + "denylist-source-range": "10.0.0.0/8"})[0] == 200
    assert answer({P + "denylist-source-range": "203.0.113.0/28", **INSIDE})[0] == 403


@pytest.mark.parametrize("value", ["10.0.0.0/33", "not-an-ip", "10.0.0.0/8,", "", " ",
                                   "010.0.0.1", "fe80::1%eth0"])
def test_invalid_source_range_denies_the_location(value: str,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "ingresslib.proxy")
    status, pair = answer({ALLOW: value})
    assert status == 503 and pair.opens == []
    assert any(ALLOW in r.getMessage() and "503" in r.getMessage() for r in caplog.records)


def test_redirects_answer_a_refused_client_first() -> None:
    # rewrite phase (app-root, return, rewrite, lua ssl-redirect) before the access phase.
    status, _ = answer(OUTSIDE, tls_hosts={"a.test"})
    assert status == 308
    out = ProxyPair([Route(host="a.test", annotations={**OUTSIDE, P + "app-root": "/app"})]
                    ).send(get())
    assert status_of(out) == 302 and location(out) == b"http://a.test/app"
    status, _ = answer({**OUTSIDE, P + "permanent-redirect": "https://b.test/"})
    assert status == 301
    assert answer(OUTSIDE, get(path="/x"))[0] == 403


TRUSTING = ProxySettings(use_forwarded_headers=True, proxy_real_ip_cidr=(PEER[0] + "/32",))
NOT_TRUSTED = ProxySettings(use_forwarded_headers=True, proxy_real_ip_cidr=("192.0.2.0/24",))


def test_the_client_address_is_the_realip_one() -> None:
    xff = b"X-Forwarded-For: 10.1.2.3\r\n"
    assert answer(OUTSIDE, get(extra=xff), TRUSTING)[0] == 200
    # The rightmost untrusted address decides (real_ip_recursive on).
    assert answer(OUTSIDE, get(extra=b"X-Forwarded-For: 10.1.2.3, 198.51.100.9\r\n"),
                  TRUSTING)[0] == 403
    # From a peer that is not a trusted hop the header is ignored.
    assert answer(OUTSIDE, get(extra=xff), NOT_TRUSTED)[0] == 403
    assert answer(OUTSIDE, get(extra=xff))[0] == 403


_ADDR = st.one_of(st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(str))
_NOISE = st.text(alphabet="0123456789abcdef.:[], %/", max_size=40)


@hsettings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(_ADDR, _NOISE), max_size=6), st.sampled_from(
    [b"x-forwarded-for", b"x-real-ip", b"forwarded", b"x-original-forwarded-for"]),
    st.booleans())
def test_hostile_forwarded_chains_never_pass_an_untrusted_peer(
        items: list[str], name: bytes, trusted_settings: bool) -> None:
    # The peer (203.0.113.7) is outside the allowlist and not a trusted hop: whatever it
    # writes in forwarded headers (10.x addresses included), it is refused.
    items = items + ["10.0.0.1"]
    header = name + b": " + ", ".join(items).encode("latin-1") + b"\r\n"
    settings = NOT_TRUSTED if trusted_settings else ProxySettings()
    status, pair = answer(OUTSIDE, get(extra=header), settings)
    assert status in (403, 400) and pair.opens == []


_NETS = st.one_of(
    st.builds(lambda a, p: ipaddress.ip_network(f"{a}/{p}", strict=False),
              st.ip_addresses(v=4), st.integers(0, 32)),
    st.builds(lambda a, p: ipaddress.ip_network(f"{a}/{p}", strict=False),
              st.ip_addresses(v=6), st.integers(0, 128)))


def _contains(net: Any, addr: Any) -> bool:
    if addr.version == 6 and addr.ipv4_mapped is not None and net.version == 4:
        addr = addr.ipv4_mapped
    return addr.version == net.version and addr in net


@hsettings(max_examples=300, deadline=None)
@given(st.lists(_NETS, min_size=1, max_size=5), st.lists(_NETS, max_size=3),
       st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6),
                 st.ip_addresses(v=4).map(lambda a: ipaddress.IPv6Address(
                     "::ffff:" + str(a)))))
def test_source_ranges_match_the_ipaddress_module(allow: list[Any], deny: list[Any],
                                                  addr: Any) -> None:
    from ingresslib.proxy._access import build_access

    access = build_access(None, (), [str(n) for n in deny], [str(n) for n in allow])
    assert access is not None
    has_v4_rules = True  # "deny all" puts a rule in both families
    mapped = addr.version == 6 and addr.ipv4_mapped is not None and has_v4_rules
    check = addr.ipv4_mapped if mapped else addr
    denied = any(check.version == n.version and check in n for n in deny)
    allowed = any(check.version == n.version and check in n for n in allow)
    expected = 403 if denied or not allowed else 0
    assert access.status(str(addr)) == expected
    assert access.status(str(addr)) == expected  # the remembered verdict too


def test_configmap_defaults_and_block_cidrs() -> None:
    glob = ProxySettings(whitelist_source_range=("10.0.0.0/8",))
    assert answer({}, settings=glob)[0] == 403            # no annotation: the default applies
    assert answer(INSIDE, settings=glob)[0] == 200        # the annotation replaces it
    block = ProxySettings(block_cidrs=("203.0.113.0/24",))
    assert answer({}, settings=block)[0] == 403
    # ingresslib keeps the global block on a location with its own allowlist (fails closed).
    assert answer(INSIDE, settings=block)[0] == 403
    # Also for a request no rule routes (nginx's http-level deny): 403, not 404.
    assert answer({}, get(host="other.test"), block)[0] == 403
    assert answer({}, get(host="other.test"))[0] == 404


MAIN = ingress_yaml("main", "a.test", OUTSIDE, path="/api")
SERVICE = """
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{port: 8080}]
endpoints: [{addresses: [10.0.0.1]}]
"""


def test_unrouted_path_of_a_host_gets_its_server_location_access() -> None:
    # The server's "location /" carries the oldest Ingress's annotations (allowlist included).
    router = Router(parse_manifests(MAIN + SERVICE), seed=1)
    for peer, want in (("203.0.113.7", 403), ("10.1.1.1", 404)):
        proxy = Proxy(router, ProxySettings(), clock=None, request_id=lambda: "0" * 32)
        conn = proxy.connection((peer, 4000), tls=False, local_port=80, now=0.0)
        conn.start(0.0)
        out = b"".join(a.data for a in conn.receive_data(get(path="/other"), 0.0)
                       if hasattr(a, "data") and not hasattr(a, "conn_id"))
        assert status_of(out) == want


@pytest.mark.asyncio
@pytest.mark.parametrize(("client", "path", "want"), [
    (("203.0.113.7", 1), "/api", 403), (("10.1.1.1", 1), "/api", 200),
    (("203.0.113.7", 1), "/other", 403), (("10.1.1.1", 1), "/other", 404),
    (None, "/api", 403),
])
async def test_adapter_applies_the_same_source_ranges(client: Any, path: str, want: int) -> None:
    head = f"GET {path} HTTP/1.1\r\nHost: a.test"
    got = await asgi_call(head, manifests=MAIN + SERVICE, client=client)
    assert got.status == want
    assert got.app_ran == (want == 200)
    if client is not None:
        proxied = proxy_answer(wire(head), manifests=MAIN + SERVICE, peer=client[0])
        assert (proxied.status or 200) == want


@pytest.mark.asyncio
async def test_adapter_realip_and_redirect_order() -> None:
    head = "GET /api HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-For: 10.2.3.4"
    trusting = ProxySettings(use_forwarded_headers=True, proxy_real_ip_cidr=("127.0.0.1/32",))
    got = await asgi_call(head, manifests=MAIN + SERVICE, settings=trusting)
    assert got.status == 200
    got = await asgi_call(head, manifests=MAIN + SERVICE)
    assert got.status == 403
    got = await asgi_call(head, manifests=MAIN + SERVICE, tls_hosts={"a.test"})
    assert got.status == 308  # the ssl-redirect first, as nginx's rewrite phase


# -- a real server on 127.0.0.1 -----------------------------------------------------------------

@pytest.mark.network
@pytest.mark.asyncio
async def test_end_to_end_over_sockets() -> None:
    from ingresslib._demo import parse_echo, start_echo
    from ingresslib.proxy._server import ProxyServer
    from tests._server_helpers import Client, StubRouter

    echo = await start_echo("svc", "a")
    servers = []
    try:
        results = {}
        for name, ann in (("refused", {ALLOW: "10.0.0.0/8"}),
                          ("allowed", {ALLOW: "10.0.0.0/8,127.0.0.1"}),
                          ("denied", {P + "configuration-snippet": "deny all;"})):
            server = ProxyServer(StubRouter([("127.0.0.1", echo.port)], annotations=ann))
            servers.append(server)
            await server.start(("127.0.0.1", 0))
            c = await Client.open(server.addresses[0][2])
            r = await c.get("example.test", "/x")
            results[name] = r.status
            if r.status == 200:
                assert parse_echo(r.body)["service"] == "svc"
            await c.close()
        assert results == {"refused": 403, "allowed": 200, "denied": 503}
        assert echo.requests == 1
    finally:
        for s in servers:
            await s.shutdown(1)
        await echo.stop()


@pytest.mark.network
@pytest.mark.asyncio
async def test_server_logs_the_warnings_at_start(caplog: pytest.LogCaptureFixture) -> None:
    from ingresslib.proxy._server import ProxyServer

    caplog.set_level(logging.WARNING, "ingresslib.proxy")
    # An Ingress of two rules with basic auth whose Secret is missing, and ADMIN.
    locked = ingress_yaml("locked", "b.test", {P + "auth-type": "basic",
                                               P + "auth-secret": "gone"}, extra_paths=("/x",))
    server = ProxyServer(Router(parse_manifests(ADMIN + locked + SERVICE), seed=1))
    await server.start(("127.0.0.1", 0))
    try:
        msgs = [r.getMessage() for r in caplog.records]
        for name in ("proxy-busy-buffers-size", "enable-opentelemetry",
                     "configuration-snippet"):
            assert sum(f"Ingress default/admin: annotation {P}{name}" in m for m in msgs) == 1
        # The auth Secret is read at start too: its absence is logged once.
        assert sum(m.startswith("Ingress default/locked: auth-secret default/gone: no such "
                                "Secret") for m in msgs) == 1
    finally:
        await server.shutdown(1)


# -- 3. basic authentication --------------------------------------------------------------------

import base64  # noqa: E402
import dataclasses  # noqa: E402
import hashlib  # noqa: E402

#: Published vectors: Apache's htpasswd documentation ("myPassword"), Ulrich Drepper's "Unix
#: crypt using SHA-256 and SHA-512" test vectors ("Hello world!"), and $1$ as glibc/OpenSSL
#: (``openssl passwd -1 -salt saltsalt password``) give it.
VECTORS = [
    ("$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/", b"myPassword"),
    ("$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/", b"password"),
    ("$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5", b"Hello world!"),
    ("$5$rounds=10000$saltstringsaltst$3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA",
     b"Hello world!"),
    ("$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdF"
     "CoEOfaS35inz1", b"Hello world!"),
    ("$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8"
     "vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.", b"Hello world!"),
    ("{SHA}" + base64.b64encode(hashlib.sha1(b"pw").digest()).decode(), b"pw"),
    ("{SSHA}" + base64.b64encode(hashlib.sha1(b"pw" + b"salt").digest() + b"salt").decode(),
     b"pw"),
    ("{PLAIN}pw", b"pw"),
]


@pytest.mark.parametrize(("stored", "password"), VECTORS, ids=lambda v: str(v)[:6])
def test_htpasswd_formats(stored: str, password: bytes) -> None:
    from ingresslib.proxy import _htpasswd

    assert _htpasswd.verify(stored, password) is True
    assert _htpasswd.verify(stored, password + b"x") is False
    assert _htpasswd.verify(stored, b"") is False


def test_htpasswd_unverifiable_formats_are_never_accepted() -> None:
    from ingresslib.proxy import _htpasswd

    for stored in ("$2y$10$abcdefghijklmnopqrstuu5VpYZ5v5d8JfG0Y7p2v3K4mQ9X0u",
                   "$y$j9T$abc$def", "_J9..abcdefghijkl", "", "$5$rounds=999999$salt$x"):
        assert _htpasswd.verify(stored, b"") is None
        assert _htpasswd.verify(stored, b"anything") is None


def _system_crypt() -> Any:
    """The C library's crypt(3) (libxcrypt / glibc): an independent implementation to compare
    with, through ctypes (the ``crypt`` module is gone from Python 3.13)."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("crypt")
    if name is None:
        pytest.skip("no libcrypt on this platform")
    fn = ctypes.CDLL(name).crypt
    fn.restype, fn.argtypes = ctypes.c_char_p, [ctypes.c_char_p, ctypes.c_char_p]
    return fn


@hsettings(max_examples=60, deadline=None)
@given(st.binary(max_size=80).filter(lambda b: b"\0" not in b),
       st.text(alphabet="./0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
               min_size=1, max_size=20),
       st.sampled_from(["$1$", "$5$", "$6$", "$5$rounds=1100$"]))
def test_crypt_matches_the_system_crypt(password: bytes, salt: str, magic: str) -> None:
    from ingresslib.proxy import _htpasswd

    want = _system_crypt()(password, (magic + salt).encode())
    assert want is not None and not want.startswith(b"*"), want  # "*0": a setting it refused
    assert _htpasswd.verify(want.decode(), password) is True
    assert _htpasswd.verify(want.decode(), password + b"x") is False


def _secret(name: str, data: dict[str, str], namespace: str = "default") -> str:
    enc = ", ".join(f"{k!r}: {base64.b64encode(v.encode()).decode()!r}" for k, v in data.items())
    return f"""
---
apiVersion: v1
kind: Secret
metadata: {{name: {name}, namespace: {namespace}}}
type: Opaque
data: {{{enc}}}
"""


HTPASSWD = ("# users\nalice:" + VECTORS[6][0] + "\nbob:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/\n"
            "carol:$2y$10$abcdefghijklmnopqrstuu5VpYZ5v5d8JfG0Y7p2v3K4mQ9X0u\n")
BASIC = {P + "auth-type": "basic", P + "auth-secret": "users", P + "auth-realm": "Admin area"}


def basic_manifests(annotations: dict[str, str] = BASIC, secret: str | None = None) -> str:
    return (ingress_yaml("admin", "a.test", annotations) + SERVICE
            + (secret if secret is not None else _secret("users", {"auth": HTPASSWD})))


def creds(user: str, password: str) -> str:
    return "\r\nAuthorization: Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_auth_through_the_proxy(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "ingresslib.proxy")
    m = basic_manifests()
    head = "GET / HTTP/1.1\r\nHost: a.test"
    r = proxy_answer(wire(head), manifests=m)
    assert r.status == 401 and r.header(b"www-authenticate") == b'Basic realm="Admin area"'
    for user, pw in (("alice", "pw"), ("bob", "myPassword")):
        r = proxy_answer(wire(head + creds(user, pw)), manifests=m)
        assert r.status is None and r.upstream is not None
        # nginx.tmpl: proxy_set_header Authorization "";
        assert b"authorization" not in r.upstream.lower()
    for user, pw in (("alice", "nope"), ("dave", "pw"), ("carol", "x"), ("bob", "")):
        assert proxy_answer(wire(head + creds(user, pw)), manifests=m).status == 401
    assert proxy_answer(wire(head + "\r\nAuthorization: Bearer abc"), manifests=m).status == 401
    assert any("'carol'" in r.getMessage() and "refused" in r.getMessage()
               for r in caplog.records)


def test_basic_auth_checks_the_source_ranges_first() -> None:
    m = basic_manifests({**BASIC, ALLOW: "10.0.0.0/8"})
    r = proxy_answer(wire("GET / HTTP/1.1\r\nHost: a.test" + creds("alice", "pw")),
                     manifests=m, peer="192.0.2.1")
    assert r.status == 403 and r.header(b"www-authenticate") is None


@pytest.mark.parametrize(("annotations", "secret"), [
    (BASIC, ""),                                                     # no Secret
    (BASIC, _secret("users", {"htpasswd": HTPASSWD})),               # no key "auth"
    ({**BASIC, P + "auth-secret": "other/users"}, _secret("users", {"auth": HTPASSWD}, "other")),
    ({**BASIC, P + "auth-secret-type": "ldap"}, None),
    ({P + "auth-type": "basic"}, None),                              # no auth-secret
    ({**BASIC, P + "configuration-snippet": "deny all;"}, None),     # not implemented
], ids=["missing", "no-auth-key", "cross-namespace", "bad-type", "no-secret-name", "snippet"])
def test_basic_auth_that_cannot_be_applied_denies(annotations: dict[str, str],
                                                  secret: str | None) -> None:
    m = basic_manifests(annotations, secret)
    r = proxy_answer(wire("GET / HTTP/1.1\r\nHost: a.test" + creds("alice", "pw")), manifests=m)
    assert r.status == 503


def test_basic_auth_map_secret() -> None:
    m = basic_manifests({**BASIC, P + "auth-secret-type": "auth-map"},
                        _secret("users", {"alice": VECTORS[6][0]}))
    assert proxy_answer(wire("GET / HTTP/1.1\r\nHost: a.test" + creds("alice", "pw")),
                        manifests=m).upstream is not None
    assert proxy_answer(wire("GET / HTTP/1.1\r\nHost: a.test" + creds("alice", "no")),
                        manifests=m).status == 401


def test_basic_auth_follows_secret_updates() -> None:
    res = parse_manifests(basic_manifests())
    router = Router(res, seed=1)
    proxy = Proxy(router, clock=None, request_id=lambda: "0" * 32)

    def status(pw: str) -> int:
        conn = proxy.connection(("192.0.2.1", 1), tls=False, local_port=80, now=0.0)
        conn.start(0.0)
        acts = conn.receive_data(wire("GET / HTTP/1.1\r\nHost: a.test" + creds("alice", pw)),
                                 0.0)
        out = b"".join(a.data for a in acts if type(a).__name__ == "SendDownstream")
        return status_of(out) if out else 0

    assert status("pw") == 0 and status("new") == 401
    new_hash = "{SHA}" + base64.b64encode(hashlib.sha1(b"new").digest()).decode()
    updated = parse_manifests(basic_manifests(secret=_secret("users", {"auth": f"alice:{new_hash}"})))
    router.update(dataclasses.replace(res, secrets=updated.secrets))
    assert status("pw") == 401 and status("new") == 0
    router.update(dataclasses.replace(res, secrets=()))
    assert status("new") == 503


@pytest.mark.asyncio
async def test_basic_auth_in_the_adapter() -> None:
    m = basic_manifests()
    got = await asgi_call("GET / HTTP/1.1\r\nHost: a.test", manifests=m)
    assert got.status == 401 and got.header(b"www-authenticate") == b'Basic realm="Admin area"'
    assert not got.app_ran
    got = await asgi_call("GET / HTTP/1.1\r\nHost: a.test" + creds("alice", "pw"), manifests=m)
    assert got.status == 200 and got.app_ran
    assert all(k != b"authorization" for k, _ in got.scopes[0]["headers"])
    got = await asgi_call("GET /other HTTP/1.1\r\nHost: a.test", manifests=m)
    assert got.status == 401  # the host's server location carries the same auth


def test_local_answers_have_their_reason_phrase() -> None:
    out = ProxyPair([Route(host="a.test", annotations=OUTSIDE)]).send(get())
    assert out.startswith(b"HTTP/1.1 403 Forbidden\r\n") and out.endswith(b"403 Forbidden\n")


def test_reading_an_auth_secret_hashes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    # A Secret is read on the event loop when the table changes: checking that each user's hash
    # is of a verifiable format must not compute it (a $6$ verification costs ~7 ms of Python,
    # so 1,000 users held the loop for seconds).
    from ingresslib.proxy import _htpasswd

    stored = [_htpasswd.sha_crypt(b"pw", "$6$saltsalt"), _htpasswd.sha_crypt(b"pw", "$5$s"),
              _htpasswd.md5_crypt(b"pw", "abcdefgh", "$apr1$")]

    def boom(*args: object) -> str:
        raise AssertionError("hashed while checking the format")

    monkeypatch.setattr(_htpasswd, "sha_crypt", boom)
    monkeypatch.setattr(_htpasswd, "md5_crypt", boom)
    assert all(_htpasswd.supported(h) for h in stored if h is not None)
    assert not _htpasswd.supported("$6$rounds=999999$salt$hash")
    assert not _htpasswd.supported("$2y$10$abcdefghijklmnopqrstuu")


def test_check_reports_what_the_server_says_of_an_auth_secret(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # check says what the server logs at start about a basic-auth Secret: missing (the routes
    # answer 503), or a user whose hash format cannot be verified (that user is refused).
    ing = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: admin
  annotations:
    nginx.ingress.kubernetes.io/auth-type: basic
    nginx.ingress.kubernetes.io/auth-secret: basic-auth
spec:
  rules:
  - host: admin.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: admin, port: {number: 80}}}}
"""
    f = tmp_path / "a.yaml"
    f.write_text(ing)
    assert main(["check", "-f", str(f)]) == 0
    err = capsys.readouterr().err
    assert "auth-secret default/basic-auth: no such Secret" in err
    f.write_text(ing + _secret("basic-auth", {"auth": "carol:$2y$10$abcdefghijklmnopqrstuu\n"}))
    assert main(["check", "-f", str(f)]) == 0
    err = capsys.readouterr().err
    assert "no such Secret" not in err and "user 'carol'" in err
    f.write_text(ing + _secret("basic-auth", {"auth": HTPASSWD.partition("carol:")[0]}))
    assert main(["check", "-f", str(f)]) == 0
    out, err = capsys.readouterr()
    assert "auth-secret" not in err and "0 warning(s)" in out
