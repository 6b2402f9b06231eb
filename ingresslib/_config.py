"""``serve --config``: an ingress-nginx ConfigMap's ``data`` -> :class:`ProxySettings`.

Keys keep ingress-nginx's names and meanings (``docs/user-guide/nginx-configuration/configmap.md``
of ingress-nginx). Values are strings, as in a ConfigMap; each key has one parser below, so the
accepted syntax of a key is written down in exactly one place, and follows how ingress-nginx
decodes it (mapstructure into Go types: strconv.ParseBool, strconv.ParseInt base 0, strings for
nginx sizes); a spelling ingress-nginx would read as something else, or ignore ("60s", "010"),
is an error here rather than a silent difference. Unknown keys are warned about (an
operator moving a real ConfigMap over will have many nginx-only keys); invalid values are errors,
all collected, raised as one :class:`ValidationError` (the CLI exits 2).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._decode import _bool as _decode_bool
from ._decode import _Dec, _jtype, _meta, _str_map
from ._errors import FieldError, ValidationError, short_repr
from ._goparse import parse_bool
from ._spelling import close_name
from .proxy._annotations import NGINX_MAX_SECONDS as _NGINX_MAX_SECONDS
from .proxy._location_extras import parse_http_version
from .proxy._request_buffer import parse_request_buffering
from .proxy._response_buffer import parse_buffer_size
from .proxy._settings import (
    HEADER_NAME, NEXT_UPSTREAM_CONDITIONS, REDIRECT_CODES, ProxySettings, parse_size,
)

__all__ = ["ServerConfig", "parse_config_data", "parse_configmap", "load_config", "LOAD_BALANCE"]

#: ingress-nginx ``load-balance`` values ingresslib implements.
LOAD_BALANCE = ("round_robin", "ewma")


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """The settings a ConfigMap gives (:func:`load_config`, :func:`parse_config_data`): the
    proxy's (``settings``, for :class:`ProxyServer` or :class:`Proxy`) and the router's
    default balancer (``load_balance``, for ``ingresslib.Router(res, load_balance=...)``)."""

    settings: ProxySettings = ProxySettings()
    #: ingress-nginx ``load-balance`` (``round_robin`` default), or None when not set.
    load_balance: str | None = None
    #: Human-readable warnings (unknown keys...), one per line.
    warnings: tuple[str, ...] = ()
    #: ingress-nginx ``service-upstream`` (config.go ``defaults.Backend.ServiceUpstream``,
    #: default false): the default of Ingresses without the ``service-upstream`` annotation,
    #: for ``ingresslib.Router(res, service_upstream=...)``.
    service_upstream: bool = False
    #: ingress-nginx ``proxy-stream-responses`` (config.go ``ProxyStreamResponses int``,
    #: default 1; nginx stream ``proxy_responses``): a UDP service's session ends once the
    #: endpoint's replies number this many times the client's datagrams (``serve
    #: --udp-services-configmap``, ingresslib._udp_proxy; 0: right after sending).
    proxy_stream_responses: int = 1
    #: ingress-nginx ``worker-shutdown-timeout`` (config.go ``WorkerShutdownTimeout string``,
    #: default "240s"; nginx ``worker_shutdown_timeout``), in seconds: how long ``serve``'s
    #: graceful stop lets requests in flight finish, unless ``--shutdown-timeout`` is given
    #: (``_serve_reload.shutdown_timeout``). None: not set (serve's 10 s).
    worker_shutdown_timeout: float | None = None
    #: ingress-nginx ``max-worker-open-files`` (config.go ``MaxWorkerOpenFiles int``, default
    #: 0; nginx ``worker_rlimit_nofile``): the soft RLIMIT_NOFILE ``serve`` raises its own to
    #: (0: the hard limit - 1024, at least 1024; ``_serve_limits``). None: not set (as 0).
    max_worker_open_files: int | None = None
    #: ingress-nginx ``max-worker-connections`` (config.go ``MaxWorkerConnections int``,
    #: default 16384; nginx ``worker_connections``): ``serve``'s client connection bound
    #: unless ``--max-connections`` is given (0: 3/4 of the open files limit;
    #: ``_serve_limits.connection_bound``). None: not set (serve's 10000).
    max_worker_connections: int | None = None


class _Bad(ValueError):
    """A value a parser rejects; the message is the API-server-style detail."""


# --- value parsers: str -> typed value ---------------------------------------------------------

def _bool(v: str) -> bool:
    # Go's strconv.ParseBool, which ingress-nginx uses for boolean keys: exactly its spellings,
    # untrimmed. ingress-nginx keeps the default for " false" (a ParseBool error) and
    # mapstructure reads "" as false; both are errors here, not surprises.
    b = parse_bool(v)
    if b is None:
        raise _Bad('must be "true" or "false"')
    return b


# Go's strconv.ParseInt(s, 0, 64), which mapstructure (WeaklyTypedInput) applies to the int keys
# of ingress-nginx's config.Configuration: base 0, so "010" is octal 8 and "0x10" is 16. Only
# plain ASCII decimal is accepted here; the other forms are rejected with the reason rather
# than read as a different number than ingress-nginx reads.
_DECIMAL = re.compile(r"[+-]?[0-9]+", re.ASCII)
_OTHER_BASE = re.compile(r"[+-]?0([0-9_]|[xXoObB])", re.ASCII)
_INT64_MAX = (1 << 63) - 1
_PAST_INT64 = f"must be at most {_INT64_MAX}"


def _int(v: str) -> int:
    if _OTHER_BASE.match(v):
        raise _Bad("ingress-nginx reads a leading 0 as a base prefix (Go strconv.ParseInt base "
                   '0: "010" is 8); write the number in decimal without leading zeros')
    if _DECIMAL.fullmatch(v) is None:
        raise _Bad("must be an integer")
    digits = v.lstrip("+-")  # (no leading zeros: _OTHER_BASE refused them)
    if v[0] == "-" and digits != "0":
        raise _Bad("must be greater than or equal to 0")
    # ParseInt(s, 0, 64) fails past int64 ("value out of range") and ingress-nginx keeps the
    # default: an error here, as "60s" is. (Counted before int(), which raises ValueError
    # past 4,300 digits, and before float(), which overflows past 309: tracebacks out of
    # load_config.)
    if len(digits) > 19 or int(digits) > _INT64_MAX:
        raise _Bad(_PAST_INT64 + " (ingress-nginx: strconv.ParseInt: value out of range)")
    return int(v)


def _decimal(v: str) -> int:
    # ``hsts-max-age`` is a string in ingress-nginx (config.go ``HSTSMaxAge string``), written
    # into ``max-age=<value>``, which a browser reads as decimal delta-seconds (RFC 6797 6.1.1).
    if _DECIMAL.fullmatch(v) is None or not v[0].isdigit():
        raise _Bad("must be a whole number of seconds")
    # (ingress-nginx writes any digits; a bound keeps the number one that int() converts and
    # the header can be written from: int() refuses 4,301 digits. 2^63-1 seconds is far past
    # any browser's cap.)
    digits = v.lstrip("0") or "0"  # (int() counts leading zeros against its limit too)
    if len(digits) > 19 or int(digits) > _INT64_MAX:
        raise _Bad(_PAST_INT64)
    return int(digits)


def _seconds(v: str) -> float:
    # The timeout keys are Go ints in ingress-nginx (config.go: ``ProxyReadTimeout int``,
    # ``KeepAlive int``, ``ClientBodyTimeout int``...; "All timeout values are unitless and in
    # seconds", annotations.md). "60s", "500ms" or "2.5" fail ParseInt there and the default is
    # kept; accepting them here would configure what ingress-nginx does not, so they are errors.
    if _DECIMAL.fullmatch(v) is None:
        raise _Bad('must be a whole number of seconds, without a unit, such as "60"')
    return float(_int(v))


def _nginx_seconds(v: str) -> float:
    # The keys nginx.tmpl writes as "<value>s" (proxy_connect/send/read_timeout,
    # client_header/body_timeout, keepalive_timeout of the server and of the upstream): past
    # 2147483 nginx -t fails ("invalid value") and ingress-nginx applies nothing; accepted
    # here, "3000000" armed a 35-day timer. (proxy-next-upstream-timeout is written bare.)
    seconds = _seconds(v)
    if seconds > _NGINX_MAX_SECONDS:
        raise _Bad(f"must be at most {_NGINX_MAX_SECONDS} seconds (about 24 days): ingress-nginx "
                   'writes it as "<value>s", which nginx refuses past that ("invalid value")')
    return seconds


def _timeout(v: str) -> float:
    # The proxy and client timeouts: 0 is refused. ingress-nginx writes it as is
    # ("proxy_read_timeout {{ $location.Proxy.ReadTimeout }}s;" -> "0s") and nginx arms a
    # timer of 0 ms (ngx_add_timer(c->read, u->conf->read_timeout)): every wait times out at
    # once. ingresslib's timers read 0 as "not armed" (the keyword argument's meaning), which
    # would turn the same ConfigMap into no timeout at all; the annotations refuse 0 too
    # (proxy/_annotations.py _seconds). keep-alive keeps its 0 ("disables keep-alive").
    seconds = _nginx_seconds(v)
    if seconds == 0:
        raise _Bad("must be greater than 0 (nginx would time out every request at once)")
    return seconds


def _keepalive_requests(v: str) -> int:
    # nginx reads keepalive_requests 0 as "no second request": ngx_http_update_location_config
    # "} else if (r->connection->requests >= clcf->keepalive_requests) { r->keepalive = 0;",
    # with requests counting from 1, so 0 and 1 both close after the first response. The
    # proxy core reads keep_alive_requests 0 the same way; "0" is read as 1 (same meaning). A
    # negative value is an error (_int), as in nginx ("invalid number": ngx_conf_set_num_slot).
    return max(_int(v), 1)


#: nginx time units of a millisecond setting, largest first (ngx_parse_time with ``sec`` 0:
#: "step = sec ? st_start : st_month", so years and months are refused), in milliseconds.
_TIME_UNITS = {"w": 604800000, "d": 86400000, "h": 3600000, "m": 60000, "s": 1000, "ms": 1}
_TIME_PART = re.compile(r"([0-9]+)(ms|[wdhms])?", re.ASCII)


def _nginx_time(v: str) -> float:
    # ``upstream-keepalive-time`` is a string in ingress-nginx (config.go: "UpstreamKeepaliveTime
    # string `json:\"upstream-keepalive-time,omitempty\"`", default "1h"), written as is into
    # nginx.tmpl ("keepalive_time {{ $cfg.UpstreamKeepaliveTime }};"), so its syntax is
    # nginx's time syntax (ngx_parse_time): numbers with a unit (w, d, h, m, s, ms), largest
    # first, each unit once ("1h30m"); a bare number is seconds. nginx refuses values above
    # 2147483647 ms ("if ((u_int) total > 2147483647) { return NGX_PARSE_LARGE_TIME; }").
    # Unquoted in the template, a space splits the value into two arguments of a directive
    # that takes one (keepalive_time: NGX_CONF_TAKE1): "1h 30m" fails nginx -t ("invalid
    # number of arguments"), so ingress-nginx never applies it; refused here too (it was read
    # as 5400 s). Only the spaces around the value are nginx's separators, not part of it.
    text = v.strip(" \t\r\n")
    if any(c.isspace() for c in text):
        raise _Bad("must be one nginx time, without spaces inside (ingress-nginx writes it "
                   "unquoted, and nginx reads the parts as arguments of a directive that "
                   f'takes one: nginx -t fails); write "{"".join(text.split())}"')
    pos, total, last = 0, 0, -1
    order = list(_TIME_UNITS)
    while pos < len(text):
        m = _TIME_PART.match(text, pos)
        if m is None:
            break
        unit = m.group(2)
        rank = order.index(unit) if unit else len(order)
        if rank <= last:  # units out of order, twice, or a bare number not last
            break
        last = rank
        # (more than 10 digits is past the bound below whatever the unit: not converted, as
        # int() refuses 4,301 digits with a ValueError)
        digits = m.group(1).lstrip("0")
        total += (int(digits or "0") if len(digits) <= 10 else 1 << 31) * (
            _TIME_UNITS[unit] if unit else 1000)
        pos = m.end()
    else:
        if text:
            if total > 2147483647:
                raise _Bad("must be at most 2147483647ms (about 24 days), as in nginx")
            return total / 1000.0
    raise _Bad('must be an nginx time such as "1h", "30m", "90s", "1h30m" or "3600"')


def _size(v: str) -> int:
    # nginx size syntax, the proxy's parser (proxy/_settings.parse_size: bytes or a
    # k/m/g suffix, at most 2^63-1 bytes as ngx_parse_offset allows). ``proxy-body-size: 0``
    # means unlimited, as in nginx's client_max_body_size.
    try:
        return parse_size(v)
    except ValueError as e:
        raise _Bad(f'{e}: must be a size such as "1m", "8k" or "1048576", at most 2^63-1 '
                   "bytes") from None


def _next_upstream(v: str) -> tuple[str, ...]:
    # nginx proxy_next_upstream: space-separated conditions; "off" alone disables retries.
    items = tuple(v.split())
    if not items:
        raise _Bad("must list at least one condition")
    bad = [i for i in items if i not in NEXT_UPSTREAM_CONDITIONS]
    if bad:
        raise _Bad(f"unknown condition {bad[0]!r}; supported: "
                   + ", ".join(sorted(NEXT_UPSTREAM_CONDITIONS)))
    if "off" in items and len(items) > 1:
        raise _Bad('"off" cannot be combined with other conditions')
    return items


def _cidrs(v: str) -> tuple[str, ...]:
    # ingress-nginx: "proxy-real-ip-cidr: 0.0.0.0/0" or a comma-separated list, split by
    # splitAndTrimSpace and written as is into "set_real_ip_from" lines (http and stream
    # blocks), which nginx reads with ngx_ptocidr, as the access lists' "allow"/"deny": a
    # decimal prefix only (a netmask, "10.0.0.0/255.0.0.0", or a zone is then taken for a host
    # name, which fails the reload). One parser for both.
    return _source_ranges(v)


def _source_ranges(v: str) -> tuple[str, ...]:
    # ingress-nginx template/configmap.go reads whitelist-source-range, denylist-source-range
    # and block-cidrs with splitAndTrimSpace(val, ",") and writes each element into an nginx
    # "allow"/"deny" line, which nginx refuses unless it is an address or a CIDR (the reload
    # fails); the annotations' parser (proxy/_access.py) checks the elements here.
    from .proxy._access import parse_source_ranges

    parts = [p.strip() for p in v.split(",") if p.strip()]
    try:
        return parse_source_ranges(",".join(parts)) if parts else ()
    except ValueError as e:
        raise _Bad(str(e)) from None


def _go_duration(v: str) -> float:
    # ``proxy-protocol-header-timeout`` is a Go time.Duration in ingress-nginx (config.go
    # "ProxyProtocolHeaderTimeout time.Duration", default 5s), read with time.ParseDuration
    # (configmap.go ReadConfig; a failure keeps the default, with a warning): "5s", "1m30s";
    # a bare number other than "0" is no duration there, an error here.
    from .proxy._proxy_protocol import parse_go_duration

    try:
        return parse_go_duration(v)
    except ValueError as e:
        raise _Bad(str(e)) from None


def _header_name(v: str) -> str:
    v = v.strip()
    if not HEADER_NAME.fullmatch(v):
        raise _Bad("must be a valid HTTP header name")
    return v


def _redirect_code(v: str) -> int:
    # ingress-nginx (controller/template/configmap.go) reads http-redirect-code with
    # strconv.Atoi and keeps the default (308) unless it is one of validRedirectCodes.
    digits = v.lstrip("+").lstrip("0")  # (Atoi: "+301" and "0301" are 301)
    if (_DECIMAL.fullmatch(v) is None or len(digits) > 3
            or int(digits or "0") not in REDIRECT_CODES):
        raise _Bad("supported codes: 301, 302, 307, 308")
    return int(digits)


def _http_version(v: str) -> str:
    # proxy/main.go reads the annotation with ValidateOptions(["1.0", "1.1"]); the ConfigMap's
    # value is written into proxy_http_version as it is, which nginx refuses past those two.
    try:
        return parse_http_version(v)
    except ValueError:
        raise _Bad('must be "1.0" or "1.1"') from None


def _on_off(v: str) -> str:
    # proxy-request-buffering and proxy-buffering: the ConfigMap's value is written into
    # nginx.conf unchecked, and nginx reads a flag case-insensitively (ngx_conf_set_flag_slot:
    # "ngx_strcasecmp(value[1].data, "on")"): "On" loads there. (The annotations'
    # ValidateOptions is case-sensitive: not this.)
    try:
        return parse_request_buffering(v.lower())
    except ValueError:
        raise _Bad('must be "on" or "off"') from None


def _buffer_size(v: str) -> int:
    # proxy-buffer-size: an nginx size; 0 fails nginx's configuration (no head fits).
    try:
        return parse_buffer_size(v)
    except ValueError as e:
        raise _Bad(str(e) if "1 byte" in str(e) else
                   f'{e}: must be a size such as "4k", "16k" or "8192"') from None


def _buffers_number(v: str) -> int:
    # config.go "ProxyBuffersNumber int `json:\"proxy-buffers-number\"`": nginx wants 2 or more.
    n = _int(v)  # (mapstructure's ParseInt base 0, as the other int keys)
    if n < 2:
        raise _Bad("must be 2 or more (nginx: there must be at least 2 proxy_buffers)")
    return n


def _limit_status(v: str) -> int:
    # config.go: "LimitReqStatusCode int `json:\"limit-req-status-code\"`" (and
    # LimitConnStatusCode), written as "limit_req_status {{ $cfg.LimitReqStatusCode }};":
    # nginx takes 400 to 599 ("value must be between 400 and 599"), else nginx -t fails.
    digits = v.lstrip("+").lstrip("0")
    if _DECIMAL.fullmatch(v) is None or len(digits) > 3 or not 400 <= int(digits or "0") <= 599:
        raise _Bad("must be a status code from 400 to 599")
    return int(digits)


def _load_balance(v: str) -> str:
    # Not trimmed: ingress-nginx passes the value verbatim to its Lua balancer, which looks it
    # up as is ("local implementation = IMPLEMENTATIONS[name]", rootfs/etc/nginx/lua/
    # balancer.lua) and falls back to round_robin for " ewma", so reading it as ewma here
    # would balance differently from the cluster.
    if v not in LOAD_BALANCE:
        hint = " (without surrounding spaces)" if v.strip() in LOAD_BALANCE else ""
        raise _Bad("supported values: " + ", ".join(f'"{x}"' for x in LOAD_BALANCE) + hint)
    return v


def _header_buffers(v: str) -> dict[str, Any]:
    # One parser for the ConfigMap and the keyword argument (ProxySettings derives the same
    # limits from large_client_header_buffers; parse_config_data passes it the value only).
    from .proxy._settings import parse_header_buffers

    try:
        line, header, total = parse_header_buffers(v)
    except ValueError as e:
        raise _Bad(str(e)) from None
    return {"large_client_header_buffers": " ".join(v.split()), "max_request_line": line,
            "max_header_line": header, "max_headers_size": total}


def _allowed_headers(v: str) -> tuple[str, ...]:
    from .proxy._header_sets import parse_allowed_headers

    try:
        return parse_allowed_headers(v)
    except ValueError as e:
        raise _Bad(str(e)) from None


def _add_headers(v: str) -> str:
    from .proxy._header_sets import parse_add_headers

    try:
        return parse_add_headers(v) or ""
    except ValueError as e:
        raise _Bad(str(e)) from None


def _proxy_set_headers(v: str) -> str:
    from .proxy._header_sets import PROXY_SET_HEADERS, parse_add_headers

    try:
        return parse_add_headers(v, PROXY_SET_HEADERS) or ""
    except ValueError as e:
        raise _Bad(str(e)) from None


def _checked(module: str, name: str) -> Callable[[str], Any]:
    """A key's parser that is ``module``'s function ``name`` (imported at the key's first
    value: the reader loads no proxy or TLS module a ConfigMap does not need); its
    ValueError is the key's error."""
    def parse(v: str) -> Any:
        import importlib

        try:
            return getattr(importlib.import_module(module, __package__), name)(v)
        except ValueError as e:
            raise _Bad(str(e)) from None
    return parse


