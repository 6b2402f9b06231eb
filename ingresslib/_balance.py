"""The ``Balancer`` protocol, the built-in balancers, and the annotations choosing them (§8).

"Per backend, chosen by ``nginx.ingress.kubernetes.io/load-balance`` (default round-robin):
round-robin (strict cycle; smooth weighted when weights exist), EWMA (decayed latency, 10 s decay,
power of two choices), consistent hashing ``upstream-hash-by`` ..., cookie affinity ...
Balancers are a small protocol anyone can implement and register. A retry never goes back to an
endpoint this request already tried while another is untried."

Which balancer serves a backend follows ingress-nginx's ``balancer.lua``: cookie affinity if
``affinity: cookie``, else consistent hashing if ``upstream-hash-by`` is set, else the
``load-balance`` algorithm (the Router's default, ``round_robin``, when absent).

This module: round-robin and EWMA, the registry of ``load-balance`` names, and the
annotations -> ``BalancerSpec`` -> balancer path (``parse_balancer_spec``, ``make_balancer``).
The rest lives beside it, one job each, and is re-exported here: ``_balance_request`` (the
request as balancers see it), ``_balance_protocol`` (``Balancer``, ``BalancerOptions``),
``_balance_spec`` (``BalancerSpec``, ``AffinityConfig``), ``_balance_hash`` (consistent
hashing), ``_balance_affinity`` (cookie affinity).

Writing a balancer::

    class Fixed:
        uses_request = False               # optional; False lets the Router skip building a context
        def pick(self, request, backend, tried):
            for i, ep in enumerate(backend.endpoints):
                if ep not in tried:
                    return i               # an index into backend.endpoints, or None
            return None
        def observe(self, endpoint, seconds, ok):
            pass

    ingresslib.register_balancer("fixed", lambda options: Fixed())
    # then: nginx.ingress.kubernetes.io/load-balance: "fixed"
"""

from __future__ import annotations

import itertools
import math
import re
import threading
from collections.abc import Collection, Mapping
from math import exp as _exp

# Re-exported: the Router, canary, tests and users import these from here.
from ._balance_affinity import CookieAffinity as CookieAffinity
from ._balance_affinity import samesite_none_compatible as samesite_none_compatible
from ._balance_affinity import upstream_name as upstream_name
from ._balance_hash import ConsistentHash as ConsistentHash
from ._balance_hash import KeyTemplate as KeyTemplate
from ._balance_hash import nginx_uri as nginx_uri
from ._balance_protocol import Address as Address
from ._balance_protocol import Balancer as Balancer
from ._balance_protocol import BalancerFactory as BalancerFactory
from ._balance_protocol import BalancerOptions as BalancerOptions
from ._balance_request import EMPTY_REQUEST as EMPTY_REQUEST
from ._balance_request import H11_HEADERS as H11_HEADERS
from ._balance_request import Headers as Headers
from ._balance_request import RequestContext as RequestContext
from ._balance_request import _pairs as _pairs
from ._balance_request import cookie_value as cookie_value
from ._balance_request import header_value as header_value
from ._balance_spec import AffinityConfig as AffinityConfig
from ._balance_spec import BalancerSpec as BalancerSpec
from ._endpoints import EndpointSet
from ._goparse import normalize_string, parse_bool, parse_int
from ._models import go_utf8

__all__ = [
    "Address",
    "RequestContext",
    "Balancer",
    "BalancerOptions",
    "BalancerFactory",
    "BalancerSpec",
    "AffinityConfig",
    "KeyTemplate",
    "Headers",
    "H11_HEADERS",
    "header_value",
    "cookie_value",
    "RoundRobin",
    "Ewma",
    "ConsistentHash",
    "CookieAffinity",
    "samesite_none_compatible",
    "register_balancer",
    "unregister_balancer",
    "registered_balancers",
    "parse_balancer_spec",
    "make_balancer",
    "upstream_name",
    "EMPTY_REQUEST",
    "nginx_uri",
]

_P = "nginx.ingress.kubernetes.io/"


# --- round-robin and EWMA -------------------------------------------------------------------------


#: Turns given back to a ``RoundRobin`` (``give_back``): (the endpoint list, the index), oldest
#: first.
_GivenBack = tuple[tuple[tuple[Address, ...], int], ...]


