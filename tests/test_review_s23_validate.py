"""Session 23 review (Y1) of manifest validation against the API server.

An object field ingresslib does not read (``status``, ``metadata.ownerReferences``,
``spec.sessionAffinityConfig``, an EndpointSlice's ``targetRef``...) holding a value of the
wrong JSON shape (a map where the field is a list of objects, a list or a scalar where it is
one object) is the API server decoder's error ("json: cannot unmarshal object into Go struct
field ObjectMeta.metadata.ownerReferences of type []v1.OwnerReference"); its keys are no
fields of the type. ``_fields`` looked into such a value anyway and warned about its keys as
unknown fields (``unknown field "status.loadBalancer.ingress.ip"`` for a map written where
the list belongs), naming fields that exist and hiding the real problem. It now notes the
value in ``extra_fields``' ``wrong`` (path, value, the JSON type expected) and never looks into
it.
"""

from __future__ import annotations

import typing
from typing import Any

import msgspec
import pytest
from lightkube.models import core_v1, discovery_v1, networking_v1

from ingresslib import Resources, ValidationError, parse_manifests
from ingresslib._fields import _TYPES, ROOTS, extra_fields, shallow

INGRESS = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  namespace: shop
spec:
  defaultBackend: {service: {name: web, port: {number: 80}}}
"""


def _warned(text: str) -> list[str]:
    """The unknown-field warnings of ``text``, whether it loads or not."""
    try:
        warnings = parse_manifests(text).warnings
    except ValidationError as exc:
        warnings = exc.warnings
    return [w.field for w in warnings if w.type == "unknown field"]


def _extra(kind: str, obj: dict[str, Any]) -> tuple[list[str], list[tuple[str, Any, str]]]:
    """What the decoder's ``extra`` gets for a top-level object of ``kind``."""
    known, schema = shallow(kind, ("metadata", "spec"))
    out: list[str] = []
    wrong: list[tuple[str, Any, str]] = []
    extra_fields(schema, known, obj, "", out, wrong)
    return out, wrong


@pytest.mark.parametrize("tail, hidden", [
    # A map where the list of objects belongs: its keys are no fields (the old walk read the
    # map as one item and warned about "status.loadBalancer.ingress.lb1").
    ("status: {loadBalancer: {ingress: {lb1: {ip: 10.0.0.1}}}}\n", "status.loadBalancer.ingress."),
    # A list where one object belongs ("status[0].balancer": status is no list).
    ("status: [{balancer: {}}]\n", "status[0]."),
])
def test_a_value_of_the_wrong_shape_is_not_read_as_unknown_fields(tail: str, hidden: str) -> None:
    warned = _warned(INGRESS + tail + "x: 1\n")
    assert warned == ["x"], hidden  # the typo beside it is still seen


def test_the_metadata_fields_the_decoder_skips_are_not_read_when_mis_shaped() -> None:
    # ownerReferences written as a map (as labels are): the API server refuses the object
    # (a type error), it has no field "metadata.ownerReferences.pod".
    text = INGRESS.replace("  namespace: shop\n",
                           "  namespace: shop\n  ownerReferences: {pod: web-1}\n")
    assert _warned(text) == []


def test_extra_fields_notes_each_wrong_shape_with_the_type_expected() -> None:
    obj = {
        "metadata": {"name": "web"},
        "status": {"loadBalancer": {"ingress": {"ip": "10.0.0.1"}}},
    }
    assert _extra("Ingress", obj) == ([], [("status.loadBalancer.ingress", {"ip": "10.0.0.1"},
                                            "array")])
    # A scalar for an object, an item of a list that is no object (a null item is Go's zero
    # value and decodes), and the object fields below a well-shaped list still looked into.
    svc = {"status": {"loadBalancer": {"ingress": [None, 5, {"ip": "1.2.3.4", "bogus": 1,
                                                              "ports": {"port": 80}}]},
                      "conditions": "ready"}}
    out, wrong = _extra("Service", svc)
    assert out == ["status.loadBalancer.ingress[2].bogus"]
    assert wrong == [("status.loadBalancer.ingress[1]", 5, "object"),
                     ("status.loadBalancer.ingress[2].ports", {"port": 80}, "array"),
                     ("status.conditions", "ready", "array")]
    assert _extra("Service", {"status": 7}) == ([], [("status", 7, "object")])


