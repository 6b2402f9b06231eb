"""Session 25 (AC): access control reviewed against ingress-nginx and nginx.

References (search corpus "code"):
- nginx src/core/ngx_crypt.c ``ngx_crypt``: ``$apr1$``, ``{PLAIN}``, ``{SSHA}`` and ``{SHA}``
  are nginx's own; everything else goes to "/* fallback to libc crypt() */ return
  ngx_libc_crypt(pool, key, salt, encrypted);", and ngx_http_auth_basic_crypt_handler compares
  the result with the stored text ("ngx_strcmp(encrypted, passwd->data)").
- musl src/crypt/crypt_r.c ``__crypt_r``: a setting not starting with ``$1$``, ``$2x$``,
  ``$5$``, ``$6$`` is ``__crypt_des``'s; src/crypt/crypt_des.c ``_crypt_extended_r_uut``,
  "old"-style: "setting - 2 chars of salt, key - up to 8 characters", each key byte shifted
  left by one bit, 25 encryptions of a zero block.

The tests marked DEFECT failed on the tree before this change.

The vectors were made with the system's crypt(3) (glibc libcrypt, whose traditional DES is
musl's for a salt of ``[./0-9A-Za-z]``): ``crypt(b"password", b"ab")`` is the classic
``abJnggxhB/yWI``.
"""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingresslib.proxy import _htpasswd

sys.path.insert(0, str(Path(__file__).parent))
from _budget import examples  # noqa: E402
from _proxy_harness import ingress_yaml  # noqa: E402
from test_access_control_s13 import SERVICE, _secret  # noqa: E402
from test_asgi_conformance import asgi_call, proxy_answer, wire  # noqa: E402

P = "nginx.ingress.kubernetes.io/"

#: (stored, password): crypt(3) results (glibc libcrypt).
DES_VECTORS = [
    ("abJnggxhB/yWI", b"password"),
    ("r3uRf5Vs63hJY", b"myPassword"),  # 10 bytes: only the first 8 count
    ("..X8NBuQ4l6uQ", b""),
    ("./qw5JW./79Vg", b"12345678x"),
    ("zZZg1dxIwRUxg", b"\x80\xff\x01secret"),  # bytes over 0x7f: their top bit is dropped
]


def test_des_crypt_hashes_are_verified() -> None:
    """DEFECT: a traditional DES crypt(3) hash (``htpasswd -d``, ``openssl passwd -crypt``)
    was "a format ingresslib cannot verify" and its user refused (401), where nginx hands it
    to crypt(3) (ngx_libc_crypt) and musl's crypt verifies it."""
    for stored, password in DES_VECTORS:
        assert _htpasswd.des_crypt(password, stored[:2]) == stored
        assert _htpasswd.supported(stored), stored
        assert _htpasswd.verify(stored, password) is True, stored
        # Wrong passwords; past the 8th byte nothing counts.
        assert _htpasswd.verify(stored, b"x" + password) is False
        if len(password) >= 8:
            assert _htpasswd.verify(stored, password[:8] + b"anything") is True
    assert _htpasswd.verify("abJnggxhB/yWI", b"passwore") is False
    assert _htpasswd.verify("abJnggxhB/yWI", b"Password") is False


def test_des_verdicts_are_remembered_and_offloaded() -> None:
    """25 DES encryptions in Python: like MD5-/SHA-crypt, a verification worth remembering and
    running off the event loop (``hashes``)."""
    assert _htpasswd.hashes("abJnggxhB/yWI", b"password")


def test_only_des_results_are_read_as_des() -> None:
    """What musl's DES can give (13 characters of ``./0-9A-Za-z``) is verified; another text
    without ``$`` (a plain password, BSDi's ``_`` extended DES, 12 or 14 characters) stays
    unverifiable: refused with the warning, as before."""
    for stored in ("_J9..abcdefghijkl", "abJnggxhB/yW", "abJnggxhB/yWIx", "abJnggxhB/yW!",
                   "$2y$10$abcdefghijklmnopqrstuu5VpYZ5v5d8JfG0Y7p2v3K4mQ9X0u", "plain"):
        assert _htpasswd.verify(stored, b"password") is None, stored
        assert not _htpasswd.supported(stored), stored


@settings(max_examples=examples(0.5), deadline=None)
@given(password=st.binary(min_size=0, max_size=12).filter(lambda b: b"\0" not in b),
       salt=st.sampled_from(["ab", "..", "zZ", "/9"]))
def test_des_crypt_round_trips(password: bytes, salt: str) -> None:
    stored = _htpasswd.des_crypt(password, salt)
    assert len(stored) == 13 and stored[:2] == salt
    assert _htpasswd.verify(stored, password) is True
    assert _htpasswd.verify(stored, password[:7] + bytes([password[7] ^ 0x02])
                            if len(password) >= 8 else password + b"!") is False


# -- through the proxy core and IngressASGI ----------------------------------------------------

HTPASSWD = "des:abJnggxhB/yWI\nlong:r3uRf5Vs63hJY\n"
BASIC = {P + "auth-type": "basic", P + "auth-secret": "users", P + "auth-realm": "R"}
MANIFESTS = ingress_yaml("admin", "a.test", BASIC) + SERVICE + _secret("users",
                                                                        {"auth": HTPASSWD})
HEAD = "GET / HTTP/1.1\r\nHost: a.test"


def _creds(user: str, password: str) -> str:
    return "\r\nAuthorization: Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_des_user_through_the_proxy() -> None:
    """DEFECT: the proxy answered 401 to a DES user's right password."""
    for user, password in (("des", "password"), ("long", "myPassword"), ("long", "myPasswo")):
        r = proxy_answer(wire(HEAD + _creds(user, password)), manifests=MANIFESTS)
        assert r.status is None and r.upstream is not None, (user, password)
        assert b"authorization" not in r.upstream.lower()
    for user, password in (("des", "passwore"), ("des", ""), ("long", "myPassw")):
        assert proxy_answer(wire(HEAD + _creds(user, password)),
                            manifests=MANIFESTS).status == 401


@pytest.mark.asyncio
async def test_des_user_in_the_adapter() -> None:
    """DEFECT: IngressASGI answered 401 to a DES user's right password."""
    got = await asgi_call(HEAD + _creds("des", "password"), manifests=MANIFESTS)
    assert got.status == 200 and got.app_ran
    got = await asgi_call(HEAD + _creds("des", "wrong"), manifests=MANIFESTS)
    assert got.status == 401 and not got.app_ran
