"""Session 17 review of the balancers and canary against ingress-nginx's Lua (balancer.lua,
balancer/sticky.lua, balancer/ewma.lua). Each test failed on the code before its fix."""

from __future__ import annotations

import importlib
import random
import zlib
from array import array
from typing import Any

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingresslib import _pick_py
from ingresslib._balance import BalancerOptions, BalancerSpec, ConsistentHash, Ewma, RequestContext
from ingresslib._canary import compile_explicit, explicit_choice, parse_canary
from ingresslib._endpoints import EndpointSet
from ingresslib._hashing import HashRing
from ingresslib._router import Router

# The Router tests run once per counter implementation (compiled _pick, pure _pick_py).
from _counters import counters  # noqa: F401
from _router_helpers import P, canary, ingress, resources, simple_backend

PERSISTENT = {P + "affinity": "cookie", P + "affinity-mode": "persistent",
              P + "session-cookie-name": "sid"}


def _sticky_canary(weight: str, main_ips: list[str], canary_ips: list[str]) -> Any:
    return resources(
        ingress("web", [("a.test", "/", "Prefix", "web", 80)], PERSISTENT),
        canary("web-c", "a.test", "/", "web-canary", 80, {P + "canary-weight": weight}),
        *simple_backend("web", main_ips), *simple_backend("web-canary", canary_ips))


def _session(router: Router, canary_side: bool) -> str:
    """The ``sid=...`` of a new session on the asked side (seeded router: deterministic)."""
    for _ in range(1000):
        d = router.route("GET", "a.test", "/")
        if d is not None and d.canary == canary_side and d.set_cookie is not None:
            return d.set_cookie.split(";")[0]
    raise AssertionError("no session started on that side")


def test_persistent_canary_session_stays_on_the_canary_when_its_pod_is_replaced() -> None:
    # ingress-nginx sticky.lua: "function _M.is_affinitized(self) return
    # self:get_cookie_parsed().backend_key == self.backend_key end", checked by balancer.lua's
    # route_to_alternative_balancer before the weight ("If request is affinitized to an
    # alternative balancer, instruct caller to switch to alternative."). The side follows the
    # backend key after "|", not the endpoint: a canary user whose canary pod was replaced
    # stays on the canary and gets a new endpoint there. Before: the request was split by
    # weight again (10 of 1,000 requests would stay on a 1 % canary).
    router = Router(_sticky_canary("1", ["10.0.0.1", "10.0.0.2"], ["10.1.0.1"]), seed=3)
    cookie = _session(router, canary_side=True)
    router.update(_sticky_canary("1", ["10.0.0.1", "10.0.0.2"], ["10.1.0.2"]))
    first = router.route("GET", "a.test", "/", {"Cookie": cookie})
    assert first is not None and first.canary and first.endpoint == ("10.1.0.2", 8080)
    # ... with a new session cookie naming the new canary pod, which then sticks.
    assert first.set_cookie is not None
    new_cookie = first.set_cookie.split(";")[0]
    assert new_cookie != cookie
    for _ in range(200):
        d = router.route("GET", "a.test", "/", {"Cookie": cookie})
        assert d is not None and d.canary
        d = router.route("GET", "a.test", "/", {"Cookie": new_cookie})
        assert d is not None and d.canary and d.set_cookie is None


def test_persistent_main_session_stays_on_the_main_side_when_its_pod_is_replaced() -> None:
    # The same rule for the primary balancer ("If request is already affinitized to a primary
    # balancer, keep the primary balancer."): with a 99 % canary, a main-side session whose
    # pod left moved to the canary 99 times in 100 before.
    router = Router(_sticky_canary("99", ["10.0.0.1"], ["10.1.0.1"]), seed=5)
    cookie = _session(router, canary_side=False)
    router.update(_sticky_canary("99", ["10.0.0.7"], ["10.1.0.1"]))
    sides = [router.route("GET", "a.test", "/", {"Cookie": cookie}) for _ in range(300)]
    assert all(d is not None and not d.canary and d.endpoint == ("10.0.0.7", 8080)
               for d in sides)


