"""Review of the access log (session 18, L18): per-try upstream times, values no entry may be
lost for, and nginx's escaping byte for byte."""

from __future__ import annotations

import datetime
import io
import json
import logging
import random
from collections.abc import Iterator

import pytest

from ingresslib._accesslog import (
    AccessLog,
    AccessLogFormatter,
    access_fields,
    configure_access_log,
    format_line,
)
from ingresslib.proxy._actions import RequestRecord

from _records import rec

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 11, 21, 13, 25, 42, tzinfo=UTC).timestamp()


def _timed(times: tuple[float | None, ...], **kw: object) -> RequestRecord:
    return rec(upstreams=(("10.0.0.1", 8080), ("10.0.0.2", 8080)), upstream_statuses=(502, 200),
               upstream_response_time=0.0314, upstream_header_time=0.01,
               upstream_response_times=times, **kw)


def _json(record: RequestRecord) -> dict[str, object]:
    entry = logging.LogRecord("ingresslib.access", logging.INFO, __file__, 0, "", None, None)
    entry.access = access_fields(record, NOW, UTC)
    out: dict[str, object] = json.loads(AccessLogFormatter("json").format(entry))
    return out


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = configure_access_log(stream, "text")
    try:
        yield stream
    finally:
        logger = logging.getLogger("ingresslib.access")
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
        logger.propagate = True


# ---------------------------------------------------------------- retries: one time per try

def test_every_tries_time_is_listed_in_line_with_addresses_and_statuses() -> None:
    # nginx's ngx_http_upstream_response_time_variable writes one time per upstream state,
    # ", "-separated, as $upstream_addr and $upstream_status list one entry per try: a parser
    # zipping the lists pairs each address with its own status, length and time. The line used
    # to carry the last try's time only ("0.031" beside two addresses).
    f = access_fields(_timed((0.0021, 0.0314)), NOW, UTC)
    assert f["upstream_response_time"] == "0.002, 0.031"
    assert (" 10.0.0.1:8080, 10.0.0.2:8080 0, 100 0.002, 0.031 502, 200 abc"
            in format_line(f)), format_line(f)


def test_a_try_without_a_time_is_a_dash_in_its_place() -> None:
    # "if (ms != -1) { ... } else { *p++ = '-'; }": the list keeps its length.
    f = access_fields(_timed((None, 0.0314)), NOW, UTC)
    assert f["upstream_response_time"] == "-, 0.031"


def test_json_keeps_the_last_tries_time_as_a_number() -> None:
    # A field that is a number on one line and a string on the next is a mapping conflict for a
    # log store: JSON keeps one number, the last try's (as upstream_response_length keeps the
    # length of the response the client got).
    assert _json(_timed((0.0021, 0.0314)))["upstream_response_time"] == 0.031
    assert _json(_timed((0.0021, None)))["upstream_response_time"] is None
    assert _json(rec())["upstream_response_time"] == 0.028


def test_times_that_do_not_match_the_tries_fall_back_to_the_last() -> None:
    # A core that fills the field must fill it for every try; a short tuple is not guessed at.
    f = access_fields(_timed((0.0314,)), NOW, UTC)
    assert f["upstream_response_time"] == "0.031"
    assert access_fields(rec(), NOW, UTC)["upstream_response_time"] == "0.028"


# ---------------------------------------------------------------- no entry is ever lost

def test_a_lone_surrogate_is_escaped_not_the_entry_lost(captured: io.StringIO) -> None:
    # A value decoded with "surrogatepass" (an embedding's own record) holds a surrogate that
    # surrogateescape cannot encode: format_line raised UnicodeEncodeError and the entry was
    # lost ("access log: writing to ... failed" on ingresslib.accesslog). It is escaped like
    # any other byte now (the JSON form already wrote it, escaped: ensure_ascii).
    AccessLog(clock=lambda: NOW, tz=UTC)(rec(user_agent="a\ud800b\u2028"))
    line = captured.getvalue()
    assert line.count("\n") == 1
    assert '"a\\xED\\xA0\\x80b\\xE2\\x80\\xA8"' in line, line
    assert _json(rec(user_agent="a\ud800b"))["http_user_agent"] == "a\ud800b"


