"""A host's path no rule covers, served by another Ingress's ``defaultBackend`` (SEMANTICS §4.5),
is the host server's ``location /``: what that location does on the client's side is the host
owner's (session 27, G1).

ingress-nginx builds the root location of a host's server from the oldest non-canary Ingress
with a rule for the host (kubernetes/ingress-nginx internal/ingress/controller/controller.go
``createServers``: "loc := &ingress.Location{Path: rootLocation, ..., IsDefBackend: true,
Backend: un, Ingress: ing}; locationApplyAnnotations(loc, anns)"), and
``locationApplyAnnotations`` copies the owner's "loc.CorsConfig = anns.CorsConfig",
"loc.CustomHeaders = anns.CustomHeaders", "loc.Mirror = anns.Mirror", "loc.RateLimit =
anns.RateLimit" (limit-rps/-rpm/-connections and limit-rate, limit-rate-after),
"loc.GlobalRateLimit = anns.GlobalRateLimit", "loc.Proxy = anns.Proxy" (client_max_body_size),
"loc.Logs = anns.Logs" (access_log) and "loc.UsePortInRedirects = anns.UsePortInRedirects".
Before: the default backend's Ingress's own CORS, custom-headers, mirror, limit-rate, body size,
access log and redirect port answered such a path, and its global-rate-limit only (the owner's
was not carried over). The backend itself stays the default backend Ingress's (its Service,
upstream-vhost, backend-protocol, proxy-ssl, timeouts: SEMANTICS §4.5's choice, README).

Each test runs the proxy core (``Proxy.connection``) and IngressASGI on the same manifests.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from ingresslib import IngressASGI, Router, parse_manifests
from ingresslib.proxy import Mirror, OpenUpstream, Proxy, ProxySettings, SendDownstream

from _proxy_harness import ProxyPair, status_of

P = "nginx.ingress.kubernetes.io/"
ORIGIN = "https://a.test"
OWNER_CORS = {P + "enable-cors": "true", P + "cors-allow-origin": ORIGIN}
ALLOWED = ProxySettings(global_allowed_response_headers=("X-Team",))


def _ann(annotations: dict[str, str]) -> str:
    return ", ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in annotations.items())


def _service(name: str, address: str) -> str:
    return f"""
---
apiVersion: v1
kind: Service
metadata: {{name: {name}, namespace: default}}
spec: {{ports: [{{port: 80, targetPort: 8080}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: {name}-1, namespace: default, labels: {{kubernetes.io/service-name: {name}}}}}
addressType: IPv4
ports: [{{port: 8080}}]
endpoints: [{{addresses: [{address}]}}]
"""


def _config_map(name: str, data: dict[str, str]) -> str:
    return f"""
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: {name}, namespace: default}}
data: {{{_ann(data)}}}
"""


def manifests(owner: dict[str, str] | None = None, dflt: dict[str, str] | None = None) -> str:
    """app.test's only Ingress ``app`` (the owner: a rule for /api, no defaultBackend) and the
    older Ingress ``dflt`` with no rules and a defaultBackend (Service ``dflt``), which serves
    app.test's other paths (SEMANTICS §4.5)."""
    return f"""
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: dflt, namespace: default, creationTimestamp: '2023-01-01T00:00:00Z',
           annotations: {{{_ann(dflt or {})}}}}}
spec:
  defaultBackend: {{service: {{name: dflt, port: {{number: 80}}}}}}
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: app, namespace: default, creationTimestamp: '2024-01-01T00:00:00Z',
           annotations: {{{_ann(owner or {})}}}}}
spec:
  rules:
  - host: app.test
    http:
      paths:
      - {{path: /api, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
""" + _service("web", "10.0.0.1") + _service("dflt", "10.0.0.9") \
        + _service("shadow", "10.0.0.7") \
        + _config_map("owner-hdrs", {"X-Team": "owner"}) \
        + _config_map("dflt-hdrs", {"X-Team": "dflt"})


DFLT = ("10.0.0.9", 8080)


def _headers(out: bytes) -> dict[bytes, bytes]:
    head = out.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
    return {n.strip().lower(): v.strip() for n, _, v in (ln.partition(b":") for ln in head)}


