"""Router: table + endpoints + balancers + canary (SEMANTICS §6-§8), through the public API."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Collection

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingresslib._balance import RequestContext
from ingresslib._endpoints import EndpointSet
from ingresslib._errors import BadRequestError
from ingresslib._models import EndpointConditions, ServicePort
from ingresslib._resources import Resources
from ingresslib._router import Decision, Router

# Every test runs once per counter implementation (compiled _pick, pure _pick_py).
from _counters import counters  # noqa: F401
from _router_helpers import (
    P,
    canary,
    ingress,
    resources,
    service,
    simple_backend,
    slice_,
)

MAIN_IPS = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
CANARY_IPS = ["10.1.0.1", "10.1.0.2"]


def web(ann: dict[str, str] | None = None, *extra: object, main_ips: list[str] = MAIN_IPS,
        canary_ann: dict[str, str] | None = None, canary_ips: list[str] = CANARY_IPS,
        **kw: object) -> Router:
    """Ingress web: host a.test, Prefix /app -> svc main, Prefix /other -> main; optional canary
    Ingress on a.test /app -> svc beta."""
    objs: list[object] = [ingress("web", [("a.test", "/app", "Prefix", "main", 80),
                                          ("a.test", "/other", "Prefix", "main", 80)], ann)]
    objs += simple_backend("main", main_ips)
    if canary_ann is not None:
        objs.append(canary("web-canary", "a.test", "/app", "beta", 80, canary_ann))
        objs += simple_backend("beta", canary_ips)
    objs += list(extra)
    return Router(resources(*objs), **kw)  # type: ignore[arg-type]


def eps_of(d: Decision | None) -> tuple[str, int] | None:
    assert d is not None
    return d.endpoint


# --- basics ------------------------------------------------------------------------------------


def test_round_robin_decisions() -> None:
    r = web()
    ds = [r.route("GET", "a.test", "/app/x") for _ in range(6)]
    assert [eps_of(d) for d in ds] == [(ip, 8080) for ip in MAIN_IPS] * 2
    d = ds[0]
    assert d is not None
    assert (d.service, d.namespace, d.port, d.canary, d.set_cookie) == (
        "main", "default", 8080, False, None)
    assert d.match.path == "/app" and d.served is d.match and d.backend == "default/main:80"
    assert ds[3] is d  # decisions are prebuilt and reused


def test_no_match_and_bad_request() -> None:
    r = web()
    assert r.route("GET", "b.test", "/app") is None
    assert r.route("GET", "a.test", "/nope") is None
    with pytest.raises(BadRequestError):
        r.route("GET", "a.test", "/app/%2F..")


def test_no_ready_endpoint_gives_decision_without_endpoint() -> None:
    r = web(main_ips=[])
    d = r.route("GET", "a.test", "/app")
    assert d is not None and d.endpoint is None and d.service == "main" and d.port == 8080
    assert r.next_endpoint(d, ()) is None


def test_missing_service_and_resource_backend() -> None:
    ing = ingress("x", [("x.test", "/", "Prefix", "ghost", 80)])
    r = Router(resources(ing))
    d = r.route("GET", "x.test", "/")
    assert d is not None and (d.service, d.port, d.endpoint) == ("ghost", None, None)


def test_default_backend() -> None:
    ing = ingress("d", [("a.test", "/x", "Exact", "main", 80)], default=("main", 80))
    r = Router(resources(ing, *simple_backend("main", ["10.0.0.9"])))
    d = r.route("GET", "zzz.test", "/anything")
    assert d is not None and d.match.is_default_backend and d.endpoint == ("10.0.0.9", 8080)


def test_named_ports_through_the_router() -> None:
    ing = ingress("n", [(None, "/", "Prefix", "svc", "http")])
    svc = service("svc", [ServicePort(80, "http", "web")])
    sl = slice_("svc-1", "svc", ["10.0.0.1"], [("http", 3000)])
    d = Router(resources(ing, svc, sl)).route("GET", "h", "/")
    assert d is not None and d.port == 3000 and d.endpoint == ("10.0.0.1", 3000)


def test_service_upstream_annotation() -> None:
    r = web({P + "service-upstream": "true"})
    assert {eps_of(r.route("GET", "a.test", "/app")) for _ in range(4)} == {("10.96.0.10", 80)}
    # A boolean annotation as ingress-nginx reads it (strconv.ParseBool): "1", "t", "True"...
    for raw in ("1", "T", "True"):
        r = web({P + "service-upstream": raw})
        assert eps_of(r.route("GET", "a.test", "/app")) == ("10.96.0.10", 80), raw
        assert not r.warnings
    r = web({P + "service-upstream": "yes"})
    assert eps_of(r.route("GET", "a.test", "/app")) != ("10.96.0.10", 80) and r.warnings


def test_headers_in_every_form() -> None:
    r = web(canary_ann={P + "canary-by-header": "X-Canary"})
    for h in ({"X-Canary": "always"}, [(b"x-canary", b"always")], [("X-CANARY", "always")],
              ((b"X-Canary", "always"),)):
        d = r.route("GET", "a.test", "/app", h)  # type: ignore[arg-type]
        assert d is not None and d.canary


# --- balancers via annotations ---------------------------------------------------------------------


def test_consistent_hash_annotation() -> None:
    r = web({P + "upstream-hash-by": "$http_x_user"})
    for user in ("alice", "bob", "carol"):
        got = {eps_of(r.route("GET", "a.test", "/app", {"X-User": user})) for _ in range(5)}
        assert len(got) == 1
    spread = {eps_of(r.route("GET", "a.test", "/app", {"X-User": f"u{i}"})) for i in range(200)}
    assert spread == {(ip, 8080) for ip in MAIN_IPS}


@pytest.mark.parametrize("hash_by", ["$http_x_user", "$remote_addr", "$uri", "$host$uri"])
def test_consistent_hash_fast_paths_agree_with_the_balancer(hash_by: str) -> None:
    """The request path reads some keys inline (h11 header bytes, client_ip, path) and uses a
    bucket table; every answer must equal the balancer's own pick for the same request."""
    h11 = pytest.importorskip("h11")
    r = web({P + "upstream-hash-by": hash_by}, main_ips=[f"10.0.0.{i}" for i in range(1, 8)])
    values: list[bytes] = [f"user{i}".encode() for i in range(150)]
    values += [b"caf\xe9", b"\xff\xfe", b"", b"a b"]
    for i, v in enumerate(values):
        raw = [("Host", "a.test"), ("X-User", v), ("X-User", b"second")]
        for hd in (h11.Request(method="GET", target="/", headers=raw).headers,
                   [(k.lower().encode() if isinstance(k, str) else k, v2) for k, v2 in raw],
                   {"X-User": v.decode("latin-1")}):
            ip, path = f"192.0.2.{i % 250}", f"/app/{i}"
            d = r.route("GET", "a.test", path, hd, ip)  # type: ignore[arg-type]
            assert d is not None
            ctx = RequestContext("GET", "a.test", path, hd, ip)  # type: ignore[arg-type]
            want = d.handle.balancer.pick(ctx, d.handle.eps, ())
            assert d.endpoint == d.handle.eps.endpoints[want], (hash_by, v, hd)
    absent = r.route("GET", "a.test", "/app", h11.Request(method="GET", target="/",
                                                          headers=[("Host", "a.test")]).headers)
    assert absent is not None and absent.endpoint is not None


