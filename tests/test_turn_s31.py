"""Session 31, ``turn``: a request that never connects upstream takes no round-robin turn.

nginx picks the peer in the balancer phase, at the connect (ingress-nginx ``balancer.lua``
``balance()``, run by ``balancer_by_lua`` from ngx_http_upstream_connect): a request answered
here before any connect (a 400 bad chunk or 413 while its body is read whole first with
``proxy-request-buffering: "on"``, the client gone mid-body, any local answer) never takes
a turn of the round-robin there. ``Router.route`` picks on the head (the proxy needs the
rule's settings), so the turn such a request took is given back (``Router.give_back``) and
served by the next request.

Defects fixed (each ``test_fix_*`` failed before):

* with two endpoints and every other request refused before its connect, every served
  request went to one endpoint (the refused ones took the other's turns);
* the same for a weighted canary's smooth split (``canary-weight``): every served request
  went to one side;
* the same for smooth weighted round-robin (endpoints of unequal weights): 3:1 served 1:1;
* the same for a request answered here without request buffering (a 413 on the head).

Checked and found right (tests kept as guards): EWMA's pick on the head leaves no trace
(ewma.lua's ``balance()`` writes nothing either), and a ``Content-Length`` body that switched
to streaming whose connect fails goes to the next upstream (nothing of it was sent).
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingresslib import Router, parse_manifests
from ingresslib._balance import Ewma
from ingresslib.proxy._annotations import PREFIX
from tests._proxy_harness import ProxyPair, Route, ingress_yaml, status_of
from tests.test_request_buffering_s30 import (CHUNKED, ON, another, chunk, cl_head, length_app,
                                              service, small)

# Every test below runs once per implementation of the counters (the autouse fixture).
from _counters import counters  # noqa: F401

P = PREFIX
BAD_CHUNK = b"zz\r\n"  # not a chunk size: 400 while the body is held


def _serve(router: Router) -> tuple[int, tuple[tuple[str, int], ...], bool]:
    """One chunked upload read whole, then sent: its status, its upstreams, its canary."""
    p = ProxyPair(router=router, app=length_app)
    out = p.send(CHUNKED + chunk(b"abc") + b"0\r\n\r\n")
    rec = p.records[-1]
    return status_of(out), rec.upstreams, rec.canary


def _refuse(router: Router, how: str) -> int:
    """One upload refused before any connect: its status (0: the client left)."""
    p = ProxyPair(router=router, app=length_app)
    out = p.send(CHUNKED + chunk(b"abc"))
    assert not p.opens  # its body is being read: nothing opened yet
    if how == "bad chunk":
        out = p.send(BAD_CHUNK)
        assert not p.opens
        return status_of(out)
    p._run(p.conn.abort(p.now))  # the client gone mid-body
    assert not p.opens
    return 0


@pytest.mark.parametrize("how", ["bad chunk", "client gone"])
def test_fix_refused_requests_take_no_round_robin_turn(how: str) -> None:
    router = Router(parse_manifests(ingress_yaml("up", "a.test", ON) + service("web", [1, 2])))
    served: Counter[tuple[str, int]] = Counter()
    for _ in range(6):
        status, ups, _ = _serve(router)
        assert status == 200 and len(ups) == 1
        served[ups[0]] += 1
        refused = _refuse(router, how)
        assert refused == (400 if how == "bad chunk" else 0)
    # nginx: the refused ones never reached the balancer, the served ones alternate.
    assert served == {("10.0.0.1", 80): 3, ("10.0.0.2", 80): 3}


def test_fix_refused_requests_take_no_canary_split_turn() -> None:
    canary = {P + "canary": "true", P + "canary-weight": "50"}
    docs = (ingress_yaml("up", "a.test", ON) + service("web", [1])
            + ingress_yaml("up-canary", "a.test", {**ON, **canary}, service="can")
            + service("can", [2]))
    router = Router(parse_manifests(docs))
    sides: Counter[bool] = Counter()
    for _ in range(6):
        status, ups, is_canary = _serve(router)
        assert status == 200 and ups == ((("10.0.0.2", 80),) if is_canary
                                         else (("10.0.0.1", 80),))
        sides[is_canary] += 1
        assert _refuse(router, "bad chunk") == 400
    # A 50 % canary serves half of the requests that reach an upstream.
    assert sides == {True: 3, False: 3}


def test_a_choice_a_header_rule_made_is_not_given_back_to_the_split() -> None:
    # Refused requests sent to the canary by its header took no turn of the weight's split:
    # giving one back would send the next served requests to the canary.
    canary = {P + "canary": "true", P + "canary-weight": "50",
              P + "canary-by-header": "X-Canary"}
    docs = (ingress_yaml("up", "a.test", ON) + service("web", [1])
            + ingress_yaml("up-canary", "a.test", {**ON, **canary}, service="can")
            + service("can", [2]))
    router = Router(parse_manifests(docs))
    sides: Counter[bool] = Counter()
    for _ in range(6):
        sides[_serve(router)[2]] += 1
        p = ProxyPair(router=router, app=length_app)
        p.send(CHUNKED.replace(b"\r\n\r\n", b"\r\nX-Canary: always\r\n\r\n") + chunk(b"ab"))
        assert p.conn._req.decision.canary  # type: ignore[union-attr]
        assert status_of(p.send(BAD_CHUNK)) == 400
    assert sides == {True: 3, False: 3}


def test_fix_refused_requests_take_no_weighted_round_robin_turn() -> None:
    # Endpoints of unequal weights (ingresslib's endpoint-weights annotation): smooth
    # weighted round-robin, 3:1. Every other pick refused used to leave the served ones 1:1.
    weights = "metadata: {name: web, namespace: default, annotations: " \
              "{ingresslib.io/endpoint-weights: '10.0.0.1=3, 10.0.0.2=1'}}"
    svc = service("web", [1, 2]).replace("metadata: {name: web, namespace: default}", weights, 1)
    assert "endpoint-weights" in svc
    router = Router(parse_manifests(ingress_yaml("up", "a.test", ON) + svc))
    served: Counter[tuple[str, int]] = Counter()
    for _ in range(8):
        status, ups, _ = _serve(router)
        assert status == 200
        served[ups[0]] += 1
        assert _refuse(router, "bad chunk") == 400
    assert served == {("10.0.0.1", 80): 6, ("10.0.0.2", 80): 2}


def test_fix_a_local_answer_without_buffering_gives_its_turn_back_too() -> None:
    # A request answered on the head after routing (here: a body past proxy-body-size,
    # announced by its Content-Length) never connects either: nginx's rotation never saw it.
    ann = {P + "proxy-body-size": "1"}  # 1 byte
    router = Router(parse_manifests(ingress_yaml("up", "a.test", ann) + service("web", [1, 2])))
    served: Counter[tuple[str, int]] = Counter()
    for _ in range(4):
        p = ProxyPair(router=router, app=length_app)
        out = p.send(b"GET /up HTTP/1.1\r\nHost: a.test\r\n\r\n")
        assert status_of(out) == 200
        served[p.records[-1].upstreams[0]] += 1
        p = ProxyPair(router=router, app=length_app)
        out = p.send(b"POST /up HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n\r\nhello")
        assert status_of(out) == 413 and not p.opens
    assert served == {("10.0.0.1", 80): 2, ("10.0.0.2", 80): 2}


# ------------------------------------------------------------------------ the counters
@given(n=st.integers(1, 5), start=st.integers(0, 4), seed=st.integers(0, 2**32 - 1),
       steps=st.integers(0, 60))
def test_rotation_give_back_serves_the_turns_in_the_rotations_order(
        counters: Any, n: int, start: int, seed: int, steps: int) -> None:
    # Any interleaving of picks and give-backs (of picks not given back yet): the turns kept
    # plus those waiting are exactly the plain rotation's first turns, whatever was taken
    # in between (each turn given back is the next one served).
    items = tuple(object() for _ in range(n))
    r = counters.Rotation(items, start)
    rng = random.Random(seed)
    kept: list[object] = []
    waiting: list[object] = []
    for _ in range(steps):
        if kept and rng.random() < 0.4:
            item = kept.pop(rng.randrange(len(kept)))
            assert r.give_back(item) is True
            waiting.append(item)
        else:
            item = next(r)
            if waiting:
                assert item is waiting.pop(0)  # a turn given back is served first, in order
            kept.append(item)
    plain = counters.Rotation(items, start)
    first = [next(plain) for _ in range(len(kept) + len(waiting))]
    assert Counter(map(id, kept + waiting)) == Counter(map(id, first))


def test_rotation_give_back_refuses_what_it_never_gave(counters: Any) -> None:
    r = counters.Rotation(("a", "b"))
    assert r.give_back("c") is False and r.give_back(("a",)) is False
    assert [next(r) for _ in range(3)] == ["a", "b", "a"]


@given(weight=st.integers(0, 10), total=st.integers(1, 10), seed=st.integers(0, 2**32 - 1),
       steps=st.integers(0, 60))
def test_interleave_give_back_keeps_the_split_of_the_choices_kept(
        counters: Any, weight: int, total: int, seed: int, steps: int) -> None:
    weight = min(weight, total)
    s = counters.Interleave(weight, total)
    rng = random.Random(seed)
    kept: list[bool] = []
    waiting: list[bool] = []
    for _ in range(steps):
        if kept and rng.random() < 0.4:
            choice = kept.pop(rng.randrange(len(kept)))
            s.give_back(choice)
            waiting.append(choice)
        else:
            choice = next(s)
            if waiting:
                assert choice in waiting
                waiting.remove(choice)
            kept.append(choice)
    plain = counters.Interleave(weight, total)
    first = [next(plain) for _ in range(len(kept) + len(waiting))]
    assert Counter(kept + waiting) == Counter(first)
    assert (s.weight, s.total) == (weight, total)


def test_give_back_under_threads_loses_and_repeats_no_turn(counters: Any) -> None:
    # Threads taking turns and giving every third back: the turns kept plus those waiting
    # are still exactly the plain sequence's first ones (none lost, none served twice).
    items = ("a", "b", "c")
    r = counters.Rotation(items)
    s = counters.Interleave(3, 10)
    kept: list[list[Any]] = []

    def work() -> None:
        mine: list[Any] = []
        for i in range(3000):
            item, choice = next(r), next(s)
            if i % 3 == 2:
                r.give_back(item)
                s.give_back(choice)
            else:
                mine.append((item, choice))
        kept.append(mine)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [x for mine in kept for x in mine]
    # Serve what still waits: the plain sequences' next turns come after it.
    plain_r, plain_s = counters.Rotation(items), counters.Interleave(3, 10)
    n = len(flat)
    waiting_r = Counter(next(r) for _ in range(1000))
    waiting_s = Counter(next(s) for _ in range(1000))
    want_r = Counter(next(plain_r) for _ in range(n + 1000))
    want_s = Counter(next(plain_s) for _ in range(n + 1000))
    assert Counter(x[0] for x in flat) + waiting_r == want_r
    assert Counter(x[1] for x in flat) + waiting_s == want_s


# ------------------------------------------------------------------------------- EWMA
def test_ewma_head_pick_of_a_refused_request_leaves_no_trace() -> None:
    # ingress-nginx ewma.lua: balance() scores with get_or_update_ewma(..., 0, false), which
    # writes nothing; only after_balance (the log phase of a request that had an upstream)
    # records a sample. Here the head's pick and the repick are both picks: neither records
    # anything, and a request refused before its connect leaves the statistics as they were.
    ann = {**ON, P + "load-balance": "ewma"}
    router = Router(parse_manifests(ingress_yaml("up", "a.test", ann) + service("web", [1, 2])))
    status, ups, _ = _serve(router)
    assert status == 200
    p = ProxyPair(router=router, app=length_app)
    p.send(CHUNKED + chunk(b"abc"))
    decision = p.conn._req.decision  # type: ignore[union-attr]
    ewma = decision.handle.balancer
    assert type(ewma) is Ewma
    before = {ep: list(st) for ep, st in ewma._stats.items()}
    assert set(before) == set(ups)  # the served request's one sample
    assert status_of(p.send(BAD_CHUNK)) == 400 and not p.opens
    assert {ep: list(st) for ep, st in ewma._stats.items()} == before


# ------------------------------------------------- a body switched to streaming, connect fails
def test_a_body_switched_to_streaming_whose_connect_fails_goes_to_the_next_upstream() -> None:
    # proxy-next-upstream "error" (the default): nginx's ngx_http_upstream_next on a failed
    # connect, no byte of the request sent. The bytes held at the switch are still unsent.
    eps = [("10.0.0.1", 8080), ("10.0.0.2", 8080)]
    p = ProxyPair([Route(endpoints=eps, annotations=dict(ON))], small(), app=length_app,
                  defer=eps)
    p.send(cl_head(800) + b"a" * 700)
    q = another(p, 2)
    q.send(CHUNKED + chunk(b"b" * 250))
    p.send(b"a" * 100)  # does not fit the budget: streamed from here, its upstream connecting
    assert len(p.opens) == 1
    assert p.fail_connect() == b""  # no 502: the next endpoint is tried
    assert [o.endpoint for o in p.opens] == eps
    out = p.connect()
    assert status_of(out) == 200 and out.endswith(b"cl 800")
    assert p.records[-1].upstream_statuses == (502, 200)
