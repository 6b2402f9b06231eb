"""Review x19 (session 34): the HTTP/1.1 edge (malformed requests, header and body limits,
Upgrade) against nginx (ngx_http_parse.c, ngx_http_request.c, ngx_http_request_body.c,
ngx_http_upstream.c) through the sans-IO core (``tests/_proxy_harness.py``).

DEFECT found (the four tests marked DEFECT failed before the fix in the same change): a chunked
request body was held to ``proxy-body-size`` only as its bytes arrived, where nginx refuses it
as soon as a chunk line announces more than the limit leaves
(ngx_http_request_body_chunked_filter: "if (clcf->client_max_body_size &&
clcf->client_max_body_size - r->headers_in.content_length_n < rb->chunked->size) { ...
"client intended to send too large chunked body" ... return
NGX_HTTP_REQUEST_ENTITY_TOO_LARGE; }", checked when ngx_http_parse_chunked returns the chunk
line, before its data). A client announcing a chunk of 256 bytes past a 10-byte limit and
sending 3 of them had those bytes forwarded and no answer until ``client-body-timeout`` (408),
where nginx answers 413 at the chunk line; a chunk crossing the limit had its bytes up to the
limit forwarded before the 413. Same for a request no rule routes whose chunked body is read
for the default backend's 404 (``_defer_unrouted``). A body discarded after a local answer
(403, 404, redirect) has no limit, as nginx's discarding reader checks none.

Checked and found right (each probed through the core or IngressASGI; most already held by
tests/test_proxy_hostile.py, test_desync_review.py, test_review_s23_http.py,
test_server_limits.py, test_unrouted_413_s17.py, which are not repeated here):

- Request line: a space, a CTL (``\\x01``, DEL, TAB), a non-ASCII byte, ``#`` in the target,
  two spaces, a trailing space, lower-case/mixed-case methods (``get``, ``Get``), HTTP/0.9's
  ``GET /``, ``HTTP/0.9``, ``HTTP/1.2``, ``HTTP/2.0``: 400 and close, nothing reaches a
  backend (the versions diverge from nginx: README row "request line version").
  ``FOO_BAR`` (nginx's method characters) is proxied. A request line over the limit: 414.
- Targets (ngx_http_parse_complex_uri): ``..`` above the root (raw or ``%2e%2e``), ``%00``,
  ``%2F``, a bad escape: 400; ``//a.example/x`` is the path ``/a.example/x``.
- Absolute form: ingresslib routes by the Host header's host and refuses (400) a target whose
  authority names another host or port (nginx routes by the request line's host: README);
  the same host written differently (case, a trailing dot, the scheme's default port) passes
  and is routed and forwarded as origin-form with the client's Host; HTTP/1.0 without Host
  routes by the target's authority; userinfo, ``ftp://``, an empty authority: 400.
- Host: upper case and one trailing dot (``A.EXAMPLE.``, ``a.example.:80``) route as the
  lower-cased name, the Host forwarded as received; a port is stripped for routing; an IPv6
  literal and an IP address fall to the host-less rules; two Host lines (even equal), ``a..b``,
  ``a/b``, ``a\\b``, a space, an empty port, a letter port, non-ASCII: 400; HTTP/1.1 without
  Host: 400; HTTP/1.0 without Host: the host-less rules (default server), the upstream Host
  the endpoint's address.
- Header lines: a space or a control character in a name, a space before the colon, obs-fold,
  NUL or a CTL in a value: 400 (nginx >= 1.21.1 refuses the first two as well); ``X_Foo``
  dropped (``enable-underscores-in-headers`` off); a non-ASCII value passes; a line or the
  head over the limits: 431. A name with a non-token byte (``X\\xe9``) is 400, where nginx's
  ``ignore_invalid_headers`` drops the line (README row).
- Framing: CL+TE, TE other than chunked (``gzip``, ``identity``, ``gzip, chunked``), ``-1``,
  ``+1``: 400 (nginx: 501 for an unknown coding, README); ``Chunked`` in any case is chunked;
  a GET with a body forwards it.
- Body limits: a Content-Length over ``proxy-body-size`` is 413 before the body is read, with
  no ``100 Continue`` (nginx's "r->expect_tested = 1"), and closes; equal to the limit passes;
  ``proxy-body-size`` 0 is unlimited; a request no rule routes with a Content-Length over the
  server's limit: 413; a chunked body crossing the limit: 413, the upstream connection closed
  and never reused, the backend never sees the rest, the next pipelined request never read.
- Upgrade: a GET with ``Upgrade`` and ``Connection: upgrade`` answered 101 is spliced (client
  bytes sent before the 101 reach the backend after it, both directions flow); a refused
  upgrade (200) is not spliced (the next bytes are parsed as HTTP: 400); a 101 to a request
  that did not ask (no ``Connection: upgrade``, a POST, no Upgrade): 502, never spliced; the
  backend gets ``Upgrade``/``Connection: upgrade`` only when the client asked.
- IngressASGI: Host case and trailing dot route, two Host headers / ``a..b`` / no Host on
  HTTP/1.1: 400; a Content-Length over the limit: 413 before the app runs (``Expect``
  included); ``proxy-body-size`` 0 unlimited; a streamed body past the limit: 413; a
  WebSocket scope is routed and accepted, refused through ``websocket.http.response`` (400 for
  a bad Host); ``X_Foo`` dropped; CL+TE: 400.
- A mutation fuzz (4,000 heads per seed, three seeds, whole and 7-byte reads, limits 0, 3 and
  1 MiB) found no 5xx for a malformed request and no exception out of the core.
"""

