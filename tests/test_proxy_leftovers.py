"""Leftovers of the session-11 desync review, and the response headers nginx hides.

Each test says whether it found a defect ("DEFECT", failed before the fix in the same change)
or guards behaviour that was already right ("guard").
"""

from __future__ import annotations

import asyncio
import email.utils
import gc
import os
import time
import warnings
from typing import Any

import h11
import pytest

from ingresslib.proxy import CloseUpstream, ProxySettings, RequestRecord
from ingresslib.proxy import _server as server_mod
from ingresslib.proxy._server import ProxyServer

from _proxy_harness import CLOCK, DATE, FakeUpstream, ProxyPair, Reply, status_of
from tests._server_helpers import Client, StubRouter

EP = ("10.0.0.1", 8080)
GET = b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n"
#: Over the 1 MiB the core holds behind a request in flight (``_PIPELINE_LIMIT``).
FLOOD = b"GET /next HTTP/1.1\r\nHost: example.test\r\n\r\n" * 30000


# =========================================================================================
# 1. The pipelining limit ends the request in flight: it gets its record
# =========================================================================================


def _silent(r: h11.Request, b: bytes, u: FakeUpstream) -> Reply | None:
    return None


def test_defect_pipelining_limit_records_the_request_in_flight() -> None:
    # DEFECT (fixed): past 1 MiB pipelined behind a request whose upstream had not answered,
    # the core closed the client connection and nothing else: no RequestDone for the request
    # in flight (the access log and the metrics never saw it), and no CloseUpstream for its
    # upstream connection (left to the driver). Every request that started gets exactly one
    # record; its status is 0 (none was sent), as for ``abort``.
    assert len(FLOOD) > 1024 * 1024
    pair = ProxyPair(app=_silent)
    pair.send(GET)
    assert len(pair.upstreams) == 1 and pair.records == []
    pair.send(FLOOD)
    assert pair.closed
    assert [(r.status, r.path, r.upstreams, r.upstream_statuses) for r in pair.records] == [
        (0, "/", (EP,), (None,))]
    assert pair.closes == [CloseUpstream(pair.opens[0].conn_id, False)]
    assert pair.received == b""


