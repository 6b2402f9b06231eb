"""Session 35 review (x36) of x33's Service / ConfigMap validation changes, and ``clusterIPs``.

Read against k8s.io/kubernetes: ``pkg/registry/core/service/storage/storage.go`` (``beginCreate``:
``normalizeClusterIPs`` then ``alloc.allocateCreate``), ``storage/alloc.go`` (``allocateCreate``:
``initIPFamilyFields``, ``txnAllocClusterIPs``, ``txnAllocNodePorts`` -> ``initNodePorts``),
``portallocator`` (``ErrAllocated``, ``ErrNotInRange``), the generic registry's ``Store.Create``
(``BeginCreate`` runs before ``rest.BeforeCreate``, which calls ``PrepareForCreate`` and
``Validate``), ``pkg/registry/core/service/strategy.go`` (``PrepareForCreate`` only clears the
status and drops disabled fields: it touches neither ``clusterIP`` nor ``clusterIPs``),
``pkg/apis/core/v1/defaults.go`` (``SetDefaults_Service``: no dual-stack defaulting left) and
``pkg/apis/core/validation/validation.go`` (``ValidateService``,
``ValidateServiceClusterIPsRelatedFields``, ``isHeadlessService``, ``ValidateConfigMap``).

The order decides what ``kubectl apply`` prints. ``beginCreate`` runs first: it copies a lone
``clusterIP`` into ``clusterIPs`` ("we don't init singular based on plural because new client
must use both fields"), then ``initIPFamilyFields`` pre-validates with
``ValidateServiceClusterIPsRelatedFields`` and refuses on its own errors, then checks the
family policy, then the node port allocator refuses a port it cannot take. Each of those
refusals is the whole answer: ``ValidateService`` never runs.

Defects found (each test below failed before the fix):

- ``clusterIPs`` was not read: a Service with ``clusterIPs`` and no ``clusterIP`` loaded (the
  API server refuses it: "must be empty when `clusterIP` is not specified"; the brief's guess
  that the allocator fills ``clusterIP`` from ``clusterIPs[0]`` is wrong: ``normalizeClusterIPs``
  only goes singular -> plural), as did one whose ``clusterIPs[0]`` differs from ``clusterIP``,
  ``'None'`` with a second value, more than two values, two of one family, a family that
  disagrees with ``ipFamilies``, an unsupported or repeated ``ipFamilies`` entry, an unsupported
  ``ipFamilyPolicy``, two IPs or two families under ``SingleStack`` (the policy a Service
  without one gets, unless headless and selectorless), and an ExternalName Service with
  ``clusterIPs``, ``ipFamilies`` or ``ipFamilyPolicy`` (Forbidden).
- An invalid ``clusterIP`` was told together with ``ValidateService``'s errors; the pre-check
  tells it alone.
- x33's node port check: a ``NodePort`` / ``LoadBalancer`` Service's bad ``nodePort`` was told
  with every other error of the Service and for every port; the allocator answers first, with
  the first port it cannot take only. And two ports of different numbers asking for one node
  port (``80/TCP`` and ``81/UDP`` both ``30080``) loaded: the allocator has one pool for every
  protocol and refuses the second ("provided port is already allocated", also what a
  same-protocol pair gets instead of ``ValidateService``'s ``Duplicate value``, which only a
  ClusterIP or ExternalName Service can still reach).

Checked and found right:

- x33's ConfigMap change: ``ValidateConfigMap``'s data loop reports ``data[k]: Invalid value:
  "k": duplicate of key present in binaryData`` after the key's own IsConfigMapKey errors, the
  binaryData loop no duplicate (checked in the Go source of the current release).
- x33's node port types: the allocator runs for ``NodePort`` and ``LoadBalancer`` only
  (``txnAllocNodePorts``); a ``ClusterIP`` Service's ``nodePort`` is the one ``Forbidden``
  (``ValidateService``), an ``ExternalName`` Service's is not read (a duplicate pair is still
  ``Duplicate value``: that loop runs for every type); ``nodePort: 0`` is unset for every type
  (the allocator picks one; ClusterIP's check is ``!= 0``). The range 1-65535 and its
  IsValidPortNum message stay the documented difference (the API server names its cluster's
  range: "provided port is not in the valid range. The range of valid ports is 30000-32767").
- ``service-upstream`` dials ``clusterIP``, which the API server always stores as
  ``clusterIPs[0]`` (ingress-nginx getServiceClusterEndpoint reads ``Spec.ClusterIP``): a
  dual-stack Service is dialed at its first family's address; a headless one falls back to
  its pods. Both client spellings (``cluster_i_ps``, ``cluster_ips``) and ``ip_families`` /
  ``ip_family_policy`` are read.

Not modelled, said in the README: checks that depend on the cluster (a family or dual-stack
the cluster is not configured for, an IP outside the service CIDR or taken, the node port
range), and ``allocateLoadBalancerNodePorts: false`` (taken as true, the default, which only
changes which port index an allocation error names).
"""

