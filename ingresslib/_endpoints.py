"""Service port -> EndpointSlice ports -> ready endpoints (SEMANTICS §6).

"The backend port (number or name) resolves through the Service's ``spec.ports`` to the target
port; endpoints come from EndpointSlices labelled ``kubernetes.io/service-name`` (port matched by
name) or from v1 Endpoints. Only ready endpoints (``conditions.ready`` not false) are used."

As in ingress-nginx, traffic goes straight to the pod IPs; the ClusterIP is used only when the
Ingress asks for it with ``nginx.ingress.kubernetes.io/service-upstream: "true"``.

Everything here is pure and runs at update time, never on the request path.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from operator import attrgetter

from ._goparse import ascii_digits, normalize_string
from ._models import (
    EndpointConditions,
    EndpointPort,
    EndpointSlice,
    Endpoints,
    Service,
    ServicePort,
)
from ._resources import Resources
from ._table import Diagnostic, _last_definitions, _namespaced_key
from ._validate import canonical_ip, is_dns1123_subdomain

__all__ = [
    "EndpointSet",
    "EndpointIndex",
    "is_ready",
    "external_name_problem",
    "fqdn_address_problem",
    "fqdn_slice_notes",
    "parse_weights",
    "last_slices",
    "duplicate_notes",
    "slice_key",
    "SERVICE_UPSTREAM_ANNOTATION",
    "ENDPOINT_WEIGHTS_ANNOTATION",
    "DEFAULT_BACKEND_ANNOTATION",
    "custom_default_backend",
]

SERVICE_UPSTREAM_ANNOTATION = "nginx.ingress.kubernetes.io/service-upstream"
#: The Service (in the Ingress's namespace) that answers for a rule whose backend has no ready
#: endpoint (ingress-nginx internal/ingress/annotations/defaultbackend/main.go).
DEFAULT_BACKEND_ANNOTATION = "nginx.ingress.kubernetes.io/default-backend"
#: ingresslib's own Service annotation giving endpoints weights (``"10.0.0.1=3, 10.0.0.2:8080=1"``);
#: Kubernetes endpoints carry no weight, so this is the only source. Unlisted endpoints weigh 1.
ENDPOINT_WEIGHTS_ANNOTATION = "ingresslib.io/endpoint-weights"

Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class EndpointSet:
    """The ready endpoints of one backend (Service + port), resolved at update time."""

    namespace: str
    service: str | None
    #: The numeric target port every endpoint listens on, or None when it cannot be resolved
    #: (no such Service/port, or a named target port with no endpoint to name it).
    port: int | None
    #: Ready ``(ip, port)`` pairs, deduplicated, in a stable order (sorted).
    endpoints: tuple[Address, ...] = ()
    #: One positive weight per endpoint (all 1 unless the Service says otherwise).
    weights: tuple[int, ...] = ()
    #: Why there is no endpoint, for diagnostics (``"Service default/web not found"``,
    #: ``"Service default/web has no ready endpoint: 3 endpoints, none ready"``).
    reason: str | None = None
    #: True when the weights differ (smooth weighted round-robin applies); set by the builder.
    weighted: bool = False
    #: Per endpoint, the ``hostname`` its EndpointSlice endpoint (or v1 Endpoints address)
    #: gives, None where it gives none; empty (the common case) when no endpoint has one.
    #: ``upstream-hash-by-use-hostname`` keys the hash ring by it (``_balance_hash``).
    hostnames: tuple[str | None, ...] = ()


class _EndpointSetInProgress:
    """An EndpointSet under construction: the same slots, minus the frozen ``__setattr__``."""

    __slots__ = EndpointSet.__slots__

    def __init__(self, namespace: str, service: str | None, port: int | None,
                 endpoints: tuple[Address, ...], weights: tuple[int, ...], reason: str | None,
                 weighted: bool, hostnames: tuple[str | None, ...]) -> None:
        self.namespace = namespace
        self.service = service
        self.port = port
        self.endpoints = endpoints
        self.weights = weights
        self.reason = reason
        self.weighted = weighted
        self.hostnames = hostnames


def _new_endpoint_set(namespace: str, service: str | None, port: int | None,
                      endpoints: tuple[Address, ...], weights: tuple[int, ...],
                      reason: str | None, weighted: bool,
                      hostnames: tuple[str | None, ...] = ()) -> EndpointSet:
    """``EndpointSet(...)`` with every field given, in a third of the time (~0.5 us instead of
    ~1.6: the frozen dataclass ``__init__`` stores each field through ``object.__setattr__``),
    as ``_table._new_match`` builds a Match: plain stores on a twin with the same slots, then
    ``__class__`` assignment (which CPython checks: same layout or TypeError). A build resolves
    one per backend - 10,000 when every rule has its own Service. tests/test_router_build.py
    checks the result equals ``EndpointSet(...)``."""
    e = _EndpointSetInProgress(namespace, service, port, endpoints, weights, reason, weighted,
                               hostnames)
    e.__class__ = EndpointSet  # type: ignore[assignment]
    return e  # type: ignore[return-value]


def is_ready(conditions: EndpointConditions) -> bool:
    """``conditions.ready``: "nil should be interpreted as true" (EndpointConditions doc).

    The same doc says ready "should never be true for terminating endpoints", so an endpoint that
    says ``terminating: true`` and leaves ``ready`` unset is not ready either; ``serving`` is
    ignored (ingress-nginx also routes on ``ready`` only).
    """
    if conditions.ready is None:
        return conditions.terminating is not True
    return conditions.ready


def _is_loopback(name: str) -> bool:
    """``localhost`` or a loopback IP literal (``127.0.0.0/8``, ``::1``), as Go's
    ``net.IP.IsLoopback`` reads it: an IPv4-mapped ``::ffff:127.0.0.1`` is IPv4 loopback too
    (``if ip4 := ip.To4(); ip4 != nil { return ip4[0] == 127 }``), where Python 3.11's
    ``is_loopback`` says no."""
    host = name.strip().rstrip(".").lower()
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def _reaches_this_host(name: str) -> str | None:
    """Why connecting to ``name`` would reach this host although ingress-nginx's loopback test
    lets it through, or None.

    The proxy connects through the C resolver (``loop.create_connection`` -> ``getaddrinfo``),
    which reads numbers ``inet_aton``'s way: ``127.1``, ``0x7f.0.0.1``, ``0177.0.0.1``,
    ``2130706433`` are all 127.0.0.1 to it. Kubernetes takes them for DNS names (they are valid
    RFC 1123 subdomains, so the API server accepts them as ``externalName``), and so does
    ingress-nginx (Go's strict ``net.ParseIP`` gives nil, nginx's resolver looks the name up
    in DNS), so there they never reach the loopback. ``AI_NUMERICHOST`` gives exactly the
    reading the connect will make, with no DNS query. An address read that way that is not
    the name as Kubernetes reads it is refused whatever it is (``010.0.0.1`` is 8.0.0.1 to
    the C resolver, a DNS name to Kubernetes: no host anyone meant).

    Also refused: the unspecified addresses (``0.0.0.0``, ``::``: on Linux a connect to them
    reaches this host, the very thing the loopback test is there to stop), and RFC 6761
    ``*.localhost`` names, which resolvers may answer with the loopback (nss-myhostname,
    systemd-resolved do).
    """
    host = name.strip().lower()
    if host.rstrip(".").endswith(".localhost"):
        return "is a localhost name (RFC 6761)"
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM,
                                   flags=socket.AI_NUMERICHOST)
    except (OSError, UnicodeError, ValueError):
        return None  # not a numeric address: a DNS name, looked up when connecting
    for info in infos:
        addr = str(info[4][0]).partition("%")[0]
        ip = ipaddress.ip_address(addr)
        mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
        if ip.is_unspecified or (mapped is not None and mapped.is_unspecified):
            return f"is the unspecified address {ip} (a connect to it reaches this host)"
        if ip.is_loopback or (mapped is not None and mapped.is_loopback):
            return f"is read by the C resolver as the loopback address {ip}"
        if not _same_ip(host, ip):
            return (f"is a DNS name to Kubernetes but the C resolver reads it as the address "
                    f"{ip}")
    return None


def _same_ip(text: str, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    try:
        return ipaddress.ip_address(text) == ip
    except ValueError:
        return False


def _name_problem(name: str) -> str | None:
    """Why the proxy must not connect to host ``name`` (``"is a loopback name"``), or None."""
    if _is_loopback(name):
        # ingress-nginx endpointslices.go: "if ip := net.ParseIP(s.Spec.ExternalName);
        # s.Spec.ExternalName == "localhost" || (ip != nil && ip.IsLoopback()) {
        # klog.Errorf("Invalid attempt to use localhost name ..."); return upsServers }"
        # - a Service must not make the proxy connect to its own host.
        return "is a loopback name"
    if not _is_dns_name(name):
        return "is no IP and no valid DNS name (RFC 1123 subdomain)"
    return _reaches_this_host(name)


def external_name_problem(name: str) -> str | None:
    """Why an ExternalName Service's ``externalName`` gets no endpoint, or None when it can be
    proxied to."""
    why = _name_problem(name)
    return None if why is None else f"ExternalName {name!r} {why}; refused"


def fqdn_address_problem(address: str) -> str | None:
    """Why an endpoint address of an ``addressType: FQDN`` EndpointSlice gets no traffic, or
    None when it can be proxied to.

    The rule of ``external_name_problem``: an FQDN slice is the other way a namespace user can
    hand the proxy a host name, and the API server's FQDN check (IsFullyQualifiedDomainName:
    an RFC 1123 subdomain of two labels or more) lets ``127.1``, ``127.0.0.1``, ``0.0.0.0`` or
    ``x.localhost`` through. The host checked is the one the connect uses (``canonical_ip``:
    ``010.0.0.1`` is 10.0.0.1 there, as in an IPv4 slice), so nothing refused is reached and
    nothing reached is left unchecked. Case-folded first: DNS names are case-insensitive
    (RFC 4343), and an FQDN slice's ``Backend.Example.com`` has always been proxied to (an
    ExternalName's is refused, as ingress-nginx refuses it)."""
    why = _name_problem(canonical_ip(address).lower())
    return None if why is None else f"FQDN address {address!r} {why}; refused"


