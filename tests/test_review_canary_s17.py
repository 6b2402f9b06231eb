"""Session 17 review (R17f) of ca9e254 (canary header patterns on bytes), 633c080 (``_pairs``)
and c1ca55a (``Metrics.set_ingresses`` freeing hosts). Each test names the defect it catches;
each failed on the code before its fix."""

from __future__ import annotations

import http.client
import io
import re
from typing import Any

import h11
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ingresslib._canary import LinearRegex, RegexError
from ingresslib._metrics import Metrics
from ingresslib._router import Router

# The Router tests run once per counter implementation (compiled _pick, pure _pick_py).
from _counters import counters  # noqa: F401
from _records import rec
from _router_helpers import P, canary, ingress, resources, simple_backend
from test_metrics_s17 import _hosts as _host_labels

_ROUTERS: dict[tuple[tuple[str, str], ...], Router] = {}


def _router(**rules: str) -> Router:
    """main (weight 0 canary): the canary is chosen by the header/cookie rules only."""
    key = tuple(sorted(rules.items()))
    r = _ROUTERS.get(key)
    if r is None:
        r = _ROUTERS[key] = Router(resources(
            ingress("web", [("a.test", "/", "Prefix", "web", 80)]),
            canary("web-c", "a.test", "/", "web-canary", 80,
                   {P + k.replace("_", "-"): v for k, v in rules.items()}),
            *simple_backend("web", ["10.0.0.1"]),
            *simple_backend("web-canary", ["10.1.0.1"])), seed=1)
    return r


def _side(router: Router, headers: Any) -> bool:
    d = router.route("GET", "a.test", "/", headers)
    assert d is not None
    return d.canary


def _h11(value: bytes, name: bytes = b"X-User") -> Any:
    return h11.Request(method="GET", target="/", headers=[(b"Host", b"a.test"),
                                                          (name, value)]).headers


# --- 1. http.client.HTTPMessage and a non-ASCII value or pattern (ca9e254 + 633c080) ----------


def test_http_message_headers_with_a_non_ascii_rule_are_read_as_the_wire_bytes() -> None:
    # Catches: _sent_as_bytes iterated an HTTPMessage (an http.server handler's self.headers,
    # which CONTRACT's "mapping" covers since 633c080) as pairs: it yields names only, so
    # every request raised "ValueError: too many values to unpack" once the canary's value or
    # pattern was not ASCII (and a two-letter header name was split into name and value).
    # http.client decodes the header block as latin-1 (parse_headers: "decode('iso-8859-1')"),
    # so its values are the wire bytes one character per byte, as the proxy's: read as
    # ingress-nginx reads them (the annotation's UTF-8, byte by byte).
    def msg(name: str, value: bytes) -> http.client.HTTPMessage:
        return http.client.parse_headers(io.BytesIO(name.encode() + b": " + value + b"\r\n\r\n"))

    jose = "José".encode()
    value = _router(canary_by_header="X-User", canary_by_header_value="José")
    assert _side(value, msg("X-User", jose)) is True
    assert _side(value, msg("X-User", "José".encode("latin-1"))) is False
    assert _side(_router(canary_by_header="ab", canary_by_header_value="José"),
                 msg("ab", jose)) is True
    # PCRE on bytes: [^é] is "neither C3 nor A9", so it does not take José's "é".
    pattern = _router(canary_by_header="X-User", canary_by_header_pattern="^Jos[^é]+$")
    assert _side(pattern, msg("X-User", jose)) is False
    assert _side(pattern, msg("X-User", b"Josh")) is True


# --- 2. one-shot iterators of pairs (CONTRACT: "an iterable of (name, value) pairs") -----------


def test_a_generator_of_header_pairs_is_read_as_often_as_routing_needs() -> None:
    # Catches: the router read a generator more than once. The canary header's read used it up,
    # so the cookie after it saw nothing (the list gave the canary, the generator the main
    # side), and since ca9e254 _sent_as_bytes saw an empty iterator: UTF-8 bytes of "José"
    # were then compared as text and missed the canary.
    both = _router(canary_by_header="X-User", canary_by_cookie="cc")
    pairs: list[tuple[Any, Any]] = [("X-User", "nope"), ("Cookie", "cc=always")]
    assert _side(both, list(pairs)) is True
    assert _side(both, (p for p in pairs)) is True
    value = _router(canary_by_header="X-User", canary_by_header_value="José")
    raw = [(b"x-user", "José".encode())]
    assert _side(value, list(raw)) is True
    assert _side(value, (p for p in raw)) is True
    assert _side(value, iter(raw)) is True


# --- 3. \u escapes in a pattern run on bytes ---------------------------------------------------


