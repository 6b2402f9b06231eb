"""Black-box conformance audit: CONTRACT.md ("Loading manifests", "Route table", `check`,
`explain`) and SEMANTICS.md §1-§5, sentence by sentence, through the public API only.

Each test quotes the sentence it checks. Tests were written from the text alone, then run; where
the text leaves a choice, the choice documented in README.md ("Routing semantics and the choices
we made") is cited. Every table test runs against both matchers (compiled and pure twin), as
tests/test_table.py does; every CLI test runs with and without ``INGRESSLIB_NO_EXTENSIONS``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, reject
from hypothesis import strategies as st

import ingresslib
from ingresslib import BadRequestError, Match, Resources, RouteTable, ValidationError

from _matchers import MATCHER_PARAMS, required
from _table_oracle import host_refused

# --- fixtures and builders ------------------------------------------------------------------------


def _matchers() -> list[Any]:
    return MATCHER_PARAMS


@pytest.fixture(params=_matchers())
def matcher(request: pytest.FixtureRequest) -> Any:
    return required(request.param)


Rule = tuple[str | None, "Sequence[tuple[str | None, str, str]] | None"]


def backend(service: str, port: int | str = 80) -> dict[str, Any]:
    key = "number" if isinstance(port, int) else "name"
    return {"service": {"name": service, "port": {key: port}}}


def ing(
    name: str,
    rules: Sequence[Rule] | None = None,
    *,
    ns: str | None = None,
    ts: str | None = None,
    default: str | None = None,
    cls: str | None = None,
    ann: dict[str, str] | None = None,
) -> dict[str, Any]:
    """An Ingress dict: ``rules`` = [(host, [(path, pathType, service), ...] or None), ...]."""
    meta: dict[str, Any] = {"name": name}
    if ns is not None:
        meta["namespace"] = ns
    if ts is not None:
        meta["creationTimestamp"] = ts
    if ann:
        meta["annotations"] = ann
    spec: dict[str, Any] = {}
    if rules is not None:
        spec["rules"] = []
        for host, paths in rules:
            rule: dict[str, Any] = {}
            if host is not None:
                rule["host"] = host
            if paths is not None:
                rule["http"] = {"paths": [
                    {**({} if p is None else {"path": p}), "pathType": t, "backend": backend(s)}
                    for p, t, s in paths
                ]}
            spec["rules"].append(rule)
    if default is not None:
        spec["defaultBackend"] = backend(default)
    if cls is not None:
        spec["ingressClassName"] = cls
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": spec}


def klass(name: str, controller: str = "example.com/ingress", default: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if default is not None:
        meta["annotations"] = {"ingressclass.kubernetes.io/is-default-class": default}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": meta,
            "spec": {"controller": controller}}


def table(matcher: Any, *objs: dict[str, Any], **kw: Any) -> RouteTable:
    return RouteTable.build(Resources.from_dicts(list(objs)), matcher_class=matcher, **kw)


def svc(t: RouteTable, host: str, path: str) -> str | None:
    m = t.match(host, path)
    return None if m is None else m.service


#: What ``table.match`` gives a Host the proxy answers 400 (SEMANTICS §9 "bad Host values"):
#: BadRequestError, never a route (session 34).
REFUSED = "400"


def host_svc(t: RouteTable, host: str, path: str) -> str | None:
    """``svc``, or ``REFUSED`` when ``match`` refuses the Host."""
    try:
        return svc(t, host, path)
    except BadRequestError as exc:
        assert exc.status_hint == 400 and "Host" in str(exc), exc
        return REFUSED


def errors_of(objs: Any) -> list[str]:
    with pytest.raises(ValidationError) as info:
        Resources.from_dicts(objs)
    return str(info.value).splitlines()


# --- CONTRACT "Loading manifests" / SEMANTICS §1 ---------------------------------------------------

INGRESS_YAML = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  rules:
  - host: foo.com
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: site, port: {number: 80}}}}
"""

OTHER_KINDS_YAML = """\
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: nginx}
spec: {controller: k8s.io/ingress-nginx}
---
apiVersion: v1
kind: Service
metadata: {name: site, namespace: shop}
spec: {ports: [{name: http, port: 80, targetPort: 8080}]}
---
apiVersion: v1
kind: Endpoints
metadata: {name: site, namespace: shop}
subsets: [{addresses: [{ip: 10.0.0.1}], ports: [{name: http, port: 8080}]}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: site-1, namespace: shop, labels: {kubernetes.io/service-name: site}}
addressType: IPv4
ports: [{name: http, port: 8080}]
endpoints: [{addresses: [10.0.0.2]}]
---
apiVersion: v1
kind: Secret
metadata: {name: tls, namespace: shop}
type: kubernetes.io/tls
data: {tls.crt: YQ==, tls.key: Yg==}
"""


def test_every_understood_kind_lands_in_its_sequence() -> None:
    # "Kinds understood: networking.k8s.io/v1 Ingress and IngressClass; v1 Service, Endpoints,
    # Secret; discovery.k8s.io/v1 EndpointSlice."
    res = ingresslib.parse_manifests(INGRESS_YAML + "---\n" + OTHER_KINDS_YAML)
    assert [i.metadata.name for i in res.ingresses] == ["web"]
    assert [c.metadata.name for c in res.ingress_classes] == ["nginx"]
    assert [s.metadata.name for s in res.services] == ["site"]
    assert [e.metadata.name for e in res.endpoint_slices] == ["site-1"]
    assert [e.metadata.name for e in res.endpoints] == ["site"]
    assert [s.metadata.name for s in res.secrets] == ["tls"]


def test_other_kinds_are_kept_aside_not_rejected() -> None:
    # "Other kinds are kept aside and ignored, not rejected." Including other versions of a known
    # kind, and objects whose content would be invalid as one of the understood kinds.
    text = INGRESS_YAML + """\
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec: {replicas: "many", whatever: [1, 2]}
---
apiVersion: networking.k8s.io/v1beta1
kind: Ingress
metadata: {name: old-api}
spec: {backend: {serviceName: x, servicePort: 80}}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cfg}
data: {a: b}
---
apiVersion: example.com/v1
kind: Service
metadata: {name: not-a-core-service}
spec: {bogus: true}
"""
    res = ingresslib.parse_manifests(text)
    assert [i.metadata.name for i in res.ingresses] == ["web"]
    assert len(res.services) == 0
    assert len(res.ingress_classes) == len(res.endpoint_slices) == len(res.secrets) == 0


def test_kind_list_unwraps_in_yaml_and_json() -> None:
    # "`kind: List` unwraps."
    obj = ingresslib.parse_manifests(INGRESS_YAML).ingresses[0]
    as_dict = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web"},
               "spec": {"rules": [{"host": "foo.com", "http": {"paths": [
                   {"path": "/", "pathType": "Prefix", "backend": backend("site")}]}}]}}
    lst = {"apiVersion": "v1", "kind": "List", "metadata": {}, "items": [as_dict, klass("nginx")]}
    for text in (json.dumps(lst), "apiVersion: v1\nkind: List\nitems:\n" + "".join(
            "- " + json.dumps(i) + "\n" for i in lst["items"])):
        res = ingresslib.parse_manifests(text)
        assert list(res.ingresses) == [obj]
        assert [c.metadata.name for c in res.ingress_classes] == ["nginx"]
    res = Resources.from_dicts([lst])
    assert list(res.ingresses) == [obj]


def test_multi_document_yaml_with_empty_documents() -> None:
    # "YAML (multi-doc)": empty documents (bare `---`, comment-only, `...`) are nothing, not errors.
    text = "---\n---\n# only a comment\n---\n" + INGRESS_YAML + "---\n\n---\n" + \
        INGRESS_YAML.replace("name: web", "name: web2") + "...\n---\n"
    res = ingresslib.parse_manifests(text)
    assert [i.metadata.name for i in res.ingresses] == ["web", "web2"]


def test_json_text_and_bytes_input() -> None:
    # "parse_manifests(text): str or bytes of YAML/JSON"
    from_yaml = ingresslib.parse_manifests(INGRESS_YAML)
    as_json = json.dumps(_web_dict())
    assert ingresslib.parse_manifests(as_json).ingresses == from_yaml.ingresses
    assert ingresslib.parse_manifests(as_json.encode()).ingresses == from_yaml.ingresses
    assert ingresslib.parse_manifests(INGRESS_YAML.encode("utf-8")).ingresses == from_yaml.ingresses
    # A JSON array of objects is a list of objects too.
    assert ingresslib.parse_manifests(json.dumps([_web_dict()])).ingresses == from_yaml.ingresses


def _web_dict() -> dict[str, Any]:
    """The JSON twin of INGRESS_YAML."""
    return ing("web", [("foo.com", [("/", "Prefix", "site")])])


def test_load_manifests_takes_files_and_folders_yaml_and_json(tmp_path: Path) -> None:
    # "load_manifests("deploy/", "extra.yaml"): files or folders; YAML (multi-doc) or JSON; kind: List too"
    deploy = tmp_path / "deploy"
    (deploy / "sub").mkdir(parents=True)
    (deploy / "a.yaml").write_text(INGRESS_YAML + "---\n" + OTHER_KINDS_YAML)
    (deploy / "sub" / "b.json").write_text(json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": [ing("from-json", [("bar.com", [("/", "Prefix", "b")])])]}))
    extra = tmp_path / "extra.yaml"
    extra.write_text(INGRESS_YAML.replace("name: web", "name: extra"))
    res = ingresslib.load_manifests(str(deploy), str(extra))
    assert sorted(i.metadata.name for i in res.ingresses) == ["extra", "from-json", "web"]
    assert len(res.services) == 1 and len(res.endpoint_slices) == 1 and len(res.secrets) == 1
    # pathlib paths work as well as str.
    assert len(ingresslib.load_manifests(extra).ingresses) == 1


def test_namespace_defaults_to_default() -> None:
    # "metadata.namespace defaults to "default"."
    res = ingresslib.parse_manifests(INGRESS_YAML)
    assert res.ingresses[0].metadata.namespace == "default"
    m = RouteTable.build(res).match("foo.com", "/")
    assert m is not None and m.namespace == "default" and m.ingress == "default/web"
    res = Resources.from_dicts([{**ing("x", [("a.com", [("/", "Prefix", "s")])]),
                                 "metadata": {"name": "x", "namespace": None}}])
    assert res.ingresses[0].metadata.namespace == "default"


def _snake_ingress(name: str, created: datetime, service: str) -> dict[str, Any]:
    """What ``kubernetes.client.V1Ingress(...).to_dict()`` produces: snake_case, every field
    present, ``None`` for unset ones, datetimes for timestamps."""
    return {
        "api_version": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "annotations": {"example.com/some_key": "v"},
            "creation_timestamp": created,
            "deletion_grace_period_seconds": None,
            "deletion_timestamp": None,
            "finalizers": None,
            "generate_name": None,
            "generation": 1,
            "labels": {"app_name": "shop"},
            "managed_fields": None,
            "name": name,
            "namespace": "shop",
            "owner_references": None,
            "resource_version": "123",
            "self_link": None,
            "uid": "0d1e2f",
        },
        "spec": {
            "default_backend": None,
            "ingress_class_name": None,
            "rules": [{
                "host": "shop.example.com",
                "http": {"paths": [{
                    "backend": {"resource": None,
                                "service": {"name": service, "port": {"name": None, "number": 8080}}},
                    "path": "/api",
                    "path_type": "Prefix",
                }]},
            }],
            "tls": None,
        },
        "status": {"load_balancer": {"ingress": None}},
    }


