"""Session 25 (RL): ingress-nginx's rate limit annotations (a new feature; every test here
failed on the tree before it: the annotations were "not implemented", nothing was limited).

References (search corpus "code"):
- ingress-nginx internal/ingress/annotations/ratelimit/main.go ``Parse``: "zoneName :=
  fmt.Sprintf("%v_%v_%v", ing.GetNamespace(), ing.GetName(), ing.UID)" (zones per Ingress),
  "Burst: rps * burstMultiplier" (``defBurst`` 5), "if rpm == 0 && rps == 0 && conn == 0",
  an invalid limit or allowlist returns the error (no rate limit for the Ingress).
- nginx.tmpl ``buildRateLimit``: "limit_req zone=%v burst=%v nodelay;", "limit_conn %v %v;";
  the allowlist's ``geo``/``map`` make the key "" (never limited).
- nginx ngx_http_limit_req_module.c ``ngx_http_limit_req_lookup``: "excess = lr->excess -
  ctx->rate * ms / 1000 + 1000; ... if ((ngx_uint_t) excess > limit->burst) return NGX_BUSY;".
- nginx ngx_http_limit_conn_module.c: counted per key while the request is processed,
  released by ``ngx_http_limit_conn_cleanup`` at its end.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from ingresslib import IngressASGI, Router, parse_manifests
from ingresslib.proxy import OpenUpstream, Proxy, ProxySettings, SendDownstream
from ingresslib.proxy._annotations import IMPLEMENTED, PREFIX, parse_route_options
from ingresslib.proxy._ratelimit import RateLimit, RateLimiter

from _proxy_harness import WEB_SERVICE_YAML, ingress_yaml

P = PREFIX
ANNOTATION_NAMES = ("limit-connections", "limit-rps", "limit-rpm", "limit-burst-multiplier",
                    "limit-allowlist", "limit-whitelist")


def _router(*docs: str) -> Router:
    return Router(parse_manifests("".join(docs) + WEB_SERVICE_YAML))


def _proxy(annotations: dict[str, str], settings: ProxySettings | None = None,
           extra: str = "") -> Proxy:
    return Proxy(_router(ingress_yaml("a", "a.test", annotations), extra), settings,
                 clock=None)


class Client:
    """One request on its own connection of ``proxy``: ``status`` is the local answer's, or 0
    while it went to the upstream (``conn_id``)."""

    def __init__(self, proxy: Proxy, ip: str, now: float, host: str = "a.test",
                 path: str = "/") -> None:
        self.conn = proxy.connection((ip, 40000), now=now)
        self.conn.start(now)
        acts = self.conn.receive_data(
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode(), now)
        self.status = 0
        self.conn_id: int | None = None
        for a in acts:
            if isinstance(a, SendDownstream) and not self.status:
                self.status = int(a.data.split(b" ", 2)[1])
            elif isinstance(a, OpenUpstream):
                self.conn_id = a.conn_id

    def finish(self, now: float) -> None:
        """The upstream answers 200: the request ends (done)."""
        assert self.conn_id is not None
        self.conn.upstream_connected(self.conn_id, now)
        self.conn.upstream_data(self.conn_id, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                                now)


def _statuses(proxy: Proxy, n: int, now: float, ip: str = "192.0.2.1",
              host: str = "a.test") -> list[int]:
    return [Client(proxy, ip, now, host).status for _ in range(n)]


# -- limit-rps / limit-rpm ------------------------------------------------------------------------

def test_rps_burst_then_refusal_with_configured_status() -> None:
    """rps 2, multiplier 3: burst = 6 requests past the first at one instant (nodelay); the
    8th is refused with limit-req-status-code."""
    proxy = _proxy({P + "limit-rps": "2", P + "limit-burst-multiplier": "3"},
                   ProxySettings(limit_req_status_code=429))
    assert _statuses(proxy, 8, 100.0) == [0] * 7 + [429]


def test_rps_default_status_is_503_and_default_multiplier_5() -> None:
    proxy = _proxy({P + "limit-rps": "1"})
    assert _statuses(proxy, 7, 5.0) == [0] * 6 + [503]


def test_rps_refills_over_time() -> None:
    """The bucket drains ``rate`` requests a second: after 0.5 s at 2 r/s one more passes."""
    proxy = _proxy({P + "limit-rps": "2", P + "limit-burst-multiplier": "1"})
    assert _statuses(proxy, 4, 10.0) == [0, 0, 0, 503]
    assert _statuses(proxy, 2, 10.4) == [503, 503]  # 0.8 of a request drained: not enough
    assert _statuses(proxy, 2, 10.5) == [0, 503]
    # Drained again ("excess = lr->excess - rate * ms / 1000 + 1000", never below 0): the
    # first request leaves it at 0, as a key never seen, so burst + 1 pass.
    assert _statuses(proxy, 4, 12.0) == [0, 0, 0, 503]


def test_refused_request_is_not_accounted() -> None:
    """A refused request does not add to the bucket (nginx returns NGX_BUSY before storing):
    hammering does not delay the refill."""
    proxy = _proxy({P + "limit-rps": "1", P + "limit-burst-multiplier": "0"})
    assert _statuses(proxy, 1, 0.0) == [0]
    assert _statuses(proxy, 50, 0.5) == [503] * 50
    assert _statuses(proxy, 1, 1.0) == [0]


def test_rpm() -> None:
    """2 r/m: nginx's rate is "rate * 1000 / 60" = 33 milli-requests a second (integer), the
    burst rpm * multiplier = 2: three pass at once, the next one after 30.304 s (not 30 s)."""
    proxy = _proxy({P + "limit-rpm": "2", P + "limit-burst-multiplier": "1"})
    assert _statuses(proxy, 4, 0.0) == [0, 0, 0, 503]
    assert _statuses(proxy, 1, 30.303) == [503]
    assert _statuses(proxy, 2, 30.304) == [0, 503]


def test_rps_and_rpm_both_apply_and_a_refusal_accounts_neither() -> None:
    proxy = _proxy({P + "limit-rps": "10", P + "limit-rpm": "2",
                    P + "limit-burst-multiplier": "1"})
    # rpm: burst 2 -> 3 requests at once; rps would take 11.
    assert _statuses(proxy, 4, 0.0) == [0, 0, 0, 503]


def test_keys_are_per_client_address() -> None:
    proxy = _proxy({P + "limit-rps": "1", P + "limit-burst-multiplier": "0"})
    assert _statuses(proxy, 2, 0.0, ip="192.0.2.1") == [0, 503]
    assert _statuses(proxy, 2, 0.0, ip="192.0.2.2") == [0, 503]


def test_real_client_address_after_forwarded_headers() -> None:
    """The key is $binary_remote_addr after real-ip: behind a trusted hop, the forwarded
    client's address, not the hop's."""
    proxy = _proxy({P + "limit-rps": "1", P + "limit-burst-multiplier": "0"},
                   ProxySettings(use_forwarded_headers=True,
                                 proxy_real_ip_cidr=("10.0.0.0/8",)))

    def ask(client: str) -> int:
        conn = proxy.connection(("10.0.0.1", 1), now=0.0)
        acts = conn.receive_data(("GET / HTTP/1.1\r\nHost: a.test\r\nX-Forwarded-For: "
                                  f"{client}\r\n\r\n").encode(), 0.0)
        sent = [a for a in acts if isinstance(a, SendDownstream)]
        return int(sent[0].data.split(b" ", 2)[1]) if sent else 0

    assert [ask("198.51.100.1"), ask("198.51.100.2"), ask("198.51.100.1")] == [0, 0, 503]


# -- limit-connections ----------------------------------------------------------------------------

def test_connections_counted_and_released_when_done() -> None:
    proxy = _proxy({P + "limit-connections": "2"},
                   ProxySettings(limit_conn_status_code=429))
    a = Client(proxy, "192.0.2.1", 0.0)
    b = Client(proxy, "192.0.2.1", 0.0)
    c = Client(proxy, "192.0.2.1", 0.0)
    assert (a.status, b.status, c.status) == (0, 0, 429)
    assert Client(proxy, "192.0.2.9", 0.0).status == 0  # another client: its own count
    a.finish(0.1)
    assert Client(proxy, "192.0.2.1", 0.2).status == 0


def test_connections_released_on_abort_and_client_gone() -> None:
    proxy = _proxy({P + "limit-connections": "1"})
    a = Client(proxy, "192.0.2.1", 0.0)
    assert Client(proxy, "192.0.2.1", 0.0).status == 503
    a.conn.abort(0.1)
    b = Client(proxy, "192.0.2.1", 0.2)
    assert b.status == 0
    b.conn.receive_eof(0.3)  # the client gone before the answer
    c = Client(proxy, "192.0.2.1", 0.4)
    assert c.status == 0
    assert c.conn_id is not None
    c.conn.upstream_failed(c.conn_id, 0.5)  # the upstream fails: 502, the request ends
    assert Client(proxy, "192.0.2.1", 0.6).status == 0
    assert proxy.rate_limits.keys() == 1  # only the last one's count is left


def test_connections_keepalive_requests_count_one_at_a_time() -> None:
    proxy = _proxy({P + "limit-connections": "1"})
    a = Client(proxy, "192.0.2.1", 0.0)
    a.finish(0.1)
    acts = a.conn.receive_data(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n", 0.2)
    assert any(isinstance(x, OpenUpstream) for x in acts)


def test_rate_refusal_holds_no_connection() -> None:
    """limit_req runs before limit_conn: a request refused by the rate is not counted."""
    proxy = _proxy({P + "limit-connections": "1", P + "limit-rps": "1",
                    P + "limit-burst-multiplier": "0"},
                   ProxySettings(limit_req_status_code=429, limit_conn_status_code=503))
    a = Client(proxy, "192.0.2.1", 0.0)
    assert Client(proxy, "192.0.2.1", 0.0).status == 429
    a.finish(0.1)
    assert Client(proxy, "192.0.2.1", 2.0).status == 0


# -- allowlist, zones, phases ---------------------------------------------------------------------

@pytest.mark.parametrize("name", ["limit-allowlist", "limit-whitelist"])
def test_allowlisted_client_never_limited(name: str) -> None:
    proxy = _proxy({P + "limit-rps": "1", P + "limit-connections": "1",
                    P + "limit-burst-multiplier": "0", P + name: "192.0.2.0/24, 198.51.100.7"})
    assert _statuses(proxy, 5, 0.0, ip="192.0.2.44") == [0] * 5
    assert _statuses(proxy, 3, 0.0, ip="198.51.100.7") == [0] * 3
    assert _statuses(proxy, 2, 0.0, ip="203.0.113.1") == [0, 503]


def test_zones_are_per_ingress() -> None:
    """Two Ingresses with the same limit do not share a count; two paths of one Ingress do."""
    ann = {P + "limit-rps": "1", P + "limit-burst-multiplier": "0"}
    router = _router(ingress_yaml("a", "a.test", ann, extra_paths=("/x",)),
                     ingress_yaml("b", "b.test", ann))
    proxy = Proxy(router, clock=None)
    assert Client(proxy, "192.0.2.1", 0.0, "a.test", "/").status == 0
    assert Client(proxy, "192.0.2.1", 0.0, "a.test", "/x").status == 503
    assert Client(proxy, "192.0.2.1", 0.0, "b.test").status == 0
    assert Client(proxy, "192.0.2.1", 0.0, "b.test").status == 503


def test_redirect_before_limit_and_limit_before_access() -> None:
    """Preaccess: after the rewrite phase's redirects, before allow/deny."""
    proxy = _proxy({P + "limit-rps": "1", P + "limit-burst-multiplier": "0",
                    P + "whitelist-source-range": "10.0.0.0/8"})
    assert _statuses(proxy, 3, 0.0) == [403, 503, 503]
    redirecting = _proxy({P + "limit-rps": "1", P + "limit-burst-multiplier": "0",
                          P + "permanent-redirect": "https://b.test/"})
    assert _statuses(redirecting, 3, 0.0) == [301, 301, 301]


