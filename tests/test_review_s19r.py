"""Review of the route table build (Q19r): classes, precedence and merging, checked against a
small oracle written straight from SEMANTICS §3-§4.

The oracle works on the table's structure, not on lookups (tests/_table_oracle.py does those):
which Ingresses are served and in which order, which rule wins each slot (host, Exact or not,
rule path once canonical with a Prefix rule's trailing "/" dropped), which Ingress every losing
rule is reported as shadowed by, which default backend each host group and the table fall back
to, and which canary each winning rule carries.
"""

from __future__ import annotations

from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from ingresslib._models import (
    HTTPIngressPath,
    Ingress,
    IngressClass,
    IngressClassSpec,
    IngressRule,
    IngressSpec,
    ObjectMeta,
)
from ingresslib import parse_manifests
from ingresslib._normalize import canonical_rule_path
from ingresslib._resources import Resources
from ingresslib._table import RouteTable

from _matchers import MATCHER_PARAMS
from _table_oracle import backend, ingress

LEGACY = "kubernetes.io/ingress.class"
DEFAULT_CLASS = "ingressclass.kubernetes.io/is-default-class"
CANARY = "nginx.ingress.kubernetes.io/canary"

_T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
_T1 = datetime(2024, 1, 2, tzinfo=timezone.utc)


# --- the oracle (SEMANTICS §3-§4, nothing shared with _table but the rule path canonicaliser) --


def _last_of_each(items: list[Any], key: Any) -> list[Any]:
    """A store holds one object per identity: the last definition given."""
    seen: dict[Any, Any] = {}
    for item in items:
        seen[key(item)] = item
    return list(seen.values())


def oracle_served(res: Resources, ingress_class: str | None, controller: str | None) -> list[Ingress]:
    ings = _last_of_each(list(res.ingresses), lambda i: (i.metadata.namespace, i.metadata.name))
    # "oldest Ingress (creationTimestamp), then namespace/name"; no timestamp: the newest.
    ings.sort(key=lambda i: (i.metadata.creation_timestamp is None, i.metadata.creation_timestamp or _T0,
                             i.metadata.namespace, i.metadata.name))
    if ingress_class is None and controller is None:
        return ings  # "No class filter given: all."
    classes = _last_of_each(list(res.ingress_classes), lambda c: c.metadata.name)
    ok = [c for c in classes if (ingress_class is None or c.metadata.name == ingress_class)
          and (controller is None or c.spec.controller == controller)]
    out = []
    for ing in ings:
        # "names a class by spec.ingressClassName, or, when unset, the legacy annotation"
        name = ing.spec.ingress_class_name
        if name is None:
            name = ing.metadata.annotations.get(LEGACY)
        if name is None:
            if any(c.metadata.annotations.get(DEFAULT_CLASS) == "true" for c in ok):
                out.append(ing)
        elif any(c.metadata.name == name for c in ok):
            out.append(ing)
    return out


def _rank(hp: HTTPIngressPath) -> tuple[int, int]:
    """Lower wins inside one slot: a trailing slash first ("Prefix /foo/ beats Prefix
    /foo"), then Prefix before ImplementationSpecific (the table's documented choice)."""
    if hp.path_type == "Exact":
        return (0, 0)
    c = canonical_rule_path(hp.path or "/")  # "/foo/%2e" is "/foo/": compared canonically
    return (0 if c.endswith("/") and c != "/" else 1, 0 if hp.path_type == "Prefix" else 1)


def _slot(host: str | None, hp: HTTPIngressPath) -> tuple[str | None, bool, str]:
    c = canonical_rule_path(hp.path or "/")
    exact = hp.path_type == "Exact"
    return (host, exact, c if exact else c.rstrip("/"))


