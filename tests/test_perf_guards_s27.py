"""Session 27's features cost a request that uses none of them one attribute test each.

auth-cache-*, auth-keepalive*, global-rate-limit*, the PROXY protocol's port 443, digest
lockout and Authentication-Info, the ssl-redirect host's case, satisfy-any's auth header
dropping, the owner location's options of a default backend and proxy-ssl per server were
added to the proxy core and to IngressASGI this session; a plain request of a location
without those annotations must not call into their modules (benchmarks/load/README.md
"Session 27"). Also: the core reads no class-level default through the connection on a
plain request (CPython 3.11 specialises no such read: a generic lookup, about 190
instructions each; ``_digest_info`` was one, ``_parse_next`` and ``_eof`` six more).
"""

from __future__ import annotations

import asyncio
import types
from typing import Any

import pytest
from test_perf_guards_s25 import MANIFESTS, _app, _asgi_call, core_request, python_calls

from ingresslib._asgi import IngressASGI
from ingresslib._load import parse_manifests
from ingresslib._router import Router
from ingresslib.proxy._actions import OpenUpstream
from ingresslib.proxy._connection import ClientConnection, Proxy
from tests._server_helpers import StubRouter
from tests._upstream_helpers import TrackedUpstream, start_proxy

#: The modules of session 27's per-request features (``_digest.py``'s lockout and
#: Authentication-Info functions: the whole module, as session 26's guard has it).
FEATURE_FILES = {"_authcache.py", "_authkeepalive.py", "_server_authpool.py",
                 "_globalratelimit.py", "_auth_unasked.py", "_asgi_authkeepalive.py",
                 "_asgi_fallback_auth.py", "_asgi_unverified.py", "_digest.py", "_proxy_ssl.py"}
#: Session 27's functions in modules a plain request does use.
FEATURE_FUNCTIONS = {"location_host_of", "_primary_pick", "unasked_head", "unasked_pairs",
                     "fallback_auth", "without_client_cert_headers"}

LIMITED = MANIFESTS.replace(
    "nginx.ingress.kubernetes.io/proxy-body-size: 8m",
    "nginx.ingress.kubernetes.io/proxy-body-size: 8m, "
    "nginx.ingress.kubernetes.io/global-rate-limit: '100', "
    "nginx.ingress.kubernetes.io/global-rate-limit-window: 1m")

POST = (b"POST /a HTTP/1.1\r\nHost: plain.test\r\nUser-Agent: t\r\nContent-Length: 3\r\n\r\nabc")
CHUNKED = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"2\r\nok\r\n0\r\n\r\n")


def feature_calls(seen: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(f, n) for f, n in seen if f in FEATURE_FILES or n in FEATURE_FUNCTIONS]


def test_core_plain_request_calls_no_session_27_feature_code() -> None:
    proxy = Proxy(Router(parse_manifests(MANIFESTS)), records=False)
    core_request(proxy, 0.0)  # route options and the Router's lazy state built
    with python_calls() as seen:
        actions = core_request(proxy, 1.0)
    assert seen, "the profile hook saw no call"
    assert feature_calls(seen) == []
    sent = b"".join(getattr(a, "data", b"") for a in actions)
    assert sent.startswith(b"HTTP/1.1 200 ")
    assert b"authentication-info" not in sent.lower()


def test_asgi_plain_request_calls_no_session_27_feature_code() -> None:
    asgi = IngressASGI(parse_manifests(MANIFESTS), {"default/up": _app})
    _asgi_call(asgi, [], [])  # warm
    sent: list[dict[str, Any]] = []
    with python_calls() as seen:
        _asgi_call(asgi, sent, [])
    assert seen and feature_calls(seen) == []
    assert sent[0]["status"] == 200


def test_the_guard_sees_a_global_rate_limit_location() -> None:
    # The control: the same request of a location with global-rate-limit does count.
    proxy = Proxy(Router(parse_manifests(LIMITED)), records=False)
    core_request(proxy, 0.0)
    with python_calls() as seen:
        core_request(proxy, 1.0)
    assert any(f == "_globalratelimit.py" for f, _ in feature_calls(seen))
    asgi = IngressASGI(parse_manifests(LIMITED), {"default/up": _app})
    _asgi_call(asgi, [], [])
    with python_calls() as seen:
        _asgi_call(asgi, [], [])
    assert any(f == "_globalratelimit.py" for f, _ in feature_calls(seen))


