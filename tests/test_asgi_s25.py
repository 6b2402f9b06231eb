"""IngressASGI (session 25, AP): the error page's app's answer loses the ConfigMap
``hide-headers`` names (``proxy_hide_header`` is an http-level directive in nginx.tmpl: the
``CUSTOM_ERRORS`` named location inherits it), and a request holding no limit-connections
count runs in one coroutine (the count taken and released inside ``__call__``)."""

from __future__ import annotations

import asyncio
import sys
from types import FrameType
from typing import Any

from ingresslib import parse_manifests
from ingresslib._asgi import IngressASGI
from ingresslib.proxy import ProxySettings

from test_custom_errors_s25 import _docs

_CO_COROUTINE = 0x80


async def _web(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 404,
                "headers": [(b"x-powered-by", b"web"), (b"x-kept", b"web")]})
    await send({"type": "http.response.body", "body": b"web"})


async def _errors(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 404,
                "headers": [(b"x-powered-by", b"errors"), (b"X-Secret", b"s"),
                            (b"x-kept", b"errors"), (b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"page"})


def _call(ingress: IngressASGI, path: str = "/x") -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(m: dict[str, Any]) -> None:
        sent.append(dict(m))

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "headers": [(b"host", b"a.test")],
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80)}
    asyncio.run(ingress(scope, receive, send))
    return sent


def _names(message: dict[str, Any]) -> list[bytes]:
    return [bytes(n).lower() for n, _ in message.get("headers") or ()]


def test_hide_headers_hold_for_the_error_pages_app() -> None:
    # Before: the error page's app sent through ``reply.send``: X-Powered-By and X-Secret
    # reached the client although hide-headers names them.
    ingress = IngressASGI(parse_manifests(_docs()), {"default/web": _web, "default/errors": _errors},
                          settings=ProxySettings(hide_headers=("X-Powered-By", "x-secret")))
    sent = _call(ingress)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 404
    names = _names(sent[0])
    assert b"x-powered-by" not in names and b"x-secret" not in names
    assert dict(sent[0]["headers"])[b"x-kept"] == b"errors"  # the error page's answer
    assert sent[1]["body"] == b"page"


def test_error_pages_app_headers_untouched_without_hide_headers() -> None:
    ingress = IngressASGI(parse_manifests(_docs()), {"default/web": _web, "default/errors": _errors})
    sent = _call(ingress)
    names = _names(sent[0])
    assert b"x-powered-by" in names and b"x-secret" in names and sent[1]["body"] == b"page"


def test_apps_own_answer_still_hidden_when_not_intercepted() -> None:
    async def ok(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"x-powered-by", b"web")]})
        await send({"type": "http.response.body", "body": b"ok"})
    ingress = IngressASGI(parse_manifests(_docs()), {"default/web": ok, "default/errors": _errors},
                          settings=ProxySettings(hide_headers=("X-Powered-By",)))
    sent = _call(ingress)
    assert sent[0]["status"] == 200 and b"x-powered-by" not in _names(sent[0])


def test_a_plain_request_runs_in_one_adapter_coroutine() -> None:
    # Before: ``__call__`` awaited a second coroutine (``_serve``) for every request, only to
    # release a limit-connections count in its ``finally``.
    async def ok(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
    ingress = IngressASGI(parse_manifests(_docs({})), {"default/web": ok})
    seen: set[str] = set()

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        code = frame.f_code
        if event == "call" and code.co_flags & _CO_COROUTINE \
                and code.co_qualname.startswith("IngressASGI."):
            seen.add(code.co_qualname)

    sys.setprofile(profile)
    try:
        sent = _call(ingress)
    finally:
        sys.setprofile(None)
    assert sent[0]["status"] == 200
    assert seen == {"IngressASGI.__call__"}