def oracle_table(res: Resources, ingress_class: str | None, controller: str | None) -> dict[str, Any]:
    served = oracle_served(res, ingress_class, controller)
    canaries = [i for i in served if i.metadata.annotations.get(CANARY) == "true"]
    mains = [i for i in served if i not in canaries]
    # Every candidate in the order "oldest Ingress, then namespace/name, then spec order".
    cands = [(ing, ri, pi, rule.host, hp) for ing in mains for ri, rule in enumerate(ing.spec.rules)
             for pi, hp in enumerate(rule.paths or ())]
    winners: dict[Any, Any] = {}
    for order, c in enumerate(cands):
        slot = _slot(c[3], c[4])
        if slot not in winners or _rank(c[4]) < _rank(winners[slot][1][4]):
            winners[slot] = (order, c)
    shadowed = {(f"Ingress {ing.metadata.ref}", f"spec.rules[{ri}].http.paths[{pi}]"):
                f"Ingress {winners[_slot(h, hp)][1][0].metadata.ref} "
                f"spec.rules[{winners[_slot(h, hp)][1][1]}].http.paths[{winners[_slot(h, hp)][1][2]}]"
                for ing, ri, pi, h, hp in cands if winners[_slot(h, hp)][1][:3] != (ing, ri, pi)}
    # Canary: "a second Ingress with the same host, path and pathType as a main rule"; the
    # oldest canary of a rule is its canary.
    canary_of: dict[Any, str] = {}
    # A canary Prefix "/" with no main rule of its slot pairs with the host's implicit root
    # location (ingress-nginx createServers/mergeAlternativeBackends): a named host's when its
    # oldest Ingress with rules has a defaultBackend, the catch-all server's (host-less) when
    # any main Ingress has one. Not a rule: kept apart from ``rules``.
    with_default = [i for i in mains if i.spec.default_backend is not None]
    root_of: dict[Any, str] = {}

    def root_pairs(host: str | None) -> bool:
        if host is None:
            return bool(with_default)
        owners = [i for i in mains if any(r.host == host for r in i.spec.rules)]
        return bool(owners) and owners[0].spec.default_backend is not None
    #: (object, field) -> what the note on an unpaired canary rule says: no main rule, the
    #: main rule of another pathType, or another canary first.
    unpaired: dict[tuple[str, str], str] = {}
    for can in canaries:
        for ri, rule in enumerate(can.spec.rules):
            for pi, hp in enumerate(rule.paths or ()):
                where = (f"Ingress {can.metadata.ref}", f"spec.rules[{ri}].http.paths[{pi}]")
                slot = _slot(rule.host, hp)
                if slot not in winners and slot[1:] == (False, "") and hp.path_type == "Prefix" \
                        and root_pairs(rule.host):
                    if rule.host in root_of:
                        unpaired[where] = root_of[rule.host]
                    else:
                        root_of[rule.host] = can.metadata.ref
                elif slot not in winners:
                    unpaired[where] = "no main rule"
                elif winners[slot][1][4].path_type != hp.path_type:
                    unpaired[where] = f"Ingress {winners[slot][1][0].metadata.ref}"
                elif slot in canary_of:
                    unpaired[where] = canary_of[slot]
                else:
                    canary_of[slot] = can.metadata.ref
    rules = {slot: (c[0].metadata.ref, c[4].path, c[4].path_type, canary_of.get(slot))
             for slot, (_o, c) in winners.items()}
    # Defaults: "the defaultBackend of the oldest served Ingress with rules in that host group
    # that has one; else the oldest served Ingress's defaultBackend".
    oldest = with_default[0].metadata.ref if with_default else None
    hosts = {rule.host for ing in mains for rule in ing.spec.rules}
    defaults = {}
    for host in hosts:
        owners = [i for i in with_default if any(r.host == host for r in i.spec.rules)]
        defaults[host] = owners[0].metadata.ref if owners else oldest
    # A default backend no request reaches: neither a host group's nor, without host-less
    # rules to take every other host, the table's.
    used = set(defaults.values()) | (set() if None in hosts else {oldest})
    unused = {f"Ingress {i.metadata.ref}" for i in with_default} - {f"Ingress {r}" for r in used}
    return {"served": [i.metadata.ref for i in served], "rules": rules, "shadowed": shadowed,
            "defaults": defaults, "default": oldest, "unpaired": unpaired, "unused": unused}


