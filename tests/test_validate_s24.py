"""Session 24 review (A1) of manifest validation against the API server's own rules.

The oracle is the Kubernetes source: pkg/apis/networking/validation/validation.go
(ValidateIngressCreate, validateIngressRules, validateHTTPIngressPath, validateIngressBackend,
validateIngressTLS, ValidateIngressClass, validateIngressClassParametersReference),
pkg/apis/core/validation/validation.go (ValidateService, validateServicePort, ValidateSecret,
validateEndpointSubsets), pkg/apis/discovery/validation/validation.go (validateEndpoints,
validatePorts, validateAddressType) and apimachinery's ValidateObjectMeta and
util/validation. Every expected string below is written from that source (field path, type
word, value as ErrorBody prints it, detail), not from ingresslib's output.

The first tests are the defects found (ValidateService's annotation rules, which ingresslib did
not apply); the table after them is the review's manifests, one reason each, kept as
regression tests.
"""

from __future__ import annotations

from typing import Any

import pytest

from ingresslib._decode import decode_resources
from ingresslib._errors import ValidationError
from ingresslib._models import ServiceSpec

BACKEND = {"service": {"name": "svc", "port": {"number": 80}}}
PORTS = [{"port": 80}]
TOPOLOGY_MODE = "service.kubernetes.io/topology-mode"
TOPOLOGY_HINTS = "service.kubernetes.io/topology-aware-hints"
SOURCE_RANGES = "service.beta.kubernetes.io/load-balancer-source-ranges"
ANN_RANGES = f"metadata.annotations[{SOURCE_RANGES}]"
CIDR = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"
LB_ONLY = "may only be used when `type` is 'LoadBalancer'"


def errs(*objs: Any) -> list[str]:
    with pytest.raises(ValidationError) as ei:
        decode_resources(objs)
    return [str(e) for e in ei.value.errors]


def service(spec: dict[str, Any], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "web"}
    if annotations is not None:
        meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec}


# --- defects: ValidateService's annotation rules -------------------------------------------


def test_topology_mode_must_match_the_deprecated_hints_annotation() -> None:
    # ValidateService: `if topologyModeSet && topologyHintsSet && topologyModeVal !=
    # topologyHintsVal { message := fmt.Sprintf("must match annotations[%s] when both are
    # specified", core.DeprecatedAnnotationTopologyAwareHints); field.Invalid(metaPath.Child(
    # "annotations").Key(core.AnnotationTopologyMode), topologyModeVal, message) }`
    svc = service({"ports": PORTS}, {TOPOLOGY_MODE: "Auto", TOPOLOGY_HINTS: "Disabled"})
    assert errs(svc) == [
        f'Service default/web: metadata.annotations[{TOPOLOGY_MODE}]: Invalid value: "Auto": '
        f"must match annotations[{TOPOLOGY_HINTS}] when both are specified"
    ]


@pytest.mark.parametrize("annotations", [
    {TOPOLOGY_MODE: "Auto", TOPOLOGY_HINTS: "Auto"},
    {TOPOLOGY_MODE: "Auto"},
    {TOPOLOGY_HINTS: "anything"},
    {TOPOLOGY_MODE: "", TOPOLOGY_HINTS: ""},
])
def test_topology_annotations_that_agree_or_stand_alone_load(annotations: dict[str, str]) -> None:
    res = decode_resources([service({"ports": PORTS}, annotations)])
    assert res.services[0].metadata.annotations == annotations


def test_source_ranges_annotation_needs_a_load_balancer() -> None:
    # `} else if val, annotationSet := service.Annotations[core.AnnotationLoadBalancerSourceRangesKey];
    # annotationSet { fieldPath := field.NewPath("metadata", "annotations").Key(...); if
    # service.Spec.Type != core.ServiceTypeLoadBalancer { field.Forbidden(fieldPath, "may only be
    # used when `type` is 'LoadBalancer'") } ...`: set at all (even blank) is enough.
    for value in ("10.0.0.0/8", " "):
        assert errs(service({"ports": PORTS}, {SOURCE_RANGES: value})) == [
            f"Service default/web: {ANN_RANGES}: Forbidden: {LB_ONLY}"
        ]
    svc = service({"ports": PORTS, "type": "NodePort"}, {SOURCE_RANGES: "10.0.0.0/8"})
    assert errs(svc) == [f"Service default/web: {ANN_RANGES}: Forbidden: {LB_ONLY}"]


