"""Session 17 review (R17i) of edc5599 (IngressASGI: Host after HTTP/1.0, the WebSocket 413,
``_Reply.send(own=...)``) and a37b3f3 (``_router._reiterable``). These pin the answers to the
review's questions: ordinary HTTP/2 requests as the ASGI servers build their scopes are still
routed, a WebSocket handshake without a body still reaches the app, the adapter's own 413 goes
out once, and header objects that can be read twice are not copied per request."""

from __future__ import annotations

import http.client
import io
import types
from typing import Any

import h11
import pytest

import ingresslib._router as router_mod
from ingresslib._asgi import IngressASGI
from ingresslib._load import parse_manifests

from _router_helpers import P, canary, ingress, resources, simple_backend
from test_asgi_conformance import MANIFESTS, WS_HEAD, proxy_answer, wire
from test_asgi_s17 import post_chunked_to_small


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _call(scope: dict[str, Any], app: Any = _ok) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> Any:
        if scope["type"] == "websocket":
            return {"type": "websocket.connect"}
        return {"type": "http.request", "body": b""}

    async def send(m: Any) -> None:
        sent.append(dict(m))

    adapter = IngressASGI(parse_manifests(MANIFESTS), backends={"default/web": app})
    await adapter(scope, receive, send)
    return sent


# -- HTTP/2 and HTTP/3 as the servers hand them over -----------------------------------------

@pytest.mark.asyncio
@pytest.mark.parametrize("version", ["2", "3"])
@pytest.mark.parametrize("headers", [
    # hypercorn (utils.filter_pseudo_headers): "filtered_headers[0] = (b"host", authority if
    # authority is not None else host)" - :authority becomes the first header, named host.
    [(b"host", b"plain.test"), (b"accept", b"*/*"), (b"user-agent", b"curl")],
    # granian (asgi/utils.rs): the request's headers, then "if !$req.headers.contains_key(
    # header::HOST) { ... headers.insert(0, (b"host", authority)) }".
    [(b"host", b"plain.test:443"), (b"accept", b"*/*")],
    # A client that sent Host besides :authority (hypercorn keeps the :authority).
    [(b"host", b"plain.test"), (b"content-length", b"0")],
])
async def test_http2_and_http3_scopes_with_the_authority_as_host_are_routed(
        version: str, headers: list[tuple[bytes, bytes]]) -> None:
    # Answers: edc5599 refuses a request after HTTP/1.0 without Host; the ASGI servers that
    # speak HTTP/2 (uvicorn speaks HTTP/1.1 only) put :authority in a host header, so an
    # ordinary HTTP/2 request is routed as before.
    scope = {"type": "http", "http_version": version, "method": "GET", "scheme": "https",
             "path": "/", "raw_path": b"/", "query_string": b"", "root_path": "",
             "headers": headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 443)}
    sent = await _call(scope)
    assert sent[0]["status"] == 200
    assert sent[1]["body"] == b"ok"


# -- a WebSocket handshake without a body ----------------------------------------------------

