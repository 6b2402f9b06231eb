"""``ingresslib serve`` start-up, reload and shutdown (session 17 review).

1. Every address a listener is bound on is printed: a host name bound on 127.0.0.1 and ::1
   (``localhost``) printed the first only, and with port 0 the other had a port of its own.
2. A zone-scoped IPv6 address is printed as RFC 6874 writes it in a URL (``%25``).
3. A SIGHUP while draining says that nothing is read, not "reading the files now".
4. Two listeners on one address written two ways (``[::0]`` and ``[::]``, ``127.1`` and
   ``127.0.0.1``) are refused before anything listens, as the same spelling twice was.
5. ``import ingresslib`` imports nothing heavy: the CLI's Ctrl-C handling is in place before
   the proxy, router and cluster client are imported, and ``serve`` from files never imports
   the cluster client.
6. ``--kubernetes --config``: a ConfigMap reload that reports after a newer cluster snapshot
   does not log its older table's notes; the access log keeps the entry when the metrics fail.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import ingresslib
from ingresslib import _serve
from ingresslib._cli import main
from tests.test_serve_cli import _manifests

from _serve_helpers import (cluster_change_during_reload, free_port, localhost_is_both,
                            signal_serve_after, zone_scoped_ipv6_names)

ROOT = Path(__file__).resolve().parent.parent


def _listening(err: str, word: str = "listening on") -> list[str]:
    return [line.split()[2] for line in err.splitlines() if line.startswith(word + " ")]


# -- 1. every bound address is printed -----------------------------------------------------------


@pytest.mark.network
def test_a_name_bound_on_two_addresses_prints_both(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # Regression: "--listen localhost:0" bound 127.0.0.1 and ::1, each on a free port of its
    # own, and printed "listening on http://127.0.0.1:P" only; the ::1 listener was unseen.
    # The metrics line had the same gap (and printed the name, not an address).
    m = tmp_path / "m.yaml"
    m.write_text(_manifests("web", [free_port()]))
    localhost_is_both(monkeypatch)
    reached: list[str] = []
    real_run = _serve.Reloader.run

    async def run(self: _serve.Reloader) -> None:
        # While serving: every printed URL answers (a proxy 404 for this host).
        for url in _listening(capsys.readouterr().err):
            host, _, port = url.removeprefix("http://").rpartition(":")
            reader, writer = await asyncio.open_connection(host.strip("[]"), int(port))
            writer.write(b"GET / HTTP/1.1\r\nHost: nothing.test\r\nConnection: close\r\n\r\n")
            reached.append(url if (await reader.readline()).startswith(b"HTTP/1.1 404")
                           else "")
            writer.close()
        os.kill(os.getpid(), signal.SIGTERM)
        await real_run(self)

    monkeypatch.setattr(_serve.Reloader, "run", run)
    assert main(["serve", "-f", str(m), "--listen", "localhost:0", "--reload-interval", "0",
                 "--access-log", "off"]) == 0
    assert [u.rpartition(":")[0] for u in reached] == ["http://127.0.0.1", "http://[::1]"]

    monkeypatch.setattr(_serve.Reloader, "run", real_run)
    signal_serve_after(monkeypatch, 0.2)
    assert main(["serve", "-f", str(m), "--listen", "127.0.0.1:0", "--metrics-listen",
                 "localhost:0", "--reload-interval", "0", "--access-log", "off"]) == 0
    metrics = _listening(capsys.readouterr().err, "metrics on")
    assert [u.rpartition(":")[0] for u in metrics] == ["http://127.0.0.1", "http://[::1]"]
    assert all(u.endswith("/metrics") and u.rpartition(":")[2] != "0/metrics" for u in metrics)


# -- 2. a zone in a URL --------------------------------------------------------------------------


@pytest.mark.network
def test_a_zone_scoped_address_is_printed_with_percent_25(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # RFC 6874, section 2: 'IPv6addrz = IPv6address "%25" ZoneID'; "http://[fe80::1%lo]:P"
    # is not a URL (curl refuses it, a browser reads "%lo" as a bad escape). Listening on a
    # link-local address is not done here: the ::1 socket reports a zone-scoped name.
    m = tmp_path / "m.yaml"
    m.write_text(_manifests("web", [free_port()]))
    zone_scoped_ipv6_names(monkeypatch)
    signal_serve_after(monkeypatch, 0.2)
    assert main(["serve", "-f", str(m), "--listen", "[::1]:0", "--reload-interval", "0",
                 "--access-log", "off"]) == 0
    [url] = _listening(capsys.readouterr().err)
    assert url.startswith("http://[fe80::1%25lo]:"), url


@pytest.mark.parametrize("host, url", [
    ("127.0.0.1", "http://127.0.0.1:80"),
    ("::1", "http://[::1]:80"),
    ("fe80::1%eth0", "http://[fe80::1%25eth0]:80"),
    ("fe80::1%2", "http://[fe80::1%252]:80"),
    ("localhost", "http://localhost:80"),
])
def test_url_of_an_address(host: str, url: str) -> None:
    assert _serve._url("http", host, 80) == url


# -- 3. SIGHUP while draining --------------------------------------------------------------------


def test_sighup_while_draining_says_nothing_is_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # Regression: the reloader is cancelled when stopping starts, but SIGHUP's handler still
    # logged "SIGHUP: reading the files now" (and woke a reloader that no longer ran).
    m = tmp_path / "m.yaml"
    m.write_text(_manifests("web", [free_port()]))
    real_drain = _serve._drain
    reloads: list[bool] = []
    real_check = _serve.Reloader.check

    async def check(self: _serve.Reloader, *, force: bool = False) -> bool | None:
        result = await real_check(self, force=force)
        reloads.append(force)
        return result

    async def drain(server: Any, timeout: float, interrupt: asyncio.Event) -> None:
        os.kill(os.getpid(), signal.SIGHUP)
        await asyncio.sleep(0.2)  # the loop's handler runs
        await real_drain(server, timeout, interrupt)

    monkeypatch.setattr(_serve, "_drain", drain)
    monkeypatch.setattr(_serve.Reloader, "check", check)
    signal_serve_after(monkeypatch, 0.2)
    with caplog.at_level(logging.INFO, logger="ingresslib.serve"):
        assert main(["serve", "-f", str(m), "--listen", "127.0.0.1:0", "--reload-interval", "0",
                     "--access-log", "off"]) == 0
    messages = [r.getMessage() for r in caplog.records if r.name == "ingresslib.serve"]
    assert "SIGHUP: reading the files now" not in messages
    assert "SIGHUP while stopping: nothing is read again" in messages
    assert reloads == []


# -- 4. one address, two spellings ---------------------------------------------------------------


@pytest.mark.parametrize("a, b", [
    ("::", "::0"),
    ("::", "0:0:0:0:0:0:0:0"),
    ("0.0.0.0", "0"),
    ("127.0.0.1", "127.1"),
    ("127.0.0.1", "0x7f.0.0.1"),
    ("0", "127.0.0.1"),              # the IPv4 wildcard, written "0"
    ("::0", "::1"),                  # the IPv6 wildcard, written "::0"
    ("fe80::1%lo", "fe80::1%1"),     # one zone by name and by number (lo is interface 1)
    ("::1", "0:0::1"),
])
def test_one_address_written_two_ways_is_one_listener(a: str, b: str) -> None:
    if "%" in a and socket.if_nametoindex("lo") != 1:  # pragma: no cover - another host
        pytest.skip("lo is not interface 1 here")
    assert _serve._listener_conflict([("--listen", (a, 8080)),
                                      ("--metrics-listen", (b, 8080))]) is not None


@pytest.mark.parametrize("a, b", [
    ("127.0.0.1", "127.2"),          # 127.0.0.2
    ("0", "::"),                     # two families
    ("localhost", "127.0.0.1"),      # a name: resolved at the bind, whose error names it
    ("fe80::1%lo", "fe80::1"),       # a zone and none
])
def test_different_addresses_are_not_refused(a: str, b: str) -> None:
    assert _serve._listener_conflict([("--listen", (a, 8080)),
                                      ("--tls-listen", (b, 8080))]) is None


def test_one_address_two_spellings_is_refused_before_listening(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # Regression: "--listen 127.1:P --metrics-listen 127.0.0.1:P" started, bound the proxy
    # and failed at the metrics bind (exit 1, after "listening on"), where the same spelling
    # twice was refused up front with exit 2.
    async def never_serve(*a: Any, **k: Any) -> int:
        return 99

    m = tmp_path / "m.yaml"
    m.write_text(_manifests("web", [free_port()]))
    monkeypatch.setattr(_serve, "_serve", never_serve)
    port = free_port()
    assert main(["serve", "-f", str(m), "--listen", f"127.1:{port}", "--metrics-listen",
                 f"127.0.0.1:{port}"]) == 2
    assert "cannot both listen" in capsys.readouterr().err


# -- 5. what `import ingresslib` and the CLI import ----------------------------------------------


_INTERRUPTED_IMPORT = """
import sys

