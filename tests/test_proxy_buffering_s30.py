"""proxy-buffer-size, proxy-buffering, proxy-buffers-number, proxy-max-temp-file-size (session
30, proxy/_response_buffer.py): the upstream response head's limit and read-ahead."""

from __future__ import annotations

import asyncio
import logging
import socket

import h11
import pytest

from ingresslib._errors import ValidationError
from ingresslib.proxy import ProxySettings, parse_config_data
from ingresslib.proxy._annotations import IMPLEMENTED, PREFIX, parse_route_options
from tests._proxy_harness import FakeUpstream, ProxyPair, Reply, Route, status_of

BIG = PREFIX + "proxy-buffer-size"


def head_of(size: int, status: bytes = b"200 OK") -> bytes:
    """A response head of exactly ``size`` bytes (status line to the blank line), no body."""
    start = b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\nX-Pad: "
    pad = size - len(start) - 4
    assert pad >= 0
    return start + b"p" * pad + b"\r\n\r\n"


def replying(head: bytes):  # type: ignore[no-untyped-def]
    def app(request: h11.Request, body: bytes, up: FakeUpstream) -> Reply:
        return Reply(head)
    return app


GET = b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n"


# ------------------------------------------------------------ part 1: the response head's limit
def test_default_limit_is_4k_a_head_of_4096_passes_4097_is_502(
        caplog: pytest.LogCaptureFixture) -> None:
    assert ProxySettings().proxy_buffer_size == 4096
    p = ProxyPair([Route()], app=replying(head_of(4096)))
    assert status_of(p.send(GET)) == 200
    p = ProxyPair([Route()], app=replying(head_of(4097)))
    with caplog.at_level(logging.ERROR):
        out = p.send(GET)
    # Before: 200 (the limit was max_response_header_size, 64 KiB).
    assert status_of(out) == 502
    rec = p.records[-1]
    assert rec.status == 502 and rec.upstream_statuses == (502,)
    assert p.closes and p.closes[-1].reuse is False  # the upstream connection closed
    assert any("upstream sent too big header" in r.getMessage() and "4096" in r.getMessage()
               for r in caplog.records)


def test_annotation_raises_the_limit() -> None:
    head = head_of(12_000)
    p = ProxyPair([Route(annotations={BIG: "16k"})], app=replying(head))
    assert status_of(p.send(GET)) == 200
    p = ProxyPair([Route(annotations={BIG: "8k"})], app=replying(head))
    assert status_of(p.send(GET)) == 502


def test_configmap_key_is_the_default() -> None:
    cfg = parse_config_data({"proxy-buffer-size": "16k"})
    assert cfg.settings.proxy_buffer_size == 16384 and not cfg.warnings
    head = head_of(12_000)
    assert status_of(ProxyPair([Route()], cfg.settings, app=replying(head)).send(GET)) == 200
    # The annotation still wins over it.
    p = ProxyPair([Route(annotations={BIG: "4k"})], cfg.settings, app=replying(head))
    assert status_of(p.send(GET)) == 502


def test_head_in_many_small_reads_is_cut_at_the_limit() -> None:
    # An upstream trickling its head: refused once the bytes held pass the limit, before
    # the head ends (nginx's buffer is full: "upstream sent too big header").
    p = ProxyPair([Route()], app=lambda request, body, up: None)
    assert p.send(GET) == b""
    up = p.upstreams[0]
    out = p.upstream_send(up, b"HTTP/1.1 200 OK\r\n")
    sent = 17
    while not out and sent < 20_000:
        out = p.upstream_send(up, b"X-A: " + b"a" * 93 + b"\r\n")
        sent += 100
    assert out, "no answer after 20,000 bytes of head"
    assert status_of(out) == 502
    assert sent <= 4096 + 100  # before: read on to 64 KiB (max_response_header_size)
    assert p.records[-1].upstream_statuses == (502,)


def test_1xx_heads_count_toward_the_limit() -> None:
    # Each head gets the whole buffer (ngx_http_upstream_process_early_hints moves the rest to
    # the buffer's start: R12), so 80 small 103s pass; together they are bounded by
    # max_response_header_size (64 KiB), past which the answer is 502.
    early = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
    head = early * 80 + head_of(200)  # each head small, together past 4k
    assert len(early) * 80 > 4096
    p = ProxyPair([Route()], app=replying(head))
    assert status_of(p.send(GET)) == 200
    many = early * 1300 + head_of(200)
    assert len(early) * 1300 > 65536
    p = ProxyPair([Route()], app=replying(many))
    assert status_of(p.send(GET)) == 502


