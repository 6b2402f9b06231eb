"""A 101 Switching Protocols answer gets this hop's added headers and the response rewrites.

nginx: ngx_http_upstream_upgrade sends the 101 through the header filters
(``ngx_http_send_header``), so headers-more's ``more_set_headers`` (the ConfigMap's
add-headers, the location's CORS and custom-headers; no ``-s``: every status) set their headers
on it; ngx_http_proxy_process_header runs ``proxy_redirect`` / ``proxy_cookie_*`` on every
upstream head, a 101's too. The core (``_on_switch``) and IngressASGI (``websocket.accept``)
agree.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ingresslib import IngressASGI, Router, parse_manifests
from ingresslib.proxy import ProxySettings
from ingresslib.proxy._annotations import PREFIX

from _proxy_harness import WEB_SERVICE_YAML, ProxyPair, Reply, ingress_yaml

P = PREFIX
UPGRADE = (b"GET /x HTTP/1.1\r\nHost: example.test\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\nOrigin: https://app.test\r\n\r\n")
SWITCH = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          b"Set-Cookie: s=1; Path=/; Domain=backend.internal\r\n"
          b"Location: http://backend.internal/ws\r\n\r\n")
ANNOTATIONS = {P + "enable-cors": "true", P + "cors-allow-origin": "https://app.test",
               P + "proxy-cookie-path": "/ /app/",
               P + "proxy-cookie-domain": "backend.internal example.test",
               P + "proxy-redirect-from": "http://backend.internal/",
               P + "proxy-redirect-to": "https://example.test/"}
GLOBAL = """---
apiVersion: v1
kind: ConfigMap
metadata: {name: global, namespace: ingress}
data: {"X-Site": "main"}
"""


def _docs(annotations: dict[str, str]) -> str:
    return ingress_yaml("web", "example.test", annotations) + GLOBAL + WEB_SERVICE_YAML


def headers_of(out: bytes) -> dict[bytes, list[bytes]]:
    found: dict[bytes, list[bytes]] = {}
    for line in out.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        found.setdefault(name.strip().lower(), []).append(value.strip())
    return found


def _proxy(annotations: dict[str, str], settings_: ProxySettings) -> dict[bytes, list[bytes]]:
    p = ProxyPair(router=Router(parse_manifests(_docs(annotations))), settings=settings_,
                  app=lambda req, body, up: Reply(SWITCH))
    out = p.send(UPGRADE)
    assert out.startswith(b"HTTP/1.1 101 ")
    return headers_of(out)


def _asgi(annotations: dict[str, str], settings_: ProxySettings) -> dict[bytes, list[bytes]]:
    sent: list[dict[str, Any]] = []

    async def backend(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept", "headers": [
            (b"set-cookie", b"s=1; Path=/; Domain=backend.internal"),
            (b"location", b"http://backend.internal/ws")]})

    async def receive() -> Any:
        return {"type": "websocket.connect"}

    async def send(m: Any) -> None:
        sent.append(dict(m))

    app = IngressASGI(Router(parse_manifests(_docs(annotations))),
                      backends={"default/web": backend}, settings=settings_)
    scope = {"type": "websocket", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "scheme": "ws", "path": "/x", "raw_path": b"/x", "query_string": b"",
             "root_path": "", "headers": [(b"host", b"example.test"),
                                          (b"origin", b"https://app.test")],
             "client": ("10.0.0.9", 5000), "server": ("127.0.0.1", 80), "subprotocols": []}
    asyncio.run(app(scope, receive, send))
    assert sent[0]["type"] == "websocket.accept"
    found: dict[bytes, list[bytes]] = {}
    for n, v in sent[0].get("headers") or ():
        found.setdefault(bytes(n).lower(), []).append(bytes(v))
    return found


ADD = ProxySettings(add_headers="ingress/global")


def test_core_101_gets_cors_and_add_headers() -> None:
    h = _proxy(ANNOTATIONS, ADD)
    assert h[b"access-control-allow-origin"] == [b"https://app.test"]
    assert h[b"x-site"] == [b"main"]
    assert h[b"connection"] == [b"upgrade"] and h[b"upgrade"] == [b"websocket"]


def test_core_101_cookie_and_location_rewritten() -> None:
    h = _proxy(ANNOTATIONS, ProxySettings())
    assert h[b"set-cookie"] == [b"s=1; Path=/app/; Domain=example.test"]
    assert h[b"location"] == [b"https://example.test/ws"]


def test_core_101_custom_headers() -> None:
    docs_cm = """---