def fqdn_slice_notes(slices: Iterable[EndpointSlice]) -> list[Diagnostic]:
    """A warning per endpoint of an FQDN EndpointSlice among ``slices`` whose address gets no
    traffic (``fqdn_address_problem``), ready or not (it is refused the moment it is ready),
    in order. ``slices`` are the definitions in use (``last_slices``)."""
    out: list[Diagnostic] = []
    for sl in slices:
        if sl.address_type != "FQDN":
            continue
        for i, ep in enumerate(sl.endpoints):
            # Only the first address is used (EndpointIndex._from_slices).
            problem = fqdn_address_problem(ep.addresses[0]) if ep.addresses else None
            if problem is not None:
                out.append(Diagnostic(f"EndpointSlice {sl.metadata.ref}",
                                      f"endpoints[{i}].addresses[0]", problem))
    return out


def _find_service_port(svc: Service, port: int | str | None, protocol: str = "TCP"
                       ) -> ServicePort | None:
    # Ingress ServiceBackendPort: "Name is the name of the port on the Service" / "Number is the
    # numerical port number (e.g. 80) on the Service" - both name the Service's port, never the
    # container's.
    # One number can be listed twice, once per protocol (DNS: 53/UDP and 53/TCP). HTTP goes over
    # TCP (ingress-nginx serviceEndpoints: "getEndpointsFromSlices(svc, &servicePort,
    # apiv1.ProtocolTCP, ...)"), UDP services over UDP (getStreamServices: "if sp.Port ==
    # int32(targetPort) { if sp.Protocol == proto {"; by name the same), so the port of
    # ``protocol`` wins whatever the order; another protocol's port is returned only when none
    # of that number (name) has it, for the reason to say so.
    if port is None:
        # A Service with a single unnamed port is addressed by number only.
        return None
    by_number = isinstance(port, int)
    found: ServicePort | None = None
    for sp in svc.spec.ports:
        if (sp.port if by_number else sp.name) == port:
            if sp.protocol == protocol:
                return sp
            if found is None:
                found = sp
    return found


