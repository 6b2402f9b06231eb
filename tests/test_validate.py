"""The API server's create-time rules (SEMANTICS §2), one test per rule, exact messages.

Expected strings are written from validation.go and apimachinery's message helpers, not from
ingresslib's output.
"""

from __future__ import annotations

from typing import Any

import pytest

from ingresslib._decode import decode_resources
from ingresslib._errors import ValidationError
from ingresslib._resources import Resources

SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character (e.g. 'example.com', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
WILDCARD_MSG = (
    "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, which "
    "must consist of lower case alphanumeric characters, '-' or '.' and end with an alphanumeric "
    "character (e.g. '*.example.com', regex used for validation is "
    "'\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
DNS1035_MSG = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', "
    "regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
)
DNS1123_LABEL_MSG = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
    "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
    "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)
RANGE_MSG = "must be between 1 and 65535, inclusive"
PATH_TYPES = 'supported values: "Exact", "ImplementationSpecific", "Prefix"'

# --- builders -------------------------------------------------------------------------------


def svc(name: str = "web", number: int | None = 80, port_name: str | None = None) -> dict[str, Any]:
    port: dict[str, Any] = {}
    if number is not None:
        port["number"] = number
    if port_name is not None:
        port["name"] = port_name
    return {"service": {"name": name, "port": port}}


def p(path: str | None = "/", path_type: str | None = "Prefix", backend: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {"backend": svc() if backend is None else backend}
    if path is not None:
        out["path"] = path
    if path_type is not None:
        out["pathType"] = path_type
    return out


def rule(host: str | None = None, *paths: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"http": {"paths": list(paths or [p()])}}
    if host is not None:
        out["host"] = host
    return out


def ingress(spec: Any = None, name: str | None = "web", **meta: Any) -> dict[str, Any]:
    metadata: dict[str, Any] = dict(meta)
    if name is not None:
        metadata["name"] = name
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": metadata,
        "spec": {"rules": [rule()]} if spec is None else spec,
    }


def one_path(path: str | None, path_type: str | None = "Prefix") -> dict[str, Any]:
    return ingress({"rules": [rule(None, p(path, path_type))]})


def errors(*objs: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as ei:
        decode_resources(objs)
    return [str(e) for e in ei.value.errors]


def loads(*objs: dict[str, Any]) -> Resources:
    return decode_resources(objs)


PATH0 = "Ingress default/web: spec.rules[0].http.paths[0]"

# --- Ingress spec -----------------------------------------------------------------------------


def test_spec_needs_rules_or_default_backend() -> None:
    # "if len(spec.Rules) == 0 && spec.DefaultBackend == nil": Invalid on `spec`.
    assert errors(ingress({})) == [
        "Ingress default/web: spec: Invalid value: null: either `defaultBackend` or `rules` must be specified"
    ]
    # The value is json.Marshal(spec.Rules): `[]` for an empty, non-nil slice (more in
    # test_validate_review.py).
    assert errors(ingress({"rules": []})) == [
        "Ingress default/web: spec: Invalid value: []: either `defaultBackend` or `rules` must be specified"
    ]


def test_path_type_is_required() -> None:
    assert errors(one_path("/", None)) == [f"{PATH0}.pathType: Required value: pathType must be specified"]


def test_path_type_unsupported_lists_supported_values() -> None:
    assert errors(one_path("/", "Regex")) == [f'{PATH0}.pathType: Unsupported value: "Regex": {PATH_TYPES}']


def test_http_paths_may_not_be_empty() -> None:
    assert errors(ingress({"rules": [{"host": "a.com", "http": {"paths": []}}]})) == [
        "Ingress default/web: spec.rules[0].http.paths: Required value"
    ]
    # `http: {}` is an HTTP rule value with no paths too.
    assert errors(ingress({"rules": [{"http": {}}]})) == ["Ingress default/web: spec.rules[0].http.paths: Required value"]


@pytest.mark.parametrize("path_type", ["Exact", "Prefix"])
@pytest.mark.parametrize("path", ["foo", "", None])
def test_exact_and_prefix_paths_must_be_absolute(path_type: str, path: str | None) -> None:
    shown = path or ""
    assert errors(one_path(path, path_type)) == [f'{PATH0}.path: Invalid value: "{shown}": must be an absolute path']


@pytest.mark.parametrize("path_type", ["Exact", "Prefix"])
@pytest.mark.parametrize(
    ("path", "seq"), [("/a//b", "//"), ("/a/./b", "/./"), ("/a/../b", "/../"), ("/a%2fb", "%2f"), ("/a%2Fb", "%2F")]
)
def test_exact_and_prefix_paths_reject_sequences(path_type: str, path: str, seq: str) -> None:
    assert errors(one_path(path, path_type)) == [f'{PATH0}.path: Invalid value: "{path}": must not contain \'{seq}\'']


@pytest.mark.parametrize(("path", "suffix"), [("/foo/..", "/.."), ("/foo/.", "/."), ("/..", "/..")])
def test_exact_and_prefix_paths_reject_dot_suffixes(path: str, suffix: str) -> None:
    assert errors(one_path(path, "Exact")) == [f'{PATH0}.path: Invalid value: "{path}": cannot end with \'{suffix}\'']


def test_path_errors_accumulate() -> None:
    # Every failed check is its own error, in validation.go's order.
    assert errors(one_path("a//b/.", "Prefix")) == [
        f'{PATH0}.path: Invalid value: "a//b/.": must be an absolute path',
        f'{PATH0}.path: Invalid value: "a//b/.": must not contain \'//\'',
        f'{PATH0}.path: Invalid value: "a//b/.": cannot end with \'/.\'',
    ]


@pytest.mark.parametrize("path", ["/.well-known", "/foo/..bar", "/foo.", "/a/b/", "/"])
def test_dots_inside_segments_are_fine(path: str) -> None:
    assert loads(one_path(path, "Exact")).ingresses[0].spec.rules[0].paths[0].path == path  # type: ignore[index]


@pytest.mark.parametrize("path", [None, "", "/api/(.*)", "/a//b", "/%2F", "/foo/.."])
def test_implementation_specific_allows_anything_absolute_or_empty(path: str | None) -> None:
    res = loads(one_path(path, "ImplementationSpecific"))
    assert res.ingresses[0].spec.rules[0].paths[0].path == path  # type: ignore[index]


def test_implementation_specific_non_empty_must_start_with_slash() -> None:
    assert errors(one_path("api/(.*)", "ImplementationSpecific")) == [
        f'{PATH0}.path: Invalid value: "api/(.*)": must be an absolute path'
    ]


# --- hosts --------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["Foo.com", "foo.com:80", "foo_bar.com", "-a.com", "a..com", "foo.com."])
def test_host_must_be_lowercase_rfc1123_subdomain(host: str) -> None:
    assert errors(ingress({"rules": [rule(host)]})) == [
        f'Ingress default/web: spec.rules[0].host: Invalid value: "{host}": {SUBDOMAIN_MSG}'
    ]


def test_host_too_long() -> None:
    host = ("a" * 60 + ".") * 4 + "com"  # 247 + ... > 253 bytes
    host = "b" * 10 + "." + host
    assert len(host) > 253
    assert errors(ingress({"rules": [rule(host)]})) == [
        f'Ingress default/web: spec.rules[0].host: Invalid value: "{host}": must be no more than 253 bytes'
    ]


@pytest.mark.parametrize("host", ["1.2.3.4", "010.001.002.003"])
def test_host_must_not_be_an_ip(host: str) -> None:
    assert errors(ingress({"rules": [rule(host)]})) == [
        f'Ingress default/web: spec.rules[0].host: Invalid value: "{host}": must be a DNS name, not an IP address'
    ]


def test_host_ipv6_is_rejected_twice() -> None:
    # An IPv6 literal is an IP and also not DNS-shaped: both checks report, as on the API server.
    assert errors(ingress({"rules": [rule("::1")]})) == [
        'Ingress default/web: spec.rules[0].host: Invalid value: "::1": must be a DNS name, not an IP address',
        f'Ingress default/web: spec.rules[0].host: Invalid value: "::1": {SUBDOMAIN_MSG}',
    ]


@pytest.mark.parametrize("host", ["*", "*.*.foo.com", "foo.*.com", "*foo.com", "f*.foo.com", "*.Foo.com"])
def test_wildcard_only_as_whole_first_label(host: str) -> None:
    assert errors(ingress({"rules": [rule(host)]})) == [
        f'Ingress default/web: spec.rules[0].host: Invalid value: "{host}": {WILDCARD_MSG}'
    ]


def test_wildcard_host_is_valid() -> None:
    assert loads(ingress({"rules": [rule("*.foo.com")]})).ingresses[0].spec.rules[0].host == "*.foo.com"


def test_tls_hosts_follow_the_same_rules() -> None:
    spec = {
        "rules": [rule("a.com")],
        "tls": [{"hosts": ["a.com", "*.b.com", "Bad.com", "*", "1.2.3.4"], "secretName": "tls"}],
    }
    assert errors(ingress(spec)) == [
        f'Ingress default/web: spec.tls[0].hosts[2]: Invalid value: "Bad.com": {SUBDOMAIN_MSG}',
        f'Ingress default/web: spec.tls[0].hosts[3]: Invalid value: "*": {WILDCARD_MSG}',
        'Ingress default/web: spec.tls[0].hosts[4]: Invalid value: "1.2.3.4": must be a DNS name, not an IP address',
    ]


def test_tls_secret_name_is_a_subdomain() -> None:
    spec = {"rules": [rule()], "tls": [{"secretName": "Bad_Secret"}]}
    assert errors(ingress(spec)) == [
        f'Ingress default/web: spec.tls[0].secretName: Invalid value: "Bad_Secret": {SUBDOMAIN_MSG}'
    ]


# --- backends -------------------------------------------------------------------------------------


def test_backend_cannot_set_both_service_and_resource() -> None:
    backend = {**svc(), "resource": {"kind": "Bucket", "name": "b"}}
    assert errors(one_backend(backend)) == [
        f'{PATH0}.backend: Invalid value: "": cannot set both resource and service backends'
    ]


def one_backend(backend: Any) -> dict[str, Any]:
    return ingress({"rules": [rule(None, p("/", "Prefix", backend))]})


def test_backend_needs_service_or_resource() -> None:
    assert errors(one_backend({})) == [f'{PATH0}.backend: Invalid value: "": resource or service backend is required']


def test_default_backend_is_validated_too() -> None:
    assert errors(ingress({"defaultBackend": {}})) == [
        'Ingress default/web: spec.defaultBackend: Invalid value: "": resource or service backend is required'
    ]


def test_service_name_required_and_dns1035() -> None:
    assert errors(one_backend(svc(name=""))) == [f"{PATH0}.backend.service.name: Required value"]
    assert errors(one_backend(svc(name="1web"))) == [
        f'{PATH0}.backend.service.name: Invalid value: "1web": {DNS1035_MSG}'
    ]
    # A subdomain is fine for an Ingress name but not for a Service name.
    assert errors(one_backend(svc(name="web.v1"))) == [
        f'{PATH0}.backend.service.name: Invalid value: "web.v1": {DNS1035_MSG}'
    ]


def test_service_port_name_and_number_exclusive() -> None:
    assert errors(one_backend(svc(number=80, port_name="http"))) == [
        f'{PATH0}.backend: Invalid value: "": cannot set both port name & port number'
    ]


@pytest.mark.parametrize("number", [None, 0])
def test_service_port_required(number: int | None) -> None:
    # `hasPortNumber := backend.Service.Port.Number != 0`: 0 counts as unset.
    assert errors(one_backend(svc(number=number))) == [
        f"{PATH0}.backend: Required value: port name or number is required"
    ]


@pytest.mark.parametrize("number", [65536, -1, 100000])
def test_service_port_number_range(number: int) -> None:
    assert errors(one_backend(svc(number=number))) == [
        f"{PATH0}.backend.service.port.number: Invalid value: {number}: {RANGE_MSG}"
    ]


@pytest.mark.parametrize(
    ("name", "messages"),
    [
        ("a-very-long-port-name", ["must be no more than 15 bytes"]),
        ("HTTP", ["must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
                  "must contain at least one letter (a-z)"]),
        ("8080", ["must contain at least one letter (a-z)"]),
        ("a--b", ["must not contain consecutive hyphens"]),
        ("-http", ["must not begin or end with a hyphen"]),
        ("http-", ["must not begin or end with a hyphen"]),
    ],
)
def test_service_port_name_is_iana_svc_name(name: str, messages: list[str]) -> None:
    assert errors(one_backend(svc(number=None, port_name=name))) == [
        f'{PATH0}.backend.service.port.name: Invalid value: "{name}": {m}' for m in messages
    ]


def test_valid_port_names_and_numbers() -> None:
    for backend in (svc(number=None, port_name="h2c-web"), svc(number=1), svc(number=65535)):
        assert loads(one_backend(backend)).ingresses


def test_resource_backend_needs_kind_and_name() -> None:
    assert errors(one_backend({"resource": {"apiGroup": "k8s.example.com"}})) == [
        f"{PATH0}.backend.resource.kind: Required value",
        f"{PATH0}.backend.resource.name: Required value",
    ]


def test_resource_backend_name_is_a_path_segment() -> None:
    assert errors(one_backend({"resource": {"kind": "Bucket", "name": "a/b%"}})) == [
        f"{PATH0}.backend.resource.name: Invalid value: \"a/b%\": may not contain '/'",
        f"{PATH0}.backend.resource.name: Invalid value: \"a/b%\": may not contain '%'",
    ]


def test_resource_backend_loads() -> None:
    res = loads(one_backend({"resource": {"apiGroup": "k8s.example.com", "kind": "Bucket", "name": "static"}}))
    backend = res.ingresses[0].spec.rules[0].paths[0].backend  # type: ignore[index]
    assert backend.service is None
    assert backend.resource is not None and backend.resource.kind == "Bucket"


# --- class name ---------------------------------------------------------------------------------


def test_ingress_class_name_is_a_subdomain() -> None:
    assert errors(ingress({"rules": [rule()], "ingressClassName": "Nginx"})) == [
        f'Ingress default/web: spec.ingressClassName: Invalid value: "Nginx": {SUBDOMAIN_MSG}'
    ]


def test_class_annotation_must_match_class_name() -> None:
    obj = ingress(
        {"rules": [rule()], "ingressClassName": "nginx"}, annotations={"kubernetes.io/ingress.class": "traefik"}
    )
    assert errors(obj) == [
        'Ingress default/web: annotations.kubernetes.io/ingress.class: Invalid value: "traefik": '
        "must match `ingressClassName` when both are specified"
    ]


def test_class_annotation_equal_to_class_name_is_fine() -> None:
    obj = ingress({"rules": [rule()], "ingressClassName": "nginx"}, annotations={"kubernetes.io/ingress.class": "nginx"})
    assert loads(obj).ingresses[0].class_name == "nginx"


# --- metadata -------------------------------------------------------------------------------------


def test_metadata_name_required() -> None:
    assert errors(ingress(name=None)) == [
        "Ingress default/<no name>: metadata.name: Required value: name or generateName is required"
    ]


def test_metadata_name_shapes_per_kind() -> None:
    good_for_ingress = ingress(name="web.v1")
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web.v1"}, "spec": {"ports": [{"port": 80}]}}
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "Tls"}}
    assert loads(good_for_ingress).ingresses
    assert errors(service, secret) == [
        f'Service default/web.v1: metadata.name: Invalid value: "web.v1": {DNS1035_MSG}',
        f'Secret default/Tls: metadata.name: Invalid value: "Tls": {SUBDOMAIN_MSG}',
    ]