def test_source_ranges_annotation_cidrs_are_checked() -> None:
    # `val = strings.TrimSpace(val); if val != "" { cidrs := strings.Split(val, ","); for _, value
    # := range cidrs { value = strings.TrimSpace(value); IsValidCIDR(fieldPath, value) } }`;
    # IsValidCIDR: netutils.ParseCIDRSloppy (leading zeros allowed), "must be a valid CIDR
    # value, (e.g. 10.9.8.0/24 or 2001:db8::/64)".
    text = " 10.0.0.0/33 , 1.2.3.4,,2001:db8::/129, 010.0.0.0/008 ,::ffff:1.2.3.4/96,10.0.0.0/8"
    svc = service({"ports": PORTS, "type": "LoadBalancer"}, {SOURCE_RANGES: text})
    assert errs(svc) == [
        f'Service default/web: {ANN_RANGES}: Invalid value: "{bad}": {CIDR}'
        for bad in ("10.0.0.0/33", "1.2.3.4", "", "2001:db8::/129")
    ]


@pytest.mark.parametrize("value", [
    "", "  ", "10.0.0.0/8", " 10.0.0.0/8 , 192.168.0.0/16 ", "2001:db8::/32", "0.0.0.0/0",
    "010.000.000.000/08", "1.2.3.4/32", "::/0", "::ffff:10.0.0.0/104",
])
def test_valid_source_ranges_annotations_load(value: str) -> None:
    svc = service({"ports": PORTS, "type": "LoadBalancer"}, {SOURCE_RANGES: value})
    assert len(decode_resources([svc]).services) == 1


def test_source_ranges_field_needs_a_load_balancer_and_cidrs() -> None:
    # `if len(service.Spec.LoadBalancerSourceRanges) > 0 { fieldPath :=
    # specPath.Child("LoadBalancerSourceRanges"); if service.Spec.Type != LoadBalancer {
    # field.Forbidden(fieldPath, ...) }; for idx, value := range ... { value =
    # strings.TrimSpace(value); IsValidCIDR(fieldPath.Index(idx), value) } }`: the path is
    # capitalized as the API server writes it.
    svc = service({"ports": PORTS, "loadBalancerSourceRanges": [" 10.0.0.0/8 ", " x ", "1.2.3.4/ 8"]})
    assert errs(svc) == [
        f"Service default/web: spec.LoadBalancerSourceRanges: Forbidden: {LB_ONLY}",
        f'Service default/web: spec.LoadBalancerSourceRanges[1]: Invalid value: "x": {CIDR}',
        f'Service default/web: spec.LoadBalancerSourceRanges[2]: Invalid value: "1.2.3.4/ 8": {CIDR}',
    ]
    # The official client's to_dict() spelling is read too.
    snake = service({"ports": PORTS, "load_balancer_source_ranges": ["10.0.0.0/8"]})
    assert errs(snake) == [f"Service default/web: spec.LoadBalancerSourceRanges: Forbidden: {LB_ONLY}"]


def test_source_ranges_field_wins_over_the_annotation() -> None:
    # The annotation is looked at only when the field is empty (`} else if ...`).
    svc = service({"ports": PORTS, "type": "LoadBalancer", "loadBalancerSourceRanges": ["10.0.0.0/8"]},
                  {SOURCE_RANGES: "junk"})
    res = decode_resources([svc])
    assert res.services[0].spec.load_balancer_source_ranges == ("10.0.0.0/8",)
    # An empty list is no value: the annotation is checked.
    svc = service({"ports": PORTS, "loadBalancerSourceRanges": []}, {SOURCE_RANGES: "10.0.0.0/8"})
    assert errs(svc) == [f"Service default/web: {ANN_RANGES}: Forbidden: {LB_ONLY}"]


