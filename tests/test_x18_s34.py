"""Session 34 review (x18): retries and upstream timeouts against nginx (ngx_http_upstream.c
``ngx_http_upstream_next``, ``ngx_http_upstream_test_next``, ``ngx_http_upstream_send_request``)
and ingress-nginx (nginx.tmpl ``proxy_next_upstream``, balancer.lua).

Defect found and fixed (test first, then the fix):

- ``proxy-read-timeout`` ran while the upstream had not yet taken the request. nginx arms the
  read timer only once the whole request is written (ngx_http_upstream_send_request: on
  ``NGX_AGAIN`` only ``ngx_add_timer(c->write, u->conf->send_timeout)``; on ``NGX_OK``
  "if (!u->request_body_sent) { u->request_body_sent = 1; ... ngx_add_timer(c->read,
  u->conf->read_timeout);"): until then ``proxy-send-timeout`` alone bounds the wait. The core
  armed ``UPSTREAM_READ`` as soon as it handed the whole request to the driver, so a body held
  whole (``proxy-request-buffering: "on"``) and written to an upstream that reads it slower
  than ``proxy-read-timeout`` (but within ``proxy-send-timeout`` between two writes) got a 504
  (and a retry) where nginx sends the response. The asyncio driver now restarts that deadline
  while the upstream's write buffer is full (``_timer_fired``) and when it drains below its
  low-water mark (``resume_client``): the read deadline counts from the request being taken
  (what the kernel and asyncio's low-water mark still hold is taken as sent). Not in a tunnel,
  nor once the upstream sent a byte (a response begun: nginx's read timeouts between two reads).

Checked and found right (the core through the in-memory harness, the Router, the access log
fields; nothing to change):

- ``proxy-next-upstream-tries`` counts the first try (3: three connects, three endpoints), for
  the ``http_*`` conditions too (test_next's ``u->peer.tries > 1``); ``0`` is no limit (every
  endpoint once: 5 of 5 refused, 502); ``1`` is no retry.
- ``off`` stops every retry; ``timeout`` alone does not retry a refused connect.
- the status after the last try is that try's: 502 for a refused connect or an invalid head,
  504 for a connect or read timeout, whatever the earlier tries were (``502, 504`` -> 504,
  ``504, 502`` -> 502); ``$upstream_status`` lists each try's (``502, 504, 200``) in step with
  ``$upstream_addr`` (``10.0.0.1:80, 10.0.0.2:80, 10.0.0.3:80``) and
  ``$upstream_response_length`` (``0, 0, 5``); a retried http_503/404 keeps its status there.
- a POST (sent) is not retried without ``non_idempotent`` (read timeout, http_502), with it it
  is, body replayed; connect failures are retried for any method (nothing was sent).
- no retry once the response began: a head then a cut body closes the client connection (the
  record keeps 200, one try).
- a close mid-head, after a ``100 Continue`` or a ``103`` head from the upstream is an ``error``
  and retried (nothing reached the client; 1xx heads are not forwarded): a guard below.
- a client's ``Expect: 100-continue``: one ``100 Continue`` then the retried try's answer.
- ``proxy-next-upstream-timeout`` counts from the first try's start; the read timeout of a
  trickled head is the whole head's (nginx does not re-arm it on a partial head).
- a body streamed while the first try answers http_503 early: the retry gets the bytes held
  and the rest; a ``proxy-request-buffering: "on"`` chunked body is sent again with its
  ``Content-Length``; the X-Request-ID is the same on every try.
- a canary's retry stays in the canary's backend (ingress-nginx caches the balancer in
  ``ngx.ctx.balancer``, balancer.lua ``get_balancer``): both canary endpoints refused -> 502,
  the main backend never tried (a guard below, over a real Router).
- the asyncio driver's other timers: ``proxy-send-timeout`` between two writes (session 22's
  test), ``proxy-connect-timeout`` around the TCP connect and TLS handshake together (as
  nginx's timer, armed once for both), a read timeout once the request is taken (a guard
  below: 504 after ``proxy-read-timeout``, not ``proxy-send-timeout``).
- cookie affinity: the retry of a session whose endpoint fails goes to another endpoint and
  sets no new cookie (README: ingresslib never retries a tried endpoint; ingress-nginx's
  sticky balancer returns the cookie's endpoint again).
- IngressASGI has no retries or upstream timeouts: the app is the endpoint (docs/asgi.md).

Noticed and left alone (documented choices, or beyond this review): ingresslib's default
``proxy-request-buffering`` is "off" yet bodies up to 1 MiB are replayed by a retry, as nginx's
"on" does. (nginx's explicit "off" (``request_body_no_buffering``) retries no sent request
whose body was still arriving: since session 37 an explicit "off", the annotation or the
ConfigMap key, does the same, tests/test_x62_s37.py and tests/test_x63_s37.py. The keep-alive
race retry ran with ``proxy-next-upstream: off`` too: since session 35 it follows the mask,
tests/test_review_s19g.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

import h11
import pytest

from ingresslib import Router, parse_manifests
from ingresslib.proxy._server import ProxyServer
from tests._proxy_harness import (FakeUpstream, ProxyPair, Reply, Route, ingress_yaml, ok,
                               service_yaml, status_of)
from tests._server_helpers import StubRouter
from tests._upstream_helpers import start_proxy

#: Larger than what loopback's kernel buffers and asyncio's write buffer limit take together,
#: so that the proxy's write buffer to the upstream stays full while the upstream reads nothing.
_BODY = 8 << 20


def _upstream_full(server: ProxyServer) -> bool:
    return any(getattr(c, "upstream_full", False) for c in server.connections)


async def _slow_reader(server: ProxyServer, lsock: socket.socket, pause: float,
                       got: list[int], full: list[bool], think: float = 0.0) -> None:
    """Accept one connection, read its head, then nothing for ``pause`` seconds (``full``: the
    proxy's write buffer to it was full meanwhile), then the whole body, and answer 200
    ``think`` seconds later."""
    loop = asyncio.get_running_loop()
    conn, _ = await loop.sock_accept(lsock)
    with conn:
        conn.setblocking(False)
        # Small kernel buffers on the proxy's side too (Linux grows them to megabytes on
        # loopback), so that what this upstream does not read stays in the proxy's buffer.
        for c in server.connections:
            for u in c.upstreams.values():
                u.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
        data = b""
        while b"\r\n\r\n" not in data:
            d = await loop.sock_recv(conn, 65536)
            if not d:
                return
            data += d
        n = len(data.split(b"\r\n\r\n", 1)[1])
        await asyncio.sleep(pause)
        full.append(_upstream_full(server))
        while n < _BODY:
            d = await loop.sock_recv(conn, 1 << 20)
            if not d:
                return
            n += len(d)
        got.append(n)
        await asyncio.sleep(think)
        await loop.sock_sendall(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        with contextlib.suppress(ConnectionError):
            await loop.sock_recv(conn, 1)


async def _upload_through(pause: float, think: float, read_timeout: float
                          ) -> tuple[bytes, list[int], list[bool], list[Any]]:
    """A ``_BODY`` PUT through a proxy with ``proxy-request-buffering: "on"`` to
    ``_slow_reader``: the response head, the body bytes the upstream got, whether the proxy's
    buffer to it was full during ``pause``, the records."""
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen()
    lsock.setblocking(False)
    uport = lsock.getsockname()[1]
    records: list[Any] = []
    server, port = await start_proxy(
        StubRouter([("127.0.0.1", uport)]), proxy_request_buffering="on",
        proxy_read_timeout=read_timeout, proxy_send_timeout=4, client_body_timeout=10,
        proxy_body_size=0, on_record=records.append)
    got: list[int] = []
    full: list[bool] = []
    up_task = asyncio.create_task(_slow_reader(server, lsock, pause, got, full, think))
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        w.write(b"PUT /up HTTP/1.1\r\nHost: a.test\r\nContent-Length: %d\r\n\r\n" % _BODY)
        w.write(b"x" * _BODY)
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 8)
        return head, got, full, records
    finally:
        w.transport.abort()
        await server.shutdown(1)
        up_task.cancel()
        with contextlib.suppress(BaseException):
            await up_task
        lsock.close()


@pytest.mark.network
@pytest.mark.asyncio
async def test_defect_read_timeout_counts_from_the_upstream_taking_the_request() -> None:
    # The upstream takes nothing for 1.6 s, then the whole body at once, and answers 1 s later:
    # 2.6 s after the hand-over, but 1 s after it took the request, within proxy_read_timeout
    # (2 s) counted from there, as nginx counts it. Before the fix: 504 at 2 s.
    head, got, full, records = await _upload_through(1.6, 1.0, 2)
    assert head.startswith(b"HTTP/1.1 200 "), head
    assert full == [True] and got == [_BODY]
    assert [rec.upstream_statuses for rec in records] == [(200,)]


@pytest.mark.network
@pytest.mark.asyncio
async def test_defect_read_timeout_waits_until_the_upstream_took_the_request() -> None:
    # proxy-request-buffering "on": the body is read whole, then written to the upstream,
    # which reads nothing for 1.5 s (less than proxy_send_timeout, 4 s) and then all of it.
    # nginx's proxy_read_timeout (1 s) starts only once the request is written whole
    # (ngx_http_upstream_send_request), so the client gets the upstream's 200. Before the fix
    # the read deadline ran from the hand-over: 504 after 1 s, the upstream still reading.
    head, got, full, records = await _upload_through(1.5, 0.0, 1)
    assert head.startswith(b"HTTP/1.1 200 "), head
    assert full == [True]  # the upstream had not taken the request for 1.5 s
    assert got == [_BODY]
    assert [rec.upstream_statuses for rec in records] == [(200,)]


@pytest.mark.network
@pytest.mark.asyncio
async def test_guard_read_timeout_still_runs_once_the_request_is_taken() -> None:
    # The other side of the fix: an upstream that takes the whole request and then answers
    # nothing still gets its 504 after proxy_read_timeout, not after proxy_send_timeout.
    loop = asyncio.get_running_loop()
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen()
    lsock.setblocking(False)
    uport = lsock.getsockname()[1]
    server, port = await start_proxy(
        StubRouter([("127.0.0.1", uport)]), proxy_request_buffering="on",
        proxy_read_timeout=0.5, proxy_send_timeout=30, proxy_body_size=0)
    size = 1 << 20

    async def reads_all_answers_nothing() -> None:
        conn, _ = await loop.sock_accept(lsock)
        with conn:
            conn.setblocking(False)
            with contextlib.suppress(ConnectionError):
                while await loop.sock_recv(conn, 1 << 20):
                    pass

    up_task = asyncio.create_task(reads_all_answers_nothing())
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        start = loop.time()
        w.write(b"PUT /up HTTP/1.1\r\nHost: a.test\r\nContent-Length: %d\r\n\r\n" % size)
        w.write(b"x" * size)
        head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 8)
        assert head.startswith(b"HTTP/1.1 504 "), head
        assert loop.time() - start < 5
    finally:
        w.transport.abort()
        await server.shutdown(1)
        up_task.cancel()
        with contextlib.suppress(BaseException):
            await up_task
        lsock.close()


# ---------------------------------------------------------------------- core guards
_EPS = [("10.0.0.1", 80), ("10.0.0.2", 80)]


@pytest.mark.parametrize("interim", [b"HTTP/1.1 100 Continue\r\n\r\n",
                                     b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"])
def test_guard_a_close_after_a_1xx_head_is_an_error_retried(interim: bytes) -> None:
    # A 1xx head reaches no client (SEMANTICS: 1xx other than 101 are dropped), so the
    # response has not begun: the close that follows is "upstream prematurely closed
    # connection" (NGX_HTTP_UPSTREAM_FT_ERROR), retried; the client sees the second try's 200.
    def app(r: h11.Request, b: bytes, u: FakeUpstream) -> Reply:
        return Reply(interim, close=True) if u.endpoint == _EPS[0] else ok()

    pair = ProxyPair([Route("/", endpoints=_EPS)], app=app)
    out = pair.send(b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n")
    assert out == b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    assert pair.records[0].upstream_statuses == (502, 200)
    assert pair.records[0].upstreams == tuple(_EPS)


def test_guard_a_canary_retry_stays_in_the_canary_backend() -> None:
    # ingress-nginx balancer.lua get_balancer: "if ngx.ctx.balancer then return
    # ngx.ctx.balancer end": a retry's balance() uses the balancer the request's first pick
    # chose (the canary's here), never the main backend's.
    canary = {"nginx.ingress.kubernetes.io/canary": "true",
              "nginx.ingress.kubernetes.io/canary-weight": "100"}
    router = Router(parse_manifests(
        ingress_yaml("main", "a.test") + ingress_yaml("can", "a.test", canary, service="cw")
        + service_yaml("web", ["10.0.0.1", "10.0.0.2"]) + service_yaml("cw", ["10.0.1.1", "10.0.1.2"])))
    refused = [("10.0.1.1", 80), ("10.0.1.2", 80)]
    pair = ProxyPair(router=router, refuse=refused)
    assert status_of(pair.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")) == 502
    assert sorted(o.endpoint for o in pair.opens) == refused
    assert pair.records[0].upstream_statuses == (502, 502)
