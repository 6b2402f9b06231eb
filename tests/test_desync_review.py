"""Desync review (session 11): request smuggling, response desync and cross-request isolation.

The rule (SEMANTICS §9 and the project standard): malformed HTTP gets a 4xx and the connection
closed; nothing a client sends may reach a backend it was not routed to; no response, or part
of one, is ever delivered to a client other than the one whose request caused it.

What tests/test_proxy_hostile.py already covers (framing vectors, each followed by a request
for another *path*) is not repeated; here the second request is routed by *Host* to another
backend, the upstream side misbehaves, and the asyncio server's pool is in the loop.

Each test says whether it found a defect ("DEFECT", failed before the fix in the same change)
or guards behaviour that was already right ("guard").
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable
from typing import Any

import h11
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingresslib.proxy import ProxySettings, RequestRecord, TimerKind

from _proxy_harness import FakeUpstream, ProxyPair, Reply, Route, status_of
from _upstream_helpers import TrackedUpstream, start_proxy, until
from tests._server_helpers import Client, StubRouter

A_EP = ("10.0.0.1", 8080)
B_EP = ("10.0.0.2", 8080)
HA = b"Host: a.test\r\n"
#: The pipelined request for the other backend: routed by Host to B.
TO_B = b"GET /b-only HTTP/1.1\r\nHost: b.test\r\n\r\n"


def two_hosts(**annotations: str) -> list[Route]:
    return [Route("/", host="a.test", endpoints=[A_EP], service="a", annotations=annotations),
            Route("/", host="b.test", endpoints=[B_EP], service="b")]


def requests_on(pair: ProxyPair, endpoint: tuple[str, int]) -> list[bytes]:
    """Targets of the complete requests every upstream connection to ``endpoint`` parsed."""
    return [r.target for u in pair.upstreams if u.endpoint == endpoint for r, _ in u.requests]


# =========================================================================================
# 1. Pipelined A then B (routed by Host), sans-IO
# =========================================================================================

#: (id, first request for a.test, served by A?) -- the first request is answered (by A or
#: locally) and the pipelined request for b.test must then reach B, and only B.
FIRST_THEN_B: list[tuple[str, bytes, bool]] = [
    ("GET", b"GET /a HTTP/1.1\r\n" + HA + b"\r\n", True),
    ("Content-Length body", b"POST /a HTTP/1.1\r\n" + HA + b"Content-Length: 5\r\n\r\nhello",
     True),
    # The body itself looks like a request for b.test: it is body, framed by its length.
    ("Content-Length body holding a request", b"POST /a HTTP/1.1\r\n" + HA +
     b"Content-Length: %d\r\n\r\n" % len(TO_B) + TO_B, True),
    ("chunked body", b"POST /a HTTP/1.1\r\n" + HA + b"Transfer-Encoding: chunked\r\n\r\n"
     b"5\r\nhello\r\n0\r\n\r\n", True),
    ("chunked body holding a request", b"POST /a HTTP/1.1\r\n" + HA +
     b"Transfer-Encoding: chunked\r\n\r\n%x\r\n" % len(TO_B) + TO_B + b"\r\n0\r\n\r\n", True),
    ("chunked body with trailers", b"POST /a HTTP/1.1\r\n" + HA +
     b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nHost: b.test\r\n\r\n", True),
    ("Expect 100-continue", b"PUT /a HTTP/1.1\r\n" + HA + b"Expect: 100-continue\r\n"
     b"Content-Length: 5\r\n\r\nhello", True),
    ("HEAD", b"HEAD /a HTTP/1.1\r\n" + HA + b"\r\n", True),
    ("404 on A's host, body discarded", b"POST /a HTTP/1.1\r\nHost: nowhere.test\r\n"
     b"Content-Length: 5\r\n\r\nhello", False),
    ("upgrade refused by A (plain 200)", b"GET /ws HTTP/1.1\r\n" + HA +
     b"Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n", True),
]


@pytest.mark.parametrize("name,first,served", FIRST_THEN_B, ids=[f[0] for f in FIRST_THEN_B])
def test_guard_pipelined_request_for_another_host_reaches_only_its_backend(
        name: str, first: bytes, served: bool) -> None:
    # guard: in one packet and byte by byte.
    for split in (False, True):
        pair = ProxyPair(two_hosts())
        data = first + TO_B
        if split:
            out = b"".join(pair.send(data[i:i + 1]) for i in range(len(data)))
        else:
            out = pair.send(data)
        assert not pair.closed, (name, split, out)
        assert out.endswith(b"ok /b-only"), (name, split, out)
        assert requests_on(pair, B_EP) == [b"/b-only"], name
        assert requests_on(pair, A_EP) == ([first.split(b" ")[1]] if served else []), name
        # B saw exactly one request and nothing after it.
        (b_up,) = [u for u in pair.upstreams if u.endpoint == B_EP]
        assert bytes(b_up.raw).count(b" HTTP/1.1\r\n") == 1


#: (id, first request for a.test refused by us) -- answered 4xx + close: the pipelined request
#: for b.test reaches nobody, and A gets no byte of it.
REFUSED_FIRST: list[tuple[str, bytes, int]] = [
    ("413 by Content-Length", b"POST /a HTTP/1.1\r\n" + HA + b"Content-Length: 10\r\n\r\n"
     b"0123456789", 413),
    ("413 found in a chunked body", b"POST /a HTTP/1.1\r\n" + HA +
     b"Transfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n0\r\n\r\n", 413),
    ("413 with Expect 100-continue", b"POST /a HTTP/1.1\r\n" + HA + b"Expect: 100-continue\r\n"
     b"Content-Length: 10\r\n\r\n0123456789", 413),
    ("CONNECT", b"CONNECT b.test:443 HTTP/1.1\r\nHost: b.test:443\r\n\r\n", 405),
    ("TE and CL", b"POST /a HTTP/1.1\r\n" + HA + b"Content-Length: 4\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("CL twice, conflicting", b"POST /a HTTP/1.1\r\n" + HA + b"Content-Length: 0\r\n"
     b"Content-Length: %d\r\n\r\n" % len(TO_B), 400),
    ("TE chunked, identity", b"POST /a HTTP/1.1\r\n" + HA +
     b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 400),
    ("obs-fold", b"GET /a HTTP/1.1\r\n" + HA + b"X-A: 1\r\n Host: b.test\r\n\r\n", 400),
    ("bare LF", b"GET /a HTTP/1.1\n" + HA + b"\r\n", 400),
    ("space in header name", b"GET /a HTTP/1.1\r\n" + HA + b"Content Length: 5\r\n\r\n", 400),
    ("NUL in value", b"GET /a HTTP/1.1\r\n" + HA + b"X-A: \x00\r\n\r\n", 400),
    ("absolute-form for b, Host a", b"GET http://b.test/a HTTP/1.1\r\n" + HA + b"\r\n", 400),
    ("Host with userinfo", b"GET /a HTTP/1.1\r\nHost: a.test@b.test\r\n\r\n", 400),
    ("two Host headers", b"GET /a HTTP/1.1\r\n" + HA + b"Host: b.test\r\n\r\n", 400),
]


@pytest.mark.parametrize("name,first,status", REFUSED_FIRST, ids=[f[0] for f in REFUSED_FIRST])
def test_guard_refused_first_request_takes_the_pipelined_one_down(
        name: str, first: bytes, status: int) -> None:
    # guard
    route = two_hosts(**{"nginx.ingress.kubernetes.io/proxy-body-size": "5"})
    pair = ProxyPair(route)
    out = pair.send(first + TO_B)
    assert status_of(out) == status and pair.closed, out
    assert out.count(b"HTTP/1.1 ") == 1 and b"100 Continue" not in out
    assert all(o.endpoint != B_EP for o in pair.opens)
    assert b"b-only" not in pair.upstream_bytes
    assert all(not c.reuse for c in pair.closes)


def test_guard_upgrade_accepted_tunnels_the_client_bytes_to_its_own_backend_only() -> None:
    # guard: after a 101 the bytes that follow belong to the tunnel of the client that asked
    # for it (nginx does the same); they never go through the router, so B gets nothing.
    def app(r: h11.Request, b: bytes, u: FakeUpstream) -> Reply:
        return Reply(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\n\r\n")

    pair = ProxyPair(two_hosts(), app=app)
    pair.send(b"GET /ws HTTP/1.1\r\n" + HA + b"Connection: Upgrade\r\nUpgrade: websocket\r\n"
              b"\r\n" + TO_B)
    assert pair.tunnels and [o.endpoint for o in pair.opens] == [A_EP]
    assert bytes(pair.upstreams[0].raw).endswith(TO_B)


def test_guard_expect_answered_by_a_redirect_then_a_request_for_b() -> None:
    # guard: ssl-redirect for a.test (local answer: no 100, the announced body discarded by
    # its framing), then the request for b.test, which must be routed on its own.
    pair = ProxyPair(two_hosts(), tls_hosts=["a.test"])
    out = pair.send(b"POST /a HTTP/1.1\r\n" + HA + b"Expect: 100-continue\r\n"
                    b"Content-Length: %d\r\n\r\n" % len(TO_B))
    assert status_of(out) == 308 and b"100 Continue" not in out and not pair.closed
    # The client sends the body anyway (it looks like a request: it is not one) ...
    assert pair.send(TO_B) == b"" and pair.opens == []
    # ... then its real next request.
    out = pair.send(TO_B)
    assert out.endswith(b"ok /b-only") and requests_on(pair, B_EP) == [b"/b-only"]
    assert [o.endpoint for o in pair.opens] == [B_EP]


_HOSTS = {b"a.test": A_EP, b"b.test": B_EP, b"nowhere.test": None}
#: Body bytes that look like a request for the other host (a smuggling attempt if misframed).
_LOOKALIKE = b"GET /smuggled HTTP/1.1\r\nHost: b.test\r\n\r\n"

_request = st.tuples(
    st.sampled_from(sorted(_HOSTS)),
    st.sampled_from([b"none", b"length", b"chunked"]),
    st.sampled_from([b"", b"x", _LOOKALIKE, b"0\r\n\r\n" + _LOOKALIKE, b"\r\n\r\n"]),
    st.integers(min_value=1, max_value=7),
)


def _encode(i: int, host: bytes, framing: bytes, body: bytes, chunk: int) -> bytes:
    head = b"POST /r%d HTTP/1.1\r\nHost: %s\r\n" % (i, host)
    if framing == b"none":
        return head + b"\r\n"
    if framing == b"length":
        return head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    chunks = [body[j:j + chunk] for j in range(0, len(body), chunk)]
    return (head + b"Transfer-Encoding: chunked\r\n\r\n"
            + b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n")


@given(st.lists(_request, min_size=1, max_size=5),
       st.lists(st.integers(min_value=0, max_value=2000), max_size=8))
def test_guard_pipelines_for_two_backends_never_cross(requests: list[tuple[bytes, bytes, bytes,
                                                                           int]],
                                                      cuts: list[int]) -> None:
    # guard (property): any pipeline of well-framed requests for a.test, b.test and an
    # unrouted host, with bodies that look like requests for the other host, split anywhere:
    # each backend gets exactly its own requests with their own bodies, in order, and the
    # client gets one answer per request, in order.
    pair = ProxyPair(two_hosts())
    data = b"".join(_encode(i, *r) for i, r in enumerate(requests))
    points = sorted({c % (len(data) + 1) for c in cuts}) + [len(data)]
    last = 0
    for p in points:
        if data[last:p]:
            pair.send(data[last:p])
        last = p
    assert not pair.closed
    for host, ep in _HOSTS.items():
        if ep is None:
            continue
        want = [(b"/r%d" % i, b"" if f == b"none" else body)
                for i, (h, f, body, _) in enumerate(requests) if h == host]
        got = [(r.target, body) for u in pair.upstreams if u.endpoint == ep
               for r, body in u.requests]
        assert got == want, host
    answers = [b"404" if h == b"nowhere.test" else b"ok /r%d" % i
               for i, (h, _, _, _) in enumerate(requests)]
    out = bytes(pair.received)
    pos = 0
    for a in answers:
        pos = out.index(a, pos) + len(a)
    assert out.count(b"HTTP/1.1 ") == len(requests)


# =========================================================================================
# 2. Upstream side, sans-IO: a response to one request is never part of another's
# =========================================================================================


def test_defect_204_with_content_length_is_not_forwarded_with_it() -> None:
    # DEFECT (fixed): "HTTP/1.1 204\r\nContent-Length: 5" went to the client as is. RFC 9110
    # §8.6: "A server MUST NOT send a Content-Length header field in any response with a
    # status code of 1xx (Informational) or 204 (No Content)"; a client that believes it
    # reads 5 bytes of the next response as this one's body. nginx drops it
    # (ngx_http_header_filter: "if (status == NGX_HTTP_NO_CONTENT) { r->header_only = 1;
    # ... r->headers_out.content_length = NULL; r->headers_out.content_length_n = -1; }").
    def app(r: h11.Request, b: bytes, u: FakeUpstream) -> Reply:
        if r.target == b"/nc":
            return Reply(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\nX-K: v\r\n\r\n")
        return Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh")

    pair = ProxyPair(app=app)
    out = pair.send(b"GET /nc HTTP/1.1\r\nHost: example.test\r\n\r\n"
                    b"GET /next HTTP/1.1\r\nHost: example.test\r\n\r\n")
    assert out == (b"HTTP/1.1 204 No Content\r\nX-K: v\r\n\r\n"
                   b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh")
    # A 304's Content-Length describes the selected representation (RFC 9110 §8.6): kept.
    pair = ProxyPair(app=lambda r, b, u: Reply(b"HTTP/1.1 304 Not Modified\r\n"
                                               b"Content-Length: 5\r\n\r\n"))
    assert pair.send(b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n") == (
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n")


@pytest.mark.parametrize("spelling,length", [(b"010", 10), (b"00000005", 5),
                                             (b"5 ", 5)])
def test_defect_content_length_is_forwarded_in_canonical_decimal(spelling: bytes,
                                                                 length: int) -> None:
    # DEFECT (fixed): the client's Content-Length spelling went upstream as received. We read
    # "010" as 10 (RFC 9110 §8.6: 1*DIGIT, decimal); a backend that reads it as octal 8
    # (strtol with base 0) takes the last 2 body bytes as the start of the next request on
    # that (pooled) connection: a smuggled prefix to another client's request. nginx sends
    # its own count ($proxy_internal_body_length), so does the proxy now. (The "5 " case is a
    # guard: h11 strips the OWS already.)
    body = b"x" * (length - 2) + b"GE"
    pair = ProxyPair(two_hosts())
    out = pair.send(b"POST /a HTTP/1.1\r\n" + HA + b"Content-Length: " + spelling + b"\r\n\r\n"
                    + body + TO_B)
    assert out.count(b"HTTP/1.1 200") == 2
    head = bytes(pair.upstreams[0].raw).partition(b"\r\n\r\n")[0]
    assert [line for line in head.split(b"\r\n") if line.lower().startswith(
        b"content-length")] == [b"content-length: %d" % length]
    assert requests_on(pair, B_EP) == [b"/b-only"]


def test_defect_upstream_content_length_reaches_the_client_in_canonical_decimal() -> None:
    # DEFECT (fixed), the response side of the test above: an upstream's "Content-Length: 010"
    # (10 bytes sent, 10 forwarded) went to the client as "010"; a client (or a shared proxy
    # in front of us, carrying other users' requests on the same connection) reading 8 takes
    # 2 bytes of the response as the start of the next one.
    pair = ProxyPair(app=lambda r, b, u: Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 010\r\n"
                                               b"\r\n0123456789"))
    out = pair.send(b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n")
    assert out == b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789"


#: (id, what the upstream answers to the first request) -- something beyond the response
#: the client is owed: none of it may reach any client, the connection is not reused.
BAD_TAILS: list[tuple[str, bytes, bytes]] = [
    ("extra response after a complete one", b"GET", b"HTTP/1.1 200 OK\r\nContent-Length: 2"
     b"\r\n\r\nhiHTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nLEAKED"),
    ("1xx, response, extra", b"GET", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early\r\n"
     b"\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiLEAKED"),
    ("HEAD answered with a body", b"HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n"
     b"LEAKED"),
    ("204 with a body", b"GET", b"HTTP/1.1 204 No Content\r\n\r\nLEAKED"),
    ("204 with a chunked body", b"GET", b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: "
     b"chunked\r\n\r\n6\r\nLEAKED\r\n0\r\n\r\n"),
    ("304 with a body", b"GET", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 6\r\n\r\n"
     b"LEAKED"),
]


@pytest.mark.parametrize("name,method,reply", BAD_TAILS, ids=[b[0] for b in BAD_TAILS])
def test_guard_bytes_beyond_the_response_are_dropped_with_the_connection(
        name: str, method: bytes, reply: bytes) -> None:
    # guard (the core's part; the server's pool has its own test below).
    n = {"i": 0}

    def app(r: h11.Request, b: bytes, u: FakeUpstream) -> Reply:
        n["i"] += 1
        return Reply(reply) if n["i"] == 1 else Reply(
            b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nmine")

    pair = ProxyPair(app=app)
    out = pair.send(method + b" / HTTP/1.1\r\nHost: example.test\r\n\r\n")
    assert b"LEAKED" not in out and pair.closes[0].reuse is False, out
    out = pair.send(b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n")
    assert out == b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nmine"
    assert len(pair.upstreams) == 2


def test_guard_no_retry_once_part_of_the_response_was_forwarded() -> None:
    # guard: the head and 3 bytes went to the client, then the upstream closed: the client
    # connection is closed (it can tell the response was cut), no second endpoint is tried,
    # and nothing of a second try could be appended to the first response.
    route = Route("/", endpoints=[A_EP, B_EP], annotations={
        "nginx.ingress.kubernetes.io/proxy-next-upstream": "error timeout http_502 "
                                                           "non_idempotent"})
    for method in (b"GET", b"POST"):
        pair = ProxyPair([route], app=lambda r, b, u: Reply(
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", close=True))
        out = pair.send(method + b" / HTTP/1.1\r\nHost: example.test\r\nContent-Length: 0\r\n"
                        b"\r\n")
        assert out == b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc" and pair.closed
        assert [o.endpoint for o in pair.opens] == [A_EP]
        assert pair.closes[-1].reuse is False


def test_guard_a_non_idempotent_request_is_not_replayed_after_a_read_timeout() -> None:
    # guard: the POST was sent whole to A, A said nothing: no second copy goes to B.
    route = Route("/", endpoints=[A_EP, B_EP])
    pair = ProxyPair([route], app=lambda r, b, u: None)
    pair.send(b"POST /pay HTTP/1.1\r\nHost: example.test\r\nContent-Length: 3\r\n\r\nabc")
    out = pair.fire(TimerKind.UPSTREAM_READ)
    assert status_of(out) == 504 and [o.endpoint for o in pair.opens] == [A_EP]
    assert requests_on(pair, B_EP) == []


def test_guard_a_post_sent_into_a_dead_pooled_connection_is_not_replayed() -> None:
    # guard: the keep-alive race (a pooled connection found closed) is retried on a fresh
    # connection only for an idempotent request, or one nothing was sent of: a POST whose
    # bytes went into the dead connection gets 502 (nginx: "if (u->request_sent && (r->method
    # & (NGX_HTTP_POST|NGX_HTTP_LOCK|NGX_HTTP_PATCH))) ft_type |=
    # NGX_HTTP_UPSTREAM_FT_NON_IDEMPOTENT;").
    pair = ProxyPair()
    assert status_of(pair.send(b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n")) == 200
    pair.upstreams[0].closed = True  # the upstream closed it while it was idle in the pool
    out = pair.send(b"POST /pay HTTP/1.1\r\nHost: example.test\r\nContent-Length: 3\r\n\r\n"
                    b"abc")
    assert status_of(out) == 502 and [o.pooled for o in pair.opens] == [True, True]
    assert len(pair.upstreams) == 1 and not pair.closed
    # A GET in the same situation goes once more, on a fresh connection.
    pair.pool.clear()
    pair.send(b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n")
    pair.upstreams[-1].closed = True
    out = pair.send(b"GET /again HTTP/1.1\r\nHost: example.test\r\n\r\n")
    assert out.endswith(b"ok /again") and pair.opens[-1].pooled is False


def test_guard_response_before_the_body_ended_then_pipelined_bytes() -> None:
    # guard: A answers before the request body is complete. The client connection cannot be
    # kept in sync cheaply: it is closed; nothing the client sends after reaches anyone.
    pair = ProxyPair(two_hosts(), app=lambda r, b, u: None)
    pair.send(b"POST /a HTTP/1.1\r\n" + HA + b"Content-Length: 100\r\n\r\nabc")
    out = pair.upstream_send(pair.upstreams[0], b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert status_of(out) == 200 and pair.closed
    assert pair.closes[-1].reuse is False
    assert pair.send(b"x" * 97 + TO_B) == b""
    assert [o.endpoint for o in pair.opens] == [A_EP] and b"b-only" not in pair.upstream_bytes


# =========================================================================================
# 3. keep_alive_requests=0 (ProxySettings) means what nginx's keepalive_requests 0 means
# =========================================================================================


def test_defect_keep_alive_requests_zero_closes_after_the_first_response() -> None:
    # DEFECT (fixed): ProxySettings(keep_alive_requests=0) meant "no limit" while the
    # ConfigMap's keep-alive-requests: 0 meant one request per connection (read as 1). nginx
    # (ngx_http_update_location_config: "} else if (r->connection->requests >=
    # clcf->keepalive_requests) { r->keepalive = 0;", requests counting from 1): 0 and 1 both
    # close after the first response. Now the keyword argument means the same.
    for n in (0, 1):
        pair = ProxyPair(settings=ProxySettings(keep_alive_requests=n))
        out = pair.send(b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n"
                        b"GET /second HTTP/1.1\r\nHost: example.test\r\n\r\n")
        assert out.count(b"HTTP/1.1 200") == 1 and pair.closed, (n, out)
        assert b"connection: close\r\n" in out.lower()
        assert requests_on(pair, ("10.0.0.1", 8080)) == [b"/"]
    pair = ProxyPair(settings=ProxySettings(keep_alive_requests=2))
    out = pair.send(b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n" * 3)
    assert out.count(b"HTTP/1.1 200") == 2 and pair.closed
    # A local answer too (the same counter).
    with pytest.raises(ValueError, match="keep_alive_requests"):
        ProxySettings(keep_alive_requests=-1)
    pair = ProxyPair(two_hosts(), settings=ProxySettings(keep_alive_requests=0))
    out = pair.send(b"GET / HTTP/1.1\r\nHost: nowhere.test\r\n\r\n" + TO_B)
    assert status_of(out) == 404 and out.count(b"HTTP/1.1 ") == 1 and pair.closed
    assert b"connection: close\r\n" in out.lower() and pair.opens == []


# =========================================================================================
# 4. End to end through the asyncio server and its upstream pool (127.0.0.1)
# =========================================================================================


class _ScriptedUpstream(TrackedUpstream):
    """An HTTP/1.1 upstream on 127.0.0.1 that answers each request head with
    ``script(target, method)`` (raw bytes, or None for the default ``ok <target>``), reads
    no body unless told, and keeps every connection's writer (to send unsolicited bytes)."""

    def __init__(self, script: Callable[[bytes, bytes], bytes | None] | None = None) -> None:
        super().__init__()
        self.script = script
        self.heads: list[bytes] = []

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.writers.append(w)
        try:
            while True:
                head = await r.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                method, target = head.split(b" ", 2)[:2]
                length = 0
                chunked = False
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                    elif line.lower() == b"transfer-encoding: chunked":
                        chunked = True
                if b"early" in target:
                    length = 0  # answered before the body is read (then closed, below)
                    chunked = False
                if length:
                    await r.readexactly(length)
                while chunked:  # the proxy writes chunks without extensions or trailers
                    size = int((await r.readuntil(b"\r\n"))[:-2], 16)
                    await r.readexactly(size + 2)
                    chunked = size > 0
                reply = self.script(target, method) if self.script else None
                if reply is None:
                    body = b"ok " + target
                    reply = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
                if reply:
                    w.write(reply)
                if b"close" in target:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            w.close()


