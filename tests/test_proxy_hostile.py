"""Hostile requests (SEMANTICS §9, issue 4 "Bad input"): each gets a 4xx, the connection is
closed, and nothing reaches any upstream. Written from RFC 9112 and the request-smuggling
research (Linhart et al. 2005, Kettle 2019 "HTTP Desync Attacks")."""

from __future__ import annotations

import pytest

from ingresslib.proxy import ProxySettings, TimerKind

from _proxy_harness import ProxyPair, Route, status_of

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
    pair = ProxyPair([Route("/api")], settings=ProxySettings(keep_alive_requests=0))
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
