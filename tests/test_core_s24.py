"""Session 24, T1: RouteTable.match against a brute-force oracle written from SEMANTICS §3-§5.

The oracle below is written from the text of SEMANTICS.md §3 (served Ingresses), §4 (hosts,
paths, precedence, merging, default backends) and §5 (the canonical request path), plus the
choices README's "Routing semantics" table documents where SEMANTICS is silent (Prefix beats
ImplementationSpecific at the same path; no timestamp counts as newest; rule paths with
non-pchar characters are percent-encoded). It shares no code with ingresslib: it scans every
served rule for every request, compares rule and request paths element by element, and removes
dot segments with RFC 3986 §5.2.4's own buffer algorithm.
"""

from __future__ import annotations

import functools
import string
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingresslib import BadRequestError, Resources, RouteTable, ValidationError
from ingresslib import _match_py
from ingresslib._matcher import MATCHER

from _budget import examples
from _table_oracle import host_refused

try:
    from ingresslib import _match as _compiled
    _MATCHERS: list[Any] = [_match_py.Matcher, _compiled.Matcher]
except ImportError:  # pragma: no cover - the compiled matcher is built in this project
    _MATCHERS = [_match_py.Matcher]

# --- the oracle ------------------------------------------------------------------------------

_UNRESERVED = set(string.ascii_letters + string.digits + "-._~")
_PCHAR = _UNRESERVED | set("!$&'()*+,;=:@")
_HEX = set(string.hexdigits)


class Bad(Exception):
    """The oracle's 400."""


def o_canonical(path: str) -> str:
    """SEMANTICS §5, step by step."""
    if not path.startswith("/"):
        raise Bad("not origin-form")
    # "Path characters: RFC 3986 pchar and /; % must be followed by two hex digits."
    raw = bytearray()  # every escape decoded, to check UTF-8
    out: list[str] = []
    i = 0
    while i < len(path):
        c = path[i]
        if c == "%":
            h = path[i + 1:i + 3]
            if len(h) != 2 or not set(h) <= _HEX:
                raise Bad("bad escape")
            b = int(h, 16)
            raw.append(b)
            if chr(b) in _UNRESERVED:
                out.append(chr(b))  # decode unreserved once
            elif b in (0x2F, 0x5C) or b < 0x20 or b == 0x7F:
                raise Bad("forbidden escape")
            else:
                out.append("%" + h.upper())
            i += 3
            continue
        if c != "/" and c not in _PCHAR:
            raise Bad("bad char")
        raw += c.encode()
        out.append(c)
        i += 1
    try:
        bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise Bad("not utf-8") from None
    p = "".join(out)
    # "Merge //"
    while "//" in p:
        p = p.replace("//", "/")
    # RFC 3986 §5.2.4 with "'..' above root -> 400".
    inp, res = p, ""
    while inp:
        if inp.startswith("/./"):
            inp = inp[2:]
        elif inp == "/.":
            inp = "/"
        elif inp.startswith("/../") or inp == "/..":
            inp = "/" + inp[4:] if inp.startswith("/../") else "/"
            if not res:
                raise Bad("above root")
            res = res[:res.rfind("/")]
        else:
            j = inp.find("/", 1)
            seg, inp = (inp, "") if j < 0 else (inp[:j], inp[j:])
            # "..; -> 400" (and README: ".;" segments too)
            if seg.startswith("/..;") or seg.startswith("/.;"):
                raise Bad("dot segment with parameters")
            res += seg
    return res


@functools.lru_cache(maxsize=4096)
def o_rule_canonical(path: str) -> str | None:
    """README: a rule path is percent-encoded (UTF-8, upper hex) where it is not pchar, then
    canonicalised like a request; None when it can never match."""
    enc = []
    i = 0
    while i < len(path):
        c = path[i]
        if c == "%" and len(path[i + 1:i + 3]) == 2 and set(path[i + 1:i + 3]) <= _HEX:
            enc.append(path[i:i + 3])
            i += 3
            continue
        enc.append(c if c == "/" or c in _PCHAR else "".join(f"%{b:02X}" for b in c.encode()))
        i += 1
    try:
        return o_canonical("".join(enc))
    except Bad:
        return None


