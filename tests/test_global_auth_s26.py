"""Global external authentication (session 26): the ConfigMap's ``global-auth-*`` keys and
``no-auth-locations``, the ``enable-global-auth`` annotation (ingress-nginx configmap.go
``ReadConfig``, config.go ``NewDefault``, authreqglobal/main.go, template.go
``shouldApplyGlobalAuth`` / ``isLocationInLocationList``), folded into ``RouteOptions.ext_auth``:
through the ConfigMap reader, the sans-IO core (``Proxy.connection``) and ``ProxyServer``."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from pathlib import Path
from typing import Any

import h11
import pytest

from ingresslib import Router, ValidationError, parse_manifests
from ingresslib.proxy import ProxySettings, load_config, parse_config_data
from ingresslib.proxy._annotations import IMPLEMENTED, parse_route_options

from _proxy_harness import FakeUpstream, ProxyPair, Reply, Route, ok, status_of

P = "nginx.ingress.kubernetes.io/"
GAUTH = ("10.5.0.9", 9000)
OWN = ("10.5.0.1", 4180)
WEB = ("10.0.0.1", 8080)
GURL = "http://10.5.0.9:9000/global/check?g=1"
OWN_URL = "http://10.5.0.1:4180/own"
GET = b"GET /a?b=1 HTTP/1.1\r\nHost: app.test\r\n\r\n"


def _settings(**kw: Any) -> ProxySettings:
    return dataclasses.replace(ProxySettings(global_auth_url=GURL), **kw)


def _app(reply: bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n") -> Any:
    def app(request: h11.Request, data: bytes, up: FakeUpstream) -> Reply | None:
        if up.endpoint in (GAUTH, OWN):
            return Reply(reply)
        return ok(b"backend " + request.target)
    return app


def _pair(routes: list[Route], settings: ProxySettings | None = None, **kw: Any) -> ProxyPair:
    return ProxyPair(routes, settings if settings is not None else _settings(),
                     app=_app(**kw))


def _ups(p: ProxyPair, endpoint: tuple[str, int]) -> list[FakeUpstream]:
    return [u for u in p.upstreams if u.endpoint == endpoint]


def _headers(up: FakeUpstream, i: int = 0) -> dict[bytes, list[bytes]]:
    out: dict[bytes, list[bytes]] = {}
    for n, v in up.requests[i][0].headers:
        out.setdefault(n, []).append(v)
    return out


# ------------------------------------------------------------------ the ConfigMap
def test_configmap_keys_are_read() -> None:
    cfg = parse_config_data({
        "global-auth-url": "https://auth.example/oauth2/auth",
        "global-auth-method": "POST",
        "global-auth-signin": "https://login.example/start?x=1",
        "global-auth-signin-redirect-param": " next ",
        "global-auth-response-headers": "X-User, X-Email,,",
        "global-auth-request-redirect": "https://app.example/back",
        "global-auth-always-set-cookie": "true",
        "no-auth-locations": "/.well-known/acme-challenge, /healthz,",
    })
    s = cfg.settings
    assert s.global_auth_url == "https://auth.example/oauth2/auth"
    assert s.global_auth_method == "POST"
    assert s.global_auth_signin == "https://login.example/start?x=1"
    assert s.global_auth_signin_redirect_param == "next"
    assert s.global_auth_response_headers == ("X-User", "X-Email")
    assert s.global_auth_request_redirect == "https://app.example/back"
    assert s.global_auth_always_set_cookie is True
    assert s.no_auth_locations == ("/.well-known/acme-challenge", "/healthz")
    assert cfg.warnings == ()


def test_configmap_defaults_and_keys_without_url() -> None:
    s = ProxySettings()
    assert s.global_auth_url == "" and s.global_auth_method == "" and s.global_auth_signin == ""
    assert s.global_auth_signin_redirect_param == "rd"
    assert s.global_auth_response_headers == () and not s.global_auth_always_set_cookie
    assert s.no_auth_locations == ("/.well-known/acme-challenge",)  # config.go NewDefault
    cfg = parse_config_data({"global-auth-url": "", "global-auth-method": "GET"})
    assert cfg.settings.global_auth_url == ""
    assert cfg.warnings == (
        "ConfigMap: data.global-auth-method: has no effect without global-auth-url",)
    # Still not implemented: warned as ingress-nginx keys ingresslib ignores.
    cfg = parse_config_data({"global-auth-url": GURL, "global-auth-snippet": "x",
                             "ssl-early-data": "true"})
    assert len(cfg.warnings) == 2 and all("does not implement" in w for w in cfg.warnings)


@pytest.mark.parametrize("key,value", [
    ("global-auth-url", "not a url"), ("global-auth-url", "ftp://auth.example/x"),
    ("global-auth-url", "http://$host/auth"), ("global-auth-url", "/relative"),
    ("global-auth-method", "get"), ("global-auth-signin", "login.example"),
    ("global-auth-signin-redirect-param", "a b"),
    ("global-auth-response-headers", "X-User, X User"),
    ("global-auth-response-headers", "X-User, Content-Length"),
    ("global-auth-response-headers", "transfer_encoding"),
    ("global-auth-request-redirect", "/a\x01"),
    ("global-auth-always-set-cookie", "yes"),
])
def test_configmap_invalid_values_are_errors(key: str, value: str) -> None:
    data = {"global-auth-url": GURL, key: value}
    with pytest.raises(ValidationError) as e:
        parse_config_data(data)
    assert f"data.{key}" in str(e.value)


def test_settings_keyword_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="global_auth_url"):
        ProxySettings(global_auth_url="http://$host/x")
    with pytest.raises(ValueError, match="global_auth_method"):
        ProxySettings(global_auth_url=GURL, global_auth_method="FETCH")
    with pytest.raises(ValueError, match="global_auth_response_headers"):
        ProxySettings(global_auth_url=GURL, global_auth_response_headers=("a b",))
    with pytest.raises(ValueError, match="no_auth_locations"):
        ProxySettings(no_auth_locations=("",))
    with pytest.raises(ValueError, match="^no_auth_locations: a tuple of paths, not the str"):
        ProxySettings(no_auth_locations="/a")  # type: ignore[arg-type]
    assert ProxySettings(no_auth_locations=["/a"]).no_auth_locations == ("/a",)  # type: ignore


def test_load_config_file_reaches_the_proxy(tmp_path: Path) -> None:
    # serve --config reads the file with load_config: its settings drive the core.
    f = tmp_path / "cm.yaml"
    f.write_text(f"""apiVersion: v1
