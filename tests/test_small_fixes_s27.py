"""Session 27, helper S1: five small nginx-fidelity fixes.

(Four: a fifth, ``upstream-hash-by``'s ``$http_NAME`` reading a ``_`` spelling, was taken
back by the lead: nginx reads such a header only with ``underscores_in_headers``, which the
Router does not know, and the compiled per-route reader disagreed.)

1. A TLS mirror on a host without a server-level ``proxy_ssl_*`` sends no SNI (ingress-nginx's
   ``buildMirrorLocations`` writes no ``proxy_ssl_server_name``; nginx's default is off).
2. ``proxy-read-timeout`` of an auth answer read with ``auth-keepalive`` runs between two reads
   of its body (nginx's event pipe re-arms ``p->read_timeout`` per read), the head keeping the
   one deadline armed once the subrequest is sent (``ngx_http_upstream_process_header``:
   ``#if 0 ngx_add_timer(rev, u->read_timeout)``): the core and IngressASGI.
3. An auth answer's ``Expires`` is read as ``ngx_parse_http_time`` reads it: GMT, whatever
   zone text follows.
4. The first of two ``X-Accel-Expires`` counts (nginx >= 1.23; ingress-nginx builds 1.25.5:
   ``ngx_http_upstream_process_accel_expires`` ignores a duplicate).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
import types
from typing import Any

import h11
import pytest
import trustme

import ingresslib
from ingresslib.proxy import ProxySettings, TimerKind
from ingresslib.proxy import _server
from ingresslib.proxy._annotations import parse_route_options
from ingresslib.proxy._authcache import lifetime
from ingresslib.proxy._server import ProxyServer

from _proxy_harness import FakeUpstream, ProxyPair, Reply, Route, ok, status_of

P = "nginx.ingress.kubernetes.io/"


# -- 1. the mirror's SNI ---------------------------------------------------------------------

CA = trustme.CA()
LEAF = CA.issue_cert("localhost")


def _yaml(annotations: dict[str, str], port: int) -> str:
    ann = "{" + ", ".join(f'"{k}": "{v}"' for k, v in annotations.items()) + "}"
    return f"""
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
  annotations: {ann}
