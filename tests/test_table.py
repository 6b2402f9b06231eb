"""RouteTable: SEMANTICS §3-§4 rule by rule, and a differential test against a brute-force oracle.

Every test runs against both matchers (compiled and pure twin) through the ``matcher`` fixture.
"""

from __future__ import annotations

import dataclasses
import gc
from datetime import datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any

import pytest
from hypothesis import given, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from ingresslib._errors import BadRequestError
from ingresslib._models import IngressClass, IngressClassSpec, ObjectMeta
from ingresslib._resources import Resources
from ingresslib._table import Match, RouteTable, _new_match

from _budget import examples
from _matchers import MATCHER_PARAMS, required
from _table_oracle import actual, ingress, oracle

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)


def _matchers() -> list[Any]:
    return MATCHER_PARAMS


MATCHERS = _matchers()


@pytest.fixture(params=MATCHERS)
def matcher(request: pytest.FixtureRequest) -> Any:
    return required(request.param)


def build(matcher: Any, *ings: Any, classes: tuple[IngressClass, ...] = (), **kw: Any) -> RouteTable:
    return RouteTable.build(Resources(ingresses=tuple(ings), ingress_classes=classes), matcher_class=matcher, **kw)


def klass(name: str, controller: str = "example.com/ingress", default: bool = False) -> IngressClass:
    ann = {"ingressclass.kubernetes.io/is-default-class": "true"} if default else {}
    return IngressClass(ObjectMeta(name=name, namespace="", annotations=MappingProxyType(ann)),
                        IngressClassSpec(controller=controller))


def svc(table: RouteTable, host: str, path: str) -> str | None:
    m = table.match(host, path)
    return None if m is None else m.service


# --- §4.2 path types: the Kubernetes docs' examples table ----------------------------------------

DOCS_EXAMPLES = [
    # (rules [(path, type)], request path, matching rule index or None)  -- kubernetes.io/docs
    ([("/", "Prefix")], "/anything", 0),
    ([("/foo", "Exact")], "/foo", 0),
    ([("/foo", "Exact")], "/bar", None),
    ([("/foo", "Exact")], "/foo/", None),
    ([("/foo/", "Exact")], "/foo", None),
    ([("/foo", "Prefix")], "/foo", 0),
    ([("/foo", "Prefix")], "/foo/", 0),
    ([("/foo/", "Prefix")], "/foo", 0),
    ([("/foo/", "Prefix")], "/foo/", 0),
    ([("/aaa/bb", "Prefix")], "/aaa/bbb", None),
    ([("/aaa/bbb", "Prefix")], "/aaa/bbb", 0),
    ([("/aaa/bbb/", "Prefix")], "/aaa/bbb", 0),
    ([("/aaa/bbb", "Prefix")], "/aaa/bbb/", 0),
    ([("/aaa/bbb", "Prefix")], "/aaa/bbb/ccc", 0),
    ([("/", "Prefix"), ("/aaa", "Prefix")], "/aaa/ccc", 1),
    ([("/aaa", "Prefix"), ("/", "Prefix")], "/aaa/ccc", 0),
    ([("/aaa", "Prefix"), ("/", "Prefix")], "/ccc", 1),
    ([("/aaa", "Prefix")], "/ccc", None),
    ([("/foo", "Prefix"), ("/foo", "Exact")], "/foo", 1),
    ([("/foo", "Exact"), ("/foo", "Prefix")], "/foo", 0),
    ([("/foo", "Exact"), ("/foo", "Prefix")], "/foo/", 1),
    ([("/foo", "Prefix"), ("/foo/", "Prefix")], "/foo", 1),
    ([("/foo/", "Prefix"), ("/foo", "Prefix")], "/foo/x", 0),
    ([("/foo", "ImplementationSpecific")], "/foo/x", 0),
    ([("/foo", "ImplementationSpecific")], "/foox", None),
    ([("/foo", "ImplementationSpecific"), ("/foo", "Prefix")], "/foo", 1),
    ([("/a", "Prefix"), ("/a/b", "Prefix"), ("/a/b/c", "Exact")], "/a/b/c", 2),
    ([("/a", "Prefix"), ("/a/b", "Prefix"), ("/a/b/c", "Exact")], "/a/b/c/d", 1),
    ([("/a", "Prefix"), ("/a/b", "Prefix"), ("/a/b/c", "Exact")], "/a/bc", 0),
    ([(None, "ImplementationSpecific")], "/whatever", 0),
]


