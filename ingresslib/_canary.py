"""Canary rules from the ``nginx.ingress.kubernetes.io/canary*`` annotations (SEMANTICS §7).

"Order: header, then cookie, then weight. Header without value/pattern: ``always`` -> canary,
``never`` -> main, else fall through; cookie likewise. Header names are case-insensitive, values
case-sensitive." A value beats a pattern; a pattern is an unanchored regex.

Better than ingress-nginx (each one is marked ``BETTER:`` below and listed in docs/router.md):
per-rule scope (the RouteTable pairs canaries per rule), the healthy side serves, weight-total
honoured at any value, an exact smooth split, explicit opt-in/opt-out beating affinity, and
invalid annotations reported.

``canary-by-header-pattern`` regexes run on :class:`LinearRegex`, a Thompson-NFA matcher driven
as a lazily built DFA: every match is O(len(value) x len(pattern)) whatever the pattern, so no
header value can make routing backtrack (Python's ``re`` can take exponential time on ``(a+)+$``).
"""

from __future__ import annotations

import functools
import itertools
import random
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from ._balance import H11_HEADERS, Headers, _pairs, cookie_value, header_value
from ._goparse import ascii_digits, normalize_string, parse_int
from ._models import go_utf8
from ._route_state import Interleave, http_header

__all__ = [
    "CanaryConfig",
    "CanaryDecision",
    "parse_canary",
    "explicit_choice",
    "compile_explicit",
    "WeightSplit",
    "LinearRegex",
    "RegexError",
    "CANARY_ANNOTATION",
]

_P = "nginx.ingress.kubernetes.io/"
CANARY_ANNOTATION = _P + "canary"


# --- linear-time regular expressions ------------------------------------------------------------


class RegexError(ValueError):
    """The pattern is malformed or uses a feature with no linear-time implementation."""


# Character-set items: (lo, hi) code point ranges, or one of "d", "w", "s" and their negations
# "D", "W", "S", with PCRE's meaning: ingress-nginx matches the pattern with
# "ngx.re.match(header, traffic_shaping_policy.headerPattern)" (balancer.lua), no options, so
# PCRE runs on the header's bytes with its default ("C" locale) character tables: \d is [0-9],
# \w is [A-Za-z0-9_], \s is [ \t\n\v\f\r]. A byte above 0x7f (one latin-1 character here,
# as the proxy decodes header values) is never a digit, word or space character; Python's
# Unicode classes would take "é", "µ" or a no-break space.
_SetItem = tuple[int, int] | str

_DIGITS = frozenset("0123456789")
_WORD = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_SPACE = frozenset(" \t\n\v\f\r")


def _item_matches(item: _SetItem, ch: str) -> bool:
    if isinstance(item, tuple):
        return item[0] <= ord(ch) <= item[1]
    if item == "d":
        return ch in _DIGITS
    if item == "D":
        return ch not in _DIGITS
    if item == "w":
        return ch in _WORD
    if item == "W":
        return ch not in _WORD
    if item == "s":
        return ch in _SPACE
    return ch not in _SPACE  # "S"


class _CharSet:
    __slots__ = ("items", "negated")

    def __init__(self, items: list[_SetItem], negated: bool = False) -> None:
        self.items = tuple(items)
        self.negated = negated

    def matches(self, ch: str) -> bool:
        hit = any(_item_matches(i, ch) for i in self.items)
        return hit != self.negated


_ANY_BUT_NEWLINE = _CharSet([(10, 10)], negated=True)  # "." as in Python (no DOTALL)
_MAX_STATES = 20_000
_MAX_REPEAT = 1000

# NFA node kinds
_CHAR, _SPLIT, _BOL, _EOL, _MATCH, _JUMP = range(6)


def _single_cp(cs: _CharSet) -> int | None:
    """The code point of a one-character set, else None."""
    if len(cs.items) == 1 and not cs.negated:
        item = cs.items[0]
        if isinstance(item, tuple) and item[0] == item[1]:
            return item[0]
    return None


