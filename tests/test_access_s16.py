"""Access control, adversarial review (session 16): source ranges and basic authentication
read as ingress-nginx and nginx read them, so that no client passes where nginx refuses it.

Sources (quoted in ingresslib/proxy/_access.py and _basicauth.py):

- ipdenylist/ipallowlist ``Parse`` read the annotation through internal/net/ipnet.go
  ``ParseIPNets`` and write ``ipnet.String()`` / ``ip.String()``; Go writes an IPv4-mapped
  address or network in IPv4 form (src/net/ip.go ``networkNumberAndMask``, ``IP.String``), so
  ``denylist-source-range: ::ffff:192.0.2.7`` becomes ``deny 192.0.2.7;`` and refuses the IPv4
  client 192.0.2.7. Go's ``ParseCIDR`` reads a decimal prefix only (no netmask): the location is
  denied (503).
- ngx_http_auth_basic_user: "Basic " in any case, spaces, base64 decoded up to the first ``=``
  with optional padding (ngx_decode_base64_internal), an empty user declines (401).
- ngx_http_auth_basic_handler reads the htpasswd file line by line (LF), skips lines starting
  with ``#`` or CR, and ends a hash at CR, LF or ``:``; auth-map Secrets are written to such a
  file as ``user:value\\n`` (auth/main.go dumpSecretAuthMap).
"""

from __future__ import annotations

import base64
import hashlib
import sys
from pathlib import Path

import pytest

from ingresslib.proxy import ProxySettings
from ingresslib.proxy._access import parse_source_ranges

sys.path.insert(0, str(Path(__file__).parent))
from _proxy_harness import ingress_yaml  # noqa: E402
from test_access_control_s13 import BASIC, SERVICE, _secret, basic_manifests, creds  # noqa: E402
from test_asgi_conformance import proxy_answer, wire  # noqa: E402

P = "nginx.ingress.kubernetes.io/"
HEAD = "GET / HTTP/1.1\r\nHost: a.test"
CLIENT = "192.0.2.7"


def status(annotations: dict[str, str], peer: str = CLIENT, head: str = HEAD,
           settings: ProxySettings | None = None) -> int:
    """The proxy's answer to ``head`` from ``peer``: the local status, or 200 when proxied."""
    r = proxy_answer(wire(head), manifests=ingress_yaml("a", "a.test", annotations) + SERVICE,
                     peer=peer, settings=settings)
    return 200 if r.status is None else r.status


# -- source ranges: IPv4-mapped IPv6 entries in the annotations ---------------------------------

@pytest.mark.parametrize("entry", ["::ffff:192.0.2.7", "::ffff:192.0.2.0/120",
                                   "::FFFF:C000:0207", "::ffff:192.1.2.3/104"])
def test_ipv4_mapped_denylist_entry_refuses_the_ipv4_client(entry: str) -> None:
    # Before: kept as an IPv6 rule, never met by an IPv4 client: the denylisted client passed.
    assert status({P + "denylist-source-range": entry}) == 403
    assert status({P + "denylist-source-range": "10.0.0.0/8, " + entry}) == 403
    # The same entry on a dual-stack listener (the peer as ::ffff:a.b.c.d).
    assert status({P + "denylist-source-range": entry}, peer="::ffff:" + CLIENT) == 403
    # Others still pass.
    assert status({P + "denylist-source-range": entry}, peer="198.51.100.1") == 200


def test_ipv4_mapped_allowlist_entry_admits_the_ipv4_client() -> None:
    # nginx gets "allow 192.0.2.7;" then "deny all;".
    for key in ("whitelist-source-range", "allowlist-source-range"):
        assert status({P + key: "::ffff:192.0.2.7"}) == 200
        assert status({P + key: "::ffff:192.0.2.7"}, peer="192.0.2.8") == 403


def test_parse_source_ranges_writes_mapped_entries_as_go_does() -> None:
    assert parse_source_ranges("::ffff:10.0.0.1, ::ffff:10.1.2.3/104, ::ffff:0:0/96",
                               annotation=True) == ("10.0.0.1/32", "10.0.0.0/8", "0.0.0.0/0")
    # A mask that cuts into ::ffff is no IPv4-mapped network (Go: To4() fails): IPv6.
    assert parse_source_ranges("::ffff:0:0/95", annotation=True) == ("::fffe:0:0/95",)
    # The ConfigMap's lists go to nginx as written ("deny {{ trimSpace $ip }};"): an IPv6 rule.
    # Written in RFC 5952's mixed form on every Python (3.13 changed str() of such addresses).
    assert parse_source_ranges("::ffff:10.0.0.1") == ("::ffff:10.0.0.1/128",)


@pytest.mark.parametrize("value", ["192.0.2.0/255.255.255.0", "192.0.2.0/0.0.0.255",
                                   "10.0.0.0/+8"])
