"""Session 31, ``asgiturn``: IngressASGI's local answers, and new persistent sessions, take no
round-robin turn; a session cookie only with a connect.

nginx picks the peer in the balancer phase, at the connect (ingress-nginx ``balancer.lua``
``balance()``, run by ``balancer_by_lua`` from ngx_http_upstream_connect), and ``sticky.lua``'s
``balance()`` sets a new session's cookie there too: a request answered before (a 403 of an
allowlist, a redirect, a 413, a body refused while read whole first) never takes a turn of the
rotation, nor gets a cookie. ``Router.route`` picks on the head, so such a request gives its
turn back (``Router.give_back``). For ``IngressASGI`` the upstream is the mounted app: a
request reaches it when that app is called.

Defects fixed (each ``test_fix_*`` failed before):

* IngressASGI never gave a turn back: with two endpoints and every other request answered
  locally (403, 413, a redirect, a rule whose backend no app plays: the ``fallback`` or 503),
  every served request went to one endpoint;
* a new ``affinity-mode: persistent`` session answered without a connect kept its turn of the
  sessions' round-robin (the proxy's and IngressASGI's): every other new session refused left
  the served ones all on one endpoint (weighted endpoints: 3:1 served 1:1);
* the proxy sent a new session's cookie with a local answer to a body read whole first
  (``proxy-request-buffering: "on"``: a bad chunk's 400, a chunked body's 413), a session
  started on an endpoint the request never reached.

Checked and found right (tests kept as guards): IngressASGI sends no cookie with a local answer
(tests/test_affinity_local_s14.py, and here for a new persistent session); an app that raises
was reached (its turn kept); a router without ``give_back`` serves as before; a ``give_back``
that raises is logged and the answer stands.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from typing import Any

import pytest

from ingresslib import IngressASGI, Router, parse_manifests
from ingresslib._balance import parse_balancer_spec
from ingresslib._balance_affinity import CookieAffinity
from ingresslib._balance_protocol import BalancerOptions
from ingresslib._balance_request import RequestContext
from ingresslib._endpoints import EndpointSet
from ingresslib._router import Decision
from ingresslib.proxy._annotations import PREFIX
from tests._proxy_harness import ProxyPair, ingress_yaml, status_of
from tests.test_request_buffering_s30 import CHUNKED, ON, chunk, length_app, service

P = PREFIX
EP1, EP2 = ("10.0.0.1", 80), ("10.0.0.2", 80)
#: A client the allowlist lets in, and one it refuses (403).
IN, OUT = "10.9.0.1", "192.0.2.1"
ALLOW = {P + "whitelist-source-range": "10.9.0.0/16"}
PERSISTENT = {P + "affinity": "cookie", P + "affinity-mode": "persistent"}
WEIGHTS = ("metadata: {name: web, namespace: default, annotations: "
           "{ingresslib.io/endpoint-weights: '10.0.0.1=3, 10.0.0.2=1'}}")


def _router(ann: dict[str, str], weighted: bool = False) -> Router:
    svc = service("web", [1, 2])
    if weighted:
        svc = svc.replace("metadata: {name: web, namespace: default}", WEIGHTS, 1)
        assert "endpoint-weights" in svc
    return Router(parse_manifests(ingress_yaml("up", "a.test", ann) + svc))


class _App:
    """An app playing ``default/web``: answers 200, remembers each request's Decision."""

    def __init__(self, fail: bool = False) -> None:
        self.seen: list[Decision] = []
        self.fail = fail

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.seen.append(scope["ingresslib.decision"])
        if self.fail:
            raise RuntimeError("the app failed")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def _call(asgi: Any, *, client: str = IN, scheme: str = "http", method: str = "GET",
          headers: tuple[tuple[bytes, bytes], ...] = ()) -> tuple[int, list[bytes]]:
    """One request for a.test/up: its status (0: the app raised) and Set-Cookie values."""
    sent: list[Any] = []

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(m: Any) -> None:
        sent.append(m)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": scheme, "path": "/up", "raw_path": b"/up",
             "root_path": "", "query_string": b"", "client": (client, 5000),
             "server": ("127.0.0.1", 80), "headers": [(b"host", b"a.test"), *headers]}
    try:
        asyncio.run(asgi(scope, receive, send))
    except RuntimeError as e:
        assert str(e) == "the app failed"
        return 0, []
    start = sent[0]
    return start["status"], [v for k, v in start.get("headers") or () if k == b"set-cookie"]


# ------------------------------------------------------------------ IngressASGI, round-robin
REFUSALS = [
    pytest.param(ALLOW, {"client": OUT}, 403, id="allowlist-403"),
    pytest.param({P + "proxy-body-size": "1"},
                 {"method": "POST", "headers": ((b"content-length", b"5"),)}, 413,
                 id="declared-body-413"),
    pytest.param({P + "force-ssl-redirect": "true"}, {"scheme": "http"}, 308,
                 id="force-ssl-redirect"),
]


