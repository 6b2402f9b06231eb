"""Parsed manifests (dicts) -> typed models, collecting every error.

Accepts the API's camelCase field names and the snake_case names of the official ``kubernetes``
client's ``to_dict()`` (SEMANTICS §1: "Accept both the API's camelCase keys and the snake_case
keys with ``None`` values that the official ``kubernetes`` client's ``to_dict()`` produces;
``None`` means absent. Never rename keys inside ``annotations``, ``labels`` or Secret ``data``").
Only schema fields are looked up under two names; map-typed fields (annotations, labels,
selector, data, stringData) are copied key for key.

Wrong JSON types (a string where a list is expected, ``"80"`` for an int32 port number, a bool
for a string...) become ``Invalid value`` errors at their field path, the way the API server
refuses a body it cannot decode; the object is still built with a neutral placeholder so the
API rules of ``_validate`` run on the rest. Errors a placeholder would cause at the same place
are dropped, so one mistake is reported once.

Fields no Kubernetes type has (``ingressClassname``, a v1beta1 ``serviceName``), which the API
server drops, and keys the YAML or JSON parser saw twice are collected as warnings
(``Resources.warnings``, see ``_fields``): one ``frozenset.issuperset`` per mapping read.

Every string is read as the API server stores it (``_models.go_text``): a lone surrogate (a
str out of ``json.loads`` of a ``\\udce9`` escape, or decoded with ``surrogateescape``) is
U+FFFD, as Go's encoding/json decodes the escape the official client sends for it, and as a JSON
manifest reads (``_json_manifests._go_surrogates``). Kept, it raised UnicodeEncodeError
wherever the text was encoded later: a header, a log line, a command's output.

The decoder is plain code on purpose (no reflection on the hot path): decoding thousands of
objects must cost far less than parsing their YAML.
"""

from __future__ import annotations

import copy
import dataclasses
import mmap
import re

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from ._errors import FieldError, ValidationError, _go_quote, key_text
from ._fields import (
    DUPLICATE_FIELD, UNKNOWN_FIELD, FieldWarning, Schema, WrongTypes, _child_path,
    duplicate_paths, extra_fields, shallow,
)
from ._models import (
    EMPTY_MAP,
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
    IngressClass,
    ConfigMap,
    IngressClassParameters,
    IngressClassSpec,
    IngressRule,
    IngressServiceBackend,
    IngressSpec,
    IngressTLS,
    ObjectMeta,
    Secret,
    Service,
    ServiceBackendPort,
    ServicePort,
    ServiceSpec,
    TypedLocalObjectReference,
    go_text,
)
from ._resources import Resources
from ._validate import (
    DUPLICATE,
    INVALID,
    REQUIRED,
    SPEC_RULES_DETAIL,
    unique_errors,
    validate_config_map,
    validate_endpoint_slice,
    validate_endpoints,
    validate_ingress,
    validate_ingress_class,
    validate_secret,
    validate_service,
)

__all__ = ["decode_resources", "Collector", "unread_versions"]

_log = logging.getLogger("ingresslib.decode")

_UTC = timezone.utc
#: What an invalid ConfigMap of the manifests is not used by (its warnings end with it): every
#: use a ConfigMap of the manifests has (the ``custom-headers`` annotation, serve's TCP and UDP
#: services flags), since the load does not know which one names it.
_NOT_USED = ("not used by custom-headers, --tcp-services-configmap or "
             "--udp-services-configmap")
_rfc3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})"
).fullmatch
#: ``str()`` (and ``isoformat()``) of a datetime: what the official client's ``to_dict()``
#: ``creation_timestamp`` (a datetime) becomes through ``json.dumps(..., default=str)``:
#: "2026-01-01 00:00:00+00:00", "... 00:00:00.250000+00:00"; no zone for a naive one.
_py_datetime = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{6})?([+-][0-9]{2}:[0-9]{2})?"
).fullmatch


def _with_source(err: FieldError, source: str | None) -> FieldError:
    """``object`` keeps the contract form (``Ingress default/web``); ``source`` names the file so
    ``str()`` reads ``deploy/web.yaml: Ingress default/web: spec.rules[0].host: ...``."""
    if source is None or err.source is not None or err.object == source:
        return err
    return dataclasses.replace(err, source=source)


# --- type checking helpers ------------------------------------------------------------------


def _jtype(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, Mapping):
        return "object"
    if isinstance(v, (list, tuple)):
        return "array"
    return type(v).__name__


def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, (bool, int, float, str))


class _Dec:
    """Errors of one object while it is decoded."""

    __slots__ = ("obj", "errors", "empty_rules", "entries", "unknown", "repeated", "check")

    def __init__(self, obj: str) -> None:
        self.obj = obj
        self.errors: list[FieldError] = []
        #: An Ingress written with `rules: []` (an empty, non-nil slice to the API server).
        self.empty_rules = False
        #: Paths of map entries (`metadata.labels[app]`) left out for a wrong type: no
        #: placeholder stands in for them, so they hide no error of the map's other entries.
        self.entries: set[str] = set()
        #: Paths of the fields the API server would drop as unknown (warnings, _fields).
        self.unknown: list[str] = []
        #: Paths of map keys that are one key once written as kubectl writes them (``1`` and
        #: ``"1"`` in a dict handed to ``from_dicts``): duplicate-field warnings.
        self.repeated: list[str] = []
        #: False when nobody will read the warnings (see ``Collector.check_fields``).
        self.check = True

    def extra(self, obj: Mapping[str, Any], known: frozenset[str], schema: Schema, path: str) -> None:
        """``obj`` holds a field outside ``known``: an unknown one, or one the decoder does
        not enter (``status``, ``managedFields``) and whose fields are checked here."""
        if self.check:
            unknown = self.unknown
            n = len(unknown)
            wrong: WrongTypes = []
            extra_fields(schema, known, obj, path, unknown, wrong)
            for i in range(n, len(unknown)):
                unknown[i] = go_text(unknown[i])  # a field name is a string too
            # A field the decoder does not read (status, ownerReferences, sessionAffinity...)
            # holding a value of the wrong JSON type: the API server's decoder refuses it.
            for where, value, expected in wrong:
                if expected in ("int32", "int64"):
                    # (an integer past its Go type: "cannot unmarshal number ... of type int64")
                    self.errors.append(FieldError(
                        self.obj, go_text(where), INVALID,
                        f"out of range: the field is an {expected}", value, True))
                else:
                    self.wrong_type(go_text(where), value, expected)

    def wrong_type(self, path: str, value: Any, expected: str, hint: str = "") -> None:
        scalar = _is_scalar(value)
        self.errors.append(
            FieldError(
                self.obj, path, INVALID, f"expected {expected}, got {_jtype(value)}{hint}",
                value if scalar else None, scalar,
            )
        )


def _get(d: Mapping[str, Any], camel: str, snake: str) -> Any:
    v = d.get(camel)
    if v is None:
        v = d.get(snake)
    return v


def _str(dec: _Dec, v: Any, path: str) -> str | None:
    if type(v) is str:
        return v if v.isascii() else go_text(v)
    if v is None:
        return v
    if isinstance(v, str):
        return go_text(str.__str__(v))
    dec.wrong_type(path, v, "string")
    return None


