"""Session 13 review of manifest decoding and validation against the API server.

Each test is one difference found, with the Kubernetes (or Go standard library) source that
decides it quoted beside it; expected strings are written from that source, not from
ingresslib's output.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

import ingresslib
from ingresslib._decode import decode_resources
from ingresslib._errors import ValidationError

LABEL_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or "
    "'12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
LABEL_KEY_MSG = (
    "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
    "with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
SPEC_MSG = "either `defaultBackend` or `rules` must be specified"


def errs(*objs: Any) -> list[str]:
    with pytest.raises(ValidationError) as ei:
        decode_resources(objs)
    return [str(e) for e in ei.value.errors]


def service(**meta: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", **meta},
            "spec": {"ports": [{"port": 80}]}}


# --- 1. a wrongly typed map entry hid every other error of the map -----------------------------
#
# The API server refuses a body it cannot decode as a whole, so the type error is what it
# reports; ingresslib reports the type error and goes on validating the rest (SEMANTICS §2:
# "Collect every error"). The map entry of the wrong type is left out, no placeholder stands in
# for it, so it cannot cause an error of the map's other entries: those are real and must show
# (ValidateLabels / ValidateAnnotations report every key and value, objectmeta.go:
# `for k := range annotations { for _, msg := range validation.IsQualifiedName(strings.ToLower(k))
# { allErrs = append(allErrs, field.Invalid(fldPath, k, msg)) } }`).


def test_a_label_of_the_wrong_type_does_not_hide_the_other_labels_errors() -> None:
    # `version: 1` unquoted is the usual way a label value becomes a number.
    obj = service(labels={"version": 1, "tier": "front end"})
    assert errs(obj) == [
        "Service default/web: metadata.labels[version]: Invalid value: 1: expected string, got integer; "
        "quote the value",
        f'Service default/web: metadata.labels: Invalid value: "front end": {LABEL_VALUE_MSG}',
    ]


def test_an_annotation_of_the_wrong_type_does_not_hide_a_bad_annotation_key() -> None:
    obj = service(annotations={"nginx.ingress.kubernetes.io/canary-weight": 10, "-bad": "x"})
    assert errs(obj) == [
        "Service default/web: metadata.annotations[nginx.ingress.kubernetes.io/canary-weight]: "
        "Invalid value: 10: expected string, got integer; quote the value",
        f'Service default/web: metadata.annotations: Invalid value: "-bad": {LABEL_KEY_MSG}',
    ]


def test_an_annotation_of_the_wrong_type_does_not_hide_the_total_size_limit() -> None:
    # objectmeta.go: `if err := ValidateAnnotationsSize(annotations); err != nil {
    # allErrs = append(allErrs, field.TooLong(fldPath, "" /*unused*/, TotalAnnotationSizeLimitB)) }`
    obj = service(annotations={"big": "x" * (256 * 1024), "flag": True})
    assert errs(obj) == [
        "Service default/web: metadata.annotations[flag]: Invalid value: true: expected string, got boolean; "
        "quote the value",
        "Service default/web: metadata.annotations: Too long: may not be more than 262144 bytes",
    ]


def test_a_secret_value_of_the_wrong_type_still_counts_as_the_missing_key_once() -> None:
    # The entry left out must not add "data[tls.key]: Required value" for the same mistake.
    obj = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "type": "kubernetes.io/tls",
           "data": {"tls.crt": "Zm9v", "tls.key": 5}}
    assert errs(obj) == [
        "Secret default/s: data[tls.key]: Invalid value: 5: expected string, got integer",
    ]


# --- 2. a type error below one field hid unrelated errors above it ------------------------------
#
# validation.go (networking) ValidateIngressSpec: `if len(spec.Rules) == 0 && spec.DefaultBackend
# == nil { ... field.Invalid(fldPath, spec.Rules, errMsg) }`: that error is about `rules` and
# `defaultBackend` only; `tls` being a string instead of a list has nothing to do with it.


def test_a_tls_type_error_does_not_hide_the_missing_rules_and_default_backend() -> None:
    obj = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
           "spec": {"tls": [{"hosts": "shop.example.com"}]}}
    assert errs(obj) == [
        'Ingress default/web: spec.tls[0].hosts: Invalid value: "shop.example.com": expected array, got string',
        f"Ingress default/web: spec: Invalid value: null: {SPEC_MSG}",
    ]


def test_a_rules_type_error_still_reports_once() -> None:
    # The placeholder for `rules` (no rules) is what makes the spec error: not reported twice.
    obj = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
           "spec": {"rules": "shop.example.com"}}
    assert errs(obj) == [
        'Ingress default/web: spec.rules: Invalid value: "shop.example.com": expected array, got string',
    ]


def test_an_endpoints_port_type_error_does_not_hide_a_subset_without_addresses() -> None:
    # core validateEndpointSubsets: `if len(ss.Addresses) == 0 && len(ss.NotReadyAddresses) == 0
    # { allErrs = append(allErrs, field.Required(idxPath, "must specify `addresses` or
    # `notReadyAddresses`")) }`: the ports have nothing to do with it.
    obj = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web"},
           "subsets": [{"ports": [{"port": "80"}]}]}
    assert errs(obj) == [
        'Endpoints default/web: subsets[0].ports[0].port: Invalid value: "80": expected integer, got string',
        "Endpoints default/web: subsets[0]: Required value: must specify `addresses` or `notReadyAddresses`",
    ]


def test_an_addresses_type_error_still_reports_once() -> None:
    obj = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web"},
           "subsets": [{"addresses": "10.0.0.1", "ports": [{"port": 80}]}]}
    assert errs(obj) == [
        'Endpoints default/web: subsets[0].addresses: Invalid value: "10.0.0.1": expected array, got string',
    ]


# --- 3. wrapped base64 in a Secret is valid --------------------------------------------------------
#
# The API server decodes `data` ([]byte) with encoding/json, decode.go literalStore:
# `b := make([]byte, base64.StdEncoding.DecodedLen(len(s))); n, err :=
# base64.StdEncoding.Decode(b, s)`, and encoding/base64 Decode: "New line characters (\r and \n)
# are ignored." `base64 tls.crt` wraps at 76 columns; pasted into a YAML block scalar it is a
# Secret `kubectl apply` takes. ingresslib refused it ("must be valid base64").

CERT_BYTES = bytes(range(256)) * 2


def _wrapped(data: bytes, newline: str = "\n") -> str:
    text = base64.b64encode(data).decode()
    return newline.join(text[i:i + 76] for i in range(0, len(text), 76)) + newline


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_secret_data_wrapped_over_several_lines_loads_and_decodes(newline: str) -> None:
    obj = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "shop-tls"}, "type": "kubernetes.io/tls",
           "data": {"tls.crt": _wrapped(CERT_BYTES, newline), "tls.key": _wrapped(b"key", newline)}}
    res = decode_resources([obj])
    secret = res.secrets[0]
    assert secret.get_bytes("tls.crt") == CERT_BYTES
    assert secret.get_bytes("tls.key") == b"key"


def test_secret_data_wrapped_in_a_yaml_block_scalar_loads() -> None:
    body = "".join("    " + line + "\n" for line in _wrapped(CERT_BYTES).splitlines())
    text = ("apiVersion: v1\nkind: Secret\nmetadata: {name: shop-tls}\ntype: kubernetes.io/tls\n"
            f"data:\n  tls.key: a2V5\n  tls.crt: |\n{body}")
    res = ingresslib.parse_manifests(text)
    assert res.secrets[0].get_bytes("tls.crt") == CERT_BYTES


@pytest.mark.parametrize(
    "value", ["Zm9v YmFy", "Zm9v\tYmFy", "Zm9vYg", "Zm9v==", "Zm9v=", "Zm9v\n==", "Zg==Zg==", "===="]
)
def test_other_characters_and_bad_padding_are_still_refused(value: str) -> None:
    # Only "\r" and "\n" are skipped; a space, a tab, missing padding (StdEncoding pads) or a "="
    # after a full quantum (decodeQuantum: `case 0, 1: // incorrect padding`) is
    # CorruptInputError. Python's b64decode(validate=True) takes "Zm9v==" and "Zm9v=".
    obj = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "data": {"a": value}}
    assert errs(obj) == ["Secret default/s: data[a]: Invalid value: must be valid base64 (illegal base64 data)"]


@pytest.mark.parametrize(("size", "too_long"), [(1024 * 1024 - 2, False), (1024 * 1024 - 1, False),
                                               (1024 * 1024, False), (1024 * 1024 + 1, True)])
def test_secret_size_limit_counts_decoded_bytes_of_wrapped_data(size: int, too_long: bool) -> None:
    # core ValidateSecret: `totalSize += len(value)` (decoded); `if totalSize >
    # core.MaxSecretSize { field.TooLong(dataPath, "", core.MaxSecretSize) }`, 1 MiB. Sizes
    # around the limit with each amount of padding ("==", "=", none).
    obj = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
           "data": {"a": _wrapped(b"x" * (size - 1)), "b": "eA=="}}
    if too_long:
        assert errs(obj) == ["Secret default/s: data: Too long: may not be more than 1048576 bytes"]
    else:
        assert decode_resources([obj]).secrets[0].get_bytes("a") == b"x" * (size - 1)


# --- 4. creationTimestamp must be RFC 3339 ---------------------------------------------------------
#
# metav1.Time UnmarshalJSON (apimachinery pkg/apis/meta/v1/time.go): `pt, err :=
# time.Parse(time.RFC3339, str)`: date, "T", time with seconds, and a zone ("Z" or ±hh:mm) are
# required. ingresslib's message said so, but datetime.fromisoformat took a bare date, a space
# for the "T", no seconds and no zone (then read as UTC), which orders Ingresses
# (SEMANTICS §4.3: the oldest creationTimestamp wins).

TS_MSG = "must be an RFC 3339 date-time (e.g. 2024-01-02T03:04:05Z)"


@pytest.mark.parametrize("value", [
    "2024-01-02", "2024-01-02 03:04:05Z", "2024-01-02T03:04:05", "2024-01-02T03:04Z",
    "20240102T030405Z", "2024-01-02T03:04:05+0100", "2024-01-02t03:04:05z", "2024-01-02T03:04:05.Z",
])
def test_creation_timestamp_that_is_not_rfc3339_is_refused(value: str) -> None:
    obj = service(creationTimestamp=value)
    assert errs(obj) == [f'Service default/web: metadata.creationTimestamp: Invalid value: "{value}": {TS_MSG}']


@pytest.mark.parametrize("value", [
    "2024-01-02T03:04:05Z", "2024-01-02T03:04:05.123456789Z", "2024-01-02T04:04:05+01:00",
    "2024-01-02T03:04:05.5-00:00",
])
def test_rfc3339_creation_timestamps_load(value: str) -> None:
    res = decode_resources([service(creationTimestamp=value)])
    ts = res.services[0].metadata.creation_timestamp
    assert ts is not None and ts.utcoffset() is not None


# --- 5. a stream of JSON objects is several documents ----------------------------------------------
#
# kubectl reads manifests through apimachinery's util/yaml YAMLOrJSONDecoder: "attempts to decode
# a stream of JSON documents or YAML documents by sniffing for a leading { character", and for
# JSON `d.decoder = json.NewDecoder(buffer)`, whose Decode is called once per object: what
# `jq -c '.items[]'` writes loads with `kubectl apply -f`. ingresslib said "JSON syntax error:
# Extra data".


def _svc_json(name: str, port: Any = 80) -> str:
    import json
    return json.dumps({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
                       "spec": {"ports": [{"port": port}]}}, separators=(",", ":"))


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_json_objects_one_per_line_load(tmp_path: Any, suffix: str) -> None:
    f = tmp_path / f"all{suffix}"
    f.write_text(_svc_json("a") + "\n" + _svc_json("b") + "\n\n  " + _svc_json("c"))
    res = ingresslib.load_manifests(f)
    assert [s.metadata.name for s in res.services] == ["a", "b", "c"]


def test_json_stream_errors_name_the_document_and_the_line(tmp_path: Any) -> None:
    f = tmp_path / "all.json"
    f.write_text(_svc_json("a") + "\n" + _svc_json("b", "http") + "\n")
    with pytest.raises(ValidationError) as ei:
        ingresslib.load_manifests(f)
    assert [str(e) for e in ei.value.errors] == [
        f'{f}: Service default/b: spec.ports[0].port: Invalid value: "http": expected integer, got string',
    ]
    f.write_text(_svc_json("a") + "\n" + '{"kind": }' + "\n")
    with pytest.raises(ValidationError) as ei:
        ingresslib.load_manifests(f)
    # Nothing of a broken file is loaded; the error is where the second value breaks.
    assert [str(e) for e in ei.value.errors] == [
        f"{f}: line 2, column 10: Invalid value: JSON syntax error: Expecting value",
    ]


def test_an_app_protocol_type_error_does_not_hide_a_duplicate_service_port() -> None:
    # core ValidateService: `key := core.ServicePort{Protocol: port.Protocol, Port: port.Port}
    # ... field.Duplicate(portPath, key)`: the duplicate is about port and protocol only.
    obj = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
           "spec": {"ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80, "appProtocol": 7}]}}
    assert errs(obj) == [
        "Service default/web: spec.ports[1].appProtocol: Invalid value: 7: expected string, got integer",
        'Service default/web: spec.ports[1]: Duplicate value: {"Name":"","Protocol":"TCP","AppProtocol":null,'
        '"Port":80,"TargetPort":0,"NodePort":0}',
    ]


def test_two_port_type_errors_do_not_add_a_duplicate() -> None:
    obj = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
           "spec": {"ports": [{"name": "a", "port": "80"}, {"name": "b", "port": "81"}]}}
    assert errs(obj) == [
        'Service default/web: spec.ports[0].port: Invalid value: "80": expected integer, got string',
        'Service default/web: spec.ports[1].port: Invalid value: "81": expected integer, got string',
    ]


def test_a_hand_built_secret_with_wrapped_data_decodes() -> None:
    # A model built in code skips the decoder's unwrapping; get_bytes reads it as Go would.
    from ingresslib._models import ObjectMeta, Secret

    wrapped = base64.encodebytes(CERT_BYTES).decode()
    assert "\n" in wrapped.strip()
    secret = Secret(ObjectMeta(name="s", namespace="d"), "kubernetes.io/tls",
                    data={"tls.crt": wrapped.replace("\n", "\r\n")})
    assert secret.get_bytes("tls.crt") == CERT_BYTES
