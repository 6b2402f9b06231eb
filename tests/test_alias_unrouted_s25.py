"""server-alias: a path no rule covers, requested by the alias, is answered by the server's
``location /`` and app-root as for its host (nginx.tmpl: the aliases are ``server_name``s of
the same server block). Failed before the _actions.py patch: the alias was treated as a host no
Ingress names (ingress-nginx's default server): 404 without app-root, allowlist or redirect."""

from __future__ import annotations

import asyncio
from typing import Any

from ingresslib import IngressASGI, Router, parse_manifests

from _proxy_harness import WEB_SERVICE_YAML, ProxyPair, ingress_yaml

P = "nginx.ingress.kubernetes.io/"


def _core(ann: dict[str, str], host: str, path: str) -> bytes:
    docs = ingress_yaml("a", "a.test", {P + "server-alias": "b.test", **ann}, path="/api")
    p = ProxyPair(router=Router(parse_manifests(docs + WEB_SERVICE_YAML)))
    return p.send(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())


def test_core_alias_uncovered_path_gets_the_servers_location() -> None:
    for host in ("a.test", "b.test"):
        out = _core({P + "app-root": "/app"}, host, "/")
        assert out.startswith(b"HTTP/1.1 302 ") and f"location: http://{host}/app".encode() in out
        out = _core({P + "whitelist-source-range": "10.0.0.0/8"}, host, "/zzz")
        assert out.startswith(b"HTTP/1.1 403 ")
        out = _core({P + "force-ssl-redirect": "true"}, host, "/zzz")
        assert out.startswith(b"HTTP/1.1 308 ") and f"https://{host}/zzz".encode() in out
    # a host neither named nor aliased stays the default server's
    assert _core({P + "app-root": "/app"}, "c.test", "/").startswith(b"HTTP/1.1 404 ")


def test_asgi_alias_uncovered_path_gets_the_servers_app_root() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    docs = ingress_yaml("a", "a.test", {P + "server-alias": "b.test", P + "app-root": "/app"},
                        path="/api") + WEB_SERVICE_YAML
    asgi = IngressASGI(parse_manifests(docs), {"default/web": app})
    for host in ("a.test", "b.test"):
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(m: dict[str, Any]) -> None:
            sent.append(m)

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "GET", "scheme": "http", "path": "/", "raw_path": b"/",
                 "query_string": b"", "root_path": "", "headers": [(b"host", host.encode())],
                 "client": ("10.1.1.1", 5000), "server": ("127.0.0.1", 80)}
        asyncio.run(asgi(scope, receive, send))
        assert sent[0]["status"] == 302
        assert dict(sent[0]["headers"])[b"location"] == f"http://{host}/app".encode()
