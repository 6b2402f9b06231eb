"""Review of basic authentication (session 20, Q20b): ``proxy/_basicauth.py`` and
``proxy/_htpasswd.py`` against nginx (ngx_http_auth_basic_module.c, ngx_crypt.c,
ngx_http_auth_basic_user), ingress-nginx (auth/main.go, nginx.tmpl) and the crypt(3) of
ingress-nginx's image (musl: kubernetes/ingress-nginx images/nginx/README.md "NGINX base
image using alpine").

Defects fixed (each section's first tests failed before the fix):

- A CLIENT chose how long ingresslib hashed: a ``$5$``/``$6$`` password costs O(n^2) (Drepper's
  "DP" step hashes the password n times) plus O(n * rounds), and the password is whatever the
  Authorization header carries. One request with a ~6 KB password (what an 8k header line
  holds) to a known ``$6$`` user held the event loop ~0.3 s; with ``large-client-header-buffers
  4 64k`` seconds. ingress-nginx's crypt refuses such a key before hashing (musl
  src/crypt/crypt_sha512.c: "key limit is not part of the original design, added for DoS
  protection ... runtime is O(klen^2 + klen*rounds)", "#define KEY_MAX 256"; crypt_md5.c
  "#define KEY_MAX 30000"), returning "*", which never equals the stored hash (401). Now
  ``verify`` refuses a longer password without hashing (``SHA_KEY_MAX``, ``MD5_KEY_MAX``).
- ``{SHA}`` and ``{SSHA}`` compared decoded bytes, so a stored value spelled in another base64
  of the same bytes (nonzero padding bits) matched; nginx encodes its result again and compares
  the text (ngx_crypt_sha / ngx_crypt_ssha "ngx_encode_base64(&encoded, &decoded);", then
  "ngx_strcmp(encrypted, passwd->data)"), so that user never logs in there.

The guards after them (reference vectors, the htpasswd reader against a line-by-line port of
nginx's state machine, the header decoding, the realm) passed before and after.
"""

from __future__ import annotations

import base64
import hashlib
import string
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings as hsettings, strategies as st
from test_access_control_s13 import _system_crypt

from ingresslib.proxy import _basicauth, _htpasswd
from ingresslib.proxy._basicauth import basic_auth_config, decode_credentials, parse_htpasswd

sys.path.insert(0, str(Path(__file__).parent))
from test_access_control_s13 import BASIC, P, _secret, basic_manifests  # noqa: E402
from test_asgi_conformance import proxy_answer, wire  # noqa: E402

HEAD = "GET / HTTP/1.1\r\nHost: a.test"
#: musl's crypt (src/crypt/crypt_sha256.c, crypt_sha512.c "#define KEY_MAX 256"; crypt_md5.c
#: "#define KEY_MAX 30000").
SHA_KEY_MAX, MD5_KEY_MAX = 256, 30_000
_SALT_CHARS = "./0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


class _CountingHashlib:
    """Stands in for ``_htpasswd.hashlib``: counts the bytes fed to every hash it makes."""

    def __init__(self) -> None:
        self.hashed = 0

    def __getattr__(self, name: str) -> Any:
        real = getattr(hashlib, name)
        counter = self

        class _Hash:
            def __init__(self, data: bytes = b"") -> None:
                counter.hashed += len(data)
                self._h = real(data)

            def update(self, data: bytes) -> None:
                counter.hashed += len(data)
                self._h.update(data)

            def digest(self) -> bytes:
                return bytes(self._h.digest())

        return _Hash


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> _CountingHashlib:
    counting = _CountingHashlib()
    monkeypatch.setattr(_htpasswd, "hashlib", counting)
    return counting


def creds(user: bytes, password: bytes) -> str:
    return "\r\nAuthorization: Basic " + base64.b64encode(user + b":" + password).decode()


# -- a client-chosen password length: musl's KEY_MAX -------------------------------------------

@pytest.mark.parametrize("magic", ["$5$", "$6$", "$6$rounds=20000$"])
def test_sha_crypt_password_over_key_max_is_refused_without_hashing(
        magic: str, hashed: _CountingHashlib) -> None:
    pw = b"k" * (SHA_KEY_MAX + 1)
    stored = _htpasswd.sha_crypt(pw, magic + "saltsalt$")
    assert stored is not None and hashed.hashed > 0  # the wrapper counts (a real hash ran)
    hashed.hashed = 0
    # musl: "if (klen > KEY_MAX) return 0;" -> crypt "*" -> never equal: 401.
    assert _htpasswd.verify(stored, pw) is False
    assert hashed.hashed == 0
    assert _htpasswd.supported(stored)  # the user is still one of the Secret's