def _int(dec: _Dec, v: Any, path: str) -> int | None:
    if v is None or type(v) is int:
        return v
    if isinstance(v, int) and not isinstance(v, bool):
        return int.__int__(v)
    # An int32 field: "80" (a YAML string) and 80.0 are refused, as the API server's decoder
    # refuses them.
    dec.wrong_type(path, v, "integer")
    return None


def _bool(dec: _Dec, v: Any, path: str) -> bool | None:
    if v is None or isinstance(v, bool):
        return v
    dec.wrong_type(path, v, "boolean")
    return None


def _obj(dec: _Dec, v: Any, path: str) -> Mapping[str, Any] | None:
    """A nested object, None when absent; a wrong type is reported and read as ``{}``."""
    if v is None or type(v) is dict or isinstance(v, Mapping):
        return v
    dec.wrong_type(path, v, "object")
    return EMPTY_MAP


def _list(dec: _Dec, v: Any, path: str) -> list[Any] | tuple[Any, ...]:
    if v is None:
        return ()
    if isinstance(v, (list, tuple)):
        return v
    dec.wrong_type(path, v, "array")
    return ()


def _str_list(dec: _Dec, v: Any, path: str) -> tuple[str, ...]:
    out = []
    for i, item in enumerate(_list(dec, v, path)):
        s = _str(dec, item, f"{path}[{i}]")
        out.append("" if s is None else s)
    return tuple(out)


def _str_map(dec: _Dec, v: Any, path: str) -> Mapping[str, str]:
    """A map[string]string, keys exactly as written (never renamed; a key YAML read as an
    integer or a bool becomes the string kubectl would send, see :func:`_yaml_key`)."""
    if v is None:
        return EMPTY_MAP
    if not isinstance(v, Mapping):
        dec.wrong_type(path, v, "object")
        return EMPTY_MAP
    if not v:
        return EMPTY_MAP
    out: dict[str, str] = {}
    converted = False
    for k, val in v.items():
        if type(k) is not str:
            if isinstance(k, str):
                # A str subclass is its text, as _str reads one: ruamel.yaml's round-trip
                # loader gives them (a quoted key with preserve_quotes, a `|` block value:
                # LiteralScalarString), so does a StrEnum. They were "expected string, got
                # string" errors.
                k = str.__str__(k)
            else:
                key = _yaml_key(k)
                if key is None:
                    # (key_text: an int of 5,000 digits from from_dicts, which str() refuses)
                    entry = f"{path}[{key_text(k)}]"
                    dec.entries.add(entry)
                    dec.wrong_type(entry, k, "string key")
                    continue
                k = key
                converted = True
        if not k.isascii():
            stored = go_text(k)
            if stored != k:
                # Two keys may be one once stored ("k\ud800", "k\udfff"): a repeat.
                k = stored
                converted = True
        if type(val) is str:
            out[k] = val if val.isascii() else go_text(val)
        elif val is None:
            # JSON null for a map value decodes to "" in Go.
            out[k] = ""
        elif isinstance(val, str):
            out[k] = go_text(str.__str__(val))
        else:
            # e.g. `canary-weight: 10` unquoted: "json: cannot unmarshal number into Go struct
            # field ObjectMeta.metadata.annotations of type string".
            dec.entries.add(f"{path}[{k}]")
            # YAML read `ssl-redirect: false` as a boolean: the fix is the quotes, which the
            # API server's words do not say (_config.py says the same of a ConfigMap's
            # values). Not for a Secret's ``data`` (base64: a number there is no quoting slip)
            # nor a list or a map.
            hint = "; quote the value" if _is_scalar(val) and path != "data" else ""
            dec.wrong_type(f"{path}[{k}]", val, "string", hint)
    if converted and dec.check:
        _repeated_keys(dec, v, path)
    # The plain dict: every caller hands it straight to a model, whose __post_init__ takes its
    # own read-only copy (_models._own_maps); wrapping it here too would cost a second copy.
    return out


def _repeated_keys(dec: _Dec, v: Mapping[Any, Any], path: str) -> None:
    """Note the keys of ``v`` that are one key once written as kubectl writes them: a dict
    (``from_dicts``) may hold both ``1`` and ``"1"``, which JSON cannot. The YAML loader warns
    about the same two keys in a file (duplicate field, one value kept: which one, Go's map
    order decides); the last one is kept here, as a key written twice."""
    seen: set[str] = set()
    for k in v:
        key = go_text(str.__str__(k)) if isinstance(k, str) else _yaml_key(k)
        if key is None:
            continue
        child = _child_path(path, key)
        if key in seen and child not in dec.repeated:
            dec.repeated.append(child)
        seen.add(key)


def _yaml_key(k: Any) -> str | None:
    """The string kubectl sends for a map key YAML read as a bool or an integer (``labels:
    {1: a}``, ``{on: b}``), None for any other non-string key.

    kubectl turns YAML into JSON with sigs.k8s.io/yaml, whose ``convertToJSONableObject``
    stringifies such keys ("JSON does not support arbitrary keys in a map, so we must convert
    these keys to strings": ``case int: keyString = strconv.Itoa(typedKey)``, ``case bool: if
    typedKey { keyString = "true" } else { keyString = "false" }``), so the API server sees
    the label ``"1"``. Float keys (Go formats them its own way) and null keys stay errors.

    So do integers out of int64 range: go-yaml v2 reads one below 2^64 as a uint64 and a
    bigger hex or octal one as a *big.Int (goyaml.v2/resolve.go: ``strconv.ParseUint(plain,
    0, 64)``, then ``value.SetString(plain, 0)`` on ErrRange), and convertToJSONableObject has
    no case for either: ``default: return nil, fmt.Errorf("unsupported map key of type: %s,
    ...")``, kubectl refuses the file. (A bigger decimal one is a float64 there: the YAML
    loader writes it as Go does, ``1e+20``.)
    """
    if isinstance(k, bool):
        return "true" if k else "false"
    if isinstance(k, int) and -(1 << 63) <= k < (1 << 63):
        return str(int.__int__(k))
    return None


def _timestamp(dec: _Dec, v: Any, path: str, *, client: bool = False) -> datetime | None:
    """``client``: read from the snake_case ``creation_timestamp``, a key only the official
    client's ``to_dict()`` writes, where the value is a datetime, or its ``str()`` once that
    dict went through ``json.dumps(..., default=str)`` (a cache, a message queue)."""
    if v is None:
        return None
    if isinstance(v, datetime):
        return v if v.tzinfo is not None else v.replace(tzinfo=_UTC)
    if isinstance(v, str):
        # metav1.Time.UnmarshalJSON: `time.Parse(time.RFC3339, str)`: a "T", seconds and a zone
        # ("Z" or +hh:mm) are required, where fromisoformat alone would also take "2024-01-02",
        # a space for the "T" or no zone at all. The client's form also takes str(datetime)
        # (a space, and no zone for a naive one: UTC, as the datetime itself is read).
        try:
            ts = (datetime.fromisoformat(v)
                  if _rfc3339(v) or (client and _py_datetime(v)) else None)
        except ValueError:
            ts = None
        if ts is not None and ts.tzinfo is None:
            ts = ts.replace(tzinfo=_UTC)
        if ts is None:
            detail = "must be an RFC 3339 date-time (e.g. 2024-01-02T03:04:05Z)"
            dec.errors.append(FieldError(dec.obj, path, INVALID, detail, go_text(v), True))
        return ts
    dec.wrong_type(path, v, "string")
    return None


