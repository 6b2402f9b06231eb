"""``ingresslib demo``: the README's first command.

Starts, on 127.0.0.1, small echo backends (the "pods") and the proxy in front of them with the
manifests of ``ingresslib/examples/demo.yaml`` (a copy lives in ``examples/demo/``): the
ingress-nginx fan-out walkthrough (``/`` -> web, ``/guest`` -> guest with 2 pods, ``/admin`` ->
admin with 3 pods, round-robin visible in the bodies), host rules ``example.test`` and
``*.example.test``, a 90/10 canary, and HTTPS for ``example.test`` with a certificate generated
at start. What only exists at run time is built here: one EndpointSlice per pod (its port is
picked at start) and the TLS Secret.

Then it prints ``curl`` commands to try and serves until Ctrl-C; ``--once`` instead sends a
handful of requests through the proxy, prints what came back, and exits (0 when every answer is
the expected one).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib.resources
import signal
import socket
import ssl
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from ._iptext import host_port
from ._serve_listen import _say

__all__ = [
    "demo_main",
    "run_demo",
    "demo_manifests",
    "demo_resources",
    "DEMO_PODS",
    "EchoBackend",
    "start_echo",
    "parse_echo",
    "http_get",
]

#: Service -> number of echo pods.
DEMO_PODS: Mapping[str, int] = {"web": 1, "web-v2": 1, "guest": 2, "admin": 3, "tenants": 1}

_ECHOED = (b"x-forwarded-for", b"x-real-ip", b"x-forwarded-host", b"x-forwarded-proto",
           b"x-forwarded-port", b"x-request-id", b"x-forwarded-prefix")


class _EchoProtocol(asyncio.Protocol):
    def __init__(self, backend: EchoBackend) -> None:
        self.b = backend
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.b.connections.add(transport)
        self.b.accepted += 1

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.b.connections.discard(self.transport)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buf[:end].split(b"\r\n")
            length = 0
            close = False
            headers: dict[bytes, bytes] = {}
            for line in head[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            if b"content-length" in headers:
                length = int(headers[b"content-length"])
            if end + 4 + length > len(self.buf):
                return
            body = self.buf[end + 4:end + 4 + length]
            self.buf = self.buf[end + 4 + length:]
            parts = head[0].split(b" ")
            version = parts[2] if len(parts) > 2 else b"HTTP/1.1"
            conn = headers.get(b"connection", b"").lower()
            close = conn == b"close" or (version == b"HTTP/1.0" and conn != b"keep-alive")
            self.b.requests += 1
            self._respond(head[0], headers, body, close)
            if close:
                return

    def _respond(self, line: bytes, headers: dict[bytes, bytes], body: bytes, close: bool) -> None:
        b = self.b
        out = [b"service: " + b.service.encode(), b"pod: " + b.pod.encode(),
               b"port: %d" % b.port, b"request: " + line,
               b"host: " + headers.get(b"host", b"")]
        out += [n + b": " + headers[n] for n in _ECHOED if n in headers]
        if body:
            out.append(b"body-length: %d" % len(body))
        payload = b"\n".join(out) + b"\n"
        assert self.transport is not None
        self.transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n%s\r\n%s"
            % (len(payload), b"Connection: close\r\n" if close else b"", payload))
        if close:
            self.transport.close()


@dataclass
class EchoBackend:
    """One running echo pod. ``port`` is known once started."""

    service: str
    pod: str
    host: str = "127.0.0.1"
    port: int = 0
    requests: int = 0
    accepted: int = 0
    server: asyncio.Server | None = None
    connections: set[asyncio.Transport] = field(default_factory=set)

    async def start(self) -> EchoBackend:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: _EchoProtocol(self), self.host, self.port, reuse_address=True)
        self.port = int(self.server.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        """Stop listening and drop every connection (a pod dying)."""
        if self.server is not None:
            self.server.close()
            for t in list(self.connections):
                t.abort()
            await self.server.wait_closed()
            self.server = None


async def start_echo(service: str, pod: str, host: str = "127.0.0.1", port: int = 0) -> EchoBackend:
    return await EchoBackend(service, pod, host, port).start()


def parse_echo(body: bytes | str) -> dict[str, str]:
    """An echo body -> ``{"service": ..., "pod": ..., ...}``."""
    text = body.decode() if isinstance(body, bytes) else body
    out: dict[str, str] = {}
    for line in text.splitlines():
        k, _, v = line.partition(": ")
        out[k] = v
    return out


# --- a minimal client (h11), for --once and the tests ----------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def echo(self) -> dict[str, str]:
        return parse_echo(self.body) if self.status == 200 else {}


async def http_get(
    port: int, host: str, path: str = "/", *, tls: ssl.SSLContext | None = None,
    sni: str | None = None, headers: Sequence[tuple[str, str]] = (), timeout: float = 5.0,
    address: str = "127.0.0.1",
) -> Reply:
    """One ``GET`` on a fresh connection (like ``curl --resolve host:port:127.0.0.1``)."""
    import h11

    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(
            address, port, ssl=tls, server_hostname=(sni or host.split(":")[0]) if tls else None)
        try:
            conn = h11.Connection(h11.CLIENT)
            hdrs = [("Host", host), ("Connection", "close"), *headers]
            writer.write(conn.send(h11.Request(method="GET", target=path, headers=hdrs)))
            writer.write(conn.send(h11.EndOfMessage()))
            status, rh, body = 0, {}, b""
            while True:
                ev = conn.next_event()
                if ev is h11.NEED_DATA:
                    conn.receive_data(await reader.read(65536))
                elif isinstance(ev, h11.Response):
                    status = ev.status_code
                    rh = {k.decode().lower(): v.decode() for k, v in ev.headers}
                elif isinstance(ev, h11.Data):
                    body += ev.data
                elif isinstance(ev, (h11.EndOfMessage, h11.ConnectionClosed)):
                    break
            return Reply(status, rh, body)
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (OSError, ssl.SSLError):
                pass


# --- manifests ------------------------------------------------------------------------------


def demo_manifests() -> list[dict[str, Any]]:
    """The static demo manifests (as shipped in the package), as dicts."""
    import yaml

    text = importlib.resources.files("ingresslib").joinpath("examples/demo.yaml").read_text("utf-8")
    return [d for d in yaml.safe_load_all(text) if d]


def runtime_objects(
    pods: Mapping[str, Sequence[EchoBackend]], cert: tuple[bytes, bytes] | None
) -> list[dict[str, Any]]:
    """One EndpointSlice per pod (pods differ by port, and a slice's ports apply to all of its
    endpoints) and the ``example-tls`` Secret."""
    out: list[dict[str, Any]] = []
    for svc, backends in pods.items():
        for b in backends:
            out.append({
                "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": b.pod, "labels": {"kubernetes.io/service-name": svc}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": [b.host], "conditions": {"ready": True},
                               "targetRef": {"kind": "Pod", "name": b.pod}}],
                "ports": [{"name": "http", "port": b.port, "protocol": "TCP"}],
            })
    if cert is not None:
        out.append({
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": "example-tls"},
            "data": {"tls.crt": base64.b64encode(cert[0]).decode(),
                     "tls.key": base64.b64encode(cert[1]).decode()},
        })
    return out


def demo_resources(pods: Mapping[str, Sequence[EchoBackend]], cert: tuple[bytes, bytes] | None) -> Any:
    from ._resources import Resources

    return Resources.from_dicts([*demo_manifests(), *runtime_objects(pods, cert)])


# --- running it -----------------------------------------------------------------------------


class ListenError(OSError):
    """The demo's proxy could not open one of its listeners: which option, and why."""

    def __init__(self, option: str, address: tuple[str, int], cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror)
        self.option = option
        self.address = address
        self.cause = cause

    def __str__(self) -> str:
        host, port = self.address
        # As serve names the option; and the way out, which the errno alone does not give.
        return (f"{self.option} {host_port(host, port)}: cannot listen: {self.cause}; choose "
                f"another with {self.option} 127.0.0.1:PORT (port 0: a free one)")