@pytest.mark.parametrize("magic", ["$5$", "$6$"])
def test_sha_crypt_password_of_key_max_bytes_still_verifies(magic: str) -> None:
    pw = bytes(range(1, 256)) + b"!"  # 256 bytes: musl hashes it
    assert len(pw) == SHA_KEY_MAX
    stored = _htpasswd.sha_crypt(pw, magic + "saltsalt$")
    assert stored is not None
    assert _htpasswd.verify(stored, pw) is True
    assert _htpasswd.verify(stored, pw[:-1]) is False


def test_md5_crypt_password_over_key_max_is_refused_without_hashing(
        hashed: _CountingHashlib) -> None:
    pw = b"m" * (MD5_KEY_MAX + 1)
    stored = _htpasswd.md5_crypt(pw, "saltsalt")
    hashed.hashed = 0
    assert _htpasswd.verify(stored, pw) is False  # musl crypt_md5.c KEY_MAX 30000
    assert hashed.hashed == 0
    # nginx's own apr1 (ngx_crypt_apr1: "keylen = ngx_strlen(key);") has no limit.
    apr1 = _htpasswd.md5_crypt(pw, "saltsalt", "$apr1$")
    assert _htpasswd.verify(apr1, pw) is True


def test_long_password_through_the_proxy_costs_no_hashing(hashed: _CountingHashlib) -> None:
    # A header line of ~8 KB (the default 8k buffer) holds a 6,000-byte password: before,
    # ~36 MB (6000^2) then ~60 MB more (5,000 rounds) were hashed on the event loop per request.
    stored = _htpasswd.sha_crypt(b"right", "$6$saltsalt$")
    m = basic_manifests(secret=_secret("users", {"auth": f"admin:{stored}\n"}))
    hashed.hashed = 0
    r = proxy_answer(wire(HEAD + creds(b"admin", b"x" * 6000)), manifests=m)
    assert r.status == 401
    assert hashed.hashed == 0
    r = proxy_answer(wire(HEAD + creds(b"admin", b"right")), manifests=m)
    assert r.status is None and r.upstream is not None


# -- {SHA} / {SSHA}: nginx compares the re-encoded text ----------------------------------------

def _respell(b64: str) -> str:
    """The same bytes in another base64 spelling: the last data character's unused bits set."""
    pad = len(b64) - len(b64.rstrip("="))
    assert pad, "no unused bits without padding"
    alphabet = string.ascii_uppercase + string.ascii_lowercase + string.digits + "+/"
    i = len(b64) - pad - 1
    other = alphabet[alphabet.index(b64[i]) | 1] if not alphabet.index(b64[i]) & 1 else \
        alphabet[alphabet.index(b64[i]) & ~1]
    out = b64[:i] + other + b64[i + 1:]
    assert out != b64 and base64.b64decode(out) == base64.b64decode(b64)
    return out


def test_sha_in_another_base64_spelling_never_matches() -> None:
    canonical = base64.b64encode(hashlib.sha1(b"pw").digest()).decode()
    assert _htpasswd.verify("{SHA}" + canonical, b"pw") is True
    # nginx: "{SHA}" + base64(SHA1(key)) != the stored text -> "password mismatch".
    assert _htpasswd.verify("{SHA}" + _respell(canonical), b"pw") is False


@pytest.mark.parametrize("salt", [b"abc", b"abcde", b""], ids=["pad1", "pad2", "empty-salt"])
def test_ssha_in_another_base64_spelling_never_matches(salt: bytes) -> None:
    canonical = base64.b64encode(hashlib.sha1(b"pw" + salt).digest() + salt).decode()
    assert _htpasswd.verify("{SSHA}" + canonical, b"pw") is True
    assert _htpasswd.verify("{SSHA}" + _respell(canonical), b"pw") is False


# -- guards: reference vectors -----------------------------------------------------------------

