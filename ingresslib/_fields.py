"""The fields of every kind ingresslib reads, to warn about the ones the API server would drop.

The API server decodes a body into Go structs and drops what no struct field names; with field
validation (KEP-2885, GA in 1.27) it says so: ``strict decoding error: unknown field
"spec.tls[0].secretNmae"`` for ``kubectl apply`` (``--validate=strict``, the default), a
``Warning: unknown field "..."`` for ``fieldValidation=Warn``. ingresslib reads its manifests
the same way and must not be quieter: a typo (``ingressClassname``, ``annotation:``,
``pathtype``) or a v1beta1 leftover (``serviceName`` in a v1 backend) would silently change the
routes. They are *warnings* here, not errors (SEMANTICS §2: valid-but-odd manifests load): a
field this table does not know yet (one added to Kubernetes after it was written) costs a line
of output, never a refused configuration.

A value of the wrong JSON type in a field the decoder does not read (``status``,
``spec.sessionAffinity``, ``metadata.ownerReferences``...) is another matter: the API server's
decoder refuses the whole object, so :func:`extra_fields` hands such values back (``wrong``)
for the decoder to report as errors (``_LISTS``, ``_CHECKED``).

The table below is derived from the Kubernetes OpenAPI definitions as generated into
``lightkube-models`` 1.37 (``lightkube/models/networking_v1.py``, ``core_v1.py``,
``discovery_v1.py``, ``meta_v1.py``; ``tests/test_unknown_fields_s13.py`` checks it against
them field for field): every field of every object ``kubectl get -o yaml`` prints, ``status``
and ``metadata.managedFields`` included. ``None`` marks a leaf: a scalar, a list of scalars, or
a map whose keys are data, not fields (annotations, labels, selector, Secret data,
``managedFields[].fieldsV1``), never looked into.

Each field is known under its JSON name and under the name the official ``kubernetes``
client's ``to_dict()`` gives it (SEMANTICS §1), which its generator derives from the JSON name
(``clusterIP`` -> ``cluster_ip``, ``clusterIPs`` -> ``cluster_i_ps``, ``fieldsV1`` ->
``fields_v1``): see :func:`snake`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ._errors import FieldError, _go_quote, key_text

__all__ = [
    "DUPLICATE_FIELD", "FieldWarning", "ROOTS", "Schema", "UNKNOWN_FIELD", "WrongTypes",
    "duplicate_paths", "extra_fields", "fresh_lines", "shallow", "snake",
]

#: ``FieldWarning.type`` values, the API server's words (sigs.k8s.io/json, decode.go:
#: ``fmt.Errorf("unknown field %q", ...)``, ``fmt.Errorf("duplicate field %q", ...)``).
UNKNOWN_FIELD = "unknown field"
DUPLICATE_FIELD = "duplicate field"


@dataclass(frozen=True, slots=True)
class FieldWarning(FieldError):
    """A :class:`FieldError` that is only a warning: ``field`` is the path of a field the API
    server would drop, and ``str()`` reads as its warning does, after the object:
    ``deploy/web.yaml: Ingress default/web: unknown field "spec.ingressClassname"``; a key
    written twice in a YAML file names the line of its last writing, the one whose value is
    kept: ``deploy/web.yaml: line 12: Ingress default/web: duplicate field "spec.rules[0].host"``
    (JSON's parser tells no lines; a text without a file name is printed without one either)."""

    #: The 1-based line in ``source`` the warning is about, when known.
    line: int | None = None

    def __str__(self) -> str:
        head = [self.source, self.object] if self.source else [self.object]
        if self.line is not None and self.source:
            head.insert(1, f"line {self.line}")
        return ": ".join([*head, f"{self.type} {_go_quote(self.field)}"])


#: Go type -> {JSON field name: Go type of an object (or list of objects) value, else None}.
_TYPES: dict[str, dict[str, str | None]] = {
    # --- metav1 ----------------------------------------------------------------------------
    "ObjectMeta": {
        "annotations": None, "creationTimestamp": None, "deletionGracePeriodSeconds": None,
        "deletionTimestamp": None, "finalizers": None, "generateName": None, "generation": None,
        "labels": None, "managedFields": "ManagedFieldsEntry", "name": None, "namespace": None,
        "ownerReferences": "OwnerReference", "resourceVersion": None, "selfLink": None,
        "uid": None,
    },
    "ManagedFieldsEntry": {
        "apiVersion": None, "fieldsType": None, "fieldsV1": None, "manager": None,
        "operation": None, "subresource": None, "time": None,
    },
    "OwnerReference": {
        "apiVersion": None, "blockOwnerDeletion": None, "controller": None, "kind": None,
        "name": None, "uid": None,
    },
    "Condition": {
        "lastTransitionTime": None, "message": None, "observedGeneration": None, "reason": None,
        "status": None, "type": None,
    },
    # --- networking.k8s.io/v1 Ingress ------------------------------------------------------
    "Ingress": {
        "apiVersion": None, "kind": None, "metadata": "ObjectMeta", "spec": "IngressSpec",
        "status": "IngressStatus",
    },
    "IngressSpec": {
        "defaultBackend": "IngressBackend", "ingressClassName": None, "rules": "IngressRule",
        "tls": "IngressTLS",
    },
    "IngressBackend": {"resource": "TypedLocalObjectReference", "service": "IngressServiceBackend"},
    "IngressServiceBackend": {"name": None, "port": "ServiceBackendPort"},
    "ServiceBackendPort": {"name": None, "number": None},
    "TypedLocalObjectReference": {"apiGroup": None, "kind": None, "name": None},
    "IngressRule": {"host": None, "http": "HTTPIngressRuleValue"},
    "HTTPIngressRuleValue": {"paths": "HTTPIngressPath"},
    "HTTPIngressPath": {"backend": "IngressBackend", "path": None, "pathType": None},
    "IngressTLS": {"hosts": None, "secretName": None},
    "IngressStatus": {"loadBalancer": "IngressLoadBalancerStatus"},
    "IngressLoadBalancerStatus": {"ingress": "IngressLoadBalancerIngress"},
    "IngressLoadBalancerIngress": {"hostname": None, "ip": None, "ports": "IngressPortStatus"},
    "IngressPortStatus": {"error": None, "port": None, "protocol": None},
    # --- networking.k8s.io/v1 IngressClass (no status) -------------------------------------
    "IngressClass": {
        "apiVersion": None, "kind": None, "metadata": "ObjectMeta", "spec": "IngressClassSpec",
    },
    "IngressClassSpec": {"controller": None, "parameters": "IngressClassParametersReference"},
    "IngressClassParametersReference": {
        "apiGroup": None, "kind": None, "name": None, "namespace": None, "scope": None,
    },
    # --- v1 Service --------------------------------------------------------------------------
    "Service": {
        "apiVersion": None, "kind": None, "metadata": "ObjectMeta", "spec": "ServiceSpec",
        "status": "ServiceStatus",
    },
    "ServiceSpec": {
        "allocateLoadBalancerNodePorts": None, "clusterIP": None, "clusterIPs": None,
        "externalIPs": None, "externalName": None, "externalTrafficPolicy": None,
        "healthCheckNodePort": None, "internalTrafficPolicy": None, "ipFamilies": None,
        "ipFamilyPolicy": None, "loadBalancerClass": None, "loadBalancerIP": None,
        "loadBalancerSourceRanges": None, "ports": "ServicePort",
        "publishNotReadyAddresses": None, "selector": None, "sessionAffinity": None,
        "sessionAffinityConfig": "SessionAffinityConfig", "trafficDistribution": None,
        "type": None,
    },
    "ServicePort": {
        "appProtocol": None, "name": None, "nodePort": None, "port": None, "protocol": None,
        "targetPort": None,
    },
    "SessionAffinityConfig": {"clientIP": "ClientIPConfig"},
    "ClientIPConfig": {"timeoutSeconds": None},
    "ServiceStatus": {"conditions": "Condition", "loadBalancer": "LoadBalancerStatus"},
    "LoadBalancerStatus": {"ingress": "LoadBalancerIngress"},
    "LoadBalancerIngress": {"hostname": None, "ip": None, "ipMode": None, "ports": "PortStatus"},
    "PortStatus": {"error": None, "port": None, "protocol": None},
    # --- discovery.k8s.io/v1 EndpointSlice ---------------------------------------------------
    "EndpointSlice": {
        "addressType": None, "apiVersion": None, "endpoints": "Endpoint", "kind": None,
        "metadata": "ObjectMeta", "ports": "discovery.EndpointPort",
    },
    "Endpoint": {
        "addresses": None, "conditions": "EndpointConditions", "deprecatedTopology": None,
        "hints": "EndpointHints", "hostname": None, "nodeName": None,
        "targetRef": "ObjectReference", "zone": None,
    },
    "EndpointConditions": {"ready": None, "serving": None, "terminating": None},
    "EndpointHints": {"forNodes": "ForNode", "forZones": "ForZone"},
    "ForNode": {"name": None},
    "ForZone": {"name": None},
    "discovery.EndpointPort": {"appProtocol": None, "name": None, "port": None, "protocol": None},
    "ObjectReference": {
        "apiVersion": None, "fieldPath": None, "kind": None, "name": None, "namespace": None,
        "resourceVersion": None, "uid": None,
    },
    # --- v1 Endpoints, Secret ----------------------------------------------------------------
    "Endpoints": {
        "apiVersion": None, "kind": None, "metadata": "ObjectMeta", "subsets": "EndpointSubset",
    },
    "EndpointSubset": {
        "addresses": "EndpointAddress", "notReadyAddresses": "EndpointAddress",
        "ports": "EndpointPort",
    },
    "EndpointAddress": {
        "hostname": None, "ip": None, "nodeName": None, "targetRef": "ObjectReference",
    },
    "EndpointPort": {"appProtocol": None, "name": None, "port": None, "protocol": None},
    "Secret": {
        "apiVersion": None, "data": None, "immutable": None, "kind": None,
        "metadata": "ObjectMeta", "stringData": None, "type": None,
    },
}

#: The object fields of ``_TYPES`` whose value is a *list* of objects (``[]OwnerReference``);
#: the others hold one object. A value of the other shape (``ownerReferences: {name: x}``,
#: ``sessionAffinityConfig: [...]``) is the decoder's error at the API server ("json: cannot
#: unmarshal object into Go struct field ObjectMeta.metadata.ownerReferences of type
#: []v1.OwnerReference"), not fields to look into: see :func:`extra_fields`' ``wrong``.
_LISTS: dict[str, frozenset[str]] = {
    "ObjectMeta": frozenset({"managedFields", "ownerReferences"}),
    "IngressSpec": frozenset({"rules", "tls"}),
    "HTTPIngressRuleValue": frozenset({"paths"}),
    "IngressLoadBalancerStatus": frozenset({"ingress"}),
    "IngressLoadBalancerIngress": frozenset({"ports"}),
    "ServiceSpec": frozenset({"ports"}),
    "ServiceStatus": frozenset({"conditions"}),
    "LoadBalancerStatus": frozenset({"ingress"}),
    "LoadBalancerIngress": frozenset({"ports"}),
    "EndpointSlice": frozenset({"endpoints", "ports"}),
    "EndpointHints": frozenset({"forNodes", "forZones"}),
    "Endpoints": frozenset({"subsets"}),
    "EndpointSubset": frozenset({"addresses", "notReadyAddresses", "ports"}),
}

#: The leaves the decoder does not read, by Go type: field -> the JSON type its value must
#: have ("string", "integer", "boolean"; "time": a string, or the datetime the official
#: client's ``to_dict()`` gives; "strings": a list of strings; "strmap": a map of strings). A
#: value of another type is the API server decoder's error ("json: cannot unmarshal number
#: into Go struct field ServiceSpec.spec.sessionAffinity of type v1.ServiceAffinity"), so it
#: goes to :func:`extra_fields`' ``wrong`` like a mis-shaped object field. (The leaves the
#: decoder reads, it checks itself; ``fieldsV1`` takes any JSON value.) Only the JSON type is
#: checked, not the content (a malformed timestamp in a condition is not seen).
_CHECKED: dict[str, dict[str, str]] = {
    "ObjectMeta": {
        "deletionGracePeriodSeconds": "integer", "deletionTimestamp": "time",
        "finalizers": "strings", "generateName": "string", "generation": "integer",
        "selfLink": "string",
    },
    "ManagedFieldsEntry": {
        "apiVersion": "string", "fieldsType": "string", "manager": "string",
        "operation": "string", "subresource": "string", "time": "time",
    },
    "OwnerReference": {
        "apiVersion": "string", "blockOwnerDeletion": "boolean", "controller": "boolean",
        "kind": "string", "name": "string", "uid": "string",
    },
    "Condition": {
        "lastTransitionTime": "time", "message": "string", "observedGeneration": "integer",
        "reason": "string", "status": "string", "type": "string",
    },
    "IngressLoadBalancerIngress": {"hostname": "string", "ip": "string"},
    "IngressPortStatus": {"error": "string", "port": "integer", "protocol": "string"},
    "ServiceSpec": {
        "allocateLoadBalancerNodePorts": "boolean", "clusterIPs": "strings",
        "externalIPs": "strings", "externalTrafficPolicy": "string",
        "healthCheckNodePort": "integer", "internalTrafficPolicy": "string",
        "ipFamilies": "strings", "ipFamilyPolicy": "string", "loadBalancerClass": "string",
        "loadBalancerIP": "string", "loadBalancerSourceRanges": "strings",
        "publishNotReadyAddresses": "boolean", "sessionAffinity": "string",
        "trafficDistribution": "string",
    },
    "ClientIPConfig": {"timeoutSeconds": "integer"},
    "LoadBalancerIngress": {"hostname": "string", "ip": "string", "ipMode": "string"},
    "PortStatus": {"error": "string", "port": "integer", "protocol": "string"},
    "Endpoint": {"deprecatedTopology": "strmap"},
    "ForNode": {"name": "string"},
    "ForZone": {"name": "string"},
    "ObjectReference": {
        "apiVersion": "string", "fieldPath": "string", "kind": "string", "name": "string",
        "namespace": "string", "resourceVersion": "string", "uid": "string",
    },
    "Secret": {"immutable": "boolean"},
}

#: The "integer" leaves of ``_CHECKED`` that are Go ``int32``s; the others are ``int64``s. An
#: integer past its Go type is the decoder's error too ("json: cannot unmarshal number
#: 2147483648 into Go struct field ServiceSpec.spec.healthCheckNodePort of type int32"):
#: go-yaml and Python read any size, so a YAML ``generation: 9223372036854775808`` arrives.
_INT32: frozenset[tuple[str, str]] = frozenset({
    ("IngressPortStatus", "port"), ("ServiceSpec", "healthCheckNodePort"),
    ("ClientIPConfig", "timeoutSeconds"), ("PortStatus", "port"),
})

#: The half-range of each Go integer type ``_check_leaf`` is given (``-bound <= v < bound``).
_INT_BOUNDS = {"int32": 1 << 31, "int64": 1 << 63}

_ACRONYM_RE = re.compile(r"([A-Z]+)([A-Z][a-z])")
_CAMEL_RE = re.compile(r"([a-z\d])([A-Z])")


def snake(name: str) -> str:
    """The attribute name the official client gives JSON field ``name``: openapi-generator's
    ``underscore()`` (``clusterIPs`` -> ``cluster_i_ps``, ``fieldsV1`` -> ``fields_v1``)."""
    return _CAMEL_RE.sub(r"\1_\2", _ACRONYM_RE.sub(r"\1_\2", name)).replace("-", "_").lower()


class Schema:
    """The fields of one Go type, each under both spellings."""

    __slots__ = ("name", "known", "children", "lists", "checks", "plain")

    def __init__(self, name: str) -> None:
        self.name = name
        #: Every field name, JSON and snake_case.
        self.known: frozenset[str] = frozenset()
        #: Field name (either spelling) -> (its JSON name, for paths; the schema of its value)
        #: for the fields whose value is an object or a list of objects.
        self.children: dict[str, tuple[str, Schema]] = {}
        #: The JSON names of the fields in ``children`` whose value is a list of objects.
        self.lists: frozenset[str] = frozenset()
        #: Leaf name (either spelling) -> (its JSON name, its JSON type) for the leaves whose
        #: type is checked here (``_CHECKED``).
        self.checks: dict[str, tuple[str, str]] = {}
        #: ``known`` without the keys of ``checks``: a mapping within it needs no look at its
        #: leaves.
        self.plain: frozenset[str] = frozenset()


#: The official client's second spelling of a field: kubernetes 37.0.2 names ServiceSpec's
#: ``clusterIPs`` ``cluster_ips`` (older releases ``cluster_i_ps``, what :func:`snake`
#: derives), ``externalIPs`` ``external_ips``. Both are the field, type checks included.
_CLIENT_SPELLINGS: dict[str, tuple[str, ...]] = {
    "clusterIPs": ("cluster_ips",), "externalIPs": ("external_ips",),
}


def _spellings(field: str) -> tuple[str, ...]:
    """Every name ``field`` may be given under: its JSON name and the client's."""
    return (field, snake(field), *_CLIENT_SPELLINGS.get(field, ()))


def _build() -> dict[str, Schema]:
    schemas = {name: Schema(name) for name in _TYPES}
    for name, fields in _TYPES.items():
        s = schemas[name]
        s.known = frozenset(spelling for field in fields for spelling in _spellings(field))
        s.lists = _LISTS.get(name, frozenset())
        for field, jtype in _CHECKED.get(name, {}).items():
            if jtype == "integer":
                jtype = "int32" if (name, field) in _INT32 else "int64"
            for spelling in _spellings(field):
                s.checks[spelling] = (field, jtype)
        s.plain = s.known - s.checks.keys()
        for field, child in fields.items():
            if child is not None:
                for spelling in _spellings(field):
                    s.children[spelling] = (field, schemas[child])
    return schemas


_SCHEMAS = _build()

#: Kind -> the schema of the whole object.
ROOTS: dict[str, Schema] = {
    kind: _SCHEMAS[kind]
    for kind in ("Ingress", "IngressClass", "Service", "EndpointSlice", "Endpoints", "Secret")
}


#: Where :func:`extra_fields` notes a value of the wrong JSON type: (its path, the value, the
#: JSON type the field holds: "object", "array", "string", "integer" or "boolean"; "int32" or
#: "int64" for an integer out of that Go type's range).
WrongTypes = list[tuple[str, Any, str]]

_PLAIN_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str, "boolean": bool, "time": (str, datetime),
}


