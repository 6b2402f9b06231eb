"""Second review of session 16's router, access-control and TLS-listener changes.

Each targeted test names the defect it catches (checked against the code before this review);
those marked "Guard" answer a review question (they passed before too) and keep the answer.
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest
import trustme
from hypothesis import example, given, settings
from hypothesis import strategies as st

from ingresslib._load import parse_manifests
from ingresslib._models import ServicePort
from ingresslib._resources import Resources
from ingresslib._router import Router
from ingresslib._tls import CertificateStore
from ingresslib.proxy import ProxySettings
from ingresslib.proxy._basicauth import BasicAuth, decode_credentials
from ingresslib.proxy._headers import basic_auth_user
from ingresslib.proxy._server import ProxyServer

from _router_helpers import P, canary, ingress, resources, service, slice_
from tests.test_access_s16 import status
from tests.test_router_s16 import ANN_FIELD, LB, boom, boom2, failed
from tests.test_tls import _ingress, _pems, _secret
from tests.test_tls_plain_s16 import (  # noqa: F401 (ca, env: fixtures)
    _PAGE,
    _Env,
    _exchange,
    _settled,
    _split,
    ca,
    env,
)
from tests.test_tls_s14 import _client_hello, _first_record, _records
from _budget import examples

FACTORIES = {"boom": boom, "boom2": boom2}


# --- 1. the fallback of a factory that fails, on a backend two Ingresses share ------------


def two_on_one_service(first: dict[str, str], second: dict[str, str]) -> Resources:
    return resources(ingress("one", [("a.test", "/", "Prefix", "web", "http")], first),
                     ingress("two", [("b.test", "/", "Prefix", "web", "http")], second),
                     service("web", [ServicePort(80, "http", 8080)]),
                     slice_("web-1", "web", ["10.0.0.1"], [("http", 8080)]))


def said(ingress_name: str, using: str, kind: str = "boom",
         err: str = "cannot start") -> tuple[str, str, str]:
    return (f"Ingress default/{ingress_name}", ANN_FIELD,
            f"balancer {kind!r} failed to start ({err}); using {using}")


def test_every_ingress_sharing_a_failed_balancer_is_told() -> None:
    # Catches: Ingresses with equal balancer annotations on one Service share the backend's
    # balancer, and only the Ingress whose rule built it was warned: the second Ingress's
    # load-balance annotation was ignored (its requests served by the fallback) without a
    # word, the same annotation on its own Service warned.
    for second in ({LB: "boom"}, {LB: "boom", P + "proxy-body-size": "1m"}):
        r = Router(two_on_one_service({LB: "boom"}, second), load_balance="ewma",
                   balancers=FACTORIES)
        assert failed(r) == [said("one", "ewma"), said("two", "ewma")]


def test_a_shared_failed_default_is_said_for_the_router_and_the_annotation() -> None:
    # Catches: with a failing default kind, an Ingress naming it in its annotation and one
    # without the annotation share the balancer; whichever came first decided the only
    # warning: on the annotation (the Router's load_balance unmentioned) or on the Router
    # (the annotation unmentioned), so the warnings depended on the Ingresses' order.
    for names in (("one", "two"), ("two", "one")):
        anns = {names[0]: {LB: "boom"}, names[1]: {}}
        r = Router(two_on_one_service(anns["one"], anns["two"]), load_balance="boom",
                   balancers=FACTORIES)
        msg = "balancer 'boom' failed to start (cannot start); using round_robin"
        assert sorted(failed(r)) == sorted([said(names[0], "round_robin"),
                                            ("Router", "load_balance", msg)])


# Random histories: the Router's default changes too, Ingresses share Services, and balancer
# annotations (a failing factory, a failing default, affinity and hashing whose kind never
# fails) mix.
SERVICES = ("a", "b")
LBS = [{}, {LB: "boom"}, {LB: "boom2"}, {LB: "ewma"}, {LB: "nope"},
       {P + "affinity": "cookie"}, {P + "upstream-hash-by": "$request_uri"},
       {P + "upstream-hash-by": " "}, {LB: "boom", P + "proxy-body-size": "1m"}]
DEFAULTS = ["round_robin", "ewma", "boom", "boom2", "missing"]
RULE = st.tuples(st.sampled_from(["x.test", "y.test"]), st.sampled_from(["/", "/p"]),
                 st.sampled_from(SERVICES))


@st.composite
def worlds(draw: Any) -> tuple[str, Resources]:
    objs: list[object] = []
    for i in range(draw(st.integers(1, 3))):
        rules = [(h, p, "Prefix", s, "http") for h, p, s in draw(st.lists(RULE, min_size=1,
                                                                          max_size=2))]
        objs.append(ingress(f"ing{i}", rules, draw(st.sampled_from(LBS)), age=i))
    if draw(st.booleans()):
        first = objs[0].spec.rules[0]  # type: ignore[attr-defined]
        objs.append(canary("can", first.host, first.paths[0].path,
                           draw(st.sampled_from(SERVICES)), "http",
                           {P + "canary-weight": "50", **draw(st.sampled_from(LBS))}))
    for name in SERVICES:
        objs += [service(name, [ServicePort(80, "http", 8080)]),
                 slice_(f"{name}-1", name, draw(st.sampled_from([["10.0.0.1"],
                                                                 ["10.0.0.1", "10.0.0.2"]])),
                        [("http", 8080)])]
    return draw(st.sampled_from(DEFAULTS)), resources(*objs)


def expected_failures(r: Router) -> set[tuple[str, str]]:
    """(object, field) of every warning a failing factory must give: each served Ingress
    whose balancer kind is a failing one is told on its annotation (naming the kind) or,
    without one, on the Router's load_balance."""
    default = r.load_balance if r.load_balance in (*FACTORIES, "ewma", "round_robin") \
        else "round_robin"
    out: set[tuple[str, str]] = set()
    sides = [(m, False, m.annotations) for m in r.table.routes]
    sides += [(m.canary, True, m.annotations) for m in r.table.routes
              if m.canary is not None and m.canary.ingress_object is not None]
    for m, is_canary, main_ann in sides:
        ann = m.annotations
        if P + "affinity" in ann or (ann.get(P + "upstream-hash-by") or "").strip():
            continue
        if is_canary and P + "affinity" in main_ann:
            continue  # the canary side takes the main rule's cookie affinity
        raw = ann.get(LB)
        kind = raw if raw in (*FACTORIES, "ewma", "round_robin") else default
        if kind in FACTORIES:
            out.add((f"Ingress {m.ingress}", ANN_FIELD) if raw == kind
                    else ("Router", "load_balance"))
            if kind != default and default in FACTORIES:
                out.add(("Router", "load_balance"))  # the default, tried in its place
    return out


