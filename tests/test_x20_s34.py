"""Second review of Services and endpoints (session 34, x20), against ingress-nginx
(internal/ingress/controller/endpointslices.go ``getEndpointsFromSlices``, controller.go
``serviceEndpoints`` / ``getServiceClusterEndpoint``) and the EndpointSlice v1 API reference.

Defects found and fixed (the tests below failed before the fix):

* ``service-upstream: "true"`` used the Service's ``spec.clusterIP`` exactly as written, where
  every other endpoint address goes through ``canonical_ip``. A ClusterIP the API server (and
  ``_validate``, ParseIPSloppy) accepts with leading zeros, ``010.96.0.10``, is 10.96.0.10 to
  Kubernetes and to ingress-nginx (balancer.lua ``set_current_peer`` -> nginx ``ngx_inet_addr``
  reads decimal octets), but it is no ``inet_pton`` literal, so the proxy took it for a host
  name and the C resolver read it as octal: 8.96.0.10, another host. IPv6 ones
  (``FD00:0:0::0010``, a group of 5 digits ``xtoi`` takes) likewise reached the resolver or
  were shown and logged unlike the pods' addresses. Now the ClusterIP is read as the pods'
  addresses are (README, the ``service-upstream`` paragraph).
* An Ingress backend port that is no Service port but a Service port's ``targetPort``
  (``port.number: 8080`` for ``80 -> 8080``, a name equal to a named targetPort): ingress-nginx
  serves it (controller.go ``serviceEndpoints`` also compares ``TargetPort.String()``),
  ingresslib answers 503 as the Ingress API reads the port, which stays; but the divergence
  was undocumented and the warning only listed the Service's ports. It now names the Service
  port meant ("its port '' 80 has targetPort 8080, which ingress-nginx also matches
  (serviceEndpoints); a backend names the Service's port: use 80"), for HTTP backends only
  (an ExternalName's lookup, ``externalNamePorts``, and a TCP/UDP services entry's,
  ``getStreamServices``, match no targetPort there either). README row added.

Documented (README rows added, behaviour kept, tests below hold it): an endpoint listing
several ``addresses`` is served at the first only (the API calls them fungible, kube-proxy
does the same; ingress-nginx uses each); ``service-upstream`` with a backend port number the
Service lacks is 503 with the warning (ingress-nginx dials the ClusterIP at that number, where
kube-proxy forwards nothing).

Checked and found right (each against the code and, where it says so, a probe run):

* port matching: an Ingress backend by number or by name resolves through the Service's
  ``spec.ports`` (never a container port); a Service with several ports sends each backend to
  the slice port of its own name (``http`` 8080 / ``admin`` 9000), never the other one; the
  protocol must be TCP for HTTP (53/UDP next to 53/TCP); an unnamed Service port matches the
  slice port named ``""`` (or absent); a name mismatch does not fall back to the numeric
  targetPort (README R26, a documented divergence from ingress-nginx issue 7390's fallback);
* a backend naming a port the Service does not have (``82``, ``'nope'``): no endpoint (503),
  ``Router.warnings`` says "every request answers 503: Service default/web has no port 82
  (its ports: ...)", ``explain`` gives the same ``why``; never another port of the Service;
* a named targetPort that differs between pods: each slice's own port number per endpoint
  (``10.0.0.1:8080``, ``10.0.0.2:8081``); ``Decision.port`` shows the first one (documented);
* a slice with no ``ports``: the Service's numeric targetPort (ingress-nginx: "When ports is
  empty ... using svc targePort if it's a number"); a named one: no endpoint, and the reason
  says why;
* conditions: ``ready: false`` skipped; ``ready`` unset counts as ready unless
  ``terminating: true`` (README R14); ``serving: true, terminating: true, ready: false``
  skipped (ingress-nginx routes on ``ready`` only); ``publishNotReadyAddresses`` needs no
  reading of its own: the EndpointSlice controller then writes ``ready: true`` (and the v1
  Endpoints controller puts the addresses in ``addresses``), which is what is read;
* slices tie to their Service by the ``kubernetes.io/service-name`` label only, in the slice's
  own namespace: a slice labelled for another Service, or in another namespace, gives nothing;
  a slice given twice counts once (the last definition);
* an address in two slices (a rewrite in progress) is one endpoint; addresses are
  ``canonical_ip`` (``010.0.0.4`` is 10.0.0.4, ``FD00::0001`` is fd00::1); IPv4, IPv6 and
  FQDN slices all serve (as in ingress-nginx, which reads no ``addressType``), an FQDN address
  that would reach this host is refused; IPv6 endpoints are dialed as ``(ip, port)`` and shown
  ``[fd00::1]:8080`` in the access log's ``upstream_addr`` and the text explain (the JSON
  ``decision.endpoint`` keeps ``fd00::1:8080``: README says so);
* ``appProtocol`` is not read (ingress-nginx reads ``backend-protocol`` instead);
* v1 Endpoints only when no slice is labelled for the Service; ``notReadyAddresses`` skipped;
* ExternalName: loopback / invalid names refused as ``getEndpointsFromSlices`` does, a port
  made up for a number (``externalNamePorts``), a named targetPort refused (README);
  ``service-upstream`` on an ExternalName or headless Service falls back as ingress-nginx does
  (``getServiceClusterEndpoint`` errors on ``""`` / ``"None"``, then ``serviceEndpoints``);
* a Service without a selector and hand-written slices: read like any other (decoded
  ``protocol`` defaults to TCP, ``conditions`` absent is ready);
* ``Router.update`` (``_router_delta``) resolves a touched Service with the same
  ``EndpointIndex`` function, so the fix holds on the incremental path too (tested below).
"""

