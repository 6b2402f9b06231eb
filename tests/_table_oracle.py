"""A brute-force route oracle written straight from SEMANTICS §3-§4, for differential tests.

It scans every served rule for every request: no precomputed groups, no dictionaries keyed by
prefix, no shared code with ``_table`` except the canonical path functions (tested on their own).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ingresslib._errors import BadRequestError
from ingresslib._models import (
    HTTPIngressPath,
    Ingress,
    IngressBackend,
    IngressRule,
    IngressServiceBackend,
    IngressSpec,
    ObjectMeta,
    ServiceBackendPort,
)
from ingresslib._normalize import canonical_path, canonical_rule_path
from ingresslib._resources import Resources


@dataclass(frozen=True)
class Expected:
    ingress: str
    host: str | None
    path: str | None
    path_type: str | None
    service: str | None
    port: int | str | None
    is_default_backend: bool
    canary_ingress: str | None = None


def _served(res: Resources, ingress_class: str | None, controller: str | None) -> list[Ingress]:
    if ingress_class is None and controller is None:
        return list(res.ingresses)
    ok = [
        c
        for c in res.ingress_classes
        if (ingress_class is None or c.metadata.name == ingress_class)
        and (controller is None or c.spec.controller == controller)
    ]
    names = {c.metadata.name for c in ok}
    default = any(
        c.metadata.annotations.get("ingressclass.kubernetes.io/is-default-class") == "true" for c in ok
    )
    out = []
    for ing in res.ingresses:
        cls = ing.spec.ingress_class_name
        if cls is None:
            cls = ing.metadata.annotations.get("kubernetes.io/ingress.class")
        if (cls is None and default) or (cls is not None and cls in names):
            out.append(ing)
    return out


def _age(ing: Ingress) -> tuple[Any, ...]:
    ts = ing.metadata.creation_timestamp
    return (ts is None, ts or 0, ing.metadata.namespace, ing.metadata.name)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
#: strconv.ParseBool's true spellings (the canary flag).
_GO_TRUE = {"1", "t", "T", "TRUE", "true", "True"}


def _norm_host(host: str) -> str:
    h = host.translate(_ASCII_LOWER)  # RFC 4343: A-Z only, never Unicode case folding
    if h.startswith("["):
        end = h.find("]")
        return h[: end + 1] if end >= 0 else h
    h = h.split(":", 1)[0]
    if h.endswith("."):
        h = h[:-1]
    return h


#: RFC 9110 §7.2 reg-name characters the proxy takes in a Host (SEMANTICS §9: no space, "/", "@").
_REG_NAME = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=%")
_IP_LITERAL = frozenset("0123456789ABCDEFabcdef:.")


def host_refused(host: str) -> bool:
    """SEMANTICS §9's "bad Host values (spaces, `/`, `@`, bad ports)" as the proxy reads them
    (RFC 9110 §7.2 ``uri-host [":" port]``, strictly; nginx's ngx_http_validate_host: no empty
    label, not one dot), written out by hand: "" is no host, not a bad one."""
    if not host:
        return False
    if ".." in host:
        return True  # an empty label
    if host.startswith("["):
        close = host.find("]")
        name, rest = (host, "") if close < 0 else (host[: close + 1], host[close + 1 :])
        if close < 2 or not set(name[1:-1]) <= _IP_LITERAL:
            return True
    else:
        name, colon, port = host.partition(":")
        rest = colon + port
        if not name or not set(name) <= _REG_NAME:
            return True
    if rest:
        port = rest[1:]
        if rest[0] != ":" or not 1 <= len(port) <= 5 or not set(port) <= set("0123456789"):
            return True
        if not 1 <= int(port) <= 65535:
            return True
    return name == "."  # nothing once the trailing dot goes


def _backend(b: IngressBackend) -> tuple[str | None, int | str | None]:
    if b.service is None:
        return None, None
    return b.service.name, b.service.port.value


def _matches(rule_canonical: str, ptype: str | None, path: str) -> int | None:
    """The matched length, or None."""
    if ptype == "Exact":
        return len(rule_canonical) if path == rule_canonical else None
    k = rule_canonical.rstrip("/")
    if k == "" or path == k or path.startswith(k + "/"):
        return len(k)
    return None


#: The last Resources the oracle read (with the class filter) and what it drew from them alone:
#: the differential tests ask about many requests against one Resources, and only the request
#: part changes. Held by reference and compared with ``is`` (Resources and its models are
#: frozen), so a recycled id never matches.
_Prepared = tuple[list[Ingress], list[Ingress], set[str | None]]
_last: list[tuple[Resources, str | None, str | None, _Prepared]] = []


def _prepared(res: Resources, ingress_class: str | None, controller: str | None) -> _Prepared:
    """The served canaries and main Ingresses, oldest first, and the main rules' hosts."""
    if _last and _last[0][0] is res and _last[0][1:3] == (ingress_class, controller):
        return _last[0][3]
    served = sorted(_served(res, ingress_class, controller), key=_age)
    # Split on the flag itself: ``i not in mains`` compared whole Ingresses field by field
    # (dataclass equality), quadratic, most of the differential tests' time. Same split.
    canaries = [i for i in served if i.metadata.annotations.get("nginx.ingress.kubernetes.io/canary") in _GO_TRUE]
    mains = [i for i in served if i.metadata.annotations.get("nginx.ingress.kubernetes.io/canary") not in _GO_TRUE]
    rule_hosts = {r.host for i in mains for r in i.spec.rules}
    _last[:] = [(res, ingress_class, controller, (canaries, mains, rule_hosts))]
    return canaries, mains, rule_hosts