def test_invalid_header_in_next_upstream_tries_the_next_endpoint() -> None:
    big = head_of(5000)

    def app(request: h11.Request, body: bytes, up: FakeUpstream) -> Reply:
        if up.endpoint == ("10.0.0.1", 8080):
            return Reply(big)
        return Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")

    route = Route(endpoints=[("10.0.0.1", 8080), ("10.0.0.2", 8080)],
                  annotations={PREFIX + "proxy-next-upstream": "error timeout invalid_header"})
    p = ProxyPair([route], app=app)
    out = p.send(GET)
    assert status_of(out) == 200 and out.endswith(b"ok")
    assert p.records[-1].upstream_statuses == (502, 200)
    # Without invalid_header: 502.
    route = Route(endpoints=[("10.0.0.1", 8080), ("10.0.0.2", 8080)])
    assert status_of(ProxyPair([route], app=app).send(GET)) == 502


def test_pooled_connection_takes_the_next_routes_limit() -> None:
    # One keep-alive upstream connection serving two routes with different limits: the
    # reader's limit is each request's own.
    head = head_of(6000)
    routes = [Route(path="/big", annotations={BIG: "8k"}), Route(path="/")]
    p = ProxyPair(routes, app=replying(head))
    assert status_of(p.send(b"GET /big HTTP/1.1\r\nHost: a.test\r\n\r\n")) == 200
    assert status_of(p.send(b"GET /small HTTP/1.1\r\nHost: a.test\r\n\r\n")) == 502
    assert status_of(p.send(b"GET /big HTTP/1.1\r\nHost: a.test\r\n\r\n")) == 200


@pytest.mark.parametrize("name,value", [
    ("proxy-buffer-size", "4x"), ("proxy-buffer-size", "0"), ("proxy-buffers-number", "1"),
    ("proxy-buffers-number", "four"), ("proxy-buffering", "yes"),
    ("proxy-max-temp-file-size", "-1"),
])
def test_invalid_annotation_warns_and_takes_the_configmap_value(name: str, value: str) -> None:
    settings = ProxySettings(proxy_buffer_size=8192, proxy_buffers_number=8,
                             proxy_buffering="on", proxy_max_temp_file_size=0)
    opts = parse_route_options({PREFIX + name: value}, "/", settings)
    assert len(opts.warnings) == 1 and PREFIX + name in str(opts.warnings[0])
    assert "not implemented" not in str(opts.warnings[0])
    assert (opts.proxy_buffer_size, opts.proxy_buffers_number,
            opts.proxy_max_temp_file_size) == (8192, 8, 0)
    assert opts.response_buffer == 8 * 8192


def test_the_four_annotations_are_implemented_and_do_not_warn() -> None:
    names = ("proxy-buffering", "proxy-buffer-size", "proxy-buffers-number",
             "proxy-max-temp-file-size")
    assert set(names) <= IMPLEMENTED
    opts = parse_route_options({PREFIX + "proxy-buffering": "on", BIG: "8k",
                                PREFIX + "proxy-buffers-number": "8",
                                PREFIX + "proxy-max-temp-file-size": "1m"}, "/",
                               ProxySettings())
    assert opts.warnings == ()
    assert opts.proxy_buffer_size == 8192
    assert opts.response_buffer == 8 * 8192 + 1024 * 1024


@pytest.mark.parametrize("key,value", [
    ("proxy-buffer-size", "0"), ("proxy-buffer-size", "4q"), ("proxy-buffers-number", "1"),
    ("proxy-buffering", "maybe"), ("proxy-max-temp-file-size", "lots"),
])
def test_configmap_refuses_invalid_values(key: str, value: str) -> None:
    with pytest.raises(ValidationError) as e:
        parse_config_data({key: value})
    assert key in str(e.value)


# ------------------------------------------------------------ part 2: proxy-buffering
ON = {PREFIX + "proxy-buffering": "on"}
MIB = 1024 * 1024


def test_buffering_off_by_default_the_core_offers_no_read_ahead() -> None:
    assert ProxySettings().proxy_buffering == "off"
    p = ProxyPair([Route()])
    assert status_of(p.send(GET)) == 200
    assert p.conn.response_buffer == 0


def test_buffering_on_read_ahead_is_buffers_plus_temp_file_capped() -> None:
    p = ProxyPair([Route(annotations=dict(ON))])
    assert status_of(p.send(GET)) == 200
    # 4 x 4k + proxy-max-temp-file-size (1024m), held in memory: capped at 8 MiB.
    assert p.conn.response_buffer == 8 * MIB
    p = ProxyPair([Route(annotations={**ON, PREFIX + "proxy-max-temp-file-size": "0",
                                      PREFIX + "proxy-buffers-number": "8", BIG: "8k"})])
    p.send(GET)
    assert p.conn.response_buffer == 8 * 8192
    s = ProxySettings(proxy_buffering="on", response_buffering_limit=MIB)
    p = ProxyPair([Route()], s)
    p.send(GET)
    assert p.conn.response_buffer == MIB