def _external_name_target(sp: ServicePort, fixed_up: bool) -> int | None:
    """The port an ExternalName Service's port ``sp`` is proxied to: its numeric
    ``targetPort``, else (none given: the API server defaults it to ``port``) its ``port``; a
    named one only where ingress-nginx turns it into ``port`` (``fixed_up``), else None.

    ingress-nginx getEndpointsFromSlices: "targetPort := port.TargetPort.IntValue()" and
    "Port: fmt.Sprintf("%v", targetPort)" - a name's IntValue() is 0: an upstream at port 0,
    logged nowhere when built, that no connection reaches (balancer.lua's set_current_peer
    of "ADDRESS:0" fails, "error while setting current upstream peer", and nginx's
    placeholder peer answers 502). Only externalNamePorts' by-name lookup (an
    HTTP backend naming the Service port) fixes it up: "if tp.IntValue() == 0 { tp =
    intstr.FromInt(int(svcPort.Port)) }" and returns that tp; its by-number lookup computes
    the same tp but returns "TargetPort: svcPort.TargetPort" (the name), and a TCP/UDP
    services entry (getStreamServices) passes the Service's port as it is."""
    if isinstance(sp.target_port, int):
        return sp.target_port
    if sp.target_port is None or fixed_up:
        return sp.port
    return None


def _is_dns_name(name: str) -> bool:
    """ingress-nginx endpointslices.go, for ExternalName Services: "if
    net.ParseIP(s.Spec.ExternalName) == nil { externalName := strings.TrimSuffix(
    s.Spec.ExternalName, ".") if errs := validation.IsDNS1123Subdomain(externalName); len(errs)
    > 0 { klog.Errorf("Invalid DNS name %s: %v", ...); return upsServers } }" - an IP, or a
    lower-case RFC 1123 name (one trailing dot allowed)."""
    if "%" not in name:  # Go's net.ParseIP takes no IPv6 zone ("fe80::1%eth0"); Python's does
        try:
            ipaddress.ip_address(name)
            return True
        except ValueError:
            pass
    return not is_dns1123_subdomain(name.removesuffix("."))


