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
from collections.abc import Container, Sequence

__all__ = ["HashRing", "POINTS_PER_MEMBER", "MAX_RING_POINTS", "DIRTY", "hash_key", "member_id",
           "ngx_md5", "salted_id"]

#: libketama uses 40 digests x 4 points = 160 points per server (weight 1).
POINTS_PER_MEMBER = 160
#: At most this many points on a weighted ring (1,024 unit-weight members' worth): endpoint
#: weights are user input (``ingresslib.io/endpoint-weights``), and 160 points per unit of a
#: weight of 10**6 would be 160 million points built on a request. Bigger weights are scaled
#: down in proportion (each member keeps at least one point). The price: past the cap, adding
#: a member shrinks every member's share of points, so some keys move between old members
#: too (measured 50,000 keys: 0.42 moved where 0.33 is ideal for two members of weight
#: 1,000), where an unscaled ring moves only the keys the new member takes.
MAX_RING_POINTS = POINTS_PER_MEMBER * 1024
_MASK = 0xFFFFFFFF
#: A bucket of :attr:`HashRing.table` holding a ring point: its owner depends on the exact hash.
DIRTY = 255


def key_bytes(key: str) -> bytes:
    """A request key's bytes: its UTF-8, a byte the server decoded with ``surrogateescape``
    given back as that byte. A lone surrogate of another kind (``"\\ud800"``: only a ``str``
    an embedder passed can hold one) is written as it stands (``surrogatepass``) rather than
    raise UnicodeEncodeError from inside ``Router.route``."""
    try:
        return key.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return key.encode("utf-8", "surrogatepass")


def hash_key(key: str) -> int:
    """The ring position of a request key. CRC-32 (C, ~50 ns) is enough here: the spread over
    members comes from the MD5-placed member points, not from the key hash."""
    return zlib.crc32(key_bytes(key)) & _MASK


def ngx_md5(text: str) -> str:
    """``ngx.md5``: the MD5 of the text's bytes, as 32 lower-case hex digits."""
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def member_id(ip: str, port: int) -> str:
    """The stable text naming an endpoint on the ring (the unsalted :func:`salted_id`)."""
    return ngx_md5(f"{ip}:{port}")


def salted_id(salt: str, ip: str, port: int) -> str:
    """ingress-nginx's key for an endpoint in a persistent affinity cookie: the MD5 hex of the
    salt followed by ``ip:port`` (``rootfs/etc/nginx/lua/util/nodemap.lua`` ``create_map``:
    "local key = salt .. endpoint; local hash_key = ngx.md5(key)", the endpoint being
    "endpoint.address .. ":" .. endpoint.port" from ``util.get_nodes``). The salt is there so
    that the value cannot be reversed into the endpoint by brute force over the pod network
    (nodemap.lua: "obfuscate the endpoint with a shared key to prevent brute force and rainbow
    table attacks which could reveal internal endpoints")."""
    return ngx_md5(f"{salt}{ip}:{port}")