def test_a_well_shaped_object_has_nothing_wrong_and_its_typos_are_still_warned() -> None:
    out, wrong = _extra("Service", {
        "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4", "ipMode": "VIP"}]},
                   "conditions": [{"type": "A", "status": "True", "reson": "x"}]},
        "metadata": {"name": "s"},
    })
    assert (out, wrong) == (["status.conditions[0].reson"], [])
    # The snake_case form of the official client's to_dict(): same paths, JSON spelling.
    out, wrong = _extra("Service", {"status": {"load_balancer": {"ingress": {"ip": "1"}}}})
    assert (out, wrong) == ([], [("status.loadBalancer.ingress", {"ip": "1"}, "array")])


def test_from_dicts_with_a_mis_shaped_status_names_no_unknown_field() -> None:
    doc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "a"},
           "spec": {"ports": [{"port": 80}],
                    "sessionAffinityConfig": [{"clientIP": {"timeout": 5}}]}}
    try:
        warnings = Resources.from_dicts([doc]).warnings
    except ValidationError as exc:
        warnings = exc.warnings
    assert [w.field for w in warnings] == []


def test_the_list_table_is_the_kubernetes_openapi_one() -> None:
    """``_LISTS`` names exactly the object fields lightkube-models (generated from the
    Kubernetes OpenAPI spec) types as lists, for every type of ``_TYPES``."""
    from ingresslib._fields import _LISTS

    leaves = {"Time", "MicroTime", "IntOrString", "Quantity"}

    def struct_of(tp: Any) -> Any:
        if typing.get_origin(tp) is not None:
            found = [struct_of(a) for a in typing.get_args(tp)]
            return next((f for f in found if f is not None), None)
        if isinstance(tp, type) and issubclass(tp, msgspec.Struct) and tp.__name__ not in leaves:
            return tp
        return None

    def is_list(tp: Any) -> bool:
        if typing.get_origin(tp) is typing.Union:
            return any(is_list(a) for a in typing.get_args(tp))
        return typing.get_origin(tp) is list

    seen: dict[str, frozenset[str]] = {}

    def visit(cls: Any, ours: str) -> None:
        if ours in seen:
            return
        hints = typing.get_type_hints(cls, vars(__import__(cls.__module__, fromlist=["x"])))
        lists = set()
        seen[ours] = frozenset()
        for f in msgspec.structs.fields(cls):
            child = struct_of(hints[f.name])
            if child is None:
                continue
            if is_list(hints[f.name]):
                lists.add(f.encode_name)
            name = child.__name__
            if child.__module__.endswith("discovery_v1") and name == "EndpointPort":
                name = "discovery.EndpointPort"
            visit(child, name)
        seen[ours] = frozenset(lists)

    roots = {"Ingress": networking_v1.Ingress, "IngressClass": networking_v1.IngressClass,
             "Service": core_v1.Service, "EndpointSlice": discovery_v1.EndpointSlice,
             "Endpoints": core_v1.Endpoints, "Secret": core_v1.Secret}
    for kind, cls in roots.items():
        visit(cls, kind)
    assert set(seen) == set(_TYPES) and set(roots) == set(ROOTS)
    assert {k: v for k, v in seen.items() if v} == _LISTS


# --- the leaves the decoder does not read --------------------------------------------------
#
# ``spec.sessionAffinity: 5``, ``immutable: "true"``, ``metadata.finalizers: x``: the API
# server's decoder refuses each ("json: cannot unmarshal number into Go struct field
# ServiceSpec.spec.sessionAffinity of type v1.ServiceAffinity"); ingresslib, which does not
# read them, loaded them without a word. ``_fields._CHECKED`` names their JSON types, and
# ``extra_fields`` notes a value of another type in ``wrong``.