def o_host(host: str) -> str | None:
    """§4.1: lower-case (ASCII), strip :port, strip one trailing dot; IPv6 stays bracketed."""
    h = "".join(c.lower() if c in string.ascii_uppercase else c for c in host)
    if h.startswith("["):
        return h[: h.index("]") + 1] if "]" in h else h
    h = h.split(":", 1)[0]
    if h.endswith("."):
        h = h[:-1]
    return h or None


_TS = [None, datetime(2020, 1, 1, tzinfo=timezone.utc), datetime(2021, 1, 1, tzinfo=timezone.utc),
       datetime(2021, 1, 1, tzinfo=timezone.utc)]


def o_age(ing: dict[str, Any]) -> tuple[Any, ...]:
    ts = ing["metadata"].get("creationTimestamp")
    t = datetime.fromisoformat(ts.replace("Z", "+00:00")) if ts else None
    return (t is None, t or datetime.min.replace(tzinfo=timezone.utc), ing["metadata"]["namespace"],
            ing["metadata"]["name"])


def o_served(ings: list[dict[str, Any]], classes: list[dict[str, Any]], ingress_class: str | None,
             controller: str | None) -> list[dict[str, Any]]:
    """§3, oldest first; an object given twice counts once, as its later definition (README)."""
    out = sorted({_ref(i): i for i in ings}.values(), key=o_age)
    if ingress_class is None and controller is None:
        return out
    matching = [c for c in classes if (ingress_class is None or c["metadata"]["name"] == ingress_class)
                and (controller is None or c["spec"]["controller"] == controller)]
    names = {c["metadata"]["name"] for c in matching}
    default = any((c["metadata"].get("annotations") or {}).get(
        "ingressclass.kubernetes.io/is-default-class") == "true" for c in matching)
    served = []
    for ing in out:
        name = ing["spec"].get("ingressClassName") or (ing["metadata"].get("annotations") or {}).get(
            "kubernetes.io/ingress.class")
        if (name is None and default) or (name is not None and name in names):
            served.append(ing)
    return served


def _elements(p: str) -> list[str]:
    return p.split("/")[1:]


def o_match(served: list[dict[str, Any]], host: str, path: str) -> tuple[Any, ...] | None:
    """The route of (host, path), as a comparable tuple; raises Bad for a 400."""
    if host_refused(host):  # §4 "Host first"; §9 "bad Host values": 400, never a route
        raise Bad("invalid Host header")
    cpath = o_canonical(path)
    h = o_host(host)
    rule_hosts = {r.get("host") or None for ing in served for r in ing["spec"].get("rules") or []}
    if h is not None and h in rule_hosts:
        group: str | None = h
    elif h is not None and not h.startswith("[") and "." in h and h.index(".") > 0 and \
            "*." + h[h.index(".") + 1:] in rule_hosts:
        group = "*." + h[h.index(".") + 1:]
    elif None in rule_hosts:
        group = None
    else:
        group = "<none>"
    best: tuple[Any, ...] | None = None
    best_key: tuple[Any, ...] | None = None
    owners = []
    for order, ing in enumerate(served):
        for ri, rule in enumerate(ing["spec"].get("rules") or []):
            if (rule.get("host") or None) != group:
                continue
            if ing not in owners:
                owners.append(ing)
            for pi, p in enumerate((rule.get("http") or {}).get("paths") or []):
                rp = o_rule_canonical(p.get("path") or "/")
                if rp is None:
                    continue
                pt = p["pathType"]
                if pt == "Exact":
                    if rp != cpath:
                        continue
                    length, tie = len(rp), 0
                else:
                    stripped = rp.rstrip("/")
                    re_, qe = _elements(stripped), _elements(cpath)
                    if stripped and qe[: len(re_)] != re_:
                        continue
                    length = len(stripped)
                    # "Prefix /foo/ beats Prefix /foo"; README: Prefix beats IS at the same path.
                    tie = (0 if rp.endswith("/") and rp != "/" else 2) + (0 if pt == "Prefix" else 1) + 1
                key = (-length, tie, order, ri, pi)
                if best_key is None or key < best_key:
                    best_key = key
                    svc = p["backend"]["service"]
                    best = (_ref(ing), False, svc["name"], p.get("path"), pt, rule.get("host") or None)
    if best is not None:
        return best
    # §4.5
    for ing in owners:
        if ing["spec"].get("defaultBackend"):
            return (_ref(ing), True, ing["spec"]["defaultBackend"]["service"]["name"], None, None)
    for ing in served:
        if ing["spec"].get("defaultBackend"):
            return (_ref(ing), True, ing["spec"]["defaultBackend"]["service"]["name"], None, None)
    return None


