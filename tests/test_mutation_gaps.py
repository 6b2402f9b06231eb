"""Tests found by mutation testing the pure modules that carry the routing semantics.

Each test kills at least one mutant of ``_match_py``, ``_normalize``, ``_pick_py``, ``_goparse``
or ``_hashing`` that the rest of the suite let survive; the comment above it names the mutant
(the line as mutated). Matcher tests run against the compiled ``_match`` and the pure
``_match_py`` (as tests/test_match.py does), pick tests against ``_pick`` and ``_pick_py`` (as
tests/test_pick.py does), so a gap closed here is closed for both twins.
"""

from __future__ import annotations

import bisect
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingresslib._errors import BadRequestError

from _counters import COUNTER_MODULES

from _matchers import MATCHER_PARAMS, required


@pytest.fixture(params=MATCHER_PARAMS)
def matcher_class(request: pytest.FixtureRequest) -> Any:
    return required(request.param)


@pytest.fixture(params=COUNTER_MODULES)
def picks(request: pytest.FixtureRequest) -> Any:
    """The compiled ``_pick`` or the pure ``_pick_py`` (not autouse: only the pick tests)."""
    if request.param is None:
        pytest.fail("INGRESSLIB_REQUIRE_EXTENSIONS is set but ingresslib._pick is not built")
    return request.param


# -- _match_py -------------------------------------------------------------------------------


# Mutant: the fast-path test ``path[0] == "/"`` read as ``path[-1] == "/"``: a path that does
# not start with "/" but ends with one looked canonical and was routed. §5: "Origin-form only".
@pytest.mark.parametrize("path", ["a/", "*/", "foo/bar/", "a/?q=/"])
def test_a_relative_path_ending_in_a_slash_is_rejected(matcher_class: Any, path: str) -> None:
    m = matcher_class([("foo.com", {}, {"": "root"}, None)], default="DEFAULT")
    with pytest.raises(BadRequestError) as info:
        m.lookup("foo.com", path)
    assert info.value.status_hint == 400


# Mutant: ``name.startswith("[")`` never true: a host beginning with "[" then reached the
# wildcard and exact host groups. §4.1: "IPv6 literals keep their brackets and never equal a
# rule host"; a literal missing its "]", or with more after it than a port, is no Host the
# proxy takes (check_host): refused, 400, never a group either (session 34).
@pytest.mark.parametrize("host", ["[x.foo.com", "[x.foo.com:80", "[a.b].foo.com", "[::1]:80"])
def test_a_bracketed_host_never_reaches_a_host_group(matcher_class: Any, host: str) -> None:
    m = matcher_class([
        ("*.foo.com", {}, {"": "wildcard"}, None),
        ("[::1]", {}, {"": "v6 key"}, None),
        (None, {}, {"": "host-less"}, None),
    ])
    if host.endswith("]:80"):
        assert m.lookup(host, "/") == "host-less"
    else:
        with pytest.raises(BadRequestError):
            m.lookup(host, "/")


# -- _normalize ------------------------------------------------------------------------------


# Mutant: ``except BadRequestError: return False`` -> ``return None`` in ``is_canonical``: the
# suite only checked ``not is_canonical(...)``. Its contract is a bool ("True iff
# canonical_path(path) == path (without raising)").
@pytest.mark.parametrize(("path", "expected"), [
    ("/a/b/", True), ("/a//b", False), ("/a/%7e", False), ("/..", False), ("a", False),
    ("/%zz", False), ("/a%2Fb", False), ("", False)])
def test_is_canonical_answers_a_bool(path: str, expected: bool) -> None:
    from ingresslib._normalize import is_canonical

    assert is_canonical(path) is expected


# Mutant: ``host if end < 0`` -> ``host if end < -1`` in ``normalize_host``: a bracketed host
# without its "]" became "" (None: the empty Host). The docstring: "IPv6 literals keep their
# brackets"; with no "]" there is no port to strip, so the host stays whole.
@pytest.mark.parametrize(("host", "expected"), [
    ("[::1", "[::1"), ("[::1:80", "[::1:80"), ("[", "["), ("[X.Foo.com", "[x.foo.com")])
def test_normalize_host_keeps_an_unterminated_literal_whole(host: str, expected: str) -> None:
    from ingresslib._normalize import normalize_host

    assert normalize_host(host) == expected


