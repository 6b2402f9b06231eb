"""IngressASGI against the proxy core: the same request, the same answer where ASGI allows it.

Each test feeds identical input to ``IngressASGI`` (a raw ASGI call: no network) and to the
sans-IO proxy core (``ingresslib.proxy.Proxy`` over the same ``Router``), then compares what
the client gets, or what reaches the app and the backend.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterable
from typing import Any

import pytest

from ingresslib._asgi import DECISION_KEY, IngressASGI
from ingresslib._load import parse_manifests
from ingresslib._router import Router
from ingresslib.proxy import OpenUpstream, Proxy, ProxySettings, SendDownstream, SendUpstream

from _proxy_harness import ingress_yaml as _ingress

#: Resources are frozen: one parse per manifest text, not one per hypothesis example (each
#: call still builds its own Router and proxy / app).
_parsed = functools.lru_cache(maxsize=None)(parse_manifests)

P = "nginx.ingress.kubernetes.io/"


SERVICE = """
---
apiVersion: v1
kind: Service
metadata: {name: SVC, namespace: default}
spec: {ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: SVC-1, namespace: default, labels: {kubernetes.io/service-name: SVC}}
addressType: IPv4
ports: [{port: 8080}]
endpoints: [{addresses: [10.0.0.1]}, {addresses: [10.0.0.2]}]
"""

MANIFESTS = "".join([
    _ingress("plain", "plain.test"),
    _ingress("secure", "secure.test", tls=True),
    _ingress("force", "force.test", {P + "force-ssl-redirect": "true"}),
    _ingress("noredir", "noredir.test", {P + "ssl-redirect": "false"}, tls=True),
    _ingress("root", "root.test", {P + "app-root": "/app"}),
    _ingress("small", "small.test", {P + "proxy-body-size": "10"}),
    _ingress("sticky", "sticky.test", {P + "affinity": "cookie",
                                        P + "session-cookie-name": "sid"}),
    _ingress("prefix", "prefix.test", {P + "x-forwarded-prefix": "/pre"}),
    _ingress("prefixrw", "prefixrw.test", {P + "x-forwarded-prefix": "/pre",
                                          P + "rewrite-target": "/r"}),
    _ingress("ghost", "ghost.test", service="ghost"),
    SERVICE.replace("SVC", "web"),
])

TLS_HOSTS = {"secure.test", "noredir.test"}


class ProxyResult:
    def __init__(self, status: int | None, headers: list[tuple[bytes, bytes]],
                 body: bytes, upstream: bytes | None) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        #: The request head sent to the backend (None: answered locally).
        self.upstream = upstream

    def header(self, name: bytes) -> bytes | None:
        return next((v for n, v in self.headers if n.lower() == name), None)

    def upstream_headers(self) -> list[tuple[bytes, bytes]]:
        assert self.upstream is not None
        lines = self.upstream.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]
        return [(n.lower(), v.strip()) for n, _, v in (ln.partition(b":") for ln in lines)]


def proxy_answer(request: bytes, *, tls: bool = False, settings: ProxySettings | None = None,
                 manifests: str = MANIFESTS, peer: str = "127.0.0.1",
                 tls_hosts: Any = TLS_HOSTS) -> ProxyResult:
    """What the proxy core does with ``request`` (complete, ``Connection: close``)."""
    proxy = Proxy(Router(_parsed(manifests), seed=1), settings, tls_hosts=tls_hosts,
                  clock=None, request_id=lambda: "0" * 32)
    conn = proxy.connection((peer, 40000), tls=tls, local_port=443 if tls else 80, now=0.0)
    conn.start(0.0)
    actions = conn.receive_data(request, 0.0)
    # A body over the limit is found while it streams: a 413 may follow an OpenUpstream.
    for a in actions:
        if isinstance(a, SendDownstream):
            head, _, body = a.data.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            headers = [(n.lower(), v.strip()) for n, _, v in
                       (ln.partition(b":") for ln in lines[1:])]
            return ProxyResult(int(lines[0].split(b" ")[1]), headers, body, None)
    for a in actions:
        if isinstance(a, OpenUpstream):
            sent = conn.upstream_connected(a.conn_id, 0.0)
            data = b"".join(x.data for x in sent if isinstance(x, SendUpstream))
            return ProxyResult(None, [], b"", data)
    raise AssertionError(f"proxy neither answered nor opened an upstream: {actions}")


class Seen:
    """What a mounted app saw, and what the client got from IngressASGI."""

    def __init__(self) -> None:
        self.scopes: list[dict[str, Any]] = []
        self.sent: list[dict[str, Any]] = []
        self.received: list[dict[str, Any]] = []

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(bytes(n).lower(), bytes(v)) for n, v in self.sent[0].get("headers", [])]

    def header(self, name: bytes) -> bytes | None:
        return next((v for n, v in self.headers if n == name), None)

    def all(self, name: bytes) -> list[bytes]:
        return [v for n, v in self.headers if n == name]

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent[1:]
                        if m["type"] == "http.response.body")

    @property
    def app_ran(self) -> bool:
        return bool(self.scopes)


def app_recording(seen: Seen, *, read_body: bool = True,
                  headers: Iterable[tuple[bytes, bytes]] = ()) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.scopes.append(scope)
        if read_body:
            while True:
                m = await receive()
                seen.received.append(m)
                if m["type"] == "http.disconnect" or not m.get("more_body"):
                    break
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"), *headers]})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


async def asgi_call(request_head: str, *, body: list[bytes] | None = None,
                    scheme: str = "http", client: tuple[str, int] | None = ("127.0.0.1", 40000),
                    app_headers: Iterable[tuple[bytes, bytes]] = (),
                    read_body: bool = True, manifests: str = MANIFESTS,
                    **options: Any) -> Seen:
    """Call IngressASGI with the scope a server builds from ``request_head`` (request line and
    header lines, as for the proxy)."""
    seen = Seen()
    lines = request_head.split("\r\n")
    method, target, version = lines[0].split(" ")
    headers = [(n.strip().lower().encode(), v.strip().encode())
               for n, _, v in (ln.partition(":") for ln in lines[1:] if ln)]
    raw_path, _, query = target.partition("?")
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"},
             "http_version": version.partition("/")[2], "method": method, "scheme": scheme,
             "path": raw_path, "raw_path": raw_path.encode(), "query_string": query.encode(),
             "root_path": "", "headers": headers, "client": client,
             "server": ("127.0.0.1", 443 if scheme == "https" else 80), "extensions": {}}
    chunks = list(body or [b""])

    async def receive() -> dict[str, Any]:
        if chunks:
            chunk = chunks.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}
        await asyncio.sleep(0)
        return {"type": "http.disconnect"}

    async def send(m: Any) -> None:
        seen.sent.append(dict(m))

    options.setdefault("tls_hosts", TLS_HOSTS)
    options.setdefault("request_id", lambda: "0" * 32)
    app = IngressASGI(Router(_parsed(manifests), seed=1),
                      backends={"default/web": app_recording(seen, read_body=read_body,
                                                             headers=app_headers)},
                      **options)
    await app(scope, receive, send)
    return seen


def wire(head: str, body: bytes = b"") -> bytes:
    return (head + "\r\nConnection: close\r\n\r\n").encode() + body


async def assert_same_answer(head: str, *, scheme: str = "http", manifests: str = MANIFESTS,
                             tls_hosts: Any = TLS_HOSTS, **options: Any) -> Seen:
    """The proxy core and IngressASGI answer ``head`` alike: the same local answer (status,
    Location, body), or both pass it on (to the backend / the app)."""
    want = proxy_answer(wire(head), tls=scheme == "https", manifests=manifests,
                        tls_hosts=tls_hosts)
    got = await asgi_call(head, scheme=scheme, manifests=manifests, tls_hosts=tls_hosts,
                          **options)
    if want.status is None:
        assert got.app_ran and got.status == 200
    else:
        assert not got.app_ran
        assert (got.status, got.header(b"location"), got.body) == (
            want.status, want.header(b"location"), want.body)
    return got


# -- redirects answered before any app (SEMANTICS §9 "Annotations") ----------------------------


@pytest.mark.parametrize("head,scheme", [
    ("GET /a/b?x=1 HTTP/1.1\r\nHost: secure.test", "http"),
    ("GET /a/b?x=1 HTTP/1.1\r\nHost: Secure.Test.:80", "http"),
    ("GET /x HTTP/1.1\r\nHost: force.test", "http"),
    ("GET /x HTTP/1.1\r\nHost: force.test", "https"),
    ("GET /x HTTP/1.1\r\nHost: noredir.test", "http"),
    ("GET /.well-known/acme-challenge/t HTTP/1.1\r\nHost: secure.test", "http"),
    ("GET / HTTP/1.1\r\nHost: root.test", "http"),
    ("GET /?q=1 HTTP/1.1\r\nHost: root.test:8080", "http"),
    ("GET /other HTTP/1.1\r\nHost: root.test", "http"),
    ("GET /x HTTP/1.1\r\nHost: secure.test", "https"),
])
@pytest.mark.asyncio
async def test_redirects_as_from_the_proxy(head: str, scheme: str) -> None:
    want = proxy_answer(wire(head), tls=scheme == "https")
    got = await asgi_call(head, scheme=scheme)
    if want.status is None:
        assert got.app_ran and got.status == 200
        return
    assert not got.app_ran
    assert (got.status, got.header(b"location"), got.body) == (
        want.status, want.header(b"location"), want.body)


@pytest.mark.asyncio
async def test_ssl_redirect_needs_tls_hosts() -> None:
    # IngressASGI cannot know that its server also serves HTTPS: a host's spec.tls alone does
    # not redirect (the proxy, too, redirects only with an HTTPS listener); ``tls_hosts`` says
    # which hosts are served over HTTPS, as the proxy's argument of the same name.
    got = await asgi_call("GET /x HTTP/1.1\r\nHost: secure.test", tls_hosts=())
    assert got.app_ran
    got = await asgi_call("GET /x HTTP/1.1\r\nHost: secure.test",
                          tls_hosts=lambda host: host == "secure.test")
    assert got.status == 308 and got.header(b"location") == b"https://secure.test/x"
    got = await asgi_call("GET /x HTTP/1.1\r\nHost: a.secure.test",
                          manifests=MANIFESTS.replace("host: secure.test", "host: a.secure.test"),
                          tls_hosts={"*.secure.test"})
    assert got.status == 308 and got.header(b"location") == b"https://a.secure.test/x"


@pytest.mark.asyncio
async def test_redirect_port_and_code_follow_the_options() -> None:
    got = await asgi_call("GET /x HTTP/1.1\r\nHost: force.test",
                          https_port=8443, settings=ProxySettings(http_redirect_code=301))
    assert got.status == 301 and got.header(b"location") == b"https://force.test:8443/x"


# A request without Host (HTTP/1.0) can only reach a rule without host. ssl-redirect then has
# no host to send the client to: the request is served (ingress-nginx would send
# "https://_/x"); app-root answers the relative "Location: /app" (nginx: "http:///app").
NO_HOST = "".join([
    _ingress("anyforce", "", {P + "force-ssl-redirect": "true"}, path="/f"),
    _ingress("anyroot", "", {P + "app-root": "/app"}),
    SERVICE.replace("SVC", "web"),
])
NO_HOST_SLASHES = _ingress("anyroot", "", {P + "app-root": "//evil.test/x"}) + \
    SERVICE.replace("SVC", "web")


@pytest.mark.parametrize("head,manifests", [
    ("GET /f/x HTTP/1.0", NO_HOST),                      # force-ssl-redirect: served
    ("GET / HTTP/1.0", NO_HOST),                         # app-root: relative Location
    ("GET /?q=1 HTTP/1.0", NO_HOST),
    ("HEAD / HTTP/1.0", NO_HOST),
    ("GET / HTTP/1.0\r\nHost: any.test:8080", NO_HOST),  # with Host: absolute, as before
    ("GET / HTTP/1.0", NO_HOST_SLASHES),                 # "//..." would name another host
])
@pytest.mark.asyncio
async def test_redirects_without_host_as_from_the_proxy(head: str, manifests: str) -> None:
    # Before: "Location: https:///f/x" and "Location: http:///app", no host at all.
    got = await assert_same_answer(head, manifests=manifests)
    location = got.header(b"location")
    assert location is None or b":///" not in location


# A path of a known host that no rule covers: ingress-nginx serves it from the host's server
# "location /" (the oldest non-canary Ingress with a rule for the host), whose ssl-redirect
# runs before the default backend's 404 (proxy ``_redirect_unrouted``).
UNROUTED = "".join([
    _ingress("u-secure", "usecure.test", path="/api", tls=True),
    _ingress("u-force", "uforce.test", {P + "force-ssl-redirect": "true"}, path="/api"),
    _ingress("u-old", "shop.test", {P + "ssl-redirect": "false"}, path="/api", tls=True,
             created="2024-01-01T00:00:00Z"),
    _ingress("u-new", "shop.test", path="/b", tls=True, created="2024-02-01T00:00:00Z"),
    _ingress("u-canary", "canary.test", {P + "canary": "true", P + "ssl-redirect": "false"},
             path="/b", tls=True, created="2024-01-01T00:00:00Z"),
    _ingress("u-main", "canary.test", path="/api", tls=True, created="2024-02-01T00:00:00Z"),
    _ingress("u-wild", "*.wild.test", path="/api"),
    SERVICE.replace("SVC", "web"),
])
UNROUTED_TLS = {"usecure.test", "shop.test", "canary.test", "other.test", "*.wild.test"}


@pytest.mark.parametrize("head,scheme", [
    ("GET /other?x=1 HTTP/1.1\r\nHost: Usecure.test:80", "http"),     # 308
    ("GET /api/x HTTP/1.1\r\nHost: usecure.test", "https"),           # routed: the app
    ("GET /other HTTP/1.1\r\nHost: usecure.test", "https"),           # 404
    ("GET /.well-known/acme-challenge/t HTTP/1.1\r\nHost: usecure.test", "http"),  # 404
    ("GET /other HTTP/1.1\r\nHost: uforce.test", "http"),             # force: 308 without TLS
    ("GET /other HTTP/1.1\r\nHost: shop.test", "http"),               # oldest says no: 404
    ("GET /other HTTP/1.1\r\nHost: canary.test", "http"),             # canary skipped: 308
    ("GET /other HTTP/1.1\r\nHost: other.test", "http"),              # no rule for host: 404
    ("GET /x HTTP/1.1\r\nHost: a.wild.test", "http"),                 # wildcard rule: 308
    ("GET /x HTTP/1.1\r\nHost: b.a.wild.test", "http"),               # one label only: 404
    ("GET /x HTTP/1.0", "http"),                                      # no Host: 404
])
@pytest.mark.asyncio
async def test_unrouted_paths_redirect_as_from_the_proxy(head: str, scheme: str) -> None:
    # Before: 404 for every one of them.
    await assert_same_answer(head, scheme=scheme, manifests=UNROUTED, tls_hosts=UNROUTED_TLS)


@pytest.mark.asyncio
async def test_unrouted_redirect_comes_before_the_fallback_app() -> None:
    # The fallback app plays the default backend, which the host's "location /" redirects
    # before; a path it is not redirected for still reaches the fallback.
    served: list[str] = []

    async def fallback(scope: Any, receive: Any, send: Any) -> None:
        served.append(scope["path"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    got = await asgi_call("GET /other HTTP/1.1\r\nHost: usecure.test", manifests=UNROUTED,
                          tls_hosts=UNROUTED_TLS, fallback=fallback)
    assert (got.status, got.header(b"location")) == (308, b"https://usecure.test/other")
    got = await asgi_call("GET /other HTTP/1.1\r\nHost: shop.test", manifests=UNROUTED,
                          tls_hosts=UNROUTED_TLS, fallback=fallback)
    assert got.status == 204 and served == ["/other"]


@pytest.mark.asyncio
async def test_unrouted_redirect_follows_updates_and_settings() -> None:
    # As the proxy's test_unrouted_options_follow_a_new_table: computed per table.
    seen = Seen()
    app = IngressASGI(Router(parse_manifests(UNROUTED), seed=1),
                      backends={"default/web": app_recording(seen)}, tls_hosts=UNROUTED_TLS)

    async def call(host: str) -> Seen:
        out = Seen()

        async def receive() -> Any:
            return {"type": "http.request"}

        async def send(m: Any) -> None:
            out.sent.append(dict(m))

        await app({"type": "http", "method": "GET", "scheme": "http", "path": "/other",
                   "raw_path": b"/other", "query_string": b"", "root_path": "",
                   "headers": [(b"host", host.encode())], "client": None, "server": None},
                  receive, send)
        return out

    assert (await call("shop.test")).status == 404
    # The new table's oldest Ingress for shop.test asks for the redirect.
    app.update(parse_manifests(UNROUTED.replace("2024-01-01T00:00:00Z", "2024-03-01T00:00:00Z")))
    assert (await call("shop.test")).status == 308
    # ssl-redirect off in the settings (ConfigMap), redirect code from the settings.
    assert (await call("usecure.test")).status == 308
    app.settings = ProxySettings(ssl_redirect=False)
    assert (await call("usecure.test")).status == 404
    app.settings = ProxySettings(http_redirect_code=301)
    assert (await call("usecure.test")).status == 301


# -- response headers added as the proxy adds them ------------------------------------------


@pytest.mark.parametrize("head", [
    "GET /x HTTP/1.1\r\nHost: plain.test",         # served by the app
    "GET /x HTTP/1.1\r\nHost: nowhere.test",       # 404
    "GET / HTTP/1.1\r\nHost: root.test",           # 302
])
@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.asyncio
async def test_hsts_on_https_only(head: str, scheme: str) -> None:
    want = proxy_answer(wire(head), tls=scheme == "https")
    got = await asgi_call(head, scheme=scheme)
    want_hsts = b"max-age=31536000; includeSubDomains" if scheme == "https" else None
    if want.status is not None:
        assert want.header(b"strict-transport-security") == want_hsts
    assert got.all(b"strict-transport-security") == ([want_hsts] if want_hsts else [])


@pytest.mark.asyncio
async def test_hsts_of_the_app_is_kept_and_settings_apply() -> None:
    got = await asgi_call("GET /x HTTP/1.1\r\nHost: plain.test", scheme="https",
                          app_headers=[(b"Strict-Transport-Security", b"max-age=5")])
    assert got.all(b"strict-transport-security") == [b"max-age=5"]
    got = await asgi_call("GET /x HTTP/1.1\r\nHost: plain.test", scheme="https",
                          settings=ProxySettings(hsts=False))
    assert got.all(b"strict-transport-security") == []
    got = await asgi_call("GET /x HTTP/1.1\r\nHost: plain.test", scheme="https",
                          settings=ProxySettings(hsts_max_age=60, hsts_preload=True))
    assert got.all(b"strict-transport-security") == [b"max-age=60; includeSubDomains; preload"]


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.asyncio
async def test_affinity_cookie_reaches_the_client(scheme: str) -> None:
    head = "GET /x HTTP/1.1\r\nHost: sticky.test"
    want = proxy_answer(wire(head), tls=scheme == "https")
    assert want.status is None  # proxied: the cookie comes with the upstream's answer
    router = Router(parse_manifests(MANIFESTS), seed=1)
    expected = router.route("GET", "sticky.test", "/x", (), "127.0.0.1")
    assert expected is not None and expected.set_cookie
    got = await asgi_call(head, scheme=scheme)
    cookies = got.all(b"set-cookie")
    assert len(cookies) == 1 and cookies[0].startswith(b"sid=")
    attrs = [a.strip().lower() for a in cookies[0].split(b";")[1:]]
    assert (b"secure" in attrs) == (scheme == "https")
    # The cookie it set brings the client back without a new one.
    got = await asgi_call(head + "\r\nCookie: " + cookies[0].split(b";")[0].decode())
    assert got.app_ran and got.all(b"set-cookie") == []


# -- body size (proxy-body-size, 413) --------------------------------------------------------


@pytest.mark.parametrize("length,status", [(10, None), (11, 413)])
@pytest.mark.asyncio
async def test_body_size_by_content_length(length: int, status: int | None) -> None:
    head = f"POST /x HTTP/1.1\r\nHost: small.test\r\nContent-Length: {length}"
    want = proxy_answer(wire(head, b"a" * length))
    assert want.status == status
    got = await asgi_call(head, body=[b"a" * length])
    if status is None:
        assert got.app_ran and got.status == 200
    else:
        assert not got.app_ran and (got.status, got.body) == (413, want.body)


@pytest.mark.asyncio
async def test_streamed_body_over_the_limit_is_413() -> None:
    # No Content-Length (chunked, or HTTP/2): the limit applies to the bytes as they come.
    head = "POST /x HTTP/1.1\r\nHost: small.test\r\nTransfer-Encoding: chunked"
    want = proxy_answer(wire(head, b"6\r\naaaaaa\r\n6\r\naaaaaa\r\n0\r\n\r\n"))
    assert want.status == 413
    got = await asgi_call(head, body=[b"a" * 6, b"a" * 6])
    assert (got.status, got.body) == (413, want.body)
    # The app read the first chunk, then learned the request is over for it.
    assert got.received[0]["body"] == b"a" * 6
    assert got.received[-1] == {"type": "http.disconnect"}
    assert [m["type"] for m in got.sent] == ["http.response.start", "http.response.body"]


@pytest.mark.asyncio
async def test_streamed_body_within_the_limit_reaches_the_app() -> None:
    got = await asgi_call("POST /x HTTP/1.1\r\nHost: small.test", body=[b"a" * 5, b"b" * 5])
    assert got.status == 200
    assert b"".join(m["body"] for m in got.received) == b"a" * 5 + b"b" * 5


@pytest.mark.asyncio
async def test_body_over_the_limit_after_the_response_began_raises() -> None:
    # The proxy closes the client connection ("If the response had already begun, the client
    # connection is closed instead"); an ASGI app can only make its server do that by raising.
    seen = Seen()

    async def early(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200})
        while (await receive())["type"] != "http.disconnect":
            pass
        await send({"type": "http.response.body", "body": b"late"})

    chunks = [b"a" * 6, b"a" * 6]

    async def receive() -> dict[str, Any]:
        if chunks:
            return {"type": "http.request", "body": chunks.pop(0), "more_body": bool(chunks)}
        return {"type": "http.disconnect"}

    async def send(m: Any) -> None:
        seen.sent.append(dict(m))

    app = IngressASGI(parse_manifests(MANIFESTS), backends={"default/web": early})
    scope = {"type": "http", "method": "POST", "scheme": "http", "path": "/x",
             "raw_path": b"/x", "query_string": b"", "root_path": "",
             "headers": [(b"host", b"small.test")], "client": None, "server": None}
    with pytest.raises(RuntimeError, match="413"):
        await app(scope, receive, send)
    assert [m["type"] for m in seen.sent] == ["http.response.start"]


@pytest.mark.asyncio
async def test_default_body_limit_is_the_proxys() -> None:
    big = ProxySettings().proxy_body_size + 1
    head = f"POST /x HTTP/1.1\r\nHost: plain.test\r\nContent-Length: {big}"
    assert proxy_answer(wire(head)).status == 413
    got = await asgi_call(head, read_body=False)
    assert got.status == 413
    got = await asgi_call(head, read_body=False, settings=ProxySettings(proxy_body_size=0))
    assert got.status == 200


# -- 404 / 503 bodies and headers ------------------------------------------------------------


@pytest.mark.parametrize("head", ["GET /x HTTP/1.1\r\nHost: nowhere.test",
                                  "HEAD /x HTTP/1.1\r\nHost: nowhere.test",
                                  "GET /x HTTP/1.1\r\nHost: ghost.test",
                                  "HEAD /x HTTP/1.1\r\nHost: ghost.test",
                                  "GET /x/%2e%2e/%2e%2e HTTP/1.1\r\nHost: plain.test"])
@pytest.mark.asyncio
async def test_local_answers_match_the_proxy(head: str) -> None:
    want = proxy_answer(wire(head))
    got = await asgi_call(head)
    assert (got.status, got.header(b"content-type"), got.header(b"content-length"),
            got.body) == (want.status, want.header(b"content-type"),
                          want.header(b"content-length"), want.body)


def test_decision_key_unchanged() -> None:
    assert DECISION_KEY == "ingresslib.decision"


# -- what reaches the app: the headers the proxy sends its backend (SEMANTICS §9) -----------

SPOOF = ("\r\nX-Forwarded-For: 6.6.6.6, 10.0.0.9\r\nX-Real-IP: 6.6.6.6"
         "\r\nX-Forwarded-Host: evil.test\r\nX-Forwarded-Proto: https"
         "\r\nX-Forwarded-Port: 1\r\nX-Forwarded-Scheme: https\r\nX-Scheme: https"
         "\r\nX-Forwarded-Prefix: /evil\r\nX-Original-Forwarded-For: 7.7.7.7"
         "\r\nX-Original-URI: /evil")
HOP = ("\r\nProxy: http://evil.test:3128\r\nKeep-Alive: timeout=5\r\nTE: trailers"
       "\r\nProxy-Authorization: Basic eDp5\r\nProxy-Connection: keep-alive"
       "\r\nX-Hop: 1\r\nTrailer: x-t")
ODD = ("\r\nX_Forwarded_For: 8.8.8.8\r\nX_Custom: 1\r\nX.Dot: 1\r\nX-Keep: a"
       "\r\nX-Keep: b\r\nUser-Agent: t/1")

TRUSTING = ProxySettings(use_forwarded_headers=True, proxy_real_ip_cidr=("127.0.0.0/8",))


@pytest.mark.parametrize("head,scheme,settings", [
    ("GET /x?q=1 HTTP/1.1\r\nHost: plain.test" + SPOOF + HOP + ODD, "http", None),
    ("GET /x HTTP/1.1\r\nHost: plain.test:8080\r\nConnection: x-hop" + HOP, "https", None),
    ("GET /x HTTP/1.1\r\nHost: plain.test\r\nConnection: host, x-hop" + HOP, "http", None),
    ("GET /x HTTP/1.1\r\nHost: plain.test\r\nX-Request-ID: abc-123", "http", None),
    ("GET /x HTTP/1.1\r\nHost: plain.test\r\nX-Request-ID: a b"
     "\r\nX-Request-ID: second", "http", None),
    ("GET /x HTTP/1.1\r\nHost: plain.test", "http", ProxySettings(generate_request_id=False)),
    ("GET /x HTTP/1.1\r\nHost: plain.test" + SPOOF, "http", TRUSTING),
    ("GET /x HTTP/1.1\r\nHost: plain.test" + SPOOF, "http",
     ProxySettings(use_forwarded_headers=True, compute_full_forwarded_for=True,
                   proxy_real_ip_cidr=("127.0.0.0/8", "10.0.0.0/8"))),
    ("GET /x HTTP/1.1\r\nHost: plain.test" + SPOOF, "http",
     ProxySettings(use_forwarded_headers=True, proxy_real_ip_cidr=("192.0.2.0/24",))),
    ("GET /x HTTP/1.1\r\nHost: plain.test" + ODD, "http",
     ProxySettings(enable_underscores_in_headers=True)),
    ("GET /x HTTP/1.1\r\nHost: plain.test" + SPOOF + "\r\nX-Client-IP: 5.5.5.5"
     "\r\nX_Client_IP: 4.4.4.4", "http",
     ProxySettings(forwarded_for_header="X-Client-IP", use_forwarded_headers=True,
                   enable_underscores_in_headers=True, proxy_real_ip_cidr=("127.0.0.0/8",))),
    ("GET /x HTTP/1.1\r\nHost: plain.test" + ODD, "http",
     ProxySettings(ignore_invalid_headers=False)),
    ("GET /x?a=%20 HTTP/1.1\r\nHost: plain.test", "http",
     ProxySettings(proxy_add_original_uri_header=True)),
    ("GET /x HTTP/1.1\r\nHost: prefix.test", "http", None),
    ("GET /x HTTP/1.1\r\nHost: prefixrw.test", "http", None),
    ("POST /x HTTP/1.1\r\nHost: plain.test\r\nContent-Length: 2", "http", None),
])
@pytest.mark.asyncio
async def test_app_sees_the_headers_the_backend_gets(head: str, scheme: str,
                                                     settings: ProxySettings | None) -> None:
    body = b"ab" if "Content-Length" in head else b""
    want = proxy_answer(wire(head, body), tls=scheme == "https", settings=settings)
    got = await asgi_call(head + "\r\nConnection: close", scheme=scheme, body=[body],
                          settings=settings)
    assert want.status is None and got.app_ran

    def by_name(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        return sorted(headers, key=lambda h: h[0])  # stable: repeated names keep their order

    assert by_name(got.scopes[0]["headers"]) == by_name(want.upstream_headers())


@pytest.mark.asyncio
async def test_routing_uses_the_client_address_the_proxy_finds() -> None:
    # canary by client address is not an ingress-nginx annotation, but upstream-hash-by
    # $remote_addr is: the Router is given the same client_ip as by the proxy.
    ips: list[str | None] = []
    for settings, ip in [(None, "127.0.0.1"), (TRUSTING, "6.6.6.6")]:
        app = IngressASGI(parse_manifests(MANIFESTS), backends={}, settings=settings)
        route = app.router.route

        def spy(*a: Any, route: Any = route, **kw: Any) -> Any:
            ips.append(a[4])
            return route(*a, **kw)

        app.router.route = spy
        seen = Seen()

        async def send(m: Any, seen: Seen = seen) -> None:
            seen.sent.append(m)

        async def receive() -> Any:
            return {"type": "http.request"}

        scope = {"type": "http", "method": "GET", "scheme": "http", "path": "/x",
                 "raw_path": b"/x", "query_string": b"", "root_path": "",
                 "headers": [(b"host", b"plain.test"), (b"x-forwarded-for", b"6.6.6.6")],
                 "client": ("127.0.0.1", 1), "server": None}
        await app(scope, receive, send)
        assert ips[-1] == ip and seen.status == 503


@pytest.mark.asyncio
async def test_rewrite_headers_off_leaves_the_headers_alone() -> None:
    got = await asgi_call("GET /x HTTP/1.1\r\nHost: plain.test" + SPOOF,
                          rewrite_headers=False)
    assert (b"x-forwarded-host", b"evil.test") in got.scopes[0]["headers"]


# -- routing inputs: the same request line and Host, the same outcome ------------------------


@pytest.mark.parametrize("line,host", [
    ("GET /x HTTP/1.1", "PLAIN.TEST"),
    ("GET /x HTTP/1.1", "plain.test."),
    ("GET /x HTTP/1.1", "Plain.Test.:8080"),
    ("GET /x HTTP/1.1", "plain.test:65536"),
    ("GET /x HTTP/1.1", "plain.test:"),
    ("GET /x HTTP/1.1", "plain..test"),
    ("GET /x HTTP/1.1", "[::1]:80"),
    ("GET /x HTTP/1.1", "[::1"),
    ("GET /x HTTP/1.0", None),
    ("GET /x HTTP/1.1", None),
    ("GET /x HTTP/1.1", "plain.test\r\nHost: plain.test"),
    ("GET /x HTTP/1.0", "plain.test\r\nHost: PLAIN.test"),
    ("GET /x HTTP/1.1", "plain.test\r\nHost: other.test"),
    ("GET /x/%2e%2e/y HTTP/1.1", "plain.test"),
    ("GET //x//y HTTP/1.1", "plain.test"),
    ("GET /a%2Fb HTTP/1.1", "plain.test"),
    ("GET /a%2fb HTTP/1.1", "plain.test"),
    ("GET /a%5Cb HTTP/1.1", "plain.test"),
    ("GET /a/../../x HTTP/1.1", "plain.test"),
    ("GET /..;/x HTTP/1.1", "plain.test"),
    ("GET /%zz HTTP/1.1", "plain.test"),
    ("GET /%00 HTTP/1.1", "plain.test"),
    ("GET /%C3 HTTP/1.1", "plain.test"),
    ("GET /caf%C3%A9 HTTP/1.1", "plain.test"),
    ("GET /x?a=../../b&c=%2F HTTP/1.1", "plain.test"),
    ("GET http://plain.test/x HTTP/1.1", "plain.test"),
    ("GET http://other.test/x HTTP/1.1", "plain.test"),
    ("GET http://plain.test/x HTTP/1.0", None),
    ("OPTIONS * HTTP/1.1", "plain.test"),
    ("CONNECT plain.test:443 HTTP/1.1", "plain.test"),
])
@pytest.mark.asyncio
async def test_routing_inputs_as_the_proxy(line: str, host: str | None) -> None:
    head = line + (f"\r\nHost: {host}" if host is not None else "")
    want = proxy_answer(wire(head))
    got = await asgi_call(head)
    if want.status is None:
        assert got.app_ran and got.status == 200
        # What the proxy forwards is what the app sees.
        target = want.upstream.split(b" ")[1] if want.upstream else b""
        path, _, query = target.partition(b"?")
        assert (got.scopes[0]["raw_path"], got.scopes[0]["query_string"]) == (path, query)
    else:
        assert not got.app_ran and got.status == want.status


WS_HEAD = ("GET /chat HTTP/1.1\r\nHost: HOST\r\nUpgrade: websocket\r\nConnection: Upgrade"
           "\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13"
           "\r\nX-Forwarded-For: 6.6.6.6")


async def ws_call(host: str, *, scheme: str = "ws", extension: bool = True) -> Seen:
    seen = Seen()
    lines = WS_HEAD.replace("HOST", host).split("\r\n")[1:]
    headers = [(n.strip().lower().encode(), v.strip().encode())
               for n, _, v in (ln.partition(":") for ln in lines)]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.scopes.append(scope)
        await receive()
        await send({"type": "websocket.accept"})

    async def receive() -> Any:
        return {"type": "websocket.connect"}

    async def send(m: Any) -> None:
        seen.sent.append(dict(m))

    scope = {"type": "websocket", "scheme": scheme, "path": "/chat", "raw_path": b"/chat",
             "query_string": b"", "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 80),
             "extensions": {"websocket.http.response": {}} if extension else {}}
    app_ = IngressASGI(parse_manifests(MANIFESTS), backends={"default/web": app},
                       request_id=lambda: "0" * 32)
    await app_(scope, receive, send)
    return seen


@pytest.mark.asyncio
async def test_websocket_headers_as_the_proxy_sends_them() -> None:
    want = proxy_answer(wire(WS_HEAD.replace("HOST", "plain.test")).replace(
        b"Connection: close\r\n", b""))
    got = await ws_call("plain.test")
    assert got.sent == [{"type": "websocket.accept"}]
    assert sorted(got.scopes[0]["headers"], key=lambda h: h[0]) == sorted(
        want.upstream_headers(), key=lambda h: h[0])


@pytest.mark.asyncio
async def test_websocket_redirect_and_refusal() -> None:
    want = proxy_answer(wire(WS_HEAD.replace("HOST", "force.test")))
    got = await ws_call("force.test")
    assert not got.app_ran and got.sent[0]["type"] == "websocket.http.response.start"
    assert (got.status, got.header(b"location")) == (want.status, want.header(b"location"))
    # Without the extension the handshake can only be refused (the server answers 403).
    got = await ws_call("force.test", extension=False)
    assert got.sent == [{"type": "websocket.close", "code": 1008}]
    # wss is the https of WebSocket: no redirect.
    got = await ws_call("force.test", scheme="wss")
    assert got.app_ran


@pytest.mark.asyncio
async def test_through_httpx_asgi_transport() -> None:
    # A real client over the public ASGI entry point: affinity, HSTS and a redirect.
    import httpx

    hits: list[tuple[str, str]] = []

    async def web(scope: Any, receive: Any, send: Any) -> None:
        headers = dict(scope["headers"])
        hits.append((headers[b"x-forwarded-proto"].decode(), headers[b"x-real-ip"].decode()))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"hi"})

    app = IngressASGI(parse_manifests(MANIFESTS), backends={"default/web": web})
    transport = httpx.ASGITransport(app=app, client=("192.0.2.9", 123))
    async with httpx.AsyncClient(transport=transport, base_url="https://sticky.test") as c:
        r = await c.get("/x", headers={"x-real-ip": "6.6.6.6"})
        assert r.status_code == 200
        assert r.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"
        cookie = r.headers["set-cookie"]
        assert cookie.startswith("sid=") and "; Secure" in cookie
        r = await c.get("/x")  # the jar sends the cookie back: no new session
        assert "set-cookie" not in r.headers
    async with httpx.AsyncClient(transport=transport, base_url="http://force.test") as c:
        r = await c.get("/a?b=1")
        assert (r.status_code, r.headers["location"]) == (308, "https://force.test/a?b=1")
        assert "strict-transport-security" not in r.headers
    assert hits == [("https", "192.0.2.9"), ("https", "192.0.2.9")]


CANARY = MANIFESTS + SERVICE.replace("SVC", "canary") + """
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: plain-canary
  namespace: default
  annotations:
    nginx.ingress.kubernetes.io/canary: "true"
    nginx.ingress.kubernetes.io/canary-by-header: X-Canary
    nginx.ingress.kubernetes.io/canary-by-cookie: beta
    nginx.ingress.kubernetes.io/canary-weight: "30"