class CoreAnswer:
    def __init__(self, pair: ProxyPair, out: bytes) -> None:
        self.pair = pair
        self.status = status_of(out)
        self.headers = _headers(out)
        self.endpoints = [o.endpoint for o in pair.opens]


def core(m: str, request: str, settings: ProxySettings | None = None,
         tls_hosts: tuple[str, ...] = ()) -> CoreAnswer:
    """The proxy core's answer to ``request`` (its head lines, without the final CRLF)."""
    pair = ProxyPair(router=Router(parse_manifests(m), seed=1), settings=settings,
                     tls_hosts=tls_hosts)
    out = pair.send((request + "\r\n\r\n").encode())
    return CoreAnswer(pair, out)


class AsgiAnswer:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.apps: list[str] = []

    @property
    def status(self) -> int:
        return int(self.sent[0]["status"])

    @property
    def headers(self) -> dict[bytes, bytes]:
        return {bytes(n).lower(): bytes(v) for n, v in self.sent[0].get("headers", [])}


def _app(name: str, answer: AsgiAnswer) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        answer.apps.append(name)
        while True:
            msg = await receive()
            if msg["type"] != "http.request" or not msg.get("more_body"):
                break
        if name == "shadow":
            return  # the mirror's answer is discarded
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def asgi_app(m: str, answer: AsgiAnswer, settings: ProxySettings | None = None,
             tls_hosts: tuple[str, ...] = ()) -> IngressASGI:
    return IngressASGI(Router(parse_manifests(m), seed=1),
                       backends={f"default/{n}": _app(n, answer)
                                 for n in ("web", "dflt", "shadow")},
                       settings=settings, tls_hosts=tls_hosts, request_id=lambda: "0" * 32)


async def _call(app: IngressASGI, answer: AsgiAnswer, method: str, path: str,
                headers: list[tuple[bytes, bytes]], body: bytes = b"") -> None:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 80), "extensions": {}}
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(0)
        return {"type": "http.disconnect"}

    async def send(msg: Any) -> None:
        answer.sent.append(dict(msg))

    await app(scope, receive, send)


def asgi(m: str, method: str, path: str, headers: list[tuple[bytes, bytes]] | None = None,
         body: bytes = b"", settings: ProxySettings | None = None,
         tls_hosts: tuple[str, ...] = ()) -> AsgiAnswer:
    answer = AsgiAnswer()
    app = asgi_app(m, answer, settings, tls_hosts)
    hdrs = [(b"host", b"app.test"), *(headers or [])]
    asyncio.run(_call(app, answer, method, path, hdrs, body))
    return answer


# --- CORS: loc.CorsConfig ------------------------------------------------------------------------


def test_defect_owners_cors_answers_the_default_backends_paths() -> None:
    # Before: the default backend's Ingress (no CORS) decided: no Access-Control-* headers and
    # the OPTIONS went to the backend. Now the owner's CORS, as the same path gets without a
    # default backend.
    m = manifests(OWNER_CORS)
    r = core(m, f"GET /other HTTP/1.1\r\nHost: app.test\r\nOrigin: {ORIGIN}")
    assert r.endpoints == [DFLT] and r.status == 200
    assert r.headers.get(b"access-control-allow-origin") == ORIGIN.encode()
    a = asgi(m, "GET", "/other", [(b"origin", ORIGIN.encode())])
    assert a.apps == ["dflt"] and a.status == 200
    assert a.headers.get(b"access-control-allow-origin") == ORIGIN.encode()
    pre = ("OPTIONS /other HTTP/1.1\r\nHost: app.test\r\nOrigin: " + ORIGIN
           + "\r\nAccess-Control-Request-Method: PUT")
    r = core(m, pre)
    assert r.status == 204 and r.endpoints == []
    a = asgi(m, "OPTIONS", "/other", [(b"origin", ORIGIN.encode()),
                                      (b"access-control-request-method", b"PUT")])
    assert a.status == 204 and a.apps == []


def test_defect_default_backend_ingress_cors_is_not_the_hosts() -> None:
    # The default backend's Ingress's CORS belongs to its own locations, not to app.test's
    # location / (which has the owner's: none). Before: its headers and 204 answered.
    m = manifests({}, OWNER_CORS)
    r = core(m, f"GET /other HTTP/1.1\r\nHost: app.test\r\nOrigin: {ORIGIN}")
    assert r.endpoints == [DFLT] and b"access-control-allow-origin" not in r.headers
    a = asgi(m, "GET", "/other", [(b"origin", ORIGIN.encode())])
    assert a.apps == ["dflt"] and b"access-control-allow-origin" not in a.headers


