"""Drive ingresslib's sans-IO proxy core with plain sockets and ``selectors``: no asyncio.

    python examples/sansio_blocking_proxy.py --backend 127.0.0.1:9000 [--listen 127.0.0.1:8080] [-v]

Routes every request (host-less rule ``/``, an Ingress built in memory) to the backend given,
with keep-alive to the backend (an idle pool bounded by ``upstream_keepalive_connections`` and
``upstream_keepalive_timeout``; a socket the backend closed while idle is not reused). It
prints ``listening on http://HOST:PORT`` on stderr once it accepts connections; ``--listen
127.0.0.1:0`` picks a free port. Ctrl-C stops it. ``-v`` prints one line per request on stderr:
the client, the request line as received (nginx's ``$request``), the status, the bytes sent,
the time taken and the endpoints tried.

The whole driver is the loop below: it performs the core's actions (open / send / close / timers)
and feeds back what the sockets say. The core decides everything HTTP. It also honours
``conn.reading_wanted`` (stop reading a client while the core holds its bytes for an upstream
still connecting) and ``CloseDownstream(linger=True)`` (nginx's lingering close).
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import selectors
import socket
import sys
import time
from typing import Any

import ingresslib
from ingresslib import Router
from ingresslib.proxy import (
    ClientConnection,
    CloseDownstream,
    CloseUpstream,
    OpenUpstream,
    Proxy,
    RequestDone,
    SendDownstream,
    SendUpstream,
    SetTimer,
    TimerKind,
    TunnelEstablished,
)


MANIFESTS = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: example}}
spec:
  rules:
  - http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: backend, port: {{number: 80}}}}}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: backend}}
spec: {{ports: [{{port: 80, targetPort: {port}}}]}}
---
apiVersion: v1
kind: Endpoints
metadata: {{name: backend}}
subsets: [{{addresses: [{{ip: "{ip}"}}], ports: [{{port: {port}}}]}}]
"""

#: nginx ``lingering_time 30s`` / ``lingering_timeout 5s``: after ``CloseDownstream(linger=True)``
#: read and drop the client's bytes for 30 s at most, or until 5 s pass without one.
LINGER_TIME = 30.0
LINGER_TIMEOUT = 5.0


def _recv(sock: socket.socket) -> bytes | None:
    """What a ready socket has: None if nothing after all, b"" at its end (or on an error)."""
    try:
        return sock.recv(65536)
    except BlockingIOError:
        return None
    except OSError:
        return b""


def _reusable(sock: socket.socket) -> bool:
    """Whether an idle pooled socket may carry a new request: nothing to read on it. A backend
    that closed it while idle (its keep-alive timeout) left an EOF there; sending a request on
    it would fail after the bytes went out, and the core does not retry a POST once sent (the
    keep-alive race), so the client would get a 502. nginx makes the same check
    (ngx_http_upstream_keepalive_close_handler: ``recv(c->fd, buf, 1, MSG_PEEK)``), and so
    does ProxyServer's pool."""
    try:
        sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return True  # nothing there: still open, nothing unread
    except OSError:
        return False
    return False  # an EOF, or bytes no request asked for


#: The longest single wait in ``select`` (seconds): one day, as asyncio's MAXIMUM_SELECT_TIMEOUT.
MAX_WAIT = 24 * 3600.0


class Client:
    """One downstream socket, its core connection, its upstream sockets and its timer."""

    def __init__(self, sock: socket.socket, conn: ClientConnection) -> None:
        self.sock = sock
        self.conn = conn
        self.wbuf = bytearray()
        self.closing = False
        self.upstreams: dict[int, Upstream] = {}
        self.timer: tuple[TimerKind, float] | None = None
        self.linger = False  # CloseDownstream(linger=True) was asked
        self.linger_until: float | None = None  # lingering: our side ended, draining theirs
        self.last_read = 0.0


class Upstream:
    def __init__(self, sock: socket.socket, endpoint: tuple[str, int], cid: int,
                 client: Client, connected: bool, deadline: float) -> None:
        self.sock = sock
        self.endpoint = endpoint
        self.cid = cid
        self.client = client
        self.connected = connected
        self.deadline = deadline
        self.wbuf = bytearray()