def test_snake_case_to_dict_input_with_none_values(matcher: Any) -> None:
    # "Accept both the API's camelCase keys and the snake_case keys with None values that the
    # official kubernetes client's to_dict() produces; None means absent. Never rename keys inside
    # annotations, labels or Secret data."
    old = _snake_ingress("old", datetime(2024, 1, 1, tzinfo=timezone.utc), "old-api")
    new = _snake_ingress("new", datetime(2025, 1, 1, tzinfo=timezone.utc), "new-api")
    res = Resources.from_dicts([new, old])
    by_name = {i.metadata.name: i for i in res.ingresses}
    assert dict(by_name["old"].metadata.annotations) == {"example.com/some_key": "v"}
    assert dict(by_name["old"].metadata.labels) == {"app_name": "shop"}
    t = RouteTable.build(res, matcher_class=matcher)
    m = t.match("shop.example.com", "/api/v1")
    # The datetime creation_timestamp is read: the older Ingress wins the identical rule (§4.3).
    assert m is not None and (m.service, m.port, m.ingress, m.path_type) == ("old-api", 8080, "shop/old", "Prefix")
    # The same object in camelCase loads to an equal model.
    camel = ing("old", [("shop.example.com", [("/api", "Prefix", "old-api")])], ns="shop",
                ts="2024-01-01T00:00:00Z", ann={"example.com/some_key": "v"})
    camel["spec"]["rules"][0]["http"]["paths"][0]["backend"] = backend("old-api", 8080)
    camel["metadata"]["labels"] = {"app_name": "shop"}
    camel_res = Resources.from_dicts([camel])
    assert camel_res.ingresses[0].spec == by_name["old"].spec
    assert camel_res.ingresses[0].metadata.name == "old"


def test_snake_case_secret_data_keys_are_not_renamed() -> None:
    # "Never rename keys inside ... Secret data."
    secret = {"api_version": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
              "metadata": {"name": "tls", "namespace": None, "labels": None, "annotations": None},
              "data": {"tls.crt": "YQ==", "tls.key": "Yg==", "some_key": "Yw=="}, "string_data": None,
              "immutable": None}
    res = Resources.from_dicts([secret])
    (s,) = res.secrets
    assert s.metadata.namespace == "default"
    assert set(s.data) == {"tls.crt", "tls.key", "some_key"}


def test_models_and_sequences_are_immutable() -> None:
    # "Resources exposes ... read-only sequences of typed, immutable model objects."
    # "Models are immutable, typed, slotted dataclasses"
    res = ingresslib.parse_manifests(INGRESS_YAML + "---\n" + OTHER_KINDS_YAML)
    for seq in (res.ingresses, res.ingress_classes, res.services, res.endpoint_slices, res.secrets):
        assert isinstance(seq, Sequence)
        assert not hasattr(seq, "append")
        with pytest.raises(TypeError):
            seq[0] = seq[0]  # type: ignore[index]
    ing0 = res.ingresses[0]
    for obj in (ing0, ing0.metadata, ing0.spec, res.services[0], res.secrets[0], res.ingress_classes[0]):
        assert dataclasses.is_dataclass(obj)
        assert not hasattr(obj, "__dict__"), f"{type(obj).__name__} is not slotted"
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(obj, dataclasses.fields(obj)[0].name, None)
    with pytest.raises(TypeError):
        ing0.metadata.annotations["x"] = "y"  # type: ignore[index]
    with pytest.raises(TypeError):
        res.secrets[0].data["x"] = b"y"  # type: ignore[index]


# --- ValidationError: every problem, one per line, in the API server's format ---------------------

LINE = re.compile(
    # Cluster-scoped kinds (IngressClass) have no namespace: "IngressClass nginx: ..." (the project's
    # choice, asserted in tests/test_validate.py; the text's <ns>/ has nothing to fill it).
    r"^(?P<kind>[A-Za-z]+) (?:(?P<ns>[^/ ]*)/)?(?P<name>[^: /]+): (?P<field>[^: ]+): "
    r"(?P<type>Required value|Invalid value|Unsupported value|Forbidden|Duplicate value|Too long)"
    r"(?:: (?P<rest>.*))?$"
)


def test_validation_error_is_a_value_error_and_lists_each_problem_on_its_own_line() -> None:
    # "Invalid objects raise ingresslib.ValidationError (a ValueError). It lists every problem
    # found, each with the object (Ingress default/web), the field path
    # (spec.rules[0].http.paths[1].path) and a message in the API server's style. str(err) prints
    # them one per line." SEMANTICS §2: "<Kind> <ns>/<name>: <field path>: <Type>: <value>: <detail>"
    bad = ing("web", [("foo.com", [("/ok", "Prefix", "a"), ("foo", "Prefix", "a")])])
    with pytest.raises(ValueError) as info:
        Resources.from_dicts([bad])
    assert isinstance(info.value, ValidationError)
    assert str(info.value).splitlines() == [
        'Ingress default/web: spec.rules[0].http.paths[1].path: Invalid value: "foo": must be an absolute path'
    ]


def test_error_line_format_for_each_type_word() -> None:
    # The API server's type words: Required value, Invalid value, Unsupported value, Forbidden.
    web = ing("web", [("foo.com", [("/a", "Sometimes", "a"), ("/b", "Prefix", "b")])], ns="shop")
    web["spec"]["rules"][0]["http"]["paths"][1]["backend"]["service"]["port"] = {"number": 70000}
    del web["spec"]["rules"][0]["http"]["paths"][0]["pathType"]
    web["spec"]["rules"][0]["http"]["paths"].append({"path": "/c", "pathType": "Sometimes", "backend": backend("c")})
    ic = klass("nginx")
    ic["spec"]["parameters"] = {"kind": "Cfg", "name": "p", "scope": "Cluster", "namespace": "x"}
    lines = errors_of([web, ic])
    parsed = [LINE.match(line) for line in lines]
    assert all(parsed), lines
    by_field = {(p["kind"], p["ns"], p["name"], p["field"]): p for p in parsed if p}
    req = by_field["Ingress", "shop", "web", "spec.rules[0].http.paths[0].pathType"]
    assert req["type"] == "Required value"
    port = by_field["Ingress", "shop", "web", "spec.rules[0].http.paths[1].backend.service.port.number"]
    # Go's field.Invalid prints numbers bare and strings quoted.
    assert port["type"] == "Invalid value" and port["rest"] == "70000: must be between 1 and 65535, inclusive"
    uns = by_field["Ingress", "shop", "web", "spec.rules[0].http.paths[2].pathType"]
    assert uns["type"] == "Unsupported value"
    assert uns["rest"] == '"Sometimes": supported values: "Exact", "ImplementationSpecific", "Prefix"'
    forb = [p for p in parsed if p and p["kind"] == "IngressClass"]
    assert [p["type"] for p in forb] == ["Forbidden"] and forb[0]["field"] == "spec.parameters.namespace"


def test_every_error_of_several_objects_of_several_kinds_is_listed() -> None:
    # "It lists **every** problem found" -- across objects and kinds, in one exception.
    text = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: one, namespace: a}
