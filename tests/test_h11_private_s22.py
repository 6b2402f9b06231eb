"""Session 22: the proxy core's dependence on h11's internals, and long chunk extensions.

1. The core drives h11's readers and receive buffer without ``h11.Connection`` (its search
   marks, its chunked reader's state, its ``Headers`` triples): ``_chunked``'s
   ``check_h11_internals`` probes all of them when the core is imported, and an h11 whose
   internals differ is an error naming its version, never an AttributeError in the
   middle of a request or a search mark read wrongly. These tests pin that shape.
2. A chunk extension of any length passes, as nginx's ngx_http_parse_chunked passes it
   (``sw_chunk_extension`` takes any byte but CR and LF, however many): before, a long one
   arriving in several reads was a 431 (request) or a cut response (upstream), while the same
   bytes in one read passed.

Every test here failed on the code before this session, unless its docstring says "guard".
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import h11
import h11._headers
import h11._readers
import h11._receivebuffer
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingresslib.proxy._chunked import H11_TESTED, H11InternalsError, check_h11_internals
from ingresslib.proxy._h11_reader import _H11Reader
from tests._budget import examples
from tests._proxy_harness import ProxyPair, dechunk, silent_app, status_of, upstream_sends

_ROOT = Path(__file__).resolve().parents[1]
_H11_VERSION: str = getattr(h11, "__version__")  # (not in h11's __all__)
_HEAD = b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"


# 1. h11's internals --------------------------------------------------------------------------


def test_installed_h11_passes_the_check_and_is_the_pinned_range() -> None:
    """The probe passes on the installed h11, which is in the range pyproject.toml pins,
    and that range is the one the error message asks for."""
    check_h11_internals()
    text = (_ROOT / "pyproject.toml").read_text()
    assert f'"h11{H11_TESTED}"' in text
    major, minor = (int(x) for x in _H11_VERSION.split(".")[:2])
    assert (major, minor) == (0, 16)
    # Not an ImportError: ``explain`` takes one from the proxy for "no proxy installed" and
    # would leave the proxy's verdict out.
    assert not issubclass(H11InternalsError, ImportError)


def _fails_with(match: str) -> str:
    with pytest.raises(H11InternalsError) as info:
        check_h11_internals()
    msg = str(info.value)
    assert f"h11 {_H11_VERSION} differs" in msg
    assert f"pip install 'h11{H11_TESTED}'" in msg
    assert re.search(match, msg), msg
    return msg


class _MarkOffByOne(h11._receivebuffer.ReceiveBuffer):
    """An h11 whose line search mark means one byte less (``_chunked`` would then skip a
    byte of every chunk line it looks at: a bare LF there would go through)."""

    def maybe_extract_next_line(self) -> Any:
        out = super().maybe_extract_next_line()
        if out is None:
            self._next_line_search -= 1
        return out


class _RenamedMark(h11._receivebuffer.ReceiveBuffer):
    def __init__(self) -> None:
        super().__init__()
        del self._next_line_search


class _IntDiscard(h11._readers.ChunkedReader):
    """h11 0.14's ``_bytes_to_discard``: a count, not the bytes."""

    def __init__(self) -> None:
        super().__init__()
        self._bytes_to_discard = 0  # type: ignore[assignment]


def _pairs_headers(headers: Any, _parsed: bool = False) -> Any:
    return [(n, v) for n, v in headers]


@pytest.mark.parametrize(("module", "name", "value", "match"), [
    (h11._receivebuffer, "ReceiveBuffer", _MarkOffByOne, "_next_line_search is not the buffer"),
    (h11._receivebuffer, "ReceiveBuffer", _RenamedMark, "AttributeError: .*_next_line_search"),
    (h11._readers, "ChunkedReader", _IntDiscard, "_bytes_to_discard"),
    (h11._readers, "READERS", {}, "KeyError"),
    (h11._headers, "normalize_and_validate", _pairs_headers, "_full_items"),
    (h11._readers, "request_line_re", re.compile(rb"(?P<verb>\S+) (?P<target>\S+) HTTP/"
                                                  rb"(?P<http_version>\S+)"), "IndexError"),
    (h11._receivebuffer, "blank_line_regex", re.compile(rb"\r\n\r\n"), "blank_line_regex"),
])
def test_changed_internals_are_an_error_naming_the_version(
        monkeypatch: pytest.MonkeyPatch, module: Any, name: str, value: Any,
        match: str) -> None:
    monkeypatch.setattr(module, name, value)
    _fails_with(match)


