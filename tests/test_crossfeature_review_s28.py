"""Session 28 cross-feature review (X1): today's features (use-gzip, block-user-agents /
block-referers, skip-access-log-urls / disable-access-log, ...) in combination with the older
ones, through the sans-IO core (``Proxy.connection``) and IngressASGI, which must agree.

References: nginx's filter order (auto/modules: headers-more, an HTTP_AUX_FILTER addon, is
initialised after ngx_http_gzip_filter_module, so its header filter runs first: a
``more_set_headers`` header is there when ``ngx_http_gzip_header_filter`` decides, and the
gzip filter's ``Vary: Accept-Encoding`` is added after it); nginx.tmpl's server-level
``if ($block_ua) { return 403; }``.
"""

from __future__ import annotations

import asyncio
import json
import zlib
from typing import Any

import pytest

from ingresslib import IngressASGI, Router, parse_manifests
from ingresslib.proxy import ProxySettings

from _asgi_call import asgi_exchange
from _proxy_harness import WEB_SERVICE_YAML, ProxyPair, Reply, ingress_yaml

BODY = b"hello gzip world " * 40  # 680 bytes, past gzip-min-length's 256
GET_GZ = b"GET /x HTTP/1.1\r\nHost: example.test\r\nAccept-Encoding: gzip\r\n\r\n"


def _config_map(data: dict[str, str], name: str = "global", namespace: str = "ingress") -> str:
    body = ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in data.items())
    return f"""---
apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}, namespace: {namespace}}}
data: {{{body}}}
"""


def _docs(annotations: dict[str, str] | None = None, extra: str = "") -> str:
    return ingress_yaml("web", "example.test", annotations or {}) + extra + WEB_SERVICE_YAML


def _head_lines(out: bytes) -> list[tuple[bytes, bytes]]:
    lines = out.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]
    return [(n.strip().lower(), v.strip()) for n, _, v in (ln.partition(b":") for ln in lines)]


def _dechunk(body: bytes) -> bytes:
    out = b""
    while True:
        line, _, rest = body.partition(b"\r\n")
        n = int(line, 16)
        if n == 0:
            return out
        out += rest[:n]
        body = rest[n + 2:]


def _upstream(ct: bytes = b"text/html", body: bytes = BODY, extra: bytes = b"") -> Any:
    def app(request: Any, got: bytes, up: Any) -> Reply:
        return Reply(b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n%s"
                     % (ct, len(body), extra, body))
    return app


def _core(docs: str, settings: ProxySettings, request: bytes = GET_GZ,
          app: Any = None) -> bytes:
    pair = ProxyPair(router=Router(parse_manifests(docs)), settings=settings,
                     app=app or _upstream())
    return pair.send(request)


def _asgi(docs: str, settings: ProxySettings, app: Any,
          headers: list[tuple[bytes, bytes]] | None = None, method: str = "GET",
          path: str = "/x") -> list[dict[str, Any]]:
    asgi = IngressASGI(parse_manifests(docs), {"default/web": app}, settings=settings)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(m: dict[str, Any]) -> None:
        sent.append(m)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "",
             "headers": [(b"host", b"example.test")] + (
                 [(b"accept-encoding", b"gzip")] if headers is None else headers),
             "client": ("127.0.0.1", 5555), "server": ("127.0.0.1", 80)}
    asyncio.run(asgi(scope, receive, send))
    return sent


def _app(ct: bytes = b"text/html", body: bytes = BODY) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", ct)]})
        await send({"type": "http.response.body", "body": body})
    return app


def _asgi_headers(sent: list[dict[str, Any]]) -> list[tuple[bytes, bytes]]:
    return [(bytes(n).lower(), bytes(v)) for n, v in sent[0]["headers"]]


def _asgi_body(sent: list[dict[str, Any]]) -> bytes:
    return b"".join(m.get("body", b"") for m in sent[1:])


