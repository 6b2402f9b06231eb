"""Session 20 review (Q20c) of session affinity and consistent hashing (``_balance_affinity``,
``_hashing``, ``_balance_hash``) against SEMANTICS §8 and ingress-nginx's Lua balancers."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingresslib import Router
from ingresslib._balance_affinity import CookieAffinity
from ingresslib._balance_protocol import BalancerOptions
from ingresslib._balance_request import RequestContext
from ingresslib._balance_spec import AffinityConfig, BalancerSpec
from ingresslib._endpoints import EndpointSet

from _router_helpers import P, canary, ingress, resources, simple_backend


def _eps(n: int) -> EndpointSet:
    return EndpointSet("default", "web", 8080,
                       tuple((f"10.0.0.{i + 1}", 8080) for i in range(n)), (1,) * n)


def _sticky(mode: str = "balanced", tag: str = "", name: str | None = "default-web-80",
            **cfg: Any) -> CookieAffinity:
    spec = BalancerSpec("sticky", affinity=AffinityConfig(mode=mode, **cfg))
    return CookieAffinity(BalancerOptions({}, random.Random(1), spec=spec), tag, name)


def _cookie(value: str, name: str = "INGRESSCOOKIE") -> RequestContext:
    return RequestContext(host="a.test", path="/", headers=[("cookie", f"{name}={value}")])


# --- session-cookie-expires past year 9999 ---------------------------------------------------

@pytest.mark.parametrize("expires", ["1000000000000", "9223372036854775807"])
def test_a_far_session_cookie_expires_still_starts_sessions(expires: str) -> None:
    """``session-cookie-expires`` is any non-negative int64 (strconv.Atoi, as ingress-nginx's
    annotation parser). Expires was rendered with ``formatdate(now + expires)``, which raises
    past year 9999 (ValueError) or time_t (OverflowError): every new session's ``route()``
    raised. A cookie-date has a 4-digit year (RFC 6265 §5.1.1): the last second of 9999."""
    ann = {P + "affinity": "cookie", P + "session-cookie-expires": expires}
    r = Router(resources(ingress("web", [("a.test", "/", "Prefix", "web", 80)], ann),
                         *simple_backend("web", ["10.0.0.1", "10.0.0.2"])))
    d: Any = r.route("GET", "a.test", "/")
    assert d.endpoint is not None
    assert "; Expires=Fri, 31 Dec 9999 23:59:59 GMT;" in d.set_cookie
    # A retry that moves the new session renders the cookie again (cookie_for).
    other = r.next_endpoint(d, {d.endpoint})
    assert other is not None
    cookie = r.session_cookie(d, other)
    assert cookie is not None and "Expires=Fri, 31 Dec 9999 23:59:59 GMT" in cookie


def test_a_near_expires_is_rendered_as_it_was() -> None:
    """The clamp leaves ordinary values alone: one day ahead is tomorrow's date."""
    import time
    from email.utils import parsedate_to_datetime

    c = _sticky(expires=86400)
    before = time.time()
    header = c.set_cookie("k")
    expires = header.split("Expires=")[1].split(";")[0]
    at = parsedate_to_datetime(expires).timestamp()
    assert before + 86400 - 1 <= at <= time.time() + 86400


# --- a balanced main side does not take over a persistent canary's session -------------------

def _canary_router(main_mode: str, canary_mode: str) -> Router:
    return Router(resources(
        ingress("web", [("a.test", "/", "Prefix", "web", 80)],
                {P + "affinity": "cookie", P + "affinity-mode": main_mode}),
        canary("web-canary", "a.test", "/", "web2", 80,
               {P + "canary-weight": "50", P + "affinity": "cookie",
                P + "affinity-mode": canary_mode}),
        *simple_backend("web", ["10.0.0.1", "10.0.0.2"]),
        *simple_backend("web2", ["10.0.1.1", "10.0.1.2"])), seed=3)


