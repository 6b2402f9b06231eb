"""What the proxy core puts in its records and forwarded headers (session 18, C18): each try's
``$upstream_response_time``, repeated User-Agent / Referer lines joined as nginx >= 1.23 joins
them, ``$upstream_response_length`` counted as read (chunk framing included), and
``$full_x_forwarded_for`` built from X-Forwarded-For whatever ``forwarded-for-header`` names
(the proxy and IngressASGI alike)."""

from __future__ import annotations

import datetime
from dataclasses import replace

import pytest

from ingresslib._accesslog import access_fields, format_line
from ingresslib.proxy import ProxySettings

from _agree_s13 import IngressSpec, PathSpec, RequestSpec, manifests_text, via_asgi, via_proxy
from _proxy_harness import ProxyPair, Reply, Route, ok, upstream_sends_bytewise

UTC = datetime.timezone.utc
EPS = [("10.0.0.1", 80), ("10.0.0.2", 80)]


# ---------------------------------------------------------------- $upstream_response_time

def test_each_try_keeps_its_own_response_time() -> None:
    # nginx's ngx_http_upstream_response_time_variable writes one time per upstream state; the
    # record held the last try's only, so the line had two addresses and one time.
    pair = ProxyPair([Route("/", endpoints=EPS)], defer=EPS)
    pair.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    pair.now = 0.25
    pair.fail_connect()  # the first try: refused after 250 ms
    pair.now = 0.75
    pair.connect()       # the second (started at 0.25) connects at 0.75 and is answered
    (record,) = pair.records
    assert record.upstreams == tuple(EPS)
    assert record.upstream_response_times == (0.25, 0.5)
    assert record.upstream_response_time == 0.5
    line = format_line(access_fields(record, 0.0, UTC))
    assert " 10.0.0.1:80, 10.0.0.2:80 0, 4 0.250, 0.500 502, 200 " in line, line


def test_one_try_one_time_and_a_local_answer_none() -> None:
    pair = ProxyPair([Route("/", host="a", endpoints=EPS[:1])], defer=EPS[:1])
    pair.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    pair.now = 0.125
    pair.connect()
    pair.send(b"GET /nowhere HTTP/1.1\r\nHost: unrouted.test\r\n\r\n")
    served, local = pair.records
    assert served.upstream_response_times == (0.125,)
    assert (local.status, local.upstreams, local.upstream_response_times) == (404, (), ())


def test_the_keep_alive_race_retry_is_a_try_of_its_own() -> None:
    # A pooled connection the upstream had closed: the core tries once more on a fresh one,
    # which nginx counts as another upstream state (and $upstream_addr lists twice).
    pair = ProxyPair([Route("/")])
    pair.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    pair.upstreams[0].closed = True  # closed while idle in the pool
    pair.now = 1.0
    pair.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    record = pair.records[-1]
    assert record.status == 200 and len(record.upstreams) == 2
    assert record.upstream_response_times == (0.0, 0.0)


# ---------------------------------------------------------------- $http_user_agent, $http_referer

def test_repeated_user_agent_and_referer_are_joined_as_nginx_joins_them() -> None:
    # ngx_http_variable_headers_internal: the lines of one header, ", "-separated. The record
    # kept the last line only.
    pair = ProxyPair([Route("/")])
    pair.send(b"GET / HTTP/1.1\r\nHost: a\r\nUser-Agent: one\r\nReferer: r1\r\n"
              b"User-Agent: two\r\nReferer: r2\r\nUser-Agent: three\r\n\r\n")
    (record,) = pair.records
    assert (record.user_agent, record.referer) == ("one, two, three", "r1, r2")
    assert '"r1, r2" "one, two, three"' in format_line(access_fields(record, 0.0, UTC))


def test_a_single_line_is_kept_as_it_came() -> None:
    pair = ProxyPair([Route("/")])
    pair.send(b"GET / HTTP/1.1\r\nHost: a\r\nUser-Agent: curl/8, x\r\n\r\n")
    assert (pair.records[0].user_agent, pair.records[0].referer) == ("curl/8, x", None)


# ---------------------------------------------------------------- $upstream_response_length

CHUNKED_BODY = b"5;ext=1\r\nhello\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n"


def _chunked(req: object, body: bytes, up: object) -> Reply:
    return Reply(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + CHUNKED_BODY)


def test_response_length_counts_the_chunked_body_as_read() -> None:
    # nginx adds each read to response_length before its chunked filter decodes it
    # (ngx_http_upstream_process_non_buffered_request): framing, extensions and trailers
    # count. The record counted the decoded 8 bytes.
    pair = ProxyPair([Route("/")], app=_chunked)
    out = pair.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert out.endswith(b"5\r\nhello\r\n3\r\nabc\r\n0\r\n\r\n")
    assert pair.records[0].upstream_response_length == len(CHUNKED_BODY)