# musl's self-test vectors (bminor/musl src/crypt/crypt_md5.c, crypt_sha256.c, crypt_sha512.c:
# testkey "Xy01@#\x01\x02\x80\x7f\xff\r\n\x81\t !"), and Drepper's SHA-crypt specification's
# (salt cut at 16, rounds under 1000 written as 1000) as glibc and openssl reproduce them.
MUSL_KEY = b"Xy01@#\x01\x02\x80\x7f\xff\r\n\x81\t !"
VECTORS = [
    ("$1$abcd0123$9Qcg8DyviekV3tDGMZynJ1", MUSL_KEY),
    ("$5$rounds=1234$abc0123456789$3VfDjPt05VHFn47C/ojFZ6KRPYrOjj1lLbH.dkF3bZ6", MUSL_KEY),
    ("$6$rounds=1234$abc0123456789$BCpt8zLrc/RcyuXmCDOE1ALqMXB2MH6n1g891HhFj8.w7LxGv.FTkqq6Vxc/"
     "km3Y0jE0j24jY5PIv/oOu6reg1", MUSL_KEY),
    ("$5$rounds=5000$toolongsaltstrin$Un/5jzAHMgOGZ5.mWJpuVolil07guHPvOW8mGRcvxa5",
     b"This is just a test"),
    ("$5$rounds=1400$anotherlongsalts$Rx.j8H.h8HjEDGomFU8bDkXm3XIUnzyxf12oP84Bnq1",
     b"a very much longer text to encrypt.  This one even stretches over morethan one line."),
    ("$5$rounds=1000$roundstoolow$yfvwcWrQ8l/K0DAWyuPMDNHpIVlTQebY9l/gL972bIC",
     b"the minimum number is still observed"),
    ("$6$rounds=5000$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1y"
     "xdYcz/e1JSbq3y6JMxxl8audkUEm0", b"This is just a test"),
    ("$6$rounds=1000$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58jaTfF4"
     "ZEQpyUNGc0dqbpBYYBaHHrsX.", b"the minimum number is still observed"),
    ("$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/", b"myPassword"),  # openssl passwd -apr1
]


@pytest.mark.parametrize(("stored", "password"), VECTORS, ids=lambda v: str(v)[:14])
def test_reference_vectors(stored: str, password: bytes) -> None:
    assert _htpasswd.verify(stored, password) is True
    assert _htpasswd.verify(stored, password[:-1]) is False


def test_settings_are_written_as_crypt_writes_them() -> None:
    # Drepper: a salt is cut at 16; rounds under 1000 are 1000, and written.
    assert _htpasswd.sha_crypt(b"This is just a test", "$5$rounds=5000$toolongsaltstring") == \
        VECTORS[3][0]
    assert _htpasswd.sha_crypt(b"the minimum number is still observed",
                               "$6$rounds=10$roundstoolow") == VECTORS[7][0]


@hsettings(max_examples=40)
@given(st.binary(min_size=60, max_size=SHA_KEY_MAX).filter(lambda b: b"\0" not in b),
       st.text(alphabet=_SALT_CHARS, min_size=1, max_size=16),
       st.sampled_from(["$5$", "$6$", "$6$rounds=1000$"]))
def test_long_passwords_match_the_system_crypt(password: bytes, salt: str, magic: str) -> None:
    # Past one and two digest sizes (the P sequence of Drepper's steps 13-16).
    want = _system_crypt()(password, (magic + salt).encode())
    assert want is not None and not want.startswith(b"*"), want
    assert _htpasswd.verify(want.decode(), password) is True


# -- guards: properties ------------------------------------------------------------------------

def _hash(scheme: str, password: bytes, salt: str) -> str:
    if scheme == "{PLAIN}":
        return "{PLAIN}" + password.decode("utf-8", "surrogateescape")
    if scheme == "{SHA}":
        return "{SHA}" + base64.b64encode(hashlib.sha1(password).digest()).decode()
    if scheme == "{SSHA}":
        s = salt.encode()
        return "{SSHA}" + base64.b64encode(hashlib.sha1(password + s).digest() + s).decode()
    if scheme in ("$1$", "$apr1$"):
        return _htpasswd.md5_crypt(password, salt, scheme)
    out = _htpasswd.sha_crypt(password, scheme + salt + "$")
    assert out is not None
    return out


SCHEMES = ["{PLAIN}", "{SHA}", "{SSHA}", "$1$", "$apr1$", "$5$rounds=1000$", "$6$rounds=1000$"]