def _check_leaf(path: str, value: Any, jtype: str, wrong: WrongTypes) -> None:
    """Note ``value`` (not None) in ``wrong`` unless it is of JSON type ``jtype`` (``_CHECKED``)."""
    bound = _INT_BOUNDS.get(jtype)
    if bound is not None:
        if not isinstance(value, int) or isinstance(value, bool):
            wrong.append((path, value, "integer"))
        elif not -bound <= value < bound:
            wrong.append((path, value, jtype))
    elif jtype == "strings":
        if not isinstance(value, (list, tuple)):
            wrong.append((path, value, "array"))
            return
        for i, item in enumerate(value):
            # (a null item is Go's zero value, "")
            if item is not None and not isinstance(item, str):
                wrong.append((f"{path}[{i}]", item, "string"))
    elif jtype == "strmap":
        if not isinstance(value, Mapping):
            wrong.append((path, value, "object"))
            return
        for key, item in value.items():
            if item is not None and not isinstance(item, str):
                # (a map's key: `[key]`, as the decoder's errors write labels' entries)
                wrong.append((f"{path}[{key_text(key)}]", item, "string"))
    elif not isinstance(value, _PLAIN_TYPES[jtype]):
        wrong.append((path, value, "string" if jtype == "time" else jtype))


def _walk(schema: Schema, obj: Mapping[str, Any], path: str, out: list[str],
          wrong: WrongTypes | None) -> None:
    """Append to ``out`` the paths of the fields of ``obj`` (and below) that ``schema`` does
    not know, in document order; known fields in their JSON spelling, the unknown one as
    written. A field whose value is None is absent (the client's ``to_dict()`` lists every
    field it knows, None when unset: a newer client's new fields must not warn on every
    object). An object field whose value is of the wrong JSON type (a map where the field
    holds a list, a list or a scalar where it holds an object) is not looked into: it goes to
    ``wrong`` when given (the API server's decoder refuses the object), never to ``out``;
    so does a leaf of ``_CHECKED`` whose value is of the wrong JSON type."""
    if schema.plain.issuperset(obj):
        # All known (the usual case: a managedFields entry, a status): only its object fields
        # need a look, and a type with none (most) costs this one C-level test.
        children = schema.children
        if children:
            _visit(schema, obj, [key for key in obj if key in children], path, out, wrong)
    else:
        _visit(schema, obj, list(obj), path, out, wrong)