# --- custom-headers: loc.CustomHeaders -----------------------------------------------------------


def test_defect_owners_custom_headers_on_the_default_backends_answer() -> None:
    m = manifests({P + "custom-headers": "default/owner-hdrs"},
                  {P + "custom-headers": "default/dflt-hdrs"})
    r = core(m, "GET /other HTTP/1.1\r\nHost: app.test", settings=ALLOWED)
    assert r.endpoints == [DFLT] and r.headers.get(b"x-team") == b"owner"
    a = asgi(m, "GET", "/other", settings=ALLOWED)
    assert a.apps == ["dflt"] and a.headers.get(b"x-team") == b"owner"
    # Without the owner's, none (the default backend Ingress's are its own locations').
    m = manifests({}, {P + "custom-headers": "default/dflt-hdrs"})
    assert b"x-team" not in core(m, "GET /other HTTP/1.1\r\nHost: app.test",
                                 settings=ALLOWED).headers
    assert b"x-team" not in asgi(m, "GET", "/other", settings=ALLOWED).headers


# --- body size: loc.Proxy (client_max_body_size) -------------------------------------------------


def test_defect_owners_body_size_limits_the_default_backends_paths() -> None:
    # The owner's proxy-body-size is the location's client_max_body_size: 413 before
    # proxying (as the same path without a default backend, and IngressASGI's ``fallback``).
    # Before: the default backend Ingress's (the ConfigMap's 1m) let it through.
    m = manifests({P + "proxy-body-size": "10"})
    req = "POST /other HTTP/1.1\r\nHost: app.test\r\nContent-Length: 20"
    r = core(m, req)
    assert r.status == 413 and r.endpoints == []
    a = asgi(m, "POST", "/other", [(b"content-length", b"20")], b"x" * 20)
    assert a.status == 413 and a.apps == []
    # The default backend Ingress's own small limit is not the host's.
    m = manifests({}, {P + "proxy-body-size": "10"})
    pair = ProxyPair(router=Router(parse_manifests(m), seed=1))
    out = pair.send(b"POST /other HTTP/1.1\r\nHost: app.test\r\nContent-Length: 20\r\n\r\n"
                    + b"x" * 20)
    assert status_of(out) == 200 and [o.endpoint for o in pair.opens] == [DFLT]
    a = asgi(m, "POST", "/other", [(b"content-length", b"20")], b"x" * 20)
    assert a.status == 200 and a.apps == ["dflt"]


# --- use-port-in-redirects: loc.UsePortInRedirects -----------------------------------------------


def test_defect_owners_port_in_redirects_with_its_ssl_redirect() -> None:
    # The owner's ssl-redirect answers (session 14); its use-port-in-redirects goes with it.
    # Before: the default backend Ingress's (off): no port in the Location.
    m = manifests({P + "force-ssl-redirect": "true", P + "use-port-in-redirects": "true"})
    r = core(m, "GET /other HTTP/1.1\r\nHost: app.test")
    assert (r.status, r.headers.get(b"location")) == (308, b"https://app.test:443/other")
    a = asgi(m, "GET", "/other")
    assert (a.status, a.headers.get(b"location")) == (308, b"https://app.test:443/other")
    # The default backend Ingress's own use-port-in-redirects is not the host's.
    m = manifests({P + "force-ssl-redirect": "true"}, {P + "use-port-in-redirects": "true"})
    assert core(m, "GET /other HTTP/1.1\r\nHost: app.test").headers.get(b"location") \
        == b"https://app.test/other"
    assert asgi(m, "GET", "/other").headers.get(b"location") == b"https://app.test/other"


# --- global-rate-limit: loc.GlobalRateLimit ------------------------------------------------------


def _two_core(m: str) -> list[int]:
    pair = ProxyPair(router=Router(parse_manifests(m), seed=1))
    statuses = []
    for _ in range(2):
        out = pair.send(b"GET /other HTTP/1.1\r\nHost: app.test\r\n\r\n")
        statuses.append(status_of(out))
    return statuses


