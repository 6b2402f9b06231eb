"""Review of the balancers and the canary logic against ingress-nginx's Lua balancer code
(session 12). Each test here failed on the code before its fix.

ingress-nginx reads the canary cookie as an nginx variable: ``rootfs/etc/nginx/lua/balancer.lua``
(kubernetes/ingress-nginx), ``route_to_alternative_balancer``::

    local target_cookie = traffic_shaping_policy.cookie
    local cookie = ngx.var["cookie_" .. target_cookie]
    if cookie then
      if cookie == "always" then return true
      elseif cookie == "never" then return false
      end
    end

and ``util.generate_var_value`` reads ``$cookie_NAME`` in ``upstream-hash-by`` the same way
(``ngx.var[var_name]``). nginx answers ``$cookie_NAME`` with ``ngx_http_parse_multi_header_lines``
(nginx/nginx ``src/http/ngx_http_parse.c``), per ``Cookie`` line::

    if (ngx_strncasecmp(start, name->data, name->len) != 0) { goto skip; }
    for (start += name->len; start < end && *start == ' '; start++) { }
    ...
    if (start == end || *start++ != '=') { goto skip; }
    while (start < end && *start == ' ') { start++; }
    for (last = start; last < end && *last != ';'; last++) { }
    value->len = last - start;  value->data = start;  return h;
  skip:
    while (start < end) { ch = *start++; if (ch == ';' || ch == ',') { break; } }
    while (start < end && *start == ' ') { start++; }

so "," separates pairs while skipping, the value runs to ";" untrimmed, only spaces (not tabs)
are skipped, and a name matched without "=" has consumed the character after it. The expected
values below are what that loop returns.
"""

from __future__ import annotations

import re

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingresslib._balance import KeyTemplate, RequestContext, cookie_value
from ingresslib._canary import (
    CanaryConfig,
    LinearRegex,
    compile_explicit,
    explicit_choice,
    parse_canary,
)
from ingresslib._router import Router

# Every test runs once per counter implementation (compiled _pick, pure _pick_py).
from _counters import counters  # noqa: F401
from _router_helpers import P, canary, ingress, resources, simple_backend
from _budget import examples


def _h11(*cookie_lines: str) -> h11.Request:
    return h11.Request(method="GET", target="/",
                       headers=[("Host", "a.test")] + [("Cookie", c) for c in cookie_lines])


def _cfg() -> CanaryConfig:
    c, warnings = parse_canary({P + "canary-by-cookie": "canary"})
    assert warnings == []
    return c


# (Cookie lines, nginx's $cookie_canary) from the loop quoted above.
NGINX_COOKIE_CASES = [
    # skip stops at "," as well as ";": the pair after a comma is found.
    (("theme=dark, canary=always",), "always"),
    (("theme=dark,canary=never",), "never"),
    # the value runs to ";" and keeps its trailing blank.
    (("canary=always ; x=1",), "always "),
    # after ";" only spaces are skipped: a tab starts the next "name".
    (("a=1;\tcanary=always",), None),
    # "canary" without "=" consumed the ";" after it; the skip then eats the next pair.
    (("canary; canary=always",), None),
    # ... but each Cookie line is parsed on its own.
    (("canary", "canary=always"), "always"),
    # unchanged cases (regression guards).
    (("canary = always",), "always"),
    (("canary=always,x=1",), "always,x=1"),
    (("CANARY=never; canary=always",), "never"),
    (("canaryx=1; canary=always",), "always"),
]


@pytest.mark.parametrize(("lines", "expected"), NGINX_COOKIE_CASES)
def test_folded_cookie_value_is_nginx_cookie_variable(lines: tuple[str, ...],
                                                       expected: str | None) -> None:
    raw = [(b"cookie", line.encode("latin-1")) for line in lines]
    assert cookie_value(raw, "canary", True) == expected
    assert cookie_value(_h11(*lines).headers, "canary", True) == expected
    assert cookie_value([("Cookie", line) for line in lines], "Canary", True) == expected


