"""SEMANTICS §6: Service port -> target port -> ready endpoints."""

from __future__ import annotations

import dataclasses

import pytest

from ingresslib._endpoints import EndpointIndex, is_ready, parse_weights
from ingresslib._models import EndpointConditions, EndpointPort, ServicePort

from _router_helpers import endpoints_v1, resources, service, slice_

C = EndpointConditions


def idx(*objs: object) -> EndpointIndex:
    return EndpointIndex(resources(*objs))


@pytest.mark.parametrize(
    ("conditions", "ready"),
    [
        (C(), True),                                   # nil ready "should be interpreted as true"
        (C(ready=True), True),
        (C(ready=False), False),
        (C(ready=None, terminating=True), False),      # ready is never true while terminating
        (C(ready=True, terminating=True), True),       # explicit ready wins
        (C(ready=False, serving=True, terminating=True), False),  # serving is not ready
        (C(ready=None, serving=False), True),          # serving is ignored
    ],
)
def test_is_ready(conditions: EndpointConditions, ready: bool) -> None:
    assert is_ready(conditions) is ready


def test_numeric_backend_port_resolves_to_numeric_target_port() -> None:
    ix = idx(service("web", [ServicePort(80, "http", 8080)]),
             slice_("web-a", "web", ["10.0.0.2", "10.0.0.1"], [("http", 8080)]))
    es = ix.resolve("default", "web", 80)
    assert es.port == 8080
    assert es.endpoints == (("10.0.0.1", 8080), ("10.0.0.2", 8080))  # sorted
    assert es.weights == (1, 1) and not es.weighted and es.reason is None


def test_named_backend_port_resolves_through_service_ports() -> None:
    ix = idx(service("web", [ServicePort(80, "http", 8080), ServicePort(9090, "metrics", 9100)]),
             slice_("web-a", "web", ["10.0.0.1"], [("http", 8080), ("metrics", 9100)]))
    assert ix.resolve("default", "web", "metrics").endpoints == (("10.0.0.1", 9100),)
    assert ix.resolve("default", "web", "http").endpoints == (("10.0.0.1", 8080),)
    # The backend port names the *Service* port, never the container port.
    assert ix.resolve("default", "web", 8080).endpoints == ()
    assert "no port 8080" in (ix.resolve("default", "web", 8080).reason or "")


def test_target_port_defaults_to_port() -> None:
    ix = idx(service("web", [ServicePort(80)]), slice_("web-a", "web", ["10.0.0.1"], [(None, 80)]))
    es = ix.resolve("default", "web", 80)
    assert es.port == 80 and es.endpoints == (("10.0.0.1", 80),)


def test_named_target_port_takes_the_number_from_the_endpoints() -> None:
    ix = idx(service("web", [ServicePort(80, "http", "web-http")]),
             slice_("web-a", "web", ["10.0.0.1"], [("http", 3000)]))
    es = ix.resolve("default", "web", 80)
    assert es.port == 3000 and es.endpoints == (("10.0.0.1", 3000),)
    # With no endpoint, a named target port cannot be resolved.
    ix2 = idx(service("web", [ServicePort(80, "http", "web-http")]))
    assert ix2.resolve("default", "web", 80).port is None


def test_several_slices_ipv4_and_ipv6_merged_and_deduplicated() -> None:
    ix = idx(service("web", [ServicePort(80, None, 8080)]),
             slice_("web-a", "web", ["10.0.0.1", "10.0.0.2"]),
             slice_("web-b", "web", ["10.0.0.2", "10.0.0.3"]),
             slice_("web-6", "web", ["fd00::1"], address_type="IPv6"))
    assert ix.resolve("default", "web", 80).endpoints == (
        ("10.0.0.1", 8080), ("10.0.0.2", 8080), ("10.0.0.3", 8080), ("fd00::1", 8080))


def test_slice_port_matched_by_name_and_unnamed_port() -> None:
    # A slice for another port name contributes nothing to this port.
    ix = idx(service("web", [ServicePort(80, "http", 8080)]),
             slice_("web-a", "web", ["10.0.0.1"], [("http", 8080)]),
             slice_("web-b", "web", ["10.0.0.9"], [("grpc", 9000)]))
    assert ix.resolve("default", "web", 80).endpoints == (("10.0.0.1", 8080),)


def test_only_ready_endpoints_from_slices() -> None:
    ix = idx(service("web"), slice_("web-a", "web", [
        "10.0.0.1",
        ("10.0.0.2", C(ready=False)),
        ("10.0.0.3", C(ready=True)),
        ("10.0.0.4", C(terminating=True)),
        ("10.0.0.5", C(ready=False, serving=True, terminating=True)),
    ]))
    assert ix.resolve("default", "web", 80).endpoints == (("10.0.0.1", 8080), ("10.0.0.3", 8080))