def _visit(schema: Schema, obj: Mapping[str, Any], keys: list[Any], path: str,
           out: list[str], wrong: WrongTypes | None) -> None:
    # Recursion: the depth follows the schema (at most 7 levels below an object), never the
    # document's, since only known object fields are entered.
    known = schema.known
    children = schema.children
    checks = schema.checks
    prefix = path + "." if path else ""
    for key in keys:
        value = obj[key]
        if value is None:
            continue
        child = children.get(key)
        if child is None:
            check = checks.get(key)
            if check is not None:
                if wrong is not None:
                    _check_leaf(prefix + check[0], value, check[1], wrong)
            elif key not in known:
                out.append(f"{prefix}{key_text(key)}")
            continue
        field, sub = child
        # (_walk's own first test, inline for a type without object fields: a managedFields
        # entry, a Condition, most of status, pay no call.)
        sub_known = None if sub.children else sub.plain
        if field in schema.lists:
            if not isinstance(value, (list, tuple)):
                if wrong is not None:
                    wrong.append((prefix + field, value, "array"))
                continue
            for i, item in enumerate(value):
                if isinstance(item, Mapping):
                    if sub_known is None or not sub_known.issuperset(item):
                        _walk(sub, item, f"{prefix}{field}[{i}]", out, wrong)
                elif item is not None and wrong is not None:
                    # (a null item is Go's zero value: `[null]` decodes)
                    wrong.append((f"{prefix}{field}[{i}]", item, "object"))
        elif isinstance(value, Mapping):
            if sub_known is None or not sub_known.issuperset(value):
                _walk(sub, value, prefix + field, out, wrong)
        elif wrong is not None:
            wrong.append((prefix + field, value, "object"))


