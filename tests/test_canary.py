"""SEMANTICS §7: canary annotations, the explicit choice, the smooth split, linear regexes."""

from __future__ import annotations

import random
import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

import h11

from ingresslib._canary import (
    CanaryConfig,
    compile_explicit,
    LinearRegex,
    RegexError,
    WeightSplit,
    explicit_choice,
    parse_canary,
)

# Every test runs once per counter implementation (compiled _pick, pure _pick_py).
from _counters import counters  # noqa: F401
from _router_helpers import P


def cfg(**ann: str) -> CanaryConfig:
    c, warnings = parse_canary({P + k.replace("_", "-"): v for k, v in ann.items()})
    assert warnings == []
    return c


# --- parsing --------------------------------------------------------------------------------------


def test_defaults() -> None:
    c = cfg()
    assert (c.header, c.header_value, c.header_pattern, c.cookie, c.weight, c.weight_total) == (
        None, None, None, None, 0, 100)


def test_values_parsed() -> None:
    c = cfg(canary_by_header="X-Canary", canary_by_header_value="yes",
            canary_by_cookie="beta", canary_weight="3", canary_weight_total="7")
    assert c.header == "x-canary" and c.header_bytes == b"x-canary"
    assert (c.header_value, c.cookie, c.weight, c.weight_total) == ("yes", "beta", 3, 7)
    # strconv.Atoi takes a sign.
    assert cfg(canary_weight="+3", canary_weight_total="+7").weight == 3


@pytest.mark.parametrize(
    ("ann", "bad", "check"),
    [
        ({"canary-weight": "ten"}, "canary-weight", lambda c: c.weight == 0),
        ({"canary-weight": "-1"}, "canary-weight", lambda c: c.weight == 0),
        ({"canary-weight": "150"}, "canary-weight", lambda c: c.weight == 100),
        ({"canary-weight-total": "0"}, "canary-weight-total", lambda c: c.weight_total == 100),
        ({"canary-weight-total": "x"}, "canary-weight-total", lambda c: c.weight_total == 100),
        # ingress-nginx canary/main.go reads both with parser.GetIntAnnotation (strconv.Atoi of
        # the raw value, as _goparse.parse_int): no blanks, no "1_0", no non-ASCII digits.
        # Before: Python's int(value.strip()) read these as 10 / 20.
        ({"canary-weight": " 10"}, "canary-weight", lambda c: c.weight == 0),
        ({"canary-weight": "1_0"}, "canary-weight", lambda c: c.weight == 0),
        ({"canary-weight": "\u0661\u0660"}, "canary-weight", lambda c: c.weight == 0),
        ({"canary-weight-total": "2_0"}, "canary-weight-total",
         lambda c: c.weight_total == 100),
        ({"canary-weight-total": "20 "}, "canary-weight-total",
         lambda c: c.weight_total == 100),
        ({"canary-by-header": "X Canary"}, "canary-by-header", lambda c: c.header is None),
        # A header name is an ASCII token: no request can carry this one. Before: "\u20ac"
        # raised UnicodeEncodeError out of parse_canary (and so out of the Router's build, for
        # every Ingress); "\xe4" and a control character were accepted.
        ({"canary-by-header": "X-Can\u20acry"}, "canary-by-header", lambda c: c.header is None),
        ({"canary-by-header": "X-C\xe4nary"}, "canary-by-header", lambda c: c.header is None),
        ({"canary-by-header": "X-C\x01"}, "canary-by-header", lambda c: c.header is None),
        ({"canary-by-header-value": "v"}, "canary-by-header-value",
         lambda c: c.header_value is None),
        ({"canary-by-header": "X-C", "canary-by-header-pattern": "(a"},
         "canary-by-header-pattern", lambda c: c.header_pattern is None),
        ({"canary-by-header": "X-C", "canary-by-header-pattern": "(?=a)"},
         "canary-by-header-pattern", lambda c: c.header_pattern is None),
        ({"canary-by-header": "X-C", "canary-by-header-value": "v",
          "canary-by-header-pattern": "v.*"}, "canary-by-header-pattern",
         lambda c: c.header_value == "v" and c.header_pattern is None),
        ({"canary-by-cookie": "a;b"}, "canary-by-cookie", lambda c: c.cookie is None),
    ],
)
def test_invalid_values_warn_and_fall_back(ann: dict[str, str], bad: str, check: object) -> None:
    c, warnings = parse_canary({P + k: v for k, v in ann.items()})
    assert [k for k, _ in warnings] == [P + bad]
    assert check(c)  # type: ignore[operator]