@pytest.mark.parametrize(("rules", "path", "want"), DOCS_EXAMPLES)
def test_path_matching_examples(matcher: Any, rules: list[tuple[str, str]], path: str, want: int | None) -> None:
    ing = ingress("web", [("foo.com", [(p, t, f"s{i}") for i, (p, t) in enumerate(rules)])])
    got = svc(build(matcher, ing), "foo.com", path)
    assert got == (None if want is None else f"s{want}")


def test_paths_are_case_sensitive(matcher: Any) -> None:
    t = build(matcher, ingress("web", [(None, [("/Foo", "Prefix", "a")])]))
    assert svc(t, "", "/Foo/x") == "a"
    assert svc(t, "", "/foo/x") is None


# --- §4.1 hosts ---------------------------------------------------------------------------------


def test_host_normalisation(matcher: Any) -> None:
    t = build(matcher, ingress("web", [("foo.com", [("/", "Prefix", "a")])]))
    for host in ("foo.com", "FOO.com", "foo.com:8080", "foo.com.", "Foo.Com.:443"):
        assert svc(t, host, "/") == "a", host
    for host in ("bar.com", "x.foo.com", "[::1]", "[::1]:80", ""):
        assert svc(t, host, "/") is None, host
    # Two trailing dots are an empty label: a Host the proxy answers 400, and so does match.
    with pytest.raises(BadRequestError):
        svc(t, "foo.com..", "/")


def test_wildcard_covers_exactly_one_label(matcher: Any) -> None:
    t = build(matcher, ingress("web", [("*.foo.com", [("/", "Prefix", "w")])]))
    assert svc(t, "bar.foo.com", "/") == "w"
    assert svc(t, "BAR.foo.com:80", "/x") == "w"
    assert svc(t, "foo.com", "/") is None
    assert svc(t, "a.bar.foo.com", "/") is None
    assert svc(t, ".foo.com", "/") is None


def test_precise_host_beats_wildcard_beats_hostless_without_fall_through(matcher: Any) -> None:
    t = build(
        matcher,
        ingress("a", [("bar.foo.com", [("/exact-only", "Exact", "precise")])]),
        ingress("b", [("*.foo.com", [("/", "Prefix", "wild")])]),
        ingress("c", [(None, [("/", "Prefix", "any")])]),
    )
    assert svc(t, "bar.foo.com", "/exact-only") == "precise"
    # The precise group is chosen: its miss does not fall through to the wildcard or host-less rules.
    assert svc(t, "bar.foo.com", "/other") is None
    assert svc(t, "baz.foo.com", "/other") == "wild"
    assert svc(t, "foo.com", "/other") == "any"
    assert svc(t, "[::1]:8080", "/other") == "any"
    assert svc(t, "10.0.0.1", "/other") == "any"


def test_host_only_rule_selects_group_and_falls_to_default(matcher: Any) -> None:
    t = build(
        matcher,
        ingress("a", [("only.com", None)], default="fallback"),
        ingress("b", [(None, [("/", "Prefix", "any")])], created=T0),
    )
    m = t.match("only.com", "/x")
    assert m is not None and m.service == "fallback" and m.is_default_backend and m.host == "only.com"


# --- §4.3-§4.4 precedence and merging -----------------------------------------------------------


