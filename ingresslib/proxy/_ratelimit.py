"""ingress-nginx's per-Ingress rate limits (``limit-rps``, ``limit-rpm``, ``limit-connections``,
``limit-burst-multiplier``, ``limit-allowlist``/``limit-whitelist``), as nginx enforces them.
Pure: no clock is read here (the driver's ``now`` is passed in), no I/O.

The reference is ingress-nginx internal/ingress/annotations/ratelimit/main.go ``Parse`` and
nginx.tmpl (``buildRateLimitZones``, ``buildRateLimit``), then nginx's
ngx_http_limit_req_module.c and ngx_http_limit_conn_module.c:

- ``Parse``: "zoneName := fmt.Sprintf("%v_%v_%v", ing.GetNamespace(), ing.GetName(),
  ing.UID)": one set of zones per Ingress (``_conn``, ``_rps``, ``_rpm``), shared by all its
  paths and hosts, never by two Ingresses; "Burst: rps * burstMultiplier" with the multiplier
  5 when unset or invalid (``defBurst``); rps, rpm and connections 0 = no such limit; the
  allowlist's CIDRs (``net.ParseCIDRs``, bare addresses taken as /32 or /128) make the zone key
  empty (nginx.tmpl's ``geo $remote_addr $allowlist_...`` and ``map ... $limit_... { 0
  $binary_remote_addr; 1 ""; }``): an allowlisted client is never limited. The key is the
  client address after real-ip (use-forwarded-headers): ``req.client_ip`` here.
- ``buildRateLimit``: ``limit_conn <zone>_conn <conn>;``, ``limit_req zone=<zone>_rps
  burst=<rps*m> nodelay;`` and the same for rpm: nothing is ever delayed, a request past the
  burst is refused with ``limit-req-status-code`` (``limit_req_status``, 503), one past the
  connections with ``limit-conn-status-code`` (``limit_conn_status``, 503).
- ngx_http_limit_req_lookup: a leaky bucket in milli-requests per key: "excess = lr->excess -
  ctx->rate * ms / 1000 + 1000; if (excess < 0) excess = 0; if ((ngx_uint_t) excess >
  limit->burst) return NGX_BUSY;" where ``rate`` is "rate * 1000 / scale" (scale 60 for r/m)
  and ``burst`` "burst * 1000"; a key never seen (or forgotten) starts at excess 0. With two
  limit_req (rps and rpm) a request is accounted in both only when neither refuses it
  (``ngx_http_limit_req_account`` runs after all lookups passed).
- Both are nginx's preaccess phase: after the rewrite phase (redirects), before the access
  phase (allow/deny, basic auth); limit_req's handler runs before limit_conn's (phase
  handlers run in reverse module order), so a request refused by a rate is not counted as a
  connection. limit_conn counts a request while it is processed ("lc->conn++", released by
  ``ngx_http_limit_conn_cleanup`` when the request's pool is freed): at its end, whatever way
  it ends.
- Logged: ``$limit_req_status`` / ``$limit_conn_status`` are "PASSED" or "REJECTED" once
  the module decided ("r->main->limit_req_status = NGX_HTTP_LIMIT_REQ_PASSED"), unset
  ("not_found") when it never did: no such limit, an empty key (``continue`` before any
  status), or, for limit_conn, a request limit_req refused (``Admission``).
- Memory: nginx's zones are 5m of shared memory; ``ngx_http_limit_req_expire`` drops, at each
  lookup, up to two least recently used keys idle for 60 s whose bucket has drained, and the
  least recently used one when the zone is full. The same is done here
  (``ZONE_ENTRIES`` keys at most per zone); a drained key and an absent one answer alike.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from .._goparse import parse_int
from ._access import SourceRanges, parse_source_ranges

__all__ = ["RATE_LIMIT_ANNOTATIONS", "RateLimit", "RateLimiter", "Admission", "parse_rate_limit",
           "DEFAULT_BURST_MULTIPLIER", "ZONE_ENTRIES", "PASSED", "REJECTED"]

#: The annotations read here (without the prefix). ``limit-rate`` / ``limit-rate-after``
#: (bandwidth) are read in proxy/_bandwidth.py.
RATE_LIMIT_ANNOTATIONS = frozenset({
    "limit-rps", "limit-rpm", "limit-connections", "limit-burst-multiplier",
    "limit-allowlist", "limit-whitelist",
})

#: ratelimit/main.go ``defBurst``: the burst multiplier when unset or invalid.
DEFAULT_BURST_MULTIPLIER = 5
#: Keys kept per zone at most: about what nginx's 5m zone holds (a limit_req node of an IPv4
#: key is 64-odd bytes plus the slab's rounding: tens of thousands per 5 MB).
ZONE_ENTRIES = 40_000
#: ``$limit_req_status`` / ``$limit_conn_status`` (ngx_http_limit_req_status[],
#: ngx_http_limit_conn_status[]; nodelay, no dry run: nothing else is ever set here).
PASSED = "PASSED"
REJECTED = "REJECTED"
#: ngx_http_limit_req_expire: "if (ms < 60000) { return; }": a key is not expired earlier.
_IDLE_MS = 60_000


@dataclass(frozen=True, slots=True)
class RateLimit:
    """The rate limits of one Ingress's locations. ``zone``: the Ingress (its zones' common
    name: two Ingresses never share a count)."""

    zone: str
    rps: int = 0
    rpm: int = 0
    connections: int = 0
    burst_multiplier: int = DEFAULT_BURST_MULTIPLIER
    #: ``limit-allowlist`` networks (as strings); clients inside them are never limited.
    allowlist: tuple[str, ...] = ()
    _ranges: SourceRanges | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.allowlist:
            # nginx.tmpl's "geo $remote_addr $allowlist_...": a mapped client is looked up
            # as IPv4 (``MappedClient``).
            ranges = SourceRanges("v4")
            ranges.add(self.allowlist, True)  # "deny" = inside the list
            object.__setattr__(self, "_ranges", ranges)

    def exempt(self, client_ip: str | None) -> bool:
        """True when the zone key is empty: no client address (nginx's
        ``$binary_remote_addr`` of a unix socket is empty) or an allowlisted one. An empty key
        is never limited (ngx_http_limit_req_handler: "if (key.len == 0) { continue; }")."""
        if not client_ip:
            return True
        ranges = self._ranges
        return ranges is not None and ranges.refuses(client_ip)


def _count(value: str, name: str) -> int:
    n = parse_int(value)  # Go's strconv.Atoi (parser.GetIntAnnotation)
    if n is None or n < 0:
        raise ValueError(f"invalid {name} {value!r}: must be a whole number, 0 or more")
    return n


def parse_rate_limit(annotations: Mapping[str, str], prefix: str, zone: str,
                     warn: Callable[[str, str], None]) -> RateLimit | None:
    """The rate limits an Ingress's ``annotations`` set, or None (none set, or an invalid
    one: ratelimit/main.go ``Parse`` returns its error for an invalid limit-rps, limit-rpm,
    limit-connections or allowlist, and ingress-nginx then applies no rate limit to the
    Ingress). ``warn(key, message)`` is told of every invalid value. An invalid
    limit-burst-multiplier is the default 5 there ("if err != nil { burstMultiplier =
    defBurst }"), with a warning here. ``zone``: the Ingress's name (``where``)."""
    def raw(name: str) -> str | None:
        return annotations.get(prefix + name)

    failed = False
    counts: dict[str, int] = {}
    for name in ("limit-rps", "limit-rpm", "limit-connections"):
        value = raw(name)
        if value is None:
            continue
        try:
            counts[name] = _count(value, name)
        except ValueError as e:
            warn(prefix + name, f"{e}; no rate limit applies to this Ingress (as in "
                 "ingress-nginx, where the rate limit annotations are then ignored)")
            failed = True
    # The newer name first (parser's aliases: limit-whitelist is read when limit-allowlist is
    # not set).
    key = "limit-allowlist" if raw("limit-allowlist") is not None else "limit-whitelist"
    allow_raw = raw(key)
    allowlist: tuple[str, ...] = ()
    if allow_raw is not None and allow_raw.strip():
        try:
            allowlist = parse_source_ranges(allow_raw, annotation=True)
        except ValueError as e:
            warn(prefix + key, f"invalid allowlist: {e}; no rate limit applies to this "
                 "Ingress (as in ingress-nginx, where the rate limit annotations are then "
                 "ignored)")
            failed = True
    multiplier = DEFAULT_BURST_MULTIPLIER
    value = raw("limit-burst-multiplier")
    if value is not None:
        try:
            multiplier = _count(value, "limit-burst-multiplier")
        except ValueError as e:
            warn(prefix + "limit-burst-multiplier",
                 f"{e}; using the default {DEFAULT_BURST_MULTIPLIER}")
    if failed:
        return None
    rps = counts.get("limit-rps", 0)
    rpm = counts.get("limit-rpm", 0)
    conn = counts.get("limit-connections", 0)
    if not (rps or rpm or conn):
        return None  # main.go: "if rpm == 0 && rps == 0 && conn == 0": no zone at all
    return RateLimit(zone=zone, rps=rps, rpm=rpm, connections=conn,
                     burst_multiplier=multiplier, allowlist=allowlist)