@pytest.mark.parametrize("route_on,value,expected", [
    (True, b"no", 0), (True, b"NO", 0), (False, b"yes", 8 * MIB), (False, b"Yes", 8 * MIB),
    (True, b"maybe", 8 * MIB), (False, b"maybe", 0), (True, b"yes", 8 * MIB),
])
def test_x_accel_buffering_switches_it_per_response_and_is_not_passed(
        route_on: bool, value: bytes, expected: int) -> None:
    body = b"hello"
    head = (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Accel-Buffering: " + value
            + b"\r\n\r\n" + body)
    heads = [head, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"]

    def app(request: h11.Request, body: bytes, up: FakeUpstream) -> Reply:
        return Reply(heads.pop(0))

    p = ProxyPair([Route(annotations=dict(ON) if route_on else {})], app=app)
    out = p.send(GET)
    assert status_of(out) == 200 and out.endswith(body)
    assert b"x-accel-buffering" not in out.lower()
    assert p.conn.response_buffer == expected
    # The next response of the connection is its own again.
    p.send(GET)
    assert p.conn.response_buffer == (8 * MIB if route_on else 0)


def test_several_x_accel_buffering_lines_the_last_valid_one_wins() -> None:
    head = (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Accel-Buffering: no\r\n"
            b"X-Accel-Buffering: junk\r\n\r\n")
    p = ProxyPair([Route(annotations=dict(ON))], app=replying(head))
    p.send(GET)
    assert p.conn.response_buffer == 0


# ------------------------------------------------------------ through ProxyServer
#: Past what the kernel's buffers hold between the proxy and a client with a 4 KiB receive
#: buffer (tcp_wmem's 4 MiB at most), within the 8 MiB proxy-buffering holds by default.
SIZE = 7 * MIB


async def _big_upstream() -> tuple[asyncio.AbstractServer, int, list[int], asyncio.Event]:
    """An upstream answering ``/big`` with SIZE bytes, anything else with 5; ``counts``:
    requests per connection; ``written`` set once a whole response is handed to its socket."""
    counts: list[int] = []
    written = asyncio.Event()
    body = b"b" * SIZE

    async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        i = len(counts)
        counts.append(0)
        try:
            while True:
                head = await r.readuntil(b"\r\n\r\n")
                counts[i] += 1
                data = body if head.startswith(b"GET /big ") else b"small"
                w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(data))
                w.write(data)
                await w.drain()
                written.set()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            w.close()

    srv = await asyncio.start_server(serve, "127.0.0.1", 0)
    return srv, srv.sockets[0].getsockname()[1], counts, written


