"""Session 30: the ConfigMap's ``max-worker-open-files`` / ``max-worker-connections``
(ingresslib._serve_limits) and a server running out of file descriptors.

ingress-nginx (internal/ingress/controller/controller.go, the config step of ``OnUpdate``):
``MaxWorkerOpenFiles`` 0 is ``rlimitMaxNumFiles() - 1024`` (the hard RLIMIT_NOFILE, at least
1024); ``MaxWorkerConnections`` 0 is ``int(MaxWorkerOpenFiles * 3.0 / 4)``.

The descriptor exhaustion runs in a subprocess with its own lowered soft limit (never the
test runner's)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from ingresslib._cli import build_parser
from ingresslib._config import parse_config_data

def _lim() -> Any:
    """ingresslib._serve_limits, imported by the tests that use it (the descriptor tests run
    on a tree without it too)."""
    import ingresslib._serve_limits as lim

    return lim

ROOT = Path(__file__).resolve().parent.parent


# -- the ConfigMap keys -------------------------------------------------------------------

def test_keys_are_read_not_warned_unimplemented() -> None:
    cfg = parse_config_data({"max-worker-open-files": "4096", "max-worker-connections": "0"})
    assert cfg.warnings == ()
    assert (cfg.max_worker_open_files, cfg.max_worker_connections) == (4096, 0)
    unset = parse_config_data({})
    assert (unset.max_worker_open_files, unset.max_worker_connections) == (None, None)


@pytest.mark.parametrize("value", ["-1", "x", "1.5", "010"])
def test_keys_refuse_what_is_no_count(value: str) -> None:
    from ingresslib._errors import ValidationError

    for key in ("max-worker-open-files", "max-worker-connections"):
        with pytest.raises(ValidationError, match=key):
            parse_config_data({key: value})


# -- max-worker-open-files ----------------------------------------------------------------

def test_open_files_zero_is_ingress_nginx_computation() -> None:
    assert _lim().open_files_target(0, 20000) == (18976, None)     # hard - 1024
    assert _lim().open_files_target(0, 1500) == (1024, None)       # at least 1024
    assert _lim().open_files_target(0, 800) == (800, None)         # never above the hard limit
    target, warning = _lim().open_files_target(0, -1)   # RLIM_INFINITY: nothing to derive
    assert target == 0 and warning is not None


def test_open_files_above_hard_is_the_hard_limit_with_a_warning() -> None:
    target, warning = _lim().open_files_target(50000, 20000)
    assert target == 20000
    assert warning is not None and "50000" in warning and "20000" in warning
    assert _lim().open_files_target(4096, 20000) == (4096, None)


class _FakeResource:
    RLIMIT_NOFILE = 7

    def __init__(self, soft: int, hard: int) -> None:
        self.limits = (soft, hard)
        self.calls: list[tuple[int, int]] = []

    def getrlimit(self, which: int) -> tuple[int, int]:
        assert which == self.RLIMIT_NOFILE
        return self.limits

    def setrlimit(self, which: int, limits: tuple[int, int]) -> None:
        self.calls.append(limits)
        self.limits = limits


def test_apply_raises_the_soft_limit_and_never_lowers_it() -> None:
    fake = _FakeResource(1024, 20000)
    assert _lim().apply_open_files(4096, resource_mod=fake) == 4096
    assert fake.calls == [(4096, 20000)]
    # Lower than the process got: left as it is.
    assert _lim().apply_open_files(100, resource_mod=fake) == 4096
    assert fake.calls == [(4096, 20000)]
    # Not set: ingress-nginx's default 0 (hard - 1024).
    assert _lim().apply_open_files(None, resource_mod=fake) == 18976
    assert fake.calls[-1] == (18976, 20000)


def test_apply_above_hard_uses_hard_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    fake = _FakeResource(1024, 2048)
    with caplog.at_level("WARNING", logger="ingresslib.serve"):
        assert _lim().apply_open_files(100000, resource_mod=fake) == 2048
    assert fake.calls == [(2048, 2048)]
    assert "above the hard RLIMIT_NOFILE" in caplog.text


def test_apply_failing_setrlimit_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    class Refusing(_FakeResource):
        def setrlimit(self, which: int, limits: tuple[int, int]) -> None:
            raise ValueError("not allowed")

    with caplog.at_level("WARNING", logger="ingresslib.serve"):
        assert _lim().apply_open_files(4096, resource_mod=Refusing(1024, 20000)) == 1024
    assert "could not raise RLIMIT_NOFILE" in caplog.text


# -- max-worker-connections ---------------------------------------------------------------

def _args(*argv: str) -> Any:
    return build_parser().parse_args(["serve", "-f", "m.yaml", *argv])


def test_max_connections_flag_default_says_not_given() -> None:
    args = _args()
    assert args.max_connections == 10000
    assert getattr(args.max_connections, "not_given", False)
    assert not getattr(_args("--max-connections", "10000").max_connections, "not_given", False)


def test_connection_bound_flag_then_key_then_default() -> None:
    cfg = parse_config_data({"max-worker-connections": "300"})
    assert _lim().connection_bound(_args(), cfg, 4096) == 300
    assert _lim().connection_bound(_args("--max-connections", "7"), cfg, 4096) == 7
    unset = parse_config_data({})
    assert _lim().connection_bound(_args(), unset, 4096) == _lim().DEFAULT_MAX_CONNECTIONS
    zero = parse_config_data({"max-worker-connections": "0"})
    assert _lim().connection_bound(_args(), zero, 4096) == 3072     # 3/4 of the open files limit
    assert _lim().connection_bound(_args(), zero, None) == _lim().DEFAULT_MAX_CONNECTIONS


def test_reload_sets_the_bound_of_the_server_and_the_stream_feeds() -> None:
    server = SimpleNamespace(max_connections=10000)
    feed = SimpleNamespace(services=SimpleNamespace(max_connections=10000))
    limits = _lim().ServeLimits(_args())
    limits.reload(parse_config_data({"max-worker-connections": "5",
                                     "max-worker-open-files": "1"}), server, (feed, None))
    assert server.max_connections == 5 and feed.services.max_connections == 5
    # The flag, when given, stays.
    _lim().ServeLimits(_args("--max-connections", "9")).reload(
        parse_config_data({}), server, (feed,))
    assert server.max_connections == 9 and feed.services.max_connections == 9


# -- out of file descriptors (subprocess with a soft limit of 64) ---------------------------

_SERVER = textwrap.dedent("""
    import asyncio, logging, os, resource, sys
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="LOG %(name)s %(message)s")
    from ingresslib.proxy._server import ProxyServer
    from tests._server_helpers import StubRouter
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    held = []
    async def main():
        server = ProxyServer(StubRouter([("127.0.0.1", int(sys.argv[1]))]))
        await server.start(("127.0.0.1", 0))
        print(server.addresses[0][2], flush=True)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while True:
            words = (await reader.readline()).decode().split()
            if not words:
                break
            if words[0] == "fill":   # every descriptor taken but N
                try:
                    while True:
                        held.append(os.open(os.devnull, os.O_RDONLY))
                except OSError:
                    pass
                for _ in range(int(words[1])):
                    os.close(held.pop())
            else:
                while held:
                    os.close(held.pop())
            print("ok", flush=True)
        await server.shutdown(1)
    asyncio.run(main())
