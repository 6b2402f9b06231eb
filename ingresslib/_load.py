"""Manifest files and text -> :class:`Resources`.

YAML (multi-document) or JSON (one object, an array of objects, or objects one after the
other as kubectl reads a JSON stream), files or folders; every problem of every file is
collected into one :class:`ValidationError`. Errors found before an object exists name the
file as ``object`` and the place as ``field``:

- YAML/JSON syntax: ``deploy/web.yaml: line 12, column 3: Invalid value: YAML syntax error: ...``
  (line and column 1-based; ``JSON syntax error`` for ``*.json`` files), a character YAML does
  not allow too: ``... line 6, column 9: Invalid value: YAML syntax error: unacceptable
  character #x001b: control characters are not allowed``;
- bytes that are not UTF-8 (nor UTF-16 after its byte order mark), at the first bad byte:
  ``deploy/web.yaml: line 4, column 12: Invalid value: not valid UTF-8: byte 0xE9 at offset
  50``;
- a ``str`` no UTF-8 file can be (a lone surrogate, from text decoded with
  ``errors="surrogateescape"``): ``<text>: line 3, column 21: Invalid value: not valid UTF-8:
  lone surrogate U+DCE9``;
- a value JSON cannot carry (kubectl's YAML-to-JSON step refuses the file): ``deploy/web.yaml:
  line 7, column 13: Invalid value: .inf: not a JSON number (kubectl: json: unsupported value:
  +Inf)``; a map key it cannot write: ``... Invalid value: 9223372036854775808: not a JSON map
  key (kubectl: unsupported map key of type: uint64)`` (null keys too);
- ``NaN``/``Infinity`` in a ``*.json`` file (JSON has no such values; Python's json reads them):
  ``deploy/web.json: line 3, column 12: Invalid value: JSON syntax error: NaN is not a JSON
  value (kubectl: invalid character 'N' looking for beginning of value)``. Other text that
  only looks like JSON is read as YAML when json refuses it, as kubectl does since 1.33
  (kubernetes/kubernetes#130666): there a plain ``NaN`` is the string "NaN", as go-yaml reads
  it (json refusing the second value of a stream, the rest is YAML; from the third on, the
  stream stays JSON);
- a JSON number Go cannot read, in any file: ``deploy/web.json: line 3, column 12: Invalid
  value: 1e400: number out of range (kubectl: json: cannot unmarshal number 1e400 into Go
  value of type float64)``; a YAML integer past float64's range the same way (go-yaml keeps
  it, the cluster's JSON decoder refuses it): ``... Invalid value: 99999999999999999999...:
  number out of range (310 characters)``;
- a document that is not a mapping: ``deploy/web.yaml: document 2: Invalid value: expected an
  object, got string`` (documents counted from 1, empty ones included); one without a kind:
  ``deploy/web.yaml: document 2: kind: Required value: ...``, with a kind that is no string:
  ``... document 2: kind: Invalid value: 5: expected string, got integer``; text without a
  ``source`` is named ``<text>`` in all of these, as in its syntax errors;
- a missing path: ``deploy/missing.yaml: Not found: no such file or directory`` (also a file or
  a folder removed between the listing of its folder and its reading, as kubectl's walk does);
- a folder that cannot be listed: ``deploy/private: Invalid value: cannot list the folder:
  Permission denied`` (the words ``serve`` uses for it);
- an empty path (``-f ''``): ``"": Not found: an empty path names no file or folder (use "."
  for the current folder)``.

Errors inside an object keep the contract form ``Ingress default/web`` in ``FieldError.object``
and carry the file in ``.source``; ``str()`` prints ``deploy/web.yaml: Ingress default/web: ...``.
"""

from __future__ import annotations

import binascii
import dataclasses
import math
import os
import re
import struct
from collections.abc import Callable, Hashable, Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from ._decode import Collector, _jtype  # (one naming of types: "got integer" everywhere)
from ._errors import FieldError
from ._json_manifests import (_MAX_DEPTH, _json_documents, _line_column, _out_of_range,
                              _past_str_digits, _too_deep_error, _with_duplicates)
from ._resources import Resources
from ._validate import INVALID

__all__ = ["load_manifests", "parse_manifests", "collect_files", "collect_text", "read_documents",
           "MANIFEST_SUFFIXES", "no_ingress_warning"]

#: Files picked up inside folders (files named explicitly are read whatever their name).
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


def no_ingress_warning(paths: Sequence[str]) -> str:
    """What ``check`` and ``serve`` say when ``paths`` hold no Ingress (a folder of READMEs,
    an empty file, a wrong path: "ok" alone would read as "your Ingresses are valid")."""
    return "no Ingress in " + ", ".join(paths) + (
        " (folders are searched for *.yaml, *.yml and *.json files)"
        if any(os.path.isdir(p) for p in paths) else "")

_BaseLoader: Any = yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader

# --- plain scalars as kubectl reads them -------------------------------------------------------
#
# kubectl (and the API server for YAML bodies) turns YAML into JSON with sigs.k8s.io/yaml:
# go-yaml v2 (its fork goyaml.v2) decodes into interface{}, convertToJSONableObject makes every
# map key a string, json.Marshal writes the JSON the cluster decodes. PyYAML's YAML 1.1 resolver
# reads some plain scalars otherwise, so the same file would be another object here: `y`/`n`
# are booleans there (strings in PyYAML), `12:30` a string (base-60 750 in PyYAML), `0o17`,
# `1e3`, `+.5` numbers (strings in PyYAML), `=` a string (an error in PyYAML). The resolver
# below is go-yaml v2's `resolve` (goyaml.v2/resolve.go), the mapping constructor its merge
# order and the JSON key conversion; values become what the cluster decodes from the JSON.

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_MERGE = "tag:yaml.org,2002:merge"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"