def shallow(kind: str, decoded: tuple[str, ...] = ()) -> tuple[frozenset[str], Schema]:
    """For a mapping the decoder reads itself: the field names it may hold that need no look
    beyond ``frozenset.issuperset`` (leaves, and the ``decoded`` object fields the decoder
    enters and checks in turn), and its schema, for :func:`extra_fields`. The leaves of
    ``_CHECKED`` (those the decoder does not read) are left out: their type is checked there.

    One C-level subset test per mapping is all a manifest without surprises pays; ``status``,
    ``managedFields`` and unknown keys take :func:`extra_fields`."""
    schema = _SCHEMAS[kind]
    skip = {key for key, (field, _) in schema.children.items() if field not in decoded}
    return schema.plain - skip, schema


def extra_fields(schema: Schema, known: frozenset[str], obj: Mapping[str, Any], path: str,
                 out: list[str], wrong: WrongTypes | None = None) -> None:
    """The unknown fields of ``obj`` outside ``known`` (see :func:`shallow`), and those below
    its fields the decoder does not enter, appended to ``out``; the fields it does not read
    whose value is of the wrong JSON type, appended to ``wrong`` when given, as (path, value,
    the JSON type expected): errors, as the decoder's own ``expected array, got object``, for
    the API server's decoder refuses the object. Those are the object fields it does not
    enter (``status: {loadBalancer: {ingress: {ip: ...}}}``, a map for a list) and the leaves
    of ``_CHECKED`` (``spec.sessionAffinity: 5``). A mis-shaped object value is never looked
    into: its keys are no fields of the type (they were warned about as unknown ones)."""
    _visit(schema, obj, [key for key in obj if key not in known], path, out, wrong)


