"""Probes per host in the compiled matcher's host tables: the hash before and after session 6.

    python benchmarks/experiments/host_hash.py

Python models of ``_match.pyx``'s ``_hash`` (``before``: one chain of multiplies over the
words; ``after``: up to three overlapping words multiplied apart, summed, then a finalizer;
``no_finalizer``: the same without its finalizer, the first version tried) fill a model of the
matcher's tables (open addressing, linear probing, at most half full) with the rule hosts of
the benchmark's tables and with names built to be similar. Prints the mean and the longest
probe sequence that finding each stored host takes. The ``after`` model is checked against the
compiled matcher's own count (``Matcher._host_probes``) on the benchmark's tables.
"""

from __future__ import annotations

import os
import random
import struct
import sys
from collections.abc import Callable

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from _routers import host_groups  # noqa: E402
from gen_rules import gen_table  # noqa: E402

M = (1 << 64) - 1


def _w(s: bytes, i: int, size: int) -> int:
    return int(struct.unpack_from({8: "<Q", 4: "<I", 2: "<H"}[size], s, i)[0])


def _short(s: bytes) -> int:
    n = len(s)
    if n >= 4:
        return (_w(s, 0, 4) << 32) | _w(s, n - 4, 4)
    if n >= 2:
        return (_w(s, 0, 2) << 16) | _w(s, n - 2, 2)
    return s[0] if n else 0


def before(s: bytes) -> int:
    n, i = len(s), 0
    h = 0x9E3779B97F4A7C15 ^ n
    while i + 8 <= n:
        h = ((h ^ _w(s, i, 8)) * 0xFF51AFD7ED558CCD) & M
        h ^= h >> 29
        i += 8
    w = 0 if i == n else _w(s, n - 8, 8) if n >= 8 else _short(s)
    h = ((h ^ w) * 0xC4CEB9FE1A85EC53) & M
    return h ^ (h >> 32)


def _sum(s: bytes) -> int:
    n, i = len(s), 0
    h, b, c = 0x9E3779B97F4A7C15 ^ n, 0, 0
    if n > 24:
        while i + 8 <= n:
            h = ((h ^ _w(s, i, 8)) * 0xFF51AFD7ED558CCD) & M
            h ^= h >> 29
            i += 8
        a = _w(s, n - 8, 8)
    elif n > 16:
        a, b, c = _w(s, 0, 8), _w(s, 8, 8), _w(s, n - 8, 8)
    elif n >= 8:
        a, b = _w(s, 0, 8), _w(s, n - 8, 8)
    else:
        a = _short(s)
    return ((h ^ a) * 0xFF51AFD7ED558CCD + (b ^ 0xC2B2AE3D27D4EB4F) * 0x165667B19E3779F9
            + (c ^ 0x27D4EB2F165667C5) * 0xC4CEB9FE1A85EC53) & M


def no_finalizer(s: bytes) -> int:
    h = _sum(s)
    return h ^ (h >> 32)


def after(s: bytes) -> int:
    h = _sum(s)
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & M
    return h ^ (h >> 33)


def probes(keys: list[bytes], hash_: Callable[[bytes], int]) -> tuple[int, int]:
    """(total, longest) probes to find each key, in a table sized as ``_host_table`` does."""
    size = 8
    while size < 2 * len(keys):
        size *= 2
    slots: list[bytes | None] = [None] * size
    total = longest = 0
    for k in keys:
        i, p = hash_(k) & (size - 1), 1
        while slots[i] is not None:
            i, p = (i + 1) & (size - 1), p + 1
        slots[i] = k
        total, longest = total + p, max(longest, p)
    return total, longest


def tables(groups: list[tuple[str, ...]], hash_: Callable[[bytes], int]) -> tuple[float, int]:
    """(mean, longest) over the exact and the wildcard table, as ``Matcher._host_probes``."""
    exact = [h.encode() for h, *_ in groups if not h.startswith("*.")]
    wild = [h[2:].encode() for h, *_ in groups if h.startswith("*.")]
    (t1, l1), (t2, l2) = probes(exact, hash_), probes(wild, hash_)
    return (t1 + t2) / (len(exact) + len(wild)), max(l1, l2)


def main() -> None:
    from ingresslib._match import Matcher

    hashes = {"before": before, "no_finalizer": no_finalizer, "after": after}
    rng = random.Random(1)
    similar = {
        "svc-{:05d}.example.com": [f"svc-{i:05d}.example.com" for i in range(5000)],
        "a.{:06d}.b.example.com": [f"a.{i:06d}.b.example.com" for i in range(5000)],
        "random names": ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789-")
                                 for _ in range(rng.randint(5, 30))) + ".com" for _ in range(5000)],
    }
    for n in (100, 10_000, 100_000):
        groups = [tuple(g[:1]) for g in host_groups(gen_table(n, seed=1))]
        compiled = Matcher(host_groups(gen_table(n, seed=1)))._host_probes()
        cells = "  ".join(f"{k} {m:.2f}/{x}" for k, f in hashes.items() for m, x in [tables(groups, f)])
        print(f"{n:>7} rules' hosts: {cells}  (compiled: {compiled[0]:.2f}/{compiled[1]})")
    for label, names in similar.items():
        groups = [(h,) for h in names]
        cells = "  ".join(f"{k} {m:.2f}/{x}" for k, f in hashes.items() for m, x in [tables(groups, f)])
        print(f"{label}: {cells}")


if __name__ == "__main__":
    main()