spec:
  rules:
  - host: a.test
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec: {{ports: [{{port: 80, targetPort: {port}}}]}}
---
apiVersion: v1
kind: Endpoints
metadata: {{name: web}}
subsets: [{{addresses: [{{ip: 127.0.0.1}}], ports: [{{port: {port}}}]}}]
"""


async def _serve(handle: Any, ctx: ssl.SSLContext | None = None) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
    return server, server.sockets[0].getsockname()[1]


def test_a_tls_mirror_without_a_server_level_sends_no_sni(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # "localhost" stands for the mirror's DNS name (an IP address is never sent as SNI); the
    # loopback guard is lifted for the test (the mirror is ours, on 127.0.0.1).
    monkeypatch.setattr(_server, "_reaches_this_host", lambda addr: False)
    real = socket.getaddrinfo

    def v4(host: Any, port: Any, *a: Any, **kw: Any) -> Any:
        return [i for i in real(host, port, *a, **kw) if i[0] == socket.AF_INET]
    monkeypatch.setattr(socket, "getaddrinfo", v4)

    sni: list[str | None] = []
    got: list[bytes] = []
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    LEAF.configure_cert(ctx)
    ctx.sni_callback = lambda obj, name, c: sni.append(name)  # type: ignore[assignment]

    async def mirror(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            got.append(await r.readuntil(b"\r\n\r\n"))
            w.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            await w.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, OSError):
            pass
        finally:
            w.close()

    async def backend(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            await r.readuntil(b"\r\n\r\n")
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nConnection: close\r\n\r\nmain")
            await w.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            w.close()

    async def run() -> bytes:
        msrv, mport = await _serve(mirror, ctx)
        bsrv, bport = await _serve(backend)
        router = ingresslib.Router(ingresslib.parse_manifests(_yaml(
            {P + "mirror-target": f"https://localhost:{mport}$request_uri"}, bport)), seed=0)
        server = ProxyServer(router)
        await server.start(("127.0.0.1", 0))
        try:
            async with asyncio.timeout(5):
                r, w = await asyncio.open_connection("127.0.0.1", server.addresses[0][2])
                w.write(b"GET /m HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
                answer = await r.read()
                w.close()
                while not got or server.mirrors:
                    await asyncio.sleep(0.01)
            return answer
        finally:
            await server.shutdown(0.5)
            msrv.close()
            bsrv.close()

    answer = asyncio.run(run())
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"main")
    assert got and got[0].startswith(b"GET /m HTTP/1.1")
    assert sni == [None]  # before: ["localhost"]


# -- 2. the auth answer's read timeout ---------------------------------------------------------

AUTH = ("10.5.0.1", 4180)
WEB = ("10.0.0.1", 8080)
URL = "http://10.5.0.1:4180/auth"
KA = {P + "auth-keepalive": "4", P + "proxy-read-timeout": "10"}
HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n"


def _pair(annotations: dict[str, str]) -> ProxyPair:
    def app(request: h11.Request, data: bytes, up: FakeUpstream) -> Reply | None:
        if up.endpoint == AUTH:
            return None  # the test sends the auth answer, piece by piece
        return ok(b"backend")
    return ProxyPair([Route(annotations={P + "auth-url": URL, **annotations},
                            endpoints=[WEB])], app=app)


def _trickle(annotations: dict[str, str], pieces: list[tuple[float, bytes]]) -> bytes:
    """The auth answer's ``pieces`` sent, each ``(seconds after the one before, bytes)``,
    by a driver that keeps the core's timer as ProxyServer does (``SetTimer``: armed again
    from now; none: the deadline stays): the timer expires first when a piece comes past
    it. What the client received."""
    p = _pair(annotations)
    out = p.send(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
    [auth] = [u for u in p.upstreams if u.endpoint == AUTH]
    assert p.timer is not None and p.timer[0] is TimerKind.UPSTREAM_READ
    kind, deadline = p.timer[0], p.now + p.timer[1]
    for gap, data in pieces:
        if p.now + gap >= deadline:
            p.now = deadline
            p.timer = None
            p._run(p.conn.timer_expired(kind, p.now))
            return out + bytes(p.received[len(out):])
        p.now += gap
        p.timer = None
        out += p.upstream_send(auth, data)
        if p.timer is not None:  # armed (again) by this read
            kind, deadline = p.timer[0], p.now + p.timer[1]
    return out


def test_core_an_auth_answer_body_trickling_within_the_timeout_between_reads_completes() -> None:
    # Read timeout 10 s: the head at 1 s, then the body one byte every 6 s (0.6 x), 25 s in
    # all. Before: one deadline for the whole answer, 500 at 10 s.
    out = _trickle(KA, [(1.0, HEAD)] + [(6.0, c) for c in (b"a", b"b", b"c", b"d")])
    assert status_of(out) == 200 and out.endswith(b"backend")


def test_core_an_auth_answer_body_stalled_past_the_timeout_fails() -> None:
    # 12 s (1.2 x) without a byte of the body: 500.
    out = _trickle(KA, [(1.0, HEAD), (1.0, b"ab"), (12.0, b"cd")])
    assert status_of(out) == 500


def test_core_the_auth_answer_head_keeps_one_deadline() -> None:
    # nginx reads an upstream's head within proxy_read_timeout of the request sent, not
    # re-armed per read (ngx_http_upstream_process_header): a head trickled over 10 s fails,
    # with auth-keepalive or without.
    pieces = [(6.0, HEAD[:10]), (6.0, HEAD[10:])]
    assert status_of(_trickle(KA, pieces)) == 500
    assert status_of(_trickle({P + "proxy-read-timeout": "10"}, pieces)) == 500
    assert status_of(_trickle(KA, [(6.0, HEAD[:10]), (3.0, HEAD[10:]), (0.0, b"abcd")])) == 200


def _asgi_ask(gaps: list[float], read_timeout: float) -> Any:
    """IngressASGI's auth-keepalive subrequest (``ask_pooled``, what ``ask_auth_service``
    hands an ``auth-keepalive`` route to) to an auth service on 127.0.0.1 answering its head
    at once, then its 4-byte body one byte after each of ``gaps``; the route's
    proxy-read-timeout ``read_timeout`` (a fraction of a second: the annotation takes whole
    seconds, too slow for a test)."""
    from ingresslib._asgi_authkeepalive import ask_pooled

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            await r.readuntil(b"\r\n\r\n")
            w.write(HEAD)
            for gap, c in zip(gaps, b"abcd"):
                await asyncio.sleep(gap)
                w.write(bytes([c]))
            await w.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            w.close()

    async def run() -> Any:
        srv, port = await _serve(handle)
        try:
            opts = parse_route_options({P + "auth-url": f"http://127.0.0.1:{port}/auth",
                                        P + "auth-keepalive": "2"}, "/", ProxySettings(),
                                       where="Ingress default/site")
            assert opts.ext_auth is not None and opts.ext_auth.keepalive is not None
            # (the location's options: its timeouts, and since session 30 its
            # proxy-buffer-size, which bounds the auth answer's head)
            timeouts = types.SimpleNamespace(connect_timeout=2.0, send_timeout=2.0,
                                             read_timeout=read_timeout, proxy_buffer_size=4096)
            async with asyncio.timeout(5):
                return await ask_pooled(opts.ext_auth, b"GET /auth HTTP/1.1\r\nHost: a\r\n\r\n",
                                        timeouts, 4096)
        finally:
            srv.close()
    return asyncio.run(run())


def test_asgi_an_auth_answer_body_trickling_within_the_timeout_between_reads_completes() -> None:
    from ingresslib.proxy._extauth import FAILED

    # 0.5 s between reads; the head and a byte, then a byte every 0.3 s (0.6 x), 0.9 s in
    # all (before: 500 at 0.5 s).
    v = _asgi_ask([0.0, 0.3, 0.3, 0.3], 0.5)
    assert v is not FAILED and v.status == 0
    # One byte, then 0.6 s (1.2 x) of nothing: 500.
    assert _asgi_ask([0.0, 0.6, 0.0, 0.0], 0.5) is FAILED


# -- 3. and 4. Expires and X-Accel-Expires of an auth answer ---------------------------------

WALL = 784108800  # Sun, 06 Nov 1994 08:00:00 GMT
VALID = ((200, 60.0),)


def _expires(value: bytes) -> float:
    return lifetime(VALID, 200, [(b"Expires", b"expires", value)], wall=WALL)


def test_expires_is_read_as_gmt_whatever_the_zone_text() -> None:
    # 08:49:37 is 2977 s after WALL: ngx_parse_http_time stops at the seconds.
    assert _expires(b"Sun, 06 Nov 1994 08:49:37 GMT") == 2977
    assert _expires(b"Sun, 06 Nov 1994 08:49:37 +0200") == 2977  # before: 0 (06:49:37 GMT)
    assert _expires(b"Sun, 06 Nov 1994 08:49:37 PST") == 2977  # before: 31777 (16:49:37 GMT)
    assert _expires(b"Sunday, 06-Nov-94 08:49:37 GMT") == 2977
    assert _expires(b"Sun Nov  6 08:49:37 1994") == 2977
    # Past, invalid (hour 24, 29 Feb of a common year, no time): not cached.
    assert _expires(b"Sun, 06 Nov 1994 07:59:59 GMT") == 0.0
    assert _expires(b"Sun, 06 Nov 1994 24:49:37 GMT") == 0.0
    assert _expires(b"Thu, 29 Feb 2001 00:00:00 GMT") == 0.0
    assert _expires(b"Sun, 06 Nov 1994") == 0.0
    # nginx tells the months apart by the letters it needs ("Nox": November).
    from ingresslib.proxy._authcache import parse_http_time

    assert parse_http_time(b"Sun, 06 Nox 1994 08:49:37 GMT") == WALL + 2977
    assert parse_http_time(b"Tue, 29 Feb 2000 00:00:00 GMT") == 951782400
    assert parse_http_time(b"Thu, 01 Jan 1970 00:00:00 GMT") == 0


def test_expires_without_a_zone_is_gmt_not_local_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")  # UTC+9, no daylight saving
    time.tzset()
    try:
        # Before: read as 08:49:37 in Tokyo, 23:49:37 GMT the day before: past, 0.
        assert _expires(b"Sun, 06 Nov 1994 08:49:37") == 2977
    finally:
        monkeypatch.undo()
        time.tzset()


def test_the_first_x_accel_expires_counts() -> None:
    def life(*values: bytes) -> float:
        return lifetime(VALID, 200, [(b"X-Accel-Expires", b"x-accel-expires", v)
                                     for v in values], wall=WALL)
    assert life(b"5", b"50") == 5.0  # before: 50
    assert life(b"0", b"50") == 0.0  # before: 50 (the first, 0: not cached)
    # The first one invalid: ignored, and so is the duplicate; proxy_cache_valid decides.
    assert life(b"soon", b"50") == 60.0  # before: 50
    assert life(b"@" + str(WALL + 30).encode(), b"5") == 30.0
