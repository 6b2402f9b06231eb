"""Fields the API server would drop are warned about, not silently lost (session 13).

A typo (``ingressClassname``, ``annotation:``, ``pathtype``) or a v1beta1 leftover
(``serviceName`` in a v1 backend) used to vanish in the decoder; ``kubectl apply`` refuses them
(``strict decoding error: unknown field "..."``) and the API server warns about them with
``fieldValidation=Warn``. They are now ``Resources.warnings`` (``FieldError`` values, outside
equality), printed by ``ingresslib check``; keys written twice in one YAML mapping too. The
known fields are checked against the Kubernetes OpenAPI definitions (lightkube-models), and
realistic ``kubectl get -o yaml`` output of every kind (status, managedFields,
last-applied-configuration) gives no warning, in camelCase and in the official client's
snake_case ``to_dict()`` form.
"""

from __future__ import annotations

import json
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml

import ingresslib
from ingresslib import FieldError, Resources, parse_manifests
from ingresslib._cli import main

INGRESS = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  namespace: shop
spec:
  ingressClassName: nginx
  rules:
  - host: shop.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service: {name: web, port: {number: 80}}
"""


def warnings_of(text: str, source: str | None = None) -> list[str]:
    return [str(w) for w in parse_manifests(text, source=source).warnings]


@pytest.mark.parametrize(
    ("old", "new", "path"),
    [
        ("  ingressClassName: nginx", "  ingressClassname: nginx", "spec.ingressClassname"),
        ("  namespace: shop", "  namespace: shop\n  annotation: {a: b}", "metadata.annotation"),
        ("        pathType: Prefix", "        pathType: Prefix\n        pathtype: Exact",
         "spec.rules[0].http.paths[0].pathtype"),
        ("          service: {name: web, port: {number: 80}}",
         "          service: {name: web, port: {number: 80}}\n          serviceName: web\n"
         "          servicePort: 80",
         "spec.rules[0].http.paths[0].backend.serviceName"),
        ("port: {number: 80}", "port: {number: 80, nubmer: 81}",
         "spec.rules[0].http.paths[0].backend.service.port.nubmer"),
        ("  - host: shop.example.com", "  - host: shop.example.com\n    hosts: [a]",
         "spec.rules[0].hosts"),
        ("kind: Ingress", "kind: Ingress\nstatus: {loadBalancer: {ingres: []}}",
         "status.loadBalancer.ingres"),
        ("kind: Ingress", "kind: Ingress\nspce: {}", "spce"),
    ],
)
def test_an_unknown_ingress_field_is_a_warning_in_the_api_servers_words(
        old: str, new: str, path: str) -> None:
    assert old in INGRESS
    res = parse_manifests(INGRESS.replace(old, new), source="web.yaml")
    # Loaded all the same (a warning, not an error), and named as the API server names it.
    assert len(res.ingresses) == 1
    got = [str(w) for w in res.warnings]
    assert f'web.yaml: Ingress shop/web: unknown field "{path}"' in got
    w = next(w for w in res.warnings if w.field == path)
    assert isinstance(w, FieldError) and w.type == "unknown field" and w.object == "Ingress shop/web"
    assert w.source == "web.yaml"


def test_v1beta1_backend_lists_both_leftovers_and_nothing_known() -> None:
    text = INGRESS.replace("          service: {name: web, port: {number: 80}}",
                           "          serviceName: web\n          servicePort: 80")
    # The backend has neither service nor resource: an error, with the warnings telling why.
    with pytest.raises(ingresslib.ValidationError):
        parse_manifests(text)
    from ingresslib._load import collect_text

    c = collect_text(text)
    assert [w.field for w in c.warnings] == [
        "spec.rules[0].http.paths[0].backend.serviceName",
        "spec.rules[0].http.paths[0].backend.servicePort",
    ]


@pytest.mark.parametrize(("kind_doc", "path", "label"), [
    ("apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
     "spec: {ports: [{port: 80, targetport: 8080}]}", "spec.ports[0].targetport", "Service default/web"),
    ("apiVersion: v1\nkind: Service\nmetadata: {name: web}\n"
     "spec: {selecter: {app: web}, ports: [{port: 80}]}", "spec.selecter", "Service default/web"),
    ("apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: nginx}\n"
     "spec: {controller: k8s.io/ingress-nginx, parameters: {kind: X, name: params, scop: Cluster}}",
     "spec.parameters.scop", "IngressClass nginx"),
    ("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: web-1}\n"
     "addressType: IPv4\nendpoints: [{addresses: [10.0.0.1], conditions: {redy: true}}]",
     "endpoints[0].conditions.redy", "EndpointSlice default/web-1"),
    ("apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: web-1}\n"
     "addressType: IPv4\nports: [{port: 80, portName: http}]", "ports[0].portName",
     "EndpointSlice default/web-1"),
    ("apiVersion: v1\nkind: Endpoints\nmetadata: {name: web}\n"
     "subsets: [{addresses: [{ip: 10.0.0.1, podName: x}], ports: [{port: 80}]}]",
     "subsets[0].addresses[0].podName", "Endpoints default/web"),
    ("apiVersion: v1\nkind: Secret\nmetadata: {name: tls}\ntype: Opaque\nstring_data: {}\n"
     "datas: {a: YQ==}", "datas", "Secret default/tls"),
])
def test_every_kind_read_is_checked(kind_doc: str, path: str, label: str) -> None:
    assert warnings_of(kind_doc) == [f'{label}: unknown field "{path}"']


def test_other_kinds_are_not_checked_and_null_means_absent() -> None:
    other = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {whatever: 1}\n"
    assert warnings_of(other) == []
    # The official client's to_dict() lists every field it knows, None when unset: a newer
    # client's new field must not warn about every object.
    obj = yaml.safe_load(INGRESS)
    obj["spec"]["some_future_field"] = None
    obj["metadata"]["another_one"] = None
    assert Resources.from_dicts([obj]).warnings == ()


def test_warnings_do_not_change_equality_or_the_config_digest() -> None:
    from ingresslib._serve import config_digest

    plain = parse_manifests(INGRESS)
    typo = parse_manifests(INGRESS.replace("  namespace: shop", "  namespace: shop\n  annotation: {}"))
    assert typo.warnings and not plain.warnings
    assert plain == typo
    assert "warnings" not in repr(typo)
    assert config_digest(plain, plain.ingresses) == config_digest(typo, typo.ingresses)
    # Built by hand from a list, like the other fields: its own tuple.
    given = [typo.warnings[0]]
    by_hand = Resources(warnings=given)  # type: ignore[arg-type]
    given.clear()
    assert by_hand.warnings == typo.warnings[:1]


def test_a_lost_canary_annotation_is_told_by_check(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    # `annotation:` for `annotations:`: the canary Ingress becomes a second main rule for the
    # same host and path; check must say why.
    canary = INGRESS.replace("name: web\n", "name: web-canary\n").replace(
        "  namespace: shop", "  namespace: shop\n  annotation:\n"
        "    nginx.ingress.kubernetes.io/canary: \"true\"\n"
        "    nginx.ingress.kubernetes.io/canary-weight: \"10\"")
    f = tmp_path / "ing.yaml"
    f.write_text(INGRESS + "---" + canary)
    code = main(["check", "-f", str(f)])
    out, err = capsys.readouterr()
    assert code == 0
    line = f'warning: {f}: Ingress shop/web-canary: unknown field "metadata.annotation"'
    assert line in err.splitlines()
    summary = out.strip().splitlines()[-1]
    assert summary.startswith("ok: 2 Ingress(es)")
    n = int(summary.rsplit(", ", 1)[1].split()[0])
    code = main(["check", "-f", str(f), "-o", "json"])
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert line.removeprefix("warning: ") in doc["warnings"]
    assert len(doc["warnings"]) == n  # the text summary counts what the JSON lists


def test_check_prints_the_warnings_of_invalid_manifests_too(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "ing.yaml"
    f.write_text(INGRESS.replace("pathType: Prefix", "pathtype: Prefix"))
    code = main(["check", "-f", str(f)])
    _, err = capsys.readouterr()
    assert code == 2
    assert "spec.rules[0].http.paths[0].pathType: Required value" in err
    assert (f'warning: {f}: Ingress shop/web: unknown field '
            f'"spec.rules[0].http.paths[0].pathtype"') in err.splitlines()
    assert err.splitlines()[-1] == "1 error(s), 1 warning(s)"
    code = main(["check", "-f", str(f), "-o", "json"])
    out, _ = capsys.readouterr()
    assert json.loads(out)["warnings"] == [
        f'{f}: Ingress shop/web: unknown field "spec.rules[0].http.paths[0].pathtype"']


def test_keys_written_twice_in_a_yaml_mapping_warn() -> None:
    text = INGRESS.replace("  namespace: shop", "  namespace: shop\n  annotations: {example.com/a: '1', example.com/a: '2'}"
                           ).replace("  - host: shop.example.com",
                                     "  - host: shop.example.com\n    host: other.example.com")
    # (with the line of the key's last writing, since session 16)
    assert warnings_of(text, "w.yaml") == [
        'w.yaml: line 7: Ingress shop/web: duplicate field "metadata.annotations[example.com/a]"',
        'w.yaml: line 12: Ingress shop/web: duplicate field "spec.rules[0].host"',
    ]
    # The last value wins, as in Go.
    assert parse_manifests(text).ingresses[0].spec.rules[0].host == "other.example.com"
    # Overriding what a merge key brought in is what merges are for: no warning.
    merged = INGRESS.replace("  ingressClassName: nginx",
                             "  <<: {ingressClassName: other}\n  ingressClassName: nginx")
    assert warnings_of(merged) == []
    assert parse_manifests(merged).ingresses[0].spec.ingress_class_name == "nginx"


# --- completeness: every field kubectl get -o yaml prints ---------------------------------------

KUBECTL_GET = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: |
      {"apiVersion":"networking.k8s.io/v1","kind":"Ingress","metadata":{"annotations":{},"name":"web","namespace":"shop"},"spec":{"ingressClassName":"nginx","rules":[{"host":"shop.example.com","http":{"paths":[{"backend":{"service":{"name":"web","port":{"number":80}}},"path":"/","pathType":"Prefix"}]}}]}}
  creationTimestamp: "2024-05-01T10:00:00Z"
  finalizers: [example.com/cleanup]
  generation: 3
  labels: {app: web}
  managedFields:
  - apiVersion: networking.k8s.io/v1
    fieldsType: FieldsV1
    fieldsV1:
      f:metadata: {f:annotations: {.: {}, f:kubectl.kubernetes.io/last-applied-configuration: {}}}
      f:spec: {f:ingressClassName: {}, f:rules: {}}
    manager: kubectl-client-side-apply
    operation: Update
    time: "2024-05-01T10:00:00Z"
  - apiVersion: networking.k8s.io/v1
    fieldsType: FieldsV1
    fieldsV1: {f:status: {f:loadBalancer: {f:ingress: {}}}}
    manager: nginx-ingress-controller
    operation: Update
    subresource: status
    time: "2024-05-01T10:00:30Z"
  name: web
  namespace: shop
  ownerReferences:
  - {apiVersion: example.com/v1, kind: App, name: web, uid: 0b9f4d4e-0000-4000-8000-000000000001,
     controller: true, blockOwnerDeletion: true}
  resourceVersion: "123456"
  uid: 5c2c4f0a-0000-4000-8000-000000000002
  deletionTimestamp: "2024-05-02T10:00:00Z"
  deletionGracePeriodSeconds: 0
  generateName: web-
  selfLink: /apis/networking.k8s.io/v1/namespaces/shop/ingresses/web
spec:
  ingressClassName: nginx
  defaultBackend:
    resource: {apiGroup: k8s.example.com, kind: StorageBucket, name: static}
  tls:
  - hosts: [shop.example.com]
    secretName: shop-tls
  rules:
  - host: shop.example.com
    http:
      paths:
      - backend:
          service: {name: web, port: {number: 80}}
        path: /
        pathType: Prefix
      - backend:
          service: {name: web, port: {name: http}}
        path: /x
        pathType: Exact
status:
  loadBalancer:
    ingress:
    - ip: 192.0.2.10
      hostname: lb.example.com
      ports: [{port: 443, protocol: TCP, error: ""}]
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  annotations: {ingressclass.kubernetes.io/is-default-class: "true"}
  creationTimestamp: "2024-05-01T10:00:00Z"
  generation: 1
  labels: {app.kubernetes.io/name: ingress-nginx}
  managedFields:
  - {apiVersion: networking.k8s.io/v1, fieldsType: FieldsV1, fieldsV1: {f:spec: {f:controller: {}}},
     manager: helm, operation: Update, time: "2024-05-01T10:00:00Z"}
  name: nginx
  resourceVersion: "42"
  uid: 5c2c4f0a-0000-4000-8000-000000000003
spec:
  controller: k8s.io/ingress-nginx
  parameters: {apiGroup: k8s.example.com, kind: IngressParameters, name: external-lb,
               namespace: shop, scope: Namespace}
---
apiVersion: v1
kind: Service
metadata:
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: |
      {"apiVersion":"v1","kind":"Service","metadata":{"annotations":{},"name":"web","namespace":"shop"},"spec":{"ports":[{"name":"http","port":80,"targetPort":8080}],"selector":{"app":"web"}}}
  creationTimestamp: "2024-05-01T10:00:00Z"
  labels: {app: web}
  managedFields:
  - {apiVersion: v1, fieldsType: FieldsV1, fieldsV1: {f:spec: {f:ports: {}}},
     manager: kubectl-client-side-apply, operation: Update, time: "2024-05-01T10:00:00Z"}
  name: web
  namespace: shop
  resourceVersion: "123"
  uid: 5c2c4f0a-0000-4000-8000-000000000004
spec:
  allocateLoadBalancerNodePorts: true
  clusterIP: 10.96.0.10
  clusterIPs: [10.96.0.10]
  externalIPs: [192.0.2.20]
  externalTrafficPolicy: Cluster
  healthCheckNodePort: 30001
  internalTrafficPolicy: Cluster
  ipFamilies: [IPv4]
  ipFamilyPolicy: SingleStack
  loadBalancerClass: example.com/lb
  loadBalancerIP: 192.0.2.30
  loadBalancerSourceRanges: [0.0.0.0/0]
  ports:
  - {appProtocol: http, name: http, nodePort: 30080, port: 80, protocol: TCP, targetPort: 8080}
  publishNotReadyAddresses: false
  selector: {app: web}
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 10800}}
  trafficDistribution: PreferClose
  type: LoadBalancer
status:
  conditions:
  - {lastTransitionTime: "2024-05-01T10:00:00Z", message: ok, observedGeneration: 1,
     reason: Ready, status: "True", type: Ready}
  loadBalancer:
    ingress:
    - {ip: 192.0.2.30, hostname: lb.example.com, ipMode: VIP, ports: [{port: 80, protocol: TCP}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  annotations: {endpoints.kubernetes.io/last-change-trigger-time: "2024-05-01T10:00:00Z"}
  creationTimestamp: "2024-05-01T10:00:00Z"
  generateName: web-
  generation: 5
  labels: {kubernetes.io/service-name: web, endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io}
  managedFields:
  - {apiVersion: discovery.k8s.io/v1, fieldsType: FieldsV1, fieldsV1: {f:endpoints: {}},
     manager: kube-controller-manager, operation: Update, time: "2024-05-01T10:00:00Z"}
  name: web-abcde
  namespace: shop
  ownerReferences:
  - {apiVersion: v1, blockOwnerDeletion: true, controller: true, kind: Service, name: web,
     uid: 5c2c4f0a-0000-4000-8000-000000000004}
  resourceVersion: "789"
  uid: 5c2c4f0a-0000-4000-8000-000000000005
addressType: IPv4
endpoints:
- addresses: [10.244.0.5]
  conditions: {ready: true, serving: true, terminating: false}
  hints:
    forZones: [{name: zone-a}]
    forNodes: [{name: node-1}]
  hostname: web-0
  nodeName: node-1
  targetRef: {kind: Pod, name: web-0, namespace: shop, uid: 5c2c4f0a-0000-4000-8000-000000000006,
              apiVersion: v1, resourceVersion: "77", fieldPath: "spec.containers[0]"}
  zone: zone-a
  deprecatedTopology: {kubernetes.io/hostname: node-1}
ports:
- {appProtocol: http, name: http, port: 8080, protocol: TCP}
---
apiVersion: v1
kind: Endpoints
metadata:
  annotations: {endpoints.kubernetes.io/last-change-trigger-time: "2024-05-01T10:00:00Z"}
  creationTimestamp: "2024-05-01T10:00:00Z"
  labels: {app: web}
  managedFields:
  - {apiVersion: v1, fieldsType: FieldsV1, fieldsV1: {f:subsets: {}},
     manager: kube-controller-manager, operation: Update, time: "2024-05-01T10:00:00Z"}
  name: web
  namespace: shop
  resourceVersion: "790"
  uid: 5c2c4f0a-0000-4000-8000-000000000007
subsets:
- addresses:
  - {ip: 10.244.0.5, hostname: web-0, nodeName: node-1,
     targetRef: {kind: Pod, name: web-0, namespace: shop, uid: 5c2c4f0a-0000-4000-8000-000000000006}}
  notReadyAddresses:
  - {ip: 10.244.0.6, nodeName: node-2, targetRef: {kind: Pod, name: web-1, namespace: shop}}
  ports:
  - {appProtocol: http, name: http, port: 8080, protocol: TCP}
---
apiVersion: v1
kind: Secret
metadata:
  annotations:
    kubectl.kubernetes.io/last-applied-configuration: |
      {"apiVersion":"v1","data":{"tls.crt":"","tls.key":""},"kind":"Secret","metadata":{"annotations":{},"name":"shop-tls","namespace":"shop"},"type":"kubernetes.io/tls"}
  creationTimestamp: "2024-05-01T10:00:00Z"
  managedFields:
  - {apiVersion: v1, fieldsType: FieldsV1, fieldsV1: {f:data: {}, f:type: {}},
     manager: kubectl-client-side-apply, operation: Update, time: "2024-05-01T10:00:00Z"}
  name: shop-tls
  namespace: shop
  resourceVersion: "5"
  uid: 5c2c4f0a-0000-4000-8000-000000000008
immutable: false
data: {tls.crt: "", tls.key: ""}
type: kubernetes.io/tls
"""