# go-yaml's resolveTable: the first character says what a plain scalar may be ("M": a word of
# resolveMap; "D"/"S": a number; "."; anything else is a string without looking further).
_HINT = {c: "M" for c in "yYnNtTfFoO~"}
_HINT.update({c: "D" for c in "0123456789"}, **{"+": "S", "-": "S", ".": ".", "": "M", "<": "M"})

_WORDS: dict[str, tuple[str, Any]] = {}
for _words, _tag, _value in (
    ("y Y yes Yes YES true True TRUE on On ON", _BOOL, True),
    ("n N no No NO false False FALSE off Off OFF", _BOOL, False),
    ("~ null Null NULL", _NULL, None),
    (".nan .NaN .NAN", _FLOAT, math.nan),
    (".inf .Inf .INF +.inf +.Inf +.INF", _FLOAT, math.inf),
    ("-.inf -.Inf -.INF", _FLOAT, -math.inf),
    # (go-yaml takes a plain `<<` key as a merge by its text, isMerge; it is a string elsewhere)
    ("<<", _MERGE, "<<"),
):
    for _w in _words.split():
        _WORDS[_w] = (_tag, _value)
_WORDS[""] = (_NULL, None)

# strconv.ParseInt/ParseUint(s, 0, 64), on the text without its underscores (go-yaml drops
# them all first): a sign (ParseInt only), then 0b/0o/0x (either case), 0 (octal) or decimal.
_GO_INT = re.compile(r"([-+]?)(0[bB][01]+|0[oO][0-7]+|0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")
_GO_BASES = {"b": 2, "B": 2, "o": 8, "O": 8, "x": 16, "X": 16}
_YAML_STYLE_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
# strconv.ParseFloat of a scalar starting with ".": underscores only between digits.
_DOT_FLOAT = re.compile(r"\.[0-9](?:_?[0-9])*(?:[eE][-+]?[0-9](?:_?[0-9])*)?")
_BIN_TAIL = re.compile(r"[-+]?[01]+")
_INT64 = 1 << 63


def _go_scalar(value: str) -> tuple[str, Any]:
    """(tag, value) of a plain scalar as go-yaml v2 resolves it into interface{}.

    Timestamps (``2001-12-14``) are left out: go-yaml resolves them, then sets a string in an
    interface{} ("for backward compatibility ... we set it as a string"), and no text both
    starts with four digits and a dash and is a number."""
    hint = _HINT.get(value[:1])
    if hint is None:
        return _STR, value
    word = _WORDS.get(value)
    if word is not None:
        return word
    if hint == "M":
        return _STR, value
    if hint == ".":
        if _DOT_FLOAT.fullmatch(value):
            f = float(value)
            if math.isfinite(f):  # ParseFloat: out of range is an error
                return _FLOAT, f
        return _STR, value
    plain = value.replace("_", "")
    m = _GO_INT.fullmatch(plain)
    big = False
    n = 0
    if m is not None:
        sign, digits = m.groups()
        if len(digits) > 640 and digits[0] != "0" and _past_str_digits(len(digits)):
            # A decimal int() will not convert (ValueError: "Exceeds the limit (4300 digits)
            # for integer string conversion", a traceback out of the load): far out of
            # int64/uint64 range, go-yaml's big.Int without a sign, none of JSON's numbers
            # (:func:`_construct_int` refuses it); with one, a float out of range: a string.
            if not sign:
                return _INT, None
        else:
            n = int(digits[2:], _GO_BASES[digits[1]]) if digits[1:2].isalpha() else \
                int(digits, 8 if digits[0] == "0" else 10)
            if sign == "-":
                n = -n
            if -_INT64 <= n < _INT64 or (not sign and n < 2 * _INT64):  # ParseInt, ParseUint
                return _INT, n
            big = not sign  # ParseUint's range error: the fork's big.Int, after the float
    if _YAML_STYLE_FLOAT.fullmatch(plain):
        f = float(plain)
        if math.isfinite(f):
            return _FLOAT, f
    if plain[:2] == "0b" and _BIN_TAIL.fullmatch(plain, 2):
        n = int(plain[2:], 2)
        if -_INT64 <= n < _INT64 or (plain[2] in "01" and n < 2 * _INT64):
            return _INT, n
    elif plain[:3] == "-0b" and _BIN_TAIL.fullmatch(plain, 3) and plain[3] in "01":
        n = -int(plain[3:], 2)
        if n >= -_INT64:
            return _INT, n
    if big:
        return _INT, n
    return _STR, value


class _NotJSON(yaml.constructor.ConstructorError):
    """A value JSON cannot carry (NaN, infinities): kubectl's json.Marshal refuses the
    document ("json: unsupported value: NaN"); or a map key it cannot write (:func:`_key`)."""


def _json_number(f: float, node: yaml.Node) -> int | float:
    """The number the cluster reads for float ``f``: Go's json.Marshal writes a float64 of
    integral value below 1e21 without a fraction (``80.0`` -> ``80``), which the API server
    reads as an integer (an int32 port accepts it)."""
    if f.is_integer():
        if abs(f) < 1e21:
            return int(f)
    elif not math.isfinite(f):
        raise _NotJSON(None, None, f"{node.value}: not a JSON number (kubectl: json: unsupported "
                       f"value: {'NaN' if f != f else '+Inf' if f > 0 else '-Inf'})",
                       node.start_mark)
    return f


def _wrong_tag(node: yaml.Node, got: str) -> yaml.constructor.ConstructorError:
    # go-yaml: "cannot decode !!str `12:30` as a !!int"
    def short(tag: str) -> str:
        return "!!" + tag.rsplit(":", 1)[-1]
    return yaml.constructor.ConstructorError(
        None, None, f"cannot decode {short(got)} `{node.value}` as a {short(node.tag)}",
        node.start_mark)


