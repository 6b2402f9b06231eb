"""Session 29: the access log format users configure: ``log-format-upstream``,
``log-format-escape-json``, ``log-format-escape-none`` and
``enable-access-log-for-default-backend`` (ingresslib/_logformat.py, _accesslog.py)."""

from __future__ import annotations

import asyncio
import datetime
import io
import json
import logging
import os
import re
import signal
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ingresslib import ValidationError
from ingresslib._accesslog import AccessLog, AccessLogFormatter, configure_access_log
from ingresslib._config import parse_config_data
from ingresslib._logformat import DEFAULT_FORMAT, compile_format
from ingresslib.proxy._settings import ProxySettings

from _records import rec

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 11, 21, 13, 25, 42, tzinfo=UTC).timestamp()
LINE = ('192.0.2.1 - - [21/Nov/2026:13:25:42 +0000] "GET /api/users/7?x=1 HTTP/1.1" 200 150 '
        '"-" "curl/8" 35 0.030 [shop-web] [] 10.0.0.1:8080 100 0.028 200 abc')

#: A JSON format as people write them for ingress-nginx (docs' log-format examples).
JSON_FORMAT = (
    '{"time": "$time_iso8601", "remote_addr": "$remote_addr", "x_forwarded_for": '
    '"$proxy_add_x_forwarded_for", "request_id": "$req_id", "remote_user": "$remote_user", '
    '"bytes_sent": $bytes_sent, "request_time": $request_time, "status": $status, '
    '"vhost": "$host", "request_proto": "$server_protocol", "path": "$uri", '
    '"request_query": "$args", "request_length": $request_length, "method": '
    '"$request_method", "http_referrer": "$http_referer", "http_user_agent": '
    '"$http_user_agent", "upstream": "$upstream_addr", "namespace": "$namespace", '
    '"ingress": "$ingress_name", "service": "$service_name", "port": "$service_port"}')


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


def _log(settings: ProxySettings | None = None, **kw: Any) -> AccessLog:
    return AccessLog(clock=lambda: NOW, tz=UTC, settings=settings, **kw)


def _line(stream: io.StringIO) -> str:
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


# --- the default line ---------------------------------------------------------------------------


def test_the_default_format_is_unchanged_byte_for_byte(captured: io.StringIO) -> None:
    for s in (None, ProxySettings(), ProxySettings(log_format_upstream=DEFAULT_FORMAT)):
        captured.seek(0)
        captured.truncate()
        _log(s)(rec())
        assert _line(captured) == LINE
    # The same text compiled (as a custom format would be) writes the same line.
    captured.seek(0)
    captured.truncate()
    fmt = compile_format(DEFAULT_FORMAT)
    log = _log()
    log._format = fmt
    log(rec())
    assert _line(captured) == LINE


def test_the_default_format_keeps_its_fast_path() -> None:
    log = _log(ProxySettings(log_format_upstream=DEFAULT_FORMAT))
    assert log._format is None
    assert _log(ProxySettings(log_format_upstream="$status"))._format is not None


# --- variables ----------------------------------------------------------------------------------


def test_variables_are_interpolated(captured: io.StringIO) -> None:
    fmt = ("$remote_addr|$request_method|$request_uri|$uri|$args|$query_string|$status|"
           "$body_bytes_sent|$bytes_sent|$request_length|$request_time|$host|"
           "$server_protocol|$upstream_addr|$upstream_status|$upstream_response_length|"
           "$upstream_response_time|$upstream_connect_time|$upstream_header_time|"
           "$proxy_upstream_name|$proxy_alternative_upstream_name|$req_id|$request_id|"
           "$namespace|$ingress_name|$service_name|$service_port|$time_local|$msec|"
           "$time_iso8601")
    r = rec(service_port=80, upstream_connect_time=0.002, upstream_header_time=0.018,
            upstream_response_time=0.028,
            request_line="GET /api/users/7?x=1 HTTP/1.1", body_bytes_out=120)
    _log(ProxySettings(log_format_upstream=fmt))(r)
    assert _line(captured).split("|") == [
        "192.0.2.1", "GET", "/api/users/7?x=1", "/api/users/7", "x=1", "x=1", "200", "120",
        "150", "35", "0.030", "foo.test", "HTTP/1.1", "10.0.0.1:8080", "200", "100", "0.028",
        "0.002", "0.018", "shop-web-80", "", "abc", "abc", "shop", "web", "web", "80",
        "21/Nov/2026:13:25:42 +0000", f"{NOW:.3f}", "2026-11-21T13:25:42+00:00"]


def test_braced_variables_and_literals(captured: io.StringIO) -> None:
    _log(ProxySettings(log_format_upstream="${status}x${request_method}-$status$"[:-1]))(rec())
    assert _line(captured) == "200xGET-200"


