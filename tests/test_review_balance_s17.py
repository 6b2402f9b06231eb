"""Session 17 review (R17b) of the balancer/canary change 1fc37b6 and the header reads B16 left
open. Each test names the defect it catches; each failed on the code before its fix."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import h11
import pytest
from h11._headers import Headers as H11Headers

from ingresslib import _pick_py
from ingresslib._balance import RequestContext, cookie_value, header_value
from ingresslib._canary import explicit_choice, parse_canary
from ingresslib._router import Router

# The Router tests run once per counter implementation (compiled _pick, pure _pick_py).
from _counters import counters  # noqa: F401
from _router_helpers import P, canary, ingress, resources, simple_backend

Convert = Callable[[bytes], Any]
KINDS: list[Convert] = [bytearray, memoryview]


def _hand_built(*pairs: tuple[bytes, Any]) -> Any:
    """An ``h11.Headers`` built by hand: its constructor takes the (raw name, lower-case name,
    value) triples as given, so a value may be a ``memoryview`` (h11's own parser makes bytes)."""
    return H11Headers([(name, name.lower(), value) for name, value in pairs])


def _canary_router(rules: dict[str, str], main_ann: dict[str, str] | None = None) -> Router:
    return Router(resources(
        ingress("web", [("a.test", "/", "Prefix", "web", 80)], main_ann),
        canary("web-c", "a.test", "/", "web-canary", 80, {P + k: v for k, v in rules.items()}),
        *simple_backend("web", ["10.0.0.1", "10.0.0.2"]),
        *simple_backend("web-canary", ["10.1.0.1", "10.1.0.2"])), seed=1)


def _utf8_request(value: bytes) -> Any:
    return h11.Request(method="GET", target="/",
                       headers=[("Host", "a.test"), ("X-User", value)]).headers


# --- 1. h11.Headers holding memoryview values (B16, left open) ----------------------------------


@pytest.mark.parametrize("convert", KINDS, ids=["bytearray", "memoryview"])
def test_hand_built_h11_headers_with_bytes_like_values_are_read_as_bytes(convert: Convert
                                                                          ) -> None:
    # Catches: header_value's h11 path called ``v.decode`` on the value, an AttributeError
    # for a memoryview (every canary pattern, cookie and $http_ read of such a request).
    hd = _hand_built((b"X-User", convert(b"b\xe9ta")), (b"Cookie", convert(b"s=1")),
                     (b"X-User", convert(b"2")))
    assert header_value(hd, "x-user", b"x-user") == "b\xe9ta"
    assert header_value(hd, "x-user", b"x-user", ", ") == "b\xe9ta, 2"
    assert cookie_value(hd, "s") == "1" and cookie_value(hd, "S", True) == "1"


@pytest.mark.parametrize("convert", KINDS, ids=["bytearray", "memoryview"])
def test_router_routes_hand_built_h11_headers_with_bytes_like_values(convert: Convert) -> None:
    # Catches: Router.route raising AttributeError for such a request: a canary pattern (via
    # explicit_choice) and upstream-hash-by $http_x_user (the first request's keyfn, then the
    # inline h11 read's ``kb.isascii()`` and the pure HashPick's, which the compiled one hands
    # over). Each answer equals the one for the same bytes as a bytes value.
    pat = _canary_router({"canary-by-header": "X-User", "canary-by-header-pattern": "^be"})
    for value, side in ((b"beta", True), (b"alpha", False)):
        d = pat.route("GET", "a.test", "/", _hand_built((b"X-User", convert(value))))
        assert d is not None and d.canary is side
    hashed = Router(resources(
        ingress("web", [("a.test", "/", "Prefix", "web", 80)], {P + "upstream-hash-by":
                                                                 "$http_x_user"}),
        *simple_backend("web", [f"10.0.0.{i}" for i in range(1, 8)])), seed=1)
    for i in range(40):
        value = f"user-{i}-\xe9".encode("latin-1")
        want = hashed.route("GET", "a.test", "/", _hand_built((b"X-User", value)))
        for _ in range(2):  # the first request builds the ring, the second takes the fast path
            got = hashed.route("GET", "a.test", "/", _hand_built((b"X-User", convert(value))))
            assert got is not None and want is not None and got.endpoint == want.endpoint


def test_http_header_twins_read_names_as_bytes_only() -> None:
    # Catches: the pure twin read a triple whose lower-case name is a memoryview (``==``
    # compares contents) where the compiled one compares bytes only: the Router's inline
    # canary header and the pure/compiled runs disagreed on such a hand-built h11.Headers.
    items = [(b"X-Canary", memoryview(b"x-canary"), b"always"),
             (b"X-Canary", b"x-canary", b"never")]
    assert _pick_py.http_header(items, b"x-canary") == b"never"
    try:
        compiled: Any = importlib.import_module("ingresslib._pick")
    except ImportError:
        return  # not built: the pure twin is the one in use
    assert compiled.http_header(items, b"x-canary") == b"never"


# --- 2. bytes-like header names in a list (B16, left open) --------------------------------------


@pytest.mark.parametrize("convert", KINDS, ids=["bytearray", "memoryview"])
def test_bytes_like_header_names_match_as_their_bytes(convert: Convert) -> None:
    # Catches: a bytearray name of another case never matched (``bytearray.lower()`` was
    # compared with the str name), a memoryview one raised AttributeError (no ``.lower``),
    # and RequestContext.headers() raised (a bytearray key is unhashable; a memoryview has no
    # ``.lower``).
    items = [(convert(b"X-Canary"), b"always"), (convert(b"Cookie"), b"s=1")]
    assert header_value(items, "x-canary", b"x-canary") == "always"
    assert cookie_value(items, "s") == "1"
    ctx = RequestContext(headers=items)
    assert ctx.headers() == {"x-canary": "always", "cookie": "s=1"}
    assert ctx.header("x_canary") == "always" and ctx.cookie("s") == "1"
    router = _canary_router({"canary-by-header": "X-Canary"})
    d = router.route("GET", "a.test", "/", [(convert(b"X-Canary"), b"always")])
    assert d is not None and d.canary


# --- 3. a session on both sides: the primary's first (balancer.lua) -----------------------------


def test_a_request_affinitized_to_both_sides_stays_on_the_main_side() -> None:
    # ingress-nginx balancer.lua route_to_alternative_balancer: "if
    # balancer.is_affinitized(balancer) then -- If request is already affinitized to a primary
    # balancer, keep the primary balancer. return false end", before the alternative's. With
    # cookies of different names per side (the canary's own affinity, R21) a request can carry
    # both. Catches: the Router checked the canary's cookie first and sent it to the canary.
    main_ann = {P + "affinity": "cookie", P + "session-cookie-name": "sid"}
    router = _canary_router({"canary-weight": "50", "affinity": "cookie",
                             "session-cookie-name": "csid"}, main_ann)
    cookies: dict[bool, str] = {}
    for _ in range(20):
        d = router.route("GET", "a.test", "/")
        assert d is not None
        if d.set_cookie is not None:
            cookies.setdefault(d.canary, d.set_cookie.split(";")[0])
    assert set(cookies) == {False, True}
    both = f"{cookies[True]}; {cookies[False]}"
    for _ in range(10):
        d = router.route("GET", "a.test", "/", {"Cookie": both})
        assert d is not None and not d.canary and d.set_cookie is None
    alone = router.route("GET", "a.test", "/", {"Cookie": cookies[True]})
    assert alone is not None and alone.canary


# --- 4. canary-by-header-pattern on non-ASCII header bytes --------------------------------------


@pytest.mark.parametrize(("pattern", "sent", "side"), [
    # PCRE without the "u" flag: "." is one byte, "é" (UTF-8) is two.
    ("^.$", "é".encode(), False),
    ("^..$", "é".encode(), True),
    ("^.$", b"a", True),
    ("^Jos.$", "José".encode(), False),
    ("^Jos..$", "José".encode(), True),
    # A negated class of a non-ASCII character: its two bytes are excluded, one at a time.
    ("^[^é]$", "ü".encode(), False),
    ("^[^é]+$", "ü".encode(), False),
    ("^[^é]+$", b"u", True),
    # The pattern's own non-ASCII text still matches the header's UTF-8 (1fc37b6).
    ("^José$", "José".encode(), True),
    ("^Jos[é]$", "José".encode(), False),
    ("é", "café".encode(), True),
    # An optional non-ASCII character: only its last byte is optional ("\xc3\xa9?").
    ("^é?abc$", b"abc", False),
    ("^é?abc$", "\xc3abc".encode("latin-1"), True),
    # A pattern of the latin-1 character: the header's byte \xe9 is not its UTF-8.
    ("^caf[é]$", "café".encode("latin-1"), False),
])
def test_pattern_on_a_non_ascii_header_matches_as_ingress_nginx_pcre(pattern: str, sent: bytes,
                                                                     side: bool) -> None:
    # ingress-nginx balancer.lua: "local m, err = ngx.re.match(header,
    # traffic_shaping_policy.headerPattern)", no options: PCRE on the header's bytes, the
    # pattern being its UTF-8 bytes. Catches (1fc37b6): the pattern was also run on the
    # header's UTF-8 *text*, where "é" is one character, so "^.$" (or "^Jos.$", "^[^é]$") sent
    # to the canary a header ingress-nginx keeps on the main side.
    router = _canary_router({"canary-by-header": "X-User", "canary-by-header-pattern": pattern})
    for _ in range(2):
        d = router.route("GET", "a.test", "/", _utf8_request(sent))
        assert d is not None and d.canary is side, (pattern, sent)
    cfg, warnings = parse_canary({P + "canary-by-header": "X-User",
                                  P + "canary-by-header-pattern": pattern})
    assert not warnings
    assert (explicit_choice(cfg, _utf8_request(sent)) is True) is side


def test_pattern_on_text_values_is_read_as_written() -> None:
    # A caller passing text (a str value, not bytes) keeps matching the pattern as written.
    for pattern, text, side in (("^José$", "José", True), ("^.$", "é", True),
                                ("^Jos[é]$", "José", True)):
        router = _canary_router({"canary-by-header": "X-User",
                                 "canary-by-header-pattern": pattern})
        d = router.route("GET", "a.test", "/", {"X-User": text})
        assert d is not None and d.canary is side, (pattern, text)


def test_non_ascii_value_matches_the_utf8_bytes_only() -> None:
    # "if traffic_shaping_policy.headerValue == header then return true": the header's bytes
    # against the annotation's UTF-8. Catches: a header sent as the latin-1 byte of "é"
    # (b"Jos\xe9", not UTF-8) matched "José" too (its latin-1 reading is the same text).
    cfg, warnings = parse_canary({P + "canary-by-header": "X-User",
                                  P + "canary-by-header-value": "José"})
    assert not warnings
    router = _canary_router({"canary-by-header": "X-User", "canary-by-header-value": "José"})
    for sent, side in (("José".encode(), True), ("José".encode("latin-1"), False)):
        for hd in (_utf8_request(sent), [(b"x-user", sent)], {"X-User": sent}):
            d = router.route("GET", "a.test", "/", hd)
            assert d is not None and d.canary is side, (sent, hd)
            assert (explicit_choice(cfg, hd) is True) is side
    d = router.route("GET", "a.test", "/", {"X-User": "José"})  # text: as written
    assert d is not None and d.canary
