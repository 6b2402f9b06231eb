"""Session 33, x12: a second engineer's review of round 2 (h2 the auth subrequest's
X-Request-ID, x10 a proxy-ssl-denied server ``location /``, x11 ssl-passthrough Services, the
lead's unanswered 408 of a head of empty lines), nginx / ingress-nginx as the spec.

Defects found (each test below but the IngressASGI guard failed before the fix):

- x10 left: a host's path no rule covers that another Ingress's ``defaultBackend`` serves
  (SEMANTICS §4.5; ``RouteOptionsSource._with_server_location``) is the host's server
  ``location /``, whose owner (the host's oldest Ingress) may have an unusable
  ``proxy-ssl-secret``: controller.go ``createServers`` gives that location the owner's
  "loc.Denied = anns.Denied" whatever backend it proxies to, and nginx.tmpl answers "return
  503" without CORS or custom-headers (``isLocationAllowed``). x10 made the unrouted branch
  answer so; this one was proxied to the default backend with the owner's CORS headers (and
  explain said "default backend"). Now 503 there too (proxy/_actions.py ``_OwnerDeniable``:
  the backend's own upstream TLS, denied while the owner's is, read per request so that a
  Secret created later is seen without a table rebuild). IngressASGI, which models no TLS to
  endpoints, still serves it (its routed and unrouted requests ignore proxy-ssl-*).
- x11: ``PassthroughRoutes._services_checked`` logged its warnings (a passthrough host whose
  ``/`` Service is missing, headless or ExternalName) again for every new Resources object,
  and ``Router.update`` makes one for every EndpointSlice change anywhere in the cluster
  (``serve --watch``): the same warning once per endpoint change. ingress-nginx says "Missing
  Service for SSL Passthrough backend" in nginx.go ``generateTemplate``, run when nginx.conf is
  rewritten (``OnUpdate``; controller.go ``syncIngress`` calls it only when
  ``IsDynamicConfigurationEnough`` is false): an endpoint change is applied dynamically and
  warns nothing. Now a warning is logged when it is new (not among the last
  check's); the verdicts are still recomputed for every Resources.

Checked and found right (no change):

- h2, the core: the generated id is one per request for the auth subrequest, every backend
  try (``proxy-next-upstream`` on http_502 and on a refused connect: the same id on both
  endpoints, one record), the default-backend annotation's Service, custom-http-errors' fetch
  and the mirror (both built from the backend's head: ``error_page_head``,
  ``mirror_request``), the access log's ``$req_id`` / ``$request_id``; an auth-cache hit
  sends no subrequest and the backend's id is the request's; a refused subrequest (401, the
  auth-signin 302) logs the subrequest's id; a request refused before the subrequest logs a
  generated one; pipelined requests on one connection (auth, client id, auth) each get their
  own, none leaks into the next; a client id that is invalid, repeated (the first), named in
  Connection follows ``client_request_id`` in the subrequest, the backend and the log alike;
  generate-request-id off sends none.
- h2, IngressASGI: one id for the auth subrequest and the app on the fast and the general
  header paths, the ``fallback`` behind the server location's auth, the error pages and the
  mirror (built from the app's headers).
- x10: explain of an unrouted path of a proxy-ssl-denied server location says 503 and why;
  that location's auth-url, allowlist and basic auth are not asked before its 503 (``return``
  runs in the rewrite phase); the host's own rules answer 503 as before.
- x11: a Service created after the Ingress, or deleted, is seen at the next ClientHello after
  ``Router.update`` (the table kept); a Service without ``metadata.namespace`` is the
  Ingress's namespace's (the decoder defaults both); a port name the Service lacks closes the
  connection (the Go proxy dials port 0), a port number it lacks too (nothing at
  ClusterIP:port); explain prints no stray warning line.
- lead: a head of empty lines at client-header-timeout is logged 408 (phase "head", not in
  the metrics, ``$request_completion`` empty) and closed with nothing sent, after a keep-alive
  request too (the keep-alive timer became the head timer at the CRLF); CRLF followed by a
  partial request line is a partial head: its 408 answered as before (the README row).

Noticed and left alone: ``auth-response-headers: X-Request-ID`` replaces the backend's
X-Request-ID with the auth service's value while the access log keeps the request's id;
nginx writes both ``proxy_set_header`` lines (the backend gets two X-Request-ID headers).
Not introduced by round 2; an odd configuration.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
import trustme

from ingresslib import IngressASGI, Router, parse_manifests
from ingresslib._explain_api import explain
from ingresslib.proxy._passthrough import PassthroughRoutes

from _proxy_harness import WEB_SERVICE_YAML, ProxyPair, ingress_yaml
from test_cors_s25 import headers_of, request, status_of
from test_x7_s33 import ALLOW, ORIGIN, PROXY_SSL_DENIED
from test_x11_s33 import _ingress, _router, _service

_CA = trustme.CA()


def _docs(port: int) -> str:
    return "---\n".join([_ingress("x.test", "nosvc"), _ingress("y.test", "svc"),
                         _service("svc", port)])


def test_passthrough_warning_not_repeated_on_endpoint_changes(
        caplog: pytest.LogCaptureFixture) -> None:
    router = _router(_docs(8443))
    routes = PassthroughRoutes(True)
    with caplog.at_level(logging.WARNING, "ingresslib.server"):
        assert routes.decide(router, b"x.test", None) is None
        for port in (8444, 8445):   # another Service's endpoints change: table kept
            table = router.table
            router.update(parse_manifests(_docs(port)))
            assert router.table is table
            assert routes.decide(router, b"y.test", None) == ("127.0.0.1", port)
            assert routes.decide(router, b"x.test", None) is None
    said = [r.getMessage() for r in caplog.records if "default/nosvc" in r.getMessage()]
    assert len(said) == 1, said


def test_passthrough_warning_said_again_once_the_problem_returns(
        caplog: pytest.LogCaptureFixture) -> None:
    # Fixed (the Service created), then broken again (deleted): warned again, once.
    router = _router(_ingress("x.test", "svc"))
    routes = PassthroughRoutes(True)
    fixed = "---\n".join([_ingress("x.test", "svc"), _service("svc", 8443)])
    with caplog.at_level(logging.WARNING, "ingresslib.server"):
        assert routes.decide(router, b"x.test", None) is None
        router.update(parse_manifests(fixed))
        assert routes.decide(router, b"x.test", None) == ("127.0.0.1", 8443)
        for _ in range(2):
            router.update(parse_manifests(_ingress("x.test", "svc")))
            assert routes.decide(router, b"x.test", None) is None
    said = [r.getMessage() for r in caplog.records if "default/svc" in r.getMessage()]
    assert len(said) == 2, said


# --- x10: a host's default backend from another Ingress, under a denied server location /  ----

_CATCH_ALL = """
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: catch, namespace: default, creationTimestamp: '2023-01-01T00:00:00Z'}
spec:
  defaultBackend: {service: {name: web, port: {number: 80}}}
