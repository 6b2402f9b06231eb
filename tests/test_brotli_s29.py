"""enable-brotli (session 29): ingress-nginx's ConfigMap brotli keys, google/ngx_brotli's filter
applied by the proxy core and by IngressASGI (proxy/_brotli.py, proxy/_gzip.py start_gzip),
before the gzip filter."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import subprocess
import sys
import zlib
from collections.abc import Iterator
from typing import Any

import brotli
import pytest
from hypothesis import given, settings as hsettings, strategies as st

from _asgi_call import asgi_exchange
from _budget import examples
from test_perf_guards_s25 import MANIFESTS, core_request, python_calls

from ingresslib._asgi import IngressASGI
from ingresslib._errors import ValidationError
from ingresslib._load import parse_manifests
from ingresslib._router import Router
from ingresslib.proxy import ProxySettings, parse_config_data
from ingresslib.proxy import _brotli
from ingresslib.proxy._actions import OpenUpstream
from ingresslib.proxy._brotli import BrotliEncoder, accepts_br
from ingresslib.proxy._connection import Proxy
from ingresslib.proxy._gzip import BROTLI_TYPES, DEFAULT_TYPES, start_gzip

BR = ProxySettings(enable_brotli=True)
BOTH = ProxySettings(enable_brotli=True, use_gzip=True)
BODY = b"hello brotli world " * 40  # 760 bytes, past both defaults


def _h(**kw: bytes) -> list[tuple[bytes, bytes, bytes]]:
    return [(k.replace("_", "-").title().encode(), k.replace("_", "-").encode(), v)
            for k, v in kw.items()]


def _decide(ae: bytes | None, status: int = 200, head: bool = False, http_11: bool = True,
            settings: ProxySettings = BR, **resp: bytes
            ) -> tuple[dict[bytes, bytes], Any]:
    req = [(b"accept-encoding", ae)] if ae is not None else []
    resp.setdefault("content_type", b"text/html")
    out, enc = start_gzip(req, http_11, status, head, _h(**resp), settings)
    return {h[1]: h[2] for h in out}, enc


def _coding(ae: bytes | None, **kw: Any) -> bytes | None:
    return _decide(ae, **kw)[0].get(b"content-encoding")


# ---------------------------------------------------------------- the decision table
@pytest.mark.parametrize("status,expect", [(200, True), (403, True), (404, True),
                                           (201, False), (206, False), (302, False),
                                           (204, False), (304, False), (500, False)])
def test_statuses(status: int, expect: bool) -> None:
    assert (_coding(b"br", status=status) == b"br") is expect


@pytest.mark.parametrize("ct,expect", [
    (b"text/html", True), (b"text/plain; charset=utf-8", True), (b"application/json", True),
    (b"application/xml+rss", True),  # only in brotliTypes, not gzipTypes
    (b"image/png", False), (b"application/json; version=2", False)])
def test_types(ct: bytes, expect: bool) -> None:
    assert (_coding(b"br", content_type=ct) == b"br") is expect
    star = dataclasses.replace(BR, brotli_types="*")
    assert _coding(b"br", content_type=b"image/png", settings=star) == b"br"


def test_defaults_are_config_go() -> None:
    s = ProxySettings()
    assert (s.enable_brotli, s.brotli_level, s.brotli_min_length) == (False, 4, 20)
    assert s.brotli_types == BROTLI_TYPES
    assert BROTLI_TYPES.split() == ["application/xml+rss"] + DEFAULT_TYPES.split()


def test_min_length_and_content_encoding() -> None:
    assert _coding(b"br", content_length=b"19") is None
    assert _coding(b"br", content_length=b"20") == b"br"
    assert _coding(b"br") == b"br"  # an unknown length compresses
    assert _coding(b"br", content_encoding=b"gzip") == b"gzip"  # passed as it is
    assert _coding(b"br", content_encoding=b"") == b"br"  # an empty one does not count


@pytest.mark.parametrize("ae,expect", [
    (b"br", True), (b"gzip, deflate, br", True), (b"br, gzip", True), (b"BR", True),
    (b"gzip,br", True), (b"br;q=1", True), (b"br;q=0.5", True), (b"br;q=0.001", True),
    (b"br;q=0", False), (b"br; q=0", False), (b"br ; q = 0.0", False), (b"br;q=0.000", False),
    (b"br;q=0.", False), (b"br;q=0.0001", False),
    (b"*", False), (b"gzip", False), (b"", False), (b"b", False), (b"abr", False),
    (b"br2", False), (b"x-br", False), (b"brotli", False),
    # ngx_brotli's own reading, kept: another parameter, a "Q" or a refused first "br" decide
    (b"br;level=0", True), (b"br;Q=0", True), (b"br;q=0, br", False), (b"abr, br", True)])
def test_accept_encoding_as_check_accept_encoding(ae: bytes, expect: bool) -> None:
    assert accepts_br([(b"accept-encoding", ae)]) is expect
    assert (_coding(ae) == b"br") is expect


def test_first_accept_encoding_line_and_none() -> None:
    assert not accepts_br([])
    assert not accepts_br([(b"Accept-Encoding", b"gzip"), (b"accept-encoding", b"br")])
    assert accepts_br([(b"Accept-Encoding", b"br"), (b"accept-encoding", b"gzip")])


def test_http_10_compressed_head_gets_get_headers() -> None:
    # ngx_http_brotli_check_request tests no HTTP version (gzip_http_version is gzip's)
    assert _coding(b"br", http_11=False) == b"br"
    headers, enc = _decide(b"br", head=True, content_length=b"900", etag=b'"v"')
    assert headers[b"content-encoding"] == b"br" and enc is None
    assert b"content-length" not in headers and headers[b"etag"] == b'W/"v"'


def test_headers_when_compressing_and_vary_once() -> None:
    headers, enc = _decide(b"br", content_length=b"900", accept_ranges=b"bytes",
                           etag=b'"abc"')
    assert isinstance(enc, BrotliEncoder)
    assert b"content-length" not in headers and b"accept-ranges" not in headers
    assert headers[b"etag"] == b'W/"abc"' and headers[b"vary"] == b"Accept-Encoding"
    out, _ = start_gzip([(b"accept-encoding", b"br")], True, 200, False,
                        _h(content_type=b"text/html", vary=b"Origin, Accept-Encoding"), BR)
    assert [h[2] for h in out if h[1] == b"vary"] == [b"Origin, Accept-Encoding"]
    # eligible, the client takes no br: Vary all the same, nothing else changed
    headers, enc = _decide(b"gzip", content_length=b"900", etag=b'"abc"')
    assert enc is None and headers[b"vary"] == b"Accept-Encoding"
    assert headers[b"content-length"] == b"900" and headers[b"etag"] == b'"abc"'


# ---------------------------------------------------------------- brotli and gzip together
@pytest.mark.parametrize("ae,expect", [
    (b"gzip, deflate, br", b"br"), (b"br, gzip", b"br"), (b"gzip", b"gzip"),
    (b"br", b"br"), (b"gzip, br;q=0", b"gzip"), (b"br, gzip;q=0", b"br"),
    (b"identity", None), (b"*", None)])
def test_both_on_brotli_filter_runs_first(ae: bytes, expect: bytes | None) -> None:
    headers, _ = _decide(ae, settings=BOTH)
    assert headers.get(b"content-encoding") == expect
    assert headers[b"vary"] == b"Accept-Encoding"


def test_both_on_gzip_takes_what_brotli_leaves() -> None:
    # brotli-types / brotli-min-length leave it out: the gzip filter decides on its own
    narrow = dataclasses.replace(BOTH, brotli_types="text/css")
    assert _coding(b"gzip, br", content_type=b"application/json", settings=narrow) == b"gzip"
    long = dataclasses.replace(BOTH, brotli_min_length=5000)
    assert _coding(b"gzip, br", content_length=b"900", settings=long) == b"gzip"
    # HTTP/1.0: gzip_http_version 1.1 refuses it, brotli does not
    assert _coding(b"gzip", http_11=False, settings=BOTH) is None
    assert _coding(b"gzip, br", http_11=False, settings=BOTH) == b"br"


# ---------------------------------------------------------------- the encoder
def test_encoder_flushes_each_feed_and_finishes_once() -> None:
    enc = BrotliEncoder(4)
    d = brotli.Decompressor()
    assert d.process(enc.feed(b"abc")) == b"abc"
    assert d.process(enc.feed(b"def")) == b"def"
    tail = enc.finish()
    assert enc.finish() == b"" and enc.feed(b"x") == b""
    assert d.process(tail) == b"" and d.is_finished()


@hsettings(max_examples=examples(0.3), deadline=None)
@given(body=st.binary(max_size=3000), level=st.integers(0, 11),
       length=st.one_of(st.none(), st.integers(1, 1 << 22)))
def test_encoder_round_trips_any_level_and_window(body: bytes, level: int,
                                                  length: int | None) -> None:
    enc = BrotliEncoder(level, length)
    assert brotli.decompress(enc.feed(body) + enc.finish()) == body


# ---------------------------------------------------------------- the core
REQ = (b"GET /a HTTP/1.1\r\nHost: plain.test\r\nAccept-Encoding: gzip, deflate, br\r\n"
       b"User-Agent: t\r\n\r\n")


@functools.lru_cache(maxsize=4)
def _proxy(settings: ProxySettings = BR) -> Proxy:
    return Proxy(Router(parse_manifests(MANIFESTS)), settings=settings, records=False)


def _start(proxy: Proxy, request: bytes = REQ) -> tuple[Any, int]:
    conn = proxy.connection(("127.0.0.1", 5555), now=0.0)
    conn.start(0.0)
    cid = [a.conn_id for a in conn.receive_data(request, 0.0) if type(a) is OpenUpstream][0]
    conn.upstream_connected(cid, 0.0, reused=True)
    return conn, cid


def _sent(actions: list[Any]) -> bytes:
    return b"".join(getattr(a, "data", b"") for a in actions)


def _core(response: bytes, request: bytes = REQ, settings: ProxySettings = BR,
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


def _dechunk(body: bytes) -> bytes:
    out = b""
    while True:
        line, _, rest = body.partition(b"\r\n")
        n = int(line, 16)
        if n == 0:
            return out
        out += rest[:n]
        body = rest[n + 2:]


def _up(body: bytes = BODY, ct: bytes = b"text/html", extra: bytes = b"") -> bytes:
    return (b"HTTP/1.1 200 OK\r\nContent-Type: " + ct + b"\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body)


def test_core_compresses() -> None:
    head, body = _split(_core(_up(extra=b'ETag: "v1"\r\nAccept-Ranges: bytes\r\n')))
    assert b"\r\nContent-Encoding: br" in head and b"Transfer-Encoding: chunked" in head
    assert head.count(b"Vary: Accept-Encoding") == 1 and b'ETag: W/"v1"' in head
    assert b"Content-Length" not in head and b"Accept-Ranges" not in head
    assert brotli.decompress(_dechunk(body)) == BODY


def test_core_both_on_prefers_br_and_falls_back_to_gzip() -> None:
    head, body = _split(_core(_up(), settings=BOTH))
    assert b"Content-Encoding: br" in head and head.count(b"Vary:") == 1
    assert brotli.decompress(_dechunk(body)) == BODY
    gz = REQ.replace(b"gzip, deflate, br", b"gzip")
    head, body = _split(_core(_up(), request=gz, settings=BOTH))
    assert b"Content-Encoding: gzip" in head
    assert zlib.decompress(_dechunk(body), 31) == BODY


def test_core_not_compressed_cases() -> None:
    plain = REQ.replace(b"Accept-Encoding: gzip, deflate, br\r\n", b"")
    head, body = _split(_core(_up(), request=plain))
    assert b"Vary: Accept-Encoding" in head and b"Content-Encoding" not in head
    assert body == BODY
    head, body = _split(_core(_up(b"x" * 19)))  # under brotli-min-length
    assert b"Vary" not in head and body == b"x" * 19
    head, body = _split(_core(_up(extra=b"Content-Encoding: gzip\r\n")))
    assert b"Content-Encoding: gzip" in head and b" br" not in head and body == BODY
    head, body = _split(_core(_up(ct=b"image/png")))
    assert b"Content-Encoding" not in head and body == BODY


def test_core_http_10_client_close_delimited() -> None:
    old = REQ.replace(b"HTTP/1.1", b"HTTP/1.0")
    head, body = _split(_core(_up(), request=old))
    assert b"Content-Encoding: br" in head and b"Connection: close" in head
    assert b"Transfer-Encoding" not in head and b"Content-Length" not in head
    assert brotli.decompress(body) == BODY


def test_core_head_request_gets_get_headers() -> None:
    conn, cid = _start(_proxy(), REQ.replace(b"GET ", b"HEAD "))
    raw = _sent(conn.upstream_data(
        cid, _up(b"").replace(b"Content-Length: 0", b"Content-Length: 760"), 0.0))
    assert b"Content-Encoding: br" in raw and b"Content-Length" not in raw
    assert raw.endswith(b"\r\n\r\n") and conn._gz is None


def test_core_streamed_chunks_each_decompressible() -> None:
    conn, cid = _start(_proxy())
    head = _sent(conn.upstream_data(cid, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                                         b"Transfer-Encoding: chunked\r\n\r\n", 0.0))
    assert b"Content-Encoding: br" in head
    d = brotli.Decompressor()
    got = sent = b""
    for i in range(5):
        event = b"data: event %d\n\n" % i
        sent += event
        out = _sent(conn.upstream_data(cid, b"%x\r\n%s\r\n" % (len(event), event), 0.0))
        got += d.process(_dechunk(out + b"0\r\n\r\n"))
        assert got == sent  # decodable after each upstream read (BROTLI_OPERATION_FLUSH)
    tail = _sent(conn.upstream_data(cid, b"0\r\n\r\n", 0.0))
    assert tail.endswith(b"0\r\n\r\n") and d.process(_dechunk(tail)) == b""
    assert d.is_finished() and conn._gz is None


def test_core_upstream_dies_mid_body_nothing_complete_stream_freed() -> None:
    conn, cid = _start(_proxy())
    raw = _up()
    out = _sent(conn.upstream_data(cid, raw[:-300], 0.0))
    assert conn._gz is not None
    out += _sent(conn.upstream_eof(cid, 0.0))
    head, body = _split(out)
    assert b"Content-Encoding: br" in head and not body.endswith(b"0\r\n\r\n")
    d = brotli.Decompressor()
    assert BODY.startswith(d.process(_dechunk(body + b"0\r\n\r\n")))
    assert not d.is_finished() and conn._gz is None


def test_core_abort_frees_the_stream() -> None:
    conn, cid = _start(_proxy())
    conn.upstream_data(cid, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                            b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n", 0.0)
    assert isinstance(conn._gz, BrotliEncoder)
    conn.abort(0.0)
    assert conn._gz is None


@hsettings(max_examples=examples(0.3), deadline=None)
@given(body=st.binary(min_size=20, max_size=3000), cuts=st.lists(
    st.integers(min_value=1, max_value=400), max_size=8), chunked=st.booleans(),
    http_10=st.booleans())
def test_core_random_chunkings_decompress_to_the_body(body: bytes, cuts: list[int],
                                                      chunked: bool, http_10: bool) -> None:
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
    request = REQ.replace(b"HTTP/1.1", b"HTTP/1.0") if http_10 else REQ
    head, out = _split(_core(raw, request=request, splits=cuts))
    assert b"Content-Encoding: br" in head
    assert brotli.decompress(out if http_10 else _dechunk(out)) == body


def _calls_into_brotli(proxy: Proxy) -> bool:
    core_request(proxy, 0.0)
    with python_calls() as seen:
        core_request(proxy, 1.0)
    assert seen
    return any(f == "_brotli.py" for f, _ in seen)


def test_core_plain_request_calls_no_brotli_code() -> None:
    assert not _calls_into_brotli(Proxy(Router(parse_manifests(MANIFESTS)), records=False))
    # and the guard sees it when on
    assert _calls_into_brotli(Proxy(Router(parse_manifests(MANIFESTS)), settings=BR,
                                    records=False))


def test_import_loads_no_brotli() -> None:
    code = ("import sys, ingresslib, ingresslib.proxy; from ingresslib.proxy import "
            "ProxySettings; ProxySettings(); assert 'brotli' not in sys.modules, 1; "
            "assert 'ingresslib.proxy._brotli' not in sys.modules, 2")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


# ---------------------------------------------------------------- the missing package
@pytest.fixture
def no_brotli(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setitem(sys.modules, "brotli", None)  # the import raises ImportError
    _brotli.brotli_module.cache_clear()
    try:
        yield
    finally:
        _brotli.brotli_module.cache_clear()


def test_missing_package_warns_and_gzip_still_works(no_brotli: None) -> None:
    cfg = parse_config_data({"enable-brotli": "true", "use-gzip": "true"})
    assert [w for w in cfg.warnings if "enable-brotli" in w] == [
        f"ConfigMap: data.enable-brotli: {_brotli.MISSING}"]
    import tomllib
    from pathlib import Path

    (req,) = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text(
        encoding="utf-8"))["project"]["optional-dependencies"]["brotli"]
    assert f"pip install '{req}'" in _brotli.MISSING  # pyproject.toml's bound
    assert "pip install '.[brotli]' from an ingresslib checkout" in _brotli.MISSING
    assert cfg.settings.enable_brotli
    headers, enc = _decide(b"gzip, br", settings=cfg.settings)
    assert headers[b"content-encoding"] == b"gzip" and enc is not None
    headers, enc = _decide(b"br", settings=BR)
    assert b"content-encoding" not in headers and b"vary" not in headers and enc is None
    head, body = _split(_core(_up(), settings=dataclasses.replace(BOTH, brotli_level=3)))
    assert b"Content-Encoding: gzip" in head
    assert zlib.decompress(_dechunk(body), 31) == BODY


# ---------------------------------------------------------------- the ConfigMap
def test_configmap_keys_parsed_and_not_warned() -> None:
    cfg = parse_config_data({"enable-brotli": "true", "brotli-level": "11",
                             "brotli-min-length": "0",
                             "brotli-types": "text/css   application/wasm"})
    s = cfg.settings
    assert (s.enable_brotli, s.brotli_level, s.brotli_min_length, s.brotli_types) == (
        True, 11, 0, "text/css application/wasm")
    assert cfg.warnings == ()
    assert parse_config_data({"enable-brotli": "true", "brotli-level": "0"}
                             ).settings.brotli_level == 0


@pytest.mark.parametrize("key,value", [
    ("brotli-level", "12"), ("brotli-level", "-1"), ("brotli-level", "x"),
    ("brotli-level", "4.5"), ("brotli-min-length", "1k"), ("brotli-min-length", "-1"),
    ("brotli-min-length", "010"), ("brotli-types", " "), ("brotli-types", "text/caf\u00e9"),
    ("enable-brotli", "yes please")])
def test_configmap_bad_values_refused(key: str, value: str) -> None:
    with pytest.raises(ValidationError, match=key):
        parse_config_data({"enable-brotli": "true", key: value})


def test_configmap_brotli_keys_without_enable_brotli_warn() -> None:
    assert parse_config_data({"brotli-level": "5"}).warnings == (
        "ConfigMap: data.brotli-level: has no effect without enable-brotli",)


def test_settings_validation() -> None:
    for bad in ({"brotli_level": 12}, {"brotli_level": -1}, {"brotli_min_length": -1},
                {"brotli_types": "caf\u0113/x"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            ProxySettings(**bad)  # type: ignore[arg-type]


# ---------------------------------------------------------------- IngressASGI
async def _app(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    if scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"), (b"etag", b'"e"')]})
        for i in range(3):
            await send({"type": "http.response.body", "body": b"data: %d\n\n" % i,
                        "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/html"), (b"etag", b'"v1"'),
                            (b"content-length", str(len(BODY)).encode())]})
    await send({"type": "http.response.body", "body": BODY})


def _asgi(path: str, headers: list[tuple[bytes, bytes]], settings: ProxySettings = BR,
          version: str = "1.1", method: str = "GET") -> list[dict[str, Any]]:
    app = IngressASGI(parse_manifests(MANIFESTS), {"default/up": _app}, settings=settings)
    return asgi_exchange(app, "plain.test", path, b"", headers=headers, method=method,
                         http_version=version, client=("127.0.0.1", 5555))


def test_asgi_compresses_http_11_and_10() -> None:
    for version in ("1.1", "1.0"):
        sent = _asgi("/a", [(b"accept-encoding", b"gzip, br")], BOTH, version=version)
        start = dict(sent[0]["headers"])
        assert start[b"content-encoding"] == b"br" and start[b"vary"] == b"Accept-Encoding"
        assert b"content-length" not in start and start[b"etag"] == b'W/"v1"'
        assert brotli.decompress(b"".join(m.get("body", b"") for m in sent[1:])) == BODY


def test_asgi_head_and_refused() -> None:
    start = dict(_asgi("/a", [(b"accept-encoding", b"br")], method="HEAD")[0]["headers"])
    assert start[b"content-encoding"] == b"br" and b"content-length" not in start
    for sent in (_asgi("/a", [(b"accept-encoding", b"br;q=0")]),
                 _asgi("/a", [(b"accept-encoding", b"br")], ProxySettings())):
        assert b"content-encoding" not in dict(sent[0]["headers"])
        assert b"".join(m.get("body", b"") for m in sent[1:]) == BODY


def test_asgi_stream_flushes_each_message() -> None:
    sent = _asgi("/stream", [(b"accept-encoding", b"br")])
    assert dict(sent[0]["headers"])[b"content-encoding"] == b"br"
    d = brotli.Decompressor()
    got = b""
    for i, m in enumerate(sent[1:4]):
        got += d.process(m["body"])
        assert got.endswith(b"data: %d\n\n" % i)
    d.process(sent[4]["body"])
    assert d.is_finished()


def _decoded(headers: dict[bytes, bytes], body: bytes) -> bytes:
    coding = headers.get(b"content-encoding")
    return (brotli.decompress(body) if coding == b"br" else
            zlib.decompress(body, 31) if coding == b"gzip" else body)


@pytest.mark.parametrize("ae", [b"gzip, deflate, br", b"gzip", b"br;q=0", b"identity",
                                b"br;q=0, gzip"])
@pytest.mark.parametrize("settings", [BR, BOTH])
def test_core_and_asgi_agree(ae: bytes, settings: ProxySettings) -> None:
    names = (b"content-encoding", b"vary", b"etag", b"content-length")
    request = REQ.replace(b"gzip, deflate, br", ae)
    head, body = _split(_core(_up(extra=b'ETag: "v1"\r\n'), request=request, settings=settings))
    core = {k.lower(): v for k, _, v in (line.partition(b": ")
                                         for line in head.split(b"\r\n")[1:])}
    core_body = _dechunk(body) if b"transfer-encoding" in core else body
    sent = _asgi("/a", [(b"accept-encoding", ae)], settings)
    asgi = dict(sent[0]["headers"])
    assert {n: core.get(n) for n in names} == {n: asgi.get(n) for n in names}
    asgi_body = b"".join(m.get("body", b"") for m in sent[1:])
    assert _decoded(core, core_body) == _decoded(asgi, asgi_body) == BODY


def test_asgi_plain_request_calls_no_brotli_code() -> None:
    from test_perf_guards_s25 import _app as plain_app, _asgi_call

    for settings, expect in ((ProxySettings(), False), (BR, True)):
        asgi = IngressASGI(parse_manifests(MANIFESTS), {"default/up": plain_app},
                           settings=settings)
        _asgi_call(asgi, [], [])
        with python_calls() as seen:
            _asgi_call(asgi, [], [])
        assert seen and any(f == "_brotli.py" for f, _ in seen) is expect


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
        server = ProxyServer(Router(parse_manifests(manifests)), settings=BOTH)
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
    assert b"Content-Encoding: br" in head, head
    assert brotli.decompress(_dechunk(body)) == BODY