def _global_auth(check_name: str) -> Callable[[str], Any]:
    """A ``global-auth-*`` key's parser (proxy/_globalauth.py ``check_*``): "" unset, an
    invalid value an error (ingress-nginx warns "Global auth location denied" and runs
    without it, or with the key's default)."""
    check = _checked(".proxy._globalauth", check_name)

    def parse(v: str) -> Any:
        if not v.strip():
            return () if check_name == "check_response_headers" else ""
        return check(v)
    return parse


def _gzip_level(v: str) -> int:
    # nginx's gzip_comp_level bounds: "must be between 1 and 9" (nginx -t fails, nothing of
    # the ConfigMap applies).
    level = _int(v)
    if not 1 <= level <= 9:
        raise _Bad("must be from 1 to 9 (nginx's gzip_comp_level)")
    return level


def _brotli_level(v: str) -> int:
    # google/ngx_brotli's brotli_comp_level bounds: BROTLI_MIN_QUALITY (0) to
    # BROTLI_MAX_QUALITY (11) (nginx -t fails, nothing of the ConfigMap applies).
    level = _int(v)
    if not 0 <= level <= 11:
        raise _Bad("must be from 0 to 11 (ngx_brotli's brotli_comp_level)")
    return level


def _gzip_types(v: str) -> str:
    # Written as is ("gzip_types {{ $cfg.GzipTypes }};"): an empty value is a directive
    # without arguments, which nginx -t refuses.
    if not v.split():
        raise _Bad('must name MIME types, such as "text/plain application/json" ("*": any)')
    if not v.isascii():
        raise _Bad("must be MIME types (ASCII)")
    return " ".join(v.split())