_FIELD_NAME_RE = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")


def _child_path(path: str, key: Any) -> str:
    """``spec.rules``, or ``metadata.annotations[nginx.ingress.kubernetes.io/rewrite-target]``
    for a key that is no field name (a map's key: the decoder's errors write them so)."""
    if isinstance(key, str) and _FIELD_NAME_RE.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{key_text(key)}]"


def duplicate_paths(obj: Mapping[str, Any], duplicates: Mapping[int, list[Any]],
                    lines: Mapping[int, Mapping[Any, list[int]]] | None = None
                    ) -> list[tuple[str, int | None]]:
    """The paths of the keys written twice in a mapping of ``obj`` (``duplicates``: the keys
    of each such mapping, by ``id()``, as the YAML or JSON parser saw them), keys as written,
    each with the line of its last writing when ``lines`` (the YAML loader's: the lines of
    each key, by ``id()`` of its mapping) has it.

    Only called for a document where the loader saw a repeated key, so a walk of the whole
    object costs nothing to the others. An explicit stack: the object may nest deep."""
    out: list[tuple[str, str, int | None]] = []
    no_lines: Mapping[Any, list[int]] = {}
    seen: set[int] = set()
    stack: list[tuple[Any, str]] = [(obj, "")]
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue  # a YAML alias: the same mapping reached twice
        seen.add(id(node))
        if isinstance(node, Mapping):
            keys = duplicates.get(id(node), ())
            if keys:
                at = lines.get(id(node), no_lines) if lines else no_lines
                for key in keys:
                    written = at.get(key)
                    out.append((path, _child_path(path, key), written[-1] if written else None))
            for key, value in node.items():
                if isinstance(value, (Mapping, list)):
                    stack.append((value, _child_path(path, key)))
        elif isinstance(node, list):
            for i, item in enumerate(node):
                if isinstance(item, (Mapping, list)):
                    stack.append((item, f"{path}[{i}]"))
    out.sort(key=lambda found: found[:2])
    return [(p, line) for _, p, line in out]


def fresh_lines(warnings: Iterable[FieldError], logged: set[str]) -> list[str]:
    """The lines of ``warnings`` to log now: each once, and none already in ``logged`` (the
    lines of the previous load); ``logged`` becomes this load's lines. So a server that reloads
    its manifests logs a warning once per object definition, not at every reload, and again
    if it comes back after it was fixed."""
    lines = list(dict.fromkeys(str(w) for w in warnings))
    fresh = [line for line in lines if line not in logged]
    logged.clear()
    logged.update(lines)
    return fresh
