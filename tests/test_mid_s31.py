"""Session 31, helper ``mid``: two items a review left.

* ``Router.repick`` (the endpoint chosen again once a body read whole first is in) picked with
  the rule side's *current* balancer: a ``load-balance`` change between the head and the body's
  end had the request picked by the new kind (round-robin at the head, EWMA at the repick).
  ingress-nginx's balancer.lua ``sync_backend`` puts a new instance in place of a backend whose
  implementation changed, and ``balance()`` asks the instance ``rewrite()`` cached in
  ``ngx.ctx.balancer`` (``get_balancer``): the request is picked by the old kind. Now repick
  does the same (``test_fix_*``, each failed before).
* ``ClientConnection.response_buffer`` (proxy-buffering's read-ahead) kept the previous proxied
  response's value through a local answer (404, redirect, 413...): the driver, whose client's
  write buffer filled, then "read ahead" for that answer (``_Downstream.ahead``), charging the
  write buffer to the server's ``response_buffering_budget``, where a fresh connection does
  neither. Reset where a local answer starts (``_local_response``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ingresslib import Router, parse_manifests
from ingresslib._balance import Ewma, RoundRobin
from ingresslib.proxy import ProxySettings
from tests._proxy_harness import ProxyPair, Route, ingress_yaml, status_of
from tests._server_helpers import Client, StubRouter
from tests._upstream_helpers import TrackedUpstream, start_proxy
from tests.test_request_buffering_s30 import ON, P, ep, service

LB = P + "load-balance"


# ------------------------------------------------------------ 1: repick and load-balance
class _Fixed:
    """A balancer that always picks one place (0: the first endpoint, -1: the last), counting
    its picks."""

    def __init__(self, place: int) -> None:
        self.place = place
        self.picks = 0

    def pick(self, request: Any, backend: Any, tried: Any) -> int:
        self.picks += 1
        return self.place % len(backend.endpoints)

    def observe(self, endpoint: Any, seconds: float, ok: bool) -> None:
        pass


class _Last(_Fixed):
    """Another implementation (ingress-nginx: another balancer module)."""


def _two_kinds() -> tuple[dict[str, Any], dict[str, list[_Fixed]]]:
    made: dict[str, list[_Fixed]] = {"first": [], "last": []}

    def first(options: Any) -> _Fixed:
        made["first"].append(_Fixed(0))
        return made["first"][-1]

    def last(options: Any) -> _Fixed:
        made["last"].append(_Last(-1))
        return made["last"][-1]

    return {"first": first, "last": last}, made


def _res(ann: dict[str, str] | None = None, ips: tuple[int, ...] = (1, 2, 3)) -> Any:
    return parse_manifests(ingress_yaml("up", "a.test", {**ON, **(ann or {})})
                           + service("web", list(ips)))


def test_fix_configmap_load_balance_change_repicks_with_the_heads_balancer() -> None:
    factories, made = _two_kinds()
    router = Router(_res(), load_balance="first", balancers=factories)
    d = router.route("POST", "a.test", "/up")
    assert d is not None and d.endpoint == ep(1)
    router._set_load_balance("last")  # (serve --config's ConfigMap edit)
    assert router.route("GET", "a.test", "/up").endpoint == ep(3)  # type: ignore[union-attr]
    old = made["first"][0]
    picks = old.picks
    d2 = router.repick(d, "POST", "a.test", "/up")
    # Picked by the old kind, at the repick (not just the head's answer kept): before, the
    # new balancer picked 10.0.0.3.
    assert d2.endpoint == ep(1) and old.picks == picks + 1
    assert made["last"][0].picks == 1  # only the GET above


def test_fix_round_robin_head_then_ewma_keeps_the_heads_turn() -> None:
    # The head's round-robin pick took the request's turn; the old instance would take
    # another at balance(), which here is the head's (as when nothing changed).
    router = Router(_res())
    d = router.route("POST", "a.test", "/up")
    assert d is not None and type(d.handle.balancer) is RoundRobin
    router._set_load_balance("ewma")
    now = router.route("GET", "a.test", "/up")
    assert now is not None and type(now.handle.balancer) is Ewma
    assert router.repick(d, "POST", "a.test", "/up") is d  # before: EWMA's pick


def test_fix_ewma_head_then_round_robin_is_picked_by_ewma_from_the_heads_endpoints() -> None:
    router = Router(_res(ips=(1, 2)), load_balance="ewma")
    d = router.route("POST", "a.test", "/up")
    assert d is not None and d.endpoint is not None
    # The kind changes and the endpoints with it: EWMA's instance still holds 10.0.0.1-2.
    router._set_load_balance("round_robin", _res(ips=(7,)))
    assert router.route("GET", "a.test", "/up").endpoint == ep(7)  # type: ignore[union-attr]
    for _ in range(5):
        d2 = router.repick(d, "POST", "a.test", "/up")
        assert d2.handle is d.handle and d2.endpoint in (ep(1), ep(2))  # before: 10.0.0.7


def test_canary_ingress_load_balance_change_keeps_the_heads_decision() -> None:
    # Guard (passed before): a canary Ingress's annotation rebuilds the rule too, which keeps
    # the head's decision (its side, its balancer) whatever the new kind.
    def res(kind: str) -> Any:
        canary = {P + "canary": "true", P + "canary-weight": "100", LB: kind}
        return parse_manifests(ingress_yaml("up", "a.test", ON)
                               + ingress_yaml("up-c", "a.test", {**ON, **canary}, service="c")
                               + service("web", [1, 2]) + service("c", [5, 6]))

    router = Router(res("ewma"))
    d = router.route("POST", "a.test", "/up")
    assert d is not None and d.canary and d.endpoint in (ep(5), ep(6))
    router.update(res("round_robin"))
    assert router.repick(d, "POST", "a.test", "/up") is d


def test_same_kind_endpoint_change_is_still_picked_from_the_current_endpoints() -> None:
    # Guard (passed before): the balancer kept (balancer:sync(backend) in ingress-nginx, the
    # instance updated in place) - the repick sees the new endpoints.
    router = Router(_res(ips=(1, 2)), load_balance="ewma")
    d = router.route("POST", "a.test", "/up")
    assert d is not None
    router.update(_res(ips=(7,)))
    assert router.repick(d, "POST", "a.test", "/up").endpoint == ep(7)


def test_annotation_change_rebuilds_the_rule_and_keeps_the_heads_decision() -> None:
    # Guard (passed before): the annotation is the rule's, so the rule is rebuilt (a reload
    # in ingress-nginx, its old worker finishing the request): the head's decision stays.
    factories, made = _two_kinds()
    router = Router(_res({LB: "first"}), balancers=factories)
    d = router.route("POST", "a.test", "/up")
    assert d is not None
    router.update(_res({LB: "last"}))
    assert router.repick(d, "POST", "a.test", "/up") is d
    assert made["last"][0].picks == 0


# ------------------------------------------------------------ 2: response_buffer
BUFFERED = {P + "proxy-buffering": "on"}
GET = b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n"
MISS = b"GET /x HTTP/1.1\r\nHost: other.test\r\n\r\n"


def test_fix_core_local_answer_after_a_read_ahead_response_reads_nothing_ahead() -> None:
    p = ProxyPair([Route(host="a.test", annotations=dict(BUFFERED))])
    assert status_of(p.send(GET)) == 200
    assert p.conn.response_buffer == 8 * 1024 * 1024
    assert status_of(p.send(MISS)) == 404
    assert p.conn.response_buffer == 0  # before: 8 MiB, the 200's
    assert status_of(p.send(GET)) == 200  # the next proxied response: its own again
    assert p.conn.response_buffer == 8 * 1024 * 1024


class _Ok(TrackedUpstream):
    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.writers.append(w)
        try:
            while True:
                await r.readuntil(b"\r\n\r\n")
                w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await w.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass


@pytest.mark.asyncio
async def test_fix_server_local_answer_held_by_a_full_client_is_not_read_ahead() -> None:
    up = await _Ok().start()
    server, port = await start_proxy(StubRouter([("127.0.0.1", up.port)], known="a.test"),
                                     settings=ProxySettings(proxy_buffering="on"))
    clients: list[Client] = []
    try:
        states = []
        for first in (True, False):  # after a read-ahead response, then on a fresh connection
            c = await Client.open(port)
            clients.append(c)
            if first:
                assert (await c.get("a.test")).status == 200
            resp = await c.get("other.test")
            assert resp.status == 404
            down = next(d for d in server.connections if d.transport is not None
                        and d.transport.get_extra_info("peername")
                        == c.writer.get_extra_info("sockname"))
            # The client stops taking our bytes (asyncio's pause_writing) while the 404 is
            # its connection's response: the driver must not read ahead for it.
            down.pause_writing()
            states.append((down.ahead, down.held, server.ahead_held, resp.body,
                           {k: v for k, v in resp.headers.items() if k != "date"}))
            down.resume_writing()
        assert states[0] == states[1]  # before: (True, ...) after the 200: read ahead
        assert states[0][0] is False and server.ahead_held == 0
    finally:
        for c in clients:
            await c.close()
        await server.shutdown(1)
        await up.stop()
        await asyncio.sleep(0.05)  # the upstream's handlers see their connections aborted
    assert not server.connections