spec:
  rules:
  - host: Foo.com
    http:
      paths:
      - {path: rel, pathType: Exact, backend: {service: {name: s, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: two, namespace: b}
spec: {}
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: cls}
spec: {}
---
apiVersion: v1
kind: Service
metadata: {name: Bad_Name}
spec: {ports: [{port: 0}]}
"""
    with pytest.raises(ValidationError) as info:
        ingresslib.parse_manifests(text)
    lines = str(info.value).splitlines()
    assert len(lines) == len(info.value.errors)
    joined = "\n".join(lines)
    assert "Ingress a/one: spec.rules[0].host: Invalid value: \"Foo.com\"" in joined
    assert "Ingress a/one: spec.rules[0].http.paths[0].path: Invalid value: \"rel\"" in joined
    assert "Ingress b/two: spec: " in joined  # needs rules or defaultBackend
    assert "IngressClass " in joined and "spec.controller: Required value" in joined
    assert "Service default/Bad_Name: metadata.name: Invalid value" in joined
    assert "spec.ports[0].port: Invalid value: 0" in joined


def test_load_manifests_errors_name_the_file(tmp_path: Path) -> None:
    # README: "deploy/web.yaml: Ingress default/web: spec.rules[0]...: Invalid value: ..."
    (tmp_path / "a.yaml").write_text(INGRESS_YAML.replace("path: /", "path: nope"))
    (tmp_path / "b.json").write_text(json.dumps(ing("j", [("Bad.com", [("/", "Prefix", "s")])])))
    with pytest.raises(ValidationError) as info:
        ingresslib.load_manifests(tmp_path)
    lines = str(info.value).splitlines()
    assert len(lines) == 2
    assert lines[0].endswith('Ingress default/web: spec.rules[0].http.paths[0].path: Invalid value: "nope": '
                             "must be an absolute path") and "a.yaml" in lines[0]
    assert "b.json" in lines[1] and "Ingress default/j: spec.rules[0].host: Invalid value: \"Bad.com\"" in lines[1]


def test_yaml_syntax_error_names_file_and_line_of_a_later_document(tmp_path: Path) -> None:
    # "YAML syntax errors (must name file and line)": the line counts from the top of the file,
    # not from the start of the document that broke.
    broken = INGRESS_YAML + "---\napiVersion: v1\nkind: Service\nmetadata: {name: x\nspec: {}\n"
    bad_line = broken.splitlines().index("spec: {}") + 1  # flow mapping never closed; found here
    f = tmp_path / "broken.yaml"
    f.write_text(broken)
    with pytest.raises(ValidationError) as info:
        ingresslib.load_manifests(f)
    msg = str(info.value)
    assert str(f) in msg or "broken.yaml" in msg
    lines_named = {int(n) for n in re.findall(r"line (\d+)", msg)} | {int(n) for n in re.findall(r":(\d+):", msg)}
    assert lines_named & {bad_line - 1, bad_line, bad_line + 1}, msg
    # parse_manifests raises the same error type (not a yaml exception), with the line.
    with pytest.raises(ValidationError) as info2:
        ingresslib.parse_manifests(broken)
    assert re.search(r"line \d+|:\d+:", str(info2.value))


def test_invalid_json_and_non_mapping_documents_are_validation_errors() -> None:
    with pytest.raises(ValidationError):
        ingresslib.parse_manifests('{"apiVersion": "v1", "kind": ')
    with pytest.raises(ValidationError):
        ingresslib.parse_manifests("- just\n- strings\n")
    with pytest.raises(ValidationError):
        ingresslib.parse_manifests(b"\xff\xfe\x00garbage\x80")


# --- CONTRACT "Route table": Match fields -----------------------------------------------------------


def test_match_fields_as_written(matcher: Any) -> None:
    # "Match has at least: service, port (int or str port name, as written in the Ingress),
    # namespace, ingress ("namespace/name"), host (the rule's host or None), path (the rule's path,
    # or None for a default backend), path_type, is_default_backend (bool)."
    web = ing("web", [("*.foo.com", [("/api", "Exact", "api")]), (None, [("/", "Prefix", "site")])],
              ns="shop", default="fallback")
    web["spec"]["rules"][0]["http"]["paths"][0]["backend"] = backend("api", "http")
    t = table(matcher, web)
    m = t.match("X.foo.com", "/api")
    assert isinstance(m, Match)
    assert (m.service, m.port, m.namespace, m.ingress, m.host, m.path, m.path_type, m.is_default_backend) == \
        ("api", "http", "shop", "shop/web", "*.foo.com", "/api", "Exact", False)
    m = t.match("other.com", "/x")
    assert m is not None and (m.service, m.port, m.host, m.path, m.path_type, m.is_default_backend) == \
        ("site", 80, None, "/", "Prefix", False)
    m = t.match("x.foo.com", "/nothing")
    assert m is not None and (m.service, m.port, m.namespace, m.path, m.path_type, m.is_default_backend) == \
        ("fallback", 80, "shop", None, None, True)


def test_resource_backend_has_no_service(matcher: Any) -> None:
    # "service (str, or None for a resource backend)"
    web = ing("web", [("foo.com", [("/static", "Prefix", "x")])])
    web["spec"]["rules"][0]["http"]["paths"][0]["backend"] = {
        "resource": {"apiGroup": "k8s.example.com", "kind": "StorageBucket", "name": "static-assets"}}
    m = table(matcher, web).match("foo.com", "/static/a.png")
    assert m is not None and m.service is None and m.path == "/static" and not m.is_default_backend


# --- §3 which Ingresses are served ------------------------------------------------------------------


def _class_world() -> list[dict[str, Any]]:
    return [
        klass("nginx", "k8s.io/ingress-nginx"),
        klass("other", "example.com/other"),
        ing("by-name", [("by-name.com", [("/", "Prefix", "s")])], cls="nginx"),
        ing("by-annotation", [("by-ann.com", [("/", "Prefix", "s")])],
            ann={"kubernetes.io/ingress.class": "nginx"}),
        ing("other-class", [("other.com", [("/", "Prefix", "s")])], cls="other"),
        ing("ghost-class", [("ghost.com", [("/", "Prefix", "s")])], cls="ghost"),
        ing("no-class", [("none.com", [("/", "Prefix", "s")])]),
    ]


def _served(t: RouteTable) -> set[str]:
    hosts = {"by-name.com": "by-name", "by-ann.com": "by-annotation", "other.com": "other-class",
             "ghost.com": "ghost-class", "none.com": "no-class"}
    return {name for host, name in hosts.items() if t.match(host, "/") is not None}


def test_no_class_filter_serves_every_ingress(matcher: Any) -> None:
    # "With neither given every Ingress is served." -- even one naming a class that does not exist.
    assert _served(table(matcher, *_class_world())) == {
        "by-name", "by-annotation", "other-class", "ghost-class", "no-class"}


@pytest.mark.parametrize("kw", [{"ingress_class": "nginx"}, {"controller": "k8s.io/ingress-nginx"},
                                {"ingress_class": "nginx", "controller": "k8s.io/ingress-nginx"}])
def test_class_filter_by_name_or_controller(matcher: Any, kw: dict[str, str]) -> None:
    # "an Ingress is served when its spec.ingressClassName (or legacy annotation
    # kubernetes.io/ingress.class) names a matching class". A named class that does not exist is
    # never served; an Ingress naming no class is not served when no matching class is default.
    assert _served(table(matcher, *_class_world(), **kw)) == {"by-name", "by-annotation"}


def test_filter_needs_both_name_and_controller_to_match(matcher: Any) -> None:
    # "matches the filter (ingress_class = its name, controller = its spec.controller)"
    t = table(matcher, *_class_world(), ingress_class="nginx", controller="example.com/other")
    assert _served(t) == set()


def test_named_class_that_does_not_exist_is_never_served_even_if_it_equals_the_filter(matcher: Any) -> None:
    # §3 "It is served iff an IngressClass of that name exists and matches the filter."
    objs = [o for o in _class_world() if o["kind"] != "IngressClass"]
    assert _served(table(matcher, *objs, ingress_class="nginx")) == set()
    assert _served(table(matcher, *objs, ingress_class="ghost")) == set()


@pytest.mark.parametrize(("value", "served"), [("true", True), ("True", False), ("TRUE", False),
                                                ("yes", False), ("1", False), (" true", False),
                                                ("false", False), ("", False)])
def test_default_class_is_exactly_true(matcher: Any, value: str, served: bool) -> None:
    # "An Ingress naming no class is served iff a matching class has
    # ingressclass.kubernetes.io/is-default-class: "true" (exactly "true")."
    objs = [klass("nginx", "k8s.io/ingress-nginx", default=value), klass("other", "example.com/other"),
            ing("no-class", [("none.com", [("/", "Prefix", "s")])]),
            ing("by-name", [("by-name.com", [("/", "Prefix", "s")])], cls="nginx")]
    for kw in ({"ingress_class": "nginx"}, {"controller": "k8s.io/ingress-nginx"}):
        got = _served(table(matcher, *objs, **kw))
        assert got == ({"by-name", "no-class"} if served else {"by-name"}), kw


def test_default_class_that_does_not_match_the_filter_does_not_serve_classless(matcher: Any) -> None:
    objs = [klass("nginx", "k8s.io/ingress-nginx"), klass("other", "example.com/other", default="true"),
            ing("no-class", [("none.com", [("/", "Prefix", "s")])])]
    assert _served(table(matcher, *objs, ingress_class="nginx")) == set()
    assert _served(table(matcher, *objs, ingress_class="other")) == {"no-class"}


def test_unserved_ingress_default_backend_is_not_used(matcher: Any) -> None:
    objs = [klass("nginx", "k8s.io/ingress-nginx"),
            ing("theirs", cls="other", default="their-fallback", ts="2020-01-01T00:00:00Z"),
            ing("ours", [("a.com", [("/x", "Exact", "x")])], cls="nginx", default="our-fallback",
                ts="2024-01-01T00:00:00Z")]
    t = table(matcher, *objs, ingress_class="nginx")
    assert svc(t, "b.com", "/") == "our-fallback"


# --- §4.1 hosts -------------------------------------------------------------------------------------


@pytest.fixture
def hosts_table(matcher: Any) -> RouteTable:
    return table(
        matcher,
        ing("precise", [("foo.com", [("/", "Prefix", "precise")])]),
        ing("wild", [("*.foo.com", [("/", "Prefix", "wild")])]),
        ing("any", [(None, [("/", "Prefix", "hostless")])]),
    )


@pytest.mark.parametrize(("host", "want"), [
    ("foo.com", "precise"),
    ("FOO.COM", "precise"),
    ("Foo.Com:8080", "precise"),
    ("foo.com:", REFUSED),              # ":" with no port: a bad port (§9)
    ("foo.com.", "precise"),
    ("FOO.com.:443", "precise"),
    ("foo.com..", REFUSED),             # one trailing dot only; two: an empty label (§9)
    ("bar.foo.com", "wild"),
    ("BAR.Foo.COM:80", "wild"),
    ("bar.foo.com.", "wild"),
    ("a.bar.foo.com", "hostless"),      # wildcard covers exactly one label
    (".foo.com", "hostless"),           # an empty first label is not a label
    ("xfoo.com", "hostless"),
    ("[::1]", "hostless"),              # IPv6 literals keep brackets, never equal a rule host
    ("[::1]:8080", "hostless"),
    ("[foo.com]", REFUSED),             # no IP literal (§9)
    ("[foo.com]:80", REFUSED),
    ("10.0.0.1:80", "hostless"),
    ("", "hostless"),
])
def test_host_normalisation_and_groups(hosts_table: RouteTable, host: str, want: str) -> None:
    # §4.1 "Host: lower-case it, strip :port (IPv6 literals keep their brackets and never equal a
    # rule host), strip one trailing dot. Group = the precise host if a rule names it, else the
    # *. wildcard covering exactly one first label, else the host-less rules." §9: a bad Host
    # value is a 400 before any of it.
    assert host_svc(hosts_table, host, "/x") == want


def test_no_fall_through_between_host_groups(matcher: Any) -> None:
    # "No fall-through to a less specific group once one is chosen."
    t = table(
        matcher,
        ing("precise", [("a.foo.com", [("/only", "Exact", "precise")])]),
        ing("wild", [("*.foo.com", [("/w", "Prefix", "wild")])]),
        ing("any", [(None, [("/", "Prefix", "hostless")])]),
    )
    assert svc(t, "a.foo.com", "/only") == "precise"
    assert svc(t, "a.foo.com", "/w") is None       # not the wildcard's rule
    assert svc(t, "a.foo.com", "/other") is None   # not the host-less rule
    assert svc(t, "b.foo.com", "/w/x") == "wild"
    assert svc(t, "b.foo.com", "/other") is None   # wildcard group chosen: no host-less fall-through
    assert svc(t, "foo.com", "/other") == "hostless"


def test_no_fall_through_takes_the_default_backend_instead(matcher: Any) -> None:
    t = table(
        matcher,
        ing("precise", [("a.foo.com", [("/only", "Exact", "precise")])], default="fallback"),
        ing("any", [(None, [("/", "Prefix", "hostless")])]),
    )
    m = t.match("a.foo.com", "/other")
    assert m is not None and m.service == "fallback" and m.is_default_backend


# --- §4.2 paths ---------------------------------------------------------------------------------------

# The Kubernetes docs' examples table (kubernetes.io/docs/concepts/services-networking/ingress/#examples),
# every row: (kind, rule paths, request path, matched rule path or None). A "No" row with a default
# backend ("uses default backend") is checked as is_default_backend.
K8S_DOCS_TABLE: list[tuple[str, list[str], str, str | None]] = [
    ("Prefix", ["/"], "/", "/"),
    ("Prefix", ["/"], "/anything/at/all", "/"),
    ("Exact", ["/foo"], "/foo", "/foo"),
    ("Exact", ["/foo"], "/bar", None),
    ("Exact", ["/foo"], "/foo/", None),
    ("Exact", ["/foo/"], "/foo", None),
    ("Prefix", ["/foo"], "/foo", "/foo"),
    ("Prefix", ["/foo"], "/foo/", "/foo"),
    ("Prefix", ["/foo/"], "/foo", "/foo/"),
    ("Prefix", ["/foo/"], "/foo/", "/foo/"),
    ("Prefix", ["/aaa/bb"], "/aaa/bbb", None),
    ("Prefix", ["/aaa/bbb"], "/aaa/bbb", "/aaa/bbb"),
    ("Prefix", ["/aaa/bbb/"], "/aaa/bbb", "/aaa/bbb/"),
    ("Prefix", ["/aaa/bbb"], "/aaa/bbb/", "/aaa/bbb"),
    ("Prefix", ["/aaa/bbb"], "/aaa/bbb/ccc", "/aaa/bbb"),
    ("Prefix", ["/aaa/bbb"], "/aaa/bbbxyz", None),
    ("Prefix", ["/", "/aaa"], "/aaa/ccc", "/aaa"),
    ("Prefix", ["/", "/aaa", "/aaa/bbb"], "/aaa/bbb", "/aaa/bbb"),
    ("Prefix", ["/", "/aaa", "/aaa/bbb"], "/ccc", "/"),
    ("Prefix", ["/aaa"], "/ccc", None),
]


@pytest.mark.parametrize(("kind", "paths", "request_path", "want"), K8S_DOCS_TABLE)
def test_kubernetes_docs_examples_table(matcher: Any, kind: str, paths: list[str], request_path: str,
                                        want: str | None) -> None:
    web = ing("web", [("foo.com", [(p, kind, f"s{i}") for i, p in enumerate(paths)])], default="dflt")
    m = table(matcher, web).match("foo.com", request_path)
    assert m is not None
    if want is None:
        assert m.is_default_backend and m.service == "dflt"
    else:
        assert (m.path, m.path_type, m.is_default_backend) == (want, kind, False)


def test_kubernetes_docs_mixed_row_prefers_exact(matcher: Any) -> None:
    # "Mixed | /foo (Prefix), /foo (Exact) | /foo | Yes, prefers Exact" -- in either spec order.
    for order in ([("/foo", "Prefix", "p"), ("/foo", "Exact", "e")], [("/foo", "Exact", "e"), ("/foo", "Prefix", "p")]):
        t = table(matcher, ing("web", [("foo.com", order)]))
        assert svc(t, "foo.com", "/foo") == "e"
        assert svc(t, "foo.com", "/foo/") == "p"


@pytest.mark.parametrize(("rule", "kind", "request_path", "hit"), [
    # "Exact: whole-string equality; a trailing slash counts."
    ("/foo/", "Exact", "/foo/", True),
    ("/foo/", "Exact", "/foo", False),
    ("/foo", "Exact", "/foo/bar", False),
    # "Prefix: element-wise on /. The rule's trailing slash is ignored; / matches everything;
    # /foo matches /foo, /foo/, /foo/bar, not /foobar."
    ("/foo", "Prefix", "/foo/bar/baz", True),
    ("/foo", "Prefix", "/foobar", False),
    ("/foo/", "Prefix", "/foobar", False),
    ("/foo/", "Prefix", "/foo/bar", True),
    ("/foo/bar", "Prefix", "/foo", False),
    ("/", "Prefix", "/", True),
    # "Path ... case-sensitive"
    ("/Foo", "Prefix", "/foo", False),
    ("/foo", "Exact", "/FOO", False),
    # "ImplementationSpecific: Prefix semantics (documented choice)."
    ("/foo", "ImplementationSpecific", "/foo/bar", True),
    ("/foo", "ImplementationSpecific", "/foobar", False),
    ("/foo/", "ImplementationSpecific", "/foo", True),
    (None, "ImplementationSpecific", "/anything", True),   # README: an empty path means /
])
def test_path_types(matcher: Any, rule: str | None, kind: str, request_path: str, hit: bool) -> None:
    t = table(matcher, ing("web", [("foo.com", [(rule, kind, "s")])]))
    assert (svc(t, "foo.com", request_path) == "s") is hit


# --- §4.3 precedence ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("rules", "request_path", "want"), [
    # "the longest matching rule path wins"
    ([("/a", "Prefix"), ("/a/b/c", "Prefix"), ("/a/b", "Prefix")], "/a/b/c/d", "/a/b/c:Prefix"),
    ([("/a/b", "Prefix"), ("/a", "Exact")], "/a", "/a:Exact"),
    ([("/a/b", "Exact"), ("/a", "Prefix")], "/a/b/", "/a:Prefix"),
    # "(a Prefix rule's trailing / not counted)": Prefix /foo/ is as long as Exact /foo.
    ([("/foo/", "Prefix"), ("/foo", "Exact")], "/foo", "/foo:Exact"),
    ([("/foo/", "Prefix"), ("/foo", "Exact")], "/foo/", "/foo/:Prefix"),
    # Exact /foo/ is longer than Prefix /foo.
    ([("/foo", "Prefix"), ("/foo/", "Exact")], "/foo/", "/foo/:Exact"),
    # "at equal length Exact beats Prefix"
    ([("/x", "Prefix"), ("/x", "Exact")], "/x", "/x:Exact"),
    ([("/x/y", "Prefix"), ("/x/y", "Exact")], "/x/y", "/x/y:Exact"),
    # "Prefix /foo/ beats Prefix /foo"
    ([("/foo", "Prefix"), ("/foo/", "Prefix")], "/foo", "/foo/:Prefix"),
    ([("/foo/", "Prefix"), ("/foo", "Prefix")], "/foo/bar", "/foo/:Prefix"),
    # README: Prefix beats ImplementationSpecific at the same path.
    ([("/i", "ImplementationSpecific"), ("/i", "Prefix")], "/i/x", "/i:Prefix"),
    ([("/i", "ImplementationSpecific"), ("/i", "Exact")], "/i", "/i:Exact"),
    ([("/i", "ImplementationSpecific"), ("/", "Prefix")], "/i/x", "/i:ImplementationSpecific"),
])
def test_precedence(matcher: Any, rules: list[tuple[str, str]], request_path: str, want: str) -> None:
    paths = [(p, k, f"s{i}") for i, (p, k) in enumerate(rules)]
    m = table(matcher, ing("web", [("h.com", paths)])).match("h.com", request_path)
    assert m is not None and f"{m.path}:{m.path_type}" == want


def test_identical_rules_tie_break_by_creation_timestamp_across_offsets(matcher: Any) -> None:
    # "for identical rules the oldest Ingress (creationTimestamp)" -- compared as instants, not
    # strings: 10:00+02:00 is 08:00Z, older than 09:00Z.
    a = ing("a", [("h.com", [("/p", "Prefix", "a")])], ts="2024-01-01T09:00:00Z")
    b = ing("b", [("h.com", [("/p", "Prefix", "b")])], ts="2024-01-01T10:00:00+02:00")
    assert svc(table(matcher, a, b), "h.com", "/p") == "b"


def test_identical_rules_tie_break_by_namespace_then_name_then_spec_order(matcher: Any) -> None:
    # "then namespace/name, then spec order"
    ts = "2024-01-01T00:00:00Z"
    objs = [
        ing("aaa", [("h.com", [("/p", "Prefix", "ns-b")])], ns="b", ts=ts),
        ing("zzz", [("h.com", [("/p", "Prefix", "ns-a")])], ns="a", ts=ts),
    ]
    assert svc(table(matcher, *objs), "h.com", "/p") == "ns-a"
    objs = [ing("b", [("h.com", [("/p", "Exact", "b")])], ns="x"),
            ing("a", [("h.com", [("/p", "Exact", "a")])], ns="x")]
    assert svc(table(matcher, *objs), "h.com", "/p") == "a"
    # "a-b" vs "a/b"-style collisions: namespace "a" name "b-c" vs namespace "a-b" name "c".
    objs = [ing("c", [("h.com", [("/p", "Exact", "second")])], ns="a-b"),
            ing("b-c", [("h.com", [("/p", "Exact", "first")])], ns="a")]
    assert svc(table(matcher, *objs), "h.com", "/p") == "first"  # "a/b-c" < "a-b/c"
    # Spec order, across two rules of the same host in one Ingress too.
    one = ing("one", [("h.com", [("/p", "Prefix", "first"), ("/p", "Prefix", "second")]),
                      ("h.com", [("/p", "Prefix", "third")])])
    assert svc(table(matcher, one), "h.com", "/p/q") == "first"


def test_stamped_ingress_is_older_than_an_unstamped_one(matcher: Any) -> None:
    # README: "Objects with no timestamp (files on disk) count as newer than any stamped one."
    objs = [ing("a", [("h.com", [("/p", "Prefix", "unstamped")])]),
            ing("z", [("h.com", [("/p", "Prefix", "stamped")])], ts="2030-01-01T00:00:00Z")]
    assert svc(table(matcher, *objs), "h.com", "/p") == "stamped"


def test_rules_of_all_served_ingresses_merge_per_host(matcher: Any) -> None:
    # §4.4 "All served Ingresses merge into one table per host." -- the longest rule wins across
    # Ingresses, whatever their age.
    objs = [ing("old", [("h.com", [("/a", "Prefix", "short")])], ts="2020-01-01T00:00:00Z"),
            ing("new", [("h.com", [("/a/b", "Prefix", "long")])], ns="other", ts="2025-01-01T00:00:00Z")]
    t = table(matcher, *objs)
    assert svc(t, "h.com", "/a/b/c") == "long"
    assert svc(t, "h.com", "/a/c") == "short"
    m = t.match("h.com", "/a/b")
    assert m is not None and m.namespace == "other" and m.ingress == "other/new"


# --- §4.5 default backend -----------------------------------------------------------------------------


def test_default_backend_choice(matcher: Any) -> None:
    # "No path matched: the defaultBackend of the oldest served Ingress with rules in that host
    # group that has one; else the oldest served Ingress's defaultBackend; else no match (404)."
    objs = [
        ing("a-oldest-no-default", [("foo.com", [("/a", "Exact", "a")]), ("bar.com", [("/a", "Exact", "a")])],
            ts="2020-01-01T00:00:00Z"),
        ing("c-global", [("elsewhere.com", [("/c", "Exact", "c")])], default="dflt-c", ts="2021-01-01T00:00:00Z"),
        ing("b-foo", [("foo.com", [("/b", "Exact", "b")])], default="dflt-b", ts="2022-01-01T00:00:00Z"),
        ing("d-foo-newer", [("foo.com", [("/d", "Exact", "d")])], default="dflt-d", ts="2023-01-01T00:00:00Z"),
        ing("e-no-rules", default="dflt-e", ts="2019-01-01T00:00:00Z"),
    ]
    t = table(matcher, *objs)
    # foo.com: oldest Ingress with rules there that has a defaultBackend is b-foo.
    assert svc(t, "foo.com", "/zzz") == "dflt-b"
    # bar.com: its only Ingress has none: the oldest served Ingress that has one (e-no-rules).
    assert svc(t, "bar.com", "/zzz") == "dflt-e"
    # A host no rule names, no host-less rules: the oldest with a defaultBackend.
    m = t.match("unknown.com", "/")
    assert m is not None and m.service == "dflt-e" and m.is_default_backend and m.ingress == "default/e-no-rules"
    # Without any defaultBackend: no match.
    t = table(matcher, objs[0])
    assert t.match("foo.com", "/zzz") is None and t.match("unknown.com", "/") is None


def test_default_backend_for_wildcard_and_hostless_groups(matcher: Any) -> None:
    objs = [
        ing("global", default="global", ts="2020-01-01T00:00:00Z"),
        ing("wild", [("*.foo.com", [("/w", "Exact", "w")])], default="wild-dflt", ts="2024-01-01T00:00:00Z"),
        ing("any", [(None, [("/h", "Exact", "h")])], default="hostless-dflt", ts="2024-01-01T00:00:00Z"),
    ]
    t = table(matcher, *objs)
    assert svc(t, "x.foo.com", "/nope") == "wild-dflt"
    assert svc(t, "other.com", "/nope") == "hostless-dflt"


def test_default_backend_as_a_resource(matcher: Any) -> None:
    web = ing("web", [("foo.com", [("/a", "Exact", "a")])])
    web["spec"]["defaultBackend"] = {"resource": {"apiGroup": "example.com", "kind": "Bucket", "name": "b"}}
    m = table(matcher, web).match("foo.com", "/b")
    assert m is not None and m.is_default_backend and m.service is None and m.path is None


# --- §5 canonical request path through RouteTable.match ----------------------------------------------


@pytest.fixture
def exact_table(matcher: Any) -> RouteTable:
    rules = ["/", "/abc", "/a/b", "/a/", "/b", "/a/c", "/~user", "/a%3Ab", "/a:b", "/caf%C3%A9",
             "/%2561", "/%252F", "/a%20b", "/a.b", "/.well-known/x"]
    return table(matcher, ing("web", [("h.com", [(p, "Exact", f"s{i}") for i, p in enumerate(rules)])]))


def rule_path(t: RouteTable, host: str, path: str) -> str | None:
    m = t.match(host, path)
    return None if m is None else m.path


@pytest.mark.parametrize(("request_path", "canonical"), [
    # "Decode escapes of unreserved characters once (%61 -> a, %2e -> .)"
    ("/%61bc", "/abc"),
    ("/%61%62%63", "/abc"),
    ("/%7Euser", "/~user"),
    ("/%7euser", "/~user"),
    ("/a%2Eb", "/a.b"),
    ("/%2ewell-known/x", "/.well-known/x"),
    # "never decode twice"
    ("/%2561", "/%2561"),
    ("/%252F", "/%252F"),
    # "other escapes stay, upper-case hex"
    ("/a%3ab", "/a%3Ab"),
    ("/a%3Ab", "/a%3Ab"),
    ("/a:b", "/a:b"),
    ("/caf%c3%a9", "/caf%C3%A9"),
    ("/a%20b", "/a%20b"),
    # "Merge //, then remove ./.. segments (RFC 3986 §5.2.4)"
    ("/a//b", "/a/b"),
    ("//a///b", "/a/b"),
    ("/a/./b", "/a/b"),
    ("/a/b/..", "/a/"),
    ("/a/b/../c", "/a/c"),
    ("/a/.", "/a/"),
    ("/.", "/"),
    ("/a/b/./../c", "/a/c"),
    ("/a/%2e%2e/b", "/b"),
    ("/a/%2E/b", "/a/b"),
    ("/a//../b", "/b"),        # // merged first: /a/../b
    # README: "table.match strips a ?query; "" means /." Query never touched.
    ("/abc?x=%2F&y=../..?", "/abc"),
    ("", "/"),
])
def test_match_routes_on_the_canonical_path(exact_table: RouteTable, request_path: str, canonical: str) -> None:
    # "match routes on the canonical path (SEMANTICS.md §5)"
    assert rule_path(exact_table, "h.com", request_path) == canonical


def test_escaped_reserved_character_is_not_the_character(exact_table: RouteTable) -> None:
    # "other escapes stay": %3A is not ':' (RFC 3986 §2.2: they are not equivalent).
    assert rule_path(exact_table, "h.com", "/a%3Ab") == "/a%3Ab"
    assert rule_path(exact_table, "h.com", "/a:b") == "/a:b"


@pytest.mark.parametrize("request_path", [
    # "escapes of /, \, NUL and controls -> 400"
    "/a%2Fb", "/a%2fb", "/%2F", "/a%5Cb", "/a%5cb", "/a%00b", "/a%01", "/a%0A", "/a%0d", "/a%1F", "/a%7F",
    # "% must be followed by two hex digits"
    "/a%", "/a%2", "/a%zz", "/a%g1", "/%%41",
    # "the decoded bytes must be valid UTF-8"
    "/%FF", "/%C3", "/%C3%28", "/%C0%AF", "/%ED%A0%80", "/%F8%88%80%80%80", "/caf%C3",
    # "`..` above root -> 400"
    "/..", "/../a", "/a/../..", "/a/../../b", "/%2e%2e", "/%2E%2E/a", "/.%2e/a", "//..",
    # "`..;` -> 400"
    "/a/..;/b", "/..;", "/a/..;", "/a/%2e%2e;/b",
    # "`#` -> 400"
    "/a#b", "/#",
    # "Path characters: RFC 3986 pchar and /"
    "/a b", "/a\tb", "/a\x00b", "/a\nb", "/a<b", "/a\"b", "/a{b}", "/a\\b", "/a|b", "/a^b", "/a`b",
    "/a[b]", "/café",
    # "Origin-form only"
    "a/b", "*",
])
def test_paths_that_must_be_rejected_raise_bad_request(matcher: Any, request_path: str) -> None:
    # "a path that must be rejected raises ingresslib.BadRequestError (a ValueError with
    # .status_hint, e.g. 400)" -- whatever the table holds, even with nothing to match.
    for t in (table(matcher, ing("web", [("h.com", [("/", "Prefix", "s")])])), table(matcher)):
        with pytest.raises(BadRequestError) as info:
            t.match("h.com", request_path)
        assert isinstance(info.value, ValueError)
        assert info.value.status_hint == 400


def test_rejection_does_not_depend_on_the_host_group(matcher: Any) -> None:
    # "every request has one canonical form or is rejected with 400" -- also for an unknown host.
    t = table(matcher, ing("web", [("h.com", [("/", "Prefix", "s")])]))
    for host in ("h.com", "other.com", "[::1]", ""):
        with pytest.raises(BadRequestError):
            t.match(host, "/a/%2F")


def test_rule_paths_are_canonicalised_like_requests(matcher: Any) -> None:
    # README: rule paths with characters outside pchar are canonicalised like request paths;
    # "/café matches /caf%C3%A9"; unreserved escapes decoded, hex upper-cased.
    t = table(matcher, ing("web", [("h.com", [("/café", "Exact", "cafe"), ("/%7euser", "Prefix", "user"),
                                               ("/x%3a", "Exact", "colon")])]))
    assert svc(t, "h.com", "/caf%C3%A9") == "cafe"
    assert svc(t, "h.com", "/caf%c3%a9") == "cafe"
    assert svc(t, "h.com", "/~user/x") == "user"
    assert svc(t, "h.com", "/x%3A") == "colon"
    assert svc(t, "h.com", "/x:") is None


# --- CLI: `check` and `explain` ---------------------------------------------------------------------


@pytest.fixture(params=["python", "cython"])
def cli_env(request: pytest.FixtureRequest) -> dict[str, str]:
    env = dict(os.environ)
    if request.param == "python":
        env["INGRESSLIB_NO_EXTENSIONS"] = "1"
    else:
        env.pop("INGRESSLIB_NO_EXTENSIONS", None)
    return env


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ingresslib", *args], capture_output=True, text=True,
                          timeout=60, env=env)


SHOP = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: shop, namespace: prod}
spec:
  rules:
  - host: shop.example.com
    http:
      paths:
      - {path: /cart, pathType: Prefix, backend: {service: {name: cart, port: {number: 8080}}}}
"""

BROKEN_A = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: a}
spec:
  rules:
  - host: UPPER.com
    http:
      paths:
      - {path: nope, pathType: Prefix, backend: {service: {name: s, port: {number: 80}}}}
