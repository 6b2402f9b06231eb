"""Annotation values read the way ingress-nginx's Go parser reads them.

ingress-nginx's ``parser.GetBoolAnnotation`` and ``parser.GetIntAnnotation``
(``internal/ingress/annotations/parser/main.go``) hand the raw annotation string to
``strconv.ParseBool`` and ``strconv.Atoi``: nothing is trimmed or case-folded first. Every
module that reads a boolean or integer annotation (the route table's canary flag, the router's
balancer and canary annotations, the proxy's per-route options) uses these two, so that one
value never means two things in two places.
"""

from __future__ import annotations

import re

from ._models import GO_SPACE

__all__ = ["parse_bool", "parse_int", "normalize_string", "trim_space"]

#: strconv.ParseBool: "It accepts 1, t, T, TRUE, true, True, 0, f, F, FALSE, false, False. Any
#: other value returns an error."
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
#: strconv.Atoi: an optional sign and ASCII decimal digits (Python's int() would also take
#: " 5", "1_0" and non-ASCII digits).
_ATOI = re.compile(r"[+-]?[0-9]+", re.ASCII)
_INT_MIN, _INT_MAX = -(1 << 63), (1 << 63) - 1


def parse_bool(value: str) -> bool | None:
    """``strconv.ParseBool``: True, False, or None when Go would return an error.

    >>> parse_bool("T"), parse_bool("0"), parse_bool(" true"), parse_bool("yes")
    (True, False, None, None)
    """
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return None


def trim_space(value: str) -> str:
    """``strings.TrimSpace``: Go's ``unicode.IsSpace`` trimmed at both ends (``GO_SPACE``;
    ``str.strip()`` would also trim U+001C..U+001F, which Go keeps).

    >>> trim_space("\\u3000 a\\n"), trim_space("\\x1ca")
    ('a', '\\x1ca')
    """
    return value.strip(GO_SPACE)


def normalize_string(value: str) -> str:
    """An annotation string as ``parser.GetStringAnnotation`` returns it (parser/main.go
    ``normalizeString``: each line trimmed with ``strings.TrimSpace``, the lines joined by
    "\\n" again): ``" ewma "`` is ``ewma``, but ``"ewma\\n"`` keeps its line break.
    ``TrimSpace`` trims Go's ``unicode.IsSpace`` (``GO_SPACE``), not ``str.strip()``'s set
    (which also holds U+001C..U+001F).

    >>> normalize_string(" a \\n\\u3000b\\x1c"), normalize_string("x\\n")
    ('a\\nb\\x1c', 'x\\n')
    """
    return "\n".join(line.strip(GO_SPACE) for line in value.split("\n"))


def ascii_digits(text: str) -> bool:
    """``text`` is ASCII digits only, as Go, nginx and PCRE read a number (``str.isdigit()``
    also takes "²" and other Unicode digits, which ``int()`` then refuses or reads)."""
    return text.isascii() and text.isdigit()


def parse_int(value: str) -> int | None:
    """``strconv.Atoi``: the integer, or None when Go would return an error.

    >>> parse_int("-5"), parse_int(" 5"), parse_int("1_0"), parse_int("30s"), parse_int("9" * 19)
    (-5, None, None, None, None)
    """
    if _ATOI.fullmatch(value) is None:
        return None
    digits = value.lstrip("+-").lstrip("0") or "0"
    if len(digits) > 19:
        # Past int64 whatever the digits (and int() refuses 4,301 of them with a ValueError,
        # leading zeros counted: hence the digits alone).
        return None
    n = -int(digits) if value[0] == "-" else int(digits)
    # Go's int is 64 bits on the platforms ingress-nginx ships for: outside it Atoi returns
    # ErrRange, an error like any other.
    if not _INT_MIN <= n <= _INT_MAX:
        return None
    return n
