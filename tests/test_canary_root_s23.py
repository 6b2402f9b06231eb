"""Session 23 (Z1): a canary ``Prefix /`` and the host's implicit root location.

ingress-nginx ``internal/ingress/controller/controller.go``:

* ``createServers`` gives every server a root location ``{Path: "/", PathType:
  &pathTypePrefix, IsDefBackend: true, Backend: un}``: for a named host, ``un`` is the upstream
  of the ``defaultBackend`` of the first Ingress (``ListIngresses``: oldest first) with a rule
  for the host, else the controller's default upstream; the catch-all server ``_`` (host-less
  rules, hosts no rule names) has ``defLoc.Backend = backendUpstream.Name`` from a main
  Ingress's ``defaultBackend``. Canary Ingresses make no server ("is marked as Canary,
  ignoring").
* ``getBackendServers``: a main rule with the same path and pathType replaces that location
  (``IsDefBackend`` true): a main Prefix ``/`` rule is then the root location.
* ``mergeAlternativeBackends`` merges a canary rule into a location on ``loc.Path ==
  path.Path && *loc.PathType == *path.PathType`` and ``canMergeBackend`` (``primary.Name !=
  defUpstreamName``), with no look at ``IsDefBackend``: a canary Prefix ``/`` pairs with the
  root location when its backend is an Ingress's ``defaultBackend``, not the controller's.

ingresslib ignored every such canary ("matches no main rule; ignored"): ``x.test/zzz`` went to
the main side at canary-weight 100 (DEFECT: the tests marked so failed before).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingresslib import Resources, RouteTable
from ingresslib._router import Router

from _budget import examples
from _matchers import MATCHER_PARAMS
from _table_oracle import actual, ingress, oracle

P = "nginx.ingress.kubernetes.io/"
CANARY = {P + "canary": "true", P + "canary-weight": "100"}
_T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def _t(i: int) -> datetime:
    return _T0 + timedelta(days=i)


def _build(*ings: Any, matcher: Any = None) -> RouteTable:
    return RouteTable.build(Resources(ingresses=tuple(ings)), matcher_class=matcher)


def _notes(t: RouteTable, ref: str = "default/can") -> list[str]:
    return [d.message for d in t.diagnostics if d.object == f"Ingress {ref}"]


# --- the pairing ----------------------------------------------------------------------------


@pytest.mark.parametrize("matcher", MATCHER_PARAMS)
def test_canary_root_pairs_with_the_hosts_own_default_backend(matcher: Any) -> None:
    # DEFECT (the reviewer's example): main x.test /a with a defaultBackend, canary x.test /.
    t = _build(ingress("main", [("x.test", [("/a", "Prefix", "m")])], default="d", created=_t(0)),
               ingress("can", [("x.test", [("/", "Prefix", "c")])], annotations=CANARY, created=_t(1)),
               matcher=matcher)
    m = t.match("x.test", "/zzz")
    assert m is not None and m.is_default_backend and m.service == "d"
    assert m.canary is not None and m.canary.ingress == "default/can" and m.canary.service == "c"
    assert m.canary.is_canary and m.canary.path == "/" and m.canary.path_type == "Prefix"
    rule = t.match("x.test", "/a/b")
    assert rule is not None and rule.service == "m" and rule.canary is None
    assert _notes(t) == []
    # explain says it as the table has it
    got = t.explain("x.test", "/zzz")["match"]
    assert got["is_default_backend"] and got["canary"]["ingress"] == "default/can"


def _backend(name: str, ip: str) -> list[dict[str, Any]]:
    return [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
             "spec": {"ports": [{"port": 80, "targetPort": 8080}]}},
            {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
             "metadata": {"name": f"{name}-1", "namespace": "default",
                          "labels": {"kubernetes.io/service-name": name}},
             "addressType": "IPv4", "endpoints": [{"addresses": [ip]}], "ports": [{"port": 8080}]}]


def _ing(name: str, host: str | None, path: str, svc: str, *, default: str | None = None,
         annotations: dict[str, str] | None = None, ts: str = "2024-01-01T00:00:00Z",
         ptype: str = "Prefix") -> dict[str, Any]:
    rule: dict[str, Any] = {"http": {"paths": [{"path": path, "pathType": ptype, "backend": {
        "service": {"name": svc, "port": {"number": 80}}}}]}}
    if host is not None:
        rule["host"] = host
    spec: dict[str, Any] = {"rules": [rule]}
    if default is not None:
        spec["defaultBackend"] = {"service": {"name": default, "port": {"number": 80}}}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "namespace": "default", "annotations": annotations or {},
                         "creationTimestamp": ts},
            "spec": spec}


def test_router_sends_the_hosts_misses_to_the_canary() -> None:
    # DEFECT: x.test/zzz went to the main default backend at canary-weight 100.
    objs = [_ing("main", "x.test", "/a", "m", default="d"),
            _ing("can", "x.test", "/", "c", annotations=CANARY, ts="2024-01-02T00:00:00Z"),
            *_backend("m", "10.0.0.1"), *_backend("d", "10.0.0.2"), *_backend("c", "10.0.0.3")]
    r = Router(Resources.from_dicts(objs), seed=0)
    d = r.route("GET", "x.test", "/zzz")
    assert d is not None and d.canary and d.service == "c" and d.endpoint == ("10.0.0.3", 8080)
    d = r.route("GET", "x.test", "/a")
    assert d is not None and not d.canary and d.service == "m"


def test_router_header_canary_on_the_default_backend() -> None:
    # DEFECT: the header opt-in did nothing on the host's misses.
    ann = {P + "canary": "true", P + "canary-by-header": "X-Canary"}
    objs = [_ing("main", "x.test", "/a", "m", default="d"),
            _ing("can", "x.test", "/", "c", annotations=ann, ts="2024-01-02T00:00:00Z"),
            *_backend("m", "10.0.0.1"), *_backend("d", "10.0.0.2"), *_backend("c", "10.0.0.3")]
    r = Router(Resources.from_dicts(objs), seed=0)
    d = r.route("GET", "x.test", "/zzz", headers=[("X-Canary", "always")])
    assert d is not None and d.canary and d.service == "c"
    d = r.route("GET", "x.test", "/zzz")
    assert d is not None and not d.canary and d.service == "d"


@pytest.mark.parametrize("matcher", MATCHER_PARAMS)
def test_hostless_canary_root_pairs_with_the_catch_all_default(matcher: Any) -> None:
    # DEFECT: the catch-all server "_" has the root location of a rules-less defaultBackend;
    # a host-less canary "/" merges into it. A named host whose oldest Ingress has no
    # defaultBackend has the controller's default upstream at its root: no canary there.
    t = _build(ingress("catchall", default="d", created=_t(0)),
               ingress("web", [("x.test", [("/a", "Prefix", "m")])], created=_t(1)),
               ingress("can", [(None, [("/", "Prefix", "c")])], annotations=CANARY, created=_t(2)),
               matcher=matcher)
    m = t.match("other.test", "/q")
    assert m is not None and m is t.default and m.service == "d"
    assert m.canary is not None and m.canary.ingress == "default/can"
    m = t.match("x.test", "/q")
    assert m is not None and m.is_default_backend and m.service == "d" and m.canary is None
    assert _notes(t) == []


@pytest.mark.parametrize("matcher", MATCHER_PARAMS)
def test_hostless_canary_root_pairs_with_the_hostless_groups_default(matcher: Any) -> None:
    # DEFECT: host-less main rules and a defaultBackend: the "_" server's root location.
    t = _build(ingress("main", [(None, [("/a", "Prefix", "m")])], default="d", created=_t(0)),
               ingress("can", [(None, [("/", "Prefix", "c")])], annotations=CANARY, created=_t(1)),
               matcher=matcher)
    for host in ("any.test", "x.test"):
        m = t.match(host, "/zzz")
        assert m is not None and m.is_default_backend and m.service == "d"
        assert m.canary is not None and m.canary.service == "c"
    m = t.match("x.test", "/a")
    assert m is not None and m.service == "m" and m.canary is None


# --- where ingress-nginx does not pair ------------------------------------------------------


def test_no_pairing_when_the_oldest_owner_has_no_default_backend() -> None:
    # The root location of x.test is made by "old" (the oldest Ingress with a rule for it),
    # which has no defaultBackend: Backend is the controller's default upstream, which
    # canMergeBackend refuses. ingresslib's own default for the host (SEMANTICS §4.5: "new"'s)
    # keeps no canary; the note says why.
    t = _build(ingress("old", [("x.test", [("/a", "Prefix", "m")])], created=_t(0)),
               ingress("new", [("x.test", [("/b", "Prefix", "n")])], default="d", created=_t(1)),
               ingress("can", [("x.test", [("/", "Prefix", "c")])], annotations=CANARY, created=_t(2)))
    m = t.match("x.test", "/zzz")
    assert m is not None and m.ingress == "default/new" and m.is_default_backend and m.canary is None
    assert _notes(t) == [
        "canary Prefix '/' on host x.test matches no main rule; ignored (ingress-nginx pairs a canary "
        "Prefix '/' with the host's default backend only when it is the defaultBackend of the oldest "
        "Ingress with rules for the host, here Ingress default/old, which has none: its root location "
        "has the controller's default backend, which takes no canary)"]


def test_no_default_backend_at_all_keeps_the_old_note() -> None:
    t = _build(ingress("main", [("x.test", [("/a", "Prefix", "m")])], created=_t(0)),
               ingress("can", [("x.test", [("/", "Prefix", "c")]), (None, [("/", "Prefix", "c")])],
                       annotations=CANARY, created=_t(1)))
    assert t.match("x.test", "/zzz") is None
    assert _notes(t) == ["canary Prefix '/' on host x.test matches no main rule; ignored",
                         "canary Prefix '/' on host * matches no main rule; ignored"]


def test_a_host_no_main_rule_names_has_no_root_location() -> None:
    # mergeAlternativeBackends: "cannot merge alternative backend %s into hostname %s that
    # does not exist".
    t = _build(ingress("main", [("x.test", [("/a", "Prefix", "m")])], default="d", created=_t(0)),
               ingress("can", [("y.test", [("/", "Prefix", "c")])], annotations=CANARY, created=_t(1)))
    m = t.match("y.test", "/")
    assert m is not None and m is t.default and m.canary is None
    assert _notes(t) == ["canary Prefix '/' on host y.test matches no main rule; ignored"]


@pytest.mark.parametrize("ptype", ["Exact", "ImplementationSpecific"])
def test_only_a_prefix_canary_pairs_with_the_root_location(ptype: str) -> None:
    # The root location's PathType is Prefix: "*loc.PathType == *path.PathType".
    t = _build(ingress("main", [("x.test", [("/a", "Prefix", "m")])], default="d", created=_t(0)),
               ingress("can", [("x.test", [("/", ptype, "c")])], annotations=CANARY, created=_t(1)))
    m = t.match("x.test", "/")
    assert m is not None and m.is_default_backend and m.canary is None
    assert _notes(t) == [f"canary {ptype} '/' on host x.test matches no main rule; ignored"]


def test_an_explicit_prefix_root_rule_takes_the_canary() -> None:
    # getBackendServers replaces the root location with the main rule: the canary is the
    # rule's; the default backend (unreachable: "/" takes every path) has none.
    t = _build(ingress("main", [("x.test", [("/", "Prefix", "m")])], default="d", created=_t(0)),
               ingress("can", [("x.test", [("/", "Prefix", "c")])], annotations=CANARY, created=_t(1)))
    m = t.match("x.test", "/zzz")
    assert m is not None and not m.is_default_backend and m.service == "m"
    assert m.canary is not None and m.canary.service == "c"
    assert all(r.canary is None for r in t.routes if r.is_default_backend)


def test_an_exact_root_rule_leaves_the_root_location_to_the_default() -> None:
    # A main Exact "/" is a location of another PathType: the Prefix root stays the default's.
    t = _build(ingress("main", [("x.test", [("/", "Exact", "m")])], default="d", created=_t(0)),
               ingress("can", [("x.test", [("/", "Prefix", "c")])], annotations=CANARY, created=_t(1)))
    m = t.match("x.test", "/")
    assert m is not None and m.service == "m" and m.canary is None
    m = t.match("x.test", "/zzz")
    assert m is not None and m.is_default_backend and m.canary is not None and m.canary.service == "c"


def test_a_second_root_canary_is_reported() -> None:
    t = _build(ingress("main", [("x.test", [("/a", "Prefix", "m")])], default="d", created=_t(0)),
               ingress("can", [("x.test", [("/", "Prefix", "c")])], annotations=CANARY, created=_t(1)),
               ingress("can2", [("x.test", [("/", "Prefix", "c2")])], annotations=CANARY, created=_t(2)))
    m = t.match("x.test", "/zzz")
    assert m is not None and m.canary is not None and m.canary.ingress == "default/can"
    assert _notes(t, "default/can2") == ["rule already has the canary default/can; ignored"]


def test_a_root_canary_written_otherwise_pairs_with_a_note() -> None:
    # R31: paired by the canonical path; ingress-nginx compares the written path with "/".
    t = _build(ingress("main", [("x.test", [("/a", "Prefix", "m")])], default="d", created=_t(0)),
               ingress("can", [("x.test", [("/.", "Prefix", "c")])], annotations=CANARY, created=_t(1)))
    m = t.match("x.test", "/zzz")
    assert m is not None and m.canary is not None
    assert _notes(t) == [
        # Session 25: a rule path standing for another path is said too.
        "Prefix '/.' on host x.test matches as Prefix '/' (its canonical form: dot segments and "
        "repeated slashes resolved as in request paths); ingress-nginx compares the path as "
        "written with the normalised request path",
        "canary Prefix '/.' on host x.test: paired with the host's default backend (its root "
        "location '/'), which matches the same requests; ingress-nginx pairs a canary only with a "
        "location of the identical path and drops this one: write '/'"]


# --- the table agrees with the oracle ---------------------------------------------------------


_hosts = st.sampled_from([None, "x.test", "*.test"])
_paths = st.sampled_from(["/", "/a", "/.", "/a/"])
_types = st.sampled_from(["Prefix", "Exact", "ImplementationSpecific"])


@st.composite
def _world(draw: Any) -> Resources:
    ings = []
    for i in range(draw(st.integers(1, 4))):
        rules = [(draw(_hosts), [(draw(_paths), draw(_types), f"s{i}{k}")
                                 for k in range(draw(st.integers(0, 2)))])
                 for _ in range(draw(st.integers(0, 2)))]
        can = draw(st.integers(0, 3)) == 0
        ings.append(ingress(f"i{i}", rules, default=f"d{i}" if draw(st.booleans()) else None,
                            annotations=CANARY if can else None, created=_t(draw(st.integers(0, 2)))))
    # and always a canary of the root, on one host or two
    roots = [(draw(_hosts), [(draw(st.sampled_from(["/", "/."])), draw(_types), "c")])
             for _ in range(draw(st.integers(1, 2)))]
    ings.append(ingress("can", roots, annotations=CANARY, created=_t(draw(st.integers(0, 2)))))
    return Resources(ingresses=tuple(ings))


@settings(max_examples=examples(0.5), deadline=None)
@given(res=_world(), host=st.sampled_from(["x.test", "y.test", "a.test"]),
       path=st.sampled_from(["/", "/a", "/a/b", "/zzz"]))
def test_the_table_agrees_with_the_oracle_on_root_canaries(res: Resources, host: str, path: str) -> None:
    t = RouteTable.build(res)
    assert actual(t.match(host, path)) == oracle(res, host, path)


def test_explain_shows_the_canary_of_the_default_backend() -> None:
    # DEFECT: explain said the main default backend serves x.test/zzz.
    from ingresslib._explain import explain_url

    objs = [_ing("main", "x.test", "/a", "m", default="d"),
            _ing("can", "x.test", "/", "c", annotations=CANARY, ts="2024-01-02T00:00:00Z"),
            *_backend("m", "10.0.0.1"), *_backend("d", "10.0.0.2"), *_backend("c", "10.0.0.3")]
    res = Resources.from_dicts(objs)
    out = explain_url(RouteTable.build(res), "http://x.test/zzz", res=res)
    assert out["reason"] == "default backend" and out["match"]["service"] == "d"
    assert out["match"]["canary"]["ingress"] == "default/can"
    assert out["match"]["canary"]["rules"] == {"weight": 100, "weight_total": 100}
    assert out["decision"]["canary"] is True and out["decision"]["service"] == "c"