apiVersion: v1
kind: ConfigMap
metadata: {name: extra, namespace: default}
data: {"X-Custom": "yes"}
"""
    annotations = {P + "custom-headers": "default/extra"}
    p = ProxyPair(router=Router(parse_manifests(_docs(annotations) + docs_cm)),
                  settings=ProxySettings(global_allowed_response_headers=("X-Custom",)),
                  app=lambda req, body, up: Reply(SWITCH))
    out = p.send(UPGRADE)
    assert out.startswith(b"HTTP/1.1 101 ")
    assert headers_of(out).get(b"x-custom") == [b"yes"]


def test_core_101_never_says_connection_close() -> None:
    # keep-alive-requests 1 would end a plain response's connection: a 101 keeps its
    # "Connection: upgrade" only.
    h = _proxy(ANNOTATIONS, ProxySettings(add_headers="ingress/global", keep_alive_requests=1))
    assert h[b"connection"] == [b"upgrade"]


def test_asgi_accept_gets_cors_and_add_headers() -> None:
    h = _asgi(ANNOTATIONS, ADD)
    assert h[b"access-control-allow-origin"] == [b"https://app.test"]
    assert h[b"x-site"] == [b"main"]


def test_asgi_accept_cookie_and_location_rewritten() -> None:
    h = _asgi(ANNOTATIONS, ProxySettings())
    assert h[b"set-cookie"] == [b"s=1; Path=/app/; Domain=example.test"]
    assert h[b"location"] == [b"https://example.test/ws"]


def test_core_and_asgi_agree_on_a_101() -> None:
    core, via = _proxy(ANNOTATIONS, ADD), _asgi(ANNOTATIONS, ADD)
    for name in (b"access-control-allow-origin", b"x-site", b"set-cookie", b"location"):
        assert core[name] == via[name], name


# --- custom-http-errors: the error fetch's retries are nginx's defaults -------------------------
# nginx.tmpl writes ``location @custom_<upstream>_<code>`` (the CUSTOM_ERRORS template) in the
# server block and ``proxy_next_upstream`` / ``_tries`` / ``_timeout`` only inside each
# ``location <path>``: the named location retries on ``error timeout`` (nginx's default), with
# no tries limit, whatever the intercepted location's proxy-next-upstream says.

import h11  # noqa: E402

from _proxy_harness import FakeUpstream  # noqa: E402

ERR_ANN = {P + "default-backend": "errors", P + "custom-http-errors": "404"}
WEB = ("10.0.0.1", 80)
ERRS = (("10.9.0.1", 9090), ("10.9.0.2", 9090))


def _service(name: str, port: int, target: int, endpoints: tuple[str, ...]) -> str:
    eps = ", ".join(f"{{addresses: [{a}], conditions: {{ready: true}}}}" for a in endpoints)
    return f"""
---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec: {{ports: [{{name: http, port: {port}, targetPort: {target}}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-1, namespace: default, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: [{{name: http, port: {target}}}]
endpoints: [{eps}]
"""


def _error_docs(extra: dict[str, str]) -> str:
    return (ingress_yaml("site", "a.test", {**ERR_ANN, **extra})
            + _service("web", 80, 80, ("10.0.0.1",))
            + _service("errors", 8081, 9090, ("10.9.0.1", "10.9.0.2")))


def _error_app(error_status: int) -> Any:
    def app(request: h11.Request, data: bytes, up: FakeUpstream) -> Reply:
        body = b"EP" if up.endpoint in ERRS else b"UP"
        status = error_status if up.endpoint in ERRS else 404
        return Reply(b"HTTP/1.1 %d X\r\nContent-Length: 2\r\n\r\n%s" % (status, body))
    return app


GET_A = b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n"


def test_error_fetch_does_not_retry_its_own_404_on_the_locations_http_404() -> None:
    p = ProxyPair(router=Router(parse_manifests(_error_docs(
        {P + "proxy-next-upstream": "error timeout http_404"}))), app=_error_app(404))
    out = p.send(GET_A)
    assert out.startswith(b"HTTP/1.1 404 ") and out.endswith(b"EP")
    eps = [u.endpoint for u in p.upstreams]
    assert eps[0] == WEB and len(eps) == 2 and eps[1] in ERRS
    assert p.records[0].upstream_statuses == (404, 404)


def test_error_fetch_retries_a_refused_connect_when_the_location_says_off() -> None:
    for refused in ERRS:
        p = ProxyPair(router=Router(parse_manifests(_error_docs(
            {P + "proxy-next-upstream": "off"}))), app=_error_app(418), refuse={refused})
        out = p.send(GET_A)
        assert out.startswith(b"HTTP/1.1 418 ") and out.endswith(b"EP"), refused
        assert p.records[0].status == 418


def test_error_fetch_has_no_tries_limit_of_the_location() -> None:
    # proxy-next-upstream-tries 1 on the location: the error fetch still moves on (tries 0).
    for refused in ERRS:
        p = ProxyPair(router=Router(parse_manifests(_error_docs(
            {P + "proxy-next-upstream-tries": "1"}))), app=_error_app(418), refuse={refused})
        assert p.send(GET_A).startswith(b"HTTP/1.1 418 "), refused
