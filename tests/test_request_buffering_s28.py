"""proxy-request-buffering (session 28): opt-in, the request body read whole before the
upstream is opened and sent with a Content-Length (proxy/_request_buffer.py)."""

from __future__ import annotations

import asyncio

import h11
import pytest

from ingresslib.proxy import parse_config_data
from ingresslib.proxy import ProxySettings, TimerKind
from ingresslib.proxy._annotations import IMPLEMENTED, PREFIX, parse_route_options
from tests._proxy_harness import FakeUpstream, ProxyPair, Reply, Route, ok, status_of
from tests._server_helpers import StubRouter
from tests._upstream_helpers import TrackedUpstream, read_to_eof, start_proxy

ON = {PREFIX + "proxy-request-buffering": "on"}
CHUNKED_HEAD = (b"POST /up HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n")


def refuses_chunked(request: h11.Request, body: bytes, up: FakeUpstream) -> Reply:
    """Werkzeug's dev server and some WSGI servers: no chunked request bodies."""
    names = {n.lower() for n, _ in request.headers}
    if b"transfer-encoding" in names:
        return Reply(b"HTTP/1.1 411 Length Required\r\nContent-Length: 0\r\n\r\n")
    return ok(b"got %d" % len(body))


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def pair(annotations: dict[str, str] | None = None, **kw: object) -> ProxyPair:
    settings = kw.pop("settings", None)
    return ProxyPair([Route(annotations=dict(ON if annotations is None else annotations))],
                     settings, app=refuses_chunked, **kw)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- the core
def test_chunked_body_buffered_and_sent_with_content_length() -> None:
    p = pair()
    assert p.send(CHUNKED_HEAD + chunk(b"hello ")) == b""
    assert p.opens == []  # no upstream while the body comes
    assert p.timer is not None and p.timer[0] is TimerKind.BODY
    out = p.send(chunk(b"world") + b"0\r\nX-Trailer: t\r\n\r\n")
    assert status_of(out) == 200 and out.endswith(b"got 11")
    assert len(p.opens) == 1
    req, body = p.upstreams[0].requests[0]
    names = {n.lower(): v for n, v in req.headers}
    assert names[b"content-length"] == b"11" and b"transfer-encoding" not in names
    assert b"x-trailer" not in p.upstream_bytes.lower()  # trailers dropped, as nginx
    assert body == b"hello world"


def test_default_off_streams_chunked_unchanged() -> None:
    p = pair({})
    p.send(CHUNKED_HEAD + chunk(b"abc"))
    assert len(p.opens) == 1  # opened on the head
    out = p.send(b"0\r\n\r\n")
    assert status_of(out) == 411  # the backend refuses the chunked body ingresslib streams
    assert ProxySettings().proxy_request_buffering == "off"


def test_content_length_body_buffered_before_the_open() -> None:
    p = pair()
    p.send(b"POST /up HTTP/1.1\r\nHost: a.test\r\nContent-Length: 6\r\n\r\nabc")
    assert p.opens == []
    out = p.send(b"def")
    assert status_of(out) == 200 and out.endswith(b"got 6")


