"""Session 30 review (R15) of the log-format-upstream variables added this session
(tests/test_log_variables_s30.py): what a kept record keeps alive, values read when a line is
written late, nginx's ``$sent_http_date`` / ``$sent_http_server`` and ``$server_name`` of a
``from-to-www-redirect`` twin, and every new variable's escaping.

Tests named ``test_defect_*`` fail on the tree before the review; ``test_guard_*`` held.
"""

from __future__ import annotations

import datetime
import gc
import json
import tracemalloc
import weakref
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingresslib import Router, parse_manifests
from ingresslib._accesslog import access_fields
from ingresslib._logformat import compile_format
from ingresslib.proxy import RequestRecord
from ingresslib.proxy._headers import server_token
from ingresslib.proxy._settings import ProxySettings

from _budget import examples
from _proxy_harness import CLOCK, ProxyPair, Reply, Route

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 11, 24, 13, 25, 42, tzinfo=UTC).timestamp()
CLOSE = b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n"


def _render(fmt: str, record: RequestRecord, escape: str = "default") -> str:
    return compile_format(fmt, escape).render(record, access_fields(record, NOW, UTC), NOW)


# --- lifetime: a record kept keeps no connection alive -------------------------------------------


def test_defect_a_kept_record_keeps_no_client_connection_alive() -> None:
    # A user's on_record list, a logging.handlers.MemoryHandler, a queue: the record lives on.
    # It held its ClientConnection (buffers, h11 readers, request state): now a copy of the
    # few values the line reads, which still render once the connection is gone.
    fmt = "$remote_port|$connection_requests|$sent_http_content_length|$realip_remote_addr"
    pair = ProxyPair([Route()], ProxySettings(log_format_upstream=fmt))
    pair.send(CLOSE)
    (record,) = pair.records
    conn = weakref.ref(pair.conn)
    del pair
    gc.collect()
    assert conn() is None
    assert _render(fmt, record) == "40000|1|4|203.0.113.7"


def _kept_bytes_per_record(fmt: str, n: int) -> float:
    pair = ProxyPair([Route()], ProxySettings(log_format_upstream=fmt))
    pair.send(CLOSE)
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for i in range(n):  # n short connections, one request each, every record kept
            pair.conn = pair.proxy.connection(("198.51.100.5", 1024 + i), local_port=80,
                                              now=0.0)
            pair.closed = False
            pair._run(pair.conn.start(0.0))
            pair.send(CLOSE)
        # (the harness's own bookkeeping of each connection's upstream, let go)
        pair.conn = None  # type: ignore[assignment]
        for kept in (pair.upstreams, pair.opens, pair.closes, pair.downstream_closes):
            kept.clear()
        pair.live.clear()
        pair.pool.clear()
        gc.collect()
        return (tracemalloc.get_traced_memory()[0] - base) / n
    finally:
        tracemalloc.stop()


def test_defect_a_kept_record_with_a_format_costs_a_few_hundred_bytes_more() -> None:
    # Measured for 2,000 connections: 1,774 bytes a record kept without a format; 7,145 with
    # one before (its ClientConnection), 2,120 now (the head sent, ~120 bytes, and the copy).
    plain = _kept_bytes_per_record("", 150)
    custom = _kept_bytes_per_record("$status", 150)
    assert custom - plain < 1200, (plain, custom)


