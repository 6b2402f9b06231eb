"""Property tests for the core: how bytes are split never changes what is forwarded, and
arbitrary mutations of a request never crash the core nor reach an upstream half-parsed."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from _proxy_harness import ProxyPair, status_of

REQUESTS = [
    b"GET /a/../b//c?x=1 HTTP/1.1\r\nHost: example.test\r\nX-A: 1\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: example.test\r\nContent-Length: 5\r\n\r\nhello",
    b"PUT /p HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
    b"GET /%7Eu HTTP/1.0\r\nHost: example.test\r\n\r\n",
]
STREAM = b"".join(REQUESTS[:3])


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, last = [], 0
    for p in points + [len(data)]:
        out.append(data[last:p])
        last = p
    return [c for c in out if c]


def run(chunks: list[bytes]) -> ProxyPair:
    pair = ProxyPair()
    for c in chunks:
        if pair.closed:
            break
        pair.send(c)
    return pair


REFERENCE = run([STREAM])


@given(st.lists(st.integers(min_value=0, max_value=10_000), max_size=12))
def test_splitting_does_not_change_the_wire(cuts: list[int]) -> None:
    pair = run(split(STREAM, cuts))
    assert bytes(pair.received) == bytes(REFERENCE.received)
    # Chunk boundaries follow arrival (the body streams), so compare the decoded requests.
    assert forwarded(pair) == forwarded(REFERENCE)


def forwarded(pair: ProxyPair) -> list[tuple[bytes, bytes, list[tuple[bytes, bytes]], bytes]]:
    return [(r.method, r.target, [(n, v) for n, v in r.headers if n != b"transfer-encoding"],
             body) for up in pair.upstreams for r, body in up.requests]


@given(st.sampled_from(REQUESTS), st.integers(min_value=0, max_value=200),
       st.binary(min_size=1, max_size=4), st.sampled_from(["insert", "replace", "delete"]))
def test_mutated_requests_never_crash_and_stay_consistent(base: bytes, pos: int, junk: bytes,
                                                          how: str) -> None:
    pos %= len(base)
    if how == "insert":
        raw = base[:pos] + junk + base[pos:]
    elif how == "replace":
        raw = base[:pos] + junk + base[pos + len(junk):]
    else:
        raw = base[:pos] + base[pos + len(junk):]
    pair = run([raw])
    out = bytes(pair.received)
    if out:
        assert out.startswith(b"HTTP/1.1 ")
        status = status_of(out)
        assert status in (200, 400, 404, 405, 408, 413, 414, 431, 502, 503)
        if 400 <= status < 500 and status != 404:
            assert pair.closed
    # Whatever reached an upstream is a request the upstream's own parser reads cleanly: the
    # proxy re-frames everything it forwards.
    for up in pair.upstreams:
        for req, _ in up.requests:
            assert req.http_version == b"1.1"
            assert req.target.startswith(b"/")
