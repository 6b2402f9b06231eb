"""The access log: ingress-nginx's default ``upstreaminfo`` line, or the same fields as JSON.

SEMANTICS §12: "an access log in ingress-nginx's default format on logger ``ingresslib.access``
(JSON optional); the library itself only adds a ``NullHandler``."

ingress-nginx's default ``log-format-upstream``::

    $remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer"
    "$http_user_agent" $request_length $request_time [$proxy_upstream_name]
    [$proxy_alternative_upstream_name] $upstream_addr $upstream_response_length
    $upstream_response_time $upstream_status $req_id

:class:`AccessLog` turns a :class:`~ingresslib.proxy.RequestRecord` into those fields and logs
them at INFO on ``ingresslib.access``: the message is the text line, the fields ride along as
``extra={"access": fields}`` so any handler can use them. :class:`AccessLogFormatter` writes the
line or a JSON object. Only an application (the CLI: :func:`configure_access_log`) adds handlers.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
import sys
import time
from collections.abc import Callable, Sequence
from typing import IO, Any, Literal

from typing import TYPE_CHECKING

from ._iptext import host_port
from .proxy._actions import RequestRecord
from .proxy._headers import basic_auth_user

if TYPE_CHECKING:
    from ._logformat import LogFormat
    from .proxy._settings import ProxySettings

__all__ = [
    "AccessLog",
    "AccessLogFormatter",
    "access_fields",
    "format_line",
    "upstream_names",
    "upstream_times",
    "basic_auth_user",
    "configure_access_log",
    "FIELDS",
]

# Library etiquette: a NullHandler, never output of our own (the CLI configures handlers).
logging.getLogger("ingresslib").addHandler(logging.NullHandler())

_access = logging.getLogger("ingresslib.access")

#: The variables of the default line, in order; also the keys of the JSON form.
FIELDS = (
    "remote_addr", "remote_user", "time_local", "request", "status", "body_bytes_sent",
    "http_referer", "http_user_agent", "request_length", "request_time", "proxy_upstream_name",
    "proxy_alternative_upstream_name", "upstream_addr", "upstream_response_length",
    "upstream_response_time", "upstream_status", "req_id",
)

#: ingress-nginx's name for the upstream of requests no rule matched.
DEFAULT_UPSTREAM = "upstream-default-backend"

#: For a record without ``phase`` (built by other code than the core, which sets it):
#: statuses of requests the core refuses before routing them (bad request line or headers,
#: Host, limits, the plain-HTTP-on-TLS 400; the head timeout): no rule, no Ingress. nginx
#: refuses those while reading the head, before any phase runs, so ingress-nginx's
#: ``set $proxy_upstream_name "-";`` (server block) never ran and the variable is unset; with
#: nginx.tmpl's ``uninitialized_variable_warn off;`` ngx_http_rewrite_var() reads it as
#: ``ngx_http_variable_null_value`` (``ngx_http_variable("")``), which ngx_http_log_variable()
#: writes as is (only ``not_found`` prints ``-``): ``[]`` in the line, ``""`` in JSON.
#: 405: CONNECT and TRACE, refused at the end of ngx_http_process_request_header() ("client
#: sent TRACE method", ``NGX_HTTP_NOT_ALLOWED``), before any phase as well.
_REFUSED_UNROUTED = frozenset((400, 405, 408, 414, 431))

# %b follows the locale; nginx's $time_local does not.
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def upstream_times(record: RequestRecord) -> tuple[float | None, float | None]:
    """``(header_time, response_time)`` of ``record``'s last upstream attempt, in seconds, as
    nginx's ``$upstream_header_time`` and ``$upstream_response_time`` count them: from the
    attempt's start (its connect) to its response head / to its end (None: not known).

    The core fills ``upstream_header_time`` and ``upstream_response_time``. A record with
    neither (built by other code) falls back to what it has: the header from the start of the
    request to the first upstream byte (``upstream_latency``), the response from the upstream
    connect (``upstream_connect``) to the end.
    """
    header = getattr(record, "upstream_header_time", None)
    response = getattr(record, "upstream_response_time", None)
    if header is None and response is None:
        header = record.upstream_latency
        connected = record.upstream_connect
        if connected is not None:
            response = record.end - connected
    return (None if header is None else max(header, 0.0),
            None if response is None else max(response, 0.0))


def upstream_names(record: RequestRecord) -> tuple[str, str]:
    """``($proxy_upstream_name, $proxy_alternative_upstream_name)`` for ``record``.

    ingress-nginx names an upstream ``namespace-service-port`` (port as written in the Ingress:
    number or name). The main backend's name is logged first; when the canary served, its name
    goes second (else it is empty). Requests no rule matched are ``upstream-default-backend``.
    The record's ``phase`` says where nginx would have answered: a request refused while its
    head was read has no name (``""``), one answered before its location ran (app-root's 302,
    the 413 of a Content-Length over proxy-body-size) the server block's ``"-"``. A record
    without ``phase`` (built elsewhere): requests refused before routing are inferred from the
    status (400/405/408/414/431 with no rule: ``""``).

    The record's ``service``/``namespace`` are the backend that served. The port and, when the
    canary served, the main backend come from the optional record fields ``service_port``,
    ``primary_service`` and ``primary_port`` when the core provides them; without them the port
    is left out and a canary request names the canary backend in both places.
    """
    phase = getattr(record, "phase", None)
    if phase == "head":
        return "", ""
    if phase == "server":
        # The server block's ``set $proxy_upstream_name "-";`` ran, the location's did not.
        return "-", ""
    if record.service is None:
        if phase is None and record.ingress is None and record.status in _REFUSED_UNROUTED:
            # A record built elsewhere: "refused before routing" inferred from the status.
            return "", ""
        return DEFAULT_UPSTREAM, ""
    ns = record.namespace or ""
    served = _upstream(ns, record.service, getattr(record, "service_port", None))
    if not record.canary:
        return served, ""
    primary = getattr(record, "primary_service", None)
    if primary is None:
        return served, served
    # The main backend lives in the rule's Ingress's namespace (``ingress`` is
    # "namespace/name"), which a canary Ingress paired by host and path need not share.
    main_ns, sep, _ = (getattr(record, "ingress", None) or "").rpartition("/")
    return _upstream(main_ns if sep else ns, primary, getattr(record, "primary_port", None)), served


def _upstream(ns: str, service: str, port: object) -> str:
    return f"{ns}-{service}-{port}" if port is not None else f"{ns}-{service}"


# (second, tz, text) of the last entry: the local-zone conversion costs ~13 µs and many requests
# end within the same second. One tuple, replaced whole, so threads cannot see half of it.
_last_time: tuple[int, datetime.tzinfo | None, str] = (-1, None, "")


def _time_local(now: float, tz: datetime.tzinfo | None) -> str:
    # nginx $time_local: "21/Nov/2026:13:25:42 +0000"
    global _last_time
    sec = int(now)
    last = _last_time
    if last[0] == sec and last[1] is tz:
        return last[2]
    d = datetime.datetime.fromtimestamp(sec, tz) if tz is not None \
        else datetime.datetime.fromtimestamp(sec).astimezone()
    text = (f"{d.day:02d}/{_MONTHS[d.month - 1]}/{d.year:04d}:"
            f"{d.hour:02d}:{d.minute:02d}:{d.second:02d} {d.strftime('%z')}")
    _last_time = (sec, tz, text)
    return text


def access_fields(
    record: RequestRecord, now: float | None = None, tz: datetime.tzinfo | None = None,
) -> dict[str, Any]:
    """The :data:`FIELDS` of ``record`` (values as nginx would print them; ints stay ints, a
    missing value is ``None`` and prints as ``-``), plus ``host``, ``namespace``, ``ingress``,
    ``service``, ``path`` (the rule path) and ``canary`` for structured handlers.

    ``now`` is the wall-clock time of the log entry (default ``time.time()``: nginx logs when the
    request ends); ``tz`` the zone of ``time_local`` (default: the local zone, like nginx).
    """
    if now is None:
        now = time.time()
    upstream, alternative = upstream_names(record)
    query = f"?{record.query}" if record.query else ""
    tried = record.upstreams
    statuses = record.upstream_statuses
    body = getattr(record, "body_bytes_out", None)
    fields = {
        "remote_addr": record.client_ip,
        # ``basic_auth_user`` of the Authorization header, filled by the core.
        "remote_user": record.remote_user,
        "time_local": _time_local(now, tz),
        "request": _request_line(record, query),
        "status": record.status,
        # $body_bytes_sent excludes the response head; the record counts all bytes unless the
        # core provides ``body_bytes_out``.
        "body_bytes_sent": record.bytes_out if body is None else body,
        "http_referer": record.referer,
        "http_user_agent": record.user_agent,
        "request_length": record.bytes_in,
        "request_time": f"{max(record.duration, 0.0):.3f}",
        "proxy_upstream_name": upstream,
        "proxy_alternative_upstream_name": alternative,
        # nginx lists every upstream tried, ", "-separated.
        "upstream_addr": ", ".join(host_port(h, p) for h, p in tried) if tried else None,
        "upstream_response_length": _response_lengths(record.upstream_response_length, tried),
        "upstream_response_time": _response_times(record, len(tried)),
        "upstream_status": (", ".join("-" if s is None else str(s) for s in statuses)
                            if statuses else None),
        "req_id": record.request_id,
        "host": record.host,
        "namespace": record.namespace,
        "ingress": record.ingress,
        "service": record.service,
        "path": record.rule_path,
        "canary": record.canary,
    }
    at = getattr(record, "upstream_redirect", None)
    if at and tried:
        _redirected(fields, at)
    return fields


#: The upstream lists nginx separates by ``" : "`` at an internal redirect. (log-format's
#: per-try lists that are no fields, ``$upstream_connect_time`` and the like, are joined by
#: :func:`try_list`, the same way.)
_LISTS = ("upstream_addr", "upstream_status", "upstream_response_length",
          "upstream_response_time")


def join_tries(parts: Sequence[str], at: int | None) -> str:
    """One value per try, ``", "``-joined, ``" : "`` before the error page's first try ``at``
    (``RequestRecord.upstream_redirect``; :func:`_redirected`)."""
    if at and 0 < at < len(parts):
        return ", ".join(parts[:at]) + " : " + ", ".join(parts[at:])
    return ", ".join(parts)


def seconds_text(t: float | None) -> str:
    """A try's time as nginx's upstream time variables write it: ``"%T.%03M"``, ``-`` for
    none ("if (ms != -1) { ... } else { *p++ = '-'; }")."""
    return "-" if t is None else f"{max(t, 0.0):.3f}"


def try_list(record: RequestRecord, values: Sequence[Any],
             text: Callable[[Any], str]) -> str | None:
    """``values`` (one per try: a field of each of ``record.upstream_tries``) written as nginx
    writes an upstream list, each with ``text``; None when they do not line up with
    ``record.upstreams`` (not provided: a record built elsewhere, or no try)."""
    if not values or len(values) != len(record.upstreams):
        return None
    return join_tries([text(v) for v in values], getattr(record, "upstream_redirect", None))


def _redirected(fields: dict[str, Any], at: int) -> None:
    """custom-http-errors' error page (``RequestRecord.upstream_redirect``: its first try's
    index): nginx's internal redirect to the named location starts a new group of upstream
    states after an empty one, and ngx_http_upstream_addr_variable (status, response_length,
    response_time alike) writes ``" : "`` there instead of ``", "`` ("if (state[i].peer) {
    *p++ = ','; *p++ = ' '; } else { *p++ = ' '; *p++ = ':'; *p++ = ' '; ..."): the
    intercepted try (or the proxy's own 502/504) and the error page's, ``10.0.0.1:80 :
    10.0.1.1:80``, ``503 : 404``."""
    for key in _LISTS:
        v = fields[key]
        if v.__class__ is str:
            fields[key] = join_tries(v.split(", "), at)


def _request_line(record: RequestRecord, query: str) -> str | None:
    """nginx ``$request``, the "full original request line": the record's ``request_line`` (as
    received: the raw target, ``/../x`` or ``%2F`` included, also for a request the core
    refused), used as is. Without it (a record built elsewhere), the line is rebuilt from the
    canonical path. A request refused before its request line was parsed has
    no method and no path: nginx logs ``"-"`` then (None here, printed ``-``), never
    ``"  HTTP/1.1"``; a part that alone is missing is ``-``."""
    line = record.request_line
    if line:
        return line
    method, path = record.method, record.path
    if not method and not path:
        return None
    return f"{method or '-'} {path or '-'}{query} HTTP/{record.http_version}"


def _response_lengths(length: int, tried: tuple[tuple[str, int], ...]) -> int | str | None:
    """nginx ``$upstream_response_length``: one length per try, ``", "``-separated
    (ngx_http_upstream_response_length_variable prints ``state[i].response_length`` for each).
    Only the last try's response reached the client; an earlier try was abandoned for the next
    one (ngx_http_upstream_next) before ngx_http_upstream_finalize_request, the only place that
    sets ``response_length``, so it keeps the 0 of its zeroed state. One try: the number."""
    if not tried:
        return None
    if len(tried) == 1:
        return length
    return "0, " * (len(tried) - 1) + str(length)


def _response_times(record: RequestRecord, tries: int) -> str | None:
    """nginx ``$upstream_response_time``: one time per try, ``", "``-separated, ``-`` for a try
    without one (ngx_http_upstream_response_time_variable: "if (ms != -1) { ... ngx_sprintf(p,
    "%T.%03M", ...) } else { *p++ = '-'; }", then ", " before the next state), so that it lines
    up with ``$upstream_addr`` and ``$upstream_status``. The times
    of every try are the record's ``upstream_response_times`` (one per entry of
    ``upstreams``; the core always fills it). A record that leaves it empty (built by other
    code, which RequestRecord's defaults allow) or gives another number of times than tries
    writes the last try's time only (:func:`upstream_times`)."""
    times = record.upstream_response_times
    if times and len(times) == tries:
        return ", ".join(map(seconds_text, times))
    last = upstream_times(record)[1]
    return None if last is None else f"{last:.3f}"


def _escape(value: object) -> str:
    """nginx's default log escaping: ``"``, ``\\`` and bytes outside printable ASCII become
    ``\\xHH``; a missing value is ``-``.

    nginx escapes the bytes it received (ngx_http_log_escape). The core keeps header values
    byte for byte as latin-1 strings, so a string that fits latin-1 is escaped as those bytes
    (UTF-8 ``é`` received as C3 A9 logs ``\\xC3\\xA9``, not the UTF-8 of ``Ã©``); only a
    string with characters above U+00FF (built by other code) is escaped as its UTF-8."""
    if value is None:
        return "-"
    s = str(value)
    if s.isascii() and s.isprintable() and '"' not in s and "\\" not in s:
        return s
    try:
        raw = s.encode("latin-1")
    except UnicodeEncodeError:
        try:
            raw = s.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:
            # A lone surrogate other than surrogateescape's U+DC80-U+DCFF (a value decoded
            # with "surrogatepass"): its three UTF-8-style bytes, escaped like the rest. An
            # exception here would lose the whole entry (logging drops a record it cannot
            # format).
            raw = s.encode("utf-8", "surrogatepass")
    return "".join(
        chr(b) if 0x20 <= b < 0x7F and b not in (0x22, 0x5C) else f"\\x{b:02X}" for b in raw)


def format_line(f: dict[str, Any]) -> str:
    """The default ``upstreaminfo`` line from :func:`access_fields`' dict. ``$status`` has three
    digits (ngx_http_log_status: ``"%03ui"``; ``000`` when no response was sent)."""
    e = _escape
    return (f'{e(f["remote_addr"])} - {e(f["remote_user"])} [{f["time_local"]}] '
            f'"{e(f["request"])}" {f["status"]:03d} {f["body_bytes_sent"]} '
            f'"{e(f["http_referer"])}" "{e(f["http_user_agent"])}" {f["request_length"]} '
            f'{f["request_time"]} [{e(f["proxy_upstream_name"])}] '
            f'[{e(f["proxy_alternative_upstream_name"])}] {e(f["upstream_addr"])} '
            f'{e(f["upstream_response_length"])} {e(f["upstream_response_time"])} '
            f'{e(f["upstream_status"])} {e(f["req_id"])}')


class _Line:
    """The log message: formatted only if a handler asks for it."""

    __slots__ = ("fields",)

    def __init__(self, fields: dict[str, Any]) -> None:
        self.fields = fields

    def __str__(self) -> str:
        return format_line(self.fields)


class AccessLog:
    """Log each :class:`RequestRecord` on ``ingresslib.access`` (a ``Callable[[RequestRecord],
    None]``, ready for ``ProxyServer(on_record=...)``).

    >>> log = AccessLog()
    >>> log.logger.name
    'ingresslib.access'

    ``clock`` gives the wall-clock time of each entry and ``tz`` the zone of ``time_local``
    (tests inject both).
    """

    def __init__(
        self, logger: logging.Logger | None = None, *, clock: Callable[[], float] = time.time,
        tz: datetime.tzinfo | None = None, settings: ProxySettings | None = None,
        default_server: Callable[[str], bool] | None = None,
    ) -> None:
        self.logger = logger or _access
        self.clock = clock
        self.tz = tz
        #: ``host -> True`` when ingress-nginx's catch-all server answers a request for
        #: ``host`` that no rule routed (no Ingress names the host; ``serve`` asks its proxy).
        #: None: not known, every such request is logged.
        self.default_server = default_server
        #: The compiled ``log-format-upstream`` (None: the default line's fast path).
        self._format: LogFormat | None = None
        #: ``default_server`` unless ``enable-access-log-for-default-backend`` is on.
        self._skip_default: Callable[[str], bool] | None = default_server
        self._settings: ProxySettings | None = None
        if settings is not None:
            self.configure(settings)

    def configure(self, settings: ProxySettings) -> None:
        """Follow ``settings``' ``log_format_upstream``, ``log_format_escape_json`` /
        ``log_format_escape_none`` and ``enable_access_log_for_default_backend`` (``serve``
        calls it at start and after each ConfigMap change). The format is compiled here, once:
        ValueError for one nginx would refuse."""
        if settings is self._settings:
            return
        from ._logformat import DEFAULT_FORMAT, compile_format, escape_of

        text = settings.log_format_upstream
        escape = escape_of(settings)
        if (not text or text == DEFAULT_FORMAT) and escape == "default":
            fmt = None  # ingress-nginx's default line: format_line's fast path
        else:
            # $http_<name> reads a line whose name holds "_" where nginx keeps it.
            fmt = compile_format(text or DEFAULT_FORMAT, escape,
                                 settings.enable_underscores_in_headers
                                 or not settings.ignore_invalid_headers)
        self._format = fmt
        self._skip_default = (None if settings.enable_access_log_for_default_backend
                              else self.default_server)
        self._settings = settings

    def __call__(self, record: RequestRecord) -> None:
        logger = self.logger
        if not logger.isEnabledFor(logging.INFO):  # nobody listens: build nothing
            return
        if not getattr(record, "access_log", True):
            # enable-access-log: "false" (nginx.tmpl "access_log off;" in the location),
            # disable-access-log, skip-access-log-urls (RequestRecord.access_log). A
            # record built by hand without the field is logged as before.
            return
        skip = self._skip_default
        if skip is not None and record.service is None and record.ingress is None \
                and getattr(record, "phase", None) == "location" and skip(record.host):
            # The catch-all server's default location (controller.go createServers: "Logs:
            # log.Config{Access: ...EnableAccessLogForDefaultBackend}"): "access_log off;".
            return
        clock = self.clock  # (then called: CPython 3.11 never specialises self.clock())
        now = clock()
        fields = access_fields(record, now, self.tz)
        fmt = self._format
        extra: dict[str, Any] = {"access": fields}
        if fmt is None:
            line: object = _Line(fields)
        else:
            line = extra["access_line"] = _Custom(fmt, record, fields, now)
        # makeRecord + handle is logger.info() without findCaller's stack walk (the caller is
        # always this line): a third of the cost of an entry.
        entry = logger.makeRecord(logger.name, logging.INFO, __file__, 0, "%s", (line,),
                                  None, "AccessLog", extra)
        logger.handle(entry)


class _Custom:
    """The message of a ``log-format-upstream`` entry: rendered once, if a handler asks."""

    __slots__ = ("fmt", "record", "fields", "now", "text")

    def __init__(self, fmt: LogFormat, record: RequestRecord, fields: dict[str, Any],
                 now: float) -> None:
        self.fmt, self.record, self.fields, self.now = fmt, record, fields, now
        self.text: str | None = None

    def __str__(self) -> str:
        text = self.text
        if text is None:
            text = self.text = self.fmt.render(self.record, self.fields, self.now)
        return text


class AccessLogFormatter(logging.Formatter):
    """``fmt="text"``: the ingress-nginx line; ``fmt="json"``: :data:`FIELDS` (and the extra
    keys of :func:`access_fields`) as one JSON object per line. Records without access fields
    are formatted as ``%(message)s``."""

    def __init__(self, fmt: Literal["text", "json"] = "text") -> None:
        super().__init__("%(message)s")
        if fmt not in ("text", "json"):
            raise ValueError(f"access log format must be 'text' or 'json', not {fmt!r}")
        self.json = fmt == "json"

    def format(self, record: logging.LogRecord) -> str:
        # The record's own attributes (``extra``): two dict tests instead of two builtin
        # getattr calls, the second of which misses on every default line (pinned callgrind,
        # session 30: 48 to 96 fewer instructions a line).
        attrs = record.__dict__
        fields: dict[str, Any] | None = attrs["access"] if "access" in attrs else None
        if fields is None:
            return super().format(record)
        if self.json:
            return _JSON.encode(_json_fields(fields))
        if "access_line" in attrs and attrs["access_line"] is not None:
            # log-format-upstream: the line the ConfigMap's format writes.
            return str(attrs["access_line"])
        return format_line(fields)


#: The fields nginx copies from the bytes the client sent; the core keeps those bytes as
#: latin-1 strings (one character per byte).
_RAW_FIELDS = ("remote_user", "request", "http_referer", "http_user_agent", "req_id", "host")

#: The numbers ``access_fields`` writes as text: a time (``%.3f``) and a length.
_TIME = re.compile(r"[0-9]+(?:\.[0-9]+)?", re.ASCII)
_LENGTH = re.compile(r"[0-9]+", re.ASCII)

#: surrogateescape's stand-ins for undecodable bytes 0x80-0xFF -> ``\xHH`` as text.
_HEX = {0xDC80 + i: f"\\x{0x80 + i:02X}" for i in range(128)}


def _json_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """``fields`` with the client's bytes as the text they spell.

    nginx's ``escape=json`` (ngx_escape_json) escapes ``"``, ``\\`` and bytes below 0x20 and
    copies every other byte as is ("if (ch > 0x1f) { if (ch == '\\\\' || ch == '"') ..."), so
    a User-Agent sent as UTF-8 ``é`` (C3 A9) reads as ``é`` in ingress-nginx's JSON log, not as
    ``Ã©`` (the two latin-1 characters the core holds). Bytes that are not UTF-8, which nginx
    writes raw (making the line invalid UTF-8), become the text ``\\xHH`` as in the text line,
    so the JSON stays valid and pure ASCII.

    Times are numbers (``request_time``, ``upstream_response_time``: the text line's
    three-decimal strings; where the line lists one time per try, the last try's), and
    ``upstream_response_length`` is the length of the response that
    reached the client whatever the number of tries (earlier tries' are always 0; the text line
    lists them, ``0, 40``): a field that is a number on one line and a string on the next is a
    mapping conflict for a log store, which drops the line."""
    out = dict(fields)
    # Each field on its own: fields a handler of the application built may hold other values
    # ("-", "n/a"), kept as they are without keeping the next field from its number.
    # Only the digits nginx writes are read: float() would take "nan" or "1e999", which the
    # encoder writes as NaN / Infinity, no JSON.
    # ``upstream_response_time`` lists one time per try when the record has them all
    # (``0.002, 0.031``); like the length, JSON keeps the last try's, the one whose response
    # (or failure) the client got.
    for key in ("request_time", "upstream_response_time"):
        v = out.get(key)
        if v.__class__ is str:
            # (" : ": an error page's tries after the ones before, ``_redirected``)
            _, sep, last = v.replace(" : ", ", ").rpartition(", ")
            if _TIME.fullmatch(last) is not None:
                out[key] = float(last)
            elif last == "-" and (sep or key == "upstream_response_time"):
                # The last try has no time: null, as a missing one. A lone "-" upstream
                # time is ``_response_times``' single try without one (a record with
                # ``upstream_response_times=(None,)``): null too, as the "-" of "0.002, -";
                # a handler's own "-" ``request_time`` stays as it is.
                out[key] = None
    length = out.get("upstream_response_length")
    if length.__class__ is str:
        last = length.replace(" : ", ", ").rpartition(", ")[2]
        if _LENGTH.fullmatch(last) is not None:
            out["upstream_response_length"] = int(last)
    for key in _RAW_FIELDS:
        v = fields.get(key)
        if v.__class__ is str and not v.isascii():
            try:
                raw = v.encode("latin-1")
            except UnicodeEncodeError:
                continue  # not bytes as latin-1 (built by other code): already text
            out[key] = raw.decode("utf-8", "surrogateescape").translate(_HEX)
    return out


# Built once: json.dumps with non-default arguments builds an encoder per call. ASCII only:
# client-chosen values (header bytes arrive as latin-1 characters) must not put U+0085 or
# U+2028 (line breaks to some readers) into an entry, nor make it unencodable on an ASCII
# stream, where logging would drop it: a client could split or erase its own entry.
_JSON = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True)

