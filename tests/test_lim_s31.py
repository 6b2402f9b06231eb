"""Session 31: serve's descriptor limits, follow-ups (ingresslib._serve_limits).

* TCP services' listeners (``serve --tcp-services-configmap``) are paced as the HTTP/HTTPS ones
  (``pace_accepts``): an accept() failing for want of a file descriptor is one error and a
  pause, never one error per backlog slot (nginx's ``ngx_event_accept`` disables accept events
  for a while on EMFILE).
* A TCP services connection / UDP services session whose upstream socket cannot be opened
  (EMFILE) ends at once, with one ``out_of_fds`` warning a minute for all of them (real
  descriptor exhaustion, in a subprocess with its own soft RLIMIT_NOFILE of 64, never the test
  runner's).
* ``ClusterWatcher._deliver`` logs a failing ``on_snapshot``'s traceback once per kind of
  failure (serve retries a failed swap: a traceback per retry otherwise).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from ingresslib._tcp_proxy import TCPServices
from ingresslib._tcp_services import TCPServiceEntry, TCPServiceTarget

ROOT = Path(__file__).resolve().parent.parent

_ACCEPT_FAILED = "socket.accept() out of system resource"


def _target(backend: int, port: int = 0) -> TCPServiceTarget:
    return TCPServiceTarget(TCPServiceEntry(port, "default", "db", 80),
                            (("127.0.0.1", backend),))


async def _echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    try:
        while data := await r.read(4096):
            w.write(b"echo:" + data)
            await w.drain()
    except ConnectionError:
        pass
    finally:
        w.close()


async def _say(port: int, data: bytes) -> bytes:
    """What the TCP services port answers to ``data`` (b"": closed without a word)."""
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        w.write(data)
        async with asyncio.timeout(3):
            try:
                return await r.read(4096)
            except ConnectionResetError:
                return b""
    finally:
        w.close()


# -- 1. TCP services' listeners are paced ---------------------------------------------------

def test_tcp_services_listener_out_of_fds_logs_once_per_pause_not_per_backlog_slot(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """accept() failing with EMFILE on a TCP services port: asyncio's selector loop (CPython
    before gh-151615) called accept() again up to ``backlog`` (100) times in the tick, each
    failure logged with its traceback and a resume scheduled; now one failure per pause
    (``ACCEPT_RETRY_DELAY``, shortened here), and the client waiting is piped once
    descriptors are back."""
    import asyncio.constants

    from ingresslib._serve_limits import _PacedSocket

    delay = 0.1
    monkeypatch.setattr(asyncio.constants, "ACCEPT_RETRY_DELAY", delay)
    real_accept = socket.socket.accept
    exhausted: set[int] = set()   # the listening sockets whose accept() fails with EMFILE

    def accept(sock: socket.socket) -> tuple[socket.socket, Any]:
        if sock.fileno() in exhausted:
            raise OSError(errno.EMFILE, "Too many open files")
        return real_accept(sock)

    monkeypatch.setattr(socket.socket, "accept", accept)

    async def go() -> tuple[int, float, bytes]:
        loop = asyncio.get_running_loop()
        failures: list[str] = []
        loop.set_exception_handler(lambda _loop, ctx: failures.append(ctx["message"]))
        backend = await asyncio.start_server(_echo, "127.0.0.1", 0)
        tcp = TCPServices(host="127.0.0.1")
        try:
            assert await tcp.update([_target(backend.sockets[0].getsockname()[1])]) == []
            server = tcp._listeners[0].server
            assert server is not None
            socks = server._sockets   # type: ignore[attr-defined]
            assert socks and all(isinstance(s, _PacedSocket) for s in socks)
            port = socks[0].getsockname()[1]
            exhausted.update(s.fileno() for s in socks)
            began = loop.time()
            waiting = asyncio.ensure_future(_say(port, b"hi"))
            await asyncio.sleep(3.5 * delay)
            elapsed = loop.time() - began
            exhausted.clear()   # descriptors are back
            answer = await waiting
            assert set(failures) <= {_ACCEPT_FAILED}
            return len(failures), elapsed, answer
        finally:
            await tcp.close()
            backend.close()
            await backend.wait_closed()

    count, elapsed, answer = asyncio.run(go())
    # One failure when the connection came, one more at each resume: never more.
    assert 1 <= count <= elapsed / delay + 1, (count, elapsed)
    assert answer == b"echo:hi"


# -- 2. out of descriptors: a TCP services connection / UDP services session ends -----------

#: TCP or UDP services (argv[1]) on 127.0.0.1 to the parent's echo backend (argv[2]), with a
#: soft RLIMIT_NOFILE of 64; stdin's "fill N" takes every descriptor but N, "free" gives them
#: back, "state" says the datagrams received and the UDP sessions open. The accept pause is
#: 0.1 s (asyncio.constants.ACCEPT_RETRY_DELAY, 1 s) to keep the test short.
_CHILD = textwrap.dedent("""
    import asyncio, asyncio.constants, logging, os, resource, sys
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="LOG %(name)s %(message)s")
    from ingresslib._tcp_proxy import TCPServices
    from ingresslib._tcp_services import TCPServiceEntry, TCPServiceTarget
    from ingresslib._udp_proxy import UDPServices
    asyncio.constants.ACCEPT_RETRY_DELAY = 0.1
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    held = []
    async def main():
        backend = ("127.0.0.1", int(sys.argv[2]))
        target = TCPServiceTarget(TCPServiceEntry(0, "default", "db", 80), (backend, backend))
        kind = TCPServices if sys.argv[1] == "tcp" else UDPServices
        services = kind(host="127.0.0.1")
        assert await services.update([target]) == []
        received = [0]
        if kind is UDPServices:
            print(services.address(0)[1], flush=True)
            relay = services.received
            def counted(port, data, addr):
                received[0] += 1
                relay(port, data, addr)
            services.received = counted
        else:
            print(services._listeners[0].server.sockets[0].getsockname()[1], flush=True)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while words := (await reader.readline()).decode().split():
            if words[0] == "fill":
                try:
                    while True:
                        held.append(os.open(os.devnull, os.O_RDONLY))
                except OSError:
                    pass
                for _ in range(int(words[1])):
                    os.close(held.pop())
                print("ok", flush=True)
            elif words[0] == "free":
                while held:
                    os.close(held.pop())
                print("ok", flush=True)
            else:
                print(received[0], len(getattr(services, "sessions", ())), flush=True)
        await services.close()
    asyncio.run(main())
