"""The asyncio server's upstream keep-alive pool (ingress-nginx ``upstream-keepalive-*``, nginx's
ngx_http_upstream_keepalive_module) against a real upstream on 127.0.0.1 that counts the
connections it accepts, and the client's liveness while the upstream works."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import socket
import ssl
import struct
import termios
from collections.abc import AsyncIterator

import pytest

from ingresslib.proxy._actions import RequestRecord
from ingresslib.proxy._server import ProxyServer, _Downstream

from _upstream_helpers import TrackedUpstream, read_to_eof, start_proxy, until
from tests._server_helpers import Client, StubRouter

pytestmark = pytest.mark.network


class _Upstream(TrackedUpstream):
    """A keep-alive HTTP/1.1 upstream: answers each GET with ``200 ok`` after ``delay`` seconds;
    counts connections accepted, requests, and the connections it saw closed by the proxy."""

    def __init__(self) -> None:
        super().__init__()
        self.accepted = 0
        self.requests = 0
        self.closed_by_peer = 0
        self.delay = 0.0

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.writers.append(w)
        try:
            while True:
                try:
                    await r.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError:
                    self.closed_by_peer += 1
                    return
                self.requests += 1
                if self.delay:
                    await asyncio.sleep(self.delay)
                w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await w.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            w.close()


@contextlib.asynccontextmanager
async def _pooled(**kw: object) -> AsyncIterator[tuple[_Upstream, ProxyServer, int,
                                                         tuple[str, int]]]:
    """An upstream and a proxy to it (settings ``kw``): yields both, the proxy's port and the
    upstream's endpoint; stops both after."""
    up = await _Upstream().start()
    ep = ("127.0.0.1", up.port)
    server, port = await start_proxy(StubRouter([ep]), **kw)
    try:
        yield up, server, port, ep
    finally:
        await server.shutdown(1)
        await up.stop()


# --- upstream-keepalive-time (nginx keepalive_time) ------------------------------------------


@pytest.mark.asyncio
async def test_keepalive_time_closes_the_connection_after_the_request_that_crosses_it() -> None:
    # nginx: "After this time is reached, the connection is closed following the subsequent
    # request processing" (ngx_http_upstream_free_keepalive_peer: "if (ngx_current_msec -
    # c->start_time > kp->conf->time) { goto invalid; }").
    async with _pooled(upstream_keepalive_time=0.3) as (up, server, port, ep):
        c = await Client.open(port)
        for _ in range(3):  # well within the limit: one connection, reused
            assert (await c.get("a.test")).status == 200
        assert up.accepted == 1 and server.pool.idle_count(ep) == 1
        up.delay = 0.4  # this request crosses the limit while in flight
        assert (await c.get("a.test")).status == 200
        # Not pooled: closed at once (the upstream sees the proxy's FIN).
        assert server.pool.idle_count(ep) == 0
        assert await until(lambda: up.closed_by_peer == 1)
        up.delay = 0.0
        assert (await c.get("a.test")).status == 200
        assert up.accepted == 2 and up.requests == 5
        await c.close()


@pytest.mark.asyncio
async def test_keepalive_time_an_idle_connection_past_it_is_not_taken_again() -> None:
    # Stricter than nginx by one request (nginx checks only on release): an idle connection
    # whose age passed keepalive_time while it waited carries no further request.
    async with _pooled(upstream_keepalive_time=0.2) as (up, server, port, ep):
        c = await Client.open(port)
        assert (await c.get("a.test")).status == 200
        assert server.pool.idle_count(ep) == 1
        await asyncio.sleep(0.3)
        assert (await c.get("a.test")).status == 200
        assert up.accepted == 2
        await c.close()


@pytest.mark.asyncio
async def test_keepalive_time_default_keeps_reusing() -> None:
    async with _pooled() as (up, server, port, ep):
        assert server.settings.upstream_keepalive_time == 3600.0
        c = await Client.open(port)
        for _ in range(4):
            assert (await c.get("a.test")).status == 200
        assert up.accepted == 1 and up.requests == 4
        await c.close()


