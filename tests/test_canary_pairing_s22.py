"""Session 22 (W4): canary settings on an Ingress that is no canary; how canaries pair.

1. ingress-nginx ``internal/ingress/annotations/canary/main.go`` ``Parse``:
   ``if !config.Enabled && (config.Weight > 0 || config.Header != "" || config.HeaderValue != ""
   || config.Cookie != "" || config.HeaderPattern != "") { return nil,
   errors.NewInvalidAnnotationConfiguration(canaryAnnotation, "configured but not enabled") }``:
   the Ingress is then an ordinary one, its canary settings dropped. ingresslib dropped them
   silently; each is now a warning on ``metadata.annotations[KEY]`` of the Ingress, in
   ``router.warnings``, ``check()`` and serve's log (DEFECT: failed before). What counts is
   Go's condition: a weight above 0 (``strconv.Atoi``), a non-blank string
   (``GetStringAnnotation``); not ``canary-weight-total``, not a weight of 0.
2. Pairing (``controller.go`` ``mergeAlternativeBackends``: ``loc.Path == path.Path &&
   *loc.PathType == *path.PathType``; the store reads an empty path as ``/``): ingresslib pairs
   by the canonical path (rules that match the same requests), a documented divergence
   (README, docs/router.md R31); a canary whose written path differs from its main rule's is
   now said in the table's diagnostics (DEFECT: nothing said before). A main rule with a
   ``resource`` backend keeps its canary (R2: the canary serves), documented as R32.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest

import ingresslib
from ingresslib import Resources, RouteTable
from ingresslib._router import Router
from ingresslib._serve_notes import _log_fresh_notes, _table_notes

P = "nginx.ingress.kubernetes.io/"


def _ingress(name: str, annotations: dict[str, str], path: str = "/", ptype: str = "Prefix",
             backend: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": "default", "annotations": annotations},
            "spec": {"rules": [{"host": "a.test", "http": {"paths": [{
                "path": path, "pathType": ptype,
                "backend": backend or {"service": {"name": name, "port": {"number": 80}}}}]}}]}}


def _backend(name: str, ip: str) -> list[dict[str, Any]]:
    return [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
             "spec": {"ports": [{"port": 80, "targetPort": 8080}]}},
            {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
             "metadata": {"name": f"{name}-1", "namespace": "default",
                          "labels": {"kubernetes.io/service-name": name}},
             "addressType": "IPv4", "endpoints": [{"addresses": [ip]}], "ports": [{"port": 8080}]}]


def _warnings(annotations: dict[str, str]) -> list[tuple[str, str, str]]:
    r = Router(Resources.from_dicts([_ingress("web", annotations)]), seed=0)
    return [(w.object, w.field, w.message) for w in r.warnings]


def _field(key: str) -> str:
    return f"metadata.annotations[{P}{key}]"


# --- 1. canary settings on an Ingress that is not a canary --------------------------------------


@pytest.mark.parametrize(("key", "value"), [
    ("canary-weight", "50"), ("canary-weight", "1"), ("canary-by-header", "X-Canary"),
    ("canary-by-header-value", "beta"), ("canary-by-header-pattern", "^b"),
    ("canary-by-cookie", "canary"), ("canary-by-header", " X-Canary ")])
def test_each_canary_setting_on_an_ingress_without_the_flag_is_a_warning(key: str, value: str) -> None:
    # DEFECT: no warning at all before.
    assert _warnings({P + key: value}) == [
        ("Ingress default/web", _field(key),
         "has no effect: the Ingress is not a canary (no canary annotation); ignored")]


@pytest.mark.parametrize(("flag", "why"), [
    ("false", "canary is 'false'"), ("0", "canary is '0'"), ("F", "canary is 'F'")])
def test_canary_false_says_so(flag: str, why: str) -> None:
    got = _warnings({P + "canary": flag, P + "canary-weight": "10", P + "canary-by-cookie": "c"})
    assert got == [
        ("Ingress default/web", _field("canary-weight"),
         f"has no effect: the Ingress is not a canary ({why}); ignored"),
        ("Ingress default/web", _field("canary-by-cookie"),
         f"has no effect: the Ingress is not a canary ({why}); ignored")]


def test_invalid_flag_warns_for_the_flag_then_each_setting() -> None:
    got = _warnings({P + "canary": "yes", P + "canary-by-header": "X-Canary"})
    assert got == [
        ("Ingress default/web", _field("canary"),
         "invalid boolean 'yes': treated as a normal Ingress"),
        ("Ingress default/web", _field("canary-by-header"),
         "has no effect: the Ingress is not a canary (canary 'yes' is not a boolean); ignored")]


@pytest.mark.parametrize("annotations", [
    # Go's condition only: Weight > 0 after strconv.Atoi (an error reads as 0) ...
    {P + "canary-weight": "0"}, {P + "canary-weight": "-5"}, {P + "canary-weight": "abc"},
    {P + "canary-weight": " 5"},
    # ... canary-weight-total is not in it, nor affinity-canary-behavior ...
    {P + "canary-weight-total": "1000"}, {P + "affinity-canary-behavior": "legacy"},
    # ... and a blank string is no value (GetStringAnnotation: normalizeString, then empty).
    {P + "canary-by-header": "  "}, {P + "canary-by-cookie": ""},
    {P + "canary": "false", P + "canary-by-header-pattern": " \t"},
    {}, {"example.com/other": "x"}])
def test_what_ingress_nginx_does_not_refuse_is_not_warned(annotations: dict[str, str]) -> None:
    assert _warnings(annotations) == []


def test_a_canary_gets_no_such_warning_paired_or_not() -> None:
    can = {P + "canary": "true", P + "canary-weight": "20", P + "canary-by-header": "X-Canary"}
    paired = Router(Resources.from_dicts([_ingress("web", {}), _ingress("can", can)]), seed=0)
    assert [w for w in paired.warnings if "not a canary" in w.message] == []
    alone = Router(Resources.from_dicts([_ingress("can", can, path="/other")]), seed=0)
    assert [w for w in alone.warnings if "not a canary" in w.message] == []


def test_the_ingress_still_serves_as_an_ordinary_one() -> None:
    # As in ingress-nginx: the canary settings are dropped, the rule is a main rule.
    res = Resources.from_dicts([_ingress("web", {P + "canary-weight": "100"}), *_backend("web", "10.0.0.1")])
    d = Router(res, seed=0).route("GET", "a.test", "/x", ())
    assert d is not None and not d.canary and d.service == "web" and d.endpoint == ("10.0.0.1", 8080)


def test_check_reports_it() -> None:
    res = Resources.from_dicts([_ingress("web", {P + "canary": "false", P + "canary-weight": "30"})])
    found = [(d.object, d.field, d.message, d.severity) for d in ingresslib.check(res)]
    assert ("Ingress default/web", _field("canary-weight"),
            "has no effect: the Ingress is not a canary (canary is 'false'); ignored",
            "warning") in found


def test_serve_logs_it(caplog: pytest.LogCaptureFixture) -> None:
    res = Resources.from_dicts([_ingress("web", {P + "canary-by-cookie": "beta"})])
    r = Router(res, seed=0)
    caplog.set_level(logging.INFO, logger="ingresslib.serve")
    _log_fresh_notes(_table_notes((r.table, r.warnings), res), set())
    logged = [(rec.levelno, rec.getMessage()) for rec in caplog.records if rec.name == "ingresslib.serve"]
    assert (logging.WARNING, f"Ingress default/web: {_field('canary-by-cookie')}: has no effect: the "
            "Ingress is not a canary (no canary annotation); ignored") in logged


def test_warning_survives_an_endpoint_only_update() -> None:
    objs = [_ingress("web", {P + "canary-weight": "5"}), *_backend("web", "10.0.0.1")]
    r = Router(Resources.from_dicts(objs), seed=0)
    before = [w for w in r.warnings if "not a canary" in w.message]
    assert len(before) == 1
    r.update(Resources.from_dicts([objs[0], *_backend("web", "10.0.0.2")]))
    assert [w for w in r.warnings if "not a canary" in w.message] == before


# --- 2. pairing ---------------------------------------------------------------------------------

CANARY = {P + "canary": "true"}


def _table(main_path: str, canary_path: str, ptype: str = "Prefix") -> RouteTable:
    return RouteTable.build(Resources.from_dicts([
        _ingress("web", {}, main_path, ptype), _ingress("can", CANARY, canary_path, ptype)]))


@pytest.mark.parametrize(("main", "canary", "ptype"), [
    ("/foo", "/foo/", "Prefix"), ("/foo/", "/foo", "Prefix"),
    ("/caf%C3%A9", "/café", "Exact"), ("/a", "/a/", "ImplementationSpecific")])
def test_canary_written_otherwise_pairs_and_is_said(main: str, canary: str, ptype: str) -> None:
    # DEFECT: paired silently, where ingress-nginx drops the canary.
    t = _table(main, canary, ptype)
    m = t.match("a.test", main)
    assert m is not None and m.canary is not None and m.canary.ingress == "default/can"
    assert [(d.object, d.field, d.message) for d in t.diagnostics] == [
        ("Ingress default/can", "spec.rules[0].http.paths[0]",
         f"canary {ptype} {canary!r} on host a.test: paired with the main rule {ptype} {main!r} "
         "(Ingress default/web spec.rules[0].http.paths[0]), which matches the same requests; "
         "ingress-nginx pairs a canary only with a rule of the identical path and drops this "
         f"one: write {main!r}")]


@pytest.mark.parametrize(("main", "canary", "ptype"), [
    ("/foo", "/foo", "Prefix"), ("/foo/", "/foo/", "Prefix"), ("/", "/", "Exact"),
    # The store reads an empty path as "/" (store.go syncIngress) on both sides.
    ("", "/", "ImplementationSpecific"), ("/", "", "ImplementationSpecific"),
    ("", "", "ImplementationSpecific")])
def test_identical_paths_pair_without_a_note(main: str, canary: str, ptype: str) -> None:
    t = _table(main, canary, ptype)
    m = t.match("a.test", "/")
    if main.rstrip("/") == "/foo":
        m = t.match("a.test", "/foo")
    assert m is not None and m.canary is not None
    assert t.diagnostics == ()


def test_resource_main_keeps_its_canary_documented() -> None:
    # ingress-nginx gives a rule with a resource backend no location, so its canary finds none
    # and is deleted. ingresslib keeps the pair and, the main side having no endpoint, the
    # canary serves (R2), whatever its weight: docs/router.md R32.
    res = Resources.from_dicts([
        _ingress("web", {}, backend={"resource": {"apiGroup": "k8s.example.com",
                                                  "kind": "StorageBucket", "name": "b"}}),
        _ingress("can", {**CANARY, P + "canary-weight": "0"}), *_backend("can", "10.0.0.9")])
    d = Router(res, seed=0).route("GET", "a.test", "/", ())
    assert d is not None and d.canary and d.endpoint == ("10.0.0.9", 8080)
    assert d.match.resource is not None
