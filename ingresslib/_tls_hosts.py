"""Which hosts are TLS hosts, and who may list them: decided from the Ingresses alone.

The hosts an Ingress configures TLS for (what ``ssl-redirect`` and HSTS follow,
:func:`tls_hosts`), the tenancy of ``tls.hosts`` names listed without a rule (:func:`_tenancy`),
and the host-name rules that certificate selection (``_tls.py``) applies to them. No Secret is
read and ``ssl`` is not imported here, so that ``explain --tls`` and the sans-IO side can ask
without loading certificates; ``_tls.py`` loads the certificates, chooses among them, and
re-exports these names.

Differences from ingress-nginx, on purpose (see ``CertificateStore.update`` in ``_tls.py``): a
``tls.hosts`` name without a rule in the same Ingress is still a TLS host (and served, lowest
priority), unless another namespace routes that host (then it is ignored and reported, see
:class:`_Tenancy`). A host that an Ingress without ``tls`` names exactly, under another
Ingress's ``*.`` wildcard, is a TLS host through that wildcard and is redirected to HTTPS, as in
ingress-nginx (its server has no certificate of its own, so the controller sends it as
``emptyUID``, which ``configuration.lua`` deletes from ``certificate_servers``;
``certificate.lua``'s lookup then falls back to the ``*.`` entry, for the handshake and for
``configured_for_current_request``, which ``lua_ingress.lua``'s ``redirect_to_https`` asks).
The www / non-www twin of a host with ``from-to-www-redirect`` is owned by the Ingress asking
for it (see :func:`_www_twins`). Canary Ingresses neither supply a certificate nor make a host a
TLS host, as in ingress-nginx (see :func:`_main_ingresses`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ._models import Ingress
from ._normalize import ascii_lower
from ._resources import Resources
from ._table import _age_key, _split_canaries, served_ingresses
from ._www import FROM_TO_WWW, www_twins

__all__ = ["TLSHosts", "TLSProblem", "client_auth_problem", "tls_hosts"]


@dataclass(frozen=True, slots=True)
class TLSProblem:
    """A TLS entry that could not be used (missing Secret, bad PEM...); the host then gets the
    default certificate, as ingress-nginx does."""

    object: str
    field: str
    message: str
    #: True when a certificate is still served (expired, not yet valid, or expiring within 10
    #: days: ingress-nginx serves those too and only warns, "SSL certificate for server %q
    #: expired" / "is about to expire"; or a broken update of a Secret, whose last good
    #: certificate is kept; or a ``from-to-www-redirect`` twin its host's certificate does not
    #: cover, the host keeping its certificate).
    warning: bool = False

    def __str__(self) -> str:
        return f"{self.object}: {self.field}: {self.message}"


def _norm(host: str) -> str:
    """Lower case, one trailing dot stripped (SEMANTICS §4.1, applied to SNI and tls hosts).
    ASCII only, as :func:`normalize_host` (RFC 4343): Unicode's lower() would let a Kelvin-sign
    SNI ``\u212a.test`` pick ``k.test``'s certificate."""
    host = ascii_lower(host)
    return host[:-1] if host.endswith(".") else host


def _covers(names: frozenset[str], host: str) -> bool:
    """Go's ``Certificate.VerifyHostname`` as ingress-nginx uses it: an exact name, or a
    ``*.`` name standing for exactly one first label. A wildcard host (``*.a.test``) needs the
    same wildcard name."""
    if host in names:
        return True
    if host.startswith("*."):
        return False
    dot = host.find(".")
    return dot > 0 and "*" + host[dot:] in names


