"""Session 37 x59: a ``rewrite-target`` differential against a real nginx.

tests/data/x59_nginx_rewrites.json.gz holds what nginx (its version and the command are in the
file) sent upstream for hostile request targets over the locations ingress-nginx writes for
rules with ``rewrite-target`` (with and without ``use-regex``) and ``x-forwarded-prefix``:
the status, the rule whose location took the request, the upstream request-target and
X-Forwarded-Prefix (benchmarks/nginx_rewrite_differential.py records it and says how; nginx
is needed there, never here). Each recorded request is replayed through the proxy's sans-IO
core, with a real ``Router`` over the same rules (both matchers), and the bytes the core sends
upstream are read back.

The standard: where ingresslib and nginx proxy a request to the same rule, the upstream target
and X-Forwarded-Prefix are byte-identical or differ as one README row documents (each kind
asserted precisely below); where they route differently, the difference is a documented one
(use-regex routing is Prefix here); where nginx answers 400, ingresslib proxies nothing.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import re
import sys
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from ingresslib import BadRequestError, Router, RouteTable
from ingresslib._normalize import canonical_path, split_target

from _matchers import MATCHER_PARAMS, required
from _proxy_harness import FakeDecision, FakeMatch, ProxyPair, status_of
from _router_helpers import P, ingress, resources, simple_backend

CORPUS_PATH = Path(__file__).parent / "data" / "x59_nginx_rewrites.json.gz"


def _load_recorder() -> ModuleType:
    """benchmarks/nginx_rewrite_differential.py (stdlib only): its ``locations`` are the
    locations it wrote for nginx, in nginx's order, which ``_nginx_model`` reads."""
    path = Path(__file__).parent.parent / "benchmarks" / "nginx_rewrite_differential.py"
    spec = importlib.util.spec_from_file_location("_x59_nginx_rewrite_differential", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


_RECORDER = _load_recorder()


@dataclass(frozen=True)
class Recorded:
    table: str
    target: str
    status: int
    rule: str | None
    upstream: str | None
    prefix: str | None
    location: str | None

    def raw(self) -> bytes:
        head = f"GET {self.target} HTTP/1.1\r\nHost: {corpus()['host']}\r\n"
        return (head + "Connection: close\r\n\r\n").encode("latin-1")


@dataclass(frozen=True)
class Sent:
    """What the core did: the rule it proxied to (None: it answered ``status`` itself), the
    upstream request-target and X-Forwarded-Prefix (latin-1 text of the bytes)."""
    rule: str | None
    upstream: str | None
    prefix: str | None
    status: int


@cache
def corpus() -> dict[str, Any]:
    return dict(json.loads(gzip.decompress(CORPUS_PATH.read_bytes()).decode("utf-8")))


def recorded() -> Iterator[Recorded]:
    for table, rows in corpus()["requests"].items():
        for row in rows:
            yield Recorded(table, *row)


def _rules(table: str) -> dict[str, Mapping[str, Any]]:
    return {r["id"]: r for r in corpus()["tables"][table]}


def _ip(table: str, rule_id: str) -> str:
    names = list(corpus()["tables"])
    index = int(rule_id.rsplit("-r", 1)[1])
    return f"10.59.{names.index(table)}.{index + 1}"


def _service(rule_id: str) -> str:
    return rule_id.replace("_", "-")


def _annotations(rule: Mapping[str, Any]) -> dict[str, str]:
    ann = {}
    if rule["rewrite_target"] is not None:
        ann[P + "rewrite-target"] = rule["rewrite_target"]
    if rule["use_regex"]:
        ann[P + "use-regex"] = "true"
    if rule["x_forwarded_prefix"] is not None:
        ann[P + "x-forwarded-prefix"] = rule["x_forwarded_prefix"]
    return ann


@cache
def _router(table: str, matcher_class: Any) -> Router:
    """One Ingress per rule, with its annotations, to a Service of its own (one endpoint)."""
    objs: list[object] = []
    for r in corpus()["tables"][table]:
        svc = _service(r["id"])
        objs.append(ingress(svc, [(corpus()["host"], r["path"], r["path_type"], svc, 80)],
                            _annotations(r)))
        objs += simple_backend(svc, [_ip(table, r["id"])])
    res = resources(*objs)
    return Router(res, table=RouteTable.build(res, matcher_class=matcher_class))


_HEADER_RE = re.compile(rb"\r\nx-forwarded-prefix: ([^\r]*)", re.IGNORECASE)


def replay(req: Recorded, router: Any) -> Sent:
    """``req`` sent through the proxy core with ``router``: what went upstream."""
    pair = ProxyPair(router=router)
    out = pair.send(req.raw())
    if not pair.upstreams:
        return Sent(None, None, None, status_of(out))
    up = pair.upstreams[0]
    rule = next(r["id"] for r in corpus()["tables"][req.table]
                if _ip(req.table, r["id"]) == up.endpoint[0])
    raw = bytes(up.raw)
    target = raw.split(b"\r\n", 1)[0].split(b" ")[1]
    prefix = _HEADER_RE.search(raw.split(b"\r\n\r\n", 1)[0])
    return Sent(rule, target.decode("latin-1"),
                None if prefix is None else prefix.group(1).decode("latin-1"),
                status_of(out))


class _PinnedRouter:
    """The router interface answering every request with one rule (its path, pathType and
    annotations, as a real Router's Match carries them): the core's rewrite of a request nginx
    routed to a rule ingresslib routes elsewhere (a regex path: README "ImplementationSpecific
    paths") is still compared with nginx's."""

    def __init__(self, table: str, rule_id: str) -> None:
        r = _rules(table)[rule_id]
        svc = _service(rule_id)
        self.rule = rule_id
        self.match = FakeMatch(svc, 80, "default", f"default/{svc}", corpus()["host"],
                               r["path"], r["path_type"], False, _annotations(r), r["path"])
        self.endpoint = (_ip(table, rule_id), 8080)

    def route(self, method: str, host: str, path: str, headers: Any,
              client_ip: str | None) -> FakeDecision:
        return FakeDecision(self.match.service, "default", 8080, self.endpoint, False,
                            self.match)

    def next_endpoint(self, decision: Any, tried: Any) -> None:
        return None

    def observe(self, decision: Any, endpoint: Any, seconds: float, ok: bool) -> None:
        return None


# ---------------------------------------------------------------- documented differences
# Each predicate recognises one README row (or SEMANTICS rule) from what nginx did (``req``)
# and what the core did (``sent``). A difference no predicate recognises is WRONG.
def _canonical_target(target: str) -> str | None:
    """The request target in ingresslib's canonical form (SEMANTICS §5), None if refused."""
    try:
        path, query = split_target(target)
        return canonical_path(path) + ("" if query is None else f"?{query}")
    except BadRequestError:
        return None


def _forwarded_canonical(req: Recorded, sent: Sent) -> bool:
    """README "request path | routed on its canonical form (SEMANTICS §5) and forwarded in that
    form": a location without a rewrite makes nginx send the target as received
    (ngx_http_proxy_module.c ``ngx_http_proxy_create_request`` copies ``r->unparsed_uri`` while
    ``r->valid_unparsed_uri``), ingresslib its canonical form (``/x/../y`` as ``/y``, ``%41``
    as ``A``, ``%c3`` as ``%C3``). The kind: nginx sent the target unchanged, ingresslib its
    canonical form, with the same X-Forwarded-Prefix."""
    return (req.upstream == req.target and sent.upstream == _canonical_target(req.target)
            and sent.prefix == req.prefix)


#: The escapes a rewrite's capture keeps here and nginx sends decoded (README "proxy |
#: `rewrite-target` with `use-regex`": "except an escaped `[`, `]`, `:`, `@` or sub-delim
#: (`%2B`), kept escaped where nginx sends the character"): NGX_ESCAPE_URI leaves these bytes
#: of the decoded ``$uri`` as they are (ngx_string.c ``ngx_escape_uri``, its ``uri`` table).
_KEPT_ESCAPED = re.compile("%(5B|5D|3A|40|21|24|26|27|28|29|2A|2B|2C|3B|3D)")
#: Of those, what NGX_ESCAPE_ARGS escapes in a capture put into the arguments (README
#: "a `$n` capture in a rewrite-target's arguments"): nginx sends them escaped too.
_ARGS_ESCAPED = frozenset({"26", "2B", "3B"})


def _nginx_spelling_of_captures(upstream: str) -> str:
    path, sep, args = upstream.partition("?")

    def decode(m: re.Match[str]) -> str:
        return chr(int(m.group(1), 16))

    def decode_arg(m: re.Match[str]) -> str:
        return m.group() if m.group(1) in _ARGS_ESCAPED else decode(m)

    return _KEPT_ESCAPED.sub(decode, path) + sep + _KEPT_ESCAPED.sub(decode_arg, args)


def _capture_keeps_sub_delim_escape(req: Recorded, sent: Sent) -> bool:
    """README "proxy | `rewrite-target` with `use-regex`" (its "except ..."): nginx rewrote the
    request (the target it sent is not the one received), ingresslib's capture kept the
    client's ``%3B`` / ``%5B`` / ``%2B`` ... where nginx sends ``;`` / ``[`` / ``+``; decoding
    exactly those escapes (in the arguments all but ``%26``, ``%2B``, ``%3B``) gives nginx's
    bytes."""
    return (req.upstream != req.target and sent.upstream is not None
            and sent.upstream != req.upstream and sent.prefix == req.prefix
            and _nginx_spelling_of_captures(sent.upstream) == req.upstream
            and _escapes(sent.upstream) - _escapes(str(req.upstream)) <= _escapes(req.target))


def _escapes(target: str) -> set[str]:
    """The escapes in ``target``, upper-case: only the client's can be kept (README's "an
    escaped ..."), never a character it sent bare escaped here."""
    return {m.upper() for m in re.findall("%([0-9A-Fa-f]{2})", target)}


def _ingresslib_rejects(req: Recorded, sent: Sent) -> bool:
    """SEMANTICS §5: escapes of ``/`` and controls, bytes outside ASCII and escapes that are
    not UTF-8 are 400 here, where nginx decodes them into ``$uri`` and routes (x48's
    "ingresslib-rejects"): stricter, never another backend."""
    return sent.rule is None and sent.status == 400 and _canonical_target(req.target) is None


def _nginx_model(req: Recorded) -> str | None:
    """The rule nginx's locations give ``req`` as README's rows on regex locations say
    ingress-nginx writes them ("ImplementationSpecific paths", "Exact and Prefix paths on a
    host where another rule has `use-regex`"): every location ``~* "^PATH"``, tried in
    getBackendServers' order, the first whose regex matches the decoded ``$uri`` (each ``%XX``
    one byte, PCRE without UTF mode) wins; None: the default backend (every table here has
    a rewrite, so every server is a regex one)."""
    canonical = _canonical_target(req.target)
    assert canonical is not None
    uri = _decoded(canonical.partition("?")[0])
    for loc in _RECORDER.locations([_RECORDER.RewriteRule(**r)
                                    for r in corpus()["tables"][req.table]]):
        pattern = "^" + loc.path.encode("utf-8").decode("latin-1")
        if re.match(pattern, uri, re.IGNORECASE | re.ASCII):
            return None if loc.rule is None else str(loc.rule.id)
    return None


def _decoded(path: str) -> str:
    """A canonical path's bytes (each ``%XX`` one), as latin-1 text: nginx's ``$uri``."""
    return re.sub("%([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), path)


def _regex_path(req: Recorded, sent: Sent) -> bool:
    """README "routing | ImplementationSpecific paths": nginx's rule is a ``use-regex`` path
    holding regex syntax (``/api(/|$)(.*)``), which routes by its regex there and by its
    literal prefix here (``_regex_location`` says the rest)."""
    return req.rule is not None and _has_regex_syntax(_rules(req.table)[req.rule]["path"]) \
        and _regex_location(req, sent)


def _regex_host(req: Recorded, sent: Sent) -> bool:
    """README "routing | Exact and Prefix paths on a host where another rule has `use-regex`
    or a rewrite-target": nginx's rule (or its default backend) is no regex path, but its
    location is one of the host's ``~* "^PATH"`` (``_regex_location`` says the rest)."""
    return not _regex_path(req, sent) and _regex_location(req, sent)


def _has_regex_syntax(path: str) -> bool:
    return any(c in "()[]{}*+?|^$\\" for c in path)


def _regex_location(req: Recorded, sent: Sent) -> bool:
    """README "routing | ImplementationSpecific paths" (a ``use-regex`` path's regex routes in
    ingress-nginx, its literal prefix here) and "Exact and Prefix paths on a host where another
    rule has `use-regex` or a rewrite-target" (every location of the host a case-insensitive
    ``~* "^PATH"``: ``/API``, ``/baz/x`` for an Exact ``/baz``, and ``/docs`` no longer taken
    by a Prefix ``/docs/``). The kind: the model of those locations (``_nginx_model``) gives
    nginx's answer exactly, and ingresslib chose another rule the Ingress API's reading of its
    path takes the request for (or none: 404)."""
    if sent.rule == req.rule or req.status not in (200, 404) or _nginx_model(req) != req.rule:
        return False
    canonical = _canonical_target(req.target)
    if canonical is None or sent.rule != _api_choice(req.table, canonical.partition("?")[0]):
        # (Not just a rule that takes it, or a 404: a shorter rule chosen, or a route lost,
        # would pass for the documented difference.)
        return False
    return sent.rule is not None or sent.status == 404


def _api_choice(table: str, path: str) -> str | None:
    """The rule of ``table`` SEMANTICS §4 gives the canonical ``path``: of those taking it
    (``_api_takes``), the longest path (a Prefix one's trailing ``/`` not counted), at equal
    length Exact before Prefix, Prefix ``/foo/`` before ``/foo``; None: none takes it."""
    def precedence(rule: Mapping[str, Any]) -> tuple[int, bool, bool]:
        own = str(_canonical_target(rule["path"]))
        return (len(own.rstrip("/")) if rule["path_type"] != "Exact" else len(own),
                rule["path_type"] == "Exact", own.endswith("/"))

    taking = [r for r in corpus()["tables"][table] if _api_takes(r, path)]
    return str(max(taking, key=precedence)["id"]) if taking else None


def _api_takes(rule: Mapping[str, Any], path: str) -> bool:
    """Whether ``rule``'s path, read as the Ingress API reads it (SEMANTICS §4: Exact equal,
    Prefix and ImplementationSpecific element-wise on ``/``), takes the canonical ``path``."""
    own = _canonical_target(rule["path"])
    if own is None:
        return False
    if rule["path_type"] == "Exact":
        return path == own
    base = own.rstrip("/")
    return path == base or path.startswith(base + "/")


_SAME_RULE_KINDS = {"forwarded-canonical": _forwarded_canonical,
                    "capture-keeps-sub-delim-escape": _capture_keeps_sub_delim_escape}
_ROUTE_KINDS = {"ingresslib-rejects": _ingresslib_rejects,
                "regex-path": _regex_path,
                "regex-host": _regex_host}


def classify(req: Recorded, sent: Sent) -> str:
    """``identical``, ``both-default`` (nginx's default backend, ingresslib's no route),
    ``both-refuse``, a documented kind, or ``WRONG``."""
    if req.status == 400:
        return "both-refuse" if sent.rule is None and sent.status == 400 else "WRONG"
    if req.status == 200 and sent.rule == req.rule:
        if (sent.upstream, sent.prefix) == (req.upstream, req.prefix):
            return "identical"
        kinds = _SAME_RULE_KINDS
    elif (req.status == 404 and req.rule is None and sent.rule is None and sent.status == 404
          and _routes_nowhere(req)):
        return "both-default"
    else:
        kinds = _ROUTE_KINDS
    return next((name for name, is_kind in kinds.items() if is_kind(req, sent)), "WRONG")


def _routes_nowhere(req: Recorded) -> bool:
    """No rule takes ``req`` as SEMANTICS §4 reads the paths: ingresslib's 404 is its own, not
    a lost route that nginx's default backend would hide."""
    canonical = _canonical_target(req.target)
    return canonical is not None and _api_choice(req.table, canonical.partition("?")[0]) is None


def _differences(pairs: Iterator[tuple[Recorded, Sent]]) -> tuple[Counter[str], list[str]]:
    counts: Counter[str] = Counter()
    wrong: list[str] = []
    for req, sent in pairs:
        kind = classify(req, sent)
        counts[kind] += 1
        if kind == "WRONG":
            wrong.append(f"{req.table} {req.target!r}: nginx {req.status} {req.rule} "
                         f"{req.upstream!r} {req.prefix!r}; ingresslib {sent}")
    return counts, wrong


# ---------------------------------------------------------------- the tests
def test_corpus_is_a_real_recording() -> None:
    c = corpus()
    assert c["nginx_version"].startswith("nginx version: nginx/")
    assert "nginx_rewrite_differential.py" in c["command"]
    reqs = list(recorded())
    assert {200, 400, 404} <= {r.status for r in reqs}
    rewritten = [r for r in reqs if r.status == 200 and r.upstream != r.target]
    # rewrites happened, with captures, a literal %20 doubled, arguments and the prefix
    assert len(rewritten) > 1000
    assert any("%2520" in (r.upstream or "") for r in rewritten)
    assert any("?a=" in (r.upstream or "") for r in rewritten)
    assert {r.prefix for r in rewritten} >= {"/api", "/foo", None}


def test_the_classifier_fails_an_undocumented_difference() -> None:
    """The replay can fail: another path, another escape than the documented ones, another
    prefix, a route to a rule nginx's locations do not explain, a 400 of nginx proxied."""
    rewritten = Recorded("regex", "/api/x%3By", 200, "regex-r0", "/x;y", "/api", None)
    assert classify(rewritten, Sent("regex-r0", "/x;y", "/api", 200)) == "identical"
    assert classify(rewritten, Sent("regex-r0", "/x%3By", "/api", 200)) \
        == "capture-keeps-sub-delim-escape"
    assert classify(rewritten, Sent("regex-r0", "/x%3By", None, 200)) == "WRONG"
    assert classify(rewritten, Sent("regex-r0", "/api/x%3By", "/api", 200)) == "WRONG"
    assert classify(rewritten, Sent("regex-r0", "/x%25y", "/api", 200)) == "WRONG"
    assert classify(rewritten, Sent("regex-r7", "/x;y", None, 200)) == "WRONG"
    as_sent = Recorded("regex", "/plain/x/../%41", 200, "regex-r7", "/plain/x/../%41", None, None)
    assert classify(as_sent, Sent("regex-r7", "/plain/A", None, 200)) == "forwarded-canonical"
    assert classify(as_sent, Sent("regex-r7", "/plain/x/A", None, 200)) == "WRONG"
    # nginx's regex location /API for regex-r0; ingresslib's Prefix reading, no route: documented
    upper = Recorded("regex", "/API/x", 200, "regex-r0", "/x", "/api", None)
    assert classify(upper, Sent(None, None, None, 404)) == "regex-path"
    # an Exact /ex is ^/ex there: /ex/x goes to it in nginx, to no rule here
    exact = Recorded("regex", "/ex/x", 200, "regex-r8", "/ex/x", None, None)
    assert classify(exact, Sent(None, None, None, 404)) == "regex-host"
    assert classify(exact, Sent("regex-r7", "/ex/x", None, 200)) == "WRONG"
    # a route the regex locations do not explain
    assert classify(Recorded("regex", "/nothing", 404, None, None, None, None),
                    Sent("regex-r7", "/nothing", None, 200)) == "WRONG"
    # (x65) a character the client sent bare, escaped here: no kept escape of the client's
    bare = Recorded("regex", "/api/x;y", 200, "regex-r0", "/x;y", "/api", None)
    assert classify(bare, Sent("regex-r0", "/x%3By", "/api", 200)) == "WRONG"
    assert classify(Recorded("regex", "/api/x%3b;y", 200, "regex-r0", "/x;;y", "/api", None),
                    Sent("regex-r0", "/x%3B;y", "/api", 200)) == "capture-keeps-sub-delim-escape"
    # (x65) nginx's regex location ^/keep; here the Prefix "/" (shorter than "/keep", which
    # takes /keep/x) or no rule: lost routes, not the regex-host difference
    keep = Recorded("regex_prefix", "/keep/x", 200, "regex_prefix-r2", "/keep/x", "/keep", None)
    assert classify(keep, Sent("regex_prefix-r4", "/keep/x", None, 200)) == "WRONG"
    assert classify(keep, Sent(None, None, None, 404)) == "WRONG"
    upper_keep = Recorded("regex_prefix", "/KEEP/x", 200, "regex_prefix-r2", "/KEEP/x", "/keep",
                          None)
    assert classify(upper_keep, Sent("regex_prefix-r4", "/KEEP/x", None, 200)) == "regex-host"
    # (x65) nginx's default backend, but the Exact /ex takes /ex here: a lost route
    assert classify(Recorded("regex", "/ex", 404, None, None, None, None),
                    Sent(None, None, None, 404)) == "WRONG"
    refused = Recorded("regex", "/api/x", 400, None, None, None, None)
    assert classify(refused, Sent("regex-r0", "/x", "/api", 200)) == "WRONG"


@pytest.mark.parametrize("matcher_class", MATCHER_PARAMS)
def test_proxy_core_rewrites_as_nginx_or_as_documented(matcher_class: Any) -> None:
    """With a real Router over the rules: same rule, same upstream bytes (or documented)."""
    router_of = {t: _router(t, required(matcher_class)) for t in corpus()["tables"]}
    counts, wrong = _differences((req, replay(req, router_of[req.table])) for req in recorded())
    assert not wrong, f"{len(wrong)} undocumented differences:\n" + "\n".join(wrong[:40])
    assert set(_ROUTE_KINDS) | {"forwarded-canonical", "identical"} <= set(counts), counts


def test_proxy_core_rewrites_each_request_of_nginx_rule_as_nginx() -> None:
    """Each request nginx proxied, given to the core with nginx's rule (``_PinnedRouter``):
    the rewrite of every regex path is compared, also where ingresslib routes elsewhere."""
    proxied = (r for r in recorded() if r.status == 200)
    counts, wrong = _differences(
        (req, replay(req, _PinnedRouter(req.table, str(req.rule)))) for req in proxied)
    assert not wrong, f"{len(wrong)} undocumented differences:\n" + "\n".join(wrong[:40])
    assert set(_SAME_RULE_KINDS) | {"identical", "ingresslib-rejects"} <= set(counts), counts