def _ref(ing: dict[str, Any]) -> str:
    return f"{ing['metadata']['namespace']}/{ing['metadata']['name']}"


def _got(t: RouteTable, host: str, path: str) -> tuple[Any, ...] | None | str:
    try:
        m = t.match(host, path)
    except BadRequestError as exc:
        assert exc.status_hint == 400
        return "400"
    if m is None:
        return None
    if m.is_default_backend:
        return (m.ingress, True, m.service, m.path, m.path_type)
    return (m.ingress, False, m.service, m.path, m.path_type, m.host)


def _want(served: list[dict[str, Any]], host: str, path: str) -> tuple[Any, ...] | None | str:
    try:
        return o_match(served, host, path)
    except Bad:
        return "400"


# --- strategies ------------------------------------------------------------------------------

RULE_HOSTS = [None, "foo.com", "bar.foo.com", "*.foo.com", "a.bar.foo.com", "*.bar.foo.com", "x.org"]
RULE_SEGS = ["foo", "bar", "a", "foo.", "~", "%7e", "%7E", "caf%C3%A9", "café", ".well-known", "..bar",
             "x%3Fy", "x%3fy", "a b", "%41", "v1", "foo%2Ebar", "x;y"]
IS_EXTRA = ["", "/", "/foo//bar", "/foo/./", "/a/../b", "/..", "/a%2Fb", "/api/.*", "/foo/.", "/v[0-9]+",
            "/100%", "/foo/..;x"]


# The strategies the composites draw from, made once: one made inside a composite is made,
# validated and looked up in hypothesis's strategy cache at every draw, which cost more than the
# tests' own work. Same arguments, so the same examples.
_BOOL = st.booleans()
_IS_EXTRA = st.sampled_from(IS_EXTRA)
_RULE_SEGS = st.lists(st.sampled_from(RULE_SEGS), max_size=3)
_TS_S = st.sampled_from(_TS)
_CLS = st.sampled_from([None, None, "nginx", "other", "missing"])
_N_RULES = st.integers(0, 3)
_RULE_HOST = st.sampled_from(RULE_HOSTS)
_ONE_IN_5 = st.integers(0, 4)
_N_PATHS = st.integers(1, 3)
_PATH_TYPE = st.sampled_from(["Exact", "Prefix", "ImplementationSpecific"])


@st.composite
def rule_paths(draw: Any, path_type: str) -> str:
    if path_type == "ImplementationSpecific" and draw(_BOOL):
        extra: str = draw(_IS_EXTRA)
        return extra
    segs = draw(_RULE_SEGS)
    p = "/" + "/".join(segs)
    if segs and draw(_BOOL):
        p += "/"
    return p


_RULE_PATHS = {pt: rule_paths(pt) for pt in ("Exact", "Prefix", "ImplementationSpecific")}


@st.composite
def ingress_dicts(draw: Any, ns: str, name: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns}
    ts = draw(_TS_S)
    if ts is not None:
        meta["creationTimestamp"] = ts.strftime("%Y-%m-%dT%H:%M:%SZ")
    spec: dict[str, Any] = {}
    cls = draw(_CLS)
    if cls is not None:
        if draw(_BOOL):
            spec["ingressClassName"] = cls
        else:
            meta["annotations"] = {"kubernetes.io/ingress.class": cls}
    rules = []
    for ri in range(draw(_N_RULES)):
        rule: dict[str, Any] = {}
        host = draw(_RULE_HOST)
        if host is not None:
            rule["host"] = host
        if host is None or draw(_ONE_IN_5) > 0:
            paths = []
            for pi in range(draw(_N_PATHS)):
                pt = draw(_PATH_TYPE)
                paths.append({"path": draw(_RULE_PATHS[pt]), "pathType": pt,
                              "backend": {"service": {"name": f"s-{ns}-{name}-{ri}-{pi}",
                                                      "port": {"number": 80}}}})
            rule["http"] = {"paths": paths}
        rules.append(rule)
    if rules:
        spec["rules"] = rules
    if not rules or draw(_BOOL):
        spec["defaultBackend"] = {"service": {"name": f"d-{ns}-{name}", "port": {"number": 80}}}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": spec}


