"""A ketama-style consistent-hash ring (the scheme of libketama and OpenResty's ``resty.chash``).

Each member owns :data:`POINTS_PER_MEMBER` points on a 32-bit circle (libketama's 160), read from
one SHAKE-128 stream of the member's name (libketama takes 4 points from each of 40 MD5 digests;
one extendable-output call is the same idea, ~50x cheaper to build). A key hashes to a point and
belongs to the first member point at or after it, wrapping around. Adding a member only takes over the
arcs in front of its own points, so the keys that move are exactly the keys the new member now
owns: about 1/(N+1) of them, and no key moves between two old members.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from bisect import bisect_left
from collections.abc import Collection, Sequence

__all__ = ["HashRing", "POINTS_PER_MEMBER", "hash_key", "member_id"]

#: libketama uses 40 digests x 4 points = 160 points per server (weight 1).
POINTS_PER_MEMBER = 160
_MASK = 0xFFFFFFFF


def hash_key(key: str) -> int:
    """The ring position of a request key. CRC-32 (C, ~50 ns) is enough here: the spread over
    members comes from the MD5-placed member points, not from the key hash."""
    return zlib.crc32(key.encode("utf-8", "surrogateescape")) & _MASK


def member_id(ip: str, port: int) -> str:
    """The stable text naming an endpoint on the ring (and in persistent affinity cookies)."""
    return hashlib.md5(f"{ip}:{port}".encode(), usedforsecurity=False).hexdigest()


class HashRing:
    """An immutable ring over ``members`` (strings); lookups return member indexes.

    ``points`` is sorted and ends with a sentinel above every 32-bit value whose owner is the
    owner of the first point, so ``owners[bisect_left(points, h)]`` needs no wrap-around test.
    """

    __slots__ = ("points", "owners", "size")

    def __init__(self, members: Sequence[str], weights: Sequence[int] | None = None) -> None:
        pairs: list[tuple[int, int]] = []
        for idx, name in enumerate(members):
            count = POINTS_PER_MEMBER * (weights[idx] if weights else 1)
            stream = hashlib.shake_128(name.encode()).digest(4 * count)
            pairs.extend((p, idx) for p in struct.unpack(f"<{count}I", stream))
        # Ties (two members on one point) resolve by member index: deterministic.
        pairs.sort()
        self.points: list[int] = [p for p, _ in pairs]
        self.owners: list[int] = [o for _, o in pairs]
        if pairs:
            self.points.append(_MASK + 1)
            self.owners.append(self.owners[0])
        self.size = len(members)

    def lookup(self, point: int) -> int:
        """Index of the member owning ``point``; -1 for an empty ring."""
        if not self.points:
            return -1
        return self.owners[bisect_left(self.points, point)]

    def lookup_skipping(self, point: int, skip: Collection[int]) -> int:
        """The first member clockwise from ``point`` that is not in ``skip``; -1 if none."""
        pts = self.points
        if not pts:
            return -1
        n = len(pts) - 1  # without the sentinel
        i = bisect_left(pts, point)
        seen: set[int] = set()
        for step in range(n):
            owner = self.owners[(i + step) % n]
            if owner in seen:
                continue
            if owner not in skip:
                return owner
            seen.add(owner)
            if len(seen) == self.size:
                break
        return -1
