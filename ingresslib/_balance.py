"""The ``Balancer`` protocol, the built-in balancers, and the annotations choosing them (§8).

"Per backend, chosen by ``nginx.ingress.kubernetes.io/load-balance`` (default round-robin):
round-robin (strict cycle; smooth weighted when weights exist), EWMA (decayed latency, 10 s decay,
power of two choices), consistent hashing ``upstream-hash-by`` ..., cookie affinity ...
Balancers are a small protocol anyone can implement and register. A retry never goes back to an
endpoint this request already tried while another is untried."

Which balancer serves a backend follows ingress-nginx's ``balancer.lua``: cookie affinity if
``affinity: cookie``, else consistent hashing if ``upstream-hash-by`` is set, else the
``load-balance`` algorithm (the Router's default, ``round_robin``, when absent).

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

import functools
import itertools
import math
import random
import re
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from math import exp as _exp
from typing import Any, Protocol, runtime_checkable

from ._endpoints import EndpointSet
from ._hashing import HashRing, hash_key, member_id, ngx_md5, salted_id
from ._models import EMPTY_MAP
from ._errors import BadRequestError
from ._goparse import parse_bool, parse_int
from ._normalize import ascii_lower, canonical_path, normalize_host

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

Address = tuple[str, int]
_P = "nginx.ingress.kubernetes.io/"


# --- the request as balancers see it ------------------------------------------------------------

Headers = Mapping[str, str] | Iterable[tuple[str | bytes, str | bytes]]

_H11Headers: Any = None
try:  # What the proxy passes: h11's header list, read through its lower-cased triples.
    from h11._headers import Headers as _H11Headers
except ImportError:  # pragma: no cover - h11 is a dependency; a layout change costs speed only
    pass
#: ``h11.Headers`` (or None): header lists of this type are read through their lower-cased
#: ``(raw, lower, value)`` triples.
H11_HEADERS: Any = _H11Headers


def _text(value: Any) -> Any:
    """A header value that is not ``bytes`` or ``str``, as the router reads it: a ``bytearray``
    or ``memoryview`` (what an ASGI server or middleware may hand over) as its bytes, latin-1
    decoded as ``bytes`` values are; anything else as it is. Off the hot path: callers decode
    ``bytes`` themselves first, and ``h11.Headers`` (the proxy's) never holds anything else:
    h11 makes every value ``bytes``, so its reads need no check."""
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value).decode("latin-1")
    return value


def _name_bytes(name: Any) -> bytes | None:
    """A header name that is neither ``bytes`` nor ``str``, lower-cased as bytes: a
    ``bytearray`` or ``memoryview`` (an ASGI middleware's) is its bytes; anything else None
    (matches nothing)."""
    if isinstance(name, (bytes, bytearray, memoryview)):
        return bytes(name).lower()
    return None


def _pairs(headers: Iterable[tuple[str | bytes, str | bytes]]
           ) -> Iterable[tuple[str | bytes, str | bytes]]:
    """``headers`` as ``(name, value)`` pairs: a mapping-like header object that is no
    ``Mapping`` (``http.client.HTTPMessage``, the ``self.headers`` of an ``http.server``
    handler: an ``email.message.Message``, whose iteration yields names only) through its
    ``items()``, which keeps repeated headers; an iterable of pairs as it is, a ``list`` or
    ``tuple`` subclass too, whatever else it has called ``items``."""
    items = getattr(headers, "items", None)
    if callable(items) and not isinstance(headers, (list, tuple)):
        return items()  # type: ignore[no-any-return]
    return headers


def header_value(headers: Headers, name: str, bname: bytes, join: str | None = None
                 ) -> str | None:
    """A header's value straight from the raw headers (no dict is built).

    ``name``/``bname``: the lower-case name as str and bytes; request names match
    case-insensitively. The *first* occurrence counts, unless ``join`` is given (every
    occurrence joined by it: nginx's ``$http_*`` variables join with ``", "``, ``Cookie`` with
    ``"; "``). Fast paths:
    an ``h11.Headers`` object (what the proxy passes; names already lower case) and lists of
    lower-case byte pairs, where a header costs one ``==``. Other than in ``h11.Headers``
    (whose values h11 makes ``bytes``), a ``bytearray`` or ``memoryview`` value is read as its
    bytes, as a ``bytes`` one (:func:`_text`); so is one in an ``h11.Headers`` built by hand
    (its constructor takes the triples as given). A ``bytearray`` or ``memoryview`` *name*
    matches as its bytes do.
    """
    t = type(headers)
    items: Iterable[tuple[str | bytes, str | bytes]]
    if t is _H11Headers:
        # h11.Headers: (raw name, lower-case name, value) triples, bytes when h11 made them.
        full = headers._full_items  # type: ignore[union-attr]
        if join is None:
            for _, k, v in full:
                if k == bname:
                    return v.decode("latin-1") if type(v) is bytes else _text(v)
            return None
        vals = [v.decode("latin-1") if type(v) is bytes else _text(v)
                for _, k, v in full if k == bname]
        return join.join(vals) if vals else None
    if t is list or t is tuple:
        items = headers  # type: ignore[assignment]
    elif t is dict:
        items = headers.items()  # type: ignore[union-attr]
    else:
        items = headers.items() if isinstance(headers, Mapping) else _pairs(headers)
    ln = len(name)
    found: list[str] = []
    for k, v in items:
        if k == bname or (len(k) == ln and (
                k.lower() == bname if type(k) is bytes else k.lower() == name
                if isinstance(k, str) else _name_bytes(k) == bname)):
            sv = v.decode("latin-1") if type(v) is bytes else v if type(v) is str else _text(v)
            if join is None:
                return sv
            found.append(sv)
    return join.join(found) if found else None  # type: ignore[union-attr]


def cookie_value(headers: Headers, cookie: str, fold: bool = False) -> str | None:
    """The first cookie named ``cookie``.

    ``fold=False`` (session affinity, as lua-resty-cookie's ``cookie:get(name)``, a table
    lookup): the name is case-sensitive. ``fold=True`` (canary cookie and ``$cookie_*`` in
    ``upstream-hash-by``, both nginx variables): nginx's ``$cookie_NAME`` exactly
    (:func:`_nginx_cookie_pattern`): the name matches case-insensitively
    ("if (ngx_strncasecmp(start, name->data, name->len) != 0) goto skip;"), "," separates
    pairs too, the value is not trimmed at its end.
    """
    if fold:
        # Each Cookie line on its own, as nginx walks the header's lines ("for (h = headers;
        # h; h = h->next)"): "\n" cannot occur inside a header value, so it marks the lines.
        lines = header_value(headers, "cookie", b"cookie", join="\n")
        if not lines:
            return None
        # ASCII letters only, as ngx_strncasecmp: str.lower() would also fold "É" to "é".
        want = ascii_lower(cookie)
        low = ascii_lower(lines)
        if want not in low:
            return None
        pattern = _nginx_cookie_pattern(want)
        if "\n" not in lines:
            m = pattern.match(low)
            return None if m is None else lines[m.start(1):m.end(1)]
        start = 0
        for line in lines.split("\n"):
            # ``low`` has the same length as ``lines`` (ascii_lower maps each character to one).
            m = pattern.match(low, start, start + len(line))
            if m is not None:
                return lines[m.start(1):m.end(1)]
            start += len(line) + 1
        return None
    raw = header_value(headers, "cookie", b"cookie", join="; ")
    if not raw:
        return None
    if cookie not in raw:
        return None
    for part in raw.split(";"):
        k, sep, v = part.strip().partition("=")
        if sep and k == cookie:
            return v.strip()
    return None


@functools.lru_cache(maxsize=256)
def _nginx_cookie_pattern(want: str) -> re.Pattern[str]:
    """nginx's ``$cookie_NAME`` lookup on one ``Cookie`` line, as one anchored regex (run on the
    ASCII-lower-cased line; ``want`` is the lower-cased name). A port of
    ``ngx_http_parse_multi_header_lines`` (nginx/nginx ``src/http/ngx_http_parse.c``), quirks
    included, since ingress-nginx's canary cookie and ``upstream-hash-by`` read that variable:

    * a pair starting with the name ("ngx_strncasecmp(start, name->data, name->len)"), spaces,
      then "=" is the answer: spaces skipped, the value runs to the next ";" only ("*last !=
      ';'"), trailing blanks and commas included;
    * a pair starting with the name whose next non-space character is not "=" has consumed
      that character ("if (start == end || *start++ != '=') goto skip;") before skipping;
    * skipping goes past the next ";" *or* "," ("if (ch == ';' || ch == ',') break;") and the
      spaces (not tabs) after it.

    So ``a=1, canary=always`` finds ``always``, ``canary=always ;`` reads ``"always "`` and
    ``canary; canary=always`` finds nothing. Possessive repeats: nginx never backtracks."""
    name = re.escape(want)
    return re.compile(
        rf"(?:{name} *+[^=][^;,]*+[;,] *+|(?!{name})[^;,]*+[;,] *+)*+{name} *+= *+([^;]*)")


class RequestContext:
    """What a balancer may look at. Headers, cookies and query arguments are parsed on first use
    only, so balancers that do not read them cost nothing.

    Header names match case-insensitively; a ``_`` in the *wanted* name stands for ``-`` (nginx's
    ``$http_x_user`` reads ``X-User``). Request header names containing ``_`` are not rewritten
    (nginx ignores them by default, and the proxy drops them). Cookie names are case-sensitive;
    the first cookie of a name wins (nginx).
    """

    __slots__ = ("method", "host", "path", "query", "client_ip", "retry", "_raw", "_headers",
                 "_cookies", "_args")

    def __init__(self, method: str = "GET", host: str = "", path: str = "/",
                 headers: Headers = (),
                 client_ip: str | None = None, query: str | None = None,
                 retry: bool = False) -> None:
        self.method = method
        self.host = host
        self.path = path
        self.query = query
        self.client_ip = client_ip
        #: True for contexts made by ``Router.next_endpoint`` (no headers are known then).
        self.retry = retry
        self._raw = headers
        self._headers: dict[str, str] | None = None
        self._cookies: dict[str, str] | None = None
        self._args: dict[str, str] | None = None

    @property
    def request_uri(self) -> str:
        """nginx ``$request_uri``: path plus ``?query`` when a query was given."""
        return self.path if self.query is None else f"{self.path}?{self.query}"

    def headers(self) -> dict[str, str]:
        """All headers, names lower-cased (a ``_`` in a request's header name is kept: see the
        class), repeats joined by ``, `` (``Cookie`` repeats by ``; ``, RFC 9113 §8.2.3). A
        ``bytearray`` or ``memoryview`` name or value reads as its bytes (latin-1)."""
        h = self._headers
        if h is None:
            h = {}
            raw = self._raw
            items: Iterable[tuple[str | bytes, str | bytes]]
            if type(raw) is _H11Headers:
                # h11.Headers, read without its per-item __getitem__
                items = [(k, v) for _, k, v in raw._full_items]  # type: ignore[union-attr]
            else:
                items = raw.items() if isinstance(raw, Mapping) else _pairs(raw)
            for name, value in items:
                n = (name.decode("latin-1") if isinstance(name, bytes)
                     else name if isinstance(name, str) else _text(name))
                n = n.lower()
                v = (value.decode("latin-1") if isinstance(value, bytes)
                     else value if isinstance(value, str) else _text(value))
                old = h.get(n)
                if old is None:
                    h[n] = v
                else:
                    h[n] = f"{old}; {v}" if n == "cookie" else f"{old}, {v}"
            self._headers = h
        return h

    def header(self, name: str) -> str | None:
        """One header's value; ``name`` as written in an annotation (``_`` means ``-``, as in
        nginx's ``$http_x_user``)."""
        return self.headers().get(name.lower().replace("_", "-"))

    def cookies(self) -> dict[str, str]:
        c = self._cookies
        if c is None:
            c = {}
            raw = self.headers().get("cookie")
            if raw:
                for part in raw.split(";"):
                    k, sep, v = part.strip().partition("=")
                    if sep and k and k not in c:
                        c[k] = v.strip()
            self._cookies = c
        return c

    def cookie(self, name: str) -> str | None:
        return self.cookies().get(name)

    def arg(self, name: str) -> str | None:
        """nginx ``$arg_name``: the raw (still escaped) value of the first ``name=``, the name
        matched case-insensitively (A-Z only). nginx's ``ngx_http_arg`` (nginx/nginx
        ``src/http/ngx_http_parse.c``) takes a match only where "(p == r->args.data || *(p - 1)
        == '&') && *(p + len) == '='", so in ``flag&flag=1`` the bare ``flag`` is passed over
        and ``$arg_flag`` is ``1``. A name that only ever appears bare reads as ``""`` (nginx
        has no value then, which renders as empty text)."""
        a = self._args
        if a is None:
            a = {}
            bare: list[str] = []
            if self.query:
                for part in self.query.split("&"):
                    k, eq, v = part.partition("=")
                    if not k:
                        continue
                    k = ascii_lower(k)
                    if eq:
                        a.setdefault(k, v)
                    else:
                        bare.append(k)
            for k in bare:
                a.setdefault(k, "")
            self._args = a
        return a.get(ascii_lower(name))


#: The context handed to balancers whose ``uses_request`` is False, and to retries.
EMPTY_REQUEST = RequestContext()


# --- the protocol --------------------------------------------------------------------------------


@runtime_checkable
class Balancer(Protocol):
    """Chooses among the ready endpoints of one backend.

    ``pick`` returns an index into ``backend.endpoints`` (never one in ``tried`` while another
    is untried), or None when every endpoint was tried or there is none. ``observe`` hears how a
    request to ``endpoint`` went (latency-aware balancers use it; others ignore it).

    One instance serves one backend for as long as the backend exists: endpoint changes arrive
    as a new ``backend`` argument (compare it with ``is`` to refresh derived state). ``pick`` may
    be called from several threads at once. An optional class attribute ``uses_request = False``
    tells the Router that ``request`` is not read (it then passes :data:`EMPTY_REQUEST`).
    """

    def pick(self, request: RequestContext, backend: EndpointSet,
             tried: Collection[Address]) -> int | None: ...

    def observe(self, endpoint: Address, seconds: float, ok: bool) -> None: ...


@dataclass(frozen=True, slots=True)
class BalancerOptions:
    """What a factory gets: the Ingress annotations (custom balancers may read their own), a
    random source seeded from the Router's ``seed``, and a monotonic clock."""

    annotations: Mapping[str, str] = field(default_factory=lambda: EMPTY_MAP)
    rng: random.Random = field(default_factory=random.Random)
    clock: Callable[[], float] = time.monotonic
    spec: BalancerSpec | None = None


BalancerFactory = Callable[[BalancerOptions], Balancer]


def _first_untried(n: int, start: int, endpoints: tuple[Address, ...],
                   tried: Collection[Address]) -> int | None:
    for step in range(n):
        k = (start + step) % n
        if endpoints[k] not in tried:
            return k
    return None


class RoundRobin:
    """A strict cycle (even over any window of N picks); smooth weighted round-robin (nginx's
    algorithm: every pick adds each weight to its counter, takes the largest, subtracts the total)
    when the endpoints carry unequal weights."""

    uses_request = False
    __slots__ = ("counter", "_lock", "_wbackend", "_current")

    def __init__(self, options: BalancerOptions | None = None) -> None:
        # next() on itertools.count is atomic under the GIL: no lost or repeated ticks.
        self.counter = itertools.count()
        self._lock = threading.Lock()
        self._wbackend: EndpointSet | None = None
        self._current: list[int] = []

    def pick(self, request: RequestContext, backend: EndpointSet,
             tried: Collection[Address]) -> int | None:
        eps = backend.endpoints
        n = len(eps)
        if not n:
            return None
        if backend.weighted:
            return self._pick_weighted(backend, tried)
        i = next(self.counter) % n
        if tried and eps[i] in tried:
            return _first_untried(n, i, eps, tried)
        return i

    def _pick_weighted(self, backend: EndpointSet, tried: Collection[Address]) -> int | None:
        eps = backend.endpoints
        weights = backend.weights
        with self._lock:
            if self._wbackend is not backend:
                # Keep counters of endpoints that stay, so an endpoint change does not restart
                # the interleave for everyone.
                old = dict(zip(self._wbackend.endpoints, self._current)) if self._wbackend else {}
                self._current = [old.get(ep, 0) for ep in eps]
                self._wbackend = backend
            cur = self._current
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

    def observe(self, endpoint: Address, seconds: float, ok: bool) -> None:
        pass


class Ewma:
    """Power of two choices over a decayed latency average (ingress-nginx ``ewma.lua``).

    Score = latency EWMA decayed towards 0 while idle (10 s decay time, so a slow endpoint gets
    another chance), divided by a success-rate EWMA. A failure counts as a sample of at least
    :attr:`FAILURE_PENALTY` seconds, so an endpoint that fails fast never looks attractive.
    Endpoints of the first endpoint set seen score 0 and are tried first; endpoints added
    later start at the average of the others (slow start, as ingress-nginx's ``sync``), and the
    statistics of removed endpoints are dropped. Difference from ingress-nginx: a sample
    arriving in the same instant as the previous one still counts (ingress-nginx's weight
    ``exp(-0/10) = 1`` ignores it); each sample weighs at least 1 %.
    """

    DECAY_TIME = 10.0
    MIN_SAMPLE_GAP = 0.1
    FAILURE_PENALTY = 1.0
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
        if tried:
            cand = [k for k in range(n) if eps[k] not in tried]
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


# --- nginx variables in upstream-hash-by --------------------------------------------------------


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


class _RingCache:
    """The ring of the current endpoint set, rebuilt only when the endpoints change."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        # (endpoint set, ring), replaced whole so readers never mix two.
        self.state: tuple[EndpointSet | None, HashRing] = (None, HashRing(()))

    def get(self, backend: EndpointSet) -> HashRing:
        st = self.state
        if st[0] is not backend:
            if st[0] is not None and st[0].endpoints == backend.endpoints \
                    and st[0].weights == backend.weights:
                st = (backend, st[1])  # same endpoints after an update: keep the ring
            else:
                # Unsalted ids: the ring's layout is not secret (no cookie carries these).
                ids = [member_id(ip, port) for ip, port in backend.endpoints]
                weights = backend.weights if backend.weighted else None
                st = (backend, HashRing(ids, weights))
            self.state = st
        return st[1]


class ConsistentHash:
    """``upstream-hash-by``: the key is hashed onto a ketama ring of the endpoints; adding one of
    N endpoints moves only the keys it takes over (about 1/(N+1)). Retries walk the ring
    clockwise to the next untried endpoint.

    With ``upstream-hash-by-subset: "true"`` the endpoints are grouped into subsets of
    ``upstream-hash-by-subset-size`` (default 3), the key picks a subset on the ring and a seeded
    random choice picks one of the subset's places. The subsets are ingress-nginx's
    (``chashsubset.lua`` ``build_subset_map``): the endpoint list cycled to a multiple of the
    size and cut in order, so the last subset is topped up from the first endpoints and, with
    fewer endpoints than the size, one endpoint can hold several places (2 endpoints, size 3:
    ``[e1, e2, e1]``, e1 drawn 2 times in 3, as "endpoints[math.random(#endpoints)]" does)."""

    __slots__ = ("_template", "_subset", "_rng", "_lock", "_cache", "_subset_state")

    def __init__(self, options: BalancerOptions) -> None:
        spec = options.spec
        self._template = KeyTemplate(spec.hash_by if spec and spec.hash_by else "$request_uri")
        self._subset = spec.subset_size if spec and spec.subset else 0
        self._rng = options.rng
        self._lock = threading.Lock()
        self._cache = _RingCache()
        #: The endpoint set the subsets were cut from, the ring over the subsets, and per subset
        #: its first place and (endpoint index, places it holds) per endpoint. One tuple, replaced
        #: whole: a thread picking while another rebuilds never pairs a new ring with old subsets.
        self._subset_state: tuple[EndpointSet | None, HashRing,
                                  list[tuple[int, tuple[tuple[int, int], ...]]]] = (
            None, HashRing(()), [])

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
            # A retry has no request to re-hash: continue clockwise from the first tried
            # endpoint's own first point, which is deterministic and stays on the ring's order.
            return self.pick_point(self._start_of_tried(backend, tried), backend, tried)
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
        skip = {k for k, ep in enumerate(eps) if ep in tried}
        found = ring.lookup_skipping(start, skip)
        return None if found < 0 else found

    def _start_of_tried(self, backend: EndpointSet, tried: Collection[Address]) -> int:
        for ep in tried:
            return hash_key(member_id(*ep))
        return 0

    def _subsets(self, backend: EndpointSet) -> tuple[
            EndpointSet | None, HashRing, list[tuple[int, tuple[tuple[int, int], ...]]]]:
        """The subset state of ``backend`` (built on its first use)."""
        eps = backend.endpoints
        size = self._subset
        state = self._subset_state
        if state[0] is not backend:
            with self._lock:
                n = len(eps)
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
                    subsets.append((first, held))
                state = (backend, HashRing([f"subset-{s}" for s in range(count)]), subsets)
                self._subset_state = state
        return state

    def _retry_in_subset(self, backend: EndpointSet, tried: Collection[Address]) -> int | None:
        """A retry stays in the request's subset: ingress-nginx's ``chashsubset.lua``
        ``balance()`` runs again for every try and hashes the same key to the same subset
        ("local subset_id = self.instance:find(key); local endpoints =
        self.subsets[subset_id]"). A retry here has no request to hash, but the endpoints it
        tried were picked from that subset: one of the untried places of the subsets holding
        a tried endpoint, evenly (an endpoint that pads the last subset is in two); any
        untried endpoint once those are all tried."""
        eps = backend.endpoints
        subsets = self._subsets(backend)[2]
        done = {k for k, ep in enumerate(eps) if ep in tried}
        cand: list[tuple[int, int]] = []
        for _first, held in subsets:
            if any(k in done for k, _ in held):
                cand.extend((k, places) for k, places in held if k not in done)
        if not cand:
            return _first_untried(len(eps), 0, eps, tried)
        with self._lock:
            r = self._rng.randrange(sum(places for _, places in cand))
        for k, places in cand:
            if r < places:
                return k
            r -= places
        return None  # not reached: r < the total of the places

    def _pick_subset(self, start: int, backend: EndpointSet,
                     tried: Collection[Address]) -> int | None:
        eps = backend.endpoints
        size = self._subset
        state = self._subsets(backend)
        first, held = state[2][state[1].lookup(start)]
        if not tried:
            # "endpoints[math.random(#endpoints)]": one of the subset's places, evenly.
            with self._lock:
                return (first + self._rng.randrange(size)) % len(eps)
        cand = [(k, places) for k, places in held if eps[k] not in tried]
        if not cand:
            # The whole subset was tried: any untried endpoint beats failing the request.
            return _first_untried(len(eps), 0, eps, tried)
        with self._lock:
            r = self._rng.randrange(sum(places for _, places in cand))
        for k, places in cand:  # one of the untried endpoints' places, evenly
            if r < places:
                return k
            r -= places
        return None  # not reached: r < the total of the places

    def observe(self, endpoint: Address, seconds: float, ok: bool) -> None:
        pass


# --- cookie affinity ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AffinityConfig:
    """``affinity: cookie`` and the ``session-cookie-*`` annotations."""

    name: str = "INGRESSCOOKIE"
    path: str = "/"
    max_age: int | None = None
    expires: int | None = None
    samesite: str | None = None
    secure: bool = False
    mode: str = "balanced"
    domain: str | None = None
    #: ``session-cookie-change-on-failure``: a retry that moves a session to another endpoint
    #: also moves its cookie there.
    change_on_failure: bool = False
    #: ``session-cookie-conditional-samesite-none``: leave ``SameSite=None`` out for user agents
    #: that mishandle it (:func:`samesite_none_compatible`).
    conditional_samesite_none: bool = False
    #: ``session-cookie-partitioned``: the ``Partitioned`` attribute (CHIPS).
    partitioned: bool = False


def upstream_name(namespace: str, service: str | None, port: int | str | None) -> str:
    """ingress-nginx's name for the upstream of Service ``service`` (in ``namespace``) on
    ``port`` as written in the Ingress (number or name): ``internal/ingress/controller/util.go``
    ``upstreamName``::

        if service.Port.Number > 0 {
            return fmt.Sprintf("%s-%s-%d", namespace, service.Name, service.Port.Number) }
        if service.Port.Name != "" {
            return fmt.Sprintf("%s-%s-%s", namespace, service.Name, service.Port.Name) }
        return fmt.Sprintf("%s-INVALID", namespace)

    It is the backend's ``name`` in the Lua balancers, the salt of persistent affinity cookies.

    >>> upstream_name("shop", "web", 80), upstream_name("shop", "web", "http")
    ('shop-web-80', 'shop-web-http')
    """
    if service is not None:
        if type(port) is int and port > 0:
            return f"{namespace}-{service}-{port}"
        if type(port) is str and port:
            return f"{namespace}-{service}-{port}"
    return f"{namespace}-INVALID"


def samesite_none_compatible(user_agent: str | None) -> bool:
    """False for the user agents known to reject or mishandle ``SameSite=None`` cookies.

    A port of ingress-nginx's ``rootfs/etc/nginx/lua/util/same_site.lua``
    (``same_site_none_compatible``; reference
    https://www.chromium.org/updates/same-site/incompatible-clients). Its tests are Lua
    ``string.match`` patterns without magic characters, so each is a plain substring test::

        if string.match(user_agent, "Chrome/4") then return false
        elseif string.match(user_agent, "Chrome/5") then return false
        elseif string.match(user_agent, "Chrome/6") then return false
        elseif string.match(user_agent, "CPU iPhone OS 12") then return false
        elseif string.match(user_agent, "iPad; CPU OS 12") then return false
        elseif string.match(user_agent, "Macintosh")
            and string.match(user_agent, "Intel Mac OS X 10_14")
            and string.match(user_agent, "Safari")
            and not string.match(user_agent, "Chrome") then return false
        end
        return true

    No ``User-Agent`` at all counts as compatible (ingress-nginx would call ``string.match``
    on nil there, a Lua error).
    """
    if not user_agent:
        return True
    if "Chrome/4" in user_agent or "Chrome/5" in user_agent or "Chrome/6" in user_agent:
        return False
    if "CPU iPhone OS 12" in user_agent or "iPad; CPU OS 12" in user_agent:
        return False
    if ("Macintosh" in user_agent and "Intel Mac OS X 10_14" in user_agent
            and "Safari" in user_agent and "Chrome" not in user_agent):
        return False
    return True


class CookieAffinity:
    """Sticky sessions (ingress-nginx ``sticky_balanced.lua`` / ``sticky_persistent.lua``).

    ``persistent``: the cookie names the endpoint, as ingress-nginx writes it
    (:meth:`persistent_value`: a salted MD5 of ``ip:port``, then ``|`` and the backend's key);
    the session stays on it as long as it is ready. ``balanced``: the cookie holds a random key
    hashed onto a ring of the endpoints, so scaling out moves a fair share of sessions to the
    new endpoints. New sessions are spread round-robin (persistent) or by their random key
    (balanced). A cookie that no longer leads anywhere is replaced.

    With ``conditional_samesite_none`` and ``SameSite=None`` (``ua_sensitive``), the cookie
    depends on the request's ``User-Agent``: callers pass ``samesite_none`` (see
    :meth:`samesite_none`) to the methods that render one.

    ``backend_name``: the backend's name as ingress-nginx names the upstream
    (:func:`upstream_name`), the salt of persistent-mode values. None (a balancer made without
    one) keeps the unsalted value ``MD5(ip:port)`` of ``nodemap.lua`` without a salt
    ("if hash_salt == nil then hash_salt = '' end"), which anyone can reverse into the endpoint:
    the Router always passes the name.
    """

    __slots__ = ("config", "tag", "ua_sensitive", "backend_name", "_rng", "_lock", "_rr",
                 "_cache", "_suffix", "_suffix_compat", "_backend_key", "_keys")

    def __init__(self, options: BalancerOptions, tag: str = "",
                 backend_name: str | None = None) -> None:
        spec = options.spec
        self.config = spec.affinity if spec and spec.affinity else AffinityConfig()
        #: Suffix marking balanced-mode keys of a canary backend, so the two sides of a canary
        #: never mistake each other's sessions.
        self.tag = tag
        self._rng = options.rng
        self._lock = threading.Lock()
        self._rr = itertools.count()
        self._cache = _RingCache()
        c = self.config
        #: True when the cookie's attributes depend on the request's User-Agent.
        self.ua_sensitive = c.conditional_samesite_none and c.samesite == "None"
        self._suffix = self._attributes(True)
        self._suffix_compat = self._attributes(False)
        self.backend_name = backend_name
        #: ingress-nginx ``sticky.lua`` ``sync``: "self.backend_key = ngx.md5(ngx.md5(backend.name)
        #: .. backend.name)", appended to every value it writes: "value = value ..
        #: COOKIE_VALUE_DELIMITER .. self.backend_key" (``COOKIE_VALUE_DELIMITER = "|"``).
        self._backend_key = "" if backend_name is None else "|" + ngx_md5(
            ngx_md5(backend_name) + backend_name)
        #: Persistent mode: (endpoint set, salted key -> index, key per index), replaced whole.
        self._keys: tuple[EndpointSet | None, dict[str, int], tuple[str, ...]] = (None, {}, ())

    def _persistent_keys(self, backend: EndpointSet
                         ) -> tuple[EndpointSet | None, dict[str, int], tuple[str, ...]]:
        st = self._keys
        if st[0] is not backend:
            if st[0] is not None and st[0].endpoints == backend.endpoints:
                st = (backend, st[1], st[2])  # same endpoints after an update: same keys
            else:
                salt = self.backend_name or ""
                keys = tuple(salted_id(salt, ip, port) for ip, port in backend.endpoints)
                st = (backend, {k: i for i, k in enumerate(keys)}, keys)
            self._keys = st
        return st

    def persistent_value(self, backend: EndpointSet, index: int) -> str:
        """The persistent-mode cookie value for ``backend.endpoints[index]``, as ingress-nginx
        writes it: ``MD5(backend_name + "ip:port")`` (``nodemap.lua``; ``sticky_persistent.lua``
        salts with "local hash_salt = backend["name"]") then ``|`` and ``MD5(MD5(backend_name) +
        backend_name)`` (``sticky.lua`` ``set_cookie``). So a session ingress-nginx started for
        the same backend is honoured here and the other way round, and a table of the unsalted
        MD5s of the pod network's addresses no longer reverses the value into the endpoint.
        (The salt is ingress-nginx's, and no secret: who guesses the upstream name can still
        hash every candidate address. Obfuscation, as in ingress-nginx.) Without a
        ``backend_name``: the unsalted MD5 alone."""
        return self._persistent_keys(backend)[2][index] + self._backend_key

    def _index_for(self, value: str, backend: EndpointSet) -> int:
        # ingress-nginx ``sticky.lua`` ``get_cookie_parsed``: the value is split at "|" and its
        # first part ("result.upstream_key = parsed_value[1]") is what leads to the endpoint;
        # the backend key after it is not checked by ``balance()``.
        if "|" in value:
            value = value.partition("|")[0]
            if not value:
                return -1
        if self.config.mode == "persistent":
            return self._persistent_keys(backend)[1].get(value, -1)
        ring = self._cache.get(backend)
        if self.tag:
            if not value.endswith(self.tag):
                return -1
        elif "." in value:
            return -1
        return ring.lookup(hash_key(value))

    def affinitized(self, request: RequestContext, backend: EndpointSet) -> bool:
        """True when the request carries this backend's cookie: it leads to a ready endpoint,
        or (persistent mode) it ends with this backend's key although its endpoint is gone.

        ingress-nginx ``sticky.lua``: "function _M.is_affinitized(self) return
        self:get_cookie_parsed().backend_key == self.backend_key end" - the side of a canary
        is decided by the backend key after "|", not by the endpoint, so a session whose pod
        was replaced stays on its side (``balance()`` then picks it a new endpoint there and
        sets a new cookie) instead of being split by weight again."""
        if not backend.endpoints:
            return False
        value = cookie_value(request._raw, self.config.name)
        if not value:
            return False
        if self._index_for(value, backend) >= 0:
            return True
        # split.split_string(raw_value, "|"): "result.backend_key = parsed_value[2]".
        return (self.config.mode == "persistent" and bool(self._backend_key)
                and value.count("|") >= 1 and value.split("|")[1] == self._backend_key[1:])

    def samesite_none(self, request: RequestContext) -> bool:
        """Whether a cookie for ``request`` may carry ``SameSite=None``: False only with
        ``conditional_samesite_none``, ``SameSite=None`` and a User-Agent that mishandles it.

        ingress-nginx ``sticky.lua`` ``set_cookie``: "if cookie_conditional_samesite_none and
        cookie_samesite == "None" and not
        same_site.same_site_none_compatible(ngx.var.http_user_agent) then cookie_samesite =
        nil". ``$http_user_agent`` joins repeated lines with ", " (nginx >= 1.23).
        """
        if not self.ua_sensitive:
            return True
        return samesite_none_compatible(
            header_value(request._raw, "user-agent", b"user-agent", join=", "))

    def pick_with_cookie(self, request: RequestContext, backend: EndpointSet,
                         tried: Collection[Address], samesite_none: bool | None = None
                         ) -> tuple[int | None, str | None]:
        """The endpoint index, and the ``Set-Cookie`` when a new session starts.
        ``samesite_none``: :meth:`samesite_none` of ``request`` if the caller has it (None:
        decided here, when a cookie is rendered)."""
        eps = backend.endpoints
        n = len(eps)
        if not n:
            return None, None
        value = cookie_value(request._raw, self.config.name)
        if value:
            idx = self._index_for(value, backend)
            if idx >= 0 and not (tried and eps[idx] in tried):
                return idx, None
        if samesite_none is None:
            samesite_none = self.samesite_none(request)
        if self.config.mode == "persistent":
            idx2 = _first_untried(n, next(self._rr) % n, eps, tried)
            if idx2 is None:
                return None, None
            return idx2, self.set_cookie(self.persistent_value(backend, idx2), samesite_none)
        key = self._new_key()
        ring = self._cache.get(backend)
        if tried:
            skip = {k for k, ep in enumerate(eps) if ep in tried}
            idx3 = ring.lookup_skipping(hash_key(key), skip)
        else:
            idx3 = ring.lookup(hash_key(key))
        if idx3 < 0:
            return None, None
        return idx3, self.set_cookie(key, samesite_none)

    def pick(self, request: RequestContext, backend: EndpointSet,
             tried: Collection[Address]) -> int | None:
        return self.pick_with_cookie(request, backend, tried)[0]

    def _new_key(self) -> str:
        """A balanced-mode session key: 64 random bits (the lock keeps the seeded sequence
        intact under threads), tagged on the canary side."""
        with self._lock:
            return f"{self._rng.getrandbits(64):016x}{self.tag}"

    #: Random keys drawn per endpoint before ``cookie_for`` gives up: an endpoint holding a
    #: 1/n share of the ring is missed 64n times in a row with probability about e^-64.
    KEY_DRAWS_PER_ENDPOINT = 64

    def cookie_for(self, backend: EndpointSet, index: int, samesite_none: bool = True
                   ) -> str | None:
        """The ``Set-Cookie`` for a session that a retry moved to ``backend.endpoints[index]``.

        A retry that moved a new session to another endpoint must name the endpoint that
        answered, as ingress-nginx does by calling ``set_cookie`` again on the retry's
        ``balance()`` (the later Set-Cookie of a name wins in the browser); so must a retry
        that moved an existing session with ``change_on_failure``. Persistent mode names the
        endpoint; balanced mode draws random keys until one hashes to it. None when no key was
        found (a session cookie pointing elsewhere would be worse than none).
        ``samesite_none``: as :meth:`samesite_none` said for the request.
        """
        eps = backend.endpoints
        if not 0 <= index < len(eps):
            return None
        if self.config.mode == "persistent":
            return self.set_cookie(self.persistent_value(backend, index), samesite_none)
        ring = self._cache.get(backend)
        for _ in range(self.KEY_DRAWS_PER_ENDPOINT * len(eps)):
            key = self._new_key()
            if ring.lookup(hash_key(key)) == index:
                return self.set_cookie(key, samesite_none)
        return None

    def _attributes(self, samesite_none: bool) -> str | None:
        """The constant part of Set-Cookie after the value (None when Expires varies)."""
        c = self.config
        if c.expires is not None:
            return None
        return self._render_attributes(None, samesite_none)

    def _render_attributes(self, expires_at: float | None, samesite_none: bool = True) -> str:
        c = self.config
        parts = [f"Path={c.path}"]
        if c.domain:
            parts.append(f"Domain={c.domain}")
        if expires_at is not None:
            parts.append(f"Expires={formatdate(expires_at, usegmt=True)}")
        if c.max_age is not None:
            parts.append(f"Max-Age={c.max_age}")
        # sticky.lua: with conditional_samesite_none and an incompatible User-Agent,
        # "cookie_samesite = nil": no SameSite attribute at all.
        samesite = c.samesite if samesite_none or c.samesite != "None" else None
        if samesite:
            parts.append(f"SameSite={samesite}")
        # ingress-nginx's Secure is "cookie_secure = self.cookie_session_affinity.secure" (or
        # https, which the proxy adds). Beyond that: browsers drop SameSite=None and
        # Partitioned cookies without Secure. Where SameSite=None was left out for an old
        # user agent, so is the Secure it required (as in ingress-nginx).
        if c.secure or samesite == "None" or c.partitioned:
            parts.append("Secure")
        parts.append("HttpOnly")  # ingress-nginx always adds HttpOnly
        if c.partitioned:
            # ingress-nginx sessionaffinity/main.go: "This annotation sets the cookie as
            # Partitioned" (``Partitioned bool `json:"partitioned"```); sticky_test.lua:
            # "returns a cookie with Partitioned when user specifies partitioned=true",
            # asserting "payload.partitioned" of the lua-resty-cookie call.
            parts.append("Partitioned")
        return "; " + "; ".join(parts)

    def set_cookie(self, value: str, samesite_none: bool = True) -> str:
        """The ``Set-Cookie`` value for a session cookie holding ``value``; ``samesite_none``
        False leaves ``SameSite=None`` out (:meth:`samesite_none`)."""
        suffix = self._suffix if samesite_none else self._suffix_compat
        if suffix is None:
            suffix = self._render_attributes(time.time() + self.config.expires,  # type: ignore[operator]
                                             samesite_none)
        return f"{self.config.name}={value}{suffix}"

    def observe(self, endpoint: Address, seconds: float, ok: bool) -> None:
        pass


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
    >>> from ingresslib._balance import unregister_balancer  # not public: this example's cleanup
    >>> unregister_balancer("first")

    For one Router only: ``Router(res, balancers={"first": factory})``. The names ``sticky``
    and ``chash`` are reserved (``ValueError``).
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


@dataclass(frozen=True, slots=True)
class BalancerSpec:
    """Which balancer a backend gets; hashable, so equal specs share one instance."""

    #: ``"sticky"``, ``"chash"`` or a ``load-balance`` name.
    kind: str
    hash_by: str | None = None
    subset: bool = False
    subset_size: int = 3
    affinity: AffinityConfig | None = None


_SAMESITE = {"none": "None", "lax": "Lax", "strict": "Strict"}


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
    affinity = ann.get(_P + "affinity")
    if affinity is not None and affinity != "cookie":
        warn.append((_P + "affinity", f"unsupported value {affinity!r} (only \"cookie\"); ignored"))
        affinity = None
    if affinity == "cookie":
        name = ann.get(_P + "session-cookie-name", "INGRESSCOOKIE").strip() or "INGRESSCOOKIE"
        if not re.fullmatch(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", name):
            warn.append((_P + "session-cookie-name",
                         f"invalid cookie name {name!r}; using INGRESSCOOKIE"))
            name = "INGRESSCOOKIE"
        path = ann.get(_P + "session-cookie-path")
        if path is not None and (not path.startswith("/") or not _cookie_attribute_ok(path)):
            warn.append((_P + "session-cookie-path", f"invalid path {path!r}; using the rule path"))
            path = None
        if path is None:
            # ingress-nginx defaults the cookie path to the location (rule) path.
            path = rule_path if rule_path and rule_path.startswith("/") else "/"
            if not _cookie_attribute_ok(path):
                path = "/"  # a rule path with ";" would end the attribute early
        domain = ann.get(_P + "session-cookie-domain")
        if domain is not None and (not domain or not _cookie_attribute_ok(domain)
                                   or " " in domain):
            warn.append((_P + "session-cookie-domain", f"invalid domain {domain!r}; ignored"))
            domain = None
        samesite_raw = ann.get(_P + "session-cookie-samesite")
        samesite = None
        if samesite_raw is not None:
            samesite = _SAMESITE.get(samesite_raw.strip().lower())
            if samesite is None:
                warn.append((_P + "session-cookie-samesite",
                             f"unsupported value {samesite_raw!r} (None, Lax, Strict); ignored"))
        mode = ann.get(_P + "affinity-mode", "balanced")
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
    lb = lb.strip()
    if lb not in known:
        warn.append((_P + "load-balance",
                     f"unknown algorithm {lb!r} (known: {', '.join(sorted(known))}); "
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