@settings(max_examples=120, deadline=None)
@given(worlds(), st.lists(worlds(), min_size=1, max_size=4))
def test_fallback_warnings_after_any_history_are_a_fresh_routers(
        start: tuple[str, Resources], steps: list[tuple[str, Resources]]) -> None:
    # Incremental (a), full rebuilds carrying the state over (b) and a Router built from
    # scratch: the same warnings and balancer kinds, each user of a fallback told.
    default, res = start
    a = Router(res, seed=7, load_balance=default, balancers=FACTORIES)
    b = Router(res, seed=7, load_balance=default, balancers=FACTORIES)
    b._incremental = False
    for step in [None, *steps]:
        if step is not None:
            default, res = step
            a.load_balance = b.load_balance = default
            a.update(res)
            b.update(res)
        fresh = Router(res, seed=7, load_balance=default, balancers=FACTORIES)
        assert a.warnings == b.warnings == fresh.warnings
        assert {(o, f) for o, f, _ in failed(fresh)} == expected_failures(fresh)
        for m, f in zip(a.table.routes, fresh.table.routes):
            ra, fr = a._state.routes[m.route_id], fresh._state.routes[f.route_id]
            assert type(ra.main.balancer) is type(fr.main.balancer)
            assert (ra.canary is None) == (fr.canary is None)
            if ra.canary is not None and fr.canary is not None:
                assert type(ra.canary.balancer) is type(fr.canary.balancer)


# --- 2. access control --------------------------------------------------------------------------


def test_configmap_lists_keep_a_mapped_entry_as_ipv6() -> None:
    # Guard: the ConfigMap's lists go to nginx as written ("allow ::ffff:192.0.2.7;" is an
    # IPv6 rule), only the annotations go through Go's String(). nginx checks an IPv4 client,
    # and an IPv4-mapped one when IPv4 rules exist, against the IPv4 rules.
    allow = ProxySettings(whitelist_source_range=("::ffff:192.0.2.7",))
    assert status({}, settings=allow) == 403  # the IPv4 client meets "deny all" only
    assert status({}, peer="::ffff:192.0.2.7", settings=allow) == 403
    assert status({}, peer="2001:db8::1", settings=allow) == 403
    block = ProxySettings(block_cidrs=("::ffff:192.0.2.7",))
    assert status({}, settings=block) == 200  # no IPv4 rule: the IPv4 client passes
    assert status({}, peer="::ffff:192.0.2.7", settings=block) == 403  # IPv6 rules decide
    # The annotation's entry, by contrast, is an IPv4 rule (test_access_s16).
    assert status({P + "denylist-source-range": "::ffff:192.0.2.7"}, settings=block) == 403


PIECES = st.one_of(st.binary(max_size=10), st.binary(max_size=9).map(base64.b64encode),
                   st.sampled_from([b"Basic ", b"bAsIc  ", b"Basic", b"=", b"==", b":", b" ",
                                    b"\t", b"YQ", b"OmI"]))