def actual_table(t: RouteTable) -> dict[str, Any]:
    rules = {}
    defaults = {}
    for m in t.routes:
        if m.is_default_backend:
            if m is not t.default:
                defaults[m.host] = m.ingress
            continue
        slot = (m.host, m.path_type == "Exact", m.match_path if m.path_type == "Exact" else m.match_path.rstrip("/"))
        rules[slot] = (m.ingress, m.path, m.path_type, None if m.canary is None else m.canary.ingress)
    for h in t.hosts:
        defaults.setdefault(h, None)
    shadowed = {}
    for d in t.diagnostics:
        if "is shadowed by " in d.message:
            shadowed[(d.object, d.field)] = d.message.split("is shadowed by ", 1)[1].removesuffix(" and never matches")
    unpaired = {}
    for d in t.diagnostics:
        if " matches no main rule; ignored" in d.message:
            unpaired[(d.object, d.field)] = "no main rule"
        elif "the main rule serving that path is " in d.message:
            unpaired[(d.object, d.field)] = "Ingress " + d.message.split("(Ingress ", 1)[1].split(" ", 1)[0]
        elif "rule already has the canary " in d.message:
            unpaired[(d.object, d.field)] = d.message.split("rule already has the canary ", 1)[1].split(";")[0]
    # The structural "never used" (no host group takes it); session 25's note on a default
    # behind catch-all rules (``CAUGHT_DEFAULT``) is another question, not this oracle's.
    unused = {d.object for d in t.diagnostics if d.field == "spec.defaultBackend"
              and "never used" in d.message and "catch-all" not in d.message}
    return {"served": [i.metadata.ref for i in t.served], "rules": rules, "shadowed": shadowed,
            "defaults": defaults, "default": None if t.default is None else t.default.ingress,
            "unpaired": unpaired, "unused": unused}


# --- generated inputs ------------------------------------------------------------------------


_paths = st.sampled_from([None, "/", "/foo", "/foo/", "/foo/%2e", "/foo/bar", "/foo//bar/", "/a/../foo",
                          "/foo/bar/.."])
_types = st.sampled_from(["Exact", "Prefix", "ImplementationSpecific"])
_hosts = st.sampled_from([None, "a.example", "*.example", "b.a.example"])
_class_names = st.sampled_from(["c1", "c2", "c3"])
# The rest of what the composites draw from, made once (not made and validated at every draw).
_ns = st.sampled_from(["a", "b"])
_names = st.sampled_from(["x", "y", "z"])
_n_rules = st.integers(0, 3)
_n_paths = st.integers(-1, 2)
_spec_class = st.one_of(st.none(), _class_names)
_one_in_4 = st.integers(0, 3)
_stamps = st.sampled_from([None, _T0, _T1])
_controllers = st.sampled_from(["k/x", "k/y"])


@st.composite
def _ingress(draw: Any) -> Ingress:
    ns = draw(_ns)
    name = draw(_names)
    rules = []
    for ri in range(draw(_n_rules)):
        host = draw(_hosts)
        n = draw(_n_paths)  # -1: a host-only rule
        paths = None if n < 0 else tuple(
            HTTPIngressPath(backend=backend(f"{ns}-{name}-{ri}-{pi}"), path=draw(_paths), path_type=draw(_types))
            for pi in range(n))
        rules.append(IngressRule(host=host, paths=paths))
    annotations = {}
    spec_class = draw(_spec_class)
    if spec_class is None and draw(st.booleans()):
        annotations[LEGACY] = draw(_class_names)
    if draw(_one_in_4) == 0:
        annotations[CANARY] = "true"
    return Ingress(
        metadata=ObjectMeta(name=name, namespace=ns, annotations=MappingProxyType(annotations),
                            creation_timestamp=draw(_stamps)),
        spec=IngressSpec(ingress_class_name=spec_class,
                         default_backend=backend(f"{ns}-{name}-default") if draw(st.booleans()) else None,
                         rules=tuple(rules)),
    )


