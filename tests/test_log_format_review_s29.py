"""Session 29 review of ``log-format-upstream`` (R5): the variables users put in their formats
(``$http_<name>``, ``$proxy_add_x_forwarded_for``, ``$scheme``, ``$https``, ``$server_port``,
``$content_type``), formats nginx reads otherwise than the value's text says (a ``'``, a
trailing ``\\``, 4096 bytes, upper-case names), escaping byte for byte with nginx's
(``ngx_http_log_escape``, ``ngx_escape_json``), JSON for any request, the default line, and
``enable-access-log-for-default-backend`` / ``enable-access-log`` on every path that reaches a
server's ``location /``.

Tests named ``test_defect_*`` failed before this review; ``test_guard_*`` held already.
"""

from __future__ import annotations

import asyncio
import datetime
import io
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingresslib import Router, ValidationError, parse_manifests
from ingresslib._accesslog import AccessLog, access_fields, configure_access_log, format_line
from ingresslib._config import parse_config_data
from ingresslib._logformat import DEFAULT_FORMAT, compile_format
from ingresslib._serve import _record_sink
from ingresslib.proxy import RequestRecord
from ingresslib.proxy._settings import ProxySettings

from _budget import examples
from _proxy_harness import ProxyPair, Route
from _records import rec

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 11, 21, 13, 25, 42, tzinfo=UTC).timestamp()
P = "nginx.ingress.kubernetes.io/"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = configure_access_log(stream, "text")
    try:
        yield stream
    finally:
        logger = logging.getLogger("ingresslib.access")
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
        logger.propagate = True


def _render(fmt: str, record: RequestRecord, escape: str = "default",
            underscores: bool = False) -> str:
    f = compile_format(fmt, escape, underscores) if underscores else compile_format(fmt, escape)
    return f.render(record, access_fields(record, NOW, UTC), NOW)


def _core(request: bytes, *, tls: bool = False, router: Any = None,
          settings: ProxySettings | None = None) -> ProxyPair:
    pair = ProxyPair([Route()] if router is None else None, settings, tls=tls, router=router)
    pair.send(request)
    return pair


# --- the variables the record now gives ---------------------------------------------------------

REQUEST = (b"GET /a?x=1 HTTP/1.1\r\nHost: App.Test:8080\r\nX-Forwarded-For: 192.0.2.9\r\n"
           b"X-Team: one\r\nCookie: a=1\r\nx-team: two\r\nCookie: b=2\r\n"
           b"X-Forwarded-For: 198.51.100.1, 10.0.0.3\r\nContent-Type: text/plain\r\n"
           b"Authorization: Bearer t\r\nConnection: close\r\n\r\n")
VARS = ("$http_x_team|$http_cookie|$http_host|$http_x_forwarded_for|$proxy_add_x_forwarded_for|"
        "$scheme|$https|$server_port|$content_type|$http_authorization|$http_absent|"
        "$HTTP_X_TEAM")


def test_defect_request_headers_scheme_and_port_through_the_core() -> None:
    # ngx_http_variable_unknown_header / _headers_internal: every line of the name,
    # ", "-joined (a Cookie's "; "); $proxy_add_x_forwarded_for: those lines, then the client's
    # address (ngx_http_proxy_add_x_forwarded_for_variable). Before: all "-" (unset).
    (record,) = _core(REQUEST).records
    assert _render(VARS, record).split("|") == [
        "one, two", "a=1; b=2", "App.Test:8080", "192.0.2.9, 198.51.100.1, 10.0.0.3",
        "192.0.2.9, 198.51.100.1, 10.0.0.3, 203.0.113.7", "http", "", "80", "text/plain",
        "Bearer t", "-", "one, two"]
    (record,) = _core(REQUEST, tls=True).records
    assert _render("$scheme|$https|$server_port", record) == "https|on|443"