def test_a_cookie_of_another_backend_still_goes_by_weight() -> None:
    # The backend key must be this backend's: a cookie of another upstream (or a forged one)
    # pins nothing, the weight decides (exactly 25 of 100 with the smooth split).
    router = Router(_sticky_canary("25", ["10.0.0.1"], ["10.1.0.1"]), seed=1)
    forged = "sid=0123456789abcdef0123456789abcdef|" + "f" * 32
    picks = [router.route("GET", "a.test", "/", {"Cookie": forged}) for _ in range(100)]
    assert sum(1 for d in picks if d is not None and d.canary) == 25


def _eps(*last_octets: int) -> EndpointSet:
    return EndpointSet("ns", "s", 80, tuple((f"10.0.0.{o}", 80) for o in last_octets),
                       (1,) * len(last_octets))


def test_ewma_ignores_the_late_answer_of_a_removed_endpoint() -> None:
    # ewma.lua sync deletes the statistics of endpoints that left. A request picked before
    # the update answers after it: its sample used to be recorded again, kept for good (one
    # entry per departed pod) and, when the pod came back with nothing to average over, it
    # kept that stale failure: 0 of 1,000 picks went to it instead of about half.
    now = [100.0]
    ewma = Ewma(BalancerOptions(rng=random.Random(7), clock=lambda: now[0]))
    a, b, c = _eps(1, 2), _eps(1), _eps(2, 3)
    ewma.pick(None, a, ())  # type: ignore[arg-type]
    ewma.pick(None, b, ())  # type: ignore[arg-type]  # 10.0.0.2 left
    ewma.observe(("10.0.0.2", 80), 2.0, False)       # its late failure
    picks = [c.endpoints[ewma.pick(None, c, ())]  # type: ignore[arg-type,index]
             for _ in range(1000)]
    back = picks.count(("10.0.0.2", 80))
    assert 400 <= back <= 600, back  # seeded: the same count every run


# --- the pure twin against the compiled one, on the same random inputs ----------------------------

try:
    _pick_c: Any = importlib.import_module("ingresslib._pick")
except ImportError:  # pragma: no cover - tests/test_pick.py fails when it must be built
    _pick_c = None

needs_compiled = pytest.mark.skipif(_pick_c is None, reason="ingresslib._pick is not built")
H11 = type(h11.Request(method="GET", target="/", headers=[("Host", "a")]).headers)
# Header values as requests carry them: ASCII, latin-1 bytes, separators, empty.
# (h11 refuses control characters and surrounding blanks, as a server would.)
VALUES = (st.lists(st.sampled_from(list(b"abu1,;=-\x80\xe9\xff")), max_size=6).map(bytes)
          | st.sampled_from([b"always", b"never", b"u1", b"", b"a, b"]))
NAMES = st.sampled_from(["X-User", "x-user", "X-Canary", "X-Other", "Cookie"])
PATHS = st.text(alphabet="/.%ab~\u00e9\U0001f600", max_size=10).map(lambda s: "/" + s)


def _headers(pairs: list[tuple[str, bytes]]) -> Any:
    return h11.Request(method="GET", target="/", headers=[("Host", "a"), *pairs]).headers


@needs_compiled
@settings(max_examples=150, deadline=None)
@given(members=st.integers(1, 6), kind=st.sampled_from([1, 2, 3]),
       requests=st.lists(st.tuples(PATHS, st.lists(st.tuples(NAMES, VALUES), max_size=3),
                                   st.none() | st.text(alphabet="0123456789.:af", max_size=12)),
                         min_size=1, max_size=20))
