"""``ingresslib serve`` as an operator runs it (session 13 review): SIGHUP, folders that cannot
be listed, a poll that fails, files replaced with their timestamps kept, ConfigMap volumes."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from ingresslib import _serve, _serve_reload
from ingresslib._cli import main
from ingresslib._demo import start_echo
from ingresslib._serve import Reloader
from tests.test_serve_cli import _first_status, _manifests, _start_serve, _stop


def _ingress(name: str, host: str = "") -> str:
    host_line = f"  - host: {host}\n    http:\n" if host else "  - http:\n"
    return (f"apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {{name: {name}}}\n"
            f"spec:\n  rules:\n{host_line}      paths:\n"
            f"      - {{path: /, pathType: Prefix, backend: {{service: {{name: s, port: "
            f"{{number: 80}}}}}}}}\n")


class _Router:
    def __init__(self) -> None:
        self.loaded: list[list[str]] = []

    def update(self, res: Any) -> None:
        self.loaded.append(sorted(i.metadata.name for i in res.ingresses))


class _Server:
    def __init__(self) -> None:
        self.router = _Router()
        self.cert_store = None


def _reloader(server: _Server, paths: list[str], **kw: Any) -> Reloader:
    return Reloader(server, paths, ingress_class=None, controller=None, settle=0, **kw)


def _folder_and_subfolder(folder: Path) -> Path:
    """Ingress ``a`` in ``folder``, Ingress ``b`` (host b.test) in its new subfolder ``sub``,
    which is returned."""
    (folder / "a.yaml").write_text(_ingress("a"))
    sub = folder / "sub"
    sub.mkdir()
    (sub / "b.yaml").write_text(_ingress("b", "b.test"))
    return sub


# -- SIGHUP -------------------------------------------------------------------------------------


async def _status(port: int, host: str) -> int:
    return await _first_status(
        port, f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())


@pytest.mark.network
@pytest.mark.asyncio
async def test_sighup_reads_the_files_now_and_does_not_kill_the_server(tmp_path: Path) -> None:
    # Regression: SIGHUP (nginx's reload signal; also what a closing terminal sends) met its
    # default action and killed `serve` on the spot, requests in flight included. It now reads
    # the files at once, even with polling off (--reload-interval 0).
    echo = await start_echo("web", "web-0")
    m = tmp_path / "m.yaml"
    m.write_text(_manifests("web", [echo.port]))
    p, ports = await asyncio.to_thread(_start_serve, "-f", str(m), "--listen", "127.0.0.1:0",
                                       "--reload-interval", "0", "--access-log", "off")
    port = ports["http"]
    try:
        assert await _status(port, "app.test") == 200
        assert await _status(port, "other.test") == 404
        m.write_text(_manifests("web", [echo.port]).replace("app.test", "other.test"))
        await asyncio.sleep(0.3)
        assert await _status(port, "other.test") == 404  # no polling: not read yet
        p.send_signal(signal.SIGHUP)
        for _ in range(100):
            await asyncio.sleep(0.05)
            try:
                if p.poll() is not None or await _status(port, "other.test") == 200:
                    break
            except OSError:  # the old code: killed by the signal while we connected
                await asyncio.sleep(0.2)
                break
        assert p.poll() is None, f"SIGHUP killed serve: exit {p.returncode}"
        assert await _status(port, "other.test") == 200
        assert await _status(port, "app.test") == 404
    finally:
        if p.poll() is None:
            err = await asyncio.to_thread(_stop, p)
            assert "SIGHUP" in err
        else:
            p.communicate()
        await echo.stop()


# -- folders that cannot be listed --------------------------------------------------------------


def _deny(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """``folder`` cannot be listed (tests run as root, where chmod 000 denies nothing)."""
    real = os.scandir

    def scandir(path: Any = ".") -> Any:
        if not isinstance(path, int) and Path(os.fspath(path)) == folder:
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)


@pytest.mark.asyncio
async def test_a_subfolder_that_cannot_be_listed_keeps_the_last_good_table(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Regression: a subfolder that became unreadable (a volume's permissions, fsGroup) was
    # skipped by the poller and by load_manifests alike, so the reload swapped in a table
    # without that folder's Ingresses: their hosts answered 404, with no error anywhere.
    sub = _folder_and_subfolder(tmp_path)
    server = _Server()
    r = _reloader(server, [str(tmp_path)])
    _deny(monkeypatch, sub)
    assert await r.check() is False
    assert server.router.loaded == []  # nothing swapped in
    assert "cannot list the folder" in (r.last_error or "") and str(sub) in (r.last_error or "")
    assert await r.check() is None  # said once, not at every poll
    monkeypatch.undo()
    assert await r.check() is True
    assert server.router.loaded == [["a", "b"]]


def test_start_up_with_a_folder_that_cannot_be_listed_exits_2(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # The same at start-up: exit 2 with the reason, not a server with an empty table.
    (tmp_path / "a.yaml").write_text(_ingress("a"))

    async def serving(*a: Any, **k: Any) -> int:
        return 99  # the old code went on to serve

    monkeypatch.setattr(_serve, "_serve", serving)
    _deny(monkeypatch, tmp_path)
    assert main(["serve", "-f", str(tmp_path), "--listen", "127.0.0.1:0"]) == 2
    assert "cannot list the folder: Permission denied" in capsys.readouterr().err


# -- a poll that fails ----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_a_folder_removed_while_it_is_walked_is_a_change_not_an_exception(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Regression: `rm -rf deploy/old` landing while the poller walked the folder made the walk
    # raise FileNotFoundError out of the poll (and ended the polling task for good).
    sub = _folder_and_subfolder(tmp_path)
    server = _Server()
    r = _reloader(server, [str(tmp_path)])
    real = os.scandir

    def scandir(path: Any = ".") -> Any:
        if not isinstance(path, int) and Path(os.fspath(path)) == sub and sub.exists():
            shutil.rmtree(sub)  # removed between listing its parent and listing it
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert await r.check() is True
    assert server.router.loaded == [["a"]]


@pytest.mark.asyncio
async def test_polling_goes_on_after_a_poll_that_failed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # Regression: any exception out of one poll ended Reloader.run(): no later edit was ever
    # applied, and nothing said so until the process stopped.
    m = tmp_path / "m.yaml"
    m.write_text(_ingress("a"))
    server = _Server()
    r = _reloader(server, [str(m)], interval=0.02)
    real = _serve._snapshot
    calls = 0

    def flaky(paths: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls <= 3:
            raise OSError(5, "Input/output error")
        return real(paths)

    monkeypatch.setattr(_serve_reload, "_snapshot", flaky)
    task = asyncio.ensure_future(r.run())
    try:
        for _ in range(50):
            if calls > 3:
                break
            await asyncio.sleep(0.02)
        m.write_text(_ingress("b"))
        for _ in range(200):
            if server.router.loaded or task.done():
                break
            await asyncio.sleep(0.02)
        assert not task.done(), task.exception()
        assert server.router.loaded == [["b"]]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    errors = [rec for rec in caplog.records if "polling the files failed" in rec.getMessage()]
    assert len(errors) == 1  # once while it keeps failing the same way


# -- replaced files whose timestamp was kept ----------------------------------------------------


@pytest.mark.asyncio
@pytest.mark.parametrize("how", ["rename", "in-place"])
async def test_a_file_rewritten_with_the_same_size_and_mtime_is_reloaded(
        tmp_path: Path, how: str) -> None:
    # Regression: the poller compared mtime and size only. A file replaced by another of the
    # same size whose timestamp was kept (cp -p, tar, rsync -t; files written in one clock
    # tick), or rewritten in place with its mtime set back, was never reloaded. The inode and
    # the ctime (which nobody can set) tell them apart.
    m = tmp_path / "m.yaml"
    m.write_text(_ingress("a"))
    before = m.stat()
    server = _Server()
    r = _reloader(server, [str(tmp_path)])
    time.sleep(0.01)  # let the clock tick: a new ctime
    if how == "rename":
        new = tmp_path / ".m.yaml.new"
        new.write_text(_ingress("b"))
        os.utime(new, ns=(before.st_atime_ns, before.st_mtime_ns))
        os.replace(new, m)
    else:
        m.write_text(_ingress("b"))
        os.utime(m, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = m.stat()
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    assert await r.check() is True
    assert server.router.loaded == [["b"]]


# -- ConfigMap volumes -----------------------------------------------------------------------------


def _kubelet_write(volume: Path, files: dict[str, str], n: int) -> None:
    """What kubelet's AtomicWriter does to a ConfigMap volume: the data in a new hidden
    timestamped folder, ``..data`` swapped to it by a rename, the old folder removed; the
    user-visible files are symlinks through ``..data``."""
    ts = volume / f"..2026_11_22_17_00_0{n}.{n}"
    ts.mkdir()
    for name, text in files.items():
        (ts / name).write_text(text)
    tmp = volume / "..data_tmp"
    tmp.symlink_to(ts.name)
    old = os.readlink(volume / "..data") if (volume / "..data").is_symlink() else None
    os.replace(tmp, volume / "..data")
    for name in files:
        link = volume / name
        if not link.is_symlink():
            link.symlink_to(Path("..data") / name)
    if old is not None:
        shutil.rmtree(volume / old)


@pytest.mark.asyncio
@pytest.mark.parametrize("watch", ["folder", "file"])
async def test_a_configmap_volume_update_is_seen(tmp_path: Path, watch: str) -> None:
    # kubelet updates a mounted ConfigMap by swapping the ``..data`` symlink: the poller must
    # see it (through the folder or through the file's symlink), and the hidden timestamped
    # folders must not be read as manifests (no duplicate objects).
    vol = tmp_path / "vol"
    vol.mkdir()
    _kubelet_write(vol, {"web.yaml": _ingress("a")}, 1)
    server = _Server()
    path = str(vol) if watch == "folder" else str(vol / "web.yaml")
    r = _reloader(server, [path])
    assert await r.check() is None
    _kubelet_write(vol, {"web.yaml": _ingress("b")}, 2)  # same size
    assert await r.check() is True
    assert server.router.loaded == [["b"]]
    assert await r.check() is None


# -- a second Ctrl-C --------------------------------------------------------------------------------


@pytest.mark.network
@pytest.mark.asyncio
async def test_a_second_ctrl_c_aborts_the_drain(tmp_path: Path) -> None:
    # Regression: after the first SIGINT, SIGINT only set the stop event again, so a second
    # Ctrl-C did nothing: the process waited the whole --shutdown-timeout for a stuck request.
    # (The code said "a second Ctrl-C still cancels us"; it did not.)
    got_request = asyncio.Event()
    release = asyncio.Event()

    async def stuck(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        got_request.set()
        await release.wait()
        writer.close()

    upstream = await asyncio.start_server(stuck, "127.0.0.1", 0)
    up_port = upstream.sockets[0].getsockname()[1]
    m = tmp_path / "m.yaml"
    m.write_text(_manifests("web", [up_port]))
    p, ports = await asyncio.to_thread(_start_serve, "-f", str(m), "--listen", "127.0.0.1:0",
                                       "--access-log", "off", "--shutdown-timeout", "60")
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", ports["http"])
        writer.write(b"GET / HTTP/1.1\r\nHost: app.test\r\n\r\n")
        await writer.drain()
        await asyncio.wait_for(got_request.wait(), 5)
        p.send_signal(signal.SIGINT)
        await asyncio.sleep(0.5)
        assert p.poll() is None  # the first one drains: the request may still finish
        p.send_signal(signal.SIGINT)
        started = time.monotonic()
        while p.poll() is None and time.monotonic() - started < 5:
            await asyncio.sleep(0.05)
        assert p.poll() == 0, "a second Ctrl-C did not stop the drain"
        assert await asyncio.wait_for(reader.read(), 5) == b""  # the stuck request was cut
        writer.close()
    finally:
        release.set()
        if p.poll() is None:
            p.kill()
        p.communicate()
        upstream.close()
        await upstream.wait_closed()


@pytest.mark.network
@pytest.mark.asyncio
async def test_sighup_with_kubernetes_keeps_serving(tmp_path: Path) -> None:
    # The same with --kubernetes and no --config: nothing to read, the signal is logged and
    # ignored (it used to kill the controller).
    from tests.test_serve_kube import _backend, _fake_cluster, _ingress as _kube_ingress

    web = await start_echo("web", "web-0")
    kube, cfg = await _fake_cluster(tmp_path, _kube_ingress("web"), *_backend("web", web.port))
    p, ports = await asyncio.to_thread(_start_serve, "--kubernetes", "--kubeconfig", str(cfg),
                                       "--listen", "127.0.0.1:0", "--access-log", "off")
    try:
        for _ in range(100):
            if await _status(ports["http"], "app.test") == 200:
                break
            await asyncio.sleep(0.1)
        p.send_signal(signal.SIGHUP)
        await asyncio.sleep(0.5)
        assert p.poll() is None, f"SIGHUP killed serve: exit {p.returncode}"
        assert await _status(ports["http"], "app.test") == 200
    finally:
        if p.poll() is None:
            err = await asyncio.to_thread(_stop, p)
            assert "SIGHUP: nothing to read" in err
        else:
            p.communicate()
        await kube.stop()
        await web.stop()


@pytest.mark.asyncio
async def test_a_reload_logs_the_new_tables_annotation_warnings_at_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # router.update keeps the router object, so the server's router setter (which logs the
    # table's annotation warnings at start) is not run: a reload that brings an Ingress with an
    # annotation ingresslib ignores or that denies its routes must say so when it is applied,
    # not at the route's first request (which may never come, or come from a user).
    from ingresslib import ProxySettings, Router
    from ingresslib.proxy._server import ProxyServer

    f = tmp_path / "a.yaml"
    f.write_text(_ingress("a", "a.test"))
    server = ProxyServer(Router(ingresslib_load(str(tmp_path))), ProxySettings())
    r = _reloader(server, [str(tmp_path)])
    f.write_text(_ingress("a", "a.test").replace(
        "metadata: {name: a}",
        "metadata: {name: a, annotations: {nginx.ingress.kubernetes.io/proxy-busy-buffers-size: "
        "'8k'}}"))
    caplog.set_level("WARNING")
    assert await r.check() is True
    assert any("proxy-busy-buffers-size" in rec.getMessage() and "not implemented" in rec.getMessage()
               for rec in caplog.records), [rec.getMessage() for rec in caplog.records]


def ingresslib_load(path: str) -> Any:
    from ingresslib import load_manifests

    return load_manifests(path)
