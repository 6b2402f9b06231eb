"""ingress-nginx's ``log-format-upstream`` (with ``log-format-escape-json`` /
``log-format-escape-none``): an nginx ``log_format`` string, compiled once per settings change
into literal parts and field getters (:func:`compile_format`), written per request from a
:class:`~ingresslib.proxy.RequestRecord` (:meth:`LogFormat.render`).

nginx.tmpl: "log_format upstreaminfo {{ if $cfg.LogFormatEscapeNone }}escape=none {{ else if
$cfg.LogFormatEscapeJSON }}escape=json {{ end }}'{{ $cfg.LogFormatUpstream }}';". nginx's
``ngx_http_log_compile_format`` reads ``$name`` (letters, digits, ``_``; without case) and
``${name}``; an unknown variable fails ``nginx -t`` ("unknown "name" variable") and
ingress-nginx keeps its previous configuration: :func:`compile_format` raises ValueError. So
does a value nginx.tmpl's single quotes cannot hold as written (``_config_args``: a ``'`` that
ends them early, a ``\\`` at the end, 4096 bytes or more).

How a value is written (src/http/modules/ngx_http_log_module.c):

* default (``ngx_http_log_variable``): an unset variable is ``-``; ``"``, ``\\``, bytes below
  0x20 and from 0x7F up are ``\\xHH`` (``ngx_http_log_escape``);
* ``escape=json`` (``ngx_http_log_json_variable``): an unset variable is empty; ``"`` and
  ``\\`` get a backslash, control bytes ``\\n``-style or ``\\u00XX`` (``ngx_escape_json``);
  nginx copies other bytes as they are. Here the line stays ASCII and valid JSON whatever the
  client sent: UTF-8 text is written as ``\\uXXXX`` escapes (the same string once parsed), a
  byte that is no UTF-8 as the text ``\\xHH``;
* ``escape=none`` (``ngx_http_log_unescaped_variable``): an unset variable is empty, the value
  as it is (UTF-8 text as such, a byte that is no UTF-8 as the text ``\\xHH``).

The values nginx's log module writes itself (``ngx_http_log_vars``: ``$status``,
``$time_local``, ``$time_iso8601``, ``$msec``, ``$request_time``, ``$bytes_sent``,
``$body_bytes_sent``, ``$request_length``) are never escaped and never empty.

Request headers (``$http_<name>``: every line of that name, ``", "``-joined, a Cookie's
``"; "``), ``$proxy_add_x_forwarded_for``, ``$scheme``, ``$https`` and ``$server_port`` come
from the record's ``request_headers``, ``scheme`` and ``server_port``. Variables nginx knows
that the request record cannot give (``$server_name``, ``$remote_port``, response headers,
``$cookie_<name>``, ``$arg_<name>``...) are accepted, written as unset, and named once in the
ConfigMap's warnings (:func:`unavailable`).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from typing import Any

__all__ = ["DEFAULT_FORMAT", "LogFormat", "compile_format", "unavailable"]

#: ingress-nginx's default ``log-format-upstream`` (config.go ``logFormatUpstream``).
DEFAULT_FORMAT = (
    '$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent '
    '"$http_referer" "$http_user_agent" $request_length $request_time [$proxy_upstream_name] '
    "[$proxy_alternative_upstream_name] $upstream_addr $upstream_response_length "
    "$upstream_response_time $upstream_status $req_id")

_NAME_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")

#: surrogateescape's stand-ins for bytes 0x80-0xFF that are no UTF-8 -> the text ``\xHH``.
_HEX = {0xDC80 + i: f"\\x{0x80 + i:02X}" for i in range(128)}

# A getter: (record, access_fields dict, now) -> the value (None: unset).
Getter = Callable[[Any, dict[str, Any], float], Any]


def _text(s: str) -> str:
    """The bytes the core holds as latin-1 characters, as the UTF-8 text they spell (bytes
    that are no UTF-8 as ``\\xHH``); a string beyond latin-1 (built by other code) as it is."""
    if s.isascii():
        return s
    try:
        raw = s.encode("latin-1")
    except UnicodeEncodeError:
        return s
    return raw.decode("utf-8", "surrogateescape").translate(_HEX)


def _default(v: object) -> str:
    from ._accesslog import _escape
    return _escape(v)


#: ngx_escape_json (src/core/ngx_string.c): ``"`` and ``\\`` get a backslash, ``\n \r \t
#: \b \f`` their short forms, other bytes below 0x20 ``\u00XX`` (upper-case hex: "*dst++ =
#: (ch < 10) ? ('0' + ch) : ('A' + ch - 10)"); every other ASCII byte (DEL included) as is.
_JSON_ASCII = {c: f"\\u{c:04X}" for c in range(0x20)}
_JSON_ASCII.update({0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0C: "\\f", 0x0D: "\\r",
                    0x22: '\\"', 0x5C: "\\\\"})


def _json(v: object) -> str:
    if v is None:
        return ""
    s = _text(v if type(v) is str else str(v)).translate(_JSON_ASCII)  # the bytes nginx writes
    if s.isascii():
        return s
    # Text beyond ASCII: \uXXXX escapes (nginx copies the bytes; the line stays ASCII here).
    return _NON_ASCII.sub(_json_u, s)


_NON_ASCII = re.compile("[^\x00-\x7f]")


def _json_u(m: re.Match[str]) -> str:
    c = ord(m.group())
    if c > 0xFFFF:  # a UTF-16 surrogate pair, as JSON spells it
        c -= 0x10000
        return f"\\u{0xD800 | c >> 10:04x}\\u{0xDC00 | c & 0x3FF:04x}"
    return f"\\u{c:04x}"


def _none(v: object) -> str:
    if v is None:
        return ""
    return _text(v if type(v) is str else str(v))


_ESCAPES: dict[str, Callable[[object], str]] = {"default": _default, "json": _json, "none": _none}


# --- the variables ------------------------------------------------------------------------------


def _field(name: str) -> Getter:
    return lambda r, f, now: f[name]


def _iso8601(r: Any, f: dict[str, Any], now: float) -> str:
    # nginx's "2026-11-24T15:25:18+00:00", in the zone of $time_local (its "+0000").
    off = str(f["time_local"])[-5:]
    minutes = int(off[1:3]) * 60 + int(off[3:5])
    tz = datetime.timezone(datetime.timedelta(minutes=-minutes if off[0] == "-" else minutes))
    return datetime.datetime.fromtimestamp(int(now), tz).isoformat()


def _request_uri(r: Any, f: dict[str, Any], now: float) -> str | None:
    # $request_uri: the target as received (the request line's middle part); of an absolute
    # one, from its path on (ngx_http_process_request_uri: "r->unparsed_uri.data =
    # r->uri_start", which ngx_http_parse_request_line sets at the "/" (or "?") after the
    # authority; none: the "/" after the scheme's ":", one character).
    line: str | None = r.request_line
    if line:
        parts = line.split(" ")
        if len(parts) >= 3:
            target = " ".join(parts[1:-1])
            if target[:1] != "/" and "://" in target:
                rest = target.partition("://")[2]
                cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0),
                          default=-1)
                return rest[cut:] if cut >= 0 else "/"
            return target
        return None
    path: str | None = r.path
    if not path:
        return None
    return path + (f"?{r.query}" if r.query else "")


#: A request line ngx_http_parse_request_line takes (method letters, a target without controls
#: or spaces, HTTP/1.0 or 1.1).
_LINE = re.compile(r"([A-Z_-]+) +([^\x00-\x20\x7f]+) +(HTTP/1\.[01])")


def _refused_line(r: Any, group: int) -> str | None:
    """``$request_method`` (1) / ``$server_protocol`` (3) of a request refused before the core
    read its method (a bad header line, a duplicate Host, bare LFs: the record keeps the raw
    line): nginx parsed a valid request line before it refused the rest, so both are that
    line's; a line nginx could not parse has neither (``not_found``)."""
    line = getattr(r, "request_line", None)
    m = _LINE.fullmatch(line) if line else None
    return None if m is None else m.group(group)


