"""Session 25 (UE): loose ends of this session's features.

- An upstream answer given before the request body has ended: the core closes the client
  connection after it, and says so (``Connection: close``, RFC 9112 §9.6).
- ``ingresslib check``: a ``custom-headers`` ConfigMap that is not among the objects, a rule
  served by the ``default-backend`` annotation's Service because its own has no endpoint, and
  a ``default-backend`` Service without a ready endpoint, each a warning naming the Ingress
  and the annotation.
"""

from __future__ import annotations

from typing import Any

from ingresslib.proxy import ProxySettings

from _proxy_harness import (ProxyPair, ingress_yaml, routed_pair, silent_app, status_of,
                            web_service_yaml)


def _head_fields(out: bytes) -> list[tuple[bytes, bytes]]:
    lines = out.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]
    return [(n.strip().lower(), v.strip()) for n, _, v in (ln.partition(b":") for ln in lines)]


# --- early upstream answer ------------------------------------------------------------------------


def test_early_answer_announces_close() -> None:
    p = ProxyPair(app=silent_app)
    p.send(b"POST /up HTTP/1.1\r\nHost: a.test\r\nContent-Length: 10\r\n\r\nabc")
    up = p.upstreams[0]
    out = p.upstream_send(up, b"HTTP/1.1 413 Too Large\r\nContent-Length: 2\r\n\r\nno")
    assert out.startswith(b"HTTP/1.1 413")
    assert (b"connection", b"close") in _head_fields(out)
    assert p.closed