def _www_twins(ordered: list[Ingress]) -> dict[str, tuple[str, Ingress]]:
    """``from-to-www-redirect``: twin host -> (rule host, the Ingress asking), normalised: the
    twins the proxy redirects (``_www.www_twins``, one decision for both).

    ingress-nginx gives such a twin its host's certificate when that certificate covers it
    (pkg/util/ingress ``BuildRedirects``: "if srv.SSLCert != nil { if
    ssl.IsValidHostname(from, srv.SSLCert.CN) { r.SSLCert = srv.SSLCert }", and nginx.go
    ``configureCertificates``: "configure(redirect.From, redirect.SSLCert)"), so that
    ``https://www.example.com`` reaches its redirect without a certificate error."""
    return {_norm(twin): (_norm(to), ing) for twin, (to, ing) in www_twins(ordered).items()}


@dataclass(frozen=True, slots=True)
class TLSHosts:
    """The hosts an Ingress configures TLS for (what ``ssl-redirect`` and HSTS follow), as
    :meth:`CertificateStore.update` decides them (:func:`tls_hosts`), and the lookup
    :meth:`CertificateStore.has_tls` makes in them. Calling it answers for one host, so it can
    be given as ``Proxy(tls_hosts=...)``."""

    #: Exact names (lower case, no trailing dot).
    exact: frozenset[str] = frozenset()
    #: Wildcard names by suffix: ``*.example.test`` is ``".example.test"``.
    wildcard: frozenset[str] = frozenset()
    #: Exact names the wildcards do not stand for: hosts another namespace routes, under a
    #: ``tls.hosts`` wildcard listed without a rule (see :meth:`CertificateStore.update`, 3.).
    outside: frozenset[str] = frozenset()

    def __call__(self, host: str) -> bool:
        """Whether ``host`` has TLS: an exact name, or a ``*.`` name standing for exactly its
        first label (as :meth:`CertificateStore.context_for` chooses certificates)."""
        name = _norm(host)
        if name in self.exact:
            return True
        if name in self.outside:
            return False
        dot = name.find(".")
        return dot > 0 and name[dot:] in self.wildcard


def _main_ingresses(res: Resources, ingresses: Iterable[Ingress] | None
                    ) -> tuple[list[Ingress], list[Ingress]]:
    """The Ingresses :meth:`CertificateStore.update` reads, oldest first, split into the
    non-canary ones and the canaries.

    SEMANTICS §4.3: oldest Ingress (creationTimestamp; none = newest) first, then
    namespace/name: RouteTable's order, by RouteTable's own functions, so the two cannot drift
    apart (a naive timestamp of a hand-built model is read as UTC, not a TypeError against an
    aware one; an Ingress given twice counts once, the later definition winning, as it
    routes). ingress-nginx createServers skips canary Ingresses in both its loops ("if
    anns.Canary.Enabled { klog.V(2).Infof("Ingress %v is marked as Canary, ignoring", ingKey);
    continue }"): a canary neither supplies a certificate nor makes a host a TLS host
    (ssl-redirect), whatever its age. Its hosts are the main Ingress's."""
    if ingresses is None:
        every = served_ingresses(res, None, None)[0]
    else:
        every = sorted(ingresses, key=_age_key)
    return _split_canaries(every)


def client_auth_problem(ref: str, key: str, message: str) -> TLSProblem:
    """One problem of an ``auth-tls-secret`` (``proxy/_clientcert.server_auths``'s ``(Ingress
    namespace/name, annotation key, message)``) as ``serve --tls-listen`` logs it and ``check``
    prints it: the host fails closed."""
    return TLSProblem(f"Ingress {ref}", f"metadata.annotations[{key}]",
                      f"{message.split(': ', 1)[-1]}: every request of its hosts answers 503 "
                      "until the Secret is usable")


def _rule_hosts(ordered: Iterable[Ingress]) -> list[set[str]]:
    return [{_norm(r.host) for r in ing.spec.rules if r.host} for ing in ordered]


def _suffix(host: str) -> str | None:
    """``".example.test"`` for ``a.example.test``: the wildcard that stands for ``host``."""
    dot = host.find(".")
    return host[dot:] if dot > 0 and not host.startswith("*.") else None