def _ingress_part(index: int) -> Getter:
    # nginx.tmpl's location: 'set $namespace "{{ $ing.Namespace }}"; set $ingress_name ...':
    # "" for the default backend's location and before any location ran (an uninitialised
    # variable reads as empty: uninitialized_variable_warn off).
    def get(r: Any, f: dict[str, Any], now: float) -> str:
        ing = r.ingress or ""
        ns, sep, name = ing.rpartition("/")
        return (ns, name)[index] if sep else ""
    return get


def _service_name(r: Any, f: dict[str, Any], now: float) -> str:
    # The location's service: the main rule's when the canary served (the canary is chosen by
    # the balancer, inside the main location).
    if r.canary and getattr(r, "primary_service", None):
        return str(r.primary_service)
    return r.service or ""


def _service_port(r: Any, f: dict[str, Any], now: float) -> str:
    port = getattr(r, "primary_port", None) if r.canary and getattr(
        r, "primary_service", None) else getattr(r, "service_port", None)
    return "" if port is None or r.service is None else str(port)


#: ``$http_<name>`` variables nginx reads from a ``headers_in`` field (ngx_http_core_variables:
#: ngx_http_variable_header / _cookies, "for performance reasons"; $content_type): only the
#: lines named as that header (``-``, never ``_``), which ngx_http_process_header_line links.
#: Every other ``$http_<name>`` is ngx_http_variable_unknown_header: every line whose
#: lower-cased name, ``-`` read as ``_``, is ``<name>``.
_HEADERS_IN = frozenset({"host", "via", "x_forwarded_for", "cookie", "content_type"})