# --- the kinds ----------------------------------------------------------------------------------


def _meta(dec: _Dec, d: Mapping[str, Any]) -> ObjectMeta:
    m = _obj(dec, d.get("metadata"), "metadata")
    if not m:
        return ObjectMeta(name="")
    if not _K_META.issuperset(m):
        dec.extra(m, _K_META, _S_META, "metadata")
    raw_name = m.get("name")
    name = _str(dec, raw_name, "metadata.name") or ""
    if raw_name is None or raw_name == "":
        # (A name of another type is its type error alone: the user gave one.)
        _generated_name(dec, m)
    namespace = _str(dec, m.get("namespace"), "metadata.namespace") or "default"
    stamp = m.get("creationTimestamp")
    camel_stamp = stamp is not None
    return ObjectMeta(
        name=name,
        namespace=namespace,
        annotations=_str_map(dec, m.get("annotations"), "metadata.annotations"),
        labels=_str_map(dec, m.get("labels"), "metadata.labels"),
        creation_timestamp=_timestamp(
            dec, stamp if camel_stamp else m.get("creation_timestamp"),
            "metadata.creationTimestamp", client=not camel_stamp,
        ),
        resource_version=_str(
            dec, _get(m, "resourceVersion", "resource_version"), "metadata.resourceVersion"
        ),
        uid=_str(dec, m.get("uid"), "metadata.uid"),
    )


def _generated_name(dec: _Dec, m: Mapping[str, Any]) -> None:
    """An object without a name but with a ``generateName``: the API server makes the name from
    it before it validates (k8s.io/apiserver registry/rest/create.go ``RESTCreateStrategy``:
    "The NameGenerator will be invoked prior to validation"), which nothing here does, so its
    "name or generateName is required" would read as wrong. The same error (``metadata.name``,
    ``Required value``) says why instead; it stands for the validator's at that path."""
    base = _get(m, "generateName", "generate_name")
    if isinstance(base, str) and base:
        dec.errors.append(FieldError(
            dec.obj, "metadata.name", REQUIRED,
            f"generateName {_go_quote(go_text(base))} is not supported "
            "(only the API server makes a name of it, when it creates the object): give "
            "metadata.name"))


def _backend(dec: _Dec, d: Mapping[str, Any], path: str) -> IngressBackend:
    service = None
    resource = None
    if not _K_BACKEND.issuperset(d):
        dec.extra(d, _K_BACKEND, _S_BACKEND, path)
    s = _obj(dec, d.get("service"), path + ".service")
    if s is not None:
        if not _K_SERVICE_BACKEND.issuperset(s):
            dec.extra(s, _K_SERVICE_BACKEND, _S_SERVICE_BACKEND, path + ".service")
        p = _obj(dec, s.get("port"), path + ".service.port") or EMPTY_MAP
        if not _K_BACKEND_PORT.issuperset(p):
            dec.extra(p, _K_BACKEND_PORT, _S_BACKEND_PORT, path + ".service.port")
        service = IngressServiceBackend(
            name=_str(dec, s.get("name"), path + ".service.name") or "",
            port=ServiceBackendPort(
                name=_str(dec, p.get("name"), path + ".service.port.name"),
                number=_int(dec, p.get("number"), path + ".service.port.number"),
            ),
        )
    r = _obj(dec, d.get("resource"), path + ".resource")
    if r is not None:
        if not _K_RESOURCE.issuperset(r):
            dec.extra(r, _K_RESOURCE, _S_RESOURCE, path + ".resource")
        resource = TypedLocalObjectReference(
            kind=_str(dec, r.get("kind"), path + ".resource.kind") or "",
            name=_str(dec, r.get("name"), path + ".resource.name") or "",
            api_group=_str(dec, _get(r, "apiGroup", "api_group"), path + ".resource.apiGroup"),
        )
    return IngressBackend(service=service, resource=resource)


def _ingress(dec: _Dec, d: Mapping[str, Any], meta: ObjectMeta) -> Ingress:
    s = _obj(dec, d.get("spec"), "spec") or EMPTY_MAP
    if not _K_INGRESS_SPEC.issuperset(s):
        dec.extra(s, _K_INGRESS_SPEC, _S_INGRESS_SPEC, "spec")
    db = _obj(dec, _get(s, "defaultBackend", "default_backend"), "spec.defaultBackend")
    rules = []
    raw_rules = s.get("rules")
    dec.empty_rules = isinstance(raw_rules, (list, tuple)) and not raw_rules
    for i, r in enumerate(_list(dec, raw_rules, "spec.rules")):
        rp = f"spec.rules[{i}]"
        r = _obj(dec, r, rp) or EMPTY_MAP
        if not _K_RULE.issuperset(r):
            dec.extra(r, _K_RULE, _S_RULE, rp)
        http = _obj(dec, r.get("http"), rp + ".http")
        paths: tuple[HTTPIngressPath, ...] | None = None
        if http is not None:
            if not _K_HTTP.issuperset(http):
                dec.extra(http, _K_HTTP, _S_HTTP, rp + ".http")
            plist = []
            for j, p in enumerate(_list(dec, http.get("paths"), rp + ".http.paths")):
                pp = f"{rp}.http.paths[{j}]"
                p = _obj(dec, p, pp) or EMPTY_MAP
                if not _K_PATH.issuperset(p):
                    dec.extra(p, _K_PATH, _S_PATH, pp)
                b = _obj(dec, p.get("backend"), pp + ".backend") or EMPTY_MAP
                plist.append(
                    HTTPIngressPath(
                        backend=_backend(dec, b, pp + ".backend"),
                        path=_str(dec, p.get("path"), pp + ".path"),
                        path_type=_str(dec, _get(p, "pathType", "path_type"), pp + ".pathType"),
                    )
                )
            paths = tuple(plist)
        host = _str(dec, r.get("host"), rp + ".host")
        rules.append(IngressRule(host=host or None, paths=paths))
    tls = []
    for i, t in enumerate(_list(dec, s.get("tls"), "spec.tls")):
        tp = f"spec.tls[{i}]"
        t = _obj(dec, t, tp) or EMPTY_MAP
        if not _K_TLS.issuperset(t):
            dec.extra(t, _K_TLS, _S_TLS, tp)
        tls.append(
            IngressTLS(
                hosts=_str_list(dec, t.get("hosts"), tp + ".hosts"),
                secret_name=_str(dec, _get(t, "secretName", "secret_name"), tp + ".secretName"),
            )
        )
    spec = IngressSpec(
        ingress_class_name=_str(
            dec, _get(s, "ingressClassName", "ingress_class_name"), "spec.ingressClassName"
        ),
        default_backend=None if db is None else _backend(dec, db, "spec.defaultBackend"),
        rules=tuple(rules),
        tls=tuple(tls),
    )
    return Ingress(metadata=meta, spec=spec)


