"""Basic auth's verification cost on the event loop (session 22, H5).

The hashing (``$6$``: ~3 ms of pure Python per verification, benchmarks/bench_basicauth.py)
runs on the proxy's one event loop. Before, each ``BasicAuth`` (one per route and table)
remembered its verdicts per ``Authorization`` value in one dict emptied when full, so:

- 4,096 requests naming users that do not exist (no hashing: as cheap as any request) emptied
  it, and every logged-in user hashed again (200 ``$6$`` users: ~0.6 s of the loop per 4,096
  such requests);
- a reload (a new ``Resources``, as ``serve`` builds on any object's change) that left the
  Secret as it was made every user hash again, and so did each other route naming the same
  Secret, and each other spelling of the same credentials (``basic``, no padding).

Now the verdicts of hashing verifications are remembered process-wide per (stored hash,
password), under a keyed BLAKE2b, least recently used first out, the good ones apart from the
refused ones; nothing is remembered for answers that need no hashing. The hash calls are
counted (``_htpasswd.sha_crypt`` / ``md5_crypt`` wrapped), never timed.
"""

from __future__ import annotations

import base64
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingresslib._load import parse_manifests
from ingresslib._router import Router
from ingresslib.proxy import Proxy, SendDownstream, _basicauth, _htpasswd

sys.path.insert(0, str(Path(__file__).parent))
from _budget import examples  # noqa: E402
from _proxy_harness import status_of  # noqa: E402
from test_access_control_s13 import _secret, basic_manifests, creds  # noqa: E402
from test_asgi_conformance import wire  # noqa: E402

PW6 = _htpasswd.sha_crypt(b"pw", "$6$saltsalt$") or ""
NEW6 = _htpasswd.sha_crypt(b"new", "$6$othersalt$") or ""


class _Calls:
    def __init__(self) -> None:
        self.n = 0