def _extra_top(kind: str, obj: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """``wrong`` for the fields of ``obj`` a decoder of ``kind`` leaves to ``extra_fields``,
    one mapping at a time as the decoder hands them over (top level, metadata, spec)."""
    wrong: list[tuple[str, Any, str]] = []
    out: list[str] = []
    top_known, top = shallow(kind, tuple(k for k in ("metadata", "spec") if k in obj))
    extra_fields(top, top_known, obj, "", out, wrong)
    meta_known, meta = shallow("ObjectMeta")
    extra_fields(meta, meta_known, obj.get("metadata", {}), "metadata", out, wrong)
    # The spec's object fields the decoder enters itself (as _decode's shallow() calls).
    spec_type, decoded = {"Service": ("ServiceSpec", ("ports",)),
                          "Ingress": ("IngressSpec", ("defaultBackend", "rules", "tls"))
                          }.get(kind, ("", ()))
    if spec_type and "spec" in obj:
        spec_known, spec = shallow(spec_type, decoded)
        extra_fields(spec, spec_known, obj["spec"], "spec", out, wrong)
    assert out == []
    return wrong


def test_a_leaf_the_decoder_skips_is_type_checked() -> None:
    svc: dict[str, Any] = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": "s", "generation": "3", "finalizers": "a"},
           "spec": {"ports": [{"port": 80}], "sessionAffinity": 5,
                    "publishNotReadyAddresses": "true", "externalIPs": ["1.2.3.4", 7, None],
                    "ipFamilies": ["IPv4"]},
           "status": {"conditions": [{"type": "Ready", "status": True,
                                      "lastTransitionTime": 5}]}}
    assert _extra_top("Service", svc) == [
        ("status.conditions[0].status", True, "string"),
        ("status.conditions[0].lastTransitionTime", 5, "string"),
        ("metadata.generation", "3", "integer"),
        ("metadata.finalizers", "a", "array"),
        ("spec.sessionAffinity", 5, "string"),
        ("spec.publishNotReadyAddresses", "true", "boolean"),
        ("spec.externalIPs[1]", 7, "string"),
    ]
    sec = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "immutable": "yes"}
    assert _extra_top("Secret", sec) == [("immutable", "yes", "boolean")]


def test_well_typed_leaves_and_the_official_clients_form_pass() -> None:
    import datetime

    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    svc: dict[str, Any] = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": "s", "generation": 3, "finalizers": ["a", None],
                        "deletion_timestamp": now, "deletionGracePeriodSeconds": None},
           "spec": {"ports": [{"port": 80}], "session_affinity": "None", "ipFamilies": ["IPv4"],
                    "allocate_load_balancer_node_ports": False, "healthCheckNodePort": 30001},
           "status": {"conditions": [{"type": "Ready", "status": "True",
                                      "last_transition_time": now,
                                      "observedGeneration": 2}],
                      "loadBalancer": {"ingress": [{"ip": "1.2.3.4", "ipMode": "VIP"}]}}}
    assert _extra_top("Service", svc) == []
    # The snake_case spelling of a wrong one is reported at its JSON path.
    svc["spec"]["session_affinity"] = ["ClientIP"]
    assert _extra_top("Service", svc) == [("spec.sessionAffinity", ["ClientIP"], "string")]


def test_a_map_of_strings_is_checked_entry_by_entry() -> None:
    from ingresslib._fields import _SCHEMAS

    wrong: list[tuple[str, Any, str]] = []
    ep = _SCHEMAS["Endpoint"]
    extra_fields(ep, frozenset(), {"deprecatedTopology": {"zone": "a", "rack": 3, "x": None}},
                 "endpoints[0]", [], wrong)
    extra_fields(ep, frozenset(), {"deprecatedTopology": ["zone"]}, "endpoints[1]", [], wrong)
    assert wrong == [("endpoints[0].deprecatedTopology[rack]", 3, "string"),
                     ("endpoints[1].deprecatedTopology", ["zone"], "object")]