"""

BROKEN_B = """\
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: c}
spec: {controller: not-a-domain-path}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: b, namespace: other}
spec: {}
"""


def test_check_exit_0_for_valid_manifests(tmp_path: Path, cli_env: dict[str, str]) -> None:
    (tmp_path / "shop.yaml").write_text(SHOP)
    proc = cli(cli_env, "check", "-f", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr


def test_check_exit_2_with_every_error(tmp_path: Path, cli_env: dict[str, str]) -> None:
    # "ingresslib check -f PATH [-f PATH ...]  # validate; exit 0, or 2 with every error"
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(BROKEN_A)
    b.write_text(BROKEN_B)
    with pytest.raises(ValidationError) as info:
        ingresslib.load_manifests(a, b)
    expected = str(info.value).splitlines()
    assert len(expected) >= 4
    proc = cli(cli_env, "check", "-f", str(a), "-f", str(b))
    assert proc.returncode == 2
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out
    for line in expected:
        assert line in out, line
    for fragment in ("Ingress default/a: spec.rules[0].host", "Ingress default/a: spec.rules[0].http.paths[0].path",
                     "spec.controller", "Ingress other/b: spec"):
        assert fragment in out


def test_check_exit_2_on_yaml_syntax_error_naming_file_and_line(tmp_path: Path, cli_env: dict[str, str]) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("apiVersion: v1\nkind: Service\nmetadata:\n  name: [unclosed\n")
    proc = cli(cli_env, "check", "-f", str(f))
    assert proc.returncode == 2
    assert "bad.yaml" in proc.stderr + proc.stdout and "Traceback" not in proc.stderr
    assert re.search(r"line \d+|:\d+:", proc.stderr + proc.stdout)


def test_explain_human_and_json(tmp_path: Path, cli_env: dict[str, str]) -> None:
    # "ingresslib explain -f PATH URL  # which ingress, rule and backend a URL hits"
    f = tmp_path / "shop.yaml"
    f.write_text(SHOP)
    proc = cli(cli_env, "explain", "-f", str(f), "http://SHOP.example.com:8080/cart/%61dd?x=1")
    assert proc.returncode == 0, proc.stderr
    assert "prod/shop" in proc.stdout and "cart" in proc.stdout and "Prefix" in proc.stdout
    assert "/cart/add" in proc.stdout
    proc = cli(cli_env, "explain", "-f", str(f), "--output", "json", "http://shop.example.com/cart/x")
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    m = info["match"]
    assert (m["ingress"], m["service"], m["port"], m["path"], m["path_type"], m["host"]) == \
        ("prod/shop", "cart", 8080, "/cart", "Prefix", "shop.example.com")
    assert m["namespace"] == "prod" and m["is_default_backend"] is False


def test_explain_rejected_path_and_no_match(tmp_path: Path, cli_env: dict[str, str]) -> None:
    f = tmp_path / "shop.yaml"
    f.write_text(SHOP)
    proc = cli(cli_env, "explain", "-f", str(f), "--output", "json", "http://shop.example.com/a/%2F/b")
    assert "Traceback" not in proc.stderr
    info = json.loads(proc.stdout)
    assert info["status"] == 400 and info["match"] is None
    proc = cli(cli_env, "explain", "-f", str(f), "--output", "json", "http://shop.example.com/other")
    info = json.loads(proc.stdout)
    assert info["status"] == 404 and info["match"] is None
    proc = cli(cli_env, "explain", "-f", str(f), "http://shop.example.com/../x")
    assert "Traceback" not in proc.stderr and "400" in proc.stdout
    proc = cli(cli_env, "explain", "-f", str(f), "http://nobody.example.com/cart")
    assert "Traceback" not in proc.stderr and "404" in proc.stdout


# --- second pass: edges -------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["/abc?x#y", "/abc?#", "/abc?a=b#frag", "/?q#"])
def test_fragment_in_the_query_part_is_rejected_too(matcher: Any, target: str) -> None:
    # §5 "`#` -> 400. Query split at the first `?`, never touched." A `#` is never part of a
    # request-target (RFC 9112 origin-form = absolute-path [ "?" query ], and query excludes "#"),
    # and "RouteTable.match applies the same policy" as the proxy.
    t = table(matcher, ing("web", [("h.com", [("/", "Prefix", "s")])]))
    with pytest.raises(BadRequestError) as info:
        t.match("h.com", target)
    assert info.value.status_hint == 400


@pytest.mark.parametrize(("target", "want"), [
    ("/abc?", "/abc"),
    ("/abc?x=%2F&y=../..&z=%zz", "/abc"),       # the query is never touched
    ("/a%3Fb", "/a%3Fb"),                         # an escaped ? is path, not a query split
    ("/a%3fb?c", "/a%3Fb"),
    ("/%41%5f%2d%30%7E", "/A_-0~"),              # every unreserved escape decoded
    ("/x/a%2e%2e", "/x/a.."),                     # not a dot segment: a '..' inside a segment
    ("/x/...", "/x/..."),
    ("/x/..a", "/x/..a"),
    ("/x/%252e%252e/%252e%252e", "/x/%252e%252e/%252e%252e"),  # never decode twice: no dot segments
    ("/x/a/%2E%2e", "/x/"),
])
def test_more_canonical_paths(matcher: Any, target: str, want: str) -> None:
    paths = ["/abc", "/a%3Fb", "/A_-0~", "/x/a..", "/x/...", "/x/..a", "/x/%252e%252e/%252e%252e", "/x/"]
    t = table(matcher, ing("web", [("h.com", [(p, "Exact", f"s{i}") for i, p in enumerate(paths)])]))
    m = t.match("h.com", target)
    assert m is not None and m.path == want


@pytest.mark.parametrize("target", ["/a\x7fb", "/a\rb", "/a\x1bb", "/a/..;", "/a/%2e%2E;"])
def test_more_rejected_paths(matcher: Any, target: str) -> None:
    t = table(matcher, ing("web", [("h.com", [("/", "Prefix", "s")])]))
    with pytest.raises(BadRequestError):
        t.match("h.com", target)


def test_identical_rules_are_identical_after_canonicalisation(matcher: Any) -> None:
    # "for identical rules the oldest Ingress" -- /café and /caf%C3%A9 (and %c3%a9) are one rule.
    objs = [ing("new", [("h.com", [("/café", "Prefix", "new")])], ts="2025-01-01T00:00:00Z"),
            ing("old", [("h.com", [("/caf%c3%a9", "Prefix", "old")])], ts="2020-01-01T00:00:00Z"),
            ing("mid", [("h.com", [("/caf%C3%A9", "Prefix", "mid")])], ts="2022-01-01T00:00:00Z")]
    assert svc(table(matcher, *objs), "h.com", "/caf%C3%A9/x") == "old"


def test_typed_list_from_the_official_client_unwraps() -> None:
    # `client.NetworkingV1Api().list_ingress_for_all_namespaces().to_dict()`: kind IngressList,
    # snake_case, and items with api_version/kind None (the API server leaves them unset in lists).
    item = _snake_ingress("web", datetime(2024, 1, 1, tzinfo=timezone.utc), "api")
    item = {**item, "api_version": None, "kind": None}
    lst = {"api_version": "networking.k8s.io/v1", "kind": "IngressList",
           "metadata": {"_continue": None, "remaining_item_count": None, "resource_version": "9", "self_link": None},
           "items": [item]}
    res = Resources.from_dicts([lst])
    assert [(i.metadata.namespace, i.metadata.name) for i in res.ingresses] == [("shop", "web")]


def test_nested_list_and_null_documents() -> None:
    inner = {"apiVersion": "v1", "kind": "List", "items": [_web_dict()]}
    text = "--- null\n---\n~\n---\n" + json.dumps({"apiVersion": "v1", "kind": "List", "items": [inner]})
    res = ingresslib.parse_manifests(text)
    assert [i.metadata.name for i in res.ingresses] == ["web"]


def test_syntax_error_in_one_file_and_invalid_object_in_another_are_both_reported(tmp_path: Path) -> None:
    # "It lists **every** problem found" -- a broken file does not hide another file's errors.
    (tmp_path / "a.yaml").write_text("kind: [unclosed\n")
    (tmp_path / "b.yaml").write_text(INGRESS_YAML.replace("path: /", "path: nope"))
    with pytest.raises(ValidationError) as info:
        ingresslib.load_manifests(tmp_path / "a.yaml", tmp_path / "b.yaml")
    msg = str(info.value)
    assert "a.yaml" in msg and "b.yaml" in msg and '"nope": must be an absolute path' in msg


def test_default_class_does_not_rescue_an_ingress_naming_a_missing_class(matcher: Any) -> None:
    # §3 "A named class that does not exist is never served." -- even when a default class exists.
    objs = [klass("nginx", "k8s.io/ingress-nginx", default="true"),
            ing("ghost", [("ghost.com", [("/", "Prefix", "s")])], cls="ghost"),
            ing("ghost-ann", [("ghost-ann.com", [("/", "Prefix", "s")])],
                ann={"kubernetes.io/ingress.class": "ghost"}),
            ing("none", [("none.com", [("/", "Prefix", "s")])])]
    t = table(matcher, *objs, ingress_class="nginx")
    assert t.match("ghost.com", "/") is None and t.match("ghost-ann.com", "/") is None
    assert svc(t, "none.com", "/") == "s"


def test_controller_filter_serves_every_class_of_that_controller(matcher: Any) -> None:
    objs = [klass("a", "example.com/ctl"), klass("b", "example.com/ctl"), klass("c", "example.com/other"),
            ing("ia", [("a.com", [("/", "Prefix", "s")])], cls="a"),
            ing("ib", [("b.com", [("/", "Prefix", "s")])], ann={"kubernetes.io/ingress.class": "b"}),
            ing("ic", [("c.com", [("/", "Prefix", "s")])], cls="c")]
    t = table(matcher, *objs, controller="example.com/ctl")
    assert [h for h in ("a.com", "b.com", "c.com") if t.match(h, "/") is not None] == ["a.com", "b.com"]


def test_host_only_rule_counts_as_rules_in_that_host_group_for_the_default_backend(matcher: Any) -> None:
    # §4.5 "the oldest served Ingress with rules in that host group that has one": a host-only rule
    # (README: selects the host group) makes its Ingress's defaultBackend the group's.
    objs = [ing("global", default="global", ts="2020-01-01T00:00:00Z"),
            ing("hostonly", [("only.com", None)], default="mine", ts="2024-01-01T00:00:00Z"),
            ing("paths", [("only.com", [("/p", "Exact", "p")])], ts="2019-01-01T00:00:00Z")]
    t = table(matcher, *objs)
    assert svc(t, "only.com", "/p") == "p"
    assert svc(t, "only.com", "/other") == "mine"


def test_errors_for_snake_case_input_name_the_api_field_path() -> None:
    # "<field path>" is the API's (spec.rules[0].http.paths[0].pathType) whatever the input's key
    # style: a to_dict() object with path_type None is missing pathType.
    obj = _snake_ingress("web", datetime(2024, 1, 1, tzinfo=timezone.utc), "api")
    paths = obj["spec"]["rules"][0]["http"]["paths"]
    paths.append(json.loads(json.dumps(paths[0])))
    paths[0]["path_type"] = None
    paths[1]["backend"]["service"]["port"] = {"name": None, "number": None}
    lines = errors_of([obj])
    # The API server stops at a missing pathType (validateHTTPIngressPath returns early), so the
    # backend problem is put on a second path; its Required error is on the backend itself
    # (field.Required(fldPath, "port name or number is required")).
    assert lines == [
        "Ingress shop/web: spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified",
        "Ingress shop/web: spec.rules[0].http.paths[1].backend: Required value: port name or number is required",
    ]
    assert not any("path_type" in line or "default_backend" in line for line in lines), lines


def test_non_string_annotation_values_are_rejected_not_coerced() -> None:
    # An unquoted YAML `true` is a boolean; annotations are map[string]string, so the API server
    # refuses it. ingresslib must not treat it as the string "true" (§3 says exactly "true").
    text = """\
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: nginx
  annotations: {ingressclass.kubernetes.io/is-default-class: true}
