"""Session 30: the ``log-format-upstream`` variables users put in their formats that were
written unset (``-``) before: ``$server_name``, ``$remote_port``, ``$sent_http_<name>``,
``$cookie_<name>``, ``$arg_<name>``, ``$connection``, ``$connection_requests``,
``$ssl_protocol``, ``$ssl_cipher``, ``$realip_remote_addr``, ``$binary_remote_addr``,
``$content_length``, ``$hostname``, ``$pid``, ``$upstream_cache_status`` (ingresslib/_logformat.py;
``RequestRecord.connection``, set by the core only when a format is configured).

Tests named ``test_defect_*`` fail on the tree before this session; ``test_guard_*`` held.
"""

from __future__ import annotations

import asyncio
import datetime
import io
import json
import logging
import os
import socket
import ssl
from collections.abc import Iterator
from typing import Any

import pytest
import trustme
from hypothesis import given, settings
from hypothesis import strategies as st

from ingresslib import Router, parse_manifests
from ingresslib._accesslog import AccessLog, access_fields, configure_access_log
from ingresslib._logformat import compile_format, unavailable
from ingresslib.proxy import RequestRecord
from ingresslib.proxy._settings import ProxySettings

from _budget import examples
from _proxy_harness import PEER, ProxyPair, Route

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 11, 24, 13, 25, 42, tzinfo=UTC).timestamp()


def _render(fmt: str, record: RequestRecord, escape: str = "default") -> str:
    return compile_format(fmt, escape).render(record, access_fields(record, NOW, UTC), NOW)


def _records(fmt: str, *requests: bytes, router: Any = None, **kw: Any) -> list[RequestRecord]:
    pair = ProxyPair([Route()] if router is None else None,
                     ProxySettings(log_format_upstream=fmt), router=router, **kw)
    for r in requests:
        pair.send(r)
    return pair.records


def _one(fmt: str, request: bytes, escape: str = "default", **kw: Any) -> str:
    (record,) = _records(fmt, request, **kw)
    return _render(fmt, record, escape)


# --- cookies and arguments -----------------------------------------------------------------------


@pytest.mark.parametrize("cookies, name, expected", [
    # ngx_http_parse_multi_header_lines: the name without case, spaces around "=", the value
    # up to ";" (trailing spaces and "," included), every Cookie line in order.
    ([b"a=1; sid=xyz; b=2"], "sid", "xyz"),
    ([b"SID=up"], "sid", "up"),
    ([b"sid = spaced ;x=1"], "sid", "spaced "),
    ([b"x=1", b"sid=second-line"], "sid", "second-line"),
    ([b"sid=first", b"sid=second"], "sid", "first"),
    ([b"a=1, sid=comma"], "sid", "comma"),
    ([b"a=1, sid=comma"], "a", "1, sid=comma"),
    ([b"xsid=1; sid=2"], "sid", "2"),
    ([b"a=sid=3"], "sid", "-"),
    ([b"sid"], "sid", "-"),
    ([b"sid=; a=1"], "sid", ""),
    ([b"other=1"], "sid", "-"),
])
def test_defect_cookie_values_as_nginx_parses_them(cookies: list[bytes], name: str,
                                                  expected: str) -> None:
    head = b"".join(b"Cookie: " + c + b"\r\n" for c in cookies)
    line = _one(f"[$cookie_{name}]", b"GET / HTTP/1.1\r\nHost: a.test\r\n" + head
                + b"Connection: close\r\n\r\n")
    assert line == f"[{expected}]"


@pytest.mark.parametrize("query, name, expected", [
    # ngx_http_arg: the name without case at the start or after "&", then "=": the raw value
    # (not decoded) up to "&".
    ("q=1&x=2", "q", "1"),
    ("Q=up&q=low", "q", "up"),
    ("xq=1&q=2", "q", "2"),
    ("a=q=1&q=2", "q", "2"),
    ("q&q=2", "q", "2"),
    ("q", "q", "-"),
    ("q=", "q", ""),
    ("q=a%20b%22c&z", "q", "a%20b%22c"),
    ("x=1;q=2", "q", "-"),
    ("user_id=7", "user_id", "7"),
])
def test_defect_arguments_as_nginx_finds_them(query: str, name: str, expected: str) -> None:
    line = _one(f"[$arg_{name}]", f"GET /p?{query} HTTP/1.1\r\nHost: a.test\r\n"
                "Connection: close\r\n\r\n".encode())
    assert line == f"[{expected}]"