def test_hash_by_uri_uses_the_normalised_uri() -> None:
    # nginx's $uri is "the current URI in request, normalized" (percent-decoded, "//" merged,
    # "." and ".." resolved): two spellings of one path share an endpoint (here: the canonical
    # path of SEMANTICS §5, the path the backend receives).
    r = web({P + "upstream-hash-by": "$uri"}, main_ips=[f"10.0.0.{i}" for i in range(1, 9)])
    for i in range(40):
        plain = f"/app/p{i}/x"
        want = eps_of(r.route("GET", "a.test", plain))
        for other in (f"/app//p{i}/x", f"/app/p{i}/./x", f"/app/p{i}/y/../x",
                      f"/app/p{i}/%78", f"/%61pp/p{i}/x"):
            d = r.route("GET", "a.test", other)
            assert eps_of(d) == want, (plain, other)
            assert d is not None
            ctx = RequestContext("GET", "a.test", other)
            assert d.handle.eps.endpoints[d.handle.balancer.pick(ctx, d.handle.eps, ())] == want


def test_canary_header_inline_check_agrees_with_every_header_form() -> None:
    h11 = pytest.importorskip("h11")
    for ann, cases in (
        ({P + "canary-by-header": "X-Canary"},
         [("always", True), ("never", False), ("other", None), (None, None)]),
        ({P + "canary-by-header": "X-Canary", P + "canary-by-header-value": "yes"},
         [("yes", True), ("never", None), ("always", None), (None, None)]),
    ):
        # weight 0: a request the header does not decide stays on the main side
        r = web(canary_ann=ann)
        for value, want in cases:
            raw = [("Host", "a.test")] + ([("X-Canary", value)] if value is not None else [])
            for hd in (h11.Request(method="GET", target="/", headers=raw).headers, raw,
                       dict(raw)):
                d = r.route("GET", "a.test", "/app", hd)  # type: ignore[arg-type]
                assert d is not None and d.canary is bool(want), (ann, value, hd)
            # Repeated, the header reads as nginx's $http_* does (>= 1.23): "v, always",
            # which is neither value: the weight (0) decides, in every header form.
            if value is not None:
                raw2 = raw + [("X-Canary", "always")]
                for hd in (h11.Request(method="GET", target="/", headers=raw2).headers, raw2):
                    d = r.route("GET", "a.test", "/app", hd)  # type: ignore[arg-type]
                    assert d is not None and not d.canary, (ann, value, hd)