def _gzip_disable(v: str) -> str:
    # 'gzip_disable "{{ $cfg.GzipDisable }}";': one case-insensitive PCRE regex on the
    # User-Agent, or nginx's word "msie6" (proxy/_gzip.py).
    from .proxy._gzip import check_disable

    try:
        check_disable(v)
    except ValueError as e:
        raise _Bad(str(e)) from None
    return v


def _no_auth_locations(v: str) -> tuple[str, ...]:
    from .proxy._globalauth import split_locations

    return split_locations(v)


def _signin_param(v: str) -> str:
    return _global_auth("check_signin_param")(v) or "rd"


def _response_rewrite(key: str) -> Callable[[str], str]:
    def parse(v: str) -> str:
        from .proxy._response_head import parse_cookie_pair, parse_redirect, parse_redirect_word

        try:
            if key.startswith("proxy-cookie-"):
                parse_cookie_pair(v, key)
            elif key == "proxy-redirect-from":
                parse_redirect(v, "/")  # (a regex "~" is refused whatever the -to)
            else:
                parse_redirect_word(v, key)
        except ValueError as e:
            raise _Bad(str(e)) from None
        return v.strip()
    return parse


def _log_format(v: str) -> str:
    # Written into nginx.tmpl's "log_format upstreaminfo ... '{{ $cfg.LogFormatUpstream }}';":
    # a variable nginx does not know fails nginx -t, and ingress-nginx keeps its previous
    # configuration (_logformat.compile_format).
    if not v.strip():
        raise _Bad("must not be empty (nginx would write an empty line per request)")
    from ._logformat import compile_format

    try:
        compile_format(v)
    except ValueError as e:
        raise _Bad(str(e)) from None
    return v


def _map_list(split_name: str, field: str) -> Callable[[str], tuple[str, ...]]:
    """``block-user-agents`` / ``block-referers`` / ``skip-access-log-urls``: nginx ``map``
    keys (proxy/_block.py), split as configmap.go does; an item nginx refuses is an error."""
    def parse(v: str) -> tuple[str, ...]:
        from .proxy import _block

        items: tuple[str, ...] = getattr(_block, split_name)(v)
        try:
            _block.compile_map(items, field)
        except ValueError as e:
            raise _Bad(str(e).split(": ", 1)[1]) from None
        return items
    return parse


