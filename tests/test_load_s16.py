"""Manifest loading, session 16 (L16): how text becomes objects, as kubectl and the API server
read it.

- JSON input took ``NaN``, ``Infinity`` and ``-Infinity`` (Python's json reads them as floats);
  JSON has no such values and Go's encoding/json stops at them ("invalid character 'N' looking
  for beginning of value"). A ``*.json`` file holding one is now refused with its line and
  column, as any JSON syntax error there. Text that only looks like JSON falls back to the
  YAML reader when json refuses it (what kubectl does since kubernetes/kubernetes#130666,
  apimachinery util/yaml ``YAMLOrJSONDecoder``: "will detect a failure to parse as JSON and
  instead flip to YAML parsing"), where a plain ``NaN`` is the string "NaN" (go-yaml v2's
  resolve table: not a word of its map, not a number): as kubectl sends it.
- Map keys kubectl's YAML-to-JSON step cannot write (integers of 2^63 and more, which go-yaml
  v2 reads as uint64 or *big.Int, and null) were kept; kubectl refuses the document
  (sigs.k8s.io/yaml convertToJSONableObject: "unsupported map key of type").
- ``Resources.from_dicts`` with the label keys ``1`` and ``"1"`` kept the last silently; the
  same two keys in YAML are a ``duplicate field`` warning.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import ingresslib
from ingresslib import Resources, ValidationError, load_manifests, parse_manifests
from ingresslib.proxy._settings import ProxySettings


def _service(extra: str = '"x": 1', annotations: str = '{"a": "b"}') -> str:
    """A Service as one line of JSON, ``extra`` an unknown field of its spec."""
    return ('{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", '
            f'"annotations": {annotations}}}, "spec": {{"ports": [{{"port": 80}}], {extra}}}}}')


def _errors(exc: pytest.ExceptionInfo[ValidationError]) -> list[str]:
    return [str(e) for e in exc.value.errors]


# --- 1. NaN and Infinity in JSON ----------------------------------------------------------------


@pytest.mark.parametrize(("word", "char", "where", "shift"), [
    ("NaN", "N", "looking for beginning of value", 0),
    ("Infinity", "I", "looking for beginning of value", 0),
    ("-Infinity", "I", "in numeric literal", 1),
])
@pytest.mark.parametrize("shape", ["object", "array", "stream"])
def test_a_json_file_with_nan_or_infinity_is_refused_with_its_line(
        tmp_path: Path, word: str, char: str, where: str, shift: int, shape: str) -> None:
    # Before: loaded; the value was a Python float nan/inf (in Resources.ignored, or an unknown
    # field: json.dumps of it writes NaN, which no JSON reader takes back).
    bad = _service(f'"x": {word}')
    text = {"object": bad, "array": f"[{_service()},\n {bad}]",
            "stream": f"{_service()}\n{bad}\n{_service()}"}[shape]
    f = tmp_path / "svc.json"
    f.write_text(text)
    line = 1 if shape == "object" else 2
    col = bad.index(word) + 1 + shift + (1 if shape == "array" else 0)
    with pytest.raises(ValidationError) as info:
        load_manifests(f)
    assert _errors(info) == [
        f"{f}: line {line}, column {col}: Invalid value: JSON syntax error: {word} is not a "
        f"JSON value (kubectl: invalid character '{char}' {where})"]


def test_nan_in_an_object_of_a_kind_kept_aside_is_refused_too(tmp_path: Path) -> None:
    f = tmp_path / "cm.json"
    f.write_text('{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},\n'
                 ' "data": {"a": NaN}}')
    with pytest.raises(ValidationError, match=r"line 2, column 16: .*NaN is not a JSON value"):
        load_manifests(f)


def test_nan_inside_a_json_string_is_text() -> None:
    # (What finds the word skips strings: an escaped quote does not end one.)
    text = _service('"x": "NaN \\" Infinity"', annotations='{"NaN": "-Infinity"}')
    res = parse_manifests(text, source="w.json")
    assert dict(res.services[0].metadata.annotations) == {"NaN": "-Infinity"}


@pytest.mark.parametrize("word", ["NaN", "Infinity", "-Infinity"])
def test_text_that_looks_like_json_reads_the_word_as_yaml_does(word: str) -> None:
    # json refuses it, so the text is read as (flow) YAML, as kubectl reads it: go-yaml's
    # plain `NaN` is a string, so the annotation is the string kubectl sends. Before: a float
    # here ("expected string, got number"), the string in the cluster.
    res = parse_manifests(_service(annotations=f'{{"a": {word}}}'))
    assert dict(res.services[0].metadata.annotations) == {"a": word}


def test_an_int32_field_written_nan_in_text_that_looks_like_json_is_a_string_there() -> None:
    with pytest.raises(ValidationError) as info:
        parse_manifests(_service().replace('"port": 80', '"port": NaN'))
    assert _errors(info) == [
        'Service default/web: spec.ports[0].port: Invalid value: "NaN": expected integer, '
        "got string"]


def test_yaml_nan_in_text_that_looks_like_json_is_still_refused() -> None:
    # `.nan` is go-yaml's NaN, which json.Marshal refuses: unchanged, and consistent with it.
    text = _service('"x": .nan')
    with pytest.raises(ValidationError) as info:
        parse_manifests(text, source="t")
    assert _errors(info) == [
        f"t: line 1, column {text.index('.nan') + 1}: Invalid value: .nan: "
        "not a JSON number (kubectl: json: unsupported value: NaN)"]


def test_a_json_stream_with_nan_in_a_later_value_is_refused() -> None:
    # Before: three Services, one holding a float NaN. Now json refuses the value. (Session
    # 17: as kubectl's YAMLOrJSONDecoder, a second value json refuses is read as YAML, where
    # NaN is the string "NaN"; from the third on the stream is JSON and NaN an error.)
    text = _service() + "\n" + _service('"x": NaN') + "\n"
    assert [str(w) for w in parse_manifests(text, source="t").warnings] == [
        't: Service default/web: unknown field "spec.x"'] * 2
    text = _service() + "\n" + text
    column = text.rindex("NaN") - text.rindex("\n", 0, text.rindex("NaN"))
    with pytest.raises(ValidationError,
                       match=f"t: line 3, column {column}: Invalid value: JSON syntax error: NaN"):
        parse_manifests(text, source="t")


def test_json_numbers_and_keys_are_unchanged() -> None:
    svc = json.loads(_service())
    svc["spec"]["x"] = [1.5, -0.0, 1e300, True, None, "NaN"]
    for text in (json.dumps(svc), json.dumps([svc, svc]), json.dumps(svc) + json.dumps(svc)):
        res = parse_manifests(text, source="w.json")
        assert res.services[0].metadata.name == "web"
        assert [str(w) for w in res.warnings][0] == 'w.json: Service default/web: unknown field "spec.x"'


# --- 2. serve --config reads the ConfigMap as kubectl apply does -------------------------------

CM_HEAD = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg, namespace: ingress}\ndata:\n"


def _config_file(tmp_path: Path, data: str, name: str = "cm.yaml") -> Path:
    f = tmp_path / name
    f.write_text(CM_HEAD + data)
    return f


def _config_errors(f: Path) -> list[str]:
    from ingresslib._config import load_config

    with pytest.raises(ValidationError) as info:
        load_config(f)
    return [str(e) for e in info.value.errors]


@pytest.mark.parametrize(("value", "shown", "json_type", "go_type"), [
    ("yes", "true", "boolean", "bool"), ("true", "true", "boolean", "bool"),
    ("True", "true", "boolean", "bool"), ("on", "true", "boolean", "bool"),
    ("y", "true", "boolean", "bool"), ("off", "false", "boolean", "bool"),
    ("1", "1", "integer", "number"), ("1_0", "10", "integer", "number"),
    ("1.5", "1.5", "number", "number"),
])
def test_a_configmap_value_that_is_no_string_is_refused_as_the_api_server_does(
        tmp_path: Path, value: str, shown: str, json_type: str, go_type: str) -> None:
    # Before: PyYAML's YAML 1.1 read `yes`/`on`/`true` as True, str() made it "True", which
    # ParseBool takes: use-forwarded-headers was on, where `kubectl apply` of this ConfigMap
    # fails (ConfigMap.data is map[string]string) and ingress-nginx never sees it.
    f = _config_file(tmp_path, f"  use-forwarded-headers: {value}\n")
    assert _config_errors(f) == [
        f"{f}: ConfigMap ingress/cfg: data.use-forwarded-headers: Invalid value: {shown}: "
        f"expected string, got {json_type} (kubectl apply: json: cannot unmarshal {go_type} "
        "into Go struct field ConfigMap.data of type string); quote the value"]


def test_quoted_values_and_null_are_read_as_before(tmp_path: Path) -> None:
    from ingresslib._config import load_config

    cfg = load_config(_config_file(tmp_path, "  use-forwarded-headers: 'true'\n"
                                             '  keep-alive: "10"\n  proxy-real-ip-cidr:\n'))
    assert cfg.settings.use_forwarded_headers is True and cfg.settings.keep_alive == 10.0
    assert cfg.settings.proxy_real_ip_cidr == ()  # null: Go's "" 


def test_a_value_pyyaml_read_as_base_60_is_the_string_kubectl_sends(tmp_path: Path) -> None:
    # Before: `keep-alive: 1:00` was 60 (YAML 1.1 base 60); go-yaml v2 reads the string "1:00",
    # which ingress-nginx's ParseInt refuses: an error here, as any unit is.
    f = _config_file(tmp_path, "  keep-alive: 1:00\n")
    assert _config_errors(f) == [
        f'{f}: ConfigMap ingress/cfg: data.keep-alive: Invalid value: "1:00": must be a whole '
        'number of seconds, without a unit, such as "60"']


def test_values_go_yaml_reads_as_strings_load(tmp_path: Path) -> None:
    # Before: `0x_` (PyYAML: an int it cannot build) and `=` (PyYAML: the value tag) stopped
    # the load; go-yaml reads both as strings, so kubectl applies this ConfigMap. Unknown
    # keys: warnings, as for any other.
    from ingresslib._config import load_config

    cfg = load_config(_config_file(tmp_path, "  x-a: 0x_\n  x-b: =\n"))
    assert cfg.warnings == ("ConfigMap ingress/cfg: data.x-a: unknown key, ignored",
                            "ConfigMap ingress/cfg: data.x-b: unknown key, ignored")


def test_a_configmap_key_written_twice_is_a_warning_with_its_lines(tmp_path: Path) -> None:
    # Before: the first value was dropped without a word.
    from ingresslib._config import load_config

    f = _config_file(tmp_path, "  keep-alive: '5'\n  hsts: 'false'\n  keep-alive: '7'\n")
    cfg = load_config(f)
    assert cfg.settings.keep_alive == 7.0  # go-yaml v2 keeps the last, as kubectl sends it
    assert cfg.warnings == (
        f"{f}: line 7: ConfigMap ingress/cfg: data.keep-alive: written twice (first at line "
        "5); the last value is used, as kubectl sends it",)
    # `data:` itself written twice: the first map is gone entirely.
    f.write_text(CM_HEAD + "  keep-alive: '5'\ndata:\n  hsts: 'false'\n")
    cfg = load_config(f)
    assert cfg.settings.keep_alive == ProxySettings().keep_alive
    assert cfg.warnings == (
        f"{f}: line 6: ConfigMap ingress/cfg: data: written twice (first at line 4); the "
        "last value is used, as kubectl sends it",)
    # JSON: the key, no line (json does not tell where).
    j = tmp_path / "cm.json"
    j.write_text('{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},\n'
                 ' "data": {"keep-alive": "1", "keep-alive": "2"}}')
    assert load_config(j).warnings == (
        f"{j}: ConfigMap default/c: data.keep-alive: written twice; the last value is used, "
        "as kubectl sends it",)


def test_a_configmap_syntax_error_names_the_file_and_line_on_one_line(tmp_path: Path) -> None:
    # Before: PyYAML's message over five lines, naming "<unicode string>".
    f = _config_file(tmp_path, "  keep-alive: '5\n")
    assert _config_errors(f) == [
        f"{f}: line 6, column 1: Invalid value: YAML syntax error: found unexpected end of "
        "stream (while scanning a quoted scalar)"]


def test_nan_in_a_configmap_is_refused_with_its_line(tmp_path: Path) -> None:
    # Before: `.nan` became the value "nan" (and JSON's NaN "NaN"), refused by the key's parser
    # with no line; kubectl refuses the file.
    f = _config_file(tmp_path, "  keep-alive: .nan\n")
    assert _config_errors(f) == [
        f"{f}: line 5, column 15: Invalid value: .nan: not a JSON number (kubectl: json: "
        "unsupported value: NaN)"]
    j = tmp_path / "cm.json"
    j.write_text('{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},\n'
                 ' "data": {"x-unknown": NaN}}')
    assert _config_errors(j) == [
        f"{j}: line 2, column 24: Invalid value: JSON syntax error: NaN is not a JSON value "
        "(kubectl: invalid character 'N' looking for beginning of value)"]


def test_serve_with_such_a_configmap_exits_2_naming_the_file(tmp_path: Path) -> None:
    # A child process with a time limit: a ConfigMap accepted by mistake would have it serve
    # (127.0.0.1, a free port) until killed.
    m = tmp_path / "svc.yaml"
    m.write_text("apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
                 "spec: {ports: [{port: 80}]}\n")
    for data in ("  use-forwarded-headers: on\n", "  keep-alive: .inf\n", "  a: [\n"):
        f = _config_file(tmp_path, data)
        try:
            done = subprocess.run(
                [sys.executable, "-m", "ingresslib", "serve", "-f", str(m), "--config", str(f),
                 "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"],
                capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"serve ran with {data.strip()!r} (killed after 60 s)")
        assert done.returncode == 2 and done.stderr.startswith(f"{f}: "), done.stderr
        assert "Traceback" not in done.stderr and "listening on" not in done.stderr


# --- 3. map keys kubectl's YAML-to-JSON step cannot write ---------------------------------------


def _labelled(labels: str) -> str:
    return ("apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n"
            f"  labels: {labels}\nspec: {{ports: [{{port: 80}}]}}\n")


@pytest.mark.parametrize(("key", "go_type"), [
    ("9223372036854775808", "uint64"),            # 2^63: ParseInt fails, ParseUint takes it
    ("18446744073709551615", "uint64"),           # 2^64 - 1
    ("0x8000000000000000", "uint64"),
    ("0b" + "1" * 64, "uint64"),
    ("0x10000000000000000", "*big.Int"),          # ParseUint: ErrRange, no float syntax
    ("0o4000000000000000000000", "*big.Int"),
    ("~", "<nil>"), ("null", "<nil>"),
])
def test_a_map_key_kubectl_cannot_write_refuses_the_document(key: str, go_type: str) -> None:
    # Before: the label "9223372036854775808" (the decoder stringified keys up to 2^64), a
    # key kept as a Python int or None elsewhere (an unknown field, an object kept aside).
    # sigs.k8s.io/yaml convertToJSONableObject: `default: return nil, fmt.Errorf("unsupported
    # map key of type: %s, ...")`: kubectl applies nothing.
    for text in (_labelled(f"{{{key}: a}}"),
                 _labelled("{}").replace("spec:", f"other:\n  {key}: a\nspec:")):
        with pytest.raises(ValidationError) as info:
            parse_manifests(text, source="f")
        line, col = (5, 12) if "labels: {" + key in text else (7, 3)
        assert _errors(info) == [
            f"f: line {line}, column {col}: Invalid value: {key}: not a JSON map key (kubectl: "
            f"unsupported map key of type: {go_type})"]


def test_map_keys_kubectl_writes_are_unchanged() -> None:
    # The int64 range is written as strconv.Itoa does; a decimal beyond uint64 is a float64
    # in go-yaml, written as FormatFloat(.., 'g', -1, 32) does.
    res = parse_manifests(_labelled("{9223372036854775807: a, 0x7fffffffffffffff: b}"))
    assert [str(w) for w in res.warnings] == [  # one key, written twice
        'Service default/s: duplicate field "metadata.labels[9223372036854775807]"']
    assert dict(res.services[0].metadata.labels) == {"9223372036854775807": "b"}
    with pytest.raises(ValidationError, match='"1.8446744e[+]19": name part must consist'):
        parse_manifests(_labelled("{18446744073709551616: a}"))


@pytest.mark.parametrize("key", [1 << 63, (1 << 64) - 1, -(1 << 63) - 1, 1 << 70])
def test_an_int_key_out_of_int64_range_in_a_dict_is_refused(key: int) -> None:
    # Before: 2^63 .. 2^64-1 were stringified (int64 and uint64 alike); Go's keys are int.
    obj = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": "s", "labels": {key: "a", "app": "web"}},
           "spec": {"ports": [{"port": 80}]}}
    with pytest.raises(ValidationError) as info:
        Resources.from_dicts([obj])
    assert _errors(info) == [
        f"Service default/s: metadata.labels[{key}]: Invalid value: {key}: expected string "
        "key, got integer"]
    obj["metadata"]["labels"] = {(1 << 63) - 1: "a"}  # type: ignore[index]
    assert dict(Resources.from_dicts([obj]).services[0].metadata.labels) == {
        str((1 << 63) - 1): "a"}


# --- 4. one key written as a number and as a string, in a dict ----------------------------------


@pytest.mark.parametrize(("labels", "kept", "path"), [
    ({1: "a", "1": "b"}, "b", "metadata.labels[1]"),
    ({"1": "b", 1: "a"}, "a", "metadata.labels[1]"),
    ({True: "a", "app": "x", "true": "b"}, "b", "metadata.labels.true"),
])
def test_a_key_given_as_number_and_string_in_a_dict_warns_as_yaml_does(
        labels: dict[object, str], kept: str, path: str) -> None:
    # Before: one silently replaced the other. The same two keys in YAML were already a
    # `duplicate field` warning (kubectl sends one of them, Go's map order deciding which).
    obj = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "labels": labels},
           "spec": {"ports": [{"port": 80}]}}
    res = Resources.from_dicts([obj])
    key = path.replace("metadata.labels", "").strip(".[]")
    assert res.services[0].metadata.labels[key] == kept
    assert [str(w) for w in res.warnings] == [f'Service default/s: duplicate field "{path}"']
    yaml_text = _labelled("{" + ", ".join(
        f"{k if not isinstance(k, str) else repr(k)}: {v}" for k, v in labels.items()) + "}")
    assert [w.field for w in parse_manifests(yaml_text).warnings] == [path]


def test_keys_that_stay_distinct_give_no_warning() -> None:
    obj = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": "s", "labels": {1: "a", "2": "b"}, "annotations": {True: "t"}},
           "spec": {"ports": [{"port": 80}]}}
    res = Resources.from_dicts([obj])
    assert res.warnings == ()
    assert dict(res.services[0].metadata.labels) == {"1": "a", "2": "b"}


# --- JSON nesting is checked on the parsed objects ----------------------------------------------


def _big_json_list(n: int) -> str:
    items = [json.loads(_service().replace('"web"', f'"web{i}"')) for i in range(n)]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


@pytest.mark.parametrize("indent", [None, 2])
def test_valid_json_does_not_go_through_the_yaml_event_pass(
        monkeypatch: pytest.MonkeyPatch, indent: int | None) -> None:
    # Before: any JSON text with more than 500 brackets (a List of ~100 Services, minified or
    # as `kubectl get -o json` prints it) was run through libyaml's event parser first, to
    # bound its nesting: about half the load of a 10,000-rule JSON List.
    from ingresslib import _load

    def event_pass(text: str) -> None:
        raise AssertionError("the YAML event pass ran over JSON")

    monkeypatch.setattr(_load, "_too_deep", event_pass)
    text = _big_json_list(300)
    if indent:
        text = json.dumps(json.loads(text), indent=indent)
    for data in (text, text.replace('"kind": "List", ', '"kind": "List",\n')):
        assert len(parse_manifests(data).services) == 300
    stream = "\n".join(json.dumps(i) for i in json.loads(text)["items"])
    assert len(parse_manifests(stream).services) == 300


@pytest.mark.parametrize(("depth", "refused"), [(500, False), (501, True), (900, True),
                                                (3000, True)])
@pytest.mark.parametrize("shape", ["array", "object", "stream", "file"])
def test_json_nesting_limit_is_the_same_as_before(tmp_path: Path, depth: int, refused: bool,
                                                  shape: str) -> None:
    inner = "[" * (depth - 1) + "]" * (depth - 1)
    text = {"array": "[" + inner + "]",
            "object": '{"a": ' + inner + "}",
            "stream": '{"b": 1}\n{"a": ' + inner + "}",
            "file": '{"a":\n ' + inner + "}"}[shape]
    line, col = {"array": (1, 501), "object": (1, 506), "stream": (2, 506), "file": (2, 501)}[shape]
    if shape == "file":
        f = tmp_path / "deep.json"
        f.write_text(text)
        source = str(f)
    with pytest.raises(ValidationError) as info:
        if shape == "file":
            load_manifests(f)
        else:
            source = "t"
            parse_manifests(text, source=source)
    errors = _errors(info)
    deep = f"{source}: line {line}, column {col}: Invalid value: nested more than 500 levels deep"
    if refused:
        assert errors == [deep]
    else:
        assert deep not in errors and not any("nested" in e for e in errors)


def test_json_that_falls_back_to_yaml_is_still_bounded_before_the_yaml_parser() -> None:
    # Not JSON (a trailing comma), so read as YAML: the bound runs before libyaml composes it.
    text = '{"a": ' + "[" * 600 + "]" * 600 + ",}"
    with pytest.raises(ValidationError, match="t: line 1, column 506: Invalid value: nested"):
        parse_manifests(text, source="t")