# --- the explicit choice (header, then cookie) -----------------------------------------------------

H = cfg(canary_by_header="X-Canary")
HV = cfg(canary_by_header="X-Canary", canary_by_header_value="beta")
HP = cfg(canary_by_header="X-Canary", canary_by_header_pattern="^(beta|gamma)-[0-9]+")
CK = cfg(canary_by_cookie="canary")
BOTH = cfg(canary_by_header="X-Canary", canary_by_cookie="canary")


@pytest.mark.parametrize(
    ("config", "headers", "expected"),
    [
        (H, {"X-Canary": "always"}, True),
        (H, {"x-canary": "never"}, False),
        (H, {"X-CANARY": "always"}, True),           # names case-insensitive
        (H, {"X_Canary": "always"}, None),           # "_" names are not "-" names (nginx drops them)
        (cfg(canary_by_header="X_Canary"), {"x-canary": "always"}, True),  # as $http_x_canary
        (H, {"X-Canary": "Always"}, None),           # values case-sensitive
        (H, {"X-Canary": "yes"}, None),              # anything else falls through
        (H, {}, None),
        (HV, {"X-Canary": "beta"}, True),
        (HV, {"X-Canary": "BETA"}, None),
        (HV, {"X-Canary": "always"}, None),          # with a value, "always" means nothing
        (HV, {"X-Canary": "never"}, None),
        (HP, {"X-Canary": "beta-12"}, True),
        (HP, {"X-Canary": "x beta-12"}, None),       # ^ anchors
        (HP, {"X-Canary": "delta-1"}, None),
        (CK, [(b"cookie", b"a=1; canary=always")], True),
        (CK, [(b"cookie", b"canary=never")], False),
        (CK, [(b"cookie", b"canary=yes")], None),
        # nginx's $cookie_* (ngx_http_parse_multi_header_lines): "if (ngx_strncasecmp(start,
        # name->data, name->len) != 0) goto skip;" - the name matches case-insensitively.
        (CK, [(b"cookie", b"Canary=always")], True),
        (CK, [(b"cookie", b"CANARY=never; canary=always")], False),  # the first one counts
        # A repeated header reads as nginx's $http_* (>= 1.23): every line joined by ", ".
        (H, [(b"x-canary", b"always"), (b"X-Canary", b"always")], None),
        (H, [(b"x-canary", b"never"), (b"x-canary", b"never")], None),
        (cfg(canary_by_header="X-Canary", canary_by_header_value="a, b"),
         [(b"x-canary", b"a"), (b"x-canary", b"b")], True),
        (BOTH, [(b"x-canary", b"never"), (b"cookie", b"canary=always")], False),  # header first
        (BOTH, [(b"x-canary", b"other"), (b"cookie", b"canary=always")], True),   # fall through
    ],
)
def test_explicit_choice(config: CanaryConfig, headers: object, expected: bool | None) -> None:
    assert explicit_choice(config, headers) is expected  # type: ignore[arg-type]
    # The specialised form answers the same, for plain headers and for h11's header list.
    fast = compile_explicit(config)
    assert fast(headers) is expected  # type: ignore[arg-type]
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers)  # type: ignore[call-overload]
    h11_headers = h11.Request(method="GET", target="/", headers=[("Host", "x")] + pairs).headers
    assert fast(h11_headers) is expected
    assert explicit_choice(config, h11_headers) is expected


@given(st.lists(st.tuples(st.sampled_from(["X-Canary", "x-canary", "Cookie", "Other"]),
                          st.sampled_from(["always", "never", "beta", "canary=always",
                                           "canary=never", "a=b; canary=always", ""])),
                max_size=4),
       st.sampled_from([H, HV, CK, BOTH, cfg(canary_by_header="X-Canary",
                                             canary_by_header_value="always")]))
def test_compiled_explicit_equals_reference(pairs: list[tuple[str, str]],
                                            config: CanaryConfig) -> None:
    h11_headers = h11.Request(method="GET", target="/", headers=[("Host", "x")] + pairs).headers
    assert compile_explicit(config)(h11_headers) is explicit_choice(config, pairs)


def test_unanchored_pattern() -> None:
    c = cfg(canary_by_header="X-Canary", canary_by_header_pattern="bet+a")
    assert explicit_choice(c, {"X-Canary": "alpha bettta omega"}) is True


# --- the smooth split --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("weight", "total", "requests", "canary"),
    [(10, 100, 1000, 100), (1, 3, 30, 10), (33, 100, 100, 33), (0, 100, 500, 0),
     (100, 100, 50, 50), (1, 1000, 999, 0), (1, 1000, 1000, 1), (7, 7, 3, 3), (250, 1000, 40, 10)],
)
def test_split_exact_counts(weight: int, total: int, requests: int, canary: int) -> None:
    s = WeightSplit(weight, total)
    assert sum(s.take() for _ in range(requests)) == canary


