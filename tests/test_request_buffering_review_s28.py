"""Session 28, review R4: ``proxy-request-buffering: "on"`` (proxy/_request_buffer.py) attacked:
framing and smuggling, memory, and its interplay with the other proxy features.

Defect fixed: a body past the 1 MiB replay bound held while the access phase waited (an auth
subrequest; a sans-IO driver not pausing on ``reading_wanted``) was streamed chunked -- to a
``proxy-http-version: "1.0"`` upstream too, which has no chunked coding -- instead of being
read whole and sent with its Content-Length. The other tests pin what the attack found right.
"""

from __future__ import annotations

from typing import Any

import h11

from ingresslib import Router, parse_manifests
from ingresslib.proxy import ProxySettings, TimerKind
from ingresslib.proxy._actions import Mirror
from ingresslib.proxy._annotations import PREFIX
from tests._proxy_harness import (FakeUpstream, ProxyPair, Reply, Route, ingress_yaml, ok,
                                  status_of, web_service_yaml)

P = PREFIX
ON = {P + "proxy-request-buffering": "on"}
HEAD = b"POST /up HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n"
AUTH = ("10.5.0.1", 4180)
AUTH_URL = "http://10.5.0.1:4180/auth"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def echo(request: h11.Request, body: bytes, up: FakeUpstream) -> Reply:
    if up.endpoint == AUTH:
        return Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    return ok(b"got %d" % len(body))


def pair(annotations: dict[str, str] | None = None, **kw: Any) -> ProxyPair:
    settings = kw.pop("settings", None)
    return ProxyPair([Route(annotations=dict(ON if annotations is None else annotations))],
                     settings, app=kw.pop("app", echo), **kw)


def framing(raw: bytes) -> list[bytes]:
    """The framing header lines of every request head in ``raw`` (one upstream's bytes)."""
    out = []
    for head in raw.split(b"\r\n\r\n"):
        out += [x for x in head.lower().split(b"\r\n")
                if x.startswith((b"content-length:", b"transfer-encoding:"))]
    return out


def backend_raw(p: ProxyPair) -> list[bytes]:
    return [bytes(u.raw) for u in p.upstreams if u.endpoint != AUTH]


# ----------------------------------------------------------------------- the defect fixed
def _auth_then_big_body(extra: dict[str, str]) -> tuple[ProxyPair, bytes]:
    p = ProxyPair([Route(annotations={**ON, P + "auth-url": AUTH_URL,
                                      P + "proxy-body-size": "0", **extra})],
                  app=echo, defer=[AUTH])
    # 1 MiB + 10 bytes come while the auth service is asked (the driver feeds them all).
    p.send(HEAD + chunk(b"a" * (1 << 20)) + chunk(b"b" * 10))
    out = p.connect()  # the auth service lets the request in; the body is not over yet
    out += p.send(chunk(b"c" * 5) + b"0\r\n\r\n")
    return p, out


def test_body_past_replay_bound_during_auth_still_buffered_for_http10_upstream() -> None:
    p, out = _auth_then_big_body({P + "proxy-http-version": "1.0"})
    assert status_of(out) == 200 and out.endswith(b"got %d" % ((1 << 20) + 15))
    [raw] = backend_raw(p)
    # before: "POST /up HTTP/1.0 ... transfer-encoding: chunked" (no chunked coding in 1.0)
    assert raw.startswith(b"POST /up HTTP/1.0\r\n")
    assert framing(raw) == [b"content-length: %d" % ((1 << 20) + 15)]


def test_body_past_replay_bound_during_auth_sent_with_its_length() -> None:
    p, out = _auth_then_big_body({})
    assert status_of(out) == 200
    [raw] = backend_raw(p)
    assert framing(raw) == [b"content-length: %d" % ((1 << 20) + 15)]
    assert raw.endswith(b"a" * 100 + b"b" * 10 + b"c" * 5)  # no chunk lines in the body


def test_body_past_replay_bound_during_auth_retried_whole() -> None:
    eps = [("10.0.0.1", 8080), ("10.0.0.2", 8080)]
    seen: list[int] = []

    def app(request: h11.Request, body: bytes, up: FakeUpstream) -> Reply:
        if up.endpoint == AUTH:
            return echo(request, body, up)
        seen.append(len(body))
        if up.endpoint == eps[0]:
            return Reply(b"HTTP/1.1 502 Bad\r\nContent-Length: 0\r\n\r\n")
        return ok(b"got %d" % len(body))

    p = ProxyPair([Route(endpoints=eps, annotations={
        **ON, P + "auth-url": AUTH_URL, P + "proxy-body-size": "0",
        P + "proxy-next-upstream": "error timeout http_502 non_idempotent"})],
        app=app, defer=[AUTH])
    p.send(HEAD + chunk(b"a" * (1 << 20)) + chunk(b"b" * 10))
    p.connect()
    out = p.send(b"0\r\n\r\n")
    assert status_of(out) == 200 and seen == [(1 << 20) + 10] * 2


