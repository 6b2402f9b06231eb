"""Session 37 (x66): mutation testing of the HTTP framing readers (``proxy/_h11_reader.py``'s
``_framing``, ``_announces_body``, head readers, ``_check_response_length``,
``_head_headers``; ``proxy/_chunked.py``'s chunk-line, trailer and body-limit rules).

Each test here kills mutants the suite let live (listed in each test's comment); all pass on
the current code (no defect found by them): they hold behaviour nothing held.

The heads ``_head_headers`` hands to h11's own rules (``hint`` None: a framing header h11
must normalize, "Transfer-Encoding: Chunked", or an obs-fold line in a response) take a
second path through ``_framing``, ``_announces_body`` and ``_check_response_length``, the
one they read ``event.headers`` on; the suite's heads nearly all took the fast one.
"""

from __future__ import annotations

from typing import Any

import h11
import pytest
from h11._receivebuffer import ReceiveBuffer
from hypothesis import given, settings
from hypothesis import strategies as st

from ingresslib.proxy._chunked import _ChunkedReader, _RequestChunkedReader
from ingresslib.proxy._h11_reader import _H11Reader
from tests._budget import examples
from tests.test_proxy_connection import _drive
from tests.test_review_s16 import _feed, _splits

_NEXT_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnext"
_NEXT_REQUEST = b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n"


def _head(client: bool, head: bytes, method: bytes = b"GET") -> tuple[_H11Reader, Any]:
    """A reader (``client``: it reads responses, to a ``method`` request) and its event for
    ``head``."""
    reader = _H11Reader(client, 65536)
    reader.method = method
    reader.receive_data(head)
    return reader, reader.next_event()


def _message(client: bool, data: bytes, method: bytes = b"GET") -> tuple[bytes, bytes, bool]:
    """What a reader makes of ``data``, a head, its body and what follows: (the body it read,
    the bytes left after the message's end, its keep-alive)."""
    reader = _H11Reader(client, 65536)
    reader.method = method
    reader.receive_data(data)
    body = b""
    while True:
        event = reader.next_event()
        if type(event) is h11.Data:
            body += event.data
        elif type(event) is h11.EndOfMessage:
            return body, reader.trailing_data[0], reader.keep_alive
        else:
            assert type(event) in (h11.Request, h11.Response), event


# --- _announces_body on a head h11 read itself --------------------------------------------------

#: A response head whose lines h11's own rules read (``_head_headers`` gives no hint): an
#: obs-fold line (h11 unfolds it), a Transfer-Encoding not spelled "chunked".
_FOLDED = b"X-Folded: a\r\n b\r\n"


@pytest.mark.parametrize("method,status", [(b"HEAD", b"200 OK"), (b"GET", b"204 No Content")])
@pytest.mark.parametrize("framing,announced", [
    (b"Transfer-Encoding: chunked\r\n", True),  # (these four: the fast path)
    (b"Content-Length: 5\r\n", True),
    (b"Content-Length: 0\r\n", False),
    (b"", False),
    (b"Transfer-Encoding: Chunked\r\n", True),
    (_FOLDED + b"Transfer-Encoding: chunked\r\n", True),
    (_FOLDED + b"Content-Length: 5\r\n", True),
    (b"Content-Length: 7\r\n" + _FOLDED, True),
    (_FOLDED + b"Content-Length: 0\r\n", False),
    (_FOLDED, False),
    (_FOLDED + b"Content-Length: 00\r\n", False),
])
def test_head_or_204_answer_h11_reads_is_spent_when_it_announces_a_body(
        method: bytes, status: bytes, framing: bytes, announced: bool) -> None:
    # README ("the upstream connection after a response to HEAD, or a 204, whose head
    # announces a body"): such a connection is not pooled, a body the upstream writes late
    # would be read as another client's response. The heads h11 reads itself go through
    # ``_announces_body``'s loop over the headers, which no test reached.
    # Kills: _announces_body L292-L295 (loop deleted, condition True/False, "or"/"and" swapped,
    # "transfer-encoding"/"content-length" emptied, "!= 0" as "== 0", 0 as 1, return True
    # deleted, return False as True).
    reader, event = _head(True, b"HTTP/1.1 " + status + b"\r\n" + framing + b"\r\n", method)
    assert type(event) is h11.Response
    assert reader.spent is announced
    # ... and the answer still has no body: the bytes after it are the next response.
    body, rest, _ = _message(True, b"HTTP/1.1 " + status + b"\r\n" + framing + b"\r\n"
                             + _NEXT_RESPONSE, method)
    assert (body, rest) == (b"", _NEXT_RESPONSE)