@dataclass(frozen=True, slots=True)
class _Tenancy:
    """Where the ``tls.hosts`` extension (:meth:`CertificateStore.update`, 3.) applies: only
    within a tenant. A name listed without a rule of its own Ingress applies when no served
    Ingress routes the host, or when the Ingress that routes it (its owner: the oldest
    non-canary Ingress with a rule for it, as certificates are chosen; else, for a
    ``from-to-www-redirect`` twin, the Ingress asking for it, whose redirect answers the twin
    (``_www_twins``); else a ``*.`` rule covering it, as routing falls back) is in the
    listing's namespace. Else another namespace could turn a plain-HTTP host it does not route
    into a TLS host (ssl-redirect, HSTS) served with its own certificate. Decided from the
    Ingresses alone, so that :func:`tls_hosts` and :meth:`CertificateStore.update` agree."""

    #: ``(Ingress index, tls index, hosts index)`` of listings ignored, and why.
    refused: Mapping[tuple[int, int, int], TLSProblem]
    #: Exact hosts that the wildcard listings applying to their suffix do not stand for,
    #: because another namespace routes them -> (their owner, those listings). Neither TLS
    #: hosts through them nor served their certificate. A ``*.`` rule host of an Ingress with
    #: ``tls`` still stands for every host under it, as in ingress-nginx.
    outside: Mapping[str, tuple[Ingress, tuple[tuple[int, int, int], ...]]]
    #: Exact hosts under a suffix that wildcard listings of their owner's namespace AND of
    #: other namespaces apply to -> the owner's namespace's listings, oldest first. Only one
    #: wildcard certificate is chosen for the suffix, the oldest listing's; when it is another
    #: namespace's, such a host is served its own namespace's instead (:func:`_select`).
    shared: Mapping[str, tuple[tuple[int, int, int], ...]]
    #: The ``from-to-www-redirect`` twins (``_www_twins``), owned by the Ingress asking.
    twins: Mapping[str, tuple[str, Ingress]]


def _routed_by(twins: Mapping[str, tuple[str, Ingress]], host: str, by: Ingress) -> str:
    """``by``, the owner of ``host`` (``_Tenancy``), for a message. A twin's owner has no rule
    naming it: say that its redirect is what routes it."""
    twin = twins.get(host)
    if twin is not None and twin[1] is by:
        return (f"namespace {by.metadata.namespace} (Ingress {by.metadata.ref}, whose "
                f"{FROM_TO_WWW} redirects it to {twin[0]!r})")
    return f"namespace {by.metadata.namespace} (Ingress {by.metadata.ref})"


