"""Session 17 adversarial review of the route table and matcher (SEMANTICS §3-§5).

The inputs the older differential tests never generate: hosts with ports and trailing dots,
upper case, IPv6 literals, userinfo, non-ASCII and very long hosts; paths with ``;`` params,
escaped dots, ``//``, dot segments; rules ``/`` and ``/a/`` beside ``/a``, Exact vs Prefix on
one path across Ingresses; class selection, merged default backends, diagnostics, rebuilds.
Every test runs against both matchers (compiled and pure twin) through the ``matcher``
fixture, or builds one table per loaded matcher and compares them.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from ingresslib._errors import BadRequestError

from ingresslib._resources import Resources
from ingresslib._table import RouteTable

from _matchers import MATCHER_PARAMS, built_classes, required
from _table_oracle import actual, ingress, oracle
from test_table import build, klass, svc

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
CANARY = {"nginx.ingress.kubernetes.io/canary": "true"}


@pytest.fixture(params=MATCHER_PARAMS)
def matcher(request: pytest.FixtureRequest) -> Any:
    return required(request.param)




# --- §4.1 hosts ---------------------------------------------------------------------------------

#: A host ``match`` refuses (BadRequestError, 400) in the table below.
REFUSED = "400"

HOST_TABLE = (
    ingress("exact", [("foo.com", [("/", "Prefix", "exact")]), ("k8s.io", [("/", "Prefix", "k8s")])]),
    ingress("wild", [("*.foo.com", [("/", "Prefix", "wild")])]),
    ingress("any", [(None, [("/", "Prefix", "any")])]),
)


@pytest.mark.parametrize(("host", "want"), [
    ("foo.com", "exact"),
    ("FOO.COM.:8080", "exact"),         # lower-case, port, one trailing dot
    # A Host the proxy answers 400 (SEMANTICS §9 "bad Host values", nginx's
    # ngx_http_validate_host) is refused by match too (session 34): REFUSED.
    ("foo.com:", REFUSED),              # an empty port
    ("foo.com:80:90", REFUSED),         # a port that is no number
    ("foo.com..", REFUSED),             # one trailing dot only; two: an empty label
    ("x.foo.com", "wild"),
    ("X.FOO.COM.:443", "wild"),         # normalised, then the wildcard
    ("*.foo.com", "wild"),              # a literal "*" is one label like any other
    ("a.x.foo.com", "any"),             # "*." covers exactly one label
    (".foo.com", "any"),                # an empty first label is no label
    ("foo.com.x", "any"),
    ("[::1]", "any"),                   # IPv6 literals never equal a rule host
    ("[::1]:80", "any"),
    ("[foo.com]", REFUSED),
    ("[::1", REFUSED),
    ("user@foo.com", REFUSED),          # userinfo is not stripped: refused, as by the proxy
    ("\u212a8s.io", REFUSED),           # Kelvin sign: never "k" (RFC 4343): non-ASCII, refused
    ("\uff46oo.com", REFUSED),          # full-width f
    ("x" * 300 + ".foo.com", "wild"),   # longer than the compiled host buffer
    ("a." + "b" * 300 + ".foo.com", "any"),
    ("foo.com\x00", REFUSED),
    ("", "any"),
])
def test_host_forms_pick_the_group_the_spec_names(matcher: Any, host: str, want: str) -> None:
    t = build(matcher, *HOST_TABLE)
    if want == REFUSED:
        with pytest.raises(BadRequestError, match="Host header"):
            t.match(host, "/x")
    else:
        assert svc(t, host, "/x") == want


def test_no_host_less_rules_means_no_group_and_the_global_default(matcher: Any) -> None:
    t = build(matcher, ingress("a", [("foo.com", [("/a", "Prefix", "a")])], default="d", created=T0))
    m = t.match("[::1]:80", "/a")
    assert m is not None and m.is_default_backend and m.host is None and m.service == "d"
    # The precise group's own miss answers with the same Ingress's default, for that host.
    m = t.match("FOO.com.", "/b")
    assert m is not None and m.is_default_backend and m.host == "foo.com"


# --- §4.2 / §5 paths ----------------------------------------------------------------------------

PATH_TABLE = (ingress("p", [(None, [
    ("/", "Prefix", "root"),
    ("/a", "Prefix", "a"),
    ("/a/b", "Exact", "a-b-exact"),
    ("/a;x", "Prefix", "a-params"),
    ("/caf\u00e9", "Prefix", "cafe"),
    ("/a b", "Exact", "space"),
])]),)


@pytest.mark.parametrize(("path", "want"), [
    ("/a", "a"),
    ("/a/", "a"),
    ("/a;x", "a-params"),               # ";" params are part of the segment
    ("/a;x/y", "a-params"),
    ("/a;y", "root"),
    ("/a/b;x", "a"),
    ("/ab", "root"),
    ("//a//b", "a-b-exact"),            # "//" merged
    ("/x/../a/./b", "a-b-exact"),       # dot segments removed
    ("/%61/%62", "a-b-exact"),          # unreserved escapes decoded
    ("/a/%2e/b", "a-b-exact"),
    ("/a/%2E%2E/a/b", "a-b-exact"),
    ("/a/b/", "a"),                     # Exact: a trailing slash counts
    ("/a/b?x=/../..#", BadRequestError),  # "#" anywhere, the query included
    ("/a/b?x=/../..", "a-b-exact"),     # the query is never touched
    ("?q", "root"),                     # "" means "/"
    ("", "root"),
    ("/caf%c3%a9", "cafe"),             # a raw rule character matches its escape
    ("/caf%C3%A9/x", "cafe"),
    ("/caf\u00e9", BadRequestError),    # a raw request path is pchar only
    ("/a%20b", "space"),
    ("/a%2fb", BadRequestError),
    ("/a%5Cb", BadRequestError),
    ("/a/%00", BadRequestError),
    ("/a/%C3", BadRequestError),        # not UTF-8 once decoded
    ("/a/%c0%ae", BadRequestError),     # an overlong ".": not UTF-8
    ("/a/..;/b", BadRequestError),
    ("/a/%2e%2e;x/b", BadRequestError),  # decoded to "..;x"
    ("/..", BadRequestError),
    ("/a/../..", BadRequestError),
    ("/a/%252e%252e/b", "a"),           # never decoded twice
    ("http://foo.com/a", BadRequestError),  # absolute-form is the proxy's to reduce
    ("*", BadRequestError),
])
def test_paths_route_on_their_canonical_form(matcher: Any, path: str, want: Any) -> None:
    t = build(matcher, *PATH_TABLE)
    for host in ("", "foo.com", "FOO.com.:80", "[::1]"):
        if want is BadRequestError:
            with pytest.raises(BadRequestError) as info:
                t.match(host, path)
            assert info.value.status_hint == 400
        else:
            assert svc(t, host, path) == want, (host, path)


def test_rules_root_and_trailing_slash_beside_a_across_ingresses(matcher: Any) -> None:
    t = build(
        matcher,
        ingress("old", [("h.com", [("/", "Prefix", "root"), ("/a", "Prefix", "a")])], created=T0),
        ingress("mid", [("h.com", [("/a/", "Prefix", "a-slash")])], created=T0 + timedelta(days=1)),
        ingress("new", [("h.com", [("/a", "Exact", "a-exact"), ("/a/", "Exact", "a-slash-exact")])],
                created=T0 + timedelta(days=2)),
    )
    # Exact beats Prefix at equal length, whichever Ingress is older.
    assert svc(t, "h.com", "/a") == "a-exact"
    assert svc(t, "h.com", "/a/") == "a-slash-exact"
    # "Prefix /foo/ beats Prefix /foo", even from a newer Ingress.
    assert svc(t, "h.com", "/a/x") == "a-slash"
    assert svc(t, "h.com", "/ax") == "root"
    shadowed = [(d.object, d.field) for d in t.diagnostics]
    assert shadowed == [("Ingress default/old", "spec.rules[0].http.paths[1]")]


def test_exact_and_prefix_on_one_path_are_both_live(matcher: Any) -> None:
    # Not a shadow: the Prefix rule still answers "/a/..." (no false positive).
    t = build(matcher,
              ingress("x", [("h.com", [("/a", "Prefix", "p")])], created=T0),
              ingress("y", [("h.com", [("/a", "Exact", "e")])], created=T0))
    assert t.diagnostics == ()
    assert (svc(t, "h.com", "/a"), svc(t, "h.com", "/a/b")) == ("e", "p")


@pytest.mark.parametrize(("first", "second"), [
    ("/a/b", "/a/./b"),
    ("/a~", "/a%7e"),
    ("/a~", "/a%7E"),
    ("/a%3b", "/a%3B"),
    ("/a/b", "/a//b"),
    ("/caf\u00e9", "/caf%C3%A9"),
])
def test_rule_paths_equal_once_canonical_are_duplicates(matcher: Any, first: str, second: str) -> None:
    t = build(matcher, ingress("x", [("h.com", [(first, "ImplementationSpecific", "one"),
                                               (second, "ImplementationSpecific", "two")])]))
    notes = [d for d in t.diagnostics if not d.field.endswith(".path")]
    assert [d.field for d in notes] == ["spec.rules[0].http.paths[1]"]
    assert "is shadowed by Ingress default/x spec.rules[0].http.paths[0]" in notes[0].message
    # Session 25: a rule path standing for another path (dot segments, "//") is said as well;
    # one only spelt differently is not.
    said = [d.field for d in t.diagnostics if d.field.endswith(".path")]
    assert said == (["spec.rules[0].http.paths[1].path"] if second in ("/a/./b", "/a//b") else [])


# --- §3 classes -----------------------------------------------------------------------------------


def test_class_selection_with_name_and_controller(matcher: Any) -> None:
    ings = (
        ingress("legacy", [("a.com", [("/", "Prefix", "legacy")])],
                annotations={"kubernetes.io/ingress.class": "nginx"}),
        ingress("spec-wins", [("b.com", [("/", "Prefix", "spec")])], cls="nginx",
                annotations={"kubernetes.io/ingress.class": "other"}),
        ingress("ghost", [("c.com", [("/", "Prefix", "ghost")])], cls="ghost"),
        ingress("none", [("d.com", [("/", "Prefix", "none")])]),
    )
    classes = (klass("nginx", "k8s.io/ingress-nginx"), klass("other", "example.com/other", default=True))
    hosts = ("a.com", "b.com", "c.com", "d.com")
    both = build(matcher, *ings, classes=classes, ingress_class="nginx", controller="k8s.io/ingress-nginx")
    assert [svc(both, h, "/") for h in hosts] == ["legacy", "spec", None, None]
    # Name and controller must both match: nothing is served.
    crossed = build(matcher, *ings, classes=classes, ingress_class="nginx", controller="example.com/other")
    assert crossed.served == ()
    # The default class serves the class-less Ingress only under a filter it matches.
    other = build(matcher, *ings, classes=classes, controller="example.com/other")
    assert [svc(other, h, "/") for h in hosts] == [None, None, None, "none"]
    why = {d.object: d.message for d in other.diagnostics}
    assert "is not among the objects given" in why["Ingress default/ghost"]
    assert "does not match this controller" in why["Ingress default/legacy"]


# --- §4.5 default backends ------------------------------------------------------------------------


def test_default_backends_merged_across_ingresses_and_namespaces(matcher: Any) -> None:
    t = build(
        matcher,
        # Same instant: namespace/name breaks the tie ("a-ns/z" before "b-ns/a").
        ingress("a", [("h.com", [("/x", "Prefix", "x")])], namespace="b-ns", default="b-default", created=T0),
        ingress("z", [("other.com", [("/y", "Prefix", "y")])], namespace="a-ns", default="a-default",
                created=T0),
        ingress("late", [("h.com", [("/z", "Prefix", "z")])], default="late-default",
                created=T0 + timedelta(days=1)),
        ingress("no-stamp", [("n.com", [("/", "Exact", "n")])]),
    )
    # h.com: the oldest Ingress with rules there that has a default.
    assert svc(t, "h.com", "/nothing") == "b-default"
    assert svc(t, "other.com", "/nothing") == "a-default"
    # n.com's only Ingress has no default: the oldest served Ingress's.
    assert svc(t, "n.com", "/nothing") == "a-default"
    assert svc(t, "unknown.org", "/") == "a-default"
    never = [d for d in t.diagnostics if d.field == "spec.defaultBackend"]
    assert [d.object for d in never] == ["Ingress default/late"]
    assert "b-ns/a" in never[0].message


def test_a_canary_ingress_is_no_owner_of_a_default(matcher: Any) -> None:
    t = build(matcher,
              ingress("canary", [("h.com", [("/", "Prefix", "c")])], default="canary-default",
                      annotations=CANARY, created=T0),
              ingress("main", [("h.com", [("/", "Prefix", "m")])], created=T0 + timedelta(days=1)))
    m = t.match("h.com", "/x")
    assert m is not None and m.service == "m" and m.canary is not None and m.canary.service == "c"
    assert t.match("other.com", "/") is None


# --- differential: compiled == twin == oracle, on the inputs the older strategies skip ----------

_RULE_SEGMENTS = ["a", "b", "ab", "A", "a;x", ";x", "~a", "%7Ea", "a%20b", "a b", "caf\u00e9",
                  "caf%C3%A9", ".well-known", "..b", "a.", "x:y", "@"]
_RULE_HOSTS = [None, "foo.com", "*.foo.com", "x.foo.com", "*.x.foo.com", "bar.org"]
_REQUEST_SEGMENTS = _RULE_SEGMENTS + ["", ".", "..", "%2e", "%2E%2e", "..;", ".;", "%2f", "%5c", "%00",
                                      "%", "%g1", "%c3%a9", "%C3", "%252e", "%41", "a?b", "?q", "\u00e9"]
_REQUEST_HOSTS = ["foo.com", "FOO.COM", "foo.com.", "foo.com:80", "Foo.Com.:8080", "x.foo.com",
                  "y.x.foo.com", "z.y.x.foo.com", ".foo.com", "[::1]", "[::1]:80", "user@foo.com",
                  "foo.com..", "", "*.foo.com", "X.FOO.COM.", "bar.org", "BAR.ORG.:1", "x" * 300,
                  "x" * 300 + ".foo.com", "foo.com:abc", "_.foo.com"]

_rule_path = st.tuples(st.lists(st.sampled_from(_RULE_SEGMENTS), max_size=3), st.booleans()).map(
    lambda t: "/" + "/".join(t[0]) + ("/" if t[1] and t[0] else ""))


# What ``_ingresses`` draws from, made once (a strategy made inside a composite is made and
# validated again at every draw): same arguments, same examples.
_N_INGRESSES = st.integers(1, 4)
_N_RULES = st.integers(0, 3)
_PATHS = st.none() | st.lists(st.tuples(
    _rule_path, st.sampled_from(["Exact", "Prefix", "ImplementationSpecific"]),
    st.sampled_from(["s1", "s2"])), min_size=1, max_size=4)
_RULE_HOST = st.sampled_from(_RULE_HOSTS)
_DEFAULT = st.none() | st.sampled_from(["d1", "d2"])
_NAMESPACE = st.sampled_from(["n1", "n2"])
_CREATED = st.none() | st.sampled_from([T0, T0 + timedelta(days=1)])


@st.composite
def _ingresses(draw: st.DrawFn) -> list[Any]:
    out = []
    for i in range(draw(_N_INGRESSES)):
        rules = []
        for _ in range(draw(_N_RULES)):
            paths = draw(_PATHS)
            rules.append((draw(_RULE_HOST), paths))
        default = draw(_DEFAULT)
        if not rules and default is None:
            default = "d0"
        out.append(ingress(f"i{i}", rules, namespace=draw(_NAMESPACE), default=default,
                           created=draw(_CREATED),
                           annotations=CANARY if i and draw(st.booleans()) else None))
    return out


_request_path = st.lists(st.sampled_from(_REQUEST_SEGMENTS), max_size=5).map(lambda s: "/" + "/".join(s))


def _expected(res: Resources, host: str, path: str) -> Any:
    # tests/_table_oracle.py cuts the query before looking for "#"; SEMANTICS §5 rejects "#"
    # anywhere in the target (and both matchers do).
    if "#" in path:
        raise BadRequestError("'#' in request target", 400)
    return oracle(res, host, path)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(ings=_ingresses(), requests=st.lists(st.tuples(st.sampled_from(_REQUEST_HOSTS), _request_path),
                                             min_size=1, max_size=25))
def test_adversarial_inputs_agree_with_the_oracle(ings: list[Any], requests: list[tuple[str, str]]) -> None:
    res = Resources(ingresses=tuple(ings))
    tables = [RouteTable.build(res, matcher_class=c) for c in built_classes()]
    for host, path in requests:
        note(f"{host!r} {path!r}")
        try:
            want = _expected(res, host, path)
        except BadRequestError:
            for t in tables:
                with pytest.raises(BadRequestError):
                    t.match(host, path)
            continue
        for t in tables:
            assert actual(t.match(host, path)) == want, t.matcher


_FUZZ_TABLE = Resources(ingresses=(
    ingress("f", [("foo.com", [("/a", "Prefix", "a"), ("/a/b", "Exact", "b"), ("/", "Prefix", "r")]),
                  ("*.foo.com", [("/x", "Prefix", "w")]), (None, [("/h", "Prefix", "h")])], default="d"),))


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(host=st.text(max_size=40) | st.from_regex(r"[A-Za-z0-9.:\[\]*@_-]{0,30}", fullmatch=True),
       path=st.text(max_size=40) | st.from_regex(r"/[a-zA-Z/.%0-9;?#~]{0,30}", fullmatch=True))
def test_match_raises_only_bad_request_and_both_matchers_agree(host: str, path: str) -> None:
    answers = []
    for cls in built_classes():
        t = RouteTable.build(_FUZZ_TABLE, matcher_class=cls)
        try:
            m = t.match(host, path)
        except BadRequestError as exc:
            assert exc.status_hint == 400
            answers.append("400")
        else:
            answers.append(None if m is None else (m.service, m.route_id))
    assert len(set(answers)) == 1, answers


# --- rebuilds ---------------------------------------------------------------------------------------


def test_a_rebuild_leaves_the_old_table_and_its_matches_alone(matcher: Any) -> None:
    one = ingress("one", [("h.com", [("/a", "Prefix", "old")])], default="d1", created=T0)
    old = build(matcher, one)
    before = old.match("h.com", "/a/x")
    new = build(matcher, one, ingress("two", [("h.com", [("/a/", "Prefix", "new")])],
                                      created=T0 + timedelta(days=1)))
    assert svc(new, "h.com", "/a/x") == "new"
    # The old table answers as before, with the very same Match object.
    assert old.match("h.com", "/a/x") is before and before is not None and before.service == "old"
    assert all(m is not before for m in new.routes)
    # Route ids are unique inside each table.
    for t in (old, new):
        ids = [m.route_id for m in t.routes]
        assert len(ids) == len(set(ids)) and -1 not in ids


# --- diagnostics: a default backend no request reaches ---------------------------------------


def test_the_oldest_default_hidden_by_host_less_rules_is_reported(matcher: Any) -> None:
    # A default-only "catch-all" Ingress and a newer one with host-less rules and a default of
    # its own: every host reaches the host-less group ("else the host-less rules"), whose misses
    # go to that group's own default. The catch-all answers nothing, and used to be reported
    # as nothing.
    t = build(matcher,
              ingress("catchall", [], default="catchall", created=T0),
              ingress("app", [(None, [("/api", "Prefix", "api")])], default="app-default",
                      created=T0 + timedelta(days=1)),
              ingress("named", [("h.com", [("/", "Exact", "h")])], default="named-default",
                      created=T0 + timedelta(days=2)))
    for host in ("", "x.com", "[::1]:80", "h.com"):
        m = t.match(host, "/nothing")
        assert m is not None and m.service != "catchall", host
    never = [(d.object, d.message) for d in t.diagnostics if d.field == "spec.defaultBackend"]
    assert never == [("Ingress default/catchall",
                      "never used: the host-less rules answer every host no rule names (their misses go to "
                      "the default backend of Ingress default/app), and every host with rules has a default "
                      "backend of its own")]


@pytest.mark.parametrize("ings", [
    # No host-less rules: hosts no rule names reach the oldest default.
    (ingress("catchall", [], default="catchall", created=T0),
     ingress("app", [("h.com", [("/api", "Prefix", "api")])], default="app-default", created=T0 + timedelta(days=1))),
    # Host-less rules without a default of their own fall back to the oldest default.
    (ingress("catchall", [], default="catchall", created=T0),
     ingress("app", [(None, [("/api", "Prefix", "api")])], created=T0 + timedelta(days=1))),
    # A host group without a default of its own does too.
    (ingress("catchall", [], default="catchall", created=T0),
     ingress("app", [(None, [("/api", "Prefix", "api")])], default="app-default", created=T0 + timedelta(days=1)),
     ingress("named", [("h.com", [("/", "Exact", "h")])], created=T0 + timedelta(days=2))),
], ids=["no-host-less-rules", "host-less-rules-without-default", "a-host-without-default"])
def test_an_oldest_default_some_request_reaches_is_not_reported(matcher: Any, ings: tuple[Any, ...]) -> None:
    t = build(matcher, *ings)
    assert [d for d in t.diagnostics if d.field == "spec.defaultBackend"] == []
    hosts = ("", "x.com", "h.com", "[::1]")
    assert "catchall" in {svc(t, h, "/nothing") for h in hosts}


def test_a_canary_whose_main_rule_lost_its_slot_is_not_called_unmatched(matcher: Any) -> None:
    # The canary names a main rule that exists (same host, path and pathType: Ingress "b"),
    # which lost its slot to an older Prefix rule of the same path: the canary is ignored, and
    # the report used to say it "matches no main rule".
    t = build(matcher,
              ingress("a", [("h.com", [("/a", "Prefix", "a")])], created=T0),
              ingress("b", [("h.com", [("/a", "ImplementationSpecific", "b")])], created=T0 + timedelta(days=1)),
              ingress("can", [("h.com", [("/a", "ImplementationSpecific", "c")])], annotations=CANARY))
    m = t.match("h.com", "/a")
    assert m is not None and m.service == "a" and m.canary is None
    msgs = {d.object: d.message for d in t.diagnostics}
    assert "is shadowed by Ingress default/a" in msgs["Ingress default/b"]
    assert msgs["Ingress default/can"] == (
        "canary ImplementationSpecific '/a' on host h.com: the main rule serving that path is Prefix '/a' "
        "(Ingress default/a spec.rules[0].http.paths[0]), not ImplementationSpecific; ignored")
