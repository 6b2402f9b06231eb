"""Session 24 (Q1), the request path's cost against session 11: the load scripts the figures
come from keep working, and the head readers' call count stays down.

- ``benchmarks/load/null_core.py`` (``run.py --server-only``) stood in for ``Proxy`` without
  ``log_annotation_warnings``, which ``ProxyServer.start`` asks since 5ce405f: the script
  died at start (AttributeError) and ``--server-only`` waited for a port that never opened.
- ``benchmarks/load/core_ab.py`` (new): the core of two trees, A/B, in alternating blocks.
- ``_H11Reader`` reading a complete head made a call to ``_head_lines`` (2 calls per
  proxied request); the no-line errors are now a call made only when there is no line.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import h11
import pytest

from ingresslib.proxy._h11_reader import _H11Reader

ROOT = Path(__file__).resolve().parent.parent
LOAD = ROOT / "benchmarks" / "load"

RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 20\r\n\r\n"
            b"hello from upstream\n")


def _upstream() -> tuple[socket.socket, int]:
    """A listener on 127.0.0.1 answering every request head read with RESPONSE (a thread)."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)

    def serve(conn: socket.socket) -> None:
        with conn:
            buf = b""
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while b"\r\n\r\n" in buf:
                    buf = buf.split(b"\r\n\r\n", 1)[1]
                    conn.sendall(RESPONSE)

    def accept() -> None:
        while True:
            try:
                conn, _ = lsock.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return lsock, lsock.getsockname()[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_null_core_serves_a_request_through_the_current_server() -> None:
    # run.py --server-only's canned core against this tree's ProxyServer.
    lsock, up = _upstream()
    port = _free_port()
    proc = subprocess.Popen([sys.executable, str(LOAD / "null_core.py"), str(port), str(up)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, proc.communicate()[1].decode()[-600:]
            try:
                client = socket.create_connection(("127.0.0.1", port), timeout=5)
                break
            except OSError:
                assert time.monotonic() < deadline, "null_core.py never listened"
                time.sleep(0.05)
        with client:
            client.sendall(b"GET / HTTP/1.1\r\nHost: bench.test\r\n\r\n")
            got = b""
            while not got.endswith(b"hello from upstream\n"):
                data = client.recv(65536)
                assert data, got
                got += data
        assert got.startswith(b"HTTP/1.1 200 OK\r\n")
    finally:
        proc.kill()
        proc.wait(10)
        assert proc.stderr is not None
        proc.stderr.close()
        lsock.close()


def test_core_ab_measures_two_trees_in_alternating_blocks(tmp_path: Path) -> None:
    out = tmp_path / "ab.json"
    done = subprocess.run(
        [sys.executable, str(LOAD / "core_ab.py"), "ab", str(ROOT), str(ROOT), "--blocks", "2",
         "--n", "20", "--warmup", "5", "--case", "post", "--json", str(out)],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-800:]
    res = json.loads(out.read_text())
    assert res["case"] == "post" and res["blocks"] == 2 and res["requests_per_block"] == 20
    assert len(res["old_us"]) == len(res["new_us"]) == 2
    assert all(x > 0 for x in res["old_us"] + res["new_us"]) and res["ratio_median"] > 0
    assert "post: old" in done.stderr


def test_core_ab_counts_bytecodes_per_request_by_function(tmp_path: Path) -> None:
    out = tmp_path / "ops.json"
    done = subprocess.run(
        [sys.executable, str(LOAD / "core_ab.py"), "ops", str(ROOT), "--n", "3", "--warmup", "2",
         "--json", str(out)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-800:]
    per = json.loads(out.read_text())
    # Every request reads both heads (the reader's functions) and is proxied (the core's).
    assert per["_h11_reader.py:_head_headers"] > 0 and per["_connection.py:_on_request"] > 0
    assert sum(per.values()) > 1000 and "bytecodes per request (get)" in done.stderr


def _python_calls(reader: _H11Reader) -> tuple[Any, list[str]]:
    """The event of ``reader.next_event()`` and the Python functions it called, in order."""
    seen: list[str] = []

    def prof(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            seen.append(frame.f_code.co_name)

    sys.setprofile(prof)
    try:
        ev = reader.next_event()
    finally:
        sys.setprofile(None)
    return ev, seen


@pytest.mark.parametrize("client,data,head_reader", [
    (False, b"GET / HTTP/1.1\r\nHost: a\r\nUser-Agent: x\r\n\r\n", "_read_request_head"),
    (True, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "_read_response_head"),
])
def test_a_complete_head_is_read_in_the_fewest_python_calls(
        client: bool, data: bytes, head_reader: str) -> None:
    r = _H11Reader(client, 65536)
    r.receive_data(data)
    ev, calls = _python_calls(r)
    assert type(ev) is (h11.Response if client else h11.Request)
    # next_event, the head reader, the line split and its buffer take, the header pass and
    # h11's Headers, the framing and h11's body reader: one call each, nothing else.
    assert calls == ["next_event", head_reader, "_extract_lines", "_extract", "_head_headers",
                     "__init__", "_framing", "__init__"]


@pytest.mark.parametrize("client", [False, True])
def test_no_head_line_answers_as_h11(client: bool) -> None:
    # The answers the call moved out of the common path gives: wait, or h11's two errors.
    what = "response" if client else "request"
    r = _H11Reader(client, 65536)
    r.receive_data(b"HTTP/1.1 200" if client else b"GET / HT")
    assert r.next_event() is h11.NEED_DATA
    r = _H11Reader(client, 65536)
    r.receive_data(b"\r\n\r\n")
    with pytest.raises(h11.RemoteProtocolError, match=f"no {what} line received"):
        r.next_event()
    r = _H11Reader(client, 65536)
    r.receive_data(b"\x00GET")  # incomplete, but no start line can begin so
    with pytest.raises(h11.RemoteProtocolError, match="illegal request line"):
        r.next_event()
