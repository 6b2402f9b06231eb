"""Session 35 review (x39) of x36 (Service ``clusterIPs`` / ``ipFamilies`` / ``ipFamilyPolicy``,
node ports as the allocator) and x37 (setup.py's Cython question).

The risk of x36: refusing a Service a real cluster serves. ``serve --kubernetes`` and
``ResourceStore`` read what the API server *stored*, and it stores what its update path admits
(``ValidateServiceUpdate``, ``beginUpdate`` -> ``allocateUpdate``), which is not always what
its create path admits. Read against k8s.io/kubernetes ``pkg/registry/core/service/storage/``
``alloc.go`` (``allocateCreate``, ``initIPFamilyFields``, ``txnAllocNodePorts`` /
``initNodePorts``, ``allocateUpdate``, ``txnUpdateNodePorts`` / ``updateNodePorts``),
``storage.go`` (``beginCreate``, ``beginUpdate``, ``normalizeClusterIPs``, ``defaultOnRead``,
which fills ``clusterIPs``, ``ipFamilies`` and ``ipFamilyPolicy`` of objects stored before them
on every read, watches included, and drops an ExternalName Service's ``internalTrafficPolicy``)
and ``pkg/apis/core/validation/validation.go`` (``ValidateServiceClusterIPsRelatedFields``).

Defect found (the test below failed before the fix):

- A NodePort / LoadBalancer Service whose ports of two numbers share one node port with two
  protocols (``80/TCP`` and ``81/UDP`` both ``30080``) was set aside by the store. Create
  refuses it (``initNodePorts`` asks the allocator for 30080 again: "provided port is already
  allocated"), but an update stores it: ``updateNodePorts`` allocates each node port once per
  Service (``portAllocated``) and only ``ValidateService``'s (protocol, nodePort) duplicate
  check runs, which two protocols pass. The store now serves it, the allocator's rule kept as
  an admission-only warning (``_store._ADMISSION_ONLY``), and the Service's other rules still
  checked (``validate_service(stored=True)``: that refusal no longer stands alone there).
  ``check`` / ``serve -f`` keep refusing it, as create does.

Checked and found right:

- The stored shapes below load through ``Resources.from_dicts`` and through the store (ADDED
  events), camelCase and the official client's ``to_dict()`` (snake_case, every unset field
  ``None``, ``cluster_ips`` or ``cluster_i_ps``): current defaults (``clusterIPs``,
  ``ipFamilies``, ``ipFamilyPolicy``, ``internalTrafficPolicy``, ``sessionAffinity``,
  allocated node ports, ``healthCheckNodePort``, ``allocateLoadBalancerNodePorts`` true and
  false, ``loadBalancerClass``, ``trafficDistribution``, status ``ipMode`` and conditions), a
  headless selectorless Service with ``RequireDualStack`` and two families (ports or none), a
  headless Service with a selector, ExternalName Services (with ports; with the
  ``internalTrafficPolicy`` API servers before the read fix served), a dual-stack Service in
  IPv6-first order, ``RequireDualStack`` NodePort, ``PreferDualStack`` with one family, a DNS
  Service's 53/TCP and 53/UDP on one node port; 1.19 and older (no ``clusterIPs``; the alpha
  ``ipFamily``, an unknown field: a warning), 1.20-1.22 (``topologyKeys``).
- A stored object passes every rule of ``_begin_create`` but the one above: the update path
  runs ``ValidateServiceClusterIPsRelatedFields`` too (in ``ValidateService``), adopts the old
  ``ipFamilyPolicy`` when none is sent and truncates two IPs / families under ``SingleStack``
  (so no stored object has two under ``SingleStack``), and ``defaultOnRead`` gives objects
  older than those fields a policy; a stored node port is within 1-65535.
- x36's messages, paths and values against the Go source: ``ValidateServiceClusterIPsRelated
  Fields`` (each message, ``clusterIPs`` as the list's JSON, ``IsDualStackIPStrings`` as "at
  least one of each family", the family match skipped for a headless Service, the stop after
  an invalid IP), ``initIPFamilyFields`` (the default policy: ``RequireDualStack`` for
  ``clusterIP: None`` without a selector, else ``SingleStack``, set before the pre-check, which
  never reads it; both "must be 'RequireDualStack' or 'PreferDualStack' ..." at
  ``spec.ipFamilyPolicy``), ``initNodePorts`` (per port number, ``findRequestedNodePort``, the
  range checked before "already allocated", the first failure alone).
- x37's setup.py: ``pip install`` of a fresh clone (build isolation) builds both extensions
  (``MATCHER`` ``cython``); ``INGRESSLIB_NO_EXTENSIONS=1`` builds none (``python``, no
  ``.so``); ``--no-build-isolation`` without Cython and without a ``.c`` installs the twins,
  the log giving ``NO_CYTHON``'s reason; with a ``.c`` older than its ``.pyx`` the build stops
  (``STALE``); with ``INGRESSLIB_REQUIRE_EXTENSIONS=1`` and no Cython the build fails.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ingresslib import ValidationError
from ingresslib._fields import snake
from ingresslib._resources import Resources
from ingresslib._store import ResourceStore

_P = [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}]
_V4 = {"ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", "internalTrafficPolicy": "Cluster",
       "sessionAffinity": "None"}
_HEADLESS_DUAL = {"clusterIP": "None", "clusterIPs": ["None"], "ipFamilies": ["IPv4", "IPv6"],
                  "ipFamilyPolicy": "RequireDualStack", "internalTrafficPolicy": "Cluster",
                  "sessionAffinity": "None"}


def _node_port(port: int, node_port: int, protocol: str = "TCP", name: str = "http") -> dict[str, Any]:
    return {"name": name, "nodePort": node_port, "port": port, "protocol": protocol, "targetPort": port}


#: Services as the API server serves them (kubectl get -o json), by the release that stored them.
STORED: dict[str, dict[str, Any]] = {
    "cluster-ip": {"clusterIP": "10.96.12.1", "clusterIPs": ["10.96.12.1"], **_V4, "ports": _P,
                   "selector": {"app": "a"}, "type": "ClusterIP"},
    "node-port": {"clusterIP": "10.96.12.2", "clusterIPs": ["10.96.12.2"], **_V4,
                  "externalTrafficPolicy": "Cluster", "ports": [_node_port(80, 31380)],
                  "selector": {"app": "b"}, "type": "NodePort"},
    "load-balancer-local": {
        "allocateLoadBalancerNodePorts": True, "clusterIP": "10.96.12.3", "clusterIPs": ["10.96.12.3"],
        **_V4, "externalTrafficPolicy": "Local", "healthCheckNodePort": 32000,
        "loadBalancerClass": "service.k8s.aws/nlb",
        "ports": [_node_port(80, 30080), {**_node_port(443, 30443, name="https"), "appProtocol": "https"}],
        "selector": {"app.kubernetes.io/name": "ingress-nginx"}, "type": "LoadBalancer"},
    "load-balancer-no-node-ports": {
        "allocateLoadBalancerNodePorts": False, "clusterIP": "10.96.12.4", "clusterIPs": ["10.96.12.4"],
        **_V4, "externalTrafficPolicy": "Cluster", "ports": _P, "selector": {"app": "d"},
        "sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10800}},
        "trafficDistribution": "PreferClose", "type": "LoadBalancer"},
    "headless-selectorless-dual": {**_HEADLESS_DUAL, "ports": _P, "type": "ClusterIP"},
    "headless-selectorless-no-ports": {**_HEADLESS_DUAL, "type": "ClusterIP"},
    "headless-selector": {"clusterIP": "None", "clusterIPs": ["None"], **_V4, "ports": _P,
                          "publishNotReadyAddresses": True, "selector": {"app": "f"}, "type": "ClusterIP"},
    "external-name": {"externalName": "db.example.com", "sessionAffinity": "None", "type": "ExternalName"},
    "external-name-ports-itp": {"externalName": "db.example.com", "internalTrafficPolicy": "Cluster",
                                "ports": _P, "sessionAffinity": "None", "type": "ExternalName"},
    "dual-ipv6-first": {"clusterIP": "fd00:10:96::5c1f", "clusterIPs": ["fd00:10:96::5c1f", "10.96.12.8"],
                        "ipFamilies": ["IPv6", "IPv4"], "ipFamilyPolicy": "PreferDualStack",
                        "internalTrafficPolicy": "Cluster", "ports": _P, "selector": {"app": "h"},
                        "sessionAffinity": "None", "type": "ClusterIP"},
    "require-dual-node-port": {"clusterIP": "10.96.12.9", "clusterIPs": ["10.96.12.9", "fd00:10:96::9"],
                               "ipFamilies": ["IPv4", "IPv6"], "ipFamilyPolicy": "RequireDualStack",
                               "externalTrafficPolicy": "Cluster", "internalTrafficPolicy": "Local",
                               "ports": [_node_port(80, 31000)], "selector": {"app": "h"},
                               "sessionAffinity": "None", "type": "NodePort"},
    "prefer-dual-one-family": {"clusterIP": "10.96.12.10", "clusterIPs": ["10.96.12.10"], **_V4,
                               "ipFamilyPolicy": "PreferDualStack", "ports": _P, "selector": {"app": "h"},
                               "type": "ClusterIP"},
    "dns-53-tcp-udp": {"clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], **_V4,
                       "externalTrafficPolicy": "Cluster",
                       "ports": [_node_port(53, 30053, "UDP", "dns"), _node_port(53, 30053, "TCP", "dns-tcp")],
                       "selector": {"k8s-app": "kube-dns"}, "type": "NodePort"},
    "k119-no-cluster-ips": {"clusterIP": "10.96.12.11", "ports": _P, "selector": {"app": "i"},
                             "sessionAffinity": "None", "type": "ClusterIP"},
    "k119-node-port": {"clusterIP": "10.96.12.12", "externalTrafficPolicy": "Cluster",
                        "ports": [_node_port(80, 30001)], "selector": {"app": "i"},
                        "sessionAffinity": "None", "type": "NodePort"},
    "k119-headless": {"clusterIP": "None", "ports": _P, "selector": {"app": "i"},
                       "sessionAffinity": "None", "type": "ClusterIP"},
    "k118-alpha-ip-family": {"clusterIP": "10.96.12.16", "ipFamily": "IPv4", "ports": _P,
                              "selector": {"app": "i"}, "sessionAffinity": "None", "type": "ClusterIP"},
    "k121-topology-keys": {"clusterIP": "10.96.12.17", "clusterIPs": ["10.96.12.17"],
                            "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                            "topologyKeys": ["kubernetes.io/hostname", "*"], "ports": _P,
                            "selector": {"app": "i"}, "sessionAffinity": "None", "type": "ClusterIP"},
}

#: 80/TCP and 81/UDP on one node port: refused by create, stored by an update (a port added).
SHARED = {"clusterIP": "10.96.12.14", "clusterIPs": ["10.96.12.14"], **_V4,
          "externalTrafficPolicy": "Cluster",
          "ports": [_node_port(80, 30080, "TCP", "a"), _node_port(81, 30080, "UDP", "b")],
          "selector": {"app": "l"}, "type": "NodePort"}
TAKEN = "spec.ports[1].nodePort: Invalid value: 30080: provided port is already allocated"

#: Every V1ServiceSpec attribute of the official client (kubernetes 37), None when unset.
_CLIENT_SPEC_FIELDS = (
    "allocate_load_balancer_node_ports", "cluster_ip", "cluster_ips", "external_ips", "external_name",
    "external_traffic_policy", "health_check_node_port", "internal_traffic_policy", "ip_families",
    "ip_family_policy", "load_balancer_class", "load_balancer_ip", "load_balancer_source_ranges",
    "ports", "publish_not_ready_addresses", "selector", "session_affinity",
    "session_affinity_config", "traffic_distribution", "type")


def _service(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}", "resourceVersion": "7",
                         "creationTimestamp": "2024-01-01T00:00:00Z"},
            "spec": copy.deepcopy(spec),
            "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.5", "ipMode": "VIP"}]},
                       "conditions": [{"type": "Ready", "status": "True", "reason": "Ok", "message": "",
                                       "lastTransitionTime": "2024-01-01T00:00:00Z"}]}}


def _snake(value: Any, *, keep_keys: bool = False) -> Any:
    """``value`` as the official client's ``to_dict()`` spells it (label maps keep their keys)."""
    if isinstance(value, dict):
        return {k if keep_keys else snake(k): _snake(v, keep_keys=k in ("selector", "labels"))
                for k, v in value.items()}
    if isinstance(value, list):
        return [_snake(v) for v in value]
    return value


