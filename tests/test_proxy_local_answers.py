"""Answers the sans-IO core gives by itself (404, 503, redirects, 4xx, 502/504 without an
upstream answer): the request id they log, redirects for a request without Host, and the
ssl-redirect of a TLS host's paths that no rule covers (ingress-nginx's server ``location /``).
"""

from __future__ import annotations

from typing import Any

import pytest

import ingresslib
from ingresslib._accesslog import access_fields
from ingresslib.proxy import ProxySettings, TimerKind

from _proxy_harness import (FakeDecision, FakeMatch, FakeRouter, ProxyPair, Route, location,
                            status_of)

H = b"Host: example.test\r\n"
RID = "0123456789abcdef0123456789abcdef"
P = "nginx.ingress.kubernetes.io/"


# ------------------------------------------------------------------ 1. request ids
LOCAL_ANSWERS: list[tuple[str, dict[str, Any], bytes, int]] = [
    ("404 no route", {"routes": [Route("/api")]}, b"GET /web HTTP/1.1\r\n" + H, 404),
    ("503 no endpoint", {"routes": [Route("/", endpoints=[])]}, b"GET / HTTP/1.1\r\n" + H, 503),
    ("308 ssl-redirect", {"tls_hosts": {"example.test"}}, b"GET /a HTTP/1.1\r\n" + H, 308),
    ("302 app-root", {"routes": [Route("/", annotations={P + "app-root": "/app"})]},
     b"GET / HTTP/1.1\r\n" + H, 302),
    ("413 body too large", {"routes": [Route("/", annotations={P + "proxy-body-size": "2"})]},
     b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n", 413),
    # Refused after h11 parsed the head: the head's own X-Request-ID is read.
    ("400 absolute-form/Host mismatch", {}, b"GET http://other.test/ HTTP/1.1\r\n" + H, 400),
    ("200 OPTIONS *", {}, b"OPTIONS * HTTP/1.1\r\n" + H, 200),
    ("502 every endpoint refused", {"refuse": [("10.0.0.1", 8080)]},
     b"GET / HTTP/1.1\r\n" + H, 502),
]


@pytest.mark.parametrize(("kw", "head", "status"), [c[1:] for c in LOCAL_ANSWERS],
                         ids=[c[0] for c in LOCAL_ANSWERS])
def test_local_answers_log_the_request_id_like_a_proxied_request(
        kw: dict[str, Any], head: bytes, status: int) -> None:
    # ingress-nginx logs $req_id for every request: "map $http_x_request_id $req_id { default
    # $http_x_request_id; "" $request_id; }". Before, every local answer logged "-".
    generated = ProxyPair(**kw)
    out = generated.send(head + b"\r\n")
    assert status_of(out) == status
    (r,) = generated.records
    assert r.status == status and r.request_id == RID
    assert access_fields(r, now=0.0)["req_id"] == RID
    # The client's X-Request-ID, passed through as the proxied path does.
    client = ProxyPair(**kw)
    client.send(head + b"X-Request-ID: abc-1\r\n\r\n")
    assert client.records[0].request_id == "abc-1"
    # generate-request-id off: "default $http_x_request_id;" only, nothing when none was sent.
    off = ProxyPair(**kw, settings=ProxySettings(generate_request_id=False))
    off.send(head + b"\r\n")
    assert off.records[0].request_id is None


@pytest.mark.parametrize("value", [b"", b"a b", b"x" * 201])
def test_local_answer_replaces_a_request_id_that_is_not_a_token(value: bytes) -> None:
    # The same rule as the proxied path (valid_request_id): only an opaque token is kept.
    pair = ProxyPair([Route("/api")])
    pair.send(b"GET /web HTTP/1.1\r\n" + H + b"X-Request-ID: " + value + b"\r\n"
              b"X-Request-ID: later\r\n\r\n")
    assert pair.records[0].request_id == RID
    off = ProxyPair([Route("/api")], settings=ProxySettings(generate_request_id=False))
    off.send(b"GET /web HTTP/1.1\r\n" + H + b"X-Request-ID: " + value + b"\r\n\r\n")
    assert off.records[0].request_id is None


def test_local_answer_ignores_a_request_id_named_in_connection() -> None:
    # The proxied path drops headers named in Connection before it looks for X-Request-ID.
    for routes, status in (([Route("/")], 200), ([Route("/api")], 404)):
        pair = ProxyPair(routes)
        out = pair.send(b"GET /web HTTP/1.1\r\n" + H + b"Connection: X-Request-ID\r\n"
                        b"X-Request-ID: abc\r\n\r\n")
        assert status_of(out) == status and pair.records[0].request_id == RID


@pytest.mark.parametrize(("head", "status"), [
    (b"GET / HTTP/1.1\nHost: example.test\r\nX-Request-ID: abc\r\n\r\n", 400),   # bare LF
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n" + H + b"X-Request-ID: abc\r\n\r\n", 414),
])
def test_a_head_refused_before_parsing_gets_a_generated_id(head: bytes, status: int) -> None:
    # Choice: no id is read out of bytes refused as malformed (nginx's $http_x_request_id is
    # empty for a request it could not parse, and its map falls to $request_id).
    pair = ProxyPair()
    out = pair.send(head)
    assert status_of(out) == status
    assert pair.records[0].request_id == RID


def test_a_head_timeout_408_gets_a_generated_id() -> None:
    pair = ProxyPair()
    pair.send(b"GET / HTTP/1.1\r\nX-Request-ID: abc\r\n")
    out = pair.fire(TimerKind.HEAD)
    assert status_of(out) == 408
    assert pair.records[0].request_id == RID


def test_the_proxied_path_keeps_its_single_choice() -> None:
    # The id chosen for the upstream is the one logged, also when the answer is a local 504.
    pair = ProxyPair(hang=[("10.0.0.1", 8080)])
    out = pair.send(b"GET / HTTP/1.1\r\n" + H + b"X-Request-ID: abc\r\n\r\n")
    assert status_of(out) == 504 and pair.records[0].request_id == "abc"
    ids = iter(["1" * 32, "2" * 32])
    pair = ProxyPair([Route("/api")], request_id=lambda: next(ids))
    pair.send(b"GET /web HTTP/1.1\r\n" + H + b"\r\n")
    pair.send(b"GET /api HTTP/1.1\r\n" + H + b"\r\n")
    assert [r.request_id for r in pair.records] == ["1" * 32, "2" * 32]


def test_no_id_is_generated_when_no_records_are_made() -> None:
    calls: list[int] = []

    def gen() -> str:
        calls.append(1)
        return RID

    pair = ProxyPair([Route("/api")], request_id=gen)
    pair.proxy.records = False
    assert status_of(pair.send(b"GET /web HTTP/1.1\r\n" + H + b"\r\n")) == 404
    assert calls == []


# ------------------------------------------------------------------ 2. no Host
FORCE = {P + "force-ssl-redirect": "true"}


def test_force_ssl_redirect_without_host_serves_the_request() -> None:
    # Before: "308 location: https:///a" (no authority). ingress-nginx would send its server
    # name, "https://_/a". Choice: with no host to send the client to, no redirect.
    pair = ProxyPair([Route("/", annotations=FORCE)])
    out = pair.send(b"GET /a?x=1 HTTP/1.0\r\n\r\n")
    assert status_of(out) == 200 and location(out) is None
    assert len(pair.opens) == 1
    # A Host still redirects, and so does an absolute-form target (its authority is the host).
    pair = ProxyPair([Route("/", annotations=FORCE)])
    assert location(pair.send(b"GET /a?x=1 HTTP/1.0\r\n" + H + b"\r\n")) == \
        b"https://example.test/a?x=1"
    pair = ProxyPair([Route("/", annotations=FORCE)])
    assert location(pair.send(b"GET http://example.test/a HTTP/1.0\r\n\r\n")) == \
        b"https://example.test/a"


class _RuleHostRouter(FakeRouter):
    """A router that matches a rule with a host for a request without Host."""

    def __init__(self, rule_host: str) -> None:
        super().__init__([Route("/", host=rule_host, annotations=FORCE)])

    def route(self, method: str, host: str, path: str, headers: Any,
              client_ip: str | None) -> FakeDecision | None:
        r = self.routes[0]
        assert isinstance(r.match, FakeMatch)
        return FakeDecision(r.service, "default", 8080, r.endpoints[0], False, r.match)


def test_redirect_without_host_uses_the_rule_host_when_there_is_one() -> None:
    pair = ProxyPair(router=_RuleHostRouter("shop.test"), https_port=8443)
    out = pair.send(b"GET /a?x=1 HTTP/1.0\r\n\r\n")
    assert status_of(out) == 308 and location(out) == b"https://shop.test:8443/a?x=1"
    # A wildcard rule host names no host: no redirect.
    pair = ProxyPair(router=_RuleHostRouter("*.shop.test"))
    out = pair.send(b"GET /a HTTP/1.0\r\n\r\n")
    assert status_of(out) == 200 and location(out) is None


def test_app_root_without_host_is_a_relative_location() -> None:
    # Before: "location: http:///app1". RFC 9110 §10.2.2 allows a relative reference.
    route = Route("/", annotations={P + "app-root": "/app1"})
    out = ProxyPair([route]).send(b"GET / HTTP/1.0\r\n\r\n")
    assert status_of(out) == 302 and location(out) == b"/app1"
    out = ProxyPair([route]).send(b"GET / HTTP/1.0\r\n" + H + b"\r\n")
    assert location(out) == b"http://example.test/app1"


def test_relative_app_root_location_never_names_another_host() -> None:
    # "//evil.test/x" as a relative reference is a network-path reference (RFC 3986 §4.2): it
    # would send the client to evil.test. "/.//evil.test/x" resolves to the path "//evil.test/x".
    route = Route("/", annotations={P + "app-root": "//evil.test/x"})
    out = ProxyPair([route]).send(b"GET / HTTP/1.0\r\n\r\n")
    assert location(out) == b"/.//evil.test/x"
    out = ProxyPair([route]).send(b"GET / HTTP/1.0\r\n" + H + b"\r\n")
    assert location(out) == b"http://example.test//evil.test/x"


# ------------------------------------------------------------------ 3. unrouted paths of TLS hosts
def test_unrouted_path_of_a_tls_host_redirects_to_https() -> None:
    # ingress-nginx: the host's server has "location /" (controller.go createServers,
    # IsDefBackend, with the Ingress's annotations), whose ssl-redirect runs before the default
    # backend's 404. Before: 404.
    routes = [Route("/api", host="example.test")]
    pair = ProxyPair(routes, tls_hosts={"example.test"})
    out = pair.send(b"GET /other?x=1 HTTP/1.1\r\nHost: Example.test:80\r\n\r\n")
    # the Host's case as sent (lua's best_http_host is $http_host)
    assert status_of(out) == 308 and location(out) == b"https://Example.test/other?x=1"
    assert pair.opens == [] and not pair.closed and pair.records[0].status == 308
    # Over https: the 404; without TLS for the host: the 404; an ACME path: the server's
    # `location /` is not in no-tls-redirect-locations, so redirected as on ingress-nginx.
    assert status_of(ProxyPair(routes, tls_hosts={"example.test"}, tls=True).send(
        b"GET /other HTTP/1.1\r\n" + H + b"\r\n")) == 404
    assert status_of(ProxyPair(routes).send(b"GET /other HTTP/1.1\r\n" + H + b"\r\n")) == 404
    assert status_of(ProxyPair(routes, tls_hosts={"example.test"}).send(
        b"GET /.well-known/acme-challenge/t HTTP/1.1\r\n" + H + b"\r\n")) == 308
    # ssl-redirect off in the settings (ConfigMap): the 404.
    assert status_of(ProxyPair(routes, tls_hosts={"example.test"},
                               settings=ProxySettings(ssl_redirect=False)).send(
        b"GET /other HTTP/1.1\r\n" + H + b"\r\n")) == 404


def test_unrouted_redirect_follows_a_trusted_forwarded_proto() -> None:
    s = ProxySettings(use_forwarded_headers=True, proxy_real_ip_cidr=("0.0.0.0/0",))
    routes = [Route("/api", host="example.test")]
    pair = ProxyPair(routes, s, tls_hosts={"example.test"}, https_port=8443)
    out = pair.send(b"GET /o HTTP/1.1\r\n" + H + b"X-Forwarded-Proto: https\r\n\r\n")
    assert status_of(out) == 404
    pair = ProxyPair(routes, s, tls_hosts={"example.test"}, https_port=8443)
    out = pair.send(b"GET /o HTTP/1.1\r\n" + H + b"X-Forwarded-Proto: http\r\n\r\n")
    assert location(out) == b"https://example.test/o"  # the hop in front: no port


def _router(*ingresses: dict[str, Any]) -> ingresslib.Router:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
           "spec": {"ports": [{"port": 80, "targetPort": 8080}]}}
    return ingresslib.Router(ingresslib.Resources.from_dicts([*ingresses, svc]), seed=1)