_OWNER = [{"apiVersion": "v1", "kind": "K", "name": "n", "uid": "u"}]
#: One object of each kind reaching every type of ``_TYPES``.
_FULL: dict[str, dict[str, Any]] = {
    "Ingress": {
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "x", "namespace": "d", "managedFields": [{"manager": "m"}],
                     "ownerReferences": _OWNER},
        "spec": {"defaultBackend": {"service": {"name": "s", "port": {"number": 80}}},
                 "rules": [{"host": "a.com", "http": {"paths": [
                     {"path": "/", "pathType": "Prefix",
                      "backend": {"resource": {"kind": "K", "name": "n"}}}]}}],
                 "tls": [{"hosts": ["a.com"]}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4", "ports": [{"port": 80}]}]}}},
    "IngressClass": {
        "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "x"},
        "spec": {"controller": "a.io/b", "parameters": {"kind": "K", "name": "n"}}},
    "Service": {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
        "spec": {"ports": [{"port": 80}], "sessionAffinityConfig": {"clientIP": {}}},
        "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4", "ports": [{"port": 80}]}]},
                   "conditions": [{"type": "A", "status": "True"}]}},
    "EndpointSlice": {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "metadata": {"name": "x"},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["1.2.3.4"], "conditions": {}, "targetRef": {"kind": "Pod"},
                       "hints": {"forZones": [{"name": "z"}], "forNodes": [{"name": "n"}]}}],
        "ports": [{"port": 80}]},
    "Endpoints": {
        "apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "x"},
        "subsets": [{"addresses": [{"ip": "1.2.3.4", "targetRef": {"kind": "Pod"}}],
                     "ports": [{"port": 80}]}]},
    "Secret": {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}},
}


def _places(tname: str, obj: dict[str, Any], path: tuple[Any, ...],
            out: list[tuple[str, tuple[Any, ...]]]) -> None:
    out.append((tname, path))
    for field, child in _TYPES[tname].items():
        if child is None or field not in obj:
            continue
        value = obj[field]
        for i, item in enumerate(value) if isinstance(value, list) else [(None, value)]:
            _places(child, item, path + ((field, i) if i is not None else (field,)), out)


def test_every_leaf_of_the_wrong_type_is_the_decoders_error_or_checked_here() -> None:
    """A wrong value in any leaf of any type, in turn: the decoder reports it (once), or it
    is one of ``_CHECKED`` (never reported twice: the decoder does not read those, and with
    ``extra_fields``' ``wrong`` wired to its errors it reports each once)."""
    import copy

    from ingresslib._fields import _CHECKED

    seen_checked: set[tuple[str, str]] = set()
    for kind, doc in _FULL.items():
        Resources.from_dicts([copy.deepcopy(doc)])  # valid as it is
        places: list[tuple[str, tuple[Any, ...]]] = []
        _places(kind, doc, (), places)
        for tname, path in places:
            for field, child in _TYPES[tname].items():
                if child is not None or field == "fieldsV1":  # (any JSON value)
                    continue
                bad = copy.deepcopy(doc)
                target = bad
                for key in path:
                    target = target[key]
                maps = ("annotations", "labels", "selector", "data", "stringData",
                        "deprecatedTopology")
                target[field] = [{"zz": 1}] if field in maps else {"zz": 1}
                try:
                    Resources.from_dicts([bad])
                    errors = []
                except ValidationError as exc:
                    errors = [str(e) for e in exc.errors]
                checked = field in _CHECKED.get(tname, {})
                if checked:
                    seen_checked.add((tname, field))
                assert len(errors) == 1 or (checked and not errors), (tname, field, errors)
    assert seen_checked == {(t, f) for t, fs in _CHECKED.items() for f in fs}