def test_quoted_config_string_escapes_are_read_as_nginx_reads_them(
        captured: io.StringIO) -> None:
    # nginx.tmpl writes the value between single quotes: \" and \\ are nginx's escapes there.
    _log(ProxySettings(log_format_upstream='s=\\"$status\\"'))(rec())
    assert _line(captured) == 's="200"'


def test_canary_logs_the_locations_service_and_the_canary_upstream(
        captured: io.StringIO) -> None:
    r = rec(canary=True, service="web-canary", service_port=80, primary_service="web",
            primary_port=8080)
    _log(ProxySettings(log_format_upstream=(
        "$service_name $service_port [$proxy_upstream_name] "
        "[$proxy_alternative_upstream_name]")))(r)
    assert _line(captured) == "web 8080 [shop-web-8080] [shop-web-canary-80]"


# --- escaping -----------------------------------------------------------------------------------


HOSTILE = 'a"b\\c\x01\x7fé\xff'  # latin-1 characters: the bytes the client sent


def test_default_escaping_of_quotes_backslashes_controls_and_high_bytes(
        captured: io.StringIO) -> None:
    _log(ProxySettings(log_format_upstream='"$http_user_agent" "$http_referer"'))(
        rec(user_agent=HOSTILE, referer="\xc3\xa9"))
    # ngx_http_log_escape: ", \, bytes < 0x20 and >= 0x7F as \xHH (upper-case hex).
    assert _line(captured) == '"a\\x22b\\x5Cc\\x01\\x7F\\xE9\\xFF" "\\xC3\\xA9"'


def test_escape_json_writes_parseable_json_for_hostile_values(captured: io.StringIO) -> None:
    ua = 'q"uote\\back\nnew\rline\ttab\x01' + "\xc3\xa9" + "\xff\xfe"
    _log(ProxySettings(log_format_upstream=JSON_FORMAT, log_format_escape_json=True))(
        rec(user_agent=ua, referer='"}, "x": "', remote_user='u"\\'))
    doc = json.loads(_line(captured))
    # ngx_escape_json: " and \ escaped, controls \n-style; UTF-8 as the text it spells, a byte
    # that is no UTF-8 as the text \xHH.
    assert doc["http_user_agent"] == 'q"uote\\back\nnew\rline\ttab\x01é\\xFF\\xFE'
    assert doc["http_referrer"] == '"}, "x": "'
    assert doc["remote_user"] == 'u"\\'
    assert doc["status"] == 200 and doc["bytes_sent"] == 150 and doc["request_time"] == 0.03
    assert (doc["namespace"], doc["ingress"], doc["service"]) == ("shop", "web", "web")
    assert _line(captured).isascii()


def test_escape_none_writes_values_as_they_are(captured: io.StringIO) -> None:
    _log(ProxySettings(log_format_upstream='"$http_user_agent"', log_format_escape_none=True))(
        rec(user_agent='a"b\\c' + "\xc3\xa9"))
    assert _line(captured) == '"a"b\\cé"'


def test_escape_none_wins_over_json_as_in_nginx_tmpl(captured: io.StringIO) -> None:
    _log(ProxySettings(log_format_upstream='"$http_user_agent"', log_format_escape_none=True,
                       log_format_escape_json=True))(rec(user_agent='a"b'))
    assert _line(captured) == '"a"b"'


def test_unset_variables_are_dash_by_default_and_empty_with_json_or_none(
        captured: io.StringIO) -> None:
    fmt = "[$remote_user][$http_referer][$scheme][$http_x_forwarded_for][$sent_http_server]"
    r = rec(remote_user=None, referer=None)
    _log(ProxySettings(log_format_upstream=fmt))(r)
    _log(ProxySettings(log_format_upstream=fmt, log_format_escape_json=True))(r)
    _log(ProxySettings(log_format_upstream=fmt, log_format_escape_none=True))(r)
    assert captured.getvalue().splitlines() == [
        "[-][-][-][-][-]", "[][][][][]", "[][][][][]"]


def test_values_nginx_writes_itself_are_never_escaped_or_empty(captured: io.StringIO) -> None:
    fmt = "$status $body_bytes_sent $request_length $request_time"
    _log(ProxySettings(log_format_upstream=fmt, log_format_escape_json=True))(
        rec(status=0, bytes_out=0, bytes_in=0))
    assert _line(captured) == "000 0 0 0.030"


# --- refused formats and the ConfigMap ----------------------------------------------------------


@pytest.mark.parametrize("text, message", [
    ("$status $no_such_thing", 'unknown "no_such_thing" variable'),
    ("${status", 'the closing bracket in "status" variable is missing'),
    ("trailing $", 'invalid parameter "$"'),
    ("$ status", 'invalid parameter "$ "'),
])
def test_a_format_nginx_refuses_is_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        compile_format(text)
    with pytest.raises(ValidationError) as e:
        parse_config_data({"log-format-upstream": text})
    assert "data.log-format-upstream" in str(e.value) and message in str(e.value)
    with pytest.raises(ValueError, match="log_format_upstream: " + re.escape(message)):
        ProxySettings(log_format_upstream=text)


