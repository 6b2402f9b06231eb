"""Session 10 review of validation against the API server's source (one test per difference found).

Each expected string is written from the Kubernetes source quoted next to it, not from
ingresslib's output. The API server version reproduced is the current one (the networking
validation with ``MarkCoveredByDeclarative``, apimachinery's field.Error that renders values
other than strings and simple numbers with ``json.Marshal``).
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingresslib._decode import decode_resources
from ingresslib._errors import FieldError, ValidationError
from ingresslib._resources import Resources
from ingresslib._validate import validate_ingress
from ingresslib._models import Ingress, IngressSpec, ObjectMeta

SPEC_MSG = "either `defaultBackend` or `rules` must be specified"
LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
    "'12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)


def _ingress(spec: Any, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "web", **meta},
        "spec": spec,
    }


def _valid_spec() -> dict[str, Any]:
    return {
        "rules": [
            {
                "host": "a.example.com",
                "http": {
                    "paths": [
                        {"path": "/", "pathType": "Prefix",
                         "backend": {"service": {"name": "web", "port": {"number": 80}}}}
                    ]
                },
            }
        ]
    }


def _errors(*objs: Any) -> list[str]:
    with pytest.raises(ValidationError) as ei:
        decode_resources(list(objs))
    return [str(e) for e in ei.value.errors]


# --- 1. `rules: []` is an empty slice, rendered `[]` -------------------------------------------


def test_empty_rules_list_is_rendered_as_an_empty_json_array() -> None:
    # validation.go: `field.Invalid(fldPath, spec.Rules, errMsg)`; errors.go ErrorBody renders a
    # value that is no string or simple number with `jb, err := json.Marshal(e.BadValue)`. A
    # `rules: []` body decodes to an empty, non-nil []IngressRule: json.Marshal gives `[]`; an
    # absent (or null) `rules` is a nil slice: `null`.
    assert _errors(_ingress({"rules": []})) == [f"Ingress default/web: spec: Invalid value: []: {SPEC_MSG}"]
    assert _errors(_ingress({})) == [f"Ingress default/web: spec: Invalid value: null: {SPEC_MSG}"]
    assert _errors(_ingress({"rules": None})) == [f"Ingress default/web: spec: Invalid value: null: {SPEC_MSG}"]
    # The snake_case to_dict() form: None means absent.
    assert _errors(_ingress({"rules": None, "default_backend": None})) == [
        f"Ingress default/web: spec: Invalid value: null: {SPEC_MSG}"
    ]


def test_hand_built_model_without_rules_renders_null() -> None:
    # A model built in code cannot tell nil from empty; nil (`null`) is the zero value.
    ing = Ingress(metadata=ObjectMeta(name="web"), spec=IngressSpec())
    errs = validate_ingress(ing)
    assert [str(e) for e in errs] == [f"Ingress default/web: spec: Invalid value: null: {SPEC_MSG}"]


# --- 2. identical errors are reported once (ToAggregate) ---------------------------------------


def test_identical_errors_of_one_object_are_reported_once() -> None:
    # meta/v1/validation ValidateLabels: `for _, msg := range validation.IsValidLabelValue(v) {
    # field.Invalid(fldPath, v, msg) }`: two labels with the same bad value give two identical
    # errors. The API server's message is `errs.ToAggregate()`, which keeps one: `msg :=
    # fmt.Sprintf("%v", err); if errorMsgs.Has(msg) { continue }` (field/errors.go), and
    # kubectl prints the aggregate, whose Error() skips `if seenerrs.Has(msg)` too.
    obj = _ingress(_valid_spec(), labels={"a": "bad value", "b": "bad value", "c": "other bad"})
    assert _errors(obj) == [
        f'Ingress default/web: metadata.labels: Invalid value: "bad value": {LABEL_VALUE_MSG}',
        f'Ingress default/web: metadata.labels: Invalid value: "other bad": {LABEL_VALUE_MSG}',
    ]


def test_same_error_in_two_objects_is_reported_for_each() -> None:
    # ToAggregate runs per object (one request each).
    a = _ingress(_valid_spec(), labels={"a": "bad value"})
    b = copy.deepcopy(a)
    b["metadata"]["name"] = "other"
    assert _errors(a, b) == [
        f'Ingress default/web: metadata.labels: Invalid value: "bad value": {LABEL_VALUE_MSG}',
        f'Ingress default/other: metadata.labels: Invalid value: "bad value": {LABEL_VALUE_MSG}',
    ]


def test_validator_result_has_no_identical_errors() -> None:
    ing = Ingress(
        metadata=ObjectMeta(name="web", labels={"a": "x y", "b": "x y"}),
        spec=IngressSpec(),
    )
    out = [str(e) for e in validate_ingress(ing)]
    assert len(out) == len(set(out)) == 2


# --- 3. the annotations size counts bytes of keys too -------------------------------------------


def test_annotation_size_counts_key_bytes_not_characters() -> None:
    # objectmeta.go ValidateAnnotationsSize: `totalSize += (int64)(len(k)) + (int64)(len(v))`;
    # Go's len() of a string is its UTF-8 byte count. "ключ" is 4 characters, 8 bytes: with a
    # value of 262144 - 6 bytes the total is 262146 bytes (> 256 KiB) but 262142 characters.
    key = "ключ"
    obj = _ingress(_valid_spec(), annotations={key: "x" * (256 * 1024 - 6)})
    errs = _errors(obj)
    assert "Ingress default/web: metadata.annotations: Too long: may not be more than 262144 bytes" in errs
    # The key itself is no qualified name either (reported as well).
    assert any(e.startswith(f'Ingress default/web: metadata.annotations: Invalid value: "{key}"') for e in errs)


def test_annotation_size_limit_is_inclusive() -> None:
    # `if totalSize > (int64)(TotalAnnotationSizeLimitB)`: exactly 256 KiB is fine.
    obj = _ingress(_valid_spec(), annotations={"k": "x" * (256 * 1024 - 1)})
    assert isinstance(decode_resources([obj]), Resources)


# --- 4. simple values print as Go prints them ---------------------------------------------------


def test_bool_values_print_like_go() -> None:
    # field/errors.go: `case int64, int32, float64, float32, bool: fmt.Sprintf("%s: %v", ...)`:
    # Go's %v prints a bool as `true` / `false`.
    err = FieldError("Ingress default/web", "spec.rules[0].host", "Invalid value", "expected string, got boolean",
                     True, True)
    assert str(err) == 'Ingress default/web: spec.rules[0].host: Invalid value: true: expected string, got boolean'
    errs = _errors(_ingress({"rules": [{"host": False, "http": {"paths": []}}]}))
    assert "Ingress default/web: spec.rules[0].host: Invalid value: false: expected string, got boolean" in errs


# --- 5. never a traceback: every invalid manifest is a ValidationError ------------------------

_json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6)
_json_values = st.recursive(
    _json_scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=12,
)

_SERVICE = {
    "apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
    "spec": {"type": "NodePort", "clusterIP": "10.0.0.1", "selector": {"app": "web"},
             "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP", "nodePort": 30080,
                        "appProtocol": "http"},
                       {"name": "https", "port": 443, "targetPort": 8443}]},
}
_SLICE = {
    "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
    "metadata": {"name": "web-abc", "labels": {"kubernetes.io/service-name": "web"}},
    "addressType": "IPv4",
    "endpoints": [{"addresses": ["10.0.0.5"], "conditions": {"ready": True, "serving": True, "terminating": False},
                   "hostname": "pod-a", "nodeName": "node-1", "zone": "z1"}],
    "ports": [{"name": "http", "port": 8080, "protocol": "TCP", "appProtocol": "http"}],
}
_ENDPOINTS = {
    "apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web"},
    "subsets": [{"addresses": [{"ip": "10.0.0.5", "hostname": "a", "nodeName": "n"}],
                 "notReadyAddresses": [{"ip": "10.0.0.6"}],
                 "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}],
}
_SECRET = {
    "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tls"}, "type": "kubernetes.io/tls",
    "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}, "stringData": {"extra": "x"},
}
_CLASS = {
    "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "nginx"},
    "spec": {"controller": "k8s.io/ingress-nginx",
             "parameters": {"apiGroup": "k8s.example.com", "kind": "Params", "name": "p",
                            "scope": "Namespace", "namespace": "shop"}},
}
_INGRESS = _ingress(
    {**_valid_spec(), "ingressClassName": "nginx",
     "defaultBackend": {"resource": {"apiGroup": "k8s.example.com", "kind": "Bucket", "name": "b"}},
     "tls": [{"hosts": ["a.example.com", "*.example.com"], "secretName": "tls"}]},
    annotations={"kubernetes.io/ingress.class": "nginx"},
)
_OBJECTS: list[dict[str, Any]] = [_SERVICE, _SLICE, _ENDPOINTS, _SECRET, _CLASS, _INGRESS]


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, prefix + (i,))
    return out


def test_fuzz_base_objects_are_valid() -> None:
    # The mutation test below starts from valid objects (else it would only test one error).
    res = decode_resources(copy.deepcopy(_OBJECTS))
    assert (len(res.services), len(res.endpoint_slices), len(res.endpoints), len(res.secrets),
            len(res.ingress_classes), len(res.ingresses)) == (1, 1, 1, 1, 1, 1)


@st.composite
def _mutated(draw: st.DrawFn) -> Any:
    """One of the valid objects with one to three subtrees replaced by junk (or deleted)."""
    obj: Any = copy.deepcopy(draw(st.sampled_from(_OBJECTS)))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(obj)[1:]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        target: Any = obj
        try:
            for key in path[:-1]:
                target = target[key]
            if draw(st.booleans()) and isinstance(target, dict):
                del target[path[-1]]
            else:
                target[path[-1]] = draw(_json_values)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed or replaced the path
    return obj


@given(st.lists(_mutated(), min_size=1, max_size=3))
def test_mutated_manifests_of_every_kind_are_resources_or_validation_error(objs: list[Any]) -> None:
    try:
        res = decode_resources(objs)
    except ValidationError as e:
        assert e.errors
        lines = [str(err) for err in e.errors]
        assert all(lines)
        # One line per error: values are quoted, so a newline in a value cannot split a line.
        assert str(e).count("\n") == len(lines) - 1
    else:
        assert isinstance(res, Resources)


# --- 6. named string types print as JSON, not with %q -----------------------------------------


def _service(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": spec}


def test_named_string_types_are_rendered_with_json_marshal() -> None:
    # field/errors.go ErrorBody: `case string: fmt.Sprintf("%s: %q", ...)` matches only the
    # type string; networking.PathType, core.Protocol, core.ServiceType, discovery.AddressType
    # are named types and take the `default:` arm, `jb, err := json.Marshal(e.BadValue)`.
    # encoding/json escapes '<', '>', '&' (HTMLEscape), U+2028/U+2029 and control characters as
    # \u00XX (\b \f \n \r \t short), where %q would print `<` and `\x01`.
    obj = _ingress({"rules": [{"http": {"paths": [
        {"path": "/", "pathType": "<Prefix>&\x01",
         "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]})
    assert _errors(obj) == [
        "Ingress default/web: spec.rules[0].http.paths[0].pathType: Unsupported value: "
        '"\\u003cPrefix\\u003e\\u0026\\u0001": supported values: "Exact", "ImplementationSpecific", "Prefix"'
    ]
    svc = _service({"type": "Node<Port>", "ports": [{"port": 80, "protocol": "T\u2028CP"}]})
    assert _errors(svc) == [
        'Service default/web: spec.ports[0].protocol: Unsupported value: "T\\u2028CP": '
        'supported values: "SCTP", "TCP", "UDP"',
        'Service default/web: spec.type: Unsupported value: "Node\\u003cPort\\u003e": '
        'supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"',
    ]


def test_plain_string_values_keep_go_quoting() -> None:
    # Values of Go type string keep %q: a host with '<' prints it as is; \x01 as \x01.
    obj = _ingress({"rules": [{"host": "a<b\x01.com"}]})
    errs = _errors(obj)
    assert errs[0].startswith('Ingress default/web: spec.rules[0].host: Invalid value: "a<b\\x01.com": ')


def test_duplicate_service_port_struct_is_go_json() -> None:
    # `field.Duplicate(portPath, key)` with key a core.ServicePort: json.Marshal escapes '&'
    # in the protocol and keeps non-ASCII as UTF-8 (Python's json.dumps would write \\u00e9).
    svc = _service({"ports": [{"name": "a", "port": 80, "protocol": "é&"},
                              {"name": "b", "port": 80, "protocol": "é&"}]})
    errs = _errors(svc)
    assert (
        'Service default/web: spec.ports[1]: Duplicate value: {"Name":"","Protocol":"é\\u0026",'
        '"AppProtocol":null,"Port":80,"TargetPort":0,"NodePort":0}'
    ) in errs


def test_endpoint_slice_named_values_are_go_json() -> None:
    # discovery validation: `field.NotSupported(..., addressType, ...)` (discovery.AddressType)
    # and `field.Duplicate(idxPath.Child("name"), endpointPort.Name)` (a *string): both JSON.
    es = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "web-a"},
          "addressType": "IP<v4>", "endpoints": [],
          "ports": [{"name": "", "port": 80}, {"name": "", "port": 81}]}
    assert _errors(es) == [
        'EndpointSlice default/web-a: addressType: Unsupported value: "IP\\u003cv4\\u003e": '
        'supported values: "FQDN", "IPv4", "IPv6"',
        'EndpointSlice default/web-a: ports[1].name: Duplicate value: ""',
    ]


def test_json_value_that_is_not_json_data_still_prints() -> None:
    err = FieldError("Ingress default/web", "spec", "Invalid value", "x", b"\x00", True, json_value=True)
    assert str(err) == "Ingress default/web: spec: Invalid value: b'\\x00': x"
