"""Session 17 review of manifest loading (JSON): numbers past float64, a JSON stream read as
kubectl's YAMLOrJSONDecoder reads it, line ends, and ``serve --config`` read as kubectl reads a
file (UTF-16, a ConfigMap inside a List)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingresslib import ValidationError, load_manifests, parse_manifests
from ingresslib._config import load_config


def _service(name: str = "web", extra: str = "") -> str:
    """A Service as one line of JSON; ``extra`` is added to its spec (``, "x": ...``)."""
    return ('{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "%s"}, '
            '"spec": {"ports": [{"port": 80}]%s}}' % (name, extra))


def _errors(info: pytest.ExceptionInfo[ValidationError]) -> list[str]:
    return [str(e) for e in info.value.errors]


def _load(tmp_path: Path, text: str, name: str) -> ValidationError:
    """The error of loading ``text`` as file ``name`` (the suffix decides *.json's reading)."""
    f = tmp_path / name
    f.write_text(text, newline="")
    with pytest.raises(ValidationError) as info:
        load_manifests(f)
    return info.value


def _place(text: str, at: int) -> str:
    return f"line {text.count(chr(10), 0, at) + 1}, column {at - text.rfind(chr(10), 0, at)}"


# --- 1. numbers past float64 -------------------------------------------------------------------


@pytest.mark.parametrize("number", ["1e400", "-1E+400", "1.7976931348623159e308",
                                    "1" + "0" * 400, "-" + "9" * 309])
@pytest.mark.parametrize("name", ["s.json", "s.yaml"])
def test_a_json_number_past_float64_is_an_error_at_its_place(
        tmp_path: Path, number: str, name: str) -> None:
    # Before: Python's float() made it inf (a 400-digit integer a Python int) and the file
    # loaded. kubectl (1.32 here, `kubectl label --local -f`): `unable to decode "s.json":
    # json: cannot unmarshal number 1e400 into Go value of type float64`, whatever the file
    # name (the JSON syntax is valid: no reading as YAML).
    text = _service(extra=f', "x": [1, {{"y": {number}}}]') + "\n"
    f = tmp_path / name
    f.write_text(text)
    with pytest.raises(ValidationError) as info:
        load_manifests(f)
    detail = (f"{number}: number out of range (kubectl: json: cannot unmarshal number {number} "
              "into Go value of type float64)" if len(number) <= 40 else
              f"{number[:20]}...: number out of range ({len(number)} characters)")
    assert _errors(info) == [f"{f}: {_place(text, text.index(number))}: Invalid value: {detail}"]


def test_numbers_inside_float64_and_underflow_still_load() -> None:
    # Go reads 1e-400 as 0 and 1.7976931348623157e308 (the largest float64) as itself.
    text = _service(extra=', "x": [1e-400, 1.7976931348623157e308, %s]' % ("9" * 308))
    res = parse_manifests(text, source="s.json")
    assert [str(w) for w in res.warnings] == ['s.json: Service default/web: unknown field "spec.x"']


def test_an_out_of_range_number_in_a_later_value_of_a_stream_names_its_line(
        tmp_path: Path) -> None:
    text = _service("a") + "\n" + _service("b") + "\n" + _service("c", ', "x": 1e999') + "\n"
    for name in ("s.json", "s.yaml"):
        errors = [str(e) for e in _load(tmp_path, text, name).errors]
        assert errors[0].startswith(f"{tmp_path / name}: {_place(text, text.index('1e999'))}: ")


def test_a_negative_number_past_int_digits_in_json_looking_yaml_is_refused() -> None:
    # Before: json's int() refused it, the text went to the YAML reader, where `-111...` is a
    # plain string (go-yaml: out of range): the Service loaded. kubectl reads it as JSON
    # (valid syntax) and refuses the number.
    digits = "-" + "1" * 5000
    text = _service(extra=f', "x": {digits}')
    with pytest.raises(ValidationError) as info:
        parse_manifests(text, source="s.yaml")
    assert _errors(info) == [
        f"s.yaml: {_place(text, text.index(digits))}: Invalid value: "
        f"{digits[:20]}...: number out of range (5001 characters)"]


def test_a_syntax_error_after_an_out_of_range_number_makes_the_text_yaml(tmp_path: Path) -> None:
    # kubectl reads the syntax first: `y: 1` is no JSON, so the text is YAML, where 1e400 is
    # the string "1e400" (go-yaml: ParseFloat's range error) and `y` the key true.
    text = _service(extra=', "x": 1e400, y: 1')
    res = parse_manifests(text, source="s.yaml")
    assert [str(w) for w in res.warnings] == [
        's.yaml: Service default/web: unknown field "spec.x"',
        's.yaml: Service default/web: unknown field "spec.true"']
    assert "JSON syntax error: Expecting property name" in str(_load(tmp_path, text, "s.json"))


# --- 3. a JSON stream, as kubectl's YAMLOrJSONDecoder reads it ----------------------------------


def test_a_second_value_json_refuses_is_read_as_yaml() -> None:
    # apimachinery util/yaml YAMLOrJSONDecoder (1.33+): "If we found 0 or 1 JSON object(s),
    # this stream is still ambiguous": the first value is JSON, the rest YAML. Before: the
    # whole text was read as YAML, which refused it ("expected <document start>").
    for sep in ("\n# the second one\n", "\r\n# the second one\r\n", "\n", " "):
        text = _service("a") + sep + '{"apiVersion": v1, kind: Service, metadata: {name: b},\n'
        text += "  spec: {ports: [{port: 80}]}}\n"
        res = parse_manifests(text, source="s.yaml")
        assert [s.metadata.name for s in res.services] == ["a", "b"], repr(sep)


def test_after_a_json_value_yaml_errors_name_the_files_line_and_column() -> None:
    text = _service("a") + "\n\n" + "{b: [}\n"
    with pytest.raises(ValidationError) as info:
        parse_manifests(text, source="s.yaml")
    assert _errors(info)[0].startswith("s.yaml: line 3, column 6: Invalid value: YAML syntax")
    text = _service("a") + "   {b: [}\n"  # the YAML starts on the line the JSON ends on
    with pytest.raises(ValidationError) as info:
        parse_manifests(text, source="s.yaml")
    column = text.rindex("}") + 1
    assert _errors(info)[0].startswith(f"s.yaml: line 1, column {column}: Invalid value: YAML syntax")


def test_yaml_documents_after_a_json_value_are_numbered_after_it() -> None:
    text = _service("a") + "\n---\n- not an object\n"
    with pytest.raises(ValidationError) as info:
        parse_manifests(text, source="s.yaml")
    assert _errors(info) == ["s.yaml: document 2: Invalid value: expected an object, got array"]


def test_past_two_values_a_stream_stays_json() -> None:
    # "if we found more than 1 JSON object, then this is an unambiguous JSON stream, and we
    # should not switch to YAML": kubectl's error is json's. Before: the whole text was read
    # as YAML, whose error named line 2 (a second flow mapping without `---`).
    text = _service("a") + "\n" + _service("b") + "\n# a comment\n" + _service("c") + "\n"
    with pytest.raises(ValidationError) as info:
        parse_manifests(text, source="s.yaml")
    assert _errors(info) == [
        f"s.yaml: {_place(text, text.index('#'))}: Invalid value: JSON syntax error: Expecting value"]


def test_a_json_file_stays_json_after_its_first_value(tmp_path: Path) -> None:
    # (README's divergence table: a *.json file is never read as YAML)
    text = _service("a") + "\n# a comment\n" + _service("b")
    assert [str(e) for e in _load(tmp_path, text, "s.json").errors] == [
        f"{tmp_path / 's.json'}: line 2, column 1: Invalid value: JSON syntax error: Expecting value"]


# --- 2. line ends ------------------------------------------------------------------------------


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_json_errors_count_every_line_end_as_the_yaml_reader_does(
        tmp_path: Path, newline: str) -> None:
    # Before, a file with lone \r line ends (old Mac editors) got "line 1, column 90"; \r\n
    # was right already (json counts \n). PyYAML counts all three, as editors do.
    lines = ['{"apiVersion": "v1",', '  "kind": "Service",', '  "metadata": {"name": x}}']
    text = newline.join(lines) + newline
    f = tmp_path / "s.json"
    assert [str(e) for e in _load(tmp_path, text, "s.json").errors] == [
        f"{f}: line 3, column 24: Invalid value: JSON syntax error: Expecting value"]
    deep = newline.join(["{", '"a":' + "[" * 600 + "]" * 600, "}"])
    assert [str(e) for e in _load(tmp_path, deep, "s.json").errors] == [
        f"{f}: line 2, column 504: Invalid value: nested more than 500 levels deep"]


# --- 5. serve --config ---------------------------------------------------------------------------

CONFIGMAP = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
             "data": {"ssl-redirect": "false"}}


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_a_utf16_config_file_with_a_byte_order_mark_is_read(tmp_path: Path, encoding: str) -> None:
    # What PowerShell's `>` writes; kubectl reads it (cli-runtime FileVisitor:
    # unicode.BOMOverride). Before: "not UTF-8".
    f = tmp_path / "cm.yaml"
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata:\n  ssl-redirect: 'false'\n"
    bom = "" if encoding == "utf-16" else "\ufeff"
    f.write_bytes((bom + text).encode(encoding))
    assert load_config(f).settings.ssl_redirect is False


