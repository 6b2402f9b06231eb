"""Session 17 review (R17a) of the loading (J17) and validation (V17a) changes, and of what the
V17a review found outside its files: numbers past float64 in JSON and YAML, line numbers of
the YAML read after a JSON value, an endpoint-weights port of thousands of digits, Python ints
past int()'s digit limit handed to ``Resources.from_dicts``, and a Service's unset targetPort,
which is its port when the API server validates it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ingresslib import Resources, Router, ValidationError, parse_manifests
from ingresslib._config import load_config
from ingresslib._endpoints import EndpointIndex, EndpointSet


def _errors(text: str, source: str = "s.yaml") -> list[str]:
    with pytest.raises(ValidationError) as info:
        parse_manifests(text, source=source)
    return [str(e) for e in info.value.errors]


def _service_json(extra: str = "") -> str:
    return ('{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, '
            '"spec": {"ports": [{"port": 80}]%s}}' % extra)


SERVICE_YAML = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  ports: [{port: 80}]\n"


# --- JSON and YAML numbers past float64 ------------------------------------------------------


@pytest.mark.parametrize("digits", ["9" * 309, "2" * 309, "17976931348623159" + "0" * 292])
@pytest.mark.parametrize("source", ["s.json", "s.yaml"])
def test_a_json_integer_of_309_digits_past_float64_is_refused(digits: str, source: str) -> None:
    # float64's largest is 1.7976931348623157e308, 309 digits: "9" * 309 (1e309) is past it,
    # and Go's decoder refuses it as it refuses 1e400 ("json: cannot unmarshal number ... into
    # Go value of type float64"). Before: only integers of more than 309 characters were
    # tested, so a 309-digit one past the range loaded.
    text = _service_json(', "x": %s' % digits)
    at = text.index(digits)
    assert _errors(text, source) == [
        f"{source}: line 1, column {at + 1}: Invalid value: {digits[:20]}...: number out of "
        "range (309 characters)"]


def test_a_json_integer_of_309_digits_inside_float64_still_loads() -> None:
    res = parse_manifests(_service_json(', "x": %s' % ("17976931348623157" + "0" * 292)))
    assert [s.metadata.name for s in res.services] == ["web"]


@pytest.mark.parametrize("value", ["9" * 310, "0x" + "f" * 300, "!!int " + "9" * 400])
def test_a_yaml_integer_past_float64_is_refused_as_in_json(value: str) -> None:
    # go-yaml's fork keeps it as a *big.Int, json.Marshal writes its digits, the cluster reads
    # a number past int64 as a float64 and refuses it. Before: it loaded (the same number in
    # JSON-looking text was refused).
    text = SERVICE_YAML + f"  x: {value}\n"
    number = value.split()[-1]
    assert _errors(text) == [
        f"s.yaml: line 6, column 6: Invalid value: {number[:20]}...: number out of range "
        f"({len(number)} characters)"]


@pytest.mark.parametrize("text", [
    SERVICE_YAML + "  x: !!float " + "9" * 310 + "\n",
    SERVICE_YAML + "  x: !!float 0x" + "f" * 300 + "\n",
    SERVICE_YAML + "  x: {!!float " + "9" * 400 + ": 1}\n",
])
def test_a_float_tagged_integer_past_float64_is_an_error_not_a_traceback(text: str) -> None:
    # Before: OverflowError ("int too large to convert to float") out of parse_manifests.
    errors = _errors(text)
    assert len(errors) == 1 and "number out of range" in errors[0], errors


def test_yaml_integers_inside_float64_and_big_keys_are_read_as_before() -> None:
    res = parse_manifests(SERVICE_YAML + "  x: " + "9" * 300 + "\n  y: -" + "9" * 400 + "\n")
    assert [s.metadata.name for s in res.services] == ["web"]
    # (a key past int64: convertToJSONableObject's error, before any number is read)
    errors = _errors(SERVICE_YAML + "  x: {" + "9" * 310 + ": 1}\n")
    assert errors[0].endswith("not a JSON map key (kubectl: unsupported map key of type: *big.Int)")


# --- the YAML read after a JSON value: line numbers --------------------------------------------


@pytest.mark.parametrize("newline", ["\r", "\n", "\r\n"])
def test_yaml_after_a_json_value_counts_lone_cr_line_ends(newline: str) -> None:
    # The YAML reader counts a lone \r as a line end (so do the JSON errors since J17);
    # before, the blank text put before the YAML counted \n only: a file with old Mac line
    # ends had its YAML error on line 1, column 108, or on line 2 for line 5.
    text = _service_json() + newline + "{b: [}" + newline
    assert _errors(text)[0].startswith("s.yaml: line 2, column 6: Invalid value: YAML syntax")
    text = _service_json() + newline * 3 + "b: [" + newline
    assert _errors(text)[0].startswith("s.yaml: line 5, column 1: Invalid value: YAML syntax")


# --- endpoint weights -----------------------------------------------------------------------


def _weighted(weights: str) -> tuple[Router, EndpointSet]:
    text = f"""
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: web}}
spec:
  rules:
  - host: a.test
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
---
apiVersion: v1
kind: Service
metadata:
  name: web
  annotations: {{ingresslib.io/endpoint-weights: "{weights}"}}
