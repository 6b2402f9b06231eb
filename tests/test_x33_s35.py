"""Session 35 review (x33) of manifest validation against the API server's own source.

Read against: k8s.io/kubernetes ``pkg/apis/networking/validation/validation.go``
(ValidateIngressCreate, ValidateIngressSpec, validateIngressRules, validateHTTPIngressPath,
validateIngressBackend, validateIngressTLS, ValidateIngressClass and its parameters reference),
``pkg/apis/core/validation/validation.go`` (ValidateService, validateServicePort,
ValidateSecret, ValidateConfigMap), ``pkg/apis/discovery/validation/validation.go``
(ValidateEndpointSlice: validateAddressType, validateEndpoints, validatePorts, the limits
1000 endpoints / 100 addresses / 20000 ports), apimachinery's ``ValidateObjectMetaAccessor``,
``ValidateAnnotations`` (lower-cased keys, the 256 KiB total), ``ValidateLabels``, and
``content.IsDNS1123Label`` / ``IsDNS1123Subdomain`` / ``IsLabelKey`` (IsQualifiedName) /
``IsLabelValue`` / ``IsPathSegmentName``, ``validation.IsWildcardDNS1123Subdomain`` /
``IsValidPortName`` / ``IsValidPortNum`` / ``IsDomainPrefixedPath`` /
``IsFullyQualifiedDomainName`` / ``IsConfigMapKey`` / ``IsValidIP`` / ``IsValidIPv4Address`` /
``IsValidIPv6Address``; and the service REST storage (``beginCreate`` allocates NodePorts
before validation, only for ``NodePort`` and ``LoadBalancer`` Services: ``txnAllocNodePorts``).

Two defects, each with its tests below (both failed before the fix):

- A ConfigMap key in both ``data`` and ``binaryData`` was reported at ``binaryData[k]`` as
  ``duplicate of key "k"``. ValidateConfigMap reports it in its ``data`` loop: ``if _,
  isValue := cfg.BinaryData[key]; isValue { msg := "duplicate of key present in binaryData";
  field.Invalid(field.NewPath("data").Key(key), key, msg) }``, what ``kubectl apply`` prints:
  ``data[k]: Invalid value: "k": duplicate of key present in binaryData``.
- A Service ``nodePort`` outside 1-65535 was range-checked whatever the Service type. The range
  check stands for the NodePort allocator, which runs only for ``NodePort`` and
  ``LoadBalancer`` Services; a ``ClusterIP`` Service with a ``nodePort`` is refused with
  the one ``Forbidden`` error (ingresslib added a second one), and an ``ExternalName``
  Service's ``nodePort`` is neither allocated nor validated (ingresslib refused the Service).

Checked and found right (each case run through ``Resources.from_dicts`` in camelCase, a sample
of them in the official client's snake_case and as YAML through ``parse_manifests``; messages,
type words and field paths compared with the Go source, paths as kubectl prints them):

- Ingress hosts: a port (``foo.com:80``), upper case, a trailing dot, ``*`` alone or inside
  (``foo.*.com``) refused with IsDNS1123Subdomain / IsWildcardDNS1123Subdomain's words; an
  IPv4 host refused once ("must be a DNS name, not an IP address": its digits are a valid
  subdomain), an IPv6 one twice; ``host: ""`` is no host. TLS hosts the same (``""`` refused),
  IPs refused too (a documented difference); an empty ``secretName`` not checked.
- Paths: Exact/Prefix need ``/`` (an absent or empty path is ``Invalid value: ""``), every
  ``invalidPathSequences`` entry and ``invalidPathSuffixes`` entry, characters otherwise free
  (``/a b``); ImplementationSpecific: empty allowed, else starts with ``/``, regexes free.
  ``pathType`` absent: Required with "pathType must be specified", the backend then unchecked;
  ``prefix`` or ``""``: Unsupported value with the sorted list.
- Backends: both or neither of service/resource; service name a DNS-1035 label (``Web``,
  ``1web``, ``web.x`` refused; ``RelaxedServiceNameValidation`` is off by default), port name
  (IANA) xor number (1-65535), neither: Required at the backend; a resource's apiGroup
  (subdomain), kind and name (IsPathSegmentName).
- Spec: ``rules``/``defaultBackend`` (``null`` vs ``[]`` as json.Marshal prints spec.Rules),
  host-only and empty rules valid, ``http: {}`` and ``paths: []`` Required, ingressClassName
  a subdomain (``""`` refused), the legacy class annotation compared at
  ``annotations.kubernetes.io/ingress.class``.
- Metadata: name required (generateName is not modelled: SEMANTICS §2), subdomain / DNS-1035
  per kind, namespace a DNS label (``""`` is kubectl's default namespace), label keys and
  values, annotation keys lower-cased, the 256 KiB total; IngressClass's namespace dropped.
- IngressClass: controller required, at most 250 bytes, a domain-prefixed path with each
  part's message; parameters kind/name required, scope defaulted to Cluster, Namespace needs a
  namespace, Cluster forbids one, other scopes Unsupported.
- Service: ports required unless headless or ExternalName; port and defaulted targetPort
  (``0`` told twice), a string targetPort an IANA name (``"8080"`` refused), protocol
  defaulted, other case Unsupported, names required past one port, DNS labels, duplicates
  (names; protocol/port pairs as Go's struct), type defaulted, Unsupported otherwise, clusterIP
  an IP at ``spec.clusterIPs[0]``, headless refused for NodePort/LoadBalancer, ExternalName's
  name (trailing dot allowed, an IP is a valid subdomain) and its forbidden clusterIP, selector
  labels, appProtocol a qualified name.
- EndpointSlice: addressType required / supported, addresses per type (IPv4/IPv6 mismatches,
  the unspecified address, FQDN with two labels), ``addresses: []`` Required, hostname and
  nodeName, port names (unnamed ports duplicate ``""``), protocols. Endpoints: subsets need
  addresses, IPs, names past one port, port numbers (absent is 0), protocols.
- Secret: data keys (config keys, ``..a``), kubernetes.io/tls needs both keys (stringData
  counts), base64, the name a subdomain, ``type: ""`` is Opaque. ConfigMap keys in ``data``
  and ``binaryData``.
- Decoder messages: a wrongly typed value is named at its kubectl path (``spec.rules``,
  ``spec.rules[0].http.paths``, ``metadata.annotations[nginx.ingress.kubernetes.io/...]``,
  ``data[a]``, ``spec.ports[0].targetPort``, ``endpoints[0].addresses[0]``).

Noticed, not changed (fields not modelled, README "fields ingresslib does not model"): a
Service's ``clusterIPs`` without ``clusterIP`` ("must be empty when `clusterIP` is not
specified") or disagreeing with it ("first value must match `clusterIP`") loads, as do
``metadata.finalizers`` that are no qualified names and EndpointSlice ``hints`` naming a zone
twice. Only the first reaches a route: ``service-upstream`` dials the ``clusterIP`` as written
(none for a ``clusterIPs``-only Service: its endpoints are used). Reading ``clusterIPs`` is a
decoder change, outside this review's files. (Done by session 35's x36, tests/test_x36_s35.py:
such a Service is refused, as the API server refuses it; ``clusterIP`` is never filled from
``clusterIPs``.)
"""

