"""Session 19's user walk: ``examples/embedded_proxy.py`` (the asyncio proxy embedded in a
program of one's own) really serves, reloads on SIGHUP without dropping a keep-alive
connection, keeps the last good table on an invalid edit, and stops on SIGTERM. Everything on
127.0.0.1, in front of a backend the test starts."""

from __future__ import annotations

import http.client
import http.server
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._process_helpers import kill_after, stderr_until_exit

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "embedded_proxy.py"

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGHUP: the example is Unix only")

MANIFESTS = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: web}}
spec:
  rules:
  - host: a.test
    http:
      paths:
      - {{path: {path}, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec: {{ports: [{{port: 80, targetPort: {port}}}]}}
---
apiVersion: v1
kind: Endpoints
metadata: {{name: web}}
subsets: [{{addresses: [{{ip: 127.0.0.1}}], ports: [{{port: {port}}}]}}]
"""

INVALID = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web}
spec:
  rules:
  - http:
      paths:
      - {path: nope, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
"""


def _backend(name: str) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            body = f"{name} {self.path}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    # A short poll: shutdown() waits for serve_forever's next poll (0.5 s by default).
    threading.Thread(target=srv.serve_forever, args=(0.02,), daemon=True).start()
    return srv


@pytest.fixture
def backends() -> Iterator[tuple[int, int]]:
    one, two = _backend("one"), _backend("two")
    try:
        yield one.server_address[1], two.server_address[1]
    finally:
        for srv in (one, two):
            srv.shutdown()
            srv.server_close()


def _line(p: subprocess.Popen[str], prefix: str) -> str:
    """The next stderr line of ``p`` that starts with ``prefix`` (lines before it skipped)."""
    assert p.stderr is not None
    seen = []
    for line in iter(p.stderr.readline, ""):
        if line.startswith(prefix):
            return line.rstrip("\n")
        seen.append(line)
    pytest.fail(f"no line starting {prefix!r}; stderr was:\n{''.join(seen)}")


def _get(conn: http.client.HTTPConnection, path: str) -> tuple[int, str]:
    conn.request("GET", path, headers={"Host": "a.test"})
    resp = conn.getresponse()
    return resp.status, resp.read().decode()


def test_embedded_proxy_serves_reloads_and_stops(backends: tuple[int, int], tmp_path: Path) -> None:
    one, two = backends
    manifest = tmp_path / "m.yaml"
    manifest.write_text(MANIFESTS.format(path="/", port=one))
    p = subprocess.Popen(
        [sys.executable, str(EXAMPLE), "-f", str(manifest), "--listen", "127.0.0.1:0",
         "--metrics-listen", "127.0.0.1:0"],
        stderr=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        _walk(p, manifest, one, two)
    finally:
        if p.poll() is None:  # a failed assertion: do not leave the server running
            p.kill()
            p.wait(10)


def _walk(p: subprocess.Popen[str], manifest: Path, one: int, two: int) -> None:
    with kill_after(p, 60):
        port = int(_line(p, "listening on http://127.0.0.1:").rsplit(":", 1)[1])
        metrics_url = _line(p, "metrics on ").split()[-1]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        assert _get(conn, "/x") == (200, "one /x")
        sock = conn.sock  # http.client reconnects silently: the socket tells it did not

        # A new table (another path, another backend): the same keep-alive connection goes on.
        manifest.write_text(MANIFESTS.format(path="/v2", port=two))
        p.send_signal(signal.SIGHUP)
        assert _line(p, "reloaded") == "reloaded: 1 Ingress(es) served"
        assert _get(conn, "/x")[0] == 404
        assert _get(conn, "/v2/x") == (200, "two /v2/x")

        # An invalid edit is refused: the last good table keeps serving.
        manifest.write_text(INVALID)
        p.send_signal(signal.SIGHUP)
        assert _line(p, "reload rejected").startswith("reload rejected, the last good table")
        assert _get(conn, "/v2/y") == (200, "two /v2/y")
        assert sock is not None and conn.sock is sock
        conn.close()

        with urllib.request.urlopen(metrics_url, timeout=10) as resp:
            text = resp.read().decode()
        assert "nginx_ingress_controller_config_last_reload_successful 0.0" in text
        assert 'path="/v2",service="web",status="200"} 2.0' in text

        p.send_signal(signal.SIGTERM)
        err = stderr_until_exit(p, 30)
    assert p.returncode == 0, err
    assert err.rstrip().endswith("stopped")


def test_embedded_proxy_refuses_invalid_manifests_at_start(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yaml"
    manifest.write_text(INVALID)
    done = subprocess.run([sys.executable, str(EXAMPLE), "-f", str(manifest),
                           "--listen", "127.0.0.1:0"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert 'spec.rules[0].http.paths[0].path: Invalid value: "nope"' in done.stderr
    assert "listening on" not in done.stderr
