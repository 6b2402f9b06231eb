"""Session 27 (R1): an attacker's review of today's global rate limit (proxy/_globalratelimit.py)
and PROXY protocol / passthrough changes. Every test here failed on the tree before its fix.

References (search corpus "code"):
- ingress-nginx rootfs/etc/nginx/lua/global_throttle.lua ``throttle``: "namespaced_key_value =
  get_namespaced_key_value(location_config.namespace, key_value)" (``namespace .. key_value``,
  no separator), the decision cache keyed by it; ``should_ignore_request``: a client address
  resty-ipmatcher cannot read is an error there ("failed to match ip"), "return false": limited.
- internal/ingress/annotations/globalratelimit/main.go ``Parse``: "config.Namespace =
  strings.Replace(string(ing.UID), "-", "", -1)": 32 hex digits, so that namespace + key never
  names another Ingress's key.
- lua-resty-global-throttle lib/resty/global_throttle/sliding_window.lua ``get_counter_key``:
  "%s.%s.%s.counter" of namespace, key and window id.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ingresslib import IngressASGI, Router, parse_manifests
from ingresslib.proxy import OpenUpstream, Proxy, SendDownstream
from ingresslib.proxy._annotations import PREFIX
from ingresslib.proxy._globalratelimit import GlobalRateLimit, GlobalRateLimiter, MemoryStore

from _proxy_harness import WEB_SERVICE_YAML, ingress_yaml

P = PREFIX


def _ask(proxy: Proxy, now: float, ip: str, host: str, headers: str = "") -> int:
    """One request on its own connection: the local answer's status, 0 when proxied."""
    conn = proxy.connection((ip, 40000), now=now)
    conn.start(now)
    acts = conn.receive_data(f"GET / HTTP/1.1\r\nHost: {host}\r\n{headers}\r\n".encode(), now)
    for a in acts:
        if isinstance(a, SendDownstream):
            return int(a.data.split(b" ", 2)[1])
        if isinstance(a, OpenUpstream):
            return 0
    raise AssertionError(acts)


def _proxy(*docs: str) -> Proxy:
    return Proxy(Router(parse_manifests("".join(docs) + WEB_SERVICE_YAML)), clock=None)


# -- the counters' and decisions' names: one Ingress's key, never another's -----------------------

def test_a_decision_of_one_ingress_never_refuses_another_ingress_client() -> None:
    """Ingress default/app1's client 1.2.3.4 over its limit: the cached decision was named
    "Ingress default/app1" + "1.2.3.4", which is "Ingress default/app" + "11.2.3.4" -- a
    client of another Ingress that had sent nothing was refused."""
    limit1 = {P + "global-rate-limit": "1", P + "global-rate-limit-window": "1m"}
    proxy = _proxy(ingress_yaml("app1", "b.test", limit1), ingress_yaml("app", "a.test", limit1))
    assert [_ask(proxy, 59.0, "1.2.3.4", "b.test") for _ in range(2)] == [0, 429]
    assert _ask(proxy, 59.0, "11.2.3.4", "a.test") == 0
    assert _ask(proxy, 59.0, "11.2.3.4", "a.test") == 429  # its own limit still holds


def test_a_client_chosen_key_never_counts_for_a_dotted_ingress_name() -> None:
    """A ``$http_x_user`` key: Ingress default/a's client sending "b.c" counted on
    "Ingress default/a.b.c.<id>.counter", the counter of Ingress default/a.b's user "c"."""
    ann = {P + "global-rate-limit": "2", P + "global-rate-limit-window": "1m",
           P + "global-rate-limit-key": "$http_x_user"}
    proxy = _proxy(ingress_yaml("a.b", "b.test", ann), ingress_yaml("a", "a.test", ann))
    assert _ask(proxy, 1.0, "203.0.113.9", "a.test", "X-User: b.c\r\n") == 0
    assert [_ask(proxy, 1.0, "192.0.2.1", "b.test", "X-User: c\r\n") for _ in range(3)] \
        == [0, 0, 429]