def _past_float64(n: int) -> bool:
    """Whether integer ``n`` is past float64's range (rounded as strconv.ParseFloat rounds)."""
    if -_INT64 <= n < 2 * _INT64:
        return False
    try:
        float(n)
    except OverflowError:
        return True
    return False


def _construct_int(loader: Any, node: yaml.Node) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        # `!!int [1]`: go-yaml decodes a collection by its kind, whatever its tag; here
        # _go_scalar got the node's list of children ("TypeError: unhashable type: 'list'"
        # out of the load). The same for the other scalar tags below.
        return _construct_other(loader, node)
    tag, value = _go_scalar(node.value)
    if tag != _INT:  # only an explicit !!int tag gets here with another text
        raise _wrong_tag(node, tag)
    if value is None or (not -_INT64 <= value < 2 * _INT64 and _past_float64(value)):
        # Past uint64 go-yaml's fork keeps a *big.Int, which json.Marshal writes as its
        # digits; the cluster reads a number past int64 as a float64 and refuses one past
        # its range ("json: cannot unmarshal number ... into Go value of type float64"), as
        # the same number in JSON is refused (_json_manifests._int). (The range test is
        # inline: every integer of a manifest comes here.)
        raise _NotJSON(None, None, _out_of_range(node.value), node.start_mark)
    return int(value)


def _construct_float(loader: Any, node: yaml.Node) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        return _construct_other(loader, node)
    return _json_number(float(_float_tagged(node)), node)


def _float_tagged(node: yaml.ScalarNode) -> Any:
    """go-yaml's resolve of a ``!!float`` scalar: a float, or an integer it turns into one.

    Only an int or int64 is turned (resolve's deferred check: ``case int64: ... case int:
    rtag = yaml_FLOAT_TAG; out = float64(v)``); a uint64 (2^63 to 2^64-1) or a *big.Int (a
    hex, octal or binary one past uint64, or any past float64) fails the document: "cannot
    decode !!int `18446744073709551615` as a !!float"."""
    tag, value = _go_scalar(node.value)
    if tag not in (_FLOAT, _INT):
        raise _wrong_tag(node, tag)
    if tag == _INT and (value is None or not -_INT64 <= value < _INT64):
        if value is None or _past_float64(value):
            # (float() of such an integer raised OverflowError, a traceback out of the load)
            raise _NotJSON(None, None, _out_of_range(node.value), node.start_mark)
        raise _wrong_tag(node, _INT)
    return value


def _construct_bool(loader: Any, node: yaml.Node) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        return _construct_other(loader, node)
    tag, value = _go_scalar(node.value)
    if tag != _BOOL:
        raise _wrong_tag(node, tag)
    return bool(value)


def _construct_text(loader: Any, node: yaml.Node) -> Any:
    """``!!timestamp`` (go-yaml sets the text in an interface{}) and a `<<` that is not a key."""
    if not isinstance(node, yaml.ScalarNode):
        return _construct_other(loader, node)
    return str(loader.construct_scalar(node))


def _go_float_key(f: float) -> str:
    """``strconv.FormatFloat(f, 'g', -1, 32)`` with go-yaml's names for the non-finite ones:
    how convertToJSONableObject writes a float map key (``1.5: a`` is the key "1.5")."""
    try:
        f32 = struct.unpack("f", struct.pack("f", f))[0]
    except OverflowError:
        f32 = math.copysign(math.inf, f)
    if math.isnan(f32):
        return ".nan"
    if math.isinf(f32):
        return ".inf" if f32 > 0 else "-.inf"
    sign = "-" if math.copysign(1.0, f32) < 0 else ""
    if f32 == 0:
        return sign + "0"
    text = ""
    for precision in range(1, 10):  # the shortest digits that read back as the same float32
        text = f"{abs(f32):.{precision - 1}e}"
        if struct.unpack("f", struct.pack("f", float(text)))[0] == abs(f32):
            break
    mantissa, exp_text = text.split("e")
    digits = mantissa.replace(".", "")
    exp = int(exp_text)
    if exp < -4 or exp >= 6:  # %e, at least two exponent digits
        frac = "." + digits[1:] if len(digits) > 1 else ""
        return f"{sign}{digits[0]}{frac}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if exp < 0:
        return f"{sign}0.{'0' * (-exp - 1)}{digits}"
    whole, frac = digits[:exp + 1].ljust(exp + 1, "0"), digits[exp + 1:]
    return f"{sign}{whole}.{frac}" if frac else sign + whole


def _key(loader: Any, node: yaml.Node) -> Any:
    """A mapping key as JSON has it: convertToJSONableObject writes int, bool and float keys
    as strings (``1`` -> "1", ``true``/``y`` -> "true", ``1.5`` -> "1.5"), so ``1: a`` and
    ``true: b`` stay two keys (one, ``1``, in a Python dict).

    A key it has no case for refuses the document, as kubectl does ("error converting YAML to
    JSON: unsupported map key of type: uint64"): null, and an integer out of int64 range,
    which go-yaml v2's resolve makes a uint64 (below 2^64) or a *big.Int (a hex or octal
    one beyond; a decimal one beyond is a float64, a float key here)."""
    tag = node.tag
    if tag == _STR and isinstance(node, yaml.ScalarNode):
        # (A collection tagged ``!!str``, ``!!str [a]: 1``, is constructed below, which refuses
        # it: its value is a list of nodes, which as a key was a TypeError, "unhashable".)
        return node.value
    if tag == _FLOAT and isinstance(node, yaml.ScalarNode):
        return _go_float_key(float(_float_tagged(node)))
    if tag == _INT and isinstance(node, yaml.ScalarNode):
        # An integer key past float64 is refused below as convertToJSONableObject refuses a
        # *big.Int key, before any JSON number is read (not as _construct_int refuses it).
        itag, value = _go_scalar(node.value)
        key = value if itag == _INT and value is not None else loader.construct_object(node)
    else:
        key = loader.construct_object(node)
    if key is True or key is False:
        return "true" if key else "false"
    if type(key) is int:
        if -_INT64 <= key < _INT64:
            return str(key)
        raise _NotJSON(None, None, f"{node.value}: not a JSON map key (kubectl: unsupported map "
                       f"key of type: {'uint64' if key < 2 * _INT64 else '*big.Int'})",
                       node.start_mark)
    if key is None:
        raise _NotJSON(None, None, f"{node.value or 'null'}: not a JSON map key (kubectl: "
                       "unsupported map key of type: <nil>)", node.start_mark)
    if not isinstance(key, Hashable):
        raise yaml.constructor.ConstructorError(
            "while constructing a mapping", None, "found unhashable key", node.start_mark)
    return key