from __future__ import annotations

from typing import Any

import pytest

from ingresslib import ValidationError, parse_manifests
from ingresslib._endpoints import EndpointIndex
from ingresslib._models import ServiceSpec
from ingresslib._resources import Resources

SVC = "Service default/web: "
MUST_BE_EMPTY = "must be empty when `clusterIP` is not specified"


def _svc(spec: dict[str, Any], **meta: Any) -> dict[str, Any]:
    spec = {"ports": [{"port": 80}], **spec}
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", **meta}, "spec": spec}


def _errors(*objs: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as info:
        Resources.from_dicts(list(objs))
    return [str(e) for e in info.value.errors]


def _spec(obj: dict[str, Any]) -> ServiceSpec:
    return Resources.from_dicts([obj]).services[0].spec


# --- clusterIPs: as the API server stores it ------------------------------------------------


def test_a_lone_cluster_ip_is_stored_in_cluster_ips_too() -> None:
    # normalizeClusterIPs (create): `if len(newSvc.Spec.ClusterIP) > 0 &&
    # len(newSvc.Spec.ClusterIPs) == 0 { newSvc.Spec.ClusterIPs = []string{newSvc.Spec.ClusterIP} }`
    assert _spec(_svc({"clusterIP": "10.96.0.10"})).cluster_ips == ("10.96.0.10",)
    assert _spec(_svc({"clusterIP": "None"})).cluster_ips == ("None",)
    assert _spec(_svc({})).cluster_ips == ()
    assert ServiceSpec(cluster_ip="10.96.0.10").cluster_ips == ("10.96.0.10",)


@pytest.mark.parametrize("key", ["clusterIPs", "cluster_i_ps", "cluster_ips"])
def test_cluster_ips_without_cluster_ip_is_refused_in_every_spelling(key: str) -> None:
    # "we don't init singular based on plural because new client must use both fields", and
    # ValidateServiceClusterIPsRelatedFields: `field.Invalid(clusterIPsField,
    # service.Spec.ClusterIPs, "must be empty when `clusterIP` is not specified")`.
    assert _errors(_svc({key: ["10.96.0.10"]})) == [
        SVC + f'spec.clusterIPs: Invalid value: ["10.96.0.10"]: {MUST_BE_EMPTY}']


def test_cluster_ips_without_cluster_ip_from_yaml_and_headless() -> None:
    with pytest.raises(ValidationError) as info:
        parse_manifests("""\
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIPs: ["None"]
  ports: [{port: 80}]
""")
    assert [str(e) for e in info.value.errors] == [
        SVC + f'spec.clusterIPs: Invalid value: ["None"]: {MUST_BE_EMPTY}']


def test_the_cluster_ips_pre_check_is_told_alone() -> None:
    # initIPFamilyFields: `if el := validation.ValidateServiceClusterIPsRelatedFields(service);
    # len(el) != 0 { return errors.NewInvalid(...) }` - in beginCreate, before Validate.
    bad = _svc({"clusterIPs": ["10.96.0.10"], "ports": [{"port": 80, "name": "Web"}]})
    assert _errors(bad) == [SVC + f'spec.clusterIPs: Invalid value: ["10.96.0.10"]: {MUST_BE_EMPTY}']
    assert _errors(_svc({"clusterIP": "10.0.0.300", "ports": []})) == [
        SVC + 'spec.clusterIPs[0]: Invalid value: "10.0.0.300": '
        "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"]


def test_the_first_cluster_ips_value_must_be_cluster_ip() -> None:
    assert _errors(_svc({"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.11"]})) == [
        SVC + 'spec.clusterIPs: Invalid value: ["10.96.0.11"]: first value must match `clusterIP`']


