"""Consistent hashing (``upstream-hash-by``, §8): the key template with its nginx variables
(``KeyTemplate``, ``nginx_uri``), the endpoint ring kept per endpoint set (``_RingCache``,
shared with cookie affinity), and the ``ConsistentHash`` balancer with its subsets."""

from __future__ import annotations

import itertools
import math
import re
import threading
from bisect import bisect_right
from collections.abc import Callable, Collection, Sequence

from ._balance_protocol import Address, BalancerOptions, _first_untried
from ._balance_request import Headers, RequestContext, cookie_value, header_value
from ._endpoints import EndpointSet
from ._errors import BadRequestError
from ._goparse import parse_bool
from ._hashing import HashRing, TriedMembers, hash_key, member_id, ngx_md5
from ._normalize import canonical_path, normalize_host

__all__ = [
    "KeyTemplate",
    "ConsistentHash",
    "nginx_uri",
]


def nginx_uri(path: str) -> str:
    """nginx's ``$uri``: "current URI in request, normalized" - here the canonical path of
    SEMANTICS §5 (escapes of unreserved characters decoded, ``//`` merged, dot segments
    removed: the path the backend receives), so two spellings of one path hash alike. A path
    without ``%``, ``//`` or ``/.`` is already canonical (the common case: no work); one that
    cannot be made canonical (the table would have refused it) is used as is."""
    if "%" not in path and "//" not in path and "/." not in path:
        return path
    try:
        return canonical_path(path)
    except BadRequestError:
        return path

# ingress-nginx util.lua parse_complex_value: "(\\\$[0-9a-zA-Z_]+) | \$\{([0-9a-zA-Z_]+)\} |
# \$([0-9a-zA-Z_]+) | (\$|[^$\\]+)": an escaped ``\$name`` is literal text (backslash kept),
# ``${name}`` and ``$name`` are variables (a name may start with a digit: ``$1``), the rest text.
_VAR = re.compile(r"\\\$[0-9A-Za-z_]+|\$(?:\{([0-9A-Za-z_]+)\}|([0-9A-Za-z_]+))")
_SIMPLE_VARS = {"request_uri", "uri", "document_uri", "remote_addr", "binary_remote_addr",
                "host", "request_method", "args", "query_string", "is_args"}


class KeyTemplate:
    """A compiled ``upstream-hash-by`` value: literal text and nginx variables (``$request_uri``,
    ``$uri``, ``$remote_addr``, ``$host``, ``$request_method``, ``$args``, ``$http_NAME``,
    ``$cookie_NAME``, ``$arg_NAME``; ``${name}`` also accepted)."""

    __slots__ = ("text", "parts", "errors", "fn")

    def __init__(self, text: str) -> None:
        self.text = text
        self.parts: list[tuple[str, str]] = []
        self.errors: list[str] = []
        pos = 0
        for m in _VAR.finditer(text):
            if m.start() > pos:
                self.parts.append(("lit", text[pos:m.start()]))
            pos = m.end()
            if m.group(1) is None and m.group(2) is None:  # "\$name": literal, as written
                self.parts.append(("lit", m.group(0)))
                continue
            # nginx variable names are case-insensitive (ngx_http_get_variable_index:
            # "ngx_strlow(v->name.data, name->data, name->len)"; ingress-nginx reads them as
            # ``ngx.var[var_name]``, which lower-cases too): $Remote_Addr is $remote_addr.
            name = (m.group(1) or m.group(2)).lower()
            if name in _SIMPLE_VARS:
                self.parts.append((name, ""))
            elif name.startswith("http_") and len(name) > 5:
                self.parts.append(("http", name[5:].lower().replace("_", "-")))
            elif name.startswith("cookie_") and len(name) > 7:
                self.parts.append(("cookie", name[7:]))
            elif name.startswith("arg_") and len(name) > 4:
                self.parts.append(("arg", name[4:]))
            else:
                self.errors.append(f"unsupported variable ${name} (treated as empty)")
        if pos < len(text):
            self.parts.append(("lit", text[pos:]))
        self.fn = self._compile()

    def render(self, r: RequestContext) -> str:
        """The key for a request context."""
        return self.raw(r.method, r.host, r.path, r.query, r._raw, r.client_ip)

    def raw(self, method: str, host: str, path: str, query: str | None, headers: Headers,
            client_ip: str | None) -> str:
        """The key from the request's raw parts (what the Router calls: no context object)."""
        return self.fn(method, host, path, query, headers, client_ip)

    def _compile(self) -> Callable[[str, str, str, str | None, Headers, str | None], str]:
        getters = [self._getter(kind, name) for kind, name in self.parts]
        if not getters:
            return lambda m, h, p, q, hd, ip: ""
        if len(getters) == 1:
            return getters[0]
        return lambda m, h, p, q, hd, ip: "".join([g(m, h, p, q, hd, ip) for g in getters])

    @staticmethod
    def _getter(kind: str, name: str) -> Callable[[str, str, str, str | None, Headers, str | None], str]:
        if kind == "lit":
            return lambda m, h, p, q, hd, ip: name
        if kind == "request_uri":
            return lambda m, h, p, q, hd, ip: p if q is None else f"{p}?{q}"
        if kind in ("uri", "document_uri"):
            return lambda m, h, p, q, hd, ip: nginx_uri(p)
        if kind in ("remote_addr", "binary_remote_addr"):
            return lambda m, h, p, q, hd, ip: ip or ""
        if kind == "host":
            # nginx $host: the request's host name lower-cased, without its port (and, as
            # ngx_http_validate_host does, without a trailing dot): "A.test:8080" is "a.test".
            return lambda m, h, p, q, hd, ip: normalize_host(h) or ""
        if kind == "request_method":
            return lambda m, h, p, q, hd, ip: m
        if kind in ("args", "query_string"):
            return lambda m, h, p, q, hd, ip: q or ""
        if kind == "is_args":
            return lambda m, h, p, q, hd, ip: "?" if q else ""
        if kind == "http":
            bname = name.encode("latin-1")
            # nginx's $http_NAME (>= 1.23): a repeated header's lines joined by ", ".
            sep = "; " if name == "cookie" else ", "
            return lambda m, h, p, q, hd, ip: header_value(hd, name, bname, sep) or ""
        if kind == "cookie":
            return lambda m, h, p, q, hd, ip: cookie_value(hd, name, True) or ""
        # "arg"
        return lambda m, h, p, q, hd, ip: RequestContext(query=q).arg(name) or ""