def test_response_length_is_the_same_when_the_bytes_come_one_by_one() -> None:
    pair = ProxyPair([Route("/")], app=lambda req, body, up: None)
    pair.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    upstream_sends_bytewise(pair, _chunked(None, b"", None).data)
    assert pair.records[0].upstream_response_length == len(CHUNKED_BODY)


def test_response_length_after_a_1xx_and_with_content_length() -> None:
    # Interim heads are head bytes, not response bytes; a Content-Length body is its length.
    def app(req: object, body: bytes, up: object) -> Reply:
        return Reply(b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + ok(b"0123456789").data)

    pair = ProxyPair([Route("/")], app=app)
    pair.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert pair.records[0].upstream_response_length == 10


def test_response_length_of_a_response_cut_short_is_what_came() -> None:
    pair = ProxyPair([Route("/")], app=lambda req, body, up: None)
    pair.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    pair.upstream_send(pair.upstreams[0],
                       b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", close=True)
    assert pair.records[0].upstream_response_length == len(b"5\r\nhel")


# ---------------------------------------------------------------- $full_x_forwarded_for

CUSTOM = ProxySettings(use_forwarded_headers=True, compute_full_forwarded_for=True,
                       forwarded_for_header="X-Client-IP", proxy_real_ip_cidr=("127.0.0.0/8",))
TEXT = manifests_text((IngressSpec("web", "a.test", (PathSpec("/", "Prefix", "s0"),)),))
BASE = RequestSpec("GET", "/", "a.test", (), b"", False, "127.0.0.1")


def _both(req: RequestSpec, settings: ProxySettings) -> dict[bytes, list[bytes]]:
    proxy = via_proxy(TEXT, req, settings, frozenset()).forwarded
    asgi = via_asgi(TEXT, req, settings, frozenset()).forwarded
    # Both of the adapter's header builders: its scan, and the general path a Connection
    # token naming an ordinary header takes.
    general = via_asgi(TEXT, replace(req, headers=(*req.headers, ("Connection", "x-odd"))),
                       settings, frozenset()).forwarded
    assert proxy == asgi == general
    return proxy


@pytest.mark.parametrize("peer", ["127.0.0.1", "192.0.2.9"])
def test_full_forwarded_for_reads_x_forwarded_for_whatever_the_header_named(peer: str) -> None:
    # nginx.tmpl: "map $http_x_forwarded_for $full_x_forwarded_for { default
    # "$http_x_forwarded_for, $realip_remote_addr"; ... }" -- forwarded-for-header only sets
    # real_ip_header (the client, X-Real-IP) and X-Original-Forwarded-For. Both paths built
    # X-Forwarded-For from X-Client-IP's chain ("5.5.5.5, 127.0.0.1"). The map does not look
    # at the peer's trust, so an untrusted peer's X-Forwarded-For is kept in it too.
    req = replace(BASE, peer=peer, headers=(("X-Client-IP", "5.5.5.5"),
                                            ("X-Forwarded-For", "6.6.6.6"),
                                            ("X-Forwarded-For", "7.7.7.7")))
    fwd = _both(req, CUSTOM)
    assert fwd[b"x-forwarded-for"] == [b"6.6.6.6, 7.7.7.7, " + peer.encode()]
    assert fwd[b"x-original-forwarded-for"] == [b"5.5.5.5"]
    assert fwd[b"x-real-ip"] == [b"5.5.5.5" if peer == "127.0.0.1" else peer.encode()]


def test_x_forwarded_for_alone_with_a_custom_header() -> None:
    # No X-Client-IP: the client is the peer, no X-Original-Forwarded-For; the chain is still
    # X-Forwarded-For's (it was dropped: "127.0.0.1" alone).
    req = replace(BASE, headers=(("X-Forwarded-For", "6.6.6.6"),))
    fwd = _both(req, CUSTOM)
    assert fwd[b"x-forwarded-for"] == [b"6.6.6.6, 127.0.0.1"]
    assert fwd[b"x-real-ip"] == [b"127.0.0.1"]
    assert b"x-original-forwarded-for" not in fwd


def test_without_compute_full_forwarded_for_x_forwarded_for_is_the_client() -> None:
    req = replace(BASE, headers=(("X-Client-IP", "5.5.5.5"), ("X-Forwarded-For", "6.6.6.6")))
    fwd = _both(req, replace(CUSTOM, compute_full_forwarded_for=False))
    assert fwd[b"x-forwarded-for"] == [b"5.5.5.5"]
    assert fwd[b"x-original-forwarded-for"] == [b"5.5.5.5"]


def test_custom_header_without_x_forwarded_for_sends_the_peer() -> None:
    # nginx.tmpl: '' "$realip_remote_addr": no X-Forwarded-For line, the peer alone, whatever
    # client X-Client-IP named.
    req = replace(BASE, headers=(("X-Client-IP", "5.5.5.5"),))
    fwd = _both(req, CUSTOM)
    assert fwd[b"x-forwarded-for"] == [b"127.0.0.1"]
    assert fwd[b"x-real-ip"] == [b"5.5.5.5"]
    assert fwd[b"x-original-forwarded-for"] == [b"5.5.5.5"]