def test_a_u_escape_opens_no_canary_on_bytes() -> None:
    # Catches: "\u00e9" (accepted by the annotation parser, as Python's re) matched the byte
    # 0xE9 of a header sent as bytes: the UTF-8 of U+9000 (E9 80 80) or a latin-1 "é" opened
    # the canary, a client-chosen route. PCRE has no \u escape (pcre2pattern: "\u ... are not
    # recognized" without PCRE2_ALT_BSUX; Python's re refuses it on bytes too): ingress-nginx's
    # ngx.re.match returns an error, balancer.lua logs it and keeps the main side.
    r = _router(canary_by_header="X-User", canary_by_header_pattern=r"\u00e9")
    assert _side(r, _h11("\u9000".encode())) is False
    assert _side(r, _h11(b"caf\xe9")) is False
    assert _side(r, [(b"x-user", b"caf\xe9")]) is False
    wide = _router(canary_by_header="X-User", canary_by_header_pattern=r"[\u00e0-\u00ff]|€")
    assert _side(wide, _h11("\u9000".encode())) is False
    # The whole pattern fails to compile in PCRE: "€" does not open the canary either.
    assert _side(wide, _h11("€".encode())) is False
    # A value given as text is compared as written (the documented text reading).
    assert _side(r, [("X-User", "café")]) is True
    # "\\u" is a backslash and a "u", not an escape.
    lit = _router(canary_by_header="X-User", canary_by_header_pattern=r"^a\\u")
    assert _side(lit, _h11(b"a\\u")) is True


# --- 4. differential: Router.route against PCRE's byte semantics (Python's re on bytes) --------

_TOKENS = ["a", "J", "o", "s", "é", "à", "ÿ", "€", "©", "Ã", ".", "[à-ÿ]", "[^é]", "[a-é]", r"\é", r"\©",
           "[é-z]", "[éa]", r"\xE9", r"\xC3", r"\u00e9", r"\w", r"\W", r"\s", r"\d", "+", "*",
           "?", "{2}", "^", "$", "(", ")", "|", "(?:"]
_CHARS = ["J", "o", "s", "é", "à", "ÿ", "€", "©", "Ã", "a", "1", "_", "\xa0", "退", " "]


def _oracle(pattern: str, value: bytes) -> bool:
    """ingress-nginx: ngx.re.match(header, pattern), PCRE on bytes with the "C" tables; Python's
    re on a bytes pattern has the same ASCII-only classes and byte-wise characters, and like
    PCRE refuses \\u. A pattern that does not compile matches nothing (balancer.lua)."""
    try:
        return re.search(pattern.encode("utf-8"), value) is not None
    except re.error:
        return False


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(st.sampled_from(_TOKENS), min_size=1, max_size=6),
       st.lists(st.one_of(st.sampled_from(_CHARS).map(lambda c: c.encode()),
                          st.sampled_from([b"\xe9", b"\xc3", b"\xa9", b"\x80", b"\xff"])),
                min_size=1, max_size=6))
@example([r"\u00e9"], [b"\xe9"])  # the \\u escape (test_a_u_escape_opens_no_canary_on_bytes)
@example([r"\©"], ["©".encode()])  # a backslash before a non-ASCII character
def test_byte_patterns_match_as_pcre_through_the_router(tokens: list[str],
                                                       parts: list[bytes]) -> None:
    pattern = "".join(tokens)
    if re.search(r"[$^](\)|\(\?:)*[*+?{]", pattern):
        return  # a quantified anchor: Python's re refuses it, PCRE's reading is not the oracle's
    try:
        LinearRegex(pattern)
    except RegexError:
        return  # the annotation is refused: no pattern rule at all
    value = b"".join(parts).strip(b" ")
    if not value:
        return
    try:
        re.compile(pattern.encode("utf-8"))
        LinearRegex(pattern.encode("utf-8").decode("latin-1"))
    except (re.error, RegexError):
        pass  # not both: the comparison below still holds (no match on either side)
    want = _oracle(pattern, value)
    r = _router(canary_by_header="X-User", canary_by_header_pattern=pattern)
    # The proxy's h11 headers, and an ASGI server's list of byte pairs.
    assert _side(r, _h11(value)) is want, (pattern, value)
    assert _side(r, [(b"x-user", value)]) is want, (pattern, value)
    assert _side(r, [(b"x-user", memoryview(value))]) is want, (pattern, value)
    # A value given as text is matched as written, with PCRE's ASCII classes.
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return
    want_text = re.search(pattern, text, re.ASCII) is not None
    assert _side(r, [("X-User", text)]) is want_text, (pattern, text)
    assert _side(r, {"x-user": text}) is want_text, (pattern, text)


# --- 5. Metrics: set_hosts(None) after set_ingresses dropped hosts (c1ca55a) --------------------