# Key -> parser; the field is the key in snake_case (ProxySettings' naming rule).
_PARSERS: dict[str, Callable[[str], Any]] = {
    "use-forwarded-headers": _bool,
    "compute-full-forwarded-for": _bool,
    "forwarded-for-header": _header_name,
    "proxy-real-ip-cidr": _cidrs,
    "enable-real-ip": _bool,
    "generate-request-id": _bool,
    "proxy-add-original-uri-header": _bool,
    "ssl-redirect": _bool,
    "force-ssl-redirect": _bool,
    # defaults.Backend: "PreserveTrailingSlash bool `json:\"preserve-trailing-slash\"`" (the
    # ssl-redirect keeps the final "/" of the request target; the annotation's default).
    "preserve-trailing-slash": _bool,
    "hsts": _bool,
    "hsts-max-age": _decimal,
    "hsts-include-subdomains": _bool,
    "hsts-preload": _bool,
    "proxy-connect-timeout": _timeout,
    "proxy-read-timeout": _timeout,
    "proxy-send-timeout": _timeout,
    "proxy-next-upstream": _next_upstream,
    "proxy-next-upstream-tries": _int,
    # config.go: "ProxyNextUpstreamTimeout int `json:\"proxy-next-upstream-timeout\"`"
    # (seconds, like the other timeout keys; 0 = no limit).
    "proxy-next-upstream-timeout": _seconds,
    # The stream block's keys (TCP services, ingresslib._tcp_proxy): config.go
    # "ProxyStreamTimeout string" "600s" and "ProxyStreamNextUpstreamTimeout string" "600s"
    # (nginx times, written as is into proxy_timeout / proxy_next_upstream_timeout),
    # "ProxyStreamNextUpstream bool" true, "ProxyStreamNextUpstreamTries int" 3.
    "proxy-stream-timeout": _nginx_time,
    "proxy-stream-next-upstream": _bool,
    "proxy-stream-next-upstream-timeout": _nginx_time,
    "proxy-stream-next-upstream-tries": _int,
    # config.go: "RetryNonIdempotent bool `json:\"retry-non-idempotent\"`".
    "retry-non-idempotent": _bool,
    "proxy-body-size": _size,
    "keep-alive": _nginx_seconds,
    "keep-alive-requests": _keepalive_requests,
    "upstream-keepalive-connections": _int,
    "upstream-keepalive-timeout": _nginx_seconds,
    "upstream-keepalive-time": _nginx_time,
    "upstream-keepalive-requests": _int,
    "client-header-timeout": _timeout,
    "client-body-timeout": _timeout,
    "enable-underscores-in-headers": _bool,
    "ignore-invalid-headers": _bool,
    "http-redirect-code": _redirect_code,
    # Rate limits (proxy/_ratelimit.py): the status of a refused request.
    "limit-req-status-code": _limit_status,
    "limit-conn-status-code": _limit_status,
    # config.go "GlobalRateLimitStatucCode int `json:\"global-rate-limit-status-code\"`"
    # (429): global_throttle.lua's "ngx_exit(config.status_code)" (proxy/_globalratelimit.py).
    "global-rate-limit-status-code": _limit_status,
    # defaults.Backend "LimitRate int `json:\"limit-rate\"`" / "LimitRateAfter int
    # `json:\"limit-rate-after\"`" (kilobytes; the annotations' defaults:
    # proxy/_bandwidth.py).
    "limit-rate": _int,
    "limit-rate-after": _int,
    # defaults.Backend "ProxyHTTPVersion string `json:\"proxy-http-version\"`" ("1.1") and
    # "UsePortInRedirects bool `json:\"use-port-in-redirects\"`" (false): the annotations'
    # defaults (proxy/_location_extras.py).
    "proxy-http-version": _http_version,
    "use-port-in-redirects": _bool,
    # defaults.Backend "ProxyRequestBuffering string `json:\"proxy-request-buffering\"`"
    # ("on" there, "off" here: README's divergences), written as "proxy_request_buffering
    # {{ $location.Proxy.RequestBuffering }};", which nginx refuses past on/off
    # (proxy/_request_buffer.py).
    "proxy-request-buffering": _on_off,
    # config.go "ProxyBuffering string", "ProxyBufferSize string", "ProxyBuffersNumber int",
    # "ProxyMaxTempFileSize string" (defaults "off", "4k", 4, "1024m"): the annotations'
    # defaults (proxy/_response_buffer.py).
    "proxy-buffering": _on_off,
    "proxy-buffer-size": _buffer_size,
    "proxy-buffers-number": _buffers_number,
    "proxy-max-temp-file-size": _size,
    # Access control (proxy/_access.py): config.go "WhitelistSourceRange []string
    # `json:\"whitelist-source-range\"`" and "DenylistSourceRange" (the defaults of the
    # annotations), "BlockCIDRs []string `json:\"block-cidrs\"`" (refused everywhere).
    "whitelist-source-range": _source_ranges,
    "denylist-source-range": _source_ranges,
    "block-cidrs": _source_ranges,
    # ingresslib's own key: serve (with a warning) the routes of Ingresses whose access
    # annotations ingresslib cannot enforce, instead of answering 503 (ProxySettings).
    "deny-unenforced-access-annotations": _bool,
    # config.go "GlobalAllowedResponseHeaders string `json:\"global-allowed-response-headers\"`":
    # the names a custom-headers ConfigMap may set (proxy/_header_sets.py).
    "global-allowed-response-headers": _allowed_headers,
    # config.go "AddHeaders string `json:\"add-headers\"`" / "HideHeaders []string
    # `json:\"hide-headers\"`" (proxy/_header_sets.py).
    "add-headers": _add_headers,
    "hide-headers": _allowed_headers,
    # config.go "ProxySetHeaders string `json:\"proxy-set-headers\"`".
    "proxy-set-headers": _proxy_set_headers,
    # config.go "UseProxyProtocol bool `json:\"use-proxy-protocol\"`" and
    # "ProxyProtocolHeaderTimeout time.Duration" (proxy/_proxy_protocol.py).
    "use-proxy-protocol": _bool,
    "proxy-protocol-header-timeout": _go_duration,
    # config.go "ProxySSLLocationOnly bool `json:\"proxy-ssl-location-only\"`"
    # (proxy/_proxy_ssl.py: no server-level proxy_ssl_*).
    "proxy-ssl-location-only": _bool,
    # config.go SSLProtocols, SSLCiphers, SSLECDHCurve, SSLSessionCache(Size), SSLSessionTimeout,
    # SSLSessionTickets, SSLRejectHandshake (nginx.tmpl's ssl_* directives: _tls_settings.py).
    "ssl-protocols": _checked("._tls_settings", "parse_protocols"),
    "ssl-ciphers": _checked("._tls_settings", "parse_ciphers"),
    "ssl-ecdh-curve": _checked("._tls_settings", "parse_ecdh_curve"),
    "ssl-session-cache": _bool,
    "ssl-session-cache-size": _size,
    "ssl-session-timeout": _nginx_time,
    "ssl-session-tickets": _bool,
    "ssl-reject-handshake": _bool,
    # config.go "SSLDHParam string `json:\"ssl-dh-param\"`": a Secret's "namespace/name".
    "ssl-dh-param": _checked("._tls_settings", "parse_dh_param"),
    # configmap.go ReadConfig's global-auth-* keys and config.go "NoAuthLocations string
    # `json:\"no-auth-locations\"`" (proxy/_globalauth.py).
    "global-auth-url": _global_auth("check_url"),
    "global-auth-method": _global_auth("check_method"),
    "global-auth-signin": _global_auth("check_signin"),
    "global-auth-signin-redirect-param": _signin_param,
    "global-auth-response-headers": _global_auth("check_response_headers"),
    "global-auth-request-redirect": _global_auth("check_request_redirect"),
    "global-auth-always-set-cookie": _bool,
    "global-auth-cache-key": _global_auth("check_cache_key"),
    "global-auth-cache-duration": _global_auth("check_cache_duration"),
    "no-auth-locations": _no_auth_locations,
    # config.go "NoTLSRedirectLocations string `json:\"no-tls-redirect-locations\"`", read
    # by isLocationInLocationList as no-auth-locations is.
    "no-tls-redirect-locations": _no_auth_locations,
    # defaults.Backend "ProxyRedirectFrom string `json:\"proxy-redirect-from\"`" and
    # ProxyRedirectTo, ProxyCookieDomain, ProxyCookiePath: the annotations' defaults
    # (proxy/_response_head.py; a value nginx -t refuses is an error here).
    "proxy-redirect-from": _response_rewrite("proxy-redirect-from"),
    "proxy-redirect-to": _response_rewrite("proxy-redirect-to"),
    "proxy-cookie-domain": _response_rewrite("proxy-cookie-domain"),
    "proxy-cookie-path": _response_rewrite("proxy-cookie-path"),
    # config.go "UseGzip bool `json:\"use-gzip\"`", "GzipLevel int", "GzipMinLength int",
    # "GzipTypes string", "GzipDisable string" (nginx.tmpl's gzip block; proxy/_gzip.py).
    "use-gzip": _bool,
    "gzip-level": _gzip_level,
    "gzip-min-length": _int,
    "gzip-types": _gzip_types,
    "gzip-disable": _gzip_disable,
    # config.go "EnableBrotli bool `json:\"enable-brotli\"`", "BrotliLevel int",
    # "BrotliMinLength int", "BrotliTypes string" (nginx.tmpl's brotli block;
    # proxy/_brotli.py). brotli-types is written as gzip-types is.
    "enable-brotli": _bool,
    "brotli-level": _brotli_level,
    "brotli-min-length": _int,
    "brotli-types": _gzip_types,
    # config.go "BlockUserAgents []string `json:\"block-user-agents\"`" and "BlockReferers"
    # (configmap.go: splitAndTrimSpace(val, ",")), "SkipAccessLogURLs []string
    # `json:\"skip-access-log-urls\"`" (strings.Split(val, ",")): nginx map keys
    # (proxy/_block.py); "DisableAccessLog bool `json:\"disable-access-log\"`".
    "block-user-agents": _map_list("split_block_list", "block_user_agents"),
    "block-referers": _map_list("split_block_list", "block_referers"),
    "skip-access-log-urls": _map_list("split_skip_urls", "skip_access_log_urls"),
    "disable-access-log": _bool,
    # config.go "ShowServerTokens bool `json:\"server-tokens\"`" and "AllowBackendServerHeader
    # bool `json:\"allow-backend-server-header\"`" (proxy/_headers.py: nginx.tmpl's
    # server_tokens / more_clear_headers Server / proxy_pass_header Server).
    "server-tokens": _bool,
    "allow-backend-server-header": _bool,
    # config.go "LogFormatUpstream string `json:\"log-format-upstream\"`",
    # "LogFormatEscapeJSON bool", "LogFormatEscapeNone bool",
    # "EnableAccessLogForDefaultBackend bool" (_logformat.py, _accesslog.py).
    "log-format-upstream": _log_format,
    "log-format-escape-json": _bool,
    "log-format-escape-none": _bool,
    "enable-access-log-for-default-backend": _bool,
}