@pytest.mark.parametrize(("spec", "errors"), [
    ({"clusterIP": "None", "clusterIPs": ["None", "10.96.0.10"]},
     ['spec.clusterIPs: Invalid value: ["None","10.96.0.10"]: \'None\' must be the first and only value']),
    ({"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10", "None"]},
     ['spec.clusterIPs[1]: Invalid value: "None": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)']),
    ({"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10", "fd00::10", "10.96.0.11"],
      "ipFamilyPolicy": "RequireDualStack"},
     ['spec.clusterIPs: Invalid value: ["10.96.0.10","fd00::10","10.96.0.11"]: may only hold up to 2 values']),
    ({"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10", "10.96.0.11"], "ipFamilyPolicy": "PreferDualStack"},
     ['spec.clusterIPs: Invalid value: ["10.96.0.10","10.96.0.11"]: may specify no more than one IP for each IP family']),
    ({"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10", "fd00::10"], "ipFamilies": ["IPv4", "IPv4"],
      "ipFamilyPolicy": "RequireDualStack"},
     ['spec.ipFamilies[1]: Duplicate value: "IPv4"',
      'spec.clusterIPs[1]: Invalid value: "fd00::10": expected an IPv4 value as indicated by `ipFamilies[1]`']),
    ({"clusterIP": "fd00::10", "ipFamilies": ["IPv4"]},
     ['spec.clusterIPs[0]: Invalid value: "fd00::10": expected an IPv4 value as indicated by `ipFamilies[0]`']),
    ({"ipFamilies": ["IPv5"], "ipFamilyPolicy": "DualStack"},
     ['spec.ipFamilies[0]: Unsupported value: "IPv5": supported values: "IPv4", "IPv6"',
      'spec.ipFamilyPolicy: Unsupported value: "DualStack": supported values: '
      '"PreferDualStack", "RequireDualStack", "SingleStack"']),
])
def test_cluster_ips_related_fields(spec: dict[str, Any], errors: list[str]) -> None:
    assert _errors(_svc(spec)) == [SVC + e for e in errors]


@pytest.mark.parametrize(("spec", "detail"), [
    ({"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10", "fd00::10"]},
     "when multiple cluster IPs are specified"),
    ({"ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "SingleStack"},
     "when multiple IP families are specified"),
])
def test_two_ips_or_families_need_a_dual_stack_policy(spec: dict[str, Any], detail: str) -> None:
    # initIPFamilyFields: an absent policy is SingleStack (`singleStack :=
    # api.IPFamilyPolicySingleStack`), then `field.Invalid(field.NewPath("spec",
    # "ipFamilyPolicy"), service.Spec.IPFamilyPolicy, "must be 'RequireDualStack' or
    # 'PreferDualStack' when multiple ...")`, told alone.
    spec["ports"] = [{"port": 80, "name": "Web"}]
    assert _errors(_svc(spec)) == [
        SVC + f"spec.ipFamilyPolicy: Invalid value: \"SingleStack\": must be 'RequireDualStack' or "
        f"'PreferDualStack' {detail}"]


def test_dual_stack_and_headless_services_load() -> None:
    dual = _spec(_svc({"clusterIP": "fd00::10", "clusterIPs": ["fd00::10", "10.96.0.10"],
                       "ipFamilies": ["IPv6", "IPv4"], "ipFamilyPolicy": "RequireDualStack"}))
    assert (dual.cluster_ip, dual.cluster_ips, dual.ip_families, dual.ip_family_policy) == (
        "fd00::10", ("fd00::10", "10.96.0.10"), ("IPv6", "IPv4"), "RequireDualStack")
    # Headless and selectorless: the policy defaults to RequireDualStack, so two families pass.
    assert _spec(_svc({"clusterIP": "None", "clusterIPs": ["None"],
                       "ipFamilies": ["IPv4", "IPv6"]})).cluster_ips == ("None",)
    snake = _spec(_svc({"cluster_ip": "10.96.0.10", "cluster_i_ps": ["10.96.0.10", "fd00::10"],
                        "ip_families": ["IPv4", "IPv6"], "ip_family_policy": "PreferDualStack"}))
    assert (snake.cluster_ips, snake.ip_families, snake.ip_family_policy) == (
        ("10.96.0.10", "fd00::10"), ("IPv4", "IPv6"), "PreferDualStack")


def test_headless_with_a_selector_and_two_families_is_single_stack() -> None:
    assert _errors(_svc({"clusterIP": "None", "ipFamilies": ["IPv4", "IPv6"], "selector": {"app": "x"}})) == [
        SVC + "spec.ipFamilyPolicy: Invalid value: \"SingleStack\": must be 'RequireDualStack' or "
        "'PreferDualStack' when multiple IP families are specified"]


def test_an_external_name_service_may_hold_no_cluster_ips_nor_families() -> None:
    # ValidateService, ExternalName: `if len(service.Spec.ClusterIPs) > 0 { field.Forbidden(...)
    # }`, ipFamilies and ipFamilyPolicy likewise; initIPFamilyFields skips ExternalName.
    ext = {"type": "ExternalName", "externalName": "db.example.com"}
    assert _errors(_svc({**ext, "clusterIPs": ["10.96.0.10"], "ipFamilies": ["IPv4"],
                         "ipFamilyPolicy": "SingleStack"})) == [
        SVC + "spec.clusterIPs: Forbidden: may not be set for ExternalName services",
        SVC + "spec.ipFamilies: Forbidden: may not be set for ExternalName services",
        SVC + "spec.ipFamilyPolicy: Forbidden: may not be set for ExternalName services"]
    # clusterIPs ["None"] is headless: no ports needed, but still Forbidden.
    assert _errors(_svc({**ext, "clusterIPs": ["None"], "ports": []})) == [
        SVC + "spec.clusterIPs: Forbidden: may not be set for ExternalName services"]