def test_kubectl_get_output_of_every_kind_gives_no_warning() -> None:
    docs = list(yaml.safe_load_all(KUBECTL_GET))
    res = parse_manifests(KUBECTL_GET)
    assert {d["kind"] for d in docs} == {
        "Ingress", "IngressClass", "Service", "EndpointSlice", "Endpoints", "Secret"}
    assert (len(res.ingresses), len(res.ingress_classes), len(res.services),
            len(res.endpoint_slices), len(res.endpoints), len(res.secrets)) == (1, 1, 1, 1, 1, 1)
    assert res.warnings == ()
    # kubectl get -o yaml of several objects: a List.
    listed = yaml.safe_dump({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
                             "items": docs})
    assert parse_manifests(listed).warnings == ()
    # The same objects with one unknown field each, at the deepest levels: each is seen.
    broken = KUBECTL_GET.replace("timeoutSeconds: 10800", "timeoutSeconds: 10800, x1: 1").replace(
        "forNodes: [{name: node-1}]", "forNodes: [{name: node-1, x2: 1}]").replace(
        "manager: helm,", "manager: helm, x3: 1,")
    assert sorted(w.field for w in parse_manifests(broken).warnings) == [
        "endpoints[0].hints.forNodes[0].x2", "metadata.managedFields[0].x3",
        "spec.sessionAffinityConfig.clientIP.x1"]


