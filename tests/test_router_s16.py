"""Router fixes of session 16: the fallback of a balancer factory that fails to start, the
``affinity-canary-behavior`` check on unpaired canaries, and header values that are
``bytearray`` or ``memoryview``.

Each targeted test names the defect it catches (checked against the code before session 16).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from ingresslib._asgi import IngressASGI
from ingresslib._balance import (
    Ewma,
    RequestContext,
    RoundRobin,
    header_value,
    register_balancer,
    unregister_balancer,
)
from ingresslib._load import parse_manifests
from ingresslib._models import ServicePort
from ingresslib._resources import Resources
from ingresslib._router import Decision, Router
from ingresslib.proxy import ProxySettings

# Every test runs once per counter implementation (compiled _pick, pure _pick_py).
from _counters import counters  # noqa: F401
from _router_helpers import P, canary, ingress, resources, service, slice_

LB = P + "load-balance"
BEHAVIOUR = P + "affinity-canary-behavior"


class Boom(RuntimeError):
    pass


def boom(options: Any) -> Any:
    raise Boom("cannot start")


def boom2(options: Any) -> Any:
    raise Boom("cannot start either")


SPECS: list[Any] = []


def spy_ewma(options: Any) -> Any:
    """A working default factory that notes the spec it was asked to serve."""
    SPECS.append(options.spec)
    return Ewma(options)


def web(ips: Sequence[str] = ("10.0.0.1", "10.0.0.2"), ann: dict[str, str] | None = None
        ) -> Resources:
    return resources(ingress("web", [("a.test", "/", "Prefix", "web", "http")], ann),
                     service("web", [ServicePort(80, "http", 8080)]),
                     slice_("web-1", "web", ips, [("http", 8080)]))


def main_balancer(r: Router) -> Any:
    return r._state.routes[r.table.routes[0].route_id].main.balancer


def failed(r: Router) -> list[tuple[str, str, str]]:
    return [(w.object, w.field, w.message) for w in r.warnings if "failed to start" in w.message]


ANN_FIELD = f"metadata.annotations[{LB}]"


# --- 1. a balancer factory that fails to start ----------------------------------------------------


def test_a_failed_annotation_balancer_falls_back_to_the_routers_default() -> None:
    # Catches: the fallback always the built-in round-robin, where an unknown load-balance
    # value gets the Router's default (docs/router.md R28): with the ConfigMap default
    # "ewma", a backend whose annotation's factory failed was served round-robin.
    SPECS.clear()
    r = Router(web(ann={LB: "boom"}), load_balance="ewma",
               balancers={"boom": boom, "ewma": spy_ewma})
    assert type(main_balancer(r)) is Ewma
    assert failed(r) == [("Ingress default/web", ANN_FIELD,
                          "balancer 'boom' failed to start (cannot start); using ewma")]
    # The default's factory is asked for the default's spec, as for an unknown value.
    assert [s.kind for s in SPECS] == ["ewma"]
    d = r.route("GET", "a.test", "/")
    assert d is not None and d.endpoint is not None


def test_a_failed_default_balancer_is_said_on_the_routers_load_balance() -> None:
    # Catches: the warning for a kind that came from the Router's ``load_balance`` attached to
    # the Ingress's load-balance annotation, which the Ingress does not have.
    r = Router(web(), load_balance="boom", balancers={"boom": boom})
    assert type(main_balancer(r)) is RoundRobin
    assert failed(r) == [("Router", "load_balance",
                          "balancer 'boom' failed to start (cannot start); using round_robin")]
    # An unknown annotation value gets the default, so the failure is the default's too.
    r = Router(web(ann={LB: "nope"}), load_balance="boom", balancers={"boom": boom})
    assert type(main_balancer(r)) is RoundRobin
    assert failed(r) == [("Router", "load_balance",
                          "balancer 'boom' failed to start (cannot start); using round_robin")]
    assert any(w.field == ANN_FIELD and "unknown algorithm 'nope'" in w.message
               for w in r.warnings)
    # The annotation naming the default kind itself: the annotation's (no other kind to try).
    r = Router(web(ann={LB: "boom"}), load_balance="boom", balancers={"boom": boom})
    assert type(main_balancer(r)) is RoundRobin
    assert failed(r) == [("Ingress default/web", ANN_FIELD,
                          "balancer 'boom' failed to start (cannot start); using round_robin")]


def test_when_the_default_fails_too_both_are_said_and_round_robin_serves() -> None:
    # Catches: the default never tried, so its failure went unsaid (before: one warning,
    # "using round_robin", whatever the default).
    r = Router(web(ann={LB: "boom"}), load_balance="boom2",
               balancers={"boom": boom, "boom2": boom2})
    assert type(main_balancer(r)) is RoundRobin
    assert failed(r) == [
        ("Ingress default/web", ANN_FIELD,
         "balancer 'boom' failed to start (cannot start); using round_robin"),
        ("Router", "load_balance",
         "balancer 'boom2' failed to start (cannot start either); using round_robin")]


def test_the_default_fallback_is_kept_and_said_through_updates() -> None:
    # Catches: as test_router_warnings_s15 for the round-robin fallback, for a fallback to the
    # default kind: kept (with its state) and said by every update, incremental or not, as a
    # Router built from scratch says it; a change of the default tries again.
    facts = {"boom": boom}
    inc = Router(web(ann={LB: "boom"}), load_balance="ewma", balancers=facts)
    full = Router(web(ann={LB: "boom"}), load_balance="ewma", balancers=facts)
    full._incremental = False
    said = failed(inc)
    assert said == [("Ingress default/web", ANN_FIELD,
                     "balancer 'boom' failed to start (cannot start); using ewma")]
    kept = main_balancer(inc)
    assert type(kept) is Ewma
    for ips in (["10.0.0.2"], ["10.0.0.1", "10.0.0.3"]):
        res = web(ips, {LB: "boom"})
        inc.update(res)
        full.update(res)
        fresh = Router(res, load_balance="ewma", balancers=facts)
        assert failed(inc) == failed(full) == said
        assert inc.warnings == full.warnings == fresh.warnings
        assert main_balancer(inc) is kept
    assert inc._objects is not None  # the endpoint-only updates took the incremental path
    inc.load_balance = "round_robin"  # the ConfigMap default changed: a full build
    inc.update(web(["10.0.0.2"], {LB: "boom"}))
    assert type(main_balancer(inc)) is RoundRobin
    assert failed(inc) == [("Ingress default/web", ANN_FIELD,
                            "balancer 'boom' failed to start (cannot start); "
                            "using round_robin")]


def test_a_default_factory_registered_again_is_tried() -> None:
    # The fix a user makes for a failing default: the next update uses it, and says nothing.
    class Mine(RoundRobin):
        pass

    register_balancer("b16-default", boom)
    try:
        r = Router(web(), load_balance="b16-default")
        assert failed(r) == [("Router", "load_balance", "balancer 'b16-default' failed to "
                              "start (cannot start); using round_robin")]
        register_balancer("b16-default", Mine)
        r.update(web(["10.0.0.3"]))
        assert type(main_balancer(r)) is Mine and failed(r) == []
    finally:
        unregister_balancer("b16-default")


# --- 2. affinity-canary-behavior ---------------------------------------------------------------


def behaviour_warnings(r: Router) -> list[tuple[str, str]]:
    return [(w.object, w.message) for w in r.warnings
            if w.field == f"metadata.annotations[{BEHAVIOUR}]"]


def canary_world(canary_host: str, canary_ann: dict[str, str],
                 main_ann: dict[str, str] | None = None) -> Resources:
    return resources(ingress("web", [("a.test", "/", "Prefix", "web", 80)], main_ann),
                     canary("beta", canary_host, "/", "beta", 80, canary_ann),
                     service("web"), service("beta"), slice_("web-1", "web", ["10.0.0.1"]),
                     slice_("beta-1", "beta", ["10.1.0.1"]))


def test_an_unpaired_canarys_affinity_canary_behavior_is_checked() -> None:
    # Catches: the value checked on paired canaries only, while the other canary annotations
    # of an unpaired canary are checked ("still worth checking"): ingress-nginx validates it
    # on every Ingress (sessionaffinity/main.go, ValidateOptions "sticky", "legacy").
    ann = {P + "canary-weight": "x", BEHAVIOUR: "odd"}
    r = Router(canary_world("other.test", ann))
    assert not any(m.canary is not None for m in r.table.routes)  # unpaired
    assert behaviour_warnings(r) == [
        ("Ingress default/beta", "unsupported value 'odd' (sticky, legacy); using sticky")]
    assert any(w.field == f"metadata.annotations[{P}canary-weight]" for w in r.warnings)
    # Paired: said once, as before.
    r = Router(canary_world("a.test", ann))
    assert any(m.canary is not None for m in r.table.routes)
    assert behaviour_warnings(r) == [
        ("Ingress default/beta", "unsupported value 'odd' (sticky, legacy); using sticky")]
    # Valid values say nothing, paired or not.
    for host in ("a.test", "other.test"):
        for value in ("sticky", "legacy"):
            assert behaviour_warnings(Router(canary_world(host, {BEHAVIOUR: value}))) == []


def test_affinity_canary_behavior_on_a_non_canary_ingress_says_nothing() -> None:
    # Pins the rule the router follows for canary annotations (canary-weight on a non-canary
    # Ingress is not checked either): the annotation means nothing there.
    r = Router(canary_world("other.test", {}, main_ann={BEHAVIOUR: "odd",
                                                         P + "canary-weight": "x"}))
    assert behaviour_warnings(r) == []
    r = Router(canary_world("a.test", {P + "canary": "false", BEHAVIOUR: "odd"}))
    assert behaviour_warnings(r) == []


# --- 3. header values that are bytearray or memoryview -------------------------------------------

Convert = Callable[[bytes], Any]
KINDS: list[Convert] = [bytearray, memoryview]


def pair_world(main_ann: dict[str, str] | None, canary_ann: dict[str, str] | None,
               balancers: dict[str, Any] | None = None) -> Router:
    objs: list[object] = [ingress("web", [("a.test", "/", "Prefix", "web", 80)], main_ann),
                          service("web"), service("beta"),
                          slice_("web-1", "web", ["10.0.0.1", "10.0.0.2", "10.0.0.3"]),
                          slice_("beta-1", "beta", ["10.1.0.1"])]
    if canary_ann is not None:
        objs.append(canary("c", "a.test", "/", "beta", 80, canary_ann))
    return Router(resources(*objs), seed=3, balancers=balancers)


class ReadsHeader:
    """A third-party balancer that picks by a header (its RequestContext), read as the text
    ``RequestContext.header`` promises."""

    def pick(self, request: RequestContext, backend: Any, tried: Any) -> int | None:
        v = request.header("x_pick")
        return None if v is None else int(v.split(",")[0]) % len(backend.endpoints)

    def observe(self, endpoint: Any, seconds: float, ok: bool) -> None:
        pass


UA_OLD = b"Mozilla/5.0 (iPhone; CPU iPhone OS 12_0 like Mac OS X) AppleWebKit/605.1.15"

#: name -> (main annotations, canary annotations, headers (name, value)); a case whose canary
#: or balancer reads the header decides by it.
CASES: dict[str, tuple[dict[str, str] | None, dict[str, str] | None,
                       list[tuple[bytes, bytes]]]] = {
    "canary header value": (None, {P + "canary-by-header": "x-c",
                                   P + "canary-by-header-value": "yes"}, [(b"x-c", b"yes")]),
    "canary header always": (None, {P + "canary-by-header": "x-c"}, [(b"x-c", b"always")]),
    "canary header never": (None, {P + "canary-by-header": "x-c", P + "canary-weight": "100"},
                            [(b"x-c", b"never")]),
    "canary header repeated": (None, {P + "canary-by-header": "x-c",
                                      P + "canary-by-header-value": "a, b"},
                               [(b"x-c", b"a"), (b"x-c", b"b")]),
    "canary header pattern": (None, {P + "canary-by-header": "x-c",
                                     P + "canary-by-header-pattern": "^y.s$"},
                              [(b"x-c", b"yes")]),
    "canary cookie": (None, {P + "canary-by-cookie": "cc"}, [(b"cookie", b"a=1; cc=always")]),
    "affinity cookie": ({P + "affinity": "cookie", P + "affinity-mode": "persistent"}, None,
                        []),  # the cookie is the one the first request set (below)
    "hash $http": ({P + "upstream-hash-by": "$http_x_user"}, None, [(b"x-user", b"u7")]),
    "hash $http non-ascii": ({P + "upstream-hash-by": "$http_x_user"}, None,
                             [(b"x-user", "u\xe9".encode("latin-1"))]),
    "hash template": ({P + "upstream-hash-by": "k-$http_x_user"}, None, [(b"x-user", b"u7")]),
    "hash $cookie": ({P + "upstream-hash-by": "$cookie_sid"}, None, [(b"cookie", b"sid=42")]),
    "samesite by user agent": ({P + "affinity": "cookie", P + "session-cookie-samesite": "None",
                                P + "session-cookie-conditional-samesite-none": "true"}, None,
                               [(b"user-agent", UA_OLD)]),
    "third-party balancer": ({LB: "reads-header"}, None, [(b"x-pick", b"2")]),
}


def outcome(d: Decision | None) -> tuple[Any, ...]:
    assert d is not None
    cookie = d.set_cookie.split(";")[0] if d.set_cookie else None
    return d.endpoint, d.canary, cookie, d.samesite_none, "SameSite=None" in (d.set_cookie or "")


#: Each case in each header shape the router takes (a dict holds one value per name).
SHAPES = [(case, form) for case in CASES for form in ("list", "tuple", "dict")
          if form != "dict" or len({k for k, _ in CASES[case][2]}) == len(CASES[case][2])]


@pytest.mark.parametrize("convert", KINDS, ids=["bytearray", "memoryview"])
@pytest.mark.parametrize(("case", "form"), SHAPES)
def test_bytes_like_header_values_route_as_their_bytes(case: str, form: str,
                                                       convert: Convert) -> None:
    # Catches: a bytearray or memoryview value of a header the router reads raising TypeError
    # (a str join of it: the canary header and cookie, the affinity cookie, $http_/$cookie_
    # keys, the User-Agent) or handed to a balancer's RequestContext as is, the server's 500
    # (IngressASGI re-routed after the error to work around it). Read as their bytes, they
    # decide as bytes do. (h11.Headers, the proxy's, only ever hold bytes: see below.)
    main_ann, canary_ann, items = CASES[case]
    facts = {"reads-header": lambda options: ReadsHeader()}
    want_r = pair_world(main_ann, canary_ann, facts)
    got_r = pair_world(main_ann, canary_ann, facts)
    extra: list[tuple[bytes, bytes]] = []
    if case == "affinity cookie":
        first = want_r.route("GET", "a.test", "/", [], "192.0.2.1")
        assert first is not None and first.set_cookie is not None
        extra = [(b"cookie", first.set_cookie.split(";")[0].encode())]
    items = [(b"host", b"a.test"), *items, *extra]
    odd = [(k, convert(v)) for k, v in items]
    shape: Callable[[list[tuple[bytes, Any]]], Any] = {"list": list, "tuple": tuple,
                                                        "dict": dict}[form]
    want_h, got_h = shape(items), shape(odd)
    for _ in range(4):  # first requests (lazy state), then the built fast entries
        want = want_r.route("GET", "a.test", "/", want_h, "192.0.2.1")
        got = got_r.route("GET", "a.test", "/", got_h, "192.0.2.1")
        assert outcome(got) == outcome(want)


def test_the_header_reads_give_text_for_bytes_like_values() -> None:
    # Catches (the functions the router reads through): header_value returned a bytearray or
    # memoryview where text is promised (no join) or raised (a join); RequestContext kept it.
    for convert in KINDS:
        items = [(b"x-a", convert(b"1")), (b"X-A", convert(b"\xe92")), (b"cookie", convert(b"s=1"))]
        assert header_value(items, "x-a", b"x-a") == "1"
        assert header_value(items, "x-a", b"x-a", ", ") == "1, \xe92"
        ctx = RequestContext(headers=items)
        assert ctx.header("x_a") == "1, \xe92" and ctx.cookie("s") == "1"
    # str values stay text; other objects are handed over as they are (as before).
    assert header_value([("x-a", "v")], "x-a", b"x-a") == "v"
    marker = object()
    assert header_value([(b"x-a", marker)], "x-a", b"x-a") is marker  # type: ignore[list-item]


def test_h11_headers_hold_bytes_only() -> None:
    # Why the router's h11.Headers reads (the proxy's headers, the hot path) need no check:
    # h11 makes every name and value bytes, whatever bytes-like object it was given.
    import h11

    for convert in KINDS:
        hd = h11.Request(method="GET", target="/",
                         headers=[(convert(b"Host"), convert(b"a.test")),
                                  (b"X-C", convert(b"always"))]).headers
        assert all(type(x) is bytes for triple in hd._full_items for x in triple)


ASGI_MANIFESTS = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: default}
spec:
  rules:
  - host: a.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: beta
  namespace: default
  annotations:
    nginx.ingress.kubernetes.io/canary: "true"
    nginx.ingress.kubernetes.io/canary-by-header: X-Canary
spec:
  rules:
  - host: a.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: beta, port: {number: 80}}}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: beta, namespace: default}
spec: {ports: [{port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{port: 80}]
endpoints: [{addresses: [10.0.0.1]}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: beta-1, namespace: default, labels: {kubernetes.io/service-name: beta}}
addressType: IPv4
ports: [{port: 80}]
endpoints: [{addresses: [10.0.0.2]}]
"""


