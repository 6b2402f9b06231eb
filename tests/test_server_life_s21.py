"""ProxyServer's lifecycle (session 21), and what the proxy reads from a router.

Defects fixed (each test here failed before the fix):

- ``serve_until`` cancelled (a ``TaskGroup`` whose other task failed, ``asyncio.timeout``,
  Ctrl-C under ``asyncio.run``) returned at once and left the server listening and serving;
  asyncio's own ``Server.serve_forever`` closes its server when cancelled. Now it shuts the
  server down as ``shutdown()`` does (requests in flight finish, bounded by its timeout) and
  then lets the ``CancelledError`` go on; a second cancellation cuts the grace short.
- ``async with ProxyServer(...) as server:`` was a TypeError; it now starts the server (unless
  started) and shuts it down on the way out.
- A router wrapper without ``resources`` answered 503 on every basic-auth route, logged as
  "no such Secret" though the Secret existed; the log now says the router exposes no
  ``resources``. API.md named only ``route``, ``next_endpoint`` and ``observe`` among what the
  proxy reads from a router.

``test_serve_until_still_shuts_down_when_stop_is_set`` is a guard (it passed before too).
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import socket
import sys
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from ingresslib import Router, parse_manifests
from ingresslib.proxy import OpenUpstream, Proxy, ProxyServer, SendDownstream

sys.path.insert(0, str(Path(__file__).parent))
from _server_helpers import StubRouter  # noqa: E402

API_MD = Path(__file__).parent.parent / "ingresslib" / "proxy" / "API.md"


# -- a slow upstream and a plain client -----------------------------------------------------------


class Upstream:
    """Answers each request ``200 ok`` once ``release`` is set; ``got`` is set when a request
    head arrived."""

    def __init__(self) -> None:
        self.got = asyncio.Event()
        self.release = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            await r.readuntil(b"\r\n\r\n")
            self.got.set()
            await self.release.wait()
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await w.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            w.close()

    async def __aenter__(self) -> tuple[str, int]:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return ("127.0.0.1", self.server.sockets[0].getsockname()[1])

    async def __aexit__(self, *exc: object) -> None:
        self.release.set()
        assert self.server is not None
        self.server.close()


async def fetch(port: int) -> bytes:
    """One GET, everything the proxy sends back until it closes."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        w.write(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        return await r.read()
    except ConnectionResetError:
        return b""
    finally:
        w.close()


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def port_of(server: ProxyServer) -> int:
    return int(server.urls[0].rsplit(":", 1)[1])


async def until(cond: Callable[[], object], seconds: float = 5.0) -> bool:
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while not cond():
        if loop.time() > end:
            return False
        await asyncio.sleep(0.005)
    return True


async def started(endpoint: tuple[str, int]) -> ProxyServer:
    server = ProxyServer(StubRouter([endpoint]))
    await server.start(("127.0.0.1", 0))
    return server


# -- 1. a cancelled serve_until shuts the server down --------------------------------------------


@pytest.mark.asyncio
async def test_cancelled_serve_until_stops_listening_and_lets_requests_finish() -> None:
    upstream = Upstream()
    async with upstream as ep:
        server = await started(ep)
        port = port_of(server)
        serving = asyncio.create_task(server.serve_until(asyncio.Event(), timeout=30))
        request = asyncio.create_task(fetch(port))
        await asyncio.wait_for(upstream.got.wait(), 5)
        serving.cancel()
        assert await until(lambda: server.draining), "still serving after the cancellation"
        assert not listening(port)
        assert not serving.done()            # the request in flight is given its grace
        upstream.release.set()
        with pytest.raises(asyncio.CancelledError):
            await serving
        out = await asyncio.wait_for(request, 5)
        assert out.startswith(b"HTTP/1.1 200 ") and out.endswith(b"ok")
        assert not server.connections and not server.lingering


