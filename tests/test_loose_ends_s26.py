"""Loose ends of session 25 (session 26, brief LE).

- ``upstream-hash-by-use-hostname``: ingress-nginx's balancer/chash.lua ``build_node_map`` keys
  the ring by ``endpoint.hostname`` ("if use_hostname then id = endpoint.hostname end"), the
  EndpointSlice endpoint's ``hostname`` (controller/endpointslices.go "Hostname:
  ep.Hostname"): a StatefulSet pod that comes back with another IP keeps its keys.
- HSTS on a WebSocket 101: nginx.tmpl's HSTS is a header filter (``if ($scheme = https) {
  more_set_headers "Strict-Transport-Security: ..." }`` in the location, later
  ``lua_ingress.header()`` in ``header_filter_by_lua_block``), headers-more applies a
  ``more_set_headers`` without ``-s`` to every status, and ngx_http_upstream_send_response
  sends a 101 through the header filters (``ngx_http_send_header``) before
  ``ngx_http_upstream_upgrade``.
- CORS on app-root's redirect and on a 413 (no change: checks that the core and IngressASGI
  answer as nginx does): app-root's ``if ($uri = /) { return 302 ... }`` is in the server
  block, before any location, so the location's CORS ``more_set_headers`` never apply; a
  declared ``Content-Length`` over ``client_max_body_size`` is refused in nginx's find-config
  phase, before the location's rewrite phase sets ``$cors`` (``if ($http_origin ~* ...) { set
  $cors 'true'; }``), so its 413 has no CORS either; a chunked body found too large while it
  is read (after the rewrite phase) gets them.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ingresslib import IngressASGI, Router, parse_manifests
from ingresslib.proxy import ProxySettings
from ingresslib.proxy._annotations import IMPLEMENTED, PREFIX, parse_route_options

from _proxy_harness import WEB_SERVICE_YAML, ProxyPair, Reply, ingress_yaml

P = PREFIX


def headers_of(out: bytes) -> dict[bytes, list[bytes]]:
    found: dict[bytes, list[bytes]] = {}
    for line in out.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        found.setdefault(name.strip().lower(), []).append(value.strip())
    return found


def status_of(out: bytes) -> int:
    return int(out.split(b" ", 2)[1])


# --- upstream-hash-by-use-hostname ------------------------------------------------------------

def _stateful_docs(pods: dict[str, str], use_hostname: str | None) -> str:
    ann = {P + "upstream-hash-by": "$request_uri"}
    if use_hostname is not None:
        ann[P + "upstream-hash-by-use-hostname"] = use_hostname
    eps = ", ".join(f"{{addresses: [{ip}], hostname: {name}, conditions: {{ready: true}}}}"
                    for name, ip in pods.items())
    return ingress_yaml("web", "example.test", ann) + f"""
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: default}}
spec: {{ports: [{{port: 80}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: web-1, namespace: default, labels: {{kubernetes.io/service-name: web}}}}
addressType: IPv4
ports: [{{port: 80}}]
endpoints: [{eps}]
"""


def _owners(pods: dict[str, str], use_hostname: str | None) -> list[str]:
    """The pod (host name) each of 60 keys goes to."""
    by_ip = {ip: name for name, ip in pods.items()}
    router = Router(parse_manifests(_stateful_docs(pods, use_hostname)))
    out = []
    for k in range(60):
        d = router.route("GET", "example.test", f"/k{k}")
        assert d is not None and d.endpoint is not None
        out.append(by_ip[d.endpoint[0]])
    return out


BEFORE = {"web-0": "10.0.0.1", "web-1": "10.0.0.2", "web-2": "10.0.0.3"}
# The pods restarted: each came back with another pod's old IP.
AFTER = {"web-0": "10.0.0.3", "web-1": "10.0.0.1", "web-2": "10.0.0.2"}


def test_use_hostname_keeps_each_key_on_its_pod_across_new_ips() -> None:
    before = _owners(BEFORE, "true")
    assert len(set(before)) == 3  # the keys spread over the three pods
    assert _owners(AFTER, "true") == before


def test_without_use_hostname_the_ring_follows_the_ips() -> None:
    # The default (and "false", or a value strconv.ParseBool refuses): ip:port ids, as before.
    for value in (None, "false", "yes"):
        before = _owners(BEFORE, value)
        after = _owners(AFTER, value)
        assert before != after
        by_ip_before = [BEFORE[n] for n in before]
        by_ip_after = [AFTER[n] for n in after]
        assert by_ip_before == by_ip_after


def test_use_hostname_endpoint_without_hostname_keeps_its_address_id() -> None:
    docs = _stateful_docs(BEFORE, "true").replace(", hostname: web-2", "")
    router = Router(parse_manifests(docs))
    seen = {d.endpoint for d in (router.route("GET", "example.test", f"/k{k}")
                                 for k in range(60)) if d is not None}
    assert ("10.0.0.3", 80) in seen and len(seen) == 3


def test_endpoint_set_carries_the_hostnames() -> None:
    from ingresslib._endpoints import EndpointIndex
    from ingresslib import parse_manifests as pm

    index = EndpointIndex(pm(_stateful_docs(BEFORE, "true")))
    eps = index.resolve("default", "web", 80)
    assert eps.endpoints == (("10.0.0.1", 80), ("10.0.0.2", 80), ("10.0.0.3", 80))
    assert eps.hostnames == ("web-0", "web-1", "web-2")
    plain = EndpointIndex(pm(WEB_SERVICE_YAML)).resolve("default", "web", 80)
    assert plain.hostnames == ()


def test_use_hostname_is_implemented() -> None:
    assert "upstream-hash-by-use-hostname" in IMPLEMENTED
    opts = parse_route_options({P + "upstream-hash-by": "$uri",
                                P + "upstream-hash-by-use-hostname": "true"}, "/",
                               ProxySettings())
    assert not any("upstream-hash-by-use-hostname" in w for w in opts.warnings)


# --- HSTS on a 101 ----------------------------------------------------------------------------

UPGRADE = (b"GET /x HTTP/1.1\r\nHost: example.test\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\n\r\n")
SWITCH = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
HSTS = b"max-age=31536000; includeSubDomains"


def _switch(tls: bool, reply: bytes = SWITCH, settings: ProxySettings | None = None
            ) -> dict[bytes, list[bytes]]:
    docs = ingress_yaml("web", "example.test", tls=True) + WEB_SERVICE_YAML
    p = ProxyPair(router=Router(parse_manifests(docs)), tls=tls, settings=settings,
                  app=lambda req, body, up: Reply(reply))
    out = p.send(UPGRADE)
    assert out.startswith(b"HTTP/1.1 101 ")
    return headers_of(out)


def test_core_101_over_tls_gets_hsts() -> None:
    assert _switch(True)[b"strict-transport-security"] == [HSTS]


def test_core_101_hsts_rules_as_any_answer() -> None:
    # Not over plain HTTP, not with hsts off, and the upstream's own kept (not doubled).
    assert b"strict-transport-security" not in _switch(False)
    assert b"strict-transport-security" not in _switch(True, settings=ProxySettings(hsts=False))
    own = SWITCH.replace(b"\r\n\r\n", b"\r\nStrict-Transport-Security: max-age=5\r\n\r\n")
    assert _switch(True, own)[b"strict-transport-security"] == [b"max-age=5"]


# --- CORS on app-root and 413 (as nginx: no change) --------------------------------------------

CORS = {P + "enable-cors": "true", P + "proxy-body-size": "4"}


def _pair(annotations: dict[str, str]) -> ProxyPair:
    docs = ingress_yaml("web", "example.test", annotations) + WEB_SERVICE_YAML
    return ProxyPair(router=Router(parse_manifests(docs)))


def test_core_413_of_a_declared_length_has_no_cors_a_chunked_one_has() -> None:
    out = _pair(CORS).send(b"POST /x HTTP/1.1\r\nHost: example.test\r\nOrigin: https://a.test"
                           b"\r\nContent-Length: 10\r\n\r\n")
    assert status_of(out) == 413 and b"access-control" not in out.lower()
    out = _pair(CORS).send(b"POST /x HTTP/1.1\r\nHost: example.test\r\nOrigin: https://a.test"
                           b"\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n")
    assert status_of(out) == 413
    assert headers_of(out)[b"access-control-allow-origin"] == [b"*"]


def test_core_app_root_redirect_has_no_cors() -> None:
    out = _pair({**CORS, P + "app-root": "/app"}).send(
        b"GET / HTTP/1.1\r\nHost: example.test\r\nOrigin: https://a.test\r\n\r\n")
    assert status_of(out) == 302 and b"access-control" not in out.lower()


def _asgi_http(annotations: dict[str, str], method: str, path: str,
               extra: list[tuple[bytes, bytes]], bodies: list[bytes]) -> tuple[int, Any]:
    async def backend(scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"app"})

    app = IngressASGI(parse_manifests(ingress_yaml("web", "example.test", annotations)),
                      backends={"default/web": backend})
    sent: list[dict[str, Any]] = []
    queue = [{"type": "http.request", "body": b, "more_body": i < len(bodies) - 1}
             for i, b in enumerate(bodies)]

    async def receive() -> Any:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(m: Any) -> None:
        sent.append(dict(m))

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "root_path": "", "query_string": b"", "client": ("10.1.1.1", 5000),
             "server": ("127.0.0.1", 80),
             "headers": [(b"host", b"example.test"), (b"origin", b"https://a.test"), *extra]}
    asyncio.run(app(scope, receive, send))
    found: dict[bytes, list[bytes]] = {}
    for n, v in sent[0].get("headers") or ():
        found.setdefault(bytes(n).lower(), []).append(bytes(v))
    return sent[0]["status"], found


def test_asgi_413_and_app_root_cors_as_the_core() -> None:
    status, h = _asgi_http(CORS, "POST", "/x", [(b"content-length", b"10")], [b"0123456789"])
    assert status == 413 and b"access-control-allow-origin" not in h
    status, h = _asgi_http(CORS, "POST", "/x", [(b"transfer-encoding", b"chunked")],
                           [b"01234", b"56789"])
    assert status == 413 and h[b"access-control-allow-origin"] == [b"*"]
    status, h = _asgi_http({**CORS, P + "app-root": "/app"}, "GET", "/", [], [b""])
    assert status == 302 and b"access-control-allow-origin" not in h


# --- the ConfigMap key custom-http-errors ------------------------------------------------------
# configmap.go ReadConfig (splitAndTrimSpace, strconv.Atoi, "%v is not a valid http code"
# skipped); nginx.tmpl's http block: "proxy_intercept_errors on;" and "error_page <code> =
# @custom_upstream-default-backend_<code>;", inherited by every location that writes no
# error_page of its own (a location's custom-http-errors annotation overrides it).

WEB = ("10.0.0.1", 80)
ERR = ("10.9.0.1", 9090)


def _service(name: str, port: int, target: int, address: str) -> str:
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
endpoints: [{{addresses: [{address}], conditions: {{ready: true}}}}]
"""


def _site(annotations: dict[str, str]) -> str:
    return (ingress_yaml("site", "a.test", annotations) + _service("web", 80, 80, "10.0.0.1")
            + _service("errors", 8081, 9090, "10.9.0.1"))


DFLT = {P + "default-backend": "errors"}


def _errors_app(status: int) -> Any:
    def app(request: Any, data: bytes, up: Any) -> Reply:
        if up.endpoint == ERR:
            return Reply(b"HTTP/1.1 418 Teapot\r\nContent-Length: 4\r\n\r\npage")
        return Reply(b"HTTP/1.1 %d Up\r\nContent-Length: 2\r\n\r\nup" % status)
    return app


def _global(codes: str) -> ProxySettings:
    from ingresslib.proxy import parse_config_data

    return parse_config_data({"custom-http-errors": codes}).settings


def _core_errors(annotations: dict[str, str], status: int, settings: ProxySettings
                 ) -> tuple[bytes, list[Any]]:
    p = ProxyPair(router=Router(parse_manifests(_site(annotations))), settings=settings,
                  app=_errors_app(status))
    out = p.send(b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n")
    return out, p.upstreams


def test_configmap_key_is_read_as_configmap_go() -> None:
    from ingresslib import ValidationError
    from ingresslib.proxy import parse_config_data

    cfg = parse_config_data({"custom-http-errors": " 503, 404,abc,, 404 "})
    assert cfg.settings.custom_http_errors == "404,503"
    assert any("'abc' is not a valid http code" in w for w in cfg.warnings)
    assert any("default-backend annotation" in w for w in cfg.warnings)
    assert not any("does not implement" in w for w in cfg.warnings)
    assert parse_config_data({"custom-http-errors": ""}).settings.custom_http_errors == ""
    # nginx's error_page takes 300-599 only: nginx -t fails, the ConfigMap is refused
    for bad in ("200", "404,600"):
        try:
            parse_config_data({"custom-http-errors": bad})
        except ValidationError:
            pass
        else:
            raise AssertionError(bad)
    for bad in ("404, 503", "abc", "600"):
        try:
            ProxySettings(custom_http_errors=bad)
        except ValueError:
            pass
        else:
            raise AssertionError(bad)


def test_core_configmap_codes_intercepted_where_a_default_backend_annotation_is() -> None:
    out, ups = _core_errors(DFLT, 404, _global("404"))
    assert out.startswith(b"HTTP/1.1 418 ") and out.endswith(b"page")
    assert [u.endpoint for u in ups] == [WEB, ERR]
    head = bytes(ups[1].raw).split(b"\r\n\r\n")[0].split(b"\r\n")
    assert head[0] == b"GET / HTTP/1.1" and b"x-code: 404" in head
    # not listed: passes; no ConfigMap key: passes (as before)
    out, ups = _core_errors(DFLT, 500, _global("404"))
    assert out.startswith(b"HTTP/1.1 500 ") and len(ups) == 1
    out, ups = _core_errors(DFLT, 404, ProxySettings())
    assert out.startswith(b"HTTP/1.1 404 ") and len(ups) == 1


def test_core_annotation_overrides_the_configmap_codes() -> None:
    ann = {**DFLT, P + "custom-http-errors": "503"}
    out, ups = _core_errors(ann, 404, _global("404"))
    assert out.startswith(b"HTTP/1.1 404 ") and len(ups) == 1
    out, _ = _core_errors(ann, 503, _global("404"))
    assert out.startswith(b"HTTP/1.1 418 ")
    # an annotation ignored as invalid leaves the location the http block's error_page lines
    out, _ = _core_errors({**DFLT, P + "custom-http-errors": "404, 503"}, 404, _global("404"))
    assert out.startswith(b"HTTP/1.1 418 ")


def test_core_configmap_codes_intercept_despite_disable_proxy_intercept_errors() -> None:
    # The annotation only leaves out the location's "proxy_intercept_errors on": the http
    # block's is inherited.
    ann = {**DFLT, P + "disable-proxy-intercept-errors": "true"}
    out, _ = _core_errors(ann, 404, _global("404"))
    assert out.startswith(b"HTTP/1.1 418 ")
    out, _ = _core_errors({**ann, P + "custom-http-errors": "404"}, 404, ProxySettings())
    assert out.startswith(b"HTTP/1.1 404 ")


def test_core_configmap_codes_without_default_backend_pass() -> None:
    out, ups = _core_errors({}, 404, _global("404"))
    assert out.startswith(b"HTTP/1.1 404 ") and len(ups) == 1


def test_asgi_configmap_codes_as_the_core() -> None:
    calls: list[str] = []

    def app(name: str, status: int) -> Any:
        async def backend(scope: Any, receive: Any, send: Any) -> None:
            while (await receive()).get("more_body"):
                pass
            calls.append(name)
            await send({"type": "http.response.start", "status": status, "headers": []})
            await send({"type": "http.response.body", "body": name.encode()})
        return backend

    def run(annotations: dict[str, str], settings: ProxySettings) -> int:
        calls.clear()
        ingress = IngressASGI(parse_manifests(_site(annotations)),
                              {"default/web": app("web", 404),
                               "default/errors": app("errors", 418)}, settings=settings)
        sent: list[Any] = []

        async def receive() -> Any:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(m: Any) -> None:
            sent.append(m)

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "GET", "scheme": "http", "path": "/x", "raw_path": b"/x",
                 "query_string": b"", "root_path": "", "headers": [(b"host", b"a.test")],
                 "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80)}
        asyncio.run(ingress(scope, receive, send))
        return int(sent[0]["status"])

    assert run(DFLT, _global("404")) == 418 and calls == ["web", "errors"]
    assert run(DFLT, ProxySettings()) == 404 and calls == ["web"]
    assert run({**DFLT, P + "custom-http-errors": "503"}, _global("404")) == 404
    assert run({}, _global("404")) == 404 and calls == ["web"]


# --- the error page's answer has none of the location's more_set_headers ----------------------
# nginx.tmpl's CUSTOM_ERRORS: "location @custom_<upstream>_<code>" sits in the server block;
# ngx_http_named_location sets r->loc_conf to it, so headers-more's filter runs with its
# configuration: no CORS, no custom-headers (the location's); the http block's add-headers
# are inherited.

EXTRA_CM = """
---
apiVersion: v1
kind: ConfigMap
metadata: {name: extra, namespace: default}
data: {"X-Custom": "yes"}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: global, namespace: ingress}
data: {"X-Site": "main"}
"""
PAGE_ANN = {**DFLT, P + "custom-http-errors": "404", P + "enable-cors": "true",
            P + "custom-headers": "default/extra"}
PAGE_SETTINGS = ProxySettings(global_allowed_response_headers=("X-Custom",),
                              add_headers="ingress/global")


def test_core_error_page_answer_has_no_cors_nor_custom_headers() -> None:
    docs = _site(PAGE_ANN) + EXTRA_CM
    p = ProxyPair(router=Router(parse_manifests(docs)), settings=PAGE_SETTINGS,
                  app=_errors_app(404))
    out = p.send(b"GET /x HTTP/1.1\r\nHost: a.test\r\nOrigin: https://a.test\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 418 ")
    h = headers_of(out)
    assert b"access-control-allow-origin" not in h and b"x-custom" not in h
    assert h[b"x-site"] == [b"main"]
    # the location's own answers keep them
    p = ProxyPair(router=Router(parse_manifests(docs)), settings=PAGE_SETTINGS,
                  app=_errors_app(500))
    h = headers_of(p.send(b"GET /x HTTP/1.1\r\nHost: a.test\r\nOrigin: https://a.test\r\n\r\n"))
    assert h[b"access-control-allow-origin"] == [b"*"] and h[b"x-custom"] == [b"yes"]


def test_asgi_error_page_answer_has_no_cors_nor_custom_headers() -> None:
    def app(name: str, status: int) -> Any:
        async def backend(scope: Any, receive: Any, send: Any) -> None:
            while (await receive()).get("more_body"):
                pass
            await send({"type": "http.response.start", "status": status, "headers": []})
            await send({"type": "http.response.body", "body": name.encode()})
        return backend

    def run(status: int) -> tuple[int, dict[bytes, list[bytes]]]:
        ingress = IngressASGI(parse_manifests(_site(PAGE_ANN) + EXTRA_CM),
                              {"default/web": app("web", status),
                               "default/errors": app("errors", 418)}, settings=PAGE_SETTINGS)
        sent: list[Any] = []

        async def receive() -> Any:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(m: Any) -> None:
            sent.append(m)

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "GET", "scheme": "http", "path": "/x", "raw_path": b"/x",
                 "query_string": b"", "root_path": "",
                 "headers": [(b"host", b"a.test"), (b"origin", b"https://a.test")],
                 "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80)}
        asyncio.run(ingress(scope, receive, send))
        found: dict[bytes, list[bytes]] = {}
        for n, v in sent[0].get("headers") or ():
            found.setdefault(bytes(n).lower(), []).append(bytes(v))
        return int(sent[0]["status"]), found

    status, h = run(404)
    assert status == 418
    assert b"access-control-allow-origin" not in h and b"x-custom" not in h
    assert h[b"x-site"] == [b"main"]
    status, h = run(500)
    assert status == 500
    assert h[b"access-control-allow-origin"] == [b"*"] and h[b"x-custom"] == [b"yes"]


def _asgi_accept(scheme: str, accept: dict[str, Any], settings: ProxySettings | None = None
                 ) -> list[dict[str, Any]]:
    async def backend(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send(accept)
        await send({"type": "websocket.send", "text": "hi"})

    async def receive() -> Any:
        return {"type": "websocket.connect"}

    sent: list[dict[str, Any]] = []

    async def send(m: Any) -> None:
        sent.append(dict(m))

    app = IngressASGI(Router(parse_manifests(ingress_yaml("web", "example.test", tls=True)
                                             + WEB_SERVICE_YAML)),
                      backends={"default/web": backend},
                      settings=settings if settings is not None else ProxySettings())
    scope = {"type": "websocket", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "scheme": scheme, "path": "/x", "raw_path": b"/x", "query_string": b"",
             "root_path": "", "headers": [(b"host", b"example.test")],
             "client": ("10.0.0.9", 5000), "server": ("127.0.0.1", 443), "subprotocols": []}
    asyncio.run(app(scope, receive, send))
    return sent


def _hsts_of(message: dict[str, Any]) -> list[bytes]:
    return [bytes(v) for n, v in message.get("headers") or ()
            if bytes(n).lower() == b"strict-transport-security"]


def test_asgi_wss_accept_gets_hsts_as_the_core() -> None:
    sent = _asgi_accept("wss", {"type": "websocket.accept"})
    assert sent[0]["type"] == "websocket.accept" and _hsts_of(sent[0]) == [HSTS]
    assert sent[1] == {"type": "websocket.send", "text": "hi"}
    own = {"type": "websocket.accept",
           "headers": [(b"Strict-Transport-Security", b"max-age=5")]}
    assert _hsts_of(_asgi_accept("wss", own)[0]) == [b"max-age=5"]
    assert _hsts_of(_asgi_accept("ws", {"type": "websocket.accept"})[0]) == []
    off = _asgi_accept("wss", {"type": "websocket.accept"}, ProxySettings(hsts=False))
    assert _hsts_of(off[0]) == []


# --- custom-headers on the 413 of a declared length -------------------------------------------
# ngx_http_core_find_config_phase finds the location (r->loc_conf is its configuration) and
# then refuses "client intended to send too large body": the 413 goes through headers-more's
# filter with the location's direct more_set_headers (custom-headers), not CORS's (in an "if"
# of the rewrite phase, which never ran); app-root's server-level 302 gets neither.

CUSTOM_413 = {P + "custom-headers": "default/extra", P + "proxy-body-size": "4",
              P + "enable-cors": "true"}
CUSTOM_SETTINGS = ProxySettings(global_allowed_response_headers=("X-Custom",))


def test_core_413_of_a_declared_length_carries_custom_headers_not_cors() -> None:
    docs = ingress_yaml("web", "example.test", CUSTOM_413) + WEB_SERVICE_YAML + EXTRA_CM
    p = ProxyPair(router=Router(parse_manifests(docs)), settings=CUSTOM_SETTINGS)
    out = p.send(b"POST /x HTTP/1.1\r\nHost: example.test\r\nOrigin: https://a.test\r\n"
                 b"Content-Length: 10\r\n\r\n")
    h = headers_of(out)
    assert status_of(out) == 413 and h[b"x-custom"] == [b"yes"]
    assert b"access-control-allow-origin" not in h
    docs = ingress_yaml("web", "example.test", {**CUSTOM_413, P + "app-root": "/app"}) \
        + WEB_SERVICE_YAML + EXTRA_CM
    p = ProxyPair(router=Router(parse_manifests(docs)), settings=CUSTOM_SETTINGS)
    out = p.send(b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n")
    assert status_of(out) == 302 and b"x-custom" not in out.lower()


def test_asgi_413_of_a_declared_length_carries_custom_headers_not_cors() -> None:
    async def backend(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("not reached")

    app = IngressASGI(parse_manifests(ingress_yaml("web", "example.test", CUSTOM_413)
                                      + EXTRA_CM),
                      backends={"default/web": backend}, settings=CUSTOM_SETTINGS)
    sent: list[dict[str, Any]] = []

    async def receive() -> Any:
        return {"type": "http.request", "body": b"0123456789", "more_body": False}

    async def send(m: Any) -> None:
        sent.append(dict(m))

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/x", "raw_path": b"/x",
             "root_path": "", "query_string": b"", "client": ("10.1.1.1", 5000),
             "server": ("127.0.0.1", 80),
             "headers": [(b"host", b"example.test"), (b"origin", b"https://a.test"),
                         (b"content-length", b"10")]}
    asyncio.run(app(scope, receive, send))
    h = {bytes(n).lower(): bytes(v) for n, v in sent[0].get("headers") or ()}
    assert sent[0]["status"] == 413 and h[b"x-custom"] == b"yes"
    assert b"access-control-allow-origin" not in h