def test_unlimited_routes_and_zero_values() -> None:
    proxy = _proxy({P + "limit-rps": "0", P + "limit-connections": "0"})
    assert _statuses(proxy, 30, 0.0) == [0] * 30


# -- parsing --------------------------------------------------------------------------------------

def _parse(annotations: dict[str, str]) -> Any:
    return parse_route_options(annotations, "/", ProxySettings(), where="Ingress default/a")


def test_annotations_are_implemented_and_bandwidth_too() -> None:
    # limit-rate / limit-rate-after are implemented since session 26 (proxy/_bandwidth.py);
    # proxy-busy-buffers-size stands for an annotation that still is not (proxy-buffering
    # until session 30).
    for name in (*ANNOTATION_NAMES, "limit-rate", "limit-rate-after"):
        assert name in IMPLEMENTED
    opts = _parse({P + "limit-rps": "5", P + "limit-rate": "100",
                   P + "proxy-busy-buffers-size": "8k"})
    assert opts.rate_limit == RateLimit(zone="Ingress default/a", rps=5)
    assert opts.limit_rate == 100 * 1024
    assert [w.field for w in opts.warnings] == [
        f"metadata.annotations[{P}proxy-busy-buffers-size]"]
    assert "not implemented" in opts.warnings[0]


@pytest.mark.parametrize("name", ["limit-rps", "limit-rpm", "limit-connections"])
@pytest.mark.parametrize("value", ["abc", "-1", "1.5", " 5"])
def test_invalid_limit_warns_and_no_limit_applies(name: str, value: str) -> None:
    opts = _parse({P + name: value, P + "limit-rps": "5"} if name != "limit-rps"
                  else {P + name: value, P + "limit-connections": "5"})
    assert opts.rate_limit is None
    assert any(w.field == f"metadata.annotations[{P}{name}]" and "no rate limit" in w
               for w in opts.warnings), opts.warnings


