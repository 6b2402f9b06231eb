"""Session 15 review of manifest validation against the API server.

Each test is one difference found, with the Kubernetes source that decides it quoted beside it;
expected strings are written from that source, not from ingresslib's output.
"""

from __future__ import annotations

import base64
from typing import Any

import pytest

import ingresslib
from ingresslib._decode import decode_resources
from ingresslib._errors import ValidationError


def errs(*objs: Any) -> list[str]:
    with pytest.raises(ValidationError) as ei:
        decode_resources(objs)
    return [str(e) for e in ei.value.errors]


SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"},
           "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}
INGRESS = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
           "spec": {"defaultBackend": {"service": {"name": "svc", "port": {"number": 80}}}}}


def slice_of(address: str, address_type: str = "IPv4") -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "svc-1", "labels": {"kubernetes.io/service-name": "svc"}},
            "addressType": address_type,
            "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
            "ports": [{"name": "http", "port": 8080}]}


def endpoints_of(address: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "svc"},
            "subsets": [{"addresses": [{"ip": address}], "ports": [{"name": "http", "port": 8080}]}]}


# --- endpoint addresses: the unspecified address ------------------------------------------------
#
# pkg/apis/core/validation (ValidateEndpointIP, called by discovery validateEndpoints for IPv4 and
# IPv6 slices, and ValidateNonSpecialIP, called by validateEndpointAddress for v1 Endpoints):
#   `if ip.IsUnspecified() { allErrs = append(allErrs, field.Invalid(fldPath, ipAddress,
#    fmt.Sprintf("may not be unspecified (%v)", ipAddress))) }`
# ingresslib loaded such an endpoint and routed to it: a connect to 0.0.0.0 or :: reaches the
# proxy's own host.


@pytest.mark.parametrize("address, address_type", [
    ("0.0.0.0", "IPv4"),
    ("000.0.0.0", "IPv4"),          # ParseIPSloppy reads leading zeros: still IPv4zero
    ("::ffff:0.0.0.0", "IPv4"),     # net.IP.Equal(IPv4zero) holds for the mapped form
    ("::", "IPv6"),
    ("0:0::0", "IPv6"),
])
def test_slice_unspecified_address_refused(address: str, address_type: str) -> None:
    assert errs(slice_of(address, address_type)) == [
        f'EndpointSlice default/svc-1: endpoints[0].addresses[0]: Invalid value: "{address}": '
        f"may not be unspecified ({address})"
    ]


@pytest.mark.parametrize("address", ["0.0.0.0", "::"])
def test_endpoints_unspecified_address_refused(address: str) -> None:
    assert errs(endpoints_of(address)) == [
        f'Endpoints default/svc: subsets[0].addresses[0].ip: Invalid value: "{address}": '
        f"may not be unspecified ({address})"
    ]


def test_unspecified_endpoint_is_never_routed_to() -> None:
    # The user-visible symptom: the Ingress's traffic went to 0.0.0.0:8080, this very host.
    with pytest.raises(ingresslib.ValidationError) as ei:
        ingresslib.Resources.from_dicts([SERVICE, INGRESS, slice_of("0.0.0.0")])
    assert [e.field for e in ei.value.errors] == ["endpoints[0].addresses[0]"]


def test_unspecified_check_keeps_the_documented_local_addresses() -> None:
    # README divergence row: loopback and link-local endpoints stay accepted (local manifests).
    for addr in ("127.0.0.1", "169.254.1.1"):
        res = ingresslib.Resources.from_dicts([SERVICE, INGRESS, slice_of(addr), endpoints_of(addr)])
        d = ingresslib.Router(res).route("GET", "x", "/")
        assert d is not None and d.endpoint == (addr, 8080)
    res = ingresslib.Resources.from_dicts([slice_of("::1", "IPv6")])
    assert res.endpoint_slices[0].endpoints[0].addresses == ("::1",)


def test_bad_ip_still_reported_once_per_rule() -> None:
    # The parse failure keeps the API server's messages (IsValidIPv4Address, then
    # ValidateEndpointIP's `if ip == nil { "must be a valid IP address"; return }`), and no
    # "unspecified" error is added to it.
    assert errs(slice_of("1.2.3")) == [
        'EndpointSlice default/svc-1: endpoints[0].addresses[0]: Invalid value: "1.2.3": '
        "must be a valid IPv4 address",
        'EndpointSlice default/svc-1: endpoints[0].addresses[0]: Invalid value: "1.2.3": '
        "must be a valid IP address",
    ]


