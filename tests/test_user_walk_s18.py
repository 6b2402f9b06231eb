"""A new user's walk through README, docs and examples (D18): what the examples print."""

from __future__ import annotations

import socket

import pytest

import ingresslib
from test_docs_s16 import _load_example


def _verbose_lines(raw: bytes, capsys: pytest.CaptureFixture[str]) -> str:
    """Feed ``raw`` to the example's driver (-v) as one client's bytes; what it printed."""
    ex = _load_example()
    proxy = ingresslib.Proxy(ingresslib.Router(ingresslib.parse_manifests(
        ex.MANIFESTS.format(ip="127.0.0.1", port=9))))
    driver = ex.Driver(proxy, ("127.0.0.1", 0), verbose=True)
    ours, theirs = socket.socketpair()
    try:
        conn = proxy.connection(("127.0.0.1", 40000), local_port=driver.address[1], now=0.0)
        client = ex.Client(ours, conn)
        driver.perform(client, conn.start(0.0) + conn.receive_data(raw, now=0.0))
    finally:
        ours.close()
        theirs.close()
        driver.lsock.close()
        driver.sel.close()
    return capsys.readouterr().err


@pytest.mark.parametrize("raw, expected", [
    # Refused before routing: the record has no canonical path. The line printed '"GET " 400'
    # (method and an empty path), which does not say what was refused.
    (b"GET /a%2Fb HTTP/1.1\r\nHost: example.test\r\n\r\n", '"GET /a%2Fb HTTP/1.1" 400'),
    (b"GET /../x HTTP/1.1\r\nHost: example.test\r\n\r\n", '"GET /../x HTTP/1.1" 400'),
    (b"TRACE / HTTP/1.1\r\nHost: example.test\r\n\r\n", '"TRACE / HTTP/1.1" 405'),
    (b"get / HTTP/1.1\r\nHost: example.test\r\n\r\n", '"get / HTTP/1.1" 400'),
])
def test_verbose_line_names_the_request_as_received(
        raw: bytes, expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    # The -v line is nginx's "$request" (the request line as received), as the access log
    # writes it, so a refused request shows what the client sent.
    assert expected in _verbose_lines(raw, capsys)
