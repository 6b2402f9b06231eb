"""The session cookie goes with the backend's answer only (session 14).

ingress-nginx sets the affinity cookie in ``sticky.lua``'s ``balance()`` (kubernetes/ingress-nginx
``rootfs/etc/nginx/lua/balancer/sticky.lua``: ``set_cookie(self, key)``), which runs in the
balancer phase, when ``proxy_pass http://upstream_balancer`` picks a peer. A redirect (rewrite
phase), the source ranges' 403 and basic authentication's 401 (access phase), a denied
location's 503 and a 413 never get there, so they carry no Set-Cookie. The proxy and
``IngressASGI`` added the Decision's cookie to every answer once routed: a client refused by
an allowlist, or redirected, was handed a session cookie for a backend it never reached.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from ingresslib import IngressASGI, Router, parse_manifests

sys.path.insert(0, str(Path(__file__).parent))
from _proxy_harness import ProxyPair, status_of  # noqa: E402
from test_explain_cookie_s14 import MANIFESTS  # noqa: E402

CASES = [
    # (host, headers, client address, status, a cookie is set)
    pytest.param("open.test", [], "127.0.0.1", 200, True, id="proxied"),
    pytest.param("ranges.test", [], "10.1.2.3", 200, True, id="ranges-allow"),
    pytest.param("ranges.test", [], "192.0.2.9", 403, False, id="ranges-refuse"),
    pytest.param("basic.test", [], "127.0.0.1", 401, False, id="basic-401"),
    pytest.param("basic.test", [("Authorization", "Basic YWxpY2U6cHc=")], "127.0.0.1", 200,
                 True, id="basic-ok"),
    pytest.param("redir.test", [], "127.0.0.1", 301, False, id="redirect-301"),
]


def _cookies(head: list[tuple[bytes, bytes]]) -> list[bytes]:
    return [v for k, v in head if k.lower() == b"set-cookie"]


@pytest.mark.parametrize(("host", "headers", "client", "status", "cookie"), CASES)
def test_the_proxy_sets_the_session_cookie_on_the_backends_answer_only(
        host: str, headers: list[tuple[str, str]], client: str, status: int,
        cookie: bool) -> None:
    pair = ProxyPair(router=Router(parse_manifests(MANIFESTS), seed=0), peer=(client, 4000))
    lines = ["GET / HTTP/1.1", f"Host: {host}", *(f"{n}: {v}" for n, v in headers)]
    out = pair.send(("\r\n".join(lines) + "\r\n\r\n").encode())
    head = [tuple(line.split(b":", 1)) for line in out.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]]
    assert status_of(out) == status
    assert bool(_cookies([(k.strip(), v.strip()) for k, v in head])) is cookie


@pytest.mark.parametrize(("host", "headers", "client", "status", "cookie"), CASES)
def test_the_adapter_sets_the_session_cookie_on_the_apps_answer_only(
        host: str, headers: list[tuple[str, str]], client: str, status: int,
        cookie: bool) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    asgi = IngressASGI(Router(parse_manifests(MANIFESTS), seed=0), {"prod/web": app})
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": "/", "raw_path": b"/",
             "query_string": b"", "root_path": "", "client": (client, 4000),
             "server": ("127.0.0.1", 80),
             "headers": [(b"host", host.encode()),
                         *((n.lower().encode(), v.encode()) for n, v in headers)]}
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    coro = asgi(scope, receive, send)
    with pytest.raises(StopIteration):
        coro.send(None)
    start = sent[0]
    assert start["status"] == status
    assert bool(_cookies(list(start["headers"]))) is cookie