from __future__ import annotations

import ingresslib
from ingresslib._endpoints import EndpointIndex
from ingresslib._explain import render_text
from ingresslib._models import Endpoint, EndpointPort, EndpointSlice, ServicePort
from ingresslib._router import Router
from ingresslib._validate import validate_endpoint_slice
from ingresslib.proxy import _server

from _router_helpers import P, ingress, meta, resources, service, slice_

UPSTREAM = {P + "service-upstream": "true"}


def _upstream_endpoints(cluster_ip: str) -> tuple[tuple[str, int], ...]:
    res = resources(service("web", cluster_ip=cluster_ip), slice_("web-1", "web", ["10.0.0.1"]))
    return EndpointIndex(res).resolve("default", "web", 80, True).endpoints


def test_service_upstream_cluster_ip_with_leading_zeros_is_read_as_kubernetes_reads_it() -> None:
    # ParseIPSloppy (the API server, _validate) and nginx's ngx_inet_addr: decimal octets.
    # The C resolver would read "010" as octal: 8.96.0.10.
    assert _upstream_endpoints("010.96.0.10") == (("10.96.0.10", 80),)


def test_service_upstream_ipv6_cluster_ip_is_written_canonically() -> None:
    assert _upstream_endpoints("FD00:0:0::00010") == (("fd00::10", 80),)
    assert _upstream_endpoints("FD00::10") == (("fd00::10", 80),)


def test_service_upstream_endpoint_is_dialed_as_an_address_not_looked_up() -> None:
    # The proxy connects to an inet_pton literal directly and hands anything else to the
    # resolver (_server._connect_name): the ClusterIP must be the former, as pod IPs are.
    for cip in ("010.96.0.10", "10.96.0.010", "FD00:0:0::00010"):
        ((host, _),) = _upstream_endpoints(cip)
        assert _server._is_ip_literal(host), (cip, host)


def test_router_explain_and_update_agree_on_the_cluster_ip() -> None:
    ing = ingress("i", [("a.test", "/", "Prefix", "web", 80)], UPSTREAM)
    res = resources(service("web", cluster_ip="010.96.0.10"),
                    slice_("web-1", "web", ["10.0.0.1"]), ing)
    router = Router(res)
    assert router.route("GET", "a.test", "/").endpoint == ("10.96.0.10", 80)
    doc = ingresslib.explain(res, "http://a.test/")
    assert doc["decision"]["endpoint"] == "10.96.0.10:80"
    assert "endpoint 10.96.0.10:80" in render_text(doc)
    # The incremental path (a Service changed, the table kept) resolves it the same way.
    moved = resources(service("web", cluster_ip="010.96.0.011"),
                      slice_("web-1", "web", ["10.0.0.1"]), ing)
    router.update(moved)
    assert router.route("GET", "a.test", "/").endpoint == ("10.96.0.11", 80)
    assert Router(moved).route("GET", "a.test", "/").endpoint == ("10.96.0.11", 80)


