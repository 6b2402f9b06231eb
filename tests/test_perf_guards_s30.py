"""Session 30's features cost a request that uses none of them one attribute test each.

proxy-buffer-size (the upstream head's limit), proxy-buffering's read-ahead, request
buffering's repick, log-format-upstream's connection variables and the Host of a request
without one were added this session (benchmarks/load/README.md "Session 30"). The feature
files' own guards cover a plain core request and ``_response_buffer.py``
(``test_proxy_buffering_s30.py``) and a records-on request and ``_logformat.py``
(``test_log_variables_s30.py``). Here what they do not cover:

* ``_on_response``'s loop over the dropped response headers compares an upstream's
  ``Server`` line (nearly every response has one) before ``X-Accel-Buffering`` (rare): the
  common line is not compared with the rare name first;
* a new connection without a ``log_format_upstream`` stores neither its peer nor a number
  and takes no number of ``_NUMBERS``;
* a plain request with records on (core, and ``ProxyServer`` with a pooled upstream) calls
  nothing of the session's code: ``_endpoint_host`` (a request with a Host), ``repick`` (an
  unbuffered body), ``_too_big``, the driver's read-ahead (``_check_ahead``,
  ``_pause_upstreams``, ``ahead_fits``, ``ahead_release``) and its record holds no connection.
"""

from __future__ import annotations

import asyncio
import dis
from typing import Any

from test_perf_guards_s25 import MANIFESTS, core_request, python_calls
from test_perf_guards_s27 import _KeepAliveUpstream

import ingresslib.proxy._connection as connection_module
from ingresslib._load import parse_manifests
from ingresslib._router import Router
from ingresslib.proxy import ProxySettings, RequestRecord
from ingresslib.proxy._actions import OpenUpstream, RequestDone, SendDownstream
from ingresslib.proxy._connection import ClientConnection, Proxy
from tests._server_helpers import StubRouter
from tests._upstream_helpers import start_proxy

#: The session's functions in modules a plain request does use, and its own modules.
SESSION_FUNCTIONS = {"_endpoint_host", "repick", "_too_big", "_check_ahead", "_pause_upstreams",
                     "ahead_fits", "ahead_release", "accel_buffer", "log_too_big", "whole",
                     "connection_facts", "set_record_connection"}
SESSION_FILES = {"_response_buffer.py", "_logformat.py"}


def session_calls(seen: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(f, n) for f, n in seen if f in SESSION_FILES or n in SESSION_FUNCTIONS]


# --- _on_response's dropped-header loop ---------------------------------------------------------


def test_an_upstream_server_line_is_compared_before_x_accel_buffering() -> None:
    # Before: "elif name == b'x-accel-buffering'" came first, so every upstream Server line
    # (dropped unless server-tokens and allow-backend-server-header) paid one more bytes
    # compare and 4 bytecodes per response.
    consts = [i.argval for i in dis.get_instructions(ClientConnection._on_response)
              if i.opname == "LOAD_CONST" and i.argval in (b"server", b"x-accel-buffering")]
    assert consts == [b"server", b"x-accel-buffering"]


def _served(settings: ProxySettings, response: bytes) -> bytes:
    proxy = Proxy(Router(parse_manifests(MANIFESTS)), settings, records=False)
    conn = proxy.connection(("127.0.0.1", 5555), now=0.0)
    conn.start(0.0)
    opened = conn.receive_data(b"GET /a HTTP/1.1\r\nHost: plain.test\r\n\r\n", 0.0)
    cid = [a.conn_id for a in opened if type(a) is OpenUpstream][0]
    conn.upstream_connected(cid, 0.0, reused=True)
    return b"".join(a.data for a in conn.upstream_data(cid, response, 0.0)
                    if type(a) is SendDownstream)


def test_the_reordered_loop_drops_and_passes_as_before() -> None:
    response = (b"HTTP/1.1 200 OK\r\nServer: up/1\r\nX-Accel-Buffering: yes\r\n"
                b"Content-Length: 2\r\n\r\nok")
    plain = _served(ProxySettings(), response).lower()
    assert plain.startswith(b"http/1.1 200 ") and plain.endswith(b"\r\n\r\nok")
    assert b"x-accel-buffering" not in plain and b"server: up/1" not in plain
    passing = _served(ProxySettings(server_tokens=True, allow_backend_server_header=True),
                      response).lower()
    assert b"server: up/1\r\n" in passing and b"x-accel-buffering" not in passing


