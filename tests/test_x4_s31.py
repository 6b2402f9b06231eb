"""Session 31, ``x4``: the second review of the round-robin "give back" protocol.

Defects fixed (each ``test_fix_*`` failed before):

* IngressASGI took "the app is the ``fallback``" for "the fallback plays": with one app
  mounted for a backend and passed as ``fallback`` too (one app serving everything), every
  request routed to that backend gave its turn back though its app was called, so the
  round-robin never moved: every request saw the first endpoint
  (``scope["ingresslib.decision"].endpoint``); and such a request's new session got no
  cookie (the same test of identity);
* the pure twin (``_pick_py``): a thread that called ``next()`` while a turn (or a canary
  choice) given back waited, and found it taken by another thread, raised ``TypeError``
  (zero-argument ``super()`` on an object whose class was swapped back meanwhile): a request
  failing in ``Router.route`` under load with ``INGRESSLIB_NO_EXTENSIONS``.

Guards (passed before): the compiled and pure counters agree on any sequence of ``next`` and
``give_back``; requests routed and given back at once leave a canary route's served sequence
(round-robin, weighted, persistent sessions, a header rule) exactly as without them.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingresslib import IngressASGI, Router, parse_manifests
from ingresslib.proxy._annotations import PREFIX as P
from tests._proxy_harness import ingress_yaml
from tests.test_asgiturn_s31 import EP1, EP2, PERSISTENT, _App, _call, _router
from tests.test_request_buffering_s30 import service


def test_fix_asgi_app_mounted_and_fallback_keeps_its_turns() -> None:
    # One app for everything: mounted for default/web and the fallback of unrouted requests.
    app = _App()
    asgi = IngressASGI(_router({}), backends={"default/web:80": app}, fallback=app)
    for _ in range(4):
        assert _call(asgi)[0] == 200
    # Each request reached the app its decision chose: it keeps its turn, as any other's.
    assert Counter(d.endpoint for d in app.seen) == {EP1: 2, EP2: 2}


# ------------------------------------------------------------------ the pure twin's class swap
def test_fix_pure_rotation_next_after_another_thread_took_the_last_turn() -> None:
    from ingresslib._pick_py import Rotation, _RotationGivingBack

    r = Rotation(("a", "b", "c"))
    assert next(r) == "a"
    assert r.give_back("a")
    assert type(r) is _RotationGivingBack
    # Two threads call next() while the turn waits: both dispatch to the waiting class's
    # __next__; the first takes the turn (the object is a Rotation again), the second then
    # finds none and goes on with the cycle. Played in that order here.
    taking_late = _RotationGivingBack.__next__
    assert next(r) == "a"
    assert type(r) is Rotation
    assert taking_late(r) == "b"  # raised TypeError (zero-argument super()) before the fix
    assert [next(r) for _ in range(3)] == ["c", "a", "b"]


def test_fix_pure_interleave_next_after_another_thread_took_the_last_choice() -> None:
    from ingresslib._pick_py import Interleave, _InterleaveGivingBack

    s, ref = Interleave(2, 5), Interleave(2, 5)
    assert next(s) is next(ref) is False
    s.give_back(False)
    taking_late = _InterleaveGivingBack.__next__
    assert next(s) is False  # the choice given back
    assert type(s) is Interleave
    # A thread that dispatched while the choice waited: the split goes on.
    assert [taking_late(s)] + [next(s) for _ in range(8)] == [next(ref) for _ in range(9)]


def test_pure_rotation_threads_share_turns_evenly() -> None:
    # Guard: threads taking turns and giving some back end with every endpoint's net turns
    # within one of the others' (no turn lost or served twice), and nothing raises.
    import random
    import sys
    import threading

    from ingresslib._pick_py import Rotation

    r = Rotation(("e0", "e1", "e2"))
    net: Counter[str] = Counter()
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(seed: int) -> None:
        rnd, mine = random.Random(seed), Counter[str]()
        try:
            for _ in range(3000):
                d = next(r)
                mine[d] += 1
                if rnd.random() < 0.3:
                    assert r.give_back(d)
                    mine[d] -= 1
        except BaseException as e:  # noqa: BLE001 (reported below)
            errors.append(e)
        with lock:
            net.update(mine)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        sys.setswitchinterval(old)
    assert not errors
    waiting = len(r._back)
    assert max(net.values()) - min(net.values()) <= 1 + waiting


def test_fix_asgi_app_mounted_and_fallback_sends_the_session_cookie() -> None:
    # The same app as backend and fallback: a new session routed to the backend is answered
    # by its app, so its cookie goes with that answer (sticky.lua sets it at the pick).
    app = _App()
    asgi = IngressASGI(_router(PERSISTENT), backends={"default/web:80": app}, fallback=app)
    status, cookies = _call(asgi)
    assert status == 200
    assert len(cookies) == 1 and cookies[0].startswith(b"INGRESSCOOKIE=")
    assert app.seen[0].set_cookie is not None


# ------------------------------------------------------------------ guards (passed before)
def _compiled_pick() -> Any:
    import importlib
    import os

    try:
        return importlib.import_module("ingresslib._pick")
    except ImportError:
        if os.environ.get("INGRESSLIB_REQUIRE_EXTENSIONS", "") not in ("", "0"):
            raise
        pytest.skip("ingresslib._pick is not built")


@given(n=st.integers(1, 4), start=st.integers(-5, 5), weight=st.integers(0, 6),
       total=st.integers(1, 6),
       ops=st.lists(st.tuples(st.sampled_from("ngx"), st.integers(0, 4), st.booleans()),
                    max_size=40))
def test_twins_agree_on_next_and_give_back(n: int, start: int, weight: int, total: int,
                                           ops: list[tuple[str, int, bool]]) -> None:
    # The same operations on the compiled and the pure counters give the same answers.
    from ingresslib import _pick_py

    compiled = _compiled_pick()
    items = tuple(object() for _ in range(n))
    stranger = object()
    weight = min(weight, total)
    rc, rp = compiled.Rotation(items, start), _pick_py.Rotation(items, start)
    ic, ip = compiled.Interleave(weight, total), _pick_py.Interleave(weight, total)
    for op, k, choice in ops:
        if op == "n":
            assert next(rc) is next(rp)
            assert next(ic) is next(ip)
        else:
            item = items[k % n] if op == "g" else stranger
            assert rc.give_back(item) is rp.give_back(item)
            ic.give_back(choice)
            ip.give_back(choice)
    assert [next(rc) for _ in range(n + 2)] == [next(rp) for _ in range(n + 2)]
    assert [next(ic) for _ in range(total + 2)] == [next(ip) for _ in range(total + 2)]


def _canary_router(variant: str) -> Router:
    main: dict[str, str] = {}
    can = {P + "canary": "true", P + "canary-weight": "30"}
    if variant == "header":
        can[P + "canary-by-header"] = "X-Canary"
    if variant == "sticky":
        main = {P + "affinity": "cookie", P + "affinity-mode": "persistent"}
    web = service("web", [1, 2, 3])
    if variant == "weighted":
        web = web.replace("metadata: {name: web, namespace: default}", WEIGHTS3, 1)
        assert "endpoint-weights" in web
    return Router(parse_manifests(ingress_yaml("up", "a.test", main) + web
                                  + ingress_yaml("up-canary", "a.test", can, service="can")
                                  + service("can", [4, 5])))


WEIGHTS3 = ("metadata: {name: web, namespace: default, annotations: "
            "{ingresslib.io/endpoint-weights: '10.0.0.1=3, 10.0.0.2=1, 10.0.0.3=2'}}")


@pytest.mark.parametrize("variant", ["plain", "weighted", "sticky", "header"])
@given(seed=st.integers(0, 2**32 - 1))
def test_requests_given_back_leave_the_served_sequence_as_without_them(
        variant: str, seed: int) -> None:
    # A canary route (30 %), main side round-robin (weighted, persistent sessions) and a
    # header rule: requests routed and given back at once (answered without a connect) leave
    # the served ones exactly the sequence a router that never saw them serves.
    rnd = random.Random(seed)
    a, b = _canary_router(variant), _canary_router(variant)
    served_a, served_b = [], []
    while len(served_a) < 30:
        headers = ([(b"x-canary", rnd.choice([b"always", b"never", b"other"]))]
                   if variant == "header" and rnd.random() < 0.3 else [])
        d = a.route("GET", "a.test", "/up", headers, "10.9.0.1")
        if rnd.random() < 0.5:
            a.give_back(d, "GET", "a.test", "/up", headers, "10.9.0.1")
            continue
        served_a.append((d.endpoint, d.canary, d.set_cookie is None))
        e = b.route("GET", "a.test", "/up", headers, "10.9.0.1")
        served_b.append((e.endpoint, e.canary, e.set_cookie is None))
    assert served_a == served_b
