"""``_H11Reader``: one side's incoming messages (request heads and bodies from the client,
response heads and bodies from an upstream), parsed with h11's own parser functions, without
h11's two-party state machine; the head readers and the body framing decision it runs.
Its chunked body readers are ``_chunked``'s. No socket, asyncio, ssl or logging handler here.
It reads h11's internals (its head regexes, ``ReceiveBuffer``, ``Headers``): ``_chunked``'s
``check_h11_internals`` probes them when the module is imported.

Choice made here (SEMANTICS leaves it open; tested in ``tests/test_proxy_*.py``):
- An upstream's Content-Length is one line holding one number: "5, 5" or a second line (which
  h11 merges into one) is an invalid response, 502, as in nginx 1.23+.
"""

from __future__ import annotations

from typing import Any

import h11

# (First: importing ``_chunked`` checks h11's internals, the ones below included, and refuses
# an h11 whose internals differ with an error naming its version.)
from ._chunked import _ChunkedReader, _RequestChunkedReader

from h11._headers import CONTENT_LENGTH_MAX_DIGITS as _CONTENT_LENGTH_MAX_DIGITS
from h11._headers import Headers as _H11Headers
from h11._headers import normalize_and_validate
from h11._readers import (
    READERS,
    _decode_header_lines,
    header_field_re,
    request_line_re,
    status_line_re,
)
from h11._receivebuffer import ReceiveBuffer, blank_line_regex

__all__ = ["_H11Reader"]

# h11's public event classes (the very classes its readers build).
_InformationalResponse = h11.InformationalResponse
_H11Request = h11.Request
_H11Response = h11.Response

_BODY_READERS: dict[str, Any] = READERS[h11.SEND_BODY]  # type: ignore[assignment]

_RESPONSE_BODY_READERS: dict[str, Any] = {**_BODY_READERS, "chunked": _ChunkedReader}
_REQUEST_BODY_READERS: dict[str, Any] = {**_BODY_READERS, "chunked": _RequestChunkedReader}
#: Reader state: in the body of a message after which the peer closes (not keep-alive).
_SEND_BODY_CLOSE: Any = object()
# h11's states and sentinels as globals (compared by identity several times per message).
_IDLE, _SEND_BODY, _DONE, _MUST_CLOSE, _ERROR = (h11.IDLE, h11.SEND_BODY, h11.DONE,
                                                 h11.MUST_CLOSE, h11.ERROR)
_NEED_DATA, _PAUSED, _EndOfMessage = h11.NEED_DATA, h11.PAUSED, h11.EndOfMessage

# --- message heads: h11's readers, each step kept, in one pass ---------------------------------
# ``_read_request_head`` / ``_read_response_head`` are h11's ``maybe_read_from_IDLE_client`` /
# ``maybe_read_from_SEND_RESPONSE_server`` (h11 0.14-0.16, ``h11/_readers.py``) with the event
# built in place: the same buffer split (``ReceiveBuffer.maybe_extract_lines``), the same
# request/status-line and header-field regexes, the same errors in the same order, and the
# same ``Request``/``Response`` values. What is left out is work that cannot change the result
# (it cost a third of reading a head): two generators per head, ``groupdict`` per line, and
# the event constructor's second pass over the headers (``normalize_and_validate``, run here
# only when a Content-Length or Transfer-Encoding is there for it to check), its Host count
# through ``Sequence.__iter__``, and its re-match of the method and target against the very
# sub-patterns the request-line regex matched them with (``_abnf``: ``request_line =
# (?P<method>{method}) (?P<target>{request_target}) ...``, ``method_re =
# re.compile(method)``, ``request_target_re = re.compile(request_target)``).
# tests/test_proxy_connection.py::test_reader_parses_*_like_h11 hold them to h11's events.

_header_field = header_field_re.fullmatch
_set = object.__setattr__