def test_a_netmask_source_range_denies_the_location(value: str) -> None:
    # Go's ParseCIDR reads a decimal prefix only ("n, i, ok := dtoi(mask)"), ParseIP fails: the
    # location is denied. Before: read as /24 by the ipaddress module and enforced.
    assert status({P + "whitelist-source-range": value}) == 503
    assert status({P + "denylist-source-range": value}, peer="198.51.100.1") == 503
    with pytest.raises(ValueError):
        ProxySettings(block_cidrs=(value,))


# -- basic authentication: the Authorization value --------------------------------------------

def _raw(value: str) -> str:
    return "\r\nAuthorization: " + value


def auth_status(extra: str, manifests: str | None = None) -> int:
    r = proxy_answer(wire(HEAD + extra), manifests=manifests or basic_manifests())
    return 200 if r.status is None else r.status


def test_an_empty_user_name_is_refused() -> None:
    # nginx: "if (len == 0 || len == auth.len) { ... return NGX_DECLINED; }" -> 401, whatever
    # the file holds. Before: an htpasswd line ":{PLAIN}x" let ":x" in.
    m = basic_manifests(secret=_secret("users", {"auth": "alice:{PLAIN}pw\n:{PLAIN}x\n"}))
    assert auth_status(creds("", "x"), m) == 401
    assert auth_status(creds("alice", "pw"), m) == 200


@pytest.mark.parametrize("value", [
    "Basic " + base64.b64encode(b"alice:pw").decode().rstrip("="),  # padding left out
    "Basic " + base64.b64encode(b"alice:pw").decode() + "garbage!",  # ignored after "="
    "BASIC    " + base64.b64encode(b"alice:pw").decode(),
    "basic " + base64.b64encode(b"alice:pw").decode(),
])
def test_credentials_nginx_decodes_are_accepted(value: str) -> None:
    # ngx_decode_base64_internal stops at the first "=" and needs no padding. Before: 401.
    assert auth_status(_raw(value), _alice()) == 200


@pytest.mark.parametrize("value", [
    # 4n+1 characters (13; "+A" made 12, which decodes to "alice:pw\0": nginx's C string
    # stops at the NUL and lets alice in, session 24)
    "Basic " + base64.b64encode(b"alice:pw").decode().rstrip("=") + "AA",
    "Basic " + base64.urlsafe_b64encode(b"alice:pw?>").decode(),         # "-"/"_" alphabet
    "Basic\t" + base64.b64encode(b"alice:pw").decode(),
    "Basic " + base64.b64encode(b"alice").decode(),                      # no ":"
    "Basic",
])
def test_credentials_nginx_declines_are_refused(value: str) -> None:
    assert auth_status(_raw(value), _alice()) == 401


def _alice(password: str = "pw") -> str:
    return basic_manifests(secret=_secret("users", {"auth": f"alice:{{PLAIN}}{password}\n"}))


# -- basic authentication: the htpasswd file and the auth-map Secret ---------------------------

@pytest.mark.parametrize("sep", ["\r", "\v", "\f", "\x1c", "\x85", "\u2028"])
def test_only_lf_ends_an_htpasswd_line(sep: str) -> None:
    # nginx reads "alice:{PLAIN}a" + sep + "bob:{PLAIN}b" as one line: alice's hash ends at
    # CR or ":" (not at VT, FF, ...), and there is no user bob. Before (str.splitlines): bob
    # was a user.
    m = basic_manifests(secret=_secret("users", {"auth": f"alice:{{PLAIN}}a{sep}bob:{{PLAIN}}b\n"}))
    assert auth_status(creds("bob", "b"), m) == 401
    want = "a" if sep == "\r" else f"a{sep}bob"
    assert auth_status(creds("alice", want), m) == 200


def test_htpasswd_crlf_comments_and_trailing_fields() -> None:
    text = "# users\r\n\r\nalice:{PLAIN}a\r\ncarol:{PLAIN}c:a comment\r\n#dave:{PLAIN}d\n"
    m = basic_manifests(secret=_secret("users", {"auth": text}))
    assert auth_status(creds("alice", "a"), m) == 200
    assert auth_status(creds("carol", "c"), m) == 200
    assert auth_status(creds("carol", "c:a comment"), m) == 401
    assert auth_status(creds("dave", "d"), m) == 401
    assert auth_status(creds("#dave", "d"), m) == 401


