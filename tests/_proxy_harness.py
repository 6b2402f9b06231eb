"""In-memory client <-> sans-IO proxy core <-> fake upstreams harness (h11's ConnectionPair idea).

Nothing here touches a socket: the harness performs the core's actions itself. Fake upstreams
parse what the proxy sends with their own h11 server and answer with raw bytes chosen by the
test, so both directions can be checked byte for byte, and hostile upstreams can send anything.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import h11

from ingresslib.proxy import (
    ClientConnection,
    CloseDownstream,
    CloseUpstream,
    OpenUpstream,
    Proxy,
    ProxySettings,
    RequestDone,
    RequestRecord,
    SendDownstream,
    SendUpstream,
    SetTimer,
    TimerKind,
    TunnelEstablished,
)

__all__ = [
    "FakeMatch", "FakeDecision", "FakeRouter", "Route", "Reply", "FakeUpstream", "ProxyPair",
    "ok", "PEER", "CLOCK", "DATE",
]

PEER = ("203.0.113.7", 40000)
#: A fixed wall clock (RFC 9110's own example date) for tests about the Date header:
#: ``ProxyPair(clock=lambda: CLOCK)``; every response without an upstream Date then carries
#: ``DATE``. The default is no clock (no Date added), so that byte-exact tests compare the
#: upstream's bytes as they are (tests/test_proxy_hostile.py among them).
CLOCK = 784111777.0
DATE = b"date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"


@dataclass(frozen=True, eq=False)
class FakeMatch:
    service: str | None
    port: int | str | None
    namespace: str
    ingress: str
    host: str | None
    path: str | None
    path_type: str | None
    is_default_backend: bool
    annotations: Mapping[str, str]
    match_path: str | None = None


@dataclass(frozen=True)
class FakeDecision:
    service: str | None
    namespace: str
    port: int | None
    endpoint: tuple[str, int] | None
    canary: bool
    match: FakeMatch
    set_cookie: str | None = None


@dataclass
class Route:
    path: str = "/"
    host: str | None = None
    endpoints: list[tuple[str, int]] = field(default_factory=lambda: [("10.0.0.1", 8080)])
    annotations: dict[str, str] = field(default_factory=dict)
    service: str = "web"
    set_cookie: str | None = None
    match: FakeMatch | None = None


class FakeRouter:
    """The Router interface the core codes against, over a list of prefix routes."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self.routes = list(routes)
        self.calls: list[tuple[str, str, str, str | None]] = []
        self.observed: list[tuple[tuple[str, int], bool]] = []
        for r in self.routes:
            r.match = FakeMatch(r.service, 80, "default", f"default/{r.service}", r.host, r.path,
                                "Prefix", False, dict(r.annotations), r.path)

    def route(self, method: str, host: str, path: str, headers: Any,
              client_ip: str | None) -> FakeDecision | None:
        self.calls.append((method, host, path, client_ip))
        h = host.lower().rsplit(":", 1)[0] if not host.startswith("[") else host
        best: Route | None = None
        for r in self.routes:
            if r.host is not None and r.host != h:
                continue
            p = r.path.rstrip("/")
            if path == p or path.startswith(p + "/") or r.path == "/":
                if best is None or len(r.path) > len(best.path):
                    best = r
        if best is None:
            return None
        assert best.match is not None
        ep = best.endpoints[0] if best.endpoints else None
        return FakeDecision(best.service, "default", 8080, ep, False, best.match, best.set_cookie)

    def next_endpoint(self, decision: FakeDecision,
                      tried: Collection[tuple[str, int]]) -> tuple[str, int] | None:
        for r in self.routes:
            if r.match is decision.match:
                for ep in r.endpoints:
                    if ep not in tried:
                        return ep
        return None

    def observe(self, decision: FakeDecision, endpoint: tuple[str, int], seconds: float,
                ok: bool) -> None:
        self.observed.append((endpoint, ok))


@dataclass
class Reply:
    """What a fake upstream sends back for one request."""

    data: bytes
    #: Close the connection after sending ``data``.
    close: bool = False


def ok(body: bytes = b"hello", extra: bytes = b"") -> Reply:
    return Reply(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body))


#: An upstream application: (request, body, upstream) -> Reply, or None to stay silent.
App = Callable[[h11.Request, bytes, "FakeUpstream"], "Reply | None"]


def default_app(request: h11.Request, body: bytes, up: FakeUpstream) -> Reply:
    return ok(b"ok " + request.target)


