"""use-gzip (session 28): ingress-nginx's ConfigMap gzip keys, nginx's gzip filter applied by
the proxy core and by IngressASGI (proxy/_gzip.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import zlib
from typing import Any

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from _asgi_call import asgi_exchange
from _budget import examples
from test_perf_guards_s25 import MANIFESTS, python_calls

from ingresslib._asgi import IngressASGI
from ingresslib._load import parse_manifests
from ingresslib._router import Router
from ingresslib.proxy import ProxySettings, parse_config_data
from ingresslib.proxy._actions import OpenUpstream
from ingresslib.proxy._connection import Proxy
from ingresslib.proxy._gzip import (DEFAULT_TYPES, GzipEncoder, accepts_gzip, gzip_headers,
                                    response_eligible, wants_gzip)

ON = ProxySettings(use_gzip=True)
BODY = b"hello gzip world " * 40  # 680 bytes, past the 256 default
GZ = b"gzip, deflate"


def _ungzip(data: bytes) -> bytes:
    return zlib.decompress(data, 31)


def _dechunk(body: bytes) -> bytes:
    out = b""
    while True:
        line, _, rest = body.partition(b"\r\n")
        n = int(line, 16)
        if n == 0:
            return out
        out += rest[:n]
        body = rest[n + 2:]


# ---------------------------------------------------------------- the decision table
def _rh(**kw: bytes) -> list[tuple[bytes, bytes]]:
    return [(k.replace("_", "-").encode(), v) for k, v in kw.items()]


@pytest.mark.parametrize("status,expect", [(200, True), (403, True), (404, True),
                                           (201, False), (206, False), (301, False),
                                           (204, False), (304, False), (500, False)])
def test_statuses(status: int, expect: bool) -> None:
    assert wants_gzip(_rh(accept_encoding=GZ), True, status, False,
                      _rh(content_type=b"text/html"), ON) is expect


@pytest.mark.parametrize("ct,expect", [
    (b"text/html", True), (b"TEXT/HTML", True), (b"text/html; charset=utf-8", True),
    (b"text/plain;charset=UTF-8", True), (b"application/json", True),
    (b"image/png", False), (b"application/octet-stream", False),
    # nginx cuts the type only at a charset parameter (ngx_http_upstream_copy_content_type)
    (b"application/json; version=2", False), (None, False)])
def test_types(ct: bytes | None, expect: bool) -> None:
    headers = _rh(content_type=ct) if ct is not None else []
    assert wants_gzip(_rh(accept_encoding=GZ), True, 200, False, headers, ON) is expect


def test_star_type_and_custom_types() -> None:
    star = dataclasses.replace(ON, gzip_types="*")
    assert response_eligible(200, False, _rh(content_type=b"image/png"), star)
    assert response_eligible(200, False, [], star)  # "*": even without a type
    mine = dataclasses.replace(ON, gzip_types="application/wasm")
    assert response_eligible(200, False, _rh(content_type=b"application/wasm"), mine)
    assert response_eligible(200, False, _rh(content_type=b"text/html"), mine)  # always
    assert not response_eligible(200, False, _rh(content_type=b"text/plain"), mine)


def test_default_types_are_config_go_list() -> None:
    assert DEFAULT_TYPES.split() == [
        "application/atom+xml", "application/javascript", "application/x-javascript",
        "application/json", "application/rss+xml", "application/vnd.ms-fontobject",
        "application/x-font-ttf", "application/x-web-app-manifest+json",
        "application/xhtml+xml", "application/xml", "font/opentype", "image/svg+xml",
        "image/x-icon", "text/css", "text/javascript", "text/plain", "text/x-component"]
    assert ProxySettings().gzip_types == DEFAULT_TYPES
    assert (ProxySettings().use_gzip, ProxySettings().gzip_level,
            ProxySettings().gzip_min_length, ProxySettings().gzip_disable) == (False, 1, 256, "")


def test_content_encoding_and_min_length() -> None:
    html = _rh(content_type=b"text/html")
    assert not response_eligible(200, False, html + _rh(content_encoding=b"br"), ON)
    assert response_eligible(200, False, html + _rh(content_encoding=b""), ON)  # empty
    assert not response_eligible(200, False, html + _rh(content_length=b"255"), ON)
    assert response_eligible(200, False, html + _rh(content_length=b"256"), ON)
    assert response_eligible(200, False, html, ON)  # unknown length compresses
    assert not response_eligible(200, True, html, ON)  # HEAD


@pytest.mark.parametrize("ae,expect", [
    (b"gzip", True), (b"gzip, deflate, br", True), (b"deflate, gzip", True),
    (b"GZIP", True), (b"br;q=1, gzip;q=0.5", True), (b"gzip;q=0", False),
    (b"gzip; q=0.000", False), (b"gzip;q=0.001", True), (b"gzip;q=1.0", True),
    (b"gzip;q=1.5", False), (b"gzip;q=0.0001", False), (b"gzip;q=", False),
    (b"x-gzip", False), (b"deflate", False), (b"identity", False), (b"", False),
    (b"gzi", False), (b"*", False), (b"gzipx", False), (b"gzip ;q=0", False),
    (b"gzip;  q=0.5", True), (b"gzip;v=1", False),
    # nginx's own quirks, kept: a "gzip" right after a refused one counts ("p == start"), and
    # the decimals are summed, not weighed ("0.5" is 5, only zero or not matters)
    (b"xgzipgzip", True), (b"gzip;q=0.999", True)])
def test_accept_encoding_as_ngx_http_gzip_accept_encoding(ae: bytes, expect: bool) -> None:
    assert accepts_gzip(_rh(accept_encoding=ae), True, ON) is expect


def test_http_10_and_no_accept_encoding() -> None:
    assert not accepts_gzip(_rh(accept_encoding=GZ), False, ON)  # gzip_http_version 1.1
    assert not accepts_gzip([], True, ON)
    # the first Accept-Encoding line is read (headers_in.accept_encoding)
    assert not accepts_gzip(_rh(accept_encoding=b"br") + _rh(accept_encoding=b"gzip"), True, ON)


@pytest.mark.parametrize("ua,expect", [
    (b"Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)", False),
    (b"Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)", True),
    (b"Mozilla/4.0 (compatible; MSIE 5.5; Windows 98)", False),
    (b"Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 6.0)", True),
    (b"Opera/9.80 (MSIE 6.0; Windows)", True), (b"curl/8", True)])
def test_gzip_disable_msie6_word(ua: bytes, expect: bool) -> None:
    s = dataclasses.replace(ON, gzip_disable="msie6")
    assert accepts_gzip(_rh(accept_encoding=GZ, user_agent=ua), True, s) is expect
    assert accepts_gzip(_rh(accept_encoding=GZ, user_agent=ua), True, ON)


def test_gzip_disable_regex_is_caseless_search() -> None:
    s = dataclasses.replace(ON, gzip_disable="curl/[0-7]")
    assert not accepts_gzip(_rh(accept_encoding=GZ, user_agent=b"x CURL/7.1"), True, s)
    assert accepts_gzip(_rh(accept_encoding=GZ, user_agent=b"curl/8.0"), True, s)
    assert accepts_gzip(_rh(accept_encoding=GZ), True, s)  # no User-Agent


def test_headers_compressing() -> None:
    headers = [(b"Content-Type", b"content-type", b"text/html"),
               (b"Content-Length", b"content-length", b"900"),
               (b"Accept-Ranges", b"accept-ranges", b"bytes"),
               (b"ETag", b"etag", b'"abc"')]
    out = gzip_headers(headers, True)
    names = [h[1] for h in out]
    assert b"content-length" not in names and b"accept-ranges" not in names
    assert (b"ETag", b"etag", b'W/"abc"') in out
    assert (b"Content-Encoding", b"content-encoding", b"gzip") in out
    assert (b"Vary", b"vary", b"Accept-Encoding") in out
    weak = gzip_headers([(b"ETag", b"etag", b'W/"x"')], True)
    assert (b"ETag", b"etag", b'W/"x"') in weak  # already weak: kept
    assert not [h for h in gzip_headers([(b"ETag", b"etag", b"bare")], True)
                if h[1] == b"etag"]  # ngx_http_weak_etag drops an unquoted one


def test_vary_added_once() -> None:
    for vary in (b"Accept-Encoding", b"Origin, accept-encoding", b"*"):
        out = gzip_headers([(b"Vary", b"vary", vary)], True)
        assert [h[2] for h in out if h[1] == b"vary"] == [vary]
    out = gzip_headers([(b"Vary", b"vary", b"Origin")], False)
    assert [h[2] for h in out if h[1] == b"vary"] == [b"Origin", b"Accept-Encoding"]


def test_settings_validation() -> None:
    for bad in ({"gzip_level": 0}, {"gzip_level": 10}, {"gzip_min_length": -1},
                {"gzip_disable": "("}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            ProxySettings(**bad)  # type: ignore[arg-type]


# ---------------------------------------------------------------- the ConfigMap
def test_configmap_keys_parsed_and_not_warned() -> None:
    cfg = parse_config_data({"use-gzip": "true", "gzip-level": "6", "gzip-min-length": "10",
                             "gzip-types": "text/css  application/wasm",
                             "gzip-disable": "msie6"})
    s = cfg.settings
    assert (s.use_gzip, s.gzip_level, s.gzip_min_length, s.gzip_types, s.gzip_disable) == (
        True, 6, 10, "text/css application/wasm", "msie6")
    assert not [w for w in cfg.warnings if "not implement" in w]
    # brotli is implemented since session 29 (tests/test_brotli_s29.py): no longer warned
    assert not [w for w in parse_config_data({"enable-brotli": "true"}).warnings
                if "not implement" in w]


def test_configmap_bad_values_refused() -> None:
    from ingresslib._errors import ValidationError

    for key, value in (("gzip-level", "0"), ("gzip-level", "x"), ("gzip-min-length", "1k"),
                       ("gzip-types", " "), ("gzip-disable", "("),
                       ("gzip-disable", "\\u00e9")):
        with pytest.raises(ValidationError, match=key):
            parse_config_data({"use-gzip": "true", key: value})


def test_configmap_gzip_keys_without_use_gzip_warn() -> None:
    cfg = parse_config_data({"gzip-level": "5"})
    assert any("gzip-level" in w and "use-gzip" in w for w in cfg.warnings)


# ---------------------------------------------------------------- the core
REQ = (b"GET /a HTTP/1.1\r\nHost: plain.test\r\nAccept-Encoding: gzip, deflate\r\n"
       b"User-Agent: t\r\n\r\n")


@functools.lru_cache(maxsize=4)
def _proxy(settings: ProxySettings = ON) -> Proxy:
    return Proxy(Router(parse_manifests(MANIFESTS)), settings=settings, records=False)


def _start(proxy: Proxy, request: bytes = REQ) -> tuple[Any, int]:
    conn = proxy.connection(("127.0.0.1", 5555), now=0.0)
    conn.start(0.0)
    cid = [a.conn_id for a in conn.receive_data(request, 0.0) if type(a) is OpenUpstream][0]
    conn.upstream_connected(cid, 0.0, reused=True)
    return conn, cid


def _sent(actions: list[Any]) -> bytes:
    return b"".join(getattr(a, "data", b"") for a in actions)


def _core(response: bytes, request: bytes = REQ, settings: ProxySettings = ON,
          splits: list[int] | None = None) -> bytes:
    conn, cid = _start(_proxy(settings), request)
    out = b""
    pos = 0
    for n in (splits or []) + [len(response)]:
        out += _sent(conn.upstream_data(cid, response[pos:pos + n], 0.0))
        pos += n
        if pos >= len(response):
            break
    return out


def _split(raw: bytes) -> tuple[bytes, bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return head, body


def _up(body: bytes = BODY, ct: bytes = b"text/html", extra: bytes = b"",
        status: bytes = b"200 OK") -> bytes:
    return (b"HTTP/1.1 " + status + b"\r\nContent-Type: " + ct + b"\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body)


def test_core_compresses() -> None:
    head, body = _split(_core(_up(extra=b'ETag: "v1"\r\nAccept-Ranges: bytes\r\n')))
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"\r\nContent-Encoding: gzip" in head and b"\r\nVary: Accept-Encoding" in head
    assert b"Transfer-Encoding: chunked" in head and b"Content-Length" not in head
    assert b'ETag: W/"v1"' in head and b"Accept-Ranges" not in head
    assert _ungzip(_dechunk(body)) == BODY


def test_core_default_off_changes_nothing() -> None:
    raw = _up(extra=b'ETag: "v1"\r\n')
    on = _core(raw, settings=ProxySettings())
    head, body = _split(on)
    assert body == BODY and b"Content-Length: 680" in head and b'ETag: "v1"' in head
    assert b"Vary" not in head and b"Content-Encoding" not in head


def test_core_not_compressed_cases() -> None:
    # a client without gzip: Vary only (gzip_vary on), the body as it was
    plain = REQ.replace(b"Accept-Encoding: gzip, deflate\r\n", b"")
    head, body = _split(_core(_up(), request=plain))
    assert b"Vary: Accept-Encoding" in head and b"Content-Encoding" not in head
    assert body == BODY
    # HTTP/1.0: not compressed
    old = REQ.replace(b"HTTP/1.1", b"HTTP/1.0")
    head, body = _split(_core(_up(), request=old))
    assert b"Content-Encoding" not in head and body == BODY
    # small: not even Vary
    head, body = _split(_core(_up(b"tiny")))
    assert b"Vary" not in head and body == b"tiny"
    # already encoded
    head, body = _split(_core(_up(extra=b"Content-Encoding: br\r\n")))
    assert b"Content-Encoding: br" in head and b"gzip" not in head and body == BODY
    # image/png
    head, body = _split(_core(_up(ct=b"image/png")))
    assert b"Content-Encoding" not in head and body == BODY
    # 500
    head, body = _split(_core(_up(status=b"500 Internal Server Error")))
    assert b"Content-Encoding" not in head and body == BODY


def test_core_head_request_untouched() -> None:
    req = REQ.replace(b"GET ", b"HEAD ")
    conn, cid = _start(_proxy(), req)
    head = _up(b"").replace(b"Content-Length: 0", b"Content-Length: 680")
    raw = _sent(conn.upstream_data(cid, head, 0.0))
    # (corrected, review R1) nginx sets r->header_only for HEAD in ngx_http_header_filter,
    # after the gzip filter: the HEAD answer has its GET's headers, and no body.
    assert b"Content-Length" not in raw and b"Content-Encoding: gzip" in raw
    assert b"Vary: Accept-Encoding" in raw and raw.endswith(b"\r\n\r\n")


def test_core_keep_alive_next_response_plain() -> None:
    proxy = _proxy()
    conn, cid = _start(proxy)
    first = _sent(conn.upstream_data(cid, _up(), 0.0))
    assert b"Content-Encoding: gzip" in first
    assert conn._gz is None  # freed at the response's end
    cid2 = [a.conn_id for a in conn.receive_data(REQ.replace(b"gzip, deflate", b"br"), 1.0)
            if type(a) is OpenUpstream]
    cid = cid2[0] if cid2 else cid
    if cid2:
        conn.upstream_connected(cid, 1.0, reused=True)
    second = _sent(conn.upstream_data(cid, _up(), 1.0))
    head, body = _split(second)
    assert b"Content-Encoding" not in head and body == BODY


def test_core_streamed_chunks_each_decompressible() -> None:
    # An SSE-like chunked upstream: after each upstream read, everything the client got so far
    # decompresses to everything the upstream sent so far (Z_SYNC_FLUSH per read).
    conn, cid = _start(_proxy())
    head = _sent(conn.upstream_data(cid, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                         b"Transfer-Encoding: chunked\r\n\r\n", 0.0))
    assert b"Content-Encoding: gzip" in head
    d = zlib.decompressobj(31)
    got = b""
    sent = b""
    for i in range(5):
        event = b"data: event %d\n\n" % i
        sent += event
        out = _sent(conn.upstream_data(cid, b"%x\r\n%s\r\n" % (len(event), event), 0.0))
        assert out, "nothing flushed for an upstream read"
        got += d.decompress(_dechunk(out + b"0\r\n\r\n"))
        assert got == sent
    tail = _sent(conn.upstream_data(cid, b"0\r\n\r\n", 0.0))
    assert tail.endswith(b"0\r\n\r\n")
    d.decompress(_dechunk(tail))
    assert d.eof and got == sent


def test_core_abort_frees_the_stream() -> None:
    conn, cid = _start(_proxy())
    conn.upstream_data(cid, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                            b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", 0.0)
    assert conn._gz is not None
    conn.abort(0.0)
    assert conn._gz is None


@hsettings(max_examples=examples(0.3), deadline=None)
@given(body=st.binary(min_size=256, max_size=3000), cuts=st.lists(
    st.integers(min_value=1, max_value=400), max_size=8), chunked=st.booleans())
def test_core_random_chunkings_decompress_to_the_body(body: bytes, cuts: list[int],
                                                      chunked: bool) -> None:
    if chunked:
        pieces, pos = [], 0
        for c in cuts + [len(body)]:
            if pos < len(body):
                pieces.append(body[pos:pos + c])
                pos += c
        wire = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
        raw = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked"
               b"\r\n\r\n" + wire)
    else:
        raw = _up(body, ct=b"text/plain")
    head, out = _split(_core(raw, splits=cuts))
    assert b"Content-Encoding: gzip" in head
    assert _ungzip(_dechunk(out)) == body


def test_encoder_bounded_and_finish_once() -> None:
    enc = GzipEncoder(1)
    part = enc.feed(b"abc")
    d = zlib.decompressobj(31)
    assert d.decompress(part) == b"abc"
    tail = enc.finish()
    assert enc.finish() == b"" and enc.feed(b"x") == b""
    d.decompress(tail)
    assert d.eof


def test_core_plain_request_calls_no_gzip_code() -> None:
    from test_perf_guards_s25 import core_request

    proxy = Proxy(Router(parse_manifests(MANIFESTS)), records=False)
    core_request(proxy, 0.0)
    with python_calls() as seen:
        core_request(proxy, 1.0)
    assert seen and not [c for c in seen if c[0] == "_gzip.py"]
    # and the guard sees it when on
    proxy = _proxy()
    core_request(proxy, 0.0)
    with python_calls() as seen:
        core_request(proxy, 1.0)
    assert [c for c in seen if c[0] == "_gzip.py"]


# ---------------------------------------------------------------- IngressASGI
async def _app(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    path = scope["path"]
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream"),
                                (b"etag", b'"e"')]})
        for i in range(3):
            await send({"type": "http.response.body", "body": b"data: %d\n\n" % i,
                        "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/html"),
                            (b"content-length", str(len(BODY)).encode())]})
    await send({"type": "http.response.body", "body": BODY})


def _asgi(path: str, headers: list[tuple[bytes, bytes]], settings: ProxySettings = ON,
          version: str = "1.1", method: str = "GET") -> list[dict[str, Any]]:
    app = IngressASGI(parse_manifests(MANIFESTS), {"default/up": _app}, settings=settings)
    return asgi_exchange(app, "plain.test", path, b"", headers=headers, method=method,
                         http_version=version, client=("127.0.0.1", 5555))


def test_asgi_compresses() -> None:
    sent = _asgi("/a", [(b"accept-encoding", b"gzip")])
    start = dict(sent[0]["headers"])
    assert start[b"content-encoding"] == b"gzip" and start[b"vary"] == b"Accept-Encoding"
    assert b"content-length" not in start
    assert _ungzip(b"".join(m.get("body", b"") for m in sent[1:])) == BODY


def test_asgi_off_and_refused() -> None:
    for sent in (_asgi("/a", [(b"accept-encoding", b"gzip")], ProxySettings()),
                 _asgi("/a", [(b"accept-encoding", b"gzip")], version="1.0"),
                 _asgi("/a", [(b"accept-encoding", b"gzip;q=0")])):
        start = dict(sent[0]["headers"])
        assert b"content-encoding" not in start
        assert b"".join(m.get("body", b"") for m in sent[1:]) == BODY


def test_asgi_stream_flushes_each_message() -> None:
    # (text/event-stream is not in ingress-nginx's default gzip-types: listed here)
    sent = _asgi("/stream", [(b"accept-encoding", b"gzip")],
                 dataclasses.replace(ON, gzip_types="text/event-stream"))
    start = dict(sent[0]["headers"])
    assert start[b"content-encoding"] == b"gzip" and start[b"etag"] == b'W/"e"'
    d = zlib.decompressobj(31)
    got = b""
    for i, m in enumerate(sent[1:4]):
        got += d.decompress(m["body"])
        assert got.endswith(b"data: %d\n\n" % i)
    d.decompress(sent[4]["body"])
    assert d.eof


# ---------------------------------------------------------------- end to end
def test_server_end_to_end_with_a_real_backend() -> None:
    from ingresslib.proxy import ProxyServer

    async def backend(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        await r.readuntil(b"\r\n\r\n")
        w.write(_up())
        await w.drain()
        w.close()

    async def main() -> bytes:
        up = await asyncio.start_server(backend, "127.0.0.1", 0)
        port = up.sockets[0].getsockname()[1]
        manifests = MANIFESTS.replace("10.0.0.1", "127.0.0.1").replace("8080", str(port))
        server = ProxyServer(Router(parse_manifests(manifests)), settings=ON)
        await server.start(("127.0.0.1", 0))
        try:
            r, w = await asyncio.open_connection("127.0.0.1", server.addresses[0][2])
            w.write(REQ.replace(b"User-Agent: t\r\n", b"Connection: close\r\n"))
            await w.drain()
            data = await asyncio.wait_for(r.read(), 2)
            w.close()
            return data
        finally:
            await server.shutdown(1)
            up.close()

    head, body = _split(asyncio.run(main()))
    assert b"Content-Encoding: gzip" in head, head
    assert _ungzip(_dechunk(body)) == BODY


def test_asgi_head_untouched() -> None:
    sent = _asgi("/a", [(b"accept-encoding", b"gzip")], method="HEAD")
    start = dict(sent[0]["headers"])
    # (corrected, review R1) as the core's HEAD answer: its GET's headers
    assert start[b"content-encoding"] == b"gzip" and start[b"vary"] == b"Accept-Encoding"
    assert b"content-length" not in start


def test_asgi_plain_request_calls_no_gzip_code() -> None:
    from test_perf_guards_s25 import _app as plain_app, _asgi_call

    asgi = IngressASGI(parse_manifests(MANIFESTS), {"default/up": plain_app})
    _asgi_call(asgi, [], [])
    with python_calls() as seen:
        _asgi_call(asgi, [], [])
    assert seen and not [c for c in seen if c[0] == "_gzip.py"]
    asgi = IngressASGI(parse_manifests(MANIFESTS), {"default/up": plain_app}, settings=ON)
    _asgi_call(asgi, [], [])
    with python_calls() as seen:
        _asgi_call(asgi, [], [])
    assert [c for c in seen if c[0] == "_gzip.py"]


def test_core_vary_once_and_gzip_disable() -> None:
    head, body = _split(_core(_up(extra=b"Vary: Accept-Encoding\r\n")))
    assert head.lower().count(b"\r\nvary:") == 1 and b"Content-Encoding: gzip" in head
    off = dataclasses.replace(ON, gzip_disable="^t$")
    head, body = _split(_core(_up(), settings=off))  # REQ's User-Agent is "t"
    assert b"Content-Encoding" not in head and b"Vary: Accept-Encoding" in head
    assert body == BODY


def test_core_404_page_of_the_upstream_compressed() -> None:
    head, body = _split(_core(_up(status=b"404 Not Found")))
    assert head.startswith(b"HTTP/1.1 404 ") and b"Content-Encoding: gzip" in head
    assert _ungzip(_dechunk(body)) == BODY
