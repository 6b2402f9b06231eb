"""Session 35, x42: IngressASGI against the ASGI specification (asgiref ``specs/www.rst`` 2.4/2.5,
``specs/lifespan.rst`` 2.0, ``docs/extensions.rst``) and the way uvicorn calls an app.

Defects fixed (each ``test_fix_*`` failed before):

* the server's response extensions reached the mounted app unfiltered. ``use-gzip`` /
  ``enable-brotli`` with ``http.response.zerocopysend`` offered: the app's file went out raw
  under ``Content-Encoding: gzip`` (and the gzip stream was never finished); ``limit-rate`` with
  ``http.response.pathsend`` or ``zerocopysend``: the file went out at full speed (nginx's
  limit_rate holds for a sendfile too). ``http.response.early_hint`` and ``http.response.push``
  let the app send a 103 or an HTTP/2 push the proxy never passes (it drops an upstream's 1xx
  but 101, proxy/_connection.py; nginx's ``early_hints`` is off by default and HTTP/2 push left
  nginx in 1.25.1). The app is now offered only what this hop passes on, and falls back to
  ``http.response.body`` as the extensions spec wants of an app whose server offers none;
* every mounted app got the one lifespan scope dict: an app writing its own key into its scope
  (Starlette writes ``scope["app"]``) saw another app's value after an await. Each app now gets
  its own copy, the server's ``state`` dict still shared (lifespan.rst: the state the server
  copies into each request's scope).

Checked and found right (tests kept as guards where cheap; the rest by probe, uvicorn 0.54 on
127.0.0.1 and direct calls):

* the mounted app's scope: ``path`` is ``raw_path`` percent-decoded, both with the server's
  ``root_path`` at the front; a Prefix mount extends ``root_path`` only; ``query_string``,
  ``client`` / ``server`` (None too), ``scheme`` ``ws`` / ``wss``, ``asgi`` (``version``,
  ``spec_version``) and the other extensions (``http.response.trailers``, ``tls``,
  ``websocket.http.response``) kept; the server's own scope and extensions dict never written;
* ``http.response.trailers`` passes (gzip finishes its stream before the trailers); a WebSocket
  ``websocket.accept`` keeps ``subprotocol`` and ``headers``; a refusal before accept uses
  ``websocket.http.response`` when offered, else a close the server answers 403
  (tests/test_review_asgi_s17.py and others);
* lifespan: an app that raises on the lifespan scope is left out, the others start and stop;
  the ``state`` dict one app fills is the one requests see.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import tempfile
from typing import Any

from test_perf_guards_s25 import MANIFESTS

from ingresslib._asgi import IngressASGI
from ingresslib._load import parse_manifests
from ingresslib.proxy import ProxySettings

BODY = b"<html>" + b"hello world " * 200 + b"</html>"
#: limit-rate 1 KiB/s after 1 MiB: the body is not delayed, only passed through the filter.
LIMITED = MANIFESTS.replace(
    "proxy-body-size: 8m",
    "proxy-body-size: 8m, nginx.ingress.kubernetes.io/limit-rate: '1', "
    "nginx.ingress.kubernetes.io/limit-rate-after: '1048576'")
ALL_EXTENSIONS = ("http.response.zerocopysend", "http.response.pathsend",
                  "http.response.early_hint", "http.response.push", "http.response.trailers",
                  "tls")


def _file() -> str:
    fd, name = tempfile.mkstemp()
    os.write(fd, BODY)
    os.close(fd)
    return name


def _file_app(path: str, seen: list[Any]) -> Any:
    """An app as Starlette's FileResponse or baize's: the file by an extension the server
    offers, else as http.response.body."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        offered = scope.get("extensions") or {}
        seen.append(dict(offered))
        await receive()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/html"),
                                (b"content-length", b"%d" % len(BODY))]})
        if "http.response.early_hint" in offered:
            await send({"type": "http.response.early_hint", "links": [b"</a.css>; rel=preload"]})
        if "http.response.zerocopysend" in offered:
            with open(path, "rb") as f:
                await send({"type": "http.response.zerocopysend", "file": f.fileno(),
                            "more_body": False})
        elif "http.response.pathsend" in offered:
            await send({"type": "http.response.pathsend", "path": path})
        else:
            await send({"type": "http.response.body", "body": BODY})

    return app


def _call(app: Any, manifests: str, settings: ProxySettings | None,
          extensions: dict[str, Any]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def main() -> None:
        asgi = IngressASGI(parse_manifests(manifests), {"default/up": app},
                           settings=settings or ProxySettings())

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(m: Any) -> None:
            sent.append(dict(m))

        scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.4"},
                 "http_version": "1.1", "method": "GET", "scheme": "http", "path": "/a",
                 "raw_path": b"/a", "query_string": b"", "root_path": "",
                 "extensions": extensions,
                 "headers": [(b"host", b"plain.test"), (b"accept-encoding", b"gzip")],
                 "client": ("127.0.0.1", 5555), "server": ("127.0.0.1", 80)}
        await asgi(scope, receive, send)

    asyncio.run(main())
    return sent