class FakeUpstream:
    """One fake upstream connection: records every byte, answers through ``app``."""

    def __init__(self, endpoint: tuple[str, int], app: App) -> None:
        self.endpoint = endpoint
        self.app = app
        self.raw = bytearray()
        self.requests: list[tuple[h11.Request, bytes]] = []
        self._parser = h11.Connection(h11.SERVER)
        self._body = bytearray()
        self._req: h11.Request | None = None
        self.closed = False
        self.tunnel = False
        self.uses = 0

    def feed(self, data: bytes) -> list[Reply]:
        self.raw += data
        if self.tunnel:
            return [Reply(b"echo:" + data)]
        self._parser.receive_data(data)
        replies: list[Reply] = []
        while True:
            ev = self._parser.next_event()
            if isinstance(ev, h11.Request):
                self._req = ev
                self._body = bytearray()
            elif isinstance(ev, h11.Data):
                self._body += ev.data
            elif isinstance(ev, h11.EndOfMessage):
                assert self._req is not None
                self.requests.append((self._req, bytes(self._body)))
                tail = self._parser.trailing_data[0]
                self._parser = h11.Connection(h11.SERVER)
                if tail:
                    self._parser.receive_data(tail)
                r = self.app(self._req, bytes(self._body), self)
                if r is not None:
                    replies.append(r)
                    if r.data.startswith(b"HTTP/1.1 101"):
                        self.tunnel = True
                        return replies
            else:
                return replies


