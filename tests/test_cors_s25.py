"""CORS: ``enable-cors`` and the ``cors-*`` annotations (proxy/_cors.py), through the proxy
core (``Proxy.connection`` over a real Router) and through ``IngressASGI``.

Expected values are written from ingress-nginx: internal/ingress/annotations/cors/main.go
(defaults ``defaultCorsMethods = "GET, PUT, POST, DELETE, PATCH, OPTIONS"``,
``defaultCorsHeaders = "DNT,Keep-Alive,User-Agent,X-Requested-With,If-Modified-Since,
Cache-Control,Content-Type,Range,Authorization"``, ``defaultCorsMaxAge = 1728000``,
credentials default true; the validators ``corsOriginRegexValidator``, ``corsMethodsRegex``,
``parser.HeadersVariable``, ``corsExposeHeadersRegex``), template.go ``buildCorsOriginRegex``
/ ``buildOriginRegex`` (``(?i)`` match anchored at the end, ``*`` = ``[A-Za-z0-9\\-]+``), and
nginx.tmpl's CORS block (``$cors = "trueoptions"``: ``return 204``; ``$cors = "true"``:
``more_set_headers`` on the response, any status).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import h11
from hypothesis import given, settings
from hypothesis import strategies as st

from ingresslib import IngressASGI, Router, parse_manifests
from ingresslib.proxy import ProxySettings
from ingresslib.proxy._annotations import PREFIX, parse_route_options
from ingresslib.proxy._cors import DEFAULT_HEADERS, DEFAULT_METHODS, Cors, _origin_list_valid

from _budget import examples
from _proxy_harness import (WEB_SERVICE_YAML, FakeUpstream, ProxyPair, Reply, ingress_yaml, ok,
                            web_service_yaml)

P = PREFIX
SETTINGS = ProxySettings()
ON = {P + "enable-cors": "true"}
LIST = {**ON, P + "cors-allow-origin": "https://a.test, https://*.b.test:8443"}


def parse(annotations: dict[str, str], **kw: Any) -> Any:
    return parse_route_options({P + k: v for k, v in annotations.items()}, "/", SETTINGS, **kw)


def headers_of(out: bytes) -> dict[bytes, list[bytes]]:
    found: dict[bytes, list[bytes]] = {}
    for line in out.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        found.setdefault(name.strip().lower(), []).append(value.strip())
    return found


def status_of(out: bytes) -> int:
    return int(out.split(b" ", 2)[1])


def pair(annotations: dict[str, str], app: Any = None, extra: str = "",
         path: str = "/") -> ProxyPair:
    docs = ingress_yaml("web", "example.test", annotations, path=path) + extra + WEB_SERVICE_YAML
    kw = {} if app is None else {"app": app}
    return ProxyPair(router=Router(parse_manifests(docs)), **kw)


def request(method: str, origin: str | None = None, path: str = "/x",
            host: str = "example.test", extra: str = "") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}"
    if origin is not None:
        head += f"Origin: {origin}\r\n"
    return (head + "\r\n").encode()


# --- parsing: cors/main.go --------------------------------------------------------------------

def test_defaults_of_cors_main_go() -> None:
    opts = parse({"enable-cors": "true"})
    assert opts.cors == Cors(("*",), "GET, PUT, POST, DELETE, PATCH, OPTIONS",
                             DEFAULT_HEADERS, True, "", 1728000)
    assert opts.warnings == ()
    assert parse({}).cors is None
    assert parse({"enable-cors": "false", "cors-allow-origin": "https://a.test"}).cors is None


def test_cors_annotations_no_longer_warn_not_implemented() -> None:
    opts = parse({"enable-cors": "true", "cors-allow-origin": "https://a.test",
                  "cors-allow-methods": "GET", "cors-allow-headers": "X-A",
                  "cors-expose-headers": "X-B", "cors-allow-credentials": "false",
                  "cors-max-age": "60"})
    assert opts.warnings == ()
    assert opts.cors == Cors(("https://a.test",), "GET", "X-A", False, "X-B", 60)


def test_invalid_values_warn_and_take_the_defaults() -> None:
    opts = parse({"enable-cors": "true", "cors-allow-methods": "GET;POST",
                  "cors-allow-headers": "X-A, X.B", "cors-expose-headers": "X-A/B",
                  "cors-allow-credentials": "maybe", "cors-max-age": "1h"})
    cors = opts.cors
    assert cors == Cors(("*",), DEFAULT_METHODS, DEFAULT_HEADERS, True, "", 1728000)
    text = "\n".join(opts.warnings)
    for key in ("cors-allow-methods", "cors-allow-headers", "cors-expose-headers",
                "cors-allow-credentials", "cors-max-age"):
        assert P + key in text, key
    assert "using the default" in text
    # enable-cors itself invalid: off (main.go: "enable-cors is invalid, defaulting to 'false'")
    off = parse({"enable-cors": "yes"})
    assert off.cors is None and any(P + "enable-cors" in w for w in off.warnings)


def test_values_as_the_validators_read_them() -> None:
    # methods: ^([A-Za-z]+,?\s?)+$ ; headers: ^[A-Za-z0-9-_, ]*$ ; expose: letters/digits/-_ or *
    cors = parse({"enable-cors": "true", "cors-allow-methods": "GET,POST, put",
                  "cors-allow-headers": "X-Custom_1, Content-Type",
                  "cors-expose-headers": "*, X-Total", "cors-max-age": "-5"}).cors
    assert cors.allow_methods == "GET,POST, put"
    assert cors.allow_headers == "X-Custom_1, Content-Type"
    assert cors.expose_headers == "*, X-Total"
    assert cors.max_age == -5  # Go's Atoi
    # A line break would be written into the header by nginx: refused here.
    assert parse({"enable-cors": "true",
                  "cors-allow-methods": "GET,\nPOST"}).cors.allow_methods == DEFAULT_METHODS


def test_validator_regexes_do_not_backtrack() -> None:
    # Go's RE2 is linear; ``^([A-Za-z]+,?\s?)+$`` in Python's re never ends on this.
    cors = parse({"enable-cors": "true", "cors-allow-methods": "A" * 40 + "!",
                  "cors-expose-headers": "A" * 40 + "!",
                  "cors-allow-origin": "https://" + "a" * 40 + "!"}).cors
    assert cors.allow_methods == DEFAULT_METHODS and cors.expose_headers == ""
    assert cors.origins == ("*",)


#: corsOriginRegexValidator as written (Go), run by Python's backtracking re on short values
#: (any lower-case scheme and null since ingress-nginx PRs #11153, #12402: tests/test_x7_s33.py).
_GO_VALIDATOR = re.compile(
    r"^((((([a-z]+://)?(\*\.)?[A-Za-z0-9\-.]*(:\d+)?,?)|null)+)|\*)?\Z")


@settings(max_examples=examples(0.5), deadline=None)
@given(st.text(alphabet="htps:/*.a1,-x ", max_size=10))
def test_origin_list_validator_is_the_go_regex(value: str) -> None:
    assert _origin_list_valid(value) == bool(_GO_VALIDATOR.match(value.replace(" ", "")))


def test_origin_list_parsing() -> None:
    # Each element trimmed and checked (corsOriginRegex), a bad one skipped with a warning.
    opts = parse({"enable-cors": "true",
                  "cors-allow-origin": "https://a.test , b.test,http://*.c.test:81"})
    assert opts.cors.origins == ("https://a.test", "http://*.c.test:81")
    assert any("'b.test'" in w and "skipped" in w for w in opts.warnings)
    # "*" anywhere: every origin.
    assert parse({"enable-cors": "true",
                  "cors-allow-origin": "https://a.test, *"}).cors.origins == ("*",)
    # The whole list refused by corsOriginRegexValidator (a path, an upper-case scheme): "*".
    for bad in ("https://a.test/path", "HTTPS://a.test", "https://a.test;x"):
        opts = parse({"enable-cors": "true", "cors-allow-origin": bad})
        assert opts.cors.origins == ("*",), bad
        assert any("using the default \"*\"" in w for w in opts.warnings), bad
    # An empty element is skipped (ingress-nginx: an empty regex alternative, every Origin).
    opts = parse({"enable-cors": "true", "cors-allow-origin": "https://a.test,"})
    assert opts.cors.origins == ("https://a.test",)
    assert any("empty origin" in w for w in opts.warnings)
    # Nothing valid: no CORS header at all.
    opts = parse({"enable-cors": "true", "cors-allow-origin": "a.test"})
    assert opts.cors.origins == () and opts.cors.headers("a.test") is None


def test_origin_matching_with_wildcards() -> None:
    cors = Cors(("https://a.test", "https://*.b.test:8443"))
    assert cors.allowed_origin("https://a.test") == "https://a.test"
    assert cors.allowed_origin("HTTPS://A.TEST") == "HTTPS://A.TEST"  # ~* : case-insensitive
    assert cors.allowed_origin("https://x-1.b.test:8443") == "https://x-1.b.test:8443"
    assert cors.allowed_origin("https://b.test:8443") is None  # "*" is one label, not none
    assert cors.allowed_origin("https://x.y.b.test:8443") is None  # one label only
    assert cors.allowed_origin("https://x.b.test") is None  # the port is part of it
    assert cors.allowed_origin("http://a.test") is None
    assert cors.allowed_origin("https://a.test.evil") is None  # anchored at the end
    assert cors.allowed_origin("https://aXtest") is None  # "." is literal
    assert cors.allowed_origin(None) is None
    assert Cors(("*",)).allowed_origin(None) == "*"


# --- the proxy core ---------------------------------------------------------------------------

def test_core_preflight_answered_204_by_the_location() -> None:
    p = pair(LIST)
    out = p.send(request("OPTIONS", "https://q.b.test:8443",
                         extra="Access-Control-Request-Method: PUT\r\n"))
    assert status_of(out) == 204
    h = headers_of(out)
    assert h[b"access-control-allow-origin"] == [b"https://q.b.test:8443"]
    assert h[b"access-control-allow-credentials"] == [b"true"]
    assert h[b"access-control-allow-methods"] == [DEFAULT_METHODS.encode()]
    assert h[b"access-control-allow-headers"] == [DEFAULT_HEADERS.encode()]
    assert h[b"access-control-max-age"] == [b"1728000"]
    # nginx's header filter drops Content-Type and Content-Length from a 204
    assert b"content-length" not in h and b"content-type" not in h
    assert p.upstreams == []  # never proxied
    # the connection goes on
    again = p.send(request("GET", "https://a.test"))
    assert status_of(again) == 200


def test_core_headers_on_proxied_responses_replace_the_upstream_s() -> None:
    def app(req: h11.Request, body: bytes, up: FakeUpstream) -> Reply:
        return ok(b"x", b"Access-Control-Allow-Origin: https://upstream.test\r\n"
                        b"Access-Control-Max-Age: 5\r\n")
    p = pair({**LIST, P + "cors-expose-headers": "X-Total", P + "cors-max-age": "60"}, app)
    h = headers_of(p.send(request("GET", "https://a.test")))
    assert h[b"access-control-allow-origin"] == [b"https://a.test"]
    assert h[b"access-control-max-age"] == [b"60"]
    assert h[b"access-control-expose-headers"] == [b"X-Total"]


def test_core_headers_on_an_upstream_error_and_the_proxy_s_own_errors() -> None:
    def app(req: h11.Request, body: bytes, up: FakeUpstream) -> Reply:
        return Reply(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")
    p = pair(ON, app)
    out = p.send(request("POST", "https://z.test", extra="Content-Length: 0\r\n"))
    assert status_of(out) == 500
    assert headers_of(out)[b"access-control-allow-origin"] == [b"*"]
    # no endpoint: the location's own 503 gets them too
    docs = ingress_yaml("web", "example.test", ON, service="none")
    p2 = ProxyPair(router=Router(parse_manifests(docs)))
    out = p2.send(request("GET"))
    assert status_of(out) == 503
    assert headers_of(out)[b"access-control-allow-origin"] == [b"*"]


def test_core_origin_not_allowed_gets_nothing_and_options_is_proxied() -> None:
    p = pair(LIST)
    out = p.send(request("OPTIONS", "https://evil.test"))
    assert status_of(out) == 200 and b"access-control" not in out.lower()
    assert len(p.upstreams) == 1
    out = p.send(request("GET"))  # no Origin
    assert b"access-control" not in out.lower()


def test_core_any_origin_and_credentials_off() -> None:
    p = pair({**ON, P + "cors-allow-credentials": "false"})
    h = headers_of(p.send(request("GET")))  # "*": even without an Origin
    assert h[b"access-control-allow-origin"] == [b"*"]
    assert b"access-control-allow-credentials" not in h


def test_core_preflight_before_access_control_which_keeps_the_headers() -> None:
    # return 204 runs in nginx's rewrite phase, allow/deny in the access phase after it.
    p = pair({**ON, P + "allowlist-source-range": "10.0.0.0/8"})
    out = p.send(request("OPTIONS", "https://a.test"))
    assert status_of(out) == 204
    out = p.send(request("GET", "https://a.test"))
    assert status_of(out) == 403
    assert headers_of(out)[b"access-control-allow-origin"] == [b"*"]


def test_core_app_root_redirect_is_the_server_s() -> None:
    p = pair({**ON, P + "app-root": "/app"})
    out = p.send(request("OPTIONS", "https://a.test", path="/"))
    assert status_of(out) == 302 and b"access-control" not in out.lower()


def test_core_without_enable_cors_unchanged_and_unrouted_gets_nothing() -> None:
    p = pair({P + "cors-allow-origin": "https://a.test"})
    out = p.send(request("OPTIONS", "https://a.test"))
    assert status_of(out) == 200 and b"access-control" not in out.lower()
    assert len(p.upstreams) == 1
    out = pair(ON).send(request("OPTIONS", "https://a.test", host="other.test"))
    assert status_of(out) == 404 and b"access-control" not in out.lower()


def test_canary_cors_annotations_are_ignored() -> None:
    main = {**ON, P + "cors-allow-origin": "https://a.test"}
    canary = {P + "canary": "true", P + "canary-weight": "100", **ON,
              P + "cors-allow-origin": "*"}
    opts = parse_route_options(canary, "/", SETTINGS, main_annotations=main)
    assert opts.cors is None
    assert any(P + "cors-allow-origin" in w and "canary" in w for w in opts.warnings)
    assert not any(P + "enable-cors" in w for w in opts.warnings)  # same as the main's
    extra = ingress_yaml("can", "example.test", canary, service="web2",
                         created="2024-02-01T00:00:00Z") + web_service_yaml().replace(
        "web", "web2").replace("10.0.0.1", "10.0.0.9")
    p = pair(main, extra=extra)
    # canary traffic takes the main rule's CORS: the canary's "*" does not apply
    out = p.send(request("GET", "https://evil.test"))
    assert status_of(out) == 200 and b"access-control" not in out.lower()
    assert p.upstreams[-1].endpoint == ("10.0.0.9", 80)  # the canary's backend
    out = p.send(request("GET", "https://a.test"))
    assert headers_of(out)[b"access-control-allow-origin"] == [b"https://a.test"]
    out = p.send(request("OPTIONS", "https://a.test"))
    assert status_of(out) == 204


# --- IngressASGI ------------------------------------------------------------------------------

async def _backend(scope: Any, receive: Any, send: Any) -> None:
    status = 500 if scope["path"] == "/fail" else 200
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain"),
                            (b"Access-Control-Allow-Origin", b"https://app.test")]})
    await send({"type": "http.response.body", "body": b"app"})


def asgi(annotations: dict[str, str], method: str, origin: str | None = None,
         path: str = "/x") -> tuple[int, dict[bytes, list[bytes]]]:
    app = IngressASGI(parse_manifests(ingress_yaml("web", "example.test", annotations)),
                      backends={"default/web": _backend})
    sent: list[dict[str, Any]] = []

    async def send(m: Any) -> None:
        sent.append(dict(m))

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    headers = [(b"host", b"example.test")]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "root_path": "", "query_string": b"", "client": ("10.1.1.1", 5000),
             "server": ("127.0.0.1", 80), "headers": headers}
    asyncio.run(app(scope, receive, send))
    found: dict[bytes, list[bytes]] = {}
    for n, v in sent[0].get("headers") or ():
        found.setdefault(bytes(n).lower(), []).append(bytes(v))
    return sent[0]["status"], found


def test_asgi_preflight_and_headers_as_the_core() -> None:
    status, h = asgi(LIST, "OPTIONS", "https://q.b.test:8443")
    assert status == 204
    assert h[b"access-control-allow-origin"] == [b"https://q.b.test:8443"]
    assert h[b"access-control-max-age"] == [b"1728000"]
    assert b"content-length" not in h and b"content-type" not in h
    status, h = asgi(LIST, "GET", "https://a.test")
    assert status == 200
    assert h[b"access-control-allow-origin"] == [b"https://a.test"]  # the app's replaced
    assert h[b"access-control-allow-methods"] == [DEFAULT_METHODS.encode()]
    status, h = asgi(ON, "GET", "https://a.test", path="/fail")
    assert status == 500 and h[b"access-control-allow-origin"] == [b"*"]


def test_asgi_origin_not_allowed_and_no_enable_cors_unchanged() -> None:
    status, h = asgi(LIST, "OPTIONS", "https://evil.test")
    assert status == 200 and h[b"access-control-allow-origin"] == [b"https://app.test"]
    status, h = asgi({P + "cors-allow-origin": "https://a.test"}, "OPTIONS", "https://a.test")
    assert status == 200 and h[b"access-control-allow-origin"] == [b"https://app.test"]
    assert b"access-control-allow-methods" not in h