def parse_weights(text: str | None) -> tuple[dict[Address, int], dict[str, int], list[str]]:
    """Parse :data:`ENDPOINT_WEIGHTS_ANNOTATION`: ``(by ip:port, by ip, errors)``."""
    by_addr: dict[Address, int] = {}
    by_ip: dict[str, int] = {}
    errors: list[str] = []
    if not text:
        return by_addr, by_ip, errors
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.rpartition("=")
        try:
            weight = int(value.strip())
        except ValueError:
            weight = 0
        if not sep or weight <= 0 or not key.strip():
            errors.append(f"invalid weight entry {item!r} (want IP[:PORT]=POSITIVE_INT)")
            continue
        key = key.strip()
        host, colon, port = key.rpartition(":")
        # "[fd00::1]:8080" or "10.0.0.1:8080" carry a port; a bare IPv6 has several colons.
        # The address is read as the endpoints' are (canonical_ip: "FD00:0::1" is fd00::1,
        # "010.0.0.1" is 10.0.0.1), so a weight names the endpoint however it is written.
        if colon and ascii_digits(port) and (host.startswith("[") or ":" not in host):
            # (ASCII digits only: str.isdigit() also takes "²", which int() refuses; and at
            # most a port's worth, int() refusing 4,301 digits with a ValueError out of the
            # Router: either is a bad entry, as a bad weight is.)
            number = port.lstrip("0") or "0"
            if len(number) > 5 or int(number) > 65535:
                errors.append(f"invalid weight entry {item!r} (want IP[:PORT]=POSITIVE_INT; "
                              "the port is past 65535)")
                continue
            by_addr[(canonical_ip(host.strip("[]")), int(number))] = weight
        else:
            by_ip[canonical_ip(key.strip("[]"))] = weight
    return by_addr, by_ip, errors


#: An EndpointSlice's identity: its own ``(namespace, name)``, not its Service's (attrgetter:
#: C speed, with ``map`` no Python frame per slice; a build reads 10,000 of them).
slice_key: Callable[[EndpointSlice], tuple[str, str]] = attrgetter("metadata.namespace",
                                                                  "metadata.name")


def last_slices(slices: Sequence[EndpointSlice]) -> Iterable[EndpointSlice]:
    """``slices`` with one object per ``(namespace, name)``: the last definition, as for every
    kind (README: "the same object given twice ... counts once: the later definition wins").
    Merging two versions of one slice would keep an endpoint the newer one dropped or marks not
    ready. Deduplicated before grouping by Service: a newer definition that moved the slice to
    another Service (or dropped the label) takes it away from the old one."""
    last = dict(zip(map(slice_key, slices), slices))
    return slices if len(last) == len(slices) else last.values()


def duplicate_notes(res: Resources) -> list[Diagnostic]:
    """A warning per Service, EndpointSlice or v1 Endpoints given twice (``"EndpointSlice
    default/web-1: defined 2 times; the last definition is used"``), as the table gives one per
    Ingress given twice; in name order, so they do not depend on the input order."""
    return (_last_definitions(res.services, _namespaced_key, "Service")[1]
            + _last_definitions(res.endpoint_slices, _namespaced_key, "EndpointSlice")[1]
            + _last_definitions(res.endpoints, _namespaced_key, "Endpoints")[1])