def _slow_client(port: int) -> socket.socket:
    """A client that sends one request and reads nothing for now (small receive buffer)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET /big HTTP/1.1\r\nHost: a.test\r\n\r\n")
    s.setblocking(False)
    return s


async def _until(cond, seconds: float = 3.0) -> bool:  # type: ignore[no-untyped-def]
    for _ in range(int(seconds / 0.01)):
        if cond():
            return True
        await asyncio.sleep(0.01)
    return bool(cond())


async def _read_response(loop: asyncio.AbstractEventLoop, s: socket.socket,
                         size: int = SIZE) -> bytes:
    data = bytearray()
    while True:
        end = data.find(b"\r\n\r\n")
        if end >= 0 and len(data) >= end + 4 + size:
            return bytes(data)
        chunk = await asyncio.wait_for(loop.sock_recv(s, 1 << 20), 3.0)
        assert chunk
        data += chunk


@pytest.mark.asyncio
async def test_server_buffering_on_releases_the_upstream_before_the_slow_client_read() -> None:
    from tests._server_helpers import StubRouter
    from tests._upstream_helpers import start_proxy

    srv, uport, counts, written = await _big_upstream()
    server, port = await start_proxy(StubRouter([("127.0.0.1", uport)], annotations=dict(ON)))
    loop = asyncio.get_running_loop()
    s = _slow_client(port)
    try:
        # The whole response read while the client took (almost) nothing of it: the upstream
        # connection is back in the pool, idle.
        assert await _until(lambda: server.pool.idle_count() == 1)
        assert written.is_set()
        # ... the client's write buffer still full: most of the response is held for it.
        assert server.connections and all(c.client_full for c in server.connections)
        out = await _read_response(loop, s)
        assert out.startswith(b"HTTP/1.1 200 ") and out.endswith(b"b" * 1000)
        # The pooled connection carries the next request.
        await loop.sock_sendall(s, b"GET /small HTTP/1.1\r\nHost: a.test\r\n\r\n")
        out = await _read_response(loop, s, 5)
        assert out.startswith(b"HTTP/1.1 200 ") and out.endswith(b"small")
        assert counts == [2]
    finally:
        s.close()
        await server.shutdown(1)
        srv.close()
        await srv.wait_closed()


@pytest.mark.asyncio
async def test_server_buffering_off_reads_the_upstream_as_the_client_takes_it() -> None:
    from tests._server_helpers import StubRouter
    from tests._upstream_helpers import start_proxy

    srv, uport, counts, written = await _big_upstream()
    server, port = await start_proxy(StubRouter([("127.0.0.1", uport)]))
    loop = asyncio.get_running_loop()
    s = _slow_client(port)
    try:
        assert await _until(lambda: bool(server.connections) and all(
            c.client_full for c in server.connections))
        down = next(iter(server.connections))
        # The upstream is not read while the client does not take the response, which is
        # not read whole: its connection is still the request's, not pooled.
        assert down.upstreams and all(not up.transport.is_reading()
                                      for up in down.upstreams.values())
        assert server.pool.idle_count() == 0
        out = await _read_response(loop, s)
        assert out.startswith(b"HTTP/1.1 200 ")
        assert await _until(lambda: server.pool.idle_count() == 1)
    finally:
        s.close()
        await server.shutdown(1)
        srv.close()
        await srv.wait_closed()


# ------------------------------------------------------------ cost (rule of session 26)
def test_core_plain_request_calls_no_response_buffer_code() -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_perf_guards_s25 import MANIFESTS, core_request, python_calls

    from ingresslib._load import parse_manifests
    from ingresslib._router import Router
    from ingresslib.proxy._connection import Proxy

    proxy = Proxy(Router(parse_manifests(MANIFESTS)), records=False)
    core_request(proxy, 0.0)
    with python_calls() as seen:
        actions = core_request(proxy, 1.0)
    assert seen, "the profile hook saw no call"
    assert [(f, n) for f, n in seen if f == "_response_buffer.py"] == []
    assert b"".join(getattr(a, "data", b"") for a in actions).startswith(b"HTTP/1.1 200 ")


# ------------------------------------------------------------ IngressASGI
def test_asgi_takes_the_annotations_without_warning() -> None:
    # An ASGI app is no upstream (no response head is parsed, nothing is read ahead): the
    # annotations are read, valid, and change nothing there; they no longer warn.
    from test_perf_guards_s25 import MANIFESTS, _app, _asgi_call

    from ingresslib._asgi import IngressASGI
    from ingresslib._load import parse_manifests

    base = "nginx.ingress.kubernetes.io/proxy-body-size: 8m"
    extra = (base + ", nginx.ingress.kubernetes.io/proxy-buffer-size: 16k, "
             "nginx.ingress.kubernetes.io/proxy-buffering: 'on', "
             "nginx.ingress.kubernetes.io/proxy-buffers-number: '8', "
             "nginx.ingress.kubernetes.io/proxy-max-temp-file-size: 1m")
    assert base in MANIFESTS
    asgi = IngressASGI(parse_manifests(MANIFESTS.replace(base, extra)), {"default/up": _app})
    sent: list[dict[str, object]] = []
    _asgi_call(asgi, sent, [])
    assert sent[0]["status"] == 200
    (opts,) = [o for _, o in asgi._options.values()]
    assert opts.warnings == ()
    assert opts.proxy_buffer_size == 16384 and opts.response_buffer == 8 * 16384 + MIB


def test_proxy_busy_buffers_size_is_not_taken_for_a_typo() -> None:
    # Before: "unknown annotation, ignored; did you mean ...proxy-buffer-size?"
    opts = parse_route_options({PREFIX + "proxy-busy-buffers-size": "8k"}, "/", ProxySettings())
    (w,) = opts.warnings
    assert "not implemented" in str(w) and "did you mean" not in str(w)


# ------------------------------------------------------------ explain
def test_explain_shows_them_when_not_the_defaults() -> None:
    import ingresslib
    from tests.test_explain_s26b import _res

    doc = ingresslib.explain(_res({BIG: "16k", PREFIX + "proxy-buffering": "on",
                                   PREFIX + "proxy-max-temp-file-size": "0"}),
                             "http://a.test/x")
    assert doc["proxy_buffer_size"] == 16384
    assert doc["proxy_buffering"] == {"read_ahead": 4 * 16384}
    assert not [w for w in doc.get("warnings", ()) if "proxy-buffer" in str(w)]
    plain = ingresslib.explain(_res({}), "http://a.test/x")
    assert "proxy_buffer_size" not in plain and "proxy_buffering" not in plain