@dataclass
class Demo:
    """A running demo: pods, proxy, the generated certificate."""

    pods: dict[str, list[EchoBackend]] = field(default_factory=dict)
    server: Any = None
    cert: tuple[bytes, bytes] = (b"", b"")
    http_port: int = 0
    https_port: int = 0

    def client_tls(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cadata=self.cert[0].decode())
        return ctx

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.shutdown(timeout=2.0)
        for backends in self.pods.values():
            for b in backends:
                await b.stop()


async def start_demo(
    listen: tuple[str, int] = ("127.0.0.1", 0), tls_listen: tuple[str, int] = ("127.0.0.1", 0),
    *, seed: int | None = None, on_record: Any = None,
) -> Demo:
    from ._router import Router
    from ._table import served_ingresses
    from ._tls import CertificateStore, generate_certificate
    from .proxy._server import ProxyServer

    demo = Demo()
    try:
        for svc, n in DEMO_PODS.items():
            demo.pods[svc] = [await start_echo(svc, f"{svc}-{i}") for i in range(n)]
        demo.cert = generate_certificate(["example.test"])
        res = demo_resources(demo.pods, demo.cert)
        store = CertificateStore()
        store.update(res, served_ingresses(res, None, None)[0])
        router = Router(res, seed=seed)
        demo.server = ProxyServer(router, cert_store=store, on_record=on_record)
        try:
            await demo.server.start(listen, tls_listen)
        except OSError as e:
            # Which option: the proxy binds --listen, then --tls-listen, recording each.
            failed = ("--listen", listen) if not demo.server.addresses else (
                "--tls-listen", tls_listen)
            raise ListenError(*failed, e) from e
    except BaseException:
        await demo.stop()
        raise
    for (scheme, _, port), srv in zip(demo.server.addresses, demo.server.servers):
        # The self-check and the curl lines go to 127.0.0.1: its socket's port. A host name
        # is bound on each of its addresses, each with a free port of its own (localhost:0:
        # 127.0.0.1 and ::1), and ``addresses`` names the first socket, in asyncio's set
        # order: often ::1's, where 127.0.0.1 is not listening.
        port = next((s.getsockname()[1] for s in srv.sockets
                     if s.family == socket.AF_INET and s.getsockname()[0] == "127.0.0.1"), port)
        if scheme == "http":
            demo.http_port = port
        else:
            demo.https_port = port
    return demo