""")


async def _backend(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    try:
        await r.readuntil(b"\r\n\r\n")
        w.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await w.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        w.close()


async def _status(port: int) -> bytes:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        w.write(b"GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
        data = await asyncio.wait_for(r.read(), 3)
    finally:
        w.close()
    return data.split(b"\r\n", 1)[0]


async def _run_exhausted(tmp_path: Path, free: int, during: Any) -> tuple[Any, str]:
    """Starts the server script, takes every descriptor but ``free``, runs ``during(port)``,
    gives the descriptors back; returns ``during``'s result, the answer after, and stderr."""
    script = tmp_path / "server.py"
    script.write_text(_SERVER)
    backend = await asyncio.start_server(_backend, "127.0.0.1", 0)
    bport = backend.sockets[0].getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = tmp_path / "stderr.txt"
    with log.open("wb") as errfile:   # (a file: a flood of errors never blocks the server)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(script), str(bport), cwd=str(ROOT), env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errfile)
    assert proc.stdin is not None and proc.stdout is not None
    try:
        port = int(await asyncio.wait_for(proc.stdout.readline(), 10))

        async def command(text: str) -> None:
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(text.encode() + b"\n")
            await proc.stdin.drain()
            assert await asyncio.wait_for(proc.stdout.readline(), 5) == b"ok\n"

        assert await _status(port) == b"HTTP/1.1 200 OK"
        await command(f"fill {free}")
        result = await during(port)
        await command("free")
        after = await _status(port)
        proc.stdin.close()
        await asyncio.wait_for(proc.wait(), 5)
        return (result, after), log.read_text(errors="replace")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        backend.close()
        await backend.wait_closed()