class _Parser:
    """Recursive descent over the supported syntax; builds Thompson NFA fragments.

    Supported: literals and escapes, ``.``, ``[...]`` classes with ranges and negation,
    ``\\d\\w\\s\\D\\W\\S``, groups ``(...)``, ``(?:...)``, ``(?P<n>...)``, alternation,
    ``* + ? {n} {n,} {n,m}`` (lazy ``?`` suffix accepted: only match/no-match matters),
    anchors ``^ $ \\A \\Z \\z``. Rejected: back-references, look-around, ``\\b``, inline flags,
    possessive quantifiers, atomic groups - none of them has a linear-time NFA form.
    """

    def __init__(self, pattern: str) -> None:
        self.p = pattern
        self.i = 0
        # nodes: [kind, arg, out1, out2]
        self.nodes: list[list[object]] = []

    def node(self, kind: int, arg: object = None, out1: int = -1, out2: int = -1) -> int:
        if len(self.nodes) >= _MAX_STATES:
            raise RegexError(f"pattern too large (more than {_MAX_STATES} states)")
        self.nodes.append([kind, arg, out1, out2])
        return len(self.nodes) - 1

    # A fragment is (start, list of (node, slot) holes to patch).
    def patch(self, holes: list[tuple[int, int]], target: int) -> None:
        for n, slot in holes:
            self.nodes[n][slot] = target

    def chain(self, frags: list[tuple[int, list[tuple[int, int]]]]
              ) -> tuple[int, list[tuple[int, int]]]:
        """The fragments one after the other (each one's holes patched to the next's start);
        none: an empty fragment (a jump, its hole to patch)."""
        if not frags:
            j = self.node(_JUMP)
            return j, [(j, 2)]
        start, holes = frags[0]
        for s, h in frags[1:]:
            self.patch(holes, s)
            holes = h
        return start, holes

    def peek(self) -> str | None:
        return self.p[self.i] if self.i < len(self.p) else None

    def parse(self) -> int:
        start, holes = self.alternation()
        if self.i != len(self.p):
            raise RegexError(f"unbalanced ')' at position {self.i}")
        m = self.node(_MATCH)
        self.patch(holes, m)
        return start

    def alternation(self) -> tuple[int, list[tuple[int, int]]]:
        start, holes = self.sequence()
        while self.peek() == "|":
            self.i += 1
            s2, h2 = self.sequence()
            split = self.node(_SPLIT, None, start, s2)
            start, holes = split, holes + h2
        return start, holes

    def sequence(self) -> tuple[int, list[tuple[int, int]]]:
        frags: list[tuple[int, list[tuple[int, int]]]] = []
        while True:
            c = self.peek()
            if c is None or c in "|)":
                break
            frags.append(self.repeat())
        return self.chain(frags)

    def repeat(self) -> tuple[int, list[tuple[int, int]]]:
        atom_start = self.i
        frag = self.atom()
        atom_end = self.i
        c = self.peek()
        if c in ("*", "+", "?"):
            self.i += 1
            lo, hi = {"*": (0, None), "+": (1, None), "?": (0, 1)}[c]
        elif c == "{" and self._brace_ahead():
            lo, hi = self._braces()
        else:
            return frag
        if self.peek() == "?":
            self.i += 1  # lazy: same language, and only match/no-match matters here
        elif self.peek() == "+":
            raise RegexError("possessive quantifiers are not supported")
        nxt = self.peek()
        if nxt is not None and (nxt in "*+?" or (nxt == "{" and self._brace_ahead())):
            raise RegexError(f"multiple repeat at position {self.i}")
        return self._apply(frag, lo, hi, atom_start, atom_end)

    def _brace_ahead(self) -> bool:
        j = self.p.find("}", self.i)
        if j < 0:
            return False
        body = self.p[self.i + 1:j]
        lo, comma, hi = body.partition(",")
        # ASCII digits only, as PCRE reads a quantifier: "{²}" is literal text there (and
        # int() would refuse it).
        return ascii_digits(lo) and (not comma or hi == "" or ascii_digits(hi))

    def _braces(self) -> tuple[int, int | None]:
        j = self.p.index("}", self.i)
        body = self.p[self.i + 1:j]
        self.i = j + 1
        lo_s, comma, hi_s = body.partition(",")
        if len(lo_s.lstrip("0")) > 4 or len(hi_s.lstrip("0")) > 4:
            # (before int(), which refuses 4,301 digits with a ValueError)
            raise RegexError(f"repeat count above {_MAX_REPEAT}")
        lo = int(lo_s.lstrip("0") or "0")
        hi = lo if not comma else (int(hi_s.lstrip("0") or "0") if hi_s else None)
        if hi is not None and hi < lo:
            raise RegexError(f"bad repeat {{{body}}}")
        if lo > _MAX_REPEAT or (hi or 0) > _MAX_REPEAT:
            raise RegexError(f"repeat count above {_MAX_REPEAT}")
        return lo, hi

    def _copy(self, start: int, end: int) -> tuple[int, list[tuple[int, int]]]:
        # Re-parse the atom's text for an independent copy of its fragment (x{3} = x x x).
        saved = self.i
        self.i = start
        frag = self.atom()
        assert self.i == end
        self.i = saved
        return frag

    def _apply(self, frag: tuple[int, list[tuple[int, int]]], lo: int, hi: int | None,
               a0: int, a1: int) -> tuple[int, list[tuple[int, int]]]:
        pieces: list[tuple[int, list[tuple[int, int]]]] = []
        first = True

        def fresh() -> tuple[int, list[tuple[int, int]]]:
            nonlocal first
            if first:
                first = False
                return frag
            return self._copy(a0, a1)

        for _ in range(lo):
            pieces.append(fresh())
        if hi is None:
            s, h = fresh()
            split = self.node(_SPLIT, None, s, -1)
            self.patch(h, split)
            pieces.append((split, [(split, 3)]))
        else:
            for _ in range(hi - lo):
                s, h = fresh()
                split = self.node(_SPLIT, None, s, -1)
                pieces.append((split, h + [(split, 3)]))
        return self.chain(pieces)

    def atom(self) -> tuple[int, list[tuple[int, int]]]:
        c = self.p[self.i]
        if c == "(":
            self.i += 1
            if self.p.startswith("?:", self.i):
                self.i += 2
            elif self.p.startswith("?P<", self.i) or (
                    self.p.startswith("?<", self.i) and self.p[self.i + 2:self.i + 3] not in "=!"):
                j = self.p.find(">", self.i)
                if j < 0:
                    raise RegexError("unterminated group name")
                self.i = j + 1
            elif self.p.startswith("?", self.i):
                raise RegexError("look-around, inline flags and other (?...) groups "
                                 "are not supported")
            frag = self.alternation()
            if self.peek() != ")":
                raise RegexError("missing )")
            self.i += 1
            return frag
        if c in "*+?":
            raise RegexError(f"nothing to repeat at position {self.i}")
        if c == "{" and self._brace_ahead():
            raise RegexError(f"nothing to repeat at position {self.i}")
        self.i += 1
        if c == ".":
            n = self.node(_CHAR, _ANY_BUT_NEWLINE)
            return n, [(n, 2)]
        if c == "^":
            n = self.node(_BOL)
            return n, [(n, 2)]
        if c == "$":
            n = self.node(_EOL)
            return n, [(n, 2)]
        if c == "[":
            cs = self._class()
            n = self.node(_CHAR, cs)
            return n, [(n, 2)]
        if c == "\\":
            esc = self._escape(in_class=False)
            if esc == "BOL":
                n = self.node(_BOL)
            elif esc == "EOL":
                n = self.node(_EOL)
            else:
                assert isinstance(esc, _CharSet)
                n = self.node(_CHAR, esc)
            return n, [(n, 2)]
        n = self.node(_CHAR, _CharSet([(ord(c), ord(c))]))
        return n, [(n, 2)]

    def _escape(self, in_class: bool) -> _CharSet | str:
        if self.i >= len(self.p):
            raise RegexError("pattern ends with a backslash")
        c = self.p[self.i]
        self.i += 1
        if c in "dDwWsS":
            return _CharSet([c])
        simple = {"t": 9, "n": 10, "r": 13, "f": 12, "v": 11, "a": 7}
        if c in simple:
            return _CharSet([(simple[c], simple[c])])
        if c == "x" or c == "u" or c == "U":
            width = {"x": 2, "u": 4, "U": 8}[c]
            hexs = self.p[self.i:self.i + width]
            if len(hexs) != width or any(h not in "0123456789abcdefABCDEF" for h in hexs):
                raise RegexError(f"bad escape \\{c}{hexs}")
            self.i += width
            cp = int(hexs, 16)
            return _CharSet([(cp, cp)])
        if not in_class and c == "A":
            return "BOL"
        if not in_class and c in "zZ":
            return "EOL"
        if c == "b" and in_class:
            return _CharSet([(8, 8)])
        if c.isascii() and c.isalnum():
            # \b, \B, \1..\9 back-references, \N{...}, \p{...} and unknown letters. Any other
            # character after a backslash is itself (pcrepattern: "if it is followed by a
            # character that is not a number or a letter, it takes away any special meaning";
            # on bytes a byte above 0x7f is no letter of the "C" tables, so "\é" - a backslash,
            # then the two bytes of "é" - is "é" in ingress-nginx; "In a UTF mode, only ASCII
            # numbers and letters have any special meaning after a backslash"; Python's re
            # alike).
            raise RegexError(f"unsupported escape \\{c}")
        return _CharSet([(ord(c), ord(c))])

    def _class(self) -> _CharSet:
        negated = False
        if self.peek() == "^":
            negated = True
            self.i += 1
        items: list[_SetItem] = []
        first = True
        while True:
            if self.i >= len(self.p):
                raise RegexError("unterminated character set")
            c = self.p[self.i]
            if c == "]" and not first:
                self.i += 1
                break
            first = False
            if c == "[" and self.p.startswith("[:", self.i):
                raise RegexError("POSIX classes [:...:] are not supported")
            lo_cp: int | None
            if c == "\\":
                self.i += 1
                esc = self._escape(in_class=True)
                assert isinstance(esc, _CharSet)
                lo_cp = _single_cp(esc)
                if lo_cp is None:  # \d, \w, \s ... inside a class
                    items.extend(esc.items)
                    continue
            else:
                self.i += 1
                lo_cp = ord(c)
            if self.peek() == "-" and self.i + 1 < len(self.p) and self.p[self.i + 1] != "]":
                self.i += 1
                d = self.p[self.i]
                hi_cp: int | None
                if d == "\\":
                    self.i += 1
                    esc2 = self._escape(in_class=True)
                    hi_cp = _single_cp(esc2) if isinstance(esc2, _CharSet) else None
                else:
                    self.i += 1
                    hi_cp = ord(d)
                if hi_cp is None or hi_cp < lo_cp:
                    raise RegexError("bad character range")
                items.append((lo_cp, hi_cp))
            else:
                items.append((lo_cp, lo_cp))
        return _CharSet(items, negated)


