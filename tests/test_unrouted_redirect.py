"""The ssl-redirect `Location` of a path no rule covers, and of the ASGI adapter, is written as
the proxy writes it for a routed request (tests/test_proxy_followups.py sections 3 and 4).

kubernetes/ingress-nginx rootfs/etc/nginx/lua/lua_ingress.lua, ``_M.rewrite``:

    ngx.var.best_http_host = ngx.var.http_host or ngx.var.host
    if config.use_forwarded_headers then
      ...
      if ngx.var.http_x_forwarded_host then
        ngx.var.best_http_host = parse_x_forwarded_host()
      end
    end
    ...
    if redirect_to_https(location_config) then
      local request_uri = ngx.var.request_uri
      -- do not append a trailing slash on redirects unless enabled by annotations
      if location_config.preserve_trailing_slash == false then
        if string.byte(request_uri, -1, -1) == string.byte('/') then
          request_uri = string.sub(request_uri, 1, -2)
        end
      end
      local uri = string_format("https://%s%s", redirect_host(), request_uri)

and above ``_M.rewrite``: "-- rewrite gets called in every location context." The server's own
``location /``, which serves a path no rule covers, is one: nothing there tells a routed path
from an unrouted one. ``$request_uri`` is the target as received, not normalised.

Every expected value is written from that source, not from ingresslib's output.
"""

from __future__ import annotations

from typing import Any

import pytest

from ingresslib._asgi import IngressASGI
from ingresslib._load import parse_manifests
from ingresslib._router import Router
from ingresslib.proxy import Proxy, ProxySettings

from _proxy_harness import PEER, ProxyPair, Route, ingress_yaml, location, status_of
from test_asgi_conformance import Seen, asgi_call, proxy_answer, wire

P = "nginx.ingress.kubernetes.io/"
H = b"Host: example.test\r\n"
XFH = b"X-Forwarded-Host: public.test\r\n"
TLS = {"example.test"}
#: use-forwarded-headers, and the harness's peer inside proxy-real-ip-cidr: a trusted hop.
TRUSTING = ProxySettings(use_forwarded_headers=True, proxy_real_ip_cidr=(PEER[0] + "/32",))
#: use-forwarded-headers, but the peer is outside proxy-real-ip-cidr: not trusted.
NOT_TRUSTED = ProxySettings(use_forwarded_headers=True, proxy_real_ip_cidr=("192.0.2.0/24",))
#: A rule for example.test that covers /api only: every other path is unrouted.
ROUTES = [Route("/api", host="example.test")]


def _unrouted(request: bytes, settings: ProxySettings = TRUSTING,
              tls_hosts: set[str] = TLS, **kw: Any) -> bytes:
    pair = ProxyPair(ROUTES, settings, tls_hosts=tls_hosts, **kw)
    out = pair.send(request)
    assert pair.opens == []  # answered locally, never proxied
    return out


# --- 1. proxy core: an unrouted path of a TLS host --------------------------------------------
def test_unrouted_location_is_the_raw_target_on_the_trusted_forwarded_host() -> None:
    # Before: "https://example.test/a/b" (the Host and the canonical path).
    out = _unrouted(b"GET /a/./b/ HTTP/1.1\r\n" + H + XFH + b"\r\n")
    assert status_of(out) == 308 and location(out) == b"https://public.test/a/./b"


@pytest.mark.parametrize(("target", "expected"), [
    (b"/a/../b/./c%41", b"https://example.test/a/../b/./c%41"),
    (b"//x//y", b"https://example.test//x//y"),
    (b"/a/./b/?x=1", b"https://example.test/a/./b/?x=1"),   # the query is part of the test
    (b"/a/./", b"https://example.test/a/."),                # one final "/" dropped, no more
    (b"/%7Euser", b"https://example.test/%7Euser"),
])
def test_unrouted_location_target_as_received(target: bytes, expected: bytes) -> None:
    out = _unrouted(b"GET " + target + b" HTTP/1.1\r\n" + H + b"\r\n", ProxySettings())
    assert status_of(out) == 308 and location(out) == expected


def test_unrouted_location_of_an_absolute_form_request() -> None:
    out = _unrouted(b"GET http://example.test/a/./b?q HTTP/1.1\r\n" + H + b"\r\n",
                    ProxySettings())
    assert status_of(out) == 308 and location(out) == b"https://example.test/a/./b?q"


def test_unrouted_location_forwarded_host_first_element_without_port() -> None:
    out = _unrouted(b"GET /a/./b HTTP/1.1\r\n" + H
                    + b"X-Forwarded-Host: Public.test:8443, inner.test\r\n\r\n")
    assert location(out) == b"https://Public.test/a/./b"  # as sent: lua's best_http_host


def test_unrouted_location_ignores_an_untrusted_or_invalid_forwarded_host() -> None:
    for settings in (NOT_TRUSTED, ProxySettings()):
        out = _unrouted(b"GET /a/./b HTTP/1.1\r\n" + H + XFH + b"\r\n", settings)
        assert status_of(out) == 308 and location(out) == b"https://example.test/a/./b"
    out = _unrouted(b"GET /a/./b HTTP/1.1\r\n" + H + b"X-Forwarded-Host: a/b\r\n\r\n")
    assert status_of(out) == 308 and location(out) == b"https://example.test/a/./b"