def _two_asgi(m: str) -> list[int]:
    answer = AsgiAnswer()
    app = asgi_app(m, answer)
    statuses = []
    for _ in range(2):
        answer.sent.clear()
        asyncio.run(_call(app, answer, "GET", "/other", [(b"host", b"app.test")]))
        statuses.append(answer.status)
    return statuses


GLOBAL = {P + "global-rate-limit": "1", P + "global-rate-limit-window": "1m"}


def test_defect_owners_global_rate_limit_counts_the_default_backends_paths() -> None:
    # Before: not carried over (the default backend Ingress has none): never refused.
    m = manifests(GLOBAL)
    assert _two_core(m) == [200, 429]
    assert _two_asgi(m) == [200, 429]


def test_guard_default_backend_ingress_global_rate_limit_kept_without_the_owners() -> None:
    # As limit-* (fail closed): the owner has none, the default backend Ingress's holds.
    m = manifests({}, GLOBAL)
    assert _two_core(m) == [200, 429]
    assert _two_asgi(m) == [200, 429]


# --- mirror: loc.Mirror ----------------------------------------------------------------------------


def _core_mirrors(m: str) -> list[Mirror]:
    proxy = Proxy(Router(parse_manifests(m), seed=1), None, request_id=lambda: "0" * 32)
    conn = proxy.connection(("127.0.0.1", 40000), tls=False, local_port=80, now=0.0)
    actions = list(conn.start(0.0))
    actions += conn.receive_data(b"GET /other HTTP/1.1\r\nHost: app.test\r\n\r\n", 0.0)
    for a in list(actions):
        if isinstance(a, OpenUpstream):
            assert a.endpoint == DFLT
            actions += conn.upstream_connected(a.conn_id, 0.0)
    assert not any(isinstance(a, SendDownstream) for a in actions)  # proxied
    return [a for a in actions if isinstance(a, Mirror)]


SHADOW = "http://shadow.default.svc$request_uri"


def test_defect_owners_mirror_copies_the_default_backends_paths() -> None:
    # Before: the default backend Ingress (no mirror-target) decided: nothing mirrored.
    m = manifests({P + "mirror-target": SHADOW})
    (mirror,) = _core_mirrors(m)
    assert mirror.data.startswith(b"GET /other HTTP/1.1\r\n")
    a = asgi(m, "GET", "/other")
    assert sorted(a.apps) == ["dflt", "shadow"] and a.status == 200


def test_defect_default_backend_ingress_mirror_is_not_the_hosts() -> None:
    # Before: the default backend Ingress's own mirror-target copied app.test's paths.
    m = manifests({}, {P + "mirror-target": SHADOW})
    assert _core_mirrors(m) == []
    a = asgi(m, "GET", "/other")
    assert a.apps == ["dflt"] and a.status == 200


# --- limit-rate, limit-rate-after: loc.RateLimit -------------------------------------------------


def _options(m: str, asgi_side: bool = False) -> Any:
    router = Router(parse_manifests(m), seed=1)
    source: Any = IngressASGI(router, backends={}) if asgi_side else Proxy(router, None)
    decision = router.route("GET", "app.test", "/other", (), "127.0.0.1")
    assert decision is not None and decision.match.is_default_backend
    return source.options_for(decision.match)


def test_defect_owners_limit_rate_for_the_default_backends_answer() -> None:
    # limit-rate / limit-rate-after are the location's (ratelimit.Config LimitRate,
    # LimitRateAfter, in "loc.RateLimit"). Before: the default backend Ingress's (none).
    m = manifests({P + "limit-rate": "2", P + "limit-rate-after": "3"},
                  {P + "limit-rate": "50"})
    for side in (False, True):
        opts = _options(m, side)
        assert (opts.limit_rate, opts.limit_rate_after) == (2048, 3072)
    m = manifests({}, {P + "limit-rate": "50", P + "limit-rate-after": "1"})
    for side in (False, True):
        opts = _options(m, side)
        assert (opts.limit_rate, opts.limit_rate_after) == (0, 0)