# --- a backend port that is a Service port's targetPort ------------------------------------------


def _no_port_reason(backend_port: int | str, *, stream: bool = False) -> str | None:
    svc = service("web", [ServicePort(80, "http", 8080), ServicePort(81, "admin", "web")])
    res = resources(svc, slice_("web-1", "web", ["10.0.0.1"], [("http", 8080), ("admin", 9000)]))
    eps = EndpointIndex(res).resolve("default", "web", backend_port, stream=stream)
    assert eps.endpoints == () and eps.port is None  # never another port of the Service
    return eps.reason


def test_backend_port_equal_to_a_target_port_says_which_service_port_to_name() -> None:
    # ingress-nginx serviceEndpoints also takes a Service port whose targetPort is the backend
    # port ("servicePort.TargetPort.String() == backendPort"); the Ingress API says the number
    # (name) is the Service's port, which ingresslib keeps: the warning names the one meant.
    by_number = _no_port_reason(8080)
    assert by_number is not None and by_number.startswith(
        "Service default/web has no port 8080 (its ports: 'http' 80, 'admin' 81)")
    assert "port 'http' 80 has targetPort 8080" in by_number
    assert "ingress-nginx" in by_number and "use 80" in by_number
    by_name = _no_port_reason("web")
    assert by_name is not None and "port 'admin' 81 has targetPort 'web'" in by_name
    assert "use 'admin'" in by_name


def test_the_hint_is_given_only_where_it_applies() -> None:
    plain = _no_port_reason(82)
    assert plain == "Service default/web has no port 82 (its ports: 'http' 80, 'admin' 81)"
    # A TCP/UDP services entry: getStreamServices matches port numbers and names only.
    stream = _no_port_reason(8080, stream=True)
    assert stream == "Service default/web has no port 8080 (its ports: 'http' 80, 'admin' 81)"


def test_router_warning_carries_the_hint() -> None:
    svc = service("web", [ServicePort(80, None, 8080)])
    res = resources(svc, slice_("web-1", "web", ["10.0.0.1"]),
                    ingress("i", [("a.test", "/", "Prefix", "web", 8080)]))
    router = Router(res)
    (warning,) = [w for w in router.warnings if w.object == "Ingress default/i"]
    assert "every request answers 503" in warning.message
    assert "port '' 80 has targetPort 8080" in warning.message
    assert router.route("GET", "a.test", "/").endpoint is None


# --- documented divergences (README rows of session 34), held ------------------------------------


def test_an_endpoint_with_several_addresses_is_served_at_its_first_only() -> None:
    # EndpointSlice API: addresses are fungible, "clients may choose to only use the first
    # element" (kube-proxy does); ingress-nginx makes each one an upstream server.
    sl = EndpointSlice(meta("web-1", labels={"kubernetes.io/service-name": "web"}), "IPv4",
                       (Endpoint(("10.0.0.1", "10.0.0.2")), Endpoint(("010.0.0.3",))),
                       (EndpointPort(8080),))
    res = resources(service("web"), sl)
    assert validate_endpoint_slice(sl) == []  # the API server accepts it
    eps = EndpointIndex(res).resolve("default", "web", 80)
    assert eps.endpoints == (("10.0.0.1", 8080), ("10.0.0.3", 8080))


def test_service_upstream_on_a_port_the_service_lacks_is_503_with_a_warning() -> None:
    res = resources(service("web"), slice_("web-1", "web", ["10.0.0.1"]),
                    ingress("i", [("a.test", "/", "Prefix", "web", 81)], UPSTREAM))
    router = Router(res)
    assert router.route("GET", "a.test", "/").endpoint is None
    assert any("Service default/web has no port 81" in w.message for w in router.warnings)