@st.composite
def _klass(draw: Any) -> IngressClass:
    ann = {DEFAULT_CLASS: "true"} if draw(st.booleans()) else {}
    return IngressClass(metadata=ObjectMeta(name=draw(_class_names), namespace="", annotations=ann),
                        spec=IngressClassSpec(controller=draw(_controllers)))


#: The CI profile (tests/conftest.py: 300 examples, no deadline) whatever profile is loaded.
_profile = settings(settings.get_profile("ci"), suppress_health_check=[HealthCheck.too_slow])


@_profile
@given(ings=st.lists(_ingress(), max_size=6), classes=st.lists(_klass(), max_size=4),
       ingress_class=st.one_of(st.none(), _class_names), controller=st.sampled_from([None, "k/x", "k/y"]))
def test_the_build_agrees_with_the_oracle(ings: list[Ingress], classes: list[IngressClass],
                                          ingress_class: str | None, controller: str | None) -> None:
    res = Resources(ingresses=tuple(ings), ingress_classes=tuple(classes))
    t = RouteTable.build(res, ingress_class, controller)
    note("\n".join(map(str, t.diagnostics)))
    assert actual_table(t) == oracle_table(res, ingress_class, controller)


# --- the defects found, one example each -----------------------------------------------------


_TWO_INGRESSES = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: old, creationTimestamp: "2024-01-01T00:00:00Z"}
spec:
  rules:
  - host: h.example
    http:
      paths:
      - {path: /foo, pathType: Prefix, backend: {service: {name: old, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: new, creationTimestamp: "2024-01-02T00:00:00Z"}
spec:
  rules:
  - host: h.example
    http:
      paths:
      - {path: "%s", pathType: %s, backend: {service: {name: new, port: {number: 80}}}}
"""


@pytest.mark.parametrize("matcher", MATCHER_PARAMS)
@pytest.mark.parametrize(("path", "path_type"), [
    ("/foo/", "Prefix"),  # the plain case, unchanged
    ("/foo/%2e", "Prefix"),  # valid for the API server: "%2e" is none of its forbidden sequences
    ("/foo/%2E", "Prefix"),
    ("/foo/.", "ImplementationSpecific"),
    ("/foo/bar/..", "ImplementationSpecific"),
])
def test_a_rule_path_whose_canonical_form_ends_in_a_slash_beats_the_bare_one(
        matcher: Any, path: str, path_type: str) -> None:
    # "Prefix /foo/ beats Prefix /foo" (SEMANTICS §4.3), whatever the Ingresses' ages. Rule paths
    # are compared in their canonical form ("/foo/%2e" is "/foo/", and a request for
    # "/foo/%2e" routes as "/foo/"): the build ranked them on the path as written, so a newer
    # "/foo/%2e" lost its slot to an older "/foo" and /foo/x went to the older Ingress.
    res = parse_manifests(_TWO_INGRESSES % (path, path_type))
    t = RouteTable.build(res, matcher_class=matcher)
    m = t.match("h.example", "/foo/x")
    assert m is not None and m.ingress == "default/new"
    # (Session 25: the rule path standing for another path has its own note, on ``.path``.)
    assert [(d.object, d.message) for d in t.diagnostics if not d.field.endswith(".path")] == [(
        "Ingress default/old", "Prefix '/foo' on host h.example is shadowed by Ingress default/new "
        "spec.rules[0].http.paths[0] and never matches")]


def test_a_shadowed_note_names_the_rule_that_kept_the_slot() -> None:
    # x (older by name) writes "/" twice as ImplementationSpecific; y writes Prefix "/", which
    # ranks first (the stricter type). x's second rule was reported as shadowed by x's first,
    # which y then shadowed: the note pointed at a rule that never matches either.
    x = ingress("x", [("h.example", [("/", "ImplementationSpecific", "x0"), ("/", "ImplementationSpecific", "x1")])])
    y = ingress("y", [("h.example", [("/", "Prefix", "y0")])])
    t = RouteTable.build(Resources(ingresses=(x, y)))
    m = t.match("h.example", "/")
    assert m is not None and m.service == "y0"
    assert [(d.object, d.field, d.message.split(" is shadowed by ")[1]) for d in t.diagnostics] == [
        ("Ingress default/x", "spec.rules[0].http.paths[1]",
         "Ingress default/y spec.rules[0].http.paths[0] and never matches"),
        ("Ingress default/x", "spec.rules[0].http.paths[0]",
         "Ingress default/y spec.rules[0].http.paths[0] and never matches"),
    ]


def test_a_note_names_the_final_winner_after_several_changes_of_hands() -> None:
    # Ranks fall three times in one slot: IS "/a", Prefix "/a", IS "/a/", Prefix "/a/".
    a = ingress("a", [("h.example", [("/a", "ImplementationSpecific", "a")])])
    b = ingress("b", [("h.example", [("/a", "Prefix", "b")])])
    c = ingress("c", [("h.example", [("/a/", "ImplementationSpecific", "c")])])
    d = ingress("d", [("h.example", [("/a/", "Prefix", "d")])])
    t = RouteTable.build(Resources(ingresses=(a, b, c, d)))
    m = t.match("h.example", "/a/b")
    assert m is not None and m.service == "d"
    assert sorted((n.object, n.message.split(" is shadowed by ")[1].split(" ")[1]) for n in t.diagnostics) == [
        ("Ingress default/a", "default/d"), ("Ingress default/b", "default/d"), ("Ingress default/c", "default/d")]


_CLASS = """
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: nginx}
spec: {controller: k8s.io/ingress-nginx}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, annotations: {kubernetes.io/ingress.class: %s}}
spec:
  rules:
  - host: h.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