def test_early_answer_closes_even_if_body_ends_before_response() -> None:
    # The head went out with "close" while the body was still coming: the connection is
    # closed after the response although the request ended before it.
    p = ProxyPair(app=silent_app)
    p.send(b"POST /up HTTP/1.1\r\nHost: a.test\r\nContent-Length: 4\r\n\r\nab")
    up = p.upstreams[0]
    out = p.upstream_send(up, b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nok")
    assert (b"connection", b"close") in _head_fields(out)
    p.send(b"cd")
    p.upstream_send(up, b"!!")
    assert p.closed


def test_complete_request_keeps_alive() -> None:
    p = ProxyPair()
    out = p.send(b"POST /up HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\n\r\nabc")
    assert out.startswith(b"HTTP/1.1 200")
    assert (b"connection", b"close") not in _head_fields(out)
    assert not p.closed


# --- check: what the annotations name -------------------------------------------------------------

P = "nginx.ingress.kubernetes.io/"


def _svc(name: str, ready: bool) -> str:
    doc = f"""
---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec: {{ports: [{{name: http, port: 80, targetPort: 8080}}]}}
"""
    if ready:
        doc += f"""
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-1, namespace: default, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: [{{name: http, port: 8080}}]
endpoints: [{{addresses: [10.0.0.9], conditions: {{ready: true}}}}]
"""
    return doc


def _findings(docs: str) -> list[Any]:
    from ingresslib import parse_manifests
    from ingresslib._explain_api import check_findings

    return check_findings(parse_manifests(docs))[1]


def _on(found: list[Any], key: str) -> list[Any]:
    return [f for f in found if f.field == f"metadata.annotations[{P}{key}]"]


def test_check_custom_headers_configmap_missing() -> None:
    found = _on(_findings(ingress_yaml("a", "a.test", {P + "custom-headers": "default/nope"})
                          + web_service_yaml()), "custom-headers")
    assert len(found) == 1
    f = found[0]
    assert f.object == "Ingress default/a" and f.severity == "warning"
    assert "'default/nope' is not among the objects" in f.message
    assert "custom-headers" in str(f)


def test_check_custom_headers_configmap_present_says_nothing() -> None:
    cm = """
---
apiVersion: v1
kind: ConfigMap
metadata: {name: hdr, namespace: default}
data: {}
"""
    found = _findings(ingress_yaml("a", "a.test", {P + "custom-headers": "default/hdr"})
                      + web_service_yaml() + cm)
    assert _on(found, "custom-headers") == []


def test_check_rule_without_endpoints_served_by_default_backend() -> None:
    found = _findings(ingress_yaml("a", "a.test", {P + "default-backend": "fallback"},
                                   service="empty") + _svc("empty", False)
                      + _svc("fallback", True))
    said = _on(found, "default-backend")
    assert len(said) == 1
    assert said[0].object == "Ingress default/a"
    assert "backend empty port 80" in said[0].message
    assert "default/empty has no ready endpoint" in said[0].message
    assert "default-backend Service default/fallback serves its requests" in said[0].message


def test_check_default_backend_without_endpoints() -> None:
    for service, rule_ready in (("empty", False), ("web", True)):
        docs = ingress_yaml("a", "a.test", {P + "default-backend": "fallback"},
                            service=service) + _svc("fallback", False)
        docs += web_service_yaml() if rule_ready else _svc("empty", False)
        said = _on(_findings(docs), "default-backend")
        assert len(said) == 1, said
        assert said[0].object == "Ingress default/a"
        assert "default/fallback has no ready endpoint" in said[0].message
        assert "still answers 503" in said[0].message


def test_check_healthy_default_backend_says_nothing() -> None:
    docs = ingress_yaml("a", "a.test", {P + "default-backend": "fallback"}) \
        + web_service_yaml() + _svc("fallback", True)
    assert _on(_findings(docs), "default-backend") == []


# --- a host's path no rule covers: the server's location / (CORS, limits, custom-headers) ----------

ORIGIN = "https://o.test"


def _unrouted_pair(ann: dict[str, str], extra: str = "") -> ProxyPair:
    # Rules for /api only: /other on a.test is the server's own location /.
    return routed_pair(ingress_yaml("a", "a.test", ann, path="/api") + extra)


def _req(method: str = "GET", path: str = "/other", host: str = "a.test",
         origin: str | None = ORIGIN) -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n"
    if origin is not None:
        head += f"Origin: {origin}\r\n"
    return (head + "\r\n").encode()


def _fields(out: bytes) -> dict[bytes, list[bytes]]:
    found: dict[bytes, list[bytes]] = {}
    for name, value in _head_fields(out):
        found.setdefault(name, []).append(value)
    return found


CORS = {P + "enable-cors": "true", P + "cors-allow-origin": ORIGIN}


def test_core_unrouted_404_carries_the_server_location_cors() -> None:
    p = _unrouted_pair(CORS)
    out = p.send(_req())
    assert status_of(out) == 404
    assert _fields(out)[b"access-control-allow-origin"] == [ORIGIN.encode()]
    # an Origin the list does not allow: no CORS header, as on a routed answer
    out = p.send(_req(origin="https://evil.test"))
    assert status_of(out) == 404 and b"access-control" not in out.lower()
    assert p.upstreams == []


def test_core_unrouted_preflight_is_answered_204() -> None:
    p = _unrouted_pair(CORS)
    out = p.send(_req("OPTIONS"))
    assert status_of(out) == 204
    fields = _fields(out)
    assert fields[b"access-control-allow-origin"] == [ORIGIN.encode()]
    assert b"content-length" not in fields and b"content-type" not in fields
    assert not p.closed and p.upstreams == []
    # not allowed: the default backend's 404
    assert status_of(p.send(_req("OPTIONS", origin="https://evil.test"))) == 404


def test_core_unrouted_preflight_before_ssl_redirect_after_app_root() -> None:
    p = _unrouted_pair({**CORS, P + "force-ssl-redirect": "true", P + "app-root": "/app"})
    assert status_of(p.send(_req("OPTIONS"))) == 204  # before the location's ssl-redirect
    out = p.send(_req("OPTIONS", path="/"))
    assert status_of(out) == 302 and b"access-control" not in out.lower()  # the server's


def test_core_unrouted_denied_location_has_no_cors_no_limit() -> None:
    p = _unrouted_pair({**CORS, P + "allowlist-source-range": "not-a-cidr",
                        P + "limit-rps": "1", P + "limit-burst-multiplier": "1"})
    for _ in range(3):
        out = p.send(_req("OPTIONS"))
        assert status_of(out) == 503 and b"access-control" not in out.lower()


def test_core_unrouted_requests_are_rate_limited_with_the_rules() -> None:
    p = _unrouted_pair({P + "limit-rps": "1", P + "limit-burst-multiplier": "1"})
    # the zone is the Ingress's: a routed request counts too
    assert status_of(p.send(_req(path="/api"))) == 200
    assert status_of(p.send(_req())) == 404
    assert status_of(p.send(_req())) == 503
    assert status_of(p.send(_req(path="/api"))) == 503


def test_core_unrouted_limit_refusal_keeps_cors_headers() -> None:
    p = _unrouted_pair({**CORS, P + "limit-rps": "1", P + "limit-burst-multiplier": "1"})
    statuses = [status_of(p.send(_req())) for _ in range(2)]
    out = p.send(_req())
    assert statuses == [404, 404] and status_of(out) == 503
    assert _fields(out)[b"access-control-allow-origin"] == [ORIGIN.encode()]


def test_core_unrouted_custom_headers() -> None:
    cm = """
---
apiVersion: v1
kind: ConfigMap
metadata: {name: hdr, namespace: default}
data: {X-Team: blue}
"""
    p = routed_pair(ingress_yaml("a", "a.test", {P + "custom-headers": "default/hdr"},
                                 path="/api") + cm,
                    settings=ProxySettings(global_allowed_response_headers=("X-Team",)))
    out = p.send(_req())
    assert status_of(out) == 404
    assert _fields(out)[b"x-team"] == [b"blue"]


def test_core_unknown_host_unchanged() -> None:
    p = _unrouted_pair({**CORS, P + "limit-rps": "1", P + "limit-burst-multiplier": "1"})
    for _ in range(3):
        out = p.send(_req("OPTIONS", host="other.test"))
        assert status_of(out) == 404 and b"access-control" not in out.lower()


# --- the same through IngressASGI ---------------------------------------------------------------

def _asgi(ann: dict[str, str], fallback: Any = None) -> Any:
    from ingresslib import IngressASGI, parse_manifests

    async def web(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"web"})

    asgi = IngressASGI(parse_manifests(ingress_yaml("a", "a.test", ann, path="/api")
                                       + web_service_yaml()),
                       {"default/web": web}, fallback=fallback)
    asgi.limit_clock = lambda: 0.0  # one instant: no bucket drains between requests
    return asgi


