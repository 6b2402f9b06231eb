"""Router: RouteTable + endpoints + balancers + canary -> Decision (SEMANTICS §6-§8).

Everything a request needs is precomputed at update time into one immutable ``_State``
(the table, one ``_Route`` per route id, each with its backends' endpoints and balancers), and
``update`` publishes a new state with a single attribute assignment. A request thus reads one
consistent snapshot: it can never see the new table with the old endpoints (CPython attribute
stores are atomic). Mutable parts that must survive updates - balancer cycles, EWMA statistics,
canary counters - live in objects the old and new states share by key. An update that changed
only Services and endpoints (same Ingresses: the table is kept) works from what changed
(``_update_endpoints``): the routes on backends whose endpoints changed get new objects, every
other route's are shared with the previous state, with the result a full build would give.

The request path is ``table.match`` + one list index + the per-route object built at update
time: for plain round-robin a ``Rotation`` over prebuilt Decisions (one ``next()``), for
consistent hashing a bucket-table byte, for canary a ``_Route`` with everything resolved.
Decisions are built once per (route, side, endpoint), on the backend's first request (so an
update stays cheap), and reused, so a round-robin, hashing or canary request allocates nothing. Few objects per request matters as
much as few bytecodes: over many routes each distinct object touched is a likely cache miss.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import threading
import time
from zlib import crc32
from array import array
from bisect import bisect_left
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import compress
from operator import attrgetter, is_not
from typing import Any

from ._balance import (
    EMPTY_REQUEST,
    Balancer,
    BalancerFactory,
    BalancerOptions,
    BalancerSpec,
    H11_HEADERS,
    ConsistentHash,
    CookieAffinity,
    Headers,
    RequestContext,
    RoundRobin,
    _normalize_string,
    check_balancer_name,
    make_balancer,
    nginx_uri,
    parse_balancer_spec,
    registered_balancers,
)
from ._canary import CANARY_ANNOTATION, CanaryConfig, WeightSplit, compile_explicit, parse_canary
from ._endpoints import (
    DEFAULT_BACKEND_ANNOTATION,
    ENDPOINT_WEIGHTS_ANNOTATION,
    SERVICE_UPSTREAM_ANNOTATION,
    EndpointIndex,
    EndpointSet,
    custom_default_backend,
    duplicate_notes,
    external_name_problem,
    fqdn_slice_notes,
    last_slices,
    parse_weights,
)
from ._errors import short_repr
from ._goparse import parse_bool, parse_int
from ._hashing import DIRTY, key_bytes
from ._models import EndpointSlice, Ingress, Service
from ._resources import Resources
from ._pick_py import U32
from ._route_state import ROTATION_TYPE, CanaryPick, FastRoute, HashPick, Rotation, http_header
from ._router_delta import Change, ServiceObjects, changed_objects, touched_keys
from ._table import Diagnostic, Match, RouteTable, _gc_paused

__all__ = ["Router", "Decision"]

log = logging.getLogger("ingresslib.router")


@dataclass(frozen=True, slots=True)
class Decision:
    """Where one request goes.

    ``match`` is the rule the table matched (the main rule, also when the canary serves);
    ``served`` is the Match whose backend serves (``match.canary`` when ``canary`` is True).
    ``endpoint`` is None when the backend has no ready endpoint (answer 503).
    """

    service: str | None
    namespace: str
    #: The resolved numeric target port (None when it cannot be resolved).
    port: int | None
    endpoint: tuple[str, int] | None
    canary: bool
    match: Match
    #: The ``Set-Cookie`` header value to add to the response (cookie affinity), or None.
    set_cookie: str | None = None
    #: The Match whose backend serves: ``match`` or ``match.canary``.
    served: Match | None = None
    #: ``"namespace/service:port"`` naming the backend (for logs and metrics).
    backend: str | None = None
    #: Opaque: the backend state used by ``next_endpoint`` and ``observe``.
    handle: Any = field(default=None, repr=False, compare=False)
    #: False when the backend has ``session-cookie-conditional-samesite-none`` with
    #: ``SameSite=None`` and the request's User-Agent mishandles it: its session cookies
    #: (``set_cookie``, and a retry's from ``Router.session_cookie``) leave ``SameSite=None``
    #: out.
    samesite_none: bool = True
    #: The rule's backend has no ready endpoint and its Ingress's ``default-backend``
    #: annotation names a Service that has one: that Service serves (``service``,
    #: ``namespace``, ``port``, ``endpoint`` and ``backend`` are its), and this is its upstream
    #: name as ingress-nginx logs it, ``"custom-default-backend-<namespace>-<service>"``
    #: (controller.go createUpstreams). None otherwise.
    default_backend: str | None = None


# How a backend picks, decided at update time so the request path branches once.
_RR, _PLAIN, _CHASH, _KEY, _CTX = range(5)
# Consistent-hash keys the request path reads without calling the key function.
_KEY_FN, _KEY_URI, _KEY_ADDR, _KEY_HEADER = range(4)
_MATERIALIZE_LOCK = threading.Lock()
_CANARY_BEHAVIOR = "nginx.ingress.kubernetes.io/affinity-canary-behavior"
#: The canary settings that make an Ingress that is not a canary an error in ingress-nginx
#: (canary/main.go Parse: "if !config.Enabled && (config.Weight > 0 || config.Header != "" ||
#: config.HeaderValue != "" || config.Cookie != "" || config.HeaderPattern != "") { return nil,
#: errors.NewInvalidAnnotationConfiguration(canaryAnnotation, "configured but not enabled") }",
#: after which the Ingress is an ordinary one): the weight when strconv.Atoi reads it above 0,
#: the strings when GetStringAnnotation's normalizeString leaves something. Not
#: canary-weight-total (nor a weight of 0): ingress-nginx says nothing of those. True: the
#: integer one.
_CANARY_ONLY: tuple[tuple[str, bool], ...] = (
    ("nginx.ingress.kubernetes.io/canary-weight", True),
    ("nginx.ingress.kubernetes.io/canary-by-header", False),
    ("nginx.ingress.kubernetes.io/canary-by-header-value", False),
    ("nginx.ingress.kubernetes.io/canary-by-header-pattern", False),
    ("nginx.ingress.kubernetes.io/canary-by-cookie", False),
)
#: Handed to balancers that never draw (built-in round-robin, plain consistent hashing).
_UNUSED_RNG = random.Random(0)
#: One shared object per distinct header name/value of the inline canary header rule: every
#: route compares against the same (cache-hot) bytes instead of its own copy.
_INTERNED: dict[bytes, bytes] = {}


def _intern(b: bytes) -> bytes:
    if len(_INTERNED) > 4096:  # bounded: values come from annotations
        _INTERNED.clear()
    return _INTERNED.setdefault(b, b)


#: How a backend picks, worked out from its balancer and endpoints: ``(mode, sticky, keyfn,
#: keyarg, hname, pick)`` as the ``_Backend`` slots of those names.
_Profile = tuple[int, "CookieAffinity | None", Any, int, bytes, Callable[..., "int | None"]]


def _profile(eps: EndpointSet, balancer: Balancer) -> _Profile:
    """How a backend on ``eps`` with ``balancer`` picks (see ``_Backend``)."""
    sticky: CookieAffinity | None = None
    keyfn: Any = None
    keyarg = _KEY_FN
    #: ``$http_NAME`` keys: the lower-case name as bytes (h11 header names are lower case).
    hname = b""
    if type(balancer) is RoundRobin and not eps.weighted:
        mode = _RR
    elif isinstance(balancer, CookieAffinity):
        mode = _CTX
        sticky = balancer
    elif type(balancer) is ConsistentHash:
        mode = _KEY if balancer.subset else _CHASH
        keyfn = balancer.template.fn
        parts = balancer.template.parts
        kinds = [k for k, _ in parts]
        if kinds in (["remote_addr"], ["binary_remote_addr"]):
            keyarg = _KEY_ADDR
        elif kinds in (["uri"], ["document_uri"]):
            keyarg = _KEY_URI
        elif kinds == ["http"] and H11_HEADERS is not None:
            try:
                hname = _intern(parts[0][1].encode("latin-1"))
                keyarg = _KEY_HEADER
            except UnicodeEncodeError:  # cannot be in an h11 header: use the generic path
                pass
    elif getattr(balancer, "uses_request", True):
        mode = _CTX
    else:
        mode = _PLAIN
    return mode, sticky, keyfn, keyarg, hname, balancer.pick


def _implementation(balancer: Balancer) -> tuple[object, ...]:
    """Which of ingress-nginx's balancer implementations ``balancer`` is (balancer.lua
    ``get_implementation``: the ``load-balance`` name, or sticky_balanced / sticky_persistent,
    chash / chashsubset): a backend whose implementation changed gets a new instance."""
    if type(balancer) is ConsistentHash:
        return ConsistentHash, bool(balancer.subset)
    if isinstance(balancer, CookieAffinity):
        return CookieAffinity, balancer.config.mode == "persistent"
    return (type(balancer),)


def _label(eps: EndpointSet, served: Match) -> str | None:
    """``"namespace/service:port"`` naming a backend (None for a resource backend)."""
    return (f"{eps.namespace}/{eps.service}:{served.port}"
            if eps.service is not None else None)


class _Backend:
    """One side (main or canary) of one route: endpoints, balancer, prebuilt decisions.

    Everything is built at update time except a consistent-hash ring (built on the backend's
    first request, ~0.2 ms for 3 endpoints: amortised, and 10,000 eager rings would add
    seconds to every update)."""

    # What ``route`` reads first: slots are laid out in this order, so the request path's
    # fields share the object's first cache line(s).
    __slots__ = ("table", "shift", "keyarg", "decisions", "hname", "keyfn", "cycle", "ready", "eps",
                 "balancer", "pick", "mode", "n", "sticky", "points", "owners", "empty",
                 "match", "served", "canary", "label", "dflt", "errors", "carry")

    def __init__(self, eps: EndpointSet, balancer: Balancer, match: Match, served: Match,
                 canary: bool, prepared: tuple[str | None, _Profile] | None = None) -> None:
        # ``prepared``: the label and profile, which depend only on (eps, served.port) and
        # (eps, balancer): a build works them out once per backend and hands them to every
        # route on it instead of once per rule.
        if prepared is None:
            prepared = (_label(eps, served), _profile(eps, balancer))
        label, profile = prepared
        self.eps = eps
        self.balancer = balancer
        self.match = match
        self.served = served
        self.canary = canary
        self.label = label
        #: ``Decision.default_backend`` of this backend's decisions.
        self.dflt: str | None = None
        #: ``custom-http-errors``: the backend answering for an intercepted status (the
        #: ``default-backend`` annotation's Service; ``Router.error_page``), None: none.
        self.errors: _Backend | None = None
        self.n = len(eps.endpoints)
        self.mode, self.sticky, self.keyfn, self.keyarg, self.hname, self.pick = profile
        #: False until ``materialize`` built the Decisions (on the backend's first request).
        self.ready = False
        #: The Decision without endpoint (503), and one Decision per endpoint: Decision is
        #: frozen, so requests share them and a request without cookie affinity allocates
        #: nothing. Set by ``materialize``.
        self.empty: Decision
        self.decisions: tuple[Decision, ...] = ()
        self.points: list[int] | None = None
        #: () until the ring is loaded: an empty list per backend would be one more object per
        #: rule for the collector to walk.
        self.owners: Sequence[int] = ()
        #: The ring's bucket table (see HashRing): None until the backend's first request.
        self.table: bytes | None = None
        self.shift = 32
        #: Plain round-robin only: the strict cycle as a ``Rotation`` over the
        #: decisions, so a request is one ``next()`` (atomic under the GIL: concurrent requests
        #: never share a tick); retries (``next_endpoint``) leave it alone. A rebuilt backend
        #: starts where the balancer's counter says, so repeated endpoint changes do not always
        #: restart at the first endpoint; one that only a new route table rebuilt goes on from
        #: ``carry``. With no endpoint: the 503 Decision, forever.
        self.cycle: Rotation[Decision] | None = None
        #: The cycle of this rule's side in the previous route table, when that side had the
        #: same balancer and an equal endpoint set (``_carried_cycle``): this one starts at its
        #: next turn, as ingress-nginx's balancer/resty.lua ``sync`` "if not changed then
        #: return" keeps the round-robin's cursor when an update leaves the nodes alone. Or
        #: that turn's index, taken from an older table's cycle when the previous table's
        #: side had no request (an older Rotation would hold that table's Decisions, Match and
        #: Ingress alive). Taken (and dropped) by ``materialize``.
        self.carry: Rotation[Decision] | int | None = None

    def materialize(self) -> None:
        """Build the Decisions (and the round-robin cycle), once, on the backend's first
        request: ~3 us per Decision, so doing it at update time for every backend of a large
        table (30,000-60,000 Decisions at 10,000 rules) would add 0.1-0.5 s to each update.
        Under a lock so concurrent first requests agree on one cycle."""
        with _MATERIALIZE_LOCK:
            if self.ready:
                return
            eps, match, served, canary, label = (self.eps, self.match, self.served,
                                                 self.canary, self.label)
            dflt = self.dflt
            self.empty = Decision(eps.service, eps.namespace, eps.port, None, canary, match,
                                  None, served, label, self, default_backend=dflt)
            decs = self.decisions = tuple(
                Decision(eps.service, eps.namespace, eps.port, ep, canary, match, None, served,
                         label, self, default_backend=dflt) for ep in eps.endpoints)
            if self.mode == _RR:
                if self.n:
                    self.cycle = Rotation(decs, self._start())
                else:
                    self.cycle = Rotation((self.empty,))
            self.ready = True  # published last

    def _start(self) -> int:
        """Where the round-robin cycle starts: the carried cycle's next turn (taken from it,
        so a turn given back to it, or one a request on the previous state took meanwhile,
        is not served twice) or the turn's index carried, else where the balancer's counter
        says (a new or changed endpoint set: ingress-nginx's ``reinit`` starts at a random
        node, R10)."""
        old, self.carry = self.carry, None
        k = _turn_of(old, self.eps)
        if k is not None:
            return k
        return next(self.balancer.counter) % self.n  # type: ignore[attr-defined, no-any-return]

    def fast_entry(self) -> Any:
        """What the request path's list holds for this backend's route (no canary): its
        ``Rotation`` (plain round-robin), a ``HashPick`` (consistent hashing on the path, the
        client address or one header, bucket table built), else this ``_Backend``."""
        if self.cycle is not None:
            return self.cycle
        points = self.points
        if (self.mode == _CHASH and self.table and self.decisions and points is not None
                and self.keyarg in (_KEY_URI, _KEY_ADDR, _KEY_HEADER)):
            # HashPick's kinds are these same numbers (1 path, 2 address, 3 header); the ring
            # goes packed, without its sentinel.
            return HashPick(self, self.keyarg, self.hname if self.keyarg == _KEY_HEADER else None,
                            self.table, self.shift, self.decisions, H11_HEADERS,
                            array(U32, points[:-1]).tobytes(), bytes(self.owners[:-1]))
        return self

    def load_ring(self) -> None:
        """Build (once) the consistent-hash ring and its bucket table (see HashRing)."""
        ring = self.balancer.ring(self.eps)  # type: ignore[attr-defined]
        self.owners = ring.owners
        self.points = ring.points
        tab: bytes = ring.build_table()
        self.shift = ring.shift
        # Published last: a reader seeing the table sees the ring and its shift. b"" (255+
        # endpoints) keeps every request on the bisect path.
        self.table = tab

    def hashed(self, key: bytes) -> Decision:
        """The Decision for a consistent-hash key (ring loaded, at least one endpoint)."""
        h = crc32(key)
        tab = self.table
        if tab:
            o = tab[h >> self.shift]
            if o != DIRTY:
                return self.decisions[o]
        return self.hashed_slow(h)

    def hashed_slow(self, h: int) -> Decision:
        """The Decision owning hash ``h``, by bisecting the ring (a DIRTY bucket)."""
        return self.decisions[self.owners[bisect_left(self.points, h)]]  # type: ignore[arg-type]

    def choose(self, method: str, host: str, path: str, headers: Headers,
               client_ip: str | None, query: str | None) -> Decision:
        """Pick for one request (no endpoint tried yet)."""
        if not self.ready:
            self.materialize()
        mode = self.mode
        if mode == _RR:
            return next(self.cycle)  # type: ignore[arg-type]
        if not self.n:
            return self.empty
        if mode == _CHASH:
            if self.table is None:
                self.load_ring()
            key = self.keyfn(method, host, path, query, headers, client_ip)
            return self.hashed(key_bytes(key))
        eps = self.eps
        i: int | None
        if mode == _KEY:
            i = self.balancer.pick_key(  # type: ignore[attr-defined]
                self.keyfn(method, host, path, query, headers, client_ip), eps)
        elif mode == _PLAIN:
            i = self.pick(EMPTY_REQUEST, eps, ())
        else:
            ctx = RequestContext(method, host, path, headers, client_ip, query)
            sticky = self.sticky
            if sticky is not None:
                # The User-Agent is read only when the cookie depends on it.
                sn = sticky.samesite_none(ctx) if sticky.ua_sensitive else True
                i, cookie = sticky.pick_with_cookie(ctx, eps, (), sn)
                if (cookie is not None or not sn) and i is not None:
                    # A new session's cookie; or an old user agent's request, whose Decision
                    # must carry that for the cookie of a retry (``session_cookie``).
                    return Decision(eps.service, eps.namespace, eps.port, eps.endpoints[i],
                                    self.canary, self.match, cookie, self.served, self.label,
                                    self, sn, self.dflt)
            else:
                i = self.pick(ctx, eps, ())
        if i is None or not 0 <= i < self.n:
            return self.empty
        return self.decisions[i]


def _reiterable(headers: Headers) -> Headers:
    """``headers`` as something that can be read more than once: a one-shot iterator (a
    generator of pairs: CONTRACT's "an iterable of (name, value) pairs") as a list, since a
    request's header rule, cookie rule, affinity cookie and hash key each read the headers;
    anything else as it is."""
    try:
        if iter(headers) is headers:
            return list(headers)
    except TypeError:
        pass  # not iterable: whichever read needs it says so, as before
    return headers


class _Route:
    # Request-path fields first (slot order is memory order: fewer cache lines per request).
    __slots__ = ("hname", "hyes", "hno", "sticky", "steps", "yes_cycle", "no_cycle", "explicit",
                 "split", "yes", "no", "main", "canary", "cfg", "pickable")
    explicit: Callable[[Headers], bool | None] | None

    def __init__(self, main: _Backend, canary: _Backend | None, cfg: CanaryConfig | None,
                 split: WeightSplit | None) -> None:
        self.main = main
        self.canary = canary
        self.cfg = cfg
        self.split = split
        #: Header or cookie rules to evaluate before the weight (None: there are none).
        self.explicit = compile_explicit(cfg) if cfg is not None and (
            cfg.header is not None or cfg.cookie is not None) else None
        #: The common header rule (a header and optional exact value, no pattern, no cookie)
        #: read inline from ``h11.Headers``: name, value meaning "canary", value meaning
        #: "never" (None: none). Same answers as ``explicit`` (which handles everything else).
        self.hname: bytes | None = None
        self.hyes: bytes | None = None
        self.hno: bytes | None = None
        if (cfg is not None and cfg.header is not None and cfg.header_bytes is not None
                and cfg.header_pattern is None and cfg.cookie is None
                and (cfg.header_value is None or cfg.header_value.isascii())
                and H11_HEADERS is not None):
            try:
                self.hyes = _intern((cfg.header_value if cfg.header_value is not None
                                     else "always").encode("latin-1"))
                self.hno = b"never" if cfg.header_value is None else None
                self.hname = _intern(cfg.header_bytes)
            except UnicodeEncodeError:
                pass
        #: Session affinity on either side keeps a session on its side.
        self.sticky = canary is not None and (main.sticky is not None
                                              or canary.sticky is not None)
        #: The smooth split's choices (None: random, or ``split.take`` counts in Python).
        self.steps: Iterator[bool] | None = split.steps if split is not None else None
        # The side that serves each choice, resolved now: BETTER: "when one side has no ready
        # endpoint the other serves".
        yes = no = main
        if canary is not None:
            yes = canary
            if not canary.n and main.n:
                yes = main
            if not main.n and canary.n:
                no = canary
        self.yes = yes
        self.no = no
        self.yes_cycle = yes.cycle
        self.no_cycle = no.cycle
        #: True once ``fast_entry`` answered a ``CanaryPick``: the Python path then sees this
        #: route only for a request the pick declined, or from an entry that predates the
        #: pick (``Router._route_entry``).
        self.pickable = False

    def rule_choice(self, method: str, host: str, path: str, headers: Headers,
                    client_ip: str | None, query: str | None) -> bool | None:
        """The side (True: canary) a rule of this canary route chooses for the request - the
        header or cookie rule, then a session pinned to a side - or None: the weight decides
        (``route``; ``Router.give_back`` asks again whether the weight did)."""
        choice: bool | None = None
        hn = self.hname
        if hn is not None and type(headers) is H11_HEADERS:
            v = http_header(headers._full_items, hn)  # type: ignore[union-attr]
            if v is not None:
                if v == self.hyes:
                    choice = True
                elif v == self.hno:
                    choice = False
        else:
            explicit = self.explicit
            if explicit is not None:
                # BETTER: explicit opt-in/opt-out (header, then cookie) is decided before
                # session affinity, so "never" leaves the canary even for a sticky session.
                choice = explicit(headers)
        if choice is None:
            if self.sticky:
                # A session pinned to one side stays there, the main side's first: ingress-nginx
                # balancer.lua route_to_alternative_balancer, "If request is already
                # affinitized to a primary balancer, keep the primary balancer", then "If
                # request is affinitized to an alternative balancer, instruct caller to switch
                # to alternative." (Both can hold when the sides' cookies have different names
                # and the request carries both.)
                c: _Backend = self.canary  # type: ignore[assignment]
                main = self.main
                ctx = RequestContext(method, host, path, headers, client_ip, query)
                if main.sticky is not None and main.sticky.affinitized(ctx, main.eps):
                    choice = False
                elif c.sticky is not None and c.sticky.affinitized(ctx, c.eps):
                    choice = True
        return choice

    def materialize(self) -> None:
        """Build both sides' Decisions on the route's first request: the side a request did
        not pick would otherwise build its own on some later request (~3 us per Decision), a
        hiccup in the middle of steady traffic instead of one cost on the first request."""
        for side in (self.yes, self.no):
            if not side.ready:
                side.materialize()
            if side.mode == _CHASH and side.n and side.table is None:
                side.load_ring()
        self.yes_cycle = self.yes.cycle
        self.no_cycle = self.no.cycle

    def fast_entry(self) -> Any:
        """What the request path's list holds for this route: a ``CanaryPick`` when the choice
        needs no session, cookie or pattern and both sides are built round-robins (then the
        whole pick runs without Python code), else this ``_Route``."""
        yes, no = self.yes_cycle, self.no_cycle
        if (not self.sticky and self.steps is not None
                and (self.hname is not None or self.explicit is None)
                and yes is not None and no is not None
                and isinstance(yes, ROTATION_TYPE) and isinstance(no, ROTATION_TYPE)):
            self.pickable = True
            return CanaryPick(self, self.hname, self.hyes, self.hno, H11_HEADERS, self.steps,
                              yes, no)
        return self


@dataclass(frozen=True, slots=True)
class _State:
    table: RouteTable
    #: Indexed by ``Match.route_id``; every id the table hands out has an entry.
    routes: list[_Route]
    warnings: tuple[Diagnostic, ...]
    resources: Resources
    #: ``table.match`` (one attribute load on the request path).
    match: Callable[[str, str], Match | None]
    #: What ``route`` reads, keyed by the Match a lookup returns (Matches hash by identity,
    #: so a lookup reads nothing of the Match): the route's ``fast_entry()``, replaced by the
    #: route's first request once its state is built.
    fast: dict[Match, Any]
    #: ``Router.no_endpoint``.
    no_endpoint: tuple[Diagnostic, ...] = ()


def _rule_key(m: Match) -> tuple[Any, ...]:
    """A rule's identity from one route table to the next (its Match is a new object in each),
    as the canary split's key."""
    return (m.ingress, m.host, m.path, m.path_type, m.is_default_backend)


def _round_robin_sides(state: _State) -> dict[tuple[Any, ...], _Backend]:
    """The plain round-robin sides of ``state`` that have a cycle to go on with (built by a
    request, or carrying an older one), by ``(rule key, canary side)``. Two routes of one key
    (the global default and the host-less group's, both an Ingress's defaultBackend with no
    host: only one of them is reachable in a table): the one whose cycle requests built."""
    found: dict[tuple[Any, ...], _Backend] = {}
    for r in filter(None, state.routes):  # (a canary Match's id holds None)
        for side in (r.main, r.canary):
            if (side is not None and side.mode == _RR and side.n
                    and (side.cycle is not None or side.carry is not None)):
                key = (_rule_key(r.main.match), side.canary)
                had = found.get(key)
                if had is None or (had.cycle is None and side.cycle is not None):
                    found[key] = side
    return found


def _turn_of(carry: Rotation[Decision] | int | None, eps: EndpointSet) -> int | None:
    """Where in ``eps`` a carried cycle goes on (``_Backend.carry``): an index as is, a
    Rotation's next turn (taken from it); None: nowhere (none, or an endpoint not in ``eps``)."""
    if carry is None or isinstance(carry, int):
        return carry
    endpoint = next(carry).endpoint
    return eps.endpoints.index(endpoint) if endpoint in eps.endpoints else None


def _carried_cycle(old: _Backend | None, made: _Backend) -> Rotation[Decision] | int | None:
    """The cycle ``made`` (a rule's side in a new route table) goes on from: its old side's,
    when that had the same balancer, default backend and an equal endpoint set (ingress-nginx:
    the same balancer instance, whose ``sync`` returns early on unchanged nodes). An old side
    that had no request hands on its own carry: an index as is, an older table's cycle as the
    index of its next turn, taken now (x50 s36: that Rotation held its table's Decisions,
    Match and Ingress, one generation per rule with sparse traffic; no request of the new
    table can race for it, and one of the previous table's still takes a turn of its own)."""
    if (old is None or old.balancer is not made.balancer or old.dflt != made.dflt
            or not (old.eps is made.eps or old.eps == made.eps)):
        return None
    return old.cycle if old.cycle is not None else _turn_of(old.carry, made.eps)


class _Side:
    """One backend of a build - (namespace, service, port, service-upstream, balancer spec,
    side) - with what every route on it shares, and which route sides those are: an update
    that changed one Service's endpoints rebuilds these routes only (``_update_endpoints``)."""

    __slots__ = ("eps", "balancer", "prepared", "port", "upstream", "canary", "users", "first")

    def __init__(self, eps: EndpointSet, balancer: Balancer, prepared: tuple[str | None, _Profile],
                 port: int | str | None, upstream: bool, canary: bool, first: Match) -> None:
        self.eps = eps
        self.balancer = balancer
        self.prepared = prepared
        self.port = port
        self.upstream = upstream
        #: Which side of its routes this backend is (part of the backend key).
        self.canary = canary
        #: The route ids of every route on this backend (on side ``canary``).
        self.users: list[int] = []
        #: The Match of the first route on it (the one its warnings name).
        self.first = first


@dataclass(slots=True)
class _Wiring:
    """What a build of the current state knows that an endpoint-only update reuses."""

    #: ``(namespace, service)`` -> the backends on that Service.
    by_service: dict[tuple[str, str], list[_Side]]
    #: The warnings that do not depend on the Services' contents: the notes on objects given
    #: twice too (an update touching a twin rebuilds), and "failed to start" (its fallback
    #: serves until a build drops the backend or tries a replaced factory).
    route_warnings: tuple[Diagnostic, ...]
    #: The Services' warnings, in ``resources.services`` order.
    service_warnings: tuple[Diagnostic, ...]
    #: The FQDN EndpointSlices' warnings (``_slices_warnings``).
    slice_warnings: tuple[Diagnostic, ...]
    #: The Service backends with no endpoint (``_no_endpoint_notes``), and what is said of them.
    empty: set[_Side]
    no_endpoint: tuple[Diagnostic, ...]
    #: The inputs besides the Resources that the build's balancers depend on.
    load_balance: str
    factories: dict[str, BalancerFactory]
    #: True when a route is served by a ``default-backend`` annotation's Service: which routes
    #: that is depends on two Services' endpoints, so endpoint-only updates build in full.
    custom_default: bool = False


def _service_warnings(svc: Service) -> list[Diagnostic]:
    """What is wrong with one Service (its backends answer 503 or ignore the weights)."""
    out: list[Diagnostic] = []
    if svc.spec.type == "ExternalName" and svc.spec.external_name:
        # Said once per Service (ingress-nginx logs it with klog.Errorf); every
        # backend on it answers 503.
        problem = external_name_problem(svc.spec.external_name)
        if problem is not None:
            out.append(Diagnostic(f"Service {svc.metadata.ref}", "spec.externalName", problem))
    text = svc.metadata.annotations.get(ENDPOINT_WEIGHTS_ANNOTATION)
    if text:
        for msg in parse_weights(text)[2]:
            out.append(Diagnostic(f"Service {svc.metadata.ref}",
                                  f"metadata.annotations[{ENDPOINT_WEIGHTS_ANNOTATION}]", msg))
    return out


def _services_warnings(services: Sequence[Service], in_use: Callable[[Service], bool]
                       ) -> tuple[Diagnostic, ...]:
    """The warnings of every Service in use (of one given twice, the later definition: the
    earlier one's would be about a Service nothing uses, or say the same thing twice)."""
    out: list[Diagnostic] = []
    said: set[tuple[str, str]] = set()  # the same object given twice is "in use" twice
    for svc in services:
        if (svc.spec.type == "ExternalName" or svc.metadata.annotations.get(
                ENDPOINT_WEIGHTS_ANNOTATION)) and in_use(svc):  # else none: no call per Service
            key = (svc.metadata.namespace, svc.metadata.name)
            if key not in said:
                said.add(key)
                out += _service_warnings(svc)
    return tuple(out)


_address_type = attrgetter("address_type")


def _empty_order(side: _Side) -> tuple[int, bool]:
    # The order a build meets the backends in (each is made at its first route's rule, the
    # main side first), whichever way the set of them was reached.
    return side.users[0], side.canary


def _no_endpoint_notes(empty: Iterable[_Side], routes: Sequence[Any]
                       ) -> tuple[Diagnostic, ...]:
    """A warning per Service backend with no ready endpoint, naming the first Ingress on it
    and why (``EndpointSet.reason``: ``"Service shop/site has no port named 'htpp' (its
    ports: 'http' 80)"``): every request to it answers 503 (but where the route's other side,
    canary or main, has endpoints: R2), the commonest surprise of a new setup, and
    ingress-nginx logs it on every sync ("Service %q does not have any active
    Endpoint."). Only backends with none are ever looked at: a build or update of healthy
    backends does no work for this. ``routes``: the state's routes, whose backends hold the
    endpoint sets (``_update_endpoints`` commits them to the sides last)."""
    # One note per backend: routes on one Service port with other balancer annotations or
    # service-upstream hold sides of their own (same endpoints, same reason), and the note
    # names the first Ingress on the backend, not one per side (docs/router.md "Warnings").
    groups: dict[tuple[str, str | None, int | str | None, bool], list[_Side]] = {}
    for side in sorted(empty, key=_empty_order):
        m = side.first
        groups.setdefault((m.namespace, m.service, m.port, side.canary), []).append(side)
    notes: dict[Diagnostic, None] = {}
    for group in groups.values():
        side = group[0]
        m, canary = side.first, side.canary
        first = routes[side.users[0]]
        eps = (first.canary if canary else first.main).eps
        # R2: a route whose other side (main or canary) has endpoints is served by it, so the
        # backend's requests there do not answer 503. A route is on one main side and at most
        # one canary side: the group's sides have disjoint users (no route counted twice).
        served = total = 0
        for s in group:
            total += len(s.users)
            for rid in s.users:
                r = routes[rid]
                other = r.main if canary else r.canary
                if other is not None and other.eps.endpoints:
                    served += 1
        other_name = "main" if canary else "canary"
        if not served:
            effect = "every request answers 503"
        elif served == total:
            effect = f"the {other_name} backend serves its requests"
        else:
            effect = (f"every request answers 503 except on the {served} of its {total} "
                      f"routes whose {other_name} backend serves them")
        port = f"port {m.port!r}" if isinstance(m.port, str) else f"port {m.port}"
        what = "canary backend" if canary else "backend"
        notes[Diagnostic(f"Ingress {m.ingress}", "",
                         f"{what} {m.service} {port}: {effect}: {eps.reason}")] = None
    return tuple(notes)


def _holds_endpoint_objects(res: Resources) -> bool:
    """The Resources hold a Service, EndpointSlice or v1 Endpoints: their backends' missing
    endpoints are warned of. Ingresses alone are a check of the Ingresses alone (every
    backend would be "not found"): ``Router.no_endpoint`` still lists them."""
    return bool(res.services or res.endpoint_slices or res.endpoints)


def _slices_warnings(slices: Sequence[EndpointSlice]) -> tuple[Diagnostic, ...]:
    """The warnings of the FQDN EndpointSlices in use (of one given twice, the later
    definition, as EndpointIndex uses it): an address the proxy must not connect to gets no
    traffic (``fqdn_slice_notes``). FQDN slices are deprecated and rare: without one, a scan
    in C (``in`` over ``map``) and no call per slice."""
    if "FQDN" not in map(_address_type, slices):
        return ()
    return tuple(fqdn_slice_notes(last_slices(slices)))


#: What a build works out once per Ingress (see ``Router._build_state``): ``(obj, annotations,
#: their items, service-upstream, its warning, balancer spec, the spec's problems)``; the spec
#: is None for cookie affinity, whose default cookie path is each rule's own.
_IngressInfo = tuple[str, Mapping[str, str], tuple[tuple[str, str], ...], bool, "str | None",
                     "BalancerSpec | None", list[tuple[str, str]]]


#: A balancer factory that raised: (its kind, the message saying so, whether it was the
#: Router's default tried in its place - said on ``Router: load_balance`` whoever uses the
#: backend). Where the first one is said depends on each Ingress using the backend
#: (``say_failures``): Ingresses with equal balancer annotations on one Service share it.
_Failure = tuple[str, str, bool]
#: A backend whose balancer factory raised: what its fallback depends on (that factory, the
#: Router's default kind and that kind's factory: a change of any makes the next build try
#: again) and the factories that failed.
_Fallback = tuple[tuple[Any, ...], tuple[_Failure, ...]]
_LOAD_BALANCE = "nginx.ingress.kubernetes.io/load-balance"
#: The annotation that chose a built-in kind that does not come from ``load-balance``.
_KIND_ANNOTATION = {"sticky": "nginx.ingress.kubernetes.io/affinity",
                    "chash": "nginx.ingress.kubernetes.io/upstream-hash-by"}


def _behaviour_problem(behaviour: str | None) -> str | None:
    """What is wrong with an ``affinity-canary-behavior`` value (None: nothing). ingress-nginx
    validates it as one of "sticky", "legacy" (sessionaffinity/main.go ``ValidateOptions``);
    anything else means sticky (only "legacy" turns the main rule's affinity off). The value
    is read as ``parser.GetStringAnnotation`` returns it (``_normalize_string``: " legacy " is
    "legacy"; ``ValidateOptions(..., true, true)`` trims too)."""
    if behaviour is not None and _normalize_string(behaviour) not in ("sticky", "legacy"):
        return f"unsupported value {behaviour!r} (sticky, legacy); using sticky"
    return None


#: An update where more than this many objects of a kind (plus a quarter of them) changed
#: rebuilds the whole state instead of following the change.
_CHANGE_LIMIT = 64


def _derive_seed(seed: int | None, key: str) -> random.Random:
    if seed is None:
        return random.Random()
    digest = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _equal_but_versions(old: tuple[Any, ...], new: tuple[Any, ...]) -> bool:
    """``old == new`` for two tuples of models, ``metadata.resource_version`` aside.

    The API server bumps an object's resourceVersion on every write, a status write included
    (``status.loadBalancer``, which a controller beside this one writes often), and the store
    keeps that newest object (``_store._put``) without counting it a change. Compared with it,
    the next snapshot's Ingress tuple (sent for an endpoint change) would be unequal and cost a
    whole table build (at 2,000 Ingresses about 140 ms, against 1 ms for the endpoint-only
    path) for nothing a route is built from: no route, warning or served list reads
    resource_version. The kept table then holds the older of the two objects, equal in every
    other field (``table.served`` and ``resources.ingresses`` are then equal, not identical).
    ingress-nginx likewise builds its model anew and finds it equal (controller.go
    syncIngress: "No configuration change detected, skipping backend reload").

    One pass: the lengths first (a tuple's ``==`` compares the items before the lengths),
    then only the pairs that are not the same object (skipped in C, as ``_router_delta``
    does: a store snapshot keeps the objects of unchanged keys), each compared once
    (``old == new`` followed by a second pass compared every equal Ingress before a changed
    one twice), and only the unequal ones pay for a copy of their metadata.
    """
    if old is new:
        return True
    if len(old) != len(new):
        return False
    for a, b in compress(zip(old, new), map(is_not, old, new)):
        if a == b:
            continue
        ma, mb = getattr(a, "metadata", None), getattr(b, "metadata", None)
        if (type(a) is not type(b) or ma is None or mb is None
                or ma.resource_version == mb.resource_version
                or a != replace(b, metadata=replace(mb, resource_version=ma.resource_version))):
            return False
    return True


def _require_resources(given: object, name: str, call: str) -> None:
    """The TypeError of ``Router(x)`` / ``router.update(x)`` for an ``x`` that is no
    ``Resources`` (typed callers never pass one; untyped ones may pass anything)."""
    if isinstance(given, Resources):
        return
    hint = (f"; for files: {call}(ingresslib.load_manifests({short_repr(given)}))"
            if isinstance(given, (str, os.PathLike)) else "")
    raise TypeError(
        f"{name} takes a Resources (from ingresslib.load_manifests(path), "
        "ingresslib.parse_manifests(text) or ingresslib.Resources.from_dicts(objects)), "
        f"not {type(given).__name__} {short_repr(given)}{hint}")


class Router:
    """Routes requests to endpoints: the table, the Services' ready endpoints, the balancers
    and the canary rules of one ``Resources``.

    ``clock`` (default ``time.monotonic``) is the seconds clock of every balancer it makes
    (``BalancerOptions.clock``: EWMA's decay); ``table`` a ``RouteTable`` already built from
    the same ``res``, ``ingress_class`` and ``controller``, used instead of building one (not
    checked; the constructor only: ``update`` builds its own). ``service_upstream``: the
    ConfigMap's ``service-upstream`` (ingress-nginx ``defaults.Backend.ServiceUpstream``), what
    an Ingress without the ``service-upstream`` annotation gets (an annotation, "false" too,
    wins). docs/router.md.

    >>> from ingresslib import parse_manifests
    >>> res = parse_manifests('''
    ... apiVersion: networking.k8s.io/v1
    ... kind: Ingress
    ... metadata: {name: web}
    ... spec:
    ...   rules:
    ...   - http:
    ...       paths:
    ...       - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
    ... ---
    ... apiVersion: v1
    ... kind: Service
    ... metadata: {name: web}
    ... spec: {ports: [{port: 80, targetPort: 8080}]}
    ... ---
    ... apiVersion: discovery.k8s.io/v1
    ... kind: EndpointSlice
    ... metadata: {name: web-1, labels: {kubernetes.io/service-name: web}}
    ... addressType: IPv4
    ... ports: [{port: 8080}]
    ... endpoints: [{addresses: [10.0.0.1]}, {addresses: [10.0.0.2]}]
    ... ''')
    >>> router = Router(res)
    >>> [router.route("GET", "example.test", "/").endpoint for _ in range(3)]
    [('10.0.0.1', 8080), ('10.0.0.2', 8080), ('10.0.0.1', 8080)]
    """

    #: False: every update builds the whole state (what an endpoint-only update must equal;
    #: tests and benchmarks compare the two).
    _incremental = True

    def __init__(self, res: Resources, ingress_class: str | None = None,
                 controller: str | None = None, seed: int | None = None, *,
                 load_balance: str = "round_robin",
                 service_upstream: bool = False,
                 balancers: Mapping[str, BalancerFactory] | None = None,
                 canary_random: bool = False,
                 clock: Callable[[], float] = time.monotonic,
                 table: RouteTable | None = None) -> None:
        # A path ("deploy/") or a list of dicts failed later as "'str' object has no
        # attribute 'ingresses'". Construction only: requests never come here.
        _require_resources(res, "Router", "Router")
        self.ingress_class = ingress_class
        self.controller = controller
        self.seed = seed
        #: The ConfigMap ``load-balance`` default for backends without the annotation.
        self.load_balance = load_balance
        if type(service_upstream) is not bool:
            raise TypeError(f"service_upstream: {service_upstream!r} is not a bool")
        self._service_upstream = service_upstream
        self._own_factories = dict(balancers or {})
        for name in self._own_factories:
            check_balancer_name(name)
        #: True: the canary weight is a seeded random draw per request (ingress-nginx's way)
        #: instead of the exact smooth interleave.
        self.canary_random = canary_random
        self._clock = clock
        self._lock = threading.Lock()
        # Survive updates, keyed by what they belong to; pruned to the keys still in use.
        self._balancers: dict[tuple[Any, ...], Balancer] = {}
        #: The keys of ``_balancers`` holding a fallback put in place of a factory that raised
        #: (the default kind's balancer, or a round-robin): what it depends on and the
        #: factories that failed (``_Fallback``).
        self._fallbacks: dict[tuple[Any, ...], _Fallback] = {}
        self._splits: dict[tuple[Any, ...], WeightSplit] = {}
        #: What the current state's build knows (set with the state), and the Services and
        #: endpoints of its Resources grouped by Service (built on the first endpoint-only
        #: update, then kept in step): an endpoint-only update works from these.
        self._wiring: _Wiring | None = None
        self._objects: ServiceObjects | None = None
        self._state: _State
        #: The current state's ``FastRoute.route`` (what ``Router.route`` calls).
        self._fast_route: Callable[..., Decision | None]
        self._publish(self._build(res, table))

    # --- public surface ------------------------------------------------------------------------

    @property
    def table(self) -> RouteTable:
        """The :class:`RouteTable` of the resources in use (a new one after an ``update`` that
        changed routes)."""
        return self._state.table

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        """Invalid annotations (each naming the Ingress and the annotation) and other problems
        found while wiring routes to backends."""
        return self._state.warnings

    @property
    def no_endpoint(self) -> tuple[Diagnostic, ...]:
        """A warning per Service backend with no ready endpoint (every request to it answers
        503, unless the route's canary or main side has endpoints and serves it: R2) and
        why, on the first Ingress using it: ``Ingress shop/site: backend site port 'htpp':
        every request answers 503: Service shop/site has no port named 'htpp' (its ports:
        'http' 80)``. Also in
        ``warnings`` when the Resources hold any Service, EndpointSlice or v1 Endpoints (with
        Ingresses alone, every backend has none: ``serve`` logs one INFO line then)."""
        return self._state.no_endpoint

    @property
    def resources(self) -> Resources:
        """The :class:`Resources` in use: the last ones given to the constructor or ``update``."""
        return self._state.resources

    def update(self, res: Resources) -> None:
        """Swap to ``res`` atomically. When only Services/endpoints changed (or Ingresses/
        IngressClasses only in ``resourceVersion``), the route table is kept (no rebuild);
        balancer state and canary counters carry over, and only the routes on Services whose
        endpoints changed are rebuilt."""
        # As the constructor refuses it, before the lock and the state: the state in use keeps
        # serving (a dict or None failed deep inside as an AttributeError).
        _require_resources(res, "Router.update", "router.update")
        with self._lock:
            old = self._state
            if self._same_routing_inputs(old.resources, res):
                st = self._update_endpoints(old, res) if self._incremental else None
                if st is None:
                    st = self._build(res, old.table, old)
                self._publish(st)
            else:
                if self._objects is not None:  # keep them for the next endpoint-only update
                    self._follow_objects(old.resources, res)
                self._publish(self._build(res, None, before=old))

    def _rebuild_routes(self) -> None:
        """Rebuild the routes of the resources in use (after ``load_balance`` changed), under
        the lock: an ``update`` made meanwhile by another thread is kept, never undone (reading
        ``resources`` and then calling ``update`` could put older resources back)."""
        with self._lock:
            old = self._state
            self._publish(self._build(old.resources, old.table, old))

    def _set_load_balance(self, load_balance: str, res: Resources | None = None) -> None:
        """Make ``load_balance`` the default balancer and rebuild: ``update(res)``, or the
        routes of the resources in use (``res`` None; nothing to do when the default is
        unchanged). A build that raises leaves the previous default in place, with the state
        it serves (``ProxyServer(load_balance=...)``, ``serve --config``'s ConfigMap edits)."""
        old = self.load_balance
        if res is None and old == load_balance:
            return
        self.load_balance = load_balance
        self._rebuild_or_undo(res, lambda: setattr(self, "load_balance", old))

    def _rebuild_or_undo(self, res: Resources | None, undo: Callable[[], None]) -> None:
        """The build after a default changed: ``update(res)``, or the routes of the resources
        in use (``res`` None); a build that raises calls ``undo`` (the previous default back)
        and raises on."""
        try:
            if res is None:
                self._rebuild_routes()
            else:
                self.update(res)
        except BaseException:
            undo()
            raise

    @property
    def service_upstream(self) -> bool:
        """The ConfigMap ``service-upstream`` default for Ingresses without the annotation
        (read-only: ``_set_service_upstream`` changes it and rebuilds)."""
        return self._service_upstream

    def _set_service_upstream(self, service_upstream: bool, res: Resources | None = None
                              ) -> None:
        """Make ``service_upstream`` the default of Ingresses without the annotation and
        rebuild in full: ``update(res)``, or the routes of the resources in use (``res`` None;
        nothing to do when unchanged). A build that raises keeps the previous default."""
        if type(service_upstream) is not bool:
            raise TypeError(f"service_upstream: {service_upstream!r} is not a bool")
        old = self._service_upstream
        if res is None and old == service_upstream:
            return
        with self._lock:
            self._service_upstream = service_upstream
            # The backends' sides are keyed by the flag: no endpoint-only update from a
            # wiring of the other default.
            self._wiring = None
        self._rebuild_or_undo(res, lambda: setattr(self, "_service_upstream", old))

    def _publish(self, st: _State) -> None:
        self._state = st
        # The request path of this state, published with one attribute store: a request sees
        # the match function and the routes of one state, never one old and one new (CPython
        # attribute stores are atomic).
        fast = FastRoute(st.match, st.fast, self._route_entry).route
        mine = self.__dict__.get("_fast_route")  # the previous state's (None: the first)
        self._fast_route = fast
        if type(self).route is _ROUTER_ROUTE:
            # A plain Router (or a subclass keeping ``route``): the instance attribute
            # shadows the method below, so a call goes straight into FastRoute.route
            # (compiled: no Python frame for round-robin). Decided here, per update, so the
            # request path checks nothing.
            self.route = fast  # type: ignore[method-assign]
        elif mine is not None and self.__dict__.get("route") is mine:
            # The class's ``route`` was replaced since the last state (a patched class):
            # the previous state's path must not go on shadowing it.
            del self.route
        # A subclass's own ``route`` is left to be found on its class (an instance attribute
        # would shadow it); its ``super().route(...)`` reaches ``fast`` through
        # ``_fast_route``. (An instance attribute put there by hand is left alone.)

    def route(self, method: str, host: str, path: str, headers: Headers = (),
              client_ip: str | None = None, *, query: str | None = None) -> Decision | None:
        """The Decision for one request, or None when no rule and no default backend matched.

        ``path`` is the request path without the query (as received); ``query`` (optional)
        feeds ``$request_uri``/``$args``/``$arg_*`` in ``upstream-hash-by``. Raises
        :class:`BadRequestError` as ``RouteTable.match`` does (400: a Host the proxy refuses,
        then a path with no canonical form), before any balancer sees the request.

        A subclass may override it (and call ``super().route(...)``); on a plain Router the
        instance attribute ``route`` is the current state's compiled path, replaced by every
        ``update``, so an assignment ``router.route = f`` lasts only until the next one.
        """
        # Reached through the class: ``super().route(...)`` of a subclass's own ``route``, or
        # ``Router.route(router, ...)``. A plain Router's instances call the published
        # FastRoute directly (see _publish).
        return self._fast_route(method, host, path, headers, client_ip, query=query)

    def _route_entry(self, m: Match, e: Any, fast: dict[Match, Any], method: str, host: str, path: str,
                     headers: Headers, client_ip: str | None, query: str | None
                     ) -> Decision | None:
        """``route`` after the lookup, for every request FastRoute does not answer itself (it
        answers Rotation, CanaryPick and HashPick entries; a pick that declines hands over its
        route object): ``e`` is ``fast[m]`` of the state ``m`` came from, or that object.

        A stale entry: states share the objects of unchanged routes, each state with its own
        entries (an endpoint-only update copies the previous state's dict). A route's first
        request puts its built entry in the dict of the state it was routed by, so a route
        first requested through the previous state (a request in flight while an update
        publishes, or one routed while the update copied the entries) leaves the new state's
        entry on the unbuilt object, and every later request on the Python path. Such an
        entry is replaced on the next request it gets here (the checks below cost nothing on
        the paths FastRoute answers)."""
        # A list first: an ASGI scope's headers, the common type reaching this path (h11's
        # mostly stay in FastRoute); the test costs a list ~110 instructions less this way.
        th = type(headers)
        if th is not list and th is not H11_HEADERS and th is not tuple and th is not dict:
            headers = _reiterable(headers)
        t = type(e)
        if t is _Backend:  # no canary
            tab = e.table
            if tab:  # consistent hashing, ring loaded: inline
                ka = e.keyarg
                if ka != _KEY_FN and fast.get(m) is e:
                    # A HashPick backend whose entry predates its ring (a stale entry: see
                    # above); a request the HashPick declined finds the HashPick there.
                    fast[m] = e.fast_entry()  # type: ignore[union-attr]
                if ka == _KEY_ADDR:
                    key = client_ip or ""
                elif ka == _KEY_URI:
                    key = nginx_uri(path)  # HashPick hands over the paths this changes
                elif ka == _KEY_HEADER and type(headers) is H11_HEADERS:
                    # The key bytes straight from h11 (same bytes as keyfn's str encodes to:
                    # nginx's $http_NAME - repeats joined by ", " - latin-1 decoded, UTF-8
                    # encoded; b"" when absent).
                    kb = http_header(headers._full_items, e.hname)  # type: ignore[union-attr]
                    if kb is None:
                        kb = b""
                    elif type(kb) is not bytes:
                        # An h11.Headers built by hand with a bytearray or memoryview value:
                        # the key as keyfn reads it (header_value: its bytes, latin-1).
                        kb = e.keyfn(method, host, path, query, headers, client_ip).encode(
                            "utf-8", "surrogateescape")
                    elif not kb.isascii():
                        kb = kb.decode("latin-1").encode("utf-8", "surrogateescape")
                    h = crc32(kb)
                    o = tab[h >> e.shift]
                    return e.decisions[o] if o != DIRTY else e.hashed_slow(h)  # type: ignore[no-any-return]
                else:
                    key = e.keyfn(method, host, path, query, headers, client_ip)
                try:
                    h = crc32(key.encode())
                except UnicodeEncodeError:
                    h = crc32(key_bytes(key))
                o = tab[h >> e.shift]
                return e.decisions[o] if o != DIRTY else e.hashed_slow(h)  # type: ignore[no-any-return]
            if not e.ready:  # the backend's first request since it was built
                e.materialize()
                d: Decision = e.choose(method, host, path, headers, client_ip, query)
                # From now on the route's entry is what FastRoute answers itself, if anything.
                fast[m] = e.fast_entry()
                return d
            cycle = e.cycle
            if cycle is not None:
                # Round-robin, built, yet not answered by FastRoute: an entry that predates the
                # build (a stale entry: see above). Put the Rotation in its place.
                fast[m] = cycle
                return next(cycle)  # type: ignore[no-any-return]
            return e.choose(method, host, path, headers, client_ip,  # type: ignore[no-any-return]
                            query)
        r: _Route = e
        if r.pickable and fast.get(m) is r:
            # Built, with a CanaryPick, yet its entry is the route (a stale entry: see
            # above); a request the pick declined finds the pick there.
            fast[m] = r.fast_entry()
        choice = r.rule_choice(method, host, path, headers, client_ip, query)
        if choice is None:
            steps = r.steps
            if steps is not None:
                choice = next(steps)
            else:
                choice = r.split.take()  # type: ignore[union-attr]
        if choice:
            cyc = r.yes_cycle
            if cyc is not None:
                return next(cyc)
            side = r.yes
        else:
            cyc = r.no_cycle
            if cyc is not None:
                return next(cyc)
            side = r.no
        if not side.ready or side.cycle is not None:
            # The route's first request; or a round-robin side built through another route
            # object of the previous state (a full build made this one before that, so it
            # holds no cycle: a stale entry, see above).
            r.materialize()
            fast[m] = r.fast_entry()
        return side.choose(method, host, path, headers, client_ip, query)

    def next_endpoint(self, decision: Decision, tried: Collection[tuple[str, int]], *,
                      request: RequestContext | None = None) -> tuple[str, int] | None:
        """Another ready endpoint of the decision's backend, not in ``tried``, chosen by its
        balancer; None when every endpoint was tried. (§8: "A retry never goes back to an
        endpoint this request already tried while another is untried.")

        ``request`` (optional): the request as it was routed (``RequestContext(method, host,
        path, headers, client_ip, query)``, the arguments ``route`` was given; the proxy
        passes it). Consistent hashing (``upstream-hash-by``) then hashes its key again and
        walks the ring clockwise from the key's point to the first untried endpoint, so the
        same key always retries to the same endpoint (with ``upstream-hash-by-subset``: one of
        the untried endpoints of the key's own subset). Without it, the key is unknown and a
        failed endpoint's retries spread over the survivors in ring shares, not per key. Other
        balancers are asked as before (a context with ``retry`` True)."""
        b = decision.handle
        if not isinstance(b, _Backend):
            return None
        eps = b.eps.endpoints
        if not eps:
            return None
        # Round-robin (``b.cycle``) needs no branch of its own: a retry leaves the requests'
        # cycle (the Rotation) alone, and the balancer's own pick gives the untried endpoints
        # in turn (RoundRobin._spread), so a failed endpoint's retries spread evenly over the
        # survivors (ingress-nginx's retry calls balance() again: even shares either way).
        if request is not None and isinstance(b.balancer, ConsistentHash):
            i = b.pick(request, b.eps, tried)
        else:
            i = b.pick(RequestContext(host=decision.match.host or "",
                                      path=decision.match.path or "/", retry=True), b.eps, tried)
        if i is not None and 0 <= i < len(eps) and eps[i] not in tried:
            return eps[i]
        # A third-party balancer that answered a tried (or no) endpoint: keep the promise anyway.
        for ep in eps:
            if ep not in tried:
                return ep
        return None

    def repick(self, decision: Decision, method: str, host: str, path: str,
               headers: Headers = (), client_ip: str | None = None, *,
               query: str | None = None) -> Decision:
        """The Decision of a request ``route`` answered ``decision`` for, its endpoint chosen
        now (the proxy calls it when a body read whole first is in: nginx picks the peer in
        the balancer phase, at the connect). The rule and the side (main or canary: chosen on
        the head, ingress-nginx's ``balancer.rewrite()``) stay; the endpoint is picked from
        that side's current endpoints. ``decision`` itself when nothing changed since the
        head and its balancer's pick would not differ (round-robin: the head's pick took the
        request's turn; consistent hashing; a session's cookie), when the rule is gone (a
        rebuilt table: the request keeps its backend, as nginx's old worker), or when the
        ``default-backend`` annotation's Service would take over from the rule's (or give it
        back): an upstream switched by a reload in ingress-nginx. A side whose balancer kind
        changed since the head (``load-balance``, affinity, hashing) is picked by the head's
        balancer from the head's endpoints, as ingress-nginx's request keeps the balancer
        instance ``rewrite()`` cached (round-robin: ``decision``). Arguments as ``route``'s."""
        b = decision.handle
        if type(b) is not _Backend:
            return decision
        r = self._current_route(decision.match)
        if r is None:
            return decision
        side = r.canary if decision.canary else r.main
        if side is None:
            return decision
        if side is not b and _implementation(side.balancer) != _implementation(b.balancer):
            # The balancer's kind changed since the head (the ConfigMap's ``load-balance``; an
            # Ingress's annotations, its canary's too, rebuild the rule: above). ingress-nginx's
            # balancer.lua ``sync_backend`` then puts a new instance in place of the backend's
            # ("LB algorithm changed ... resetting the instance") instead of syncing it, and
            # ``get_balancer()`` hands ``balance()`` the instance ``rewrite()`` cached in
            # ``ngx.ctx.balancer`` (a reload's old worker likewise keeps its own): the request
            # is picked by the old kind, from the endpoints it held.
            side = b
        if side is b:
            mode = b.mode
            if mode == _RR or mode == _CHASH or mode == _KEY or b.sticky is not None \
                    or type(b.balancer) is RoundRobin:
                return decision
        if not side.n:
            # As on the head: a side without ready endpoint leaves the other serving.
            other = r.main if decision.canary else r.canary
            if other is not None and other.n:
                side = other
        if side.dflt != b.dflt:
            # The rule's Service lost its last endpoint (or got one back) and the Ingress's
            # default-backend Service serves it now (or no longer): a location's upstream
            # switched, which ingress-nginx does by a reload (controller.go createUpstreams)
            # and its old worker finishes the request with the old one; the upstream head was
            # built for it too (the default backend's X-Code, X-Namespace... or none). (The
            # default-backend Service's own endpoints are picked again as any.)
            return decision
        d: Decision = side.choose(method, host, path, _reiterable(headers), client_ip, query)
        return d

    def give_back(self, decision: Decision, method: str, host: str, path: str,
                  headers: Headers = (), client_ip: str | None = None, *,
                  query: str | None = None) -> None:
        """The request ``route`` answered ``decision`` for never reached an upstream (answered
        here: a body refused while read whole first, the client gone, an access-phase
        refusal, any local answer): the turns its pick took are given back, to be served by
        the next requests. nginx picks the peer in the balancer phase, at the connect
        (ingress-nginx ``balancer.lua`` ``balance()``, ``balancer_by_lua`` run from
        ngx_http_upstream_connect): a request refused before it never takes a round-robin
        turn, and the requests that are served are served in the rotation's order. Given
        back: a round-robin side's turn (its ``Rotation``; with weighted endpoints, the
        smooth weighted pick undone), a new session's turn of ``affinity-mode: persistent``
        (its round-robin among new sessions: ``CookieAffinity.give_back``), and the smooth
        canary split's choice when the weight made it (no header, cookie or session rule
        did: asked again here). Nothing for the other balancers (EWMA's, the hashes' and a
        balanced session's random key take no turn) nor for a random split.
        Arguments as ``route``'s (the request as it was routed)."""
        b = decision.handle
        if type(b) is not _Backend or decision.endpoint is None:
            return
        cycle = b.cycle
        if b.mode == _RR and cycle is not None:
            cycle.give_back(decision)
        elif type(b.balancer) is RoundRobin and b.mode == _PLAIN:
            # Endpoints of unequal weights (smooth weighted round-robin): the pick undone.
            decisions = b.decisions
            for i, d in enumerate(decisions):
                if d is decision:
                    b.balancer.give_back(b.eps, i)
                    break
        elif b.sticky is not None and decision.set_cookie is not None:
            # A new session (its cookie not sent: the proxy and IngressASGI send it only with
            # a connect, as sticky.lua's balance() sets it in the balancer phase): the turn
            # its pick took among new sessions (persistent mode's round-robin) goes back.
            eps = b.eps.endpoints
            if decision.endpoint in eps:
                b.sticky.give_back(b.eps, eps.index(decision.endpoint))
        r = self._current_route(decision.match)
        if r is None or r.canary is None or r.yes is r.no:
            return  # no split (or both its choices serve one side: which was drawn is unknown)
        steps = r.steps
        if steps is None or (b is not r.yes and b is not r.no):
            return
        if r.rule_choice(method, host, path, _reiterable(headers), client_ip, query) is None:
            steps.give_back(b is r.yes)  # type: ignore[attr-defined]

    def error_page(self, decision: Decision, request: RequestContext | None = None
                   ) -> Decision | None:
        """The Decision serving the error page of an intercepted response to ``decision``
        (``custom-http-errors``): an endpoint of its Ingress's ``default-backend`` Service,
        picked round-robin, whose ``default_backend`` is set; None when there is none (no
        annotation, its Service without a ready endpoint, a router-less decision)."""
        b = decision.handle
        if not isinstance(b, _Backend) or b.errors is None:
            return None
        r = request if request is not None else RequestContext()
        d: Decision = b.errors.choose(r.method, r.host, r.path, r._raw, r.client_ip, r.query)
        return d if d.endpoint is not None else None

    def _primary_pick(self, match: Match, host: str, path: str,
                      client_ip: str | None) -> Decision | None:
        """For the package (``proxy/_passthrough.py``): what the primary (non-canary) backend
        of ``match``'s route picks for a ``GET`` of ``path`` without headers from
        ``client_ip``, its balancer asked as for a request; never the canary, and whether
        another rule (an Exact ``/`` beside a Prefix ``/``) would answer that request first
        does not matter. A Decision without endpoint when the backend has none; None when
        ``match`` is no route of the current table."""
        route = self._current_route(match)
        if route is None:
            return None
        return route.main.choose("GET", host, path, (), client_ip, None)

    def _current_route(self, match: Match) -> _Route | None:
        """``match``'s route in the current table, or None when ``match`` is no rule of it (a
        table rebuilt since ``match`` was handed out)."""
        routes = self._state.routes
        rid = match.route_id
        route = routes[rid] if 0 <= rid < len(routes) else None
        return route if route is not None and route.main.match is match else None

    def session_cookie(self, decision: Decision, endpoint: tuple[str, int]) -> str | None:
        """The ``Set-Cookie`` to send when a retry served ``decision`` from ``endpoint``
        instead of ``decision.endpoint``. None: send no cookie.

        A decision that started a session (``set_cookie`` not None) gets a cookie leading to
        ``endpoint``. A request that came with a session keeps its cookie, unless the backend
        has ``session-cookie-change-on-failure: "true"``: then its cookie moves to ``endpoint``
        too. ingress-nginx ``sticky.lua`` ``balance()``: "local should_pick_new_upstream =
        last_failure ~= nil and self.cookie_session_affinity.change_on_failure or
        upstream_from_cookie == nil", and a new upstream gets "self:set_cookie(key)".
        """
        if endpoint == decision.endpoint:
            return decision.set_cookie
        b = decision.handle
        if not isinstance(b, _Backend):
            return None
        sticky = b.sticky
        if sticky is None or (decision.set_cookie is None
                              and not sticky.config.change_on_failure):
            return None
        try:
            index = b.eps.endpoints.index(endpoint)
        except ValueError:
            return None
        return sticky.cookie_for(b.eps, index, decision.samesite_none)

    def observe(self, decision: Decision, endpoint: tuple[str, int], seconds: float,
                ok: bool) -> None:
        """Tell the decision's balancer how a request to ``endpoint`` went (EWMA uses it)."""
        b = decision.handle
        if isinstance(b, _Backend):
            b.balancer.observe(endpoint, seconds, ok)

    # --- internals -------------------------------------------------------------------------------

    @staticmethod
    def _same_routing_inputs(old: Resources, new: Resources) -> bool:
        # The table depends on Ingresses and IngressClasses only (§6: "Endpoints change without
        # a rebuild of the route table"). Models are frozen dataclasses: == is structural,
        # except that ``metadata.resource_version`` is not routing input (_equal_but_versions).
        return (_equal_but_versions(old.ingresses, new.ingresses)
                and _equal_but_versions(old.ingress_classes, new.ingress_classes))

    def _follow_objects(self, old: Resources, new: Resources) -> Change | None:
        """What changed among the Services and endpoints from ``old`` to ``new`` (None: too
        much to follow), with ``self._objects`` brought to ``new`` when it was at ``old`` (and
        dropped when too much changed)."""
        n = max(len(new.services), len(new.endpoint_slices), len(new.endpoints))
        change = changed_objects(old, new, _CHANGE_LIMIT + n // 4)
        objects = self._objects
        if change is None:
            self._objects = None
        elif objects is not None and objects.resources is old:
            objects.apply(change, new)
        return change

    def _update_endpoints(self, old: _State, res: Resources) -> _State | None:
        """The state ``_build(res, old.table, old)`` would give, when only Services and
        endpoints changed, built from what changed: the routes on Services whose endpoints (or
        port resolution) changed get new backends, every other route keeps its objects. None
        when that cannot be told apart from a full build cheaply (then build).

        Why it equals the full build: with the same table, default balancer and factories, a
        full build finds every balancer and canary split in the carried-over maps, makes the
        same warnings except the Services' and the FQDN EndpointSlices', and keeps
        every backend whose endpoint set is equal to its old one (its ``_Route`` is new but
        holds the same backends, config and split: same decisions).
        """
        change = self._follow_objects(old.resources, res)
        wiring = self._wiring
        if (change is None or wiring is None or wiring.load_balance != self.load_balance
                or wiring.factories != self._factories() or wiring.custom_default):
            return None
        objects = self._objects
        if objects is None or objects.resources is not res:
            # The first endpoint-only update (or one after a change too large to follow):
            # group every Service's objects once; later updates follow the changes.
            objects = self._objects = ServiceObjects(res)
        if objects.ambiguous(change):
            return None  # an object given twice changed: which copy wins is the full build's
        routes_before = old.routes
        # The backends whose endpoint set changed: (backend, new endpoints, label and profile).
        changed: list[tuple[_Side, EndpointSet, tuple[str | None, _Profile]]] = []
        for key in touched_keys(change):
            on_service = wiring.by_service.get(key)
            if not on_service:
                continue
            index = objects.index(key)
            if index is None:
                return None
            for side in on_service:
                eps = index.resolve(key[0], key[1], side.port, side.upstream)
                if eps == side.eps:
                    continue  # a full build keeps these backends (and their Decisions)
                first = routes_before[side.users[0]]
                fb = first.canary if side.canary else first.main
                assert fb is not None  # a canary backend's routes have a canary side
                served = fb.served
                changed.append((side, eps, (_label(eps, served), _profile(eps, side.balancer))))
        if changed:
            routes = list(routes_before)
            fast = dict(old.fast)
            # Route id -> its new (main, canary) backends (None: the old one stays).
            rebuilt: dict[int, list[_Backend | None]] = {}
            for side, eps, prepared in changed:
                is_canary = side.canary
                for rid in side.users:
                    r = routes_before[rid]
                    ob: _Backend = r.canary if is_canary else r.main  # type: ignore[assignment]
                    pair = rebuilt.get(rid)
                    if pair is None:
                        pair = rebuilt[rid] = [None, None]
                    pair[is_canary] = _Backend(eps, side.balancer, ob.match, ob.served,
                                               is_canary, prepared)
            for rid, (mb, cb) in rebuilt.items():
                r = routes_before[rid]
                m = r.main.match
                if mb is None:
                    mb = r.main
                if r.canary is None:
                    routes[rid] = _Route(mb, None, None, None)
                    fast[m] = mb.fast_entry()
                else:
                    nr = routes[rid] = _Route(mb, cb or r.canary, r.cfg, r.split)
                    fast[m] = nr.fast_entry()
        else:
            # Same routes: the old state's own list and entries (a route's first request in
            # either state updates the entry both would have).
            routes, fast = routes_before, old.fast
        touched = change[0][0] + change[0][1]
        if any(_service_warnings(svc) for svc in touched):
            # Objects outside the change kept their order (see changed_objects): only a
            # Service with warnings among the changed ones moves the list.
            service_warnings = _services_warnings(res.services, objects.in_use)
        else:
            service_warnings = wiring.service_warnings
        # The same for the FQDN slices: only a changed one can change their warnings (a
        # changed slice with a twin rebuilt above, so which definition is used is as before).
        # (``in`` over ``map``: in C, no call; this runs on every endpoint-only update.)
        sl_removed, sl_added = change[1]
        slice_warnings = (_slices_warnings(res.endpoint_slices)
                          if "FQDN" in map(_address_type, sl_removed)
                          or "FQDN" in map(_address_type, sl_added) else wiring.slice_warnings)
        # The backends with no endpoint: only the changed ones can join or leave.
        empty = wiring.empty
        no_endpoint = wiring.no_endpoint
        if changed:
            empty = set(empty)
            for side, eps, _prepared in changed:
                if eps.endpoints:
                    empty.discard(side)
                else:
                    empty.add(side)
            if empty or wiring.empty:
                no_endpoint = _no_endpoint_notes(empty, routes)
        warnings = wiring.route_warnings + service_warnings
        if slice_warnings:
            warnings += slice_warnings
        if no_endpoint and _holds_endpoint_objects(res):
            warnings += no_endpoint
        for w in warnings:
            log.debug("%s", w)
        state = _State(old.table, routes, warnings, res, old.match, fast, no_endpoint)
        # Committed last: an exception above leaves the wiring of the published state as is.
        for side, eps, prepared in changed:
            side.eps = eps
            side.prepared = prepared
        wiring.service_warnings = service_warnings
        wiring.slice_warnings = slice_warnings
        wiring.empty = empty
        wiring.no_endpoint = no_endpoint
        return state

    def _factories(self) -> dict[str, BalancerFactory]:
        f = registered_balancers()
        f.update(self._own_factories)
        return f

    def _build(self, res: Resources, table: RouteTable | None,
               previous: _State | None = None, before: _State | None = None) -> _State:
        """The state for ``res``. ``previous``: the state in use, when ``table`` is its table
        (unchanged backends are kept whole); ``before``: the state in use, when ``table`` is
        None (a new table: round-robin rules go on from their cycles)."""
        # As RouteTable.build (whose pause this one includes): a large build allocates tens of
        # thousands of objects and no reference cycle, and every collection it set off walked
        # the Resources in the old generations for nothing - about half of a 10,000-rule build.
        with _gc_paused():
            return self._build_state(res, table, previous, before)

    def _build_state(self, res: Resources, table: RouteTable | None,
                     previous: _State | None, before: _State | None = None) -> _State:
        if table is None:
            table = RouteTable.build(res, self.ingress_class, self.controller)
        index = EndpointIndex(res)
        factories = self._factories()
        known = frozenset(factories)
        # A Service, EndpointSlice or v1 Endpoints given twice: the later one is used (as for
        # an Ingress, RouteTable's diagnostics). Kept by endpoint-only updates, which rebuild
        # when a changed object has a twin (ServiceObjects.ambiguous).
        warnings: list[Diagnostic] = duplicate_notes(res)
        warned: set[tuple[str, str, str]] = set()

        def say(obj: str, fld: str, message: str) -> None:
            k = (obj, fld, message)
            if k not in warned:
                warned.add(k)
                warnings.append(Diagnostic(obj, fld, message))

        def warn(ing: Ingress | None, obj: str, key: str, message: str) -> None:
            say(obj, f"metadata.annotations[{key}]" if key else "", message)

        service_upstream_default = self._service_upstream
        if self.load_balance not in known:
            warn(None, "Router", "", f"unknown default load-balance {self.load_balance!r}; "
                 "using round_robin")
            default_lb = "round_robin"
        else:
            default_lb = self.load_balance

        # What is worked out once per build and reused, instead of once per rule. Each cache
        # lives for this build only, so a reload never sees a stale entry, and holds its keys'
        # objects, so the ``id()``s in keys stay unique while it is in use.
        #
        # parse_balancer_spec results by annotation content (and by rule path for cookie
        # affinity, whose default cookie path is the rule's: parse_balancer_spec reads the rule
        # path in that branch only, and only that branch answers "sticky"; a test pins it).
        # Ingresses with the same annotations - most often none - parse once.
        parsed: dict[tuple[Any, str | None], tuple[BalancerSpec, list[tuple[str, str]]]] = {}
        # Per Ingress, by id (each is held by ``res`` for the whole build): (obj, annotations,
        # their items, service-upstream, its warning, spec and its problems - None for cookie
        # affinity, which is parsed per rule path).
        infos: dict[int, _IngressInfo] = {}
        # (namespace, service, port, service-upstream, id(spec), side) -> the backend: what
        # every route on it shares. The same inputs as the balancer key, with the spec by
        # identity (its dataclass hash runs in Python).
        sides: dict[tuple[Any, ...], _Side] = {}
        by_service: dict[tuple[str, str], list[_Side]] = {}
        balancers: dict[tuple[Any, ...], Balancer] = {}
        fallbacks: dict[tuple[Any, ...], _Fallback] = {}
        #: The failures of the fallbacks ``sides`` hold, by the same key.
        failed_sides: dict[tuple[Any, ...], tuple[_Failure, ...]] = {}
        splits: dict[tuple[Any, ...], WeightSplit] = {}
        #: The Service backends with no endpoint (``_no_endpoint_notes``).
        empty: set[_Side] = set()
        #: ``default-backend`` annotations by (namespace, value): ``custom_default_backend``'s
        #: answer; and whether any served rule has one (``_Wiring.custom_default``).
        custom_dflt: dict[tuple[str, str], tuple[EndpointSet | None, int | None, str | None]] = {}
        custom_used = [False]
        #: ``_round_robin_sides(before)``, worked out on first need (a list of at most one).
        old_sides: list[dict[tuple[Any, ...], _Backend]] = []

        def spec_for(ann: Mapping[str, str], items: tuple[tuple[str, str], ...],
                     path: str | None) -> tuple[BalancerSpec, list[tuple[str, str]]]:
            got = parsed.get((items, None))
            if got is None:
                got = parsed.get((items, path))
                if got is None:
                    got = parse_balancer_spec(ann, default_lb, known, path)
                    parsed[(items, path) if got[0].kind == "sticky" else (items, None)] = got
            return got

        def ingress_info(match: Match) -> _IngressInfo:
            ann = match.annotations
            items = tuple(ann.items())
            # annotations/serviceupstream/main.go Parse: "A missing annotation is not a
            # problem, just use the default" (defBackend.ServiceUpstream, the ConfigMap's
            # service-upstream); a present one, invalid included, is its own value.
            upstream = service_upstream_default
            upstream_warning = None
            raw = ann.get(SERVICE_UPSTREAM_ANNOTATION)
            if raw is not None:
                # strconv.ParseBool, as ingress-nginx's parser.GetBoolAnnotation.
                parsed_bool = parse_bool(raw)
                upstream = parsed_bool is True
                if parsed_bool is None:
                    upstream_warning = f"invalid boolean {raw!r}; using false"
            spec, problems = spec_for(ann, items, match.path)
            # A sticky spec depends on the rule path (its cookie path): none kept per Ingress.
            return (f"Ingress {match.ingress}", ann, items, upstream, upstream_warning,
                    None if spec.kind == "sticky" else spec, problems)

        def rule_spec(match: Match) -> tuple[_IngressInfo, BalancerSpec, list[tuple[str, str]]]:
            ing = match.ingress_object
            if ing is None:
                info = ingress_info(match)
            else:
                got = infos.get(id(ing))
                if got is None:
                    got = infos[id(ing)] = ingress_info(match)
                info = got
            spec = info[5]
            if spec is not None:
                return info, spec, info[6]
            spec, problems = spec_for(info[1], info[2], match.path)
            return info, spec, problems

        def fall_back(spec: BalancerSpec, options: BalancerOptions, exc: Exception, tag: str,
                      upstream: tuple[str, str | None, int | str | None]
                      ) -> tuple[Balancer, tuple[_Failure, ...]]:
            """The balancer serving in place of ``spec``'s, whose factory raised ``exc``, and
            the factories that failed. As for an unknown ``load-balance`` value
            (docs/router.md R28): the Router's default kind, unless that is the kind that
            failed or fails too; then the built-in round-robin (a "round_robin" factory of the
            user's may be the one that failed)."""
            failed = [(exc, spec.kind, False)]
            bal: Balancer | None = None
            if spec.kind != default_lb:
                dspec = BalancerSpec(default_lb)
                try:
                    bal = make_balancer(dspec, replace(options, spec=dspec), factories, tag,
                                        upstream)
                except Exception as dexc:  # the default's factory fails too
                    failed.append((dexc, default_lb, True))
            using = default_lb
            if bal is None:
                bal = RoundRobin(options)
                using = "round_robin"
            return bal, tuple((kind, f"balancer {kind!r} failed to start ({err}); using {using}",
                               default) for err, kind, default in failed)

        def say_failures(obj: str, ann: Mapping[str, str], failures: tuple[_Failure, ...]
                         ) -> None:
            """Say, for one Ingress using a fallback, where each failed kind came from: its
            annotation, or the Router's ``load_balance`` (the ConfigMap default) for an
            Ingress without one (or with a value that is not that kind: an unknown one)."""
            raw = ann.get(_LOAD_BALANCE)
            for kind, msg, default in failures:
                if default or (kind == default_lb and (raw is None or raw.strip() != kind)):
                    say("Router", "load_balance", msg)
                else:
                    key = _KIND_ANNOTATION.get(kind, _LOAD_BALANCE)
                    say(obj, f"metadata.annotations[{key}]", msg)

        def backend(match: Match, main: Match, canary: bool) -> _Backend:
            # ``previous`` is only given when the table (so every Match) is the same object.
            # Warnings are said in the same order as per rule before (the spec's, the canary
            # behaviour's, service-upstream's): ``warn`` drops repeats.
            ing = match.ingress_object
            info, spec, problems = rule_spec(match)
            obj, ann, _items, upstream, upstream_warning = info[:5]
            for key, msg in problems:
                warn(ing, obj, key, msg)
            if canary:
                behaviour = ann.get(_CANARY_BEHAVIOR)
                problem = _behaviour_problem(behaviour)
                if problem is not None:
                    warn(ing, obj, _CANARY_BEHAVIOR, problem)
                if spec.kind != "sticky" and (
                        behaviour is None or _normalize_string(behaviour) != "legacy"):
                    # ingress-nginx mergeAlternativeBackend: "if ...SessionAffinity.
                    # CanaryBehavior != "legacy" { priUps.SessionAffinity.DeepCopyInto(
                    # &altUps.SessionAffinity) }": the canary side takes the main rule's cookie
                    # affinity, so a session the weight sent to the canary stays there. (A
                    # canary with its own affinity keeps it: docs/router.md, differences.)
                    main_spec = rule_spec(main)[1]
                    if main_spec.kind == "sticky":
                        spec = main_spec
            if upstream_warning is not None:
                warn(ing, obj, SERVICE_UPSTREAM_ANNOTATION, upstream_warning)
            b_service, b_port, b_upstream = match.service, match.port, upstream
            dflt: str | None = None
            raw_dflt = None if canary or match.service is None else ann.get(
                DEFAULT_BACKEND_ANNOTATION)
            if raw_dflt is not None:
                # ingress-nginx: a location whose upstream has no endpoint is served by the
                # annotation's Service ("custom-default-backend-<ns>-<name>", a copy of the
                # rule's upstream with that Service's endpoints: same balancer settings). Not
                # on a canary side: its Ingress's location annotations are dropped by the
                # canary merge (controller.go mergeAlternativeBackends).
                found_dflt = custom_dflt.get((match.namespace, raw_dflt))
                if found_dflt is None:
                    found_dflt = custom_dflt[(match.namespace, raw_dflt)] = custom_default_backend(
                        index, match.namespace, raw_dflt)
                custom_used[0] = True
                d_eps, d_port, d_problem = found_dflt
                if d_problem is not None:
                    warn(ing, obj, DEFAULT_BACKEND_ANNOTATION, d_problem)
                elif (d_eps is not None and d_eps.endpoints and not index.resolve(
                        match.namespace, match.service, match.port, upstream).endpoints):
                    b_service, b_port, b_upstream = d_eps.service, d_port, False
                    dflt = f"custom-default-backend-{match.namespace}-{d_eps.service}"
            skey = (match.namespace, b_service, b_port, b_upstream, id(spec), canary, dflt)
            side = sides.get(skey)
            if side is None:
                eps = index.resolve(match.namespace, b_service, b_port, b_upstream)
                tag = ".c" if canary else ""
                bkey = (match.namespace, b_service, b_port, b_upstream, spec, tag)
                bal = balancers.get(bkey)
                if bal is None:
                    # First use of this balancer in this build: carried over, unless it is
                    # the fallback for a factory that failed and has been replaced since.
                    bal = self._balancers.get(bkey)
                    fell = self._fallbacks.get(bkey)
                    if fell is not None:
                        if fell[0] == (factories.get(spec.kind), default_lb,
                                       factories.get(default_lb)):
                            # Still serving in its place: said by every build (below), as a
                            # build from scratch (whose factory fails again) says it.
                            fallbacks[bkey] = fell
                        else:
                            bal = None  # a factory or the default changed since: try again
                if bal is None:
                    # Seeding a Random costs ~10 us: only balancers that draw get their own.
                    draws = not ((spec.kind == "round_robin"
                                  and factories.get("round_robin") is RoundRobin)
                                 or (spec.kind == "chash" and not spec.subset))
                    rng = _derive_seed(self.seed, repr(bkey)) if draws else _UNUSED_RNG
                    options = BalancerOptions(ann, rng, self._clock,
                                              spec)
                    try:
                        bal = make_balancer(spec, options, factories, tag, bkey[:3])
                    except Exception as exc:  # a third-party factory failed: say so, keep serving
                        bal, failures = fall_back(spec, options, exc, tag, bkey[:3])
                        fallbacks[bkey] = ((factories.get(spec.kind), default_lb,
                                            factories.get(default_lb)), failures)
                balancers[bkey] = bal
                label = (_label(eps, match) if dflt is None
                         else f"{eps.namespace}/{eps.service}:{b_port}")
                side = sides[skey] = _Side(eps, bal, (label, _profile(eps, bal)),
                                           b_port, b_upstream, canary, match)
                if match.service is not None:
                    by_service.setdefault((match.namespace, b_service or ""), []).append(side)
                    if not eps.endpoints:
                        empty.add(side)
                if fallbacks:
                    fell = fallbacks.get(bkey)
                    if fell is not None:
                        failed_sides[skey] = fell[1]
            if failed_sides:
                # Said for every Ingress using a fallback, not only the one whose backend
                # built it: Ingresses with equal balancer annotations (or none) on one
                # Service share the backend's balancer, each in its own right.
                failed = failed_sides.get(skey)
                if failed is not None:
                    say_failures(obj, ann, failed)
            side.users.append(main.route_id)
            eps, bal, prepared = side.eps, side.balancer, side.prepared
            if previous is not None:
                old_route = previous.routes[main.route_id]
                old = old_route.canary if canary else old_route.main
                if (old is not None and old.balancer is bal and old.dflt == dflt
                        and (old.eps is eps or old.eps == eps)):
                    return old  # nothing changed for this backend: keep its decisions
            made = _Backend(eps, bal, main, match, canary, prepared)
            made.dflt = dflt
            if before is not None and made.mode == _RR and made.n:
                # A new route table (an Ingress changed): the rule's round-robin goes on where
                # it was, unless its backend changed.
                if not old_sides:
                    old_sides.append(_round_robin_sides(before))
                made.carry = _carried_cycle(old_sides[0].get((_rule_key(main), canary)), made)
            return made

        canary_cfgs: dict[int, CanaryConfig] = {}
        size = 1 + max((m.route_id for m in table.routes), default=-1)
        # Canary Matches own ids too but are never returned by a lookup: their slots stay None.
        routes: list[Any] = [None] * size
        fast: dict[Match, Any] = {}
        def error_side(m: Match) -> _Backend | None:
            """The ``custom-http-errors`` backend of route ``m``: its Ingress's
            ``default-backend`` Service, when it has an endpoint (ingress-nginx: the
            ``@custom_<upstream>_<code>`` location proxies to it; without the annotation, to
            the controller's default backend, which ingresslib has not). Also without a
            custom-http-errors annotation: the ConfigMap's custom-http-errors (the proxy's
            settings, which the Router has not) intercepts there too (proxy/_error_pages.py)."""
            ing = m.ingress_object
            ann = ing.metadata.annotations if ing is not None else None
            if not ann or m.service is None:
                return None
            raw = ann.get(DEFAULT_BACKEND_ANNOTATION)
            if raw is None:
                return None
            custom_used[0] = True  # endpoint-only updates build in full (_Wiring)
            found = custom_dflt.get((m.namespace, raw))
            if found is None:
                found = custom_dflt[(m.namespace, raw)] = custom_default_backend(
                    index, m.namespace, raw)
            d_eps, d_port, _problem = found  # the problem is said by ``backend``
            if d_eps is None or not d_eps.endpoints:
                return None
            bal = RoundRobin()
            made = _Backend(d_eps, bal, m, m, False,
                            (f"{d_eps.namespace}/{d_eps.service}:{d_port}", _profile(d_eps, bal)))
            made.dflt = f"custom-default-backend-{m.namespace}-{d_eps.service}"
            return made

        for m in table.routes:
            mb = backend(m, m, False)
            mb.errors = error_side(m)
            cm = m.canary
            if cm is None or cm.ingress_object is None:
                routes[m.route_id] = _Route(mb, None, None, None)
                fast[m] = mb.fast_entry()  # a backend kept from the previous state may be built
                continue
            cing = cm.ingress_object
            cfg = canary_cfgs.get(id(cing))
            if cfg is None:
                cfg, problems = parse_canary(cm.annotations)
                for key, msg in problems:
                    warn(cing, f"Ingress {cm.ingress}", key, msg)
                canary_cfgs[id(cing)] = cfg
            cb = backend(cm, m, True)
            # The main rule's location intercepts the canary's answers too (its annotations
            # are the location's; a canary's own are dropped).
            cb.errors = mb.errors
            # The counter belongs to the rule (BETTER: per-rule scope), and survives updates
            # while the rule, its canary and the weights stay the same.
            skey = (m.ingress, m.host, m.path, m.path_type, m.is_default_backend, cm.ingress,
                    cfg.weight, cfg.weight_total)
            split = splits.get(skey) or self._splits.get(skey)
            if split is None:
                rng = _derive_seed(self.seed, repr(skey)) if self.canary_random else None
                split = WeightSplit(cfg.weight, cfg.weight_total, rng)
            splits[skey] = split
            r = routes[m.route_id] = _Route(mb, cb, cfg, split)
            fast[m] = r.fast_entry()  # sides kept from the previous state may be built

        # Canary annotations on Ingresses that lost every pairing are still worth checking,
        # and canary settings on Ingresses that are no canary are said.
        for ing in table.served:
            ann = ing.metadata.annotations
            if not ann:
                continue
            raw_canary = ann.get(CANARY_ANNOTATION)
            is_canary = None if raw_canary is None else parse_bool(raw_canary)
            if is_canary and id(ing) not in canary_cfgs:
                for key, msg in parse_canary(ann)[1]:
                    warn(ing, f"Ingress {ing.metadata.ref}", key, msg)
                # As on a paired canary (``backend``): the annotation only means something
                # on a canary, and ingress-nginx validates it on every Ingress.
                problem = _behaviour_problem(ann.get(_CANARY_BEHAVIOR))
                if problem is not None:
                    warn(ing, f"Ingress {ing.metadata.ref}", _CANARY_BEHAVIOR, problem)
            if is_canary is None and raw_canary is not None:
                warn(ing, f"Ingress {ing.metadata.ref}", CANARY_ANNOTATION,
                     f"invalid boolean {raw_canary!r}: treated as a normal Ingress")
            if not is_canary:
                # Canary settings on an Ingress that is no canary: ingress-nginx refuses them
                # ("configured but not enabled", _CANARY_ONLY) and serves the Ingress as an
                # ordinary one, as here; said, not silently dropped.
                why = ("no canary annotation" if raw_canary is None else
                       f"canary is {raw_canary!r}" if is_canary is False else
                       f"canary {raw_canary!r} is not a boolean")
                for key, numeric in _CANARY_ONLY:
                    raw = ann.get(key)
                    if raw is not None and ((parse_int(raw) or 0) > 0 if numeric
                                            else _normalize_string(raw) != ""):
                        warn(ing, f"Ingress {ing.metadata.ref}", key, "has no effect: the "
                             f"Ingress is not a canary ({why}); ignored")
        route_warnings = tuple(warnings)
        service_warnings = _services_warnings(
            res.services, lambda svc: index.service(svc.metadata.namespace,
                                                    svc.metadata.name) is svc)
        slice_warnings = _slices_warnings(res.endpoint_slices)
        warnings += service_warnings
        warnings += slice_warnings
        no_endpoint = _no_endpoint_notes(empty, routes) if empty else ()
        if no_endpoint and _holds_endpoint_objects(res):
            warnings += no_endpoint
        for w in warnings:
            log.debug("%s", w)
        # Publish the carried-over state maps before the state that uses them.
        self._balancers = balancers
        self._fallbacks = fallbacks
        self._splits = splits
        self._wiring = _Wiring(by_service, route_warnings, service_warnings, slice_warnings,
                               empty, no_endpoint, self.load_balance, factories,
                               custom_used[0])
        return _State(table, routes, tuple(warnings), res, table.match, fast, no_endpoint)


#: ``Router.route`` as defined here: ``_publish`` puts the compiled path on the instance only
#: when the instance's class still has this one (a subclass's own ``route`` is left visible).
_ROUTER_ROUTE = Router.route


def takes_request(next_endpoint: object) -> bool:
    """Whether ``next_endpoint`` can be called with ``request=`` (Router.next_endpoint can;
    CONTRACT.md's and the proxy API's ``next_endpoint(decision, tried)`` has no such
    parameter, so a router written to it may not). One whose signature cannot be read is
    not given it: a keyless retry is the safe side, a TypeError on every retry is not."""
    return _takes_keyword(next_endpoint, "request", False)


def takes_query(route: object) -> bool:
    """Whether ``route`` can be called with ``query=`` (Router.route can; CONTRACT.md's
    signature has no such parameter, so a router written to it may not). One whose signature
    cannot be read is called as a Router's."""
    return _takes_keyword(route, "query", True)


def _takes_keyword(fn: object, name: str, unknown: bool) -> bool:
    """Whether ``fn`` takes the keyword argument ``name`` (or ``**kwargs``); ``unknown`` when
    its signature cannot be read."""
    import inspect

    try:
        params = inspect.signature(fn).parameters.values()  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return unknown  # no signature to read (a builtin): the caller's safe side
    return any(p.kind is p.VAR_KEYWORD or (p.name == name and p.kind in (
        p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)) for p in params)