def test_metadata_namespace_is_a_label() -> None:
    assert errors(ingress(namespace="Shop")) == [
        f'Ingress Shop/web: metadata.namespace: Invalid value: "Shop": {DNS1123_LABEL_MSG}'
    ]


def test_label_keys_and_values() -> None:
    obj = ingress(labels={"app": "my app", "a/b/c": "x", "ok.example.com/name": "v1.2_3"})
    assert errors(obj) == [
        'Ingress default/web: metadata.labels: Invalid value: "my app": a valid label must be an empty string or '
        "consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character "
        "(e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is "
        "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')",
        'Ingress default/web: metadata.labels: Invalid value: "a/b/c": a valid label key must consist of alphanumeric '
        "characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or "
        "'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an "
        "optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
    ]


def test_annotation_keys_are_qualified_names_case_insensitively() -> None:
    ok = ingress(annotations={"Nginx.Ingress.Kubernetes.io/Canary-By-Header": "X", "a": "any value at all / ?"})
    assert loads(ok).ingresses
    bad = ingress(annotations={"nginx.ingress.kubernetes.io/": "x"})
    assert errors(bad) == [
        'Ingress default/web: metadata.annotations: Invalid value: "nginx.ingress.kubernetes.io/": '
        "name part must be non-empty",
        'Ingress default/web: metadata.annotations: Invalid value: "nginx.ingress.kubernetes.io/": name part must '
        "consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character "
        "(e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
        "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
    ]


