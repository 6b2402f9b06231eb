"""IngressASGI review (session 17): where the adapter and the proxy core (or ingress-nginx)
answered differently, or the adapter broke an ASGI exchange the server alone would carry.

- a refused ``wss`` handshake (404, 503, 403 through ``websocket.http.response``) had no
  ``Strict-Transport-Security`` (the proxy adds it to every answer over TLS but a 101; nginx.tmpl
  ``if ($scheme = https) { more_set_headers "Strict-Transport-Security: ..." }``);
- a WebSocket handshake declaring a ``Content-Length`` over ``proxy-body-size`` reached the app
  (the proxy, as nginx's find_config phase, answers 413 to any request);
- a streamed body over the limit, read by one task of the app while another sends the app's
  response, let a second response start follow the adapter's 413 (the server raises);
- an HTTP/2 or HTTP/3 request with neither ``:authority`` nor ``Host`` was routed to the
  rules without host (nginx: 400 for any version after 1.0);
- response headers given as a generator (www.rst: an iterable) were consumed by the adapter's
  checks and reached the server empty.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ingresslib._asgi import IngressASGI
from ingresslib._load import parse_manifests
from ingresslib._router import Router
from ingresslib.proxy import ProxySettings

from test_asgi_conformance import MANIFESTS, WS_HEAD, proxy_answer, wire

HSTS = b"max-age=31536000; includeSubDomains"


def _ws_scope(host: str, scheme: str, extra: list[tuple[bytes, bytes]] = ()  # type: ignore[assignment]
              ) -> dict[str, Any]:
    lines = WS_HEAD.replace("HOST", host).split("\r\n")[1:]
    headers = [(n.strip().lower().encode(), v.strip().encode())
               for n, _, v in (ln.partition(":") for ln in lines)]
    return {"type": "websocket", "scheme": scheme, "http_version": "1.1", "path": "/chat",
            "raw_path": b"/chat", "query_string": b"", "root_path": "",
            "headers": headers + list(extra), "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 443 if scheme == "wss" else 80),
            "extensions": {"websocket.http.response": {}}}


async def _ws_run(scope: dict[str, Any], app: Any) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> Any:
        return {"type": "websocket.connect"}

    async def send(m: Any) -> None:
        sent.append(dict(m))

    adapter = IngressASGI(parse_manifests(MANIFESTS), backends={"default/web": app},
                          request_id=lambda: "0" * 32)
    await adapter(scope, receive, send)
    return sent


def _header(message: dict[str, Any], name: bytes) -> bytes | None:
    return next((bytes(v) for n, v in message.get("headers", []) if bytes(n) == name), None)


async def _accepting(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "websocket.accept"})


# -- HSTS on a wss handshake's answers ------------------------------------------------------

@pytest.mark.asyncio
@pytest.mark.parametrize("host", ["nohost.test", "ghost.test"])
async def test_a_refused_wss_handshake_carries_hsts_as_from_the_proxy(host: str) -> None:
    want = proxy_answer(wire(WS_HEAD.replace("HOST", host)), tls=True)
    assert want.header(b"strict-transport-security") == HSTS
    sent = await _ws_run(_ws_scope(host, "wss"), _accepting)
    assert sent[0]["type"] == "websocket.http.response.start"
    assert sent[0]["status"] == want.status
    assert _header(sent[0], b"strict-transport-security") == HSTS


@pytest.mark.asyncio
async def test_the_apps_wss_denial_carries_hsts_and_so_does_its_accept() -> None:
    async def denying(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.http.response.start", "status": 403, "headers": []})
        await send({"type": "websocket.http.response.body", "body": b"no"})

    sent = await _ws_run(_ws_scope("plain.test", "wss"), denying)
    assert _header(sent[0], b"strict-transport-security") == HSTS
    # A wss 101 gets HSTS too, as the proxy core's (session 26: nginx's HSTS header filter
    # runs on a 101, tests/test_loose_ends_s26.py); ws: no HSTS, nothing added.
    assert await _ws_run(_ws_scope("plain.test", "wss"), _accepting) == [
        {"type": "websocket.accept", "headers": [(b"strict-transport-security", HSTS)]}]
    assert await _ws_run(_ws_scope("plain.test", "ws"), _accepting) == [
        {"type": "websocket.accept"}]
    sent = await _ws_run(_ws_scope("nohost.test", "ws"), _accepting)
    assert sent[0]["status"] == 404 and _header(sent[0], b"strict-transport-security") is None


# -- a WebSocket handshake declaring a body over proxy-body-size ------------------------------

@pytest.mark.asyncio
@pytest.mark.parametrize("length, status", [(20, 413), (10, None)])
async def test_websocket_content_length_over_the_limit_is_413_as_from_the_proxy(
        length: int, status: int | None) -> None:
    # small.test: proxy-body-size 10.
    head = WS_HEAD.replace("HOST", "small.test") + f"\r\nContent-Length: {length}"
    want = proxy_answer(wire(head, b"x" * length))
    assert want.status == status
    ran: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        ran.append(True)
        await _accepting(scope, receive, send)

    scope = _ws_scope("small.test", "ws", [(b"content-length", str(length).encode())])
    sent = await _ws_run(scope, app)
    if status is None:
        assert ran and sent == [{"type": "websocket.accept"}]
    else:
        assert not ran
        assert (sent[0]["type"], sent[0]["status"]) == ("websocket.http.response.start", 413)


# -- a streamed 413 racing the app's own response -------------------------------------------

async def post_chunked_to_small(app: Any, receive: Any, send: Any) -> None:
    """A chunked POST to small.test (``proxy-body-size: 10`` in MANIFESTS) through IngressASGI,
    its backend being ``app``."""
    scope = {"type": "http", "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/", "raw_path": b"/", "query_string": b"", "root_path": "",
             "headers": [(b"host", b"small.test"), (b"transfer-encoding", b"chunked")],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}
    adapter = IngressASGI(parse_manifests(MANIFESTS), backends={"default/web": app})
    await adapter(scope, receive, send)


@pytest.mark.asyncio
async def test_a_streamed_413_is_the_only_response_when_the_app_sends_from_another_task(
        ) -> None:
    sent: list[dict[str, Any]] = []
    writing = asyncio.Event()

    async def server_send(m: Any) -> None:
        sent.append(dict(m))
        if len(sent) == 1:
            writing.set()  # the 413's start is being written: let the app's task run
            await asyncio.sleep(0)
            await asyncio.sleep(0)

    chunks = [b"x" * 20]

    async def receive() -> dict[str, Any]:
        if chunks:
            return {"type": "http.request", "body": chunks.pop(), "more_body": False}
        return {"type": "http.disconnect"}

    async def app(scope: Any, rcv: Any, snd: Any) -> None:
        async def responder() -> None:
            await writing.wait()
            await snd({"type": "http.response.start", "status": 200, "headers": []})
            await snd({"type": "http.response.body", "body": b"hi"})

        task = asyncio.create_task(responder())
        assert (await rcv())["type"] == "http.disconnect"
        await task

    await post_chunked_to_small(app, receive, server_send)
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert [m["status"] for m in starts] == [413]
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]


# -- HTTP/2 and HTTP/3 without a host -------------------------------------------------------

NO_HOST_RULE = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: any, namespace: default}
spec:
  rules:
  - http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
"""