class RoundRobin:
    """A strict cycle (even over any window of N picks); smooth weighted round-robin (nginx's
    algorithm: every pick adds each weight to its counter, takes the largest, subtracts the total)
    when the endpoints carry unequal weights. A pick whose request never reached an upstream
    is given back (:meth:`give_back`)."""

    uses_request = False
    __slots__ = ("counter", "_lock", "_wbackend", "_current", "_spread", "_wretired", "_back")

    def __init__(self, options: BalancerOptions | None = None) -> None:
        # next() on itertools.count is atomic under the GIL: no lost or repeated ticks.
        self.counter = itertools.count()
        #: Turns among the untried endpoints, for a retry whose tick fell on a tried one.
        self._spread = itertools.count()
        self._lock = threading.Lock()
        self._wbackend: EndpointSet | None = None
        self._current: list[int] = []
        #: Weighted sets replaced by a newer one (identity): a retry still holding one picks
        #: without touching the current cycle.
        self._wretired: tuple[EndpointSet, ...] = ()
        #: Unweighted turns given back (``give_back``), served first to the next picks with
        #: nothing tried; None while none waits. A tuple replaced whole under ``_lock``: the
        #: many balancers that never see one (a table's backends) pay no list each, and
        #: ``pick``'s test is an identity check (timeit: ~6 ns a pick; a truth test of ``()``,
        #: ~9).
        self._back: _GivenBack | None = None

    def pick(self, request: RequestContext, backend: EndpointSet,
             tried: Collection[Address]) -> int | None:
        eps = backend.endpoints
        n = len(eps)
        if not n:
            return None
        if self._back is not None and not tried:  # rare: the one test the usual pick pays
            given = self._turn_given_back(eps)
            if given is not None:
                return given
        if backend.weighted:
            return self._pick_weighted(backend, tried)
        i = next(self.counter) % n
        if tried and eps[i] in tried:
            return self._spread_untried(eps, tried)
        return i

    def _spread_untried(self, eps: tuple[Address, ...],
                        tried: Collection[Address]) -> int | None:
        """An untried endpoint, the untried ones taking turns: a retry whose tick fell on a
        tried endpoint. (The untried endpoint after the tick, as before, gave every such retry
        of a failed endpoint to its successor in the list: with one of n endpoints failing,
        the successor took its own share and the failed one's, twice the others' load.)"""
        untried = [k for k, ep in enumerate(eps) if ep not in tried]
        if not untried:
            return None
        return untried[next(self._spread) % len(untried)]

    def _pick_weighted(self, backend: EndpointSet, tried: Collection[Address]) -> int | None:
        eps = backend.endpoints
        weights = backend.weights
        with self._lock:
            cur = self._current
            if self._wbackend is not backend:
                old = self._wbackend
                if any(backend is r for r in self._wretired):
                    # A retry (or a request routed before an update) holding a set this
                    # balancer has moved past: smooth pick on a scratch state, the current
                    # cycle left alone (switching to the old set and back would restart it).
                    cur = [0] * len(eps)
                elif (old is not None and old.endpoints == eps
                        and old.weights == weights):
                    self._wbackend = backend  # an equal set: the cycle goes on
                else:
                    # Changed endpoints or weights: the cycle restarts from zero counters, as
                    # nginx's own smooth weighted round-robin starts, and as ingress-nginx's
                    # balancer/resty.lua ``sync`` calls resty.roundrobin's ``reinit`` only
                    # when the nodes changed. Survivors' counters carried over summed to
                    # anything but 0 and could differ by about the old total weight: with a
                    # heavy endpoint removed, a light survivor took dozens of picks in a row.
                    if old is not None:
                        self._wretired = (old, *self._wretired[:3])
                    cur = self._current = [0] * len(eps)
                    self._wbackend = backend
            best = -1
            total = 0
            for k, w in enumerate(weights):
                if tried and eps[k] in tried:
                    continue
                cur[k] += w
                total += w
                if best < 0 or cur[k] > cur[best]:
                    best = k
            if best < 0:
                return None
            cur[best] -= total
            return best

    def give_back(self, backend: EndpointSet, index: int) -> None:
        """The pick of ``backend``'s endpoint ``index`` (no endpoint tried) was never used: its
        request never reached an upstream (``Router.give_back``). nginx picks the peer in the
        balancer phase, at the connect (ingress-nginx ``balancer.lua`` ``balance()``, run by
        ``balancer_by_lua``): a request answered before takes no turn, so the requests that
        do reach an upstream take the rotation's turns in order.

        Unweighted: the turn waits in a queue and is served first, oldest first, to the next
        pick with nothing tried on an equal endpoint list (turns of other lists, given back
        before an endpoint change, are dropped: their rotation is gone). Weighted: the smooth
        weighted pick undone, the counters left as if the other picks alone had been made
        (each pick adds every weight and takes the total from the chosen one: sums, in any
        order); nothing when the cycle restarted since (another endpoint set): that pick is
        gone with it. Nothing for an index outside the list."""
        if not 0 <= index < len(backend.endpoints):
            return
        with self._lock:
            if not backend.weighted:
                self._back = (*(self._back or ()), (backend.endpoints, index))
                return
            if self._wbackend is not backend:
                return
            cur = self._current
            weights = backend.weights
            for k, w in enumerate(weights):
                cur[k] -= w
            cur[index] += sum(weights)

    def _turn_given_back(self, eps: tuple[Address, ...]) -> int | None:
        """The oldest turn given back on endpoint list ``eps``, taken; the older ones of other
        lists dropped on the way. None when there is none."""
        with self._lock:
            back = self._back or ()
            for k, (given, index) in enumerate(back):
                if given is eps or given == eps:
                    self._back = back[k + 1:] or None
                    return index
            self._back = None
        return None

    def observe(self, endpoint: Address, seconds: float, ok: bool) -> None:
        pass