#: What the subsets of an endpoint set depend on: the endpoint count, and the weights when they
#: differ (None: unweighted).
_SubsetKey = tuple[int, tuple[int, ...] | None]
#: The subsets of an endpoint set: their key, the ring over the subsets, and per subset its
#: first place and (endpoint index, draw mass) per distinct endpoint, the mass being the places
#: it holds, times its weight when the endpoints are weighted.
_SubsetState = tuple[_SubsetKey, HashRing, list[tuple[int, tuple[tuple[int, int], ...]]]]


#: ``upstream-hash-by-use-hostname`` (annotations/upstreamhashby/main.go: parser.
#: GetBoolAnnotation, so strconv.ParseBool; an invalid value is false).
USE_HOSTNAME_ANNOTATION = "nginx.ingress.kubernetes.io/upstream-hash-by-use-hostname"


def _same(known: EndpointSet | None, backend: EndpointSet, by_hostname: bool = False) -> bool:
    """Whether ``known`` (a set the cache holds a ring of) has ``backend``'s endpoints and
    weights (and host names, for a ring keyed by them): an update that rebuilt the set
    object without changing them."""
    return known is not None and known.endpoints == backend.endpoints \
        and known.weights == backend.weights \
        and (not by_hostname or known.hostnames == backend.hostnames)


def ring_ids(backend: EndpointSet, by_hostname: bool = False) -> list[str]:
    """The ring's member names for ``backend``'s endpoints: ``ip:port`` each, or with
    ``by_hostname`` (``upstream-hash-by-use-hostname``) the endpoint's ``hostname`` where it
    has one, as ingress-nginx's chash.lua ``build_node_map`` ("local id = endpoint.address ..
    ":" .. endpoint.port; if use_hostname then id = endpoint.hostname end"): a StatefulSet
    pod keeps its keys when it comes back with another IP. Two endpoints with one host name
    (one pod's two addresses) are one node there; here the first (in the set's sorted order)
    owns the points, the other is reached by a retry only. An endpoint without a host name
    keeps its ``ip:port`` (chash.lua indexes a table with nil there, and the backend's
    balancer fails to build)."""
    eps = backend.endpoints
    names = backend.hostnames if by_hostname else ()
    if not names:
        return [member_id(ip, port) for ip, port in eps]
    return [member_id(ip, port) if name is None else ngx_md5(name)
            for (ip, port), name in zip(eps, names)]