def test_defect_request_uri_of_an_absolute_target_starts_at_its_path() -> None:
    # ngx_http_process_request_uri: "r->unparsed_uri.data = r->uri_start", the "/" after the
    # authority. Before: "http://a.test/x?y=1", the whole target.
    (record,) = _core(b"GET http://a.test/x?y=1 HTTP/1.1\r\nHost: a.test\r\n"
                      b"Connection: close\r\n\r\n").records
    assert _render("$request_uri|$uri|$args|$request", record) == (
        "/x?y=1|/x|y=1|GET http://a.test/x?y=1 HTTP/1.1")
    assert _render("$request_uri", rec(request_line="GET http://a.test HTTP/1.1")) == "/"
    assert _render("$request_uri", rec(request_line="GET /p?q HTTP/1.0")) == "/p?q"


@pytest.mark.parametrize("request_, expected", [
    # nginx parsed the request line, then refused a header line: both are the line's.
    (b"GET / HTTP/1.0\r\nHo st: x\r\n\r\n", "400 GET HTTP/1.0"),
    (b"POST /a HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", "400 POST HTTP/1.0"),
    # A line nginx cannot parse: neither (before: "HTTP/1.1", h11's default).
    (b"GET /\x01 HTTP/1.0\r\nHost: a\r\n\r\n", "400 - -"),
    (b"GARBAGE\r\n\r\n", "400 - -"),
    (b"GET / HTTP/1.0\r\nHost: a\r\n\r\n", "404 GET HTTP/1.0"),
])
def test_defect_method_and_protocol_of_a_refused_head(request_: bytes, expected: str) -> None:
    router = Router(parse_manifests(MANIFESTS % ""), seed=1)
    (record,) = _core(request_, router=router).records
    assert _render("$status $request_method $server_protocol", record) == expected