def _tenancy(ordered: list[Ingress], rule_hosts: list[set[str]]) -> _Tenancy:
    owners: dict[str, Ingress] = {}
    for n, ing in enumerate(ordered):
        for host in rule_hosts[n]:
            owners.setdefault(host, ing)
    # A twin the proxy redirects is routed by the Ingress asking for it: its redirect answers
    # the twin before any ``*.`` rule (an exact server_name in ingress-nginx). Else another
    # namespace's listing of the twin (or of a ``*.`` over it) would serve
    # ``https://www.<host>`` its own certificate and make it a TLS host. Rule hosts come
    # first: ``www_twins`` makes no twin of a host a rule names.
    twins = _www_twins(ordered)
    for twin, (_to, ing) in twins.items():
        owners.setdefault(twin, ing)

    def owner(host: str) -> Ingress | None:
        got = owners.get(host)
        suffix = _suffix(host)
        if got is None and suffix is not None:
            got = owners.get("*" + suffix)
        return got

    refused: dict[tuple[int, int, int], TLSProblem] = {}
    # Wildcard listings that apply: suffix -> their namespaces, and the listings.
    wild: dict[str, set[str]] = {}
    wild_at: dict[str, list[tuple[int, int, int]]] = {}
    # Wildcards that a rule host of an Ingress with ``tls`` configures: those stand for every
    # host under them, as in ingress-nginx (see the module's docstring).
    ruled: set[str] = set()
    for n, ing in enumerate(ordered):
        if ing.spec.tls:
            ruled.update(h[1:] for h in rule_hosts[n] if h.startswith("*."))
        for i, tls in enumerate(ing.spec.tls):
            for j, raw in enumerate(tls.hosts):
                host = _norm(raw)
                if host in rule_hosts[n]:
                    continue
                by = owner(host)
                ns = ing.metadata.namespace
                if by is not None and by.metadata.namespace != ns:
                    refused[n, i, j] = TLSProblem(
                        f"Ingress {ing.metadata.ref}", f"spec.tls[{i}].hosts[{j}]",
                        f"ignored: {host!r} is routed by {_routed_by(twins, host, by)} and "
                        "no rule of this Ingress names it; a tls.hosts name without a rule "
                        "applies only to a host no other namespace routes: no certificate from "
                        "this entry, no ssl-redirect or HSTS for it", warning=True)
                elif host.startswith("*."):
                    wild.setdefault(host[1:], set()).add(ns)
                    wild_at.setdefault(host[1:], []).append((n, i, j))
    outside: dict[str, tuple[Ingress, tuple[tuple[int, int, int], ...]]] = {}
    shared: dict[str, tuple[tuple[int, int, int], ...]] = {}
    for host, by in owners.items():
        suffix = _suffix(host)
        if suffix is None or suffix not in wild or suffix in ruled:
            continue
        if by.metadata.namespace not in wild[suffix]:
            outside[host] = (by, tuple(wild_at[suffix]))
        elif len(wild[suffix]) > 1:
            shared[host] = tuple(at for at in wild_at[suffix]
                                 if ordered[at[0]].metadata.namespace == by.metadata.namespace)
    return _Tenancy(refused, outside, shared, twins)


def _configured(ordered: list[Ingress], rule_hosts: list[set[str]],
                tenancy: _Tenancy) -> TLSHosts:
    """The hosts with TLS configured. ingress-nginx gives every rule host of an Ingress with a
    ``tls`` section a certificate, its own or, when that fails, the default one ("Using
    default certificate"), and its ssl-redirect follows that: such a host is redirected to
    HTTPS even when its Secret is missing or broken. ingresslib's own extension (``tls.hosts``
    names without a rule) counts too, within a tenant (``tenancy``, :func:`_tenancy`). Every
    host a certificate is chosen for is one of these (chosen hosts are ``tls.hosts`` names or
    rule hosts of an Ingress with ``tls``), so whether a Secret loads never changes the set:
    it is decided without reading any Secret."""
    configured: set[str] = set()
    for n, ing in enumerate(ordered):
        if ing.spec.tls:
            configured |= rule_hosts[n]
            configured.update(_norm(h) for i, t in enumerate(ing.spec.tls)
                              for j, h in enumerate(t.hosts) if (n, i, j) not in tenancy.refused)
    exact = frozenset(h for h in configured if not h.startswith("*."))
    return TLSHosts(exact, frozenset(h[1:] for h in configured if h.startswith("*.")),
                    frozenset(h for h in tenancy.outside if h not in exact))


def tls_hosts(res: Resources, ingresses: Iterable[Ingress] | None = None) -> TLSHosts:
    """The hosts :meth:`CertificateStore.update` (same arguments) makes TLS hosts, without
    loading a certificate: ``CertificateStore().update(res, ingresses)`` then
    ``store.has_tls(host)`` answers as ``tls_hosts(res, ingresses)(host)``. ``ingresses``:
    the served Ingresses (``RouteTable.served``); None: every Ingress of ``res``.

    What ``serve --tls-listen`` redirects (ssl-redirect) and ``explain --tls`` shows."""
    ordered, _canaries = _main_ingresses(res, ingresses)
    rule_hosts = _rule_hosts(ordered)
    return _configured(ordered, rule_hosts, _tenancy(ordered, rule_hosts))
