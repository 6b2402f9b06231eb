"""Review of who may reach a route (session 18): source ranges, basic authentication, denials.

Defects fixed (the tests of each section failed before the fix; the guards at the end,
reference algorithms and constant-time comparison, passed before and after):

- ``{SSHA}`` with an empty salt (the stored value decodes to the 20-byte SHA-1 digest alone)
  refused its user with a "cannot verify" warning; nginx accepts it: src/core/ngx_crypt.c
  ``ngx_crypt_ssha`` hashes "ngx_sha1_update(&sha1, decoded.data + 20, decoded.len - 20);"
  (nothing) and compares the re-encoding with the stored text.
- ``auth-realm`` was used as written; ingress-nginx validates it as written (CharsWithSpace)
  and then ``GetStringAnnotation`` trims it (parser/main.go ``normalizeString``:
  "strings.TrimSpace(line)"), so ``" Admin area "`` is ``auth_basic "Admin area";``.
- a ``$5$``/``$6$`` hash whose ``rounds=`` holds a digit Python's ``int`` refuses (``²``,
  more than 4,300 digits) raised ValueError while the Secret was read: no user of the Secret
  could log in (the request raised out of the proxy core; ``ingresslib check`` ended in a
  traceback). Now that user is refused, with the "cannot verify" warning.
- ``auth-secret: /users`` (an empty namespace) denied the location as "a Secret of another
  namespace"; client-go's ``cache.SplitMetaNamespaceKey`` gives namespace "" and auth/main.go
  takes the Ingress's ("if sns == "" { sns = ing.Namespace }").
- a basic-auth Secret that cannot be used (missing, no key ``auth``) answered 403 to a client
  the source ranges refuse, 503 to the others; ingress-nginx denies the location for it
  (auth/main.go: "unexpected error reading secret", LocationDenied) and nginx.tmpl writes
  "return 503;" in place of the allow/deny lines: 503 for every client.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from ingresslib._load import parse_manifests
from ingresslib._router import Router
from ingresslib.proxy import Proxy, SendDownstream
from ingresslib.proxy import _htpasswd
from ingresslib.proxy._basicauth import basic_auth_config

sys.path.insert(0, str(Path(__file__).parent))
from _proxy_harness import status_of  # noqa: E402
from test_access_control_s13 import (  # noqa: E402
    ALLOW, BASIC, HTPASSWD, P, _secret, basic_manifests, creds)
from test_asgi_conformance import asgi_call, proxy_answer, wire  # noqa: E402

HEAD = "GET / HTTP/1.1\r\nHost: a.test"


def _ssha(password: bytes, salt: bytes) -> str:
    return "{SSHA}" + base64.b64encode(hashlib.sha1(password + salt).digest() + salt).decode()


# -- {SSHA} with an empty salt ------------------------------------------------------------------

def test_ssha_with_an_empty_salt_is_verified_as_nginx_does() -> None:
    stored = _ssha(b"pw", b"")
    assert _htpasswd.supported(stored)
    assert _htpasswd.verify(stored, b"pw") is True
    assert _htpasswd.verify(stored, b"pwx") is False
    assert _htpasswd.verify(stored, b"") is False
    # Shorter than a digest: never equal to nginx's 28-character re-encoding; refused.
    short = "{SSHA}" + base64.b64encode(hashlib.sha1(b"pw").digest()[:19]).decode()
    assert _htpasswd.verify(short, b"pw") is None and not _htpasswd.supported(short)


def test_ssha_empty_salt_user_through_the_proxy() -> None:
    m = basic_manifests(secret=_secret("users", {"auth": f"erin:{_ssha(b'pw', b'')}\n"}))
    r = proxy_answer(wire(HEAD + creds("erin", "pw")), manifests=m)
    assert r.status is None and r.upstream is not None
    assert proxy_answer(wire(HEAD + creds("erin", "no")), manifests=m).status == 401


# -- a rounds= count Python reads differently from crypt's strtoul -------------------------------

ODD_ROUNDS = ["$5$rounds=\u00b2$salt$x", "$6$rounds=1\u00b9$salt$x",
              "$6$rounds=" + "1" * 5000 + "$salt$x", "$5$rounds=" + "0" * 5000 + "1000$abc$x"]


@pytest.mark.parametrize("stored", ODD_ROUNDS, ids=["super2", "super1", "5000-digits", "zeros"])
def test_odd_rounds_refuse_the_user_without_an_exception(stored: str) -> None:
    # int() reads "²" as a digit and raises, and refuses more than 4,300 digits: the
    # ValueError came out of reading the Secret, so no user of it could log in.
    assert _htpasswd.verify(stored, b"pw") in (None, False)
    assert _htpasswd.supported(stored) == (_htpasswd.verify(stored, b"") is not None)
    m = basic_manifests(secret=_secret("users", {"auth": f"alice:{stored}\nbob:{{PLAIN}}pw\n"}))
    r = proxy_answer(wire(HEAD + creds("bob", "pw")), manifests=m)
    assert r.status is None and r.upstream is not None
    assert proxy_answer(wire(HEAD + creds("alice", "pw")), manifests=m).status == 401


def test_leading_zeros_in_rounds_are_read_as_crypt_reads_them() -> None:
    # crypt writes "rounds=1000$" whatever the setting's spelling: the stored text differs.
    good = _htpasswd.sha_crypt(b"pw", "$5$rounds=1000$abc$")
    assert good is not None and _htpasswd.verify(good, b"pw") is True
    assert _htpasswd.sha_crypt(b"pw", "$5$rounds=0001000$abc$") == good
    assert _htpasswd.verify(good.replace("rounds=1000", "rounds=0001000"), b"pw") is False


# -- auth-realm trimmed -------------------------------------------------------------------------

@pytest.mark.parametrize("realm", [" Admin area", "Admin area  ", "  Admin area  "])
def test_auth_realm_is_trimmed_as_ingress_nginx_reads_it(realm: str) -> None:
    annotations = {**BASIC, P + "auth-realm": realm}
    config, reason, warnings = basic_auth_config(annotations, P, "default")
    assert reason is None and not warnings and config is not None
    assert config[0] == "Admin area"
    r = proxy_answer(wire(HEAD), manifests=basic_manifests(annotations))
    assert r.status == 401 and r.header(b"www-authenticate") == b'Basic realm="Admin area"'


@pytest.mark.asyncio
async def test_auth_realm_is_trimmed_in_the_adapter() -> None:
    got = await asgi_call(HEAD, manifests=basic_manifests({**BASIC, P + "auth-realm": " x y "}))
    assert got.status == 401 and got.header(b"www-authenticate") == b'Basic realm="x y"'


def test_spaces_only_realm_is_empty() -> None:
    # normalizeString("   ") is "": parseString's InvalidAnnotationContent, the realm ignored.
    config, _, _ = basic_auth_config({**BASIC, P + "auth-realm": "   "}, P, "default")
    assert config is not None and config[0] == ""


# -- auth-secret "/name" -----------------------------------------------------------------------

def test_auth_secret_with_an_empty_namespace_is_the_ingress_namespace() -> None:
    # client-go cache.SplitMetaNamespaceKey("/users") is ("", "users"); auth/main.go then
    # "if sns == "" { sns = ing.Namespace }". A template writing "{{ ns }}/users" with an
    # empty ns gives this.
    annotations = {**BASIC, P + "auth-secret": "/users"}
    config, reason, _ = basic_auth_config(annotations, P, "default")
    assert reason is None and config is not None and config[1:3] == ("default", "users")
    r = proxy_answer(wire(HEAD + creds("alice", "pw")), manifests=basic_manifests(annotations))
    assert r.status is None and r.upstream is not None
    for bad in ("users/", "/", "//users", "a/b/c"):
        assert basic_auth_config({**BASIC, P + "auth-secret": bad}, P, "default")[0] is None


# -- an unusable Secret denies the location before the source ranges ----------------------------

NO_SECRET = [("missing", ""), ("no-auth-key", _secret("users", {"htpasswd": HTPASSWD}))]


@pytest.mark.parametrize(("kind", "secret"), NO_SECRET, ids=[k for k, _ in NO_SECRET])
@pytest.mark.parametrize("peer", ["192.0.2.1", "::ffff:192.0.2.1", "2001:db8::1", "10.1.2.3"])
def test_unusable_secret_is_503_for_every_client(kind: str, secret: str, peer: str) -> None:
    m = basic_manifests({**BASIC, ALLOW: "10.0.0.0/8"}, secret)
    r = proxy_answer(wire(HEAD + creds("alice", "pw")), manifests=m, peer=peer)
    assert r.status == 503, kind


@pytest.mark.asyncio
async def test_unusable_secret_is_503_in_the_adapter() -> None:
    m = basic_manifests({**BASIC, ALLOW: "10.0.0.0/8"}, "")
    got = await asgi_call(HEAD, manifests=m, client=("192.0.2.1", 40000))
    assert got.status == 503 and not got.app_ran


def test_secret_denial_follows_the_router_secrets() -> None:
    # Once the Secret exists, the source ranges answer first again (403 before 401).
    res = parse_manifests(basic_manifests({**BASIC, ALLOW: "10.0.0.0/8"}, ""))
    router = Router(res, seed=1)
    proxy = Proxy(router, clock=None, request_id=lambda: "0" * 32)

    def status(peer: str, pw: str = "pw") -> int:
        conn = proxy.connection((peer, 1), tls=False, local_port=80, now=0.0)
        conn.start(0.0)
        acts = conn.receive_data(wire(HEAD + creds("alice", pw)), 0.0)
        out = b"".join(a.data for a in acts if isinstance(a, SendDownstream))
        return status_of(out) if out else 0

    assert status("192.0.2.1") == 503 and status("10.1.2.3") == 503
    secrets = parse_manifests(_secret("users", {"auth": HTPASSWD})).secrets
    router.update(dataclasses.replace(res, secrets=secrets))
    assert status("192.0.2.1") == 403
    assert status("10.1.2.3") == 0 and status("10.1.2.3", "no") == 401
    router.update(res)
    assert status("192.0.2.1") == 503


def test_combined_access_secret_denial_is_never_remembered() -> None:
    # A host's default backend under the host owner's control as well (``combine_access``):
    # the second part's Secret missing denies (503) whoever the ranges refuse, and only while
    # it is missing (the verdicts the ranges leave per address are remembered, this is not).
    from ingresslib.proxy._access import build_access, combine_access
    from ingresslib.proxy._actions import access_answer
    from ingresslib.proxy._basicauth import BasicAuth

    present = parse_manifests(_secret("users", {"auth": HTPASSWD})
                              + _secret("more", {"auth": HTPASSWD})).secrets
    current: list[Any] = [tuple(s for s in present if s.metadata.name == "users")]

    def basic(name: str) -> BasicAuth:
        return BasicAuth("r", "default", name, False, lambda: current[0], None, "test")

    first = build_access(None, (), (), ("10.0.0.0/8",), basic("users"))
    second = build_access(None, (), ("10.9.0.0/16",), (), basic("more"))
    both = combine_access(first, second)
    assert both is not None and both.also is not None and both.also.basic is not None
    for _ in range(2):  # the second time from the remembered verdicts
        assert both.status("192.0.2.1") == 503   # first's range refuses
        assert both.status("10.9.1.1") == 503    # second's denylist refuses
        assert access_answer(both, "10.1.1.1", lambda: None)[0] == 401
    current[0] = present
    assert both.status("192.0.2.1") == 403 and both.status("10.9.1.1") == 403
    current[0] = ()
    assert both.status("192.0.2.1") == 503 and both.status("10.1.1.1") == 0
    assert access_answer(both, "10.1.1.1", lambda: None)[0] == 503


# -- guards: reference algorithms and constant-time comparison ----------------------------------

@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
@hsettings(max_examples=25, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1,
               max_size=70),
       st.text(alphabet="./0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
               min_size=1, max_size=8))
def test_apr1_matches_openssl(password: str, salt: str) -> None:
    # Apache's apr1 as OpenSSL computes it ("openssl passwd -apr1"), an independent
    # implementation: the system crypt(3) has no apr1.
    want = subprocess.run(["openssl", "passwd", "-apr1", "-salt", salt, "-stdin"],
                          input=password + "\n", capture_output=True, text=True,
                          check=True).stdout.strip()
    assert _htpasswd.md5_crypt(password.encode(), salt, "$apr1$") == want
    assert _htpasswd.verify(want, password.encode()) is True
    assert _htpasswd.verify(want, password.encode() + b"x") is False


@pytest.mark.parametrize("stored", [
    "{PLAIN}pw", "{SHA}" + base64.b64encode(hashlib.sha1(b"pw").digest()).decode(),
    _ssha(b"pw", b"salt"), _ssha(b"pw", b""), "$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/",
    "$1$saltsalt$qjXMvbEw8oaL.CzflDtaK/", "$5$rounds=1000$s$x"])
def test_every_scheme_compares_in_constant_time(stored: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    real = hmac.compare_digest

    def counting(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return real(a, b)

    # _htpasswd calls ``hmac.compare_digest`` through the module: every comparison is seen.
    monkeypatch.setattr(hmac, "compare_digest", counting)
    assert _htpasswd.verify(stored, b"guess") is False
    assert len(calls) == 1
