"""Session 19 review (Q19h) of the balancers against ingress-nginx's Lua balancers."""

from __future__ import annotations

from typing import Any

import pytest

from ingresslib import Router
from ingresslib._balance_affinity import CookieAffinity

from _router_helpers import P, ingress, resources, simple_backend


def _sticky_router(n: int, mode: str = "balanced") -> Router:
    ips = [f"10.1.{i // 200}.{i % 200 + 1}" for i in range(n)]
    ann = {P + "affinity": "cookie", P + "affinity-mode": mode}
    res = resources(ingress("web", [("a.test", "/", "Prefix", "web", 80)], ann),
                    *simple_backend("web", ips))
    return Router(res, seed=7)


def _count_key_draws(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    drawn = [0]
    original = CookieAffinity._new_key

    def counting(self: CookieAffinity) -> str:
        drawn[0] += 1
        return original(self)

    monkeypatch.setattr(CookieAffinity, "_new_key", counting)
    return drawn


def _cookie_pair(set_cookie: str) -> tuple[str, str]:
    name, _, rest = set_cookie.partition("=")
    return name, rest.partition(";")[0]


def test_retry_cookie_of_a_new_balanced_session_costs_no_search_over_the_ring(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A new balanced-mode session retried on another endpoint gets the cookie of the endpoint
    that answered (``session_cookie``). That cookie used to be found by drawing random keys
    until one hashed to the endpoint: about n draws (n = endpoints; ~5 ms at 1,000 endpoints,
    on the event loop, per retry). ingress-nginx draws the key first and goes where it leads
    (``sticky_balanced.lua`` ``pick_new_upstream``: "local new_upstream =
    self.instance:find(key)"): the key the retry's pick drew is the cookie."""
    r = _sticky_router(1000)
    drawn = _count_key_draws(monkeypatch)
    retries = 20
    for i in range(retries):
        d: Any = r.route("GET", "a.test", f"/p{i}")
        assert d.set_cookie is not None  # a new session
        ep = r.next_endpoint(d, {d.endpoint})
        assert ep is not None and ep != d.endpoint
        cookie = r.session_cookie(d, ep)
        assert cookie is not None
        # The cookie leads to the endpoint that answered.
        name, value = _cookie_pair(cookie)
        again: Any = r.route("GET", "a.test", "/", headers=[("cookie", f"{name}={value}")])
        assert again.endpoint == ep and again.set_cookie is None
    # One key for the first pick, one for the retry's pick, none to find the cookie (before:
    # ~1,000 more per retry).
    assert drawn[0] <= 2 * retries + 2


def test_retry_keys_are_not_shared_between_sessions(monkeypatch: pytest.MonkeyPatch) -> None:
    """A key a retry drew is handed out once: two sessions holding one key would move
    together when the endpoints change (balanced mode's fair share on scale-out)."""
    r = _sticky_router(3)
    seen: set[str] = set()
    for i in range(60):
        d: Any = r.route("GET", "a.test", f"/q{i}")
        ep = r.next_endpoint(d, {d.endpoint})
        assert ep is not None
        cookie = r.session_cookie(d, ep)
        assert cookie is not None
        value = _cookie_pair(cookie)[1]
        assert value not in seen
        seen.add(value)
        # Asking again for the same endpoint (a second answer of that retry) still works.
        second = r.session_cookie(d, ep)
        assert second is not None and _cookie_pair(second)[1] not in seen


def test_retry_cookie_after_the_key_owner_was_tried_still_leads_to_the_endpoint() -> None:
    """When the retry's key hashes to an endpoint already tried, the pick walks on
    (``lookup_skipping``) and that key does not lead to the chosen endpoint: the cookie must
    not be that key."""
    r = _sticky_router(2)
    for i in range(40):
        d: Any = r.route("GET", "a.test", f"/r{i}")
        ep = r.next_endpoint(d, {d.endpoint})
        assert ep is not None and ep != d.endpoint
        cookie = r.session_cookie(d, ep)
        assert cookie is not None
        name, value = _cookie_pair(cookie)
        again: Any = r.route("GET", "a.test", "/", headers=[("cookie", f"{name}={value}")])
        assert again.endpoint == ep


def _ewma_res(ips: list[str]) -> Any:
    return resources(ingress("web", [("a.test", "/", "Prefix", "web", 80)],
                             {P + "load-balance": "ewma"}),
                     *simple_backend("web", ips))


def test_ewma_retry_of_a_request_routed_before_an_update_avoids_the_removed_endpoint() -> None:
    """A request routed before an endpoint update retries on the endpoint set it was routed
    with. EWMA dropped the statistics of the endpoints the update removed (ewma.lua ``sync``),
    so such an endpoint scored 0, the best score, and drew every such retry to the pod that
    is gone. ingress-nginx's retry only sees the synced peers."""
    r = Router(_ewma_res(["10.0.0.1", "10.0.0.2", "10.0.0.3"]), seed=5)
    before: Any = r.route("GET", "a.test", "/")
    a, b, c = ("10.0.0.1", 8080), ("10.0.0.2", 8080), ("10.0.0.3", 8080)
    for ep in (a, b, c):
        r.observe(before, ep, 0.05, True)
    r.update(_ewma_res(["10.0.0.1", "10.0.0.2"]))  # 10.0.0.3 removed
    after: Any = r.route("GET", "a.test", "/")
    assert after.endpoint in (a, b)
    got = []
    for _ in range(20):
        got.append(r.next_endpoint(before, (a,)))
    # B is still there and untried: the retry goes to it, never to the removed C.
    assert got == [b] * 20
    # With every current endpoint tried, the old set's last one is still offered (no
    # request fails for want of an endpoint it was routed with).
    assert r.next_endpoint(before, (a, b)) == c


class _CountingTried(tuple):  # type: ignore[type-arg]
    """A ``tried`` that counts the membership tests made on it."""

    checks = 0

    def __contains__(self, item: object) -> bool:
        type(self).checks += 1
        return tuple.__contains__(self, item)


def _big_set(n: int) -> Any:
    from ingresslib._endpoints import EndpointSet
    eps = tuple((f"10.2.{i // 200}.{i % 200 + 1}", 8080) for i in range(n))
    return EndpointSet("default", "web", 8080, eps, (1,) * n, None, False)


@pytest.mark.parametrize("kind", ["sticky", "chash-retry"])
def test_a_retry_pick_does_not_test_every_endpoint_against_tried(kind: str) -> None:
    """A retry over 1,000 endpoints: the key (cookie affinity: a new random key; hashing: the
    request's key, or the walk's start) usually lands on an untried endpoint, which is the
    answer; the set of tried indexes (a pass over all 1,000 endpoints) is only needed when it
    does not. Same answers as before: ``lookup_skipping`` starts with that owner."""
    import random

    from ingresslib._balance import (AffinityConfig, BalancerOptions, BalancerSpec,
                                     ConsistentHash, CookieAffinity, RequestContext)
    e = _big_set(1000)
    _CountingTried.checks = 0
    if kind == "sticky":
        bal: Any = CookieAffinity(BalancerOptions(
            spec=BalancerSpec("sticky", affinity=AffinityConfig()), rng=random.Random(3)),
            "", "default-web-80")
    else:
        bal = ConsistentHash(BalancerOptions(spec=BalancerSpec("chash", hash_by="$request_uri"),
                                             rng=random.Random(3)))
    picks = 50
    for i in range(picks):
        ctx = RequestContext(path=f"/k{i}", retry=kind == "chash-retry")
        first = bal.pick(RequestContext(path=f"/k{i}"), e, ())
        tried = _CountingTried((e.endpoints[first], e.endpoints[(first + 1) % 1000]))
        got = bal.pick(ctx, e, tried)
        assert got is not None and e.endpoints[got] not in tuple(tried)
    # Before: >= 1,000 membership tests per pick (50,000 in all).
    assert _CountingTried.checks < picks * 50


def test_a_key_returned_with_its_cookie_is_not_handed_out_again() -> None:
    """``pick_with_cookie`` returns the retry's new key in its Set-Cookie: the caller sends it,
    so ``cookie_for`` must not give that key to another session."""
    import random

    from ingresslib._balance import (AffinityConfig, BalancerOptions, BalancerSpec,
                                     CookieAffinity, RequestContext)
    e = _big_set(50)
    bal = CookieAffinity(BalancerOptions(
        spec=BalancerSpec("sticky", affinity=AffinityConfig()), rng=random.Random(9)),
        "", "default-web-80")
    for i in range(30):
        first = bal.pick(RequestContext(path="/"), e, ())
        assert first is not None
        idx, cookie = bal.pick_with_cookie(RequestContext(path="/"), e, (e.endpoints[first],))
        assert idx is not None and cookie is not None
        other = bal.cookie_for(e, idx)
        assert other is not None and _cookie_pair(other)[1] != _cookie_pair(cookie)[1]


def test_retries_of_requests_routed_before_an_update_do_not_rebuild_the_ring_each_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """After an endpoint update, the requests routed before it retry on the set they were
    routed with while new requests use the new set. Cookie affinity kept one ring: each
    alternation rebuilt it (160 points per endpoint: ~0.2 s of event loop at 1,000
    endpoints, 10 builds for 5 new requests and 5 retries)."""
    import ingresslib._balance_hash as bh

    built = [0]
    original = bh.HashRing.__init__

    def counting(self: Any, *args: Any, **kwargs: Any) -> None:
        built[0] += 1
        original(self, *args, **kwargs)

    def res(n: int) -> Any:
        ips = [f"10.1.0.{i + 1}" for i in range(n)]
        return resources(ingress("web", [("a.test", "/", "Prefix", "web", 80)],
                                 {P + "affinity": "cookie"}), *simple_backend("web", ips))

    monkeypatch.setattr(bh.HashRing, "__init__", counting)
    r = Router(res(20), seed=1)
    old: Any = r.route("GET", "a.test", "/")
    r.update(res(21))
    built[0] = 0
    for i in range(5):
        new: Any = r.route("GET", "a.test", f"/{i}")
        assert new.endpoint is not None
        ep = r.next_endpoint(old, (old.endpoint,))
        assert ep is not None and ep != old.endpoint
    assert built[0] == 1  # the new set's ring, once
