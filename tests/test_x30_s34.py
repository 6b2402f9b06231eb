"""Session 34, x30: a second engineer's review of round 3 (x27's vouched hosts, x28's Go floats).

No wrong behaviour found; these tests keep what the review checked:

* ``_go_floats`` against a port of Go's own syntax rules (src/strconv/atof.go ``special``,
  ``readFloat``; atoi.go ``underscoreOK``), not against a table of cases: an independent oracle
  over pieces where the two could part (signs, "0x", "_", ".", "e"/"p", inf/nan spellings,
  Unicode digits). 200,000 drawn strings agreed during the review.
* pflag's ``Float64Slice.Set`` splits with ``strings.Split(val, ",")`` and hands each part to
  ``strconv.ParseFloat`` untrimmed: a space or an empty part is a syntax error there.
* The pure matcher's ``_vouched`` cache from several threads at once, emptied often: every
  answer is the uncached one and no refused host is ever kept. (A race is caught by chance:
  an eviction of the oldest key instead of ``clear`` failed it in 3 runs of 5, a KeyError
  when two threads evict the same key; the emptying cannot race so.)
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingresslib import _match_py
from ingresslib._cli import _go_floats, build_parser
from ingresslib._errors import BadRequestError

from test_x27_s34 import _PIECES, GROUPS

# --- an oracle: Go's strconv.ParseFloat syntax, ported from atof.go / atoi.go ------------------


def _lower(c: int) -> int:
    return c | 0x20  # atof.go lower(): 'X' -> 'x' (and non-letters to other non-letters)


def _common_prefix_len_ignore_case(s: bytes, prefix: bytes) -> int:
    n = min(len(prefix), len(s))
    for i in range(n):
        if (s[i] + 32 if 65 <= s[i] <= 90 else s[i]) != prefix[i]:
            return i
    return n


def _special(s: bytes) -> tuple[str, int] | None:
    """atof.go special(): ("inf" | "nan", characters read), or None."""
    if not s:
        return None
    if s[0] in b"nN":
        return ("nan", 3) if _common_prefix_len_ignore_case(s, b"nan") == 3 else None
    nsign = 1 if s[0] in b"+-" else 0  # "case '+', '-': ... fallthrough" to 'i', 'I' only
    if not nsign and s[0] not in b"iI":
        return None
    n = _common_prefix_len_ignore_case(s[nsign:], b"infinity")
    if 3 < n < 8:
        n = 3  # "if we don't have "infinity", only consume "inf""
    return ("inf", nsign + n) if n in (3, 8) else None


def _underscore_ok(s: bytes) -> bool:
    """atoi.go underscoreOK(): "_" only between digits or after a base prefix."""
    saw, i = "^", 0
    if s[:1] in (b"+", b"-"):
        s = s[1:]
    hexadecimal = False
    if len(s) >= 2 and s[0] == 48 and _lower(s[1]) in b"box":
        i, saw, hexadecimal = 2, "0", _lower(s[1]) == ord("x")
    for c in s[i:]:
        if 48 <= c <= 57 or hexadecimal and 97 <= _lower(c) <= 102:
            saw = "0"
        elif c == 95:
            if saw != "0":
                return False
            saw = "_"
        else:
            if saw == "_":
                return False
            saw = "!"
    return saw != "_"


def _read_float(s: bytes) -> tuple[str, int] | None:
    """atof.go readFloat()'s syntax: ("dec" | "hex", characters read), or None."""
    i, underscores = 0, False
    if s[:1] in (b"+", b"-"):
        i += 1
    kind, exp_char = "dec", ord("e")
    if i + 2 < len(s) and s[i] == 48 and _lower(s[i + 1]) == ord("x"):
        kind, exp_char, i = "hex", ord("p"), i + 2
    sawdot = sawdigits = False
    while i < len(s):
        c = s[i]
        if c == 95:
            underscores = True
        elif c == 46:
            if sawdot:
                break
            sawdot = True
        elif 48 <= c <= 57 or kind == "hex" and 97 <= _lower(c) <= 102:
            sawdigits = True
        else:
            break
        i += 1
    if not sawdigits:
        return None
    if i < len(s) and _lower(s[i]) == exp_char:
        i += 1
        if i < len(s) and s[i] in b"+-":
            i += 1
        if i >= len(s) or not 48 <= s[i] <= 57:
            return None
        while i < len(s) and (48 <= s[i] <= 57 or s[i] == 95):
            underscores |= s[i] == 95
            i += 1
    elif kind == "hex":
        return None  # "Must have exponent."
    if underscores and not _underscore_ok(s[:i]):
        return None
    return kind, i


def go_parse_float_kind(text: str) -> str | None:
    """What strconv.ParseFloat(text, 64) reads: "dec", "hex", "inf", "nan", or None
    (ErrSyntax: ParseFloat wants the whole string read). Go reads bytes: a non-ASCII
    character is never a digit."""
    s = text.encode("utf-8", "surrogatepass")
    for read in (_special, _read_float):  # atof64: special first, then readFloat
        found = read(s)
        if found is not None:
            return found[0] if found[1] == len(s) else None
    return None


