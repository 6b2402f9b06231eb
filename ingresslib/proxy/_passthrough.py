"""``ssl-passthrough``: which TLS connections go to a backend untouched, and to which endpoint.

ingress-nginx (``--enable-ssl-passthrough``) puts a TCP proxy of its own on the HTTPS port
(internal/ingress/controller/nginx.go ``setupSSLProxy``; tcpproxy ``TCPProxy.Handle``): it
reads the connection's first bytes, takes the ClientHello's server name, and when a
passthrough server has exactly that name (``TCPProxy.Get``: ``s.Hostname == host``) dials
that server's backend, writes the bytes read so far and pipes both ways (``pipe``: either
copy ending closes both). Any other connection (another name, no name, not a ClientHello)
goes to nginx's own TLS port and is terminated there. Which servers and backends
(controller.go):

* ``createServers``: a host's server is made by the first Ingress, oldest first, with a
  rule for it (canary Ingresses skipped), and ``SSLPassthrough: anns.SSLPassthrough`` is
  that Ingress's annotation (annotations/sslpassthrough: ``GetBoolAnnotation``, Go's
  ``strconv.ParseBool``); another Ingress's annotation for the same host changes nothing.
* ``getConfiguration``: a passthrough server's backend is its root location's, "Ignoring SSL
  Passthrough for location %q" for every other path: the location of a ``/`` rule (Prefix, or
  ImplementationSpecific, which ``SetDefaultNGINXPathType`` reads as Prefix) replaces the
  server's default root location; without one, the root location stays the default
  backend's with an empty Service (``Service: &apiv1.Service{}``), whose ClusterIP and port
  are empty: the dial fails and the client's connection is closed.
* The proxy dials the Service's ClusterIP (kube-proxy then picks an endpoint). nginx.go
  leaves a host whose ``/`` Service does not exist out of the proxy ("Missing Service for SSL
  Passthrough backend"): terminated by nginx; a headless or ExternalName Service has no
  ClusterIP to dial: closed (``undialable``).

ingresslib has no ClusterIP: the ``/`` rule's route is asked for an endpoint by the router,
as a ``GET /`` from the client would be balanced (its balancer, affinity by client address
included), always on the primary backend: a canary on that rule gets no passthrough traffic,
as in ingress-nginx (``_root_pick``, ``Router._primary_pick``), and an Exact ``/`` rule beside
the Prefix one changes nothing (there, a location of its own, never the passthrough backend).
A primary without a ready endpoint (even when its canary has one), or an endpoint that
refuses, closes the client's connection, as a failed dial does there.

This module decides (no sockets); ``ingresslib/_passthrough_pipe.py`` moves the bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .._goparse import parse_bool

__all__ = ["PASSTHROUGH", "PassthroughHosts", "PassthroughRoutes", "passthrough_hosts",
           "undialable"]

_log = logging.getLogger("ingresslib.server")

PASSTHROUGH = "nginx.ingress.kubernetes.io/ssl-passthrough"
_CANARY = "nginx.ingress.kubernetes.io/canary"
#: The rule path types ingress-nginx puts in the server's root location (``/``).
_ROOT_TYPES = frozenset({"Prefix", "ImplementationSpecific"})
#: What ``PassthroughRoutes.decide`` answers for a connection to close.
CLOSE = "close"


@dataclass(frozen=True)
class PassthroughHosts:
    """The passthrough hosts of one route table: host name -> the Match of its ``/`` rule
    (None: no such rule, connections are closed), and the warnings of the build."""

    routes: Mapping[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


def _is_canary(ing: Any) -> bool:
    raw = ing.metadata.annotations.get(_CANARY)
    return raw is not None and parse_bool(raw) is True


def _root_rules(table: Any) -> dict[str, Any]:
    """Rule host -> its ``/`` rule (Prefix or ImplementationSpecific) that the table serves
    (the first, in the table's order, when there are both)."""
    roots: dict[str, Any] = {}
    for m in getattr(table, "routes", ()):
        if (m.host and not m.is_default_backend and m.path == "/"
                and m.path_type in _ROOT_TYPES):
            roots.setdefault(m.host, m)
    return roots


def passthrough_hosts(table: Any, enabled: bool) -> PassthroughHosts:
    """The passthrough hosts of ``table`` (a :class:`RouteTable`; anything without
    ``served`` has none). ``enabled`` False (no ``--enable-ssl-passthrough``): none, and a
    warning per host whose Ingress asks for it, which is then terminated like any other."""
    served = getattr(table, "served", None)
    if not served:
        return PassthroughHosts()
    first: dict[str, Any] = {}
    for ing in served:  # oldest first, as ingress-nginx's ListIngresses
        if _is_canary(ing):
            continue
        for rule in ing.spec.rules:
            if rule.host:
                first.setdefault(rule.host, ing)
    warnings: list[str] = []
    routes: dict[str, Any] = {}

    def say(ing: Any, message: str) -> None:
        warnings.append(f"Ingress {ing.metadata.ref}: annotation {PASSTHROUGH}: {message}")

    asked: set[int] = set()
    for ing in served:
        raw = ing.metadata.annotations.get(PASSTHROUGH)
        if raw is None:
            continue
        value = parse_bool(raw)
        if value is None:
            say(ing, f"invalid value {raw!r} (expected true or false); ignored")
            continue
        if not value:
            continue
        if _is_canary(ing):
            say(ing, "ignored on a canary Ingress (ingress-nginx makes no server of it)")
            continue
        asked.add(id(ing))
        if not any(r.host for r in ing.spec.rules):
            say(ing, "ignored: it applies to the servers of rule hosts, and this Ingress has "
                "none (the host-less rules' server never passes through)")
    roots: dict[str, Any] | None = None
    for host, ing in first.items():
        if id(ing) not in asked:
            continue
        if not enabled:
            say(ing, f"ignored for host {host}: SSL passthrough is off (ingresslib serve "
                "--enable-ssl-passthrough, ProxyServer(ssl_passthrough=True)); its TLS is "
                "terminated here")
            continue
        if "*" in host:
            say(ing, f"ignored for host {host}: a wildcard host never equals a server name "
                "(ingress-nginx's TLS proxy compares the two as written)")
            continue
        if roots is None:
            roots = _root_rules(table)
        root = roots.get(host)
        if root is None:
            say(ing, f"host {host} has no '/' rule (Prefix or ImplementationSpecific): its "
                "passthrough connections are closed (ingress-nginx pipes to the server's root "
                "location, here one without a Service, and its connect fails)")
        routes[host] = root
    for ing in served:
        if id(ing) not in asked:
            continue
        for host in dict.fromkeys(r.host for r in ing.spec.rules if r.host):
            owner = first.get(host)
            if owner is not None and owner is not ing:
                say(ing, f"ignored for host {host}: its server is the older Ingress "
                    f"{owner.metadata.ref}'s, which decides (ingress-nginx: the first Ingress "
                    "of a host makes its server)")
    return PassthroughHosts(routes, tuple(warnings))


def undialable(services: Any, routes: Mapping[str, Any]
               ) -> tuple[dict[str, str | None], list[tuple[str, str]]]:
    """Passthrough host -> what becomes of its connections when ingress-nginx's TLS proxy
    cannot dial its ``/`` rule's Service as the others (None: terminated here; :data:`CLOSE`),
    and a warning for each (the rule's Ingress, the message: ``check`` reports them too).
    nginx.go fills the proxy's ``ServerList`` with ``IP:
    svc.Spec.ClusterIP`` of the root location's Service:

    * no such Service: the upstream has none (controller.go ``createUpstreams``: "Error
      obtaining Service" ``continue`` before ``upstreams[name].Service = s``), and nginx.go
      skips the host ("Missing Service for SSL Passthrough backend %q"): ``TCPProxy.Get``
      gives its connections the default, nginx's own TLS listener, which terminates them;
    * a headless Service (``clusterIP: None``): the proxy dials ``"None:port"``, a name that
      does not resolve, and closes the client's connection;
    * an ExternalName Service: no ClusterIP, the proxy dials ``":port"`` (the controller's
      own addresses), never the external name: closed here.

    A resource backend (no Service) is left to the endpoint pick (none: closed)."""
    known = {(s.metadata.namespace, s.metadata.name): s for s in services}
    verdicts: dict[str, str | None] = {}
    warnings: list[tuple[str, str]] = []
    for host, match in routes.items():
        if match is None or not getattr(match, "service", None):
            continue
        ref = f"{match.namespace}/{match.service}"
        svc = known.get((match.namespace, match.service))
        if svc is None:
            verdicts[host] = None
            warnings.append((match.ingress, f"ssl-passthrough host {host}: its '/' rule's "
                             f"Service {ref} not found: its TLS is terminated here "
                             "(ingress-nginx: \"Missing Service for SSL Passthrough backend\", "
                             "its TLS proxy's default)"))
        elif svc.spec.cluster_ip == "None" or svc.spec.type == "ExternalName":
            verdicts[host] = CLOSE
            warnings.append((match.ingress, f"ssl-passthrough host {host}: its '/' rule's "
                             f"Service {ref} has no ClusterIP (headless or ExternalName): its "
                             "connections are closed "
                             "(ingress-nginx's TLS proxy dials the ClusterIP: \"None\" does "
                             "not resolve, an ExternalName's empty one is the controller's own "
                             "address, never the external name)"))
    return verdicts, warnings


class PassthroughRoutes:
    """A server's passthrough decisions: rebuilt (and its warnings logged) whenever the
    router's table changes; which hosts' Services cannot be dialed (:func:`undialable`),
    whenever its Resources or the hosts change (Services change without a table rebuild)."""

    __slots__ = ("enabled", "_table", "_hosts", "_checked", "_undialable", "_warned")

    def __init__(self, enabled: bool) -> None:
        self.enabled = bool(enabled)
        self._table: Any = None
        self._hosts = PassthroughHosts()
        #: The (Resources, PassthroughHosts) that ``_undialable`` was computed for.
        self._checked: tuple[Any, Any] = (None, None)
        self._undialable: dict[str, str | None] = {}
        #: The last check's warnings, logged: the next check logs only new ones.
        self._warned: frozenset[tuple[str, str]] = frozenset()

    def hosts(self, router: Any) -> PassthroughHosts:
        """The passthrough hosts of ``router``'s current table (its warnings logged once per
        table), their Services checked (:meth:`_services_checked`)."""
        table = getattr(router, "table", None)
        if table is not self._table:
            hosts = passthrough_hosts(table, self.enabled)
            for w in hosts.warnings:
                _log.warning("%s", w)
            self._table, self._hosts = table, hosts
        if self._hosts.routes:
            self._services_checked(router)
        return self._hosts

    def _services_checked(self, router: Any) -> None:
        """:func:`undialable` for ``router``'s Resources and current hosts, when either
        changed; a warning logged when the previous check did not have it. ``Router.update``
        makes new Resources for every endpoint change, which ingress-nginx applies without
        a word: nginx.go ``generateTemplate`` says "Missing Service for SSL Passthrough
        backend" when nginx.conf is rewritten (``OnUpdate``, which controller.go
        ``syncIngress`` calls only when ``IsDynamicConfigurationEnough`` is false), so a
        warning is not said again until its problem was gone in between."""
        res, hosts = getattr(router, "resources", None), self._hosts
        if self._checked[0] is not res or self._checked[1] is not hosts:
            services = getattr(res, "services", None)
            found, warnings = (({}, []) if services is None
                               else undialable(services, hosts.routes))
            for ingress, message in warnings:
                if (ingress, message) not in self._warned:
                    _log.warning("Ingress %s: %s", ingress, message)
            self._checked, self._undialable = (res, hosts), found
            self._warned = frozenset(warnings)

    def decide(self, router: Any, server_name: bytes | None,
               client_ip: str | None) -> tuple[str, int] | str | None:
        """For a ClientHello's raw ``server_name``: None when the connection is not a
        passthrough one (TLS is terminated here); :data:`CLOSE` when it is one that has
        nowhere to go; else the endpoint to pipe to."""
        # (Asked even when off: a table swapped in by ``router.update`` gets its warnings
        # logged by the first TLS connection after it.)
        routes = self.hosts(router).routes
        if not routes or not server_name:
            return None
        try:
            # DNS names compare without case (a ClientHello's name is ASCII, RFC 6066 §3);
            # ingress-nginx compares as written, and clients send the lower case anyway.
            name = server_name.decode("ascii").lower()
        except UnicodeDecodeError:
            return None
        if name not in routes:
            return None
        match = routes[name]
        if match is None:
            return CLOSE
        if name in self._undialable:
            return self._undialable[name]
        try:
            decision = _root_pick(router, match, name, client_ip)
        except Exception:  # noqa: BLE001 - a router's failure closes this connection only
            _log.exception("ssl-passthrough: routing host %s failed", name)
            return CLOSE
        if (decision is None or decision.endpoint is None
                or getattr(decision, "default_backend", None) is not None):
            # No ready endpoint. Nor is the Ingress's ``default-backend`` annotation's
            # Service, which HTTP requests get when the rule's has no ready endpoint, asked:
            # ingress-nginx pipes to the location's Service (``loc.Service``, which the
            # fallback leaves as it is; only ``loc.Backend`` changes), whose connect then
            # fails.
            return CLOSE
        endpoint: tuple[str, int] = decision.endpoint
        return endpoint


def _root_pick(router: Any, match: Any, name: str, client_ip: str | None) -> Any:
    """The endpoint pick for a passthrough connection to ``name``, whose ``/`` rule is
    ``match``: always from that rule's primary backend, as ingress-nginx dials the root
    location's Service (controller.go: the first location of path ``/`` of the server, the
    Prefix rule's, which replaced the server's default root location; an Exact ``/`` rule is
    a location of its own after it, never the passthrough backend; a canary Ingress makes no
    server and its backend is only an alternative balancer of nginx's Lua, which the TCP
    proxy never sees). ingresslib's :class:`Router` is asked directly
    (``Router._primary_pick``: the rule's balancer, affinity by client address included, as a
    ``GET /`` would be). Another router (without that method) is asked to route a ``GET /``:
    its decision counts only when it is the root rule's (else None: the connection is closed);
    a canary's is kept, that router's primary unknown."""
    pick = getattr(router, "_primary_pick", None)
    if pick is not None:
        return pick(match, name, "/", client_ip)
    decision = router.route("GET", name, "/", (), client_ip)
    if decision is None or decision.match is not match:
        return None
    return decision
