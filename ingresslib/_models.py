"""Typed, immutable models of the Kubernetes objects ingresslib reads.

Only the fields ingresslib uses are modelled; field names are the API's, in snake_case. Every
model is a frozen, slotted dataclass; map-typed fields (annotations, labels, selectors, Secret
data) are read-only mappings whose keys are kept exactly as written, sequences are tuples. A
model built by hand from a plain dict or list takes its own read-only copy (``__post_init__``),
so the caller's dict can change afterwards without changing the model, a table built from it,
or how a request is routed (``Match.is_canary`` and the proxy read annotations at request time).

Decoding (camelCase or the official client's snake_case ``to_dict()``) and validation live in
``_decode`` and ``_validate``; these classes only hold the result.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

__all__ = [
    "EMPTY_MAP",
    "ObjectMeta",
    "ServiceBackendPort",
    "IngressServiceBackend",
    "TypedLocalObjectReference",
    "IngressBackend",
    "HTTPIngressPath",
    "IngressRule",
    "IngressTLS",
    "IngressSpec",
    "Ingress",
    "IngressClassParameters",
    "IngressClassSpec",
    "IngressClass",
    "ServicePort",
    "ServiceSpec",
    "Service",
    "EndpointConditions",
    "Endpoint",
    "EndpointPort",
    "EndpointSlice",
    "EndpointAddress",
    "EndpointSubset",
    "Endpoints",
    "Secret",
    "PATH_TYPES",
    "DEFAULT_CLASS_ANNOTATION",
    "LEGACY_CLASS_ANNOTATION",
    "SERVICE_NAME_LABEL",
]

EMPTY_MAP: Mapping[str, str] = MappingProxyType({})

#: ``networking.k8s.io/v1`` ``HTTPIngressPath.pathType`` values.
PATH_TYPES = ("Exact", "Prefix", "ImplementationSpecific")
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
LEGACY_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"


@dataclass(frozen=True, slots=True)
class ObjectMeta:
    name: str
    namespace: str = "default"
    annotations: Mapping[str, str] = field(default_factory=lambda: EMPTY_MAP)
    labels: Mapping[str, str] = field(default_factory=lambda: EMPTY_MAP)
    #: None when the manifest has none (files on disk): such objects count as the newest.
    creation_timestamp: datetime | None = None
    resource_version: str | None = None
    uid: str | None = None

    def __post_init__(self) -> None:
        # CONTRACT.md: "typed, immutable model objects".
        _own_maps(self, "annotations", "labels")

    @property
    def ref(self) -> str:
        """``namespace/name``."""
        return f"{self.namespace}/{self.name}"


# --- networking.k8s.io/v1 Ingress ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServiceBackendPort:
    """Exactly one of ``name`` and ``number`` is set (validated)."""

    name: str | None = None
    number: int | None = None

    @property
    def value(self) -> int | str | None:
        # A number of 0 is no number: validateIngressBackend's `hasPortNumber :=
        # backend.Service.Port.Number != 0`, so `{name: http, number: 0}` is valid and names
        # the port "http" (the API server stores it without the number: `json:"number,
        # omitempty"`), which the route must use, not a port 0 no Service has.
        return self.number if self.number else self.name


@dataclass(frozen=True, slots=True)
class IngressServiceBackend:
    name: str
    port: ServiceBackendPort


@dataclass(frozen=True, slots=True)
class TypedLocalObjectReference:
    kind: str
    name: str
    api_group: str | None = None


@dataclass(frozen=True, slots=True)
class IngressBackend:
    """Exactly one of ``service`` and ``resource`` is set (validated)."""

    service: IngressServiceBackend | None = None
    resource: TypedLocalObjectReference | None = None


@dataclass(frozen=True, slots=True)
class HTTPIngressPath:
    backend: IngressBackend
    #: As written in the manifest; None when omitted (only valid for ImplementationSpecific).
    path: str | None = None
    path_type: str | None = None


@dataclass(frozen=True, slots=True)
class IngressRule:
    host: str | None = None
    #: ``http.paths``; None when the rule has no ``http`` (a host-only rule).
    paths: tuple[HTTPIngressPath, ...] | None = None

    def __post_init__(self) -> None:
        _own_tuples(self, "paths")


@dataclass(frozen=True, slots=True)
class IngressTLS:
    hosts: tuple[str, ...] = ()
    secret_name: str | None = None

    def __post_init__(self) -> None:
        _own_tuples(self, "hosts")


@dataclass(frozen=True, slots=True)
class IngressSpec:
    ingress_class_name: str | None = None
    default_backend: IngressBackend | None = None
    rules: tuple[IngressRule, ...] = ()
    tls: tuple[IngressTLS, ...] = ()

    def __post_init__(self) -> None:
        _own_tuples(self, "rules", "tls")


@dataclass(frozen=True, slots=True)
class Ingress:
    metadata: ObjectMeta
    spec: IngressSpec
    kind: str = field(default="Ingress", init=False, repr=False)

    @property
    def class_name(self) -> str | None:
        """``spec.ingressClassName``, else the legacy annotation, else None."""
        if self.spec.ingress_class_name is not None:
            return self.spec.ingress_class_name
        return self.metadata.annotations.get(LEGACY_CLASS_ANNOTATION)


@dataclass(frozen=True, slots=True)
class IngressClassParameters:
    kind: str
    name: str
    api_group: str | None = None
    namespace: str | None = None
    scope: str | None = None


@dataclass(frozen=True, slots=True)
class IngressClassSpec:
    controller: str
    parameters: IngressClassParameters | None = None


@dataclass(frozen=True, slots=True)
class IngressClass:
    metadata: ObjectMeta
    spec: IngressClassSpec
    kind: str = field(default="IngressClass", init=False, repr=False)

    @property
    def is_default(self) -> bool:
        # Exactly "true": the API documents the annotation as a boolean string and
        # ingress-nginx compares it literally.
        return self.metadata.annotations.get(DEFAULT_CLASS_ANNOTATION) == "true"


# --- v1 Service ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServicePort:
    port: int
    name: str | None = None
    #: int, a named container port, or None (defaults to ``port``).
    target_port: int | str | None = None
    protocol: str = "TCP"
    app_protocol: str | None = None
    node_port: int | None = None


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    ports: tuple[ServicePort, ...] = ()
    type: str = "ClusterIP"
    #: What ``service-upstream`` dials (ingress-nginx reads ``Spec.ClusterIP``); "None" for a
    #: headless Service.
    cluster_ip: str | None = None
    selector: Mapping[str, str] = field(default_factory=lambda: EMPTY_MAP)
    external_name: str | None = None
    #: ``spec.loadBalancerSourceRanges`` (CIDRs), read for validation only: the API server
    #: checks it, or else the ``service.beta.kubernetes.io/load-balancer-source-ranges``
    #: annotation.
    load_balancer_source_ranges: tuple[str, ...] = ()
    #: ``spec.clusterIPs``, ``ipFamilies`` and ``ipFamilyPolicy``, read for validation only.
    #: As the API server stores a Service: a lone ``cluster_ip`` is copied here (its
    #: normalizeClusterIPs, on create: `if len(newSvc.Spec.ClusterIP) > 0 &&
    #: len(newSvc.Spec.ClusterIPs) == 0 { newSvc.Spec.ClusterIPs =
    #: []string{newSvc.Spec.ClusterIP} }`); never the other way ("new client must use both
    #: fields": validation refuses ``cluster_ips`` without ``cluster_ip``).
    cluster_ips: tuple[str, ...] = ()
    ip_families: tuple[str, ...] = ()
    ip_family_policy: str | None = None

    def __post_init__(self) -> None:
        _own_tuples(self, "ports", "load_balancer_source_ranges", "cluster_ips", "ip_families")
        _own_maps(self, "selector")
        if self.cluster_ip and not self.cluster_ips:
            object.__setattr__(self, "cluster_ips", (self.cluster_ip,))


@dataclass(frozen=True, slots=True)
class Service:
    metadata: ObjectMeta
    spec: ServiceSpec
    kind: str = field(default="Service", init=False, repr=False)


# --- discovery.k8s.io/v1 EndpointSlice and v1 Endpoints ---------------------------------------


@dataclass(frozen=True, slots=True)
class EndpointConditions:
    #: None means unknown, which the API says consumers should treat as ready.
    ready: bool | None = None
    serving: bool | None = None
    terminating: bool | None = None


@dataclass(frozen=True, slots=True)
class Endpoint:
    addresses: tuple[str, ...]
    conditions: EndpointConditions = EndpointConditions()
    hostname: str | None = None
    node_name: str | None = None
    zone: str | None = None

    def __post_init__(self) -> None:
        _own_tuples(self, "addresses")


@dataclass(frozen=True, slots=True)
class EndpointPort:
    """Shared by EndpointSlice ports and v1 Endpoints subset ports."""

    port: int | None = None
    name: str | None = None
    protocol: str = "TCP"
    app_protocol: str | None = None


@dataclass(frozen=True, slots=True)
class EndpointSlice:
    metadata: ObjectMeta
    address_type: str = "IPv4"
    endpoints: tuple[Endpoint, ...] = ()
    ports: tuple[EndpointPort, ...] = ()
    kind: str = field(default="EndpointSlice", init=False, repr=False)

    def __post_init__(self) -> None:
        _own_tuples(self, "endpoints", "ports")

    @property
    def service_name(self) -> str | None:
        return self.metadata.labels.get(SERVICE_NAME_LABEL)


@dataclass(frozen=True, slots=True)
class EndpointAddress:
    ip: str
    hostname: str | None = None
    node_name: str | None = None


@dataclass(frozen=True, slots=True)
class EndpointSubset:
    addresses: tuple[EndpointAddress, ...] = ()
    not_ready_addresses: tuple[EndpointAddress, ...] = ()
    ports: tuple[EndpointPort, ...] = ()

    def __post_init__(self) -> None:
        _own_tuples(self, "addresses", "not_ready_addresses", "ports")


@dataclass(frozen=True, slots=True)
class Endpoints:
    metadata: ObjectMeta
    subsets: tuple[EndpointSubset, ...] = ()
    kind: str = field(default="Endpoints", init=False, repr=False)

    def __post_init__(self) -> None:
        _own_tuples(self, "subsets")


# --- v1 Secret -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Secret:
    """A Secret; ``data`` keeps the base64 text so nothing is decoded until the TLS layer asks."""

    metadata: ObjectMeta
    type: str = "Opaque"
    data: Mapping[str, str] = field(default_factory=lambda: EMPTY_MAP)
    string_data: Mapping[str, str] = field(default_factory=lambda: EMPTY_MAP)
    kind: str = field(default="Secret", init=False, repr=False)

    def __post_init__(self) -> None:
        _own_maps(self, "data", "string_data")

    def get_bytes(self, key: str) -> bytes | None:
        """The decoded value of ``key`` (``stringData`` wins, as the API server merges it)."""
        if key in self.string_data:
            return go_utf8(self.string_data[key])
        raw = self.data.get(key)
        if raw is None:
            return None
        try:
            # Line breaks are ignored, as Go's base64 decoder (the API server's) ignores them:
            # a hand-built Secret may hold ``base64`` output wrapped at 76 columns.
            return base64.b64decode(raw.replace("\r", "").replace("\n", ""), validate=True)
        except (binascii.Error, ValueError):
            return None


# --- v1 ConfigMap ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfigMap:
    """A ConfigMap (the ``custom-headers`` annotation names one: proxy/_header_sets.py);
    ``binary_data`` keeps the base64 text, as a Secret's ``data``."""

    metadata: ObjectMeta
    data: Mapping[str, str] = field(default_factory=lambda: EMPTY_MAP)
    binary_data: Mapping[str, str] = field(default_factory=lambda: EMPTY_MAP)
    kind: str = field(default="ConfigMap", init=False, repr=False)

    def __post_init__(self) -> None:
        _own_maps(self, "data", "binary_data")