def test_invalid_allowlist_warns_and_no_limit_applies() -> None:
    opts = _parse({P + "limit-rps": "5", P + "limit-allowlist": "10.0.0.0/8,nope"})
    assert opts.rate_limit is None
    assert "invalid allowlist" in opts.warnings[0]


def test_invalid_multiplier_warns_and_uses_5() -> None:
    opts = _parse({P + "limit-rps": "5", P + "limit-burst-multiplier": "x"})
    assert opts.rate_limit is not None and opts.rate_limit.burst_multiplier == 5
    assert "using the default 5" in opts.warnings[0]


def test_canary_limit_annotations_are_ignored_with_a_warning() -> None:
    """ingress-nginx merges only a canary's upstream into the main location: its location's
    limits are the main Ingress's (annotations.md: "all the other non-canary annotations will
    be ignored")."""
    opts = parse_route_options({P + "canary": "true", P + "limit-rps": "1"}, "/",
                               ProxySettings(), where="Ingress default/c")
    assert opts.rate_limit is None
    assert "ignored on a canary Ingress" in opts.warnings[0]


def test_configmap_status_keys() -> None:
    from ingresslib.proxy import parse_config_data

    s = parse_config_data({"limit-req-status-code": "429",
                           "limit-conn-status-code": "503"}).settings
    assert (s.limit_req_status_code, s.limit_conn_status_code) == (429, 503)
    with pytest.raises(ValueError, match="400 to 599"):
        parse_config_data({"limit-req-status-code": "200"})
    with pytest.raises(ValueError, match="400 to 599"):
        ProxySettings(limit_conn_status_code=600)


