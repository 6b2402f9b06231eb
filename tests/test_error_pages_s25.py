"""custom-http-errors, a review (session 25, SR): robustness of the error page fetch in the
sans-IO core (``Proxy.connection``) and IngressASGI against nginx's ``error_page`` /
``proxy_intercept_errors`` (ngx_http_upstream.c ``ngx_http_upstream_intercept_errors``,
ngx_http_special_response.c ``ngx_http_send_error_page``; ``recursive_error_pages`` off) and
ingress-nginx's nginx.tmpl ``CUSTOM_ERRORS`` named location."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import h11

from ingresslib import Router, parse_manifests
from ingresslib._asgi import IngressASGI

from _proxy_harness import FakeUpstream, ProxyPair, Reply
from test_custom_errors_s25 import ANN, ERR, P, WEB, _core, _docs, _head

GET = b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n"


def _silent_errors(request: h11.Request, data: bytes, up: FakeUpstream) -> Reply | None:
    if up.endpoint == ERR:
        return None  # the error page's upstream never answers
    return Reply(b"HTTP/1.1 404 X\r\nContent-Length: 2\r\n\r\nUP")


def _held(conn: Any) -> list[Any]:
    """The requests a connection's attributes refer to (gc: also through containers)."""
    found = []
    for value in vars(conn).values():
        for o in [value, *gc.get_referents(value)]:
            if type(o).__name__ == "_Request":
                found.append(o)
    return found


# ---------------------------------------------------------------- sans-IO core


def test_core_idle_connection_holds_no_finished_request_after_an_error_page() -> None:
    # The connection kept the intercepted request (``_error_page_req``), with its body kept
    # for replay (up to 1 MiB), until its next intercepted request: an idle keep-alive
    # connection held it.
    p = _core(_docs({**ANN, P + "proxy-body-size": "2m"}))
    body = b"b" * 500_000
    out = p.send(b"POST /form HTTP/1.1\r\nHost: a.test\r\nContent-Length: %d\r\n\r\n%s"
                 % (len(body), body))
    assert out.startswith(b"HTTP/1.1 418 ") and not p.closed
    assert [r.upstream_statuses for r in p.records] == [(404, 418)]
    assert _held(p.conn) == []
    # and the next request on the connection is intercepted as usual
    assert p.send(GET).startswith(b"HTTP/1.1 418 ")
    assert [r.upstream_statuses for r in p.records] == [(404, 418), (404, 418)]


def test_core_error_page_upstream_refused_or_timing_out_gives_502_504() -> None:
    # recursive_error_pages off: the named location's own failure is the client's answer.
    p = _core(refuse={ERR})
    assert p.send(GET).startswith(b"HTTP/1.1 502 ")
    assert [(r.status, r.upstream_statuses) for r in p.records] == [(502, (404, 502))]
    q = _core(hang={ERR})
    assert q.send(GET).startswith(b"HTTP/1.1 504 ")
    assert [(r.status, r.upstream_statuses) for r in q.records] == [(504, (404, 504))]
    # the error fetch's read timeout (proxy_read_timeout)
    r = ProxyPair(router=Router(parse_manifests(_docs())), app=_silent_errors)
    assert r.send(GET) == b""
    assert r.fire().startswith(b"HTTP/1.1 504 ")
    assert [(x.status, x.upstream_statuses) for x in r.records] == [(504, (404, 504))]


def test_core_client_gone_mid_error_fetch_closes_the_error_upstream() -> None:
    p = ProxyPair(router=Router(parse_manifests(_docs())), app=_silent_errors)
    p.send(GET)
    assert [u.endpoint for u in p.upstreams] == [WEB, ERR]
    p.eof()
    assert [r.status for r in p.records] == [499]
    assert p.live == {}  # both upstream connections closed
    assert p.closed


def test_core_pipelined_request_after_an_intercepted_one_routes_normally() -> None:
    def app(request: h11.Request, data: bytes, up: FakeUpstream) -> Reply:
        if up.endpoint == ERR:
            return Reply(b"HTTP/1.1 418 T\r\nContent-Length: 2\r\n\r\nEP")
        code = 404 if request.target == b"/x" else 200
        return Reply(b"HTTP/1.1 %d X\r\nContent-Length: 2\r\n\r\nUP" % code)
    p = ProxyPair(router=Router(parse_manifests(_docs())), app=app)
    out = p.send(GET + b"GET /ok HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert out == (b"HTTP/1.1 418 T\r\nContent-Length: 2\r\n\r\nEP"
                   b"HTTP/1.1 200 X\r\nContent-Length: 2\r\n\r\nUP")
    assert [r.upstream_statuses for r in p.records] == [(404, 418), (200,)]
    assert _head(p.upstreams[-1])[0] == b"GET /ok HTTP/1.1"
    assert not any(ln.lower().startswith(b"x-code") for ln in _head(p.upstreams[-1]))