def _client(obj: dict[str, Any], plural: str) -> dict[str, Any]:
    out: dict[str, Any] = _snake(obj)
    spec = out["spec"]
    if "cluster_i_ps" in spec:
        spec[plural] = spec.pop("cluster_i_ps")
    for f in _CLIENT_SPEC_FIELDS:
        spec.setdefault(f, None)
    return out


def _styles(obj: dict[str, Any]) -> list[dict[str, Any]]:
    return [obj, _client(obj, "cluster_i_ps"), _client(obj, "cluster_ips")]


def _stored(obj: dict[str, Any]) -> ResourceStore:
    store = ResourceStore()
    store.apply("ADDED", obj)
    return store


def _key(obj: dict[str, Any]) -> tuple[str, str, str]:
    return ("v1/Service", "default", obj["metadata"]["name"])


@pytest.mark.parametrize("name", sorted(STORED))
def test_a_stored_service_loads_from_dicts_and_in_the_store(name: str) -> None:
    for obj in _styles(_service(name, STORED[name])):
        res = Resources.from_dicts([obj])
        assert [s.metadata.name for s in res.services] == [name]
        store = _stored(obj)
        assert _key(obj) in store and not store.errors and not store.warnings
        assert store.snapshot().services == res.services


def test_stored_shapes_keep_what_service_upstream_and_headless_read() -> None:
    dual = Resources.from_dicts([_service("d", STORED["dual-ipv6-first"])]).services[0].spec
    assert (dual.cluster_ip, dual.cluster_ips, dual.ip_families) == (
        "fd00:10:96::5c1f", ("fd00:10:96::5c1f", "10.96.12.8"), ("IPv6", "IPv4"))
    old = Resources.from_dicts([_service("o", STORED["k119-no-cluster-ips"])]).services[0].spec
    assert old.cluster_ips == ("10.96.12.11",)
    headless = _client(_service("h", STORED["headless-selectorless-dual"]), "cluster_ips")
    spec = Resources.from_dicts([headless]).services[0].spec
    assert (spec.cluster_ip, spec.cluster_ips, spec.ip_family_policy) == ("None", ("None",), "RequireDualStack")


