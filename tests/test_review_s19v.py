"""Session 19 review (Q19v) of the manifest path: load, decode, validate."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import ingresslib
from ingresslib import ValidationError

SERVICE = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n"


def _errors(text: str | bytes, source: str = "deploy/web.yaml") -> list[str]:
    with pytest.raises(ValidationError) as info:
        ingresslib.parse_manifests(text, source=source)
    return [str(e) for e in info.value.errors]


# --- a character YAML does not allow: file, line and column, one line of text ---------------


@pytest.mark.parametrize("as_bytes", [False, True])
def test_a_control_character_names_its_line_and_column(as_bytes: bool) -> None:
    # An ESC of pasted colored terminal output, after non-ASCII text (libyaml counts the
    # offset in UTF-8 bytes: the column must still be the character's). Before, the error had
    # no line and PyYAML's two-line text: '... not allowed\n  in "<unicode string>", position 95'.
    text = SERVICE + "# café ééé\nstatus: \x1b[0m\n"
    data = text.encode() if as_bytes else text
    assert _errors(data) == [
        "deploy/web.yaml: line 6, column 9: Invalid value: YAML syntax error: unacceptable "
        "character #x001b: control characters are not allowed"]


def test_a_nul_byte_in_a_file_names_its_line(tmp_path: Path) -> None:
    f = tmp_path / "web.yaml"
    f.write_bytes(SERVICE.encode() + b"---\nkind: \x00\n")
    with pytest.raises(ValidationError) as info:
        ingresslib.load_manifests(f)
    (err,) = info.value.errors
    assert str(err) == (f"{f}: line 6, column 7: Invalid value: YAML syntax error: unacceptable "
                        "character #x0000: control characters are not allowed")
    assert "\n" not in str(info.value)


# --- a str that no UTF-8 file can be: an error, not a UnicodeEncodeError --------------------


@pytest.mark.parametrize("text", [
    "apiVersion: v1\nkind: Service\nmetadata: {name: caf\udce9}\n",  # surrogateescape'd Latin-1
    '{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "caf\udce9"}}',
])
def test_a_lone_surrogate_in_text_is_an_error_naming_its_place(text: str) -> None:
    # parse_manifests(str) raised UnicodeEncodeError from inside libyaml's parser (the text
    # is handed to it as UTF-8); the JSON form loaded a name no UTF-8 file can hold.
    line, column = (3, 21) if text.startswith("api") else (1, 66)
    assert _errors(text) == [
        f"deploy/web.yaml: line {line}, column {column}: Invalid value: not valid UTF-8: "
        "lone surrogate U+DCE9"]


def test_escaped_surrogates_in_json_text_are_left_as_before() -> None:
    # The check is on the text itself; a JSON escape is ASCII text (what json makes of it is
    # unchanged by this review).
    res = ingresslib.parse_manifests(
        '{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", '
        '"annotations": {"a": "\\u00e9"}}, "spec": {"ports": [{"port": 80}]}}')
    assert res.services[0].metadata.annotations["a"] == "é"


# --- an integral JSON number: what kubectl sends is an integer --------------------------------


@pytest.mark.parametrize("number", ["80.0", "8e1", "8.0E+1", "800e-1"])
@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_an_integral_json_number_is_a_port_as_kubectl_sends_it(tmp_path: Path, number: str,
                                                               suffix: str) -> None:
    # kubectl decodes a JSON file into an unstructured object (sigs.k8s.io/json: an integer
    # literal is an int64, anything else a float64) and sends json.Marshal of it: float64 80 is
    # written `80`, which the int32 port takes. The same number in YAML (`port: 80.0`) loaded;
    # in a JSON file it was refused: "spec.ports[0].port: Invalid value: 80.0: expected
    # integer, got number".
    f = tmp_path / f"svc{suffix}"
    f.write_text('{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, '
                 f'"spec": {{"ports": [{{"port": {number}, "targetPort": 8080}}]}}}}')
    res = ingresslib.load_manifests(f)
    port = res.services[0].spec.ports[0].port
    assert port == 80 and type(port) is int


def test_a_fractional_json_number_is_still_refused() -> None:
    text = ('{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, '
            '"spec": {"ports": [{"port": 80.5}]}}')
    assert _errors(text) == [
        "deploy/web.yaml: Service default/web: spec.ports[0].port: Invalid value: 80.5: "
        "expected integer, got number"]


def test_a_json_number_past_1e21_stays_a_float() -> None:
    # json.Marshal writes 1e21 and above with an exponent ("1e+21"): no int32 takes it.
    text = ('{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, '
            '"spec": {"ports": [{"port": 1e21}]}}')
    (err,) = _errors(text)
    assert err.endswith("spec.ports[0].port: Invalid value: 1e+21: expected integer, got number")


# --- `port: {name: http, number: 0}`: the number 0 is no number ---------------------------------

ZERO_NUMBER = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  rules:
  - host: a.example.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {name: http, number: 0}}}}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec: {ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
endpoints: [{addresses: [10.0.0.1]}]
ports: [{name: http, port: 8080}]
"""