class Ewma:
    """Power of two choices over a decayed latency average (ingress-nginx ``ewma.lua``).

    Score = latency EWMA decayed towards 0 while idle (10 s decay time, so a slow endpoint gets
    another chance), divided by a success-rate EWMA. A failure counts as a sample of at least
    :attr:`FAILURE_PENALTY` seconds, so an endpoint that fails fast never looks attractive; a
    sample counts at most :attr:`MAX_SAMPLE` seconds (an infinite one too), a NaN as 0.
    Endpoints of the first endpoint set seen score 0 and are tried first; endpoints added
    later start at the average of the others (slow start, as ingress-nginx's ``sync``), and the
    statistics of removed endpoints are dropped. Difference from ingress-nginx: a sample
    arriving in the same instant as the previous one still counts (ingress-nginx's weight
    ``exp(-0/10) = 1`` ignores it); each sample weighs at least 1 %.
    """

    DECAY_TIME = 10.0
    MIN_SAMPLE_GAP = 0.1
    FAILURE_PENALTY = 1.0
    #: The longest sample counted, in seconds (a day); longer ones count as this long.
    MAX_SAMPLE = 86400.0
    uses_request = False
    __slots__ = ("_rng", "_random", "_clock", "_stats", "_lock", "_backend", "_retired",
                 "_members")

    def __init__(self, options: BalancerOptions) -> None:
        self._rng = options.rng
        self._random = options.rng.random
        self._clock = options.clock
        # endpoint -> [latency ewma, success ewma, last update time]
        self._stats: dict[Address, list[float]] = {}
        self._lock = threading.Lock()
        #: The endpoint set of the last pick (None before the first).
        self._backend: EndpointSet | None = None
        #: The last few sets replaced by a newer one (identity, not equality: an update may
        #: bring back an equal set, which must sync again).
        self._retired: tuple[EndpointSet, ...] = ()
        #: The endpoints of ``_backend`` (None before the first pick): ``observe`` records
        #: samples of these only.
        self._members: frozenset[Address] | None = None

    def _sync(self, backend: EndpointSet) -> None:
        """A new endpoint set: ingress-nginx ``ewma.lua`` ``sync`` - "slow_start_ewma is
        something we use to avoid sending too many requests to the newly introduced endpoints.
        We currently use average ewma values of existing endpoints." Removed endpoints' stats
        are deleted (``ngx.shared.balancer_ewma:delete``). The first set seen has nothing to
        compare with (``new`` does no slow start): its unknown endpoints score 0."""
        with self._lock:
            old = self._backend
            if any(backend is r for r in self._retired):
                # A retry (or a request that started before an update) still holding a set
                # this balancer already moved past: going "back" to it would drop the newer
                # endpoints' statistics and restart them at the average on the next pick.
                return
            self._backend = backend
            if old is None or old.endpoints == backend.endpoints:
                if self._members is None:
                    self._members = frozenset(backend.endpoints)
                return
            self._retired = (old, *self._retired[:3])
            eps = backend.endpoints
            now_set = self._members = frozenset(eps)
            before = set(old.endpoints)
            stats = self._stats
            for ep in before - now_set:
                stats.pop(ep, None)
            added = [ep for ep in eps if ep not in before]
            known = [stats[ep] for ep in eps if ep in stats and ep not in added]
            if not added or not known:
                return
            latency = sum(st[0] for st in known) / len(known)
            success = sum(st[1] for st in known) / len(known)
            now = self._clock()
            for ep in added:
                stats[ep] = [latency, success, now]

    def _score(self, ep: Address, now: float) -> float:
        st = self._stats.get(ep)
        if st is None:
            return 0.0
        idle = now - st[2]
        decay = _exp(-idle / self.DECAY_TIME) if idle > 0.0 else 1.0
        rate = st[1]
        return st[0] * decay / (rate if rate > 0.05 else 0.05)

    def pick(self, request: RequestContext, backend: EndpointSet,
             tried: Collection[Address]) -> int | None:
        if backend is not self._backend:
            self._sync(backend)
        eps = backend.endpoints
        n = len(eps)
        # Still not the current set after ``_sync``: a set this balancer has moved past (the
        # retry of a request routed before an endpoint update). Its removed endpoints have no
        # statistics any more, so they would score 0 - the best score - and draw the retry to
        # a pod that is gone; ingress-nginx's retry only sees the synced peers. Prefer the
        # endpoints that are still members.
        members = self._members if backend is not self._backend else None
        if tried or members is not None:
            cand = [k for k in range(n) if eps[k] not in tried]
            if members is not None:
                cand = [k for k in cand if eps[k] in members] or cand
            m = len(cand)
        else:
            cand = None
            m = n
        if m < 2:
            return None if m == 0 else (cand[0] if cand is not None else 0)
        # Two distinct candidates (rng.sample costs ~2 us; this is two draws). The lock keeps
        # the seeded sequence intact under threads.
        rnd = self._random
        with self._lock:
            i = int(rnd() * m)
            j = int(rnd() * (m - 1))
        if j >= i:
            j += 1
        if cand is not None:
            i, j = cand[i], cand[j]
        now = self._clock()
        return i if self._score(eps[i], now) <= self._score(eps[j], now) else j

    def observe(self, endpoint: Address, seconds: float, ok: bool) -> None:
        now = self._clock()
        if not seconds < self.MAX_SAMPLE:
            # NaN (no time measured: as a negative time, 0) or too long, infinity included: an
            # infinite or NaN sample would stay in the average for good (``inf * exp(-t)`` never
            # decays, NaN compares false and so wins every other draw), where a slow endpoint
            # is to get another chance once its average has decayed.
            seconds = self.MAX_SAMPLE if seconds >= self.MAX_SAMPLE else 0.0
        if not ok:
            seconds = max(seconds, self.FAILURE_PENALTY)
        with self._lock:
            members = self._members
            if members is not None and endpoint not in members:
                # The late answer of a request picked before an update removed its endpoint:
                # ``_sync`` deleted its statistics (ewma.lua ``sync``), and recording it again
                # would keep them for good, one entry per departed pod.
                return
            st = self._stats.get(endpoint)
            if st is None:
                self._stats[endpoint] = [max(seconds, 0.0), 1.0 if ok else 0.0, now]
                return
            gap = max(now - st[2], self.MIN_SAMPLE_GAP)
            w = math.exp(-gap / self.DECAY_TIME)
            st[0] = st[0] * w + max(seconds, 0.0) * (1.0 - w)
            st[1] = st[1] * w + (1.0 if ok else 0.0) * (1.0 - w)
            st[2] = now