spec:
  rules:
  - host: plain.test
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: canary, port: {number: 80}}}}
"""


@pytest.mark.asyncio
async def test_canary_choices_as_the_proxy() -> None:
    # The same sequence of requests through the proxy core and IngressASGI (each over its own
    # Router, same seed): the same backend each time -- header, then cookie, then weight.
    extra = ["", "\r\nX-Canary: always", "\r\nX-Canary: never\r\nCookie: beta=always",
             "\r\nCookie: beta=always", "\r\nCookie: beta=never", "\r\nX-Canary: other"]
    heads = [f"GET /x HTTP/1.1\r\nHost: plain.test{e}" for e in extra] * 4
    router = Router(parse_manifests(CANARY), seed=3)
    want: list[bytes] = []
    route = router.route

    def recording(*a: Any, **kw: Any) -> Any:
        d = route(*a, **kw)
        assert d is not None
        want.append(str(d.service).encode())
        return d

    router.route = recording  # type: ignore[method-assign]
    proxy = Proxy(router, clock=None)
    for head in heads:
        conn = proxy.connection(("127.0.0.1", 1), now=0.0)
        conn.start(0.0)
        assert any(isinstance(a, OpenUpstream) for a in conn.receive_data(wire(head), 0.0))
    got: list[bytes] = []

    def named(name: bytes) -> Any:
        async def app(scope: Any, receive: Any, send: Any) -> None:
            got.append(name)
            await send({"type": "http.response.start", "status": 204})
            await send({"type": "http.response.body"})
        return app

    app = IngressASGI(Router(parse_manifests(CANARY), seed=3),
                      backends={"default/web": named(b"web"), "default/canary": named(b"canary")})
    for head in heads:
        lines = head.split("\r\n")
        headers = [(n.strip().lower().encode(), v.strip().encode())
                   for n, _, v in (ln.partition(":") for ln in lines[1:])]

        async def receive() -> Any:
            return {"type": "http.request"}

        async def send(m: Any) -> None:
            pass

        await app({"type": "http", "method": "GET", "scheme": "http", "path": "/x",
                   "raw_path": b"/x", "query_string": b"", "root_path": "", "headers": headers,
                   "client": ("127.0.0.1", 1), "server": None}, receive, send)
    assert got == want
    assert b"canary" in want and b"web" in want