def _ing(name: str, host: str, ts: str, annotations: dict[str, str] | None = None,
         tls: bool = True, path: str = "/api") -> dict[str, Any]:
    spec: dict[str, Any] = {"rules": [{"host": host, "http": {"paths": [
        {"path": path, "pathType": "Prefix",
         "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}
    if tls:
        spec["tls"] = [{"hosts": [host]}]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "creationTimestamp": ts,
                         "annotations": annotations or {}},
            "spec": spec}


def test_unrouted_redirect_uses_the_oldest_ingress_of_the_host() -> None:
    # The server's "location /" takes the annotations of the Ingress that created the server:
    # the oldest with a rule for the host ("if _, ok := servers[host]; ok { continue }").
    get = b"GET /other HTTP/1.1\r\nHost: shop.test\r\n\r\n"
    old_off = _router(_ing("a", "shop.test", "2024-01-01T00:00:00Z", {P + "ssl-redirect": "false"}),
                      _ing("b", "shop.test", "2024-02-01T00:00:00Z", path="/b"))
    assert status_of(ProxyPair(router=old_off, tls_hosts={"shop.test"}).send(get)) == 404
    old_on = _router(_ing("a", "shop.test", "2024-03-01T00:00:00Z", {P + "ssl-redirect": "false"}),
                     _ing("b", "shop.test", "2024-02-01T00:00:00Z", path="/b"))
    out = ProxyPair(router=old_on, tls_hosts={"shop.test"}).send(get)
    assert status_of(out) == 308 and location(out) == b"https://shop.test/other"
    # force-ssl-redirect on that Ingress applies without TLS too ("if
    # location_config.force_ssl_redirect and ngx.var.pass_access_scheme == "http"").
    forced = _router(_ing("a", "shop.test", "2024-01-01T00:00:00Z", FORCE, tls=False))
    assert status_of(ProxyPair(router=forced).send(get)) == 308
    # A canary Ingress never creates the server ("is marked as Canary, ignoring").
    canary = _router(_ing("a", "shop.test", "2024-01-01T00:00:00Z",
                          {P + "canary": "true", P + "ssl-redirect": "false"}, path="/b"),
                     _ing("b", "shop.test", "2024-02-01T00:00:00Z"))
    assert status_of(ProxyPair(router=canary, tls_hosts={"shop.test"}).send(get)) == 308


def test_unrouted_path_of_a_host_without_rules_stays_404() -> None:
    # A TLS host no rule names has no server of its own: ingress-nginx's default server
    # answers, whose "location /" has no annotations (no redirect).
    r = _router(_ing("a", "shop.test", "2024-01-01T00:00:00Z"))
    out = ProxyPair(router=r, tls_hosts={"shop.test", "other.test"}).send(
        b"GET /x HTTP/1.1\r\nHost: other.test\r\n\r\n")
    assert status_of(out) == 404


def test_unrouted_redirect_for_a_wildcard_rule_host() -> None:
    r = _router(_ing("a", "*.shop.test", "2024-01-01T00:00:00Z", tls=False))
    get = b"GET /x HTTP/1.1\r\nHost: a.shop.test\r\n\r\n"
    out = ProxyPair(router=r, tls_hosts={"*.shop.test"}).send(get)
    assert status_of(out) == 308 and location(out) == b"https://a.shop.test/x"
    assert status_of(ProxyPair(router=r, tls_hosts={"*.shop.test"}).send(
        b"GET /x HTTP/1.1\r\nHost: b.a.shop.test\r\n\r\n")) == 404  # one label only


def test_unrouted_options_follow_a_new_table() -> None:
    r = _router(_ing("a", "shop.test", "2024-01-01T00:00:00Z", {P + "ssl-redirect": "false"}))
    pair = ProxyPair(router=r, tls_hosts={"shop.test"})
    get = b"GET /x HTTP/1.1\r\nHost: shop.test\r\n\r\n"
    assert status_of(pair.send(get)) == 404
    r.update(ingresslib.Resources.from_dicts([_ing("a", "shop.test", "2024-01-01T00:00:00Z")]))
    assert status_of(pair.send(get)) == 308


# ------------------------------------------------------------------ $request of a refused head


@pytest.mark.parametrize(("head", "status", "line"), [
    # TLS spoken to the plain-http port: nginx logs the bytes, escaped ("\x16\x03\x01...").
    (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n", 400,
     "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03"),
    # A request line h11 refuses (raw checks pass): what came up to the CR.
    (b"GET /a b HTTP/1.1\r\nHost: example.test\r\n\r\n", 400, "GET /a b HTTP/1.1"),
    # A bare LF refused by the raw checks: up to the LF.
    (b"GET / HTTP/1.1\nHost: x\n\n", 400, "GET / HTTP/1.1"),
    # A request line over the limit: the bytes that were read of it (bounded).
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414, None),
])
def test_a_refused_head_logs_its_raw_request_line(head: bytes, status: int,
                                                  line: str | None) -> None:
    # ngx_http_variable_request_line: a request line nginx could not parse is logged as the
    # bytes received up to the first CR or LF. Before, such records had no request line and
    # the access log showed "-".
    pair = ProxyPair()
    out = pair.send(head)
    assert status_of(out) == status
    (r,) = pair.records
    if line is None:
        assert r.request_line is not None and r.request_line.startswith("GET /aaaa")
        assert len(r.request_line) <= ProxySettings().max_request_line + 2
    else:
        assert r.request_line == line
    logged = access_fields(r, now=0.0)["request"]
    assert logged is not None and "\r" not in logged and "\n" not in logged


def test_a_head_timeout_logs_the_partial_request_line() -> None:
    pair = ProxyPair()
    pair.send(b"GET /slow HTTP/1.1\r\nHost: exa")
    assert status_of(pair.fire(TimerKind.HEAD)) == 408
    assert pair.records[0].request_line == "GET /slow HTTP/1.1"


def test_a_parsed_request_still_logs_its_parsed_line() -> None:
    pair = ProxyPair(routes=[Route("/api")])
    pair.send(b"GET /web?x=1 HTTP/1.1\r\n" + H + b"\r\n")
    assert pair.records[0].request_line == "GET /web?x=1 HTTP/1.1"


# ------------------------------------------------------------------ rewrite-target regex time


def test_a_catastrophic_rewrite_regex_is_a_500_not_a_stalled_loop() -> None:
    # A rule regex that backtracks exponentially (the Ingress author's) against a path that
    # sets it off (the client's). Routing stays Prefix (README), on the canonical rule path, so
    # the request starts with it; the rewrite regex is the rule path as written. With re,
    # /x + 16 "a" took 59 s of event-loop time. nginx's PCRE stops at its match limit and
    # answers 500; so does the core, within REWRITE_TIMEOUT.
    import time

    from ingresslib.proxy._annotations import REWRITE_TIMEOUT

    rule = "/x(a|.)*(a|.)*(a|.)*y$"
    res = ingresslib.Resources.from_dicts([
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
         "metadata": {"name": "re", "annotations": {P + "use-regex": "true",
                                                    P + "rewrite-target": "/r/$1"}},
         "spec": {"rules": [{"host": "example.test", "http": {"paths": [
             {"path": rule, "pathType": "ImplementationSpecific",
              "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
         "spec": {"ports": [{"port": 80, "targetPort": 8080}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "web-1", "labels": {"kubernetes.io/service-name": "web"}},
         "addressType": "IPv4", "ports": [{"port": 8080}],
         "endpoints": [{"addresses": ["10.0.0.1"]}]},
    ])
    pair = ProxyPair(router=ingresslib.Router(res))
    canonical = b"/x(a%7C.)*(a%7C.)*(a%7C.)*y$"
    t0 = time.perf_counter()
    out = pair.send(b"GET " + canonical + b"/" + b"a" * 30 + b" HTTP/1.1\r\n" + H + b"\r\n")
    elapsed = time.perf_counter() - t0
    assert status_of(out) == 500 and not pair.opens
    assert elapsed < REWRITE_TIMEOUT + 1.0
    assert pair.records[0].status == 500
    # A path the regex settles quickly is still rewritten, on the same connection.
    out = pair.send(b"GET " + canonical + b"/ay HTTP/1.1\r\n" + H + b"\r\n")
    assert status_of(out) == 200 and bytes(pair.upstreams[-1].raw).startswith(b"GET /r/")