#: Keys with their own handling (not a 1:1 ProxySettings field).
_SPECIAL = {"large-client-header-buffers", "load-balance", "custom-http-errors",
            "service-upstream", "proxy-stream-responses", "worker-shutdown-timeout",
            "max-worker-open-files", "max-worker-connections"}

#: Every key this module understands.
KNOWN_KEYS = frozenset(_PARSERS) | _SPECIAL


#: ingress-nginx's ConfigMap keys, understood here or not: the json tags of its
#: internal/ingress/controller/config/config.go (``Configuration`` and ``defaults.Backend``),
#: the ``global-auth-*`` keys, and keys of older releases (configmap.md: opentracing, zipkin,
#: jaeger, datadog, use-geoip). Only used so that a misspelt key (``use-forwarded-header``)
#: gets "did you mean use-forwarded-headers?" and a real key ingresslib ignores
#: (``proxy-busy-buffers-size``) gets no false guess.
_INGRESS_NGINX_KEYS = KNOWN_KEYS | frozenset({
    "allow-cross-namespace-resources", "enable-auth-access-log", "disable-http-access-log",
    "disable-stream-access-log", "otel-max-queuesize", "otel-schedule-delay-millis",
    "otel-max-export-batch-size", "bind-address-ipv4", "bind-address-ipv6",
    "proxy-redirect-to", "global-external-auth",
    "add-headers", "allow-backend-server-header", "allow-snippet-annotations",
    "annotations-risk-level", "annotation-value-word-blocklist", "hide-headers",
    "access-log-params", "access-log-path", "http-access-log-path", "stream-access-log-path",
    "enable-access-log-for-default-backend", "error-log-path", "enable-modsecurity",
    "modsecurity-snippet", "enable-owasp-modsecurity-crs", "enable-dynamic-tls-records",
    "client-header-buffer-size", "client-body-buffer-size", "disable-access-log",
    "disable-ipv6", "disable-ipv6-dns", "error-log-level", "http2-max-field-size",
    "http2-max-header-size", "http2-max-requests", "http2-max-concurrent-streams",
    "log-format-escape-none", "log-format-escape-json", "log-format-upstream",
    "log-format-stream", "enable-multi-accept", "map-hash-bucket-size", "nginx-status-ipv4-whitelist",
    "nginx-status-ipv6-whitelist", "proxy-set-headers", "server-name-hash-max-size",
    "server-name-hash-bucket-size", "proxy-headers-hash-max-size",
    "proxy-headers-hash-bucket-size", "plugins", "reuse-port", "server-tokens",
    "ssl-ciphers", "ssl-ecdh-curve", "ssl-dh-param", "ssl-protocols", "ssl-early-data",
    "ssl-session-cache", "ssl-session-cache-size", "ssl-session-tickets",
    "ssl-session-ticket-key", "ssl-session-timeout", "ssl-buffer-size", "ssl-reject-handshake",
    "use-proxy-protocol", "proxy-protocol-header-timeout", "enable-aio-write", "use-gzip",
    "use-geoip", "use-geoip2", "geoip2-autoreload-in-minutes", "enable-brotli",
    "brotli-level", "brotli-min-length", "brotli-types", "use-http2", "gzip-disable",
    "gzip-level", "gzip-min-length", "gzip-types", "worker-processes", "worker-cpu-affinity",
    "variables-hash-bucket-size", "variables-hash-max-size",
    "limit-conn-zone-variable", "proxy-stream-timeout", "proxy-stream-next-upstream",
    "proxy-stream-next-upstream-timeout", "proxy-stream-next-upstream-tries",
    "proxy-stream-responses", "bind-address", "enable-opentracing",
    "opentracing-operation-name", "opentracing-location-operation-name",
    "opentracing-trust-incoming-span", "enable-opentelemetry",
    "opentelemetry-trust-incoming-span", "opentelemetry-operation-name",
    "opentelemetry-config", "otlp-collector-host", "otlp-collector-port",
    "otel-service-name", "otel-sampler", "otel-sampler-ratio", "otel-sampler-parent-based",
    "zipkin-collector-host", "zipkin-collector-port", "zipkin-service-name",
    "zipkin-sample-rate", "jaeger-collector-host", "jaeger-collector-port",
    "jaeger-endpoint", "jaeger-service-name", "jaeger-propagation-format",
    "jaeger-sampler-type", "jaeger-sampler-param", "jaeger-sampler-host",
    "jaeger-sampler-port", "jaeger-trace-context-header-name",
    "jaeger-debug-header", "jaeger-baggage-header", "jaeger-trace-baggage-header-prefix",
    "datadog-collector-host", "datadog-collector-port", "datadog-service-name",
    "datadog-environment", "datadog-operation-name-override", "datadog-priority-sampling",
    "datadog-sample-rate", "main-snippet", "http-snippet", "server-snippet",
    "stream-snippet", "location-snippet", "custom-http-errors", "proxy-buffering",
    "proxy-buffers-number", "proxy-buffer-size", "proxy-busy-buffers-size",
    "proxy-cookie-path", "proxy-cookie-domain", "proxy-redirect-from",
    "proxy-request-buffering", "proxy-max-temp-file-size", "proxy-http-version",
    "proxy-ssl-location-only", "default-type", "skip-access-log-urls", "limit-rate",
    "limit-rate-after", "lua-shared-dicts", "limit-req-status-code",
    "limit-conn-status-code", "enable-syslog", "syslog-host", "syslog-port",
    "no-tls-redirect-locations", "no-auth-locations", "global-auth-url",
    "global-auth-method", "global-auth-signin", "global-auth-signin-redirect-param",
    "global-auth-response-headers", "global-auth-request-redirect", "global-auth-snippet",
    "global-auth-cache-key", "global-auth-cache-duration", "global-auth-always-set-cookie",
    "global-rate-limit-memcached-host",
    "global-rate-limit-memcached-port", "global-rate-limit-memcached-connect-timeout",
    "global-rate-limit-memcached-max-idle-timeout", "global-rate-limit-memcached-pool-size",
    "global-rate-limit-status-code", "service-upstream", "debug-connections",
    "strict-validate-path-type",
    "block-user-agents", "block-referers", "upstream-keepalive-time", "enable-ocsp",
    "enable-real-ip", "hsts", "keep-alive", "disable-proxy-intercept-errors",
})
_SORTED_KNOWN_KEYS = sorted(KNOWN_KEYS)