from __future__ import annotations

from typing import Any

import pytest

from ingresslib import ValidationError, parse_manifests
from ingresslib._models import ConfigMap, ObjectMeta
from ingresslib._resources import Resources
from ingresslib._validate import validate_config_map

DUP = 'data[k]: Invalid value: "k": duplicate of key present in binaryData'

CM_BOTH = """\
apiVersion: v1
kind: ConfigMap
metadata: {name: hdrs}
data: {k: v}
binaryData: {k: eA==}
"""


def _warnings(text: str) -> list[str]:
    res = parse_manifests(text)
    assert res.config_maps == ()  # the API server refuses it: not used
    return [str(w) for w in res.warnings]


def test_a_key_in_data_and_binary_data_is_reported_at_data_in_the_api_servers_words() -> None:
    lines = _warnings(CM_BOTH)
    assert lines == [f"ConfigMap default/hdrs: {DUP}; not used by custom-headers, "
                     "--tcp-services-configmap or --udp-services-configmap"]


def test_the_duplicate_key_from_the_validator_and_from_snake_case() -> None:
    cm = ConfigMap(metadata=ObjectMeta(name="hdrs"), data={"k": "v"}, binary_data={"k": "eA=="})
    assert [str(e) for e in validate_config_map(cm)] == [f"ConfigMap default/hdrs: {DUP}"]
    res = Resources.from_dicts([{"api_version": "v1", "kind": "ConfigMap",
                                 "metadata": {"name": "hdrs", "namespace": None},
                                 "data": {"k": "v"}, "binary_data": {"k": "eA=="}}])
    assert res.config_maps == ()
    assert [str(w).split("; ")[0] for w in res.warnings] == [f"ConfigMap default/hdrs: {DUP}"]


