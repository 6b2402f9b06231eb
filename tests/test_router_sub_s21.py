"""A Router subclass's own ``route`` (session 21, F21r).

Every published state put the state's compiled ``FastRoute.route`` on the instance, which
shadows any method of the class: a subclass overriding ``route`` was never called (silently),
not by a direct call, not by the proxy, not by IngressASGI. Now ``_publish`` leaves the
instance alone when the instance's class has a ``route`` of its own; the subclass's
``super().route(...)`` reaches the current state's fast path (``Router.route`` calls the
published ``FastRoute.route``), across updates. A plain Router keeps the instance attribute
(no per-request check): ``router.route = f`` lasts until the next update (documented in
docs/router.md, "Your own code around ``route``").
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import ingresslib
from ingresslib import parse_manifests
from ingresslib._asgi import IngressASGI
from ingresslib._router import Decision, Router

from _asgi_call import asgi_exchange
from _proxy_harness import WEB_SERVICE_YAML, ProxyPair, ingress_yaml, status_of


def world(name: str = "site", host: str = "shop.test", path: str = "/") -> str:
    return ingress_yaml(name, host, path=path) + WEB_SERVICE_YAML


class Counting(Router):
    """Counts the requests it routes and what they asked; the routing is the Router's."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        self.calls: list[tuple[str, str, str, str | None]] = []
        super().__init__(*args, **kw)

    def route(self, method: str, host: str, path: str, headers: Any = (),
              client_ip: str | None = None, *, query: str | None = None) -> Decision | None:
        self.calls.append((method, host, path, query))
        return super().route(method, host, path, headers, client_ip, query=query)


def test_a_subclass_route_is_called_and_reaches_the_current_state() -> None:
    r = Counting(parse_manifests(world("site")))
    assert "route" not in vars(r)  # nothing shadows the class's method
    d = r.route("GET", "shop.test", "/a")
    assert d is not None and d.match.ingress == "default/site"
    assert d.endpoint == ("10.0.0.1", 80)
    assert r.calls == [("GET", "shop.test", "/a", None)]
    # A new table (other Ingress): super().route reaches the new state, the override stays.
    r.update(parse_manifests(world("site2")))
    d = r.route("GET", "shop.test", "/b", query="k=v")
    assert d is not None and d.match.ingress == "default/site2"
    assert r.calls[-1] == ("GET", "shop.test", "/b", "k=v") and len(r.calls) == 2
    # An endpoint-only update (table kept, incremental path): the same.
    r.update(parse_manifests(world("site2").replace("10.0.0.1", "10.0.0.9")))
    d = r.route("GET", "shop.test", "/c")
    assert d is not None and d.endpoint == ("10.0.0.9", 80)
    assert len(r.calls) == 3 and "route" not in vars(r)
    # No rule matches: None, still through the override.
    assert r.route("GET", "other.test", "/") is None and len(r.calls) == 4


class Refusing(Router):
    """Answers no route for /private (its own decision), the Router's otherwise."""

    def route(self, method: str, host: str, path: str, headers: Any = (),
              client_ip: str | None = None, *, query: str | None = None) -> Decision | None:
        if path.startswith("/private"):
            return None
        return super().route(method, host, path, headers, client_ip, query=query)


class Deeper(Refusing):
    """A subclass of a subclass: its own override, then its parent's, then the Router's."""

    seen = 0

    def route(self, method: str, host: str, path: str, headers: Any = (),
              client_ip: str | None = None, *, query: str | None = None) -> Decision | None:
        type(self).seen += 1
        return super().route(method, host, path, headers, client_ip, query=query)


def test_an_override_decides_and_the_chain_of_supers_reaches_the_router() -> None:
    r = Deeper(parse_manifests(world()))
    assert r.route("GET", "shop.test", "/private/x") is None
    d = r.route("GET", "shop.test", "/public")
    assert d is not None and d.endpoint == ("10.0.0.1", 80)
    assert Deeper.seen == 2
    r.update(parse_manifests(world("site2")))
    assert r.route("GET", "shop.test", "/private") is None
    assert Deeper.seen == 3


def test_round_robin_state_is_shared_between_super_route_and_the_class_path() -> None:
    # The subclass's super().route and Router.route(r, ...) are the one published state: one
    # rotation over both endpoints, carried over an update that keeps the table.
    one = "{addresses: [10.0.0.1], conditions: {ready: true}}"
    two = world().replace(one, one + ", " + one.replace("10.0.0.1", "10.0.0.2"))
    r = Counting(parse_manifests(two))

    def three() -> list[Any]:
        return [d.endpoint for d in (r.route("GET", "shop.test", "/"),
                                     Router.route(r, "GET", "shop.test", "/"),
                                     r.route("GET", "shop.test", "/")) if d is not None]

    assert three() == [("10.0.0.1", 80), ("10.0.0.2", 80), ("10.0.0.1", 80)]
    assert len(r.calls) == 2  # Router.route(r, ...) is the Router's own, not the override
    # A Service-only change (same endpoints, same table): the rotation carries on.
    labelled = two.replace("metadata: {name: web,", "metadata: {name: web, labels: {a: b},")
    assert labelled != two
    r.update(parse_manifests(labelled))
    assert three() == [("10.0.0.2", 80), ("10.0.0.1", 80), ("10.0.0.2", 80)]
    assert len(r.calls) == 4