# --- _check_response_length and _framing's own look at the headers -----------------------------

@pytest.mark.parametrize("length_line", [
    b"Content-Length: 5\r\n", b"Content-Length:5\r\n", b"content-length: \t5\t\r\n",
])
@pytest.mark.parametrize("where", ["before", "after"])
def test_response_head_h11_reads_is_framed_by_its_one_length(length_line: bytes,
                                                             where: str) -> None:
    # A response head with an obs-fold line (h11's path) and one Content-Length holding one
    # number is valid (nginx's ngx_http_upstream_process_content_length takes it) and framed
    # by that length: the 5 bytes are its body, the bytes after them the next response.
    # Kills: _check_response_length L199-L205 (b" \t" emptied: " 5" is no number; the name
    # test as "or"; "content-length" emptied...), _framing L263-L268 (its own look for the
    # length: deleted, "is None" as "is not None", "content-length" emptied: read until
    # close), _read_response_head L226 (condition deleted... where equivalent, see report).
    head = (_FOLDED + length_line) if where == "before" else (length_line + _FOLDED)
    data = b"HTTP/1.1 200 OK\r\n" + head + b"\r\nhello" + _NEXT_RESPONSE
    assert _message(True, data) == (b"hello", _NEXT_RESPONSE, True)


@pytest.mark.parametrize("lengths", [
    b"Content-Length: 5\r\nContent-Length: 5\r\n",
    b"Content-Length: 5, 5\r\n",
    b"Content-Length: 5\r\n" + _FOLDED + b"Content-Length: 5\r\n",
])
def test_response_head_with_two_lengths_is_refused(lengths: bytes) -> None:
    # guard (module docstring of _h11_reader; nginx 1.23+ "upstream sent duplicate header
    # line"): whichever way h11 merges them.
    with pytest.raises(h11.RemoteProtocolError):
        _head(True, b"HTTP/1.1 200 OK\r\n" + lengths + b"\r\n")


def test_request_with_a_chunked_h11_normalizes_is_read_chunked() -> None:
    # "Transfer-Encoding: Chunked" is h11's path (_head_headers hands it the value to
    # lower-case) and _framing looks at the headers itself: the body is chunked, and the
    # request after it is the next one, never the chunk bytes read as a request (RFC 9112
    # §6.3: Transfer-Encoding chunked frames the body).
    # Kills: _framing L264/L265 ("transfer-encoding" emptied, chunked = True deleted, its
    # condition False) -- the chunk line would be parsed as the next request.
    head = b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n"
    assert _message(False, head + b"5\r\nhello\r\n0\r\n\r\n" + _NEXT_REQUEST) == (
        b"hello", _NEXT_REQUEST, True)


# --- keep-alive: "close" among the Connection tokens, whatever comes after it --------------------

@pytest.mark.parametrize("client", [True, False], ids=["response", "request"])
@pytest.mark.parametrize("h11_path", [False, True], ids=["fast", "h11"])
@pytest.mark.parametrize("connection", [
    b"Connection: close\r\nX-After: 1\r\n",
    b"Connection: close\r\nConnection: keep-alive\r\n",
    b"Connection: keep-alive\r\nConnection: close\r\n",
    b"Connection: Keep-Alive, CLOSE\r\nX-After: 1\r\n",
])
def test_close_among_the_connection_tokens_ends_keep_alive(client: bool, h11_path: bool,
                                                           connection: bytes) -> None:
    # RFC 9112 §9.6: "close" in Connection means the connection ends after this message
    # (nginx: ngx_http_process_connection / ngx_http_upstream_process_connection). A header
    # after the Connection line, or a second Connection line, must not undo it: an upstream
    # connection pooled after its "close" takes the next client's request into a dying
    # socket; a client's kept open waits for a request it said it would not send.
    # Kills: _head_headers L135/L136 and _framing L269/L270 ("and not close" as "or", its
    # "not" dropped, the condition True: the next header's value decides; "close" / ","
    # emptied; "in" as "not in").
    framing = b"Transfer-Encoding: Chunked\r\n" if h11_path else b"Content-Length: 0\r\n"
    body = b"0\r\n\r\n" if h11_path else b""
    if client:
        head = b"HTTP/1.1 200 OK\r\n" + connection + framing + b"\r\n"
    else:
        head = b"POST /a HTTP/1.1\r\nHost: a\r\n" + connection + framing + b"\r\n"
    _, _, keep_alive = _message(client, head + body)
    assert keep_alive is False
    # ... and without "close" the connection is kept (the same head, the token gone).
    kept = head.replace(b"CLOSE", b"x").replace(b"close", b"x")
    assert _message(client, kept + body)[2] is True