# --- Secret types -------------------------------------------------------------------------------
#
# pkg/apis/core/validation ValidateSecret, `switch secret.Type`:
#   case SecretTypeServiceAccountToken: `if value := secret.Annotations[ServiceAccountNameKey];
#     len(value) == 0 { field.Required(field.NewPath("metadata", "annotations")
#     .Key(ServiceAccountNameKey), "") }`
#   case SecretTypeDockercfg: `dockercfgBytes, exists := secret.Data[DockerConfigKey]; if !exists
#     { field.Required(dataPath.Key(DockerConfigKey), ""); break }; if err :=
#     json.Unmarshal(dockercfgBytes, &map[string]interface{}{}); err != nil {
#     field.Invalid(dataPath.Key(DockerConfigKey), "<secret contents redacted>", err.Error()) }`
#   case SecretTypeDockerConfigJSON: the same with ".dockerconfigjson"
#   case SecretTypeBasicAuth: `if !usernameFieldExists && !passwordFieldExists {
#     field.Required(dataPath.Key(BasicAuthUsernameKey), ""); field.Required(
#     dataPath.Key(BasicAuthPasswordKey), "") }`
#   case SecretTypeSSHAuth: `if len(secret.Data[SSHAuthPrivateKey]) == 0 { field.Required(...) }`
# ingresslib checked only kubernetes.io/tls, so `ingresslib check` passed Secrets that
# `kubectl apply` refuses (a basic-auth Secret holding only an htpasswd `auth` key, say).