def _to_dict(value: Any, schema: Any) -> Any:
    """The official client's ``to_dict()`` of a camelCase object: field names snake_cased
    along the schema (map keys kept), and every field it knows present, None when unset."""
    from ingresslib._fields import snake

    if isinstance(value, list):
        return [_to_dict(v, schema) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    fields = sorted(name for name in schema.known if snake(name) == name)
    for name in fields:
        out[name] = None
    for key, v in value.items():
        child = schema.children.get(key)
        out[snake(key)] = _to_dict(v, child[1]) if child is not None else v
    return out


def test_the_official_clients_to_dict_form_gives_no_warning() -> None:
    from ingresslib._fields import ROOTS

    docs = list(yaml.safe_load_all(KUBECTL_GET))
    snaked = [_to_dict(d, ROOTS[d["kind"]]) for d in docs]
    assert snaked[2]["spec"]["cluster_i_ps"] == ["10.96.0.10"]
    assert snaked[0]["metadata"]["managed_fields"][0]["fields_v1"]["f:spec"] == {
        "f:ingressClassName": {}, "f:rules": {}}  # map keys never renamed
    res = Resources.from_dicts(snaked)
    assert res.warnings == ()
    assert res == parse_manifests(KUBECTL_GET)
    # A typo in that form is seen too, at its camelCase path.
    snaked[2]["spec"]["session_affinity_config"]["client_ip"]["timeout"] = 3
    assert [str(w) for w in Resources.from_dicts(snaked).warnings] == [
        'Service shop/web: unknown field "spec.sessionAffinityConfig.clientIP.timeout"']


def test_the_snake_case_names_are_the_official_clients() -> None:
    from ingresslib._fields import snake

    # kubernetes-client/python attribute names (openapi-generator's underscore()).
    assert snake("clusterIPs") == "cluster_i_ps"
    assert snake("externalIPs") == "external_i_ps"
    assert snake("clusterIP") == "cluster_ip"
    assert snake("loadBalancerIP") == "load_balancer_ip"
    assert snake("fieldsV1") == "fields_v1"
    assert snake("ipMode") == "ip_mode"
    assert snake("apiVersion") == "api_version"


def test_the_field_table_is_the_kubernetes_openapi_one() -> None:
    """Every field of every type reachable from the six kinds, as lightkube-models (generated
    from the Kubernetes OpenAPI spec) defines them: no field missing, none invented."""
    msgspec = pytest.importorskip("msgspec")
    models = pytest.importorskip("lightkube.models")
    from lightkube.models import core_v1, discovery_v1, networking_v1

    from ingresslib._fields import _TYPES, ROOTS

    leaves = {"Time", "MicroTime", "IntOrString", "Quantity"}

    def struct_of(tp: Any) -> Any:
        if typing.get_origin(tp) is not None:
            found = [struct_of(a) for a in typing.get_args(tp)]
            return next((f for f in found if f is not None), None)
        if isinstance(tp, type) and issubclass(tp, msgspec.Struct) and tp.__name__ not in leaves:
            return tp
        return None

    seen: dict[str, dict[str, str | None]] = {}

    def visit(cls: Any, ours: str) -> None:
        if ours in seen:
            return
        hints = typing.get_type_hints(cls, vars(__import__(cls.__module__, fromlist=["x"])))
        fields: dict[str, str | None] = {}
        seen[ours] = fields
        for f in msgspec.structs.fields(cls):
            child = struct_of(hints[f.name])
            if child is None:
                fields[f.encode_name] = None
                continue
            # Our names: the Go type name; discovery's EndpointPort is told apart from core's.
            name = child.__name__
            if child.__module__.endswith("discovery_v1") and name == "EndpointPort":
                name = "discovery.EndpointPort"
            if child.__name__ == "IngressClassParametersReference":
                name = "IngressClassParametersReference"
            fields[f.encode_name] = name
            visit(child, name)

    roots = {"Ingress": networking_v1.Ingress, "IngressClass": networking_v1.IngressClass,
             "Service": core_v1.Service, "EndpointSlice": discovery_v1.EndpointSlice,
             "Endpoints": core_v1.Endpoints, "Secret": core_v1.Secret}
    for kind, cls in roots.items():
        visit(cls, kind)
    assert models is not None
    assert seen == _TYPES
    assert set(ROOTS) == set(roots)


def test_a_reloading_server_logs_each_warning_once_per_definition() -> None:
    # What `serve` needs (see the report: _serve.py calls it after each successful load).
    from ingresslib._fields import fresh_lines

    typo = INGRESS.replace("  namespace: shop", "  namespace: shop\n  annotation: {}")
    logged: set[str] = set()
    first = fresh_lines(parse_manifests(typo, source="a.yaml").warnings, logged)
    assert first == ['a.yaml: Ingress shop/web: unknown field "metadata.annotation"']
    # Reloaded unchanged (another file was touched): nothing new to say.
    assert fresh_lines(parse_manifests(typo, source="a.yaml").warnings, logged) == []
    # Fixed, then broken again: said again.
    assert fresh_lines(parse_manifests(INGRESS, source="a.yaml").warnings, logged) == []
    assert fresh_lines(parse_manifests(typo, source="a.yaml").warnings, logged) == first
    # The same object read twice (two -f naming one file): once.
    twice = parse_manifests(typo + "---" + typo, source="a.yaml").warnings
    assert len(twice) == 2 and fresh_lines(twice, set()) == first


def test_objects_from_the_api_server_may_skip_the_check() -> None:
    # The cluster watch decodes objects the API server has already pruned: it can skip the
    # walk of their status and managedFields (and nothing is reported).
    from ingresslib._decode import decode_resources

    docs = list(yaml.safe_load_all(KUBECTL_GET.replace("generation: 3", "generation: 3\n  x: 1")))
    assert [w.field for w in decode_resources(docs).warnings] == ["metadata.x"]
    res = decode_resources(docs, check_fields=False)
    assert res.warnings == () and res == decode_resources(docs)


@pytest.mark.asyncio
async def test_serve_logs_each_definitions_field_warnings_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # The reloader says an unknown field when the definition that has it is read, not at every
    # reload of the same files, and again for a new definition that has it.
    from ingresslib import ProxySettings, Router, load_manifests
    from ingresslib._serve import Reloader
    from ingresslib.proxy._server import ProxyServer

    doc = ("apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web}\n"
           "spec:\n  ingressClassname: x\n  defaultBackend: {service: {name: s, port: "
           "{number: 80}}}\n")
    f = tmp_path / "a.yaml"
    f.write_text("# empty\n")
    server = ProxyServer(Router(load_manifests(str(tmp_path))), ProxySettings())
    r = Reloader(server, [str(tmp_path)], ingress_class=None, controller=None, settle=0)
    caplog.set_level("WARNING", logger="ingresslib")

    def said() -> int:
        return sum('unknown field "spec.ingressClassname"' in rec.getMessage()
                   for rec in caplog.records)

    f.write_text(doc)
    assert await r.check() is True and said() == 1
    assert await r.check(force=True) is True and said() == 1  # same definition: said once
    f.write_text(doc.replace("name: web", "name: web2"))
    assert await r.check() is True and said() == 2