_IDS = st.lists(st.tuples(st.sampled_from(["default", "ns1"]), st.sampled_from("abcde")),
                min_size=1, max_size=5, unique=True)
_CLASS_NAMES = st.lists(st.sampled_from(["nginx", "other"]), unique=True)
_CONTROLLER = st.sampled_from(["k8s.io/ingress-nginx", "example.com/x"])
_MARK = st.sampled_from([None, "true", "True"])
_FILTER = st.sampled_from([(None, None), (None, None), (None, None), ("nginx", None),
                           (None, "k8s.io/ingress-nginx"), ("other", "example.com/x")])


@st.composite
def tables(draw: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str | None, str | None]:
    ids = draw(_IDS)
    ings = [draw(ingress_dicts(ns, name)) for ns, name in ids]
    if draw(_ONE_IN_5) == 0:
        # The same object defined twice (two files): README, the later definition counts.
        ns, name = draw(st.sampled_from(ids))
        ings.insert(draw(st.integers(0, len(ings))), draw(ingress_dicts(ns, name)))
    classes = []
    for cname in draw(_CLASS_NAMES):
        c: dict[str, Any] = {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                             "metadata": {"name": cname},
                             "spec": {"controller": draw(_CONTROLLER)}}
        mark = draw(_MARK)
        if mark is not None:
            c["metadata"]["annotations"] = {"ingressclass.kubernetes.io/is-default-class": mark}
        classes.append(c)
    flt = draw(_FILTER)
    return ings, classes, flt[0], flt[1]


REQ_HOSTS = ["foo.com", "FOO.com", "foo.com:8080", "foo.com.", "Foo.Com.:443", "foo.com..", "bar.foo.com",
             "x.bar.foo.com", "a.bar.foo.com", "b.a.bar.foo.com", ".foo.com", "x.org", "X.ORG.", "other.com",
             "[::1]", "[::1]:80", "[foo.com]", "", "1.2.3.4", "*.foo.com", "zz.foo.com:1"]
GOOD_SEGS = ["foo", "FOO", "bar", "a", "%66oo", "%2e", ".", "..", "", "%C3%A9", "caf%c3%a9", "%7E", "~",
             "foo.", ".well-known", "..bar", "x%3Fy", "x%3fy", "%41", "A", "v1", "foo%2ebar", "x;y", "%252e",
             "a%20b", "x" * 300]
BAD_SEGS = ["%2E%2E", "%2F", "%5c", "%00", "%7f", "café", "%FF", "..;", ".;x", "..;x", "%", "%zz", "a b", "#",
            "[x]"]


_REQ_HOST = st.sampled_from(REQ_HOSTS)
_RULE_HOST_SET = st.sampled_from([h for h in RULE_HOSTS if h])
_WILD_FILL = st.sampled_from("xA")
#: Which spelling of a rule's host: as is, upper case, ":80", "." or ".:8443" after it.
_HOST_SPELLING = st.sampled_from(tuple(range(5)))
_ONE_IN_4 = st.integers(0, 3)
_GOOD_PATH = st.lists(st.sampled_from(GOOD_SEGS), max_size=4)
_ANY_PATH = st.lists(st.sampled_from(GOOD_SEGS + BAD_SEGS), max_size=4)
_ONE_IN_3 = st.integers(0, 2)
_ONE_IN_10 = st.integers(0, 9)