def oracle(
    res: Resources, host: str, path: str, ingress_class: str | None = None, controller: str | None = None
) -> Expected | None:
    """Raises BadRequestError exactly when the host (first: §4 "Host first") or the path must
    be rejected."""
    if host_refused(host):  # §9 "bad Host values": a 400, never a route
        raise BadRequestError("invalid Host header", 400)
    if "#" in path:  # §5 "`#` -> 400", the query included
        raise BadRequestError("'#' in request target", 400)
    raw = path.split("?", 1)[0] or "/"
    p = canonical_path(raw)
    canaries, mains, rule_hosts = _prepared(res, ingress_class, controller)
    h = _norm_host(host)
    if h and h in rule_hosts and not h.startswith("*"):
        group: str | None | bool = h
    elif "." in h and h.split(".", 1)[0] and not h.startswith("[") and "*." + h.split(".", 1)[1] in rule_hosts:
        group = "*." + h.split(".", 1)[1]
    elif None in rule_hosts:
        group = None
    else:
        group = False  # no group at all
    best: tuple[Any, ...] | None = None
    best_rule: tuple[Ingress, HTTPIngressPath, str] | None = None
    if group is not False:
        for order, ing in enumerate(mains):
            for ri, rule in enumerate(ing.spec.rules):
                if rule.host != group:
                    continue
                for pi, hp in enumerate(rule.paths or ()):
                    written = hp.path or "/"
                    try:
                        c = canonical_rule_path(written)
                    except BadRequestError:
                        continue
                    n = _matches(c, hp.path_type, p)
                    if n is None:
                        continue
                    # Longest; Exact beats Prefix; /foo/ beats /foo; Prefix beats
                    # ImplementationSpecific; oldest, then namespace/name, then spec order.
                    key = (
                        n,
                        hp.path_type == "Exact",
                        c.endswith("/") and c != "/",  # the canonical path, as the table ranks
                        hp.path_type == "Prefix",
                        -order,
                        -ri,
                        -pi,
                    )
                    if best is None or key > best:
                        best, best_rule = key, (ing, hp, c)
    if best_rule is not None:
        ing, hp, c = best_rule
        service, port = _backend(hp.backend)
        canary = None
        for can, chp, cc in _canary_paths(sorted(canaries, key=_age), group):
            same_key = cc == c if hp.path_type == "Exact" else cc.rstrip("/") == c.rstrip("/")
            if chp.path_type == hp.path_type and same_key and canary is None:
                canary = can.metadata.ref
        return Expected(ing.metadata.ref, group if isinstance(group, str) else None, hp.path, hp.path_type,
                        service, port, False, canary)
    owners = [i for i in mains if group is not False and any(r.host == group for r in i.spec.rules)]
    for cand in [o for o in owners if o.spec.default_backend] + [i for i in mains if i.spec.default_backend]:
        assert cand.spec.default_backend is not None
        service, port = _backend(cand.spec.default_backend)
        return Expected(cand.metadata.ref, group if isinstance(group, str) else None, None, None,
                        service, port, True, _root_canary(canaries, group, owners))
    return None


def _root_canary(canaries: list[Ingress], group: str | None | bool, owners: list[Ingress]) -> str | None:
    """The canary of a default backend (ingress-nginx's implicit root location of the server,
    controller.go createServers/mergeAlternativeBackends): the oldest canary Prefix rule whose
    path is "/" once canonical, on the same host; a named host's only when its oldest Ingress
    with rules has a defaultBackend (else the root location has the controller's default
    upstream, which takes no canary); the catch-all server's (host-less canary) whenever a
    default backend answers at all (the caller's case)."""
    host = group if isinstance(group, str) else None
    if host is not None and not owners[0].spec.default_backend:
        return None
    for can, chp, cc in _canary_paths(canaries, host):  # oldest first
        if chp.path_type == "Prefix" and cc == "/":
            return can.metadata.ref
    return None


def _canary_paths(canaries: list[Ingress], host: str | None | bool) -> Iterator[tuple[Ingress, Any, str]]:
    """Each rule path of ``canaries`` (in the order given) on ``host``, with its canonical path;
    a path that has none is left out."""
    for can in canaries:
        for rule in can.spec.rules:
            if rule.host != host:
                continue
            for chp in rule.paths or ():
                try:
                    yield can, chp, canonical_rule_path(chp.path or "/")
                except BadRequestError:
                    continue


def actual(m: Any) -> Expected | None:
    if m is None:
        return None
    return Expected(m.ingress, m.host, m.path, m.path_type, m.service, m.port, m.is_default_backend,
                    None if m.canary is None else m.canary.ingress)


# --- model builders for tests ------------------------------------------------------------------


def backend(service: str, port: int | str = 80) -> IngressBackend:
    p = ServiceBackendPort(number=port) if isinstance(port, int) else ServiceBackendPort(name=port)
    return IngressBackend(service=IngressServiceBackend(service, p))


def ingress(
    name: str,
    rules: list[tuple[str | None, list[tuple[str | None, str, str]] | None]] = (),  # type: ignore[assignment]
    *,
    namespace: str = "default",
    default: str | None = None,
    cls: str | None = None,
    annotations: dict[str, str] | None = None,
    created: datetime | None = None,
) -> Ingress:
    """``rules``: [(host, [(path, pathType, service), ...] or None for a host-only rule)]."""
    from types import MappingProxyType

    built = tuple(
        IngressRule(
            host=h,
            paths=None if paths is None else tuple(
                HTTPIngressPath(backend=backend(svc), path=p, path_type=t) for p, t, svc in paths
            ),
        )
        for h, paths in rules
    )
    return Ingress(
        metadata=ObjectMeta(name=name, namespace=namespace,
                            annotations=MappingProxyType(dict(annotations or {})), creation_timestamp=created),
        spec=IngressSpec(ingress_class_name=cls, default_backend=backend(default) if default else None, rules=built),
    )