def test_source_ranges_field_of_the_wrong_type_is_told_once() -> None:
    assert errs(service({"ports": PORTS, "loadBalancerSourceRanges": "10.0.0.0/8"})) == [
        'Service default/web: spec.loadBalancerSourceRanges: Invalid value: "10.0.0.0/8": '
        "expected array, got string"
    ]
    assert ServiceSpec().load_balancer_source_ranges == ()
    assert ServiceSpec(load_balancer_source_ranges=["a"]).load_balancer_source_ranges == ("a",)


def test_go_trim_space_is_not_pythons_strip() -> None:
    # strings.TrimSpace trims unicode.IsSpace runes; U+001F is none (Python's strip() takes it).
    svc = service({"ports": PORTS, "type": "LoadBalancer"}, {SOURCE_RANGES: "10.0.0.0/8\x1f"})
    assert errs(svc) == [f'Service default/web: {ANN_RANGES}: Invalid value: "10.0.0.0/8\\x1f": {CIDR}']
    svc = service({"ports": PORTS, "type": "LoadBalancer"}, {SOURCE_RANGES: "\u300010.0.0.0/8\xa0"})
    assert len(decode_resources([svc]).services) == 1


# --- the review's manifests: one reason each, the API server's errors predicted -----------------

SUB = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
       "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
       "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
LABEL = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
         "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
         "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
DNS1035 = ("a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with "
           "an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or "
           "'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')")
WILD = ("a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain, "
        "which must consist of lower case alphanumeric characters, '-' or '.' and end with an "
        "alphanumeric character (e.g. '*.example.com', regex used for validation is "
        "'\\*\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")
RANGE = "must be between 1 and 65535, inclusive"
ING = "Ingress default/web: "
PATH0 = ING + "spec.rules[0].http.paths[0]."


def ing(spec: dict[str, Any], **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": "web", **meta}, "spec": spec}


def rule(path: str | None, path_type: str | None = "Prefix", host: str | None = None) -> dict[str, Any]:
    p: dict[str, Any] = {"backend": BACKEND}
    if path is not None:
        p["path"] = path
    if path_type is not None:
        p["pathType"] = path_type
    r: dict[str, Any] = {"http": {"paths": [p]}}
    if host is not None:
        r["host"] = host
    return ing({"rules": [r]})


def db(backend: dict[str, Any]) -> dict[str, Any]:
    return ing({"defaultBackend": backend})


def ic(spec: dict[str, Any], name: str = "nginx") -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": name}, "spec": spec}


def params(**p: Any) -> dict[str, Any]:
    return ic({"controller": "a.io/c", "parameters": {"kind": "K", "name": "n", **p}})


def svc(spec: dict[str, Any], name: str = "web") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def eslice(**body: Any) -> dict[str, Any]:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "e"}, **body}


def endpoints(*subsets: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "e"},
            "subsets": list(subsets)}


def secret(**body: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, **body}


IC = "IngressClass nginx: "
SVC = "Service default/web: "
ES = "EndpointSlice default/e: "
EP = "Endpoints default/e: "
SEC = "Secret default/s: "
ADDR = [{"ip": "10.0.0.1"}]

