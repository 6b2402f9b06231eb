"""Request smuggling, differential (brief HX, session 25).

Pipelined byte streams built from smuggling building blocks go through the sans-IO core
(``Proxy.connection``), split at arbitrary byte boundaries. Checked on every stream:

* every byte the core sends to an upstream parses (h11 as a server, strictly, in the fake
  upstream) into exactly the requests the router sent there, with the path they were routed by,
  and nothing is left over half-parsed;
* no request reaches an upstream the router did not pick for it, and nothing after a refused
  request reaches any upstream;
* a refused request gets a 4xx and the connection closes;
* the answers to the client parse (h11 as a client) in order, HEAD included.

Where nginx (ngx_http_parse.c) and h11 differ, the core takes the stricter side for what it
refuses (bare LF, obs-fold, ``Transfer-Encoding`` lists) and re-frames what it accepts
(chunk sizes with leading zeros, extensions, trailers: the upstream gets plain re-encoded
chunks, so a lenient reading can never disagree with the upstream's).
"""

from __future__ import annotations

from dataclasses import dataclass

import h11
from hypothesis import given, settings
from hypothesis import strategies as st

from _budget import examples
from _proxy_harness import FakeUpstream, ProxyPair, Reply, Route, ok, silent_app

A = ("10.0.0.1", 1)
B = ("10.0.0.2", 2)
H = b"Host: x.test\r\n"


def routes() -> list[Route]:
    return [Route("/a", endpoints=[A], service="a"), Route("/b", endpoints=[B], service="b")]


@dataclass(frozen=True)
class Good:
    raw: bytes
    method: bytes
    endpoint: tuple[str, int]
    target: bytes  # the target the upstream must see
    body: bytes


# --------------------------------------------------------------------------- building blocks
def _chunked(body: bytes, cuts: list[int], zeros: int, ext: bool, trailer: bool) -> bytes:
    out = b""
    pos = 0
    for c in sorted(set(x % (len(body) + 1) for x in cuts)) + [len(body)]:
        piece = body[pos:c]
        pos = c
        if piece:
            out += b"0" * zeros + b"%x" % len(piece) + (b";n=v" if ext else b"") + b"\r\n"
            out += piece + b"\r\n"
    out += b"0" * zeros + b"0" + (b";last" if ext else b"") + b"\r\n"
    out += (b"X-Trailer: t\r\n" if trailer else b"") + b"\r\n"
    return out


@st.composite
def good(draw: st.DrawFn) -> Good:
    which = draw(st.sampled_from([A, B]))
    seg = b"/a" if which == A else b"/b"
    n = draw(st.integers(0, 99))
    path = seg + b"/%d" % n
    kind = draw(st.sampled_from(
        ["get", "crlf-get", "head", "cl", "chunked", "http10", "expect", "absolute", "conn-upgrade",
         "get-cl"]))
    body = draw(st.binary(max_size=12)) if kind in ("cl", "chunked", "expect") else b""
    if kind == "get":
        return Good(b"GET " + path + b" HTTP/1.1\r\n" + H + b"\r\n", b"GET", which, path, b"")
    if kind == "crlf-get":  # empty lines before a request line are skipped (RFC 9112 2.2)
        return Good(b"\r\n\r\nGET " + path + b" HTTP/1.1\r\n" + H + b"\r\n", b"GET", which,
                    path, b"")
    if kind == "head":
        return Good(b"HEAD " + path + b" HTTP/1.1\r\n" + H + b"\r\n", b"HEAD", which, path, b"")
    if kind == "cl":
        zeros = draw(st.integers(0, 2))
        return Good(b"POST " + path + b" HTTP/1.1\r\n" + H + b"Content-Length: "
                    + b"0" * zeros + b"%d\r\n\r\n" % len(body) + body, b"POST", which, path, body)
    if kind == "chunked":
        enc = _chunked(body, draw(st.lists(st.integers(0, 12), max_size=3)),
                       draw(st.integers(0, 2)), draw(st.booleans()), draw(st.booleans()))
        return Good(b"POST " + path + b" HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
                    + enc, b"POST", which, path, body)
    if kind == "http10":
        return Good(b"GET " + path + b" HTTP/1.0\r\n" + H + b"Connection: keep-alive\r\n\r\n",
                    b"GET", which, path, b"")
    if kind == "expect":
        return Good(b"PUT " + path + b" HTTP/1.1\r\n" + H + b"Expect: 100-continue\r\n"
                    b"Content-Length: %d\r\n\r\n" % len(body) + body, b"PUT", which, path, body)
    if kind == "absolute":
        return Good(b"GET http://x.test" + path + b" HTTP/1.1\r\n" + H + b"\r\n", b"GET", which,
                    path, b"")
    if kind == "conn-upgrade":  # Connection: upgrade without Upgrade is a plain request
        return Good(b"GET " + path + b" HTTP/1.1\r\n" + H + b"Connection: upgrade\r\n\r\n",
                    b"GET", which, path, b"")
    # a GET with a body: the body is framed by Content-Length and never read as a request
    smuggled = b"GET /b/in-body HTTP/1.1\r\n" + H + b"\r\n"
    return Good(b"GET " + path + b" HTTP/1.1\r\n" + H + b"Content-Length: %d\r\n\r\n"
                % len(smuggled) + smuggled, b"GET", which, path, smuggled)