def test_annotations_total_size() -> None:
    assert errors(ingress(annotations={"big": "x" * (256 * 1024)})) == [
        "Ingress default/web: metadata.annotations: Too long: may not be more than 262144 bytes"
    ]


# --- all at once --------------------------------------------------------------------------------


def test_every_error_of_an_object_is_reported() -> None:
    obj = ingress({"rules": [rule("Bad.com", p("/x", None), p("rel", "Exact"))]})
    errs = errors(obj)
    assert errs == [
        f'Ingress default/web: spec.rules[0].host: Invalid value: "Bad.com": {SUBDOMAIN_MSG}',
        "Ingress default/web: spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified",
        'Ingress default/web: spec.rules[0].http.paths[1].path: Invalid value: "rel": must be an absolute path',
    ]


def test_errors_of_every_object_are_reported() -> None:
    a = ingress({}, name="a")
    b = ingress({"rules": [rule("B.com")]}, name="b", namespace="shop")
    c = ingress(name="c")  # valid
    assert errors(a, b, c) == [
        "Ingress default/a: spec: Invalid value: null: either `defaultBackend` or `rules` must be specified",
        f'Ingress shop/b: spec.rules[0].host: Invalid value: "B.com": {SUBDOMAIN_MSG}',
    ]


def test_field_error_attributes() -> None:
    with pytest.raises(ValidationError) as ei:
        decode_resources([one_path("rel", "Exact")])
    (e,) = ei.value.errors
    assert (e.object, e.field, e.type, e.value, e.has_value, e.detail) == (
        "Ingress default/web", "spec.rules[0].http.paths[0].path", "Invalid value", "rel", True,
        "must be an absolute path",
    )
    assert isinstance(ei.value, ValueError)


