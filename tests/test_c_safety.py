"""Memory safety of the two compiled extensions (``_match``: the route matcher, ``_pick``: the
router's fast path), checked against the normal build in the normal suite.

Each defect found by the sanitizer review has a regression test here (the ones that crashed run
in a child process, so a regression fails the test instead of killing the suite); the rest are
guards: reference counts stay put over 10,000 calls, memory does not grow, and huge or odd text
(1 MB paths, embedded NULs, lone surrogates, non-BMP text, page-straddling buffers) gets the
same answer from the compiled code as from its pure twin. tests/sanitize.sh runs this module
(and the matcher and pick tests) against an AddressSanitizer + UBSan build.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
import tracemalloc
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingresslib import _match_py, _pick_py
from ingresslib._errors import BadRequestError

from _counters import REQUIRE, _pick_c
from _matchers import MATCH_C

needs_match = pytest.mark.skipif(MATCH_C is None and not REQUIRE, reason="ingresslib._match is not built")
needs_pick = pytest.mark.skipif(_pick_c is None and not REQUIRE, reason="ingresslib._pick is not built")


def run_child(code: str) -> str:
    """Run ``code`` in a fresh interpreter (same ingresslib, same environment, so a sanitizer
    build's LD_PRELOAD carries over) and return its stdout; a crash or a failure there fails
    the calling test with the child's exit status and stderr."""
    env = dict(os.environ)
    here = os.path.dirname(os.path.abspath(__file__))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=300, env=env)
    assert proc.returncode == 0, (
        f"child exited with {proc.returncode} (a negative status is a signal: -11 a crash)\n"
        f"stdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-4000:]}")
    return proc.stdout


def outcome(lookup: Any, host: str, path: str) -> tuple[str, object]:
    try:
        return ("ok", lookup(host, path))
    except BadRequestError:
        return ("400", None)


RULES: dict[str, str] = {
    "/": "P /", "/foo": "P /foo", "/foo/bar": "P /foo/bar", "/a/b/c/d/e": "P /a/b/c/d/e",
    "/%C3%A9t%C3%A9": "P escaped", "/.well-known/acme": "P well-known",
    "/" + "long" * 40: "P long", "/x;y=1": "P params",
}


def groups_of(rules: dict[str, str]) -> list[Any]:
    exact = {p + "/e": "E " + v for p, v in rules.items() if p != "/"}
    prefix = {("" if p == "/" else p): v for p, v in rules.items()}
    return [("foo.com", exact, prefix, "foo default"), ("*.foo.com", exact, prefix, None),
            (None, {}, prefix, None)]


# --- Defects: each test failed (crash or wrong answer) on the code before its fix ------------


@needs_match
def test_a_matcher_never_initialised_answers_like_an_empty_one() -> None:
    # Before: Matcher.__new__(Matcher).lookup("a.com", ...) read the host table through a NULL
    # pointer (SIGSEGV). Now __cinit__ makes a valid empty matcher.
    out = run_child("""
        from ingresslib._match import Matcher
        m = Matcher.__new__(Matcher)
        for host in ("a.com", "", "A.COM:80", "[::1]:80", "x" * 300):
            for path in ("/x", "", "/a/b?q"):
                assert m.lookup(host, path) is None, (host, path)
        try:  # a Host the proxy refuses (non-ASCII): 400 before any table is read (s34 h2)
            m.lookup("é.com", "/x")
            raise AssertionError("é.com was routed")
        except ValueError as exc:
            assert type(exc).__name__ == "BadRequestError", exc
        m._check_invariants()
        assert m._host_probes() == (0.0, 0)
        print("ok")
    """)
    assert out.split() == ["ok"]