def test_hash_pick_twins_agree(members: int, kind: int,
                               requests: list[tuple[str, list[tuple[str, bytes]], str | None]]
                               ) -> None:
    ring = HashRing([f"m{i}" for i in range(members)])
    table = ring.build_table()
    decisions = tuple(f"d{i}" for i in range(members))
    packed = array(_pick_py.U32, ring.points[:-1]).tobytes(), bytes(ring.owners[:-1])
    hname = b"x-user" if kind == 3 else None
    twins = [mod.HashPick("b", kind, hname, table, ring.shift, decisions, H11, *packed)
             for mod in (_pick_py, _pick_c)]
    for path, pairs, ip in requests:
        hd = _headers(pairs)
        py, c = (t.pick(path, hd, ip) for t in twins)
        assert py == c, (path, pairs, ip)
        if py is not None and kind == 2:  # and both are the ring's own answer
            assert py == decisions[ring.lookup(zlib.crc32((ip or "").encode()))]


@needs_compiled
@settings(max_examples=150, deadline=None)
@given(rule=st.sampled_from([(b"x-canary", b"always", b"never"), (b"x-canary", b"u1", None),
                             (None, None, None)]),
       weight=st.integers(0, 7), total=st.integers(1, 7),
       requests=st.lists(st.lists(st.tuples(NAMES, VALUES), max_size=3), max_size=30))
def test_canary_pick_twins_agree(rule: tuple[bytes | None, bytes | None, bytes | None],
                                 weight: int, total: int, requests: list[list[tuple[str, bytes]]]
                                 ) -> None:
    weight = min(weight, total)
    twins = [mod.CanaryPick("route", *rule, H11, mod.Interleave(weight, total),
                            mod.Rotation(("c1", "c2")), mod.Rotation(("m1", "m2", "m3")))
             for mod in (_pick_py, _pick_c)]
    for pairs in requests:
        hd = _headers(pairs)
        assert twins[0].pick(hd) == twins[1].pick(hd), pairs
        items = [("X-Canary", "always")]
        assert twins[0].pick(items) == twins[1].pick(items)  # not h11: both hand over or pick


# --- subset hashing: a retry stays in the key's subset ------------------------------------------


def test_subset_retry_stays_in_the_subset_of_the_key() -> None:
    # chashsubset.lua's balance() runs for every try and hashes the same key to the same
    # subset ("local subset_id = self.instance:find(key); local endpoints =
    # self.subsets[subset_id]; local endpoint = endpoints[math.random(#endpoints)]"). A
    # retry here (no request to hash) used to start from the tried endpoint's hash on the
    # ring of subsets, i.e. some other subset: 203 of 300 retries left the key's subset
    # while two of its endpoints were untried.
    spec = BalancerSpec("chash", hash_by="$request_uri", subset=True, subset_size=3)
    ch = ConsistentHash(BalancerOptions(rng=random.Random(1), spec=spec))
    e = _eps(*range(1, 10))
    for k in range(300):
        ctx = RequestContext(path=f"/k{k}")
        subset = {ch.pick(ctx, e, ()) for _ in range(60)}  # the key's subset, as drawn
        assert len(subset) == 3
        first = ch.pick(ctx, e, ())
        assert first is not None
        tried = {e.endpoints[first]}
        again = ch.pick(RequestContext(retry=True), e, tried)
        assert again in subset and again != first
        tried.add(e.endpoints[again])  # type: ignore[index]
        third = ch.pick(RequestContext(retry=True), e, tried)
        assert third in subset and e.endpoints[third] not in tried  # type: ignore[index]
        # The subset used up: any untried endpoint, never a tried one.
        tried.add(e.endpoints[third])  # type: ignore[index]
        fourth = ch.pick(RequestContext(retry=True), e, tried)
        assert fourth is not None and e.endpoints[fourth] not in tried