class Interrupt:
    # Ctrl-C while a module is imported (the router and the proxy: the slowest part).
    def find_spec(self, name, path=None, target=None):
        if name == module:
            raise KeyboardInterrupt
        return None

module = sys.argv[2]
sys.meta_path.insert(0, Interrupt())
sys.argv = ["ingresslib", "serve", "-f", sys.argv[1]]
import runpy
runpy.run_module("ingresslib", run_name="__main__")
"""


@pytest.mark.parametrize("module", ["ingresslib._serve", "ingresslib._router",
                                    "ingresslib.proxy._connection"])
def test_ctrl_c_while_serve_imports_is_one_line_and_130(tmp_path: Path, module: str) -> None:
    # Regression: `import ingresslib` imported the proxy, router, ASGI adapter and cluster
    # client (0.3-0.9 s), all before `python -m ingresslib serve` could catch a Ctrl-C: a
    # KeyboardInterrupt traceback from the middle of an import. Now the package imports them
    # on first use, so serve's own handling covers them.
    m = tmp_path / "m.yaml"
    m.write_text(_manifests("web", [9]))
    p = subprocess.run([sys.executable, "-c", _INTERRUPTED_IMPORT, str(m), module],
                       capture_output=True,
                       text=True, timeout=60, cwd=str(ROOT),
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 130, p.stderr
    assert p.stderr == "ingresslib serve: interrupted before serving\n"


_IMPORTED = """
import sys
import ingresslib
print(sorted(m for m in sys.modules if m.startswith("ingresslib")))
from ingresslib._cli import main
main(["serve", "-f", sys.argv[1], "--listen", "127.0.0.1:99999"])  # exit 2 before listening
print("ingresslib._kube" in sys.modules, "lightkube" in sys.modules)
"""


def test_import_ingresslib_is_light_and_serve_from_files_skips_the_cluster_client(
        tmp_path: Path) -> None:
    m = tmp_path / "m.yaml"
    m.write_text(_manifests("web", [9]))
    p = subprocess.run([sys.executable, "-c", _IMPORTED, str(m)], capture_output=True,
                       text=True, timeout=60, cwd=str(ROOT),
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    first, second = p.stdout.splitlines()
    assert first == "['ingresslib']", first
    assert second == "False False"


def test_every_public_name_is_there_as_before() -> None:
    # The names of CONTRACT.md, loaded on first use: the same objects as from their modules.
    from ingresslib._kube import ClusterWatcher, watch_cluster
    from ingresslib._matcher import MATCHER
    from ingresslib._router import Router
    from ingresslib.proxy import Proxy

    assert ingresslib.ClusterWatcher is ClusterWatcher
    assert ingresslib.watch_cluster is watch_cluster
    assert ingresslib.Router is Router and ingresslib.Proxy is Proxy
    assert ingresslib.MATCHER == MATCHER
    for name in ingresslib.__all__:
        assert getattr(ingresslib, name) is not None
        assert name in dir(ingresslib)
    assert ingresslib.proxy.Proxy is Proxy  # the subpackage, as `import ingresslib` gave it
    with pytest.raises(AttributeError):
        ingresslib.NoSuchName  # noqa: B018
    with pytest.raises(ImportError):
        from ingresslib import NoSuchName  # noqa: F401


# -- 6. notes of an older table; the access log when the metrics fail ----------------------------


@pytest.mark.asyncio
async def test_a_late_configmap_reload_does_not_log_an_older_tables_notes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    # Regression: the reloader builds on the cluster's resources of the moment (an Ingress
    # shadowed), a cluster snapshot that fixes it swaps in while the reloader computes its
    # digest and logs its (empty) notes, then the reloader logged its older table's
    # "shadowed" note again: a problem fixed already, reported as current.
    from lightkube import KubeConfig

    from ingresslib._cli import build_parser
    from ingresslib._config import ServerConfig
    from ingresslib._resources import Resources

    from _fake_kube import kubeconfig_dict
    from test_kube import ingress, svc
    from test_kube_s14 import _configmap

    cm = tmp_path / "configmap.json"
    cm.write_text(_configmap("round_robin"))
    files_state = _serve._snapshot([str(cm)])
    shadowed = Resources.from_dicts([svc("web"), ingress("one", path="/one"),
                                     ingress("two", path="/one")])
    fixed = Resources.from_dicts([svc("web"), ingress("one", path="/one"),
                                  ingress("two", path="/two")])
    swapped = cluster_change_during_reload(monkeypatch, cm, shadowed, fixed, _configmap("ewma"))
    args = build_parser().parse_args([
        "serve", "--kubernetes", "--config", str(cm), "--reload-interval", "0.05",
        "--listen", "127.0.0.1:0", "--access-log", "off"])
    kube_config = KubeConfig.from_dict(kubeconfig_dict("http://127.0.0.1:9")).get()
    with caplog.at_level(logging.INFO, logger="ingresslib.serve"):
        rc = await _serve._serve(args, Resources(), ServerConfig(), kube_config, files_state)
    assert rc == 0 and swapped.is_set()
    messages = [r.getMessage() for r in caplog.records if r.name == "ingresslib.serve"]
    assert any(m.startswith("configuration ") and m.endswith(" applied") for m in messages)
    assert sum("is shadowed by" in m for m in messages) == 1, messages


def test_the_access_log_keeps_the_entry_when_the_metrics_fail() -> None:
    # Regression: the sink called the metrics first and the access log after; an exception
    # in the metrics (the server logs it and goes on) lost the request's access-log line.
    import io

    from ingresslib._accesslog import configure_access_log

    from _records import rec as record

    class BrokenMetrics:
        def observe(self, rec: Any) -> None:
            raise ValueError("a label value refused")

    out = io.StringIO()
    configure_access_log(out, "text")  # what serve's --access-log text does, to a buffer
    sink = _serve._record_sink("text", BrokenMetrics())
    assert sink is not None
    with pytest.raises(ValueError):
        sink(record(path="/x", query=None))
    [line] = out.getvalue().splitlines()
    assert '"GET /x HTTP/1.1" 200 ' in line, line


# -- SIGTERM while serve starts ------------------------------------------------------------------


_TERM_WHILE = """
import os, signal, sys
from ingresslib import _load, _serve
from ingresslib._cli import main