class _RingCache:
    """The ring of the current endpoint set, rebuilt only when the endpoints change."""

    __slots__ = ("state", "by_hostname")

    def __init__(self, by_hostname: bool = False) -> None:
        #: ``upstream-hash-by-use-hostname``: members named by the endpoints' host names.
        self.by_hostname = by_hostname
        # (endpoint set, ring, the set before it, its ring), replaced whole so readers never
        # mix two. The set before stays for the retries of requests routed before the last
        # endpoint update (they retry on the set they were routed with): with one entry, each
        # of them and each new request after it rebuilt the ring (~0.2 s at 1,000 endpoints).
        empty = HashRing(())
        self.state: tuple[EndpointSet | None, HashRing, EndpointSet | None, HashRing] = (
            None, empty, None, empty)

    def get(self, backend: EndpointSet) -> HashRing:
        st = self.state
        if st[0] is not backend:
            if st[2] is backend:
                return st[3]
            if _same(st[0], backend, self.by_hostname):
                # Same endpoints after an update: keep the ring, and the one before it (an
                # equal set is no new set to make room for).
                st = self.state = (backend, st[1], st[2], st[3])
            elif _same(st[2], backend, self.by_hostname):
                # Back to the endpoints before the last update (a pod's readiness flapping:
                # all, all but one, all again): that ring, not a rebuild at every flip.
                st = self.state = (backend, st[3], st[0], st[1])
            else:
                # Unsalted ids: the ring's layout is not secret (no cookie carries these).
                ids = ring_ids(backend, self.by_hostname)
                weights = backend.weights if backend.weighted else None
                st = self.state = (backend, HashRing(ids, weights), st[0], st[1])
        return st[1]


def _subset_key_is(key: _SubsetKey, n: int, weights: tuple[int, ...] | None) -> bool:
    """Whether subsets cut for ``key`` are those of ``n`` endpoints of ``weights`` (the same
    set's weights are the same tuple: no element compared on the request path)."""
    return key[0] == n and (key[1] is weights or key[1] == weights)


