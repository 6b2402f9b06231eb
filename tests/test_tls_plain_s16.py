"""Session 16: plain HTTP sent to the HTTPS listener, answered as nginx answers it.

nginx peeks the first byte of a connection on an ``ssl`` listener (ngx_http_ssl_handshake:
"if (buf[0] & 0x80 /* SSLv2 */ || buf[0] == 0x16 /* SSLv3/TLSv1 */)" starts the handshake,
anything else goes on as "plain http"), reads the request as on any port, and refuses it in
ngx_http_process_request once the head is read ("client sent plain HTTP request to HTTPS
port", NGX_HTTP_TO_HTTPS): a 400 with the page "The plain HTTP request was sent to HTTPS
port", keep-alive off, logged with status 400. Before this session the listener handed those
bytes to OpenSSL, whose handshake failed: the client's connection was closed with no answer,
no access-log entry and no metric. Every test here but those marked "guard" failed on that
code (checked against a copy of the old ``_server.py``/``_client_hello.py``)."""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
import trustme

from ingresslib._accesslog import AccessLog
from ingresslib._metrics import Metrics
from ingresslib._resources import Resources
from ingresslib._tls import CertificateStore
from ingresslib.proxy._actions import RequestRecord
from ingresslib.proxy._client_hello import ClientHelloReader
from ingresslib.proxy._server import ProxyServer
from tests._server_helpers import StubRouter
from tests.test_tls import _ingress, _pems, _secret
from tests.test_tls_s14 import _client_hello, _first_record, _records

_PAGE = b"The plain HTTP request was sent to HTTPS port"


class _Router(StubRouter):
    """Routes everything to the backend, and remembers that it was asked."""

    def __init__(self, endpoint: tuple[str, int]) -> None:
        super().__init__([endpoint])
        self.asked: list[tuple[str, str, str]] = []

    def route(self, method: str, host: str, path: str, headers: Any = (),
              client_ip: Any = None) -> Any:
        self.asked.append((method, host, path))
        return super().route(method, host, path, headers, client_ip)


class _Env:
    def __init__(self, server: ProxyServer, router: _Router, records: list[RequestRecord],
                 backend_conns: list[int], ca: trustme.CA) -> None:
        self.server, self.router, self.records = server, router, records
        self.backend_conns, self.ca = backend_conns, ca

    @property
    def port(self) -> int:
        return self.server.addresses[0][2]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest_asyncio.fixture