def test_router_subset_retry_stays_in_the_subset_of_the_key() -> None:
    ing = ingress("web", [("a.test", "/", "Prefix", "web", 80)],
                  {P + "upstream-hash-by": "$uri", P + "upstream-hash-by-subset": "true",
                   P + "upstream-hash-by-subset-size": "3"})
    ips = [f"10.0.0.{i}" for i in range(1, 10)]
    router = Router(resources(ing, *simple_backend("web", ips)), seed=2)
    outside = 0
    for k in range(100):
        subset = {d.endpoint for d in (router.route("GET", "a.test", f"/k{k}")
                                       for _ in range(60)) if d is not None}
        assert len(subset) == 3
        d = router.route("GET", "a.test", f"/k{k}")
        assert d is not None and d.endpoint is not None
        nxt = router.next_endpoint(d, {d.endpoint})
        assert nxt is not None and nxt != d.endpoint
        outside += nxt not in subset
    assert outside == 0


# --- canary header rules on non-ASCII values ----------------------------------------------------


def _utf8_request(value: str) -> Any:
    return h11.Request(method="GET", target="/",
                       headers=[("Host", "a.test"), ("X-User", value.encode())]).headers


def _canary_router(rules: dict[str, str]) -> Router:
    return Router(resources(
        ingress("web", [("a.test", "/", "Prefix", "web", 80)]),
        canary("web-c", "a.test", "/", "web-canary", 80, {P + k: v for k, v in rules.items()}),
        *simple_backend("web", ["10.0.0.1"]), *simple_backend("web-canary", ["10.1.0.1"])),
        seed=1)


def test_non_ascii_header_pattern_matches_the_utf8_header() -> None:
    # balancer.lua: "local m, err = ngx.re.match(header, traffic_shaping_policy.headerPattern)"
    # - PCRE on bytes, the annotation's bytes being its UTF-8: "^José$" matches a request
    # whose X-User is the UTF-8 of "José". The proxy hands the value over one character per
    # byte ("JosÃ©"), which the pattern never matched.
    router = _canary_router({"canary-by-header": "X-User", "canary-by-header-pattern": "^José$"})
    d = router.route("GET", "a.test", "/", _utf8_request("José"))
    assert d is not None and d.canary
    d = router.route("GET", "a.test", "/", _utf8_request("Josó"))
    assert d is not None and not d.canary
    # A caller passing text keeps matching as before.
    d = router.route("GET", "a.test", "/", {"X-User": "José"})
    assert d is not None and d.canary


def test_non_ascii_header_value_matches_the_utf8_header() -> None:
    # "if traffic_shaping_policy.headerValue == header then return true": byte equality.
    # (With a canary-by-cookie rule too, the Router asks compile_explicit.)
    router = _canary_router({"canary-by-header": "X-User", "canary-by-header-value": "José",
                             "canary-by-cookie": "beta"})
    d = router.route("GET", "a.test", "/", _utf8_request("José"))
    assert d is not None and d.canary
    d = router.route("GET", "a.test", "/", _utf8_request("Jose"))
    assert d is not None and not d.canary
    cfg, warnings = parse_canary({P + "canary-by-header": "X-User",
                                  P + "canary-by-header-value": "José"})
    assert not warnings
    hd = _utf8_request("José")
    assert explicit_choice(cfg, hd) is True and compile_explicit(cfg)(hd) is True
    assert compile_explicit(cfg)(_utf8_request("José!")) is None


@settings(max_examples=200, deadline=None)
@given(value=st.sampled_from(["José", "é", "ü-1", "beta", "日本", "Ã©"]),
       cookie=st.booleans(), sent=st.lists(VALUES | st.sampled_from(
           ["José".encode(), "é".encode("latin-1"), "日本".encode(), "Ã©".encode()]),
           max_size=2))
def test_compiled_explicit_equals_reference_on_non_ascii(value: str, cookie: bool,
                                                         sent: list[bytes]) -> None:
    ann = {P + "canary-by-header": "X-User", P + "canary-by-header-value": value}
    if cookie:
        ann[P + "canary-by-cookie"] = "beta"
    cfg, _ = parse_canary(ann)
    hd = _headers([("X-User", v) for v in sent])
    assert compile_explicit(cfg)(hd) is explicit_choice(cfg, hd)
    if len(sent) == 1 and sent[0] == value.encode():  # the UTF-8 of the value: canary
        assert explicit_choice(cfg, hd) is True