def test_defect_proxy_add_x_forwarded_for_without_the_header_is_the_address() -> None:
    (record,) = _core(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n").records
    assert _render("[$proxy_add_x_forwarded_for][$http_x_forwarded_for]", record) == (
        "[203.0.113.7][-]")
    assert _render("[$proxy_add_x_forwarded_for][$http_x_forwarded_for]", record,
                   "json") == "[203.0.113.7][]"


def test_defect_a_header_name_with_underscore_counts_only_where_nginx_keeps_it() -> None:
    req = (b"GET / HTTP/1.1\r\nHost: a.test\r\nX_Team: under\r\nX-Team: dash\r\n"
           b"X_Forwarded_For: 10.9.9.9\r\nConnection: close\r\n\r\n")
    (record,) = _core(req).records
    # ignore_invalid_headers on, underscores_in_headers off (ingress-nginx's defaults): nginx
    # drops the "_" line before any variable sees it.
    assert _render("$http_x_team|$http_x_forwarded_for", record) == "dash|-"
    # enable-underscores-in-headers: the unknown-header variable matches "_" as "-"; the
    # headers_in one ($http_x_forwarded_for) never reads another name than its own.
    assert _render("$http_x_team|$http_x_forwarded_for", record,
                   underscores=True) == "under, dash|-"
    log = AccessLog(clock=lambda: NOW, tz=UTC, settings=ProxySettings(
        log_format_upstream="$http_x_team", enable_underscores_in_headers=True))
    assert log._format is not None and str(log._format.render(
        record, access_fields(record, NOW, UTC), NOW)) == "under, dash"


def test_guard_a_record_without_headers_writes_them_unset() -> None:
    # A record built by other code (no request_headers, scheme, server_port): unset, no error.
    r = rec()
    assert _render("$http_x_team|$http_cookie|$scheme|$server_port|$https|$content_type", r) \
        == "-|-|-|-|-|-"
    assert _render("$http_x_team|$scheme|$https", r, "json") == "||"


def test_defect_the_warning_names_only_what_is_still_unset() -> None:
    cfg = parse_config_data({"log-format-upstream": (
        "$scheme $server_port $https $http_x_forwarded_for $proxy_add_x_forwarded_for "
        "$content_type $http_x_anything")})
    assert cfg.warnings == ()
    # Session 30 (V2): $server_name and $sent_http_* are carried now; $pipe and
    # $upstream_bytes_sent are still unset. (Session 32: $upstream_bytes_sent is carried.)
    cfg = parse_config_data({"log-format-upstream": "$pipe $upstream_bytes_sent $scheme"})
    assert cfg.warnings == (
        "ConfigMap: data.log-format-upstream: $pipe: not known to "
        'ingresslib\'s request record, logged as unset ("-", empty with '
        "log-format-escape-json/-none)",)


def test_defect_variable_names_are_read_without_case() -> None:
    # ngx_http_get_variable_index lower-cases the name (ngx_strlow); init_vars compares the
    # lower-case names: $STATUS is $status. Before: 'unknown "STATUS" variable'.
    r = rec()
    assert _render("$STATUS ${Request_Method} $Http_User_Agent", r) == "200 GET curl/8"
    assert parse_config_data({"log-format-upstream": "$Status"}).settings.log_format_upstream \
        == "$Status"
    with pytest.raises(ValueError, match='unknown "nosuch" variable'):
        compile_format("$NoSuch")


# --- formats nginx reads otherwise than their text ----------------------------------------------


@pytest.mark.parametrize("text, message", [
    # nginx.tmpl: "log_format upstreaminfo ... '{{ $cfg.LogFormatUpstream }}';": a ' of the
    # value closes the quoted string; ngx_conf_read_token then wants a space or ";".
    ("it's $status", 'unexpected "s" after a closing quote'),
    ("$status'", 'unexpected "\'" after a closing quote'),
    # A trailing backslash escapes the template's closing quote: the directive never ends.
    ("$status \\", "log_format is not terminated"),
    ("a' {", 'unexpected "{"'),
    ("a' #x", 'unexpected "#"'),
    # NGX_CONF_BUFFER: a token of 4096 bytes fails ("too long parameter, probably missing
    # terminating "'" character"); UTF-8 bytes count.
    ("x" * 4096, "too long parameter"),
    ("é" * 2048, "too long parameter"),
    ("$status " * 8192, "too long parameter"),
])
def test_defect_formats_nginx_t_refuses_are_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        compile_format(text)
    with pytest.raises(ValidationError, match=re.escape(message)):
        parse_config_data({"log-format-upstream": text})


def test_defect_a_quote_followed_by_a_space_splits_the_format_as_nginx_does() -> None:
    # 'a' b' + "';" -> the arguments "a" and "b'": log_format joins its arguments.
    r = rec()
    assert _render("[$status]' [$request_method]", r) == "[200][GET]'"
    assert _render("[$status]')", r) == "[200])'"  # a ")" may follow a quote ("if (...)")
    assert _render("it\\'s $status", r) == "it's 200"  # the escaped quote stays one
    assert _render("x" * 4095, r) == "x" * 4095
    assert _render("é" * 2047 + "a", r) == "é" * 2047 + "a"


@pytest.mark.parametrize("text", ["$$", "$1", "$status$", "${status", "${", "${}", "$statusx",
                                  "$ status", "x${status }"])
def test_guard_dollar_edge_cases_nginx_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="nginx -t fails"):
        compile_format(text)


def test_guard_literals_are_written_as_they_are() -> None:
    r = rec()
    assert _render("€ ${status}ok $status.x\t€", r) == "€ 200ok 200.x\t€"
    assert _render("${status}${status}", r) == "200200"


# --- escaping, byte for byte --------------------------------------------------------------------


def _ngx_log_escape(data: bytes) -> bytes:
    # ngx_http_log_escape's table: 0x00-0x1F, '"', '\', 0x7F-0xFF as \xHH (upper-case).
    table = [0xFFFFFFFF, 0x00000004, 0x10000000, 0x80000000] + [0xFFFFFFFF] * 4
    out = bytearray()
    for b in data:
        if table[b >> 5] & (1 << (b & 0x1F)):
            out += b"\\x%02X" % b
        else:
            out.append(b)
    return bytes(out)