def test_unrouted_location_keeps_preserve_trailing_slash() -> None:
    # The server's "location /" carries the settings' default (a router without a table).
    out = _unrouted(b"GET /a/./ HTTP/1.1\r\n" + H + b"\r\n",
                    ProxySettings(preserve_trailing_slash=True))
    assert location(out) == b"https://example.test/a/./"


def test_unrouted_decision_stays_on_the_host_and_the_canonical_path() -> None:
    # The TLS lookup is on the Host (certificate.lua looks up ngx.var.host): a forwarded host
    # with TLS does not make a redirect; no-tls-redirect-locations is read on the rule path
    # (the server's `location /` here), so an ACME request is redirected as any other.
    out = _unrouted(b"GET /a/./b HTTP/1.1\r\n" + H + XFH + b"\r\n", tls_hosts={"public.test"})
    assert status_of(out) == 404
    out = _unrouted(b"GET /.well-known/./acme-challenge/t HTTP/1.1\r\n" + H + b"\r\n")
    assert status_of(out) == 308
    out = _unrouted(b"GET /.well-known/acme-challenge/../../x HTTP/1.1\r\n" + H + b"\r\n",
                    ProxySettings())
    assert status_of(out) == 308
    assert location(out) == b"https://example.test/.well-known/acme-challenge/../../x"


def test_unrouted_location_with_a_trusted_forwarded_proto_names_no_port() -> None:
    out = _unrouted(b"GET /a/./b HTTP/1.1\r\n" + H + XFH + b"X-Forwarded-Proto: http\r\n\r\n",
                    https_port=8443)
    assert location(out) == b"https://public.test/a/./b"
    out = _unrouted(b"GET /a/./b HTTP/1.1\r\n" + H + b"\r\n", ProxySettings(), https_port=8443)
    assert location(out) == b"https://example.test:8443/a/./b"


def test_unrouted_routed_and_unrouted_locations_agree() -> None:
    # The same request once routed (a rule for "/") and once not (a rule for "/api" only).
    request = b"GET /a/./b/?x HTTP/1.1\r\n" + H + XFH + b"\r\n"
    routed = ProxyPair([Route("/", host="example.test")], TRUSTING, tls_hosts=TLS).send(request)
    unrouted = _unrouted(request)
    assert location(routed) == location(unrouted) == b"https://public.test/a/./b/?x"


def test_other_unrouted_redirects_keep_their_location() -> None:
    # Only the ssl-redirect's Location changes: the host's server-level app-root still names
    # $http_host (nginx.tmpl "return 302 $scheme://$http_host..."), and a request without
    # Host gets no unrouted redirect (the 404 of ingress-nginx's default server).
    manifests = ingress_yaml("a", "example.test", {P + "app-root": "/app"}, path="/api")
    proxy = Proxy(Router(parse_manifests(manifests), seed=1), tls_hosts=TLS)
    assert proxy._unrouted_redirect("example.test", "http", "/", None, 443,
                                    host_raw="Example.test:80",
                                    location_host="public.test",
                                    target=("/./", None)) == (302, b"http://Example.test:80/app")
    out = _unrouted(b"GET /a/./b HTTP/1.0\r\n" + XFH + b"\r\n")
    assert status_of(out) == 404


# --- 2. ASGI adapter: the raw target is raw_path + query_string --------------------------------
#
# asgiref specs/www.rst: "raw_path (byte string) -- The original HTTP path component, unmodified
# from the bytes that were received by the web server"; "query_string (byte string) -- URL
# portion after the ?". The adapter's $request_uri is raw_path, "?" and query_string when there
# is one (as its X-Original-URI), and it trusts X-Forwarded-Host as it trusts the forwarded
# family: use-forwarded-headers and the scope's client inside proxy-real-ip-cidr.
SERVICE = """
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  ports: [{port: 80, targetPort: 8080}]
"""
UNROUTED = ingress_yaml("u", "example.test", path="/api") + SERVICE
ROUTED = ingress_yaml("r", "example.test") + SERVICE
A_TRUSTING = ProxySettings(use_forwarded_headers=True, proxy_real_ip_cidr=("127.0.0.1/32",))
A_NOT_TRUSTED = ProxySettings(use_forwarded_headers=True, proxy_real_ip_cidr=("192.0.2.0/24",))


@pytest.mark.parametrize("manifests", [UNROUTED, ROUTED], ids=["unrouted", "routed"])
@pytest.mark.asyncio
async def test_adapter_location_is_the_raw_target_on_the_trusted_forwarded_host(
        manifests: str) -> None:
    # Before: "https://example.test/a/b" for both.
    head = "GET /a/./b/ HTTP/1.1\r\nHost: example.test\r\nX-Forwarded-Host: public.test"
    got = await asgi_call(head, manifests=manifests, tls_hosts=TLS, settings=A_TRUSTING)
    assert (got.status, got.header(b"location")) == (308, b"https://public.test/a/./b")
    want = proxy_answer(wire(head), manifests=manifests, tls_hosts=TLS, settings=A_TRUSTING)
    assert (want.status, want.header(b"location")) == (308, b"https://public.test/a/./b")