def _fill(loader: Any, node: yaml.MappingNode, data: dict[Any, Any], merging: tuple[int, ...]) -> int:
    """Set ``node``'s pairs in ``data`` in the order written, go-yaml v2's order: a merge
    (``<<: *base``) sets the keys of its maps where it stands (a key written before it is
    overridden, one after it overrides; of a list of maps, the first wins), as
    decoder.mapping/merge do. Returns the number of keys written, -1 when a merge took part."""
    construct = loader.construct_object
    written = 0
    for key_node, value_node in node.value:
        if key_node.tag == _MERGE:
            _merge(loader, key_node, value_node, data, merging + (id(node),))
            continue
        data[_key(loader, key_node)] = construct(value_node)
        written += 1
    return written if len(node.value) == written else -1


def _merge(loader: Any, key: yaml.Node, value: yaml.Node, data: dict[Any, Any],
           merging: tuple[int, ...]) -> None:
    if isinstance(value, yaml.SequenceNode) and value.start_mark.index < key.start_mark.index:
        # An alias (its node starts before the key that names it; an inline value cannot):
        # go-yaml's merge takes an alias only of a map ("case aliasNode: if n.alias.kind !=
        # mappingNode { failWantMap() }"), not of a sequence of maps, so kubectl refuses it.
        raise yaml.constructor.ConstructorError(
            "while constructing a mapping", None,
            "map merge requires map or sequence of maps as the value", key.start_mark)
    sources = reversed(value.value) if isinstance(value, yaml.SequenceNode) else [value]
    for src in sources:
        if not isinstance(src, yaml.MappingNode):
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping", None,
                "map merge requires map or sequence of maps as the value", src.start_mark)
        if id(src) in merging:
            raise yaml.constructor.ConstructorError(
                None, None, "a merged map contains itself", src.start_mark)
        # Each map is flattened once and its result reused: setting its pairs one by one, last
        # write winning, is an ``update`` with that result. Going through them again at every
        # merge took time exponential in the depth of merges of merges (twelve short lines,
        # each merging the one before ten times, ran for hours; go-yaml's alias budget does not
        # stop that shape either, it decodes slowly to the same result).
        # (The node is kept with its result: its id cannot be another node's later.)
        cache: dict[int, tuple[yaml.Node, dict[Any, Any]]] = loader.__dict__.setdefault(
            "merged", {})
        held = cache.get(id(src))
        if held is None or held[0] is not src:
            flat: dict[Any, Any] = {}
            _fill(loader, src, flat, merging)
            held = cache[id(src)] = (src, flat)
        data.update(held[1])


class _Loader(_BaseLoader):  # type: ignore[misc]
    """The safe loader (libyaml when available, SEMANTICS §1: "use the C loader when
    available"), resolving plain scalars as kubectl's YAML-to-JSON step does (see above).
    PyYAML's own resolvers and constructors are left alone: only this class's change."""

    def resolve(self, kind: Any, value: str, implicit: tuple[bool, bool]) -> str:
        if kind is yaml.ScalarNode and implicit[0]:
            return _go_scalar(value)[0]
        return str(super().resolve(kind, value, implicit))


def _construct_map(loader: Any, node: yaml.MappingNode) -> Iterator[dict[Any, Any]]:
    """A mapping, its keys as JSON has them (:func:`_key`), merges in go-yaml's order
    (:func:`_fill`), noting the keys written twice in one mapping.

    PyYAML keeps the last value of a repeated key without a word; the API server's decoder
    reports it (sigs.k8s.io/json: ``duplicate field "..."``, an error with
    ``--validate=strict``, a warning with ``fieldValidation=Warn``). A mapping with no repeated
    key and no merge has as many entries as keys written: one comparison is all it pays."""
    data: dict[Any, Any] = {}
    yield data
    written = _fill(loader, node, data, ())
    if len(data) != written:
        keys = _repeated_keys(loader, node.value)
        if keys:
            loader.duplicates[id(data)] = list(keys)
            loader.duplicate_lines[id(data)] = keys


def _repeated_keys(loader: Any, own: list[tuple[yaml.Node, yaml.Node]]) -> dict[Any, list[int]]:
    """The keys written more than once among a mapping's ``own`` pairs, compared as JSON has
    them (``1`` and ``"1"`` are one key), each with the 1-based lines it is written at. Keys a
    merge brought in are not counted: overriding those is what a merge is for. (Only run for
    a mapping with fewer entries than keys written: the lines cost the others nothing.)"""
    lines: dict[Any, list[int]] = {}
    for key_node, _ in own:
        if key_node.tag == _MERGE:
            continue
        lines.setdefault(_key(loader, key_node), []).append(key_node.start_mark.line + 1)
    return {key: at for key, at in lines.items() if len(at) > 1}