# -- ignored CIDRs: an address that cannot be read is not "inside" -------------------------------

def test_an_unreadable_client_address_is_limited_not_ignored() -> None:
    """``SourceRanges.refuses`` fails closed on an address it cannot read (right for an
    allowlist); for ``global-rate-limit-ignored-cidrs`` that read as "inside": such a client
    (an ASGI server's ``client`` host as a proxy-headers middleware wrote it, a name) was never
    limited. resty-ipmatcher errs there and global_throttle.lua limits the request."""
    rl = GlobalRateLimit(namespace="Ingress default/a", limit=1, window=60,
                         ignored_cidrs=("10.0.0.0/8", "fd00::/8"))
    # (::ffff:10.1.2.3: resty-ipmatcher reads the text as IPv6, which no IPv6 entry holds:
    # limited, tests/test_h3_s33.py.)
    for ip in ("testclient", "unix:/run/x.sock", "10.1.2.3:80", "not-an-ip", "::ffff:10.1.2.3"):
        assert not rl.ignored(ip), ip
    for ip in ("10.1.2.3", "fd00::1", "fd00::1%eth0"):
        assert rl.ignored(ip), ip

    ann = {P + "global-rate-limit": "2", P + "global-rate-limit-window": "1h",
           P + "global-rate-limit-ignored-cidrs": "10.0.0.0/8"}
    proxy = _proxy(ingress_yaml("a", "a.test", ann))
    assert [_ask(proxy, 10.0, "testclient", "a.test") for _ in range(3)] == [0, 0, 429]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    asgi = IngressASGI(Router(parse_manifests(ingress_yaml("a", "a.test", ann)
                                              + WEB_SERVICE_YAML)), {"default/web": app})
    asgi.limit_clock = lambda: 10.0

    async def call(client: str) -> int:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "GET", "scheme": "http", "path": "/", "raw_path": b"/",
                 "query_string": b"", "root_path": "", "headers": [(b"host", b"a.test")],
                 "client": (client, 5000), "server": ("127.0.0.1", 80)}
        sent: list[Any] = []

        async def receive() -> Any:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(m: Any) -> None:
            sent.append(m)

        await asgi(scope, receive, send)
        return int(sent[0]["status"])

    async def run() -> list[int]:
        return [await call("testclient") for _ in range(3)] + [await call("10.9.9.9")
                                                               for _ in range(3)]

    assert asyncio.run(run()) == [200, 200, 429, 200, 200, 200]


# -- memory and work under a flood of new keys ---------------------------------------------------

class _Now(float):
    """A clock reading that counts the comparisons made against it (the expiry checks)."""

    seen = 0

    def __ge__(self, other: Any) -> bool:
        _Now.seen += 1
        return float(self) >= other

    def __le__(self, other: Any) -> bool:
        _Now.seen += 1
        return float(self) <= other

    def __gt__(self, other: Any) -> bool:
        _Now.seen += 1
        return float(self) > other

    def __lt__(self, other: Any) -> bool:
        _Now.seen += 1
        return float(self) < other


def test_a_full_store_pays_constant_work_per_new_key() -> None:
    """Once full, each new key made ``MemoryStore.incr`` compare every entry's expiry with the
    clock (a list of the expired ones) and then drop from the front of a plain dict: a flood of
    new keys (a ``$http_x`` key, or IPv6 clients under ``$remote_addr``) cost ``max_entries``
    steps per request, 100,000 by default, on the proxy's one event loop."""
    now = _Now(5.0)
    store = MemoryStore(lambda: now, max_entries=300)
    for i in range(300):
        store.incr(f"k{i}", 1, 60)
    _Now.seen = 0
    for i in range(1000):
        store.incr(f"new{i}", 1, 60)
    assert len(store) == 300
    assert _Now.seen <= 5 * 1000  # a few per key, not one per entry held (300,000)
    assert store.get("new999") == 1 and store.get("k0") is None  # the oldest went first