def test_round_robin_retries_leave_the_cycle_alone_and_rebuilds_stay_even() -> None:
    r = web()
    d = r.route("GET", "a.test", "/app")
    assert d is not None and d.endpoint == ("10.0.0.1", 8080)
    # The retry takes the endpoint after the failed one without moving the shared cycle:
    # regression for a failing first endpoint being every request's first try.
    assert r.next_endpoint(d, {d.endpoint}) == ("10.0.0.2", 8080)
    assert eps_of(r.route("GET", "a.test", "/app")) == ("10.0.0.2", 8080)
    assert eps_of(r.route("GET", "a.test", "/app")) == ("10.0.0.3", 8080)
    d3 = r.route("GET", "a.test", "/app")
    assert eps_of(d3) == ("10.0.0.1", 8080)
    assert d3 is not None and r.next_endpoint(d3, {("10.0.0.3", 8080), ("10.0.0.1", 8080)}) == (
        "10.0.0.2", 8080)
    assert r.next_endpoint(d, {(ip, 8080) for ip in MAIN_IPS}) is None
    # After an endpoint change the cycle is still strict over every window of N requests.
    ips = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]
    r.update(resources(ingress("web", [("a.test", "/app", "Prefix", "main", 80)]),
                       *simple_backend("main", ips)))
    seq = [eps_of(r.route("GET", "a.test", "/app")) for _ in range(12)]
    for k in range(len(seq) - 3):
        assert len(set(seq[k:k + 4])) == 4


def test_hash_by_request_uri_uses_query() -> None:
    r = web({P + "upstream-hash-by": "$request_uri"})
    a = {eps_of(r.route("GET", "a.test", "/app", query=f"q={i}")) for i in range(100)}
    assert len(a) == 3


def test_cookie_affinity_through_router() -> None:
    r = web({P + "affinity": "cookie", P + "session-cookie-name": "sid",
             P + "affinity-mode": "persistent"})
    d = r.route("GET", "a.test", "/app/x")
    assert d is not None and d.set_cookie is not None
    assert d.set_cookie.startswith("sid=") and "Path=/app" in d.set_cookie
    cookie = d.set_cookie.split(";")[0]
    for _ in range(5):
        d2 = r.route("GET", "a.test", "/app/y", {"Cookie": cookie})
        assert d2 is not None and d2.endpoint == d.endpoint and d2.set_cookie is None


@pytest.mark.parametrize("mode", ["persistent", "balanced"])
def test_a_retried_new_session_names_the_endpoint_that_answered(mode: str) -> None:
    # A new session's first try fails and the retry is served elsewhere: the Set-Cookie sent
    # with that response must lead to the endpoint that answered (ingress-nginx calls
    # set_cookie again from the retry's balance(); the later Set-Cookie wins), not to the one
    # that failed.
    r = web({P + "affinity": "cookie", P + "session-cookie-name": "sid",
             P + "affinity-mode": mode}, seed=5)
    for _ in range(10):
        d = r.route("GET", "a.test", "/app/x")
        assert d is not None and d.endpoint is not None and d.set_cookie is not None
        assert r.session_cookie(d, d.endpoint) == d.set_cookie
        nxt = r.next_endpoint(d, {d.endpoint})
        assert nxt is not None and nxt != d.endpoint
        cookie = r.session_cookie(d, nxt)
        assert cookie is not None and cookie.startswith("sid=") and "Path=/app" in cookie
        d2 = r.route("GET", "a.test", "/app/y", {"Cookie": cookie.split(";")[0]})
        assert d2 is not None and d2.endpoint == nxt and d2.set_cookie is None
        # A request that came with its session keeps it: no new cookie on its retry.
        assert r.session_cookie(d2, d.endpoint) is None


def test_ewma_annotation_and_observe() -> None:
    now = [0.0]
    r = web({P + "load-balance": "ewma"}, clock=lambda: now[0], seed=3)
    slow = ("10.0.0.1", 8080)
    for _ in range(30):
        now[0] += 0.2
        d = r.route("GET", "a.test", "/app")
        assert d is not None and d.endpoint is not None
        r.observe(d, d.endpoint, 2.0 if d.endpoint == slow else 0.01, True)
    picks = Counter(eps_of(r.route("GET", "a.test", "/app")) for _ in range(300))
    # Power of two choices: the slow endpoint only wins when drawn against itself - never.
    assert picks[slow] == 0 and len(picks) == 2


def test_default_load_balance_from_router_argument() -> None:
    r = web(load_balance="ewma", seed=1)
    b = r._state.routes[r.table.match("a.test", "/app").route_id].main.balancer  # type: ignore[union-attr]
    assert type(b).__name__ == "Ewma"
    r2 = web(load_balance="bogus")
    assert any("bogus" in w.message for w in r2.warnings)
    assert eps_of(r2.route("GET", "a.test", "/app")) == ("10.0.0.1", 8080)


class Last:
    uses_request = True

    def __init__(self) -> None:
        self.seen: list[RequestContext] = []
        self.observed: list[tuple[tuple[str, int], float, bool]] = []

    def pick(self, request: RequestContext, backend: EndpointSet,
             tried: Collection[tuple[str, int]]) -> int | None:
        self.seen.append(request)
        for i in reversed(range(len(backend.endpoints))):
            if backend.endpoints[i] not in tried:
                return i
        return None

    def observe(self, endpoint: tuple[str, int], seconds: float, ok: bool) -> None:
        self.observed.append((endpoint, seconds, ok))