async def _group_with_failing_sibling(serve: Coroutine[Any, Any, None]) -> None:
    async def fail() -> None:
        await asyncio.sleep(0)
        raise RuntimeError("boom")

    with pytest.raises(ExceptionGroup) as info:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(serve)
            tg.create_task(fail())
    assert info.group_contains(RuntimeError)


async def _timeout(serve: Coroutine[Any, Any, None]) -> None:
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await serve


@pytest.mark.asyncio
@pytest.mark.parametrize("cancel", [_group_with_failing_sibling, _timeout],
                         ids=["taskgroup", "asyncio.timeout"])
async def test_serve_until_cancelled_by_its_surroundings_stops_the_server(
        cancel: Callable[[Coroutine[Any, Any, None]], Awaitable[None]]) -> None:
    async with Upstream() as ep:
        server = await started(ep)
        port = port_of(server)
        assert listening(port)
        await cancel(server.serve_until(asyncio.Event()))
        assert server.draining and not listening(port)
        assert await fetch_refused(port)


async def fetch_refused(port: int) -> bool:
    try:
        await fetch(port)
    except OSError:
        return True
    return False


@pytest.mark.asyncio
async def test_a_second_cancellation_cuts_the_drain_short() -> None:
    upstream = Upstream()                    # never released: the request would take 60 s
    async with upstream as ep:
        server = await started(ep)
        serving = asyncio.create_task(server.serve_until(asyncio.Event(), timeout=60))
        request = asyncio.create_task(fetch(port_of(server)))
        await asyncio.wait_for(upstream.got.wait(), 5)
        serving.cancel()
        assert await until(lambda: server.draining)
        serving.cancel()
        done, _ = await asyncio.wait({serving}, timeout=10)
        assert serving in done and serving.cancelled()
        assert await asyncio.wait_for(request, 5) == b""   # aborted, no response
        assert not server.connections


@pytest.mark.asyncio
async def test_serve_until_still_shuts_down_when_stop_is_set() -> None:
    async with Upstream() as ep:
        server = await started(ep)
        stop = asyncio.Event()
        serving = asyncio.create_task(server.serve_until(stop))
        await asyncio.sleep(0)
        stop.set()
        await asyncio.wait_for(serving, 10)
        assert server.draining and not listening(port_of(server))
        await asyncio.wait_for(server.shutdown(), 5)   # a second call returns


# -- 2. async with ----------------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_async_with_a_started_server_shuts_it_down_gracefully() -> None:
    upstream = Upstream()
    async with upstream as ep:
        server = await started(ep)
        port = port_of(server)

        async def release_once_draining() -> None:
            await until(lambda: server.draining)
            upstream.release.set()

        async with server as entered:
            assert entered is server and server.urls == [f"http://127.0.0.1:{port}"]
            request = asyncio.create_task(fetch(port))
            await asyncio.wait_for(upstream.got.wait(), 5)
            releaser = asyncio.create_task(release_once_draining())
        assert not listening(port)
        out = await asyncio.wait_for(request, 5)
        assert out.startswith(b"HTTP/1.1 200 ") and out.endswith(b"ok")
        await releaser


@pytest.mark.asyncio
async def test_async_with_an_unstarted_server_calls_start_with_its_defaults() -> None:
    async with Upstream() as ep:
        server = ProxyServer(StubRouter([ep]))
        real_start = server.start
        calls: list[tuple[Any, ...]] = []

        async def start(*args: Any, **kw: Any) -> None:
            calls.append((args, kw))
            await real_start(("127.0.0.1", 0))  # (not 8080 in a test)

        server.start = start  # type: ignore[method-assign]
        async with server:
            assert calls == [((), {})]
            port = port_of(server)
            assert listening(port)
        assert not listening(port) and server.draining
        with pytest.raises(RuntimeError, match="shut down"):
            async with server:
                pass


