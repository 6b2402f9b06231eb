"""Cookie-affinity options: ``session-cookie-change-on-failure``,
``session-cookie-conditional-samesite-none`` and ``session-cookie-partitioned``, through the
public Router API (and the sans-IO proxy core for the cookie a browser gets)."""

from __future__ import annotations

import re

import pytest

from ingresslib._balance import samesite_none_compatible
from ingresslib._router import Decision, Router

from _proxy_harness import ProxyPair, status_of
from _router_helpers import P, canary, ingress, resources, simple_backend

IPS = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
STICKY = {P + "affinity": "cookie", P + "session-cookie-name": "sid"}

# User agents from ingress-nginx's sticky_test.lua ("supported" / "unsupported user agent").
NEW_UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/71.0.2704.103 Safari/537.36")
OLD_UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
          "Chrome/51.0.2704.103 Safari/537.36")


def sticky_router(ann: dict[str, str], seed: int = 1) -> Router:
    ing = ingress("web", [("a.test", "/app", "Prefix", "web", 80)], {**STICKY, **ann})
    return Router(resources(ing, *simple_backend("web", IPS)), seed=seed)


def ep(d: Decision | None) -> tuple[str, int]:
    assert d is not None and d.endpoint is not None
    return d.endpoint


def attrs(set_cookie: str) -> list[str]:
    return set_cookie.split("; ")[1:]


def warned(r: Router, name: str) -> list[str]:
    return [w.message for w in r.warnings if w.field == f"metadata.annotations[{P}{name}]"]


# --- session-cookie-change-on-failure -------------------------------------------------------------


@pytest.mark.parametrize("mode", ["persistent", "balanced"])
def test_change_on_failure_moves_an_existing_session_to_the_endpoint_that_answered(
        mode: str) -> None:
    # sticky.lua balance(): "should_pick_new_upstream = last_failure ~= nil and
    # self.cookie_session_affinity.change_on_failure or upstream_from_cookie == nil", then
    # "self:set_cookie(key)" for the new upstream. Before: no cookie (the session kept
    # pointing at the endpoint that failed).
    r = sticky_router({P + "affinity-mode": mode,
                       P + "session-cookie-change-on-failure": "true"})
    for _ in range(6):
        first = r.route("GET", "a.test", "/app")
        assert first is not None and first.set_cookie is not None
        session = {"Cookie": first.set_cookie.split(";")[0]}
        d = r.route("GET", "a.test", "/app/x", session)
        assert d is not None and d.endpoint == first.endpoint and d.set_cookie is None
        assert r.session_cookie(d, ep(d)) is None  # no retry: nothing to send
        nxt = r.next_endpoint(d, {ep(d)})
        assert nxt is not None and nxt != d.endpoint
        cookie = r.session_cookie(d, nxt)
        assert cookie is not None and cookie.startswith("sid=")
        assert attrs(cookie) == attrs(first.set_cookie)  # same Path, HttpOnly...
        moved = r.route("GET", "a.test", "/app/y", {"Cookie": cookie.split(";")[0]})
        assert moved is not None and moved.endpoint == nxt and moved.set_cookie is None
        # A second failure moves it again, never back to the endpoint tried first.
        last = r.next_endpoint(d, {ep(d), nxt})
        assert last is not None and last not in (d.endpoint, nxt)
        again = r.session_cookie(d, last)
        assert again is not None
        d3 = r.route("GET", "a.test", "/app", {"Cookie": again.split(";")[0]})
        assert d3 is not None and d3.endpoint == last


@pytest.mark.parametrize("value", [None, "false", "False", "0"])
def test_without_change_on_failure_an_existing_session_keeps_its_cookie(
        value: str | None) -> None:
    ann = {P + "affinity-mode": "persistent"}
    if value is not None:
        ann[P + "session-cookie-change-on-failure"] = value
    r = sticky_router(ann)
    first = r.route("GET", "a.test", "/app")
    assert first is not None and first.set_cookie is not None
    d = r.route("GET", "a.test", "/app", {"Cookie": first.set_cookie.split(";")[0]})
    assert d is not None and d.set_cookie is None
    nxt = r.next_endpoint(d, {ep(d)})
    assert nxt is not None and r.session_cookie(d, nxt) is None
    assert not r.warnings