def test_custom_balancer_per_router() -> None:
    made: list[Last] = []

    def factory(options: object) -> Last:
        made.append(Last())
        return made[-1]

    r = web({P + "load-balance": "last"}, balancers={"last": factory})
    d = r.route("GET", "a.test", "/app", {"X-A": "1"}, "192.0.2.1")
    assert d is not None and d.endpoint == ("10.0.0.3", 8080)
    assert made[0].seen[0].header("x-a") == "1" and made[0].seen[0].client_ip == "192.0.2.1"
    r.observe(d, ("10.0.0.3", 8080), 0.5, False)
    assert made[0].observed == [(("10.0.0.3", 8080), 0.5, False)]
    assert r.next_endpoint(d, {("10.0.0.3", 8080)}) == ("10.0.0.2", 8080)
    # Another router does not know "last".
    assert any(w.field.endswith("[nginx.ingress.kubernetes.io/load-balance]")
               for w in web({P + "load-balance": "last"}).warnings)


class Broken:
    def pick(self, request: object, backend: EndpointSet, tried: object) -> int | None:
        return 0  # ignores `tried`

    def observe(self, endpoint: object, seconds: float, ok: bool) -> None:
        pass


def test_next_endpoint_keeps_its_promise_with_a_careless_balancer() -> None:
    r = web({P + "load-balance": "broken"}, balancers={"broken": lambda o: Broken()})
    d = r.route("GET", "a.test", "/app")
    assert d is not None
    tried = {d.endpoint}
    while (nxt := r.next_endpoint(d, tried)) is not None:  # type: ignore[arg-type]
        assert nxt not in tried
        tried.add(nxt)
    assert tried == {(ip, 8080) for ip in MAIN_IPS}


@pytest.mark.parametrize("ann", [{}, {P + "load-balance": "ewma"},
                                 {P + "upstream-hash-by": "$remote_addr"},
                                 {P + "upstream-hash-by": "$remote_addr",
                                  P + "upstream-hash-by-subset": "true",
                                  P + "upstream-hash-by-subset-size": "2"},
                                 {P + "affinity": "cookie"}])
def test_retries_cover_every_endpoint_once(ann: dict[str, str]) -> None:
    r = web(ann, seed=9)
    d = r.route("GET", "a.test", "/app", (), "192.0.2.44")
    assert d is not None and d.endpoint is not None
    tried = [d.endpoint]
    while (nxt := r.next_endpoint(d, tried)) is not None:
        assert nxt not in tried
        tried.append(nxt)
    assert sorted(tried) == [(ip, 8080) for ip in MAIN_IPS]


def test_seed_makes_random_choices_reproducible() -> None:
    def run(seed: int) -> list[tuple[str, int] | None]:
        r = web({P + "load-balance": "ewma"}, seed=seed)
        return [eps_of(r.route("GET", "a.test", "/app")) for _ in range(40)]

    assert run(5) == run(5)
    assert run(5) != run(6)


# --- canary ---------------------------------------------------------------------------------------


def test_canary_by_header() -> None:
    r = web(canary_ann={P + "canary-by-header": "X-Canary"})
    d = r.route("GET", "a.test", "/app", {"X-Canary": "always"})
    assert d is not None and d.canary and d.service == "beta" and d.endpoint in {
        (ip, 8080) for ip in CANARY_IPS}
    assert d.match.service == "main" and d.served is d.match.canary
    assert not r.route("GET", "a.test", "/app", {"X-Canary": "never"}).canary  # type: ignore[union-attr]
    assert not r.route("GET", "a.test", "/app").canary  # type: ignore[union-attr]


def test_canary_is_per_rule() -> None:
    # BETTER: /other goes to the same Service but has no canary rule: never canaried.
    r = web(canary_ann={P + "canary-by-header": "X-Canary", P + "canary-weight": "100"})
    for _ in range(5):
        d = r.route("GET", "a.test", "/other", {"X-Canary": "always"})
        assert d is not None and not d.canary and d.service == "main"


@pytest.mark.parametrize(("weight", "total", "n", "expected"),
                         [("10", None, 1000, 100), ("1", "1000", 3000, 3), ("2", "3", 300, 200),
                          ("0", None, 200, 0), ("100", None, 50, 50), ("5", "10", 10, 5)])
def test_canary_weight_exact(weight: str, total: str | None, n: int, expected: int) -> None:
    ann = {P + "canary-weight": weight}
    if total is not None:
        ann[P + "canary-weight-total"] = total
    r = web(canary_ann=ann)
    ds = [r.route("GET", "a.test", "/app") for _ in range(n)]
    assert sum(d.canary for d in ds if d is not None) == expected
    # Both sides keep their own round-robin cycle.
    can = Counter(d.endpoint for d in ds if d is not None and d.canary)
    if expected >= 2 * len(CANARY_IPS):
        assert max(can.values()) - min(can.values()) <= 1