# --- valid but odd --------------------------------------------------------------------------------


def test_valid_but_odd_manifests_load() -> None:
    objs = [
        ingress({"rules": [rule(None, p("/api/v[0-9]+/(.*)", "ImplementationSpecific"))]}, name="regex"),
        ingress({"rules": [{"host": "only.example.com"}], "defaultBackend": svc()}, name="host-only"),
        ingress({"rules": [rule()], "tls": [{}]}, name="empty-tls"),
        ingress({"defaultBackend": svc()}, name="default-only"),
        ingress({"rules": [rule()], "ingressClassName": "does-not-exist"}, name="ghost-class"),
        ingress({"rules": [{"host": "only.example.com"}]}, name="host-only-no-default"),
    ]
    res = loads(*objs)
    assert [i.metadata.name for i in res.ingresses] == [o["metadata"]["name"] for o in objs]
    host_only = res.ingresses[1].spec.rules[0]
    assert host_only.host == "only.example.com" and host_only.paths is None
    assert res.ingresses[2].spec.tls[0].hosts == () and res.ingresses[2].spec.tls[0].secret_name is None


# --- IngressClass ---------------------------------------------------------------------------------


def ingress_class(spec: dict[str, Any], name: str = "nginx") -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": name}, "spec": spec}


def test_ingress_class_controller_required() -> None:
    assert errors(ingress_class({})) == ["IngressClass nginx: spec.controller: Required value"]


@pytest.mark.parametrize("controller", ["nginx", "/foo", "example.com/"])
def test_ingress_class_controller_is_domain_prefixed(controller: str) -> None:
    assert errors(ingress_class({"controller": controller})) == [
        f'IngressClass nginx: spec.controller: Invalid value: "{controller}": '
        'must be a domain-prefixed path (such as "acme.io/foo")'
    ]


def test_ingress_class_controller_domain_and_path_checked() -> None:
    assert errors(ingress_class({"controller": "Example.com/a b"})) == [
        f'IngressClass nginx: spec.controller: Invalid value: "Example.com": {SUBDOMAIN_MSG}',
        "IngressClass nginx: spec.controller: Invalid value: \"a b\": Invalid path (regex used for validation "
        "is '[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+')",
    ]


def test_ingress_class_controller_max_length() -> None:
    controller = "example.com/" + "a" * 239
    assert len(controller) == 251
    assert errors(ingress_class({"controller": controller})) == [
        "IngressClass nginx: spec.controller: Too long: may not be more than 250 bytes"
    ]
    assert loads(ingress_class({"controller": controller[:-1]})).ingress_classes


def test_ingress_class_parameters_need_kind_and_name() -> None:
    assert errors(ingress_class({"controller": "k8s.io/ingress-nginx", "parameters": {}})) == [
        "IngressClass nginx: spec.parameters.kind: Required value",
        "IngressClass nginx: spec.parameters.name: Required value",
    ]


def test_ingress_class_scope_defaults_to_cluster_and_forbids_namespace() -> None:
    params = {"kind": "Config", "name": "c"}
    res = loads(ingress_class({"controller": "k8s.io/ingress-nginx", "parameters": params}))
    assert res.ingress_classes[0].spec.parameters is not None
    assert res.ingress_classes[0].spec.parameters.scope == "Cluster"
    bad = ingress_class({"controller": "k8s.io/ingress-nginx", "parameters": {**params, "namespace": "x"}})
    assert errors(bad) == [
        "IngressClass nginx: spec.parameters.namespace: Forbidden: `parameters.scope` is set to 'Cluster'"
    ]


def test_ingress_class_namespace_scope_needs_namespace() -> None:
    params = {"kind": "Config", "name": "c", "scope": "Namespace"}
    assert errors(ingress_class({"controller": "k8s.io/ingress-nginx", "parameters": params})) == [
        "IngressClass nginx: spec.parameters.namespace: Required value: `parameters.scope` is set to 'Namespace'"
    ]
    ok = ingress_class({"controller": "k8s.io/ingress-nginx", "parameters": {**params, "namespace": "ops"}})
    assert loads(ok).ingress_classes[0].spec.parameters.namespace == "ops"  # type: ignore[union-attr]


def test_ingress_class_scope_unsupported() -> None:
    params = {"kind": "Config", "name": "c", "scope": "Global"}
    assert errors(ingress_class({"controller": "k8s.io/ingress-nginx", "parameters": params})) == [
        'IngressClass nginx: spec.parameters.scope: Unsupported value: "Global": supported values: "Cluster", "Namespace"'
    ]


def test_ingress_class_metadata_name_is_a_subdomain() -> None:
    # (Was a second `test_ingress_class_name_is_a_subdomain`, which hid the spec.ingressClassName
    # test of the same name: pytest collected only this one.)
    assert errors(ingress_class({"controller": "k8s.io/ingress-nginx"}, name="Nginx")) == [
        f'IngressClass Nginx: metadata.name: Invalid value: "Nginx": {SUBDOMAIN_MSG}'
    ]


# --- Service --------------------------------------------------------------------------------------


def service(ports: list[dict[str, Any]] | None, **spec: Any) -> dict[str, Any]:
    if ports is not None:
        spec["ports"] = ports
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": spec}