def test_defect_pipelining_limit_after_the_response_began_records_its_status() -> None:
    # DEFECT (fixed): the same with the response under way: the record has the status sent
    # and the bytes sent so far (nginx: the status of a response begun stays the logged one).
    pair = ProxyPair(app=_silent)
    pair.send(GET)
    begun = pair.upstream_send(pair.upstreams[0],
                               b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    assert status_of(begun) == 200 and begun.endswith(b"abc")
    pair.send(FLOOD)
    assert pair.closed
    (rec,) = pair.records
    assert (rec.status, rec.bytes_out, rec.upstream_statuses) == (200, len(begun), (200,))
    assert [c.reuse for c in pair.closes] == [False]


def test_defect_pipelining_limit_while_connecting_cancels_the_connect() -> None:
    # DEFECT (fixed): the request in flight waits for its connect: the connect is cancelled
    # (CloseUpstream for the pending id) and the request recorded, with no status of its own
    # for the try.
    pair = ProxyPair(defer=[EP])
    pair.send(GET)
    assert pair.pending == [pair.opens[0].conn_id]
    pair.send(FLOOD)
    assert pair.closed
    assert [(r.status, r.upstream_statuses) for r in pair.records] == [(0, (None,))]
    assert pair.closes == [CloseUpstream(pair.opens[0].conn_id, False)]


# =========================================================================================
# 2. An upstream connect cancelled as it completes leaks no socket (asyncio server)
# =========================================================================================


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.network
@pytest.mark.asyncio
@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts /proc/self/fd (Linux)")
@pytest.mark.parametrize("moment", ["connection_made, waiter pending",
                                    "waiter done, task not resumed"])
async def test_guard_connect_cancelled_as_it_completes_closes_its_socket(
        moment: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # guard: the client goes away (``abort``: the core's CloseUpstream for a pending connect,
    # the server cancels the connect task) at the two moments a cancellation can meet a
    # connect that has already made its socket: while the transport is being set up
    # (``connection_made`` ran, the connect's last future not yet done), and once that
    # future is done but the task has not resumed (``Task.cancel`` then throws
    # CancelledError into the coroutine at its ``await``). In both asyncio closes the
    # transport itself (base_events._create_connection_transport: "try: await waiter
    # except: transport.close(); raise"), and ``_connect`` has no other await after the
    # connect: no socket is left open, none is pooled, the upstream sees the close, and the
    # request has its one record.
    upstream_eof = asyncio.Event()
    accepted: list[asyncio.StreamWriter] = []

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        accepted.append(w)
        try:
            await r.read()
            upstream_eof.set()
        finally:
            w.close()

    up_srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    ep = ("127.0.0.1", up_srv.sockets[0].getsockname()[1])
    records: list[RequestRecord] = []
    server = ProxyServer(StubRouter([ep]), on_record=records.append)
    await server.start(("127.0.0.1", 0))
    port = server.addresses[0][2]
    loop = asyncio.get_running_loop()
    seen: list[bool] = []
    original = server_mod._Upstream.connection_made

    def connection_made(self: Any, transport: asyncio.BaseTransport) -> None:
        original(self, transport)
        (down,) = server.connections
        (task,) = down.connecting.values()

        def client_gone() -> None:
            # Which moment this is: the future the connect task waits on, done or not.
            waiter = getattr(task, "_fut_waiter")  # (asyncio's, C and Python tasks)
            seen.append(waiter is not None and waiter.done())
            down.abort()

        if moment.startswith("connection_made"):
            client_gone()
        else:
            loop.call_soon(client_gone)  # runs after the waiter's result is set

    monkeypatch.setattr(server_mod._Upstream, "connection_made", connection_made)
    gc.collect()
    base = _open_fds()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(GET)
            assert await reader.read() == b""  # closed, no answer (nginx's 499 case)
            writer.close()
            await writer.wait_closed()
            for _ in range(300):  # up to 3 s for the closes to land
                if upstream_eof.is_set() and _open_fds() <= base:
                    break
                await asyncio.sleep(0.01)
            gc.collect()
        assert upstream_eof.is_set(), "the upstream connection was never closed"
        assert seen == [not moment.startswith("connection_made")]
        assert len(accepted) == 1  # the connect did complete
        assert _open_fds() == base
        assert server.pool.idle_count() == 0
        assert [(r.status, r.upstream_statuses) for r in records] == [(0, (None,))]
        assert not [w for w in caught if issubclass(w.category, ResourceWarning)]
    finally:
        await server.shutdown()
        up_srv.close()
        await up_srv.wait_closed()


# =========================================================================================
# 3. Response headers nginx hides: Date (ours instead), Server, X-Pad, X-Accel-*
# =========================================================================================

#: Every header in nginx's ngx_http_proxy_hide_headers[] (ngx_http_proxy_module.c): "Date",
#: "Server", "X-Pad", "X-Accel-Expires", "X-Accel-Redirect", "X-Accel-Limit-Rate",
#: "X-Accel-Buffering", "X-Accel-Charset".
HIDDEN = (b"Date: Mon, 07 Nov 1994 08:49:37 GMT\r\nServer: Apache/2.4.1 (Unix)\r\n"
          b"X-Pad: avoid browser bug\r\nX-Accel-Expires: 60\r\n"
          b"X-Accel-Redirect: /internal/secret\r\nX-Accel-Limit-Rate: 1024\r\n"
          b"X-Accel-Buffering: no\r\nX-Accel-Charset: utf-8\r\n")


def _head_lines(out: bytes) -> list[bytes]:
    return out.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]


def _with_hidden(r: h11.Request, b: bytes, u: FakeUpstream) -> Reply:
    return Reply(b"HTTP/1.1 200 OK\r\n" + HIDDEN + b"X-Kept: 1\r\nContent-Length: 2\r\n\r\nhi")


def test_defect_upstream_date_is_replaced_by_ours() -> None:
    # DEFECT (fixed, a divergence from ingress-nginx): the upstream's Date went to the client
    # as sent. nginx hides it (ngx_http_proxy_hide_headers: "Date", ...) and its header filter
    # writes its own (ngx_http_header_filter_module.c: "if (r->headers_out.date == NULL) {
    # b->last = ngx_cpymem(b->last, "Date: ", ...); b->last = ngx_cpymem(b->last,
    # ngx_cached_http_time.data, ...)"); ingress-nginx passes no proxy_pass_header Date. Now
    # the proxy sends its own Date, once, whatever the upstream's said.
    pair = ProxyPair(app=_with_hidden, clock=lambda: CLOCK)
    out = pair.send(GET)
    assert status_of(out) == 200 and out.endswith(b"\r\n\r\nhi")
    assert _head_lines(out) == [b"X-Kept: 1", b"Content-Length: 2", DATE[:-2]]


def test_defect_upstream_date_named_in_connection_or_twice_gives_one_date() -> None:
    # DEFECT (fixed): two upstream Date lines both reached the client; hop-by-hop or not,
    # the client gets ours only.
    for extra in (b"Date: Mon, 07 Nov 1994 08:49:37 GMT\r\nDate: Tue, 08 Nov 1994 08:49:37 GMT\r\n",
                  b"Connection: date\r\nDate: Mon, 07 Nov 1994 08:49:37 GMT\r\n"):
        reply = Reply(b"HTTP/1.1 200 OK\r\n" + extra + b"Content-Length: 2\r\n\r\nhi")

        def app(r: h11.Request, b: bytes, u: FakeUpstream, reply: Reply = reply) -> Reply:
            return reply

        pair = ProxyPair(app=app, clock=lambda: CLOCK)
        lines = _head_lines(pair.send(GET))
        assert [x for x in lines if x.lower().startswith(b"date:")] == [DATE[:-2]], extra


def test_guard_without_a_clock_the_upstream_date_passes_and_none_is_added() -> None:
    # guard: ``Proxy(clock=None)`` adds no Date (the driver writes its own, or none is
    # wanted): the upstream's is then the only one the client can get, and it passes.
    pair = ProxyPair(app=_with_hidden)
    assert _head_lines(pair.send(GET)) == [b"Date: Mon, 07 Nov 1994 08:49:37 GMT", b"X-Kept: 1",
                                           b"Content-Length: 2"]
    pair = ProxyPair(app=lambda r, b, u: Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
    assert _head_lines(pair.send(GET)) == [b"Content-Length: 0"]


@pytest.mark.parametrize("tls", [False, True])
def test_guard_no_server_header_of_ours_or_the_upstreams(tls: bool) -> None:
    # guard: ingress-nginx's default is no Server header at all: nginx.tmpl "server_tokens {{
    # if $cfg.ShowServerTokens }}on{{ else }}off{{ end }}; {{ if not $cfg.ShowServerTokens }}
    # more_clear_headers Server; {{ end }}" (server-tokens defaults to false since
    # kubernetes/ingress-nginx#6190), which also clears a backend's Server passed by "{{ if
    # $cfg.AllowBackendServerHeader }} proxy_pass_header Server; {{ end }}"
    # (kubernetes/ingress-nginx#6733: allow-backend-server-header works only with
    # server-tokens on). Proxied responses, local answers, redirects: no Server.
    pair = ProxyPair(app=_with_hidden, tls=tls, clock=lambda: CLOCK)
    out = pair.send(GET)
    names = [x.split(b":", 1)[0].lower() for x in _head_lines(out)]
    assert b"server" not in names and b"x-pad" not in names
    assert not [n for n in names if n.startswith(b"x-accel-")]
    assert names.count(b"date") == 1 and b"x-kept" in names
    for request, status in ((b"GET / HTTP/1.1\r\nHost: nowhere.test\r\n\r\n", 404),
                            (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400)):
        local = ProxyPair([], tls=tls, clock=lambda: CLOCK).send(request)
        names = [x.split(b":", 1)[0].lower() for x in _head_lines(local)]
        assert status_of(local) == status and b"server" not in names
        assert names[0] == b"date"


def test_guard_allow_backend_server_header_alone_changes_nothing() -> None:
    # guard: ``allow-backend-server-header`` alone changes nothing in ingress-nginx (above:
    # more_clear_headers Server): since session 29 it is a ProxySettings field (with
    # server-tokens, tests/test_server_keys_s29.py), and alone the ConfigMap reader says so.
    from ingresslib._config import parse_config_data

    cfg = parse_config_data({"allow-backend-server-header": "true"})
    assert cfg.settings.allow_backend_server_header and not cfg.settings.server_tokens
    assert cfg.warnings == ('ConfigMap: data.allow-backend-server-header: has no effect without '
                            'server-tokens: "true" (ingress-nginx clears every Server header '
                            'otherwise: more_clear_headers Server)',)


@pytest.mark.network
@pytest.mark.asyncio
async def test_defect_the_server_sends_its_own_date_for_a_proxied_response() -> None:
    # DEFECT (fixed), end to end: ProxyServer's core has the wall clock; an upstream's stale
    # Date used to reach the client, now the client gets the current time.
    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while True:
                await r.readuntil(b"\r\n\r\n")
                w.write(b"HTTP/1.1 200 OK\r\n" + HIDDEN + b"Content-Length: 2\r\n\r\nhi")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            w.close()

    up = await asyncio.start_server(handle, "127.0.0.1", 0)
    ep = ("127.0.0.1", up.sockets[0].getsockname()[1])
    server = ProxyServer(StubRouter([ep]))
    await server.start(("127.0.0.1", 0))
    c = await Client.open(server.addresses[0][2])
    try:
        before = time.time()
        r = await c.get("a.test")
        assert (r.status, r.body) == (200, b"hi")
        sent = email.utils.parsedate_to_datetime(r.headers["date"]).timestamp()
        assert before - 1 <= sent <= time.time() + 1, r.headers["date"]
        assert not {"server", "x-pad"} & set(r.headers)
        assert not [n for n in r.headers if n.startswith("x-accel-")]
    finally:
        await c.close()
        await server.shutdown()
        up.close()
        await up.wait_closed()