class Driver:
    def __init__(self, proxy: Proxy, listen: tuple[str, int], verbose: bool = False) -> None:
        self.proxy = proxy
        self.sel = selectors.DefaultSelector()
        self.lsock = socket.create_server(listen, reuse_port=False)
        self.lsock.setblocking(False)
        self.sel.register(self.lsock, selectors.EVENT_READ, ("listen", None))
        #: Idle upstream sockets, least recently released first: (released at, endpoint, sock).
        self.idle: list[tuple[float, tuple[str, int], socket.socket]] = []
        self.clients: set[Client] = set()
        self.verbose = verbose

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.lsock.getsockname()[:2]
        return host, port

    # ------------------------------------------------------------------ actions
    def perform(self, client: Client, actions: list[Any]) -> None:
        for a in actions:
            t = type(a)
            if t is SendDownstream:
                client.wbuf += a.data
            elif t is SendUpstream:
                up = client.upstreams.get(a.conn_id)
                if up is not None:
                    up.wbuf += a.data
                    self._flush_upstream(up)
            elif t is OpenUpstream:
                self._open(client, a)
            elif t is CloseUpstream:
                up = client.upstreams.pop(a.conn_id, None)
                if up is not None:
                    self._unregister(up.sock)
                    if a.reuse and up.connected and not up.wbuf:
                        self._release(up)
                    else:
                        up.sock.close()
            elif t is CloseDownstream:
                client.closing = True
                client.linger = a.linger
            elif t is SetTimer:
                client.timer = None if a.seconds is None else (a.kind, time.monotonic() + a.seconds)
            elif t is RequestDone:
                r = a.record
                if self.verbose:
                    # nginx's "$request", the line as received: a request refused before
                    # routing (400, 405) has no canonical path to show.
                    line = (r.request_line if r.request_line is not None
                            else f"{r.method} {r.path}")
                    print(f'{r.client_ip} "{line}" {r.status} {r.bytes_out} '
                          f"{r.duration:.4f}s {r.upstreams}", file=sys.stderr)
            elif t is TunnelEstablished:
                pass
        self._flush_client(client)

    def _release(self, up: Upstream) -> None:
        """Keep a finished upstream socket for reuse, at most ``upstream_keepalive_connections``
        of them in all (the least recently released closed first, as ingress-nginx's one
        ``keepalive N`` upstream block does)."""
        self.idle.append((time.monotonic(), up.endpoint, up.sock))
        while len(self.idle) > max(self.proxy.settings.upstream_keepalive_connections, 0):
            self.idle.pop(0)[2].close()

    def _take(self, endpoint: tuple[str, int]) -> socket.socket | None:
        """The most recently released idle socket to ``endpoint`` that is still usable."""
        for i in range(len(self.idle) - 1, -1, -1):
            if self.idle[i][1] == endpoint:
                sock = self.idle.pop(i)[2]
                if _reusable(sock):
                    return sock
                sock.close()
        return None

    def _open(self, client: Client, a: OpenUpstream) -> None:
        now = time.monotonic()
        pooled = self._take(a.endpoint) if a.pooled else None
        if pooled is not None:
            up = Upstream(pooled, a.endpoint, a.conn_id, client, True, 0.0)
            client.upstreams[a.conn_id] = up
            self.sel.register(pooled, selectors.EVENT_READ, ("up", up))
            self.perform(client, client.conn.upstream_connected(a.conn_id, now, reused=True))
            return
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        up = Upstream(sock, a.endpoint, a.conn_id, client, False, now + a.connect_timeout)
        client.upstreams[a.conn_id] = up
        err = sock.connect_ex(a.endpoint)
        if err not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            client.upstreams.pop(a.conn_id)
            sock.close()
            self.perform(client, client.conn.upstream_failed(a.conn_id, now))
            return
        self.sel.register(sock, selectors.EVENT_WRITE, ("up", up))

    # ------------------------------------------------------------------ I/O
    def _unregister(self, sock: socket.socket) -> None:
        try:
            self.sel.unregister(sock)
        except (KeyError, ValueError):
            pass

    def _watch(self, sock: socket.socket, events: int, data: Any) -> None:
        """Select ``events`` on ``sock`` (none: not selected at all)."""
        try:
            key = self.sel.get_key(sock)
        except KeyError:
            if events:
                self.sel.register(sock, events, data)
            return
        if not events:
            self.sel.unregister(sock)
        elif key.events != events:
            self.sel.modify(sock, events, data)

    def _flush_client(self, client: Client) -> None:
        if client not in self.clients or client.linger_until is not None:
            return
        if client.wbuf:
            try:
                n = client.sock.send(client.wbuf)
                del client.wbuf[:n]
            except BlockingIOError:
                pass
            except OSError:
                client.wbuf.clear()
                client.closing = True
        if client.closing and not client.wbuf:
            if client.linger:
                self._linger(client)
            else:
                self._drop_client(client)
            return
        # The core holds as many of this client's bytes as it will (an upstream is still
        # connecting): leave them in the socket until it takes them.
        events = selectors.EVENT_READ if client.conn.reading_wanted else 0
        if client.wbuf:
            events |= selectors.EVENT_WRITE
        if client.closing:
            events = selectors.EVENT_WRITE
        self._watch(client.sock, events, ("client", client))

    def _linger(self, client: Client) -> None:
        # The response is written; the client may still be sending a body the core will not
        # read. Closing now, with bytes unread, would make the kernel send a reset that can
        # destroy the response before the client reads it: end our side only (FIN), then read
        # and drop until the client stops. A thread-per-connection driver would do this as a
        # blocking recv loop with settimeout(LINGER_TIMEOUT); here one thread serves every
        # socket, so the drain is part of the select loop (``_on_client``, ``_timers``).
        try:
            client.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._drop_client(client)
            return
        client.last_read = time.monotonic()
        client.linger_until = client.last_read + LINGER_TIME
        self._watch(client.sock, selectors.EVENT_READ, ("client", client))

    def _flush_upstream(self, up: Upstream) -> None:
        if not up.connected:
            return
        if up.wbuf:
            try:
                n = up.sock.send(up.wbuf)
                del up.wbuf[:n]
            except BlockingIOError:
                pass
            except OSError:
                up.wbuf.clear()
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if up.wbuf else 0)
        self.sel.modify(up.sock, events, ("up", up))

    def _drop_client(self, client: Client) -> None:
        if client in self.clients:
            self.clients.discard(client)
            self.perform(client, client.conn.abort(time.monotonic())) if not client.conn.closed \
                else None
            for up in list(client.upstreams.values()):
                self._unregister(up.sock)
                up.sock.close()
            client.upstreams.clear()
            self._unregister(client.sock)
            client.sock.close()

    def _on_client(self, client: Client, mask: int) -> None:
        now = time.monotonic()
        if client.linger_until is not None:  # lingering: read and drop
            dropped = _recv(client.sock)
            if dropped is None:
                return
            if dropped:
                client.last_read = now
            else:
                self._drop_client(client)
            return
        if mask & selectors.EVENT_WRITE:
            self._flush_client(client)
        if client not in self.clients or client.closing or not mask & selectors.EVENT_READ:
            return
        data = _recv(client.sock)
        if data is None:
            return
        if data:
            self.perform(client, client.conn.receive_data(data, now))
        else:
            self.perform(client, client.conn.receive_eof(now))
            if client.conn.closed:
                client.closing = True
                self._flush_client(client)

    def _on_upstream(self, up: Upstream, mask: int) -> None:
        client = up.client
        now = time.monotonic()
        if up.cid not in client.upstreams:
            return
        if not up.connected:
            err = up.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                client.upstreams.pop(up.cid)
                self._unregister(up.sock)
                up.sock.close()
                self.perform(client, client.conn.upstream_failed(up.cid, now))
                return
            up.connected = True
            self.sel.modify(up.sock, selectors.EVENT_READ, ("up", up))
            self.perform(client, client.conn.upstream_connected(up.cid, now))
            return
        if mask & selectors.EVENT_WRITE:
            self._flush_upstream(up)
        if mask & selectors.EVENT_READ:
            data = _recv(up.sock)
            if data is None:
                return
            if data:
                self.perform(client, client.conn.upstream_data(up.cid, data, now))
            else:
                self.perform(client, client.conn.upstream_eof(up.cid, now))

    def _accept(self) -> None:
        try:
            sock, addr = self.lsock.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        now = time.monotonic()
        conn = self.proxy.connection(addr, local_port=self.address[1], now=now)
        client = Client(sock, conn)
        self.clients.add(client)
        self.sel.register(sock, selectors.EVENT_READ, ("client", client))
        self.perform(client, conn.start(now))

    def _timers(self) -> float | None:
        """Fire due timers; return seconds to the next one."""
        now = time.monotonic()
        nearest: float | None = None
        keepalive = self.proxy.settings.upstream_keepalive_timeout
        while self.idle and self.idle[0][0] + keepalive <= now:  # idle too long: close it
            self.idle.pop(0)[2].close()
        if self.idle:
            nearest = self.idle[0][0] + keepalive
        for client in list(self.clients):
            if client.linger_until is not None:
                at = min(client.linger_until, client.last_read + LINGER_TIMEOUT)
                if at <= now:
                    self._drop_client(client)
                else:
                    nearest = at if nearest is None else min(nearest, at)
                continue
            for up in list(client.upstreams.values()):
                if not up.connected and up.deadline <= now:
                    client.upstreams.pop(up.cid)
                    self._unregister(up.sock)
                    up.sock.close()
                    self.perform(client, client.conn.upstream_failed(up.cid, now, timed_out=True))
                elif not up.connected:
                    nearest = up.deadline if nearest is None else min(nearest, up.deadline)
            if client.timer is not None and client in self.clients:
                kind, at = client.timer
                if at <= now:
                    client.timer = None
                    self.perform(client, client.conn.timer_expired(kind, now))
                else:
                    nearest = at if nearest is None else min(nearest, at)
        return None if nearest is None else max(0.0, nearest - now)

    def serve_forever(self) -> None:
        host, port = self.address
        print(f"listening on http://{host}:{port}", file=sys.stderr, flush=True)
        while True:
            timeout = self._timers()
            # A timer may be months away (proxy-read-timeout is up to 2^63 ms in nginx); epoll
            # takes an int of milliseconds and raises OverflowError past 24.8 days, so the wait
            # is capped as asyncio caps its own (a wake-up finds the timer not due yet).
            wait = 1.0 if timeout is None else min(timeout, MAX_WAIT)
            for key, mask in self.sel.select(wait):
                kind, obj = key.data
                if kind == "listen":
                    self._accept()
                elif kind == "client":
                    self._on_client(obj, mask)
                else:
                    self._on_upstream(obj, mask)


def _hostport(text: str) -> tuple[str, int]:
    """``IPv4:PORT``. An IP, not a name: the backend's address goes into an Endpoints object
    (which holds IPs only), and the sockets here are IPv4. No empty host either: ``:8080``
    would listen on every interface."""
    host, sep, port = text.rpartition(":")
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected IPv4:PORT, e.g. 127.0.0.1:9000") from None
    if not (port.isascii() and port.isdigit() and int(port) <= 65535):
        raise argparse.ArgumentTypeError(f"{text!r}: the port must be a number 0-65535")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backend", required=True, type=_hostport, metavar="IP:PORT",
                    help="IPv4:PORT of the backend")
    ap.add_argument("--listen", default="127.0.0.1:8080", type=_hostport, metavar="IP:PORT",
                    help="IPv4:PORT to listen on (default 127.0.0.1:8080; port 0: a free port)")
    ap.add_argument("-v", "--verbose", action="store_true", help="one line per request")
    args = ap.parse_args(argv)
    ip, port = args.backend
    res = ingresslib.parse_manifests(MANIFESTS.format(ip=ip, port=port))
    driver = Driver(Proxy(Router(res)), args.listen, verbose=args.verbose)
    try:
        driver.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