def test_no_body_opens_at_once() -> None:
    p = pair()
    out = p.send(b"GET /up HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert status_of(out) == 200 and len(p.opens) == 1


def test_413_before_any_open() -> None:
    p = pair({**ON, PREFIX + "proxy-body-size": "8"})
    out = p.send(CHUNKED_HEAD + chunk(b"12345") + chunk(b"6789"))
    assert status_of(out) == 413
    assert p.opens == []


def test_cap_chunked_over_it_is_413_content_length_over_it_streams() -> None:
    s = ProxySettings(proxy_body_size=0, request_buffering_limit=2 * 1024 * 1024)
    p = pair(settings=s)
    piece = b"x" * 65536
    out = b""
    out += p.send(CHUNKED_HEAD)
    for _ in range(40):  # 2.5 MiB
        out += p.send(chunk(piece))
        if out:
            break
    assert status_of(out) == 413 and p.opens == []
    # A Content-Length body larger than the cap: streamed (its framing is the same), opened now.
    p2 = pair(settings=s)
    p2.send(b"POST /up HTTP/1.1\r\nHost: a.test\r\nContent-Length: %d\r\n\r\n" % (3 << 20))
    assert len(p2.opens) == 1
    # A cap below the 1 MiB replay bound counts too.
    p3 = pair(settings=ProxySettings(request_buffering_limit=100))
    out = p3.send(CHUNKED_HEAD + chunk(b"a" * 60))
    assert out == b""
    out = p3.send(chunk(b"b" * 60))
    assert status_of(out) == 413 and p3.opens == []


def test_client_body_timeout_while_buffering_is_408() -> None:
    p = pair(settings=ProxySettings(client_body_timeout=7.0))
    p.send(CHUNKED_HEAD + chunk(b"x" * 100_000))
    assert p.timer == (TimerKind.BODY, 7.0)
    out = p.fire(TimerKind.BODY)
    assert status_of(out) == 408 and p.opens == []


def test_read_timeout_runs_from_the_send() -> None:
    silent = lambda request, body, up: None  # noqa: E731
    p = ProxyPair([Route(annotations={**ON, PREFIX + "proxy-read-timeout": "3"})],
                  ProxySettings(client_body_timeout=9.0), app=silent)
    p.send(CHUNKED_HEAD + chunk(b"abc"))
    assert p.timer == (TimerKind.BODY, 9.0) and p.opens == []  # the client's time, no upstream
    p.send(b"0\r\n\r\n")
    assert p.timer == (TimerKind.UPSTREAM_READ, 3.0)
    assert p.upstreams[0].requests[0][1] == b"abc"


def test_retry_replays_a_large_buffered_body() -> None:
    eps = [("10.0.0.1", 8080), ("10.0.0.2", 8080)]
    seen: list[int] = []

    def app(request: h11.Request, body: bytes, up: FakeUpstream) -> Reply:
        seen.append(len(body))
        if up.endpoint == eps[0]:
            return Reply(b"HTTP/1.1 502 Bad\r\nContent-Length: 0\r\n\r\n")
        return refuses_chunked(request, body, up)

    p = ProxyPair([Route(endpoints=eps, annotations={
        **ON, PREFIX + "proxy-next-upstream": "error timeout http_502 non_idempotent",
        PREFIX + "proxy-body-size": "0"})], app=app)
    big = b"y" * (3 * 1024 * 1024)  # over the 1 MiB replay bound of streamed bodies
    out = p.send(CHUNKED_HEAD)
    for i in range(0, len(big), 1 << 20):
        out += p.send(chunk(big[i:i + (1 << 20)]))
    out += p.send(b"0\r\n\r\n")
    assert status_of(out) == 200 and out.endswith(b"got %d" % len(big))
    assert seen == [len(big), len(big)]


def test_expect_100_continue_then_buffered() -> None:
    p = pair()
    out = p.send(b"POST /up HTTP/1.1\r\nHost: a.test\r\nExpect: 100-continue\r\n"
                 b"Content-Length: 3\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 100 Continue\r\n") and p.opens == []
    out = p.send(b"abc")
    assert status_of(out) == 200 and out.endswith(b"got 3")


def test_http_1_0_upstream_gets_chunked_body_with_length() -> None:
    # proxy-http-version 1.0 and a chunked body: 411 when streaming; buffered, sent framed.
    p = pair({**ON, PREFIX + "proxy-http-version": "1.0"})
    out = p.send(CHUNKED_HEAD + chunk(b"abc") + b"0\r\n\r\n")
    assert status_of(out) == 200 and out.endswith(b"got 3")


def test_reading_wanted_while_buffering() -> None:
    p = pair()
    p.send(CHUNKED_HEAD + chunk(b"z" * 200_000))
    assert p.conn.reading_wanted  # we read the body whole: never hold the client back


AUTH = ("10.5.0.1", 4180)
AUTH_URL = "http://10.5.0.1:4180/auth"


def _auth_app(request: h11.Request, body: bytes, up: FakeUpstream) -> Reply:
    if up.endpoint == AUTH:
        return Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    return refuses_chunked(request, body, up)


def test_auth_subrequest_runs_before_the_body_is_read() -> None:
    # nginx's access phase (auth_request) comes before the body is read; then the backend
    # gets the body whole, with its length.
    p = ProxyPair([Route(annotations={**ON, PREFIX + "auth-url": AUTH_URL})], app=_auth_app,
                  defer=[AUTH])
    p.send(CHUNKED_HEAD + chunk(b"abc"))
    assert [o.endpoint for o in p.opens] == [AUTH]
    p.connect()  # the auth service lets it in: the body is not complete, no backend yet
    assert [o.endpoint for o in p.opens] == [AUTH]
    out = p.send(chunk(b"def") + b"0\r\n\r\n")
    assert status_of(out) == 200 and out.endswith(b"got 6")
    backend = [u for u in p.upstreams if u.endpoint != AUTH][0]
    assert backend.requests[0][1] == b"abcdef"
    # the body complete while the auth service answered: framed all the same
    p = ProxyPair([Route(annotations={**ON, PREFIX + "auth-url": AUTH_URL})], app=_auth_app,
                  defer=[AUTH])
    p.send(CHUNKED_HEAD + chunk(b"abc") + b"0\r\n\r\n")
    out = p.connect()
    assert status_of(out) == 200 and out.endswith(b"got 3")


def test_keep_alive_second_buffered_request() -> None:
    p = pair()
    out = p.send(CHUNKED_HEAD + chunk(b"abc") + b"0\r\n\r\n")
    assert out.endswith(b"got 3")
    p.send(CHUNKED_HEAD + chunk(b"12345"))
    assert len(p.opens) == 1  # the second body is read first too
    out = p.send(b"0\r\n\r\n")
    assert status_of(out) == 200 and out.endswith(b"got 5") and len(p.opens) == 2


# ----------------------------------------------------------------------------- parsing
def test_parse_values() -> None:
    from ingresslib.proxy._request_buffer import parse_request_buffering

    assert parse_request_buffering(" on ") == "on"
    assert parse_request_buffering("off") == "off"
    for bad in ("On", "true", ""):
        with pytest.raises(ValueError):
            parse_request_buffering(bad)


def _opts(annotations: dict[str, str], settings: ProxySettings | None = None
          ) -> tuple[bool, tuple[str, ...]]:
    opts = parse_route_options(annotations, "/", settings or ProxySettings(), where="ing")
    return opts.request_buffering, tuple(str(w) for w in opts.warnings)


def test_annotation_parsing_and_default() -> None:
    assert "proxy-request-buffering" in IMPLEMENTED
    on, warnings = _opts(ON)
    assert on and warnings == ()  # no longer "not implemented by ingresslib"
    assert _opts({}) == (False, ())
    assert _opts({}, ProxySettings(proxy_request_buffering="on")) == (True, ())
    # invalid: the ConfigMap's value (proxy/main.go), with a warning
    on, warnings = _opts({PREFIX + "proxy-request-buffering": "yes"},
                         ProxySettings(proxy_request_buffering="on"))
    assert on and len(warnings) == 1 and "using the default" in warnings[0]
    on, warnings = _opts({PREFIX + "proxy-request-buffering": "On"})
    assert not on and len(warnings) == 1


def test_configmap_key() -> None:
    cfg = parse_config_data({"proxy-request-buffering": "on"})
    assert cfg.settings.proxy_request_buffering == "on"
    assert not any("proxy-request-buffering" in w for w in cfg.warnings)
    with pytest.raises(ValueError):
        parse_config_data({"proxy-request-buffering": "maybe"})
    with pytest.raises(ValueError):
        ProxySettings(proxy_request_buffering="yes")
    with pytest.raises(ValueError):
        ProxySettings(request_buffering_limit=-1)


# ----------------------------------------------------------------------------- end to end
class NoChunkedUpstream(TrackedUpstream):
    """A backend that answers 411 to a Transfer-Encoding, else echoes the body's length."""

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
                reply = b"got %d" % len(body)
                w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(reply), reply))
                await w.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            w.close()