def test_service_upstream_dials_the_stored_cluster_ip() -> None:
    # ingress-nginx getServiceClusterEndpoint: `endpoint.Address = svc.Spec.ClusterIP`, which
    # the API server keeps equal to clusterIPs[0].
    slice_ = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
              "metadata": {"name": "web-1", "labels": {"kubernetes.io/service-name": "web"}},
              "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}]}
    dual = _svc({"clusterIP": "fd00::10", "clusterIPs": ["fd00::10", "10.96.0.10"],
                 "ipFamilies": ["IPv6", "IPv4"], "ipFamilyPolicy": "PreferDualStack"})
    ix = EndpointIndex(Resources.from_dicts([dual, slice_]))
    assert ix.resolve("default", "web", 80, service_upstream=True).endpoints == (("fd00::10", 80),)
    headless = EndpointIndex(Resources.from_dicts([_svc({"clusterIP": "None"}), slice_]))
    assert headless.resolve("default", "web", 80, service_upstream=True).endpoints == (("10.0.0.1", 80),)


# --- x33's node ports, reviewed --------------------------------------------------------------


def _node_ports(kind: str, *ports: tuple[int, str, int]) -> dict[str, Any]:
    return _svc({"type": kind, "ports": [
        {"name": f"p{i}", "port": port, "protocol": proto, "nodePort": node_port}
        for i, (port, proto, node_port) in enumerate(ports)]})


@pytest.mark.parametrize("kind", ["NodePort", "LoadBalancer"])
def test_the_allocators_refusal_is_told_alone_and_first_only(kind: str) -> None:
    # beginCreate -> txnAllocNodePorts -> initNodePorts: `return errors.NewInvalid(..., el)` at
    # the first port it cannot allocate; Validate never runs.
    svc = _node_ports(kind, (80, "TCP", 70000), (81, "TCP", -1))
    svc["spec"]["selector"] = {"app": "my app"}
    assert _errors(svc) == [
        SVC + "spec.ports[0].nodePort: Invalid value: 70000: must be between 1 and 65535, inclusive"]


@pytest.mark.parametrize("kind", ["NodePort", "LoadBalancer"])
@pytest.mark.parametrize("second", ["UDP", "TCP"])
def test_one_node_port_for_two_service_ports_is_already_allocated(kind: str, second: str) -> None:
    # initNodePorts keys its allocations by Service port number; port 81 asks the allocator,
    # whose one pool serves every protocol, for 30080 again: `ErrAllocated = errors.New(
    # "provided port is already allocated")` at `spec.ports[1].nodePort`.
    assert _errors(_node_ports(kind, (80, "TCP", 30080), (81, second, 30080))) == [
        SVC + "spec.ports[1].nodePort: Invalid value: 30080: provided port is already allocated"]


def test_one_node_port_for_one_port_number_of_two_protocols_loads() -> None:
    # The same Service port number is given the node port allocated for it
    # (`svcPortToNodePort[int(servicePort.Port)]`): a DNS Service's 53/TCP and 53/UDP.
    spec = _spec(_node_ports("NodePort", (53, "TCP", 30053), (53, "UDP", 30053)))
    assert [p.node_port for p in spec.ports] == [30053, 30053]
    # A port without a nodePort takes its number's requested one (findRequestedNodePort).
    assert _spec(_node_ports("NodePort", (53, "TCP", 0), (53, "UDP", 30053))).type == "NodePort"


def test_a_cluster_ip_or_external_name_services_duplicate_node_ports_stay_duplicates() -> None:
    # No allocator for these types: ValidateService's (protocol, nodePort) check answers.
    assert _errors(_node_ports("ClusterIP", (80, "TCP", 30080), (81, "TCP", 30080))) == [
        SVC + "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
        SVC + "spec.ports[1].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
        SVC + "spec.ports[1].nodePort: Duplicate value: 30080"]
    ext = _node_ports("ExternalName", (80, "TCP", 30080), (81, "TCP", 30080))
    ext["spec"]["externalName"] = "db.example.com"
    assert _errors(ext) == [SVC + "spec.ports[1].nodePort: Duplicate value: 30080"]