class EndpointIndex:
    """Services, EndpointSlices and Endpoints of one ``Resources``, indexed by ``(ns, name)``;
    an object given twice counts once, the later definition winning."""

    __slots__ = ("_services", "_slices", "_endpoints", "_cache")

    def __init__(self, res: Resources) -> None:
        self._services: dict[tuple[str, str], Service] = {
            (s.metadata.namespace, s.metadata.name): s for s in res.services
        }
        self._slices: dict[tuple[str, str], list[EndpointSlice]] = {}
        for sl in last_slices(res.endpoint_slices):
            name = sl.service_name
            if name:
                self._slices.setdefault((sl.metadata.namespace, name), []).append(sl)
        self._endpoints: dict[tuple[str, str], Endpoints] = {
            (e.metadata.namespace, e.metadata.name): e for e in res.endpoints
        }
        self._cache: dict[tuple[str, str, int | str | None, bool, str, bool], EndpointSet] = {}

    def service(self, namespace: str, name: str) -> Service | None:
        return self._services.get((namespace, name))

    def resolve(self, namespace: str, service: str | None, port: int | str | None,
                service_upstream: bool = False, protocol: str = "TCP", *,
                stream: bool = False) -> EndpointSet:
        """The ready endpoints of backend ``service:port`` in ``namespace`` (memoised).
        ``protocol``: the Service port's and the endpoint ports' (HTTP and TCP services: TCP;
        UDP services: ``"UDP"``, ``_serve_udp``). ``stream``: a TCP or UDP services entry
        (ingress-nginx getStreamServices), not an HTTP backend: an ExternalName Service's port
        is then one of its own, of ``protocol``, never made up (externalNamePorts is HTTP's)."""
        key = (namespace, service or "", port, service_upstream, protocol, stream)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = self._resolve(namespace, service, port, service_upstream,
                                                     protocol, stream)
        return found

    def _resolve(self, namespace: str, service: str | None, port: int | str | None,
                 service_upstream: bool, protocol: str = "TCP", stream: bool = False
                 ) -> EndpointSet:
        if service is None:
            return EndpointSet(namespace, None, None, reason="resource backend")
        svc = self._services.get((namespace, service))
        if svc is None:
            return EndpointSet(namespace, service, None,
                               reason=f"Service {namespace}/{service} not found")
        sp = _find_service_port(svc, port, protocol)
        ext_name = svc.spec.external_name if svc.spec.type == "ExternalName" else None
        # ingress-nginx gives an HTTP backend on an ExternalName Service externalNamePorts'
        # port, always TCP; a stream entry gets the Service's own port of its protocol or none
        # (getStreamServices: "for i := range svc.Spec.Ports { ... if sp.Port ==
        # int32(targetPort) { if sp.Protocol == proto {" - else "does not have any active
        # Endpoint": skipped).
        # (HTTP goes over TCP: a UDP resolve is a stream's, ``stream`` or not.)
        http_external_name = bool(ext_name) and not stream and protocol == "TCP"
        if sp is None and http_external_name and isinstance(port, int):
            # externalNamePorts: "// ExternalName without port / return
            # &apiv1.ServicePort{Protocol: "TCP", Port: int32(port), TargetPort:
            # intstr.FromInt(port)}" - such Services often list no ports at all.
            sp = ServicePort(port=port, target_port=port)
        if sp is None:
            # (No hint where ingress-nginx matches no targetPort either: an ExternalName's and
            # a stream entry's lookups, and a ClusterIP dialed at the backend's number.)
            hint = "" if ext_name or stream or protocol != "TCP" or (
                service_upstream and isinstance(port, int) and _cluster_ip(svc) is not None
            ) else _target_port_hint(svc, port)
            return EndpointSet(namespace, service, None,
                               reason=f"Service {namespace}/{service} has no port "
                               f"{_wanted_port(port)} (its ports: {_ports_text(svc.spec.ports)})"
                               + hint)
        if sp.protocol != protocol and not http_external_name:
            # HTTP goes over TCP: no endpoint of this port can take it (_TCP_ONLY below); a
            # stream service's port is of its own protocol (getStreamServices), ExternalName too
            # (externalNamePorts, which makes any port TCP, is HTTP's only).
            return EndpointSet(namespace, service, None,
                               reason=f"Service {namespace}/{service} port {port!r} is "
                               f"{sp.protocol}, not {protocol}")
        if ext_name:
            problem = external_name_problem(ext_name)
            if problem is not None:
                return EndpointSet(svc.metadata.namespace, svc.metadata.name, None,
                                   reason=f"Service {svc.metadata.namespace}/{svc.metadata.name}"
                                   f": {problem}")
            target = _external_name_target(sp, http_external_name and isinstance(port, str))
            if target is None:
                return EndpointSet(svc.metadata.namespace, svc.metadata.name, None,
                                   reason=f"Service {svc.metadata.namespace}/{svc.metadata.name}"
                                   f": ExternalName port {sp.port} has the named targetPort "
                                   f"{sp.target_port!r}: ingress-nginx gives its upstream port "
                                   "0 (TargetPort.IntValue()), which no connection reaches; "
                                   "refused")
            return self._finish(svc, target, [(ext_name, target)])
        if service_upstream:
            cip = _cluster_ip(svc)
            if cip is not None:
                # "service-upstream: true" - the ClusterIP at the Service port; kube-proxy does
                # the balancing, so there is exactly one endpoint. Read as a pod IP is
                # (canonical_ip): the API server accepts "010.96.0.10" (ParseIPSloppy), which
                # is 10.96.0.10 to ingress-nginx (balancer.lua set_current_peer, nginx's
                # ngx_inet_addr: decimal octets) but 8.96.0.10 to the C resolver the proxy
                # would hand it to, being no inet_pton literal.
                return self._finish(svc, sp.port, [(canonical_ip(cip), sp.port)])
            # Headless (or unknown) ClusterIP: fall back to the pods, as ingress-nginx does.
        numeric_target = sp.target_port if isinstance(sp.target_port, int) else (
            sp.port if sp.target_port is None else None)
        # The endpoints' host names, for upstream-hash-by-use-hostname: filled only for the
        # endpoints that have one (StatefulSet pods behind a headless Service, mostly).
        hosts: dict[Address, str] = {}
        addrs = self._from_slices(svc, sp, numeric_target, hosts, protocol)
        if addrs is None:
            addrs = self._from_endpoints(svc, sp, hosts, protocol)
        if addrs is None:
            addrs = []
        resolved: int | None = numeric_target
        if resolved is None and addrs:
            # Named targetPort: the endpoints name the container port; they agree per Service
            # port unless pods disagree, in which case the first (sorted) endpoint's port is shown.
            resolved = min(addrs)[1]
        return self._finish(svc, resolved, addrs, sp, numeric_target, hosts, protocol)

    def _from_slices(self, svc: Service, sp: ServicePort, numeric_target: int | None,
                     hosts: dict[Address, str] | None = None, protocol: str = "TCP"
                     ) -> list[Address] | None:
        # _TCP_ONLY: ingress-nginx controller.go serviceEndpoints calls
        # "getEndpointsFromSlices(svc, &servicePort, apiv1.ProtocolTCP, ...)", which skips other
        # ports: "if !reflect.DeepEqual(*epPort.Protocol, proto) { continue }" - HTTP goes over
        # TCP only; UDP services ask for ``protocol`` "UDP" (getStreamServices passes its
        # ``proto``). (The same rule applies to v1 Endpoints below.)
        slices = self._slices.get((svc.metadata.namespace, svc.metadata.name))
        if not slices:
            return None
        want = sp.name or ""
        out: list[Address] = []
        for sl in slices:
            if sl.address_type not in ("IPv4", "IPv6", "FQDN"):
                continue
            # EndpointPort.name "must match the name of the port in the Service" - an unnamed
            # Service port appears as name "" (or absent) in the slice.
            port_no = None
            if not sl.ports:
                # EndpointSlice.ports: "When ports is empty, it indicates that there are no
                # defined ports"; ingress-nginx then uses the Service's numeric targetPort
                # ("if len(eps.Ports) == 0 && port.TargetPort.Type == intstr.Int { ... ports =
                # append(ports, port.TargetPort.IntVal)").
                port_no = numeric_target
            for ep_port in sl.ports:
                if ((ep_port.name or "") == want and ep_port.port is not None
                        and ep_port.protocol == protocol):  # HTTP: TCP ports only (_TCP_ONLY)
                    port_no = ep_port.port
                    break
            if port_no is None:
                continue
            if sl.address_type == "FQDN":
                # A host name the proxy must not connect to (its own host) gets no traffic;
                # Router.warnings says so (fqdn_slice_notes).
                for ep in sl.endpoints:
                    if ep.addresses and is_ready(ep.conditions) \
                            and fqdn_address_problem(ep.addresses[0]) is None:
                        out.append((canonical_ip(ep.addresses[0]), port_no))
                        if ep.hostname and hosts is not None:
                            hosts.setdefault(out[-1], ep.hostname)
                continue
            for ep in sl.endpoints:
                if not is_ready(ep.conditions):
                    continue
                # "addresses ... consumers must treat them as interchangeable ... use the first".
                # Kubernetes sets exactly one; take the first as kube-proxy does.
                if ep.addresses:
                    out.append((canonical_ip(ep.addresses[0]), port_no))
                    if ep.hostname and hosts is not None:
                        # ingress-nginx endpointslices.go: "Hostname: ep.Hostname" on each
                        # upstream endpoint (chash.lua keys the ring by it).
                        hosts.setdefault(out[-1], ep.hostname)
        return out

    def _from_endpoints(self, svc: Service, sp: ServicePort,
                        hosts: dict[Address, str] | None = None, protocol: str = "TCP"
                        ) -> list[Address] | None:
        eps = self._endpoints.get((svc.metadata.namespace, svc.metadata.name))
        if eps is None:
            return None
        want = sp.name or ""
        out: list[Address] = []
        for subset in eps.subsets:
            port_no = None
            for ep_port in subset.ports:
                if ((ep_port.name or "") == want and ep_port.port is not None
                        and ep_port.protocol == protocol):
                    port_no = ep_port.port
                    break
            if port_no is None and len(subset.ports) == 1 and subset.ports[0].port is not None \
                    and not want and subset.ports[0].protocol == protocol:
                port_no = subset.ports[0].port
            if port_no is None:
                continue
            # Only ``addresses``; ``notReadyAddresses`` are by definition not ready.
            out.extend((canonical_ip(a.ip), port_no) for a in subset.addresses)
            if hosts is not None:
                for a in subset.addresses:
                    if a.hostname:
                        hosts.setdefault((canonical_ip(a.ip), port_no), a.hostname)
        return out

    def _finish(self, svc: Service, port: int | None, addrs: list[Address],
                sp: ServicePort | None = None, numeric_target: int | None = None,
                hosts: dict[Address, str] | None = None, protocol: str = "TCP") -> EndpointSet:
        # Deduplicate (an address can sit in two slices while they are being rewritten) and sort,
        # so balancing does not depend on the order objects arrived in.
        unique = tuple(sorted(set(addrs))) if addrs else ()
        meta = svc.metadata
        text = meta.annotations.get(ENDPOINT_WEIGHTS_ANNOTATION)
        weights = (1,) * len(unique)
        weighted = False
        if text:  # without the annotation (the common case) every weight is 1
            by_addr, by_ip, _ = parse_weights(text)
            if by_addr or by_ip:
                weights = tuple(by_addr.get(a, by_ip.get(a[0], 1)) for a in unique)
                weighted = len(set(weights)) > 1
        # Why there is none, worked out only then (``_why_none``): a backend with endpoints
        # pays nothing for it.
        reason = None if unique else (
            f"Service {meta.namespace}/{meta.name} has no ready endpoint"
            + ("" if sp is None else f": {self._why_none(svc, sp, numeric_target, protocol)}"))
        hostnames = tuple([hosts.get(a) for a in unique]) if hosts else ()
        return _new_endpoint_set(meta.namespace, meta.name, port, unique, weights, reason,
                                 weighted, hostnames)

    # --- why a backend has no endpoint (only asked when it has none) ---------------------------

    def _why_none(self, svc: Service, sp: ServicePort, numeric_target: int | None,
                  protocol: str = "TCP") -> str:
        """What the objects say of Service ``svc`` port ``sp`` that has no ready endpoint: the
        same walk as ``_from_slices``/``_from_endpoints``, counting what each step dropped.
        Slices are read in name order, so the text does not depend on the order they came in
        (an index over one Service's objects gives the text the whole one gives)."""
        key = (svc.metadata.namespace, svc.metadata.name)
        slices = self._slices.get(key)
        if slices:
            return _slices_why(sorted(slices, key=slice_key), sp, numeric_target, protocol)
        eps = self._endpoints.get(key)
        if eps is not None:
            return _endpoints_why(eps, sp, protocol)
        return (f"no EndpointSlice labelled kubernetes.io/service-name={svc.metadata.name} "
                f"(and no v1 Endpoints)")