def _ingress_class(dec: _Dec, d: Mapping[str, Any], meta: ObjectMeta) -> IngressClass:
    s = _obj(dec, d.get("spec"), "spec") or EMPTY_MAP
    if not _K_CLASS_SPEC.issuperset(s):
        dec.extra(s, _K_CLASS_SPEC, _S_CLASS_SPEC, "spec")
    p = _obj(dec, s.get("parameters"), "spec.parameters")
    params = None
    if p is not None:
        if not _K_CLASS_PARAMS.issuperset(p):
            dec.extra(p, _K_CLASS_PARAMS, _S_CLASS_PARAMS, "spec.parameters")
        params = IngressClassParameters(
            kind=_str(dec, p.get("kind"), "spec.parameters.kind") or "",
            name=_str(dec, p.get("name"), "spec.parameters.name") or "",
            api_group=_str(dec, _get(p, "apiGroup", "api_group"), "spec.parameters.apiGroup"),
            namespace=_str(dec, p.get("namespace"), "spec.parameters.namespace"),
            # v1 defaulting (SetDefaults_IngressClass): `if Scope == nil { Scope = "Cluster" }`;
            # an explicit "" stays, and validation reports it (Unsupported value).
            scope=_default(_str(dec, p.get("scope"), "spec.parameters.scope"), "Cluster"),
        )
    return IngressClass(
        metadata=meta,
        spec=IngressClassSpec(
            controller=_str(dec, s.get("controller"), "spec.controller") or "", parameters=params
        ),
    )


def _int_or_string(dec: _Dec, v: Any, path: str) -> int | str | None:
    if v is None or type(v) is int:
        return v
    # Subclasses as _int and _str take them (ruamel.yaml's HexInt for `targetPort: 0x1f90`,
    # its quoted or block strings).
    if isinstance(v, str):
        return _str(dec, v, path)
    if isinstance(v, int) and not isinstance(v, bool):
        return int.__int__(v)
    dec.wrong_type(path, v, "integer or string")
    return None


def _service(dec: _Dec, d: Mapping[str, Any], meta: ObjectMeta) -> Service:
    s = _obj(dec, d.get("spec"), "spec") or EMPTY_MAP
    if not _K_SERVICE_SPEC.issuperset(s):
        dec.extra(s, _K_SERVICE_SPEC, _S_SERVICE_SPEC, "spec")
    ports = []
    for i, p in enumerate(_list(dec, s.get("ports"), "spec.ports")):
        pp = f"spec.ports[{i}]"
        p = _obj(dec, p, pp) or EMPTY_MAP
        if not _K_SERVICE_PORT.issuperset(p):
            dec.extra(p, _K_SERVICE_PORT, _S_SERVICE_PORT, pp)
        port = _int(dec, p.get("port"), pp + ".port")
        target = _int_or_string(dec, _get(p, "targetPort", "target_port"), pp + ".targetPort")
        ports.append(
            ServicePort(
                port=0 if port is None else port,
                name=_str(dec, p.get("name"), pp + ".name") or None,
                # SetDefaults_Service: `if sp.TargetPort == intstr.FromInt32(0) || sp.TargetPort
                # == intstr.FromString("") { sp.TargetPort = intstr.FromInt32(sp.Port) }`; None
                # means "the same as port" here.
                target_port=None if target == 0 or target == "" else target,
                protocol=_str(dec, p.get("protocol"), pp + ".protocol") or "TCP",
                app_protocol=_str(dec, _get(p, "appProtocol", "app_protocol"), pp + ".appProtocol"),
                node_port=_int(dec, _get(p, "nodePort", "node_port"), pp + ".nodePort"),
            )
        )
    spec = ServiceSpec(
        ports=tuple(ports),
        type=_str(dec, s.get("type"), "spec.type") or "ClusterIP",
        cluster_ip=_str(dec, _get(s, "clusterIP", "cluster_ip"), "spec.clusterIP"),
        selector=_str_map(dec, s.get("selector"), "spec.selector"),
        external_name=_str(dec, _get(s, "externalName", "external_name"), "spec.externalName"),
        load_balancer_source_ranges=_strings_checked_elsewhere(
            _get(s, "loadBalancerSourceRanges", "load_balancer_source_ranges")),
        # The official client spells clusterIPs two ways (_fields._CLIENT_SPELLINGS).
        cluster_ips=_strings_checked_elsewhere(
            _get(s, "clusterIPs", "cluster_i_ps") or s.get("cluster_ips")),
        ip_families=_strings_checked_elsewhere(_get(s, "ipFamilies", "ip_families")),
        ip_family_policy=_string_checked_elsewhere(_get(s, "ipFamilyPolicy", "ip_family_policy")),
    )
    return Service(metadata=meta, spec=spec)


def _string_checked_elsewhere(v: Any) -> str | None:
    """A string field whose JSON type ``_fields`` checks (a ``_CHECKED`` leaf, reported there
    when wrong): read without a second report, anything else as absent."""
    return go_text(str.__str__(v)) if isinstance(v, str) else None


def _strings_checked_elsewhere(v: Any) -> tuple[str, ...]:
    """The strings of a list field whose JSON type ``_fields`` checks, as above; anything else
    as empty."""
    if not isinstance(v, (list, tuple)):
        return ()
    return tuple(go_text(str.__str__(x)) for x in v if isinstance(x, str))


def _endpoint_ports(dec: _Dec, v: Any, path: str, *, slice_ports: bool) -> tuple[EndpointPort, ...]:
    out = []
    # discovery/v1 EndpointPort and core/v1 EndpointPort hold the same four fields.
    for i, p in enumerate(_list(dec, v, path)):
        pp = f"{path}[{i}]"
        p = _obj(dec, p, pp) or EMPTY_MAP
        if not _K_ENDPOINT_PORT.issuperset(p):
            dec.extra(p, _K_ENDPOINT_PORT, _S_SLICE_PORT if slice_ports else _S_ENDPOINT_PORT, pp)
        out.append(
            EndpointPort(
                port=_int(dec, p.get("port"), pp + ".port"),
                name=_str(dec, p.get("name"), pp + ".name"),
                # Defaulted to TCP when absent; "" too for v1 Endpoints (a plain string, where
                # SetDefaults_EndpointPort tests `== ""`), not for an EndpointSlice (a pointer,
                # tested `== nil`: "" stays, and validation reports it).
                protocol=_default(_str(dec, p.get("protocol"), pp + ".protocol"), "TCP",
                                  empty=not slice_ports),
                app_protocol=_str(dec, _get(p, "appProtocol", "app_protocol"), pp + ".appProtocol"),
            )
        )
    return tuple(out)


def _default(v: str | None, default: str, *, empty: bool = False) -> str:
    """Kubernetes defaulting of an optional string field: ``default`` when it is absent (and,
    with ``empty``, when it is "": the field is a plain Go string, whose zero value is "")."""
    return default if v is None or (empty and v == "") else v


def _endpoint_slice(dec: _Dec, d: Mapping[str, Any], meta: ObjectMeta) -> EndpointSlice:
    endpoints = []
    for i, ep in enumerate(_list(dec, d.get("endpoints"), "endpoints")):
        ep_path = f"endpoints[{i}]"
        ep = _obj(dec, ep, ep_path) or EMPTY_MAP
        if not _K_ENDPOINT.issuperset(ep):
            dec.extra(ep, _K_ENDPOINT, _S_ENDPOINT, ep_path)
        c = _obj(dec, ep.get("conditions"), ep_path + ".conditions") or EMPTY_MAP
        if not _K_CONDITIONS.issuperset(c):
            dec.extra(c, _K_CONDITIONS, _S_CONDITIONS, ep_path + ".conditions")
        endpoints.append(
            Endpoint(
                addresses=_str_list(dec, ep.get("addresses"), ep_path + ".addresses"),
                conditions=EndpointConditions(
                    ready=_bool(dec, c.get("ready"), ep_path + ".conditions.ready"),
                    serving=_bool(dec, c.get("serving"), ep_path + ".conditions.serving"),
                    terminating=_bool(dec, c.get("terminating"), ep_path + ".conditions.terminating"),
                ),
                hostname=_str(dec, ep.get("hostname"), ep_path + ".hostname"),
                node_name=_str(dec, _get(ep, "nodeName", "node_name"), ep_path + ".nodeName"),
                zone=_str(dec, ep.get("zone"), ep_path + ".zone"),
            )
        )
    return EndpointSlice(
        metadata=meta,
        # Required by the API: "" (not the model's default) so validation reports it.
        address_type=_str(dec, _get(d, "addressType", "address_type"), "addressType") or "",
        endpoints=tuple(endpoints),
        ports=_endpoint_ports(dec, d.get("ports"), "ports", slice_ports=True),
    )