def test_change_on_failure_still_renames_a_new_session() -> None:
    r = sticky_router({P + "affinity-mode": "persistent",
                       P + "session-cookie-change-on-failure": "true"})
    d = r.route("GET", "a.test", "/app")
    assert d is not None and d.set_cookie is not None and d.endpoint is not None
    assert r.session_cookie(d, ep(d)) == d.set_cookie
    nxt = r.next_endpoint(d, {ep(d)})
    assert nxt is not None
    cookie = r.session_cookie(d, nxt)
    assert cookie is not None and cookie != d.set_cookie
    d2 = r.route("GET", "a.test", "/app", {"Cookie": cookie.split(";")[0]})
    assert d2 is not None and d2.endpoint == nxt


def test_change_on_failure_on_the_canary_side_keeps_the_canary_tag() -> None:
    # Balanced keys of the canary side end in ".c": a moved canary session stays canary.
    ann = {**STICKY, P + "session-cookie-change-on-failure": "true"}
    main = ingress("web", [("a.test", "/app", "Prefix", "web", 80)], ann)
    can = canary("web-canary", "a.test", "/app", "web2", 80, {P + "canary-weight": "100"})
    r = Router(resources(main, can, *simple_backend("web", IPS),
                         *simple_backend("web2", ["10.1.0.1", "10.1.0.2"])), seed=3)
    first = r.route("GET", "a.test", "/app")
    assert first is not None and first.canary and first.set_cookie is not None
    d = r.route("GET", "a.test", "/app", {"Cookie": first.set_cookie.split(";")[0]})
    assert d is not None and d.canary and d.set_cookie is None
    nxt = r.next_endpoint(d, {ep(d)})
    assert nxt is not None and nxt != d.endpoint
    cookie = r.session_cookie(d, nxt)
    assert cookie is not None and cookie.split(";")[0].endswith(".c")
    d2 = r.route("GET", "a.test", "/app", {"Cookie": cookie.split(";")[0]})
    assert d2 is not None and d2.canary and d2.endpoint == nxt


# --- session-cookie-conditional-samesite-none -----------------------------------------------------


@pytest.mark.parametrize("ua, compatible", [
    (NEW_UA, True),
    (OLD_UA, False),
    ("Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 Chrome/49.0.2623.112 Safari/537.36",
     False),
    ("Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 Chrome/66.0.3359.181 Safari/537.36",
     False),
    ("Mozilla/5.0 (Windows NT 10.0) AppleWebKit/537.36 Chrome/80.0.3987.87 Safari/537.36",
     True),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 12_1 like Mac OS X) AppleWebKit/605.1.15 "
     "(KHTML, like Gecko) Version/12.0 Mobile/15E148 Safari/604.1", False),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 13_1 like Mac OS X) AppleWebKit/605.1.15 "
     "(KHTML, like Gecko) Version/13.0 Mobile/15E148 Safari/604.1", True),
    ("Mozilla/5.0 (iPad; CPU OS 12_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/12.0 Mobile/15E148 Safari/604.1", False),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/12.1.2 Safari/605.1.15", False),
    # Chrome on Mojave is fine ("and not string.match(user_agent, "Chrome")").
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_6) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/85.0.4183.83 Safari/537.36", True),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/14.0 Safari/605.1.15", True),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0", True),
    ("", True),
    (None, True),
])
def test_samesite_none_compatible_is_ingress_nginx_same_site_lua(ua: str | None,
                                                                 compatible: bool) -> None:
    assert samesite_none_compatible(ua) is compatible