def _ngx_escape_json(data: bytes) -> bytes:
    # ngx_escape_json: '"' and '\' get a backslash, \n \r \t \b \f, other controls \u00XX
    # ("*dst++ = (ch < 10) ? ('0' + ch) : ('A' + ch - 10)"), every other byte as is.
    out = bytearray()
    short = {0x0A: b"n", 0x0D: b"r", 0x09: b"t", 0x08: b"b", 0x0C: b"f"}
    for b in data:
        if b > 0x1F:
            if b in (0x22, 0x5C):
                out.append(0x5C)
            out.append(b)
        elif b in short:
            out += b"\\" + short[b]
        else:
            out += b"\\u00%d%s" % (b >> 4, b"0123456789ABCDEF"[b & 0xF:(b & 0xF) + 1])
    return bytes(out)


ALL_BYTES = bytes(range(256))


def test_guard_default_escaping_is_ngx_http_log_escape_for_every_byte() -> None:
    value = ALL_BYTES.decode("latin-1")
    got = _render("$http_user_agent", rec(user_agent=value))
    assert got.encode("ascii") == _ngx_log_escape(ALL_BYTES)


def test_defect_json_escaping_is_ngx_escape_json_for_every_ascii_byte() -> None:
    # Before: Python's JSON encoder, "\u001f" where nginx writes "\u001F".
    ascii_bytes = bytes(range(128))
    got = _render("$http_user_agent", rec(user_agent=ascii_bytes.decode("latin-1")), "json")
    assert got.encode("ascii") == _ngx_escape_json(ascii_bytes)
    assert json.loads('"' + got + '"') == ascii_bytes.decode("ascii")


def test_guard_escape_none_writes_ascii_bytes_as_they_are() -> None:
    ascii_bytes = bytes(range(128)).decode("latin-1")
    assert _render("$http_user_agent", rec(user_agent=ascii_bytes), "none") == ascii_bytes


def test_guard_bytes_beyond_ascii_under_json_and_none() -> None:
    # nginx copies them; here UTF-8 is the text it spells (\\uXXXX with escape=json, the line
    # stays ASCII) and a byte that is no UTF-8 the text \xHH: README's divergence.
    ua = "\xc3\xa9\xf0\x9f\x98\x80\xff"  # é, U+1F600, then a lone 0xFF (latin-1 characters)
    got = _render("$http_user_agent", rec(user_agent=ua), "json")
    assert got == "\\u00e9\\ud83d\\ude00\\\\xFF" and json.loads('"' + got + '"') == "é😀\\xFF"
    assert _render("$http_user_agent", rec(user_agent=ua), "none") == "é😀\\xFF"


JSON_FORMAT = (
    '{"time": "$time_iso8601", "remote_addr": "$remote_addr", "xff": '
    '"$proxy_add_x_forwarded_for", "req_id": "$req_id", "user": "$remote_user", '
    '"bytes_sent": $bytes_sent, "request_time": $request_time, "status": $status, '
    '"vhost": "$host", "proto": "$server_protocol", "path": "$uri", "query": "$args", '
    '"request": "$request", "request_uri": "$request_uri", "method": "$request_method", '
    '"referer": "$http_referer", "ua": "$http_user_agent", "x": "$http_x_thing", '
    '"cookie": "$http_cookie", "scheme": "$scheme", "port": "$server_port", '
    '"upstream": "$upstream_addr", "upstream_status": "$upstream_status", '
    '"namespace": "$namespace", "ingress": "$ingress_name", "service": "$service_name"}')

#: Header value bytes h11 takes: visible ASCII, SP/HTAB inside, obs-text.
_VALUE = st.binary(min_size=1, max_size=24).map(
    lambda b: bytes(c for c in b if c in b"\t " or 0x21 <= c <= 0x7E or c >= 0x80)
).filter(lambda b: b != b"" and b[:1] not in b" \t" and b[-1:] not in b" \t")
_TARGET = st.binary(min_size=0, max_size=16).map(
    lambda b: b"/" + bytes(c for c in b if 0x21 <= c <= 0x7E or c >= 0x80))


@settings(max_examples=examples(0.5), deadline=None)
@given(ua=_VALUE, thing=st.lists(_VALUE, min_size=0, max_size=3), cookie=_VALUE,
       target=_TARGET, user=_VALUE)