_ANNOTATION_PREFIX = "nginx.ingress.kubernetes.io/"


def _did_you_mean(key: str) -> str:
    """``; did you mean KEY?`` when ``key`` is not an ingress-nginx key and one ingresslib
    reads is close to it (a typo), else ""."""
    if key in _INGRESS_NGINX_KEYS:
        return ""
    # An Ingress annotation pasted into the ConfigMap (``nginx.ingress.kubernetes.io/
    # proxy-body-size``): ingress-nginx reads ConfigMap keys without the prefix and ignores
    # this one, so the setting the operator meant is silently the default.
    bare = key[len(_ANNOTATION_PREFIX):] if key.startswith(_ANNOTATION_PREFIX) else ""
    if bare in _INGRESS_NGINX_KEYS:
        return f"; did you mean {bare}? (ConfigMap keys take no {_ANNOTATION_PREFIX} prefix)"
    # Any case of a key names it (``HSTS``: keys are case-sensitive); a guess of opposite
    # meaning, a deny list for an allow list, is never offered (close_name).
    lowered = key.lower()
    if lowered in _INGRESS_NGINX_KEYS:
        return f"; did you mean {lowered}?"
    close = close_name(key, KNOWN_KEYS, _SORTED_KNOWN_KEYS)
    return f"; did you mean {close}?" if close is not None else ""


def parse_config_data(
    data: Mapping[str, Any],
    *,
    object: str = "ConfigMap",
    base: ProxySettings | None = None,
) -> ServerConfig:
    """Parse a ConfigMap's ``data`` (ingress-nginx keys, string values); raises
    :class:`ingresslib.ValidationError` listing every bad value. ``base``: the settings the
    keys change (default ``ProxySettings()``), as ``dataclasses.replace(base, ...)`` does:
    ``large-client-header-buffers`` derives the three head limits unless ``base`` was given
    them explicitly; ``object``: the name errors and warnings give the ConfigMap.

    >>> cfg = parse_config_data({"proxy-body-size": "8m", "hsts": "false", "foo": "1"})
    >>> cfg.settings.proxy_body_size, cfg.settings.hsts
    (8388608, False)
    >>> cfg.warnings
    ('ConfigMap: data.foo: unknown key, ignored',)

    A value that is no string (``{"hsts": False}``) is an error, as it is in a ConfigMap file
    (the API server holds ``data`` as ``map[string]string``); None is Go's "" as there.
    """
    _check_data(data, object)
    known = ProxySettings.field_names()
    changes: dict[str, Any] = {}
    errors: list[FieldError] = []
    warnings: list[str] = []
    load_balance: str | None = None
    service_upstream = False
    stream_responses = 1
    shutdown_timeout: float | None = None
    worker_limits: dict[str, int] = {}
    for key in sorted(data):
        raw = data[key]
        value = "" if raw is None else raw
        field = f"data.{key}"
        try:
            if key == "large-client-header-buffers":
                # The value only: ProxySettings derives the three limits from it, marked as
                # derived, so that a replace() of these settings with another value derives them
                # again (given as ints, they stayed this value's), and limits a ``base`` was
                # given explicitly win, as over a ProxyServer keyword argument.
                name = "large_client_header_buffers"
                changes[name] = _header_buffers(value)[name]
            elif key == "load-balance":
                load_balance = _load_balance(value)
            elif key == "service-upstream":
                # The router's default, as load-balance (a ParseBool spelling, as the other
                # bool keys: mapstructure's WeaklyTypedInput).
                service_upstream = _bool(value)
            elif key == "proxy-stream-responses":
                # UDP services' (ServerConfig.proxy_stream_responses), not the proxy's.
                stream_responses = _int(value)
            elif key == "worker-shutdown-timeout":
                # serve's graceful stop (ServerConfig.worker_shutdown_timeout), an nginx time.
                shutdown_timeout = _nginx_time(value)
                if shutdown_timeout == 0:
                    # nginx: no bound at all (no shutdown timer), which serve does not offer.
                    shutdown_timeout = None
                    warnings.append(f"{object}: {field}: 0 (nginx: no bound) is not supported; "
                                    "read as not set (--shutdown-timeout, else 10 s)")
            elif key in ("max-worker-open-files", "max-worker-connections"):
                # serve's process limits (ingresslib._serve_limits), 0: computed.
                worker_limits[key.replace("-", "_")] = _int(value)
            elif key == "custom-http-errors":
                # configmap.go ReadConfig: items Atoi refuses are skipped with a warning
                # (proxy/_error_pages.py parse_global_custom_http_errors).
                from .proxy._error_pages import parse_global_custom_http_errors
                try:
                    codes, skipped = parse_global_custom_http_errors(value)
                except ValueError as e:
                    raise _Bad(str(e)) from None
                warnings.extend(f"{object}: {field}: {w}" for w in skipped)
                changes["custom_http_errors"] = codes
                if codes:
                    warnings.append(
                        f"{object}: {field}: ingresslib has no controller default backend: only "
                        "the locations of Ingresses with a default-backend annotation intercept "
                        "these statuses (that Service answers); the others pass the upstream's "
                        "answer")
            elif key in _PARSERS:
                name = key.replace("-", "_")
                assert name in known, name  # ProxySettings' naming rule
                changes[name] = _PARSERS[key](value)
                if key == "proxy-request-buffering" and changes[name] == "off":
                    # Given "off": nginx's (no retry once a body still arriving went
                    # upstream), not ingresslib's default "off" (proxy/_request_buffer.py).
                    changes["replay_streamed_body"] = False
            elif key in _INGRESS_NGINX_KEYS:
                # A real ingress-nginx key: "unknown" would read as a typo.
                warnings.append(f"{object}: {field}: an ingress-nginx key ingresslib does not "
                                "implement, ignored")
            else:
                warnings.append(f"{object}: {field}: unknown key, ignored{_did_you_mean(key)}")
        except _Bad as e:
            errors.append(FieldError(object, field, "Invalid value", str(e), value, True))
    if errors:
        raise ValidationError(errors)
    settings = dataclasses.replace(base or ProxySettings(), **changes)
    if any(key.startswith("ssl-") for key in data):
        from ._tls_settings import config_warnings
        warnings.extend(config_warnings(settings, data, object))
    if not settings.global_auth_url:
        # configmap.go reads them all the same; without global-auth-url nothing uses them.
        warnings.extend(f"{object}: data.{key}: has no effect without global-auth-url"
                        for key in sorted(data) if key.startswith("global-auth-")
                        and key in _PARSERS and key != "global-auth-url")
    if not settings.use_gzip:
        # nginx.tmpl writes the gzip block only "{{ if $cfg.UseGzip }}".
        warnings.extend(f"{object}: data.{key}: has no effect without use-gzip"
                        for key in sorted(data) if key.startswith("gzip-"))
    if not settings.enable_brotli:
        # nginx.tmpl writes the brotli block only "{{ if $cfg.EnableBrotli }}".
        warnings.extend(f"{object}: data.{key}: has no effect without enable-brotli"
                        for key in sorted(data) if key.startswith("brotli-"))
    elif "enable-brotli" in data:
        from .proxy._brotli import unavailable as brotli_unavailable
        why = brotli_unavailable()  # (not installed, or a 'brotli' module that does not work)
        if why is not None:
            warnings.append(f"{object}: data.enable-brotli: {why}")
    if changes.get("allow_backend_server_header") is True and not settings.server_tokens:
        # nginx.tmpl: "{{ if not $cfg.ShowServerTokens }} more_clear_headers Server;" clears
        # the Server header proxy_pass_header passed (kubernetes/ingress-nginx#6733).
        warnings.append(f"{object}: data.allow-backend-server-header: has no effect without "
                        'server-tokens: "true" (ingress-nginx clears every Server header '
                        "otherwise: more_clear_headers Server)")
    if not settings.proxy_real_ip_cidr and "proxy-real-ip-cidr" not in data:
        # ingress-nginx trusts every peer unless told (configmap.go ReadConfig: no
        # proxy-real-ip-cidr -> "0.0.0.0/0", written as set_real_ip_from); ingresslib trusts
        # none (SEMANTICS §9). A ConfigMap moved over with the switch on and no list had the
        # switch do nothing, silently: every client was its load balancer's address, for
        # whitelist-source-range and the logs alike.
        for key in ("use-forwarded-headers", "enable-real-ip"):
            if changes.get(key.replace("-", "_")) is True:
                warnings.append(
                    f"{object}: data.{key}: on, but no proxy-real-ip-cidr: ingresslib trusts no "
                    "peer's forwarded headers unless listed there (ingress-nginx's default is "
                    '"0.0.0.0/0"), so none are read; set proxy-real-ip-cidr to the addresses '
                    "of the proxies in front")
                break
        if changes.get("use_proxy_protocol") is True:
            # The same trust for the PROXY protocol header (nginx.tmpl's set_real_ip_from for
            # real_ip_header proxy_protocol): read, its address not used.
            warnings.append(
                f"{object}: data.use-proxy-protocol: on, but no proxy-real-ip-cidr: ingresslib "
                "uses the PROXY protocol header's client address only from the peers listed "
                'there (ingress-nginx\'s default is "0.0.0.0/0"), so the headers are read and '
                "every client is its load balancer's address; set proxy-real-ip-cidr to the "
                "addresses of the load balancers in front")
    if "log-format-upstream" in data:
        from ._logformat import unavailable as unset_variables
        missing = unset_variables(settings.log_format_upstream)
        if missing:
            warnings.append(
                f"{object}: data.log-format-upstream: " + ", ".join(f"${m}" for m in missing)
                + ": not known to ingresslib's request record, logged as unset (\"-\", empty "
                "with log-format-escape-json/-none)")
    return ServerConfig(settings=settings, load_balance=load_balance, warnings=tuple(warnings),
                        service_upstream=service_upstream,
                        proxy_stream_responses=stream_responses,
                        worker_shutdown_timeout=shutdown_timeout, **worker_limits)


