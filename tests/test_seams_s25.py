"""Session 25 (SM): where this session's new features meet, through the proxy core
(``Proxy.connection`` over a real Router) and through ``IngressASGI``.

The order is nginx's phases as ingress-nginx's nginx.tmpl writes the location (search corpus
"code", controller/template/nginx.tmpl ``location {{ $path }}``): the server's app-root
(server rewrite phase), then the location's rewrite phase -- ngx_http_rewrite_module's
directives (the CORS ``if``s with ``return 204`` for a preflight, ``return <code> <url>`` of
permanent-redirect) before ``rewrite_by_lua`` (lua-nginx-module postpones its rewrite handler
after the rewrite module's: ssl-redirect) -- then preaccess (``limit_req``, ``limit_conn``,
written by ``buildRateLimit``), access (allow/deny, ``auth_basic``), content (``proxy_pass``
with ``proxy_set_header Host {{ $location.UpstreamVhost }}``, ``proxy_redirect``,
``proxy_cookie_domain``, and for a ``custom-default-backend-`` upstream the X-Code headers).
The CORS headers are ``more_set_headers`` inside the ``if ($cors = "true")`` block: once the
``if`` matched, the request runs with that block's configuration, so headers-more (which by
default applies to every status) sets them on any answer of the location: a limit_req /
limit_conn refusal, a 401/403, a redirect, the custom default backend's answer.

Canary Ingresses' annotations of these features are ignored; their traffic goes through the
main Ingress's location (its limits, vhost and rewrites). A ``server-alias`` is another
``server_name`` of the same server: the same locations (rate limit zones per Ingress, CORS,
basic auth). A ``from-to-www-redirect`` twin that is also another server's alias stays the
redirect: ingress-nginx's ``buildRedirects`` compares only servers' Hostname, and nginx.tmpl
writes the redirect servers before the others, so nginx keeps the first ``server_name``
("conflicting server name ... ignored").
"""

from __future__ import annotations

import asyncio
from typing import Any

from ingresslib import IngressASGI, Router, parse_manifests
from ingresslib.proxy import OpenUpstream, Proxy, ProxySettings, SendDownstream

from _proxy_harness import (WEB_SERVICE_YAML, ProxyPair, Reply, ingress_yaml,
                            web_service_yaml)

P = "nginx.ingress.kubernetes.io/"
ORIGIN = "https://o.test"
SECRET = """
---
apiVersion: v1
kind: Secret
metadata: {name: pw, namespace: default}
stringData: {auth: "u:$apr1$x$y"}
"""


def _ann(**kw: str) -> dict[str, str]:
    return {P + k.replace("_", "-"): v for k, v in kw.items()}


def _svc(name: str, port: int, target: int, endpoints: tuple[str, ...]) -> str:
    """Service ``name`` with one port (and a ready endpoint per address)."""
    doc = f"""
---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec: {{ports: [{{name: http, port: {port}, targetPort: {target}}}]}}
"""
    if endpoints:
        eps = ", ".join(f"{{addresses: [{a}], conditions: {{ready: true}}}}" for a in endpoints)
        doc += f"""
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-1, namespace: default, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: [{{name: http, port: {target}}}]
endpoints: [{eps}]
"""
    return doc


def _pair(docs: str, **kw: Any) -> ProxyPair:
    return ProxyPair(router=Router(parse_manifests(docs)), **kw)


def _req(method: str = "GET", host: str = "a.test", path: str = "/x",
         origin: str | None = ORIGIN, extra: str = "") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}"
    if origin is not None:
        head += f"Origin: {origin}\r\n"
    return (head + "\r\n").encode()


def _status(out: bytes) -> int:
    return int(out.split(b" ", 2)[1])


def _headers(out: bytes) -> dict[bytes, list[bytes]]:
    found: dict[bytes, list[bytes]] = {}
    for line in out.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        found.setdefault(name.strip().lower(), []).append(value.strip())
    return found