# --- registry ------------------------------------------------------------------------------------

_BUILTIN: dict[str, BalancerFactory] = {
    "round_robin": RoundRobin,
    "ewma": Ewma,
}
# Process-wide *configuration* (names -> factories), never state: every Router makes its own
# balancer instances from it at update time. Routers can also be given their own factories.
_REGISTRY: dict[str, BalancerFactory] = dict(_BUILTIN)
_REGISTRY_LOCK = threading.Lock()
#: The kinds of ``BalancerSpec`` that come from other annotations (``affinity: cookie``,
#: ``upstream-hash-by``) and are always built in (``make_balancer``): a factory registered
#: under one of these names would never be called, its backends silently served by the
#: built-in, so such a name is refused.
RESERVED_BALANCER_NAMES = frozenset({"sticky", "chash"})


def check_balancer_name(name: object) -> None:
    """Refuse what cannot name a pluggable balancer (``register_balancer``, ``Router``'s
    ``balancers``)."""
    if not name or not isinstance(name, str):
        raise ValueError("balancer name must be a non-empty string")
    if name in RESERVED_BALANCER_NAMES:
        raise ValueError(f"balancer name {name!r} is reserved: cookie affinity and consistent "
                         "hashing are chosen by the affinity and upstream-hash-by annotations")