"""


@pytest.mark.parametrize(("value", "why"), [
    ("other", 'IngressClass "other" is not among the objects given'),
    ("nginx", 'class "nginx" does not match this controller'),
])
def test_a_class_named_by_the_legacy_annotation_is_said_to_be(value: str, why: str) -> None:
    # The note's field is spec.ingressClassName (``explain`` selects the notes by it), which
    # this Ingress does not set: the message says where the name it reports came from.
    t = RouteTable.build(parse_manifests(_CLASS % value), controller="example.com/other"
                         if value == "nginx" else "k8s.io/ingress-nginx")
    assert t.served == ()
    [note_] = [d for d in t.diagnostics if d.object == "Ingress default/web"]
    assert note_.field == "spec.ingressClassName"
    assert note_.message.startswith("named by the annotation kubernetes.io/ingress.class "
                                    f"(spec.ingressClassName is unset): {why}")
    assert note_.message.endswith("; not served")


def test_each_shadowed_rule_costs_one_note_however_often_its_slot_changes_hands(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Guard for the fix above: the notes are written once the slots are settled, not rewritten
    # each time a slot changes hands (n rules of rank 5 then one each of ranks 4..0: rewriting
    # made ~5n notes).
    import ingresslib._table as table

    calls = 0
    real = table._shadowed

    def counting(loser: Any, winner: Any) -> Any:
        nonlocal calls
        calls += 1
        return real(loser, winner)

    monkeypatch.setattr(table, "_shadowed", counting)
    tail = [("/a/", "ImplementationSpecific"), ("/a", "Prefix"), ("/a/", "Prefix")]
    n = 200
    ings = [ingress(f"i{k:03}", [("h.example", [("/a", "ImplementationSpecific", "s")])]) for k in range(n)]
    ings += [ingress(f"j{k}", [("h.example", [(p, t, "s")])]) for k, (p, t) in enumerate(tail)]
    t = RouteTable.build(Resources(ingresses=tuple(ings)))
    assert calls == n + len(tail) - 1 == len(t.diagnostics)
    assert {d.message.split(" is shadowed by ")[1] for d in t.diagnostics} == {
        "Ingress default/j2 spec.rules[0].http.paths[0] and never matches"}