spec: {controller: k8s.io/ingress-nginx}
"""
    with pytest.raises(ValidationError) as info:
        ingresslib.parse_manifests(text)
    assert "metadata.annotations" in str(info.value)


def test_quoted_and_unquoted_yaml_timestamps_order_alike(matcher: Any) -> None:
    # §4.3 oldest creationTimestamp, whether YAML read the timestamp as a string or a datetime.
    text = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: a-newer, creationTimestamp: 2024-06-01T00:00:00Z}
spec: {rules: [{host: h.com, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: newer, port: {number: 80}}}}]}}]}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: b-older, creationTimestamp: "2024-01-01T00:00:00Z"}
spec: {rules: [{host: h.com, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: older, port: {number: 80}}}}]}}]}
"""
    t = RouteTable.build(ingresslib.parse_manifests(text), matcher_class=matcher)
    assert svc(t, "h.com", "/") == "older"


def test_build_reports_shadowed_and_duplicate_rules(matcher: Any) -> None:
    # §4.6 "The build also reports shadowed/duplicate rules as diagnostics."
    objs = [ing("old", [("h.com", [("/p", "Prefix", "a"), ("/p", "Prefix", "b")])], ts="2020-01-01T00:00:00Z"),
            ing("new", [("h.com", [("/p/", "Prefix", "c")])], ts="2024-01-01T00:00:00Z")]
    t = table(matcher, *objs)
    assert svc(t, "h.com", "/p") == "c"  # /p/ beats /p
    t = table(matcher, ing("old", [("h.com", [("/p", "Exact", "a"), ("/p", "Exact", "b")])], ts="2020-01-01T00:00:00Z"),
              ing("new", [("h.com", [("/p", "Exact", "c")])], ts="2024-01-01T00:00:00Z"))
    assert svc(t, "h.com", "/p") == "a"
    objects = [d.object for d in t.diagnostics]
    assert objects.count("Ingress default/old") >= 1 and "Ingress default/new" in objects
    assert all(d.message for d in t.diagnostics)