def test_identical_rules_oldest_wins_then_name_then_spec_order(matcher: Any) -> None:
    old = ingress("zzz", [("h.com", [("/p", "Prefix", "old")])], created=T0)
    new = ingress("aaa", [("h.com", [("/p", "Prefix", "new")])], created=T0 + timedelta(seconds=1))
    t = build(matcher, new, old)
    assert svc(t, "h.com", "/p") == "old"
    assert any("shadowed" in d.message and d.object == "Ingress default/aaa" for d in t.diagnostics)
    # No timestamps: namespace/name decides.
    t = build(matcher, ingress("b", [("h.com", [("/p", "Prefix", "b")])]),
              ingress("a", [("h.com", [("/p", "Prefix", "a")])]))
    assert svc(t, "h.com", "/p") == "a"
    t = build(matcher, ingress("x", [("h.com", [("/p", "Prefix", "first"), ("/p", "Prefix", "second")])]))
    assert svc(t, "h.com", "/p") == "first"
    # A timestamp makes an object older than one without (files on disk are "not yet created").
    t = build(matcher, ingress("a", [("h.com", [("/p", "Prefix", "a")])]),
              ingress("z", [("h.com", [("/p", "Prefix", "z")])], created=T0))
    assert svc(t, "h.com", "/p") == "z"


def test_rules_merge_across_ingresses_and_namespaces(matcher: Any) -> None:
    t = build(
        matcher,
        ingress("a", [("h.com", [("/a", "Prefix", "a")])], namespace="one"),
        ingress("b", [("h.com", [("/a/b", "Prefix", "b")])], namespace="two"),
    )
    m = t.match("h.com", "/a/b/c")
    assert m is not None and (m.service, m.namespace, m.ingress) == ("b", "two", "two/b")
    m = t.match("h.com", "/a/x")
    assert m is not None and (m.service, m.namespace) == ("a", "one")


# --- §4.5 default backends ------------------------------------------------------------------------


def test_default_backend_of_oldest_ingress_in_host_group(matcher: Any) -> None:
    t = build(
        matcher,
        ingress("global", [], default="global", created=T0),
        ingress("h-old", [("h.com", [("/a", "Prefix", "a")])], default="h-old", created=T0 + timedelta(1)),
        ingress("h-new", [("h.com", [("/b", "Prefix", "b")])], default="h-new", created=T0 + timedelta(2)),
        ingress("other", [("o.com", [("/a", "Prefix", "a")])]),
    )
    assert svc(t, "h.com", "/zzz") == "h-old"
    # A group whose Ingresses have no defaultBackend: the oldest served Ingress's one.
    assert svc(t, "o.com", "/zzz") == "global"
    # No group at all.
    m = t.match("nowhere.com", "/")
    assert m is not None and m.service == "global" and m.is_default_backend and m.host is None


def test_no_rule_no_default_is_none(matcher: Any) -> None:
    t = build(matcher, ingress("a", [("h.com", [("/a", "Exact", "a")])]))
    assert t.match("h.com", "/b") is None
    assert t.match("x.com", "/a") is None


def test_match_fields(matcher: Any) -> None:
    t = build(matcher, ingress("web", [("h.com", [("/api/", "Prefix", "api")])], namespace="prod"))
    m = t.match("h.com", "/api/v1?x=1")
    assert m is not None
    assert (m.service, m.port, m.namespace, m.ingress, m.host, m.path, m.path_type, m.is_default_backend) == (
        "api", 80, "prod", "prod/web", "h.com", "/api/", "Prefix", False)
    # Prebuilt: the same object for every lookup of the same route.
    assert t.match("h.com", "/api/v2") is m


# --- §3 ingress classes ------------------------------------------------------------------------------