def go_utf8(text: str) -> bytes:
    """``text`` as the API server stores it: UTF-8, where a lone surrogate (the ``\\udce9``
    escape of a JSON manifest, or a str handed to ``from_dicts``, which the client sends as
    that escape) is U+FFFD, as Go's encoding/json decodes it ("invalid UTF-16 surrogate pairs
    are not treated as an error. Instead, they are replaced by the Unicode replacement
    character U+FFFD"); an escaped pair is its one character. ``str.encode()`` raised
    UnicodeEncodeError out of loading and out of the TLS store."""
    try:
        return text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace").encode()


def go_text(text: str) -> str:
    """``text`` as the API server stores it, as a str: :func:`go_utf8`'s text, ``text`` itself
    when it holds no surrogate (ASCII, the common case, costs one ``isascii``). What the decoder
    reads every string of ``from_dicts`` with, as a JSON manifest's escapes already read
    (``_json_manifests._go_surrogates``)."""
    if text.isascii():
        return text
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


#: Go's ``unicode.IsSpace``, what ``strings.TrimSpace`` trims (``text.strip(GO_SPACE)``):
#: ``str.strip()`` would also trim U+001C..U+001F.
GO_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008" \
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"


def _own_tuples(obj: Any, *names: str) -> None:
    """Make each sequence field ``names`` of ``obj`` a tuple (None stays None).

    A model built by hand from lists (``IngressSpec(rules=[...])``) would otherwise share the
    caller's list, which can change afterwards (the proxy reads ``spec.rules`` of the served
    Ingresses lazily), and would not compare equal to the decoded model. A tuple is kept as it
    is: free for the decoder's output. As ``Resources.__post_init__`` does for its fields.
    """
    for name in names:
        value = getattr(obj, name)
        if type(value) is not tuple and value is not None:
            object.__setattr__(obj, name, tuple(value))