def test_a_config_file_that_is_not_utf8_is_still_refused(tmp_path: Path) -> None:
    f = tmp_path / "cm.yaml"
    f.write_bytes(b"apiVersion: v1\nkind: ConfigMap\ndata:\n  ssl-redirect: \"\xff\"\n")
    with pytest.raises(ValidationError, match="not valid UTF-8"):
        load_config(f)


@pytest.mark.parametrize("wrap", ["List", "ConfigMapList", "nested"])
def test_a_configmap_inside_a_list_is_read(tmp_path: Path, wrap: str) -> None:
    # kubectl apply flattens lists (cli-runtime FlattenListVisitor); a typed list's items take
    # its kind (checked with `kubectl label --local -f`). Before: "expected one ConfigMap,
    # found 0".
    item = dict(CONFIGMAP)
    if wrap == "ConfigMapList":
        del item["kind"], item["apiVersion"]
    doc: dict[str, object] = {"apiVersion": "v1", "kind": "ConfigMapList" if wrap ==
                              "ConfigMapList" else "List", "items": [item]}
    if wrap == "nested":
        doc = {"apiVersion": "v1", "kind": "List", "items": [doc, {"kind": "Secret"}]}
    f = tmp_path / "cm.json"
    f.write_text(json.dumps(doc))
    assert load_config(f).settings.ssl_redirect is False