def test_slices_of_other_services_and_namespaces_are_ignored() -> None:
    ix = idx(service("web"), slice_("x", "other", ["10.0.0.1"]),
             slice_("y", "web", ["10.0.0.2"], ns="prod"))
    es = ix.resolve("default", "web", 80)
    assert es.endpoints == () and "no ready endpoint" in (es.reason or "")


def test_v1_endpoints_addresses_only() -> None:
    ix = idx(service("web"), endpoints_v1("web", ["10.0.1.1"], not_ready=["10.0.1.2"]))
    assert ix.resolve("default", "web", 80).endpoints == (("10.0.1.1", 8080),)


def test_slices_win_over_v1_endpoints() -> None:
    ix = idx(service("web"), endpoints_v1("web", ["10.0.1.1"]), slice_("w", "web", ["10.0.0.1"]))
    assert ix.resolve("default", "web", 80).endpoints == (("10.0.0.1", 8080),)


def test_v1_endpoints_named_ports() -> None:
    ix = idx(service("web", [ServicePort(80, "http", "http"), ServicePort(81, "admin", 9000)]),
             endpoints_v1("web", ["10.0.1.1"], ports=[("http", 8080), ("admin", 9000)]))
    assert ix.resolve("default", "web", "admin").endpoints == (("10.0.1.1", 9000),)
    assert ix.resolve("default", "web", 80).endpoints == (("10.0.1.1", 8080),)


def test_missing_service_or_resource_backend() -> None:
    ix = idx()
    es = ix.resolve("default", "nope", 80)
    assert es.endpoints == () and es.port is None and "not found" in (es.reason or "")
    assert ix.resolve("default", None, None).reason == "resource backend"


def test_service_upstream_uses_cluster_ip() -> None:
    ix = idx(service("web", [ServicePort(80, None, 8080)], cluster_ip="10.96.1.2"),
             slice_("w", "web", ["10.0.0.1"]))
    assert ix.resolve("default", "web", 80, service_upstream=True).endpoints == (("10.96.1.2", 80),)
    assert ix.resolve("default", "web", 80, service_upstream=False).endpoints == (("10.0.0.1", 8080),)


def test_service_upstream_on_headless_service_falls_back_to_pods() -> None:
    ix = idx(service("web", cluster_ip="None"), slice_("w", "web", ["10.0.0.1"]))
    assert ix.resolve("default", "web", 80, service_upstream=True).endpoints == (("10.0.0.1", 8080),)


def test_external_name_service() -> None:
    ix = idx(service("ext", [ServicePort(443)], type="ExternalName", cluster_ip=None,
                     external_name="api.example.com"))
    assert ix.resolve("default", "ext", 443).endpoints == (("api.example.com", 443),)


def test_external_name_without_ports_uses_the_backend_port() -> None:
    # controller.go externalNamePorts: "// ExternalName without port / return
    # &apiv1.ServicePort{Protocol: "TCP", Port: int32(port), TargetPort: intstr.FromInt(port)}"
    # - ExternalName Services usually list no ports; the Ingress backend's number is used.
    ix = idx(service("ext", [], type="ExternalName", cluster_ip=None,
                     external_name="api.example.com"))
    es = ix.resolve("default", "ext", 8443)
    assert es.endpoints == (("api.example.com", 8443),) and es.port == 8443
    # A port *name* needs a Service port of that name.
    assert ix.resolve("default", "ext", "https").endpoints == ()


def test_external_name_to_the_loopback_is_refused() -> None:
    # ingress-nginx endpointslices.go: "if ip := net.ParseIP(s.Spec.ExternalName);
    # s.Spec.ExternalName == "localhost" || (ip != nil && ip.IsLoopback()) { klog.Errorf("Invalid
    # attempt to use localhost name ..."); return upsServers }" - never proxy to ourselves.
    for name in ("localhost", "127.0.0.1", "127.9.9.9", "::1"):
        ix = idx(service("ext", [ServicePort(443)], type="ExternalName", cluster_ip=None,
                         external_name=name))
        es = ix.resolve("default", "ext", 443)
        assert es.endpoints == () and "loopback" in (es.reason or ""), name