@needs_match
def test_matcher_init_runs_once_and_keeps_its_tables() -> None:
    # Before: a second __init__ freed and rebuilt the node array while the old host tables
    # still pointed at roots in it, then failed half way (a host that is no str): lookups read
    # freed memory and freed payloads (SIGSEGV). Now a second __init__ is refused and the
    # matcher keeps answering from its own tables.
    out = run_child("""
        import gc
        from ingresslib._match import Matcher
        class P:
            def __init__(self, name): self.name = name
        m = Matcher([(None, {"/a": P("a")}, {}, None), ("x.com", {"/b": P("b")}, {}, None)])
        for bad in ([(None, {"/a": P("a2"), "/aa": P("aa")}, {}, None), (5, {}, {}, None)],
                    [(None, {"/c": P("c")}, {}, None)]):
            try:
                m.__init__(bad)
            except TypeError as e:
                assert "once" in str(e), e
            else:
                raise AssertionError("a second __init__ was accepted")
            gc.collect()
        for _ in range(1000):
            assert m.lookup("", "/a").name == "a" and m.lookup("x.com", "/b").name == "b"
        assert m.lookup("", "/c") is None
        m._check_invariants()
        print("ok")
    """)
    assert out.split() == ["ok"]


@needs_match
def test_a_failed_init_leaves_no_dangling_payload() -> None:
    # Before: __init__ set the host-less group while it walked the groups, and a later group
    # whose host is no str raised: the matcher's nodes then pointed at payloads nobody held,
    # and lookup("", "/a") returned a freed object. Now nothing is published before the end.
    out = run_child("""
        import gc
        from ingresslib._match import Matcher
        class P: pass
        m = Matcher.__new__(Matcher)
        try:
            m.__init__([(None, {"/a": P()}, {"": P()}, P()), (5, {}, {}, None)])
        except AttributeError:
            pass
        else:
            raise AssertionError("a host that is no str was accepted")
        gc.collect()
        junk = [P() for _ in range(1000)]   # reuse the freed payloads' memory
        for _ in range(100):
            assert m.lookup("", "/a") is None
            assert m.lookup("", "/zzz") is None
        print("ok")
    """)
    assert out.split() == ["ok"]


@needs_match
def test_a_table_past_32_bit_label_offsets_is_refused() -> None:
    # Before: label pool offsets (int32_t) wrapped past 2 GiB of rule paths, and lookups read
    # before the label array. 33,000 groups sharing one 64 KiB key str are 2.16 GB of paths
    # in the key array but little memory. Now refused (ValueError) before anything is
    # allocated; the child's address space is capped (unless under ASan, which needs its
    # own) so the code before the fix fails with MemoryError instead of eating 4 GB.
    out = run_child("""
        import os, resource
        from ingresslib._match import Matcher
        if "asan" not in os.environ.get("LD_PRELOAD", ""):
            resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
        key = "/" + "a" * 65534
        groups = [(f"h{i}.com", {}, {key: i}, None) for i in range(33_000)]
        try:
            Matcher(groups)
        except ValueError as e:
            assert "32-bit" in str(e), e
        else:
            raise AssertionError("accepted")
        m = Matcher(groups[:100])     # a sane table still builds in the same address space
        assert m.lookup("h99.com", key + "/x") == 99
        print("ok")
    """)
    assert out.split() == ["ok"]


@needs_pick
def test_http_header_survives_a_finaliser_that_clears_the_headers() -> None:
    # Before: _http_header kept the first value as a borrowed pointer and the list's length
    # from before the loop; building the joined list may run the garbage collector, whose
    # finalisers may clear the headers list: a use-after-free (SIGSEGV, ASan:
    # heap-use-after-free in Py_INCREF). Now both twins answer what they read before the list
    # was cleared (when the collector runs differs between them: any such answer is right).
    out = run_child("""
        import gc, sys
        from ingresslib import _pick, _pick_py
        values = [b"v%d" % i * 3 for i in range(6)]
        valid = {None, values[0]} | {b", ".join(values[:k]) for k in range(2, 7)}
        for impl in (_pick, _pick_py):
            cut = False
            for pad in range(8):
                items = [(b"X-A", b"x-a", v) for v in values]
                class Clear:
                    def __del__(self):
                        items.clear()
                gc.collect()
                a = Clear(); a.self = a; del a
                p = [[] for _ in range(pad)]
                gc.set_threshold(pad + 2)
                try:
                    got = impl.http_header(items, b"x-a")
                finally:
                    gc.set_threshold(700)
                gc.collect()
                assert got in valid, (impl.__name__, pad, got)
                cut = cut or got not in (None, b", ".join(values))
            # The finaliser did run inside the call (the case that crashed) at some pad. Only
            # before CPython 3.12: since gh-97922 "The Garbage Collector now runs only on the
            # eval breaker mechanism of the Python bytecode evaluation loop instead on object
            # allocations" (or in PyErr_CheckSignals), and the compiled loop runs neither, so
            # no finaliser can run inside it there (the window that crashed is closed; both
            # twins' answers are still checked above).
            assert cut or impl is _pick_py or sys.version_info >= (3, 12), impl.__name__
        print("ok")
    """)
    assert out.split() == ["ok"]


