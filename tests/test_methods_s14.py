"""Request methods as nginx reads them (session 14), in the proxy core, IngressASGI and explain.

nginx, src/http/ngx_http_parse.c ``ngx_http_parse_request_line`` (nginx/nginx): every method
character, the first one included, must be ``A-Z``, ``_`` or ``-``:
"if ((ch < 'A' || ch > 'Z') && ch != '_' && ch != '-') { return
NGX_HTTP_PARSE_INVALID_METHOD; }" -- a 400 before any header is read. h11 takes any token
(``get``, ``G.T``, ``M1``), so the proxy forwarded ``get`` to a backend while its own method
checks (CONNECT/TRACE refusals, retry idempotency) read it as another method than ``GET``.

nginx checks the head before the method: duplicate Host and read-once headers are refused
while the header lines are read (``ngx_http_process_unique_header_line``), Content-Length and
Transfer-Encoding in ``ngx_http_process_request_header``, and only at that function's end
"if (r->method == NGX_HTTP_CONNECT) ... NGX_HTTP_NOT_ALLOWED" and the same for TRACE. So a TRACE
with a bad head is a 400 there, not a 405. In-process only.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

import ingresslib
from ingresslib._cli import main

from _proxy_harness import ProxyPair, status_of
from test_asgi_conformance import asgi_call, proxy_answer, wire
from test_trace_s14 import HOST, NEXT, ROUTES

# The routes, the Host line and the request pipelined after a refused one (the connection
# is closed: nobody reads it) are test_trace_s14's.

#: Tokens h11 accepts (RFC 9110 tchar) that nginx's request-line parser refuses.
BAD_METHODS = ["get", "Get", "gET", "M1", "G.T", "GET!", "P~T", "1", "a", "X+Y", "TRACe",
               "connect"]
#: Methods nginx reads (only A-Z, '_', '-'): they reach the backend as sent.
GOOD_METHODS = ["GET", "POST", "M-SEARCH", "X_Y", "PROPFIND", "_", "-", "PURGE"]


def pair() -> ProxyPair:
    return ProxyPair(router=ingresslib.Router(ingresslib.parse_manifests(ROUTES)))


# -- the proxy core --------------------------------------------------------------------------


@pytest.mark.parametrize("method", BAD_METHODS)
def test_proxy_refuses_a_method_nginx_cannot_parse(method: str) -> None:
    p = pair()
    out = p.send(method.encode() + b" / HTTP/1.1\r\n" + HOST + b"\r\n" + NEXT)
    assert status_of(out) == 400, out
    assert out.count(b"HTTP/1.1 ") == 1 and p.closed, out  # closed: the next one is not read
    assert p.opens == [] and p.upstream_bytes == b""


@pytest.mark.parametrize("method", GOOD_METHODS)
def test_proxy_forwards_the_methods_nginx_reads(method: str) -> None:
    r = proxy_answer(wire(f"{method} / HTTP/1.1\r\nHost: shop.example.com"), manifests=ROUTES)
    assert r.upstream is not None and r.upstream.startswith(method.encode() + b" / "), r


@pytest.mark.parametrize("method", ["TRACE", "CONNECT"])
@pytest.mark.parametrize("head", [
    HOST + HOST,
    HOST + b"Host: other.example.com\r\n",
    HOST + b"Authorization: a\r\nAuthorization: b\r\n",
    HOST + b"Content-Length: 99999999999999999999\r\n",
    HOST + b"Content-Length: 1\r\nTransfer-Encoding: chunked\r\n",
    b"Host:\r\n",
], ids=["dup-host", "two-hosts", "dup-authorization", "cl-range", "cl-and-te", "empty-host"])
def test_proxy_checks_the_head_before_connect_and_trace(method: str, head: bytes) -> None:
    target = b"shop.example.com:443" if method == "CONNECT" else b"/"
    p = pair()
    out = p.send(method.encode() + b" " + target + b" HTTP/1.1\r\n" + head + b"\r\n")
    assert status_of(out) == 400, out
    assert p.closed and p.opens == []


@pytest.mark.parametrize("method", ["TRACE", "CONNECT"])
def test_proxy_still_refuses_connect_and_trace_with_a_good_head(method: str) -> None:
    target = b"shop.example.com:443" if method == "CONNECT" else b"/"
    p = pair()
    out = p.send(method.encode() + b" " + target + b" HTTP/1.1\r\n" + HOST + b"\r\n" + NEXT)
    assert status_of(out) == 405 and p.closed and p.opens == [], out


# -- IngressASGI ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", BAD_METHODS)
def test_asgi_refuses_a_method_nginx_cannot_parse(method: str) -> None:
    head = f"{method} / HTTP/1.1\r\nHost: shop.example.com"
    seen = asyncio.run(asgi_call(head, manifests=ROUTES))
    assert seen.status == 400 and not seen.app_ran
    assert proxy_answer(wire(head), manifests=ROUTES).status == 400  # as the proxy answers


@pytest.mark.parametrize("method", GOOD_METHODS)
def test_asgi_passes_the_methods_nginx_reads(method: str) -> None:
    seen = asyncio.run(asgi_call(f"{method} / HTTP/1.1\r\nHost: shop.example.com",
                                 manifests=ROUTES))
    assert seen.app_ran and seen.status == 200


@pytest.mark.parametrize("method", ["TRACE", "CONNECT"])
@pytest.mark.parametrize("headers", [
    "\r\nHost: shop.example.com\r\nHost: shop.example.com",
    "\r\nHost: shop.example.com\r\nAuthorization: a\r\nAuthorization: b",
    "\r\nHost: shop.example.com\r\nHost: other.example.com",
    "\r\nHost:",
], ids=["dup-host", "dup-authorization", "two-hosts", "empty-host"])
def test_asgi_checks_the_head_before_connect_and_trace(method: str, headers: str) -> None:
    head = f"{method} / HTTP/1.1{headers}"
    seen = asyncio.run(asgi_call(head, manifests=ROUTES))
    assert seen.status == 400 and not seen.app_ran
    assert proxy_answer(wire(head), manifests=ROUTES).status == 400  # as the proxy answers


def test_asgi_still_refuses_trace_with_a_good_head() -> None:
    seen = asyncio.run(asgi_call("TRACE / HTTP/1.1\r\nHost: shop.example.com",
                                 manifests=ROUTES))
    assert seen.status == 405 and not seen.app_ran


# -- explain -X -------------------------------------------------------------------------------


def _explain(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES)
    assert main(["explain", "-f", str(routes), "-o", "json", *args,
                 "http://shop.example.com/api"]) == 0
    info: dict[str, object] = json.loads(capsys.readouterr().out)
    return info


@pytest.mark.parametrize(("method", "readable"), [
    ("get", "GET"), ("M1", "M-"), ("G.T", "G-T"), ("connect", "CONNECT")])
def test_explain_says_400_for_a_method_nginx_cannot_parse(
        method: str, readable: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    info = _explain(tmp_path, capsys, "-X", method)
    assert info["status"] == 400 and info["match"] is None, info
    assert info["reason"] == "rejected: invalid method", info
    # The same URL with a method spelled as nginx reads it is not refused as a method.
    assert _explain(tmp_path, capsys, "-X", readable)["status"] != 400


@pytest.mark.parametrize("method", ["TRACE", "CONNECT"])
def test_explain_checks_the_head_before_connect_and_trace(
        method: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    info = _explain(tmp_path, capsys, "-X", method,
                    "-H", "Authorization: a", "-H", "Authorization: b")
    assert info["status"] == 400, info
    info = _explain(tmp_path, capsys, "-X", method, "-H", "Host: shop.example.com",
                    "-H", "Host: shop.example.com")
    assert info["status"] == 400 and info["reason"] == "rejected: duplicate Host", info
    assert _explain(tmp_path, capsys, "-X", method)["status"] == 405
