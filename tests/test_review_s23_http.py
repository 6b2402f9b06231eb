"""Review s23 (Y2): the proxy core's HTTP/1.1 handling of hostile and odd clients, against a
real ProxyServer on 127.0.0.1 and a recording upstream (real sockets).

HTTP/1.0 keep-alive: nginx keeps the connection of an HTTP/1.0 request whose Connection header
asks for it (ngx_http_handler, src/http/ngx_http_core_module.c: "switch
(r->headers_in.connection_type) { case 0: r->keepalive = (r->http_version >
NGX_HTTP_VERSION_10); ... case NGX_HTTP_CONNECTION_KEEP_ALIVE: r->keepalive = 1;", "close"
found first by ngx_http_process_connection), tells the client so ("Connection: keep-alive",
ngx_http_header_filter), and closes only when the length is unknown (an HTTP/1.0 client has no
chunked coding: ngx_http_chunked_header_filter sets "r->keepalive = 0"). The core closed
every HTTP/1.0 connection after its first response.
"""

from __future__ import annotations

import asyncio

import pytest

from _upstream_helpers import TrackedUpstream, read_to_eof, start_proxy
from tests._server_helpers import StubRouter


class _Recording(TrackedUpstream):
    """An HTTP/1.1 upstream that records every request head (per connection) and answers
    ``/chunked`` with a chunked body, ``/zero`` with ``Content-Length: 0``, anything else with
    ``ok <target>`` (Content-Length).
    Requests carry no body here."""

    def __init__(self) -> None:
        super().__init__()
        self.conns: list[list[bytes]] = []

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.writers.append(w)
        heads: list[bytes] = []
        self.conns.append(heads)
        try:
            while True:
                head = await r.readuntil(b"\r\n\r\n")
                heads.append(head)
                target = head.split(b" ", 2)[1]
                if target == b"/zero":
                    w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                elif target == b"/chunked":
                    w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"5\r\nhello\r\n0\r\n\r\n")
                else:
                    body = b"ok " + target
                    w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
                            % (len(body), body))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            w.close()


