"""An attacker's review of features in combination (session 27, H7): access control that
one feature skips when another is on, through the sans-IO core (``Proxy.connection``, the
in-memory harness) and ``IngressASGI`` (driven by hand; an auth service, when one is asked,
runs on 127.0.0.1, port 0).

1. ``satisfy: any`` + ``auth-url`` + ``auth-response-headers``: a request the allowlist lets in
   skips the auth subrequest, and the client's own ``X-User`` reached the backend as if the
   auth service had said it. ingress-nginx's ``proxy_set_header 'X-User' $authHeader0;`` holds
   whether ``auth_request`` ran or not (template.go ``buildAuthResponseHeaders``): the backend
   gets no X-User then (proxy/_auth_unasked.py).
2. A host's path no rule covers, served by another Ingress's ``defaultBackend`` (SEMANTICS §4.5):
   the request passed the host's source ranges and basic auth (``_with_server_location``) but
   not its ``auth-url`` (nor, in a core without ``client_auth``, its ``auth-tls-*`` guard).
   ingress-nginx's server ``location /`` carries the host's Ingress's ExternalAuth
   (controller.go ``locationApplyAnnotations``: "loc.ExternalAuth = anns.ExternalAuth").
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import h11
import trustme

from ingresslib import IngressASGI, Router, parse_manifests
from ingresslib.proxy import Mirror, ProxySettings

from _proxy_harness import ProxyPair, Reply, Route, ingress_yaml, ok, status_of

P = "nginx.ingress.kubernetes.io/"
AUTH = ("10.5.0.1", 4180)
WEB = ("10.0.0.1", 8080)
URL = "http://10.5.0.1:4180/oauth2/auth"
ALLOW = b"HTTP/1.1 200 OK\r\nX-User: alice\r\nContent-Length: 0\r\n\r\n"
DENY = b"HTTP/1.1 403 No\r\nContent-Length: 0\r\n\r\n"


def _service(name: str, ip: str) -> str:
    return f"""