class LinearRegex:
    """A regex matcher whose ``search`` is linear in the input, for untrusted values.

    >>> LinearRegex("^(a+)+$").search("a" * 10_000 + "!")
    False
    >>> LinearRegex("beta|canary-[0-9]+").search("user canary-42")
    True
    """

    __slots__ = ("pattern", "_nodes", "_start", "_ids", "_sets", "_trans", "_accept",
                 "_init", "_lock")
    _CACHE_LIMIT = 4096
    #: Transitions kept (one per state and character met): str values from an embedding can
    #: hold any of 1.1 million code points, so the states alone do not bound them.
    _TRANS_LIMIT = 65_536

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        parser = _Parser(pattern)
        try:
            self._start = parser.parse()
        except IndexError:
            raise RegexError("unexpected end of pattern") from None
        self._nodes = parser.nodes
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._ids: dict[frozenset[int], int] = {}
        self._sets: list[frozenset[int]] = []
        self._trans: dict[tuple[int, str], int] = {}
        self._accept: list[bool] = []
        # The DFA state at position 0 (``^`` holds there) and the "restart" set added at every
        # later position for an unanchored search (``^`` does not hold there).
        self._init = self._intern(self._closure((self._start,), at_start=True, at_end=False))

    def _closure(self, seeds: tuple[int, ...] | list[int], at_start: bool,
                 at_end: bool) -> frozenset[int]:
        nodes = self._nodes
        out: set[int] = set()
        stack = list(seeds)
        seen: set[int] = set()
        while stack:
            s = stack.pop()
            if s in seen or s < 0:
                continue
            seen.add(s)
            kind = nodes[s][0]
            if kind == _SPLIT:
                stack.append(nodes[s][2])  # type: ignore[arg-type]
                stack.append(nodes[s][3])  # type: ignore[arg-type]
            elif kind == _JUMP:
                stack.append(nodes[s][2])  # type: ignore[arg-type]
            elif kind == _BOL:
                if at_start:
                    stack.append(nodes[s][2])  # type: ignore[arg-type]
            elif kind == _EOL:
                if at_end:
                    stack.append(nodes[s][2])  # type: ignore[arg-type]
                else:
                    out.add(s)  # pending: satisfied only if the input ends here
            else:
                out.add(s)
        return frozenset(out)

    def _intern(self, states: frozenset[int]) -> int:
        sid = self._ids.get(states)
        if sid is None:
            sid = len(self._sets)
            self._ids[states] = sid
            self._sets.append(states)
            self._accept.append(any(self._nodes[s][0] == _MATCH for s in states))
        return sid

    def _step(self, sid: int, ch: str) -> int:
        nodes = self._nodes
        nxt: list[int] = []
        for s in self._sets[sid]:
            node = nodes[s]
            if node[0] == _CHAR:
                cs = node[1]
                assert isinstance(cs, _CharSet)
                if cs.matches(ch):
                    nxt.append(node[2])  # type: ignore[arg-type]
        nxt.append(self._start)  # unanchored: a match may start at the next position
        return self._intern(self._closure(nxt, at_start=False, at_end=False))

    def search(self, text: str) -> bool:
        """True when the pattern matches anywhere in ``text`` (``re.search`` semantics)."""
        with self._lock:
            if len(self._sets) > self._CACHE_LIMIT or len(self._trans) > self._TRANS_LIMIT:
                self._reset()  # bounded memory; work per character stays bounded by the NFA size
            sid = self._init
            accept = self._accept
            trans = self._trans
            for ch in text:
                if accept[sid]:
                    return True
                nxt = trans.get((sid, ch))
                if nxt is None:
                    if len(self._sets) > self._CACHE_LIMIT or len(trans) > self._TRANS_LIMIT:
                        # Within one search too: a long value can meet a new state set at
                        # every character ("a.{300}c" on 8,000 random a/b bytes kept 8,001
                        # sets, 60 MB, until the next search). The state in hand survives.
                        states = self._sets[sid]
                        self._reset()
                        sid = self._intern(states)
                        accept = self._accept
                        trans = self._trans
                    nxt = trans[(sid, ch)] = self._step(sid, ch)
                sid = nxt
            if accept[sid]:
                return True
            # End of input: pending ``$`` assertions now hold.
            final = self._closure(tuple(self._sets[sid]), at_start=not text, at_end=True)
            return any(self._nodes[s][0] == _MATCH for s in final)