def test_service_ports_required_unless_headless_or_external_name() -> None:
    assert errors(service(None)) == ["Service default/web: spec.ports: Required value"]
    assert loads(service(None, clusterIP="None")).services
    assert loads(service(None, type="ExternalName", externalName="db.example.com")).services


@pytest.mark.parametrize("port", [0, 65536])
def test_service_port_range(port: int) -> None:
    # The unset targetPort is the port by validation time (SetDefaults_Service), so the API
    # server tells it twice: "[spec.ports[0].port: Invalid value: 0: must be between 1 and
    # 65535, inclusive, spec.ports[0].targetPort: Invalid value: 0: ...]".
    assert errors(service([{"port": port}])) == [
        f"Service default/web: spec.ports[0].port: Invalid value: {port}: {RANGE_MSG}",
        f"Service default/web: spec.ports[0].targetPort: Invalid value: {port}: {RANGE_MSG}"]


def test_service_port_names_required_when_several_and_unique() -> None:
    assert errors(service([{"port": 80}, {"port": 443, "name": "https"}, {"port": 8443, "name": "https"}])) == [
        "Service default/web: spec.ports[0].name: Required value",
        'Service default/web: spec.ports[2].name: Duplicate value: "https"',
    ]
    assert loads(service([{"port": 80}])).services  # one port may be unnamed


def test_service_target_port_number_or_name() -> None:
    assert errors(service([{"port": 80, "targetPort": 70000}])) == [
        f"Service default/web: spec.ports[0].targetPort: Invalid value: 70000: {RANGE_MSG}"
    ]
    assert errors(service([{"port": 80, "targetPort": "HTTP"}])) == [
        'Service default/web: spec.ports[0].targetPort: Invalid value: "HTTP": '
        "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)",
        'Service default/web: spec.ports[0].targetPort: Invalid value: "HTTP": must contain at least one letter (a-z)',
    ]
    res = loads(service([{"port": 80, "targetPort": "http", "name": "a"}, {"port": 81, "targetPort": 8081, "name": "b"}]))
    assert [sp.target_port for sp in res.services[0].spec.ports] == ["http", 8081]


def test_service_protocol_supported() -> None:
    assert errors(service([{"port": 80, "protocol": "HTTP"}])) == [
        'Service default/web: spec.ports[0].protocol: Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"'
    ]


def test_service_type_supported() -> None:
    assert errors(service([{"port": 80}], type="Ingress")) == [
        'Service default/web: spec.type: Unsupported value: "Ingress": '
        'supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort"'
    ]


# --- EndpointSlice --------------------------------------------------------------------------------


def eps(endpoints: list[dict[str, Any]], ports: Any = None, **extra: Any) -> dict[str, Any]:
    out = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "web-abc", "labels": {"kubernetes.io/service-name": "web"}},
        "endpoints": endpoints,
        "ports": ports,
    }
    out.update(extra)
    return out


def test_endpoint_slice_address_type_required_and_supported() -> None:
    assert errors(eps([])) == ["EndpointSlice default/web-abc: addressType: Required value"]
    assert errors(eps([], addressType="IP")) == [
        'EndpointSlice default/web-abc: addressType: Unsupported value: "IP": supported values: "FQDN", "IPv4", "IPv6"'
    ]


def test_endpoint_slice_addresses_match_the_type() -> None:
    v4 = eps([{"addresses": ["10.0.0.1", "::1", "nope"]}], addressType="IPv4")
    assert errors(v4) == [
        'EndpointSlice default/web-abc: endpoints[0].addresses[1]: Invalid value: "::1": must be a valid IPv4 address',
        'EndpointSlice default/web-abc: endpoints[0].addresses[2]: Invalid value: "nope": must be a valid IPv4 address',
        # ValidateEndpointIP's parse check (its special-range checks are deliberately skipped).
        'EndpointSlice default/web-abc: endpoints[0].addresses[2]: Invalid value: "nope": must be a valid IP address',
    ]
    v6 = eps([{"addresses": ["fd00::1", "10.0.0.1"]}], addressType="IPv6")
    assert errors(v6) == [
        'EndpointSlice default/web-abc: endpoints[0].addresses[1]: Invalid value: "10.0.0.1": must be a valid IPv6 address'
    ]
    fqdn = eps([{"addresses": ["db.example.com", "Bad.example.com"]}], addressType="FQDN")
    assert errors(fqdn) == [
        f'EndpointSlice default/web-abc: endpoints[0].addresses[1]: Invalid value: "Bad.example.com": {SUBDOMAIN_MSG}'
    ]


def test_endpoint_slice_needs_an_address_per_endpoint() -> None:
    assert errors(eps([{"addresses": []}], addressType="IPv4")) == [
        "EndpointSlice default/web-abc: endpoints[0].addresses: Required value: must contain at least 1 address"
    ]


def test_endpoint_slice_loopback_is_allowed() -> None:
    # Documented difference: local manifests point at 127.0.0.1.
    res = loads(eps([{"addresses": ["127.0.0.1"]}], [{"port": 8080, "name": "http"}], addressType="IPv4"))
    assert res.endpoint_slices[0].endpoints[0].addresses == ("127.0.0.1",)


def test_endpoint_slice_ports() -> None:
    bad = eps([{"addresses": ["10.0.0.1"]}], [{"port": 0, "name": "a"}, {"port": 70000, "name": "a"}], addressType="IPv4")
    assert errors(bad) == [
        f"EndpointSlice default/web-abc: ports[0].port: Invalid value: 0: {RANGE_MSG}",
        'EndpointSlice default/web-abc: ports[1].name: Duplicate value: "a"',
        f"EndpointSlice default/web-abc: ports[1].port: Invalid value: 70000: {RANGE_MSG}",
    ]
    # A null port means "all ports" and is valid.
    ok = loads(eps([{"addresses": ["10.0.0.1"]}], [{"port": None, "name": "all"}], addressType="IPv4"))
    assert ok.endpoint_slices[0].ports[0].port is None


# --- Endpoints (v1) -------------------------------------------------------------------------------