def test_a_long_client_chosen_key_is_stored_bounded() -> None:
    """A ``$http_x`` key value is the client's, up to the head's size: each of up to 100,000
    counters (and cached decisions) held it whole (8 KB each: gigabytes). A value past
    ``MAX_SAMPLE`` characters is counted under its SHA-256: still one counter per value."""
    limiter = GlobalRateLimiter()
    rl = GlobalRateLimit(namespace="Ingress default/a", limit=2, window=60,
                         key="$http_x_user")
    long_a = [(b"x-user", b"a" * 8000)]
    long_b = [(b"x-user", b"a" * 7999 + b"b")]
    got = [limiter.refuses(rl, 1.0, "GET", "a.test", "/", None, long_a, "192.0.2.1")
           for _ in range(3)]
    assert got == [False, False, True]
    assert not limiter.refuses(rl, 1.0, "GET", "a.test", "/", None, long_b, "192.0.2.1")
    store = limiter.store
    assert isinstance(store, MemoryStore)
    assert len(store) == 2 and all(len(k) < 200 for k in store._data)
    assert all(len(k) < 200 for k in limiter._decisions)
    # A short value is its own key, as written.
    limiter.refuses(rl, 1.0, "GET", "a.test", "/", None, [(b"x-user", b"u1")], "192.0.2.1")
    assert any(".u1." in k for k in store._data)


# -- ssl-passthrough: shutdown cuts a pipe still flushing to its backend --------------------------

@pytest.mark.asyncio
async def test_shutdown_cuts_a_pipe_whose_client_left_while_its_backend_flush_runs() -> None:
    """The client sends more than the backend reads, then goes: the pipe flushes the rest to
    the backend (bounded by proxy_read_timeout, 60 s), but it left ``server.passthrough`` when
    the client's socket went, and ``ProxyServer.shutdown`` aborts only the pipes there: the
    backend's socket outlived the shutdown (and, the loop closed, was never closed)."""
    import socket

    from ingresslib.proxy._server import ProxyServer
    from test_proxyproto_passthrough_s27 import _PT, _client_hello, _ingress, _res, _service

    held: list[asyncio.StreamWriter] = []

    async def backend(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        held.append(w)   # never reads: the proxy's writes to it pile up

    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    lsock.bind(("127.0.0.1", 0))
    bsrv = await asyncio.start_server(backend, sock=lsock)
    bport = lsock.getsockname()[1]
    server = ProxyServer(Router(_res(_ingress("a", "x.test", "svc", annotations={_PT: "true"}),
                                     _service("svc", bport))),
                         ssl_passthrough=True, client_header_timeout=3)
    await server.start(None, ("127.0.0.1", 0))
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    try:
        sock.setblocking(False)
        await loop.sock_connect(sock, ("127.0.0.1", server.addresses[0][2]))
        await loop.sock_sendall(sock, _client_hello("x.test"))
        for _ in range(100):
            if server.passthrough and next(iter(server.passthrough)).upstream is not None:
                break
            await asyncio.sleep(0.01)
        pipe = next(iter(server.passthrough))
        assert pipe.upstream is not None
        pipe.upstream.set_write_buffer_limits(high=1 << 30)  # the client is read on
        await loop.sock_sendall(sock, b"y" * (4 << 20))
        sock.shutdown(socket.SHUT_WR)
        for _ in range(200):
            if pipe.closed and pipe.client_gone:
                break
            await asyncio.sleep(0.01)
        assert pipe.closed and pipe.client_gone and not pipe.upstream_gone  # flushing
        assert pipe.upstream.get_write_buffer_size() > 0
        await server.shutdown(0.2)
        for _ in range(20):
            if pipe.upstream_gone:
                break
            await asyncio.sleep(0.01)
        assert pipe.upstream_gone and pipe not in server.passthrough
    finally:
        sock.close()
        for w in held:
            w.close()
        bsrv.close()
        await bsrv.wait_closed()