def ours(text: str) -> str:
    try:
        values = _go_floats(text)
    except argparse.ArgumentTypeError as exc:
        message = str(exc)
        return ("syntax" if message.startswith("invalid number") else
                "range" if "out of range" in message else
                "nan" if "must be a number" in message else message)
    (value,) = values
    return "inf" if value in (float("inf"), float("-inf")) else "number"


_NUMBER_PIECES = ["0", "1", "9", "a", "f", "A", "F", "x", "X", "p", "P", "e", "E", ".", "_", "+",
                  "-", "i", "n", "inf", "INF", "infinity", "nan", "NaN", "0x", "0X", "ty", "ni",
                  " ", "\u0661", "\uff11", "b", "o", "g"]


@settings(max_examples=3000)
@given(text=st.lists(st.sampled_from(_NUMBER_PIECES), max_size=8).map("".join))
def test_bucket_numbers_read_as_gos_parsefloat_syntax(text: str) -> None:
    go = go_parse_float_kind(text)
    got = ours(text)
    if go is None:
        assert got == "syntax", (text, got)
    elif go == "nan":
        assert got == "nan", (text, got)  # README: a NaN bound is a usage error here
    elif go == "inf":
        assert got == "inf", (text, got)
    else:
        assert got in ("number", "range"), (text, got)  # the value: float / float.fromhex


@pytest.mark.parametrize(("text", "expected"), [
    ("0x1_ep-1", "hex"), ("0x1e2", None), ("1_23.50_0_0e+1_2", "dec"), ("123.5e+12_", None),
    ("+INF", "inf"), ("-Infinity", "inf"), ("+nan", None), ("infin", None), ("0x", None),
])
def test_the_oracle_reads_gos_own_cases(text: str, expected: str | None) -> None:
    # atof_test.go's table and FuzzParseFloat's seeds: the port reads them as Go does.
    assert go_parse_float_kind(text) == expected


# --- pflag's Float64Slice: strings.Split, each part as it is -------------------------------------


def _time_buckets(*args: str) -> list[float]:
    return list(build_parser().parse_args(["serve", "-f", "m.yaml", *args]).time_buckets)


@pytest.mark.parametrize(("value", "part"), [
    ("1, 2", "' 2'"), (" 1", "' 1'"), ("1 ", "'1 '"), ("1,,2", "''"), ("1,", "''"),
    ("", "''"),  # --time-buckets= : strings.Split("", ",") is [""], ParseFloat("") an error
])
def test_a_space_or_an_empty_part_is_refused_by_name(value: str, part: str) -> None:
    # The parser makes a usage error of it (exit 2: tests/test_x28_s34.py).
    with pytest.raises(argparse.ArgumentTypeError, match=f"^invalid number {part} in "):
        _go_floats(value)


def test_a_bucket_option_given_twice_adds_to_the_first() -> None:
    # float64SliceValue.Set: "if !s.changed { *s.value = out } else { append }".
    assert _time_buckets("--time-buckets=1,2", "--time-buckets=0x1p2") == [1.0, 2.0, 4.0]


# --- the pure matcher's vouched hosts under threads ----------------------------------------------


@pytest.fixture
def busy_switching() -> Iterator[None]:
    # Threads switch every microsecond: the check-then-store and the emptying interleave.
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def _answer(matcher: _match_py.Matcher, host: str) -> object:
    try:
        return matcher.lookup(host, "/")
    except BadRequestError:
        return "400"


def test_vouched_hosts_from_several_threads_give_the_uncached_answer(
        monkeypatch: pytest.MonkeyPatch, busy_switching: None) -> None:
    monkeypatch.setattr(_match_py, "_VOUCHED_MAX", 8)  # emptied every few new hosts
    rng = random.Random(30)
    hosts = ["".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 4))) for _ in range(300)]
    # Each answer from a fresh matcher: nothing vouched yet.
    expected = {h: _answer(_match_py.Matcher(GROUPS, "default"), h) for h in hosts}
    assert "400" in expected.values() and "*.foo.com" in expected.values()
    shared = _match_py.Matcher(GROUPS, "default")
    wrong: list[tuple[str, object]] = []

    def work(seed: int) -> None:
        r = random.Random(seed)
        for _ in range(50000):
            host = r.choice(hosts)
            try:
                got = _answer(shared, host)
            except Exception as exc:  # a thread's exception would not fail the test by itself
                got = exc
            if got != expected[host]:
                wrong.append((host, got))

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert wrong == []
    assert not [h for h in shared._vouched if expected[h] == "400"]
    assert len(shared._vouched) <= 8 + len(threads)  # a store racing an emptying: one each
