"""Session 24 (P1): the proxy core's request framing oddities.

- An absolute-form target whose authority names the Host's host and port written differently
  (the scheme's default port, case, one trailing dot) was a 400: the two were compared as
  strings. RFC 9112 §3.2.2 / RFC 9110 §4.2.3: ``http://a.test:80/x`` is ``http://a.test/x``.
  A real mismatch stays 400 (SEMANTICS §9).
- ``OPTIONS *`` was recorded as answered by the default backend's location (logged
  ``upstream-default-backend``, counted in the metrics); nginx's request-line parser refuses a
  ``*`` target, so no location ever logs it: it is a refused head ("head": no upstream name,
  not counted). The answer itself stays ours (200, Allow).
- A response to HEAD without Content-Length was given ``Transfer-Encoding: chunked``; nginx's
  chunked filter leaves HEAD alone (ngx_http_chunked_header_filter: "r->method &
  NGX_HTTP_HEAD" -> next filter) and never passes the upstream's Transfer-Encoding.
- Guards, over real sockets on 127.0.0.1: pipelined Content-Length, chunked (trailers) and
  GET-with-body requests reach a backend whole and in order; ``Expect: 100-continue`` with a
  declared length over proxy-body-size is a 413 with no "100 Continue".
"""

from __future__ import annotations

import asyncio

import h11
import pytest

from ingresslib._accesslog import upstream_names
from ingresslib._metrics import Metrics
from ingresslib.proxy._server import ProxyServer

from _proxy_harness import ProxyPair, Reply, status_of
from tests._server_helpers import StubRouter


def _head(raw: bytes) -> bytes:
    return raw[: raw.index(b"\r\n\r\n") + 4]


def _line_and_host(pair: ProxyPair) -> tuple[bytes, bytes]:
    head = _head(bytes(pair.upstreams[0].raw))
    lines = head.split(b"\r\n")
    hosts = [ln.split(b":", 1)[1].strip() for ln in lines[1:] if ln.lower().startswith(b"host:")]
    assert len(hosts) == 1
    return lines[0], hosts[0]


# --- 1. absolute-form and Host -------------------------------------------------------------