def test_split_interleaves() -> None:
    s = WeightSplit(1, 4)
    assert [s.take() for _ in range(8)] == [False, False, False, True] * 2
    s = WeightSplit(2, 5)
    assert "".join("C" if s.take() else "m" for _ in range(10)) == "mmCmC" * 2


@given(st.integers(1, 200), st.data())
def test_split_within_one_request_over_every_window(total: int, data: st.DataObject) -> None:
    weight = data.draw(st.integers(0, total))
    s = WeightSplit(weight, total)
    seq = [s.take() for _ in range(2 * total + 5)]
    prefix = [0]
    for x in seq:
        prefix.append(prefix[-1] + x)
    for n in {1, 2, 3, total // 2 + 1, total}:
        for a in range(0, len(seq) - n + 1):
            got = prefix[a + n] - prefix[a]
            assert abs(got - n * weight / total) < 1
        if n == total:
            assert {prefix[a + n] - prefix[a] for a in range(len(seq) - n + 1)} == {weight}


def test_split_random_when_asked_is_seeded() -> None:
    a = WeightSplit(30, 100, random.Random(42))
    b = WeightSplit(30, 100, random.Random(42))
    seq_a = [a.take() for _ in range(1000)]
    assert seq_a == [b.take() for _ in range(1000)]
    # A draw, not an exact split: Random(42) gives 286 of 1000 at 30 % (randrange is stable
    # across CPython versions for int seeds).
    assert sum(seq_a) == 286
    assert a.random and not WeightSplit(1, 2).random


# --- linear-time regexes -------------------------------------------------------------------------------

PATTERNS = ["a", "^a$", "a|b", "(ab)+c", "^$", "x*", "[a-z]+\\d{2,3}$", "^(a+)+$", "colou?r",
            "\\Aabc\\Z", "[^0-9]+", "a{3}", "(?:ab|cd){2,}e", "a.c", "^.*$", "[\\w-]+@x", "$a",
            "a^", "(a|)b", "[]a]", "[a-]", "\\.", "a{2,}?", "(?P<x>q)z", "\\x41", "[\\d.]+",
            "b{0}", "(a|ab)(c|bcd)(d*)", "[^\\s]", "\\S+\\s\\S+", "^(a|b)*?c"]


@pytest.mark.parametrize("pattern", PATTERNS)
@given(text=st.text(alphabet="abcdq-.x @A019 ", max_size=12))
def test_linear_regex_agrees_with_re(pattern: str, text: str) -> None:
    assert LinearRegex(pattern).search(text) == bool(re.search(pattern, text))


@given(st.text(alphabet="ab|()*+?", min_size=1, max_size=8), st.text(alphabet="ab", max_size=10))
def test_linear_regex_differential_fuzz(pattern: str, text: str) -> None:
    try:
        ref = re.compile(pattern)
    except re.error:
        return  # not a regex at all
    try:
        mine = LinearRegex(pattern)
    except RegexError:
        return  # refused (multiple repeat etc.): reported at load time, never wrong
    assert mine.search(text) == bool(ref.search(text))


@pytest.mark.parametrize("pattern", ["(?=a)", "(?!a)", "(?<=a)b", "\\1", "(a)\\1", "\\b",
                                     "(?i)a", "a++", "a**", "(", "a)", "[a", "*a", "[z-a]",
                                     "a{2}{3}", "(?>a)", "[[:alpha:]]", "\\"])
def test_linear_regex_refuses(pattern: str) -> None:
    with pytest.raises(RegexError):
        LinearRegex(pattern)


def test_linear_regex_is_linear_on_catastrophic_patterns() -> None:
    # Each takes exponential time in Python's re (never run it here); ours is O(n * m).
    for pattern, text in [("^(a+)+$", "a" * 5000 + "!"), ("(a|a)*b", "a" * 5000),
                          ("(x+x+)+y", "x" * 5000), ("^(a|aa)+$", "a" * 4999 + "b")]:
        r = LinearRegex(pattern)
        start = time.perf_counter()
        assert r.search(text) is False
        assert time.perf_counter() - start < 2.0


def test_linear_regex_size_bounded() -> None:
    with pytest.raises(RegexError):
        LinearRegex("(((a{1000}){1000}){1000})")
    with pytest.raises(RegexError):
        LinearRegex("a{1001}")