def test_an_old_alpha_field_is_an_unknown_field_warning_not_an_error() -> None:
    res = Resources.from_dicts([_service("a", STORED["k118-alpha-ip-family"])])
    assert any("ipFamily" in str(w) for w in res.warnings)


# --- the defect: a node port two port numbers share after an update -------------------------


def test_a_node_port_shared_after_an_update_is_served_by_the_store_with_a_warning() -> None:
    # updateNodePorts: `if !containsNumber(oldNodePortsNumbers, ...) && !portAllocated[...] {
    # nodePortOp.Allocate(...) }`: the second port's 30080 is not allocated again, and
    # ValidateService's (protocol, nodePort) duplicate check passes TCP and UDP.
    for obj in _styles(_service("l", SHARED)):
        store = _stored(obj)
        assert _key(obj) in store and not store.errors
        assert [str(w) for w in store.warnings[_key(obj)]] == ["Service default/l: " + TAKEN]
        assert [p.node_port for p in store.snapshot().services[0].spec.ports] == [30080, 30080]


def test_check_still_refuses_it_as_create_does() -> None:
    # initNodePorts: port 81 has no node port granted yet; findRequestedNodePort gives 30080,
    # which the one pool of every protocol already gave port 80: ErrAllocated, told alone.
    with pytest.raises(ValidationError) as info:
        Resources.from_dicts([_service("l", {**SHARED, "selector": {"app": "my app"}})])
    assert [str(e) for e in info.value.errors] == ["Service default/l: " + TAKEN]


