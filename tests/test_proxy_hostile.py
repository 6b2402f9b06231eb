"""Hostile requests (SEMANTICS §9, issue 4 "Bad input"): each gets a 4xx, the connection is
closed, and nothing reaches any upstream. Written from RFC 9112 and the request-smuggling
research (Linhart et al. 2005, Kettle 2019 "HTTP Desync Attacks")."""

from __future__ import annotations

from collections.abc import Callable

import h11
import pytest

from ingresslib.proxy import ProxySettings, TimerKind

from _proxy_harness import FakeUpstream, ProxyPair, Reply, Route, ok, status_of

H = b"Host: example.test\r\n"

HOSTILE: list[tuple[str, bytes, int]] = [
    # --- framing: CL.TE / TE.CL / obfuscated TE ------------------------------------------
    ("CL.TE", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n"
              b"\r\n0\r\n\r\nG", 400),
    ("TE.CL", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n"
              b"\r\n8\r\nSMUGGLED\r\n0\r\n\r\n", 400),
    ("TE list chunked,identity", b"POST / HTTP/1.1\r\n" + H +
     b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 400),
    ("TE identity", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: identity\r\n\r\n", 400),
    ("TE space before colon", b"POST / HTTP/1.1\r\n" + H +
     b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400),
    ("TE duplicated", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("TE vertical tab", b"POST / HTTP/1.1\r\n" + H +
     b"Transfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n", 400),
    ("TE xchunked", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: xchunked\r\n\r\n", 400),
    ("TE on HTTP/1.0", b"POST / HTTP/1.0\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\n", 400),
    ("TE folded", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding:\r\n chunked\r\n\r\n", 400),
    ("CL duplicated same", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\n"
     b"Content-Length: 3\r\n\r\nabc", 400),
    ("CL conflicting", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nContent-Length: 4\r\n"
     b"\r\nabcd", 400),
    ("CL list", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3, 3\r\n\r\nabc", 400),
    ("CL negative", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n", 400),
    ("CL plus sign", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: +3\r\n\r\nabc", 400),
    ("bad chunk size", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
     b"zz\r\nabc\r\n0\r\n\r\n", 400),
    # --- line endings and folding ---------------------------------------------------------
    ("bare LF everywhere", b"GET / HTTP/1.1\n" + b"Host: example.test\n\n", 400),
    ("bare LF in one header", b"GET / HTTP/1.1\r\nHost: example.test\nX: y\r\n\r\n", 400),
    ("bare CR", b"GET / HTTP/1.1\r\nHost: example.test\rX: y\r\n\r\n", 400),
    ("obs-fold", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\r\n b\r\n\r\n", 400),
    ("obs-fold tab", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\r\n\tb\r\n\r\n", 400),
    ("space in header name", b"GET / HTTP/1.1\r\n" + H + b"X A: a\r\n\r\n", 400),
    ("NUL in header value", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n", 400),
    # RFC 9110 §5.5: CTLs are not field-vchar; h11 lets all but NUL through (review item 2:
    # these reached the backend and its logs/terminals).
    ("CTL and ESC in header value", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x01b\x1b[31m\r\n\r\n",
     400),
    ("DEL in X-Request-ID", b"GET / HTTP/1.1\r\n" + H + b"X-Request-ID: \x7fzz\r\n\r\n", 400),
    ("form feed in header value", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x0cb\r\n\r\n", 400),
    ("unit separator in Host", b"GET / HTTP/1.1\r\nHost: example.test\x1f\r\n\r\n", 400),
    ("DEL in request target", b"GET /a\x7f HTTP/1.1\r\n" + H + b"\r\n", 400),
    # --- versions and methods -------------------------------------------------------------
    ("HTTP/2.0 over h1", b"GET / HTTP/2.0\r\n" + H + b"\r\n", 400),
    ("HTTP/1.2", b"GET / HTTP/1.2\r\n" + H + b"\r\n", 400),
    ("HTTP/0.9 style", b"GET /\r\n\r\n", 400),
    ("lower-case version", b"GET / http/1.1\r\n" + H + b"\r\n", 400),
    ("CONNECT", b"CONNECT example.test:443 HTTP/1.1\r\n" + H + b"\r\n", 405),
    ("star for GET", b"GET * HTTP/1.1\r\n" + H + b"\r\n", 400),
    # --- Host -----------------------------------------------------------------------------
    ("no Host on 1.1", b"GET / HTTP/1.1\r\n\r\n", 400),
    ("duplicate Host", b"GET / HTTP/1.1\r\n" + H + b"Host: other.test\r\n\r\n", 400),
    ("Host with space", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    ("Host with slash", b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
    ("Host with userinfo", b"GET / HTTP/1.1\r\nHost: user@example.test\r\n\r\n", 400),
    ("Host bad port", b"GET / HTTP/1.1\r\nHost: example.test:99999\r\n\r\n", 400),
    ("Host port letters", b"GET / HTTP/1.1\r\nHost: example.test:8o\r\n\r\n", 400),
    ("Host port zero", b"GET / HTTP/1.1\r\nHost: example.test:0\r\n\r\n", 400),
    # --- targets --------------------------------------------------------------------------
    ("absolute-form other host", b"GET http://admin.internal/ HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("absolute-form userinfo", b"GET http://x@example.test/ HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("absolute-form ftp", b"GET ftp://example.test/ HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("authority-form", b"GET example.test:80 HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("fragment", b"GET /a#b HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("dotdot above root", b"GET /../etc/passwd HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("encoded dotdot above root", b"GET /%2e%2e/etc HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("mixed encoded dotdot", b"GET /a/.%2e/%2E./x HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("encoded slash", b"GET /a%2fb HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("encoded slash upper", b"GET /a%2Fb HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("encoded backslash", b"GET /a%5c..%5cb HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("encoded NUL", b"GET /a%00 HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("dotdot semicolon", b"GET /a/..;/admin HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("bad escape", b"GET /a%zz HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("non-ASCII target", b"GET /caf\xc3\xa9 HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("invalid UTF-8 escapes", b"GET /%c3%28 HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("backslash", b"GET /a\\..\\b HTTP/1.1\r\n" + H + b"\r\n", 400),
]


#: Errors found in the body, after a valid head was already forwarded.
BODY_ERRORS = {"bad chunk size"}


@pytest.mark.parametrize("name,raw,status", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_request_is_refused_and_closed(name: str, raw: bytes, status: int) -> None:
    pair = ProxyPair()
    out = pair.send(raw)
    assert status_of(out) == status, out
    assert pair.closed
    assert b"connection: close" in out.lower()
    if name in BODY_ERRORS:
        # The head was valid and streamed; the body framing error closes that upstream
        # connection before it holds a complete request.
        assert all(not u.requests for u in pair.upstreams)
        assert all(c.reuse is False for c in pair.closes)
    else:
        assert pair.upstream_bytes == b""
        assert pair.opens == []


@pytest.mark.parametrize("name,raw,status", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_request_after_a_good_one_does_not_reach_upstream(name: str, raw: bytes,
                                                                  status: int) -> None:
    pair = ProxyPair()
    first = b"GET /ok HTTP/1.1\r\n" + H + b"\r\n"
    out = pair.send(first + raw)  # pipelined behind a valid request
    assert out.startswith(b"HTTP/1.1 200 OK\r\n")
    assert pair.closed
    assert sum(len(u.requests) for u in pair.upstreams) == 1
    assert pair.upstreams[0].raw.startswith(b"GET /ok HTTP/1.1\r\n")
    if name not in BODY_ERRORS:
        assert pair.upstream_bytes.count(b"HTTP/1.1") == 1
    assert status_of(out[out.index(b"HTTP/1.1", 10):]) == status


def test_hostile_byte_by_byte() -> None:
    # Split at every byte: the checks must not depend on how the bytes arrive.
    for name, raw, status in HOSTILE:
        pair = ProxyPair()
        out = b""
        for i in range(len(raw)):
            out += pair.send(raw[i:i + 1])
            if pair.closed:
                break
        assert status_of(out) == status, name
        if name not in BODY_ERRORS:
            assert pair.upstream_bytes == b"", name


def test_oversized_request_line_414() -> None:
    pair = ProxyPair()
    out = pair.send(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n" + H + b"\r\n")
    assert status_of(out) == 414 and pair.closed and pair.upstream_bytes == b""


def test_oversized_request_line_414_before_the_line_ends() -> None:
    pair = ProxyPair()
    out = pair.send(b"GET /" + b"a" * 9000)
    assert status_of(out) == 414 and pair.closed


def test_oversized_header_431() -> None:
    pair = ProxyPair()
    out = pair.send(b"GET / HTTP/1.1\r\n" + H + b"X-Big: " + b"b" * 9000 + b"\r\n\r\n")
    assert status_of(out) == 431 and pair.closed and pair.upstream_bytes == b""


def test_oversized_header_431_before_the_line_ends() -> None:
    pair = ProxyPair()
    out = pair.send(b"GET / HTTP/1.1\r\n" + H + b"X-Big: " + b"b" * 9000)
    assert status_of(out) == 431 and pair.closed


def test_too_many_headers_431() -> None:
    pair = ProxyPair()
    headers = b"".join(b"X-%d: v\r\n" % i for i in range(101))
    out = pair.send(b"GET / HTTP/1.1\r\n" + H + headers + b"\r\n")
    assert status_of(out) == 431 and pair.closed and pair.upstream_bytes == b""


def test_all_headers_too_large_431() -> None:
    pair = ProxyPair()
    headers = b"".join(b"X-%d: %s\r\n" % (i, b"v" * 8000) for i in range(5))
    out = pair.send(b"GET / HTTP/1.1\r\n" + H + headers + b"\r\n")
    assert status_of(out) == 431 and pair.closed and pair.upstream_bytes == b""


def test_limits_are_settings() -> None:
    pair = ProxyPair(settings=ProxySettings(max_request_line=64, max_headers=2))
    assert status_of(pair.send(b"GET /" + b"a" * 70 + b" HTTP/1.1\r\n" + H + b"\r\n")) == 414
    pair = ProxyPair(settings=ProxySettings(max_headers=2))
    assert status_of(pair.send(b"GET / HTTP/1.1\r\n" + H + b"A: 1\r\nB: 2\r\n\r\n")) == 431


def test_slow_headers_hit_the_head_deadline() -> None:
    pair = ProxyPair()
    pair.send(b"GET / HTTP/1.1\r\n")
    pair.send(b"X-A: 1\r\n")  # trickling bytes do not extend the absolute deadline
    assert pair.timer is not None and pair.timer[0] is TimerKind.HEAD
    out = pair.fire(TimerKind.HEAD)
    assert status_of(out) == 408 and pair.closed and pair.upstream_bytes == b""


def test_silent_connection_is_closed_at_the_head_deadline() -> None:
    pair = ProxyPair()
    out = pair.fire(TimerKind.HEAD)
    assert out == b"" and pair.closed


def test_body_over_proxy_body_size_413_with_content_length() -> None:
    pair = ProxyPair(settings=ProxySettings(proxy_body_size=10))
    out = pair.send(b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 11\r\n\r\n")
    assert status_of(out) == 413 and pair.closed and pair.upstream_bytes == b""


def test_chunked_body_over_proxy_body_size_413() -> None:
    # The upstream must not be left with a half body it could take for a complete request.
    pair = ProxyPair(settings=ProxySettings(proxy_body_size=10), app=lambda r, b, u: None)
    out = pair.send(b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                    b"8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n")
    assert status_of(out) == 413 and pair.closed
    assert all(c.reuse is False for c in pair.closes)
    assert not pair.upstreams or not pair.upstreams[0].requests


def test_path_confusion_is_normalised_not_refused_when_harmless() -> None:
    # //, /./, %2e segments and unreserved escapes have one canonical form: routed on it and
    # forwarded as it (the router and the backend see the same path).
    pair = ProxyPair([Route("/admin", endpoints=[("10.0.0.9", 80)], service="admin"),
                      Route("/")])
    out = pair.send(b"GET //public/../admin/./%61ccount HTTP/1.1\r\n" + H + b"\r\n")
    assert out.startswith(b"HTTP/1.1 200")
    assert pair.router.calls[-1][2] == "/admin/account"
    assert pair.upstreams[0].endpoint == ("10.0.0.9", 80)
    assert pair.upstreams[0].raw.startswith(b"GET /admin/account HTTP/1.1\r\n")


def test_semicolon_is_not_a_path_separator() -> None:
    pair = ProxyPair([Route("/admin", endpoints=[("10.0.0.9", 80)], service="admin"),
                      Route("/")])
    out = pair.send(b"GET /public;/../admin HTTP/1.1\r\n" + H + b"\r\n")
    # "/public;/../admin" canonicalises to "/admin": routed to admin AND forwarded as /admin,
    # so no backend sees a path that differs from the one routed.
    assert out.startswith(b"HTTP/1.1 200")
    assert pair.upstreams[0].raw.startswith(b"GET /admin HTTP/1.1\r\n")


def test_pipelined_burst_is_linear_and_does_not_recurse() -> None:
    # Thousands of tiny pipelined requests in one packet, answered locally: no RecursionError,
    # no quadratic re-copying of the rest of the buffer (this runs in well under a second).
    pair = ProxyPair([Route("/api")], settings=ProxySettings(keep_alive_requests=10**6))
    out = pair.send(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nab" * 3000)
    assert out.count(b"HTTP/1.1 404 Not Found\r\n") == 3000 and not pair.closed
    assert pair.records[-1].bytes_in == len(b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2"
                                            b"\r\n\r\nab")


def test_pipeline_limit_while_busy() -> None:
    pair = ProxyPair(app=lambda r, b, u: None)
    pair.send(b"GET / HTTP/1.1\r\n" + H + b"\r\n")
    pair.send(b"GET / HTTP/1.1\r\n" + H + b"\r\n" * 1)
    assert not pair.closed
    pair.send(b"x" * (1024 * 1024 + 1))
    assert pair.closed


def test_tab_in_header_value_is_forwarded_byte_exact() -> None:
    # HTAB is OWS/field content (RFC 9110 §5.5): the CTL check must not refuse it.
    pair = ProxyPair()
    out = pair.send(b"GET / HTTP/1.1\r\n" + H + b"X-A: a\tb\r\n\r\n")
    assert status_of(out) == 200
    assert bytes(pair.upstreams[0].raw).startswith(
        b"GET / HTTP/1.1\r\nHost: example.test\r\nX-A: a\tb\r\nx-request-id: ")


def test_large_client_header_buffers_keyword_is_enforced_on_the_wire() -> None:
    # Review item 1: the nginx-style setting alone must move the 431 limit both ways.
    line = b"X-Big: " + b"a" * 10000 + b"\r\n"
    raw = b"GET / HTTP/1.1\r\n" + H + line + b"\r\n"
    assert status_of(ProxyPair().send(raw)) == 431
    pair = ProxyPair(settings=ProxySettings(large_client_header_buffers="4 16k"))
    assert status_of(pair.send(raw)) == 200
    assert line in pair.upstream_bytes
    small = ProxyPair(settings=ProxySettings(large_client_header_buffers="4 1k"))
    out = small.send(b"GET / HTTP/1.1\r\n" + H + b"X-Big: " + b"a" * 2000 + b"\r\n\r\n")
    assert status_of(out) == 431 and small.closed and small.upstream_bytes == b""


# =========================================================================================
# Desync review: every vector is followed, in the same packet, by a request for another
# route ("/admin" -> its own endpoint). A refused request must take that second request down
# with it (400 + close); an accepted one must forward one well-framed request and route the
# second one on its own, through the router, to its own backend.
# =========================================================================================

ADMIN_EP = ("10.0.0.9", 80)
WEB_EP = ("10.0.0.1", 8080)
SMUGGLED = b"GET /admin HTTP/1.1\r\nHost: example.test\r\n\r\n"
POST_TE = b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
POST = b"POST / HTTP/1.1\r\n" + H


def two_routes() -> list[Route]:
    return [Route("/admin", endpoints=[ADMIN_EP], service="admin"),
            Route("/", endpoints=[WEB_EP])]


def one_request_on_the_wire(raw: bytes) -> tuple[h11.Request, bytes]:
    """Parse what one upstream connection received with a fresh h11 server: exactly one
    request, with exactly one body framing, and not one byte after it."""
    parser = h11.Connection(h11.SERVER)
    parser.receive_data(raw)
    req = parser.next_event()
    assert isinstance(req, h11.Request), req
    framing = [n for n, _ in req.headers if n in (b"content-length", b"transfer-encoding")]
    assert len(framing) <= 1, req.headers
    if framing == [b"transfer-encoding"]:
        assert dict(req.headers)[b"transfer-encoding"] == b"chunked"
    body = b""
    while True:
        ev = parser.next_event()
        if isinstance(ev, h11.Data):
            body += ev.data
        else:
            assert isinstance(ev, h11.EndOfMessage), ev
            break
    assert parser.trailing_data == (b"", False), parser.trailing_data
    return req, body


# (id, request bytes sent before SMUGGLED, head already forwarded when the error is found)
REFUSED: list[tuple[str, bytes, bool]] = [
    # --- Transfer-Encoding values (RFC 9112 §6.1 / §6.3) ---------------------------------
    ("TE chunked, chunked", POST + b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
     False),
    # "If any transfer coding other than chunked is applied to a request's content, the
    # sender MUST apply chunked as the final transfer coding": gzip is not decoded by us.
    ("TE gzip, chunked", POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", False),
    # §6.3: "If a Transfer-Encoding header field is present in a request and the chunked
    # transfer coding is not the final encoding, the message body length cannot be determined
    # reliably; the server MUST respond with the 400 (Bad Request) status code and then close
    # the connection."
    ("TE chunked, gzip", POST + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", False),
    ("TE empty", POST + b"Transfer-Encoding: \r\nContent-Length: 0\r\n\r\n", False),
    ("TE identity with CL", POST + b"Transfer-Encoding: identity\r\nContent-Length: 5\r\n\r\n"
     b"hello", False),
    ("CL and TE, TE last, listed", POST + b"Content-Length: 5\r\nTransfer-Encoding: gzip, "
     b"chunked\r\n\r\nhello", False),
    # --- Content-Length values (RFC 9110 §8.6: Content-Length = 1*DIGIT) ----------------
    ("CL 5, 6", POST + b"Content-Length: 5, 6\r\n\r\nhello", False),
    ("CL two headers 5 6", POST + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
     False),
    ("CL 0x5", POST + b"Content-Length: 0x5\r\n\r\nhello", False),
    ("CL empty", POST + b"Content-Length: \r\n\r\nhello", False),
    ("CL 5.0", POST + b"Content-Length: 5.0\r\n\r\nhello", False),
    ("CL 1_0", POST + b"Content-Length: 1_0\r\n\r\nhellohello", False),
    ("CL space before colon", POST + b"Content-Length : 5\r\n\r\nhello", False),
    # --- chunk-size = 1*HEXDIG (RFC 9112 §7.1) ------------------------------------------
    ("chunk size 0x5", POST_TE + b"0x5\r\nhello\r\n0\r\n\r\n", True),
    ("chunk size -5", POST_TE + b"-5\r\nhello\r\n0\r\n\r\n", True),
    ("chunk size +5", POST_TE + b"+5\r\nhello\r\n0\r\n\r\n", True),
    ("chunk size 21 hex digits", POST_TE + b"0" * 20 + b"5\r\nhello\r\n0\r\n\r\n", True),
    ("chunk size bare LF", POST_TE + b"5\nhello\r\n0\r\n\r\n", True),
    ("chunk data bare LF", POST_TE + b"5\r\nhello\n0\r\n\r\n", True),
    ("chunk data no CRLF", POST_TE + b"5\r\nhelloXX0\r\n\r\n", True),
    ("last chunk bare LF", POST_TE + b"5\r\nhello\r\n0\n\r\n", True),
    ("chunk ext quoted LF", POST_TE + b"5;a=\"\n\"\r\nhello\r\n0\r\n\r\n", True),
    # chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ): no CTL
    # anywhere, quoted or not. h11 takes ";.*" (anything but LF).
    ("chunk ext bare CR", POST_TE + b"5;\rx\r\nhello\r\n0\r\n\r\n", True),
    ("chunk ext quoted CR", POST_TE + b"5;a=\"\r\"\r\nhello\r\n0\r\n\r\n", True),
    ("chunk ext NUL", POST_TE + b"5;a=\x00\r\nhello\r\n0\r\n\r\n", True),
    ("chunk ext ESC", POST_TE + b"5;a=\x1b[2J\r\nhello\r\n0\r\n\r\n", True),
    # --- trailer-section = *( field-line CRLF ) CRLF: the end of a chunked request ------
    # A parser that ends the trailers at "\n" and one that wants CRLF disagree on where the
    # next request starts: "0\r\n\nGET /admin" is the classic chunked-trailer desync.
    ("trailer end bare LF", POST_TE + b"5\r\nhello\r\n0\r\n\n", True),
    ("trailer line bare LF", POST_TE + b"5\r\nhello\r\n0\r\nX: y\n\r\n", True),
    ("trailer bare CR", POST_TE + b"5\r\nhello\r\n0\r\nX: a\rb\r\n\r\n", True),
    ("trailer NUL", POST_TE + b"5\r\nhello\r\n0\r\nX: a\x00b\r\n\r\n", True),
    ("trailer space before colon", POST_TE + b"5\r\nhello\r\n0\r\nX : y\r\n\r\n", True),
    # --- Host and targets --------------------------------------------------------------
    ("Host space before colon", b"GET / HTTP/1.1\r\nHost : example.test\r\n\r\n", False),
    ("two identical Host", b"GET / HTTP/1.1\r\n" + H + H + b"\r\n", False),
    ("Host user:password@", b"GET / HTTP/1.1\r\nHost: u:p@example.test\r\n\r\n", False),
    ("absolute-form other port", b"GET http://example.test:8080/ HTTP/1.1\r\n" + H + b"\r\n",
     False),
    ("absolute-form other host to admin", b"GET http://admin.internal/admin HTTP/1.1\r\n" + H
     + b"\r\n", False),
    ("absolute-form backslash authority", b"GET http://example.test\\@evil/ HTTP/1.1\r\n" + H
     + b"\r\n", False),
    ("Expect with TE on HTTP/1.0", b"POST / HTTP/1.0\r\n" + H + b"Expect: 100-continue\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", False),
    # --- request line: request-line = method SP request-target SP HTTP-version ------------
    ("request line double space", b"GET  /admin HTTP/1.1\r\n" + H + b"\r\n", False),
    ("request line tab", b"GET\t/admin HTTP/1.1\r\n" + H + b"\r\n", False),
    ("request line trailing space", b"GET /admin HTTP/1.1 \r\n" + H + b"\r\n", False),
]


@pytest.mark.parametrize("name,raw,streamed", REFUSED, ids=[r[0] for r in REFUSED])
def test_refused_framing_takes_the_smuggled_request_down(name: str, raw: bytes,
                                                         streamed: bool) -> None:
    pair = ProxyPair(two_routes())
    out = pair.send(raw + SMUGGLED)
    assert status_of(out) == 400, out
    assert out.count(b"HTTP/1.1 ") == 1  # one answer, no 100 Continue, nothing for /admin
    assert b"\r\nconnection: close\r\n" in out.lower() and pair.closed
    # The other route's backend is never contacted, and no upstream holds a request.
    assert all(o.endpoint != ADMIN_EP for o in pair.opens)
    assert all(not u.requests for u in pair.upstreams)
    assert b"/admin" not in pair.upstream_bytes
    if streamed:
        # The head was valid and already streamed to its route: that connection is dropped
        # with a request the upstream can never complete (it never got the last chunk).
        assert [u.endpoint for u in pair.upstreams] == [WEB_EP]
        assert pair.closes and all(c.reuse is False for c in pair.closes)
        assert not pair.upstream_bytes.endswith(b"0\r\n\r\n")
    else:
        assert pair.opens == [] and pair.upstream_bytes == b""


@pytest.mark.parametrize("name,raw,streamed", REFUSED, ids=[r[0] for r in REFUSED])
def test_refused_framing_byte_by_byte(name: str, raw: bytes, streamed: bool) -> None:
    # The stricter chunk-line and trailer checks must not depend on how the bytes arrive.
    pair = ProxyPair(two_routes())
    out = b""
    data = raw + SMUGGLED
    for i in range(len(data)):
        out += pair.send(data[i:i + 1])
        if pair.closed:
            break
    assert status_of(out) == 400 and pair.closed, out
    assert all(o.endpoint != ADMIN_EP for o in pair.opens)
    assert all(not u.requests for u in pair.upstreams)


# (id, request bytes sent before SMUGGLED, body the upstream must get, framing it must get)
ACCEPTED: list[tuple[str, bytes, bytes, bytes]] = [
    # Transfer-coding names are case-insensitive (RFC 9112 §7) and OWS surrounds a value
    # (RFC 9110 §5.5): these are chunked, re-framed as "transfer-encoding: chunked".
    ("TE Chunked", POST + b"Transfer-Encoding: Chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
     b"hello", b"transfer-encoding"),
    ("TE leading OWS", POST + b"Transfer-Encoding:   chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
     b"hello", b"transfer-encoding"),
    ("TE trailing OWS", POST + b"Transfer-Encoding: chunked \t\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
     b"hello", b"transfer-encoding"),
    ("TE tab", POST + b"Transfer-Encoding:\tchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", b"hello",
     b"transfer-encoding"),
    ("CL leading OWS", POST + b"Content-Length:   5\r\n\r\nhello", b"hello", b"content-length"),
    ("CL trailing OWS", POST + b"Content-Length: 5 \r\n\r\nhello", b"hello", b"content-length"),
    ("chunk size 20 hex digits", POST_TE + b"0" * 19 + b"5\r\nhello\r\n0\r\n\r\n", b"hello",
     b"transfer-encoding"),
    ("chunk size upper hex", POST_TE + b"A\r\nhellohello\r\n0\r\n\r\n", b"hellohello",
     b"transfer-encoding"),
    ("chunk ext token", POST_TE + b"5;a=b;c\r\nhello\r\n0\r\n\r\n", b"hello",
     b"transfer-encoding"),
    ("chunk ext quoted string with tab", POST_TE + b"5;a=\"b\tc;d\"\r\nhello\r\n0\r\n\r\n",
     b"hello", b"transfer-encoding"),
    # RFC 9110 §6.5.1: framing, routing and control fields are not allowed in trailers;
    # trailers are never forwarded (API.md), so they cannot reframe or reroute anything.
    ("trailer Content-Length", POST_TE + b"5\r\nhello\r\n0\r\nContent-Length: 50\r\n\r\n",
     b"hello", b"transfer-encoding"),
    ("trailer TE and Host", POST_TE + b"5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n"
     b"Host: admin.internal\r\n\r\n", b"hello", b"transfer-encoding"),
    # RFC 9112 §5.2 lets a recipient replace obs-fold with SP; these trailers are dropped.
    ("trailer obs-fold", POST_TE + b"5\r\nhello\r\n0\r\nX: a\r\n b\r\n\r\n", b"hello",
     b"transfer-encoding"),
    # An underscore spelling is not Content-Length: no body, and it is not forwarded
    # (names with "_" are dropped), so the upstream sees a body-less POST, like us.
    ("Content_Length is not framing", POST + b"Content_Length: 5\r\n\r\n", b"", b""),
    ("Transfer_Encoding is not framing", POST + b"Transfer_Encoding: chunked\r\n"
     b"Content-Length: 5\r\n\r\nhello", b"hello", b"content-length"),
    # Naming a framing header in Connection ("hop-by-hop abuse") cannot strip the framing.
    ("Connection names Content-Length", POST + b"Connection: Content-Length\r\n"
     b"Content-Length: 5\r\n\r\nhello", b"hello", b"content-length"),
    ("Connection names Transfer-Encoding", POST + b"Connection: Transfer-Encoding\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", b"hello",
     b"transfer-encoding"),
]


@pytest.mark.parametrize("name,raw,body,framing", ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_accepted_framing_forwards_one_request_and_routes_the_next_on_its_own(
        name: str, raw: bytes, body: bytes, framing: bytes) -> None:
    pair = ProxyPair(two_routes())
    out = pair.send(raw + SMUGGLED)
    assert out.count(b"HTTP/1.1 200 OK\r\n") == 2 and not pair.closed, out
    web, admin = pair.upstreams
    assert web.endpoint == WEB_EP and admin.endpoint == ADMIN_EP
    req, got = one_request_on_the_wire(bytes(web.raw))
    assert (req.method, req.target, got) == (b"POST", b"/", body)
    assert [n for n, _ in req.headers if n in (b"content-length", b"transfer-encoding")] == (
        [framing] if framing else [])
    assert all(n not in (b"content_length", b"trailer", b"expect") for n, _ in req.headers)
    # The second request went through the router and got the proxy's own headers.
    assert [c[2] for c in pair.router.calls] == ["/", "/admin"]
    adm, _ = one_request_on_the_wire(bytes(admin.raw))
    assert adm.target == b"/admin" and (b"x-forwarded-for", b"203.0.113.7") in adm.headers


def test_chunk_size_beyond_64_bits_is_refused_before_any_byte_reaches_a_backend() -> None:
    # 2**64 + 5: a backend parsing into a wrapping 64-bit integer would read 5 and take the
    # rest as a new request. nginx's ngx_http_parse_chunked: "invalid" past
    # NGX_MAX_OFF_T_VALUE - 5 -> 400 and close (session 16; before, re-framed and forwarded).
    pair = ProxyPair(two_routes(), app=lambda r, b, u: None)
    out = pair.send(POST_TE + b"10000000000000005\r\nhello\r\n0\r\n\r\n" + SMUGGLED)
    assert status_of(out) == 400 and pair.closed
    assert pair.upstream_bytes == b""
    assert [c[2] for c in pair.router.calls] == ["/"]


def test_connection_naming_host_does_not_strip_the_host() -> None:
    pair = ProxyPair(two_routes())
    out = pair.send(b"GET / HTTP/1.1\r\n" + H + b"Connection: Host\r\n\r\n" + SMUGGLED)
    assert out.count(b"HTTP/1.1 200 OK\r\n") == 2
    req, _ = one_request_on_the_wire(bytes(pair.upstreams[0].raw))
    assert [v for n, v in req.headers if n == b"host"] == [b"example.test"]
    assert pair.upstreams[1].endpoint == ADMIN_EP


@pytest.mark.parametrize("body_size", [None, 0])
@pytest.mark.parametrize("length", [b"9223372036854775808", b"18446744073709551621"])
def test_content_length_beyond_63_bits_is_400_before_anything_is_sent(
        length: bytes, body_size: int | None) -> None:
    # 2**63 and 2**64 + 5: a backend parsing into a (wrapping) 64-bit integer would read
    # another length than the one forwarded. nginx refuses a length over its off_t as an
    # invalid header (400), before client_max_body_size: so even with no size limit (0).
    settings = None if body_size is None else ProxySettings(proxy_body_size=body_size)
    pair = ProxyPair(two_routes(), settings)
    out = pair.send(POST + b"Content-Length: " + length + b"\r\n\r\nhello" + SMUGGLED)
    assert status_of(out) == 400 and pair.closed
    assert pair.opens == [] and pair.upstream_bytes == b""


def test_content_length_of_63_bits_is_forwarded_without_a_size_limit() -> None:
    pair = ProxyPair(two_routes(), ProxySettings(proxy_body_size=0), app=lambda r, b, u: None)
    out = pair.send(POST + b"Content-Length: 9223372036854775807\r\n\r\nhello")
    assert out == b"" and not pair.closed
    head = bytes(pair.upstreams[0].raw).partition(b"\r\n\r\n")[0].lower()
    assert b"\r\ncontent-length: 9223372036854775807" in head


def test_expect_100_continue_then_pipelined_request_for_another_route() -> None:
    pair = ProxyPair(two_routes())
    out = pair.send(POST + b"Expect: 100-continue\r\nContent-Length: 5\r\n\r\nhello" + SMUGGLED)
    assert out.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")
    assert out.count(b"HTTP/1.1 200 OK\r\n") == 2 and not pair.closed
    web, admin = pair.upstreams
    req, body = one_request_on_the_wire(bytes(web.raw))
    assert body == b"hello" and all(n != b"expect" for n, _ in req.headers)
    assert admin.endpoint == ADMIN_EP
    assert one_request_on_the_wire(bytes(admin.raw))[0].target == b"/admin"


def test_expect_100_continue_answered_locally_then_body_and_pipelined_request() -> None:
    # No route: 404 without "100 Continue" and without "Connection: close", so (RFC 9110
    # §10.1.1) we go on reading the content; a client that sends it anyway is in sync.
    pair = ProxyPair([Route("/admin", endpoints=[ADMIN_EP], service="admin",
                            host="example.test")])
    out = pair.send(b"POST /x HTTP/1.1\r\nHost: other.test\r\nExpect: 100-continue\r\n"
                    b"Content-Length: 5\r\n\r\n")
    assert status_of(out) == 404 and b"100 Continue" not in out and not pair.closed
    out = pair.send(b"hello" + SMUGGLED)
    assert status_of(out) == 200 and not pair.closed
    (admin,) = pair.upstreams
    req, body = one_request_on_the_wire(bytes(admin.raw))
    assert req.target == b"/admin" and body == b""
    assert b"hello" not in pair.upstream_bytes


def test_expect_100_continue_answered_locally_body_never_sent() -> None:
    # A client that takes the 404 as final and sends its next request without the body: those
    # bytes are the announced content (we said neither 100 nor close). They are read and
    # dropped; what follows is garbage -> 400 + close. Nothing reaches any upstream.
    pair = ProxyPair([Route("/admin", endpoints=[ADMIN_EP], service="admin",
                            host="example.test")])
    out = pair.send(b"POST /x HTTP/1.1\r\nHost: other.test\r\nExpect: 100-continue\r\n"
                    b"Content-Length: 5\r\n\r\n")
    assert status_of(out) == 404
    out = pair.send(SMUGGLED)
    assert status_of(out) == 400 and pair.closed
    assert pair.opens == [] and pair.upstream_bytes == b""


def _refuse_upgrade(status: bytes, close: bool = False) -> Callable[..., Reply]:
    def app(r: h11.Request, body: bytes, up: FakeUpstream) -> Reply:
        return Reply(b"HTTP/1.1 " + status + b"\r\nContent-Length: 2\r\n\r\nno", close=close)
    return app


WS_REQ = (b"GET /ws HTTP/1.1\r\n" + H + b"Connection: Upgrade\r\nUpgrade: websocket\r\n"
          b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")


@pytest.mark.parametrize("status,close", [(b"200 OK", False), (b"426 Upgrade Required", False),
                                          (b"400 Bad Request", True)])
def test_refused_upgrade_does_not_tunnel_the_pipelined_request(status: bytes,
                                                               close: bool) -> None:
    pair = ProxyPair(two_routes(), app=_refuse_upgrade(status, close))
    out = pair.send(WS_REQ + SMUGGLED)
    assert pair.tunnels == [] and not pair.closed
    assert out.count(b"HTTP/1.1 " + status + b"\r\n") == 2, out
    web, admin = pair.upstreams
    # The upgrade's upstream got the upgrade request and nothing else ...
    req, _ = one_request_on_the_wire(bytes(web.raw))
    assert req.target == b"/ws"
    # ... the pipelined bytes were parsed, routed and rewritten as a request of their own.
    assert admin.endpoint == ADMIN_EP
    adm, _ = one_request_on_the_wire(bytes(admin.raw))
    assert adm.target == b"/admin" and any(n == b"x-request-id" for n, _ in adm.headers)


def test_upgrade_pipelined_bytes_arriving_later_are_not_tunnelled_after_a_refusal() -> None:
    pair = ProxyPair(two_routes(), app=lambda r, b, u: None)
    pair.send(WS_REQ)
    pair.send(SMUGGLED)  # held behind the upgrade request in flight
    (web,) = pair.upstreams
    assert b"/admin" not in bytes(web.raw)
    out = pair.upstream_send(web, b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
    assert pair.tunnels == [] and out.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert b"/admin" not in bytes(web.raw)
    assert pair.upstreams[-1].endpoint == ADMIN_EP
    assert one_request_on_the_wire(bytes(pair.upstreams[-1].raw))[0].target == b"/admin"


def test_101_to_a_non_upgrade_request_opens_no_tunnel_for_pipelined_bytes() -> None:
    # POST with Upgrade is not an upgrade for us (GET only): a 101 for it is invalid (502),
    # and the pipelined request still goes to its own route, not down that connection.
    def app(r: h11.Request, body: bytes, up: FakeUpstream) -> Reply:
        if r.target == b"/admin":
            return ok(b"admin")
        return Reply(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\n\r\n")

    pair = ProxyPair(two_routes(), app=app)
    out = pair.send(b"POST /ws HTTP/1.1\r\n" + H + b"Connection: Upgrade\r\nUpgrade: websocket"
                    b"\r\nContent-Length: 3\r\n\r\nabc" + SMUGGLED)
    assert pair.tunnels == [] and status_of(out) == 502
    assert out.endswith(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nadmin")
    assert b"/admin" not in bytes(pair.upstreams[0].raw)
    assert pair.closes[0].reuse is False


# --- response splitting ------------------------------------------------------------------
@pytest.mark.parametrize("reason", [b"O\x1b[31mK", b"OK\x01", b"OK\x7f", b"O\x00K"])
def test_control_character_in_upstream_reason_phrase_is_502(reason: bytes) -> None:
    # RFC 9112 §4: reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ). h11 lets CTLs through
    # ([^\x00\s]); copied to the client they are the same terminal/log injection as in a
    # header value (API.md "Control characters": an invalid response -> 502).
    pair = ProxyPair(app=lambda r, b, u: Reply(b"HTTP/1.1 200 " + reason +
                                               b"\r\nContent-Length: 0\r\n\r\n"))
    out = pair.send(b"GET / HTTP/1.1\r\n" + H + b"\r\n")
    assert status_of(out) == 502 and reason not in out
    assert pair.closes[0].reuse is False


def test_control_character_in_upstream_101_reason_phrase_is_502() -> None:
    pair = ProxyPair(app=lambda r, b, u: Reply(b"HTTP/1.1 101 Sw\x1b[2Jitching\r\n"
                                               b"Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n"))
    out = pair.send(WS_REQ)
    assert status_of(out) == 502 and pair.tunnels == [] and b"\x1b" not in out


def test_redirect_location_echoes_the_query_only_percent_encoded() -> None:
    # The Location the proxy writes from the request (ssl-redirect) carries the query as
    # received: encoded CR/LF stay encoded, raw ones never got past the head checks.
    pair = ProxyPair([Route("/")], tls_hosts=["example.test"])
    out = pair.send(b"GET /a?x=%0d%0aSet-Cookie:%20a=b HTTP/1.1\r\n" + H + b"\r\n")
    assert status_of(out) == 308
    head = out[:out.index(b"\r\n\r\n")]
    assert b"\r\nlocation: https://example.test/a?x=%0d%0aSet-Cookie:%20a=b" in head
    assert b"\r\nset-cookie" not in head.lower() and out.count(b"HTTP/1.1") == 1
    pair = ProxyPair([Route("/")], tls_hosts=["example.test"])
    out = pair.send(b"GET /a?x=\r\nSet-Cookie: a=b HTTP/1.1\r\n" + H + b"\r\n")
    assert status_of(out) == 400 and pair.closed and b"location" not in out.lower()
