"""The ``nginx.ingress.kubernetes.io/custom-http-errors`` annotation (session 25): an upstream
answer whose status is listed is replaced by the answer of the Ingress's ``default-backend``
Service, as ingress-nginx's nginx.tmpl does (``proxy_intercept_errors on; error_page <code> =
@custom_<upstream>_<code>;`` and the named location ``CUSTOM_ERRORS``: X-Code, X-Format,
X-Original-URI, X-Namespace, X-Ingress-Name, X-Service-Name, X-Service-Port, ``rewrite (.*) /
break``), customhttperrors/main.go for the value: through the Router, the sans-IO core
(``Proxy.connection``) and IngressASGI."""

from __future__ import annotations

from typing import Any

import h11

from ingresslib import Router, parse_manifests
from ingresslib.proxy import ProxySettings
from ingresslib.proxy._annotations import IMPLEMENTED, parse_route_options

from _proxy_harness import FakeUpstream, ProxyPair, Reply, ingress_yaml, ok

P = "nginx.ingress.kubernetes.io/"
ANN = {P + "default-backend": "errors", P + "custom-http-errors": "404,503"}
WEB = ("10.0.0.1", 80)
ERR = ("10.9.0.1", 9090)


def _service(name: str, port: int, target: int, endpoints: tuple[str, ...]) -> str:
    eps = ", ".join(f"{{addresses: [{a}], conditions: {{ready: true}}}}" for a in endpoints)
    doc = f"""
---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec: {{ports: [{{name: http, port: {port}, targetPort: {target}}}]}}
"""
    if endpoints:
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


def _docs(annotations: dict[str, str] | None = None, web: tuple[str, ...] = ("10.0.0.1",),
          errors: tuple[str, ...] = ("10.9.0.1",)) -> str:
    return (ingress_yaml("site", "a.test", ANN if annotations is None else annotations)
            + _service("web", 80, 80, web) + _service("errors", 8081, 9090, errors))


def _app(status: int = 404, body: bytes = b"upstream page") -> Any:
    def app(request: h11.Request, data: bytes, up: FakeUpstream) -> Reply:
        if up.endpoint == ERR:
            page = b"error page " + request.method + b" " + request.target + b" " + data
            if request.method == b"HEAD":
                return Reply(b"HTTP/1.1 418 Teapot\r\nContent-Length: %d\r\n\r\n" % len(page))
            return Reply(b"HTTP/1.1 418 Teapot\r\nContent-Length: %d\r\n\r\n%s"
                         % (len(page), page))
        return Reply(b"HTTP/1.1 %d Whatever\r\nContent-Length: %d\r\nX-Up: 1\r\n\r\n%s"
                     % (status, len(body), body))
    return app


def _core(docs: str | None = None, status: int = 404, **kw: Any) -> ProxyPair:
    return ProxyPair(router=Router(parse_manifests(docs if docs is not None else _docs())),
                     app=_app(status), **kw)


def _head(up: FakeUpstream) -> list[bytes]:
    return bytes(up.raw).split(b"\r\n\r\n")[0].split(b"\r\n")


def _opts(annotations: dict[str, str]) -> Any:
    return parse_route_options(annotations, "/", ProxySettings(), where="Ingress default/site")




# ---------------------------------------------------------------- the annotation's value


def test_value_is_read_as_customhttperrors_main_go() -> None:
    from ingresslib.proxy._error_pages import parse_custom_http_errors

    assert parse_custom_http_errors("404,503") == (frozenset({404, 503}), None)
    assert parse_custom_http_errors(" 599,400,404 ") == (frozenset({400, 404, 599}), None)
    # strconv.Atoi takes no blank; codes 400-599 only; an empty item is no number
    for bad in ("404, 503", "399", "600", "abc", "404,", "４０４", "+404", ""):
        codes, why = parse_custom_http_errors(bad)
        assert codes == frozenset() and why is not None and "ignored" in why, bad


def test_the_annotation_is_implemented_and_a_bad_value_warned() -> None:
    assert "custom-http-errors" in IMPLEMENTED
    assert "disable-proxy-intercept-errors" in IMPLEMENTED
    good = _opts(ANN)
    assert good.custom_http_errors == frozenset({404, 503})
    assert not any("not implemented" in w for w in good.warnings)
    assert not any("custom-http-errors" in w for w in good.warnings)
    bad = _opts({**ANN, P + "custom-http-errors": "404, 503"})
    assert bad.custom_http_errors == frozenset()
    assert any("custom-http-errors" in w and "ignored" in w for w in bad.warnings)