async def _response(r: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One response with a Content-Length: (head, body)."""
    head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    body = await asyncio.wait_for(r.readexactly(length), 5)
    return head, body


def _connection_header(head: bytes) -> list[bytes]:
    return [line.split(b":", 1)[1].strip().lower() for line in head.split(b"\r\n")
            if line.lower().startswith(b"connection:")]


async def _with_proxy(body, **kw):  # type: ignore[no-untyped-def]
    up = await _Recording().start()
    server, port = await start_proxy(StubRouter([("127.0.0.1", up.port)], known="a.test"),
                                     **kw)
    try:
        return await body(port, up)
    finally:
        await server.shutdown(1)
        await up.stop()


@pytest.mark.parametrize("connection", [b"keep-alive", b"Keep-Alive", b"foo, keep-alive"])
def test_http10_keep_alive_is_kept(connection: bytes) -> None:
    """Two HTTP/1.0 requests asking for keep-alive, the second sent after the first response,
    on one client connection: both answered, each with "Connection: keep-alive" (the
    connection stays open), both on one upstream connection."""

    async def body(port: int, up: _Recording) -> None:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        try:
            for target in (b"/one", b"/two"):
                w.write(b"GET %s HTTP/1.0\r\nHost: a.test\r\nConnection: %s\r\n\r\n"
                        % (target, connection))
                head, data = await _response(r)
                assert head.startswith(b"HTTP/1.1 200 "), head
                assert data == b"ok " + target
                assert _connection_header(head) == [b"keep-alive"], head
        finally:
            w.close()
        assert [[h.split(b" ", 2)[1] for h in c] for c in up.conns] == [[b"/one", b"/two"]]

    asyncio.run(_with_proxy(body))


def test_http10_keep_alive_local_answer_kept() -> None:
    """A local answer (404, no route) to an HTTP/1.0 keep-alive request keeps the connection
    too: the next request on it is served by the upstream."""

    async def body(port: int, up: _Recording) -> None:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        try:
            w.write(b"GET /x HTTP/1.0\r\nHost: nowhere.test\r\nConnection: keep-alive\r\n\r\n")
            head, _ = await _response(r)
            assert head.startswith(b"HTTP/1.1 404 "), head
            assert _connection_header(head) == [b"keep-alive"], head
            w.write(b"GET /y HTTP/1.0\r\nHost: a.test\r\nConnection: keep-alive\r\n\r\n")
            head, data = await _response(r)
            assert head.startswith(b"HTTP/1.1 200 ") and data == b"ok /y", (head, data)
        finally:
            w.close()

    asyncio.run(_with_proxy(body))


def test_http10_keep_alive_pipelined() -> None:
    """Two pipelined HTTP/1.0 keep-alive requests in one write: both answered, in order."""

    async def body(port: int, up: _Recording) -> None:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        try:
            w.write(b"GET /one HTTP/1.0\r\nHost: a.test\r\nConnection: keep-alive\r\n\r\n"
                    b"GET /two HTTP/1.0\r\nHost: a.test\r\n\r\n")
            head, data = await _response(r)
            assert data == b"ok /one" and _connection_header(head) == [b"keep-alive"], head
            # The second did not ask for keep-alive: its response is the last.
            rest = await read_to_eof(r)
            assert rest.startswith(b"HTTP/1.1 200 ") and rest.endswith(b"\r\n\r\nok /two"), rest
            assert b"\r\nConnection: close\r\n" in rest, rest
        finally:
            w.close()

    asyncio.run(_with_proxy(body))


@pytest.mark.parametrize("request_head", [
    # Without the token: HTTP/1.0's default, the connection closes after the response.
    b"GET /a HTTP/1.0\r\nHost: a.test\r\n\r\n",
    # "close" wins over "keep-alive" (ngx_http_process_connection looks for it first).
    b"GET /a HTTP/1.0\r\nHost: a.test\r\nConnection: keep-alive, close\r\n\r\n",
    b"GET /a HTTP/1.0\r\nHost: a.test\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n",
])
def test_http10_without_keep_alive_closes(request_head: bytes) -> None:
    async def body(port: int, up: _Recording) -> None:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        try:
            w.write(request_head + b"GET /b HTTP/1.1\r\nHost: a.test\r\n\r\n")
            out = await read_to_eof(r)
        finally:
            w.close()
        head, _, data = out.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ") and data == b"ok /a", out
        assert _connection_header(head + b"\r\n") == [b"close"], out
        assert [[h.split(b" ", 2)[1] for h in c] for c in up.conns] == [[b"/a"]]

    asyncio.run(_with_proxy(body))


def test_http10_keep_alive_unknown_length_closes() -> None:
    """An upstream response of unknown length for an HTTP/1.0 client: no chunked coding for
    it, so the body ends at the close, "Connection: close", never "keep-alive"."""

    async def body(port: int, up: _Recording) -> None:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        try:
            w.write(b"GET /chunked HTTP/1.0\r\nHost: a.test\r\nConnection: keep-alive\r\n\r\n")
            out = await read_to_eof(r)
        finally:
            w.close()
        head, _, data = out.partition(b"\r\n\r\n")
        assert data == b"hello", out
        assert _connection_header(head + b"\r\n") == [b"close"], out
        assert b"transfer-encoding" not in head.lower(), out

    asyncio.run(_with_proxy(body))


def test_http10_keep_alive_requests_limit_still_closes() -> None:
    """keep-alive-requests still ends an HTTP/1.0 keep-alive connection (1: after the first
    response, "Connection: close" alone)."""

    async def body(port: int, up: _Recording) -> None:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        try:
            w.write(b"GET /a HTTP/1.0\r\nHost: a.test\r\nConnection: keep-alive\r\n\r\n")
            out = await read_to_eof(r)
        finally:
            w.close()
        head = out.partition(b"\r\n\r\n")[0] + b"\r\n"
        assert out.endswith(b"\r\n\r\nok /a") and _connection_header(head) == [b"close"], out

    asyncio.run(_with_proxy(body, keep_alive_requests=1))


# --- a bodiless response whose upstream writes its body late --------------------------------


class _LateBody(TrackedUpstream):
    """Answers ``/first`` with ``head`` alone; on a connection that then carries another
    request, it first writes what a buggy upstream writes late -- the body the head announced,
    here a whole response of its own -- then the real answer (``ok <target>``). Nothing is
    timed: the late bytes come only once the next request is on the same connection."""

    LATE = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED"

    def __init__(self, head: bytes) -> None:
        super().__init__()
        self.head = head
        self.conns = 0

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.writers.append(w)
        self.conns += 1
        owed = False
        try:
            while True:
                head = await r.readuntil(b"\r\n\r\n")
                target = head.split(b" ", 2)[1]
                if owed:
                    w.write(self.LATE)
                    owed = False
                if target == b"/first":
                    w.write(self.head)
                    owed = True
                    continue
                body = b"ok " + target
                w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            w.close()


@pytest.mark.parametrize("method, head", [
    (b"HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n"),
    (b"HEAD", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
    (b"GET", b"HTTP/1.1 204 No Content\r\nContent-Length: 8\r\n\r\n"),
    (b"GET", b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n"),
], ids=["HEAD length", "HEAD chunked", "204 length", "204 chunked"])
def test_late_body_of_bodiless_response_never_answers_another_client(method: bytes,
                                                                     head: bytes) -> None:
    """A response with no body by its request or status whose head announces one: its
    connection is not pooled, so the next client's request never goes where that body may
    still come (before: pooled, and the next client got the late bytes as its response)."""

    async def main() -> None:
        up = await _LateBody(head).start()
        server, port = await start_proxy(StubRouter([("127.0.0.1", up.port)]))
        try:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            try:
                w.write(method + b" /first HTTP/1.1\r\nHost: a.test\r\n\r\n")
                first = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
                assert first.startswith(head.split(b"\r\n", 1)[0]), first
            finally:
                w.close()
            r, w = await asyncio.open_connection("127.0.0.1", port)
            try:
                w.write(b"GET /victim HTTP/1.1\r\nHost: a.test\r\n\r\n")
                out_head, data = await _response(r)
            finally:
                w.close()
            assert data == b"ok /victim", (out_head, data)
            assert up.conns == 2
        finally:
            await server.shutdown(1)
            await up.stop()

    asyncio.run(main())


def test_bodiless_response_announcing_nothing_is_still_pooled() -> None:
    """A HEAD answered with ``Content-Length: 0`` keeps its pooled connection: one upstream
    connection for the three requests."""

    async def main() -> None:
        up = await _Recording().start()
        server, port = await start_proxy(StubRouter([("127.0.0.1", up.port)]))
        try:
            for request in (b"HEAD /zero HTTP/1.1\r\nHost: a.test\r\n\r\n",
                            b"GET /a HTTP/1.1\r\nHost: a.test\r\n\r\n",
                            b"GET /b HTTP/1.1\r\nHost: a.test\r\n\r\n"):
                r, w = await asyncio.open_connection("127.0.0.1", port)
                try:
                    w.write(request)
                    await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 5)
                    if not request.startswith(b"HEAD"):
                        await asyncio.wait_for(r.readuntil(b"ok /"), 5)
                finally:
                    w.close()
        finally:
            await server.shutdown(1)
            await up.stop()
        assert [[h.split(b" ", 2)[1] for h in c] for c in up.conns] == [[b"/zero", b"/a", b"/b"]]

    asyncio.run(main())