@pytest.mark.parametrize(("ann", "refused", "status"), REFUSALS)
def test_fix_asgi_local_answers_take_no_round_robin_turn(
        ann: dict[str, str], refused: dict[str, Any], status: int) -> None:
    app = _App()
    asgi = IngressASGI(_router(ann), {"default/web": app})
    served = {"scheme": "https"} if "scheme" in refused else {}
    for _ in range(6):
        assert _call(asgi, **served)[0] == 200
        assert _call(asgi, **refused)[0] == status
    assert len(app.seen) == 6
    # nginx: the refused ones never reached the balancer; the served ones alternate.
    assert [d.endpoint for d in app.seen] == [EP1, EP2] * 3


@pytest.mark.parametrize("fallback", [True, False], ids=["fallback", "503"])
def test_fix_asgi_a_rule_no_app_plays_takes_no_turn(fallback: bool) -> None:
    # The same router behind an adapter that mounts no app for default/web: its requests
    # are the fallback's (the default backend) or a 503, never the rule's endpoint.
    router = _router({})
    app, other = _App(), _App()
    asgi = IngressASGI(router, {"default/web": app})
    unmounted = IngressASGI(router, {}, fallback=other if fallback else None)
    for _ in range(4):
        assert _call(asgi)[0] == 200
        assert _call(unmounted)[0] == (200 if fallback else 503)
    assert [d.endpoint for d in app.seen] == [EP1, EP2] * 2
    assert len(other.seen) == (4 if fallback else 0)


def test_an_app_that_raises_was_reached_and_keeps_its_turn() -> None:
    router = _router({})
    app, failing = _App(), _App(fail=True)
    asgi, broken = IngressASGI(router, {"default/web": app}), \
        IngressASGI(router, {"default/web": failing})
    for _ in range(3):
        assert _call(asgi)[0] == 200
        assert _call(broken)[0] == 0
    # Every request took the next turn: the app was called (nginx: connected).
    assert [d.endpoint for d in app.seen] == [EP1] * 3
    assert [d.endpoint for d in failing.seen] == [EP2] * 3


def test_a_router_without_give_back_serves_as_before() -> None:
    class Plain:
        def __init__(self, router: Router) -> None:
            self.router = router

        def route(self, *args: Any, **kw: Any) -> Any:
            return self.router.route(*args, **kw)

    app = _App()
    asgi = IngressASGI(Plain(_router(ALLOW)), {"default/web": app})
    assert [_call(asgi, client=c)[0] for c in (IN, OUT, IN)] == [200, 403, 200]
    # Its turn stays taken (nothing gives it back): the second served request is the third
    # turn.
    assert [d.endpoint for d in app.seen] == [EP1, EP1]


def test_a_give_back_that_raises_is_logged_and_the_answer_stands(
        caplog: pytest.LogCaptureFixture) -> None:
    class Broken(Router):
        def give_back(self, *args: Any, **kw: Any) -> None:
            raise ValueError("give_back broke")

    app = _App()
    asgi = IngressASGI(Broken(parse_manifests(ingress_yaml("up", "a.test", ALLOW)
                                              + service("web", [1, 2]))),
                       {"default/web": app})
    with caplog.at_level(logging.ERROR, logger="ingresslib.asgi"):
        assert _call(asgi, client=OUT)[0] == 403
    assert [r for r in caplog.records
            if r.name == "ingresslib.asgi" and "router.give_back" in r.getMessage()
            and r.exc_info is not None and "give_back broke" in str(r.exc_info[1])]
    assert _call(asgi)[0] == 200 and len(app.seen) == 1


# ------------------------------------------------------- persistent affinity's new sessions
def _persistent_value(endpoint: tuple[str, int]) -> bytes:
    """The session cookie (before ``;``) naming ``endpoint``, from a router of its own (the
    routers under test take no turn for it)."""
    b = _router(PERSISTENT).route("GET", "a.test", "/up", (), IN).handle
    return b"INGRESSCOOKIE=" + b.sticky.persistent_value(
        b.eps, b.eps.endpoints.index(endpoint)).encode()


@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weighted"])
def test_fix_asgi_refused_new_sessions_take_no_turn(weighted: bool) -> None:
    app = _App()
    router = _router({**PERSISTENT, **ALLOW}, weighted)
    asgi = IngressASGI(router, {"default/web": app})
    cookies: list[bytes] = []
    for _ in range(8):
        status, set_cookie = _call(asgi)
        assert status == 200 and len(set_cookie) == 1
        cookies.append(set_cookie[0].split(b";")[0])
        # A refused new session: no cookie (sticky.lua sets it at the pick, the connect).
        assert _call(asgi, client=OUT) == (403, [])
    served = Counter(d.endpoint for d in app.seen)
    assert served == ({EP1: 6, EP2: 2} if weighted else {EP1: 4, EP2: 4})
    # Each new session's cookie names the endpoint that served it.
    assert cookies == [_persistent_value(d.endpoint) for d in app.seen]