spec:
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  labels: {{kubernetes.io/service-name: web}}
addressType: IPv4
endpoints: [{{addresses: [10.0.0.1]}}, {{addresses: [10.0.0.2]}}]
ports: [{{port: 8080}}]
"""
    res = parse_manifests(text)
    return Router(res), EndpointIndex(res).resolve("default", "web", 80)


@pytest.mark.parametrize("port", ["9" * 5000, "²", "70000"])
def test_a_weight_entry_with_a_port_no_endpoint_can_have_is_a_warning(port: str) -> None:
    # Before: "9" * 5000 made Router(...) raise ValueError (int() refuses 4,301 digits), as
    # did "²" (str.isdigit() takes it, int() does not); 70000 was taken silently.
    r, eps = _weighted(f"10.0.0.1:{port}=5, 10.0.0.2=3")
    said = [d for d in r.warnings if "invalid weight entry" in str(d)]
    if port == "²":
        # (no port: the whole text is an address that names no endpoint, as "a.b=5" is)
        assert not said
    else:
        assert len(said) == 1 and port[:20] in str(said[0])
    assert dict(zip(eps.endpoints, eps.weights)) == {("10.0.0.1", 8080): 1, ("10.0.0.2", 8080): 3}


def test_a_weight_entry_with_leading_zeros_in_its_port_still_names_it() -> None:
    r, eps = _weighted("10.0.0.1:0008080=5")
    assert dict(zip(eps.endpoints, eps.weights)) == {("10.0.0.1", 8080): 5, ("10.0.0.2", 8080): 1}
    assert not [d for d in r.warnings if "weight" in str(d)]


# --- from_dicts with Python ints past int()'s digit limit ---------------------------------------

BIG = 10 ** 5000
SHOWN = "<an integer of more than 4300 digits>"


def _service(**change: Any) -> dict[str, Any]:
    svc: dict[str, Any] = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                           "spec": {"ports": [{"port": 80}]}}
    for where, value in change.items():
        node: Any = svc
        *parents, last = where.split("__")
        for p in parents:
            node = node[int(p)] if p.isdigit() else node[p]
        node[last] = value
    return svc


@pytest.mark.parametrize("obj, expected", [
    (_service(spec__ports__0__port=BIG, spec__ports__0__targetPort=8080),
     f"Service default/web: spec.ports[0].port: Invalid value: {SHOWN}: must be between 1 and "
     "65535, inclusive"),
    (_service(metadata__labels={BIG: "a"}),
     f"Service default/web: metadata.labels[{SHOWN}]: Invalid value: {SHOWN}: expected string "
     "key, got integer"),
    (_service(metadata__labels={"a": BIG}),
     f"Service default/web: metadata.labels[a]: Invalid value: {SHOWN}: expected string, got "
     "integer; quote the value"),
    (_service(metadata__name=-BIG),
     f"Service default/<no name>: metadata.name: Invalid value: -{SHOWN}: expected string, got "
     "integer"),
])
def test_from_dicts_with_an_int_past_the_digit_limit_is_a_validation_error(
        obj: dict[str, Any], expected: str) -> None:
    # Before: ValueError ("Exceeds the limit (4300 digits) for integer string conversion")
    # out of from_dicts, raised while the error was printed. parse_manifests refuses such
    # numbers when it reads them; the API server's decoder refuses them too.
    with pytest.raises(ValidationError) as info:
        Resources.from_dicts([obj])
    assert [str(e) for e in info.value.errors] == [expected]


def test_an_unknown_field_named_by_a_huge_int_is_a_warning() -> None:
    obj = _service()
    spec: dict[Any, Any] = obj["spec"]
    spec[BIG] = 1
    res = Resources.from_dicts([obj])
    assert [str(w) for w in res.warnings] == [f'Service default/web: unknown field "spec.{SHOWN}"']


# --- a Service's unset targetPort is its port ---------------------------------------------------

RANGE = "must be between 1 and 65535, inclusive"


def _service_errors(port: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as info:
        Resources.from_dicts([_service(spec__ports=[port])])
    return [str(e) for e in info.value.errors]


@pytest.mark.parametrize("port, shown", [({"port": 70000}, "70000"), ({}, "0"),
                                         ({"port": -1, "targetPort": 0}, "-1"),
                                         ({"port": 0, "targetPort": ""}, "0")])
def test_a_port_out_of_range_is_told_on_the_unset_target_port_too(
        port: dict[str, Any], shown: str) -> None:
    # SetDefaults_Service (pkg/apis/core/v1/defaults.go) runs before validation: `if
    # sp.TargetPort == intstr.FromInt32(0) || sp.TargetPort == intstr.FromString("") {
    # sp.TargetPort = intstr.FromInt32(sp.Port) }`; then ValidatePortNumOrName checks it. The
    # API server answers "[spec.ports[0].port: Invalid value: 0: must be between 1 and 65535,
    # inclusive, spec.ports[0].targetPort: Invalid value: 0: ...]" (aclerici38/
    # pocket-id-operator#117). Before: the port line only.
    assert _service_errors(port) == [
        f"Service default/web: spec.ports[0].port: Invalid value: {shown}: {RANGE}",
        f"Service default/web: spec.ports[0].targetPort: Invalid value: {shown}: {RANGE}"]


def test_a_wrongly_typed_port_is_told_once() -> None:
    # Its placeholder 0 is no port anyone wrote: no targetPort line from it.
    assert _service_errors({"port": "80"}) == [
        'Service default/web: spec.ports[0].port: Invalid value: "80": expected integer, got string']
    assert _service_errors({"port": "80", "targetPort": 70000}) == [
        'Service default/web: spec.ports[0].port: Invalid value: "80": expected integer, got string',
        f"Service default/web: spec.ports[0].targetPort: Invalid value: 70000: {RANGE}"]


def test_a_target_port_of_its_own_is_checked_alone() -> None:
    assert _service_errors({"port": 0, "targetPort": 8080}) == [
        f"Service default/web: spec.ports[0].port: Invalid value: 0: {RANGE}"]
    assert Resources.from_dicts([_service(spec__ports=[{"port": 80}])]).services


# --- serve --config: a List whose items are not all objects ------------------------------------


@pytest.mark.parametrize("items, where, got", [
    ("[1, {cm}]", "items[0]", "integer"),
    ("[{cm}, x]", "items[1]", "string"),
    ("[{{apiVersion: v1, kind: List, items: [{cm}, null]}}]", "items[0].items[1]", "null"),
])
def test_a_config_list_with_an_item_that_is_no_object_is_refused(
        tmp_path: Path, items: str, where: str, got: str) -> None:
    # kubectl's unstructured decoder reads every item of a list into a map (decodeToList) and
    # refuses the file at the first that is not one. Before: the item was left out and the
    # ConfigMap beside it applied.
    cm = "{apiVersion: v1, kind: ConfigMap, metadata: {name: cfg}, data: {ssl-redirect: 'false'}}"
    f = tmp_path / "cm.yaml"
    f.write_text("apiVersion: v1\nkind: List\nitems: " + items.format(cm=cm) + "\n")
    with pytest.raises(ValidationError) as info:
        load_config(f)
    assert [str(e) for e in info.value.errors] == [
        f"{f}: {where}: Invalid value: expected an object, got {got}"]


def test_a_config_list_of_objects_still_gives_its_configmap(tmp_path: Path) -> None:
    f = tmp_path / "cm.yaml"
    f.write_text("apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Secret}\n"
                 "- apiVersion: v1\n  kind: ConfigMapList\n  items: [{metadata: {name: cfg}, "
                 "data: {ssl-redirect: 'false'}}]\n")
    assert load_config(f).settings.ssl_redirect is False