def _ws_scope(host: str, extra: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    lines = WS_HEAD.replace("HOST", host).split("\r\n")[1:]
    headers = [(n.strip().lower().encode(), v.strip().encode())
               for n, _, v in (ln.partition(":") for ln in lines)]
    return {"type": "websocket", "scheme": "ws", "http_version": "1.1", "path": "/chat",
            "raw_path": b"/chat", "query_string": b"", "root_path": "",
            "headers": headers + extra, "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 80), "extensions": {"websocket.http.response": {}}}


@pytest.mark.asyncio
@pytest.mark.parametrize("host", ["small.test", "plain.test"])  # proxy-body-size 10; 1 MiB
@pytest.mark.parametrize("extra", [[], [(b"content-length", b"0")],
                                   [(b"content-length", b"10")]])
async def test_a_websocket_handshake_within_the_limit_reaches_the_app(
        host: str, extra: list[tuple[bytes, bytes]]) -> None:
    # Answers: the WebSocket 413 of edc5599 refuses a declared length over the limit only;
    # the usual GET handshake (no Content-Length) and "Content-Length: 0" are accepted, as
    # the proxy accepts them (its answer is the oracle).
    head = WS_HEAD.replace("HOST", host) + "".join(
        f"\r\n{n.decode()}: {v.decode()}" for n, v in extra)
    length = int(extra[0][1]) if extra else 0
    assert proxy_answer(wire(head, b"x" * length)).status is None  # the proxy upgrades
    assert await _call(_ws_scope(host, extra)) == [{"type": "websocket.accept"}]


# -- the adapter's own 413 goes out once -----------------------------------------------------

@pytest.mark.asyncio
async def test_the_streamed_413_goes_out_once_however_often_the_app_reads_and_sends() -> None:
    # Answers: ``own=True`` sends bypass ``cut``; only ``local`` uses them, and ``_counted``
    # answers every read after the cut with http.disconnect without counting again, so an
    # app that reads on and then answers gets one 413, its own answer dropped, and no
    # BodyTooLarge (the 413 was a complete response).
    chunks = [b"y" * 5, b"x" * 20]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if chunks:
            return {"type": "http.request", "body": chunks.pop(), "more_body": bool(chunks)}
        return {"type": "http.disconnect"}

    async def send(m: Any) -> None:
        sent.append(dict(m))

    reads: list[str] = []

    async def app(scope: Any, rcv: Any, snd: Any) -> None:
        for _ in range(3):
            reads.append((await rcv())["type"])
        await snd({"type": "http.response.start", "status": 200, "headers": []})
        await snd({"type": "http.response.body", "body": b"late"})

    await post_chunked_to_small(app, receive, send)
    assert reads == ["http.disconnect"] * 3
    assert [(m["type"], m.get("status")) for m in sent] == [
        ("http.response.start", 413), ("http.response.body", None)]
    assert chunks == [b"y" * 5]  # nothing read from the server after the cut


# -- _reiterable: what is copied per request -------------------------------------------------

_ROUTER = router_mod.Router(resources(
    ingress("web", [("a.test", "/", "Prefix", "web", 80)]),
    canary("web-c", "a.test", "/", "web-canary", 80,
           {P + "canary-by-header": "X-User", P + "canary-by-cookie": "cc"}),
    *simple_backend("web", ["10.0.0.1"]), *simple_backend("web-canary", ["10.1.0.1"])), seed=1)


class _DictHeaders(dict[str, str]):
    pass


class _H11Headers(h11._headers.Headers):  # a framework's subclass of h11's header list
    pass


def _h11_sub() -> Any:
    h = h11.Request(method="GET", target="/", headers=[(b"Host", b"a.test"),
                                                        (b"X-User", b"always")]).headers
    return _H11Headers(h._full_items)


@pytest.mark.parametrize("make, copied", [
    (lambda: [(b"x-user", b"always")], False),
    (lambda: _DictHeaders({"x-user": "always"}), False),
    (lambda: types.MappingProxyType({"x-user": "always"}), False),
    (lambda: http.client.parse_headers(io.BytesIO(b"X-User: always\r\n\r\n")), False),
    (_h11_sub, False),
    (lambda: iter([(b"x-user", b"always")]), True),
    (lambda: ((k, v) for k, v in [(b"x-user", b"always")]), True),
])
def test_only_one_shot_header_iterators_are_copied(monkeypatch: pytest.MonkeyPatch,
                                                   make: Any, copied: bool) -> None:
    # Answers: a37b3f3's _reiterable lists a header object only when iter() returns the
    # object itself (a generator, an iterator); a dict subclass, a mapping proxy, an
    # HTTPMessage or a subclass of h11's Headers reaches the rules as it came, every request.
    calls: list[bool] = []
    real = router_mod._reiterable

    def spy(headers: Any) -> Any:
        out = real(headers)
        calls.append(out is not headers)
        return out

    monkeypatch.setattr(router_mod, "_reiterable", spy)
    d = _ROUTER.route("GET", "a.test", "/", make())
    assert d is not None and d.canary is True
    assert calls in ([], [copied]) and (calls == [True]) is copied