def test_core_expect_100_continue_and_an_early_answer_resend_the_whole_body() -> None:
    p = _core()
    assert p.send(b"POST /x HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n"
                  b"Expect: 100-continue\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert p.send(b"hello").endswith(b"error page POST / hello")

    # the upstream answers 404 before the body is all sent: the error page gets all of it
    def app(request: h11.Request, data: bytes, up: FakeUpstream) -> Reply | None:
        if up.endpoint == ERR:
            return Reply(b"HTTP/1.1 418 T\r\nContent-Length: %d\r\n\r\n%s" % (len(data), data))
        return None
    q = ProxyPair(router=Router(parse_manifests(_docs())), app=app)
    q.send(b"POST /x HTTP/1.1\r\nHost: a.test\r\nContent-Length: 10\r\n\r\nhello")
    assert q.upstream_send(q.upstreams[0], b"HTTP/1.1 404 X\r\nContent-Length: 0\r\n\r\n") == b""
    assert q.send(b"world") == b"HTTP/1.1 418 T\r\nContent-Length: 10\r\n\r\nhelloworld"
    assert bytes(q.upstreams[1].raw).endswith(b"\r\n\r\nhelloworld")


# ---------------------------------------------------------------- IngressASGI


def _run(docs: str, web: Any, chunks: tuple[bytes, ...] = (b"x",)
         ) -> tuple[list[Any], list[tuple[Any, ...]], BaseException | None]:
    calls: list[Any] = []

    async def errors(scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            m = await receive()
            if m["type"] != "http.request":
                calls.append(m["type"])
                break
            body += m.get("body", b"")
            if not m.get("more_body"):
                break
        calls.append(("errors", len(body)))
        await send({"type": "http.response.start", "status": 418, "headers": []})
        await send({"type": "http.response.body", "body": b"EP:%d" % len(body)})

    ingress = IngressASGI(parse_manifests(docs), {"default/web": web, "default/errors": errors})
    sent: list[tuple[Any, ...]] = []
    queue = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
             for i, c in enumerate(chunks)]

    async def receive() -> dict[str, Any]:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(m: dict[str, Any]) -> None:
        sent.append((m["type"], m.get("status"), m.get("body")))

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/q", "raw_path": b"/q",
             "query_string": b"", "root_path": "", "headers": [(b"host", b"a.test")],
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80)}
    exc: BaseException | None = None
    try:
        asyncio.run(ingress(scope, receive, send))
    except Exception as e:  # the app's own exception, passed on to the ASGI server
        exc = e
    return calls, sent, exc


def test_asgi_app_raising_after_its_listed_status_still_gets_the_error_page() -> None:
    # nginx intercepts on the upstream's response head; what the upstream does after does not
    # matter. Before: nothing was sent (the ASGI server's 500).
    async def web(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        raise RuntimeError("boom")
    calls, sent, exc = _run(_docs(), web)
    assert calls == [("errors", 1)]
    assert sent == [("http.response.start", 418, None), ("http.response.body", None, b"EP:1")]
    assert isinstance(exc, RuntimeError)  # still told to the server (it logs it)

    # raising before any listed status: untouched, nothing intercepted
    async def early(scope: Any, receive: Any, send: Any) -> None:
        raise ValueError("early")
    calls, sent, exc = _run(_docs(), early)
    assert calls == [] and sent == [] and isinstance(exc, ValueError)


def test_asgi_error_page_body_stays_under_proxy_body_size() -> None:
    # The app answered 404 without reading the (chunked, undeclared length) body; the error
    # page's app read all of it, past proxy-body-size: before, 418 after reading 24 bytes.
    async def web(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"nf"})
    docs = _docs({**ANN, P + "proxy-body-size": "10"})
    calls, sent, exc = _run(docs, web, (b"a" * 8, b"b" * 8, b"c" * 8))
    assert exc is None
    assert [s[1] for s in sent if s[0] == "http.response.start"] == [413]
    assert calls[0] == "http.disconnect"  # the error page's app learns the request is over
    # under the limit: the error page's app gets the whole body again
    calls, sent, exc = _run(_docs({**ANN, P + "proxy-body-size": "30"}), web,
                            (b"a" * 8, b"b" * 8, b"c" * 8))
    assert exc is None and calls == [("errors", 24)]
    assert sent[0] == ("http.response.start", 418, None)


def test_asgi_no_error_page_after_the_413_of_a_body_over_the_limit() -> None:
    # The app read past the limit (the client got 413), then answered 404: before, the error
    # page's app was still called with the body replayed (its answer then dropped).
    async def web(scope: Any, receive: Any, send: Any) -> None:
        while True:
            m = await receive()
            if m["type"] != "http.request" or not m.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"nf"})
    docs = _docs({**ANN, P + "proxy-body-size": "10"})
    calls, sent, exc = _run(docs, web, (b"a" * 8, b"b" * 8, b"c" * 8))
    assert exc is None and calls == []
    assert [s[1] for s in sent if s[0] == "http.response.start"] == [413]