class HashRing:
    """An immutable ring over ``members`` (strings); lookups return member indexes.

    ``points`` is sorted and ends with a sentinel above every 32-bit value whose owner is the
    owner of the first point, so ``owners[bisect_left(points, h)]`` needs no wrap-around test.

    ``table``/``shift`` (once :meth:`build_table` ran) answer most lookups with one byte read: ``table[h >> shift]`` is the
    owner when no ring point falls inside ``h``'s bucket, else :data:`DIRTY` (then bisect).
    Same answers as the bisect (tested); it exists because a bisect over hundreds of separate int
    objects costs ~10 cache misses per request when many rings are in use, and the table (16
    buckets per point, ~6 % of them dirty) costs one. Empty (``b""``) for 255 or more members.
    """

    __slots__ = ("points", "owners", "size", "table", "shift", "_arcs")

    def __init__(self, members: Sequence[str], weights: Sequence[int] | None = None) -> None:
        # Each point packed with its member index as one int, ``point << bits | index``: sorting
        # these orders exactly as sorting (point, index) pairs (ties - two members on one point
        # - resolve by member index: deterministic), at a fraction of the cost.
        bits = max(8, (len(members) - 1).bit_length())
        low = (1 << bits) - 1
        keys: list[int] = []
        counts = [POINTS_PER_MEMBER * (weights[i] if weights else 1) for i in range(len(members))]
        total = sum(counts)
        limit = max(MAX_RING_POINTS, POINTS_PER_MEMBER * len(members))
        if total > limit:
            # A member's points are a prefix of its SHAKE stream, so scaling keeps each
            # member's first points where they were.
            counts = [max(1, c * limit // total) for c in counts]
        for idx, name in enumerate(members):
            count = counts[idx]
            stream = hashlib.shake_128(name.encode()).digest(4 * count)
            keys.extend([(p << bits) | idx for p in struct.unpack(f"<{count}I", stream)])
        keys.sort()
        self.points: list[int] = [k >> bits for k in keys]
        self.owners: list[int] = [k & low for k in keys]
        if keys:
            self.points.append(_MASK + 1)
            self.owners.append(self.owners[0])
        self.size = len(members)
        #: Built by :meth:`build_table` (~0.1 ms for 3 members): worth it for busy rings only.
        self.table = b""
        self.shift = 32
        #: Per member, :meth:`arcs_of`'s answer (measured on first use).
        self._arcs: dict[int, tuple[list[int], list[int]]] = {}

    def build_table(self) -> bytes:
        """Build (once) and return the bucket table; ``b""`` when the ring cannot have one."""
        if not self.table:
            tab, shift = _bucket_table(self.points, self.owners, self.size)
            self.shift = shift
            self.table = tab  # published after shift: a reader seeing the table sees its shift
        return self.table

    def lookup(self, point: int) -> int:
        """Index of the member owning ``point``; -1 for an empty ring."""
        tab = self.table
        if tab:
            o = tab[point >> self.shift]
            if o != DIRTY:
                return o
        if not self.points:
            return -1
        return self.owners[bisect_left(self.points, point)]

    def arcs_of(self, member: int) -> tuple[list[int], list[int]]:
        """The indexes of ``member``'s points and the running total of the lengths of the arcs
        they close (a point owns the hashes after the point before it, up to it); measured on
        first use, kept with the ring."""
        got = self._arcs.get(member)
        if got is None:
            pts = self.points
            n = len(pts) - 1  # without the sentinel
            idx: list[int] = []
            cum: list[int] = []
            total = 0
            for j, o in enumerate(self.owners[:n]):
                if o == member:
                    # (A zero-length arc - two points on one hash - adds nothing, and a
                    # ``bisect_right`` over ``cum`` never lands on it.)
                    total += (pts[j] - pts[j - 1]) if j else pts[0] + (1 << 32) - pts[n - 1]
                    idx.append(j)
                    cum.append(total)
            got = self._arcs[member] = (idx, cum)
        return got

    def lookup_skipping(self, point: int, skip: Container[int]) -> int:
        """The first member clockwise from ``point`` that is not in ``skip``; -1 if none.
        ``skip`` is asked once per member met (:class:`TriedMembers`: no pass over every
        member to build it)."""
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


class TriedMembers:
    """The members (indexes into ``endpoints``) whose endpoint is in ``tried``, as a
    container asked member by member: a walk that meets two or three members tests two or
    three, where a set built first tested every endpoint (1,000 for a 1,000-endpoint ring)."""

    __slots__ = ("endpoints", "tried")

    def __init__(self, endpoints: Sequence[object], tried: Container[object]) -> None:
        self.endpoints = endpoints
        self.tried = tried

    def __contains__(self, member: object) -> bool:
        return isinstance(member, int) and self.endpoints[member] in self.tried


def _bucket_table(points: Sequence[int], owners: Sequence[int], size: int) -> tuple[bytes, int]:
    """``(table, shift)``: for each of 2**(32-shift) equal buckets of the circle, the owner of
    every hash in it, or DIRTY when a ring point lies inside (the owner changes there).

    A bucket strictly between two consecutive points p' < p (no point inside) is owned by p's
    owner: the first point >= any hash in it is p. Buckets after the last point belong to the
    sentinel's owner (the first point's). Built in one pass over the points, O(points) Python
    steps plus C slice fills.
    """
    n = len(points) - 1  # without the sentinel
    if n <= 0 or size >= DIRTY:
        return b"", 32
    bits = max(4, min(20, (16 * n - 1).bit_length()))
    shift = 32 - bits
    nb = 1 << bits
    one = [bytes((o,)) for o in range(size)]
    out = bytearray()
    prev = -1  # the last bucket written
    for p, o in zip(points, owners):
        j = p >> shift
        if j > prev:
            out += one[o] * (j - prev - 1)  # clean buckets before p's: owned by p's owner
            out.append(DIRTY)
            prev = j
    # The loop also ran over the sentinel (2**32, bucket nb): the tail up to it has the
    # sentinel's owner; drop the sentinel's own byte.
    del out[nb:]
    return bytes(out), shift
