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
    when the annotation is true (Go's ``strconv.ParseBool``: ``parse_bool``); the hosts of its
    non-wildcard rules with paths get a twin (a ``*.`` host has none, nor a host-only rule); a
    twin that a rule host of any non-canary Ingress names (with paths or not) is a server of
    its own, not a twin; the first Ingress, oldest first, wins a twin. Hosts as written: valid
    rule hosts are DNS-1123 subdomains (lower case, no trailing dot), so that is their normal
    form already."""
    mains, _canaries = _split_canaries(served)
    servers = {rule.host for ing in mains for rule in ing.spec.rules if rule.host}
    twins: dict[str, tuple[str, Ingress]] = {}
    for ing in mains:
        raw = ing.metadata.annotations.get(FROM_TO_WWW)
        if raw is None or parse_bool(raw) is not True:
            continue
        for rule in ing.spec.rules:
            to = rule.host
            # Only a rule with paths asks: ingress-nginx sets ``RedirectFromToWWW`` where a
            # path of the Ingress becomes a location of the host's server (controller.go
            # getBackendServers: "if loc.Redirect.FromToWWW { server.RedirectFromToWWW = true
            # }"), after "if rule.HTTP == nil && host != defServerName { ... continue }".
            if not to or to[:1] == "*" or not rule.paths:
                continue
            twin = to[4:] if to.startswith("www.") else "www." + to
            if twin and twin not in servers and twin not in twins:
                twins[twin] = (to, ing)
    return twins