async def _post_chunked(annotations: dict[str, str],
                        body: bytes = chunk(b"hello") + chunk(b" world")) -> bytes:
    up = await NoChunkedUpstream().start()
    server, port = await start_proxy(StubRouter([("127.0.0.1", up.port)],
                                                annotations=annotations))
    try:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"POST / HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n"
                b"Connection: close\r\n\r\n" + body + b"0\r\n\r\n")
        await w.drain()
        out = await asyncio.wait_for(read_to_eof(r), 2)
        w.close()
        return out
    finally:
        await server.shutdown(1)
        await up.stop()


def test_end_to_end_backend_refusing_chunked() -> None:
    on = asyncio.run(_post_chunked(ON))
    assert status_of(on) == 200 and on.endswith(b"got 11")
    off = asyncio.run(_post_chunked({}))
    assert status_of(off) == 411
    # 2 MiB: the server keeps reading the client while the core holds the body
    big = asyncio.run(_post_chunked({**ON, PREFIX + "proxy-body-size": "0"},
                                    chunk(b"b" * (1 << 20)) * 2))
    assert status_of(big) == 200 and big.endswith(b"got %d" % (2 << 20))


# ----------------------------------------------------------------------------- cost (rule 19)
def test_plain_requests_call_no_request_buffering_code() -> None:
    from test_perf_guards_s25 import MANIFESTS, core_request, python_calls

    from ingresslib._load import parse_manifests
    from ingresslib._router import Router
    from ingresslib.proxy._connection import Proxy

    proxy = Proxy(Router(parse_manifests(MANIFESTS)), records=False)
    core_request(proxy, 0.0)
    p = pair({})
    with python_calls() as seen:
        core_request(proxy, 1.0)
        out = p.send(CHUNKED_HEAD + chunk(b"abc") + b"0\r\n\r\n")  # a body, streamed
    assert seen and status_of(out) == 411
    assert [c for c in seen if c[0] == "_request_buffer.py"] == []
