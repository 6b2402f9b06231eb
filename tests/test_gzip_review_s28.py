"""Review of use-gzip (session 28, R1): framing x client combinations through the proxy core
(every answer parsed by an h11 client, the next request on the connection answered), a
response cut mid-body, HEAD (nginx's gzip filter runs before ``r->header_only`` is set),
gzip-disable as PCRE reads it, and IngressASGI's app-side edge cases (proxy/_gzip.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import zlib
from typing import Any

import h11
import pytest

from _asgi_call import asgi_exchange
from test_gzip_s28 import BODY, ON, REQ, _proxy, _sent, _start, _up
from test_perf_guards_s25 import MANIFESTS

from ingresslib._asgi import IngressASGI
from ingresslib._load import parse_manifests
from ingresslib._router import Router
from ingresslib.proxy import ProxySettings, parse_config_data
from ingresslib.proxy._actions import OpenUpstream
from ingresslib.proxy._gzip import accepts_gzip

GZ = [(b"accept-encoding", b"gzip")]


def _client_events(data: bytes, method: bytes = b"GET", requests: int = 1) -> list[Any]:
    """What an h11 client makes of the bytes the proxy sent (``requests`` answers)."""
    c = h11.Connection(h11.CLIENT)
    events: list[Any] = []
    for i in range(requests):
        if i:
            c.start_next_cycle()
        # (h11 only sends HTTP/1.1: the answer's framing is read from its own head alike)
        c.send(h11.Request(method=method, target="/a", headers=[("Host", "plain.test")]))
        c.send(h11.EndOfMessage())
        if i == 0:
            c.receive_data(data)
        while True:
            ev = c.next_event()
            if ev is h11.NEED_DATA:
                c.receive_data(b"")  # the connection ends here
                continue
            events.append(ev)
            if type(ev) in (h11.EndOfMessage, h11.ConnectionClosed):
                break
    return events


def _body(events: list[Any]) -> bytes:
    return b"".join(bytes(e.data) for e in events if type(e) is h11.Data)


def _headers(events: list[Any]) -> dict[bytes, bytes]:
    resp = next(e for e in events if type(e) is h11.Response)
    return {bytes(k): bytes(v) for k, v in resp.headers}


# ---------------------------------------------------------------- framing x client
H = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
UPSTREAMS = {
    "length": (_up(), False),
    "chunked": (H + b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n%s\r\n0\r\n\r\n"
                % (len(BODY), BODY), False),
    "close": (H + b"\r\n" + BODY, True),
    "http10": (b"HTTP/1.0 200 OK\r\nContent-Type: text/html\r\n\r\n" + BODY, True),
    "empty-chunked": (H + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", False),
    "1xx": (b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n" + _up(), False),
    "204": (b"HTTP/1.1 204 No Content\r\nContent-Type: text/html\r\n\r\n", False),
    "304": (b"HTTP/1.1 304 Not Modified\r\nContent-Type: text/html\r\nETag: \"x\"\r\n\r\n",
            False),
    "206": (b"HTTP/1.1 206 Partial Content\r\nContent-Type: text/html\r\nContent-Range: "
            b"bytes 0-679/2000\r\nContent-Length: 680\r\n\r\n" + BODY, False),
}


def _expected(kind: str) -> bytes:
    return b"" if kind in ("empty-chunked", "204", "304") else BODY


@pytest.mark.parametrize("kind", sorted(UPSTREAMS))
@pytest.mark.parametrize("client", ["keep-alive", "close", "http10", "head"])
def test_framing_matrix_parses_and_next_request_answered(kind: str, client: str) -> None:
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
        if b"103 Early" in raw:  # (the 1xx head and the final one)
            raw = UPSTREAMS["1xx"][0].rsplit(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"
        close_delimited = False
    conn, cid = _start(_proxy(), req)
    acts = conn.upstream_data(cid, raw, 0.0)
    if close_delimited:
        acts += conn.upstream_eof(cid, 0.0)
    out = _sent(acts)
    events = _client_events(out, b"HEAD" if head else b"GET")
    headers = _headers(events)
    body = _body(events)
    compressed = headers.get(b"content-encoding") == b"gzip"
    if compressed and not head:
        assert zlib.decompress(body, 31) == _expected(kind)
    else:
        assert body == (b"" if head else _expected(kind))
    # compressed exactly when nginx would: 200 (no 204/304/206), HTTP/1.1, gzip accepted
    assert compressed is (kind not in ("204", "304", "206") and client != "http10"), headers
    if compressed:
        assert b"content-length" not in headers and headers[b"vary"] == b"Accept-Encoding"
    # the next request on the same connection is answered, with its own body
    if client in ("keep-alive", "head") and kind != "close" and kind != "http10":
        assert conn._gz is None
        more = conn.receive_data(REQ.replace(b"/a", b"/b"), 1.0)
        ids = [a.conn_id for a in more if type(a) is OpenUpstream]
        if ids:
            cid = ids[0]
            conn.upstream_connected(cid, 1.0, reused=True)
        second = _sent(conn.upstream_data(cid, _up(b"second " * 50), 1.0))
        c = h11.Connection(h11.CLIENT)
        c.send(h11.Request(method="GET", target="/b", headers=[("Host", "plain.test")]))
        c.send(h11.EndOfMessage())
        c.receive_data(second)
        evs = []
        while True:
            ev = c.next_event()
            evs.append(ev)
            if type(ev) is h11.EndOfMessage or ev is h11.NEED_DATA:
                break
        assert type(evs[-1]) is h11.EndOfMessage
        assert zlib.decompress(_body(evs), 31) == b"second " * 50


def test_pipelined_requests_each_answer_complete() -> None:
    conn = _proxy().connection(("127.0.0.1", 5555), now=0.0)
    conn.start(0.0)
    acts = conn.receive_data(REQ + REQ.replace(b"/a", b"/b"), 0.0)
    cid = [a.conn_id for a in acts if type(a) is OpenUpstream][0]
    conn.upstream_connected(cid, 0.0, reused=True)
    acts = conn.upstream_data(cid, _up(), 0.0)
    out = _sent(acts)
    ids = [a.conn_id for a in acts if type(a) is OpenUpstream]
    if ids:
        cid = ids[0]
        conn.upstream_connected(cid, 0.0, reused=True)
    out += _sent(conn.upstream_data(cid, _up(b"second " * 50, ct=b"text/plain"), 0.0))
    events = _client_events(out, requests=2)
    ends = [i for i, e in enumerate(events) if type(e) is h11.EndOfMessage]
    assert len(ends) == 2
    assert zlib.decompress(_body(events[:ends[0]]), 31) == BODY
    assert zlib.decompress(_body(events[ends[0]:]), 31) == b"second " * 50


@pytest.mark.parametrize("chunked", [False, True])
def test_upstream_dying_mid_body_leaves_a_truncated_message(chunked: bool) -> None:
    # The gzip trailer and the last chunk are never sent as if the body were complete.
    conn, cid = _start(_proxy())
    if chunked:
        raw = H + b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n" % (300, BODY[:300])
    else:
        raw = _up()[:-200]
    acts = conn.upstream_data(cid, raw, 0.0) + conn.upstream_eof(cid, 0.0)
    out = _sent(acts)
    assert b"Content-Encoding: gzip" in out and not out.endswith(b"0\r\n\r\n")
    c = h11.Connection(h11.CLIENT)
    c.send(h11.Request(method="GET", target="/a", headers=[("Host", "plain.test")]))
    c.send(h11.EndOfMessage())
    c.receive_data(out)
    c.receive_data(b"")
    data = b""
    with pytest.raises(h11.RemoteProtocolError):  # "peer closed connection without ..."
        while True:
            ev = c.next_event()
            if type(ev) is h11.Data:
                data += ev.data
    d = zlib.decompressobj(31)
    got = d.decompress(data)
    assert not d.eof and BODY.startswith(got) and len(got) == (300 if chunked else 480)
    assert conn._gz is None


def test_many_small_chunks_output_stays_linear() -> None:
    # One sync flush per upstream chunk (nginx: ngx_http_proxy_non_buffered_chunked_filter
    # marks each chunk's buffer "flush", the gzip filter Z_SYNC_FLUSHes each): the output is
    # bounded by a small multiple of what the upstream sent on the wire.
    n = 3000
    wire = (H + b"Transfer-Encoding: chunked\r\n\r\n"
            + b"".join(b"1\r\n%c\r\n" % (65 + i % 26) for i in range(n)) + b"0\r\n\r\n")
    conn, cid = _start(_proxy())
    out = _sent(conn.upstream_data(cid, wire, 0.0))
    body = _body(_client_events(out))
    assert len(zlib.decompress(body, 31)) == n
    assert len(out) < 3 * len(wire)


# ---------------------------------------------------------------- HEAD (nginx: as its GET)
def test_core_head_gets_the_headers_of_its_get() -> None:
    # nginx's gzip header filter runs before ngx_http_header_filter sets r->header_only for
    # HEAD: Content-Encoding: gzip, Vary, no Content-Length, no body, no chunked framing.
    conn, cid = _start(_proxy(), REQ.replace(b"GET ", b"HEAD "))
    out = _sent(conn.upstream_data(cid, _up(b"").replace(b"Content-Length: 0",
                                                         b"Content-Length: 680")
                                   + b'', 0.0))
    head, _, rest = out.partition(b"\r\n\r\n")
    assert rest == b""
    assert b"\r\nContent-Encoding: gzip" in head and b"\r\nVary: Accept-Encoding" in head
    assert b"Content-Length" not in head and b"Transfer-Encoding" not in head
    assert conn._gz is None
    # the connection stays usable: the next GET answered, compressed
    more = conn.receive_data(REQ, 1.0)
    ids = [a.conn_id for a in more if type(a) is OpenUpstream]
    if ids:
        cid = ids[0]
        conn.upstream_connected(cid, 1.0, reused=True)
    second = _sent(conn.upstream_data(cid, _up(), 1.0))
    assert zlib.decompress(_body(_client_events(second)), 31) == BODY


def test_core_head_without_gzip_client_keeps_length() -> None:
    plain = REQ.replace(b"GET ", b"HEAD ").replace(b"Accept-Encoding: gzip, deflate\r\n", b"")
    conn, cid = _start(_proxy(), plain)
    out = _sent(conn.upstream_data(cid, _up(b"").replace(b"Content-Length: 0",
                                                         b"Content-Length: 680"), 0.0))
    assert b"Content-Length: 680" in out and b"Content-Encoding" not in out
    assert b"Vary: Accept-Encoding" in out  # gzip_vary: the answer depends on the header


# ---------------------------------------------------------------- gzip-disable: PCRE
def _ua(ua: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"accept-encoding", b"gzip"), (b"user-agent", ua)]


def test_gzip_disable_posix_class_as_pcre() -> None:
    # PCRE reads [[:digit:]] as a digit class; Python's re as the set "[:dgit" then "]".
    s = dataclasses.replace(ON, gzip_disable="curl/[[:digit:]]")
    assert not accepts_gzip(_ua(b"curl/8.1"), True, s)
    assert accepts_gzip(_ua(b"curl/x"), True, s)


def test_gzip_disable_backtracking_is_bounded() -> None:
    # A User-Agent crafted against a backtracking regex: PCRE stops at its match limit and
    # ngx_regex_exec_array's error makes ngx_http_gzip_ok refuse; here the match timeout does
    # the same, and the request is answered (uncompressed) instead of holding the loop.
    s = dataclasses.replace(ON, gzip_disable="(a|a)+$")
    assert not accepts_gzip(_ua(b"a" * 64 + b"!"), True, s)
    assert accepts_gzip(_ua(b"curl/8"), True, s)


def test_gzip_disable_escapes_pcre_refuses() -> None:
    from ingresslib._errors import ValidationError

    for bad in ("MSIE\\u0036", "\\N{LATIN SMALL LETTER A}", "\\Lx"):
        with pytest.raises(ValidationError, match="gzip-disable"):
            parse_config_data({"use-gzip": "true", "gzip-disable": bad})
    # an escaped backslash before "u" is a backslash and a "u"
    s = parse_config_data({"use-gzip": "true", "gzip-disable": "a\\\\u"}).settings
    assert not accepts_gzip(_ua(b"xa\\u"), True, s) and accepts_gzip(_ua(b"au"), True, s)


# ---------------------------------------------------------------- IngressASGI
def _asgi(app: Any, headers: list[tuple[bytes, bytes]] = GZ, method: str = "GET",
          settings: ProxySettings = ON) -> list[dict[str, Any]]:
    asgi = IngressASGI(parse_manifests(MANIFESTS), {"default/up": app}, settings=settings)
    return asgi_exchange(asgi, "plain.test", "/a", b"", headers=headers, method=method,
                         client=("127.0.0.1", 5555))


def _app(headers: list[Any], parts: list[bytes]) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for i, p in enumerate(parts):
            await send({"type": "http.response.body", "body": p,
                        "more_body": i < len(parts) - 1})
    return app


def test_asgi_str_header_names_do_not_break() -> None:
    # uvicorn's h11 writes str names and values; the app works without use-gzip too.
    sent = _asgi(_app([("content-type", "text/html")], [BODY]))
    start = dict(sent[0]["headers"])
    assert start[b"content-encoding"] == b"gzip"
    assert zlib.decompress(b"".join(m.get("body", b"") for m in sent[1:]), 31) == BODY


@pytest.mark.parametrize("parts", [[BODY[:300], BODY[300:600]], [BODY, b"extra"]])
def test_asgi_broken_content_length_is_not_completed(parts: list[bytes]) -> None:
    # Without gzip the server's HTTP/1.1 writer refuses a body that breaks the declared
    # Content-Length (the client sees a cut message); compressed, the length is gone from
    # the head, so the filter refuses it itself: no gzip trailer, the app sees the error.
    app = _app([(b"content-type", b"text/html"), (b"content-length", b"680")], parts)
    sent: list[dict[str, Any]] = []

    async def main() -> None:
        asgi = IngressASGI(parse_manifests(MANIFESTS), {"default/up": app}, settings=ON)

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(m: dict[str, Any]) -> None:
            sent.append(m)

        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                 "method": "GET", "scheme": "http", "path": "/a", "raw_path": b"/a",
                 "query_string": b"", "root_path": "",
                 "headers": [(b"host", b"plain.test")] + GZ,
                 "client": ("127.0.0.1", 5555), "server": ("127.0.0.1", 80)}
        await asgi(scope, receive, send)

    with pytest.raises(RuntimeError, match="declared Content-Length"):
        asyncio.run(main())
    d = zlib.decompressobj(31)
    d.decompress(b"".join(m.get("body", b"") for m in sent[1:]))
    assert not d.eof
    assert not [m for m in sent[1:] if not m.get("more_body", False)]


def test_asgi_exact_content_length_still_compressed() -> None:
    app = _app([(b"content-type", b"text/html"), (b"content-length", b"680")],
               [BODY[:100], BODY[100:]])
    sent = _asgi(app)
    assert zlib.decompress(b"".join(m.get("body", b"") for m in sent[1:]), 31) == BODY


def test_asgi_head_matches_core_head() -> None:
    app = _app([(b"content-type", b"text/html"), (b"content-length", b"680"),
                (b"etag", b'"v"')], [b""])
    start = dict(_asgi(app, method="HEAD")[0]["headers"])
    assert start[b"content-encoding"] == b"gzip" and start[b"vary"] == b"Accept-Encoding"
    assert b"content-length" not in start and start[b"etag"] == b'W/"v"'
    conn, cid = _start(_proxy(), REQ.replace(b"GET ", b"HEAD "))
    out = _sent(conn.upstream_data(cid, _up(b"", extra=b'ETag: "v"\r\n').replace(
        b"Content-Length: 0", b"Content-Length: 680"), 0.0))
    core = _headers(_client_events(out, b"HEAD"))
    for name in (b"content-encoding", b"vary", b"etag"):
        assert core[name] == start[name]
    assert b"content-length" not in core


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("ae", [b"gzip", b"br", b"gzip;q=0"])
def test_core_and_asgi_agree_on_headers(method: str, ae: bytes) -> None:
    extra = [(b"etag", b'"v"'), (b"accept-ranges", b"bytes")]
    app = _app([(b"content-type", b"text/html"), (b"content-length", b"680")] + extra,
               [b"" if method == "HEAD" else BODY])
    sent = _asgi(app, [(b"accept-encoding", ae)], method)
    asgi = {k.lower(): v for k, v in sent[0]["headers"]}
    req = REQ.replace(b"gzip, deflate", ae)
    if method == "HEAD":
        req = req.replace(b"GET ", b"HEAD ")
    conn, cid = _start(_proxy(), req)
    raw = _up(b"" if method == "HEAD" else BODY, extra=b'ETag: "v"\r\nAccept-Ranges: bytes\r\n')
    if method == "HEAD":
        raw = raw.replace(b"Content-Length: 0", b"Content-Length: 680")
    core = _headers(_client_events(_sent(conn.upstream_data(cid, raw, 0.0)), method.encode()))
    for name in (b"content-encoding", b"vary", b"etag", b"accept-ranges", b"content-length"):
        assert core.get(name) == asgi.get(name), name


def test_hide_headers_never_hides_the_filters_own_headers() -> None:
    # proxy_hide_header drops the upstream's (the app's) headers; nginx's gzip filter adds
    # Content-Encoding (and the header filter Vary) after that: hide-headers naming them
    # must not leave a compressed body without its Content-Encoding.
    s = dataclasses.replace(ON, hide_headers=("Content-Encoding", "Vary"))
    app = _app([(b"content-type", b"text/html"), (b"vary", b"Origin")], [BODY])
    sent = _asgi(app, settings=s)
    start = {k.lower(): v for k, v in sent[0]["headers"]}
    assert start[b"content-encoding"] == b"gzip" and start[b"vary"] == b"Accept-Encoding"
    assert zlib.decompress(b"".join(m.get("body", b"") for m in sent[1:]), 31) == BODY
    conn, cid = _start(_proxy(s))
    core = _headers(_client_events(_sent(conn.upstream_data(
        cid, _up(extra=b"Vary: Origin\r\n"), 0.0))))
    assert core[b"content-encoding"] == b"gzip" and core[b"vary"] == b"Accept-Encoding"


PAGE = b"<html>error page</html>" * 30


def test_custom_http_errors_page_compressed_by_core_and_asgi() -> None:
    # The error page's named location is proxied like any location: nginx's gzip filter
    # (http-wide) compresses its 404 as it would the upstream's.
    from _proxy_harness import ProxyPair, Reply
    from test_custom_errors_s25 import ERR, _docs

    def upstreams(request: Any, data: bytes, up: Any) -> Any:
        if up.endpoint == ERR:
            return Reply(b"HTTP/1.1 404 NF\r\nContent-Type: text/html\r\nContent-Length: %d"
                         b"\r\n\r\n%s" % (len(PAGE), PAGE))
        return Reply(b"HTTP/1.1 404 X\r\nContent-Type: text/html\r\nContent-Length: 2\r\n\r\nUP")

    p = ProxyPair(router=Router(parse_manifests(_docs())), app=upstreams, settings=ON)
    out = p.send(b"GET /x HTTP/1.1\r\nHost: a.test\r\nAccept-Encoding: gzip\r\n\r\n")
    core = _headers(_client_events(out))
    assert core[b"content-encoding"] == b"gzip"
    assert zlib.decompress(_body(_client_events(out)), 31) == PAGE

    async def web(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 404,
                    "headers": [(b"content-type", b"text/html")]})
        await send({"type": "http.response.body", "body": b"UP"})

    async def errors(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 404,
                    "headers": [(b"content-type", b"text/html")]})
        await send({"type": "http.response.body", "body": PAGE})

    ingress = IngressASGI(parse_manifests(_docs()), {"default/web": web, "default/errors": errors},
                          settings=ON)
    sent = asgi_exchange(ingress, "a.test", "/x", b"",
                         headers=[(b"accept-encoding", b"gzip")], client=("127.0.0.1", 5000))
    start = {k.lower(): v for k, v in sent[0]["headers"]}
    assert sent[0]["status"] == 404 and start.get(b"content-encoding") == b"gzip"
    assert start[b"vary"] == b"Accept-Encoding"
    assert zlib.decompress(b"".join(m.get("body", b"") for m in sent[1:]), 31) == PAGE


def test_asgi_pathsend_file_is_compressed(tmp_path: Any) -> None:
    # A server offering the ASGI pathsend extension, an app (Starlette's FileResponse) using
    # it: the file must not go out as it is under "Content-Encoding: gzip".
    f = tmp_path / "page.html"
    f.write_bytes(BODY * 200)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert "http.response.pathsend" in scope.get("extensions", {})
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/html"),
                                (b"content-length", b"%d" % (len(BODY) * 200))]})
        await send({"type": "http.response.pathsend", "path": str(f)})

    asgi = IngressASGI(parse_manifests(MANIFESTS), {"default/up": app}, settings=ON)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(m: dict[str, Any]) -> None:
        sent.append(m)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": "/a", "raw_path": b"/a",
             "query_string": b"", "root_path": "", "extensions": {"http.response.pathsend": {}},
             "headers": [(b"host", b"plain.test")] + GZ,
             "client": ("127.0.0.1", 5555), "server": ("127.0.0.1", 80)}
    asyncio.run(asgi(scope, receive, send))
    start = {k.lower(): v for k, v in sent[0]["headers"]}
    assert start[b"content-encoding"] == b"gzip" and b"content-length" not in start
    assert all(m["type"] == "http.response.body" for m in sent[1:])
    assert not sent[-1].get("more_body") and all(m.get("more_body") for m in sent[1:-1])
    assert zlib.decompress(b"".join(m["body"] for m in sent[1:]), 31) == BODY * 200


def test_reload_keeps_the_connections_settings() -> None:
    # A reload (proxy.settings replaced) leaves an open connection with what it opened with,
    # as nginx's old worker serves its connections with the old configuration.
    from ingresslib.proxy._connection import Proxy

    proxy = Proxy(Router(parse_manifests(MANIFESTS)), settings=ProxySettings(), records=False)
    conn, cid = _start(proxy)
    proxy.settings = ON
    first = _sent(conn.upstream_data(cid, _up(), 0.0))
    assert b"Content-Encoding" not in first
    more = conn.receive_data(REQ, 1.0)
    ids = [a.conn_id for a in more if type(a) is OpenUpstream]
    if ids:
        cid = ids[0]
        conn.upstream_connected(cid, 1.0, reused=True)
    second = _sent(conn.upstream_data(cid, _up(), 1.0))
    assert b"Content-Encoding" not in second and _body(_client_events(second)) == BODY
    # a new connection gets the new settings
    conn2, cid2 = _start(proxy)
    assert b"Content-Encoding: gzip" in _sent(conn2.upstream_data(cid2, _up(), 2.0))


@pytest.mark.parametrize("extra,compressed", [
    (b"Cache-Control: no-transform\r\n", True),  # nginx does not look at it
    (b"Content-Encoding: identity\r\n", False),  # any non-empty value
    (b"Content-Encoding:\r\n", True),            # nginx: "content_encoding->value.len"
    (b"Content-Range: bytes 0-679/2000\r\n", True)])  # a 200 is a 200
def test_upstream_header_cases(extra: bytes, compressed: bool) -> None:
    conn, cid = _start(_proxy())
    events = _client_events(_sent(conn.upstream_data(cid, _up(extra=extra), 0.0)))
    headers = _headers(events)
    assert (headers.get(b"content-encoding") == b"gzip") is compressed
    body = _body(events)
    assert (zlib.decompress(body, 31) if compressed else body) == BODY


def test_asgi_own_content_encoding_trailers_and_empty_final() -> None:
    # an app's own Content-Encoding: left alone (Vary neither: nginx returns before it)
    sent = _asgi(_app([(b"content-type", b"text/html"), (b"content-encoding", b"br")],
                      [b"\x0b\x02\x80hi\x03"]))
    start = dict(sent[0]["headers"])
    assert start[b"content-encoding"] == b"br" and b"vary" not in start
    assert sent[1]["body"] == b"\x0b\x02\x80hi\x03"

    async def trailing(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "trailers": True,
                    "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": BODY, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        await send({"type": "http.response.trailers", "headers": [(b"x-sum", b"1")],
                    "more_trailers": False})

    sent = _asgi(trailing)
    assert sent[-1] == {"type": "http.response.trailers", "headers": [(b"x-sum", b"1")],
                        "more_trailers": False}
    assert zlib.decompress(b"".join(m.get("body", b"") for m in sent[1:-1]), 31) == BODY


def test_unrouted_local_answer_untouched() -> None:
    conn = _proxy().connection(("127.0.0.1", 5555), now=0.0)
    conn.start(0.0)
    # the built-in default backend's 404: 14 bytes (nginx: below gzip_min_length, returned
    # before r->gzip_vary)
    out = _sent(conn.receive_data(REQ.replace(b"plain.test", b"nowhere.test"), 0.0))
    assert out.startswith(b"HTTP/1.1 404 ")
    assert b"Content-Encoding" not in out and b"Vary" not in out


def test_access_log_counts_compressed_bytes() -> None:
    # nginx's $bytes_sent / $body_bytes_sent count what the write filter sent: compressed.
    from ingresslib.proxy._actions import RequestDone
    from ingresslib.proxy._connection import Proxy

    proxy = Proxy(Router(parse_manifests(MANIFESTS)), settings=ON)
    conn, cid = _start(proxy)
    acts = conn.upstream_data(cid, _up(BODY * 10), 0.0)
    out = _sent(acts)
    rec = next(a.record for a in acts if type(a) is RequestDone)
    head_len = out.index(b"\r\n\r\n") + 4
    assert rec.bytes_out == len(out) and rec.body_bytes_out == len(out) - head_len
    assert rec.body_bytes_out < len(BODY)  # (6800 bytes of text, compressed)
    assert rec.upstream_response_length == len(BODY) * 10  # what the upstream sent


def test_limit_rate_lets_out_the_compressed_bytes() -> None:
    # nginx's write filter (limit_rate) sees the gzip filter's output: the compressed bytes
    # are what is rated, and the last of them (trailer, last chunk) ends the request.
    import os

    from test_limitrate_s26 import Conn, P, _proxy as _rate_proxy

    body = os.urandom(3000).hex().encode()  # 6000 bytes, compressing to about half
    c = Conn(_rate_proxy({P + "limit-rate": "1"}, ON))
    acts = c.take(c.conn.receive_data(b"GET / HTTP/1.1\r\nHost: a.test\r\nAccept-Encoding: "
                                      b"gzip\r\n\r\n", c.now))
    cid = next(a.conn_id for a in acts if type(a) is OpenUpstream)
    c.take(c.conn.upstream_connected(cid, c.now))
    c.upstream(cid, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n"
               % len(body) + body)
    assert c.sends()[0] == (0.0, 1024)
    c.run_timers()
    out = c.sent()
    events = _client_events(out)
    assert zlib.decompress(_body(events), 31) == body
    assert len(c.sends()) == -(-len(out) // 1024)  # ~3.5 KB compressed: 4 seconds, not 6
    assert len(c.done_at()) == 1 and c.done_at()[0] < len(c.sends())
