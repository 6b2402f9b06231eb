"""Decoding dicts into models: camelCase and snake_case ``to_dict()`` input, None as absent,
map keys kept, lists unwrapped, unknown kinds ignored, wrong types reported (never a traceback).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingresslib._decode import decode_resources
from ingresslib._errors import ValidationError
from ingresslib._resources import Resources

T0 = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)

CANARY = "nginx.ingress.kubernetes.io/canary-by-header"
ANNOTATIONS = {
    CANARY: "X-Canary",
    "nginx.ingress.kubernetes.io/rewrite-target": "/$2",
    "some_snake_key": "kept",
    "camelCaseKey": "kept",
}


def camel_ingress() -> dict[str, Any]:
    backend = {"service": {"name": "web", "port": {"number": 80}}}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "annotations": dict(ANNOTATIONS),
            "labels": {"app.kubernetes.io/name": "web"},
            "creationTimestamp": "2024-01-02T03:04:05Z",
            "resourceVersion": "42",
            "uid": "u-1",
        },
        "spec": {
            "ingressClassName": "nginx",
            "defaultBackend": {"service": {"name": "fallback", "port": {"name": "http"}}},
            "tls": [{"hosts": ["shop.example.com"], "secretName": "shop-tls"}],
            "rules": [
                {
                    "host": "shop.example.com",
                    "http": {
                        "paths": [
                            {"path": "/", "pathType": "Prefix", "backend": backend},
                            {
                                "path": "/static",
                                "pathType": "Exact",
                                "backend": {"resource": {"apiGroup": "k8s.example.com", "kind": "Bucket", "name": "b"}},
                            },
                        ]
                    },
                },
                {"host": "only-host.example.com"},
            ],
        },
    }


def snake_ingress() -> dict[str, Any]:
    """The shape of ``V1Ingress.to_dict()`` from the official client: snake_case, None for every
    unset field, datetimes, status included."""
    return {
        "api_version": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "annotations": dict(ANNOTATIONS),
            "creation_timestamp": T0,
            "deletion_grace_period_seconds": None,
            "deletion_timestamp": None,
            "finalizers": None,
            "generate_name": None,
            "generation": 1,
            "labels": {"app.kubernetes.io/name": "web"},
            "managed_fields": [{"api_version": "networking.k8s.io/v1", "fields_type": "FieldsV1", "fields_v1": {}}],
            "name": "web",
            "namespace": "shop",
            "owner_references": None,
            "resource_version": "42",
            "self_link": None,
            "uid": "u-1",
        },
        "spec": {
            "default_backend": {
                "resource": None,
                "service": {"name": "fallback", "port": {"name": "http", "number": None}},
            },
            "ingress_class_name": "nginx",
            "rules": [
                {
                    "host": "shop.example.com",
                    "http": {
                        "paths": [
                            {
                                "backend": {
                                    "resource": None,
                                    "service": {"name": "web", "port": {"name": None, "number": 80}},
                                },
                                "path": "/",
                                "path_type": "Prefix",
                            },
                            {
                                "backend": {
                                    "resource": {"api_group": "k8s.example.com", "kind": "Bucket", "name": "b"},
                                    "service": None,
                                },
                                "path": "/static",
                                "path_type": "Exact",
                            },
                        ]
                    },
                },
                {"host": "only-host.example.com", "http": None},
            ],
            "tls": [{"hosts": ["shop.example.com"], "secret_name": "shop-tls"}],
        },
        "status": {"load_balancer": {"ingress": None}},
    }


def test_snake_case_ingress_equals_camel_case() -> None:
    a = decode_resources([camel_ingress()]).ingresses[0]
    b = decode_resources([snake_ingress()]).ingresses[0]
    assert a == b
    assert a.spec.ingress_class_name == "nginx"
    assert a.spec.default_backend is not None and a.spec.default_backend.service is not None
    assert a.spec.default_backend.service.port.value == "http"
    assert a.spec.rules[0].paths is not None and a.spec.rules[0].paths[0].path_type == "Prefix"
    assert a.spec.rules[1].paths is None
    assert a.spec.tls[0].secret_name == "shop-tls"
    assert a.metadata.creation_timestamp == T0


def test_annotation_and_label_keys_are_never_renamed() -> None:
    for obj in (camel_ingress(), snake_ingress()):
        meta = decode_resources([obj]).ingresses[0].metadata
        assert dict(meta.annotations) == ANNOTATIONS
        assert meta.annotations[CANARY] == "X-Canary"
        assert dict(meta.labels) == {"app.kubernetes.io/name": "web"}


def test_models_are_immutable() -> None:
    ing = decode_resources([camel_ingress()]).ingresses[0]
    with pytest.raises(AttributeError):
        ing.metadata.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        ing.metadata.annotations["x"] = "y"  # type: ignore[index]


def test_snake_case_service_equals_camel_case() -> None:
    camel = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {
            "type": "NodePort",
            "clusterIP": "10.0.0.10",
            "selector": {"app.kubernetes.io/name": "web"},
            "ports": [
                {"name": "http", "port": 80, "targetPort": "http-web", "appProtocol": "http", "nodePort": 30080},
                {"name": "metrics", "port": 9090, "targetPort": 9091, "protocol": "TCP"},
            ],
        },
    }
    snake = {
        "api_version": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": None, "annotations": None, "labels": None},
        "spec": {
            "allocate_load_balancer_node_ports": None,
            "cluster_ip": "10.0.0.10",
            "cluster_i_ps": ["10.0.0.10"],
            "external_name": None,
            "ports": [
                {"app_protocol": "http", "name": "http", "node_port": 30080, "port": 80, "protocol": None,
                 "target_port": "http-web"},
                {"app_protocol": None, "name": "metrics", "node_port": None, "port": 9090, "protocol": "TCP",
                 "target_port": 9091},
            ],
            "selector": {"app.kubernetes.io/name": "web"},
            "type": "NodePort",
        },
        "status": None,
    }
    a, b = decode_resources([camel]).services[0], decode_resources([snake]).services[0]
    assert a == b
    assert a.metadata.namespace == "default"
    assert [p.target_port for p in a.spec.ports] == ["http-web", 9091]
    assert a.spec.ports[0].protocol == "TCP" and a.spec.ports[0].node_port == 30080
    assert dict(a.spec.selector) == {"app.kubernetes.io/name": "web"}


def test_snake_case_endpoint_slice_equals_camel_case() -> None:
    camel = {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": "web-x1", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": ["10.0.0.1"], "conditions": {"ready": True}, "nodeName": "n1", "zone": "z"},
            {"addresses": ["10.0.0.2"], "conditions": {"ready": False, "terminating": True}},
        ],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP", "appProtocol": "http"}],
    }
    snake = {
        "address_type": "IPv4",
        "api_version": "discovery.k8s.io/v1",
        "endpoints": [
            {"addresses": ["10.0.0.1"], "conditions": {"ready": True, "serving": None, "terminating": None},
             "deprecated_topology": None, "hints": None, "hostname": None, "node_name": "n1", "target_ref": None,
             "zone": "z"},
            {"addresses": ["10.0.0.2"], "conditions": {"ready": False, "serving": None, "terminating": True},
             "deprecated_topology": None, "hints": None, "hostname": None, "node_name": None, "target_ref": None,
             "zone": None},
        ],
        "kind": "EndpointSlice",
        "metadata": {"name": "web-x1", "labels": {"kubernetes.io/service-name": "web"}},
        "ports": [{"app_protocol": "http", "name": "http", "port": 8080, "protocol": "TCP"}],
    }
    a, b = decode_resources([camel]).endpoint_slices[0], decode_resources([snake]).endpoint_slices[0]
    assert a == b
    assert a.service_name == "web"
    assert [e.conditions.ready for e in a.endpoints] == [True, False]


def test_snake_case_endpoints_equals_camel_case() -> None:
    camel = {
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "web"},
        "subsets": [
            {
                "addresses": [{"ip": "10.0.0.1", "nodeName": "n1"}],
                "notReadyAddresses": [{"ip": "10.0.0.2"}],
                "ports": [{"port": 8080, "name": "http"}],
            }
        ],
    }
    snake = {
        "api_version": "v1",
        "kind": "Endpoints",
        "metadata": {"name": "web"},
        "subsets": [
            {
                "addresses": [{"hostname": None, "ip": "10.0.0.1", "node_name": "n1", "target_ref": None}],
                "not_ready_addresses": [{"hostname": None, "ip": "10.0.0.2", "node_name": None, "target_ref": None}],
                "ports": [{"app_protocol": None, "name": "http", "port": 8080, "protocol": None}],
            }
        ],
    }
    a, b = decode_resources([camel]).endpoints[0], decode_resources([snake]).endpoints[0]
    assert a == b
    assert a.subsets[0].not_ready_addresses[0].ip == "10.0.0.2"


def test_snake_case_secret_and_ingress_class_equal_camel_case() -> None:
    camel = [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "tls"}, "type": "kubernetes.io/tls",
         "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}, "stringData": {"extra_key.Name": "x"}},
        {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
         "metadata": {"name": "nginx", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
         "spec": {"controller": "k8s.io/ingress-nginx",
                  "parameters": {"apiGroup": "k8s.example.com", "kind": "Cfg", "name": "c", "scope": "Namespace",
                                 "namespace": "ops"}}},
    ]
    snake = [
        {"api_version": "v1", "kind": "Secret", "metadata": {"name": "tls"}, "type": "kubernetes.io/tls",
         "data": {"tls.crt": "Y2VydA==", "tls.key": "a2V5"}, "string_data": {"extra_key.Name": "x"}, "immutable": None},
        {"api_version": "networking.k8s.io/v1", "kind": "IngressClass",
         "metadata": {"name": "nginx", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
         "spec": {"controller": "k8s.io/ingress-nginx",
                  "parameters": {"api_group": "k8s.example.com", "kind": "Cfg", "name": "c", "scope": "Namespace",
                                 "namespace": "ops"}}},
    ]
    a, b = decode_resources(camel), decode_resources(snake)
    assert a.secrets == b.secrets and a.ingress_classes == b.ingress_classes
    # Secret data keys are kept as written, never camelised or snaked.
    assert dict(a.secrets[0].string_data) == {"extra_key.Name": "x"}
    assert a.secrets[0].get_bytes("tls.crt") == b"cert"
    assert a.ingress_classes[0].is_default


def test_none_means_absent() -> None:
    obj = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {"name": "web", "namespace": None, "annotations": None, "labels": None,
                     "creationTimestamp": None},
        "spec": {"ingressClassName": None, "defaultBackend": None, "tls": None,
                 "rules": [{"host": None, "http": {"paths": [
                     {"path": None, "pathType": "ImplementationSpecific",
                      "backend": {"service": {"name": "web", "port": {"number": 80, "name": None}}, "resource": None}},
                 ]}}]},
    }
    ing = decode_resources([obj]).ingresses[0]
    assert ing.metadata.namespace == "default"
    assert ing.metadata.creation_timestamp is None
    assert ing.spec.tls == () and ing.spec.default_backend is None
    assert ing.spec.rules[0].host is None
    assert ing.spec.rules[0].paths is not None and ing.spec.rules[0].paths[0].path is None


def test_creation_timestamp_forms() -> None:
    def ts(value: Any) -> datetime | None:
        obj = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "creationTimestamp": value}}
        return decode_resources([obj]).secrets[0].metadata.creation_timestamp

    assert ts("2024-01-02T03:04:05Z") == T0
    assert ts("2024-01-02T04:04:05+01:00") == T0
    assert ts(T0) == T0
    naive = ts(datetime(2024, 1, 2, 3, 4, 5))
    assert naive == T0 and naive is not None and naive.utcoffset() == timedelta(0)
    with pytest.raises(ValidationError) as ei:
        ts("yesterday")
    assert [str(e) for e in ei.value.errors] == [
        'Secret default/s: metadata.creationTimestamp: Invalid value: "yesterday": '
        "must be an RFC 3339 date-time (e.g. 2024-01-02T03:04:05Z)"
    ]


def test_list_unwraps() -> None:
    lst = {"apiVersion": "v1", "kind": "List", "items": [camel_ingress(), {"apiVersion": "v1", "kind": "List",
                                                                           "items": [snake_ingress()]}]}
    res = decode_resources([lst])
    assert len(res.ingresses) == 2 and res.ingresses[0] == res.ingresses[1]


def test_typed_list_items_without_kind_unwrap() -> None:
    # `NetworkingV1Api().list_namespaced_ingress(...).to_dict()`: the items carry
    # api_version=None and kind=None; the list names them.
    item = snake_ingress()
    item["api_version"] = None
    item["kind"] = None
    lst = {"api_version": "networking.k8s.io/v1", "kind": "IngressList", "items": [item],
           "metadata": {"resource_version": "9", "_continue": None}}
    res = decode_resources([lst])
    assert res.ingresses[0] == decode_resources([snake_ingress()]).ingresses[0]


def test_a_single_mapping_is_one_object() -> None:
    lst = {"api_version": "networking.k8s.io/v1", "kind": "IngressList", "items": [camel_ingress()]}
    assert len(decode_resources(lst).ingresses) == 1  # type: ignore[arg-type]
    assert len(decode_resources(camel_ingress()).ingresses) == 1  # type: ignore[arg-type]


def test_unknown_kinds_and_versions_are_kept_aside() -> None:
    legacy = {"apiVersion": "extensions/v1beta1", "kind": "Ingress", "metadata": {"name": "old"},
              "spec": {"backend": {"serviceName": "x", "servicePort": 80}}}
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": "anything"}
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": 1}}
    res = decode_resources([legacy, deployment, cm, camel_ingress()])
    assert res.ignored == (legacy, deployment, cm)
    assert len(res.ingresses) == 1


def test_from_dicts_is_decode_resources() -> None:
    assert Resources.from_dicts([camel_ingress()]) == decode_resources([camel_ingress()])


# --- wrong types become errors ----------------------------------------------------------------


def errs(*objs: Any) -> list[str]:
    with pytest.raises(ValidationError) as ei:
        decode_resources(objs)
    return [str(e) for e in ei.value.errors]


def test_port_number_as_string_is_reported_once() -> None:
    obj = camel_ingress()
    obj["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["port"]["number"] = "80"
    # Only the type error: not also "port name or number is required" for the placeholder.
    assert errs(obj) == [
        'Ingress shop/web: spec.rules[0].http.paths[0].backend.service.port.number: Invalid value: "80": '
        "expected integer, got string"
    ]


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (("spec", "rules"), "shop.example.com", "spec.rules: Invalid value: \"shop.example.com\": expected array, got string"),
        (("spec", "tls", 0, "hosts"), "a.com", 'spec.tls[0].hosts: Invalid value: "a.com": expected array, got string'),
        (("spec", "ingressClassName"), True, "spec.ingressClassName: Invalid value: true: expected string, got boolean"),
        (("spec", "rules", 0, "http", "paths", 0, "backend", "service", "port", "number"), True,
         "spec.rules[0].http.paths[0].backend.service.port.number: Invalid value: true: expected integer, got boolean"),
        (("spec", "rules", 0, "http", "paths", 0, "backend", "service", "port", "number"), 80.0,
         "spec.rules[0].http.paths[0].backend.service.port.number: Invalid value: 80.0: expected integer, got number"),
        (("spec", "rules", 0, "http"), ["paths"], "spec.rules[0].http: Invalid value: expected object, got array"),
        (("spec", "rules", 1), "only-host", 'spec.rules[1]: Invalid value: "only-host": expected object, got string'),
        (("metadata", "annotations", CANARY), 10,
         f"metadata.annotations[{CANARY}]: Invalid value: 10: expected string, got integer; "
             "quote the value"),
        (("spec", "rules", 0, "http", "paths", 0, "path"), ["/"],
         "spec.rules[0].http.paths[0].path: Invalid value: expected string, got array"),
    ],
)
def test_wrong_types_are_field_errors(path: tuple[Any, ...], value: Any, expected: str) -> None:
    obj = camel_ingress()
    target = obj
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    assert errs(obj) == [f"Ingress shop/web: {expected}"]


def test_metadata_name_wrong_type() -> None:
    obj = camel_ingress()
    obj["metadata"]["name"] = 7
    assert errs(obj) == ["Ingress shop/<no name>: metadata.name: Invalid value: 7: expected string, got integer"]


def test_type_errors_and_rule_errors_of_several_objects_are_all_reported() -> None:
    a = camel_ingress()
    a["spec"]["rules"][0]["host"] = "Shop.example.com"
    a["spec"]["tls"] = {"hosts": []}
    b = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"}, "spec": {"ports": [{"port": "5432"}]}}
    assert errs(a, b) == [
        "Ingress shop/web: spec.tls: Invalid value: expected array, got object",
        "Ingress shop/web: spec.rules[0].host: Invalid value: \"Shop.example.com\": a lowercase RFC 1123 subdomain "
        "must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
        "character (e.g. 'example.com', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        'Service default/db: spec.ports[0].port: Invalid value: "5432": expected integer, got string',
    ]


def test_non_objects_and_missing_kind() -> None:
    assert errs("Ingress", {"metadata": {"name": "x"}}, {"kind": "Ingress"}) == [
        'object 1: Invalid value: expected an object, got string',
        "object 2: kind: Required value: every object needs `kind` and `apiVersion`",
        "object 3: apiVersion: Required value: every object needs `kind` and `apiVersion`",
    ]


def test_not_iterable_input() -> None:
    with pytest.raises(ValidationError):
        decode_resources(42)  # type: ignore[arg-type]


# --- fuzzing: Resources or ValidationError, nothing else --------------------------------------

json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
KINDS = [
    ("networking.k8s.io/v1", "Ingress"), ("networking.k8s.io/v1", "IngressClass"), ("v1", "Service"),
    ("v1", "Endpoints"), ("v1", "Secret"), ("discovery.k8s.io/v1", "EndpointSlice"), ("v1", "List"),
]
FIELDS = ["metadata", "spec", "items", "endpoints", "ports", "subsets", "data", "stringData", "addressType", "type"]


# What the composites below draw from, made once (a strategy made inside a composite is made and
# validated again at every draw). Same arguments, same examples.
_KIND = st.sampled_from(KINDS)
_FIELD_LISTS = st.lists(st.sampled_from(FIELDS), max_size=4, unique=True)


@st.composite
def junk_objects(draw: st.DrawFn) -> Any:
    api, kind = draw(_KIND)
    obj: dict[str, Any] = {"apiVersion": api, "kind": kind}
    for key in draw(_FIELD_LISTS):
        obj[key] = draw(json_values)
    return obj


def _paths(obj: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, prefix + (i,))
    return out


#: Camel (0) or snake (1) form, and each form's subtrees (every path but the root's), made once:
#: the same draws as ``st.sampled_from([camel_ingress(), snake_ingress()])`` then
#: ``st.sampled_from(_paths(obj)[1:])`` made at each draw (the forms are fresh objects each call,
#: so nothing is copied).
_FORM = st.sampled_from((0, 1))
_SUBTREES = (st.sampled_from(_paths(camel_ingress())[1:]), st.sampled_from(_paths(snake_ingress())[1:]))


@st.composite
def mutated_ingresses(draw: st.DrawFn) -> Any:
    """A valid Ingress (camel or snake form) with one subtree replaced by junk."""
    which = draw(_FORM)
    obj = (camel_ingress, snake_ingress)[which]()
    path = draw(_SUBTREES[which])
    target = obj
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = draw(json_values)
    return obj


def _decode_or_validation_error(objs: Any) -> None:
    try:
        res = Resources.from_dicts(objs)
    except ValidationError as e:
        assert e.errors
        for err in e.errors:
            assert str(err)
    else:
        assert isinstance(res, Resources)


@given(st.lists(json_values | junk_objects(), max_size=4))
def test_random_junk_is_resources_or_validation_error(objs: list[Any]) -> None:
    _decode_or_validation_error(objs)


@given(st.lists(mutated_ingresses(), min_size=1, max_size=2))
def test_mutated_manifests_are_resources_or_validation_error(objs: list[Any]) -> None:
    _decode_or_validation_error(objs)


def test_deeply_nested_lists_are_unwrapped_without_recursion() -> None:
    # kubectl flattens nested Lists; 2000 levels once raised RecursionError (add -> _add_list
    # -> add ...), a traceback instead of Resources or a ValidationError.
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                           "spec": {"ports": [{"port": 80}]}}
    bad: dict[str, Any] = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "Bad"},
                           "spec": {"ports": [{"port": 80}]}}
    for _ in range(2000):
        obj = {"apiVersion": "v1", "kind": "List", "items": [obj]}
    res = decode_resources([obj, {"apiVersion": "v1", "kind": "List", "items": [obj]}])
    assert [s.metadata.name for s in res.services] == ["web", "web"]
    # Order and labels are kept: items in order, the label naming the path through the lists.
    nested = {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "List", "items": [bad, 7]}, "x"]}
    with pytest.raises(ValidationError) as ei:
        decode_resources([nested])
    lines = [str(e) for e in ei.value.errors]
    assert lines[0].startswith('Service default/Bad: metadata.name: Invalid value: "Bad": ')
    assert lines[1:] == [
        "object 1: items[0]: items[1]: Invalid value: expected an object, got integer",
        "object 1: items[1]: Invalid value: expected an object, got string",
    ]