def _curl_lines(demo: Demo) -> list[str]:
    p, s = demo.http_port, demo.https_port
    return [
        f"curl -s http://127.0.0.1:{p}/ -H 'Host: example.test'          # web (or web-v2, 10 %: the canary)",
        f"curl -s http://127.0.0.1:{p}/guest -H 'Host: example.test'     # guest-0, guest-1 in turn",
        f"curl -s http://127.0.0.1:{p}/admin/x -H 'Host: example.test'   # admin-0..2 round-robin",
        f"curl -s http://127.0.0.1:{p}/ -H 'Host: a.example.test'        # *.example.test -> tenants",
        f"curl -si http://127.0.0.1:{p}/ -H 'Host: a.b.example.test'     # 404: a wildcard covers one label",
        f"curl -sik --resolve example.test:{s}:127.0.0.1 https://example.test:{s}/admin  # HTTPS (+HSTS)",
    ]


async def self_check(demo: Demo, out: TextIO) -> bool:
    """Send a handful of requests through the proxy, print them, return whether all were as
    expected."""
    p = demo.http_port
    ok = True
    checks: list[tuple[str, str, str, int, str | None]] = [
        # (label, host, path, want status, want service)
        ("fan-out /guest", "example.test", "/guest", 200, "guest"),
        ("fan-out /guest", "example.test", "/guest", 200, "guest"),
        ("fan-out /admin", "example.test", "/admin/users", 200, "admin"),
        ("fan-out /admin", "example.test", "/admin/users", 200, "admin"),
        ("fan-out /admin", "example.test", "/admin/users", 200, "admin"),
        ("wildcard host", "a.example.test", "/", 200, "tenants"),
        ("two labels deep", "a.b.example.test", "/", 404, None),
        ("no such host", "other.test", "/", 404, None),
    ]
    seen: dict[str, set[str]] = {}
    for label, host, path, want, svc in checks:
        r = await http_get(p, host, path)
        e = r.echo
        good = r.status == want and (svc is None or e.get("service") == svc)
        ok &= good
        seen.setdefault(e.get("service", ""), set()).add(e.get("pod", ""))
        who = f"{e.get('service')}/{e.get('pod')}" if e else r.body[:40].decode(errors="replace").strip()
        print(f"  {'ok ' if good else 'BAD'} {label:18} GET http://{host}{path} -> {r.status} {who}", file=out)
    for svc in ("guest", "admin"):
        if len(seen.get(svc, ())) != DEMO_PODS[svc]:
            print(f"  BAD round-robin over {svc}: saw {sorted(seen.get(svc, ()))}", file=out)
            ok = False
    split: Counter[str] = Counter()
    for _ in range(40):
        split[(await http_get(p, "example.test", "/")).echo.get("service", "?")] += 1
    # The demo's Router splits exactly (the smooth interleave): 4 of these 40 go to web-v2.
    # Checking only that web answered let a canary that never serves, or takes the wrong
    # share, pass; 3-5 allows for one request to / sent before the check.
    canary_ok = set(split) <= {"web", "web-v2"} and 3 <= split["web-v2"] <= 5
    ok &= canary_ok
    print(f"  {'ok ' if canary_ok else 'BAD'} canary 90/10      40 x GET http://example.test/ -> "
          + ", ".join(f"{k} {v}" for k, v in sorted(split.items())), file=out)
    r = await http_get(demo.https_port, "example.test", "/admin", tls=demo.client_tls())
    good = r.status == 200 and r.echo.get("service") == "admin" and "strict-transport-security" in r.headers
    ok &= good
    print(f"  {'ok ' if good else 'BAD'} HTTPS + SNI       GET https://example.test/admin -> {r.status} "
          f"{r.echo.get('service')}/{r.echo.get('pod')}, hsts={r.headers.get('strict-transport-security')!r}",
          file=out)
    return ok