def test_match_host_is_the_rule_host_not_the_header(matcher: Any) -> None:
    # "host (the rule's host or None)"
    t = table(matcher, ing("web", [("foo.com", [("/", "Prefix", "s")])]))
    m = t.match("FOO.com.:8443", "/")
    assert m is not None and m.host == "foo.com"


def test_every_pchar_is_accepted_raw(matcher: Any) -> None:
    # §5 "Path characters: RFC 3986 pchar and /": unreserved, sub-delims, ':' and '@' pass as is.
    path = "/a-._~!$&'()*+,;=:@b/Z9"
    t = table(matcher, ing("web", [("h.com", [(path, "Exact", "s")])]))
    m = t.match("h.com", path)
    assert m is not None and m.path == path


@pytest.mark.parametrize("target", ["/./..", "/a/./../..", "http://h.com/a", "h.com/a", "/a/%2E%2E/%2e%2e"])
def test_more_targets_without_a_canonical_form(matcher: Any, target: str) -> None:
    t = table(matcher, ing("web", [("h.com", [("/", "Prefix", "s")])]))
    with pytest.raises(BadRequestError):
        t.match("h.com", target)


@pytest.mark.parametrize(("rules", "want"), [
    # §4.3 lengths are compared on canonical rule paths (README: rule paths are canonicalised like
    # requests): Prefix /%61b/ is /ab/, as long as Exact /ab once its trailing / is not counted.
    ([("/%61b/", "Prefix"), ("/ab", "Exact")], "Exact"),
    ([("/ab", "Prefix"), ("/%61%62", "Exact")], "Exact"),
    ([("/a%62", "Prefix"), ("/ab/", "Prefix")], "/ab/"),
])
def test_precedence_on_canonical_rule_paths(matcher: Any, rules: list[tuple[str, str]], want: str) -> None:
    t = table(matcher, ing("web", [("h.com", [(p, k, f"s{i}") for i, (p, k) in enumerate(rules)])]))
    m = t.match("h.com", "/ab")
    assert m is not None and want in (m.path_type, m.path)


