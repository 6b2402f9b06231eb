"""The selectors example really runs: a blocking-socket driver around the sans-IO core, on
127.0.0.1, in front of a small backend (issue 4: "proving it needs no asyncio")."""

from __future__ import annotations

import contextlib
import http.client
import http.server
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import ingresslib

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "sansio_blocking_proxy.py"


class _Echo(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        body = (f"{self.path} xff={self.headers.get('X-Forwarded-For')} "
                f"host={self.headers.get('Host')}").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def backend() -> Iterator[tuple[str, int]]:
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    # A short poll: shutdown() waits for serve_forever's next poll (0.5 s by default).
    t = threading.Thread(target=srv.serve_forever, args=(0.02,), daemon=True)
    t.start()
    try:
        yield "127.0.0.1", srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()


@contextlib.contextmanager
def _example(backend: tuple[str, int]) -> Iterator[int]:
    """Run the example on 127.0.0.1 in front of ``backend``; yield its port."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "--backend", f"{backend[0]}:{backend[1]}",
         "--listen", "127.0.0.1:0"], stderr=subprocess.PIPE, env=env)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline().decode()
        if not line.startswith("listening on http://127.0.0.1:"):
            proc.kill()
            pytest.fail("example did not start:\n" + line + proc.stderr.read().decode())
        yield int(line.rsplit(":", 1)[1])
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()


def test_example_proxies_on_loopback(backend: tuple[str, int]) -> None:
    with _example(backend) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for _ in range(3):  # keep-alive on both sides
            conn.request("GET", "/a//b/./c?q=1", headers={"Host": "example.test",
                                                         "X-Forwarded-For": "6.6.6.6"})
            resp = conn.getresponse()
            assert resp.status == 200
            assert resp.read() == b"/a/b/c?q=1 xff=127.0.0.1 host=example.test"
        conn.request("GET", "/a%2fb", headers={"Host": "example.test"})
        resp = conn.getresponse()
        assert resp.status == 400
        resp.read()
        conn.close()


def test_example_lingers_so_a_413_reaches_a_client_still_uploading(
        backend: tuple[str, int]) -> None:
    # The body is over proxy-body-size (1 MiB): the core answers 413 and asks for a lingering
    # close. Before the example honoured it, it closed the socket with the body unread and the
    # kernel's reset reached the client instead of the 413 (as test_server.py shows for the
    # asyncio server).
    size = 16 << 20
    with _example(backend) as port:
        for _ in range(3):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            s.sendall(b"POST / HTTP/1.1\r\nHost: example.test\r\nContent-Length: %d\r\n\r\n"
                      % size)
            sent = []

            def upload(s: socket.socket = s, sent: list[int] = sent) -> None:
                chunk = b"x" * 65536
                with contextlib.suppress(OSError):
                    for _ in range(size // len(chunk)):
                        s.sendall(chunk)
                        sent.append(len(chunk))

            t = threading.Thread(target=upload)
            t.start()
            reply = b""
            while data := s.recv(65536):  # to EOF: the proxy ended its side after the 413
                reply += data
            assert reply.startswith(b"HTTP/1.1 413 "), reply[:40]
            t.join(10)
            # The proxy went on reading and dropping the body: the whole upload got through.
            assert not t.is_alive() and sum(sent) == size
            s.close()


def test_a_timer_months_away_does_not_stop_the_driver() -> None:
    # proxy-read-timeout: "2200000" (25 days; nginx takes up to 2^63 ms) arms a timer that
    # far away; the example handed it to select(), and epoll, which takes an int of
    # milliseconds, raised OverflowError out of serve_forever (R17h). The wait is capped.
    import selectors

    from test_docs_s16 import _load_example

    ex = _load_example()
    sel = selectors.DefaultSelector()
    if isinstance(sel, selectors.EpollSelector):  # the premise, where it holds
        with pytest.raises(OverflowError):
            sel.select(2_200_000.0)
    sel.close()

    class Stop(Exception):
        pass

    waits: list[float] = []
    driver = ex.Driver(ingresslib.Proxy(ingresslib.Router(ingresslib.parse_manifests(
        ex.MANIFESTS.format(ip="127.0.0.1", port=9)))), ("127.0.0.1", 0))
    real = driver.sel.select

    def select(timeout: float) -> Any:
        waits.append(timeout)
        if len(waits) == 2:
            raise Stop
        return real(0)

    driver._timers = lambda: 2_200_000.0
    driver.sel.select = select
    try:
        with pytest.raises(Stop):
            driver.serve_forever()
    finally:
        driver.lsock.close()
        driver.sel.close()
    assert waits and all(w * 1000 < 2**31 for w in waits), waits