#: At most this many objects are named in one reason; the rest are counted.
_NAMED = 3


def _wanted_port(port: int | str | None) -> str:
    return f"named {port!r}" if isinstance(port, str) else str(port)


def _cluster_ip(svc: Service) -> str | None:
    """The ClusterIP ``service-upstream`` dials, None for none (unset, or a headless
    Service's "None": ingress-nginx getServiceClusterEndpoint errors, "no ClusterIP found",
    and the backend falls back to serviceEndpoints, the pods)."""
    cip = svc.spec.cluster_ip
    return cip if cip and cip != "None" else None


def _target_port_hint(svc: Service, port: int | str | None) -> str:
    """For an HTTP backend port that no Service port has: ``"; its port 'http' 80 has
    targetPort 8080, ..."`` when one Service port's ``targetPort`` is it, else "".

    ingress-nginx controller.go serviceEndpoints takes the first Service port with "if
    strconv.Itoa(int(servicePort.Port)) == backendPort || servicePort.TargetPort.String() ==
    backendPort || servicePort.Name == backendPort", so a backend written with the container
    port is served there. ingresslib keeps the Ingress API's reading (ServiceBackendPort: "the
    port on the Service"; by targetPort, ingress-nginx even picks an earlier Service port over
    the one of that number): the backend gets no endpoint, and the warning names the Service
    port it likely means (an ExternalName's and a TCP/UDP services entry's lookups match no
    targetPort there either: no hint for them, nor for ``service-upstream`` with a port
    number, which getServiceClusterEndpoint dials at the ClusterIP as written). Only the
    first such port, if TCP: serviceEndpoints stops at the first match ("break"), and
    getEndpointsFromSlices keeps the slice ports of the HTTP proxy's protocol only ("if
    !reflect.DeepEqual(*epPort.Protocol, proto) { continue }", proto TCP): ingress-nginx
    serves no endpoint for a backend whose first match is a UDP port either."""
    for sp in svc.spec.ports:
        if sp.target_port is not None and sp.target_port == port:
            if sp.protocol != "TCP":
                return ""
            meant = sp.name if isinstance(port, str) and sp.name else sp.port
            return (f"; its port {_port_text(sp.name, sp.port, sp.protocol)} has targetPort "
                    f"{sp.target_port!r}, which ingress-nginx also matches (serviceEndpoints); "
                    f"a backend names the Service's port: use {meant!r}")
    return ""