def _choice(value: str | None) -> bool | None:
    return {"always": True, "never": False}.get(value or "")


@pytest.mark.parametrize(("lines", "expected"), NGINX_COOKIE_CASES)
def test_canary_cookie_reads_nginx_cookie_variable(lines: tuple[str, ...],
                                                    expected: str | None) -> None:
    # route_to_alternative_balancer: "always" -> canary, "never" -> main, else fall through.
    want = _choice(expected)
    c = _cfg()
    raw = [(b"cookie", line.encode("latin-1")) for line in lines]
    assert explicit_choice(c, raw) is want
    assert compile_explicit(c)(raw) is want
    assert compile_explicit(c)(_h11(*lines).headers) is want


def test_canary_cookie_after_comma_routes_to_canary() -> None:
    # Through the Router: weight 0, so only the cookie can send a request to the canary.
    objs: list[object] = [ingress("web", [("a.test", "/app", "Prefix", "main", 80)])]
    objs += simple_backend("main", ["10.0.0.1"])
    objs.append(canary("web-canary", "a.test", "/app", "beta", 80,
                       {P + "canary-by-cookie": "canary"}))
    objs += simple_backend("beta", ["10.0.1.1"])
    r = Router(resources(*objs))
    for lines, expected in NGINX_COOKIE_CASES:
        d = r.route("GET", "a.test", "/app", _h11(*lines).headers)
        assert d is not None
        assert d.canary is (expected == "always"), lines
        d = r.route("GET", "a.test", "/app", [("cookie", line) for line in lines])
        assert d is not None and d.canary is (expected == "always"), lines


def test_hash_key_cookie_variable_reads_nginx_cookie_variable() -> None:
    # util.generate_var_value: "table.insert(t, ngx.var[var_name])" - the same variable.
    t = KeyTemplate("$cookie_canary")
    for lines, expected in NGINX_COOKIE_CASES:
        raw = [(b"cookie", line.encode("latin-1")) for line in lines]
        assert t.raw("GET", "a.test", "/", None, raw, None) == (expected or ""), lines


def _nginx_reference(line: str, name: str) -> str | None:
    """The loop of ngx_http_parse_multi_header_lines quoted at the top, transcribed statement
    by statement (one line, ``value != NULL``), as the reference for the implementation."""
    def low(c: str) -> str:  # ngx_strncasecmp folds A-Z only
        return chr(ord(c) | 0x20) if "A" <= c <= "Z" else c

    n, end, start = len(name), len(line), 0
    while start < end:
        if "".join(map(low, line[start:start + n])) == "".join(map(low, name)):
            start += n
            while start < end and line[start] == " ":
                start += 1
            if start < end:
                ch = line[start]
                start += 1
                if ch == "=":
                    while start < end and line[start] == " ":
                        start += 1
                    last = start
                    while last < end and line[last] != ";":
                        last += 1
                    return line[start:last]
        while start < end:  # skip:
            ch = line[start]
            start += 1
            if ch == ";" or ch == ",":
                break
        while start < end and line[start] == " ":
            start += 1
    return None


_COOKIE_TEXT = st.lists(st.sampled_from(["canary", "Canary", "can", "=", ";", ",", " ", "\t",
                                         "always", "x", "É"]), max_size=14).map("".join)


@settings(max_examples=examples(), deadline=None)
@given(st.lists(_COOKIE_TEXT, min_size=1, max_size=3))
def test_folded_cookie_value_equals_the_nginx_loop(lines: list[str]) -> None:
    expected = None
    for line in lines:  # "for (h = headers; h; h = h->next)": the first line that has it
        expected = _nginx_reference(line, "canary")
        if expected is not None:
            break
    raw = [(b"cookie", line.encode("latin-1")) for line in lines]
    assert cookie_value(raw, "canary", True) == expected
    assert cookie_value(raw, "CANARY", True) == expected


