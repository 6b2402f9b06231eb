"""The 413 of a request no rule routes (N17, session 17).

ingress-nginx writes ``client_max_body_size`` in every location, the default server's
``location /`` (the ConfigMap's proxy-body-size) and a host's server-wide ``location /`` (its
oldest Ingress's proxy-body-size: controller.go ``locationApplyAnnotations``, "loc.Proxy =
anns.Proxy") included, and nginx checks a Content-Length against it in its find_config phase:
a request for an unknown host, or for a path no rule of its host covers, with a declared
length over that limit gets 413, never the default backend's 404. The proxy core, IngressASGI
(before its 404 or ``fallback``) and ``explain`` say so alike.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest

from ingresslib import parse_manifests
from ingresslib._accesslog import DEFAULT_UPSTREAM, upstream_names
from ingresslib._asgi import IngressASGI
from ingresslib.proxy import ProxySettings
from tests._proxy_harness import WEB_SERVICE_YAML, ProxyPair, ingress_yaml, routed_pair, status_of

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _agree_s13 import (IngressSpec, PathSpec, RequestSpec, manifests_text,  # noqa: E402
                        via_asgi, via_proxy)
from _explain_helpers import explain_json  # noqa: E402

P = "nginx.ingress.kubernetes.io/"

_SERVICE = WEB_SERVICE_YAML

_BIG = b"Content-Length: 2000000\r\n"  # over the default proxy-body-size, 1 MiB


def _pair(*ingresses: str, settings: ProxySettings | None = None) -> ProxyPair:
    """A core over a real router of ``ingresses`` (no request here reaches an upstream)."""
    return routed_pair(*ingresses, settings=settings)


def _logged(p: ProxyPair) -> list[tuple[int, str]]:
    return [(r.status, upstream_names(r)[0]) for r in p.records]


# 1. The proxy core ----------------------------------------------------------------------------


def test_no_rule_host_with_a_content_length_over_the_default_is_413() -> None:
    """A host no Ingress names: the default server's ``location /``, whose
    client_max_body_size is the ConfigMap's proxy-body-size (1m): 413 in find_config,
    before the default backend's 404, logged as the server block's ``-``. Also without Host
    (HTTP/1.0)."""
    p = _pair(ingress_yaml("a", "a.test"))
    out = p.send(b"POST /x HTTP/1.1\r\nHost: other.test\r\n" + _BIG + b"\r\n")
    assert status_of(out) == 413 and p.closed and not p.opens
    assert _logged(p) == [(413, "-")]
    assert [r.phase for r in p.records] == ["server"]
    p = _pair(ingress_yaml("a", "a.test"))
    out = p.send(b"POST /x HTTP/1.0\r\n" + _BIG + b"\r\n")
    assert status_of(out) == 413 and p.closed
    assert _logged(p) == [(413, "-")]


def test_the_default_servers_limit_is_the_settings_proxy_body_size() -> None:
    """The ConfigMap's proxy-body-size (``ProxySettings.proxy_body_size``); 0: no limit."""
    body = b"Content-Length: 10\r\n\r\n0123456789"
    p = _pair(ingress_yaml("a", "a.test"), settings=ProxySettings(proxy_body_size=5))
    assert status_of(p.send(b"POST /x HTTP/1.1\r\nHost: b.test\r\n" + body)) == 413
    p = _pair(ingress_yaml("a", "a.test"), settings=ProxySettings(proxy_body_size=0))
    out = p.send(b"POST /x HTTP/1.1\r\nHost: b.test\r\n" + _BIG + b"\r\n")
    assert status_of(out) == 404


def test_uncovered_path_takes_the_server_owners_proxy_body_size() -> None:
    """The server's ``location /`` carries its oldest Ingress's annotations
    (``locationApplyAnnotations``: "loc.Proxy = anns.Proxy"): its proxy-body-size."""
    ing = ingress_yaml("a", "a.test", {P + "proxy-body-size": "4"}, path="/foo")
    p = _pair(ing)
    out = p.send(b"POST /x HTTP/1.1\r\nHost: a.test\r\nContent-Length: 10\r\n\r\n0123456789")
    assert status_of(out) == 413 and _logged(p) == [(413, "-")]
    p = _pair(ing)  # within it: the default backend's 404, as before
    out = p.send(b"POST /x HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\n\r\nabc")
    assert status_of(out) == 404 and _logged(p) == [(404, DEFAULT_UPSTREAM)]