def test_the_store_still_checks_the_other_rules_of_such_a_service() -> None:
    # The allocator's create-only refusal does not stand alone for a stored object: an
    # invalid selector is still found, and the Service set aside.
    shared = _service("l", {**SHARED, "selector": {"app": "my app"}})
    store = _stored(shared)
    assert _key(shared) not in store and _key(shared) in store.errors
    assert not store.warnings
    # And once valid again, it is served.
    store.apply("MODIFIED", _service("l", SHARED))
    assert _key(shared) in store and not store.errors


def test_its_other_admission_only_rules_are_warned_of_too() -> None:
    # ValidateService runs after the allocator's refusal for a stored object: the topology
    # annotations that disagree (an admission-only rule of its own) are found and warned of.
    shared = _service("l", SHARED)
    shared["metadata"]["annotations"] = {"service.kubernetes.io/topology-mode": "Auto",
                                         "service.kubernetes.io/topology-aware-hints": "Disabled"}
    store = _stored(shared)
    assert _key(shared) in store and not store.errors
    assert [str(w) for w in store.warnings[_key(shared)]] == [
        "Service default/l: " + TAKEN,
        'Service default/l: metadata.annotations[service.kubernetes.io/topology-mode]: Invalid value: '
        '"Auto": must match annotations[service.kubernetes.io/topology-aware-hints] when both are specified']