# ---------------------------------------------------------------- escaping, byte for byte

# ngx_http_log_escape's table (nginx src/http/modules/ngx_http_log_module.c): one bit per
# byte, set where the byte is written "\xHH" (upper-case hex).
_NGINX_ESCAPE = (0xFFFFFFFF, 0x00000004, 0x10000000, 0x80000000,
                 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF)


def _nginx_escape(raw: bytes) -> str:
    return "".join(f"\\x{b:02X}" if _NGINX_ESCAPE[b >> 5] & (1 << (b & 0x1F)) else chr(b)
                   for b in raw)


def test_every_byte_is_escaped_as_nginx_escapes_it() -> None:
    # All 256 byte values in a quoted field (User-Agent as the core holds it: latin-1, one
    # character per byte received) and an unquoted one ($remote_user).
    raw = bytes(range(256))
    held = raw.decode("latin-1")
    line = format_line(access_fields(rec(user_agent=held, remote_user=held), NOW, UTC))
    want = _nginx_escape(raw)
    assert f' - {want} [' in line
    assert f'"{want}" 35 ' in line
    assert "\n" not in line and "\r" not in line


def test_a_client_cannot_forge_a_line_or_a_field_through_the_core() -> None:
    # End to end: CR, LF and the other control bytes but HTAB cannot reach a header value (the
    # core refuses them with 400), and what can (quotes, backslashes, tabs, bytes >= 0x80) is
    # escaped, so the quoted fields keep their bounds and the entry stays one line.
    from _proxy_harness import ProxyPair, Route

    ua = b'x" 200 0 "-" "evil\\\t\xc3'
    pair = ProxyPair([Route(path="/", host="foo.test")])
    out = pair.send(b"GET /a HTTP/1.1\r\nHost: foo.test\r\nUser-Agent: " + ua
                    + b"\r\nReferer: \xff\"red\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200")
    line = format_line(access_fields(pair.records[0], NOW, UTC))
    referer = _nginx_escape(b'\xff"red')
    assert f'"{referer}" "{_nginx_escape(ua)}" ' in line, line
    assert line.count('"') == 6
    forged = ProxyPair([Route(path="/", host="foo.test")])
    out = forged.send(b"GET /a HTTP/1.1\r\nHost: foo.test\r\nUser-Agent: a\rb\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 400")
    assert "\r" not in format_line(access_fields(forged.records[0], NOW, UTC))


def test_any_value_gives_one_printable_ascii_line_and_valid_json() -> None:
    # Client-chosen fields with arbitrary bytes (held latin-1, as the core holds them), plus
    # the strings an embedding's record may carry (lone surrogates, U+2028, astral
    # characters): the text line is printable ASCII (no CR/LF/NEL to split it), the JSON entry
    # is ASCII, one line, and parses.
    rnd = random.Random(18)
    extras = ("", "\ud800", "\udcff", "\u2028", "\U0001f600", "\x85")
    fmt = AccessLogFormatter("json")

    def value() -> str:
        raw = bytes(rnd.randrange(256) for _ in range(rnd.randrange(12)))
        return raw.decode("latin-1") + rnd.choice(extras)

    for _ in range(2000):
        fields = access_fields(rec(
            user_agent=value(), referer=value(), remote_user=value(), request_line=value(),
            request_id=value(), host=value(), client_ip=value()), NOW, UTC)
        line = format_line(fields)
        assert line.isascii() and line.isprintable(), repr(line)
        entry = logging.LogRecord("ingresslib.access", logging.INFO, __file__, 0, "", None, None)
        entry.access = fields
        text = fmt.format(entry)
        assert text.isascii() and len(text.splitlines()) == 1
        json.loads(text)