def test_changed_event_fields_are_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """``_h11_reader`` builds h11's events field by field: a new field would be missing."""
    fields = dataclasses.fields(h11.Request)
    monkeypatch.setattr(dataclasses, "fields", lambda cls: (*fields, fields[0]))
    _fails_with("h11.Request's fields")


def test_importing_the_core_with_other_internals_names_the_h11_version() -> None:
    """The whole import: an h11 whose ReceiveBuffer keeps its line search mark under
    another name (the same algorithm) is refused when ``ingresslib.proxy`` is imported, with
    the version and the tested range; before, the import passed and every chunked request
    then raised AttributeError in the middle of the connection."""
    code = r'''
import h11._receivebuffer as rb

class ReceiveBuffer(rb.ReceiveBuffer):
    def __init__(self):
        super().__init__()
        self._line_mark = self.__dict__.pop("_next_line_search")

    def _extract(self, count):
        out = self._data[:count]
        del self._data[:count]
        self._line_mark = 0
        self._multiple_lines_search = 0
        return out

    def maybe_extract_next_line(self):
        i = self._data.find(b"\r\n", max(0, self._line_mark - 1))
        if i == -1:
            self._line_mark = len(self._data)
            return None
        return self._extract(i + 2)

rb.ReceiveBuffer = ReceiveBuffer
import ingresslib.proxy
'''
    env = dict(os.environ, PYTHONPATH=str(_ROOT))
    done = subprocess.run([sys.executable, "-c", code], cwd=_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("ingresslib.proxy._chunked.H11InternalsError: ingresslib.proxy "
                           "drives h11's own parser"), last
    assert f"h11 {_H11_VERSION} differs" in last and "_next_line_search" in last
    assert f"pip install 'h11{H11_TESTED}'" in last


def test_public_h11_api_cannot_see_a_chunk_line() -> None:
    """guard (why the core reads h11's internals): ``h11.Connection`` drops chunk
    extensions before anyone sees them, so the rules nginx applies to a chunk line (a bare
    CR refused on both sides; any control character refused in a request here) cannot be
    applied through the public API."""
    c = h11.Connection(h11.SERVER)
    c.receive_data(_HEAD + b"5;a\rb\r\nhello\r\n0\r\n\r\n")
    events = []
    while True:
        e = c.next_event()
        if e is h11.NEED_DATA or type(e) is h11.EndOfMessage:
            break
        events.append(e)
    assert [type(e) for e in events] == [h11.Request, h11.Data]  # the CR went unseen
    p = ProxyPair()
    assert status_of(p.send(_HEAD + b"5;a\rb\r\nhello\r\n0\r\n\r\n")) == 400


# 2. Long chunk extensions --------------------------------------------------------------------


def _send_in(p: ProxyPair, data: bytes, size: int) -> bytes:
    out = b""
    for i in range(0, len(data), size):
        out += p.send(data[i:i + size])
    return out


def _upstream_body(p: ProxyPair) -> bytes:
    assert len(p.upstreams) == 1
    (request, body), = p.upstreams[0].requests
    return body


@pytest.mark.parametrize("read", [8192, 1000, 200_000])
def test_long_request_chunk_extension_passes_in_any_reads(read: int) -> None:
    """nginx reads the line byte by byte and keeps none of it: 200 KB of extension pass
    (before: a 431 once the line, incomplete, outgrew the head limit, ~41 KiB; and even in
    one read past it, as the core hands h11 the body in 4 KiB slices)."""
    p = ProxyPair()
    p.send(_HEAD)
    body = b"5;name=" + b"v" * 200_000 + b"\r\nhello\r\n6;a=b\r\n world\r\n0\r\n\r\n"
    out = _send_in(p, body, read)
    assert status_of(out) == 200 and not p.closed
    assert _upstream_body(p) == b"hello world"
    assert b"vvvv" not in p.upstream_bytes  # extensions are never forwarded


def test_long_last_chunk_extension_passes() -> None:
    p = ProxyPair()
    p.send(_HEAD + b"3\r\nabc\r\n")
    out = _send_in(p, b"0;" + b"x" * 60_000 + b"\r\n\r\n", 4096)
    assert status_of(out) == 200 and _upstream_body(p) == b"abc"


def test_long_extension_keeps_a_cr_split_from_its_lf() -> None:
    """A CR last in a read, after the dropped bytes, is still half of the line's CRLF."""
    p = ProxyPair()
    p.send(_HEAD)
    assert _send_in(p, b"5;" + b"x" * 50_000 + b"\r", 8192) == b""
    out = p.send(b"\nhello\r\n0\r\n\r\n")
    assert status_of(out) == 200 and _upstream_body(p) == b"hello"


def test_long_whitespace_after_the_chunk_size_passes() -> None:
    """No ";", only spaces and tabs after the size: h11's OWS before the CRLF, nginx's
    extension after a space; dropped as it comes too."""
    p = ProxyPair()
    p.send(_HEAD)
    out = _send_in(p, b"5" + b" \t" * 30_000 + b"\r\nhello\r\n0\r\n\r\n", 4096)
    assert status_of(out) == 200 and _upstream_body(p) == b"hello"


def test_long_line_h11_refuses_is_still_refused() -> None:
    """guard: a line h11 refuses (more than 20 size digits; a byte after the size that is
    no ";", space, tab or CR) is refused, 400, however long (a space or a tab after the
    size starts the extension, as in nginx: tests/test_chunked_s22.py)."""
    for line in (b"5x" + b" " * 9000, b"0" * 25 + b"5;x" * 5000):
        p = ProxyPair()
        p.send(_HEAD)
        out = _send_in(p, line + b"\r\nhello\r\n0\r\n\r\n", 4096)
        assert status_of(out) == 400 and p.closed, line[:30]


@pytest.mark.parametrize("bad", [b"\x00", b"\x1b", b"\r", b"\n", b"\rx"])
def test_control_character_deep_in_a_long_request_extension_is_still_400(bad: bytes) -> None:
    """guard: every byte is checked before it is dropped (the request side refuses any
    control character in a chunk line)."""
    p = ProxyPair()
    p.send(_HEAD)
    out = _send_in(p, b"5;" + b"x" * 30_000 + bad + b"y" * 30_000 + b"\r\nhello\r\n0\r\n\r\n",
                   4096)
    assert status_of(out) == 400 and p.closed
    assert not p.upstreams or _upstream_body_or_none(p) is None


def _upstream_body_or_none(p: ProxyPair) -> bytes | None:
    reqs = p.upstreams[0].requests
    return reqs[0][1] if reqs else None


_RESP = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


def test_long_upstream_chunk_extension_passes_in_many_reads() -> None:
    """An upstream's 200 KB extension arriving in 4 KiB reads: the response goes through
    whole, the connection kept (before: cut once the incomplete line outgrew
    max_response_header_size, the client connection closed)."""
    p = ProxyPair(app=silent_app)
    p.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    out = upstream_sends(p, _RESP + b"5;" + b"y" * 200_000 + b"\r\nhello\r\n0\r\n\r\n", 4096)
    head, _, body = out.partition(b"\r\n\r\n")
    assert status_of(out) == 200 and dechunk(body) == (b"hello", True)
    assert not p.closed and b"yyyy" not in out


@pytest.mark.parametrize("bad", [b"\rx", b"\n"])
def test_bare_cr_or_lf_deep_in_a_long_upstream_extension_still_cuts(bad: bytes) -> None:
    """guard: nginx's "upstream sent invalid chunked response", wherever the byte is."""
    p = ProxyPair(app=silent_app)
    p.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    out = upstream_sends(
        p, _RESP + b"5;" + b"y" * 50_000 + bad + b"y" * 50_000 + b"\r\nhello\r\n0\r\n\r\n",
        4096)
    assert status_of(out) == 200 and p.closed
    assert dechunk(out.partition(b"\r\n\r\n")[2]) == (b"", False)


def test_reader_buffer_stays_bounded_under_a_long_extension() -> None:
    """The reader itself: 1 MB of extension in 4 KiB reads leaves at most a few KiB in
    h11's buffer, with a 16 KiB incomplete-event limit never reached."""
    for client, head in ((False, _HEAD), (True, _RESP)):
        r = _H11Reader(client, 16384)
        r.receive_data(head)
        assert type(r.next_event()) in (h11.Request, h11.Response)
        r.receive_data(b"5;")
        for _ in range(256):
            r.receive_data(b"e" * 4096)
            assert r.next_event() is h11.NEED_DATA
            assert len(r._buf._data) <= 4096 + 4096
        r.receive_data(b"\r\nhello\r\n0\r\n\r\n")
        ev = r.next_event()
        assert type(ev) is h11.Data and ev.data == b"hello"
        assert type(r.next_event()) is h11.EndOfMessage


# A chunked body with extensions of any length (runs of one byte; a few control bytes among
# them), read in one piece or cut anywhere: the verdict does not depend on the reads.
_ext_byte = st.sampled_from([b"a", b"a", b"a", b"=", b";", b" ", b"\t", b'"', b"a", b"a",
                            b"\x00", b"\r", b"\n"])
_run = st.tuples(_ext_byte, st.one_of(st.integers(1, 40), st.integers(8500, 12000)))
_chunk = st.tuples(st.integers(1, 40), st.sampled_from([True, True, True, False]),
                   st.lists(_run, max_size=3))


def _body(chunks: list[tuple[int, bool, list[tuple[bytes, int]]]]) -> tuple[bytes, bytes]:
    out, data = b"", b""
    for i, (size, semi, runs) in enumerate(chunks):
        payload = bytes([97 + i % 26]) * size
        ext = (b";" if semi else b"") + b"".join(c * n for c, n in runs)
        out += b"%x%s\r\n%s\r\n" % (size, ext, payload)
        data += payload
    return out + b"0\r\n\r\n", data


def _verdict(client: bool, head: bytes, body: bytes, cuts: list[int]) -> tuple[str, bytes]:
    r = _H11Reader(client, 8192)
    r.receive_data(head)
    r.next_event()
    got = b""
    edges = [0, *sorted(set(cuts)), len(body)]
    for a, b in zip(edges, edges[1:]):
        if b > a:
            r.receive_data(body[a:b])
        while True:
            try:
                ev = r.next_event()
            except h11.RemoteProtocolError:
                return "error", b""
            if type(ev) is h11.Data:
                got += ev.data
            elif type(ev) is h11.EndOfMessage:
                return "end", got
            else:
                break
    return "incomplete", got


@settings(max_examples=examples(0.5), deadline=None)
@given(chunks=st.lists(_chunk, min_size=1, max_size=4), client=st.booleans(),
       read=st.integers(500, 9000), cuts=st.lists(st.integers(0, 150_000), max_size=6))
def test_chunk_line_verdict_does_not_depend_on_the_reads(
        chunks: list[tuple[int, bool, list[tuple[bytes, int]]]], client: bool, read: int,
        cuts: list[int]) -> None:
    """Reads of ``read`` bytes (and a few more cuts) against one read, with an
    8 KiB incomplete-event limit."""
    body, data = _body(chunks)
    head = _RESP if client else _HEAD
    cuts = [c for c in [*range(read, len(body), read), *cuts] if c < len(body)]
    whole = _verdict(client, head, body, [])
    assert _verdict(client, head, body, cuts) == whole
    if whole[0] == "end":
        assert whole[1] == data
