"""Review of 3a3b97b (session 16, V16d): the upstream chunk-line and trailer checks, the
repeated Content-Length rule, the 101's head.

Each test says whether it found a defect ("DEFECT": fails on 3a3b97b) or guards behaviour
that was already right ("guard").

nginx quoted (mainline, src/http/ngx_http_parse.c, ngx_http_parse_chunked): "case
sw_chunk_start: if (ch >= '0' && ch <= '9') { ... } ... goto invalid;" -- a chunk line
starts with a hex digit, an LF there is invalid at once; "case sw_after_data: switch (ch) {
case CR: ... default: goto invalid; }".
"""

from __future__ import annotations

from collections.abc import Callable

import h11
import pytest

from _proxy_harness import ProxyPair, Reply, status_of
from _proxy_harness import dechunk as _dechunk
from ingresslib.proxy._connection import _H11Reader

GET = b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"
CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
POST = b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n"


def _feed(reads: list[bytes]) -> tuple[ProxyPair, bytes]:
    """A chunked upstream response whose body comes in ``reads``, one upstream read each,
    stopping once the client connection is closed."""
    p = ProxyPair(app=lambda r, b, u: Reply(CHUNKED))
    out = p.send(GET)
    for data in reads:
        if p.closed:
            break
        out += p.upstream_send(p.upstreams[0], data)
    return p, out


# --- 1. an LF where a chunk line starts, in a read of its own ------------------------------


@pytest.mark.parametrize("reads,payload", [
    ([b"5\r\nhello\r\n", b"\n"], b"hello"),              # after a chunk's CRLF, read apart
    ([b"5\r\nhello\r\n", b"\nabc"], b"hello"),
    ([b"5\r\nhello\r", b"\n", b"\n"], b"hello"),
    ([b"\n"], b""),                                       # the body's first byte
    ([b"\nabc"], b""),
])
def test_defect_lf_starting_a_chunk_line_read_apart_ends_the_response_at_once(
        reads: list[bytes], payload: bytes) -> None:
    # DEFECT: the check skipped an LF at the start of h11's buffer as if it were the end of
    # the CRLF still to discard. When that CRLF had come in an earlier read (or there was
    # none: the first chunk line), the LF was a chunk line's first byte, and the response
    # waited for a CRLF (the upstream's read timeout) as before 3a3b97b; the same bytes in
    # one read were refused at once. nginx: an LF in sw_chunk_start is invalid.
    p, out = _feed(reads)
    assert out.startswith(CHUNKED)
    assert _dechunk(out[len(CHUNKED):]) == (payload, False)
    assert p.closed and [c.reuse for c in p.closes] == [False]
    assert [r.status for r in p.records] == [200]


@pytest.mark.parametrize("reads,payload", [
    ([b"5\r\nhello\r\n", b"0\r\n\r\n"], b"hello"),
    ([b"5\r\nhello\r", b"\n", b"0\r", b"\n\r\n"], b"hello"),
    ([b"5\r\nhello\r\n", b"3;a=\"x;y\"\r\nabc\r\n", b"0\r\nT: v\r\n\r\n"],
     b"helloabc"),
])
def test_guard_chunk_lines_read_apart_from_their_chunks_are_streamed(
        reads: list[bytes], payload: bytes) -> None:
    # guard: the CRLF after a chunk's data, read apart from the next chunk line, is no LF
    # starting that line.
    p, out = _feed(reads)
    assert _dechunk(out[len(CHUNKED):]) == (payload, True)
    assert not p.closed and [c.reuse for c in p.closes] == [True]


# --- 2. a long line arriving a few bytes at a time -----------------------------------------


class _CountingBuffer(bytearray):
    """h11's buffer bytes, counting what ``find`` scans (the request side's CRLF search)."""

    scanned = 0

    def find(self, sub: object, start: int = 0, *args: object) -> int:  # type: ignore[override]
        _CountingBuffer.scanned += len(self) - start
        return super().find(sub, start, *args)  # type: ignore[arg-type]


def _bytes_scanned(monkeypatch: pytest.MonkeyPatch, client: bool, head: bytes, start: bytes,
                   n: int) -> int:
    """How many buffer bytes the line checks scanned while ``start`` then ``n`` bytes of a
    line arrive one byte per read (each read followed by ``next_event`` up to NEED_DATA):
    the chunk-line regex and the trailer reader's regexes are counted at the
    position they start from, the request side's CRLF search by the buffer's ``find``."""
    from ingresslib.proxy import _chunked as conn

    _CountingBuffer.scanned = 0

    def counted(search: Callable[..., object]) -> Callable[..., object]:
        def run(data: bytearray, pos: int = 0, *rest: int) -> object:
            _CountingBuffer.scanned += len(data) - pos
            return search(data, pos, *rest)
        return run

    monkeypatch.setattr(conn, "_bad_chunk_line", counted(conn._bad_chunk_line))
    # The trailer section's scans (session 22: ``_read_trailer``, one regex per run of bytes).
    monkeypatch.setattr(conn, "_trailer_name", counted(conn._trailer_name))
    monkeypatch.setattr(conn, "_trailer_value", counted(conn._trailer_value))
    monkeypatch.setattr(conn, "_trailer_any", counted(conn._trailer_any))
    r = _H11Reader(client, 1 << 20)
    r.receive_data(head)
    assert type(r.next_event()) in (h11.Request, h11.Response)
    r._buf._data = _CountingBuffer(r._buf._data)
    r.receive_data(start)
    r.next_event()
    _CountingBuffer.scanned = 0
    for _ in range(n):
        r.receive_data(b"a")
        while r.next_event() is not h11.NEED_DATA:
            pass
    return _CountingBuffer.scanned


