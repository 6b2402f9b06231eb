"""What basic authentication costs on the event loop (``auth-type: basic``).

    .venv/bin/python benchmarks/bench_basicauth.py

A plain script (no pytest-benchmark; the file defines no tests). Figures from one run,
FIGURES below; the old/new comparison ran this same file against the tree before the
change (``git archive HEAD`` into a scratch directory, then ``PYTHONPATH=<that tree>``).

1. ``verify`` per hash format, cold (best of 9): the hashing is pure Python on the loop.
   The C library's crypt(3) on the same machine (glibc's libcrypt, through ctypes) for
   comparison: what nginx pays in its worker. The cost of a ``$6$`` round, and what
   musl's ``ROUNDS_MAX`` (9,999,999: the most a ``rounds=`` setting may ask of
   ingress-nginx's nginx, on Alpine musl) would cost here.
2. ``BasicAuth.check`` per request once the credentials were verified (the cache hit), and
   the first request of the credentials (a miss: one verification).
3. Scenarios, counted in SHA-crypt computations (each one ``$6$`` verification at the
   default 5,000 rounds), not timed:
   a. 200 logged-in ``$6$`` users, each sending one request after every 4,096 requests of
      another client whose credentials name users that do not exist (no hashing: about as
      cheap to send as any request), 5 rounds;
   b. a reload that does not change the Secret (a new ``Resources`` read from the same
      manifests, as ``serve`` builds on every change of any object): the same users again;
   c. one client repeating a wrong password 1,000 times (stale credentials after a password
      change).

FIGURES (2026-11-23 20:54 UTC, 2-vCPU AMD EPYC VM, CPython 3.11.7, glibc libcrypt; one
quiet run of each tree, back to back; the cold timings move by 2x under load)::

    1. verify(), cold, best of 9
       {SHA}                   0.002 ms
       $apr1$                  0.505 ms
       $1$                     0.508 ms   libcrypt   0.105 ms
       $5$ (5,000 rounds)      2.478 ms   libcrypt   1.827 ms
       $6$ (5,000 rounds)      3.065 ms   libcrypt   1.231 ms
       $6$ rounds=20000       12.668 ms   libcrypt   5.175 ms
       $6$ per round 0.63 us; at musl's ROUNDS_MAX 9,999,999: 6.3 s per verification

                                               before (per route,    now (process-wide,
                                               per header value)     per hash + password)
    2. check, verified credentials again             1.76 us              2.31 us
       check, new credentials (one hashing)          ~3 ms                ~3 ms
    3a. hashings, 200 users x 5 rounds of
        4,096 unknown-user requests                  1000 (~3.0 s)        0
    3b. hashings, reload with the same Secret        200                  0
    3c. hashings, one wrong password x 1,000         1                    1

The hit costs ~0.5 us more than before: the credentials are decoded (base64) before the
lookup, so that the key is the (stored hash, password) pair rather than the header's text.
Before, the 4,096 cheap requests of 3a (about 0.1 s of the proxy's time) cost 200 hashings
(~0.6 s) each time they emptied a route's cache; now no request that needs no hashing is
remembered, and refused passwords are remembered apart from the good ones.
"""

from __future__ import annotations

import base64
import ctypes
import ctypes.util
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingresslib import parse_manifests  # noqa: E402
from ingresslib.proxy import _basicauth, _htpasswd  # noqa: E402


def _secret(users: dict[str, str]) -> str:
    text = "".join(f"{u}:{h}\n" for u, h in users.items())
    data = base64.b64encode(text.encode()).decode()
    return ("apiVersion: v1\nkind: Secret\nmetadata: {name: users, namespace: default}\n"
            f"type: Opaque\ndata: {{auth: {data}}}\n")


def _auth(users: dict[str, str]) -> tuple[_basicauth.BasicAuth, Callable[[], None]]:
    """A BasicAuth over a Secret of ``users``, and a function that replaces the Resources
    with an equal new one (a reload that does not change the Secret)."""
    state: dict[str, Any] = {"res": parse_manifests(_secret(users))}
    auth = _basicauth.BasicAuth("r", "default", "users", False,
                                lambda: state["res"].secrets, None, "")
    auth.load()

    def reload() -> None:
        state["res"] = parse_manifests(_secret(users))
    return auth, reload


def _header(user: str, password: str) -> bytes:
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


def _best(fn: Callable[[], object], n: int = 9) -> float:
    """The fastest of ``n`` runs (the figure least disturbed by other processes)."""
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def _libc_crypt() -> Any:
    name = ctypes.util.find_library("crypt")
    if name is None:
        return None
    fn = ctypes.CDLL(name).crypt
    fn.restype, fn.argtypes = ctypes.c_char_p, [ctypes.c_char_p, ctypes.c_char_p]
    return fn


