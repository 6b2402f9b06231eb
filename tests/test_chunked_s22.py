"""Session 22 (W2): chunked framing follow-ups, the trailer section and the byte after a chunk
size (``ingresslib/proxy/_chunked.py``).

1. The trailer section is read as it comes and dropped (``_read_trailer``), as nginx's
   ngx_http_parse_chunked reads it (``sw_trailer*``: byte by byte, nothing kept, no limit;
   request trailers are discarded, upstream ones not forwarded). h11 held the whole section:
   60 KB of trailers in 4 KiB reads was a 431 (request) or a cut response (upstream), the
   same bytes in one read passed. And h11 read the trailers as a head: "Transfer-Encoding:
   gzip" among them was its 501, "Content-Length: x" a 400. The upstream side takes any
   bytes but CR and LF in a trailer line, as nginx does; the request side keeps h11's field
   line grammar; a bare CR or LF is refused on both.
2. A space or a tab after the chunk size starts the extension, as in nginx ("case ' ': case
   '\\t': state = sw_chunk_extension"): "5 x", "5 ;x", "5\\t;x" are a chunk of 5 (h11: 400).
   Any other byte after the size is refused at once, as nginx does, not at the line's CRLF
   (a long such line was a 431 in several reads, a 400 in one).

Every test here failed on the code before this change, unless its docstring says "guard".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingresslib.proxy._h11_reader import _H11Reader
from tests._budget import examples
from tests._proxy_harness import ProxyPair, dechunk, silent_app, status_of, upstream_sends

_HEAD = b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
_RESP = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
_NEXT = b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n"


def _send_in(p: ProxyPair, data: bytes, size: int) -> bytes:
    out = b""
    for i in range(0, len(data), size):
        out += p.send(data[i:i + size])
    return out


def _upstream_bodies(p: ProxyPair) -> list[bytes]:
    return [body for up in p.upstreams for _, body in up.requests]


def _upstream_response(body: bytes, size: int) -> tuple[ProxyPair, bytes]:
    p = ProxyPair(app=silent_app)
    p.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    return p, upstream_sends(p, _RESP + body, size)


def _verdict(client: bool, body: bytes, cuts: list[int], limit: int = 8192
             ) -> tuple[str, bytes, bytes]:
    """What ``_H11Reader`` makes of ``body`` after a chunked head, fed cut at ``cuts``:
    ("end", data, bytes left after the message) / ("error", status hint, b"") /
    ("incomplete", data, b"")."""
    r = _H11Reader(client, limit)
    r.receive_data(_RESP if client else _HEAD)
    assert type(r.next_event()) in (h11.Request, h11.Response)
    got = b""
    edges = [0, *sorted(set(cuts)), len(body)]
    for a, b in zip(edges, edges[1:]):
        if b > a:
            r.receive_data(body[a:b])
        while True:
            try:
                ev = r.next_event()
            except h11.RemoteProtocolError as e:
                return "error", b"%d" % e.error_status_hint, b""
            if type(ev) is h11.Data:
                got += ev.data
            elif type(ev) is h11.EndOfMessage:
                return "end", got, r.trailing_data[0] + body[b:]
            else:
                break
    return "incomplete", got, b""


# 1. The trailer section ----------------------------------------------------------------------


@pytest.mark.parametrize("read", [4096, 1000])
def test_long_request_trailers_pass_in_any_reads(read: int) -> None:
    """60 KB of trailer lines in small reads: 200 and the body forwarded, as in one read
    (before: 431 once the section outgrew the head limit)."""
    trailers = b"".join(b"X-T%d: %s\r\n" % (i, b"v" * 1000) for i in range(60))
    body = b"5\r\nhello\r\n0\r\n" + trailers + b"\r\n"
    for size in (read, len(body)):
        p = ProxyPair()
        p.send(_HEAD)
        out = _send_in(p, body, size)
        assert status_of(out) == 200 and not p.closed, size
        assert _upstream_bodies(p) == [b"hello"]
        assert b"vvvv" not in p.upstream_bytes  # trailers are never forwarded


def test_one_long_request_trailer_line_then_a_pipelined_request() -> None:
    """One 100 KB trailer line in 4 KiB reads, the next request in the same bytes: both
    answered, the second parsed from the byte after the trailer section."""
    p = ProxyPair()
    body = _HEAD + b"5\r\nhello\r\n0\r\nX: " + b"v" * 100_000 + b"\r\n\r\n" + _NEXT
    out = _send_in(p, body, 4096)
    assert out.count(b"HTTP/1.1 200 ") == 2 and not p.closed
    assert [r.target for up in p.upstreams for r, _ in up.requests] == [b"/up", b"/next"]


def test_long_upstream_trailers_pass_in_many_reads() -> None:
    """An upstream's 100 KB of trailers in 4 KiB reads: the response is complete, the
    connection kept (before: cut once the section outgrew max_response_header_size, 64 KiB;
    in one read it passed)."""
    trailers = b"".join(b"X-T%d: %s\r\n" % (i, b"v" * 1000) for i in range(100))
    p, out = _upstream_response(b"5\r\nhello\r\n0\r\n" + trailers + b"\r\n", 4096)
    assert status_of(out) == 200 and not p.closed
    assert dechunk(out.partition(b"\r\n\r\n")[2]) == (b"hello", True)
    assert b"vvvv" not in out


def test_reader_buffer_stays_bounded_under_long_trailers() -> None:
    """1 MB of trailers (one line, then many) in 4 KiB reads: h11's buffer never holds more
    than a read, with a 16 KiB incomplete-event limit never reached."""
    for client in (False, True):
        for read in (b"e" * 4096, b"e" * 4000 + b"\r\nX-e: " + b"e" * 89):
            r = _H11Reader(client, 16384)
            r.receive_data(_RESP if client else _HEAD)
            r.next_event()
            r.receive_data(b"5\r\nhello\r\n0\r\n")
            assert type(r.next_event()) is h11.Data
            r.receive_data(b"X: ")
            for _ in range(256):
                r.receive_data(read)
                assert r.next_event() is h11.NEED_DATA
                assert len(r._buf._data) <= 4096
            r.receive_data(b"\r\n\r\n" + _NEXT)
            assert type(r.next_event()) is h11.EndOfMessage
            assert r.trailing_data[0] == _NEXT


@pytest.mark.parametrize("trailer", [
    b"Transfer-Encoding: gzip\r\n",             # h11: 501 "Only Transfer-Encoding: chunked"
    b"Content-Length: x\r\n",                   # h11: 400 "bad Content-Length"
    b"Content-Length: 1\r\nContent-Length: 2\r\n",  # h11: 400 "conflicting Content-Length"
    b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
])
def test_framing_fields_in_request_trailers_are_dropped_not_read(trailer: bytes) -> None:
    """Trailers are never forwarded (nginx discards a request's): their values frame
    nothing, so h11's head rules for them (a 501 or a 400) do not apply."""
    p = ProxyPair()
    out = p.send(_HEAD + b"5\r\nhello\r\n0\r\n" + trailer + b"\r\n")
    assert status_of(out) == 200 and _upstream_bodies(p) == [b"hello"]


@pytest.mark.parametrize("trailer", [
    b"Transfer-Encoding: gzip\r\n",
    b"X : y\r\n",                  # a space before the colon
    b"not a field\r\n",
    b" leading space\r\n",          # a continuation with nothing before it
    b"X: a\x00b\x1b\r\n",           # NUL, ESC
])
def test_upstream_trailer_lines_pass_as_in_nginx(trailer: bytes) -> None:
    """nginx's ``sw_trailer_header`` takes any byte but CR and LF: the response completes
    (before: h11 refused the line and the response was cut, the client connection
    closed)."""
    for size in (4096, 1):
        p, out = _upstream_response(b"5\r\nhello\r\n0\r\n" + trailer + b"\r\n", size)
        assert status_of(out) == 200 and not p.closed
        assert dechunk(out.partition(b"\r\n\r\n")[2]) == (b"hello", True)


@pytest.mark.parametrize("trailer", [
    b"X : y\r\n", b"not a field\r\n", b" leading space\r\n", b"X: a\x00b\r\n", b":v\r\n",
    b"X: a\rb\r\n", b"X: y\n", b"\n", b"X: y\r\n\n",
])
def test_guard_request_trailer_grammar_is_kept(trailer: bytes) -> None:
    """guard: a client's trailer lines keep h11's field-line grammar, and a bare CR or LF
    is refused, however the bytes arrive."""
    body = b"5\r\nhello\r\n0\r\n" + trailer + b"\r\n"
    for size in (len(body), 3, 1):
        p = ProxyPair()
        p.send(_HEAD)
        assert status_of(_send_in(p, body, size)) == 400 and p.closed, size


@pytest.mark.parametrize("bad", [b"\rx", b"\n"])
def test_guard_bare_cr_or_lf_in_upstream_trailers_still_cuts(bad: bytes) -> None:
    """guard: nginx's "upstream sent invalid chunked response", deep in a long line too."""
    for pad in (10, 50_000):
        p, out = _upstream_response(
            b"5\r\nhello\r\n0\r\nX: " + b"a" * pad + bad + b"a\r\n\r\n", 4096)
        assert status_of(out) == 200 and p.closed
        assert dechunk(out.partition(b"\r\n\r\n")[2]) == (b"hello", False)


@pytest.mark.parametrize("client", [False, True])
def test_guard_a_trailer_arriving_byte_by_byte_is_read_once(
        monkeypatch: pytest.MonkeyPatch, client: bool) -> None:
    """guard: each trailer byte is scanned once, not once per read (as
    tests/test_review3_s16.py counts the chunk-line checks): 2,000 bytes of one trailer
    line, one per read, scan a few bytes per read."""
    from ingresslib.proxy import _chunked

    scanned = [0]

    def counted(search: Any) -> Any:
        def run(data: bytearray, pos: int) -> Any:
            scanned[0] += len(data) - pos
            return search(data, pos)
        return run

    monkeypatch.setattr(_chunked, "_trailer_name", counted(_chunked._trailer_name))
    monkeypatch.setattr(_chunked, "_trailer_value", counted(_chunked._trailer_value))
    monkeypatch.setattr(_chunked, "_trailer_any", counted(_chunked._trailer_any))
    r = _H11Reader(client, 1 << 20)
    r.receive_data(_RESP if client else _HEAD)
    r.next_event()
    r.receive_data(b"0\r\nX-Long: ")
    assert r.next_event() is h11.NEED_DATA
    scanned[0] = 0
    for _ in range(2000):
        r.receive_data(b"a")
        assert r.next_event() is h11.NEED_DATA
    assert 2000 <= scanned[0] <= 4 * 2000
    r.receive_data(b"\r\n\r\n")
    assert type(r.next_event()) is h11.EndOfMessage


# A trailer section built of runs of one byte (long ones too, control bytes among them),
# read whole or cut anywhere: the verdict does not depend on the reads.
_tbyte = st.sampled_from([b"a", b"a", b"a", b":", b" ", b"\t", b"\r\n", b"\r\n", b"\x00",
                          b"\r", b"\n", b"\xff", b"("])
_trun = st.tuples(_tbyte, st.one_of(st.integers(1, 3), st.integers(1, 40),
                                    st.integers(8500, 12000)))


@settings(max_examples=examples(0.5), deadline=None)
@given(runs=st.lists(_trun, max_size=6), client=st.booleans(),
       read=st.integers(500, 9000), cuts=st.lists(st.integers(0, 80_000), max_size=6))
def test_trailer_verdict_does_not_depend_on_the_reads(
        runs: list[tuple[bytes, int]], client: bool, read: int, cuts: list[int]) -> None:
    """Reads of ``read`` bytes (and a few more cuts) against one read, with an 8 KiB
    incomplete-event limit; a section that ends leaves the next request's bytes."""
    trailers = b"".join(c * n for c, n in runs)
    body = b"3\r\nabc\r\n0\r\n" + trailers + b"\r\n\r\n" + _NEXT
    cuts = [c for c in [*range(read, len(body), read), *cuts] if c < len(body)]
    whole = _verdict(client, body, [])
    assert _verdict(client, body, cuts) == whole
    assert whole[0] != "incomplete"  # (the body always holds an empty line)
    if whole[0] == "end":
        assert whole[1] == b"abc" and whole[2].endswith(_NEXT)
    else:
        assert whole[1] in (b"400", b"431")


_gbyte = st.sampled_from([b"a", b"X", b":", b" ", b"\t", b"\r\n", b"\r\n", b"\r", b"\x00",
                          b"\x7f", b"\xff", b"(", b"-", b"\x0b", b"\x01", b"\x0c"])


@settings(max_examples=examples(1), deadline=None)
@given(pieces=st.lists(_gbyte, max_size=10))
def test_guard_request_trailer_grammar_is_h11s(pieces: list[bytes]) -> None:
    """guard: on the request side a trailer section is refused exactly when h11's own
    chunked reader refuses it in one read (no bare LF here: refused on purpose; no
    Content-Length or Transfer-Encoding: h11's rules for those values are not kept)."""
    trailers = b"".join(pieces)
    body = b"3\r\nabc\r\n0\r\n" + trailers + b"\r\n\r\n" + _NEXT
    ref = h11.Connection(h11.SERVER)
    ref.receive_data(_HEAD + body)
    try:
        while type(ev := ref.next_event()) is not h11.EndOfMessage:
            assert ev is not h11.NEED_DATA
        expected = "end"
    except h11.RemoteProtocolError:
        expected = "error"
    assert _verdict(False, body, [])[0] == expected


# 2. The byte after the chunk size ------------------------------------------------------------


@pytest.mark.parametrize("line", [b"5 x", b"5 ;x", b"5\t;x", b"5 \t; a=b", b"5\t"])
def test_space_or_tab_after_the_chunk_size_starts_the_extension(line: bytes) -> None:
    """nginx: "case ';': case ' ': case '\\t': state = sw_chunk_extension;" (before: h11's
    400). The upstream gets the body re-chunked: the client's chunk line never reaches it,
    and the next request in the same bytes is read from the byte after the body."""
    body = line + b"\r\nhello\r\n0 x\r\n\r\n"
    for size in (len(body) + len(_NEXT), 1):
        p = ProxyPair()
        p.send(_HEAD)
        out = _send_in(p, body + _NEXT, size)
        assert out.count(b"HTTP/1.1 200 ") == 2 and not p.closed, size
        assert _upstream_bodies(p) == [b"hello", b""]
        assert line not in p.upstream_bytes


@pytest.mark.parametrize("line", [b"5 x", b"5 ;x", b"5\t;x", b"0 x"])
def test_upstream_space_or_tab_after_the_chunk_size_is_read_as_nginx_does(line: bytes) -> None:
    """The same on the upstream side (before: the response was cut)."""
    chunk = b"" if line.startswith(b"0") else line + b"\r\nhello\r\n"
    last = line if line.startswith(b"0") else b"0"
    p, out = _upstream_response(chunk + last + b"\r\n\r\n", 4096)
    assert status_of(out) == 200 and not p.closed
    assert dechunk(out.partition(b"\r\n\r\n")[2]) == (b"" if not chunk else b"hello", True)


@pytest.mark.parametrize("client", [False, True])
@pytest.mark.parametrize("line", [b"5x", b"5\x00", b"x5", b"0" * 21 + b"5", b"5(", b";5"])
def test_bad_byte_after_the_size_is_refused_at_once(client: bool, line: bytes) -> None:
    """nginx refuses the line at that byte ("default: goto invalid;"); h11 waited for the
    line's CRLF, so a long one was a 431 in several reads and a 400 in one (request side),
    and an upstream's kept the response waiting. ("5\\x00" on the request side is a guard:
    its control-character check refused it at once before.)"""
    r = _H11Reader(client, 8192)
    r.receive_data(_RESP if client else _HEAD)
    r.next_event()
    r.receive_data(line)
    with pytest.raises(h11.RemoteProtocolError) as info:
        r.next_event()
    assert info.value.error_status_hint == 400
    # The same line, long, in reads: 400, not 431.
    body = line + b"a" * 20_000 + b"\r\nhello\r\n0\r\n\r\n"
    assert _verdict(client, body, list(range(4096, len(body), 4096))) == ("error", b"400", b"")
    assert _verdict(client, body, []) == ("error", b"400", b"")


def test_guard_size_alone_waits_for_the_next_byte() -> None:
    """guard: a line holding only its size digits so far is no verdict yet."""
    for client in (False, True):
        body = b"5\r\nhello\r\n0\r\n\r\n"
        for i in range(1, len(body)):
            assert _verdict(client, body, [i]) == ("end", b"hello", b""), (client, i)


# 3. ``_chunked`` imports nothing of the package ---------------------------------------------


def test_guard_chunked_rules_agree_with_headers() -> None:
    """guard: ``_chunked`` keeps its own copy of the CTL rule and of nginx's size bound (it
    imports nothing of the package, so that ``_headers`` can import it before h11's
    internals): both agree with ``_headers``'s on every byte."""
    from ingresslib.proxy import _chunked, _headers

    for b in range(256):
        assert _chunked.has_control(bytes([b])) == _headers.has_control(bytes([b])), b
    assert _chunked._MAX_CHUNK_SIZE == _headers.MAX_CONTENT_LENGTH - 5
    source = Path(_chunked.__file__).read_text(encoding="utf-8")
    assert "from ." not in source and "import ingresslib" not in source