_installed: list[logging.Handler] = []

#: Where a failing access-log stream is reported: a sibling of ``ingresslib.access`` (whose
#: handler is the one failing), under ``ingresslib`` (the CLI's stderr handler).
_write_errors = logging.getLogger("ingresslib.accesslog")


class _AccessHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The stream handler of :func:`configure_access_log`. A write that fails (stdout piped to
    a reader that left, a full disk) is reported on ``ingresslib.accesslog`` at most once every
    ``report_every`` seconds, as nginx reports a failed access-log write (ngx_http_log_write:
    "if (now - log->error_log_time > 59) { ngx_log_error(NGX_LOG_ALERT, ...
    ngx_write_fd_n " to \"%s\" failed" ...)"), and the request goes on. logging's default
    would print a traceback of some thirty lines on stderr for every request."""

    report_every = 60.0

    def __init__(self, stream: IO[str], clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(stream)
        self.clock = clock
        #: Entries that could not be written.
        self.failures = 0
        self._reported: float | None = None

    def handleError(self, record: logging.LogRecord) -> None:
        self.failures += 1
        now = self.clock()
        if self._reported is not None and now - self._reported < self.report_every:
            return
        self._reported = now
        _write_errors.error(
            "access log: writing to %s failed: %s (%d entr%s lost so far; reported at most "
            "every %g s)", getattr(self.stream, "name", "the stream"), sys.exc_info()[1],
            self.failures, "y" if self.failures == 1 else "ies", self.report_every)


def configure_access_log(
    stream: IO[str], fmt: Literal["text", "json"] = "text",
) -> logging.Handler:
    """For applications (the CLI), never called by the library: write ``ingresslib.access`` to
    ``stream`` in ``fmt``, at INFO, without propagating to the root logger. Calling it again
    replaces the handler it installed before. A write to ``stream`` that fails loses the entry
    and is reported on ``ingresslib.accesslog`` at most once a minute (:class:`_AccessHandler`).
    Returns the handler."""
    for h in _installed:
        _access.removeHandler(h)
    _installed.clear()
    handler = _AccessHandler(stream)
    handler.setFormatter(AccessLogFormatter(fmt))
    _access.addHandler(handler)
    _installed.append(handler)
    _access.setLevel(logging.INFO)
    _access.propagate = False
    _access.disabled = False
    return handler
