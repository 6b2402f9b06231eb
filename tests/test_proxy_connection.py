"""The sans-IO core through the in-memory harness: byte-exact wire output for the proxy rules
of SEMANTICS §5 and §9 (forwarding, statuses, retries, keep-alive, pipelining, 100-continue,
HTTP/1.0, WebSocket, redirects, rewrites, untrusted upstreams)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingresslib.proxy import (
    ClientConnection,
    LocalProxyError,
    OpenUpstream,
    Proxy,
    ProxySettings,
    RequestDone,
    TimerKind,
)

from _proxy_harness import CLOCK, DATE, FakeUpstream, ProxyPair, Reply, Route, ok, status_of

H = b"Host: example.test\r\n"
GET = b"GET /a?x=1 HTTP/1.1\r\n" + H + b"\r\n"
RID = b"0123456789abcdef0123456789abcdef"

FORWARDED_TAIL = (b"x-request-id: " + RID + b"\r\n"
                  b"x-forwarded-for: 203.0.113.7\r\n"
                  b"x-real-ip: 203.0.113.7\r\n"
                  b"x-forwarded-host: example.test\r\n"
                  b"x-forwarded-port: 80\r\n"
                  b"x-forwarded-proto: http\r\n"
                  b"x-forwarded-scheme: http\r\n"
                  b"x-scheme: http\r\n\r\n")


def upstream_head(pair: ProxyPair, i: int = 0) -> bytes:
    raw = bytes(pair.upstreams[i].raw)
    return raw[: raw.index(b"\r\n\r\n") + 4]


def header(head: bytes, name: bytes) -> list[bytes]:
    out = []
    for line in head.split(b"\r\n")[1:]:
        if b":" in line:
            n, v = line.split(b":", 1)
            if n.strip().lower() == name:
                out.append(v.strip())
    return out


# ---------------------------------------------------------------------- forwarding
def test_simple_get_byte_exact_both_ways() -> None:
    pair = ProxyPair()
    out = pair.send(GET)
    assert bytes(pair.upstreams[0].raw) == b"GET /a?x=1 HTTP/1.1\r\nHost: example.test\r\n" + \
        FORWARDED_TAIL
    assert out == b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nok /a?x=1"
    assert not pair.closed
    assert pair.timer == (TimerKind.IDLE, 75.0)


def test_hop_by_hop_connection_named_proxy_and_underscore_headers_removed() -> None:
    pair = ProxyPair()
    pair.send(b"GET / HTTP/1.1\r\n" + H + b"Connection: keep-alive, X-Secret\r\nX-Secret: s\r\n"
              b"Keep-Alive: timeout=5\r\nTE: trailers\r\nTrailer: X\r\nUpgrade: h2c\r\n"
              b"Proxy-Connection: keep-alive\r\nProxy-Authorization: Basic eA==\r\n"
              b"Proxy: http://evil:8080\r\nX_Forwarded_For: 1.2.3.4\r\nX-Keep: yes\r\n\r\n")
    assert bytes(pair.upstreams[0].raw) == b"GET / HTTP/1.1\r\nHost: example.test\r\n" \
        b"X-Keep: yes\r\n" + FORWARDED_TAIL


def test_underscores_kept_when_enabled() -> None:
    pair = ProxyPair(settings=ProxySettings(enable_underscores_in_headers=True))
    pair.send(b"GET / HTTP/1.1\r\n" + H + b"X_Name: v\r\n\r\n")
    assert header(upstream_head(pair), b"x_name") == [b"v"]


def test_underscore_spellings_of_dropped_and_proxy_headers_never_pass() -> None:
    # Review item 4: CGI/WSGI backends read X_Forwarded_For and X-Forwarded-For both as
    # HTTP_X_FORWARDED_FOR; with underscores enabled the client could spoof the proxy's headers.
    pair = ProxyPair(settings=ProxySettings(enable_underscores_in_headers=True))
    pair.send(b"GET / HTTP/1.1\r\n" + H + b"X_Forwarded_For: 1.2.3.4\r\nX_Real_IP: 1.2.3.4\r\n"
              b"X_Forwarded_Proto: https\r\nx_forwarded_host: evil\r\nX_Request_ID: spoof\r\n"
              b"Transfer_Encoding: chunked\r\nContent_Length: 5\r\nProxy_Connection: x\r\n"
              b"Connection: X-Secret\r\nX_Secret: s\r\nX_Keep: yes\r\n\r\n")
    assert bytes(pair.upstreams[0].raw) == b"GET / HTTP/1.1\r\nHost: example.test\r\n" \
        b"X_Keep: yes\r\n" + FORWARDED_TAIL


def test_client_sent_x_original_uri_is_dropped() -> None:
    # Backends behind ingress-nginx trust X-Original-URI as the proxy's; a client must not set it.
    pair = ProxyPair()
    pair.send(b"GET /p HTTP/1.1\r\n" + H + b"X-Original-URI: /admin\r\nX-Keep: yes\r\n\r\n")
    head = upstream_head(pair)
    assert header(head, b"x-original-uri") == [] and header(head, b"x-keep") == [b"yes"]


def test_underscore_spelling_of_a_custom_forwarded_for_header_is_dropped() -> None:
    s = ProxySettings(enable_underscores_in_headers=True, forwarded_for_header="X-Client-IP")
    pair = ProxyPair(settings=s)
    pair.send(b"GET / HTTP/1.1\r\n" + H + b"X_Client_IP: 6.6.6.6\r\n\r\n")
    assert header(upstream_head(pair), b"x_client_ip") == []


def test_canonical_path_is_routed_and_forwarded_query_untouched() -> None:
    pair = ProxyPair()
    pair.send(b"GET /a//b/./c/../%7Ed?q=%2e%2e/../x HTTP/1.1\r\n" + H + b"\r\n")
    assert pair.router.calls[0][2] == "/a/b/~d"
    assert upstream_head(pair).startswith(b"GET /a/b/~d?q=%2e%2e/../x HTTP/1.1\r\n")
    assert pair.records[0].path == "/a/b/~d" and pair.records[0].query == "q=%2e%2e/../x"


def test_absolute_form_with_matching_host_forwarded_as_origin_form() -> None:
    pair = ProxyPair()
    out = pair.send(b"GET http://Example.test/p?q HTTP/1.1\r\nHost: example.test\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200")
    assert upstream_head(pair).startswith(b"GET /p?q HTTP/1.1\r\nHost: example.test\r\n")


def test_absolute_form_without_path() -> None:
    pair = ProxyPair()
    pair.send(b"GET http://example.test HTTP/1.1\r\nHost: example.test\r\n\r\n")
    assert upstream_head(pair).startswith(b"GET / HTTP/1.1\r\n")


def test_options_star_answered_locally() -> None:
    pair = ProxyPair()
    out = pair.send(b"OPTIONS * HTTP/1.1\r\n" + H + b"\r\n")
    assert status_of(out) == 200 and b"allow: " in out.lower()
    assert pair.opens == [] and not pair.closed


def test_host_is_passed_through_with_port_and_router_gets_it_as_received() -> None:
    pair = ProxyPair()
    pair.send(b"GET / HTTP/1.1\r\nHost: Example.TEST:8080\r\n\r\n")
    assert header(upstream_head(pair), b"host") == [b"Example.TEST:8080"]
    assert pair.router.calls[0][1] == "Example.TEST:8080"
    assert header(upstream_head(pair), b"x-forwarded-host") == [b"Example.TEST:8080"]
    assert pair.records[0].host == "example.test"


# ---------------------------------------------------------------------- forwarded headers
def test_zero_trusted_hops_ignores_incoming_forwarded_headers() -> None:
    pair = ProxyPair(settings=ProxySettings(use_forwarded_headers=True))
    pair.send(b"GET / HTTP/1.1\r\n" + H + b"X-Forwarded-For: 1.1.1.1\r\nX-Real-IP: 1.1.1.1\r\n"
              b"X-Forwarded-Proto: https\r\nX-Forwarded-Host: evil\r\nX-Forwarded-Port: 1\r\n"
              b"X-Forwarded-Prefix: /evil\r\n\r\n")
    head = upstream_head(pair)
    assert header(head, b"x-forwarded-for") == [b"203.0.113.7"]
    assert header(head, b"x-real-ip") == [b"203.0.113.7"]
    assert header(head, b"x-original-forwarded-for") == [b"1.1.1.1"]
    assert header(head, b"x-forwarded-proto") == [b"http"]
    assert header(head, b"x-forwarded-host") == [b"example.test"]
    assert header(head, b"x-forwarded-port") == [b"80"]
    assert header(head, b"x-forwarded-prefix") == []
    assert pair.records[0].client_ip == "203.0.113.7"


def test_trusted_cidr_rightmost_untrusted_address_is_the_client() -> None:
    s = ProxySettings(use_forwarded_headers=True, proxy_real_ip_cidr=("203.0.113.0/24",
                                                                     "10.0.0.0/8"))
    pair = ProxyPair(settings=s)
    pair.send(b"GET / HTTP/1.1\r\n" + H + b"X-Forwarded-For: 6.6.6.6, 198.51.100.1, 10.1.1.1\r\n"
              b"X-Forwarded-Proto: https\r\nX-Forwarded-Host: public.example\r\n\r\n")
    head = upstream_head(pair)
    assert pair.router.calls[0][3] == "198.51.100.1"
    assert header(head, b"x-forwarded-for") == [b"198.51.100.1"]
    assert header(head, b"x-real-ip") == [b"198.51.100.1"]
    assert header(head, b"x-forwarded-proto") == [b"https"]
    assert header(head, b"x-forwarded-host") == [b"public.example"]


def test_compute_full_forwarded_for_appends_the_peer() -> None:
    s = ProxySettings(use_forwarded_headers=True, compute_full_forwarded_for=True,
                      proxy_real_ip_cidr=("203.0.113.0/24",))
    pair = ProxyPair(settings=s)
    pair.send(b"GET / HTTP/1.1\r\n" + H + b"X-Forwarded-For: 6.6.6.6\r\n\r\n")
    assert header(upstream_head(pair), b"x-forwarded-for") == [b"6.6.6.6, 203.0.113.7"]


def test_custom_forwarded_for_header() -> None:
    s = ProxySettings(use_forwarded_headers=True, forwarded_for_header="CF-Connecting-IP",
                      proxy_real_ip_cidr=("203.0.113.0/24",))
    pair = ProxyPair(settings=s)
    pair.send(b"GET / HTTP/1.1\r\n" + H + b"CF-Connecting-IP: 6.6.6.6\r\n\r\n")
    head = upstream_head(pair)
    assert header(head, b"x-real-ip") == [b"6.6.6.6"]
    assert header(head, b"cf-connecting-ip") == []


def test_untrusted_peer_with_cidrs_configured() -> None:
    s = ProxySettings(use_forwarded_headers=True, proxy_real_ip_cidr=("10.0.0.0/8",))
    pair = ProxyPair(settings=s)
    pair.send(b"GET / HTTP/1.1\r\n" + H + b"X-Forwarded-For: 6.6.6.6\r\n\r\n")
    assert header(upstream_head(pair), b"x-real-ip") == [b"203.0.113.7"]


def test_request_id_passthrough_and_generated() -> None:
    pair = ProxyPair()
    pair.send(b"GET / HTTP/1.1\r\n" + H + b"X-Request-ID: abc\r\n\r\n")
    assert header(upstream_head(pair), b"x-request-id") == [b"abc"]
    assert pair.records[0].request_id == "abc"
    pair = ProxyPair(request_id=None)
    pair.send(GET)
    (rid,) = header(upstream_head(pair), b"x-request-id")
    assert re.fullmatch(rb"[0-9a-f]{32}", rid)
    pair = ProxyPair(settings=ProxySettings(generate_request_id=False))
    pair.send(GET)
    assert header(upstream_head(pair), b"x-request-id") == []


@pytest.mark.parametrize(("target", "sent"), [
    (b"/a/./b/../c?x=1&y", b"/a/./b/../c?x=1&y"),   # as received, not the canonical /a/c
    (b"http://example.test/p?q", b"/p?q"),          # absolute form: its origin-form part
])
def test_original_uri_header_when_enabled(target: bytes, sent: bytes) -> None:
    # ingress-nginx proxy-add-original-uri-header: X-Original-URI $request_uri; a client's own
    # X-Original-URI never reaches the backend, with the option on or off.
    for on in (True, False):
        pair = ProxyPair(settings=ProxySettings(proxy_add_original_uri_header=on))
        pair.send(b"GET " + target + b" HTTP/1.1\r\n" + H + b"X-Original-URI: /forged\r\n\r\n")
        assert header(upstream_head(pair), b"x-original-uri") == ([sent] if on else [])


@pytest.mark.parametrize("value", [b"", b"   ", b"a b", b"a\"b", b"a,b", b"<script>", b"x" * 201,
                                   b"\xc3\xa9"])
def test_request_id_empty_or_not_a_token_is_replaced(value: bytes) -> None:
    # Review item 3: empty/whitespace is absent (ingress-nginx maps "" to $request_id); only
    # 1-200 chars of [A-Za-z0-9._~:+/=-] pass, anything else gets a generated id.
    pair = ProxyPair()
    pair.send(b"GET /a?x=1 HTTP/1.1\r\n" + H + b"X-Request-ID: " + value + b"\r\n\r\n")
    assert bytes(pair.upstreams[0].raw) == b"GET /a?x=1 HTTP/1.1\r\nHost: example.test\r\n" + \
        FORWARDED_TAIL
    assert pair.records[0].request_id == RID.decode()
    pair = ProxyPair(settings=ProxySettings(generate_request_id=False))
    pair.send(b"GET / HTTP/1.1\r\n" + H + b"X-Request-ID: " + value + b"\r\n\r\n")
    assert header(upstream_head(pair), b"x-request-id") == []
    assert pair.records[0].request_id is None


@pytest.mark.parametrize("value", [b"a", b"x" * 200, b"Root=1-5759e988-bd862e3fe1be46a994272793",
                                   b"abc.DEF_~:+/=-09"])
def test_request_id_token_is_passed_through(value: bytes) -> None:
    pair = ProxyPair()
    pair.send(b"GET / HTTP/1.1\r\n" + H + b"X-Request-ID: " + value + b"\r\n"
              b"X-Request-ID: second\r\n\r\n")
    assert header(upstream_head(pair), b"x-request-id") == [value]
    assert pair.records[0].request_id == value.decode()


def test_first_request_id_decides_even_when_it_is_invalid() -> None:
    # nginx's $http_x_request_id is the first header: a bad first one is not rescued by a later
    # one (the client chose it), a fresh id is generated.
    pair = ProxyPair()
    pair.send(b"GET / HTTP/1.1\r\n" + H + b"X-Request-ID:\r\nX-Request-ID: later\r\n\r\n")
    assert header(upstream_head(pair), b"x-request-id") == [RID]


# ---------------------------------------------------------------------- statuses
def test_no_route_404_keeps_the_connection() -> None:
    pair = ProxyPair([Route("/api")])
    out = pair.send(b"GET /web HTTP/1.1\r\n" + H + b"\r\n")
    assert out == (b"HTTP/1.1 404 Not Found\r\ncontent-type: text/plain; charset=utf-8\r\n"
                   b"content-length: 14\r\n\r\n404 Not Found\n")
    assert not pair.closed and pair.records[0].status == 404
    assert pair.send(b"GET /api HTTP/1.1\r\n" + H + b"\r\n").startswith(b"HTTP/1.1 200")


def test_no_route_404_with_a_body_discards_it() -> None:
    pair = ProxyPair([Route("/api")])
    out = pair.send(b"POST /web HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n\r\nhello"
                    b"GET /api HTTP/1.1\r\n" + H + b"\r\n")
    assert status_of(out) == 404
    assert out.count(b"HTTP/1.1 200 OK") == 1


def test_no_endpoint_503() -> None:
    pair = ProxyPair([Route("/", endpoints=[])])
    out = pair.send(GET)
    assert status_of(out) == 503 and pair.opens == []


def test_unreachable_after_retries_502_tries_other_endpoints() -> None:
    eps = [("10.0.0.%d" % i, 80) for i in range(1, 5)]
    pair = ProxyPair([Route("/", endpoints=eps)], refuse=eps)
    out = pair.send(GET)
    assert status_of(out) == 502
    # proxy-next-upstream-tries default 3: three tries in total, all different endpoints.
    assert [o.endpoint for o in pair.opens] == eps[:3]
    assert pair.records[0].upstreams == tuple(eps[:3])
    assert pair.router.observed == [(e, False) for e in eps[:3]]


def test_retry_reaches_a_working_endpoint() -> None:
    eps = [("10.0.0.1", 80), ("10.0.0.2", 80)]
    pair = ProxyPair([Route("/", endpoints=eps)], refuse=eps[:1])
    out = pair.send(b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\n\r\nabc")
    # Connect failures are retried for any method: nothing was sent.
    assert status_of(out) == 200
    assert pair.upstreams[0].endpoint == eps[1]
    assert pair.upstreams[0].requests[0][1] == b"abc"


def test_next_upstream_tries_annotation() -> None:
    eps = [("10.0.0.%d" % i, 80) for i in range(1, 5)]
    route = Route("/", endpoints=eps,
                  annotations={"nginx.ingress.kubernetes.io/proxy-next-upstream-tries": "1"})
    pair = ProxyPair([route], refuse=eps)
    assert status_of(pair.send(GET)) == 502
    assert len(pair.opens) == 1


def test_connect_timeout_504() -> None:
    eps = [("10.0.0.1", 80)]
    pair = ProxyPair([Route("/", endpoints=eps)], hang=eps)
    assert status_of(pair.send(GET)) == 504


def silent(request: h11.Request, body: bytes, up: FakeUpstream) -> Reply | None:
    return None


def test_read_timeout_504_then_retry_for_idempotent_only() -> None:
    eps = [("10.0.0.1", 80), ("10.0.0.2", 80)]
    pair = ProxyPair([Route("/", endpoints=eps)], app=silent)
    pair.send(GET)
    assert pair.timer == (TimerKind.UPSTREAM_READ, 60.0)
    pair.fire(TimerKind.UPSTREAM_READ)
    assert len(pair.opens) == 2  # GET: retried on the other endpoint
    out = pair.fire(TimerKind.UPSTREAM_READ)
    assert status_of(out) == 504
    pair = ProxyPair([Route("/", endpoints=eps)], app=silent)
    pair.send(b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1\r\n\r\nx")
    out = pair.fire(TimerKind.UPSTREAM_READ)
    assert status_of(out) == 504 and len(pair.opens) == 1  # POST was sent: no retry


def test_read_timeout_annotation() -> None:
    route = Route("/", annotations={"nginx.ingress.kubernetes.io/proxy-read-timeout": "7"})
    pair = ProxyPair([route], app=silent)
    pair.send(GET)
    assert pair.timer == (TimerKind.UPSTREAM_READ, 7.0)
    assert pair.opens[0].connect_timeout == 5.0


def test_http_502_condition_retries_and_forwards_when_nothing_is_left() -> None:
    eps = [("10.0.0.1", 80), ("10.0.0.2", 80)]
    bad = lambda r, b, u: Reply(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 3\r\n\r\nbad")
    route = Route("/", endpoints=eps,
                  annotations={"nginx.ingress.kubernetes.io/proxy-next-upstream":
                               "error timeout http_502"})
    pair = ProxyPair([route], app=bad)
    out = pair.send(GET)
    assert len(pair.opens) == 2
    assert out == b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 3\r\n\r\nbad"
    assert pair.records[0].upstream_statuses == (502, 502)


def test_http_5xx_not_retried_by_default() -> None:
    eps = [("10.0.0.1", 80), ("10.0.0.2", 80)]
    pair = ProxyPair([Route("/", endpoints=eps)],
                     app=lambda r, b, u: Reply(b"HTTP/1.1 503 x\r\nContent-Length: 0\r\n\r\n"))
    assert status_of(pair.send(GET)) == 503 and len(pair.opens) == 1


# ---------------------------------------------------------------------- untrusted upstreams
BAD_UPSTREAM = [
    ("garbage status line", b"HTTP/1.1 2OO OK\r\n\r\n"),
    ("not http", b"SSH-2.0-OpenSSH\r\n\r\n"),
    ("CL and TE", b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"0\r\n\r\n"),
    ("bad CL", b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"),
    ("conflicting CL", b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"),
    ("TE not chunked", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nab"),
    ("obs-fold", b"HTTP/1.1 200 OK\r\nX: a\r\n b\x00\r\nContent-Length: 0\r\n\r\n"),
    # Review item 2: h11 passes CTLs other than NUL; they must not reach the client.
    ("CTL in header value", b"HTTP/1.1 200 OK\r\nX-A: a\x01b\r\nContent-Length: 0\r\n\r\n"),
    ("ESC in header value", b"HTTP/1.1 200 OK\r\nX-A: \x1b[31mred\r\nContent-Length: 0\r\n\r\n"),
    ("DEL in header value", b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-A: a\x7f\r\n\r\n"),
]


@pytest.mark.parametrize("name,raw", BAD_UPSTREAM, ids=[b[0] for b in BAD_UPSTREAM])
def test_invalid_upstream_response_is_502_and_next_request_is_clean(name: str,
                                                                    raw: bytes) -> None:
    state = {"n": 0}

    def app(r: h11.Request, b: bytes, u: FakeUpstream) -> Reply:
        state["n"] += 1
        return Reply(raw) if state["n"] == 1 else ok(b"second")

    pair = ProxyPair(app=app)
    out = pair.send(GET)
    assert status_of(out) == 502, out
    assert pair.closes[0].reuse is False
    if not pair.closed:
        out = pair.send(GET)
        assert out == b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecond"


def test_early_close_mid_body_closes_the_client_connection() -> None:
    pair = ProxyPair(app=lambda r, b, u: Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
                                               b"12345", close=True))
    out = pair.send(GET)
    assert out.startswith(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345")
    assert pair.closed and pair.closes[0].reuse is False


def test_extra_bytes_after_response_never_reach_the_next_response() -> None:
    smuggled = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nEVIL"
    state = {"n": 0}

    def app(r: h11.Request, b: bytes, u: FakeUpstream) -> Reply:
        state["n"] += 1
        if state["n"] == 1:
            return Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi" + smuggled)
        return ok(b"fine")

    pair = ProxyPair(app=app)
    out = pair.send(GET)
    assert out == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
    assert pair.closes[0].reuse is False  # the upstream connection with stray bytes is dropped
    out = pair.send(GET)
    assert out == b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfine"
    assert len(pair.upstreams) == 2


def test_unsolicited_upstream_bytes_after_response_are_not_forwarded() -> None:
    pair = ProxyPair()
    pair.send(GET)
    up = pair.upstreams[0]
    assert pair.pool[up.endpoint] == [up]
    # The pooled connection is idle in the server's pool: the core no longer listens to it.
    with pytest.raises(KeyError):
        pair.upstream_send(up, b"HTTP/1.1 200 OK\r\n\r\n")


def test_upstream_framing_is_rebuilt_not_copied() -> None:
    # A chunked upstream body with chunk extensions and trailers is re-chunked by h11.
    pair = ProxyPair(app=lambda r, b, u: Reply(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nKeep-Alive: timeout=5\r\n"
        b"Connection: X-Hop\r\nX-Hop: 1\r\n\r\n3;ext=1\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n"))
    out = pair.send(GET)
    assert out == (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"3\r\nabc\r\n0\r\n\r\n")


def test_close_delimited_upstream_response_for_http10_client() -> None:
    pair = ProxyPair(app=lambda r, b, u: Reply(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
                                               b"body", close=True))
    out = pair.send(b"GET / HTTP/1.0\r\n\r\n")
    assert out == b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody"
    assert pair.closed
    assert header(upstream_head(pair), b"host") == [b"10.0.0.1:8080"]


# ---------------------------------------------------------------------- connections
def test_keep_alive_reuses_the_upstream_connection() -> None:
    pair = ProxyPair()
    pair.send(GET)
    pair.send(GET)
    assert len(pair.upstreams) == 1 and pair.upstreams[0].uses == 2
    assert [c.reuse for c in pair.closes] == [True, True]


def test_upstream_connection_close_is_not_reused() -> None:
    pair = ProxyPair(app=lambda r, b, u: ok(b"x", b"Connection: close\r\n"))
    pair.send(GET)
    assert pair.closes[0].reuse is False


def test_stale_pooled_connection_is_retried_on_a_fresh_one() -> None:
    pair = ProxyPair()
    pair.send(GET)
    pair.upstreams[0].closed = True  # the upstream closed the idle connection meanwhile
    out = pair.send(GET)
    assert status_of(out) == 200
    assert pair.opens[-1].pooled is False and len(pair.upstreams) == 2
    # nginx logs the dead cached connection as a try of its own ("10.0.0.1:8080,
    # 10.0.0.1:8080" and "502, 200": ngx_http_upstream_connect starts a new state per connect)
    # but does not count it ("if (u->peer.cached && ft_type == NGX_HTTP_UPSTREAM_FT_ERROR) {
    # u->peer.tries++; }").
    rec = pair.records[-1]
    assert rec.upstreams == (("10.0.0.1", 8080),) * 2 and rec.upstream_statuses == (502, 200)


def test_keep_alive_race_is_not_counted_as_a_try() -> None:
    # (x46 s36: the fresh connection goes to the router's next endpoint, as nginx's get asks
    # the balancer again.)
    eps = [("10.0.0.1", 80), ("10.0.0.2", 80), ("10.0.0.3", 80)]
    conn, request = _timed_conn(eps, {"nginx.ingress.kubernetes.io/proxy-next-upstream-tries":
                                      "2"})
    op = request(0.5, 1.0)
    conn.upstream_connected(op.conn_id, 1.0, reused=True)
    [fresh] = [a for a in conn.upstream_eof(op.conn_id, 1.5) if isinstance(a, OpenUpstream)]
    assert (fresh.endpoint, fresh.pooled) == (eps[1], False)
    # The fresh connection is refused: that is try 1 of 2, so eps[2] still gets its try.
    [retry] = [a for a in conn.upstream_failed(fresh.conn_id, 2.0)
               if isinstance(a, OpenUpstream)]
    assert retry.endpoint == eps[2]
    rec = _record_of(conn.upstream_failed(retry.conn_id, 2.5))
    assert rec.status == 502
    assert rec.upstreams == (eps[0], eps[1], eps[2])
    assert rec.upstream_statuses == (502, 502, 502)


def test_pipelined_requests_answered_in_order() -> None:
    pair = ProxyPair()
    out = pair.send(b"GET /1 HTTP/1.1\r\n" + H + b"\r\nGET /2 HTTP/1.1\r\n" + H + b"\r\n"
                    b"GET /3 HTTP/1.1\r\n" + H + b"\r\n")
    assert out == b"".join(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok /%d" % i
                           for i in (1, 2, 3))
    assert len(pair.records) == 3


def test_pipelined_request_arriving_while_busy_waits() -> None:
    held: list[FakeUpstream] = []
    pair = ProxyPair(app=lambda r, b, u: (held.append(u), None)[1])
    pair.send(GET)
    out = pair.send(b"GET /2 HTTP/1.1\r\n" + H + b"\r\n")
    assert out == b"" and len(pair.opens) == 1
    out = pair.upstream_send(held[0], b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")
    assert out.startswith(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")
    assert len(pair.opens) == 2


def test_http10_client_closes_after_response() -> None:
    pair = ProxyPair()
    out = pair.send(b"GET /a HTTP/1.0\r\n" + H + b"\r\n")
    assert out == b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nok /a"
    assert pair.closed
    assert upstream_head(pair).startswith(b"GET /a HTTP/1.1\r\n")


def test_connection_close_from_client() -> None:
    pair = ProxyPair()
    out = pair.send(b"GET /a HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n")
    assert out.endswith(b"Connection: close\r\n\r\nok /a") and pair.closed


def test_keep_alive_requests_limit() -> None:
    pair = ProxyPair(settings=ProxySettings(keep_alive_requests=2))
    assert b"connection: close" not in pair.send(GET)
    assert b"connection: close" in pair.send(GET)
    assert pair.closed


def test_idle_timeout_closes() -> None:
    pair = ProxyPair()
    pair.send(GET)
    assert pair.fire(TimerKind.IDLE) == b"" and pair.closed


def test_client_eof_while_idle_closes() -> None:
    pair = ProxyPair()
    pair.send(GET)
    pair.eof()
    assert pair.closed


def test_client_eof_mid_body_closes_upstream_without_reuse() -> None:
    pair = ProxyPair()
    pair.send(b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 10\r\n\r\nabc")
    pair.eof()
    assert pair.closed and pair.closes[-1].reuse is False
    # nginx: "client prematurely closed connection" while reading the body is 400
    # (ngx_http_do_read_client_request_body; session 24, tests/test_small_s24.py)
    assert pair.records[0].status == 400


# ngx_http_upstream_send_request_body: once the body is read, "if (!u->store &&
# !r->post_action && !u->conf->ignore_client_abort) { r->read_event_handler =
# ngx_http_upstream_rd_check_broken_connection; }", and ngx_http_upstream_check_broken_connection
# on a client EOF: "if (!u->cacheable && u->peer.connection) { ngx_log_error(NGX_LOG_INFO, ev->log,
# err, "client prematurely closed connection, so upstream connection is closed too");
# ngx_http_upstream_finalize_request(r, u, NGX_HTTP_CLIENT_CLOSED_REQUEST);". The status logged
# is 499 unless a response had begun: ngx_http_terminate_request "if (rc > 0 &&
# (mr->headers_out.status == 0 || mr->connection->sent == 0)) { mr->headers_out.status = rc; }".
def test_client_fin_after_a_complete_request_aborts_with_499() -> None:
    from ingresslib.proxy import CloseDownstream

    pair = ProxyPair(app=silent)
    pair.send(GET)
    assert pair.eof() == b""
    assert pair.closed and pair.downstream_closes == [CloseDownstream(linger=False)]
    assert [c.reuse for c in pair.closes] == [False] and pair.upstreams[0].closed
    rec = pair.records[0]
    assert rec.status == 499 and rec.upstream_statuses == (None,)
    assert pair.router.observed == []  # the endpoint did nothing wrong


def test_client_fin_while_the_connect_is_pending_cancels_it() -> None:
    eps = [("10.0.0.1", 80)]
    pair = ProxyPair([Route("/", endpoints=eps)], defer=eps)
    pair.send(GET)
    pair.eof()
    assert pair.closed and pair.closes[-1].reuse is False
    assert pair.records[0].status == 499
    assert pair.connect() == b"" and pair.upstreams[0].requests == []


def test_client_fin_after_the_response_began_aborts_and_keeps_its_status() -> None:
    def app(r: h11.Request, b: bytes, u: FakeUpstream) -> Reply:
        return Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")

    pair = ProxyPair(app=app)
    assert pair.send(GET).endswith(b"abc")
    pair.eof()
    assert pair.closed and pair.closes[-1].reuse is False and pair.upstreams[0].closed
    rec = pair.records[0]
    assert rec.status == 200 and rec.bytes_out == len(pair.received)
    assert rec.upstream_statuses == (200,) and pair.router.observed == []
    # The rest of the body, if it was already on its way, goes nowhere.
    assert pair.conn.upstream_data(pair.opens[0].conn_id, b"defghij", pair.now) == []


def test_proxy_ignore_client_abort_lets_the_response_finish_after_a_fin() -> None:
    held: list[FakeUpstream] = []
    pair = ProxyPair(settings=ProxySettings(proxy_ignore_client_abort=True),
                     app=lambda r, b, u: (held.append(u), None)[1])
    pair.send(GET)
    pair.eof()
    assert not pair.closed and pair.records == []
    out = pair.upstream_send(held[0], b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert status_of(out) == 200 and out.endswith(b"ok") and pair.closed
    assert pair.records[0].status == 200


def test_client_fin_ends_a_websocket_tunnel_either_way() -> None:
    # ngx_http_upstream_process_upgraded: done when "(downstream->read->eof &&
    # u->from_client.pos == u->from_client.last)", whatever proxy_ignore_client_abort says.
    for ignore in (False, True):
        pair = ProxyPair(settings=ProxySettings(proxy_ignore_client_abort=ignore), app=ws_app)
        pair.send(WS)
        pair.eof()
        assert pair.closed and pair.records[0].status == 101, ignore
        assert pair.closes[-1].reuse is False


def test_upstream_answers_before_request_body_ends() -> None:
    pair = ProxyPair(app=silent)
    pair.send(b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 10\r\n\r\nabc")
    out = pair.upstream_send(pair.upstreams[0],
                             b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n")
    assert status_of(out) == 413 and pair.closed
    assert pair.closes[-1].reuse is False


def test_expect_100_continue() -> None:
    pair = ProxyPair()
    out = pair.send(b"PUT /u HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nExpect: 100-continue\r\n"
                    b"\r\n")
    assert out == b"HTTP/1.1 100 Continue\r\n\r\n"
    out = pair.send(b"hello")
    assert out == b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok /u"
    (req, body), = pair.upstreams[0].requests
    assert body == b"hello" and header(upstream_head(pair), b"expect") == []


def test_expect_100_continue_refused_when_too_large() -> None:
    pair = ProxyPair(settings=ProxySettings(proxy_body_size=4))
    out = pair.send(b"PUT /u HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nExpect: 100-continue\r\n"
                    b"\r\n")
    assert status_of(out) == 413 and b"100 Continue" not in out and pair.closed


def test_proxy_body_size_annotation_and_unlimited() -> None:
    route = Route("/", annotations={"nginx.ingress.kubernetes.io/proxy-body-size": "0"})
    pair = ProxyPair([route], settings=ProxySettings(proxy_body_size=2))
    out = pair.send(b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n\r\nhello")
    assert status_of(out) == 200
    route = Route("/", annotations={"nginx.ingress.kubernetes.io/proxy-body-size": "8k"})
    pair = ProxyPair([route])
    body = b"x" * 8193
    out = pair.send(b"POST / HTTP/1.1\r\n" + H + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    assert status_of(out) == 413


def test_a_close_with_the_request_body_unread_asks_to_linger() -> None:
    from ingresslib.proxy import CloseDownstream

    # 413 with the body still coming: the client may be sending; a plain close would reset
    # the connection under the response.
    pair = ProxyPair(settings=ProxySettings(proxy_body_size=4))
    out = pair.send(b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 100\r\n\r\nabc")
    assert status_of(out) == 413 and pair.closed
    assert pair.downstream_closes == [CloseDownstream(linger=True)]
    # The same, found while reading the body (no Content-Length).
    pair = ProxyPair(settings=ProxySettings(proxy_body_size=4))
    out = pair.send(b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                    b"8\r\nabcdefgh\r\n")
    assert status_of(out) == 413 and pair.downstream_closes == [CloseDownstream(linger=True)]
    # A whole request, then "Connection: close": nothing more is coming.
    pair = ProxyPair()
    pair.send(b"GET / HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n")
    assert pair.closed and pair.downstream_closes == [CloseDownstream(linger=False)]
    # The client ended its side mid-body: nothing more can come either.
    pair = ProxyPair(app=lambda r, b, u: None)
    pair.send(b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 100\r\n\r\nabc")
    pair.eof()
    assert pair.closed and pair.downstream_closes == [CloseDownstream(linger=False)]


def test_head_request() -> None:
    pair = ProxyPair(app=lambda r, b, u: Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"))
    out = pair.send(b"HEAD / HTTP/1.1\r\n" + H + b"\r\n")
    assert out == b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
    assert pair.send(GET).startswith(b"HTTP/1.1 200")


def test_informational_103_dropped() -> None:
    pair = ProxyPair(app=lambda r, b, u: Reply(b"HTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\n"
                                               b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
    assert pair.send(GET) == b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


# ---------------------------------------------------------------------- WebSocket
WS = (b"GET /ws HTTP/1.1\r\n" + H + b"Connection: Upgrade\r\nUpgrade: websocket\r\n"
      b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


WS_101 = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
          b"Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")


def ws_app(r: h11.Request, b: bytes, u: FakeUpstream) -> Reply:
    return Reply(WS_101)


def test_websocket_tunnel_after_101() -> None:
    pair = ProxyPair(app=ws_app)
    out = pair.send(WS)
    assert out.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert b"upgrade: websocket" in out.lower()
    head = upstream_head(pair)
    assert header(head, b"upgrade") == [b"websocket"]
    assert header(head, b"connection") == [b"upgrade"]
    assert pair.tunnels == [1]
    assert pair.send(b"\x81\x05hello") == b"echo:\x81\x05hello"
    assert pair.records == []  # the request lasts as long as the tunnel
    pair.eof()
    assert pair.records[0].status == 101 and pair.closed
    assert pair.closes[-1].reuse is False


def test_websocket_101_with_control_character_in_a_header_is_502() -> None:
    # Review item 2 for the 101 path, which does not go through the normal response head.
    def app(r: h11.Request, b: bytes, u: FakeUpstream) -> Reply:
        return Reply(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nX-A: \x1b[2J\r\n\r\n")

    pair = ProxyPair(app=app)
    out = pair.send(WS)
    assert status_of(out) == 502 and pair.tunnels == []
    assert b"\x1b" not in out


def test_tab_in_upstream_header_value_is_forwarded_byte_exact() -> None:
    pair = ProxyPair(app=lambda r, b, u: ok(b"x", b"X-A: a\tb\r\n"))
    assert pair.send(GET) == b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nX-A: a\tb\r\n\r\nx"


def test_websocket_refused_by_upstream_is_a_plain_response() -> None:
    pair = ProxyPair()
    out = pair.send(WS)
    assert out.startswith(b"HTTP/1.1 200 OK") and pair.tunnels == []
    assert pair.send(b"GET / HTTP/1.1\r\n" + H + b"\r\n").startswith(b"HTTP/1.1 200")


def test_no_tunnel_without_upgrade_request() -> None:
    pair = ProxyPair(app=ws_app)
    out = pair.send(GET)
    assert status_of(out) == 502 and pair.tunnels == []


# ---------------------------------------------------------------------- TLS, redirects, rewrites
def test_hsts_on_https_only() -> None:
    pair = ProxyPair(tls=True)
    out = pair.send(GET)
    assert b"strict-transport-security: max-age=31536000; includeSubDomains\r\n" in out
    head = upstream_head(pair)
    assert header(head, b"x-forwarded-proto") == [b"https"]
    assert header(head, b"x-forwarded-port") == [b"443"]
    assert b"strict-transport-security" not in ProxyPair().send(GET)
    assert b"strict-transport-security" not in ProxyPair(
        tls=True, settings=ProxySettings(hsts=False)).send(GET)


def test_ssl_redirect_for_tls_hosts() -> None:
    pair = ProxyPair(tls_hosts={"example.test"})
    out = pair.send(b"GET /a/./b?x=1 HTTP/1.1\r\nHost: example.test:8080\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 308 Permanent Redirect\r\n")
    assert b"location: https://example.test/a/./b?x=1\r\n" in out
    assert pair.opens == [] and not pair.closed
    pair = ProxyPair(tls_hosts={"example.test"}, https_port=8443)
    assert b"location: https://example.test:8443/a?x=1\r\n" in pair.send(GET)
    assert status_of(ProxyPair(tls_hosts={"example.test"}, tls=True).send(GET)) == 200
    assert status_of(ProxyPair(tls_hosts={"other.test"}).send(GET)) == 200
    off = ProxyPair(tls_hosts={"example.test"}, settings=ProxySettings(ssl_redirect=False))
    assert status_of(off.send(GET)) == 200
    ann = ProxyPair([Route("/", annotations={"nginx.ingress.kubernetes.io/ssl-redirect":
                                             "false"})], tls_hosts={"example.test"})
    assert status_of(ann.send(GET)) == 200


def test_force_ssl_redirect() -> None:
    route = Route("/", annotations={"nginx.ingress.kubernetes.io/force-ssl-redirect": "true"})
    out = ProxyPair([route]).send(GET)
    assert status_of(out) == 308 and b"location: https://example.test/a?x=1\r\n" in out


def test_app_root() -> None:
    route = Route("/", annotations={"nginx.ingress.kubernetes.io/app-root": "/app1"})
    pair = ProxyPair([route])
    out = pair.send(b"GET / HTTP/1.1\r\n" + H + b"\r\n")
    assert status_of(out) == 302 and b"location: http://example.test/app1\r\n" in out
    assert status_of(pair.send(b"GET /app1 HTTP/1.1\r\n" + H + b"\r\n")) == 200


def test_rewrite_target_with_regex_captures() -> None:
    route = Route("/something(/|$)(.*)", annotations={
        "nginx.ingress.kubernetes.io/rewrite-target": "/$2",
        "nginx.ingress.kubernetes.io/use-regex": "true"})
    route_all = Route("/")
    pair = ProxyPair([route, route_all])
    pair.routes = None
    # The fake router routes prefix-wise; hand the regex route the request explicitly.
    d = pair.router.routes[0]
    pair.router.routes = [d]
    d.path = "/"
    pair.send(b"GET /something/new?x=1 HTTP/1.1\r\n" + H + b"\r\n")
    assert upstream_head(pair).startswith(b"GET /new?x=1 HTTP/1.1\r\n")
    pair.send(b"GET /something HTTP/1.1\r\n" + H + b"\r\n")
    assert bytes(pair.upstreams[0].raw).count(b"GET / HTTP/1.1\r\n") == 1


def test_rewrite_target_plain_replaces_the_path() -> None:
    route = Route("/api", annotations={"nginx.ingress.kubernetes.io/rewrite-target": "/"})
    pair = ProxyPair([route])
    pair.send(b"GET /api/v1/x HTTP/1.1\r\n" + H + b"\r\n")
    assert upstream_head(pair).startswith(b"GET / HTTP/1.1\r\n")
    assert pair.records[0].path == "/api/v1/x"


def test_x_forwarded_prefix() -> None:
    # Sent with a rewrite only (template.go buildProxyPass; tests/test_proxy_followups.py).
    route = Route("/", annotations={"nginx.ingress.kubernetes.io/x-forwarded-prefix": "/svc",
                                    "nginx.ingress.kubernetes.io/rewrite-target": "/app"})
    pair = ProxyPair([route])
    pair.send(GET)
    assert header(upstream_head(pair), b"x-forwarded-prefix") == [b"/svc"]


def test_x_forwarded_prefix_outside_latin_1_is_sent_as_utf8() -> None:
    # nginx writes the annotation's bytes as ingress-nginx put them in nginx.conf (UTF-8).
    # Before: the value was encoded as latin-1 and "€" raised UnicodeEncodeError out of
    # the core on every request of the route.
    route = Route("/", annotations={"nginx.ingress.kubernetes.io/x-forwarded-prefix": "/pr€",
                                    "nginx.ingress.kubernetes.io/rewrite-target": "/app"})
    pair = ProxyPair([route])
    assert status_of(pair.send(GET)) == 200
    assert header(upstream_head(pair), b"x-forwarded-prefix") == ["/pr€".encode()]
    # A lone surrogate (JSON manifests can carry "\ud800") encodes in no charset: the
    # annotation is invalid (a warning, no header), never an exception per request.
    route = Route("/", annotations={"nginx.ingress.kubernetes.io/x-forwarded-prefix": "/p\ud800",
                                    "nginx.ingress.kubernetes.io/rewrite-target": "/app"})
    pair = ProxyPair([route])
    assert status_of(pair.send(GET)) == 200
    assert header(upstream_head(pair), b"x-forwarded-prefix") == []


def test_set_cookie_from_the_decision() -> None:
    pair = ProxyPair([Route("/", set_cookie="INGRESSCOOKIE=abc; Path=/")])
    assert b"set-cookie: INGRESSCOOKIE=abc; Path=/\r\n" in pair.send(GET)


def test_set_cookie_outside_latin_1_is_sent_as_utf8() -> None:
    # The affinity cookie's Path comes from session-cookie-path or the rule path, both free
    # text (a rule path "/\u20ac" is valid). Before: encoded as latin-1, "\u20ac" raised
    # UnicodeEncodeError out of the core on every request of the route.
    pair = ProxyPair([Route("/", set_cookie="INGRESSCOOKIE=abc; Path=/\u20ac")])
    out = pair.send(GET)
    assert status_of(out) == 200
    assert "set-cookie: INGRESSCOOKIE=abc; Path=/\u20ac\r\n".encode() in out
    # Not even a lone surrogate (JSON manifests can carry "\ud800") escapes as an exception.
    pair = ProxyPair([Route("/", set_cookie="INGRESSCOOKIE=abc; Path=/\ud800")])
    assert status_of(pair.send(GET)) == 200


# ---------------------------------------------------------------------- records and misuse
def test_request_record() -> None:
    pair = ProxyPair()
    pair.send(b"POST /a?q HTTP/1.1\r\n" + H + b"User-Agent: ua\r\nReferer: r\r\n"
              b"Content-Length: 2\r\n\r\nhi")
    rec = pair.records[0]
    assert (rec.method, rec.host, rec.path, rec.query, rec.rule_path, rec.ingress,
            rec.service, rec.namespace, rec.canary, rec.status) == (
        "POST", "example.test", "/a", "q", "/", "default/web", "web", "default", False, 200)
    assert rec.bytes_in == len(b"POST /a?q HTTP/1.1\r\n" + H + b"User-Agent: ua\r\nReferer: r\r\n"
                               b"Content-Length: 2\r\n\r\nhi")
    assert rec.bytes_out == len(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nok /a?q")
    assert rec.upstream_status == 200 and rec.user_agent == "ua" and rec.referer == "r"
    assert rec.upstream_response_length == 7 and rec.duration == 0.0


def test_record_times_the_upstream_connect_from_its_open() -> None:
    from ingresslib.proxy import OpenUpstream, RequestDone

    eps = [("10.0.0.1", 80), ("10.0.0.2", 80)]
    pair = ProxyPair([Route("/", endpoints=eps)])
    conn = pair.proxy.connection(("192.0.2.1", 5000), now=0.0)
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    def request(at: float) -> int:
        acts = conn.receive_data(GET, at)
        return next(a.conn_id for a in acts if isinstance(a, OpenUpstream))

    def answer(cid: int, at: float) -> object:
        [done] = [a for a in conn.upstream_data(cid, reply, at) if isinstance(a, RequestDone)]
        return done.record

    # The request arrives at 1.0, the connection opened then is up at 1.25: 0.25 s to connect
    # (before, the metric counted from the request's start, whatever came before the open).
    cid = request(1.0)
    conn.upstream_connected(cid, 1.25, reused=False)
    rec = answer(cid, 1.5)
    assert (rec.start, rec.upstream_connect) == (1.0, 1.25)  # type: ignore[attr-defined]
    assert rec.upstream_connect_time == pytest.approx(0.25)  # type: ignore[attr-defined]
    # A pooled connection costs no connect: 0.0, as nginx's $upstream_connect_time.
    cid = request(3.0)
    conn.upstream_connected(cid, 3.0, reused=True)
    assert answer(cid, 3.1).upstream_connect_time == 0.0  # type: ignore[attr-defined]
    # A first try that fails: the time is the connection that was made, from its own open.
    cid = request(5.0)
    acts = conn.upstream_failed(cid, 7.0)
    [retry] = [a for a in acts if isinstance(a, OpenUpstream)]
    conn.upstream_connected(retry.conn_id, 7.5, reused=False)
    rec = answer(retry.conn_id, 8.0)
    assert rec.upstream_connect == 7.5  # type: ignore[attr-defined]
    assert rec.upstream_connect_time == pytest.approx(0.5)  # type: ignore[attr-defined]
    # No connection made: no time.
    pair = ProxyPair([Route("/", endpoints=[])])
    pair.send(GET)
    assert pair.records[0].upstream_connect_time is None


def _timed_conn(eps: list[tuple[str, int]], annotations: dict[str, str] | None = None
                ) -> tuple[ClientConnection, Callable[..., OpenUpstream]]:
    """A raw core connection and ``request(first_byte_at, head_done_at) -> OpenUpstream``:
    the head arrives in two reads, so the request starts before its upstream attempt does."""
    pair = ProxyPair([Route("/", endpoints=eps, annotations=annotations or {})])
    conn = pair.proxy.connection(("192.0.2.1", 5000), now=0.0)

    def request(first: float, done: float, data: bytes = GET) -> OpenUpstream:
        cut = data.index(b"\r\n") + 2
        assert not [a for a in conn.receive_data(data[:cut], first)
                    if isinstance(a, OpenUpstream)]
        acts = conn.receive_data(data[cut:], done)
        [op] = [a for a in acts if isinstance(a, OpenUpstream)]
        return op

    return conn, request


def _dropped_then_retried(retry_connected_at: float) -> tuple[ClientConnection, OpenUpstream]:
    """Two endpoints; a GET whose head arrives at 4.5 and 5.0, its first try connected at 5.5
    and dropped by the upstream at 7.0 (an error: retried), the retry connected at
    ``retry_connected_at``: the connection and the retry's ``OpenUpstream``."""
    conn, request = _timed_conn([("10.0.0.1", 80), ("10.0.0.2", 80)])
    op = request(4.5, 5.0)
    conn.upstream_connected(op.conn_id, 5.5, reused=False)
    [retry] = [a for a in conn.upstream_eof(op.conn_id, 7.0) if isinstance(a, OpenUpstream)]
    conn.upstream_connected(retry.conn_id, retry_connected_at, reused=False)
    return conn, retry