---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec: {{ports: [{{port: 80}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-1, namespace: default, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: [{{port: 80}}]
endpoints: [{{addresses: [{ip}], conditions: {{ready: true}}}}]
"""


#: An Ingress without rules whose ``defaultBackend`` (Service ``other``) answers every host's
#: paths no rule covers (SEMANTICS §4.5: the oldest served Ingress's defaultBackend).
DEFAULT_BACKEND = """
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: fallback, namespace: default, creationTimestamp: '2024-03-01T00:00:00Z'}
spec:
  defaultBackend: {service: {name: other, port: {number: 80}}}
"""
SERVICES = _service("web", "10.0.0.1") + _service("other", "10.0.0.3")
OTHER = ("10.0.0.3", 80)


def _core(routes: list[Route] | None = None, replies: list[bytes] | None = None,
          router: Any = None, **kw: Any) -> ProxyPair:
    """A core whose auth service (AUTH) answers ``replies`` in turn."""
    it = iter(replies or [])

    def app(request: h11.Request, data: bytes, up: Any) -> Reply | None:
        if up.endpoint == AUTH:
            return Reply(next(it))
        return ok(b"backend " + request.target)
    return ProxyPair(routes, app=app, router=router, **kw)


def _raw(p: ProxyPair, endpoint: tuple[str, int]) -> bytes:
    return b"".join(bytes(u.raw) for u in p.upstreams if u.endpoint == endpoint)


# ------------------------------------------------------------ 1. satisfy any + auth-url headers
SATISFY_ANY = {P + "auth-url": URL, P + "auth-response-headers": "X-User, X-Groups",
               P + "satisfy": "any", P + "whitelist-source-range": "203.0.113.0/24"}


def test_core_allowlisted_request_never_carries_the_clients_auth_response_headers() -> None:
    # The harness's client is 203.0.113.7: the allowlist lets it in, no auth subrequest.
    p = _core([Route(annotations=SATISFY_ANY, endpoints=[WEB])])
    out = p.send(b"GET / HTTP/1.1\r\nHost: app.test\r\nX-User: admin\r\nx-groups: root\r\n"
                 b"X-Other: kept\r\n\r\n")
    assert status_of(out) == 200 and not _raw(p, AUTH)
    raw = _raw(p, WEB)
    assert b"admin" not in raw and b"root" not in raw and b"X-Other: kept\r\n" in raw
    # Underscore spellings (a CGI/WSGI backend reads X_User as X-User) too.
    p = _core([Route(annotations=SATISFY_ANY, endpoints=[WEB])],
              settings=ProxySettings(enable_underscores_in_headers=True))
    out = p.send(b"GET / HTTP/1.1\r\nHost: app.test\r\nX_User: admin\r\n\r\n")
    assert status_of(out) == 200 and b"admin" not in _raw(p, WEB)


def test_core_address_outside_the_allowlist_gets_the_auth_services_values_only() -> None:
    # Unchanged: the auth subrequest runs and its X-User replaces the client's.
    p = _core([Route(annotations=SATISFY_ANY, endpoints=[WEB])], [ALLOW],
              peer=("198.51.100.9", 4000))
    out = p.send(b"GET / HTTP/1.1\r\nHost: app.test\r\nX-User: admin\r\n\r\n")
    assert status_of(out) == 200 and _raw(p, AUTH)
    raw = _raw(p, WEB)
    assert b"admin" not in raw and b"X-User: alice\r\n" in raw


def test_core_no_auth_locations_path_passes_the_clients_headers_as_nginx() -> None:
    # global-auth-url with no-auth-locations: nginx.tmpl writes no auth lines at all in such a
    # location (shouldApplyGlobalAuth false), so the client's header passes there.
    settings = ProxySettings(global_auth_url=URL, global_auth_response_headers=("X-User",),
                             no_auth_locations=("/public",))
    p = _core([Route(path="/public", endpoints=[WEB])], settings=settings)
    out = p.send(b"GET /public/a HTTP/1.1\r\nHost: app.test\r\nX-User: someone\r\n\r\n")
    assert status_of(out) == 200 and not _raw(p, AUTH)
    assert b"X-User: someone\r\n" in _raw(p, WEB)


class _MirrorPair(ProxyPair):
    """The harness, keeping the ``Mirror`` actions (a server sends them on its own)."""

    mirrors: list[Any]

    def _perform(self, actions: list[Any], events: list[Any]) -> None:
        if not hasattr(self, "mirrors"):
            self.mirrors = []
        self.mirrors += [a for a in actions if type(a) is Mirror]
        super()._perform([a for a in actions if type(a) is not Mirror], events)


def test_core_mirror_of_an_allowlisted_request_has_no_forged_header() -> None:
    # The mirror's head is the backend's (proxy/_mirror.py): the same headers dropped.
    ann = dict(SATISFY_ANY, **{P + "mirror-target": "http://10.0.0.9:8080$request_uri"})
    p = _MirrorPair([Route(annotations=ann, endpoints=[WEB])])
    out = p.send(b"GET /m HTTP/1.1\r\nHost: app.test\r\nX-User: admin\r\n\r\n")
    assert status_of(out) == 200 and len(p.mirrors) == 1
    assert p.mirrors[0].data.startswith(b"GET /m HTTP/1.1\r\n")
    assert b"admin" not in p.mirrors[0].data and b"admin" not in p.upstream_bytes


class AuthService:
    """An auth service on 127.0.0.1: records each request head, answers ``reply``."""

    def __init__(self, reply: bytes) -> None:
        self.reply = reply
        self.heads: list[bytes] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> AuthService:
        async def client(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                self.heads.append(await r.readuntil(b"\r\n\r\n"))
                w.write(self.reply)
                await w.drain()
            except Exception:
                pass
            finally:
                w.close()
        self.server = await asyncio.start_server(client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self.server is not None
        self.server.close()


async def _asgi_call(text: str, head: list[tuple[bytes, bytes]], path: str = "/",
                     client: str = "127.0.0.1", host: bytes = b"app.test"
                     ) -> tuple[int, list[dict[str, Any]]]:
    """(status, the scopes each mounted app got) of one GET through IngressASGI."""
    scopes: list[dict[str, Any]] = []
    sent: list[dict[str, Any]] = []

    def backend(name: str) -> Any:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            scopes.append(dict(scope, app=name))
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"ok"})
        return app

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(m: Any) -> None:
        sent.append(dict(m))

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "scheme": "http", "method": "GET", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "headers": [(b"host", host), *head],
             "client": (client, 40000), "server": ("127.0.0.1", 80)}
    app = IngressASGI(Router(parse_manifests(text)),
                      {"default/web": backend("web"), "default/other": backend("other")},
                      request_id=lambda: "0" * 32)
    await app(scope, receive, send)
    return int(sent[0]["status"]), scopes


def _app_header(scope: dict[str, Any], name: bytes) -> list[bytes]:
    return [bytes(v) for n, v in scope["headers"] if bytes(n).lower() == name]


def test_asgi_allowlisted_request_never_carries_the_clients_auth_response_headers() -> None:
    async def go() -> tuple[int, list[dict[str, Any]], AuthService]:
        async with AuthService(ALLOW) as auth:
            ann = dict(SATISFY_ANY, **{P + "auth-url": f"http://127.0.0.1:{auth.port}/auth",
                                       P + "whitelist-source-range": "127.0.0.0/8"})
            status, scopes = await _asgi_call(
                ingress_yaml("site", "app.test", ann) + SERVICES,
                [(b"x-user", b"admin"), (b"x-groups", b"root"), (b"x-other", b"kept")])
            return status, scopes, auth
    status, scopes, auth = asyncio.run(go())
    assert status == 200 and not auth.heads and len(scopes) == 1
    assert _app_header(scopes[0], b"x-user") == [] and _app_header(scopes[0], b"x-groups") == []
    assert _app_header(scopes[0], b"x-other") == [b"kept"]


# ------------------------------------------------- 2. another Ingress's defaultBackend, host auth
def _host_with_auth(url: str, path: str = "/api") -> str:
    return ingress_yaml("site", "app.test", {P + "auth-url": url,
                                             P + "auth-response-headers": "X-User"},
                        path=path) + DEFAULT_BACKEND + SERVICES


def test_core_default_backend_of_another_ingress_is_behind_the_hosts_auth_url() -> None:
    router = Router(parse_manifests(_host_with_auth(URL)))
    # Denied: 403, the default backend never reached.
    p = _core(router=router, replies=[DENY])
    out = p.send(b"GET /other HTTP/1.1\r\nHost: app.test\r\n\r\n")
    assert status_of(out) == 403 and _raw(p, AUTH) and not _raw(p, OTHER)
    # Allowed: the default backend answers, with the auth service's X-User, not the client's.
    p = _core(router=router, replies=[ALLOW])
    out = p.send(b"GET /other HTTP/1.1\r\nHost: app.test\r\nX-User: admin\r\n\r\n")
    assert status_of(out) == 200 and out.endswith(b"backend /other")
    raw = _raw(p, OTHER)
    assert b"admin" not in raw and b"X-User: alice\r\n" in raw
    # A host whose Ingress has no auth-url: the default backend as before, no subrequest.
    plain = Router(parse_manifests(ingress_yaml("site", "app.test", path="/api")
                                   + DEFAULT_BACKEND + SERVICES))
    p = _core(router=plain)
    out = p.send(b"GET /other HTTP/1.1\r\nHost: app.test\r\n\r\n")
    assert status_of(out) == 200 and not _raw(p, AUTH) and _raw(p, OTHER)


def test_asgi_default_backend_of_another_ingress_is_behind_the_hosts_auth_url() -> None:
    async def go() -> tuple[int, list[dict[str, Any]], AuthService]:
        async with AuthService(DENY) as auth:
            status, scopes = await _asgi_call(
                _host_with_auth(f"http://127.0.0.1:{auth.port}/auth"), [], path="/other")
            return status, scopes, auth
    status, scopes, auth = asyncio.run(go())
    assert status == 403 and len(auth.heads) == 1 and scopes == []


def _secret(name: str, data: dict[str, bytes]) -> str:
    body = "".join(f"\n  {k}: {base64.b64encode(v).decode()}" for k, v in data.items())
    return f"""
---
apiVersion: v1
kind: Secret
metadata: {{name: {name}, namespace: default}}
type: Opaque
data:{body}
"""


def test_core_default_backend_of_another_ingress_keeps_the_hosts_auth_tls_guard() -> None:
    # A core given no client_auth cannot have verified a certificate: every route of a host
    # with auth-tls-* answers 503 (test_clientcert_s26), its paths no rule covers too.
    ca = trustme.CA()
    text = (ingress_yaml("site", "app.test", {P + "auth-tls-secret": "default/client-ca"},
                         path="/api") + DEFAULT_BACKEND + SERVICES
            + _secret("client-ca", {"ca.crt": ca.cert_pem.bytes()}))
    p = _core(router=Router(parse_manifests(text)), tls=True)
    out = p.send(b"GET /other HTTP/1.1\r\nHost: app.test\r\n\r\n")
    assert status_of(out) == 503 and not p.opens


# ------------------------------------------- 3. IngressASGI's fallback app behind the host's auth
async def _fallback_call(text: str, head: list[tuple[bytes, bytes]] = [],
                         host: bytes = b"app.test") -> tuple[int, list[dict[str, Any]]]:
    """(status, the scopes the ``fallback`` app got) of ``GET /other`` through IngressASGI."""
    scopes: list[dict[str, Any]] = []
    sent: list[dict[str, Any]] = []

    async def fallback(scope: Any, receive: Any, send: Any) -> None:
        scopes.append(scope)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"fallback"})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(m: Any) -> None:
        sent.append(dict(m))

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "scheme": "http", "method": "GET", "path": "/other", "raw_path": b"/other",
             "query_string": b"q=1", "root_path": "", "headers": [(b"host", host), *head],
             "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 80)}
    app = IngressASGI(Router(parse_manifests(text)), {}, fallback=fallback,
                      request_id=lambda: "0" * 32)
    await app(scope, receive, send)
    return int(sent[0]["status"]), scopes


def test_asgi_fallback_app_is_behind_the_hosts_auth_url() -> None:
    # app.test's only Ingress has auth-url and a rule for /api: /other is its server
    # location's, whose auth service must let the request in before the fallback app.
    async def go(reply: bytes, text: str | None = None
                 ) -> tuple[int, list[dict[str, Any]], AuthService]:
        async with AuthService(reply) as auth:
            url = f"http://127.0.0.1:{auth.port}/auth"
            status, scopes = await _fallback_call(
                text or ingress_yaml("site", "app.test", {
                    P + "auth-url": url, P + "auth-response-headers": "X-User"},
                    path="/api") + SERVICES, [(b"x-user", b"admin")])
            return status, scopes, auth
    status, scopes, auth = asyncio.run(go(DENY))
    assert status == 403 and scopes == [] and len(auth.heads) == 1
    assert b"x-original-url: http://app.test/other?q=1\r\n" in auth.heads[0]
    status, scopes, auth = asyncio.run(go(ALLOW))
    assert status == 200 and len(scopes) == 1 and len(auth.heads) == 1
    assert _app_header(scopes[0], b"x-user") == [b"alice"]
    # A host without auth-url, or a host no Ingress names: the fallback at once, unasked.
    status, scopes, auth = asyncio.run(go(DENY, ingress_yaml("site", "app.test", path="/api")
                                          + SERVICES))
    assert status == 200 and len(scopes) == 1 and not auth.heads


def test_asgi_fallback_of_a_no_auth_location_is_not_asked() -> None:
    # The ConfigMap's global-auth-url with "/" in no-auth-locations: nginx.tmpl writes no
    # auth lines in that location, the fallback answers unasked.
    async def go() -> tuple[int, AuthService]:
        async with AuthService(DENY) as auth:
            text = ingress_yaml("site", "app.test", path="/api") + SERVICES
            scopes: list[Any] = []

            async def fallback(scope: Any, receive: Any, send: Any) -> None:
                scopes.append(scope)
                await send({"type": "http.response.start", "status": 204, "headers": []})
                await send({"type": "http.response.body", "body": b""})
            sent: list[Any] = []

            async def send(m: Any) -> None:
                sent.append(m)

            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": b"", "more_body": False}
            settings = ProxySettings(global_auth_url=f"http://127.0.0.1:{auth.port}/auth",
                                     no_auth_locations=("/",))
            app = IngressASGI(Router(parse_manifests(text)), {}, fallback=fallback,
                              settings=settings)
            await app({"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                       "scheme": "http", "method": "GET", "path": "/other",
                       "raw_path": b"/other", "query_string": b"", "root_path": "",
                       "headers": [(b"host", b"app.test")], "client": ("127.0.0.1", 1),
                       "server": ("127.0.0.1", 80)}, receive, send)
            return int(sent[0]["status"]), auth
    status, auth = asyncio.run(go())
    assert status == 204 and not auth.heads


# ---------------------------------- 4. another Ingress's defaultBackend, the host's rate limits
LIMITED = ingress_yaml("site", "app.test", {P + "limit-rps": "1"}, path="/api")


def test_core_default_backend_of_another_ingress_meets_the_hosts_rate_limit() -> None:
    # limit-rps 1 (burst 5, nodelay): the 7th request of the same instant is refused (503),
    # on the host's server ``location /`` as on its rules, whichever backend then answers.
    for text, ok_status in ((LIMITED + DEFAULT_BACKEND + SERVICES, 200),
                            (LIMITED + SERVICES, 404)):
        p = _core(router=Router(parse_manifests(text)))
        statuses = [status_of(p.send(b"GET /other HTTP/1.1\r\nHost: app.test\r\n\r\n"))
                    for _ in range(8)]
        assert statuses == [ok_status] * 6 + [503, 503], (text, statuses)


def test_asgi_default_backend_of_another_ingress_meets_the_hosts_rate_limit() -> None:
    sent: list[dict[str, Any]] = []

    async def other(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"other"})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(m: Any) -> None:
        if m["type"] == "http.response.start":
            sent.append(m)

    async def go() -> None:
        app = IngressASGI(Router(parse_manifests(LIMITED + DEFAULT_BACKEND + SERVICES)),
                          {"default/other": other})
        app.limit_clock = lambda: 100.0
        for _ in range(8):
            await app({"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                       "scheme": "http", "method": "GET", "path": "/other",
                       "raw_path": b"/other", "query_string": b"", "root_path": "",
                       "headers": [(b"host", b"app.test")], "client": ("127.0.0.1", 1),
                       "server": ("127.0.0.1", 80)}, receive, send)
    asyncio.run(go())
    assert [m["status"] for m in sent] == [200] * 6 + [503, 503]


# ------------------------------- 5. IngressASGI, an auth-tls host served unverified: no forgery
def test_asgi_unverified_auth_tls_host_never_passes_the_clients_ssl_client_headers() -> None:
    ca = trustme.CA()
    text = (ingress_yaml("site", "app.test", {P + "auth-tls-secret": "default/client-ca"})
            + ingress_yaml("plain", "plain.test") + SERVICES
            + _secret("client-ca", {"ca.crt": ca.cert_pem.bytes()}))
    forged = [(b"ssl-client-verify", b"SUCCESS"), (b"ssl-client-subject-dn", b"CN=admin"),
              (b"ssl_client_issuer_dn", b"CN=ca"), (b"x-other", b"kept")]
    scopes: list[dict[str, Any]] = []
    sent: list[dict[str, Any]] = []

    async def web(scope: Any, receive: Any, send: Any) -> None:
        scopes.append(scope)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(m: Any) -> None:
        if m["type"] == "http.response.start":
            sent.append(m)

    async def go(settings: ProxySettings, host: bytes) -> None:
        app = IngressASGI(Router(parse_manifests(text)), {"default/web": web},
                          settings=settings)
        await app({"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                   "scheme": "https", "method": "GET", "path": "/x", "raw_path": b"/x",
                   "query_string": b"", "root_path": "", "headers": [(b"host", host), *forged],
                   "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 443)}, receive, send)
    # Served unverified: the app gets no ssl-client-* claim at all.
    asyncio.run(go(ProxySettings(deny_unenforced_access_annotations=False), b"app.test"))
    assert sent[-1]["status"] == 200 and len(scopes) == 1
    names = {bytes(n).lower() for n, _ in scopes[0]["headers"]}
    assert not {b"ssl-client-verify", b"ssl-client-subject-dn", b"ssl_client_issuer_dn"} & names
    assert _app_header(scopes[0], b"x-other") == [b"kept"]
    # The default: 503, the app never called (unchanged).
    asyncio.run(go(ProxySettings(), b"app.test"))
    assert sent[-1]["status"] == 503 and len(scopes) == 1
    # A host without auth-tls-*: passed as ingress-nginx passes them (README's divergences).
    asyncio.run(go(ProxySettings(deny_unenforced_access_annotations=False), b"plain.test"))
    assert sent[-1]["status"] == 200
    assert _app_header(scopes[-1], b"ssl-client-verify") == [b"SUCCESS"]


def test_asgi_fallback_under_satisfy_any_allowlist_is_not_asked_and_gets_no_forged_header() -> None:
    # satisfy: any with an allowlist admitting the address: the access phase ends there (no
    # auth subrequest), and the fallback gets no X-User at all (1. above).
    async def go() -> tuple[int, list[dict[str, Any]], AuthService]:
        async with AuthService(DENY) as auth:
            ann = {P + "auth-url": f"http://127.0.0.1:{auth.port}/auth",
                   P + "auth-response-headers": "X-User", P + "satisfy": "any",
                   P + "whitelist-source-range": "127.0.0.0/8"}
            status, scopes = await _fallback_call(
                ingress_yaml("site", "app.test", ann, path="/api") + SERVICES,
                [(b"x-user", b"admin")])
            return status, scopes, auth
    status, scopes, auth = asyncio.run(go())
    assert status == 200 and len(scopes) == 1 and not auth.heads
    assert _app_header(scopes[0], b"x-user") == []