def _addresses(dec: _Dec, v: Any, path: str) -> tuple[EndpointAddress, ...]:
    out = []
    for i, a in enumerate(_list(dec, v, path)):
        ap = f"{path}[{i}]"
        a = _obj(dec, a, ap) or EMPTY_MAP
        if not _K_ADDRESS.issuperset(a):
            dec.extra(a, _K_ADDRESS, _S_ADDRESS, ap)
        out.append(
            EndpointAddress(
                ip=_str(dec, a.get("ip"), ap + ".ip") or "",
                hostname=_str(dec, a.get("hostname"), ap + ".hostname"),
                node_name=_str(dec, _get(a, "nodeName", "node_name"), ap + ".nodeName"),
            )
        )
    return tuple(out)


def _endpoints(dec: _Dec, d: Mapping[str, Any], meta: ObjectMeta) -> Endpoints:
    subsets = []
    for i, ss in enumerate(_list(dec, d.get("subsets"), "subsets")):
        sp = f"subsets[{i}]"
        ss = _obj(dec, ss, sp) or EMPTY_MAP
        if not _K_SUBSET.issuperset(ss):
            dec.extra(ss, _K_SUBSET, _S_SUBSET, sp)
        subsets.append(
            EndpointSubset(
                addresses=_addresses(dec, ss.get("addresses"), sp + ".addresses"),
                not_ready_addresses=_addresses(
                    dec, _get(ss, "notReadyAddresses", "not_ready_addresses"), sp + ".notReadyAddresses"
                ),
                ports=_endpoint_ports(dec, ss.get("ports"), sp + ".ports", slice_ports=False),
            )
        )
    return Endpoints(metadata=meta, subsets=tuple(subsets))


def _secret(dec: _Dec, d: Mapping[str, Any], meta: ObjectMeta) -> Secret:
    data = _str_map(dec, d.get("data"), "data")
    if any("\n" in v or "\r" in v for v in data.values()):
        # The API server decodes `data` values with Go's base64.StdEncoding.Decode, which
        # ignores "\r" and "\n" (encoding/base64: "New line characters (\r and \n) are
        # ignored"): `base64 cert.pem` wraps at 76 columns, and a YAML block scalar of that
        # output is a valid Secret. Stored here as the API server would hand it back: unwrapped.
        data = {k: v.replace("\n", "").replace("\r", "") for k, v in data.items()}
    return Secret(
        metadata=meta,
        type=_str(dec, d.get("type"), "type") or "Opaque",
        data=data,
        string_data=_str_map(dec, _get(d, "stringData", "string_data"), "stringData"),
    )


def _config_map(dec: _Dec, d: Mapping[str, Any], meta: ObjectMeta) -> ConfigMap:
    binary = _str_map(dec, _get(d, "binaryData", "binary_data"), "binaryData")
    if any("\n" in v or "\r" in v for v in binary.values()):
        # base64 as a Secret's data: Go's decoder ignores line breaks (see _secret).
        binary = {k: v.replace("\n", "").replace("\r", "") for k, v in binary.items()}
    return ConfigMap(metadata=meta, data=_str_map(dec, d.get("data"), "data"), binary_data=binary)


# The fields of each mapping the decoders read (see _fields.shallow): the object fields named
# are the ones the decoder enters and checks itself.
_K_META, _S_META = shallow("ObjectMeta")
_K_INGRESS_SPEC, _S_INGRESS_SPEC = shallow("IngressSpec", ("defaultBackend", "rules", "tls"))
_K_RULE, _S_RULE = shallow("IngressRule", ("http",))
_K_HTTP, _S_HTTP = shallow("HTTPIngressRuleValue", ("paths",))
_K_PATH, _S_PATH = shallow("HTTPIngressPath", ("backend",))
_K_BACKEND, _S_BACKEND = shallow("IngressBackend", ("service", "resource"))
_K_SERVICE_BACKEND, _S_SERVICE_BACKEND = shallow("IngressServiceBackend", ("port",))
_K_BACKEND_PORT, _S_BACKEND_PORT = shallow("ServiceBackendPort")
_K_RESOURCE, _S_RESOURCE = shallow("TypedLocalObjectReference")
_K_TLS, _S_TLS = shallow("IngressTLS")
_K_CLASS_SPEC, _S_CLASS_SPEC = shallow("IngressClassSpec", ("parameters",))
_K_CLASS_PARAMS, _S_CLASS_PARAMS = shallow("IngressClassParametersReference")
# (The official client spells two ServiceSpec fields two ways: ``cluster_i_ps`` and
# ``cluster_ips``, ``external_i_ps`` and ``external_ips`` (kubernetes 37.0.2): both are known
# and type-checked, _fields._CLIENT_SPELLINGS. No other field of the kinds read differs between
# the two: tests/test_review_s22_todict.py.)
_K_SERVICE_SPEC, _S_SERVICE_SPEC = shallow("ServiceSpec", ("ports",))
_K_SERVICE_PORT, _S_SERVICE_PORT = shallow("ServicePort")
_K_ENDPOINT, _S_ENDPOINT = shallow("Endpoint", ("conditions",))
_K_CONDITIONS, _S_CONDITIONS = shallow("EndpointConditions")
_K_ENDPOINT_PORT, _S_ENDPOINT_PORT = shallow("EndpointPort")
_S_SLICE_PORT = shallow("discovery.EndpointPort")[1]
_K_SUBSET, _S_SUBSET = shallow("EndpointSubset", ("addresses", "notReadyAddresses", "ports"))
_K_ADDRESS, _S_ADDRESS = shallow("EndpointAddress")
#: Kind -> its top-level fields, as above.
_TOP: dict[str, tuple[frozenset[str], Schema]] = {
    "Ingress": shallow("Ingress", ("metadata", "spec")),
    "IngressClass": shallow("IngressClass", ("metadata", "spec")),
    "Service": shallow("Service", ("metadata", "spec")),
    "EndpointSlice": shallow("EndpointSlice", ("metadata", "endpoints", "ports")),
    "Endpoints": shallow("Endpoints", ("metadata", "subsets")),
    "Secret": shallow("Secret", ("metadata",)),
}

_Decoder = Callable[[_Dec, Mapping[str, Any], ObjectMeta], Any]
_Validator = Callable[[Any, str], list[FieldError]]