@pytest.mark.parametrize("mode", ["persistent", "balanced"])
def test_conditional_samesite_none_leaves_it_out_for_old_user_agents(mode: str) -> None:
    r = sticky_router({P + "affinity-mode": mode, P + "session-cookie-samesite": "None",
                       P + "session-cookie-conditional-samesite-none": "true"})
    new = r.route("GET", "a.test", "/app", {"User-Agent": NEW_UA})
    assert new is not None and new.set_cookie is not None and new.samesite_none
    assert attrs(new.set_cookie) == ["Path=/app", "SameSite=None", "Secure", "HttpOnly"]
    old = r.route("GET", "a.test", "/app", [(b"user-agent", OLD_UA.encode())])
    assert old is not None and old.set_cookie is not None and not old.samesite_none
    # sticky.lua: "cookie_samesite = nil"; Secure stays what session-cookie-secure (or TLS,
    # which the proxy adds) says: nothing asked for it here.
    assert attrs(old.set_cookie) == ["Path=/app", "HttpOnly"]
    # No User-Agent at all: SameSite=None is kept.
    bare = r.route("GET", "a.test", "/app")
    assert bare is not None and bare.set_cookie is not None
    assert "SameSite=None" in attrs(bare.set_cookie)
    # The retry of an old browser's new session gets the same attributes.
    nxt = r.next_endpoint(old, {ep(old)})
    assert nxt is not None
    moved = r.session_cookie(old, nxt)
    assert moved is not None and attrs(moved) == ["Path=/app", "HttpOnly"]


def test_conditional_samesite_none_keeps_an_asked_secure_and_other_samesite_values() -> None:
    r = sticky_router({P + "session-cookie-samesite": "None", P + "session-cookie-secure": "true",
                       P + "session-cookie-conditional-samesite-none": "true",
                       P + "session-cookie-max-age": "60"})
    old = r.route("GET", "a.test", "/app", {"user-agent": OLD_UA})
    assert old is not None and old.set_cookie is not None
    assert attrs(old.set_cookie) == ["Path=/app", "Max-Age=60", "Secure", "HttpOnly"]
    for samesite in ("Lax", "Strict"):
        r = sticky_router({P + "session-cookie-samesite": samesite,
                           P + "session-cookie-conditional-samesite-none": "true"})
        d = r.route("GET", "a.test", "/app", {"user-agent": OLD_UA})
        assert d is not None and d.set_cookie is not None and d.samesite_none
        assert f"SameSite={samesite}" in attrs(d.set_cookie)


def test_without_the_annotation_old_user_agents_get_samesite_none() -> None:
    r = sticky_router({P + "session-cookie-samesite": "None"})
    d = r.route("GET", "a.test", "/app", {"user-agent": OLD_UA})
    assert d is not None and d.set_cookie is not None and d.samesite_none
    assert "SameSite=None" in attrs(d.set_cookie)


def test_conditional_samesite_none_with_expires_and_change_on_failure() -> None:
    # Expires makes the attributes per request; an existing session of an old browser moved by
    # change-on-failure gets them without SameSite=None too.
    r = sticky_router({P + "affinity-mode": "persistent", P + "session-cookie-samesite": "none",
                       P + "session-cookie-conditional-samesite-none": "true",
                       P + "session-cookie-expires": "3600",
                       P + "session-cookie-change-on-failure": "true"})
    ua = {"User-Agent": OLD_UA}
    first = r.route("GET", "a.test", "/app", ua)
    assert first is not None and first.set_cookie is not None
    assert [a.split("=")[0] for a in attrs(first.set_cookie)] == ["Path", "Expires", "HttpOnly"]
    d = r.route("GET", "a.test", "/app", {**ua, "Cookie": first.set_cookie.split(";")[0]})
    assert d is not None and d.set_cookie is None and not d.samesite_none
    nxt = r.next_endpoint(d, {ep(d)})
    assert nxt is not None
    moved = r.session_cookie(d, nxt)
    assert moved is not None and "SameSite=None" not in moved and "Secure" not in moved
    # A modern browser's existing session: the shared Decision, SameSite=None on the move.
    d2 = r.route("GET", "a.test", "/app",
                 {"User-Agent": NEW_UA, "Cookie": first.set_cookie.split(";")[0]})
    assert d2 is not None and d2.samesite_none
    moved2 = r.session_cookie(d2, nxt)
    assert moved2 is not None and "SameSite=None" in attrs(moved2)