def test_without_default_backend_annotation_a_warning_says_it_has_no_effect() -> None:
    o = _opts({P + "custom-http-errors": "404"})
    assert any("custom-http-errors" in w and "default-backend" in w and "untouched" in w
               for w in o.warnings)
    # and the answer passes untouched
    p = _core(_docs({P + "custom-http-errors": "404"}))
    out = p.send(b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 404 ") and out.endswith(b"upstream page")
    assert [u.endpoint for u in p.upstreams] == [WEB]


# ---------------------------------------------------------------- Router


def test_router_error_page_picks_the_default_backends_endpoints() -> None:
    r = Router(parse_manifests(_docs(errors=("10.9.0.1", "10.9.0.2"))))
    d = r.route("GET", "a.test", "/x")
    assert d is not None and d.endpoint == WEB and d.default_backend is None
    picks = [r.error_page(d) for _ in range(4)]
    assert all(e is not None and e.default_backend == "custom-default-backend-default-errors"
               and e.service == "errors" and e.match is d.match for e in picks)
    assert {e.endpoint for e in picks if e is not None} == {("10.9.0.1", 9090),
                                                          ("10.9.0.2", 9090)}
    # A default-backend annotation without custom-http-errors: its page still (since session
    # 26: the ConfigMap's custom-http-errors may ask for it; whether a response is intercepted
    # is the route's options', not the router's).
    r1 = Router(parse_manifests(_docs({P + "default-backend": "errors"})))
    d1 = r1.route("GET", "a.test", "/x")
    assert d1 is not None and d1.endpoint == WEB
    e1 = r1.error_page(d1)
    assert e1 is not None and e1.endpoint == ("10.9.0.1", 9090) and e1.service == "errors"
    assert e1.default_backend == "custom-default-backend-default-errors" and e1.match is d1.match
    # no default-backend annotation, or a default backend without endpoints: none
    r0 = Router(parse_manifests(_docs({P + "custom-http-errors": "404"})))
    d0 = r0.route("GET", "a.test", "/x")
    assert d0 is not None and d0.endpoint == WEB and r0.error_page(d0) is None
    r2 = Router(parse_manifests(_docs(errors=())))
    d2 = r2.route("GET", "a.test", "/x")
    assert d2 is not None and r2.error_page(d2) is None


# ---------------------------------------------------------------- sans-IO core


def test_core_404_is_answered_by_the_default_backend_with_ingress_nginx_headers() -> None:
    p = _core()
    out = p.send(b"GET /x/y?q=1&r=2 HTTP/1.1\r\nHost: a.test\r\nAccept: text/html\r\n"
                 b"X-Code: 1\r\nX-Original-URI: /evil\r\n\r\n")
    # the default backend's own answer, status included ("error_page 404 = @custom_...")
    assert out.startswith(b"HTTP/1.1 418 ")
    assert out.endswith(b"error page GET /?q=1&r=2 ")
    assert b"upstream page" not in out and b"X-Up" not in out
    web, err = p.upstreams
    assert web.endpoint == WEB and err.endpoint == ERR
    lines = _head(err)
    assert lines[0] == b"GET /?q=1&r=2 HTTP/1.1"  # rewrite (.*) / break: the query kept
    for line in (b"x-code: 404", b"x-format: text/html", b"x-original-uri: /x/y?q=1&r=2",
                 b"x-namespace: default", b"x-ingress-name: site", b"x-service-name: web",
                 b"x-service-port: 80", b"Host: a.test",
                 b"x-request-id: 0123456789abcdef0123456789abcdef"):
        assert line in lines, line
    low = [ln.lower() for ln in lines]
    for name in (b"x-code:", b"x-original-uri:", b"x-request-id:", b"host:"):
        assert sum(ln.startswith(name) for ln in low) == 1, name
    [rec] = p.records
    assert rec.status == 418
    assert rec.upstream_statuses == (404, 418)
    assert rec.upstreams == (WEB, ERR)
    assert rec.service == "errors"
    # the connection goes on: the next request is served as usual
    out = p.send(b"GET /z HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 418 ")
    assert len(p.records) == 2


def test_core_an_unlisted_status_passes_untouched() -> None:
    p = _core(status=500)
    out = p.send(b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 500 ") and out.endswith(b"upstream page")
    assert [u.endpoint for u in p.upstreams] == [WEB]


def test_core_method_and_body_are_kept_head_stays_head() -> None:
    p = _core()
    out = p.send(b"POST /form HTTP/1.1\r\nHost: a.test\r\nContent-Length: 5\r\n\r\nhello")
    assert out.startswith(b"HTTP/1.1 418 ") and out.endswith(b"error page POST / hello")
    err = p.upstreams[-1]
    assert _head(err)[0] == b"POST / HTTP/1.1"
    q = _core()
    out = q.send(b"HEAD /x HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 418 ") and out.endswith(b"\r\n\r\n")
    assert _head(q.upstreams[-1])[0] == b"HEAD / HTTP/1.1"


def test_core_the_error_pages_own_status_is_not_intercepted_again() -> None:
    def app(request: h11.Request, data: bytes, up: FakeUpstream) -> Reply:
        return Reply(b"HTTP/1.1 404 Nope\r\nContent-Length: 2\r\n\r\n"
                     + (b"EP" if up.endpoint == ERR else b"UP"))
    p = ProxyPair(router=Router(parse_manifests(_docs())), app=app)
    out = p.send(b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 404 ") and out.endswith(b"EP")
    assert [u.endpoint for u in p.upstreams] == [WEB, ERR]


def test_core_retries_come_first() -> None:
    ann = {**ANN, P + "proxy-next-upstream": "error timeout http_404"}
    p = _core(_docs(ann, web=("10.0.0.1", "10.0.0.2")))
    out = p.send(b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 418 ")
    eps = [u.endpoint for u in p.upstreams]
    assert sorted(eps[:2]) == [("10.0.0.1", 80), ("10.0.0.2", 80)] and eps[2] == ERR
    assert p.records[0].upstream_statuses == (404, 404, 418)


def test_core_our_own_502_is_intercepted_when_listed() -> None:
    ann = {**ANN, P + "custom-http-errors": "502"}
    p = _core(_docs(ann), refuse={WEB})
    out = p.send(b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 418 ")
    assert b"x-code: 502" in _head(p.upstreams[-1])
    assert p.records[0].upstream_statuses == (502, 418)
    # not listed: nginx's own 502 page
    q = _core(_docs(ANN), refuse={WEB})
    assert q.send(b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n").startswith(b"HTTP/1.1 502 ")


def test_core_disable_proxy_intercept_errors_leaves_upstream_answers_alone() -> None:
    ann = {**ANN, P + "custom-http-errors": "404,502",
           P + "disable-proxy-intercept-errors": "true"}
    p = _core(_docs(ann))
    out = p.send(b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 404 ") and out.endswith(b"upstream page")
    # nginx's own errors still go to the error page (error_page without intercept)
    q = _core(_docs(ann), refuse={WEB})
    assert q.send(b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n").startswith(b"HTTP/1.1 418 ")


def test_core_a_default_backend_without_endpoints_leaves_the_answer() -> None:
    p = _core(_docs(errors=()))
    out = p.send(b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 404 ") and out.endswith(b"upstream page")


def test_core_a_canarys_own_annotation_is_ignored_the_mains_applies() -> None:
    canary = ingress_yaml("site-canary", "a.test", {
        P + "canary": "true", P + "canary-by-header": "x-canary",
        P + "custom-http-errors": "500", P + "default-backend": "errors"}, service="web")
    docs = _docs({P + "default-backend": "errors", P + "custom-http-errors": "404"}) + canary
    p = _core(docs, status=500)
    out = p.send(b"GET /x HTTP/1.1\r\nHost: a.test\r\nx-canary: always\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 500 ")  # the canary's 500 is not listed by the main
    q = _core(docs, status=404)
    out = q.send(b"GET /x HTTP/1.1\r\nHost: a.test\r\nx-canary: always\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 418 ")  # the main's list applies to the canary's answer


# ---------------------------------------------------------------- IngressASGI


def _asgi(docs: str, status: int = 404, method: str = "POST",
          chunks: tuple[bytes, ...] = (b"he", b"llo")) -> tuple[list[Any], list[Any]]:
    import asyncio

    from ingresslib._asgi import IngressASGI

    calls: list[Any] = []

    def app(name: str) -> Any:
        async def backend(scope: Any, receive: Any, send: Any) -> None:
            body = b""
            while True:
                m = await receive()
                body += m.get("body", b"")
                if not m.get("more_body"):
                    break
            calls.append((name, scope, body))
            code = 418 if name == "errors" else status
            await send({"type": "http.response.start", "status": code,
                        "headers": [(b"x-app", name.encode())]})
            await send({"type": "http.response.body", "body": name.encode() + b":" + body})
        return backend

    ingress = IngressASGI(parse_manifests(docs), {"default/web": app("web"),
                                                  "default/errors": app("errors")})
    sent: list[Any] = []
    queue = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
             for i, c in enumerate(chunks)]

    async def receive() -> dict[str, Any]:
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": "/q/r", "raw_path": b"/q/r",
             "query_string": b"a=1", "root_path": "",
             "headers": [(b"host", b"a.test"), (b"accept", b"text/html"), (b"x-code", b"1")],
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80)}
    asyncio.run(ingress(scope, receive, send))
    return calls, sent


def test_asgi_a_listed_status_is_answered_by_the_default_backends_app() -> None:
    calls, sent = _asgi(_docs())
    assert [c[0] for c in calls] == ["web", "errors"]
    _, page, body = calls[1]
    assert body == b"hello"  # the body the first app read, given again
    assert page["method"] == "POST" and page["path"] == "/" and page["query_string"] == b"a=1"
    headers = [(bytes(k).lower(), bytes(v)) for k, v in page["headers"]]
    for pair in ((b"x-code", b"404"), (b"x-format", b"text/html"),
                 (b"x-original-uri", b"/q/r?a=1"), (b"x-namespace", b"default"),
                 (b"x-ingress-name", b"site"), (b"x-service-name", b"web"),
                 (b"x-service-port", b"80")):
        assert pair in headers, pair
    assert sum(k == b"x-code" for k, _ in headers) == 1
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert [m["status"] for m in starts] == [418]
    assert b"".join(m.get("body", b"") for m in sent
                    if m["type"] == "http.response.body") == b"errors:hello"


def test_asgi_unlisted_status_and_no_default_backend_pass_untouched() -> None:
    calls, sent = _asgi(_docs(), status=500)
    assert [c[0] for c in calls] == ["web"]
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [500]
    calls, sent = _asgi(_docs({P + "custom-http-errors": "404"}))
    assert [c[0] for c in calls] == ["web"]
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [404]
    calls, sent = _asgi(_docs({**ANN, P + "disable-proxy-intercept-errors": "true"}))
    assert [c[0] for c in calls] == ["web"]


def test_router_update_gives_the_error_page_the_new_endpoints() -> None:
    r = Router(parse_manifests(_docs()))
    r.update(parse_manifests(_docs(errors=("10.9.0.5",))))
    d = r.route("GET", "a.test", "/x")
    assert d is not None
    e = r.error_page(d)
    assert e is not None and e.endpoint == ("10.9.0.5", 9090)


def test_core_the_error_page_is_fetched_over_plain_http() -> None:
    # the named location's "proxy_pass http://upstream_balancer", whatever the rule's
    # backend-protocol
    p = _core(_docs({**ANN, P + "backend-protocol": "HTTPS"}))
    assert p.send(b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n").startswith(b"HTTP/1.1 418 ")
    assert [(o.endpoint, o.tls) for o in p.opens] == [(WEB, True), (ERR, False)]


def test_core_the_error_page_gets_the_clients_host_not_upstream_vhost() -> None:
    p = _core(_docs({**ANN, P + "upstream-vhost": "inside.test"}))
    assert p.send(b"GET /x HTTP/1.1\r\nHost: a.test\r\n\r\n").startswith(b"HTTP/1.1 418 ")
    web, err = p.upstreams
    assert b"host: inside.test" in [ln.lower() for ln in _head(web)]
    hosts = [ln for ln in _head(err) if ln.lower().startswith(b"host:")]
    assert hosts == [b"host: a.test"]


def test_asgi_an_error_page_app_is_not_reported_as_naming_no_backend(
        caplog: pytest.LogCaptureFixture) -> None:
    # The mount report (once per table, at the first request) counted only the rules' own
    # backends: "default/errors", mounted as the custom-http-errors page, was said to "name no
    # backend of the served rules".
    import logging

    caplog.set_level(logging.WARNING)
    calls, _ = _asgi(_docs())
    assert [c[0] for c in calls] == ["web", "errors"]
    assert not [r for r in caplog.records if "name no backend" in r.getMessage()]
