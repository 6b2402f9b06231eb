"""nginx-fidelity fixes of session 28 (brief F1): the upstream's response-head deadline,
global-rate-limit expiry rounding, the auth cache under threads and the order of
Cache-Control / Expires in auth answers. Through the sans-IO core (``Proxy.connection``, a
fake clock) and the modules themselves."""

from __future__ import annotations

from typing import Any

from ingresslib.proxy import ProxySettings, SetTimer, TimerKind

from _proxy_harness import ProxyPair, Route, ok, status_of

WEB = ("10.0.0.1", 8080)
HEAD = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"


class _Clocked(ProxyPair):
    """A ``ProxyPair`` that remembers when its armed timer runs out (``deadline``), so that
    a test can tell a timer re-armed from one left running."""

    deadline: float | None = None

    def _perform(self, actions: list[Any], events: list[Any]) -> None:
        for a in actions:
            if type(a) is SetTimer:
                self.deadline = None if a.seconds is None else self.now + a.seconds
        super()._perform(actions, events)

    def advance(self, to: float) -> bytes:
        """Move the clock to ``to``, the armed timer expiring on the way if it is due."""
        start = len(self.received)
        while self.deadline is not None and self.deadline <= to and self.timer is not None:
            self.now = self.deadline
            kind = self.timer[0]
            self.timer = self.deadline = None
            self._run(self.conn.timer_expired(kind, self.now))
        self.now = to
        return bytes(self.received[start:])


def _silent(settings: ProxySettings, endpoints: int = 1) -> _Clocked:
    eps = [WEB] + [("10.0.0.%d" % (i + 2), 8080) for i in range(endpoints - 1)]
    return _Clocked([Route(endpoints=eps)], settings, app=lambda r, b, u: None)


# ------------------------------------------------- 1. the response head's one deadline
def test_a_head_trickled_byte_by_byte_times_out_after_one_read_timeout() -> None:
    # nginx arms proxy_read_timeout once the request is sent and does not re-arm it while
    # the head is incomplete (ngx_http_upstream_process_header: "if (n == NGX_AGAIN) { #if 0
    # ngx_add_timer(rev, u->read_timeout); #endif"). A byte every 0.6 x timeout kept the
    # core waiting for ever (each read re-armed the timer): nginx's 504 after 1 x timeout.
    p = _silent(ProxySettings(proxy_read_timeout=2.0))
    p.send(b"GET /a HTTP/1.1\r\nHost: example.com\r\n\r\n")
    assert p.timer == (TimerKind.UPSTREAM_READ, 2.0) and p.deadline == 2.0
    (up,) = p.upstreams
    for i, byte in enumerate(HEAD + b"hello"):
        p.advance(1.2 * (i + 1))
        if p.closed or p.received:
            break
        p.upstream_send(up, bytes([byte]))
    assert status_of(bytes(p.received)) == 504 and p.now == 2.4  # (was 200, after 55 s)
    (rec,) = p.records
    assert rec.status == 504 and rec.upstream_statuses == (504,)


def test_one_in_time_head_then_a_body_trickled_within_the_timeout_passes() -> None:
    # Once the head is in, proxy_read_timeout is "between two successive read operations"
    # (ngx_event_pipe / ngx_http_upstream_process_non_buffered_request re-arm it per read).
    p = _silent(ProxySettings(proxy_read_timeout=2.0))
    p.send(b"GET /a HTTP/1.1\r\nHost: example.com\r\n\r\n")
    (up,) = p.upstreams
    p.advance(1.9)
    p.upstream_send(up, HEAD)
    assert p.deadline == 1.9 + 2.0  # the head is in: re-armed from this read
    for i, byte in enumerate(b"hello"):
        assert not p.advance(1.9 + 1.5 * (i + 1))
        p.upstream_send(up, bytes([byte]))
    assert p.received.endswith(b"\r\n\r\nhello") and status_of(bytes(p.received)) == 200


def test_head_bytes_arm_nothing_and_the_head_completing_re_arms() -> None:
    p = _silent(ProxySettings(proxy_read_timeout=2.0))
    p.send(b"GET /a HTTP/1.1\r\nHost: example.com\r\n\r\n")
    (up,) = p.upstreams
    p.advance(1.0)
    p.upstream_send(up, b"HTTP/1.1 103 Early Hints\r\nLink: </s>\r\n\r\nHTTP/1.1 200 OK\r\n")
    assert p.deadline == 2.0  # a 1xx head and part of the final one: the first deadline
    p.advance(1.5)
    p.upstream_send(up, b"Content-Length: 5\r\n\r\nhe")
    assert p.deadline == 3.5 and not p.closed


