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
"""

from __future__ import annotations

import re
from typing import Any

import h11
from h11._readers import ChunkedReader
from h11._receivebuffer import ReceiveBuffer, blank_line_regex

from ._headers import MAX_CONTENT_LENGTH, has_control

__all__ = ["_ChunkedReader", "_RequestChunkedReader", "_MAX_CHUNK_SIZE"]


#: The largest chunk size nginx's ngx_http_parse_chunked takes, request and upstream side
#: alike: a size digit is refused once "ctx->size > NGX_MAX_OFF_T_VALUE / 16" (so nothing
#: over NGX_MAX_OFF_T_VALUE), and then "if (ctx->size > NGX_MAX_OFF_T_VALUE - 5) { goto
#: invalid; }". h11 takes up to 20 hex digits (2^80 - 1).
_MAX_CHUNK_SIZE = MAX_CONTENT_LENGTH - 5
#: h11's reader itself (called unbound: no ``super()`` object per chunk).
_chunked_read = ChunkedReader.__call__
#: A match at ``pos`` in h11's buffer when the chunk line from there holds a bare CR or LF:
#: its first CR or LF is a CR followed by another byte than LF, or an LF. A CR last in the
#: buffer is no match: its LF may be in the next read. (Possessive: no backtracking.)
_bad_chunk_line = re.compile(rb"[^\r\n]*+(?:\r[^\n]|\n)").match
#: An LF with no CR before it (looks behind ``pos`` too).
_bare_lf = re.compile(rb"(?<!\r)\n").search


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
    - a bare LF in the trailer section (``_check_trailer``): nginx's "case sw_trailer: ...
      case LF: goto invalid;", "case sw_trailer_header: ... case LF: goto invalid;".

    The rest of a chunk line passes as in nginx, whose ``sw_chunk_extension`` takes any
    byte but CR and LF: NUL or ESC in an extension is no framing (and extensions are
    never forwarded: the body is re-chunked). The request side is stricter
    (``_RequestChunkedReader``: any CTL, as RFC 9112's grammar); the check here is one
    regex match per chunk line (the request side's find, slice and ``translate`` cost more:
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

    def __call__(self, buf: ReceiveBuffer) -> Any:
        if self._bytes_in_chunk:
            return _chunked_read(self, buf)
        if self._reading_trailer:
            _check_trailer(buf)
            return _chunked_read(self, buf)
        data = buf._data
        start = len(self._bytes_to_discard)
        # (Nothing past the CRLF still to discard: no line to look at yet. This call comes
        # once per chunk, after its data, and costs a match otherwise.)
        if len(data) > start:
            seen: int = buf._next_line_search
            if _bad_chunk_line(data, seen - 1 if seen else start) is not None:
                raise h11.LocalProtocolError("bare CR or LF in chunk line")
        return _check_chunk_size(self, _chunked_read(self, buf))


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

    The bytes are looked at in h11's buffer before h11 consumes them; raising
    ``LocalProtocolError`` is how h11's readers refuse (the caller answers 400 and closes).
    """

    def __call__(self, buf: ReceiveBuffer) -> Any:
        if self._reading_trailer:
            _check_trailer(buf)
        elif self._bytes_in_chunk == 0:
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
            return _check_chunk_size(self, _chunked_read(self, buf))
        return _chunked_read(self, buf)


def _check_trailer(buf: ReceiveBuffer) -> None:
    """Refuse a bare LF in the trailer section at the start of ``buf`` (h11's buffer, when
    its chunked reader is about to read the trailers): h11 ends the section at "\\n" or
    "\\n\\n" (RFC 9112 §2.2: "a recipient MAY recognize a single LF as a line
    terminator"), so after "0\\r\\n\\n" a CRLF-only parser reads more trailer lines where
    h11 saw the message end: the next message starts at another byte for each.

    Only the bytes no earlier call looked at: h11's ``_multiple_lines_search`` (where its
    search for the section's end starts again: two bytes before the end of the buffer it
    last searched, reset when it takes bytes out); that call's check found no bare LF
    before it (the look-behind sees the CR of a CRLF split there)."""
    data = buf._data
    if data[:2] != b"\r\n":
        if data[:1] == b"\n":
            raise h11.LocalProtocolError("bare LF in chunked trailer section")
        start: int = buf._multiple_lines_search
        m = blank_line_regex.search(data, start)
        if _bare_lf(data, start, m.end() if m is not None else len(data)) is not None:
            raise h11.LocalProtocolError("bare LF in chunked trailer section")