@needs_pick
def test_headers_whose_items_are_none_raise_like_the_twin() -> None:
    # Before: a headers object whose _full_items slot held None reached _http_header, which
    # read None as a list (its size and item array: memory past the None object). Now it
    # raises TypeError, as the pure twin's ``for item in None`` does.
    out = run_child("""
        from ingresslib import _pick, _pick_py
        class Headers:
            __slots__ = ("_full_items",)
            def __init__(self, items): self._full_items = items
        for impl in (_pick, _pick_py):
            canary = impl.CanaryPick("r", b"x-canary", b"always", b"never", Headers,
                                     impl.Interleave(1, 2), impl.Rotation(("y",)),
                                     impl.Rotation(("n",)))
            hashed = impl.HashPick("b", 3, b"x-user", bytes(256), 24, ("d",), Headers,
                                   b"\\0\\0\\0\\0", b"\\0")
            for pick in (lambda h: canary.pick(h), lambda h: hashed.pick("/", h, None)):
                try:
                    pick(Headers(None))
                except TypeError:
                    pass
                else:
                    raise AssertionError(f"{impl.__name__}: None headers accepted")
                # A tuple of triples is read as the twin reads it.
                assert pick(Headers(((b"X-Canary", b"x-canary", b"always"),))) in ("y", "d")
        print("ok")
    """)
    assert out.split() == ["ok"]


@needs_pick
def test_a_slot_descriptor_copied_onto_another_class_is_not_trusted() -> None:
    # Before: the picks trusted any member descriptor named _full_items and read the slot at
    # its offset in whatever object came in: a class borrowing another class's descriptor
    # (its instances smaller) had the picks read past the object (and use what they found as
    # a list). Now the offset is used for the declaring class and its subclasses only; the
    # rest read the attribute by name, which raises TypeError as in the pure twin.
    out = run_child("""
        from ingresslib import _pick, _pick_py
        names = [f"s{i}" for i in range(40)] + ["_full_items"]
        Big = type("Big", (), {"__slots__": tuple(names)})
        class Small:
            __slots__ = ()
            _full_items = Big._full_items
        junk = [Small() for _ in range(1000)]
        for impl in (_pick, _pick_py):
            canary = impl.CanaryPick("r", b"x-canary", b"always", None, Small,
                                     impl.Interleave(1, 2), impl.Rotation(("y",)),
                                     impl.Rotation(("n",)))
            hashed = impl.HashPick("b", 3, b"x-user", bytes(256), 24, ("d",), Small,
                                   b"\\0\\0\\0\\0", b"\\0")
            for h in junk[::50]:
                for pick in (lambda: canary.pick(h), lambda: hashed.pick("/", h, None)):
                    try:
                        pick()
                    except TypeError:
                        pass
                    else:
                        raise AssertionError(f"{impl.__name__}: read a slot Small has not")
        print("ok")
    """)
    assert out.split() == ["ok"]


@needs_pick
def test_hash_pick_init_again_never_reads_freed_decisions() -> None:
    # Before: __init__ on a live HashPick replaced _decisions (freeing the old tuple, whose
    # decisions' finalisers then ran) while _dec still pointed into that tuple: a pick from
    # such a finaliser returned a freed object. Now the old objects outlive the swap: a pick
    # from a finaliser sees the new decisions.
    out = run_child("""
        import gc
        from ingresslib import _pick
        seen = []
        class D:
            def __init__(self, name): self.name = name
            def __del__(self):
                if hp is not None:
                    got = hp.pick("/k", None, None)
                    seen.append(got.name if isinstance(got, D) else repr(type(got)))
        hp = None
        table = bytes(range(6)) * 43
        ring = (b"\\0\\0\\0\\x80", b"\\0")
        for n in (6, 3):     # decisions read through the tuple, and copied into the object
            hp = _pick.HashPick("b", 1, None, table[:256], 24, tuple(D(f"old{i}") for i in range(n)),
                                None, *ring)
            hp.__init__("b", 1, None, table[:256], 24, tuple(D(f"new{i}") for i in range(n)),
                        None, *ring)
            gc.collect()
            hp = None
            gc.collect()
        assert seen and all(s.startswith("new") for s in seen[:6]), seen
        print("ok")
    """)
    assert out.split() == ["ok"]