# --- canary configuration -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CanaryConfig:
    """The parsed canary annotations of one canary Ingress."""

    #: Header name, normalised like nginx's ``$http_*`` (lower case, ``_`` -> ``-``).
    header: str | None = None
    header_value: str | None = None
    #: ``header`` as bytes (h11 hands header names over as bytes).
    header_bytes: bytes | None = None
    header_pattern: LinearRegex | None = None
    cookie: str | None = None
    weight: int = 0
    weight_total: int = 100


@dataclass(frozen=True, slots=True)
class CanaryDecision:
    """Why a side was chosen (for logs and tests)."""

    canary: bool
    reason: str


#: Said of a string annotation whose line break was kept (a YAML block scalar's "|").
_LINE_BREAK_HINT = " (ingress-nginx keeps its line breaks: a YAML block scalar \"|\" ends in one)"


def parse_canary(ann: Mapping[str, str]) -> tuple[CanaryConfig, list[tuple[str, str]]]:
    """Read the canary annotations; every invalid value becomes an ``(annotation, message)``
    warning and falls back to the default (BETTER: ingress-nginx drops some silently)."""
    warn: list[tuple[str, str]] = []
    header = ann.get(_P + "canary-by-header")
    if header is not None:
        # parser.GetStringAnnotation: normalizeString trims each line but keeps the line
        # breaks, so a YAML block scalar's "X-Canary\n" names no header in ingress-nginx
        # (balancer.lua looks up ``ngx.var["http_X_Canary\n"]``): invalid here too, and said.
        header = normalize_string(header)
        # RFC 9110 token: visible ASCII without separators (no request can carry another
        # name, and the name is kept as latin-1 bytes for the h11 fast path).
        if not header or any(ch in header for ch in " \t:()<>@,;\\\"/[]?={}") or any(
                not "!" <= ch <= "~" for ch in header):
            warn.append((_P + "canary-by-header", f"invalid header name {header!r}"
                         f"{_LINE_BREAK_HINT if chr(10) in header else ''}; ignored"))
            header = None
        else:
            header = header.lower().replace("_", "-")
    # canary/main.go reads both with parser.GetStringAnnotation, which returns the value
    # through normalizeString (each line trimmed with strings.TrimSpace) and refuses what is
    # then empty ("if len(s) == 0 { return "", errors.NewInvalidAnnotationContent(...) }"):
    # " beta " is "beta" there, and a blank value is no value. Kept as written, " beta" could
    # never equal a request's value (a field value carries no surrounding blanks).
    value = ann.get(_P + "canary-by-header-value")
    if value is not None:
        value = normalize_string(value)
        if "\n" in value and header is not None:
            # Kept, as ingress-nginx keeps it, but said: no field value holds a line break.
            warn.append((_P + "canary-by-header-value",
                         f"{value!r} holds a line break{_LINE_BREAK_HINT}: no request header "
                         "can equal it"))
    pattern_text = ann.get(_P + "canary-by-header-pattern")
    if pattern_text is not None:
        pattern_text = normalize_string(pattern_text)
        # Read as the API server stores it (Go's encoding/json: a lone surrogate is U+FFFD),
        # as a manifest's ``\ud800`` escape already reads (``_json_manifests._go_surrogates``);
        # only ``Resources.from_dicts`` still hands one over, and its byte form (the pattern's
        # UTF-8, ``_byte_pattern``) raised UnicodeEncodeError out of building the Router.
        pattern_text = go_utf8(pattern_text).decode()
    pattern: LinearRegex | None = None
    if value is not None and value == "":
        value = None
    if (value is not None or pattern_text) and header is None:
        for key, v in (("canary-by-header-value", value), ("canary-by-header-pattern",
                                                             pattern_text)):
            if v:
                warn.append((_P + key, "has no effect without canary-by-header; ignored"))
        value = None
        pattern_text = None
    if pattern_text:
        if value is not None:
            # "a value beats a pattern" (ingress-nginx checks headerValue first).
            warn.append((_P + "canary-by-header-pattern",
                         "ignored because canary-by-header-value is set"))
        else:
            try:
                pattern = LinearRegex(pattern_text)
            except RegexError as exc:
                # The header rule goes with it: with a pattern set, balancer.lua never reads
                # "always"/"never" ("elseif traffic_shaping_policy.headerPattern ... elseif
                # header == "always""), so keeping the header would send "X-Canary: always"
                # to a canary its author gave no such rule. The header then decides nothing
                # (as a pattern matching no value): the cookie and the weight do.
                warn.append((_P + "canary-by-header-pattern",
                             f"invalid or unsupported regex {pattern_text!r}: {exc}; ignored, "
                             f"and with it canary-by-header {header!r}: the header decides "
                             "nothing (a pattern turns \"always\"/\"never\" off)"))
                header = None
            else:
                differs, byte_form = _byte_pattern(pattern_text)
                if differs and byte_form is None:
                    # Kept (explicit_choice reads it as documented), but said: on a header
                    # sent as bytes it never matches, and every request carrying the header
                    # stays on the main side - a rule that looks valid and silently is not.
                    warn.append((_P + "canary-by-header-pattern",
                                 f"{pattern_text!r} does not compile as PCRE runs it on the "
                                 "header's bytes (PCRE has no \\u or \\U escape): a request "
                                 "carrying the header stays on the main side, as in "
                                 "ingress-nginx"))
    cookie = ann.get(_P + "canary-by-cookie")
    if cookie is not None:
        cookie = normalize_string(cookie)  # as canary-by-header
        if not cookie or any(ch in cookie for ch in " \t;,=") or not cookie.isprintable():
            # (A control character - a kept line break - can be in no Cookie header.)
            warn.append((_P + "canary-by-cookie", f"invalid cookie name {cookie!r}"
                         f"{_LINE_BREAK_HINT if chr(10) in cookie else ''}; ignored"))
            cookie = None
    total = 100
    raw_total = ann.get(_P + "canary-weight-total")
    if raw_total is not None:
        # canary/main.go: parser.GetIntAnnotation, strconv.Atoi of the raw value.
        parsed = parse_int(raw_total)
        if parsed is not None and parsed > 0:
            total = parsed
        else:
            warn.append((_P + "canary-weight-total",
                         f"invalid value {raw_total!r}: want a positive integer; using 100"))
            total = 100
    weight = 0
    raw_weight = ann.get(_P + "canary-weight")
    if raw_weight is not None:
        parsed = parse_int(raw_weight)
        if parsed is not None and parsed >= 0:
            weight = parsed
        else:
            warn.append((_P + "canary-weight",
                         f"invalid value {raw_weight!r}: want an integer >= 0; using 0"))
            weight = 0
        if weight > total:
            warn.append((_P + "canary-weight",
                         f"weight {weight} exceeds canary-weight-total {total}; using {total}"))
            weight = total
    return CanaryConfig(header, value, header.encode("latin-1") if header else None, pattern,
                        cookie, weight, total), warn


