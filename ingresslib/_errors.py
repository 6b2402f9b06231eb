"""The exceptions of the public API, split at the trust boundary (h11's habit).

``ValidationError`` is about manifests (the operator's input); ``BadRequestError`` is about a
request (a remote peer's input) and carries the HTTP status a server should answer with.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["FieldError", "ValidationError", "BadRequestError", "short_repr"]


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem, in the API server's words.

    ``str()`` gives ``<Kind> <ns>/<name>: <field path>: <Type>: <value>: <detail>``; the value
    part is left out for ``Required value`` errors, as the API server does.
    """

    #: ``"Ingress default/web"`` (or a file name for errors found before an object exists).
    object: str
    #: ``spec.rules[0].http.paths[1].path``.
    field: str
    #: ``Required value``, ``Invalid value``, ``Unsupported value``, ``Forbidden``, ``Duplicate value``.
    type: str
    detail: str = ""
    value: Any = None
    has_value: bool = False
    #: The file the object came from, when known (for an error of a whole file: that file,
    #: the same as ``object``); ``str()`` then starts with it.
    source: str | None = None
    #: Print ``value`` as Go's ``json.Marshal`` does (see :func:`_render_value`): set for values
    #: the API server holds in a type other than ``string`` (a slice, a struct, a named string
    #: type such as ``PathType``), so ``value`` itself stays plain Python data.
    json_value: bool = False

    def __str__(self) -> str:
        # An error of a whole file has the file as both (named once).
        parts = [self.source, self.object] if self.source and self.source != self.object else [
            self.object]
        if self.field:
            # A map key holding a control character (a Secret's data key "\n") is written
            # escaped, as the value is: one error, one line.
            parts.append(_CONTROL.sub(_escape_control, self.field))
        parts.append(self.type)
        if self.has_value:
            parts.append(_go_json(self.value) if self.json_value else _render_value(self.value))
        if self.detail:
            parts.append(self.detail)
        return ": ".join(parts)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _escape_control(m: re.Match[str]) -> str:
    c = m.group()
    return _GO_ESCAPES.get(c) or f"\\x{ord(c):02x}"


_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
               "\t": "\\t", "\v": "\\v", '"': '\\"', "\\": "\\\\"}


def _go_quote(text: str) -> str:
    """Go's ``strconv.Quote`` (the API server prints string values with ``%q``): so a value
    holding a newline or a quote stays on its error's one line, unambiguous."""
    if text.isprintable() and '"' not in text and "\\" not in text:
        return f'"{text}"'
    out = []
    for ch in text:
        esc = _GO_ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) > 0xFFFF:
            out.append(f"\\U{ord(ch):08x}")
        else:
            out.append(f"\\u{ord(ch):04x}")
    return '"' + "".join(out) + '"'


def _render_value(value: Any) -> str:
    # field/errors.go ErrorBody: `case int64, int32, float64, float32, bool: fmt.Sprintf("%s: %v",
    # ...)`; `case string: fmt.Sprintf("%s: %q", ...)`; a nil value prints "null".
    if isinstance(value, str):
        return _go_quote(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"  # Go's %v, not Python's True/False
    if isinstance(value, int):
        return int_text(value)
    return str(value)


def int_text(n: int) -> str:
    """``str(n)``; for an integer str() refuses (more digits than sys.get_int_max_str_digits,
    4,300 by default: a ValueError, which printing an error must never raise; a Python int
    handed to ``Resources.from_dicts`` can be one) a stand-in that says so. str() raises
    before converting anything, so the test costs nothing."""
    try:
        return str(n)
    except ValueError:
        sign = "-" if n < 0 else ""
        return f"{sign}<an integer of more than {sys.get_int_max_str_digits()} digits>"


def key_text(key: Any) -> str:
    """A map key as a field path writes it (``metadata.labels[<key>]``): ``str()``, and
    :func:`int_text` for an integer."""
    if isinstance(key, int) and not isinstance(key, bool):
        return int_text(key)
    return str(key)


# encoding/json's string escaping beyond Python's json.dumps(ensure_ascii=False): HTMLEscape
# ("<", ">", "&" as \u003c, \u003e, \u0026) and U+2028/U+2029.
_GO_JSON_EXTRA = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
                                "\u2028": "\\u2028", "\u2029": "\\u2029"})


def _go_json(value: Any) -> str:
    """Go's ``json.Marshal(value)``: compact, non-ASCII kept as UTF-8, control characters as
    ``\\u00XX`` (``\\b \\f \\n \\r \\t`` short, as Go 1.22+), HTML characters escaped.

    field/errors.go ErrorBody prints with ``%q`` only values of Go type ``string`` and with
    ``%v`` simple numbers and bools; anything else takes the ``default:`` arm, ``jb, err :=
    json.Marshal(e.BadValue)``: a nil slice is ``null``, an empty one ``[]``, a named string
    type (``networking.PathType("<x>")``) ``"\\u003cx\\u003e"`` where ``%q`` would give ``"<x>"``.
    """
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError):
        return _render_value(value)  # not JSON data: printing an error must never raise
    return text.translate(_GO_JSON_EXTRA)


class ValidationError(ValueError):
    """Raised when manifests are invalid; ``errors`` lists every problem found.

    ``warnings`` are the fields the API server would drop from the same input (unknown ones,
    keys written twice: what ``Resources.warnings`` holds for a load that succeeds), kept
    because a typo is often why a field is missing (``pathtype`` -> ``pathType: Required
    value``). They are not part of the message: ``str(err)`` lists the errors only.
    """

    def __init__(self, errors: Iterable[FieldError], *,
                 warnings: Iterable[FieldError] = ()) -> None:
        self.errors: tuple[FieldError, ...] = tuple(errors)
        self.warnings: tuple[FieldError, ...] = tuple(warnings)
        super().__init__("\n".join(str(e) for e in self.errors))

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


class BadRequestError(ValueError):
    """A request that must be rejected; ``status_hint`` is the status to answer (400, 405, ...)."""

    def __init__(self, msg: str, status_hint: int = 400) -> None:
        super().__init__(msg)
        self.status_hint = status_hint


def short_repr(value: object) -> str:
    """``repr(value)``, cut to 60 characters: a wrong argument quoted in a TypeError (a list of
    manifests can be long)."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."
