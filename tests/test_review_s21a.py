"""Review of session 21's framing / IngressASGI landing (R21a): guards around the unrouted
chunked body that the core now reads before its answer (``ClientConnection._defer_unrouted``)
and IngressASGI's twin of it (``_over_limit``), on cases the landing's tests left out.

nginx reads such a body for the default backend from the server's ``location /`` (its
client_max_body_size: the server owner's proxy-body-size), so:

- a HEAD gets its 404 at the body's end, bodiless, and the connection stays for the next
  request;
- the record says what happened: the body's bytes in ``bytes_in``, the ``100 Continue`` sent
  for it in ``bytes_out``;
- a body found malformed while it is read gets one 400 (nothing was answered yet), and a client
  gone mid-body 400 with nothing written;
- what answers before the body is read still answers at once: a www twin's redirect, and the
  404 of a server whose owner sets ``proxy-body-size: 0`` (no limit to check);
- IngressASGI under uvicorn on 127.0.0.1: 413 past the limit, 404 within it with keep-alive.
"""

from __future__ import annotations

import asyncio

import pytest

from ingresslib.proxy import ProxySettings
from tests._proxy_harness import ProxyPair, Route, ingress_yaml, routed_pair, status_of

P = "nginx.ingress.kubernetes.io/"
CHUNKED = b"Transfer-Encoding: chunked\r\n"


def _head(host: bytes = b"nowhere.test", method: bytes = b"POST", extra: bytes = b"") -> bytes:
    return method + b" /x HTTP/1.1\r\nHost: " + host + b"\r\n" + CHUNKED + extra + b"\r\n"


def _unrouted(limit: int = 10) -> ProxyPair:
    return ProxyPair([Route(host="other.test")], ProxySettings(proxy_body_size=limit))


def test_a_head_request_gets_its_bodiless_404_at_the_bodys_end_and_keeps_the_connection() -> None:
    pair = _unrouted()
    assert pair.send(_head(method=b"HEAD") + b"3\r\nabc\r\n") == b""  # still reading
    out = pair.send(b"0\r\n\r\nGET /y HTTP/1.1\r\nHost: other.test\r\n\r\n")
    first, _, rest = out.partition(b"\r\n\r\n")
    assert status_of(out) == 404 and b"content-length: 14" in first
    assert rest.startswith(b"HTTP/1.1 200 ")  # no 404 body in between: the next answer
    assert [r.status for r in pair.records] == [404, 200] and not pair.closed


def test_the_record_of_a_deferred_404_counts_the_body_and_the_100_continue() -> None:
    pair = _unrouted()
    head = _head(extra=b"Expect: 100-continue\r\n")
    body = b"3\r\nabc\r\n0\r\n\r\n"
    out = pair.send(head) + pair.send(body)
    assert out.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 ")
    (record,) = pair.records
    assert (record.status, record.phase, record.upstreams) == (404, "location", ())
    assert record.bytes_in == len(head) + len(body)
    assert record.bytes_out == len(out) and record.body_bytes_out == len(b"404 Not Found\n")


def test_a_body_found_malformed_while_it_is_read_gets_one_400() -> None:
    pair = _unrouted()
    assert pair.send(_head() + b"3\r\nabc\r\n") == b""
    out = pair.send(b"zz\r\n")
    assert status_of(out) == 400 and out.count(b"HTTP/1.1 ") == 1
    assert pair.closed and [r.status for r in pair.records] == [400]


def test_a_client_gone_mid_body_is_400_with_nothing_written() -> None:
    pair = _unrouted()
    assert pair.send(_head() + b"3\r\nabc\r\n") == b""
    assert pair.eof() == b"" and pair.closed
    # nginx logs 400 for a body cut short (session 24, tests/test_small_s24.py)
    assert [r.status for r in pair.records] == [400]


