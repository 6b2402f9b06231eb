"""Session 33 (x15): a second review of the session-affinity cookie, ingress-nginx as the spec.

References (search corpus "code", kubernetes/ingress-nginx):
``internal/ingress/annotations/sessionaffinity/main.go`` (validators, ``cookieAffinityParse``),
``internal/ingress/annotations/parser/validators.go`` (``BasicCharsRegex``, ``alphaNumericChars``),
``pkg/apis/ingress/types.go`` (``CookieSessionAffinity``), ``rootfs/etc/nginx/lua/balancer/
sticky.lua`` (``get_cookie_parsed``, ``set_cookie``, ``is_affinitized``, ``balance``) and
cloudflare/lua-resty-cookie ``lib/resty/cookie.lua`` (``get_cookie_table``, ``bake``).

DEFECT (``test_fix_*``, failed before the fix):

* ``session-cookie-name`` is validated with ``parser.ValidateRegex(parser.BasicCharsRegex,
  true)``: ``^[/`` + ``\\-\\.\\_\\~a-zA-Z0-9\\/:`` + ``]*$``; a value it refuses makes
  ``GetStringAnnotation`` fail and ``cookieAffinityParse`` use ``defaultAffinityCookieName``
  (INGRESSCOOKIE). ingresslib checked the name against RFC 9110's token instead, so
  ``route|v2``, ``sid$``, ``a+b``... named the cookie (ingress-nginx: INGRESSCOOKIE), and
  ``app:sid`` / ``team/sid`` (ingress-nginx's cookie names) were refused for INGRESSCOOKIE:
  a browser got another cookie name than ingress-nginx gives it for the same manifest.

Checked and found right (no change):

* the persistent value (``MD5(upstream name + "ip:port") | MD5(MD5(name) + name)``, sticky.lua
  ``sync``/``set_cookie``, nodemap.lua) and its parse at the first ``|``; the backend key
  deciding the canary side (``is_affinitized``) for a session whose endpoint is gone;
* ``Secure`` on TLS only without ``session-cookie-secure`` (types.go: ``Secure bool
  `json:"secure,omitempty"```, so Lua's ``cookie_secure == nil`` and ``ngx.var.https``
  decides), ``HttpOnly`` always, ``SameSite`` as given and dropped for the ``same_site.lua``
  user agents under ``conditional-samesite-none``;
* the cookie is set only where sticky.lua's ``balance()`` picks a new upstream: no cookie,
  a cookie leading nowhere, a retry of a new session, ``change-on-failure`` on a retry;
  never on an answer without a connect (redirects, 4xx/5xx answered locally, a refused body);
* odd bytes in the cookie value (``|``, ``;``, ``=``, blanks, NUL, latin-1, lone
  surrogates) in both modes and both sides of a canary: never an exception, never an index
  outside the endpoints (a 20000-value fuzz run in the review; the hypothesis test below);
* ``session-cookie-expires`` / ``-max-age``: digits only here; ingress-nginx's regex
  ``(^0|-?[1-9]\\d*$)`` is unanchored, so it lets ``-5`` (a cookie deleted at once), ``x5``
  and ``0x`` through (``tonumber`` nil: a Lua error at ``set_cookie``); ingresslib warns and
  ignores those (README row).
"""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingresslib import EndpointSet
from ingresslib._balance import (
    BalancerOptions,
    CookieAffinity,
    RequestContext,
    parse_balancer_spec,
)
from ingresslib._router import Router

from _budget import examples
from _router_helpers import P, ingress, resources, simple_backend

IPS = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]


def _spec_name(name: str) -> tuple[str, list[tuple[str, str]]]:
    spec, warn = parse_balancer_spec({P + "affinity": "cookie", P + "session-cookie-name": name},
                                     "round_robin", ("round_robin",), "/")
    assert spec.affinity is not None
    return spec.affinity.name, warn


@pytest.mark.parametrize("name", ["route|v2", "sid$", "a+b", "a!b", "a#b", "a%b", "a&b",
                                  "a'b", "a*b", "a^b", "a`b"])
def test_fix_name_outside_basic_chars_is_ingresscookie(name: str) -> None:
    # BasicCharsRegex refuses these: GetStringAnnotation's error, "cookie.Name =
    # defaultAffinityCookieName".
    got, warn = _spec_name(name)
    assert got == "INGRESSCOOKIE"
    assert any(k == P + "session-cookie-name" for k, _ in warn)


@pytest.mark.parametrize("name", ["app:sid", "team/sid", "a.b-c_d~e", "INGRESSCOOKIE", "x"])
def test_fix_name_of_basic_chars_is_kept(name: str) -> None:
    got, warn = _spec_name(name)
    assert got == name
    assert warn == []


@pytest.mark.parametrize("name", ["a b", "", "cké", "a;b", "a=b", "a,b", "a\tb"])
def test_names_refused_still(name: str) -> None:
    # "" is the default (no name); a blank, ";", "=", "," or a CTL would break the header
    # or the Cookie line; "é" is no BasicChars character either.
    got, _ = _spec_name(name)
    assert got == "INGRESSCOOKIE"


def test_fix_a_colon_name_sticks_through_the_router() -> None:
    ann = {P + "affinity": "cookie", P + "session-cookie-name": "app:sid"}
    ing = ingress("web", [("a.test", "/", "Prefix", "web", 80)], ann)
    r = Router(resources(ing, *simple_backend("web", IPS)), seed=3)
    first = r.route("GET", "a.test", "/")
    assert first is not None and first.set_cookie is not None
    assert first.set_cookie.startswith("app:sid=")
    pair = first.set_cookie.split(";")[0]
    for _ in range(5):
        again = r.route("GET", "a.test", "/", [("Cookie", "other=1; " + pair)])
        assert again is not None
        assert again.endpoint == first.endpoint and again.set_cookie is None


_ODD = st.text(st.sampled_from(list("|;=, \t.c0a\x00\xffé\u2028\"") + ["\udcff"]), max_size=10)


@settings(max_examples=examples(), deadline=None)
@given(value=_ODD, mode=st.sampled_from(["balanced", "persistent"]),
       tag=st.sampled_from(["", ".c"]), raw=st.booleans())
def test_odd_cookie_values_never_crash_nor_leave_the_endpoints(
        value: str, mode: str, tag: str, raw: bool) -> None:
    spec, _ = parse_balancer_spec({P + "affinity": "cookie", P + "affinity-mode": mode},
                                  "round_robin", ("round_robin",), "/")
    eps = EndpointSet("default", "web", 80, tuple((ip, 80) for ip in IPS), (1, 1, 1))
    sticky = CookieAffinity(BalancerOptions(spec=spec, rng=random.Random(1)), tag,
                            "default-web-80")
    line = "INGRESSCOOKIE=" + value
    headers: list[tuple[object, object]] = (
        [(b"cookie", line.encode("utf-8", "surrogateescape"))] if raw else [("cookie", line)])
    req = RequestContext("GET", "a.test", "/", headers)  # type: ignore[arg-type]
    index, cookie = sticky.pick_with_cookie(req, eps, ())
    assert index is not None and 0 <= index < len(IPS)
    if cookie is not None:
        assert "\r" not in cookie and "\n" not in cookie and cookie.startswith("INGRESSCOOKIE=")
    retry = sticky.pick(req, eps, [eps.endpoints[index]])
    assert retry is not None and retry != index
    sticky.affinitized(req, eps)
