"""Review of the router's endpoint rules (SEMANTICS §6) against ingress-nginx, session 10.

Each test here failed on the code before its fix."""

from __future__ import annotations

import pytest

from ingresslib._endpoints import EndpointIndex
from ingresslib._hashing import MAX_RING_POINTS, POINTS_PER_MEMBER, HashRing
from ingresslib._models import Endpoint, EndpointPort, EndpointSlice, ServicePort
from ingresslib._router import Router

from _router_helpers import P, canary, ingress, meta, resources, service, simple_backend, slice_


def idx(*objs: object) -> EndpointIndex:
    return EndpointIndex(resources(*objs))


def test_numeric_backend_port_takes_the_tcp_service_port() -> None:
    # A DNS-style Service lists port 53 twice, UDP first. HTTP goes over TCP (ingress-nginx
    # serviceEndpoints: "getEndpointsFromSlices(svc, &servicePort, apiv1.ProtocolTCP, ...)"), so
    # backend port number 53 means the TCP Service port, whatever the order of spec.ports.
    sl = EndpointSlice(meta("dns-a", labels={"kubernetes.io/service-name": "dns"}), "IPv4",
                       (Endpoint(("10.0.0.1",)),),
                       (EndpointPort(53, "dns-udp", "UDP"), EndpointPort(5353, "dns-tcp", "TCP")))
    ix = idx(service("dns", [ServicePort(53, "dns-udp", 53, "UDP"),
                             ServicePort(53, "dns-tcp", 5353, "TCP")]), sl)
    es = ix.resolve("default", "dns", 53)
    assert es.endpoints == (("10.0.0.1", 5353),) and es.port == 5353
    # By name, the UDP port is what the Ingress asked for: nothing to proxy HTTP to, and the
    # reason says why.
    udp = ix.resolve("default", "dns", "dns-udp")
    assert udp.endpoints == () and "UDP" in (udp.reason or "")


@pytest.mark.parametrize("name", ["bad name", "http://api.example.com", "a_b.example.com",
                                  "API.example.com", "-api.example.com", "api..example.com",
                                  "fe80::1%eth0"])
def test_external_name_that_is_no_dns_name_is_refused(name: str) -> None:
    # ingress-nginx endpointslices.go: "if net.ParseIP(s.Spec.ExternalName) == nil {
    # externalName := strings.TrimSuffix(s.Spec.ExternalName, ".") if errs :=
    # validation.IsDNS1123Subdomain(externalName); len(errs) > 0 { klog.Errorf("Invalid DNS
    # name %s: %v", ...); return upsServers }" - never hand the connector such a string.
    ix = idx(service("ext", [ServicePort(443)], type="ExternalName", cluster_ip=None,
                     external_name=name))
    es = ix.resolve("default", "ext", 443)
    assert es.endpoints == () and "DNS" in (es.reason or "")


@pytest.mark.parametrize(("name", "address"), [("api.example.com.", "api.example.com."),
                                               ("10.1.2.3", "10.1.2.3"),
                                               ("fd00::7", "fd00::7")])
def test_external_name_fqdn_with_dot_or_ip_is_kept(name: str, address: str) -> None:
    # The same check trims one trailing "." first, and an IP needs no DNS check; the address
    # is used as written ("Address: s.Spec.ExternalName").
    ix = idx(service("ext", [ServicePort(443)], type="ExternalName", cluster_ip=None,
                     external_name=name))
    assert ix.resolve("default", "ext", 443).endpoints == ((address, 443),)


def test_weight_keys_name_addresses_as_the_endpoints_do() -> None:
    # Endpoints are read as Kubernetes reads them and written canonically ("FD00:0::1" is
    # fd00::1, "010.0.0.1" is 10.0.0.1); a weight written the other way names the same endpoint.
    ann = {"ingresslib.io/endpoint-weights": "FD00:0::1=5, [FD00::2]:8080=4, 010.0.0.1=3"}
    ix = idx(service("web", [ServicePort(80, "http", 8080)], annotations=ann),
             slice_("v6", "web", ["fd00::1", "fd00::2", "fd00::3"], [("http", 8080)],
                    address_type="IPv6"),
             slice_("v4", "web", ["10.0.0.1", "10.0.0.2"], [("http", 8080)]))
    es = ix.resolve("default", "web", 80)
    assert dict(zip(es.endpoints, es.weights)) == {
        ("10.0.0.1", 8080): 3, ("10.0.0.2", 8080): 1, ("fd00::1", 8080): 5,
        ("fd00::2", 8080): 4, ("fd00::3", 8080): 1}


def test_router_answers_503_and_warns_for_a_refused_external_name() -> None:
    # The refusal is a 503 for the rule (a Decision without endpoint, not "no rule": 404) and
    # a warning naming the Service, as ingress-nginx logs "Invalid DNS name".
    res = resources(ingress("web", [("a.test", "/", "Prefix", "ext", 443)]),
                    service("ext", [ServicePort(443)], type="ExternalName", cluster_ip=None,
                            external_name="api example com"),
                    service("lo", [ServicePort(443)], type="ExternalName", cluster_ip=None,
                            external_name="localhost"))
    router = Router(res)
    d = router.route("GET", "a.test", "/")
    assert d is not None and d.endpoint is None and d.service == "ext"
    got = {(w.object, w.field) for w in router.warnings}
    assert ("Service default/ext", "spec.externalName") in got
    assert ("Service default/lo", "spec.externalName") in got