def test_slice_without_ports_uses_the_numeric_target_port() -> None:
    # endpointslices.go: "if len(eps.Ports) == 0 && port.TargetPort.Type == intstr.Int {
    # // When ports is empty, it indicates that there are no defined ports, using svc
    # targePort if it's a number ... ports = append(ports, port.TargetPort.IntVal)".
    ix = idx(service("web", [ServicePort(80, "http", 8080)]),
             slice_("web-a", "web", ["10.0.0.1"], []))
    es = ix.resolve("default", "web", 80)
    assert es.endpoints == (("10.0.0.1", 8080),) and es.port == 8080
    # A named targetPort has no number to use: nothing.
    ix = idx(service("web", [ServicePort(80, "http", "web")]),
             slice_("web-a", "web", ["10.0.0.1"], []))
    assert ix.resolve("default", "web", 80).endpoints == ()


def test_only_tcp_slice_ports_serve() -> None:
    # controller.go serviceEndpoints: "getEndpointsFromSlices(svc, &servicePort,
    # apiv1.ProtocolTCP, ...)", and there "if !reflect.DeepEqual(*epPort.Protocol, proto) {
    # continue }": HTTP goes to TCP ports only.
    udp = dataclasses.replace(slice_("web-u", "web", ["10.0.0.9"], [("http", 8080)]),
                              ports=(EndpointPort(port=8080, name="http", protocol="UDP"),))
    ix = idx(service("web", [ServicePort(80, "http", 8080)]), udp,
             slice_("web-t", "web", ["10.0.0.1"], [("http", 8080)]))
    assert ix.resolve("default", "web", 80).endpoints == (("10.0.0.1", 8080),)
    eps = endpoints_v1("web", ["10.0.0.2"], ports=[("http", 8080)])
    eps = dataclasses.replace(eps, subsets=(dataclasses.replace(
        eps.subsets[0], ports=(EndpointPort(port=8080, name="http", protocol="SCTP"),)),))
    assert idx(service("web", [ServicePort(80, "http", 8080)]), eps).resolve(
        "default", "web", 80).endpoints == ()


def test_weights_annotation() -> None:
    ann = {"ingresslib.io/endpoint-weights": "10.0.0.1=3, 10.0.0.2:8080=2, [fd00::1]:8080=5"}
    ix = idx(service("web", annotations=ann),
             slice_("w", "web", ["10.0.0.1", "10.0.0.2", "10.0.0.3"]),
             slice_("w6", "web", ["fd00::1"], address_type="IPv6"))
    es = ix.resolve("default", "web", 80)
    assert dict(zip(es.endpoints, es.weights)) == {
        ("10.0.0.1", 8080): 3, ("10.0.0.2", 8080): 2, ("10.0.0.3", 8080): 1,
        ("fd00::1", 8080): 5}
    assert es.weighted


@pytest.mark.parametrize("text", ["a", "10.0.0.1=x", "10.0.0.1=0", "=3", "10.0.0.1=-1"])
def test_weights_annotation_errors(text: str) -> None:
    by_addr, by_ip, errors = parse_weights(text)
    assert not by_addr and not by_ip and len(errors) == 1


def test_resolve_is_memoised() -> None:
    ix = idx(service("web"), slice_("w", "web", ["10.0.0.1"]))
    assert ix.resolve("default", "web", 80) is ix.resolve("default", "web", 80)


def test_addresses_are_read_as_kubernetes_reads_them() -> None:
    # Kubernetes parses "010.0.0.1" as 10.0.0.1 (ParseIPSloppy: decimal, leading zeros allowed);
    # the C resolver behind a connect reads it as octal, 8.0.0.1: another host. The endpoint set
    # holds the address Kubernetes means, written canonically; an FQDN stays as written.
    ix = idx(service("web", [ServicePort(80, "http", 8080)]),
             slice_("web-a", "web", ["010.0.0.001", "10.0.0.2"], [("http", 8080)]),
             service("v6", [ServicePort(80, "http", 8080)]),
             slice_("v6-a", "v6", ["2001:DB8:0:0::0001"], [("http", 8080)], address_type="IPv6"),
             service("ext", [ServicePort(80, "http", 8080)]),
             slice_("ext-a", "ext", ["Backend.Example.com"], [("http", 8080)], address_type="FQDN"))
    assert ix.resolve("default", "web", 80).endpoints == (("10.0.0.1", 8080), ("10.0.0.2", 8080))
    assert ix.resolve("default", "v6", 80).endpoints == (("2001:db8::1", 8080),)
    assert ix.resolve("default", "ext", 80).endpoints == (("Backend.Example.com", 8080),)
    old = idx(service("web", [ServicePort(80, "http", 8080)]),
              endpoints_v1("web", ["010.0.0.001"], ports=[("http", 8080)]))
    assert old.resolve("default", "web", 80).endpoints == (("10.0.0.1", 8080),)