def register_balancer(name: str, factory: BalancerFactory) -> None:
    """Make ``nginx.ingress.kubernetes.io/load-balance: NAME`` use ``factory(options)``.

    >>> class First:                    # the first endpoint not tried yet
    ...     def pick(self, request, backend, tried):
    ...         return next((i for i, ep in enumerate(backend.endpoints) if ep not in tried), None)
    ...     def observe(self, endpoint, seconds, ok):
    ...         pass
    >>> register_balancer("first", lambda options: First())

    The registration is process-wide and stays (registering the name again replaces it). For
    one Router only: ``Router(res, balancers={"first": factory})``. The names ``sticky`` and
    ``chash`` are reserved (``ValueError``).
    """
    check_balancer_name(name)
    if not callable(factory):
        raise TypeError("factory must be callable")
    with _REGISTRY_LOCK:
        _REGISTRY[name] = factory


def unregister_balancer(name: str) -> None:
    """Remove a registered balancer (built-ins come back to their defaults)."""
    with _REGISTRY_LOCK:
        if name in _BUILTIN:
            _REGISTRY[name] = _BUILTIN[name]
        else:
            _REGISTRY.pop(name, None)


def registered_balancers() -> dict[str, BalancerFactory]:
    with _REGISTRY_LOCK:
        return dict(_REGISTRY)


# --- annotations -> balancer spec ----------------------------------------------------------------


_SAMESITE = {"none": "None", "lax": "Lax", "strict": "Strict"}
#: parser.GetStringAnnotation's ``normalizeString`` (_goparse.py); _router imports this name.
_normalize_string = normalize_string


def _int_annotation(ann: Mapping[str, str], key: str, warn: list[tuple[str, str]],
                    minimum: int = 0) -> int | None:
    raw = ann.get(_P + key)
    if raw is None:
        return None
    # ingress-nginx: strconv.Atoi of the raw value (no blanks, no "1_0").
    value = parse_int(raw)
    if value is None:
        warn.append((_P + key, f"invalid value {raw!r}: not an integer; ignored"))
        return None
    if value < minimum:
        warn.append((_P + key, f"invalid value {raw!r}: must be >= {minimum}; ignored"))
        return None
    return value


#: A ``session-cookie-name`` ingress-nginx takes: sessionaffinity/main.go validates it with
#: "parser.ValidateRegex(parser.BasicCharsRegex, true)", BasicCharsRegex = "^[/" +
#: alphaNumericChars + "]*$" (alphaNumericChars = `\-\.\_\~a-zA-Z0-9\/:`); any other name
#: fails GetStringAnnotation and ``cookieAffinityParse`` uses "defaultAffinityCookieName"
#: (INGRESSCOOKIE). So ``app:sid`` names the cookie and ``route|v2`` does not, although RFC 9110's
#: token says the other way round (browsers take both). Not kept from ingress-nginx: its check
#: removes spaces first (``true``), so it would write a name with inner blanks; refused here.
_COOKIE_NAME = re.compile(r"[-._~a-zA-Z0-9/:]+")