@settings(max_examples=examples(), deadline=None)
@given(st.lists(PIECES, max_size=5).map(b"".join))
@example(b"Basic YTpi=garbage")
@example(b"Basic OmI=")
@example(b"basic   YWxpY2U6cHc")
def test_the_logged_user_is_the_user_basic_auth_checks(value: bytes) -> None:
    # Guard: the access log's $remote_user (``basic_auth_user``, the core's record) and the
    # credentials ``BasicAuth`` checks (``decode_credentials``) are two readings of nginx's
    # ngx_http_auth_basic_user: on any value a parser hands over (no blanks around it) they
    # name the same user, or both none.
    value = value.strip(b" \t")
    got = decode_credentials(value)
    assert basic_auth_user(value) == (None if got is None else got[0].decode("latin-1"))


def test_the_verdict_cache_keeps_each_spelling_to_its_own_verdict() -> None:
    # Guard: verdicts are cached per Authorization value; spellings nginx decodes alike
    # (padding, text after the first '=', the scheme's case and spaces) each get the verdict
    # of what they decode to, whatever was asked first, and a wrong password never borrows
    # a right one's.
    res = parse_manifests("""
apiVersion: v1
kind: Secret
metadata: {name: users, namespace: default}
stringData: {auth: "alice:{PLAIN}pw\\n"}
""")
    basic = BasicAuth("r", "default", "users", False, lambda: res.secrets, None, "here")
    enc = base64.b64encode(b"alice:pw")  # YWxpY2U6cHc=
    wrong = base64.b64encode(b"alice:px")
    spellings = [b"Basic " + enc, b"Basic " + enc.rstrip(b"="), b"basic   " + enc + b"==x",
                 b"BASIC " + enc.rstrip(b"=") + b"=" + wrong]
    for order in (spellings, spellings[::-1]):
        basic._load(res.secrets)  # a fresh cache
        for _ in range(2):
            assert [basic.check(v) for v in order] == [(0, "alice")] * len(order)
            assert basic.check(b"Basic " + wrong) == (401, None)
            assert basic.check(b"Basic " + wrong.rstrip(b"=") + b"=" + enc) == (401, None)


# --- 3. plain HTTP on the TLS listener ----------------------------------------------------------


@pytest.mark.network
@pytest.mark.asyncio
async def test_pipelined_plain_requests_get_one_400_and_nothing_else(env: _Env) -> None:
    # Guard: nginx refuses the first request and closes (keep-alive off for
    # NGX_HTTP_TO_HTTPS): the requests behind it are never read as requests, routed or logged.
    req = b"GET /%d HTTP/1.1\r\nHost: a.test\r\n\r\n"
    answer, closed = await _exchange(env.port, req % 1 + req % 2 + req % 3)
    assert closed and answer.count(b"HTTP/1.1 ") == 1
    code, headers, body = _split(answer)
    assert code == 400 and _PAGE in body and headers["connection"].lower() == "close"
    # The same in separate segments, the later ones arriving after the answer.
    answer, closed = await _exchange(env.port, req % 1, req % 2, req % 3, pause=0.05)
    assert answer.count(b"HTTP/1.1 ") == 1 and _split(answer)[0] == 400
    await _settled(env)
    assert [(r.status, r.path) for r in env.records] == [(400, "/1"), (400, "/1")]
    assert env.router.asked == [] and env.backend_conns == []


@pytest.mark.network
@pytest.mark.asyncio
async def test_a_client_hello_in_one_byte_segments_still_gets_tls(env: _Env) -> None:
    # Guard: only the very first byte decides; a ClientHello trickling in one byte per TCP
    # segment is read whole and answered with a ServerHello.
    hello = _client_hello(b"a.test", tls13=False)
    answer, _ = await _exchange(env.port, *[hello[i:i + 1] for i in range(len(hello))],
                                pause=0.001, wait=1, enough=_first_record)
    assert _records(answer)[0][0] == 22
    assert env.records == []


@pytest.mark.network
@pytest.mark.asyncio
async def test_a_plain_client_counts_against_max_connections(ca: trustme.CA) -> None:
    # Guard: admitted at accept like a TLS client; while it is open, a second client over
    # ``max_connections`` is refused, and once it is answered the slot is free again.
    store = CertificateStore()
    store.update(Resources(ingresses=(_ingress("w", [(("a.test",), "a")]),),
                           secrets=(_secret("a", *_pems(ca.issue_cert("a.test"))),)))
    server = ProxyServer(None, cert_store=store, max_connections=1,  # never routed: no router
                         client_header_timeout=5)
    await server.start(None, ("127.0.0.1", 0))
    port = server.addresses[0][2]
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"GET / HTTP/1.1\r\n")  # plain, its head not complete
        await w.drain()
        for _ in range(50):
            if server.connections:
                break
            await asyncio.sleep(0.02)
        assert server.sockets_held() == 1
        answer, closed = await _exchange(port, b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n",
                                         wait=2)
        assert closed and answer == b"" and server.refused == 1
        w.write(b"Host: a.test\r\n\r\n")
        await w.drain()
        answer = await asyncio.wait_for(r.read(), 3)
        assert _split(answer)[0] == 400
        w.close()
        for _ in range(100):
            if not server.sockets_held():
                break
            await asyncio.sleep(0.02)
        answer, closed = await _exchange(port, b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        assert closed and _split(answer)[0] == 400
    finally:
        await server.shutdown(1)
