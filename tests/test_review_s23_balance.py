"""Session 23 fresh-eyes review of the balancers against ingress-nginx's Lua (``balancer/ewma.lua``,
``chash.lua``, ``chashsubset.lua``, ``sticky_persistent.lua``) and of the compiled ``_pick``
against its pure twin ``_pick_py``. The tests marked "old tree" failed on the code before this
review's fix; the others pin down properties the review checked and found kept."""

from __future__ import annotations

import importlib
import math
import random
import sys
from array import array
from typing import Any

import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from _budget import examples
from _router_helpers import P, ingress, resources, service, slice_
from ingresslib import _balance_hash, _pick_py
from ingresslib._balance import (
    BalancerOptions,
    BalancerSpec,
    ConsistentHash,
    CookieAffinity,
    Ewma,
    EMPTY_REQUEST,
    RequestContext,
    parse_balancer_spec,
)
from ingresslib._endpoints import EndpointSet
from ingresslib._hashing import HashRing
from ingresslib._router import Router

try:
    _pick_c: Any = importlib.import_module("ingresslib._pick")
except ImportError:  # pragma: no cover - the extension is built in CI and here
    _pick_c = None

needs_c = pytest.mark.skipif(_pick_c is None, reason="ingresslib._pick is not built")


def _eps(n: int, weights: tuple[int, ...] | None = None, base: int = 0) -> EndpointSet:
    eps = tuple((f"10.0.{(base + i) // 200}.{(base + i) % 200 + 1}", 8080) for i in range(n))
    w = weights or (1,) * n
    return EndpointSet("default", "web", 8080, eps, w, None, len(set(w)) > 1)