def _cookie_attribute_ok(value: str) -> bool:
    """RFC 6265 §4.1.1: an attribute value is "any CHAR except CTLs or \";\"": a ``;`` would
    start another attribute (``/a; Domain=other.test``), a CTL could split the header."""
    return ";" not in value and value.isprintable()


def _bool_annotation(ann: Mapping[str, str], key: str, warn: list[tuple[str, str]]) -> bool:
    raw = ann.get(_P + key)
    if raw is None:
        return False
    # ingress-nginx: parser.GetBoolAnnotation, strconv.ParseBool of the raw value.
    value = parse_bool(raw)
    if value is None:
        warn.append((_P + key, f"invalid boolean {raw!r}; using false"))
        return False
    return value


def parse_balancer_spec(ann: Mapping[str, str], default: str, known: Collection[str],
                        rule_path: str | None) -> tuple[BalancerSpec, list[tuple[str, str]]]:
    """The balancer the annotations ask for, and ``(annotation, message)`` warnings for every
    invalid value (each falls back to the documented default)."""
    warn: list[tuple[str, str]] = []
    # sessionaffinity/main.go reads ``affinity``, ``affinity-mode``, ``session-cookie-path``
    # and ``-domain`` with parser.GetStringAnnotation: through normalizeString, each line
    # trimmed (their validators trim too: ValidateOptions(..., trimSpace=true), ValidateRegex
    # (..., removeSpace=true)), so " cookie " is cookie affinity and " persistent" persistent
    # there (balancer.lua compares the parsed values: ``["name"] == "cookie"``, ``["mode"] ==
    # "persistent"``).
    affinity = ann.get(_P + "affinity")
    if affinity is not None:
        affinity = _normalize_string(affinity)
    if affinity is not None and affinity != "cookie":
        warn.append((_P + "affinity", f"unsupported value {affinity!r} (only \"cookie\"); ignored"))
        affinity = None
    if affinity == "cookie":
        # (normalizeString, as the others: a kept line break fails the name check below, as
        # ingress-nginx's validator refuses it - MaliciousRegex - and falls back to the default.)
        name = _normalize_string(ann.get(_P + "session-cookie-name", "INGRESSCOOKIE")) \
            or "INGRESSCOOKIE"
        if not _COOKIE_NAME.fullmatch(name):
            # (Not "invalid": route|v2 is an RFC 6265 cookie name; say whose rule it fails.)
            warn.append((_P + "session-cookie-name",
                         f"cookie name {name!r} has a character ingress-nginx does not take "
                         "(BasicCharsRegex: ASCII letters, digits and -._~/:; blanks refused "
                         "here too); using INGRESSCOOKIE"))
            name = "INGRESSCOOKIE"
        path = ann.get(_P + "session-cookie-path")
        if path is not None:
            path = _normalize_string(path)
        if path is not None and (not path.startswith("/") or not _cookie_attribute_ok(path)):
            warn.append((_P + "session-cookie-path", f"invalid path {path!r}; using the rule path"))
            path = None
        if path is None:
            # ingress-nginx defaults the cookie path to the location (rule) path.
            path = rule_path if rule_path and rule_path.startswith("/") else "/"
            if not _cookie_attribute_ok(path):
                path = "/"  # a rule path with ";" would end the attribute early
        domain = ann.get(_P + "session-cookie-domain")
        if domain is not None:
            domain = _normalize_string(domain)
        if domain is not None and (not domain or not _cookie_attribute_ok(domain)
                                   or " " in domain):
            warn.append((_P + "session-cookie-domain", f"invalid domain {domain!r}; ignored"))
            domain = None
        samesite_raw = ann.get(_P + "session-cookie-samesite")
        samesite = None
        if samesite_raw is not None:
            # sessionaffinity/main.go reads it with parser.GetStringAnnotation too: each line
            # trimmed of Go's spaces (normalizeString), a line break kept ("Lax\n" is no
            # SameSite value there: lua-resty-cookie's ``bake`` drops it), U+001C..U+001F
            # not trimmed (``str.strip`` trims them).
            samesite = _SAMESITE.get(_normalize_string(samesite_raw).lower())
            if samesite is None:
                warn.append((_P + "session-cookie-samesite",
                             f"unsupported value {samesite_raw!r} (None, Lax, Strict); ignored"))
        mode = _normalize_string(ann.get(_P + "affinity-mode", "balanced"))
        if mode not in ("balanced", "persistent"):
            warn.append((_P + "affinity-mode",
                         f"unsupported value {mode!r} (balanced, persistent); using balanced"))
            mode = "balanced"
        cfg = AffinityConfig(
            name=name, path=path,
            max_age=_int_annotation(ann, "session-cookie-max-age", warn),
            expires=_int_annotation(ann, "session-cookie-expires", warn),
            samesite=samesite, secure=_bool_annotation(ann, "session-cookie-secure", warn),
            mode=mode, domain=domain,
            # ingress-nginx sessionaffinity/main.go: parser.GetBoolAnnotation for each.
            change_on_failure=_bool_annotation(ann, "session-cookie-change-on-failure", warn),
            conditional_samesite_none=_bool_annotation(
                ann, "session-cookie-conditional-samesite-none", warn),
            partitioned=_bool_annotation(ann, "session-cookie-partitioned", warn))
        return BalancerSpec("sticky", affinity=cfg), warn
    hash_by = ann.get(_P + "upstream-hash-by")
    if hash_by is not None:
        # Read as the API server stores it (Go's encoding/json: a lone surrogate is U+FFFD), as
        # a manifest's ``\ud800`` escape already reads (``_json_manifests._go_surrogates``);
        # only ``Resources.from_dicts`` still hands one over. Kept, it made every request's key
        # unencodable (UnicodeEncodeError out of ``Router.route``: a 500 on each request of
        # the route), or hashed other bytes than the same object's manifest (``\udce9``).
        hash_by = go_utf8(hash_by).decode()
        # upstreamhashby/main.go reads it with parser.GetStringAnnotation, as the others above:
        # each line trimmed (normalizeString), so " $remote_addr " hashes the address alone,
        # not the address between two blanks (and takes the Router's inline key path).
        hash_by = _normalize_string(hash_by)
        if not hash_by.strip():
            warn.append((_P + "upstream-hash-by", "empty value; ignored"))
        else:
            tmpl = KeyTemplate(hash_by)
            for e in tmpl.errors:
                warn.append((_P + "upstream-hash-by", e))
            subset = _bool_annotation(ann, "upstream-hash-by-subset", warn)
            size = _int_annotation(ann, "upstream-hash-by-subset-size", warn, minimum=1)
            return BalancerSpec("chash", hash_by=hash_by, subset=subset,
                                subset_size=size if size else 3), warn
    lb = ann.get(_P + "load-balance")
    if lb is None:
        return BalancerSpec(default), warn
    lb = _normalize_string(lb)
    if lb not in known:
        # A value written as a YAML block ("|": "ewma\n") keeps its line break in
        # ingress-nginx, whose Lua balancer then finds no such algorithm.
        hint = " (ingress-nginx keeps its line breaks)" if "\n" in lb and lb.replace(
            "\n", "") in known else ""
        warn.append((_P + "load-balance",
                     f"unknown algorithm {lb!r}{hint} (known: {', '.join(sorted(known))}); "
                     f"using {default}"))
        return BalancerSpec(default), warn
    return BalancerSpec(lb), warn


def make_balancer(spec: BalancerSpec, options: BalancerOptions,
                  factories: Mapping[str, BalancerFactory], tag: str = "",
                  backend: tuple[str, str | None, int | str | None] | None = None) -> Balancer:
    """The balancer ``spec`` asks for. ``backend``: ``(namespace, service, port as written in
    the Ingress)`` of the backend it serves; cookie affinity salts persistent cookies with its
    :func:`upstream_name` (None: unsalted, see :class:`CookieAffinity`)."""
    if spec.kind == "sticky":
        return CookieAffinity(options, tag, None if backend is None else upstream_name(*backend))
    if spec.kind == "chash":
        return ConsistentHash(options)
    factory = factories.get(spec.kind) or RoundRobin
    return factory(options)