class ConsistentHash:
    """``upstream-hash-by``: the key is hashed onto a ketama ring of the endpoints; adding one of
    N endpoints moves only the keys it takes over (about 1/(N+1)).

    Retries (§8: never an endpoint already tried while another is untried) walk the ring
    clockwise to the next untried endpoint. A retry given the request (a context with ``retry``
    False, the tried endpoints in ``tried``) starts from its key's point: the same key always
    retries to the same endpoint, and the keys of a failed endpoint spread over the survivors
    as they would if it left the ring (``Router.next_endpoint`` given ``request=``, as the
    proxy's retries are). A retry context (``retry`` True: ``next_endpoint`` without the
    request) cannot hash the key; it starts from a point inside the arcs the first
    tried endpoint owns, the k-th such retry at the k-th point of a low-discrepancy sequence
    over those arcs, so its retries also spread over the survivors in those shares instead of
    all landing on one endpoint. (ingress-nginx's ``chash.lua`` ``balance()`` hashes the same
    key again on every try and so retries the same endpoint: kubernetes/ingress-nginx#11852.)

    With ``upstream-hash-by-subset: "true"`` the endpoints are grouped into subsets of
    ``upstream-hash-by-subset-size`` (default 3), the key picks a subset on the ring and a seeded
    random choice picks one of the subset's places. The subsets are ingress-nginx's
    (``chashsubset.lua`` ``build_subset_map``): the endpoint list cycled to a multiple of the
    size and cut in order, so the last subset is topped up from the first endpoints and, with
    fewer endpoints than the size, one endpoint can hold several places (2 endpoints, size 3:
    ``[e1, e2, e1]``, e1 drawn 2 times in 3, as "endpoints[math.random(#endpoints)]" does).
    Endpoint weights (``ingresslib.io/endpoint-weights``; ingress-nginx has none) count as on
    the plain ring: a place draws with its endpoint's weight, and a subset holds ring points
    in proportion to the weight of its places, so every endpoint's share of the keys is its
    unweighted share scaled by its weight."""

    __slots__ = ("_template", "_subset", "_rng", "_lock", "_cache", "_subset_state",
                 "_retries")

    def __init__(self, options: BalancerOptions) -> None:
        spec = options.spec
        self._template = KeyTemplate(spec.hash_by if spec and spec.hash_by else "$request_uri")
        self._subset = spec.subset_size if spec and spec.subset else 0
        self._rng = options.rng
        self._lock = threading.Lock()
        # upstream-hash-by-use-hostname: the ring is keyed by the endpoints' host names (the
        # subsets are not: chashsubset.lua cuts the endpoint list, no node ids).
        self._cache = _RingCache(parse_bool(
            options.annotations.get(USE_HOSTNAME_ANNOTATION, "")) is True)
        #: The endpoint count (and weights) the subsets were cut for (they and their ring
        #: depend on nothing else: places hold endpoint indexes, the ring's members are
        #: ``subset-<i>``), the ring over the subsets, and per subset its first place and
        #: (endpoint index, draw mass) per endpoint; then the same for the set before. One
        #: tuple, replaced whole: a thread picking while another rebuilds never pairs a new
        #: ring with old subsets. Two entries, as ``_RingCache``: the retry of a request routed
        #: before an endpoint update still holds the set before it, and with one entry each
        #: such retry and each new request after it rebuilt the ring (~20 ms at 1,000
        #: endpoints); an update that keeps the count and weights (another set object, or
        #: pods replaced) rebuilds nothing.
        empty: _SubsetState = ((-1, None), HashRing(()), [])
        self._subset_state: tuple[_SubsetState, _SubsetState] = (empty, empty)
        #: Keyless retries so far (``_retry_start``): next() on itertools.count is atomic.
        self._retries = itertools.count()

    @property
    def uses_request(self) -> bool:
        return bool(self._template.parts) and not all(k == "lit" for k, _ in self._template.parts)

    @property
    def template(self) -> KeyTemplate:
        return self._template

    def key(self, request: RequestContext) -> str:
        return self._template.render(request)

    def pick(self, request: RequestContext, backend: EndpointSet,
             tried: Collection[Address]) -> int | None:
        if request.retry and tried:
            if self._subset and backend.endpoints:
                return self._retry_in_subset(backend, tried)
            # A retry context has no request to re-hash: start inside the first tried
            # endpoint's arcs (``_retry_start``), a different one for each retry.
            return self.pick_point(self._retry_start(backend, tried), backend, tried)
        return self.pick_point(hash_key(self._template.render(request)), backend, tried)

    @property
    def subset(self) -> int:
        return self._subset

    def ring(self, backend: EndpointSet) -> HashRing:
        """The ring over ``backend``'s endpoints (built once per endpoint set)."""
        return self._cache.get(backend)

    def pick_key(self, key: str, backend: EndpointSet) -> int | None:
        """The endpoint owning ``key`` (nothing tried yet)."""
        if not backend.endpoints:
            return None
        if self._subset:
            return self.pick_point(hash_key(key), backend, ())
        return self._cache.get(backend).lookup(hash_key(key))

    def pick_point(self, start: int, backend: EndpointSet,
                   tried: Collection[Address]) -> int | None:
        eps = backend.endpoints
        if not eps:
            return None
        if self._subset:
            return self._pick_subset(start, backend, tried)
        ring = self._cache.get(backend)
        if not tried:
            return ring.lookup(start)
        found = ring.lookup(start)
        if eps[found] not in tried:
            return found  # the owner itself is untried: no pass over every endpoint
        found = ring.lookup_skipping(start, TriedMembers(eps, tried))
        return None if found < 0 else found

    #: 2**32 / the golden ratio: the k-th keyless retry lands at the fraction ``k * _GOLDEN /
    #: 2**32`` (mod 1) of the arcs' length, a sequence that covers them evenly from its first
    #: terms on.
    _GOLDEN = 0x9E3779B9

    def _retry_start(self, backend: EndpointSet, tried: Collection[Address]) -> int:
        """Where a keyless retry starts walking the ring: a point in one of the arcs the first
        tried endpoint owns (the keys it served lie there), the k-th retry at the k-th term
        of a golden-ratio sequence over their total length. Each survivor then gets the
        share of the retries it would get of the failed endpoint's keys if that left the
        ring, where one fixed start sent all of them to one endpoint. An endpoint no longer
        in ``backend`` (routed before an update) starts where its id hashes to."""
        eps = backend.endpoints
        for ep in tried:
            try:
                k = eps.index(ep)
            except ValueError:
                return hash_key(member_id(*ep))
            ring = self._cache.get(backend)
            idx, cum = ring.arcs_of(k)
            if not idx or not cum[-1]:
                return hash_key(member_id(*ep))
            t = (next(self._retries) * self._GOLDEN & 0xFFFFFFFF) * cum[-1] >> 32
            return ring.points[idx[bisect_right(cum, t)]]
        return 0

    def _subsets(self, backend: EndpointSet) -> _SubsetState:
        """The subset state of ``backend``'s endpoint count and weights (built on first use)."""
        n = len(backend.endpoints)
        weights = backend.weights if backend.weighted else None
        states = self._subset_state
        state = states[0]
        if not _subset_key_is(state[0], n, weights):
            if _subset_key_is(states[1][0], n, weights):
                # The set before the last change (a retry routed before an endpoint
                # update, or a pod's readiness flapping): that state, not a rebuild.
                state = states[1]
                self._subset_state = (state, states[0])
                return state
            with self._lock:
                state = self._cut_subsets(n, weights)
                self._subset_state = (state, self._subset_state[0])
        return state

    def _cut_subsets(self, n: int, weights: tuple[int, ...] | None) -> _SubsetState:
        """The subsets of ``n`` endpoints (of ``weights``, None: unweighted) and their ring."""
        size = self._subset
        count = max(1, math.ceil(n / size))
        subsets = []
        for s in range(count):
            # chashsubset.lua pads with "table.insert(endpoints, endpoints[j]); j = j+1"
            # up to "set_count * subset_size" places (j runs on into the padding when
            # there are fewer endpoints than places: a cycle), then cuts the list in
            # order: place t holds endpoint t mod n, and every subset has ``size``
            # places (chashsubset_test.lua: "assert.are.equal(#endpoints, 3)"). Kept
            # as (first place, (endpoint, places it holds) per distinct endpoint): a
            # subset-size far above the endpoint count costs no memory.
            first = s * size
            held = tuple(
                (k, (first + size - 1 - k) // n - (first - 1 - k) // n)
                for k in ((first + j) % n for j in range(min(size, n))))
            if weights is not None:
                # ingresslib's endpoint weights (ingress-nginx has none): a place draws
                # with its endpoint's weight, as a weighted endpoint holds more of the
                # plain ring.
                held = tuple((k, places * weights[k]) for k, places in held)
            subsets.append((first, held))
        names = [f"subset-{s}" for s in range(count)]
        if weights is None:
            return (n, None), HashRing(names), subsets
        # Each subset's share of the keys in proportion to the weight of its places, so an
        # endpoint's share is its unweighted share times its weight (the draw above gives
        # it its weight's part of the subset's). Divided by their gcd: the fewest points.
        mass = [sum(m for _, m in held) for _, held in subsets]
        g = math.gcd(*mass)
        return (n, weights), HashRing(names, [m // g for m in mass]), subsets

    def _draw(self, cand: Sequence[tuple[int, int]]) -> int | None:
        """One of ``cand``'s endpoints (endpoint index, draw mass; at least one), each as
        likely as its mass."""
        with self._lock:
            r = self._rng.randrange(sum(mass for _, mass in cand))
        for k, mass in cand:
            if r < mass:
                return k
            r -= mass
        return None  # not reached: r < the total of the masses

    def _retry_in_subset(self, backend: EndpointSet, tried: Collection[Address]) -> int | None:
        """A retry stays in the request's subset: ingress-nginx's ``chashsubset.lua``
        ``balance()`` runs again for every try and hashes the same key to the same subset
        ("local subset_id = self.instance:find(key); local endpoints =
        self.subsets[subset_id]"). A retry here has no request to hash, but the endpoints it
        tried were picked from that subset: one of the untried places of the subsets holding
        a tried endpoint, evenly (by weight when the endpoints have weights; an endpoint that
        pads the last subset is in two); any untried endpoint once those are all tried."""
        eps = backend.endpoints
        subsets = self._subsets(backend)[2]
        done = {k for k, ep in enumerate(eps) if ep in tried}
        cand: list[tuple[int, int]] = []
        for _first, held in subsets:
            if any(k in done for k, _ in held):
                cand.extend((k, mass) for k, mass in held if k not in done)
        if not cand:
            return _first_untried(len(eps), 0, eps, tried)
        return self._draw(cand)

    def _pick_subset(self, start: int, backend: EndpointSet,
                     tried: Collection[Address]) -> int | None:
        eps = backend.endpoints
        state = self._subsets(backend)
        first, held = state[2][state[1].lookup(start)]
        if not tried:
            if state[0][1] is None:
                # "endpoints[math.random(#endpoints)]": one of the subset's places, evenly.
                with self._lock:
                    return (first + self._rng.randrange(self._subset)) % len(eps)
            return self._draw(held)  # one of the places, by its endpoint's weight
        # One of the untried endpoints' places, evenly (by weight with weights).
        cand = [(k, mass) for k, mass in held if eps[k] not in tried]
        if not cand:
            # The whole subset was tried: any untried endpoint beats failing the request.
            return _first_untried(len(eps), 0, eps, tried)
        return self._draw(cand)

    def observe(self, endpoint: Address, seconds: float, ok: bool) -> None:
        pass