#: Go's name of a JSON type in the API server's words ("json: cannot unmarshal bool into Go
#: struct field ConfigMap.data of type string"), by JSON's name (``_decode._jtype``).
_GO_TYPE = {"boolean": "bool", "integer": "number", "number": "number"}


def _type_names(raw: Any) -> tuple[str, str, bool]:
    """JSON's name of the type of a value where a ConfigMap holds a string or a map, as the
    manifests' decoder names it (``_decode._jtype``: a tuple is an array, any Mapping an
    object, never a Python type's name), Go's, and whether it is a scalar."""
    json_type = _jtype(raw)
    return json_type, _GO_TYPE.get(json_type, json_type), json_type not in ("array", "object")


def _not_a_string(where: str, key: Any, raw: Any) -> FieldError:
    json_type, go_type, scalar = _type_names(raw)
    # The way out: quotes for a scalar YAML typed (``true``, ``1``); a YAML list quoted would
    # be the text "['10.0.0.0/8', ...]": ingress-nginx's list values are one comma-separated
    # string (``proxy-real-ip-cidr: "10.0.0.0/8,192.168.0.0/16"``). A map has no string form.
    hint = ("; quote the value" if scalar else
            "; write the items as one comma-separated string" if json_type == "array" else "")
    return FieldError(
        where, f"data.{key}", "Invalid value",
        f"expected string, got {json_type} (kubectl apply: json: cannot unmarshal {go_type} "
        f"into Go struct field ConfigMap.data of type string){hint}",
        raw if scalar else None, scalar)


def _check_data(data: object, where: str) -> None:
    """Refuse what ``parse_config_data`` cannot read as a ConfigMap's ``data``: no mapping
    (TypeError; a whole ConfigMap object is named so), a key or value that is no string
    (ValidationError listing each, as :func:`parse_configmap` lists a file's). Read before
    the values: ``str(False)`` was the string "False", read as the setting the caller never
    spelled, and an int key failed as "'int' object has no attribute 'lower'"."""
    if not isinstance(data, Mapping):
        hint = " (a ConfigMap without data: pass {})" if data is None else ""
        raise TypeError("parse_config_data takes a ConfigMap's data, a mapping of str to str "
                        f"(ingress-nginx keys, string values), not {type(data).__name__} "
                        f"{short_repr(data)}{hint}")
    if data.get("kind") == "ConfigMap" and any(isinstance(data.get(k), Mapping)
                                               for k in ("data", "metadata")):
        # The whole object (its metadata/data are maps, never a ConfigMap value): say so
        # rather than "data.data: expected string".
        raise TypeError("parse_config_data takes a ConfigMap's data, not the whole ConfigMap "
                        "object: pass its data (parse_config_data(configmap['data'])), or the "
                        "file to ingresslib.proxy.load_config(path)")
    errs = [FieldError(where, f"data[{key!r}]", "Invalid value",
                       f"expected a string key, got {_jtype(key)}; ConfigMap data keys "
                       "are strings", key, True)
            for key in sorted(data, key=str) if not isinstance(key, str)]
    errs.extend(_not_a_string(where, key, data[key]) for key in sorted(data, key=str)
                if data[key] is not None and not isinstance(data[key], str))
    if errs:
        raise ValidationError(errs)


def parse_configmap(obj: Mapping[str, Any], *, base: ProxySettings | None = None) -> ServerConfig:
    """Parse a whole ``v1`` ConfigMap object (a dict as read from YAML/JSON).

    Its ``data`` values must be strings (or null, Go's ""), as the API server decodes them: an
    unquoted ``true``, ``yes``, ``on`` or ``1`` in YAML is a boolean or a number there, and
    ``kubectl apply`` of the ConfigMap fails, so it is an error here too rather than the
    setting it would spell as a string."""
    where = f"ConfigMap {_object_name(obj)}"
    # The fields besides data, type-checked as the manifests' decoder checks an object's
    # (the API server's decoder refuses the whole object for any of them): a metadata that
    # is no object was an AttributeError, and a number for its name, ``immutable: "yes"`` or
    # a list for binaryData loaded where kubectl apply refuses the ConfigMap.
    dec = _Dec(where)
    _meta(dec, obj)
    _decode_bool(dec, obj.get("immutable"), "immutable")
    _str_map(dec, obj.get("binaryData"), "binaryData")
    errs = list(dec.errors)
    if obj.get("kind") != "ConfigMap":
        errs.append(FieldError(where, "kind", "Unsupported value", 'must be "ConfigMap"',
                               obj.get("kind"), True))
    if obj.get("apiVersion") != "v1":
        errs.append(FieldError(where, "apiVersion", "Unsupported value", 'must be "v1"',
                               obj.get("apiVersion"), True))
    data = obj.get("data")
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        # As the manifests' wrong types say it (a YAML list, ``!!omap`` or ``!!pairs`` alike:
        # sequences, as go-yaml reads them), not the Python type's name ("list").
        json_type, go_type, scalar = _type_names(data)
        errs.append(FieldError(
            where, "data", "Invalid value",
            f"expected object, got {json_type} (kubectl apply: json: cannot unmarshal {go_type} "
            "into Go struct field ConfigMap.data of type map[string]string); data is a map of "
            "ingress-nginx keys to string values", data if scalar else None, scalar))
        data = {}
    # (sorted by text: a caller's dict may mix key types, which ``<`` cannot order)
    errs.extend(_not_a_string(where, key, data[key]) for key in sorted(data, key=str)
                if data[key] is not None and not isinstance(data[key], str))
    if errs:
        raise ValidationError(errs)
    cfg = parse_config_data(data, object=where, base=base)
    # Read, never silently dropped: a field a ConfigMap has not (``Data:``, ``date:``: every
    # setting was silently the default, where kubectl apply's strict field validation refuses
    # the object) and binaryData (ingress-nginx reads ``data`` only; the settings written
    # there were silently not applied, as they are not there either).
    extra = [f'{where}: unknown field "{key}", ignored; the settings go in data'
             for key in sorted(obj, key=str) if key not in _CONFIGMAP_FIELDS]
    extra.extend(f'{where}: unknown field "{path}", ignored' for path in dec.unknown)
    binary = obj.get("binaryData")
    if isinstance(binary, Mapping):
        extra.extend(f"{where}: binaryData.{key}: not read (ingress-nginx reads data only), "
                     "ignored" for key in sorted(binary, key=str))
    if extra:
        cfg = dataclasses.replace(cfg, warnings=tuple(extra) + cfg.warnings)
    return cfg


