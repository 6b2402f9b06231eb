"""``ingresslib.check``: every finding names its field (session 22, H4).

``check`` turned the proxy's annotation warnings (``Ingress NS/NAME: ...`` lines) back into
Diagnostics by reading their text: a warning on a rule path (ingress-nginx reads it as a regex,
or a rewrite-target cannot compile it) came out with field ``""``. The proxy now makes them as
``RouteWarning`` values (proxy/_annotations.py): the same line (``serve`` logs it, ``check``
prints it, unchanged) with its object, field and message. A path warning names
``spec.rules[i].http.paths[j].path``, an annotation's ``metadata.annotations[KEY]``.

Each kind of finding ``check`` can return is asserted here with its field (written from the
code paths that make them), and the printed lines of the path warnings are the same as before.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import io
import json
import logging
import pickle
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ingresslib
from ingresslib import Diagnostic
from ingresslib._cli import main
from tests._budget import examples

P = "nginx.ingress.kubernetes.io/"
BACKEND = {"service": {"name": "web", "port": {"number": 80}}}


def ingress(name: str = "web", annotations: dict[str, str] | None = None, *,
            rules: list[dict[str, Any]] | None = None, namespace: str = "default",
            spec: dict[str, Any] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations:
        meta["annotations"] = annotations
    if rules is None:
        rules = [rule("a.test", ("/", "Prefix"))]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta,
            "spec": {"rules": rules, **(spec or {})}}


def rule(host: str | None, *paths: tuple[str, str]) -> dict[str, Any]:
    r: dict[str, Any] = {"http": {"paths": [{"path": p, "pathType": t, "backend": BACKEND}
                                            for p, t in paths]}}
    if host is not None:
        r["host"] = host
    return r


def secret(name: str, data: dict[str, str], namespace: str = "default") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": namespace},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def check(*objects: dict[str, Any]) -> list[Diagnostic]:
    return ingresslib.check(ingresslib.Resources.from_dicts(list(objects)))


def only(found: list[Diagnostic], words: str) -> Diagnostic:
    hits = [d for d in found if words in d.message]
    assert len(hits) == 1, (words, found)
    return hits[0]


def ann(key: str) -> str:
    return f"metadata.annotations[{P}{key}]"


# -- rule paths: the defect ---------------------------------------------------------------------

REGEX_LINE = ("warning: Ingress default/web: rule path '/b(/|$)(.*)' is a regex in ingress-nginx "
              "(use-regex or rewrite-target) but is routed by ingresslib as a literal prefix: the "
              "requests that regex matches go to another rule or the default backend, with that "
              "rule's access control; use a Prefix path")


def test_regex_path_warning_names_the_rule_path() -> None:
    # The second rule, its second path: before, field "".
    found = check(ingress(annotations={P + "use-regex": "true"}, rules=[
        rule("a.test", ("/", "Prefix")),
        rule("b.test", ("/a", "Prefix"), ("/b(/|$)(.*)", "ImplementationSpecific"))]))
    d = only(found, "is a regex in ingress-nginx")
    assert (d.object, d.field) == ("Ingress default/web", "spec.rules[1].http.paths[1].path")
    assert str(d) == REGEX_LINE  # the line check printed before
    assert d.message == REGEX_LINE.removeprefix("warning: Ingress default/web: ")
    assert d == Diagnostic("Ingress default/web", "spec.rules[1].http.paths[1].path", d.message)


def test_regex_path_warning_with_rewrite_target_names_the_rule_path() -> None:
    found = check(ingress(annotations={P + "rewrite-target": "/$2"},
                          rules=[rule(None, ("/x", "Prefix"), ("/app(/|$)(.*)", "Prefix"))]))
    d = only(found, "is a regex in ingress-nginx")
    assert d.field == "spec.rules[0].http.paths[1].path"


def test_invalid_regex_for_rewrite_target_names_the_rule_path() -> None:
    found = check(ingress(annotations={P + "use-regex": "true", P + "rewrite-target": "/$1"},
                          rules=[rule("a.test", ("/ok", "Prefix"), ("/a(", "Prefix"))]))
    d = only(found, "is not a valid regex for rewrite-target")
    assert (d.object, d.field) == ("Ingress default/web", "spec.rules[0].http.paths[1].path")
    assert str(d).startswith("warning: Ingress default/web: rule path '/a(' is not a valid "
                             "regex for rewrite-target (")
    assert str(d).endswith("); rewrite-target ignored")
    # The same path read as a regex by ingress-nginx: its own warning, on the same field.
    assert only(found, "is a regex in ingress-nginx").field == d.field


def test_path_warning_beside_a_canary_names_the_main_rule() -> None:
    # A canary's own use-regex is ignored (the main rule's location applies): the path
    # warning is the main Ingress's, on its rule.
    main_ing = ingress(annotations={P + "use-regex": "true"},
                       rules=[rule("a.test", ("/", "Prefix"), ("/c[0-9]", "Prefix"))])
    canary = ingress("canary", {P + "canary": "true", P + "canary-weight": "10"},
                     rules=[rule("a.test", ("/c[0-9]", "Prefix"))])
    d = only(check(main_ing, canary), "is a regex in ingress-nginx")
    assert (d.object, d.field) == ("Ingress default/web", "spec.rules[0].http.paths[1].path")


def test_path_field_is_the_first_rule_with_that_host_path_and_type() -> None:
    # The same path under another pathType and another host first: the route's own rule.
    found = check(ingress(annotations={P + "use-regex": "true"}, rules=[
        rule("other.test", ("/p(.*)", "Prefix")),
        rule("a.test", ("/p(.*)", "Exact"), ("/p(.*)", "Prefix"))]))
    fields = sorted(d.field for d in found if "is a regex in ingress-nginx" in d.message)
    # Session 22 (X3): one finding per rule path holding it, each naming its own field.
    assert fields == ["spec.rules[0].http.paths[0].path", "spec.rules[1].http.paths[0].path",
                      "spec.rules[1].http.paths[1].path"]


@settings(max_examples=examples(0.2), deadline=None)
@given(st.integers(0, 3), st.integers(0, 3))
def test_path_field_indexes_match_the_spec(ri: int, pi: int) -> None:
    rules = [rule(f"h{i}.test", *[(f"/r{i}p{j}", "Prefix") for j in range(4)]) for i in range(4)]
    rules[ri]["http"]["paths"][pi]["path"] = "/x+"
    found = check(ingress(annotations={P + "use-regex": "true"}, rules=rules))
    assert only(found, "'/x+' is a regex").field == f"spec.rules[{ri}].http.paths[{pi}].path"


# -- annotations: every kind the proxy warns of ---------------------------------------------------

MAIN = ingress()

#: (name, objects, annotation key (without the prefix), words of the message, message starts
#: with "annotation ..." (the whole text after the object) rather than after "KEY: ").
ANNOTATION_CASES: list[tuple[str, list[dict[str, Any]], str, str, bool]] = [
    ("invalid-value", [ingress(annotations={P + "proxy-read-timeout": "30s"})],
     "proxy-read-timeout", "using the default", False),
    ("unknown-did-you-mean", [ingress(annotations={P + "rewrite-targte": "/"})],
     "rewrite-targte", "unknown annotation, ignored; did you mean", False),
    ("not-implemented", [ingress(annotations={P + "proxy-busy-buffers-size": "8k"})],
     "proxy-busy-buffers-size", "not implemented by ingresslib; ignored", False),
    ("canary-option", [MAIN, ingress("c", {P + "canary": "true", P + "canary-weight": "5",
                                           P + "proxy-read-timeout": "7"})],
     "proxy-read-timeout", "ignored on a canary Ingress", False),
    ("canary-access", [MAIN, ingress("c", {P + "canary": "true", P + "canary-weight": "5",
                                           P + "satisfy": "any"})],
     "satisfy", "ignored on a canary Ingress", False),
    ("canary-range", [MAIN, ingress("c", {P + "canary": "true", P + "canary-weight": "5",
                                          P + "allowlist-source-range": "10.0.0.0/8"})],
     "allowlist-source-range", "ignored on a canary Ingress", False),
    ("unenforced-access-denied", [ingress(annotations={P + "configuration-snippet": "deny all;"})],
     "configuration-snippet", "restricts access and is not implemented", True),
    ("range-alias-ignored", [ingress(annotations={P + "allowlist-source-range": "10.0.0.0/8",
                                                  P + "whitelist-source-range": "10.1.0.0/16"})],
     "whitelist-source-range", "ignored, ", False),
    ("invalid-range", [ingress(annotations={P + "allowlist-source-range": "nope"})],
     "allowlist-source-range", "the Ingress's routes answer 503", False),
    ("basic-without-secret", [ingress(annotations={P + "auth-type": "basic"})],
     "auth-type", "basic without", False),
    ("basic-bad-secret-ref", [ingress(annotations={P + "auth-type": "basic",
                                                   P + "auth-secret": "a/b/c"})],
     "auth-secret", "not \"name\" or \"namespace/name\"", True),
    ("basic-other-namespace", [ingress(annotations={P + "auth-type": "basic",
                                                    P + "auth-secret": "other/s"})],
     "auth-secret", "a Secret of another namespace", True),
    ("basic-bad-secret-type", [ingress(annotations={P + "auth-type": "basic",
                                                    P + "auth-secret": "s",
                                                    P + "auth-secret-type": "weird"})],
     "auth-secret-type", "invalid auth-secret-type", True),
    ("basic-bad-realm", [ingress(annotations={P + "auth-type": "basic", P + "auth-secret": "s",
                                              P + "auth-realm": 'a"b'}),
                         secret("s", {"auth": "u:{PLAIN}pw\n"})],
     "auth-realm", "invalid realm", False),
    # A host-only rule's owner: parsed as the server's location, no route of its own.
    ("server-location", [ingress(annotations={P + "proxy-body-size": "lots"},
                                 rules=[{"host": "only.test"}]),
                         ingress("zroutes", rules=[rule("only.test", ("/", "Prefix"))])],
     "proxy-body-size", "using the default", False),
]


@pytest.mark.parametrize(("objects", "key", "words", "whole"),
                         [c[1:] for c in ANNOTATION_CASES], ids=[c[0] for c in ANNOTATION_CASES])
def test_annotation_warning_names_its_annotation(objects: list[dict[str, Any]], key: str,
                                                  words: str, whole: bool) -> None:
    d = only(check(*objects), words)
    assert d.field == ann(key)
    assert d.object.startswith("Ingress default/")
    line = str(d).removeprefix("warning: ")
    assert line.startswith(f"{d.object}: annotation {P}{key}")
    # The message: what follows "annotation KEY: " (or the whole text after the object when
    # the key is followed by its value or kind), as check has always reported it.
    after = line.removeprefix(f"{d.object}: ")
    assert d.message == (after if whole else after.removeprefix(f"annotation {P}{key}: "))


SECRET_CASES = [
    ("missing", [], "no such Secret"),
    ("no-auth-key", [secret("s", {"x": "y"})], "has no key \"auth\""),
    ("unverifiable-hash", [secret("s", {"auth": "u:$2y$05$abcdefghijklmnopqrstuv\n"})],
     "a password hash format ingresslib cannot verify"),
]


@pytest.mark.parametrize(("objects", "words"), [c[1:] for c in SECRET_CASES],
                         ids=[c[0] for c in SECRET_CASES])
def test_auth_secret_warning_names_the_auth_secret_annotation(
        objects: list[dict[str, Any]], words: str) -> None:
    found = check(ingress(annotations={P + "auth-type": "basic", P + "auth-secret": "s"}),
                  *objects)
    d = only(found, words)
    assert (d.object, d.field) == ("Ingress default/web", ann("auth-secret"))
    assert d.message.startswith("auth-secret default/s: ")
    assert str(d) == f"warning: Ingress default/web: {d.message}"


# -- the route warnings themselves ----------------------------------------------------------------

def test_parse_route_options_makes_structured_warnings_with_the_same_lines() -> None:
    from ingresslib.proxy._annotations import RouteWarning, parse_route_options
    from ingresslib.proxy._settings import ProxySettings

    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    log = logging.Logger("h4-test")
    log.addHandler(Keep())
    side: list[str] = []
    opts = parse_route_options(
        {P + "proxy-read-timeout": "30s", P + "proxy-buffering": "true", P + "use-regex": "true",
         P + "rewrite-target": "/$1"}, "/a(", ProxySettings(), log, "Ingress ns/web",
        auth_warn=side.append, path_field="spec.rules[0].http.paths[0].path")
    assert lines == list(opts.warnings)  # logged as made, the lines unchanged
    assert [type(w) for w in opts.warnings] == [RouteWarning] * 3
    timeout, cors, bad_regex = opts.warnings
    assert isinstance(timeout, RouteWarning) and isinstance(bad_regex, RouteWarning)
    assert str(timeout) == (f"Ingress ns/web: annotation {P}proxy-read-timeout: "
                            f"{timeout.message}")
    assert (timeout.object, timeout.field) == ("Ingress ns/web", ann("proxy-read-timeout"))
    assert bad_regex.field == "spec.rules[0].http.paths[0].path"
    assert str(bad_regex) == f"Ingress ns/web: {bad_regex.message}"
    [regex_note] = side
    assert isinstance(regex_note, RouteWarning)
    assert regex_note.field == "spec.rules[0].http.paths[0].path"
    # A str in every way: equal to its line, hashed as it, copied and pickled whole.
    for w in (timeout, regex_note):
        assert w == str(w) and hash(w) == hash(str(w)) and {w: 1}[str(w)] == 1
        for twin in (copy.copy(w), copy.deepcopy(w), pickle.loads(pickle.dumps(w))):
            assert isinstance(twin, RouteWarning)
            assert (str(twin), twin.object, twin.field, twin.message) == (
                str(w), w.object, w.field, w.message)
    # Without a path_field (the server's own parse): the same lines, field "".
    plain = parse_route_options({P + "use-regex": "true", P + "rewrite-target": "/$1"}, "/a(",
                                ProxySettings(), None, "Ingress ns/web")
    assert [str(w) for w in plain.warnings] == [str(bad_regex)]


# -- the command line: the same lines ------------------------------------------------------------

def test_check_command_prints_the_path_warning_line_unchanged(tmp_path: Any) -> None:
    import yaml

    f = tmp_path / "ing.yaml"
    f.write_text(yaml.safe_dump(ingress(annotations={P + "use-regex": "true"}, rules=[
        rule("a.test", ("/", "Prefix")),
        rule("b.test", ("/a", "Prefix"), ("/b(/|$)(.*)", "ImplementationSpecific"))])))

    def run(*argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["check", *argv, "-f", str(f)])
        return code, out.getvalue(), err.getvalue()

    code, out, err = run()
    assert code == 0 and REGEX_LINE in err.splitlines()
    code, out, err = run("-o", "json")
    doc = json.loads(out)
    assert REGEX_LINE in doc["diagnostics"]
    assert REGEX_LINE.removeprefix("warning: ") in doc["warnings"]


# -- every other kind of finding, with its field ------------------------------------------------

def _kinds() -> list[tuple[str, Callable[[], list[Diagnostic]], str, str, str]]:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web",
                                                               "namespace": "default"},
           "spec": {"ports": [{"port": 80}]}}
    ext = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web",
                                                               "namespace": "default"},
           "spec": {"type": "ExternalName", "externalName": "localhost",
                    "ports": [{"port": 80}]}}
    weights = {**svc, "metadata": {"name": "web", "namespace": "default", "annotations": {
        "ingresslib.io/endpoint-weights": "nope"}}}
    return [
        ("shadowed", lambda: check(ingress(rules=[rule("a.test", ("/", "Prefix"),
                                                       ("/", "Prefix"))])),
         "Ingress default/web", "spec.rules[0].http.paths[1]", "warning"),
        ("never-matches", lambda: check(ingress(rules=[rule(
            "a.test", ("/", "Prefix"), ("/a/../..", "ImplementationSpecific"))])),
         "Ingress default/web", "spec.rules[0].http.paths[1].path", "warning"),
        ("canary-without-main", lambda: check(ingress("c", {P + "canary": "true"}, rules=[
            rule("z.test", ("/", "Prefix"))])),
         "Ingress default/c", "spec.rules[0].http.paths[0]", "warning"),
        ("canary-default-backend", lambda: check(MAIN, ingress(
            "c", {P + "canary": "true"}, spec={"defaultBackend": BACKEND})),
         "Ingress default/c", "spec.defaultBackend", "warning"),
        ("class-filtered", lambda: ingresslib.check(ingresslib.Resources.from_dicts(
            [ingress(spec={"ingressClassName": "other"})]), ingress_class="nginx"),
         "Ingress default/web", "spec.ingressClassName", "info"),
        ("defined-twice", lambda: check(MAIN, MAIN),
         "Ingress default/web", "", "warning"),
        ("router-canary-annotation", lambda: check(MAIN, ingress("c", {
            P + "canary": "true", P + "canary-weight": "many"})),
         "Ingress default/c", ann("canary-weight"), "warning"),
        ("router-balance-annotation", lambda: check(ingress(annotations={
            P + "load-balance": "fastest"})),
         "Ingress default/web", ann("load-balance"), "warning"),
        ("no-endpoint", lambda: check(MAIN, svc),
         "Ingress default/web", "", "warning"),
        ("external-name", lambda: check(MAIN, ext),
         "Service default/web", "spec.externalName", "warning"),
        ("endpoint-weights", lambda: check(MAIN, weights),
         "Service default/web", "metadata.annotations[ingresslib.io/endpoint-weights]",
         "warning"),
        ("unknown-field", lambda: ingresslib.check(ingresslib.parse_manifests(
            "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web, labelz: {}}\n"
            "spec: {defaultBackend: {service: {name: web, port: {number: 80}}}}\n")),
         "Ingress default/web", "metadata.labelz", "warning"),
        ("unread-api-version", lambda: ingresslib.check(ingresslib.parse_manifests(
            "apiVersion: extensions/v1beta1\nkind: Ingress\nmetadata: {name: old}\nspec: {}\n"
            "---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web}\n"
            "spec: {defaultBackend: {service: {name: web, port: {number: 80}}}}\n")),
         "Ingress default/old", "apiVersion", "warning"),
        ("tls-missing-secret", lambda: check(ingress(spec={"tls": [
            {"hosts": ["a.test"], "secretName": "nope"}]})),
         "Ingress default/web", "spec.tls[0].secretName", "warning"),
        ("no-ingress", lambda: check(svc),
         "Resources", "ingresses", "warning"),
    ]


KINDS = _kinds()


@pytest.mark.parametrize(("make", "obj", "field", "severity"), [k[1:] for k in KINDS],
                         ids=[k[0] for k in KINDS])
def test_each_kind_of_finding_has_its_field(make: Callable[[], list[Diagnostic]], obj: str,
                                            field: str, severity: str) -> None:
    found = make()
    hits = [d for d in found if (d.object, d.field, d.severity) == (obj, field, severity)]
    assert hits, found
    for d in hits:
        # The printed line names the object (the no-Ingress line names the files instead).
        assert str(d).startswith(f"{severity}: {obj}" if obj != "Resources" else
                                 f"{severity}: no Ingress")

@pytest.mark.parametrize("objects", [c[1] for c in ANNOTATION_CASES]
                         + [[ingress(annotations={P + "auth-type": "basic", P + "auth-secret": "s"}),
                             *c[1]] for c in SECRET_CASES],
                         ids=[c[0] for c in ANNOTATION_CASES] + [c[0] for c in SECRET_CASES])
def test_every_proxy_warning_is_made_with_its_parts(objects: list[dict[str, Any]]) -> None:
    # (A warning without its parts fails check's own assertion, _proxy_annotation_warnings.)
    assert [d for d in check(*objects) if d.object.startswith("Ingress")]