async def _raw_response(sock: socket.socket, until: bytes, seconds: float = 3.0) -> bytes:
    loop = asyncio.get_running_loop()
    data = b""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while until not in data:
                chunk = await loop.sock_recv(sock, 65536)
                if not chunk:
                    break
                data += chunk
    return data


@pytest.mark.network
@pytest.mark.asyncio
@pytest.mark.parametrize("unsolicited", [
    b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nLEAKED",  # a whole response
    b"LEAKED",  # the body of a HEAD or 204 written apart from its head
    b"",  # a FIN: the upstream closed the idle connection
])
async def test_defect_bytes_on_an_idle_pooled_connection_never_reach_the_next_client(
        unsolicited: bytes) -> None:
    # DEFECT (fixed): bytes an upstream sent on a connection idle in the pool, already in its
    # socket but not yet read by the loop, were read as the response of the next client that
    # took the connection in the same loop iteration: client 2 got "LEAKED", part of what
    # the upstream sent after client 1's response. The pool now looks at the socket before
    # handing a connection out (nginx's keepalive close handler: recv(MSG_PEEK)).
    up = await _ScriptedUpstream().start()
    ep = ("127.0.0.1", up.port)
    records: list[RequestRecord] = []
    server, port = await start_proxy(StubRouter([ep]), on_record=records.append)
    c1 = await Client.open(port)
    sock = socket.socket()
    try:
        r = await c1.get("a.test", "/first")
        assert (r.status, r.body) == (200, b"ok /first")
        assert await until(lambda: server.pool.idle_count(ep) == 1)
        loop = asyncio.get_running_loop()
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", port))
        assert await until(lambda: len(server.connections) == 2)
        # In this order, with the loop held: client 2's request is read first at the next
        # poll (epoll reports descriptors in the order they became ready), then the
        # upstream's stray bytes, both in one loop iteration.
        sock.send(b"GET /mine HTTP/1.1\r\nHost: b.test\r\n\r\n")
        if unsolicited:
            up.writers[0].transport.write(unsolicited)
        else:
            up.writers[0].transport.write_eof()
        time.sleep(0.05)  # both are in the kernel before the loop polls again
        data = await _raw_response(sock, b"ok /mine")
        assert b"LEAKED" not in data, data
        assert data.startswith(b"HTTP/1.1 200 OK\r\n") and data.endswith(b"ok /mine"), data
        assert len(up.writers) == 2  # a fresh connection served client 2
        # ... at once: not a request sent into a dead connection and retried (for a FIN
        # that was already there, the keep-alive race's retry is not needed).
        assert records[-1].upstream_statuses == (200,), records[-1]
    finally:
        sock.close()
        await c1.close()
        await server.shutdown()
        await up.stop()