def test_endpoints_addresses_and_ports() -> None:
    obj = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "web"},
        "subsets": [{"addresses": [{"ip": "10.0.0.300"}], "ports": [{"port": 80}, {"port": 81, "name": "b"}]}, {}],
    }
    assert errors(obj) == [
        'Endpoints default/web: subsets[0].addresses[0].ip: Invalid value: "10.0.0.300": '
        "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        'Endpoints default/web: subsets[0].addresses[0].ip: Invalid value: "10.0.0.300": must be a valid IP address',
        "Endpoints default/web: subsets[0].ports[0].name: Required value",
        "Endpoints default/web: subsets[1]: Required value: must specify `addresses` or `notReadyAddresses`",
    ]


# --- Secret ---------------------------------------------------------------------------------------


def secret(type_: str = "kubernetes.io/tls", **fields: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tls"}, "type": type_, **fields}


def test_tls_secret_needs_cert_and_key() -> None:
    assert errors(secret(data={})) == [
        "Secret default/tls: data[tls.crt]: Required value",
        "Secret default/tls: data[tls.key]: Required value",
    ]
    assert errors(secret(data={"tls.crt": "Y2VydA=="})) == ["Secret default/tls: data[tls.key]: Required value"]


def test_tls_secret_string_data_counts() -> None:
    res = loads(secret(data={"tls.crt": "Y2VydA=="}, stringData={"tls.key": "key"}))
    assert res.secrets[0].get_bytes("tls.crt") == b"cert"
    assert res.secrets[0].get_bytes("tls.key") == b"key"


def test_secret_data_must_be_base64_and_is_not_echoed() -> None:
    assert errors(secret("Opaque", data={"a": "not base64!"})) == [
        "Secret default/tls: data[a]: Invalid value: must be valid base64 (illegal base64 data)"
    ]


def test_secret_data_keys_are_config_keys() -> None:
    assert errors(secret("Opaque", data={"a b": "", "..x": ""})) == [
        "Secret default/tls: data[a b]: Invalid value: \"a b\": a valid config key must consist of alphanumeric "
        "characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation "
        "is '[-._a-zA-Z0-9]+')",
        "Secret default/tls: data[..x]: Invalid value: \"..x\": must not start with '..'",
    ]


# --- conformance review against the API server source (second pass) --------------------------
#
# Each test names the source rule it checks; every one of them failed before the fix it guards
# (or pins a rule that was implemented but untested).


def test_resource_backend_explicit_empty_api_group_is_invalid() -> None:
    # validateIngressTypedLocalObjectReference: `if params.APIGroup != nil {
    # IsDNS1123Subdomain(*params.APIGroup) }`: an explicit "" is a pointer to "" and fails.
    assert errors(one_backend({"resource": {"apiGroup": "", "kind": "Bucket", "name": "b"}})) == [
        f'{PATH0}.backend.resource.apiGroup: Invalid value: "": {SUBDOMAIN_MSG}'
    ]


def test_resource_backend_kind_is_a_path_segment() -> None:
    assert errors(one_backend({"resource": {"kind": "..", "name": "."}})) == [
        f"{PATH0}.backend.resource.kind: Invalid value: \"..\": may not be '..'",
        f"{PATH0}.backend.resource.name: Invalid value: \".\": may not be '.'",
    ]


def test_empty_ingress_class_name_is_invalid() -> None:
    # `if spec.IngressClassName != nil { ValidateIngressClassName(*spec.IngressClassName) }`
    assert errors(ingress({"rules": [rule()], "ingressClassName": ""})) == [
        f'Ingress default/web: spec.ingressClassName: Invalid value: "": {SUBDOMAIN_MSG}'
    ]


def test_ingress_class_parameters_api_group_and_namespace_shape() -> None:
    params = {"apiGroup": "Bad_Group", "kind": "Config", "name": "c", "scope": "Namespace", "namespace": "Ops"}
    assert errors(ingress_class({"controller": "k8s.io/ingress-nginx", "parameters": params})) == [
        f'IngressClass nginx: spec.parameters.apiGroup: Invalid value: "Bad_Group": {SUBDOMAIN_MSG}',
        f'IngressClass nginx: spec.parameters.namespace: Invalid value: "Ops": {DNS1123_LABEL_MSG}',
    ]


def test_cluster_scoped_ingress_class_ignores_metadata_namespace() -> None:
    # objectmeta: "It doesn't return an error for rootscoped resources with namespace, because
    # namespace should already be cleared before."
    obj = ingress_class({"controller": "k8s.io/ingress-nginx"})
    obj["metadata"]["namespace"] = "Not_A_Label"
    assert loads(obj).ingress_classes


@pytest.mark.parametrize("host", ["0001.2.3.4", "1.2.3.0255", "0.0.0.00"])
def test_host_ip_check_is_sloppy_like_parse_ip_sloppy(host: str) -> None:
    # netutils.ParseIPSloppy (Go 1.16's net.ParseIP) takes any number of leading zeros per
    # octet; these are DNS-shaped, so the IP check is the only error.
    assert errors(ingress({"rules": [rule(host)]})) == [
        f'Ingress default/web: spec.rules[0].host: Invalid value: "{host}": must be a DNS name, not an IP address'
    ]


@pytest.mark.parametrize("host", ["1.2.3.256", "1.2.3", "1.2.3.4.5"])
def test_dotted_numbers_that_are_not_ips_are_dns_names(host: str) -> None:
    assert loads(ingress({"rules": [rule(host)]})).ingresses[0].spec.rules[0].host == host


def test_label_key_with_two_slashes_uses_label_key_message() -> None:
    # content.IsLabelKey (validation.IsQualifiedName since apimachinery moved it): "a valid label
    # key " + RegexError(...) for more than one '/'.
    assert errors(ingress(labels={"a/b/c": "x"})) == [
        'Ingress default/web: metadata.labels: Invalid value: "a/b/c": a valid label key must consist of '
        "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. "
        "'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
        "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' "
        "(e.g. 'example.com/MyName')",
    ]


# --- Service (core ValidateService / validateServicePort) ---------------------------------------


def test_service_node_port_forbidden_for_cluster_ip() -> None:
    # `if service.Spec.Type == core.ServiceTypeClusterIP { ... if NodePort != 0 {
    # field.Forbidden(portPath.Child("nodePort"), "may not be used when `type` is 'ClusterIP'") } }`
    assert errors(service([{"port": 80, "nodePort": 30080}])) == [
        "Service default/web: spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"
    ]
    assert loads(service([{"port": 80, "nodePort": 30080}], type="NodePort")).services


def test_service_duplicate_port_and_protocol() -> None:
    # "Check for duplicate Ports, considering (protocol,port) pairs": field.Duplicate(portPath,
    # key) with key an internal core.ServicePort, rendered as JSON.
    ports = [{"port": 80, "name": "a"}, {"port": 80, "name": "b"}, {"port": 80, "name": "c", "protocol": "UDP"}]
    assert errors(service(ports)) == [
        'Service default/web: spec.ports[1]: Duplicate value: {"Name":"","Protocol":"TCP","AppProtocol":null,'
        '"Port":80,"TargetPort":0,"NodePort":0}'
    ]


def test_service_duplicate_node_ports() -> None:
    ports = [{"port": 80, "name": "a", "nodePort": 30080}, {"port": 81, "name": "b", "nodePort": 30080}]
    # The node port allocator answers first (initNodePorts; session 35's x36).
    assert errors(service(ports, type="NodePort")) == [
        "Service default/web: spec.ports[1].nodePort: Invalid value: 30080: provided port is already allocated"
    ]


def test_service_app_protocol_is_a_qualified_name() -> None:
    # validateServicePort: `if sp.AppProtocol != nil { ValidateQualifiedName(*sp.AppProtocol) }`
    assert loads(service([{"port": 80, "appProtocol": "kubernetes.io/h2c"}])).services
    assert errors(service([{"port": 80, "appProtocol": "h2 c"}])) == [
        "Service default/web: spec.ports[0].appProtocol: Invalid value: \"h2 c\": name part must consist of "
        "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. "
        "'MyName',  or 'my.name',  or '123-abc', regex used for validation is "
        "'([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
    ]


def test_service_selector_is_validated_as_labels() -> None:
    # `if service.Spec.Selector != nil { ValidateLabels(service.Spec.Selector, specPath.Child("selector")) }`
    assert errors(service([{"port": 80}], selector={"app": "my app"})) == [
        'Service default/web: spec.selector: Invalid value: "my app": a valid label must be an empty string or '
        "consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character "
        "(e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is "
        "'(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
    ]


@pytest.mark.parametrize("type_", ["LoadBalancer", "NodePort"])
def test_headless_service_cannot_be_load_balancer_or_node_port(type_: str) -> None:
    assert errors(service([{"port": 80}], type=type_, clusterIP="None")) == [
        f'Service default/web: spec.clusterIPs[0]: Invalid value: "None": may not be set to \'None\' for {type_} services'
    ]


def test_external_name_service_rules() -> None:
    # `cname := strings.TrimSuffix(service.Spec.ExternalName, "."); if len(cname) > 0 {
    # ValidateDNS1123Subdomain(cname) } else { field.Required(...) }`; clusterIPs Forbidden.
    assert errors(service(None, type="ExternalName", externalName=".")) == [
        "Service default/web: spec.externalName: Required value"
    ]
    assert errors(service(None, type="ExternalName", externalName="Bad.com.")) == [
        f'Service default/web: spec.externalName: Invalid value: "Bad.com": {SUBDOMAIN_MSG}'
    ]
    assert errors(service(None, type="ExternalName", externalName="db.example.com", clusterIP="None")) == [
        "Service default/web: spec.clusterIPs: Forbidden: may not be set for ExternalName services"
    ]
    assert loads(service(None, type="ExternalName", externalName="db.example.com.")).services


def test_service_cluster_ip_must_be_an_ip() -> None:
    assert errors(service([{"port": 80}], clusterIP="10.0.0.300")) == [
        'Service default/web: spec.clusterIPs[0]: Invalid value: "10.0.0.300": '
        "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
    ]
    assert loads(service([{"port": 80}], clusterIP="10.96.0.10")).services


# --- EndpointSlice (discovery validateEndpoints / validatePorts) --------------------------------


def test_endpoint_slice_unparseable_address_also_fails_endpoint_ip_check() -> None:
    # IPv4: `IsValidIPv4Address(...)` then `ValidateEndpointIP(...)`, whose first check is
    # `if ip == nil { field.Invalid(fldPath, ipAddress, "must be a valid IP address") }`.
    assert errors(eps([{"addresses": ["nope"]}], addressType="IPv4")) == [
        'EndpointSlice default/web-abc: endpoints[0].addresses[0]: Invalid value: "nope": must be a valid IPv4 address',
        'EndpointSlice default/web-abc: endpoints[0].addresses[0]: Invalid value: "nope": must be a valid IP address',
    ]


def test_endpoint_slice_ipv4_mapped_ipv6_counts_as_ipv4() -> None:
    # `if ip == nil || ip.To4() == nil { "must be a valid IPv4 address" }`: To4() is non-nil for
    # "::ffff:a.b.c.d", so such an address is IPv4 (and not IPv6).
    assert loads(eps([{"addresses": ["::ffff:10.0.0.1"]}], addressType="IPv4")).endpoint_slices
    assert errors(eps([{"addresses": ["::ffff:10.0.0.1"]}], addressType="IPv6")) == [
        'EndpointSlice default/web-abc: endpoints[0].addresses[0]: Invalid value: "::ffff:10.0.0.1": '
        "must be a valid IPv6 address"
    ]


def test_endpoint_slice_leading_zero_octets_are_ipv4() -> None:
    assert loads(eps([{"addresses": ["010.000.000.001"]}], addressType="IPv4")).endpoint_slices


def test_endpoint_slice_fqdn_labels_are_checked() -> None:
    # IsFullyQualifiedDomainName: `for _, label := range strings.Split(name, ".") {
    # if errs := IsDNS1123Label(label); len(errs) > 0 { field.Invalid(fldPath, label, ...) } }`
    label = "a" * 64
    assert errors(eps([{"addresses": [f"{label}.example.com"]}], addressType="FQDN")) == [
        f'EndpointSlice default/web-abc: endpoints[0].addresses[0]: Invalid value: "{label}": '
        "must be no more than 63 bytes"
    ]
    assert errors(eps([{"addresses": ["localhost"]}], addressType="FQDN")) == [
        'EndpointSlice default/web-abc: endpoints[0].addresses[0]: Invalid value: "localhost": '
        "should be a domain with at least two segments separated by dots"
    ]


def test_endpoint_slice_too_many_endpoints() -> None:
    # `if len(endpoints) > maxEndpoints { field.TooMany(fldPath, len(endpoints), maxEndpoints);
    # return }` (maxEndpoints = 1000): the endpoints themselves are then not checked.
    many = [{"addresses": ["nope"]}] * 1001
    assert errors(eps(many, addressType="IPv4")) == [
        "EndpointSlice default/web-abc: endpoints: Too many: 1001: must have at most 1000 items"
    ]


def test_endpoint_slice_port_app_protocol() -> None:
    # validatePorts: `if endpointPort.AppProtocol != nil { ValidateQualifiedName(...) }`
    bad = eps([{"addresses": ["10.0.0.1"]}], [{"port": 80, "name": "a", "appProtocol": "a/b/c"}], addressType="IPv4")
    (msg,) = errors(bad)
    assert msg.startswith('EndpointSlice default/web-abc: ports[0].appProtocol: Invalid value: "a/b/c": a valid label key')


# --- v1 Endpoints (core validateEndpointSubsets) ------------------------------------------------


def endpoints_obj(subset: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web"}, "subsets": [subset]}


def test_endpoints_empty_hostname_is_not_checked() -> None:
    # validateEndpointAddress: `if len(address.Hostname) > 0 { ValidateDNS1123Label(...) }`
    ok = endpoints_obj({"addresses": [{"ip": "10.0.0.1", "hostname": ""}], "ports": [{"port": 80}]})
    assert loads(ok).endpoints[0].subsets[0].addresses[0].hostname == ""


def test_endpoints_duplicate_port_names_are_allowed() -> None:
    # validateEndpointPort has no uniqueness check (unlike EndpointSlice validatePorts).
    ok = endpoints_obj({"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80, "name": "a"}, {"port": 81, "name": "a"}]})
    assert [p.name for p in loads(ok).endpoints[0].subsets[0].ports] == ["a", "a"]


def test_endpoints_unparseable_ip_reports_both_checks() -> None:
    # validateEndpointAddress: IsValidIP(...) then ValidateNonSpecialIP(...), whose parse check says
    # "must be a valid IP address".
    bad = endpoints_obj({"addresses": [{"ip": "nope"}]})
    assert errors(bad) == [
        'Endpoints default/web: subsets[0].addresses[0].ip: Invalid value: "nope": '
        "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
        'Endpoints default/web: subsets[0].addresses[0].ip: Invalid value: "nope": must be a valid IP address',
    ]


def test_endpoints_port_app_protocol() -> None:
    bad = endpoints_obj({"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80, "appProtocol": "-x"}]})
    (msg,) = errors(bad)
    assert msg.startswith('Endpoints default/web: subsets[0].ports[0].appProtocol: Invalid value: "-x": name part')


# --- Secret (core ValidateSecret) ---------------------------------------------------------------


def test_secret_total_size_limit() -> None:
    # `if totalSize > core.MaxSecretSize { field.TooLong(dataPath, "", core.MaxSecretSize) }`
    # (MaxSecretSize = 1 MiB of decoded data).
    import base64 as _b64

    big = _b64.b64encode(b"x" * (1024 * 1024 + 1)).decode()
    assert errors(secret("Opaque", data={"a": big})) == [
        "Secret default/tls: data: Too long: may not be more than 1048576 bytes"
    ]
    exact = _b64.b64encode(b"x" * (1024 * 1024)).decode()
    assert loads(secret("Opaque", data={"a": exact})).secrets


@pytest.mark.parametrize("target", [0, ""])
def test_service_target_port_zero_or_empty_defaults_to_port(target: int | str) -> None:
    # SetDefaults_Service: `if sp.TargetPort == intstr.FromInt32(0) || sp.TargetPort ==
    # intstr.FromString("") { sp.TargetPort = intstr.FromInt32(sp.Port) }`: valid, and the
    # traffic goes to `port`, as for an absent targetPort.
    res = loads(service([{"port": 80, "targetPort": target}]))
    assert res.services[0].spec.ports[0].target_port is None


def test_ingress_class_empty_scope_is_not_defaulted() -> None:
    # SetDefaults_IngressClass defaults a nil scope only: "" is an unsupported value.
    doc = {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "c"},
           "spec": {"controller": "k8s.io/ingress-nginx",
                    "parameters": {"kind": "K", "name": "n", "scope": ""}}}
    assert errors(doc) == [
        'IngressClass c: spec.parameters.scope: Unsupported value: "": supported values: "Cluster", "Namespace"'
    ]
    del doc["spec"]["parameters"]["scope"]
    assert loads(doc).ingress_classes[0].spec.parameters.scope == "Cluster"


def test_empty_port_protocol_defaults_on_endpoints_but_not_on_a_slice() -> None:
    # v1 Endpoints: `if ep.Protocol == "" { ep.Protocol = v1.ProtocolTCP }` (a plain string);
    # EndpointSlice: `if obj.Protocol == nil { obj.Protocol = &defaultProtocol }` (a pointer).
    eps = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web"},
           "subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80, "protocol": ""}]}]}
    assert loads(eps).endpoints[0].subsets[0].ports[0].protocol == "TCP"
    es = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "web-1"},
          "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}],
          "ports": [{"port": 80, "protocol": ""}]}
    assert errors(es) == [
        'EndpointSlice default/web-1: ports[0].protocol: Unsupported value: "": supported values: "SCTP", "TCP", "UDP"'
    ]