def _first_send(m: str) -> int:
    """The bytes of a 4 KB answer of the default backend the core sends at once."""
    proxy = Proxy(Router(parse_manifests(m), seed=1), None, clock=None)
    conn = proxy.connection(("127.0.0.1", 40000), now=0.0, throttle=True)
    conn.start(0.0)
    acts = conn.receive_data(b"GET /other HTTP/1.1\r\nHost: app.test\r\n\r\n", 0.0)
    (opened,) = [a for a in acts if isinstance(a, OpenUpstream)]
    assert opened.endpoint == DFLT
    conn.upstream_connected(opened.conn_id, 0.0)
    acts = conn.upstream_data(opened.conn_id,
                              b"HTTP/1.1 200 OK\r\nContent-Length: 4096\r\n\r\n" + b"y" * 4096,
                              0.0)
    return sum(len(a.data) for a in acts if isinstance(a, SendDownstream))


def test_defect_core_throttles_the_default_backends_answer_by_the_owners_limit_rate() -> None:
    # The proxy core's bandwidth limit (proxy/_bandwidth.py): the owner's 1 KB/s lets 1024
    # bytes out at once, where before the default backend Ingress's (none) sent it all.
    assert _first_send(manifests({P + "limit-rate": "1"})) == 1024
    assert _first_send(manifests({}, {P + "limit-rate": "1"})) > 4096


# --- enable-access-log: loc.Logs -------------------------------------------------------------------


def test_defect_owners_access_log_setting_for_the_default_backends_paths() -> None:
    r = core(manifests({P + "enable-access-log": "false"}),
             "GET /other HTTP/1.1\r\nHost: app.test\r\nConnection: close")
    assert r.endpoints == [DFLT] and [x.access_log for x in r.pair.records] == [False]
    r = core(manifests({}, {P + "enable-access-log": "false"}),
             "GET /other HTTP/1.1\r\nHost: app.test\r\nConnection: close")
    assert [x.access_log for x in r.pair.records] == [True]


# --- what stays the default backend Ingress's: its backend ---------------------------------------


def test_guard_backend_options_stay_the_default_backend_ingresses() -> None:
    # upstream-vhost, backend-protocol, timeouts, a path rewrite-target: how the default
    # backend's Service is spoken to (README, SEMANTICS §4.5), not the owner's (whose values
    # name its own backends).
    m = manifests({P + "upstream-vhost": "owner.internal", P + "proxy-read-timeout": "7",
                   P + "rewrite-target": "/owner"},
                  {P + "upstream-vhost": "dflt.internal", P + "proxy-read-timeout": "9"})
    r = core(m, "GET /other HTTP/1.1\r\nHost: app.test")
    (up,) = r.pair.upstreams
    (req, _), = up.requests
    assert req.target == b"/other"
    assert dict(req.headers)[b"host"] == b"dflt.internal"
    for side in (False, True):
        opts = _options(m, side)
        assert (opts.upstream_vhost, opts.read_timeout, opts.rewrite_target) == (
            b"dflt.internal", 9.0, None)


def test_guard_the_owners_own_default_backend_keeps_its_options() -> None:
    # The owner's own defaultBackend (SEMANTICS §4.5: the host group's Ingress first) is its
    # location already: nothing replaced (its own CORS, one Ingress).
    m = manifests(OWNER_CORS).replace(
        "  rules:\n  - host: app.test",
        "  defaultBackend: {service: {name: web, port: {number: 80}}}\n"
        "  rules:\n  - host: app.test")
    r = core(m, f"GET /other HTTP/1.1\r\nHost: app.test\r\nOrigin: {ORIGIN}")
    assert r.endpoints == [("10.0.0.1", 8080)]
    assert r.headers.get(b"access-control-allow-origin") == ORIGIN.encode()


def test_defect_explain_shows_the_owners_location(tmp_path: Any,
                                                  capsys: Any) -> None:
    # ``ingresslib explain`` reads the proxy's options (``options_for``): the owner's CORS and
    # limit-rate for the default backend's path, not the default backend Ingress's mirror.
    from ingresslib._cli import main

    files = tmp_path / "m.yaml"
    files.write_text(manifests({**OWNER_CORS, P + "limit-rate": "2"},
                               {P + "mirror-target": SHADOW}))
    assert main(["explain", "-f", str(files), "-o", "json", "http://app.test/other"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["match"]["ingress"] == "default/dflt"
    assert out["cors"]["allow_origin"] == [ORIGIN]
    assert out["limit_rate"]["bytes_per_second"] == 2048
    assert "mirror" not in out
