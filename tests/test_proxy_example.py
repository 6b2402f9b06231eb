"""The selectors example really runs: a blocking-socket driver around the sans-IO core, on
127.0.0.1, in front of a small backend (issue 4: "proving it needs no asyncio")."""

from __future__ import annotations

import http.client
import http.server
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

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
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield "127.0.0.1", srv.server_address[1]
    finally:
        srv.shutdown()
        srv.server_close()


def test_example_proxies_on_loopback(backend: tuple[str, int]) -> None:
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
        port = int(line.rsplit(":", 1)[1])
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
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()