def _snake_service(**spec: Any) -> dict[str, Any]:
    base = {"allocate_load_balancer_node_ports": None, "cluster_ip": None, "cluster_i_ps": None,
            "external_i_ps": None, "external_name": None, "external_traffic_policy": None,
            "health_check_node_port": None, "internal_traffic_policy": None, "ip_families": None,
            "ip_family_policy": None, "load_balancer_class": None, "load_balancer_ip": None,
            "load_balancer_source_ranges": None, "ports": None, "publish_not_ready_addresses": None,
            "selector": None, "session_affinity": None, "session_affinity_config": None,
            "traffic_distribution": None, "type": None}
    return {"api_version": "v1", "kind": "Service", "status": None,
            "metadata": {"name": "svc", "namespace": "shop", "annotations": None, "labels": None,
                         "creation_timestamp": None},
            "spec": {**base, **spec}}


def test_snake_case_services_with_initialisms() -> None:
    # to_dict() writes clusterIP as cluster_ip, clusterIPs as cluster_i_ps, targetPort as
    # target_port: a headless Service (cluster_ip "None") needs no ports, an ExternalName one
    # neither; a named target_port survives.
    headless = _snake_service(cluster_ip="None", cluster_i_ps=["None"], selector={"app_name": "x"})
    ext = _snake_service(type="ExternalName", external_name="db.example.com")
    ext["metadata"] = {**ext["metadata"], "name": "ext"}
    ported = _snake_service(cluster_ip="10.96.0.10", ports=[
        {"app_protocol": None, "name": "http", "node_port": None, "port": 80, "protocol": "TCP",
         "target_port": "web"}])
    ported["metadata"] = {**ported["metadata"], "name": "ported"}
    res = Resources.from_dicts([headless, ext, ported])
    assert sorted(s.metadata.name for s in res.services) == ["ext", "ported", "svc"]
    camel = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "ported", "namespace": "shop"},
             "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 80, "protocol": "TCP",
                                                             "targetPort": "web"}]}}
    by_name = {s.metadata.name: s for s in res.services}
    assert Resources.from_dicts([camel]).services[0].spec == by_name["ported"].spec
    # spec.selector is a label map: its keys are never renamed either.
    assert dict(by_name["svc"].spec.selector) == {"app_name": "x"}


def test_snake_case_endpoint_slice_and_ingress_class() -> None:
    slice_ = {"api_version": "discovery.k8s.io/v1", "kind": "EndpointSlice", "address_type": "IPv4",
              "metadata": {"name": "s-1", "namespace": "shop", "labels": {"kubernetes.io/service-name": "s"},
                           "annotations": None},
              "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": False, "serving": True,
                                                                        "terminating": None},
                             "deprecated_topology": None, "hints": None, "hostname": None,
                             "node_name": "n1", "target_ref": None, "zone": None}],
              "ports": [{"app_protocol": None, "name": "http", "port": 8080, "protocol": "TCP"}]}
    camel_slice = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
                   "metadata": {"name": "s-1", "namespace": "shop", "labels": {"kubernetes.io/service-name": "s"}},
                   "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": False, "serving": True},
                                  "nodeName": "n1"}],
                   "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}
    ic = {"api_version": "networking.k8s.io/v1", "kind": "IngressClass",
          "metadata": {"name": "nginx", "namespace": None,
                       "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
          "spec": {"controller": "k8s.io/ingress-nginx",
                   "parameters": {"api_group": "k8s.example.com", "kind": "Params", "name": "p",
                                  "namespace": None, "scope": None}}}
    camel_ic = {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                "metadata": {"name": "nginx", "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
                "spec": {"controller": "k8s.io/ingress-nginx",
                         "parameters": {"apiGroup": "k8s.example.com", "kind": "Params", "name": "p"}}}
    snake, camel = Resources.from_dicts([slice_, ic]), Resources.from_dicts([camel_slice, camel_ic])
    assert snake.endpoint_slices == camel.endpoint_slices
    assert snake.ingress_classes == camel.ingress_classes


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-8-sig"])
def test_bytes_with_a_byte_order_mark_are_read_as_kubectl_reads_them(tmp_path: Path, encoding: str) -> None:
    # "str or bytes of YAML/JSON"; YAML 1.2 §5.2: a processor must accept UTF-8 and UTF-16 (told
    # apart by the BOM). kubectl reads BOM'd UTF-16 files (cli-runtime's FileVisitor wraps every
    # file in unicode.BOMOverride) -- what Windows PowerShell's `>` writes.
    bom = {"utf-16-le": b"\xff\xfe", "utf-16-be": b"\xfe\xff"}.get(encoding, b"")
    data = bom + INGRESS_YAML.encode(encoding)
    res = ingresslib.parse_manifests(data)
    assert [i.metadata.name for i in res.ingresses] == ["web"]
    f = tmp_path / "ps.yaml"
    f.write_bytes(data)
    assert [i.metadata.name for i in ingresslib.load_manifests(f).ingresses] == ["web"]
    js = tmp_path / "ps.json"
    js.write_bytes(bom + json.dumps(_web_dict()).encode(encoding))
    assert [i.metadata.name for i in ingresslib.load_manifests(js).ingresses] == ["web"]


def test_utf16_without_a_bom_is_still_an_encoding_error() -> None:
    # Without a BOM nothing says UTF-16: the bytes are judged as UTF-8 and refused, naming a byte.
    with pytest.raises(ValidationError) as info:
        ingresslib.parse_manifests("kind: Ingress\n".encode("utf-16-le") + "é".encode("utf-16-le"))
    assert "UTF-8" in str(info.value) or "utf-8" in str(info.value).lower()


def test_one_line_per_error_even_when_values_hold_newlines_or_quotes() -> None:
    # "str(err) prints them one per line" and "a message in the API server's style": a string
    # value is printed as Go's %q prints it ("bad\nhost.com", "a\"b"), never over two lines.
    bad = ing("web", [("bad\nhost.com", [("/a\nb", "Prefix", "s")]), ('a"b.com', [("/", "Prefix", "s")])])
    bad["metadata"]["labels"] = {"k": "v\nw"}
    with pytest.raises(ValidationError) as info:
        Resources.from_dicts([bad])
    lines = str(info.value).splitlines()
    assert len(lines) == len(info.value.errors) >= 3, lines
    assert any('spec.rules[0].host: Invalid value: "bad\\nhost.com": ' in line for line in lines), lines
    assert any('spec.rules[1].host: Invalid value: "a\\"b.com": ' in line for line in lines), lines


def test_one_line_per_error_for_yaml_syntax_errors(tmp_path: Path) -> None:
    f = tmp_path / "x.yaml"
    f.write_text("a: b\n  c: d\n---\nkind: [\n")
    with pytest.raises(ValidationError) as info:
        ingresslib.load_manifests(f)
    lines = str(info.value).splitlines()
    assert len(lines) == len(info.value.errors), lines
    assert all("x.yaml" in line for line in lines), lines


def test_check_reports_invalid_annotation_values(tmp_path: Path, cli_env: dict[str, str]) -> None:
    # §2 "Annotation values that are invalid are reported as warnings and ignored, as ingress-nginx
    # does, never silently." `check` is where an operator validates manifests: it must say so
    # (and still exit 0: a warning, not an error).
    f = tmp_path / "odd.yaml"
    f.write_text(SHOP + "---\n" + SHOP.replace("name: shop,", "name: shop-odd,").replace(
        "namespace: prod}", "namespace: prod, annotations: {nginx.ingress.kubernetes.io/canary: maybe}}"))
    proc = cli(cli_env, "check", "-f", str(f))
    assert proc.returncode == 0, proc.stderr
    said = [line for line in (proc.stdout + proc.stderr).splitlines()
            if "prod/shop-odd" in line and "nginx.ingress.kubernetes.io/canary" in line]
    assert said and "maybe" in said[0], proc.stdout + proc.stderr


def test_check_reports_invalid_proxy_annotation_values(tmp_path: Path, cli_env: dict[str, str]) -> None:
    # The same sentence for the annotations the proxy reads (README: "invalid annotation values
    # (proxy-read-timeout: "30s", ssl-redirect: "yes") ... a warning naming the Ingress, the
    # annotation and the default used").
    f = tmp_path / "odd.yaml"
    f.write_text(SHOP.replace("namespace: prod}", "namespace: prod, annotations: {"
                              "nginx.ingress.kubernetes.io/proxy-read-timeout: 30s, "
                              "nginx.ingress.kubernetes.io/ssl-redirect: 'yes'}}"))
    proc = cli(cli_env, "check", "-f", str(f))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    for key in ("proxy-read-timeout", "ssl-redirect"):
        assert [line for line in out.splitlines() if "prod/shop" in line and f"nginx.ingress.kubernetes.io/{key}" in line
                and "default" in line], out


@pytest.mark.parametrize(("host", "want"), [("::1", REFUSED), ("[::1]:", REFUSED),
                                             ("[FE80::1]:443", "hostless"), ("foo.com.:", REFUSED)])
def test_odd_host_values_fall_to_the_right_group(hosts_table: RouteTable, host: str, want: str) -> None:
    # An IPv6 literal without brackets, ":" with no port: bad Host values (§9), 400.
    assert host_svc(hosts_table, host, "/") == want


@pytest.mark.parametrize(("rule", "request_path", "hit"), [
    ("/foo", "/foo;jsessionid=1", False),   # ';' is a pchar: part of the segment, not a separator
    ("/foo", "/foo;/bar", False),
    ("/foo;v=1", "/foo;v=1/x", True),
])
def test_path_parameters_are_segment_text(matcher: Any, rule: str, request_path: str, hit: bool) -> None:
    t = table(matcher, ing("web", [("h.com", [(rule, "Prefix", "s")])]))
    assert (svc(t, "h.com", request_path) == "s") is hit


@pytest.mark.parametrize("name", ["ingress", "ingress.txt", "ingress.YAML", "ingress.yml"])
def test_a_file_named_explicitly_is_read_whatever_its_extension(tmp_path: Path, name: str) -> None:
    # "load_manifests("deploy/", "extra.yaml"): files or folders" -- a file given by name is a
    # manifest file; only folders are filtered.
    f = tmp_path / name
    f.write_text(INGRESS_YAML)
    assert [i.metadata.name for i in ingresslib.load_manifests(f).ingresses] == ["web"]
    assert [i.metadata.name for i in ingresslib.load_manifests(str(f)).ingresses] == ["web"]


# --- §5 as a property: an oracle written from the text alone ------------------------------------

_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_PCHAR_RAW = _UNRESERVED | frozenset("!$&'()*+,;=:@")
_HEX = frozenset("0123456789abcdefABCDEF")


class _Reject(Exception):
    pass


class _Ambiguous(Exception):
    pass


def _oracle(target: str) -> str:
    """SEMANTICS §5, bullet by bullet, for a request target handed to ``match``."""
    # "`#` -> 400. Query split at the first `?`, never touched."
    if "#" in target:
        raise _Reject
    path = target.split("?", 1)[0]
    # README: "" means "/".
    if path == "":
        path = "/"
    # "Origin-form only"
    if not path.startswith("/"):
        raise _Reject
    # "Path characters: RFC 3986 pchar and `/`; `%` must be followed by two hex digits."
    out: list[str] = []
    raw = bytearray()
    i = 0
    while i < len(path):
        c = path[i]
        if c == "%":
            hx = path[i + 1:i + 3]
            if len(hx) < 2 or not set(hx) <= _HEX:
                raise _Reject
            b = int(hx, 16)
            # "escapes of `/`, `\`, NUL and controls -> 400"
            if b in (0x2F, 0x5C) or b < 0x20 or b == 0x7F:
                raise _Reject
            raw.append(b)
            # "Decode escapes of unreserved characters once ...; other escapes stay, upper-case hex."
            out.append(chr(b) if chr(b) in _UNRESERVED else "%" + hx.upper())
            i += 3
        elif c in _PCHAR_RAW or c == "/":
            raw.extend(c.encode())
            out.append(c)
            i += 1
        else:
            raise _Reject
    # "the decoded bytes must be valid UTF-8"
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _Reject from None
    s = "".join(out)
    # "Merge `//`, then remove `.`/`..` segments (RFC 3986 §5.2.4); `..` above root -> 400;
    # `..;` -> 400."
    while "//" in s:
        s = s.replace("//", "/")
    segs = s.split("/")[1:]
    kept: list[str] = []
    for n, seg in enumerate(segs):
        last = n == len(segs) - 1
        if seg == "..;":
            raise _Reject
        if seg.startswith((".;", "..;")):
            raise _Ambiguous  # the text does not say what `.;x` or `..;x` become
        if seg == ".":
            if last:
                kept.append("")
            continue
        if seg == "..":
            if not kept:
                raise _Reject
            kept.pop()
            if last:
                kept.append("")
            continue
        kept.append(seg)
    return "/" + "/".join(kept)


_TOKENS = ["a", "B", "~", ".", "..", "..;", "%2e", "%2E", "%2e%2e", "%2E.", "%61", "%7e", "%3a",
           "%3A", ":", "@", ";", "=", "!", "%20", "%C3%A9", "%c3%a9", "%C3", "%FF", "%ED%A0%80",
           "%2F", "%2f", "%5C", "%00", "%1f", "%7F", "%", "%z", "%2", "%252e", "%25", " ", "é",
           "\\", "", "?", "?x=%2F", "#", "[", "a..", "...", "%2e%2e;"]


@pytest.mark.parametrize("matcher_class", _matchers())
@given(segments=st.lists(st.lists(st.sampled_from(_TOKENS), max_size=3).map("".join), min_size=1, max_size=6),
       lead=st.sampled_from(["/", "/", "/", "", "//"]))
def test_match_agrees_with_an_oracle_written_from_the_text(matcher_class: Any, segments: list[str], lead: str) -> None:
    target = lead + "/".join(segments)
    try:
        want: str | None = _oracle(target)
    except _Ambiguous:
        reject()
    except _Reject:
        want = None
    if want is None:
        t = RouteTable.build(Resources.from_dicts([ing("web", [("h.com", [("/", "Prefix", "s")])])]),
                             matcher_class=matcher_class)
        with pytest.raises(BadRequestError):
            t.match("h.com", target)
        return
    t = RouteTable.build(Resources.from_dicts([ing("web", [("h.com", [(want, "Exact", "s")])])]),
                         matcher_class=matcher_class)
    m = t.match("h.com", target)
    assert m is not None and m.path == want, (target, want, m)


def test_signatures_take_the_contract_argument_names(matcher: Any) -> None:
    # CONTRACT: "Keep them working exactly as written (same names, same argument names, same
    # meaning)": RouteTable.build(res, ingress_class=None, controller=None), table.match(host, path),
    # parse_manifests(text).
    objs = [klass("nginx", "k8s.io/ingress-nginx"), ing("web", [("h.com", [("/", "Prefix", "s")])], cls="nginx")]
    res = Resources.from_dicts(objs)
    for t in (RouteTable.build(res, "nginx", None, matcher_class=matcher),
              RouteTable.build(res=res, ingress_class="nginx", controller=None, matcher_class=matcher),
              RouteTable.build(res, controller="k8s.io/ingress-nginx", matcher_class=matcher)):
        assert svc(t, "h.com", "/") == "s"
        m = t.match(host="h.com", path="/x")
        assert m is not None and m.service == "s"
        assert t.match("h.com", path="/x") == m
    assert len(ingresslib.parse_manifests(text=INGRESS_YAML).ingresses) == 1


RESOURCE_BACKENDS = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: r}
spec:
  defaultBackend: {resource: {apiGroup: example.com, kind: Bucket, name: b}}
  rules:
  - host: h.com
    http:
      paths:
      - {path: /s, pathType: Prefix, backend: {resource: {apiGroup: example.com, kind: Bucket, name: s}}}
"""


def test_explain_a_resource_backend(tmp_path: Path, cli_env: dict[str, str]) -> None:
    # "explain: which ingress, rule and backend a URL hits" -- a resource backend (Match.service
    # None) is named as such, never as a Service called "None".
    f = tmp_path / "r.yaml"
    f.write_text(RESOURCE_BACKENDS)
    for url, kind_name in (("http://h.com/s/x", "Bucket default/s"), ("http://h.com/zz", "Bucket default/b")):
        proc = cli(cli_env, "explain", "-f", str(f), url)
        assert proc.returncode == 0, proc.stderr
        assert kind_name in proc.stdout and "None" not in proc.stdout, proc.stdout
        info = json.loads(cli(cli_env, "explain", "-f", str(f), "-o", "json", url).stdout)
        assert info["match"]["service"] is None and info["match"]["resource"]["kind"] == "Bucket"
        assert "service" not in info["reason"] or "resource" in info["reason"], info["reason"]


def _alias_bomb(n: int) -> str:
    """An Ingress of n rules that each alias one list of n paths: n*n paths from ~9*n bytes."""
    return f"""\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: bomb}}
