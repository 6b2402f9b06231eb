"""Session 23 review of manifest loading (files, YAML, JSON, lists) and its error messages."""

from __future__ import annotations

from pathlib import Path

import pytest

import ingresslib
from ingresslib import ValidationError, load_manifests, parse_manifests


def _errors(text: str, source: str | None = None) -> list[str]:
    with pytest.raises(ValidationError) as info:
        parse_manifests(text, source=source)
    return [str(e) for e in info.value.errors]


# --- 1. a kind or apiVersion written with the wrong type is not "Required value" ------------


@pytest.mark.parametrize(("text", "message"), [
    ("apiVersion: v1\nkind: 5\n", "kind: Invalid value: 5: expected string, got integer"),
    ("apiVersion: v1\nkind: true\n", "kind: Invalid value: true: expected string, got boolean"),
    ("apiVersion: v1\nkind: [Service]\n", "kind: Invalid value: expected string, got array"),
    ("apiVersion: 1.0\nkind: Service\n",
     "apiVersion: Invalid value: 1: expected string, got integer"),
    ("apiVersion: {v: 1}\nkind: Service\n",
     "apiVersion: Invalid value: expected string, got object"),
])
def test_a_kind_of_the_wrong_type_is_an_invalid_value(text: str, message: str) -> None:
    assert _errors(text, "x.yaml") == [f"x.yaml: document 1: {message}"]


def test_a_kind_of_the_wrong_type_carries_its_value() -> None:
    with pytest.raises(ValidationError) as info:
        parse_manifests("apiVersion: v1\nkind: 5\n", source="x.yaml")
    (e,) = info.value.errors
    assert (e.source, e.object, e.field, e.type) == ("x.yaml", "x.yaml", "document 1: kind",
                                                    "Invalid value")
    assert (e.value, e.has_value) == (5, True)


@pytest.mark.parametrize("text", ["apiVersion: v1\n", "apiVersion: v1\nkind:\n",
                                  "apiVersion: v1\nkind: ''\n", "apiVersion: v1\nkind: null\n"])
def test_a_missing_or_empty_kind_is_still_required(text: str) -> None:
    assert _errors(text, "x.yaml") == [
        "x.yaml: document 1: kind: Required value: every object needs `kind` and `apiVersion`"]


def test_from_dicts_says_the_same_of_a_kind_of_the_wrong_type() -> None:
    with pytest.raises(ValidationError) as info:
        ingresslib.Resources.from_dicts([{"apiVersion": "v1", "kind": 5}])
    assert [str(e) for e in info.value.errors] == [
        "object 1: kind: Invalid value: 5: expected string, got integer"]


def test_an_item_of_a_list_with_a_kind_of_the_wrong_type() -> None:
    text = "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: 5}\n"
    assert _errors(text, "x.yaml") == [
        "x.yaml: document 1: items[0]: kind: Invalid value: 5: expected string, got integer"]


def test_a_load_with_a_kind_of_the_wrong_type(tmp_path: Path) -> None:
    f = tmp_path / "k.json"
    f.write_text('{"apiVersion": "v1", "kind": 5}')
    with pytest.raises(ValidationError) as info:
        load_manifests(f)
    assert [str(e) for e in info.value.errors] == [
        f"{f}: document 1: kind: Invalid value: 5: expected string, got integer"]


# --- 2. text without a source: every whole-document error names "<text>" -------------------


def test_every_whole_document_error_of_unnamed_text_starts_alike() -> None:
    text = ("apiVersion: v1\n"          # document 1: no kind
            "---\n- 1\n"                # document 2: not an object
            "---\napiVersion: v1\nkind: List\nitems: [5, {kind: Service}]\n"  # document 3
            "---\napiVersion: v1\nkind: 5\n")  # document 4
    assert _errors(text) == [
        "<text>: document 1: kind: Required value: every object needs `kind` and `apiVersion`",
        "<text>: document 2: Invalid value: expected an object, got array",
        "<text>: document 3: items[0]: Invalid value: expected an object, got integer",
        "<text>: document 3: items[1]: apiVersion: Required value: every object needs `kind` "
        "and `apiVersion`",
        "<text>: document 4: kind: Invalid value: 5: expected string, got integer",
    ]


