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
from the record's ``request_headers``, ``scheme`` and ``server_port``; ``$cookie_<name>`` and
``$arg_<name>`` from its headers and query. The connection variables (``$server_name``,
``$remote_port``, ``$connection``, ``$connection_requests``, ``$ssl_protocol``,
``$ssl_cipher``, ``$ssl_server_name``, ``$realip_remote_addr``, ``$proxy_protocol_*``) and
the response head sent (``$sent_http_<name>``) come from ``RequestRecord.connection``, which
the core sets only when a format is configured (a record without it writes them unset).

The upstream variables list one value per try, ``", "``-joined in step with
``$upstream_addr`` (``" : "`` before custom-http-errors' page, an internal redirect):
``$upstream_connect_time`` and ``$upstream_header_time`` (``-`` for a try without one; a record
without ``upstream_tries`` writes its last-try scalar), ``$upstream_bytes_sent`` and
``$upstream_bytes_received`` (the bytes written to / read from each try's connection, a
tunnel's included; unset for a record without them), from the record's ``upstream_tries``
(``proxy.UpstreamTry``: which the core fills only when a format is configured).

``$request_completion`` is ``OK`` unless the request was ended by its client (closed, timed
out) or an abort (``RequestRecord.request_complete``), empty then; unset for a record without it.

Variables nginx knows that the request record cannot give (``$ssl_client_s_dn``, ``$pipe``:
nginx's ``r->pipeline`` depends on which bytes its own reads took with the request before, a
read boundary the core, fed by its driver, does not share...) are accepted, written as unset,
and named once in the ConfigMap's warnings (:func:`unavailable`).
"""

from __future__ import annotations

import datetime
import functools
import re
from collections.abc import Callable
from typing import Any

from ._accesslog import seconds_text, try_list
from ._balance_request import cookie_value

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


def _request_completion(r: Any, f: dict[str, Any], now: float) -> str | None:
    # ngx_http_variable_request_completion: "OK" when r->request_complete, else
    # ngx_http_variable_null_value (empty, which the default escaping writes as nothing).
    complete = getattr(r, "request_complete", None)
    return None if complete is None else "OK" if complete else ""


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
        return None if t is None else seconds_text(t)
    return get


def _try_list(index: int, text: Callable[[Any], str]) -> Getter:
    """An upstream variable nginx lists one value per try (ngx_http_upstream_response_time_variable,
    ngx_http_upstream_bytes_variable): field ``index`` of each of the record's ``upstream_tries``,
    each written with ``text``, ``", "``-joined in step with ``$upstream_addr`` (``" : "`` at an
    internal redirect); unset (``not_found``) without them (no try, no format when the record
    was made, or a record built elsewhere)."""
    return lambda r, f, now: try_list(
        r, [t[index] for t in getattr(r, "upstream_tries", ())], text)


def _try_times(index: int, last: str) -> Getter:
    """``$upstream_connect_time`` / ``$upstream_header_time``: the per-try times
    (:func:`_try_list`, ``-`` for a try without one); a record without them writes its scalar
    ``last``, the last try's."""
    listed, scalar = _try_list(index, seconds_text), _seconds(last)

    def get(r: Any, f: dict[str, Any], now: float) -> str | None:
        value: str | None = listed(r, f, now)
        return scalar(r, f, now) if value is None else value
    return get


# --- session 30: cookies, arguments, the response head, the connection --------------------------


def _cookie(key: str) -> Getter:
    return lambda r, f, now: _cookie_value(r, key)


def _cookie_value(r: Any, key: str) -> str | None:
    """``$cookie_<name>``: nginx's ngx_http_variable_cookie, the same port the canary cookie
    and ``upstream-hash-by`` read (``cookie_value`` with ``fold``: every Cookie line in order,
    the name without case, quirks included). None: no such cookie (``not_found``)."""
    items = getattr(r, "request_headers", None)
    if not items:
        return None
    return cookie_value([(name, line) for _, name, line in items], key, True)


def _arg(key: str) -> Getter:
    return lambda r, f, now: _arg_value(r.query, key)


def _arg_value(args: str | None, key: str) -> str | None:
    """``$arg_<name>``: ngx_http_arg over the request's arguments as received (not decoded):
    the first place the name occurs without case (ngx_strlcasestrn) at the start or after a
    ``&``, followed by ``=``: the value up to the next ``&``. None: no such argument (also
    ``?name`` without ``=``)."""
    if not args:
        return None
    low = args.lower()
    size = len(key)
    p = low.find(key)
    while p >= 0:
        if (p == 0 or low[p - 1] == "&") and low[p + size:p + size + 1] == "=":
            last = args.find("&", p + size + 1)
            return args[p + size + 1:] if last < 0 else args[p + size + 1:last]
        p = low.find(key, p + 1)
    return None


class ConnectionFacts:
    """What log-format-upstream's connection variables read of the connection that served a
    request, copied from its ``ClientConnection`` once (:func:`connection_facts`, at the
    connection's first record): ``RequestRecord.connection[0]``. A record holds these few
    values, not the connection: a record kept (a ``MemoryHandler``, a user's ``on_record``
    list or queue) keeps no connection, its buffers or its upstreams alive, and a line
    written late reads what the request was served with. The attribute names are the
    connection's own: ``peer`` (as given, ``(ip, port)`` or ip), ``peer_ip``, ``number``
    (``$connection``), ``proxy_protocol_port``, ``tls_info`` (``(protocol, cipher, SNI)``),
    ``proxy`` (the ``Proxy``, for ``$server_name``) and ``realip_addr`` (the PROXY protocol
    header's sender)."""

    __slots__ = ("peer", "peer_ip", "number", "proxy_protocol_port", "tls_info", "proxy",
                 "realip_addr")

    def __init__(self, peer: Any, peer_ip: str | None, number: int,
                 proxy_protocol_port: int | None,
                 tls_info: tuple[str | None, str | None, str | None] | None,
                 proxy: Any, realip_addr: str | None = None) -> None:
        self.peer, self.peer_ip, self.number = peer, peer_ip, number
        self.proxy_protocol_port, self.tls_info, self.proxy = proxy_protocol_port, tls_info, proxy
        self.realip_addr = realip_addr

    def __repr__(self) -> str:
        return f"ConnectionFacts(peer={self.peer!r}, number={self.number})"


def connection_facts(conn: Any) -> ConnectionFacts:
    """The :class:`ConnectionFacts` of ``conn`` (a ``ClientConnection``) now: the core calls
    it once per connection, at its first record with a format (the driver has set
    ``tls_info`` by then: ``ProxyServer`` does before ``start``)."""
    return ConnectionFacts(conn.peer, conn.peer_ip, conn.number, conn.proxy_protocol_port,
                           conn.tls_info, conn.proxy, conn.realip_addr)


def _context(r: Any) -> tuple[Any, int, bytes | None] | None:
    ctx: tuple[Any, int, bytes | None] | None = getattr(r, "connection", None)
    return ctx


def _remote_port(r: Any, f: dict[str, Any], now: float) -> str | None:
    # ngx_http_variable_remote_port: the port of r->connection->sockaddr, which the realip
    # module replaces: a PROXY protocol header's source port (ingress-nginx's
    # use-proxy-protocol: "real_ip_header proxy_protocol", the address the driver gives the
    # connection), 0 for an address taken from X-Forwarded-For ("ngx_inet_set_port(...,
    # port)" with port 0), which it writes empty ("if (port > 0 && port < 65536)").
    ctx = _context(r)
    if ctx is None:
        return None
    conn = ctx[0]
    peer = conn.peer
    if not isinstance(peer, tuple):
        return None
    if r.client_ip is not None and r.client_ip != conn.peer_ip:
        return ""
    port = int(peer[1])
    return str(port) if 0 < port < 65536 else ""


def _realip_remote_addr(r: Any, f: dict[str, Any], now: float) -> str | None:
    # ngx_http_realip_module: the address before realip replaced it, the peer's. With a
    # trusted PROXY protocol header the driver gives the header's source as the peer: the
    # address of the peer that sent the header (``realip_addr``, ProxyServer tells it; a
    # driver that does not: unset).
    ctx = _context(r)
    if ctx is None:
        return None
    facts = ctx[0]
    ip: str | None = getattr(facts, "realip_addr", None) \
        if facts.proxy_protocol_port is not None else facts.peer_ip
    return ip


def _proxy_protocol(index: int) -> Getter:
    """``$proxy_protocol_addr`` (0), ``$proxy_protocol_port`` (1),
    ``$proxy_protocol_server_port`` (2): the PROXY protocol header's source address and port
    and destination port (ngx_http_variable_proxy_protocol_addr/_port: not_found without a
    header), which the driver gives the connection as its peer and ``proxy_protocol_port``.
    The header of a peer outside ``proxy-real-ip-cidr`` is read and not used: unset here
    (nginx still reports it)."""
    def get(r: Any, f: dict[str, Any], now: float) -> str | None:
        ctx = _context(r)
        if ctx is None:
            return None
        conn = ctx[0]
        server_port = conn.proxy_protocol_port
        if server_port is None:
            return None
        if index == 2:
            return str(server_port)
        peer = conn.peer
        if not isinstance(peer, tuple):
            return None
        return str(peer[index])
    return get


def _binary_remote_addr(r: Any, f: dict[str, Any], now: float) -> str | None:
    # ngx_http_variable_binary_remote_addr: the 4 (IPv4) or 16 (IPv6) bytes of $remote_addr
    # (an IPv4-mapped IPv6 address: its 16), as latin-1 characters (the log escapes them).
    import ipaddress
    addr: str | None = f["remote_addr"]
    if not addr:
        return None
    try:
        return ipaddress.ip_address(addr.partition("%")[0]).packed.decode("latin-1")
    except ValueError:
        return None


def _connection_number(r: Any, f: dict[str, Any], now: float) -> str | None:
    ctx = _context(r)
    number = 0 if ctx is None else ctx[0].number
    return str(number) if number else None


def _connection_requests(r: Any, f: dict[str, Any], now: float) -> str | None:
    ctx = _context(r)
    return None if ctx is None else str(ctx[1])


def _ssl(index: int) -> Getter:
    # ngx_ssl_get_protocol (SSL_get_version: "TLSv1.3") and ngx_ssl_get_cipher_name
    # (SSL_get_cipher_name: "TLS_AES_256_GCM_SHA384"), ngx_ssl_get_server_name (the
    # ClientHello's name as sent; none: unset); over plain HTTP: unset (the ssl module's
    # variables are not_found without c->ssl).
    def get(r: Any, f: dict[str, Any], now: float) -> str | None:
        ctx = _context(r)
        info = None if ctx is None else ctx[0].tls_info
        return None if info is None else info[index]
    return get


def _server_name(r: Any, f: dict[str, Any], now: float) -> str | None:
    """``$server_name``: the first ``server_name`` of the server block that served the request
    (ngx_http_core_merge_srv_conf: "name = sn[0].name", a regex one with its ``~``):
    ingress-nginx's server for the request's host, written by template.go
    ``buildServerName``: the rule host as written; a wildcard ``*.example.com`` as
    ``~^(?<subdomain>[\\w-]+)\\.example\\.com$``; a server-alias names its rule host's server.
    No server for the host (or no Host): the catch-all server, ``_``."""
    ctx = _context(r)
    if ctx is None:
        return None
    host = r.host
    if not host:
        return "_"
    proxy = ctx[0].proxy
    if proxy._server_owners() is None:  # a custom router: no table to tell
        return host if r.ingress is not None else "_"
    named = str(proxy._alias_server(host))
    if named in proxy._www_twins():
        # from-to-www-redirect: nginx.tmpl's redirect server for the twin, "server {
        # server_name {{ $redirect.From }}; ... }" (an exact name, before a wildcard; never a
        # rule host's: ingress-nginx makes no twin for a host that has a server).
        return named
    key: str | None = proxy._server_key(host)
    if key is None:
        return "_"
    if key.startswith("*."):  # template.go buildServerName
        return "~^(?<subdomain>[\\w-]+)\\." + key[2:].replace(".", "\\.") + "$"
    return key


#: $sent_http_<name> nginx reads from a headers_out field of its own (the rest:
#: ngx_http_variable_unknown_header over the list of headers sent).
def _sent_lines(head: bytes, want: bytes) -> list[bytes]:
    values = []
    for line in head.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep and name.lower().replace(b"-", b"_") == want:
            values.append(value.strip(b" \t"))
    return values


def _keepalive_asked(r: Any) -> str:
    """``$sent_http_connection`` of a request no head was sent for: ``r->keepalive`` as
    ngx_http_handler set it from the request (HTTP/1.1 unless ``Connection: close``, HTTP/1.0
    with ``Connection: keep-alive``); a head refused before that: ``close``."""
    items = getattr(r, "request_headers", None)
    if items is None:
        return "close"
    tokens = {t.strip().lower() for _, n, v in items if n == b"connection"
              for t in v.split(b",")}
    if b"close" in tokens:
        return "close"
    return "keep-alive" if r.http_version != "1.0" or b"keep-alive" in tokens else "close"


def _own_server() -> bytes:
    from .proxy._headers import server_token
    return server_token()


def _sent_http(key: str) -> Getter:
    """``$sent_http_<name>``: the response head as the client got it (after the hide, add
    and compression filters): every line whose lower-cased name, ``-`` read as ``_``, is
    ``<name>``, ``", "``-joined (ngx_http_variable_unknown_header over headers_out). nginx
    computes three itself: ``connection`` (ngx_http_variable_sent_connection: ``upgrade``
    for a 101, else ``keep-alive`` or ``close``, always set: without a head, what the request
    asked for), ``keep_alive`` (only with
    ``keepalive_timeout``'s header time, which ingress-nginx never writes: unset) and
    ``transfer_encoding`` (``chunked`` for a chunked response, else unset). None: no head was
    sent (the client left first) or no such line.

    Two lines of the head are never in that list: nginx's header filter
    (ngx_http_header_filter) writes ``Date`` and its own ``Server`` straight into the head
    ("if (r->headers_out.date == NULL) ..."; the upstream's Date is one of
    ngx_http_proxy_hide_headers), so ``$sent_http_date`` is unset, and ``$sent_http_server``
    too unless the Server sent is no token of this hop's own (the upstream's, passed by
    ``allow-backend-server-header``'s proxy_pass_header Server, is in the list)."""
    if key == "keep_alive" or key == "date":
        return _unset_always   # (decided by the format, not per line)
    want = key.encode("latin-1")
    own_server = _own_server() if key == "server" else None

    def get(r: Any, f: dict[str, Any], now: float) -> str | None:
        ctx = _context(r)
        if ctx is None:
            return None
        head = ctx[2]
        if key == "connection":
            if not head:
                return _keepalive_asked(r)
            if head[9:12] == b"101":
                return "upgrade"
            tokens = b",".join(_sent_lines(head, want)).lower()
            return "close" if b"close" in tokens else "keep-alive"
        if not head:
            return None
        values = _sent_lines(head, want)
        if own_server is not None and own_server in values:
            values.remove(own_server)  # (server-tokens: this hop's own, ngx_http_server_*)
        if key == "transfer_encoding":
            return "chunked" if any(b"chunked" in v.lower() for v in values) else None
        return ", ".join(v.decode("latin-1") for v in values) if values else None
    return get


def _content_length(r: Any, f: dict[str, Any], now: float) -> str | None:
    # ngx_http_variable_content_length: the Content-Length line as received
    # (r->headers_in.content_length: nginx refuses a second one); a chunked body: unset.
    items = getattr(r, "request_headers", None)
    if items:
        for _, name, value in items:
            if name == b"content-length":
                return str(value.decode("latin-1"))
    return None


@functools.cache
def _host_name() -> str:
    # ngx_cycle->hostname: gethostname() once per cycle, lower-cased (ngx_init_cycle:
    # ngx_strlow); here once per process, not a system call per line.
    import socket
    return socket.gethostname().lower()


def _hostname(r: Any, f: dict[str, Any], now: float) -> str:
    return _host_name()


def _unset_always(r: Any, f: dict[str, Any], now: float) -> None:
    """A variable nginx knows and never sets under ingress-nginx's configuration (no warning:
    unset is its value)."""
    return None


def _rate_limit_state(index: int) -> Getter:
    # $limit_req_status, $limit_conn_status (nginx's limit_req / limit_conn modules: "PASSED"
    # or "REJECTED" once they decided, "not_found" while r->main->limit_*_status is 0) and
    # ingress-nginx's $global_rate_limit_exceeding ("y", "c"), from the record's
    # ``rate_limit_log`` (proxy/_ratelimit.py, proxy/_globalratelimit.py).
    def get(r: Any, f: dict[str, Any], now: float) -> str | None:
        states: tuple[str | None, ...] | None = getattr(r, "rate_limit_log", None)
        return None if states is None else states[index]
    return get


_limit_req_status = _rate_limit_state(0)
_limit_conn_status = _rate_limit_state(1)
_global_rate_limit_refused = _rate_limit_state(2)


def _global_rate_limit_exceeding(r: Any, f: dict[str, Any], now: float) -> str | None:
    # nginx.tmpl: "set $global_rate_limit_exceeding n;" at the top of every location (before
    # its redirects): "n" once a location's rewrite phase ran, unless global_throttle.lua set
    # "y" or "c"; unset for a request answered before any location (``RequestRecord.phase``).
    refused: str | None = _global_rate_limit_refused(r, f, now)
    if refused is not None:
        return refused
    return "n" if getattr(r, "phase", None) == "location" else None


def _pid(r: Any, f: dict[str, Any], now: float) -> str:
    import os
    return str(os.getpid())


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
    "upstream_connect_time": _try_times(0, "upstream_connect_time"),
    "upstream_header_time": _try_times(1, "upstream_header_time"),
    "upstream_bytes_sent": _try_list(2, str),
    "upstream_bytes_received": _try_list(3, str),
    "request_completion": _request_completion,
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
    # session 30
    "server_name": _server_name,
    "remote_port": _remote_port,
    "realip_remote_addr": _realip_remote_addr,
    "binary_remote_addr": _binary_remote_addr,
    "proxy_protocol_addr": _proxy_protocol(0),
    "proxy_protocol_port": _proxy_protocol(1),
    "proxy_protocol_server_port": _proxy_protocol(2),
    "connection": _connection_number,
    "connection_requests": _connection_requests,
    "ssl_protocol": _ssl(0),
    "ssl_cipher": _ssl(1),
    "ssl_server_name": _ssl(2),
    "content_length": _content_length,
    "hostname": _hostname,
    "pid": _pid,
    # No proxy_cache in ingress-nginx's nginx.tmpl: ngx_http_upstream_cache_status is always
    # not_found ("r->upstream == NULL || r->upstream->cache_status == 0").
    "upstream_cache_status": _unset_always,
    # session 33
    "limit_req_status": _limit_req_status,
    "limit_conn_status": _limit_conn_status,
    "global_rate_limit_exceeding": _global_rate_limit_exceeding,
}

#: nginx (and ingress-nginx's nginx.tmpl) variables the record cannot give: accepted, unset.
_KNOWN_ELSEWHERE = frozenset({
    "ancient_browser",
    "connection_time", "document_root", "limit_rate",
    "nginx_version", "pipe", "proxy_protocol_server_addr",
    "realpath_root", "request_body", "request_body_file",
    "request_filename", "server_addr", "tcpinfo_rtt",
    "tcpinfo_rttvar", "tcpinfo_snd_cwnd", "tcpinfo_rcv_space", "upstream_queue_time",
    "upstream_last_server_name", "proxy_host", "proxy_port",
    "realip_remote_port", "ssl_ciphers",
    "ssl_curve", "ssl_curves", "ssl_session_id", "ssl_session_reused",
    "ssl_early_data", "ssl_alpn_protocol", "ssl_client_cert", "ssl_client_raw_cert",
    "ssl_client_escaped_cert", "ssl_client_fingerprint", "ssl_client_i_dn",
    "ssl_client_i_dn_legacy", "ssl_client_s_dn", "ssl_client_s_dn_legacy",
    "ssl_client_serial", "ssl_client_v_end", "ssl_client_v_remain", "ssl_client_v_start",
    "ssl_client_verify", "gzip_ratio", "http2", "http3", "invalid_referer", "msie",
    "modern_browser", "date_gmt",
    "date_local", "uid_got", "uid_set", "uid_reset", "secure_link", "secure_link_expires",
    "geoip_country_code", "geoip_city", "geoip2_city_country_code", "geoip2_city",
    # ingress-nginx's nginx.tmpl
    "best_http_host", "pass_access_scheme", "pass_server_port", "pass_port",
    "redirect_to_https", "full_x_forwarded_for", "literal_dollar", "location_path",
    "balancer_ewma_score", "loggable", "connection_upgrade", "this_host",
    "proxy_upstream_name_default",
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
    if name.startswith("cookie_"):
        return _cookie(name[7:]), False
    if name.startswith("arg_"):
        return _arg(name[4:]), False
    if name.startswith("sent_http_"):
        return _sent_http(name[10:]), False
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