#: (side, what arrives one byte per read).
TRICKLED: list[tuple[bool, bytes, bytes, str]] = [
    (True, CHUNKED, b"1;", "upstream chunk extension"),
    (True, CHUNKED, b"0\r\nX: ", "upstream trailer"),
    (False, POST, b"1;", "request chunk extension"),
    (False, POST, b"0\r\nX: ", "request trailer"),
]


@pytest.mark.parametrize("client,head,start,what", TRICKLED, ids=[t[3] for t in TRICKLED])
def test_defect_a_line_arriving_byte_by_byte_is_read_once(
        monkeypatch: pytest.MonkeyPatch, client: bool, head: bytes, start: bytes,
        what: str) -> None:
    # DEFECT: each read made the check look at the whole line again from its start (the
    # chunk-line regex, the trailer's blank-line search and LF counts; the request side's
    # CRLF search), where h11 reads on from where it stopped: quadratic. 60 KB of chunk
    # extension one byte per read held the event loop for 9 s (0.1 s for h11 alone); the
    # request side's trailer (a client's bytes) 2.8 s. Upstream side: new in 3a3b97b;
    # request side: older, the same code. Counted, not timed: the bytes the checks scan.
    n = 2_000
    scanned = _bytes_scanned(monkeypatch, client, head, start, n)
    # Linear: a few bytes per read (each check starts a byte or two before the new one);
    # quadratic: n * n / 2 = 2,000,000.
    assert scanned <= 8 * n, (what, scanned)


# --- 3. the head: every repeated or listed Content-Length takes h11's own path -------------


@pytest.mark.parametrize("lengths", [
    b"Content-Length:\t5,\t5\r\n",
    b"CONTENT-LENGTH: 5\r\ncontent-length: 5\r\n",
    b"Content-Length:5\r\nContent-length:\t5\t\r\n",
    b"Content-Length: 5\r\n\t,5\r\n",                    # obs-fold with a tab
    b"X-A: b\r\n c\r\nContent-Length: 5\r\nContent-Length: 5\r\n",  # a fold elsewhere
    b"Content-Length: 5,\r\n",
])
def test_guard_repeated_or_listed_length_in_any_spelling_is_502(lengths: bytes) -> None:
    # guard: the fast head reader hands every such head to h11's rules (a second
    # Content-Length line or a value that is not all digits: no hint), where the check runs.
    p = ProxyPair(app=lambda r, b, u: Reply(b"HTTP/1.1 200 OK\r\n%s\r\nhello" % lengths))
    out = p.send(GET)
    assert status_of(out) == 502 and b"hello" not in out
    assert [c.reuse for c in p.closes] == [False]


@pytest.mark.parametrize("lengths", [
    b"Content-Length:\t5\t\r\n",
    b"X-A: b\r\n\tc\r\nContent-Length: 5\r\n",           # a fold elsewhere, one length
    b"Content-Length: 5\r\nX-A: b\r\n c, d\r\n",
])
def test_guard_one_length_among_folded_lines_is_forwarded(lengths: bytes) -> None:
    p = ProxyPair(app=lambda r, b, u: Reply(b"HTTP/1.1 200 OK\r\n%s\r\nhello" % lengths))
    out = p.send(GET)
    assert status_of(out) == 200 and out.endswith(b"\r\n\r\nhello")
    assert [c.reuse for c in p.closes] == [True]


# --- 4. the 101's head ---------------------------------------------------------------------

UPGRADE = (b"GET /ws HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\n"
           b"Upgrade: websocket\r\n\r\n")


@pytest.mark.parametrize("clock", [None, lambda: 1_700_000_000.0])
def test_guard_101_has_one_date_one_connection_one_upgrade(
        clock: Callable[[], float] | None) -> None:
    # guard: whatever case the upstream wrote them in, one of each; the upstream's names keep
    # their case.
    p = ProxyPair(app=lambda r, b, u: Reply(
        b"HTTP/1.1 101 Switching Protocols\r\nUPGRADE: websocket\r\nconnection: upgrade\r\n"
        b"DATE: Mon, 01 Jan 2001 00:00:00 GMT\r\nSec-WebSocket-Accept: abc\r\n\r\n"),
        clock=clock)
    out = p.send(UPGRADE)
    assert out.startswith(b"HTTP/1.1 101 ") and p.tunnels
    lines = out.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]
    names = [line.split(b":")[0].lower() for line in lines]
    assert sorted(names) == [b"connection", b"date", b"sec-websocket-accept", b"upgrade"]
    assert b"UPGRADE: websocket" in lines and b"Sec-WebSocket-Accept: abc" in lines
    assert (b"2001" in out) == (clock is None)
