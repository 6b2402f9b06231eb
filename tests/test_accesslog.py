"""ingresslib._accesslog: ingress-nginx's default line, JSON, and library logging etiquette."""

from __future__ import annotations

import datetime
import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingresslib._accesslog import (
    FIELDS,
    AccessLog,
    AccessLogFormatter,
    access_fields,
    configure_access_log,
    format_line,
    upstream_names,
)

from _records import rec

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 11, 21, 13, 25, 42, tzinfo=UTC).timestamp()


LINE = ('192.0.2.1 - - [21/Nov/2026:13:25:42 +0000] "GET /api/users/7?x=1 HTTP/1.1" 200 150 '
        '"-" "curl/8" 35 0.030 [shop-web] [] 10.0.0.1:8080 100 0.028 200 abc')


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


def test_default_line_is_byte_exact(captured: io.StringIO) -> None:
    AccessLog(clock=lambda: NOW, tz=UTC)(rec())
    assert captured.getvalue() == LINE + "\n"


def test_request_refused_before_parsing_logs_dash_not_empty_method_and_path() -> None:
    # Review item 5: nginx logs "-" for a $request it never parsed, never "  HTTP/1.1".
    r = rec(method="", path="", query=None, status=400, bytes_out=16, upstreams=(),
            upstream_status=None, upstream_statuses=(), upstream_connect=None,
            upstream_first_byte=None, request_id=None, user_agent=None, service=None,
            namespace=None, ingress=None, rule_path=None, bytes_in=0, end=100.0)
    f = access_fields(r, NOW, UTC)
    assert f["request"] is None
    assert format_line(f) == ('192.0.2.1 - - [21/Nov/2026:13:25:42 +0000] "-" 400 16 "-" "-" 0 '
                              '0.000 [] [] - - - - -')  # refused before routing (session 16)
    assert json.loads(AccessLogFormatter("json").format(logging.makeLogRecord(
        {"access": f})))["request"] is None
    assert access_fields(rec(path=""), NOW, UTC)["request"] == "GET -?x=1 HTTP/1.1"
    assert access_fields(rec(method=""), NOW, UTC)["request"] == "- /api/users/7?x=1 HTTP/1.1"


def test_request_refused_by_the_core_logs_its_request_line() -> None:
    # A header nginx cannot parse after a good request line: $request is that line
    # (ngx_http_variable_request_line, r->request_line set once the line parsed).
    from _proxy_harness import ProxyPair

    pair = ProxyPair()
    pair.send(b"GET / HTTP/1.1\r\nHost: example.test\r\nX-A: a\x01b\r\n\r\n")
    assert '"GET / HTTP/1.1" 400 ' in format_line(access_fields(pair.records[0], NOW, UTC))


def test_leading_line_ends_are_not_part_of_the_refused_request_line() -> None:
    from _proxy_harness import ProxyPair

    # A head refused for its bare LFs: nginx's $request starts past the CR / LF it skipped
    # (ngx_http_parse_request_line's sw_start sets request_start at each byte it skips), so
    # the leading LF is not in it. Only empty lines, then a close, is "-" (tests/test_h1_s33.py).
    pair = ProxyPair()
    pair.send(b"\nGET / HTTP/1.1\n\n")
    assert '"GET / HTTP/1.1" 400 ' in format_line(access_fields(pair.records[0], NOW, UTC))


def test_time_local_uses_the_zone_and_english_months() -> None:
    tz = datetime.timezone(datetime.timedelta(hours=-5, minutes=-30))
    f = access_fields(rec(), NOW, tz)
    assert f["time_local"] == "21/Nov/2026:07:55:42 -0530"
    may = datetime.datetime(2026, 5, 1, 0, 0, 0, tzinfo=UTC).timestamp()
    assert access_fields(rec(), may, UTC)["time_local"] == "01/May/2026:00:00:00 +0000"