def test_the_configmap_keys_are_read_and_no_longer_warned_about() -> None:
    cfg = parse_config_data({
        "log-format-upstream": JSON_FORMAT, "log-format-escape-json": "true",
        "log-format-escape-none": "false", "enable-access-log-for-default-backend": "true"})
    s = cfg.settings
    assert (s.log_format_upstream, s.log_format_escape_json, s.log_format_escape_none,
            s.enable_access_log_for_default_backend) == (JSON_FORMAT, True, False, True)
    assert not any("does not implement" in w for w in cfg.warnings), cfg.warnings
    # Every variable of that format is known since the review (R5): no warning at all.
    assert cfg.warnings == ()
    with pytest.raises(ValidationError, match="must be \"true\" or \"false\""):
        parse_config_data({"log-format-escape-json": "yes please"})
    with pytest.raises(ValidationError, match="must not be empty"):
        parse_config_data({"log-format-upstream": " "})


def test_reconfiguring_applies_a_new_format(captured: io.StringIO) -> None:
    log = _log(parse_config_data({"log-format-upstream": "one $status"}).settings)
    log(rec())
    log.configure(parse_config_data({"log-format-upstream": "two ${status}"}).settings)
    log(rec())
    log.configure(ProxySettings())
    log(rec())
    assert captured.getvalue().splitlines() == ["one 200", "two 200", LINE]


def test_the_json_formatter_keeps_its_fields_with_a_custom_format() -> None:
    stream = io.StringIO()
    handler = configure_access_log(stream, "json")
    try:
        _log(ProxySettings(log_format_upstream="$status"))(rec())
    finally:
        logging.getLogger("ingresslib.access").removeHandler(handler)
    doc = json.loads(stream.getvalue())
    assert doc["status"] == 200 and doc["request"] == "GET /api/users/7?x=1 HTTP/1.1"
    assert isinstance(AccessLogFormatter("text"), AccessLogFormatter)


def test_other_handlers_get_the_custom_line_as_the_message() -> None:
    got: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            got.append(record.getMessage())

    logger = logging.getLogger("test.s29.custom")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    h = Keep()
    logger.addHandler(h)
    try:
        AccessLog(logger, clock=lambda: NOW, tz=UTC,
                  settings=ProxySettings(log_format_upstream="$status $host"))(rec())
    finally:
        logger.removeHandler(h)
    assert got == ["200 foo.test"]


# --- enable-access-log-for-default-backend ------------------------------------------------------


def _unrouted(host: str) -> Any:
    return rec(host=host, ingress=None, service=None, namespace=None, rule_path=None,
               status=404, upstreams=(), upstream_status=None, upstream_statuses=(),
               phase="location")


def test_the_default_servers_requests_are_not_logged_unless_enabled(
        captured: io.StringIO) -> None:
    known = {"foo.test"}

    def default_server(host: str) -> bool:
        return host not in known

    log = _log(ProxySettings(), default_server=default_server)
    log(_unrouted("unknown.test"))   # the catch-all server's location /: access_log off
    log(_unrouted(""))               # no Host: the catch-all server too
    log(_unrouted("foo.test"))       # a served host's location /: logged
    log(rec())                       # a rule: logged
    log(rec(host="x.test", ingress=None, service=None, status=400, phase="head"))
    lines = captured.getvalue().splitlines()
    assert len(lines) == 3, lines
    assert "[upstream-default-backend]" in lines[0] and lines[1] == LINE
    captured.seek(0)
    captured.truncate()
    log.configure(ProxySettings(enable_access_log_for_default_backend=True))
    log(_unrouted("unknown.test"))
    assert "404" in _line(captured)


# --- end to end: ProxyServer on 127.0.0.1 -------------------------------------------------------


def _resources(port: int) -> Any:
    from _router_helpers import ingress, resources, service, slice_

    from ingresslib._models import ServicePort

    return resources(
        ingress("web", [("shop.test", "/app", "Prefix", "web", 80)], ns="shop"),
        service("web", [ServicePort(port=80, target_port=port)], ns="shop"),
        slice_("web-1", "web", ["127.0.0.1"], ports=((None, port),), ns="shop"))


async def _upstream() -> asyncio.Server:
    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await r.readuntil(b"\r\n\r\n")
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await w.drain()
        w.close()
    return await asyncio.start_server(handle, "127.0.0.1", 0)


async def _get(port: int, host: str, path: str, ua: str) -> bytes:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {ua}\r\n"
            "Connection: close\r\n\r\n".encode("latin-1"))
    data = await asyncio.wait_for(r.read(), 2)
    w.close()
    return data