#: A held connection count: (the zone's table, the key), released by ``RateLimiter.release``.
Held = tuple[dict[str, int], str]


class Admission(NamedTuple):
    """``RateLimiter.admit``'s answer: ``status`` 0 (go on) or the refusal's; ``held`` the
    connection count to release at the request's end (None: none); ``req_state`` /
    ``conn_state`` what nginx's ``$limit_req_status`` / ``$limit_conn_status`` hold after it
    (``PASSED``, ``REJECTED``; None: unset, the module never decided)."""

    status: int
    held: Held | None = None
    req_state: str | None = None
    conn_state: str | None = None


#: A request no limit decided (exempt, or no limit of either kind).
_UNDECIDED = Admission(0)


class RateLimiter:
    """The zones' state of one proxy (all its connections): leaky buckets (``limit-rps``,
    ``limit-rpm``) and connection counts (``limit-connections``) per zone and client key."""

    __slots__ = ("_buckets", "_conns", "max_entries")

    def __init__(self, max_entries: int = ZONE_ENTRIES) -> None:
        #: zone name -> client key -> [excess in milli-requests, last update in ms], least
        #: recently used first.
        self._buckets: dict[str, OrderedDict[str, list[int]]] = {}
        #: zone name -> client key -> requests being processed (no key at 0).
        self._conns: dict[str, dict[str, int]] = {}
        self.max_entries = max_entries

    def enter(self, limit: RateLimit, client_ip: str | None, now: float, req_status: int,
              conn_status: int) -> tuple[int, Held | None]:
        """A request of ``client_ip`` reaching a location limited by ``limit`` at ``now``
        (seconds, the driver's monotonic clock): ``(status, held)``: ``status`` 0 when it
        may go on, else the refusal's status (``req_status`` for a rate, ``conn_status`` for
        the connections); ``held`` the connection count to ``release`` when the request
        ends (None: nothing held)."""
        admission = self.admit(limit, client_ip, now, req_status, conn_status)
        return admission.status, admission.held

    def admit(self, limit: RateLimit, client_ip: str | None, now: float, req_status: int,
              conn_status: int) -> Admission:
        """``enter``, with what nginx's log variables say of it (``Admission``)."""
        if limit.exempt(client_ip):
            return _UNDECIDED
        assert client_ip is not None
        key = client_ip
        now_ms = int(now * 1000)
        if limit.rps or limit.rpm:
            m = limit.burst_multiplier
            zones = []
            if limit.rps:
                zones.append((limit.zone + "_rps", limit.rps * 1000, limit.rps * m * 1000))
            if limit.rpm:
                zones.append((limit.zone + "_rpm", limit.rpm * 1000 // 60,
                              limit.rpm * m * 1000))
            updates = []
            for name, rate, burst in zones:
                table = self._buckets.get(name)
                if table is None:
                    table = self._buckets[name] = OrderedDict()
                node = table.get(key)
                if node is None:
                    excess = 0  # a new node: "lr->excess = 0" (accounted: OK)
                else:
                    ms = now_ms - node[1]
                    if ms < -60000:
                        ms = 1
                    elif ms < 0:
                        ms = 0
                    excess = max(node[0] - rate * ms // 1000 + 1000, 0)
                    if excess > burst:
                        return Admission(req_status, None, REJECTED)
                updates.append((table, rate, node, excess))
            for table, rate, node, excess in updates:
                if node is None:
                    self._expire(table, rate, now_ms, 1)
                    table[key] = [excess, now_ms]
                else:
                    node[0] = excess
                    if now_ms != node[1]:  # "if (ms) { lr->last = now; }"
                        node[1] = now_ms
                    table.move_to_end(key)
        req_state = PASSED if limit.rps or limit.rpm else None
        if limit.connections:
            name = limit.zone + "_conn"
            counts = self._conns.get(name)
            if counts is None:
                counts = self._conns[name] = {}
            n = counts.get(key, 0)
            if n >= limit.connections:
                if not n:
                    counts.pop(key, None)
                return Admission(conn_status, None, req_state, REJECTED)
            counts[key] = n + 1
            return Admission(0, (counts, key), req_state, PASSED)
        return Admission(0, None, req_state)

    @staticmethod
    def release(held: Held) -> None:
        """The end of a request counted by ``enter`` (ngx_http_limit_conn_cleanup)."""
        counts, key = held
        n = counts.get(key, 0) - 1
        if n > 0:
            counts[key] = n
        else:
            counts.pop(key, None)

    def _expire(self, table: OrderedDict[str, list[int]], rate: int, now_ms: int,
                n: int) -> None:
        """ngx_http_limit_req_expire before a new key: the zone full, its least recently
        used key goes; then up to two least recently used keys idle 60 s and drained."""
        while len(table) >= self.max_entries:
            table.popitem(last=False)
        for _ in range(2 if n else 0):
            if not table:
                return
            key, node = next(iter(table.items()))
            ms = now_ms - node[1]
            if ms < _IDLE_MS or node[0] - rate * ms // 1000 > 0:
                return
            del table[key]

    def keys(self) -> int:
        """How many client keys all zones hold (tests, memory checks)."""
        return sum(len(t) for t in self._buckets.values()) + sum(
            len(c) for c in self._conns.values())