def _utf8_text(value: str) -> str | None:
    """A header value read as latin-1 (one character per byte: how the proxy and ASGI header
    bytes reach the router) back as the UTF-8 text it spells; None when it is not UTF-8."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return None


def _wire_name(name: str) -> str:
    """``name``'s UTF-8 read one character per byte (latin-1): how a name written in an
    annotation appears in a header the proxy decoded from the wire."""
    return name.encode("utf-8").decode("latin-1")


def _u_escape(pattern: str) -> bool:
    """Whether ``pattern`` holds a ``\\u``/``\\U`` escape (``\\\\u`` is a backslash and a
    ``u``): pcrepattern, "In Perl, the sequences \\l, \\L, \\u, and \\U are recognized by its
    string handler ... By default, PCRE does not support these escape sequences" (pcre2pattern
    alike; an error, as any unrecognized alphabetic escape). Python's ``re`` refuses them on
    bytes too. Such a pattern does not compile in ingress-nginx."""
    i = pattern.find("\\")
    while i >= 0:
        if pattern[i + 1:i + 2] in ("u", "U"):
            return True
        i = pattern.find("\\", i + 2)
    return False


@functools.lru_cache(maxsize=256)
def _byte_pattern(pattern: str) -> tuple[bool, LinearRegex | None]:
    """``canary-by-header-pattern`` as PCRE runs it in ingress-nginx: on bytes ("ngx.re.match
    (header, traffic_shaping_policy.headerPattern)", no ``u`` flag), the pattern being its own
    UTF-8 bytes. Here both are read one character per byte (latin-1): "é" in the pattern is
    the two characters of its UTF-8, and ``.`` takes one byte of a UTF-8 value, as in
    ingress-nginx. Returns (whether that differs from the pattern as written, the byte form:
    None when it does not compile in PCRE - its byte form does not parse, or a ``\\u``
    escape - and then it matches nothing: balancer.lua logs ngx.re.match's error and keeps
    the main side)."""
    if _u_escape(pattern):
        return True, None
    if pattern.isascii():
        return False, None  # its own byte form
    try:
        return True, LinearRegex(pattern.encode("utf-8").decode("latin-1"))
    except RegexError:
        return True, None


def _sent_as_bytes(headers: Headers, name: str, bname: bytes | None) -> bool:
    """Whether the header ``name`` (``bname``: its bytes, lower-case) came as bytes (h11's
    headers; a ``bytes``, ``bytearray`` or ``memoryview`` value in a list or mapping; an
    ``http.client.HTTPMessage``, whose values http.client decodes from the wire as latin-1)
    rather than as text (a ``str`` value: an embedding passing text). Only asked when the
    value, the annotation or the cookie name is not ASCII."""
    if H11_HEADERS is not None and type(headers) is H11_HEADERS:
        return True
    # http.server's self.headers: parse_headers reads the block as "decode('iso-8859-1')",
    # one character per wire byte, as the proxy. (Not imported here: no HTTPMessage exists
    # before http.client is.)
    client = sys.modules.get("http.client")
    if client is not None and isinstance(headers, client.HTTPMessage):
        return True
    items = headers.items() if isinstance(headers, Mapping) else _pairs(headers)
    seen = False
    for k, v in items:
        # header_value's own name test, on this one line.
        if header_value([(k, "")], name, bname) is not None:  # type: ignore[arg-type]
            if isinstance(v, str):
                return False
            seen = True
    return seen


def explicit_choice(cfg: CanaryConfig, headers: Headers) -> bool | None:
    """The header, then the cookie: True (canary), False (main) or None (fall through).

    Mirrors ingress-nginx's ``route_to_alternative_balancer``: with a header value or pattern
    configured, a non-matching header falls through (it does not force main); ``always``/``never``
    only mean something when neither is configured.
    """
    if cfg.header is not None:
        # nginx's $http_* (>= 1.23): a repeated header reads as its lines joined by ", ".
        got = header_value(headers, cfg.header, cfg.header_bytes,  # type: ignore[arg-type]
                           "; " if cfg.header == "cookie" else ", ")
        if got is not None:
            # ingress-nginx compares bytes ("traffic_shaping_policy.headerValue == header"; the
            # pattern runs on the header's bytes, PCRE without the "u" flag), the annotation's
            # bytes being its UTF-8. A value sent as bytes (the proxy's, ASGI's) arrives one
            # character per byte (latin-1): it is compared with the annotation's UTF-8 read
            # the same way, so "José" matches the UTF-8 of José and "^.$" does not match it
            # (two bytes), as in ingress-nginx. A value given as text is compared as written.
            # (For ASCII values and annotations both readings are one and the same.)
            if cfg.header_value is not None:
                if got.isascii() or cfg.header_value.isascii() or not _sent_as_bytes(
                        headers, cfg.header, cfg.header_bytes):
                    if got == cfg.header_value:
                        return True
                elif _utf8_text(got) == cfg.header_value:
                    return True
            elif cfg.header_pattern is not None:
                pat: LinearRegex = cfg.header_pattern
                differs, byte_form = _byte_pattern(cfg.header_pattern.pattern)
                if differs and _sent_as_bytes(headers, cfg.header, cfg.header_bytes):
                    if byte_form is None:
                        # No PCRE pattern: balancer.lua, "elseif err then ngx.log(ngx.ERR,
                        # "error when matching canary-by-header-pattern: ...) return false"
                        # - the main side, the cookie and weight not asked.
                        return False
                    pat = byte_form
                if pat.search(got):
                    return True
            elif got == "always":
                return True
            elif got == "never":
                return False
    if cfg.cookie is not None:
        # nginx's ``$cookie_*``: the name matches case-insensitively (ngx_strncasecmp), byte
        # for byte: a non-ASCII name is its UTF-8 (the annotation's bytes) in a Cookie header
        # sent as bytes, which arrives one character per byte (latin-1), as the value above.
        cookie = cfg.cookie
        if not cookie.isascii() and _sent_as_bytes(headers, "cookie", b"cookie"):
            cookie = _wire_name(cookie)
        c = cookie_value(headers, cookie, True)
        if c == "always":
            return True
        if c == "never":
            return False
    return None


def compile_explicit(cfg: CanaryConfig) -> Callable[[Headers], bool | None]:
    """:func:`explicit_choice` for one config, specialised at update time: for ``h11.Headers``
    (what the proxy passes) a header value is compared as bytes, with no decoding. Same answers
    as :func:`explicit_choice` for every input (tested)."""
    if (cfg.header is None or cfg.header_pattern is not None or H11_HEADERS is None
            or (cfg.header_value is not None and not cfg.header_value.isascii())):
        # A non-ASCII value matches its UTF-8 bytes (or, given as text, itself): explicit_choice.
        return functools.partial(explicit_choice, cfg)
    yes = (cfg.header_value if cfg.header_value is not None else "always").encode("ascii")
    no = b"never" if cfg.header_value is None else None
    bname = cfg.header_bytes
    # h11's values are bytes (read latin-1): a non-ASCII cookie name is looked for as its UTF-8.
    cookie = None if cfg.cookie is None else _wire_name(cfg.cookie)
    h11_type = H11_HEADERS

    def check(headers: Headers) -> bool | None:
        if type(headers) is not h11_type:
            return explicit_choice(cfg, headers)
        v = http_header(headers._full_items, bname)  # type: ignore[union-attr,arg-type]
        if v is not None:  # nginx's $http_*: a repeated header's lines joined by ", "
            if v == yes:
                return True
            if v == no:
                return False
        if cookie is not None:
            c = cookie_value(headers, cookie, True)
            if c == "always":
                return True
            if c == "never":
                return False
        return None

    return check


class WeightSplit:
    """The weight step of one route: canary for exactly ``weight`` of every ``total``
    consecutive weight-decided requests, interleaved as evenly as possible.

    Request k (0-based) goes to the canary iff ``floor((k+1)w/T) > floor(kw/T)`` - the
    Bresenham line from (0, 0) to (T, w). After any m requests the canary served
    ``floor(m*w/T)``; over any window of n requests it served ``floor`` or ``ceil`` of
    ``n*w/T``: within one request of the exact share (BETTER: ingress-nginx draws
    ``math.random``, so a 10 % canary can take 0 or 30 of 100 requests, and it ignores
    ``canary-weight-total`` below 100). ``random=True`` draws instead (seeded).
    """

    __slots__ = ("weight", "total", "steps", "_counter", "_rng", "_lock")

    def __init__(self, weight: int, total: int, rng: random.Random | None = None) -> None:
        self.weight = max(0, min(weight, total))
        self.total = total
        #: The smooth split as an iterator of choices (``next`` is atomic under the GIL): the
        #: Router's request path reads it directly. None when random, or for a total of 2**32
        #: or more (then ``take`` counts with Python ints).
        self.steps: Iterator[bool] | None = (
            Interleave(self.weight, total) if rng is None and total < 2**32 else None)
        self._counter = itertools.count()
        self._rng = rng
        self._lock = threading.Lock()

    @property
    def random(self) -> bool:
        return self._rng is not None

    def take(self) -> bool:
        steps = self.steps
        if steps is not None:
            return next(steps)
        w = self.weight
        if w == 0:
            return False
        t = self.total
        if w == t:
            return True
        if self._rng is not None:
            with self._lock:
                return self._rng.randrange(t) < w
        k = next(self._counter) % t  # the pattern repeats every T requests; keep ints small
        return (k + 1) * w // t > k * w // t
