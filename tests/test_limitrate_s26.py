"""Session 26 (LR): ingress-nginx's ``limit-rate`` / ``limit-rate-after`` (response bandwidth
per request), a new feature: every test here failed on the tree before it (the annotations
were "not implemented", the ConfigMap keys ignored, responses never throttled).

References (search corpus "code"):
- ingress-nginx internal/ingress/annotations/ratelimit/main.go ``Parse``: "lr, err :=
  parser.GetIntAnnotation(limitRateAnnotation, ...); if err != nil { lr =
  defBackend.LimitRate }" (limit-rate-after alike); config.go ``defaults.Backend``
  "LimitRate int `json:"limit-rate"`", "LimitRateAfter int `json:"limit-rate-after"`".
- template.go ``buildRateLimit``: "limit_rate_after %vk;" / "limit_rate %vk;" only when > 0.
- nginx ngx_http_write_filter_module.c ``ngx_http_write_filter``: "limit = (off_t)
  r->limit_rate * (ngx_time() - r->start_sec + 1) - (c->sent - r->limit_rate_after)", the
  delay "(nsent - sent) * 1000 / r->limit_rate" after each send, ``c->write->delayed``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ingresslib import IngressASGI, Router, parse_manifests
from ingresslib._config import parse_config_data
from ingresslib._errors import ValidationError
from ingresslib.proxy import (CloseUpstream, OpenUpstream, Proxy, ProxySettings, RequestDone,
                              SendDownstream, SetTimer, TimerKind)
from ingresslib.proxy._annotations import IMPLEMENTED, LOCATION_OPTIONS, PREFIX, \
    parse_route_options

from _budget import examples
from _proxy_harness import WEB_SERVICE_YAML, ingress_yaml

P = PREFIX
HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n"


def _proxy(annotations: dict[str, str], settings: ProxySettings | None = None) -> Proxy:
    return Proxy(Router(parse_manifests(ingress_yaml("a", "a.test", annotations)
                                        + WEB_SERVICE_YAML)), settings, clock=None)


class Conn:
    """One client connection of ``proxy`` (made with ``throttle``) driven with a fake clock:
    every action returned is kept in ``log`` as ``(now, action)``."""

    def __init__(self, proxy: Proxy, throttle: bool = True, now: float = 0.0) -> None:
        self.conn = proxy.connection(("192.0.2.1", 40000), now=now, throttle=throttle)
        self.log: list[tuple[float, Any]] = []
        self.timer: SetTimer | None = None
        #: When the armed timer runs out (fake time).
        self.due = 0.0
        self.now = now
        self.take(self.conn.start(now))

    def take(self, acts: list[Any]) -> list[Any]:
        for a in acts:
            self.log.append((self.now, a))
            if isinstance(a, SetTimer):
                self.timer = a if a.seconds is not None else None
                if a.seconds is not None:
                    self.due = self.now + a.seconds
        return acts

    def request(self, path: str = "/") -> int:
        acts = self.take(self.conn.receive_data(
            f"GET {path} HTTP/1.1\r\nHost: a.test\r\n\r\n".encode(), self.now))
        cid = next(a.conn_id for a in acts if isinstance(a, OpenUpstream))
        self.take(self.conn.upstream_connected(cid, self.now))
        return cid

    def upstream(self, cid: int, data: bytes) -> None:
        self.take(self.conn.upstream_data(cid, data, self.now))

    def run_timers(self, kind: TimerKind | None = None) -> None:
        """Let every ``kind`` timer (default RATE) armed run out, in fake time, until none
        is armed."""
        kind = kind or TimerKind.RATE
        while self.timer is not None and self.timer.kind is kind:
            self.now = self.due
            self.timer = None
            self.take(self.conn.timer_expired(kind, self.now))

    def sends(self) -> list[tuple[float, int]]:
        return [(t, len(a.data)) for t, a in self.log if isinstance(a, SendDownstream)]

    def sent(self) -> bytes:
        return b"".join(a.data for _, a in self.log if isinstance(a, SendDownstream))

    def done_at(self) -> list[float]:
        return [t for t, a in self.log if isinstance(a, RequestDone)]


def _body(n: int) -> bytes:
    return bytes(i % 251 for i in range(n))


# -- the core (Proxy.connection, fake clock) ------------------------------------------------------

def test_one_kb_per_second_releases_a_4kb_body_over_4_seconds() -> None:
    """limit-rate 1 (KB/s): nginx's write filter lets 1024 bytes out per whole second since
    the request began (the head counted), each send followed by a delay of its bytes' worth;
    the request ends (its record) when the last byte is out, at 4 s of fake time."""
    c = Conn(_proxy({P + "limit-rate": "1"}))
    cid = c.request()
    body = _body(4096)
    head = HEAD % 4096
    c.upstream(cid, head + body)
    assert c.sends() == [(0.0, 1024)]
    assert c.timer == SetTimer(TimerKind.RATE, 1.0)
    # The upstream's part is done: its connection released at once (pooled).
    assert [a for _, a in c.log if isinstance(a, CloseUpstream)] == [CloseUpstream(cid, True)]
    assert c.done_at() == []
    c.run_timers()
    total = len(head) + 4096
    assert c.sends() == [(0.0, 1024), (1.0, 1024), (2.0, 1024), (3.0, 1024),
                         (4.0, total - 4096)]
    assert c.sent() == head + body
    # The last 41 bytes cost 40 ms: the request ends when that delay ran out (nginx's last
    # buffer waits for c->write->delayed).
    assert c.done_at() == [pytest.approx(4.04)]
    # Then the connection waits for the next request (keep-alive), no RATE timer left.
    assert c.timer == SetTimer(TimerKind.IDLE, 75.0)
    rec = next(a.record for _, a in c.log if isinstance(a, RequestDone))
    assert rec.status == 200 and rec.bytes_out == total and rec.end - rec.start == pytest.approx(4.04)
    assert rec.upstream_response_time == 0.0  # the upstream was done at once


def test_limit_rate_after_sends_the_first_bytes_unthrottled() -> None:
    """limit-rate-after 2 (KB): "c->sent - r->limit_rate_after": 2048 bytes free, then the
    rate; the delay counts only the bytes past them."""
    c = Conn(_proxy({P + "limit-rate": "1", P + "limit-rate-after": "2"}))
    cid = c.request()
    head = HEAD % 5000
    c.upstream(cid, head + _body(5000))
    assert c.sends() == [(0.0, 3072)]
    assert c.timer == SetTimer(TimerKind.RATE, 1.0)
    c.run_timers()
    total = len(head) + 5000
    assert [t for t, _ in c.sends()] == [0.0, 1.0, 2.0]
    assert sum(n for _, n in c.sends()) == total
    assert c.sent() == head + _body(5000)


def test_bytes_arriving_while_delayed_wait_for_the_timer() -> None:
    """nginx writes nothing while ``c->write->delayed``: bytes the upstream sends during a
    delay are held until RATE runs out; the upstream's read timer is not armed meanwhile
    (the throttling is ours, not the upstream's stall)."""
    c = Conn(_proxy({P + "limit-rate": "1"}))
    cid = c.request()
    head = HEAD % 3000
    c.upstream(cid, head + _body(2000))
    assert c.sends() == [(0.0, 1024)]
    c.now = 0.5
    c.upstream(cid, _body(3000)[2000:])
    assert c.sends() == [(0.0, 1024)]  # held: the delay runs to 1.0
    assert c.timer == SetTimer(TimerKind.RATE, 1.0)
    assert not any(isinstance(a, SetTimer) and a.kind is TimerKind.UPSTREAM_READ
                   for t, a in c.log if t == 0.5)
    # A stale UPSTREAM_READ expiry (replaced by RATE) does nothing: no 504, no retry.
    assert c.conn.timer_expired(TimerKind.UPSTREAM_READ, 60.5) == []
    c.run_timers()
    assert [t for t, _ in c.sends()] == [0.0, 1.0, 2.0]
    assert c.sent() == head + _body(3000)
    assert c.done_at() == [pytest.approx(2.969)]  # 993 bytes at 2.0: a 969 ms delay


def test_upstream_timer_comes_back_once_the_held_bytes_are_out() -> None:
    """Body bytes still to come from the upstream: once the held ones are out and the delay
    ran, the upstream's proxy-read-timeout is armed again, whole."""
    c = Conn(_proxy({P + "limit-rate": "1", P + "proxy-read-timeout": "7"}))
    cid = c.request()
    c.upstream(cid, HEAD % 10000 + _body(1500))
    c.run_timers()
    assert c.timer == SetTimer(TimerKind.UPSTREAM_READ, 7.0)
    assert c.done_at() == []
    # The upstream then stalls: its own timeout, as without limit-rate (a 504 is not sent
    # once the response began: the connection closes, the record says 200).
    c.now += 7.0
    c.take(c.conn.timer_expired(TimerKind.UPSTREAM_READ, c.now))
    assert c.conn.closed


def test_zero_is_off_and_an_unthrottled_driver_gets_everything_at_once() -> None:
    body = _body(4096)
    for ann, throttle in (({P + "limit-rate": "0"}, True), ({P + "limit-rate": "1"}, False),
                          ({P + "limit-rate-after": "1"}, True)):
        c = Conn(_proxy(ann), throttle=throttle)
        cid = c.request()
        c.upstream(cid, HEAD % 4096 + body)
        assert c.sends() == [(0.0, len(HEAD % 4096) + 4096)], ann
        assert c.done_at() == [0.0]
        assert not any(isinstance(a, SetTimer) and a.kind is TimerKind.RATE for _, a in c.log)


def test_upstream_reading_wanted_bounds_the_held_bytes() -> None:
    """More than 64 KiB held: the driver is asked to stop reading the upstream until RATE let
    bytes out."""
    c = Conn(_proxy({P + "limit-rate": "16"}))  # 16 KiB/s
    cid = c.request()
    assert c.conn.upstream_reading_wanted
    c.upstream(cid, HEAD % 200000 + _body(100000))
    assert not c.conn.upstream_reading_wanted
    while not c.conn.upstream_reading_wanted:
        assert c.timer is not None and c.timer.kind is TimerKind.RATE
        c.now = c.due
        c.take(c.conn.timer_expired(TimerKind.RATE, c.now))
    # 16 KiB out per second: 100000 + the head - 3 * 16384 <= 65536.
    assert c.now == 2.0


def test_client_leaving_mid_throttle_ends_the_request() -> None:
    c = Conn(_proxy({P + "limit-rate": "1"}))
    cid = c.request()
    c.upstream(cid, HEAD % 4096 + _body(4096))
    c.now = 1.5
    c.take(c.conn.receive_eof(c.now))
    assert c.conn.closed and c.done_at() == [1.5]
    assert c.conn.timer_expired(TimerKind.RATE, 2.0) == []
    assert c.sends() == [(0.0, 1024)]


def test_each_request_counts_its_own_bytes_and_time() -> None:
    """Per request, as nginx's (``r->start_sec``, the request's bytes): the second response on
    the keep-alive connection starts with its own allowance."""
    c = Conn(_proxy({P + "limit-rate": "1"}))
    for _ in range(2):
        start = c.now
        n = len(c.sends())
        cid = c.request()
        c.upstream(cid, HEAD % 1500 + _body(1500))
        c.run_timers()
        assert [t - start for t, _ in c.sends()[n:]] == [0.0, 1.0]
    assert c.done_at() == pytest.approx([1.504, 3.008])  # 517 bytes' delay: 504 ms


def test_upstream_answering_before_the_body_ended_sends_the_rest_and_closes() -> None:
    c = Conn(_proxy({P + "limit-rate": "1"}))
    acts = c.take(c.conn.receive_data(
        b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 10\r\n\r\nab", 0.0))
    cid = next(a.conn_id for a in acts if isinstance(a, OpenUpstream))
    c.take(c.conn.upstream_connected(cid, 0.0))
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 3000\r\nConnection: close\r\n\r\n"
    c.upstream(cid, head + _body(3000))
    assert c.conn.closed
    assert c.sent().endswith(_body(3000))


def test_a_custom_http_errors_page_is_not_throttled() -> None:
    """The error page's named location (nginx.tmpl ``CUSTOM_ERRORS``) writes no limit_rate:
    its answer goes out at once."""
    from test_custom_errors_s25 import ANN, _docs

    proxy = Proxy(Router(parse_manifests(_docs({**ANN, P + "limit-rate": "1"}))), clock=None)
    c = Conn(proxy)
    cid = c.request()
    c.upstream(cid, b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno")
    err = next(a.conn_id for _, a in c.log if isinstance(a, OpenUpstream) and a.conn_id != cid)
    c.take(c.conn.upstream_connected(err, c.now))
    c.upstream(err, HEAD % 4096 + _body(4096))
    assert len(c.sends()) == 1 and c.sent().endswith(_body(4096))
    assert c.done_at() == [0.0]


# -- the annotations and the ConfigMap -------------------------------------------------------------

def test_annotations_are_implemented_location_options() -> None:
    for name in ("limit-rate", "limit-rate-after"):
        assert name in IMPLEMENTED and name in LOCATION_OPTIONS
    opts = parse_route_options({P + "limit-rate": "3", P + "limit-rate-after": "5"}, "/",
                               ProxySettings(), where="Ingress default/a")
    assert (opts.limit_rate, opts.limit_rate_after) == (3072, 5120)
    assert opts.warnings == ()


def test_invalid_values_warn_and_take_the_configmap_value() -> None:
    """ratelimit/main.go: an Atoi error takes ``defBackend.LimitRate``; a negative value
    writes no directive (no limit), said here."""
    s = ProxySettings(limit_rate=2, limit_rate_after=1)
    opts = parse_route_options({P + "limit-rate": "1k", P + "limit-rate-after": " 4"}, "/", s,
                               where="Ingress default/a")
    assert (opts.limit_rate, opts.limit_rate_after) == (2048, 1024)
    assert [w.field for w in opts.warnings] == [f"metadata.annotations[{P}limit-rate]",
                                               f"metadata.annotations[{P}limit-rate-after]"]
    assert "using the default 2" in opts.warnings[0]
    opts = parse_route_options({P + "limit-rate": "-5"}, "/", s, where="Ingress default/a")
    assert opts.limit_rate == 0 and "negative" in opts.warnings[0]
    # Unset: the ConfigMap's.
    opts = parse_route_options({}, "/", s, where="Ingress default/a")
    assert (opts.limit_rate, opts.limit_rate_after) == (2048, 1024)


def test_configmap_keys() -> None:
    cfg = parse_config_data({"limit-rate": "4", "limit-rate-after": "8"})
    assert (cfg.settings.limit_rate, cfg.settings.limit_rate_after) == (4, 8)
    assert cfg.warnings == ()
    with pytest.raises(ValidationError):
        parse_config_data({"limit-rate": "4k"})
    with pytest.raises(ValueError):
        ProxySettings(limit_rate=-1)


def test_a_canarys_value_is_ignored() -> None:
    """A location option: canary traffic takes the main rule's (none here), the canary's
    value is said to be ignored."""
    main = ingress_yaml("main", "a.test")
    canary = ingress_yaml("can", "a.test", {P + "canary": "true", P + "canary-weight": "100",
                                            P + "limit-rate": "1"}, created="2024-02-01T00:00:00Z")
    proxy = Proxy(Router(parse_manifests(main + canary + WEB_SERVICE_YAML), seed=1), clock=None)
    c = Conn(proxy)
    cid = c.request()
    c.upstream(cid, HEAD % 4096 + _body(4096))
    assert len(c.sends()) == 1 and c.done_at() == [0.0]
    opts = parse_route_options({P + "canary": "true", P + "limit-rate": "1"}, "/",
                               ProxySettings(), where="Ingress default/can")
    assert opts.limit_rate == 0
    assert any("ignored on a canary" in w for w in opts.warnings)


# -- the arithmetic -------------------------------------------------------------------------------

def test_throttle_follows_nginx_second_granularity() -> None:
    """The allowance counts whole seconds from the request's start second (ngx_time() -
    r->start_sec + 1): a request begun at 0.9 may send its second kilobyte at 1.0."""
    from ingresslib.proxy._bandwidth import Throttle

    t = Throttle(1024, 0, 0.9)
    t.push(b"x" * 3000)
    assert t.release(0.9) == (b"x" * 1024, 1.0)
    assert t.release(1.0) == (b"", None)  # delayed: nothing before the timer
    t.timer_fired()
    assert t.release(1.9) == (b"x" * 1024, 1.0)
    t.timer_fired()
    assert t.release(2.5) == (b"x" * 952, 0.929)  # the rest, its delay 952/1024 s
    t.push(b"y" * 100)
    t.timer_fired()
    # 72 bytes of this second's allowance are left: sent, then the 28 others wait.
    assert t.release(2.9) == (b"y" * 72, 0.07)
    t.timer_fired()
    # The allowance is spent before the second turns: "delay = - limit * 1000 /
    # r->limit_rate + 1" ms, nothing sent.
    assert t.release(2.97) == (b"", 0.001)
    t.timer_fired()
    assert t.release(3.0) == (b"y" * 28, 0.027)


def test_throttle_one_millisecond_when_the_allowance_is_spent() -> None:
    """A fast rate: a send costing under a millisecond while bytes remain waits 1 ms (nginx's
    "ngx_add_timer(c->write, 1)")."""
    from ingresslib.proxy._bandwidth import Throttle

    t = Throttle(10_000_000, 0, 0.0)
    t.push(b"z" * 500)
    data, delay = t.release(0.0)
    assert data == b"z" * 500 and delay is None
    t2 = Throttle(2000, 0, 0.0)
    t2.push(b"z" * 2001)
    assert t2.release(0.0) == (b"z" * 2000, 1.0)


@settings(max_examples=examples(0.2), deadline=None)
@given(rate=st.integers(1, 5000), after=st.integers(0, 5000), start=st.floats(0, 3),
       pushes=st.lists(st.tuples(st.integers(0, 9000), st.floats(0, 2)), min_size=1,
                       max_size=6))
def test_throttle_never_exceeds_the_allowance_and_keeps_every_byte(
        rate: int, after: int, start: float, pushes: list[tuple[int, float]]) -> None:
    """Whatever the rate and the arrivals: the bytes come out whole and in order, never more
    than ``rate x (whole seconds + 1) + after`` by any time, and never while delayed."""
    from ingresslib.proxy._bandwidth import Throttle

    t = Throttle(rate, after, start)
    now, due = start, start
    pushed, out = bytearray(), bytearray()
    for i, (n, gap) in enumerate(pushes):
        now += gap
        data = bytes((i + j) % 256 for j in range(n))
        pushed += data
        t.push(data)
        while t.held:
            if t.delayed:
                now = max(now, due)
                t.timer_fired()
            got, delay = t.release(now)
            out += got
            assert len(out) <= rate * (int(now) - int(start) + 1) + after
            if delay is not None:
                assert delay > 0
                due = now + delay
            if not got and delay is None:
                break
    assert bytes(out) == bytes(pushed)


# -- IngressASGI ----------------------------------------------------------------------------------

def test_throttled_send_sleeps_at_the_rate() -> None:
    from ingresslib.proxy._bandwidth import throttled_send

    now = [10.0]
    slept: list[float] = []
    out: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        out.append(dict(message))

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    async def run() -> None:
        s = throttled_send(send, 1024, 0, lambda: now[0], sleep)
        await s({"type": "http.response.start", "status": 200, "headers": []})
        await s({"type": "http.response.body", "body": b"a" * 3000, "more_body": True})
        await s({"type": "http.response.body", "body": b"b" * 100})

    asyncio.run(run())
    # 1024 bytes a second from 10.0: the first message's last 952 bytes cost 0.929 s, waited
    # for only when the next message comes; then 72 bytes left in the third second, 1 ms to
    # its end, and the last 28.
    assert slept == pytest.approx([1.0, 1.0, 0.929, 0.07, 0.001, 0.027])
    bodies = [m for m in out if m["type"] == "http.response.body"]
    assert b"".join(m["body"] for m in bodies) == b"a" * 3000 + b"b" * 100
    assert [len(m["body"]) for m in bodies] == [1024, 1024, 952, 72, 28, 0]
    assert [m["more_body"] for m in bodies] == [True, True, True, True, True, False]


def test_ingress_asgi_applies_the_rate(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    # (asyncio.run's loop sleeps in no other place here.)
    monkeypatch.setattr(asyncio, "sleep", fake_sleep)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": _body(4096)})

    asgi = IngressASGI(Router(parse_manifests(ingress_yaml("a", "a.test",
                                                           {P + "limit-rate": "1"})
                                              + WEB_SERVICE_YAML)), {"default/web": app})
    asgi.limit_clock = lambda: now[0]
    out: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        out.append(dict(message))

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": "/", "raw_path": b"/",
             "query_string": b"", "root_path": "", "headers": [(b"host", b"a.test")],
             "client": ("192.0.2.1", 4000), "server": ("127.0.0.1", 80)}
    asyncio.run(asgi(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in out if m["type"] == "http.response.body")
    assert body == _body(4096)
    assert slept == [1.0, 1.0, 1.0, 1.0]


# -- ProxyServer, end to end on 127.0.0.1 ---------------------------------------------------------

@pytest.mark.network
@pytest.mark.asyncio
async def test_proxy_server_sends_the_whole_body() -> None:
    """A rate that lets the body out within a fraction of a second (64 KiB/s; the upstream
    sends it in two writes, the second while the first's delay runs): whole and in order."""
    from tests._server_helpers import Client, StubRouter
    from tests._upstream_helpers import TrackedUpstream, start_proxy

    body = _body(20000)

    class Upstream(TrackedUpstream):
        async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            self.writers.append(w)
            try:
                await r.readuntil(b"\r\n\r\n")
                w.write(HEAD % len(body) + body[:8000])
                await w.drain()
                await asyncio.sleep(0.02)
                w.write(body[8000:])
                await w.drain()
                await r.read()  # until the proxy closes it (or stop() aborts it)
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                w.close()

    up = await Upstream().start()
    server, port = await start_proxy(StubRouter([("127.0.0.1", up.port)],
                                                annotations={P + "limit-rate": "64"}))
    try:
        c = await Client.open(port)
        r = await asyncio.wait_for(c.get("a.test", "/"), 5)
        assert r.status == 200 and r.body == body
        await c.close()
    finally:
        await server.shutdown(1)
        await up.stop()
