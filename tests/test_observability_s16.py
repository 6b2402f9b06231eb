"""Session-16 adversarial review of the metrics and the access log (SEMANTICS §12).

Each test here failed on the code before the review's fix (see the report).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest

from ingresslib._metrics import Metrics, MetricsServer

from _records import rec

P = "nginx_ingress_controller"


# --- the /metrics listener against clients that do not play along ------------------------------


def _big_metrics(series: int = 300) -> Metrics:
    """Metrics whose exposition is a few megabytes (far more than the socket buffers hold)."""
    m = Metrics()
    for i in range(series):
        m.observe(rec(rule_path=f"/p{i}", ingress=f"shop/web{i}"))
    return m


def _recv_all(sock: socket.socket, limit: float) -> tuple[int, bool]:
    """Read until EOF, a reset, or ``limit`` seconds of silence: (bytes read, ended)."""
    sock.settimeout(limit)
    total = 0
    try:
        while True:
            chunk = sock.recv(1 << 20)
            if not chunk:
                return total, True
            total += len(chunk)
    except ConnectionResetError:
        return total, True
    except TimeoutError:
        return total, False


@asynccontextmanager
async def _serving(m: Metrics, **limits: float) -> AsyncIterator[int]:
    """A MetricsServer of ``m`` on 127.0.0.1 with ``limits`` (``timeout``, ``write_timeout``)
    set: its port; closed on leaving."""
    server = MetricsServer(m, "127.0.0.1", 0)
    for name, seconds in limits.items():
        setattr(server, name, seconds)
    port = await server.start()
    try:
        yield port
    finally:
        await server.close()


@asynccontextmanager
async def _small_window_client(m: Metrics, write_timeout: float) -> AsyncIterator[socket.socket]:
    """A client of a MetricsServer of ``m`` with a 4 KiB receive buffer (the answer cannot
    all sit in it), connected; closed on leaving, before the server."""
    async with _serving(m, write_timeout=write_timeout) as port:
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        try:
            client.connect(("127.0.0.1", port))
            yield client
        finally:
            client.close()


@asynccontextmanager
async def _connected(m: Metrics, **limits: float) -> AsyncIterator[
        tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """A connection to a MetricsServer of ``m`` (``limits`` as ``_serving``); closed on
    leaving, before the server."""
    async with _serving(m, **limits) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            yield reader, writer
        finally:
            writer.close()


@pytest.mark.asyncio
async def test_a_scraper_that_stops_reading_is_dropped() -> None:
    # ingress-nginx's :10254 server (pkg/metrics/handler.go, StartHTTPServer) has
    # "WriteTimeout: 300 * time.Second": a client that sends GET /metrics and never reads the
    # answer is cut off. Ours waited in drain() forever, holding the rendered exposition (MBs
    # with many series) per such connection, and close() could not end it either.
    m = _big_metrics()
    took = time.monotonic()
    body = len(m.render())
    took = time.monotonic() - took  # the server renders it once more before writing
    assert body > 2_000_000
    async with _small_window_client(m, write_timeout=0.5) as client:
        client.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.sleep(3 * took + 2.0)  # the client does not read meanwhile
        got, ended = await asyncio.to_thread(_recv_all, client, 2.0)
        assert ended and got < body, (got, body, ended)


@pytest.mark.asyncio
async def test_a_scraper_with_small_buffers_that_keeps_reading_gets_everything() -> None:
    # (A guard for the fix above, passes before and after.) The write deadline bounds a
    # stalled client, not a small window: the whole answer arrives when the client reads.
    m = _big_metrics(120)
    body = len(m.render())
    async with _small_window_client(m, write_timeout=5.0) as client:
        client.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        got, ended = await asyncio.to_thread(_recv_all, client, 5.0)
        assert ended and got > body


@pytest.mark.asyncio
async def test_a_request_head_trickled_byte_by_byte_is_dropped() -> None:
    # MetricsServer.timeout: "Idle or slow clients are dropped after this many seconds without
    # a complete request", as ingress-nginx's "ReadTimeout: 10 * time.Second" bounds the whole
    # request read (pkg/metrics/handler.go). The limit was per read(): a client sending one
    # byte every few seconds (slowloris) kept its connection for as long as it liked.
    async with _connected(Metrics(), timeout=0.6) as (reader, writer):
        started = time.monotonic()
        closed_after = None
        for byte in b"GET /metrics HTTP/1.1\r\nHost: xxxxxxxxxxxxxxxxxxxxxxxx\r\n":
            try:
                writer.write(bytes([byte]))
                await writer.drain()
                data = await asyncio.wait_for(reader.read(1), 0.1)
            except (TimeoutError, asyncio.TimeoutError):
                continue
            except ConnectionError:
                data = b""
            if data == b"":
                closed_after = time.monotonic() - started
                break
        assert closed_after is not None, "the trickling client was never dropped"
        assert closed_after < 2.0


@pytest.mark.asyncio
async def test_the_read_deadline_starts_again_for_each_keep_alive_request() -> None:
    # (A guard for the fix above, passes before and after.) The deadline is per request: a
    # keep-alive scraper that comes back within it each time is served for as long as it does.
    async with _connected(Metrics(), timeout=1.0) as (reader, writer):
        for _ in range(4):  # 2 s in all, twice the deadline
            await asyncio.sleep(0.5)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await asyncio.wait_for(reader.readuntil(b"ok"), 2)).startswith(b"HTTP/1.1 200")


# --- series of Ingresses a reload removed --------------------------------------------------------


def _families(m: Metrics) -> dict[str, set[str]]:
    """metric name -> the ``ingress`` label values of its samples."""
    import re

    out: dict[str, set[str]] = {}
    for line in m.render().decode().splitlines():
        hit = re.match(r'([a-z_]+)\{.*?ingress="([^"]*)"', line)
        if hit:
            out.setdefault(hit.group(1), set()).add(hit.group(2))
    return out


TWO = """\
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: shop}
spec:
  rules:
  - host: shop.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: preview-42, namespace: shop}