@st.composite
def requests(draw: Any, rule_paths: list[str]) -> tuple[str, str]:
    host = draw(_REQ_HOST)
    if draw(_BOOL):
        # A rule's host (a wildcard's first label filled in), in any case, with a port or a dot.
        host = draw(_RULE_HOST_SET).replace("*", draw(_WILD_FILL))
        host = (host, host.upper(), host + ":80", host + ".", host + ".:8443")[draw(_HOST_SPELLING)]
    segs = draw(_GOOD_PATH if draw(_ONE_IN_4) else _ANY_PATH)
    p = "/".join(segs)
    if rule_paths and draw(_ONE_IN_3):
        # A request near a rule path: the path itself, or it with more segments after it.
        base = draw(st.sampled_from(rule_paths))
        p = base + ("/" if p and not base.endswith("/") else "") + p if draw(_BOOL) else base
    elif draw(_ONE_IN_10) > 0:
        p = "/" + p
    if draw(_ONE_IN_4) == 0:
        p += "/"
    return host, p or "/"


def _build(ings: list[dict[str, Any]], classes: list[dict[str, Any]], ic: str | None, ctl: str | None,
           matcher: Any) -> RouteTable:
    return RouteTable.build(Resources.from_dicts(ings + classes), ic, ctl, matcher_class=matcher)


@pytest.mark.parametrize("matcher", _MATCHERS, ids=lambda m: m.__module__)
@settings(max_examples=examples(1))
@given(tables(), st.data())
def test_match_agrees_with_the_oracle(matcher: Any, table: Any, data: Any) -> None:
    ings, classes, ic, ctl = table
    written = sorted({p.get("path") or "/" for ing in ings for r in ing["spec"].get("rules") or []
                      for p in (r.get("http") or {}).get("paths") or []})
    reqs = data.draw(st.lists(requests(written), min_size=1, max_size=12))
    try:
        t = _build(ings, classes, ic, ctl, matcher)
    except ValidationError:
        from hypothesis import assume
        assume(False)
    served = o_served(ings, classes, ic, ctl)
    for host, path in reqs:
        assert _got(t, host, path) == _want(served, host, path), (host, path)


def _probe_host(host: str | None) -> str:
    return "no-rule-names-this.example" if host is None else host.replace("*", "zq9")


@pytest.mark.parametrize("matcher", _MATCHERS, ids=lambda m: m.__module__)
@settings(max_examples=examples(0.4))
@given(tables())
def test_every_served_rule_is_reachable_or_reported(matcher: Any, table: Any) -> None:
    """§4.6 "The build also reports shadowed/duplicate rules as diagnostics": a served rule no
    request reaches has a diagnostic on its own field, and a rule with one is never reached."""
    ings, classes, ic, ctl = table
    try:
        t = _build(ings, classes, ic, ctl, matcher)
    except ValidationError:
        from hypothesis import assume
        assume(False)
    served = o_served(ings, classes, ic, ctl)
    noted = {(d.object, d.field.removesuffix(".path")) for d in t.diagnostics
             if "shadowed" in d.message or "never match" in d.message}
    for ing in served:
        for ri, rule in enumerate(ing["spec"].get("rules") or []):
            for pi, p in enumerate((rule.get("http") or {}).get("paths") or []):
                svc = p["backend"]["service"]["name"]
                canonical = o_rule_canonical(p.get("path") or "/")
                host = _probe_host(rule.get("host"))
                probes = [] if canonical is None else [canonical, canonical.rstrip("/") + "/zz-probe"]
                reached = any((m := t.match(host, q)) is not None and m.service == svc for q in probes)
                key = (f"Ingress {_ref(ing)}", f"spec.rules[{ri}].http.paths[{pi}]")
                assert reached != (key in noted), (key, p, reached, t.diagnostics)
                shadowed = [d for d in t.diagnostics if (d.object, d.field) == key and "shadowed by" in d.message]
                if shadowed and canonical is not None:
                    # It names the rule that serves its requests instead.
                    probe = canonical if p["pathType"] == "Exact" else canonical.rstrip("/") + "/zz-probe"
                    winner = t.match(host, probe)
                    assert winner is not None and winner.service is not None
                    _, wns, wname, wri, wpi = winner.service.rsplit("-", 4)
                    named = f"Ingress {wns}/{wname} spec.rules[{wri}].http.paths[{wpi}] and never matches"
                    assert shadowed[0].message.endswith(named), (shadowed, winner)


