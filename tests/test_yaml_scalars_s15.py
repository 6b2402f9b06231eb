"""Plain YAML scalars read as kubectl reads them (session 15, L15).

kubectl turns a YAML manifest into JSON with sigs.k8s.io/yaml before the API server sees it:
go-yaml v2 (the fork goyaml.v2) resolves plain scalars into interface{} (goyaml.v2/resolve.go),
``convertToJSONableObject`` (yaml.go) writes every int, bool and float map key as a string, and
``json.Marshal`` writes the body. ingresslib read manifests with PyYAML's YAML 1.1 resolver,
which disagrees on a number of plain scalars, so the same file was another object here than in
the cluster: refused where kubectl accepts, accepted where the API server refuses, or another
value. Each test below failed before the loader resolved scalars as go-yaml v2 does.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import ingresslib


def service(meta: str = "", spec: str = "ports: [{port: 80}]", extra: str = "") -> str:
    return (f"apiVersion: v1\nkind: Service\nmetadata:\n  name: svc\n{meta}"
            f"spec:\n  {spec}\n{extra}")


def ingress(host: str) -> str:
    return ("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web}\n"
            f"spec:\n  rules:\n  - host: {host}\n    http:\n      paths:\n      - path: /\n"
            "        pathType: Prefix\n"
            "        backend: {service: {name: svc, port: {number: 80}}}\n")


def errors_of(text: str) -> list[str]:
    with pytest.raises(ingresslib.ValidationError) as info:
        ingresslib.parse_manifests(text)
    return [str(e) for e in info.value.errors]


def labels(text: str) -> dict[str, str]:
    return dict(ingresslib.parse_manifests(text).services[0].metadata.labels)


def annotations(text: str) -> dict[str, str]:
    return dict(ingresslib.parse_manifests(text).services[0].metadata.annotations)


# --- y / n: booleans in go-yaml v2 ("y", "Y", "yes", ... in resolveMap), strings in PyYAML ----


@pytest.mark.parametrize("word", ["y", "Y", "n", "N"])
def test_y_and_n_hosts_are_booleans_as_kubectl_sends_them(word: str) -> None:
    # kubectl sends "host": true; the API server: cannot unmarshal bool into ... of type string.
    assert errors_of(ingress(word)) == [
        f"Ingress default/web: spec.rules[0].host: Invalid value: {str(word in 'yY').lower()}: "
        "expected string, got boolean"]


def test_y_and_n_label_values_are_booleans() -> None:
    assert errors_of(service("  labels: {enabled: n, on: Y}\n")) == [
        "Service default/svc: metadata.labels[enabled]: Invalid value: false: expected string, "
        "got boolean; quote the value",
        "Service default/svc: metadata.labels[true]: Invalid value: true: expected string, "
        "got boolean; quote the value",
    ]


def test_y_and_n_keys_are_the_keys_true_and_false() -> None:
    assert labels(service("  labels: {y: a, N: b}\n")) == {"true": "a", "false": "b"}


def test_the_yaml_1_1_words_both_read_as_booleans_stay_booleans() -> None:
    # (yes/no/on/off and their case forms: booleans in both resolvers; unchanged.)
    assert labels(service("  labels: {yes: a, Off: b}\n")) == {"true": "a", "false": "b"}


# --- base 60: PyYAML's 12:30 is the int 750; go-yaml v2 has no base 60 (a string) -------------


@pytest.mark.parametrize("text", ["12:30", "1:30.5", "-1:00", "190:20:30"])
def test_base_60_looking_annotations_are_strings(text: str) -> None:
    assert annotations(service(f"  annotations: {{at: {text}}}\n")) == {"at": text}


# --- numbers go-yaml v2 reads and PyYAML does not (strconv.ParseInt base 0, yamlStyleFloat) ---


@pytest.mark.parametrize("text", ["0o17", "0O17", "0X1F", "0B101", "08", "1e3", "1.5e3", "+.5",
                                  "-.5", ".5e3", "+_1"])
def test_numbers_of_go_yaml_are_not_string_annotations(text: str) -> None:
    # The annotation reaches the API server as a JSON number: refused (a string in PyYAML).
    (err,) = errors_of(service(f"  annotations: {{a: {text}}}\n"))
    assert err.startswith("Service default/svc: metadata.annotations[a]: Invalid value: ")
    assert err.endswith(("expected string, got integer; quote the value",
                         "expected string, got number; quote the value"))


@pytest.mark.parametrize(("text", "port"), [("80.0", 80), ("8e1", 80), ("0o120", 80),
                                            ("0_80", 80), ("08", 8)])
def test_numbers_kubectl_sends_as_integers_are_port_numbers(text: str, port: int) -> None:
    # json.Marshal writes the float64 80 as `80`, which the int32 port takes.
    res = ingresslib.parse_manifests(service(spec=f"ports: [{{port: {text}}}]"))
    assert res.services[0].spec.ports[0].port == port


def test_underscore_only_number_texts_do_not_crash_the_load() -> None:
    # PyYAML matched `0x_` / `0b_` as integers and then raised ValueError (int('', 16)), which
    # escaped load_manifests; go-yaml drops the underscores and reads the string "0x_".
    assert annotations(service("  annotations: {a: 0x_, b: 0b_, c: -0b_}\n")) == {
        "a": "0x_", "b": "0b_", "c": "-0b_"}


# --- other entries of the resolver tables -------------------------------------------------------


def test_an_equals_sign_is_a_string() -> None:
    # PyYAML resolves `=` to tag:yaml.org,2002:value, which the safe loader cannot construct
    # (the file was refused); go-yaml v2 reads the string "=".
    assert annotations(service("  annotations: {op: =}\n")) == {"op": "="}


def test_a_plain_merge_sign_that_is_not_a_key_is_a_string() -> None:
    assert annotations(service("  annotations: {op: <<}\n")) == {"op": "<<"}


def test_non_finite_numbers_refuse_the_file_as_kubectl_does(tmp_path: Path) -> None:
    # json.Marshal: "json: unsupported value: +Inf": kubectl sends nothing. Before, a .inf in a
    # field ingresslib does not read (status) loaded.
    f = tmp_path / "svc.yaml"
    f.write_text(service(extra="status: {x: .inf}\n"))
    with pytest.raises(ingresslib.ValidationError) as info:
        ingresslib.load_manifests(f)
    assert [str(e) for e in info.value.errors] == [
        f"{f}: line 7, column 13: Invalid value: .inf: not a JSON number "
        "(kubectl: json: unsupported value: +Inf)"]


def test_dates_stay_strings() -> None:
    # (Guard: go-yaml v2 sets a timestamp-looking scalar as a string in interface{}; the loader
    # already dropped PyYAML's timestamps, still so.)
    assert annotations(service("  annotations: {d: 2001-12-14, t: 2001-12-14T21:59:43Z}\n")) == {
        "d": "2001-12-14", "t": "2001-12-14T21:59:43Z"}


# --- map keys: convertToJSONableObject writes int, bool and float keys as strings ------------


def test_keys_one_and_true_are_two_keys() -> None:
    # A Python dict holds 1 and True as one key (the label "true" was lost); JSON has two.
    assert labels(service("  labels: {1: a, true: b}\n")) == {"1": "a", "true": "b"}


def test_float_keys_are_written_as_go_formats_them() -> None:
    # strconv.FormatFloat(key, 'g', -1, 32): before, a float key was refused.
    assert labels(service("  labels: {1.5: a, 2.0: b, 0.1: c}\n")) == {
        "1.5": "a", "2": "b", "0.1": "c"}


@pytest.mark.parametrize(("key", "text"), [(1e7, "1e+07"), (123456.0, "123456"),
                                           (1234567.0, "1.234567e+06"), (1e-5, "1e-05"),
                                           (16777217.0, "1.6777216e+07"), (-0.0, "-0"),
                                           (1e39, ".inf"), (float("nan"), ".nan")])
def test_float_key_text(key: float, text: str) -> None:
    # ('g' with the shortest digits of the float32: %e from exponent 6 or below -4.)
    from ingresslib._load import _go_float_key
    assert _go_float_key(key) == text


def test_a_key_written_as_number_and_as_string_is_written_twice() -> None:
    # Both are the JSON key "1" (which kubectl keeps is Go's map order: undefined): a warning.
    res = ingresslib.parse_manifests(service("  labels: {1: a, '1': b}\n"))
    assert [(w.field, w.type) for w in res.warnings] == [("metadata.labels[1]", "duplicate field")]


# --- merge keys: go-yaml v2 merges where the `<<` stands -------------------------------------


def test_a_merge_after_a_key_overrides_it_as_go_yaml_v2_does() -> None:
    # decoder.mapping sets the merged map's keys when it meets `<<` (PyYAML: explicit keys
    # always win); keys after the merge still override it.
    text = service("  annotations:\n    a: mine\n    <<: {a: base, b: base, c: base}\n    c: mine\n")
    assert annotations(text) == {"a": "base", "b": "base", "c": "mine"}


def test_a_merge_of_a_list_lets_the_first_map_win() -> None:
    text = service("  annotations:\n    <<: [{a: first}, {a: second, b: second}]\n")
    assert annotations(text) == {"a": "first", "b": "second"}


# --- errors and the process ---------------------------------------------------------------------


def test_an_explicit_tag_go_yaml_refuses_is_an_error_with_its_line(tmp_path: Path) -> None:
    f = tmp_path / "svc.yaml"
    f.write_text(service("  annotations: {a: !!int 12:30}\n"))
    with pytest.raises(ingresslib.ValidationError) as info:
        ingresslib.load_manifests(f)
    assert [str(e) for e in info.value.errors] == [
        f"{f}: line 5, column 20: Invalid value: YAML syntax error: "
        "cannot decode !!str `12:30` as a !!int"]


def test_pyyaml_itself_is_left_as_it_was() -> None:
    # (Guard: only the loader's own class resolves otherwise; yaml.safe_load elsewhere in the
    # process keeps YAML 1.1.)
    ingresslib.parse_manifests(service("  labels: {y: a}\n"))
    assert yaml.safe_load("a: y\nb: 12:30\nc: 2001-12-14") == {
        "a": "y", "b": 750, "c": __import__("datetime").date(2001, 12, 14)}


def test_a_configmap_with_a_number_pyyaml_cannot_read_is_a_validation_error(
        tmp_path: Path) -> None:
    # ``serve --config``: PyYAML matched ``0x_`` as an int, then int('', 16) raised out of
    # load_config (a traceback instead of exit 2). Since session 16 the ConfigMap is read as
    # kubectl reads it (go-yaml: the string "0x_"), refused as a value of its key.
    from ingresslib._config import load_config

    f = tmp_path / "cm.yaml"
    f.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
                 "data: {keep-alive: 0x_}\n")
    with pytest.raises(ingresslib.ValidationError, match='data.keep-alive: Invalid value: "0x_"'):
        load_config(f)