def test_guard_pipelined_lines_written_late_read_their_own_request() -> None:
    # Three requests in one read; every line written after the connection closed (a
    # MemoryHandler's flush): each keeps its own number and response head.
    count = iter(range(1, 10))

    def app(request: Any, body: bytes, up: Any) -> Reply:
        n = next(count)
        return Reply(b"HTTP/1.1 200 OK\r\nX-N: %d\r\nContent-Length: %d\r\n\r\n%s"
                     % (n, n, b"x" * n))

    fmt = "$connection_requests|$sent_http_x_n|$sent_http_content_length|$sent_http_connection"
    pair = ProxyPair([Route()], ProxySettings(log_format_upstream=fmt), app=app)
    pair.send(b"GET /1 HTTP/1.1\r\nHost: a.test\r\n\r\nGET /2 HTTP/1.1\r\nHost: a.test\r\n\r\n"
              b"GET /3 HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
    assert [_render(fmt, r) for r in pair.records] == [
        "1|1|1|keep-alive", "2|2|2|keep-alive", "3|3|3|close"]


# --- $sent_http_date, $sent_http_server: nginx's header filter writes them itself -----------------


def _upstream_with_server_and_date(request: Any, body: bytes, up: Any) -> Reply:
    return Reply(b"HTTP/1.1 200 OK\r\nServer: upstream/1\r\n"
                 b"Date: Mon, 01 Jan 2024 00:00:00 GMT\r\nContent-Length: 2\r\n\r\nok")


@pytest.mark.parametrize("kw, server", [
    ({}, "-"),                                      # hidden (proxy_hide_header Server)
    ({"server_tokens": True}, "-"),                 # nginx's own: not in headers_out
    ({"server_tokens": True, "allow_backend_server_header": True}, "upstream/1"),
])
def test_defect_sent_http_date_and_this_hops_own_server_are_unset(kw: dict[str, Any],
                                                                  server: str) -> None:
    # ngx_http_variable_unknown_header reads r->headers_out.headers; ngx_http_header_filter
    # writes Date ("if (r->headers_out.date == NULL)") and its own Server ("if
    # (r->headers_out.server == NULL)") straight into the head, never into that list; the
    # upstream's Date is hidden (ngx_http_proxy_hide_headers), its Server passed only by
    # proxy_pass_header Server (allow-backend-server-header).
    fmt = "$sent_http_server|$sent_http_date|$sent_http_content_length"
    pair = ProxyPair([Route()], ProxySettings(log_format_upstream=fmt, **kw),
                     app=_upstream_with_server_and_date, clock=lambda: CLOCK)
    out = pair.send(CLOSE)
    assert b"\r\ndate: " in out.lower()
    sent = {b"upstream/1": b"upstream/1", b"-": server_token()}[server.encode()]
    assert (b"\r\nServer: " + sent + b"\r\n" in out) is bool(kw)
    (record,) = pair.records
    assert _render(fmt, record) == f"{server}|-|2"


def test_defect_sent_http_server_of_a_local_answer_under_server_tokens() -> None:
    fmt = "$status|$sent_http_server|$sent_http_date|$sent_http_content_type"
    pair = ProxyPair([], ProxySettings(log_format_upstream=fmt, server_tokens=True),
                     clock=lambda: CLOCK)
    out = pair.send(b"GET / HTTP/1.1\r\nHost: nowhere.test\r\nConnection: close\r\n\r\n")
    assert b"Server: " + server_token() in out
    (record,) = pair.records
    assert _render(fmt, record) == "404|-|-|text/plain; charset=utf-8"


# --- $server_name of a www twin ------------------------------------------------------------------

WWW = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: app
  namespace: default
  annotations: {"nginx.ingress.kubernetes.io/from-to-www-redirect": "true"}
spec:
  rules:
  - host: app.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
  - host: www.other.test
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


@pytest.mark.parametrize("host, expected", [
    ("www.app.test", "www.app.test"),     # the twin's redirect server
    ("WWW.App.test:80", "www.app.test"),
    ("other.test", "other.test"),         # the twin of a www. rule host
    ("app.test", "app.test"),
    ("www.www.app.test", "_"),
])
def test_defect_server_name_of_a_from_to_www_twin_is_the_twin(host: str, expected: str) -> None:
    # nginx.tmpl: "{{ range $redirect := .RedirectServers }} ... server { server_name {{
    # $redirect.From }}; ... }": the twin has a server block of its own, which answers the
    # redirect and logs it.
    fmt = "$status $server_name"
    pair = ProxyPair(None, ProxySettings(log_format_upstream=fmt),
                     router=Router(parse_manifests(WWW), seed=1))
    pair.send(f"GET /x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    (record,) = pair.records
    line = _render(fmt, record, "none")
    assert line.split(" ")[1] == expected, line
    if expected.startswith("www.app") or expected == "other.test":
        assert line.split(" ")[0] in ("301", "308")


# --- escaping: every new variable, hostile bytes -------------------------------------------------

_NEW = ("cookie_c", "arg_a", "sent_http_x_h", "server_name", "ssl_server_name", "ssl_protocol",
        "ssl_cipher", "remote_port", "binary_remote_addr", "proxy_protocol_addr",
        "content_length", "connection", "connection_requests", "realip_remote_addr")


class _Proxy:
    """What ``$server_name`` asks of a Proxy: a custom router (no table)."""

    def _server_owners(self) -> None:
        return None


def _hostile_record(text: bytes) -> RequestRecord:
    from types import SimpleNamespace

    from _records import rec

    s = text.decode("latin-1")
    # (ConnectionFacts' attributes, which were the ClientConnection's before the review)
    facts = SimpleNamespace(peer=("2001:db8::1", 5), peer_ip="2001:db8::1", number=7,
                            proxy_protocol_port=None, tls_info=(s, s, s), proxy=_Proxy())
    head = b"HTTP/1.1 200 OK\r\nX-H: " + text + b"\r\nContent-Length: 0\r\n\r\n"
    r = rec(host=s, query="a=" + s.replace("&", ""), client_ip="2001:db8::1",
            request_headers=[(b"Cookie", b"cookie", b"c=" + text.replace(b";", b"")),
                             (b"Content-Length", b"content-length", text)])
    from ingresslib.proxy._actions import set_record_connection
    set_record_connection(r, (facts, 3, head))
    return r


@given(st.binary(min_size=1, max_size=16).filter(lambda b: b"\r" not in b and b"\n" not in b))
@settings(max_examples=examples(0.3), deadline=None)
def test_guard_every_new_variable_escapes_hostile_bytes(text: bytes) -> None:
    r = _hostile_record(text)
    fmt = "|".join(f"${v}" for v in _NEW)
    plain = _render(fmt, r)
    # default (escape=default): printable ASCII only, '"' and '\\' as \xHH
    assert plain.isascii() and plain.isprintable() and '"' not in plain
    assert all(c != "\\" or plain[i + 1:i + 2] == "x" for i, c in enumerate(plain))
    # escape=json: a JSON string each
    doc = json.loads(_render("{" + ",".join(f'"{v}": "${v}"' for v in _NEW) + "}", r, "json"))
    assert set(doc) == set(_NEW)
    assert doc["connection"] == "7" and doc["connection_requests"] == "3"
    # escape=none: the bytes as they came (latin-1 text, then UTF-8 where it spells it)
    if text.isascii():
        s = text.decode()
        assert _render("[$arg_a][$cookie_c][$ssl_server_name]", r, "none") == (
            f"[{s.replace('&', '')}][{s.replace(';', '').lstrip(' ')}][{s}]")


# --- $realip_remote_addr behind a PROXY protocol header -------------------------------------------


def test_defect_realip_remote_addr_behind_proxy_protocol_is_the_balancers() -> None:
    # ngx_http_realip_module keeps the address it replaced: with "real_ip_header
    # proxy_protocol" (ingress-nginx's use-proxy-protocol) the header's sender, the load
    # balancer; $remote_addr and $proxy_protocol_addr are the header's source.
    import asyncio

    from ingresslib.proxy._server import ProxyServer

    fmt = "$remote_addr|$remote_port|$realip_remote_addr|$proxy_protocol_addr"
    settings_ = ProxySettings(log_format_upstream=fmt, use_proxy_protocol=True,
                              proxy_real_ip_cidr=("127.0.0.0/8",))
    records: list[RequestRecord] = []

    async def main() -> None:
        server = ProxyServer(Router(parse_manifests(WWW), seed=1), settings_,
                             on_record=records.append)
        await server.start(("127.0.0.1", 0))
        try:
            r, w = await asyncio.open_connection("127.0.0.1", server.addresses[0][2])
            w.write(b"PROXY TCP4 198.51.100.5 198.51.100.1 41000 80\r\n"
                    b"GET / HTTP/1.1\r\nHost: nowhere.test\r\nConnection: close\r\n\r\n")
            assert b" 404 " in await asyncio.wait_for(r.read(), 3)
            w.close()
        finally:
            await server.shutdown(1)

    asyncio.run(main())
    (record,) = records
    assert _render(fmt, record) == "198.51.100.5|41000|127.0.0.1|198.51.100.5"