def _extract_lines(buf: ReceiveBuffer) -> list[Any] | None:
    """h11's ``ReceiveBuffer.maybe_extract_lines``: the head's lines, each without its line
    end, or None while incomplete. Same search, same buffer bookkeeping; a head whose every
    LF follows a CR (every request that passed ``check_raw_head``, nearly every response) is
    split at CRLF in one call, which is what splitting at LF and dropping one trailing CR per
    line gives (h11's loop over the lines, one ``endswith`` and maybe a ``del`` each)."""
    data = buf._data
    if data[:1] == b"\n" or data[:2] == b"\r\n":
        return buf.maybe_extract_lines()  # an empty head: h11's own
    match = blank_line_regex.search(data, buf._multiple_lines_search)
    if match is None:
        buf._multiple_lines_search = max(0, len(data) - 2)
        return None
    out = buf._extract(match.end())
    if out.count(b"\n") != out.count(b"\r\n"):
        lines = out.split(b"\n")
        for line in lines:
            if line.endswith(b"\r"):
                del line[-1]
    else:
        lines = out.split(b"\r\n")
    assert lines[-2] == lines[-1] == b""
    del lines[-2:]
    return lines


#: What ``_framing`` reads in the headers, gathered while they are decoded: the Content-Length
#: value (None: none), a Transfer-Encoding ("chunked"), "close" among the Connection tokens.
_Hint = tuple[bytes | None, bool, bool]


def _head_headers(lines: list[Any]) -> tuple[Any, int, _Hint | None]:
    """``normalize_and_validate(list(_decode_header_lines(lines)), _parsed=True)``, the
    number of Host fields in it, and the ``_framing`` hint (None: ``_framing`` looks)."""
    items: list[tuple[bytes, bytes, bytes]] = []
    hosts = 0
    framing = chunked = close = False
    length: bytes | None = None
    for line in lines:
        m = _header_field(line) if line[:1] not in (b" ", b"\t") else None
        if m is None:
            # An obs-fold line (h11's ``obs_fold_re``, "[ \t]+" at the start; never in a
            # request: ``check_raw_head`` refuses it first) or an illegal line: h11's own
            # path, whole (its unfolding, its error for the line as it unfolds it).
            headers = normalize_and_validate(list(_decode_header_lines(lines)), _parsed=True)
            return headers, sum(1 for _, n, _v in headers._full_items if n == b"host"), None
        raw, value = m.group("field_name", "field_value")
        name = raw.lower()
        if name == b"host":
            hosts += 1
        elif name == b"content-length":
            # One Content-Length of at most 20 ASCII digits is one h11 keeps as it is
            # (``normalize_and_validate``: the comma-split set of one value, ``[0-9]+``,
            # ``CONTENT_LENGTH_MAX_DIGITS``); anything else goes through h11's rules.
            if length is not None or not value.isdigit() or \
                    len(value) > _CONTENT_LENGTH_MAX_DIGITS:
                framing = True
            length = value
        elif name == b"transfer-encoding":
            # Likewise one "chunked" (h11 lower-cases the value and refuses any other).
            if chunked or value != b"chunked":
                framing = True
            chunked = True
        elif name == b"connection" and not close:
            close = b"close" in [t.strip() for t in value.lower().split(b",")]
        items.append((raw, name, value))
    if framing:
        # h11's rules for these (one Content-Length value, merged duplicates, digits only;
        # Transfer-Encoding "chunked" only, once), its errors, after every line was decoded.
        return normalize_and_validate([(r, v) for r, _, v in items], _parsed=True), hosts, None
    return _H11Headers(items), hosts, (length, chunked, close)


def _no_head(buf: ReceiveBuffer, lines: list[Any] | None, what: str) -> None:
    """h11's two errors of both head readers when ``_extract_lines`` gave no line
    (``lines``: None while the head is incomplete, ``[]`` for none): a first line that can
    already be seen to be no start line, and no line; an incomplete head that may still be
    one waits for more (no error). Called only then: a complete head, every request and
    response, costs no call for it."""
    if lines is None:
        if buf.is_next_line_obviously_invalid_request_line():
            raise h11.LocalProtocolError("illegal request line")
        return
    raise h11.LocalProtocolError(f"no {what} line received")