def _upstream_head(raw: bytes) -> dict[bytes, list[bytes]]:
    return _headers(b"X 0 X\r\n" + raw.split(b"\r\n", 1)[1])


# --- IngressASGI driver ---------------------------------------------------------------------------

Seen = list[tuple[str, list[tuple[bytes, bytes]]]]


def _app(name: str, seen: Seen, status: int = 200,
         headers: list[tuple[bytes, bytes]] | None = None, fail: bool = False) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((name, [(bytes(k), bytes(v)) for k, v in scope["headers"]]))
        await send({"type": "http.response.start", "status": status,
                    "headers": list(headers or [])})
        if fail:
            raise RuntimeError("the app failed mid-body")
        await send({"type": "http.response.body", "body": name.encode()})
    return app


def _call(asgi: IngressASGI, method: str = "GET", host: str = "a.test", path: str = "/x",
          origin: str | None = ORIGIN, ip: str = "10.1.1.1"
          ) -> tuple[int, dict[bytes, list[bytes]]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [(b"host", host.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "headers": headers,
             "client": (ip, 5000), "server": ("127.0.0.1", 80)}
    try:
        asyncio.run(asgi(scope, receive, send))
    except RuntimeError:
        pass  # the failing app's error, once its response began
    found: dict[bytes, list[bytes]] = {}
    for n, v in sent[0].get("headers") or ():
        found.setdefault(bytes(n).lower(), []).append(bytes(v))
    return int(sent[0]["status"]), found


def _asgi(docs: str, apps: dict[str, Any], settings: ProxySettings | None = None
          ) -> IngressASGI:
    asgi = IngressASGI(parse_manifests(docs), apps, settings=settings)
    asgi.limit_clock = lambda: 0.0  # one instant: no bucket drains between requests
    return asgi


# --- rate limits and CORS -------------------------------------------------------------------------

LIMITED_CORS = _ann(enable_cors="true", cors_allow_origin=ORIGIN, limit_rps="1",
                    limit_burst_multiplier="1")


def test_core_rate_limit_refusal_carries_the_locations_cors_headers() -> None:
    p = _pair(ingress_yaml("a", "a.test", LIMITED_CORS) + WEB_SERVICE_YAML,
              settings=ProxySettings(limit_req_status_code=429))
    outs = [p.send(_req()) for _ in range(3)]
    assert [_status(o) for o in outs] == [200, 200, 429]
    assert _headers(outs[2])[b"access-control-allow-origin"] == [ORIGIN.encode()]
    assert _headers(outs[2])[b"access-control-allow-credentials"] == [b"true"]
    # an Origin the list does not allow: refused without the headers
    out = p.send(_req(origin="https://evil.test"))
    assert _status(out) == 429 and b"access-control" not in out.lower()
    # logged as the location's refusal: its rule and Service, no upstream
    rec = p.records[2]
    assert (rec.status, rec.service, rec.ingress, rec.upstreams) == (429, "web", "default/a", ())


def test_asgi_rate_limit_refusal_carries_the_locations_cors_headers() -> None:
    asgi = _asgi(ingress_yaml("a", "a.test", LIMITED_CORS) + WEB_SERVICE_YAML,
                 {"default/web": _app("web", [])}, ProxySettings(limit_req_status_code=429))
    got = [_call(asgi) for _ in range(3)]
    assert [s for s, _ in got] == [200, 200, 429]
    assert got[2][1][b"access-control-allow-origin"] == [ORIGIN.encode()]
    status, h = _call(asgi, origin="https://evil.test")
    assert status == 429 and b"access-control-allow-origin" not in h


def test_core_preflight_is_answered_before_the_rate_limit_and_not_counted() -> None:
    p = _pair(ingress_yaml("a", "a.test", LIMITED_CORS) + WEB_SERVICE_YAML)
    assert [_status(p.send(_req("OPTIONS"))) for _ in range(4)] == [204] * 4
    # the bucket is untouched: the burst is still whole
    assert [_status(p.send(_req())) for _ in range(3)] == [200, 200, 503]
    # a preflight after the bucket overflowed is still answered
    assert _status(p.send(_req("OPTIONS"))) == 204


def test_asgi_preflight_is_answered_before_the_rate_limit_and_not_counted() -> None:
    asgi = _asgi(ingress_yaml("a", "a.test", LIMITED_CORS) + WEB_SERVICE_YAML,
                 {"default/web": _app("web", [])})
    assert [_call(asgi, "OPTIONS")[0] for _ in range(4)] == [204] * 4
    assert [_call(asgi)[0] for _ in range(3)] == [200, 200, 503]
    assert _call(asgi, "OPTIONS")[0] == 204


def test_core_connection_limit_refusal_401_and_403_carry_cors() -> None:
    cases = (
        (_ann(limit_connections="0", limit_rpm="1", limit_burst_multiplier="1"), 503),
        (_ann(auth_type="basic", auth_secret="pw"), 401),
        (_ann(whitelist_source_range="10.0.0.0/8"), 403),
    )
    for ann, status in cases:
        p = _pair(ingress_yaml("a", "a.test", {**ann, **_ann(enable_cors="true")})
                  + WEB_SERVICE_YAML + SECRET)
        out = b""
        for _ in range(3):
            out = p.send(_req())
        assert _status(out) == status
        assert _headers(out)[b"access-control-allow-origin"] == [b"*"], ann


def test_core_body_over_the_limit_is_refused_before_the_rate_limit_counts_it() -> None:
    # client_max_body_size is checked in nginx's find_config phase: no preaccess, no CORS
    proxy = Proxy(Router(parse_manifests(
        ingress_yaml("a", "a.test", {**LIMITED_CORS, **_ann(proxy_body_size="10")})
        + WEB_SERVICE_YAML)), clock=None)
    statuses = []
    for extra in ("Content-Length: 100\r\n",) * 3 + ("",) * 3:
        conn = proxy.connection(("192.0.2.9", 4000), now=0.0)
        conn.start(0.0)
        acts = conn.receive_data(_req("POST", extra=extra), 0.0)
        sent = b"".join(a.data for a in acts if isinstance(a, SendDownstream))
        statuses.append(_status(sent) if sent else 0)
        if extra:
            assert b"access-control" not in sent.lower()
    # the 413s took nothing of the burst: two go upstream, the third is refused
    assert statuses == [413, 413, 413, 0, 0, 503]


# --- the default-backend annotation's Service with CORS, upstream-vhost, response rewrites --------

def _redirecting(request: Any, body: bytes, up: Any) -> Reply:
    return Reply(b"HTTP/1.1 302 Found\r\nLocation: http://internal.svc/login\r\n"
                 b"Set-Cookie: s=1; Domain=internal.svc; Path=/\r\nContent-Length: 0\r\n\r\n")


DB_ALL = _ann(default_backend="errors", enable_cors="true", upstream_vhost="internal.svc",
              proxy_redirect_from="http://internal.svc/", proxy_redirect_to="https://a.test/",
              proxy_cookie_domain="internal.svc a.test")
DB_DOCS = (ingress_yaml("site", "a.test", DB_ALL) + _svc("web", 80, 80, ())
           + _svc("errors", 8081, 9090, ("10.9.0.1",)))


def test_core_default_backend_request_and_answer_are_the_locations() -> None:
    p = _pair(DB_DOCS, app=_redirecting)
    out = p.send(_req(extra="Accept: text/html\r\n"))
    h = _headers(out)
    assert _status(out) == 302
    assert h[b"location"] == [b"https://a.test/login"]  # proxy_redirect
    assert h[b"set-cookie"] == [b"s=1; Domain=a.test; Path=/"]  # proxy_cookie_domain
    assert h[b"access-control-allow-origin"] == [b"*"]  # the location's CORS
    [up] = p.upstreams
    assert up.endpoint == ("10.9.0.1", 9090)
    sent = _upstream_head(bytes(up.raw))
    # the location's "proxy_set_header Host <upstream-vhost>" holds for the custom default
    # backend too; X-Forwarded-Host stays the client's ($best_http_host)
    assert sent[b"host"] == [b"internal.svc"]
    assert sent[b"x-forwarded-host"] == [b"a.test"]
    assert sent[b"x-code"] == [b"503"] and sent[b"x-service-name"] == [b"web"]
    # a preflight never reaches it
    out = p.send(_req("OPTIONS"))
    assert _status(out) == 204 and len(p.upstreams[0].requests) == 1


def test_asgi_default_backend_request_and_answer_are_the_locations() -> None:
    seen: Seen = []
    upstream = [(b"location", b"http://internal.svc/login"),
                (b"set-cookie", b"s=1; Domain=internal.svc; Path=/")]
    asgi = _asgi(DB_DOCS, {"default/web": _app("web", seen),
                           "default/errors": _app("errors", seen, 302, upstream)})
    status, h = _call(asgi)
    assert status == 302
    assert h[b"location"] == [b"https://a.test/login"]
    assert h[b"set-cookie"] == [b"s=1; Domain=a.test; Path=/"]
    assert h[b"access-control-allow-origin"] == [b"*"]
    [(name, headers)] = seen
    got = dict(headers)
    assert name == "errors"
    assert got[b"host"] == b"internal.svc" and got[b"x-forwarded-host"] == b"a.test"
    assert got[b"x-code"] == b"503"
    assert _call(asgi, "OPTIONS")[0] == 204 and len(seen) == 1


def test_core_default_backend_serves_the_mains_share_and_the_canary_its_own() -> None:
    # controller.go: the custom default backend's upstream is a DeepCopy of the rule's,
    # AlternativeBackends (the canary, merged before) included
    for weight, endpoint in (("100", ("10.0.0.9", 80)), ("0", ("10.9.0.1", 9090))):
        docs = (ingress_yaml("m", "a.test", _ann(default_backend="errors"))
                + _svc("web", 80, 80, ()) + _svc("errors", 8081, 9090, ("10.9.0.1",))
                + ingress_yaml("c", "a.test", _ann(canary="true", canary_weight=weight),
                               service="web2", created="2024-02-01T00:00:00Z")
                + web_service_yaml().replace("web", "web2").replace("10.0.0.1", "10.0.0.9"))
        p = _pair(docs)
        assert _status(p.send(_req(origin=None))) == 200
        assert [up.endpoint for up in p.upstreams] == [endpoint], weight


# --- canary traffic under the main Ingress's annotations ------------------------------------------

MAIN = _ann(limit_rps="1", limit_burst_multiplier="1", upstream_vhost="main.internal",
            proxy_redirect_from="http://up/", proxy_redirect_to="/")
CANARY = _ann(canary="true", canary_weight="100", upstream_vhost="canary.internal",
              limit_rps="100", proxy_redirect_from="http://up/",
              proxy_redirect_to="http://canary/")
CANARY_DOCS = (ingress_yaml("m", "a.test", MAIN) + WEB_SERVICE_YAML
               + ingress_yaml("c", "a.test", CANARY, service="web2",
                              created="2024-02-01T00:00:00Z")
               + web_service_yaml().replace("web", "web2").replace("10.0.0.1", "10.0.0.9"))


def test_core_canary_traffic_takes_the_mains_limit_vhost_and_redirect() -> None:
    def app(request: Any, body: bytes, up: Any) -> Reply:
        return Reply(b"HTTP/1.1 302 Found\r\nLocation: http://up/z\r\nContent-Length: 0\r\n\r\n")

    p = _pair(CANARY_DOCS, app=app)
    outs = [p.send(_req(origin=None)) for _ in range(3)]
    assert [_status(o) for o in outs] == [302, 302, 503]  # the main's limit-rps 1, burst 1
    assert _headers(outs[0])[b"location"] == [b"/z"]  # the main's proxy-redirect
    assert {up.endpoint for up in p.upstreams} == {("10.0.0.9", 80)}  # the canary served
    for up in p.upstreams:
        for request, _body in up.requests:
            assert dict(request.headers)[b"host"] == b"main.internal"


def test_asgi_canary_traffic_takes_the_mains_limit_vhost_and_redirect() -> None:
    seen: Seen = []
    moved = [(b"location", b"http://up/z")]
    asgi = _asgi(CANARY_DOCS, {"default/web": _app("web", seen, 302, moved),
                               "default/web2": _app("web2", seen, 302, moved)})
    got = [_call(asgi, origin=None) for _ in range(3)]
    assert [s for s, _ in got] == [302, 302, 503]
    assert got[0][1][b"location"] == [b"/z"]
    assert [name for name, _ in seen] == ["web2", "web2"]
    assert all(dict(h)[b"host"] == b"main.internal" for _, h in seen)


# --- server-alias ---------------------------------------------------------------------------------

def test_core_alias_shares_the_ingresss_zone_cors_and_basic_auth() -> None:
    alias = _ann(server_alias="b.test")
    p = _pair(ingress_yaml("a", "a.test", {**alias, **LIMITED_CORS}) + WEB_SERVICE_YAML)
    outs = [p.send(_req(host=h)) for h in ("a.test", "b.test", "b.test")]
    assert [_status(o) for o in outs] == [200, 200, 503]  # one zone: the Ingress's
    assert _headers(outs[2])[b"access-control-allow-origin"] == [ORIGIN.encode()]
    assert _status(p.send(_req("OPTIONS", host="b.test"))) == 204
    q = _pair(ingress_yaml("a", "a.test", {**alias, **_ann(auth_type="basic", auth_secret="pw")})
              + WEB_SERVICE_YAML + SECRET)
    assert _status(q.send(_req(host="b.test"))) == 401


def test_asgi_alias_shares_the_ingresss_zone_and_cors() -> None:
    asgi = _asgi(ingress_yaml("a", "a.test", {**_ann(server_alias="b.test"), **LIMITED_CORS})
                 + WEB_SERVICE_YAML, {"default/web": _app("web", [])})
    got = [_call(asgi, host=h) for h in ("a.test", "b.test", "b.test")]
    assert [s for s, _ in got] == [200, 200, 503]
    assert got[2][1][b"access-control-allow-origin"] == [ORIGIN.encode()]
    assert _call(asgi, "OPTIONS", host="b.test")[0] == 204


TWIN_DOCS = (ingress_yaml("a", "a.test", _ann(from_to_www_redirect="true"))
             + ingress_yaml("b", "b.test", _ann(server_alias="www.a.test"),
                            created="2024-02-01T00:00:00Z") + WEB_SERVICE_YAML)


def test_core_www_twin_stays_the_redirect_when_another_server_aliases_it() -> None:
    p = _pair(TWIN_DOCS)
    out = p.send(_req(host="www.a.test", path="/p", origin=None))
    assert _status(out) == 308 and _headers(out)[b"location"] == [b"http://a.test/p"]
    assert not p.upstreams
    assert _status(p.send(_req(host="b.test", origin=None))) == 200


def test_asgi_www_twin_stays_the_redirect_when_another_server_aliases_it() -> None:
    seen: Seen = []
    asgi = _asgi(TWIN_DOCS, {"default/web": _app("web", seen)})
    status, h = _call(asgi, host="www.a.test", path="/p", origin=None)
    assert status == 308 and h[b"location"] == [b"http://a.test/p"] and not seen
    assert _call(asgi, host="b.test", origin=None)[0] == 200


# --- limit-connections released however the request ends -----------------------------------------

def _enter(proxy: Proxy, now: float) -> tuple[Any, list[int], list[bytes]]:
    conn = proxy.connection(("192.0.2.1", 4000), now=now)
    conn.start(now)
    acts = conn.receive_data(_req(origin=None), now)
    return (conn, [a.conn_id for a in acts if isinstance(a, OpenUpstream)],
            [a.data for a in acts if isinstance(a, SendDownstream)])


def test_core_connection_count_released_when_the_upstream_resets_mid_body() -> None:
    proxy = Proxy(Router(parse_manifests(
        ingress_yaml("a", "a.test", _ann(limit_connections="1")) + WEB_SERVICE_YAML)),
        clock=None)
    conn, [cid], _ = _enter(proxy, 0.0)
    conn.upstream_connected(cid, 0.1)
    # a body delimited by the close, cut by a reset (proxy/_server.py: ``upstream_failed``)
    conn.upstream_data(cid, b"HTTP/1.0 200 OK\r\n\r\npartial", 0.2)
    _, opened, sent = _enter(proxy, 0.25)
    assert not opened and _status(sent[0]) == 503  # the first still holds the count
    conn.upstream_failed(cid, 0.3)
    _, opened, sent = _enter(proxy, 0.4)
    assert opened and not sent  # released: the next request goes upstream
    assert proxy.rate_limits.keys() == 1  # only the request in flight is counted


def test_asgi_connection_count_released_when_the_app_fails_mid_body() -> None:
    seen: Seen = []
    docs = ingress_yaml("a", "a.test", _ann(limit_connections="1")) + WEB_SERVICE_YAML
    asgi = _asgi(docs, {"default/web": _app("web", seen, fail=True)})
    assert _call(asgi, origin=None)[0] == 200  # the head went out, then the app raised
    assert asgi.rate_limits.keys() == 0
    asgi.backends["default/web"] = _app("web", seen)
    assert [_call(asgi, origin=None)[0] for _ in range(2)] == [200, 200]
    assert asgi.rate_limits.keys() == 0


def _served_manifests(port: int) -> str:
    return f"""apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: web, annotations: {{{P}limit-connections: "1"}}}}
spec:
  rules:
  - host: app.test
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec: {{ports: [{{name: http, port: 80, targetPort: http}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: web-0, labels: {{kubernetes.io/service-name: web}}}}
addressType: IPv4
ports: [{{name: http, port: {port}}}]
endpoints: [{{addresses: [127.0.0.1], conditions: {{ready: true}}}}]
"""


async def _reset_then_again() -> tuple[list[bytes], list[int]]:
    """Through ``ProxyServer`` on 127.0.0.1: the first request's upstream answers a
    close-delimited body and resets (SO_LINGER 0); then a second client asks again."""
    import socket
    import struct

    from ingresslib.proxy._server import ProxyServer

    calls = [0]

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        calls[0] += 1
        if calls[0] == 1:
            writer.write(b"HTTP/1.1 200 OK\r\n\r\npart")
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.get_extra_info("socket").setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        writer.close()

    up = await asyncio.start_server(upstream, "127.0.0.1", 0)
    records: list[Any] = []
    server = ProxyServer(Router(parse_manifests(_served_manifests(
        up.sockets[0].getsockname()[1]))), on_record=records.append)
    await server.start(("127.0.0.1", 0))
    port = server.servers[0].sockets[0].getsockname()[1]
    got: list[bytes] = []
    try:
        for _ in range(2):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
            data = b""
            while True:
                chunk = await asyncio.wait_for(reader.read(65536), 2)
                if not chunk:
                    break
                data += chunk
            writer.close()
            got.append(data)
        return got, [r.status for r in records]
    finally:
        await server.shutdown(0)
        up.close()


def test_served_connection_count_released_after_an_upstream_reset() -> None:
    got, statuses = asyncio.run(_reset_then_again())
    assert got[0].startswith(b"HTTP/1.1 200 ") and b"part" in got[0]
    assert got[1].startswith(b"HTTP/1.1 200 ") and got[1].endswith(b"ok")  # not 503
    assert statuses == [200, 200]