@given(st.sampled_from(SCHEMES), st.binary(max_size=SHA_KEY_MAX), st.binary(),
       st.text(alphabet=_SALT_CHARS, min_size=1, max_size=16))
def test_a_hash_verifies_its_password_and_no_other(scheme: str, password: bytes, other: bytes,
                                                    salt: str) -> None:
    stored = _hash(scheme, password, salt)
    assert _htpasswd.supported(stored)
    assert _htpasswd.verify(stored, password) is True
    assume(other != password)
    assert _htpasswd.verify(stored, other) is False


_USER = st.binary(min_size=1, max_size=40).filter(lambda b: b":" not in b)


@given(_USER, st.binary(max_size=80), st.sampled_from(["Basic", "basic", "BASIC", "bAsIc"]),
       st.integers(1, 3), st.booleans())
def test_header_decoding_round_trips(user: bytes, password: bytes, scheme: str, spaces: int,
                                     padded: bool) -> None:
    encoded = base64.b64encode(user + b":" + password)
    if not padded:
        encoded = encoded.rstrip(b"=")
    value = scheme.encode() + b" " * spaces + encoded
    assert decode_credentials(value) == (user, password)
    # What follows the first "=" is not looked at (ngx_decode_base64_internal's "break").
    assert decode_credentials(value + b"=!garbage") == (user, password)
    # A character outside the standard alphabet, anywhere: 401.
    for bad in (b"-", b"_", b".", b"\t", b"\xff"):
        assert decode_credentials(scheme.encode() + b" " + encoded[:1] + bad + encoded[1:]) \
            is None


def _nginx_lookup(file: bytes, user: bytes) -> bytes | None:
    """A line-by-line port of ngx_http_auth_basic_handler's reader: the stored hash of
    ``user`` (the header's user; nginx's ``headers_in.user.data[len]`` is the ':' that ended
    it), else None."""
    wanted = user + b":"
    state, login, start = "login", 0, 0
    for i, c in enumerate(file):
        if state == "login":
            if login == 0:
                if c in b"#\r":
                    state = "skip"
                    continue
                if c == 0x0A:
                    continue
            if c != wanted[login]:
                state = "skip"
                continue
            if login == len(user):
                state, start = "passwd", i + 1
            login += 1
        elif state == "passwd":
            if c in b"\n\r:":
                return file[start:i]
        elif c == 0x0A:
            state, login = "login", 0
    return file[start:] if state == "passwd" else None


_FILE_BYTES = st.sampled_from([b"a", b"b", b"#", b":", b"\r", b"\n", b" ", b"\xff", b"ab"])


@given(st.lists(_FILE_BYTES, max_size=40).map(b"".join),
       st.lists(st.sampled_from([b"a", b"b", b"#", b" ", b"\xff", b"\r"]), min_size=1,
                max_size=3).map(b"".join))
def test_htpasswd_reader_agrees_with_nginx(file: bytes, user: bytes) -> None:
    # (A header user holding LF is left out: nginx compares it across lines, "a\nb" matching
    # the lines "a" and "b:hash"; ingresslib refuses it.)
    # The reader BasicAuth.check uses: the parsed map, or nginx's state machine (``lookup``)
    # where a line without ":" begins the user (session 24: "a\nab:x" hides "ab" from nginx).
    want = _nginx_lookup(file, user)
    text = file.decode("utf-8", "surrogateescape")
    if any(user.startswith(line) for line in _basicauth.odd_lines(text)):
        assert _basicauth.lookup(file, user) == want
        return
    got = parse_htpasswd(text).get(user.decode("utf-8", "surrogateescape"))
    assert (None if got is None else got.encode("utf-8", "surrogateescape")) == want


# -- guards: the realm and the challenge ---------------------------------------------------------

@given(st.text(max_size=20))
def test_the_challenge_never_carries_a_quote_or_backslash(realm: str) -> None:
    config, reason, _ = basic_auth_config({**BASIC, P + "auth-realm": realm}, P, "default")
    assert reason is None and config is not None
    auth = _basicauth.BasicAuth(config[0], config[1], config[2], config[3], lambda: (), None, "")
    value = auth.challenge
    assert value.startswith(b'Basic realm="') and value.endswith(b'"')
    inner = value[len(b'Basic realm="'):-1]
    assert b'"' not in inner and b"\\" not in inner and b"$" not in inner