@pytest.fixture(autouse=True)
def fresh_caches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with empty process-wide caches (where the tree has them)."""
    if hasattr(_basicauth, "_GOOD"):
        monkeypatch.setattr(_basicauth, "_GOOD", _basicauth._Verdicts(_basicauth._CACHE_MAX))
        monkeypatch.setattr(_basicauth, "_BAD", _basicauth._Verdicts(_basicauth._CACHE_MAX))


@pytest.fixture
def hashed(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Calls]:
    """Counts MD5-crypt and SHA-crypt computations."""
    calls = _Calls()
    sha, md5 = _htpasswd.sha_crypt, _htpasswd.md5_crypt

    def counting_sha(password: bytes, setting: str) -> str | None:
        calls.n += 1
        return sha(password, setting)

    def counting_md5(password: bytes, salt: str, magic: str = "$1$") -> str:
        calls.n += 1
        return md5(password, salt, magic)

    monkeypatch.setattr(_htpasswd, "sha_crypt", counting_sha)
    monkeypatch.setattr(_htpasswd, "md5_crypt", counting_md5)
    yield calls


def _auth(users: dict[str, str], warn: Any = None) -> tuple[_basicauth.BasicAuth, list[Any]]:
    """A BasicAuth over a Secret of ``users``; the returned list holds the Resources its
    ``secrets`` reads (replace ``[0]`` to reload)."""
    text = "".join(f"{u}:{h}\n" for u, h in users.items())
    current = [parse_manifests(_secret("users", {"auth": text}))]
    auth = _basicauth.BasicAuth("r", "default", "users", False, lambda: current[0].secrets,
                                warn, "Ingress default/x")
    auth.load()
    return auth, current


def _header(user: str, password: str, spelling: bytes = b"Basic ") -> bytes:
    return spelling + base64.b64encode(f"{user}:{password}".encode())


# -- the cache's behaviour ------------------------------------------------------------------------

def test_second_request_of_verified_credentials_hashes_nothing(hashed: _Calls) -> None:
    auth, _ = _auth({"alice": PW6})
    assert auth.check(_header("alice", "pw")) == (0, "alice")
    assert hashed.n == 1
    for _ in range(20):
        assert auth.check(_header("alice", "pw")) == (0, "alice")
    assert hashed.n == 1


def test_wrong_password_after_a_good_one_is_refused(hashed: _Calls) -> None:
    auth, _ = _auth({"alice": PW6, "bob": PW6})
    assert auth.check(_header("alice", "pw")) == (0, "alice")
    for wrong in ("pw ", "Pw", "", "pwpw", "p"):
        assert auth.check(_header("alice", wrong)) == (401, None)
        assert auth.check(_header("alice", wrong)) == (401, None)  # remembered as refused
    # bob has the same hash: the same password is good for him too (the hash is the key),
    # and another user's name with alice's password is no one's.
    assert auth.check(_header("bob", "pw")) == (0, "bob")
    assert auth.check(_header("carol", "pw")) == (401, None)
    assert auth.check(_header("alice", "pw")) == (0, "alice")
    assert hashed.n == 1 + 5


def test_a_refused_password_is_never_remembered_as_good(hashed: _Calls) -> None:
    auth, _ = _auth({"alice": PW6})
    assert auth.check(_header("alice", "nope")) == (401, None)
    assert len(_basicauth._GOOD) == 0 and len(_basicauth._BAD) == 1
    assert auth.check(_header("alice", "pw")) == (0, "alice")
    assert auth.check(_header("alice", "nope")) == (401, None)
    assert len(_basicauth._GOOD) == 1 and len(_basicauth._BAD) == 1 and hashed.n == 2


def test_a_secret_change_invalidates_the_old_password(hashed: _Calls) -> None:
    auth, current = _auth({"alice": PW6})
    assert auth.check(_header("alice", "pw")) == (0, "alice")
    current[0] = parse_manifests(_secret("users", {"auth": f"alice:{NEW6}\n"}))
    assert auth.check(_header("alice", "pw")) == (401, None)
    assert auth.check(_header("alice", "new")) == (0, "alice")
    assert hashed.n == 3
    # Back to the old hash: the old password is good again, remembered (the pair is the key).
    current[0] = parse_manifests(_secret("users", {"auth": f"alice:{PW6}\n"}))
    assert auth.check(_header("alice", "pw")) == (0, "alice")
    assert auth.check(_header("alice", "new")) == (401, None)
    # A user removed from the Secret is refused whatever was remembered.
    current[0] = parse_manifests(_secret("users", {"auth": "bob:{PLAIN}x\n"}))
    assert auth.check(_header("alice", "pw")) == (401, None)
    assert hashed.n == 4


def test_the_cache_holds_no_password() -> None:
    secret = "a-long-password-to-find"
    stored = _htpasswd.sha_crypt(secret.encode(), "$6$saltsalt$") or ""
    auth, _ = _auth({"alice": stored})
    assert auth.check(_header("alice", secret)) == (0, "alice")
    keys = list(_basicauth._GOOD._keys)
    assert len(keys) == 1 and all(len(k) == 32 and secret.encode() not in k for k in keys)
    mac = _basicauth._mac(stored)  # continued as check() continues it
    mac.update(secret.encode())
    assert keys[0] == mac.digest()


# -- defects: the verdicts were lost (each costing a hash per user) ------------------------------

def test_unknown_users_do_not_evict_logged_in_users(hashed: _Calls) -> None:
    """Failed before: 4,096 requests naming no user of the Secret (cheap to send) emptied the
    cache, and the logged-in user hashed again."""
    auth, _ = _auth({"alice": PW6})
    assert auth.check(_header("alice", "pw")) == (0, "alice")
    for i in range(_basicauth._CACHE_MAX + 10):
        assert auth.check(_header(f"nobody{i}", "x")) == (401, None)
    assert auth.check(_header("alice", "pw")) == (0, "alice")
    assert hashed.n == 1


def test_a_reload_that_keeps_the_secret_hashes_nothing(hashed: _Calls) -> None:
    """Failed before: a new Resources read from the same manifests (what ``serve`` builds on
    any change) emptied the route's cache."""
    auth, current = _auth({"alice": PW6})
    assert auth.check(_header("alice", "pw")) == (0, "alice")
    current[0] = parse_manifests(_secret("users", {"auth": f"alice:{PW6}\n"}))
    assert auth.check(_header("alice", "pw")) == (0, "alice")
    assert hashed.n == 1


def test_routes_sharing_a_secret_hash_once(hashed: _Calls) -> None:
    """Failed before: each route (each Ingress path naming the Secret) verified on its own."""
    first, _ = _auth({"alice": PW6})
    second, _ = _auth({"alice": PW6})
    assert first.check(_header("alice", "pw")) == (0, "alice")
    assert second.check(_header("alice", "pw")) == (0, "alice")
    assert hashed.n == 1