#: (apiVersion, kind) -> (decoder, validator, attribute of Resources, cluster-scoped).
_KINDS: dict[tuple[str, str], tuple[_Decoder, _Validator, str, bool]] = {
    ("networking.k8s.io/v1", "Ingress"): (_ingress, validate_ingress, "ingresses", False),
    ("networking.k8s.io/v1", "IngressClass"): (
        _ingress_class, validate_ingress_class, "ingress_classes", True
    ),
    ("v1", "Service"): (_service, validate_service, "services", False),
    ("discovery.k8s.io/v1", "EndpointSlice"): (
        _endpoint_slice, validate_endpoint_slice, "endpoint_slices", False
    ),
    ("v1", "Endpoints"): (_endpoints, validate_endpoints, "endpoints", False),
    ("v1", "Secret"): (_secret, validate_secret, "secrets", False),
}


def unread_versions(ignored: Iterable[Mapping[str, Any]]) -> list[str]:
    """A note per ignored object of a kind read under another apiVersion (an
    ``extensions/v1beta1`` Ingress next to ``networking.k8s.io/v1`` ones), or of a kind that
    is a misspelling of one read (``Ingres``, ``ingress``, ``Servce``: ``kubectl apply``
    refuses it, "no matches for kind"): kept aside as the contract says, but its routes do
    not exist, which ``check`` must not leave unsaid. Other kinds (Deployment, a CRD's
    IngressRoute) are kept aside without a word."""
    read = {kind: (api, entry[3]) for (api, kind), entry in _KINDS.items()}
    notes = []
    #: Per kind string: difflib for each set-aside object cost ~135 ms per 10,000 of them
    #: (a folder of Deployments), at every reload.
    meant_of: dict[str, str | None] = {}
    for obj in ignored:
        kind, api = obj.get("kind"), _get(obj, "apiVersion", "api_version")
        if not isinstance(kind, str):
            continue
        if kind not in meant_of:
            meant_of[kind] = _read_kind_meant(kind, read)
        meant = meant_of[kind]
        if meant is None:
            continue
        meta = obj.get("metadata")
        meta = meta if isinstance(meta, Mapping) else {}
        read_api, cluster_scoped = read[meant]
        name = str(meta.get("name"))
        if not cluster_scoped:
            name = f"{meta.get('namespace') or 'default'}/{name}"
        why = (f"apiVersion {api} is not read (ingresslib reads {read_api} {kind} objects)"
               if meant == kind else f"kind {kind} is not read (did you mean {meant}?)")
        # Ignored objects keep the caller's strings ("kept aside as read"): a lone surrogate
        # from from_dicts would otherwise reach check/explain's output.
        notes.append(go_text(f"{kind} {name}: {why}; the object is ignored"))
    return notes


def _read_kind_meant(kind: str, read: Mapping[str, object]) -> str | None:
    """The read kind ``kind`` is, or is most likely a misspelling of (None: another kind).
    The cut-off keeps real kinds near a read one out: AWS's ``IngressClassParams`` (0.8),
    Traefik's ``IngressRoute``, ``ServiceAccount``, ``SecretStore`` (under 0.75)."""
    import difflib

    if kind in read:
        return kind
    by_lower = {k.lower(): k for k in read}
    near = difflib.get_close_matches(kind.lower(), by_lower, n=1, cutoff=0.85)
    return by_lower[near[0]] if near else None


def _covers(a: str, b: str) -> bool:
    """Whether field path ``a`` is ``b`` or one of its ancestors."""
    if not a:
        return True
    return b == a or (b.startswith(a) and b[len(a)] in ".[")


#: Errors validators report on an object *above* the fields they depend on, by detail, with the
#: children whose absence causes them: a placeholder (`()` for a list that was a string, None
#: for a number that was "80") under one of those children may be their only cause. An
#: ancestor's other errors (label values, a Secret's total size, ...) never come from a
#: placeholder below it and are kept.
_ANCESTOR_CAUSES: dict[str, tuple[str, ...]] = {
    SPEC_RULES_DETAIL: ("rules", "defaultBackend"),
    "port name or number is required": ("service",),
    "must specify `addresses` or `notReadyAddresses`": ("addresses", "notReadyAddresses"),
}


def _caused_by(problem: FieldError, placeholder: str, entry: bool) -> bool:
    """Whether validation error ``problem`` may come from the placeholder decoded at path
    ``placeholder`` in place of a wrongly typed value (``entry``: a map entry left out)."""
    fld = problem.field
    if _covers(placeholder, fld):
        return True  # about the placeholder itself, or inside it
    if (entry and placeholder.startswith("stringData[")
            and fld == "data" + placeholder[len("stringData"):]):
        # A Secret's stringData is validated merged into data (`data[tls.crt]: Required value`
        # for a tls.crt written `tls.crt: 1` under stringData).
        return True
    if (placeholder.endswith(".port") and fld == placeholder[:-len("port")] + "targetPort"
            and type(problem.value) is int and problem.value == 0):
        # A Service port's targetPort left unset is its port (SetDefaults_Service, before
        # validation): the placeholder 0 of a wrongly typed port ("80") made it 0 too. (A
        # targetPort written out of range holds its own value, never 0: 0 is unset.)
        return True
    if entry or not _covers(fld, placeholder):
        # A map entry left out hides nothing above it: the errors at `metadata.labels` are
        # about the other labels. Nor does anything hide an unrelated path.
        return False
    if problem.type == DUPLICATE:
        # `spec.ports[1]: Duplicate value` (a Service's port and protocol pair): two ports whose
        # numbers both became the placeholder 0.
        causes: tuple[str, ...] | None = ("port", "protocol")
    else:
        causes = _ANCESTOR_CAUSES.get(problem.detail)
    if causes is None:
        return False
    rest = placeholder[(len(fld) + 1) if fld else 0:]  # the path below `fld`
    return any(rest == c or rest.startswith((c + ".", c + "[")) for c in causes)