# ---------------------------------------------------------------- use-gzip x add-headers
@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("ae", [b"gzip", b"br"])
def test_gzip_keeps_its_vary_after_add_headers_vary_in_core_and_asgi(method: str,
                                                                     ae: bytes) -> None:
    # add-headers {"Vary": "Origin"} (headers-more's more_set_headers, http block) runs before
    # nginx's gzip filter, whose gzip_vary then adds "Vary: Accept-Encoding" (to a client
    # that takes no gzip too): the client gets both. IngressASGI set add-headers after its
    # gzip filter and replaced the filter's Vary: a shared cache could then hand the gzip body
    # to a client that did not ask for it.
    docs = _docs(extra=_config_map({"Vary": "Origin"}))
    s = ProxySettings(add_headers="ingress/global", use_gzip=True)
    request = GET_GZ.replace(b"gzip", ae).replace(b"GET", method.encode())
    core = _head_lines(_core(docs, s, request))
    asgi = _asgi_headers(_asgi(docs, s, _app(body=b"" if method == "HEAD" else BODY),
                               [(b"accept-encoding", ae)], method))
    for got in (core, asgi):
        assert [v for n, v in got if n == b"vary"] == [b"Origin", b"Accept-Encoding"], got
        assert ((b"content-encoding", b"gzip") in got) is (ae == b"gzip")


def test_gzip_decides_on_the_content_type_add_headers_set_in_core_and_asgi() -> None:
    # more_set_headers "Content-Type: text/html" is the type ngx_http_test_content_type sees.
    docs = _docs(extra=_config_map({"Content-Type": "text/html"}))
    s = ProxySettings(add_headers="ingress/global", use_gzip=True)
    out = _core(docs, s, app=_upstream(b"application/octet-stream"))
    core = _head_lines(out)
    sent = _asgi(docs, s, _app(b"application/octet-stream"))
    asgi = _asgi_headers(sent)
    for got in (core, asgi):
        assert (b"content-type", b"text/html") in got and (b"content-encoding", b"gzip") in got
    assert zlib.decompress(_dechunk(out.split(b"\r\n\r\n", 1)[1]), 31) == BODY
    assert zlib.decompress(_asgi_body(sent), 31) == BODY


def test_gzip_with_add_headers_and_a_custom_headers_annotation_agree() -> None:
    # The location's custom-headers (more_set_headers too) with the ConfigMap's: the filter
    # decides on both, the app's other headers untouched, one Content-Encoding.
    extra = (_config_map({"X-Site": "main"})
             + _config_map({"Vary": "Cookie"}, "hdrs", "default"))
    docs = _docs({"nginx.ingress.kubernetes.io/custom-headers": "default/hdrs"}, extra)
    s = ProxySettings(add_headers="ingress/global", use_gzip=True,
                      global_allowed_response_headers=("Vary",))
    core = _head_lines(_core(docs, s))
    asgi = _asgi_headers(_asgi(docs, s, _app()))
    for got in (core, asgi):
        assert [v for n, v in got if n == b"vary"] == [b"Cookie", b"Accept-Encoding"], got
        assert [v for n, v in got if n == b"content-encoding"] == [b"gzip"]
        assert (b"x-site", b"main") in got


PAGE = b"<html>error page</html>" * 30


def test_gzip_custom_http_errors_page_with_add_headers_vary_agree() -> None:
    # The error page's named location inherits the http block's add-headers (more_set_headers)
    # and the gzip filter: "Vary: Origin" then the filter's "Vary: Accept-Encoding", in both.
    from test_custom_errors_s25 import ERR, _docs as _error_docs

    docs = _error_docs() + _config_map({"Vary": "Origin"})
    s = ProxySettings(add_headers="ingress/global", use_gzip=True)

    def upstreams(request: Any, data: bytes, up: Any) -> Reply:
        if up.endpoint == ERR:
            return Reply(b"HTTP/1.1 404 NF\r\nContent-Type: text/html\r\nContent-Length: %d"
                         b"\r\n\r\n%s" % (len(PAGE), PAGE))
        return Reply(b"HTTP/1.1 404 X\r\nContent-Type: text/html\r\nContent-Length: 2\r\n\r\nUP")

    pair = ProxyPair(router=Router(parse_manifests(docs)), app=upstreams, settings=s)
    out = pair.send(b"GET /x HTTP/1.1\r\nHost: a.test\r\nAccept-Encoding: gzip\r\n\r\n")
    core = _head_lines(out)
    assert zlib.decompress(_dechunk(out.split(b"\r\n\r\n", 1)[1]), 31) == PAGE

    async def web(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 404,
                    "headers": [(b"content-type", b"text/html")]})
        await send({"type": "http.response.body", "body": b"UP"})

    async def errors(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 404,
                    "headers": [(b"content-type", b"text/html")]})
        await send({"type": "http.response.body", "body": PAGE})

    ingress = IngressASGI(parse_manifests(docs), {"default/web": web, "default/errors": errors},
                          settings=s)
    sent = asgi_exchange(ingress, "a.test", "/x", b"",
                         headers=[(b"accept-encoding", b"gzip")], client=("127.0.0.1", 5000))
    asgi = _asgi_headers(sent)
    assert sent[0]["status"] == 404
    assert zlib.decompress(_asgi_body(sent), 31) == PAGE
    for got in (core, asgi):
        assert [v for n, v in got if n == b"vary"] == [b"Origin", b"Accept-Encoding"], got
        assert [v for n, v in got if n == b"content-encoding"] == [b"gzip"]


