"""``from-to-www-redirect``: which www / non-www twin hosts the annotation creates.

One decision for the two readers that must agree on it: the proxy core and the ASGI adapter
redirect a twin (``proxy/_actions.py`` ``RouteOptionsSource._www_twins``), and the certificate
store serves a twin its host's certificate (``_tls.py``; who owns a twin for the tenancy rule:
``_tls_hosts.py``). A module of its own so that the sans-IO proxy package takes it without
``_tls``'s ``ssl``.

internal/ingress/controller/nginx.go ``buildRedirects`` (ingress-nginx): for each server with
``RedirectFromToWWW``, "to := srv.Hostname ... if strings.HasPrefix(to, "www.") { from =
strings.TrimPrefix(to, "www.") } else { from = fmt.Sprintf("www.%v", to) }", skipped when
"esrv.Hostname == from" for any server ("Already exists an Ingress with %q hostname. Skipping
creation of redirection"). Servers come from non-canary Ingresses only (``createServers``:
"Ingress %v is marked as Canary, ignoring").

``server-alias`` names take no part, as in ``buildRedirects``: it compares the twin with each
server's ``Hostname`` only, and an alias gets no twin (``to := srv.Hostname``). A twin that
is also another server's alias stays the redirect: nginx.tmpl writes the redirect servers
before the others, and nginx keeps the first server of a ``server_name`` ("conflicting server
name ... ignored"); ``_actions``' check of the twin hosts before routing gives the same
(tests/test_seams_s25.py).
"""

from __future__ import annotations

from collections.abc import Sequence

from ._goparse import parse_bool
from ._models import Ingress
from ._table import _split_canaries

__all__ = ["FROM_TO_WWW", "www_twins"]

#: The annotation (ingress-nginx's name).
FROM_TO_WWW = "nginx.ingress.kubernetes.io/from-to-www-redirect"


def www_twins(served: Sequence[Ingress]) -> dict[str, tuple[str, Ingress]]:
    """twin host -> (rule host, the Ingress asking) for the served Ingresses ``served``,
    oldest first (``RouteTable.served``'s order).

    The rules: canary Ingresses take no part (neither ask nor make a server); an Ingress asks
    when the annotation is true (Go's ``strconv.ParseBool``: ``parse_bool``) for the hosts
    where one of its paths makes a location (``_locations``): a non-wildcard rule host with
    paths gets a twin (a ``*.`` host has none, nor a host-only rule); a twin that a rule host
    of any non-canary Ingress names (with paths or not) is a server of its own, not a twin;
    the first Ingress, oldest first, wins a twin. Hosts as written: valid rule hosts are
    DNS-1123 subdomains (lower case, no trailing dot), so that is their normal form already."""
    mains, _canaries = _split_canaries(served)
    asks = [_asks(ing) for ing in mains]
    if True not in asks:
        return {}  # the usual case: no Ingress has the annotation
    hosts = {rule.host for ing, a in zip(mains, asks) if a for rule in ing.spec.rules
             if rule.host and rule.host[:1] != "*"}
    servers = {rule.host for ing in mains for rule in ing.spec.rules if rule.host}
    twins: dict[str, tuple[str, Ingress]] = {}
    for i, to in _locations(mains, hosts):
        if not asks[i]:
            continue
        twin = to[4:] if to.startswith("www.") else "www." + to
        if twin and twin not in servers and twin not in twins:
            twins[twin] = (to, mains[i])
    return twins


def _asks(ing: Ingress) -> bool:
    raw = ing.metadata.annotations.get(FROM_TO_WWW)
    return raw is not None and parse_bool(raw) is True


def _locations(mains: Sequence[Ingress], hosts: set[str]) -> list[tuple[int, str]]:
    """(index in ``mains``, rule host) for each path of ``mains`` (oldest first) on one of
    ``hosts`` that makes a location of the host's server in ingress-nginx, in their order:
    only such a path sets the server's ``RedirectFromToWWW``.

    internal/ingress/controller/controller.go ``getBackendServers``, for each path: "if
    path.Backend.Service == nil { // skip non-service backends ... continue }"; "nginxPath :=
    rootLocation; if path.Path != "" { nginxPath = path.Path }"; then for a location of the
    server with that path and the same type, "addLoc = false; if !loc.IsDefBackend { ...
    "Location %q already configured for server %q ..." break }", else it replaces the server's
    root location (``createServers``: "Path: rootLocation, PathType: &pathTypePrefix,
    IsDefBackend: true"); "if loc.Redirect.FromToWWW { server.RedirectFromToWWW = true }" is
    only reached when the path replaced that root location or was added ("if addLoc {").
    So the first path, oldest Ingress first, for a (host, path, type) makes the location; a
    later identical one (a duplicate rule, which routes nothing: SEMANTICS §4.3, the oldest
    wins) asks for nothing. A rule without ``http`` makes no location ("if rule.HTTP == nil
    ... continue")."""
    made: set[tuple[str, str, str | None]] = set()
    out: list[tuple[int, str]] = []
    for i, ing in enumerate(mains):
        for rule in ing.spec.rules:
            host = rule.host
            if not host or host not in hosts or not rule.paths:
                continue
            for path in rule.paths:
                key = (host, path.path or "/", path.path_type)
                if key not in made and path.backend.service is not None:
                    made.add(key)
                    out.append((i, host))
    return out