def test_a_trickled_head_is_retried_on_the_next_endpoint_as_a_timeout() -> None:
    p = _silent(ProxySettings(proxy_read_timeout=2.0), endpoints=2)
    p.send(b"GET /a HTTP/1.1\r\nHost: example.com\r\n\r\n")
    first = p.upstreams[0]
    for t in (0.8, 1.6):
        p.advance(t)
        p.upstream_send(first, b"H")
    p.advance(2.0)
    assert len(p.upstreams) == 2 and not p.closed  # "timeout" is in proxy_next_upstream
    assert p.deadline == 4.0
    p.upstream_send(p.upstreams[1], HEAD + b"hello")
    out = bytes(p.received)
    assert status_of(out) == 200 and out.endswith(b"hello")
    (rec,) = p.records
    assert rec.upstream_statuses == (504, 200)


def test_with_no_client_body_timeout_the_upstream_still_owes_its_head_in_time() -> None:
    # client_body_timeout 0 (no limit) armed nothing while the body came, and nothing armed
    # proxy_read_timeout once the body was in: a silent upstream was waited for for ever
    # (nginx: ngx_http_upstream_send_request adds the read timer once the request is sent).
    p = _silent(ProxySettings(client_body_timeout=0, proxy_read_timeout=2.0))
    p.send(b"POST /a HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3\r\n\r\na")
    assert p.timer is None
    p.advance(5.0)
    p.send(b"bc")
    assert p.timer == (TimerKind.UPSTREAM_READ, 2.0) and p.deadline == 7.0
    p.advance(7.5)
    assert status_of(bytes(p.received)) == 504


# ------------------------------------------- 2. global-rate-limit: whole-millisecond expiry
def test_a_cached_refusal_expires_on_the_whole_millisecond_lua_keeps() -> None:
    from ingresslib.proxy import GlobalRateLimiter
    from ingresslib.proxy._globalratelimit import GlobalRateLimit, process_sample

    rl = GlobalRateLimit(namespace="ns", limit=3, window=1)
    limiter = GlobalRateLimiter()

    def refused(t: float) -> bool:
        return limiter.refuses(rl, t, "GET", "a.test", "/", None, [], "192.0.2.1")

    # Two requests at the end of the window [0, 1), one at the start of [1, 2): counted.
    assert not any(refused(t) for t in (0.998, 0.999, 1.0))
    # At 1.010 the estimate is over 3: refused, the decision cached for the desired delay,
    # 0.31886 s: global_throttle.lua "DECISION_CACHE:safe_add(namespaced_key_value, true,
    # desired_delay)" keeps it to the millisecond below (lua-resty-core's shdict_store
    # passes "exptime * 1000" to a C long; ngx_http_lua_ffi_shdict_store: "sd->expires =
    # (uint64_t) tp->sec * 1000 + tp->msec + (uint64_t) exptime"), gone at 1.328.
    _est, delay = process_sample(limiter.store, rl._ns, "192.0.2.1", 3, 1, 1.010)
    assert delay is not None and 0.3188 < delay < 0.3189
    assert refused(1.010)
    assert refused(1.327)  # cached
    # At 1.328 the cache is empty (lua): the sliding window decides, its estimate now under
    # the limit: let through. ingresslib kept 1.31886 and still refused (429).
    assert not refused(1.328)


# ------------------------------- 4. auth answers: cache headers in the order nginx reads them
WALL = 1_000_000_000.0
FUTURE = b"Sun, 09 Sep 2001 02:03:20 GMT"  # WALL + 1000
PAST = b"Thu, 01 Jan 1970 00:00:01 GMT"


def _life(*headers: tuple[bytes, bytes]) -> float:
    from ingresslib.proxy._authcache import lifetime

    return lifetime(((200, 300.0),), 200, [(n, n.lower(), v) for n, v in headers], wall=WALL)


def test_cache_headers_as_nginx_tests_proxy_cache_control() -> None:
    # nginx-tests proxy_cache_control.t (nginx >= 1.23, ingress-nginx's 1.25.5): Cache-Control
    # is preferred over Expires and X-Accel-Expires over both, in either order.
    cc, ex, xa = b"Cache-Control", b"Expires", b"X-Accel-Expires"
    assert _life((ex, FUTURE)) == 1000.0
    assert _life((cc, b"max-age=60"), (ex, PAST)) == 60.0
    assert _life((ex, PAST), (cc, b"max-age=60")) == 60.0
    assert _life((cc, b"no-cache"), (ex, FUTURE)) == 0.0
    assert _life((ex, FUTURE), (cc, b"no-cache")) == 0.0
    assert _life((xa, b"60"), (ex, PAST), (cc, b"no-cache")) == 60.0
    assert _life((ex, PAST), (cc, b"no-cache"), (xa, b"60")) == 60.0
    assert _life((xa, b"0"), (cc, b"max-age=60"), (ex, FUTURE)) == 0.0
    assert _life((cc, b"max-age=60"), (ex, FUTURE), (xa, b"0")) == 0.0
    assert _life((cc, b"no-cache, max-age=60")) == 0.0
    assert _life((cc, b"no-cache"), (cc, b"max-age=60")) == 0.0
    assert _life((b"Set-Cookie", b"a=b"), (cc, b"max-age=60")) == 0.0
    assert _life() == 300.0  # proxy_cache_valid