def test_defect_hostile_cookie_and_argument_values_stay_valid_json() -> None:
    fmt = '{"c": "$cookie_c", "a": "$arg_a", "s": "$status"}'
    request = (b'GET /?a=%22%5C"\\x HTTP/1.1\r\nHost: a.test\r\n'
               b'Cookie: c="q\\uote\xc3\xa9\xff\tx; d=1\r\nConnection: close\r\n\r\n')
    line = _one(fmt, request, "json")
    doc = json.loads(line)
    assert line.isascii()
    # (UTF-8 as the text it spells, a byte that is no UTF-8 as the text \xHH: _logformat._json)
    assert doc == {"c": '"q\\uote\u00e9\\xFF\tx', "a": '%22%5C"\\x', "s": "200"}


@given(st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E,
                             blacklist_characters=";,"), min_size=0, max_size=12))
@settings(max_examples=examples(0.3), deadline=None)
def test_defect_any_cookie_value_comes_back_from_the_json_line(value: str) -> None:
    (record,) = _records("$cookie_k", b"GET / HTTP/1.1\r\nHost: a.test\r\nCookie: j=0; k="
                         + value.encode() + b"\r\nConnection: close\r\n\r\n")
    assert json.loads('"' + _render("$cookie_k", record, "json") + '"') == value.rstrip(" ")


# --- the response head sent ----------------------------------------------------------------------


