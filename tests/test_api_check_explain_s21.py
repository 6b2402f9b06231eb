"""``ingresslib.check`` and ``ingresslib.explain``: the commands' answers as Python values
(session 21, E21).

A test rig that gated its suite on warnings had to run ``ingresslib check -o json`` in a
subprocess: the proxy's annotation warnings (``proxy-read-timeout: 30s``, ``proxy-buffering``) are
in neither ``router.warnings`` nor ``table.diagnostics``, and ``explain``'s document existed
only as command output. The commands are now built on the two functions: here both agree
with the command line on several manifests (the examples' among them), and wrong argument
types are clear TypeErrors.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

import ingresslib
from ingresslib._cli import main

ROOT = Path(__file__).resolve().parent.parent
P = "nginx.ingress.kubernetes.io/"

ANNOTATED = f"""\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  annotation: {{x: y}}
  annotations:
    {P}proxy-read-timeout: 30s
    {P}proxy-buffering: "true"
    {P}rewrite-targte: /
    {P}configuration-snippet: "deny all;"
spec:
  tls: [{{hosts: [a.example], secretName: missing}}]
  rules:
  - host: a.example
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
      - {{path: /, pathType: Prefix, backend: {{service: {{name: web2, port: {{number: 80}}}}}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: other, namespace: x}}
spec:
  ingressClassName: other
  rules:
  - host: a.example
    http:
      paths:
      - {{path: /o, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
---
apiVersion: extensions/v1beta1
kind: Ingress
metadata: {{name: old}}
spec: {{}}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec: {{ports: [{{port: 80, targetPort: 8080}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: web-1, labels: {{kubernetes.io/service-name: web}}}}
addressType: IPv4
ports: [{{port: 8080}}]
endpoints: [{{addresses: [10.0.0.1]}}]
"""

NO_INGRESS = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {}\n"


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "annotated.yaml").write_text(ANNOTATED)
    (tmp_path / "empty.yaml").write_text(NO_INGRESS)
    return {"annotated": str(tmp_path / "annotated.yaml"), "empty": str(tmp_path / "empty.yaml"),
            "demo": str(ROOT / "examples" / "demo" / "demo.yaml"),
            "deploy": str(ROOT / "examples" / "deploy"),
            "shop": str(ROOT / "tests" / "manifests" / "shop")}


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


# --- check ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,filters", [
    ("annotated", {}), ("annotated", {"ingress_class": "nginx"}), ("empty", {}),
    ("demo", {}), ("deploy", {}), ("deploy", {"controller": "k8s.io/ingress-nginx"}),
    ("shop", {}),
])
def test_check_agrees_with_the_command(files: dict[str, str], name: str,
                                       filters: dict[str, str]) -> None:
    path = files[name]
    flags = [x for k, v in filters.items() for x in (f"--{k.replace('_', '-')}", v)]
    found = ingresslib.check(ingresslib.load_manifests(path), sources=[path], **filters)
    assert all(isinstance(d, ingresslib.Diagnostic) for d in found)
    code, out, err = _cli("check", "-f", path, *flags, "-o", "json")
    doc = json.loads(out)
    assert code == 0 and doc["ok"] is True
    # Every line printed is a value's str(), in the same order; the JSON lists them.
    assert err.splitlines() == [str(d) for d in found]
    assert doc["diagnostics"] == [str(d) for d in found]
    assert doc["warnings"] == [str(d).removeprefix("warning: ") for d in found
                               if d.severity == "warning"]
    code, out, _ = _cli("check", "-f", path, *flags)
    assert out.strip().endswith(f"{len(doc['warnings'])} warning(s)")


def test_check_holds_the_proxys_warnings_as_values(files: dict[str, str]) -> None:
    res = ingresslib.load_manifests(files["annotated"])
    found = ingresslib.check(res)
    fields = {(d.object, d.field) for d in found if d.severity == "warning"}
    web = "Ingress default/web"
    # The proxy's annotation warnings, on the annotation's field (as the router's own).
    for key in ("proxy-read-timeout", "proxy-buffering", "rewrite-targte",
                "configuration-snippet"):
        assert (web, f"metadata.annotations[{P}{key}]") in fields, key
    # ... which neither the router's warnings nor the table's diagnostics hold.
    router = ingresslib.Router(res)
    theirs = {(d.object, d.field) for d in [*router.warnings, *router.table.diagnostics]}
    assert (web, f"metadata.annotations[{P}proxy-read-timeout]") not in theirs
    (timeout,) = [d for d in found if d.field.endswith("proxy-read-timeout]")]
    assert "invalid timeout '30s'" in timeout.message and "using the default 60" in timeout.message
    assert str(timeout).startswith(f"warning: {web}: annotation {P}proxy-read-timeout: ")
    # The loader's dropped field, the apiVersion not read, the TLS entry's missing Secret.
    assert (web, "metadata.annotation") in fields
    assert ("Ingress default/old", "apiVersion") in fields
    assert (web, "spec.tls[0].secretName") in fields
    # A value gathered from elsewhere equals the plain Diagnostic with its fields.
    plain = ingresslib.Diagnostic(timeout.object, timeout.field, timeout.message)
    assert timeout == plain and plain == timeout and hash(timeout) == hash(plain)
    assert repr(timeout) == repr(plain)


def test_check_notes_what_the_class_filter_leaves_out_and_an_empty_set() -> None:
    res = ingresslib.parse_manifests(ANNOTATED)
    infos = [d for d in ingresslib.check(res, ingress_class="nginx") if d.severity == "info"]
    assert {d.object for d in infos} == {"Ingress default/web", "Ingress x/other"}
    assert all(d.message.endswith("; not served") for d in infos)
    (empty,) = ingresslib.check(ingresslib.parse_manifests(NO_INGRESS))
    assert (empty.severity, empty.message) == ("warning", "no Ingress among the resources")
    (named,) = ingresslib.check(ingresslib.parse_manifests(NO_INGRESS), sources=["a.yaml"])
    assert str(named) == "warning: no Ingress in a.yaml"


# --- explain ----------------------------------------------------------------------------------


EXPLAINED: list[tuple[str, str, list[str], dict[str, Any]]] = [
    ("annotated", "http://a.example/", [], {}),
    ("annotated", "https://a.example/o", ["--ingress-class", "other"], {"ingress_class": "other"}),
    ("annotated", "http://a.example/o", ["--ingress-class", "nginx"], {"ingress_class": "nginx"}),
    ("empty", "http://a.example/", [], {}),
    ("demo", "http://example.test/", ["-H", "X-Canary: always"],
     {"headers": [("X-Canary", "always")]}),
    ("demo", "https://example.test/admin", ["-H", "Cookie: a=b", "-X", "POST"],
     {"headers": {"Cookie": "a=b"}, "method": "POST"}),
    ("demo", "http://a.example.test/", ["--tls", "--client-ip", "[::1]"],
     {"tls": True, "client_ip": "[::1]"}),
    ("demo", "http://example.test/guest", ["--tls-listen", "0.0.0.0:8443"],
     {"tls_listen": "0.0.0.0:8443"}),
    ("deploy", "http://hello.example.com/", ["--controller", "ingresslib.io/controller"],
     {"controller": "ingresslib.io/controller"}),
    ("deploy", "http://hello.example.com/", ["--controller", "k8s.io/ingress-nginx"],
     {"controller": "k8s.io/ingress-nginx"}),
    ("shop", "shop.example.com/api/x", [], {"headers": [(b"Host", b"shop.example.com")]}),
]


@pytest.mark.parametrize("name,url,flags,kwargs", EXPLAINED)
def test_explain_agrees_with_the_command(files: dict[str, str], name: str, url: str,
                                         flags: list[str], kwargs: dict[str, Any]) -> None:
    path = files[name]
    doc = ingresslib.explain(ingresslib.load_manifests(path), url, sources=[path], **kwargs)
    code, out, _ = _cli("explain", "-f", path, url, *flags, "-o", "json")
    assert code == 0
    assert json.loads(out) == json.loads(json.dumps(doc))
    assert doc["ok"] is True and isinstance(doc["status"], int)


def test_the_explained_urls_reach_rules() -> None:
    # The agreement above is not all 404s: most of those URLs reach a rule.
    routed = 0
    for name, url, _, kwargs in EXPLAINED:
        path = {"annotated": None, "empty": None, "demo": ROOT / "examples" / "demo" / "demo.yaml",
                "deploy": ROOT / "examples" / "deploy",
                "shop": ROOT / "tests" / "manifests" / "shop"}[name]
        res = (ingresslib.parse_manifests(ANNOTATED) if name == "annotated" else
               ingresslib.parse_manifests(NO_INGRESS) if path is None else
               ingresslib.load_manifests(path))
        routed += ingresslib.explain(res, url, **kwargs)["match"] is not None
    assert routed >= 7


def test_explain_reads_the_config_settings(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(ANNOTATED.replace(
        "  annotations:\n", f"  annotations:\n    {P}whitelist-source-range: 10.0.0.0/8\n"))
    config = tmp_path / "c.yaml"
    config.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
                      "data: {use-forwarded-headers: 'true', proxy-real-ip-cidr: 192.0.2.0/24,"
                      " load-balance: ewma}\n")
    cfg = ingresslib.proxy.load_config(config)
    args = {"headers": [("X-Forwarded-For", "10.1.2.3")], "client_ip": "192.0.2.7"}
    doc = ingresslib.explain(ingresslib.load_manifests(manifest), "http://a.example/",
                             settings=cfg.settings, load_balance=cfg.load_balance, **args)
    code, out, _ = _cli("explain", "-f", str(manifest), "http://a.example/", "--config",
                        str(config), "-H", "X-Forwarded-For: 10.1.2.3", "--client-ip",
                        "192.0.2.7", "-o", "json")
    assert code == 0 and json.loads(out) == doc
    assert doc["verdict"]["client_ip"] == "10.1.2.3"


# --- wrong arguments --------------------------------------------------------------------------


RES = ingresslib.parse_manifests(ANNOTATED)


@pytest.mark.parametrize("call,words", [
    (lambda: ingresslib.check("deploy/"), "takes a Resources"),
    (lambda: ingresslib.check([]), "takes a Resources"),
    (lambda: ingresslib.check(RES, ingress_class=3), "ingress_class must be"),
    (lambda: ingresslib.check(RES, controller=b"x"), "controller must be"),
    (lambda: ingresslib.check(RES, sources="a.yaml"), "sources must be"),
    (lambda: ingresslib.explain("deploy/", "http://a/"), "takes a Resources"),
    (lambda: ingresslib.explain(RES, b"http://a/"), "url must be"),
    (lambda: ingresslib.explain(RES, "http://a/", method=None), "method must be"),
    (lambda: ingresslib.explain(RES, "http://a/", headers="X-A: 1"), "headers must be"),
    (lambda: ingresslib.explain(RES, "http://a/", headers=[("X-A", 1)]), "str or bytes"),
    (lambda: ingresslib.explain(RES, "http://a/", headers=["X-A: 1"]), "(name, value) pair"),
    (lambda: ingresslib.explain(RES, "http://a/", client_ip=167772161), "client_ip must be"),
    (lambda: ingresslib.explain(RES, "http://a/", tls=1), "tls must be"),
    (lambda: ingresslib.explain(RES, "http://a/", settings={"hsts": False}), "settings must be"),
])
def test_wrong_argument_types_are_type_errors(call: Any, words: str) -> None:
    with pytest.raises(TypeError) as info:
        call()
    assert words in str(info.value)
    assert str(info.value).startswith(("ingresslib.check()", "ingresslib.explain()"))


@pytest.mark.parametrize("kwargs,url", [
    ({"method": "G T"}, "http://a/"), ({"client_ip": "nope"}, "http://a/"),
    ({"headers": {"Bad Name": "1"}}, "http://a/"), ({"headers": {"X-A:b": "1"}}, "http://a/"),
    ({"headers": [("X-A", "1\r\nX-B: 2")]}, "http://a/"), ({}, "http:///x"),
    ({"tls_listen": "0.0.0.0:0"}, "http://a/"),
])
def test_values_the_command_refuses_are_value_errors(kwargs: dict[str, Any], url: str) -> None:
    with pytest.raises(ValueError):
        ingresslib.explain(RES, url, **kwargs)