# ---------------------------------------------------- ConfigMap proxy-cookie-* x the fallback
def _fallback_cookie(settings: ProxySettings, host: bytes, path: str,
                     annotations: dict[str, str] | None = None) -> bytes:
    docs = ingress_yaml("web", "a.test", annotations or {}, path="/app") + WEB_SERVICE_YAML

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"set-cookie", b"a=1; Domain=internal.svc; Path=/in")]})
        await send({"type": "http.response.body", "body": b""})

    asgi = IngressASGI(parse_manifests(docs), {}, settings=settings, fallback=app)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(m: dict[str, Any]) -> None:
        sent.append(m)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "headers": [(b"host", host)],
             "client": ("127.0.0.1", 5555), "server": ("127.0.0.1", 80)}
    asyncio.run(asgi(scope, receive, send))
    assert sent[0]["status"] == 200
    return dict(sent[0]["headers"])[b"set-cookie"]


def test_fallback_answer_gets_the_configmap_proxy_cookie_rewrite() -> None:
    # The fallback plays the default backend of the server's "location /", which nginx.tmpl
    # gives proxy_cookie_domain / proxy_cookie_path as every location: the ConfigMap's
    # (controller.go createServers: the default server's root location "Proxy: ngxProxy",
    # "CookieDomain: bdef.ProxyCookieDomain"), or the host owner's annotations
    # (locationApplyAnnotations). IngressASGI passed the fallback's Set-Cookie untouched.
    from ingresslib._config import parse_config_data

    s = parse_config_data({"proxy-cookie-domain": "internal.svc example.test",
                           "proxy-cookie-path": "/in /"}).settings
    want = b"a=1; Domain=example.test; Path=/"
    assert _fallback_cookie(s, b"other.test", "/x") == want  # the catch-all server
    assert _fallback_cookie(s, b"a.test", "/elsewhere") == want  # a.test's location /
    # The host owner's annotation holds for its server's location /, the catch-all's not.
    off = {"nginx.ingress.kubernetes.io/proxy-cookie-domain": "off",
           "nginx.ingress.kubernetes.io/proxy-cookie-path": "off"}
    assert _fallback_cookie(s, b"a.test", "/elsewhere", off) == \
        b"a=1; Domain=internal.svc; Path=/in"
    assert _fallback_cookie(s, b"other.test", "/x", off) == want
    # Without the keys, nothing is rewritten.
    assert _fallback_cookie(ProxySettings(), b"other.test", "/x") == \
        b"a=1; Domain=internal.svc; Path=/in"


# ------------------------------------------------ use-gzip x an app's one-pass header iterable
@pytest.mark.parametrize("ct,compressed", [(b"image/png", False), (b"text/html", True)])
def test_gzip_keeps_an_apps_generator_headers(ct: bytes, compressed: bool) -> None:
    # www.rst allows any iterable of headers (IngressASGI's _Reply reads a generator once and
    # hands on a list). The gzip filter read the generator to decide, then passed the spent
    # generator on when it did not compress: the response went out without any header.
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200,
                    "headers": (h for h in [(b"content-type", ct), (b"x-a", b"1")])})
        await send({"type": "http.response.body", "body": BODY})

    for s in (ProxySettings(use_gzip=True),
              ProxySettings(use_gzip=True, hide_headers=("X-Hidden",))):
        sent = _asgi(_docs(), s, app)
        got = _asgi_headers(sent)
        assert (b"content-type", ct) in got and (b"x-a", b"1") in got, got
        assert ((b"content-encoding", b"gzip") in got) is compressed
        body = _asgi_body(sent)
        assert (zlib.decompress(body, 31) if compressed else body) == BODY