def test_hosts_dropped_while_hosts_were_known_free_the_bound_when_unknown_again() -> None:
    # Catches: set_ingresses recounts the max_hosts bound only while set_hosts is None, so the
    # hosts of Ingresses dropped while the hosts were known stayed counted after
    # set_hosts(None): with the bound full of names that have no series, every new host was
    # labelled host="" (the defect c1ca55a fixed, reached in another order).
    m = Metrics(max_hosts=2)
    m.observe(rec(host="pr1.shop.test", ingress="shop/pr1", rule_path="/"))
    m.observe(rec(host="pr2.shop.test", ingress="shop/pr2", rule_path="/"))
    m.set_hosts(["web.shop.test"])
    m.set_ingresses(["shop/web"])  # pr1 and pr2 gone
    m.set_hosts(None)
    m.observe(rec(host="pr3.shop.test", ingress="shop/pr3", rule_path="/"))
    assert _host_labels(m) == {"pr3.shop.test"}
    # The bound counts the names that have series, those labelled while hosts were known too.
    m.set_hosts(["web.shop.test"])
    m.observe(rec(host="web.shop.test", ingress="shop/web", rule_path="/"))
    m.set_hosts(None)
    m.observe(rec(host="pr4.shop.test", ingress="shop/pr4", rule_path="/"))
    assert _host_labels(m) == {"pr3.shop.test", "web.shop.test", ""}


def test_set_hosts_none_without_the_host_label_keeps_working() -> None:
    # per_host=False: keys have no host; nothing to recount (an IndexError would say otherwise).
    m = Metrics(per_host=False, max_hosts=1)
    m.observe(rec(host="a.test", ingress="shop/a", rule_path="/"))
    m.set_hosts(["a.test"])
    m.set_ingresses([])
    m.set_hosts(None)
    m.observe(rec(host="b.test", ingress="shop/b", rule_path="/"))
    assert b'ingress="b"' in m.render()


def test_a_backslash_before_a_non_ascii_character_is_that_character() -> None:
    # Catches: "\é" was refused ("unsupported escape": "é".isalnum()) and "\©" on bytes read as
    # "\Â" then "©" (refused: "Â".isalnum()), so neither opened the canary. PCRE: a backslash
    # before anything but an ASCII letter or digit takes its special meaning away (on bytes a
    # byte above 0x7f is no letter of the "C" tables), so both are their character's UTF-8.
    from ingresslib._canary import parse_canary

    cfg, warn = parse_canary({P + "canary-by-header": "X-User",
                              P + "canary-by-header-pattern": r"^caf\é$"})
    assert cfg.header_pattern is not None and warn == []
    accent = _router(canary_by_header="X-User", canary_by_header_pattern=r"^caf\é$")
    assert _side(accent, _h11("café".encode())) is True
    assert _side(accent, _h11(b"caf\xe9")) is False
    assert _side(accent, [("X-User", "café")]) is True
    sign = _router(canary_by_header="X-User", canary_by_header_pattern=r"^\©$")
    assert _side(sign, _h11("©".encode())) is True
    assert _side(sign, [(b"x-user", "©".encode())]) is True
    # An ASCII letter after a backslash is still an escape or refused (PCRE: an error).
    assert parse_canary({P + "canary-by-header": "X-User",
                         P + "canary-by-header-pattern": r"\q"})[0].header_pattern is None


def test_a_list_of_pairs_with_an_items_attribute_is_still_a_list_of_pairs() -> None:
    # Catches: since 633c080 any header object with a callable ``items`` was read through it,
    # a list subclass too (a framework's header list with an ``items`` helper of its own, or a
    # namedtuple-like row): its pairs were no longer read, or unpacking failed.
    from ingresslib._balance import RequestContext, header_value

    class HeaderList(list[tuple[str, str]]):
        def items(self) -> list[str]:  # e.g. the names only
            return [k for k, _ in self]

    hl = HeaderList([("X-User", "José"), ("Cookie", "cc=always")])
    assert header_value(hl, "x-user", b"x-user") == "José"
    assert RequestContext("GET", "a.test", "/", hl).headers() == {"x-user": "José",
                                                                   "cookie": "cc=always"}
    value = _router(canary_by_header="X-User", canary_by_header_value="José")
    assert _side(value, hl) is True
    assert _side(_router(canary_by_header="X-Other", canary_by_cookie="cc"), hl) is True


def test_a_pattern_pcre_cannot_compile_keeps_the_request_on_the_main_side() -> None:
    # Catches: a pattern whose byte form PCRE refuses fell through to the cookie and the
    # weight (canary-weight 100: the canary). ingress-nginx's balancer.lua
    # (route_to_alternative_balancer): "elseif err then ngx.log(ngx.ERR, \"error when matching
    # canary-by-header-pattern: ...\") return false" - the main side, whenever the header is
    # there; without the header the cookie and weight decide as usual.
    for pattern in (r"\u00e9", r"^\U0001F600"):  # PCRE has neither escape
        r = _router(canary_by_header="X-User", canary_by_header_pattern=pattern,
                    canary_by_cookie="cc", canary_weight="100")
        assert _side(r, _h11(b"x")) is False, pattern
        assert _side(r, [(b"x-user", b"x"), (b"cookie", b"cc=always")]) is False, pattern
        assert _side(r, [(b"cookie", b"cc=never")]) is False, pattern
        assert _side(r, [(b"host", b"a.test")]) is True, pattern