@pytest.mark.parametrize("manifests", [UNROUTED, ROUTED], ids=["unrouted", "routed"])
@pytest.mark.parametrize(("settings", "client"), [
    (A_NOT_TRUSTED, ("127.0.0.1", 40000)),
    (ProxySettings(), ("127.0.0.1", 40000)),
    (A_TRUSTING, ("192.0.2.9", 40000)),
    (A_TRUSTING, None),                        # no client: no peer to trust
])
@pytest.mark.asyncio
async def test_adapter_location_ignores_an_untrusted_forwarded_host(
        manifests: str, settings: ProxySettings, client: Any) -> None:
    head = "GET /a/./b/?x=1 HTTP/1.1\r\nHost: example.test\r\nX-Forwarded-Host: public.test"
    got = await asgi_call(head, manifests=manifests, tls_hosts=TLS, settings=settings,
                          client=client)
    assert (got.status, got.header(b"location")) == (308, b"https://example.test/a/./b/?x=1")


@pytest.mark.parametrize("manifests", [UNROUTED, ROUTED], ids=["unrouted", "routed"])
@pytest.mark.parametrize("head", [
    "GET /a/../b/./c%41 HTTP/1.1\r\nHost: example.test",
    "GET //x//y HTTP/1.1\r\nHost: Example.test:80",
    "GET /a/./ HTTP/1.1\r\nHost: example.test",
    "GET /a/./b?q HTTP/1.1\r\nHost: example.test\r\nX-Forwarded-Host: public.test, in.test",
    "GET /a/./b HTTP/1.1\r\nHost: example.test\r\nX-Forwarded-Host: a/b",
    "GET /.well-known/acme-challenge/../../x HTTP/1.1\r\nHost: example.test",
    "GET /.well-known/./acme-challenge/t HTTP/1.1\r\nHost: example.test",
])
@pytest.mark.asyncio
async def test_adapter_location_is_the_proxys(manifests: str, head: str) -> None:
    want = proxy_answer(wire(head), manifests=manifests, tls_hosts=TLS, settings=A_TRUSTING)
    got = await asgi_call(head, manifests=manifests, tls_hosts=TLS, settings=A_TRUSTING)
    if want.header(b"location") is None:
        # Not redirected (proxied, or the proxy's 503 for a Service without endpoints, where
        # the mounted app is the endpoint here): neither is the adapter's answer.
        assert got.header(b"location") is None and (got.app_ran or got.status == want.status)
        return
    assert (got.status, got.header(b"location")) == (want.status, want.header(b"location"))


@pytest.mark.parametrize("manifests", [UNROUTED, ROUTED], ids=["unrouted", "routed"])
@pytest.mark.asyncio
async def test_adapter_location_of_an_absolute_form_raw_path(manifests: str) -> None:
    # uvicorn (h11) passes an absolute-form target through as raw_path: its path part is
    # $request_uri (nginx parses the scheme and host apart).
    got = await asgi_call("GET http://example.test/a/./b?q HTTP/1.1\r\nHost: example.test",
                          manifests=manifests, tls_hosts=TLS)
    assert (got.status, got.header(b"location")) == (308, b"https://example.test/a/./b?q")


@pytest.mark.asyncio
async def test_adapter_location_keeps_root_path_in_raw_path() -> None:
    # A server whose raw_path holds root_path (uvicorn >= 0.54, Starlette's Mount): the client
    # asked for /mnt/a/./b, so that is the target to repeat (before: "/a/b", the mount lost).
    for manifests in (UNROUTED, ROUTED):
        out = Seen()
        app = IngressASGI(Router(parse_manifests(manifests), seed=1), backends={},
                          tls_hosts=TLS)

        async def receive() -> Any:
            return {"type": "http.request"}

        async def send(m: Any) -> None:
            out.sent.append(dict(m))

        await app({"type": "http", "method": "GET", "scheme": "http", "path": "/mnt/a/./b",
                   "raw_path": b"/mnt/a/./b", "query_string": b"", "root_path": "/mnt",
                   "headers": [(b"host", b"example.test")], "client": None, "server": None},
                  receive, send)
        assert (out.status, out.header(b"location")) == (308, b"https://example.test/mnt/a/./b")


@pytest.mark.asyncio
async def test_adapter_other_redirects_keep_their_location() -> None:
    # app-root names $http_host and the app-root, whatever X-Forwarded-Host says.
    manifests = ingress_yaml("r", "example.test", {P + "app-root": "/app"}) + SERVICE
    got = await asgi_call("GET / HTTP/1.1\r\nHost: example.test\r\nX-Forwarded-Host: p.test",
                          manifests=manifests, tls_hosts=TLS, settings=A_TRUSTING)
    assert (got.status, got.header(b"location")) == (302, b"http://example.test/app")