# --- response heads composed of the lines that decide framing, against h11 ----------------------
# tests/test_proxy_connection.py composes request heads against h11.Connection; responses had
# fixed cases only. The reader is h11's client side but for one rule (module docstring of
# _h11_reader: a response's Content-Length is one line holding one number; h11 merges equal
# ones) and ``spent`` (README: a HEAD or 204 answer whose head announces a body).

_RESPONSE_LINES = st.sampled_from([
    b"Content-Length: 3", b"content-length: 03", b"Content-Length:\t3 ", b"Content-Length: 0",
    b"Content-Length: 3, 3", b"Content-Length: x", b"Content-Length: " + b"0" * 20 + b"3",
    b"Transfer-Encoding: chunked", b"transfer-encoding: Chunked",
    b"Transfer-Encoding: gzip, chunked", b"Connection: close", b"Connection: keep-alive",
    b"connection: Keep-Alive, CLOSE", b" folded", b"\tfolded", b"X: y", b"Bad Header",
])
_STATUS_LINES = st.sampled_from([
    b"HTTP/1.1 200 OK", b"HTTP/1.0 200 OK", b"HTTP/1.1 204 No Content",
    b"HTTP/1.1 304 Not Modified", b"HTTP/1.1 100 Continue", b"HTTP/1.1 199 X",
    b"HTTP/1.1 205 Reset Content", b"HTTP/1.1 404", b"HTTP/1.1 099 X",
])
_BODIES = st.sampled_from([b"", b"abc", b"3\r\nabc\r\n0\r\n\r\n",
                           b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx"])


def _length_values(head_lines: list[bytes]) -> int:
    """How many Content-Length values the head's lines hold (a list counts each)."""
    return sum(len(line.split(b":", 1)[1].split(b",")) for line in head_lines
               if line.lower().startswith(b"content-length:"))


@settings(deadline=None, max_examples=examples(1))
@given(status=_STATUS_LINES, lines=st.lists(_RESPONSE_LINES, max_size=5),
       method=st.sampled_from([b"GET", b"HEAD", b"POST"]), body=_BODIES,
       one_byte=st.booleans(), eof=st.booleans())
def test_reader_parses_composed_responses_like_h11(status: bytes, lines: list[bytes],
                                                   method: bytes, body: bytes, one_byte: bool,
                                                   eof: bool) -> None:
    # Kills the response side's mutants the fixed cases missed (_framing's 204/304/HEAD
    # rule and keep-alive on h11's path, _head_headers' hand-over to h11 of a 21-digit length
    # or a TE other than "chunked", _read_response_head's 1xx bounds...).
    data = status + b"\r\n" + b"".join(line + b"\r\n" for line in lines) + b"\r\n" + body
    ref = h11.Connection(h11.CLIENT, max_incomplete_event_size=200)
    ref.send(h11.Request(method=method, target="/", headers=[("Host", "a")]))
    ref.send(h11.EndOfMessage())
    expected = _drive(ref, data, one_byte, eof)
    head = expected[0]
    if type(head) in (h11.Response, h11.InformationalResponse) and _length_values(lines) > 1:
        expected = [("error", 400)]  # (h11 took equal lengths as one: nginx refuses them)
    reader = _H11Reader(True, 200)
    reader.method = method
    assert _drive(reader, data, one_byte, eof) == expected
    if type(head) is h11.Response and expected != [("error", 400)]:
        announced = any(n == b"transfer-encoding" or (n == b"content-length" and int(v))
                        for n, v in head.headers)
        bodiless = method == b"HEAD" or head.status_code == 204
        assert reader.spent is (bodiless and announced)


# --- _check_body_limit: the chunk sizes announced, up to the limit exactly -----------------------

def _limited(limit: int) -> _RequestChunkedReader:
    reader = _RequestChunkedReader()
    reader.limit = limit
    return reader


@pytest.mark.parametrize("body", [
    b"5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", b"a\r\nhelloworld\r\n0\r\n\r\n",
])
def test_chunked_body_of_exactly_the_limit_passes_however_it_arrives(body: bytes) -> None:
    # nginx's ngx_http_request_body_chunked_filter refuses a chunk only when
    # "client_max_body_size - r->headers_in.content_length_n < rb->chunked->size": a body
    # of exactly client_max_body_size passes (413 is for more).
    # Kills: _check_body_limit L506 (">" as ">="), _RequestChunkedReader's _announced = 1.
    for pieces in _splits(body):
        events = _feed(_limited(10), pieces)
        assert b"".join(e.data for e in events[:-1]) == b"helloworld"
        assert type(events[-1]) is h11.EndOfMessage


@pytest.mark.parametrize("body", [
    b"5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\n", b"b\r\nhelloworld!\r\n0\r\n\r\n",
])
def test_chunk_line_one_byte_past_the_limit_is_413_before_its_data(body: bytes) -> None:
    # The same filter: one byte more is 413 at the chunk's line, before any of its data
    # (the bytes of the chunk that crosses the limit never reach the backend), whether its
    # data came in the line's read (h11 took some: ``size += len(event.data)``) or not.
    # Kills: _check_body_limit L503-L506 (the data h11 took not counted, ">" as "<").
    for pieces in _splits(body):
        reader, got = _limited(10), b""
        buf = ReceiveBuffer()
        with pytest.raises(h11.LocalProtocolError) as refused:
            for piece in pieces:
                buf += piece
                while (event := reader(buf)) is not None:
                    got += event.data
        assert refused.value.error_status_hint == 413
        # (Only the chunks before the one crossing the limit.)
        assert got == (b"hello" if body.startswith(b"5") else b""), (pieces, got)


# --- a bare CR or LF in a chunk line: refused at that byte, whatever the reads -----------------

@pytest.mark.parametrize("reader", [_ChunkedReader, _RequestChunkedReader])
@pytest.mark.parametrize("line", [b"5;ab\rXcd", b"5;ab\ncd", b"5;ab\r\rcd", b"5\ncd"])
def test_bare_cr_or_lf_in_a_chunk_line_is_refused_before_any_crlf(reader: Any,
                                                                  line: bytes) -> None:
    # nginx's ngx_http_parse_chunked refuses the line at that byte ("case LF: goto invalid;"
    # in sw_chunk_extension, no LF in sw_chunk_size; sw_chunk_extension_almost_done wants
    # the LF after a CR): no CRLF ever comes here, so a reader waiting for one holds the
    # connection until a timeout, and the upstream side's h11 would take a CR in ";.*".
    # Each call looks only at the bytes no earlier call saw, from the last one it saw
    # (``_next_line_search - 1``): cut anywhere, the byte must still be looked at.
    # Kills: _ChunkedReader L334 and _RequestChunkedReader L476 ("seen - 1" as "seen + 1",
    # 1 as 0 or 2 where the byte is skipped).
    for pieces in _splits(b"3\r\nabc\r\n" + line):
        with pytest.raises(h11.LocalProtocolError):
            _feed(reader(), pieces)


# --- _framing: a 2xx answer to CONNECT ------------------------------------------------------------

@pytest.mark.parametrize("status,body", [
    (b"200 OK", b""), (b"201 Created", b""), (b"299 X", b""),
    (b"300 Multiple Choices", b"hello"), (b"404 Not Found", b"hello"),
])
def test_a_2xx_answer_to_connect_has_no_body(status: bytes, body: bytes) -> None:
    # RFC 9110 §9.3.6: "A client MUST ignore any Content-Length or Transfer-Encoding header
    # fields received in a successful response to CONNECT" (h11's _body_framing: "if method
    # == b'CONNECT' and 200 <= status_code < 300"). A client's CONNECT is a 405 before
    # routing; the reader meets one as the auth subrequest's method (auth-method CONNECT,
    # proxy/_extauth.py's _METHODS), where a misread length takes the next bytes as a body.
    # Kills: _framing L275 (the bounds 200/300 moved by one either way, "<=" / "<" swapped,
    # "CONNECT" emptied).
    data = b"HTTP/1.1 " + status + b"\r\nContent-Length: 5\r\n\r\nhello"
    got, rest, _ = _message(True, data, b"CONNECT")
    assert (got, rest) == (body, b"hello"[len(body):])