async def _no_host_call(version: str, *, rewrite_headers: bool = True,
                        general: bool = False) -> tuple[int, bool]:
    ran: list[bool] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        ran.append(True)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    sent: list[dict[str, Any]] = []

    async def receive() -> Any:
        return {"type": "http.request", "body": b""}

    async def send(m: Any) -> None:
        sent.append(m)

    headers: list[tuple[bytes, Any]] = [(b"accept", b"*/*")]
    if general:
        # A memoryview Content-Length: the scans hand the request to _read_headers.
        headers.append((b"content-length", memoryview(b"0")))
    scope = {"type": "http", "http_version": version, "method": "GET", "scheme": "https",
             "path": "/x", "raw_path": b"/x", "query_string": b"", "root_path": "",
             "headers": headers, "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 443)}
    adapter = IngressASGI(Router(parse_manifests(NO_HOST_RULE)), backends={"default/web": app},
                          rewrite_headers=rewrite_headers)
    await adapter(scope, receive, send)
    return int(sent[0]["status"]), bool(ran)


@pytest.mark.asyncio
@pytest.mark.parametrize("rewrite_headers, general", [(True, False), (False, False),
                                                      (True, True)])
@pytest.mark.parametrize("version", ["2", "3", "1.1"])
async def test_a_request_without_host_after_http_1_0_is_400(
        version: str, rewrite_headers: bool, general: bool) -> None:
    assert await _no_host_call(version, rewrite_headers=rewrite_headers,
                               general=general) == (400, False)


@pytest.mark.asyncio
@pytest.mark.parametrize("rewrite_headers, general", [(True, False), (False, False),
                                                      (True, True)])
async def test_http_1_0_without_host_is_still_routed(rewrite_headers: bool,
                                                     general: bool) -> None:
    assert await _no_host_call("1.0", rewrite_headers=rewrite_headers,
                               general=general) == (200, True)


# -- response headers as a one-pass iterable ------------------------------------------------

@pytest.mark.asyncio
@pytest.mark.parametrize("scheme, hidden", [("http", False), ("https", False),
                                            ("http", True), ("https", True)])
async def test_response_headers_given_as_a_generator_reach_the_server(
        scheme: str, hidden: bool) -> None:
    app_headers = [(b"content-type", b"text/plain"), (b"x-app", b"1")]
    if hidden:
        app_headers.insert(1, (b"server", b"internal"))

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": (h for h in app_headers)})
        await send({"type": "http.response.body", "body": b"ok"})

    sent: list[dict[str, Any]] = []

    async def receive() -> Any:
        return {"type": "http.request", "body": b""}

    async def send(m: Any) -> None:
        sent.append(m)

    scope = {"type": "http", "http_version": "1.1", "method": "GET", "scheme": scheme,
             "path": "/", "raw_path": b"/", "query_string": b"", "root_path": "",
             "headers": [(b"host", b"plain.test")], "client": ("127.0.0.1", 1),
             "server": ("127.0.0.1", 443 if scheme == "https" else 80)}
    adapter = IngressASGI(parse_manifests(MANIFESTS), backends={"default/web": app},
                          settings=ProxySettings())
    await adapter(scope, receive, send)
    got = [(bytes(n), bytes(v)) for n, v in sent[0]["headers"]]
    want = [(b"content-type", b"text/plain"), (b"x-app", b"1")]
    if scheme == "https":
        want.append((b"strict-transport-security", HSTS))
    assert got == want
