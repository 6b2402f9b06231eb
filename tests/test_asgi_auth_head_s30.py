"""IngressASGI agrees with the core: the auth-url answer head is bounded by the location's
proxy-buffer-size (nginx.tmpl's auth location), each head by itself."""
from __future__ import annotations

from typing import Any

from test_asgi_extauth_s26 import AuthService, P, call, manifests, run


def _status(reply: bytes, ann: dict[str, str] | None = None) -> int:
    async def go() -> Any:
        async with AuthService(reply) as auth:
            return await call(manifests(auth.port, ann), [])
    return int(run(go()).status)


def _big(n: int) -> bytes:
    return b"HTTP/1.1 200 OK\r\nX-Pad: " + b"p" * n + b"\r\nContent-Length: 0\r\n\r\n"


def test_asgi_auth_answer_head_bounded_by_proxy_buffer_size() -> None:
    assert _status(_big(5000)) == 500
    assert _status(_big(5000), {P + "proxy-buffer-size": "8k"}) == 200
    assert _status(_big(500)) == 200
    hint = b"HTTP/1.1 103 Early Hints\r\nLink: " + b"l" * 3000 + b"\r\n\r\n"
    assert _status(hint * 2 + _big(10)) == 200


def test_asgi_auth_keepalive_answer_head_bounded_and_body_lines_not() -> None:
    ka = {P + "auth-keepalive": "4"}
    assert _status(_big(5000), ka) == 500
    body = b"5;ext=" + b"e" * 2000 + b"\r\nhello\r\n0\r\n\r\n"
    reply = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    assert _status(reply, {**ka, P + "proxy-buffer-size": "1k"}) == 200