# -- memory ---------------------------------------------------------------------------------------

def test_zone_memory_is_bounded() -> None:
    limiter = RateLimiter(max_entries=100)
    limit = RateLimit(zone="z", rps=1)
    for i in range(1000):
        assert limiter.enter(limit, f"10.0.{i // 256}.{i % 256}", 0.0, 503, 503) == (0, None)
    assert limiter.keys() == 100


def test_idle_drained_keys_are_dropped() -> None:
    limiter = RateLimiter()
    limit = RateLimit(zone="z", rps=1)
    for i in range(10):
        limiter.enter(limit, f"10.0.0.{i}", 0.0, 503, 503)
    # 60 s later every bucket has drained: each new key drops up to two old ones (nginx).
    for i in range(10):
        limiter.enter(limit, f"10.0.1.{i}", 61.0, 503, 503)
    assert limiter.keys() == 10


# -- IngressASGI ----------------------------------------------------------------------------------

def _asgi(annotations: dict[str, str], settings: ProxySettings | None = None
          ) -> tuple[IngressASGI, list[float], list[asyncio.Event]]:
    gate: list[asyncio.Event] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if gate:
            await gate[0].wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    asgi = IngressASGI(_router(ingress_yaml("a", "a.test", annotations)),
                       {"default/web": app}, settings=settings)
    clock = [0.0]
    asgi.limit_clock = lambda: clock[0]
    return asgi, clock, gate