class ProxyPair:
    """Client bytes in, client bytes out; upstreams are created on ``OpenUpstream``."""

    def __init__(
        self,
        routes: Iterable[Route] | None = None,
        settings: ProxySettings | None = None,
        *,
        app: App = default_app,
        tls: bool = False,
        tls_hosts: Collection[str] = (),
        peer: tuple[str, int] | str | None = PEER,
        refuse: Collection[tuple[str, int]] = (),
        hang: Collection[tuple[str, int]] = (),
        defer: Collection[tuple[str, int]] = (),
        https_port: int = 443,
        request_id: Callable[[], str] | None = lambda: "0123456789abcdef0123456789abcdef",
        router: Any = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.router = router if router is not None else FakeRouter(
            routes if routes is not None else [Route()])
        self.proxy = Proxy(self.router, settings, tls_hosts=tls_hosts, https_port=https_port,
                           request_id=request_id, clock=clock)
        self.app = app
        self.refuse = set(refuse)
        self.hang = set(hang)
        #: Endpoints whose connects wait for the test: ``connect()`` / ``fail_connect()``.
        self.defer = set(defer)
        #: Connection ids of deferred connects not completed yet, oldest first.
        self.pending: list[int] = []
        self.now = 0.0
        self.conn: ClientConnection = self.proxy.connection(peer, tls=tls,
                                                            local_port=443 if tls else 80,
                                                            now=self.now)
        self.received = bytearray()
        self.closed = False
        self.records: list[RequestRecord] = []
        self.upstreams: list[FakeUpstream] = []
        self.live: dict[int, FakeUpstream] = {}
        self.pool: dict[tuple[str, int], list[FakeUpstream]] = {}
        self.opens: list[OpenUpstream] = []
        self.closes: list[CloseUpstream] = []
        self.downstream_closes: list[CloseDownstream] = []
        self.timer: tuple[TimerKind, float] | None = None
        self.tunnels: list[int] = []
        self._run(self.conn.start(self.now))

    # ------------------------------------------------------------------ driving
    def send(self, data: bytes) -> bytes:
        """Feed client bytes; return what the client received meanwhile."""
        start = len(self.received)
        self._run(self.conn.receive_data(data, self.now))
        return bytes(self.received[start:])

    def eof(self) -> bytes:
        start = len(self.received)
        self._run(self.conn.receive_eof(self.now))
        return bytes(self.received[start:])

    def fire(self, kind: TimerKind | None = None) -> bytes:
        assert self.timer is not None, "no timer armed"
        k, secs = self.timer
        assert kind is None or kind is k, (kind, k)
        self.now += secs
        self.timer = None
        start = len(self.received)
        self._run(self.conn.timer_expired(k, self.now))
        return bytes(self.received[start:])

    def upstream_send(self, up: FakeUpstream, data: bytes, close: bool = False) -> bytes:
        """Make an upstream send unsolicited bytes (or close)."""
        start = len(self.received)
        cid = self._id_of(up)
        if data:
            self._run(self.conn.upstream_data(cid, data, self.now))
        if close:
            up.closed = True
            self._run(self.conn.upstream_eof(cid, self.now))
        return bytes(self.received[start:])

    def connect(self) -> bytes:
        """Complete the oldest deferred connect; return what the client received meanwhile."""
        cid = self.pending.pop(0)
        start = len(self.received)
        self._run(self._when_open(cid, partial(self.conn.upstream_connected, cid))())
        return bytes(self.received[start:])

    def fail_connect(self, timed_out: bool = False) -> bytes:
        """Fail the oldest deferred connect (refused, or timed out)."""
        cid = self.pending.pop(0)
        start = len(self.received)
        self._run(self._when_open(
            cid, partial(self.conn.upstream_failed, cid, timed_out=timed_out))())
        return bytes(self.received[start:])

    def _id_of(self, up: FakeUpstream) -> int:
        for cid, u in self.live.items():
            if u is up:
                return cid
        raise KeyError("upstream not live")

    @property
    def upstream_bytes(self) -> bytes:
        return b"".join(bytes(u.raw) for u in self.upstreams)

    def _run(self, actions: list[Any]) -> None:
        """Perform actions in order; what the peers do in response happens afterwards, one
        event at a time, like a real event loop."""
        events: list[Callable[[], list[Any]]] = []
        self._perform(actions, events)
        while events:
            self._perform(events.pop(0)(), events)

    def _perform(self, actions: list[Any], events: list[Callable[[], list[Any]]]) -> None:
        conn = self.conn
        for a in actions:
            t = type(a)
            if t is SendDownstream:
                assert not self.closed, "data sent after CloseDownstream"
                self.received += a.data
            elif t is CloseDownstream:
                self.closed = True
                self.downstream_closes.append(a)
            elif t is SetTimer:
                self.timer = None if a.seconds is None else (a.kind, a.seconds)
            elif t is RequestDone:
                self.records.append(a.record)
            elif t is TunnelEstablished:
                self.tunnels.append(a.conn_id)
            elif t is OpenUpstream:
                self.opens.append(a)
                cid = a.conn_id
                if a.endpoint in self.refuse:
                    events.append(self._when_open(cid, partial(conn.upstream_failed, cid)))
                    self.live[cid] = FakeUpstream(a.endpoint, self.app)
                    continue
                if a.endpoint in self.hang:
                    events.append(self._when_open(
                        cid, partial(conn.upstream_failed, cid, timed_out=True)))
                    self.live[cid] = FakeUpstream(a.endpoint, self.app)
                    continue
                if a.endpoint in self.defer:
                    up = FakeUpstream(a.endpoint, self.app)
                    self.upstreams.append(up)
                    up.uses += 1
                    self.live[cid] = up
                    self.pending.append(cid)
                    continue
                pooled = self.pool.get(a.endpoint)
                reused = bool(a.pooled and pooled)
                if reused:
                    assert pooled is not None
                    up = pooled.pop(0)
                else:
                    up = FakeUpstream(a.endpoint, self.app)
                    self.upstreams.append(up)
                up.uses += 1
                self.live[cid] = up
                if up.closed:
                    events.append(self._when_open(
                        cid, partial(conn.upstream_connected, cid, reused=True)))
                    events.append(self._when_open(cid, partial(conn.upstream_eof, cid)))
                    continue
                events.append(self._when_open(
                    cid, partial(conn.upstream_connected, cid, reused=reused)))
            elif t is SendUpstream:
                cid = a.conn_id
                up = self.live[cid]
                if up.closed:
                    continue
                for reply in up.feed(a.data):
                    if reply.data:
                        events.append(self._when_open(
                            cid, partial(conn.upstream_data, cid, reply.data)))
                    if reply.close:
                        up.closed = True
                        events.append(self._when_open(cid, partial(conn.upstream_eof, cid)))
            elif t is CloseUpstream:
                self.closes.append(a)
                up = self.live.pop(a.conn_id)
                if a.reuse and not up.closed:
                    self.pool.setdefault(up.endpoint, []).append(up)
                else:
                    up.closed = True
            else:  # pragma: no cover - a new action type the harness does not know
                raise AssertionError(f"unknown action {a!r}")

    def _when_open(self, cid: int, call: Callable[[float], list[Any]]
                   ) -> Callable[[], list[Any]]:
        # An event for upstream ``cid``, given the clock when it runs. A connection the core
        # already closed (cancelled connect) produces no events.
        return lambda: call(self.now) if cid in self.live else []


def status_of(data: bytes) -> int:
    """Status code of the first response in ``data``."""
    return int(data.split(b" ", 2)[1])


def dechunk(body: bytes) -> tuple[bytes, bool]:
    """The payload of the chunked ``body`` the client got, and whether its last chunk came."""
    payload = b""
    while body:
        line, _, body = body.partition(b"\r\n")
        size = int(line, 16)
        if size == 0:
            return payload, body == b"\r\n"
        payload += body[:size]
        body = body[size + 2:]
    return payload, False


def upstream_sends_bytewise(p: ProxyPair, data: bytes) -> bytes:
    """The first upstream sends ``data`` one byte at a time (until the client connection is
    closed): what the client received meanwhile."""
    out = b""
    for i in range(len(data)):
        if p.closed:
            break
        out += p.upstream_send(p.upstreams[0], data[i:i + 1])
    return out


def silent_app(request: h11.Request, body: bytes, up: FakeUpstream) -> Reply | None:
    """An upstream app that answers nothing: the test sends the upstream's bytes itself."""
    return None


def upstream_sends(p: ProxyPair, data: bytes, size: int) -> bytes:
    """The first upstream sends ``data`` in pieces of ``size`` bytes (until its connection is
    gone): what the client received meanwhile."""
    up = p.upstreams[0]
    out = b""
    for i in range(0, len(data), size):
        if up not in p.live.values():
            break
        out += p.upstream_send(up, data[i:i + size])
    return out


def location(out: bytes) -> bytes | None:
    """The ``Location`` of the first response in ``out``, or None."""
    for line in out.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.lower() == b"location":
            return value.strip()
    return None


def ingress_yaml(name: str, host: str, annotations: dict[str, str] | None = None,
                 service: str = "web", tls: bool = False, path: str = "/",
                 created: str = "2024-01-01T00:00:00Z", extra_paths: tuple[str, ...] = ()) -> str:
    """One Ingress document (YAML, starting with ``---``) with one rule: Prefix ``path`` and
    ``extra_paths`` to ``service`` port 80 (``host`` "": a rule without host)."""
    ann = ", ".join(f"{k!r}: {v!r}" for k, v in (annotations or {}).items())
    quoted = f"'{host}'" if host.startswith("*") else host  # YAML: "*" starts an alias
    tls_block = f"\n  tls: [{{hosts: [{quoted}], secretName: {name}-tls}}]" if tls else ""
    host_line = f"host: {quoted}\n    " if host else ""
    paths = "".join(f"""
      - path: {p}
        pathType: Prefix
        backend: {{service: {{name: {service}, port: {{number: 80}}}}}}"""
                    for p in (path, *extra_paths))
    return f"""
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {name}
  namespace: default
  creationTimestamp: '{created}'
  annotations: {{{ann}}}
spec:{tls_block}
  rules:
  - {host_line}http:
      paths:{paths}
"""


def service_yaml(name: str, ips: Iterable[str]) -> str:
    """Service ``name`` (port 80) with a ready endpoint at each of ``ips`` (port 80)."""
    ready = ", ".join(f"{{addresses: [{ip}], conditions: {{ready: true}}}}" for ip in ips)
    return f"""
---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec: {{ports: [{{port: 80}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-1, namespace: default, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: [{{port: 80}}]
endpoints: [{ready}]
"""


def web_service_yaml(endpoints: int = 1) -> str:
    """Service ``web`` (port 80) with ``endpoints`` ready endpoints, 10.0.0.1:80 up: the
    backend of the Ingresses ``ingress_yaml`` writes (appended to them)."""
    return service_yaml("web", (f"10.0.0.{i}" for i in range(1, endpoints + 1)))


#: Service ``web`` (port 80) with one ready endpoint, 10.0.0.1:80.
WEB_SERVICE_YAML = web_service_yaml()


def routed_pair(*docs: str, settings: ProxySettings | None = None) -> ProxyPair:
    """A core over a real Router of ``docs`` plus ``WEB_SERVICE_YAML``."""
    from ingresslib import Router, parse_manifests

    return ProxyPair(router=Router(parse_manifests("".join(docs) + WEB_SERVICE_YAML)),
                     settings=settings)