def _port_text(name: str | None, number: int | None, protocol: str) -> str:
    """``'http' 8080``, ``'' 19002`` (no name), ``'dns' 53/UDP``, ``'http' (no number)``."""
    text = f"{name or ''!r} {number if number is not None else '(no number)'}"
    return text if protocol == "TCP" else f"{text}/{protocol}"


def _ports_text(ports: Sequence[ServicePort] | Sequence[EndpointPort]) -> str:
    if not ports:
        return "none"
    return ", ".join(_port_text(p.name, p.port, p.protocol) for p in ports)


def _want_text(want: str) -> str:
    return (f"named {want!r}" if want else
            "without a name (the Service port has none)")


def _some(items: list[str]) -> str:
    more = len(items) - _NAMED
    return "; ".join(items[:_NAMED]) + (f"; and {more} more" if more > 0 else "")


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 'es' if what.endswith('s') else 's'}"


def _slices_why(slices: Sequence[EndpointSlice], sp: ServicePort,
                numeric_target: int | None, protocol: str = "TCP") -> str:
    want = sp.name or ""
    unusable: list[str] = []  # slices no endpoint of which can serve this port
    empty: list[str] = []  # usable slices listing no endpoint
    total = not_ready = refused = no_address = 0
    for sl in slices:
        ref = f"EndpointSlice {sl.metadata.ref}"
        if sl.address_type not in ("IPv4", "IPv6", "FQDN"):
            unusable.append(f"{ref} has addressType {sl.address_type!r} (not IPv4, IPv6 or "
                            "FQDN)")
            continue
        if not sl.ports:
            if numeric_target is None:
                unusable.append(f"{ref} lists no port, and the Service's targetPort "
                                f"{sp.target_port!r} is a name only a slice port can give")
                continue
        elif not any((p.name or "") == want and p.port is not None and p.protocol == protocol
                     for p in sl.ports):
            unusable.append(f"{ref} has no {protocol} port {_want_text(want)} (its ports: "
                            f"{_ports_text(sl.ports)})")
            continue
        if not sl.endpoints:
            empty.append(ref)
        for ep in sl.endpoints:
            total += 1
            if not ep.addresses:
                no_address += 1
            elif not is_ready(ep.conditions):
                not_ready += 1
            else:  # ready, with an address: an FQDN one refused (fqdn_address_problem)
                refused += 1
    parts: list[str] = []
    if total:
        if not_ready == total:
            parts.append(f"{_count(total, 'endpoint')}, none ready" if total > 1 else
                         "1 endpoint, not ready")
        else:
            counts = [f"{n} {what}" for n, what in (
                (not_ready, "not ready"), (no_address, "without an address"),
                (refused, "refused (an FQDN address the proxy must not connect to)")) if n]
            parts.append(f"{_count(total, 'endpoint')}, none usable: {', '.join(counts)}")
    elif empty:
        parts.append(f"{_some(empty)} list{'s' if len(empty) == 1 else ''} no endpoint")
    return _some(parts + unusable)