def test_a_bad_key_in_both_maps_is_told_at_each_and_the_duplicate_at_data() -> None:
    lines = [line.split("; not used")[0].split(": ", 1)[1] for line in _warnings(
        CM_BOTH.replace("{k: v}", "{'a b': v}").replace("{k: eA==}", "{'a b': eA==}"))]
    # ValidateConfigMap: the data loop (IsConfigMapKey, then the duplicate), then binaryData's.
    assert [line.split(": ")[:3] for line in lines] == [
        ["data[a b]", "Invalid value", '"a b"'],
        ["data[a b]", "Invalid value", '"a b"'],
        ["binaryData[a b]", "Invalid value", '"a b"'],
    ]
    assert lines[1].endswith("duplicate of key present in binaryData")
    assert lines[0].startswith("data[a b]: Invalid value: \"a b\": a valid config key must")


def _service(kind: str, node_port: int) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": kind, "ports": [{"port": 80, "nodePort": node_port}]}
    if kind == "ExternalName":
        spec["externalName"] = "db.example.com"
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": spec}


def _errors(obj: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as info:
        Resources.from_dicts([obj])
    return [str(e) for e in info.value.errors]


def test_a_cluster_ip_services_node_port_is_only_forbidden() -> None:
    # ValidateService: `if service.Spec.Type == core.ServiceTypeClusterIP { ... if
    # service.Spec.Ports[i].NodePort != 0 { field.Forbidden(...) } }`; no allocator runs.
    assert _errors(_service("ClusterIP", 70000)) == [
        "Service default/web: spec.ports[0].nodePort: Forbidden: "
        "may not be used when `type` is 'ClusterIP'"]


def test_an_external_name_services_node_port_is_not_checked() -> None:
    # Neither ValidateService nor txnAllocNodePorts (NodePort and LoadBalancer only) reads it.
    for node_port in (70000, -1, 30080):
        res = Resources.from_dicts([_service("ExternalName", node_port)])
        assert res.services[0].spec.ports[0].node_port == node_port


@pytest.mark.parametrize("kind", ["NodePort", "LoadBalancer"])
@pytest.mark.parametrize("node_port", [70000, -1])
def test_an_allocated_node_port_out_of_range_is_still_refused(kind: str, node_port: int) -> None:
    assert _errors(_service(kind, node_port)) == [
        f"Service default/web: spec.ports[0].nodePort: Invalid value: {node_port}: "
        "must be between 1 and 65535, inclusive"]


@pytest.mark.parametrize("kind", ["NodePort", "LoadBalancer", "ClusterIP"])
def test_node_port_zero_is_unset(kind: str) -> None:
    spec = _service(kind, 0)
    assert Resources.from_dicts([spec]).services[0].spec.type == kind