x: &q {{path: /, pathType: Prefix, backend: {{service: {{name: s, port: {{number: 80}}}}}}}}
y: &p [{", ".join(["*q"] * n)}]
z: &r {{host: h.com, http: {{paths: *p}}}}
spec: {{rules: [{", ".join(["*r"] * n)}]}}
"""


def test_yaml_alias_expansion_is_bounded_as_kubectl_bounds_it() -> None:
    # SEMANTICS §1 "loading thousands of manifests is fast (the YAML parse should dominate)": a
    # 10 KB file whose aliases expand to a million paths would take minutes and gigabytes to
    # decode and route. kubectl's YAML decoder (go-yaml) refuses such a document ("document
    # contains excessive aliasing"); so must load_manifests, with a ValidationError.
    import time

    t0 = time.perf_counter()
    with pytest.raises(ValidationError) as info:
        ingresslib.parse_manifests(_alias_bomb(1000))
    assert time.perf_counter() - t0 < 10
    assert "alias" in str(info.value)
    # Ordinary alias use still loads: one shared backend, a few rules.
    res = ingresslib.parse_manifests(_alias_bomb(3))
    assert len(res.ingresses[0].spec.rules) == 3


def test_a_recursive_yaml_alias_is_an_error_not_a_hang() -> None:
    # go-yaml: "anchor 's' value contains itself".
    with pytest.raises(ValidationError) as info:
        ingresslib.parse_manifests(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: x}\nspec: &s {rules: [*s]}\n")
    assert "alias" in str(info.value) or "itself" in str(info.value)


def test_only_served_ingresses_make_host_groups(matcher: Any) -> None:
    # §4.1 "Group = the precise host if a rule names it" -- a rule of a served Ingress (§4.4 "All
    # served Ingresses merge"): an unserved Ingress's host must not capture requests (and, with
    # no fall-through, turn them into 404s).
    objs = [klass("nginx", "k8s.io/ingress-nginx"),
            ing("theirs", [("foo.com", [("/x", "Exact", "theirs")]), ("*.bar.com", [("/x", "Exact", "theirs")])],
                cls="other"),
            ing("ours", [(None, [("/", "Prefix", "ours")])], cls="nginx")]
    t = table(matcher, *objs, ingress_class="nginx")
    assert svc(t, "foo.com", "/y") == "ours"
    assert svc(t, "a.bar.com", "/y") == "ours"
    assert svc(t, "foo.com", "/x") == "ours"


def test_an_ignored_canary_does_not_make_a_host_group(matcher: Any) -> None:
    # §7 "A canary that matches no main rule is reported and ignored." -- ignored entirely: its
    # host does not become a group that hides the host-less rules.
    objs = [ing("main", [(None, [("/", "Prefix", "main")])]),
            ing("can", [("foo.com", [("/", "Prefix", "can")])], ann={"nginx.ingress.kubernetes.io/canary": "true"})]
    t = table(matcher, *objs)
    m = t.match("foo.com", "/a")
    assert m is not None and m.service == "main"


_RULE_HOSTS = {"foo.com": "precise", "a.foo.com": "precise-a"}
_WILD = {"foo.com": "wild"}  # *.foo.com


def _host_oracle(header: str) -> str:
    """§4.1 from the text: lower-case, strip :port (IPv6 literals keep brackets and never equal
    a rule host), strip one trailing dot; precise, else one-label wildcard, else host-less;
    before all that §9's "bad Host values" are 400."""
    if host_refused(header):
        return REFUSED
    h = header.lower()
    if h.startswith("["):
        return "hostless"
    name, _, _port = h.partition(":")
    if name.endswith("."):
        name = name[:-1]
    if name in _RULE_HOSTS:
        return _RULE_HOSTS[name]
    first, dot, rest = name.partition(".")
    if dot and first and rest in _WILD:
        return _WILD[rest]
    return "hostless"


@pytest.mark.parametrize("matcher_class", _matchers())
@given(labels=st.lists(st.sampled_from(["foo", "FoO", "a", "A", "b", "com", "COM", "", "x-y"]), min_size=1, max_size=4),
       dots=st.sampled_from(["", ".", ".."]),
       port=st.sampled_from(["", ":", ":80", ":8080", ":0"]),
       bracket=st.booleans())
def test_host_groups_agree_with_an_oracle_written_from_the_text(
        matcher_class: Any, labels: list[str], dots: str, port: str, bracket: bool) -> None:
    header = ".".join(labels) + dots
    if bracket:
        header = f"[{header}]"
    header += port
    t = RouteTable.build(Resources.from_dicts([
        ing("p", [("foo.com", [("/", "Prefix", "precise")]), ("a.foo.com", [("/", "Prefix", "precise-a")])]),
        ing("w", [("*.foo.com", [("/", "Prefix", "wild")])]),
        ing("h", [(None, [("/", "Prefix", "hostless")])]),
    ]), matcher_class=matcher_class)
    assert host_svc(t, header, "/") == _host_oracle(header), header
