"""Session 25 (D3): the table's diagnostics and what check and explain say.

- A rule path whose canonical form resolves dot segments (``%2e`` included) or repeated
  slashes (Exact ``/a/%2e%2e`` is Exact ``/``) is reported, naming the Ingress, the rule and the
  path it stands for; spelling alone (``%7e``, a raw ``é``) is not.
- A ``spec.defaultBackend`` that only serves host groups whose catch-all rule (Prefix ``/``)
  answers every request first is reported as never used, and only then.
- ``check(load_balance="")`` reports the Router's warning, as ``Router(load_balance="")`` does.
- What explain answers is what the proxy core (``Proxy.connection``) and ``IngressASGI`` do.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ingresslib
from ingresslib.proxy import ProxySettings

from _agree_s13 import (
    IngressSpec,
    PathSpec,
    RequestSpec,
    manifests_text,
    via_asgi,
    via_proxy,
)
from _budget import examples

P0 = "spec.rules[0].http.paths[0]"


def _res(*ings: IngressSpec) -> ingresslib.Resources:
    return ingresslib.parse_manifests(manifests_text(ings))


def _table_notes(*ings: IngressSpec) -> list[ingresslib.Diagnostic]:
    return list(ingresslib.RouteTable.build(_res(*ings)).diagnostics)


# --- rule paths that stand for another path ---------------------------------------------------


@pytest.mark.parametrize(("path", "path_type", "canonical"), [
    ("/a/%2e%2e", "Exact", "/"),
    ("/a/%2E%2e/b", "Exact", "/b"),
    ("/a/%2e%2e/", "Prefix", "/"),
    ("/foo/%2e", "Prefix", "/foo/"),
    ("/a//b", "ImplementationSpecific", "/a/b"),
    ("/a/./b", "ImplementationSpecific", "/a/b"),
    ("/a/x/../b", "ImplementationSpecific", "/a/b"),
    ("/caf\u00e9/%2e%2e/x", "Exact", "/x"),
])
def test_rule_path_standing_for_another_path_is_reported(path: str, path_type: str,
                                                          canonical: str) -> None:
    notes = _table_notes(IngressSpec("web", "h.example", (PathSpec(path, path_type, "s1"),)))
    assert [(d.object, d.field, d.severity) for d in notes] == [
        ("Ingress default/web", P0 + ".path", "warning")]
    msg = notes[0].message
    assert msg.startswith(f"{path_type} {path!r} on host h.example matches as "
                          f"{path_type} {canonical!r} ")
    assert "ingress-nginx compares the path as written" in msg
    # And it does match as that path.
    t = ingresslib.RouteTable.build(_res(IngressSpec("web", "h.example",
                                                     (PathSpec(path, path_type, "s1"),))))
    m = t.match("h.example", canonical)
    assert m is not None and m.service == "s1" and not m.is_default_backend


def test_exact_dotdot_rule_reported_by_check_with_host_less_rule() -> None:
    res = _res(IngressSpec("web", "", (PathSpec("/x", "Prefix", "s0"),
                                       PathSpec("/a/%2e%2e", "Exact", "s1"))))
    found = [d for d in ingresslib.check(res) if d.field.endswith(".path")]
    assert [(d.object, d.field) for d in found] == [
        ("Ingress default/web", "spec.rules[0].http.paths[1].path")]
    assert "Exact '/a/%2e%2e' on host * matches as Exact '/'" in str(found[0])


@pytest.mark.parametrize(("path", "path_type"), [
    ("/q/%7e", "Prefix"),          # %7e is "~": the same requests match
    ("/caf\u00e9", "Prefix"),      # encoded as the requests spell it
    ("/x/", "Prefix"),
    ("/y/", "Exact"),
    ("/a%2e/b", "Exact"),          # "a." is a segment, not a dot segment
    ("/a/%2e%2eb", "Exact"),
    ("/", "Prefix"),
])
def test_rule_path_only_spelled_differently_is_not_reported(path: str, path_type: str) -> None:
    assert _table_notes(IngressSpec("web", "h.example", (PathSpec(path, path_type, "s1"),))) == []


def test_canary_rule_path_standing_for_another_path_is_reported_too() -> None:
    notes = _table_notes(
        IngressSpec("main", "h.example", (PathSpec("/", "Exact", "s1"),)),
        IngressSpec("beta", "h.example", (PathSpec("/a/%2e%2e", "Exact", "s2"),),
                    annotations=(("nginx.ingress.kubernetes.io/canary", "true"),
                                 ("nginx.ingress.kubernetes.io/canary-weight", "100"))))
    # Its own note, then the pairing's (ingress-nginx pairs identical written paths only).
    assert [(d.object, d.field) for d in notes] == [("Ingress default/beta", P0 + ".path"),
                                                    ("Ingress default/beta", P0)]
    assert "matches as Exact '/'" in notes[0].message
    assert "paired with the main rule Exact '/'" in notes[1].message


def test_duplicate_once_canonical_is_reported_as_both() -> None:
    # ``/a/./b`` stands for ``/a/b`` (one note) and so is shadowed by the older ``/a/b`` (another).
    notes = _table_notes(IngressSpec("web", "h.example", (
        PathSpec("/a/b", "ImplementationSpecific", "s1"),
        PathSpec("/a/./b", "ImplementationSpecific", "s2"))))
    assert [d.field for d in notes] == ["spec.rules[0].http.paths[1].path",
                                        "spec.rules[0].http.paths[1]"]
    assert "matches as ImplementationSpecific '/a/b'" in notes[0].message
    assert "is shadowed by Ingress default/web spec.rules[0].http.paths[0]" in notes[1].message


# --- a default backend behind catch-all rules ---------------------------------------------------


def _default_notes(*ings: IngressSpec) -> list[ingresslib.Diagnostic]:
    return [d for d in _table_notes(*ings) if d.field == "spec.defaultBackend"]


def test_default_backend_behind_host_less_prefix_root_is_never_used() -> None:
    ings = (IngressSpec("web", "", (PathSpec("/", "Prefix", "s1"),), default_backend="s0"),)
    notes = _default_notes(*ings)
    assert [(d.object, d.severity) for d in notes] == [("Ingress default/web", "warning")]
    assert notes[0].message == ("never used: every request it could answer matches the catch-all "
                                f"rule Prefix '/' on host * (Ingress default/web {P0})")
    # True of the proxy: every host and path goes to the rule's Service.
    m = manifests_text(ings)
    for host, target in (("x.example", "/"), ("y.example", "/zz/q?x=1"), ("x.example", "/a%7e")):
        req = RequestSpec("GET", target, host, (), b"", False, "203.0.113.9")
        assert via_proxy(m, req, ProxySettings(), frozenset()).backend == "s1"


def test_default_backend_behind_catch_all_of_every_host_it_serves_is_never_used() -> None:
    # The default answers the misses of h.example and of the host-less group (unknown hosts):
    # both have a Prefix "/" (one of another Ingress, one ImplementationSpecific "/").
    notes = _default_notes(
        IngressSpec("web", "h.example", (PathSpec("/", "ImplementationSpecific", "s1"),),
                    default_backend="s0"),
        IngressSpec("all", "", (PathSpec("/", "Prefix", "s2"),)))
    assert len(notes) == 1 and notes[0].object == "Ingress default/web"
    assert notes[0].message == (
        "never used: every request it could answer matches the catch-all rules "
        f"ImplementationSpecific '/' on host h.example (Ingress default/web {P0}), "
        f"Prefix '/' on host * (Ingress default/all {P0})")
    table = ingresslib.RouteTable.build(_res(
        IngressSpec("web", "h.example", (PathSpec("/", "ImplementationSpecific", "s1"),),
                    default_backend="s0"),
        IngressSpec("all", "", (PathSpec("/", "Prefix", "s2"),))))
    for host in ("h.example", "H.EXAMPLE.", "x.example", "*.example", "[::1]"):
        for path in ("/", "/zz", "/a/b/", "/%7e"):
            m = table.match(host, path)
            assert m is not None and not m.is_default_backend, (host, path)


@pytest.mark.parametrize("ings", [
    # No host-less rule: unknown hosts reach the default backend.
    (IngressSpec("web", "h.example", (PathSpec("/", "Prefix", "s1"),), default_backend="s0"),),
    # The host-less group has no catch-all: /zz reaches it.
    (IngressSpec("web", "", (PathSpec("/api", "Prefix", "s1"),), default_backend="s0"),),
    # Exact "/" is no catch-all.
    (IngressSpec("web", "", (PathSpec("/", "Exact", "s1"),), default_backend="s0"),),
    # Another host group without a catch-all uses this (the oldest) default.
    (IngressSpec("web", "", (PathSpec("/", "Prefix", "s1"),), default_backend="s0"),
     IngressSpec("api", "h.example", (PathSpec("/api", "Prefix", "s2"),))),
])
def test_default_backend_reached_by_some_request_is_not_reported(
        ings: tuple[IngressSpec, ...]) -> None:
    assert _default_notes(*ings) == []
    table = ingresslib.RouteTable.build(_res(*ings))
    reached = [table.match(h, p) for h in ("h.example", "x.example") for p in ("/", "/zz")]
    assert any(m is not None and m.is_default_backend for m in reached)


# --- check and explain take the Router's default balancer as the Router does --------------------


def test_check_with_empty_load_balance_says_what_the_router_says() -> None:
    res = _res(IngressSpec("web", "h.example", (PathSpec("/", "Prefix", "s1"),)))
    router_said = ingresslib.Router(res, load_balance="").warnings
    assert [str(d) for d in router_said] == [
        "warning: Router: unknown default load-balance ''; using round_robin"]
    found = ingresslib.check(res, load_balance="")
    assert router_said[0] in found
    assert not any(d.object == "Router" for d in ingresslib.check(res))
    # explain picks as that Router does (round_robin in its place).
    doc = ingresslib.explain(res, "http://h.example/", load_balance="")
    assert doc["decision"]["endpoint"] == "10.0.1.1:8080"


# --- explain says what the proxy does ------------------------------------------------------------

_AGREE = (
    IngressSpec("a", "", (PathSpec("/a/%2e%2e", "Exact", "s1"), PathSpec("/b", "Prefix", "s2"),
                          PathSpec("/c//d", "ImplementationSpecific", "s3"))),
    IngressSpec("d", "h.example", (PathSpec("/", "Prefix", "s3"), PathSpec("/x/", "Exact", "s1")),
                default_backend="s0"),
    IngressSpec("e", "h.example", (PathSpec("/x", "Prefix", "s2"),)),
)


@pytest.mark.parametrize(("host", "target"), [
    ("x.example", "/"), ("x.example", "/a/%2e%2e"), ("x.example", "/b/q"), ("x.example", "/zz"),
    ("x.example", "/c/d/e"), ("x.example", "/c//d"), ("h.example", "/zz"), ("h.example", "/x/"),
    ("h.example", "/x"), ("h.example", "/x/y"), ("H.Example.", "/x/%79"),
])
def test_explain_answers_as_the_proxy_and_the_adapter(host: str, target: str) -> None:
    m = manifests_text(_AGREE)
    res = ingresslib.parse_manifests(m)
    doc = ingresslib.explain(res, "/" + target.lstrip("/"), headers={"Host": host})
    req = RequestSpec("GET", target, host, (), b"", False, "203.0.113.9")
    proxied = via_proxy(m, req, ProxySettings(), frozenset())
    assert doc["status"] == proxied.status == 200
    assert doc["decision"]["service"] == proxied.backend
    assert doc["canonical_path"].encode() == proxied.target
    assert via_asgi(m, req, ProxySettings(), frozenset()).backend == proxied.backend


def test_explain_of_a_default_backend_does_not_list_a_caught_default_naming_its_ingress() -> None:
    # B's default (B is the oldest) serves k.example, where it is B's own, and the host-less
    # group; the catch-all rules of A and C take every request there. B's note names Ingress
    # default/a, whose own default backend answers g.example's misses: that note is not one of
    # the default backends A's shadows.
    ings = (IngressSpec("b", "k.example", (PathSpec("/x", "Prefix", "s1"),), default_backend="s0"),
            IngressSpec("a", "k.example", (PathSpec("/", "Prefix", "s2"),), default_backend="s3"),
            IngressSpec("c", "", (PathSpec("/", "Prefix", "s2"),)))
    # A also has a rule for g.example, whose misses its default backend answers.
    text = manifests_text(ings).replace(
        "  - host: k.example\n    http:\n      paths:\n      - path: '/'",
        "  - host: g.example\n    http:\n      paths:\n      - path: '/api'\n"
        "        pathType: Prefix\n        backend: {service: {name: s1, port: {number: 80}}}\n"
        "  - host: k.example\n    http:\n      paths:\n      - path: '/'")
    res = ingresslib.parse_manifests(text)
    notes = [d for d in ingresslib.RouteTable.build(res).diagnostics
             if d.field == "spec.defaultBackend"]
    assert [d.object for d in notes] == ["Ingress default/b"]
    assert notes[0].message == (
        "never used: every request it could answer matches the catch-all rules "
        f"Prefix '/' on host k.example (Ingress default/a spec.rules[1].http.paths[0]), "
        f"Prefix '/' on host * (Ingress default/c {P0})")
    doc = ingresslib.explain(res, "http://g.example/zz")
    assert doc["match"]["is_default_backend"] and doc["match"]["ingress"] == "default/a"
    assert "shadowed" not in doc


# --- explain agrees with the proxy core on generated tables --------------------------------------

_H = st.sampled_from(["", "h.example", "*.example"])
_PATHS = st.sampled_from(["/", "/a", "/a/", "/a/b", "/a/%2e%2e", "/a//b", "/a/./b", "/b/%7e"])
_TYPES = st.sampled_from(["Prefix", "Exact", "ImplementationSpecific"])
_SVC = st.sampled_from(["s0", "s1", "s2", "s3"])


@st.composite
def _world(draw: Any) -> tuple[IngressSpec, ...]:
    ings = []
    for i in range(draw(st.integers(1, 3))):
        paths = []
        for _ in range(draw(st.integers(1, 3))):
            path, kind = draw(_PATHS), draw(_TYPES)
            if "//" in path or "/./" in path:
                kind = "ImplementationSpecific"  # the API server refuses them otherwise
            paths.append(PathSpec(path, kind, draw(_SVC)))
        ings.append(IngressSpec(f"i{i}", draw(_H), tuple(paths),
                                default_backend=draw(st.sampled_from([None, "s0", "s3"]))))
    return tuple(ings)


@settings(max_examples=examples(0.2), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(_world(), st.sampled_from(["h.example", "x.example", "a.example"]),
       st.sampled_from(["/", "/a", "/a/", "/a/b", "/a/b/c", "/b/~", "/zz", "/a/%2e%2e", "/A"]))
def test_explain_answers_as_the_proxy_on_generated_tables(
        ings: tuple[IngressSpec, ...], host: str, target: str) -> None:
    m = manifests_text(ings)
    res = ingresslib.parse_manifests(m)
    doc = ingresslib.explain(res, target, headers={"Host": host})
    proxied = via_proxy(m, RequestSpec("GET", target, host, (), b"", False, "203.0.113.9"),
                        ProxySettings(), frozenset())
    assert doc["status"] == proxied.status
    if proxied.backend is not None:
        assert doc["decision"]["service"] == proxied.backend
    # No default backend the table's notes call never used answers a request, and the one
    # explain names is not among them.
    table = ingresslib.RouteTable.build(res)
    never = {d.object.removeprefix("Ingress ") for d in table.diagnostics
             if d.field == "spec.defaultBackend" and d.message.startswith("never used")}
    used = {m.ingress for h in ("h.example", "x.example", "b.example")
            for p in ("/", "/a", "/a/b", "/zz") for m in [table.match(h, p)]
            if m is not None and m.is_default_backend}
    assert not never & used
    if doc.get("match") and doc["match"]["is_default_backend"]:
        assert doc["match"]["ingress"] not in never
