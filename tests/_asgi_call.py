"""One plain ASGI HTTP request through an app, for tests that ask IngressASGI a single question."""

from __future__ import annotations

import asyncio
from typing import Any


def asgi_exchange(asgi: Any, host: str, path: str = "/x",
                  query: bytes = b"q=1", *, headers: Any = (), method: str = "GET",
                  http_version: str = "1.1",
                  client: tuple[str, int] = ("10.1.1.1", 5000)) -> list[dict[str, Any]]:
    """GET (``method``) ``path?query`` with ``Host: host`` and ``headers`` after it, from
    ``client``; every message the app sent, in order."""
    sent: list[dict[str, Any]] = []

    async def send(m: Any) -> None:
        sent.append(dict(m))

    async def receive() -> Any:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": http_version,
             "method": method, "scheme": "http", "path": path, "raw_path": path.encode(),
             "root_path": "", "query_string": query, "client": client,
             "server": ("127.0.0.1", 80), "headers": [(b"host", host.encode()), *headers]}
    asyncio.run(asgi(scope, receive, send))
    return sent


def asgi_get(asgi: Any, host: str, path: str = "/x",
             query: bytes = b"q=1") -> tuple[int, dict[bytes, bytes]]:
    """GET ``path?query`` with ``Host: host`` from client 10.1.1.1; the response's status and
    headers (the first message sent)."""
    sent = asgi_exchange(asgi, host, path, query)
    return sent[0]["status"], dict(sent[0].get("headers") or [])