def test_unnamed_text_errors_have_no_source() -> None:
    with pytest.raises(ValidationError) as info:
        parse_manifests("apiVersion: v1\n---\n- 1\n")
    assert [(e.source, e.object, e.field) for e in info.value.errors] == [
        (None, "<text>", "document 1: kind"), (None, "<text>", "document 2")]


def test_a_syntax_error_and_a_document_error_of_unnamed_text_name_it_alike() -> None:
    errors = _errors("apiVersion: v1\n---\na: [\n")
    assert [e.split(": ", 1)[0] for e in errors] == ["<text>", "<text>"]


def test_from_dicts_objects_keep_their_position_name() -> None:
    # Not text: no "<text>" (the objects are numbered as given).
    with pytest.raises(ValidationError) as info:
        ingresslib.Resources.from_dicts([{"apiVersion": "v1"}])
    assert [str(e) for e in info.value.errors] == [
        "object 1: kind: Required value: every object needs `kind` and `apiVersion`"]


# --- 3. bytes that are not UTF-8 (or UTF-16): the line and column, not only a byte offset ---


def test_a_latin1_byte_is_placed_at_its_line_and_column() -> None:
    text = b"apiVersion: v1\nkind: Service\nmetadata:\n  name: caf\xe9\n"
    with pytest.raises(ValidationError) as info:
        parse_manifests(text, source="web.yaml")
    assert [str(e) for e in info.value.errors] == [
        "web.yaml: line 4, column 12: Invalid value: not valid UTF-8: byte 0xE9 at offset 50"]


@pytest.mark.parametrize(("data", "where", "detail"), [
    (b"kind: \xff", "line 1, column 7", "byte 0xFF at offset 6"),
    # A UTF-8 byte order mark is no column; the offset is the file's.
    (b"\xef\xbb\xbfkind: \xff", "line 1, column 7", "byte 0xFF at offset 9"),
    (b"a: 1\r\nb: caf\xc3", "line 2, column 7", "byte 0xC3 at offset 12"),
    (b"\xff", "line 1, column 1", "byte 0xFF at offset 0"),
])
def test_not_utf8_names_line_column_and_offset(data: bytes, where: str, detail: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_manifests(data, source="x.yaml")
    assert [str(e) for e in info.value.errors] == [
        f"x.yaml: {where}: Invalid value: not valid UTF-8: {detail}"]


def test_broken_utf16_names_line_and_column(tmp_path: Path) -> None:
    f = tmp_path / "ps.yaml"
    f.write_bytes(b"\xff\xfea\x00\n\x00b\x00\x00\xdc")  # "a\nb" then a lone low surrogate
    with pytest.raises(ValidationError) as info:
        load_manifests(f)
    assert [str(e) for e in info.value.errors] == [
        f"{f}: line 2, column 2: Invalid value: not valid UTF-16: illegal encoding at offset 8"]


# --- 4. YAML tags as go-yaml v2 (kubectl) decodes them: plain data, never a Python type -----

_SERVICE = "apiVersion: v1\nkind: Service\nmetadata: {name: a%s}\nspec: {ports: [{port: 80}]}\n"


def _annotations(value: str) -> object:
    res = parse_manifests(_SERVICE % f", annotations: {{a: {value}}}", source="t.yaml")
    return dict(res.services[0].metadata.annotations)["a"]


def test_binary_is_the_decoded_text() -> None:
    # go-yaml: `resolved = string(data)`; PyYAML made bytes ("expected string, got bytes").
    assert _annotations("!!binary aGVsbG8=") == "hello"
    # Bytes that are not UTF-8 are U+FFFD each, as json.Marshal writes them.
    assert _annotations("!!binary /w==") == "\ufffd"


def test_a_binary_secret_value_is_checked_as_the_api_server_checks_it() -> None:
    text = "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {a: !!binary aGVsbG8=}\n"
    with pytest.raises(ValidationError) as info:
        parse_manifests(text, source="s.yaml")
    assert "got bytes" not in str(info.value)
    assert [e.field for e in info.value.errors] == ["data[a]"]


def test_binary_that_is_not_base64_is_refused_at_its_line() -> None:
    text = _SERVICE % ", annotations: {a: !!binary '%%%'}"
    assert _errors(text, "t.yaml") == [
        "t.yaml: line 3, column 38: Invalid value: YAML syntax error: !!binary value contains "
        "invalid base64 data"]


def test_a_binary_map_key_is_a_string() -> None:
    res = parse_manifests(_SERVICE % ", labels: {!!binary YQ==: b}")
    assert dict(res.services[0].metadata.labels) == {"a": "b"}


@pytest.mark.parametrize(("value", "expected"), [
    ("!custom x", "x"),                       # go-yaml: an unresolvable tag keeps the text
    ("!Ref web", "web"),
    ("!!python/object:os.system x", "x"),     # plain text, never an object
    ("!!python/name:os.system ''", ""),
])
def test_an_unknown_tag_on_a_scalar_is_its_text(value: str, expected: str) -> None:
    assert _annotations(value) == expected


def test_a_set_is_a_map_of_nulls() -> None:
    # go-yaml decodes `!!set {a, b}` by its kind: a map ({"a": null, ...}); PyYAML made a
    # Python set: "metadata.annotations: Invalid value: expected object, got set".
    res = parse_manifests(_SERVICE % ", annotations: !!set {p, q}", source="t.yaml")
    assert dict(res.services[0].metadata.annotations) == {"p": "", "q": ""}


def test_an_omap_is_a_list_of_maps_and_a_tagged_map_a_map() -> None:
    text = ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
            "data: !custom {k: v}\nom: !!omap [a: 1, b: 2]\npa: !!pairs [a: 1]\n")
    (cm,) = parse_manifests(text).ignored
    assert cm["data"] == {"k": "v"}
    assert cm["om"] == [{"a": 1}, {"b": 2}] and cm["pa"] == [{"a": 1}]