def test_ingress_classes(matcher: Any) -> None:
    ings = (
        ingress("named", [("a.com", [("/", "Prefix", "named")])], cls="nginx"),
        ingress("legacy", [("b.com", [("/", "Prefix", "legacy")])],
                annotations={"kubernetes.io/ingress.class": "nginx"}),
        ingress("other", [("c.com", [("/", "Prefix", "other")])], cls="other"),
        ingress("missing", [("d.com", [("/", "Prefix", "missing")])], cls="nope"),
        ingress("none", [("e.com", [("/", "Prefix", "none")])]),
    )
    classes = (klass("nginx", "k8s.io/ingress-nginx", default=True), klass("other", "example.com/other"))
    everything = build(matcher, *ings, classes=classes)
    assert {svc(everything, h, "/") for h in ("a.com", "b.com", "c.com", "d.com", "e.com")} == {
        "named", "legacy", "other", "missing", "none"}
    by_name = build(matcher, *ings, classes=classes, ingress_class="nginx")
    assert [svc(by_name, h, "/") for h in ("a.com", "b.com", "c.com", "d.com", "e.com")] == [
        "named", "legacy", None, None, "none"]
    by_controller = build(matcher, *ings, classes=classes, controller="example.com/other")
    assert [svc(by_controller, h, "/") for h in ("a.com", "b.com", "c.com", "d.com", "e.com")] == [
        None, None, "other", None, None]
    # Class filter naming a class that does not exist serves nothing.
    nothing = build(matcher, *ings, classes=classes, ingress_class="ghost")
    assert nothing.routes == ()


def test_default_class_annotation_must_be_exactly_true(matcher: Any) -> None:
    c = IngressClass(ObjectMeta(name="x", annotations=MappingProxyType(
        {"ingressclass.kubernetes.io/is-default-class": "True"})), IngressClassSpec(controller="a.io/b"))
    t = build(matcher, ingress("none", [("e.com", [("/", "Prefix", "none")])]), classes=(c,), ingress_class="x")
    assert t.match("e.com", "/") is None


# --- canary pairing (the table's part of SEMANTICS §7) --------------------------------------------------

CANARY = {"nginx.ingress.kubernetes.io/canary": "true"}


def test_canary_pairs_with_same_host_path_type(matcher: Any) -> None:
    t = build(
        matcher,
        ingress("main", [("h.com", [("/a", "Prefix", "main"), ("/b", "Prefix", "main-b")])]),
        ingress("can", [("h.com", [("/a", "Prefix", "canary"), ("/b", "Exact", "canary-b"),
                                   ("/c", "Prefix", "canary-c")])], annotations=CANARY),
    )
    m = t.match("h.com", "/a/x")
    assert m is not None and m.service == "main" and m.canary is not None and m.canary.service == "canary"
    assert m.canary.is_canary and not m.is_canary
    m = t.match("h.com", "/b")
    assert m is not None and m.canary is None  # pathType differs: not the same rule
    assert t.match("h.com", "/c") is None  # a canary never serves as a main rule
    msgs = [d.message for d in t.diagnostics if d.object == "Ingress default/can"]
    assert len([x for x in msgs if "matches no main rule" in x]) == 2


@pytest.mark.parametrize(("value", "canary"), [
    ("true", True), ("True", True), ("TRUE", True), ("1", True), ("t", True),
    ("false", False), ("0", False), (" true", False), ("yes", False), ("", False)])
def test_canary_flag_reads_as_go_parse_bool(matcher: Any, value: str, canary: bool) -> None:
    # ingress-nginx canary/main.go: parser.GetBoolAnnotation -> strconv.ParseBool of the raw
    # value; an invalid one is an error there and the Ingress is an ordinary one.
    t = build(
        matcher,
        ingress("main", [("h.com", [("/a", "Prefix", "main")])]),
        ingress("other", [("h.com", [("/a", "Prefix", "other")])],
                annotations={"nginx.ingress.kubernetes.io/canary": value}),
    )
    m = t.match("h.com", "/a")
    assert m is not None and m.service == "main"
    if canary:
        assert m.canary is not None and m.canary.service == "other" and m.canary.is_canary
    else:  # an ordinary Ingress with the same rule: shadowed by the older one, no canary
        assert m.canary is None
        assert any(d.object == "Ingress default/other" and "shadowed" in d.message
                   for d in t.diagnostics)