_P = b"POST /a/x HTTP/1.1\r\n" + H
_TE = _P + b"Transfer-Encoding: chunked\r\n\r\n"
_SMUGGLED = b"GET /b/smuggled HTTP/1.1\r\n" + H + b"\r\n"

#: Requests the core must refuse (4xx, close), each hiding a request for /b/smuggled where one
#: reading of the framing would find it.
BAD: list[tuple[str, bytes]] = [
    ("CL+TE", _P + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
     + _SMUGGLED),
    ("TE+CL", _P + b"Transfer-Encoding: chunked\r\nContent-Length: 50\r\n\r\n0\r\n\r\n"
     + _SMUGGLED),
    ("CL twice", _P + b"Content-Length: 0\r\nContent-Length: 0\r\n\r\n" + _SMUGGLED),
    ("CL conflicting", _P + b"Content-Length: 0\r\nContent-Length: 44\r\n\r\n" + _SMUGGLED),
    ("CL list", _P + b"Content-Length: 0, 44\r\n\r\n" + _SMUGGLED),
    ("CL 0x", _P + b"Content-Length: 0x2c\r\n\r\n" + _SMUGGLED),
    ("CL empty", _P + b"Content-Length: \r\n\r\n" + _SMUGGLED),
    ("CL overflow", _P + b"Content-Length: 18446744073709551616\r\n\r\n" + _SMUGGLED),
    ("TE chunked, identity", _P + b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"
     + _SMUGGLED),
    ("TE chunked not last", _P + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"
     + _SMUGGLED),
    ("TE gzip, chunked", _P + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n" + _SMUGGLED),
    ("TE two fields", _P + b"Transfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\n" + _SMUGGLED),
    ("TE obs-fold", _P + b"Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n" + _SMUGGLED),
    ("obs-fold", b"GET /a/x HTTP/1.1\r\n" + H + b"X: a\r\n b\r\n\r\n" + _SMUGGLED),
    ("bare LF in head", b"GET /a/x HTTP/1.1\n" + H + b"\r\n" + _SMUGGLED),
    ("bare LF after header", b"GET /a/x HTTP/1.1\r\n" + H + b"X: 1\n\r\n" + _SMUGGLED),
    ("bare CR", b"GET /a/x HTTP/1.1\r\n" + H + b"X: 1\rContent-Length: 44\r\n\r\n"
     + _SMUGGLED),
    ("NUL in value", b"GET /a/x HTTP/1.1\r\n" + H + b"X: a\x00b\r\n\r\n" + _SMUGGLED),
    ("NUL in name", b"GET /a/x HTTP/1.1\r\n" + H + b"X\x00: 1\r\n\r\n" + _SMUGGLED),
    ("space before colon", _P + b"Content-Length : 44\r\n\r\n" + _SMUGGLED),
    ("tab before colon", _P + b"Transfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n" + _SMUGGLED),
    ("non-token name", b"GET /a/x HTTP/1.1\r\n" + H + b"X[1]: 1\r\n\r\n" + _SMUGGLED),
    ("8-bit name", b"GET /a/x HTTP/1.1\r\n" + H + b"X\xe9: 1\r\n\r\n" + _SMUGGLED),
    ("empty name", b"GET /a/x HTTP/1.1\r\n" + H + b": 1\r\n\r\n" + _SMUGGLED),
    ("leading space header", b"GET /a/x HTTP/1.1\r\n" + b" " + H + b"\r\n" + _SMUGGLED),
    ("chunk 0x", _TE + b"0x2c\r\n" + _SMUGGLED + b"\r\n0\r\n\r\n"),
    ("chunk +", _TE + b"+2c\r\n" + _SMUGGLED + b"\r\n0\r\n\r\n"),
    ("chunk -", _TE + b"-0\r\n\r\n" + _SMUGGLED),
    ("chunk overflow", _TE + b"10000000000000000\r\n\r\n0\r\n\r\n" + _SMUGGLED),
    ("chunk size LF", _TE + b"0\n\r\n" + _SMUGGLED),
    ("chunk data no CRLF", _TE + b"1\r\nAXX0\r\n\r\n" + _SMUGGLED),
    ("chunk ext bare LF", _TE + b"0;a\nb\r\n\r\n" + _SMUGGLED),
    ("chunk empty size", _TE + b"\r\n\r\n" + _SMUGGLED),
    ("trailer bare LF", _TE + b"0\r\nX: 1\n\r\n" + _SMUGGLED),
    ("trailer space before colon", _TE + b"0\r\nX : 1\r\n\r\n" + _SMUGGLED),
    ("HTTP/1.0 with TE", b"POST /a/x HTTP/1.0\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
     b"0\r\n\r\n" + _SMUGGLED),
    ("two Hosts", b"GET /a/x HTTP/1.1\r\n" + H + b"Host: y.test\r\n\r\n" + _SMUGGLED),
    ("absolute-form other host", b"GET http://y.test/b/x HTTP/1.1\r\n" + H + b"\r\n"
     + _SMUGGLED),
    ("double space", b"GET  /a/x HTTP/1.1\r\n" + H + b"\r\n" + _SMUGGLED),
    ("version junk", b"GET /a/x HTTP/1.1x\r\n" + H + b"\r\n" + _SMUGGLED),
    ("NUL in request line", b"GET /a/x\x00 HTTP/1.1\r\n" + H + b"\r\n" + _SMUGGLED),
    ("non-token method", b"G@T /a/x HTTP/1.1\r\n" + H + b"\r\n" + _SMUGGLED),
    ("CL underscore digits", _P + b"Content-Length: 4_4\r\n\r\n" + _SMUGGLED),
    ("TE vertical tab", _P + b"Transfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n"
     + _SMUGGLED),
    ("head ends CRLF LF", b"GET /a/x HTTP/1.1\r\n" + H + b"\n" + _SMUGGLED),
    ("CR CR LF", b"GET /a/x HTTP/1.1\r\n" + H[:-2] + b"\r\r\n\r\n" + _SMUGGLED),
    ("leading bare LF", b"\nGET /a/x HTTP/1.1\r\n" + H + b"\r\n" + _SMUGGLED),
    ("leading space", b" GET /a/x HTTP/1.1\r\n" + H + b"\r\n" + _SMUGGLED),
    ("CL trailing junk", _P + b"Content-Length: 44x\r\n\r\n" + _SMUGGLED),
    ("TE quoted", _P + b'Transfer-Encoding: "chunked"\r\n\r\n0\r\n\r\n' + _SMUGGLED),
]

#: Refusals found in the body, after the head was routed and forwarded: that upstream got the
#: head but never a complete request, and its connection is not reused.
BODY_ERRORS = {name for name, raw in BAD if raw.startswith(_TE)}


# --------------------------------------------------------------------------- the property
def _feed(pair: ProxyPair, data: bytes, cuts: list[int]) -> None:
    pos = 0
    for c in sorted(set(cuts)) + [len(data)]:
        if pair.closed:
            return
        if c > pos:
            pair.send(data[pos:c])
            pos = c


def _client_responses(out: bytes, methods: list[bytes]) -> list[tuple[int, bytes]]:
    """Parse ``out`` as the client would (h11 client), one response per request sent."""
    client = h11.Connection(h11.CLIENT)
    client.receive_data(out)
    got: list[tuple[int, bytes]] = []
    for m in methods:
        client.send(h11.Request(method=m, target="/", headers=[("Host", "x.test")]))
        client.send(h11.EndOfMessage())
        status, body = 0, b""
        while True:
            ev = client.next_event()
            if isinstance(ev, h11.Response):
                status = ev.status_code
            elif isinstance(ev, h11.Data):
                body += ev.data
            elif isinstance(ev, h11.EndOfMessage):
                break
            elif ev is h11.NEED_DATA or ev is h11.PAUSED:
                raise AssertionError(f"client got a truncated response to {m!r}: {out!r}")
        got.append((status, body))
        if client.their_state is h11.MUST_CLOSE:
            break
        client.start_next_cycle()
    assert client.trailing_data[0] == b"", out  # nothing after the last answer
    return got


def check_stream(goods: list[Good], bad: tuple[str, bytes] | None, after: list[Good],
                 cuts: list[int], closing: bool = False) -> None:
    stream = b"".join(g.raw for g in goods) + (bad[1] if bad else b"")
    stream += b"".join(g.raw for g in after) if bad else b""
    if closing and not bad:  # the last request closes; nothing after it is read
        goods = goods + [Good(b"GET /b/last HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n",
                              b"GET", B, b"/b/last", b"")]
        stream = b"".join(g.raw for g in goods) + _SMUGGLED + b"".join(g.raw for g in after)
    pair = ProxyPair(routes())
    _feed(pair, stream, cuts)
    out = bytes(pair.received)

    # Upstream side: strict h11 parses exactly the routed requests, nothing half-sent.
    for up in pair.upstreams:
        if bad and bad[0] in BODY_ERRORS and b"POST /a/x HTTP/1.1" in up.raw:
            assert up.closed  # got the refused head: closed, never reused
        else:
            assert up._parser.their_state is h11.IDLE, (up.endpoint, bytes(up.raw))
            assert up._parser.trailing_data[0] == b"", (up.endpoint, bytes(up.raw))
    for ep in (A, B):
        sent = [(r.method, r.target, body) for up in pair.upstreams if up.endpoint == ep
                for r, body in up.requests]
        want = [(g.method, g.target, g.body) for g in goods if g.endpoint == ep]
        assert sent == want, (ep, sent, want, stream)
    for up in pair.upstreams:
        for r, _ in up.requests:
            assert dict(r.headers)[b"host"] == b"x.test"
    assert b"/b/smuggled HTTP" not in b"".join(
        bytes(u.raw) for u in pair.upstreams), stream  # hidden requests never forwarded

    # Client side: one answer per request, in order; a refusal is a 4xx and a close.
    methods = [g.method for g in goods] + ([b"GET"] if bad else [])
    got = _client_responses(out, methods)
    assert len(got) == len(methods), (got, out)
    for g, (status, body) in zip(goods, got):
        assert status == 200, (g, out)
        assert body == (b"" if g.method == b"HEAD" else b"ok " + g.target), (g, out)
    if bad:
        assert 400 <= got[-1][0] < 500, (bad[0], out)
        assert pair.closed, bad[0]
    elif closing:
        assert pair.closed
    else:
        assert not pair.closed


@settings(max_examples=examples(0.5), deadline=None)
@given(goods=st.lists(good(), max_size=3),
       bad=st.none() | st.sampled_from(BAD),
       after=st.lists(good(), max_size=2),
       cuts=st.lists(st.integers(0, 600), max_size=6), closing=st.booleans())
def test_pipelined_streams_never_desync(goods: list[Good], bad: tuple[str, bytes] | None,
                                        after: list[Good], cuts: list[int],
                                        closing: bool) -> None:
    check_stream(goods, bad, after, cuts, closing)


def test_every_bad_block_is_refused_behind_good_requests() -> None:
    first = [Good(b"GET /a/1 HTTP/1.1\r\n" + H + b"\r\n", b"GET", A, b"/a/1", b""),
             Good(b"HEAD /b/2 HTTP/1.1\r\n" + H + b"\r\n", b"HEAD", B, b"/b/2", b"")]
    after = [Good(b"GET /b/3 HTTP/1.1\r\n" + H + b"\r\n", b"GET", B, b"/b/3", b"")]
    for bad in BAD:
        check_stream(first, bad, after, [])


def test_every_bad_block_split_at_every_byte() -> None:
    # One stream per block, cut at every byte boundary: framing checks must not depend on how
    # the bytes arrive (a chunk-size line or a header split across reads).
    for bad in BAD:
        check_stream([], bad, [], list(range(len(bad[1]))))


# --------------------------------------------------------------------------- early answers
def test_body_after_an_early_upstream_answer_is_never_read_as_a_request() -> None:
    # The upstream answers (403, 413) before the client sent its body; the body, a request
    # for /b, must not be parsed as the next request on the client connection.
    for chunked in (False, True):
        for expect in (False, True):
            for answer in (b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
                           b"HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n"
                           b"Connection: close\r\n\r\n"):
                pair = ProxyPair(routes(), app=silent_app)
                head = (b"POST /a/x HTTP/1.1\r\n" + H
                        + (b"Expect: 100-continue\r\n" if expect else b""))
                if chunked:
                    head += b"Transfer-Encoding: chunked\r\n\r\n"
                    body = b"%x\r\n" % len(_SMUGGLED) + _SMUGGLED + b"\r\n0\r\n\r\n"
                else:
                    head += b"Content-Length: %d\r\n\r\n" % len(_SMUGGLED)
                    body = _SMUGGLED
                out = pair.send(head)
                out += pair.upstream_send(pair.upstreams[0], answer)
                out += pair.send(body + b"GET /b/after HTTP/1.1\r\n" + H + b"\r\n")
                assert [u.endpoint for u in pair.upstreams] == [A]
                assert b"/b/" not in bytes(pair.upstreams[0].raw)
                got = _client_responses(out, [b"POST"])
                assert got == [(int(answer[9:12]), b"")], out
                assert pair.closed


def test_bodiless_answers_keep_pipelined_responses_in_order() -> None:
    # HEAD, 204 and 304 answers end at their head whatever framing the upstream declared
    # (and whatever bytes it sent after a HEAD answer): the next answer parses in order.
    answers = [
        (b"HEAD", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
        (b"HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789"),
        (b"HEAD", b"HTTP/1.1 200 OK\r\n\r\n"),
        (b"GET", b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n"),
        (b"GET", b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n"),
    ]
    for method, answer in answers:
        def app(req: h11.Request, body: bytes, up: FakeUpstream,
                answer: bytes = answer) -> Reply:
            return Reply(answer) if req.target == b"/a/1" else ok(b"second")
        pair = ProxyPair(routes(), app=app)
        out = pair.send(method + b" /a/1 HTTP/1.1\r\n" + H + b"\r\nGET /a/2 HTTP/1.1\r\n" + H
                        + b"\r\n")
        got = _client_responses(out, [method, b"GET"])
        assert got == [(int(answer[9:12]), b""), (200, b"second")], out
        assert not pair.closed


def test_connection_tokens_do_not_strip_framing_or_host() -> None:
    # A client naming Host, Content-Length or Transfer-Encoding in Connection must not get
    # the core to forward a request the upstream frames or routes differently (nginx ignores
    # the tokens: proxy_set_header Connection replaces the field).
    for body in (False, True):
        pair = ProxyPair(routes())
        conn = b"Connection: keep-alive, Host, Content-Length, Transfer-Encoding, X-Real-IP\r\n"
        if body:
            raw = (b"POST /a/1 HTTP/1.1\r\n" + H + conn + b"Transfer-Encoding: chunked\r\n\r\n"
                   b"%x\r\n" % len(_SMUGGLED) + _SMUGGLED + b"\r\n0\r\n\r\n")
        else:
            raw = b"GET /a/1 HTTP/1.1\r\n" + H + conn + b"\r\n"
        out = pair.send(raw + b"GET /b/2 HTTP/1.1\r\n" + H + b"\r\n")
        (req_a, body_a), = pair.upstreams[0].requests
        assert dict(req_a.headers)[b"host"] == b"x.test"
        assert body_a == (_SMUGGLED if body else b"")
        assert [(u.endpoint, [r.target for r, _ in u.requests]) for u in pair.upstreams] == [
            (A, [b"/a/1"]), (B, [b"/b/2"])]
        assert _client_responses(out, [b"POST" if body else b"GET", b"GET"]) == [
            (200, b"ok /a/1"), (200, b"ok /b/2")]