def _object_name(obj: Mapping[str, Any]) -> str:
    """``namespace/name`` of a ConfigMap object for its messages (``default``, ``?`` where one
    is missing or is no string: its metadata's errors say what it is)."""
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    namespace, name = meta.get("namespace"), meta.get("name")
    return (f"{namespace if isinstance(namespace, str) and namespace else 'default'}/"
            f"{name if isinstance(name, str) and name else '?'}")


#: The fields of a v1 ConfigMap (core/v1 types.go ``ConfigMap``: TypeMeta, ObjectMeta, data,
#: binaryData, immutable).
_CONFIGMAP_FIELDS = frozenset({"apiVersion", "kind", "metadata", "data", "binaryData",
                               "immutable"})


def _duplicate_warnings(doc: Mapping[str, Any], found: Mapping[int, Mapping[Any, list[int]]],
                        source: str) -> list[str]:
    """One line per key written twice in a mapping of the ConfigMap ``doc`` (``found``: see
    ``_load.DuplicateKeys``): go-yaml v2 keeps the last value, as kubectl sends it, and the
    API server never sees the first; a ``data`` key or ``data`` itself written twice most
    likely holds a setting that is not the one meant."""
    where = f"ConfigMap {_object_name(doc)}"
    out: list[tuple[int, str]] = []
    stack: list[tuple[Any, str]] = [(doc, "")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, Mapping):
            for key, lines in found.get(id(node), {}).items():
                at = f"line {lines[-1]}: " if lines else ""
                first = f" (first at line {lines[0]})" if lines else ""
                out.append((lines[-1] if lines else 0,
                            f"{source}: {at}{where}: {path}{key}: written twice{first}; the "
                            "last value is used, as kubectl sends it"))
            stack.extend((v, f"{path}{k}.") for k, v in node.items() if isinstance(v, Mapping))
    return [text for _, text in sorted(out)]


def _list_items(docs: list[tuple[Any, dict[int, dict[Any, list[int]]]]], source: str
                ) -> list[tuple[Any, dict[int, dict[Any, list[int]]]]]:
    """``docs`` with each list (``kind: List``, or a kind ending in ``List`` with ``items``, as
    the manifests' Collector reads them) replaced by its items, lists in lists too: kubectl
    apply's FlattenListVisitor (cli-runtime) applies a ConfigMap inside a List as any other.
    An item of a typed list (ConfigMapList) without kind or apiVersion takes the list's, as
    the unstructured decoder sets them.

    An item that is no object refuses the file (``source``), as kubectl refuses it: its
    unstructured decoder reads every item of a list into a map (``decodeToList``: "cannot
    unmarshal number into Go value of type map[string]interface {}"); left out, the file's
    ConfigMap was applied here where kubectl applies nothing."""
    out: list[tuple[Any, dict[int, dict[Any, list[int]]]]] = []
    stack: list[tuple[Any, dict[int, dict[Any, list[int]]], tuple[Any, str] | None, str]] = [
        (doc, found, None, "") for doc, found in reversed(docs)]
    while stack:
        doc, found, of, where = stack.pop()
        if where and not isinstance(doc, Mapping):
            raise ValidationError([FieldError(
                source, where, "Invalid value", f"expected an object, got {_jtype(doc)}")])
        if of is not None and isinstance(doc, Mapping) and not (doc.get("kind")
                                                                and doc.get("apiVersion")):
            copy = {**doc, "kind": doc.get("kind") or of[1],
                    "apiVersion": doc.get("apiVersion") or of[0]}
            if id(doc) in found:  # (keys written twice in it: noted by id)
                found = {**found, id(copy): found[id(doc)]}
            doc = copy
        kind = doc.get("kind") if isinstance(doc, Mapping) else None
        items = doc.get("items") if isinstance(doc, Mapping) else None
        if isinstance(kind, str) and (kind == "List" or kind.endswith("List") and
                                      items is not None) and isinstance(items, list):
            item_of = None if kind == "List" else (doc.get("apiVersion"), kind[: -len("List")])
            inside = f"{where}.items" if where else "items"
            stack.extend((item, found, item_of, f"{inside}[{i}]")
                         for i, item in reversed(list(enumerate(items))))
            continue
        out.append((doc, found))
    return out


def load_config(path: str | Path, *, base: ProxySettings | None = None) -> ServerConfig:
    """Read a ConfigMap manifest (YAML or JSON, one document) from ``path``.

    Read as ``kubectl apply -f`` reads it (as :func:`ingresslib.load_manifests` reads
    manifests: go-yaml v2's plain scalars, so ``yes``/``on`` are booleans and ``12:30`` a
    string, JSON without NaN); every error names the file, and the line where the reader
    stopped. Raises :class:`ingresslib.ValidationError` listing every bad value.

    The result's ``settings`` go to :class:`ProxyServer` (or :class:`Proxy`), its
    ``load_balance`` (when set) to :class:`ingresslib.Router`; its ``warnings`` are for the
    log."""
    from ._load import read_documents

    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        # Told as the manifests' loader tells it (`-f`), not as Python's OSError text.
        raise ValidationError([FieldError(str(p), "", "Not found", "no such file or directory")]
                              ) from None
    except OSError as e:
        raise ValidationError([FieldError(str(p), "", "Invalid value", e.strerror or str(e))]
                              ) from None
    # The manifests' reader decodes the bytes (UTF-8 after a byte order mark or without one,
    # UTF-16 after its mark, as kubectl's unicode.BOMOverride) and places a bad byte at its
    # line and column, as for -f.
    utf16 = raw[:2] in (b"\xff\xfe", b"\xfe\xff")
    docs, errors = read_documents(raw, str(p), is_json=p.suffix == ".json")
    if errors:
        raise ValidationError(errors)
    maps = [(d, found) for d, found in _list_items(docs, str(p))
            if isinstance(d, Mapping) and d.get("kind") == "ConfigMap"]
    if len(maps) != 1:
        # (a file that only starts with the bytes of a UTF-16 byte order mark reads as
        # nonsense: say how it was read)
        how = (" (read as UTF-16, not UTF-8: the file starts with a UTF-16 byte order mark)"
               if utf16 and not maps else "")
        raise ValidationError([FieldError(
            str(p), "", "Invalid value", f"expected one ConfigMap, found {len(maps)}{how}")])
    doc, found = maps[0]
    try:
        cfg = parse_configmap(doc, base=base)
    except ValidationError as e:
        raise ValidationError([dataclasses.replace(err, source=str(p)) for err in e.errors]
                              ) from None
    if found:
        cfg = dataclasses.replace(
            cfg, warnings=tuple(_duplicate_warnings(doc, found, str(p))) + cfg.warnings)
    return cfg