def test_accept_out_of_fds_logs_once_a_second_not_per_backlog_slot(tmp_path: Path) -> None:
    """accept() failing with EMFILE: asyncio's selector loop (CPython before gh-151615) went
    on calling accept() up to ``backlog`` (1024) times in the tick, logging each failure and
    scheduling as many resumes: over a thousand tracebacks a second, and as many callbacks
    failing on the closed socket at shutdown. Now one failure, one resume a second later;
    the connection waiting is served once descriptors are back."""
    async def during(port: int) -> bytes:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
        await asyncio.sleep(1.2)   # the listener paused, resumed once, paused again
        return w   # type: ignore[return-value]

    async def scenario() -> tuple[Any, str]:
        (w, after), err = await _run_exhausted(tmp_path, 0, during)
        w.close()
        return after, err

    after, err = asyncio.run(scenario())
    assert after == b"HTTP/1.1 200 OK"
    failures = err.count("socket.accept() out of system resource")
    assert 1 <= failures <= 4, failures
    assert "Invalid file descriptor" not in err


def test_upstream_connect_out_of_fds_is_a_502_and_the_server_recovers(tmp_path: Path) -> None:
    """One descriptor left: the client's accept takes it, the upstream socket() fails with
    EMFILE: that request gets 502 (nginx: connect() failed, 502), nothing crashes, and the
    next request once descriptors are back is proxied."""
    async def during(port: int) -> list[bytes]:
        return [await _status(port) for _ in range(2)]

    (statuses, after), err = asyncio.run(_run_exhausted(tmp_path, 1, during))
    assert statuses == [b"HTTP/1.1 502 Bad Gateway"] * 2
    assert after == b"HTTP/1.1 200 OK"
    # The only tracebacks: the listener's own (its next accept() failing), paced.
    assert err.count("Traceback") == err.count("socket.accept() out of system resource") <= 4
    # The upstream connect's failure said once, not per request.
    assert err.count("upstream connect: out of file descriptors") == 1


def _forget_out_of_fds_warnings() -> None:
    try:
        _lim()._said.clear()
    except ImportError:   # (the tree before session 30)
        pass


def test_udp_session_out_of_fds_drops_and_warns_once(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A UDP session whose upstream socket cannot be opened (EMFILE): its datagram is dropped
    and the session ends, with one warning for all of them, where each new client address
    (spoofed source ports cost nothing) logged "no endpoint answered" and tried every
    endpoint in turn."""
    import errno
    import socket

    import ingresslib._udp_proxy as udp_proxy
    from ingresslib._tcp_services import TCPServiceEntry, TCPServiceTarget
    from ingresslib._udp_proxy import UDPServices

    _forget_out_of_fds_warnings()
    opened: list[tuple[str, int]] = []

    async def no_fds(loop: Any, host: str, port: int) -> socket.socket:
        opened.append((host, port))
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(udp_proxy, "_connected_socket", no_fds)

    async def go() -> None:
        udp = UDPServices(host="127.0.0.1")
        try:
            target = TCPServiceTarget(TCPServiceEntry(0, "default", "dns", 53),
                                      (("127.0.0.1", 9), ("127.0.0.1", 10)))
            assert await udp.update([target]) == []
            port = udp.address(0)[1]
            loop = asyncio.get_running_loop()
            clients = []
            for i in range(5):
                tr, _ = await loop.create_datagram_endpoint(
                    asyncio.DatagramProtocol, remote_addr=("127.0.0.1", port))
                tr.sendto(b"q%d" % i)
                clients.append(tr)
            for _ in range(100):
                await asyncio.sleep(0.01)
                if len(opened) >= 5 and not udp.sessions:
                    break
            assert len(opened) == 5          # one try each: the next endpoint would fail alike
            assert not udp.sessions
            for tr in clients:
                tr.close()
        finally:
            await udp.close()

    with caplog.at_level("DEBUG", logger="ingresslib"):
        asyncio.run(go())
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "out of file descriptors" in warnings[0], warnings


def test_out_of_fds_warning_is_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    import errno

    _forget_out_of_fds_warnings()
    lim = _lim()
    with caplog.at_level("WARNING", logger="ingresslib.serve"):
        for _ in range(3):
            assert lim.out_of_fds(OSError(errno.EMFILE, "Too many open files"), "x")
        assert lim.out_of_fds(OSError(errno.ENFILE, "File table overflow"), "y")
        assert not lim.out_of_fds(OSError(errno.ECONNREFUSED, "refused"), "x")
        assert not lim.out_of_fds(ValueError("no"), "x")
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["x", "y"]