def test_router_routes_port_53_to_the_tcp_service_port() -> None:
    sl = EndpointSlice(meta("dns-a", labels={"kubernetes.io/service-name": "dns"}), "IPv4",
                       (Endpoint(("10.0.0.1",)),),
                       (EndpointPort(53, "dns-udp", "UDP"), EndpointPort(53, "dns-tcp", "TCP")))
    res = resources(ingress("web", [("a.test", "/", "Prefix", "dns", 53)]),
                    service("dns", [ServicePort(53, "dns-udp", 53, "UDP"),
                                    ServicePort(53, "dns-tcp", 53, "TCP")]), sl)
    d = Router(res).route("GET", "a.test", "/")
    assert d is not None and d.endpoint == ("10.0.0.1", 53)


def test_weighted_ring_size_is_bounded() -> None:
    # ``ingresslib.io/endpoint-weights`` gives the consistent-hash ring 160 points per unit of
    # weight; a weight of 10**6 asked for 160 million points (gigabytes, built on the backend's
    # first request). The ring keeps the weights' proportions within a bounded size instead.
    ring = HashRing(["a", "b", "c"], [5000, 1, 2])
    assert len(ring.points) - 1 <= MAX_RING_POINTS
    a, b, c = (ring.owners[:-1].count(i) for i in range(3))
    assert b >= 1 and c >= 2 * b - 1
    assert abs(a / (b + c) - 5000 / 3) / (5000 / 3) < 0.05
    # Unit weights and small weights are unchanged: 160 points per unit.
    assert len(HashRing(["a", "b"], [3, 1]).points) - 1 == 4 * POINTS_PER_MEMBER


# --- behaviour checked in this review and kept (guards, each matching ingress-nginx or §7) ---

def _sides(router: Router, n: int, headers: list[tuple[str, str]] | None = None) -> str:
    out = []
    for _ in range(n):
        d = router.route("GET", "a.test", "/", headers or [])
        assert d is not None and d.endpoint is not None
        out.append("C" if d.canary else "M")
    return "".join(out)


def _canary_router(ann: dict[str, str], *extra: object) -> Router:
    return Router(resources(*simple_backend("main", ["10.0.0.1"]),
                            *simple_backend("can", ["10.1.0.1"]),
                            ingress("m", [("a.test", "/", "Prefix", "main", 80)]),
                            canary("c", "a.test", "/", "can", 80, ann), *extra))


def test_header_value_beats_pattern_and_always_never_need_neither() -> None:
    # balancer.lua route_to_alternative_balancer: "if traffic_shaping_policy.headerValue and
    # #traffic_shaping_policy.headerValue > 0 then if ...headerValue == header then return true
    # end elseif ...headerPattern ... elseif header == "always" then return true elseif header
    # == "never" then return false end" - then the cookie, then the weight.
    r = _canary_router({P + "canary-by-header": "X-C", P + "canary-by-header-value": "v1",
                        P + "canary-by-header-pattern": "^v2", P + "canary-weight": "0"})
    assert _sides(r, 2, [("x-c", "v1")]) == "CC"
    assert _sides(r, 2, [("x-c", "v2")]) == "MM"        # the pattern is ignored (and warned)
    assert _sides(r, 2, [("x-c", "always")]) == "MM"    # a value is set: "always" means nothing
    assert any("canary-by-header-pattern" in w.field for w in r.warnings)
    r = _canary_router({P + "canary-by-header": "X-C", P + "canary-weight": "100"})
    assert _sides(r, 2, [("x-c", "never")]) == "MM"
    assert _sides(r, 2, [("x-c", "Always")]) == "CC"    # case-sensitive: falls to the weight


def test_second_canary_and_canary_default_backend_are_reported_not_served() -> None:
    # The oldest canary of a rule serves (balancer.lua: "TODO: support traffic shaping for n > 1
    # alternative backends ... balancer.alternative_backends[1]"); the other is a diagnostic.
    second = canary("c2", "a.test", "/", "main", 80, {P + "canary-weight": "0"})
    second = type(second)(meta("c2", annotations=second.metadata.annotations, age=2),
                          second.spec)
    r = _canary_router({P + "canary-weight": "100"}, second)
    assert _sides(r, 2) == "CC"
    assert any(d.object == "Ingress default/c2" for d in r.table.diagnostics)
    # A canary Ingress's defaultBackend is reported and ignored (RouteTable's rule; ingress-nginx
    # would merge it into the catch-all server's "/" location).
    cdef = ingress("cd", annotations={P + "canary": "true", P + "canary-weight": "100"},
                   default=("can", 80), age=3)
    r = Router(resources(*simple_backend("main", ["10.0.0.1"]),
                         *simple_backend("can", ["10.1.0.1"]),
                         ingress("m", default=("main", 80)), cdef))
    assert _sides(r, 2) == "MM"
    assert any(d.field == "spec.defaultBackend" for d in r.table.diagnostics)


def test_named_target_port_differing_between_slices() -> None:
    # Pods of one Service can number a named container port differently; the EndpointSlice
    # controller then writes one slice per port set, and pods without the port in a slice
    # with no ports (which, for a named targetPort, serves nothing: endpointslices.go uses an
    # empty slice's ports only "if ... port.TargetPort.Type == intstr.Int").
    ix = idx(service("web", [ServicePort(80, "http", "web")]),
             slice_("a", "web", ["10.0.0.1"], [("http", 8080)]),
             slice_("b", "web", ["10.0.0.2"], []),
             slice_("c", "web", ["10.0.0.3", "10.0.0.1"], [("http", 9090)]))
    es = ix.resolve("default", "web", 80)
    assert es.endpoints == (("10.0.0.1", 8080), ("10.0.0.1", 9090), ("10.0.0.3", 9090))
    assert es.port == 8080  # the first endpoint's, for display