def _record_of(actions: list[Any]) -> Any:
    [done] = [a for a in actions if isinstance(a, RequestDone)]
    return done.record


def test_record_header_and_response_times_count_from_the_attempts_start() -> None:
    # nginx: "$upstream_header_time keeps time spent on receiving the response header from the
    # upstream server", "$upstream_response_time ... receiving the response", both from the
    # attempt's start (ngx_http_upstream_connect). Before, the header time counted from the
    # request's first byte (1.0 here) and the response time from the connect (0.75 here).
    conn, request = _timed_conn([("10.0.0.1", 80)])
    op = request(0.5, 1.0)  # first byte at 0.5, routed and opened at 1.0
    conn.upstream_connected(op.conn_id, 1.25, reused=False)
    assert conn.upstream_data(op.conn_id, b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nok", 1.5)
    rec = _record_of(conn.upstream_data(op.conn_id, b"ok", 2.0))
    assert (rec.start, rec.upstream_connect, rec.end) == (0.5, 1.25, 2.0)
    assert rec.upstream_header_time == pytest.approx(0.5)
    assert rec.upstream_response_time == pytest.approx(1.0)
    assert rec.upstream_connect_time == pytest.approx(0.25)
    assert rec.upstream_first_byte == 1.5  # unchanged: the first head's arrival, absolute
    # A pooled connection: the connect is ~0 (0.0), the times still run from the attempt's
    # start, not from the request's first byte (2.9: the old header time was 0.35).
    op = request(2.9, 3.0)
    conn.upstream_connected(op.conn_id, 3.0, reused=True)
    rec = _record_of(conn.upstream_data(
        op.conn_id, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 3.25))
    assert rec.upstream_connect_time == 0.0
    assert rec.upstream_header_time == pytest.approx(0.25)
    assert rec.upstream_response_time == pytest.approx(0.25)
    # The keep-alive race: the pooled connection taken at 4.0 was closed by the upstream
    # (EOF at 4.5, no byte); the fresh connection opened then is a new attempt, as in nginx
    # (a new upstream state per connect): the times run from 4.5.
    op = request(3.9, 4.0)
    conn.upstream_connected(op.conn_id, 4.0, reused=True)
    [fresh] = [a for a in conn.upstream_eof(op.conn_id, 4.5) if isinstance(a, OpenUpstream)]
    assert fresh.pooled is False
    conn.upstream_connected(fresh.conn_id, 4.75, reused=False)
    rec = _record_of(conn.upstream_data(
        fresh.conn_id, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 5.0))
    assert rec.upstream_header_time == pytest.approx(0.5)
    assert rec.upstream_response_time == pytest.approx(0.5)


def test_record_times_come_from_the_last_attempt_after_a_retry() -> None:
    # The first try connects at 5.5, the upstream drops it at 7.0 (error: retried, GET); the
    # retry opens at 7.0, connects at 7.5, its head arrives at 8.0 and its body ends at 8.5.
    # nginx logs "2.000, 1.500" for $upstream_response_time; the record keeps the last try's.
    # The old computations gave 3.5 (header from the request's first byte at 4.5) and 3.0
    # (response from the first try's connect at 5.5).
    conn, retry = _dropped_then_retried(7.5)
    assert retry.endpoint == ("10.0.0.2", 80)
    conn.upstream_data(retry.conn_id, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", 8.0)
    rec = _record_of(conn.upstream_data(retry.conn_id, b"ok", 8.5))
    assert rec.upstreams == (("10.0.0.1", 80), ("10.0.0.2", 80))
    assert rec.upstream_header_time == pytest.approx(1.0)
    assert rec.upstream_response_time == pytest.approx(1.5)
    # A first try whose 502 head was retried (proxy-next-upstream http_502), then a retry
    # that fails to connect: the client gets a local 502 and the last try had no head, so
    # no header time (the retried head does not leak into it), and its own response time.
    conn, request = _timed_conn(
        [("10.0.0.1", 80), ("10.0.0.2", 80)],
        {"nginx.ingress.kubernetes.io/proxy-next-upstream": "error timeout http_502"})
    op = request(0.5, 1.0)
    conn.upstream_connected(op.conn_id, 1.0, reused=False)
    [retry] = [a for a in conn.upstream_data(
        op.conn_id, b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n", 1.5)
        if isinstance(a, OpenUpstream)]
    rec = _record_of(conn.upstream_failed(retry.conn_id, 2.25))
    assert (rec.status, rec.upstream_statuses) == (502, (502, 502))
    assert rec.upstream_first_byte == 1.5  # the first try's head, as before
    assert rec.upstream_header_time is None
    assert rec.upstream_response_time == pytest.approx(0.75)


def test_record_connect_time_is_the_last_connection_s() -> None:
    # The first try connects in 0.5 s and is dropped; the retry connects in 0.25 s and
    # answers. nginx's $upstream_connect_time reads "0.500, 0.250"; the record keeps the last
    # try's, like its header and response times (before: the first connection's 0.5).
    conn, retry = _dropped_then_retried(7.25)
    rec = _record_of(conn.upstream_data(
        retry.conn_id, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 8.0))
    assert rec.upstream_connect == 5.5  # the first connection, as before
    assert rec.upstream_connect_time == pytest.approx(0.25)
    assert rec.upstream_response_time == pytest.approx(1.0)


def test_record_times_when_the_last_attempt_got_no_response() -> None:
    # The only try fails to connect at 3.0 (opened at 1.0): 502. No header time; the response
    # time is the failed try's, as nginx keeps one for every try (its connect to its failure),
    # and it stays that even though the record waits for the rest of the request body.
    conn, request = _timed_conn([("10.0.0.1", 80)])
    op = request(0.5, 1.0, b"PUT /a HTTP/1.1\r\n" + H + b"Content-Length: 4\r\n\r\n")
    out = conn.upstream_failed(op.conn_id, 3.0)
    assert not [a for a in out if isinstance(a, RequestDone)]
    rec = _record_of(conn.receive_data(b"body", 4.0))
    assert (rec.status, rec.end) == (502, 4.0)
    assert rec.upstream_header_time is None
    assert rec.upstream_response_time == pytest.approx(2.0)
    # No upstream at all (a local 503): neither.
    pair = ProxyPair([Route("/", endpoints=[])])
    pair.send(GET)
    assert pair.records[0].status == 503
    assert pair.records[0].upstream_header_time is None
    assert pair.records[0].upstream_response_time is None


def test_record_times_of_a_cut_response_and_of_a_tunnel_end_at_the_cut_and_the_close() -> None:
    # A response the upstream cuts short: the end is the cut (nginx finalizes the request then).
    conn, request = _timed_conn([("10.0.0.1", 80)])
    op = request(0.5, 1.0)
    conn.upstream_connected(op.conn_id, 1.0, reused=False)
    conn.upstream_data(op.conn_id, b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\npart", 1.5)
    rec = _record_of(conn.upstream_eof(op.conn_id, 2.5))
    assert rec.upstream_header_time == pytest.approx(0.5)
    assert rec.upstream_response_time == pytest.approx(1.5)
    # A WebSocket tunnel: the head is the 101; the response lasts until the tunnel closes, as
    # nginx finalizes an upgraded request only then.
    conn, request = _timed_conn([("10.0.0.1", 80)])
    op = request(0.5, 1.0, WS)
    conn.upstream_connected(op.conn_id, 1.0, reused=False)
    acts = conn.upstream_data(op.conn_id, WS_101, 1.25)
    assert not [a for a in acts if isinstance(a, RequestDone)]
    conn.receive_data(b"\x81\x05hello", 5.0)
    rec = _record_of(conn.upstream_eof(op.conn_id, 31.0))
    assert rec.status == 101
    assert rec.upstream_header_time == pytest.approx(0.25)
    assert rec.upstream_response_time == pytest.approx(30.0)


# ---------------------------------------------------------------------- client body timeout
BODY_HEAD = b"PUT /a HTTP/1.1\r\n" + H + b"Content-Length: 10\r\n\r\n"


def test_a_stalled_request_body_is_the_clients_fault_408() -> None:
    # "client_body_timeout ... If a client does not transmit anything within this time, the
    # request is terminated with the 408 (Request Time-out) error." Not the upstream's fault:
    # before, the upstream read timer fired instead, marked the endpoint failed (EWMA) and
    # retried this idempotent PUT on the next endpoint, to wait for the same stalled client.
    eps = [("10.0.0.1", 80), ("10.0.0.2", 80)]
    pair = ProxyPair([Route("/", endpoints=eps)], ProxySettings(client_body_timeout=5.0))
    assert pair.send(BODY_HEAD + b"abc") == b""
    assert pair.timer == (TimerKind.BODY, 5.0)
    out = pair.fire(TimerKind.BODY)
    assert status_of(out) == 408 and pair.closed
    assert [o.endpoint for o in pair.opens] == eps[:1]  # no retry
    assert pair.router.observed == []  # the upstream is not blamed
    assert pair.records[0].status == 408


def test_each_body_read_rearms_the_body_timer_then_the_upstream_owes_the_answer() -> None:
    pair = ProxyPair(settings=ProxySettings(client_body_timeout=5.0, proxy_read_timeout=7.0),
                     app=lambda r, b, u: None)  # an upstream that stays silent
    pair.send(BODY_HEAD + b"abc")
    pair.now += 4.0
    pair.send(b"defg")
    assert pair.timer == (TimerKind.BODY, 5.0)  # counted again from this read
    pair.send(b"hij")  # the body is complete: now waiting is on the upstream
    assert pair.timer == (TimerKind.UPSTREAM_READ, 7.0)
    assert pair.upstreams[0].requests[0][1] == b"abcdefghij"
    out = pair.fire(TimerKind.UPSTREAM_READ)
    assert status_of(out) == 504
    assert pair.router.observed == [(pair.upstreams[0].endpoint, False)]


def test_a_body_stall_after_the_response_began_closes_both_sides() -> None:
    pair = ProxyPair(settings=ProxySettings(client_body_timeout=5.0), app=lambda r, b, u: None)
    pair.send(BODY_HEAD + b"abc")
    # The upstream answers early, before the body is in (allowed: RFC 9110 §9.3.4 servers may).
    out = pair.upstream_send(pair.upstreams[0], b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\nx")
    assert out.startswith(b"HTTP/1.1 200 OK")
    pair.send(b"d")
    assert pair.timer == (TimerKind.BODY, 5.0)
    out = pair.fire(TimerKind.BODY)
    assert out == b"" and pair.closed  # a status can no longer be sent
    assert [(c.conn_id, c.reuse) for c in pair.closes] == [(1, False)]
    assert pair.router.observed == []  # still not the upstream's fault


def test_unknown_upstream_id_is_local_misuse() -> None:
    pair = ProxyPair()
    with pytest.raises(LocalProxyError):
        pair.conn.upstream_data(99, b"x", 0.0)


def test_proxy_settings_can_be_swapped() -> None:
    pair = ProxyPair()
    pair.proxy.settings = ProxySettings(generate_request_id=False)
    assert isinstance(pair.proxy, Proxy)
    conn = pair.proxy.connection("198.51.100.1", now=0.0)
    assert conn.settings.generate_request_id is False


def test_idempotent_retry_replays_the_body() -> None:
    eps = [("10.0.0.1", 80), ("10.0.0.2", 80)]
    state = {"n": 0}

    def app(r: h11.Request, b: bytes, u: FakeUpstream) -> Reply | None:
        state["n"] += 1
        return None if state["n"] == 1 else ok(b"got " + b)

    pair = ProxyPair([Route("/", endpoints=eps)], app=app)
    pair.send(b"PUT /x HTTP/1.1\r\n" + H + b"Content-Length: 4\r\n\r\nbody")
    out = pair.fire(TimerKind.UPSTREAM_READ)
    assert out == b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\ngot body"
    assert pair.upstreams[1].requests[0][1] == b"body"
    assert pair.records[0].upstreams == tuple(eps)


def test_next_upstream_off_disables_retries() -> None:
    eps = [("10.0.0.1", 80), ("10.0.0.2", 80)]
    route = Route("/", endpoints=eps,
                  annotations={"nginx.ingress.kubernetes.io/proxy-next-upstream": "off"})
    pair = ProxyPair([route], refuse=eps)
    assert status_of(pair.send(GET)) == 502 and len(pair.opens) == 1


def test_http10_absolute_form_without_host() -> None:
    pair = ProxyPair()
    out = pair.send(b"GET http://example.test:8080/p HTTP/1.0\r\n\r\n")
    assert status_of(out) == 200
    # nginx's $host (lower-cased, no port: session 24, tests/test_small_s24.py)
    assert header(upstream_head(pair), b"host") == [b"example.test"]
    assert pair.router.calls[0][1] == "example.test:8080"


def test_leading_empty_lines_before_a_request_are_ignored() -> None:
    pair = ProxyPair()
    pair.send(GET)
    out = pair.send(b"\r\n" + GET)
    assert status_of(out) == 200


def test_record_of_a_refused_request_has_the_peer() -> None:
    pair = ProxyPair()
    pair.send(b"GET /a%2fb HTTP/1.1\r\n" + H + b"\r\n")
    rec = pair.records[0]
    assert rec.status == 400 and rec.client_ip == "203.0.113.7" and rec.upstreams == ()


def test_upstream_keepalive_disabled() -> None:
    pair = ProxyPair(settings=ProxySettings(upstream_keepalive_connections=0))
    pair.send(GET)
    assert pair.closes[0].reuse is False


def test_keep_alive_zero_closes_after_each_response() -> None:
    pair = ProxyPair(settings=ProxySettings(keep_alive=0))
    out = pair.send(GET)
    assert b"connection: close" in out.lower() and pair.closed


def test_backend_protocol_https_opens_tls_upstreams() -> None:
    route = Route("/", annotations={"nginx.ingress.kubernetes.io/backend-protocol": "HTTPS"})
    pair = ProxyPair([route])
    pair.send(GET)
    assert pair.opens[0].tls is True
    plain = ProxyPair()
    plain.send(GET)
    assert plain.opens[0].tls is False


def test_ssl_redirect_wildcard_tls_host_and_acme_exemption() -> None:
    pair = ProxyPair(tls_hosts={"*.example.test"})
    out = pair.send(b"GET / HTTP/1.1\r\nHost: shop.example.test\r\n\r\n")
    assert status_of(out) == 308
    out = pair.send(b"GET / HTTP/1.1\r\nHost: a.shop.example.test\r\n\r\n")
    assert status_of(out) == 200  # one label only
    # no-tls-redirect-locations is read on the rule's path (template.go
    # isLocationInLocationList), not the request's: an ACME request a `/` rule routes is
    # redirected as on ingress-nginx (cert-manager's solver Ingress has the ACME path itself).
    pair = ProxyPair(tls_hosts={"example.test"})
    out = pair.send(b"GET /.well-known/acme-challenge/tok HTTP/1.1\r\n" + H + b"\r\n")
    assert status_of(out) == 308  # (an exempt rule path: tests/test_no_tls_redirect_s28.py)


def test_generated_request_ids_are_unique() -> None:
    from ingresslib.proxy._connection import _RequestIds

    gen = _RequestIds()
    ids = [gen() for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


MANIFESTS = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: api
  annotations:
    nginx.ingress.kubernetes.io/rewrite-target: /$2
    nginx.ingress.kubernetes.io/use-regex: "true"
    nginx.ingress.kubernetes.io/proxy-body-size: 4k
spec:
  rules:
  - host: example.test
    http:
      paths:
      - {path: /api, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}
---
apiVersion: v1
kind: Service
metadata: {name: api}
spec: {ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: api-1, labels: {kubernetes.io/service-name: api}}
addressType: IPv4
ports: [{port: 8080}]
endpoints: [{addresses: [10.0.0.1]}, {addresses: [10.0.0.2]}]
"""


def test_with_the_real_router() -> None:
    from ingresslib import parse_manifests
    from ingresslib import Router

    router = Router(parse_manifests(MANIFESTS), seed=1)
    pair = ProxyPair(router=router, refuse=[("10.0.0.1", 8080)])
    out = pair.send(b"GET /api/v1/../users HTTP/1.1\r\n" + H + b"\r\n")
    assert status_of(out) == 200
    # The rule path "/api" has no groups: "/$2" becomes "/" (ingress-nginx's behaviour).
    assert upstream_head(pair).startswith(b"GET / HTTP/1.1\r\n")
    rec = pair.records[0]
    assert rec.ingress == "default/api" and rec.service == "api" and rec.rule_path == "/api"
    assert rec.path == "/api/users"
    assert ("10.0.0.2", 8080) in rec.upstreams
    out = pair.send(b"POST /api HTTP/1.1\r\n" + H + b"Content-Length: 5000\r\n\r\n")
    assert status_of(out) == 413
    pair = ProxyPair(router=router)
    assert status_of(pair.send(b"GET /other HTTP/1.1\r\n" + H + b"\r\n")) == 404


def test_the_core_imports_no_io_module() -> None:
    # Static check of the core's own imports (``import ingresslib`` itself may pull in asyncio
    # for the server and ASGI parts; the core modules must not).
    import ast
    from pathlib import Path

    import ingresslib.proxy as pkg

    forbidden = {"socket", "asyncio", "ssl", "selectors", "trio", "anyio"}
    core = ["__init__", "_access", "_actions", "_annotations", "_basicauth", "_chunked",
            "_connection", "_cors", "_error_pages", "_errors", "_h11_reader", "_header_sets",
            "_headers", "_htpasswd", "_ratelimit", "_request", "_response_head", "_settings",
            # session 26
            "_extauth", "_globalauth", "_bandwidth", "_mirror", "_proxy_protocol",
            "_passthrough", "_clientcert", "_location_extras", "_digest", "_satisfy",
            "_proxy_ssl",
            # session 27
            "_globalratelimit", "_authcache", "_auth_unasked",
            "_authkeepalive",
            # session 28
            "_gzip", "_block", "_request_buffer",
            # session 29
            "_brotli",
            # session 30
            "_response_buffer"]
    for name in core:
        tree = ast.parse((Path(pkg.__file__).parent / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                mods = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                mods = [(node.module or "").split(".")[0]]
                if node.level == 1:
                    assert node.module in core, (name, node.module)  # no _server/_tls
            else:
                continue
            assert not forbidden & set(mods), (name, mods)


def test_half_close_after_pipelined_requests_answers_them_all() -> None:
    # With proxy_ignore_client_abort on (nginx's default, off, aborts at the FIN: see
    # test_client_fin_after_a_complete_request_aborts_with_499).
    held: list[FakeUpstream] = []
    pair = ProxyPair(settings=ProxySettings(proxy_ignore_client_abort=True),
                     app=lambda r, b, u: (held.append(u), None)[1])
    pair.send(b"GET /1 HTTP/1.1\r\n" + H + b"\r\nGET /2 HTTP/1.1\r\n" + H + b"\r\nGET /3 HT")
    pair.eof()  # shutdown(SHUT_WR) after writing
    assert not pair.closed
    out = pair.upstream_send(held[0], b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")
    assert out == b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1" and not pair.closed
    out = pair.upstream_send(held[1], b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2")
    # The last complete request gets "Connection: close"; the partial third one is dropped.
    assert out == b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nconnection: close\r\n\r\n2"
    assert pair.closed


# --- the h11 reader: h11's own parser without its state machine --------------------------------
# ``_H11Reader`` must yield exactly the events (and the errors) ``h11.Connection.next_event``
# yields for the same bytes, whole or one byte at a time, with or without an EOF after them.

_REQUESTS = [
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"GET / HTTP/1.0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhel",
    b"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX: y\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n",
    b"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
    b"GET / HTTP/1.1\nHost: a\n\n",
    b"G@T / HTTP/1.1\r\nHost: a\r\n\r\n",
    b"\x16\x03\x01\x00\xa5\x01\x00\x00",
    b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"x" * 300 + b"\r\n\r\n",
    b"GET / HTTP/1.1\r\nHo",
    b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /next HTTP/1.1\r\n",
    # The reader's own fast path (session 11) hands these to h11's rules: keep them exact.
    b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi",
    b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 123456789012345678901\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n1\r\nx\r\n0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n folded\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n",
]

_RESPONSES = [
    (b"GET", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"),
    (b"GET", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nh"),
    (b"GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"),
    (b"GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n"),
    (b"GET", b"HTTP/1.1 200 OK\r\n\r\nuntil the end"),
    (b"GET", b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi"),
    (b"GET", b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi"),
    (b"HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n"),
    (b"GET", b"HTTP/1.1 204 No Content\r\nContent-Length: 20\r\n\r\n"),
    (b"GET", b"HTTP/1.1 304 Not Modified\r\n\r\n"),
    (b"GET", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"),
    (b"GET", b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"),
    (b"GET", b"HTTP/1.1 2000 OK\r\n\r\n"),
    (b"GET", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nhi"),
    (b"GET", b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n"),
    (b"GET", b"garbage\r\n\r\n"),
    (b"GET", b"HTTP/1.1 200 OK\r\nX: " + b"y" * 300 + b"\r\n\r\n"),
    (b"GET", b""),
    (b"GET", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiEXTRA"),
]


def _drive(conn: object, data: bytes, one_byte: bool, eof: bool) -> list[object]:
    """Feed ``data`` (whole or byte by byte), then EOF if asked; collect what comes out."""
    out: list[object] = []
    pieces = [data[i:i + 1] for i in range(len(data))] if one_byte else [data]
    pieces = [p for p in pieces if p] + ([b""] if eof else [])
    for piece in pieces:
        conn.receive_data(piece)  # type: ignore[attr-defined]
        while True:
            try:
                ev = conn.next_event()  # type: ignore[attr-defined]
            except h11.RemoteProtocolError as e:
                out.append(("error", e.error_status_hint))
                return out
            if ev is h11.NEED_DATA or ev is h11.PAUSED:
                break
            # (Trailers are read and dropped as they come, never kept: session 22.)
            out.append(h11.EndOfMessage() if type(ev) is h11.EndOfMessage else ev)
            if type(ev) in (h11.EndOfMessage, h11.ConnectionClosed):
                out.append(conn.their_state)  # type: ignore[attr-defined]
                out.append(conn.trailing_data[0])  # type: ignore[attr-defined]
                return out
    out.append("need-data")
    return out


@pytest.mark.parametrize("one_byte", [False, True])
@pytest.mark.parametrize("eof", [False, True])
@pytest.mark.parametrize("data", _REQUESTS)
def test_reader_parses_requests_like_h11(data: bytes, one_byte: bool, eof: bool) -> None:
    from ingresslib.proxy._connection import _H11Reader

    ref = h11.Connection(h11.SERVER, max_incomplete_event_size=200)
    assert _drive(_H11Reader(False, 200), data, one_byte, eof) == _drive(ref, data, one_byte, eof)


@pytest.mark.parametrize("one_byte", [False, True])
@pytest.mark.parametrize("eof", [False, True])
@pytest.mark.parametrize(("method", "data"), _RESPONSES)
def test_reader_parses_responses_like_h11(method: bytes, data: bytes, one_byte: bool,
                                          eof: bool) -> None:
    from ingresslib.proxy._connection import _H11Reader

    ref = h11.Connection(h11.CLIENT, max_incomplete_event_size=200)
    ref.send(h11.Request(method=method, target="/", headers=[("Host", "a")]))
    ref.send(h11.EndOfMessage())
    reader = _H11Reader(True, 200)
    reader.method = method
    assert _drive(reader, data, one_byte, eof) == _drive(ref, data, one_byte, eof)


_LINES = st.sampled_from([
    b"Host: a", b"Host: b", b"host:a", b"Content-Length: 3", b"content-length: 03",
    b"Content-Length: 3, 3", b"Content-Length: -1", b"Transfer-Encoding: chunked",
    b"transfer-encoding: Chunked", b"Transfer-Encoding: gzip, chunked", b"Connection: close",
    b"Connection: keep-alive, Upgrade", b"Upgrade: websocket", b"Expect: 100-continue",
    b" folded", b"\tfolded", b"Bad Header", b"X:", b"X: \x00", b"X: \xff", b"X-Y: z ",
    b":empty", b"X\x7f: y",
])
_STARTS = st.sampled_from([
    b"GET / HTTP/1.1", b"POST /p HTTP/1.1", b"GET / HTTP/1.0", b"GET http://a/x HTTP/1.1",
    b"OPTIONS * HTTP/1.1", b"GET  / HTTP/1.1", b"GET / HTTP/2.0", b"G\x00T / HTTP/1.1", b"",
])


@settings(deadline=None)
@given(start=_STARTS, lines=st.lists(_LINES, max_size=6),
       seps=st.lists(st.sampled_from([b"\r\n", b"\n"]), min_size=8, max_size=8),
       body=st.sampled_from([b"", b"abc", b"3\r\nabc\r\n0\r\n\r\n", b"GET / HTTP/1.1\r\n\r\n"]),
       one_byte=st.booleans(), eof=st.booleans())
def test_reader_parses_composed_requests_like_h11(start: bytes, lines: list[bytes],
                                                  seps: list[bytes], body: bytes,
                                                  one_byte: bool, eof: bool) -> None:
    # Heads built from the lines that decide framing and errors, with CRLF or bare LF at each
    # end: the reader's CRLF fast path and h11's own loop must give h11.Connection's events.
    from ingresslib.proxy._connection import _H11Reader

    head = start + seps[0] + b"".join(line + sep for line, sep in zip(lines, seps[1:]))
    data = head + seps[-1] + body
    ref = h11.Connection(h11.SERVER, max_incomplete_event_size=200)
    expected = _drive(ref, data, one_byte, eof)
    # The one state the reader does not keep: h11's MIGHT_SWITCH_PROTOCOL after a request
    # with Upgrade. The core decides upgrades itself (``req.upgrade``), so the reader reports
    # the message as any other: DONE, or MUST_CLOSE when h11's keep-alive rule says so.
    if h11.MIGHT_SWITCH_PROTOCOL in expected:
        from h11._connection import _keep_alive

        done = h11.DONE if _keep_alive(expected[0]) else h11.MUST_CLOSE
        expected = [done if e is h11.MIGHT_SWITCH_PROTOCOL else e for e in expected]
    assert _drive(_H11Reader(False, 200), data, one_byte, eof) == expected


def test_reader_error_is_final_and_cycles_restart() -> None:
    from ingresslib.proxy._connection import _H11Reader

    r = _H11Reader(True, 1000)
    r.receive_data(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxHTTP/1.1 204 No Content\r\n\r\n")
    assert type(r.next_event()) is h11.Response
    assert type(r.next_event()) is h11.Data
    assert type(r.next_event()) is h11.EndOfMessage
    assert r.their_state is h11.DONE and r.has_trailing
    assert r.next_event() is h11.PAUSED
    r.start_next_cycle()
    ev = r.next_event()
    assert type(ev) is h11.Response and ev.status_code == 204
    bad = _H11Reader(False, 1000)
    bad.receive_data(b"NOT HTTP\r\n\r\n")
    with pytest.raises(h11.RemoteProtocolError):
        bad.next_event()
    assert bad.their_state is h11.ERROR
    with pytest.raises(h11.RemoteProtocolError):
        bad.next_event()


def test_record_names_both_backends_when_the_canary_serves_and_records_can_be_off() -> None:
    from types import SimpleNamespace

    from _proxy_harness import FakeMatch
    from ingresslib.proxy import OpenUpstream, RequestDone, SendDownstream

    main = FakeMatch("web", "http", "default", "default/web", None, "/", "Prefix", False, {})
    canary = FakeMatch("web-canary", 8081, "default", "default/web-canary", None, "/", "Prefix",
                       False, {})

    class CanaryRouter:
        def route(self, method: str, host: str, path: str, headers: object,
                  client_ip: str | None) -> object:
            return SimpleNamespace(service="web-canary", namespace="default", port=8081,
                                   endpoint=("10.0.0.9", 8081), canary=True, match=main,
                                   served=canary, set_cookie=None)

        def next_endpoint(self, decision: object, tried: object) -> None:
            return None

    proxy = Proxy(CanaryRouter())
    conn = proxy.connection(("192.0.2.1", 5000), now=0.0)

    def one(now: float, response: bytes, eof: bool = False) -> tuple[bytes, list[object]]:
        acts = conn.receive_data(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", now)
        cid = next(a.conn_id for a in acts if isinstance(a, OpenUpstream))
        conn.upstream_connected(cid, now, reused=False)
        acts = conn.upstream_data(cid, response, now + 1)
        if eof:  # a body delimited by the upstream closing
            acts += conn.upstream_eof(cid, now + 1)
        sent = b"".join(a.data for a in acts if isinstance(a, SendDownstream))
        return sent, [a.record for a in acts if isinstance(a, RequestDone)]

    sent, records = one(0.0, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
    assert sent.endswith(b"\r\n\r\nhello")
    [rec] = records
    assert (rec.service, rec.service_port) == ("web-canary", 8081)  # type: ignore[attr-defined]
    assert (rec.primary_service, rec.primary_port) == ("web", "http")  # type: ignore[attr-defined]
    assert rec.body_bytes_out == 5 and rec.bytes_out == len(sent)  # type: ignore[attr-defined]
    # No Content-Length: chunked to an HTTP/1.1 client; the body bytes include the framing.
    sent, records = one(2.0, b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello", eof=True)
    assert sent.endswith(b"\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
    [rec] = records
    assert rec.body_bytes_out == len(b"5\r\nhello\r\n0\r\n\r\n")  # type: ignore[attr-defined]
    # Nobody consumes records: none are built, the proxying is the same.
    proxy.records = False
    sent2, records = one(4.0, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
    assert records == [] and sent2.endswith(b"\r\n\r\nhello")


# ---------------------------------------------------------------------- holding the client back
# Body bytes that arrive before an upstream can take them are held by the core; beyond a fixed
# bound (64 KiB) ``reading_wanted`` says "stop reading the client" until the upstream connects
# and the held bytes go out (before, nothing bounded them: with proxy-body-size 0 a client could
# push gigabytes into memory during the connect).
HOLD = 65536
EP1, EP2 = ("10.0.0.1", 80), ("10.0.0.2", 80)
UNLIMITED = ProxySettings(proxy_body_size=0, client_body_timeout=5.0)


def _body(n: int, seed: int = 0) -> bytes:
    return bytes((i * 7 + seed) % 251 for i in range(n))


@pytest.mark.parametrize("chunked", [False, True])
def test_body_before_connect_beyond_the_bound_stops_reading_until_connected(
        chunked: bool) -> None:
    pair = ProxyPair([Route("/", endpoints=[EP1])], UNLIMITED, defer=[EP1],
                     app=lambda r, b, u: ok(b"%d" % len(b)))
    body = _body(3 * HOLD)
    head = b"PUT /up HTTP/1.1\r\n" + H + (b"Transfer-Encoding: chunked\r\n\r\n" if chunked
                                          else b"Content-Length: %d\r\n\r\n" % len(body))

    def framed(data: bytes) -> bytes:
        return b"%x\r\n%s\r\n" % (len(data), data) if chunked else data

    pair.send(head + framed(body[:HOLD]))
    assert pair.conn.reading_wanted  # at the bound: still reading
    pair.send(framed(body[HOLD:HOLD + 10]))
    assert not pair.conn.reading_wanted  # beyond it, no upstream yet: stop reading the client
    assert pair.upstreams[0].raw == b""
    pair.connect()
    # The held bytes went out with the head, and the client may send again.
    assert pair.conn.reading_wanted
    sent = bytes(pair.upstreams[0].raw)
    assert sent.startswith(b"PUT /up HTTP/1.1\r\n") and sent.endswith(framed(body[HOLD:HOLD + 10]))
    assert pair.timer == (TimerKind.BODY, 5.0)
    out = pair.send(framed(body[HOLD + 10:]) + (b"0\r\n\r\n" if chunked else b""))
    assert out.endswith(b"\r\n\r\n%d" % len(body))
    assert pair.upstreams[0].requests[0][1] == body
    assert pair.conn.reading_wanted


def test_held_body_survives_a_failed_connect_and_goes_to_the_retry() -> None:
    pair = ProxyPair([Route("/", endpoints=[EP1, EP2])], UNLIMITED, defer=[EP1, EP2],
                     app=lambda r, b, u: ok(b"got %d" % len(b)))
    body = _body(150_000)
    pair.send(b"PUT /up HTTP/1.1\r\n" + H + b"Content-Length: %d\r\n\r\n" % len(body)
              + body[:100_000])
    assert not pair.conn.reading_wanted
    assert pair.fail_connect() == b""  # refused: retried on the next endpoint
    assert [o.endpoint for o in pair.opens] == [EP1, EP2]
    assert not pair.conn.reading_wanted  # still no upstream for the held bytes
    pair.connect()
    assert pair.conn.reading_wanted
    assert bytes(pair.upstreams[1].raw).endswith(body[:100_000])
    out = pair.send(body[100_000:])
    assert out.endswith(b"got 150000")
    assert pair.upstreams[1].requests[0][1] == body
    assert pair.upstreams[0].raw == b""


def test_a_failed_connect_answered_locally_reads_the_client_again() -> None:
    # Nothing left to try: 502, the body is read and discarded -- reading must resume.
    pair = ProxyPair([Route("/", endpoints=[EP1])], UNLIMITED, defer=[EP1])
    pair.send(b"PUT /up HTTP/1.1\r\n" + H + b"Content-Length: 200000\r\n\r\n" + _body(100_000))
    assert not pair.conn.reading_wanted
    out = pair.fail_connect()
    assert status_of(out) == 502 and not pair.closed
    assert pair.conn.reading_wanted
    pair.send(_body(100_000))  # the rest of the body, discarded
    pair.send(GET)  # the connection serves the next request
    assert len(pair.opens) == 2 and not pair.closed and pair.conn.reading_wanted


def test_the_body_timer_does_not_blame_a_client_we_hold_back() -> None:
    # The first try connects and takes part of the body, then dies before answering: the PUT is
    # replayed on the next endpoint, whose connect is slow. The held replay exceeds the bound,
    # so the client is not read meanwhile; the BODY timer armed by its last read must not turn
    # that into a 408 (nor blame anyone): its clock starts again.
    pair = ProxyPair([Route("/", endpoints=[EP1, EP2])], UNLIMITED, defer=[EP2],
                     app=lambda r, b, u: ok(b"got %d" % len(b)))
    body = _body(200_000)
    pair.send(b"PUT /up HTTP/1.1\r\n" + H + b"Content-Length: %d\r\n\r\n" % len(body)
              + body[:100_000])
    assert pair.conn.reading_wanted and pair.timer == (TimerKind.BODY, 5.0)
    pair.upstream_send(pair.upstreams[0], b"", close=True)  # died: "error", retried
    assert [o.endpoint for o in pair.opens] == [EP1, EP2]
    assert not pair.conn.reading_wanted
    assert pair.fire(TimerKind.BODY) == b""
    assert not pair.closed and pair.timer == (TimerKind.BODY, 5.0)
    assert pair.router.observed == [(EP1, False)]  # only the try that failed
    pair.connect()
    assert pair.conn.reading_wanted
    out = pair.send(body[100_000:])
    assert out.endswith(b"got 200000")
    assert pair.upstreams[1].requests[0][1] == body
    # Once reading again, a real stall is the client's: 408.
    pair.send(b"PUT /up HTTP/1.1\r\n" + H + b"Content-Length: 10\r\n\r\nabc")
    assert status_of(pair.fire(TimerKind.BODY)) == 408


def test_pipelined_bytes_behind_a_request_in_flight_are_held_to_the_bound() -> None:
    pair = ProxyPair([Route("/", endpoints=[EP1])], UNLIMITED, defer=[EP1],
                     app=lambda r, b, u: ok(b"%s %d" % (r.method, len(b))))
    body = _body(70_000)
    pair.send(GET)
    pair.send(b"POST /p HTTP/1.1\r\n" + H + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    assert not pair.conn.reading_wanted  # > 64 KiB waiting behind the GET
    out = pair.connect()
    assert out.startswith(b"HTTP/1.1 200") and out.endswith(b"GET 0")
    # The POST was parsed; its body now waits for its own connect.
    assert [o.endpoint for o in pair.opens] == [EP1, EP1] and not pair.conn.reading_wanted
    out = pair.connect()
    assert out.endswith(b"POST 70000") and pair.conn.reading_wanted


def test_a_driver_ignoring_reading_wanted_still_sends_the_whole_request() -> None:
    # Backward compatibility: the harness goes on feeding bytes while reading_wanted is False
    # (as any driver written before it did); the upstream still gets the complete request.
    pair = ProxyPair([Route("/", endpoints=[EP1])], UNLIMITED, defer=[EP1],
                     app=lambda r, b, u: ok(b"got %d" % len(b)))
    body = _body(2 * 1024 * 1024 + 17)
    pair.send(b"POST /big HTTP/1.1\r\n" + H + b"Content-Length: %d\r\n\r\n" % len(body))
    seen = []
    for i in range(0, len(body), 50_000):
        pair.send(body[i:i + 50_000])
        seen.append(pair.conn.reading_wanted)
    assert seen[0] and not any(seen[2:])  # asked to stop, and ignored
    out = pair.connect()
    assert out.endswith(b"got %d" % len(body))
    assert pair.upstreams[0].requests[0][1] == body
    assert pair.conn.reading_wanted and pair.records[0].status == 200


# ---------------------------------------------------------------------- nginx parity: statuses
# ngx_http_upstream_next() (src/http/ngx_http_upstream.c) gives every failed try a status:
#     case NGX_HTTP_UPSTREAM_FT_TIMEOUT: case NGX_HTTP_UPSTREAM_FT_HTTP_504:
#         status = NGX_HTTP_GATEWAY_TIME_OUT; ...  default: status = NGX_HTTP_BAD_GATEWAY;
#     ...
#     u->state->status = status;
# so $upstream_status reads "502, 200" (504 for a timeout), never "-, 200".
def test_a_refused_try_has_status_502_in_the_record() -> None:
    eps = [("10.0.0.1", 80), ("10.0.0.2", 80)]
    pair = ProxyPair([Route("/", endpoints=eps)], refuse=eps[:1])
    assert status_of(pair.send(GET)) == 200
    rec = pair.records[0]
    assert rec.upstreams == tuple(eps)
    assert (rec.upstream_statuses, rec.upstream_status) == ((502, 200), 200)


def test_every_try_refused_logs_502_for_each() -> None:
    eps = [("10.0.0.%d" % i, 80) for i in range(1, 5)]
    pair = ProxyPair([Route("/", endpoints=eps)], refuse=eps)
    assert status_of(pair.send(GET)) == 502
    rec = pair.records[0]
    assert (rec.upstream_statuses, rec.upstream_status) == ((502, 502, 502), 502)


def test_a_timed_out_try_has_status_504() -> None:
    eps = [("10.0.0.1", 80), ("10.0.0.2", 80)]
    pair = ProxyPair([Route("/", endpoints=eps)], hang=eps[:1])
    assert status_of(pair.send(GET)) == 200
    assert pair.records[0].upstream_statuses == (504, 200)
    # A read timeout, nothing left to try: the client's 504 is the try's status too.
    pair = ProxyPair([Route("/", endpoints=eps[:1])], app=silent)
    pair.send(GET)
    assert status_of(pair.fire(TimerKind.UPSTREAM_READ)) == 504
    assert (pair.records[0].upstream_statuses, pair.records[0].upstream_status) == ((504,), 504)


def test_an_invalid_response_head_is_a_502_try() -> None:
    eps = [("10.0.0.1", 80), ("10.0.0.2", 80)]
    bad = {eps[0]}

    def app(r: h11.Request, b: bytes, u: FakeUpstream) -> Reply:
        if u.endpoint in bad:
            return Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked"
                         b"\r\n\r\n")
        return ok()

    route = Route("/", endpoints=eps, annotations={
        "nginx.ingress.kubernetes.io/proxy-next-upstream": "error timeout invalid_header"})
    pair = ProxyPair([route], app=app)
    assert status_of(pair.send(GET)) == 200
    assert pair.records[0].upstream_statuses == (502, 200)
    # Not retried (default conditions): the client's 502 and the try's agree.
    pair = ProxyPair([Route("/", endpoints=eps)], app=app)
    assert status_of(pair.send(GET)) == 502
    assert pair.records[0].upstream_statuses == (502,)


def test_a_websocket_try_logs_101() -> None:
    # ngx_http_proxy_process_status_line: "u->state->status = ctx->status.code" (101 too).
    pair = ProxyPair(app=ws_app)
    pair.send(WS)
    pair.eof()
    assert (pair.records[0].upstream_statuses, pair.records[0].upstream_status) == ((101,), 101)


def test_a_try_the_client_left_before_its_answer_logs_a_dash() -> None:
    # The client goes away while the second try waits for its head: nginx finalizes with 499
    # and that try's state keeps status 0, printed "-" ("502, -"), one entry per address.
    eps = [("10.0.0.1", 80), ("10.0.0.2", 80)]
    pair = ProxyPair([Route("/", endpoints=eps)], refuse=eps[:1], app=silent)
    pair.send(b"GET / HTTP/1.1\r\n" + H + b"\r\n")
    pair._run(pair.conn.abort(pair.now))
    rec = pair.records[0]
    assert rec.upstreams == tuple(eps)
    assert rec.upstream_statuses == (502, None) and rec.upstream_status is None


# ---------------------------------------------------------------------- nginx parity: retries
# ngx_http_upstream_next: "if (u->request_sent && (r->method & (NGX_HTTP_POST|NGX_HTTP_LOCK|
# NGX_HTTP_PATCH))) ft_type |= NGX_HTTP_UPSTREAM_FT_NON_IDEMPOTENT;" then no retry when
# "(u->conf->next_upstream & ft_type) != ft_type": such a method is retried after it was sent
# only when proxy_next_upstream lists non_idempotent too. No exception for an upgrade request.
def test_websocket_upgrade_is_retried_when_a_connect_is_refused() -> None:
    eps = [("10.0.0.1", 80), ("10.0.0.2", 80)]
    pair = ProxyPair([Route("/", endpoints=eps)], refuse=eps[:1], app=ws_app)
    out = pair.send(WS)
    assert out.startswith(b"HTTP/1.1 101 ")
    assert [o.endpoint for o in pair.opens] == eps and pair.tunnels == [2]
    pair.eof()
    assert pair.records[0].upstream_statuses == (502, 101)


def test_websocket_upgrade_sent_then_dropped_is_retried_like_a_get() -> None:
    eps = [("10.0.0.1", 80), ("10.0.0.2", 80)]

    def app(r: h11.Request, b: bytes, u: FakeUpstream) -> Reply:
        return Reply(b"", close=True) if u.endpoint == eps[0] else Reply(WS_101)

    pair = ProxyPair([Route("/", endpoints=eps)], app=app)
    assert pair.send(WS).startswith(b"HTTP/1.1 101 ")
    assert len(pair.upstreams[1].requests) == 1 and pair.tunnels == [2]


def test_post_is_retried_after_sending_only_with_non_idempotent() -> None:
    eps = [("10.0.0.1", 80), ("10.0.0.2", 80)]
    post = b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\n\r\nabc"
    for conditions, opens in (("error timeout", 1), ("error timeout non_idempotent", 2)):
        route = Route("/", endpoints=eps, annotations={
            "nginx.ingress.kubernetes.io/proxy-next-upstream": conditions})
        pair = ProxyPair([route], app=silent)
        pair.send(post)
        pair.fire(TimerKind.UPSTREAM_READ)
        assert len(pair.opens) == opens, conditions
    # http_502 on a POST: the same rule (ngx_http_upstream_test_next adds the same bit).
    bad = lambda r, b, u: Reply(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
    for conditions, opens in (("http_502", 1), ("http_502 non_idempotent", 2)):
        route = Route("/", endpoints=eps, annotations={
            "nginx.ingress.kubernetes.io/proxy-next-upstream": conditions})
        pair = ProxyPair([route], app=bad)
        assert status_of(pair.send(post)) == 502
        assert len(pair.opens) == opens, conditions
        assert all(body == b"abc" for u in pair.upstreams for _, body in u.requests)


def test_http_404_retry_is_not_a_failure_of_the_endpoint() -> None:
    # ngx_http_upstream_next: "if (ft_type == NGX_HTTP_UPSTREAM_FT_HTTP_403 || ft_type ==
    # NGX_HTTP_UPSTREAM_FT_HTTP_404) { state = NGX_PEER_NEXT; } else { state =
    # NGX_PEER_FAILED; }": a 403/404 moves on without counting against the endpoint.
    eps = [("10.0.0.1", 80), ("10.0.0.2", 80)]
    first = {eps[0]}

    def app(r: h11.Request, b: bytes, u: FakeUpstream) -> Reply:
        if u.endpoint in first:
            return Reply(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        return ok()

    route = Route("/", endpoints=eps, annotations={
        "nginx.ingress.kubernetes.io/proxy-next-upstream": "error timeout http_404"})
    pair = ProxyPair([route], app=app)
    assert status_of(pair.send(GET)) == 200
    assert pair.records[0].upstream_statuses == (404, 200)
    assert pair.router.observed == [(eps[0], True), (eps[1], True)]
    # A 503 retried is a failure (NGX_PEER_FAILED).
    first.clear()
    route = Route("/", endpoints=eps, annotations={
        "nginx.ingress.kubernetes.io/proxy-next-upstream": "http_503"})
    pair = ProxyPair([route], app=lambda r, b, u: Reply(
        b"HTTP/1.1 503 x\r\nContent-Length: 0\r\n\r\n") if u.endpoint == eps[0] else ok())
    assert status_of(pair.send(GET)) == 200
    assert pair.router.observed == [(eps[0], False), (eps[1], True)]


def test_a_retryable_status_with_no_endpoint_left_is_observed_once() -> None:
    # Every endpoint answers 503 under http_503: the last try's 503 goes to the client, and the
    # balancer hears about each try once. Before: the last try was observed twice (once as a
    # retry that found no next endpoint, once as the response forwarded), which gave EWMA a
    # double sample for it.
    eps = [("10.0.0.1", 80), ("10.0.0.2", 80)]
    route = Route("/", endpoints=eps, annotations={
        "nginx.ingress.kubernetes.io/proxy-next-upstream": "http_503"})
    pair = ProxyPair([route], app=lambda r, b, u: Reply(
        b"HTTP/1.1 503 x\r\nContent-Length: 0\r\n\r\n"))
    assert status_of(pair.send(GET)) == 503
    assert pair.router.observed == [(eps[0], False), (eps[1], False)]
    assert pair.records[0].upstream_statuses == (503, 503)


def test_retry_tries_count_the_first_try_for_http_conditions_too() -> None:
    # ngx_http_upstream_test_next retries while "u->peer.tries > 1": tries=2 is one retry.
    eps = [("10.0.0.%d" % i, 80) for i in range(1, 5)]
    bad = lambda r, b, u: Reply(b"HTTP/1.1 503 x\r\nContent-Length: 1\r\n\r\nx")
    route = Route("/", endpoints=eps, annotations={
        "nginx.ingress.kubernetes.io/proxy-next-upstream": "http_503",
        "nginx.ingress.kubernetes.io/proxy-next-upstream-tries": "2"})
    pair = ProxyPair([route], app=bad)
    assert status_of(pair.send(GET)) == 503
    assert len(pair.opens) == 2 and pair.records[0].upstream_statuses == (503, 503)


def test_next_upstream_timeout_bounds_all_tries_from_the_first() -> None:
    # ngx_http_upstream_next: no retry when "(timeout && ngx_current_msec -
    # u->peer.start_time >= timeout)", start_time set once before the first connect.
    # ingress-nginx nginx.tmpl: "proxy_next_upstream_timeout {{
    # $location.Proxy.NextUpstreamTimeout }};" (the annotation, else the ConfigMap's value).
    eps = [("10.0.0.%d" % i, 80) for i in range(1, 4)]
    for budget, opens in (("0", 3), ("100", 2), ("30", 1)):
        route = Route("/", endpoints=eps, annotations={
            "nginx.ingress.kubernetes.io/proxy-next-upstream-timeout": budget})
        pair = ProxyPair([route], app=silent)
        pair.send(GET)
        while status_of(pair.fire(TimerKind.UPSTREAM_READ) or b"x 0") != 504:
            pass
        assert len(pair.opens) == opens, budget  # each read timeout takes 60 s
        assert pair.records[0].upstream_statuses == (504,) * opens
    # The ConfigMap's proxy-next-upstream-timeout is the default of the annotation.
    pair = ProxyPair([Route("/", endpoints=eps)], ProxySettings(proxy_next_upstream_timeout=100),
                     app=silent)
    pair.send(GET)
    while status_of(pair.fire(TimerKind.UPSTREAM_READ) or b"x 0") != 504:
        pass
    assert len(pair.opens) == 2


def test_retry_non_idempotent_setting_retries_a_sent_post() -> None:
    # ingress-nginx nginx.tmpl: "proxy_next_upstream {{ buildNextUpstream
    # $location.Proxy.NextUpstream $all.Cfg.RetryNonIdempotent }};" -- buildNextUpstream:
    # "if retryNonIdempotent { nextUpstreamCodes = append(nextUpstreamCodes, nonIdempotent) }".
    eps = [("10.0.0.1", 80), ("10.0.0.2", 80)]
    post = b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\n\r\nabc"
    for retry, opens in ((False, 1), (True, 2)):
        pair = ProxyPair([Route("/", endpoints=eps)],
                         ProxySettings(retry_non_idempotent=retry), app=silent)
        pair.send(post)
        pair.fire(TimerKind.UPSTREAM_READ)
        assert len(pair.opens) == opens, retry
    # Appended to an annotation's conditions too (the template passes both).
    bad = lambda r, b, u: Reply(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
    route = Route("/", endpoints=eps, annotations={
        "nginx.ingress.kubernetes.io/proxy-next-upstream": "http_502"})
    pair = ProxyPair([route], ProxySettings(retry_non_idempotent=True), app=bad)
    assert status_of(pair.send(post)) == 502 and len(pair.opens) == 2


# ---------------------------------------------------------------------- nginx parity: discard
# ngx_http_special_response_handler: "r->expect_tested = 1; if (ngx_http_discard_request_body(r)
# != NGX_OK) { r->keepalive = 0; }": a local answer sends no "100 Continue" and reads the
# announced body to throw it away, by its framing. ngx_http_finalize_connection then bounds
# that: "if (r->discard_body) { ... ngx_add_timer(r->connection->read,
# clcf->lingering_timeout); if (r->lingering_time == 0) { r->lingering_time = ngx_time() +
# (time_t) (clcf->lingering_time / 1000); } }", and ngx_http_discarded_request_body_handler
# closes on "if (rev->timedout) { ... ngx_http_finalize_request(r, NGX_ERROR);" or once
# lingering_time is past: 5 s without a byte, 30 s in all (nginx's defaults).
EXPECT_POST = (b"POST /web HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n"
               b"Expect: 100-continue\r\n\r\n")


def test_local_answer_to_expect_sends_no_100_and_closes_after_5s_without_the_body() -> None:
    from ingresslib.proxy import CloseDownstream

    pair = ProxyPair([Route("/api")])
    out = pair.send(EXPECT_POST)
    assert status_of(out) == 404 and b"100 Continue" not in out and not pair.closed
    assert pair.timer == (TimerKind.BODY, 5.0)
    assert pair.fire(TimerKind.BODY) == b""
    assert pair.closed and pair.downstream_closes == [CloseDownstream(linger=False)]
    assert [r.status for r in pair.records] == [404]


def test_discarded_body_that_arrives_keeps_the_connection() -> None:
    pair = ProxyPair([Route("/api")])
    pair.send(EXPECT_POST)
    pair.now += 4.0
    assert pair.send(b"he") == b""
    assert pair.timer == (TimerKind.BODY, 5.0)  # re-armed by every read
    pair.now += 4.0
    out = pair.send(b"llo" + b"GET /api HTTP/1.1\r\n" + H + b"\r\n")
    assert status_of(out) == 200 and not pair.closed
    assert [r.status for r in pair.records] == [404, 200]


def test_a_request_inside_the_announced_body_is_never_routed() -> None:
    # The client skips the body after the 404 and sends its next request at once: those
    # bytes are the announced body (framing decides, as in nginx), discarded; nothing routed.
    inner = b"GET /api/admin HTTP/1.1\r\n" + H + b"\r\n"
    pair = ProxyPair([Route("/api")])
    out = pair.send(b"POST /web HTTP/1.1\r\n" + H + b"Content-Length: %d\r\n"
                    b"Expect: 100-continue\r\n\r\n" % (len(inner) + 10))
    assert status_of(out) == 404
    assert pair.send(inner) == b""
    assert len(pair.router.calls) == 1 and pair.opens == []
    assert pair.fire(TimerKind.BODY) == b"" and pair.closed
    assert len(pair.router.calls) == 1 and pair.opens == []


def test_discarding_a_trickled_body_stops_after_30s_in_all() -> None:
    pair = ProxyPair([Route("/api")])
    pair.send(b"POST /web HTTP/1.1\r\n" + H + b"Content-Length: 100\r\n\r\n")
    for _ in range(7):  # a byte every 4 s: never 5 s quiet
        pair.now += 4.0
        pair.send(b"x")
        assert not pair.closed
    pair.now += 4.0  # 32 s after the answer
    pair.send(b"x")
    assert pair.closed and [r.status for r in pair.records] == [404]


def test_a_body_over_the_discard_limit_closes_with_a_lingering_close() -> None:
    # Past 1 MiB of a discarded body (our bound: nginx discards any size) the client is still
    # sending: a plain close would reset the connection under the 404 it has not read yet
    # (test_a_close_with_the_request_body_unread_asks_to_linger). Before: linger=False here,
    # as for the lingering timers, where nginx closes plainly (the client went quiet).
    from ingresslib.proxy import CloseDownstream

    # No proxy-body-size: the default server's 1 MiB would answer 413 first (N17).
    pair = ProxyPair([Route("/api")], settings=ProxySettings(proxy_body_size=0))
    out = pair.send(b"POST /web HTTP/1.1\r\n" + H + b"Content-Length: %d\r\n\r\n" % (4 << 20))
    assert status_of(out) == 404
    for _ in range(17):
        if pair.closed:
            break
        pair.send(b"x" * (1 << 16))
    assert pair.closed and pair.downstream_closes == [CloseDownstream(linger=True)]
    assert [r.status for r in pair.records] == [404]


def test_redirect_and_503_discard_the_same_way() -> None:
    route = Route("/", endpoints=[], annotations={
        "nginx.ingress.kubernetes.io/force-ssl-redirect": "true"})
    for r, status in ((route, 308), (Route("/", endpoints=[]), 503)):
        pair = ProxyPair([r])
        out = pair.send(b"PUT /x HTTP/1.1\r\n" + H + b"Content-Length: 3\r\n"
                        b"Expect: 100-continue\r\n\r\n")
        assert status_of(out) == status and b"100 Continue" not in out
        assert pair.timer == (TimerKind.BODY, 5.0)
        pair.fire(TimerKind.BODY)
        assert pair.closed


def test_a_body_announced_to_a_404_and_never_sent_does_not_hold_the_connection() -> None:
    # No Expect at all: the same bound. Before, the head/idle timers were ignored while the
    # request was under way and nothing else was armed: one request held a connection forever.
    pair = ProxyPair([Route("/api")])
    out = pair.send(b"POST /web HTTP/1.1\r\n" + H + b"Content-Length: 10\r\n\r\n")
    assert status_of(out) == 404 and pair.timer == (TimerKind.BODY, 5.0)
    pair.fire(TimerKind.BODY)
    assert pair.closed and [r.status for r in pair.records] == [404]


# ---------------------------------------------------------------------- Date
# RFC 9110 §6.6.1: "A recipient with a clock that receives a response message without a Date
# header field MUST record the time it was received and append a corresponding Date header
# field to the message's header section if it is cached or forwarded downstream", and "An
# origin server with a clock MUST generate a Date header field if the response is 2xx, 3xx, or
# 4xx". nginx writes its own on every response it sends (ngx_http_header_filter: "if
# (r->headers_out.date == NULL) { len += sizeof("Date: Mon, 28 Sep 1970 06:00:00 GMT" CRLF) -
# 1; }"), its error pages included.
def test_local_answers_carry_a_date() -> None:
    pair = ProxyPair([Route("/api")], clock=lambda: CLOCK)
    out = pair.send(GET)
    assert out.startswith(b"HTTP/1.1 404 Not Found\r\n" + DATE)
    assert out.count(b"date: ") == 1


def test_an_upstream_response_without_date_gets_one_appended() -> None:
    pair = ProxyPair(app=lambda r, b, u: ok(b"hi"), clock=lambda: CLOCK)
    assert pair.send(GET) == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" + DATE + b"\r\nhi"


def test_an_upstream_date_is_replaced_by_ours() -> None:
    # nginx hides the upstream's Date (ngx_http_proxy_hide_headers) and writes its own.
    upstream_date = b"Date: Mon, 07 Nov 1994 08:49:37 GMT\r\n"
    pair = ProxyPair(app=lambda r, b, u: ok(b"hi", upstream_date), clock=lambda: CLOCK)
    assert pair.send(GET) == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n" + DATE + b"\r\nhi"


def test_date_follows_the_clock_and_is_formatted_once_per_second(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import email.utils

    import ingresslib.proxy._connection as core

    calls: list[float] = []

    def formatdate(t: float, usegmt: bool) -> str:
        calls.append(t)
        return email.utils.formatdate(t, usegmt=usegmt)

    monkeypatch.setattr(core, "formatdate", formatdate)
    now = [CLOCK + 0.2]
    pair = ProxyPair([Route("/api")], clock=lambda: now[0])
    assert DATE in pair.send(GET)
    now[0] = CLOCK + 0.9
    assert DATE in pair.send(GET)
    now[0] = CLOCK + 1.0
    assert b"date: Sun, 06 Nov 1994 08:49:38 GMT\r\n" in pair.send(GET)
    assert calls == [CLOCK, CLOCK + 1]


def test_a_date_the_upstream_names_in_connection_is_replaced_by_ours() -> None:
    # "Connection: date" makes the upstream's Date hop-by-hop: it is removed, and the response
    # then has no Date, so ours is appended (RFC 9110 §6.6.1). Before: the Date was seen before
    # the Connection-named headers were removed, and the client got no Date at all. The same
    # for the backend's Strict-Transport-Security on HTTPS: ours is added.
    upstream = b"Date: Mon, 07 Nov 1994 08:49:37 GMT\r\nConnection: date\r\n"
    pair = ProxyPair(app=lambda r, b, u: ok(b"hi", upstream), clock=lambda: CLOCK)
    out = pair.send(GET)
    assert out.lower().count(b"date: ") == 1 and DATE in out
    hsts = b"Strict-Transport-Security: max-age=1\r\nConnection: strict-transport-security\r\n"
    out = ProxyPair(app=lambda r, b, u: ok(b"hi", hsts), tls=True).send(GET)
    assert b"strict-transport-security: max-age=31536000; includeSubDomains\r\n" in out


def test_no_clock_no_date() -> None:
    pair = ProxyPair([Route("/api")], clock=None)
    assert b"date:" not in pair.send(GET).lower()


def test_the_default_clock_is_the_wall_clock() -> None:
    import email.utils
    import time

    from ingresslib.proxy import Proxy, SendDownstream

    class NoRoutes:
        def route(self, *a: Any) -> None:
            return None

        def next_endpoint(self, *a: Any) -> None:
            return None

    conn = Proxy(NoRoutes()).connection(("192.0.2.1", 5000), now=0.0)
    before = int(time.time())
    out = b"".join(a.data for a in conn.receive_data(GET, now=0.0)
                   if isinstance(a, SendDownstream))
    after = int(time.time())
    value = out.split(b"\r\ndate: ", 1)[1].split(b"\r\n", 1)[0].decode()
    sent = email.utils.parsedate_to_datetime(value).timestamp()
    assert before <= sent <= after and value.endswith(" GMT")


def test_a_retry_connect_is_not_cut_by_the_failed_try_read_timer() -> None:
    # The first try connects (arming proxy_read_timeout for it), then its upstream closes with
    # no answer: the retry goes to EP2, whose connect is still pending. nginx's read timeout
    # belongs to a try (ngx_http_upstream_send_request arms it once the request is sent to
    # that peer); the pending connect is bounded by the connect timeout, which the driver runs
    # from OpenUpstream. So no UPSTREAM_READ of the dead try may stay armed and fail the new one.
    def app(r: h11.Request, b: bytes, u: FakeUpstream) -> Reply:
        return Reply(b"", close=True) if u.endpoint == EP1 else ok()

    route = Route("/", endpoints=[EP1, EP2], annotations={
        "nginx.ingress.kubernetes.io/proxy-read-timeout": "1"})
    pair = ProxyPair([route], app=app, defer=[EP2])
    assert pair.send(GET) == b""
    assert [o.endpoint for o in pair.opens] == [EP1, EP2] and pair.pending
    assert pair.timer is None or pair.timer[0] is not TimerKind.UPSTREAM_READ, pair.timer
    pair.now += 3.0  # a slow connect, well within proxy-connect-timeout
    assert status_of(pair.connect()) == 200
    assert pair.records[0].upstream_statuses == (502, 200)


# --- session affinity through the core ----------------------------------------------------------


def _sticky_router(mode: str, seed: int, extra: dict[str, str] | None = None) -> Any:
    import ingresslib

    ann = {"nginx.ingress.kubernetes.io/affinity": "cookie",
           "nginx.ingress.kubernetes.io/affinity-mode": mode, **(extra or {})}
    res = ingresslib.Resources.from_dicts([
        {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
         "metadata": {"name": "web", "annotations": ann},
         "spec": {"rules": [{"host": "example.test", "http": {"paths": [
             {"path": "/", "pathType": "Prefix",
              "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
         "spec": {"ports": [{"port": 80, "targetPort": 8080}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "web-1", "labels": {"kubernetes.io/service-name": "web"}},
         "addressType": "IPv4", "ports": [{"port": 8080}],
         "endpoints": [{"addresses": [f"10.0.0.{i}"]} for i in (1, 2, 3)]},
    ])
    return ingresslib.Router(res, seed=seed)


def _set_cookie(out: bytes) -> str:
    (line,) = re.findall(rb"\r\nset-cookie: ([^\r]*)", out)
    return line.decode()


@pytest.mark.parametrize("mode", ["persistent", "balanced"])
def test_a_new_session_retried_elsewhere_gets_the_cookie_of_the_endpoint_that_answered(
        mode: str) -> None:
    # Two of three endpoints refuse: a new session whose first try fails is served by the
    # third, and its cookie must lead there (ingress-nginx sets the cookie again from the
    # retry's balance()). Before, the cookie named the endpoint that failed.
    working = ("10.0.0.3", 8080)
    retried = 0
    for seed in range(12):
        router = _sticky_router(mode, seed)
        pair = ProxyPair(router=router, refuse=[("10.0.0.1", 8080), ("10.0.0.2", 8080)])
        out = pair.send(GET)
        assert status_of(out) == 200 and pair.opens[-1].endpoint == working
        retried += len(pair.opens) > 1
        cookie = _set_cookie(out).split(";")[0]
        d = router.route("GET", "example.test", "/a", [("cookie", cookie)])
        assert d.endpoint == working and d.set_cookie is None, (seed, cookie)
    assert retried >= 3  # the case under test did happen


def test_the_session_cookie_is_secure_on_tls_as_ingress_nginx_sets_it() -> None:
    # sticky.lua: "if cookie_secure == nil then cookie_secure = ngx.var.https == "on"".
    plain = _set_cookie(ProxyPair(router=_sticky_router("persistent", 1)).send(GET))
    assert "Secure" not in plain.split("; ")
    tls = _set_cookie(ProxyPair(router=_sticky_router("persistent", 1), tls=True).send(GET))
    assert tls.split("; ")[-1] == "Secure" and tls.count("Secure") == 1
    # Asked for: Secure on plain http too, and once only on TLS.
    ask = {"nginx.ingress.kubernetes.io/session-cookie-secure": "true"}
    assert "Secure" in _set_cookie(
        ProxyPair(router=_sticky_router("persistent", 1, ask)).send(GET)).split("; ")
    assert _set_cookie(ProxyPair(router=_sticky_router("persistent", 1, ask), tls=True)
                       .send(GET)).count("Secure") == 1


@pytest.mark.parametrize("mode", ["persistent", "balanced"])
@pytest.mark.parametrize("change", [True, False])
def test_change_on_failure_moves_an_existing_session_through_the_core(
        mode: str, change: bool) -> None:
    # sticky.lua balance(): "should_pick_new_upstream = last_failure ~= nil and
    # self.cookie_session_affinity.change_on_failure or upstream_from_cookie == nil", then
    # "self:set_cookie(key)". A session on a refusing endpoint is retried elsewhere either way
    # (SEMANTICS §8); only with the annotation does its cookie move to the endpoint that answered.
    extra = {"nginx.ingress.kubernetes.io/session-cookie-change-on-failure": str(change).lower()}
    router = _sticky_router(mode, 7, extra)
    for _ in range(200):
        d = router.route("GET", "example.test", "/a")
        if d.endpoint == ("10.0.0.1", 8080) and d.set_cookie:
            break
    else:
        raise AssertionError("no session on 10.0.0.1")
    cookie = d.set_cookie.split(";")[0]
    pair = ProxyPair(router=router, refuse=[("10.0.0.1", 8080)])
    out = pair.send(b"GET /a HTTP/1.1\r\nHost: example.test\r\nCookie: %s\r\n\r\n"
                    % cookie.encode())
    assert status_of(out) == 200 and len(pair.opens) == 2
    assert pair.opens[0].endpoint == ("10.0.0.1", 8080)
    answered = pair.opens[-1].endpoint
    assert answered != ("10.0.0.1", 8080)
    if not change:
        assert b"set-cookie" not in out.lower()
        return
    moved = _set_cookie(out).split(";")[0]
    assert moved != cookie
    again = router.route("GET", "example.test", "/a", [("cookie", moved)])
    assert again.endpoint == answered and again.set_cookie is None