def _construct_binary(loader: Any, node: yaml.Node) -> Any:
    """``!!binary``: go-yaml sets the decoded bytes as a Go string in an interface{} (decoder
    scalar: ``resolved = string(data)``), which json.Marshal writes with each byte that is not
    UTF-8 as U+FFFD. PyYAML made ``bytes``, refused everywhere as "got bytes" (a Python type
    name in a Kubernetes message) and in a map key kept as bytes. Base64 read as Go's
    StdEncoding reads it: padding required, only line breaks skipped (a folded scalar)."""
    if not isinstance(node, yaml.ScalarNode):
        return _construct_other(loader, node)  # (a tagged collection: by its kind)
    text = node.value.replace("\r", "").replace("\n", "")
    try:
        data = binascii.a2b_base64(text.encode("ascii"), strict_mode=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise yaml.constructor.ConstructorError(
            None, None, "!!binary value contains invalid base64 data", node.start_mark) from None
    return _GO_INVALID_BYTE.sub("\ufffd", data.decode("utf-8", "surrogateescape"))


_GO_INVALID_BYTE = re.compile("[\udc80-\udcff]")


def _construct_other(loader: Any, node: yaml.Node) -> Any:
    """A node with a tag go-yaml v2 does not resolve (``!!set``, ``!!omap``, ``!!pairs``,
    ``!custom``, ``!!python/object:...``): go-yaml decodes it by its kind alone (its
    ``resolve`` returns the text of an unresolvable tag; ``mapping`` and ``sequence`` look at no
    tag), so kubectl applies ``!Ref x`` as the string "x" and ``!!set {a, b}`` as a map of
    nulls. PyYAML refused the first ("could not determine a constructor for the tag") and
    made a Python ``set`` (``got set``) of the second, tuples of ``!!omap``. Only plain data
    is made, whatever the tag says."""
    if isinstance(node, yaml.MappingNode):
        return _construct_map(loader, node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_yaml_seq(node)
    return str(node.value)


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:binary", _construct_binary)
for _other in ("tag:yaml.org,2002:set", "tag:yaml.org,2002:omap", "tag:yaml.org,2002:pairs", None):
    _Loader.add_constructor(_other, _construct_other)
_Loader.add_constructor(_INT, _construct_int)
_Loader.add_constructor(_FLOAT, _construct_float)
_Loader.add_constructor(_BOOL, _construct_bool)
_Loader.add_constructor(_TIMESTAMP, _construct_text)
_Loader.add_constructor(_MERGE, _construct_text)


def _syntax_error(source: str, exc: yaml.YAMLError, text: str) -> FieldError:
    if isinstance(exc, yaml.reader.ReaderError):
        # A character YAML does not allow (a control character: an ESC of pasted colored
        # output, a NUL): the reader's error has no mark, only an offset, and its str() is
        # two lines naming '"<unicode string>", position 95'. Told as the other syntax errors
        # are, at its line and column; libyaml's offset counts the UTF-8 bytes of the text it
        # was handed (the pure-Python reader's, characters).
        at = exc.position
        if _BaseLoader is not yaml.SafeLoader and not text.isascii():
            at = len(text.encode("utf-8", "surrogatepass")[:at].decode("utf-8", "ignore"))
        char = exc.character  # a str (PyYAML), an int (libyaml)
        code = ord(char) if isinstance(char, str) else int(char)
        detail = f"YAML syntax error: unacceptable character #x{code:04x}: {exc.reason}"
        if code == 0 and _looks_utf16(text):
            detail += (" (the file looks like UTF-16 without a byte order mark, which kubectl "
                       "does not read either: save it as UTF-8)")
        return FieldError(source, _text_place(text, at), INVALID, detail)
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    detail = problem if isinstance(exc, _NotJSON) else f"YAML syntax error: {problem}"
    if context:
        detail += f" ({context})"
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return FieldError(source, where, INVALID, detail)


def _looks_utf16(text: str) -> bool:
    """Whether ``text`` (decoded as UTF-8) is ASCII written as UTF-16 without a byte order
    mark: a NUL in every other character of its start (what some Windows tools write)."""
    head = text[:64]
    if len(head) < 4:
        return False
    return any(set(head[i::2]) == {"\0"} and "\0" not in head[1 - i::2] for i in (0, 1))


def _lone_surrogate(text: str, source: str) -> FieldError | None:
    """The error for a ``str`` holding a lone surrogate (``"\\ud800"``: text decoded with
    ``errors="surrogateescape"`` from bytes that were not UTF-8), else None. No UTF-8 text
    holds one, so no file kubectl reads does; the YAML reader cannot take it (libyaml is
    handed the text's UTF-8 bytes: a UnicodeEncodeError out of the load)."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return FieldError(source, _text_place(text, exc.start), INVALID,
                          f"not valid UTF-8: lone surrogate U+{ord(text[exc.start]):04X}")
    return None


def _text_place(text: str, at: int) -> str:
    """``line L, column C`` of ``text[at]`` for an error told by offset, placed as the YAML
    readers place the others. A byte order mark opening the text is no column: both readers
    skip it before they count (a mark on that line is one column left of the offset's), and
    the same file given as bytes loses it to the utf-8-sig decoding."""
    line, column = _line_column(text, at)
    if line == 1 and at > 0 and text.startswith("\ufeff"):
        column -= 1
    return f"line {line}, column {column}"


def _undecodable(data: bytes, exc: UnicodeDecodeError, source: str, utf16: bool) -> FieldError:
    """The error for bytes that are not the text they claim to be, at the line and column of
    the first bad byte (the text before it is good: its lines are counted as a syntax error's
    are), the byte offset kept in the detail. Only ``byte 48213`` was said: no editor goes
    there (a Latin-1 ``café`` in one annotation of a long file).

    ``deploy/web.yaml: line 4, column 12: Invalid value: not valid UTF-8: byte 0xE9 at
    offset 50``."""
    # (The error's object is the bytes after a UTF-8 mark, all of them for UTF-16; the
    # offset told is the file's, the columns are counted after the mark as YAML counts them.)
    body = exc.object
    offset = exc.start + len(data) - len(body)
    good = bytes(body[:exc.start]).decode(exc.encoding, "replace").lstrip("\ufeff")
    line, column = _line_column(good, len(good))
    if utf16:
        what = f"not valid UTF-16: {exc.reason} at offset {offset}"
    else:
        what = f"not valid UTF-8: byte 0x{body[exc.start]:02X} at offset {offset}"
    return FieldError(source, f"line {line}, column {column}", INVALID, what)


def _documents(text: str | bytes, source: str, c: Collector, *, is_json: bool) -> Iterator[tuple[int, Any]]:
    """(1-based document number, parsed document) pairs; syntax errors go to ``c``."""
    if isinstance(text, bytes):
        # YAML 1.2 §5.2: "a YAML processor must support the UTF-8 and UTF-16 character
        # encodings", told apart by the byte order mark; kubectl reads BOM'd UTF-16 files too
        # (cli-runtime wraps every file in unicode.BOMOverride): what PowerShell's `>` writes.
        # Without a BOM the bytes are UTF-8 (JSON's only encoding, RFC 8259 §8.1).
        utf16 = text[:2] in (b"\xff\xfe", b"\xfe\xff")
        data = text
        try:
            text = data.decode("utf-16" if utf16 else "utf-8-sig")
        except UnicodeDecodeError as exc:
            c.error(_undecodable(data, exc, source, utf16), None)
            return
    else:
        surrogate = _lone_surrogate(text, source)
        if surrogate is not None:
            c.error(surrogate, None)
            return
    n = 0  # documents read
    if is_json or text.lstrip()[:1] in ("{", "["):
        # JSON is much faster through json than through a YAML parser. Text that only looks
        # like JSON may be flow-style YAML: it falls back to the YAML parser (kubectl's
        # YAMLOrJSONDecoder does since kubernetes/kubernetes#130666: "will detect a failure to
        # parse as JSON and instead flip to YAML parsing"), NaN/Infinity included, which json
        # refuses here, at the first or second value of a stream (_json_documents); a *.json
        # file does not (its errors are json's, with json's line and column).
        parsed = _json_documents(text, source, c, is_json=is_json)
        if parsed is not None:
            docs, duplicates, yaml_from = parsed
            yield from _with_duplicates(c, docs, duplicates)
            if yaml_from is None:
                return
            # One JSON value, then YAML (kubectl's decoder switched after the first): the
            # YAML reader starts there, with the text before it blank so that its errors name
            # the file's lines and columns (spaces before a flow collection only: before a
            # block one they would indent it). Lines are counted as the YAML reader and the
            # JSON errors count them: a lone \r ends one too (counting \n alone put the YAML
            # of a file with old Mac line ends on line 1).
            n = len(docs)
            line, column = _line_column(text, yaml_from)
            pad = "\n" * (line - 1)
            if text.startswith(("{", "["), yaml_from):
                pad += " " * (column - 1)
            text = pad + text[yaml_from:]
    if len(text) > _MAX_DEPTH:  # shorter text cannot nest that deep
        deep = _too_deep(text)
        if deep is not None:
            c.error(_too_deep_error(source, deep), None)
            return
    # Aliases need an anchor ("&name" where a node starts): without one no document can share
    # a node, and the expansion check below is skipped (ordinary manifests pay nothing, even
    # with "a=1&b=2" in an annotation).
    may_alias = _ANCHOR_RE.search(text) is not None
    # yaml.load_all, with the loader at hand: its `duplicates` go with each document.
    try:
        loader = _Loader(text)
    except yaml.YAMLError as exc:
        # PyYAML's own reader (no libyaml) checks every character of a str as it is made:
        # its ReaderError came here, before the load, and left parse_manifests as itself.
        c.error(_syntax_error(source, exc, text), None)
        return
    loader.duplicates = {}
    loader.duplicate_lines = {}
    try:
        while loader.check_data():
            doc = loader.get_data()
            n += 1
            problem = _aliasing_problem(doc) if may_alias else None
            if problem is not None:
                c.error(FieldError(source, f"document {n}", INVALID, problem), None)
                loader.duplicates = {}
                loader.duplicate_lines = {}
                continue
            c.duplicates = loader.duplicates or None
            c.duplicate_lines = loader.duplicate_lines or None
            try:
                yield n, doc
            finally:
                c.duplicates = c.duplicate_lines = None
                loader.duplicates = {}
                loader.duplicate_lines = {}
    except yaml.YAMLError as exc:
        c.error(_syntax_error(source, exc, text), None)
    finally:
        loader.dispose()


_COLLECTION_START = (yaml.SequenceStartEvent, yaml.MappingStartEvent)
_COLLECTION_END = (yaml.SequenceEndEvent, yaml.MappingEndEvent)


def _too_deep(text: str) -> tuple[int, int] | None:
    """The (line, column) where ``text`` (YAML or JSON) nests past ``_MAX_DEPTH``, else None.

    A cheap bound first: flow collections open with ``[`` or ``{``, and block ones nest by
    indentation or by ``- ``/``? ``/``: `` indicators on one line, so depth is at most the
    number of brackets plus twice the longest line. Only text past that bound (a very long
    line, many brackets) is run through libyaml's event parser, which keeps its own stack
    (no recursion): about 40 % of a load's time, for those files only."""
    bound = text.count("[") + text.count("{") + 2 * max(map(len, text.splitlines()),
                                                        default=0) + 2
    if bound <= _MAX_DEPTH:
        return None
    depth = 0
    try:
        for event in yaml.parse(text, Loader=_Loader):
            if isinstance(event, _COLLECTION_START):
                depth += 1
                if depth > _MAX_DEPTH:
                    mark = event.start_mark
                    return (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
            elif isinstance(event, _COLLECTION_END):
                depth -= 1
    except yaml.YAMLError:
        # A syntax error before any too-deep point: the load reports it, and stops there
        # (its composer never gets deeper than this pass did).
        return None
    return None


# (A byte order mark may stand before the first node of a str: `"\ufeff&a [*a]"`, text read
# with encoding="utf-8", not "utf-8-sig". Not whitespace to the regex, it hid that anchor,
# and the recursive document loaded.)
_ANCHOR_RE = re.compile(r"(?:^|[\s\[{,\ufeff])&[^\s,\[\]{}]")


def _allowed_alias_ratio(decoded: int) -> float:
    # go-yaml (the decoder behind kubectl and the API server), decode.go allowedAliasRatio:
    # "allow 99% to come from alias expansion for small-to-medium documents", scaling down to
    # 10% between 400,000 and 4,000,000 decoded nodes.
    low, high = 400_000, 4_000_000
    if decoded <= low:
        return 0.99
    if decoded >= high:
        return 0.10
    return 0.99 - 0.89 * (decoded - low) / (high - low)


def _aliasing_problem(doc: Any) -> str | None:
    """Why a parsed document is refused for its aliases, or None.

    PyYAML builds an alias as a shared object, so parsing stays linear, but everything that
    walks the document (decoding, validation, the route table) pays for every expansion: a
    10 KB file can stand for a million paths. go-yaml refuses such documents ("document
    contains excessive aliasing": more than 100 nodes from aliases, more than 1,000 in all, and
    alias-driven nodes above the allowed ratio) and recursive ones ("anchor ... value contains
    itself"); so does this, counting nodes the same way, in time linear in the distinct nodes.

    The nesting bound the text is held to (``_MAX_DEPTH``, :func:`_too_deep`) holds for the
    document as built too: an alias (or a merge) of a deep node placed deep in another (``l1:
    &l1 [[...400 levels... *l0]]``, ten times) nested thousands of levels where the text nests
    400, and the object loaded (an unknown kind, kept as read) only to fail later with a
    RecursionError from ``repr()`` or ``==`` of the result.
    """
    if not isinstance(doc, (dict, list)):
        return None
    expanded: dict[int, int] = {}  # id(container) -> nodes it stands for, aliases expanded
    depth: dict[int, int] = {}  # id(container) -> levels it nests, aliases expanded
    distinct = 0  # nodes as written: each container once, with its scalar children
    stack: list[tuple[Any, bool]] = [(doc, False)]
    while stack:
        obj, children_done = stack.pop()
        key = id(obj)
        children = list(obj.values()) if isinstance(obj, dict) else obj
        if children_done:
            expanded[key] = 1 + sum(expanded.get(id(ch), 1) if isinstance(ch, (dict, list)) else 1
                                    for ch in children)
            depth[key] = 1 + max((depth.get(id(ch), 1) for ch in children
                                  if isinstance(ch, (dict, list))),
                                 default=0)
            continue
        if key in expanded:
            if expanded[key] < 0:
                return "YAML alias refers to a node that contains it (a recursive document)"
            continue
        expanded[key] = -1  # in progress: meeting it again below means a cycle
        distinct += 1
        stack.append((obj, True))
        for ch in children:
            if isinstance(ch, (dict, list)):
                stack.append((ch, False))
            else:
                distinct += 1
    total = expanded[id(doc)]
    from_aliases = total - distinct
    if from_aliases > 100 and total > 1000 and from_aliases / total > _allowed_alias_ratio(total):
        return (f"YAML document contains excessive aliasing: {total} nodes once aliases are "
                f"expanded, from {distinct} written")
    if depth[id(doc)] > _MAX_DEPTH:
        return f"nested more than {_MAX_DEPTH} levels deep once YAML aliases are expanded"
    return None


#: The keys written twice in the mappings of a document, by ``id()`` of the mapping, each with
#: the 1-based lines it is written at (none for JSON, whose parser does not tell).
DuplicateKeys = dict[int, dict[Any, list[int]]]


def read_documents(text: str | bytes, source: str, *, is_json: bool = False
                   ) -> tuple[list[tuple[Any, DuplicateKeys]], list[FieldError]]:
    """The documents of one file read as :func:`load_manifests` reads them (go-yaml v2's plain
    scalars, kubectl's JSON), each with its :data:`DuplicateKeys`, and the errors that stop
    the reading (syntax, NaN, encoding, nesting), naming ``source`` and the line: for a file
    that is not a set of manifests, ``serve --config``'s ConfigMap. Empty documents are
    left out."""
    c = Collector(copy_ignored=False)
    docs: list[tuple[Any, DuplicateKeys]] = []
    for _, doc in _documents(text, source, c, is_json=is_json):
        if doc is None:
            continue
        found: DuplicateKeys = dict(c.duplicate_lines or {})
        for mapping, keys in (c.duplicates or {}).items():
            found.setdefault(mapping, {key: [] for key in keys})
        docs.append((doc, found))
    return docs, c.errors


def _parse_into(text: str | bytes, source: str | None, c: Collector, *, is_json: bool = False) -> None:
    label = source or "<text>"
    c.text_name = label  # (the documents' own early errors name it too, not "document 1")
    for n, doc in _documents(text, label, c, is_json=is_json):
        if doc is None:
            continue  # empty documents ("---" twice, comments only) are skipped
        if not isinstance(doc, dict):
            detail = f"expected an object, got {_jtype(doc)}"
            c.error(FieldError(label, f"document {n}", INVALID, detail), None)
            continue
        c.add(doc, source, where=f"document {n}")


def parse_manifests(text: str | bytes, *, source: str | None = None) -> Resources:
    """Parse YAML (one or more documents) or JSON text into :class:`Resources`.

    ``source`` names the text in error messages (a file name, ``"<stdin>"``).

    >>> res = parse_manifests('''
    ... apiVersion: v1
    ... kind: Service
    ... metadata: {name: web, namespace: shop}
    ... spec: {ports: [{port: 80}]}
    ... ''')
    >>> res.services[0].metadata.ref
    'shop/web'
    """
    return collect_text(text, source=source).result()


def collect_text(text: str | bytes, *, source: str | None = None) -> Collector:
    """``parse_manifests`` up to the result: the :class:`Collector`, whose ``warnings`` are
    there whether the objects are valid or not (``check`` prints both)."""
    c = Collector(copy_ignored=False)  # freshly parsed: the objects are shared with nobody
    _parse_into(text, source, c)
    if source is not None:
        _name_files(c, {source})
    return c


def _name_files(c: Collector, files: set[str]) -> None:
    """Put the file in ``source`` for the errors of a whole file (not found, not YAML, a
    document that is no object): their ``object`` is the file, ``source`` was None, where an
    object's errors have ``source`` = its file: ``-o json`` readers had to look in two places.
    ``str()`` names the file once (:class:`FieldError` skips a ``source`` equal to ``object``)."""
    c.errors[:] = [dataclasses.replace(e, source=e.object)
                   if e.source is None and e.object in files else e for e in c.errors]


def manifest_files(root: str | os.PathLike[str],
                   onerror: Callable[[OSError], None] | None = None) -> Iterator[str]:
    """The manifest files under folder ``root``, unordered: ``*.yaml``, ``*.yml``, ``*.json``;
    hidden files and folders (.git, editor swap files) skipped, symlinked folders not followed.
    ``onerror`` gets what ``os.walk`` cannot list (skipped otherwise: :func:`load_manifests`
    makes each an error, ``serve``'s poller a state of its own)."""
    for dirpath, dirnames, filenames in os.walk(root, onerror=onerror):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith(".") and name.endswith(MANIFEST_SUFFIXES):
                yield os.path.join(dirpath, name)


def _walk(root: Path) -> tuple[list[Path], list[FieldError]]:
    """The manifest files under folder ``root``, and the folders of it that could not be
    listed, as errors.

    A folder that cannot be listed (permissions, an fsGroup, a stale mount) is an error, not an
    empty folder: read as empty it would load without its Ingresses, their hosts answering 404
    and nothing said. A folder removed between the listing of its parent and its own (an
    ``rm -rf`` or a checkout racing the load) is ``Not found``, as a file removed before its
    reading is: kubectl's walk (cli-runtime ``ExpandPathsToFileVisitors``) stops at either with
    ``error reading "deploy": ...``; here the rest is still read, so every problem is told."""
    unlisted: list[OSError] = []
    # Sorted by path components (a folder's files stay together: `b/z.yaml` before `b.yaml`)
    # for a deterministic order: the order objects appear in is the spec order that breaks
    # ties.
    found = [Path(f) for f in manifest_files(root, unlisted.append)]
    found.sort(key=lambda f: f.relative_to(root).parts)
    errors = [_unlisted_error(root, exc) for exc in unlisted]
    errors.sort(key=lambda e: Path(e.object).parts)
    return found, errors


def _unlisted_error(root: Path, exc: OSError) -> FieldError:
    folder = os.fspath(exc.filename) if exc.filename is not None else str(root)
    if isinstance(exc, FileNotFoundError):
        return FieldError(folder, "", "Not found", "no such file or directory")
    return FieldError(folder, "", INVALID,
                      f"cannot list the folder: {exc.strerror or os.strerror(exc.errno or 0)}")


#: What an empty path string (``load_manifests("")``, ``-f ''``) is refused with.
EMPTY_PATH_ERROR = FieldError(
    '""', "", "Not found", 'an empty path names no file or folder (use "." for the current folder)')


def load_manifests(*paths: str | os.PathLike[str]) -> Resources:
    """Load manifests from files and folders (recursively: ``*.yaml``, ``*.yml``, ``*.json``).

    Files named explicitly are read whatever their suffix. Inside a folder, files are read in
    sorted path order and hidden files and folders (``.git``) are skipped. A file reached twice
    (named twice, through a folder and by name, through a symlink) is read once. Every problem
    of every file is raised at once as one :class:`ValidationError`; errors name the file they
    come from (a missing path, a folder that cannot be listed, an empty path ``""`` are errors
    too).
    Fields the API server would drop (unknown or written twice) are ``Resources.warnings``,
    and the ``warnings`` of the :class:`ValidationError` when the load fails.
    """
    return collect_files(*paths).result()


def collect_files(*paths: str | os.PathLike[str]) -> Collector:
    """``load_manifests`` up to the result (see :func:`collect_text`)."""
    c = Collector(copy_ignored=False)  # freshly parsed: the objects are shared with nobody
    named: set[str] = set()  # the files and folders read: what a whole-file error names
    # A file named twice (`-f m -f m/a.yaml`, a folder inside another, a symlink to a file
    # named too) is read once, at its first naming: read twice, its every object was "defined
    # 2 times" and counted twice.
    read: set[tuple[int, int]] = set()
    for p in paths:
        if os.fspath(p) == "":
            # Path("") is Path("."): an empty `-f ''` (an unset variable in a script) would
            # load the current folder. kubectl: `the path "" does not exist`.
            c.error(EMPTY_PATH_ERROR, None)
            continue
        path = Path(p)
        if path.is_dir():
            files, unlisted = _walk(path)
            for err in unlisted:
                named.add(err.object)
                c.error(err, None)
        else:
            files = [path]
        for f in files:
            source = str(f)
            named.add(source)
            try:
                st = f.stat()
            except OSError:
                pass  # read_bytes below says why, as for any file it cannot read
            else:
                if (st.st_dev, st.st_ino) in read:
                    continue
                read.add((st.st_dev, st.st_ino))
            try:
                data = f.read_bytes()
            except FileNotFoundError:
                c.error(FieldError(source, "", "Not found", "no such file or directory"), None)
                continue
            except OSError as exc:
                c.error(FieldError(source, "", INVALID, exc.strerror or str(exc)), None)
                continue
            _parse_into(data, source, c, is_json=f.suffix == ".json")
    _name_files(c, named)
    return c
