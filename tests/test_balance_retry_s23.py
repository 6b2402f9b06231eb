"""Session 23 (Z2): consistent-hash retries spread over the survivors; the SameSite annotation
read as GetStringAnnotation reads it."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from ingresslib._balance import (BalancerOptions, BalancerSpec, ConsistentHash, RequestContext,
                                 parse_balancer_spec)
from ingresslib._endpoints import EndpointSet
from ingresslib._hashing import hash_key
from ingresslib._router import Router

from _budget import examples
from _router_helpers import P, ingress, resources, simple_backend

Address = tuple[str, int]


def _eps(n: int, weights: tuple[int, ...] | None = None) -> EndpointSet:
    return EndpointSet("ns", "s", 80, tuple((f"10.0.0.{i}", 80) for i in range(1, n + 1)),
                       weights or (1,) * n, weighted=weights is not None)


def _chash(hash_by: str = "$request_uri") -> ConsistentHash:
    return ConsistentHash(BalancerOptions(spec=BalancerSpec("chash", hash_by=hash_by)))


# --- keyless retries (Router.next_endpoint's context) ---------------------------------------------


def test_keyless_retries_of_a_failed_endpoint_spread_over_the_survivors() -> None:
    # DEFECT. A retry context (no request to hash) started at the one point the failed
    # endpoint's id hashes to: every retry of its keys went to the same survivor (doubling
    # its load while the others got none). Now each retry starts inside one of the failed
    # endpoint's arcs, in turn: the survivors share the retries.
    ch = _chash()
    e = _eps(8)
    failed = e.endpoints[0]
    got = Counter(ch.pick(RequestContext(retry=True), e, {failed}) for _ in range(400))
    assert None not in got and 0 not in got
    assert len(got) >= 4
    assert max(got.values()) < 400 * 0.6


def test_keyless_retry_shares_follow_the_ring_without_the_failed_endpoint() -> None:
    # The keys of the failed endpoint, walked clockwise from their own points, are the
    # reference: a survivor taking a fair part of them gets a fair part of keyless retries.
    ch = _chash()
    e = _eps(6)
    ring = ch.ring(e)
    failed = 2
    keyed: Counter[int] = Counter()
    for k in range(20000):
        h = hash_key(f"/k{k}")
        if ring.lookup(h) == failed:
            keyed[ring.lookup_skipping(h, {failed})] += 1
    total = sum(keyed.values())
    keyless = Counter(ch.pick(RequestContext(retry=True), e, {e.endpoints[failed]})
                      for _ in range(1000))
    assert set(keyless) <= set(keyed)
    for member, count in keyed.items():
        if count / total > 0.1:
            assert abs(keyless[member] / 1000 - count / total) < 0.1, (member, keyless, keyed)


def test_router_retries_of_a_failed_endpoint_spread() -> None:
    # DEFECT (through the public API): Router.next_endpoint for the requests of one failing
    # endpoint sent every retry to one other endpoint.
    ing = ingress("web", [("a.test", "/", "Prefix", "web", 80)],
                  {P + "upstream-hash-by": "$request_uri"})
    router = Router(resources(ing, *simple_backend("web", [f"10.0.0.{i}" for i in range(1, 9)])))
    by_endpoint: dict[Address, list[Address]] = {}
    for k in range(800):
        d = router.route("GET", "a.test", f"/k{k}")
        assert d is not None and d.endpoint is not None
        nxt = router.next_endpoint(d, (d.endpoint,))
        assert nxt is not None and nxt != d.endpoint
        by_endpoint.setdefault(d.endpoint, []).append(nxt)
    for retried in by_endpoint.values():
        if len(retried) >= 40:
            assert len(set(retried)) >= 3, Counter(retried)


def test_keyless_retries_are_reproducible() -> None:
    e = _eps(7)
    runs = []
    for _ in range(2):
        ch = _chash()
        runs.append([ch.pick(RequestContext(retry=True), e, {e.endpoints[k % 7]})
                     for k in range(50)])
    assert runs[0] == runs[1]


def test_keyless_retry_never_returns_a_tried_endpoint() -> None:
    ch = _chash()
    e = _eps(5)
    tried: list[Address] = [e.endpoints[3]]
    while True:
        i = ch.pick(RequestContext(retry=True), e, tuple(tried))
        if i is None:
            break
        assert e.endpoints[i] not in tried
        tried.append(e.endpoints[i])
    assert sorted(tried) == sorted(e.endpoints)


def test_keyless_retry_of_an_endpoint_no_longer_in_the_set() -> None:
    # Routed before an update removed it: it has no arcs on this ring any more.
    ch = _chash()
    e = _eps(4)
    i = ch.pick(RequestContext(retry=True), e, {("10.9.9.9", 80)})
    assert i is not None and 0 <= i < 4


def test_keyless_retry_on_a_weighted_ring() -> None:
    ch = _chash()
    e = _eps(4, (1, 5, 1, 3))
    got = Counter(ch.pick(RequestContext(retry=True), e, {e.endpoints[1]}) for _ in range(300))
    assert None not in got and 1 not in got and len(got) >= 2


@settings(max_examples=examples(0.2), deadline=None)
@given(n=st.integers(1, 9), tried=st.lists(st.integers(0, 8), min_size=1, max_size=9),
       rounds=st.integers(1, 5))
def test_keyless_retry_keeps_the_retry_rule(n: int, tried: list[int], rounds: int) -> None:
    # SEMANTICS §8: never an endpoint already tried while another is untried.
    ch = _chash()
    e = _eps(n)
    done = {e.endpoints[k % n] for k in tried}
    for _ in range(rounds):
        i = ch.pick(RequestContext(retry=True), e, done)
        if len(done) == n:
            assert i is None
        else:
            assert i is not None and e.endpoints[i] not in done


# --- a retry given the request: from the key's point -----------------------------------------


def test_retry_with_the_request_walks_clockwise_from_the_key() -> None:
    # The same key always retries to the same endpoint: the first untried one clockwise from
    # its point; the keys of one failed endpoint spread over several survivors.
    ch = _chash()
    e = _eps(8)
    ring = ch.ring(e)
    failed = e.endpoints[5]
    targets = Counter()
    for k in range(3000):
        ctx = RequestContext(path=f"/k{k}")
        if ch.pick(ctx, e, ()) != 5:
            continue
        first = ch.pick(RequestContext(path=f"/k{k}"), e, {failed})
        again = ch.pick(RequestContext(path=f"/k{k}"), e, {failed})
        assert first == again == ring.lookup_skipping(hash_key(f"/k{k}"), {5})
        targets[first] += 1
    assert len(targets) >= 3 and max(targets.values()) < sum(targets.values()) * 0.7


# --- session-cookie-samesite read as GetStringAnnotation ----------------------------------------


def _samesite(value: str) -> tuple[str | None, list[tuple[str, str]]]:
    spec, warn = parse_balancer_spec({P + "affinity": "cookie",
                                      P + "session-cookie-samesite": value},
                                     "round_robin", {"round_robin"}, "/")
    assert spec.affinity is not None
    return spec.affinity.samesite, [w for w in warn if w[0].endswith("samesite")]


def test_samesite_keeps_a_line_break() -> None:
    # DEFECT. sessionaffinity/main.go reads it with parser.GetStringAnnotation (normalizeString:
    # each line trimmed, the line break kept): "Lax\n" is no SameSite value there. Before:
    # str.strip() took it as Lax.
    assert _samesite("Lax\n") == (None, [(P + "session-cookie-samesite",
                                          "unsupported value 'Lax\\n' (None, Lax, Strict); "
                                          "ignored")])


def test_samesite_does_not_trim_what_go_does_not() -> None:
    # DEFECT. Go's strings.TrimSpace leaves U+001C..U+001F; str.strip() trimmed them.
    for value in ("\x1cLax", "Strict\x1f"):
        samesite, warn = _samesite(value)
        assert samesite is None and len(warn) == 1


def test_samesite_trims_go_spaces_as_before() -> None:
    assert _samesite(" Lax\t") == ("Lax", [])
    assert _samesite("\u00a0none\u3000") == ("None", [])
    assert _samesite("strict") == ("Strict", [])