# --- build internals: the fast Match constructor, route ids, diagnostics order, GC pause ----------


def test_fast_match_constructor_makes_ordinary_matches() -> None:
    values = [object() for _ in dataclasses.fields(Match)]
    fast, slow = _new_match(*values), Match(*values)  # type: ignore[arg-type]
    assert type(fast) is Match
    for f in dataclasses.fields(Match):  # every slot filled, with the value given for it
        assert getattr(fast, f.name) is getattr(slow, f.name), f.name
    assert repr(fast) == repr(slow)
    assert fast == fast and fast != slow  # eq=False: identity, like any Match
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.service = "other"  # type: ignore[misc]
    assert dataclasses.replace(fast, route_id=7).route_id == 7


def test_route_ids_follow_build_order(matcher: Any) -> None:
    t = build(
        matcher,
        ingress("main", [("a.com", [("/p", "Prefix", "pa"), ("/e", "Exact", "ea")]),
                         ("b.com", [("/q", "Prefix", "qb")])], default="d", created=T0),
        ingress("can", [("a.com", [("/p", "Prefix", "canary")])], annotations=CANARY,
                created=T0 + timedelta(days=1)),
    )
    # Canaries first, then the global default, then per host its Exact rules, Prefix rules and
    # default backend.
    pa = t.match("a.com", "/p")
    assert pa is not None and pa.canary is not None
    want = [pa.canary, t.default, t.match("a.com", "/e"), pa, t.match("a.com", "/nothing"),
            t.match("b.com", "/q"), t.match("b.com", "/nothing")]
    assert [m.route_id if m is not None else None for m in want] == list(range(7))
    assert sorted(m.route_id for m in t.routes) == list(range(1, 7))


def test_diagnostics_in_the_order_rules_are_met(matcher: Any) -> None:
    t = build(matcher, ingress("x", [("h.com", [
        ("/p", "Prefix", "s1"),
        ("/p", "Prefix", "s2"),  # shadowed by paths[0] (spec order)
        ("/a/../..", "Prefix", "s3"),  # never matches
        ("/p/", "Prefix", "s4"),  # beats paths[0]: "Prefix /foo/ beats Prefix /foo"
        ("/p", "ImplementationSpecific", "s5"),  # loses to paths[3]
    ])]))
    assert [(d.field, d.message.split(" on host")[0]) for d in t.diagnostics] == [
        ("spec.rules[0].http.paths[1]", "Prefix '/p'"),
        ("spec.rules[0].http.paths[2].path", "'/a/../..' can never match a request: '..' above the root: '/a/../..'"),
        ("spec.rules[0].http.paths[0]", "Prefix '/p'"),
        ("spec.rules[0].http.paths[4]", "ImplementationSpecific '/p'"),
    ]
    assert "shadowed by Ingress default/x spec.rules[0].http.paths[3]" in t.diagnostics[2].message
    assert svc(t, "h.com", "/p") == "s4"


@pytest.mark.parametrize("enabled", [True, False])
def test_build_pauses_the_gc_and_restores_it(enabled: bool) -> None:
    seen: list[bool] = []

    def matcher_class(groups: Any, default: Any) -> Any:
        seen.append(gc.isenabled())
        raise RuntimeError("boom")

    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        with pytest.raises(RuntimeError):
            build(matcher_class, ingress("x", [("h.com", [("/p", "Prefix", "s")])]))
        assert seen == [False]
        assert gc.isenabled() is enabled  # restored, exception or not
    finally:
        (gc.enable if was else gc.disable)()


