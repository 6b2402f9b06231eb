"""Builders for the router tests and benchmark: typed models without YAML."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from types import MappingProxyType

from ingresslib._models import (
    Endpoint,
    EndpointAddress,
    EndpointConditions,
    EndpointPort,
    Endpoints,
    EndpointSlice,
    EndpointSubset,
    HTTPIngressPath,
    Ingress,
    IngressBackend,
    IngressRule,
    IngressServiceBackend,
    IngressSpec,
    ObjectMeta,
    Service,
    ServiceBackendPort,
    ServicePort,
    ServiceSpec,
)
from ingresslib._resources import Resources

P = "nginx.ingress.kubernetes.io/"
_T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def meta(name: str, ns: str = "default", annotations: Mapping[str, str] | None = None,
         labels: Mapping[str, str] | None = None, age: int = 0) -> ObjectMeta:
    return ObjectMeta(name=name, namespace=ns,
                      annotations=MappingProxyType(dict(annotations or {})),
                      labels=MappingProxyType(dict(labels or {})),
                      creation_timestamp=_T0 + timedelta(seconds=age))


def backend(service: str, port: int | str) -> IngressBackend:
    bp = ServiceBackendPort(number=port) if isinstance(port, int) else ServiceBackendPort(name=port)
    return IngressBackend(service=IngressServiceBackend(service, bp))


def ingress(name: str, rules: Sequence[tuple[str | None, str, str, str, int | str]] = (),
            annotations: Mapping[str, str] | None = None, ns: str = "default",
            default: tuple[str, int | str] | None = None, age: int = 0) -> Ingress:
    """``rules``: (host, path, pathType, service, port) tuples, one path each."""
    by_host: dict[str | None, list[HTTPIngressPath]] = {}
    for host, path, ptype, svc, port in rules:
        by_host.setdefault(host, []).append(HTTPIngressPath(backend(svc, port), path, ptype))
    spec = IngressSpec(
        default_backend=backend(*default) if default else None,
        rules=tuple(IngressRule(h, tuple(ps)) for h, ps in by_host.items()))
    return Ingress(meta(name, ns, annotations, age=age), spec)


def canary(name: str, host: str | None, path: str, svc: str, port: int | str,
           annotations: Mapping[str, str], ptype: str = "Prefix", ns: str = "default") -> Ingress:
    ann = {P + "canary": "true"}
    ann.update(annotations)
    return ingress(name, [(host, path, ptype, svc, port)], ann, ns=ns, age=1)


def service(name: str, ports: Iterable[ServicePort] | None = None, ns: str = "default",
            cluster_ip: str | None = "10.96.0.10", annotations: Mapping[str, str] | None = None,
            type: str = "ClusterIP", external_name: str | None = None) -> Service:
    if ports is None:
        ports = [ServicePort(port=80, target_port=8080)]
    return Service(meta(name, ns, annotations), ServiceSpec(tuple(ports), type=type,
                                                            cluster_ip=cluster_ip,
                                                            external_name=external_name))


def slice_(name: str, svc: str, ips: Iterable[str | tuple[str, EndpointConditions]],
           ports: Iterable[tuple[str | None, int]] = ((None, 8080),), ns: str = "default",
           address_type: str = "IPv4") -> EndpointSlice:
    eps = []
    for item in ips:
        if isinstance(item, tuple):
            eps.append(Endpoint((item[0],), item[1]))
        else:
            eps.append(Endpoint((item,)))
    return EndpointSlice(meta(name, ns, labels={"kubernetes.io/service-name": svc}),
                         address_type, tuple(eps),
                         tuple(EndpointPort(port=p, name=n) for n, p in ports))


def endpoints_v1(name: str, ready: Iterable[str], not_ready: Iterable[str] = (),
                 ports: Iterable[tuple[str | None, int]] = ((None, 8080),),
                 ns: str = "default") -> Endpoints:
    subset = EndpointSubset(tuple(EndpointAddress(ip) for ip in ready),
                            tuple(EndpointAddress(ip) for ip in not_ready),
                            tuple(EndpointPort(port=p, name=n) for n, p in ports))
    return Endpoints(meta(name, ns), (subset,))


def resources(*objs: object) -> Resources:
    ing = tuple(o for o in objs if isinstance(o, Ingress))
    svc = tuple(o for o in objs if isinstance(o, Service))
    sl = tuple(o for o in objs if isinstance(o, EndpointSlice))
    ep = tuple(o for o in objs if isinstance(o, Endpoints))
    return Resources(ingresses=ing, services=svc, endpoint_slices=sl, endpoints=ep)


def simple_backend(name: str, ips: Sequence[str], ns: str = "default",
                   annotations: Mapping[str, str] | None = None) -> list[object]:
    """A Service ``name`` (port 80 -> 8080) with one slice of ready ``ips``."""
    return [service(name, ns=ns, annotations=annotations), slice_(f"{name}-1", name, ips, ns=ns)]


def big_resources(n_rules: int, n_endpoints: int = 3,
                  annotations: Mapping[str, str] | None = None,
                  canary_annotations: Mapping[str, str] | None = None) -> Resources:
    """``n_rules`` Prefix rules over 100 hosts, each to its own Service; with
    ``canary_annotations`` every rule also gets a canary Ingress."""
    objs: list[object] = []
    rules = []
    crules = []
    for i in range(n_rules):
        host = f"h{i % 100}.example.test"
        path = f"/p{i}/x"
        rules.append((host, path, "Prefix", f"s{i}", 80))
        crules.append((host, path, "Prefix", f"c{i}", 80))
        ips = [f"10.{i // 250 % 250}.{i % 250}.{k + 1}" for k in range(n_endpoints)]
        objs += simple_backend(f"s{i}", ips)
        if canary_annotations is not None:
            objs += simple_backend(f"c{i}", [f"10.200.{i % 250}.{k + 1}"
                                             for k in range(n_endpoints)])
    objs.append(ingress("big", rules, annotations))
    if canary_annotations is not None:
        ann = {P + "canary": "true"}
        ann.update(canary_annotations)
        objs.append(ingress("big-canary", crules, ann, age=1))
    return resources(*objs)