def test_local_answer_without_upstream() -> None:
    r = rec(rule_path=None, ingress=None, service=None, namespace=None, status=404, query=None,
            upstreams=(), upstream_statuses=(), upstream_status=None, upstream_connect=None,
            upstream_first_byte=None, upstream_response_length=0, request_id=None,
            client_ip=None, user_agent=None, http_version="1.0", end=100.0004)
    assert format_line(access_fields(r, NOW, UTC)) == (
        '- - - [21/Nov/2026:13:25:42 +0000] "GET /api/users/7 HTTP/1.0" 404 150 "-" "-" 35 '
        '0.000 [upstream-default-backend] [] - - - - -')


def test_retries_list_every_upstream() -> None:
    r = rec(upstreams=(("10.0.0.1", 8080), ("fd00::2", 8080)), upstream_statuses=(None, 502))
    f = access_fields(r, NOW, UTC)
    assert f["upstream_addr"] == "10.0.0.1:8080, [fd00::2]:8080"
    assert f["upstream_status"] == "-, 502"


def test_upstream_response_time_is_the_last_tries_time_from_its_start() -> None:
    # nginx's $upstream_response_time counts from the try's start (its connect), not from the
    # connection being up (0.028 here before); the core's record carries it.
    assert access_fields(rec(upstream_response_time=0.0304), NOW, UTC)[
        "upstream_response_time"] == "0.030"
    # A try that never connected still has a time in nginx (before: "-").
    failed = rec(status=502, upstream_connect=None, upstream_first_byte=None,
                 upstream_statuses=(None,), upstream_status=None, upstream_response_time=1.5)
    assert access_fields(failed, NOW, UTC)["upstream_response_time"] == "1.500"
    # A record without the field (built by other code): from the connect, as before.
    assert access_fields(rec(), NOW, UTC)["upstream_response_time"] == "0.028"
    # The line itself keeps ingress-nginx's default format (no $upstream_header_time).
    line = format_line(access_fields(rec(upstream_header_time=0.01,
                                         upstream_response_time=0.0304), NOW, UTC))
    assert line == LINE.replace(" 0.028 ", " 0.030 ")


def test_canary_names() -> None:
    r = rec(canary=True, service="web-canary")
    assert upstream_names(r) == ("shop-web-canary", "shop-web-canary")
    assert upstream_names(rec()) == ("shop-web", "")


def test_optional_record_fields_give_ingress_nginx_upstream_names() -> None:
    # A record type carrying the backend port and, for a canary, the main backend (what the
    # core may add to RequestRecord) gets ingress-nginx's "namespace-service-port" names.
    import dataclasses

    @dataclasses.dataclass(frozen=True)
    class Rich:
        service: str | None = "web-canary"
        namespace: str | None = "shop"
        canary: bool = True
        service_port: int | str | None = 8080
        primary_service: str | None = "web"
        primary_port: int | str | None = "http"

    assert upstream_names(Rich()) == ("shop-web-http", "shop-web-canary-8080")  # type: ignore[arg-type]
    assert upstream_names(Rich(canary=False)) == ("shop-web-canary-8080", "")  # type: ignore[arg-type]


def test_hostile_values_are_escaped_like_nginx() -> None:
    # Record strings are the received bytes read as latin-1 (the core's decoding): "é" is the
    # byte E9. A character above U+00FF (only other code builds such a record) logs as UTF-8.
    r = rec(user_agent='a"b\\c\x01é\x7f', referer="http://x/\r\n1.2.3.4 - - [", path="/€",
            request_id="i d\n")
    line = format_line(access_fields(r, NOW, UTC))
    assert '"a\\x22b\\x5Cc\\x01\\xE9\\x7F"' in line
    assert '"http://x/\\x0D\\x0A1.2.3.4 - - ["' in line
    assert '"GET /\\xE2\\x82\\xAC?x=1 HTTP/1.1"' in line
    assert line.endswith(" i d\\x0A")
    assert "\n" not in line and "\r" not in line and line.isascii()


def test_json_has_the_same_fields() -> None:
    stream = io.StringIO()
    handler = configure_access_log(stream, "json")
    logger = logging.getLogger("ingresslib.access")
    try:
        AccessLog(clock=lambda: NOW, tz=UTC)(rec())
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
        logger.propagate = True
    obj = json.loads(stream.getvalue())
    assert set(FIELDS) <= set(obj)
    assert obj["status"] == 200 and obj["body_bytes_sent"] == 150
    assert obj["request"] == "GET /api/users/7?x=1 HTTP/1.1"
    assert obj["proxy_upstream_name"] == "shop-web"
    assert obj["http_referer"] is None
    assert obj["time_local"] == "21/Nov/2026:13:25:42 +0000"
    assert obj["path"] == "/api" and obj["ingress"] == "shop/web"
    # Same values as the text line, field by field.
    text = format_line(access_fields(rec(), NOW, UTC))
    assert text == LINE


