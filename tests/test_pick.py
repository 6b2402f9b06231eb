"""The per-route counters and header read: compiled ``_pick`` and pure ``_pick_py`` give the
same sequences, answers and errors, and ``next()`` is atomic under concurrency."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import Counter
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingresslib import _pick_py, _route_state

from _counters import REQUIRE, _pick_c

# Every test below runs once per implementation (the autouse fixture in _counters).
from _counters import counters  # noqa: F401


def test_compiled_counters_are_in_use_when_required() -> None:
    expected = "python" if (_route_state.NO_EXTENSIONS or _pick_c is None) else "cython"
    assert _route_state.COUNTERS == expected
    if REQUIRE:
        assert _route_state.COUNTERS == "cython", "INGRESSLIB_REQUIRE_EXTENSIONS=1 but the pure twin loaded"
    impl = _pick_py if expected == "python" else _pick_c
    assert _route_state.Rotation is impl.Rotation and _route_state.Interleave is impl.Interleave
    assert _route_state.http_header is impl.http_header
    assert _route_state.ROTATION_TYPE is impl.ROTATION_TYPE


def test_selector_honours_no_extensions() -> None:
    code = ("import os; os.environ['INGRESSLIB_NO_EXTENSIONS'] = '1'\n"
            "from ingresslib import _route_state as s; print(s.COUNTERS, s.Interleave.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["python", "ingresslib._pick_py"]


def oracle_split(weight: int, total: int, n: int) -> list[bool]:
    # Straight from the docstring: call k is True iff floor((k+1)w/T) > floor(kw/T).
    return [((k % total) + 1) * weight // total > (k % total) * weight // total for k in range(n)]


@given(items=st.lists(st.integers(), min_size=1, max_size=9).map(tuple),
       start=st.integers(-50, 50), n=st.integers(0, 40))
def test_rotation_is_a_strict_cycle_from_start(counters: Any, items: tuple[int, ...], start: int,
                                               n: int) -> None:
    r = counters.Rotation(items, start)
    assert iter(r) is r and type(r) is counters.ROTATION_TYPE
    got = [next(r) for _ in range(n)]
    assert got == [items[(start + k) % len(items)] for k in range(n)]


@given(total=st.integers(1, 500), data=st.data())
def test_interleave_matches_the_formula_and_every_window(counters: Any, total: int,
                                                         data: st.DataObject) -> None:
    weight = data.draw(st.integers(0, total))
    s = counters.Interleave(weight, total)
    n = 3 * total + 7
    got = [next(s) for _ in range(n)]
    assert got == oracle_split(weight, total, n)
    # Within one request of weight/total over every window (the canary property of §7).
    w = data.draw(st.integers(1, n))
    for i in range(n - w + 1):
        share = sum(got[i:i + w])
        assert weight * w // total <= share <= -(-weight * w // total)


def test_interleave_near_the_top_of_its_range(counters: Any) -> None:
    total = 2**32 - 1
    s = counters.Interleave(total - 1, total)
    assert [next(s) for _ in range(4)] == oracle_split(total - 1, total, 4)
    assert (s.weight, s.total) == (total - 1, total)


@pytest.mark.parametrize("args", [(0, 0), (1, 0), (5, 4), (-1, 4), (1, 2**32)])
def test_interleave_rejects_bad_arguments(counters: Any, args: tuple[int, int]) -> None:
    with pytest.raises((ValueError, OverflowError)):
        counters.Interleave(*args)


@pytest.mark.parametrize("items", [(), [1, 2]])
def test_rotation_rejects_bad_items(counters: Any, items: Any) -> None:
    with pytest.raises((ValueError, TypeError)):
        counters.Rotation(items)


def test_next_is_atomic_across_threads(counters: Any) -> None:
    # 4 threads x 3000 ticks of a 3-item rotation: every item exactly 4000 times; a shared
    # (lost) tick would unbalance it. Same for the split: exactly weight/total of the ticks.
    r = counters.Rotation(("a", "b", "c"))
    s = counters.Interleave(3, 10)
    got: list[str] = []
    picks: list[bool] = []
    lock = threading.Lock()

    def work() -> None:
        mine = [next(r) for _ in range(3000)]
        mp = [next(s) for _ in range(3000)]
        with lock:
            got.extend(mine)
            picks.extend(mp)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Counter(got) == {"a": 4000, "b": 4000, "c": 4000}
    assert sum(picks) == 3600



NAMES = st.sampled_from([b"x-canary", b"x-user", b"host", b"x-canar", b"x-canaryy", b""])


@given(items=st.lists(st.one_of(
    st.tuples(st.binary(max_size=3), NAMES, st.binary(max_size=5)),
    st.tuples(NAMES, NAMES),                     # not a triple: skipped
    st.just(None)), max_size=8), name=st.one_of(NAMES, st.just(b"cookie")))
def test_http_header_reads_as_nginx(counters: Any, items: list[Any], name: bytes) -> None:
    # nginx >= 1.23 (ingress-nginx builds 1.25), ngx_http_variable_unknown_header: every line
    # of the name is chained ("*ph = &header[i]; ph = &header[i].next;") and the value is
    # their concatenation with "*p++ = ','; *p++ = ' ';" between them; Cookie lines with "; ".
    found = [it[2] for it in items if isinstance(it, tuple) and len(it) == 3 and it[1] == name]
    sep = b"; " if name == b"cookie" else b", "
    expected = sep.join(found) if found else None
    got = counters.http_header(items, name)
    assert got == expected
    if len(found) == 1:  # the very object from the request, not a copy
        assert got is found[0]


def test_http_header_on_real_h11_headers(counters: Any) -> None:
    import h11

    hd = h11.Request(method="GET", target="/", headers=[
        ("Host", "a"), ("X-Canary", "never"), ("x-canary", "always"), ("X-One", "1")]).headers
    assert counters.http_header(hd._full_items, b"x-canary") == b"never, always"
    assert counters.http_header(hd._full_items, b"x-one") == b"1"
    assert counters.http_header(hd._full_items, b"x-missing") is None


def test_fast_route_answers_round_robin_and_hands_the_rest_over(counters: Any) -> None:
    from ingresslib._errors import BadRequestError

    class M:  # a Match: hashed by identity, nothing of it is read
        pass

    matches = {"/rr": M(), "/other": M()}

    def match(host: str, path: str) -> M | None:
        if path == "/bad":
            raise BadRequestError("bad path")
        return matches.get(path)

    calls: list[tuple[Any, ...]] = []

    def slow(*args: Any) -> str:
        calls.append(args)
        return "slow"

    fast = {matches["/rr"]: counters.Rotation(("d1", "d2")), matches["/other"]: "entry"}
    route = counters.FastRoute(match, fast, slow).route
    assert [route("GET", "h", "/rr") for _ in range(3)] == ["d1", "d2", "d1"]
    assert calls == []
    assert route("GET", "h", "/nothing") is None
    assert route("POST", "h", "/other", [("a", "b")], "192.0.2.1", query="q=1") == "slow"
    assert calls == [(matches["/other"], "entry", fast, "POST", "h", "/other", [("a", "b")],
                      "192.0.2.1", "q=1")]
    assert route("GET", "h", "/other", headers=(), client_ip=None) == "slow"
    assert calls[-1][-3:] == ((), None, None)
    with pytest.raises(BadRequestError):
        route("GET", "h", "/bad")
    with pytest.raises(TypeError):
        counters.FastRoute(match, [], slow)  # the entries of a state are a dict


def test_canary_pick_header_rule_then_split(counters: Any) -> None:
    import h11

    def hd(*pairs: tuple[str, str]) -> Any:
        return h11.Request(method="GET", target="/", headers=[("Host", "a"), *pairs]).headers

    route = object()
    pick = counters.CanaryPick(route, b"x-canary", b"always", b"never", type(hd()),
                               counters.Interleave(1, 2), counters.Rotation(("c1", "c2")),
                               counters.Rotation(("m1", "m2", "m3")))
    assert pick.route is route
    assert pick.pick(hd(("X-Canary", "always"))) == "c1"
    assert pick.pick(hd(("X-Canary", "never"))) == "m1"
    # No header, or another value: the smooth split decides (1 of 2: main, canary, ...).
    assert [pick.pick(hd(("X-Canary", "other"))), pick.pick(hd())] == ["m2", "c2"]
    assert pick.pick({"X-Canary": "always"}) is None  # not h11: the Router's Python path
    weight_only = counters.CanaryPick(route, None, None, None, None, counters.Interleave(0, 1),
                                      counters.Rotation(("c",)), counters.Rotation(("m",)))
    assert weight_only.pick({"X-Canary": "always"}) == "m"
    with pytest.raises(TypeError):
        counters.CanaryPick(route, "x-canary", b"always", None, None, counters.Interleave(0, 1),
                            counters.Rotation(("c",)), counters.Rotation(("m",)))


@pytest.mark.parametrize("native", [True, False])
def test_hash_pick_reads_one_byte_or_bisects_the_ring(counters: Any, native: bool) -> None:
    # native: the compiled twin calls zlib's crc32 from C (found in the loaded zlib module);
    # else through zlib.crc32. Both must give the ring's own answers.
    if counters is _pick_c:
        if native and not _pick_c.native_crc32():
            pytest.skip("zlib's crc32 cannot be found from C on this platform")
        _pick_c._use_native_crc32(native)
    try:
        _check_hash_pick(counters)
    finally:
        if counters is _pick_c:
            _pick_c._use_native_crc32(True)


def _check_hash_pick(counters: Any) -> None:
    import zlib
    from array import array

    import h11

    from ingresslib._hashing import HashRing
    from ingresslib._pick_py import U32

    ring = HashRing([f"member{i}" for i in range(3)])
    table = ring.build_table()
    decisions = ("d0", "d1", "d2")
    packed = array(U32, ring.points[:-1]).tobytes(), bytes(ring.owners[:-1])
    backend = object()

    def make(kind: int, hname: bytes | None = None, h11_type: Any = None) -> Any:
        return counters.HashPick(backend, kind, hname, table, ring.shift, decisions, h11_type,
                                 *packed)

    def want(key: bytes) -> str:  # the ring's own answer (bisect over its Python ints)
        return decisions[ring.owners[bisect.bisect_left(ring.points, zlib.crc32(key))]]

    import bisect

    hd_type = type(h11.Request(method="GET", target="/", headers=[("Host", "a")]).headers)
    by_addr, by_path, by_header = make(2), make(1), make(3, b"x-user", hd_type)
    assert by_addr.backend is backend
    dirty = 0
    for i in range(3000):
        ip, path, user = f"192.0.2.{i}", f"/p/{i}", f"u{i}".encode()
        dirty += table[zlib.crc32(ip.encode()) >> ring.shift] == 255
        hd = h11.Request(method="GET", target="/", headers=[("Host", "a"), ("X-User", user)]).headers
        assert by_addr.pick(path, hd, ip) == want(ip.encode())
        assert by_path.pick(path, hd, ip) == want(path.encode())
        assert by_header.pick(path, hd, ip) == want(user)
    assert dirty > 50  # the bisect ran, and agreed
    # Past the last ring point: the first point's owner (the ring's sentinel).
    last = make(2)
    assert last.pick("/", (), "") == want(b"")
    no_header = h11.Request(method="GET", target="/", headers=[("Host", "a")]).headers
    assert by_header.pick("/", no_header, None) == want(b"")
    # Handed over (None): headers of another type, a non-ASCII header value, a key that does
    # not encode as UTF-8, a key that is not a str.
    assert by_header.pick("/", {"X-User": "u1"}, None) is None
    latin = h11.Request(method="GET", target="/", headers=[("Host", "a"), ("X-User", b"caf\xe9")]).headers
    assert by_header.pick("/", latin, None) is None
    assert by_path.pick("/\udcff", (), None) is None
    assert by_path.pick(b"/p", (), None) is None
    # A path that may not be canonical (an escape, "//", a dot segment): the Python path
    # hashes its canonical form, as nginx hashes its normalised $uri. Plain dots stay inline.
    for odd in ("/p/%7e", "/p//q", "/p/./q", "/p/../q", "/.well-known"):
        assert by_path.pick(odd, (), None) is None, odd
    assert by_path.pick("/p/a.b", (), None) == want(b"/p/a.b")
    for kind in (0, 4):
        with pytest.raises(ValueError):
            make(kind)
    with pytest.raises(TypeError):
        make(3, "x-user")  # type: ignore[arg-type]
    with pytest.raises(ValueError):  # an owner without a decision
        counters.HashPick(backend, 2, None, table, ring.shift, decisions[:2], None, *packed)


def test_a_hash_route_is_answered_by_its_hash_pick() -> None:
    # After the route's first request its list entry is the HashPick (what FastRoute answers).
    from ingresslib import _router

    from _router_helpers import P, ingress, resources, simple_backend

    res = resources(ingress("web", [("a.test", "/app", "Prefix", "main", 80)],
                            {P + "upstream-hash-by": "$remote_addr"}),
                    *simple_backend("main", ["10.0.0.1", "10.0.0.2"]))
    r = _router.Router(res)
    first = r.route("GET", "a.test", "/app", (), "192.0.2.7")
    m = r.table.match("a.test", "/app")
    assert m is not None and first is not None
    assert type(r._state.fast[m]) is _router.HashPick
    assert r.route("GET", "a.test", "/app", (), "192.0.2.7") is first


def test_header_reads_by_slot_and_by_name_agree(counters: Any) -> None:
    # The compiled picks read h11's ``_full_items`` slot at its offset when the headers type
    # keeps it in a __slots__ member, and by name otherwise: both must read the same headers.
    import bisect
    import zlib
    from array import array

    from ingresslib._hashing import HashRing
    from ingresslib._pick_py import U32

    class BySlot:
        __slots__ = ("_full_items",)

        def __init__(self, items: list[tuple[bytes, bytes, bytes]]) -> None:
            self._full_items = items

    class ByName:  # _full_items is a property: no slot to read directly
        def __init__(self, items: list[tuple[bytes, bytes, bytes]]) -> None:
            self._items = items

        @property
        def _full_items(self) -> list[tuple[bytes, bytes, bytes]]:
            return self._items

    ring = HashRing([f"member{i}" for i in range(3)])
    table = ring.build_table()
    packed = array(U32, ring.points[:-1]).tobytes(), bytes(ring.owners[:-1])
    decisions = ("d0", "d1", "d2")
    for kind in (BySlot, ByName):
        hashed = counters.HashPick(None, 3, b"x-user", table, ring.shift, decisions, kind, *packed)
        canary = counters.CanaryPick(None, b"x-canary", b"always", None, kind,
                                     counters.Interleave(0, 1), counters.Rotation(("c",)),
                                     counters.Rotation(("m",)))
        for i in range(200):
            user = f"u{i}".encode()
            items = [(b"Host", b"host", b"a"), (b"X-User", b"x-user", user)]
            if i % 2:
                items.append((b"X-Canary", b"x-canary", b"always"))
            owner = ring.owners[bisect.bisect_left(ring.points, zlib.crc32(user))]
            assert hashed.pick("/", kind(items), None) == decisions[owner]
            assert canary.pick(kind(items)) == ("c" if i % 2 else "m")
    # A headers object whose slot was never set: AttributeError, as when read by name.
    hashed = counters.HashPick(None, 3, b"x-user", table, ring.shift, decisions, BySlot, *packed)
    with pytest.raises(AttributeError):
        hashed.pick("/", BySlot.__new__(BySlot), None)


@pytest.mark.parametrize("members", [1, 4, 5, 9])
def test_hash_pick_answers_for_any_number_of_decisions(counters: Any, members: int) -> None:
    # The compiled pick copies up to four decisions into itself and reads a longer tuple in
    # place: both must give the ring's own answers.
    import bisect
    import zlib
    from array import array

    from ingresslib._hashing import HashRing
    from ingresslib._pick_py import U32

    ring = HashRing([f"member{i}" for i in range(members)])
    table = ring.build_table()
    decisions = tuple(f"d{i}" for i in range(members))
    pick = counters.HashPick(None, 2, None, table, ring.shift, decisions, None,
                             array(U32, ring.points[:-1]).tobytes(), bytes(ring.owners[:-1]))
    seen = set()
    for i in range(2000):
        ip = f"198.51.100.{i % 256}.{i}"
        want = decisions[ring.owners[bisect.bisect_left(ring.points, zlib.crc32(ip.encode()))]]
        got = pick.pick("/", (), ip)
        assert got == want
        seen.add(got)
    assert seen == set(decisions)  # every decision slot was read