def test_defect_escape_json_lines_parse_as_json_for_any_request_headers_included(
        ua: bytes, thing: list[bytes], cookie: bytes, target: bytes, user: bytes) -> None:
    import base64

    head = (b"GET " + target + b" HTTP/1.1\r\nHost: a.test\r\nUser-Agent: " + ua
            + b"\r\nCookie: " + cookie + b"\r\nAuthorization: Basic "
            + base64.b64encode(user + b":pw") + b"\r\n"
            + b"".join(b"X-Thing: " + t + b"\r\n" for t in thing)
            + b"Connection: close\r\n\r\n")
    records = _core(head).records
    assert len(records) == 1
    line = _render(JSON_FORMAT, records[0], "json")
    doc = json.loads(line)
    assert line.isascii()
    # The values are the text the client's bytes spell (UTF-8; other bytes as \xHH).
    def text(b: bytes) -> str:
        return b.decode("utf-8", "surrogateescape").translate(
            {0xDC80 + i: f"\\x{0x80 + i:02X}" for i in range(128)})
    if records[0].status != 400:
        assert doc["ua"] == text(ua) and doc["cookie"] == text(cookie)
        assert doc["x"] == ", ".join(text(t) for t in thing)
    assert doc["status"] == records[0].status


# --- the default line ---------------------------------------------------------------------------


_TEXT = st.text(st.characters(max_codepoint=0xFF), max_size=12)


@settings(max_examples=examples(0.5), deadline=None)
@given(ua=st.none() | _TEXT, referer=st.none() | _TEXT, user=st.none() | _TEXT,
       status=st.integers(0, 599), line=st.none() | _TEXT, ip=st.none() | _TEXT,
       service=st.none() | st.just("web"), phase=st.sampled_from([None, "head", "server",
                                                                    "location"]))
def test_guard_default_line_is_the_compiled_default_format_byte_for_byte(
        ua: str | None, referer: str | None, user: str | None, status: int,
        line: str | None, ip: str | None, service: str | None, phase: str | None) -> None:
    r = rec(user_agent=ua, referer=referer, remote_user=user, status=status,
            request_line=line, client_ip=ip, service=service, phase=phase)
    fields = access_fields(r, NOW, UTC)
    fast = format_line(fields)
    # The fast path (no log-format-upstream, or ingress-nginx's own) and the same text
    # compiled as a custom format write the same bytes.
    assert compile_format(DEFAULT_FORMAT).render(r, fields, NOW) == fast
    got: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            got.append(record.getMessage())

    logger = logging.getLogger("test.s29.r5.default")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    h = Keep()
    logger.addHandler(h)
    try:
        AccessLog(logger, clock=lambda: NOW, tz=UTC, settings=ProxySettings())(r)
        AccessLog(logger, clock=lambda: NOW, tz=UTC,
                  settings=ProxySettings(log_format_upstream=DEFAULT_FORMAT))(r)
    finally:
        logger.removeHandler(h)
    assert got == [fast, fast]


# --- every path to a server's location / ------------------------------------------------------

MANIFESTS = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: app, namespace: default, creationTimestamp: '2024-01-01T00:00:00Z',
           annotations: {%s}}
spec:
  rules:
  - host: app.test
    http:
      paths:
      - {path: /api, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: twin, namespace: default, creationTimestamp: '2024-01-02T00:00:00Z',
           annotations: {"nginx.ingress.kubernetes.io/from-to-www-redirect": "true"}}
spec:
  rules:
  - host: twin.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {ports: [{port: 80, targetPort: 8080}]}