"""


def _owner_denied_docs(secret: str = "") -> str:
    # Ingress ``web`` owns example.test (its rule /a); /zzz is served by the older host-less
    # Ingress ``catch``'s defaultBackend (SEMANTICS §4.5) as the host's server location /.
    return _CATCH_ALL + ingress_yaml("web", "example.test", {**ALLOW, **PROXY_SSL_DENIED},
                                     path="/a") + secret + WEB_SERVICE_YAML


def test_core_default_backend_under_a_proxy_ssl_denied_server_location_is_503() -> None:
    # controller.go createServers gives the host's location / its owner's "loc.Denied =
    # anns.Denied" whichever backend it proxies to: "return 503", no CORS (isLocationAllowed).
    p = ProxyPair(router=Router(parse_manifests(_owner_denied_docs())))
    for method in ("GET", "OPTIONS"):
        out = p.send(request(method, ORIGIN, path="/zzz"))
        assert status_of(out) == 503, method
        assert [n for n in headers_of(out) if n.startswith(b"access-control-")] == [], method
    assert p.upstreams == []
    # explain says the same, and why.
    said = explain(parse_manifests(_owner_denied_docs()), "http://example.test/zzz")
    assert said["status"] == 503 and "default/nope" in said["verdict"]["reason"]


def test_core_default_backend_follows_the_owners_secret_live() -> None:
    # The Secret created later (a Router.update without a table rebuild): the default backend
    # is proxied again, with its own Ingress's upstream TLS (none: plain HTTP), never the
    # owner's.
    router = Router(parse_manifests(_owner_denied_docs()))
    p = ProxyPair(router=router)
    assert status_of(p.send(request("GET", path="/zzz"))) == 503
    secret = f"""
---
apiVersion: v1
kind: Secret
metadata: {{name: nope, namespace: default}}
stringData: {{ca.crt: {json.dumps(_CA.cert_pem.bytes().decode())}}}
"""
    table = router.table
    router.update(parse_manifests(_owner_denied_docs(secret)))
    assert router.table is table   # the same Match objects: options not parsed again
    out = p.send(request("GET", path="/zzz"))
    assert status_of(out) == 200
    [up] = p.upstreams
    assert up.endpoint == ("10.0.0.1", 80)


def test_asgi_default_backend_under_a_proxy_ssl_denied_server_location_is_served() -> None:
    # IngressASGI models no TLS to endpoints (x10: its unrouted and routed requests ignore
    # proxy-ssl-*): its app serves, as for the host's own rules.
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def run() -> int:
        sent: list[dict[str, Any]] = []

        async def send(m: Any) -> None:
            sent.append(dict(m))

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "scheme": "http", "method": "GET", "path": "/zzz", "raw_path": b"/zzz",
                 "query_string": b"", "root_path": "", "headers": [(b"host", b"example.test")],
                 "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 80)}
        await IngressASGI(Router(parse_manifests(_owner_denied_docs())),
                          {"default/web": app})(scope, receive, send)
        return int(sent[0]["status"])

    assert asyncio.run(run()) == 200 and seen == ["/zzz"]