#: (reason, manifest, the API server's errors; [] = it loads).
CASES: list[tuple[str, dict[str, Any], list[str]]] = [
    # Ingress paths (validateHTTPIngressPath).
    ("prefix /", rule("/"), []),
    ("exact relative", rule("foo", "Exact"), [PATH0 + 'path: Invalid value: "foo": must be an absolute path']),
    ("prefix without path", rule(None), [PATH0 + 'path: Invalid value: "": must be an absolute path']),
    ("implementation-specific without path", rule(None, "ImplementationSpecific"), []),
    ("implementation-specific regex", rule("/api(/|$)(.*)", "ImplementationSpecific"), []),
    ("implementation-specific //", rule("//a", "ImplementationSpecific"), []),
    ("implementation-specific relative", rule("api", "ImplementationSpecific"),
     [PATH0 + 'path: Invalid value: "api": must be an absolute path']),
    ("prefix //", rule("/a//b"), [PATH0 + "path: Invalid value: \"/a//b\": must not contain '//'"]),
    ("prefix /./", rule("/a/./b"), [PATH0 + "path: Invalid value: \"/a/./b\": must not contain '/./'"]),
    ("prefix %2f", rule("/a%2fb", "Exact"), [PATH0 + "path: Invalid value: \"/a%2fb\": must not contain '%2f'"]),
    ("prefix %2F and /..", rule("/a%2Fb/.."), [
        PATH0 + "path: Invalid value: \"/a%2Fb/..\": must not contain '%2F'",
        PATH0 + "path: Invalid value: \"/a%2Fb/..\": cannot end with '/..'"]),
    ("prefix /.", rule("/."), [PATH0 + "path: Invalid value: \"/.\": cannot end with '/.'"]),
    ("prefix /.well-known", rule("/.well-known"), []),
    ("prefix /foo/..bar", rule("/foo/..bar"), []),
    ("exact trailing slash", rule("/a/", "Exact"), []),
    ("prefix with a query", rule("/a?b=c"), []),
    ("pathType lower case", rule("/", "prefix"), [
        PATH0 + 'pathType: Unsupported value: "prefix": supported values: '
        '"Exact", "ImplementationSpecific", "Prefix"']),
    ("pathType absent", rule("/", None), [PATH0 + "pathType: Required value: pathType must be specified"]),
    ("paths empty", ing({"rules": [{"http": {"paths": []}}]}), [ING + "spec.rules[0].http.paths: Required value"]),
    ("http {}", ing({"rules": [{"http": {}}]}), [ING + "spec.rules[0].http.paths: Required value"]),
    ("host-only rule", ing({"rules": [{"host": "a.com"}]}), []),
    ("empty rule", ing({"rules": [{}]}), []),
    ("empty spec", ing({}), [ING + "spec: Invalid value: null: either `defaultBackend` or `rules` must be specified"]),
    ("rules []", ing({"rules": []}), [ING + "spec: Invalid value: []: either `defaultBackend` or `rules` must be specified"]),
    # Hosts (validateIngressRules).
    ("host upper case", rule("/", host="A.com"), [ING + f'spec.rules[0].host: Invalid value: "A.com": {SUB}']),
    ("host with port", rule("/", host="a.com:80"), [ING + f'spec.rules[0].host: Invalid value: "a.com:80": {SUB}']),
    ("host IPv4", rule("/", host="1.2.3.4"),
     [ING + 'spec.rules[0].host: Invalid value: "1.2.3.4": must be a DNS name, not an IP address']),
    ("host IPv4 leading zero", rule("/", host="1.2.3.04"),
     [ING + 'spec.rules[0].host: Invalid value: "1.2.3.04": must be a DNS name, not an IP address']),
    ("host IPv6", rule("/", host="::1"), [
        ING + 'spec.rules[0].host: Invalid value: "::1": must be a DNS name, not an IP address',
        ING + f'spec.rules[0].host: Invalid value: "::1": {SUB}']),
    ("host three numbers", rule("/", host="1.2.3"), []),
    ("host wildcard", rule("/", host="*.a.com"), []),
    ("host wildcard over numbers", rule("/", host="*.1.2.3"), []),
    ("host *", rule("/", host="*"), [ING + f'spec.rules[0].host: Invalid value: "*": {WILD}']),
    ("host *.*.a.com", rule("/", host="*.*.a.com"), [ING + f'spec.rules[0].host: Invalid value: "*.*.a.com": {WILD}']),
    ("host a.*.com", rule("/", host="a.*.com"), [ING + f'spec.rules[0].host: Invalid value: "a.*.com": {WILD}']),
    ("host trailing dot", rule("/", host="a.com."), [ING + f'spec.rules[0].host: Invalid value: "a.com.": {SUB}']),
    ("host 64-byte label", rule("/", host="a" * 64 + ".com"), []),
    # Backends (validateIngressBackend).
    ("backend {}", db({}), [ING + 'spec.defaultBackend: Invalid value: "": resource or service backend is required']),
    ("backend both", db({**BACKEND, "resource": {"kind": "K", "name": "n"}}),
     [ING + 'spec.defaultBackend: Invalid value: "": cannot set both resource and service backends']),
    ("resource without kind and name", db({"resource": {}}), [
        ING + "spec.defaultBackend.resource.kind: Required value",
        ING + "spec.defaultBackend.resource.name: Required value"]),
    ("resource bad parts", db({"resource": {"apiGroup": "", "kind": "a/b", "name": ".."}}), [
        ING + f'spec.defaultBackend.resource.apiGroup: Invalid value: "": {SUB}',
        ING + "spec.defaultBackend.resource.kind: Invalid value: \"a/b\": may not contain '/'",
        ING + "spec.defaultBackend.resource.name: Invalid value: \"..\": may not be '..'"]),
    ("service without name", db({"service": {"port": {"number": 1}}}),
     [ING + "spec.defaultBackend.service.name: Required value"]),
    ("service name not DNS-1035", db({"service": {"name": "1abc", "port": {"number": 1}}}),
     [ING + f'spec.defaultBackend.service.name: Invalid value: "1abc": {DNS1035}']),
    ("port name and number", db({"service": {"name": "s", "port": {"number": 1, "name": "http"}}}),
     [ING + 'spec.defaultBackend: Invalid value: "": cannot set both port name & port number']),
    ("port number 0", db({"service": {"name": "s", "port": {"number": 0}}}),
     [ING + "spec.defaultBackend: Required value: port name or number is required"]),
    ("port number -1", db({"service": {"name": "s", "port": {"number": -1}}}),
     [ING + f"spec.defaultBackend.service.port.number: Invalid value: -1: {RANGE}"]),
    ("port name digits", db({"service": {"name": "s", "port": {"name": "123"}}}),
     [ING + 'spec.defaultBackend.service.port.name: Invalid value: "123": must contain at least one letter (a-z)']),
    ("port name 16 bytes", db({"service": {"name": "s", "port": {"name": "abcdefghijklmnop"}}}),
     [ING + 'spec.defaultBackend.service.port.name: Invalid value: "abcdefghijklmnop": must be no more than 15 bytes']),
    ("port name -Ht--p", db({"service": {"name": "s", "port": {"name": "-Ht--p"}}}), [
        ING + 'spec.defaultBackend.service.port.name: Invalid value: "-Ht--p": must contain only '
        "alpha-numeric characters (a-z, 0-9), and hyphens (-)",
        ING + 'spec.defaultBackend.service.port.name: Invalid value: "-Ht--p": must not contain consecutive hyphens',
        ING + 'spec.defaultBackend.service.port.name: Invalid value: "-Ht--p": must not begin or end with a hyphen']),
    # TLS, class, metadata.
    ("tls [{}]", ing({"defaultBackend": BACKEND, "tls": [{}]}), []),
    ("tls bad host and secret", ing({"defaultBackend": BACKEND, "tls": [{"hosts": ["A.com", "*"], "secretName": "Bad_Name"}]}), [
        ING + f'spec.tls[0].hosts[0]: Invalid value: "A.com": {SUB}',
        ING + f'spec.tls[0].hosts[1]: Invalid value: "*": {WILD}',
        ING + f'spec.tls[0].secretName: Invalid value: "Bad_Name": {SUB}']),
    ("ingressClassName empty", ing({"defaultBackend": BACKEND, "ingressClassName": ""}),
     [ING + f'spec.ingressClassName: Invalid value: "": {SUB}']),
    ("class annotation differs", ing({"defaultBackend": BACKEND, "ingressClassName": "a"},
                                     annotations={"kubernetes.io/ingress.class": ""}),
     [ING + 'annotations.kubernetes.io/ingress.class: Invalid value: "": must match `ingressClassName` when both are specified']),
    ("class annotation equal", ing({"defaultBackend": BACKEND, "ingressClassName": "a"},
                                   annotations={"kubernetes.io/ingress.class": "a"}), []),
    ("namespace with a dot", ing({"defaultBackend": BACKEND}, namespace="a.b"),
     ['Ingress a.b/web: metadata.namespace: Invalid value: "a.b": must not contain dots']),
    ("label key name 64 bytes", ing({"defaultBackend": BACKEND}, labels={"a" * 64: "y"}),
     [ING + f'metadata.labels: Invalid value: "{"a" * 64}": name part must be no more than 63 bytes']),
    ("label key empty prefix", ing({"defaultBackend": BACKEND}, labels={"/x": ""}),
     [ING + 'metadata.labels: Invalid value: "/x": prefix part must be non-empty']),
    ("annotation key upper case", ing({"defaultBackend": BACKEND}, annotations={"Example.COM/Foo": "y"}), []),
    ("annotations over 256 KiB", ing({"defaultBackend": BACKEND}, annotations={"a": "x" * (256 * 1024)}),
     [ING + "metadata.annotations: Too long: may not be more than 262144 bytes"]),
    # IngressClass.
    ("controller absent", ic({}), [IC + "spec.controller: Required value"]),
    ("controller without a path", ic({"controller": "nginx"}),
     [IC + 'spec.controller: Invalid value: "nginx": must be a domain-prefixed path (such as "acme.io/foo")']),
    ("controller with a nested path", ic({"controller": "example.com/foo/bar"}), []),
    ("controller 251 bytes", ic({"controller": "example.com/" + "a" * 239}),
     [IC + "spec.controller: Too long: may not be more than 250 bytes"]),
    ("controller bad path", ic({"controller": "example.com/foo bar"}),
     [IC + "spec.controller: Invalid value: \"foo bar\": Invalid path (regex used for validation "
      "is '[A-Za-z0-9/\\-._~%!$&'()*+,;=:]+')"]),
    ("parameters namespace with Cluster scope", params(namespace=""),
     [IC + "spec.parameters.namespace: Forbidden: `parameters.scope` is set to 'Cluster'"]),
    ("parameters Namespace scope without one", params(scope="Namespace"),
     [IC + "spec.parameters.namespace: Required value: `parameters.scope` is set to 'Namespace'"]),
    ("parameters scope lower case", params(scope="cluster"),
     [IC + 'spec.parameters.scope: Unsupported value: "cluster": supported values: "Cluster", "Namespace"']),
    # Service.
    ("no ports", svc({}), [SVC + "spec.ports: Required value"]),
    ("headless without ports", svc({"clusterIP": "None"}), []),
    ("ExternalName trailing dot", svc({"type": "ExternalName", "externalName": "a.com."}), []),
    ("ExternalName with clusterIP None", svc({"type": "ExternalName", "externalName": "a.com", "clusterIP": "None"}),
     [SVC + "spec.clusterIPs: Forbidden: may not be set for ExternalName services"]),
    ("two unnamed ports", svc({"ports": [{"port": 80}, {"port": 81}]}),
     [SVC + "spec.ports[0].name: Required value", SVC + "spec.ports[1].name: Required value"]),
    ("port name with a dot", svc({"ports": [{"port": 80, "name": "a.b"}]}),
     [SVC + 'spec.ports[0].name: Invalid value: "a.b": must not contain dots']),
    ("port name 16 bytes", svc({"ports": [{"port": 80, "name": "abcdefghijklmnop"}]}), []),
    ("port 0, targetPort defaulted to it", svc({"ports": [{"port": 0}]}), [
        SVC + f"spec.ports[0].port: Invalid value: 0: {RANGE}",
        SVC + f"spec.ports[0].targetPort: Invalid value: 0: {RANGE}"]),
    ("targetPort numeric string", svc({"ports": [{"port": 80, "targetPort": "8080"}]}),
     [SVC + 'spec.ports[0].targetPort: Invalid value: "8080": must contain at least one letter (a-z)']),
    ("same port other protocol", svc({"ports": [{"port": 53, "name": "a"}, {"port": 53, "name": "b", "protocol": "UDP"}]}), []),
    ("nodePort on a headless ClusterIP", svc({"clusterIP": "None", "ports": [{"port": 80, "nodePort": 30000}]}),
     [SVC + "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]),
    ("NodePort headless", svc({"ports": PORTS, "type": "NodePort", "clusterIP": "None"}),
     [SVC + 'spec.clusterIPs[0]: Invalid value: "None": may not be set to \'None\' for NodePort services']),
    ("selector key", svc({"ports": PORTS, "selector": {"-app": "x"}}),
     [SVC + "spec.selector: Invalid value: \"-app\": name part must consist of alphanumeric characters, "
      "'-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or "
      "'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"]),
    ("name with a dot", svc({"ports": PORTS}, name="a.b"),
     [f'Service default/a.b: metadata.name: Invalid value: "a.b": {DNS1035}']),
    # EndpointSlice.
    ("addressType absent", eslice(), [ES + "addressType: Required value"]),
    ("IPv6 slice, mapped address", eslice(addressType="IPv6", endpoints=[{"addresses": ["::ffff:10.0.0.1"]}]),
     [ES + 'endpoints[0].addresses[0]: Invalid value: "::ffff:10.0.0.1": must be a valid IPv6 address']),
    ("FQDN one label", eslice(addressType="FQDN", endpoints=[{"addresses": ["foo"]}]),
     [ES + 'endpoints[0].addresses[0]: Invalid value: "foo": should be a domain with at least two segments separated by dots']),
    ("FQDN 64-byte label", eslice(addressType="FQDN", endpoints=[{"addresses": ["a" * 64 + ".com"]}]),
     [ES + f'endpoints[0].addresses[0]: Invalid value: "{"a" * 64}": must be no more than 63 bytes']),
    ("endpoint without addresses", eslice(addressType="IPv4", endpoints=[{}]),
     [ES + "endpoints[0].addresses: Required value: must contain at least 1 address"]),
    ("unspecified address", eslice(addressType="IPv4", endpoints=[{"addresses": ["0.0.0.0"]}]),
     [ES + 'endpoints[0].addresses[0]: Invalid value: "0.0.0.0": may not be unspecified (0.0.0.0)']),
    ("hostname with a dot", eslice(addressType="IPv4", endpoints=[{"addresses": ["10.0.0.1"], "hostname": "a.b"}]),
     [ES + 'endpoints[0].hostname: Invalid value: "a.b": must not contain dots']),
    ("two unnamed ports", eslice(addressType="IPv4", ports=[{"port": 80}, {"port": 81}]),
     [ES + 'ports[1].name: Duplicate value: ""']),
    ("zone not validated", eslice(addressType="IPv4", endpoints=[{"addresses": ["10.0.0.1"], "zone": "Bad Zone"}]), []),
    # v1 Endpoints.
    ("subset without addresses", endpoints({"ports": [{"port": 80}]}),
     [EP + "subsets[0]: Required value: must specify `addresses` or `notReadyAddresses`"]),
    ("two unnamed ports", endpoints({"addresses": ADDR, "ports": [{"port": 80}, {"port": 81}]}),
     [EP + "subsets[0].ports[0].name: Required value", EP + "subsets[0].ports[1].name: Required value"]),
    ("duplicate port names allowed", endpoints({"addresses": ADDR, "ports": [{"port": 80, "name": "a"}, {"port": 81, "name": "a"}]}), []),
    ("nodeName empty", endpoints({"addresses": [{"ip": "10.0.0.1", "nodeName": ""}], "ports": [{"port": 80}]}),
     [EP + f'subsets[0].addresses[0].nodeName: Invalid value: "": {SUB}']),
    # Secret.
    ("tls without tls.key", secret(type="kubernetes.io/tls", data={"tls.crt": "YQ=="}),
     [SEC + "data[tls.key]: Required value"]),
    ("tls from stringData", secret(type="kubernetes.io/tls", stringData={"tls.crt": "x", "tls.key": "y"}), []),
    ("tls with null values", secret(type="kubernetes.io/tls", data={"tls.crt": None, "tls.key": None}), []),
    ("data keys", secret(data={"..x": "", ".": ""}), [
        SEC + "data[..x]: Invalid value: \"..x\": must not start with '..'",
        SEC + "data[.]: Invalid value: \".\": must not be '.'"]),
]


@pytest.mark.parametrize(("reason", "manifest", "expected"), CASES, ids=[c[0] for c in CASES])
def test_review_manifest(reason: str, manifest: dict[str, Any], expected: list[str]) -> None:
    if not expected:
        decode_resources([manifest])
        return
    assert errs(manifest) == expected, reason
