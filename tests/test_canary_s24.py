"""Session 24 fresh-eyes review (C1): canary routing against ingress-nginx, through
``Router.route`` and a real ``ProxyServer`` on 127.0.0.1 with two backends.

References (search corpus "code", kubernetes/ingress-nginx):
- ``rootfs/etc/nginx/lua/balancer.lua`` ``route_to_alternative_balancer``: header, then
  ``ngx.var["cookie_" .. target_cookie]``, then ``math.random(weightTotal) <= weight``; only
  ``alternative_backends[1]`` is consulted ("TODO: support traffic shaping for n > 1").
- ``internal/ingress/controller/controller.go`` ``mergeAlternativeBackends`` (canaries merged in
  the order of ``store.ListIngresses``) and ``store.go`` ``sortIngressSlice`` (oldest first; on
  equal timestamps ``return in > jn``: reverse namespace/name).
- nginx ``ngx_http_variable_cookie`` -> ``ngx_http_parse_multi_header_lines``: the name after
  ``cookie_`` is compared with ``ngx_strncasecmp`` on the Cookie header's bytes.

The tests marked DEFECT failed on the tree before this session's change.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
import pytest

from ingresslib._canary import compile_explicit, explicit_choice, parse_canary
from ingresslib._models import ServicePort
from ingresslib._router import Router

from _counters import counters  # noqa: F401
from _router_helpers import P, canary, ingress, resources, service, simple_backend, slice_

MAIN_IP = "10.0.0.1"
CANARY_IP = "10.1.0.1"


def _router(ann: dict[str, str], *, canary_ips: tuple[str, ...] = (CANARY_IP,),
            canary_ns: str = "default", main_ann: dict[str, str] | None = None,
            **kw: Any) -> Router:
    objs: list[object] = [ingress("web", [("a.test", "/", "Prefix", "web", 80)], main_ann)]
    objs.append(canary("web-c", "a.test", "/", "web-canary", 80, ann, ns=canary_ns))
    objs += simple_backend("web", [MAIN_IP])
    objs.append(service("web-canary", ns=canary_ns))
    if canary_ips:
        objs.append(slice_("web-canary-1", "web-canary", list(canary_ips), ns=canary_ns))
    return Router(resources(*objs), seed=1, **kw)


def _side(r: Router, headers: Any = ()) -> bool:
    d = r.route("GET", "a.test", "/", headers)
    assert d is not None and d.endpoint is not None
    assert d.endpoint[0] == (CANARY_IP if d.canary else MAIN_IP)
    return d.canary


def _h11(*pairs: tuple[str, bytes]) -> Any:
    """Request headers as the proxy hands them to the router (h11, values as sent)."""
    return h11.Request(method="GET", target="/",
                       headers=[("Host", "a.test"), *pairs]).headers


# --- DEFECT: a non-ASCII canary-by-cookie name, sent as bytes --------------------------------


def test_non_ascii_cookie_name_matches_its_utf8_bytes() -> None:
    # DEFECT: canary-by-cookie "cké" never matched a request through the proxy (or any header
    # given as bytes): the Cookie line arrives one character per byte ("ckÃ©=always") and was
    # searched for the text "cké". nginx's $cookie_cké compares the name's bytes (the
    # annotation's UTF-8) with the header's bytes: "Cookie: cké=always" goes to the canary.
    r = _router({P + "canary-by-cookie": "cké"})
    wire = "cké=always".encode()
    assert _side(r, _h11(("Cookie", wire))) is True
    assert _side(r, [(b"cookie", wire)]) is True
    assert _side(r, _h11(("Cookie", "a=1; cké=never".encode()))) is False
    # Text stays text: the name as written.
    assert _side(r, [("Cookie", "cké=always")]) is True
    # ngx_strncasecmp folds ASCII letters only: "CKé" is the name, "ckÉ" is not.
    assert _side(r, _h11(("Cookie", "CKé=always".encode()))) is True
    assert _side(r, _h11(("Cookie", "ckÉ=always".encode()))) is False
    # A latin-1 byte that is not the name's UTF-8 is another name.
    assert _side(r, _h11(("Cookie", "cké=always".encode("latin-1")))) is False


def test_non_ascii_cookie_name_compiled_and_plain_paths_agree() -> None:
    # DEFECT (same): compile_explicit's h11 path and explicit_choice give one answer.
    cfg = parse_canary({P + "canary-by-cookie": "jöhn", P + "canary-by-header": "X-C"})[0]
    check = compile_explicit(cfg)
    for raw, want in ((b"j\xc3\xb6hn=always", True), (b"j\xc3\xb6hn=never", False),
                      (b"j\xf6hn=always", None), (b"other=always", None)):
        hs = _h11(("Cookie", raw))
        assert explicit_choice(cfg, hs) is want
        assert check(hs) is want
        assert explicit_choice(cfg, [(b"cookie", raw)]) is want


# --- DEFECT: a refused canary-by-header-pattern left "always"/"never" in force ------------------


@pytest.mark.parametrize("pattern", ["(?=beta)", "(a)\\1", "\\bbeta", "(beta", "[b-a]"])
def test_refused_pattern_does_not_turn_always_never_on(pattern: str) -> None:
    # DEFECT: a pattern ingresslib refuses (look-around, back-reference, \b: PCRE has them;
    # "(beta", "[b-a]": PCRE refuses them too) was dropped and the header fell back to the
    # always/never rule, so "X-Canary: always" went to the canary. balancer.lua never reads
    # always/never while a pattern is set ("elseif ...headerPattern ... elseif header ==
    # "always""): the header now decides nothing, the cookie and the weight do.
    r = _router({P + "canary-by-header": "X-Canary", P + "canary-by-header-pattern": pattern,
                 P + "canary-by-cookie": "ck"})
    assert _side(r, _h11(("X-Canary", b"always"))) is False  # weight 0
    assert _side(r, [("X-Canary", "always")]) is False
    assert _side(r, _h11(("X-Canary", b"never"), ("Cookie", b"ck=always"))) is True
    cfg, warnings = parse_canary({P + "canary-by-header": "X-Canary",
                                  P + "canary-by-header-pattern": pattern})
    assert cfg.header is None and cfg.header_pattern is None
    assert [k for k, _ in warnings] == [P + "canary-by-header-pattern"]
    assert "the header decides nothing" in warnings[0][1]
    assert explicit_choice(cfg, _h11(("X-Canary", b"always"))) is None
    assert compile_explicit(cfg)(_h11(("X-Canary", b"always"))) is None


# --- header, cookie and weight, as balancer.lua reads them ---------------------------------------


def test_header_values_are_exact_and_case_sensitive() -> None:
    r = _router({P + "canary-by-header": "X-Canary", P + "canary-by-header-value": "beta users"})
    assert _side(r, _h11(("X-Canary", b"beta users"))) is True
    assert _side(r, _h11(("x-canary", b"beta users"))) is True  # the name folds
    assert _side(r, _h11(("X-Canary", b"Beta users"))) is False  # the value does not
    assert _side(r, _h11(("X-Canary", b"beta  users"))) is False
    # With a value configured, "always" is just another value: falls through (weight 0).
    assert _side(r, _h11(("X-Canary", b"always"))) is False


def test_header_always_never_beat_cookie_and_weight() -> None:
    r = _router({P + "canary-by-header": "X-Canary", P + "canary-by-cookie": "ck",
                 P + "canary-weight": "100"})
    assert _side(r, _h11(("X-Canary", b"never"), ("Cookie", b"ck=always"))) is False
    assert _side(r, _h11(("X-Canary", b"Never"), ("Cookie", b"ck=never"))) is False  # cookie
    assert _side(r, _h11(("X-Canary", b"Never"))) is True  # the weight (100)
    assert _side(r, _h11(("Cookie", b"x=1, ck=never"))) is False  # "," separates pairs too
    assert _side(r, _h11(("Cookie", b"ck=never, x=1"))) is True  # value "never, x=1"


@pytest.mark.parametrize("weight,total,n,want", [
    ("0", None, 200, 0), ("100", None, 200, 200), ("30", "60", 600, 300), ("1", "3", 300, 100),
    ("7", "1000", 2000, 14)])
def test_weight_and_total(weight: str, total: str | None, n: int, want: int) -> None:
    ann = {P + "canary-weight": weight}
    if total is not None:
        ann[P + "canary-weight-total"] = total
    r = _router(ann)
    assert sum(_side(r) for _ in range(n)) == want


def test_random_weight_split_is_plausible() -> None:
    # canary_random=True draws as ingress-nginx's math.random does (seeded): a chi-square
    # test on 2,000 draws of a 20 % canary (1 degree of freedom; 15.1 is p = 0.0001).
    for seed in (1, 2, 3):
        objs: list[object] = [ingress("web", [("a.test", "/", "Prefix", "web", 80)]),
                              canary("web-c", "a.test", "/", "web-canary", 80,
                                     {P + "canary-weight": "20"})]
        objs += simple_backend("web", [MAIN_IP]) + simple_backend("web-canary", [CANARY_IP])
        r = Router(resources(*objs), seed=seed, canary_random=True)
        n = 2000
        k = sum(_side(r) for _ in range(n))
        e1, e0 = n * 0.2, n * 0.8
        chi2 = (k - e1) ** 2 / e1 + ((n - k) - e0) ** 2 / e0
        assert chi2 < 15.1, (seed, k)
        assert 0 < k < n


def test_canary_without_endpoints_leaves_the_main_side() -> None:
    # balancer.lua: sync_backend drops a backend without endpoints ("balancers[backend.name] =
    # nil"); route_to_alternative_balancer then logs "no alternative balancer" and returns
    # false: the main side serves, whatever the header or weight.
    r = _router({P + "canary-by-header": "X-Canary", P + "canary-weight": "100"},
                canary_ips=())
    assert _side(r, _h11(("X-Canary", b"always"))) is False
    assert _side(r) is False


def test_canary_in_another_namespace_pairs() -> None:
    # createServers keys servers by host alone; mergeAlternativeBackends finds the main
    # location whatever namespace the canary Ingress is in.
    r = _router({P + "canary-weight": "100"}, canary_ns="other")
    d = r.route("GET", "a.test", "/", ())
    assert d is not None and d.canary and d.namespace == "other"
    assert d.served is not None and d.served.ingress == "other/web-c"


@pytest.mark.parametrize("flag", ["false", "0", "F", "maybe"])
def test_canary_flag_not_true_is_an_ordinary_ingress(flag: str) -> None:
    # canary/main.go: parser.GetBoolAnnotation (strconv.ParseBool). Not true: an ordinary
    # Ingress, which loses the identical rule to the older main Ingress.
    r = _router({P + "canary": flag, P + "canary-weight": "100"})
    d = r.route("GET", "a.test", "/", ())
    assert d is not None and not d.canary and d.service == "web"
    assert d.match.canary is None


def test_sticky_session_keeps_its_side_and_legacy_gives_the_canary_none() -> None:
    aff = {P + "affinity": "cookie"}
    r = _router({P + "canary-weight": "50"}, main_ann=aff)
    firsts = [r.route("GET", "a.test", "/", ()) for _ in range(2)]
    assert sorted(d.canary for d in firsts) == [False, True]  # the smooth split: one each
    for d in firsts:
        assert d.set_cookie is not None  # sticky: the canary takes the main's affinity
        ck = d.set_cookie.split(";")[0].encode()
        assert {_side(r, _h11(("Cookie", ck))) for _ in range(6)} == {d.canary}
    legacy = _router({P + "canary-weight": "100", P + "affinity-canary-behavior": "legacy"},
                     main_ann=aff)
    d = legacy.route("GET", "a.test", "/", ())
    assert d is not None and d.canary and d.set_cookie is None


def test_two_canaries_with_equal_timestamps_documented_order() -> None:
    # Only one canary serves a rule (balancer.lua reads alternative_backends[1]). ingress-nginx
    # keeps the first in sortIngressSlice's order, which on equal creationTimestamps is the
    # *reverse* namespace/name ("return in > jn": default/c-b). ingresslib keeps its one order
    # for identical rules (SEMANTICS: oldest, then namespace/name): default/c-a; the other is
    # reported. A documented divergence (docs/router.md R33, README's table).
    objs: list[object] = [ingress("web", [("a.test", "/", "Prefix", "web", 80)])]
    objs.append(canary("c-b", "a.test", "/", "svc-b", 80, {P + "canary-weight": "100"}))
    objs.append(canary("c-a", "a.test", "/", "svc-a", 80, {P + "canary-weight": "100"}))
    objs += (simple_backend("web", [MAIN_IP]) + simple_backend("svc-a", ["10.2.0.1"])
             + simple_backend("svc-b", ["10.3.0.1"]))
    r = Router(resources(*objs), seed=1)
    d = r.route("GET", "a.test", "/", ())
    assert d is not None and d.canary and d.service == "svc-a"
    msgs = [str(x) for x in r.table.diagnostics]
    assert any("Ingress default/c-b" in m and "rule already has the canary default/c-a" in m
               for m in msgs), msgs


# --- a real ProxyServer on 127.0.0.1 with two backends ----------------------------------------


def _proxy_run(ann: dict[str, str], requests: list[list[tuple[str, bytes]]],
               canary_has_endpoints: bool = True) -> list[bytes]:
    """The body (the backend's name) of each request's answer from a ProxyServer routing
    a.test to a main and a canary backend, both on 127.0.0.1."""
    from ingresslib.proxy import ProxyServer

    async def run() -> list[bytes]:
        async def backend(name: bytes) -> asyncio.AbstractServer:
            async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
                try:
                    await r.readuntil(b"\r\n\r\n")
                    w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close"
                            b"\r\n\r\n%s" % (len(name), name))
                    await w.drain()
                finally:
                    w.close()
            return await asyncio.start_server(handle, "127.0.0.1", 0)

        ups = [await backend(b"main"), await backend(b"canary")]
        mport, cport = (s.sockets[0].getsockname()[1] for s in ups)
        objs: list[object] = [ingress("web", [("a.test", "/", "Prefix", "web", 80)]),
                              canary("web-c", "a.test", "/", "web-canary", 80, ann)]
        objs += [service("web", [ServicePort(port=80, target_port=mport)]),
                 slice_("web-1", "web", ["127.0.0.1"], ports=((None, mport),)),
                 service("web-canary", [ServicePort(port=80, target_port=cport)])]
        if canary_has_endpoints:
            objs.append(slice_("web-canary-1", "web-canary", ["127.0.0.1"],
                               ports=((None, cport),)))
        server = ProxyServer(Router(resources(*objs), seed=0))
        await server.start(("127.0.0.1", 0))
        bodies: list[bytes] = []
        try:
            port = server.addresses[0][2]
            for headers in requests:
                r, w = await asyncio.open_connection("127.0.0.1", port)
                w.write(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n" + b"".join(
                    n.encode() + b": " + v + b"\r\n" for n, v in headers) + b"\r\n")
                data = await asyncio.wait_for(r.read(), 2)
                w.close()
                head, _, body = data.partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200"), head
                bodies.append(body)
        finally:
            await server.shutdown(1)
            for s in ups:
                s.close()
        return bodies

    return asyncio.run(run())


def test_proxy_header_cookie_and_weight() -> None:
    bodies = _proxy_run(
        {P + "canary-by-header": "X-Canary", P + "canary-by-cookie": "cké",
         P + "canary-weight": "0"},
        [[], [("X-Canary", b"always")], [("x-canary", b"  always ")],
         [("X-Canary", b"Always")], [("X-Canary", b"never"), ("Cookie", "cké=always".encode())],
         [("Cookie", "a=b; cké=always".encode())],  # DEFECT: was "main"
         [("Cookie", b"ck=always")]])
    assert bodies == [b"main", b"canary", b"canary", b"main", b"main", b"canary", b"main"]


def test_proxy_weight_split_and_empty_canary() -> None:
    assert _proxy_run({P + "canary-weight": "1", P + "canary-weight-total": "2"},
                      [[]] * 4) == [b"main", b"canary", b"main", b"canary"]
    assert _proxy_run({P + "canary-weight": "100"}, [[], [("X", b"y")]],
                      canary_has_endpoints=False) == [b"main", b"main"]



def test_explain_agrees_on_a_non_ascii_cookie_name() -> None:
    # DEFECT (same): explain sends the -H lines as the proxy's bytes, so it said "main" too.
    import ingresslib

    objs: list[object] = [ingress("web", [("a.test", "/", "Prefix", "web", 80)]),
                          canary("web-c", "a.test", "/", "web-canary", 80,
                                 {P + "canary-by-cookie": "cké"})]
    objs += simple_backend("web", [MAIN_IP]) + simple_backend("web-canary", [CANARY_IP])
    doc = ingresslib.explain(resources(*objs), "http://a.test/",
                             headers=[("Cookie", "cké=always")])
    assert doc["decision"]["canary"] is True
    assert doc["decision"]["canary_reason"] == "the request's cookie cké is always"