@pytest.mark.parametrize("target, host", [
    (b"http://a.test:80/x?q=1", b"a.test"),        # the scheme's default port written out
    (b"http://a.test/x?q=1", b"a.test:80"),        # ... or in the Host
    (b"https://a.test:443/x?q=1", b"a.test"),      # https: 443
    (b"http://A.Test/x?q=1", b"a.test"),           # case
    (b"http://a.test./x?q=1", b"a.test"),          # one trailing dot
    (b"http://a.test:8080/x?q=1", b"A.TEST.:8080"),
    (b"http://[::1]:80/x?q=1", b"[::1]"),          # IPv6 literal
])
def test_absolute_form_same_host_written_differently_is_routed(target: bytes,
                                                                host: bytes) -> None:
    pair = ProxyPair()
    out = pair.send(b"GET " + target + b" HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    assert status_of(out) == 200
    # Forwarded as origin-form, the Host as the client sent it (SEMANTICS §9: passed through).
    assert _line_and_host(pair) == (b"GET /x?q=1 HTTP/1.1", host)
    assert [r.status for r in pair.records] == [200]


@pytest.mark.parametrize("target, host", [
    (b"http://b.test/x", b"a.test"),               # another host: a routing confusion
    (b"http://a.test:8080/x", b"a.test"),          # another port
    (b"https://a.test/x", b"a.test:80"),           # https's default is 443, not 80
    (b"http://a.test:0/x", b"a.test"),             # an invalid authority
    (b"http://a..test/x", b"a..test"),             # ... whatever the Host says
    (b"http://a.test:/x", b"a.test"),
])
def test_absolute_form_other_host_or_bad_authority_is_400(target: bytes, host: bytes) -> None:
    pair = ProxyPair()
    out = pair.send(b"GET " + target + b" HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    assert status_of(out) == 400
    assert pair.opens == [] and pair.router.calls == []


def test_absolute_form_without_host_routes_on_its_authority() -> None:
    """guard: an HTTP/1.0 request without Host takes the authority as its host."""
    pair = ProxyPair()
    out = pair.send(b"GET http://a.test:80/x HTTP/1.0\r\n\r\n")
    assert status_of(out) == 200
    assert pair.router.calls[0][1:3] == ("a.test:80", "/x")


# --- 2. OPTIONS * ----------------------------------------------------------------------------

def test_options_star_is_logged_and_counted_as_a_refused_head() -> None:
    pair = ProxyPair()
    out = pair.send(b"OPTIONS * HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert status_of(out) == 200 and b"\r\nallow: " in out.lower()
    (record,) = pair.records
    assert record.phase == "head"
    assert upstream_names(record) == ("", "")
    metrics = Metrics()
    metrics.observe(record)
    assert b'method="OPTIONS"' not in metrics.render()
    assert pair.router.calls == [] and pair.opens == []
    # The connection stays usable.
    out = pair.send(b"GET /y HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert status_of(out) == 200 and not pair.closed


def test_routed_request_is_still_counted() -> None:
    """guard for the test above: the same Metrics count an ordinary request."""
    pair = ProxyPair()
    pair.send(b"OPTIONS /x HTTP/1.1\r\nHost: a.test\r\n\r\n")
    metrics = Metrics()
    metrics.observe(pair.records[0])
    assert b'method="OPTIONS"' in metrics.render()


# --- 3. HEAD without Content-Length ----------------------------------------------------------

def _unknown_length(request: object, body: bytes, up: object) -> Reply:
    return Reply(b"HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\n", close=True)


def test_head_response_of_unknown_length_gets_no_transfer_encoding() -> None:
    pair = ProxyPair(app=_unknown_length)
    out = pair.send(b"HEAD /x HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert out == b"HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\n"
    assert not pair.closed  # keep-alive, as nginx (HEAD: no body, no framing needed)
    assert pair.records[0].status == 200


def test_head_response_announcing_chunked_forwards_no_transfer_encoding() -> None:
    pair = ProxyPair(app=lambda r, b, u: Reply(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"))
    out = pair.send(b"HEAD /x HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert out == b"HTTP/1.1 200 OK\r\n\r\n"
    out = pair.send(b"GET /y HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert status_of(out) == 200


def test_guard_head_keeps_content_length_and_get_stays_chunked() -> None:
    pair = ProxyPair(app=lambda r, b, u: Reply(
        b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n"
        + (b"" if r.method == b"HEAD" else b"1234567")))
    out = pair.send(b"HEAD /x HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert out == b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n"
    pair = ProxyPair(app=_unknown_length)
    out = pair.send(b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 OK\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\n\r\n")
    pair = ProxyPair(app=_unknown_length)
    out = pair.send(b"HEAD /x HTTP/1.0\r\nHost: a.test\r\n\r\n")
    assert out == b"HTTP/1.1 200 OK\r\nX-A: 1\r\nConnection: close\r\n\r\n"


# --- request bodies end to end: a real backend on 127.0.0.1 ----------------------------------


async def _h11_backend(seen: list[tuple[bytes, bytes, bytes, int]]
                       ) -> tuple[asyncio.Server, int]:
    """Parses every request with h11 and answers with what it received: method, target,
    framing header and body (``seen`` keeps them, and the connection number)."""
    conns = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal conns
        conns += 1
        me = conns
        conn = h11.Connection(h11.SERVER)
        req: h11.Request | None = None
        body = b""
        try:
            while True:
                ev = conn.next_event()
                if ev is h11.NEED_DATA:
                    data = await reader.read(65536)
                    conn.receive_data(data)
                    if not data:
                        return
                    continue
                if isinstance(ev, h11.Request):
                    req, body = ev, b""
                elif isinstance(ev, h11.Data):
                    body += ev.data
                elif isinstance(ev, h11.EndOfMessage):
                    assert req is not None
                    framing = b"".join(b"%s=%s;" % (n, v) for n, v in req.headers
                                       if n in (b"content-length", b"transfer-encoding"))
                    seen.append((req.method + b" " + req.target, framing, body, me))
                    answer = b"%s|%s|%s" % (req.target, framing, body)
                    writer.write(conn.send(h11.Response(
                        status_code=200, headers=[("Content-Length", str(len(answer)))]))
                                 + conn.send(h11.Data(data=answer))
                                 + conn.send(h11.EndOfMessage()))
                    await writer.drain()
                    conn.start_next_cycle()
                else:
                    return
        finally:
            writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    return srv, srv.sockets[0].getsockname()[1]


async def _read_responses(reader: asyncio.StreamReader, n: int) -> list[tuple[int, bytes]]:
    client = h11.Connection(h11.CLIENT)
    # The client "sent" n GETs as far as its state machine knows (the bytes went raw).
    out: list[tuple[int, bytes]] = []
    status, body = 0, b""
    while len(out) < n:
        if client.our_state is h11.IDLE:
            client.send(h11.Request(method="GET", target="/", headers=[("Host", "a")]))
            client.send(h11.EndOfMessage())
        ev = client.next_event()
        if ev is h11.NEED_DATA:
            data = await asyncio.wait_for(reader.read(65536), 2.0)
            assert data, "proxy closed early"
            client.receive_data(data)
        elif isinstance(ev, h11.Response):
            status, body = ev.status_code, b""
        elif isinstance(ev, h11.Data):
            body += ev.data
        elif isinstance(ev, h11.EndOfMessage):
            out.append((status, body))
            client.start_next_cycle()
    return out


@pytest.mark.network
@pytest.mark.asyncio
async def test_pipelined_bodies_reach_a_real_backend_framed_and_in_order() -> None:
    """Content-Length, chunked (with an extension and trailers), a GET with a body, then a
    bodiless GET, pipelined in one write: each body reaches the backend whole and re-framed
    (chunked stays chunked, trailers dropped), each response comes back in order, one
    upstream connection for all."""
    seen: list[tuple[bytes, bytes, bytes, int]] = []
    srv, up_port = await _h11_backend(seen)
    records: list[object] = []
    server = ProxyServer(StubRouter([("127.0.0.1", up_port)]), on_record=records.append)
    await server.start(("127.0.0.1", 0))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.addresses[0][2])
        writer.write(
            b"POST /cl HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n\r\nhello"
            b"POST /te HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n"
            b"GET /gb HTTP/1.1\r\nHost: a.test\r\nContent-Length: 2\r\n\r\nxy"
            b"GET /end HTTP/1.1\r\nHost: a.test\r\n\r\n")
        await writer.drain()
        got = await _read_responses(reader, 4)
        assert got == [
            (200, b"/cl|content-length=5;|hello"),
            (200, b"/te|transfer-encoding=chunked;|abcde"),
            (200, b"/gb|content-length=2;|xy"),
            (200, b"/end||"),
        ]
        assert [s[3] for s in seen] == [1, 1, 1, 1]
        writer.close()
    finally:
        await server.shutdown(1)
        srv.close()
        await srv.wait_closed()
    assert [getattr(r, "status") for r in records] == [200, 200, 200, 200]


@pytest.mark.network
@pytest.mark.asyncio
async def test_expect_100_continue_then_413_over_a_real_socket() -> None:
    """A declared Content-Length over proxy-body-size with ``Expect: 100-continue``: 413 at
    once, no "100 Continue" (nginx sets r->expect_tested before discarding), the connection
    closed (nginx: a 413 ends keep-alive), nothing reaches the backend."""
    seen: list[tuple[bytes, bytes, bytes, int]] = []
    srv, up_port = await _h11_backend(seen)
    router = StubRouter([("127.0.0.1", up_port)],
                        annotations={"nginx.ingress.kubernetes.io/proxy-body-size": "4"})
    server = ProxyServer(router)
    await server.start(("127.0.0.1", 0))
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.addresses[0][2])
        writer.write(b"PUT /x HTTP/1.1\r\nHost: a.test\r\nContent-Length: 10\r\n"
                     b"Expect: 100-continue\r\n\r\n")
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 2.0)  # to the proxy's close
        assert data.startswith(b"HTTP/1.1 413 ") and b"100 Continue" not in data
        assert b"\r\nconnection: close\r\n" in data.lower()
        assert seen == []
        writer.close()
    finally:
        await server.shutdown(1)
        srv.close()
        await srv.wait_closed()


# The ASGI adapter takes an absolute-form target as the proxy does (session 24: it compared
# the authority with Host as strings, so `http://a.test:80/x` with `Host: a.test` was a 400
# there and routed by the proxy).
@pytest.mark.parametrize("target, host, ok", [
    ("http://a.test:80/x", "a.test", True),
    ("http://A.Test./x", "a.test:80", True),
    ("https://a.test:443/x", "a.test", True),
    ("http://a.test:81/x", "a.test", False),
    ("http://b.test/x", "a.test", False),
    ("http://a.test:443/x", "a.test", False),
])
def test_asgi_absolute_form_agrees_with_the_proxy(target: str, host: str, ok: bool) -> None:
    from ingresslib._asgi_scan import _absolute_form
    from ingresslib._errors import BadRequestError

    if ok:
        assert _absolute_form(target, host, True) == ("/x", host)
    else:
        with pytest.raises(BadRequestError):
            _absolute_form(target, host, True)


def test_asgi_absolute_form_refuses_an_invalid_authority_even_with_host() -> None:
    from ingresslib._asgi_scan import _absolute_form
    from ingresslib._errors import BadRequestError

    with pytest.raises(BadRequestError):
        _absolute_form("http://a b/x", "a b", True)