# --- §5 through the table ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/a/../../x", "/a%2fb", "/a#b", "a", "/%zz", "/a/..;/b", "/a\\b"])
def test_hostile_paths_raise(matcher: Any, path: str) -> None:
    t = build(matcher, ingress("web", [(None, [("/", "Prefix", "a")])]))
    with pytest.raises(BadRequestError) as exc:
        t.match("h.com", path)
    assert exc.value.status_hint == 400


@pytest.mark.parametrize(("path", "want"), [
    ("/admin", "admin"), ("/%61dmin", "admin"), ("/x/../admin", "admin"), ("//admin", "admin"),
    ("/./admin/", "admin"), ("/public/%2e%2e/admin", "admin"), ("/public/x", "public"),
])
def test_routes_on_canonical_path(matcher: Any, path: str, want: str) -> None:
    t = build(matcher, ingress("web", [(None, [("/admin", "Prefix", "admin"), ("/public", "Prefix", "public")])]))
    assert svc(t, "", path) == want


def test_rule_paths_are_canonicalised(matcher: Any) -> None:
    t = build(matcher, ingress("web", [(None, [("/caf\u00e9", "Prefix", "cafe"), ("/%7euser", "Exact", "user")])]))
    assert svc(t, "", "/caf%C3%A9/menu") == "cafe"
    assert svc(t, "", "/caf%c3%a9") == "cafe"
    assert svc(t, "", "/~user") == "user"


# --- differential: table == brute-force oracle ------------------------------------------------------

SEGMENTS = ["a", "b", "ab", "api", "v1"]
HOSTS = [None, "a.com", "b.a.com", "*.a.com", "x.b.a.com", "*.b.a.com"]

seg_paths = st.lists(st.sampled_from(SEGMENTS), min_size=0, max_size=3).map(lambda s: "/" + "/".join(s))
rule_paths = st.tuples(seg_paths, st.booleans()).map(lambda t: t[0] + "/" if t[1] and t[0] != "/" else t[0])
ptypes = st.sampled_from(["Exact", "Prefix", "ImplementationSpecific"])


# What ``ingresses`` draws from, made once (a strategy made inside a composite is made and
# validated again at every draw, which cost as much as the test's own work): same arguments,
# same examples.
_N_INGRESSES = st.integers(1, 5)
_N_RULES = st.integers(0, 3)
_HOST = st.sampled_from(HOSTS)
_PATHS = st.none() | st.lists(st.tuples(rule_paths, ptypes, st.sampled_from(["s1", "s2", "s3"])),
                              min_size=1, max_size=4)
_DEFAULT = st.none() | st.sampled_from(["d1", "d2"])
_CREATED = st.none() | st.integers(0, 3).map(lambda d: T0 + timedelta(days=d))
_NAMESPACE = st.sampled_from(["ns1", "ns2"])


@st.composite
def ingresses(draw: st.DrawFn) -> list[Any]:
    out = []
    for i in range(draw(_N_INGRESSES)):
        rules = []
        for _ in range(draw(_N_RULES)):
            host = draw(_HOST)
            paths = draw(_PATHS)
            rules.append((host, paths))
        default = draw(_DEFAULT)
        if not rules and default is None:
            default = "d0"
        created = draw(_CREATED)
        canary = draw(st.booleans()) if i > 0 else False
        out.append(ingress(f"ing{i}", rules, namespace=draw(_NAMESPACE), default=default,
                           created=created, annotations=CANARY if canary else None))
    return out


request_hosts = st.sampled_from(["a.com", "b.a.com", "c.a.com", "x.b.a.com", "y.x.b.a.com", "A.COM:80",
                                 "b.a.com.", "[::1]", "", "other.org", "c.b.a.com"])
request_paths = st.one_of(
    seg_paths,
    rule_paths,
    st.lists(st.sampled_from(SEGMENTS + ["..", ".", "", "%61", "%2e", "%2F", "x;y", "..;"]), max_size=5).map(
        lambda s: "/" + "/".join(s)),
    st.text(max_size=12),
)