# ----------------------------------------------------------------------- framing
def test_empty_chunked_body_is_content_length_0() -> None:
    for parts in ([HEAD + b"0\r\n\r\n"], [HEAD, b"0\r\n\r\n"]):
        p = pair()
        out = b"".join(p.send(x) for x in parts)
        assert status_of(out) == 200 and out.endswith(b"got 0")
        assert framing(p.upstream_bytes) == [b"content-length: 0"]


def test_chunk_extensions_and_folded_trailers_never_reach_the_upstream() -> None:
    p = pair()
    out = p.send(HEAD + b"3;ext=1\r\nabc\r\n0\r\nX-T: a\r\n b\r\nY-T: c\r\n\r\n")
    assert status_of(out) == 200 and out.endswith(b"got 3")
    raw = p.upstream_bytes
    assert framing(raw) == [b"content-length: 3"] and raw.endswith(b"\r\n\r\nabc")
    assert b"ext=" not in raw and b"x-t" not in raw.lower() and b"y-t" not in raw.lower()


def test_pipelined_requests_behind_a_buffered_one_are_not_its_body() -> None:
    p = pair()
    out = p.send(HEAD + chunk(b"abc") + b"0\r\n\r\n"
                 + b"POST /up HTTP/1.1\r\nHost: a.test\r\nContent-Length: 2\r\n\r\nde"
                 + b"GET /up HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert out.count(b"HTTP/1.1 200 ") == 3
    assert [out.count(b"got %d" % n) for n in (3, 2, 0)] == [1, 1, 1]
    # one pooled upstream connection, three requests each with its own exact framing
    assert len(p.upstreams) == 1
    assert framing(p.upstream_bytes) == [b"content-length: 3", b"content-length: 2"]


def test_client_closing_mid_body_opens_nothing() -> None:
    p = pair()
    p.send(HEAD + chunk(b"abc"))
    p.eof()
    assert p.opens == [] and p.upstream_bytes == b""
    assert [r.status for r in p.records] == [400]  # nginx: client prematurely closed (400)


def test_expect_continue_with_a_too_large_length_is_413_without_100() -> None:
    p = pair({**ON, P + "proxy-body-size": "10"})
    out = p.send(b"POST /up HTTP/1.1\r\nHost: a.test\r\nExpect: 100-continue\r\n"
                 b"Content-Length: 30\r\n\r\n")
    assert status_of(out) == 413 and b"100 Continue" not in out and p.opens == []


def test_refused_framings_open_nothing() -> None:
    for head in (b"POST /up HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
                 b"POST /up HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n"
                 b"Content-Length: 3\r\n\r\n",
                 b"POST /up HTTP/1.0\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n"):
        p = pair()
        out = p.send(head + chunk(b"abc") + b"0\r\n\r\n")
        assert status_of(out) == 400 and p.opens == [], head


def test_http10_client_content_length_body_buffered() -> None:
    p = pair()
    p.send(b"POST /up HTTP/1.0\r\nHost: a.test\r\nContent-Length: 3\r\n\r\nab")
    assert p.opens == []
    out = p.send(b"c")
    assert status_of(out) == 200 and out.endswith(b"got 3")
    assert framing(p.upstream_bytes) == [b"content-length: 3"]


def test_upgrade_opens_at_once() -> None:
    p = pair()
    p.send(b"GET /up HTTP/1.1\r\nHost: a.test\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n")
    assert len(p.opens) == 1


# ----------------------------------------------------------------------- interplay
def test_auth_denial_sends_no_body_anywhere() -> None:
    def deny(request: h11.Request, body: bytes, up: FakeUpstream) -> Reply:
        assert up.endpoint == AUTH and body == b""
        return Reply(b"HTTP/1.1 401 No\r\nContent-Length: 0\r\n\r\n")

    p = ProxyPair([Route(annotations={**ON, P + "auth-url": AUTH_URL})], app=deny, defer=[AUTH])
    p.send(HEAD + chunk(b"abc"))
    out = p.connect()
    out += p.send(chunk(b"def") + b"0\r\n\r\n")
    assert status_of(out) == 401 and backend_raw(p) == []
    # (After the subrequest's head: its X-Request-ID may hold "abc".)
    assert b"abc" not in p.upstream_bytes.partition(b"\r\n\r\n")[2]


def test_retry_after_a_refused_connect_sends_the_framed_body() -> None:
    eps = [("10.0.0.1", 8080), ("10.0.0.2", 8080)]
    p = ProxyPair([Route(endpoints=eps, annotations=ON)], app=echo, refuse=[eps[0]])
    out = p.send(HEAD + chunk(b"abc") + chunk(b"de") + b"0\r\n\r\n")
    assert status_of(out) == 200 and out.endswith(b"got 5")
    assert framing(p.upstream_bytes) == [b"content-length: 5"]
    assert p.upstream_bytes.endswith(b"\r\n\r\nabcde")


def test_mirror_gets_the_same_reframed_body() -> None:
    p = pair({**ON, P + "mirror-target": "http://127.0.0.1:9999$request_uri"})
    mirrors: list[Mirror] = []
    perform = p._perform

    def keep(actions: list[Any], events: list[Any]) -> None:
        mirrors.extend(a for a in actions if type(a) is Mirror)
        perform([a for a in actions if type(a) is not Mirror], events)

    p._perform = keep  # type: ignore[method-assign]
    out = p.send(HEAD + chunk(b"abc") + b"0\r\nX-T: t\r\n\r\n")
    assert status_of(out) == 200
    [m] = mirrors
    assert framing(m.data) == [b"content-length: 3"] and m.data.endswith(b"\r\n\r\nabc")
    assert framing(p.upstream_bytes) == [b"content-length: 3"]


W2 = web_service_yaml().replace("web", "web2").replace("10.0.0.1", "10.0.1.1")


def _routed(*docs: str, app: Any = echo) -> ProxyPair:
    return ProxyPair(router=Router(parse_manifests("".join(docs) + web_service_yaml() + W2)),
                     app=app)


def test_custom_error_page_gets_the_same_framing() -> None:
    def app(request: h11.Request, body: bytes, up: FakeUpstream) -> Reply:
        if up.endpoint == ("10.0.0.1", 80):
            return Reply(b"HTTP/1.1 503 Bad\r\nContent-Length: 0\r\n\r\n")
        return ok(b"err %d" % len(body))

    p = _routed(ingress_yaml("a", "a.test", {**ON, P + "custom-http-errors": "503",
                                             P + "default-backend": "web2"}), app=app)
    out = p.send(HEAD.replace(b"/up", b"/") + chunk(b"abc") + b"0\r\n\r\n")
    assert status_of(out) == 200 and out.endswith(b"err 3")
    assert [framing(bytes(u.raw)) for u in p.upstreams] == [[b"content-length: 3"]] * 2


def test_canary_traffic_takes_the_main_ingress_value() -> None:
    canary = {P + "canary": "true", P + "canary-weight": "100"}
    for main, can, buffered in (({**ON}, canary, True), ({}, {**canary, **ON}, False)):
        p = _routed(ingress_yaml("a", "a.test", main),
                    ingress_yaml("b", "a.test", can, service="web2"))
        p.send(HEAD.replace(b"/up", b"/") + chunk(b"abc"))
        assert (p.opens == []) is buffered
        out = p.send(b"0\r\n\r\n")
        assert status_of(out) == 200 and [o.endpoint for o in p.opens] == [("10.0.1.1", 80)]
        assert framing(p.upstream_bytes) == ([b"content-length: 3"] if buffered
                                             else [b"transfer-encoding: chunked"])


def test_access_log_request_length_same_as_streamed() -> None:
    seen = []
    for ann in (ON, {}):
        p = pair(ann)
        p.send(HEAD + chunk(b"abc") + b"0\r\n\r\n")
        [r] = p.records
        seen.append((r.status, r.bytes_in, r.upstream_response_length))
    assert seen[0] == seen[1] == (200, len(HEAD + chunk(b"abc") + b"0\r\n\r\n"), 5)


def test_cap_413_closes_and_holds_nothing_more() -> None:
    p = pair(settings=ProxySettings(request_buffering_limit=100, client_body_timeout=5.0))
    out = p.send(HEAD + chunk(b"a" * 60))
    assert out == b"" and p.timer == (TimerKind.BODY, 5.0)
    out = p.send(chunk(b"b" * 60))
    assert status_of(out) == 413 and p.opens == [] and p.closed
    assert [r.status for r in p.records] == [413]


# ----------------------------------------------------------------------- end to end
def test_end_to_end_auth_then_a_2_mib_buffered_body() -> None:
    """The real server: paused on the held bytes while the auth service answers, it reads on
    once the body is to be read whole; the backend (which refuses chunked bodies) gets it with
    its length. The auth service is the same test server (it answers a GET with 200)."""
    import asyncio

    from tests._server_helpers import StubRouter
    from tests._upstream_helpers import read_to_eof, start_proxy
    from tests.test_request_buffering_s28 import NoChunkedUpstream

    async def run() -> bytes:
        up = await NoChunkedUpstream().start()
        server, port = await start_proxy(StubRouter([("127.0.0.1", up.port)], annotations={
            **ON, P + "proxy-body-size": "0",
            P + "auth-url": "http://127.0.0.1:%d/auth" % up.port}))
        try:
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(HEAD.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
                    + chunk(b"b" * (1 << 20)) * 2 + b"0\r\n\r\n")
            await w.drain()
            out = await asyncio.wait_for(read_to_eof(r), 2)
            w.close()
            return out
        finally:
            await server.shutdown(1)
            await up.stop()

    out = asyncio.run(run())
    assert status_of(out) == 200 and out.endswith(b"got %d" % (2 << 20))


# ----------------------------------------------------------------------- configuration
def test_configmap_value_is_an_nginx_flag_case_insensitive() -> None:
    # nginx.tmpl writes "proxy_request_buffering {{ $location.Proxy.RequestBuffering }};" with
    # the ConfigMap's value unchecked; ngx_conf_set_flag_slot compares with ngx_strcasecmp, so
    # "On" loads (before: the whole ConfigMap refused). The annotation stays case-sensitive.
    from ingresslib.proxy import parse_config_data
    from ingresslib.proxy._annotations import parse_route_options

    for value, want in (("On", "on"), (" OFF ", "off"), ("oN", "on")):
        assert parse_config_data({"proxy-request-buffering": value}
                                 ).settings.proxy_request_buffering == want
    opts = parse_route_options({P + "proxy-request-buffering": "On"}, "/", ProxySettings(),
                               where="ing")
    assert not opts.request_buffering and len(opts.warnings) == 1


# ----------------------------------------------------------------------- memory
def test_buffered_body_released_once_the_response_began() -> None:
    # No retry (nor error page) once the response began (``_retry_allowed``: nginx's "if the
    # response had already begun"): the whole body kept for them (up to 64 MiB) was pinned
    # for as long as the response lasted (a slow download after an upload).
    def slow(request: h11.Request, body: bytes, up: FakeUpstream) -> Reply:
        return Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")  # 7 bytes to come

    p = pair(app=slow)
    out = p.send(HEAD + chunk(b"x" * 200_000) + b"0\r\n\r\n")
    assert status_of(out) == 200 and out.endswith(b"abc")
    req = p.conn._req
    assert req is not None and req.response_started and not req.done
    assert req.replay is None and req.unsent_size == 0
    [up] = p.upstreams
    out = p.upstream_send(up, b"defghij")  # the response ends as usual
    assert out == b"defghij" and [r.status for r in p.records] == [200]


def test_streamed_request_keeps_its_replay_copy_until_the_end() -> None:
    # "off": unchanged (at most 1 MiB, freed with the request).
    def slow(request: h11.Request, body: bytes, up: FakeUpstream) -> Reply:
        return Reply(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")

    p = pair({}, app=slow)
    p.send(HEAD + chunk(b"x" * 1000) + b"0\r\n\r\n")
    req = p.conn._req
    assert req is not None and req.replay is not None and req.replay_size == 1000


def test_global_rate_limit_refusal_sends_no_body() -> None:
    p = pair({**ON, P + "global-rate-limit": "1", P + "global-rate-limit-window": "1m"})
    out = p.send(HEAD + chunk(b"abc") + b"0\r\n\r\n")
    assert status_of(out) == 200
    out = p.send(HEAD + chunk(b"zzz"))
    assert status_of(out) == 429 and len(p.opens) == 1
    out += p.send(b"0\r\n\r\n" + b"GET /up HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert b"zzz" not in p.upstream_bytes and out.count(b"HTTP/1.1 429") == 2