@pytest.mark.asyncio
async def test_async_with_shuts_down_when_the_block_raises() -> None:
    async with Upstream() as ep:
        server = await started(ep)
        port = port_of(server)
        with pytest.raises(ValueError, match="mine"):
            async with server:
                raise ValueError("mine")
        assert not listening(port)


@pytest.mark.asyncio
async def test_a_start_that_fails_in_async_with_closes_what_it_bound() -> None:
    async with Upstream() as ep:
        server = ProxyServer(StubRouter([ep]))
        real_start = server.start

        async def start(*args: Any, **kw: Any) -> None:
            await real_start(("127.0.0.1", 0))   # the plain listener is bound,
            raise OSError(98, "address already in use")   # the TLS one is not

        server.start = start  # type: ignore[method-assign]
        with pytest.raises(OSError):
            async with server:
                pytest.fail("entered")
        assert not listening(port_of(server))


# -- 3. what the proxy reads from a router --------------------------------------------------------

MANIFESTS = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: admin
  namespace: default
  annotations:
    nginx.ingress.kubernetes.io/auth-type: basic
    nginx.ingress.kubernetes.io/auth-secret: users
spec:
  rules:
  - host: a.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: v1
kind: Secret
metadata: {name: users, namespace: default}
stringData: {auth: "alice:{PLAIN}pw\\n"}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {ports: [{port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, namespace: default, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{port: 80}]
endpoints: [{addresses: [10.0.0.1]}, {addresses: [10.0.0.2]}]
"""
CREDS = base64.b64encode(b"alice:pw")
REQUEST = b"GET / HTTP/1.1\r\nHost: a.test\r\nAuthorization: Basic " + CREDS + b"\r\n\r\n"


class Recording:
    """A router wrapper that hands every attribute on, and records which were asked for."""

    def __init__(self, router: Router, hide: frozenset[str] = frozenset()) -> None:
        self._router = router
        self._hide = hide
        self.asked: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        self.asked.add(name)
        if name in self._hide:
            raise AttributeError(name)
        return getattr(self._router, name)


def _one_request(router: Any) -> list[Any]:
    """A request with good credentials whose first try fails to connect (a retry follows)."""
    proxy = Proxy(router, clock=None, request_id=lambda: "0" * 32)
    proxy.log_annotation_warnings()
    conn = proxy.connection(("192.0.2.1", 1), now=0.0)
    conn.start(0.0)
    acts = conn.receive_data(REQUEST, 0.0)
    opens = [a for a in acts if isinstance(a, OpenUpstream)]
    if opens:
        acts += conn.upstream_failed(opens[0].conn_id, 0.0)
    return acts


def test_api_md_names_every_router_attribute_the_proxy_reads() -> None:
    router = Recording(Router(parse_manifests(MANIFESTS), seed=1))
    acts = _one_request(router)
    assert len([a for a in acts if isinstance(a, OpenUpstream)]) == 2   # routed, retried
    assert {"route", "next_endpoint", "table", "resources", "session_cookie"} <= router.asked
    text = API_MD.read_text()
    start = text.index("`router` is duck-typed")
    paragraph = text[start:text.index("\n\n", start)]
    named = set(re.findall(r"`([a-z_]+)[`(.]", paragraph))
    assert router.asked - {"observe"} <= named, sorted(router.asked - named)
    assert "observe" in named


def test_a_wrapper_without_resources_is_told_so(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, "ingresslib.proxy")
    router = Recording(Router(parse_manifests(MANIFESTS), seed=1), hide=frozenset({"resources"}))
    acts = _one_request(router)
    out = b"".join(a.data for a in acts if isinstance(a, SendDownstream))
    assert out.startswith(b"HTTP/1.1 503 ")
    assert "exposes no resources" in caplog.text and "no such Secret" not in caplog.text
    # Handed on, the same Secret lets alice in.
    assert any(isinstance(a, OpenUpstream)
               for a in _one_request(Recording(Router(parse_manifests(MANIFESTS), seed=1))))