def _read_request_head(buf: ReceiveBuffer) -> tuple[Any, _Hint | None] | None:
    """h11's ``maybe_read_from_IDLE_client`` (see above): its event, and the ``_framing``
    hint."""
    lines = _extract_lines(buf)
    if not lines:
        _no_head(buf, lines, "request")
        return None
    first = lines[0]
    m = request_line_re.fullmatch(first)
    if m is None:
        raise h11.LocalProtocolError("illegal request line: {!r}".format(first))
    method, target, version = m.group("method", "target", "http_version")
    headers, hosts, hint = _head_headers(lines[1:])
    # h11's Request: "A server MUST respond with a 400 (Bad Request) status code to any
    # HTTP/1.1 request message that lacks a Host header field and to any request message that
    # contains more than one Host header field".
    if version == b"1.1" and hosts == 0:
        raise h11.LocalProtocolError("Missing mandatory Host: header")
    if hosts > 1:
        raise h11.LocalProtocolError("Found multiple Host: headers")
    event = object.__new__(_H11Request)
    _set(event, "headers", headers)
    _set(event, "method", method)
    _set(event, "target", target)
    _set(event, "http_version", version)
    return event, hint


def _check_response_length(lines: list[Any]) -> None:
    """The one rule ``_read_response_head`` adds to h11's: a response's Content-Length is one
    line holding one number. h11 merges equal values ("Content-Length: 5, 5", or two lines
    of 5) into one; nginx 1.23+ refuses both as an invalid upstream header (502),
    ngx_http_upstream_process_content_length: "if (u->headers_in.content_length) { ...
    "upstream sent duplicate header line: ..." return NGX_HTTP_UPSTREAM_INVALID_HEADER; }"
    and, for a list, ngx_atoof failing: "upstream sent invalid "Content-Length" header".
    A client or cache behind us that reads the first of two lengths, or a list as its first
    number, agrees with us here, but one that refuses them, or takes the last, need not:
    the upstream's framing is ambiguous, and nginx does not forward it.

    ``lines`` are the raw header lines after h11 read them (an obs-fold continuation was
    appended to the line it continues, so a folded length is no number either)."""
    seen = False
    for line in lines:
        name, colon, value = bytes(line).partition(b":")
        if colon and name.lower() == b"content-length":
            if seen or not value.strip(b" \t").isdigit():
                raise h11.LocalProtocolError("Content-Length repeated or not one number")
            seen = True


def _read_response_head(buf: ReceiveBuffer) -> tuple[Any, _Hint | None] | None:
    """h11's ``maybe_read_from_SEND_RESPONSE_server`` (see above): its event, and the
    ``_framing`` hint; plus nginx's one Content-Length (``_check_response_length``)."""
    lines = _extract_lines(buf)
    if not lines:
        _no_head(buf, lines, "response")
        return None
    first = lines[0]
    m = status_line_re.fullmatch(first)
    if m is None:
        raise h11.LocalProtocolError("illegal status line: {!r}".format(first))
    version, status, reason = m.group("http_version", "status_code", "reason")
    if version is None:
        version = b"1.1"
    if reason is None:
        reason = b""
    status_code = int(status)
    headers, _, hint = _head_headers(lines[1:])
    if hint is None:
        # (Only heads h11's own rules read: a second Content-Length or Transfer-Encoding,
        # a length that is no plain number, an obs-fold.)
        _check_response_length(lines[1:])
    event: Any
    if status_code < 200:
        if status_code < 100:
            raise h11.LocalProtocolError(
                "InformationalResponse status_code should be in range [100, 200), not {}"
                .format(status_code))
        event = object.__new__(_InformationalResponse)
    else:
        # (three digits: below 1000, as h11's Response requires)
        event = object.__new__(_H11Response)
    _set(event, "headers", headers)
    _set(event, "reason", reason)
    _set(event, "http_version", version)
    _set(event, "status_code", status_code)
    return event, hint


