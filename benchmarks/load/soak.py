"""A bounded soak of the asyncio server, driven as ``ingresslib serve`` drives it.

Everything on 127.0.0.1: echo upstreams (``ingresslib._demo.start_echo``), a ``ProxyServer``
with an HTTP and an HTTPS listener, and a ``Reloader`` (the one ``serve`` uses) polling a
manifest file that is rewritten every 100-300 ms: an Ingress appears and disappears, its
backends swap, a Service's endpoints are taken away and given back, a TLS Secret rotates
(CertificateStore updates). Meanwhile one upstream pod is killed and restarted on its port.

Clients (a few hundred at once): keep-alive GETs, POSTs with bodies, slow senders/readers,
clients that reset mid-request, pipelined requests, over HTTP and HTTPS.

Checked, periodically and at the end:

* every response parses (h11) and has a status the churn allows for its host; a 200 comes from
  the Service the host/path routes to (echo bodies name their service), and a POST's body
  length is echoed back unchanged;
* no exception reached the loop's exception handler, nothing was logged at ERROR by
  ``ingresslib`` or ``asyncio``, no ResourceWarning;
* once the clients leave: ``server.connections``, ``lingering``, ``handshaking`` and
  ``tasks`` are empty, and every upstream socket the echo pods still hold is an idle one in
  the proxy's pool (none leaked by a dropped exchange);
* after shutdown: the process holds the file descriptors it held before, and no asyncio task
  is left but the caller's;
* memory: RSS sampled every few seconds (growth after warm-up is reported), and optionally a
  tracemalloc top-10 diff (``--tracemalloc``; slows everything down).

    python benchmarks/load/soak.py                 # 60 s, 200 clients
    python benchmarks/load/soak.py --duration 300 --clients 300 --json soak.json
    python benchmarks/load/soak.py --max-rss-growth 60    # also fail on memory growth

Exit status 1 when any check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import json
import logging
import os
import random
import socket
import ssl
import struct
import sys
import tempfile
import time
import tracemalloc
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import h11
import yaml

from ingresslib._demo import EchoBackend, _EchoProtocol, parse_echo, start_echo
from ingresslib._tls import generate_certificate

__all__ = ["SoakResult", "run_soak", "main"]

#: Service -> number of pods (``tunnel`` is a :class:`TunnelBackend`, for upgrades). ``flap`` loses its endpoints now and then (-> 503); ``crash`` has
#: its only pod killed and restarted on the same port (-> 502 while it is down).
PODS = {"alpha": 2, "beta": 2, "flap": 1, "crash": 1, "tunnel": 1}

#: An exchange slower than this is counted as late (reported, not a failure: a loaded loop and
#: a client that sends in 30 pieces can take this long).
LATE = 5.0
#: An exchange with no answer after this long is stuck: a failure. Past every proxy timeout
#: (proxy_read_timeout, client_body_timeout: 60 s), so a live proxy must have answered or closed.
EXCHANGE_TIMEOUT = 90.0

#: host -> statuses the churn allows there.
ALLOWED = {
    "a.test": {200},
    "b.test": {200},
    "flap.test": {200, 503},
    "crash.test": {200, 502, 503, 504},
    "churn.test": {200, 404},
    "nowhere.test": {404},
}

_HOSTS = list(ALLOWED)


def _expected_service(host: str, path: str) -> set[str]:
    """The Services a 200 for ``host``/``path`` may come from."""
    if host == "a.test":
        return {"alpha"}
    if host == "b.test":
        return {"beta"}
    if host == "flap.test":
        return {"flap"}
    if host == "crash.test":
        return {"crash"}
    if host == "churn.test":
        # /x and /y swap backends between alpha and beta; either way it is one of the two, and
        # never flap or crash.
        return {"alpha", "beta"}
    return set()


class _TunnelProtocol(_EchoProtocol):
    """An upstream that accepts ``Upgrade`` (answers 101), names itself, then echoes bytes
    (the demo's echo pod's connection bookkeeping, its own request handling)."""

    def __init__(self, backend: EchoBackend) -> None:
        super().__init__(backend)
        self.tunnel = False

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        if self.tunnel:
            self.transport.write(data)
            return
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head, rest = self.buf[:end].lower(), self.buf[end + 4:]
        self.b.requests += 1
        if b"\r\nupgrade:" not in head:
            self.transport.write(b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n"
                                 b"Connection: close\r\n\r\n")
            self.transport.close()
            return
        self.tunnel = True
        self.transport.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: soak\r\n"
                             b"Connection: Upgrade\r\n\r\ntunnel: " + self.b.pod.encode() + b"\n"
                             + rest)

    def eof_received(self) -> bool:
        return False


class TunnelBackend(EchoBackend):
    async def start(self) -> TunnelBackend:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: _TunnelProtocol(self), self.host, self.port, reuse_address=True)
        self.port = int(self.server.sockets[0].getsockname()[1])
        return self


# --- manifests ---------------------------------------------------------------------------------


def _ingress(name: str, rules: list[dict[str, Any]], tls: list[dict[str, Any]] | None = None,
             ssl_redirect: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {"ingressClassName": "nginx", "rules": rules}
    if tls:
        spec["tls"] = tls
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": name, "annotations": {
                "nginx.ingress.kubernetes.io/ssl-redirect": "true" if ssl_redirect else "false"}},
            "spec": spec}


def _rule(host: str, paths: list[tuple[str, str]]) -> dict[str, Any]:
    return {"host": host, "http": {"paths": [
        {"path": p, "pathType": "Prefix",
         "backend": {"service": {"name": svc, "port": {"number": 80}}}} for p, svc in paths]}}


def manifests(pods: dict[str, list[EchoBackend]], *, churn: int, flap_up: bool,
              swapped: bool, cert: tuple[bytes, bytes]) -> list[dict[str, Any]]:
    """The manifests for one state of the churn."""
    import base64

    out: list[dict[str, Any]] = [{
        "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": {"name": "nginx", "annotations": {
            "ingressclass.kubernetes.io/is-default-class": "true"}},
        "spec": {"controller": "k8s.io/ingress-nginx"}}]
    for svc in PODS:
        out.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": svc},
                    "spec": {"selector": {"app": svc},
                             "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})
    for svc, backends in pods.items():
        if svc == "flap" and not flap_up:
            continue
        for b in backends:
            out.append({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": b.pod, "labels": {"kubernetes.io/service-name": svc}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": [b.host], "conditions": {"ready": True},
                               "targetRef": {"kind": "Pod", "name": b.pod}}],
                "ports": [{"name": "http", "port": b.port, "protocol": "TCP"}]})
    out.append({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                "metadata": {"name": "soak-tls"},
                "data": {"tls.crt": base64.b64encode(cert[0]).decode(),
                         "tls.key": base64.b64encode(cert[1]).decode()}})
    tls = [{"hosts": ["a.test", "b.test"], "secretName": "soak-tls"}]
    out.append(_ingress("fixed", [
        _rule("a.test", [("/", "alpha")]), _rule("b.test", [("/", "beta")]),
        _rule("flap.test", [("/", "flap")]), _rule("crash.test", [("/", "crash")]),
        _rule("ws.test", [("/", "tunnel")])], tls))
    if churn % 3 != 2:  # absent one state in three: churn.test answers 404 then
        x, y = ("beta", "alpha") if swapped else ("alpha", "beta")
        # A changing number of extra paths so every reload changes the table.
        extra = [(f"/extra{i}", "alpha") for i in range(churn % 7)]
        out.append(_ingress("churn", [_rule("churn.test", [("/x", x), ("/y", y), *extra])]))
    return out


# --- results -----------------------------------------------------------------------------------


@dataclass
class SoakResult:
    duration: float = 0.0
    clients: int = 0
    requests: int = 0
    responses: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    kinds: dict[str, int] = field(default_factory=dict)
    resets: int = 0
    client_errors: dict[str, int] = field(default_factory=dict)
    #: Exchange latency (s) by client kind: {"get": {"p50":, "p99":, "max":}, ...}.
    latency: dict[str, dict[str, float]] = field(default_factory=dict)
    late: int = 0
    reloads: int = 0
    reload_failures: int = 0
    upstream_restarts: int = 0
    #: Problems found: any entry fails the soak.
    failures: list[str] = field(default_factory=list)
    fds_before: int = 0
    fds_after: int = 0
    rss_mb: list[float] = field(default_factory=list)
    rss_growth_mb: float = 0.0
    samples: list[dict[str, Any]] = field(default_factory=list)
    tracemalloc_top: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        rps = self.responses / self.duration if self.duration else 0.0
        lines = [
            f"soak: {self.duration:.1f} s, {self.clients} clients, {self.requests} requests sent, "
            f"{self.responses} responses ({rps:.0f}/s), {self.resets} client resets",
            f"  statuses: {dict(sorted(self.statuses.items()))}",
            f"  kinds: {dict(sorted(self.kinds.items()))}",
            f"  reloads: {self.reloads} ok, {self.reload_failures} failed; "
            f"upstream restarts: {self.upstream_restarts}",
            f"  client-side errors (connection-level, expected under resets/crash): "
            f"{dict(sorted(self.client_errors.items()))}",
            f"  exchange latency s (keep-alive clients): {self.latency}; "
            f"{self.late} slower than {LATE} s",
            f"  fds: {self.fds_before} before, {self.fds_after} after shutdown",
            f"  RSS MB (samples): {', '.join(f'{x:.1f}' for x in self.rss_mb)}; "
            f"growth after warm-up {self.rss_growth_mb:+.1f} MB",
        ]
        if self.samples:
            a, z = self.samples[0], self.samples[-1]
            lines.append(
                f"  first/last sample: malloc in use {a['malloc_used_mb']}/{z['malloc_used_mb']} MB, "
                f"malloc free-but-kept {a['malloc_free_mb']}/{z['malloc_free_mb']} MB, "
                f"Python blocks {a['py_blocks']}/{z['py_blocks']}")
        lines += [f"  tracemalloc: {t}" for t in self.tracemalloc_top]
        lines.append("  RESULT: " + ("OK" if self.ok else f"{len(self.failures)} FAILURE(S)"))
        lines += [f"    - {f}" for f in self.failures[:30]]
        return "\n".join(lines)


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _malloc_mb() -> tuple[float, float]:
    """glibc's (in use, free but kept) heap MB: tells a leak (in use grows) from allocator
    retention (free grows). (0, 0) where mallinfo2 is missing."""
    try:
        f = ctypes.CDLL(None).mallinfo2
    except (OSError, AttributeError):
        return 0.0, 0.0
    f.restype = _MallInfo2
    m = f()
    return (m.uordblks + m.hblkhd) / 1e6, m.fordblks / 1e6


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(f"{record.name}: {record.getMessage()[:300]}"
                            + (f" {record.exc_info[1]!r}" if record.exc_info else ""))


# --- clients -----------------------------------------------------------------------------------


class _Soak:
    def __init__(self, res: SoakResult, proxy_http: int, proxy_https: int, deadline: float,
                 seed: int) -> None:
        self.res = res
        self.http = proxy_http
        self.https = proxy_https
        self.deadline = deadline
        self.rng = random.Random(seed)
        self.statuses: Counter[str] = Counter()
        self.kinds: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.latency: dict[str, list[float]] = {"get": [], "post": [], "slow": []}
        self.late = 0
        self.seen: Counter[str] = Counter()
        self.max_latency: dict[str, float] = {}
        self.tls = ssl.create_default_context()
        self.tls.check_hostname = False
        self.tls.verify_mode = ssl.CERT_NONE

    def _sample(self, kind: str, took: float) -> None:
        # A bounded reservoir (Algorithm R): the soak's own bookkeeping must not grow with the
        # number of requests, or it would pass for a leak in the memory samples.
        xs = self.latency[kind]
        self.seen[kind] += 1
        if len(xs) < 4096:
            xs.append(took)
        else:
            j = self.rng.randrange(self.seen[kind])
            if j < 4096:
                xs[j] = took
        self.max_latency[kind] = max(self.max_latency.get(kind, 0.0), took)

    def fail(self, msg: str) -> None:
        if len(self.res.failures) < 200:
            self.res.failures.append(msg)

    async def _open(self, tls: bool, host: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if tls:
            return await asyncio.open_connection("127.0.0.1", self.https, ssl=self.tls,
                                                 server_hostname=host)
        return await asyncio.open_connection("127.0.0.1", self.http)

    def _pick(self) -> tuple[str, str]:
        host = self.rng.choice(_HOSTS)
        path = self.rng.choice(["/", "/x", "/y", "/x/deep?q=1", "/extra3"])
        return host, path

    def check(self, host: str, path: str, resp: h11.Response, body: bytes, sent_len: int) -> None:
        self.res.responses += 1
        st = resp.status_code
        self.statuses[str(st)] += 1
        if st not in ALLOWED[host]:
            self.fail(f"{host}{path}: status {st} not in {sorted(ALLOWED[host])}: {body[:120]!r}")
            return
        if st != 200:
            return
        echo = parse_echo(body)
        svc = echo.get("service")
        if svc not in _expected_service(host, path):
            self.fail(f"{host}{path}: answered by service {svc!r}, routed to "
                      f"{sorted(_expected_service(host, path))}")
        if echo.get("host", "").split(":")[0] != host:
            self.fail(f"{host}{path}: upstream saw Host {echo.get('host')!r}")
        got_len = int(echo.get("body-length", "0"))
        if got_len != sent_len:
            self.fail(f"{host}{path}: sent {sent_len} body bytes, upstream got {got_len}")

    async def _read_response(self, reader: asyncio.StreamReader, conn: h11.Connection,
                             slow: bool = False) -> tuple[h11.Response | None, bytes]:
        resp: h11.Response | None = None
        body = bytearray()
        while True:
            ev = conn.next_event()
            if ev is h11.NEED_DATA:
                if slow:
                    await asyncio.sleep(self.rng.uniform(0.001, 0.02))
                data = await reader.read(64 if slow else 65536)
                conn.receive_data(data)
            elif isinstance(ev, h11.Response):
                resp = ev
            elif isinstance(ev, h11.Data):
                body += ev.data
            elif isinstance(ev, h11.EndOfMessage):
                return resp, bytes(body)
            elif isinstance(ev, h11.ConnectionClosed):
                return None, b""
            elif isinstance(ev, h11.InformationalResponse):
                continue

    def _request(self, conn: h11.Connection, host: str, path: str, body: bytes,
                 close: bool = False) -> bytes:
        headers = [("Host", host)]
        if body:
            headers.append(("Content-Length", str(len(body))))
        if close:
            headers.append(("Connection", "close"))
        out = conn.send(h11.Request(method="POST" if body else "GET", target=path,
                                    headers=headers))
        if body:
            out += conn.send(h11.Data(data=body))
        return out + conn.send(h11.EndOfMessage())

    async def keepalive(self, tls: bool, post: bool, slow: bool) -> None:
        host, _ = self._pick()
        reader, writer = await self._open(tls, host)
        try:
            conn = h11.Connection(h11.CLIENT)
            for _ in range(self.rng.randint(1, 3 if slow else 20)):
                if time.monotonic() > self.deadline:
                    break
                path = self._pick()[1]
                body = os.urandom(self.rng.choice([1, 100, 5000, 70000])) if post else b""
                data = self._request(conn, host, path, body)
                self.res.requests += 1
                # The bound is per exchange: a slow client's whole session may take long.
                t0 = time.monotonic()
                try:
                    async with asyncio.timeout(EXCHANGE_TIMEOUT):
                        if slow:
                            # About 30 pieces whatever the size, a few ms apart.
                            step = max(64, len(data) // 30)
                            for i in range(0, len(data), step):
                                writer.write(data[i:i + step])
                                await writer.drain()
                                await asyncio.sleep(0.003)
                        else:
                            writer.write(data)
                        resp, rbody = await self._read_response(reader, conn, slow)
                except TimeoutError:
                    self.fail(f"no answer within {EXCHANGE_TIMEOUT} s: {'https' if tls else 'http'}"
                              f" {host}{path} body={len(body)} slow={slow} "
                              f"h11 states {conn.our_state}/{conn.their_state}")
                    break
                took = time.monotonic() - t0
                self._sample("slow" if slow else "post" if post else "get", took)
                if took > LATE:
                    self.late += 1
                if resp is None:
                    self.errors["closed-before-response"] += 1
                    break
                self.check(host, path, resp, rbody, len(body))
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    break
                conn.start_next_cycle()
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()

    async def pipelined(self, tls: bool) -> None:
        host, _ = self._pick()
        reader, writer = await self._open(tls, host)
        try:
            n = self.rng.randint(2, 8)
            paths = [self._pick()[1] for _ in range(n)]
            # h11 will not send request n+1 before response n: build each on a fresh
            # connection object (the bytes are the same).
            writer.write(b"".join(self._request(h11.Connection(h11.CLIENT), host, p, b"")
                                  for p in paths))
            self.res.requests += n
            conn = h11.Connection(h11.CLIENT)
            for p in paths:
                conn.send(h11.Request(method="GET", target=p, headers=[("Host", host)]))
                conn.send(h11.EndOfMessage())
                resp, rbody = await self._read_response(reader, conn)
                if resp is None:
                    self.errors["pipeline-closed"] += 1
                    return
                self.check(host, p, resp, rbody, 0)
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()

    async def reset(self, tls: bool) -> None:
        """Send part (or all) of a request, then RST the connection."""
        host, path = self._pick()
        reader, writer = await self._open(tls, host)
        conn = h11.Connection(h11.CLIENT)
        body = os.urandom(self.rng.choice([0, 10, 30000]))
        data = self._request(conn, host, path, body)
        cut = self.rng.choice([len(data) // 3, len(data) - 1, len(data)])
        writer.write(data[:cut])
        self.res.requests += 1
        self.res.resets += 1
        with contextlib.suppress(OSError, ConnectionError):
            await writer.drain()
        await asyncio.sleep(self.rng.choice([0, 0.001, 0.01, 0.05]))
        sock = writer.get_extra_info("socket")
        if sock is not None:
            # SO_LINGER 0: close() sends a RST instead of a FIN.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
        await asyncio.sleep(0)

    async def upgrade(self, tls: bool) -> None:
        """An HTTP/1.1 Upgrade through the proxy, then bytes both ways in the tunnel."""
        reader, writer = await self._open(tls, "ws.test")
        try:
            conn = h11.Connection(h11.CLIENT)
            writer.write(conn.send(h11.Request(method="GET", target="/chat", headers=[
                ("Host", "ws.test"), ("Upgrade", "soak"), ("Connection", "Upgrade")])))
            writer.write(conn.send(h11.EndOfMessage()))
            self.res.requests += 1
            while True:
                ev = conn.next_event()
                if ev is h11.NEED_DATA:
                    conn.receive_data(await reader.read(65536))
                elif ev is h11.PAUSED or isinstance(ev, (h11.Response, h11.ConnectionClosed)):
                    break
                elif isinstance(ev, h11.InformationalResponse):
                    self.statuses[str(ev.status_code)] += 1
                    self.res.responses += 1
                    if ev.status_code != 101:
                        self.fail(f"upgrade: informational {ev.status_code}")
            if conn.their_state is not h11.SWITCHED_PROTOCOL:
                self.fail(f"upgrade: not switched ({ev!r})")
                return
            rest, _ = conn.trailing_data
            buf = bytearray(rest)
            while b"\n" not in buf:
                chunk = await reader.read(65536)
                if not chunk:
                    self.fail("upgrade: tunnel closed before the upstream named itself")
                    return
                buf += chunk
            line, _, tail = bytes(buf).partition(b"\n")
            if line != b"tunnel: tunnel-0":
                self.fail(f"upgrade: wrong upstream in the tunnel: {line!r}")
            buf = bytearray(tail)
            for _ in range(self.rng.randint(1, 5)):
                msg = os.urandom(self.rng.choice([1, 500, 20000]))
                writer.write(msg)
                while len(buf) < len(msg):
                    chunk = await reader.read(65536)
                    if not chunk:
                        self.fail("upgrade: tunnel closed mid-echo")
                        return
                    buf += chunk
                if bytes(buf[:len(msg)]) != msg:
                    self.fail("upgrade: tunnel echoed other bytes")
                    return
                del buf[:len(msg)]
            if self.rng.random() < 0.3:
                writer.transport.abort()
        finally:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError):
                await writer.wait_closed()

    async def client(self, n: int) -> None:
        while time.monotonic() < self.deadline:
            tls = self.rng.random() < 0.3
            r = self.rng.random()
            if r < 0.45:
                kind, coro = "keepalive-get", self.keepalive(tls, False, False)
            elif r < 0.65:
                kind, coro = "post", self.keepalive(tls, True, False)
            elif r < 0.72:
                kind, coro = "slow", self.keepalive(tls, self.rng.random() < 0.5, True)
            elif r < 0.82:
                kind, coro = "pipelined", self.pipelined(tls)
            elif r < 0.89:
                kind, coro = "upgrade", self.upgrade(tls)
            else:
                kind, coro = "reset", self.reset(tls)
            self.kinds[kind + ("-tls" if tls else "")] += 1
            try:
                async with asyncio.timeout(EXCHANGE_TIMEOUT * 20):
                    await coro
            except TimeoutError:
                self.fail(f"{kind} client {n}: session stuck")
            except (OSError, ssl.SSLError, h11.ProtocolError, asyncio.IncompleteReadError) as e:
                # A proxy that closes on us mid-exchange (the crashing upstream after the
                # response started, a reset peer) is allowed; a malformed response is not.
                if isinstance(e, h11.RemoteProtocolError):
                    self.fail(f"{kind}: malformed response: {e}")
                self.errors[type(e).__name__] += 1


# --- the run -------------------------------------------------------------------------------------


async def _quiesce(server: Any, pods: dict[str, list[EchoBackend]], timeout: float) -> list[str]:
    """Wait for the server to let go of every client; return what is still held."""
    end = time.monotonic() + timeout
    while True:
        held = {"connections": len(server.connections), "lingering": len(server.lingering),
                "handshaking": len(server.handshaking), "tasks": len(server.tasks)}
        idle = server.pool.idle_count()
        upstream_socks = sum(len(b.connections) for bs in pods.values() for b in bs)
        if not any(held.values()) and upstream_socks == idle:
            return []
        if time.monotonic() > end:
            return [f"after clients left: server holds {held}; echo pods hold {upstream_socks} "
                    f"upstream sockets but the pool has {idle} idle"]
        await asyncio.sleep(0.05)


async def run_soak(duration: float = 60.0, clients: int = 200, *, seed: int = 1,
                   reload_every: tuple[float, float] = (0.1, 0.3), crash_every: float = 3.0,
                   use_tracemalloc: bool = False, sample_every: float = 5.0) -> SoakResult:
    """Run the soak in the running loop; returns the result (``result.ok``)."""
    from ingresslib._router import Router
    from ingresslib._serve import Reloader
    from ingresslib._load import load_manifests
    from ingresslib._tls import CertificateStore
    from ingresslib.proxy._server import ProxyServer

    res = SoakResult(duration=duration, clients=clients)
    loop = asyncio.get_running_loop()
    gc.collect()
    res.fds_before = _fd_count()
    tasks_before = asyncio.all_tasks()
    loop_errors: list[str] = []
    old_handler = loop.get_exception_handler()
    loop.set_exception_handler(
        lambda _l, ctx: loop_errors.append(f"{ctx.get('message')}: {ctx.get('exception')!r}"))
    collect = _Collect()
    loggers = [logging.getLogger("ingresslib"), logging.getLogger("asyncio")]
    for lg in loggers:
        lg.addHandler(collect)
    if use_tracemalloc:
        tracemalloc.start(10)
    rng = random.Random(seed)
    certs = [generate_certificate(["a.test", "b.test"]) for _ in range(2)]
    tmp = tempfile.TemporaryDirectory(prefix="ingresslib-soak-")
    manifest = Path(tmp.name) / "soak.yaml"
    pods: dict[str, list[EchoBackend]] = {}
    server: Any = None
    snap1: Any = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        try:
            for svc, n in PODS.items():
                pods[svc] = [await (TunnelBackend(svc, f"{svc}-{i}").start() if svc == "tunnel"
                                    else start_echo(svc, f"{svc}-{i}")) for i in range(n)]
            state = {"churn": 0, "flap_up": True, "swapped": False, "cert": 0}

            def write() -> None:
                docs = manifests(pods, churn=state["churn"], flap_up=bool(state["flap_up"]),
                                 swapped=bool(state["swapped"]), cert=certs[state["cert"]])
                t = manifest.with_suffix(".tmp")
                t.write_text(yaml.safe_dump_all(docs))
                os.replace(t, manifest)

            write()
            first = load_manifests(str(manifest))
            router = Router(first)
            store = CertificateStore()
            store.update(first, list(router.table.served))
            server = ProxyServer(router, cert_store=store)
            await server.start(("127.0.0.1", 0), ("127.0.0.1", 0))
            ports = {scheme: port for scheme, _, port in server.addresses}
            reloader = Reloader(server, [str(manifest)], ingress_class=None, controller=None,
                                interval=0.1, settle=0.0)
            start = time.monotonic()
            deadline = start + duration
            soak = _Soak(res, ports["http"], ports["https"], deadline, seed)

            async def churn() -> None:
                while time.monotonic() < deadline:
                    await asyncio.sleep(rng.uniform(*reload_every))
                    state["churn"] += 1
                    r = rng.random()
                    if r < 0.3:
                        state["flap_up"] = not state["flap_up"]
                    elif r < 0.6:
                        state["swapped"] = not state["swapped"]
                    elif r < 0.7:
                        state["cert"] ^= 1
                    await loop.run_in_executor(None, write)
                    await reloader.check()
                state["flap_up"] = True
                await loop.run_in_executor(None, write)
                await reloader.check()

            async def crash() -> None:
                pod = pods["crash"][0]
                while time.monotonic() < deadline - crash_every:
                    await asyncio.sleep(crash_every * rng.uniform(0.5, 1.0))
                    await pod.stop()
                    await asyncio.sleep(rng.uniform(0.05, 0.5))
                    await pod.start()  # same port (reuse_address): the endpoint comes back
                    res.upstream_restarts += 1

            async def sample() -> None:
                while time.monotonic() < deadline:
                    await asyncio.sleep(min(sample_every, max(0.0, deadline - time.monotonic())))
                    res.rss_mb.append(_rss_mb())
                    used, free = _malloc_mb()
                    res.samples.append({
                        "rss_mb": round(res.rss_mb[-1], 1), "malloc_used_mb": round(used, 1),
                        "malloc_free_mb": round(free, 1), "py_blocks": sys.getallocatedblocks(),
                        "t": round(time.monotonic() - start, 1), "fds": _fd_count(),
                        "tasks": len(asyncio.all_tasks()),
                        "connections": len(server.connections),
                        "lingering": len(server.lingering),
                        "handshaking": len(server.handshaking),
                        "pool_idle": server.pool.idle_count(),
                        "responses": res.responses})

            if use_tracemalloc:
                snap1 = None
            background = [asyncio.create_task(churn()), asyncio.create_task(crash()),
                          asyncio.create_task(sample())]
            workers = [asyncio.create_task(soak.client(i)) for i in range(clients)]
            if use_tracemalloc:
                await asyncio.sleep(min(5.0, duration / 4))
                snap1 = tracemalloc.take_snapshot()
            await asyncio.gather(*workers)
            await asyncio.gather(*background)
            res.duration = time.monotonic() - start
            res.reloads, res.reload_failures = reloader.reloads, reloader.failures
            if reloader.failures:
                res.failures.append(f"{reloader.failures} reload(s) failed: {reloader.last_error}")
            res.statuses = dict(soak.statuses)
            res.kinds = dict(soak.kinds)
            res.client_errors = dict(soak.errors)
            res.late = soak.late
            for k, xs in soak.latency.items():
                xs.sort()
                if xs:
                    res.latency[k] = {"p50": round(xs[len(xs) // 2], 4),
                                      "p99": round(xs[int(len(xs) * 0.99)], 4),
                                      "max": round(soak.max_latency[k], 4)}
            # The clients are gone: the server must let go of everything.
            res.failures += await _quiesce(server, pods, timeout=10.0)
            res.rss_mb.append(_rss_mb())
            if len(res.rss_mb) >= 2:
                res.rss_growth_mb = res.rss_mb[-1] - res.rss_mb[0]
            if use_tracemalloc and snap1 is not None:
                gc.collect()
                diff = tracemalloc.take_snapshot().compare_to(snap1, "lineno")
                res.tracemalloc_top = [str(s) for s in diff[:10]]
        finally:
            if server is not None:
                await server.shutdown(timeout=5.0)
            for bs in pods.values():
                for b in bs:
                    await b.stop()
            for _ in range(5):
                await asyncio.sleep(0)
            tmp.cleanup()
            gc.collect()
            if use_tracemalloc:
                tracemalloc.stop()
        if server is not None:
            for name in ("connections", "lingering", "handshaking", "tasks"):
                if getattr(server, name):
                    res.failures.append(f"after shutdown: server.{name} = "
                                        f"{len(getattr(server, name))}")
            if server.pool.idle_count():
                res.failures.append(f"after shutdown: {server.pool.idle_count()} pooled")
    for lg in loggers:
        lg.removeHandler(collect)
    loop.set_exception_handler(old_handler)
    res.fds_after = _fd_count()
    if res.fds_after > res.fds_before:
        res.failures.append(f"fd leak: {res.fds_before} before, {res.fds_after} after "
                            f"({sorted(os.listdir('/proc/self/fd'))})")
    left = asyncio.all_tasks() - tasks_before
    if left:
        res.failures.append(f"{len(left)} task(s) left: {[repr(t)[:200] for t in left][:5]}")
    res.failures += [f"loop exception handler: {e}" for e in loop_errors[:20]]
    res.failures += [f"logged: {r}" for r in collect.records[:20]]
    res.failures += [f"warning: {w.category.__name__}: {w.message}" for w in caught
                     if issubclass(w.category, ResourceWarning)][:20]
    if res.responses == 0:
        res.failures.append("no response at all")
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of load (default 60)")
    ap.add_argument("--clients", type=int, default=200, help="concurrent clients (default 200)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tracemalloc", action="store_true", help="top-10 allocation growth")
    ap.add_argument("--json", help="write the result here")
    ap.add_argument("--max-rss-growth", type=float, metavar="MB",
                    help="fail when RSS grows more than this after the first sample")
    args = ap.parse_args(argv)
    result = asyncio.run(run_soak(args.duration, args.clients, seed=args.seed,
                                  use_tracemalloc=args.tracemalloc))
    if args.max_rss_growth is not None and result.rss_growth_mb > args.max_rss_growth:
        result.failures.append(f"RSS grew {result.rss_growth_mb:.1f} MB "
                               f"(limit {args.max_rss_growth} MB)")
    print(result.summary())
    if args.json:
        Path(args.json).write_text(json.dumps(asdict(result), indent=1) + "\n")
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
