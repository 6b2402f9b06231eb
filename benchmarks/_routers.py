"""The routers compared by the lookup benchmarks, all built from one ``gen_rules`` table.

Each ``build_*`` returns ``lookup(host, path) -> Rule | None``. Ours get the raw request
(host handling and the canonical-path check included). The other routers know nothing of hosts
or of Kubernetes prefixes, so they get the same host dict/wildcard selection in Python around
them (no lower-casing, port stripping or path canonicalisation: the generated requests need
none) and each Prefix rule ``/k`` is spelt as three routes: ``/k``, ``/k/`` and a catch-all
``/k/{rest}``. ``agreement()`` reports how often a router's answer equals ours.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from gen_rules import Rule

from ingresslib import _match_py
from ingresslib._normalize import canonical_path

Lookup = Callable[[str, str], object]


def host_groups(rules: Iterable[Rule]) -> list[_match_py.HostGroup]:
    """What RouteTable hands the matcher: per host an exact dict and a prefix dict.

    The lowest rid wins between identical rules (generated paths are already canonical)."""
    exact: dict[str, dict[str, object]] = {}
    prefix: dict[str, dict[str, object]] = {}
    for r in rules:
        exact.setdefault(r.host, {})
        prefix.setdefault(r.host, {})
        if r.ptype == "Exact":
            exact[r.host].setdefault(r.path, r)
        else:
            prefix[r.host].setdefault(r.path.rstrip("/"), r)
    return [(h, exact[h], prefix[h], None) for h in exact]


def build_cython(rules: Sequence[Rule]) -> Lookup:
    from ingresslib._match import Matcher

    return Matcher(host_groups(rules)).lookup


def build_python(rules: Sequence[Rule]) -> Lookup:
    return _match_py.Matcher(host_groups(rules)).lookup


def build_scan(rules: Sequence[Rule]) -> Lookup:
    """The naive design: every rule tested on every request, SEMANTICS.md §4 read literally."""
    table = [(r.host, r.host[1:] if r.host.startswith("*.") else None, r.ptype == "Exact",
              r.path.rstrip("/"), r.path, r) for r in rules]

    def lookup(host: str, path: str) -> object:
        path = canonical_path(path.partition("?")[0] or "/")
        host = host.lower().partition(":")[0]
        best_exact_host: tuple[int, int, Rule] | None = None
        best_wild: tuple[int, int, Rule] | None = None
        exact_host_seen = wild_seen = False
        for rule_host, suffix, is_exact, key, rule_path, rule in table:
            if rule_host == host:
                exact_host_seen = True
            elif suffix is not None and host.endswith(suffix) and "." not in host[: -len(suffix)] \
                    and len(host) > len(suffix):
                wild_seen = True
            else:
                continue
            if is_exact:
                if path != rule_path:
                    continue
                rank = (len(path) + 1, 1)
            else:
                if not (path == key or path.startswith(key + "/")):
                    continue
                rank = (len(key), 0)
            cand = (rank[0], rank[1], rule)
            if rule_host == host:
                if best_exact_host is None or cand[:2] > best_exact_host[:2]:
                    best_exact_host = cand
            elif best_wild is None or cand[:2] > best_wild[:2]:
                best_wild = cand
        if exact_host_seen:
            return None if best_exact_host is None else best_exact_host[2]
        if wild_seen:
            return None if best_wild is None else best_wild[2]
        return None

    return lookup


def _routes(rules: Sequence[Rule], catch_all: str) -> dict[str, list[tuple[str, Rule]]]:
    """Per host, (route template, rule): exact rules first, then the prefix spellings."""
    out: dict[str, list[tuple[str, Rule]]] = {}
    for r in sorted(rules, key=lambda r: (r.ptype != "Exact", r.rid)):
        routes = out.setdefault(r.host, [])
        if r.ptype == "Exact":
            routes.append((r.path, r))
        else:
            key = r.path.rstrip("/")
            routes.extend([(key or "/", r), (key + "/", r), (key + "/" + catch_all, r)])
    return out


def _with_hosts(routers: dict[str, Any], find: Callable[[Any, str], object]) -> Lookup:
    exact = {h: r for h, r in routers.items() if not h.startswith("*.")}
    wild = {h[2:]: r for h, r in routers.items() if h.startswith("*.")}

    def lookup(host: str, path: str) -> object:
        router = exact.get(host)
        if router is None:
            dot = host.find(".")
            router = wild.get(host[dot + 1 :]) if dot > 0 else None
            if router is None:
                return None
        return find(router, path)

    return lookup


def build_matchit(rules: Sequence[Rule]) -> Lookup:
    import matchit

    routers: dict[str, Any] = {}
    for host, routes in _routes(rules, "{*rest}").items():
        router = routers[host] = matchit.Router()
        seen: set[str] = set()
        for template, rule in routes:
            if template not in seen:
                seen.add(template)
                router.insert(template, rule)

    def find(router: Any, path: str) -> object:
        try:
            return router.at(path).value
        except Exception:  # matchit raises on no match
            return None

    return _with_hosts(routers, find)


def build_falcon(rules: Sequence[Rule]) -> Lookup:
    from falcon.routing import CompiledRouter

    class Resource:
        __slots__ = ("rule",)

        def __init__(self, rule: Rule) -> None:
            self.rule = rule

        def on_get(self, req: object, resp: object) -> None: ...

    routers: dict[str, Any] = {}
    for host, routes in _routes(rules, "{rest:path}").items():
        router = routers[host] = CompiledRouter()
        seen: set[str] = set()
        for template, rule in routes:
            if template not in seen:
                seen.add(template)
                router.add_route(template, Resource(rule))
        router.find("/")  # compile now, not during the first timed lookup

    def find(router: Any, path: str) -> object:
        found = router.find(path)
        return None if found is None else found[0].rule

    return _with_hosts(routers, find)


def build_sanic(rules: Sequence[Rule]) -> Lookup:
    from sanic_routing import BaseRouter
    from sanic_routing.exceptions import NotFound

    class Router(BaseRouter):  # type: ignore[misc]
        def get(self, path: str, method: str, extra: Any = None) -> Any:
            return self.resolve(path=path, method=method, extra=extra)

    routers: dict[str, Any] = {}
    for host, routes in _routes(rules, "<rest:path>").items():
        router = routers[host] = Router()
        seen: set[str] = set()
        for template, rule in routes:
            # "/k/<rest:path>" also matches "/k/" in sanic-routing.
            if template not in seen and not (template.endswith("/") and template != "/"):
                seen.add(template)
                router.add(template, rule, methods=["GET"], strict=True)
        router.finalize()

    def find(router: Any, path: str) -> object:
        try:
            return router.get(path, "GET")[1]
        except NotFound:
            return None

    return _with_hosts(routers, find)


def build_dict_get(rules: Sequence[Rule]) -> Lookup:
    """The floor: a bound ``dict.get(host, path)`` (no routing at all)."""
    return {r.host: r for r in rules}.get  # type: ignore[return-value]


BUILDERS: dict[str, Callable[[Sequence[Rule]], Lookup]] = {
    "cython": build_cython,
    "python": build_python,
    "scan": build_scan,
    "matchit": build_matchit,
    "falcon": build_falcon,
    "sanic": build_sanic,
    "dict.get": build_dict_get,
}


def agreement(lookup: Lookup, reference: Lookup, requests: Sequence[tuple[str, str]]) -> float:
    same = sum(lookup(h, p) is reference(h, p) for h, p in requests)
    return same / len(requests)