def _header_value(r: Any, key: str, underscores: bool) -> str | None:
    """The request header lines ``key`` names (see ``_HEADERS_IN``), their values ``", "``-joined
    (a Cookie's ``"; "``: ngx_http_variable_cookies), as ngx_http_variable_headers_internal and
    ngx_http_variable_unknown_header join them; None: no such line (nginx's ``not_found``).
    A name with ``_`` counts only where nginx kept the line (``underscores``: not dropped by
    ``ignore_invalid_headers``)."""
    items = getattr(r, "request_headers", None)
    if not items:
        return None
    want = key.encode("latin-1")
    exact = key in _HEADERS_IN
    dashed = want.replace(b"_", b"-")
    size = len(want)
    values: list[str] = []
    for _, name, value in items:
        if len(name) != size:
            continue
        if name != dashed:
            if exact or not underscores or b"_" not in name \
                    or name.replace(b"-", b"_") != want:
                continue
        values.append(value.decode("latin-1"))
    if not values:
        return None
    return ("; " if key == "cookie" else ", ").join(values)


def _http(key: str, underscores: bool) -> Getter:
    return lambda r, f, now: _header_value(r, key, underscores)


def _proxy_add_x_forwarded_for(r: Any, f: dict[str, Any], now: float) -> str | None:
    # ngx_http_proxy_add_x_forwarded_for_variable: every X-Forwarded-For line with ", " after
    # each (an empty one too), then the client's address (after realip:
    # r->connection->addr_text); no line: the address alone.
    addr: str | None = f["remote_addr"]
    items = getattr(r, "request_headers", None)
    xff = [v.decode("latin-1") for _, n, v in items if n == b"x-forwarded-for"] if items else ()
    if not xff:
        return addr
    return ", ".join(xff) + ", " + (addr or "")


def _server_port(r: Any, f: dict[str, Any], now: float) -> str | None:
    port = getattr(r, "server_port", None)
    return None if port is None else str(port)


def _https(r: Any, f: dict[str, Any], now: float) -> str | None:
    # ngx_http_variable_https: "on" over TLS, else ngx_http_variable_null_value (empty, which
    # the default escaping writes as nothing, not "-").
    scheme = getattr(r, "scheme", None)
    return None if scheme is None else "on" if scheme == "https" else ""


def _seconds(name: str) -> Getter:
    def get(r: Any, f: dict[str, Any], now: float) -> str | None:
        t = getattr(r, name, None)
        return None if t is None else f"{max(t, 0.0):.3f}"
    return get


#: Values nginx's log module writes itself: never escaped, never empty.
_DIRECT: dict[str, Getter] = {
    "time_local": _field("time_local"),
    "time_iso8601": _iso8601,
    "msec": lambda r, f, now: f"{now:.3f}",
    "request_time": _field("request_time"),
    "status": lambda r, f, now: f"{r.status:03d}",
    "bytes_sent": lambda r, f, now: str(r.bytes_out),
    "body_bytes_sent": _field("body_bytes_sent"),
    "request_length": _field("request_length"),
}