def test_configure_twice_replaces_the_handler() -> None:
    a, b = io.StringIO(), io.StringIO()
    configure_access_log(a, "text")
    hb = configure_access_log(b, "text")
    logger = logging.getLogger("ingresslib.access")
    try:
        AccessLog(clock=lambda: NOW, tz=UTC)(rec())
    finally:
        logger.removeHandler(hb)
        logger.setLevel(logging.NOTSET)
        logger.propagate = True
    assert a.getvalue() == "" and b.getvalue() == LINE + "\n"


def test_formatter_passes_other_records_through() -> None:
    fmt = AccessLogFormatter("json")
    r = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %s", ("you",), None)
    assert fmt.format(r) == "hello you"
    with pytest.raises(ValueError):
        AccessLogFormatter("xml")  # type: ignore[arg-type]


def test_fields_ride_along_for_any_handler() -> None:
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    logger = logging.getLogger("test.accesslog.custom")
    logger.setLevel(logging.INFO)
    h = Keep()
    logger.addHandler(h)
    try:
        AccessLog(logger, clock=lambda: NOW, tz=UTC)(rec())
    finally:
        logger.removeHandler(h)
    assert len(seen) == 1
    assert seen[0].getMessage() == LINE
    assert seen[0].access["status"] == 200  # type: ignore[attr-defined]