def _framing(method: bytes, event: Any, hint: _Hint | None = None
             ) -> tuple[str, tuple[int, ...], bool]:
    """h11's ``_body_framing(method, event)`` and ``_keep_alive(event)`` (``h11/_connection.py``)
    in one pass over the headers (none: ``hint`` is what the pass would find, gathered by
    ``_head_headers``): ``(reader kind, reader args, keep-alive)``.

    The headers went through h11's ``normalize_and_validate``: at most one Content-Length, its
    value digits only; at most one Transfer-Encoding, "chunked". So h11's
    ``get_comma_header`` lists are: Transfer-Encoding ``[b"chunked"]`` when there is one,
    Content-Length ``[value]``; "close" among the Connection tokens ends keep-alive, as does a
    version below 1.1."""
    if hint is not None:
        length, chunked, close = hint
    else:
        chunked = close = False
        length = None
        for _, name, value in event.headers._full_items:
            if name == b"transfer-encoding":
                chunked = True
            elif name == b"content-length":
                if length is None:
                    length = value
            elif name == b"connection" and not close:
                close = b"close" in [t.strip() for t in value.lower().split(b",")]
    keep_alive = not close and not event.http_version < b"1.1"
    if type(event) is _H11Response:
        status = event.status_code
        if status in (204, 304) or method == b"HEAD" or (
                method == b"CONNECT" and 200 <= status < 300):
            return "content-length", (0,), keep_alive
    if chunked:
        return "chunked", (), keep_alive
    if length is not None:
        return "content-length", (int(length),), keep_alive
    if type(event) is _H11Request:
        return "content-length", (0,), keep_alive
    return "http/1.0", (), keep_alive


def _announces_body(event: Any, hint: _Hint | None) -> bool:
    """Whether a response head announces a body: a Transfer-Encoding, or a Content-Length
    other than 0 (``hint``: what ``_head_headers`` gathered; None: the headers are looked at)."""
    if hint is not None:
        length, chunked, _ = hint
        return chunked or (length is not None and int(length) != 0)
    for _, name, value in event.headers._full_items:
        if name == b"transfer-encoding" or (name == b"content-length" and int(value) != 0):
            return True
    return False