""")


async def _run_child(tmp_path: Path, kind: str, backend: int,
                     scenario: Callable[[int, Callable[[str], Awaitable[str]]], Awaitable[None]]
                     ) -> str:
    """Runs ``_CHILD`` for ``kind``, then ``scenario(port, command)``; returns its stderr."""
    script = tmp_path / "child.py"
    script.write_text(_CHILD)
    log = tmp_path / "stderr.txt"
    with log.open("wb") as errfile:   # (a file: whatever is logged never blocks the child)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(script), kind, str(backend), cwd=str(ROOT),
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errfile)
    assert proc.stdin is not None and proc.stdout is not None
    stdin, stdout = proc.stdin, proc.stdout

    async def command(text: str) -> str:
        stdin.write(text.encode() + b"\n")
        await stdin.drain()
        return (await asyncio.wait_for(stdout.readline(), 5)).decode().strip()

    try:
        port = int(await asyncio.wait_for(stdout.readline(), 10))
        await scenario(port, command)
        stdin.close()
        await asyncio.wait_for(proc.wait(), 5)
        return log.read_text(errors="replace")
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_tcp_services_connection_out_of_fds_ends_with_one_warning(tmp_path: Path) -> None:
    """One descriptor left: the client's accept takes it, the upstream socket() fails with
    EMFILE. The connection ends at once (every endpoint would fail alike), with one warning
    for all such connections; before, each was tried on the next endpoints and logged "no
    endpoint answered". Once descriptors are back, a connection is piped."""
    async def scenario(port: int, command: Callable[[str], Awaitable[str]]) -> None:
        # (No connection before: one still closing would free its descriptors later.)
        assert await command("fill 1") == "ok"
        assert [await _say(port, b"b") for _ in range(2)] == [b"", b""]
        assert await command("free") == "ok"
        assert await _say(port, b"c") == b"echo:c"

    async def go() -> str:
        backend = await asyncio.start_server(_echo, "127.0.0.1", 0)
        try:
            return await _run_child(tmp_path, "tcp", backend.sockets[0].getsockname()[1],
                                    scenario)
        finally:
            backend.close()
            await backend.wait_closed()

    err = asyncio.run(go())
    assert err.count("TCP services: upstream connect: out of file descriptors") == 1, err
    assert "no endpoint answered" not in err, err
    # The only tracebacks: the listener's own (its next accept() failing), paced.
    assert err.count("Traceback") == err.count(_ACCEPT_FAILED) <= 6, err


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.got: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.got.put_nowait(data)


