"""proxy-request-buffering "on" under many uploads at once (session 29): one Proxy-wide
budget for the bodies held (``ProxySettings.request_buffering_budget``), given back exactly
once on every way a request ends; ``client_body_timeout`` 0 bounded while a body is held
(proxy/_request_buffer.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import h11
import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from ingresslib.proxy import ProxySettings, TimerKind
from ingresslib.proxy._annotations import PREFIX
from tests._budget import examples
from tests._proxy_harness import FakeUpstream, ProxyPair, Reply, Route, ok, status_of
from tests._server_helpers import StubRouter
from tests._upstream_helpers import TrackedUpstream, read_to_eof, start_proxy

ON = {PREFIX + "proxy-request-buffering": "on"}
CHUNKED_HEAD = b"POST /up HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n"
EPS = [("10.0.0.1", 8080), ("10.0.0.2", 8080)]


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def cl_head(n: int) -> bytes:
    return b"POST /up HTTP/1.1\r\nHost: a.test\r\nContent-Length: %d\r\n\r\n" % n


def silent(request: h11.Request, body: bytes, up: FakeUpstream) -> Reply | None:
    return None


def length_app(request: h11.Request, body: bytes, up: FakeUpstream) -> Reply:
    """Answers with the framing it got: "cl N" or "te N"."""
    names = {n.lower() for n, _ in request.headers}
    kind = b"te" if b"transfer-encoding" in names else b"cl"
    return ok(kind + b" %d" % len(body))


def pair(settings: ProxySettings | None = None, annotations: dict[str, str] | None = None,
         **kw: object) -> ProxyPair:
    return ProxyPair([Route(endpoints=EPS, annotations=dict(ON if annotations is None
                                                             else annotations))],
                     settings, app=kw.pop("app", length_app), **kw)  # type: ignore[arg-type]


def another(p: ProxyPair, peer: tuple[str, int] = ("198.51.100.9", 41000)) -> ProxyPair:
    """A second client connection of the same Proxy (so the same budget)."""
    q = ProxyPair([Route(endpoints=EPS, annotations=dict(ON))], p.proxy.settings, app=p.app)
    q.proxy = p.proxy
    q.router = p.router
    q.now = p.now
    q.conn = p.proxy.connection(peer, tls=False, local_port=80, now=q.now)
    q._run(q.conn.start(q.now))
    return q


def held(p: ProxyPair) -> int:
    from ingresslib.proxy._request_buffer import budget_of

    return budget_of(p.proxy, p.proxy.settings.request_buffering_budget).held


def small() -> ProxySettings:
    """A budget of 1000 bytes, 800 per request."""
    return ProxySettings(request_buffering_budget=1000, request_buffering_limit=800,
                         proxy_body_size=0, client_body_timeout=5.0)


# ----------------------------------------------------------------------------- the setting
def test_budget_setting_default_and_validation() -> None:
    assert ProxySettings().request_buffering_budget == 256 * 1024 * 1024
    for bad in (0, -1):
        with pytest.raises(ValueError, match="request_buffering_budget"):
            ProxySettings(request_buffering_budget=bad)
    with pytest.raises(ValueError, match="request_buffering_budget"):
        ProxySettings(request_buffering_budget=1 << 70)


# ----------------------------------------------------------------------------- budget short
def test_chunked_growing_past_what_is_left_is_503_then_the_budget_comes_back() -> None:
    a = pair(small())
    assert a.send(CHUNKED_HEAD + chunk(b"a" * 600)) == b""
    assert held(a) == 600
    b = another(a)
    assert b.send(CHUNKED_HEAD + chunk(b"b" * 300)) == b""
    assert held(a) == 900
    out = b.send(chunk(b"b" * 200))  # 500 held by b would make 1100: the server is busy
    assert status_of(out) == 503 and b.opens == [] and b.closed
    assert b.records[0].status == 503
    assert held(a) == 600  # b's 300 back, once
    out = a.send(b"0\r\n\r\n")
    assert status_of(out) == 200 and out.endswith(b"cl 600")  # the first one goes on
    assert held(a) == 0
    # A third connection now has the whole budget again.
    c = another(a, ("198.51.100.10", 41001))
    out = c.send(CHUNKED_HEAD + chunk(b"c" * 700) + b"0\r\n\r\n")
    assert status_of(out) == 200 and out.endswith(b"cl 700") and held(a) == 0


def test_chunked_whose_held_bytes_do_not_fit_on_the_head_is_503() -> None:
    # The bytes held while the access phase ran (here: sent with the head) already do not
    # fit what is left: 503 at once, no upstream.
    a = pair(small())
    a.send(CHUNKED_HEAD + chunk(b"a" * 700))
    b = another(a)
    out = b.send(CHUNKED_HEAD + chunk(b"b" * 400))
    assert status_of(out) == 503 and b.opens == [] and held(a) == 700


def test_content_length_not_fitting_what_is_left_streams_from_the_start() -> None:
    a = pair(small())
    a.send(cl_head(800) + b"a" * 700)
    assert held(a) == 700 and a.opens == []  # its bytes reserved as they come (R6)
    b = another(a)
    b.send(cl_head(400) + b"b" * 10)
    assert len(b.opens) == 1  # opened on the head, as with "off": nothing reserved
    assert held(a) == 700
    out = b.send(b"b" * 390)
    assert status_of(out) == 200 and out.endswith(b"cl 400")
    out = a.send(b"a" * 100)
    assert status_of(out) == 200 and out.endswith(b"cl 800") and held(a) == 0


def test_a_body_past_the_whole_budget_is_the_cap() -> None:
    # A budget below the per-request cap: a chunked body that can never be held is 413 (its
    # size, not the load); a Content-Length one streams.
    s = ProxySettings(request_buffering_budget=500, request_buffering_limit=800,
                      proxy_body_size=0)
    p = pair(s)
    out = p.send(CHUNKED_HEAD + chunk(b"x" * 400))
    assert out == b""
    out = p.send(chunk(b"x" * 200))
    assert status_of(out) == 413 and p.opens == [] and held(p) == 0
    q = pair(s)
    q.send(cl_head(600))
    assert len(q.opens) == 1 and held(q) == 0


def test_the_budget_follows_the_settings_of_the_proxy() -> None:
    from ingresslib.proxy._request_buffer import budget_of

    a = pair(small())
    assert budget_of(a.proxy, 5000).limit == 5000
    assert budget_of(a.proxy, 1000) is budget_of(a.proxy, 1000)


# ----------------------------------------------------------------------------- no leaks
def _body_then(p: ProxyPair) -> None:
    p.send(CHUNKED_HEAD + chunk(b"q" * 300))
    assert held(p) == 300


def _complete(p: ProxyPair) -> None:
    _body_then(p)
    out = p.send(b"0\r\n\r\n")
    assert out.endswith(b"cl 300")


def _client_gone(p: ProxyPair) -> None:
    _body_then(p)
    p.eof()
    assert p.closed and p.records[0].status == 400


def _body_timeout(p: ProxyPair) -> None:
    _body_then(p)
    assert status_of(p.fire(TimerKind.BODY)) == 408


def _cap(p: ProxyPair) -> None:
    _body_then(p)
    assert status_of(p.send(chunk(b"q" * 600))) == 413


def _proxy_body_size(p: ProxyPair) -> None:  # (proxy-body-size 400)
    _body_then(p)
    assert status_of(p.send(chunk(b"q" * 200))) == 413


def _abort(p: ProxyPair) -> None:
    _body_then(p)
    p._run(p.conn.abort(p.now))
    assert p.closed


def _retry_then_ok(p: ProxyPair) -> None:
    p.refuse.add(EPS[0])
    p.router.routes[0].endpoints = [EPS[0], EPS[1]]
    _body_then(p)
    out = p.send(b"0\r\n\r\n")
    assert status_of(out) == 200 and out.endswith(b"cl 300") and len(p.opens) == 2


def _tries_exhausted(p: ProxyPair) -> None:
    p.refuse.update(EPS)
    _body_then(p)
    out = p.send(b"0\r\n\r\n")
    assert status_of(out) == 502 and len(p.opens) == 2


def _read_timeout(p: ProxyPair) -> None:
    p.app = silent  # (proxy-next-upstream off)
    _body_then(p)
    p.send(b"0\r\n\r\n")
    assert held(p) == 300  # kept for a retry until the response begins
    assert status_of(p.fire(TimerKind.UPSTREAM_READ)) == 504


def _response_begun(p: ProxyPair) -> None:
    p.app = silent
    _body_then(p)
    p.send(b"0\r\n\r\n")
    (up,) = p.upstreams
    p.upstream_send(up, b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab")
    assert held(p) == 0  # the head is in: no retry from now on, the body let go
    p.upstream_send(up, b"cd")
    assert status_of(bytes(p.received)) == 200 and p.received.endswith(b"abcd")


def _response_begun_then_client_gone(p: ProxyPair) -> None:
    p.app = silent
    _body_then(p)
    p.send(b"0\r\n\r\n")
    p.upstream_send(p.upstreams[0], b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab")
    p.eof()


def _keep_alive_twice(p: ProxyPair) -> None:
    _complete(p)
    p.send(CHUNKED_HEAD + chunk(b"r" * 700))
    assert held(p) == 700
    out = p.send(b"0\r\n\r\n")
    assert out.endswith(b"cl 700")


def _busy_503(p: ProxyPair) -> None:
    other = another(p)
    other.send(CHUNKED_HEAD + chunk(b"o" * 800))
    p.send(CHUNKED_HEAD + chunk(b"q" * 300))  # 300 more does not fit: 503, nothing reserved
    assert status_of(bytes(p.received)) == 503 and held(p) == 800
    other.eof()


def _content_length_client_gone(p: ProxyPair) -> None:
    p.send(cl_head(700) + b"z" * 100)
    assert held(p) == 100  # (its bytes, not its declared length)
    p.eof()


SCENARIOS: dict[str, Callable[[ProxyPair], None]] = {
    "complete": _complete, "client_gone": _client_gone, "body_timeout": _body_timeout,
    "cap_413": _cap, "proxy_body_size_413": _proxy_body_size, "abort": _abort,
    "retry_then_ok": _retry_then_ok, "tries_exhausted_502": _tries_exhausted,
    "read_timeout_504": _read_timeout, "response_begun": _response_begun,
    "response_begun_then_client_gone": _response_begun_then_client_gone,
    "keep_alive_twice": _keep_alive_twice, "busy_503": _busy_503,
    "content_length_client_gone": _content_length_client_gone,
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_way_out_gives_the_reservation_back_once(name: str) -> None:
    extra = {"proxy_body_size_413": {PREFIX + "proxy-body-size": "400"},
             "read_timeout_504": {PREFIX + "proxy-next-upstream": "off"}}.get(name, {})
    p = pair(small(), {**ON, **extra})
    SCENARIOS[name](p)
    assert held(p) == 0
    # Once: whatever else happens to the connection now, nothing is given back twice.
    if not p.closed:
        p._run(p.conn.abort(p.now))
    assert held(p) == 0


# ----------------------------------------------------------------------------- body timeout 0
def test_client_body_timeout_0_is_bounded_while_a_body_is_held() -> None:
    p = pair(ProxySettings(client_body_timeout=0))
    p.send(CHUNKED_HEAD + chunk(b"x" * 100))
    assert p.timer == (TimerKind.BODY, 60.0)  # not "no deadline": the body is held
    p.send(chunk(b"y" * 100))
    assert p.timer == (TimerKind.BODY, 60.0)
    out = p.fire(TimerKind.BODY)
    assert status_of(out) == 408 and p.opens == [] and held(p) == 0
    # A Content-Length body too.
    q = pair(ProxySettings(client_body_timeout=0))
    q.send(cl_head(10) + b"abc")
    assert q.timer == (TimerKind.BODY, 60.0)


def test_client_body_timeout_0_unchanged_when_streaming() -> None:
    # The default "off": the keyword's "no deadline" as before (nothing held but 64 KiB).
    p = pair(ProxySettings(client_body_timeout=0), annotations={})
    p.send(CHUNKED_HEAD + chunk(b"x" * 100))
    assert len(p.opens) == 1 and p.timer is None


# ----------------------------------------------------------------------------- cost (rule 19)
def test_streamed_and_plain_requests_call_nothing_of_the_module() -> None:
    from test_perf_guards_s25 import python_calls

    p = pair(annotations={})
    with python_calls() as seen:
        out = p.send(cl_head(3) + b"abc")
        p.send(cl_head(3) + b"de")
        p.eof()  # the connection closed mid-body
    assert status_of(out) == 200 and seen
    assert [c for c in seen if c[0] == "_request_buffer.py"] == []


# ----------------------------------------------------------------------------- end to end
class LengthUpstream(TrackedUpstream):
    """Answers "cl N" for a Content-Length body of N bytes, 411 to a chunked one."""

    async def _handle(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        self.writers.append(w)
        try:
            while True:
                head = await r.readuntil(b"\r\n\r\n")
                lines = head.lower().split(b"\r\n")
                if any(x.startswith(b"transfer-encoding:") for x in lines):
                    w.write(b"HTTP/1.1 411 Length Required\r\nContent-Length: 0\r\n"
                            b"Connection: close\r\n\r\n")
                    await w.drain()
                    break
                n = 0
                for x in lines:
                    if x.startswith(b"content-length:"):
                        n = int(x.split(b":", 1)[1])
                body = await r.readexactly(n)
                reply = b"cl %d" % len(body)
                w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(reply), reply))
                await w.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            w.close()


async def _until(cond: Callable[[], bool]) -> None:
    for _ in range(400):
        if cond():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached")


async def _concurrent_uploads() -> None:
    from ingresslib.proxy._request_buffer import budget_of

    up = await LengthUpstream().start()
    settings = ProxySettings(request_buffering_budget=300_000, request_buffering_limit=200_000,
                             proxy_body_size=0)
    server, port = await start_proxy(StubRouter([("127.0.0.1", up.port)], annotations=ON),
                                     settings=settings)
    budget = budget_of(server.proxy, 300_000)
    head = (b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n"
            b"Connection: close\r\n\r\n")
    conns = []
    try:
        # Two uploads of 150,000 bytes each, held: the budget is full.
        for i in range(2):
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(head + chunk(b"%d" % i * 150_000))
            await w.drain()
            conns.append((r, w))
            await _until(lambda n=i: budget.held == 150_000 * (n + 1))
        # A third chunked one is refused: 503, the server busy, not the body too large.
        r3, w3 = await asyncio.open_connection("127.0.0.1", port)
        w3.write(head + chunk(b"c" * 1000))
        await w3.drain()
        out3 = await read_to_eof(r3, 2)
        w3.close()
        assert status_of(out3) == 503 and budget.held == 300_000
        # A Content-Length one streams meanwhile (same request for the upstream).
        r4, w4 = await asyncio.open_connection("127.0.0.1", port)
        w4.write(b"POST / HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5000\r\n"
                 b"Connection: close\r\n\r\n" + b"d" * 5000)
        await w4.drain()
        out4 = await read_to_eof(r4, 2)
        w4.close()
        assert status_of(out4) == 200 and out4.endswith(b"cl 5000")
        # The first finishes, the second's client goes away: everything back.
        r, w = conns[0]
        w.write(b"0\r\n\r\n")
        await w.drain()
        out1 = await read_to_eof(r, 2)
        assert status_of(out1) == 200 and out1.endswith(b"cl 150000")
        conns[1][1].transport.abort()
        await _until(lambda: budget.held == 0)
    finally:
        for _, w in conns:
            w.close()
        await server.shutdown(1)
        await up.stop()


def test_end_to_end_concurrent_uploads_against_a_small_budget() -> None:
    asyncio.run(_concurrent_uploads())


# ----------------------------------------------------------------------------- interleavings
#: One step of one of three clients: a body piece (its size), the body's end, the client gone,
#: its body timer running out, a Content-Length upload's head, or the server aborting it.
_STEP = st.tuples(st.integers(0, 2), st.sampled_from(
    ["piece", "piece", "piece", "end", "eof", "timer", "cl_head", "abort", "chunked_head"]),
    st.integers(1, 400))


@hsettings(max_examples=examples(0.2), deadline=None)
@given(st.lists(_STEP, max_size=25))
def test_interleaved_uploads_never_leak_nor_overdraw(steps: list[tuple[int, str, int]]
                                                     ) -> None:
    from ingresslib.proxy._request_buffer import Buffered

    first = pair(small())
    clients = [first, another(first), another(first, ("198.51.100.11", 41002))]
    sent = [0, 0, 0]  # body bytes a Content-Length client still owes (-1: chunked)
    for who, what, n in steps:
        p = clients[who]
        if p.closed:
            continue
        req = p.conn._req
        idle = req is None or req.done
        if what in ("chunked_head", "cl_head") and idle:
            if what == "cl_head":
                p.send(cl_head(n))
                sent[who] = n
            else:
                p.send(CHUNKED_HEAD)
                sent[who] = -1
        elif what == "piece" and not idle:
            if sent[who] == -1:
                p.send(chunk(b"x" * n))
            elif sent[who] > 0:
                k = min(n, sent[who])
                sent[who] -= k
                p.send(b"x" * k)
        elif what == "end" and not idle and sent[who] == -1:
            p.send(b"0\r\n\r\n")
        elif what == "eof":
            p.eof()
        elif what == "timer" and p.timer is not None:
            p.fire()
        elif what == "abort":
            p._run(p.conn.abort(p.now))
        # The budget is never overdrawn and is exactly what the live requests reserved.
        kept = sum(r.kept for r in (c.conn._req.replay for c in clients
                                    if c.conn._req is not None)
                   if type(r) is Buffered)
        assert held(first) == kept <= 1000
    for p in clients:
        if not p.closed:
            p._run(p.conn.abort(p.now))
    assert held(first) == 0