spec:
  rules:
  - host: pr42.shop.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web-pr42, port: {number: 80}}}}
"""


def test_series_of_an_ingress_a_reload_removed_are_dropped() -> None:
    # ingress-nginx, after each reload: "ri := utilingress.GetRemovedIngresses(n.runningConfig,
    # pcfg) ... n.metricCollector.RemoveMetrics(ri, rc)", and socket.go RemoveMetrics deletes
    # every series whose namespace/ingress labels name a removed Ingress (counter, histograms,
    # the latency summary). Ours kept them until the process restarted: with Ingresses that
    # come and go (one per pull request), series piled up without end.
    import ingresslib

    res = ingresslib.parse_manifests(TWO)
    web, preview = res.ingresses
    m = Metrics()
    m.set_hosts(["shop.test", "pr42.shop.test"])
    m.observe(rec(host="shop.test", ingress="shop/web", rule_path="/"))
    m.observe(rec(host="pr42.shop.test", ingress="shop/preview-42", rule_path="/",
                  service="web-pr42"))
    m.observe(rec(host="shop.test", ingress=None, service=None, namespace=None, rule_path=None,
                  status=404, upstreams=(), upstream_connect=None))
    before = _families(m)
    assert before[f"{P}_requests"] == {"web", "preview-42", ""}
    assert before[f"{P}_ingress_upstream_latency_seconds_count"] == {"web", "preview-42"}

    m.set_ingresses([web])  # preview-42 was deleted; its host went with it
    m.set_hosts(["shop.test"])
    after = _families(m)
    for name, ingresses in before.items():
        assert after[name] == ingresses - {"preview-42"}, name
    # What stays is unchanged, and counting goes on.
    m.observe(rec(host="shop.test", ingress="shop/web", rule_path="/"))
    text = m.render().decode()
    assert (f'{P}_requests{{canary="",host="shop.test",ingress="web",method="GET",'
            f'namespace="shop",path="/",service="web",status="200"}} 2') in text


def test_set_ingresses_takes_keys_and_none_keeps_everything() -> None:
    m = Metrics()
    m.observe(rec(ingress="shop/web"))
    m.observe(rec(ingress="other/web"))   # same name, another namespace
    m.set_ingresses(None)
    assert _families(m)[f"{P}_requests"] == {"web"}
    assert m.render().count(f"{P}_requests{{".encode()) == 2
    m.set_ingresses(["shop/web"])
    text = m.render().decode()
    assert text.count(f"{P}_requests{{") == 1 and 'namespace="shop"' in text
    assert 'namespace="other"' not in text
    m.set_ingresses([])
    assert f"{P}_requests{{".encode() not in m.render()


# --- the certificate expiry gauge never shows empty while it is replaced -------------------------


def test_a_scrape_during_a_certificate_update_sees_every_host() -> None:
    # set_certificates used to clear() the gauge and then add the hosts one by one; the
    # exposition is rendered in another thread (MetricsServer: run_in_executor), so a scrape in
    # between saw some or all hosts without a series: an `absent(...)`-style alert, or a
    # dashboard of certificates, saw them vanish for that scrape. Here the scrape happens while
    # the new list is read (the generator renders), which is the same window.
    import datetime

    utc = datetime.timezone.utc
    old = [(f"h{i}.test", "shop/tls", datetime.datetime(2030, 1, 1, tzinfo=utc)) for i in range(5)]
    m = Metrics()
    m.set_certificates(old)
    seen: list[int] = []

    def renewed() -> Iterator[tuple[str, str, datetime.datetime]]:
        for i, (host, secret, _) in enumerate(old):
            if i == 3:
                seen.append(m.render().count(f"{P}_ssl_expire_time_seconds{{".encode()))
            yield host, secret, datetime.datetime(2031, 1, 1, tzinfo=utc)

    m.set_certificates(renewed())
    assert seen == [5]
    text = m.render().decode()
    assert text.count(f"{P}_ssl_expire_time_seconds{{") == 5
    assert "1.893456e+09" not in text and text.count(" 1.924992e+09") == 5  # all renewed
    # Hosts that go still go, and a host that comes back is there again.
    m.set_certificates(old[:2])
    assert m.render().count(f"{P}_ssl_expire_time_seconds{{".encode()) == 2
    m.set_certificates(old[:3])
    assert m.render().count(f"{P}_ssl_expire_time_seconds{{".encode()) == 3


# --- a collector of the application's that fails -------------------------------------------------


@pytest.mark.asyncio
async def test_a_failing_collector_is_a_500_not_a_dropped_connection(
        caplog: pytest.LogCaptureFixture) -> None:
    # docs/observability.md: "metrics.registry is a normal CollectorRegistry", so applications
    # register their own collectors there. One that raises made the scrape end with the
    # connection closed and no answer at all (and asyncio's "Unhandled exception in
    # client_connected_cb" traceback); Go's promhttp (ingress-nginx's /metrics) answers 500 with
    # the error (HandlerOpts.ErrorHandling default HTTPErrorOnError). The connection stays usable.
    from prometheus_client.core import Metric
    from prometheus_client.registry import Collector

    broken = [False]

    class AppCollector(Collector):
        def collect(self) -> Iterator[Metric]:
            if broken[0]:
                raise RuntimeError("queue depth unavailable")
            return iter(())

    m = Metrics()
    m.registry.register(AppCollector())
    broken[0] = True
    async with _connected(m) as (reader, writer):
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await asyncio.wait_for(reader.readuntil(b"unavailable\n"), 5)
        assert answer.startswith(b"HTTP/1.1 500 ")
        assert b"An error has occurred while serving metrics:" in answer
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await asyncio.wait_for(reader.readuntil(b"ok"), 5)).startswith(b"HTTP/1.1 200")
    assert any("rendering the exposition failed" in r.getMessage() for r in caplog.records)