_PATH_ALPHABET = st.sampled_from(list("/%.;aAfF09~-_!$&'()*+,=:@ #?[]\\\"<>^`{|}") +
                                 ["%2e", "%2E", "%2f", "%5C", "%00", "%1f", "%7F", "%25", "%7e", "%41", "%c3",
                                  "%a9", "%C3%A9", "%e2%82%ac", "%ff", "%3b", "/..", "/.", "//", "..;", ".;",
                                  "\u00e9", "\u212a", "\udcff", "\x00", "\x7f", "\t"])


@pytest.mark.parametrize("matcher", _MATCHERS, ids=lambda m: m.__module__)
@settings(max_examples=examples(4))
@given(st.lists(_PATH_ALPHABET, max_size=14).map("".join), st.sampled_from(["/", ""]))
def test_matchers_route_on_the_canonical_path_of_the_oracle(matcher: Any, tail: str, lead: str) -> None:
    """§5 alone: the matcher sees an Exact rule at the oracle's canonical form of the request,
    so it must answer with it, or raise 400 exactly when the oracle rejects the path."""
    path = lead + tail
    want: str | None
    try:
        want = o_canonical(path) if path else "/"
    except Bad:
        want = None
    exact = {want: "exact"} if want is not None else {}
    m = matcher([(None, exact, {"": "prefix /"}, None)])
    q = path.find("?")
    if q >= 0 and "#" not in path:
        return  # the query is cut first: covered by the table test
    try:
        got: str | None = m.lookup("h", path)
    except BadRequestError as exc:
        assert exc.status_hint == 400
        got = None
    if q >= 0:
        assert got is None  # a '#' anywhere in the target
    else:
        assert got == ("exact" if want is not None else None), (path, want)
        # ``explain`` shows the same canonical form (or the 400).
        shown = _EMPTY_TABLE.explain("h", path)
        assert (shown["status"], shown.get("canonical_path")) == ((404, want) if want else (400, None)), shown


_EMPTY_TABLE = RouteTable.build(Resources.from_dicts([]))


_KEY_SEGS = st.sampled_from(["a", "ab", "abc", "b", "a.b", "~", "%C3%A9", "x" * 40, "a;b", ":", "@", ".well",
                             ".w", "..x", "...", "a.", "%25", "%25a"])
_REQ_SEGS = st.sampled_from(["a", "ab", "abc", "b", "a.b", "~", "%7e", "%C3%A9", "%c3%a9", "x" * 40, "a;b", ":",
                             ".well", ".w", "..x", "...", "a.", "%25", "%25a", "%61", "%2e", ".", "..", "", ".;",
                             "..;", "a?b", "?", "a%", "%2F", "%2"])


@pytest.mark.parametrize("matcher", _MATCHERS, ids=lambda m: m.__module__)
@settings(max_examples=examples(1))
@given(st.lists(st.tuples(st.lists(_KEY_SEGS, max_size=5), st.booleans(), st.booleans()), max_size=60),
       st.lists(st.tuples(st.lists(_REQ_SEGS, max_size=7), st.booleans()), min_size=1, max_size=20))
def test_many_nested_keys_in_one_group(matcher: Any, rules: list[tuple[list[str], bool, bool]],
                                       reqs: list[tuple[list[str], bool]]) -> None:
    """A dense radix tree (shared prefixes, keys that end inside others' labels, trailing
    slashes, dots where the walk may stop): the exact path or the longest element-wise prefix
    of the oracle's canonical form, by brute force."""
    exact: dict[str, str] = {}
    prefix: dict[str, str] = {}
    for segs, is_exact, slash in rules:
        p = "/" + "/".join(segs) + ("/" if slash and segs else "")
        if is_exact:
            exact[p] = "E" + p
        else:
            prefix[p.rstrip("/")] = "P" + p.rstrip("/")
    m = matcher([("h.example", exact, prefix, "default")])
    for segs, slash in reqs:
        path = "/" + "/".join(segs) + ("/" if slash and segs else "")
        try:
            canonical = o_canonical(path.split("?", 1)[0])
        except Bad:
            with pytest.raises(BadRequestError):
                m.lookup("h.example", path)
            continue
        if canonical in exact:
            want = exact[canonical]
        else:
            qe = canonical.split("/")[1:]
            fits = [k for k in prefix if not k or qe[: len(k.split("/")) - 1] == k.split("/")[1:]]
            want = prefix[max(fits, key=len)] if fits else "default"
        assert m.lookup("H.example:1", path) == want, path
        assert m.lookup("other", path) is None


