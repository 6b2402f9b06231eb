"""Session 32: ``$cookie_<name>`` in ``log-format-upstream`` reads the cookie exactly as the
canary cookie and ``upstream-hash-by``'s ``$cookie_*`` do (one port of nginx's
``ngx_http_parse_multi_header_lines``: ``_balance_request.cookie_value(fold=True)``). Before,
``_logformat`` had a hand-written twin of that loop which, for a pair ``name`` without ``=``,
restarted its skip from the pair's start instead of after the character nginx consumed
("if (start == end || *start++ != '=') goto skip;"): ``Cookie: canary; canary=always`` logged
``always`` where nginx logs nothing.

Tests named ``test_defect_*`` fail on the tree before this session; ``test_guard_*`` held.
"""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingresslib._accesslog import access_fields
from ingresslib._balance_request import cookie_value
from ingresslib import _logformat
from ingresslib._logformat import compile_format

from _budget import examples
from _records import rec

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 11, 24, 13, 25, 42, tzinfo=UTC).timestamp()


def _logged(name: str, lines: list[bytes]) -> str:
    r = rec(request_headers=[(b"Cookie", b"cookie", v) for v in lines])
    return compile_format(f"[$cookie_{name}]", "default").render(
        r, access_fields(r, NOW, UTC), NOW)


@pytest.mark.parametrize("lines, expected", [
    # guards: the character after the name's spaces is consumed; a ";" further on still ends
    # the pair.
    ([b"canary x; canary=always"], "always"),
    # "canary" without "=": nginx consumed the ";" and its skip eats the next pair.
    ([b"canary; canary=always"], "-"),
    # ... the same with a "," (skip stops at "," too).
    ([b"canary, canary=always"], "-"),
    # each Cookie line on its own.
    ([b"canary", b"canary=always"], "always"),
])
def test_defect_a_pair_without_equals_consumes_what_follows(lines: list[bytes],
                                                            expected: str) -> None:
    assert _logged("canary", lines) == f"[{expected}]"


def _nginx_cookie(lines: list[bytes], name: bytes) -> bytes | None:
    """ngx_http_parse_multi_header_lines (nginx src/http/ngx_http_parse.c) line by line, the
    oracle: written from the C loop, not from either port."""
    for line in lines:
        start, end = 0, len(line)
        while start < end:
            if line[start:start + len(name)].lower() == name:
                start += len(name)
                while start < end and line[start] == 0x20:
                    start += 1
                consumed = line[start] if start < end else None
                start += 1
                if consumed == 0x3D:   # "="
                    while start < end and line[start] == 0x20:
                        start += 1
                    stop = line.find(b";", start)
                    return line[start:end if stop < 0 else stop]
                start = min(start, end)
            while start < end:   # skip:
                ch = line[start]
                start += 1
                if ch in (0x3B, 0x2C):
                    break
            while start < end and line[start] == 0x20:
                start += 1
    return None


@given(st.lists(st.text("cCaA=;, x\t", max_size=20), max_size=3),
       st.sampled_from(["c", "ca", "a"]))
@settings(max_examples=examples(0.5), deadline=None)
def test_defect_log_cookie_is_nginx_cookie_variable(lines: list[str], name: str) -> None:
    # One nginx $cookie_NAME: what the access log writes is what nginx's loop reads, and what
    # the canary cookie and upstream-hash-by read from the same Cookie lines.
    raw = [v.encode("latin-1") for v in lines]
    want = _nginx_cookie(raw, name.encode())
    expected = None if want is None else want.decode("latin-1")
    assert cookie_value([(b"cookie", v) for v in raw], name, True) == expected
    r = rec(request_headers=[(b"Cookie", b"cookie", v) for v in raw])
    assert _logformat._cookie_value(r, name) == expected
    rendered = compile_format(f"[$cookie_{name}]", "none").render(
        r, access_fields(r, NOW, UTC), NOW)
    assert rendered == f"[{expected or ''}]"