def test_a_cache_control_max_age_not_a_number_before_x_accel_expires() -> None:
    # ngx_http_upstream_process_cache_control: a max-age digit loop meeting another
    # character is "u->cacheable = 0", which a later X-Accel-Expires cannot undo; before it,
    # X-Accel-Expires has set the time and Cache-Control is skipped ("if
    # (r->cache->valid_sec != 0 && u->headers_in.x_accel_expires != NULL) goto extensions").
    # ingresslib read X-Accel-Expires first whatever the order: 60 both ways.
    assert _life((b"Cache-Control", b"max-age=1x"), (b"X-Accel-Expires", b"60")) == 0.0
    assert _life((b"X-Accel-Expires", b"60"), (b"Cache-Control", b"max-age=1x")) == 60.0


def test_an_invalid_x_accel_expires_after_expires_makes_no_cache_skipped() -> None:
    # Expires (the time set), then an X-Accel-Expires nginx cannot read (ignored, but the
    # header is there), then "no-cache": Cache-Control is skipped, the answer cached until the
    # Expires date. ingresslib read the no-cache and did not cache.
    assert _life((b"Expires", FUTURE), (b"X-Accel-Expires", b"soon"),
                 (b"Cache-Control", b"no-cache")) == 1000.0
    # In another order the no-cache is read before any time is set: not cached.
    assert _life((b"Cache-Control", b"no-cache"), (b"Expires", FUTURE),
                 (b"X-Accel-Expires", b"soon")) == 0.0


def test_a_cache_control_extension_not_a_number_is_not_cached() -> None:
    # stale-while-revalidate= / stale-if-error= are read after the freshness, even once
    # X-Accel-Expires set it; a value that is not digits: "u->cacheable = 0".
    assert _life((b"Cache-Control", b"max-age=60, stale-if-error=x")) == 0.0
    assert _life((b"X-Accel-Expires", b"60"),
                 (b"Cache-Control", b"stale-while-revalidate=1d")) == 0.0
    assert _life((b"Cache-Control", b"max-age=60, stale-while-revalidate=30")) == 60.0


# --------------------------------------- 5. the auth subrequest's deadline starts at its send
def test_the_auth_subrequest_read_deadline_starts_once_it_is_sent() -> None:
    # nginx: the connect has proxy_connect_timeout (the driver's, OpenUpstream), the read
    # timer is added once the request is sent (ngx_http_upstream_send_request). The core
    # arms proxy-read-timeout in auth_connected (proxy/_extauth.py), with the subrequest's
    # SendUpstream, not when the subrequest is queued: a slow connect does not eat into it.
    from _proxy_harness import Reply

    auth = ("10.5.0.1", 4180)
    answers: list[Any] = []

    def app(r: Any, b: bytes, u: Any) -> Reply | None:
        if u.endpoint == auth:
            answers.append(u)
            return None
        return ok(b"backend")

    p = _Clocked([Route(annotations={"nginx.ingress.kubernetes.io/auth-url":
                                     "http://10.5.0.1:4180/auth"}, endpoints=[WEB])],
                 ProxySettings(proxy_read_timeout=2.0, proxy_connect_timeout=5.0), app=app,
                 defer=[auth])
    p.send(b"GET /a HTTP/1.1\r\nHost: example.com\r\n\r\n")
    assert p.opens[-1].endpoint == auth and p.opens[-1].connect_timeout == 5.0
    assert p.timer is None or p.timer[0] is not TimerKind.UPSTREAM_READ
    p.advance(4.5)  # the connect takes 4.5 s (within proxy-connect-timeout)
    p.connect()
    assert p.timer == (TimerKind.UPSTREAM_READ, 2.0) and p.deadline == 6.5
    p.advance(6.4)
    (up,) = answers
    p.upstream_send(up, b"HTTP/1.1 200 OK\r\n")  # part of the head: arms nothing
    assert p.deadline == 6.5 and not p.received
    p.advance(6.5)
    assert status_of(bytes(p.received)) == 500  # the subrequest timed out (auth_request)


def test_the_core_caches_auth_answers_by_the_headers_in_their_order() -> None:
    # Through the sans-IO core: an answer "Cache-Control: max-age=1x" then "X-Accel-Expires:
    # 60" is asked again (nginx: not cacheable); in the other order it is cached.
    from test_authcache_s27 import _asked, _get, _pair

    for extra, asked in ((b"Cache-Control: max-age=1x\r\nX-Accel-Expires: 60\r\n", 2),
                         (b"X-Accel-Expires: 60\r\nCache-Control: max-age=1x\r\n", 1)):
        p = _pair(extra=extra)
        for _ in range(2):
            out = _get(p, b"good-alice")
            assert status_of(out) == 200 and out.endswith(b"user=good-alice"), extra
        assert _asked(p) == asked, extra