def test_auth_map_values_are_read_as_nginx_reads_the_file() -> None:
    # dumpSecretAuthMap writes "alice:<value>\n": the hash ends at ":" or CR, spaces are kept.
    # Before: the value was taken whole (then stripped), so "pw:old" and " {PLAIN}pw" differed.
    annotations = {**BASIC, P + "auth-secret-type": "auth-map"}
    m = basic_manifests(annotations, _secret("users", {"alice": "{PLAIN}pw:note\r\n",
                                                       "bob": " {PLAIN}pw"}))
    assert auth_status(creds("alice", "pw"), m) == 200
    assert auth_status(creds("alice", "pw:note"), m) == 401
    assert auth_status(creds("bob", "pw"), m) == 401


def test_sha_hash_with_trailing_space_is_refused() -> None:
    # nginx compares "{SHA}" + base64(sha1(password)) with the stored text as a string.
    sha = "{SHA}" + base64.b64encode(hashlib.sha1(b"pw").digest()).decode()
    m = basic_manifests(secret=_secret("users", {"auth": f"alice:{sha} \nbob:{sha}\n"}))
    assert auth_status(creds("alice", "pw"), m) == 401
    assert auth_status(creds("bob", "pw"), m) == 200


def _bytes_secret(data: dict[str, bytes]) -> str:
    enc = ", ".join(f"{k!r}: {base64.b64encode(v).decode()!r}" for k, v in data.items())
    return ("\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: users, namespace: default}\n"
            f"type: Opaque\ndata: {{{enc}}}\n")


def test_bytes_that_are_not_utf8_and_colons_in_the_password() -> None:
    # nginx compares bytes: a user and a {PLAIN} password that are not UTF-8 work as written,
    # and the password is everything after the first ":" of the credentials.
    htpasswd = b"\xe9t\xe9:{PLAIN}p\xffw\nbob:{PLAIN}a:b\n"
    m = basic_manifests(secret=_bytes_secret({"auth": htpasswd}))

    def send(user: bytes, password: bytes) -> int:
        value = base64.b64encode(user + b":" + password).decode()
        return auth_status(_raw("Basic " + value), m)

    assert send(b"\xe9t\xe9", b"p\xffw") == 200
    assert send("été".encode(), b"p\xffw") == 401
    assert send(b"\xe9t\xe9", "p\xffw".encode()) == 401
    # bob's hash ends at the ":" of "{PLAIN}a:b" (a trailing field): his password is "a".
    assert send(b"bob", b"a") == 200
    assert send(b"bob", b"a:b") == 401


@pytest.mark.parametrize("value", ["192.0.2.7\x1c", "\x1f192.0.2.0/24",
                                   "10.0.0.0/8, 192.0.2.7\x1e"])
def test_separator_controls_are_not_trimmed_as_go_does_not(value: str) -> None:
    # Go's strings.TrimSpace (unicode.IsSpace) keeps U+001C..U+001F, so ParseIPNets fails and
    # the location is denied (503 for every client). Before: Python's str.strip() trimmed them
    # and the list was enforced (a denylist let every other client through).
    from ingresslib.proxy._access import route_access

    for key in ("denylist-source-range", "whitelist-source-range"):
        access, warnings = route_access({P + key: value}, P, ProxySettings(), "Ingress x/y")
        assert access is not None and access.status("198.51.100.1") == 503, key
        assert any("503" in w for w in warnings)
    # Go's spaces are trimmed: tab, LF, NBSP, U+3000.
    assert parse_source_ranges("\t192.0.2.7\n,\u00a0192.0.2.8\u3000") == ("192.0.2.7/32",
                                                                         "192.0.2.8/32")


# -- IngressASGI's fallback behind the host's basic auth ------------------------------------------

def test_asgi_fallback_does_not_get_the_checked_credentials() -> None:
    # A path of a basic-auth host that no rule matches goes to IngressASGI's ``fallback`` (the
    # default backend) once the server location's auth passed; nginx.tmpl's
    # 'proxy_set_header Authorization "";' is in that location too. Before, the fallback app
    # got the user's password; the proxy core already dropped it.
    import asyncio

    from test_asgi_conformance import asgi_call  # noqa: E402

    seen: list[list[tuple[bytes, bytes]]] = []

    async def fallback(scope: dict, receive: object, send: object) -> None:  # type: ignore[type-arg]
        seen.append(list(scope["headers"]))
        await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b""})  # type: ignore[operator]

    m = basic_manifests(secret=_secret("users", {"auth": "alice:{PLAIN}pw\n"}))
    assert "- path: /\n" in m
    m = m.replace("- path: /\n", "- path: /only\n")
    got = asyncio.run(asgi_call("GET /other HTTP/1.1\r\nHost: a.test" + creds("alice", "pw"),
                                manifests=m, fallback=fallback))
    assert got.status == 200 and len(seen) == 1
    assert all(name != b"authorization" for name, _ in seen[0])
    got = asyncio.run(asgi_call("GET /other HTTP/1.1\r\nHost: a.test", manifests=m,
                                fallback=fallback))
    assert got.status == 401 and len(seen) == 1
