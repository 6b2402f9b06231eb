"""The auth service's answers cached (``auth-cache-key`` / ``auth-cache-duration``, and the
ConfigMap's ``global-auth-cache-key`` / ``global-auth-cache-duration``): nginx's
``proxy_cache`` of the external-auth location as ingress-nginx writes it, for the proxy core
(proxy/_extauth.py ``auth_start``) and IngressASGI (ingresslib/_asgi_extauth.py).

References (kubernetes/ingress-nginx, nginx):

- ``internal/ingress/annotations/authreq/main.go``: ``auth-cache-key`` a string (no
  validation); ``ParseStringToCacheDurations``: ``auth-cache-duration`` split on ``,``, each
  item trimmed (empty ones skipped) and ``ValidCacheDuration`` (elements split on `` ``: a
  3-digit status code (``^[\\d]{3}$``) never after a time, at least one time
  ``^[\\d]+(ms|s|m|h|d|w|M|y)$``, other elements not looked at), else "invalid cache
  duration" (a ``LocationDenied``: 503); no item: ``DefaultCacheDuration`` ``"200 202 401
  5m"``.
- ``rootfs/etc/nginx/template/nginx.tmpl``, the ``location = /_external-auth-...`` with an
  ``AuthCacheKey``: ``set $tmp_cache_key '<server name><auth location><auth-cache-key>'``,
  ``rootfs/etc/nginx/lua/nginx/ngx_conf_rewrite_auth.lua``: ``$cache_key`` =
  base64(sha1($tmp_cache_key)), ``proxy_cache auth_cache; proxy_cache_valid <item>;`` per
  duration item, ``proxy_cache_key "$cache_key"`` (no ``proxy_cache_lock``, no
  ``proxy_ignore_headers``); the http block's ``proxy_cache_path ... keys_zone=auth_cache:10m
  max_size=128m inactive=30m``.
- nginx ``ngx_http_file_cache_valid_set_slot`` (``proxy_cache_valid [code ...] time``: one
  time, the last argument, ``ngx_parse_time`` in seconds (``ms`` refused); codes 100-599 or
  ``any``; no code: 200 301 302) and ``ngx_http_file_cache_valid`` (the first line naming the
  status, or ``any``, gives its time; 0 or none: not cached); ``ngx_http_upstream.c``: an
  answer with ``Set-Cookie`` is not cached (``ngx_http_upstream_process_set_cookie``),
  ``X-Accel-Expires`` (0: not cached; ``@T`` absolute; the first one: nginx >= 1.23, as
  ingress-nginx's 1.25.5, ignores a duplicate), then ``Cache-Control`` (``no-cache``,
  ``no-store``, ``private``: not cached; ``s-maxage=`` / ``max-age=`` seconds, 0 or not
  digits: not cached), then ``Expires`` (the first one, ``ngx_parse_http_time``: GMT whatever
  zone follows; invalid or past: not cached) set the time before
  ``proxy_cache_valid`` does, each header's handler run in the order the headers came
  (``ngx_http_upstream_process_accel_expires`` / ``_cache_control`` / ``_expires`` with the
  ``no_cache`` and ``expired`` flags of nginx >= 1.23: ``lifetime``); ``Vary: *`` is not
  cached.

ingresslib's choices (README, divergences): the cache is in process (one per ``Proxy`` /
``IngressASGI``), at most ``MAX_ENTRIES`` answers (the least recently used goes first), an
entry unused for ``INACTIVE`` seconds dropped as nginx's ``inactive=30m``. Its key is nginx's
(server name, auth location, the expanded key, SHA-1 as the Lua does) plus what the answer
depends on in ingresslib (the auth URL, method, auth-response-headers, auth-proxy-set-headers,
auth-request-redirect), so that a changed annotation never serves an answer of the old one.
Fail-safe where nginx shares one answer between clients: a key without any nginx variable is
warned and not cached; a request whose key variables all expand to "" is not cached (nginx
caches it under the server name and location alone: one anonymous client's answer served to
every other); an unsupported variable turns the cache off (warned) rather than being read as
"". An answer with ``Vary`` is not cached (nginx keeps variants). ``$uri``, ``$args``,
``$arg_*`` and ``$is_args`` are the client request's (nginx expands them in the auth
subrequest: the auth location's path, no arguments), which only splits the cache finer.
A variable never reads "" where nginx reads a value (the key would be coarser than nginx's:
one client's answer served to another): ``$http_NAME`` reads the ``_`` spellings of NAME too
(``http_variable``), ``$remote_user`` decodes base64 as ``ngx_decode_base64`` does
(``remote_user``). A cache time past NGX_MAX_INT_T_VALUE is never a crash: ``X-Accel-Expires``
ignored as ``ngx_atoi`` refuses it, a ``Cache-Control`` delta not cached (``_atoi``).
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .._balance_hash import _VAR, KeyTemplate
from .._balance_request import H11_HEADERS, header_value

__all__ = ["DEFAULT_DURATION", "MAX_ENTRIES", "INACTIVE", "AuthCacheConfig", "AuthCache",
           "parse_durations", "parse_auth_cache", "key_problem", "lifetime", "cache_of",
           "request_key", "remote_user", "http_variable"]

#: authreq/main.go ``DefaultCacheDuration``.
DEFAULT_DURATION = "200 202 401 5m"
#: The answers one cache holds. nginx's keys_zone=auth_cache:10m holds ~80,000 keys (8,000 a
#: megabyte) with the answers on disk (max_size=128m); here the answers stay in memory, each
#: up to max-response-header-size (its auth-response-headers: tokens of a few kB), so 10,000
#: bounds the worst case near 40 MB at the 4 kB default and ~5 MB typically, while still
#: covering 10,000 distinct clients active within a cache duration per process.
MAX_ENTRIES = 10_000
#: nginx.tmpl's ``inactive=30m``: an entry not used for that long is dropped, valid or not.
INACTIVE = 1800.0

_CODE = re.compile(r"[0-9]{3}")
_TIME = re.compile(r"[0-9]+(ms|s|m|h|d|w|M|y)")
#: ngx_parse_time's units in seconds (M: 30 days, y: 365 days).
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "M": 2592000, "y": 31536000}
#: The client request's variables nginx has in the auth subrequest (_Key).
_REMOTE_USER = "remote_user"


@dataclass(frozen=True, slots=True)
class AuthCacheConfig:
    """A location's auth cache (``ExtAuth.cache``)."""

    #: ``auth-cache-key`` as written.
    key: str
    #: ``(status, seconds)`` in ``proxy_cache_valid`` order (status 0: ``any``).
    valid: tuple[tuple[int, float], ...]
    #: The ``auth-cache-duration`` items (the default's when none).
    durations: tuple[str, ...] = (DEFAULT_DURATION,)
    _parts: tuple[Any, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_parts", _compile(self.key)[0])

    def expand(self, method: str, host: str, path: str, query: str | None, headers: Any,
               client_ip: str | None) -> str | None:
        """The key's variables expanded for a request; None when they are all empty (not
        cached)."""
        out = []
        any_value = False
        for part in self._parts:
            if isinstance(part, str):
                out.append(part)
                continue
            if part is None:
                value = remote_user(headers)
            elif type(part) is bytes:
                value = http_variable(headers, part)
            else:
                value = part.raw(method, host, path, query, headers, client_ip)
            any_value = any_value or bool(value)
            out.append(value)
        return "".join(out) if any_value else None


def _compile(text: str) -> tuple[tuple[Any, ...], list[str], int]:
    """The key's parts (literal text, a ``KeyTemplate`` per variable, None for
    ``$remote_user``, the header name as bytes for ``$http_NAME``), the unsupported
    variables, and the number of variables."""
    parts: list[Any] = []
    errors: list[str] = []
    count = 0
    pos = 0
    for m in _VAR.finditer(text):
        if m.start() > pos:
            parts.append(text[pos:m.start()])
        pos = m.end()
        if m.group(1) is None and m.group(2) is None:
            parts.append(m.group(0))  # "\$name": literal
            continue
        count += 1
        name = (m.group(1) or m.group(2)).lower()
        if name == _REMOTE_USER:
            parts.append(None)
            continue
        if name.startswith("http_") and len(name) > 5:
            # $http_NAME: bytes, the header name with "_" read as "-" (http_variable).
            parts.append(name[5:].replace("_", "-").encode("latin-1"))
            continue
        t = KeyTemplate(m.group(0))
        if t.errors:
            errors.append("$" + name)
        parts.append(t)
    if pos < len(text):
        parts.append(text[pos:])
    return tuple(parts), errors, count


#: ngx_decode_base64's alphabet (``basis64``), read up to the first "=".
_B64 = re.compile(rb"[A-Za-z0-9+/]*")


def remote_user(headers: Any) -> str:
    """nginx's ``$remote_user`` (``ngx_http_auth_basic_user``): the user name of a ``Basic``
    Authorization header, unchecked; "" without one, or when it has no ``:`` or no name.
    Decoded as ``ngx_decode_base64``: after ``Basic `` (any case) and the spaces after it,
    the characters up to the first ``=`` (the padding optional, anything after it
    ignored), all of the base64 alphabet and not 4n+1 of them. (A stricter decoder read ""
    where nginx reads a user: a key coarser than nginx's.)"""
    value = header_value(headers, "authorization", b"authorization")
    if not value or len(value) < 6 or value[:6].lower() != "basic ":
        return ""
    encoded = value[6:].lstrip(" ").encode("latin-1", "replace").partition(b"=")[0]
    if not encoded or not _B64.fullmatch(encoded) or len(encoded) % 4 == 1:
        return ""
    decoded = base64.b64decode(encoded + b"=" * (-len(encoded) % 4)).decode("latin-1")
    user, colon, _ = decoded.partition(":")
    return user if colon and user else ""


def _seconds(text: str) -> float:
    m = _TIME.fullmatch(text)
    if m is None or m.group(1) == "ms":
        raise ValueError(f"invalid time value {text!r} (nginx's proxy_cache_valid: seconds "
                         "with a unit s m h d w M y)")
    # ngx_parse_time: a value past NGX_MAX_INT_T_VALUE / its unit is NGX_ERROR (never an
    # OverflowError out of the route's parse: one Ingress failing every reload).
    digits = text[:m.start(1)].lstrip("0") or "0"
    seconds = int(digits) * _UNITS[m.group(1)] if len(digits) <= 19 else _MAX_INT + 1
    if seconds > _MAX_INT:
        raise ValueError(f"invalid time value {text!r} (past nginx's largest time, "
                         f"{_MAX_INT} seconds)")
    return float(seconds)


def parse_durations(value: str | None) -> tuple[tuple[str, ...], tuple[tuple[int, float], ...]]:
    """``auth-cache-duration`` (or ``global-auth-cache-duration``): its items and the
    ``proxy_cache_valid`` lines they make; ValueError when ingress-nginx refuses one
    (``ValidCacheDuration``) or nginx would refuse the line it writes."""
    items = tuple(d.strip() for d in (value or "").split(",") if d.strip())
    if not items:
        items = (DEFAULT_DURATION,)
    valid: list[tuple[int, float]] = []
    for item in items:
        elements = [e for e in item.split(" ") if e]
        seen = False
        for e in elements:
            if _CODE.fullmatch(e):
                if seen:
                    raise ValueError(f"invalid cache duration: {item} (a status code after "
                                     "the time)")
            elif _TIME.fullmatch(e):
                seen = True
        if not seen:
            raise ValueError(f"invalid cache duration: {item}")
        *codes, last = elements
        seconds = _seconds(last)
        statuses: list[int] = []
        for c in codes:
            if c == "any":
                statuses.append(0)
            elif c.isascii() and c.isdigit() and 100 <= int(c) <= 599:
                statuses.append(int(c))
            else:
                raise ValueError(f"invalid cache duration: {item} (nginx's proxy_cache_valid "
                                 f"takes status codes 100-599 or \"any\" and one time: "
                                 f"{c!r})")
        valid += [(s, seconds) for s in (statuses or [200, 301, 302])]
    return items, tuple(valid)


def parse_auth_cache(key: str | None, duration: str | None, key_name: str,
                     duration_name: str, warn: Callable[[str, str], None]
                     ) -> tuple[AuthCacheConfig | None, str | None]:
    """``(config, None)``, ``(None, None)`` (no cache), or ``(None, reason)``: an invalid
    duration denies the location (authreq/main.go: a ``LocationDenied``) whether a key is
    set or not. ``warn(name, message)``."""
    try:
        items, valid = parse_durations(duration)
    except ValueError as e:
        return None, f"{duration_name}: {e}"
    if not key:
        if duration is not None:
            warn(duration_name, f"has no effect without {key_name}; ignored")
        return None, None
    problem = key_problem(key)
    if problem is not None:
        warn(key_name, f"{problem}; not cached")
        return None, None
    return AuthCacheConfig(key, valid, items), None


def key_problem(key: str) -> str | None:
    """Why ``key`` cannot key the cache (None: it can)."""
    _, errors, count = _compile(key)
    if errors:
        return (f"unsupported nginx variable {', '.join(errors)}: the auth service's answers "
                "would be cached under a key read as if it were \"\" (one client's answer "
                "served to another)")
    if not count:
        return ("holds no nginx variable ($http_authorization, $cookie_NAME, $remote_user, "
                "...): one auth answer would be served to every client")
    return None


#: NGX_MAX_INT_T_VALUE (64-bit): ``ngx_atoi`` refuses a larger number.
_MAX_INT = 2 ** 63 - 1


def _atoi(digits: bytes) -> int | None:
    """nginx's ``ngx_atoi``: ASCII digits up to NGX_MAX_INT_T_VALUE, else None (NGX_ERROR;
    never a number Python cannot make a float of, nor a 5,000-digit ``int()``)."""
    if not digits.isdigit():
        return None
    digits = digits.lstrip(b"0") or b"0"
    if len(digits) > 19:
        return None
    n = int(digits)
    return n if n <= _MAX_INT else None


def http_variable(headers: Any, name: bytes) -> str:
    """nginx's ``$http_NAME`` (``ngx_http_variable_unknown_header``, nginx >= 1.23): every
    request header whose lower-cased name, with ``-`` read as ``_``, is the variable's,
    joined with ", " ("; " for Cookie) in the order received; "" without one. ``name``: the
    lower-case name with ``-`` (``x-token``). A client's ``X_Token`` is ``$http_x_token``
    (nginx keeps that header with ``underscores_in_headers``, and the subrequest passes it);
    without underscores allowed neither sends it on, and reading it here only splits the
    cache finer (as for nginx's own ``$http_host``, ``$http_user_agent``, ``$http_referer``,
    ``$http_via``, ``$http_x_forwarded_for``, which read the ``-`` spelling alone).
    (``KeyTemplate``'s ``$http_`` matches the ``-`` spelling alone: a key coarser than
    nginx's, one client's answer served to another.)"""
    if type(headers) is H11_HEADERS:
        pairs: Any = [(n, v) for _, n, v in headers._full_items]
    elif isinstance(headers, Mapping):
        pairs = headers.items()
    else:
        pairs = headers
    values: list[str] = []
    for n, v in pairs:
        raw = n.encode("latin-1") if isinstance(n, str) else bytes(n)
        if raw.lower().replace(b"_", b"-") == name:
            text = bytes(v).decode("latin-1") if isinstance(v, (bytes, bytearray, memoryview)) \
                else str(v).strip(" \t")
            values.append(text)
    return ("; " if name == b"cookie" else ", ").join(values)


#: ngx_parse_time.c ``mday``.
_MDAY = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def parse_http_time(value: bytes) -> int | None:
    """nginx's ``ngx_parse_http_time`` (src/core/ngx_parse_time.c): the Unix time of an HTTP
    date in one of its three forms (``Tue, 10 Nov 2002 23:50:13``, ``Tuesday, 10-Dec-02
    23:50:13``, ``Tue Dec 10 23:50:13 2002``), else None (NGX_ERROR). Read as GMT whatever
    follows the time (``GMT``, ``+0200``, ``PST``, nothing): nginx looks at no zone; the
    weekday and the month name past the letters that tell it apart are not checked either.
    (``email.utils.parsedate_to_datetime`` applied the zone and read a date without one as
    local time: another cache time than nginx's.)"""
    end = len(value)

    def at(i: int) -> int:
        return value[i] if i < end else 0  # (nginx's value is NUL-terminated)

    def digits(i: int, n: int) -> int | None:
        out = 0
        for k in range(i, i + n):
            c = at(k)
            if not 48 <= c <= 57:
                return None
            out = out * 10 + c - 48
        return out

    fmt = ""
    p = 0
    while p < end:
        if value[p] == 44:  # ","
            break
        if value[p] == 32:
            fmt = "isoc"
            break
        p += 1
    p += 1
    while p < end and value[p] == 32:
        p += 1
    if end - p < 18:
        return None
    day = 0
    if fmt != "isoc":
        d = digits(p, 2)
        if d is None:
            return None
        day = d
        p += 2
        if at(p) == 32:
            if end - p < 18:
                return None
            fmt = "rfc822"
        elif at(p) == 45:  # "-"
            fmt = "rfc850"
        else:
            return None
        p += 1
    c = at(p)
    if c == 74:  # J
        month = 0 if at(p + 1) == 97 else 5 if at(p + 2) == 110 else 6
    elif c == 70:  # F
        month = 1
    elif c == 77:  # M
        month = 2 if at(p + 2) == 114 else 4
    elif c == 65:  # A
        month = 3 if at(p + 1) == 112 else 7
    elif c in b"SOND":
        month = b"SOND".index(c) + 8
    else:
        return None
    p += 3
    if (fmt == "rfc822" and at(p) != 32) or (fmt == "rfc850" and at(p) != 45):
        return None
    p += 1
    year = 0
    if fmt == "rfc822":
        y = digits(p, 4)
        if y is None:
            return None
        year = y
        p += 4
    elif fmt == "rfc850":
        y = digits(p, 2)
        if y is None:
            return None
        year = y + (2000 if y < 70 else 1900)
        p += 2
    else:  # isoc
        if at(p) == 32:
            p += 1
        d = digits(p, 1)
        if d is None:
            return None
        day = d
        p += 1
        if at(p) != 32:
            d = digits(p, 1)
            if d is None:
                return None
            day = day * 10 + d
            p += 1
        if end - p < 14:
            return None
    if at(p) != 32:
        return None
    p += 1
    hour = digits(p, 2)
    if hour is None or at(p + 2) != 58:  # ":"
        return None
    p += 3
    minute = digits(p, 2)
    if minute is None or at(p + 2) != 58:
        return None
    p += 3
    sec = digits(p, 2)
    if sec is None:
        return None
    if fmt == "isoc":
        p += 2
        if at(p) != 32:
            return None
        y = digits(p + 1, 4)
        if y is None:
            return None
        year = y
    if hour > 23 or minute > 59 or sec > 59:
        return None
    if day == 29 and month == 1:
        if (year & 3) or (year % 100 == 0 and year % 400 != 0):
            return None
    elif day > _MDAY[month]:
        return None
    # Gauss' formula, as nginx: the year shifted to start on March 1, months from 1.
    month -= 1
    if month <= 0:
        month += 12
        year -= 1
    days = (365 * year + year // 4 - year // 100 + year // 400 + 367 * month // 12 - 30
            + day - 1 - 719527 + 31 + 28)
    return days * 86400 + hour * 3600 + minute * 60 + sec


def _delta(v: bytes, start: int) -> int | None:
    """nginx's digit loop after a ``Cache-Control`` ``name=`` (``ngx_http_upstream_process_
    cache_control``): the number up to ``,`` ``;`` `` `` or the end, 0 for no digit; None for
    another character ("u->cacheable = 0") or, past NGX_MAX_INT_T_VALUE, ingresslib's "not
    cached" (nginx 1.25 wraps around; ``_atoi``)."""
    end = len(v)
    i = start
    while i < end and v[i] not in b",; ":
        i += 1
    return _atoi(v[start:i]) if i > start else 0


def _bad_extension(v: bytes) -> bool:
    """A ``stale-while-revalidate=`` / ``stale-if-error=`` whose value is not digits: nginx
    checks them after the freshness (also when X-Accel-Expires decided it), and such a value
    makes the answer not cacheable ("u->cacheable = 0")."""
    for name in (b"stale-while-revalidate=", b"stale-if-error="):
        at = v.find(name)
        if at >= 0:
            start = at + len(name)
            end = start
            while end < len(v) and v[end] not in b",; ":
                end += 1
            if not v[start:end].isdigit() and end > start:
                return True
    return False


def lifetime(valid: tuple[tuple[int, float], ...], status: int,
             items: Any, wall: float | None = None) -> float:
    """How long nginx keeps the auth answer (its status and h11 header ``items``) in the
    cache, in seconds; 0: not cached.

    The headers are read in the order received, as nginx (>= 1.23, ingress-nginx's 1.25.5)
    runs its ``ngx_http_upstream_headers_in`` handlers: ``X-Accel-Expires`` (the first one)
    sets the time and clears an earlier ``no-cache`` / past ``Expires``, its 0 makes the
    answer not cacheable; ``Cache-Control`` is skipped once X-Accel-Expires has set the time
    (but for its extensions), else ``no-cache`` / ``no-store`` / ``private`` / ``max-age=0``
    mark it not cached, whatever comes later but X-Accel-Expires, and ``s-maxage`` /
    ``max-age`` set the time (clearing a past ``Expires``); ``Expires`` (the first one) is
    read only while no time is set, a past or invalid date marking it expired. So
    Cache-Control wins over Expires in either order (nginx-tests proxy_cache_control.t), and
    what a header after another changes is nginx's: a ``max-age`` that is not a number makes
    the answer not cacheable even if an X-Accel-Expires follows (before it, it was skipped);
    an invalid X-Accel-Expires after an ``Expires`` makes a later ``no-cache`` skipped."""
    now = time.time() if wall is None else wall
    cacheable = True
    no_cache = expired = False
    #: r->cache->valid_sec, relative to ``now`` (None: 0, not set).
    fresh: float | None = None
    accel = expires_seen = False
    for _, name, value in items:
        if name == b"set-cookie" or name == b"vary":
            return 0.0  # ngx_http_upstream_process_set_cookie; Vary (ingresslib: not cached)
        if name == b"x-accel-expires":
            if accel:
                continue  # a duplicate is ignored (nginx >= 1.23), valid or not
            accel = True
            absolute = value.startswith(b"@")
            n = _atoi(value[1:] if absolute else value)
            if n is None:
                continue  # NGX_ERROR: ignored
            if not absolute:
                if n == 0:
                    cacheable = False
                    continue
                fresh = float(n)
            else:
                fresh = n - now if n else None  # "@0": valid_sec 0, not set
            no_cache = expired = False
        elif name == b"cache-control":
            v = value.lower()
            if fresh is None or not accel:
                if b"no-cache" in v or b"no-store" in v or b"private" in v:
                    no_cache = True
                    continue
                at = v.find(b"s-maxage=")
                offset = 9
                if at < 0:
                    at = v.find(b"max-age=")
                    offset = 8
                if at >= 0:
                    n = _delta(v, at + offset)
                    if n is None:
                        cacheable = False
                        continue
                    if n == 0:
                        no_cache = True
                        continue
                    fresh = float(n)
                    expired = False
            if _bad_extension(v):
                cacheable = False
        elif name == b"expires":
            if expires_seen:
                continue  # the first one only
            expires_seen = True
            if fresh is not None:
                continue
            when = parse_http_time(value)
            if when is None or when < now:
                expired = True
                continue
            fresh = when - now
    if not cacheable or no_cache or expired:
        return 0.0
    if fresh is not None:
        return max(fresh, 0.0)
    for code, secs in valid:
        if code == 0 or code == status:
            return secs
    return 0.0


class AuthCache:
    """The answers of one ``Proxy`` or ``IngressASGI``: key digest -> [expires, last used,
    verdict], least recently used first.

    Not locked: ``get`` and ``put`` run on the thread that drives the owner's connections
    (ProxyServer's and IngressASGI's event loop), as the rest of a ``Proxy``'s shared state
    (``rate_limits``, ``global_rate_limits``): the API (proxy/API.md) never makes a ``Proxy``
    shareable across threads (only ``Offload`` jobs run off it, and they do not touch this
    cache). A driver that calls one ``Proxy``'s connections from several threads must
    serialise those calls."""

    __slots__ = ("entries", "max_entries")

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.entries: OrderedDict[bytes, list[Any]] = OrderedDict()
        self.max_entries = max_entries

    def get(self, key: bytes, now: float) -> Any:
        entry = self.entries.get(key)
        if entry is None:
            return None
        if entry[0] <= now or now - entry[1] > INACTIVE:
            del self.entries[key]
            return None
        entry[1] = now
        self.entries.move_to_end(key)
        return entry[2]

    def put(self, key: bytes, verdict: Any, seconds: float, now: float) -> None:
        if seconds <= 0:
            return
        entries = self.entries
        entries.pop(key, None)
        while len(entries) >= self.max_entries:
            # The least recently used first, as nginx's cache manager over max_size (an
            # expired entry goes when next looked up, or here once it is the oldest).
            entries.popitem(last=False)
        entries[key] = [now + seconds, now, verdict]


def cache_of(owner: Any) -> AuthCache:
    """``owner``'s cache (a ``Proxy`` or an ``IngressASGI``), made at its first use."""
    cache: AuthCache | None = getattr(owner, "_auth_cache", None)
    if cache is None:
        cache = AuthCache()
        owner._auth_cache = cache
    return cache


def request_key(auth: Any, match: Any, method: str, host: str, path: str,
                query: str | None, headers: Any, client_ip: str | None) -> bytes | None:
    """The cache key of a request to ``auth`` (an ``ExtAuth`` with a ``cache``) that reached
    ``match``: None when not cached (the key's variables all empty)."""
    cfg: AuthCacheConfig = auth.cache
    expanded = cfg.expand(method, host, path, query, headers, client_ip)
    if expanded is None:
        return None
    server = getattr(match, "host", None) or "_"
    location = (getattr(match, "path", None), getattr(match, "path_type", None))
    ident = (auth.url, auth.method, auth.response_headers, auth.proxy_set_headers,
             auth.request_redirect, cfg.key)
    text = f"{server}\0{location!r}\0{ident!r}\0{expanded}"
    return hashlib.sha1(text.encode("utf-8", "surrogatepass")).digest()