@pytest.mark.parametrize("spelling", [b"basic ", b"BASIC   ", b"Basic "])
def test_another_spelling_of_the_same_credentials_hashes_nothing(spelling: bytes,
                                                                 hashed: _Calls) -> None:
    """Failed before (the key was the header's text): "basic", extra spaces, no padding, text
    after the first "=" are the same credentials to nginx's decoder."""
    auth, _ = _auth({"alice": PW6})
    assert auth.check(_header("alice", "pw")) == (0, "alice")
    encoded = base64.b64encode(b"alice:pw")
    assert encoded.endswith(b"=")
    for header in (spelling + encoded, spelling + encoded.rstrip(b"="),
                   spelling + encoded + b"garbage"):
        assert auth.check(header) == (0, "alice")
    assert hashed.n == 1


def test_through_the_proxy_flood_and_reload(hashed: _Calls) -> None:
    """The proxy's own BasicAuth objects: unknown-user requests and a reload of equal
    manifests (Router.update) cost no hash of the logged-in user. (Failed before.)"""
    m = basic_manifests(secret=_secret("users", {"auth": f"alice:{PW6}\n"}))
    router = Router(parse_manifests(m), seed=1)
    proxy = Proxy(router, clock=None, request_id=lambda: "0" * 32)

    def status(user: str, pw: str) -> int:
        conn = proxy.connection(("192.0.2.1", 1), tls=False, local_port=80, now=0.0)
        conn.start(0.0)
        acts = conn.receive_data(wire("GET / HTTP/1.1\r\nHost: a.test" + creds(user, pw)), 0.0)
        out = b"".join(a.data for a in acts if isinstance(a, SendDownstream))
        return status_of(out) if out else 0

    assert status("alice", "pw") == 0 and hashed.n == 1
    for i in range(_basicauth._CACHE_MAX + 10):
        assert status(f"u{i}", "x") == 401
    assert status("alice", "pw") == 0
    router.update(parse_manifests(m))
    assert status("alice", "pw") == 0 and status("alice", "no") == 401
    assert hashed.n == 2


# -- the bound ------------------------------------------------------------------------------------

def test_the_caches_are_bounded_least_recently_used_out(hashed: _Calls,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_basicauth, "_GOOD", _basicauth._Verdicts(3))
    monkeypatch.setattr(_basicauth, "_BAD", _basicauth._Verdicts(2))
    users = {f"u{i}": _htpasswd.md5_crypt(f"p{i}".encode(), f"salt{i}") for i in range(5)}
    hashed.n = 0
    auth, _ = _auth(users)
    for i in range(3):
        assert auth.check(_header(f"u{i}", f"p{i}")) == (0, f"u{i}")
    assert auth.check(_header("u0", "p0")) == (0, "u0")  # u0 used again: u1 is the oldest
    assert auth.check(_header("u3", "p3")) == (0, "u3")  # evicts u1
    assert len(_basicauth._GOOD) == 3 and hashed.n == 4
    assert auth.check(_header("u0", "p0")) == (0, "u0")
    assert auth.check(_header("u2", "p2")) == (0, "u2")
    assert hashed.n == 4
    assert auth.check(_header("u1", "p1")) == (0, "u1")  # hashed again
    assert hashed.n == 5
    # Wrong passwords fill their own cache only: the good ones stay.
    for i in range(10):
        assert auth.check(_header("u4", f"wrong{i}")) == (401, None)
    assert len(_basicauth._BAD) == 2 and len(_basicauth._GOOD) == 3 and hashed.n == 15
    assert auth.check(_header("u1", "p1")) == (0, "u1")
    assert hashed.n == 15


def test_answers_without_hashing_are_not_remembered(hashed: _Calls) -> None:
    auth, _ = _auth({"alice": PW6, "plain": "{PLAIN}pw", "huge": "$6$rounds=30000$s$x",
                     "bcrypt": "$2y$10$abcdefghijklmnopqrstuu5VpYZ5v5d8JfG0Y7p2v3K4mQ9X0u"})
    for header in (b"", b"Bearer x", b"Basic !!!!", _header("nobody", "pw"),
                   _header("alice", "x" * 257), _header("plain", "pw"), _header("plain", "no"),
                   _header("huge", "pw"), _header("bcrypt", "pw")):
        for _ in range(2):
            auth.check(header)
    assert auth.check(_header("plain", "pw")) == (0, "plain")
    assert len(_basicauth._GOOD) == 0 and len(_basicauth._BAD) == 0 and hashed.n == 0


