"""Session 33, x7: a second engineer's review of CORS (``enable-cors`` and ``cors-*``,
proxy/_cors.py, the proxy core's ``_cors_headers``, ``IngressASGI``), with ingress-nginx as the
spec: internal/ingress/annotations/cors/main.go (validators, ``Parse``), template.go
``buildCorsOriginRegex`` / ``buildOriginRegex`` and nginx.tmpl's ``CORS`` template (written
in the location only ``{{ if isLocationAllowed $location }}``).

Defects found (each test below failed before its fix):

- A location ingress-nginx denies because of its ``proxy-ssl-secret`` (proxyssl/main.go:
  "error obtaining certificate" -> ``ing_errors.LocationDeniedError``) answers nginx.tmpl's
  bare "# Location denied ... return 503;": none of the allowed branch (the CORS block,
  custom-headers). The core put the CORS (and custom-headers) headers on that 503, and on the
  503 it answers for ``auth-tls-*`` it cannot enforce (its fail-closed stand-in for
  authtls/main.go's LocationDeniedError), so a browser could read those 503s.
- ``cors-allow-origin`` took only ``http(s)://`` origins. ingress-nginx accepts any lower-case
  scheme since PR #11153 (``tauri://localhost``, ``capacitor://localhost``) and ``null`` since
  PR #12402 (``corsOriginRegexValidator`` ``^((((([a-z]+://)?(\\*\\.)?[A-Za-z0-9\\-.]*(:\\d+)?,?)
  |null)+)|\\*)?$``, ``corsOriginRegex``
  ``^([a-z]+://(\\*\\.)?[A-Za-z0-9\\-.]*(:\\d+)?|\\*|null)?$``): such an app (or a
  sandboxed page, ``Origin: null``) got no CORS header here; a list with ``ftp://...`` even
  fell back to ``*``.

Checked and found right (no change):

- defaults (methods, headers, max-age 1728000, credentials true, expose ""); invalid values
  ignored with the default; ``*`` anywhere in the list wins; an element failing
  ``corsOriginRegex`` skipped; nothing valid left: no CORS at all (the template's ``{{ if
  $cors.CorsAllowOrigin }}`` writes no origin ``if``).
- matching: ``~*`` (case-insensitive), anchored at the end only, ``*`` of ``https://*.x`` one
  DNS label (``[A-Za-z0-9\\-]+``, first ``*`` only), the port part of the origin; the allowed
  Origin echoed as sent; ``*`` mode sends ``Access-Control-Allow-Origin: *`` on every request
  (no Origin needed) and ``Access-Control-Allow-Credentials: true`` with it, as nginx does.
- preflight: every ``OPTIONS`` whose Origin is allowed (with ``*``: every ``OPTIONS``, Origin or
  not, ``Access-Control-Request-Method`` or not) is answered 204 by the location's rewrite
  phase: before ssl-redirect/force-ssl-redirect (lua rewrite runs after the rewrite module),
  permanent-/temporal-redirect (a later ``return``), global-rate-limit, limit_req, allow/deny,
  basic auth, auth-url; never proxied and never mirrored; the 204 carries every CORS header
  (expose headers and max-age included) and neither Content-Type nor Content-Length (nginx's
  header filter drops them from a 204). app-root's server-level 302 and the 413 of a declared
  length (find-config phase) come first and carry no CORS.
- simple requests and errors: the headers on the upstream's answers (any status) and on the
  proxy's own 301/302/308, 401 (basic auth, auth-url), 403 (allowlist), 429/503 (rate limits),
  500 (auth service error), 502/503/504, auth-signin's 302 (its location has the CORS block
  too); not on custom-http-errors pages (``error_page`` moves the request to ``@custom_...``,
  without the location's ``more_set_headers``: documented).
- ``more_set_headers`` replaces every upstream line of the names it sets (two
  ``Access-Control-Allow-Origin`` lines become one); the upstream's ``Access-Control-Allow-
  Credentials``/``-Expose-Headers`` pass when the location does not set them; an Origin not
  allowed gets the upstream's headers untouched and its ``OPTIONS`` goes to the upstream;
  ``Vary`` is the upstream's (ingress-nginx adds no ``Vary: Origin``).
- canary traffic takes the main Ingress's CORS; a denied location (access annotations) has none;
  IngressASGI answers the same in all of the above it models (no TLS to endpoints there).
"""

from __future__ import annotations

import re
from hypothesis import given, settings
from hypothesis import strategies as st

from ingresslib import Router, parse_manifests
from ingresslib.proxy._cors import _origin_list_valid

from _budget import examples
from _proxy_harness import WEB_SERVICE_YAML, ProxyPair, ingress_yaml
from test_cors_s25 import LIST, ON, P, asgi, headers_of, pair, parse, request, status_of
from test_header_sets_s25 import ALLOWED, ANN, HDRS

ORIGIN = "https://a.test"
ALLOW = {**ON, P + "cors-allow-origin": ORIGIN}
#: proxy-ssl-secret naming a Secret that does not exist: the location is denied (503).
PROXY_SSL_DENIED = {P + "proxy-ssl-secret": "default/nope", P + "backend-protocol": "HTTPS"}


def _cors_names(out: bytes) -> list[bytes]:
    return [n for n in headers_of(out) if n.startswith(b"access-control-")]


# --- a denied location: no CORS, no custom-headers ---------------------------------------------