#: Variables the record gives.
_VARS: dict[str, Getter] = {
    "remote_addr": _field("remote_addr"),
    "remote_user": _field("remote_user"),
    "request": _field("request"),
    "request_method": lambda r, f, now: r.method or _refused_line(r, 1),
    "request_uri": _request_uri,
    "uri": lambda r, f, now: r.path or None,
    "document_uri": lambda r, f, now: r.path or None,
    "args": lambda r, f, now: r.query,
    "query_string": lambda r, f, now: r.query,
    "is_args": lambda r, f, now: "?" if r.query is not None else "",
    "server_protocol": lambda r, f, now: (f"HTTP/{r.http_version}" if r.method
                                          else _refused_line(r, 3)),
    # $host: the Host header's name, lower-case, without the port; the server's name ("_",
    # the catch-all's) when none was sent.
    "host": lambda r, f, now: r.host or "_",
    "http_referer": _field("http_referer"),
    "http_user_agent": _field("http_user_agent"),
    "proxy_upstream_name": _field("proxy_upstream_name"),
    "proxy_alternative_upstream_name": _field("proxy_alternative_upstream_name"),
    "upstream_addr": _field("upstream_addr"),
    "upstream_status": _field("upstream_status"),
    "upstream_response_time": _field("upstream_response_time"),
    "upstream_response_length": _field("upstream_response_length"),
    "upstream_connect_time": _seconds("upstream_connect_time"),
    "upstream_header_time": _seconds("upstream_header_time"),
    "req_id": _field("req_id"),
    # nginx's own $request_id is always generated; the record keeps $req_id (the client's
    # X-Request-ID, else the generated one): README's divergences.
    "request_id": _field("req_id"),
    "namespace": _ingress_part(0),
    "ingress_name": _ingress_part(1),
    "service_name": _service_name,
    "service_port": _service_port,
    # realip's $realip_remote_addr is the peer; the record keeps the client address only.
    "the_real_ip": _field("remote_addr"),
    "scheme": lambda r, f, now: getattr(r, "scheme", None),
    "https": _https,
    "server_port": _server_port,
    "proxy_add_x_forwarded_for": _proxy_add_x_forwarded_for,
}

#: nginx (and ingress-nginx's nginx.tmpl) variables the record cannot give: accepted, unset.
_KNOWN_ELSEWHERE = frozenset({
    "ancient_browser", "binary_remote_addr", "connection", "connection_requests",
    "connection_time", "content_length", "document_root", "hostname", "limit_rate",
    "nginx_version", "pid", "pipe", "proxy_protocol_addr",
    "proxy_protocol_port", "proxy_protocol_server_addr", "proxy_protocol_server_port",
    "realpath_root", "remote_port", "request_body", "request_body_file", "request_completion",
    "request_filename", "server_addr", "server_name", "tcpinfo_rtt",
    "tcpinfo_rttvar", "tcpinfo_snd_cwnd", "tcpinfo_rcv_space", "upstream_bytes_received",
    "upstream_bytes_sent", "upstream_cache_status", "upstream_queue_time",
    "upstream_last_server_name", "proxy_host", "proxy_port", "realip_remote_addr",
    "realip_remote_port", "ssl_protocol", "ssl_cipher", "ssl_ciphers",
    "ssl_curve", "ssl_curves", "ssl_server_name", "ssl_session_id", "ssl_session_reused",
    "ssl_early_data", "ssl_alpn_protocol", "ssl_client_cert", "ssl_client_raw_cert",
    "ssl_client_escaped_cert", "ssl_client_fingerprint", "ssl_client_i_dn",
    "ssl_client_i_dn_legacy", "ssl_client_s_dn", "ssl_client_s_dn_legacy",
    "ssl_client_serial", "ssl_client_v_end", "ssl_client_v_remain", "ssl_client_v_start",
    "ssl_client_verify", "gzip_ratio", "http2", "http3", "limit_req_status",
    "limit_conn_status", "invalid_referer", "msie", "modern_browser", "date_gmt",
    "date_local", "uid_got", "uid_set", "uid_reset", "secure_link", "secure_link_expires",
    "geoip_country_code", "geoip_city", "geoip2_city_country_code", "geoip2_city",
    # ingress-nginx's nginx.tmpl
    "best_http_host", "pass_access_scheme", "pass_server_port", "pass_port",
    "redirect_to_https", "full_x_forwarded_for", "literal_dollar", "location_path",
    "balancer_ewma_score", "loggable", "connection_upgrade", "this_host",
    "global_rate_limit_exceeding", "proxy_upstream_name_default",
})

#: Prefix families of nginx variables (request/response headers, cookies, arguments).
_PREFIXES = ("http_", "sent_http_", "sent_trailer_", "cookie_", "arg_", "upstream_http_",
             "upstream_cookie_", "upstream_trailer_", "jwt_claim_")


def _unset(r: Any, f: dict[str, Any], now: float) -> None:
    return None