class _H11Reader:
    """One side's incoming messages, parsed by h11's own parser functions (the same
    request/status-line and header-field regexes, framing rules, body readers and size limit as
    ``h11.Connection.next_event``; its head readers as ``_read_request_head`` /
    ``_read_response_head``, step for step) without h11's two-party state machine.

    The proxy writes its outgoing bytes itself, so the half of ``h11.Connection`` that tracks
    what *we* sent, and re-runs the state machine, the keep-alive and 100-continue bookkeeping
    for every event both ways, is pure overhead here (it cost more than the parsing). What it
    decided that matters is kept: the body framing of the message (h11's ``_body_framing``:
    HEAD, 204/304 and 1xx have no body; Transfer-Encoding beats Content-Length; else
    Content-Length or, for a response, read-until-close), the keep-alive of the message
    (``_keep_alive``; both in one pass, ``_framing``; ``keep_alive`` keeps the last one),
    "peer closed in the middle of a message" as an error, the incomplete-event size limit
    (431), and ERROR being final. Events and exceptions are h11's (``RemoteProtocolError``).
    One reader parses one message after another (``start_next_cycle``); ``their_state`` says
    ``DONE``, ``MUST_CLOSE`` (message complete, peer does not keep the connection alive) or
    ``SEND_BODY``/``IDLE``/``ERROR``.
    """

    __slots__ = ("_buf", "_closed", "_head", "_body", "_max", "_state", "method", "_readers",
                 "_client", "keep_alive", "spent")

    def __init__(self, client: bool, max_incomplete_event_size: int) -> None:
        # client=True: we are the client, the peer sends responses.
        self._buf = ReceiveBuffer()
        self._closed = False
        self._client = client
        self._head = _read_response_head if client else _read_request_head
        self._readers = _RESPONSE_BODY_READERS if client else _REQUEST_BODY_READERS
        #: h11's keep-alive of the last message head (``_keep_alive``: HTTP/1.1 without
        #: "close" in Connection).
        self.keep_alive = True
        self._body: Any = None
        self._max = max_incomplete_event_size
        self._state: Any = h11.IDLE
        #: The method of the request a response answers (HEAD/CONNECT change its framing).
        self.method = b"GET"
        #: The last response has no body by its request or status (HEAD, 204) but its
        #: head announces one (``_announces_body``): the connection is not to be reused,
        #: though h11 keeps it. An upstream that writes that body anyway, in a write of its
        #: own, has its bytes arrive after the connection went back to the pool, and the
        #: next request sent there -- another client's -- takes them for its response (the
        #: pool's look for unread bytes when it hands a connection out, as nginx's
        #: ngx_http_upstream_free_keepalive_peer, only sees bytes already there).
        self.spent = False

    @property
    def their_state(self) -> Any:
        state = self._state
        return h11.SEND_BODY if state is _SEND_BODY_CLOSE else state

    @property
    def has_trailing(self) -> bool:
        return bool(self._buf._data)

    @property
    def trailing_data(self) -> tuple[bytes, bool]:
        return bytes(self._buf), self._closed

    @property
    def peer_closed(self) -> bool:
        """The peer's EOF was received (``receive_data(b"")``) since the last ``reset``."""
        return self._closed

    def receive_data(self, data: bytes) -> None:
        if data:
            self._buf += data
        else:
            self._closed = True

    def start_next_cycle(self) -> None:
        self._state = h11.IDLE
        self._body = None
        self.spent = False

    def reset(self) -> None:
        """As a new reader (same side, same limit): the server side's next request."""
        self._buf = ReceiveBuffer()
        self._closed = False
        self._body = None
        self._state = h11.IDLE
        self.keep_alive = True
        self.spent = False

    def next_event(self) -> Any:
        state = self._state
        if state is _ERROR:
            raise h11.RemoteProtocolError("Can't receive data when peer state is ERROR")
        if state is _DONE or state is _MUST_CLOSE:
            return _PAUSED
        buf = self._buf
        # (``buf._data``, the bytearray, for emptiness and size: ``ReceiveBuffer``'s
        # ``__bool__``/``__len__`` are two Python calls per look.)
        try:
            body = self._body
            event: Any
            if body is None:
                head = self._head(buf)
                if head is not None:
                    event, hint = head
                    t = type(event)
                    if t is _H11Request or t is _H11Response:
                        kind, args, keep_alive = _framing(
                            event.method if t is _H11Request else self.method, event, hint)
                        self._body = self._readers[kind](*args)
                        self.keep_alive = keep_alive
                        # A 304 keeps its connection, as in nginx: its framing headers are
                        # the representation's (RFC 9110 §15.4.5) and conditional GETs are
                        # common; an upstream writing a 304 body is rarer than one writing a
                        # HEAD body, and a 204 announcing one breaks RFC 9110 §8.6 already.
                        if t is _H11Response and (self.method == b"HEAD"
                                                  or event.status_code == 204):
                            self.spent = _announces_body(event, hint)
                        self._state = _SEND_BODY if keep_alive else _SEND_BODY_CLOSE
                    elif event.status_code == 101:
                        self._state = _DONE  # switched protocols: no more HTTP here
                    return event
            else:
                event = body(buf)
                if event is None and not buf._data and self._closed:
                    read_eof = getattr(body, "read_eof", None)
                    event = read_eof() if read_eof is not None else h11.ConnectionClosed()
                if event is not None:
                    if type(event) is _EndOfMessage:
                        self._state = _DONE if state is _SEND_BODY else _MUST_CLOSE
                    return event
            if not buf._data and self._closed and body is None:
                if self._client:
                    # A request was sent: the peer closing before a response is an error.
                    raise h11.RemoteProtocolError("peer closed connection without a response")
                return h11.ConnectionClosed()
            if len(buf._data) > self._max:
                raise h11.RemoteProtocolError("Receive buffer too long", error_status_hint=431)
            if self._closed:
                raise h11.RemoteProtocolError("peer unexpectedly closed connection")
            return _NEED_DATA
        except h11.LocalProtocolError as exc:
            self._state = _ERROR
            exc._reraise_as_remote_protocol_error()
        except BaseException:
            self._state = _ERROR
            raise