def test_library_adds_only_a_null_handler_and_prints_nothing() -> None:
    # A fresh interpreter: other tests (the CLI's) configure handlers in this process.
    code = """
import logging, sys
sys.path.insert(0, "tests")
import ingresslib._accesslog, ingresslib._metrics
from test_accesslog import rec
from ingresslib._accesslog import AccessLog
for name in ("ingresslib", "ingresslib.access"):
    hs = logging.getLogger(name).handlers
    assert all(isinstance(h, logging.NullHandler) for h in hs), (name, hs)
assert any(isinstance(h, logging.NullHandler) for h in logging.getLogger("ingresslib").handlers)
assert not logging.getLogger().handlers
AccessLog()(rec())
logging.getLogger("ingresslib.access").warning("even a warning stays quiet")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd=Path(__file__).parent.parent)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "" and out.stderr == ""


def test_disabled_logger_builds_nothing() -> None:
    calls = []

    def clock() -> float:
        calls.append(1)
        return NOW

    logger = logging.getLogger("test.accesslog.quiet")
    logger.setLevel(logging.WARNING)
    AccessLog(logger, clock=clock)(rec())
    assert calls == []


def test_a_record_from_the_proxy_core() -> None:
    # End to end through the sans-IO core (in memory): the record it emits formats as expected
    # (the upstream answers "ok /api/x?q=1": 13 body bytes).
    import re

    from _proxy_harness import ProxyPair, Route

    pair = ProxyPair([Route(path="/api", host="foo.test")])
    out = pair.send(b"GET /api/x?q=1 HTTP/1.1\r\nHost: foo.test\r\nUser-Agent: t/1\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200")
    assert len(pair.records) == 1
    line = format_line(access_fields(pair.records[0], NOW, UTC))
    assert re.fullmatch(
        r'203\.0\.113\.7 - - \[21/Nov/2026:13:25:42 \+0000\] "GET /api/x\?q=1 HTTP/1\.1" 200 '
        r'\d+ "-" "t/1" \d+ \d+\.\d{3} \[default-web(-\d+)?\] \[\] 10\.0\.0\.1:8080 13 '
        r'\d+\.\d{3} 200 0123456789abcdef0123456789abcdef', line), line


# --- Review against nginx's log module (ngx_http_log_module.c, ngx_http_upstream.c) ----------


def test_status_is_printed_with_three_digits() -> None:
    # ngx_http_log_status / ngx_http_variable_status: ``ngx_sprintf(buf, "%03ui", status)``,
    # status 0 when none was sent: nginx logs "000", never "0".
    line = format_line(access_fields(rec(status=0), NOW, UTC))
    assert ' "GET /api/users/7?x=1 HTTP/1.1" 000 150 ' in line
    # JSON keeps the number.
    assert access_fields(rec(status=0), NOW, UTC)["status"] == 0


def test_upstream_response_length_lists_one_length_per_try() -> None:
    # ngx_http_upstream_response_length_variable prints ``state[i].response_length`` for every
    # try, ", "-separated; a try that was abandoned for the next one never reached
    # ngx_http_upstream_finalize_request (the only place response_length is set), so it stays
    # at the 0 of its ngx_memzero'd state: "0, 100", like "10.0.0.1:8080, 10.0.0.2:8080".
    r = rec(upstreams=(("10.0.0.1", 8080), ("10.0.0.2", 8080), ("10.0.0.3", 8080)),
            upstream_statuses=(502, None, 200))
    f = access_fields(r, NOW, UTC)
    assert f["upstream_response_length"] == "0, 0, 100"
    assert " 10.0.0.1:8080, 10.0.0.2:8080, 10.0.0.3:8080 0, 0, 100 " in format_line(f)
    # One try: the number itself (JSON keeps it a number).
    assert access_fields(rec(), NOW, UTC)["upstream_response_length"] == 100


def test_header_bytes_are_escaped_as_the_bytes_received() -> None:
    # nginx escapes the bytes it received (ngx_http_log_escape: each byte < 0x20 or > 0x7E,
    # '"' and '\\' as \\xHH). The core keeps header values byte for byte (decoded latin-1):
    # a UTF-8 "é" (C3 A9) is logged \\xC3\\xA9, not the UTF-8 of its latin-1 reading.
    from _proxy_harness import ProxyPair, Route

    pair = ProxyPair([Route(path="/api", host="foo.test")])
    pair.send(b"GET /api/x HTTP/1.1\r\nHost: foo.test\r\nUser-Agent: caf\xc3\xa9 \xff\t\"\\\r\n"
              b"Referer: http://r/\xe9\r\n\r\n")
    line = format_line(access_fields(pair.records[0], NOW, UTC))
    assert '"http://r/\\xE9" "caf\\xC3\\xA9 \\xFF\\x09\\x22\\x5C"' in line, line


def test_basic_auth_user_follows_nginx() -> None:
    # ngx_http_auth_basic_user, the source of $remote_user.
    from ingresslib._accesslog import basic_auth_user

    assert basic_auth_user("Basic dXNlcjpwYXNz") == "user"          # user:pass
    assert basic_auth_user(b"bAsIc   dXNlcjpwYXNz") == "user"        # any case, extra spaces
    assert basic_auth_user("Basic dTpw") == "u"                      # unpadded: u:p
    assert basic_auth_user("Basic dXNlcjo=") == "user"               # user: (empty password)
    assert basic_auth_user("Basic dXNlcjo=garbage") == "user"        # decoding stops at "="
    assert basic_auth_user("Basic OnBhc3M=") is None                 # :pass (empty user)
    assert basic_auth_user("Basic dXNlcg==") is None                 # no colon
    assert basic_auth_user("Basic dXNl*jpwYXNz") is None             # outside the alphabet
    assert basic_auth_user("Basic dXNlc") is None                    # length 4n+1
    assert basic_auth_user("Basic ") is None
    assert basic_auth_user("Bearer dXNlcjpwYXNz") is None
    assert basic_auth_user("Basic\tdXNlcjpwYXNz") is None
    assert basic_auth_user(None) is None
    # Bytes stay bytes (latin-1): "é\n" (C3 A9 0A) as the user.
    assert basic_auth_user("Basic w6kKOng=") == "\xc3\xa9\n"


def test_remote_user_from_the_record_is_logged_escaped() -> None:
    # $remote_user is client-chosen and unquoted in the line: a forged "\n" must not split it.
    from ingresslib._accesslog import basic_auth_user

    user = basic_auth_user("Basic w6kKOng=")
    line = format_line(access_fields(rec(remote_user=user), NOW, UTC))
    assert line.startswith("192.0.2.1 - \\xC3\\xA9\\x0A [21/Nov/2026:13:25:42 +0000] "), line
    assert "\n" not in line
    assert access_fields(rec(), NOW, UTC)["remote_user"] is None   # no user sent


def test_json_lines_are_ascii_so_a_client_cannot_split_or_drop_them() -> None:
    # A header byte 0x85 reaches the record as U+0085 (NEL), a line break for str.splitlines
    # and some log readers; U+2028 likewise. Written raw, such a value also makes an entry
    # unencodable on an ASCII stream: the logging machinery drops the entry (and prints a
    # traceback), so a client could erase its own entry. JSON entries are pure ASCII.
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="ascii", write_through=True)
    handler = configure_access_log(stream, "json")
    logger = logging.getLogger("ingresslib.access")
    errors = io.StringIO()
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(sys, "stderr", errors)
            AccessLog(clock=lambda: NOW, tz=UTC)(rec(user_agent="a\x85b\u2028c\xff"))
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
        logger.propagate = True
    assert errors.getvalue() == ""
    text = raw.getvalue().decode("ascii")
    assert len(text.splitlines()) == 1
    assert json.loads(text)["http_user_agent"] == "a\x85b\u2028c\xff"


def test_request_line_as_received_when_the_record_carries_it() -> None:
    # nginx $request is the "full original request line": a refused "/../x" or an
    # absolute-form target stays visible. The record's ``request_line`` wins over the line
    # rebuilt from the canonical path; it is escaped like any client value.
    refused = rec(method="GET", path="", query=None, status=400, request_line="GET /../x HTTP/1.1")
    assert access_fields(refused, NOW, UTC)["request"] == "GET /../x HTTP/1.1"
    line = format_line(access_fields(
        rec(request_line='GET http://foo.test/a"\x7f HTTP/1.1'), NOW, UTC))
    assert '"GET http://foo.test/a\\x22\\x7F HTTP/1.1"' in line
    # None or empty: rebuilt as before.
    assert access_fields(rec(request_line=None), NOW, UTC)["request"] == "GET /api/users/7?x=1 HTTP/1.1"


@pytest.mark.parametrize("target,status", [
    (b"/api/./x/../%7ey?q=1", 200),       # routed on /api/~y; logged as sent
    (b"/../etc/passwd", 400),             # refused: the probe is in the log as sent
    (b"/api/%2F..%2Fadmin", 400),
])
def test_request_line_and_user_through_the_core(target: bytes, status: int) -> None:
    # nginx's $request is the "full original request line" and $remote_user the Basic user: the
    # core records both, so a probe it refuses is logged with what it sent.
    from _proxy_harness import ProxyPair, Route

    pair = ProxyPair([Route(path="/api", host="foo.test")])
    out = pair.send(b"GET " + target + b" HTTP/1.1\r\nHost: foo.test\r\n"
                    b"Authorization: Basic dXNlcjpwYXNz\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 %d" % status)
    (record,) = pair.records
    assert record.request_line == "GET " + target.decode() + " HTTP/1.1"
    assert record.remote_user == "user"
    line = format_line(access_fields(record, NOW, UTC))
    assert line.startswith('203.0.113.7 - user [21/Nov/2026:13:25:42 +0000] "GET '
                           + target.decode() + ' HTTP/1.1" %d ' % status), line


def test_a_failed_try_logs_nginx_status_not_a_dash() -> None:
    # End to end through the core: a refused first try, a 200 from the second. nginx's
    # ngx_http_upstream_next sets "u->state->status = status" (502, 504 for a timeout) for the
    # failed try, so $upstream_status is "502, 200" where we used to log "-, 200".
    from _proxy_harness import ProxyPair, Route

    eps = [("10.0.0.1", 80), ("10.0.0.2", 80)]
    pair = ProxyPair([Route("/", endpoints=eps)], refuse=eps[:1])
    pair.send(b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n")
    f = access_fields(pair.records[0], NOW, UTC)
    assert (f["upstream_addr"], f["upstream_status"]) == ("10.0.0.1:80, 10.0.0.2:80", "502, 200")
    assert f["upstream_response_length"] == "0, 4"
