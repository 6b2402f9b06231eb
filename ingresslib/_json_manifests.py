"""JSON manifest text -> its documents, as kubectl's decoder reads them.

One JSON object, an array of objects (each a document), or JSON values one after the other (a
stream, as kubectl's YAMLOrJSONDecoder reads ``jq -c`` output); with the keys each object
writes twice (``Collector.duplicates``) and kubectl's refusals: ``NaN``/``Infinity``, numbers
past float64's range or int()'s digit limit, nesting past :data:`_MAX_DEPTH`, each with its
line and column. Text that json refuses and that is not from a ``*.json`` file is left to the
YAML reader, from its start or after its first value (:mod:`._load`, which imports this
module; this one imports nothing of it).

The nesting bound and the digit limit are shared with the YAML reader, so they live here.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Iterator
from typing import Any

from ._decode import Collector
from ._errors import FieldError
from ._validate import INVALID

#: Nesting deeper than this is refused before any parser sees it. PyYAML's C loader composes
#: a node by recursing in C once per level and crashes the whole process (SIGSEGV) some 30,000
#: levels down; json and the code that walks a document recurse in Python and would raise
#: RecursionError near 1,000. go-yaml refuses 10,000 ("exceeded max depth"); a Kubernetes
#: object nests about 10 levels, an Ingress 12.
_MAX_DEPTH = 500
#: Up to this recursion limit (Python's default is 1,000) json's C scanner raises
#: RecursionError long before the end of an 8 MB C stack (it crashed between 50,000 and
#: 100,000 levels here, in a thread); above it, JSON nesting is bounded before json runs.
_JSON_SAFE_RECURSION = 10_000


def _past_str_digits(n: int) -> bool:
    """Whether int() refuses a decimal of ``n`` digits (sys.set_int_max_str_digits: 4,300 by
    default, never below 640; 0 is no limit)."""
    limit = sys.get_int_max_str_digits()
    return 0 < limit < n


def _out_of_range(text: str) -> str:
    return f"{text[:20]}...: number out of range ({len(text)} characters)"


#: What :func:`_json_documents` gives back: the numbered documents, the keys their objects
#: repeat (see :func:`_json_decoder`), and where in the text the YAML reader takes over (None:
#: nowhere, all of it was JSON).
JSONRead = tuple[list[tuple[int, Any]], dict[int, list[Any]], int | None]


def _json_documents(text: str, source: str, c: Collector, *, is_json: bool) -> JSONRead | None:
    """The numbered documents of JSON ``text``, read as kubectl's YAMLOrJSONDecoder reads a
    stream; None when the text is to be read as YAML from its start; errors go to ``c`` (and
    no document comes back).

    JSON values one after the other (`jq -c '.items[]'`) are a stream, each value a document
    (a single array: each element one). Text that is not from a ``*.json`` file and whose
    first value json refuses is YAML; whose second value it refuses, the first value is JSON
    and the rest YAML; past two values it stays JSON (see :func:`_switch_to_yaml`). A
    ``*.json`` file is JSON throughout. A number out of float64's range is no syntax error
    (kubectl reads the syntax first, the numbers when it decodes the object): an error for
    any file, never a reason to read YAML.

    Nesting is checked after json has parsed the text, on the objects: json's C scanner stops
    at Python's recursion limit with a RecursionError (no crash), and a walk of the parsed
    containers costs a tenth of the libyaml event pass :func:`_too_deep` makes over the text,
    which was half the load of a 10,000-rule JSON List (any JSON file with more than 500
    brackets went through it)."""
    if sys.getrecursionlimit() > _JSON_SAFE_RECURSION and \
            _brackets(text, 0, len(text)) > _MAX_DEPTH:
        # json's C scanner stops at the recursion limit, not at the end of the C stack: a
        # program that raised the limit crashes (SIGSEGV) on JSON some 100,000 levels deep.
        # Then the nesting is bounded before json sees the text: a bracket scan that skips
        # JSON strings counts at least the depth json would reach (up to json's first syntax
        # error it follows the same text), streams included. (YAML that starts with a bracket
        # and has more than 500 levels of brackets outside double-quoted strings, in a
        # comment say, is refused too: the YAML path would need the same bound first.)
        deep = _json_past(text)
        if deep is not None:
            c.error(_too_deep_error(source, deep), None)
            return [], {}, None
    # A lone surrogate escape read as Go reads it, in every string and key (two keys that
    # become one are a repeat, as the API server sees them).
    text = _go_surrogates(text)
    decoder, duplicates = _json_decoder()
    try:
        docs, bracketed, failed = _json_stream(decoder, text)
    except RecursionError:
        c.error(_too_deep_error(source, _json_too_deep(text)), None)
        return [], {}, None
    yaml_from = None
    if failed is not None:
        exc, end, pos = failed
        if not is_json and not isinstance(exc, _NumberError) and len(docs) < 2:
            if not docs:
                return None
            yaml_from = _switch_to_yaml(text, end, pos)
        else:
            where = "line {}, column {}".format(*_line_column(text, exc.pos))
            detail = exc.msg if isinstance(exc, _NumberError) else f"JSON syntax error: {exc.msg}"
            c.error(FieldError(source, where, INVALID, detail), None)
            return [], {}, None
    if any(_nested_past(d, _MAX_DEPTH) for d in bracketed):
        c.error(_too_deep_error(source, _json_too_deep(text)), None)
        return [], {}, None
    if len(docs) == 1 and isinstance(docs[0], list) and yaml_from is None:
        docs = docs[0]  # a bare JSON array of objects: each element is a document
    return list(enumerate(docs, 1)), duplicates, yaml_from


def _switch_to_yaml(text: str, end: int, pos: int) -> int:
    """Where the YAML reader starts when json refused the second value of ``text`` (at
    ``pos``; the first ends at ``end``). kubectl's YAMLOrJSONDecoder (apimachinery util/yaml,
    since 1.33) keeps the first value as JSON ("If we found 0 or 1 JSON object(s), this stream
    is still ambiguous"), then reads the rest as YAML after "any whitespace we find, up to and
    including the first newline" (``consumeWhitespace``); with two values read it returns the
    JSON error ("an unambiguous JSON stream, and we should not switch to YAML")."""
    newline = text.find("\n", end, pos)  # (only JSON whitespace lies between)
    return newline + 1 if newline >= 0 else pos


def _brackets(text: str, start: int, end: int) -> int:
    """A bound on the nesting of the JSON in ``text[start:end]`` (strings' brackets counted
    too): two counts in C, so that most documents are not walked at all."""
    return text.count("[", start, end) + text.count("{", start, end)


def _nested_past(doc: Any, limit: int) -> bool:
    """Whether parsed JSON ``doc`` nests containers more than ``limit`` deep (the top one is
    level 1, as :func:`_too_deep` counts). An explicit stack: the document may be deep."""
    if type(doc) is not dict and type(doc) is not list:
        return False
    stack: list[tuple[Any, int]] = [(doc, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        node, depth = pop()
        if depth > limit:
            return True
        for child in (node.values() if type(node) is dict else node):
            if type(child) is dict or type(child) is list:
                push((child, depth + 1))
    return False


# A JSON string (skipped whole) or a bracket.
_JSON_BRACKET = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def _json_too_deep(text: str) -> tuple[int, int]:
    """(line, column) of the bracket that opens level ``_MAX_DEPTH + 1`` of JSON ``text``
    (only for text known to nest that deep: a pass over its brackets in Python)."""
    return _json_past(text) or (1, 1)


def _json_past(text: str) -> tuple[int, int] | None:
    """:func:`_json_too_deep`, None when the brackets outside strings never open that level."""
    depth = 0
    for m in _JSON_BRACKET.finditer(text):
        ch = m.group()
        if ch in "[{":
            depth += 1
            if depth > _MAX_DEPTH:
                at = m.start()
                return _line_column(text, at)
        elif ch in "]}":
            depth -= 1
    return None


def _line_column(text: str, at: int) -> tuple[int, int]:
    """The 1-based line and column of ``text[at]``, a line ending at ``\\n``, ``\\r\\n`` or a
    lone ``\\r``: as the YAML reader counts them for the same file, and editors show them.
    (Python's json counts ``\\n`` only: a file written with lone ``\\r`` line ends was all on
    line 1. Go's json names a byte offset, no line.)"""
    head = text[:at]
    if head.endswith("\r") and text.startswith("\n", at):
        head = head[:-1] + " "  # the \r of a \r\n: the line ends at its \n
    head = head.replace("\r\n", "\n").replace("\r", "\n")
    return head.count("\n") + 1, len(head) - head.rfind("\n")


def _too_deep_error(source: str, where: tuple[int, int]) -> FieldError:
    return FieldError(source, f"line {where[0]}, column {where[1]}", INVALID,
                      f"nested more than {_MAX_DEPTH} levels deep")


_json_space = re.compile(r"[ \t\n\r]*").match  # RFC 8259 §2 whitespace, as json.Decoder skips


class _Constant(ValueError):
    """json met ``NaN``, ``Infinity`` or ``-Infinity`` (see :func:`_no_constant`)."""


def _no_constant(name: str) -> Any:
    # Python's json reads these three words as floats; JSON has no such values (RFC 8259 §6:
    # "Numeric values that cannot be represented in the grammar below (such as Infinity and
    # NaN) are not permitted") and Go's encoding/json, behind kubectl and the API server,
    # stops at them: "invalid character 'N' looking for beginning of value". Called by json's
    # C scanner only when it meets one: documents without them pay nothing.
    raise _Constant(name)


# A JSON string (skipped: "NaN" inside one is text) or one of the words json took.
_JSON_CONSTANT = re.compile(r'"(?:[^"\\]|\\.)*"|(NaN|-?Infinity)', re.DOTALL)


def _constant_error(text: str, start: int) -> json.JSONDecodeError:
    """The syntax error Go reports for the first ``NaN``/``Infinity`` of the JSON value that
    starts at ``start`` (json stopped there; what comes before it is valid JSON, so skipping
    strings finds it), at the character Go names."""
    for m in _JSON_CONSTANT.finditer(text, start):
        word = m.group(1)
        if word is not None:
            at = m.start(1) + (word[0] == "-")  # Go: "invalid character 'I' in numeric literal"
            where = "in numeric literal" if word[0] == "-" else "looking for beginning of value"
            return json.JSONDecodeError(
                f"{word} is not a JSON value (kubectl: invalid character {text[at]!r} {where})",
                text, at)
    return json.JSONDecodeError("NaN or Infinity is not a JSON value", text, start)


# A JSON string (skipped) or an integer (json makes it an int; a fraction or an exponent, a
# float).
_JSON_INTEGER = re.compile(r'"(?:[^"\\]|\\.)*"|(?<![0-9.eE+-])(-?[0-9]+)(?![0-9.eE])',
                           re.DOTALL)


def _long_int_error(text: str, start: int) -> json.JSONDecodeError:
    """The error for the integer json's int() refused (more digits than
    sys.get_int_max_str_digits: "Exceeds the limit (4300 digits) for integer string
    conversion", a ValueError that is no JSONDecodeError) in the JSON value at ``start``:
    far out of the range of Go's float64, which kubectl reads numbers into."""
    for m in _JSON_INTEGER.finditer(text, start):
        number = m.group(1)
        if number is not None and _past_str_digits(len(number.lstrip("-"))):
            return json.JSONDecodeError(_out_of_range(number), text, m.start(1))
    return json.JSONDecodeError("number out of range", text, start)


class _OutOfRange(ValueError):
    """json read a number float64 cannot hold (see :func:`_float64`)."""


class _NumberError(json.JSONDecodeError):
    """A number of syntactically valid JSON that kubectl cannot decode (see
    :func:`_number_error`): an error of the file, not a syntax error."""


def _float64(number: str) -> int | float:
    # parse_float (a number with a fraction or an exponent). Python's float() makes `1e400`
    # inf; Go's strconv.ParseFloat returns ErrRange, and kubectl (sigs.k8s.io/json, as the API
    # server) refuses the object: "json: cannot unmarshal number 1e400 into Go value of type
    # float64". Underflow (`1e-400`) is 0 for both.
    f = float(number)
    if f - f != 0.0:  # inf (json hands no NaN here)
        raise _OutOfRange(number)
    if f.is_integer() and -1e21 < f < 1e21:
        # kubectl reads the file into an unstructured object (a float64 80 for `80.0` or
        # `8e1`) and sends json.Marshal of it, which writes an integral float64 below 1e21
        # without a fraction: the API server reads `80`, an int32 port takes it. As the YAML
        # reader reads `port: 80.0` (_load._json_number).
        return int(f)
    return f


def _int(number: str) -> int:
    # parse_int. Go reads an integer past int64 as a float64: one past float64's range is
    # refused as `1e400` is. Up to 308 digits it is below 1e308, inside the range; from 309
    # digits on it may be past it (float64's largest is 1.79...e308: "9" * 309 is refused),
    # so those are read as a float. (int() raises its own ValueError past its digit limit,
    # 4,300 by default, first: see _long_int_error.)
    n = int(number)
    if len(number) > 308:  # (with a minus sign: 308 digits, always inside; the test is cheap)
        _float64(number)
    return n


# A JSON string (skipped) or a number.
_JSON_NUMBER = re.compile(
    r'"(?:[^"\\]|\\.)*"|(-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?)', re.DOTALL)
# Syntax only: numbers kept as text, so that none is refused.
_SYNTAX_ONLY = json.JSONDecoder(parse_int=str, parse_float=str, parse_constant=_no_constant)


def _number_error(text: str, start: int, exc: ValueError) -> json.JSONDecodeError:
    """The error for the JSON value at ``start``, on which json stopped at a number (``exc``:
    :class:`_OutOfRange`, or int()'s digit limit). kubectl reads a file's syntax first (its
    YAMLOrJSONDecoder into a RawExtension) and the numbers only when it decodes the object: a
    syntax error later in the value is that value's error (which may send the text to the
    YAML reader); else a :class:`_NumberError` at the number."""
    try:
        _SYNTAX_ONLY.raw_decode(text, start)
    except _Constant:
        return _constant_error(text, start)
    except json.JSONDecodeError as syntax:
        return syntax
    if not isinstance(exc, _OutOfRange):
        long = _long_int_error(text, start)
        return _NumberError(long.msg, text, long.pos)
    number = exc.args[0]
    detail = _out_of_range(number) if len(number) > 40 else (
        f"{number}: number out of range (kubectl: json: cannot unmarshal number {number} into "
        "Go value of type float64)")
    # What precedes the number is valid JSON: the first number of that text outside strings
    # is the one json stopped at.
    at = next((m.start(1) for m in _JSON_NUMBER.finditer(text, start) if m.group(1) == number),
              start)
    return _NumberError(detail, text, at)


def _json_stream(decoder: json.JSONDecoder, text: str
                 ) -> tuple[list[Any], list[Any], tuple[json.JSONDecodeError, int, int] | None]:
    """The JSON values of ``text``, one after the other, those of them with more than
    ``_MAX_DEPTH`` brackets (which may nest too deep), and the first failure if one stops the
    reading: (the error, with its line and column in ``text``; where the last value read
    ends; where the failed one starts). The error is a :class:`_NumberError` for a value that
    is valid JSON holding a number Go cannot read. Eager, so that a broken value reports its
    error before any document is handed on."""
    docs: list[Any] = []
    bracketed: list[Any] = []
    end = len(text)
    value = decoder.raw_decode
    last = 0
    pos = _json_space(text, 0).end()  # type: ignore[union-attr]
    while pos < end:
        try:
            doc, next_pos = value(text, pos)
        except _Constant:
            return docs, bracketed, (_constant_error(text, pos), last, pos)
        except json.JSONDecodeError as exc:
            return docs, bracketed, (exc, last, pos)
        except ValueError as exc:
            return docs, bracketed, (_number_error(text, pos, exc), last, pos)
        docs.append(doc)
        if _brackets(text, pos, next_pos) > _MAX_DEPTH:
            bracketed.append(doc)
        last = next_pos
        pos = _json_space(text, next_pos).end()  # type: ignore[union-attr]
    return docs, bracketed, None


#: A JSON escape of a UTF-16 surrogate (``\ud800``-``\udfff``), or a high one and a low one
#: (a pair, 12 characters): only text holding one can decode to a lone surrogate (a raw one is
#: refused before JSON is read: no UTF-8 text holds one, ``_load._lone_surrogate``).
_SURROGATE_ESCAPE = re.compile(
    r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _go_surrogates(text: str) -> str:
    """``text`` with each lone surrogate escape written ``\\ufffd``: what Go's encoding/json
    decodes it to ("invalid UTF-16 surrogate pairs are not treated as an error. Instead, they
    are replaced by the Unicode replacement character U+FFFD", sigs.k8s.io/json decode.go,
    behind kubectl and the API server), where Python's json keeps a lone surrogate. Every
    string, key and document alike; an escaped pair stays one character (both read it so).
    Six characters for six: every offset (an error's line and column, where YAML takes over)
    is the same in both texts. Text without a surrogate escape is returned as it is, after a
    search for a backslash (memchr: most manifests hold none).

    Only the surrogate escapes are visited, not every escape (a Python call for each ``\\"``
    of a kubectl last-applied-configuration annotation nearly doubled the load of a JSON
    export holding one emoji): a ``\\u`` is an escape when an even number of backslashes
    precedes it (an odd one: the first backslash is escaped, ``"\\\\udce9"`` is the text
    ``\\udce9``). Each run of backslashes is counted once (runs end at the matches)."""
    at = text.find("\\")
    if at < 0:
        return text
    found = _SURROGATE_ESCAPE.search(text, at)
    if found is None:
        return text
    parts: list[str] = []
    done = 0  # text[:done] is in parts
    last = 0  # where the previous match ended: no run of backslashes reaches past it
    for m in _SURROGATE_ESCAPE.finditer(text, found.start()):
        start, end = m.span()
        before = text[last:start]
        last = end
        escape = (len(before) - len(before.rstrip("\\"))) % 2 == 0
        if end - start == 12:
            if escape:
                continue  # a pair: one character
            start += 6  # JSON "\\ud800\udc00": the text \ud800, then a lone low escape
        elif not escape:
            continue  # an escaped backslash, then "u..."
        parts.append(text[done:start])
        parts.append("\\ufffd")
        done = end
    if not parts:
        return text
    parts.append(text[done:])
    return "".join(parts)


def _json_decoder() -> tuple[json.JSONDecoder, dict[int, list[Any]]]:
    """A JSON decoder that notes the keys written twice in one object, and where it notes them:
    ``{id(object): [key, ...]}``, what the YAML loader gives ``Collector.duplicates``.

    json keeps the last value of a repeated key without a word, as PyYAML does; the API
    server's decoder reports it for JSON bodies too (sigs.k8s.io/json: ``duplicate field
    "..."``). Building each object from its pairs costs json's C scanner a list of tuples and
    one call per object: about +50 % on the JSON parse itself, a few percent of a load."""
    found: dict[int, list[Any]] = {}
    # The pairs of an object with a repeated key hold the values its dict dropped: kept alive
    # with them, so no later object of the parse can take the id of a dropped one that was
    # itself noted (``found`` is keyed by id).
    keep: list[Any] = []

    def pairs_to_dict(pairs: list[tuple[str, Any]], dict: Any = dict, len: Any = len) -> Any:
        # (builtins as defaults: local lookups, once per object of the input)
        obj = dict(pairs)
        if len(obj) != len(pairs):
            found[id(obj)] = _repeated_pair_keys(pairs)
            keep.append(pairs)
        return obj

    return json.JSONDecoder(object_pairs_hook=pairs_to_dict, parse_constant=_no_constant,
                            parse_float=_float64, parse_int=_int), found


def _repeated_pair_keys(pairs: list[tuple[str, Any]]) -> list[str]:
    """The keys written more than once among ``pairs``, each once, in order."""
    seen: set[str] = set()
    # (a dict, not a list searched at each repeat: an object of n keys written twice took
    # time in n squared, a minute for a 2 MB file)
    repeated: dict[str, None] = {}
    for key, _ in pairs:
        if key in seen:
            repeated[key] = None
        else:
            seen.add(key)
    return list(repeated)


def _with_duplicates(c: Collector, docs: Iterable[tuple[int, Any]],
                     duplicates: dict[int, list[Any]]) -> Iterator[tuple[int, Any]]:
    """``docs``, with ``c.duplicates`` set while each is added (see ``_documents``). One
    map serves every document of the input: the objects noted are all alive, their ids
    distinct."""
    for n, doc in docs:
        c.duplicates = duplicates or None
        try:
            yield n, doc
        finally:
            c.duplicates = None
