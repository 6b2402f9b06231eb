"""Session 19 review (Q19c) of the canary path: ``_canary`` (annotations, ``LinearRegex``), the
pairing in ``_table`` and the decision in ``_router``. Each test names the defect it catches;
each failed on the code before its fix."""

from __future__ import annotations

import random
import re
from typing import Any

import h11
import pytest

from ingresslib._canary import LinearRegex, parse_canary
from ingresslib._router import Router

# The Router tests run once per counter implementation (compiled _pick, pure _pick_py).
from _counters import counters  # noqa: F401
from _router_helpers import P, canary, ingress, resources, simple_backend

_PATTERN = P + "canary-by-header-pattern"


def _router(pattern: str) -> Router:
    return Router(resources(
        ingress("web", [("a.test", "/", "Prefix", "web", 80)]),
        canary("web-c", "a.test", "/", "web-canary", 80,
               {P + "canary-by-header": "X-User", _PATTERN: pattern,
                P + "canary-weight": "100"}),
        *simple_backend("web", ["10.0.0.1"]),
        *simple_backend("web-canary", ["10.1.0.1"])), seed=1)


def _h11(value: bytes) -> Any:
    return h11.Request(method="GET", target="/", headers=[(b"Host", b"a.test"),
                                                          (b"X-User", value)]).headers


# --- 1. a pattern PCRE does not compile is kept silently ----------------------------------------


def test_a_pattern_pcre_cannot_compile_on_bytes_is_reported() -> None:
    # Catches: "canary-by-header-pattern: \u00e9" (or any \u/\U escape: PCRE has none) parsed
    # without a warning, yet on a header sent as bytes - every request through the proxy or
    # ASGI - it matches nothing and keeps the request on the main side, weight and cookie not
    # asked (docs/router.md; balancer.lua's "return false" on ngx.re.match's error). With
    # canary-weight 100 a request carrying X-User went to main, one without it to the canary,
    # and router.warnings said nothing: the rule looked valid and silently never fired.
    r = _router(r"^caf\u00e9$")
    assert r.route("GET", "a.test", "/", _h11("café".encode())).canary is False  # type: ignore[union-attr]
    assert r.route("GET", "a.test", "/", []).canary is True  # type: ignore[union-attr]
    said = [w for w in r.warnings if w.field == f"metadata.annotations[{_PATTERN}]"]
    assert len(said) == 1, r.warnings
    assert said[0].object == "Ingress default/web-c"
    assert "PCRE" in said[0].message and "main side" in said[0].message
    # The same at the parser, for \U too; the pattern itself is kept (its text reading).
    cfg, warnings = parse_canary({P + "canary-by-header": "x", _PATTERN: r"\U0001F600"})
    assert cfg.header_pattern is not None and [k for k, _ in warnings] == [_PATTERN]
    # Not said for patterns PCRE compiles: an escaped backslash before "u", non-ASCII text,
    # ASCII escapes.
    for fine in (r"^a\\u", "café", r"\d+-[a-z]", r"\x41"):
        assert parse_canary({P + "canary-by-header": "x", _PATTERN: fine})[1] == [], fine


# --- 2. LinearRegex's DFA cache grew without bound within one search ----------------------------


def test_one_search_keeps_the_dfa_state_cache_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    # Catches: the cache bound (_CACHE_LIMIT DFA states, docs/router.md "at most 4,096 DFA
    # states before the cache is reset") was checked only when a search began. A long value
    # meeting a new state set at every character filled it without limit: the header pattern
    # "a.{300}c" against 8,000 random a/b bytes (one header line nginx's default buffers
    # admit) left 8,001 state sets, about 60 MB, held until the next request; 30,000 bytes
    # (repeated lines, joined) and ".{1000}" about 600 MB. Counted, not timed.
    rng = random.Random(7)
    value = "".join(rng.choice("ab") for _ in range(6_000))
    rx = LinearRegex("a.{60}c")
    steps = 0
    step = LinearRegex._step

    def counting_step(self: LinearRegex, sid: int, ch: str) -> int:
        nonlocal steps
        steps += 1
        return step(self, sid, ch)

    monkeypatch.setattr(LinearRegex, "_step", counting_step)
    assert rx.search(value) is False
    assert len(rx._sets) <= LinearRegex._CACHE_LIMIT + 1
    assert steps <= len(value)  # one NFA step per character at most: bounded work
    # The answers stay re.search's across the resets (the state in hand survives them).
    for text in (value + "c", value[:200] + "a" + "b" * 60 + "c" + value[200:], value[::-1]):
        assert rx.search(text) is (re.search("a.{60}c", text) is not None)
        assert len(rx._sets) <= LinearRegex._CACHE_LIMIT + 1


def test_transitions_met_across_searches_stay_bounded() -> None:
    # Catches: the cache was reset only for its state count; transitions (one per state and
    # character) were kept forever. A str header value (an embedding passing text) can hold
    # any of 1.1 million code points: "^a$" kept one transition per distinct character seen,
    # request after request (70,000 entries here, each a dict slot, a tuple key and a
    # one-character string), while the states stayed at two.
    rx = LinearRegex("^a$")
    for start in range(0x100, 0x100 + 70_000, 1_000):
        text = "".join(map(chr, range(start, start + 1_000)))
        assert rx.search(text) is False
        assert len(rx._trans) <= 65_536 + 1_000  # the limit, and one search's own
    assert rx.search("a") is True and rx.search("ba") is False