def _upstream_misbehaviour(kind: str) -> Callable[[bytes, bytes], bytes | None]:
    def script(target: bytes, method: bytes) -> bytes | None:
        if not target.startswith(b"/bad"):
            return None
        if kind == "extra response":
            return (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbad"
                    b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nLEAKED")
        if kind == "1xx then response then extra":
            return (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
                    b"\r\nbadLEAKED")
        if kind == "HEAD with a body":
            return b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nLEAKED"
        if kind == "204 with a body":
            return b"HTTP/1.1 204 No Content\r\nContent-Length: 6\r\n\r\nLEAKED"
        if kind == "304 with a body":
            return b"HTTP/1.1 304 Not Modified\r\nContent-Length: 6\r\n\r\nLEAKED"
        if kind == "shorter than its Content-Length":
            return b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\nbad"
        if kind == "answer before the body, then close":
            return b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbad"
        if kind == "early close":
            return b""
        if kind == "early close mid-response":
            return b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\nbad"
        raise AssertionError(kind)
    return script


@pytest.mark.network
@pytest.mark.asyncio
@pytest.mark.parametrize("kind", ["extra response", "1xx then response then extra",
                                  "HEAD with a body", "204 with a body", "304 with a body",
                                  "shorter than its Content-Length",
                                  "answer before the body, then close", "early close",
                                  "early close mid-response"])
async def test_guard_after_an_upstream_desync_another_client_gets_its_own_response(
        kind: str) -> None:
    # guard: client 1's request gets a misbehaving answer; client 2 (another connection, same
    # endpoint, so the same pool) must get exactly its own response, never a byte of the rest.
    up = await _ScriptedUpstream(_upstream_misbehaviour(kind)).start()
    ep = ("127.0.0.1", up.port)
    server, port = await start_proxy(StubRouter([ep]), proxy_read_timeout=0.3)
    c1 = await Client.open(port)
    c2 = await Client.open(port)
    try:
        method = "HEAD" if kind == "HEAD with a body" else "GET"
        target, body = "/bad", b""
        if kind == "answer before the body, then close":
            target, method, body = "/bad-early-close", "POST", b"x" * 50000
        elif kind.startswith("early close"):
            target = "/bad-close"
        with contextlib.suppress(ConnectionError, h11.RemoteProtocolError):
            r1 = await c1.get("a.test", target, method=method, body=body)
            assert b"LEAKED" not in r1.body
        await asyncio.sleep(0.05)
        for i in range(3):
            r2 = await c2.get("b.test", f"/mine{i}")
            assert (r2.status, r2.body) == (200, b"ok /mine%d" % i), (kind, r2)
    finally:
        await c1.close()
        await c2.close()
        await server.shutdown()
        await up.stop()


@pytest.mark.network
@pytest.mark.asyncio
async def test_guard_pipelined_requests_for_two_backends_through_the_server() -> None:
    # guard: one client connection pipelines a chunked POST for backend A and a GET for B in
    # one write; each backend sees only its own request, each response comes back in order.
    a = await _ScriptedUpstream().start()
    b = await _ScriptedUpstream().start()
    ep_a, ep_b = ("127.0.0.1", a.port), ("127.0.0.1", b.port)

    class TwoHosts(StubRouter):
        def route(self, method: str, host: str, path: str, headers: Any = (),
                  client_ip: Any = None) -> Any:
            self.endpoints = [ep_a] if host == "a.test" else [ep_b]
            return super().route(method, host, path, headers, client_ip)

    server, port = await start_proxy(TwoHosts([ep_a]))
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    try:
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", port))
        await loop.sock_sendall(sock, b"POST /a HTTP/1.1\r\nHost: a.test\r\n"
                                b"Transfer-Encoding: chunked\r\n\r\n%x\r\n" % len(TO_B) + TO_B
                                + b"\r\n0\r\n\r\n" + TO_B)
        data = await _raw_response(sock, b"ok /b-only")
        assert data.count(b"HTTP/1.1 200 OK") == 2 and data.index(b"ok /a") < data.index(
            b"ok /b-only"), data
        assert [h.split(b" ")[1] for h in a.heads] == [b"/a"]
        assert [h.split(b" ")[1] for h in b.heads] == [b"/b-only"]
    finally:
        sock.close()
        await server.shutdown()
        await a.stop()
        await b.stop()