def _call(asgi: Any, method: str = "GET", path: str = "/other", host: str = "a.test",
          origin: str | None = ORIGIN) -> tuple[int, dict[bytes, list[bytes]]]:
    import asyncio

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
             "client": ("10.1.1.1", 5000), "server": ("127.0.0.1", 80)}
    asyncio.run(asgi(scope, receive, send))
    found: dict[bytes, list[bytes]] = {}
    for n, v in sent[0].get("headers") or ():
        found.setdefault(bytes(n).lower(), []).append(bytes(v))
    return int(sent[0]["status"]), found


def test_asgi_unrouted_404_and_preflight_carry_the_server_location_cors() -> None:
    asgi = _asgi(CORS)
    status, h = _call(asgi)
    assert status == 404 and h[b"access-control-allow-origin"] == [ORIGIN.encode()]
    status, h = _call(asgi, "OPTIONS")
    assert status == 204 and h[b"access-control-allow-origin"] == [ORIGIN.encode()]
    assert b"content-length" not in h
    status, h = _call(asgi, "OPTIONS", origin="https://evil.test")
    assert status == 404 and b"access-control-allow-origin" not in h
    status, h = _call(asgi, "OPTIONS", host="other.test")  # no server: unchanged
    assert status == 404 and b"access-control-allow-origin" not in h


def test_asgi_unrouted_fallback_answer_carries_cors() -> None:
    async def fallback(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"nf"})

    status, h = _call(_asgi(CORS, fallback))
    assert status == 404 and h[b"access-control-allow-origin"] == [ORIGIN.encode()]


def test_asgi_unrouted_requests_are_rate_limited_with_the_rules() -> None:
    asgi = _asgi({**CORS, P + "limit-rps": "1", P + "limit-burst-multiplier": "1"})
    assert [_call(asgi, path=p)[0] for p in ("/api", "/other", "/other", "/api")] \
        == [200, 404, 503, 503]
    status, h = _call(asgi)
    assert status == 503 and h[b"access-control-allow-origin"] == [ORIGIN.encode()]
    assert _call(asgi, "OPTIONS")[0] == 204  # a preflight is not limited


def test_asgi_unrouted_custom_headers() -> None:
    from ingresslib import IngressASGI, parse_manifests

    cm = """
---
apiVersion: v1
kind: ConfigMap
metadata: {name: hdr, namespace: default}
data: {X-Team: blue}
"""
    asgi = IngressASGI(parse_manifests(ingress_yaml("a", "a.test",
                                                    {P + "custom-headers": "default/hdr"},
                                                    path="/api") + web_service_yaml() + cm),
                       {}, settings=ProxySettings(global_allowed_response_headers=("X-Team",)))
    status, h = _call(asgi)
    assert status == 404 and h[b"x-team"] == [b"blue"]