async def env(ca: trustme.CA) -> AsyncIterator[_Env]:
    conns: list[int] = []

    async def backend(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        conns.append(1)
        try:
            await r.readuntil(b"\r\n\r\n")
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await w.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            w.close()

    upstream = await asyncio.start_server(backend, "127.0.0.1", 0)
    router = _Router(upstream.sockets[0].getsockname()[:2])
    store = CertificateStore()
    assert store.update(Resources(ingresses=(_ingress("w", [(("a.test",), "a")]),),
                                  secrets=(_secret("a", *_pems(ca.issue_cert("a.test"))),))) == []
    records: list[RequestRecord] = []
    server = ProxyServer(router, cert_store=store, on_record=records.append,
                         client_header_timeout=2)
    await server.start(None, ("127.0.0.1", 0))
    try:
        yield _Env(server, router, records, conns, ca)
    finally:
        await server.shutdown(1)
        upstream.close()
        await upstream.wait_closed()


async def _exchange(port: int, *chunks: bytes, pause: float = 0.0,
                    wait: float = 3.0,
                    enough: Callable[[bytes], bool] | None = None) -> tuple[bytes, bool]:
    """Send ``chunks`` and read until the server closes (True) or ``wait`` seconds pass
    without a byte (False), or (False) until ``enough`` of the answer holds what the test
    reads: a TLS server waits for the client after its flight, so "quiet" alone costs ``wait``."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        for c in chunks:
            if pause:
                await asyncio.sleep(pause)
            w.write(c)
            await w.drain()
        data = b""
        while True:
            if enough is not None and enough(data):
                return data, False
            try:
                got = await asyncio.wait_for(r.read(65536), wait)
            except TimeoutError:
                return data, False
            if not got:
                return data, True
            data += got
    finally:
        w.close()


def _split(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 "), answer[:80]
    headers = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
    return int(lines[0].split()[1]), headers, body


async def _settled(env: _Env) -> None:
    """Until the server let go of every socket (records are emitted before that)."""
    for _ in range(100):
        if not env.server.connections and not env.server.handshaking:
            return
        await asyncio.sleep(0.02)


# --- 1. the answer -------------------------------------------------------------------------------


@pytest.mark.network
@pytest.mark.asyncio
async def test_plain_request_gets_nginx_400_page_and_the_connection_closed(env: _Env) -> None:
    answer, closed = await _exchange(env.port, b"GET /x?q=1 HTTP/1.1\r\nHost: a.test\r\n"
                                     b"User-Agent: curl/8\r\n\r\n")
    assert closed, answer
    status, headers, body = _split(answer)
    assert status == 400
    assert _PAGE in body and body.startswith(b"400 Bad Request\n")
    assert headers["connection"].lower() == "close"
    assert int(headers["content-length"]) == len(body)
    # Never routed, never proxied.
    assert env.router.asked == [] and env.backend_conns == []
    await _settled(env)
    [rec] = env.records
    assert (rec.status, rec.method, rec.host, rec.path, rec.query) == (400, "GET", "a.test", "/x",
                                                                        "q=1")
    assert rec.request_line == "GET /x?q=1 HTTP/1.1" and rec.user_agent == "curl/8"
    assert rec.upstreams == () and rec.ingress is None and rec.service is None
    assert rec.bytes_out == len(answer)


@pytest.mark.network
@pytest.mark.asyncio
async def test_the_record_reaches_the_access_log_as_a_400_but_not_the_metrics(
        env: _Env, caplog: pytest.LogCaptureFixture) -> None:
    # ``serve`` hands every record to both (``_serve._record_sink``); nginx logs the request
    # with $status 400 (ngx_http_special_response_handler: "r->err_status =
    # NGX_HTTP_BAD_REQUEST" for NGX_HTTP_TO_HTTPS).
    await _exchange(env.port, b"GET /shop HTTP/1.1\r\nHost: a.test\r\n\r\n")
    await _settled(env)
    [rec] = env.records
    caplog.set_level(logging.INFO, logger="ingresslib.access")
    AccessLog()(rec)
    [line] = [r.getMessage() for r in caplog.records if r.name == "ingresslib.access"]
    assert '"GET /shop HTTP/1.1" 400 ' in line, line
    m = Metrics()
    m.observe(rec)
    # (Session 17) nginx refuses it in ngx_http_process_request, before any phase: no
    # location's log_by_lua_block runs, so ingress-nginx's monitor.call() never sees it.
    assert rec.phase == "head" and rec.status == 400
    assert not any(ln.startswith("nginx_ingress_controller_requests{")
                   for ln in m.render().decode().splitlines())


@pytest.mark.network
@pytest.mark.asyncio
async def test_head_gets_the_head_only_and_a_body_is_never_forwarded(env: _Env) -> None:
    answer, closed = await _exchange(env.port, b"HEAD / HTTP/1.1\r\nHost: a.test\r\n\r\n")
    status, headers, body = _split(answer)
    assert closed and status == 400 and body == b""
    assert headers["connection"].lower() == "close"
    answer, closed = await _exchange(env.port, b"POST /form HTTP/1.1\r\nHost: a.test\r\n"
                                     b"Content-Length: 11\r\n\r\nhello=world")
    status, _, body = _split(answer)
    assert closed and status == 400 and _PAGE in body
    assert env.router.asked == [] and env.backend_conns == []
    await _settled(env)
    assert [(r.method, r.status) for r in env.records] == [("HEAD", 400), ("POST", 400)]


@pytest.mark.network
@pytest.mark.asyncio
async def test_server_wide_options_is_refused_too(env: _Env) -> None:
    # The core answers ``OPTIONS *`` itself (200) on a plain listener; on the HTTPS port it is
    # one more plain request (nginx's request-line parser refuses '*' anyway).
    answer, closed = await _exchange(env.port, b"OPTIONS * HTTP/1.1\r\nHost: a.test\r\n\r\n")
    status, headers, body = _split(answer)
    assert closed and status == 400 and _PAGE in body and "allow" not in headers


@pytest.mark.network
@pytest.mark.asyncio
async def test_http10_without_host_and_a_leading_crlf_are_plain_requests(env: _Env) -> None:
    # The first byte decides (a CR is not a TLS byte); RFC 9112 §2.2's empty line before the
    # request line is skipped as on the plain listener.
    answer, closed = await _exchange(env.port, b"\r\nGET / HTTP/1.0\r\n\r\n")
    status, _, body = _split(answer)
    assert closed and status == 400 and _PAGE in body


# --- 2. the head is read through the normal parser: its limits and checks answer first ----------


@pytest.mark.network
@pytest.mark.asyncio
@pytest.mark.parametrize(("head", "want"), [
    # ngx_http_process_request_line: "client sent too long URI" (414), before the 497 check.
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: a.test\r\n\r\n", 414),
    # Headers beyond the limits: 431 (ingresslib's status for nginx's "too long header line").
    (b"GET / HTTP/1.1\r\nHost: a.test\r\nX-Big: " + b"b" * 40000 + b"\r\n\r\n", 431),
    # ngx_http_process_request_header: "client sent HTTP/1.1 request without "Host" header".
    (b"GET / HTTP/1.1\r\n\r\n", 400),
    # ngx_http_process_request_header: "client sent TRACE method" (405).
    (b"TRACE / HTTP/1.1\r\nHost: a.test\r\n\r\n", 405),
    # Neither TLS nor a plausible head: the parser's 400 (nginx: "client sent invalid method").
    (b"\x00\x01\x02\x03 garbage\r\n\r\n", 400),
], ids=["414", "431", "no-host", "trace", "garbage"])
async def test_a_malformed_head_gets_the_parsers_answer_not_the_plain_http_page(
        env: _Env, head: bytes, want: int) -> None:
    answer, closed = await _exchange(env.port, head)
    assert answer, "closed without an answer"
    status, headers, body = _split(answer)
    assert closed and status == want and _PAGE not in body
    assert headers["connection"].lower() == "close"
    assert env.router.asked == [] and env.backend_conns == []
    await _settled(env)
    assert [r.status for r in env.records] == [want]


@pytest.mark.network
@pytest.mark.asyncio
async def test_the_head_deadline_counts_from_accept(env: _Env) -> None:
    # client_header_timeout=2. nginx arms it at accept (ngx_http_init_connection) and neither
    # the one-byte peek nor the request line re-arms it ("if (!rev->timer_set)"). The head
    # never completes: 408 (said, as on the plain listener) about 2 s after accept, not 2 s
    # after the first byte.
    start = time.monotonic()
    answer, closed = await _exchange(env.port, b"GET / HTTP/1.1\r\nHost: a.test\r\n",
                                     pause=1.2, wait=4)
    took = time.monotonic() - start
    status, _, _ = _split(answer)
    assert closed and status == 408
    assert 1.7 < took < 2.9, took
    await _settled(env)
    assert [r.status for r in env.records] == [408]


@pytest.mark.network
@pytest.mark.asyncio
async def test_a_plain_client_is_an_open_connection_not_a_handshake(env: _Env) -> None:
    r, w = await asyncio.open_connection("127.0.0.1", env.port)
    try:
        w.write(b"GET / HTTP/1.1\r\n")
        await w.drain()
        for _ in range(50):
            if env.server.connections:
                break
            await asyncio.sleep(0.02)
        assert env.server.handshaking == {} and len(env.server.connections) == 1
        assert env.server.sockets_held() == 1
        (down,) = env.server.connections
        assert down.to_https and not down.tls
    finally:
        w.close()
    await _settled(env)
    assert env.server.sockets_held() == 0


# --- 3. guards: TLS clients are unchanged -------------------------------------------------------


@pytest.mark.network
@pytest.mark.asyncio
async def test_tls_clients_are_still_served(env: _Env) -> None:
    # Guard (passed before too).
    client = ssl.create_default_context()
    env.ca.configure_trust(client)
    r, w = await asyncio.open_connection("127.0.0.1", env.port, ssl=client,
                                         server_hostname="a.test")
    try:
        w.write(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        await w.drain()
        answer = await asyncio.wait_for(r.read(), 5)
    finally:
        w.close()
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"ok")
    assert env.router.asked == [("GET", "a.test", "/")] and env.backend_conns == [1]


@pytest.mark.network
@pytest.mark.asyncio
async def test_tls_and_sslv2_first_bytes_still_go_to_the_tls_layer(env: _Env) -> None:
    # Guard (passed before too): a ClientHello gets a ServerHello; a first byte with the high
    # bit set (an SSLv2 record header) goes to OpenSSL as in nginx, never to the HTTP parser.
    answer, _ = await _exchange(env.port, _client_hello(b"a.test", tls13=False), wait=1,
                                enough=_first_record)
    assert _records(answer)[0][0] == 22
    answer, _ = await _exchange(env.port, b"\x80\x2e\x01\x00\x02GET / HTTP/1.1\r\n\r\n", wait=1)
    assert b"HTTP/1.1" not in answer
    assert env.router.asked == [] and env.records == []


# --- 4. the reader's decision --------------------------------------------------------------------


@pytest.mark.parametrize(("first", "plain"), [
    (b"G", True), (b"\r", True), (b"\x00", True), (b"\x7f", True),
    (b"\x16", False), (b"\x80", False), (b"\xff", False),
])
def test_reader_decides_on_the_first_byte_as_nginx(first: bytes, plain: bool) -> None:
    r = ClientHelloReader()
    assert r.feed(first) is plain
    assert r.plain is plain
    assert r.server_name is None


def test_reader_keeps_reading_a_fragmented_client_hello() -> None:
    # The first byte of later fragments is not looked at again (fails before only for want of
    # ``plain``: the reading itself is unchanged).
    hello = _client_hello(b"a.test")
    r = ClientHelloReader()
    assert [r.feed(hello[i:i + 1]) for i in range(len(hello))][-1] is True
    assert not r.plain and r.server_name == b"a.test" and bytes(r.data) == hello
