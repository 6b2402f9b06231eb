"""IngressASGI review (session 21).

- The differential property test of tests/test_proxy_asgi_agree_s13.py left access control
  out ("being changed by another session"): here the same comparison runs with the source-range
  annotations (allowlist/whitelist/denylist, valid and invalid), an access annotation
  ingresslib cannot enforce (``configuration-snippet``; ``auth-url`` and ``auth-type: digest``
  until session 26, which implemented them), and the ``whitelist_source_range``,
  ``denylist_source_range``, ``block_cidrs`` and ``deny_unenforced_access_annotations``
  settings, from a peer inside or outside the ranges, trusted hop or not; and once more for a
  server that gives no ``raw_path`` (the target spelled as ``path`` re-quoted, which is all
  such a server can say), and for WebSocket handshakes (the proxy's upstream answers 101, the
  mounted app accepts; a refusal goes through ``websocket.http.response``), which the s13 test
  did not generate. The one without ``raw_path`` found the first finding below; the
  access-control one the second, once the proxy core read an unrouted chunked body.
- An absolute-form target from a server without ``raw_path`` (``path`` is then
  ``http://host/x``) was routed on its path, but its ssl-redirect ``Location`` was
  ``https://hosthttp://host/x`` (``_request_uri`` split the absolute form of ``raw_path``
  only); the proxy writes ``https://host/x``.
- A request no rule routes, with a streamed body (chunked: no Content-Length) over the server's
  ``proxy-body-size``, got the ``404`` at once, without a ``fallback``: ingress-nginx proxies it
  to the default backend, and nginx's chunked body filter answers 413 past the limit (the proxy
  core's ``_defer_unrouted``, session 21). The body is read and counted first now.
- A lifespan ``startup`` that one mounted app failed left the apps that had started without
  their ``shutdown``: uvicorn and hypercorn exit after a failed startup without sending one, so
  their cleanup (closing a pool) never ran. They are shut down before the failure is reported.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from typing import Any
from urllib.parse import quote, unquote

import pytest
from hypothesis import event, given, note, settings
from hypothesis import strategies as st

from ingresslib._asgi import DECISION_KEY, IngressASGI
from ingresslib._asgi_scan import _PATH_SAFE
from ingresslib._load import parse_manifests
from ingresslib._router import Router
from ingresslib.proxy import OpenUpstream, Proxy, ProxySettings, SendDownstream, SendUpstream

from _agree_s13 import (
    P,
    SERVICES,
    IngressSpec,
    Outcome,
    RequestSpec,
    _fill_request_side,
    _fill_response_side,
    _router,
    _split_head,
    manifests_text,
    tls_hosts_of,
)
from _budget import examples
from test_asgi_conformance import MANIFESTS, TLS_HOSTS, proxy_answer, wire
from test_proxy_asgi_agree_s13 import (
    _documented,
    check_agree,
    ingress_sets,
    proxy_settings,
    requests,
    scheme_as_scope,
)

# -- access control in the differential test --------------------------------------------------

#: Source ranges around the generated peers (127.0.0.1, 203.0.113.7) and the X-Forwarded-For
#: values the requests carry (1.2.3.4, 5.6.7.8, 10.9.9.9...); one invalid entry.
RANGES = ("127.0.0.0/8", "203.0.113.0/24", "1.2.3.4/32", "10.0.0.0/8, 5.6.7.8",
          "192.0.2.0/24", "::1/128", "not-a-cidr")

ACCESS = (
    ((P + "whitelist-source-range", RANGES),),
    ((P + "allowlist-source-range", RANGES),),
    ((P + "denylist-source-range", RANGES),),
    ((P + "allowlist-source-range", RANGES), (P + "denylist-source-range", RANGES)),
    ((P + "configuration-snippet", ("deny all;",)),),
)


@st.composite
def access_annotations(draw: st.DrawFn) -> tuple[tuple[str, str], ...]:
    group = draw(st.sampled_from(ACCESS))
    return tuple((name, draw(st.sampled_from(values))) for name, values in group)


@st.composite
def ingress_sets_with_access(draw: st.DrawFn) -> tuple[IngressSpec, ...]:
    ingresses = list(draw(ingress_sets()))
    for i, ing in enumerate(ingresses):
        if draw(st.integers(0, 2)) == 0:
            ingresses[i] = replace(ing, annotations=ing.annotations + draw(access_annotations()))
    return tuple(ingresses)


@st.composite
def access_settings(draw: st.DrawFn) -> ProxySettings:
    base = draw(proxy_settings())
    # Mostly none: each list set refuses most requests, and a request should reach a route.
    cidrs = st.sampled_from(((), (), (), (), ("127.0.0.0/8",), ("203.0.113.0/24",),
                             ("1.2.3.4/32",), ("192.0.2.0/24",)))
    return replace(base, whitelist_source_range=draw(cidrs),
                   denylist_source_range=draw(cidrs), block_cidrs=draw(cidrs),
                   deny_unenforced_access_annotations=draw(st.booleans()))


@settings(max_examples=examples(0.3))
@given(data=st.data(), ingresses=ingress_sets_with_access(), settings_=access_settings())
def test_proxy_and_asgi_agree_on_access_control(data: st.DataObject,
                                                ingresses: tuple[IngressSpec, ...],
                                                settings_: ProxySettings) -> None:
    check_agree(ingresses, data.draw(requests(ingresses), label="request"), settings_)


# -- WebSocket handshakes ---------------------------------------------------------------------

#: The handshake's own headers (RFC 6455 §4.1), after the generated ones.
WS_HEADERS = (("Upgrade", "websocket"), ("Connection", "Upgrade"),
              ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13"))


def _ws_via_proxy(manifests: str, req: RequestSpec, settings_: ProxySettings,
                  tls_hosts: frozenset[str]) -> Outcome:
    """tests/_agree_s13.py ``via_proxy`` for a handshake: the upstream answers 101."""
    proxy = Proxy(_router(manifests), settings_, tls_hosts=tls_hosts, clock=None,
                  request_id=lambda: "0" * 32)
    conn = proxy.connection((req.peer, 40000), tls=req.https,
                            local_port=443 if req.https else 80, now=0.0)
    conn.start(0.0)
    actions = conn.receive_data(req.wire(), 0.0)
    answer = b"".join(a.data for a in actions if isinstance(a, SendDownstream))
    opens = [a for a in actions if isinstance(a, OpenUpstream)]
    if answer or not opens:
        line, headers = _split_head(answer.partition(b"\r\n\r\n")[0])
        out = Outcome(int(line.split(b" ")[1]))
        _fill_response_side(out, headers)
        return out
    up = opens[0]
    sent = conn.upstream_connected(up.conn_id, 0.0)
    line, headers = _split_head(b"".join(a.data for a in sent if isinstance(a, SendUpstream))
                                .partition(b"\r\n\r\n")[0])
    out = Outcome(0, backend=SERVICES[int(up.endpoint[0].split(".")[2])],
                  target=line.split(b" ")[1])
    _fill_request_side(out, headers)
    reply = conn.upstream_data(up.conn_id, b"HTTP/1.1 101 Switching Protocols\r\n"
                               b"Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n", 0.0)
    line, headers = _split_head(b"".join(a.data for a in reply if isinstance(a, SendDownstream))
                                .partition(b"\r\n\r\n")[0])
    out.status = int(line.split(b" ")[1])
    _fill_response_side(out, headers)
    return out


def _ws_via_asgi(manifests: str, req: RequestSpec, settings_: ProxySettings,
                 tls_hosts: frozenset[str]) -> Outcome:
    """tests/_agree_s13.py ``via_asgi`` for a handshake: the websocket scope uvicorn builds,
    with the ``websocket.http.response`` extension; the app accepts (a 101)."""
    seen: list[tuple[str, dict[str, Any]]] = []
    sent: list[dict[str, Any]] = []

    def mounted(name: str) -> Any:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            seen.append((name, scope))
            await receive()
            await send({"type": "websocket.accept"})
        return app

    async def receive() -> Any:
        return {"type": "websocket.connect"}

    async def send(m: Any) -> None:
        sent.append(dict(m))

    app = IngressASGI(_router(manifests), {f"default/{s}": mounted(s) for s in SERVICES},
                      settings=settings_, tls_hosts=tls_hosts, request_id=lambda: "0" * 32)
    scope = req.scope()
    del scope["method"]
    scope.update(type="websocket", scheme="wss" if req.https else "ws", subprotocols=[],
                 extensions={"websocket.http.response": {}})
    asyncio.run(app(scope, receive, send))
    start = sent[0]
    out = Outcome(101 if start["type"] == "websocket.accept" else int(start["status"]))
    _fill_response_side(out, [(bytes(n).lower(), bytes(v)) for n, v in start.get("headers", [])])
    if seen:
        name, child = seen[0]
        out.backend = name
        out.annotations = dict(child[DECISION_KEY].match.annotations)
        qs = child["query_string"]
        out.target = child["raw_path"] + (b"?" + qs if qs else b"")
        _fill_request_side(out, [(bytes(n).lower(), bytes(v)) for n, v in child["headers"]])
    return out


@settings(max_examples=examples(0.25))
@given(data=st.data(), ingresses=ingress_sets(), settings_=proxy_settings())
def test_proxy_and_asgi_agree_on_websocket_handshakes(data: st.DataObject,
                                                      ingresses: tuple[IngressSpec, ...],
                                                      settings_: ProxySettings) -> None:
    req = data.draw(requests(ingresses), label="request")
    # A handshake: GET, HTTP/1.1 with a Host, no body; the generated Connection and Upgrade
    # lines give way to the handshake's own.
    headers = tuple((n, v) for n, v in req.headers if n.lower() not in ("connection", "upgrade"))
    req = replace(req, method="GET", body=b"", chunked=False, http10=False,
                  host="a.test" if req.host is None else req.host,
                  headers=headers + WS_HEADERS)
    req = scheme_as_scope(req, settings_, 443)
    text = manifests_text(ingresses)
    tls_hosts = tls_hosts_of(ingresses)
    # As ``check_agree``: ASGI cannot tell "/x?" from "/x" (docs/asgi.md).
    as_proxy = replace(req, target=req.target[:-1]) if req.target.endswith("?") else req
    proxy = _ws_via_proxy(text, as_proxy, settings_, tls_hosts)
    asgi = _ws_via_asgi(text, req, settings_, tls_hosts)
    proxy, asgi = _documented(req, proxy, asgi,
                              asgi.annotations.get(P + "rewrite-target") is not None)
    note(f"proxy: {proxy}")
    note(f"asgi:  {asgi}")
    event(f"status {proxy.status}")
    assert proxy == asgi


# -- a server without raw_path -----------------------------------------------------------------


class _NoRawPath(RequestSpec):
    """The request as a server that gives no ``raw_path`` hands it over."""

    def scope(self) -> dict[str, Any]:
        scope = super().scope()
        del scope["raw_path"]
        return scope


@settings(max_examples=examples(0.25))
@given(data=st.data(), ingresses=ingress_sets_with_access(), settings_=access_settings())
def test_proxy_and_asgi_agree_without_raw_path(data: st.DataObject,
                                               ingresses: tuple[IngressSpec, ...],
                                               settings_: ProxySettings) -> None:
    req = data.draw(requests(ingresses), label="request")
    path, mark, query = req.target.partition("?")
    # docs/asgi.md: "Without `raw_path` ... an encoded `%2F` cannot be told from `/` then,
    # and is routed as one"; any other escape is what ``path`` re-quoted says, so the proxy
    # is sent that spelling (the target the client would have to send for the same scope).
    if "%2F" in path.upper():
        return
    target = quote(unquote(path), safe=_PATH_SAFE) + mark + query
    check_agree(ingresses, _NoRawPath(**{**vars(req), "target": target}), settings_)


@pytest.mark.asyncio
async def test_absolute_form_without_raw_path_redirects_to_its_path() -> None:
    want = proxy_answer(wire("GET http://force.test/x/y?q=1 HTTP/1.1\r\nHost: force.test"))
    assert want.status == 308 and want.header(b"location") == b"https://force.test/x/y?q=1"
    sent: list[dict[str, Any]] = []

    async def send(m: Any) -> None:
        sent.append(dict(m))

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def never(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("redirected before any app")

    app = IngressASGI(Router(parse_manifests(MANIFESTS), seed=1), {"default/web": never},
                      tls_hosts=TLS_HOSTS)
    await app({"type": "http", "http_version": "1.1", "method": "GET", "scheme": "http",
               "path": "http://force.test/x/y", "query_string": b"q=1", "root_path": "",
               "headers": [(b"host", b"force.test")], "client": ("127.0.0.1", 40000),
               "server": ("127.0.0.1", 80)}, receive, send)
    assert sent[0]["status"] == want.status
    assert dict(sent[0]["headers"])[b"location"] == want.header(b"location")


# -- an unrouted streamed body ----------------------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize(("chunks", "status"), [
    ([b"abc", b"def"], 413), ([b"abcdef"], 413), ([b"ab", b"cd"], 404), ([b""], 404)])
async def test_an_unrouted_streamed_body_over_the_server_limit_is_413(
        chunks: list[bytes], status: int) -> None:
    sent: list[dict[str, Any]] = []
    left = list(chunks)

    async def receive() -> Any:
        if not left:
            raise AssertionError("read past the body's end")
        return {"type": "http.request", "body": left.pop(0), "more_body": bool(left)}

    async def send(m: Any) -> None:
        sent.append(dict(m))

    async def never(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("no rule routes it")

    app = IngressASGI(parse_manifests(MANIFESTS), {"default/web": never},
                      settings=ProxySettings(proxy_body_size=5))
    await app({"type": "http", "http_version": "1.1", "method": "POST", "scheme": "http",
               "path": "/x", "raw_path": b"/x", "query_string": b"", "root_path": "",
               "headers": [(b"host", b"nobody.test"), (b"transfer-encoding", b"chunked")],
               "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 80)}, receive, send)
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == status


# -- lifespan: a failed startup ---------------------------------------------------------------


def _lifespan_app(name: str, log: list[str], fail: bool = False) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        await receive()
        if fail:
            await send({"type": "lifespan.startup.failed", "message": f"{name}: no database"})
            return
        log.append(f"{name} started")
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        log.append(f"{name} {message['type']}")
        await send({"type": "lifespan.shutdown.complete"})
    return app


@pytest.mark.asyncio
async def test_a_failed_startup_shuts_down_the_apps_that_started() -> None:
    log: list[str] = []
    app = IngressASGI(parse_manifests(MANIFESTS), {
        "default/web": _lifespan_app("web", log), "default/api": _lifespan_app("api", log, True),
        "default/static": _lifespan_app("static", log)})
    sent: list[dict[str, Any]] = []
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    inbox.put_nowait({"type": "lifespan.startup"})

    async def send(m: Any) -> None:
        sent.append(dict(m))

    # As uvicorn and hypercorn: after "startup.failed" the server exits, no shutdown is sent.
    task = asyncio.ensure_future(app({"type": "lifespan", "asgi": {"version": "3.0"},
                                      "state": {}}, inbox.get, send))
    for _ in range(100):
        await asyncio.sleep(0)
        if sent:
            break
    assert sent == [{"type": "lifespan.startup.failed", "message": "api: no database"}]
    assert sorted(log) == ["static lifespan.shutdown", "static started",
                           "web lifespan.shutdown", "web started"]
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
