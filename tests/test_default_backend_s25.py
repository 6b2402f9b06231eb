"""The ``nginx.ingress.kubernetes.io/default-backend`` annotation (session 25): a rule whose
Service has no ready endpoint is served by the annotation's Service (in the Ingress's
namespace, its first port) when that one has an endpoint, as ingress-nginx's controller.go
``createUpstreams`` ("custom-default-backend-<ns>-<name>") and template.go ``buildProxyPass``
(X-Code 503, X-Format, X-Namespace, X-Ingress-Name, X-Service-Name, X-Service-Port) do:
through the Router, the sans-IO core (``Proxy.connection``) and IngressASGI."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from ingresslib import Router, parse_manifests
from ingresslib._asgi import IngressASGI
from ingresslib.proxy import ProxySettings
from ingresslib.proxy._annotations import IMPLEMENTED, parse_route_options

from _proxy_harness import ProxyPair, ingress_yaml

P = "nginx.ingress.kubernetes.io/"
DB = {P + "default-backend": "errors"}


def _service(name: str, port: int, target: int, endpoints: tuple[str, ...]) -> str:
    eps = ", ".join(f"{{addresses: [{a}], conditions: {{ready: true}}}}" for a in endpoints)
    doc = f"""
---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec: {{ports: [{{name: http, port: {port}, targetPort: {target}}}, {{name: b, port: 9}}]}}
"""
    if endpoints:
        doc += f"""
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-1, namespace: default, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: [{{name: http, port: {target}}}, {{name: b, port: 9}}]
endpoints: [{eps}]
"""
    return doc


def _docs(annotations: dict[str, str] | None = DB, web: tuple[str, ...] = (),
          errors: tuple[str, ...] = ("10.9.0.1",)) -> str:
    return (ingress_yaml("site", "a.test", annotations) + _service("web", 80, 80, web)
            + _service("errors", 8081, 9090, errors))


def _router(docs: str) -> Router:
    return Router(parse_manifests(docs))


# ---------------------------------------------------------------- Router


def test_a_rule_without_endpoints_is_served_by_the_annotations_service() -> None:
    r = _router(_docs())
    d = r.route("GET", "a.test", "/x")
    assert d is not None
    # the default backend's first port (8081 -> 9090), its endpoint, its upstream name
    assert (d.service, d.namespace, d.port, d.endpoint) == ("errors", "default", 9090,
                                                           ("10.9.0.1", 9090))
    assert d.default_backend == "custom-default-backend-default-errors"
    assert d.backend == "default/errors:8081"
    assert d.match.service == "web" and d.served is d.match
    # no "every request answers 503" note for a backend the default backend serves
    assert not any("503" in w.message for w in r.no_endpoint)


def test_retries_stay_on_the_default_backend() -> None:
    r = _router(_docs(errors=("10.9.0.1", "10.9.0.2")))
    d = r.route("GET", "a.test", "/")
    assert d is not None and d.endpoint is not None
    other = r.next_endpoint(d, [d.endpoint])
    assert other in {("10.9.0.1", 9090), ("10.9.0.2", 9090)} and other != d.endpoint


def test_a_rule_with_endpoints_ignores_the_annotation() -> None:
    d = _router(_docs(web=("10.0.0.1",))).route("GET", "a.test", "/")
    assert d is not None
    assert (d.service, d.endpoint, d.default_backend) == ("web", ("10.0.0.1", 80), None)


def test_a_default_backend_without_endpoints_leaves_the_503() -> None:
    # controller.go: "custom backend is valid only if contains at least one endpoint"
    d = _router(_docs(errors=())).route("GET", "a.test", "/")
    assert d is not None
    assert (d.service, d.endpoint, d.default_backend) == ("web", None, None)


def test_a_missing_service_is_warned_and_ignored() -> None:
    r = _router(_docs({P + "default-backend": "nope"}))
    d = r.route("GET", "a.test", "/")
    assert d is not None and d.endpoint is None and d.default_backend is None
    [w] = [w for w in r.warnings if "default-backend" in w.field]
    assert w.object == "Ingress default/site"
    assert "Service default/nope not found" in w.message


def test_the_service_is_looked_up_in_the_ingresss_namespace_only() -> None:
    docs = _docs({P + "default-backend": "other/errors"})
    r = _router(docs)
    d = r.route("GET", "a.test", "/")
    assert d is not None and d.endpoint is None
    assert any("default/other/errors not found" in w.message for w in r.warnings)


def test_the_annotation_value_is_trimmed() -> None:
    d = _router(_docs({P + "default-backend": "  errors "})).route("GET", "a.test", "/")
    assert d is not None and d.endpoint == ("10.9.0.1", 9090)


def test_updates_follow_both_services_endpoints() -> None:
    r = _router(_docs())
    d = r.route("GET", "a.test", "/")
    assert d is not None and d.service == "errors"
    # the rule's own Service gets an endpoint: it serves again
    r.update(parse_manifests(_docs(web=("10.0.0.1",))))
    d = r.route("GET", "a.test", "/")
    assert d is not None and (d.service, d.endpoint, d.default_backend) == (
        "web", ("10.0.0.1", 80), None)
    # and loses it: the default backend again, then its endpoints change
    r.update(parse_manifests(_docs()))
    d = r.route("GET", "a.test", "/")
    assert d is not None and d.endpoint == ("10.9.0.1", 9090)
    r.update(parse_manifests(_docs(errors=("10.9.0.7",))))
    d = r.route("GET", "a.test", "/")
    assert d is not None and d.endpoint == ("10.9.0.7", 9090)
    r.update(parse_manifests(_docs(errors=())))
    d = r.route("GET", "a.test", "/")
    assert d is not None and (d.service, d.endpoint) == ("web", None)


def test_a_canarys_annotation_is_ignored() -> None:
    # The canary's location annotations are dropped by ingress-nginx's canary merge.
    canary = ingress_yaml("can", "a.test", {P + "canary": "true", P + "canary-weight": "100",
                                            P + "default-backend": "errors"}, service="can")
    docs = (ingress_yaml("site", "a.test") + canary + _service("web", 80, 80, ())
            + _service("can", 80, 80, ()) + _service("errors", 8081, 9090, ("10.9.0.1",)))
    r = _router(docs)
    for _ in range(3):
        d = r.route("GET", "a.test", "/")
        assert d is not None and d.endpoint is None and d.default_backend is None
        assert d.service in ("web", "can")


def test_the_annotation_is_implemented() -> None:
    assert "default-backend" in IMPLEMENTED
    log = logging.getLogger("test_default_backend_s25")
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    h = Keep()
    log.addHandler(h)
    try:
        parse_route_options(DB, "/", ProxySettings(), log, "Ingress default/site")
    finally:
        log.removeHandler(h)
    assert not [r for r in seen if "default-backend" in r.getMessage()]


# ---------------------------------------------------------------- sans-IO core


def _core(docs: str) -> ProxyPair:
    return ProxyPair(router=_router(docs))


def test_core_proxies_to_the_default_backend_with_ingress_nginx_headers() -> None:
    p = _core(_docs())
    out = p.send(b"GET /x?q=1 HTTP/1.1\r\nHost: a.test\r\nAccept: text/html\r\n"
                 b"Accept: application/json\r\nX-Code: 200\r\nx-service-name: evil\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 ")  # the default backend's own answer
    [up] = p.upstreams
    assert up.endpoint == ("10.9.0.1", 9090)
    head = bytes(up.raw).split(b"\r\n\r\n")[0]
    lines = head.split(b"\r\n")
    assert lines[0] == b"GET /x?q=1 HTTP/1.1"
    for line in (b"x-code: 503", b"x-format: text/html, application/json",
                 b"x-namespace: default", b"x-ingress-name: site", b"x-service-name: web",
                 b"x-service-port: 80"):
        assert line in lines
    low = [ln.lower() for ln in lines]
    # the client's own X-Code / X-Service-Name are replaced, not passed too
    assert sum(ln.startswith(b"x-code:") for ln in low) == 1
    assert sum(ln.startswith(b"x-service-name:") for ln in low) == 1
    assert sum(ln.startswith(b"x-request-id:") for ln in low) == 1
    [rec] = p.records
    assert rec.service == "errors" and rec.status == 200


def test_core_without_accept_sends_no_x_format_and_plain_rules_no_x_code() -> None:
    p = _core(_docs())
    p.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
    low = bytes(p.upstreams[0].raw).lower()
    assert b"\r\nx-code: 503\r\n" in low and b"x-format" not in low
    q = _core(_docs(web=("10.0.0.1",)))
    q.send(b"GET / HTTP/1.1\r\nHost: a.test\r\nX-Code: 7\r\n\r\n")
    [up] = q.upstreams
    assert up.endpoint == ("10.0.0.1", 80)
    assert b"\r\nX-Code: 7\r\n" in bytes(up.raw)  # passed as any header
    assert b"x-namespace" not in bytes(up.raw).lower()


def test_fields_of_a_decision_without_default_backend() -> None:
    from ingresslib.proxy._error_pages import default_backend_fields

    assert default_backend_fields(object(), [(b"accept", b"x")]) == []


# ---------------------------------------------------------------- IngressASGI


def _asgi(docs: str) -> tuple[list[str], list[tuple[bytes, bytes]], list[dict[str, Any]]]:
    called: list[str] = []
    seen: list[tuple[bytes, bytes]] = []

    def app(name: str) -> Any:
        async def backend(scope: Any, receive: Any, send: Any) -> None:
            called.append(name)
            seen.extend(scope["headers"])
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": name.encode()})
        return backend

    ingress = IngressASGI(parse_manifests(docs), {"default/web": app("web"),
                                                  "default/errors": app("errors")})
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": "/q", "raw_path": b"/q",
             "query_string": b"", "root_path": "",
             "headers": [(b"host", b"a.test"), (b"accept", b"text/html"), (b"x-code", b"1")],
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80)}
    asyncio.run(ingress(scope, receive, send))
    return called, seen, sent


def test_asgi_the_default_backends_app_answers_with_the_headers() -> None:
    called, seen, sent = _asgi(_docs())
    assert called == ["errors"]
    assert sent[0]["status"] == 404  # its own status
    for item in ((b"x-code", b"503"), (b"x-format", b"text/html"),
                 (b"x-namespace", b"default"), (b"x-ingress-name", b"site"),
                 (b"x-service-name", b"web"), (b"x-service-port", b"80")):
        assert item in seen
    assert [v for k, v in seen if k == b"x-code"] == [b"503"]


def test_asgi_a_rule_with_endpoints_keeps_its_app() -> None:
    called, seen, _ = _asgi(_docs(web=("10.0.0.1",)))
    assert called == ["web"]
    assert (b"x-code", b"1") in seen and (b"x-namespace", b"default") not in seen


@pytest.mark.parametrize("errors", [(), ("10.9.0.1",)])
def test_asgi_without_the_annotation_the_rules_app_answers(errors: tuple[str, ...]) -> None:
    called, _, _ = _asgi(_docs(None, errors=errors))
    assert called == ["web"]