@settings(max_examples=examples(0.2), deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["u0", "u1", "u2"]),
                          st.sampled_from(["p0", "p1", "p2", "x"])), max_size=12))
def test_verdicts_equal_verify_whatever_the_order(requests: list[tuple[str, str]]) -> None:
    """Any sequence of credentials gets what ``verify`` says of each, the cache notwithstanding
    (a tiny cache, so that evictions happen)."""
    users = {f"u{i}": _MD5[i] for i in range(3)}
    old = _basicauth._GOOD, _basicauth._BAD
    _basicauth._GOOD, _basicauth._BAD = _basicauth._Verdicts(2), _basicauth._Verdicts(2)
    try:
        auth, _ = _auth(users)
        for user, pw in requests:
            want = (0, user) if _htpasswd.verify(users[user], pw.encode()) else (401, None)
            assert auth.check(_header(user, pw)) == want
            assert auth.check(_header(user, pw)) == want
    finally:
        _basicauth._GOOD, _basicauth._BAD = old


_MD5 = [_htpasswd.md5_crypt(f"p{i}".encode(), f"s{i}") for i in range(3)]


# -- rounds: musl's limits, and the warning ------------------------------------------------------

def test_rounds_are_read_as_musl_reads_them() -> None:
    # musl: "else if (u > ROUNDS_MAX) return 0;" with ROUNDS_MAX 9999999 (glibc clamps at
    # 999,999,999); ingresslib verifies up to ROUNDS_LIMIT and names the rest.
    assert _htpasswd.rounds_over_limit("$6$rounds=9999999$salt$x") == 9_999_999
    assert _htpasswd.rounds_over_limit("$5$rounds=0020001$salt$x") == 20_001
    assert _htpasswd.rounds_over_limit("$6$rounds=10000000$salt$x") is None  # musl's "*"
    assert _htpasswd.rounds_over_limit("$6$rounds=20000$salt$x") is None
    assert _htpasswd.rounds_over_limit("$6$salt$x") is None
    for stored in ("$6$rounds=9999999$salt$x", "$6$rounds=10000000$salt$x",
                   "$6$rounds=999999999$salt$x", "$6$rounds=20001$salt$x"):
        assert not _htpasswd.supported(stored)
        assert _htpasswd.verify(stored, b"pw") is None
    assert _htpasswd.supported("$6$rounds=20000$salt$x")
    assert _htpasswd.supported("$6$rounds=10$salt$x")  # ROUNDS_MIN: 1000


def test_a_hash_over_the_rounds_limit_is_named_in_the_warning() -> None:
    """Failed before: the warning said "a password hash format ingresslib cannot verify
    (supported: ... $6$)" of a $6$ hash (passlib's default is 656,000 rounds)."""
    said: list[Any] = []
    _auth({"alice": "$6$rounds=656000$salt$x", "bob": "$2y$10$abc"}, said.append)
    text = [str(w) for w in said]
    assert len(text) == 2, text
    assert "'alice'" in text[0] and "656,000 rounds" in text[0] and "20,000" in text[0]
    assert "'bob'" in text[1] and "cannot verify" in text[1]


def test_the_refusal_of_a_huge_rounds_hash_hashes_nothing(hashed: _Calls) -> None:
    auth, _ = _auth({"alice": "$6$rounds=999999999$salt$x"})
    for pw in ("pw", "x", ""):
        assert auth.check(_header("alice", pw)) == (401, None)
    assert hashed.n == 0


def test_verdicts_from_several_threads_stay_bounded_and_right() -> None:
    """No lock: interleaved hits and adds may forget a key, never invent one, and the bound
    holds (give or take one key per thread at the moment of a race)."""
    import threading

    cache = _basicauth._Verdicts(8)
    wrong: list[bytes] = []

    def work(n: int) -> None:
        for i in range(2000):
            key = b"%d-%d" % (n, i % 20)
            if key not in cache:
                cache.add(key)
            if b"never" in cache:
                wrong.append(b"never")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not wrong and len(cache) <= 8 + len(threads)
