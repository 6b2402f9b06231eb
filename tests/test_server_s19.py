"""Session 19, helper T19: the asyncio server (``proxy/_server.py``).

1. The server's TLS close no longer waits for the client's close_notify (reviewer Q19t's fix,
   checked here). asyncio's TLS transport sent its close_notify and then held the socket up to
   ssl_shutdown_timeout (30 s) for the client's, in ``server.lingering`` and counted against
   ``max_connections``, for any client that stays silent (an idle keep-alive client closed by
   keepalive_timeout, one gone without a FIN). nginx marks every handshaken HTTPS connection
   ``no_wait_shutdown`` (src/http/ngx_http_request.c, ngx_http_ssl_handshake_handler: "The
   majority of browsers do not send the "close notify" alert."): its close_notify out, it
   closes. What must still hold (guards): everything buffered goes out first, the response and
   then the close_notify, also when asyncio had paused writing into the socket transport; that
   flush is still bounded by ssl_shutdown_timeout; a session closed this way still resumes
   (tests/test_review_s19t.py).
2. ``ProxyServer(router)`` made outside a running event loop raised asyncio's bare "no running
   event loop"; it now says what to do.

Tests marked "fails before" failed on the code before this session (checked against a copy of
the old ``_server.py``)."""

from __future__ import annotations

import asyncio
import socket
import ssl
from typing import Any

import pytest
import trustme

from ingresslib.proxy._server import ProxyServer
from tests._server_helpers import StubRouter
from tests.test_review_s19t import _Backend, _listener, _settled, _SilentTLSClient


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


async def _raw_eof_within(client: _SilentTLSClient, seconds: float = 5.0) -> bool:
    """Whether the server closes its end of the socket within ``seconds`` while the client
    stays silent (the old code held it ssl_shutdown_timeout, 30 s)."""
    try:
        return await asyncio.wait_for(client.raw_eof(), seconds)
    except TimeoutError:
        return False


# --- 1. the TLS close does not wait for the client's close_notify ----------------------------


@pytest.mark.network
@pytest.mark.asyncio
async def test_connection_close_over_tls_closes_the_socket_after_the_close_notify(
        ca: trustme.CA) -> None:
    # Fails before: the close_notify came, then nothing for 30 s (the socket held, counted).
    async with _Backend(10) as endpoint:
        server = await _listener(ca, endpoint)
        try:
            r, w = await asyncio.open_connection("127.0.0.1", server.addresses[0][2])
            client = _SilentTLSClient(ca, r, w)
            await client.handshake()
            await client.send(b"GET / HTTP/1.1\r\nHost: close.test\r\nConnection: close\r\n\r\n")
            answer = await client.read_until_close_notify()
            assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"\r\n\r\n" + b"x" * 10)
            assert await _raw_eof_within(client)
            await _settled(server)
            assert server.sockets_held() == 0 and not server.lingering
            w.close()
        finally:
            await server.shutdown(1)


@pytest.mark.network
@pytest.mark.asyncio
async def test_the_keep_alive_timeout_frees_a_tls_socket_whose_client_stays_silent(
        ca: trustme.CA) -> None:
    # Fails before: after keepalive_timeout the socket stayed held 30 s more.
    async with _Backend(10) as endpoint:
        server = await _listener(ca, endpoint, keep_alive=0.3)
        try:
            r, w = await asyncio.open_connection("127.0.0.1", server.addresses[0][2])
            client = _SilentTLSClient(ca, r, w)
            await client.handshake()
            await client.send(b"GET / HTTP/1.1\r\nHost: close.test\r\n\r\n")
            answer = await client.read_until_close_notify()
            assert answer.startswith(b"HTTP/1.1 200 ")
            assert await _raw_eof_within(client)
            await _settled(server)
            assert server.sockets_held() == 0 and not server.lingering
            w.close()
        finally:
            await server.shutdown(1)


@pytest.mark.network
@pytest.mark.asyncio
async def test_silent_tls_clients_closed_by_the_server_do_not_fill_max_connections(
        ca: trustme.CA) -> None:
    # Fails before: each silent client left a socket held 30 s after its Connection: close,
    # so with max_connections=2 the third client was refused.
    async with _Backend(10) as endpoint:
        server = await _listener(ca, endpoint, max_connections=2)
        writers: list[asyncio.StreamWriter] = []
        answered = 0
        try:
            for _ in range(3):
                r, w = await asyncio.open_connection("127.0.0.1", server.addresses[0][2])
                writers.append(w)
                client = _SilentTLSClient(ca, r, w)
                try:
                    await client.handshake()
                    await client.send(b"GET / HTTP/1.1\r\nHost: close.test\r\n"
                                      b"Connection: close\r\n\r\n")
                    answer = await client.read_until_close_notify()
                except (ConnectionError, ssl.SSLError, AssertionError):
                    continue  # refused: aborted after its handshake
                answered += answer.startswith(b"HTTP/1.1 200 ")
                # The server's side of its close runs on (the client says nothing).
                await _until(lambda: server.sockets_held() == 0)
            assert server.refused == 0 and answered == 3
        finally:
            for w in writers:
                w.transport.abort()
            await server.shutdown(1)


def _socket_transport(w: asyncio.StreamWriter) -> asyncio.Transport:
    """The client's socket transport (to pause and resume its reading)."""
    assert isinstance(w.transport, asyncio.Transport)
    return w.transport