def request(p: ProxyPair, path: str) -> int:
    return status_of(p.send(f"GET {path} HTTP/1.1\r\nHost: shop.test\r\n\r\n".encode()))


def test_the_proxy_calls_a_subclass_route_across_updates() -> None:
    r = Counting(parse_manifests(world()))
    p = ProxyPair(router=r)
    assert request(p, "/a") == 200
    assert r.calls == [("GET", "shop.test", "/a", None)]
    assert p.upstreams[-1].endpoint == ("10.0.0.1", 80)  # the Router's endpoint
    assert p.upstreams[-1].requests[-1][0].target == b"/a"
    r.update(parse_manifests(world("site2", path="/b")))
    assert request(p, "/b") == 200
    assert request(p, "/a") == 404  # the new table: /a matches nothing now
    assert [c[2] for c in r.calls] == ["/a", "/b", "/a"]


def test_the_proxy_answers_404_where_the_override_routes_nothing() -> None:
    p = ProxyPair(router=Refusing(parse_manifests(world())))
    assert request(p, "/private") == 404
    assert request(p, "/open") == 200


async def leaf(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


def get(app: IngressASGI, path: str, query: bytes = b"") -> int:
    sent = asgi_exchange(app, "shop.test", path, query)
    return int(sent[0]["status"])


def test_ingress_asgi_calls_a_subclass_route_across_updates() -> None:
    r = Counting(parse_manifests(world()))
    app = IngressASGI(r, {"default/web": leaf})
    assert app.router is r
    assert get(app, "/a", b"x=1") == 200
    assert r.calls == [("GET", "shop.test", "/a", "x=1")]
    app.update(parse_manifests(world("site2", path="/b")))
    assert get(app, "/b") == 200
    assert get(app, "/a") == 404
    assert [c[2] for c in r.calls] == ["/a", "/b", "/a"]


def test_a_plain_router_keeps_its_compiled_path_on_the_instance() -> None:
    # No per-request check: the instance attribute is the state's FastRoute.route, replaced
    # by each update; Router.route(router, ...) (the class's) answers the same.
    r = Router(parse_manifests(world()))
    first = vars(r)["route"]
    assert type(first.__self__).__name__ == "FastRoute"
    r.update(parse_manifests(world("site2")))
    assert vars(r)["route"] is not first
    d = Router.route(r, "GET", "shop.test", "/")
    assert d is not None and d.match.ingress == "default/site2"


def test_a_subclass_without_its_own_route_keeps_the_fast_path() -> None:
    class Built(Router):
        builds = 0

        def _build(self, *args: Any, **kw: Any) -> Any:
            type(self).builds += 1
            return super()._build(*args, **kw)

    r = Built(parse_manifests(world()))
    assert type(vars(r)["route"].__self__).__name__ == "FastRoute"
    assert Built.builds == 1


def test_a_route_put_on_the_class_later_takes_over_at_the_next_update() -> None:
    # A class patched after its instances were built (unittest.mock.patch.object does this):
    # the next update must not leave the previous state's path shadowing the new method
    # (that would route by the old table, silently).
    class Later(Router):
        pass

    r = Later(parse_manifests(world()))
    seen: list[str] = []

    def route(self: Router, method: str, host: str, path: str, headers: Any = (),
              client_ip: str | None = None, *, query: str | None = None) -> Decision | None:
        seen.append(path)
        return Router.route(self, method, host, path, headers, client_ip, query=query)

    Later.route = route  # type: ignore[method-assign]
    try:
        r.update(parse_manifests(world("site2")))
        d = r.route("GET", "shop.test", "/x")
        assert seen == ["/x"] and d is not None and d.match.ingress == "default/site2"
    finally:
        del Later.route
    r.update(parse_manifests(world("site3")))
    assert type(vars(r)["route"].__self__).__name__ == "FastRoute"  # the fast path is back
    d = r.route("GET", "shop.test", "/y")
    assert seen == ["/x"] and d is not None and d.match.ingress == "default/site3"


def test_an_assigned_route_lasts_until_the_next_update_as_documented() -> None:
    # docs/router.md: assignment to a plain Router's route is replaced by the next update
    # (a function wrapping the old ``router.route`` would otherwise keep the old table).
    r = Router(parse_manifests(world()))
    seen: list[str] = []
    old = r.route

    def traced(method: str, host: str, path: str, *a: Any, **kw: Any) -> Decision | None:
        seen.append(path)
        return old(method, host, path, *a, **kw)

    r.route = traced  # type: ignore[method-assign]
    r.route("GET", "shop.test", "/x")
    r.update(parse_manifests(world("site2")))
    d = r.route("GET", "shop.test", "/y")
    assert seen == ["/x"] and d is not None and d.match.ingress == "default/site2"


def test_the_public_name_is_the_same_class() -> None:
    assert ingresslib.Router is Router
    r = type("Sub", (ingresslib.Router,), {
        "route": lambda self, *a, **kw: ("mine", ingresslib.Router.route(self, *a, **kw))})(
        parse_manifests(world()))
    tag, d = r.route("GET", "shop.test", "/")
    assert tag == "mine" and d is not None and d.endpoint == ("10.0.0.1", 80)