def _class_defaults() -> list[str]:
    """ClientConnection's class-level data attributes (not methods, properties or slots)."""
    return [k for k, v in vars(ClientConnection).items()
            if not k.startswith("__") and not callable(v)
            and not isinstance(v, (property, staticmethod, classmethod,
                                   types.MemberDescriptorType, types.GetSetDescriptorType))]


@pytest.mark.parametrize("request_bytes,response", [
    (b"GET /a HTTP/1.1\r\nHost: plain.test\r\nUser-Agent: t\r\n\r\n",
     b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"),
    (POST, CHUNKED),
], ids=["get", "chunked-post"])
def test_core_plain_request_reads_no_class_level_default(
        monkeypatch: pytest.MonkeyPatch, request_bytes: bytes, response: bytes) -> None:
    # A class attribute read through an instance is a generic PyObject_GetAttr in CPython
    # 3.11 (no specialisation): what a plain request reads is assigned in __init__.
    proxy = Proxy(Router(parse_manifests(MANIFESTS)), records=False)
    conn = proxy.connection(("127.0.0.1", 5555), now=0.0)

    def one(now: float) -> bytes:
        conn.start(now)
        cid = [a.conn_id for a in conn.receive_data(request_bytes, now)
               if type(a) is OpenUpstream][0]
        conn.upstream_connected(cid, now, reused=True)
        return b"".join(getattr(a, "data", b"") for a in conn.upstream_data(cid, response, now))

    assert one(0.0).startswith(b"HTTP/1.1 200 ")  # warm: the lazy per-connection state
    read: list[str] = []

    def counting(name: str, default: Any) -> property:
        def get(self: Any) -> Any:
            d = self.__dict__
            if name in d:
                return d[name]
            read.append(name)
            return default

        def put(self: Any, value: Any) -> None:
            self.__dict__[name] = value

        def drop(self: Any) -> None:
            del self.__dict__[name]

        return property(get, put, drop)

    names = _class_defaults()
    assert "_digest_info" in names and "_eof" in names
    for name in names:
        monkeypatch.setattr(ClientConnection, name, counting(name, vars(ClientConnection)[name]))
    assert one(1.0).startswith(b"HTTP/1.1 200 ")
    assert read == []


class _KeepAliveUpstream(TrackedUpstream):
    """Answers every request on a connection with a keep-alive 200 (Content-Length 2)."""

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.writers.append(w)
        try:
            while True:
                await r.readuntil(b"\r\n\r\n")
                w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                await w.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            w.close()


def test_server_plain_requests_call_no_session_27_feature_code() -> None:
    # ProxyServer's own side (auth-keepalive's pools, proxy/_server_authpool.py): plain
    # requests on one client connection, each after the first over the pooled upstream
    # connection.
    async def main() -> tuple[list[tuple[str, str]], bytes, int]:
        up = await _KeepAliveUpstream().start()
        server, port = await start_proxy(StubRouter([("127.0.0.1", up.port)]))
        try:
            r, w = await asyncio.open_connection("127.0.0.1", port)

            async def one() -> bytes:
                w.write(b"GET /a HTTP/1.1\r\nHost: plain.test\r\n\r\n")
                head = await asyncio.wait_for(r.readuntil(b"\r\n\r\n"), 2)
                return head + await asyncio.wait_for(r.readexactly(2), 2)

            got = await one()  # warm: the route's options
            with python_calls() as seen:
                for _ in range(2):
                    got += await one()
            w.close()
            return seen, got, server.pool.idle_count()
        finally:
            await server.shutdown(1)
            await up.stop()

    seen, got, idle = asyncio.run(main())
    assert got.count(b"HTTP/1.1 200 ") == 3 and idle == 1
    assert any(f == "_server.py" for f, _ in seen), "the profile hook saw no server call"
    assert feature_calls(seen) == []
