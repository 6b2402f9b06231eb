"""upstream-vhost, proxy-redirect-from/-to and proxy-cookie-domain/-path (session 25): the
Host sent upstream and the upstream response's Location / Refresh / Set-Cookie, through the
sans-IO core (``Proxy.connection``) and through IngressASGI, as ingress-nginx's nginx.tmpl and
nginx's ngx_http_proxy_module write and apply them."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
import pytest

from ingresslib._asgi import IngressASGI
from ingresslib._load import parse_manifests
from ingresslib.proxy import ProxySettings
from ingresslib.proxy._annotations import IMPLEMENTED, parse_route_options

from _proxy_harness import (WEB_SERVICE_YAML, FakeUpstream, ProxyPair, Reply, Route,
                            ingress_yaml)

P = "nginx.ingress.kubernetes.io/"
NAMES = ("upstream-vhost", "proxy-redirect-from", "proxy-redirect-to", "proxy-cookie-domain",
         "proxy-cookie-path")

HEAD = (b"HTTP/1.1 302 Found\r\n"
        b"Location: http://internal:8080/x\r\n"
        b"Refresh: 5; URL=http://internal:8080/y\r\n"
        b"Set-Cookie: a=b; Domain=.Internal.SVC; Path=/app/z\r\n"
        b"Set-Cookie: c=d; path=/other; domain=elsewhere.test\r\n"
        b"Content-Length: 0\r\n\r\n")


def _app(request: h11.Request, body: bytes, up: FakeUpstream) -> Reply:
    return Reply(HEAD)


def _head_lines(out: bytes) -> list[bytes]:
    return out.split(b"\r\n\r\n")[0].split(b"\r\n")[1:]


def _pair(annotations: dict[str, str]) -> ProxyPair:
    return ProxyPair([Route(annotations={P + k: v for k, v in annotations.items()})], app=_app)


def _options(annotations: dict[str, str], **kw: Any) -> Any:
    return parse_route_options({P + k: v for k, v in annotations.items()}, "/",
                               ProxySettings(), **kw)


ALL = {"upstream-vhost": "backend.internal",
       "proxy-redirect-from": "http://internal:8080/",
       "proxy-redirect-to": "https://pub.test/",
       "proxy-cookie-domain": "internal.svc pub.test",
       "proxy-cookie-path": "/app /"}


# ---------------------------------------------------------------- sans-IO core


def test_core_sends_upstream_vhost_as_host_and_keeps_forwarded_host() -> None:
    p = _pair({"upstream-vhost": "backend.internal:8443"})
    p.send(b"GET /q HTTP/1.1\r\nHost: a.test\r\n\r\n")
    up = p.upstream_bytes
    assert b"\r\nhost: backend.internal:8443\r\n" in up
    assert up.lower().count(b"\r\nhost:") == 1
    assert b"\r\nx-forwarded-host: a.test\r\n" in up


def test_core_without_upstream_vhost_sends_the_clients_host() -> None:
    p = _pair({})
    p.send(b"GET /q HTTP/1.1\r\nHost: a.test\r\n\r\n")
    assert b"\r\nHost: a.test\r\n" in p.upstream_bytes


def test_core_rewrites_location_refresh_and_set_cookie() -> None:
    p = _pair(ALL)
    lines = _head_lines(p.send(b"GET /q HTTP/1.1\r\nHost: a.test\r\n\r\n"))
    assert b"Location: https://pub.test/x" in lines
    assert b"Refresh: 5; URL=https://pub.test/y" in lines
    # domain: case-insensitive whole match, the leading dot kept; path: prefix replaced
    assert b"Set-Cookie: a=b; Domain=.pub.test; Path=//z" in lines
    assert b"Set-Cookie: c=d; path=/other; domain=elsewhere.test" in lines


def test_core_leaves_the_response_alone_by_default_and_with_off() -> None:
    for ann in ({}, {"proxy-redirect-from": "off", "proxy-redirect-to": "https://pub.test/",
                     "proxy-cookie-domain": "off", "proxy-cookie-path": "off"},
                {"proxy-redirect-from": "http://internal:8080/"}):  # "to" off: none written
        lines = _head_lines(_pair(ann).send(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"))
        assert b"Location: http://internal:8080/x" in lines, ann
        assert b"Set-Cookie: a=b; Domain=.Internal.SVC; Path=/app/z" in lines, ann


def test_core_redirect_from_is_case_sensitive_prefix() -> None:
    lines = _head_lines(_pair({"proxy-redirect-from": "http://INTERNAL:8080/",
                               "proxy-redirect-to": "/"}).send(
        b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"))
    assert b"Location: http://internal:8080/x" in lines


def test_core_redirect_default_rewrites_the_proxy_pass_url() -> None:
    from ingresslib.proxy._response_head import rewrite_response_headers

    rw = _options({"proxy-redirect-from": "default"}).response_rewrite
    out = rewrite_response_headers(
        [(b"Location", b"location", b"http://upstream_balancer/a"),
         (b"Location", b"location", b"http://other/a")], rw)
    assert [v for _, _, v in out] == [b"/a", b"http://other/a"]


def test_core_through_a_real_router() -> None:
    from ingresslib import Router

    docs = ingress_yaml("w", "a.test", {P + "upstream-vhost": "svc.ns",
                                        P + "proxy-redirect-from": "http://internal:8080/",
                                        P + "proxy-redirect-to": "/"})
    p = ProxyPair(router=Router(parse_manifests(docs + WEB_SERVICE_YAML)), app=_app)
    lines = _head_lines(p.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n"))
    assert b"Location: /x" in lines
    assert b"\r\nhost: svc.ns\r\n" in p.upstream_bytes


# ---------------------------------------------------------------- values


@pytest.mark.parametrize("value", ["$host", "a.test\r\nX-Evil: 1", "a b", "a/b", "a..b", "",
                                   "a.test:99999", "${host}.svc"])
def test_invalid_upstream_vhost_is_warned_and_ignored(value: str) -> None:
    opts = _options({"upstream-vhost": value})
    assert opts.upstream_vhost is None
    assert any("upstream-vhost" in w for w in opts.warnings)


@pytest.mark.parametrize("ann", [
    {"proxy-cookie-domain": "only-one"},
    {"proxy-cookie-domain": "a b c"},
    {"proxy-cookie-domain": "a.test b;c"},
    {"proxy-cookie-path": "/a /b\n"},
    {"proxy-cookie-path": "~^/a /b"},
    {"proxy-redirect-from": "http://a/$uri", "proxy-redirect-to": "/"},
    {"proxy-redirect-from": "~^http://a", "proxy-redirect-to": "/"},
    {"proxy-redirect-from": "http://a/ http://b/", "proxy-redirect-to": "/"},
    {"proxy-redirect-from": "http://a/", "proxy-redirect-to": "/x\r\nEvil: 1"},
])
def test_invalid_rewrite_values_are_warned_and_rewrite_nothing(ann: dict[str, str]) -> None:
    opts = _options(ann)
    assert opts.response_rewrite is None
    assert opts.warnings
    assert not any("not implemented" in w for w in opts.warnings)


def test_annotations_are_implemented_not_warned() -> None:
    from ingresslib.proxy._response_head import ResponseRewrite

    assert set(NAMES) <= IMPLEMENTED
    opts = _options(ALL)
    assert opts.warnings == ()
    assert opts.upstream_vhost == b"backend.internal"
    assert opts.response_rewrite == ResponseRewrite(
        redirect=(b"http://internal:8080/", b"https://pub.test/"),
        cookie_domain=(b"internal.svc", b"pub.test"), cookie_path=(b"/app", b"/"))


def test_canary_takes_the_main_rules_values_and_warns_on_its_own() -> None:
    opts = parse_route_options({P + "canary": "true", P + "upstream-vhost": "other.test"}, "/",
                               ProxySettings(), main_annotations={})
    assert opts.upstream_vhost is None
    assert any("upstream-vhost" in w for w in opts.warnings)
    same = parse_route_options({P + "canary": "true", P + "upstream-vhost": "v.test"}, "/",
                               ProxySettings(), main_annotations={P + "upstream-vhost": "v.test"})
    assert same.warnings == ()


def test_warning_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("hv-s25")
    with caplog.at_level(logging.WARNING, logger="hv-s25"):
        _options({"upstream-vhost": "$host"}, logger=log)
    assert "upstream-vhost" in caplog.text


# ---------------------------------------------------------------- IngressASGI


def _asgi(annotations: dict[str, str], response_headers: list[tuple[bytes, bytes]]
          ) -> tuple[list[tuple[bytes, bytes]], list[dict[str, Any]]]:
    docs = ingress_yaml("w", "a.test", {P + k: v for k, v in annotations.items()})
    seen: list[tuple[bytes, bytes]] = []

    async def backend(scope: Any, receive: Any, send: Any) -> None:
        seen.extend(scope["headers"])
        await send({"type": "http.response.start", "status": 302,
                    "headers": response_headers})
        await send({"type": "http.response.body", "body": b""})

    app = IngressASGI(parse_manifests(docs + WEB_SERVICE_YAML), {"default/web": backend})
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": "/q", "raw_path": b"/q",
             "query_string": b"", "root_path": "", "headers": [(b"host", b"a.test")],
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80)}
    asyncio.run(app(scope, receive, send))
    return seen, sent


RESPONSE = [(b"location", b"http://internal:8080/x"),
            (b"set-cookie", b"a=b; Domain=.Internal.SVC; Path=/app/z")]


def test_asgi_app_gets_upstream_vhost_and_its_response_is_rewritten() -> None:
    seen, sent = _asgi(ALL, RESPONSE)
    hosts = [v for k, v in seen if k.lower() == b"host"]
    assert hosts == [b"backend.internal"]
    assert (b"x-forwarded-host", b"a.test") in seen
    start = sent[0]
    assert start["status"] == 302
    assert list(start["headers"]) == [(b"location", b"https://pub.test/x"),
                                      (b"set-cookie", b"a=b; Domain=.pub.test; Path=//z")]


def test_asgi_without_annotations_changes_nothing() -> None:
    seen, sent = _asgi({}, RESPONSE)
    assert [v for k, v in seen if k.lower() == b"host"] == [b"a.test"]
    assert list(sent[0]["headers"]) == RESPONSE


# ---------------------------------------------------------------- nginx's cookie and Refresh rules


def _rewritten(ann: dict[str, str], name: bytes, value: bytes) -> bytes:
    from ingresslib.proxy._response_head import rewrite_response_headers

    rw = _options(ann).response_rewrite
    assert rw is not None
    [(_, _, out)] = rewrite_response_headers([(name, name.lower(), value)], rw)
    return out


def test_cookie_domain_from_with_a_leading_dot_and_any_case() -> None:
    ann = {"proxy-cookie-domain": ".Internal.SVC pub.test"}
    assert _rewritten(ann, b"Set-Cookie", b"a=b; domain=internal.svc") == b"a=b; domain=pub.test"
    # a longer or shorter domain is not the same domain
    assert _rewritten(ann, b"Set-Cookie", b"a=b; domain=x.internal.svc") == \
        b"a=b; domain=x.internal.svc"


def test_rewritten_cookie_is_rebuilt_with_nginx_separators() -> None:
    ann = {"proxy-cookie-path": "/app /"}
    assert _rewritten(ann, b"Set-Cookie", b"a=b;Path= /app/x ;HttpOnly;Secure") == \
        b"a=b; Path=//x; HttpOnly; Secure"
    # untouched cookies keep their bytes
    assert _rewritten(ann, b"Set-Cookie", b"a=b;Path=/App/x") == b"a=b;Path=/App/x"
    # the first part without "=": nginx declines the whole cookie
    assert _rewritten(ann, b"Set-Cookie", b"ab; Path=/app/x") == b"ab; Path=/app/x"
    # the cookie's own name=value is never an attribute
    assert _rewritten(ann, b"Set-Cookie", b"path=/app/x") == b"path=/app/x"


def test_refresh_without_url_is_untouched_and_url_is_found_in_any_case() -> None:
    ann = {"proxy-redirect-from": "http://a/", "proxy-redirect-to": "/"}
    assert _rewritten(ann, b"Refresh", b"5") == b"5"
    assert _rewritten(ann, b"Refresh", b"0;url=http://a/b") == b"0;url=/b"
    assert _rewritten(ann, b"Location", b"http://b/http://a/") == b"http://b/http://a/"


def test_canary_traffic_gets_the_main_rules_upstream_vhost_through_a_router() -> None:
    from ingresslib import Router

    canary_svc = (WEB_SERVICE_YAML.replace("name: web,", "name: cny,")
                  .replace("name: web-1,", "name: cny-1,")
                  .replace("service-name: web}", "service-name: cny}")
                  .replace("10.0.0.1", "10.0.0.9"))
    docs = (ingress_yaml("main", "a.test", {P + "upstream-vhost": "main.vhost"})
            + ingress_yaml("cn", "a.test", {P + "canary": "true", P + "canary-by-header": "X-C",
                                             P + "upstream-vhost": "canary.vhost"},
                           service="cny"))
    p = ProxyPair(router=Router(parse_manifests(docs + WEB_SERVICE_YAML + canary_svc)))
    p.send(b"GET / HTTP/1.1\r\nHost: a.test\r\nX-C: always\r\n\r\n")
    assert [u.endpoint for u in p.upstreams] == [("10.0.0.9", 80)]
    assert b"\r\nhost: main.vhost\r\n" in p.upstream_bytes