# --- upstream-keepalive-requests and -timeout ------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(("limit", "accepted"), [(1, 5), (0, 5), (3, 2)])
async def test_keepalive_requests(limit: int, accepted: int) -> None:
    # nginx: "if (c->requests >= kp->conf->requests) { goto invalid; }": after ``limit``
    # requests the connection is closed; 0 and 1 keep none.
    async with _pooled(upstream_keepalive_requests=limit) as (up, server, port, ep):
        c = await Client.open(port)
        for _ in range(5):
            assert (await c.get("a.test")).status == 200
        assert up.accepted == accepted and up.requests == 5
        await c.close()


@pytest.mark.asyncio
async def test_keepalive_timeout_closes_an_idle_connection_and_it_is_not_reused() -> None:
    # nginx keepalive_timeout: "Sets a timeout during which an idle keepalive connection to an
    # upstream server will stay open" (a timer per idle connection: ngx_add_timer(c->read,
    # kp->conf->timeout)).
    async with _pooled(upstream_keepalive_timeout=0.2) as (up, server, port, ep):
        c = await Client.open(port)
        assert (await c.get("a.test")).status == 200
        assert (await c.get("a.test")).status == 200
        assert up.accepted == 1
        assert await until(lambda: up.closed_by_peer == 1, 1.0)
        assert server.pool.idle_count(ep) == 0
        assert (await c.get("a.test")).status == 200
        assert up.accepted == 2
        await c.close()


# --- a client that goes away while it is not read ---------------------------------------------
#
# nginx (proxy_ignore_client_abort off, the default) watches the client while the upstream
# works: ngx_http_upstream_check_broken_connection, on EPOLLRDHUP ("if (!ev->pending_eof)
# { return; } ev->eof = 1; ... "client prematurely closed connection, so upstream connection
# is closed too"; ngx_http_upstream_finalize_request(r, u, NGX_HTTP_CLIENT_CLOSED_REQUEST)").
# The server stops reading a client for back-pressure; the client's FIN or reset must still be
# seen then, not only once reading resumes (proxy_send_timeout, send_timeout later).