def secret(type_: str, data: dict[str, str] | None = None, string_data: dict[str, str] | None = None,
           annotations: dict[str, str] | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Secret", "type": type_,
                           "metadata": {"name": "s"}}
    if data is not None:
        obj["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    if string_data is not None:
        obj["stringData"] = string_data
    if annotations is not None:
        obj["metadata"]["annotations"] = annotations
    return obj


def test_basic_auth_secret_needs_username_or_password() -> None:
    assert errs(secret("kubernetes.io/basic-auth", {"auth": "u:$apr1$x"})) == [
        "Secret default/s: data[username]: Required value",
        "Secret default/s: data[password]: Required value",
    ]


@pytest.mark.parametrize("data, string_data", [
    ({"username": ""}, None),            # "might be empty, but the field must be present"
    ({"password": "p"}, None),
    (None, {"username": "u"}),           # stringData is merged into data before validation
])
def test_basic_auth_secret_with_either_key_loads(data: Any, string_data: Any) -> None:
    res = decode_resources([secret("kubernetes.io/basic-auth", data, string_data)])
    assert len(res.secrets) == 1


def test_ssh_auth_secret_needs_a_non_empty_private_key() -> None:
    expected = ["Secret default/s: data[ssh-privatekey]: Required value"]
    assert errs(secret("kubernetes.io/ssh-auth", {})) == expected
    assert errs(secret("kubernetes.io/ssh-auth", {"ssh-privatekey": ""})) == expected
    assert len(decode_resources([secret("kubernetes.io/ssh-auth", {"ssh-privatekey": "k"})]).secrets) == 1


def test_service_account_token_secret_needs_its_annotation() -> None:
    assert errs(secret("kubernetes.io/service-account-token", {})) == [
        "Secret default/s: metadata.annotations[kubernetes.io/service-account.name]: Required value"
    ]
    assert errs(secret("kubernetes.io/service-account-token", {},
                       annotations={"kubernetes.io/service-account.name": ""})) == [
        "Secret default/s: metadata.annotations[kubernetes.io/service-account.name]: Required value"
    ]
    ok = secret("kubernetes.io/service-account-token", {},
                annotations={"kubernetes.io/service-account.name": "default"})
    assert len(decode_resources([ok]).secrets) == 1


@pytest.mark.parametrize("type_, key", [
    ("kubernetes.io/dockercfg", ".dockercfg"),
    ("kubernetes.io/dockerconfigjson", ".dockerconfigjson"),
])
def test_docker_secrets_need_their_key_holding_a_json_object(type_: str, key: str) -> None:
    assert errs(secret(type_, {})) == [f"Secret default/s: data[{key}]: Required value"]
    bad = f'Secret default/s: data[{key}]: Invalid value: "<secret contents redacted>": '
    # encoding/json's own messages for these inputs.
    assert errs(secret(type_, {key: ""})) == [bad + "unexpected end of JSON input"]
    assert errs(secret(type_, {key: '{"auths": '})) == [bad + "unexpected end of JSON input"]
    assert errs(secret(type_, {key: "[]"})) == [
        bad + "json: cannot unmarshal array into Go value of type map[string]interface {}"
    ]
    assert errs(secret(type_, string_data={key: '"x"'})) == [
        bad + "json: cannot unmarshal string into Go value of type map[string]interface {}"
    ]
    # Not JSON at all: reported (the detail is Python's wording of the syntax error).
    (only,) = errs(secret(type_, {key: "{auths}"}))
    assert only.startswith(bad)
    # Valid: an object, or `null` (which leaves the map alone).
    for text in ('{"auths": {"r.example": {"auth": "eDp5"}}}', "null"):
        assert len(decode_resources([secret(type_, {key: text})]).secrets) == 1
        assert len(decode_resources([secret(type_, string_data={key: text})]).secrets) == 1


def test_docker_secret_with_undecodable_data_is_reported_once() -> None:
    obj = secret("kubernetes.io/dockercfg")
    obj["data"] = {".dockercfg": "not base64!"}
    assert errs(obj) == [
        "Secret default/s: data[.dockercfg]: Invalid value: must be valid base64 (illegal base64 data)"
    ]


@pytest.mark.parametrize("type_", ["Opaque", "", "example.com/custom", "bootstrap.kubernetes.io/token"])
def test_other_secret_types_need_no_key(type_: str) -> None:
    # `case core.SecretTypeOpaque, "": // no-op` ... `default: // no-op`
    assert len(decode_resources([secret(type_, {})]).secrets) == 1


def test_every_secret_problem_is_collected_with_the_others() -> None:
    bad_slice = slice_of("0.0.0.0")
    out = errs(secret("kubernetes.io/basic-auth", {}), bad_slice,
               secret("kubernetes.io/tls", {"tls.crt": "c"}))
    assert out == [
        "Secret default/s: data[username]: Required value",
        "Secret default/s: data[password]: Required value",
        'EndpointSlice default/svc-1: endpoints[0].addresses[0]: Invalid value: "0.0.0.0": '
        "may not be unspecified (0.0.0.0)",
        "Secret default/s: data[tls.key]: Required value",
    ]


# --- map keys YAML reads as integers or booleans ------------------------------------------------
#
# kubectl sends YAML as JSON made by sigs.k8s.io/yaml (YAMLToJSON -> convertToJSONableObject):
#   "JSON does not support arbitrary keys in a map, so we must convert these keys to strings."
#   `case int: keyString = strconv.Itoa(typedKey)` ... `case bool: if typedKey { keyString =
#   "true" } else { keyString = "false" }`
# so `labels: {1: a}` reaches the API server as the label "1" (a valid qualified name) and is
# accepted; ingresslib refused it ("expected string key, got integer").


def test_integer_and_boolean_map_keys_load_as_kubectl_sends_them() -> None:
    res = ingresslib.parse_manifests(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: svc\n"
        "  labels: {1: a, 0x10: b}\n  annotations: {8080: x, off: z}\n"
        "spec:\n  selector: {123: web}\n  ports: [{port: 80}]\n"
        "---\napiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {1: MQ==}\n"
    )
    (svc,) = res.services
    assert dict(svc.metadata.labels) == {"1": "a", "16": "b"}
    assert dict(svc.metadata.annotations) == {"8080": "x", "false": "z"}
    assert dict(svc.spec.selector) == {"123": "web"}
    assert res.secrets[0].get_bytes("1") == b"1"


def test_converted_keys_are_validated_as_strings() -> None:
    # The converted key goes through the API rules like any other: "-1" is no label key.
    assert errs({"apiVersion": "v1", "kind": "Service",
                 "metadata": {"name": "svc", "labels": {-1: "a"}},
                 "spec": {"ports": [{"port": 80}]}}) == [
        'Service default/svc: metadata.labels: Invalid value: "-1": name part must consist of '
        "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
        "character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
        "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
    ]


def test_other_non_string_map_keys_stay_errors() -> None:
    # A float key (Go formats it its own way) and a null key (kubectl: "unsupported map key")
    # are still refused, each at its own entry.
    out = errs({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
                "data": {1.5: "MQ==", None: "MQ=="}})
    assert out == [
        "Secret default/s: data[1.5]: Invalid value: 1.5: expected string key, got number",
        "Secret default/s: data[None]: Invalid value: null: expected string key, got null",
    ]