def _own_maps(obj: Any, *names: str) -> None:
    """Give ``obj`` its own read-only copy of each map field ``names``.

    Always a copy, even of a ``MappingProxyType``: a proxy is only a view, and one the caller
    built over its own dict (``MappingProxyType(annotations)``) changes with that dict. The copy
    is one small ``dict.copy`` per non-empty map (the decoder hands over the plain dict it built,
    so decoding pays one copy, not two); the shared ``EMPTY_MAP`` and empty maps cost nothing.
    Values are kept as given (no str() coercion: that is the decoder's and ``freeze_map``'s job).
    """
    for name in names:
        value = getattr(obj, name)
        if value is EMPTY_MAP:
            continue
        if not value:
            object.__setattr__(obj, name, EMPTY_MAP)
            continue
        # dict.copy() and mappingproxy.copy() are C calls; dict(value) takes any mapping.
        own = value.copy() if type(value) is dict or type(value) is MappingProxyType else dict(value)
        object.__setattr__(obj, name, MappingProxyType(own))


def freeze_map(value: Mapping[str, Any] | None) -> Mapping[str, str]:
    """A read-only copy of a string map (annotations, labels, data)."""
    if not value:
        return EMPTY_MAP
    return MappingProxyType({str(k): "" if v is None else str(v) for k, v in value.items()})
