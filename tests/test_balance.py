"""SEMANTICS §8: the Balancer protocol and the built-in balancers."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Collection
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from _budget import examples

from ingresslib._balance import (
    EMPTY_REQUEST,
    AffinityConfig,
    Balancer,
    BalancerOptions,
    BalancerSpec,
    ConsistentHash,
    CookieAffinity,
    Ewma,
    KeyTemplate,
    RequestContext,
    RoundRobin,
    cookie_value,
    header_value,
    make_balancer,
    parse_balancer_spec,
    register_balancer,
    registered_balancers,
    unregister_balancer,
)
from ingresslib._endpoints import EndpointSet
from ingresslib._hashing import HashRing, member_id

from _router_helpers import P

Address = tuple[str, int]


def eps(n: int, weights: list[int] | None = None) -> EndpointSet:
    addrs = tuple((f"10.0.0.{i + 1}", 8080) for i in range(n))
    w = tuple(weights) if weights else (1,) * n
    return EndpointSet("default", "web", 8080, addrs, w, None, len(set(w)) > 1)


def opts(**spec: object) -> BalancerOptions:
    kind = str(spec.pop("kind", "round_robin"))
    return BalancerOptions(rng=random.Random(7), spec=BalancerSpec(kind, **spec))  # type: ignore[arg-type]


# --- request context ----------------------------------------------------------------------------


def test_headers_normalised_from_every_input_form() -> None:
    forms: list[object] = [
        {"X-User": "bob", "Cookie": "a=1"},
        [(b"x-user", b"bob"), (b"cookie", b"a=1")],
        [("X-USER", "bob"), ("COOKIE", "a=1")],
        ((b"X-User", "bob"), ("cookie", b"a=1")),
    ]
    for headers in forms:
        ctx = RequestContext(headers=headers)  # type: ignore[arg-type]
        assert ctx.header("x-user") == "bob"
        assert ctx.header("X_User") == "bob"
        assert ctx.cookie("a") == "1"
        assert header_value(headers, "x-user", b"x-user") == "bob"  # type: ignore[arg-type]
    # A wanted "_" means "-" (nginx $http_x_user); a request name with "_" is not rewritten.
    assert RequestContext(headers={"X-User": "bob"}).header("x_user") == "bob"
    assert RequestContext(headers={"X_User": "bob"}).header("x-user") is None


def test_h11_headers_object() -> None:
    import h11

    req = h11.Request(method="GET", target="/", headers=[("Host", "a"), ("X-User", "bob"),
                                                         ("x-user", "eve")])
    # First occurrence, as nginx's $http_x_user; join= gives them all.
    assert header_value(req.headers, "x-user", b"x-user") == "bob"
    assert header_value(req.headers, "x-user", b"x-user", join=", ") == "bob, eve"
    assert header_value(req.headers, "x-none", b"x-none") is None
    assert header_value([(b"X-User", b"a"), ("x-user", "b")], "x-user", b"x-user") == "a"
    assert header_value({"X-USER": "a"}, "x-user", b"x-user", join="; ") == "a"
    assert RequestContext(headers=req.headers).header("X-User") == "bob, eve"


def test_repeated_headers_and_cookies() -> None:
    h = [(b"x-a", b"1"), (b"X-A", b"2"), (b"cookie", b"s=1; t=2"), (b"cookie", b"s=9; u=3")]
    ctx = RequestContext(headers=h)
    assert ctx.header("x-a") == "1, 2"
    # Cookie headers join with "; "; the first cookie of a name wins (nginx $cookie_*).
    assert ctx.cookies() == {"s": "1", "t": "2", "u": "3"}
    assert cookie_value(h, "s") == "1" and cookie_value(h, "u") == "3"
    assert cookie_value(h, "S") is None  # cookie names are case-sensitive
    assert cookie_value([], "s") is None


def test_folded_cookie_names_fold_ascii_letters_only() -> None:
    # nginx's $cookie_* compares names with ngx_strncasecmp, which folds A-Z only: a latin-1
    # "\xc9" (É) is not "\xe9" (é). Header bytes reach us decoded as latin-1.
    h = [(b"cookie", b"\xc9T=1; Canary=always")]
    assert cookie_value(h, "\xe9t", True) is None
    assert cookie_value(h, "\xc9t", True) == "1"
    assert cookie_value(h, "CANARY", True) == "always"


def test_args_and_request_uri() -> None:
    ctx = RequestContext(path="/p", query="A=1&b=%20x&a=3&flag")
    assert ctx.arg("a") == "1" and ctx.arg("B") == "%20x" and ctx.arg("flag") == ""
    assert ctx.arg("zzz") is None
    assert ctx.request_uri == "/p?A=1&b=%20x&a=3&flag"
    assert RequestContext(path="/p").request_uri == "/p"


# --- round-robin ------------------------------------------------------------------------------


def test_round_robin_is_a_strict_cycle() -> None:
    rr, e = RoundRobin(), eps(3)
    assert [rr.pick(EMPTY_REQUEST, e, ()) for _ in range(7)] == [0, 1, 2, 0, 1, 2, 0]


@given(st.integers(1, 12), st.integers(0, 50), st.integers(1, 60))
def test_round_robin_even_over_any_window(n: int, skip: int, window: int) -> None:
    rr, e = RoundRobin(), eps(n)
    for _ in range(skip):
        rr.pick(EMPTY_REQUEST, e, ())
    counts = Counter(rr.pick(EMPTY_REQUEST, e, ()) for _ in range(window))
    assert max(counts.values()) - min(counts.get(i, 0) for i in range(n)) <= 1
    if window % n == 0:
        assert set(counts.values()) == {window // n}


def test_round_robin_skips_tried() -> None:
    rr, e = RoundRobin(), eps(3)
    tried = {("10.0.0.1", 8080), ("10.0.0.2", 8080)}
    assert [rr.pick(EMPTY_REQUEST, e, tried) for _ in range(3)] == [2, 2, 2]
    assert rr.pick(EMPTY_REQUEST, e, set(e.endpoints)) is None
    assert rr.pick(EMPTY_REQUEST, eps(0), ()) is None


def test_smooth_weighted_round_robin_matches_nginx() -> None:
    # nginx's documented example: weights 5, 1, 1 -> a a b a c a a (ngx_http_upstream_round_robin.c)
    rr, e = RoundRobin(), eps(3, [5, 1, 1])
    assert "".join("abc"[rr.pick(EMPTY_REQUEST, e, ())] for _ in range(14)) == "aabacaa" * 2  # type: ignore[index]


@given(st.lists(st.integers(1, 6), min_size=1, max_size=6))
def test_smooth_weighted_exact_per_period(weights: list[int]) -> None:
    rr, e = RoundRobin(), eps(len(weights), weights)
    total = sum(weights)
    picks = [rr.pick(EMPTY_REQUEST, e, ()) for _ in range(total * 3)]
    for k in range(3):
        counts = Counter(picks[k * total:(k + 1) * total])
        assert [counts.get(i, 0) for i in range(len(weights))] == weights


def test_smooth_weighted_skips_tried() -> None:
    rr, e = RoundRobin(), eps(3, [5, 1, 1])
    assert {rr.pick(EMPTY_REQUEST, e, {("10.0.0.1", 8080)}) for _ in range(10)} == {1, 2}


# --- EWMA ----------------------------------------------------------------------------------------


def test_ewma_prefers_the_fast_endpoint() -> None:
    now = [0.0]
    b = Ewma(BalancerOptions(rng=random.Random(1), clock=lambda: now[0]))
    e = eps(2)
    for _ in range(20):
        now[0] += 0.5
        b.observe(e.endpoints[0], 0.5, True)
        b.observe(e.endpoints[1], 0.01, True)
    picks = Counter(b.pick(EMPTY_REQUEST, e, ()) for _ in range(100))
    # Two endpoints: power of two choices always compares both, so the fast one always wins.
    assert picks == Counter({1: 100})
    # A failing endpoint looks slower even if it answers fast.
    for _ in range(20):
        now[0] += 0.5
        b.observe(e.endpoints[0], 0.5, True)
        b.observe(e.endpoints[1], 0.01, False)
    assert b.pick(EMPTY_REQUEST, e, ()) == 0


def test_ewma_decays_while_idle() -> None:
    now = [0.0]
    b = Ewma(BalancerOptions(rng=random.Random(1), clock=lambda: now[0]))
    e = eps(2)
    b.observe(e.endpoints[0], 1.0, True)
    b.observe(e.endpoints[1], 0.1, True)
    now[0] = 0.01
    assert b.pick(EMPTY_REQUEST, e, ()) == 1
    # 60 s idle: endpoint 0's decayed score falls below endpoint 1's fresher sample.
    now[0] = 60.0
    b.observe(e.endpoints[1], 0.1, True)
    assert b.pick(EMPTY_REQUEST, e, ()) == 0


def test_ewma_unknown_endpoints_first_and_tried() -> None:
    b = Ewma(BalancerOptions(rng=random.Random(3)))
    e = eps(3)
    b.observe(e.endpoints[0], 0.2, True)
    b.observe(e.endpoints[1], 0.2, True)
    # The unknown endpoint scores 0: it wins every pair it is drawn into (2 pairs of 3).
    picks = Counter(b.pick(EMPTY_REQUEST, e, ()) for _ in range(300))
    assert picks[2] > 150
    assert b.pick(EMPTY_REQUEST, e, {e.endpoints[0], e.endpoints[2]}) == 1
    assert b.pick(EMPTY_REQUEST, e, set(e.endpoints)) is None


def test_ewma_slow_start_for_endpoints_added_later() -> None:
    # ingress-nginx ewma.lua sync: "slow_start_ewma is something we use to avoid sending too
    # many requests to the newly introduced endpoints. We currently use average ewma values of
    # existing endpoints." - and the stats of removed endpoints are deleted.
    now = [0.0]
    b = Ewma(BalancerOptions(rng=random.Random(3), clock=lambda: now[0]))
    e2 = eps(2)
    assert b.pick(EMPTY_REQUEST, e2, ()) is not None
    b.observe(e2.endpoints[0], 0.2, True)
    b.observe(e2.endpoints[1], 0.4, True)
    e3 = eps(3)  # the same two and a new one
    picks = Counter(b.pick(EMPTY_REQUEST, e3, ()) for _ in range(300))
    # The newcomer starts at the average (0.3): it wins only the pair it makes with the 0.4
    # endpoint (a third of the draws), not every pair it is in (two thirds, at score 0).
    assert 60 < picks[2] < 140 and picks[0] > picks[2] > picks[1]
    # Scaled down to one endpoint and back up: the one that came back starts at the average
    # again (0.2, a tie with endpoint 0), not at its stale 0.4.
    assert b.pick(EMPTY_REQUEST, eps(1), ()) == 0
    picks = Counter(b.pick(EMPTY_REQUEST, eps(2), ()) for _ in range(100))
    assert picks[0] > 20 and picks[1] > 20


def test_ewma_a_retry_holding_the_old_set_does_not_undo_the_sync() -> None:
    # A request picked from the old set, an update arrives, a new request syncs to the new set,
    # and then the first request's retry picks from the old set it still holds. That stale set
    # must not sync "back": it would delete the newcomer's statistics, and the next pick from
    # the new set would restart it at the average, forgetting what it measured.
    now = [0.0]
    b = Ewma(BalancerOptions(rng=random.Random(3), clock=lambda: now[0]))
    e2 = eps(2)
    b.pick(EMPTY_REQUEST, e2, ())
    b.observe(e2.endpoints[0], 0.2, True)
    b.observe(e2.endpoints[1], 0.2, True)
    e3 = eps(3)
    b.pick(EMPTY_REQUEST, e3, ())
    for _ in range(20):  # the newcomer turns out slow
        b.observe(e3.endpoints[2], 5.0, True)
    assert b.pick(EMPTY_REQUEST, e2, {e2.endpoints[0]}) == 1  # the old request's retry
    # Back on the current set: the newcomer keeps its measured slowness and loses every pair.
    picks = Counter(b.pick(EMPTY_REQUEST, e3, ()) for _ in range(200))
    assert picks[2] == 0


# --- consistent hashing --------------------------------------------------------------------------


def test_hash_ring_shape() -> None:
    ring = HashRing(["a", "b"])
    assert len(ring.points) == 2 * 160 + 1 and ring.points == sorted(ring.points)
    assert ring.points[-1] == 2**32 and ring.owners[-1] == ring.owners[0]
    assert HashRing([]).lookup(5) == -1
    assert ring.lookup_skipping(0, {0, 1}) == -1


# The ring depends on n and (odd n only) the weights: 40 sizes, up to ~40,000 probes each. CI's
# 300 examples drew each size ~7 times; 150 still draw every size several times, and each
# example probes all of its table's edges (every point, its neighbours, both ends).
@settings(max_examples=examples(0.5))
@given(st.integers(1, 40), st.lists(st.integers(1, 3), min_size=40, max_size=40),
       st.lists(st.integers(0, 2**32 - 1), max_size=50))
def test_hash_ring_bucket_table_agrees_with_bisect(n: int, weights: list[int],
                                                   extra: list[int]) -> None:
    """``lookup``'s one-byte table answers exactly as bisecting the points would, including
    at, just before and just after every point and at both ends of the circle."""
    from bisect import bisect_left

    ring = HashRing([member_id(f"10.0.{i // 250}.{i % 250}", 80) for i in range(n)],
                    weights[:n] if n % 2 else None)
    assert ring.table == b""  # built on demand
    assert ring.build_table() is ring.table and len(ring.table) == 1 << (32 - ring.shift)
    pts = ring.points[:-1]
    probes = [0, 2**32 - 1, *extra, *pts, *(p + 1 for p in pts), *(p - 1 for p in pts if p)]
    probes += range(0, 2**32, 2**32 // 2000)
    for h in probes:
        assert ring.lookup(h) == ring.owners[bisect_left(ring.points, h)], h


def test_hash_ring_points_as_sorted_pairs() -> None:
    """The packed-int sort orders points exactly as sorting (point, member index) pairs."""
    import hashlib
    import struct

    for members, weights in ((["a", "b", "c"], None), ([str(i) for i in range(300)], None),
                             (["x", "y"], [3, 1])):
        pairs = []
        for idx, name in enumerate(members):
            count = 160 * (weights[idx] if weights else 1)
            data = hashlib.shake_128(name.encode()).digest(4 * count)
            pairs += [(p, idx) for p in struct.unpack(f"<{count}I", data)]
        pairs.sort()
        ring = HashRing(members, weights)
        assert ring.points[:-1] == [p for p, _ in pairs]
        assert ring.owners[:-1] == [o for _, o in pairs]


def test_hash_ring_without_table_for_many_members() -> None:
    ring = HashRing([str(i) for i in range(300)])
    assert ring.build_table() == b"" and 0 <= ring.lookup(12345) < 300


@given(st.integers(1, 12))
def test_consistent_hash_movement_when_one_endpoint_is_added(n: int) -> None:
    old = [member_id(f"10.0.0.{i}", 80) for i in range(n)]
    new = old + [member_id("10.9.9.9", 80)]
    r_old, r_new = HashRing(old), HashRing(new)
    keys = range(0, 2**32, 2**32 // 3000)
    moved = 0
    for k in keys:
        a, b = r_old.lookup(k), r_new.lookup(k)
        if a != b:
            moved += 1
            assert b == n  # a key only ever moves to the new endpoint
    assert moved / len(keys) <= 1 / (n + 1) + 0.1


def test_consistent_hash_same_key_same_endpoint() -> None:
    b = ConsistentHash(opts(kind="chash", hash_by="$http_x_user"))
    e = eps(5)
    got = {b.pick(RequestContext(headers={"X-User": "alice"}), e, ()) for _ in range(10)}
    assert len(got) == 1
    spread = Counter(b.pick(RequestContext(headers={"X-User": f"u{i}"}), e, ())
                     for i in range(2000))
    assert len(spread) == 5 and min(spread.values()) > 2000 / 5 * 0.5
    assert b.pick_key("alice", e) == got.pop()


def test_consistent_hash_retry_walks_the_ring() -> None:
    b = ConsistentHash(opts(kind="chash", hash_by="$remote_addr"))
    e = eps(4)
    tried: set[Address] = set()
    for _ in range(4):
        i = b.pick(RequestContext(client_ip="1.2.3.4"), e, tried)
        assert i is not None and e.endpoints[i] not in tried
        tried.add(e.endpoints[i])
    assert b.pick(RequestContext(client_ip="1.2.3.4"), e, tried) is None
    # A retry context (no request) continues from the tried endpoint.
    first = b.pick(RequestContext(client_ip="1.2.3.4"), e, ())
    assert first is not None
    nxt = b.pick(RequestContext(retry=True), e, {e.endpoints[first]})
    assert nxt is not None and nxt != first


def test_consistent_hash_subsets() -> None:
    b = ConsistentHash(opts(kind="chash", hash_by="$arg_id", subset=True, subset_size=2))
    e = eps(6)
    ctx = RequestContext(query="id=42")
    got = {b.pick(ctx, e, ()) for _ in range(50)}
    assert len(got) == 2  # random inside one subset of 2
    assert {b.pick(ctx, e, {e.endpoints[i] for i in got}) for _ in range(5)} - got
    assert b.pick(ctx, e, set(e.endpoints)) is None


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("$request_uri", "/p?x=1"),
        ("$uri", "/p"),
        ("$remote_addr", "192.0.2.1"),
        ("$host", "h.test"),
        ("$request_method", "POST"),
        ("$args", "x=1"),
        ("$http_x_user", "bob"),
        ("$cookie_sid", "s1"),
        ("$arg_x", "1"),
        ("literal", "literal"),
        ("${uri}-$arg_x-$http_x_user", "/p-1-bob"),
        ("$http_missing", ""),
    ],
)
def test_key_template(template: str, expected: str) -> None:
    ctx = RequestContext("POST", "h.test", "/p", [(b"x-user", b"bob"), (b"cookie", b"sid=s1")],
                         "192.0.2.1", "x=1")
    t = KeyTemplate(template)
    assert t.errors == []
    assert t.render(ctx) == expected


def test_key_template_variable_names_are_case_insensitive() -> None:
    # nginx lower-cases variable names (ngx_http_get_variable_index: "ngx_strlow(v->name.data,
    # name->data, name->len)"; ingress-nginx reads them as ``ngx.var[var_name]``), and
    # $cookie_* matches the cookie name case-insensitively (ngx_strncasecmp).
    ctx = RequestContext("POST", "h.test", "/p", [(b"x-user", b"bob"), (b"cookie", b"sid=s1")],
                         "192.0.2.1", "x=1")
    t = KeyTemplate("$Remote_Addr-${URI}-$HTTP_X_User-$Cookie_SID-$ARG_X")
    assert t.errors == []
    assert t.render(ctx) == "192.0.2.1-/p-bob-s1-1"


@pytest.mark.parametrize(("host", "expected"), [
    ("h.test", "h.test"), ("H.Test:8080", "h.test"), ("h.test.", "h.test"),
    ("[FD00::1]:443", "[fd00::1]"), ("", ""),
])
def test_key_template_host_is_nginx_host(host: str, expected: str) -> None:
    # nginx $host: "host name from the request line, or host name from the Host request header
    # field" - lower-cased, without the port (ngx_http_validate_host also drops a trailing dot).
    assert KeyTemplate("$host").render(RequestContext(host=host)) == expected


def test_key_template_repeated_header_joined_as_nginx() -> None:
    # nginx >= 1.23 ngx_http_variable_unknown_header joins every line with ", ".
    ctx = RequestContext(headers=[(b"x-user", b"bob"), (b"X-User", b"eve")])
    assert KeyTemplate("$http_x_user").render(ctx) == "bob, eve"


def test_key_template_escapes_and_numbered_variables_as_ingress_nginx() -> None:
    # util.lua parse_complex_value: "(\\\$[0-9a-zA-Z_]+) | \$\{([0-9a-zA-Z_]+)\} |
    # \$([0-9a-zA-Z_]+) | (\$|[^$\\]+)" - an escaped "\$name" stays as written (backslash
    # included); "$1" is a variable (a regex capture: empty here); a lone "$" is text.
    t = KeyTemplate("\\$uri-$uri-$-$1")
    assert t.render(RequestContext(path="/a")) == "\\$uri-/a-$-"
    assert t.errors and "$1" in t.errors[0]


def test_key_template_unknown_variable_reported() -> None:
    t = KeyTemplate("$nope-$uri")
    assert t.errors and "$nope" in t.errors[0]
    assert t.render(RequestContext(path="/a")) == "-/a"


# --- cookie affinity -----------------------------------------------------------------------------


def sticky(mode: str, **kw: object) -> CookieAffinity:
    cfg = AffinityConfig(mode=mode, **kw)  # type: ignore[arg-type]
    return CookieAffinity(BalancerOptions(rng=random.Random(5),
                                          spec=BalancerSpec("sticky", affinity=cfg)))


@pytest.mark.parametrize("mode", ["balanced", "persistent"])
def test_cookie_affinity_sticks(mode: str) -> None:
    b, e = sticky(mode), eps(4)
    i, cookie = b.pick_with_cookie(RequestContext(), e, ())
    assert i is not None and cookie is not None
    assert cookie.startswith("INGRESSCOOKIE=") and cookie.endswith("; Path=/; HttpOnly")
    value = cookie.split(";")[0].split("=", 1)[1]
    again = RequestContext(headers={"cookie": f"INGRESSCOOKIE={value}"})
    for _ in range(5):
        assert b.pick_with_cookie(again, e, ()) == (i, None)
    assert b.affinitized(again, e)
    # The endpoint was tried (failed): go elsewhere, with a new cookie.
    j, cookie2 = b.pick_with_cookie(again, e, {e.endpoints[i]})
    assert j is not None and j != i and cookie2 is not None


def test_persistent_cookie_replaced_when_endpoint_gone() -> None:
    b, e = sticky("persistent"), eps(3)
    gone = RequestContext(headers={"cookie": f"INGRESSCOOKIE={member_id('10.9.9.9', 1)}"})
    i, cookie = b.pick_with_cookie(gone, e, ())
    assert i is not None and cookie is not None
    assert not b.affinitized(gone, e)


def test_balanced_new_sessions_spread() -> None:
    b, e = sticky("balanced"), eps(4)
    spread = Counter(b.pick_with_cookie(RequestContext(), e, ())[0] for _ in range(400))
    assert len(spread) == 4 and min(spread.values()) > 40


def test_set_cookie_attributes() -> None:
    b = sticky("balanced", name="route", path="/app", max_age=60, expires=3600,
               samesite="None", secure=False, domain="example.test")
    c = b.set_cookie("abc")
    parts = c.split("; ")
    assert parts[0] == "route=abc" and "Path=/app" in parts and "Max-Age=60" in parts
    assert "Domain=example.test" in parts and "SameSite=None" in parts
    assert "Secure" in parts  # SameSite=None requires Secure
    assert any(p.startswith("Expires=") and p.endswith("GMT") for p in parts)
    assert parts[-1] == "HttpOnly"


def test_canary_tag_keeps_sides_apart() -> None:
    main = CookieAffinity(BalancerOptions(rng=random.Random(1)), tag="")
    can = CookieAffinity(BalancerOptions(rng=random.Random(1)), tag=".c")
    e = eps(2)
    _, cookie = can.pick_with_cookie(RequestContext(), e, ())
    assert cookie is not None
    ctx = RequestContext(headers={"cookie": cookie.split(";")[0]})
    assert can.affinitized(ctx, e) and not main.affinitized(ctx, e)


# --- annotations -> spec ---------------------------------------------------------------------------

KNOWN = frozenset({"round_robin", "ewma"})


@pytest.mark.parametrize(
    ("ann", "kind"),
    [
        ({}, "round_robin"),
        ({P + "load-balance": "ewma"}, "ewma"),
        ({P + "load-balance": "ewma", P + "upstream-hash-by": "$uri"}, "chash"),
        ({P + "upstream-hash-by": "$uri", P + "affinity": "cookie"}, "sticky"),  # affinity first
    ],
)
def test_spec_precedence(ann: dict[str, str], kind: str) -> None:
    spec, warnings = parse_balancer_spec(ann, "round_robin", KNOWN, "/")
    assert spec.kind == kind and warnings == []


@pytest.mark.parametrize(
    ("ann", "bad_key", "kind"),
    [
        ({P + "load-balance": "fastest"}, "load-balance", "round_robin"),
        ({P + "affinity": "ip"}, "affinity", "round_robin"),
        ({P + "upstream-hash-by": " "}, "upstream-hash-by", "round_robin"),
        ({P + "upstream-hash-by": "$uri", P + "upstream-hash-by-subset-size": "x"},
         "upstream-hash-by-subset-size", "chash"),
        ({P + "affinity": "cookie", P + "affinity-mode": "sticky"}, "affinity-mode", "sticky"),
        ({P + "affinity": "cookie", P + "session-cookie-samesite": "lots"},
         "session-cookie-samesite", "sticky"),
        ({P + "affinity": "cookie", P + "session-cookie-max-age": "-5"},
         "session-cookie-max-age", "sticky"),
        ({P + "affinity": "cookie", P + "session-cookie-name": "a b"},
         "session-cookie-name", "sticky"),
        ({P + "affinity": "cookie", P + "session-cookie-secure": "maybe"},
         "session-cookie-secure", "sticky"),
    ],
)
def test_spec_invalid_values_warn_and_fall_back(ann: dict[str, str], bad_key: str,
                                                kind: str) -> None:
    spec, warnings = parse_balancer_spec(ann, "round_robin", KNOWN, "/")
    assert spec.kind == kind
    assert [k for k, _ in warnings] == [P + bad_key]


@pytest.mark.parametrize(
    ("raw", "value", "warned"),
    [("true", True, False), ("True", True, False), ("TRUE", True, False), ("t", True, False),
     ("T", True, False), ("1", True, False), ("false", False, False), ("F", False, False),
     ("0", False, False), ("yes", False, True), ("on", False, True), ("tRUE", False, True)],
)
def test_boolean_annotations_read_as_go_parse_bool(raw: str, value: bool, warned: bool) -> None:
    # ingress-nginx parser.GetBoolAnnotation -> strconv.ParseBool: "It accepts 1, t, T, TRUE,
    # true, True, 0, f, F, FALSE, false, False. Any other value returns an error."
    ann = {P + "upstream-hash-by": "$uri", P + "upstream-hash-by-subset": raw}
    spec, warnings = parse_balancer_spec(ann, "round_robin", KNOWN, "/")
    assert spec.subset is value
    assert bool(warnings) is warned


def test_affinity_defaults_and_values() -> None:
    spec, _ = parse_balancer_spec({P + "affinity": "cookie"}, "round_robin", KNOWN, "/shop")
    assert spec.affinity == AffinityConfig(path="/shop")  # cookie path = rule path by default
    spec, w = parse_balancer_spec({
        P + "affinity": "cookie", P + "affinity-mode": "persistent",
        P + "session-cookie-name": "S", P + "session-cookie-path": "/x",
        P + "session-cookie-max-age": "10", P + "session-cookie-expires": "20",
        P + "session-cookie-samesite": "lax", P + "session-cookie-secure": "true"},
        "round_robin", KNOWN, "/shop")
    assert w == []
    assert spec.affinity == AffinityConfig("S", "/x", 10, 20, "Lax", True, "persistent")


@pytest.mark.parametrize(("key", "value"), [
    ("session-cookie-path", "/a; Domain=other.test"), ("session-cookie-path", "/a\x7fb"),
    ("session-cookie-domain", "a.test; Secure"), ("session-cookie-domain", "a.test\tb"),
    ("session-cookie-domain", "a test"), ("session-cookie-domain", ""),
])
def test_cookie_attributes_that_would_break_the_set_cookie_are_refused(key: str,
                                                                        value: str) -> None:
    # RFC 6265 4.1.1: path-value and domain values may not hold ";" or CTLs; a ";" would add
    # an attribute of the Ingress author's choosing to every session cookie.
    spec, w = parse_balancer_spec({P + "affinity": "cookie", P + key: value},
                                  "round_robin", KNOWN, "/shop")
    assert [k for k, _ in w] == [P + key]
    assert spec.affinity is not None
    assert spec.affinity.path == "/shop" and spec.affinity.domain is None


def test_a_rule_path_with_a_semicolon_is_not_the_cookie_path() -> None:
    spec, w = parse_balancer_spec({P + "affinity": "cookie"}, "round_robin", KNOWN, "/a;b")
    assert w == [] and spec.affinity is not None and spec.affinity.path == "/"


# --- the protocol and the registry -----------------------------------------------------------------


class FirstUntried:
    uses_request = False

    def __init__(self) -> None:
        self.observed: list[tuple[Address, float, bool]] = []

    def pick(self, request: RequestContext, backend: EndpointSet,
             tried: Collection[Address]) -> int | None:
        for i, ep in enumerate(backend.endpoints):
            if ep not in tried:
                return i
        return None

    def observe(self, endpoint: Address, seconds: float, ok: bool) -> None:
        self.observed.append((endpoint, seconds, ok))


def test_register_custom_balancer() -> None:
    register_balancer("first-untried", lambda options: FirstUntried())
    try:
        assert "first-untried" in registered_balancers()
        b = make_balancer(BalancerSpec("first-untried"), BalancerOptions(), registered_balancers())
        assert isinstance(b, FirstUntried) and isinstance(b, Balancer)
    finally:
        unregister_balancer("first-untried")
    assert "first-untried" not in registered_balancers()
    with pytest.raises(ValueError):
        register_balancer("", lambda options: FirstUntried())
    with pytest.raises(TypeError):
        register_balancer("x", "not callable")  # type: ignore[arg-type]


def test_builtins_survive_unregister() -> None:
    register_balancer("ewma", lambda options: FirstUntried())
    unregister_balancer("ewma")
    assert registered_balancers()["ewma"] is Ewma


ALL = ["rr", "wrr", "ewma", "chash", "subset", "balanced", "persistent"]


def build(kind: str, n: int) -> tuple[Balancer, EndpointSet]:
    if kind == "rr":
        return RoundRobin(), eps(n)
    if kind == "wrr":
        return RoundRobin(), eps(n, [1 + i % 3 for i in range(n)])
    if kind == "ewma":
        return Ewma(BalancerOptions(rng=random.Random(n))), eps(n)
    if kind == "chash":
        return ConsistentHash(opts(kind="chash", hash_by="$remote_addr")), eps(n)
    if kind == "subset":
        return ConsistentHash(opts(kind="chash", hash_by="$remote_addr", subset=True,
                                   subset_size=2)), eps(n)
    return sticky(kind), eps(n)


@given(st.sampled_from(ALL), st.integers(1, 8), st.booleans(), st.integers(0, 2**32))
def test_retries_never_repeat_while_untried_exists(kind: str, n: int, retry_ctx: bool,
                                                   ip: int) -> None:
    b, e = build(kind, n)
    ctx = RequestContext(client_ip=str(ip), retry=retry_ctx)
    tried: set[Address] = set()
    for _ in range(n):
        i = b.pick(ctx, e, tried)
        assert i is not None, "an untried endpoint exists"
        assert e.endpoints[i] not in tried
        tried.add(e.endpoints[i])
    assert b.pick(ctx, e, tried) is None


def test_consistent_hash_subset_rebuild_is_never_seen_half_done() -> None:
    # A pick on the old endpoint set that runs while another thread rebuilds the subsets for a
    # new one must see the old subsets or the new ones, never the new ring over the old subset
    # list (an IndexError, or an index past the old endpoints). The interleaving is made
    # deterministic with a line tracer: at every line of the rebuild, a pick on the old set runs.
    import sys
    import threading

    from ingresslib import _balance

    b = ConsistentHash(opts(kind="chash", hash_by="$arg_id", subset=True, subset_size=2))
    old, new = eps(2), eps(12)
    assert b.pick(RequestContext(query="id=1"), old, ()) is not None  # subsets cut for ``old``
    # Re-entrant, so the nested pick (in this same thread) may itself rebuild instead of
    # waiting for a lock its own thread holds.
    b._lock = threading.RLock()  # type: ignore[misc]
    seen: list[int | None] = []
    code = _balance.ConsistentHash._pick_subset.__code__
    depth = [0]

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code is not code:
            return None
        def line(frame: Any, event: str, arg: Any) -> Any:
            if event == "line" and depth[0] == 0:
                depth[0] += 1
                try:
                    for i in range(20):
                        seen.append(b.pick(RequestContext(query=f"id={i}"), old, ()))
                finally:
                    depth[0] -= 1
            return line
        return line

    sys.settrace(tracer)
    try:
        b.pick(RequestContext(query="id=1"), new, ())
    finally:
        sys.settrace(None)
    assert seen and all(i is not None and 0 <= i < 2 for i in seen)