# ------------------------------------------------------ block-user-agents x older features
def test_block_answers_before_auth_limits_and_logging_keys_in_core_and_asgi() -> None:
    # nginx.tmpl: "if ($block_ua) { return 403; }" in the server block (server rewrite phase):
    # before the location's auth_request (the auth service never sees a blocked client),
    # limit_req (preaccess: not counted) and the proxying; the request is logged once (its
    # own line, skip-access-log-urls holding for it).
    ann = {"nginx.ingress.kubernetes.io/auth-url": "http://127.0.0.1:1/auth",
           "nginx.ingress.kubernetes.io/limit-rps": "1"}
    docs = _docs(ann)
    s = ProxySettings(block_user_agents=("~*bot",), skip_access_log_urls=("/quiet",))
    pair = ProxyPair(router=Router(parse_manifests(docs)), settings=s)
    for _ in range(3):  # (limit-rps 1, burst 5: three blocked ones would count if counted)
        out = pair.send(b"GET /x HTTP/1.1\r\nHost: example.test\r\nUser-Agent: BadBot\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 403 ")
    out = pair.send(b"GET /quiet HTTP/1.1\r\nHost: example.test\r\nUser-Agent: a bot\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 403 ")
    assert pair.opens == []  # neither the auth service nor the backend was contacted
    assert [(r.status, r.access_log) for r in pair.records] == [(403, True)] * 3 + [(403, False)]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("a blocked request reached the app")

    sent = _asgi(docs, s, app, [(b"user-agent", b"BadBot")])
    assert sent[0]["status"] == 403


# ------------------------------------------------- use-gzip x a refused WebSocket handshake
REFUSAL = b"<html>no websocket for you</html>" * 12  # 408 bytes of text/html


def test_gzip_compresses_a_refused_websocket_handshake_in_core_and_asgi() -> None:
    # An upgrade the backend refuses with an ordinary response (a 403 page): nginx proxies it
    # as any response, through its gzip filter (the handshake's Accept-Encoding taking gzip);
    # the core did. IngressASGI passed the app's websocket.http.response refusal uncompressed
    # (its gzip filter was on http scopes only), and without its Vary.
    s = ProxySettings(use_gzip=True)
    docs = _docs()

    def up(request: Any, got: bytes, u: Any) -> Reply:
        return Reply(b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/html\r\nContent-Length: %d"
                     b"\r\n\r\n%s" % (len(REFUSAL), REFUSAL))

    out = _core(docs, s, b"GET /ws HTTP/1.1\r\nHost: example.test\r\nUpgrade: websocket\r\n"
                b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                b"Sec-WebSocket-Version: 13\r\nAccept-Encoding: gzip\r\n\r\n", up)
    core = _head_lines(out)
    assert out.startswith(b"HTTP/1.1 403 ")
    assert zlib.decompress(_dechunk(out.split(b"\r\n\r\n", 1)[1]), 31) == REFUSAL

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.http.response.start", "status": 403,
                    "headers": [(b"content-type", b"text/html")]})
        await send({"type": "websocket.http.response.body", "body": REFUSAL})

    asgi_app = IngressASGI(parse_manifests(docs), {"default/web": app},
                           settings=ProxySettings(use_gzip=True, hide_headers=("X-H",)))
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(m: dict[str, Any]) -> None:
        sent.append(m)

    scope = {"type": "websocket", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "scheme": "ws", "path": "/ws", "raw_path": b"/ws", "query_string": b"",
             "root_path": "", "headers": [(b"host", b"example.test"),
                                          (b"accept-encoding", b"gzip")],
             "client": ("127.0.0.1", 5555), "server": ("127.0.0.1", 80), "subprotocols": [],
             "extensions": {"websocket.http.response": {}}}
    asyncio.run(asgi_app(scope, receive, send))
    assert sent[0]["type"] == "websocket.http.response.start" and sent[0]["status"] == 403
    asgi = _asgi_headers(sent)
    for got in (core, asgi):
        assert (b"content-encoding", b"gzip") in got and (b"vary", b"Accept-Encoding") in got
    assert zlib.decompress(_asgi_body(sent), 31) == REFUSAL