class _UDPEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.transport.sendto(b"echo:" + data, addr)


def test_udp_services_session_out_of_fds_ends_with_one_warning(tmp_path: Path) -> None:
    """No descriptor left: each new client's session cannot open its upstream socket
    (EMFILE). Its datagram is dropped and the session ends, with one warning for all of them;
    before, each session logged "no endpoint answered". Once descriptors are back, the same
    client's next datagram begins a session that is answered."""
    async def go() -> str:
        loop = asyncio.get_running_loop()
        backend, _ = await loop.create_datagram_endpoint(_UDPEcho, local_addr=("127.0.0.1", 0))
        clients: list[tuple[asyncio.DatagramTransport, _Datagrams]] = []

        async def scenario(port: int, command: Callable[[str], Awaitable[str]]) -> None:
            assert await command("fill 0") == "ok"
            for i in range(3):
                clients.append(await loop.create_datagram_endpoint(
                    _Datagrams, remote_addr=("127.0.0.1", port)))
                clients[-1][0].sendto(b"q%d" % i)
            for _ in range(300):   # every datagram received, every session ended
                if await command("state") == "3 0":
                    break
                await asyncio.sleep(0.01)
            assert await command("state") == "3 0"
            assert await command("free") == "ok"
            transport, protocol = clients[0]
            transport.sendto(b"r")
            assert await asyncio.wait_for(protocol.got.get(), 3) == b"echo:r"
            assert all(p.got.empty() for _, p in clients)   # nothing came for q0..q2

        try:
            return await _run_child(tmp_path, "udp", backend.get_extra_info("sockname")[1],
                                    scenario)
        finally:
            for transport, _ in clients:
                transport.close()
            backend.close()

    err = asyncio.run(go())
    assert err.count("UDP services: session socket: out of file descriptors") == 1, err
    assert "no endpoint answered" not in err and "Traceback" not in err, err


# -- 3. ClusterWatcher: a failing on_snapshot's traceback once per kind of failure ----------

def test_deliver_logs_a_failing_snapshot_traceback_once_per_kind_of_failure(
        caplog: pytest.LogCaptureFixture) -> None:
    """serve --kubernetes delivers a snapshot whose swap failed again (1 s doubling to 60 s):
    a lasting failure logged its whole traceback at each retry. Now the traceback once per
    kind (the same exception type and message as the last failure: one line); a different
    failure, or a success in between, logs it again. Every failure is counted."""
    from ingresslib._kube import ClusterWatcher

    outcomes: list[BaseException | None] = [
        MemoryError(), MemoryError(), MemoryError(),   # a lasting failure, retried
        OSError(errno.EMFILE, "Too many open files"),  # another kind
        OSError(errno.EMFILE, "Too many open files"),
        None,                                          # a success
        OSError(errno.EMFILE, "Too many open files"),  # the same kind as before it: anew
    ]

    async def on_snapshot(res: Any) -> None:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome

    async def go() -> list[tuple[bool, str]]:
        watcher = ClusterWatcher(on_snapshot, client=object())
        logged: list[tuple[bool, str]] = []
        with caplog.at_level(logging.DEBUG, logger="ingresslib"):
            while outcomes:
                caplog.clear()
                watcher.redeliver(watcher.delivered_generation)   # (SnapshotRetry's way)
                await watcher._deliver()
                said = [r for r in caplog.records if r.name == "ingresslib.kube"
                        and r.levelno >= logging.WARNING]
                assert len(said) <= 1, said
                logged += [(r.exc_info is not None, r.getMessage()) for r in said]
        assert watcher.stats.callback_errors == 6 and watcher.stats.snapshots == 1
        return logged

    logged = asyncio.run(go())
    assert [full for full, _ in logged] == [True, False, False, True, False, True], logged
    assert all("on_snapshot failed" in line for _, line in logged), logged
    assert "MemoryError" in logged[1][1] and "Too many open files" in logged[4][1], logged