def _copy_tree(root: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of a parsed object, in plain dicts and lists.

    Plain dicts and lists, not read-only views: ``Resources.ignored`` promises only "kept aside
    as read" (CONTRACT.md: "Other kinds are kept aside and ignored, not rejected"), and users
    pass these objects on (``json.dumps``, ``yaml.safe_dump``, another client), which a
    ``MappingProxyType`` or tuples would break, and a list copied as a tuple would no longer
    compare equal to the original.

    Dicts and lists (and other Mappings, as dicts) are copied, JSON scalars shared, anything
    else goes through ``copy.deepcopy`` (shared as it is when it cannot be copied): a
    ``bytearray`` stays a (copied) bytearray, a ``memoryview`` the caller's. (A ``marshal``
    round trip, once the fast path, gave ``bytes`` for every buffer object: an
    ``array('i', [1])`` came back as ``b'\\x01\\x00\\x00\\x00'``. Telling them apart took a walk
    that cost more than this one: 13-25 us against 12-21 us for a Deployment or a Pod.)

    An explicit stack, not recursion (the decoder takes a file of 600 nested Lists; a deeply
    nested object of another kind must not raise RecursionError either), and a memo, so shared
    or self-referencing parts are copied once, as shared as before.
    """
    memo: dict[int, Any] = {}
    out: dict[str, Any] = {}
    memo[id(root)] = out
    stack: list[tuple[Any, Any]] = [(root, out)]
    while stack:
        src, dst = stack.pop()
        is_list = type(dst) is list
        for k, v in (enumerate(src) if is_list else src.items()):
            t = type(v)
            if t is str or t is int or t is bool or t is float or v is None:
                c = v
            elif t is dict or t is list or isinstance(v, Mapping):
                # (Another Mapping type becomes a dict: equal, and serializable.)
                c = memo.get(id(v))
                if c is None:
                    c = memo[id(v)] = [] if t is list else {}
                    stack.append((v, c))
            else:
                known = len(memo)
                try:
                    c = copy.deepcopy(v, memo)
                except (TypeError, copy.Error):
                    # What cannot be copied (a memoryview, a lock, a generator: "cannot
                    # pickle") is kept as it is, shared: the object is kept aside, not
                    # refused (the TypeError escaped from_dicts). The copies the failed call
                    # began are dropped from the memo (the last entries): a list it had
                    # entered, half filled, would stand for that list where it recurs.
                    while len(memo) > known:
                        memo.popitem()
                    c = v
            if is_list:
                dst.append(c)
            else:
                dst[k] = c
    return out


def _needs_kind(obj: Mapping[str, Any]) -> str:
    """The detail of a missing ``kind`` or ``apiVersion``. The official client's ``to_dict()``
    (the snake_case ``api_version`` key, which only it writes) leaves both None in the items of
    a list it read (the API server sets them on the list only: ``[i.to_dict() for i in
    api.list_ingress_for_all_namespaces().items]``) and in a model built without them: say so,
    with the form that works."""
    detail = "every object needs `kind` and `apiVersion`"
    if ("api_version" in obj and obj.get("api_version") is None and obj.get("apiVersion") is None
            and obj.get("kind") is None):
        detail += (" (the official client leaves kind and api_version None in the items of a "
                   "list it read: pass the list's to_dict(), whose kind names its items; and in "
                   "a model built without them: set them)")
    return detail


class Collector:
    """Accumulates decoded objects and errors over several inputs (files), then builds one
    :class:`Resources` or raises one :class:`ValidationError` with everything found."""

    __slots__ = ("lists", "ignored", "errors", "copy_ignored", "warnings", "duplicates",
                 "duplicate_lines", "check_fields", "text_name")

    def __init__(self, *, copy_ignored: bool = True, check_fields: bool = True) -> None:
        #: Keep a deep copy of objects of other kinds (the default). A caller whose objects
        #: nobody else holds (freshly parsed YAML) may pass False to skip the copy.
        self.copy_ignored = copy_ignored
        #: Look for unknown fields (``warnings``). A caller that drops the warnings (objects
        #: from the API server, which has already dropped what it does not know) may pass
        #: False: the status and managedFields of every object are then not walked.
        self.check_fields = check_fields
        self.lists: dict[str, list[Any]] = {
            "ingresses": [], "ingress_classes": [], "services": [],
            "endpoint_slices": [], "endpoints": [], "secrets": [],
            "config_maps": [],
        }
        self.ignored: list[Mapping[str, Any]] = []
        self.errors: list[FieldError] = []
        #: Unknown and duplicate fields of the objects read (valid or not): ``Resources.warnings``.
        self.warnings: list[FieldError] = []
        #: Set by the YAML loader (or the JSON decoder, ``_json_manifests._json_decoder``) for the
        #: document being added, when one of its mappings has a key written twice:
        #: ``{id(mapping): [key, ...]}`` (the parsed dict loses them).
        self.duplicates: dict[int, list[Any]] | None = None
        #: The same keys with the 1-based lines each is written at (YAML only): ``{id(mapping):
        #: {key: [line, ...]}}``.
        self.duplicate_lines: dict[int, dict[Any, list[int]]] | None = None
        #: What the errors of a whole document name when its text has no ``source``
        #: (``"<text>"``, set by ``parse_manifests``): the name its syntax errors and
        #: "expected an object" errors already carry, so that every whole-document error
        #: reads ``<text>: document 1: ...`` and none ``document 1: ...``.
        self.text_name: str | None = None

    def error(self, err: FieldError, source: str | None) -> None:
        self.errors.append(_with_source(err, source))

    def _early(self, source: str | None, label: str, field: str, type: str, detail: str,
               value: Any = None, has_value: bool = False) -> None:
        """An error found before the object has a kind and a name: ``object`` is the file
        (or the object's position when there is no file, or :attr:`text_name` for text
        without one), ``field`` says where in it."""
        name = source if source is not None else self.text_name
        if name is None:
            name = label
        else:
            field = f"{label}: {field}" if field else label
        self.errors.append(FieldError(name, field, type, detail, value, has_value))

    def add_objects(self, objects: Iterable[Any], source: str | None) -> None:
        if isinstance(objects, Mapping):
            # One object (or one list, e.g. `list_namespaced_ingress(...).to_dict()`) passed
            # on its own instead of in a list.
            self.add(objects, source)
            return
        if isinstance(objects, (str, bytes, bytearray, memoryview, mmap.mmap)):
            # Manifest text handed to from_dicts: iterated, it was one "expected an object,
            # got string" per character (30,000 errors for a 30 KB file), one per byte for a
            # memoryview (its items are ints) or an mmap. One error, which says what reads text.
            detail = (f"expected a list of objects, got {_jtype(objects)} (manifest text is "
                      "read by parse_manifests)")
            self.errors.append(FieldError(source or "input", "", INVALID, detail))
            return
        try:
            items = iter(objects)
        except TypeError:
            # `objects` itself is not iterable (from_dicts(42)). Only `iter`: a TypeError
            # while adding an object is a defect of its own, not "got list".
            detail = f"expected a list of objects, got {_jtype(objects)}"
            self.errors.append(FieldError(source or "input", "", INVALID, detail))
            return
        for i, obj in enumerate(items, 1):
            self.add(obj, source, where=f"object {i}")

    def add(
        self, obj: Any, source: str | None, *, list_kind: tuple[str, str] | None = None, where: str = ""
    ) -> None:
        # Lists nest (kubectl flattens them recursively); an explicit stack rather than
        # recursion, so a file of 600 nested Lists is decoded, not a RecursionError.
        stack: list[tuple[Any, tuple[str, str] | None, str]] = [(obj, list_kind, where)]
        while stack:
            item, item_list_kind, item_where = stack.pop()
            nested = self._add_one(item, source, item_list_kind, item_where)
            if nested:
                stack.extend(reversed(nested))

    def _add_one(
        self, obj: Any, source: str | None, list_kind: tuple[str, str] | None, where: str
    ) -> list[tuple[Any, tuple[str, str] | None, str]] | None:
        """Decode one object; for a list, return its items (to be added next, in order)."""
        label = where or "object"
        if not isinstance(obj, Mapping):
            self._early(source, label, "", INVALID, f"expected an object, got {_jtype(obj)}")
            return None
        kind = obj.get("kind")
        api = _get(obj, "apiVersion", "api_version")
        if list_kind is not None:
            # Items of a typed list (IngressList from the API, or its to_dict()) carry no
            # kind/apiVersion of their own.
            api = api if api is not None else list_kind[0]
            kind = kind if kind is not None else list_kind[1]
        if not (isinstance(kind, str) and kind and isinstance(api, str) and api):
            field, value = ("kind", kind) if not (isinstance(kind, str) and kind) else (
                "apiVersion", api)
            if value is None or isinstance(value, str):
                self._early(source, label, field, REQUIRED, _needs_kind(obj))
            else:
                # Written, but not a string (`kind: 5`, `apiVersion: [v1]`): not "Required
                # value" (it is there, and a user looking for a missing line finds none), but
                # what is wrong with it, with the value, as a field of the wrong type is told.
                scalar = _is_scalar(value)
                self._early(source, label, field, INVALID,
                            f"expected string, got {_jtype(value)}", value, scalar)
            return None
        if kind == "List" or (kind.endswith("List") and "items" in obj):
            return self._list_items(obj, api, kind, source, label)
        entry = _KINDS.get((api, kind))
        if entry is None:
            # SEMANTICS §1: "Other kinds are kept aside, not rejected" (other apiVersions of
            # the same kinds too, e.g. extensions/v1beta1 Ingress). Kept as a deep copy: the
            # caller's dict (from_dicts, a watch event) may change afterwards, and that must not
            # change this Resources, nor the ResourceStore holding it.
            self.ignored.append(_copy_tree(obj) if self.copy_ignored else obj)
            if kind == "ConfigMap" and api == "v1":
                self._config_map(obj, source)
            return None
        decoder, validator, attr, cluster_scoped = entry
        self._decode_one(obj, kind, decoder, validator, attr, cluster_scoped, source)
        return None

    def _config_map(self, obj: Mapping[str, Any], source: str | None) -> None:
        """A v1 ConfigMap, also kept aside in ``ignored`` (it routes nothing: SEMANTICS §1,
        CONTRACT): decoded into ``config_maps`` for the ``custom-headers`` annotation
        (proxy/_header_sets.py) when the API server would take it; else its problems are
        warnings ("...; not used by custom-headers, --tcp-services-configmap or
        --udp-services-configmap": ``_NOT_USED``) and the load goes on, as before. Its
        fields are not checked for unknown ones (other kinds are not)."""
        dec = _Dec("")
        dec.check = False
        meta = _meta(dec, obj)
        dec.obj = f"ConfigMap {meta.namespace}/{meta.name or '<no name>'}"
        model = _config_map(dec, obj, meta)
        problems = [e if e.object == dec.obj else dataclasses.replace(e, object=dec.obj)
                    for e in dec.errors] or validate_config_map(model, dec.obj)
        if problems:
            self.warnings.extend(_with_source(dataclasses.replace(
                p, detail=(p.detail + "; " if p.detail else "") + _NOT_USED),
                source) for p in unique_errors(problems))
            return
        self.lists["config_maps"].append(model)

    def _list_items(
        self, obj: Mapping[str, Any], api: str, kind: str, source: str | None, label: str
    ) -> list[tuple[Any, tuple[str, str] | None, str]] | None:
        items = obj.get("items")
        if items is None:
            return None
        if not isinstance(items, (list, tuple)):
            self._early(source, label, "items", INVALID, f"expected array, got {_jtype(items)}")
            return None
        list_kind = None if kind == "List" else (api, kind[: -len("List")])
        return [(item, list_kind, f"{label}: items[{i}]") for i, item in enumerate(items)]

    def _decode_one(
        self,
        obj: Mapping[str, Any],
        kind: str,
        decoder: _Decoder,
        validator: _Validator,
        attr: str,
        cluster_scoped: bool,
        source: str | None,
    ) -> None:
        dec = _Dec("")
        dec.check = self.check_fields
        meta = _meta(dec, obj)
        name = meta.name or "<no name>"
        dec.obj = f"{kind} {name}" if cluster_scoped else f"{kind} {meta.namespace}/{name}"
        model = decoder(dec, obj, meta)
        known, schema = _TOP[kind]
        if not known.issuperset(obj):  # after the decoder: `status` comes last in the warnings
            dec.extra(obj, known, schema, "")
        if dec.unknown or self.duplicates or dec.repeated:
            self._warn(dec, obj, source)
        problems = validator(model, dec.obj)
        if dec.empty_rules:
            # The model holds `rules: []` and an absent `rules` alike; the API server prints
            # json.Marshal of the slice: `[]` for the first, `null` for the second.
            problems = [
                dataclasses.replace(p, value=[])
                if p.field == "spec" and p.detail == SPEC_RULES_DETAIL else p
                for p in problems
            ]
        if dec.errors:
            # Fix up the label of errors raised before the name was known.
            decode_errors = [
                e
                if e.object == dec.obj
                else dataclasses.replace(e, object=dec.obj)
                for e in dec.errors
            ]
            # A wrongly typed field was replaced by a placeholder; drop what validation says
            # about that placeholder ("port name or number is required" when the number was
            # "80"), so each mistake is reported once, and nothing else.
            paths = [(e.field, e.field in dec.entries) for e in decode_errors]
            problems = unique_errors(decode_errors + [
                p for p in problems if not any(_caused_by(p, q, entry) for q, entry in paths)
            ])
        if problems:
            self.errors.extend(_with_source(p, source) for p in problems)
            return
        self.lists[attr].append(model)

    def _warn(self, dec: _Dec, obj: Mapping[str, Any], source: str | None) -> None:
        """Warnings for the unknown fields the decoder found and the keys the parser saw
        twice in ``obj``: what ``kubectl apply`` with ``--validate=warn`` prints, where the API
        server's ``fieldValidation=Warn`` answers ``unknown field "spec.foo"``."""
        found: list[tuple[str, str, int | None]] = [
            (UNKNOWN_FIELD, path, None) for path in dec.unknown]
        if self.duplicates:
            found += [(DUPLICATE_FIELD, path, line) for path, line
                      in duplicate_paths(obj, self.duplicates, self.duplicate_lines)]
        found += [(DUPLICATE_FIELD, path, None) for path in dec.repeated]
        self.warnings.extend(FieldWarning(dec.obj, path, what, source=source, line=line)
                             for what, path, line in found)

    def result(self) -> Resources:
        if self.errors:
            # The warnings go with the errors (a typo is often why a field is missing).
            raise ValidationError(self.errors, warnings=self.warnings)
        lists = self.lists
        _log.debug(
            "decoded %d ingresses, %d services, %d ignored objects",
            len(lists["ingresses"]), len(lists["services"]), len(self.ignored),
        )
        return Resources(
            ingresses=tuple(lists["ingresses"]),
            ingress_classes=tuple(lists["ingress_classes"]),
            services=tuple(lists["services"]),
            endpoint_slices=tuple(lists["endpoint_slices"]),
            endpoints=tuple(lists["endpoints"]),
            secrets=tuple(lists["secrets"]),
            ignored=tuple(self.ignored),
            config_maps=tuple(lists["config_maps"]),
            warnings=tuple(self.warnings),
        )


def decode_resources(objects: Iterable[Mapping[str, Any]], *, source: str | None = None,
                     check_fields: bool = True) -> Resources:
    """Decode and validate already-parsed objects (camelCase API form or the official client's
    snake_case ``to_dict()`` form); ``kind: List`` and typed lists unwrap.

    Raises :class:`ValidationError` listing every problem of every object. Unknown fields
    are ``Resources.warnings``; ``check_fields=False`` skips looking for them (objects from
    the API server, which has dropped them already).

    >>> res = decode_resources([{"apiVersion": "v1", "kind": "Service",
    ...     "metadata": {"name": "web"}, "spec": {"ports": [{"port": 80, "target_port": 8080}]}}])
    >>> res.services[0].spec.ports[0].target_port
    8080
    """
    c = Collector(check_fields=check_fields)
    c.add_objects(objects, source)
    return c.result()
