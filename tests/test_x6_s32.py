"""Session 32, x6: a second engineer's review of rounds 4 and 5 (a client closing mid-head,
the invalid upstream head refused before its status counts, the send timeout's read-ahead
give-back).

Found: with ``proxy_ignore_client_abort`` the client's EOF is kept while the response finishes;
if all the client had sent after that request were empty lines (a CRLF after a body, which
``_try_head`` drops as RFC 9112 §2.2 lets it), the connection stayed open after the response,
its HEAD timer armed, for client_header_timeout (60 s): a socket held for a client already gone.
"""

from __future__ import annotations

import pytest

from ingresslib.proxy import ProxySettings

from _proxy_harness import ProxyPair, silent_app, status_of

FULL = b"GET /a HTTP/1.1\r\nHost: h.test\r\n\r\n"


def _finish_after_eof(trailing: bytes) -> ProxyPair:
    """proxy_ignore_client_abort: ``FULL + trailing`` sent, the client's EOF comes while the
    response is under way, then the response ends."""
    p = ProxyPair(settings=ProxySettings(proxy_ignore_client_abort=True), app=silent_app)
    p.send(FULL + trailing)
    out = p.upstream_send(p.upstreams[0], b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\no")
    assert status_of(out) == 200
    p.eof()
    assert p.downstream_closes == [] and p.records == []  # (the response goes on)
    assert p.upstream_send(p.upstreams[0], b"k") == b"k"
    return p


@pytest.mark.parametrize("trailing", [b"\r\n", b"\r\n\r\n", b""])
def test_only_empty_lines_after_a_request_then_eof_close_once_the_response_is_out(
        trailing: bytes) -> None:
    # Closed once the response is out (before: left open, HEAD timer armed). The empty lines
    # are a request to nginx (ngx_http_set_keepalive's pipelined branch, then recv() == 0 in
    # ngx_http_read_request_header): logged 400, as a partial head (session 33, h1; b"": no
    # byte, no request, for reference).
    p = _finish_after_eof(trailing)
    assert p.closed and len(p.downstream_closes) == 1
    assert [r.status for r in p.records] == ([200, 400] if trailing else [200])