def _lookup(name: str, underscores: bool = False) -> tuple[Getter, bool] | None:
    """(getter, direct) for ``name`` (lower-case); None when nginx knows no such variable."""
    if name in _DIRECT:
        return _DIRECT[name], True
    if name in _VARS:
        return _VARS[name], False
    if name.startswith("http_"):
        return _http(name[5:], underscores), False
    if name == "content_type":
        return _http(name, underscores), False
    if name in _KNOWN_ELSEWHERE or name.startswith(_PREFIXES):
        return _unset, False
    return None


#: NGX_CONF_BUFFER (src/core/ngx_conf_file.c): a token of that many bytes fails ``nginx -t``.
_CONF_BUFFER = 4096
_UNESCAPE = {'"': '"', "'": "'", "\\": "\\", "t": "\t", "r": "\r", "n": "\n"}


def _config_args(text: str) -> list[str]:
    """The format arguments nginx reads from nginx.tmpl's ``log_format upstreaminfo ...
    '{{ $cfg.LogFormatUpstream }}';``: ``text`` is written as it is between single quotes, so
    ngx_conf_read_token reads ``text + "';"`` from inside a quoted token. A ``'`` of the value
    ends that token: the rest is read as more arguments (log_format joins them, without the
    space between) or fails ``nginx -t``; ``\\"``, ``\\'``, ``\\\\``, ``\\t``, ``\\r``,
    ``\\n`` are unescaped. ValueError with nginx's message for what it refuses: something
    other than a space or ``;`` right after a closing quote, a ``{`` / ``}`` / ``#`` that
    would open a block, close one or comment out the ``;``, a value that never gets back to
    the ``;`` (a ``\\`` at its end escapes nginx.tmpl's closing quote), a token of 4096 bytes
    or more (NGX_CONF_BUFFER: "too long parameter")."""
    src = text + "';"
    args: list[str] = []
    quoted = need_space = variable = False
    last_space = d_quoted = False
    s_quoted = True
    start = 0
    for i, ch in enumerate(src):
        if quoted:
            quoted = False
            continue
        if need_space:
            if ch in " \t\r\n":
                last_space, need_space = True, False
                continue
            if ch == ";":
                return args
            if ch == ")":  # (for "if (...)": the ")" starts the next token)
                last_space, need_space = True, False
            else:
                raise ValueError(
                    f'unexpected "{ch}" after a closing quote (a \' in the value ends '
                    "nginx.tmpl's quoted string; write \\' for one: nginx -t fails)"
                    if ch != "{" else
                    'directive "log_format" is not terminated by ";" (nginx -t fails)')
        if last_space:
            if ch in " \t\r\n":
                continue
            start = i
            if ch in ";{}#":
                raise ValueError(f'unexpected "{ch}" in log-format-upstream outside quotes '
                                 "(nginx -t fails)")
            last_space = False
            if ch == "\\":
                quoted = True
            elif ch == '"':
                start, d_quoted = i + 1, True
            elif ch == "'":
                start, s_quoted = i + 1, True
            elif ch == "$":
                variable = True
            continue
        if ch == "{" and variable:
            continue
        variable = False
        if ch == "\\":
            quoted = True
            continue
        if ch == "$":
            variable = True
            continue
        found = False
        if d_quoted:
            if ch == '"':
                d_quoted, need_space, found = False, True, True
        elif s_quoted:
            if ch == "'":
                s_quoted, need_space, found = False, True, True
        elif ch in " \t\r\n;{":
            last_space = found = True
        if found:
            raw = src[start:i]
            if len(raw.encode("utf-8", "surrogatepass")) >= _CONF_BUFFER:
                raise ValueError("too long parameter, probably missing terminating \"'\" "
                                 f"character: {_CONF_BUFFER} bytes or more between quotes "
                                 "(NGX_CONF_BUFFER; nginx -t fails)")
            args.append(_unescape(raw))
            if ch == ";":
                return args
            if ch == "{":
                raise ValueError('directive "log_format" is not terminated by ";" '
                                 "(nginx -t fails)")
    raise ValueError("nginx.tmpl's closing quote and \";\" are escaped or quoted by the value "
                     "(a \\ or a quote at its end): log_format is not terminated "
                     "(nginx -t fails)")


