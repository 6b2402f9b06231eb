"""Session 36 x48: a routing differential against a real nginx.

tests/data/x48_nginx_routes.json.gz holds what nginx (its version and the command are in the file)
answered to hostile request targets over the locations ingress-nginx generates for a set of
route tables (benchmarks/nginx_differential.py records it, and says how to re-record: nginx is
needed there, never here). Each recorded request is replayed against ingresslib:

- through the proxy's sans-IO core (the request line as sent: absolute-form, Host, escapes),
  with a router that answers from ``RouteTable.match``;
- straight into ``RouteTable.match`` with both matchers (compiled and pure), for origin-form
  targets.

The standard: whenever ingresslib routes a request it picks the rule nginx picked, or the
difference is one README.md's divergence table documents (classified below by kind, each kind
asserted precisely); whenever nginx answers 400 (or 414), ingresslib routes it to no rule.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import sys
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import unquote

import pytest

from ingresslib import BadRequestError, Resources, RouteTable
from ingresslib._normalize import canonical_path, split_target

from _matchers import MATCHER_PARAMS, required
from _proxy_harness import ProxyPair, status_of

CORPUS_PATH = Path(__file__).parent / "data" / "x48_nginx_routes.json.gz"

#: ingresslib's outcome: ("reject", status, None) before any rule, or ("route", rule id or
#: None, the canonical path it routed).
Outcome = tuple[str, Any, Any]


def _load_recorder() -> ModuleType:
    """benchmarks/nginx_differential.py (stdlib only): its ``Probe`` spells the request bytes
    the recording sent, so the replay sends the same ones."""
    path = Path(__file__).parent.parent / "benchmarks" / "nginx_differential.py"
    spec = importlib.util.spec_from_file_location("_x48_nginx_differential", path)
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
    host: str | None
    version: str
    status: int
    rule: str | None
    location: str | None

    def raw(self) -> bytes:
        return bytes(_RECORDER.Probe(self.table, self.target, self.host, self.version).raw())


@cache
def corpus() -> dict[str, Any]:
    return dict(json.loads(gzip.decompress(CORPUS_PATH.read_bytes()).decode("utf-8")))


def recorded() -> Iterator[Recorded]:
    for table, rows in corpus()["requests"].items():
        for row in rows:
            yield Recorded(table, row[0], row[1], row[2], row[3], row[4],
                           row[5] if len(row) > 5 else None)


def _resources(rules: list[Mapping[str, Any]]) -> Resources:
    """One Ingress per rule (its Service named by the rule id), all created at once: the
    tables hold no identical rules, so no tie-break is exercised."""
    objs = []
    for r in rules:
        rule: dict[str, Any] = {"http": {"paths": [{
            "path": r["path"], "pathType": r["path_type"],
            "backend": {"service": {"name": r["id"], "port": {"number": 80}}}}]}}
        if r["host"] is not None:
            rule["host"] = r["host"]
        objs.append({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                     "metadata": {"name": r["id"], "namespace": "default"},
                     "spec": {"rules": [rule]}})
    return Resources.from_dicts(objs)


@cache
def _table(name: str, matcher_class: Any = None) -> RouteTable:
    return RouteTable.build(_resources(corpus()["tables"][name]), matcher_class=matcher_class)


def _rules(table: str) -> dict[str, Mapping[str, Any]]:
    return {r["id"]: r for r in corpus()["tables"][table]}


class _TableRouter:
    """The router interface the proxy core codes against, answering from ``RouteTable.match``;
    it remembers the rule it matched and answers no route (the core's 404): only the choice
    of rule matters here."""

    def __init__(self, table: RouteTable) -> None:
        self.table = table
        self.matched: list[tuple[str | None, str]] = []

    def route(self, method: str, host: str, path: str, headers: Any,
              client_ip: str | None) -> None:
        m = self.table.match(host, path)
        self.matched.append((None if m is None else m.service, path))
        return None


def proxy_outcome(req: Recorded) -> Outcome:
    router = _TableRouter(_table(req.table))
    pair = ProxyPair(router=router)
    out = pair.send(req.raw())
    if router.matched:
        return ("route", *router.matched[0])
    return ("reject", status_of(out), None)


def match_outcome(req: Recorded, matcher_class: Any) -> Outcome:
    table = _table(req.table, matcher_class)
    try:
        path, _query = split_target(req.target)
        m = table.match(req.host or "", path)
    except BadRequestError as e:
        return ("reject", e.status_hint, None)
    return ("route", None if m is None else m.service, canonical_path(path))


# ---------------------------------------------------------------- documented divergences
# Each predicate recognises one row of README.md's divergence table, from what nginx answered
# (``req``), the rule ingresslib chose (``got``: a rule id or None) and the canonical path it
# routed (``path``). A difference no predicate recognises fails the test.
def _trailing_slash_redirect(req: Recorded, got: str | None, path: str) -> bool:
    """README "routing | a rule path written with a trailing `/`": ingress-nginx writes
    ``location /foo/`` and ``location = /foo/`` for Prefix ``/foo/`` (controller.go
    ``updateServerLocations``), ``location = /foo/`` for Exact, ``location /foo/`` for
    ImplementationSpecific; nginx answers ``/foo`` with a 301 to ``/foo/`` (``auto_redirect``,
    which ``proxy_pass`` sets on a location ending in ``/``). ingresslib routes ``/foo`` as the
    Ingress API says: to the Prefix (or ImplementationSpecific) rule, never to the Exact one.
    The kind: nginx's 301 names the canonical path plus ``/``, a rule is written so, and
    ingresslib chose that rule only when it is not Exact."""
    if req.status != 301 or req.location != path + "/":
        return False
    rules = _rules(req.table)
    written = [r for r in rules.values() if r["path"] == req.location]
    if got is not None and rules[got]["path"] == req.location:
        return bool(rules[got]["path_type"] != "Exact")
    return any(r["path_type"] == "Exact" for r in written)


def _escaped_rule_path(req: Recorded, got: str | None, path: str) -> bool:
    """README "routing | rule paths with percent escapes": nginx compares a location as written
    (``/a%20b/``) with the decoded ``$uri`` (``/a b``), so it never matches ``/a%20b`` and
    matches ``/a%2520b`` instead; ingresslib reads the escape in the rule as the character it
    stands for (canonicalised like requests). The kind: ingresslib chose a rule written with an
    escape whose written spelling the decoded path does not start with (nginx could not match
    it), or nginx chose one for a target holding ``%25`` (its decoded ``$uri`` then holds the
    escape as written)."""
    rules = _rules(req.table)
    if got is not None and "%" in rules[got]["path"]:
        return not unquote(path).startswith(rules[got]["path"].rstrip("/"))
    return req.rule is not None and "%" in rules[req.rule]["path"] and "%25" in req.target


def _implementation_specific_string_prefix(req: Recorded, got: str | None, path: str) -> bool:
    """README "routing | ImplementationSpecific paths": ingress-nginx writes the bare path as a
    location, a string prefix (``location /img`` takes ``/imgx``); ingresslib gives it Prefix
    semantics, element-wise on ``/``. The kind: nginx chose an ImplementationSpecific rule whose
    path is a string prefix of the canonical path but not an element-wise one."""
    if req.rule is None or req.rule == got:
        return False
    rule = _rules(req.table)[req.rule]
    base = rule["path"].rstrip("/")
    element_wise = path == base or path.startswith(base + "/")
    return rule["path_type"] == "ImplementationSpecific" and path.startswith(rule["path"]) \
        and not element_wise


DIVERGENCES = {"trailing-slash-redirect": _trailing_slash_redirect,
               "escaped-rule-path": _escaped_rule_path,
               "implementation-specific-string-prefix": _implementation_specific_string_prefix}


def classify(req: Recorded, outcome: Outcome) -> str:
    """``agree``, ``ingresslib-rejects`` (stricter: 400 where nginx normalises), a documented
    divergence's kind, or ``WRONG`` (an undocumented difference)."""
    kind, value = outcome[0], outcome[1]
    if kind == "reject":
        return "agree" if req.status in (400, 414) else "ingresslib-rejects"
    if req.status in (400, 414):
        return "WRONG"  # nginx refused it, ingresslib routed it
    if req.status in (200, 404) and value == req.rule:
        return "agree"
    for name, is_kind in DIVERGENCES.items():
        if is_kind(req, value, outcome[2]):
            return name
    return "WRONG"


def _wrong(outcomes: Iterator[tuple[Recorded, Outcome]]) -> tuple[Counter[str], list[str]]:
    counts: Counter[str] = Counter()
    wrong: list[str] = []
    for req, out in outcomes:
        kind = classify(req, out)
        counts[kind] += 1
        if kind == "WRONG":
            wrong.append(f"{req.table} {req.version} target={req.target[:80]!r} "
                         f"host={req.host!r}: nginx {req.status} {req.rule or req.location}, "
                         f"ingresslib {out}")
    return counts, wrong


def test_the_classifier_fails_an_undocumented_difference() -> None:
    """The replay can fail: a request nginx refused that ingresslib routes, another rule than
    nginx's, and a route to an escaped rule path nginx matched as written are each WRONG."""
    refused = Recorded("fixed1", "/api", "a.test", "HTTP/1.1", 400, None, None)
    assert classify(refused, ("route", "fixed1-r1", "/api")) == "WRONG"
    assert classify(refused, ("reject", 400, None)) == "agree"
    other = Recorded("fixed1", "/api/x", "a.test", "HTTP/1.1", 200, "fixed1-r1", None)
    assert classify(other, ("route", "fixed1-r0", "/api/x")) == "WRONG"
    assert classify(other, ("reject", 400, None)) == "ingresslib-rejects"
    escaped = Recorded("fixed3", "/a%20b/x", "e.test", "HTTP/1.1", 200, "fixed3-r0", None)
    assert classify(escaped, ("route", "fixed3-r2", "/a%20b/x")) == "escaped-rule-path"
    # a route to that rule for a path nginx's location matches as written is no divergence:
    # ingresslib decoding twice (/a%2520b as /a%20b) would be WRONG
    twice = Recorded("fixed3", "/a%2520b", "e.test", "HTTP/1.1", 200, "fixed3-r2", None)
    assert classify(twice, ("route", "fixed3-r2", "/a%2520b")) == "agree"
    twice_elsewhere = Recorded("fixed3", "/a%2520b", "e.test", "HTTP/1.1", 404, None, None)
    assert classify(twice_elsewhere, ("route", "fixed3-r2", "/a%2520b")) == "WRONG"


@pytest.mark.parametrize("host_line", [b"Host: a.test\t", b"Host:\ta.test", b"Host: a.test \t",
                                       b"Host:\t a.test"])
def test_a_tab_around_the_host_value_is_400_as_in_nginx(host_line: bytes) -> None:
    """nginx's header parser strips spaces around a value, not tabs
    (ngx_http_parse_header_line: ``sw_space_before_value`` / ``sw_space_after_value`` on
    ``' '`` only), and ``ngx_http_validate_host`` refuses the tab left in the Host: "client
    sent invalid host header", 400 (recorded against nginx 1.22 in the corpus: Host
    ``a.test\t``). h11 strips a tab as OWS, so before session 36 the proxy routed these to
    a.test's rules; ``RouteTable.match("a.test\t", ...)`` already refused it."""
    router = _TableRouter(_table("fixed1"))
    out = ProxyPair(router=router).send(b"GET /api HTTP/1.1\r\n" + host_line + b"\r\n\r\n")
    assert status_of(out) == 400 and router.matched == []
    # a space is OWS to nginx too: routed
    spaced = ProxyPair(router=router).send(b"GET /api HTTP/1.1\r\nHost:  a.test  \r\n\r\n")
    assert router.matched == [("fixed1-r1", "/api")] and status_of(spaced) == 404


# ---------------------------------------------------------------- the replay
def test_corpus_is_a_real_recording() -> None:
    c = corpus()
    assert c["nginx_version"].startswith("nginx version: nginx/")
    assert "nginx_differential.py" in c["command"]
    statuses = Counter(r.status for r in recorded())
    # hostile targets: nginx refused some, routed others, redirected some, 414 the longest
    assert {200, 301, 400, 404, 414} <= set(statuses)


def test_proxy_core_routes_as_nginx_or_as_documented() -> None:
    counts, wrong = _wrong((req, proxy_outcome(req)) for req in recorded())
    assert not wrong, f"{len(wrong)} undocumented differences:\n" + "\n".join(wrong[:40])
    # every documented kind is seen (a kind that never occurs would assert nothing)
    assert set(DIVERGENCES) <= set(counts), counts


@pytest.mark.parametrize("matcher_class", MATCHER_PARAMS)
def test_route_table_match_routes_as_nginx_or_as_documented(matcher_class: Any) -> None:
    cls = required(matcher_class)
    # Origin-form targets with a Host: what ``match(host, path)`` is given. An empty ``Host:``
    # (``match`` reads "" as no Host) and a request line over the proxy's 8 KiB (414) are the
    # proxy's to refuse, replayed through it above.
    origin_form = (r for r in recorded() if r.target.startswith("/") and r.host
                   and r.version == "HTTP/1.1" and len(r.target) < 8000)
    counts, wrong = _wrong((req, match_outcome(req, cls)) for req in origin_form)
    assert not wrong, f"{len(wrong)} undocumented differences:\n" + "\n".join(wrong[:40])
    assert set(DIVERGENCES) <= set(counts), counts
