"""Session 27 (H5): ingress-nginx's global rate limit (``global-rate-limit``,
``global-rate-limit-window``, ``global-rate-limit-key``, ``global-rate-limit-ignored-cidrs``,
the ConfigMap's ``global-rate-limit-status-code``). A new feature: every behaviour test here
failed on the tree before it (the annotations were warned "not implemented", nothing limited).

References (search corpus "code"):
- ingress-nginx internal/ingress/annotations/globalratelimit/main.go ``Parse``: "if limit == 0
  || len(rawWindowSize) == 0 { return config, nil }", the window through time.ParseDuration
  (an error is a LocationDenied), "config.WindowSize = int(windowSize.Seconds())", the key
  ``$remote_addr`` by default, the ignored CIDRs through net.ParseCIDRs (an error: no limit),
  "config.Namespace = strings.Replace(string(ing.UID), "-", "", -1)" (counters per Ingress).
- rootfs/etc/nginx/lua/global_throttle.lua ``throttle``: ignored CIDRs, the key through
  ``util.generate_var_value`` (empty: ``remote_addr``), the decision cache ("safe_add(
  namespaced_key_value, true, desired_delay)" past ``CACHE_THRESHOLD`` 0.001), fail open on a
  store error, "ngx_exit(config.status_code)".
- lua-resty-global-throttle lib/resty/global_throttle/sliding_window.lua ``process_sample`` /
  ``get_desired_delay`` (the estimate "cur_rate = (last_rate * remaining_time + count) /
  window_size; estimated_final_count = cur_rate * remaining_time + count").
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingresslib import IngressASGI, Router, parse_manifests
from ingresslib.proxy import OpenUpstream, Proxy, ProxySettings, SendDownstream
from ingresslib.proxy._annotations import IMPLEMENTED, PREFIX, parse_route_options
from ingresslib.proxy._globalratelimit import (GlobalRateLimit, GlobalRateLimiter,
                                               MemoryStore)

from _budget import examples
from _proxy_harness import WEB_SERVICE_YAML, ingress_yaml

P = PREFIX
NAMES = ("global-rate-limit", "global-rate-limit-window", "global-rate-limit-key",
         "global-rate-limit-ignored-cidrs")


def _router(*docs: str) -> Router:
    return Router(parse_manifests("".join(docs) + WEB_SERVICE_YAML))


def _proxy(annotations: dict[str, str], settings: ProxySettings | None = None) -> Proxy:
    return Proxy(_router(ingress_yaml("a", "a.test", annotations)), settings, clock=None)


def _ask(proxy: Proxy, now: float, ip: str = "192.0.2.1", host: str = "a.test",
         path: str = "/", headers: str = "") -> int:
    """One request on its own connection: the local answer's status, 0 when proxied."""
    conn = proxy.connection((ip, 40000), now=now)
    conn.start(now)
    acts = conn.receive_data(
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{headers}\r\n".encode(), now)
    for a in acts:
        if isinstance(a, SendDownstream):
            return int(a.data.split(b" ", 2)[1])
        if isinstance(a, OpenUpstream):
            return 0
    raise AssertionError(acts)


LIMIT3 = {P + "global-rate-limit": "3", P + "global-rate-limit-window": "1m"}
#: Half a second before the end of the first minute: the estimate is about the count itself
#: (``test_window_start_lets_half_through`` for the other end).
T = 59.5


# -- the proxy core -------------------------------------------------------------------------------

def test_limit_in_a_window_then_429() -> None:
    proxy = _proxy(LIMIT3)
    assert [_ask(proxy, T) for _ in range(5)] == [0, 0, 0, 429, 429]


def test_window_start_lets_half_through() -> None:
    """At a window's start the estimate extrapolates the count over the whole window
    (cur_rate = count / window, estimate = 2 * count): limit 3 lets 2 through, and refuses
    the 3rd for the desired delay 60 - (3 - 2) / (2 / 60) = 30 s (cached)."""
    proxy = _proxy(LIMIT3)
    assert [_ask(proxy, 600.0) for _ in range(3)] == [0, 0, 429]
    assert _ask(proxy, 629.999) == 429
    # At 630.0 (30 s left, count 2): the estimate (2/60) * 30 + 2 = 3 reaches the limit, but
    # get_desired_delay's 30 - (3 - 2) / (2/60) is 0 (or a rounding below it): "no delay", so
    # the request passes, uncounted (sliding_window.lua), as every one at that instant.
    assert [_ask(proxy, 630.0) for _ in range(3)] == [0, 0, 0]


def test_status_code_from_configmap() -> None:
    from ingresslib.proxy import parse_config_data

    s = parse_config_data({"global-rate-limit-status-code": "503"}).settings
    assert s.global_rate_limit_status_code == 503
    assert ProxySettings().global_rate_limit_status_code == 429
    proxy = _proxy(LIMIT3, s)
    assert [_ask(proxy, T) for _ in range(4)] == [0, 0, 0, 503]
    with pytest.raises(ValueError, match="400 to 599"):
        parse_config_data({"global-rate-limit-status-code": "200"})
    with pytest.raises(ValueError, match="400 to 599"):
        ProxySettings(global_rate_limit_status_code=600)


def test_sliding_window_estimate_and_cached_decision() -> None:
    """limit 10 a minute; 6 requests in the window [540, 600). At 615 (45 s left):
    last_rate = 6/60, cur_rate = (0.1 * 45 + c) / 60, estimate = cur_rate * 45 + c = 3.375 +
    1.75 c: c = 0..3 pass (8.625 at c = 3), c = 4 reaches 10.375: refused, desired delay
    45 - (10 - 4) / ((4.5 + 4) / 60) = 2.647 s, cached: refused until 617.647 without a look at
    the counters; then counted again on the estimate."""
    proxy = _proxy({P + "global-rate-limit": "10", P + "global-rate-limit-window": "60s"})
    assert [_ask(proxy, 599.0) for _ in range(6)] == [0] * 6  # all counted (1 s left)
    assert [_ask(proxy, 615.0) for _ in range(5)] == [0, 0, 0, 0, 429]
    assert _ask(proxy, 617.6) == 429  # the cached decision
    # At 617.648 the decision has expired: 42.352 s left, count 4: estimate
    # (0.1 * 42.352 + 4) / 60 * 42.352 + 4 = 9.81 < 10: counted; the next one (count 5:
    # 11.5) refused.
    assert [_ask(proxy, 617.648), _ask(proxy, 617.648)] == [0, 429]


def test_counters_per_key_and_default_remote_addr() -> None:
    proxy = _proxy(LIMIT3)
    assert [_ask(proxy, T, ip="192.0.2.1") for _ in range(4)] == [0, 0, 0, 429]
    assert [_ask(proxy, T, ip="192.0.2.2") for _ in range(4)] == [0, 0, 0, 429]


def test_key_with_nginx_variables_and_empty_key_falls_back_to_remote_addr() -> None:
    proxy = _proxy({**LIMIT3, P + "global-rate-limit-key": "${http_x_api_client}$arg_t"})

    def ask(client: str, ip: str = "192.0.2.1", q: str = "") -> int:
        headers = f"X-API-Client: {client}\r\n" if client else ""
        return _ask(proxy, T, ip=ip, path="/" + q, headers=headers)

    assert [ask("a") for _ in range(4)] == [0, 0, 0, 429]
    # The same client with another argument is another key; so is another client from the
    # same address.
    assert ask("a", q="?t=1") == 0
    assert [ask("b") for _ in range(4)] == [0, 0, 0, 429]
    # No header, no argument: "" -> $remote_addr (global_throttle.lua DEFAULT_RAW_KEY).
    assert [ask("", ip="198.51.100.5") for _ in range(4)] == [0, 0, 0, 429]
    assert ask("", ip="198.51.100.6") == 0


def test_ignored_cidrs_never_limited() -> None:
    proxy = _proxy({**LIMIT3, P + "global-rate-limit-ignored-cidrs":
                    "192.0.2.0/24, 198.51.100.7"})
    assert [_ask(proxy, T, ip="192.0.2.9") for _ in range(6)] == [0] * 6
    assert [_ask(proxy, T, ip="198.51.100.7") for _ in range(6)] == [0] * 6
    assert [_ask(proxy, T, ip="203.0.113.1") for _ in range(4)] == [0, 0, 0, 429]


def test_real_client_address_after_forwarded_headers() -> None:
    """remote_addr after real-ip: the forwarded client behind a trusted hop is the key and
    the address the ignored CIDRs are matched against."""
    proxy = _proxy({**LIMIT3, P + "global-rate-limit-ignored-cidrs": "198.51.100.0/24"},
                   ProxySettings(use_forwarded_headers=True, proxy_real_ip_cidr=("10.0.0.0/8",)))

    def ask(client: str) -> int:
        return _ask(proxy, T, ip="10.0.0.1", headers=f"X-Forwarded-For: {client}\r\n")

    assert [ask("203.0.113.1") for _ in range(4)] == [0, 0, 0, 429]
    assert ask("203.0.113.2") == 0
    assert [ask("198.51.100.1") for _ in range(5)] == [0] * 5


def test_counters_per_ingress_shared_by_its_paths() -> None:
    router = _router(ingress_yaml("a", "a.test", LIMIT3, extra_paths=("/x",)),
                     ingress_yaml("b", "b.test", LIMIT3))
    proxy = Proxy(router, clock=None)
    assert [_ask(proxy, T, path="/"), _ask(proxy, T, path="/x"),
            _ask(proxy, T, path="/x/y"), _ask(proxy, T, path="/")] == [0, 0, 0, 429]
    assert [_ask(proxy, T, host="b.test") for _ in range(4)] == [0, 0, 0, 429]


def test_after_redirects_and_before_limit_rps_and_access() -> None:
    """global_throttle runs in the location's rewrite phase: a redirect answers first; a
    refused request reaches neither limit_req (not accounted there) nor allow/deny."""
    redirecting = _proxy({**LIMIT3, P + "permanent-redirect": "https://b.test/"})
    assert [_ask(redirecting, T) for _ in range(5)] == [301] * 5
    denied = _proxy({**LIMIT3, P + "whitelist-source-range": "10.0.0.0/8"})
    assert [_ask(denied, T) for _ in range(5)] == [403, 403, 403, 429, 429]
    both = _proxy({**LIMIT3, P + "limit-rps": "1", P + "limit-burst-multiplier": "1"},
                  ProxySettings(limit_req_status_code=503))
    # limit-rps lets 2 through at once: the 3rd is limit_req's 503, then global's 429 (its
    # counter holds 3: the 503 was counted by the global throttle, which ran first).
    assert [_ask(both, T) for _ in range(5)] == [0, 0, 503, 429, 429]


def test_fails_open_when_the_store_fails(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def incr(self, key: str, delta: int, ttl: float) -> int:
            raise ConnectionError("memcached down")

        def get(self, key: str) -> int | None:
            raise ConnectionError("memcached down")

    proxy = _proxy(LIMIT3)
    proxy.global_rate_limits = GlobalRateLimiter(Broken())
    with caplog.at_level(logging.ERROR, "ingresslib.proxy"):
        assert [_ask(proxy, T) for _ in range(6)] == [0] * 6
    assert sum("fail open" in r.getMessage() for r in caplog.records) == 1


def test_a_custom_store_is_used() -> None:
    clock = [0.0]
    store = MemoryStore(lambda: clock[0])
    proxy = _proxy(LIMIT3)
    proxy.global_rate_limits = GlobalRateLimiter(store)
    assert [_ask(proxy, T) for _ in range(4)] == [0, 0, 0, 429]
    assert len(store) == 1  # "<Ingress>.<key>.<window id>.counter"


# -- parsing --------------------------------------------------------------------------------------

def _parse(annotations: dict[str, str]) -> Any:
    return parse_route_options(annotations, "/", ProxySettings(), where="Ingress default/a")


def test_annotations_are_implemented_no_warning() -> None:
    for name in NAMES:
        assert name in IMPLEMENTED
    opts = _parse({**LIMIT3, P + "global-rate-limit-key": "$http_x_user",
                   P + "global-rate-limit-ignored-cidrs": "10.0.0.0/8"})
    assert opts.warnings == ()
    assert opts.global_rate_limit == GlobalRateLimit(
        namespace="Ingress default/a", limit=3, window=60, key="$http_x_user",
        ignored_cidrs=("10.0.0.0/8",))


@pytest.mark.parametrize("window,seconds", [("1m", 60), ("90s", 90), ("1.9s", 1),
                                            ("1h30m", 5400), ("1500ms", 1)])
def test_window_whole_seconds_truncated(window: str, seconds: int) -> None:
    opts = _parse({P + "global-rate-limit": "5", P + "global-rate-limit-window": window})
    assert opts.global_rate_limit.window == seconds
    assert opts.global_rate_limit.key == "$remote_addr"


@pytest.mark.parametrize("ann", [
    {P + "global-rate-limit": "5"},                                   # no window
    {P + "global-rate-limit-window": "1m"},                           # no limit
    {P + "global-rate-limit": "0", P + "global-rate-limit-window": "1m"},
    {P + "global-rate-limit": "x", P + "global-rate-limit-window": "1m"},
    {P + "global-rate-limit": "5", P + "global-rate-limit-window": "500ms"},  # 0 s
    {P + "global-rate-limit": "5", P + "global-rate-limit-window": "1m",
     P + "global-rate-limit-ignored-cidrs": "10.0.0.0/33"},
    {P + "global-rate-limit-key": "$remote_addr"},                    # alone
])
def test_no_limit_with_a_warning(ann: dict[str, str]) -> None:
    opts = _parse(ann)
    assert opts.global_rate_limit is None and opts.access is None
    assert len(opts.warnings) == 1
    assert "no global rate limit" in opts.warnings[0]
    assert "not implemented" not in opts.warnings[0]


def test_unparsable_window_denies_the_location() -> None:
    """main.go: "failed to parse 'global-rate-limit-window' value" is a LocationDenied: 503."""
    ann = {P + "global-rate-limit": "5", P + "global-rate-limit-window": "1 minute"}
    opts = _parse(ann)
    assert opts.global_rate_limit is None
    assert "503" in opts.warnings[0] and "global-rate-limit-window" in opts.warnings[0]
    proxy = _proxy(ann)
    assert _ask(proxy, T) == 503


def test_unsupported_key_variable_warns() -> None:
    opts = _parse({**LIMIT3, P + "global-rate-limit-key": "$server_name"})
    assert opts.global_rate_limit is not None
    assert "unsupported variable $server_name" in opts.warnings[0]


def test_canary_global_limit_is_ignored_with_a_warning() -> None:
    opts = parse_route_options({P + "canary": "true", **LIMIT3}, "/", ProxySettings(),
                               where="Ingress default/c")
    assert opts.global_rate_limit is None
    assert "ignored on a canary Ingress" in opts.warnings[0]


def test_configmap_memcached_keys_still_said_not_implemented() -> None:
    from ingresslib.proxy import parse_config_data

    cfg = parse_config_data({"global-rate-limit-memcached-host": "memcached",
                             "global-rate-limit-status-code": "429"})
    text = " ".join(str(w) for w in cfg.warnings)
    assert "global-rate-limit-memcached-host" in text
    assert "global-rate-limit-status-code" not in text


# -- the sliding window against the Lua formulas --------------------------------------------------

def _lua_model(times_ms: list[int], limit: int, window: int) -> list[bool]:
    """global_throttle.lua + sliding_window.lua for one key, written out from the Lua."""
    counters: dict[int, int] = {}
    cached_until: float | None = None
    out = []
    for t in times_ms:
        now = t / 1000
        if cached_until is not None and cached_until > now:
            out.append(True)
            continue
        cached_until = None
        wid = math.floor(now / window)
        remaining = window - now % window
        count = counters.get(wid, 0)
        delay: float | None
        if count >= limit:
            delay = remaining
        else:
            last_rate = counters.get(math.floor((now - window) / window), 0) / window
            cur_rate = (last_rate * remaining + count) / window
            estimated = cur_rate * remaining + count
            if estimated >= limit:
                if cur_rate == 0:
                    delay = remaining
                else:
                    delay = remaining - (limit - count) / cur_rate
                    if delay == 0 or delay < 0 or delay > window:
                        delay = None
                    elif delay > remaining:
                        delay = remaining
            else:
                counters[wid] = count + 1
                delay = None
        if delay is not None and delay > 0.001:
            cached_until = (t + int(delay * 1000)) / 1000  # whole ms, as the shared dict keeps it
        out.append(delay is not None)
    return out


@settings(max_examples=examples(0.3), deadline=None)
@given(st.integers(1, 6), st.integers(1, 4),
       st.lists(st.integers(0, 400), min_size=1, max_size=40))
def test_sliding_window_agrees_with_the_lua(limit: int, window: int, gaps: list[int]) -> None:
    times, t = [], 100_000
    for g in gaps:
        t += g * window // 2
        times.append(t)
    limiter = GlobalRateLimiter()
    rl = GlobalRateLimit(namespace="ns", limit=limit, window=window)
    got = [limiter.refuses(rl, ms / 1000, "GET", "a.test", "/", None, [], "192.0.2.1")
           for ms in times]
    assert got == _lua_model(times, limit, window)


def test_memory_is_bounded() -> None:
    limiter = GlobalRateLimiter(max_entries=50)
    rl = GlobalRateLimit(namespace="ns", limit=1, window=60)
    for i in range(500):
        limiter.refuses(rl, 0.0, "GET", "a", "/", None, [], f"10.0.{i // 256}.{i % 256}")
        limiter.refuses(rl, 0.0, "GET", "a", "/", None, [], f"10.0.{i // 256}.{i % 256}")
    assert isinstance(limiter.store, MemoryStore) and len(limiter.store) == 50
    assert len(limiter._decisions) <= 50


# -- IngressASGI, agreement, ProxyServer ----------------------------------------------------------

def _asgi(annotations: dict[str, str], settings: ProxySettings | None = None
          ) -> tuple[IngressASGI, list[float]]:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    asgi = IngressASGI(_router(ingress_yaml("a", "a.test", annotations)),
                       {"default/web": app}, settings=settings)
    clock = [0.0]
    asgi.limit_clock = lambda: clock[0]
    return asgi, clock


async def _call(asgi: IngressASGI, ip: str = "192.0.2.1",
                headers: tuple[tuple[bytes, bytes], ...] = ()) -> int:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": "/", "raw_path": b"/",
             "query_string": b"", "root_path": "",
             "headers": [(b"host", b"a.test"), *headers],
             "client": (ip, 5000), "server": ("127.0.0.1", 80)}
    sent: list[Any] = []

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(m: Any) -> None:
        sent.append(m)

    await asgi(scope, receive, send)
    return int(sent[0]["status"])


def test_asgi_limit_key_and_status() -> None:
    asgi, clock = _asgi({**LIMIT3, P + "global-rate-limit-key": "$http_x_user"},
                        ProxySettings(global_rate_limit_status_code=503))

    async def run() -> list[int]:
        clock[0] = T
        out = [await _call(asgi, headers=((b"x-user", b"u1"),)) for _ in range(4)]
        out.append(await _call(asgi, headers=((b"x-user", b"u2"),)))
        clock[0] = 120 + T  # two windows later: nothing left of the old counts
        out.append(await _call(asgi, headers=((b"x-user", b"u1"),)))
        return out

    assert asyncio.run(run()) == [200, 200, 200, 503, 200, 200]


def test_asgi_and_core_agree() -> None:
    """The same requests at the same times: the same refusals through both front ends."""
    ann = {P + "global-rate-limit": "4", P + "global-rate-limit-window": "10s",
           P + "global-rate-limit-ignored-cidrs": "198.51.100.0/24"}
    plan = [(0.0, "192.0.2.1"), (1.0, "192.0.2.1"), (2.0, "198.51.100.1"), (3.0, "192.0.2.1"),
            (4.0, "192.0.2.1"), (4.5, "192.0.2.1"), (9.9, "192.0.2.2"), (10.0, "192.0.2.1"),
            (12.0, "192.0.2.1"), (13.0, "192.0.2.1"), (16.0, "192.0.2.1"),
            (19.0, "192.0.2.1"), (25.0, "192.0.2.1"), (30.5, "192.0.2.1")]
    proxy = _proxy(ann)
    core = [_ask(proxy, t, ip=ip) or 200 for t, ip in plan]
    asgi, clock = _asgi(ann)

    async def run() -> list[int]:
        out = []
        for t, ip in plan:
            clock[0] = t
            out.append(await _call(asgi, ip))
        return out

    assert asyncio.run(run()) == core
    assert 429 in core and core.count(200) > 4


def test_round_trip_through_proxy_server() -> None:
    """The production driver on 127.0.0.1: its loop's clock, a real upstream."""
    from ingresslib.proxy import ProxyServer

    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await r.readuntil(b"\r\n\r\n")
        w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await w.drain()
        w.close()

    async def ask(port: int) -> bytes:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        data = await asyncio.wait_for(r.read(), 5)
        w.close()
        return data.split(b" ", 2)[1]

    async def run() -> list[bytes]:
        up = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = up.sockets[0].getsockname()[1]
        svc = f"""
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: default}}
spec: {{ports: [{{port: 80, targetPort: {port}}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: web-1, namespace: default, labels: {{kubernetes.io/service-name: web}}}}
addressType: IPv4
ports: [{{port: {port}}}]
endpoints: [{{addresses: [127.0.0.1], conditions: {{ready: true}}}}]
"""
        m = ingress_yaml("a", "a.test", {P + "global-rate-limit": "2",
                                         P + "global-rate-limit-window": "1h"}) + svc
        server = ProxyServer(Router(parse_manifests(m), seed=0))
        await server.start(("127.0.0.1", 0))
        listen = server.addresses[0][2]
        try:
            return [await ask(listen) for _ in range(3)]
        finally:
            await server.shutdown(1)
            up.close()

    # A window of an hour: the third request meets the count 2 (the limit), unless an hour's
    # boundary falls between the requests (milliseconds apart).
    assert asyncio.run(run()) == [b"200", b"200", b"429"]


# -- cost on a plain request ----------------------------------------------------------------------

def test_plain_request_does_not_call_the_module() -> None:
    from test_perf_guards_s25 import MANIFESTS, _asgi_call, _app, core_request, python_calls

    proxy = Proxy(Router(parse_manifests(MANIFESTS)), records=False)
    core_request(proxy, 0.0)
    with python_calls() as seen:
        core_request(proxy, 1.0)
    assert seen and not [c for c in seen if c[0] == "_globalratelimit.py"]
    asgi = IngressASGI(parse_manifests(MANIFESTS), {"default/up": _app})
    _asgi_call(asgi, [], [])
    with python_calls() as seen:
        _asgi_call(asgi, [], [])
    assert seen and not [c for c in seen if c[0] == "_globalratelimit.py"]


# -- explain --------------------------------------------------------------------------------------

def test_explain_says_the_global_limit() -> None:
    import ingresslib
    from ingresslib._explain import render_text

    docs = ingress_yaml("a", "a.test", {**LIMIT3, P + "global-rate-limit-key": "$http_x_user",
                                        P + "global-rate-limit-ignored-cidrs": "10.0.0.0/8"})
    docs += WEB_SERVICE_YAML
    doc = ingresslib.explain(parse_manifests(docs), "http://a.test/", client_ip="10.1.2.3",
                             settings=ProxySettings(global_rate_limit_status_code=503))
    g = doc["global_rate_limit"]
    assert g == {"ingress": "default/a", "limit": 3, "window_seconds": 60,
                 "key": "$http_x_user", "ignored_cidrs": ["10.0.0.0/8"],
                 "client_ip": "10.1.2.3", "client_ignored": True, "status": 503}
    text = render_text(doc)
    assert "global rate limit of Ingress default/a (all its paths): 3 requests per 60 s" in text
    assert "client 10.1.2.3 is in them: never limited" in text
    plain = ingresslib.explain(parse_manifests(ingress_yaml("a", "a.test") + WEB_SERVICE_YAML),
                               "http://a.test/")
    assert "global_rate_limit" not in plain


def test_check_reports_the_values_and_no_longer_not_implemented() -> None:
    import ingresslib

    docs = ingress_yaml("a", "a.test", {P + "global-rate-limit": "3",
                                        P + "global-rate-limit-window": "1 minute"})
    found = [str(d) for d in ingresslib.check(parse_manifests(docs + WEB_SERVICE_YAML))]
    window = [d for d in found if "global-rate-limit-window" in d]
    assert len(window) == 1 and "503" in window[0], found
    assert not [d for d in found if "not implemented" in d]
    good = ingress_yaml("a", "a.test", LIMIT3)
    assert not [str(d) for d in ingresslib.check(parse_manifests(good + WEB_SERVICE_YAML))
                if "global-rate-limit" in str(d)]