def test_the_checked_leaf_types_are_the_kubernetes_openapi_ones() -> None:
    from ingresslib._fields import _CHECKED

    want = {"string": str, "integer": int, "boolean": bool, "time": "datetime",
            "strings": list[str], "strmap": dict}
    roots = {"Ingress": networking_v1, "IngressClass": networking_v1, "Service": core_v1,
             "EndpointSlice": discovery_v1, "Endpoints": core_v1, "Secret": core_v1}
    classes: dict[str, Any] = {}
    for module in set(roots.values()):
        for name in dir(module):
            classes.setdefault(name, getattr(module, name))
    for tname, fields in _CHECKED.items():
        if tname.startswith("discovery."):
            continue
        cls = classes.get(tname) or getattr(
            __import__("lightkube.models.meta_v1", fromlist=["x"]), tname)
        hints = typing.get_type_hints(cls, vars(__import__(cls.__module__, fromlist=["x"])))
        names = {f.encode_name: f.name for f in msgspec.structs.fields(cls)}
        for field, jtype in fields.items():
            hint = hints[names[field]]
            args = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
            got = args[0]
            expected = want[jtype]
            if expected == "datetime":
                assert getattr(got, "__name__", "") == "datetime", (tname, field, got)
            elif expected is dict:
                assert got is dict or typing.get_origin(got) is dict, (tname, field, got)
            elif jtype == "strings":
                assert typing.get_origin(got) is list and typing.get_args(got) == (str,), got
            else:
                assert got == expected, (tname, field, got)


# -- the decoder's side: a wrong JSON type in a field it does not read is refused ------------


@pytest.mark.parametrize("tail, error", [
    ("status: {loadBalancer: {ingress: {ip: 10.0.0.1}}}\n",
     "Ingress shop/web: status.loadBalancer.ingress: Invalid value: expected array, got object"),
    ("status: [{loadBalancer: {}}]\n",
     "Ingress shop/web: status: Invalid value: expected object, got array"),
    ("status: {loadBalancer: {ingress: [5]}}\n",
     "Ingress shop/web: status.loadBalancer.ingress[0]: Invalid value: 5: expected object, got integer"),
])
def test_a_mis_shaped_field_the_decoder_skips_is_refused(tail: str, error: str) -> None:
    with pytest.raises(ValidationError) as exc:
        parse_manifests(INGRESS + tail)
    assert [str(e) for e in exc.value.errors] == [error]


@pytest.mark.parametrize("text, error", [
    (INGRESS.replace("  namespace: shop\n", "  namespace: shop\n  generation: x\n"),
     'Ingress shop/web: metadata.generation: Invalid value: "x": expected integer, got string'),
    ("apiVersion: v1\nkind: Service\nmetadata: {name: s}\n"
     "spec: {ports: [{port: 80}], sessionAffinity: 5}\n",
     "Service default/s: spec.sessionAffinity: Invalid value: 5: expected string, got integer"),
    ("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nimmutable: 'true'\n",
     'Secret default/s: immutable: Invalid value: "true": expected boolean, got string'),
])
def test_a_leaf_of_the_wrong_type_the_decoder_skips_is_refused(text: str, error: str) -> None:
    with pytest.raises(ValidationError) as exc:
        parse_manifests(text)
    assert [str(e) for e in exc.value.errors] == [error]


def test_a_wrongly_typed_string_data_entry_is_not_also_missing() -> None:
    text = ("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ntype: kubernetes.io/tls\n"
            "stringData: {tls.crt: 1, tls.key: k}\n")
    with pytest.raises(ValidationError) as exc:
        parse_manifests(text)
    assert [str(e) for e in exc.value.errors] == [
        "Secret default/s: stringData[tls.crt]: Invalid value: 1: expected string, got integer;"
        " quote the value"]