# --- a new connection ---------------------------------------------------------------------------


def test_a_new_connection_without_a_log_format_stores_no_log_facts() -> None:
    proxy = Proxy(Router(parse_manifests(MANIFESTS)), records=True)
    assert not proxy.settings.log_format_upstream
    before = repr(connection_module._NUMBERS)
    conn = proxy.connection(("127.0.0.1", 5555), now=0.0)
    assert repr(connection_module._NUMBERS) == before
    assert not {"peer", "number", "_log_facts", "tls_info", "realip_addr"} & set(vars(conn))
    # The control: with a format, the connection is numbered and keeps its peer.
    fmt = ProxySettings(log_format_upstream="$remote_addr $connection")
    numbered = Proxy(Router(parse_manifests(MANIFESTS)), fmt,
                     records=True).connection(("127.0.0.1", 5555), now=0.0)
    assert vars(numbered)["peer"] == ("127.0.0.1", 5555) and vars(numbered)["number"] >= 1


# --- a plain request ---------------------------------------------------------------------------


def test_core_plain_request_with_records_calls_no_session_30_code() -> None:
    proxy = Proxy(Router(parse_manifests(MANIFESTS)), records=True)
    core_request(proxy, 0.0)  # route options and the Router's lazy state built
    with python_calls() as seen:
        actions = core_request(proxy, 1.0)
    assert seen, "the profile hook saw no call"
    assert any(n == "_send_request" for _, n in seen)
    assert session_calls(seen) == []
    (rec,) = [a.record for a in actions if type(a) is RequestDone]
    assert rec.status == 200 and rec.connection is None


def test_the_session_call_guard_sees_a_request_without_host() -> None:
    # The control: HTTP/1.0 without Host takes the endpoint's (_endpoint_host); the rule
    # without a host takes it.
    any_host = MANIFESTS.replace("  - host: plain.test\n    http:", "  - http:")
    assert any_host != MANIFESTS
    proxy = Proxy(Router(parse_manifests(any_host)), records=False)
    conn = proxy.connection(("127.0.0.1", 5555), now=0.0)
    conn.start(0.0)
    with python_calls() as seen:
        opened = conn.receive_data(b"GET /a HTTP/1.0\r\n\r\n", 0.0)
        cid = [a.conn_id for a in opened if type(a) is OpenUpstream][0]
        sent = conn.upstream_connected(cid, 0.0, reused=True)
    assert ("_connection.py", "_endpoint_host") in session_calls(seen)
    assert b"\r\nhost: 10.0.0.1:8080\r\n" in b"".join(getattr(a, "data", b"") for a in sent)


def test_server_plain_requests_with_records_call_no_session_30_code() -> None:
    # ProxyServer with an on_record consumer and a pooled upstream connection: two plain
    # requests after a warm one; nothing of the read-ahead (the client takes every response).
    async def main() -> tuple[list[tuple[str, str]], bytes, list[RequestRecord], Any]:
        up = await _KeepAliveUpstream().start()
        recs: list[RequestRecord] = []
        server, port = await start_proxy(StubRouter([("127.0.0.1", up.port)]),
                                         on_record=recs.append)
        try:
            r, w = await asyncio.open_connection("127.0.0.1", port)

            async def one() -> bytes:
                w.write(b"GET /a HTTP/1.1\r\nHost: plain.test\r\nUser-Agent: t\r\n\r\n")
                head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 2)
                return head + await asyncio.wait_for(r.readexactly(2), 2)

            got = await one()  # warm
            with python_calls() as seen:
                for _ in range(2):
                    got += await one()
            held = [(d.ahead, d.held) for d in server.connections]
            w.close()
            return seen, got, recs, (held, server.ahead_held)
        finally:
            await server.shutdown(1)
            await up.stop()

    seen, got, recs, (held, total) = asyncio.run(main())
    assert got.count(b"HTTP/1.1 200 ") == 3
    assert len(recs) == 3 and all(r.connection is None for r in recs)
    assert any(f == "_connection.py" and n == "_emit_record" for f, n in seen)
    assert session_calls(seen) == []
    assert held == [(False, 0)] and total == 0