# nginx's $arg_NAME is ngx_http_arg (nginx/nginx src/http/ngx_http_parse.c):
#     p = ngx_strlcasestrn(p, last - 1, name, len - 1);
#     if ((p == r->args.data || *(p - 1) == '&') && *(p + len) == '=') {
#         value->data = p + len + 1;  ...  value->len = p - value->data;  return NGX_OK;
# so a bare "flag" (no "=") is passed over and the first "flag=" answers. ingress-nginx's
# upstream-hash-by reads it through util.generate_var_value ("ngx.var[var_name]").
@pytest.mark.parametrize(("query", "expected"), [
    ("flag&flag=1", "1"),
    ("FLAG&x=2&Flag=3&flag=4", "3"),
    ("flag", ""),            # no "flag=": nginx has no value, which renders as ""
    ("xflag=2&flag=1", "1"),
    ("flag=&flag=1", ""),
])
def test_arg_variable_is_the_first_name_equals(query: str, expected: str) -> None:
    assert KeyTemplate("$arg_flag").raw("GET", "a.test", "/", query, (), None) == expected
    assert RequestContext(query=query).arg("flag") == expected


# canary-by-header-pattern: balancer.lua route_to_alternative_balancer matches with
#     local m, err = ngx.re.match(header, traffic_shaping_policy.headerPattern)
# (no options: no "u", no UCP), so PCRE runs on the header's bytes with its default ("C" locale)
# tables: \d = [0-9], \w = [A-Za-z0-9_], \s = [ \t\n\v\f\r]; no byte above 0x7f is in them.
# Python's re with re.ASCII has exactly these classes: the reference below.
@pytest.mark.parametrize(("pattern", "value"), [
    ("^\\w+$", b"M\xc3\xbcnchen"),     # UTF-8 "Munchen" with u-umlaut: 0xc3, 0xbc are not \w
    ("^\\w+$", b"Jos\xe9"),            # latin-1 e-acute
    ("a\\sb", b"a\xa0b"),              # no-break space
    ("a\\sb", b"a\x85b"),              # NEL
    ("^[\\w.]+$", b"\xb5s"),           # micro sign
    ("^\\W$", b"\xe9"),                # ... and so the negations match them
    ("^\\S$", b"\xa0"),
])
def test_header_pattern_classes_are_pcre_ascii(pattern: str, value: bytes) -> None:
    text = value.decode("latin-1")
    expected = re.search(pattern, text, re.ASCII) is not None
    assert LinearRegex(pattern).search(text) is expected
    c, warnings = parse_canary({P + "canary-by-header": "X-Canary",
                                P + "canary-by-header-pattern": pattern})
    assert warnings == []
    h = h11.Request(method="GET", target="/", headers=[("Host", "a.test"), ("X-Canary", value)])
    want = True if expected else None  # a pattern that does not match falls through
    assert explicit_choice(c, h.headers) is want
    assert compile_explicit(c)(h.headers) is want


def test_header_pattern_digit_is_ascii_only() -> None:
    # A str header (a dict or ASGI-decoded input) may hold any code point: PCRE's \d is [0-9].
    assert LinearRegex("^\\d+$").search("\u0661\u0662") is False   # Arabic-Indic digits
    assert LinearRegex("^\\d+$").search("12") is True


_LATIN1 = st.text(alphabet="ab_Z09 \t\xa0\x85\xb2\xb5\xe9\xc3\xbc-.", max_size=10)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["\\w+", "^\\w+$", "\\W", "\\d", "^\\D*$", "\\s", "\\S\\s\\S",
                        "[\\w-]+$", "[^\\w]", "[\\s\\d]{2}", "^[\\W\\d]+$"]), _LATIN1)
def test_header_pattern_equals_re_ascii_on_latin1(pattern: str, text: str) -> None:
    assert LinearRegex(pattern).search(text) is (re.search(pattern, text, re.ASCII) is not None)