@needs_pick
def test_a_canary_pick_never_initialised_raises() -> None:
    # Before: CanaryPick.__new__(CanaryPick).pick(...) called the split's cdef method on None
    # and wrote its counter into the None object (SIGSEGV or silent corruption).
    out = run_child("""
        from ingresslib import _pick
        c = _pick.CanaryPick.__new__(_pick.CanaryPick)
        for call in (lambda: c.pick(None),
                     lambda: _pick.FastRoute(lambda h, p: "m", {"m": c}, None).route("GET", "h", "/")):
            try:
                call()
            except TypeError:
                pass
            else:
                raise AssertionError("an uninitialised CanaryPick answered")
        h = _pick.HashPick.__new__(_pick.HashPick)
        assert h.pick("/a", None, None) is None     # empty table: "ask the Python path"
        print("ok")
    """)
    assert out.split() == ["ok"]


# --- Guards: reference counts, memory, odd and huge inputs -----------------------------------


@needs_match
def test_lookup_keeps_reference_counts_and_memory_steady() -> None:
    payload, default, gdefault = object(), object(), object()
    groups = [("foo.com", {"/e": payload}, {"/p": payload}, gdefault), (None, {}, {"": payload}, None)]
    m = MATCH_C.Matcher(groups, default)
    host, path, slow = "foo.com", "/p/x", "/p/./x/%7e"
    watched = (payload, default, gdefault, host, path, slow, m)
    requests = [("foo.com", "/e"), ("foo.com", path), ("FOO.com:80", slow), ("x.org", "/"),
                ("foo.com", "/nothing"), ("", "")]
    for h, p in requests:   # warm up (caches made once, e.g. interned strings)
        m.lookup(h, p)
    before = [sys.getrefcount(x) for x in watched]
    gc.collect()
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        for _ in range(10_000):
            for h, p in requests:
                m.lookup(h, p)
        grown = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    assert [sys.getrefcount(x) for x in watched] == before
    assert grown < 64 * 1024, grown


@needs_pick
def test_picks_keep_reference_counts_steady() -> None:
    import h11

    c = _pick_c
    items = (object(), object(), object())
    rot = c.Rotation(items)
    name, v1, v2 = b"x-a", b"1", b"2"
    triples = [(b"X-A", b"x-a", v1), (b"X-B", b"x-b", b"?"), (b"x-a", b"x-a", v2)]
    hd = h11.Request(method="GET", target="/", headers=[("Host", "a"), ("X-Canary", "always"),
                                                        ("X-User", "u1")]).headers
    canary = c.CanaryPick("r", b"x-canary", b"always", None, type(hd), c.Interleave(1, 3),
                          c.Rotation(items), c.Rotation(items))
    decisions = (object(), object())
    hashed = [c.HashPick("b", kind, b"x-user", bytes(range(2)) * 128, 24, decisions, type(hd),
                         b"\0\0\0\x80\0\0\0\xf0", b"\0\1") for kind in (1, 2, 3)]
    watched = (*items, *decisions, name, v1, v2, hd, triples)
    for _ in range(3):
        next(rot), c.http_header(triples, name), canary.pick(hd)
        for h in hashed:
            h.pick("/p", hd, "10.0.0.1")
    before = [sys.getrefcount(x) for x in watched]
    for _ in range(10_000):
        next(rot)
        assert c.http_header(triples, b"x-b") == b"?"
        c.http_header(triples, name)
        canary.pick(hd)
        for h in hashed:
            h.pick("/p", hd, "10.0.0.1")
    assert [sys.getrefcount(x) for x in watched] == before