class _Counter:
    """Counts SHA-crypt computations (``_htpasswd.sha_crypt`` calls)."""

    def __init__(self) -> None:
        self.n = 0
        self._real = _htpasswd.sha_crypt

    def __enter__(self) -> _Counter:
        real = self._real

        def counting(password: bytes, setting: str) -> str | None:
            self.n += 1
            return real(password, setting)
        _htpasswd.sha_crypt = counting
        return self

    def __exit__(self, *exc: object) -> None:
        _htpasswd.sha_crypt = self._real


#: The measured cost of one default $6$ verification (``formats``), for the scenarios' figures.
_COST = {"$6$": 0.007}


def formats() -> None:
    print("1. verify(), cold, best of 9")
    pw = b"correct horse"
    hashes = {
        "{SHA}": "{SHA}" + base64.b64encode(__import__("hashlib").sha1(pw).digest()).decode(),
        "$apr1$": _htpasswd.md5_crypt(pw, "r31.....", "$apr1$"),
        "$1$": _htpasswd.md5_crypt(pw, "saltsalt"),
        "$5$ (5,000 rounds)": _htpasswd.sha_crypt(pw, "$5$saltsalt$") or "",
        "$6$ (5,000 rounds)": _htpasswd.sha_crypt(pw, "$6$saltsalt$") or "",
        "$6$ rounds=20000": _htpasswd.sha_crypt(pw, "$6$rounds=20000$saltsalt$") or "",
    }
    libc = _libc_crypt()
    for name, stored in hashes.items():
        assert _htpasswd.verify(stored, pw) is True, name
        t = _best(lambda: _htpasswd.verify(stored, pw))
        line = f"   {name:<20} {t * 1e3:8.3f} ms"
        if libc is not None and stored[:3] in ("$1$", "$5$", "$6$"):
            setting = stored.encode()
            assert libc(pw, setting) == setting, name
            line += f"   libcrypt {_best(lambda: libc(pw, setting)) * 1e3:7.3f} ms"
        print(line)
    a = _best(lambda: _htpasswd.sha_crypt(pw, "$6$rounds=1000$saltsalt$"))
    b = _best(lambda: _htpasswd.sha_crypt(pw, "$6$rounds=20000$saltsalt$"))
    per_round = (b - a) / 19_000
    _COST["$6$"] = _best(lambda: _htpasswd.sha_crypt(pw, "$6$saltsalt$"))
    print(f"   $6$ per round {per_round * 1e6:.2f} us; at musl's ROUNDS_MAX 9,999,999: "
          f"{per_round * 9_999_999:.1f} s per verification")


def per_request() -> None:
    print("2. BasicAuth.check per request ($6$ user, 5,000 rounds)")
    stored = _htpasswd.sha_crypt(b"pw", "$6$saltsalt$") or ""
    auth, _ = _auth({"alice": stored})
    good = _header("alice", "pw")
    assert auth.check(good) == (0, "alice")
    n = 10_000

    def batch() -> None:
        for _ in range(n):
            auth.check(good)
    hit = _best(batch) / n
    misses = [_header("alice", f"pw{i}") for i in range(20)]
    t = time.perf_counter()
    for h in misses:
        auth.check(h)
    miss = (time.perf_counter() - t) / len(misses)
    print(f"   verified credentials again (cache hit): {hit * 1e6:6.2f} us")
    print(f"   new credentials (one verification):     {miss * 1e3:6.2f} ms")


def scenarios() -> None:
    print("3. SHA-crypt computations per scenario")
    users = {f"user{i}": _htpasswd.sha_crypt(f"pw{i}".encode(), f"$6$salt{i}$") or ""
             for i in range(200)}
    auth, reload = _auth(users)
    goods = [_header(f"user{i}", f"pw{i}") for i in range(200)]
    for h in goods:
        assert auth.check(h)[0] == 0
    noise = [_header(f"nobody{i}", "x") for i in range(4096)]
    with _Counter() as c:
        for _ in range(5):
            for h in noise:
                assert auth.check(h)[0] == 401
            for h in goods:
                assert auth.check(h)[0] == 0
    print(f"   a. 200 users after 5 x 4,096 unknown-user requests: {c.n:5d} "
          f"(~{c.n * _COST['$6$']:.1f} s of the loop)")
    reload()
    with _Counter() as c:
        for h in goods:
            assert auth.check(h)[0] == 0
    print(f"   b. the same 200 users after a reload, Secret unchanged: {c.n:5d}")
    stale = _header("user0", "old password")
    with _Counter() as c:
        for _ in range(1000):
            assert auth.check(stale)[0] == 401
    print(f"   c. one wrong password sent 1,000 times: {c.n:5d}")


if __name__ == "__main__":
    formats()
    per_request()
    scenarios()
