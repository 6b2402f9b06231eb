"""Session 30 cross-feature review (X3): today's features in combination, and three
left-overs -- the auth subrequest's answer head bounded by the location's
``proxy-buffer-size``, the Host of a request without one on every try, and ``$server_name``
of a ``from-to-www-redirect`` twin host. Through the sans-IO core (``Proxy.connection``)."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import h11
import pytest

from ingresslib import Router, parse_manifests
from ingresslib._accesslog import access_fields
from ingresslib._logformat import compile_format
from ingresslib.proxy import ProxySettings

from _proxy_harness import (FakeRouter, FakeUpstream, ProxyPair, Reply, Route, ingress_yaml, ok,
                            status_of, web_service_yaml)

P = "nginx.ingress.kubernetes.io/"
AUTH = ("10.5.0.1", 4180)
WEB = ("10.0.0.1", 8080)
WEB2 = ("10.0.0.2", 8080)
URL = "http://10.5.0.1:4180/oauth2/auth"
ALLOW = b"HTTP/1.1 200 OK\r\nX-User: alice\r\nContent-Length: 0\r\n\r\n"


def _auth_pair(reply: bytes, annotations: dict[str, str] | None = None,
               **kw: Any) -> ProxyPair:
    def app(request: h11.Request, data: bytes, up: FakeUpstream) -> Reply | None:
        if up.endpoint == AUTH:
            return Reply(reply)
        return ok(b"backend")
    ann = {P + "auth-url": URL, P + "auth-response-headers": "X-User"}
    ann.update(annotations or {})
    return ProxyPair([Route(annotations=ann, endpoints=[WEB])], app=app, **kw)


def _big_allow(size: int) -> bytes:
    return b"HTTP/1.1 200 OK\r\nX-Pad: " + b"p" * size + b"\r\nContent-Length: 0\r\n\r\n"


def _get(p: ProxyPair) -> int:
    return status_of(p.send(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n"))


# ------------------------------------------------------------------ auth head x proxy-buffer-size
def test_auth_answer_head_past_proxy_buffer_size_is_500(
        caplog: pytest.LogCaptureFixture) -> None:
    # nginx.tmpl's auth location: "proxy_buffer_size {{ $location.Proxy.BufferSize }}" (4k by
    # default): a 5 KB auth answer head is "upstream sent too big header", the subrequest
    # fails and auth_request answers 500; the backend gets nothing. It was read up to 64 KiB.
    p = _auth_pair(_big_allow(5000))
    with caplog.at_level(logging.ERROR, logger="ingresslib.proxy"):
        assert _get(p) == 500
    assert not [u for u in p.upstreams if u.endpoint == WEB]
    assert "upstream sent too big header" in caplog.text
    assert "proxy-buffer-size 4096" in caplog.text and '"10.5.0.1:4180"' in caplog.text


def test_auth_answer_head_bounded_by_the_location_proxy_buffer_size() -> None:
    # The location's proxy-buffer-size, annotation or ConfigMap, is the auth answer's bound.
    assert _get(_auth_pair(_big_allow(5000), {P + "proxy-buffer-size": "8k"})) == 200
    assert _get(_auth_pair(_big_allow(5000),
                           settings=ProxySettings(proxy_buffer_size=8192))) == 200
    assert _get(_auth_pair(_big_allow(1500), {P + "proxy-buffer-size": "1k"})) == 500
    assert _get(_auth_pair(_big_allow(500), {P + "proxy-buffer-size": "1k"})) == 200


def test_auth_answer_head_in_pieces_past_proxy_buffer_size_is_500() -> None:
    # A head trickled in many reads: the reader's incomplete-head limit is the same bound.
    p = _auth_pair(b"")  # (silent: the answer is sent by hand below)

    def app(request: h11.Request, data: bytes, up: FakeUpstream) -> Reply | None:
        return None if up.endpoint == AUTH else ok(b"backend")
    p.app = app
    p.send(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
    up = [u for u in p.upstreams if u.endpoint == AUTH][0]
    out = p.upstream_send(up, b"HTTP/1.1 200 OK\r\n")
    for _ in range(6):
        out += p.upstream_send(up, b"X-Pad: " + b"q" * 990 + b"\r\n")
        if out:
            break
    assert status_of(out) == 500
    assert not [u for u in p.upstreams if u.endpoint == WEB]


def test_auth_early_hints_each_within_proxy_buffer_size_pass() -> None:
    # Each head by itself (nginx moves what follows a 1xx to its buffer's start): two 3 KB
    # 103s before a small 200 pass a 4k buffer; the heads together stay bounded (64 KiB).
    hint = b"HTTP/1.1 103 Early Hints\r\nLink: " + b"l" * 3000 + b"\r\n\r\n"
    assert _get(_auth_pair(hint * 2 + ALLOW)) == 200
    assert _get(_auth_pair(hint * 25 + ALLOW)) == 500


def test_auth_keepalive_answer_body_chunk_line_is_no_head() -> None:
    # auth-keepalive reads the answer's body: a chunk line longer than proxy-buffer-size
    # (a chunk extension) is body, bounded as a backend's (BODY_LINE_LIMIT), not the head's.
    body = b"5;ext=" + b"e" * 2000 + b"\r\nhello\r\n0\r\n\r\n"
    reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    assert _get(_auth_pair(reply, {P + "auth-keepalive": "4",
                                   P + "proxy-buffer-size": "1k"})) == 200


# ------------------------------------------------------------------ Host of a request without one
class _RepickRouter(FakeRouter):
    """Picks ``WEB`` with the head, ``WEB2`` once a buffered body is whole (``repick``)."""

    def repick(self, decision: Any, method: str, host: str, path: str, headers: Any,
               client_ip: str | None, query: str | None = None) -> Any:
        return dataclasses.replace(decision, endpoint=WEB2)


def _host_sent(up: FakeUpstream) -> list[bytes]:
    return [v for n, v in up.requests[-1][0].headers if n == b"host"]


def test_request_without_host_sends_each_tries_endpoint_on_retry() -> None:
    # HTTP/1.0 without Host: ingresslib sends the endpoint's ip:port (README's divergences).
    # The head was built once for the first endpoint: a retry to the next one (its connect
    # refused, proxy-next-upstream "error") sent the first one's.
    p = ProxyPair([Route(endpoints=[WEB, WEB2])], refuse=[WEB])
    out = p.send(b"GET /a HTTP/1.0\r\n\r\n")
    assert status_of(out) == 200
    (up,) = [u for u in p.upstreams if u.endpoint == WEB2]
    assert _host_sent(up) == [b"10.0.0.2:8080"]


def test_request_without_host_sends_the_repicked_endpoint() -> None:
    # proxy-request-buffering "on": the endpoint is chosen again once the body is whole
    # (Router.repick); the Host sent is that endpoint's, not the head's.
    router = _RepickRouter([Route(endpoints=[WEB, WEB2],
                                  annotations={P + "proxy-request-buffering": "on"})])
    p = ProxyPair(router=router)
    out = p.send(b"POST /a HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello")
    assert status_of(out) == 200
    (up,) = p.upstreams
    assert up.endpoint == WEB2 and _host_sent(up) == [b"10.0.0.2:8080"]
    assert up.requests[-1][1] == b"hello"


def test_request_with_host_or_upstream_vhost_keeps_its_host_on_retry() -> None:
    p = ProxyPair([Route(endpoints=[WEB, WEB2])], refuse=[WEB])
    assert status_of(p.send(b"GET /a HTTP/1.0\r\nHost: app.test\r\n\r\n")) == 200
    assert _host_sent(p.upstreams[-1]) == [b"app.test"]
    p = ProxyPair([Route(endpoints=[WEB, WEB2],
                         annotations={P + "upstream-vhost": "inner.test"})], refuse=[WEB])
    assert status_of(p.send(b"GET /a HTTP/1.0\r\n\r\n")) == 200
    assert _host_sent(p.upstreams[-1]) == [b"inner.test"]


# ------------------------------------------------------------------ custom-http-errors combinations
W2_YAML = web_service_yaml().replace("web", "web2").replace("10.0.0.1", "10.0.1.1")


def _error_page_pair(page_head_pad: int, extra: dict[str, str] | None = None,
                     host: str = "") -> tuple[ProxyPair, list[tuple[Any, list[bytes]]]]:
    """A rule whose backend answers 503, intercepted (custom-http-errors), the page fetched
    from the default-backend Service web2 (10.0.1.1), its head padded by ``page_head_pad``."""
    seen: list[tuple[Any, list[bytes]]] = []

    def app(request: h11.Request, body: bytes, up: FakeUpstream) -> Reply:
        seen.append((up.endpoint, [v for n, v in request.headers if n == b"host"]))
        if up.endpoint[0] == "10.0.0.1":
            return Reply(b"HTTP/1.1 503 Bad\r\nContent-Length: 3\r\n\r\nbad")
        return Reply(b"HTTP/1.1 404 NF\r\nX-Pad: " + b"b" * page_head_pad
                     + b"\r\nContent-Length: 4\r\n\r\npage")
    ann = {P + "custom-http-errors": "503,502", P + "default-backend": "web2"}
    ann.update(extra or {})
    docs = ingress_yaml("a", host, ann) + web_service_yaml(1) + W2_YAML
    return ProxyPair(router=Router(parse_manifests(docs)), app=app), seen


def test_error_page_of_a_request_without_host_gets_the_default_backends_endpoint() -> None:
    # The page's fetch goes to web2's endpoint: its Host is that endpoint's, not the
    # intercepted try's (10.0.0.1:80).
    p, seen = _error_page_pair(10)
    out = p.send(b"GET / HTTP/1.0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 404 ") and out.endswith(b"page")
    assert seen == [(("10.0.0.1", 80), [b"10.0.0.1:80"]), (("10.0.1.1", 80), [b"10.0.1.1:80"])]


def test_error_page_with_upstream_vhost_never_sends_an_empty_host() -> None:
    # upstream-vhost: the named location's Host is $best_http_host, not the vhost; a request
    # without Host had an empty "Host:" sent (a backend answers that 400). Now the endpoint's,
    # as for any request without Host.
    p, seen = _error_page_pair(10, {P + "upstream-vhost": "inner.test"})
    out = p.send(b"GET / HTTP/1.0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 404 ") and out.endswith(b"page")
    assert seen == [(("10.0.0.1", 80), [b"inner.test"]), (("10.0.1.1", 80), [b"10.0.1.1:80"])]


def test_error_page_head_past_proxy_buffer_size_is_the_proxys_502() -> None:
    # proxy-buffer-size x custom-http-errors: the page's head past 4k is "upstream sent too
    # big header" in the named location (proxy_intercept_errors off there, no recursion):
    # nginx's own 502, logged "503 : 502" after the intercepted try.
    p, _ = _error_page_pair(5000, host="a.test")
    out = p.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert status_of(out) == 502 and b"bbbb" not in out
    f = access_fields(p.records[-1], 0.0)
    assert f["upstream_addr"] == "10.0.0.1:80 : 10.0.1.1:80"
    assert f["upstream_status"] == "503 : 502"


# ------------------------------------------------------------------ guards found right
def test_buffered_request_repicked_is_logged_and_observed_at_its_endpoint() -> None:
    # proxy-request-buffering x proxy-buffering x repick: $upstream_addr and the balancer's
    # observation are the endpoint the body went to, and the response may be read ahead.
    router = _RepickRouter([Route(endpoints=[WEB, WEB2], annotations={
        P + "proxy-request-buffering": "on", P + "proxy-buffering": "on"})])
    p = ProxyPair(router=router)
    out = p.send(b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
    assert status_of(out) == 200
    rec = p.records[-1]
    assert rec.upstreams == (WEB2,) and router.observed == [(WEB2, True)]
    assert p.conn.response_buffer > 0


def test_too_big_head_with_invalid_header_retry_logs_both_tries() -> None:
    def app(request: h11.Request, body: bytes, up: FakeUpstream) -> Reply:
        if up.endpoint == WEB:
            return Reply(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 5000
                         + b"\r\nContent-Length: 2\r\n\r\nok")
        return ok(b"second")
    p = ProxyPair([Route(endpoints=[WEB, WEB2], annotations={
        P + "proxy-next-upstream": "error timeout invalid_header"})], app=app)
    out = p.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status_of(out) == 200 and out.endswith(b"second")
    assert p.records[-1].upstream_statuses == (502, 200)
    # Without invalid_header: the proxy's 502, its own head in $sent_http_*.
    fmt = "$upstream_addr|$upstream_status|$sent_http_content_type|$status"
    p = ProxyPair([Route(endpoints=[WEB, WEB2])], app=app,
                  settings=ProxySettings(log_format_upstream=fmt))
    assert status_of(p.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")) == 502
    rec = p.records[-1]
    line = compile_format(fmt, "default").render(rec, access_fields(rec, 0.0), 0.0)
    assert line == "10.0.0.1:8080|502|text/plain; charset=utf-8|502"


def test_www_twin_server_name_is_the_twin_host() -> None:
    # nginx.tmpl writes a server block for a from-to-www-redirect twin ("server_name
    # {{ $redirect.From }}"): $server_name is the twin host, not the catch-all's "_".
    docs = ingress_yaml("a", "app.test", {P + "from-to-www-redirect": "true"}) \
        + web_service_yaml(1)
    fmt = "$server_name $status"
    for host, want in (("www.app.test", "www.app.test 308"), ("WWW.App.Test:80",
                                                               "www.app.test 308"),
                       ("app.test", "app.test 200")):
        p = ProxyPair(router=Router(parse_manifests(docs)),
                      settings=ProxySettings(log_format_upstream=fmt))
        p.send(f"GET /x HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        rec = p.records[-1]
        assert compile_format(fmt, "default").render(rec, access_fields(rec, 0.0), 0.0) == want


# ------------------------------------------------------------------ read-ahead x shutdown (server)
@pytest.mark.asyncio
async def test_shutdown_with_a_response_held_for_a_slow_client_is_bounded_and_frees_budget(
        ) -> None:
    # proxy-buffering "on" x worker-shutdown-timeout: a response read ahead (its upstream
    # pooled) and held for a client that reads nothing; the graceful stop waits at most its
    # bound, then aborts, and the read-ahead budget is given back whole.
    import asyncio
    import socket

    from tests._server_helpers import StubRouter
    from tests._upstream_helpers import start_proxy

    body = b"b" * (6 << 20)  # (past what the kernel buffers of a loopback pair take)

    async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while True:
                await r.readuntil(b"\r\n\r\n")
                w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                await w.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            w.close()

    srv = await asyncio.start_server(serve, "127.0.0.1", 0)
    uport = srv.sockets[0].getsockname()[1]
    server, port = await start_proxy(StubRouter([("127.0.0.1", uport)], annotations={
        P + "proxy-buffering": "on"}))
    loop = asyncio.get_running_loop()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /big HTTP/1.1\r\nHost: a.test\r\n\r\n")
    s.setblocking(False)
    try:
        for _ in range(300):
            if server.pool.idle_count() == 1:
                break
            await asyncio.sleep(0.01)
        assert server.pool.idle_count() == 1 and server.ahead_held > 0
        t0 = loop.time()
        await server.shutdown(0.3)
        assert loop.time() - t0 < 1.5
        assert server.ahead_held == 0 and not server.connections and not server.lingering
    finally:
        s.close()
        srv.close()
        await srv.wait_closed()


def test_request_without_host_to_an_ipv6_endpoint_sends_a_bracketed_host() -> None:
    # "fd00::1:8080" is no valid Host (RFC 9110 §7.2: an IP-literal in brackets).
    v6 = ("fd00::1", 8080)
    p = ProxyPair([Route(endpoints=[v6])])
    assert status_of(p.send(b"GET /a HTTP/1.0\r\n\r\n")) == 200
    assert _host_sent(p.upstreams[-1]) == [b"[fd00::1]:8080"]