async def _call(asgi: IngressASGI, ip: str = "192.0.2.1") -> int:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": "/", "raw_path": b"/",
             "query_string": b"", "root_path": "", "headers": [(b"host", b"a.test")],
             "client": (ip, 5000), "server": ("127.0.0.1", 80)}
    sent: list[Any] = []

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(m: Any) -> None:
        sent.append(m)

    await asgi(scope, receive, send)
    return int(sent[0]["status"])


def test_asgi_rps_and_refill() -> None:
    asgi, clock, _ = _asgi({P + "limit-rps": "2", P + "limit-burst-multiplier": "1"},
                           ProxySettings(limit_req_status_code=429))

    async def run() -> list[int]:
        out = [await _call(asgi) for _ in range(4)]
        clock[0] = 0.5
        out += [await _call(asgi), await _call(asgi)]
        out.append(await _call(asgi, "192.0.2.2"))
        return out

    assert asyncio.run(run()) == [200, 200, 200, 429, 200, 429, 200]


def test_asgi_connections_counted_and_released() -> None:
    asgi, _, gate = _asgi({P + "limit-connections": "1"})

    async def run() -> list[int]:
        gate.append(asyncio.Event())
        first = asyncio.ensure_future(_call(asgi))
        await asyncio.sleep(0)
        # (Bounded: were the second request not refused, it would wait for the gate too.)
        second = await asyncio.wait_for(_call(asgi), 2.0)
        gate[0].set()
        out = [await first, second]
        gate.clear()
        out.append(await _call(asgi))
        # Cancelled while in the app (the client gone): released too.
        gate.append(asyncio.Event())
        task = asyncio.ensure_future(_call(asgi))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gate.clear()
        out.append(await _call(asgi))
        return out

    assert asyncio.run(run()) == [200, 503, 200, 200]
    assert asgi.rate_limits.keys() == 0


def test_asgi_allowlist() -> None:
    asgi, _, _ = _asgi({P + "limit-rps": "1", P + "limit-burst-multiplier": "0",
                        P + "limit-allowlist": "192.0.2.0/24"})

    async def run() -> list[int]:
        return [await _call(asgi) for _ in range(3)] + [await _call(asgi, "203.0.113.1")
                                                        for _ in range(2)]

    assert asyncio.run(run()) == [200, 200, 200, 200, 503]


def test_warnings_logged_once_by_proxy(caplog: pytest.LogCaptureFixture) -> None:
    proxy = _proxy({P + "limit-rps": "lots"})
    with caplog.at_level(logging.WARNING):
        assert _statuses(proxy, 10, 0.0) == [0] * 10
    assert sum("limit-rps" in r.getMessage() for r in caplog.records) == 1