def test_a_zero_port_number_beside_a_name_routes_to_the_named_port() -> None:
    # validateIngressBackend: `hasPortNumber := backend.Service.Port.Number != 0`: valid, the
    # port is "http" (stored without the number, `json:"number,omitempty"`). The route went to
    # port 0, which no Service has: a 503 for a manifest the cluster serves.
    res = ingresslib.parse_manifests(ZERO_NUMBER)
    decision = ingresslib.Router(res).route("GET", "a.example.com", "/")
    assert decision is not None and decision.match is not None
    assert decision.match.port == "http"
    assert decision.endpoint == ("10.0.0.1", 8080)


def test_a_zero_port_number_alone_is_still_no_port() -> None:
    (err,) = _errors(ZERO_NUMBER.replace("name: http, number: 0", "number: 0"))
    assert err == ("deploy/web.yaml: Ingress default/web: spec.rules[0].http.paths[0].backend: "
                   "Required value: port name or number is required")


# --- any text: a ValidationError naming the file and a place, never another exception --------

_PIECES = st.sampled_from([
    "apiVersion: v1\n", "kind: Service\n", "metadata: {name: web}\n", "spec: {ports: [{port: 80}]}\n",
    "---\n", "{", "}", "[", "]", ": ", "- ", "\t", "\r\n", "\ufeff", "\x00", "\x1b", "\x85", "\ufffe",
    "\ud800", "\udce9", "é", "&a ", "*a ", "80.0", "8e1", "'", '"',
])


@given(st.lists(_PIECES, max_size=12).map("".join))
def test_any_text_loads_or_raises_a_validation_error_naming_the_file(text: str) -> None:
    try:
        ingresslib.parse_manifests(text, source="deploy/web.yaml")
    except ValidationError as exc:
        for err in exc.errors:
            shown = str(err)
            assert shown.startswith("deploy/web.yaml: ")
            # One line per error (PyYAML's reader errors were two, with "<unicode string>").
            assert "\n" not in shown and "<unicode string>" not in shown


# --- a byte order mark before an anchor: the alias checks still run ----------------------------


@pytest.mark.parametrize("text", [
    "\ufeff&a {kind: ConfigMap, apiVersion: v1, metadata: {name: x}, data: *a}\n",
    "\ufeff&a {kind: Service, apiVersion: v1, metadata: *a, spec: {ports: [{port: 80}]}}\n",
])
def test_a_recursive_document_after_a_bom_is_refused(text: str) -> None:
    # go-yaml refuses a node that contains itself ("anchor 'a' value contains itself"), and so
    # did the loader, unless a BOM (a str read with encoding="utf-8") stood before the anchor:
    # the ConfigMap loaded into Resources.ignored as a dict that contains itself (comparing two
    # such loads raised RecursionError).
    assert _errors(text) == [
        "deploy/web.yaml: document 1: Invalid value: YAML alias refers to a node that contains "
        "it (a recursive document)"]


# --- manifest text handed to from_dicts: one error, not one per character -----------------------


@pytest.mark.parametrize("text", [SERVICE, SERVICE.encode(), bytearray(SERVICE.encode())])
def test_text_given_to_from_dicts_is_one_error(text: str | bytes) -> None:
    # A str is iterable: each character was "object N: Invalid value: expected an object, got
    # string" (79 errors for this 79-character Service).
    with pytest.raises(ValidationError) as info:
        ingresslib.Resources.from_dicts(text)  # type: ignore[arg-type]
    (err,) = info.value.errors
    assert str(err) == (f"input: Invalid value: expected a list of objects, got "
                        f"{type(text).__name__ if not isinstance(text, str) else 'string'} "
                        "(manifest text is read by parse_manifests)")


def test_a_control_character_is_placed_alike_without_libyaml(monkeypatch: pytest.MonkeyPatch) -> None:
    # PyYAML's own reader counts the offset in characters, libyaml in UTF-8 bytes: the same
    # line and column either way.
    import yaml

    from ingresslib import _load

    text = SERVICE + "# café ééé\nstatus: \x1b[0m\n"
    with pytest.raises(yaml.reader.ReaderError) as info:
        yaml.load(text, Loader=yaml.SafeLoader)
    monkeypatch.setattr(_load, "_BaseLoader", yaml.SafeLoader)
    err = _load._syntax_error("deploy/web.yaml", info.value, text)
    assert err.field == "line 6, column 9"