def _endpoints_why(eps: Endpoints, sp: ServicePort, protocol: str = "TCP") -> str:
    want = sp.name or ""
    ref = f"Endpoints {eps.metadata.ref}"
    matched = False
    not_ready = 0
    ports: list[EndpointPort] = []
    for subset in eps.subsets:
        ports += subset.ports
        ok = any((p.name or "") == want and p.port is not None and p.protocol == protocol
                 for p in subset.ports) or (
            len(subset.ports) == 1 and subset.ports[0].port is not None and not want
            and subset.ports[0].protocol == protocol)
        if ok:
            matched = True
            not_ready += len(subset.not_ready_addresses)
    if not eps.subsets:
        return f"{ref} lists no subset (no address)"
    if not matched:
        return (f"{ref} has no {protocol} port {_want_text(want)} (its ports: "
                f"{_ports_text(ports)})")
    if not_ready:
        return (f"{ref}: {_count(not_ready, 'address')} in notReadyAddresses, none ready"
                if not_ready > 1 else f"{ref}: 1 address, in notReadyAddresses (not ready)")
    return f"{ref} lists no address for this port"


def custom_default_backend(index: EndpointIndex, namespace: str, raw: str
                           ) -> tuple[EndpointSet | None, int | None, str | None]:
    """The ``default-backend`` annotation's backend for an Ingress in ``namespace``: ``(its
    endpoints, its Service port, None)``, or ``(None, None, why it is ignored)``.

    As ingress-nginx: defaultbackend/main.go ``Parse`` reads the Service ``namespace/<value>``
    (``GetStringAnnotation``: each line trimmed) and fails when there is none ("unexpected
    error reading service"); controller.go ``createUpstreams`` takes the Service's first port
    (``location.DefaultBackend.Spec.Ports[0]``; none: "has no ports. Ignoring") and uses the
    backend only when that port has an endpoint ("custom backend is valid only if contains at
    least one endpoint"). The endpoints are read as for a rule backend on that port number.
    """
    name = normalize_string(raw)
    if not name:
        return None, None, "empty Service name; ignored"
    svc = index.service(namespace, name)
    if svc is None:
        return None, None, f"Service {namespace}/{name} not found; ignored"
    if not svc.spec.ports:
        return None, None, f"Service {namespace}/{name} has no ports; ignored"
    port = svc.spec.ports[0].port
    return index.resolve(namespace, name, port), port, None