async def run_demo(
    *, listen: tuple[str, int], tls_listen: tuple[str, int], once: bool, out: TextIO,
    seed: int | None = None,
) -> int:
    on_record = None
    if not once:
        # Interactive: show each proxied request as ingress-nginx's access log line.
        from ._accesslog import AccessLog, configure_access_log

        configure_access_log(out)
        on_record = AccessLog()
    try:
        demo = await start_demo(listen, tls_listen, seed=seed, on_record=on_record)
    except ListenError as e:
        _say(f"ingresslib demo: {e}")
        return 1
    except OSError as e:
        _say(f"ingresslib demo: cannot listen: {e}")
        return 1
    try:
        for url in demo.server.urls:
            _say(f"listening on {url}")
        pods = ", ".join(f"{s}: {' '.join(str(b.port) for b in bs)}" for s, bs in demo.pods.items())
        print(f"echo pods on 127.0.0.1 ports  {pods}", file=out)
        if once:
            print("self-check:", file=out)
            ok = await self_check(demo, out)
            print("self-check passed" if ok else "self-check FAILED", file=out, flush=True)
            return 0 if ok else 1
        print("try:", file=out)
        for line in _curl_lines(demo):
            print("  " + line, file=out)
        print("Ctrl-C to stop.", file=out, flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):  # pragma: no cover - Windows
                pass
        await stop.wait()
        return 0
    finally:
        await demo.stop()


def demo_main(args: argparse.Namespace) -> int:
    """Exit 0 (stopped with Ctrl-C or SIGTERM once serving; --once: every answer as expected),
    1 (a port in use; --once: an answer not as expected), 2 (usage), 130 (a Ctrl-C before it
    serves, or during --once's self-check)."""
    try:
        return _demo_main(args)
    except KeyboardInterrupt:
        # Only reaches here before run_demo's signal handlers are in place (imports, start-up)
        # or in --once, which installs none: as serve, 130 with one line, never a traceback,
        # and never 0 for a self-check that did not run to its end.
        what = ": the self-check did not finish" if getattr(args, "once", False) else (
            " before serving")
        _say(f"ingresslib demo: interrupted{what}")
        return 130


def _demo_main(args: argparse.Namespace) -> int:
    from ._serve_listen import _host_error
    from .proxy._server import parse_listen

    once = bool(getattr(args, "once", False))
    # --once picks free ports unless told otherwise, so it never collides with a running demo.
    addresses = []
    for option, given, default in (
            ("--listen", getattr(args, "listen", None), "127.0.0.1:0" if once else "127.0.0.1:8080"),
            ("--tls-listen", getattr(args, "tls_listen", None),
             "127.0.0.1:0" if once else "127.0.0.1:8443")):
        try:
            where = parse_listen(given or default)
            # A name the resolver cannot encode (`x..y`) ended the demo in a UnicodeError
            # traceback at the bind: refused here, as `serve` refuses it.
            problem = _host_error(where[0])
            if problem is not None:
                raise ValueError(problem)
            addresses.append(where)
        except ValueError as exc:
            # Usage, as for `serve`: exit 2 with the reason, not a traceback.
            _say(f"ingresslib demo: error: {option} {given!r}: {exc}")
            return 2
    listen, tls = addresses
    return asyncio.run(run_demo(listen=listen, tls_listen=tls, once=once, out=sys.stdout,
                                seed=getattr(args, "seed", None)))