_HOST_PIECES = st.sampled_from(["foo", "FOO", "com", "CoM", "k8s", "io", "x", ".", ".", ":", ":80", "[", "]", "::1",
                                "\u212a", "\u0130", "\u017f", "\u00e9", "-", "*", "1", " ", "\x00", "_"])


@pytest.mark.parametrize("matcher", _MATCHERS, ids=lambda m: m.__module__)
@settings(max_examples=examples(1))
@given(st.lists(_HOST_PIECES, max_size=8).map("".join), st.booleans())
def test_host_groups_by_the_oracle(matcher: Any, host: str, hostless: bool) -> None:
    """§4.1: precise host, else the wildcard of exactly one first label, else host-less."""
    names = ["foo.com", "*.foo.com", "k8s.io", "*.io", "x.k8s.io", "*.x.k8s.io", "*.com"]
    groups: list[Any] = [(n, {}, {"": n}, None) for n in names]
    if hostless:
        groups.append((None, {}, {"": "hostless"}, None))
    m = matcher(groups, "table default")
    h = o_host(host)
    if host_refused(host):  # §9 "bad Host values" (a space, "[", an empty label...): 400
        with pytest.raises(BadRequestError):
            m.lookup(host, "/x")
        return
    if h is not None and h in names:
        want = h
    elif h is not None and not h.startswith("[") and h.find(".") > 0 and "*." + h.split(".", 1)[1] in names:
        want = "*." + h.split(".", 1)[1]
    else:
        want = "hostless" if hostless else "table default"
    assert m.lookup(host, "/x") == want, (host, h)


@settings(max_examples=examples(0.4))
@given(tables(), st.randoms(use_true_random=False))
def test_the_table_depends_on_the_set_of_objects_not_their_order(table: Any, rnd: Any) -> None:
    """§4.3-§4.5 order by age and name, never by input order: the same objects shuffled give the
    same answers and the same diagnostics (objects defined twice keep their relative order)."""
    ings, classes, ic, ctl = table
    refs = [_ref(i) for i in ings]
    if len(set(refs)) != len(refs):
        return  # the later definition wins: order matters on purpose
    shuffled = ings[:]
    rnd.shuffle(shuffled)
    try:
        a = _build(ings, classes, ic, ctl, _match_py.Matcher)
    except ValidationError:
        return
    b = _build(shuffled, classes[::-1], ic, ctl, _match_py.Matcher)
    assert sorted(map(str, a.diagnostics)) == sorted(map(str, b.diagnostics))
    for host in ["foo.com", "x.foo.com", "bar.foo.com", "q.bar.foo.com", "x.org", "nowhere", ""]:
        for path in ["/", "/foo", "/foo/", "/foo/bar", "/a", "/a/", "/caf%C3%A9", "/~", "/bar/a/foo"]:
            assert _got(a, host, path) == _got(b, host, path)


def _ing(name: str, rules: list[dict[str, Any]], default: str | None = None, ts: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "default"}
    if ts:
        meta["creationTimestamp"] = ts
    spec: dict[str, Any] = {"rules": rules}
    if default:
        spec["defaultBackend"] = {"service": {"name": default, "port": {"number": 80}}}
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": spec}


def _rule(host: str | None, *paths: tuple[str, str, str]) -> dict[str, Any]:
    r: dict[str, Any] = {"http": {"paths": [
        {"path": p, "pathType": t, "backend": {"service": {"name": s, "port": {"number": 80}}}} for p, t, s in paths]}}
    if host:
        r["host"] = host
    return r


