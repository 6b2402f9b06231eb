"""``ProxyServer(router, load_balance=X)`` serves the router the caller holds (H3, session 22).

Given a plain ``Router`` whose ``load_balance`` differed, the server built a new Router from
``router.resources`` and served that copy: the caller's later ``router.update(res)`` (the
documented reload) never reached the server, which went on serving the first table. The copy
also dropped the router's own ``balancers`` (their annotations fell back with a warning), and a
Router subclass was refused. Now the override is set on the caller's router (rebuilt with its
resources, as ``serve --config`` does on a reload), and the server serves that object.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pytest

from ingresslib import Router, parse_manifests
from ingresslib.proxy import ProxyServer

P = "nginx.ingress.kubernetes.io/"


def manifests(*ports: int, annotations: str = "{}") -> str:
    """Ingress web (default backend) -> Service web:80 -> 127.0.0.1 on each of ``ports``."""
    slices = "".join(f"""
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: web-{i}, labels: {{kubernetes.io/service-name: web}}}}
addressType: IPv4
ports: [{{port: {port}}}]
endpoints: [{{addresses: [127.0.0.1]}}]
""" for i, port in enumerate(ports))
    return f"""
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: web, annotations: {annotations}}}
spec:
  defaultBackend: {{service: {{name: web, port: {{number: 80}}}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec: {{ports: [{{port: 80}}]}}
""" + slices


class Named:
    """An upstream answering every request ``200`` with its own name as the body."""

    def __init__(self, name: bytes) -> None:
        self.name = name
        self.server: asyncio.Server | None = None

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            await r.readuntil(b"\r\n\r\n")
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(self.name),
                                                                        self.name))
            await w.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            w.close()

    async def __aenter__(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


async def body_of(server: ProxyServer) -> bytes:
    port = int(server.urls[0].rsplit(":", 1)[1])
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        w.write(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        out = await asyncio.wait_for(r.read(), 10)
    finally:
        w.close()
    head, _, body = out.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), out
    return body


@pytest.mark.asyncio
async def test_load_balance_override_serves_the_callers_router_update() -> None:
    async with Named(b"first") as first, Named(b"second") as second:
        router = Router(parse_manifests(manifests(first)))
        server = ProxyServer(router, load_balance="ewma")
        await server.start(("127.0.0.1", 0))
        async with server:
            assert await body_of(server) == b"first"
            router.update(parse_manifests(manifests(second)))   # the documented reload
            assert await body_of(server) == b"second"            # was b"first": a copy served
            assert server.router is router and router.load_balance == "ewma"


@pytest.mark.asyncio
async def test_load_balance_override_follows_a_route_change_too() -> None:
    # A change of the Ingresses (a full rebuild, not an endpoint-only update) keeps the
    # override: it is the router's own default now.
    router = Router(parse_manifests(manifests(8081)))
    server = ProxyServer(router, load_balance="ewma")
    router.update(parse_manifests(manifests(8082, annotations="{a: b}")))
    assert router.load_balance == "ewma"
    d = server.router.route("GET", "a.test", "/")
    assert d is not None and d.endpoint == ("127.0.0.1", 8082)


class Last:
    """A third-party balancer: the last endpoint not tried."""

    uses_request = False

    def pick(self, request: object, backend: Any, tried: Collection[tuple[str, int]]) -> int | None:
        for i in reversed(range(len(backend.endpoints))):
            if backend.endpoints[i] not in tried:
                return i
        return None

    def observe(self, endpoint: object, seconds: float, ok: bool) -> None:
        pass


@pytest.mark.asyncio
async def test_load_balance_override_keeps_the_routers_own_balancers() -> None:
    # The copy was built without the router's ``balancers``: the annotation naming one of them
    # fell back to the default with a warning.
    res = parse_manifests(manifests(8081, 8082, 8083, annotations=f"{{{P}load-balance: last}}"))
    router = Router(res, balancers={"last": lambda options: Last()})
    server = ProxyServer(router, load_balance="ewma")
    assert not [w for w in server.router.warnings if "load-balance" in w.field]
    picks = {server.router.route("GET", "a.test", "/").endpoint for _ in range(5)}
    assert picks == {("127.0.0.1", 8083)}


@pytest.mark.asyncio
async def test_load_balance_override_takes_effect_on_the_callers_router() -> None:
    # Set, and the routes rebuilt with it (not the attribute alone): after a failed try on one
    # of two endpoints, ewma keeps to the other where round-robin alternates.
    router = Router(parse_manifests(manifests(8081, 8082)), seed=1)
    ProxyServer(router, load_balance="ewma")
    d = router.route("GET", "a.test", "/")
    assert d is not None and d.endpoint is not None
    router.observe(d, d.endpoint, 0.5, False)
    picks = [router.route("GET", "a.test", "/") for _ in range(4)]
    assert {p.endpoint for p in picks if p is not None} == {
        ("127.0.0.1", 8082 if d.endpoint[1] == 8081 else 8081)}


class Mine(Router):
    calls = 0

    def route(self, *args: Any, **kw: Any) -> Any:
        type(self).calls += 1
        return super().route(*args, **kw)


@pytest.mark.asyncio
async def test_load_balance_override_keeps_a_router_subclass() -> None:
    # Refused before (a rebuilt plain Router would have dropped its own ``route``); set on
    # the subclass itself, nothing is dropped.
    mine = Mine(parse_manifests(manifests(8081)))
    server = ProxyServer(mine, load_balance="ewma")
    assert server.router is mine and mine.load_balance == "ewma"
    before = Mine.calls
    assert server.router.route("GET", "a.test", "/") is not None
    assert Mine.calls == before + 1


@pytest.mark.asyncio
async def test_a_refused_constructor_leaves_the_router_as_it_was() -> None:
    router = Router(parse_manifests(manifests(8081)))
    state = router.table
    with pytest.raises(ValueError, match="proxy_read_timeout"):
        ProxyServer(router, load_balance="ewma", proxy_read_timeout=-1)
    with pytest.raises(ValueError, match="load_balance"):
        ProxyServer(router, load_balance="least_conn")
    assert router.load_balance == "round_robin" and router.table is state


def test_no_event_loop_leaves_the_router_as_it_was() -> None:
    router = Router(parse_manifests(manifests(8081)))
    with pytest.raises(RuntimeError, match="event loop"):
        ProxyServer(router, load_balance="ewma")
    assert router.load_balance == "round_robin"


# --- the ProxySettings keyword arguments over ``settings=`` ------------------------------------


@pytest.mark.asyncio
async def test_header_buffers_keyword_over_settings_derives_its_limits() -> None:
    # The limits ``settings`` derived from its own large_client_header_buffers were copied by
    # ``replace``: the keyword's value was shown and not applied.
    from ingresslib.proxy import ProxySettings

    base = ProxySettings(large_client_header_buffers="4 16k")
    s = ProxyServer(Router(parse_manifests("")), settings=base,
                    large_client_header_buffers="4 32k").settings
    assert (s.large_client_header_buffers, s.max_request_line, s.max_header_line,
            s.max_headers_size) == ("4 32k", 32768, 32768, 131072)
    s = ProxyServer(Router(parse_manifests("")), settings=base,
                    large_client_header_buffers="4 8k").settings
    assert (s.max_request_line, s.max_header_line, s.max_headers_size) == (8192, 8192, 32768)


@pytest.mark.asyncio
async def test_header_limits_given_explicitly_still_win() -> None:
    from ingresslib.proxy import ProxySettings

    router = Router(parse_manifests(""))
    explicit = ProxySettings(large_client_header_buffers="4 16k", max_header_line=4096)
    s = ProxyServer(router, settings=explicit, large_client_header_buffers="4 32k").settings
    assert (s.max_request_line, s.max_header_line, s.max_headers_size) == (8192, 4096, 32768)
    s = ProxyServer(router, settings=ProxySettings(large_client_header_buffers="4 16k"),
                    large_client_header_buffers="4 32k", max_header_line=1024).settings
    assert (s.max_request_line, s.max_header_line, s.max_headers_size) == (16384, 1024, 65536)
    # Without settings=, as before: the keyword alone derives them.
    s = ProxyServer(router, large_client_header_buffers="2 1k").settings
    assert (s.max_request_line, s.max_header_line, s.max_headers_size) == (1024, 1024, 2048)


@pytest.mark.asyncio
async def test_load_balance_override_never_undoes_an_update_made_meanwhile() -> None:
    # Seams review (W1): the override read ``router.resources`` and then called
    # ``router.update`` with them, outside the router's lock; a watcher thread's update landing
    # in between was put back to the older resources (new.test no longer routed).
    import sys
    sys.path.insert(0, str(Path(__file__).parent))
    from _explain_helpers import WEB, prod_ingress

    old = parse_manifests(prod_ingress("web", "old.test", "{}") + WEB)
    new = parse_manifests(prod_ingress("web", "new.test", "{}") + WEB)

    class Watched(Router):
        lands = True

        @property
        def resources(self) -> Any:
            got = super().resources
            if self.lands:  # the other thread's update, just after this read
                self.lands = False
                Router.update(self, new)
            return got

    r = Watched(old)
    ProxyServer(r, load_balance="ewma")
    if r.lands:  # never read: the watcher's update lands after the constructor instead
        r.lands = False
        Router.update(r, new)
    assert r.route("GET", "new.test", "/") is not None
    assert r.route("GET", "old.test", "/") is None
    assert r.load_balance == "ewma"