where = sys.argv[2]
real = {"load": _load.load_manifests, "build": _serve.build_router}[where]

def slow(*a, **k):
    os.kill(os.getpid(), signal.SIGTERM)  # `docker stop` while the files are read / built
    return real(*a, **k)

if where == "load":
    _load.load_manifests = slow
else:
    _serve.build_router = slow
code = main(["serve", "-f", sys.argv[1], "--listen", "127.0.0.1:0", "--access-log", "off"])
print(code, signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)
"""


@pytest.mark.parametrize("where", ["load", "build"])
def test_sigterm_while_serve_starts_stops_it_with_one_line(tmp_path: Path, where: str) -> None:
    # Regression: SIGTERM's default action was left in place until the loop listened. As PID 1
    # in a container the kernel drops such a signal: `docker stop` or a pod deletion while the
    # files were read was lost, and serve went on to listen until the SIGKILL. (Outside a
    # container the process died without a word.) Now the start stops: one line, exit 143,
    # nothing listened, and SIGTERM's handler is put back.
    m = tmp_path / "m.yaml"
    m.write_text(_manifests("web", [9]))
    p = subprocess.run([sys.executable, "-c", _TERM_WHILE, str(m), where], capture_output=True,
                       text=True, timeout=60, cwd=str(ROOT),
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 0, (p.returncode, p.stderr)
    assert p.stdout == "143 True\n"
    assert "listening on" not in p.stderr and "Traceback" not in p.stderr, p.stderr
    assert p.stderr.endswith("ingresslib serve: terminated before serving\n"), p.stderr