def _outcome(f: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "ok", f(*args)
    except Exception as e:  # noqa: BLE001 - the twins must fail alike
        return "raised", type(e)


# --- _pick_py.http_header: the same errors as the compiled twin (old tree: no error) ---------


class _BytesSub(bytes):
    pass


@pytest.mark.parametrize("name", ["x-a", None, bytearray(b"x-a"), memoryview(b"x-a"),
                                  _BytesSub(b"x-a")],
                         ids=["str", "None", "bytearray", "memoryview", "bytes-subclass"])
def test_pure_http_header_refuses_a_name_that_is_not_bytes(name: Any) -> None:
    """``_pick_py`` documents itself as the compiled ``_pick``'s twin, "same sequences, same
    errors". Before: the pure ``http_header`` took a ``str``, ``None``, a ``bytearray`` or a
    ``bytes`` subclass as the name and answered (None, or the header), where the compiled one
    raises ``TypeError`` (its argument is typed ``bytes``)."""
    items = [(b"X-A", b"x-a", b"1")]
    with pytest.raises(TypeError):
        _pick_py.http_header(items, name)
    if _pick_c is not None:
        with pytest.raises(TypeError):
            _pick_c.http_header(items, name)


def test_pure_http_header_counts_a_none_value_as_found() -> None:
    """In a list of triples made by hand, a value of None is a line found, as in the compiled
    twin (which tracks "found" apart from the value). Before: the pure twin took None for
    "not found yet", so the next line's value came back alone where the compiled twin joins
    the two lines (a ``TypeError`` joining None); and a single None line answered None."""
    items = [(b"X", b"x", None), (b"X", b"x", b"v")]
    mods = [_pick_py] + ([_pick_c] if _pick_c is not None else [])
    for mod in mods:
        with pytest.raises(TypeError):
            mod.http_header(items, b"x")
        assert mod.http_header([(b"X", b"x", b"v"), (b"X", b"x", b"w")], b"x") == b"v, w"
        # The name object itself matches, a bytes subclass too (the compiled twin's identity
        # test), as the picker objects pass it.
        name = _BytesSub(b"x-c")
        hd = h11.Request(method="GET", target="/", headers=[("Host", "a")]).headers
        hd._full_items.append((b"X-C", name, b"always"))
        pick = mod.CanaryPick("route", name, b"always", None, type(hd), mod.Interleave(0, 1),
                              mod.Rotation(("c",)), mod.Rotation(("m",)))
        assert pick.pick(hd) == "c", mod.__name__


def test_pure_pickers_still_take_a_bytes_subclass_name() -> None:
    """CanaryPick and HashPick accept any ``bytes`` (``isinstance``) as the header name, in
    both twins: the pure ones read with it as the compiled ones do."""
    hd = h11.Request(method="GET", target="/",
                     headers=[("Host", "a"), ("X-C", "always")]).headers
    mods = [_pick_py] + ([_pick_c] if _pick_c is not None else [])
    for mod in mods:
        pick = mod.CanaryPick("route", _BytesSub(b"x-c"), b"always", None, type(hd),
                              mod.Interleave(0, 1), mod.Rotation(("c",)), mod.Rotation(("m",)))
        assert pick.pick(hd) == "c", mod.__name__


_NAMES = st.sampled_from([b"x-a", b"cookie", b""])
_VALUES = st.one_of(st.binary(max_size=4), st.just(bytearray(b"v")), st.none(), st.integers())
_ITEMS = st.one_of(
    st.tuples(st.binary(max_size=3), _NAMES, _VALUES),
    st.tuples(st.binary(max_size=3), _NAMES.map(_BytesSub), _VALUES),
    st.tuples(st.binary(max_size=3), _NAMES.map(bytearray), _VALUES),
    st.tuples(st.binary(max_size=3), _NAMES.map(lambda b: b.decode()), _VALUES),
    st.tuples(_NAMES, _VALUES), st.integers(), st.none())


@needs_c
@settings(max_examples=examples(0.5), suppress_health_check=[HealthCheck.too_slow])
@given(items=st.lists(_ITEMS, max_size=6),
       name=st.one_of(_NAMES, _NAMES.map(_BytesSub), st.just("x-a"), st.none()),
       container=st.sampled_from([list, tuple, iter]))
def test_http_header_twins_agree_on_any_input(items: list[Any], name: Any,
                                              container: Any) -> None:
    """Old tree: a non-``bytes`` name answered in the pure twin, raised in the compiled one."""
    assert (_outcome(_pick_c.http_header, container(items), name)
            == _outcome(_pick_py.http_header, container(items), name))


_H11 = type(h11.Request(method="GET", target="/", headers=[("Host", "a")]).headers)


@needs_c
@settings(max_examples=examples(0.5), suppress_health_check=[HealthCheck.too_slow])
@given(members=st.integers(1, 6), kind=st.sampled_from([1, 2, 3]),
       path=st.one_of(st.none(), st.binary(max_size=3),
                      st.text(alphabet="/%.ab\udcff\ud800\u00e9\u65e5", max_size=8)),
       ip=st.one_of(st.none(), st.text(alphabet="19.2:\ud800\u00e9", max_size=6)),
       values=st.lists(st.text(alphabet="a~\u00e9\u00ff", max_size=4).map(
           lambda v: v.encode("latin-1")), max_size=3))
def test_hash_pick_twins_agree_and_follow_the_ring(members: int, kind: int, path: Any, ip: Any,
                                                   values: list[Any]) -> None:
    """Compiled and pure ``HashPick`` answer alike (the Decision, or None: the Router's Python
    path decides) for unicode, odd, empty and non-str keys, and an answer is the ring's own."""
    import zlib

    ring = HashRing([f"m{i}" for i in range(members)])
    table = ring.build_table()
    decisions = tuple(f"d{i}" for i in range(members))
    packed = array(_pick_py.U32, ring.points[:-1]).tobytes(), bytes(ring.owners[:-1])
    hd = h11.Request(method="GET", target="/",
                     headers=[("Host", "a")] + [("X-K", v) for v in values]).headers
    args = (object(), kind, b"x-k" if kind == 3 else None, table, ring.shift, decisions, _H11,
            *packed)
    got = _outcome(_pick_c.HashPick(*args).pick, path, hd, ip)
    assert got == _outcome(_pick_py.HashPick(*args).pick, path, hd, ip)
    if got[0] == "ok" and got[1] is not None:
        if kind == 3:
            kb = _pick_py.http_header(hd._full_items, b"x-k") or b""
        else:
            kb = (path if kind == 1 else (ip or "")).encode()
        assert got[1] == decisions[ring.lookup(zlib.crc32(kb))]


@needs_c
@settings(max_examples=examples(0.3), suppress_health_check=[HealthCheck.too_slow])
@given(hname=st.sampled_from([b"x-c", None, b"cookie"]),
       hno=st.sampled_from([b"never", None, b""]), weight=st.integers(0, 5),
       total=st.integers(1, 5),
       sent=st.lists(st.tuples(st.sampled_from(["X-C", "Cookie", "Y"]),
                               st.sampled_from([b"always", b"never", b"x", b""])), max_size=3),
       h11_headers=st.booleans(), calls=st.integers(1, 8))
def test_canary_pick_twins_agree(hname: Any, hno: Any, weight: int, total: int,
                                 sent: list[tuple[str, bytes]], h11_headers: bool,
                                 calls: int) -> None:
    weight = min(weight, total)
    hd: Any = (h11.Request(method="GET", target="/", headers=[("Host", "a")] + sent).headers
               if h11_headers else dict(sent))

    def run(mod: Any) -> list[Any]:
        pick = mod.CanaryPick("route", hname, b"always", hno, _H11, mod.Interleave(weight, total),
                              mod.Rotation(("c1", "c2")), mod.Rotation(("m1", "m2", "m3")))
        return [pick.pick(hd) for _ in range(calls)]

    assert run(_pick_c) == run(_pick_py)


# --- upstream-hash-by-subset: the subsets of an endpoint count, kept (old tree: rebuilt) ------


class _CountingRing(HashRing):
    built = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        type(self).built += 1
        super().__init__(*args, **kwargs)


def _subset_balancer(size: int = 3) -> ConsistentHash:
    spec = BalancerSpec("chash", hash_by="$request_uri", subset=True, subset_size=size)
    return ConsistentHash(BalancerOptions(spec=spec, rng=random.Random(7)))


def test_subsets_not_rebuilt_for_the_set_before_an_update(monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """The retry of a request routed before an endpoint update holds the set before it; the
    plain ring keeps the previous set's ring for it (``_RingCache``). Before: the subsets and
    their ring were keyed by the set object, one entry: every such retry, and the next new
    request, rebuilt them (~20 ms each at 1,000 endpoints), and so did an update that brought
    an equal set. Now they are kept per endpoint count, the one before too."""
    monkeypatch.setattr(_balance_hash, "HashRing", _CountingRing)
    _CountingRing.built = 0
    ch = _subset_balancer()
    before, after = _eps(10), _eps(11)
    for k in range(3):
        ch.pick_key(f"/k{k}", before)
    ch.pick_key("/k", after)
    built = _CountingRing.built
    for k in range(20):  # retries on the old set interleaved with new requests
        ch.pick_point(k * 7919, before, {before.endpoints[0]})
        ch.pick_key(f"/k{k}", after)
        ch.pick_key(f"/k{k}", _eps(11))  # an update rebuilt the set object, same endpoints
    assert _CountingRing.built == built


def test_kept_subsets_are_the_ones_a_fresh_balancer_cuts() -> None:
    """Whatever the order the counts came in, the subsets and their ring are those of the
    count (``chashsubset.lua``'s: the list cycled up to a multiple of the size, cut in
    order)."""
    ch = _subset_balancer(3)
    seen = [7, 2, 7, 9, 2, 9, 9, 1, 7]
    for n in seen:
        ch.pick_key("/x", _eps(n))
        fresh = _subset_balancer(3)
        fresh.pick_key("/x", _eps(n))
        mine, theirs = ch._subsets(_eps(n)), fresh._subsets(_eps(n))
        assert mine[2] == theirs[2]
        assert mine[1].points == theirs[1].points and mine[1].owners == theirs[1].owners
    # 7 endpoints, size 3: [e0 e1 e2] [e3 e4 e5] [e6 e0 e1].
    subsets = ch._subsets(_eps(7))[2]
    assert [sorted(k for k, _ in held) for _, held in subsets] == [[0, 1, 2], [3, 4, 5],
                                                                    [0, 1, 6]]


# --- EWMA: a NaN or infinite sample (old tree: kept for good) ----------------------------------


def _ewma(clock: list[float]) -> Ewma:
    return Ewma(BalancerOptions(rng=random.Random(3), clock=lambda: clock[0]))


def test_ewma_nan_sample_does_not_poison_the_endpoint() -> None:
    """``Router.observe(decision, endpoint, seconds, ok)`` is public; a NaN ``seconds`` (a
    caller's clock arithmetic gone wrong) made that endpoint's average NaN for good: every
    later sample and the decay keep NaN, and NaN compares false, so the endpoint won every
    draw where it was the second candidate - half its draws against a slow endpoint - however
    fast it answered afterwards. Now a NaN counts as no time (as a negative one)."""
    clock = [0.0]
    e = _ewma(clock)
    backend = _eps(2)
    fast, slow = backend.endpoints
    e.pick(EMPTY_REQUEST, backend, ())
    e.observe(fast, float("nan"), True)
    for step in range(1, 30):
        clock[0] = step * 0.5
        e.observe(fast, 0.01, True)
        e.observe(slow, 2.0, True)
    picks = [e.pick(EMPTY_REQUEST, backend, ()) for _ in range(40)]
    assert picks == [0] * 40  # two endpoints: both are compared on every pick
    assert all(math.isfinite(v) for v in e._stats[fast])


def test_ewma_infinite_sample_decays_like_any_slow_one() -> None:
    """An infinite sample made the average infinite for good (``inf * exp(-t)`` is inf): the
    endpoint never got another chance, even after fast answers. Now a sample counts at most
    :attr:`Ewma.MAX_SAMPLE` seconds, and decays as a slow sample does."""
    clock = [0.0]
    e = _ewma(clock)
    backend = _eps(2)
    hung, other = backend.endpoints
    e.pick(EMPTY_REQUEST, backend, ())
    e.observe(hung, float("inf"), False)
    e.observe(other, 1.0, True)
    assert e.pick(EMPTY_REQUEST, backend, ()) == 1
    clock[0] = 1000.0  # much later: the hung endpoint answers fast again, the other slowly
    for step in range(30):
        clock[0] += 0.5
        e.observe(hung, 0.01, True)
        e.observe(other, 1.0, True)
    assert [e.pick(EMPTY_REQUEST, backend, ()) for _ in range(20)] == [0] * 20
    assert all(math.isfinite(v) for v in e._stats[hung])


def test_ewma_prefers_the_endpoint_that_does_not_fail() -> None:
    """``ewma.lua`` semantics kept: a fast failure counts as a slow sample (≥ 1 s) and lowers
    the success rate, so the endpoint that answers wins; idle time decays the score towards
    0, so after a long pause the failing endpoint gets another chance."""
    clock = [0.0]
    e = _ewma(clock)
    backend = _eps(2)
    bad, good = backend.endpoints
    e.pick(EMPTY_REQUEST, backend, ())
    for step in range(20):
        clock[0] = step * 0.2
        e.observe(bad, 0.001, False)
        e.observe(good, 0.2, True)
    assert [e.pick(EMPTY_REQUEST, backend, ()) for _ in range(20)] == [1] * 20
    clock[0] += 200.0
    e.observe(good, 0.2, True)  # the good one was just used; the bad one idled 200 s
    assert e.pick(EMPTY_REQUEST, backend, ()) == 0


# --- persistent affinity: new sessions follow the endpoint weights (old tree: even) ----------


def _persistent(backend_name: str = "default-web-80") -> CookieAffinity:
    spec, warn = parse_balancer_spec(
        {P + "affinity": "cookie", P + "affinity-mode": "persistent"}, "round_robin",
        {"round_robin", "ewma"}, "/")
    assert not warn
    return CookieAffinity(BalancerOptions(spec=spec, rng=random.Random(1)), "", backend_name)


def test_persistent_new_sessions_follow_endpoint_weights() -> None:
    """``ingresslib.io/endpoint-weights`` makes round-robin nginx's smooth weighted
    round-robin, and the balanced mode's ring and upstream-hash-by give weighted endpoints
    more of the ring. Before: persistent mode spread new sessions evenly whatever the
    weights (a plain cycle). Now the same smooth weighted round-robin: weights 3:1 give 3 of
    every 4 new sessions to the first endpoint."""
    a = _persistent()
    backend = _eps(2, (3, 1))
    picks = [a.pick_with_cookie(RequestContext(), backend, ())[0] for _ in range(40)]
    assert picks.count(0) == 30 and picks.count(1) == 10
    assert picks[:4] == [0, 0, 1, 0]  # nginx's interleave, not a block


def test_persistent_new_sessions_through_the_router_follow_weights() -> None:
    res = resources(
        ingress("web", [("a.test", "/", "Prefix", "web", 80)],
                {P + "affinity": "cookie", P + "affinity-mode": "persistent"}),
        service("web", annotations={"ingresslib.io/endpoint-weights": "10.0.0.1=3"}),
        slice_("web-1", "web", ["10.0.0.1", "10.0.0.2"]))
    router = Router(res, seed=1)
    got = [router.route("GET", "a.test", "/") for _ in range(20)]
    assert all(d is not None and d.set_cookie for d in got)
    ips = [d.endpoint[0] for d in got if d is not None]
    assert ips.count("10.0.0.1") == 15 and ips.count("10.0.0.2") == 5


def test_persistent_unweighted_cycle_and_retries_unchanged() -> None:
    """Without weights: the strict cycle as before, a retry skips what it tried, and a cookie
    naming an endpoint that left starts a new session with a new cookie."""
    a = _persistent()
    backend = _eps(3)
    assert [a.pick_with_cookie(RequestContext(), backend, ())[0] for _ in range(6)] == [
        0, 1, 2, 0, 1, 2]
    tried = {backend.endpoints[0], backend.endpoints[1]}
    assert a.pick_with_cookie(RequestContext(retry=True), backend, tried)[0] == 2
    assert a.pick_with_cookie(RequestContext(retry=True), backend,
                              set(backend.endpoints)) == (None, None)
    gone = a.persistent_value(_eps(4), 3)  # a session on the 4th endpoint, now removed
    req = RequestContext(headers=[("cookie", f"INGRESSCOOKIE={gone}")])
    idx, cookie = a.pick_with_cookie(req, backend, ())
    assert idx is not None and cookie is not None
    assert cookie.startswith(f"INGRESSCOOKIE={a.persistent_value(backend, idx)};")


# --- consistent hashing: spread and movement (kept) -------------------------------------------


def test_consistent_hash_spread_and_movement() -> None:
    """Over 6,000 keys: each of 6 endpoints within 25 % of its fair share (a ketama ring of
    160 points per endpoint); adding one moves about 1/7 of the keys, all to the new
    endpoint; removing one moves only the keys it had."""
    ch = ConsistentHash(BalancerOptions(spec=BalancerSpec("chash", hash_by="$request_uri"),
                                        rng=random.Random(1)))
    keys = [f"/item/{k}" for k in range(6000)]
    six, seven = _eps(6), _eps(7)
    five = EndpointSet("default", "web", 8080, six.endpoints[1:], (1,) * 5, None, False)
    own6 = [six.endpoints[ch.pick_key(k, six)] for k in keys]  # type: ignore[index]
    counts = [own6.count(ep) for ep in six.endpoints]
    assert all(abs(c - 1000) < 250 for c in counts), counts
    own7 = [seven.endpoints[ch.pick_key(k, seven)] for k in keys]  # type: ignore[index]
    moved = [(a, b) for a, b in zip(own6, own7) if a != b]
    assert all(b == seven.endpoints[6] for _, b in moved)
    assert abs(len(moved) / len(keys) - 1 / 7) < 0.04
    own5 = [five.endpoints[ch.pick_key(k, five)] for k in keys]  # type: ignore[index]
    assert all(a == b for a, b in zip(own6, own5) if a != six.endpoints[0])


def test_upstream_hash_by_is_trimmed_as_ingress_nginx_reads_it() -> None:
    """upstreamhashby/main.go: ``parser.GetStringAnnotation("upstream-hash-by", ing)``, whose
    ``normalizeString`` trims each line (``strings.TrimSpace``). Before: ``" $remote_addr "``
    hashed the address between two blanks (other endpoints than ``$remote_addr`` for some
    clients, and never the Router's inline address path)."""
    spec, warn = parse_balancer_spec({P + "upstream-hash-by": " $remote_addr\t"}, "round_robin",
                                     {"round_robin"}, "/")
    assert not warn and spec.hash_by == "$remote_addr"
    # A line break inside stays (normalizeString joins the trimmed lines with "\n").
    spec, _ = parse_balancer_spec({P + "upstream-hash-by": " $host \n $request_uri "},
                                  "round_robin", {"round_robin"}, "/")
    assert spec.hash_by == "$host\n$request_uri"

    def router(hash_by: str) -> Router:
        return Router(resources(
            ingress("web", [("a.test", "/", "Prefix", "web", 80)],
                    {P + "upstream-hash-by": hash_by}),
            service("web"), slice_("web-1", "web", [f"10.0.0.{i}" for i in range(1, 6)])),
            seed=1)

    spaced, plain = router("  $remote_addr "), router("$remote_addr")
    for i in range(200):
        ip = f"192.0.2.{i}"
        got, want = spaced.route("GET", "a.test", "/", (), ip), plain.route("GET", "a.test", "/",
                                                                              (), ip)
        assert got is not None and want is not None and got.endpoint == want.endpoint, ip


@pytest.mark.parametrize("key", ["", "\u00e9t\u00e9/\u65e5\u672c", "x" * 100_000, "\udcff"],
                         ids=["empty", "unicode", "huge", "escaped-byte"])
def test_consistent_hash_odd_keys_land_on_an_endpoint(key: str) -> None:
    for size in (0, 3):
        spec = BalancerSpec("chash", hash_by="$http_x_key", subset=bool(size),
                            subset_size=size or 3)
        ch = ConsistentHash(BalancerOptions(spec=spec, rng=random.Random(1)))
        backend = _eps(5)
        req = RequestContext(headers=[("x-key", key)])
        first = ch.pick(req, backend, ())
        assert first is not None and 0 <= first < 5
        if not size:
            assert ch.pick(req, backend, ()) == first  # deterministic


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
