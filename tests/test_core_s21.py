"""Proxy core follow-ups (C21): the lingering close after a local answer to a request read to
its end, ``Connection: close`` upstream without upstream keepalive, no empty forwarded headers,
the affinity cookie on a 101 (proxy and IngressASGI)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from ingresslib import IngressASGI, Router, parse_manifests
from ingresslib.proxy import CloseDownstream, ProxySettings

sys.path.insert(0, str(Path(__file__).parent))
from _proxy_harness import ProxyPair, Reply, Route, status_of  # noqa: E402
from test_explain_cookie_s14 import MANIFESTS  # noqa: E402

H = b"Host: a.test\r\n"
UNROUTED = [Route(host="other.test")]  # a.test: the default backend's 404
NO_ENDPOINT = [Route(host="a.test", endpoints=[])]  # 503
WS = (b"GET /ws HTTP/1.1\r\nHost: open.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
      b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
WS_101 = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
          b"Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n")


def _head_lines(data: bytes) -> list[tuple[bytes, bytes]]:
    head = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
    return [(n.strip().lower(), v.strip()) for n, v in (line.split(b":", 1) for line in head)]


def _values(lines: list[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    return [v for n, v in lines if n == name]


# 1. A local answer to a request read to its end closes without lingering ---------------------

@pytest.mark.parametrize("routes", [UNROUTED, NO_ENDPOINT], ids=["404", "503"])
@pytest.mark.parametrize(("request_", "linger"), [
    (b"GET /x HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n", False),
    (b"GET /x HTTP/1.0\r\n" + H + b"\r\n", False),
    # A Content-Length body that arrived whole with the head: nothing left to read either.
    (b"POST /x HTTP/1.1\r\n" + H + b"Connection: close\r\nContent-Length: 3\r\n\r\nabc", False),
    # Body bytes still to come: the client may be sending (nginx's r->lingering_close).
    (b"POST /x HTTP/1.1\r\n" + H + b"Connection: close\r\nContent-Length: 3\r\n\r\nab", True),
    # Bytes past the request (pipelined): nginx's "r->header_in->pos < r->header_in->last".
    (b"GET /x HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\nGET / HTTP/1.1\r\n", True),
], ids=["close", "http10", "whole-body", "body-coming", "pipelined"])
def test_a_local_answer_lingers_only_while_input_is_left(routes: list[Route], request_: bytes,
                                                         linger: bool) -> None:
    for tls in (False, True):
        pair = ProxyPair(routes, tls=tls)
        out = pair.send(request_)
        assert status_of(out) in (404, 503) and pair.closed
        # Before: linger=True for every one (the request was not marked complete yet). Over
        # TLS a lingering close holds a client reading to EOF for 5 s, so it follows nginx's
        # rule; plain TCP keeps lingering (its FIN goes first: free for the client, and no
        # reset can overtake the answer if the client sends more).
        assert pair.downstream_closes == [CloseDownstream(linger=linger or not tls)]


def test_a_local_answer_over_tls_closes_as_a_proxied_answer_does() -> None:
    req = b"GET /x HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n"
    proxied = ProxyPair([Route(host="a.test")], tls=True)
    assert status_of(proxied.send(req)) == 200
    local = ProxyPair(NO_ENDPOINT, tls=True)
    assert status_of(local.send(req)) == 503
    assert local.downstream_closes == proxied.downstream_closes == [CloseDownstream(False)]


# 2. upstream-keepalive-connections: 0 -> "Connection: close" upstream -------------------------

def _upstream_lines(pair: ProxyPair) -> list[tuple[bytes, bytes]]:
    return _head_lines(bytes(pair.upstreams[0].raw))


def test_no_upstream_keepalive_sends_connection_close() -> None:
    get = b"GET / HTTP/1.1\r\n" + H + b"\r\n"
    pair = ProxyPair(settings=ProxySettings(upstream_keepalive_connections=0))
    assert status_of(pair.send(get)) == 200
    # nginx.tmpl's $connection_upgrade: '' -> close when UpstreamKeepaliveConnections is 0.
    assert _values(_upstream_lines(pair), b"connection") == [b"close"]  # before: none
    pair = ProxyPair()
    assert status_of(pair.send(get)) == 200
    assert _values(_upstream_lines(pair), b"connection") == []  # '' -> '' with keepalive
    # An upgrade keeps "Connection: upgrade" (the map's default), keepalive or not.
    pair = ProxyPair([Route()], ProxySettings(upstream_keepalive_connections=0),
                     app=lambda r, b, u: Reply(WS_101))
    assert status_of(pair.send(WS)) == 101
    assert _values(_upstream_lines(pair), b"connection") == [b"upgrade"]


# 3. No empty forwarded headers ----------------------------------------------------------------

def test_no_empty_forwarded_headers_from_the_proxy() -> None:
    # HTTP/1.0 without Host, routed by a host-less rule: no "x-forwarded-host:" (was empty).
    pair = ProxyPair([Route()])
    assert status_of(pair.send(b"GET / HTTP/1.0\r\n\r\n")) == 200
    lines = _upstream_lines(pair)
    assert _values(lines, b"x-forwarded-host") == []
    assert _values(lines, b"x-forwarded-for") == [b"203.0.113.7"]
    # No peer address (a unix socket): no "x-forwarded-for:"/"x-real-ip:" (were empty).
    pair = ProxyPair([Route()], peer=None)
    assert status_of(pair.send(b"GET / HTTP/1.1\r\n" + H + b"\r\n")) == 200
    lines = _upstream_lines(pair)
    assert _values(lines, b"x-forwarded-for") == [] and _values(lines, b"x-real-ip") == []
    assert _values(lines, b"x-forwarded-host") == [b"a.test"]
    # The same with a client's chain: the chain alone, never "1.2.3.4, ".
    pair = ProxyPair([Route()], ProxySettings(use_forwarded_headers=True,
                                              compute_full_forwarded_for=True), peer=None)
    assert status_of(pair.send(b"GET / HTTP/1.1\r\n" + H +
                               b"X-Forwarded-For: 198.51.100.1\r\n\r\n")) == 200
    lines = _upstream_lines(pair)
    assert _values(lines, b"x-forwarded-for") == [b"198.51.100.1"]
    assert all(v for _, v in lines if _ != b"content-length")


def _asgi_child_headers(scope_headers: list[tuple[bytes, bytes]], client: Any,
                        http_version: str = "1.1",
                        settings: ProxySettings | None = None) -> list[tuple[bytes, bytes]]:
    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    manifest = (
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: any, namespace: d}\n"
        "spec:\n  rules:\n  - http:\n      paths:\n      - path: /\n        pathType: Prefix\n"
        "        backend: {service: {name: web, port: {number: 80}}}\n")
    asgi = IngressASGI(Router(parse_manifests(manifest)), {"d/web": app},
                       settings=settings or ProxySettings(), require_endpoints=False)
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": http_version,
             "method": "GET", "scheme": "http", "path": "/", "raw_path": b"/",
             "query_string": b"", "root_path": "", "client": client,
             "server": ("127.0.0.1", 80), "headers": scope_headers}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        pass

    coro = asgi(scope, receive, send)
    with pytest.raises(StopIteration):
        coro.send(None)
    return [(bytes(n).lower(), bytes(v)) for n, v in seen[0]["headers"]]


def test_no_empty_forwarded_headers_from_ingress_asgi() -> None:
    lines = _asgi_child_headers([], ("203.0.113.7", 4000), "1.0")
    assert _values(lines, b"x-forwarded-host") == []  # before: [b""]
    assert _values(lines, b"x-forwarded-for") == [b"203.0.113.7"]
    lines = _asgi_child_headers([(b"host", b"a.test")], None)
    assert _values(lines, b"x-forwarded-for") == [] and _values(lines, b"x-real-ip") == []
    assert _values(lines, b"x-forwarded-host") == [b"a.test"]
    lines = _asgi_child_headers([(b"host", b"a.test"), (b"x-forwarded-for", b"198.51.100.1")],
                                None, settings=ProxySettings(use_forwarded_headers=True,
                                                             compute_full_forwarded_for=True))
    assert _values(lines, b"x-forwarded-for") == [b"198.51.100.1"]
    assert _values(lines, b"x-real-ip") == []
    assert all(v for _, v in lines)


# 4. The affinity cookie on a 101 --------------------------------------------------------------

@pytest.mark.parametrize("tls", [False, True])
def test_the_proxy_sets_the_affinity_cookie_on_a_101(tls: bool) -> None:
    pair = ProxyPair(router=Router(parse_manifests(MANIFESTS), seed=0), tls=tls,
                     app=lambda r, b, u: Reply(WS_101))
    out = pair.send(WS)
    assert status_of(out) == 101
    cookies = _values(_head_lines(out), b"set-cookie")
    assert len(cookies) == 1, out  # before: none
    assert cookies[0].startswith(b"INGRESSCOOKIE=") or b"=" in cookies[0]
    assert cookies[0].endswith(b"; Secure") is tls
    # A client that already holds it gets none (sticky.lua sets it for a new session only).
    name = cookies[0].split(b";")[0]
    again = ProxyPair(router=Router(parse_manifests(MANIFESTS), seed=0), tls=tls,
                      app=lambda r, b, u: Reply(WS_101))
    out = again.send(WS.replace(b"\r\n\r\n", b"\r\nCookie: " + name + b"\r\n\r\n"))
    assert status_of(out) == 101 and _values(_head_lines(out), b"set-cookie") == []


@pytest.mark.parametrize("tls", [False, True])
def test_ingress_asgi_sets_the_affinity_cookie_on_websocket_accept(tls: bool) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})

    asgi = IngressASGI(Router(parse_manifests(MANIFESTS), seed=0), {"prod/web": app},
                       settings=ProxySettings(hsts=True))
    scope = {"type": "websocket", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "scheme": "wss" if tls else "ws", "path": "/ws", "raw_path": b"/ws",
             "query_string": b"", "root_path": "", "client": ("127.0.0.1", 4000),
             "server": ("127.0.0.1", 443 if tls else 80), "subprotocols": [],
             "headers": [(b"host", b"open.test"), (b"upgrade", b"websocket"),
                         (b"connection", b"upgrade")]}
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: Any) -> None:
        sent.append(message)

    coro = asgi(scope, receive, send)
    with pytest.raises(StopIteration):
        coro.send(None)
    assert sent[0]["type"] == "websocket.accept"
    lines = [(bytes(n).lower(), bytes(v)) for n, v in sent[0].get("headers", [])]
    cookies = _values(lines, b"set-cookie")
    assert len(cookies) == 1  # before: none
    assert cookies[0].endswith(b"; Secure") is tls
    # HSTS on a wss 101 only, as the proxy core's (session 26: tests/test_loose_ends_s26.py).
    assert _values(lines, b"strict-transport-security") == (
        [b"max-age=31536000; includeSubDomains"] if tls else [])