def _unescape(raw: str) -> str:
    # ngx_conf_read_token's copy of a word: "\"", "\'", "\\" drop the backslash, "\t", "\r",
    # "\n" are the control characters, any other backslash stays.
    if "\\" not in raw:
        return raw
    out: list[str] = []
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c == "\\" and i + 1 < n and raw[i + 1] in _UNESCAPE:
            out.append(_UNESCAPE[raw[i + 1]])
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _parse(text: str) -> list[str | tuple[str, str]]:
    """Literal strings and ``("var", name)`` parts, as ngx_http_log_compile_format reads them;
    ValueError with nginx's message."""
    parts: list[str | tuple[str, str]] = []
    lit: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c != "$":
            lit.append(c)
            i += 1
            continue
        start = i
        i += 1
        if i == n:
            raise ValueError(f'invalid parameter "{text[start:]}" (nginx -t fails)')
        bracket = text[i] == "{"
        if bracket:
            i += 1
            if i == n:
                raise ValueError(f'invalid parameter "{text[start:]}" (nginx -t fails)')
        j = i
        while j < n and text[j] in _NAME_CHARS:
            j += 1
        name = text[i:j]
        if bracket:
            if j < n and text[j] == "}":
                j += 1
            else:
                raise ValueError(f'the closing bracket in "{name}" variable is missing '
                                 "(nginx -t fails)")
        if not name:
            raise ValueError(f'invalid parameter "{text[start:j + 1]}" (nginx -t fails)')
        if lit:
            parts.append("".join(lit))
            lit = []
        parts.append(("var", name))
        i = j
    if lit:
        parts.append("".join(lit))
    return parts


class LogFormat:
    """A compiled ``log-format-upstream``: :meth:`render` writes one line."""

    __slots__ = ("text", "escape", "ops", "unavailable")

    def __init__(self, text: str, escape: str,
                 ops: tuple[tuple[str, Getter | None, bool], ...],
                 unavailable: tuple[str, ...]) -> None:
        self.text = text
        self.escape = escape
        #: (literal, getter or None, direct) per part.
        self.ops = ops
        #: Variables nginx knows that the record cannot give (written as unset).
        self.unavailable = unavailable

    def render(self, record: Any, fields: dict[str, Any], now: float) -> str:
        esc = _ESCAPES[self.escape]
        out: list[str] = []
        for literal, get, direct in self.ops:
            if get is None:
                out.append(literal)
            elif direct:
                out.append(str(get(record, fields, now)))
            else:
                out.append(esc(get(record, fields, now)))
        return "".join(out)


_CACHE: dict[tuple[str, str, bool], LogFormat] = {}


def compile_format(text: str, escape: str = "default", underscores: bool = False) -> LogFormat:
    """``text`` (a ``log-format-upstream`` value as written in the ConfigMap) compiled for
    ``escape`` ("default", "json" or "none"). ValueError: a format nginx -t refuses (an
    unknown variable, ``$`` without a name, ``${name`` without ``}``). Variable names are
    read without case, as nginx reads them (ngx_http_get_variable_index: ``ngx_strlow``).
    ``underscores``: request header lines whose name holds ``_`` reach nginx (ingress-nginx
    ``enable-underscores-in-headers``, or ``ignore-invalid-headers: "false"``), so
    ``$http_<name>`` reads them."""
    if escape not in _ESCAPES:
        raise ValueError(f"escape must be default, json or none, not {escape!r}")
    key = (text, escape, underscores)
    cached = _CACHE.get(key)
    if cached is not None:
        return cached
    ops: list[tuple[str, Getter | None, bool]] = []
    missing: dict[str, None] = {}  # (a dict: the order, and no quadratic lookups)
    parts = [p for arg in _config_args(text) for p in _parse(arg)]
    for part in parts:
        if isinstance(part, str):
            ops.append((part, None, False))
            continue
        name = part[1].lower()
        found = _lookup(name, underscores)
        if found is None:
            raise ValueError(f'unknown "{name}" variable (nginx -t fails: ingress-nginx keeps '
                             "its previous configuration)")
        get, direct = found
        if get is _unset:
            missing[name] = None
        ops.append(("", get, direct))
    fmt = LogFormat(text, escape, tuple(ops), tuple(missing))
    if len(_CACHE) > 64:
        _CACHE.clear()
    _CACHE[key] = fmt
    return fmt


def unavailable(text: str) -> tuple[str, ...]:
    """The variables of ``text`` that nginx knows and the request record cannot give (written
    as unset: ``-``, or empty with escape=json/none). ValueError as :func:`compile_format`."""
    return compile_format(text).unavailable


def escape_of(settings: Any) -> str:
    """nginx.tmpl's choice: escape=none wins over escape=json."""
    if settings.log_format_escape_none:
        return "none"
    if settings.log_format_escape_json:
        return "json"
    return "default"