# --- session-cookie-partitioned -------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["persistent", "balanced"])
def test_partitioned_cookie(mode: str) -> None:
    # sticky_test.lua: "returns a cookie with Partitioned when user specifies partitioned=true".
    r = sticky_router({P + "affinity-mode": mode, P + "session-cookie-partitioned": "true"})
    d = r.route("GET", "a.test", "/app")
    assert d is not None and d.set_cookie is not None
    # Browsers reject a Partitioned cookie without Secure (as SameSite=None, R22).
    assert attrs(d.set_cookie) == ["Path=/app", "Secure", "HttpOnly", "Partitioned"]
    nxt = r.next_endpoint(d, {ep(d)})
    assert nxt is not None
    moved = r.session_cookie(d, nxt)
    assert moved is not None and attrs(moved)[-1] == "Partitioned"
    off = sticky_router({P + "affinity-mode": mode, P + "session-cookie-partitioned": "false"})
    d2 = off.route("GET", "a.test", "/app")
    assert d2 is not None and d2.set_cookie is not None
    assert attrs(d2.set_cookie) == ["Path=/app", "HttpOnly"]


# --- invalid values ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["session-cookie-change-on-failure",
                                  "session-cookie-conditional-samesite-none",
                                  "session-cookie-partitioned"])
def test_invalid_booleans_are_warned_about_and_read_as_false(name: str) -> None:
    r = sticky_router({P + "session-cookie-samesite": "None", P + name: "maybe"})
    assert warned(r, name) == ["invalid boolean 'maybe'; using false"]
    d = r.route("GET", "a.test", "/app", {"user-agent": OLD_UA})
    assert d is not None and d.set_cookie is not None
    assert attrs(d.set_cookie) == ["Path=/app", "SameSite=None", "Secure", "HttpOnly"]
    first = d.set_cookie.split(";")[0]
    d2 = r.route("GET", "a.test", "/app", {"Cookie": first})
    assert d2 is not None
    nxt = r.next_endpoint(d2, {ep(d2)})
    assert nxt is not None and r.session_cookie(d2, nxt) is None


# --- through the sans-IO proxy core ---------------------------------------------------------------


def _set_cookie(out: bytes) -> str:
    (line,) = re.findall(rb"\r\nset-cookie: ([^\r]*)", out)
    assert isinstance(line, bytes)
    return line.decode()


def _get(ua: str) -> bytes:
    return (f"GET /app HTTP/1.1\r\nHost: a.test\r\nUser-Agent: {ua}\r\n\r\n").encode()


def test_conditional_samesite_none_through_the_proxy() -> None:
    ann = {P + "session-cookie-samesite": "None",
           P + "session-cookie-conditional-samesite-none": "true"}
    old = ProxyPair(router=sticky_router(ann)).send(_get(OLD_UA))
    assert status_of(old) == 200
    assert attrs(_set_cookie(old)) == ["Path=/app", "HttpOnly"]
    new = ProxyPair(router=sticky_router(ann)).send(_get(NEW_UA))
    assert attrs(_set_cookie(new)) == ["Path=/app", "SameSite=None", "Secure", "HttpOnly"]
    # On TLS the proxy adds Secure, as sticky.lua's "cookie_secure = ngx.var.https == "on"".
    tls = ProxyPair(router=sticky_router(ann), tls=True).send(_get(OLD_UA))
    assert attrs(_set_cookie(tls)) == ["Path=/app", "HttpOnly", "Secure"]


def test_a_new_session_retried_by_the_proxy_keeps_the_old_browser_attributes() -> None:
    ann = {P + "affinity-mode": "persistent", P + "session-cookie-samesite": "None",
           P + "session-cookie-conditional-samesite-none": "true"}
    retried = 0
    for seed in range(6):
        router = sticky_router(ann, seed)
        pair = ProxyPair(router=router, refuse=[("10.0.0.1", 8080), ("10.0.0.2", 8080)])
        out = pair.send(_get(OLD_UA))
        assert status_of(out) == 200
        retried += len(pair.opens) > 1
        cookie = _set_cookie(out)
        assert attrs(cookie) == ["Path=/app", "HttpOnly"]
        d = router.route("GET", "a.test", "/app", [("cookie", cookie.split(";")[0])])
        assert d is not None and d.endpoint == ("10.0.0.3", 8080)
    assert retried >= 2