# Mutant: ``buf += part[2:]`` -> ``part[3:]`` in ``_fully_decoded``: the character after each
# escape was dropped before the UTF-8 check, so an escape sequence split by a literal character
# (%C3 a %A9, or by a "/") read as one valid character. §5: "the decoded bytes must be valid
# UTF-8" - the bytes in order, literal characters included.
@pytest.mark.parametrize(("path", "joined"), [
    ("/%c3a%a9", "/%c3%a9a"), ("/%C3/%A9", "/%C3%A9/"), ("/%e2%82x%ac", "/%e2%82%acx"),
    ("/x%f0%9f%98-%80", "/x%f0%9f%98%80-")])
def test_an_escape_sequence_split_by_a_literal_is_not_utf8(matcher_class: Any, path: str,
                                                           joined: str) -> None:
    from ingresslib._normalize import canonical_path, is_canonical

    with pytest.raises(BadRequestError):
        canonical_path(path)
    assert is_canonical(path) is False
    m = matcher_class([("foo.com", {}, {"": "root"}, None)])
    with pytest.raises(BadRequestError):
        m.lookup("foo.com", path)
    # The same characters with the escapes unsplit: one valid character, routed.
    assert m.lookup("foo.com", joined) == "root"


# -- _hashing --------------------------------------------------------------------------------


def _skipping_oracle(points: list[int], owners: list[int], point: int, skip: set[int]) -> int:
    # The docstring read literally: walk the ring points clockwise from the first one at or
    # after ``point`` (wrapping around), answer the first owner not in ``skip``; -1 if none.
    pts = points[:-1]  # without the sentinel
    start = bisect.bisect_left(pts, point)
    for k in range(len(pts)):
        owner = owners[(start + k) % len(pts)]
        if owner not in skip:
            return owner
    return -1


# Mutants of ``lookup_skipping``: ``n = len(pts) - 1`` -> ``+ 1`` (the walk ran over the
# sentinel and off the end of the ring) or ``- 2`` (the last point was never visited),
# ``(i + step) % n`` -> ``(i - step) % n`` (counter-clockwise), ``return -1`` -> ``None``/``-2``/
# ``0`` for an empty ring: the suite only called it once, on a ring where every member was
# skipped.
@given(size=st.integers(1, 5), point=st.integers(0, 2**32 - 1), data=st.data())
def test_lookup_skipping_walks_the_ring_clockwise(size: int, point: int,
                                                  data: st.DataObject) -> None:
    from ingresslib._hashing import HashRing

    ring = HashRing([f"m{i}" for i in range(size)])
    skip = data.draw(st.sets(st.integers(0, size), max_size=size + 1))
    # Past the last point too (the walk wraps to the first), and right at a point.
    point = data.draw(st.sampled_from([point, ring.points[-2], ring.points[-2] + 1, ring.points[3],
                                       2**32 - 1]))
    got = ring.lookup_skipping(point, skip)
    assert got == _skipping_oracle(ring.points, ring.owners, point, skip)
    if not set(range(size)) <= skip:
        assert got not in skip and 0 <= got < size
    if not skip:
        assert got == ring.lookup(point)


def test_lookup_skipping_keeps_every_member_but_one_reachable() -> None:
    from ingresslib._hashing import HashRing

    ring = HashRing([f"m{i}" for i in range(4)])
    last = ring.points[-2]  # the last real point: from past it the walk must wrap around
    for keep in range(4):
        skip = set(range(4)) - {keep}
        for point in (0, last, last + 1, 2**32 - 1):
            assert ring.lookup_skipping(point, skip) == keep
    # Nothing skipped: the owner lookup() gives, at every point (the last one included).
    for point in (*ring.points[:-1], 0, last + 1):
        assert ring.lookup_skipping(point, ()) == ring.lookup(point)
    assert HashRing([]).lookup_skipping(5, set()) == -1
    assert HashRing([]).lookup(5) == -1