def _proxy_new_session(router: Router, client: str = IN) -> tuple[int, tuple[Any, ...], bytes]:
    p = ProxyPair(router=router, app=length_app, peer=(client, 4000))
    out = p.send(b"GET /up HTTP/1.1\r\nHost: a.test\r\n\r\n")
    ups = p.records[-1].upstreams
    return status_of(out), ups, out.split(b"\r\n\r\n", 1)[0].lower()


@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weighted"])
def test_fix_proxy_refused_new_sessions_take_no_turn(weighted: bool) -> None:
    router = _router({**PERSISTENT, **ALLOW}, weighted)
    served: Counter[tuple[str, int]] = Counter()
    for _ in range(8):
        status, ups, head = _proxy_new_session(router)
        assert status == 200 and len(ups) == 1 and b"set-cookie: ingresscookie=" in head
        served[ups[0]] += 1
        status, ups, head = _proxy_new_session(router, OUT)
        assert status == 403 and ups == () and b"set-cookie" not in head
    assert served == ({EP1: 6, EP2: 2} if weighted else {EP1: 4, EP2: 4})


def test_a_session_with_its_cookie_takes_no_turn_and_gives_none_back() -> None:
    # A request of an existing session is pinned by its cookie (no turn taken): refused, it
    # gives nothing back, and new sessions go on alternating.
    router = _router({**PERSISTENT, **ALLOW})
    app = _App()
    asgi = IngressASGI(router, {"default/web": app})
    pinned = ((b"cookie", _persistent_value(EP2)),)
    for _ in range(3):
        assert _call(asgi)[0] == 200
        assert _call(asgi, client=OUT, headers=pinned) == (403, [])
        assert _call(asgi, headers=pinned) == (200, [])
    assert [d.endpoint for d in app.seen] == [EP1, EP2, EP2, EP2, EP1, EP2]


@pytest.mark.parametrize("how", ["bad chunk", "chunked 413"])
def test_fix_proxy_body_refused_while_read_first_gets_no_session_cookie(how: str) -> None:
    # proxy-request-buffering "on": the body is read before the balancer phase (nginx's
    # ngx_http_read_client_request_body, then ngx_http_upstream_init): a request refused
    # meanwhile never reached sticky.lua's balance(), which sets the cookie.
    ann = {**ON, **PERSISTENT, P + "proxy-body-size": "4"}
    router = _router(ann)
    served: Counter[tuple[str, int]] = Counter()
    for _ in range(4):
        p = ProxyPair(router=router, app=length_app)
        out = p.send(CHUNKED + chunk(b"abc") + b"0\r\n\r\n")
        assert status_of(out) == 200 and b"set-cookie: ingresscookie=" in out.lower()
        served[p.records[-1].upstreams[0]] += 1
        p = ProxyPair(router=router, app=length_app)
        p.send(CHUNKED + chunk(b"abc"))
        out = p.send(b"zz\r\n" if how == "bad chunk" else chunk(b"defgh"))
        assert status_of(out) == (400 if how == "bad chunk" else 413) and not p.opens
        assert b"set-cookie" not in out.split(b"\r\n\r\n", 1)[0].lower()
    assert served == {EP1: 2, EP2: 2}


# ------------------------------------------------------------ CookieAffinity.give_back itself
def _affinity(mode: str) -> CookieAffinity:
    spec, warn = parse_balancer_spec({P + "affinity": "cookie", P + "affinity-mode": mode},
                                     "round_robin", {"round_robin", "ewma"}, "/")
    assert not warn
    return CookieAffinity(BalancerOptions(spec=spec, rng=random.Random(1)), "", "default-web-80")


def _eps(*ips: int) -> EndpointSet:
    return EndpointSet("default", "web", 80, tuple((f"10.0.0.{i}", 80) for i in ips),
                       (1,) * len(ips))


def test_affinity_give_back_serves_the_turn_next_on_those_endpoints_only() -> None:
    sticky, eps = _affinity("persistent"), _eps(1, 2, 3)
    new = RequestContext("GET", "a.test", "/")
    assert [sticky.pick_with_cookie(new, eps, ())[0] for _ in range(2)] == [0, 1]
    sticky.give_back(eps, 1)
    sticky.give_back(eps, 0)
    # A retry leaves the turns given back to the new sessions' first tries.
    assert sticky.pick(new, eps, (eps.endpoints[2],)) in (0, 1)
    firsts = [sticky.pick_with_cookie(new, eps, ())[0] for _ in range(2)]
    assert firsts == [1, 0]
    # A turn given back on endpoints since replaced is dropped, not served on the new ones.
    sticky.give_back(eps, 2)
    other = _eps(1, 2)
    picks = [sticky.pick_with_cookie(new, other, ())[0] for _ in range(4)]
    assert sorted(picks) == [0, 0, 1, 1] and not sticky._rr._back
    # An equal endpoint list (a rebuilt set after an update) is the same rotation.
    sticky.give_back(other, 1)
    assert sticky.pick_with_cookie(new, _eps(1, 2), ())[0] == 1


def test_affinity_give_back_in_balanced_mode_does_nothing() -> None:
    sticky, eps = _affinity("balanced"), _eps(1, 2)
    sticky.give_back(eps, 1)
    assert not sticky._rr._back