@given(ings=ingresses(), requests=st.lists(st.tuples(request_hosts, request_paths), min_size=1, max_size=20))
def test_table_agrees_with_oracle(ings: list[Any], requests: list[tuple[str, str]]) -> None:
    res = Resources(ingresses=tuple(ings))
    tables = [RouteTable.build(res, matcher_class=p.values[0]) for p in MATCHERS if p.values[0] is not None]
    for host, path in requests:
        try:
            want = oracle(res, host, path)
        except BadRequestError:
            for t in tables:
                with pytest.raises(BadRequestError):
                    t.match(host, path)
            continue
        for t in tables:
            note(f"{t.matcher}: {host!r} {path!r}")
            assert actual(t.match(host, path)) == want


class TableMachine(RuleBasedStateMachine):
    """Add and remove Ingresses, rebuild, query: the table always agrees with the oracle."""

    def __init__(self) -> None:
        super().__init__()
        self.ings: dict[str, Any] = {}
        self.counter = 0
        #: The tables ``agrees`` last checked: a step that changed nothing (``remove`` with
        #: nothing to remove) leaves the very same tables, whose check would only repeat.
        self.checked: list[Any] | None = None

    @initialize()
    def start(self) -> None:
        self.rebuild()

    def rebuild(self) -> None:
        self.res = Resources(ingresses=tuple(self.ings.values()))
        self.tables = [RouteTable.build(self.res, matcher_class=p.values[0]) for p in MATCHERS
                       if p.values[0] is not None]

    @rule(host=st.sampled_from(HOSTS), paths=st.lists(st.tuples(rule_paths, ptypes, st.just("s")), min_size=1,
                                                       max_size=3), default=st.booleans())
    def add(self, host: str | None, paths: list[tuple[str, str, str]], default: bool) -> None:
        self.counter += 1
        name = f"i{self.counter}"
        self.ings[name] = ingress(name, [(host, [(p, t, f"{name}-{j}") for j, (p, t, _) in enumerate(paths)])],
                                  default=f"{name}-d" if default else None)
        self.rebuild()

    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        if self.ings:
            del self.ings[data.draw(st.sampled_from(sorted(self.ings)))]
            self.rebuild()

    @invariant()
    def agrees(self) -> None:
        if self.checked is self.tables:
            return
        self.checked = self.tables
        for host in ["a.com", "b.a.com", "c.a.com", "nowhere"]:
            for path in ["/", "/a", "/a/", "/a/b", "/ab", "/api/v1", "/b/ab/"]:
                want = oracle(self.res, host, path)
                for t in self.tables:
                    assert actual(t.match(host, path)) == want


# Half the profile's runs (each a whole add/remove/rebuild history): the suite's slowest test
# (session 24: ~20 s under the ci profile on a slow day).
TableMachine.TestCase.settings = settings(max_examples=examples(0.5))
TestTableMachine = TableMachine.TestCase


def test_a_rule_path_longer_than_the_compiled_tree_holds_is_still_served() -> None:
    # The compiled matcher takes rule paths of up to 64 KiB; a longer one is valid in a
    # manifest, so the table falls back to the pure twin instead of refusing or misrouting.
    from ingresslib import parse_manifests

    long_path = "/" + "a" * 70_000
    res = parse_manifests(f"""
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: web}}
spec:
  rules:
  - host: foo.example
    http:
      paths:
      - {{path: "{long_path}", pathType: Prefix, backend: {{service: {{name: long, port: {{number: 80}}}}}}}}
      - {{path: /b, pathType: Prefix, backend: {{service: {{name: short, port: {{number: 80}}}}}}}}
""")
    table = RouteTable.build(res)
    assert table.matcher == "python"
    m = table.match("foo.example", long_path + "/x")
    assert m is not None and m.service == "long"
    short = table.match("foo.example", "/b/c")
    assert short is not None and short.service == "short"
    assert table.match("foo.example", long_path[:-1]) is None