from __future__ import annotations

import asyncio

from _proxy_harness import ProxyPair, Route, status_of
from _upstream_helpers import TrackedUpstream, read_to_eof, start_proxy, until

from ingresslib.proxy import ProxySettings
from tests._server_helpers import StubRouter

_LIMIT = ProxySettings(proxy_body_size=10)
_CHUNKED_HEAD = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"


def _sent_body(pair: ProxyPair) -> bytes:
    """The chunked body bytes the upstream received after the request head."""
    return pair.upstream_bytes.partition(b"\r\n\r\n")[2]


def test_chunk_announcing_more_than_the_limit_is_413_at_its_line() -> None:
    # DEFECT: the 3 bytes of a 256-byte chunk went to the backend and the client waited for
    # client_body_timeout; nginx answers 413 when the chunk line is read.
    pair = ProxyPair([Route()], _LIMIT)
    out = pair.send(_CHUNKED_HEAD + b"100\r\nabc")
    assert status_of(out) == 413, out
    assert pair.closed
    assert b"abc" not in pair.upstream_bytes
    assert all(not c.reuse for c in pair.closes)


def test_chunk_crossing_the_limit_is_413_before_its_data_is_forwarded() -> None:
    # DEFECT: "wor" (the first bytes of a 6-byte chunk after 5 of 10 allowed) was forwarded.
    pair = ProxyPair([Route()], _LIMIT)
    assert pair.send(_CHUNKED_HEAD + b"5\r\nhello\r\n") == b""
    out = pair.send(b"6\r\nwor")
    assert status_of(out) == 413, out
    assert pair.closed
    assert _sent_body(pair) == b"5\r\nhello\r\n"
    assert pair.records[-1].status == 413


def test_chunk_line_over_the_limit_of_an_unrouted_request_is_413_at_once() -> None:
    # DEFECT: a request no rule routes, its chunked body read for the default backend's 404
    # (``_defer_unrouted``), was refused only once its bytes passed the limit.
    pair = ProxyPair([Route(host="other.test")], _LIMIT)
    out = pair.send(_CHUNKED_HEAD + b"100\r\nabc")
    assert status_of(out) == 413, out
    assert pair.closed
    assert pair.upstreams == []


def test_chunks_up_to_the_limit_pass() -> None:
    # guard: nginx's test is "limit - received < size": exactly the limit passes.
    pair = ProxyPair([Route()], _LIMIT)
    out = pair.send(_CHUNKED_HEAD + b"5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n")
    assert status_of(out) == 200, out
    assert not pair.closed
    assert pair.upstreams[0].requests[0][1] == b"helloworld"


def test_chunk_of_any_size_passes_without_a_limit() -> None:
    # guard: proxy-body-size 0 is nginx's client_max_body_size 0, no limit.
    pair = ProxyPair([Route()], ProxySettings(proxy_body_size=0))
    out = pair.send(_CHUNKED_HEAD + b"fffffff\r\nabc")
    assert out == b""
    assert not pair.closed
    assert _sent_body(pair) == b"3\r\nabc\r\n"


def test_discarded_chunked_body_has_no_limit() -> None:
    # guard: a body read only to be discarded after a local answer (here the 403 of
    # whitelist-source-range) is not held to the limit, as nginx's discarding reader
    # (ngx_http_discard_request_body_filter) checks none: the connection serves the next
    # request.
    route = Route(annotations={"nginx.ingress.kubernetes.io/whitelist-source-range":
                               "10.0.0.0/8"})
    pair = ProxyPair([route], _LIMIT)
    out = pair.send(_CHUNKED_HEAD + b"20\r\n" + b"x" * 32 + b"\r\n0\r\n\r\n")
    assert status_of(out) == 403, out
    assert not pair.closed
    out = pair.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert status_of(out) == 403, out
    assert pair.upstreams == []


class _Recording(TrackedUpstream):
    """An upstream that reads and keeps every byte, never answering."""

    def __init__(self) -> None:
        super().__init__()
        self.got = bytearray()

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.writers.append(w)
        while data := await r.read(65536):
            self.got += data


def test_server_answers_an_announced_chunk_over_the_limit_at_once() -> None:
    # DEFECT, through the asyncio server on 127.0.0.1: a client announcing a chunk past the
    # limit and sending part of it waited for client_body_timeout (30 s here), its bytes at
    # the backend; now the 413 comes at the chunk line and the backend has none of the chunk.
    async def run() -> None:
        up = await _Recording().start()
        server, port = await start_proxy(StubRouter([("127.0.0.1", up.port)]),
                                         settings=ProxySettings(proxy_body_size=10,
                                                                client_body_timeout=30))
        try:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(_CHUNKED_HEAD + b"5\r\nhello\r\n")
            await w.drain()
            assert await until(lambda: b"hello" in up.got)
            w.write(b"100\r\nabc")
            out = await asyncio.wait_for(read_to_eof(r), 3)
            w.close()
            assert status_of(out) == 413, out
            assert b"abc" not in up.got
        finally:
            await server.shutdown(1)
            await up.stop()

    asyncio.run(run())