def test_core_proxy_ssl_denied_location_has_no_cors() -> None:
    p = pair({**ALLOW, **PROXY_SSL_DENIED})
    for method in ("GET", "OPTIONS"):
        out = p.send(request(method, ORIGIN))
        assert status_of(out) == 503, method
        assert _cors_names(out) == [], method
    assert p.upstreams == []
    # "*" too: the template's "set $cors 'true'" is in the allowed branch only.
    out = pair({**ON, **PROXY_SSL_DENIED}).send(request("OPTIONS"))
    assert status_of(out) == 503 and _cors_names(out) == []


def test_core_proxy_ssl_denied_location_has_no_custom_headers() -> None:
    docs = ingress_yaml("web", "example.test", {**ANN, **PROXY_SSL_DENIED}) + HDRS \
        + WEB_SERVICE_YAML
    out = ProxyPair(router=Router(parse_manifests(docs)), settings=ALLOWED).send(
        request("GET"))
    assert status_of(out) == 503
    assert b"x-team" not in headers_of(out)


def test_core_auth_tls_it_cannot_enforce_has_no_cors() -> None:
    # No client_auth on this Proxy: the location fails closed (503), as a denied one.
    p = pair({**ALLOW, P + "auth-tls-secret": "default/ca"})
    out = p.send(request("OPTIONS", ORIGIN))
    assert status_of(out) == 503 and _cors_names(out) == []


def test_core_allowed_location_keeps_its_cors() -> None:
    # The same location with a usable configuration: the headers as before.
    out = pair(ALLOW).send(request("GET", ORIGIN))
    assert headers_of(out)[b"access-control-allow-origin"] == [ORIGIN.encode()]


# --- origins of any scheme, and null (ingress-nginx PRs #11153, #12402) ------------------------

APPS = "capacitor://localhost, null, tauri://*.app.test:9000, https://a.test"


def test_origins_of_any_lower_case_scheme_and_null_are_read() -> None:
    opts = parse({"enable-cors": "true", "cors-allow-origin": APPS})
    assert opts.cors.origins == ("capacitor://localhost", "null", "tauri://*.app.test:9000",
                                 "https://a.test")
    assert opts.warnings == ()
    # ftp:// is a scheme like any other now (it used to refuse the whole list: "*").
    assert parse({"enable-cors": "true",
                  "cors-allow-origin": "ftp://a.test"}).cors.origins == ("ftp://a.test",)
    # Still refused: an upper-case scheme ([a-z]+), a path, another character.
    for bad in ("HTTPS://a.test", "https://a.test/path", "nul!"):
        opts = parse({"enable-cors": "true", "cors-allow-origin": bad})
        assert opts.cors.origins == ("*",), bad
        assert any("using the default \"*\"" in w for w in opts.warnings), bad
    # "null" is an element of its own; "https://null" is an origin like any other.
    opts = parse({"enable-cors": "true", "cors-allow-origin": "xnull, https://null"})
    assert opts.cors.origins == ("https://null",)
    assert any("'xnull'" in w and "skipped" in w for w in opts.warnings)


def test_core_answers_app_origins_and_null() -> None:
    p = pair({**ON, P + "cors-allow-origin": APPS})
    for origin in ("capacitor://localhost", "null", "tauri://w1.app.test:9000"):
        out = p.send(request("OPTIONS", origin))
        assert status_of(out) == 204, origin
        assert headers_of(out)[b"access-control-allow-origin"] == [origin.encode()], origin
        out = p.send(request("GET", origin))
        assert headers_of(out)[b"access-control-allow-origin"] == [origin.encode()], origin
    out = p.send(request("OPTIONS", "capacitor://other"))
    assert status_of(out) == 200 and _cors_names(out) == []  # not allowed: proxied


def test_asgi_answers_app_origins_and_null() -> None:
    ann = {**ON, P + "cors-allow-origin": APPS}
    status, h = asgi(ann, "OPTIONS", "null")
    assert status == 204 and h[b"access-control-allow-origin"] == [b"null"]
    status, h = asgi(ann, "GET", "capacitor://localhost")
    assert status == 200 and h[b"access-control-allow-origin"] == [b"capacitor://localhost"]
    status, h = asgi(LIST, "OPTIONS", "capacitor://localhost")
    assert status == 200  # not in that list: the app answers


#: corsOriginRegexValidator of today's cors/main.go, as written (Go), run by Python's
#: backtracking re on short values.
_GO_VALIDATOR = re.compile(
    r"^((((([a-z]+://)?(\*\.)?[A-Za-z0-9\-.]*(:\d+)?,?)|null)+)|\*)?\Z")


@settings(max_examples=examples(0.5), deadline=None)
@given(st.lists(st.sampled_from(["h", "tp", "null", "://", ":", "/", "*", "*.", ".", "1", ",",
                                 "T", "-", " "]), max_size=6).map("".join)
       .filter(lambda v: len(v) <= 14))  # (the Go regex backtracks exponentially in re)
def test_origin_list_validator_is_today_s_go_regex(value: str) -> None:
    assert _origin_list_valid(value) == bool(_GO_VALIDATOR.match(value.replace(" ", "")))


def test_origin_list_validator_examples_of_cors_main_go_test() -> None:
    # TestCorsOriginRegexValidator (cors/main_test.go).
    for value, valid in (("https://*.foo.bar", True), ("http://*.bar.foo:8080", True),
                         ("myprotocol://*.abc.bar.foo:9000", True),
                         ("https://origin1.com,http://origin2.com:8080,null", True),
                         ("https://*.foo.bar,http://*.baz.qux:443", True), ("*", True),
                         ("null", True), ("", True), ("origin123.test.com:4443", True),
                         (":8080", True), ("https://$upstream", False)):
        assert _origin_list_valid(value) is valid, value


def test_the_validator_stays_linear() -> None:
    long = "a" * 5000
    assert _origin_list_valid(long + "://x") and not _origin_list_valid(long + "!")