def test_keys_written_twice_in_a_listed_configmap_are_still_told(tmp_path: Path) -> None:
    f = tmp_path / "cm.yaml"
    f.write_text("apiVersion: v1\nkind: ConfigMapList\nitems:\n- metadata: {name: cfg}\n"
                 "  data: {ssl-redirect: 'true'}\n  data: {ssl-redirect: 'false'}\n")
    cfg = load_config(f)
    assert cfg.settings.ssl_redirect is False
    assert [w for w in cfg.warnings if "written twice" in w] == [
        f"{f}: line 6: ConfigMap default/cfg: data: written twice (first at line 5); the last "
        "value is used, as kubectl sends it"]


def test_two_configmaps_in_a_list_are_still_refused(tmp_path: Path) -> None:
    f = tmp_path / "cm.json"
    f.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [CONFIGMAP, CONFIGMAP]}))
    with pytest.raises(ValidationError, match="expected one ConfigMap, found 2"):
        load_config(f)


def test_a_config_file_read_as_utf16_that_holds_no_configmap_says_so(tmp_path: Path) -> None:
    f = tmp_path / "cm.yaml"
    f.write_bytes(b"\xff\xfe\x00not text\x80")  # (binary that starts like a UTF-16 BOM)
    with pytest.raises(ValidationError, match=r"found 0 \(read as UTF-16, not UTF-8"):
        load_config(f)