async def _small_buffer_connection(port: int, ctx: ssl.SSLContext | None = None
                                   ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A client whose kernel send buffer is small: what it has written but the proxy has not
    taken yet must fit in the proxy's receive buffer, or its FIN would wait behind those bytes
    (a FIN nobody can see while the receiver does not read: nginx neither)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    if ctx is None:
        return await asyncio.open_connection(sock=sock)
    return await asyncio.open_connection(sock=sock, ssl=ctx, server_hostname="a.test")


async def _upload_until_paused(w: asyncio.StreamWriter, server: ProxyServer) -> _Downstream:
    """Sends a POST body, 8 KiB at a time and only once the previous piece left our buffer,
    until the proxy stops reading (its upstream takes nothing); then waits until every byte
    sent is in the proxy's receive buffer (our kernel queue empty), so a FIN or reset sent
    now reaches it at once."""
    w.write(b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 1000000000\r\n\r\n")
    chunk = b"x" * 8192
    loop = asyncio.get_running_loop()
    end = loop.time() + 20
    while loop.time() < end:
        downs = list(server.connections)
        if downs and downs[0].client_paused and downs[0].upstream_full:
            break
        if w.transport.get_write_buffer_size() == 0:
            w.write(chunk)
        await asyncio.sleep(0.001)
    else:
        raise AssertionError("the proxy never paused the client")
    sock = w.transport.get_extra_info("socket")

    def drained() -> bool:
        unsent = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, struct.pack("i", 0))
        return w.transport.get_write_buffer_size() == 0 and \
            struct.unpack("i", unsent)[0] == 0
    assert await until(drained, 5.0), "the client's bytes never reached the proxy's buffer"
    return downs[0]


async def _stalled_upload(port: int, server: ProxyServer) -> tuple[asyncio.StreamWriter,
                                                                  _Downstream]:
    """A POST whose body the upstream does not take: sent until the proxy stops reading it."""
    _, w = await _small_buffer_connection(port)
    return w, await _upload_until_paused(w, server)


def _reset(w: asyncio.StreamWriter) -> None:
    """Close with a reset (RST), whatever is queued: SO_LINGER 0 (a plain close sends a FIN)."""
    w.transport.get_extra_info("socket").setsockopt(
        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    w.transport.abort()


async def _deaf_upstream() -> tuple[asyncio.Server, int, list[asyncio.StreamWriter]]:
    """Reads a request head, then nothing (its receive buffer fills), never answers."""
    conns: list[asyncio.StreamWriter] = []

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        conns.append(w)
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError,
                                 asyncio.CancelledError):
            await r.readuntil(b"\r\n\r\n")
            await asyncio.sleep(30)

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    return srv, srv.sockets[0].getsockname()[1], conns


async def _stalled_proxy() -> tuple[asyncio.Server, list[asyncio.StreamWriter], ProxyServer, int,
                                    list[RequestRecord]]:
    srv, uport, conns = await _deaf_upstream()
    records: list[RequestRecord] = []
    # proxy_send_timeout long: without noticing the client, the request would end only then.
    server, port = await start_proxy(StubRouter([("127.0.0.1", uport)]),
                                     on_record=records.append, proxy_send_timeout=20,
                                     proxy_body_size=0)
    return srv, conns, server, port, records


async def _teardown(srv: asyncio.Server, conns: list[asyncio.StreamWriter],
                    server: ProxyServer) -> None:
    await server.shutdown(1)
    srv.close()
    for w in conns:
        w.transport.abort()
    await srv.wait_closed()


@pytest.mark.asyncio
async def test_a_client_reset_while_its_upload_is_paused_aborts_the_upstream_request() -> None:
    srv, conns, server, port, records = await _stalled_proxy()
    try:
        w, down = await _stalled_upload(port, server)
        watch = server._hup_watcher(create=False)
        assert watch is not None and list(watch._by_fd.values()) == [down]
        _reset(w)
        assert await until(lambda: records, 2.0), "client reset not seen while paused"
        assert records[0].status == 400  # mid-body: nginx's 400 (session 24)
        assert not server.connections and not down.upstreams
        assert not watch._by_fd
    finally:
        await _teardown(srv, conns, server)
    assert server._hup_watcher(create=False) is None  # closed with the server


@pytest.mark.asyncio
async def test_a_client_fin_while_its_upload_is_paused_aborts_the_upstream_request() -> None:
    srv, conns, server, port, records = await _stalled_proxy()
    try:
        w, down = await _stalled_upload(port, server)
        w.transport.write_eof()  # FIN (after the bytes already written)
        assert await until(lambda: records, 2.0), "client FIN not seen while paused"
        assert records[0].status == 400  # mid-body: nginx's 400 (session 24)
        assert not server.connections and not down.upstreams
        w.transport.abort()
    finally:
        await _teardown(srv, conns, server)


async def _streaming_upstream() -> tuple[asyncio.Server, int, list[asyncio.StreamWriter],
                                         list[str]]:
    """Answers a GET with a 1 GB body, written as fast as the proxy takes it; notes how its
    connection ended."""
    conns: list[asyncio.StreamWriter] = []
    ends: list[str] = []

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        conns.append(w)
        try:
            await r.readuntil(b"\r\n\r\n")
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n")
            chunk = b"y" * 65536
            for _ in range(15000):
                w.write(chunk)
                await w.drain()
            ends.append("finished")
        except (ConnectionError, asyncio.IncompleteReadError):
            ends.append("closed by the proxy")
        except asyncio.CancelledError:
            pass

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    return srv, srv.sockets[0].getsockname()[1], conns, ends


async def _paused_download(port: int, server: ProxyServer) -> tuple[asyncio.StreamReader,
                                                                    asyncio.StreamWriter,
                                                                    _Downstream]:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
    await w.drain()

    def full() -> bool:
        downs = list(server.connections)
        return bool(downs) and downs[0].client_full and downs[0].client_paused

    assert await until(full, 5.0), "the client's write buffer never filled"
    return r, w, next(iter(server.connections))


@pytest.mark.asyncio
async def test_a_client_half_close_while_its_response_is_held_aborts_the_upstream() -> None:
    # The client does not read the response (our write buffer to it is full: reading it is
    # paused too), then half-closes. nginx's check on EPOLLRDHUP aborts: the upstream
    # connection is closed; the record keeps the status already sent (200).
    srv, uport, conns, ends = await _streaming_upstream()
    records: list[RequestRecord] = []
    server, port = await start_proxy(StubRouter([("127.0.0.1", uport)]),
                                     on_record=records.append)
    try:
        r, w, down = await _paused_download(port, server)
        w.write_eof()
        assert await until(lambda: records, 2.0), "client FIN not seen while paused"
        assert records[0].status == 200
        assert await until(lambda: ends == ["closed by the proxy"], 2.0)
        w.transport.abort()
    finally:
        await _teardown(srv, conns, server)


@pytest.mark.asyncio
async def test_with_proxy_ignore_client_abort_a_held_response_still_finishes() -> None:
    # proxy_ignore_client_abort on: nginx does not arm the check ("... &&
    # !u->conf->ignore_client_abort"); the response after a half-close is let finish.
    srv, uport, conns, ends = await _streaming_upstream()
    records: list[RequestRecord] = []
    server, port = await start_proxy(StubRouter([("127.0.0.1", uport)]),
                                     on_record=records.append, proxy_ignore_client_abort=True)
    try:
        r, w, down = await _paused_download(port, server)
        w.write_eof()
        await asyncio.sleep(0.3)
        assert not records and not ends
        # The client reads again: the transfer goes on (a few MB are enough to show it).
        got = 0
        while got < 8_000_000:
            got += len(await asyncio.wait_for(r.read(1 << 20), 5.0))
        assert not records and not ends
        w.transport.abort()
    finally:
        await _teardown(srv, conns, server)


@pytest.mark.asyncio
async def test_pipelined_local_answers_then_a_half_close_are_all_answered() -> None:
    # No upstream at work: nothing to abort. A client that sends many requests answered here
    # (404) and half-closes without reading is paused (its write buffer full), yet every
    # request is answered once it reads, then the connection closes.
    server, port = await start_proxy(StubRouter([], known="only.test"), keep_alive_requests=5000)
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        w.write(b"GET / HTTP/1.1\r\nHost: x.test\r\n\r\n" * 3000)
        await asyncio.sleep(0.3)
        w.write_eof()
        await asyncio.sleep(0.3)
        data = await read_to_eof(r)
        assert data.count(b"HTTP/1.1 404 ") == 3000
    finally:
        w.transport.abort()
        await server.shutdown(1)


@pytest.mark.asyncio
@pytest.mark.parametrize("how", ["reset", "fin"])
async def test_over_tls_a_client_gone_while_its_upload_is_paused_is_seen(how: str) -> None:
    # The same under TLS: the raw socket is watched (asyncio's TLS layer may have read the
    # FIN already, but hands nothing to a paused protocol).
    srv, uport, conns = await _deaf_upstream()
    records: list[RequestRecord] = []
    server, port = await start_proxy(StubRouter([("127.0.0.1", uport)]), tls=True,
                                     on_record=records.append, proxy_send_timeout=20,
                                     proxy_body_size=0)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    r, w = await _small_buffer_connection(port, ctx)
    try:
        await _upload_until_paused(w, server)
        if how == "reset":
            _reset(w)
        else:  # a FIN without close_notify: shut the raw socket's sending side
            raw = w.transport.get_extra_info("socket")
            dup = socket.fromfd(raw.fileno(), socket.AF_INET, socket.SOCK_STREAM)
            dup.shutdown(socket.SHUT_WR)
            dup.close()
        assert await until(lambda: records, 2.0), "client gone, not seen while paused"
        assert records[0].status == 400 and not server.connections
    finally:
        w.transport.abort()
        await _teardown(srv, conns, server)
