"""Review of enable-brotli (session 29, R7): framing x client for a br body through the proxy
core (every answer parsed by an h11 client, the next request answered), an HTTP/1.0 client's
close-delimited br body, a response cut mid-body, google/ngx_brotli's Accept-Encoding parser
transliterated, brotli and gzip together, IngressASGI's app-side edge cases, and a
``brotli`` module that imports but does not work (proxy/_brotli.py, proxy/_gzip.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import types
import zlib
from collections.abc import Iterator
from typing import Any

import brotli
import h11
import pytest
from hypothesis import given, settings as hsettings, strategies as st

from _asgi_call import asgi_exchange
from _budget import examples
from test_gzip_review_s28 import H, UPSTREAMS, _body, _client_events, _headers
from test_gzip_s28 import BODY, _proxy, _sent, _start, _up
from test_perf_guards_s25 import MANIFESTS

from ingresslib._asgi import IngressASGI
from ingresslib._load import parse_manifests
from ingresslib._router import Router
from ingresslib.proxy import ProxySettings, parse_config_data
from ingresslib.proxy import _brotli
from ingresslib.proxy._actions import OpenUpstream
from ingresslib.proxy._brotli import accepts_br
from ingresslib.proxy._connection import Proxy
from ingresslib.proxy._gzip import start_gzip

BR = ProxySettings(enable_brotli=True)
BOTH = ProxySettings(enable_brotli=True, use_gzip=True)
REQ = b"GET /a HTTP/1.1\r\nHost: plain.test\r\nAccept-Encoding: gzip, br\r\nUser-Agent: t\r\n\r\n"


def _unbr(data: bytes) -> bytes:
    d = brotli.Decompressor()
    out = d.process(data)
    assert d.is_finished()
    return bytes(out)


def _next_answered(conn: Any, cid: int) -> None:
    """The next request on the connection gets its own complete br answer."""
    more = conn.receive_data(REQ.replace(b"/a", b"/b"), 1.0)
    ids = [a.conn_id for a in more if type(a) is OpenUpstream]
    if ids:
        cid = ids[0]
        conn.upstream_connected(cid, 1.0, reused=True)
    second = _sent(conn.upstream_data(cid, _up(b"second " * 50), 1.0))
    events = _client_events(second)
    assert type(events[-1]) is h11.EndOfMessage
    assert _headers(events)[b"content-encoding"] == b"br"
    assert _unbr(_body(events)) == b"second " * 50


# ---------------------------------------------------------------- framing x client (core)
@pytest.mark.parametrize("kind", sorted(UPSTREAMS))
@pytest.mark.parametrize("client", ["keep-alive", "close", "http10", "head"])
def test_framing_matrix_br(kind: str, client: str) -> None:
    raw, close_delimited = UPSTREAMS[kind]
    req = REQ
    if client == "close":
        req = REQ.replace(b"User-Agent: t\r\n", b"Connection: close\r\n")
    elif client == "http10":
        req = REQ.replace(b"HTTP/1.1", b"HTTP/1.0").replace(
            b"User-Agent: t\r\n", b"Connection: keep-alive\r\n")
    elif client == "head":
        req = REQ.replace(b"GET ", b"HEAD ")
    head = client == "head"
    if head and kind not in ("204", "304"):
        raw = raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
        if b"103 Early" in raw:
            raw = UPSTREAMS["1xx"][0].rsplit(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
        close_delimited = False
    conn, cid = _start(_proxy(BR), req)
    acts = conn.upstream_data(cid, raw, 0.0)
    if close_delimited:
        acts += conn.upstream_eof(cid, 0.0)
    out = _sent(acts)
    events = _client_events(out, b"HEAD" if head else b"GET")
    headers = _headers(events)
    body = _body(events)
    expected = b"" if kind in ("empty-chunked", "204", "304") else BODY
    compressed = headers.get(b"content-encoding") == b"br"
    # ngx_brotli: 200 / 403 / 404 only, any HTTP version (no gzip_http_version)
    assert compressed is (kind not in ("204", "304", "206")), headers
    if compressed:
        assert b"content-length" not in headers and headers[b"vary"] == b"Accept-Encoding"
        if head:
            assert body == b""
        else:
            assert _unbr(body) == expected
    else:
        assert body == (b"" if head else expected)
    if client == "http10" and compressed and not head:
        # the br body ends with the connection: "Connection: close", nothing read after
        assert headers[b"connection"] == b"close" and b"transfer-encoding" not in headers
        assert any(type(a).__name__ == "CloseDownstream" for a in acts)
    if client in ("keep-alive", "head") and kind not in ("close", "http10"):
        assert conn._gz is None
        _next_answered(conn, cid)


def test_http10_pipelined_request_not_read_after_close_delimited_br() -> None:
    old = REQ.replace(b"HTTP/1.1", b"HTTP/1.0").replace(b"User-Agent: t\r\n",
                                                        b"Connection: keep-alive\r\n")
    conn = _proxy(BR).connection(("127.0.0.1", 5555), now=0.0)
    conn.start(0.0)
    acts = conn.receive_data(old + old.replace(b"/a", b"/b"), 0.0)
    ids = [a.conn_id for a in acts if type(a) is OpenUpstream]
    assert len(ids) == 1
    conn.upstream_connected(ids[0], 0.0, reused=True)
    acts = conn.upstream_data(ids[0], _up(), 0.0)
    names = [type(a).__name__ for a in acts]
    assert "OpenUpstream" not in names and names[-1] == "CloseDownstream"
    head, _, body = _sent(acts).partition(b"\r\n\r\n")
    assert b"Content-Encoding: br" in head and b"Connection: close" in head
    assert _unbr(body) == BODY


@pytest.mark.parametrize("client", ["http11", "http10"])
@pytest.mark.parametrize("chunked", [False, True])
def test_upstream_dying_mid_body_never_finishes_the_br_stream(client: str,
                                                              chunked: bool) -> None:
    req = REQ if client == "http11" else REQ.replace(b"HTTP/1.1", b"HTTP/1.0")
    conn, cid = _start(_proxy(BR), req)
    if chunked:
        raw = H + b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n" % (300, BODY[:300])
    else:
        raw = _up()[:-200]
    out = _sent(conn.upstream_data(cid, raw, 0.0) + conn.upstream_eof(cid, 0.0))
    head, _, body = out.partition(b"\r\n\r\n")
    assert b"Content-Encoding: br" in head and conn._gz is None
    if client == "http11":
        assert not body.endswith(b"0\r\n\r\n")
        pieces = []
        while body:
            line, _, rest = body.partition(b"\r\n")
            n = int(line, 16)
            pieces.append(rest[:n])
            body = rest[n + 2:]
        body = b"".join(pieces)
    d = brotli.Decompressor()
    got = d.process(body)
    # what was read is all there (flushed), the stream is not finished
    assert got == BODY[:300 if chunked else 480] and not d.is_finished()


def test_many_one_byte_chunks_output_stays_linear() -> None:
    n = 3000
    wire = (H + b"Transfer-Encoding: chunked\r\n\r\n"
            + b"".join(b"1\r\n%c\r\n" % (65 + i % 26) for i in range(n)) + b"0\r\n\r\n")
    conn, cid = _start(_proxy(BR), REQ)
    out = _sent(conn.upstream_data(cid, wire, 0.0))
    assert len(_unbr(_body(_client_events(out)))) == n
    assert len(out) < 3 * len(wire)  # (measured: 4 bytes of br per 1-byte flush, gzip's 7)


# ---------------------------------------------------------------- Accept-Encoding
def _lower(c: int) -> int:
    return c + 32 if 65 <= c <= 90 else c  # ngx_tolower


def _ngx_check_accept_encoding(value: bytes) -> bool:
    """google/ngx_brotli filter/ngx_http_brotli_filter_module.c ``check_accept_encoding``,
    transliterated statement by statement over the NUL-terminated value."""
    s = value + b"\0"
    end = len(value)
    if end < 2:
        return False
    cursor = 0
    while True:
        # ngx_strcasestrn(cursor, "br", 1): the first byte, then ngx_strncasecmp on 1 more;
        # NULL at the value's NUL
        i = cursor
        while True:
            c1 = s[i]
            i += 1
            if c1 == 0:
                return False
            if _lower(c1) == ord("b") and _lower(s[i]) == ord("r"):
                break
        cursor = i - 1
        before = ord(" ") if cursor == 0 else s[cursor - 1]
        cursor += 2
        after = ord(" ") if cursor >= end else s[cursor]
        if before not in b", ":
            continue
        if after not in b",; ":
            continue
        for want in b";q=":
            while s[cursor] == 32:
                cursor += 1
            c = s[cursor]
            cursor += 1
            if c != want:
                return True
        while s[cursor] == 32:
            cursor += 1
        c = s[cursor]
        cursor += 1
        if c != ord("0"):
            return True
        c = s[cursor]
        cursor += 1
        if c != ord("."):
            return False
        for _ in range(3):
            digit = s[cursor]
            cursor += 1
            if not 48 <= digit <= 57:
                return False
            if digit > 48:
                return True
        return False


@hsettings(max_examples=examples(0.5), deadline=None)
@given(value=st.lists(st.sampled_from(
    [b"br", b"BR", b"bR", b"b", b"r", b"x", b"gzip", b",", b", ", b" ", b";", b"q", b"Q", b"=",
     b"0", b"0.", b"00", b"1", b"5", b"\t", b"brotli", b"x-br", b"*", b";q=0", b";q=0.000"]),
    max_size=8).map(b"".join))
def test_accept_encoding_agrees_with_ngx_brotli(value: bytes) -> None:
    value = value.strip(b" \t")  # (h11 and nginx both drop the value's outer whitespace)
    assert accepts_br([(b"accept-encoding", value)]) is _ngx_check_accept_encoding(value)


@pytest.mark.parametrize("lines,expect", [
    ([b"br"], True), ([b"gzip", b"br"], False), ([b"br", b"gzip"], True),
    ([b"xbr, brotli"], False), ([b"gzip,\tbr"], False), ([b"BR ; Q=0"], True),
    ([b"br ;q= 0.0"], False), ([b"identity", b"br"], False)])
def test_accept_encoding_lines_core_and_asgi(lines: list[bytes], expect: bool) -> None:
    # r->headers_in.accept_encoding is the first Accept-Encoding line (nginx keeps the
    # others linked after it; check_accept_encoding reads its value only); h11 and ASGI keep
    # the lines apart, so ingresslib reads the first as well.
    req = b"GET /a HTTP/1.1\r\nHost: plain.test\r\n" + b"".join(
        b"Accept-Encoding: %s\r\n" % v for v in lines) + b"\r\n"
    conn, cid = _start(_proxy(BR), req)
    core = _headers(_client_events(_sent(conn.upstream_data(cid, _up(), 0.0))))
    assert (core.get(b"content-encoding") == b"br") is expect
    sent = asgi_exchange(IngressASGI(parse_manifests(MANIFESTS), {"default/up": _app(
        [(b"content-type", b"text/html")], [BODY])}, settings=BR), "plain.test", "/a", b"",
        headers=[(b"accept-encoding", v) for v in lines], client=("127.0.0.1", 5555))
    assert (dict(sent[0]["headers"]).get(b"content-encoding") == b"br") is expect


# ---------------------------------------------------------------- brotli and gzip together
def _decide(ae: bytes, settings: ProxySettings, ua: bytes = b"t", http_11: bool = True,
            **resp: bytes) -> list[tuple[bytes, bytes, bytes]]:
    items = [(k.replace("_", "-").encode(), k.replace("_", "-").encode(), v)
             for k, v in resp.items()]
    out, _ = start_gzip([(b"accept-encoding", ae), (b"user-agent", ua)], http_11, 200, False,
                        items, settings)
    return out


def test_gzip_disable_does_not_apply_to_brotli() -> None:
    # ngx_http_brotli_check_request: check_accept_encoding only (no gzip_disable, msie6,
    # gzip_proxied); the gzip filter then passes ("Content-Encoding" set).
    msie = b"Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)"
    for disable, ua in (("msie6", msie), ("curl.*", b"curl/8")):
        s = dataclasses.replace(BOTH, gzip_disable=disable)
        got = dict((h[1], h[2]) for h in _decide(b"gzip, br", s, ua, content_type=b"text/html"))
        assert got[b"content-encoding"] == b"br"
        got = dict((h[1], h[2]) for h in _decide(b"gzip", s, ua, content_type=b"text/html"))
        assert b"content-encoding" not in got and got[b"vary"] == b"Accept-Encoding"


def test_min_lengths_and_types_differing() -> None:
    s = dataclasses.replace(BOTH, brotli_min_length=500, gzip_min_length=100,
                            brotli_types="text/css", gzip_types="application/json")

    def coding(length: bytes, ct: bytes) -> bytes | None:
        out = _decide(b"gzip, br", s, content_type=ct, content_length=length)
        assert [h[2] for h in out if h[1] == b"vary"] in ([b"Accept-Encoding"], [])
        return dict((h[1], h[2]) for h in out).get(b"content-encoding")

    assert coding(b"600", b"text/css") == b"br"
    assert coding(b"400", b"text/css") is None          # under brotli's, not gzip's type
    assert coding(b"400", b"application/json") == b"gzip"
    assert coding(b"50", b"application/json") is None
    assert coding(b"50", b"text/html") is None           # text/html in both, under both
    assert coding(b"400", b"text/html") == b"gzip"
    assert coding(b"600", b"text/html") == b"br"


def test_etag_weak_once_and_vary_once_with_added_vary() -> None:
    out = _decide(b"gzip, br", BOTH, content_type=b"text/html", etag=b'"e"',
                  vary=b"Origin")
    assert [h[2] for h in out if h[1] == b"etag"] == [b'W/"e"']
    assert [h[2] for h in out if h[1] == b"vary"] == [b"Origin", b"Accept-Encoding"]
    out = _decide(b"gzip, br", BOTH, content_type=b"text/html", etag=b'W/"e"',
                  vary=b"accept-encoding")
    assert [h[2] for h in out if h[1] == b"etag"] == [b'W/"e"']
    assert [h[2] for h in out if h[1] == b"vary"] == [b"accept-encoding"]


def test_custom_http_errors_page_br_by_core_and_asgi() -> None:
    from _proxy_harness import ProxyPair, Reply
    from test_custom_errors_s25 import ERR, _docs

    page = b"<html>error page</html>" * 30

    def upstreams(request: Any, data: bytes, up: Any) -> Any:
        if up.endpoint == ERR:
            return Reply(b"HTTP/1.1 404 NF\r\nContent-Type: text/html\r\nContent-Length: %d"
                         b"\r\n\r\n%s" % (len(page), page))
        return Reply(b"HTTP/1.1 404 X\r\nContent-Type: text/html\r\nContent-Length: 2\r\n\r\nUP")

    p = ProxyPair(router=Router(parse_manifests(_docs())), app=upstreams, settings=BOTH)
    out = p.send(b"GET /x HTTP/1.1\r\nHost: a.test\r\nAccept-Encoding: gzip, br\r\n\r\n")
    events = _client_events(out)
    assert _headers(events)[b"content-encoding"] == b"br"
    assert _unbr(_body(events)) == page

    async def web(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 404,
                    "headers": [(b"content-type", b"text/html")]})
        await send({"type": "http.response.body", "body": b"UP"})

    async def errors(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 404,
                    "headers": [(b"content-type", b"text/html")]})
        await send({"type": "http.response.body", "body": page})

    ingress = IngressASGI(parse_manifests(_docs()), {"default/web": web,
                                                     "default/errors": errors}, settings=BOTH)
    sent = asgi_exchange(ingress, "a.test", "/x", b"",
                         headers=[(b"accept-encoding", b"gzip, br")],
                         client=("127.0.0.1", 5000))
    start = {k.lower(): v for k, v in sent[0]["headers"]}
    assert sent[0]["status"] == 404 and start[b"content-encoding"] == b"br"
    assert [v for k, v in sent[0]["headers"] if k.lower() == b"vary"] == [b"Accept-Encoding"]
    assert _unbr(b"".join(m.get("body", b"") for m in sent[1:])) == page


def test_access_log_counts_the_br_bytes() -> None:
    from ingresslib.proxy._actions import RequestDone

    proxy = Proxy(Router(parse_manifests(MANIFESTS)), settings=BR)
    conn, cid = _start(proxy, REQ)
    acts = conn.upstream_data(cid, _up(BODY * 10), 0.0)
    out = _sent(acts)
    rec = next(a.record for a in acts if type(a) is RequestDone)
    assert rec.bytes_out == len(out) and rec.body_bytes_out < len(BODY)


# ---------------------------------------------------------------- IngressASGI
def _app(headers: list[Any], parts: list[bytes]) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for i, p in enumerate(parts):
            await send({"type": "http.response.body", "body": p,
                        "more_body": i < len(parts) - 1})
    return app


def _run(app: Any, settings: ProxySettings, ae: bytes = b"br",
         extensions: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def main() -> None:
        asgi = IngressASGI(parse_manifests(MANIFESTS), {"default/up": app}, settings=settings)

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(m: dict[str, Any]) -> None:
            sent.append(m)

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "GET", "scheme": "http", "path": "/a", "raw_path": b"/a",
                 "query_string": b"", "root_path": "", "extensions": extensions or {},
                 "headers": [(b"host", b"plain.test"), (b"accept-encoding", ae)],
                 "client": ("127.0.0.1", 5555), "server": ("127.0.0.1", 80)}
        await asgi(scope, receive, send)

    try:
        asyncio.run(main())
    except RuntimeError as e:
        sent.append({"error": str(e)})
    return sent


@pytest.mark.parametrize("parts", [[BODY[:300], BODY[300:600]], [BODY, b"extra"]])
def test_asgi_broken_content_length_names_the_filter(parts: list[bytes]) -> None:
    # The error names the setting whose filter dropped the length: enable-brotli for a br
    # body (it said "use-gzip" with use-gzip off), use-gzip for a gzip one.
    app = _app([(b"content-type", b"text/html"), (b"content-length", b"680")], parts)
    sent = _run(app, BOTH)
    assert dict(sent[0]["headers"])[b"content-encoding"] == b"br"
    assert "declared Content-Length (680; enable-brotli)" in sent[-1]["error"]
    d = brotli.Decompressor()
    d.process(b"".join(m.get("body", b"") for m in sent[1:-1]))
    assert not d.is_finished()
    sent = _run(app, BOTH, b"gzip")
    assert dict(sent[0]["headers"])[b"content-encoding"] == b"gzip"
    assert "declared Content-Length (680; use-gzip)" in sent[-1]["error"]


def test_asgi_str_names_own_encoding_trailers_and_pathsend(tmp_path: Any) -> None:
    sent = _run(_app([("content-type", "text/html")], [BODY]), BR)
    assert dict(sent[0]["headers"])[b"content-encoding"] == b"br"
    assert _unbr(b"".join(m.get("body", b"") for m in sent[1:])) == BODY
    # the app's own Content-Encoding: passed as it is, no Vary
    sent = _run(_app([(b"content-type", b"text/html"), (b"content-encoding", b"gzip")],
                     [b"zz"]), BOTH)
    assert dict(sent[0]["headers"])[b"content-encoding"] == b"gzip"
    assert b"vary" not in dict(sent[0]["headers"]) and sent[1]["body"] == b"zz"

    async def trailing(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "trailers": True,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": BODY, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        await send({"type": "http.response.trailers", "headers": [(b"x-sum", b"1")],
                    "more_trailers": False})

    sent = _run(trailing, BR)
    assert sent[-1]["type"] == "http.response.trailers"
    assert _unbr(b"".join(m.get("body", b"") for m in sent[1:-1])) == BODY
    f = tmp_path / "page.html"
    f.write_bytes(BODY * 200)

    async def pathsend(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/html"),
                                (b"content-length", b"%d" % (len(BODY) * 200))]})
        await send({"type": "http.response.pathsend", "path": str(f)})

    sent = _run(pathsend, BR, extensions={"http.response.pathsend": {}})
    start = dict(sent[0]["headers"])
    assert start[b"content-encoding"] == b"br" and b"content-length" not in start
    assert all(m["type"] == "http.response.body" for m in sent[1:])
    assert _unbr(b"".join(m["body"] for m in sent[1:])) == BODY * 200


# ---------------------------------------------------------------- a brotli that does not work
def _brotlipy() -> types.ModuleType:
    """brotlipy's shape: also ``import brotli``, a Compressor with ``compress``, no
    ``process``."""
    mod = types.ModuleType("brotli")

    class Compressor:
        def __init__(self, mode: int = 0, quality: int = 11, lgwin: int = 22,
                     lgblock: int = 0) -> None:
            pass

        def compress(self, data: bytes) -> bytes:
            return data

        def flush(self) -> bytes:
            return b""

        def finish(self) -> bytes:
            return b""

    mod.Compressor = Compressor  # type: ignore[attr-defined]
    return mod


@pytest.fixture(params=["no Compressor", "brotlipy", "fails to load"])
def broken_brotli(request: pytest.FixtureRequest,
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "fails to load":
        import importlib

        real = importlib.import_module

        def import_module(name: str, package: str | None = None) -> Any:
            if name == "brotli":  # (a build whose extension does not load)
                raise OSError("_brotli.so: undefined symbol: BrotliEncoderCompressStream")
            return real(name, package)

        monkeypatch.setattr(importlib, "import_module", import_module)
    else:
        mod = types.ModuleType("brotli") if request.param == "no Compressor" else _brotlipy()
        monkeypatch.setitem(sys.modules, "brotli", mod)
    _brotli.brotli_module.cache_clear()
    try:
        yield request.param
    finally:
        _brotli.brotli_module.cache_clear()


def test_broken_brotli_module_warns_once_and_no_request_fails(broken_brotli: str) -> None:
    cfg = parse_config_data({"enable-brotli": "true", "use-gzip": "true"})
    # every response answered, gzip where the client takes it, nothing brotli
    proxy = Proxy(Router(parse_manifests(MANIFESTS)), settings=cfg.settings, records=False)
    for ae, coding in ((b"gzip, br", b"gzip"), (b"br", None)):
        conn, cid = _start(proxy, REQ.replace(b"gzip, br", ae))
        events = _client_events(_sent(conn.upstream_data(cid, _up(), 0.0)))
        headers = _headers(events)
        assert headers.get(b"content-encoding") == coding
        body = _body(events)
        assert (zlib.decompress(body, 31) if coding else body) == BODY
    sent = _run(_app([(b"content-type", b"text/html")], [BODY]), cfg.settings)
    assert b"content-encoding" not in dict(sent[0]["headers"])
    assert b"".join(m.get("body", b"") for m in sent[1:]) == BODY
    # (it was an AttributeError on each eligible response, and no warning)
    warned = [w for w in cfg.warnings if "enable-brotli" in w]
    assert len(warned) == 1 and "not google/brotli's Python binding" in warned[0], warned
    assert {"no Compressor": "Compressor", "brotlipy": "process",
            "fails to load": "OSError"}[broken_brotli] in warned[0]


# ---------------------------------------------------------------- add-headers, limit-rate
@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("ae", [b"br", b"gzip", b"identity"])
@pytest.mark.parametrize("both", [False, True])
def test_add_headers_vary_then_the_filters_vary_in_core_and_asgi(method: str, ae: bytes,
                                                                 both: bool) -> None:
    # more_set_headers "Vary: Origin" runs before both filters (session 28's X1 bug class):
    # the client gets it and the filters' Vary: Accept-Encoding, once.
    from test_crossfeature_review_s28 import (GET_GZ, _app as x_app, _asgi as x_asgi,
                                              _asgi_headers, _config_map, _core as x_core,
                                              _docs, _head_lines)

    docs = _docs(extra=_config_map({"Vary": "Origin"}))
    s = ProxySettings(add_headers="ingress/global", enable_brotli=True, use_gzip=both)
    request = GET_GZ.replace(b"gzip", ae).replace(b"GET", method.encode())
    core = _head_lines(x_core(docs, s, request))
    asgi = _asgi_headers(x_asgi(docs, s, x_app(body=b"" if method == "HEAD" else BODY),
                                [(b"accept-encoding", ae)], method))
    coding = b"br" if ae == b"br" else b"gzip" if ae == b"gzip" and both else None
    for got in (core, asgi):
        assert [v for n, v in got if n == b"vary"] == [b"Origin", b"Accept-Encoding"], got
        assert [v for n, v in got if n == b"content-encoding"] == (
            [coding] if coding else []), got


def test_limit_rate_lets_out_the_br_bytes() -> None:
    import os

    from test_limitrate_s26 import Conn, P, _proxy as _rate_proxy

    body = os.urandom(3000).hex().encode()  # 6000 bytes, compressing to about half
    c = Conn(_rate_proxy({P + "limit-rate": "1"}, BR))
    acts = c.take(c.conn.receive_data(b"GET / HTTP/1.1\r\nHost: a.test\r\nAccept-Encoding: "
                                      b"br\r\n\r\n", c.now))
    cid = next(a.conn_id for a in acts if type(a) is OpenUpstream)
    c.take(c.conn.upstream_connected(cid, c.now))
    c.upstream(cid, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n"
               % len(body) + body)
    c.run_timers()
    out = c.sent()
    events = _client_events(out)
    assert _headers(events)[b"content-encoding"] == b"br"
    assert _unbr(_body(events)) == body
    assert len(c.sends()) == -(-len(out) // 1024) < 5  # the br bytes rated, not the 6000
    assert len(c.done_at()) == 1


# ---------------------------------------------------------------- end to end: HTTP/1.0
def test_server_http10_client_gets_a_close_delimited_br_body_and_the_close() -> None:
    # The socket is really closed after the br body's last block (the client reads to EOF
    # within the deadline), and the pipelined second request is never answered.
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
        server = ProxyServer(Router(parse_manifests(manifests)), settings=BR)
        await server.start(("127.0.0.1", 0))
        try:
            r, w = await asyncio.open_connection("127.0.0.1", server.addresses[0][2])
            req = REQ.replace(b"HTTP/1.1", b"HTTP/1.0").replace(
                b"User-Agent: t\r\n", b"Connection: keep-alive\r\n")
            w.write(req + req.replace(b"/a", b"/b"))
            await w.drain()
            data = await asyncio.wait_for(r.read(), 2)
            w.close()
            return data
        finally:
            await server.shutdown(1)
            up.close()

    data = asyncio.run(main())
    head, _, body = data.partition(b"\r\n\r\n")
    assert b"Content-Encoding: br" in head and b"Connection: close" in head, head
    assert b"Content-Length" not in head and b"Transfer-Encoding" not in head
    assert _unbr(body) == BODY  # (one answer: a second would not decode as its tail)


def test_reload_keeps_the_connections_brotli_setting() -> None:
    # Connection._compress is read from the Proxy's settings when the connection opens, as
    # its settings are: an open connection keeps what it opened with (nginx's old worker),
    # a new one gets the reloaded settings -- either way round.
    for first, second in ((ProxySettings(), BR), (BR, ProxySettings())):
        proxy = Proxy(Router(parse_manifests(MANIFESTS)), settings=first, records=False)
        conn, cid = _start(proxy, REQ)
        proxy.settings = second
        out = _sent(conn.upstream_data(cid, _up(), 0.0))
        assert (b"Content-Encoding: br" in out) is first.enable_brotli
        conn2, cid2 = _start(proxy, REQ)
        out = _sent(conn2.upstream_data(cid2, _up(), 0.0))
        assert (b"Content-Encoding: br" in out) is second.enable_brotli


@pytest.mark.parametrize("refuse", [False, True])
def test_asgi_websocket_untouched_and_its_refusal_br(refuse: bool) -> None:
    # An accepted WebSocket's messages pass as they are; a refusal
    # (websocket.http.response) is an answer like any other: br for a br client.
    page = b"<html>no websocket for you</html>" * 12

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        if refuse:
            await send({"type": "websocket.http.response.start", "status": 403,
                        "headers": [(b"content-type", b"text/html")]})
            await send({"type": "websocket.http.response.body", "body": page})
            return
        await send({"type": "websocket.accept", "headers": [(b"content-type", b"text/html")]})
        await send({"type": "websocket.send", "bytes": page})
        await send({"type": "websocket.send", "text": "hi"})
        await send({"type": "websocket.close", "code": 1000})

    asgi_app = IngressASGI(parse_manifests(MANIFESTS), {"default/up": app}, settings=BOTH)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(m: dict[str, Any]) -> None:
        sent.append(m)

    scope = {"type": "websocket", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "scheme": "ws", "path": "/a", "raw_path": b"/a", "query_string": b"",
             "root_path": "", "headers": [(b"host", b"plain.test"),
                                          (b"accept-encoding", b"gzip, br")],
             "client": ("127.0.0.1", 5555), "server": ("127.0.0.1", 80), "subprotocols": [],
             "extensions": {"websocket.http.response": {}}}
    asyncio.run(asgi_app(scope, receive, send))
    if refuse:
        assert sent[0]["status"] == 403
        assert dict(sent[0]["headers"])[b"content-encoding"] == b"br"
        assert _unbr(b"".join(m.get("body", b"") for m in sent[1:])) == page
    else:
        assert [m["type"] for m in sent] == ["websocket.accept", "websocket.send",
                                             "websocket.send", "websocket.close"]
        assert b"content-encoding" not in dict(sent[0].get("headers") or [])
        assert sent[1]["bytes"] == page and sent[2]["text"] == "hi"
