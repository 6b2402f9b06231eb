"""ingress-nginx's global rate limit (``global-rate-limit``, ``global-rate-limit-window``,
``global-rate-limit-key``, ``global-rate-limit-ignored-cidrs``; the ConfigMap's
``global-rate-limit-status-code``), as its Lua enforces it. Pure but for the counting store
(``CounterStore``): no clock is read here (the driver's ``now`` is passed in), no I/O.

References:

- internal/ingress/annotations/globalratelimit/main.go ``Parse``: nothing unless both
  ``global-rate-limit`` (``parser.GetIntAnnotation``: not a whole number reads 0) and
  ``global-rate-limit-window`` are set; the window read by ``time.ParseDuration`` ("failed to
  parse 'global-rate-limit-window' value" is a ``LocationDenied``: the location answers
  503) and kept as "int(windowSize.Seconds())" (whole seconds, truncated); the key
  ``$remote_addr`` when unset or empty (``defaultKey``); the ignored CIDRs through
  ``net.ParseCIDRs`` (an invalid list is a plain error: no global rate limit for the Ingress);
  "config.Namespace = strings.Replace(string(ing.UID), "-", "", -1)": the counters are the
  Ingress's, shared by all its rules, never by two Ingresses (here 32 hex digits too, a hash of
  "Ingress NS/NAME": ``_namespace_id``).
- rootfs/etc/nginx/lua/global_throttle.lua ``throttle`` (run by ``lua_ingress.rewrite``, the
  location's rewrite phase: after the redirects, before nginx's limit_req/limit_conn and the
  access phase): off when limit or window is 0 (``is_enabled``) or the client address
  (``ngx.var.remote_addr``, after real-ip) is inside the ignored CIDRs; the key's nginx
  variables expanded (``util.generate_var_value``), an empty result read as
  ``$remote_addr``; a decision cached per Ingress and key ("DECISION_CACHE:safe_add(
  namespaced_key_value, true, desired_delay)" when the delay is over ``CACHE_THRESHOLD``,
  1 ms) refuses at once until it expires; a store error fails open (logged); a refusal is
  "ngx_exit(config.status_code)" (``global-rate-limit-status-code``, 429). The log variable
  ``$global_rate_limit_exceeding`` (nginx.tmpl: "set $global_rate_limit_exceeding n;" in every
  location) is then "y", or "c" for a refusal from the decision cache (``verdict``).
- lua-resty-global-throttle lib/resty/global_throttle/sliding_window.lua ``process_sample``:
  per window (aligned on multiples of its size) a counter "<namespace>.<key>.<window
  id>.counter"; at or over the limit: refused for the window's remaining time; else the
  estimate "cur_rate = (last_rate * remaining_time + count) / window_size; estimated_final_count
  = cur_rate * remaining_time + count", refused (not counted) when it reaches the limit and
  ``get_desired_delay`` gives a delay; else counted ("store:incr(counter_key, 1, expiry)",
  expiry twice the window), and refused anyway when the count before it had reached the limit
  (another instance counted meanwhile).

ingresslib divergence: ingress-nginx counts in memcached and does nothing without
``global-rate-limit-memcached-host``; ingresslib counts in the process (``MemoryStore``: one
per ``Proxy`` / ``IngressASGI``, shared by all its connections) unless given another store.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .._balance_hash import KeyTemplate
from .._goparse import parse_int
from ._access import SourceRanges, parse_source_ranges
from ._proxy_protocol import parse_go_duration

__all__ = ["GLOBAL_RATE_LIMIT_ANNOTATIONS", "GlobalRateLimit", "GlobalRateLimiter",
           "CounterStore", "MemoryStore", "parse_global_rate_limit", "process_sample",
           "DEFAULT_KEY", "DEFAULT_STATUS_CODE", "NOT_EXCEEDING", "EXCEEDING", "CACHED"]

_log = logging.getLogger("ingresslib.proxy")

#: The annotations read here (without the prefix).
GLOBAL_RATE_LIMIT_ANNOTATIONS = frozenset({
    "global-rate-limit", "global-rate-limit-window", "global-rate-limit-key",
    "global-rate-limit-ignored-cidrs",
})
#: main.go ``defaultKey``.
DEFAULT_KEY = "$remote_addr"
#: config.go's default ``global-rate-limit-status-code``.
DEFAULT_STATUS_CODE = 429
#: ``$global_rate_limit_exceeding``: nginx.tmpl's "n" (not refused), global_throttle.lua's
#: "y" (refused by the sliding window) and "c" (refused by the cached decision).
NOT_EXCEEDING = "n"
EXCEEDING = "y"
CACHED = "c"
#: global_throttle.lua ``CACHE_THRESHOLD``: a shorter delay is not cached.
CACHE_THRESHOLD = 0.001
#: Counters (and cached decisions) kept at most by a ``MemoryStore`` / ``GlobalRateLimiter``.
MAX_ENTRIES = 100_000
#: A key value longer than this (a ``$http_x`` key is the client's to choose, up to the head's
#: size) is counted under its SHA-256 (``_sample``): an entry's size stays bounded.
MAX_SAMPLE = 128


def _namespace_id(namespace: str) -> str:
    """The counters' namespace of an Ingress (``GlobalRateLimit.namespace``, "Ingress NS/NAME"):
    32 hex digits, as ingress-nginx's (main.go: the Ingress's UID without its dashes), so that
    ``namespace + key`` (global_throttle.lua ``get_namespaced_key_value``, the decision cache)
    and "<namespace>.<key>.<window id>.counter" name one Ingress's key and no other: an Ingress
    name holds dots and may end where another's begins ("default/app" + "1.2.3.4" is not
    "default/app1" + ".2.3.4" here)."""
    return hashlib.blake2b(namespace.encode("utf-8", "surrogatepass"),
                           digest_size=16).hexdigest()


def _sample(value: str) -> str:
    """The key value as counted: itself, or past ``MAX_SAMPLE`` characters its SHA-256
    ("#" and 64 hex digits)."""
    if len(value) <= MAX_SAMPLE:
        return value
    return "#" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def _make_room(data: OrderedDict[str, Any], max_entries: int) -> None:
    """Drop ``data``'s oldest entries until one more fits: O(1) per entry dropped (an
    ``OrderedDict``'s ``popitem(last=False)``), never a scan of the whole, which a flood of new
    keys would otherwise pay, ``max_entries`` steps per request, once full."""
    while data and len(data) >= max_entries:
        data.popitem(last=False)


class CounterStore(Protocol):
    """Where the sliding windows count (lua-resty-global-throttle's store: ``incr`` and
    ``get``). A store shared by several processes (memcached) makes the limit global across
    them; an exception from either fails the request open (logged), as ingress-nginx."""

    def incr(self, key: str, delta: int, ttl: float) -> int:
        """Add ``delta`` to ``key`` (created at ``delta``, expiring after ``ttl`` seconds,
        when absent or expired); the new value."""
        ...

    def get(self, key: str) -> int | None:
        """The value of ``key``, None when absent or expired."""
        ...


class MemoryStore:
    """The in-process ``CounterStore``: ``clock`` gives the time (seconds) expiries are
    measured on. At most ``max_entries`` keys: the oldest goes first when full (an nginx
    shared dict's forcible eviction)."""

    __slots__ = ("_clock", "_data", "max_entries")

    def __init__(self, clock: Callable[[], float], max_entries: int = MAX_ENTRIES) -> None:
        self._clock = clock
        #: key -> [value, expiry], oldest first.
        self._data: OrderedDict[str, list[float]] = OrderedDict()
        self.max_entries = max_entries

    def get(self, key: str) -> int | None:
        """The value of ``key``, None when absent or expired (an expired entry is dropped)."""
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry[1] <= self._clock():
            del self._data[key]
            return None
        return int(entry[0])

    def incr(self, key: str, delta: int, ttl: float) -> int:
        """Add ``delta`` to ``key`` and return the new value; an absent or expired key starts
        from ``delta`` and expires ``ttl`` seconds from now (its expiry is not moved by later
        increments, as memcached's ``incr`` keeps a key's expiry)."""
        now = self._clock()
        data = self._data
        entry = data.get(key)
        if entry is not None and entry[1] > now:
            entry[0] += delta
            return int(entry[0])
        if entry is not None:
            del data[key]
        if len(data) >= self.max_entries:
            _make_room(data, self.max_entries)
        data[key] = [float(delta), now + ttl]
        return delta

    def __len__(self) -> int:
        return len(self._data)


@dataclass(frozen=True, slots=True)
class GlobalRateLimit:
    """The global rate limit of one Ingress's locations. ``namespace``: whose counters (the
    Ingress); ``window``: whole seconds (at least 1)."""

    namespace: str
    limit: int
    window: int
    key: str = DEFAULT_KEY
    #: ``global-rate-limit-ignored-cidrs`` networks (as strings): never limited.
    ignored_cidrs: tuple[str, ...] = ()
    _template: KeyTemplate | None = field(default=None, compare=False, repr=False)
    _ranges: SourceRanges | None = field(default=None, compare=False, repr=False)
    #: ``_namespace_id(namespace)``: what the counters and decisions are named by.
    _ns: str = field(default="", compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_template", KeyTemplate(self.key))
        object.__setattr__(self, "_ns", _namespace_id(self.namespace))
        if self.ignored_cidrs:
            # resty-ipmatcher: a mapped client's text is IPv6 to it (``MappedClient``).
            ranges = SourceRanges("v6")
            ranges.add(self.ignored_cidrs, True)  # "deny" = inside the list
            object.__setattr__(self, "_ranges", ranges)

    def ignored(self, client_ip: str | None) -> bool:
        """``should_ignore_request``: the client address is inside an ignored CIDR (an
        address resty-ipmatcher cannot read is not)."""
        ranges = self._ranges
        if ranges is None or not client_ip:
            return False
        # (``SourceRanges.refuses`` fails closed on an address it cannot read: "inside" here,
        # which would exempt it; resty-ipmatcher's match errs and the request is limited.)
        rules, addr = ranges._rules_for(client_ip)
        return addr is not None and any(addr & mask == net for net, mask, _ in rules)

    def key_value(self, method: str, host: str, path: str, query: str | None, headers: Any,
                  client_ip: str | None) -> str:
        """The request's key: ``key``'s nginx variables expanded (upstream-hash-by's
        ``KeyTemplate``), ``$remote_addr`` when that is empty."""
        template = self._template
        assert template is not None
        value = template.raw(method, host, path, query, headers, client_ip)
        return value if value else (client_ip or "")


def _warn_off(warn: Callable[[str, str], None], key: str, why: str) -> None:
    warn(key, f"{why}; no global rate limit applies to this Ingress (as in ingress-nginx)")


def parse_global_rate_limit(annotations: Mapping[str, str], prefix: str, namespace: str,
                            warn: Callable[[str, str], None]
                            ) -> tuple[GlobalRateLimit | None, str | None]:
    """``(limit, denied)``: the global rate limit an Ingress's ``annotations`` set (None: none,
    or one ingress-nginx would not apply) and, for a window Go cannot parse, why its routes are
    denied (503, main.go's ``LocationDenied``), else None. ``namespace``: whose counters (the
    Ingress's name: ``where``). ``warn(key, message)`` is told of every value not used as
    written."""
    def raw(name: str) -> str | None:
        return annotations.get(prefix + name)

    raw_limit = raw("global-rate-limit")
    raw_window = raw("global-rate-limit-window")
    if raw_limit is None and raw_window is None:
        for name in ("global-rate-limit-key", "global-rate-limit-ignored-cidrs"):
            if raw(name) is not None:
                _warn_off(warn, prefix + name, "ignored without global-rate-limit and "
                          "global-rate-limit-window")
        return None, None
    limit = 0
    if raw_limit is not None:
        n = parse_int(raw_limit)  # GetIntAnnotation: strconv.Atoi, invalid reads 0
        if n is None:
            _warn_off(warn, prefix + "global-rate-limit",
                      f"invalid global-rate-limit {raw_limit!r}: not a whole number (read as 0)")
            return None, None
        limit = n
    window_text = (raw_window or "").strip()
    if not limit:
        _warn_off(warn, prefix + ("global-rate-limit" if raw_limit is not None
                                  else "global-rate-limit-window"),
                  "global-rate-limit is unset or 0")
        return None, None
    if not window_text:
        _warn_off(warn, prefix + ("global-rate-limit-window" if raw_window is not None
                                  else "global-rate-limit"),
                  "global-rate-limit-window is unset or empty")
        return None, None
    if window_text.startswith("-") and window_text not in ("-0",):
        # Go parses it; the Lua windows then count nothing that lasts (a memcached expiry in
        # the past): never limited there.
        _warn_off(warn, prefix + "global-rate-limit-window",
                  f"negative global-rate-limit-window {raw_window!r}")
        return None, None
    try:
        seconds = parse_go_duration(window_text)
    except ValueError as e:
        reason = f"failed to parse 'global-rate-limit-window' value {raw_window!r}: {e}"
        warn(prefix + "global-rate-limit-window",
             f"{reason}; the Ingress's routes answer 503 (as ingress-nginx's LocationDenied)")
        return None, reason
    window = int(seconds)  # "int(windowSize.Seconds())": truncated
    if window <= 0:
        _warn_off(warn, prefix + "global-rate-limit-window",
                  f"global-rate-limit-window {raw_window!r} is less than 1s (whole seconds "
                  "are kept: 0, off)")
        return None, None
    key_text = (raw("global-rate-limit-key") or "").strip()
    if not key_text:
        key_text = DEFAULT_KEY
    for problem in KeyTemplate(key_text).errors:
        warn(prefix + "global-rate-limit-key", problem)
    ignored: tuple[str, ...] = ()
    raw_cidrs = raw("global-rate-limit-ignored-cidrs")
    if raw_cidrs is not None and raw_cidrs.strip():
        try:
            ignored = parse_source_ranges(raw_cidrs.strip(), annotation=True)
        except ValueError as e:
            _warn_off(warn, prefix + "global-rate-limit-ignored-cidrs",
                      f"invalid global-rate-limit-ignored-cidrs: {e}")
            return None, None
    if limit < 0:
        warn(prefix + "global-rate-limit",
             f"negative global-rate-limit {limit}: every request is refused (as ingress-nginx's "
             "sliding window does: any count is at or over it)")
    return GlobalRateLimit(namespace=namespace, limit=limit, window=window, key=key_text,
                           ignored_cidrs=ignored), None


def _counter_key(namespace: str, sample: str, window: int, time: float) -> str:
    """sliding_window.lua ``get_counter_key``: "%s.%s.%s.counter" of the namespace, the key
    and the window's id (``math_floor(time / window_size)``)."""
    return f"{namespace}.{sample}.{math.floor(time / window)}.counter"


def _desired_delay(limit: int, window: int, remaining: float, cur_rate: float,
                   count: int) -> float | None:
    """sliding_window.lua ``get_desired_delay``."""
    if cur_rate == 0:
        return remaining
    delay = remaining - (limit - count) / cur_rate
    if delay == 0:
        return None
    if delay > remaining:
        return remaining
    if delay < 0 or delay > window:
        return None  # "unexpected value for delay": logged there, not refused
    return delay


def process_sample(store: CounterStore, namespace: str, sample: str, limit: int, window: int,
                   now: float) -> tuple[float, float | None]:
    """sliding_window.lua ``process_sample``: ``(estimated count, delay)``; ``delay`` None:
    allowed (and counted), else refused for that many seconds. Raises what the store
    raises."""
    counter_key = _counter_key(namespace, sample, window, now)
    remaining = window - now % window
    count = store.get(counter_key) or 0
    if count >= limit:
        return count, remaining
    last_count = store.get(_counter_key(namespace, sample, window, now - window)) or 0
    last_rate = last_count / window
    cur_rate = (last_rate * remaining + count) / window
    estimated = cur_rate * remaining + count
    if estimated >= limit:
        return estimated, _desired_delay(limit, window, remaining, cur_rate, count)
    new_count = store.incr(counter_key, 1, window * 2)
    adjusted = new_count - 1
    if adjusted >= limit:
        return adjusted, window - now % window
    return estimated, None


class GlobalRateLimiter:
    """The global rate limits' state of one proxy (all its connections): the counting store
    (``store``; a ``MemoryStore`` unless given) and the cached decisions."""

    __slots__ = ("store", "_now", "_decisions", "max_entries", "_logged")

    def __init__(self, store: CounterStore | None = None,
                 max_entries: int = MAX_ENTRIES) -> None:
        self._now = 0.0
        self.store: CounterStore = store if store is not None else MemoryStore(
            lambda: self._now, max_entries)
        #: ``DECISION_CACHE``: Ingress and key -> until when (whole milliseconds of the
        #: driver's clock) requests are refused at once.
        self._decisions: OrderedDict[str, int] = OrderedDict()
        self.max_entries = max_entries
        self._logged = -math.inf

    def refuses(self, limit: GlobalRateLimit, now: float, method: str, host: str, path: str,
                query: str | None, headers: Any, client_ip: str | None) -> bool:
        """Whether a request at ``now`` (seconds, the driver's clock) of a location limited by
        ``limit`` is refused (``global_throttle.throttle``)."""
        return self.verdict(limit, now, method, host, path, query, headers,
                            client_ip) != NOT_EXCEEDING

    def verdict(self, limit: GlobalRateLimit, now: float, method: str, host: str, path: str,
                query: str | None, headers: Any, client_ip: str | None) -> str:
        """``refuses``, as ``$global_rate_limit_exceeding`` says it: ``NOT_EXCEEDING``
        (passes), ``EXCEEDING`` or ``CACHED`` (refused)."""
        if limit.ignored(client_ip):
            return NOT_EXCEEDING
        # ngx.now(): the time in milliseconds (the shared dict's clock too, ``now_ms``).
        now_ms = math.floor(now * 1000)
        now = now_ms / 1000
        self._now = now
        sample = _sample(limit.key_value(method, host, path, query, headers, client_ip))
        namespaced = limit._ns + sample  # (``_namespace_id``: 32 hex digits, then the key)
        decisions = self._decisions
        until = decisions.get(namespaced)
        if until is not None:
            if until > now_ms:
                return CACHED  # 'ngx.var.global_rate_limit_exceeding = "c"'
            del decisions[namespaced]
        try:
            _estimated, delay = process_sample(self.store, limit._ns, sample,
                                               limit.limit, limit.window, now)
        except Exception:
            # "error while processing key": fail open, logged (at most once a minute here).
            if now - self._logged >= 60:
                self._logged = now
                _log.exception("global-rate-limit: the counting store failed; the request "
                               "is let through (fail open, as ingress-nginx)")
            return NOT_EXCEEDING
        if delay is None:
            return NOT_EXCEEDING
        if delay > CACHE_THRESHOLD and namespaced not in decisions:  # safe_add
            if len(decisions) >= self.max_entries:
                _make_room(decisions, self.max_entries)
            # The shared dict keeps whole milliseconds: lua-resty-core's shdict_store passes
            # "exptime * 1000" to a C ``long`` (truncated), and ngx_http_lua_ffi_shdict_store
            # sets "sd->expires = (uint64_t) tp->sec * 1000 + tp->msec + (uint64_t)
            # exptime": a delay of 0.6458 s refuses until 645 ms later, not 645.8.
            decisions[namespaced] = now_ms + int(delay * 1000)
        return EXCEEDING


def describe(answer: Any) -> dict[str, Any] | None:
    """``explain``'s ``global_rate_limit``: the routed location's limit as the proxy parsed it
    (``answer``: an ``_explain_verdict.ProxyAnswer``), the status past it and whether the
    client (``client_ip``, None when not given) is in the ignored CIDRs; for a path no rule
    covers, its server ``location /``'s (``unrouted_global_limit``). None: no limit."""
    if answer.server_location:
        from ._actions import unrouted_global_limit

        limit = unrouted_global_limit(answer.options)
    else:
        limit = getattr(answer.options, "global_rate_limit", None)
    if limit is None:
        return None
    settings = answer.settings
    client = answer.client_ip
    ignored: bool | None
    if client is None:
        ignored = None if limit.ignored_cidrs else False
    else:
        ignored = limit.ignored(client)
    return {
        "ingress": limit.namespace.removeprefix("Ingress "), "limit": limit.limit,
        "window_seconds": limit.window, "key": limit.key,
        "ignored_cidrs": list(limit.ignored_cidrs), "client_ip": client,
        "client_ignored": ignored,
        "status": (settings.global_rate_limit_status_code if settings is not None
                   else DEFAULT_STATUS_CODE),
    }


def describe_line(g: dict[str, Any]) -> str:
    """The text line of ``explain`` for :func:`describe`'s dict."""
    if g["ignored_cidrs"]:
        who = ("give --client-ip to know whether the client is in them"
               if g["client_ignored"] is None else
               f"client {g['client_ip']} is "
               f"{'in them: never limited' if g['client_ignored'] else 'not in them'}")
        ignored = f"; ignored CIDRs {', '.join(g['ignored_cidrs'])}: {who}"
    else:
        ignored = ""
    return (f"     global rate limit of Ingress {g['ingress']} (all its paths): {g['limit']} "
            f"requests per {g['window_seconds']} s per {g['key']} (sliding window, counted in "
            f"this process); refused with {g['status']}{ignored} (explain sends one request: "
            "the limit is said, not simulated)")