@pytest.mark.parametrize("matcher", [*_MATCHERS, None], ids=lambda m: "default" if m is None else m.__module__)
@pytest.mark.parametrize("rule_len", [65000, 70000])
def test_long_and_non_ascii_paths_by_the_oracle(matcher: Any, rule_len: int) -> None:
    """Very long rule and request paths, deep ones, non-ASCII ones, against the oracle. A rule
    past the compiled matcher's key limit makes the table fall back to the pure matcher."""
    long_seg = "x" * rule_len
    ings = [_ing("a", [_rule("foo.com", ("/a", "Prefix", "sa"), ("/a/b/", "Prefix", "sab"), ("/e", "Exact", "se"),
                                 ("/e/", "Exact", "se2"), ("/" + "y/" * 3000, "Prefix", "deep")),
                       _rule(None, ("/", "Prefix", "root"), ("/caf\u00e9", "Prefix", "cafe"),
                             ("/" + long_seg, "Prefix", "longrule"))], "da", "2020-01-01T00:00:00Z"),
            _ing("b", [_rule("*.foo.com", ("/w", "Prefix", "sw"))], "db")]
    res = Resources.from_dicts(ings)
    if matcher is not None and rule_len > 65535 and matcher is not _match_py.Matcher:
        with pytest.raises(ValueError):
            RouteTable.build(res, matcher_class=matcher)
        return
    t = RouteTable.build(res, matcher_class=matcher)
    if matcher is None:
        assert t.matcher == ("python" if rule_len > 65535 else MATCHER)
    served = o_served(ings, [], None, None)
    reqs = [("foo.com", "/" + "y/" * 3000 + "z"), ("foo.com", "/" + "y/" * 2999), ("foo.com", "/" + "a/" * 5000),
            ("x.foo.com", "/w/" + "q" * 20000), ("bar", "/" + long_seg), ("bar", "/" + long_seg + "/z"),
            ("bar", "/" + long_seg[:-1]), ("bar", "/" + long_seg + "x"), ("bar", "/caf%C3%A9/x"), ("bar", "/caf%c3%a9"),
            ("bar", "/caf\u00e9"), ("bar", "/\udcff"), ("bar", "/\u00e9" * 1000), ("bar", "/%C3%A9" * 2000),
            ("bar", "/%C3" * 2000), ("\u212aoo.com", "/a"), ("foo.com", "/e//"), ("FOO.COM.:1", "/E"),
            ("foo.com", "/a/b/.."), ("foo.com", "/a/b/%2e%2e/b/"), ("foo.com", "/" + "./" * 5000 + "a"),
            ("foo.com", "/" + "../" * 2)]
    for host, path in reqs:
        assert _got(t, host, path) == _want(served, host, path), (host, path[:80])


@pytest.mark.parametrize("matcher", _MATCHERS, ids=lambda m: m.__module__)
@settings(max_examples=examples(0.4))
@given(tables())
def test_a_default_backend_is_reported_unused_iff_no_request_reaches_it(matcher: Any, table: Any) -> None:
    """§4.5 and §4.6: a `defaultBackend` the build calls "never used" answers no request; when
    no rule covers `/` (every host group has misses), every other one answers some request."""
    ings, classes, ic, ctl = table
    try:
        t = _build(ings, classes, ic, ctl, matcher)
    except ValidationError:
        from hypothesis import assume
        assume(False)
    served = o_served(ings, classes, ic, ctl)
    hosts = {_probe_host(r.get("host")) for i in served for r in i["spec"].get("rules") or []}
    answered = set()
    for host in hosts | {_probe_host(None)}:
        m = t.match(host, "/zz-nothing/here")
        if m is not None and m.is_default_backend:
            answered.add(f"Ingress {m.ingress}")
    unused = {d.object for d in t.diagnostics if d.field == "spec.defaultBackend" and "never used" in d.message}
    assert not answered & unused, (answered, unused)
    covers_root = any(o_rule_canonical(p.get("path") or "/") == "/" and p["pathType"] != "Exact"
                      for i in served for r in i["spec"].get("rules") or []
                      for p in (r.get("http") or {}).get("paths") or [])
    with_default = {f"Ingress {_ref(i)}" for i in served if i["spec"].get("defaultBackend")}
    if not covers_root:
        assert answered | unused == with_default, (answered, unused, with_default)