def _ssl_protocol(down: Any) -> Any:
    return getattr(down.transport, "_ssl_protocol", None)


async def _until(check: Any, seconds: float = 5.0) -> bool:
    for _ in range(int(seconds / 0.02)):
        if check():
            return True
        await asyncio.sleep(0.02)
    return bool(check())


async def _close_with_writing_paused(ca: trustme.CA, server: ProxyServer, size: int
                                     ) -> tuple[_SilentTLSClient, Any]:
    """A TLS client asks for ``size`` bytes with ``Connection: close`` and does not read (4 KiB
    socket buffers both sides). The server writes it all and closes while asyncio's TLS layer
    still holds part of it: its socket transport is over its high-water mark, so writing into
    it is paused and the rest (then the close_notify) waits in the TLS layer's own buffer.
    The close must not drop that part. Returns the client and the server's connection."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.addresses[0][2]))
    r, w = await asyncio.open_connection(sock=sock)
    client = _SilentTLSClient(ca, r, w)
    await client.handshake()
    assert await _until(lambda: len(server.connections) == 1)
    (down,) = server.connections
    assert down.transport is not None
    down.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    _socket_transport(w).pause_reading()  # (the StreamReader would read on into its buffer)
    await client.send(b"GET / HTTP/1.1\r\nHost: close.test\r\nConnection: close\r\n\r\n")
    assert await _until(lambda: down in server.lingering)
    # The state this is about (else the test would prove nothing): closed, writing into the
    # socket transport paused, bytes still in the TLS layer.
    proto = _ssl_protocol(down)
    assert proto is not None and proto._ssl_writing_paused and proto._outgoing.pending > 0
    return client, down


@pytest.mark.network
@pytest.mark.asyncio
async def test_guard_a_close_with_writing_paused_still_sends_everything(ca: trustme.CA) -> None:
    # Guard: the socket transport is closed right after the close_notify is made, while part
    # of the response (and the close_notify) still waits in asyncio's TLS layer because the
    # socket transport had paused it. Its close flushes its own buffer, and the TLS layer's
    # rest reaches it when it drains (resume_writing): the client gets every byte, then the
    # close_notify, then the socket closes.
    size = 400 * 1024  # over the socket transport's 64 KiB mark, under the TLS layer's 512 KiB
    async with _Backend(size) as endpoint:
        server = await _listener(ca, endpoint)
        try:
            client, _ = await _close_with_writing_paused(ca, server, size)
            _socket_transport(client.writer).resume_reading()
            answer = await asyncio.wait_for(client.read_until_close_notify(), 20)
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 ") and body == b"x" * size
            assert await _raw_eof_within(client)
            await _settled(server)
            assert server.sockets_held() == 0
            client.writer.close()
        finally:
            await server.shutdown(1)


@pytest.mark.network
@pytest.mark.asyncio
async def test_guard_ssl_shutdown_timeout_still_bounds_the_flush_of_a_tls_close(
        ca: trustme.CA, monkeypatch: pytest.MonkeyPatch) -> None:
    # Guard: the close no longer waits for the client, but its flush to a client that does not
    # read is still bounded by ssl_shutdown_timeout (30 s; here 0.5 s): the socket is then
    # closed, no longer held nor counted.
    import asyncio.constants

    monkeypatch.setattr(asyncio.constants, "SSL_SHUTDOWN_TIMEOUT", 0.5)
    size = 400 * 1024
    async with _Backend(size) as endpoint:
        server = await _listener(ca, endpoint)
        client = None
        try:
            client, down = await _close_with_writing_paused(ca, server, size)
            assert down in server.lingering and server.sockets_held() == 1
            assert await _until(lambda: not server.lingering)  # cut at 0.5 s, not after 30
            assert server.sockets_held() == 0
            _socket_transport(client.writer).resume_reading()
            with pytest.raises((ConnectionError, AssertionError, ssl.SSLError)):
                # Cut short: no close_notify after the body ("a bare EOF before it").
                await asyncio.wait_for(client.read_until_close_notify(), 5)
        finally:
            if client is not None:
                client.writer.transport.abort()
            await server.shutdown(1)


# --- 2. ProxyServer made outside a running event loop ----------------------------------------


def test_proxy_server_outside_an_event_loop_says_what_to_do() -> None:
    # Fails before: asyncio's bare "no running event loop" from inside the constructor.
    with pytest.raises(RuntimeError) as info:
        ProxyServer(StubRouter([("127.0.0.1", 9)]))
    message = str(info.value)
    assert "inside a running event loop" in message and "async function" in message
    assert "loop=" in message and "no running event loop" not in message


def test_proxy_server_outside_an_event_loop_runs_with_loop_given() -> None:
    # What the message offers works: a loop not yet running, passed as loop=, then run.
    loop = asyncio.new_event_loop()
    try:
        server = ProxyServer(StubRouter([("127.0.0.1", 9)]), loop=loop)

        async def one_request() -> bytes:
            await server.start(("127.0.0.1", 0))
            try:
                r, w = await asyncio.open_connection("127.0.0.1", server.addresses[0][2])
                w.write(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
                head = await asyncio.wait_for(r.readuntil(b"\r\n"), 5)
                w.close()
                return head
            finally:
                await server.shutdown(1)

        assert loop.run_until_complete(one_request()).startswith(b"HTTP/1.1 ")
    finally:
        loop.close()