"""

#: (request, logged by default: enable-access-log-for-default-backend "false")
PATHS = [
    (b"GET / HTTP/1.1\r\nHost: nobody.test\r\n\r\n", False),      # unknown host
    (b"GET /x HTTP/1.0\r\n\r\n", False),                          # HTTP/1.0, no Host
    (b"GET /other HTTP/1.1\r\nHost: app.test\r\n\r\n", True),     # a known host's other path
    (b"GET /api HTTP/1.1\r\nHost: app.test\r\n\r\n", True),       # a rule (503: no endpoint)
    (b"GET / HTTP/1.1\r\nHost: www.twin.test\r\n\r\n", True),     # the www twin's 308
    (b"OPTIONS * HTTP/1.1\r\nHost: nobody.test\r\n\r\n", True),   # nginx's 400, before phases
    (b"GET / HTTP/1.1\r\nHo st: x\r\n\r\n", True),                # h11's 400
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", True),      # duplicate Host: 400
]


def _paths(annotations: str, settings: ProxySettings, tls: bool = False
           ) -> tuple[list[str], int]:
    """The lines logged for PATHS (one connection each) and the records the metrics got."""
    lines: list[str] = []
    records = 0
    for request, _ in PATHS:
        router = Router(parse_manifests(MANIFESTS % annotations), seed=1)
        pair = ProxyPair(None, settings, router=router, tls=tls)
        proxy = pair.proxy
        seen: list[str] = []

        class Keep(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                seen.append(record.getMessage())

        logger = logging.getLogger("test.s29.r5.paths")
        logger.setLevel(logging.INFO)
        logger.propagate = False
        h = Keep()
        logger.addHandler(h)
        try:
            log = AccessLog(logger, clock=lambda: NOW, tz=UTC, settings=settings,
                            default_server=lambda host: not host
                            or proxy._unrouted_options(host) is None)
            observed: list[RequestRecord] = []

            class Metrics:
                def observe(self, record: RequestRecord) -> None:
                    observed.append(record)

            sink = _record_sink("text", Metrics(), log)  # serve's: metrics, then the log
            assert sink is not None
            pair.send(request)
            for r in pair.records:
                sink(r)
            records += len(observed)
        finally:
            logger.removeHandler(h)
        lines.append(seen[0] if seen else "")
    return lines, records


def test_guard_default_server_requests_are_skipped_on_every_path_that_reaches_it() -> None:
    fmt = ProxySettings(log_format_upstream="$status $host")
    lines, records = _paths("", fmt)
    assert records == len(PATHS)  # the metrics count every one
    assert [bool(x) for x in lines] == [logged for _, logged in PATHS], lines
    assert lines[4] == "308 www.twin.test" and lines[5].startswith(("200", "400"))
    on = ProxySettings(log_format_upstream="$status $host",
                       enable_access_log_for_default_backend=True)
    lines, records = _paths("", on)
    assert all(lines) and records == len(PATHS)
    # Over TLS the same (the Host header picks the server, whatever the SNI named).
    lines, _ = _paths("", fmt, tls=True)
    assert [bool(x) for x in lines] == [logged for _, logged in PATHS]


def test_defect_owners_enable_access_log_false_covers_its_hosts_other_paths() -> None:
    # controller.go createServers: the host's server "location /" gets
    # locationApplyAnnotations(loc, anns) of the host's first Ingress, "loc.Logs =
    # anns.Logs": enable-access-log "false" there is "access_log off;" for every path of the
    # host no rule covers. Before: only a path of a default backend got it (session 27); a
    # path with nothing to serve it (404) was logged.
    lines, records = _paths(f'"{P}enable-access-log": "false"', ProxySettings())
    assert records == len(PATHS)
    assert [bool(x) for x in lines] == [False, False, False, False, True, True, True, True]
    router = Router(parse_manifests(MANIFESTS % f'"{P}enable-access-log": "false"'), seed=1)
    (record,) = _core(b"GET /other HTTP/1.1\r\nHost: app.test\r\n\r\n", router=router).records
    assert record.status == 404 and record.access_log is False
    # custom-http-errors' named location still logs, disable-access-log still wins.
    (record,) = _core(b"GET /other HTTP/1.1\r\nHost: app.test\r\n\r\n", router=Router(
        parse_manifests(MANIFESTS % ""), seed=1), settings=ProxySettings(
        disable_access_log=True)).records
    assert record.access_log is False


# --- reload while requests are in flight --------------------------------------------------------


def test_guard_reconfiguring_between_and_during_requests(captured: io.StringIO) -> None:
    # The format in force when a request ends writes its line (nginx's old workers finish their
    # requests with the old format: README's divergence); a bad format never reaches here
    # (the ConfigMap keeps the previous settings), and toggling costs no request its line.
    pair = ProxyPair([Route()], None)
    log = AccessLog(clock=lambda: NOW, tz=UTC,
                    settings=parse_config_data({"log-format-upstream": "A $status"}).settings)
    pair.send(b"GET /1 HTTP/1.1\r\nHost: a.test\r\n\r\n")
    log.configure(parse_config_data({"log-format-upstream": "B ${status} $http_x",
                                     "log-format-escape-json": "true"}).settings)
    for r in pair.records:
        log(r)
    pair.send(b"GET /2 HTTP/1.1\r\nHost: a.test\r\nX: \"q\"\r\n\r\n")
    log.configure(ProxySettings())
    log.configure(parse_config_data({"log-format-upstream": "C $status"}).settings)
    for r in pair.records[1:]:
        log(r)
    assert captured.getvalue().splitlines() == ["B 200 ", 'C 200']
    with pytest.raises(ValidationError):
        parse_config_data({"log-format-upstream": "D $nope"})


# --- through ProxyServer on 127.0.0.1 -----------------------------------------------------------


def test_defect_through_proxy_server_scheme_port_and_headers(captured: io.StringIO) -> None:
    from _router_helpers import ingress, resources, service, slice_

    from ingresslib._models import ServicePort
    from ingresslib.proxy._server import ProxyServer

    settings = ProxySettings(log_format_upstream=(
        "$scheme $server_port [$http_x_team] [$proxy_add_x_forwarded_for] $status"))

    async def main() -> int:
        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await r.readuntil(b"\r\n\r\n")
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await w.drain()
            w.close()

        up = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = up.sockets[0].getsockname()[1]
        res = resources(
            ingress("web", [("shop.test", "/", "Prefix", "web", 80)], ns="shop"),
            service("web", [ServicePort(port=80, target_port=port)], ns="shop"),
            slice_("web-1", "web", ["127.0.0.1"], ports=((None, port),), ns="shop"))
        server = ProxyServer(Router(res), settings,
                             on_record=AccessLog(clock=lambda: NOW, tz=UTC, settings=settings))
        await server.start(("127.0.0.1", 0))
        listen = server.addresses[0][2]
        try:
            r, w = await asyncio.open_connection("127.0.0.1", listen)
            w.write(b"GET / HTTP/1.1\r\nHost: shop.test\r\nX-Team: a\r\nX-Team: b\r\n"
                    b"X-Forwarded-For: 192.0.2.1\r\nConnection: close\r\n\r\n")
            data = await asyncio.wait_for(r.read(), 2)
            w.close()
            assert b" 200 " in data
        finally:
            await server.shutdown(1)
            up.close()
            await up.wait_closed()
        return int(listen)

    listen = asyncio.run(main())
    assert captured.getvalue().splitlines() == [
        f"http {listen} [a, b] [192.0.2.1, 127.0.0.1] 200"]


def test_guard_records_stay_hashable_and_comparable() -> None:
    # request_headers (the parser's list) is left out of ==, hash and repr.
    (a,) = _core(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n").records
    assert isinstance(hash(a), int) and a == a and "request_headers" not in repr(a)


def test_guard_a_plain_request_calls_no_log_format_code() -> None:
    # Rule 19: the record's three new fields are keyword arguments (no call); nothing of the
    # log format runs for a request unless an AccessLog with a format writes its line.
    from test_perf_guards_s25 import MANIFESTS as PLAIN, core_request, python_calls

    from ingresslib.proxy._connection import Proxy

    proxy = Proxy(Router(parse_manifests(PLAIN)), records=True)
    core_request(proxy, 1.0)  # warm
    with python_calls() as seen:
        actions = core_request(proxy, 2.0)
    assert seen and [c for c in seen if c[0] in ("_logformat.py", "_accesslog.py")] == []
    assert any(type(a).__name__ == "RequestDone" for a in actions)