def _offered(names: tuple[str, ...]) -> dict[str, Any]:
    return {n: {} for n in names}


def test_fix_gzip_app_not_offered_zerocopysend() -> None:
    path, seen = _file(), []
    try:
        sent = _call(_file_app(path, seen), MANIFESTS, ProxySettings(use_gzip=True),
                     _offered(("http.response.zerocopysend", "http.response.pathsend")))
    finally:
        os.unlink(path)
    assert "http.response.zerocopysend" not in seen[0]
    # gzip_send compresses a pathsend file itself: that one stays offered.
    assert "http.response.pathsend" in seen[0]
    assert dict(sent[0]["headers"])[b"content-encoding"] == b"gzip"
    assert all(m["type"] == "http.response.body" for m in sent[1:])
    assert gzip.decompress(b"".join(m["body"] for m in sent[1:])) == BODY


def test_fix_limit_rate_app_not_offered_file_sends() -> None:
    path, seen = _file(), []
    try:
        sent = _call(_file_app(path, seen), LIMITED, None,
                     _offered(("http.response.zerocopysend", "http.response.pathsend",
                               "http.response.trailers")))
    finally:
        os.unlink(path)
    assert not {"http.response.zerocopysend", "http.response.pathsend"} & set(seen[0])
    assert "http.response.trailers" in seen[0]
    assert [m["type"] for m in sent[1:]] == ["http.response.body"]
    assert b"".join(m["body"] for m in sent[1:]) == BODY


def test_fix_no_early_hint_or_push_offered_the_rest_kept() -> None:
    path, seen = _file(), []
    extensions = _offered(ALL_EXTENSIONS)
    try:
        sent = _call(_file_app(path, seen), MANIFESTS, None, extensions)
    finally:
        os.unlink(path)
    assert set(seen[0]) == {"http.response.zerocopysend", "http.response.pathsend",
                            "http.response.trailers", "tls"}
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.zerocopysend"]
    assert set(extensions) == set(ALL_EXTENSIONS)  # the server's dict untouched


def test_plain_request_keeps_the_servers_extensions_object() -> None:
    seen: list[Any] = []
    extensions = _offered(("http.response.trailers", "tls"))

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope.get("extensions"))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    _call(app, MANIFESTS, None, extensions)
    assert seen[0] is extensions  # nothing to take out: no copy


def _lifespan_app(name: str, log: list[str]) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            scope["app"] = name  # as Starlette.__call__ does
            message = await receive()
            scope["state"][name] = True
            log.append(f"{name} startup: scope app {scope['app']}")
            await send({"type": "lifespan.startup.complete"})
            message = await receive()
            assert message["type"] == "lifespan.shutdown"
            await send({"type": "lifespan.shutdown.complete"})
            return
        log.append(f"request state {sorted(scope['state'])}")
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return app


async def _no_lifespan(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        raise RuntimeError("no lifespan here")


def test_fix_lifespan_each_app_its_own_scope_state_shared() -> None:
    log: list[str] = []
    manifests = MANIFESTS + """---
apiVersion: v1
kind: Service
metadata: {name: other, namespace: default}
spec: {ports: [{name: http, port: 80}]}
"""
    asgi = IngressASGI(parse_manifests(manifests),
                       {"default/up": _lifespan_app("A", log),
                        "default/other": _lifespan_app("B", log),
                        "default/none": _no_lifespan})
    answers: list[str] = []

    async def main() -> None:
        state: dict[str, Any] = {}
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"},
                 "state": state}
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        async def send(m: Any) -> None:
            answers.append(m["type"])

        inbox.put_nowait({"type": "lifespan.startup"})
        task = asyncio.ensure_future(asgi(scope, inbox.get, send))
        while not answers:
            await asyncio.sleep(0.01)
        assert "app" not in scope  # the server's scope is not written
        assert state == {"A": True, "B": True}

        async def request_send(m: Any) -> None:
            pass

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        await asgi({"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                    "method": "GET", "scheme": "http", "path": "/a", "raw_path": b"/a",
                    "query_string": b"", "root_path": "", "headers": [(b"host", b"plain.test")],
                    "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
                    "state": dict(state)}, receive, request_send)
        inbox.put_nowait({"type": "lifespan.shutdown"})
        await asyncio.wait_for(task, 5)

    asyncio.run(main())
    assert answers == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert sorted(log) == ["A startup: scope app A", "B startup: scope app B",
                           "request state ['A', 'B']"]
