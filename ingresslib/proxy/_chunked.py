"""Chunked body readers: h11's ``ChunkedReader`` with nginx's chunk-line and trailer rules,
for request bodies (``_RequestChunkedReader``) and upstream responses (``_ChunkedReader``).
Used by ``_h11_reader``'s body reader tables. No socket, asyncio, ssl or logging handler here.

Choice made here (SEMANTICS leaves it open; tested in ``tests/test_proxy_*.py``):
- Chunked request bodies get the same line rules (``_RequestChunkedReader``): a CTL in a chunk
  line or a bare LF in the trailer section is a 400, where h11 would accept it. A chunk size
  over nginx's bound (2^63 - 6, ``_MAX_CHUNK_SIZE``; h11 takes 20 hex digits) is a 400 too,
  and in an upstream's response it ends the response there (client connection closed), as
  do a bare CR or LF in an upstream's chunk line and a bare LF in its trailers
  (``_ChunkedReader``: nginx's line rules, which let other control characters through).
- A chunk extension of any length passes, as in nginx (``_drop_extension``): its bytes are
  checked and dropped as they come, never held until the line's CRLF (h11's way, which made
  a chunk line longer than the head limit a 431 when it came in several reads).
- A space or a tab after the chunk size starts the extension, as in nginx ("5 x", "5 ;x"
  are a chunk of 5; h11 refused them), and any other byte there but ";" and CR is refused
  at once (``_check_size_end``). The extension is never forwarded: the body is re-chunked.
- The trailer section is read as it comes and dropped (``_read_trailer``), as nginx reads
  and drops it: of any length, whatever the reads (h11 held it whole: a 431, or an
  upstream's response cut, in several reads where one read passed), never interpreted as a
  head (h11's 501 for "Transfer-Encoding: gzip" there). A bare CR or LF is refused on both
  sides; the upstream side takes any other byte (nginx's rule), the request side h11's
  field-line grammar.

h11's internals (the proxy core drives h11's readers and receive buffer without
``h11.Connection``): ``check_h11_internals`` probes every one the core reads, once, when this
module is imported (``_headers``, the package's first module to read h11's internals, imports
it before it does: ``__init__`` -> ``_actions`` -> ``_headers``), and an h11 whose internals
differ is an ``H11InternalsError`` naming its version (``tests/test_h11_private_s22.py``).
A RuntimeError, not an ImportError: callers that take an ImportError of the proxy for "the
proxy is not installed" (``explain`` leaves the proxy's verdict out then) must not pass over
an h11 the core would misread.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any, Callable, cast

import h11

# (Nothing of the package is imported here: ``_headers`` imports this module before its own
# import of h11's internals, so that the check below runs first.)

__all__ = ["_ChunkedReader", "_RequestChunkedReader", "_MAX_CHUNK_SIZE", "H11_TESTED",
           "H11InternalsError", "check_h11_internals"]

# --- h11's internals ----------------------------------------------------------------------------

#: The h11 releases whose internals the proxy core was tested with (pyproject.toml's pin).
H11_TESTED = ">=0.16,<0.17"


class H11InternalsError(RuntimeError):
    """The installed h11's internals are not the ones the proxy core reads (raised when the
    core is imported)."""


def _h11_mismatch(problem: str) -> H11InternalsError:
    version = getattr(h11, "__version__", "of unknown version")
    return H11InternalsError(
        f"ingresslib.proxy drives h11's own parser internals (h11._readers, "
        f"h11._receivebuffer, h11._headers) and was tested with h11{H11_TESTED}; the "
        f"installed h11 {version} differs: {problem}. Install a tested release: "
        f"pip install 'h11{H11_TESTED}'")


class _Mismatch(Exception):
    pass


def _need(ok: bool, what: str) -> None:
    if not ok:
        raise _Mismatch(what)


def _probe_h11() -> None:
    """Raise ``_Mismatch`` (or anything else) unless h11's internals that ingresslib reads
    are there and behave as in the tested releases. Each private name the proxy core (and
    the router, on the headers it is given) uses is looked up here at call time, from h11's
    modules, and driven through one small case (the comments name the modules that read
    them)."""
    from h11 import _events, _headers, _readers, _receivebuffer

    # The events _h11_reader builds in place (object.__new__, one field at a time).
    for name, fields in (("Request", ("method", "headers", "target", "http_version")),
                         ("Response", ("headers", "http_version", "reason", "status_code")),
                         ("InformationalResponse",
                          ("headers", "http_version", "reason", "status_code"))):
        cls = getattr(h11, name)
        _need(getattr(_events, name) is cls, f"h11._events.{name} is not h11.{name}")
        _need(tuple(f.name for f in dataclasses.fields(cls)) == fields,
              f"h11.{name}'s fields are not {fields} (_h11_reader builds it field by field)")

    # ReceiveBuffer: its bytearray and the two search marks (_chunked, _h11_reader,
    # _connection).
    RB = _receivebuffer.ReceiveBuffer
    buf = RB()
    _need(type(buf._data) is bytearray and not buf._data and buf._next_line_search == 0
          and buf._multiple_lines_search == 0,
          "a new ReceiveBuffer has no empty bytearray _data, or no _next_line_search / "
          "_multiple_lines_search of 0")
    buf += b"5;ab"
    _need(buf.maybe_extract_next_line() is None and buf._next_line_search == 4,
          "ReceiveBuffer._next_line_search is not the buffer's length after a line search "
          "that failed")
    buf += b"\r\nab: c\r\n"
    line: Any = buf.maybe_extract_next_line()
    _need(line == b"5;ab\r\n" and buf._data == b"ab: c\r\n" and buf._next_line_search == 0,
          "ReceiveBuffer.maybe_extract_next_line does not take the line and reset "
          "_next_line_search")
    _need(buf.maybe_extract_lines() is None
          and buf._multiple_lines_search == len(buf._data) - 2,
          "ReceiveBuffer._multiple_lines_search is not two bytes before the buffer's end "
          "after a head search that failed")
    out = buf._extract(4)
    _need(type(out) is bytearray and out == b"ab: " and buf._data == b"c\r\n"
          and buf._next_line_search == buf._multiple_lines_search == 0,
          "ReceiveBuffer._extract does not take the bytes and reset both search marks")
    _need(bytes(buf) == b"c\r\n" and buf.is_next_line_obviously_invalid_request_line() is False,
          "ReceiveBuffer's bytes() / is_next_line_obviously_invalid_request_line")
    _need(_receivebuffer.blank_line_regex.pattern == b"\n\r?\n",
          "h11._receivebuffer.blank_line_regex is not \\n\\r?\\n")

    # ChunkedReader: its three state attributes (_chunked reads them before h11 does).
    CR = _readers.ChunkedReader
    r = CR()
    _need((r._bytes_in_chunk, r._bytes_to_discard, r._reading_trailer) == (0, b"", False),
          "a new ChunkedReader has no _bytes_in_chunk 0, _bytes_to_discard b'' and "
          "_reading_trailer False")
    buf = RB()
    buf += b"3;x\r\nab"
    ev = r(buf)
    _need(type(ev) is h11.Data and ev.data == b"ab" and r._bytes_in_chunk == 1
          and not buf._data, "ChunkedReader._bytes_in_chunk is not what is left of the chunk")
    buf += b"c\r"
    ev = r(buf)
    _need(type(ev) is h11.Data and ev.data == b"c" and r._bytes_in_chunk == 0
          and r._bytes_to_discard == b"\r\n" and buf._data == b"\r",
          "ChunkedReader._bytes_to_discard is not the chunk's CRLF, left in the buffer")
    _need(r(buf) is None and r._bytes_to_discard == b"\n" and not buf._data,
          "ChunkedReader._bytes_to_discard is not what is left of the CRLF")
    buf += b"\n0\r\n"
    _need(r(buf) is None and r._reading_trailer is True and not buf._data,
          "ChunkedReader._reading_trailer is not True after the last chunk")
    buf += b"\r\n"
    ev = r(buf)
    _need(type(ev) is h11.EndOfMessage and not buf._data, "ChunkedReader's end of message")
    try:
        CR().read_eof()
    except h11.RemoteProtocolError:
        pass
    else:
        raise _Mismatch("ChunkedReader.read_eof does not raise RemoteProtocolError")

    # The body reader table and the Content-Length reader's count (_h11_reader, _connection).
    readers = _readers.READERS[h11.SEND_BODY]
    _need(isinstance(readers, dict)
          and set(readers) == {"chunked", "content-length", "http/1.0"}
          and readers["chunked"] is CR
          and readers["content-length"] is _readers.ContentLengthReader,
          "h11._readers.READERS[SEND_BODY] is not the chunked / content-length / http/1.0 "
          "reader table")
    _need(_readers.ContentLengthReader(5)._remaining == 5,
          "ContentLengthReader._remaining is not the count left")

    # The head readers' regexes and header decoding (_h11_reader).
    m = _readers.request_line_re.fullmatch(b"GET / HTTP/1.1")
    _need(m is not None and m.group("method", "target", "http_version")
          == (b"GET", b"/", b"1.1"), "h11._readers.request_line_re's groups")
    m = _readers.status_line_re.fullmatch(b"HTTP/1.1 200 OK")
    _need(m is not None and m.group("http_version", "status_code", "reason")
          == (b"1.1", b"200", b"OK"), "h11._readers.status_line_re's groups")
    m = _readers.header_field_re.fullmatch(b"a: b")
    _need(m is not None and m.group("field_name", "field_value") == (b"a", b"b"),
          "h11._readers.header_field_re's groups")
    lines: Any = [bytearray(b"a: b")]  # (what h11's head split gives it)
    _need(list(_readers._decode_header_lines(lines)) == [(b"a", b"b")],
          "h11._readers._decode_header_lines")

    # Headers: the (raw, lower-cased, value) triples everyone reads (_h11_reader builds them,
    # _connection, the router and the balancers read them).
    H = _headers.Headers
    hs = _headers.normalize_and_validate([(b"Host", b"a")], _parsed=True)
    _need(type(hs) is H and hs._full_items == [(b"Host", b"host", b"a")],
          "h11._headers.normalize_and_validate does not give Headers of "
          "(raw, lower-cased, value) _full_items")
    _need(H([(b"A", b"a", b"b")])._full_items == [(b"A", b"a", b"b")],
          "h11._headers.Headers(items)._full_items")
    _need(type(h11.Request(method="GET", target="/", headers=[("Host", "a")]).headers) is H,
          "an h11.Request's headers are not h11._headers.Headers")
    _need(type(_headers.CONTENT_LENGTH_MAX_DIGITS) is int,
          "h11._headers.CONTENT_LENGTH_MAX_DIGITS")

    # The error conversion _h11_reader re-raises with.
    try:
        h11.LocalProtocolError("x", error_status_hint=431)._reraise_as_remote_protocol_error()
    except h11.RemoteProtocolError as e:
        _need(e.error_status_hint == 431,
              "LocalProtocolError._reraise_as_remote_protocol_error loses the status")
    else:
        raise _Mismatch("LocalProtocolError._reraise_as_remote_protocol_error does not raise")


def check_h11_internals() -> None:
    """Raise ``H11InternalsError`` naming the installed h11's version unless its internals the
    proxy core reads are there and behave as in the releases it was tested with
    (``H11_TESTED``): a renamed attribute or a changed meaning is refused here, once, never
    met as an AttributeError in the middle of a request or, worse, read wrongly (a search
    mark that no longer means what ``_chunked`` takes it for lets a bare LF through)."""
    try:
        _probe_h11()
    except _Mismatch as exc:
        raise _h11_mismatch(str(exc)) from None
    except Exception as exc:
        raise _h11_mismatch(f"{type(exc).__name__}: {exc}") from exc


try:
    from h11._readers import ChunkedReader
    from h11._receivebuffer import ReceiveBuffer
except ImportError as exc:  # (h11's own message names the missing module or name)
    raise _h11_mismatch(str(exc)) from exc
check_h11_internals()

# --- the readers ------------------------------------------------------------------------------

#: The largest chunk size nginx's ngx_http_parse_chunked takes, request and upstream side
#: alike: a size digit is refused once "ctx->size > NGX_MAX_OFF_T_VALUE / 16" (so nothing
#: over NGX_MAX_OFF_T_VALUE), and then "if (ctx->size > NGX_MAX_OFF_T_VALUE - 5) { goto
#: invalid; }". h11 takes up to 20 hex digits (2^80 - 1).
#: (NGX_MAX_OFF_T_VALUE is ``_headers.MAX_CONTENT_LENGTH``, 2^63 - 1.)
_MAX_CHUNK_SIZE = (1 << 63) - 1 - 5
#: CTLs but HTAB: the header value rule, here as this module imports nothing of the
#: package (``_headers`` imports ``has_control`` from here).
_CTL_BUT_HTAB = bytes([*range(0x00, 0x09), *range(0x0A, 0x20), 0x7F])


def has_control(value: bytes) -> bool:
    """True if ``value`` (one or several header values joined) holds a CTL other than HTAB
    (``_headers.has_control``: this very function)."""
    return len(value.translate(None, _CTL_BUT_HTAB)) != len(value)


#: h11's reader itself (called unbound: no ``super()`` object per chunk).
_chunked_read = ChunkedReader.__call__
#: A match at ``pos`` in h11's buffer when the chunk line from there holds a bare CR or LF:
#: its first CR or LF is a CR followed by another byte than LF, or an LF. A CR last in the
#: buffer is no match: its LF may be in the next read. (Possessive: no backtracking.)
_bad_chunk_line = re.compile(rb"[^\r\n]*+(?:\r[^\n]|\n)").match
#: A chunk line longer than this, still without its CRLF, has its checked extension bytes
#: dropped (``_drop_extension``); a usual line is read whole, as h11 reads it.
_LONG_LINE = 4096
#: A chunk line's size, as h11's ``chunk_header_re`` takes it (1 to 20 hex digits;
#: possessive: a 21st digit is no match of the byte after the size).
_chunk_size_digits = re.compile(rb"[0-9A-Fa-f]{1,20}+").match
#: A trailer line's field name so far (h11's ``token``), its value (h11's ``field_vchar``,
#: ``[^\x00\s]``, SP and HTAB: what its ``header_field_re`` takes after the colon, OWS
#: included), and any bytes but CR and LF (nginx's ``sw_trailer_header``). Possessive: each
#: byte read once.
#: (``X*+`` always matches: typed as such.)
_Run = Callable[[bytearray, int], "re.Match[bytes]"]
_trailer_name = cast(_Run, re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]*+").match)
_trailer_value = cast(_Run, re.compile(rb"[^\x00\n\r\x0b\x0c]*+").match)
_trailer_any = cast(_Run, re.compile(rb"[^\r\n]*+").match)
#: ``_read_trailer``'s states: at a line's start (none read yet / after a field line), in a
#: field name, in a field value (or an obs-fold continuation, or, lax, anywhere in a line).
_T_FIRST, _T_LINE, _T_NAME, _T_VALUE = 0, 1, 2, 3
_END_OF_MESSAGE = h11.EndOfMessage


class _ChunkedReader(ChunkedReader):
    """h11's chunked reader, for upstream responses, refusing what nginx's
    ngx_http_parse_chunked calls ``invalid`` and h11 lets through ("upstream sent invalid
    chunked response": the response ends there, the client connection is closed and the
    upstream one not kept):

    - a chunk size over ``_MAX_CHUNK_SIZE``: a 64-bit parser behind or in front of us would
      wrap it into another, small one (0x1_0000_0000_0000_0003 read as 3) and end the body
      elsewhere;
    - a bare CR in a chunk line: h11 takes any chunk extension as ``;.*``, CR included
      ("5;\\rX\\r\\n"); nginx's states: "case sw_chunk_extension: switch (ch) { case CR:
      state = sw_chunk_extension_almost_done; ..." then "case sw_chunk_extension_almost_done:
      if (ch == LF) { state = sw_chunk_data; break; } goto invalid;";
    - a bare LF in a chunk line (before any CR): nginx's "case LF: goto invalid;" in
      ``sw_chunk_extension``, and no LF in ``sw_chunk_size``. h11 refuses a line holding
      one (its ``.`` stops at LF) but only once a CRLF ends it: a line ended by a bare LF
      kept the response waiting for the upstream's read timeout;
    - a bare LF or CR in the trailer section (``_read_trailer``): nginx's "case sw_trailer:
      ... case LF: goto invalid;", "case sw_trailer_header: ... case LF: goto invalid;" and
      its ``*_almost_done`` states, which want the LF after a CR.

    The trailer section is nginx's otherwise: any bytes but CR and LF in its lines, however
    many, read as they come and dropped (``_read_trailer``, lax; never forwarded). h11
    refused a line that is no header field (with h11's rules for a Content-Length or
    Transfer-Encoding value among them: "Transfer-Encoding: gzip" was its 501), and held
    the section whole: the response was cut once it outgrew the reader's limit (then
    max_response_header_size; the body's is ``_response_buffer.BODY_LINE_LIMIT``) in
    several reads, where the same bytes in one read passed.

    The rest of a chunk line passes as in nginx, whose ``sw_chunk_extension`` takes any
    byte but CR and LF: NUL or ESC in an extension is no framing (and extensions are
    never forwarded: the body is re-chunked). The request side is stricter
    (``_RequestChunkedReader``: any CTL, as RFC 9112's grammar); the checks here are two
    regex matches per chunk line (the request side's find, slice and ``translate`` cost more:
    4 % more instructions per proxied 100-byte chunk here, 10 % there).

    The bytes are looked at in h11's buffer before h11 consumes them, only on calls that
    start at a chunk line or in the trailers (a call inside a chunk's data reads no line),
    and only those no earlier call looked at: a line arriving a few bytes per read is read
    once, as h11 reads it, not once per read (60 KB of chunk extension one byte per read
    held the event loop for 9 s). The line's bytes start after the CRLF still to discard
    (h11 checks those) or, when an earlier call found the line incomplete, at the last byte
    that call saw: h11 keeps that count (``_next_line_search``: the buffer's length when its
    search for the line's CRLF failed, reset when it takes bytes out), and that call's check
    saw the same bytes and found no CR or LF in them but, maybe, a CR in the last one, whose
    LF may be the first new byte."""

    #: ``_read_trailer``'s state (a class default: set on the instance once trailers come).
    _trailer_state = _T_FIRST

    def __call__(self, buf: ReceiveBuffer) -> Any:
        if self._bytes_in_chunk:
            return _chunked_read(self, buf)
        if self._reading_trailer:
            return _read_trailer(self, buf, True)
        data = buf._data
        start = len(self._bytes_to_discard)
        # (Nothing past the CRLF still to discard: no line to look at yet. This call comes
        # once per chunk, after its data, and costs a match otherwise.)
        if len(data) > start:
            seen: int = buf._next_line_search
            if _bad_chunk_line(data, seen - 1 if seen else start) is not None:
                raise h11.LocalProtocolError("bare CR or LF in chunk line")
            ext = _check_size_end(data, start)
            if len(data) - start > _LONG_LINE and data.find(
                    b"\r\n", seen - 1 if seen else start) < 0:  # (complete: h11 takes it now)
                _drop_extension(buf, ext)
        return _check_chunk_size(self, _chunked_read(self, buf))


def _drop_extension(buf: ReceiveBuffer, ext: int) -> None:
    """Drop the chunk extension bytes of the last chunk line in ``buf`` (h11's buffer), every
    byte of which was checked, and which has no CRLF yet: the line keeps its size digits
    and the ";" at ``ext`` (``_check_size_end``'s answer), and a CR last in the buffer (its
    LF may be the next byte).

    nginx's ngx_http_parse_chunked reads a chunk line byte by byte and keeps none of it:
    ``sw_chunk_extension`` takes any byte but CR and LF, however many (client and upstream
    side alike; ``client_max_body_size`` counts chunk data only). h11 takes the line whole
    (``maybe_extract_next_line``), so a long extension arriving in several reads grew the
    buffer past the head limit: 431 for a request, the response cut for an upstream, where
    the same line in one read passed. h11's verdict on the line is the same without the
    dropped bytes: its chunk line is ``HEXDIG{1,20}(;.*)?OWS\r\n`` in full, and after a
    ";" (which ``_check_size_end`` put in place of a space or a tab) its ``.*`` takes any
    bytes but LF (refused before this call on both sides). The extension is never forwarded
    (the body is re-chunked). (A line this long with no CRLF has its ";" at ``ext``:
    ``_check_size_end`` refused any other byte after 1 to 20 size digits, and a CR there
    is last in the buffer or before an LF.) Then ``_next_line_search`` is the buffer's
    length, as after h11's own failed search."""
    data = buf._data
    end = len(data) - 1 if data[-1] == 13 else len(data)
    del data[ext + 1:end]
    buf._next_line_search = len(data)


def _check_size_end(data: bytearray, start: int) -> int:
    """The byte after a chunk line's size (the line at ``start`` in h11's buffer ``data``),
    read as nginx's ngx_http_parse_chunked reads it: "case sw_chunk_size: ... switch (ch) {
    case CR: ...; case ';': case ' ': case '\\t': state = sw_chunk_extension; break;
    default: goto invalid; }" (``sw_last_chunk_extension`` for the last chunk, alike).

    - A space or a tab starts the extension, as a ";" does: "5 x", "5 ;x", "5\\t;x" are a
      chunk of 5 to nginx. h11's ``chunk_header_re`` (``HEXDIG{1,20}(;.*)?OWS\r\n``)
      refused them (400, or the upstream's response cut); the byte becomes a ";" in h11's
      buffer (the extension is never read: the body is re-chunked, upstream and client
      side alike), so h11 reads the same size. The size is the digits before it for every
      parser that takes the line at all: nothing to disagree on.
    - Any other byte (a 21st digit, a letter, a CTL), or a line with no size digit, is
      refused at once, as nginx does: h11 refused it only at the line's CRLF, so a long
      one was a 431 in several reads and a 400 in one (upstream: cut either way).
    A line holding only its size so far is left to the next read. Returns where the size
    ends (the ";" or CR after it, or the buffer's end)."""
    m = _chunk_size_digits(data, start)
    if m is None:
        raise h11.LocalProtocolError("illegal chunk header: no chunk size")
    end = m.end()
    if end < len(data):
        c = data[end]
        if c == 32 or c == 9:  # (SP, HTAB)
            data[end] = 59  # ";"
        elif c != 59 and c != 13:
            raise h11.LocalProtocolError("illegal chunk header: no ';', space, tab or CRLF "
                                         "after the chunk size")
    return end


def _check_chunk_size(reader: ChunkedReader, event: Any) -> Any:
    """``event``, the reader's answer to a call that may have read a chunk line, if the
    chunk's size is within ``_MAX_CHUNK_SIZE``: h11 set ``_bytes_in_chunk`` to it and took
    what it could of the data (the size is what is left plus what it took)."""
    size: int = reader._bytes_in_chunk
    if size and type(event) is h11.Data:
        # (Nothing left: the whole chunk was in the buffer, no size to worry about.)
        size += len(event.data)
    if size > _MAX_CHUNK_SIZE:
        raise h11.LocalProtocolError("chunk size out of range")
    return event


class _RequestChunkedReader(ChunkedReader):
    """h11's chunked reader, for request bodies, refusing three things h11 lets through where
    another parser may see a different end of the request (the bytes after it are parsed as
    the next request, so a disagreement is a smuggled request):

    - a CTL (bare CR, NUL, ESC...) in a chunk line: h11 takes any chunk extension as ``;.*``,
      but RFC 9112 §7.1.1 ``chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS
      chunk-ext-val ] )`` is tokens and quoted-strings, which hold no CTL but HTAB;
    - a chunk size over ``_MAX_CHUNK_SIZE`` (``_ChunkedReader``'s rule, checked here in the
      same call);
    - a bare LF in the trailer section: h11 ends the trailers at "\n" or "\n\n" (RFC 9112 §2.2
      "a recipient MAY recognize a single LF as a line terminator"), a CRLF-only parser reads
      the bytes after "0\r\n\n" as more trailer lines. The request head gets the same rule
      in ``check_raw_head`` (bare CR/LF refused: "a proxy whose framing differs from the
      backend's is the root of smuggling").

    Trailer lines keep h11's field-line grammar (``_read_trailer``, strict: a field name,
    a colon, a value of any bytes but NUL, CR, LF, VT and FF, obs-fold lines after a first
    line), but not h11's rules for a Content-Length or Transfer-Encoding value among them
    (trailers are never forwarded: "Transfer-Encoding: gzip" there was h11's 501), and the
    section is read as it comes, never held: of any length, as nginx (which discards a
    request's trailers, byte by byte, with no limit) takes it, where h11's section grew past
    the head limit in several reads (431) and passed in one. nginx takes any bytes but CR
    and LF there; the grammar stays for a client's bytes as for its chunk lines.

    The bytes are looked at in h11's buffer before h11 consumes them; raising
    ``LocalProtocolError`` is how h11's readers refuse (the caller answers 400 and closes).

    ``limit`` (set by the proxy core once the request is routed; 0: none) is nginx's
    ``client_max_body_size`` for the body: a chunk line announcing more than it leaves is
    refused at that line, 413 (``_check_body_limit``).
    """

    _trailer_state = _T_FIRST
    #: The body size limit (``proxy-body-size``), and the chunk sizes announced so far
    #: (class defaults: set on the instance when the request has a limit).
    limit = 0
    _announced = 0

    def __call__(self, buf: ReceiveBuffer) -> Any:
        if self._reading_trailer:
            return _read_trailer(self, buf, False)
        if self._bytes_in_chunk == 0:
            # The next chunk line starts after the CRLF still to discard (h11 checks those);
            # its CRLF is searched for from where an earlier call's search ended, if one did
            # (as in ``_ChunkedReader``: once per line, not once per read).
            data = buf._data
            start = len(self._bytes_to_discard)
            if len(data) > start:  # (else no line to look at yet)
                seen: int = buf._next_line_search
                end = data.find(b"\r\n", seen - 1 if seen else start)
                if end >= 0:
                    if has_control(bytes(data[start:end])):
                        raise h11.LocalProtocolError("control character in chunk line")
                    _check_size_end(data, start)
                else:
                    # No CRLF yet: h11 waits for one, but a bare LF (or any CTL) already in
                    # the line is a 400 now, as nginx's ngx_http_parse_chunked refuses it at
                    # that byte (no LF in ``sw_chunk_size``; "case LF: goto invalid;" in
                    # ``sw_chunk_extension``): "5\n" followed by data must not hold the
                    # connection until the body timeout. Only the bytes no earlier call looked
                    # at (from the last one that call saw), and not a CR last in the buffer
                    # (its LF may be the next byte).
                    last = len(data) - 1 if data[-1] == 13 else len(data)
                    if has_control(bytes(data[seen - 1 if seen else start:last])):
                        raise h11.LocalProtocolError("control character in chunk line")
                    ext = _check_size_end(data, start)
                    if last - start > _LONG_LINE:
                        _drop_extension(buf, ext)
            event = _check_chunk_size(self, _chunked_read(self, buf))
            if self.limit:
                _check_body_limit(self, event)
            return event
        return _chunked_read(self, buf)


def _check_body_limit(reader: _RequestChunkedReader, event: Any) -> None:
    """Refuse (413) a request body whose chunk line, if ``reader`` read one in the call that
    gave ``event``, announces more than ``reader.limit`` leaves after the chunks before it.

    nginx's ngx_http_request_body_chunked_filter checks each chunk's size when
    ngx_http_parse_chunked has read its line, before any of its data: "if
    (clcf->client_max_body_size && clcf->client_max_body_size -
    r->headers_in.content_length_n < rb->chunked->size) { ... "client intended to send too
    large chunked body" ... return NGX_HTTP_REQUEST_ENTITY_TOO_LARGE; }". Counted as the
    bytes arrive, the bytes of such a chunk up to the limit went to the backend, and a client
    that announced a big chunk and stalled got no answer until client_body_timeout.
    The size is what h11 left of the chunk plus what it took (``_check_chunk_size``'s sum;
    0 for a call that read no chunk line or the last chunk), so the sum of the sizes
    announced is the body's length once those chunks are read."""
    size: int = reader._bytes_in_chunk
    if type(event) is h11.Data:
        size += len(event.data)
    announced = reader._announced = reader._announced + size
    if announced > reader.limit:
        raise h11.LocalProtocolError("chunked body over the body size limit",
                                     error_status_hint=413)


def _read_trailer(reader: Any, buf: ReceiveBuffer, lax: bool) -> Any:
    """The trailer section at the start of ``buf`` (h11's buffer, once ``reader`` read the last
    chunk): None until its empty line comes, then h11's ``EndOfMessage`` (with no headers:
    trailers are never forwarded, client or upstream side, as nginx drops them), the bytes
    after the section left in ``buf`` (the next message's). Every byte is read once and
    dropped as it is read (a CR last in the buffer stays: its LF may be the next byte), so
    the section may be of any length, the buffer never holds more than one read of it, and
    the verdict does not depend on how the bytes arrive. ``reader._trailer_state`` keeps
    where the line read last stopped (``_T_*``).

    Refused (``LocalProtocolError``), both sides, as nginx's ngx_http_parse_chunked refuses
    them ("case sw_trailer: ... case LF: goto invalid;", "case sw_trailer_almost_done: if
    (ch == LF) { goto done; } goto invalid;", and alike in ``sw_trailer_header*``): a bare LF
    (h11 ends the section at "\\n" or "\\n\\n", RFC 9112 §2.2 "a recipient MAY recognize a
    single LF as a line terminator": after "0\\r\\n\\n" a CRLF-only parser reads on, and
    the next message starts at another byte for each) and a CR not followed by LF. ``lax``
    (the upstream side): any other byte passes, as in nginx. Strict (the request side):
    h11's ``header_field_re`` for each line (a token, ":", then any bytes but NUL, CR, LF,
    VT and FF: h11's ``field_vchar`` is ``[^\\x00\\s]``, with SP and HTAB between),
    and its obs-fold (a line starting with SP or HTAB continues the one before, whose value
    it extends; none before it: "continuation line at start of headers")."""
    data = buf._data
    n = len(data)
    state: int = reader._trailer_state
    pos = 0
    while pos < n:
        c = data[pos]
        if state <= _T_LINE:  # a line's first byte
            if c == 13:  # (CR) the empty line: the end of the section
                if pos + 1 == n:
                    break
                if data[pos + 1] != 10:
                    raise h11.LocalProtocolError("bare CR in chunked trailer section")
                buf._extract(pos + 2)
                reader._trailer_state = _T_FIRST
                return _END_OF_MESSAGE()
            if c == 10:
                raise h11.LocalProtocolError("bare LF in chunked trailer section")
            if lax:
                state = _T_VALUE
            elif c == 32 or c == 9:  # (SP, HTAB) obs-fold
                if state == _T_FIRST:
                    raise h11.LocalProtocolError("continuation line at start of trailers")
                state = _T_VALUE
                pos += 1
            else:
                end = _trailer_name(data, pos).end()
                if end == pos:  # (no field name: ":", a CTL, a separator...)
                    raise h11.LocalProtocolError("illegal trailer line")
                pos = end
                state = _T_NAME
            continue
        if state == _T_NAME:
            pos = _trailer_name(data, pos).end()
            if pos == n:
                break
            if data[pos] != 58:  # (58: ":") a name ends at its colon
                raise h11.LocalProtocolError("illegal trailer line")
            pos += 1
            state = _T_VALUE
            continue
        pos = (_trailer_any if lax else _trailer_value)(data, pos).end()
        if pos == n:
            break
        c = data[pos]
        if c == 13:
            if pos + 1 == n:
                break  # (the CR stays)
            if data[pos + 1] != 10:
                raise h11.LocalProtocolError("bare CR in chunked trailer section")
            pos += 2
            state = _T_LINE
        elif c == 10:
            raise h11.LocalProtocolError("bare LF in chunked trailer section")
        else:
            raise h11.LocalProtocolError("control character in chunked trailer section")
    if pos:
        buf._extract(pos)
    reader._trailer_state = state
    return None