def test_defect_sent_http_headers_are_the_head_the_client_got() -> None:
    fmt = ("$sent_http_content_type|$sent_http_content_length|$sent_http_connection|"
           "$sent_http_transfer_encoding|$sent_http_keep_alive|$sent_http_x_absent|"
           "$SENT_HTTP_CONTENT_TYPE")

    def app(request: Any, body: bytes, up: Any) -> Any:
        from _proxy_harness import Reply
        if request.target == b"/chunked":
            return Reply(b"HTTP/1.1 200 OK\r\nContent-Type: a/b\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
        return Reply(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                     b"Content-Length: 2\r\n\r\nok")

    records = _records(fmt, b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n",
                       b"GET /chunked HTTP/1.1\r\nHost: a.test\r\n\r\n",
                       b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n", app=app)
    assert [_render(fmt, r) for r in records] == [
        "text/plain|2|keep-alive|-|-|-|text/plain", "a/b|-|keep-alive|chunked|-|-|a/b",
        "text/plain|2|close|-|-|-|text/plain"]


def test_defect_sent_http_of_a_local_answer_and_of_a_request_without_one() -> None:
    fmt = "$status|$sent_http_content_type|$sent_http_connection|$sent_http_location"
    router = Router(parse_manifests(MANIFESTS), seed=1)
    pair = ProxyPair(None, ProxySettings(log_format_upstream=fmt), router=router,
                     app=lambda request, body, up: None)  # a silent upstream
    pair.send(b"GET /nothing HTTP/1.1\r\nHost: app.test\r\n\r\n")  # 404, keep-alive
    pair.send(b"GET /api HTTP/1.1\r\nHost: app.test\r\n\r\n")
    pair.eof()  # the client leaves before an answer: no head (not the 404's)
    first, gone = pair.records
    assert _render(fmt, first) == "404|text/plain; charset=utf-8|keep-alive|-"
    # nginx's Connection is r->keepalive, what the request asked for (ngx_http_handler).
    assert _render(fmt, gone) == "499|-|keep-alive|-"


def test_defect_sent_http_lists_every_line_of_a_name() -> None:
    def app(request: Any, body: bytes, up: Any) -> Any:
        from _proxy_harness import Reply
        return Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-A: 1\r\nx-a: 2\r\n\r\n")
    line = _one("$sent_http_x_a", b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
                app=app)
    assert line == "1, 2"


# --- the connection ------------------------------------------------------------------------------


def test_defect_connection_variables_through_the_core() -> None:
    fmt = ("$remote_port|$connection_requests|$realip_remote_addr|$binary_remote_addr|"
           "$content_length|$upstream_cache_status|$ssl_protocol|$ssl_cipher")
    pair = ProxyPair([Route()], ProxySettings(log_format_upstream=fmt))
    pair.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
    pair.send(b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\n"
              b"Connection: close\r\n\r\nabc")
    first, second = (_render(fmt, r).split("|") for r in pair.records)
    assert PEER == ("203.0.113.7", 40000)
    assert first == ["40000", "1", "203.0.113.7", "\\xCB\\x00q\\x07", "-", "-", "-", "-"]
    assert second[:2] == ["40000", "2"] and second[4] == "3"
    # $connection: nginx's serial number of the connection, the same for both requests and
    # higher for a later connection.
    n1, n2 = (int(_render("$connection", r)) for r in pair.records)
    later = _records("$connection", b"GET / HTTP/1.1\r\nHost: a.test\r\n"
                     b"Connection: close\r\n\r\n")
    assert n1 == n2 and int(_render("$connection", later[0])) > n1


def test_defect_remote_port_is_empty_when_realip_took_the_address_from_a_header() -> None:
    # ngx_http_realip_set_addr: an X-Forwarded-For address gets port 0, written empty.
    s = ProxySettings(log_format_upstream="[$remote_addr][$remote_port][$realip_remote_addr]",
                      use_forwarded_headers=True, proxy_real_ip_cidr=("10.0.0.0/8",))
    pair = ProxyPair([Route()], s, peer=("10.0.0.9", 5555))
    pair.send(b"GET / HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-For: 192.0.2.44\r\n"
              b"Connection: close\r\n\r\n")
    (record,) = pair.records
    assert _render(s.log_format_upstream, record) == "[192.0.2.44][][10.0.0.9]"


def test_defect_binary_remote_addr_of_ipv6() -> None:
    (record,) = _records("$binary_remote_addr", b"GET / HTTP/1.1\r\nHost: a.test\r\n"
                         b"Connection: close\r\n\r\n", peer=("2001:db8::1", 1234))
    assert _render("$binary_remote_addr", record) == (
        " \\x01\\x0D\\xB8" + "\\x00" * 11 + "\\x01")


def test_defect_hostname_and_pid() -> None:
    (record,) = _records("$hostname $pid", b"GET / HTTP/1.1\r\nHost: a.test\r\n"
                         b"Connection: close\r\n\r\n")
    assert _render("$hostname $pid", record) == (
        f"{socket.gethostname().lower()} {os.getpid()}")


# --- $server_name --------------------------------------------------------------------------------

MANIFESTS = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: app, namespace: default, creationTimestamp: '2024-01-01T00:00:00Z'}
spec:
  rules:
  - host: app.test
    http:
      paths:
      - {path: /api, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
  - host: '*.wild.test'
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
  - http:
      paths:
      - {path: /nohost, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: named, namespace: default, creationTimestamp: '2024-01-02T00:00:00Z',
           annotations: {"nginx.ingress.kubernetes.io/server-alias": "alias.test"}}
spec:
  rules:
  - host: named.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{port: 8080}]
endpoints: [{addresses: [10.0.0.1]}]
"""


@pytest.mark.parametrize("host, path, expected", [
    ("app.test", "/api", "app.test"),
    ("APP.test:8080", "/other", "app.test"),         # its server's location /
    ("a.wild.test", "/", "~^(?<subdomain>[\\w-]+)\\.wild\\.test$"),  # buildServerName
    ("alias.test", "/x", "named.test"),            # a server-alias: its server's name
    ("unknown.test", "/", "_"),                    # the catch-all server
    ("unknown.test", "/nohost", "_"),              # a rule without host: the catch-all's
])
def test_defect_server_name_is_the_server_blocks_first_name(host: str, path: str,
                                                            expected: str) -> None:
    router = Router(parse_manifests(MANIFESTS), seed=1)
    line = _one("$server_name", f"GET {path} HTTP/1.1\r\nHost: {host}\r\n"
                "Connection: close\r\n\r\n".encode(), "none", router=router)
    assert line == expected


def test_defect_server_name_of_a_request_without_host_is_the_catch_alls() -> None:
    router = Router(parse_manifests(MANIFESTS), seed=1)
    assert _one("$server_name", b"GET /api HTTP/1.0\r\n\r\n", router=router) == "_"


# --- warnings, defaults, cost --------------------------------------------------------------------


def test_defect_working_variables_are_no_longer_named_unavailable() -> None:
    fmt = ("$server_name $remote_port $sent_http_location $cookie_a $arg_b $connection "
           "$connection_requests $ssl_protocol $ssl_cipher $realip_remote_addr "
           "$binary_remote_addr $content_length $hostname $pid $upstream_cache_status "
           "$proxy_protocol_addr $proxy_protocol_port $proxy_protocol_server_port "
           "$ssl_server_name $geoip_country_code $nginx_version $upstream_bytes_received")
    # (session 32: $upstream_bytes_received is carried now, tests/test_logvars_s32.py)
    assert unavailable(fmt) == ("geoip_country_code", "nginx_version")


def test_guard_a_record_built_elsewhere_writes_the_new_variables_unset() -> None:
    from _records import rec
    fmt = "$server_name|$remote_port|$sent_http_content_type|$connection|$ssl_protocol"
    assert _render(fmt, rec()) == "-|-|-|-|-"
    assert _render(fmt, rec(), "json") == "||||"


def test_defect_the_record_holds_the_connection_only_with_a_format() -> None:
    request = b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"
    pair = ProxyPair([Route()], ProxySettings())
    pair.send(request)
    (plain,) = pair.records
    assert plain.connection is None
    (custom,) = _records("$status", request)
    assert custom.connection is not None
    conn, n, head = custom.connection
    assert n == 1 and head is not None and head.startswith(b"HTTP/1.1 200 ")
    assert custom == RequestRecord(**{**{f: getattr(custom, f) for f in
                                         RequestRecord.__dataclass_fields__},
                                      "connection": None})


# --- end to end: TLS through ProxyServer on 127.0.0.1 --------------------------------------------

TLS_MANIFEST = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: default}
spec:
  tls:
  - {hosts: [tls.test], secretName: tls-cert}
  rules:
  - host: tls.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {ports: [{port: 80, targetPort: %d}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{port: %d}]
endpoints: [{addresses: [127.0.0.1]}]
---
apiVersion: v1
kind: Secret
metadata: {name: tls-cert, namespace: default}
type: kubernetes.io/tls
data: {tls.crt: %s, tls.key: %s}
"""


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


def test_defect_ssl_protocol_and_cipher_through_proxy_server(captured: io.StringIO) -> None:
    import base64

    from ingresslib._tls import CertificateStore
    from ingresslib.proxy._server import ProxyServer

    ca = trustme.CA()
    leaf = ca.issue_cert("tls.test")
    crt = base64.b64encode(b"".join(p.bytes() for p in leaf.cert_chain_pems)).decode()
    key = base64.b64encode(leaf.private_key_pem.bytes()).decode()
    fmt = ('{"proto": "$ssl_protocol", "cipher": "$ssl_cipher", "scheme": "$scheme", '
           '"server": "$server_name", "port": "$remote_port", "n": "$connection_requests", '
           '"ct": "$sent_http_content_type", "arg": "$arg_x", "sni": "$ssl_server_name"}')
    settings_ = ProxySettings(log_format_upstream=fmt, log_format_escape_json=True)
    seen: dict[str, Any] = {}

    async def main() -> None:
        async def backend(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await r.readuntil(b"\r\n\r\n")
            w.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/x-test\r\nContent-Length: 2\r\n"
                    b"Connection: close\r\n\r\nok")
            await w.drain()
            w.close()

        up = await asyncio.start_server(backend, "127.0.0.1", 0)
        port = up.sockets[0].getsockname()[1]
        res = parse_manifests(TLS_MANIFEST % (port, port, crt, key))
        store = CertificateStore()
        store.update(res)
        server = ProxyServer(Router(res), settings_, cert_store=store,
                             on_record=AccessLog(settings=settings_))
        await server.start(("127.0.0.1", 0), ("127.0.0.1", 0))
        try:
            https = [a for a in server.addresses if a[0] == "https"][0][2]
            ctx = ssl.create_default_context()
            ca.configure_trust(ctx)
            ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
            r, w = await asyncio.open_connection("127.0.0.1", https, ssl=ctx,
                                                 server_hostname="tls.test")
            seen["local_port"] = w.get_extra_info("sockname")[1]
            seen["cipher"] = w.get_extra_info("ssl_object").cipher()[0]
            w.write(b"GET /?x=1 HTTP/1.1\r\nHost: tls.test\r\nConnection: close\r\n\r\n")
            seen["answer"] = await asyncio.wait_for(r.read(), 3)
            w.close()
            # No SNI: $ssl_server_name is unset (ngx_http_ssl_variable: not_found).
            bare = ssl.create_default_context()
            bare.check_hostname = False
            bare.verify_mode = ssl.CERT_NONE
            r, w = await asyncio.open_connection("127.0.0.1", https, ssl=bare,
                                                 server_hostname="")
            w.write(b"GET / HTTP/1.1\r\nHost: tls.test\r\nConnection: close\r\n\r\n")
            await asyncio.wait_for(r.read(), 3)
            w.close()
        finally:
            await server.shutdown(1)
            up.close()
            await up.wait_closed()

    asyncio.run(main())
    assert b" 200 " in seen["answer"]
    doc, bare_doc = [json.loads(x) for x in captured.getvalue().splitlines()]
    assert doc == {"proto": "TLSv1.3", "cipher": seen["cipher"], "scheme": "https",
                   "server": "tls.test", "port": str(seen["local_port"]), "n": "1",
                   "ct": "text/x-test", "arg": "1", "sni": "tls.test"}
    assert bare_doc["sni"] == "" and bare_doc["proto"].startswith("TLSv1.")
    assert doc["cipher"].startswith("TLS_")


# --- cost: a request without a format never reaches this session's code --------------------------


def test_guard_a_plain_request_with_records_calls_no_log_format_code() -> None:
    import sys
    from types import FrameType

    seen: list[str] = []

    def prof(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            seen.append(frame.f_code.co_filename.rsplit("/", 1)[-1])

    pair = ProxyPair([Route()], ProxySettings())
    pair.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")  # warm
    sys.setprofile(prof)
    try:
        pair.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
    finally:
        sys.setprofile(None)
    assert len(pair.records) == 2  # (and no connection on it: test_defect_the_record_holds...)
    assert seen and "_logformat.py" not in seen


def test_guard_the_formatter_writes_the_custom_line_or_the_default_one() -> None:
    from _records import rec

    from ingresslib._accesslog import AccessLogFormatter, format_line

    fmt = AccessLogFormatter("text")
    logger = logging.getLogger("ingresslib.access")
    fields = access_fields(rec(), NOW, UTC)
    for extra, expected in (({"access": fields}, format_line(fields)),
                            ({"access": fields, "access_line": None}, format_line(fields)),
                            ({"access": fields, "access_line": "custom"}, "custom")):
        entry = logger.makeRecord(logger.name, logging.INFO, __file__, 0, "%s", ("m",), None,
                                  "AccessLog", extra)
        assert fmt.format(entry) == expected


@given(st.lists(st.text("sSaA=;, \"x\\", max_size=24), max_size=3),
       st.text("aAsS=;, &q", max_size=16), st.sampled_from(["s", "sa", "q"]))
@settings(max_examples=examples(0.3), deadline=None)
def test_guard_cookie_and_argument_lookups_take_any_input(lines: list[str], query: str,
                                                          name: str) -> None:
    # Whatever the header lines and query: a value found is a piece of them, never an error.
    from _records import rec

    r = rec(request_headers=[(b"Cookie", b"cookie", v.encode()) for v in lines], query=query)
    for var, source in ((f"cookie_{name}", "\n".join(lines)), (f"arg_{name}", query)):
        value = compile_format(f"${var}", "none").render(r, access_fields(r, NOW, UTC), NOW)
        assert value in source


def test_defect_proxy_protocol_variables_through_the_core() -> None:
    fmt = ("$proxy_protocol_addr|$proxy_protocol_port|$proxy_protocol_server_port|"
           "$remote_addr|$remote_port|$realip_remote_addr")
    pair = ProxyPair([Route()], ProxySettings(log_format_upstream=fmt))
    # What ProxyServer does with a trusted PROXY header "PROXY TCP4 198.51.100.5 ... 41000 443":
    # its source is the peer, its destination port the connection's.
    pair.conn = pair.proxy.connection(("198.51.100.5", 41000), local_port=80, now=0.0,
                                      proxy_protocol_port=443)
    pair._run(pair.conn.start(0.0))
    pair.send(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
    (record,) = pair.records
    assert _render(fmt, record) == "198.51.100.5|41000|443|198.51.100.5|41000|-"
    (plain,) = _records(fmt, b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
    assert _render(fmt, plain) == "-|-|-|203.0.113.7|40000|203.0.113.7"


def test_defect_the_configmap_warns_only_about_what_is_still_unset() -> None:
    from ingresslib._config import parse_config_data

    cfg = parse_config_data({"log-format-upstream": (
        "$server_name $sent_http_server $cookie_a $arg_b $remote_port $ssl_cipher "
        "$ssl_server_name $connection $connection_requests $upstream_cache_status")})
    assert cfg.warnings == ()
    cfg = parse_config_data({"log-format-upstream": "$pipe $upstream_bytes_sent $scheme"})
    assert cfg.warnings == (  # (session 32: $upstream_bytes_sent is carried now)
        "ConfigMap: data.log-format-upstream: $pipe: not known to "
        'ingresslib\'s request record, logged as unset ("-", empty with '
        "log-format-escape-json/-none)",)
