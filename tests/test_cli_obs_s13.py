"""Session 13 audit of the command line and the observability surface: ``explain`` tells what the
proxy answers for a Host it refuses, bad ``serve`` values are usage errors, a failed write to
stdout is one line (not a traceback), and a failing access-log stream is reported once a minute
instead of a traceback per request. In-process or on 127.0.0.1 only."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import ingresslib
from ingresslib import _serve
from ingresslib._accesslog import AccessLog, configure_access_log
from ingresslib._cli import main

from _proxy_harness import ProxyPair, status_of
from _records import rec

ROOT = Path(__file__).resolve().parent.parent

ROUTES = """
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, namespace: shop}
spec:
  rules:
  - host: shop.example.com
    http:
      paths:
      - {path: /api, pathType: Prefix, backend: {service: {name: api, port: {number: 80}}}}
  - host: "*.example.com"
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: wild, port: {number: 80}}}}
  - http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: any, port: {number: 80}}}}
"""


@pytest.fixture
def routes(tmp_path: Path) -> Path:
    p = tmp_path / "routes.yaml"
    p.write_text(ROUTES)
    return p


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def proxy_status(host: bytes, method: bytes = b"GET", hosts: int = 1) -> int:
    """What the proxy core answers to ``METHOD /api`` with that Host (the oracle)."""
    pair = ProxyPair(router=ingresslib.Router(ingresslib.parse_manifests(ROUTES)))
    head = b"%s /api HTTP/1.1\r\n" % method + b"Host: %s\r\n" % host * hosts + b"\r\n"
    return status_of(pair.send(head))


# -- explain: a Host the proxy refuses is a 400, not a route ----------------------------------


@pytest.mark.parametrize("url, headers, host", [
    # (session 17: a URL curl refuses, such as these three, is a usage error; the Host header
    # form still reaches the proxy's Host check)
    ("/api", ["Host: shop.example.com:99999"], b"shop.example.com:99999"),  # port out of range
    ("/api", ["Host: shop.example.com:abc"], b"shop.example.com:abc"),      # port not a number
    ("http://a..example.com/api", [], b"a..example.com"),                  # empty label
    ("/api", ["Host: [fe80::1%25eth0]"], b"[fe80::1%25eth0]"),              # zone id
    ("/api", ["Host: shop.example.com\x01"], b"shop.example.com\x01"),     # control character
    ("/api", ["Host: a b.example.com"], b"a b.example.com"),               # space
])
def test_explain_answers_400_where_the_proxy_refuses_the_host(
        routes: Path, url: str, headers: list[str], host: bytes,
        capsys: pytest.CaptureFixture[str]) -> None:
    assert proxy_status(host) == 400  # what a client of `serve` gets
    argv = ["explain", "-f", str(routes), "-o", "json", url]
    for h in headers:
        argv += ["-H", h]
    code, out, err = run(argv, capsys)
    info = json.loads(out)
    assert code == 0 and info["status"] == 400 and info["match"] is None, info
    assert info["reason"].startswith("rejected: invalid"), info
    code, out, _ = run(argv[:3] + argv[5:], capsys)  # the text form says so too
    assert code == 0 and "-> 400: rejected: invalid" in out and "Ingress shop/web" not in out


def test_explain_routes_the_hosts_the_proxy_takes(routes: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    # The check refuses nothing the proxy accepts: case, trailing dot, port, IPv6 literal.
    for url, host in (("http://SHOP.example.com.:8080/api", b"SHOP.example.com.:8080"),
                      ("http://[::1]:80/api", b"[::1]:80")):
        assert proxy_status(host) == 503  # routed; the Service has no endpoint
        code, out, _ = run(["explain", "-f", str(routes), "-o", "json", url], capsys)
        info = json.loads(out)
        assert code == 0 and info["status"] == 503 and info["match"] is not None, info


def test_explain_connect_and_two_host_headers_as_the_proxy_answers(
        routes: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert proxy_status(b"shop.example.com", method=b"CONNECT") == 405
    code, out, _ = run(["explain", "-f", str(routes), "-o", "json", "-X", "CONNECT",
                        "http://shop.example.com/api"], capsys)
    assert code == 0 and json.loads(out)["status"] == 405 and json.loads(out)["match"] is None
    assert proxy_status(b"shop.example.com", hosts=2) == 400
    code, out, _ = run(["explain", "-f", str(routes), "-o", "json", "-H", "Host: shop.example.com",
                        "-H", "Host: shop.example.com", "/api"], capsys)
    info = json.loads(out)
    assert code == 0 and info["status"] == 400 and info["reason"] == "rejected: duplicate Host"


def test_explain_json_says_ok_like_check_and_the_error_documents(
        routes: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["explain", "-f", str(routes), "-o", "json",
                        "http://shop.example.com/api"], capsys)
    assert code == 0 and json.loads(out)["ok"] is True
    code, out, _ = run(["check", "-f", str(routes), "-o", "json"], capsys)
    assert code == 0 and json.loads(out)["ok"] is True
    code, out, _ = run(["explain", "-f", str(routes), "-o", "json", "http://[::1/"], capsys)
    assert code == 2 and json.loads(out)["ok"] is False


# -- serve: values that would make a useless server are usage errors (exit 2) -----------------


@pytest.mark.parametrize("option, value", [
    ("--max-connections", "0"), ("--max-connections", "-1"),
    ("--reload-interval", "nan"), ("--reload-interval", "-1"),
    ("--shutdown-timeout", "inf"), ("--shutdown-timeout", "nan"),
])
def test_serve_rejects_useless_numbers(routes: Path, option: str, value: str,
                                       monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    # --max-connections 0 starts a server that resets every connection; nan/inf/negative
    # durations turn reloads off or wait forever. The stub stands for a server that starts.
    monkeypatch.setattr(_serve, "serve_main", lambda args: 0)
    code, out, err = run(["serve", "-f", str(routes), "--listen", "127.0.0.1:0", option, value],
                         capsys)
    assert code == 2 and f"argument {option}:" in err and "Traceback" not in err


def test_serve_keeps_valid_numbers(routes: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    seen = []
    monkeypatch.setattr(_serve, "serve_main", lambda args: seen.append(args) or 0)
    code, _, _ = run(["serve", "-f", str(routes), "--max-connections", "1",
                      "--reload-interval", "0", "--shutdown-timeout", "2.5"], capsys)
    assert code == 0
    assert (seen[0].max_connections, seen[0].reload_interval, seen[0].shutdown_timeout) == (1, 0.0, 2.5)


# -- output and input failures: one line, no traceback ----------------------------------------


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
@pytest.mark.parametrize("command", [["check"], ["explain", "-o", "json", "/x"]])
def test_full_disk_on_stdout_is_one_line_exit_1(routes: Path, command: list[str]) -> None:
    argv = [sys.executable, "-m", "ingresslib", command[0], "-f", str(routes), *command[1:]]
    with open("/dev/full", "w") as full:
        proc = subprocess.run(argv, stdout=full, stderr=subprocess.PIPE, text=True, timeout=60,
                              cwd=ROOT)
    assert proc.returncode == 1
    assert proc.stderr == (f"ingresslib {command[0]}: error: cannot write the output: "
                           "[Errno 28] No space left on device\n")


def test_closed_stdin_is_a_usage_error(monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", None)  # what Python gives a process started with `<&-`
    code, out, err = run(["check", "-f", "-"], capsys)
    assert code == 2 and err == "ingresslib check: error: -f -: standard input is closed\n"


# -- access log: a stream that fails is reported, not a traceback per request -----------------


class _Broken(io.StringIO):
    name = "<stdout>"

    def write(self, s: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


@pytest.fixture
def broken(monkeypatch: pytest.MonkeyPatch) -> Iterator[logging.Handler]:
    # Only caplog listens: a handler an earlier in-process `serve` left on "ingresslib" may
    # write to a capture stream closed since.
    parent = logging.getLogger("ingresslib")
    monkeypatch.setattr(parent, "handlers",
                        [h for h in parent.handlers if isinstance(h, logging.NullHandler)])
    handler = configure_access_log(_Broken(), "text")
    try:
        yield handler
    finally:
        logger = logging.getLogger("ingresslib.access")
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
        logger.propagate = True


def test_failing_access_log_stream_is_reported_once_a_minute(
        broken: logging.Handler, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    now = [1000.0]
    broken.clock = lambda: now[0]  # type: ignore[attr-defined]
    log = AccessLog()
    with caplog.at_level(logging.ERROR, logger="ingresslib.accesslog"):
        log(rec())
        log(rec())
        now[0] += 59.0
        log(rec())
        now[0] += 2.0
        log(rec())
    _, err = capsys.readouterr()
    # logging's default: "--- Logging error ---" and a traceback on stderr for every entry.
    assert "Logging error" not in err and "Traceback" not in err
    reports = [r.getMessage() for r in caplog.records if r.name == "ingresslib.accesslog"]
    assert reports == [
        "access log: writing to <stdout> failed: [Errno 32] Broken pipe (1 entry lost so far; "
        "reported at most every 60 s)",
        "access log: writing to <stdout> failed: [Errno 32] Broken pipe (4 entries lost so far; "
        "reported at most every 60 s)",
    ]


def test_access_log_to_a_closed_pipe_under_serve_is_one_line(routes: Path, tmp_path: Path) -> None:
    # End to end: `ingresslib serve ... | head -c 1`, then requests. One ERROR line on stderr,
    # not some thirty lines of traceback per request.
    code = f"""
import asyncio, io, os, sys, logging
sys.path.insert(0, {str(ROOT / 'tests')!r})
from _records import rec
from ingresslib._accesslog import AccessLog
from ingresslib._serve import _setup_logging
r, w = os.pipe()
os.close(r)
sys.stdout = io.TextIOWrapper(os.fdopen(w, "wb", buffering=0), write_through=True)
_setup_logging("text", "info")
log = AccessLog()
for _ in range(5):
    log(rec())
"""
    proc = subprocess.run([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, timeout=60, cwd=ROOT)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and "ERROR ingresslib.accesslog: access log: writing to" in lines[0], \
        proc.stderr[:2000]
    assert "Broken pipe" in lines[0]