# Mutant: ``size >= DIRTY`` -> ``size > DIRTY`` in ``_bucket_table``: the boundary of the
# documented "Empty (b"") for 255 or more members" was only tested at 300 members.
@pytest.mark.parametrize(("size", "has_table"), [(254, True), (255, False)])
def test_bucket_table_member_limit(size: int, has_table: bool) -> None:
    from ingresslib._hashing import HashRing

    ring = HashRing([str(i) for i in range(size)])
    table = ring.build_table()
    assert bool(table) is has_table
    if has_table:
        assert max(table) == 255 and len(set(table)) == size + 1  # every member and DIRTY
    for h in range(0, 2**32, 2**32 // 500):
        assert ring.lookup(h) == ring.owners[bisect.bisect_left(ring.points, h)]


# Mutant: the sentinel's owner ``self.owners[0]`` -> ``self.owners[-1]`` (the last point's
# owner). A hash past the last point "belongs to the first member point at or after it,
# wrapping around": the first point's owner. Every test compared lookup() with a bisect over
# the ring's own (mutated) owners.
@pytest.mark.parametrize("size", [2, 3, 5])
def test_a_hash_past_the_last_point_wraps_to_the_first(size: int) -> None:
    from ingresslib._hashing import HashRing

    ring = HashRing([f"m{i}" for i in range(size)])
    first, last = ring.owners[0], ring.owners[-2]
    for h in (ring.points[-2] + 1, 2**32 - 1):
        assert ring.lookup(h) == first
    assert ring.lookup(ring.points[-2]) == last
    ring.build_table()  # the bucket table answers the same
    assert ring.lookup(2**32 - 1) == first and ring.lookup(ring.points[-2]) == last
    if size == 3:
        assert first != last  # the case that tells the two apart (the names are fixed)


# Mutant: the ``"surrogateescape"`` error handler of ``hash_key`` misspelt: a key holding a
# lone surrogate (what a str decoded with surrogateescape carries; the compiled HashPick hands
# such keys to the Python path) raised LookupError instead of hashing its bytes.
def test_hash_key_hashes_the_bytes_of_any_key() -> None:
    import zlib

    from ingresslib._hashing import hash_key

    assert hash_key("/caf\u00e9") == zlib.crc32("/caf\u00e9".encode())
    assert hash_key("/p/\udcff") == zlib.crc32(b"/p/\xff")
    assert hash_key("") == 0


# Mutant: the packing width ``(len(members) - 1).bit_length()`` -> ``(len(members) - 2)``:
# at exactly 257 members the last index (256) needs 9 bits, got 8, and spilt into the point.
# The suite packed 3, 300 and weighted 2-member rings only.
def test_ring_of_257_members_keeps_every_point_and_owner() -> None:
    import hashlib
    import struct

    from ingresslib._hashing import POINTS_PER_MEMBER, HashRing

    members = [str(i) for i in range(257)]
    ring = HashRing(members)
    pairs = []
    for idx, name in enumerate(members):
        data = hashlib.shake_128(name.encode()).digest(4 * POINTS_PER_MEMBER)
        pairs += [(p, idx) for p in struct.unpack(f"<{POINTS_PER_MEMBER}I", data)]
    pairs.sort()
    assert ring.points[:-1] == [p for p, _ in pairs]
    assert ring.owners[:-1] == [o for _, o in pairs]


# Mutant: the ``":"`` of ``member_id``'s ``f"{ip}:{port}"`` changed: the id is "the stable
# text naming an endpoint on the ring (and in persistent affinity cookies)", so a cookie set
# by one release must name the same endpoint in the next: pin its definition.
def test_member_id_is_the_md5_of_ip_colon_port() -> None:
    import hashlib

    from ingresslib._hashing import member_id

    assert member_id("10.0.0.1", 8080) == hashlib.md5(b"10.0.0.1:8080").hexdigest()
    assert member_id("fd00::1", 80) == hashlib.md5(b"fd00::1:80").hexdigest()
    assert member_id("10.0.0.1", 80) != member_id("10.0.0.18", 0)


# -- _pick_py (and the compiled _pick) ---------------------------------------------------------


def _ring_pick_args(prefix: str = "member") -> tuple[Any, bytes, int, tuple[str, ...], bytes, bytes]:
    from array import array

    from ingresslib._hashing import HashRing
    from ingresslib._pick_py import U32

    ring = HashRing([f"{prefix}{i}" for i in range(3)])
    table = ring.build_table()
    packed = array(U32, ring.points[:-1]).tobytes(), bytes(ring.owners[:-1])
    return ring, table, ring.shift, ("d0", "d1", "d2"), *packed


# Mutant: ``Interleave.__iter__`` returning None: the split is an iterator (``next()`` on it
# is the API), so ``iter()`` and ``islice`` must work on it as on a Rotation.
def test_interleave_is_its_own_iterator(picks: Any) -> None:
    import itertools

    s = picks.Interleave(2, 5)
    assert iter(s) is s
    assert "".join("C" if c else "." for c in itertools.islice(s, 10)) == "..C.C..C.C"


# Mutant: HashPick's ``raise TypeError("table must be bytes and decisions a tuple")`` deleted
# in the pure twin: its docstring promises the compiled twin's errors.
@pytest.mark.parametrize("bad", ["table", "decisions"])
def test_hash_pick_refuses_a_table_or_decisions_of_another_type(picks: Any, bad: str) -> None:
    _, table, shift, decisions, points, owners = _ring_pick_args()
    args: dict[str, Any] = {"table": table, "decisions": decisions}
    args[bad] = bytearray(table) if bad == "table" else list(decisions)
    with pytest.raises(TypeError):
        picks.HashPick(None, 2, None, args["table"], shift, args["decisions"], None, points,
                       owners)


# Mutant: ``if i >= len(self._table): return None`` deleted: a bucket past the end of the
# table (a table for part of the circle) raised IndexError instead of handing the request to
# the Router's Python path; inside the table the ring's answer still comes back.
def test_hash_pick_past_the_end_of_its_table_hands_over(picks: Any) -> None:
    import zlib

    ring, table, shift, decisions, points, owners = _ring_pick_args()
    short = table[: len(table) // 2]
    pick = picks.HashPick(None, 2, None, short, shift, decisions, None, points, owners)
    inside = outside = 0
    for i in range(400):
        ip = f"203.0.113.{i}"
        h = zlib.crc32(ip.encode())
        got = pick.pick("/", (), ip)
        if h >> shift >= len(short):
            outside += 1
            assert got is None
        else:
            inside += 1
            assert got == decisions[ring.owners[bisect.bisect_left(ring.points, h)]]
    assert inside > 50 and outside > 50
    # The first bucket past the end (``i >= len(table)``, not ``>``).
    ip = "10.0.0.5"
    end = zlib.crc32(ip.encode()) >> shift
    cut = picks.HashPick(None, 2, None, table[:end], shift, decisions, None, points, owners)
    assert cut.pick("/", (), ip) is None


# Mutant: ``o >= len(self._decisions)`` -> ``o > len(...)``: "a byte that is no decision
# index (DIRTY: a ring point in the bucket) bisects the ring" - the first such byte is
# ``len(decisions)``, not only 255.
@pytest.mark.parametrize("fill", [3, 4, 255])
def test_hash_pick_bisects_on_any_byte_that_is_no_decision(picks: Any, fill: int) -> None:
    import zlib

    ring, table, shift, decisions, points, owners = _ring_pick_args()
    pick = picks.HashPick(None, 2, None, bytes([fill]) * len(table), shift, decisions, None,
                          points, owners)
    for i in range(300):
        ip = f"10.1.{i}"
        owner = ring.owners[bisect.bisect_left(ring.points, zlib.crc32(ip.encode()))]
        assert pick.pick("/", (), ip) == decisions[owner]
    # Mutants ``j < len(self._owners)`` -> ``<=`` and ``self._owners[0]`` -> ``[1]``/``[-1]``:
    # a hash past the last ring point, bisected, belongs to the first point's owner (the ring's
    # sentinel). Two rings: in "member*" the first and last points share an owner, in "m*" the
    # first two points do.
    for prefix in ("member", "m"):
        ring, _, shift, decisions, points, owners = _ring_pick_args(prefix)
        full = bytes([fill]) * (1 << (32 - shift))  # every bucket "no decision"
        pick = picks.HashPick(None, 2, None, full, shift, decisions, None, points, owners)
        past = next(k for k in (f"k{i}" for i in range(100_000))
                    if zlib.crc32(k.encode()) > ring.points[-2])
        assert pick.pick("/", (), past) == decisions[ring.owners[0]]


# Mutant: ``more.append(item[2])`` deleted in ``http_header``: a third line of the same name
# was lost. nginx chains "every line of the name"; the suite's random lists rarely held three.
@pytest.mark.parametrize(("name", "sep"), [(b"x-user", b", "), (b"cookie", b"; ")])
def test_http_header_joins_every_line_of_a_name(picks: Any, name: bytes, sep: bytes) -> None:
    items = [(b"Host", b"host", b"a")] + [(name, name, b"v%d" % i) for i in range(4)]
    items.insert(3, (b"X-Other", b"x-other", b"o"))
    assert picks.http_header(items, name) == sep.join(b"v%d" % i for i in range(4))


# Mutant: FastRoute's ``if d is not None: return d`` deleted for a CanaryPick entry (and the
# same for a HashPick entry): every canary request then took the slow path. The suite checked
# FastRoute with round-robin and opaque entries only.
def test_fast_route_answers_canary_and_hash_picks_inline(picks: Any) -> None:
    import h11

    class M:  # a Match: hashed by identity
        pass

    _, table, shift, decisions, points, owners = _ring_pick_args()
    h11_type = type(h11.Request(method="GET", target="/", headers=[("Host", "a")]).headers)
    canary_route, hash_backend = object(), object()
    canary = picks.CanaryPick(canary_route, b"x-canary", b"always", b"never", h11_type,
                              picks.Interleave(1, 2), picks.Rotation(("c",)),
                              picks.Rotation(("m",)))
    hashed = picks.HashPick(hash_backend, 2, None, table, shift, decisions, h11_type, points,
                            owners)
    matches = {"/canary": M(), "/hash": M()}
    fast = {matches["/canary"]: canary, matches["/hash"]: hashed}
    calls: list[tuple[Any, ...]] = []

    def slow(*args: Any) -> str:
        calls.append(args)
        return "slow"

    route = picks.FastRoute(lambda host, path: matches.get(path), fast, slow).route
    hd = h11.Request(method="GET", target="/", headers=[("Host", "a"), ("X-Canary", "always")]).headers
    assert [route("GET", "h", "/canary", hd) for _ in range(3)] == ["c", "c", "c"]
    plain = h11.Request(method="GET", target="/", headers=[("Host", "a")]).headers
    assert [route("GET", "h", "/canary", plain) for _ in range(4)] == ["m", "c", "m", "c"]
    ip = "198.51.100.7"
    assert route("GET", "h", "/hash", plain, ip) == hashed.pick("/hash", plain, ip)
    assert calls == []
    # What the picks hand over (headers of another type, a key that is not a str) goes to the
    # slow path with the Router's object for it: the route, the backend.
    assert route("GET", "h", "/canary", {"x-canary": "always"}) == "slow"
    assert calls[-1][:2] == (matches["/canary"], canary_route)
    assert route("GET", "h", "/hash", plain, b"not a str") == "slow"
    assert calls[-1][:2] == (matches["/hash"], hash_backend)


# Mutants: ``0 <= shift <= 32`` -> ``0 < shift`` / ``shift < 32``: both ends are valid shifts
# (shift 32: one bucket for the whole circle; shift 0: one per hash), one past them is not.
def test_hash_pick_accepts_every_shift_from_0_to_32(picks: Any) -> None:
    import zlib

    ring, _, _, decisions, points, owners = _ring_pick_args()
    whole = picks.HashPick(None, 2, None, b"\x01", 32, decisions, None, points, owners)
    assert {whole.pick("/", (), f"1.2.3.{i}") for i in range(20)} == {"d1"}
    dirty = picks.HashPick(None, 2, None, b"\xff", 32, decisions, None, points, owners)
    for i in range(20):
        ip = f"1.2.3.{i}"
        owner = ring.owners[bisect.bisect_left(ring.points, zlib.crc32(ip.encode()))]
        assert dirty.pick("/", (), ip) == decisions[owner]
    fine = picks.HashPick(None, 2, None, b"", 0, decisions, None, points, owners)
    assert fine.pick("/", (), "1.2.3.4") is None  # past its (empty) table: handed over
    for shift in (-1, 33):
        with pytest.raises(ValueError):
            picks.HashPick(None, 2, None, b"", shift, decisions, None, points, owners)


# Mutants of the "#"-in-the-query check in ``Matcher.lookup`` (``if "#" in path:
# split_target(path)`` deleted, or its test inverted): tests/test_match.py and
# tests/test_table.py only sent "#" before the "?". §5: "`#` -> 400", the query included
# (a fragment is never sent, split_target), whatever the host.
@pytest.mark.parametrize("target", ["/a?x#y", "/?#", "?q#", "/a?b=%23&c#d"])
@pytest.mark.parametrize("host", ["foo.com", "other.org", ""])
def test_a_fragment_in_the_query_is_rejected(matcher_class: Any, target: str, host: str) -> None:
    m = matcher_class([("foo.com", {}, {"": "root"}, None), (None, {}, {"": "any"}, None)])
    with pytest.raises(BadRequestError) as info:
        m.lookup(host, target)
    assert info.value.status_hint == 400
    # Without the "#", the same target routes (the query is never looked at).
    assert m.lookup(host, target.split("#")[0]) == ("root" if host == "foo.com" else "any")