def test_unrouted_413_comes_after_app_root_and_before_the_location_redirects() -> None:
    """nginx's order: the server rewrite phase (app-root), find_config (413), then the
    location's rewrite phase (its redirects, ssl-redirect), as for a routed request."""
    body = b"Content-Length: 10\r\n\r\n0123456789"
    p = _pair(ingress_yaml("a", "a.test", {P + "app-root": "/app", P + "proxy-body-size": "4"},
                           path="/foo"))
    out = p.send(b"POST / HTTP/1.1\r\nHost: a.test\r\n" + body)
    assert status_of(out) == 302
    p = _pair(ingress_yaml("a", "a.test", {P + "force-ssl-redirect": "true",
                                           P + "proxy-body-size": "4"}, path="/foo"))
    out = p.send(b"POST /x HTTP/1.1\r\nHost: a.test\r\n" + body)
    assert status_of(out) == 413


def test_unrouted_413_comes_before_the_100_continue() -> None:
    p = _pair(ingress_yaml("a", "a.test"))
    out = p.send(b"POST /x HTTP/1.1\r\nHost: b.test\r\nExpect: 100-continue\r\n" + _BIG
                 + b"\r\n")
    assert out.startswith(b"HTTP/1.1 413 ") and b" 100 " not in out


# 2. IngressASGI: the same answer before its 404 or fallback ---------------------------------

_OWNED = (IngressSpec("web", "a.test", (PathSpec("/foo", "Prefix", "s0"),),
                      ((P + "proxy-body-size", "4"),)),)


@pytest.mark.parametrize("host", ["other.test", "a.test", None])
def test_proxy_and_asgi_agree_on_the_unrouted_413(host: str | None) -> None:
    """A 10-byte POST no rule routes: the default server's limit (5, the settings') for an
    unknown host or none, the owner's (4) for a.test: 413 on both paths."""
    req = RequestSpec("POST", "/x", host, (), b"0123456789", False, "127.0.0.1")
    text = manifests_text(_OWNED)
    settings = ProxySettings(proxy_body_size=5)
    proxy = via_proxy(text, req, settings, frozenset())
    asgi = via_asgi(text, req, settings, frozenset())
    assert (proxy.status, proxy.backend) == (413, None)
    assert (asgi.status, asgi.backend) == (413, None)


def _call(adapter: IngressASGI, host: str, length: int) -> tuple[int, list[str]]:
    """A POST /x for ``host`` declaring ``length``: the status and what the fallback saw."""
    seen: list[str] = []
    sent: list[dict[str, Any]] = []

    async def fallback(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["path"])
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(m: Any) -> None:
        sent.append(dict(m))

    adapter.fallback = fallback
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/x", "raw_path": b"/x",
             "query_string": b"", "root_path": "",
             "headers": [(b"host", host.encode()), (b"content-length", str(length).encode())],
             "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 80)}
    asyncio.run(adapter(scope, receive, send))
    return int(sent[0]["status"]), seen


def test_asgi_fallback_gets_the_servers_limit() -> None:
    """The fallback plays the default backend of the server's ``location /``: the owner's
    proxy-body-size applies (4: 413 for 10; before, the fallback was called)."""
    text = ingress_yaml("a", "a.test", {P + "proxy-body-size": "4"}, path="/foo") + _SERVICE
    adapter = IngressASGI(parse_manifests(text), backends={})
    assert _call(adapter, "a.test", 10) == (413, [])
    assert _call(adapter, "a.test", 3) == (404, ["/x"])


def test_asgi_fallback_of_an_owner_without_limit() -> None:
    """An owner's proxy-body-size 0 (no limit) lets a length over the settings' 1 MiB
    through to the fallback, as the proxy answers its 404 (before: 413, the settings' limit
    applied to every unrouted request); a host no Ingress names keeps the default server's."""
    text = ingress_yaml("a", "a.test", {P + "proxy-body-size": "0"}, path="/foo") + _SERVICE
    adapter = IngressASGI(parse_manifests(text), backends={})
    assert _call(adapter, "a.test", 2000000) == (404, ["/x"])
    assert _call(adapter, "b.test", 2000000) == (413, [])  # the default server's 1 MiB


# 3. explain tells the same status -----------------------------------------------------------


def test_explain_unknown_host_with_a_large_content_length_is_413(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    f = tmp_path / "m.yaml"
    f.write_text(ingress_yaml("a", "a.test") + _SERVICE)
    doc = explain_json(capsys, f, "-H", "Content-Length: 2000000", "http://other.test/x")
    assert doc["status"] == 413 and doc["verdict"]["status"] == 413
    assert "proxy-body-size" in doc["reason"]
    doc = explain_json(capsys, f, "-H", "Content-Length: 10", "http://other.test/x")
    assert doc["status"] == 404