def test_what_answers_before_the_body_is_read_still_answers_at_once() -> None:
    # The www twin's server answers with a server-level return (before any body is read).
    twin = ingress_yaml("a", "a.test", {P + "from-to-www-redirect": "true",
                                        P + "proxy-body-size": "4"}, path="/foo")
    pair = routed_pair(twin)
    assert status_of(pair.send(_head(b"www.a.test"))) == 308 and not pair.closed
    # An owner with proxy-body-size 0 has no limit to check: the 404 at once, the body
    # discarded, whatever the settings' limit says.
    unlimited = ingress_yaml("a", "a.test", {P + "proxy-body-size": "0"}, path="/foo")
    pair = routed_pair(unlimited, settings=ProxySettings(proxy_body_size=4))
    assert status_of(pair.send(_head(b"a.test"))) == 404
    assert pair.send(b"5\r\nhello\r\n0\r\n\r\n") == b"" and not pair.closed
    assert pair.downstream_closes == [] and [r.status for r in pair.records] == [404]
    # A huge owner limit: read to its end (counted), then the 404, keep-alive.
    huge = ingress_yaml("a", "a.test", {P + "proxy-body-size": "8g"}, path="/foo")
    pair = routed_pair(huge, settings=ProxySettings(proxy_body_size=4))
    assert pair.send(_head(b"a.test") + b"5\r\nhello\r\n") == b""
    assert status_of(pair.send(b"0\r\n\r\n")) == 404 and not pair.closed


@pytest.mark.network
@pytest.mark.asyncio
async def test_ingress_asgi_under_uvicorn_reads_the_unrouted_body_first() -> None:
    from ingresslib._asgi import IngressASGI
    from ingresslib._load import parse_manifests

    from tests.test_asgi import MANIFESTS, Served, echo

    app = IngressASGI(parse_manifests(MANIFESTS), {"default/web": echo("web")},
                      settings=ProxySettings(proxy_body_size=10))

    async def exchange(port: int, data: bytes, body: bytes, n: int) -> bytes:
        """Send ``data``; read until ``n`` answers ending in ``body`` are in."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(data)
            await writer.drain()
            out = b""
            while out.count(body) < n:
                chunk = await asyncio.wait_for(reader.read(65536), 5)
                if not chunk:
                    break
                out += chunk
            return out
        finally:
            writer.close()
            await writer.wait_closed()

    head = _head()
    async with Served(app) as s:
        over = await exchange(s.port, head + b"6\r\nabcdef\r\n6\r\nabcdef\r\n0\r\n\r\n",
                              b"413 Payload Too Large\n", 1)
        assert status_of(over) == 413 and over.count(b"HTTP/1.1 ") == 1
        within = await exchange(
            s.port, head + b"3\r\nabc\r\n0\r\n\r\nGET /x HTTP/1.1\r\nHost: nowhere.test\r\n\r\n",
            b"404 Not Found\n", 2)
        assert status_of(within) == 404 and within.count(b"HTTP/1.1 404 ") == 2



@pytest.mark.network
@pytest.mark.asyncio
async def test_an_unrouted_bodiless_request_gets_no_100_continue_under_uvicorn() -> None:
    from ingresslib._asgi import IngressASGI
    from ingresslib._load import parse_manifests

    from tests.test_asgi import MANIFESTS, Served, echo

    app = IngressASGI(parse_manifests(MANIFESTS), {"default/web": echo("web")},
                      settings=ProxySettings(proxy_body_size=10))
    async with Served(app) as s:
        reader, writer = await asyncio.open_connection("127.0.0.1", s.port)
        try:
            # The proxy core answers 404 at once, no interim response (nothing to read).
            writer.write(b"GET /x HTTP/1.1\r\nHost: nowhere.test\r\nExpect: 100-continue\r\n"
                         b"Connection: close\r\n\r\n")
            data = await asyncio.wait_for(reader.read(), 5)
        finally:
            writer.close()
            await writer.wait_closed()
    assert data.startswith(b"HTTP/1.1 404 "), data[:40]