@pytest.mark.parametrize("general", [False, True])
@pytest.mark.parametrize("convert", KINDS, ids=["bytearray", "memoryview"])
def test_ingress_asgi_routes_bytes_like_values_once(convert: Convert, general: bool) -> None:
    # Catches: IngressASGI's workaround, a second ``route`` after the router raised on the
    # value (every such request routed twice); the router reads the value itself now.
    seen: list[str] = []

    def backend(name: str) -> Any:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            seen.append(name)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})
        return app

    app = IngressASGI(parse_manifests(ASGI_MANIFESTS),
                      {"default/web": backend("web"), "default/beta": backend("beta")},
                      settings=ProxySettings())
    if general:
        app._names = None  # every request on the general path (``_read_headers``)
    calls: list[object] = []
    route = app.router.route

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[3])
        return route(*args, **kwargs)

    app.router.route = counting  # type: ignore[method-assign]

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        pass

    for value, want in ((b"always", "beta"), (b"never", "web")):
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "GET", "scheme": "http", "path": "/", "raw_path": b"/",
                 "query_string": b"", "root_path": "",
                 "headers": [(b"host", b"a.test"), (b"x-canary", convert(value))],
                 "client": ("192.0.2.1", 1234), "server": ("127.0.0.1", 80)}
        seen.clear()
        calls.clear()
        asyncio.run(app(scope, receive, send))
        assert seen == [want]
        assert len(calls) == 1