kind: ConfigMap
metadata: {{name: ingress-nginx-controller, namespace: ingress-nginx}}
data:
  global-auth-url: "{GURL}"
  global-auth-response-headers: "X-User"
""")
    cfg = load_config(f)
    assert cfg.warnings == ()
    p = _pair([Route()], cfg.settings,
              reply=b"HTTP/1.1 200 OK\r\nX-User: ann\r\nContent-Length: 0\r\n\r\n")
    assert status_of(p.send(GET)) == 200
    assert len(_ups(p, GAUTH)) == 1
    assert _headers(_ups(p, WEB)[0])[b"x-user"] == [b"ann"]


# ------------------------------------------------------------------ the route's options
def test_enable_global_auth_is_implemented() -> None:
    assert "enable-global-auth" in IMPLEMENTED
    opts = parse_route_options({P + "enable-global-auth": "false"}, "/", _settings(),
                               where="Ingress default/site")
    assert opts.warnings == () and opts.ext_auth is None and opts.access is None


def test_global_auth_folds_into_ext_auth() -> None:
    s = _settings(global_auth_method="POST", global_auth_response_headers=("X-User",))
    opts = parse_route_options({}, "/app", s)
    ext = opts.ext_auth
    assert ext is not None and ext.endpoint == GAUTH and ext.target == b"/global/check?g=1"
    assert ext.method == b"POST" and ext.response_headers == ("X-User",)
    assert ext.host == b"10.5.0.9" and ext.no_auth_locations == ()
    # Its own auth-url wins (shouldApplyGlobalAuth: location.ExternalAuth.URL == "").
    own = parse_route_options({P + "auth-url": OWN_URL}, "/app", s).ext_auth
    assert own is not None and own.endpoint == OWN and own.method is None
    # An invalid own auth-url denies the location; the global one does not stand in.
    bad = parse_route_options({P + "auth-url": "x"}, "/app", s)
    assert bad.ext_auth is None and bad.access is not None and bad.access.denied


def test_invalid_enable_global_auth_keeps_the_default() -> None:
    opts = parse_route_options({P + "enable-global-auth": "nope"}, "/", _settings(),
                               where="Ingress default/site")
    assert opts.ext_auth is not None
    assert len(opts.warnings) == 1 and "enable-global-auth" in opts.warnings[0]


def test_canary_takes_no_global_auth_of_its_own() -> None:
    opts = parse_route_options({P + "canary": "true", P + "canary-weight": "5"}, "/",
                               _settings())
    assert opts.ext_auth is None  # the main rule's options apply to canary traffic


def test_front_end_without_external_auth_fails_closed() -> None:
    # IngressASGI before it asks auth services (ext_auth=False): a route the global auth
    # covers answers 503 with a warning, unless deny-unenforced-access-annotations is off.
    opts = parse_route_options({P + "rewrite-target": "/"}, "/", _settings(),
                               where="Ingress default/site", ext_auth=False)
    assert opts.ext_auth is None and opts.access is not None and opts.access.denied
    assert any("global-auth-url" in w and "503" in w for w in opts.warnings)
    opts = parse_route_options({P + "rewrite-target": "/"}, "/",
                               _settings(deny_unenforced_access_annotations=False),
                               where="Ingress default/site", ext_auth=False)
    assert opts.access is None and any("global-auth-url" in w for w in opts.warnings)
    off = parse_route_options({P + "enable-global-auth": "false"}, "/", _settings(),
                              ext_auth=False)
    assert off.access is None


# ------------------------------------------------------------------ the sans-IO core
def test_route_without_auth_url_asks_the_global_url() -> None:
    p = _pair([Route(annotations={P + "rewrite-target": "/"})],
              _settings(global_auth_response_headers=("X-User",)),
              reply=b"HTTP/1.1 200 OK\r\nX-User: alice\r\nContent-Length: 0\r\n\r\n")
    out = p.send(b"GET /a?b=1 HTTP/1.1\r\nHost: app.test\r\nX-User: forged\r\n\r\n")
    assert status_of(out) == 200
    [auth] = _ups(p, GAUTH)
    req, body = auth.requests[0]
    assert req.method == b"GET" and req.target == b"/global/check?g=1" and body == b""
    h = _headers(auth)
    assert h[b"host"] == [b"10.5.0.9"]
    assert h[b"x-original-url"] == [b"http://app.test/a?b=1"]
    assert _headers(_ups(p, WEB)[0])[b"x-user"] == [b"alice"]
    assert not _ups(p, OWN)


def test_route_without_annotations_asks_the_global_url() -> None:
    p = _pair([Route()], reply=b"HTTP/1.1 403 No\r\nContent-Length: 0\r\n\r\n")
    assert status_of(p.send(GET)) == 403
    assert len(_ups(p, GAUTH)) == 1 and not _ups(p, WEB)


def test_route_with_its_own_auth_url_uses_its_own() -> None:
    p = _pair([Route(annotations={P + "auth-url": OWN_URL})])
    assert status_of(p.send(GET)) == 200
    assert len(_ups(p, OWN)) == 1 and not _ups(p, GAUTH)
    assert _ups(p, OWN)[0].requests[0][0].target == b"/own"


def test_enable_global_auth_false_skips_it() -> None:
    p = _pair([Route(annotations={P + "enable-global-auth": "false"})],
              reply=b"HTTP/1.1 401 No\r\nContent-Length: 0\r\n\r\n")
    out = p.send(GET)
    assert status_of(out) == 200 and out.endswith(b"backend /a?b=1")
    assert not _ups(p, GAUTH)


def test_no_auth_locations_skip_it() -> None:
    deny = b"HTTP/1.1 401 No\r\nContent-Length: 0\r\n\r\n"
    # The default list: cert-manager's HTTP-01 solver paths (annotated or not).
    for ann in ({}, {P + "rewrite-target": "/$1"}):
        p = _pair([Route(path="/.well-known/acme-challenge", annotations=ann),
                   Route(path="/", annotations=ann)], reply=deny)
        out = p.send(b"GET /.well-known/acme-challenge/tok HTTP/1.1\r\nHost: a\r\n\r\n")
        assert status_of(out) == 200 and not _ups(p, GAUTH), ann
        # The location's path is tested, not the request's: "/" covers it with auth.
        assert status_of(p.send(GET)) == 401 and len(_ups(p, GAUTH)) == 1
    # A list of its own (items trimmed, a prefix of the rule path).
    s = _settings(no_auth_locations=("/public", " /health"))
    p = _pair([Route(path="/public/docs"), Route(path="/healthz"), Route(path="/private")],
              s, reply=deny)
    for path, want in ((b"/public/docs/x", 200), (b"/healthz", 200), (b"/private/y", 401)):
        assert status_of(p.send(b"GET %s HTTP/1.1\r\nHost: a\r\n\r\n" % path)) == want, path


def test_no_auth_locations_skip_own_auth_url_and_basic_auth() -> None:
    # nginx.tmpl: the auth_request, signin and auth_basic lines all sit inside
    # "if not (isLocationInLocationList $location $all.Cfg.NoAuthLocations)".
    ann = {P + "auth-url": OWN_URL, P + "auth-type": "basic", P + "auth-secret": "htpasswd"}
    opts = parse_route_options(ann, "/.well-known/acme-challenge/", ProxySettings(),
                               where="Ingress default/solver", namespace="default",
                               secrets=lambda: {})
    assert opts.ext_auth is None and opts.access is None
    assert sum("no-auth-locations" in w for w in opts.warnings) == 3
    p = _pair([Route(path="/.well-known/acme-challenge", annotations=ann)], ProxySettings(),
              reply=b"HTTP/1.1 401 No\r\nContent-Length: 0\r\n\r\n")
    out = p.send(b"GET /.well-known/acme-challenge/t HTTP/1.1\r\nHost: a\r\n\r\n")
    assert status_of(out) == 200 and not p.opens[:-1] and not _ups(p, OWN)
    # Elsewhere both stay.
    opts = parse_route_options(ann, "/app", ProxySettings(), where="Ingress default/site",
                               namespace="default", secrets=lambda: {})
    assert opts.ext_auth is not None and opts.access is not None
    assert opts.access.basic is not None and opts.warnings == ()


def test_global_signin_redirects() -> None:
    s = _settings(global_auth_signin="https://login.test/start",
                  global_auth_signin_redirect_param="next")
    p = _pair([Route()], s, reply=b"HTTP/1.1 401 No\r\nContent-Length: 0\r\n\r\n")
    out = p.send(b"GET /a/b HTTP/1.1\r\nHost: app.test\r\n\r\n")
    assert status_of(out) == 302
    assert b"location: https://login.test/start?next=http://app.test%2Fa%2Fb\r\n" in out


def test_unrouted_request_gets_no_global_auth() -> None:
    p = _pair([Route(host="app.test")])
    assert status_of(p.send(b"GET / HTTP/1.1\r\nHost: other.test\r\n\r\n")) == 404
    assert not p.opens


# ------------------------------------------------------------------ end to end (ProxyServer)
def _manifests(web_port: int, annotations: dict[str, str]) -> str:
    a = ", ".join(f"{k!r}: {v!r}" for k, v in annotations.items())
    return f"""
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: site, namespace: default, annotations: {{{a}}}}}
spec:
  rules:
  - host: app.test
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: default}}
spec: {{ports: [{{name: http, port: 80, targetPort: {web_port}}}]}}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {{name: web-1, namespace: default, labels: {{kubernetes.io/service-name: web}}}}
addressType: IPv4
ports: [{{name: http, port: {web_port}}}]
endpoints: [{{addresses: [127.0.0.1], conditions: {{ready: true}}}}]
"""


async def _serve(handler: Any) -> tuple[asyncio.Server, int, list[bytes]]:
    seen: list[bytes] = []

    async def client(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            head = await r.readuntil(b"\r\n\r\n")
            seen.append(head)
            w.write(handler(head))
            await w.drain()
        except Exception:
            pass
        finally:
            w.close()
    srv = await asyncio.start_server(client, "127.0.0.1", 0)
    return srv, srv.sockets[0].getsockname()[1], seen


def _auth_reply(head: bytes) -> bytes:
    token = b"Basic " + base64.b64encode(b"u:p")
    if token.lower() in head.lower():
        return b"HTTP/1.1 200 OK\r\nX-User: u\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    return b"HTTP/1.1 401 No\r\nWWW-Authenticate: Basic\r\nContent-Length: 0\r\n\r\n"


def _web_reply(head: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nweb"


async def _e2e(annotations: dict[str, str]) -> list[tuple[bytes, int, int]]:
    from _upstream_helpers import read_to_eof, start_proxy

    auth_srv, auth_port, auth_seen = await _serve(_auth_reply)
    web_srv, web_port, web_seen = await _serve(_web_reply)
    cfg = parse_config_data({"global-auth-url": f"http://127.0.0.1:{auth_port}/auth",
                             "global-auth-response-headers": "X-User",
                             "proxy-read-timeout": "1"})
    router = Router(parse_manifests(_manifests(web_port, annotations)))
    server, port = await start_proxy(router, settings=cfg.settings)
    out = []
    try:
        for extra in (b"", b"Authorization: Basic " + base64.b64encode(b"u:p") + b"\r\n"):
            r, w = await asyncio.open_connection("127.0.0.1", port)
            w.write(b"GET /x HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n" + extra
                    + b"\r\n")
            await w.drain()
            data = await read_to_eof(r, 3.0)
            w.close()
            out.append((data, len(auth_seen), len(web_seen)))
        return out
    finally:
        await server.shutdown(1)
        auth_srv.close()
        web_srv.close()


def test_server_end_to_end() -> None:
    (denied, a1, w1), (allowed, a2, w2) = asyncio.run(_e2e({}))
    assert status_of(denied) == 401 and (a1, w1) == (1, 0)
    assert status_of(allowed) == 200 and allowed.endswith(b"web") and (a2, w2) == (2, 1)
    (one, a1, w1), _ = asyncio.run(_e2e({P + "enable-global-auth": "false"}))
    assert status_of(one) == 200 and (a1, w1) == (0, 1)


# ------------------------------------------------------------------ IngressASGI
async def _asgi(reply: bytes, head: str) -> tuple[Any, list[bytes]]:
    from test_asgi_conformance import asgi_call

    srv, port, seen = await _serve(lambda h: reply)
    try:
        got = await asgi_call(head, settings=_settings(
            global_auth_url=f"http://127.0.0.1:{port}/auth", proxy_read_timeout=1))
        return got, seen
    finally:
        srv.close()


def test_ingressasgi_asks_the_global_url() -> None:
    # The same RouteOptions.ext_auth: IngressASGI asks the global auth service too.
    got, seen = asyncio.run(_asgi(b"HTTP/1.1 401 No\r\nContent-Length: 0\r\n\r\n",
                                  "GET /x HTTP/1.1\r\nHost: plain.test"))
    assert got.status == 401 and not got.app_ran
    assert len(seen) == 1 and seen[0].startswith(b"GET /auth HTTP/1.1\r\n")
    got, seen = asyncio.run(_asgi(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                                  "GET /x HTTP/1.1\r\nHost: plain.test"))
    assert got.app_ran and got.status == 200 and len(seen) == 1