@pytest.mark.parametrize(("main_mode", "canary_mode"), [
    ("balanced", "persistent"), ("persistent", "balanced"), ("balanced", "balanced"),
    ("persistent", "persistent")])
def test_each_side_keeps_its_own_sessions_whatever_the_modes(main_mode: str,
                                                              canary_mode: str) -> None:
    """A canary Ingress with its own ``affinity`` keeps it (README, R21), under the same cookie
    name. A canary session in persistent mode (``md5|backend key``) was read by a balanced
    main side as a balanced key (the part before ``|`` hashed onto its ring): the main side,
    asked first, claimed it, served it and set no new cookie - the session left the canary for
    good. ingress-nginx keeps it there (``sticky.lua``: "function _M.is_affinitized(self)
    return self:get_cookie_parsed().backend_key == self.backend_key end")."""
    r = _canary_router(main_mode, canary_mode)
    started = {False: None, True: None}  # side -> (cookie, endpoint)
    for i in range(8):
        d: Any = r.route("GET", "a.test", f"/{i}")
        if d.set_cookie is not None and started[d.canary] is None:
            started[d.canary] = (d.set_cookie.split(";")[0], d.endpoint)
    assert started[False] is not None and started[True] is not None
    for side, (cookie, endpoint) in started.items():
        for i in range(10):  # the weight alone would send half of these to the other side
            d = r.route("GET", "a.test", f"/again{i}", headers=[("cookie", cookie)])
            assert (d.canary, d.endpoint, d.set_cookie) == (side, endpoint, None)


def test_a_balanced_side_refuses_a_persistent_value() -> None:
    """The unit below it: a balanced balancer never wrote a value holding ``|``."""
    persistent = _sticky("persistent", name="default-web2-80")
    value = persistent.persistent_value(_eps(2), 0)
    assert "|" in value
    balanced = _sticky("balanced")
    eps = _eps(2)
    assert not balanced.affinitized(_cookie(value), eps)
    idx, cookie = balanced.pick_with_cookie(_cookie(value), eps, ())
    assert idx is not None and cookie is not None  # a new session of its own


# --- properties --------------------------------------------------------------------------------

@given(n=st.integers(1, 12), seed=st.integers(0, 2**32 - 1))
def test_a_balanced_session_stays_where_its_cookie_leads(n: int, seed: int) -> None:
    """Any cookie a balanced balancer wrote leads back to the endpoint that started it, with
    no new cookie, until the endpoints change."""
    c = _sticky()
    c._rng = random.Random(seed)
    eps = _eps(n)
    idx, header = c.pick_with_cookie(RequestContext(host="a.test", path="/"), eps, ())
    assert idx is not None and header is not None
    value = header.split(";")[0].partition("=")[2]
    for _ in range(3):
        assert c.pick_with_cookie(_cookie(value), eps, ()) == (idx, None)
    assert c.affinitized(_cookie(value), eps)


@given(n=st.integers(1, 12), removed=st.integers(0, 11))
def test_a_persistent_cookie_of_a_removed_endpoint_starts_a_new_session(n: int,
                                                                        removed: int) -> None:
    """Persistent mode names the endpoint: once it is gone, the request gets another endpoint
    and a cookie naming it; the other sessions stay where they are."""
    c = _sticky("persistent")
    eps = _eps(n + 1)
    removed %= n + 1
    values = [c.persistent_value(eps, i) for i in range(n + 1)]
    after = EndpointSet("default", "web", 8080,
                        tuple(ep for i, ep in enumerate(eps.endpoints) if i != removed), (1,) * n)
    for i, v in enumerate(values):
        idx, header = c.pick_with_cookie(_cookie(v), after, ())
        assert idx is not None
        if i == removed:
            assert header is not None
            assert header.split(";")[0] == f"INGRESSCOOKIE={c.persistent_value(after, idx)}"
        else:
            assert (after.endpoints[idx], header) == (eps.endpoints[i], None)