_MB = 1 << 20
# 1 MB paths with few "/" (the pure twin probes one prefix per "/": a 1 MB path of 500,000
# segments takes it minutes, see the report), and one of many segments for the compiled one.
_HUGE_PATHS = ["/" + "a" * _MB, "/foo/" + "b" * _MB, "/" + "a" * _MB + "?" + "q" * 100,
               "/foo/" + "c" * _MB + "/d/..", "/foo/" + "é" * _MB, "/foo/" + "%41" * (_MB // 3)]


def _odd_paths() -> list[str]:
    return [
        "/foo" + "/." * 1000 + "/bar", "/foo" + "/x" * 500, "/x" * 500 + "/.." * 501, "/foo\x00/bar", "/foo/bar\x00",
        "\x00", "/\x00", "/foo/\udc80", "/\ud800", "/\U0001f600", "/foo/\U0001f600/" + "é" * 1000,
        "/é", "/\xff", "/foo/%C3%A9t%C3%A9", "/%c3%a9t%c3%a9", "/%E9", "/%00", "/%", "/%4",
        "/foo?#", "/foo?\x00#", "foo", "", "?", "/?", "//foo", "/foo//bar", "/" + "long" * 40 + "/e",
        "/" + "long" * 40 + "x", "/x;y=1/e", "/.well-known/acme/x", "/.;/x", "/..;/x",
    ]


def _odd_hosts() -> list[str]:
    return ["foo.com", "FOO.COM", "foo.com.", "foo.com:8080", "a.foo.com", "A.Foo.Com:1",
            "a.b.foo.com", "", "\x00", "foo.com\x00", "foo\x00.com", "[::1]", "[::1]:80",
            "é.foo.com", "\udc80.foo.com", "\U0001f600.foo.com", "x" * 256 + ".foo.com",
            "y" * 255, "z" * (1 << 20), "." * 300, "*.foo.com", ".foo.com", "foo..com"]


@needs_match
def test_huge_and_odd_inputs_answer_as_the_pure_twin() -> None:
    groups = groups_of(RULES)
    twins = [MATCH_C.Matcher(groups, "D"), _match_py.Matcher(groups, "D")]
    for host in _odd_hosts():
        for path in _odd_paths():
            got = [outcome(t.lookup, host, path) for t in twins]
            assert got[0] == got[1], (host[:40], path[:40])
    for host, paths in (("foo.com", _HUGE_PATHS), ("A.FOO.com:80", _HUGE_PATHS[:2]),
                        ("z" * _MB, _HUGE_PATHS[:1])):
        for path in paths:
            got = [outcome(t.lookup, host, path) for t in twins]
            assert got[0] == got[1], (host[:40], path[:40])
    # Half a million segments: the compiled walk stops at the first unknown label.
    assert MATCH_C.Matcher(groups, "D").lookup("foo.com", "/foo" + "/x" * (_MB // 2)) == "P /foo"


@needs_match
def test_every_buffer_end_and_page_offset_answers_as_the_pure_twin() -> None:
    # The compiled fast path reads 16 bytes at a time where a block stays in one page: walk
    # paths of every length around a block and check each against the twin. Many strs of
    # one size land at many page offsets.
    groups = groups_of(RULES)
    twins = [MATCH_C.Matcher(groups, "D"), _match_py.Matcher(groups, "D")]
    tails = ["", "/", "/.", "/..", "//", "?", "?#", "%", "\x00", "é", ".", "/e", "/.e"]
    for n in range(0, 48):
        for tail in tails:
            for stem in ("/foo/", "/", "/a/b/c/d/e/"):
                path = (stem + "abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmn")[: len(stem) + n] + tail
                for _ in range(3):
                    copy = "".join(list(path))   # a fresh buffer elsewhere
                    got = [outcome(t.lookup, "foo.com", copy) for t in twins]
                    assert got[0] == got[1], (path,)


@needs_pick
def test_hash_picks_on_odd_text_answer_as_the_pure_twin() -> None:
    import h11

    hd_type = h11.Request(method="GET", target="/", headers=[("Host", "a")]).headers.__class__
    # Table bytes 255 are DIRTY: those keys bisect the ring.
    args = ("b", b"x-user", bytes([0, 1, 255, 3]) * 64, 24, ("d0", "d1", "d2", "d3", "d4"), hd_type,
            b"\0\0\0\x40\0\0\0\x80\0\0\0\xc0", b"\4\1\2")
    picks = []
    for impl in (_pick_c, _pick_py):
        picks.append([impl.HashPick(args[0], kind, *args[1:]) for kind in (1, 2)])
    keys = _odd_paths() + _HUGE_PATHS + _odd_hosts() + ["/foo" + "/x" * (_MB // 2), "10.0.0.1", "::1", "\ud83d\ude00", "\x80", "a\x00b"]
    for key in keys:
        for kind in range(2):
            got = [p[kind].pick(key, None, key) for p in picks]
            assert got[0] == got[1], (kind, key[:40])


# --- Fuzz: arbitrary text into every compiled entry point (meaningful under sanitize.sh) ------

_text = st.text(alphabet=st.characters(exclude_categories=()), max_size=60)
_long = st.builds(lambda s, k: s * k, st.text(alphabet="/.%?;a\x00é\U0001f600", min_size=1, max_size=6),
                  st.integers(100, 1000))


@needs_match
@given(host=st.one_of(_text, _long), path=st.one_of(_text, _text.map(lambda s: "/" + s), _long,
                                                    _long.map(lambda s: "/foo/" + s)))
def test_fuzz_lookup_answers_as_the_pure_twin(host: str, path: str) -> None:
    groups = groups_of(RULES)
    got = {outcome(cls(groups, "D").lookup, host, path) for cls in (MATCH_C.Matcher, _match_py.Matcher)}
    assert len(got) == 1


@needs_match
@given(keys=st.lists(st.one_of(_text.map(lambda s: "/" + s), st.sampled_from(list(RULES))), max_size=8),
       # Rule hosts as RouteTable hands them over: normalised names (a raw "" or "A" is never one).
       hosts=st.lists(st.from_regex(r"(\*\.)?[a-z0-9-]{1,12}(\.[a-z0-9-]{1,12}){0,2}", fullmatch=True),
                      unique=True, max_size=3),
       requests=st.lists(st.tuples(_text, st.one_of(_text, _long)), max_size=6))
def test_fuzz_tables_of_arbitrary_keys(keys: list[str], hosts: list[str],
                                       requests: list[tuple[str, str]]) -> None:
    groups: list[Any] = [(h, {k: "E" + k for k in keys}, {k: "P" + k for k in keys}, None) for h in hosts]
    groups.append((None, {}, {k: "P" + k for k in keys}, "G"))
    twins: list[Any] = []
    refused: set[type] = set()
    for cls in (MATCH_C.Matcher, _match_py.Matcher):
        try:
            twins.append(cls(groups, "D"))
        except ValueError as e:   # e.g. two hosts that are one group
            refused.add(type(e))
    assert len(refused) == 0 or (len(refused) == 1 and not twins), (refused, len(twins))
    if not twins:
        return
    twins[0]._check_invariants()
    for host, path in requests + [(h, k) for h in hosts for k in keys]:
        got = [outcome(t.lookup, host, path) for t in twins]
        assert got[0] == got[1], (host, path)


@needs_pick
@given(items=st.lists(st.one_of(
    st.tuples(st.binary(max_size=4), st.sampled_from([b"x-a", b"cookie", b"x-b"]), st.binary(max_size=20)),
    st.tuples(st.binary(max_size=3)), st.none(), _text), max_size=12),
    name=st.sampled_from([b"x-a", b"cookie", b"x-zz", b""]), key=st.one_of(_text, _long))
def test_fuzz_pick_entry_points(items: list[Any], name: bytes, key: str) -> None:
    assert _pick_c.http_header(items, name) == _pick_py.http_header(items, name)
    args = ("b", name, bytes([0, 1, 255]) * 86, 24, ("d0", "d1", "d2"), list,
            b"\0\0\0\x40\0\0\0\xf0", b"\2\1")
    for kind in (1, 2):
        got = [impl.HashPick(args[0], kind, *args[1:]).pick(key, None, key) for impl in (_pick_c, _pick_py)]
        assert got[0] == got[1]