@pytest.mark.parametrize("ann", [
    {P + "canary-weight": "10"},
    {P + "canary-by-header": "X-Canary"},
    {P + "canary-weight": "30", "main_ann": "hash"},
])
def test_a_route_does_no_lazy_work_after_its_first_request(ann: dict[str, str],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # Decisions of both canary sides, and hash rings with their tables, are built on the
    # route's first request: a later request (whichever side it picks) never pays for them.
    from ingresslib import _hashing, _router

    ann = dict(ann)
    main_ann = {P + "upstream-hash-by": "$remote_addr"} if ann.pop("main_ann", "") else None
    r = web(main_ann, canary_ann=ann)
    r.route("GET", "a.test", "/app", {}, "192.0.2.1")
    built: list[str] = []
    real_decision, real_table = _router.Decision, _hashing.HashRing.build_table

    def counting_decision(*a: object, **k: object) -> Decision:
        built.append("decision")
        return real_decision(*a, **k)  # type: ignore[arg-type]

    def counting_table(self: _hashing.HashRing) -> bytes:
        built.append("table")
        return real_table(self)

    monkeypatch.setattr(_router, "Decision", counting_decision)
    monkeypatch.setattr(_hashing.HashRing, "build_table", counting_table)
    sides = Counter()
    for i in range(200):
        headers = {"X-Canary": "always"} if i % 3 == 0 else {}
        d = r.route("GET", "a.test", "/app", headers, f"192.0.2.{i % 50}")
        assert d is not None
        sides[d.canary] += 1
    assert sides[True] and sides[False]  # both sides served
    assert built == []


def test_canary_weight_random_when_asked() -> None:
    def run(seed: int) -> list[bool]:
        r = web(canary_ann={P + "canary-weight": "20"}, canary_random=True, seed=seed)
        return [r.route("GET", "a.test", "/app").canary for _ in range(500)]  # type: ignore[union-attr]

    a = run(1)
    assert a == run(1) and a != run(2)
    assert 60 < sum(a) < 140


def test_order_header_then_cookie_then_weight() -> None:
    r = web(canary_ann={P + "canary-by-header": "X-Canary", P + "canary-by-cookie": "cc",
                        P + "canary-weight": "100"})
    assert not r.route("GET", "a.test", "/app", [("x-canary", "never"),
                                                  ("cookie", "cc=always")]).canary  # type: ignore[union-attr]
    assert not r.route("GET", "a.test", "/app", [("cookie", "cc=never")]).canary  # type: ignore[union-attr]
    assert r.route("GET", "a.test", "/app", [("x-canary", "x"), ("cookie", "cc=x")]).canary  # type: ignore[union-attr]


def test_healthy_side_serves() -> None:
    # Canary has no endpoint: explicit opt-in still gets an answer from main (no 503).
    r = web(canary_ann={P + "canary-by-header": "X-Canary"}, canary_ips=[])
    d = r.route("GET", "a.test", "/app", {"X-Canary": "always"})
    assert d is not None and not d.canary and d.endpoint is not None
    # Main has no endpoint: the canary serves even at weight 0.
    r = web(canary_ann={P + "canary-weight": "0"}, main_ips=[])
    d = r.route("GET", "a.test", "/app")
    assert d is not None and d.canary and d.endpoint is not None
    # Neither: a decision without endpoint (503) on the side that was chosen.
    r = web(canary_ann={P + "canary-weight": "0"}, main_ips=[], canary_ips=[])
    d = r.route("GET", "a.test", "/app")
    assert d is not None and d.endpoint is None and not d.canary


def test_explicit_choice_beats_affinity() -> None:
    r = web({P + "affinity": "cookie"},
            canary_ann={P + "canary-by-header": "X-Canary", P + "affinity": "cookie"})
    main_d = r.route("GET", "a.test", "/app")
    assert main_d is not None and not main_d.canary and main_d.set_cookie
    pinned = main_d.set_cookie.split(";")[0]
    # A session pinned on main stays on main...
    d = r.route("GET", "a.test", "/app", [("cookie", pinned)])
    assert d is not None and not d.canary and d.endpoint == main_d.endpoint
    # ...unless the request opts in explicitly.
    d = r.route("GET", "a.test", "/app", [("cookie", pinned), ("x-canary", "always")])
    assert d is not None and d.canary


def test_canary_session_stays_on_canary() -> None:
    r = web(canary_ann={P + "canary-weight": "50", P + "affinity": "cookie"})
    first = [r.route("GET", "a.test", "/app") for _ in range(2)]
    can = next(d for d in first if d is not None and d.canary)
    assert can.set_cookie is not None
    cookie = can.set_cookie.split(";")[0]
    for _ in range(10):
        d = r.route("GET", "a.test", "/app", [("cookie", cookie)])
        assert d is not None and d.canary and d.endpoint == can.endpoint
    # And the opt-out still wins over the sticky canary session.
    r2 = web(canary_ann={P + "canary-weight": "100", P + "affinity": "cookie",
                         P + "canary-by-cookie": "cc"})
    c = r2.route("GET", "a.test", "/app")
    assert c is not None and c.canary and c.set_cookie
    d = r2.route("GET", "a.test", "/app", [("cookie", c.set_cookie.split(";")[0] + "; cc=never")])
    assert d is not None and not d.canary


def test_canary_takes_the_main_rules_session_affinity() -> None:
    # ingress-nginx controller.go mergeAlternativeBackend: "if ing.ParsedAnnotations != nil &&
    # ing.ParsedAnnotations.SessionAffinity.CanaryBehavior != "legacy" {
    # priUps.SessionAffinity.DeepCopyInto(&altUps.SessionAffinity) }" - a session the weight
    # sent to the canary sticks there, with the main Ingress's cookie settings.
    r = web({P + "affinity": "cookie", P + "session-cookie-name": "sid"},
            canary_ann={P + "canary-weight": "50"})
    first = [r.route("GET", "a.test", "/app") for _ in range(2)]
    can = next(d for d in first if d is not None and d.canary)
    assert can.set_cookie is not None and can.set_cookie.startswith("sid=")
    cookie = can.set_cookie.split(";")[0]
    for _ in range(6):
        d = r.route("GET", "a.test", "/app", [("cookie", cookie)])
        assert d is not None and d.canary and d.endpoint == can.endpoint
    # "affinity-canary-behavior: legacy" on the canary keeps the canary's own (none here).
    r = web({P + "affinity": "cookie"},
            canary_ann={P + "canary-weight": "100", P + "affinity-canary-behavior": "legacy"})
    d = r.route("GET", "a.test", "/app")
    assert d is not None and d.canary and d.set_cookie is None
    # A canary with its own affinity keeps it (docs/router.md, differences).
    r = web({P + "affinity": "cookie"},
            canary_ann={P + "canary-weight": "100", P + "affinity": "cookie",
                        P + "session-cookie-name": "beta"})
    d = r.route("GET", "a.test", "/app")
    assert d is not None and d.canary and (d.set_cookie or "").startswith("beta=")
    # An unknown behaviour is reported and treated as the default ("sticky").
    r = web({P + "affinity": "cookie"},
            canary_ann={P + "canary-weight": "100", P + "affinity-canary-behavior": "odd"})
    d = r.route("GET", "a.test", "/app")
    assert d is not None and d.canary and (d.set_cookie or "").startswith("INGRESSCOOKIE=")
    assert ("Ingress default/web-canary",
            f"metadata.annotations[{P}affinity-canary-behavior]") in {
        (w.object, w.field) for w in r.warnings}


def test_invalid_canary_annotations_are_warnings() -> None:
    r = web(canary_ann={P + "canary-weight": "lots", P + "canary-by-header": "X-C",
                        P + "canary-by-header-pattern": "(a+)\\1"})
    found = {(w.object, w.field) for w in r.warnings}
    assert ("Ingress default/web-canary",
            "metadata.annotations[nginx.ingress.kubernetes.io/canary-weight]") in found
    assert ("Ingress default/web-canary",
            "metadata.annotations[nginx.ingress.kubernetes.io/canary-by-header-pattern]") in found
    # Fallback to the defaults: weight 0, no pattern -> main.
    assert not r.route("GET", "a.test", "/app", {"X-C": "aa"}).canary  # type: ignore[union-attr]


def test_a_canary_header_name_outside_latin_1_is_a_warning_not_a_crash() -> None:
    # Before: parse_canary encoded the name as latin-1 and the UnicodeEncodeError escaped
    # from the Router's build: one Ingress's annotation stopped every route.
    r = web(canary_ann={P + "canary-weight": "0", P + "canary-by-header": "X-Can\u20acry"})
    d = r.route("GET", "a.test", "/app", [("x-can\u20acry", "always")])
    assert d is not None and not d.canary
    assert (f"metadata.annotations[{P}canary-by-header]") in {w.field for w in r.warnings}


@pytest.mark.parametrize(("value", "serves_canary", "warned"), [
    ("True", True, False), ("1", True, False), ("yes", False, True), (" true", False, True)])
def test_canary_flag_reads_as_go_parse_bool(value: str, serves_canary: bool, warned: bool) -> None:
    # ingress-nginx: parser.GetBoolAnnotation (strconv.ParseBool) on the raw value; an invalid
    # one is reported and the Ingress is an ordinary one (here shadowed by the older "web").
    r = web(canary_ann={P + "canary": value, P + "canary-weight": "100"})
    d = r.route("GET", "a.test", "/app")
    assert d is not None and d.canary is serves_canary
    field = f"metadata.annotations[{P}canary]"
    assert (("Ingress default/web-canary", field) in {(w.object, w.field) for w in r.warnings}) \
        is warned


def test_other_invalid_annotations_are_warnings() -> None:
    r = web({P + "load-balance": "nope", P + "service-upstream": "yes"})
    fields = {w.field for w in r.warnings}
    assert "metadata.annotations[nginx.ingress.kubernetes.io/load-balance]" in fields
    assert "metadata.annotations[nginx.ingress.kubernetes.io/service-upstream]" in fields
    assert all(w.object == "Ingress default/web" for w in r.warnings)
    assert eps_of(r.route("GET", "a.test", "/app")) == ("10.0.0.1", 8080)


def test_unpaired_canary_serves_nothing() -> None:
    objs = [ingress("web", [("a.test", "/app", "Prefix", "main", 80)]),
            canary("lost", "a.test", "/elsewhere", "beta", 80, {P + "canary-weight": "100"}),
            *simple_backend("main", MAIN_IPS), *simple_backend("beta", CANARY_IPS)]
    r = Router(resources(*objs))
    assert r.route("GET", "a.test", "/elsewhere") is None
    assert not r.route("GET", "a.test", "/app").canary  # type: ignore[union-attr]
    assert any("matches no main rule" in d.message for d in r.table.diagnostics)


# --- updates --------------------------------------------------------------------------------------


def test_endpoint_only_update_keeps_the_table() -> None:
    ing = ingress("web", [("a.test", "/app", "Prefix", "main", 80)])
    r = Router(resources(ing, *simple_backend("main", MAIN_IPS)))
    table = r.table
    r.update(resources(ing, *simple_backend("main", ["10.0.9.1"])))
    assert r.table is table
    assert eps_of(r.route("GET", "a.test", "/app")) == ("10.0.9.1", 8080)
    # Equal (not identical) Ingresses also keep it.
    r.update(resources(ingress("web", [("a.test", "/app", "Prefix", "main", 80)]),
                       *simple_backend("main", MAIN_IPS)))
    assert r.table is table
    r.update(resources(ingress("web", [("a.test", "/v2", "Prefix", "main", 80)]),
                       *simple_backend("main", MAIN_IPS)))
    assert r.table is not table
    assert r.route("GET", "a.test", "/app") is None and r.route("GET", "a.test", "/v2")


def test_unchanged_backends_keep_their_decisions() -> None:
    ing = ingress("web", [("a.test", "/app", "Prefix", "main", 80),
                          ("a.test", "/b", "Prefix", "other", 80)])
    objs = [ing, *simple_backend("main", MAIN_IPS)]
    r = Router(resources(*objs, *simple_backend("other", ["10.5.0.1"])))
    before = [r.route("GET", "a.test", "/app") for _ in range(3)]
    r.update(resources(*objs, *simple_backend("other", ["10.5.0.2"])))
    after = [r.route("GET", "a.test", "/app") for _ in range(3)]
    assert all(a is b for a, b in zip(before, after))  # same Decision objects, cycle continues
    assert eps_of(r.route("GET", "a.test", "/b")) == ("10.5.0.2", 8080)


def test_balancer_and_canary_state_survive_updates() -> None:
    ing = ingress("web", [("a.test", "/app", "Prefix", "main", 80)])
    can = canary("c", "a.test", "/app", "beta", 80, {P + "canary-weight": "1",
                                                     P + "canary-weight-total": "4"})
    objs = [ing, can, *simple_backend("main", MAIN_IPS), *simple_backend("beta", CANARY_IPS)]
    r = Router(resources(*objs))
    seq = [r.route("GET", "a.test", "/app").canary for _ in range(3)]  # type: ignore[union-attr]
    r.update(resources(*objs))  # nothing changed
    seq.append(r.route("GET", "a.test", "/app").canary)  # type: ignore[union-attr]
    assert seq == [False, False, False, True]  # the split continued where it was


def test_route_during_update_never_sees_a_half_state() -> None:
    # Generation A: /app -> svc a (target 8080, 10.0.x); B: /app -> svc b (9090, 10.1.x);
    # C: endpoint-only change of A (target 7070). Every decision must be self-consistent.
    ing_a = ingress("web", [("a.test", "/app", "Prefix", "a", 80)])
    ing_b = ingress("web", [("a.test", "/app", "Prefix", "b", 80)])
    svc_a = service("a", [ServicePort(80, None, 8080)])
    svc_a2 = service("a", [ServicePort(80, None, 7070)])
    svc_b = service("b", [ServicePort(80, None, 9090)])
    gens = [
        resources(ing_a, svc_a, slice_("a1", "a", ["10.0.0.1", "10.0.0.2"], [(None, 8080)])),
        resources(ing_b, svc_b, slice_("b1", "b", ["10.1.0.1"], [(None, 9090)])),
        resources(ing_a, svc_a2, slice_("a1", "a", ["10.2.0.1", "10.2.0.2"], [(None, 7070)])),
    ]
    expected = {8080: ("a", "10.0."), 9090: ("b", "10.1."), 7070: ("a", "10.2.")}
    r = Router(gens[0])
    stop = time.monotonic() + 1.0
    errors: list[str] = []
    count = [0]

    def hammer() -> None:
        while time.monotonic() < stop:
            d = r.route("GET", "a.test", "/app")
            count[0] += 1
            if d is None or d.endpoint is None or d.port != d.endpoint[1]:
                errors.append(repr(d))
                return
            svc, prefix = expected[d.port]
            if d.service != svc or not d.endpoint[0].startswith(prefix):
                errors.append(repr(d))
                return

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    i = 0
    while time.monotonic() < stop:
        i += 1
        r.update(gens[i % 3])
    for t in threads:
        t.join()
    assert errors == [] and i > 10 and count[0] > 100


# --- properties ------------------------------------------------------------------------------------

COND = st.sampled_from([EndpointConditions(), EndpointConditions(ready=True),
                        EndpointConditions(ready=False), EndpointConditions(terminating=True),
                        EndpointConditions(ready=False, serving=True, terminating=True)])
ANNS = st.sampled_from([{}, {P + "load-balance": "ewma"}, {P + "upstream-hash-by": "$uri"},
                        {P + "affinity": "cookie"},
                        {P + "upstream-hash-by": "$uri", P + "upstream-hash-by-subset": "true"}])


@given(st.lists(COND, max_size=8), ANNS, st.lists(st.text("abc/", max_size=6), min_size=1,
                                                  max_size=20))
def test_never_a_non_ready_endpoint(conds: list[EndpointConditions], ann: dict[str, str],
                                    paths: list[str]) -> None:
    items = [(f"10.0.0.{i + 1}", c) for i, c in enumerate(conds)]
    ready = {(ip, 8080) for ip, c in items
             if c.ready is True or (c.ready is None and c.terminating is not True)}
    objs = [ingress("web", [(None, "/", "Prefix", "main", 80)], ann), service("main"),
            slice_("m", "main", items)]
    r = Router(resources(*objs), seed=0)
    for p in paths:
        d = r.route("GET", "h", "/" + p.strip("/"))
        assert d is not None
        if ready:
            assert d.endpoint in ready
            tried = [d.endpoint]
            while (nxt := r.next_endpoint(d, tried)) is not None:
                assert nxt in ready and nxt not in tried
                tried.append(nxt)
            assert set(tried) == ready
        else:
            assert d.endpoint is None


@given(st.integers(1, 50), st.data())
def test_canary_share_within_one_request_over_every_window(total: int,
                                                           data: st.DataObject) -> None:
    weight = data.draw(st.integers(0, total))
    r = web(canary_ann={P + "canary-weight": str(weight),
                        P + "canary-weight-total": str(total)})
    seq = [r.route("GET", "a.test", "/app").canary for _ in range(2 * total)]  # type: ignore[union-attr]
    for n in range(1, len(seq) + 1):
        for a in range(0, len(seq) - n + 1, max(1, n // 3)):
            assert abs(sum(seq[a:a + n]) - n * weight / total) < 1


def test_empty_resources() -> None:
    r = Router(Resources())
    assert r.route("GET", "a", "/") is None and r.warnings == ()


def test_route_through_the_class_and_after_updates() -> None:
    # Instances call the published FastRoute; Router.route(router, ...) reaches the same one,
    # and every update publishes a new one (old routes never answer after it).
    r = web()
    first = r.route("GET", "a.test", "/app")
    assert first is not None
    d = Router.route(r, "GET", "a.test", "/app", headers={}, client_ip="192.0.2.1")
    assert d is not None and d.endpoint != first.endpoint  # the same cycle moved on
    before = r.route
    r.update(resources(ingress("web", [("b.test", "/new", "Prefix", "main", 80)]),
                       *simple_backend("main", MAIN_IPS)))
    assert r.route is not before
    assert r.route("GET", "a.test", "/app") is None
    assert eps_of(r.route("GET", "b.test", "/new")) in [(ip, 8080) for ip in MAIN_IPS]


@given(weight=st.integers(0, 100), header=st.booleans(), value=st.sampled_from([None, "yes"]),
       requests=st.lists(st.tuples(st.sampled_from(["always", "never", "yes", "other", None]),
                                   st.booleans()), min_size=1, max_size=60))
def test_compiled_canary_pick_decides_as_the_python_path(
        weight: int, header: bool, value: str | None,
        requests: list[tuple[str | None, bool]]) -> None:
    # The same request sequence through a router whose canary routes use CanaryPick and one
    # whose routes stay on the Python path gives the same Decisions, h11 headers or not.
    import h11

    from ingresslib import _router

    ann = {P + "canary-weight": str(weight)}
    if header:
        ann[P + "canary-by-header"] = "X-Canary"
        if value is not None:
            ann[P + "canary-by-header-value"] = value
    fast_router, slow_router = web(canary_ann=ann), web(canary_ann=ann)
    st = slow_router._state

    def python_path_only() -> None:  # the slow router's entries back to the _Routes
        for m in st.table.routes:
            r = st.routes[m.route_id]
            if isinstance(r, _router._Route) and r.canary is not None:
                st.fast[m] = r

    python_path_only()
    for hv, as_h11 in requests:
        pairs = [("Host", "a.test")] + ([("X-Canary", hv)] if hv is not None else [])
        headers: object = (h11.Request(method="GET", target="/app", headers=pairs).headers
                           if as_h11 else dict(pairs))
        a = fast_router.route("GET", "a.test", "/app", headers)  # type: ignore[arg-type]
        b = slow_router.route("GET", "a.test", "/app", headers)  # type: ignore[arg-type]
        python_path_only()
        assert a is not None and b is not None
        assert (a.canary, a.endpoint) == (b.canary, b.endpoint)
    m = fast_router.table.match("a.test", "/app")
    slow_m = slow_router.table.match("a.test", "/app")
    assert m is not None and slow_m is not None
    assert type(fast_router._state.fast[m]) is _router.CanaryPick
    assert type(slow_router._state.fast[slow_m]) is _router._Route