def test_python_tags_build_no_python_object() -> None:
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n" \
           "x: !!python/object/apply:os.system ['true']\n"
    (cm,) = parse_manifests(text).ignored
    assert cm["x"] == ["true"]


# --- 5. a document that is no object names its type as an item of a List does ---------------


def test_a_scalar_document_and_a_scalar_list_item_name_the_type_alike() -> None:
    text = "--- 5\n--- 1.5\n--- true\n--- [1]\n---\napiVersion: v1\nkind: List\nitems: [5]\n"
    assert _errors(text, "x.yaml") == [
        "x.yaml: document 1: Invalid value: expected an object, got integer",
        "x.yaml: document 2: Invalid value: expected an object, got number",
        "x.yaml: document 3: Invalid value: expected an object, got boolean",
        "x.yaml: document 4: Invalid value: expected an object, got array",
        "x.yaml: document 5: items[0]: Invalid value: expected an object, got integer",
    ]


# --- 6. UTF-16 without a byte order mark: say so -------------------------------------------


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_without_a_mark_is_named(codec: str) -> None:
    data = "apiVersion: v1\nkind: Service\n".encode(codec)
    with pytest.raises(ValidationError) as info:
        parse_manifests(data, source="w.yaml")
    (e,) = info.value.errors
    assert str(e).startswith("w.yaml: line 1, column ")
    assert e.detail.endswith("unacceptable character #x0000: control characters are not "
                             "allowed (the file looks like UTF-16 without a byte order mark, "
                             "which kubectl does not read either: save it as UTF-8)")


def test_a_stray_nul_is_not_called_utf16() -> None:
    with pytest.raises(ValidationError) as info:
        parse_manifests(b"apiVersion: v1\nkind: Serv\x00ice\n", source="n.yaml")
    assert [str(e) for e in info.value.errors] == [
        "n.yaml: line 2, column 11: Invalid value: YAML syntax error: unacceptable character "
        "#x0000: control characters are not allowed"]


# --- 7. a scalar tag on a collection: decoded by its kind, never a TypeError ----------------


@pytest.mark.parametrize("tag", ["!!int", "!!float", "!!bool", "!!timestamp", "!!binary"])
def test_a_scalar_tag_on_a_collection_is_no_traceback(tag: str) -> None:
    # `!!int [1]` raised TypeError ("unhashable type: 'list'") out of parse_manifests.
    text = ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
            f"s: {tag} [1, x]\nm: {tag} {{k: v}}\n")
    (cm,) = parse_manifests(text, source="t.yaml").ignored
    assert cm["s"] == [1, "x"] and cm["m"] == {"k": "v"}


def test_a_scalar_tag_on_a_whole_document_is_no_traceback() -> None:
    assert _errors("!!int\n- a\n", "t.yaml") == [
        "t.yaml: document 1: Invalid value: expected an object, got array"]