def test_through_proxy_server_the_custom_format_and_the_default_server(
        captured: io.StringIO) -> None:
    from ingresslib import Router
    from ingresslib._serve import _default_server
    from ingresslib.proxy._server import ProxyServer

    settings = ProxySettings(log_format_upstream=JSON_FORMAT, log_format_escape_json=True)

    async def main() -> None:
        up = await _upstream()
        port = up.sockets[0].getsockname()[1]
        server: Any = None
        log = AccessLog(settings=settings, default_server=lambda h: _default_server(server, h))
        server = ProxyServer(Router(_resources(port)), settings, on_record=log)
        await server.start(("127.0.0.1", 0))
        try:
            listen = server.addresses[0][2]
            assert b" 200 " in await _get(listen, "shop.test", "/app/x?q=1", 'ag"ent')
            assert b" 404 " in await _get(listen, "nobody.test", "/", "b")   # not logged
            assert b" 404 " in await _get(listen, "shop.test", "/other", "c")  # logged
        finally:
            await server.shutdown(1)
            up.close()
            await up.wait_closed()

    asyncio.run(main())
    docs = [json.loads(x) for x in captured.getvalue().splitlines()]
    assert [(d["vhost"], d["path"], d["status"]) for d in docs] == [
        ("shop.test", "/app/x", 200), ("shop.test", "/other", 404)]
    first = docs[0]
    assert first["http_user_agent"] == 'ag"ent' and first["request_query"] == "q=1"
    assert (first["namespace"], first["ingress"], first["service"], first["port"]) == (
        "shop", "web", "web", "80")
    assert first["upstream"].startswith("127.0.0.1:") and first["method"] == "GET"


# --- serve: the ConfigMap applied at start and on reload -----------------------------------------


def _configmap(data: dict[str, str]) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": "c", "namespace": "n"}, "data": data})


def test_serve_applies_a_configmap_change_and_keeps_the_format_on_a_bad_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from _serve_helpers import free_port

    from ingresslib._cli import main

    manifests = tmp_path / "m.yaml"
    manifests.write_text(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web, namespace: "
        "shop}\nspec:\n  rules:\n  - host: shop.test\n    http:\n      paths:\n      - path: /\n"
        "        pathType: Prefix\n        backend: {service: {name: web, port: {number: 80}}}\n")
    cm = tmp_path / "cm.json"
    cm.write_text(_configmap({"log-format-upstream": "first $status $host"}))
    port = free_port()
    seen: list[str] = []

    def client() -> None:
        def get(host: str) -> None:
            req = urllib.request.Request(f"http://127.0.0.1:{port}/x", headers={"Host": host})
            try:
                urllib.request.urlopen(req, timeout=2).read()
            except Exception:  # noqa: BLE001 - 503/404 answers are what we send
                pass

        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        else:  # pragma: no cover
            seen.append("never listened")
        get("shop.test")
        get("nobody.test")  # the catch-all server: not logged
        bump = cm.stat().st_mtime + 5
        cm.write_text(_configmap({"log-format-upstream": "second ${status} $host"}))
        os.utime(cm, (bump, bump))
        time.sleep(0.6)
        get("shop.test")
        bad = bump + 5
        cm.write_text(_configmap({"log-format-upstream": "third $nonsense"}))
        os.utime(cm, (bad, bad))
        time.sleep(0.6)
        get("shop.test")
        os.kill(os.getpid(), signal.SIGTERM)

    t = threading.Thread(target=client)
    t.start()
    try:
        code = main(["serve", "-f", str(manifests), "--config", str(cm), "--listen",
                     f"127.0.0.1:{port}", "--reload-interval", "0.1", "--shutdown-timeout",
                     "1"])
    finally:
        t.join(10)
    assert code == 0 and not seen
    out = capsys.readouterr()
    lines = [x for x in out.out.splitlines() if x.startswith(("first", "second", "third"))]
    assert lines == ["first 503 shop.test", "second 503 shop.test", "second 503 shop.test"], (
        out.out, out.err)
    assert 'unknown "nonsense" variable' in out.err


# --- cost: the default line does not call into the format's module (rule 19) --------------------


def test_the_default_line_calls_no_log_format_code(captured: io.StringIO) -> None:
    from test_perf_guards_s25 import python_calls

    def is_default_server(host: str) -> bool:
        return True

    log = AccessLog(clock=lambda: NOW, tz=UTC, settings=ProxySettings(),
                    default_server=is_default_server)
    log(rec())  # warm
    with python_calls() as seen:
        log(rec())
    assert seen and [c for c in seen if c[0] == "_logformat.py"] == []
    # default_server is asked for requests no rule routed only.
    assert [c for c in seen if c[1] == "is_default_server"] == []
