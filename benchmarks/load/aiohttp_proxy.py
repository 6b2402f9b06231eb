"""The comparison point: a small aiohttp reverse proxy (aiohttp server + one ClientSession with
keep-alive), the way people write one. Usage: python aiohttp_proxy.py LISTEN_PORT UPSTREAM_URL"""

from __future__ import annotations

import sys

import aiohttp
from aiohttp import web

HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
       "proxy-connection", "proxy-authorization", "content-length", "content-encoding"}


async def make_app(upstream: str) -> web.Application:
    app = web.Application()

    async def start(app: web.Application) -> None:
        app["session"] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=60),
            auto_decompress=False)

    async def stop(app: web.Application) -> None:
        await app["session"].close()

    async def proxy(request: web.Request) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
        headers["X-Forwarded-For"] = request.remote or ""
        body = await request.read()
        async with request.app["session"].request(
                request.method, upstream + request.rel_url.raw_path_qs, headers=headers,
                data=body or None, allow_redirects=False) as up:
            data = await up.read()
            out = {k: v for k, v in up.headers.items() if k.lower() not in HOP}
            return web.Response(body=data, status=up.status, headers=out)

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.router.add_route("*", "/{tail:.*}", proxy)
    return app


if __name__ == "__main__":
    port, upstream = int(sys.argv[1]), sys.argv[2].rstrip("/")
    web.run_app(make_app(upstream), host="127.0.0.1", port=port, access_log=None, print=None)
